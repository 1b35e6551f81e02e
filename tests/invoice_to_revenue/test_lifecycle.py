"""The invoice-to-revenue saga over months of (skipped) time: receivable, period closes,
payment before and after the due date, void and credit note mid-schedule, continue-as-new,
and a refused journal that parks until an operator retries it. Time-skipping server; the
real workflow and activities over in-memory vendors (``fakes.py``)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from domain.invoice import Invoice, InvoiceStatus, OneOffLine, SubscriptionLine
from domain.invoice_contracts import (
    CreditNoteReceived,
    InvoicePolicy,
    InvoiceStage,
    InvoiceStep,
    InvoiceToRevenueInput,
    InvoiceToRevenueStatus,
    PaymentReceived,
    VoidReceived,
    invoice_workflow_id,
    start_of,
)
from domain.receivable import (
    CreditLine,
    ReceivableCredit,
    ReceivableState,
    ReceivableStatus,
    RevenueJournal,
)
from domain.revenue import build_schedule, closes_on, period_of
from domain.saga import ResolveAction, ResolveRequest
from tests.invoice_to_revenue.fakes import FakeVendors, first_of_next_month, running_workers
from workflows.invoice_to_revenue import InvoiceToRevenueWorkflow

Handle = WorkflowHandle[InvoiceToRevenueWorkflow, InvoiceToRevenueStatus]
ACCOUNT = "0015e00000AcmeUS1"
D = Decimal


def months_later(day: date, months: int) -> date:
    total = day.month - 1 + months
    return day.replace(year=day.year + total // 12, month=total % 12 + 1)


def make_invoice(
    issued: date, start: date, months: int, *, amount: str = "12000.00", setup: str | None = None
) -> Invoice:
    lines: list[SubscriptionLine | OneOffLine] = [
        SubscriptionLine(
            line_id="il_platform",
            sku="PLAT-CORE",
            description="Platform, annual",
            amount=D(amount),
            tax_amount=D("960.00"),
            service_start=start,
            service_end=months_later(start, months),
        )
    ]
    if setup is not None:
        lines.append(OneOffLine(line_id="il_setup", sku="SVC-ONBOARD", amount=D(setup)))
    subtotal = sum((line.amount for line in lines), D(0))
    return Invoice(
        invoice_id=f"in_{uuid.uuid4().hex[:14]}",
        account_id=ACCOUNT,
        currency="USD",
        issue_date=issued,
        due_date=issued + timedelta(days=30),
        status=InvoiceStatus.OPEN,
        lines=lines,
        subtotal=subtotal,
        tax=D("960.00"),
        total=subtotal + D("960.00"),
    )


def vendors_with(invoice: Invoice) -> FakeVendors:
    vendors = FakeVendors()
    vendors.invoices[invoice.invoice_id] = invoice
    vendors.erp_customers[f"acct-{invoice.account_id}"] = "C77"
    return vendors


async def today(env: WorkflowEnvironment) -> date:
    return (await env.get_current_time()).astimezone(UTC).date()


async def start(client: Client, invoice: Invoice, policy: InvoicePolicy | None = None) -> Handle:
    return await client.start_workflow(
        InvoiceToRevenueWorkflow.run,
        InvoiceToRevenueInput(invoice_id=invoice.invoice_id, policy=policy or InvoicePolicy()),
        id=invoice_workflow_id(invoice.invoice_id),
        task_queue="orchestration",
    )


async def reach(handle: Handle, stage: InvoiceStage, seconds: float = 20) -> InvoiceToRevenueStatus:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        status = await handle.query(InvoiceToRevenueWorkflow.status)
        if status.stage is stage:
            return status
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"saga stayed in {status.stage}, wanted {stage}: {status}")
        await asyncio.sleep(0.05)


async def until(
    handle: Handle, condition: Callable[[InvoiceToRevenueStatus], bool], seconds: float = 20
) -> InvoiceToRevenueStatus:
    """Poll the status query until ``condition`` holds."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        status = await handle.query(InvoiceToRevenueWorkflow.status)
        if condition(status):
            return status
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"condition never held: {status}")
        await asyncio.sleep(0.05)


def payment(invoice: Invoice, at: datetime, payment_id: str = "pi_1") -> PaymentReceived:
    return PaymentReceived(
        payment_id=payment_id, amount=invoice.total, currency=invoice.currency, paid_at=at
    )


