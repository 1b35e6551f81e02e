"""Stripe, HubSpot and Salesforce deliveries through the gateway: verified before parsed,
replays start nothing new, refusals are logged without the body."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from adapters.webhooks import hubspot, salesforce, stripe
from revsync.gateway.app import create_app
from revsync.settings import Settings
from sandbox.app import SandboxState
from sandbox.faults import FaultRule, FaultsRequest
from tests.gateway import stripe_sandbox
from tests.gateway.test_intake import RecordingClient
from tests.staff import secret_settings

ORG = "00D5g000004ABCDEA4"
PUBLIC = "https://hooks.example.com"


@pytest.fixture
def settings() -> Settings:
    return Settings(**(secret_settings() | {"salesforce_org_ids": [ORG]}))


@pytest.fixture
def client() -> RecordingClient:
    return RecordingClient()


async def gateway_for(
    settings: Settings, client: RecordingClient, stripe_state: SandboxState | None = None
) -> httpx.AsyncClient:
    app = create_app(settings, client)  # type: ignore[arg-type]
    app.state.client = client
    if stripe_state is not None:  # the Stripe the gateway reads quote lines from
        app.state.stripe_quotes = stripe_sandbox.reader(stripe_state)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")


def secret(value: Any) -> str:
    return str(value.get_secret_value())


async def post_stripe(
    http: httpx.AsyncClient, settings: Settings, event: dict[str, Any], **sign: Any
) -> httpx.Response:
    body = json.dumps(event).encode()
    key = sign.pop("secret", secret(settings.stripe_webhook_secret))
    header = stripe.sign(key, body, sign.pop("timestamp", None))
    return await http.post(
        "/webhooks/stripe",
        content=body,
        headers={"content-type": "application/json", stripe.SIGNATURE_HEADER: header},
    )


async def test_a_stripe_quote_accepted_starts_one_saga_and_a_replay_starts_nothing(
    settings: Settings, client: RecordingClient
):
    state = SandboxState()
    stripe_sandbox.accepted_quote(state, "qt_1Replay")
    event = stripe_sandbox.quote_event(state, "qt_1Replay")
    assert "line_items" not in event["data"]["object"]  # Stripe never sends them
    async with await gateway_for(settings, client, state) as http:
        first = await post_stripe(http, settings, event)
        replay = await post_stripe(http, settings, event)
        redelivered = await post_stripe(http, settings, event | {"id": "evt_1Other"})
    assert (first.status_code, first.json()["status"]) == (202, "started")
    assert first.json()["workflow_id"] == "q2c-qt_1Replay"
    assert (replay.status_code, replay.json()["status"]) == (200, "duplicate")
    assert (redelivered.status_code, redelivered.json()["status"]) == (200, "duplicate")
    assert list(client.started) == ["q2c-qt_1Replay"]
    started = client.started["q2c-qt_1Replay"]["arg"].quote
    assert started.account_id == "0015e00000AcmeUS1"
    # The lines were read from Stripe (GET /v1/quotes/qt_1Replay/line_items).
    (lines,) = [state.stripe.quote_lines["qt_1Replay"]]
    assert [line.line_id for line in started.lines] == [line["id"] for line in lines]
    assert [line.sku for line in started.lines] == ["PLAT-CORE", "SUPPORT-PREMIUM", "ONBOARD-STD"]
    assert started.total == Decimal("3899.00")


async def test_a_failed_read_of_the_lines_answers_503_so_stripe_delivers_again(
    settings: Settings, client: RecordingClient
):
    state = SandboxState()
    stripe_sandbox.accepted_quote(state, "qt_1Later")
    event = stripe_sandbox.quote_event(state, "qt_1Later")
    state.faults.configure(
        FaultsRequest(
            faults=[
                FaultRule(vendor="stripe", operation="list_quote_line_items", status=503),
                FaultRule(vendor="stripe", operation="list_quote_line_items", status=429),
                FaultRule(vendor="stripe", operation="list_quote_line_items", status=403),
            ]
        )
    )
    async with await gateway_for(settings, client, state) as http:
        answers = [await post_stripe(http, settings, event) for _ in range(4)]
    # Stripe away, throttled, a key without the Quotes permission: delivered again later.
    assert [a.status_code for a in answers] == [503, 503, 503, 202]
    assert all(a.headers["retry-after"] == "30" for a in answers[:3])
    assert answers[0].json() == {"error": "stripe could not be read, retry later"}
    assert list(client.started) == ["q2c-qt_1Later"]


async def test_a_gateway_whose_stripe_key_is_refused_answers_503_not_a_refusal(
    settings: Settings, client: RecordingClient
):
    state = SandboxState()
    stripe_sandbox.accepted_quote(state, "qt_1WrongKey")
    event = stripe_sandbox.quote_event(state, "qt_1WrongKey")
    app = create_app(settings, client)  # type: ignore[arg-type]
    app.state.client = client
    app.state.stripe_quotes = stripe_sandbox.reader(state, api_key="sk_test_not_this_one")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
        with capture_logs() as logs:
            answer = await post_stripe(http, settings, event)
    assert answer.status_code == 503
    (logged,) = [e for e in logs if e["event"] == "stripe quote lines not read"]
    assert (logged["status"], logged["outcome"], logged["log_level"]) == (
        401,
        "configuration",
        "error",
    )
    assert client.started == {}


async def test_a_quote_the_key_cannot_see_answers_503_not_a_refusal(
    settings: Settings, client: RecordingClient
):
    # An event from an endpoint of another account (or mode) than the gateway's key: 404 at
    # Stripe. Fixing the key makes the redelivery work, so it is not refused.
    elsewhere = SandboxState()
    stripe_sandbox.accepted_quote(elsewhere, "qt_1Elsewhere")
    event = stripe_sandbox.quote_event(elsewhere, "qt_1Elsewhere")
    async with await gateway_for(settings, client, SandboxState()) as http:
        answer = await post_stripe(http, settings, event)
    assert answer.status_code == 503
    assert client.started == {}


async def test_without_a_stripe_client_the_gateway_cannot_read_lines_and_answers_503(
    settings: Settings, client: RecordingClient
):
    state = SandboxState()
    stripe_sandbox.accepted_quote(state, "qt_1NoReader")
    async with await gateway_for(settings, client) as http:  # lifespan not run: no reader
        answer = await post_stripe(
            http, settings, stripe_sandbox.quote_event(state, "qt_1NoReader")
        )
    assert answer.status_code == 503
    assert client.started == {}


async def test_stripe_refusals(settings: Settings, client: RecordingClient):
    state = SandboxState()
    stripe_sandbox.accepted_quote(state, "qt_1Refused")
    event = stripe_sandbox.quote_event(state, "qt_1Refused")
    quote = event["data"]["object"]
    stale = int(time.time()) - settings.webhook_tolerance_seconds - 5
    async with await gateway_for(settings, client, state) as http:
        wrong = await post_stripe(http, settings, event, secret="whsec_other")
        old = await post_stripe(http, settings, event, timestamp=stale)
        other_type = await post_stripe(
            http, settings, stripe_sandbox.quote_event(state, "qt_1Refused", "invoice.finalized")
        )
        unmappable = await post_stripe(
            http, settings, event | {"data": {"object": quote | {"metadata": {}}}}
        )
        no_id = await post_stripe(
            http,
            settings,
            event | {"data": {"object": {k: v for k, v in quote.items() if k != "id"}}},
        )
    assert (wrong.status_code, wrong.json()) == (401, {"error": "signature does not match"})
    assert old.status_code == 401
    assert "tolerance" in old.json()["error"]
    assert other_type.json() == {
        "status": "ignored",
        "event_id": other_type.json()["event_id"],
        "type": "invoice.finalized",
    }
    # The lines were read, the quote still cannot be booked: a refusal, not a redelivery.
    assert unmappable.status_code == 422
    fields = {f["field"] for f in unmappable.json()["fields"]}
    assert "data.object.metadata.crm_account_id" in fields
    assert (no_id.status_code, no_id.json()["fields"]) == (
        422,
        [{"field": "data.object.id", "message": "is required"}],
    )
    assert client.started == {}


def hubspot_batch() -> bytes:
    return json.dumps(
        [
            {
                "eventId": 100,
                "subscriptionId": 7,
                "portalId": 62515,
                "occurredAt": 1_800_000_000_000,
                "subscriptionType": "deal.propertyChange",
                "objectId": 1234,
                "propertyName": "dealstage",
                "propertyValue": "closedwon",
            }
        ]
    ).encode()


def hubspot_headers(settings: Settings, url: str, body: bytes) -> dict[str, str]:
    stamp = int(time.time() * 1000)
    signature = hubspot.sign(
        secret(settings.hubspot_client_secret),
        method="POST",
        url=url,
        body=body,
        timestamp_ms=stamp,
    )
    return {
        "content-type": "application/json",
        hubspot.SIGNATURE_HEADER: signature,
        hubspot.TIMESTAMP_HEADER: str(stamp),
    }


async def test_hubspot_is_verified_against_the_url_hubspot_called(
    settings: Settings, client: RecordingClient
):
    body = hubspot_batch()
    behind_proxy = settings.model_copy(update={"public_base_url": PUBLIC})
    async with await gateway_for(settings, client) as http:
        direct = await http.post(
            "/webhooks/hubspot",
            content=body,
            headers=hubspot_headers(settings, "http://gw/webhooks/hubspot", body),
        )
        public_only = await http.post(
            "/webhooks/hubspot",
            content=body,
            headers=hubspot_headers(settings, f"{PUBLIC}/webhooks/hubspot", body),
        )
    async with await gateway_for(behind_proxy, client) as http:
        proxied = await http.post(
            "/webhooks/hubspot",
            content=body,
            headers=hubspot_headers(settings, f"{PUBLIC}/webhooks/hubspot", body),
        )
        tampered = await http.post(
            "/webhooks/hubspot",
            content=body.replace(b"closedwon", b"closedlost"),
            headers=hubspot_headers(settings, f"{PUBLIC}/webhooks/hubspot", body),
        )
    assert direct.json() == {"status": "received", "events": 1}
    assert public_only.status_code == 401
    assert proxied.json() == {"status": "received", "events": 1}
    assert tampered.status_code == 401
    assert client.started == {}


async def test_salesforce_outbound_messages_need_an_allowed_organisation(
    settings: Settings, client: RecordingClient
):
    fields: dict[str, str | None] = {"Id": "a0x5g000000001AAA"}
    note = [("04l5g0000000001AAA", "SBQQ__Quote__c", fields)]
    async with await gateway_for(settings, client) as http:
        allowed = await http.post(
            "/webhooks/salesforce/outbound-message",
            content=salesforce.sample_outbound_message(ORG, note),
            headers={"content-type": "text/xml"},
        )
        stranger = await http.post(
            "/webhooks/salesforce/outbound-message",
            content=salesforce.sample_outbound_message("00D5g000009ZZZZEA4", note),
        )
        broken = await http.post("/webhooks/salesforce/outbound-message", content=b"<soap")
    assert allowed.status_code == 200
    assert allowed.headers["content-type"] == salesforce.ACK_CONTENT_TYPE
    assert b"<Ack>true</Ack>" in allowed.content
    assert (stranger.status_code, stranger.json()) == (401, {"error": "unknown organization"})
    assert broken.status_code == 400


async def test_unconfigured_or_unknown_sources_are_401_and_refusals_log_no_body(
    settings: Settings, client: RecordingClient
):
    bare = settings.model_copy(
        update={"stripe_webhook_secret": None, "hubspot_client_secret": None}
    )
    marker = "PII-ada.lovelace@example.com"
    body = json.dumps({"email": marker}).encode()
    async with await gateway_for(bare, client) as http:
        with capture_logs() as logs:
            answers = [
                await http.post(path, content=body)
                for path in (
                    "/webhooks/stripe",
                    "/webhooks/hubspot",
                    "/webhooks/zapier",
                    "/webhooks/cpq/quote-accepted",
                )
            ]
    assert [a.status_code for a in answers] == [401, 401, 401, 401]
    assert [a.json()["error"] for a in answers[:3]] == ["unknown source"] * 3
    refused = [e for e in logs if e["event"] == "webhook refused"]
    assert refused, logs
    assert marker not in repr(logs)
