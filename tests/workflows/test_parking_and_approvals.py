"""What happens when a step fails halfway, and when a quote needs a human: parking with
operator decisions (``resolve``), approvals (``approve``/``reject``), SLAs. Time-skipping
server, fake activities."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from domain.approval import ApprovalPolicy, Approver, ApproverRole
from domain.contracts import Activity
from domain.order import SalesOrderStatus, SubscriptionStatus
from domain.quote import Quote
from domain.saga import (
    ApproveRequest,
    QuoteToCashInput,
    QuoteToCashStatus,
    RejectRequest,
    ResolveAction,
    ResolveRequest,
    SagaPolicy,
    Step,
    StepState,
)
from domain.stages import OrderStage
from sandbox.quotes import quote_payload
from tests.workflows.fakes import FakeSystems, rejected, running_workers, transient
from workflows import visibility
from workflows.quote_to_cash import QuoteToCashWorkflow

Handle = WorkflowHandle[QuoteToCashWorkflow, QuoteToCashStatus]
OWNER = "maya.chen@seller.example"


def new_quote(**changes: Any) -> Quote:
    payload = quote_payload(f"Q-{uuid.uuid4().hex[:12]}")
    payload.update(changes)
    return Quote.model_validate(payload)


def discounted_quote(percent: str) -> Quote:
    payload = quote_payload(f"Q-{uuid.uuid4().hex[:12]}")
    payload["lines"][0]["discount_percent"] = percent
    return Quote.model_validate(payload)


async def start(client: Client, quote: Quote, policy: SagaPolicy | None = None) -> Handle:
    return await client.start_workflow(
        QuoteToCashWorkflow.run,
        QuoteToCashInput(quote=quote, policy=policy or SagaPolicy()),
        id=visibility.workflow_id_for_quote(quote.quote_id),
        task_queue="orchestration",
    )


async def reach(handle: Handle, stage: OrderStage, seconds: float = 15) -> QuoteToCashStatus:
    """Poll the status query until the saga is in ``stage``."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        status = await handle.query(QuoteToCashWorkflow.status)
        if status.stage is stage:
            return status
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"saga stayed in {status.stage}, wanted {stage}: {status}")
        await asyncio.sleep(0.05)


def resolve(action: ResolveAction, note: str = "fixed the account in CRM") -> ResolveRequest:
    return ResolveRequest(action=action, operator="ops.lena", note=note)


def approver(role: ApproverRole, name: str = "dana.finance@seller.example") -> Approver:
    return Approver(name=name, role=role)


async def refused(handle: Handle, update: Any, request: Any) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        await handle.execute_update(update, request)
    cause = caught.value.cause
    return str(getattr(cause, "message", cause))


# -- parking and resolve ---------------------------------------------------------------


async def test_a_rejected_crm_write_back_parks_then_retry_books(
    time_skipping_env: WorkflowEnvironment,
):
    fakes = FakeSystems()
    fakes.fail_with(Activity.CRM_RECORD_ORDER, rejected("FIELD_CUSTOM_VALIDATION_EXCEPTION"))
    async with running_workers(time_skipping_env.client, fakes):
        handle = await start(time_skipping_env.client, new_quote())
        parked = await reach(handle, OrderStage.NEEDS_ATTENTION)
        assert parked.parked is not None
        assert parked.parked.step is Step.UPDATE_CRM
        assert parked.parked.allowed == [ResolveAction.RETRY, ResolveAction.SKIP]
        assert "FIELD_CUSTOM_VALIDATION_EXCEPTION" in (parked.reason or "")
        # Nothing financial was unwound.
        assert fakes.called(Activity.ERP_CANCEL_SALES_ORDER) == []
        assert fakes.called(Activity.BILLING_CANCEL_SUBSCRIPTION) == []

        problem = await refused(
            handle, QuoteToCashWorkflow.resolve, resolve(ResolveAction.COMPENSATE)
        )
        assert "never unwinds" in problem

        decision = await handle.execute_update(
            QuoteToCashWorkflow.resolve, resolve(ResolveAction.RETRY)
        )
        assert decision.actor == "ops.lena" and decision.action == "retry"
        status = await handle.result()

    assert status.stage is OrderStage.BOOKED
    assert status.parked is None
    assert status.crm_status == "Ordered"
    assert [(d.action, d.step) for d in status.decisions] == [("retry", Step.UPDATE_CRM)]
    assert status.decisions[0].note == "fixed the account in CRM"
    crm_attempts = [r for r in status.steps if r.step is Step.UPDATE_CRM]
    assert [r.state for r in crm_attempts] == [StepState.FAILED, StepState.DONE]
    (order,) = fakes.orders.values()
    assert order.status is SalesOrderStatus.PENDING_FULFILLMENT