def journals(vendors: FakeVendors) -> list[RevenueJournal]:
    return [call.arg for call in vendors.called("post_revenue_journal")]


def assert_posted_at_close(vendors: FakeVendors) -> None:
    """Every revenue journal was posted on or after its period's close, never before."""
    for call in vendors.called("post_revenue_journal"):
        journal: RevenueJournal = call.arg
        if journal.journal_id.endswith("/void"):
            continue
        assert call.at >= start_of(closes_on(journal.period), "UTC"), (
            f"{journal.journal_id} posted at {call.at}, before {journal.period} closed"
        )


# -- the lifecycle ------------------------------------------------------------------------


async def test_a_twelve_month_invoice_paid_before_its_due_date_closes_after_twelve_journals(
    time_skipping_env: WorkflowEnvironment,
):
    env = time_skipping_env
    day = await today(env)
    invoice = make_invoice(day, first_of_next_month(day), 12)
    vendors = vendors_with(invoice)
    async with running_workers(env.client, vendors):
        handle = await start(env.client, invoice)
        waiting = await reach(handle, InvoiceStage.AWAITING_PAYMENT)
        assert waiting.receivable_id == "INV501" and waiting.erp_customer_id == "C77"
        assert waiting.next_close == closes_on(period_of(first_of_next_month(day)))
        now = await env.get_current_time()
        # invoice.paid and invoice.payment_succeeded of one payment: applied once
        await handle.signal(InvoiceToRevenueWorkflow.payment_received, payment(invoice, now))
        await handle.signal(InvoiceToRevenueWorkflow.payment_received, payment(invoice, now))
        status = await handle.result()
        history = await handle.fetch_history()

    # the recorded history replays: the workflow code is deterministic over a whole lifecycle
    await Replayer(
        workflows=[InvoiceToRevenueWorkflow], data_converter=pydantic_data_converter
    ).replay_workflow(history)

    assert status.stage is InvoiceStage.CLOSED
    assert [c.arg for c in vendors.called("post_receivable")] == [
        f"i2r-{invoice.invoice_id}:receivable"
    ]
    posted = journals(vendors)
    assert len(posted) == 12 == len({j.journal_id for j in posted})
    assert sum(j.amount for j in posted) == D("12000.00")
    assert [j.journal_id for j in posted] == [
        e.id for e in build_schedule(invoice).entries if e.amount != 0
    ]
    assert_posted_at_close(vendors)
    assert status.recognised_revenue == D("12000.00") and status.periods_posted == 12
    assert len(vendors.called("apply_payment")) == 1
    assert status.amount_due == 0 and status.amount_paid == invoice.total
    assert [s for s, _, _ in vendors.crm_statuses] == [
        ReceivableStatus.CURRENT,
        ReceivableStatus.PAID,
    ]
    types = vendors.event_types()
    assert types.count("com.revsync.invoice.posted.v1") == 1
    assert types.count("com.revsync.payment.applied.v1") == 1
    assert types.count("com.revsync.revenue.recognized.v1") == 12
    assert len({e["id"] for e in vendors.published}) == len(vendors.published)


async def test_a_mid_month_start_paid_late_goes_overdue_then_paid_with_crm_told_each_time(
    time_skipping_env: WorkflowEnvironment,
):
    env = time_skipping_env
    day = await today(env)
    start_day = day.replace(day=15)
    invoice = make_invoice(day, start_day, 12, setup="1500.00")
    vendors = vendors_with(invoice)
    async with running_workers(env.client, vendors):
        handle = await start(env.client, invoice)
        await reach(handle, InvoiceStage.AWAITING_PAYMENT)
        # due in 30 days, 7 days of grace: overdue from day 38
        await env.sleep(timedelta(days=40))
        overdue = await until(
            handle,
            lambda s: (
                s.stage is InvoiceStage.OVERDUE and s.receivable_status is ReceivableStatus.OVERDUE
            ),
        )
        assert overdue.overdue_on == invoice.due_date + timedelta(days=8)
        assert vendors.crm_statuses[-1][0] is ReceivableStatus.OVERDUE
        assert vendors.crm_statuses[-1][1] == invoice.total
        await handle.signal(
            InvoiceToRevenueWorkflow.payment_received,
            payment(invoice, await env.get_current_time(), "ch_late"),
        )
        status = await handle.result()

    assert status.stage is InvoiceStage.CLOSED
    assert [s for s, _, _ in vendors.crm_statuses] == [
        ReceivableStatus.CURRENT,
        ReceivableStatus.OVERDUE,
        ReceivableStatus.PAID,
    ]
    # as-of times only move forward: an older status never overwrites a newer one
    times = [at for _, _, at in vendors.crm_statuses]
    assert times == sorted(times)
    posted = [j for j in journals(vendors) if j.line_id == "il_platform"]
    assert len(posted) == 13 if start_day.day != 1 else 12
    assert sum(j.amount for j in posted) == D("12000.00")
    setup = [j for j in journals(vendors) if j.line_id == "il_setup"]
    assert [(j.period, j.amount) for j in setup] == [(period_of(day), D("1500.00"))]
    assert_posted_at_close(vendors)
    assert status.recognised_revenue == D("13500.00")


