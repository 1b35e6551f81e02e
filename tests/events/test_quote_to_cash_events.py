"""Quote-to-cash publishes its outcome as business events (time-skipping, fake activities)."""

from __future__ import annotations

from typing import Any

from temporalio.testing import WorkflowEnvironment

from domain.contracts import Activity
from domain.events import QuoteBookedEvent, QuoteRejectedEvent, event_id
from domain.saga import ResolveAction, ResolveRequest, Step
from domain.stages import OrderStage
from tests.workflows.fakes import FakeSystems, rejected, running_workers, transient
from tests.workflows.test_parking_and_approvals import reach
from tests.workflows.test_quote_to_cash import new_quote, run_saga, start
from workflows.publishing import SCHEMA_BASE
from workflows.quote_to_cash import QuoteToCashWorkflow


def types(published: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in published]


async def test_a_booked_quote_publishes_exactly_quote_booked_with_its_stable_id(
    time_skipping_env: WorkflowEnvironment,
):
    fakes = FakeSystems()
    quote = new_quote()
    status = await run_saga(time_skipping_env, fakes, quote)
    assert status.stage is OrderStage.BOOKED

    (event,) = fakes.published
    booked = QuoteBookedEvent.model_validate(event)
    assert booked.id == event_id(f"q2c-{quote.quote_id}", "quote.booked")
    assert booked.subject == quote.quote_id
    assert booked.time == status.stage_since
    assert booked.data.erp_order_id == status.erp_order_id
    assert booked.data.subscription_id == status.subscription_id
    assert booked.data.amount == quote.total
    assert booked.dataschema == f"{SCHEMA_BASE}/events/quote.booked.v1.json"


async def test_a_rejected_quote_publishes_quote_rejected(time_skipping_env: WorkflowEnvironment):
    fakes = FakeSystems()
    fakes.fail_with(Activity.CRM_FETCH_ACCOUNT, rejected("account is on credit hold"))
    quote = new_quote()
    status = await run_saga(time_skipping_env, fakes, quote)
    assert status.stage is OrderStage.REJECTED

    (event,) = fakes.published
    refused = QuoteRejectedEvent.model_validate(event)
    assert refused.id == event_id(f"q2c-{quote.quote_id}", "quote.rejected")
    assert refused.data.failed_step == Step.FETCH_ACCOUNT.value
    assert "credit hold" in refused.data.reason


async def test_a_compensated_order_publishes_order_compensated(
    time_skipping_env: WorkflowEnvironment,
):
    fakes = FakeSystems()
    fakes.fail_with(Activity.BILLING_PROVISION_SUBSCRIPTION, rejected("card declined"))
    status = await run_saga(time_skipping_env, fakes, new_quote())
    assert status.stage is OrderStage.COMPENSATED
    assert types(fakes.published) == ["com.revsync.order.compensated.v1"]
    undone = fakes.published[0]["data"]["undone"]
    assert [u["step"] for u in undone] == [Step.CANCEL_ERP_ORDER.value]


async def test_the_saga_ends_only_once_its_event_is_delivered(
    time_skipping_env: WorkflowEnvironment,
):
    fakes = FakeSystems()
    fakes.fail_with(Activity.EVENTS_PUBLISH, *(transient("subscriber down") for _ in range(4)))
    quote = new_quote()
    async with running_workers(time_skipping_env.client, fakes):
        handle = await start(time_skipping_env.client, quote)
        status = await handle.result()
    # Four failed deliveries (backing off 1+2+4+8 s), then the fifth went through.
    assert status.stage is OrderStage.BOOKED
    assert types(fakes.published) == ["com.revsync.quote.booked.v1"]
    assert fakes.failures[Activity.EVENTS_PUBLISH] == []


async def test_a_parked_saga_publishes_order_parked_then_its_outcome(
    time_skipping_env: WorkflowEnvironment,
):
    fakes = FakeSystems()
    fakes.fail_with(Activity.CRM_RECORD_ORDER, rejected("FIELD_CUSTOM_VALIDATION_EXCEPTION"))
    quote = new_quote()
    async with running_workers(time_skipping_env.client, fakes):
        handle = await start(time_skipping_env.client, quote)
        parked = await reach(handle, OrderStage.NEEDS_ATTENTION)
        await handle.execute_update(
            QuoteToCashWorkflow.resolve,
            ResolveRequest(action=ResolveAction.RETRY, operator="ops.lena", note="fixed"),
        )
        status = await handle.result()

    assert status.stage is OrderStage.BOOKED
    assert types(fakes.published) == [
        "com.revsync.order.parked.v1",
        "com.revsync.quote.booked.v1",
    ]
    data = fakes.published[0]["data"]
    assert data["blocked_step"] == Step.UPDATE_CRM.value
    assert data["allowed"] == ["retry", "skip"]
    assert parked.parked is not None
    assert fakes.published[0]["id"] == event_id(
        f"q2c-{quote.quote_id}", "order.parked", "update_crm", parked.parked.since.isoformat()
    )