async def test_skipping_the_crm_write_back_books_without_it(
    time_skipping_env: WorkflowEnvironment,
):
    fakes = FakeSystems()
    fakes.fail_with(Activity.CRM_RECORD_ORDER, rejected("INVALID_FIELD"))
    async with running_workers(time_skipping_env.client, fakes):
        handle = await start(time_skipping_env.client, new_quote())
        await reach(handle, OrderStage.NEEDS_ATTENTION)
        await handle.execute_update(
            QuoteToCashWorkflow.resolve, resolve(ResolveAction.SKIP, "entered in CRM by hand")
        )
        status = await handle.result()
    assert status.stage is OrderStage.BOOKED
    assert status.crm_order_id is None
    crm = status.step(Step.UPDATE_CRM)
    assert crm is not None and crm.state is StepState.SKIPPED
    assert "entered in CRM by hand" in (crm.detail or "")


async def test_billing_down_past_its_budget_parks_then_compensate_unwinds(
    time_skipping_env: WorkflowEnvironment,
):
    fakes = FakeSystems()
    fakes.fail_with(Activity.BILLING_PROVISION_SUBSCRIPTION, *[transient() for _ in range(200)])
    policy = SagaPolicy(step_retry_budget=timedelta(minutes=5))
    async with running_workers(time_skipping_env.client, fakes):
        handle = await start(time_skipping_env.client, new_quote(), policy)
        await reach(handle, OrderStage.PROVISIONING_BILLING)
        await time_skipping_env.sleep(timedelta(minutes=6))
        parked = await reach(handle, OrderStage.NEEDS_ATTENTION)
        assert parked.parked is not None and parked.parked.step is Step.PROVISION_BILLING
        assert "gave up after retrying" in parked.parked.reason
        assert "503 from vendor" in parked.parked.reason
        assert len(fakes.called(Activity.BILLING_PROVISION_SUBSCRIPTION)) > 3

        problem = await refused(handle, QuoteToCashWorkflow.resolve, resolve(ResolveAction.SKIP))
        assert "cannot be skipped" in problem

        await handle.execute_update(
            QuoteToCashWorkflow.resolve, resolve(ResolveAction.COMPENSATE, "customer withdrew")
        )
        status = await handle.result()

    assert status.stage is OrderStage.COMPENSATED
    assert "customer withdrew" in (status.reason or "")
    assert len(fakes.called(Activity.ERP_CANCEL_SALES_ORDER)) == 1
    assert fakes.called(Activity.BILLING_CANCEL_SUBSCRIPTION) == []
    (order,) = fakes.orders.values()
    assert order.status is SalesOrderStatus.CANCELLED
    assert fakes.quote_status[status.quote_id] == "Rejected"


async def test_billing_outage_that_heals_within_budget_books(
    time_skipping_env: WorkflowEnvironment,
):
    fakes = FakeSystems()
    fakes.fail_with(Activity.BILLING_PROVISION_SUBSCRIPTION, *[transient() for _ in range(6)])
    async with running_workers(time_skipping_env.client, fakes):
        handle = await start(time_skipping_env.client, new_quote())
        status = await handle.result()
    assert status.stage is OrderStage.BOOKED
    assert status.decisions == []
    assert len(fakes.called(Activity.BILLING_PROVISION_SUBSCRIPTION)) == 7


async def test_a_compensation_that_keeps_failing_parks_and_can_be_skipped(
    time_skipping_env: WorkflowEnvironment,
):
    fakes = FakeSystems()
    fakes.fail_with(Activity.BILLING_PROVISION_SUBSCRIPTION, rejected("card_declined"))
    fakes.fail_with(Activity.ERP_CANCEL_SALES_ORDER, rejected("order already fulfilled"))
    async with running_workers(time_skipping_env.client, fakes):
        handle = await start(time_skipping_env.client, new_quote())
        parked = await reach(handle, OrderStage.NEEDS_ATTENTION)
        assert parked.parked is not None and parked.parked.step is Step.CANCEL_ERP_ORDER
        problem = await refused(
            handle, QuoteToCashWorkflow.resolve, resolve(ResolveAction.COMPENSATE)
        )
        assert "already part of compensating" in problem
        await handle.execute_update(
            QuoteToCashWorkflow.resolve,
            resolve(ResolveAction.SKIP, "closed the order in NetSuite by hand"),
        )
        status = await handle.result()
    assert status.stage is OrderStage.COMPENSATED
    cancel = status.step(Step.CANCEL_ERP_ORDER)
    assert cancel is not None and cancel.state is StepState.SKIPPED
    assert fakes.quote_status[status.quote_id] == "Rejected"