async def test_a_void_mid_schedule_reverses_the_receivable_and_the_recognised_revenue(
    time_skipping_env: WorkflowEnvironment,
):
    env = time_skipping_env
    day = await today(env)
    invoice = make_invoice(day, first_of_next_month(day), 12)
    vendors = vendors_with(invoice)
    async with running_workers(env.client, vendors):
        handle = await start(env.client, invoice)
        await reach(handle, InvoiceStage.AWAITING_PAYMENT)
        await env.sleep(timedelta(days=140))
        voided_at = await env.get_current_time()
        closed = [
            p
            for p in build_schedule(invoice).periods()
            if closes_on(p) <= voided_at.astimezone(UTC).date()
        ]
        assert len(closed) >= 3
        before = await until(handle, lambda s: s.periods_posted == len(closed))
        await handle.signal(InvoiceToRevenueWorkflow.voided, VoidReceived(voided_at=voided_at))
        status = await handle.result()

    assert status.stage is InvoiceStage.VOIDED
    schedule = build_schedule(invoice)
    recognised = [j for j in journals(vendors) if not j.journal_id.endswith("/void")]
    assert len(recognised) == before.periods_posted
    through = recognised[-1].period
    assert [j.journal_id for j in recognised] == [
        e.id for e in schedule.entries if e.period <= through
    ]
    reversals = [j for j in journals(vendors) if j.journal_id.endswith("/void")]
    current = period_of(voided_at.astimezone(UTC).date())
    assert [(j.period, j.amount) for j in reversals] == [
        (current, -sum(j.amount for j in recognised))
    ]
    assert reversals[0].journal_id == f"{invoice.invoice_id}/il_platform/{current}/void"
    # the rest of the schedule is cancelled: nothing later was posted
    assert status.recognised_revenue == 0 and status.next_close is None
    (receivable,) = vendors.receivables.values()
    assert receivable.state is ReceivableState.REVERSED
    assert vendors.reversals == {f"i2r-{invoice.invoice_id}:void": "INV501"}
    assert vendors.crm_statuses[-1][0] is ReceivableStatus.VOID
    voided = [e for e in vendors.published if e["type"] == "com.revsync.invoice.voided.v1"]
    assert len(voided) == 1
    assert D(voided[0]["data"]["reversed_revenue"]) == -sum(j.amount for j in recognised)
    assert D(voided[0]["data"]["cancelled_revenue"]) == D("12000.00") - sum(
        j.amount for j in recognised
    )


