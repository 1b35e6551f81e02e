"""Partial failure on the real stack: sandbox faults → adapters → classifier → saga."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest

from domain.approval import Approver, ApproverRole
from domain.quote import Quote
from domain.saga import (
    ApproveRequest,
    QuoteToCashInput,
    ResolveAction,
    ResolveRequest,
    SagaPolicy,
    Step,
)
from domain.stages import OrderStage
from revsync.operations import decide, stuck_orders
from sandbox.faults import FaultRule, FaultsRequest
from tests.e2e.stack import Stack
from tests.e2e.test_quote_to_cash_e2e import deliver, finished, new_quote, records
from workflows import visibility
from workflows.quote_to_cash import QuoteToCashWorkflow

pytestmark = pytest.mark.e2e


def inject(stack: Stack, *rules: FaultRule) -> None:
    stack.sandbox.state.faults.configure(FaultsRequest(faults=list(rules)))


async def stage_of(stack: Stack, quote_id: str, stage: OrderStage, seconds: float = 60) -> Any:
    handle = stack.client.get_workflow_handle_for(
        QuoteToCashWorkflow.run, visibility.workflow_id_for_quote(quote_id)
    )
    deadline = time.monotonic() + seconds
    while True:
        status = await handle.query(QuoteToCashWorkflow.status)
        if status.stage is stage:
            return status
        assert time.monotonic() < deadline, f"stayed {status.stage}: {status}"
        await asyncio.sleep(0.2)


async def parked_at_crm_write_back(stack: Stack) -> str:
    """A booked order whose CRM write-back Salesforce refuses: the saga parks at update_crm.
    Returns the quote id."""
    payload = await new_quote(stack, "0015e00000NordDE1")
    inject(
        stack,
        FaultRule(
            vendor="salesforce",
            operation="update",
            status=400,
            code="FIELD_CUSTOM_VALIDATION_EXCEPTION",
            message="Order needs a signed contract",
        ),
    )
    assert (await deliver(stack, payload)).status_code == 202
    quote_id = str(payload["quote_id"])
    parked = await stage_of(stack, quote_id, OrderStage.NEEDS_ATTENTION)
    assert parked.parked.step is Step.UPDATE_CRM
    return quote_id


async def test_a_billing_outage_that_heals_books_the_order(stack: Stack):
    payload = await new_quote(stack, "0015e00000AcmeUS1")
    inject(stack, FaultRule(vendor="stripe", operation="*", status=503, times=3))
    assert (await deliver(stack, payload)).status_code == 202
    status = await finished(stack, payload["quote_id"])
    assert status.stage is OrderStage.BOOKED, status
    found = records(stack, payload["quote_id"])
    assert len(found["subscriptions"]) == 1
    assert len(found["erp_orders"]) == 1


async def test_a_billing_rejection_cancels_the_erp_order(stack: Stack):
    payload = await new_quote(stack, "0015e00000ThamGB1")
    inject(
        stack,
        FaultRule(
            vendor="stripe",
            operation="create_subscription",
            status=402,
            code="card_declined",
            message="Your card was declined.",
        ),
    )
    assert (await deliver(stack, payload)).status_code == 202
    status = await finished(stack, payload["quote_id"])
    assert status.stage is OrderStage.COMPENSATED, status
    assert "declined" in (status.reason or "")
    found = records(stack, payload["quote_id"])
    (order,) = found["erp_orders"]
    # Booked approved (Pending Fulfillment), so NetSuite closes it line by line: "Closed".
    assert order["orderStatus"] == "H"
    assert all(line["isClosed"] for line in order["item"])
    assert [s for s in found["subscriptions"] if s["status"] != "canceled"] == []
    (crm_quote,) = found["crm_quotes"]
    assert crm_quote["SBQQ__Status__c"] == "Rejected"


async def test_a_parked_order_is_listed_as_stuck_and_retry_books_it(stack: Stack):
    quote_id = await parked_at_crm_write_back(stack)

    # Visibility is eventually consistent: poll briefly.
    deadline = time.monotonic() + 15
    listed: list[str] = []
    while quote_id not in listed and time.monotonic() < deadline:
        orders = await stuck_orders(stack.client, older_than=timedelta(hours=1))
        listed = [o.quote_id for o in orders]
        await asyncio.sleep(0.3)
    assert quote_id in listed
    (order,) = [o for o in orders if o.quote_id == quote_id]
    assert order.stage == "NEEDS_ATTENTION"
    assert order.blocked_step == "update_crm"
    ids = [
        wf.id
        async for wf in stack.client.list_workflows(
            f'OrderStage="NEEDS_ATTENTION" AND BlockedStep="update_crm" AND QuoteId="{quote_id}"'
        )
    ]
    assert ids == [f"q2c-{quote_id}"]

    await decide(
        stack.client,
        quote_id,
        ResolveRequest(action=ResolveAction.RETRY, operator="lena.ops", note="contract signed"),
    )
    status = await finished(stack, quote_id)
    assert status.stage is OrderStage.BOOKED
    assert records(stack, quote_id)["crm_quotes"][0]["SBQQ__Status__c"] == "Ordered"
    handle = stack.client.get_workflow_handle(f"q2c-{quote_id}")
    assert (await handle.describe()).typed_search_attributes.get(visibility.BLOCKED_STEP) is None


async def test_a_discounted_quote_waits_for_approval_then_books(stack: Stack):
    payload = await new_quote(stack, "0015e00000AcmeUS1")
    payload["lines"][0]["discount_percent"] = "30"
    assert (await deliver(stack, payload)).status_code == 202
    waiting = await stage_of(stack, payload["quote_id"], OrderStage.AWAITING_APPROVAL)
    assert waiting.approval.required_role is ApproverRole.SALES_MANAGER
    assert records(stack, payload["quote_id"])["erp_orders"] == []
    await decide(
        stack.client,
        payload["quote_id"],
        ApproveRequest(approver=Approver(name="sam.manager", role=ApproverRole.SALES_MANAGER)),
    )
    status = await finished(stack, payload["quote_id"])
    assert status.stage is OrderStage.BOOKED


async def test_a_vendor_down_past_the_step_budget_parks_saying_what_failed_last(stack: Stack):
    """The real workers' budget (workers/attempts.py): retrying stops once the step's budget
    is spent, and the parked reason carries the vendor's last failure."""
    payload = await new_quote(stack, "0015e00000AcmeUS1")
    quote = Quote.model_validate(payload)
    inject(
        stack,
        FaultRule(
            vendor="stripe",
            operation="create_subscription",
            status=503,
            times=1000,
            message="stripe is down",
        ),
    )
    try:
        await stack.client.start_workflow(
            QuoteToCashWorkflow.run,
            QuoteToCashInput(
                quote=quote, policy=SagaPolicy(step_retry_budget=timedelta(seconds=4))
            ),
            id=visibility.workflow_id_for_quote(quote.quote_id),
            task_queue="orchestration",
            search_attributes=visibility.start_attributes(quote, quote.accepted_at),
        )
        parked = await stage_of(stack, quote.quote_id, OrderStage.NEEDS_ATTENTION)
    finally:
        stack.sandbox.state.faults.clear()
    assert parked.parked.step is Step.PROVISION_BILLING
    assert parked.parked.reason.startswith("gave up after retrying for 0:00:04: ")
    assert "stripe is down" in parked.parked.reason


