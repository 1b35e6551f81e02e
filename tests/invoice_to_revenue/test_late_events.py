"""Late invoice events: a credit note, payment or void for an invoice whose saga has ended
(CLOSED, VOIDED) starts an ``InvoiceAdjustment`` that books it against what the saga left,
or parks visibly when the ERP refuses; a redelivery starts nothing twice. Time-skipping
server; the real workflows and activities over in-memory vendors (``fakes.py``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, date
from decimal import Decimal

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from domain.invoice import Invoice
from domain.invoice_adjustment import (
    AdjustmentKind,
    AdjustmentStage,
    InvoiceAdjustmentStatus,
    adjustment_workflow_id,
)
from domain.invoice_contracts import (
    CreditNoteReceived,
    InvoicePolicy,
    InvoiceStage,
    InvoiceStep,
    InvoiceToRevenueStatus,
    PaymentReceived,
    VoidReceived,
)
from domain.receivable import ReceivableStatus
from domain.revenue import period_of
from domain.saga import ResolveAction, ResolveRequest
from revsync.late_invoice_events import AdjustmentOutcome, start_adjustment
from tests.invoice_to_revenue.fakes import running_workers
from tests.invoice_to_revenue.test_lifecycle import (
    journals,
    make_invoice,
    months_later,
    payment,
    reach,
    start,
    today,
    vendors_with,
)
from workflows.invoice_adjustment import InvoiceAdjustmentWorkflow
from workflows.invoice_to_revenue import InvoiceToRevenueWorkflow

D = Decimal
Adjustment = WorkflowHandle[InvoiceAdjustmentWorkflow, InvoiceAdjustmentStatus]


def last_months_invoice(day: date) -> Invoice:
    """An invoice for last month's service: every period is recognised as soon as it posts."""
    first = months_later(day.replace(day=1), -1)
    return make_invoice(day, first, 1, amount="1200.00")


async def closed_saga(client: Client, invoice: Invoice, env: WorkflowEnvironment) -> None:
    """Run the invoice's saga to CLOSED: posted, recognised, paid in full."""
    handle = await start(client, invoice)
    await reach(handle, InvoiceStage.AWAITING_PAYMENT)
    await handle.signal(
        InvoiceToRevenueWorkflow.payment_received,
        payment(invoice, await env.get_current_time()),
    )
    final = await handle.result()
    assert final.stage is InvoiceStage.CLOSED
    assert final.next_close is None and final.recognised_revenue == D("1200.00")


async def late(
    client: Client, invoice: Invoice, event: PaymentReceived | CreditNoteReceived | VoidReceived
) -> AdjustmentOutcome:
    """What the gateway does with an event whose saga has ended."""
    return await start_adjustment(
        client,
        invoice.invoice_id,
        event,
        accounting_timezone="UTC",
        policy=InvoicePolicy(),
        event_id="evt_late",
        indexed=False,  # the time-skipping server has no revsync search attributes
    )


async def adjustment_until(
    handle: Adjustment, ready: Callable[[InvoiceAdjustmentStatus], bool], seconds: float = 20
) -> InvoiceAdjustmentStatus:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        status = await handle.query(InvoiceAdjustmentWorkflow.status)
        if ready(status):
            return status
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"condition never held: {status}")
        await asyncio.sleep(0.05)


def skip(note: str) -> ResolveRequest:
    return ResolveRequest(action=ResolveAction.SKIP, operator="ops.lena", note=note)