async def test_a_credit_note_shrinks_the_revenue_not_yet_recognised_and_what_is_due(
    time_skipping_env: WorkflowEnvironment,
):
    env = time_skipping_env
    day = await today(env)
    invoice = make_invoice(day, first_of_next_month(day), 12)
    vendors = vendors_with(invoice)
    async with running_workers(env.client, vendors):
        handle = await start(env.client, invoice)
        await reach(handle, InvoiceStage.AWAITING_PAYMENT)
        await env.sleep(timedelta(days=100))
        credit = CreditNoteReceived(
            credit_note_id="cn_1",
            currency="USD",
            lines={"il_platform": D("3000.00")},
            tax={"il_platform": D("240.00")},
            total=D("3240.00"),
        )
        await handle.signal(InvoiceToRevenueWorkflow.credit_note, credit)
        await handle.signal(InvoiceToRevenueWorkflow.credit_note, credit)  # redelivered
        credited = await until(
            handle,
            lambda s: (
                (r := s.step(InvoiceStep.CREDIT_RECEIVABLE, "cn_1")) is not None
                and r.state == "done"
            ),
        )
        assert credited.credit_notes == ["cn_1"]
        assert credited.amount_due == invoice.total - D("3240.00")
        assert credited.scheduled_revenue == D("9000.00")
        # One credit memo in the ERP, for that line and those amounts only.
        (call,) = vendors.called("credit_receivable")
        sent: ReceivableCredit = call.arg
        assert sent.external_id == "cn_1" and sent.invoice_id == invoice.invoice_id
        assert sent.lines == (CreditLine(line_id="il_platform", amount=D("3000"), tax=D("240")),)
        (receivable,) = vendors.receivables.values()
        assert sent.receivable_id == receivable.receivable_id
        assert (receivable.amount_due, receivable.amount_credited) == (
            invoice.total - D("3240.00"),
            D("3240.00"),
        )
        record = credited.step(InvoiceStep.CREDIT_RECEIVABLE, "cn_1")
        assert record is not None and record.detail == "credit memo CM1: 3240.00 USD"
        remaining = PaymentReceived(
            payment_id="pi_rest",
            amount=invoice.total - D("3240.00"),
            currency="USD",
            paid_at=await env.get_current_time(),
        )
        await handle.signal(InvoiceToRevenueWorkflow.payment_received, remaining)
        status = await handle.result()

    assert status.stage is InvoiceStage.CLOSED
    assert sum(j.amount for j in journals(vendors)) == D("9000.00")
    assert status.recognised_revenue == D("9000.00")
    assert status.amount_due == 0
    assert vendors.crm_statuses[-1][0] is ReceivableStatus.PAID


async def test_a_credit_beyond_the_unrecognised_revenue_is_taken_back_by_a_negative_journal(
    time_skipping_env: WorkflowEnvironment,
):
    """Two of three months recognised, then a credit note for half the line: the credit memo
    takes 1,500 (plus tax) off the receivable, the last month's revenue (about 1,000) is
    cancelled and the rest of the 1,500 comes back from recognised revenue by a negative
    journal when the current month closes."""
    env = time_skipping_env
    day = await today(env)
    first = first_of_next_month(day)
    invoice = make_invoice(day, first, 3, amount="3000.00")
    month_1, month_2, month_3 = (e.amount for e in build_schedule(invoice).entries)
    vendors = vendors_with(invoice)
    policy = InvoicePolicy(grace=timedelta(days=365))  # not overdue within this test
    async with running_workers(env.client, vendors):
        handle = await start(env.client, invoice, policy)
        await reach(handle, InvoiceStage.AWAITING_PAYMENT)
        third = months_later(first, 2)
        await env.sleep(third - day + timedelta(days=3))
        status = await until(
            handle, lambda s: s.recognised_through == period_of(months_later(first, 1))
        )
        assert status.recognised_revenue == month_1 + month_2
        note = CreditNoteReceived(
            credit_note_id="cn_half",
            currency="USD",
            lines={"il_platform": D("1500.00")},
            tax={"il_platform": D("120.00")},
            total=D("1620.00"),
        )
        await handle.signal(InvoiceToRevenueWorkflow.credit_note, note)
        credited = await until(handle, lambda s: s.credit_notes == ["cn_half"])
        assert credited.scheduled_revenue == D("1500.00")
        await env.sleep(closes_on(period_of(third)) - third + timedelta(days=1))
        status = await until(handle, lambda s: s.recognised_through == period_of(third))
        await handle.signal(
            InvoiceToRevenueWorkflow.payment_received,
            PaymentReceived(
                payment_id="pi_rest",
                amount=invoice.total - D("1620.00"),
                currency="USD",
                paid_at=await env.get_current_time(),
            ),
        )
        status = await handle.result()

    assert status.stage is InvoiceStage.CLOSED
    (call,) = vendors.called("credit_receivable")
    assert call.arg.lines == (CreditLine(line_id="il_platform", amount=D("1500"), tax=D("120")),)
    posted = [(j.period, j.amount) for j in journals(vendors)]
    assert month_3 < D("1500.00")
    assert posted == [
        (period_of(first), month_1),
        (period_of(months_later(first, 1)), month_2),
        (period_of(third), month_3 - D("1500.00")),
    ]
    assert status.recognised_revenue == D("1500.00") == invoice.subtotal - D("1500.00")
    (receivable,) = vendors.receivables.values()
    assert (receivable.amount_credited, receivable.amount_due) == (D("1620.00"), D(0))


