"""A business-event subscriber: receives revsync's signed CloudEvents webhooks and records them.

``POST /events/<subscriber>`` is what a subscriber of ``REVSYNC_EVENT_SUBSCRIBERS`` would
expose. It checks the delivery as docs/api.md tells subscribers to:

- ``X-Revsync-Signature`` must sign the raw body with the secret known for ``<subscriber>``
  (timestamped HMAC-SHA256; 401 otherwise, not recorded);
- the body must be a CloudEvent in structured JSON mode (``Content-Type:
  application/cloudevents+json``, ``specversion`` 1.0, ``id``, ``source``, ``type``) whose
  ``id`` matches the ``ce-id`` header (400 otherwise, not recorded).

Every accepted delivery is recorded, duplicates included (``duplicate`` says whether the same
``(source, id)`` reached this subscriber before), so tests and developers see exactly what a
consumer would. A subscriber name the sandbox has no secret for answers 404.

Fault injection: vendor ``events``, operation the subscriber's name (``*`` for all), e.g.
``{"vendor": "events", "operation": "sandbox", "status": 503, "times": 2}``; ``phase:
"after"`` records the delivery and then fails, as a subscriber whose answer was lost.

``GET /_sandbox/events`` lists the subscribers, every delivery in arrival order and how many
were refused.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request, Response

from adapters.webhooks.signatures import SignatureError, TimestampedHmacScheme
from sandbox.faults import VendorFaults
from sandbox.wire import json_response

if TYPE_CHECKING:
    from sandbox.app import SandboxState

VENDOR = "events"
SCHEME = TimestampedHmacScheme("X-Revsync-Signature")
CONTENT_TYPE = "application/cloudevents+json"
_REQUIRED = ("specversion", "id", "source", "type")


def fault_response(status: int, code: str | None, message: str) -> Response:
    return json_response({"error": code or "injected", "message": message}, status)


class EventSubscriberStore:
    """What the sandbox subscribers know (their secrets) and have received."""

    def __init__(self, secrets: Mapping[str, str] | None = None) -> None:
        self.secrets: dict[str, str] = dict(secrets or {})
        self.deliveries: list[dict[str, Any]] = []
        self.refused: list[dict[str, Any]] = []

    def add_subscriber(self, name: str, secret: str) -> None:
        self.secrets[name] = secret

    def received(self, subscriber: str | None = None) -> list[dict[str, Any]]:
        """The deliveries accepted (for one subscriber, or all), oldest first."""
        return [d for d in self.deliveries if subscriber in (None, d["subscriber"])]

    def snapshot(self) -> dict[str, Any]:
        return {
            "subscribers": sorted(self.secrets),
            "deliveries": list(self.deliveries),
            "refused": len(self.refused),
        }

    def accept(self, subscriber: str, headers: Mapping[str, str], body: bytes) -> Response | None:
        """Check one delivery; record it and return None when it is authentic and well formed,
        else the refusal to answer."""
        secret = self.secrets.get(subscriber)
        if secret is None:
            return self._refuse(subscriber, 404, "unknown subscriber")
        try:
            SCHEME.verify([secret], headers.get(SCHEME.header), body)
        except SignatureError as error:
            return self._refuse(subscriber, 401, error.reason)
        content_type = headers.get("content-type", "").split(";")[0].strip()
        if content_type != CONTENT_TYPE:
            return self._refuse(subscriber, 415, f"expected {CONTENT_TYPE}")
        try:
            event = json.loads(body)
        except ValueError:
            return self._refuse(subscriber, 400, "body is not JSON")
        if not isinstance(event, dict) or any(not event.get(k) for k in _REQUIRED):
            return self._refuse(subscriber, 400, "not a CloudEvent")
        if event["specversion"] != "1.0" or headers.get("ce-id") != event["id"]:
            return self._refuse(subscriber, 400, "ce-id or specversion does not match the body")
        duplicate = any(
            d["subscriber"] == subscriber
            and d["event"]["id"] == event["id"]
            and d["event"]["source"] == event["source"]
            for d in self.deliveries
        )
        self.deliveries.append(
            {
                "subscriber": subscriber,
                "received_at": datetime.now(UTC).isoformat(),
                "duplicate": duplicate,
                "signature": headers.get(SCHEME.header),
                "event": event,
            }
        )
        return None

    def _refuse(self, subscriber: str, status: int, reason: str) -> Response:
        self.refused.append({"subscriber": subscriber, "status": status, "reason": reason})
        return json_response({"error": reason}, status)


def build_router(state: SandboxState) -> APIRouter:
    """``POST /events/<subscriber>`` over ``state.events`` (looked up per request: a reset
    replaces it)."""
    router = APIRouter()

    @router.post("/{subscriber}")
    async def receive(subscriber: str, request: Request) -> Response:
        faults = VendorFaults(state.faults, VENDOR, fault_response)
        if (injected := await faults.before(subscriber)) is not None:
            return injected
        refused = state.events.accept(subscriber, request.headers, await request.body())
        if refused is not None:
            return refused
        if (injected := await faults.after(subscriber)) is not None:
            return injected
        return Response(status_code=204)

    return router


def build_control_router(state: SandboxState) -> APIRouter:
    """``GET /_sandbox/events``: what the sandbox subscribers received."""
    router = APIRouter()

    @router.get("")
    async def received() -> Response:
        return json_response(state.events.snapshot())

    return router
