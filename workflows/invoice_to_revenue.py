"""InvoiceToRevenueWorkflow: a finalized billing invoice becomes an ERP receivable and, period by
period, recognised revenue; its payments are applied, its void or credit notes reversed.

Workflow id ``i2r-<invoice id>``, queue ``orchestration``, started by billing's
``invoice.finalized`` (docs/invoice-to-revenue.md):

1. read the invoice from billing                          (billing) stage RECEIVED
2. post the receivable on the ERP customer ``acct-<CRM account>`` (erp) POSTING_RECEIVABLE
3. show it CURRENT on the CRM account                     (crm)     AWAITING_PAYMENT
4. then, until it is paid and every period recognised (CLOSED) or it is voided (VOIDED):

   - at each period close (first day of the next month, accounting time zone) a durable
     timer wakes the saga, which posts that period's revenue journals (erp; zero entries are
     skipped), keyed by the schedule entry ids of ``domain.revenue``;
   - ``payment_received`` applies the payment in the ERP and, once nothing is due, shows the
     receivable PAID in CRM;
   - the day after due date plus grace, an unpaid invoice turns OVERDUE (stage, search
     attribute, CRM status);
   - ``credit_note`` shrinks the not-yet-recognised revenue (``domain.revenue.apply_credit``)
     and credits the ERP receivable for its lines (a credit memo keyed by the credit note id);
   - ``voided`` reverses the ERP receivable, cancels what is not recognised and reverses what
     is with journals in the current period (``domain.revenue.reverse``).

A step that runs out of its retry budget, or that a system refuses (a closed ERP period, a
customer the ERP lacks), parks the saga (NEEDS_ATTENTION, ``BlockedStep``) until an operator's
``resolve`` update: retry, or skip when it was done by hand (``domain.invoice_contracts``).
Revenue is never dropped silently. After ``periods_per_run`` periods (or when Temporal suggests
it) the saga continues as new, carrying the schedule, what is recognised and paid, and the
signals not yet handled.
"""

from __future__ import annotations

import contextlib
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, NoReturn, TypeVar

