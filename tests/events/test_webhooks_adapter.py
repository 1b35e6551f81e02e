"""The signed-webhook events adapter against the sandbox subscriber."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.errors import NotFoundError, RejectedError, TransientError, UnknownOutcomeError
from adapters.events.webhooks import SCHEME, SIGNATURE_HEADER, WebhookEvents
from adapters.http import dumps_json
from adapters.webhooks.signatures import SignatureError
from sandbox.app import SandboxState, create_app
from tests.e2e.stack import ThreadedServer
from tests.events.conftest import SECRETS, booked_event, inject, subscriber


class Recording(httpx.AsyncBaseTransport):
    """Passes requests on to ``inner`` and keeps each one, body read."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.requests.append(request)
        return await self.inner.handle_async_request(request)


async def test_a_delivery_is_a_signed_cloudevent_the_subscriber_accepts(state: SandboxState):
    recording = Recording(httpx.ASGITransport(app=create_app(state)))
    async with httpx.AsyncClient(transport=recording, base_url="http://sandbox") as http:
        events = WebhookEvents(http, [subscriber("finance")])
        event = booked_event()
        await events.deliver("finance", event)

    (request,) = recording.requests
    assert request.headers["content-type"] == "application/cloudevents+json"
    assert request.headers["ce-id"] == event["id"]
    assert request.headers["ce-type"] == "com.revsync.quote.booked.v1"
    assert request.headers["ce-source"] == "/revsync/quote-to-cash"
    assert request.headers["ce-specversion"] == "1.0"
    # The subscriber's own check, as docs/api.md tells it to: HMAC of "<t>." + raw body.
    SCHEME.verify([SECRETS["finance"]], request.headers[SIGNATURE_HEADER], request.content)
    with pytest.raises(SignatureError):
        SCHEME.verify([SECRETS["data"]], request.headers[SIGNATURE_HEADER], request.content)
    assert request.content == dumps_json(event)
    assert json.loads(request.content)["data"]["amount"] == "12000.00"

    (received,) = state.events.received("finance")
    assert received["event"] == event
    assert received["duplicate"] is False


async def test_a_redelivery_is_signed_afresh_and_shows_as_a_duplicate(
    state: SandboxState, http: httpx.AsyncClient
):
    events = WebhookEvents(http, [subscriber("finance")])
    event = booked_event()
    await events.deliver("finance", event)
    await events.deliver("finance", event)
    first, second = state.events.received("finance")
    assert (first["duplicate"], second["duplicate"]) == (False, True)
    assert first["event"]["id"] == second["event"]["id"]


async def test_a_wrong_secret_is_refused_and_not_recorded(
    state: SandboxState, http: httpx.AsyncClient
):
    events = WebhookEvents(http, [subscriber("finance", secret="whsec_not-the-one")])
    with pytest.raises(RejectedError) as refused:
        await events.deliver("finance", booked_event())
    assert refused.value.status == 401
    assert state.events.received() == []
    assert state.events.snapshot()["refused"] == 1


@pytest.mark.parametrize(
    ("rule", "error", "retry_after"),
    [
        ({"status": 503}, TransientError, None),
        ({"status": 500}, TransientError, None),
        ({"status": 408}, TransientError, None),
        ({"status": 429, "retry_after": 7}, TransientError, 7.0),
        ({"status": 410}, RejectedError, None),
        ({"status": 400}, RejectedError, None),
    ],
)
async def test_each_status_class_ends_as_the_taxonomy_says(
    http: httpx.AsyncClient,
    state: SandboxState,
    rule: dict[str, int],
    error: type[Exception],
    retry_after: float | None,
):
    await inject(http, operation="finance", **rule)
    events = WebhookEvents(http, [subscriber("finance")])
    with pytest.raises(error) as failed:
        await events.deliver("finance", booked_event())
    if isinstance(failed.value, TransientError):
        assert failed.value.retry_after == retry_after
    assert state.events.received() == []
    # The fault was one-off: the next delivery goes through.
    await events.deliver("finance", booked_event())
    assert len(state.events.received("finance")) == 1


async def test_a_url_without_a_subscriber_is_a_rejection(http: httpx.AsyncClient):
    events = WebhookEvents(http, [subscriber("finance", url="http://sandbox/events/nobody")])
    with pytest.raises(NotFoundError):
        await events.deliver("finance", booked_event())


async def test_no_answer_after_sending_is_an_unknown_outcome():
    state = SandboxState(event_secrets=SECRETS)
    server = ThreadedServer(create_app(state))
    server.start()
    try:
        async with httpx.AsyncClient(timeout=0.5) as http:
            await http.post(
                f"{server.url}/_sandbox/faults",
                json={
                    "faults": [
                        {"vendor": "events", "phase": "after", "status": 504, "hang_ms": 3000}
                    ]
                },
            )
            events = WebhookEvents(
                http, [subscriber("finance", url=f"{server.url}/events/finance")]
            )
            with pytest.raises(UnknownOutcomeError):
                await events.deliver("finance", booked_event())
    finally:
        server.stop()
    # It did arrive: redelivering is what the stable id is for.
    assert len(state.events.received("finance")) == 1


def test_types_choose_the_subscribers_of_an_event(http: httpx.AsyncClient):
    events = WebhookEvents(
        http,
        [
            subscriber("finance", ["com.revsync.quote.*"]),
            subscriber("data"),
            subscriber("ops", ["com.revsync.order.parked.v1"]),
        ],
    )
    assert events.subscribers_for("com.revsync.quote.booked.v1") == ["finance", "data"]
    assert events.subscribers_for("com.revsync.order.parked.v1") == ["data", "ops"]
    assert events.subscribers_for("com.revsync.order.compensated.v1") == ["data"]


def test_subscriber_names_are_unique(http: httpx.AsyncClient):
    with pytest.raises(ValueError, match="finance"):
        WebhookEvents(http, [subscriber("finance"), subscriber("finance")])


def test_a_signature_older_than_the_tolerance_does_not_verify():
    body = dumps_json(booked_event())
    header = SCHEME.sign(SECRETS["finance"], body, timestamp=int(time.time()) - 3600)
    with pytest.raises(SignatureError):
        SCHEME.verify([SECRETS["finance"]], header, body)


def documented_verify() -> Any:
    """The verification snippet docs/api.md gives subscribers, as they would paste it."""
    text = (Path(__file__).parents[2] / "docs/api.md").read_text()
    section = text.split("### Verifying a delivery", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    return namespace["verify"]


async def test_the_documented_snippet_verifies_a_real_delivery(state: SandboxState):
    verify = documented_verify()
    recording = Recording(httpx.ASGITransport(app=create_app(state)))
    async with httpx.AsyncClient(transport=recording, base_url="http://sandbox") as http:
        await WebhookEvents(http, [subscriber("finance")]).deliver("finance", booked_event())
    (request,) = recording.requests
    header = request.headers[SIGNATURE_HEADER]
    assert verify(SECRETS["finance"], header, request.content)
    assert not verify(SECRETS["data"], header, request.content)
    assert not verify(SECRETS["finance"], header, request.content + b" ")
    stale = SCHEME.sign(SECRETS["finance"], request.content, timestamp=int(time.time()) - 3600)
    assert not verify(SECRETS["finance"], stale, request.content)