async def test_resolve_is_refused_when_nothing_is_parked(time_skipping_env: WorkflowEnvironment):
    fakes = FakeSystems()
    async with running_workers(time_skipping_env.client, fakes):
        handle = await start(time_skipping_env.client, discounted_quote("25"))
        await reach(handle, OrderStage.AWAITING_APPROVAL)
        problem = await refused(handle, QuoteToCashWorkflow.resolve, resolve(ResolveAction.RETRY))
        assert "not waiting for an operator" in problem
        await handle.terminate("test done")


# -- approvals -------------------------------------------------------------------------


async def test_a_large_discount_waits_for_approval_before_any_side_effect(
    time_skipping_env: WorkflowEnvironment,
):
    fakes = FakeSystems()
    async with running_workers(time_skipping_env.client, fakes):
        handle = await start(time_skipping_env.client, discounted_quote("25"))
        waiting = await reach(handle, OrderStage.AWAITING_APPROVAL)
        assert waiting.approval is not None
        assert waiting.approval.required_role is ApproverRole.SALES_MANAGER
        assert [r.code for r in waiting.approval.reasons] == ["discount_above_threshold"]
        assert fakes.called(Activity.ERP_BOOK_SALES_ORDER) == []

        decision = await handle.execute_update(
            QuoteToCashWorkflow.approve,
            ApproveRequest(approver=approver(ApproverRole.SALES_MANAGER), note="strategic"),
        )
        assert decision.role is ApproverRole.SALES_MANAGER
        status = await handle.result()
    assert status.stage is OrderStage.BOOKED
    assert status.approval is not None and status.approval.decided is not None
    assert status.approval.decided.actor == "dana.finance@seller.example"
    gate = status.step(Step.AWAIT_APPROVAL)
    assert gate is not None and gate.state is StepState.DONE


async def test_approval_refuses_wrong_role_self_approval_and_reject_without_reason(
    time_skipping_env: WorkflowEnvironment,
):
    fakes = FakeSystems()
    quote = new_quote(payment_terms="NET90", currency="USD")
    async with running_workers(time_skipping_env.client, fakes):
        handle = await start(time_skipping_env.client, quote)
        waiting = await reach(handle, OrderStage.AWAITING_APPROVAL)
        assert waiting.approval is not None
        assert waiting.approval.required_role is ApproverRole.DEAL_DESK

        low = await refused(
            handle,
            QuoteToCashWorkflow.approve,
            ApproveRequest(approver=approver(ApproverRole.SALES_MANAGER)),
        )
        assert "deal_desk" in low
        own = await refused(
            handle,
            QuoteToCashWorkflow.approve,
            ApproveRequest(approver=approver(ApproverRole.FINANCE, name=f"  {OWNER.upper()} ")),
        )
        assert "owns this quote" in own
        blank = await refused(
            handle,
            QuoteToCashWorkflow.reject,
            RejectRequest(approver=approver(ApproverRole.FINANCE), reason="  "),
        )
        assert "reason" in blank.lower()

        await handle.execute_update(
            QuoteToCashWorkflow.reject,
            RejectRequest(approver=approver(ApproverRole.FINANCE), reason="NET90 not allowed"),
        )
        status = await handle.result()
    assert status.stage is OrderStage.REJECTED
    assert "NET90 not allowed" in (status.reason or "")
    assert fakes.called(Activity.ERP_BOOK_SALES_ORDER) == []
    assert fakes.quote_status[quote.quote_id] == "Rejected"
    assert [d.action for d in status.decisions] == ["reject"]


async def test_an_undecided_approval_escalates_then_expires_as_rejected(
    time_skipping_env: WorkflowEnvironment,
):
    fakes = FakeSystems()
    policy = SagaPolicy(
        approval=ApprovalPolicy(escalate_after=timedelta(hours=8), expire_after=timedelta(days=2))
    )
    async with running_workers(time_skipping_env.client, fakes):
        handle = await start(time_skipping_env.client, discounted_quote("50"), policy)
        await reach(handle, OrderStage.AWAITING_APPROVAL)
        await time_skipping_env.sleep(timedelta(hours=9))
        escalated = await handle.query(QuoteToCashWorkflow.status)
        assert escalated.stage is OrderStage.AWAITING_APPROVAL
        assert escalated.approval is not None and escalated.approval.escalated_at is not None
        assert [b.sla for b in escalated.sla_breaches] == ["approval"]
        status = await handle.result()
    assert status.stage is OrderStage.REJECTED
    assert "approval expired" in (status.reason or "")
    assert [d.action for d in status.decisions] == ["expire"]
    assert fakes.called(Activity.ERP_BOOK_SALES_ORDER) == []