from temporalio import workflow
from temporalio.common import (
    Priority,
    SearchAttributePair,
    SearchAttributeUpdate,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ActivityError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from domain.contracts import TaskQueue
    from domain.events import (
        EventData,
        InvoicePosted,
        InvoiceVoided,
        PaymentApplied,
        RevenueRecognized,
    )
    from domain.invoice import Invoice, InvoiceStatus
    from domain.invoice_adjustment import (
        ADJUSTMENT_WORKFLOW_TYPE,
        InvoiceAdjustmentBase,
        InvoiceAdjustmentInput,
    )
    from domain.invoice_contracts import (
        MAX_STEP_RECORDS,
        CreditNoteReceived,
        GetInvoice,
        InvoiceActivity,
        InvoiceCarry,
        InvoiceDecision,
        InvoiceParked,
        InvoicePolicy,
        InvoiceStage,
        InvoiceStep,
        InvoiceStepRecord,
        InvoiceToRevenueInput,
        InvoiceToRevenueStatus,
        PaymentReceived,
        PaymentRecord,
        PostReceivable,
        ReverseReceivable,
        SetReceivableStatus,
        VoidReceived,
        invoice_allowed_resolutions,
        invoice_resolution_problem,
        local_date,
        overdue_on,
        start_of,
        wake_offset,
    )
    from domain.receivable import (
        CreditLine,
        CreditPosting,
        JournalPosting,
        PaymentApplication,
        PaymentPosting,
        Receivable,
        ReceivableCredit,
        ReceivableStatus,
        RevenueJournal,
    )
    from domain.revenue import (
        RevenueError,
        RevenueSchedule,
        apply_credit,
        build_schedule,
        due_periods,
        next_close,
        period_of,
        reverse,
    )
    from domain.saga import ResolveAction, ResolveRequest
    from domain.shadow import shadow_note
    from revsync import metrics
    from workflows import visibility
    from workflows.invoice_adjustment import start_attributes as adjustment_attributes
    from workflows.invoice_adjustment import static_summary as adjustment_summary
    from workflows.kernel import (
        ATTEMPT_TIMEOUT,
        HEARTBEAT_TIMEOUT,
        LEDGER_PRIORITY,
        current_policies,
        retry_policy,
        step_failure,
    )
    from workflows.publishing import Outbox, business_event
    from workflows.visibility import md

T = TypeVar("T")

RUNNING, DONE, FAILED, SKIPPED = "running", "done", "failed", "skipped"
# Period closes and overdue days wake each saga at its own moment after midnight
# (InvoicePolicy.wake_spread); runs recorded before the patch wake at midnight.
SPREAD_WAKE_UPS_PATCH = "spread-wake-ups"
# Revenue journals wait behind bookings and receivables where the ERP queue has a backlog.
REVENUE_STEPS = frozenset({InvoiceStep.POST_JOURNAL, InvoiceStep.REVERSE_REVENUE})
# What is due is kept current in visibility within a stage (after a payment or credit note).
STANDING_PATCH = "keep-standing-current"
# A run continues as new without waiting for its publications; the next run sends them.
CARRY_EVENTS_PATCH = "carry-undelivered-events"
# Each run after the first takes the deployment's current policy (domain/policies.py).
CURRENT_POLICY_PATCH = "policies-reach-next-run"
LATE_EVENTS_PATCH = "late-events-to-adjustments"
"""Sagas that ended before adjustments existed dropped the signals that came as they ended."""


class VoidedWhileParked(Exception):
    """Billing voided the invoice while the saga was parked before its receivable existed."""


@workflow.defn(name="InvoiceToRevenue")
class InvoiceToRevenueWorkflow:
    @workflow.init
    def __init__(self, request: InvoiceToRevenueInput) -> None:
        self._zone = request.accounting_timezone
        self._policy: InvoicePolicy = request.policy
        self._invoice: Invoice | None = None
        self._schedule: RevenueSchedule | None = None
        self._receivable: Receivable | None = None
        self._payments: list[PaymentReceived] = []
        self._credit_notes: list[CreditNoteReceived] = []
        self._void: VoidReceived | None = None
        self._seen_payments: set[str] = set()
        self._seen_credit_notes: set[str] = set()
        carry = request.carry
        if carry is None:
            self._status = InvoiceToRevenueStatus(
                workflow_id=workflow.info().workflow_id,
                invoice_id=request.invoice_id,
                stage=InvoiceStage.RECEIVED,
                stage_since=workflow.info().start_time,
                adopted_at=request.adopted_at,
            )
        else:
            self._status = carry.status.model_copy(update={"run": carry.status.run + 1})
            self._invoice = carry.invoice
            self._schedule = carry.schedule
            self._receivable = carry.receivable
            self._payments = list(carry.pending_payments)
            self._credit_notes = list(carry.pending_credit_notes)
            self._void = carry.void
            self._seen_payments = set(carry.seen_payments)
            self._seen_credit_notes = set(carry.seen_credit_notes)
        self._resolution: ResolveRequest | None = None
        self._outbox = Outbox()
        self._periods_this_run = 0

    # -- what billing (through the gateway) and operators send ----------------------------

    @workflow.query(name="status")
    def status(self) -> InvoiceToRevenueStatus:
        return self._status

    @workflow.query(name="adjustment_base")
    def adjustment_base(self) -> InvoiceAdjustmentBase:
        """What a late event's adjustment stands on once this saga has ended (read from the
        closed run by the gateway, docs/invoice-to-revenue.md#late-events): the status, the
        schedule, the receivable, and the payments and credit notes handled (a signal that
        arrived as the saga ended, never handled, is not among them)."""
        pending_payments = {p.payment_id for p in self._payments}
        pending_notes = {n.credit_note_id for n in self._credit_notes}
        return InvoiceAdjustmentBase(
            status=self._status,
            schedule=self._schedule,
            receivable=self._receivable,
            handled_payments=sorted(self._seen_payments - pending_payments),
            handled_credit_notes=sorted(self._seen_credit_notes - pending_notes),
        )

    @workflow.signal(name="payment_received")
    def payment_received(self, payment: PaymentReceived) -> None:
        """Billing recorded a payment; ``invoice.paid`` and ``invoice.payment_succeeded`` of
        one payment carry one payment id, so the second is dropped here."""
        if payment.payment_id in self._seen_payments:
            workflow.logger.info(
                "payment already received", extra=self._log(payment_id=payment.payment_id)
            )
            return
        adopted = self._status.adopted_at
        if adopted is not None and payment.paid_at < adopted:
            # Adopted (docs/adoption.md): billing's amounts were read at the watermark, so
            # this payment is in the saga's state already. Processed once, by the backfill.
            self._seen_payments.add(payment.payment_id)
            workflow.logger.info(
                "payment before adoption: already counted",
                extra=self._log(payment_id=payment.payment_id),
            )
            return
        self._seen_payments.add(payment.payment_id)
        self._payments.append(payment)

    @workflow.signal(name="voided")
    def voided(self, void: VoidReceived) -> None:
        if self._void is None:
            self._void = void

    @workflow.signal(name="credit_note")
    def credit_note(self, note: CreditNoteReceived) -> None:
        if note.credit_note_id in self._seen_credit_notes:
            return
        self._seen_credit_notes.add(note.credit_note_id)
        self._credit_notes.append(note)

    @workflow.update(name="resolve")
    def resolve(self, request: ResolveRequest) -> InvoiceDecision:
        """An operator's decision on the parked step: retry, or skip (done by hand)."""
        parked = self._status.parked
        assert parked is not None  # the validator let it through
        self._resolution = request
        decision = InvoiceDecision(
            at=workflow.now(),
            actor=request.operator,
            action=request.action.value,
            step=parked.step,
            note=request.note,
        )
        self._status.decisions.append(decision)
        workflow.logger.info(
            "decision recorded",
            extra=self._log(step=parked.step.value, action=request.action.value),
        )
        return decision

    @resolve.validator
    def _validate_resolve(self, request: ResolveRequest) -> None:
        parked = self._status.parked
        if parked is None or self._resolution is not None:
            raise ValueError(
                f"invoice {self._status.invoice_id} is not waiting for an operator "
                f"(stage {self._status.stage.value})"
            )
        problem = invoice_resolution_problem(parked.step, request.action)
        if problem is not None:
            raise ValueError(problem)

    # -- the saga -------------------------------------------------------------------------

    @workflow.run
    async def run(self, request: InvoiceToRevenueInput) -> InvoiceToRevenueStatus:
        if request.carry is not None:
            # A continued run: the Web UI's details are the run's own, blank until set.
            workflow.set_current_details(self._details())
            self._outbox.resend(request.carry.undelivered_events)
        try:
            if self._receivable is None:
                await self._open(request.invoice_id)
            while not self._status.stage.is_terminal:
                if self._void is not None:
                    await self._reverse_all(self._void)
                elif self._credit_notes:
                    await self._apply_credit(self._credit_notes.pop(0))
                elif self._payments:
                    await self._apply_payment(self._payments.pop(0))
                elif await self._post_due_periods() or await self._mark_overdue():
                    continue
                elif self._finished():
                    self._enter(InvoiceStage.CLOSED)
                elif self._time_to_continue():
                    await self._continue_as_new(request)
                else:
                    await self._sleep()
        except VoidedWhileParked:
            self._status.voided_at = self._void.voided_at if self._void else workflow.now()
            self._status.amount_due = Decimal(0)
            self._enter(InvoiceStage.VOIDED)
        await self._outbox.drain()
        await self._hand_on_late_events(request)
        return self._status

    async def _hand_on_late_events(self, request: InvoiceToRevenueInput) -> None:
        """A payment, credit note or void that arrived as the saga ended (CLOSED or VOIDED)
        is not dropped: each starts its adjustment, as the gateway does for a later one
        (workflows/invoice_adjustment.py, docs/invoice-to-revenue.md#late-events)."""
        handed: set[str] = set()
        while late := [(k, e) for k, e in self._late_events() if k not in handed]:
            if not workflow.patched(LATE_EVENTS_PATCH):
                return  # sagas that ended before adjustments existed replay as they ran
            for key, event in late:
                handed.add(key)
                adjustment = InvoiceAdjustmentInput(
                    invoice_id=request.invoice_id,
                    base=self.adjustment_base(),
                    payment=event if isinstance(event, PaymentReceived) else None,
                    credit_note=event if isinstance(event, CreditNoteReceived) else None,
                    void=event if isinstance(event, VoidReceived) else None,
                    accounting_timezone=self._zone,
                    policy=self._policy,
                    event_id=event.event_id,
                )
                # Started already: the gateway started it for a redelivery.
                with contextlib.suppress(WorkflowAlreadyStartedError):
                    await workflow.start_child_workflow(
                        ADJUSTMENT_WORKFLOW_TYPE,
                        adjustment,
                        id=adjustment.workflow_id,
                        task_queue=TaskQueue.ORCHESTRATION,
                        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                        parent_close_policy=ParentClosePolicy.ABANDON,
                        search_attributes=adjustment_attributes(adjustment, workflow.now())
                        if self._indexed()
                        else None,
                        static_summary=adjustment_summary(adjustment),
                    )
                workflow.logger.warning(
                    "late invoice event handed to an adjustment",
                    extra=self._log(adjustment=adjustment.workflow_id),
                )
            await workflow.wait_condition(workflow.all_handlers_finished)

    def _late_events(self) -> list[tuple[str, PaymentReceived | CreditNoteReceived | VoidReceived]]:
        """The signals the ended saga has not handled: payments and credit notes still queued,
        and a void that came after it closed."""
        late: list[tuple[str, PaymentReceived | CreditNoteReceived | VoidReceived]] = [
            (f"payment {p.payment_id}", p) for p in self._payments
        ]
        late += [(f"credit note {n.credit_note_id}", n) for n in self._credit_notes]
        if self._void is not None and self._status.stage is InvoiceStage.CLOSED:
            late.append(("void", self._void))
        return late

    async def _open(self, invoice_id: str) -> None:
        """Read the invoice, build its schedule, post the receivable, tell CRM."""
        self._enter(InvoiceStage.RECEIVED)
        invoice = await self._step(
            InvoiceStep.FETCH_INVOICE,
            None,
            InvoiceActivity.BILLING_GET_INVOICE,
            GetInvoice(invoice_id=invoice_id),
            Invoice,
            TaskQueue.BILLING,
        )
        s = self._status
        s.account_id = invoice.account_id
        s.currency = invoice.currency
        s.total = invoice.total
        s.amount_due = invoice.total
        s.issue_date = invoice.issue_date
        s.due_date = invoice.due_date
        s.overdue_on = overdue_on(invoice.due_date, self._policy.grace)
        self._invoice = invoice
        if invoice.status is InvoiceStatus.VOID:
            # Voided before revsync read it: nothing was posted, nothing to reverse.
            s.amount_due = Decimal(0)
            s.reason = "the invoice was already void when revsync read it"
            self._enter(InvoiceStage.VOIDED)
            raise VoidedWhileParked
        schedule = build_schedule(invoice)
        self._schedule = schedule
        s.scheduled_revenue = sum((e.amount for e in schedule.entries), Decimal(0))
        s.next_close = next_close(schedule, None)

        self._enter(InvoiceStage.POSTING_RECEIVABLE)
        receivable = await self._step(
            InvoiceStep.POST_RECEIVABLE,
            None,
            InvoiceActivity.ERP_POST_RECEIVABLE,
            PostReceivable(
                invoice=invoice,
                customer_key=f"acct-{invoice.account_id}",
                external_id=f"{s.workflow_id}:receivable",
            ),
            Receivable,
            TaskQueue.ERP,
        )
        self._receivable = receivable
        s.receivable_id = receivable.receivable_id
        s.erp_customer_id = receivable.customer_id
        metrics.count(workflow.metric_meter(), metrics.INVOICES, event="posted")
        self._publish(
            InvoicePosted(
                invoice_id=invoice.invoice_id,
                account_id=invoice.account_id,
                currency=invoice.currency,
                total=invoice.total,
                tax=invoice.tax,
                issue_date=invoice.issue_date,
                due_date=invoice.due_date,
                erp_customer_id=receivable.customer_id,
                receivable_id=receivable.receivable_id,
            )
        )
        self._enter(InvoiceStage.AWAITING_PAYMENT)
        await self._notify_crm(ReceivableStatus.CURRENT)

    # -- revenue --------------------------------------------------------------------------

    async def _post_due_periods(self) -> bool:
        """Post the journals of every period closed by today; True when it posted one."""
        schedule = self._require_schedule()
        s = self._status
        posted_any = False
        for period in due_periods(schedule, s.recognised_through, self._today()):
            if self._void is not None:
                break  # the void cancels what is not recognised yet
            posted: list[str] = []
            amount = Decimal(0)
            for entry in schedule.entries_for(period):
                if entry.amount == 0:
                    continue
                journal = RevenueJournal.for_entry(
                    entry,
                    invoice_id=schedule.invoice_id,
                    currency=schedule.currency,
                    customer_id=s.erp_customer_id,
                )
                result = await self._attempt(
                    InvoiceStep.POST_JOURNAL,
                    entry.id,
                    InvoiceActivity.ERP_POST_REVENUE_JOURNAL,
                    journal,
                    JournalPosting,
                    TaskQueue.ERP,
                )
                # Skipped: the accountant posted it by hand; it is recognised all the same.
                posted.append(entry.id)
                amount += entry.amount if result is None else result.amount
            s.recognised_through = period
            s.recognised_revenue += amount
            s.periods_posted += 1
            s.journals_posted += len(posted)
            s.next_close = next_close(schedule, period)
            self._periods_this_run += 1
            posted_any = True
            workflow.logger.info(
                "period recognised",
                extra=self._log(period=period, amount=str(amount), journals=len(posted)),
            )
            self._publish(
                RevenueRecognized(
                    **self._fact(),
                    period=period,
                    amount=amount,
                    journal_ids=posted,
                    recognised_to_date=s.recognised_revenue,
                )
            )
            workflow.set_current_details(self._details())
            if self._time_to_continue():
                break
        return posted_any

    async def _apply_credit(self, note: CreditNoteReceived) -> None:
        """Take the credit note off the not-yet-recognised revenue and off what is due."""
        s = self._status
        schedule = self._require_schedule()
        problem: str | None = None
        updated: RevenueSchedule | None = None
        if note.currency != schedule.currency:
            problem = (
                f"credit note {note.credit_note_id} is in {note.currency}, the invoice in "
                f"{schedule.currency}"
            )
        elif note.unmatched:
            problem = (
                f"credit note {note.credit_note_id} has lines tied to no invoice line "
                f"({'; '.join(note.unmatched)}): adjust the revenue by hand"
            )
        else:
            try:
                updated = apply_credit(
                    schedule, note.lines, s.recognised_through, period_of(self._today())
                )
            except RevenueError as error:
                problem = f"credit note {note.credit_note_id}: {error}"
        if updated is None:
            self._start(InvoiceStep.APPLY_CREDIT_NOTE, note.credit_note_id)
            self._record(InvoiceStep.APPLY_CREDIT_NOTE, note.credit_note_id, FAILED, problem)
            await self._park(InvoiceStep.APPLY_CREDIT_NOTE, note.credit_note_id, problem or "")
            self._record(
                InvoiceStep.APPLY_CREDIT_NOTE, note.credit_note_id, SKIPPED, "handled by hand"
            )
            return
        self._schedule = updated
        s.credit_notes.append(note.credit_note_id)
        s.amount_credited += note.total
        s.amount_due = (s.total or Decimal(0)) - s.amount_paid - s.amount_credited
        s.scheduled_revenue = sum((e.amount for e in updated.entries), Decimal(0))
        s.next_close = next_close(updated, s.recognised_through)
        self._start(InvoiceStep.APPLY_CREDIT_NOTE, note.credit_note_id)
        self._record(
            InvoiceStep.APPLY_CREDIT_NOTE,
            note.credit_note_id,
            DONE,
            f"revenue schedule reduced by {sum(note.lines.values(), Decimal(0))} {note.currency}",
        )
        if workflow.patched("credit-receivable"):
            await self._credit_receivable(note)
        else:
            # Sagas started before the patch: the ERP receivable was credited by hand.
            workflow.logger.warning(
                "credit note applied to the revenue schedule; the ERP receivable needs a "
                "credit memo by hand",
                extra=self._log(credit_note_id=note.credit_note_id, total=str(note.total)),
            )
        await self._settle()

    async def _credit_receivable(self, note: CreditNoteReceived) -> None:
        """Credit the ERP receivable for the credit note's lines (and their tax) with one credit
        memo keyed by the credit note id."""
        s = self._status
        step, key = InvoiceStep.CREDIT_RECEIVABLE, note.credit_note_id
        credit: ReceivableCredit | None = None
        problem = ""
        try:
            credit = ReceivableCredit(
                external_id=key,
                invoice_id=s.invoice_id,
                receivable_id=self._require_receivable().receivable_id,
                currency=note.currency,
                lines=tuple(
                    CreditLine(
                        line_id=line_id,
                        amount=note.lines.get(line_id, Decimal(0)),
                        tax=note.tax.get(line_id, Decimal(0)),
                    )
                    for line_id in sorted(note.lines.keys() | note.tax.keys())
                ),
                reason=f"credit note {key} of invoice {s.invoice_id}",
            )
        except ValueError as error:
            problem = f"credit note {key} cannot be credited in the ERP: {error}"
        if credit is None:
            self._start(step, key)
            self._record(step, key, FAILED, problem)
            await self._park(step, key, problem)
            self._record(step, key, SKIPPED, "credited in the ERP by hand")
            return
        posting = await self._attempt(
            step, key, InvoiceActivity.ERP_CREDIT_RECEIVABLE, credit, CreditPosting, TaskQueue.ERP
        )
        if posting is None:
            return  # skipped: credited in the ERP by hand
        detail = f"credit memo {posting.credit_memo_id}: {posting.total} {posting.currency}"
        if posting.unapplied:
            detail += f", {posting.unapplied} left unapplied on the customer"
        if posting.total != note.total:
            detail += f" (billing credited {note.total}: settle the difference by hand)"
        self._record(step, key, DONE, detail)
        off = bool(posting.unapplied) or posting.total != note.total
        log = workflow.logger.warning if off else workflow.logger.info
        log("receivable credited", extra=self._log(credit_note_id=key, detail=detail))

    # -- payments and dunning -------------------------------------------------------------

    async def _apply_payment(self, payment: PaymentReceived) -> None:
        s = self._status
        receivable = self._require_receivable()
        paid_on = local_date(payment.paid_at, self._zone)
        posting = await self._attempt(
            InvoiceStep.APPLY_PAYMENT,
            payment.payment_id,
            InvoiceActivity.ERP_APPLY_PAYMENT,
            PaymentApplication(
                payment_id=payment.payment_id,
                invoice_id=s.invoice_id,
                receivable_id=receivable.receivable_id,
                amount=payment.amount,
                currency=payment.currency,
                paid_on=paid_on,
            ),
            PaymentPosting,
            TaskQueue.ERP,
        )
        applied = payment.amount if posting is None else posting.applied
        s.payments.append(
            PaymentRecord(
                payment_id=payment.payment_id,
                amount=payment.amount,
                paid_on=paid_on,
                applied=applied,
                erp_payment_id=None if posting is None else posting.payment_record_id,
            )
        )
        s.amount_paid += applied
        s.amount_due = (s.total or Decimal(0)) - s.amount_paid - s.amount_credited
        self._publish(
            PaymentApplied(
                **self._fact(),
                payment_id=payment.payment_id,
                amount=payment.amount,
                applied=applied,
                paid_on=paid_on,
                amount_due=s.amount_due,
            )
        )
        await self._settle()

    async def _settle(self) -> None:
        """Move to PAID once nothing is due, and show the new standing in CRM."""
        s = self._status
        self._show_standing()
        if (s.amount_due or Decimal(0)) > 0:
            await self._notify_crm(s.receivable_status or ReceivableStatus.CURRENT)
            return
        if s.stage is not InvoiceStage.PAID:
            metrics.count(workflow.metric_meter(), metrics.INVOICES, event="paid")
            self._enter(InvoiceStage.PAID)
        settled = ReceivableStatus.PAID if s.amount_paid > 0 else ReceivableStatus.VOID
        await self._notify_crm(settled)

    async def _mark_overdue(self) -> bool:
        s = self._status
        if (
            s.stage is not InvoiceStage.AWAITING_PAYMENT
            or s.overdue_on is None
            or self._today() < s.overdue_on
        ):
            return False
        workflow.logger.warning(
            "invoice overdue", extra=self._log(due_date=str(s.due_date), due=str(s.amount_due))
        )
        metrics.count(workflow.metric_meter(), metrics.INVOICES, event="overdue")
        self._enter(InvoiceStage.OVERDUE)
        await self._notify_crm(ReceivableStatus.OVERDUE)
        return True

    async def _notify_crm(self, status: ReceivableStatus) -> None:
        s = self._status
        if s.account_id is None or s.currency is None:
            return
        key = f"{status.value}:{s.amount_due}"
        done = await self._attempt(
            InvoiceStep.NOTIFY_CRM,
            key,
            InvoiceActivity.CRM_SET_RECEIVABLE_STATUS,
            SetReceivableStatus(
                account_id=s.account_id,
                status=status,
                invoice_id=s.invoice_id,
                amount_due=max(s.amount_due or Decimal(0), Decimal(0)),
                currency=s.currency,
                as_of=workflow.now(),
            ),
            str,
            TaskQueue.CRM,
        )
        if done is not None:
            s.receivable_status = status

    # -- void -----------------------------------------------------------------------------

    async def _reverse_all(self, void: VoidReceived) -> None:
        """Reverse the receivable, cancel the unrecognised revenue and reverse the
        recognised revenue with journals in the current period."""
        s = self._status
        schedule = self._require_schedule()
        receivable = self._require_receivable()
        self._enter(InvoiceStage.VOIDING)
        current = period_of(self._today())
        reversed_receivable = await self._attempt(
            InvoiceStep.REVERSE_RECEIVABLE,
            None,
            InvoiceActivity.ERP_REVERSE_RECEIVABLE,
            ReverseReceivable(
                receivable_id=receivable.receivable_id,
                external_id=f"{s.workflow_id}:void",
                reason=f"invoice {s.invoice_id} voided in billing",
            ),
            Receivable,
            TaskQueue.ERP,
        )
        if reversed_receivable is not None:
            self._receivable = reversed_receivable
        reversal = reverse(schedule, s.recognised_through, current)
        reversed_amount = Decimal(0)
        for entry in reversal.journals:
            result = await self._attempt(
                InvoiceStep.REVERSE_REVENUE,
                entry.id,
                InvoiceActivity.ERP_POST_REVENUE_JOURNAL,
                RevenueJournal.for_entry(
                    entry,
                    invoice_id=schedule.invoice_id,
                    currency=schedule.currency,
                    customer_id=s.erp_customer_id,
                ),
                JournalPosting,
                TaskQueue.ERP,
            )
            reversed_amount += entry.amount if result is None else result.amount
            s.journals_posted += 1
        cancelled = sum((e.amount for e in reversal.cancelled), Decimal(0))
        s.recognised_revenue += reversed_amount
        s.amount_due = Decimal(0)
        s.next_close = None
        s.voided_at = void.voided_at
        metrics.count(workflow.metric_meter(), metrics.INVOICES, event="voided")
        self._enter(InvoiceStage.VOIDED)
        self._publish(
            InvoiceVoided(
                **self._fact(),
                period=current,
                reversed_revenue=reversed_amount,
                cancelled_revenue=cancelled,
                receivable_id=s.receivable_id,
            )
        )
        await self._notify_crm(ReceivableStatus.VOID)

    # -- time -----------------------------------------------------------------------------

    def _today(self) -> date:
        return local_date(workflow.now(), self._zone)

    def _finished(self) -> bool:
        s = self._status
        return s.stage is InvoiceStage.PAID and s.next_close is None

    def _has_work(self) -> bool:
        return self._void is not None or bool(self._credit_notes) or bool(self._payments)

    async def _sleep(self) -> None:
        """Sleep (a durable timer) until the next period closes or the invoice turns overdue,
        or until a signal brings work."""
        s = self._status
        wake: list[date] = []
        if s.next_close is not None:
            wake.append(s.next_close)
        if s.stage is InvoiceStage.AWAITING_PAYMENT and s.overdue_on is not None:
            wake.append(s.overdue_on)
        if not wake:
            await workflow.wait_condition(self._has_work)
            return
        until = start_of(min(wake), self._zone)
        if workflow.patched(SPREAD_WAKE_UPS_PATCH):
            # Not every open invoice at midnight: each at its own moment of the spread.
            until += wake_offset(s.workflow_id, self._policy.wake_spread)
        delay = until - workflow.now()
        if delay <= timedelta(0):
            return
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                self._has_work, timeout=delay, timeout_summary=f"until {until:%Y-%m-%d %H:%M %Z}"
            )

    def _time_to_continue(self) -> bool:
        return (
            self._periods_this_run >= self._policy.periods_per_run
            or workflow.info().is_continue_as_new_suggested()
        )

    async def _continue_as_new(self, request: InvoiceToRevenueInput) -> NoReturn:
        policy = self._policy
        if workflow.patched(CURRENT_POLICY_PATCH):
            policies = await current_policies()
            policy = policies.invoice if policies is not None else policy
        undelivered: list[dict[str, Any]] = []
        if workflow.patched(CARRY_EVENTS_PATCH):
            # Never held open by a subscriber that is down: the next run sends them again.
            undelivered = await self._outbox.hand_over()
        else:
            await self._outbox.drain()
        await workflow.wait_condition(workflow.all_handlers_finished)
        s = self._status
        s.steps = s.steps[-MAX_STEP_RECORDS:]
        workflow.logger.info(
            "continuing as new",
            extra=self._log(
                run=s.run,
                history=workflow.info().get_current_history_length(),
                recognised_through=s.recognised_through,
            ),
        )
        workflow.continue_as_new(
            request.model_copy(
                update={
                    "policy": policy,
                    "carry": InvoiceCarry(
                        invoice=self._require_invoice(),
                        schedule=self._require_schedule(),
                        receivable=self._require_receivable(),
                        status=s,
                        pending_payments=self._payments,
                        pending_credit_notes=self._credit_notes,
                        void=self._void,
                        seen_payments=sorted(self._seen_payments),
                        seen_credit_notes=sorted(self._seen_credit_notes),
                        undelivered_events=undelivered,
                    ),
                }
            )
        )

    # -- steps and parking ----------------------------------------------------------------

    async def _step(
        self,
        step: InvoiceStep,
        key: str | None,
        activity: str,
        arg: Any,
        result_type: type[T],
        queue: str,
    ) -> T:
        result = await self._attempt(step, key, activity, arg, result_type, queue)
        assert result is not None, f"{step.value} cannot be skipped"
        return result

    async def _attempt(
        self,
        step: InvoiceStep,
        key: str | None,
        activity: str,
        arg: Any,
        result_type: type[T],
        queue: str,
    ) -> T | None:
        """Run ``step`` until it is done; None when an operator skipped it (done by hand).

        Transient failures retry for the policy's budget; a refusal or an exhausted budget
        parks the saga until an operator resolves it (nothing is ever compensated)."""
        budget = self._policy.step_retry_budget
        while True:
            self._start(step, key)
            try:
                result: T = await workflow.execute_activity(
                    activity,
                    arg,
                    result_type=result_type,
                    task_queue=queue,
                    start_to_close_timeout=ATTEMPT_TIMEOUT,
                    heartbeat_timeout=HEARTBEAT_TIMEOUT,
                    schedule_to_close_timeout=budget,
                    retry_policy=retry_policy(),
                    summary=step.value if key is None else f"{step.value} {key}",
                    priority=LEDGER_PRIORITY if step in REVENUE_STEPS else Priority(),
                )
            except ActivityError as error:
                rejected, reason = step_failure(error, budget)
                self._record(step, key, FAILED, reason)
                workflow.logger.warning(
                    "step failed",
                    extra=self._log(
                        step=step.value, key=key, reason=reason, rejected=rejected is not None
                    ),
                )
                decision = await self._park(step, key, reason)
                if decision.action is ResolveAction.RETRY:
                    continue
                self._record(step, key, SKIPPED, f"skipped by {decision.operator}: {decision.note}")
                return None
            self._record(step, key, DONE, None)
            return result

    async def _park(self, step: InvoiceStep, key: str | None, reason: str) -> ResolveRequest:
        """Wait, parked, for an operator's decision on ``step``. A void that arrives while the
        saga is parked before its receivable exists ends it: there is nothing to reverse."""
        resume = self._status.stage
        self._status.parked = InvoiceParked(
            step=step,
            key=key,
            reason=reason,
            since=workflow.now(),
            allowed=invoice_allowed_resolutions(step),
        )
        self._status.reason = f"{step.value}: {reason}"
        metrics.count(workflow.metric_meter(), metrics.INVOICES, event="parked")
        self._enter(InvoiceStage.NEEDS_ATTENTION, blocked=step)
        workflow.logger.warning("saga parked", extra=self._log(step=step.value, reason=reason))
        early = self._receivable is None
        await workflow.wait_condition(
            lambda: self._resolution is not None or (early and self._void is not None)
        )
        self._status.parked = None
        self._status.reason = None
        decision = self._resolution
        if decision is None:
            self._status.reason = f"voided in billing while parked at {step.value}"
            raise VoidedWhileParked
        self._resolution = None
        self._enter(resume)
        return decision

    # -- status, search attributes, Web UI, events -----------------------------------------

    def _start(self, step: InvoiceStep, key: str | None) -> None:
        steps = self._status.steps
        steps.append(
            InvoiceStepRecord(step=step, key=key, state=RUNNING, started_at=workflow.now())
        )
        if len(steps) > MAX_STEP_RECORDS:
            del steps[: len(steps) - MAX_STEP_RECORDS]

    def _record(self, step: InvoiceStep, key: str | None, state: str, detail: str | None) -> None:
        record = self._status.step(step, key)
        if record is None:
            return
        record.state = state
        record.finished_at = workflow.now()
        record.detail = detail

    def _fact(self) -> dict[str, Any]:
        s = self._status
        return {"invoice_id": s.invoice_id, "account_id": s.account_id, "currency": s.currency}

    def _publish(self, fact: EventData) -> None:
        """Publish ``fact`` in the background (workflows/publishing.py): the saga never waits
        for a subscriber; a run that ends waits for its publications, one that continues as
        new hands the undelivered ones to the next."""
        self._outbox.send(business_event(fact))

    def _log(self, **fields: Any) -> dict[str, Any]:
        return {
            "invoice_id": self._status.invoice_id,
            "customer_id": self._status.account_id,
            **fields,
        }

    def _indexed(self) -> bool:
        return workflow.info().typed_search_attributes.get(visibility.INVOICE_ID) is not None

    def _show_standing(self) -> None:
        """Keep what is due current in visibility and in the Web UI's details when it changes
        within a stage (a partial payment, a credit note), not only at the next stage."""
        s = self._status
        if not workflow.patched(STANDING_PATCH):
            return
        if self._indexed() and s.amount_due is not None:
            due = float(s.amount_due)
            if workflow.info().typed_search_attributes.get(visibility.INVOICE_AMOUNT_DUE) != due:
                workflow.upsert_search_attributes([visibility.INVOICE_AMOUNT_DUE.value_set(due)])
        workflow.set_current_details(self._details())

    def _enter(self, stage: InvoiceStage, *, blocked: InvoiceStep | None = None) -> None:
        """Move to ``stage``: fresh details for the Web UI and one search-attribute upsert."""
        s = self._status
        now = workflow.now()
        if s.stage is not stage:
            s.stage_since = now
        s.stage = stage
        extra = {} if blocked is None else {"blocked_step": blocked.value}
        workflow.logger.info("stage changed", extra=self._log(stage=stage.value, **extra))
        if self._indexed():
            attributes = workflow.info().typed_search_attributes
            updates: list[SearchAttributeUpdate[Any]] = [
                visibility.INVOICE_STAGE.value_set(stage.value),
                visibility.STAGE_SINCE.value_set(s.stage_since),
            ]
            if s.account_id is not None:
                updates.append(visibility.CUSTOMER_ID.value_set(s.account_id))
            if s.currency is not None:
                updates.append(visibility.CURRENCY.value_set(s.currency))
            if s.amount_due is not None:
                updates.append(visibility.INVOICE_AMOUNT_DUE.value_set(float(s.amount_due)))
            if blocked is not None:
                updates.append(visibility.BLOCKED_STEP.value_set(blocked.value))
            elif attributes.get(visibility.BLOCKED_STEP) is not None:
                updates.append(visibility.BLOCKED_STEP.value_unset())
            workflow.upsert_search_attributes(updates)
        workflow.set_current_details(self._details())

    def _details(self) -> str:
        s = self._status
        money = f"{s.total} {s.currency}" if s.total is not None else "(not read yet)"
        lines = [
            f"**Stage:** {s.stage.value} since {s.stage_since:%Y-%m-%d %H:%M} UTC",
            f"**Invoice:** {md(s.invoice_id)}, {money}, due {s.due_date or '-'}",
            f"**Customer:** {md(s.account_id) if s.account_id else '(not read yet)'}",
            f"**Paid:** {s.amount_paid}, **credited:** {s.amount_credited}, "
            f"**due:** {s.amount_due if s.amount_due is not None else '-'}",
            f"**Revenue recognised:** {s.recognised_revenue} of {s.scheduled_revenue or '-'} "
            f"(through {s.recognised_through or '-'}; next close {s.next_close or '-'})",
        ]
        if s.receivable_id:
            lines.append(f"**ERP receivable:** {md(s.receivable_id)}")
        if s.parked is not None:
            allowed = ", ".join(a.value for a in s.parked.allowed)
            lines.append(f"**Blocked step:** {s.parked.step.value} (operator may: {allowed})")
        if s.reason:
            lines.append(f"**Reason:** {md(s.reason)}")
        if s.decisions:
            last = s.decisions[-1]
            lines.append(
                f"**Last decision:** {md(last.action)} by {md(last.actor)}: "
                f"{md(last.note) if last.note else '-'}"
            )
        if note := shadow_note(s.workflow_id, (s.receivable_id, s.erp_customer_id)):
            lines.append(note)
        return "\n\n".join(lines)

    def _require_invoice(self) -> Invoice:
        assert self._invoice is not None, "the invoice is read first"
        return self._invoice

    def _require_schedule(self) -> RevenueSchedule:
        assert self._schedule is not None, "the schedule is built first"
        return self._schedule

    def _require_receivable(self) -> Receivable:
        assert self._receivable is not None, "the receivable is posted first"
        return self._receivable


def static_summary(invoice_id: str, total: str | None = None) -> str:
    """One line the Web UI shows in the workflow list."""
    return f"Invoice {invoice_id}" + (f" · {total}" if total else "")


def start_attributes(invoice_id: str, now: datetime) -> TypedSearchAttributes:
    """The search attributes an invoice saga is started with (findable at once)."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(visibility.INVOICE_ID, invoice_id),
            SearchAttributePair(visibility.INVOICE_STAGE, InvoiceStage.RECEIVED.value),
            SearchAttributePair(visibility.STAGE_SINCE, now),
        ]
    )
