"""Every webhook answers on /v1/webhooks/... and, deprecated, on the old /webhooks/... path:
the same handlers, signatures verified on both (HubSpot's over the URL actually called)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from adapters.webhooks import cpq, salesforce, stripe
from revsync.gateway.versioning import (
    UNVERSIONED_DEPRECATED_AT,
    EventIgnored,
    EventsReceived,
    SagaAccepted,
)
from revsync.settings import Settings
from sandbox.app import SandboxState
from sandbox.quotes import quote_payload
from tests.gateway import stripe_sandbox
from tests.gateway.test_intake import RecordingClient
from tests.gateway.test_webhook_sources import (
    ORG,
    gateway_for,
    hubspot_batch,
    hubspot_headers,
    secret,
)

V1, OLD = "/v1/webhooks", "/webhooks"
BOTH = pytest.mark.parametrize("prefix", [V1, OLD])


async def post_cpq(http: httpx.AsyncClient, prefix: str, settings: Settings, quote_id: str):
    body = json.dumps(quote_payload(quote_id)).encode()
    header = cpq.sign(secret(settings.cpq_webhook_secret), body)
    return await http.post(
        f"{prefix}/cpq/quote-accepted",
        content=body,
        headers={"content-type": "application/json", cpq.SIGNATURE_HEADER: header},
    )


async def post_stripe(
    http: httpx.AsyncClient, prefix: str, settings: Settings, event: dict[str, Any]
) -> httpx.Response:
    body = json.dumps(event).encode()
    header = stripe.sign(secret(settings.stripe_webhook_secret), body)
    return await http.post(
        f"{prefix}/stripe",
        content=body,
        headers={"content-type": "application/json", stripe.SIGNATURE_HEADER: header},
    )


def assert_deprecated_on_old_path(response: httpx.Response, prefix: str, path: str) -> None:
    if prefix == V1:
        assert "deprecation" not in response.headers
        assert "link" not in response.headers
    else:
        assert response.headers["deprecation"] == f"@{int(UNVERSIONED_DEPRECATED_AT.timestamp())}"
        assert response.headers["link"] == f'<{V1}{path}>; rel="successor-version"'


@BOTH
async def test_a_signed_cpq_quote_starts_its_saga_on_either_path(
    prefix: str, settings: Settings, client: RecordingClient
):
    async with await gateway_for(settings, client) as http:
        response = await post_cpq(http, prefix, settings, "Q-paths-1")
    assert response.status_code == 202
    accepted = SagaAccepted.model_validate(response.json())
    assert (accepted.status, accepted.workflow_id) == ("started", "q2c-Q-paths-1")
    assert list(client.started) == ["q2c-Q-paths-1"]
    assert_deprecated_on_old_path(response, prefix, "/cpq/quote-accepted")


async def test_one_quote_on_both_paths_starts_one_saga(settings: Settings, client: RecordingClient):
    async with await gateway_for(settings, client) as http:
        old = await post_cpq(http, OLD, settings, "Q-paths-2")
        new = await post_cpq(http, V1, settings, "Q-paths-2")
    assert SagaAccepted.model_validate(old.json()).status == "started"
    assert SagaAccepted.model_validate(new.json()).status == "duplicate"
    assert list(client.started) == ["q2c-Q-paths-2"]


@BOTH
async def test_a_signed_stripe_event_is_verified_on_either_path(
    prefix: str, settings: Settings, client: RecordingClient
):
    state = SandboxState()
    stripe_sandbox.accepted_quote(state, "qt_1Paths")
    async with await gateway_for(settings, client, state) as http:
        accepted = await post_stripe(
            http, prefix, settings, stripe_sandbox.quote_event(state, "qt_1Paths")
        )
        other = await post_stripe(
            http,
            prefix,
            settings,
            stripe_sandbox.quote_event(state, "qt_1Paths", "invoice.finalized"),
        )
    assert accepted.status_code == 202
    assert SagaAccepted.model_validate(accepted.json()).workflow_id == "q2c-qt_1Paths"
    assert EventIgnored.model_validate(other.json()).type == "invoice.finalized"
    assert_deprecated_on_old_path(accepted, prefix, "/stripe")


@BOTH
async def test_hubspot_verifies_the_url_it_called_on_either_path(
    prefix: str, settings: Settings, client: RecordingClient
):
    body = hubspot_batch()
    other = OLD if prefix == V1 else V1
    async with await gateway_for(settings, client) as http:
        signed_here = await http.post(
            f"{prefix}/hubspot",
            content=body,
            headers=hubspot_headers(settings, f"http://gw{prefix}/hubspot", body),
        )
        signed_for_the_other_path = await http.post(
            f"{prefix}/hubspot",
            content=body,
            headers=hubspot_headers(settings, f"http://gw{other}/hubspot", body),
        )
    assert signed_here.status_code == 200
    assert EventsReceived.model_validate(signed_here.json()).events == 1
    assert signed_for_the_other_path.status_code == 401
    assert signed_for_the_other_path.json()["error"] == "signature does not match"
    assert_deprecated_on_old_path(signed_here, prefix, "/hubspot")
    assert_deprecated_on_old_path(signed_for_the_other_path, prefix, "/hubspot")


@BOTH
async def test_salesforce_outbound_messages_are_acknowledged_on_either_path(
    prefix: str, settings: Settings, client: RecordingClient
):
    fields: dict[str, str | None] = {"Id": "a0x5g000000001AAA"}
    note = [("04l5g0000000001AAA", "SBQQ__Quote__c", fields)]
    async with await gateway_for(settings, client) as http:
        allowed = await http.post(
            f"{prefix}/salesforce/outbound-message",
            content=salesforce.sample_outbound_message(ORG, note),
            headers={"content-type": "text/xml"},
        )
    assert allowed.status_code == 200
    assert b"<Ack>true</Ack>" in allowed.content
    assert_deprecated_on_old_path(allowed, prefix, "/salesforce/outbound-message")


@BOTH
async def test_refusals_are_the_same_on_either_path(
    prefix: str, settings: Settings, client: RecordingClient
):
    async with await gateway_for(settings, client) as http:
        unknown = await http.post(f"{prefix}/zapier", content=b"{}")
        unsigned = await http.post(f"{prefix}/cpq/quote-accepted", json=quote_payload("Q-x"))
    assert (unknown.status_code, unknown.json()["error"]) == (401, "unknown source")
    assert unsigned.status_code == 401
    assert_deprecated_on_old_path(unknown, prefix, "/zapier")
    assert_deprecated_on_old_path(unsigned, prefix, "/cpq/quote-accepted")
    assert client.started == {}
