"""Property test of every webhook endpoint: random and mutated bodies and headers never
produce a 5xx (except the 503 asking Stripe to deliver again when an authentic quote.accepted
names a quote the gateway's Stripe cannot read), and nothing starts unless the signature and
the payload are both valid."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from adapters.webhooks import cpq, hubspot, salesforce, stripe
from adapters.webhooks.stripe_quotes import MappingError, quote_from_stripe, with_line_items
from domain.quote import Quote
from revsync.gateway.app import create_app
from revsync.settings import Settings
from sandbox.app import SandboxState
from sandbox.quotes import quote_payload
from sandbox.stripe import StripeError
from tests.gateway import stripe_sandbox
from tests.gateway.test_intake import RecordingClient
from tests.staff import secret_settings

ORG = "00D5g000004ABCDEA4"
BASE_URL = "http://gw"
SETTINGS = Settings(**(secret_settings() | {"salesforce_org_ids": [ORG]}))
SECRETS = {
    "cpq": SETTINGS.cpq_webhook_secret.get_secret_value(),  # type: ignore[union-attr]
    "stripe": SETTINGS.stripe_webhook_secret.get_secret_value(),  # type: ignore[union-attr]
    "hubspot": SETTINGS.hubspot_client_secret.get_secret_value(),  # type: ignore[union-attr]
}
PATHS = {
    "cpq": "/webhooks/cpq/quote-accepted",
    "stripe": "/webhooks/stripe",
    "hubspot": "/webhooks/hubspot",
    "salesforce": "/webhooks/salesforce/outbound-message",
    "unknown": "/webhooks/zapier/anything",
}
# The Stripe the gateway reads quote lines from, holding the quote of the Stripe base event.
STRIPE = SandboxState()
stripe_sandbox.accepted_quote(STRIPE, "qt_1FuzzQuote")
BASES: dict[str, bytes] = {
    "cpq": json.dumps(quote_payload("Q-FUZZ-1")).encode(),
    "stripe": json.dumps(stripe_sandbox.quote_event(STRIPE, "qt_1FuzzQuote")).encode(),
    "hubspot": json.dumps(
        [
            {
                "eventId": 1,
                "subscriptionId": 2,
                "portalId": 3,
                "occurredAt": 1_800_000_000_000,
                "subscriptionType": "deal.propertyChange",
                "objectId": 4,
                "propertyName": "dealstage",
                "propertyValue": "closedwon",
            }
        ]
    ).encode(),
    "salesforce": salesforce.sample_outbound_message(
        ORG, [("04l5g0000000001AAA", "SBQQ__Quote__c", {"Id": "a0x5g000000001AAA"})]
    ),
    "unknown": b"{}",
}

APP = create_app(SETTINGS, RecordingClient())  # type: ignore[arg-type]


def signature_headers(source: str, body: bytes, how: str) -> dict[str, str]:
    """Headers for ``body`` signed ``how``: valid, with a wrong secret, stale, or garbage."""
    now = int(time.time())
    secret = "not-the-secret" if how == "wrong_secret" else SECRETS.get(source, "x")
    stamp = now - 3600 if how == "stale" else now
    if how == "garbage":
        return {
            cpq.SIGNATURE_HEADER: "t=,v1=zz",
            stripe.SIGNATURE_HEADER: "v1=\x00",
            hubspot.SIGNATURE_HEADER: "%%%",
            hubspot.TIMESTAMP_HEADER: "-1",
        }
    if source == "cpq":
        return {cpq.SIGNATURE_HEADER: cpq.sign(secret, body, stamp)}
    if source == "stripe":
        return {stripe.SIGNATURE_HEADER: stripe.sign(secret, body, stamp)}
    if source == "hubspot":
        url = BASE_URL + PATHS["hubspot"]
        signed = hubspot.sign(secret, method="POST", url=url, body=body, timestamp_ms=stamp * 1000)
        return {hubspot.SIGNATURE_HEADER: signed, hubspot.TIMESTAMP_HEADER: str(stamp * 1000)}
    return {}


def mutate(body: bytes, data: st.DataObject) -> bytes:
    how = data.draw(st.sampled_from(["keep", "flip", "truncate", "insert", "random"]))
    if how == "keep" or not body:
        return body
    if how == "random":
        return data.draw(st.binary(max_size=512))
    at = data.draw(st.integers(0, len(body) - 1))
    if how == "flip":
        return body[:at] + bytes([body[at] ^ data.draw(st.integers(1, 255))]) + body[at + 1 :]
    if how == "truncate":
        return body[:at]
    return body[:at] + data.draw(st.binary(min_size=1, max_size=16)) + body[at:]


def payload_is_valid(source: str, body: bytes) -> bool:
    try:
        if source == "cpq":
            Quote.model_validate(json.loads(body))
            return True
        if source == "stripe":
            event = stripe.parse_event(body)
            lines = STRIPE.stripe.list_quote_line_items(
                str(event.data.object.get("id")), {"limit": "100"}, upfront=False
            )["data"]
            quote_from_stripe(with_line_items(event.data.object, lines))
            return event.type == "quote.accepted"
    except (ValueError, ValidationError, MappingError, stripe.MalformedPayload, StripeError):
        return False
    return False


def stripe_cannot_read(body: bytes) -> bool:
    """An authentic quote.accepted whose quote the gateway's Stripe does not know (a mutated
    id): the line read fails, and the gateway asks Stripe to deliver again (503)."""
    try:
        event = stripe.parse_event(body)
    except (ValueError, ValidationError, stripe.MalformedPayload):
        return False
    quote_id = event.data.object.get("id")
    return (
        event.type == "quote.accepted"
        and isinstance(quote_id, str)
        and bool(quote_id.strip())
        and quote_id not in STRIPE.stripe.quotes
    )


async def deliver(path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    APP.state.stripe_quotes = stripe_sandbox.reader(STRIPE)
    transport = httpx.ASGITransport(app=APP)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        return await http.post(path, content=body, headers=headers)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    source=st.sampled_from(sorted(PATHS)),
    signing=st.sampled_from(["valid", "valid", "none", "wrong_secret", "stale", "garbage"]),
    data=st.data(),
    noise=st.dictionaries(
        st.sampled_from(["content-type", "x-forwarded-for", "content-encoding", "x-junk"]),
        st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
        max_size=3,
    ),
)
def test_no_delivery_crashes_or_starts_a_saga_it_should_not(
    source: str, signing: str, data: st.DataObject, noise: dict[str, str]
) -> None:
    client = RecordingClient()
    APP.state.client = client
    body = mutate(BASES[source], data)
    headers = noise | ({} if signing == "none" else signature_headers(source, body, signing))
    response = asyncio.run(deliver(PATHS[source], body, headers))

    authentic = signing == "valid" and source in ("cpq", "stripe", "hubspot")
    if response.status_code == 503 and source == "stripe" and authentic:
        assert stripe_cannot_read(body), response.text
    else:
        assert response.status_code < 500, response.text
    if source == "salesforce":
        # No signature: the organisation id inside the envelope is the check.
        authentic = ORG.encode() in body
    if not authentic:
        assert response.status_code in (400, 401, 413), (source, signing, response.text)
    if authentic and body == BASES[source] and source in ("hubspot", "salesforce"):
        assert response.status_code == 200, response.text  # received and acknowledged
    if client.started:
        assert authentic, (source, signing)
        assert payload_is_valid(source, body), (source, body)
    elif authentic and payload_is_valid(source, body):
        raise AssertionError(f"a valid {source} delivery started nothing: {response.text}")