async def test_a_credit_note_after_the_saga_closed_takes_revenue_back_and_parks_the_memo(
    time_skipping_env: WorkflowEnvironment,
):
    env = time_skipping_env
    day = await today(env)
    invoice = last_months_invoice(day)
    vendors = vendors_with(invoice)
    note = CreditNoteReceived(
        credit_note_id="cn_late",
        currency="USD",
        lines={"il_platform": D("300.00")},
        tax={"il_platform": D("24.00")},
        total=D("324.00"),
    )
    async with running_workers(env.client, vendors):
        await closed_saga(env.client, invoice, env)
        before = len(vendors.calls)
        outcome = await late(env.client, invoice, note)
        assert (outcome.status, outcome.kind) == ("started", "credit_note")
        assert outcome.workflow_id == adjustment_workflow_id(
            invoice.invoice_id, AdjustmentKind.CREDIT_NOTE, "cn_late"
        )
        handle: Adjustment = env.client.get_workflow_handle_for(
            InvoiceAdjustmentWorkflow.run, outcome.workflow_id
        )
        # The invoice is paid: the ERP refuses a credit memo larger than what is owed, and the
        # adjustment parks for a person, with the revenue already taken back.
        parked = await adjustment_until(
            handle, lambda s: s.stage is AdjustmentStage.NEEDS_ATTENTION
        )
        assert parked.parked is not None
        assert parked.parked.step is InvoiceStep.CREDIT_RECEIVABLE
        assert parked.parked.key == "cn_late"
        assert "more than" in parked.parked.reason
        assert parked.saga_stage is InvoiceStage.CLOSED
        # A redelivery (or a second event about the credit note) starts nothing.
        again = await late(env.client, invoice, note)
        assert (again.status, again.workflow_id) == ("duplicate", outcome.workflow_id)
        decision = await handle.execute_update(
            InvoiceAdjustmentWorkflow.resolve, skip("refunded in NetSuite by hand")
        )
        assert decision.step is InvoiceStep.CREDIT_RECEIVABLE
        final = await handle.result()

    assert final.stage is AdjustmentStage.ADJUSTED
    current = period_of((await env.get_current_time()).astimezone(UTC).date())
    taken = [j for j in journals(vendors) if "/credit/" in j.journal_id]
    assert [(j.journal_id, j.period, j.amount) for j in taken] == [
        (f"{invoice.invoice_id}/il_platform/{current}/credit/cn_late", current, D("-300.00"))
    ]
    assert final.revenue_taken_back == D("300.00")
    assert final.amount_credited == D("324.00")
    assert [c.name for c in vendors.calls[before:]] == [
        "post_revenue_journal",
        "credit_receivable",
        "set_receivable_status",
    ]
    status, due, _ = vendors.crm_statuses[-1]
    assert (status, due) == (ReceivableStatus.PAID, D(0))
    (event,) = [
        e
        for e in vendors.published
        if e["type"] == "com.revsync.revenue.recognized.v1" and e["data"]["period"] == current
    ]
    assert D(event["data"]["amount"]) == D("-300.00")
    assert D(event["data"]["recognised_to_date"]) == D("900.00")
    assert [d.action for d in final.decisions] == ["skip"]


async def test_a_late_payment_is_applied_once_and_one_the_saga_applied_is_a_duplicate(
    time_skipping_env: WorkflowEnvironment,
):
    env = time_skipping_env
    day = await today(env)
    invoice = last_months_invoice(day)
    vendors = vendors_with(invoice)
    async with running_workers(env.client, vendors):
        await closed_saga(env.client, invoice, env)
        now = await env.get_current_time()
        # invoice.payment_succeeded of the payment the saga applied, arriving after it closed
        applied = await late(env.client, invoice, payment(invoice, now))
        assert applied.status == "duplicate"
        assert applied.reason is not None and "pi_1" in applied.reason
        # A second charge: nothing is owed any more, the ERP refuses it; parked, visible.
        second = PaymentReceived(payment_id="pi_2", amount=D("100.00"), currency="USD", paid_at=now)
        outcome = await late(env.client, invoice, second)
        assert outcome.status == "started"
        handle: Adjustment = env.client.get_workflow_handle_for(
            InvoiceAdjustmentWorkflow.run, outcome.workflow_id
        )
        parked = await adjustment_until(
            handle, lambda s: s.stage is AdjustmentStage.NEEDS_ATTENTION
        )
        assert parked.parked is not None and parked.parked.step is InvoiceStep.APPLY_PAYMENT
        assert "nothing due" in parked.parked.reason
        await handle.execute_update(
            InvoiceAdjustmentWorkflow.resolve, skip("refunded in Stripe, nothing to book")
        )
        final = await handle.result()
        redelivered = await late(env.client, invoice, second)

    assert redelivered.status == "duplicate"
    assert final.stage is AdjustmentStage.ADJUSTED
    assert final.payment is not None and final.payment.erp_payment_id is None
    assert [c.arg.payment_id for c in vendors.called("apply_payment")] == ["pi_1", "pi_2"]
    assert len(vendors.payments) == 1
    applied_events = [e for e in vendors.published if e["type"] == "com.revsync.payment.applied.v1"]
    assert [e["data"]["payment_id"] for e in applied_events] == ["pi_1", "pi_2"]


async def test_a_void_after_the_saga_closed_reverses_the_revenue_and_tells_crm(
    time_skipping_env: WorkflowEnvironment,
):
    env = time_skipping_env
    day = await today(env)
    invoice = last_months_invoice(day)
    vendors = vendors_with(invoice)
    async with running_workers(env.client, vendors):
        await closed_saga(env.client, invoice, env)
        void = VoidReceived(voided_at=await env.get_current_time())
        outcome = await late(env.client, invoice, void)
        handle: Adjustment = env.client.get_workflow_handle_for(
            InvoiceAdjustmentWorkflow.run, outcome.workflow_id
        )
        # Paid: the ERP will not reverse the receivable (finance refunds by hand).
        parked = await adjustment_until(
            handle, lambda s: s.stage is AdjustmentStage.NEEDS_ATTENTION
        )
        assert parked.parked is not None
        assert parked.parked.step is InvoiceStep.REVERSE_RECEIVABLE
        await handle.execute_update(InvoiceAdjustmentWorkflow.resolve, skip("refunded by hand"))
        final = await handle.result()
        again = await late(env.client, invoice, void)

    assert again.status == "duplicate"
    current = period_of((await env.get_current_time()).astimezone(UTC).date())
    (reversal,) = [j for j in journals(vendors) if j.journal_id.endswith("/void")]
    assert (reversal.journal_id, reversal.amount) == (
        f"{invoice.invoice_id}/il_platform/{current}/void",
        D("-1200.00"),
    )
    assert final.voided_at is not None and final.amount_due == 0
    assert vendors.crm_statuses[-1][0] is ReceivableStatus.VOID
    assert [e["type"] for e in vendors.published].count("com.revsync.invoice.voided.v1") == 1