async def test_a_credit_on_a_paid_invoice_is_refused_by_the_erp_and_parks_until_skipped(
    time_skipping_env: WorkflowEnvironment,
):
    env = time_skipping_env
    day = await today(env)
    invoice = make_invoice(day, first_of_next_month(day), 12)
    vendors = vendors_with(invoice)
    async with running_workers(env.client, vendors):
        handle = await start(env.client, invoice)
        await reach(handle, InvoiceStage.AWAITING_PAYMENT)
        await handle.signal(
            InvoiceToRevenueWorkflow.payment_received,
            payment(invoice, await env.get_current_time()),
        )
        await reach(handle, InvoiceStage.PAID)
        note = CreditNoteReceived(
            credit_note_id="cn_late",
            currency="USD",
            lines={"il_platform": D("1000.00")},
            tax={"il_platform": D("80.00")},
            total=D("1080.00"),
        )
        await handle.signal(InvoiceToRevenueWorkflow.credit_note, note)
        parked = await reach(handle, InvoiceStage.NEEDS_ATTENTION)
        assert parked.parked is not None
        assert (parked.parked.step, parked.parked.key) == (
            InvoiceStep.CREDIT_RECEIVABLE,
            "cn_late",
        )
        assert "credits 1080.00, more than the 0.00 still owed" in parked.parked.reason
        assert parked.parked.allowed == [ResolveAction.RETRY, ResolveAction.SKIP]
        # The revenue schedule already shrank: only the ERP side waits for finance.
        assert parked.scheduled_revenue == D("11000.00")

        await handle.execute_update(
            InvoiceToRevenueWorkflow.resolve,
            ResolveRequest(action=ResolveAction.SKIP, operator="ops.lena", note="refunded"),
        )
        resumed = await reach(handle, InvoiceStage.PAID)
        record = resumed.step(InvoiceStep.CREDIT_RECEIVABLE, "cn_late")
        assert record is not None and record.state == "skipped"
        await handle.cancel()

    assert vendors.credits == {}
    (receivable,) = vendors.receivables.values()
    assert receivable.amount_credited == 0


async def test_a_36_month_schedule_continues_as_new_with_small_histories_and_exact_totals(
    time_skipping_env: WorkflowEnvironment,
):
    env = time_skipping_env
    day = await today(env)
    invoice = make_invoice(day, first_of_next_month(day), 36, amount="36000.00")
    vendors = vendors_with(invoice)
    policy = InvoicePolicy(periods_per_run=6)
    async with running_workers(env.client, vendors):
        handle = await start(env.client, invoice, policy)
        await reach(handle, InvoiceStage.AWAITING_PAYMENT)
        await env.sleep(timedelta(days=250))
        # continued as new at least once by now
        await until(handle, lambda s: s.run >= 2)
        await handle.signal(
            InvoiceToRevenueWorkflow.payment_received,
            payment(invoice, await env.get_current_time()),
        )
        status = await handle.result()

        run_lengths: list[int] = []
        run_id: str | None = handle.first_execution_run_id or handle.result_run_id
        while run_id is not None:
            history = await env.client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
            run_lengths.append(len(history.events))
            last = history.events[-1]
            if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
                attrs = last.workflow_execution_continued_as_new_event_attributes
                run_id = attrs.new_execution_run_id
            else:
                run_id = None

    assert status.stage is InvoiceStage.CLOSED
    assert len(run_lengths) == 6 == status.run
    assert max(run_lengths) < 250, run_lengths
    posted = journals(vendors)
    assert len(posted) == 36 == len({j.journal_id for j in posted})
    assert sum(j.amount for j in posted) == D("36000.00") == status.recognised_revenue
    assert status.periods_posted == 36
    assert [p.payment_id for p in status.payments] == ["pi_1"]
    assert len(vendors.called("post_receivable")) == 1
    assert_posted_at_close(vendors)


