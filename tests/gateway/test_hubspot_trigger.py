"""HubSpot's closed-won trigger end to end in process: the gateway app (httpx.ASGITransport),
the sandbox as HubSpot, a real Temporal dev server. A signed deal.propertyChange to the
closed-won stage starts quote-to-cash with the deal as the canonical quote."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from adapters.webhooks import hubspot as signatures
from domain.saga import QuoteToCashInput
from revsync.gateway.app import create_app
from revsync.gateway.hubspot_trigger import MAX_MAPPING_ATTEMPTS
from revsync.gateway.versioning import DealsAccepted, EventsReceived
from revsync.settings import Settings
from sandbox.app import DEFAULT_TOKENS, SandboxState
from sandbox.app import create_app as create_sandbox
from sandbox.hubspot import COMPANY_IDS, HubSpotStore, create_deal
from tests.conftest import installed_binary
from tests.staff import secret_settings
from workflows import visibility

SECRET = "hubspot-app-secret"
URL = "http://gw/v1/webhooks/hubspot"
HUBSPOT = "http://sandbox/hubspot"
COMPANY = COMPANY_IDS["0015e00000ThamGB1"]


@pytest.fixture(scope="module")
async def temporal() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=installed_binary("temporal"),
        search_attributes=list(visibility.ALL_KEYS),
        dev_server_extra_args=["--headless"],
    )
    try:
        yield env
    finally:
        await env.shutdown()


_first_ids = itertools.count(52_000_000_001, 1_000)


@pytest.fixture
def state() -> SandboxState:
    """A fresh sandbox whose HubSpot ids differ from every other test's: the Temporal
    server (and its workflow ids) is shared by the module."""
    sandbox = SandboxState()
    sandbox.hubspot = HubSpotStore(first_id=next(_first_ids))
    return sandbox


@pytest.fixture
async def hubspot(state: SandboxState) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_sandbox(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        yield client


@pytest.fixture
async def gateway(
    temporal: WorkflowEnvironment, hubspot: httpx.AsyncClient
) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        **(secret_settings() | {"hubspot_client_secret": SECRET}),
        crm="hubspot",
        hubspot_base_url=HUBSPOT,
    )
    app = create_app(settings, temporal.client, http=hubspot)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
            yield http


def event(deal_id: str, value: str = "closedwon", **extra: Any) -> dict[str, Any]:
    return {
        "eventId": 1937471530,
        "subscriptionId": 2840512,
        "portalId": 62515,
        "appId": 1160452,
        "occurredAt": int(time.time() * 1000),
        "subscriptionType": "deal.propertyChange",
        "attemptNumber": 0,
        "objectId": int(deal_id),
        "propertyName": "dealstage",
        "propertyValue": value,
        "changeSource": "CRM_UI",
        **extra,
    }


async def deliver(
    gateway: httpx.AsyncClient, events: list[dict[str, Any]], secret: str = SECRET
) -> httpx.Response:
    body = json.dumps(events).encode()
    stamp = int(time.time() * 1000)
    signature = signatures.sign(secret, method="POST", url=URL, body=body, timestamp_ms=stamp)
    return await gateway.post(
        "/v1/webhooks/hubspot",
        content=body,
        headers={
            "content-type": "application/json",
            signatures.SIGNATURE_HEADER: signature,
            signatures.TIMESTAMP_HEADER: str(stamp),
        },
    )


async def new_deal(hubspot: httpx.AsyncClient, **kwargs: Any) -> str:
    return await create_deal(
        hubspot,
        HUBSPOT,
        DEFAULT_TOKENS["hubspot"],
        COMPANY,
        currency="GBP",
        lines=kwargs.pop("lines", [("PLAT-CORE", "12", "5"), ("TRAINING-DAY", "2", "0")]),
        **kwargs,
    )


async def started_input(client: Client, deal_id: str) -> QuoteToCashInput:
    handle = client.get_workflow_handle(visibility.workflow_id_for_quote(deal_id))
    history = await handle.fetch_history()
    started = [
        e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
    ]
    payloads = started[0].workflow_execution_started_event_attributes.input.payloads
    (arg,) = await client.data_converter.decode(payloads, [QuoteToCashInput])
    assert isinstance(arg, QuoteToCashInput)
    return arg


async def runs(client: Client, deal_id: str) -> int:
    workflow_id = visibility.workflow_id_for_quote(deal_id)
    count = 0
    async for _ in client.list_workflows(f'WorkflowId = "{workflow_id}"'):
        count += 1
    return count


async def test_a_closed_won_deal_starts_the_saga_once_with_the_mapped_quote(
    gateway: httpx.AsyncClient, hubspot: httpx.AsyncClient, temporal: WorkflowEnvironment
) -> None:
    deal_id = await new_deal(hubspot)
    answer = await deliver(gateway, [event(deal_id)])
    assert answer.status_code == 202, answer.text
    body = answer.json()
    DealsAccepted.model_validate(body)  # the published 202 answer
    workflow_id = visibility.workflow_id_for_quote(deal_id)
    assert body["status"] == "started"
    assert body["deals"] == [{"deal_id": deal_id, "status": "started", "workflow_id": workflow_id}]

    quote = (await started_input(temporal.client, deal_id)).quote
    assert (quote.quote_id, quote.account_id, quote.currency) == (deal_id, COMPANY, "GBP")
    assert [(line.sku, line.quantity, line.unit_price) for line in quote.lines] == [
        ("PLAT-CORE", Decimal(12), Decimal("36.00")),
        ("TRAINING-DAY", Decimal(2), Decimal("950.00")),
    ]
    assert quote.lines[0].discount_percent == Decimal(5)
    assert quote.total == Decimal("2310.40")  # 12 x 36 x 0.95 + 2 x 950

    # HubSpot redelivers (a retry, or the same deal twice in one batch): nothing new.
    again = await deliver(gateway, [event(deal_id, attemptNumber=1), event(deal_id)])
    assert again.status_code == 200, again.text
    received = EventsReceived.model_validate(again.json())  # the published 200 answer
    assert (received.status, received.events) == ("received", 2)
    assert again.json()["deals"] == [
        {"deal_id": deal_id, "status": "duplicate", "workflow_id": workflow_id}
    ]
    assert await runs(temporal.client, deal_id) == 1


async def test_another_stage_change_is_acknowledged_and_starts_nothing(
    gateway: httpx.AsyncClient, hubspot: httpx.AsyncClient, temporal: WorkflowEnvironment
) -> None:
    deal_id = await new_deal(hubspot, stage="contractsent")
    answer = await deliver(gateway, [event(deal_id, "contractsent")])
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": "received", "events": 1}
    handle = temporal.client.get_workflow_handle(visibility.workflow_id_for_quote(deal_id))
    with pytest.raises(RPCError) as missing:
        await handle.describe()
    assert missing.value.status == RPCStatusCode.NOT_FOUND


async def test_a_bad_signature_is_refused(
    gateway: httpx.AsyncClient, hubspot: httpx.AsyncClient, temporal: WorkflowEnvironment
) -> None:
    deal_id = await new_deal(hubspot)
    answer = await deliver(gateway, [event(deal_id)], secret="not-the-app-secret")
    assert answer.status_code == 401
    assert await runs(temporal.client, deal_id) == 0


async def test_an_unmappable_deal_is_422_naming_the_field_until_the_attempts_run_out(
    gateway: httpx.AsyncClient,
    hubspot: httpx.AsyncClient,
    temporal: WorkflowEnvironment,
    state: SandboxState,
) -> None:
    deal_id = await new_deal(hubspot)
    (item_id,) = [
        i
        for i, r in state.hubspot.records["line_items"].items()
        if r["properties"]["hs_sku"] == "TRAINING-DAY"
    ]
    state.hubspot.records["line_items"][item_id]["properties"]["recurringbillingfrequency"] = (
        "quarterly"
    )
    answer = await deliver(gateway, [event(deal_id)])
    assert answer.status_code == 422, answer.text
    fields = answer.json()["fields"]
    assert [f["field"] for f in fields] == [
        f"deals.{deal_id}.line_items.1.properties.recurringbillingfrequency"
    ]

    last = await deliver(gateway, [event(deal_id, attemptNumber=MAX_MAPPING_ATTEMPTS - 1)])
    assert last.status_code == 200, last.text
    unmappable = EventsReceived.model_validate(last.json())
    assert unmappable.deals is not None
    assert unmappable.deals[0].status == "unmappable"
    assert unmappable.deals[0].fields == fields
    assert await runs(temporal.client, deal_id) == 0


async def test_a_transient_read_failure_asks_hubspot_to_deliver_again(
    gateway: httpx.AsyncClient, hubspot: httpx.AsyncClient, temporal: WorkflowEnvironment
) -> None:
    deal_id = await new_deal(hubspot)
    faults = {"faults": [{"vendor": "hubspot", "operation": "get", "status": 502}]}
    assert (await hubspot.post("/_sandbox/faults", json=faults)).status_code == 200
    answer = await deliver(gateway, [event(deal_id)])
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"]
    assert await runs(temporal.client, deal_id) == 0

    retried = await deliver(gateway, [event(deal_id, attemptNumber=1)])
    assert retried.status_code == 202, retried.text


async def test_with_another_crm_a_closed_won_deal_is_only_acknowledged(
    temporal: WorkflowEnvironment, hubspot: httpx.AsyncClient
) -> None:
    settings = Settings(
        **(secret_settings() | {"hubspot_client_secret": SECRET}), hubspot_base_url=HUBSPOT
    )
    assert settings.crm == "salesforce"
    deal_id = await new_deal(hubspot)
    app = create_app(settings, temporal.client, http=hubspot)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as gateway:
            answer = await deliver(gateway, [event(deal_id)])
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": "received", "events": 1}
    assert await runs(temporal.client, deal_id) == 0