async def test_a_spent_salesforce_quota_waits_minutes_and_says_so_in_the_pending_activity(
    stack: Stack,
):
    payload = await new_quote(stack, "0015e00000NordDE1")
    allocation = stack.sandbox.state.salesforce.api_allocation
    allocation.set(1000, used=1000)  # the org's 24-hour allocation, spent by everyone
    handle = stack.client.get_workflow_handle(f"q2c-{payload['quote_id']}")
    try:
        assert (await deliver(stack, payload)).status_code == 202
        deadline = time.monotonic() + 60
        message = ""
        while not message.startswith("Salesforce"):
            assert time.monotonic() < deadline, "no pending activity with a failure"
            await asyncio.sleep(0.3)
            pending = (await handle.describe()).raw_description.pending_activities
            if pending and pending[0].HasField("last_failure"):
                # Failure messages are encrypted in history; the Web UI decodes them through
                # the codec server, as the client's converter does here.
                failure = await stack.client.data_converter.decode_failure(pending[0].last_failure)
                message = str(getattr(failure, "message", failure))
        # What the Web UI shows on the pending activity: why it waits, and for how long.
        assert message.startswith(
            "Salesforce daily API request limit exhausted; next attempt in 5 minutes"
        ), message
        assert "REQUEST_LIMIT_EXCEEDED" in message
        status = await handle.query(QuoteToCashWorkflow.status)
        assert status.stage is OrderStage.VALIDATING  # waiting, neither rejected nor parked
        assert allocation.refused == 1  # one call in those minutes, not a retry storm
    finally:
        allocation.set(None)
        await handle.terminate("test over: the quota path is checked")