async def test_a_continued_run_shows_its_details_before_its_first_stage_change(
    time_skipping_env: WorkflowEnvironment,
):
    """The Web UI's current details belong to a run: a run continued as new that sleeps until
    its next close showed nothing until then."""
    env = time_skipping_env
    day = await today(env)
    first = first_of_next_month(day)
    invoice = make_invoice(day, first, 3, amount="3000.00")
    vendors = vendors_with(invoice)
    policy = InvoicePolicy(periods_per_run=1, grace=timedelta(days=200))
    async with running_workers(env.client, vendors):
        handle = await start(env.client, invoice, policy)
        await reach(handle, InvoiceStage.AWAITING_PAYMENT)
        await env.sleep(closes_on(period_of(first)) - day + timedelta(days=1))
        status = await until(handle, lambda s: s.run == 2)  # asleep until the next close
        metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
        await handle.terminate("test over")
    assert status.periods_posted == 1
    assert metadata.current_details.startswith("**Stage:** AWAITING_PAYMENT")
    assert f"**Revenue recognised:** {status.recognised_revenue} of 3000.00" in (
        metadata.current_details
    )


async def test_a_journal_refused_for_a_closed_period_parks_and_resolve_retry_posts_it(
    time_skipping_env: WorkflowEnvironment,
):
    env = time_skipping_env
    day = await today(env)
    first = first_of_next_month(day)
    invoice = make_invoice(day, first, 3, amount="3000.00")
    vendors = vendors_with(invoice)
    vendors.closed_periods.add(period_of(first))
    policy = InvoicePolicy(grace=timedelta(days=120))  # not overdue within this test
    async with running_workers(env.client, vendors):
        handle = await start(env.client, invoice, policy)
        await reach(handle, InvoiceStage.AWAITING_PAYMENT)
        await env.sleep(closes_on(period_of(first)) - day + timedelta(days=1))
        parked = await reach(handle, InvoiceStage.NEEDS_ATTENTION)
        assert parked.parked is not None
        assert parked.parked.step is InvoiceStep.POST_JOURNAL
        assert parked.parked.key == f"{invoice.invoice_id}/il_platform/{period_of(first)}"
        assert "closed" in parked.parked.reason
        assert parked.parked.allowed == [ResolveAction.RETRY, ResolveAction.SKIP]
        assert parked.recognised_through is None  # nothing dropped, nothing moved on

        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(
                InvoiceToRevenueWorkflow.resolve,
                ResolveRequest(action=ResolveAction.COMPENSATE, operator="ops.lena", note="x"),
            )
        assert "never compensated" in str(getattr(refused.value.cause, "message", ""))

        vendors.closed_periods.clear()  # the accountant reopened the period
        decision = await handle.execute_update(
            InvoiceToRevenueWorkflow.resolve,
            ResolveRequest(action=ResolveAction.RETRY, operator="ops.lena", note="reopened"),
        )
        assert decision.step is InvoiceStep.POST_JOURNAL
        resumed = await until(handle, lambda s: s.recognised_through == period_of(first))
        assert resumed.stage is InvoiceStage.AWAITING_PAYMENT and resumed.parked is None
        await handle.signal(
            InvoiceToRevenueWorkflow.payment_received,
            payment(invoice, await env.get_current_time()),
        )
        status = await handle.result()

    assert status.stage is InvoiceStage.CLOSED
    assert sum(j.amount for j in vendors.journals.values()) == D("3000.00")
    assert [d.action for d in status.decisions] == ["retry"]


async def test_an_erp_without_the_customer_parks_and_a_void_while_parked_ends_it(
    time_skipping_env: WorkflowEnvironment,
):
    env = time_skipping_env
    day = await today(env)
    invoice = make_invoice(day, first_of_next_month(day), 12)
    vendors = vendors_with(invoice)
    vendors.erp_customers.clear()
    async with running_workers(env.client, vendors):
        handle = await start(env.client, invoice)
        parked = await reach(handle, InvoiceStage.NEEDS_ATTENTION)
        assert parked.parked is not None
        assert parked.parked.step is InvoiceStep.POST_RECEIVABLE
        assert "acct-0015e00000AcmeUS1" in parked.parked.reason
        assert parked.parked.allowed == [ResolveAction.RETRY]
        await handle.signal(
            InvoiceToRevenueWorkflow.voided, VoidReceived(voided_at=await env.get_current_time())
        )
        status = await handle.result()

    assert status.stage is InvoiceStage.VOIDED
    assert vendors.receivables == {} and journals(vendors) == []
    assert vendors.called("post_receivable") == []