async def test_an_event_for_a_voided_saga_is_booked_against_the_reversed_receivable(
    time_skipping_env: WorkflowEnvironment,
):
    env = time_skipping_env
    day = await today(env)
    invoice = make_invoice(day, months_later(day.replace(day=1), 1), 2)
    vendors = vendors_with(invoice)
    async with running_workers(env.client, vendors):
        handle = await start(env.client, invoice)
        await reach(handle, InvoiceStage.AWAITING_PAYMENT)
        voided_at = await env.get_current_time()
        await handle.signal(InvoiceToRevenueWorkflow.voided, VoidReceived(voided_at=voided_at))
        ended: InvoiceToRevenueStatus = await handle.result()
        assert ended.stage is InvoiceStage.VOIDED
        # invoice.voided redelivered after the saga voided it: nothing to adjust
        assert (await late(env.client, invoice, VoidReceived(voided_at=voided_at))).status == (
            "duplicate"
        )
        # a credit note for the voided invoice: nothing is left to credit; parked for a person
        note = CreditNoteReceived(
            credit_note_id="cn_after_void",
            currency="USD",
            lines={"il_platform": D("10.00")},
            total=D("10.00"),
        )
        outcome = await late(env.client, invoice, note)
        adjustment: Adjustment = env.client.get_workflow_handle_for(
            InvoiceAdjustmentWorkflow.run, outcome.workflow_id
        )
        parked = await adjustment_until(
            adjustment, lambda s: s.stage is AdjustmentStage.NEEDS_ATTENTION
        )
        assert parked.parked is not None
        assert parked.parked.step is InvoiceStep.APPLY_CREDIT_NOTE
        assert "voided" in parked.parked.reason
        assert parked.parked.allowed == [ResolveAction.SKIP]
        await adjustment.execute_update(InvoiceAdjustmentWorkflow.resolve, skip("void wins"))
        final = await adjustment.result()

    assert final.stage is AdjustmentStage.ADJUSTED
    assert final.saga_stage is InvoiceStage.VOIDED
    assert vendors.called("credit_receivable") == []
    assert vendors.crm_statuses[-1][0] is ReceivableStatus.VOID


async def test_a_credit_note_that_arrives_as_the_saga_ends_is_handed_to_its_adjustment(
    own_time_skipping_env: WorkflowEnvironment,
):
    env = own_time_skipping_env
    day = await today(env)
    invoice = last_months_invoice(day)
    vendors = vendors_with(invoice)
    vendors.subscribers_up.clear()  # the saga's last step waits for its events' delivery
    note = CreditNoteReceived(
        credit_note_id="cn_at_the_end",
        currency="USD",
        lines={"il_platform": D("100.00")},
        total=D("100.00"),
    )
    async with running_workers(env.client, vendors):
        handle = await start(env.client, invoice)
        await reach(handle, InvoiceStage.AWAITING_PAYMENT)
        await handle.signal(
            InvoiceToRevenueWorkflow.payment_received,
            payment(invoice, await env.get_current_time()),
        )
        await reach(handle, InvoiceStage.CLOSED)
        # Closed, still running until its events are out: the signal is taken ("delivered")
        # but comes too late for the saga's own loop.
        await handle.signal(InvoiceToRevenueWorkflow.credit_note, note)
        vendors.subscribers_up.set()
        ended = await handle.result()
        adjustment: Adjustment = env.client.get_workflow_handle_for(
            InvoiceAdjustmentWorkflow.run,
            adjustment_workflow_id(
                invoice.invoice_id, AdjustmentKind.CREDIT_NOTE, note.credit_note_id
            ),
        )
        parked = await adjustment_until(
            adjustment, lambda s: s.stage is AdjustmentStage.NEEDS_ATTENTION
        )
        # A redelivery of the credit note after that starts nothing more.
        again = await late(env.client, invoice, note)
        await adjustment.execute_update(
            InvoiceAdjustmentWorkflow.resolve, skip("refunded in NetSuite by hand")
        )
        await adjustment.result()

    assert ended.stage is InvoiceStage.CLOSED and ended.credit_notes == []
    assert parked.parked is not None and parked.parked.step is InvoiceStep.CREDIT_RECEIVABLE
    assert [j.amount for j in journals(vendors) if "/credit/" in j.journal_id] == [D("-100.00")]
    assert (again.status, again.workflow_id) == ("duplicate", adjustment.id)
