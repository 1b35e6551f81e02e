"""Webhook → gateway → real Temporal dev server → workers → adapters → vendor sandbox."""

from __future__ import annotations

import json
import random
import time
from decimal import Decimal
from typing import Any

import httpx
import pytest

from adapters.webhooks import cpq
from domain.saga import QuoteToCashStatus
from domain.stages import OrderStage
from revsync.demo import create_crm_quote, wait_for_saga
from revsync.settings import secret_list
from sandbox.quotes import quote_payload
from tests.e2e.stack import Stack
from workflows import visibility

pytestmark = pytest.mark.e2e


async def deliver(stack: Stack, payload: dict[str, Any]) -> httpx.Response:
    body = json.dumps(payload).encode()
    secret = secret_list(stack.settings.cpq_webhook_secret)[0]
    return await stack.gateway.post(
        "/webhooks/cpq/quote-accepted",
        content=body,
        headers={"content-type": "application/json", cpq.SIGNATURE_HEADER: cpq.sign(secret, body)},
    )


async def new_quote(
    stack: Stack, account_id: str, rng: random.Random | None = None
) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        quote_id = await create_crm_quote(http, stack.settings, account_id)
    return quote_payload(quote_id, account_id=account_id, rng=rng)


async def finished(stack: Stack, quote_id: str, seconds: float = 60) -> QuoteToCashStatus:
    status = await wait_for_saga(
        stack.client, visibility.workflow_id_for_quote(quote_id), time.monotonic() + seconds
    )
    assert status is not None
    return status


def records(stack: Stack, quote_id: str) -> dict[str, list[dict[str, Any]]]:
    """Every record any system holds for ``quote_id``."""
    state = stack.sandbox.state.snapshot()
    key = f"q2c-{quote_id}"

    def mentions(record: dict[str, Any]) -> bool:
        text = json.dumps(record, default=str)
        return key in text or quote_id in text

    return {
        "erp_orders": [o for o in state["netsuite"]["salesOrders"] if mentions(o)],
        "subscriptions": [s for s in state["stripe"]["subscriptions"] if mentions(s)],
        "crm_orders": [o for o in state["salesforce"]["orders"] if mentions(o)],
        "crm_quotes": [q for q in state["salesforce"]["quotes"] if q.get("Id") == quote_id],
    }


async def test_a_quote_delivered_three_times_is_booked_once_in_every_system(stack: Stack):
    payload = await new_quote(stack, "0015e00000NordDE1")
    verdicts = [(await deliver(stack, payload)).json()["status"] for _ in range(3)]
    assert verdicts == ["started", "duplicate", "duplicate"]

    status = await finished(stack, payload["quote_id"])
    assert status.stage is OrderStage.BOOKED, status
    # A delivery after the saga ended starts nothing either.
    assert (await deliver(stack, payload)).json()["status"] == "duplicate"

    found = records(stack, payload["quote_id"])
    assert len(found["erp_orders"]) == 1
    assert len(found["subscriptions"]) == 1
    assert len(found["crm_orders"]) == 1
    (erp_order,) = found["erp_orders"]
    (subscription,) = found["subscriptions"]
    (crm_order,) = found["crm_orders"]
    (crm_quote,) = found["crm_quotes"]

    # The three systems agree with each other and with the saga's status.
    assert str(erp_order["id"]) == status.erp_order_id
    assert subscription["id"] == status.subscription_id
    assert crm_order["Id"] == status.crm_order_id
    assert crm_order["ERP_Order_Id__c"] == status.erp_order_id
    assert crm_order["Billing_Subscription_Id__c"] == status.subscription_id
    assert crm_quote["SBQQ__Status__c"] == "Ordered"
    assert Decimal(str(erp_order["total"])) == status.amount
    assert subscription["currency"] == "eur"


async def test_search_attributes_let_finance_ops_find_booked_orders(stack: Stack):
    payload = await new_quote(stack, "0015e00000AcmeUS1")
    assert (await deliver(stack, payload)).status_code == 202
    status = await finished(stack, payload["quote_id"])
    assert status.stage is OrderStage.BOOKED

    handle = stack.client.get_workflow_handle(visibility.workflow_id_for_quote(payload["quote_id"]))
    description = await handle.describe()
    attrs = description.typed_search_attributes
    assert attrs.get(visibility.ORDER_STAGE) == "BOOKED"
    assert attrs.get(visibility.QUOTE_ID) == payload["quote_id"]
    assert attrs.get(visibility.CUSTOMER_ID) == "0015e00000AcmeUS1"
    assert attrs.get(visibility.CURRENCY) == "USD"
    assert attrs.get(visibility.ORDER_AMOUNT) == float(status.amount)
    assert attrs.get(visibility.BLOCKED_STEP) is None
    summary = await description.static_summary()
    assert summary is not None
    assert payload["quote_id"] in summary

    query = f'OrderStage="BOOKED" AND QuoteId="{payload["quote_id"]}"'
    deadline = time.monotonic() + 10
    found: list[str] = []
    while not found and time.monotonic() < deadline:  # visibility is eventually consistent
        found = [wf.id async for wf in stack.client.list_workflows(query)]
    assert found == [f"q2c-{payload['quote_id']}"]


async def test_a_catalog_mismatch_is_rejected_and_nothing_is_booked(stack: Stack):
    payload = await new_quote(stack, "0015e00000ThamGB1")
    payload["lines"][0]["unit_price"] = "1.00"
    assert (await deliver(stack, payload)).status_code == 202
    status = await finished(stack, payload["quote_id"])
    assert status.stage is OrderStage.REJECTED
    found = records(stack, payload["quote_id"])
    assert found["erp_orders"] == []
    assert found["subscriptions"] == []
    assert found["crm_quotes"][0]["SBQQ__Status__c"] == "Rejected"


async def test_varied_quotes_all_book_with_exact_totals(stack: Stack):
    rng = random.Random(7)
    payloads = [
        await new_quote(stack, account, rng)
        for account in ("0015e00000SakuJP1", "0015e00000MapleCA", "0015e00000NordDE1")
    ]
    for payload in payloads:
        assert (await deliver(stack, payload)).status_code == 202
    for payload in payloads:
        status = await finished(stack, payload["quote_id"])
        assert status.stage is OrderStage.BOOKED, status
        (erp_order,) = records(stack, payload["quote_id"])["erp_orders"]
        assert Decimal(str(erp_order["total"])) == status.amount


async def test_a_bookings_steps_go_first_in_a_backlogged_queue(stack: Stack):
    """Every step of a booking is scheduled with the booking priority (2), ahead of revenue
    journals (4) and reconciliation reads (5) where a vendor's queue has a backlog."""
    payload = await new_quote(stack, "0015e00000AcmeUS1")
    assert (await deliver(stack, payload)).status_code == 202
    assert (await finished(stack, payload["quote_id"])).stage is OrderStage.BOOKED
    history = await stack.client.get_workflow_handle(f"q2c-{payload['quote_id']}").fetch_history()
    scheduled = [
        event.activity_task_scheduled_event_attributes
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
    ]
    steps = [s for s in scheduled if s.task_queue.name in ("crm", "erp", "billing")]
    assert len(steps) >= 5
    assert {s.priority.priority_key for s in steps} == {2}
