"""HubSpot as the CRM, end to end: a deal moved to closed-won in HubSpot (the sandbox) is
booked by quote-to-cash unchanged (gateway over real HTTP, real dev server, every worker):
ERP sales order and billing subscription for the HubSpot company, the order upserted into
HubSpot's orders object and associated, the deal marked ordered."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest

from adapters.webhooks import hubspot as signatures
from domain.stages import OrderStage
from revsync.demo import wait_for_saga
from revsync.settings import secret_list
from sandbox.hubspot import COMPANY_IDS, create_deal
from tests.e2e.stack import Stack, running_stack
from workflows import visibility

pytestmark = pytest.mark.e2e

COMPANY = COMPANY_IDS["0015e00000NordDE1"]


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    async with running_stack(vendors={"crm": "hubspot"}) as running:
        yield running


async def test_a_closed_won_deal_is_booked_in_every_system(stack: Stack) -> None:
    settings = stack.settings
    async with httpx.AsyncClient() as http:
        deal_id = await create_deal(
            http,
            settings.hubspot_base_url,
            settings.hubspot_access_token.get_secret_value(),
            COMPANY,
            currency="EUR",
            lines=[("PLAT-CORE", "20", "10"), ("ONBOARD-STD", "1", "0")],
        )
    body = json.dumps(
        [
            {
                "eventId": 1,
                "subscriptionId": 2,
                "portalId": 62515,
                "occurredAt": int(time.time() * 1000),
                "subscriptionType": "deal.propertyChange",
                "attemptNumber": 0,
                "objectId": int(deal_id),
                "propertyName": "dealstage",
                "propertyValue": "closedwon",
            }
        ]
    ).encode()
    stamp = int(time.time() * 1000)
    secret = secret_list(settings.hubspot_client_secret)[0]
    url = f"{stack.gateway_url}/v1/webhooks/hubspot"
    answer = await stack.gateway.post(
        "/v1/webhooks/hubspot",
        content=body,
        headers={
            "content-type": "application/json",
            signatures.SIGNATURE_HEADER: signatures.sign(
                secret, method="POST", url=url, body=body, timestamp_ms=stamp
            ),
            signatures.TIMESTAMP_HEADER: str(stamp),
        },
    )
    assert answer.status_code == 202, answer.text

    workflow_id = visibility.workflow_id_for_quote(deal_id)
    status = await wait_for_saga(stack.client, workflow_id, time.monotonic() + 90)
    assert status is not None
    assert status.stage is OrderStage.BOOKED, status

    state = stack.sandbox.state.snapshot()
    (order,) = [
        o for o in state["hubspot"]["orders"] if o["properties"]["revsync_quote_id"] == deal_id
    ]
    assert order["id"] == status.crm_order_id
    assert order["properties"]["revsync_erp_order_id"] == status.erp_order_id
    assert order["properties"]["revsync_billing_subscription_id"] == status.subscription_id
    assert Decimal(order["properties"]["hs_total_price"]) == status.amount
    deal = state["hubspot"]["deals"]
    (deal_record,) = [d for d in deal if d["id"] == deal_id]
    assert deal_record["properties"]["revsync_status"] == "Ordered"
    (erp_order,) = [
        o for o in state["netsuite"]["salesOrders"] if str(o["id"]) == status.erp_order_id
    ]
    assert Decimal(str(erp_order["total"])) == status.amount
