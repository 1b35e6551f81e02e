"""InvoiceAdjustmentWorkflow: a late payment, credit note or void for an invoice whose
invoice-to-revenue saga has ended (CLOSED or VOIDED), booked against what that saga left.

Workflow id ``i2r-adj-<invoice>-<payment|credit_note|void>-<payment id|credit note id|void>``
(:func:`domain.invoice_adjustment.adjustment_workflow_id`), queue ``orchestration``, started
by the gateway when a billing event finds the invoice's saga ended
(``revsync/gateway/invoice_webhooks.py``, docs/invoice-to-revenue.md#late-events):

- **payment**: applied to the ERP receivable (``apply_payment``, keyed by the payment id);
  ``payment.applied`` published;
- **credit note**: checked against the revenue schedule (``apply_credit_note``); every
  period being recognised, the credit is taken back from recognised revenue by one journal
  per line in the current period (``reverse_revenue``, :func:`domain.revenue.take_back`;
  ``revenue.recognized`` published for the negative amount), then the ERP receivable is
  credited for its lines (``credit_receivable``, a credit memo keyed by the credit note id);
- **void**: the receivable reversed (``reverse_receivable``, the saga's own void key) and the
  recognised revenue reversed in the current period (``reverse_revenue``,
  :func:`domain.revenue.reverse`); ``invoice.voided`` published;

then CRM shows the invoice's new standing (``notify_crm``). A step the ERP refuses (a closed
period, a credit larger than what is owed on a paid invoice, a payment for a receivable with
nothing due), or one out of its retry budget, parks the adjustment (``InvoiceStage`` and
``BlockedStep`` like an invoice saga's, ``revsync stuck``) until an operator's ``resolve``:
retry, or skip once it is settled by hand. Nothing is compensated.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import SearchAttributePair, SearchAttributeUpdate, TypedSearchAttributes
from temporalio.exceptions import ActivityError

from workflows.kernel import ATTEMPT_TIMEOUT, HEARTBEAT_TIMEOUT, retry_policy, step_failure

with workflow.unsafe.imports_passed_through():
    from domain.contracts import TaskQueue
    from domain.events import EventData, InvoiceVoided, PaymentApplied, RevenueRecognized
    from domain.invoice_adjustment import (
        ADJUSTMENT_WORKFLOW_TYPE,
        AdjustmentKind,
        AdjustmentStage,
        InvoiceAdjustmentInput,
        InvoiceAdjustmentStatus,
        standing,
    )
    from domain.invoice_contracts import (
        MAX_STEP_RECORDS,
        CreditNoteReceived,
        InvoiceActivity,
        InvoiceDecision,
        InvoiceParked,
        InvoiceStage,
        InvoiceStep,
        InvoiceStepRecord,
        PaymentReceived,
        PaymentRecord,
        ReverseReceivable,
        SetReceivableStatus,
        VoidReceived,
        invoice_allowed_resolutions,
        invoice_resolution_problem,
        invoice_workflow_id,
        local_date,
    )
    from domain.receivable import (
        CreditLine,
        CreditPosting,
        JournalPosting,
        PaymentApplication,
        PaymentPosting,
        Receivable,
        ReceivableCredit,
        RevenueJournal,
    )
    from domain.revenue import RevenueEntry, RevenueError, period_of, reverse, take_back
    from domain.saga import ResolveAction, ResolveRequest
    from revsync import metrics
    from workflows import visibility
    from workflows.publishing import business_event, publish
    from workflows.visibility import md

T = TypeVar("T")

RUNNING, DONE, FAILED, SKIPPED = "running", "done", "failed", "skipped"


@workflow.defn(name=ADJUSTMENT_WORKFLOW_TYPE)
class InvoiceAdjustmentWorkflow:
    @workflow.init
    def __init__(self, request: InvoiceAdjustmentInput) -> None:
        base = request.base.status
        self._zone = request.accounting_timezone
        self._policy = request.policy
        self._base = request.base
        self._status = InvoiceAdjustmentStatus(
            workflow_id=workflow.info().workflow_id,
            invoice_id=request.invoice_id,
            saga_workflow_id=invoice_workflow_id(request.invoice_id),
            saga_stage=base.stage,
            kind=request.kind,
            key=request.key,
            event_id=request.event_id,
            stage=AdjustmentStage.ADJUSTING,
            stage_since=workflow.info().start_time,
            account_id=base.account_id,
            currency=base.currency,
            total=base.total,
            amount_paid=base.amount_paid,
            amount_credited=base.amount_credited,
            amount_due=base.amount_due,
            erp_customer_id=base.erp_customer_id,
            receivable_id=base.receivable_id,
            receivable_status=base.receivable_status,
            voided_at=base.voided_at,
        )
        self._resolution: ResolveRequest | None = None
        self._publishing: list[asyncio.Task[None]] = []

    @workflow.query(name="status")
    def status(self) -> InvoiceAdjustmentStatus:
        return self._status

    @workflow.update(name="resolve")
    def resolve(self, request: ResolveRequest) -> InvoiceDecision:
        """An operator's decision on the parked step: retry, or skip (settled by hand)."""
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
                f"adjustment {self._status.workflow_id} is not waiting for an operator "
                f"(stage {self._status.stage.value})"
            )
        problem = invoice_resolution_problem(parked.step, request.action)
        if problem is not None:
            raise ValueError(problem)

    # -- the adjustment -------------------------------------------------------------------

    @workflow.run
    async def run(self, request: InvoiceAdjustmentInput) -> InvoiceAdjustmentStatus:
        self._enter(AdjustmentStage.ADJUSTING)
        workflow.logger.info(
            "late invoice event",
            extra=self._log(
                kind=request.kind.value, key=request.key, saga=self._base.status.stage.value
            ),
        )
        if request.payment is not None:
            await self._payment(request.payment)
        elif request.credit_note is not None:
            await self._credit_note(request.credit_note)
        elif request.void is not None:
            await self._void(request.void)
        await self._notify_crm()
        metrics.count(workflow.metric_meter(), metrics.INVOICES, event="adjusted")
        self._enter(AdjustmentStage.ADJUSTED)
        await asyncio.gather(*self._publishing)
        return self._status

    async def _payment(self, payment: PaymentReceived) -> None:
        s = self._status
        step, key = InvoiceStep.APPLY_PAYMENT, payment.payment_id
        paid_on = local_date(payment.paid_at, self._zone)
        receivable = self._base.receivable
        posting: PaymentPosting | None = None
        if receivable is None:
            await self._refuse(
                step,
                key,
                "no receivable was posted for the invoice (its saga ended before "
                "posting one): settle the payment by hand, then skip",
            )
        else:
            posting = await self._attempt(
                step,
                key,
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
        s.payment = PaymentRecord(
            payment_id=payment.payment_id,
            amount=payment.amount,
            paid_on=paid_on,
            applied=applied,
            erp_payment_id=None if posting is None else posting.payment_record_id,
        )
        s.amount_paid += applied
        s.amount_due = self._due()
        if s.account_id is not None and s.currency is not None:
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

    async def _credit_note(self, note: CreditNoteReceived) -> None:
        s = self._status
        key = note.credit_note_id
        schedule = self._base.schedule
        current = period_of(self._today())
        journals: tuple[RevenueEntry, ...] = ()
        problem: str | None = None
        if self._base.status.stage is InvoiceStage.VOIDED:
            problem = f"the invoice was voided: credit note {key} has nothing left to credit"
        elif schedule is None or self._base.receivable is None:
            problem = "the invoice's saga ended before posting it: nothing to credit"
        elif note.currency != schedule.currency:
            problem = f"credit note {key} is in {note.currency}, the invoice in {schedule.currency}"
        elif note.unmatched:
            problem = (
                f"credit note {key} has lines tied to no invoice line "
                f"({'; '.join(note.unmatched)}): adjust the revenue by hand"
            )
        else:
            try:
                journals = take_back(
                    schedule, note.lines, self._base.status.recognised_through, current, key
                )
            except RevenueError as error:
                problem = f"credit note {key}: {error}"
        if problem is not None:
            # Settled by hand (as the invoice saga does with a credit note that does not fit).
            await self._refuse(InvoiceStep.APPLY_CREDIT_NOTE, key, problem)
            return
        self._start(InvoiceStep.APPLY_CREDIT_NOTE, key)
        taken = sum((j.amount for j in journals), Decimal(0))
        self._record(
            InvoiceStep.APPLY_CREDIT_NOTE, key, DONE, f"{-taken} {note.currency} to take back"
        )
        # The revenue first: it is booked even while the credit memo waits for a person.
        posted = await self._post(journals)
        s.revenue_taken_back += -posted
        if journals and s.account_id is not None and s.currency is not None:
            recognised = self._base.status.recognised_revenue - s.revenue_taken_back
            self._publish(
                RevenueRecognized(
                    **self._fact(),
                    period=current,
                    amount=posted,
                    journal_ids=[j.id for j in journals],
                    recognised_to_date=recognised,
                )
            )
        await self._credit_receivable(note)
        s.amount_credited += note.total
        s.amount_due = self._due()

    async def _credit_receivable(self, note: CreditNoteReceived) -> None:
        """Credit the ERP receivable for the credit note's lines and tax (one credit memo
        keyed by the credit note id), as the invoice saga does."""
        s = self._status
        step, key = InvoiceStep.CREDIT_RECEIVABLE, note.credit_note_id
        receivable = self._base.receivable
        assert receivable is not None  # checked by the caller
        try:
            credit = ReceivableCredit(
                external_id=key,
                invoice_id=s.invoice_id,
                receivable_id=receivable.receivable_id,
                currency=note.currency,
                lines=tuple(
                    CreditLine(
                        line_id=line_id,
                        amount=note.lines.get(line_id, Decimal(0)),
                        tax=note.tax.get(line_id, Decimal(0)),
                    )
                    for line_id in sorted(note.lines.keys() | note.tax.keys())
                ),
                reason=f"credit note {key} of invoice {s.invoice_id} (after its saga ended)",
            )
        except ValueError as error:
            await self._refuse(step, key, f"credit note {key} cannot be credited: {error}")
            return
        posting = await self._attempt(
            step, key, InvoiceActivity.ERP_CREDIT_RECEIVABLE, credit, CreditPosting, TaskQueue.ERP
        )
        if posting is None:
            return  # skipped: credited in the ERP by hand
        s.credit_memo_id = posting.credit_memo_id
        detail = f"credit memo {posting.credit_memo_id}: {posting.total} {posting.currency}"
        if posting.unapplied:
            detail += f", {posting.unapplied} left unapplied on the customer"
        self._record(step, key, DONE, detail)

    async def _void(self, void: VoidReceived) -> None:
        s = self._status
        receivable = self._base.receivable
        if receivable is not None:
            await self._attempt(
                InvoiceStep.REVERSE_RECEIVABLE,
                None,
                InvoiceActivity.ERP_REVERSE_RECEIVABLE,
                ReverseReceivable(
                    receivable_id=receivable.receivable_id,
                    # The saga's own void key: the ERP reverses an invoice once, whoever asks.
                    external_id=f"{s.saga_workflow_id}:void",
                    reason=f"invoice {s.invoice_id} voided in billing (after its saga ended)",
                ),
                Receivable,
                TaskQueue.ERP,
            )
        schedule = self._base.schedule
        current = period_of(self._today())
        reversed_amount = Decimal(0)
        cancelled = Decimal(0)
        if schedule is not None:
            try:
                reversal = reverse(schedule, self._base.status.recognised_through, current)
            except RevenueError as error:
                await self._refuse(InvoiceStep.REVERSE_REVENUE, None, str(error))
            else:
                reversed_amount = await self._post(reversal.journals)
                cancelled = sum((e.amount for e in reversal.cancelled), Decimal(0))
        s.revenue_taken_back += -reversed_amount
        s.amount_due = Decimal(0)
        s.voided_at = void.voided_at
        metrics.count(workflow.metric_meter(), metrics.INVOICES, event="voided")
        if s.account_id is not None and s.currency is not None:
            self._publish(
                InvoiceVoided(
                    **self._fact(),
                    period=current,
                    reversed_revenue=reversed_amount,
                    cancelled_revenue=cancelled,
                    receivable_id=s.receivable_id,
                )
            )

    async def _post(self, journals: tuple[RevenueEntry, ...]) -> Decimal:
        """Post the reversal journals (each keyed by its entry id); what they moved."""
        s = self._status
        moved = Decimal(0)
        for entry in journals:
            result = await self._attempt(
                InvoiceStep.REVERSE_REVENUE,
                entry.id,
                InvoiceActivity.ERP_POST_REVENUE_JOURNAL,
                RevenueJournal.for_entry(
                    entry,
                    invoice_id=s.invoice_id,
                    currency=s.currency or "",
                    customer_id=s.erp_customer_id,
                ),
                JournalPosting,
                TaskQueue.ERP,
            )
            # Skipped: the accountant posted it by hand; it counts all the same.
            moved += entry.amount if result is None else result.amount
            s.journals.append(entry.id)
        return moved

    async def _notify_crm(self) -> None:
        """Show the invoice's new standing on the CRM account."""
        s = self._status
        if s.account_id is None or s.currency is None:
            return
        due = s.amount_due or Decimal(0)
        status = standing(voided=s.voided_at is not None, amount_due=due, amount_paid=s.amount_paid)
        done = await self._attempt(
            InvoiceStep.NOTIFY_CRM,
            f"{status.value}:{due}",
            InvoiceActivity.CRM_SET_RECEIVABLE_STATUS,
            SetReceivableStatus(
                account_id=s.account_id,
                status=status,
                invoice_id=s.invoice_id,
                amount_due=max(due, Decimal(0)),
                currency=s.currency,
                as_of=workflow.now(),
            ),
            str,
            TaskQueue.CRM,
        )
        if done is not None:
            s.receivable_status = status

    # -- steps and parking ----------------------------------------------------------------

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
        Transient failures retry for the policy's budget; a refusal or a spent budget parks."""
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
                )
            except ActivityError as error:
                _, reason = step_failure(error, budget)
                self._record(step, key, FAILED, reason)
                decision = await self._park(step, key, reason)
                if decision.action is ResolveAction.RETRY:
                    continue
                self._record(step, key, SKIPPED, f"skipped by {decision.operator}: {decision.note}")
                return None
            self._record(step, key, DONE, None)
            return result

    async def _refuse(self, step: InvoiceStep, key: str | None, problem: str) -> None:
        """A step the rules refuse before any system is asked: parked until it is settled by
        hand and skipped (a retry finds the same refusal and parks again)."""
        while True:
            self._start(step, key)
            self._record(step, key, FAILED, problem)
            decision = await self._park(step, key, problem)
            if decision.action is not ResolveAction.RETRY:
                self._record(step, key, SKIPPED, f"skipped by {decision.operator}: {decision.note}")
                return

    async def _park(self, step: InvoiceStep, key: str | None, reason: str) -> ResolveRequest:
        s = self._status
        s.parked = InvoiceParked(
            step=step,
            key=key,
            reason=reason,
            since=workflow.now(),
            allowed=invoice_allowed_resolutions(step),
        )
        s.reason = f"{step.value}: {reason}"
        metrics.count(workflow.metric_meter(), metrics.INVOICES, event="parked")
        self._enter(AdjustmentStage.NEEDS_ATTENTION, blocked=step)
        workflow.logger.warning(
            "adjustment parked", extra=self._log(step=step.value, reason=reason)
        )
        await workflow.wait_condition(lambda: self._resolution is not None)
        decision = self._resolution
        assert decision is not None
        self._resolution = None
        s.parked = None
        s.reason = None
        self._enter(AdjustmentStage.ADJUSTING)
        return decision

    # -- status, search attributes, Web UI, events -----------------------------------------

    def _start(self, step: InvoiceStep, key: str | None) -> None:
        steps = self._status.steps
        steps.append(
            InvoiceStepRecord(step=step, key=key, state=RUNNING, started_at=workflow.now())
        )
        del steps[:-MAX_STEP_RECORDS]

    def _record(self, step: InvoiceStep, key: str | None, state: str, detail: str | None) -> None:
        record = self._status.step(step.value, key)
        if record is None:
            return
        record.state = state
        record.finished_at = workflow.now()
        record.detail = detail

    def _due(self) -> Decimal:
        s = self._status
        return (s.total or Decimal(0)) - s.amount_paid - s.amount_credited

    def _today(self) -> date:
        return local_date(workflow.now(), self._zone)

    def _fact(self) -> dict[str, Any]:
        s = self._status
        return {"invoice_id": s.invoice_id, "account_id": s.account_id, "currency": s.currency}

    def _publish(self, fact: EventData) -> None:
        """Publish ``fact`` in the background; the adjustment ends once it is delivered."""
        self._publishing.append(asyncio.create_task(publish(business_event(fact))))

    def _log(self, **fields: Any) -> dict[str, Any]:
        return {
            "invoice_id": self._status.invoice_id,
            "customer_id": self._status.account_id,
            "adjustment": self._status.workflow_id,
            **fields,
        }

    def _enter(self, stage: AdjustmentStage, *, blocked: InvoiceStep | None = None) -> None:
        """Move to ``stage``: fresh details for the Web UI and one search-attribute upsert."""
        s = self._status
        now = workflow.now()
        if s.stage is not stage:
            s.stage_since = now
        s.stage = stage
        attributes = workflow.info().typed_search_attributes
        if attributes.get(visibility.INVOICE_ID) is not None:
            updates: list[SearchAttributeUpdate[Any]] = [
                visibility.INVOICE_STAGE.value_set(stage.value),
                visibility.STAGE_SINCE.value_set(s.stage_since),
            ]
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
        lines = [
            f"**Stage:** {s.stage.value} since {s.stage_since:%Y-%m-%d %H:%M} UTC",
            f"**Late {s.kind.value.replace('_', ' ')}:** {md(s.key)} for invoice "
            f"{md(s.invoice_id)}, whose saga {md(s.saga_workflow_id)} ended "
            f"{s.saga_stage.value}",
            f"**Customer:** {md(s.account_id) if s.account_id else '-'}",
            f"**Paid:** {s.amount_paid}, **credited:** {s.amount_credited}, "
            f"**due:** {s.amount_due if s.amount_due is not None else '-'} {s.currency or ''}",
        ]
        if s.receivable_id:
            lines.append(f"**ERP receivable:** {md(s.receivable_id)}")
        if s.credit_memo_id:
            lines.append(f"**ERP credit memo:** {md(s.credit_memo_id)}")
        if s.journals:
            lines.append(f"**Revenue taken back:** {s.revenue_taken_back} ({len(s.journals)})")
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
        return "\n\n".join(lines)


def static_summary(request: InvoiceAdjustmentInput) -> str:
    """One line the Web UI shows in the workflow list."""
    kind = request.kind.value.replace("_", " ")
    return f"Late {kind} {md(request.key)} · invoice {md(request.invoice_id)}"


def start_attributes(request: InvoiceAdjustmentInput, now: datetime) -> TypedSearchAttributes:
    """The search attributes an adjustment is started with (findable at once, like the
    invoice's saga: ``InvoiceId``, ``CustomerId``, ``Currency``)."""
    base = request.base.status
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(visibility.INVOICE_ID, request.invoice_id),
        SearchAttributePair(visibility.INVOICE_STAGE, AdjustmentStage.ADJUSTING.value),
        SearchAttributePair(visibility.STAGE_SINCE, now),
    ]
    if base.account_id is not None:
        pairs.append(SearchAttributePair(visibility.CUSTOMER_ID, base.account_id))
    if base.currency is not None:
        pairs.append(SearchAttributePair(visibility.CURRENCY, base.currency))
    return TypedSearchAttributes(pairs)


__all__ = ["AdjustmentKind", "InvoiceAdjustmentWorkflow", "start_attributes", "static_summary"]
