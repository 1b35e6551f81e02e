"""Signed outbound webhooks: each event is POSTed to each subscriber whose types match.

The request (documented for subscribers in docs/api.md, "Receiving events"):

- body: the CloudEvent in structured JSON mode, ``Content-Type: application/cloudevents+json``;
- ``ce-id``, ``ce-type``, ``ce-source``, ``ce-specversion``: the envelope's identity, so a
  subscriber can deduplicate before parsing the body;
- ``X-Revsync-Signature: t=<unix seconds>,v1=<hex>``: the HMAC-SHA256 of ``"<t>."`` followed by
  the raw body, keyed with the subscriber's secret (the scheme revsync's CPQ webhook uses and
  Stripe uses, :mod:`adapters.webhooks.signatures`). ``t`` is the time of this attempt, so a
  redelivery carries a fresh signature over the same body.

Every subscriber gets its own :class:`~adapters.http.VendorHttp` (vendor ``events:<name>``):
its own circuit breaker, so one subscriber being down never fails fast the others, and the
single HTTP path's taxonomy (connect errors transient, a timeout after sending unknown
outcome). Statuses: any 2xx is delivered; 408, 429 (with ``Retry-After``) and 5xx are
transient; any other status (a 4xx, a redirect) is a rejection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import httpx
from pydantic import JsonValue

from adapters.errors import VendorError
from adapters.http import Classifier, VendorHttp, classify_by_status, dumps_json
from adapters.webhooks.signatures import TimestampedHmacScheme
from domain.event_contracts import EventSubscriber

SIGNATURE_HEADER: Final = "X-Revsync-Signature"
SCHEME: Final = TimestampedHmacScheme(SIGNATURE_HEADER)
CONTENT_TYPE: Final = "application/cloudevents+json"
OPERATION: Final = "deliver_event"
_DELIVERED: Final = tuple(range(200, 300))


def vendor_name(subscriber: str) -> str:
    """The vendor label of a subscriber's HTTP path (breaker, traces, logs)."""
    return f"events:{subscriber}"


def event_headers(event: Mapping[str, JsonValue], secret: str, body: bytes) -> dict[str, str]:
    """The headers of one delivery of ``event`` (whose JSON is ``body``) to a subscriber
    holding ``secret``."""
    headers = {
        "content-type": CONTENT_TYPE,
        SIGNATURE_HEADER: SCHEME.sign(secret, body),
    }
    for attribute in ("id", "type", "source", "specversion"):
        value = event.get(attribute)
        if isinstance(value, str):
            headers[f"ce-{attribute}"] = value
    return headers


def classifier(subscriber: str) -> Classifier:
    """How a subscriber's error response reads: the usual meaning of each status code."""

    def classify(operation: str, response: httpx.Response) -> VendorError:
        snippet = response.text[:200].strip() if response.content else ""
        message = f"subscriber answered HTTP {response.status_code}"
        if snippet:
            message = f"{message}: {snippet}"
        return classify_by_status(vendor_name(subscriber), operation, response, message, None)

    return classify


class WebhookEvents:
    """The :class:`~adapters.events.port.EventsPort` over signed HTTP webhooks."""

    def __init__(self, client: httpx.AsyncClient, subscribers: Sequence[EventSubscriber]) -> None:
        names = [s.name for s in subscribers]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"event subscribers named more than once: {', '.join(duplicated)}")
        self._subscribers = {s.name: s for s in subscribers}
        self._http = {
            s.name: VendorHttp(vendor_name(s.name), client, classifier(s.name)) for s in subscribers
        }

    def subscribers_for(self, event_type: str) -> list[str]:
        return [name for name, s in self._subscribers.items() if s.wants(event_type)]

    async def deliver(self, subscriber: str, event: Mapping[str, JsonValue]) -> None:
        target = self._subscribers[subscriber]
        document = dict(event)
        # VendorHttp sends dumps_json(document): the same bytes the signature covers.
        body = dumps_json(document)
        await self._http[subscriber].request(
            OPERATION,
            "POST",
            target.url,
            ok=_DELIVERED,
            json_body=document,
            headers=event_headers(event, target.secret.get_secret_value(), body),
        )