async def test_an_approval_after_it_expired_is_refused(time_skipping_env: WorkflowEnvironment):
    """Once the approval window closed (expired: the quote is being rejected), an approve or
    a reject is refused, even while the saga is still running (here parked marking the CRM
    quote rejected)."""
    fakes = FakeSystems()
    fakes.fail_with(Activity.CRM_MARK_QUOTE_REJECTED, rejected("CRM is read-only today"))
    policy = SagaPolicy(
        approval=ApprovalPolicy(escalate_after=timedelta(hours=1), expire_after=timedelta(hours=2))
    )
    async with running_workers(time_skipping_env.client, fakes):
        handle = await start(time_skipping_env.client, discounted_quote("50"), policy)
        await reach(handle, OrderStage.AWAITING_APPROVAL)
        await time_skipping_env.sleep(timedelta(hours=3))
        parked = await reach(handle, OrderStage.NEEDS_ATTENTION)
        assert parked.parked is not None and parked.parked.step is Step.MARK_CRM_REJECTED

        late = await refused(
            handle,
            QuoteToCashWorkflow.approve,
            ApproveRequest(approver=approver(ApproverRole.FINANCE, "late.approver")),
        )
        assert "not awaiting approval" in late
        late_reject = await refused(
            handle,
            QuoteToCashWorkflow.reject,
            RejectRequest(approver=approver(ApproverRole.FINANCE, "late.approver"), reason="no"),
        )
        assert "not awaiting approval" in late_reject
        status = await handle.query(QuoteToCashWorkflow.status)
        assert [d.action for d in status.decisions] == ["expire"]
        await handle.terminate("test over")


async def test_a_new_customer_without_credit_check_needs_finance(
    time_skipping_env: WorkflowEnvironment,
):
    fakes = FakeSystems()
    fakes.customer_updates = {"existing_customer": False, "credit_check": None}
    async with running_workers(time_skipping_env.client, fakes):
        handle = await start(time_skipping_env.client, new_quote())
        waiting = await reach(handle, OrderStage.AWAITING_APPROVAL)
        assert waiting.approval is not None
        assert waiting.approval.required_role is ApproverRole.FINANCE
        assert [r.code for r in waiting.approval.reasons] == ["new_customer_without_credit_check"]
        await handle.terminate("test done")


async def test_a_slow_booking_breaches_its_sla_without_failing(
    time_skipping_env: WorkflowEnvironment,
):
    fakes = FakeSystems()
    fakes.fail_with(Activity.ERP_BOOK_SALES_ORDER, *[transient() for _ in range(12)])
    policy = SagaPolicy(book_within=timedelta(minutes=2))
    async with running_workers(time_skipping_env.client, fakes):
        handle = await start(time_skipping_env.client, new_quote(), policy)
        status = await handle.result()
    assert status.stage is OrderStage.BOOKED
    assert [b.sla for b in status.sla_breaches] == ["booking"]
    assert status.amount == status.amount.quantize(Decimal("0.01"))
    assert fakes.subscriptions and all(
        s.status is SubscriptionStatus.ACTIVE for s in fakes.subscriptions.values()
    )


# -- a rejection at each step: exactly which compensations run --------------------------

REJECTION_CASES = [
    # (rejected activity, final stage, compensations run, in order)
    (Activity.CRM_FETCH_ACCOUNT, OrderStage.REJECTED, []),
    (Activity.ERP_CHECK_CATALOG, OrderStage.REJECTED, []),
    (Activity.ERP_BOOK_SALES_ORDER, OrderStage.REJECTED, []),
    (
        Activity.BILLING_PROVISION_SUBSCRIPTION,
        OrderStage.COMPENSATED,
        [Activity.ERP_CANCEL_SALES_ORDER],
    ),
]
COMPENSATIONS = (
    Activity.BILLING_CANCEL_SUBSCRIPTION,
    Activity.BILLING_VOID_INVOICE,
    Activity.ERP_CANCEL_SALES_ORDER,
)


@pytest.mark.parametrize(("activity", "final", "undone"), REJECTION_CASES)
async def test_a_rejection_at_each_step_undoes_exactly_what_was_done(
    time_skipping_env: WorkflowEnvironment, activity: str, final: OrderStage, undone: list[str]
):
    fakes = FakeSystems()
    fakes.fail_with(activity, rejected(f"refused at {activity}"))
    quote = new_quote()
    async with running_workers(time_skipping_env.client, fakes):
        status = await (await start(time_skipping_env.client, quote)).result()
    assert status.stage is final
    assert f"refused at {activity}" in (status.reason or "")
    ran = [name for name, _ in fakes.calls if name in COMPENSATIONS]
    assert ran == undone
    # Final state of every system: nothing stays booked, the CRM quote says Rejected.
    assert all(o.status is SalesOrderStatus.CANCELLED for o in fakes.orders.values())
    assert fakes.subscriptions == {}
    assert fakes.quote_status[quote.quote_id] == "Rejected"
    assert fakes.called(Activity.CRM_RECORD_ORDER) == []
