"""QuoteToCashWorkflow: an accepted quote becomes an ERP sales order, a billing subscription
and a CRM order record, or nothing at all.

Steps (workflow id ``q2c-<quote id>``, queue ``orchestration``):

1. read and check the CRM account                   (crm)     stage VALIDATING
2. check every line against the ERP catalog         (erp)     - rejects before any side effect
3. if the approval policy says so, wait for approve/reject     stage AWAITING_APPROVAL
4. upsert the ERP customer, create the sales order  (erp)     stage BOOKING_ERP
5. upsert the billing customer, create subscription (billing) stage PROVISIONING_BILLING
6. record the order in CRM, mark the quote ordered  (crm)     stage UPDATING_CRM
7. BOOKED

A rejection (non-retryable) of steps 1-5 unwinds: the done side effects are undone in reverse
order (cancel subscription, void invoice, cancel ERP order), the CRM quote is marked Rejected
with the reason, and the saga ends COMPENSATED (REJECTED when nothing had been booked).

A step whose retry budget runs out, a step the vendor refuses for revsync's own credentials
(``VendorMisconfigured``: parked at once, not retried, nothing compensated), a rejected CRM
write-back and a compensation that keeps failing do not fail the saga: it parks
(NEEDS_ATTENTION, ``BlockedStep``) and waits for an operator's ``resolve`` update (retry,
compensate or skip, as ``domain.saga`` allows).

Each ending (BOOKED, REJECTED, COMPENSATED) and each parking is published as a business event
(``workflows.publishing``, patch ``publish-business-events``); the workflow ends once they
are delivered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from domain.approval import (
        ApprovalFacts,
        ApprovalRequirement,
        ApproverRole,
        approval_requirement,
        approve_problem,
        reject_problem,
    )
    from domain.contracts import (
        Activity,
        BookedSalesOrder,
        BookSalesOrder,
        CancelKeyedSalesOrder,
        CancelKeyedSubscription,
        CancelSalesOrder,
        CancelSubscription,
        CatalogCheckResult,
        CheckCatalog,
        CrmOrderRecord,
        FetchAccount,
        KeyedCancellation,
        MarkQuoteRejected,
        ProvisionedSubscription,
        ProvisionSubscription,
        RecordOrderInCrm,
        TaskQueue,
        VoidInvoice,
    )
    from domain.customer import CreditCheck, Customer
    from domain.events import (
        EventData,
        OrderCompensated,
        OrderParked,
        QuoteBooked,
        QuoteRejected,
    )
    from domain.order import (
        Invoice,
        SalesOrder,
        Subscription,
        build_sales_order,
        build_subscription,
    )
    from domain.quote import Quote
    from domain.saga import (
        COMPENSATION_STEPS,
        ApprovalState,
        ApproveRequest,
        OperatorDecision,
        ParkedState,
        QuoteToCashInput,
        QuoteToCashStatus,
        RejectRequest,
        ResolveAction,
        ResolveRequest,
        SagaPolicy,
        SlaBreach,
        Step,
        StepRecord,
        StepState,
        allowed_resolutions,
        resolution_problem,
    )
    from domain.shadow import shadow_note
    from domain.stages import OrderStage
    from revsync import metrics
    from workflows import visibility
    from workflows.kernel import (
        ATTEMPT_TIMEOUT,
        BOOKING_PRIORITY,
        HEARTBEAT_TIMEOUT,
        retry_policy,
        step_failure,
    )
    from workflows.publishing import business_event, publish
    from workflows.visibility import md

T = TypeVar("T")

# Business events (quote.booked, quote.rejected, order.compensated, order.parked) came with
# this patch; histories recorded before it replay without them.
PUBLISH_EVENTS_PATCH = "publish-business-events"
# A step that makes a vendor record has its undo, by the record's key, before it runs: an
# outcome never known (the answer lost, the budget spent) is still compensated.
UNDO_BY_KEY_PATCH = "undo-by-key-before-each-step"


class SagaRejected(Exception):
    """The quote cannot be booked; what is done must be undone."""

    def __init__(self, step: Step, reason: str) -> None:
        super().__init__(reason)
        self.step = step
        self.reason = reason


@workflow.defn(name="QuoteToCash")
class QuoteToCashWorkflow:
    @workflow.init
    def __init__(self, request: QuoteToCashInput) -> None:
        quote = request.quote
        self._quote = quote
        self._policy: SagaPolicy = request.policy
        self._status = QuoteToCashStatus(
            workflow_id=workflow.info().workflow_id,
            quote_id=quote.quote_id,
            account_id=quote.account_id,
            amount=quote.total,
            currency=quote.currency,
            stage=OrderStage.RECEIVED,
            stage_since=workflow.info().start_time,
        )
        # Undo actions for done side effects, run last-in first-out.
        self._compensations: list[tuple[Step, Callable[[], Awaitable[str | None]]]] = []
        # The undo of the step under way, by the key of what it makes (None: no such step).
        # It runs first if the saga unwinds before the step's answer came: the vendor may
        # have made the record though the answer was lost. True when something was undone.
        self._undo_by_key: Callable[[], Awaitable[bool]] | None = None
        self._requirement: ApprovalRequirement | None = None
        self._approval_decision: ApproveRequest | RejectRequest | None = None
        self._resolution: ResolveRequest | None = None
        # The step whose rejection (or an operator's compensate) unwinds the saga.
        self._failed_step: Step | None = None
        # Business events being published; the saga ends once every one is delivered.
        self._publishing: list[asyncio.Task[None]] = []

    # -- what operators see and do --------------------------------------------------------

    @workflow.query(name="status")
    def status(self) -> QuoteToCashStatus:
        return self._status

    @workflow.update(name="resolve")
    def resolve(self, request: ResolveRequest) -> OperatorDecision:
        """An operator's decision on the parked step: retry, compensate or skip."""
        parked = self._status.parked
        assert parked is not None  # the validator let it through
        self._resolution = request
        return self._decide(request.operator, None, request.action.value, parked.step, request.note)

    @resolve.validator
    def _validate_resolve(self, request: ResolveRequest) -> None:
        parked = self._status.parked
        if parked is None or self._resolution is not None:
            raise ValueError(
                f"quote {self._quote.quote_id} is not waiting for an operator "
                f"(stage {self._status.stage.value})"
            )
        problem = resolution_problem(parked.step, request.action)
        if problem is not None:
            raise ValueError(problem)

    @workflow.update(name="approve")
    def approve(self, request: ApproveRequest) -> OperatorDecision:
        """Approve the quote; booking goes on at once."""
        self._approval_decision = request
        return self._decide_approval(request.approver.name, request, "approve", request.note)

    @approve.validator
    def _validate_approve(self, request: ApproveRequest) -> None:
        problem = approve_problem(self._pending_requirement(), request.approver, self._quote.owner)
        if problem is not None:
            raise ValueError(problem)

    @workflow.update(name="reject")
    def reject(self, request: RejectRequest) -> OperatorDecision:
        """Reject the quote: nothing is booked, the CRM quote is marked Rejected."""
        self._approval_decision = request
        return self._decide_approval(request.approver.name, request, "reject", request.reason)

    @reject.validator
    def _validate_reject(self, request: RejectRequest) -> None:
        problem = reject_problem(
            self._pending_requirement(), request.approver, self._quote.owner, request.reason
        )
        if problem is not None:
            raise ValueError(problem)

    def _pending_requirement(self) -> ApprovalRequirement:
        """The approval being waited for; refused once decided or expired (the window is
        closed then, even while the saga goes on rejecting the quote)."""
        approval = self._status.approval
        closed = approval is not None and approval.decided is not None
        if self._requirement is None or self._approval_decision is not None or closed:
            raise ValueError(
                f"quote {self._quote.quote_id} is not awaiting approval "
                f"(stage {self._status.stage.value})"
            )
        return self._requirement

    def _decide_approval(
        self, actor: str, request: ApproveRequest | RejectRequest, action: str, note: str | None
    ) -> OperatorDecision:
        decision = self._decide(actor, request.approver.role, action, Step.AWAIT_APPROVAL, note)
        if self._status.approval is not None:
            self._status.approval.decided = decision
        return decision

    def _decide(
        self, actor: str, role: ApproverRole | None, action: str, step: Step, note: str | None
    ) -> OperatorDecision:
        decision = OperatorDecision(
            at=workflow.now(), actor=actor, role=role, action=action, step=step, note=note
        )
        self._status.decisions.append(decision)
        workflow.logger.info(
            "decision recorded",
            extra=self._log(step=step.value, action=action, actor=actor, role=role, note=note),
        )
        return decision

    # -- the saga -------------------------------------------------------------------------

    @workflow.run
    async def run(self, request: QuoteToCashInput) -> QuoteToCashStatus:
        quote = request.quote
        sla: asyncio.Task[None] | None = None
        metrics.count(workflow.metric_meter(), metrics.QUOTES_RECEIVED)
        try:
            customer = await self._validate(quote)
            await self._approval(quote, customer)
            sla = asyncio.create_task(self._watch_booking_sla())
            await self._book(quote, customer)
        except SagaRejected as rejected:
            await self._unwind(rejected)
        finally:
            if sla is not None:
                sla.cancel()
        # At least once: the outcome is final, but the workflow stays Running until its
        # events are delivered (workflows/publishing.py).
        await asyncio.gather(*self._publishing)
        return self._status

    async def _validate(self, quote: Quote) -> Customer:
        self._enter(OrderStage.VALIDATING)
        customer = await self._step(
            Step.FETCH_ACCOUNT,
            Activity.CRM_FETCH_ACCOUNT,
            FetchAccount(account_id=quote.account_id),
            Customer,
            TaskQueue.CRM,
        )
        self._status.customer_name = customer.name
        check = await self._step(
            Step.CHECK_CATALOG,
            Activity.ERP_CHECK_CATALOG,
            CheckCatalog(quote=quote),
            CatalogCheckResult,
            TaskQueue.ERP,
        )
        if check.mismatches:
            listing = "; ".join(f"{m.line_id} ({m.sku}): {m.reason}" for m in check.mismatches)
            self._record(Step.CHECK_CATALOG, StepState.FAILED, detail=listing)
            raise SagaRejected(
                Step.CHECK_CATALOG, f"quote does not match the ERP catalog: {listing}"
            )
        return customer

    async def _approval(self, quote: Quote, customer: Customer) -> None:
        """Stop before any side effect when the approval policy asks for a human decision."""
        policy = self._policy.approval
        facts = ApprovalFacts(
            is_new_customer=not customer.existing_customer,
            credit_check_approved=(
                None
                if customer.credit_check is None
                else customer.credit_check is CreditCheck.APPROVED
            ),
        )
        requirement = approval_requirement(quote, facts, policy)
        if not requirement.needed:
            return
        self._requirement = requirement
        self._status.approval = ApprovalState(
            reasons=requirement.reasons,
            required_role=requirement.required_role,
            requested_at=workflow.now(),
        )
        self._start(Step.AWAIT_APPROVAL)
        self._enter(OrderStage.AWAITING_APPROVAL)

        def decided() -> bool:
            return self._approval_decision is not None

        if not await self._wait(decided, policy.escalate_after):
            self._status.approval.escalated_at = workflow.now()
            self._breach(
                "approval",
                f"not approved within {policy.escalate_after}; needs {requirement.required_role}",
            )
            if not await self._wait(decided, policy.expire_after - policy.escalate_after):
                reason = f"approval expired: no decision within {policy.expire_after}"
                self._status.approval.decided = self._decide(
                    "revsync", None, "expire", Step.AWAIT_APPROVAL, reason
                )
                self._observe_approval_wait()
                self._record(Step.AWAIT_APPROVAL, StepState.FAILED, detail=reason)
                raise SagaRejected(Step.AWAIT_APPROVAL, reason)

        self._observe_approval_wait()
        decision = self._approval_decision
        who = f"{decision.approver.name} ({decision.approver.role})" if decision else "?"
        if isinstance(decision, RejectRequest):
            reason = f"rejected by {who}: {decision.reason}"
            self._record(Step.AWAIT_APPROVAL, StepState.FAILED, detail=reason)
            raise SagaRejected(Step.AWAIT_APPROVAL, reason)
        self._record(Step.AWAIT_APPROVAL, StepState.DONE, detail=f"approved by {who}")

    async def _book(self, quote: Quote, customer: Customer) -> None:
        workflow_id = self._status.workflow_id
        self._enter(OrderStage.BOOKING_ERP)
        order_key = f"{workflow_id}:erp-order"
        if workflow.patched(UNDO_BY_KEY_PATCH):
            self._undo_by_key = lambda: self._cancel_keyed_order(order_key)
        booked = await self._step(
            Step.BOOK_ERP_ORDER,
            Activity.ERP_BOOK_SALES_ORDER,
            BookSalesOrder(
                customer=customer,
                customer_key=f"acct-{quote.account_id}",
                order=build_sales_order(quote, external_id=order_key),
            ),
            BookedSalesOrder,
            TaskQueue.ERP,
        )
        self._undo_by_key = None
        order = booked.order
        self._status.erp_customer_id = booked.customer_id
        self._status.erp_order_id = order.order_id
        self._ids(
            Step.BOOK_ERP_ORDER, erp_customer_id=booked.customer_id, erp_order_id=order.order_id
        )
        self._compensations.append((Step.CANCEL_ERP_ORDER, lambda: self._cancel_order(order)))

        self._enter(OrderStage.PROVISIONING_BILLING)
        subscription_key = f"{workflow_id}:subscription"
        if workflow.patched(UNDO_BY_KEY_PATCH):
            self._undo_by_key = lambda: self._cancel_keyed_subscription(subscription_key)
        provisioned = await self._step(
            Step.PROVISION_BILLING,
            Activity.BILLING_PROVISION_SUBSCRIPTION,
            ProvisionSubscription(
                customer=customer,
                customer_key=f"{workflow_id}:billing-customer",
                subscription=build_subscription(quote, idempotency_key=subscription_key),
            ),
            ProvisionedSubscription,
            TaskQueue.BILLING,
        )
        self._undo_by_key = None
        subscription = provisioned.subscription
        self._status.billing_customer_id = provisioned.customer_id
        self._status.subscription_id = subscription.subscription_id
        self._status.invoice_id = subscription.latest_invoice_id
        self._ids(
            Step.PROVISION_BILLING,
            billing_customer_id=provisioned.customer_id,
            subscription_id=subscription.subscription_id,
            **(
                {"invoice_id": subscription.latest_invoice_id}
                if subscription.latest_invoice_id
                else {}
            ),
        )
        if subscription.latest_invoice_id:
            invoice_id = subscription.latest_invoice_id
            self._compensations.append((Step.VOID_INVOICE, lambda: self._void_invoice(invoice_id)))
        self._compensations.append(
            (Step.CANCEL_SUBSCRIPTION, lambda: self._cancel_subscription(subscription))
        )

        self._enter(OrderStage.UPDATING_CRM)
        # The order is booked in the financial systems by now: a CRM failure never unwinds
        # it. A rejected write-back parks like an exhausted one; skip leaves CRM to a person.
        record = await self._attempt(
            Step.UPDATE_CRM,
            Activity.CRM_RECORD_ORDER,
            RecordOrderInCrm(
                quote_id=quote.quote_id,
                account_id=quote.account_id,
                order_key=f"{workflow_id}:crm-order",
                sales_order=order,
                subscription=subscription,
            ),
            CrmOrderRecord,
            TaskQueue.CRM,
        )
        if record is not None:
            self._status.crm_order_id = record.crm_order_id
            self._status.crm_status = record.quote_status
            self._ids(Step.UPDATE_CRM, crm_order_id=record.crm_order_id)
        self._status.reason = None
        self._enter(OrderStage.BOOKED)
        self._publish(QuoteBooked.from_status(self._status))

    # -- rejection and compensation -------------------------------------------------------

    async def _unwind(self, rejected: SagaRejected) -> None:
        workflow.logger.warning(
            "quote rejected, undoing what was done",
            extra=self._log(
                step=rejected.step.value,
                reason=rejected.reason,
                undo=[step.value for step, _ in reversed(self._compensations)],
            ),
        )
        self._status.reason = rejected.reason
        self._failed_step = rejected.step
        compensated = bool(self._compensations)
        undo_by_key, self._undo_by_key = self._undo_by_key, None
        if undo_by_key is not None and await undo_by_key():
            compensated = True
        if compensated:
            self._enter(OrderStage.COMPENSATING)
            while self._compensations:
                step, undo = self._compensations.pop()
                detail = await undo()
                if detail is not None:
                    self._record(step, StepState.DONE, detail=detail)
        crm_status = await self._attempt(
            Step.MARK_CRM_REJECTED,
            Activity.CRM_MARK_QUOTE_REJECTED,
            MarkQuoteRejected(quote_id=self._quote.quote_id, reason=rejected.reason),
            str,
            TaskQueue.CRM,
        )
        if crm_status is not None:
            self._status.crm_status = crm_status
        self._status.reason = rejected.reason
        self._enter(OrderStage.COMPENSATED if compensated else OrderStage.REJECTED)
        if compensated:
            self._publish(OrderCompensated.from_status(self._status))
        else:
            self._publish(QuoteRejected.from_status(self._status))

    async def _cancel_keyed_order(self, external_id: str) -> bool:
        """Cancel the ERP order keyed ``external_id`` if the booking made one though its
        answer never came."""
        request = CancelKeyedSalesOrder(
            external_id=external_id, reason=self._status.reason or "rejected"
        )
        undone = await self._undo_keyed(
            Step.CANCEL_ERP_ORDER,
            Activity.ERP_CANCEL_KEYED_SALES_ORDER,
            request,
            TaskQueue.ERP,
            external_id,
        )
        if undone is None or not undone.found:
            return undone is None
        self._status.erp_order_id = undone.record_id
        self._undone_by_key(
            Step.BOOK_ERP_ORDER,
            Step.CANCEL_ERP_ORDER,
            f"ERP order {undone.record_id} {undone.status}, found by its key {external_id}: "
            "the booking's answer never came",
        )
        return True

    async def _cancel_keyed_subscription(self, idempotency_key: str) -> bool:
        """Void and cancel the subscription keyed ``idempotency_key`` if provisioning made one
        though its answer never came."""
        request = CancelKeyedSubscription(
            idempotency_key=idempotency_key, reason=self._status.reason or "rejected"
        )
        undone = await self._undo_keyed(
            Step.CANCEL_SUBSCRIPTION,
            Activity.BILLING_CANCEL_KEYED_SUBSCRIPTION,
            request,
            TaskQueue.BILLING,
            idempotency_key,
        )
        if undone is None or not undone.found:
            return undone is None
        self._status.subscription_id = undone.record_id
        voided = f", invoice {undone.voided_invoice_id} void" if undone.voided_invoice_id else ""
        self._undone_by_key(
            Step.PROVISION_BILLING,
            Step.CANCEL_SUBSCRIPTION,
            f"subscription {undone.record_id} {undone.status}{voided}, found by its key "
            f"{idempotency_key}: provisioning's answer never came",
        )
        return True

    async def _undo_keyed(
        self, step: Step, activity: str, request: Any, queue: str, key: str
    ) -> KeyedCancellation | None:
        """Run an undo by key: what it found (None when an operator skipped it; the caller
        then counts it as undone). Nothing found undid nothing: the step leaves no record
        (no compensation to report), only a log line."""
        undone = await self._attempt(step, activity, request, KeyedCancellation, queue)
        if undone is not None and not undone.found:
            record = self._status.step(step)
            if record is not None:
                self._status.steps.remove(record)
            workflow.logger.info("nothing to undo", extra=self._log(step=step.value, key=key))
        return undone

    def _undone_by_key(self, done: Step, undo: Step, detail: str) -> None:
        self._mark(done, StepState.COMPENSATED)
        self._record(undo, StepState.DONE, detail=detail)

    async def _cancel_order(self, order: SalesOrder) -> str | None:
        cancelled = await self._attempt(
            Step.CANCEL_ERP_ORDER,
            Activity.ERP_CANCEL_SALES_ORDER,
            CancelSalesOrder(order_id=order.order_id, reason=self._status.reason or "rejected"),
            SalesOrder,
            TaskQueue.ERP,
        )
        self._mark(Step.BOOK_ERP_ORDER, StepState.COMPENSATED)
        if cancelled is None:
            return None
        return f"ERP order {cancelled.order_id} {cancelled.status.value}"

    async def _cancel_subscription(self, subscription: Subscription) -> str | None:
        cancelled = await self._attempt(
            Step.CANCEL_SUBSCRIPTION,
            Activity.BILLING_CANCEL_SUBSCRIPTION,
            CancelSubscription(
                subscription_id=subscription.subscription_id,
                reason=self._status.reason or "rejected",
            ),
            Subscription,
            TaskQueue.BILLING,
        )
        self._mark(Step.PROVISION_BILLING, StepState.COMPENSATED)
        if cancelled is None:
            return None
        return f"subscription {cancelled.subscription_id} {cancelled.status.value}"

    async def _void_invoice(self, invoice_id: str) -> str | None:
        invoice = await self._attempt(
            Step.VOID_INVOICE,
            Activity.BILLING_VOID_INVOICE,
            VoidInvoice(invoice_id=invoice_id),
            Invoice,
            TaskQueue.BILLING,
        )
        return None if invoice is None else f"invoice {invoice.invoice_id} {invoice.status.value}"

    # -- business events --------------------------------------------------------------------

    def _publish(self, fact: EventData) -> None:
        """Publish ``fact``, as of now (the stage it reports was just entered), in the
        background: an operator's decision on a parked saga does not wait for subscribers.
        ``run`` waits for every publication before the workflow ends."""
        if not workflow.patched(PUBLISH_EVENTS_PATCH):
            return
        event = business_event(fact, time=self._status.stage_since)
        self._publishing.append(asyncio.create_task(publish(event)))

    # -- steps, parking and SLAs ----------------------------------------------------------

    async def _step(
        self, step: Step, activity: str, arg: Any, result_type: type[T], queue: str
    ) -> T:
        """A forward step that others depend on: it is never skipped."""
        result = await self._attempt(step, activity, arg, result_type, queue)
        assert result is not None, f"{step.value} cannot be skipped"
        return result

    async def _attempt(
        self, step: Step, activity: str, arg: Any, result_type: type[T], queue: str
    ) -> T | None:
        """Run ``step`` until it is done. Returns None when an operator skipped it.

        A business rejection of a forward step raises :class:`SagaRejected` (the saga
        unwinds). Running out of the retry budget, or a rejected CRM write-back or
        compensation, parks the saga until an operator resolves it.
        """
        compensating = step in COMPENSATION_STEPS
        budget = (
            self._policy.compensation_retry_budget
            if compensating
            else self._policy.step_retry_budget
        )
        while True:
            self._start(step)
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
                    priority=BOOKING_PRIORITY,
                )
            except ActivityError as error:
                rejected, reason = step_failure(error, budget)
                self._record(step, StepState.FAILED, detail=reason)
                workflow.logger.warning(
                    "step failed",
                    extra=self._log(step=step.value, reason=reason, rejected=rejected is not None),
                )
                if rejected is not None and not compensating and step is not Step.UPDATE_CRM:
                    raise SagaRejected(step, rejected) from error
                decision = await self._park(step, reason)
                if decision.action is ResolveAction.RETRY:
                    continue
                if decision.action is ResolveAction.SKIP:
                    self._record(
                        step,
                        StepState.SKIPPED,
                        detail=f"skipped by {decision.operator}: {decision.note}",
                    )
                    return None
                raise SagaRejected(
                    step,
                    f"{decision.operator} chose to compensate at {step.value}: {decision.note}",
                ) from error
            self._record(step, StepState.DONE)
            return result

    async def _park(self, step: Step, reason: str) -> ResolveRequest:
        """Wait, parked, for an operator's decision on ``step``."""
        resume_stage = self._status.stage
        self._status.parked = ParkedState(
            step=step, reason=reason, since=workflow.now(), allowed=allowed_resolutions(step)
        )
        previous_reason = self._status.reason
        self._status.reason = f"{step.value}: {reason}"
        self._enter(OrderStage.NEEDS_ATTENTION, blocked=step)
        workflow.logger.warning("saga parked", extra=self._log(step=step.value, reason=reason))
        self._publish(OrderParked.from_status(self._status))
        await workflow.wait_condition(lambda: self._resolution is not None)
        decision = self._resolution
        assert decision is not None
        self._resolution = None
        self._status.parked = None
        self._status.reason = previous_reason
        if decision.action is not ResolveAction.COMPENSATE:
            self._enter(resume_stage)
        return decision

    async def _watch_booking_sla(self) -> None:
        """Mark the saga (not fail it) when it is not BOOKED within the booking SLA."""
        within = self._policy.book_within
        if not await self._wait(lambda: self._status.stage.is_terminal, within):
            self._breach("booking", f"not booked within {within} (stage {self._status.stage})")

    @staticmethod
    async def _wait(condition: Callable[[], bool], within: timedelta) -> bool:
        """True when ``condition`` came true, False when ``within`` passed first."""
        try:
            await workflow.wait_condition(condition, timeout=within)
        except TimeoutError:
            return False
        return True

    # -- status, search attributes, Web UI ------------------------------------------------

    def _start(self, step: Step) -> None:
        self._status.steps.append(
            StepRecord(step=step, state=StepState.RUNNING, started_at=workflow.now())
        )

    def _record(self, step: Step, state: StepState, *, detail: str | None = None) -> None:
        record = self._status.step(step)
        if record is None:
            return
        record.state = state
        record.finished_at = workflow.now()
        record.detail = detail

    def _ids(self, step: Step, **ids: str) -> None:
        """Attach the external ids a done step created."""
        record = self._status.step(step)
        if record is not None:
            record.external_ids.update(ids)

    def _mark(self, step: Step, state: StepState) -> None:
        record = self._status.step(step)
        if record is not None:
            record.state = state

    def _log(self, **fields: Any) -> dict[str, Any]:
        """``extra`` for a ``workflow.logger`` line (silent on replay): the quote's ids and
        ``fields`` (revsync.logs adds the workflow's own)."""
        return {"quote_id": self._quote.quote_id, "customer_id": self._quote.account_id, **fields}

    def _indexed(self) -> bool:
        """Started with revsync's search attributes (not, e.g., on a bare test namespace)."""
        return workflow.info().typed_search_attributes.get(visibility.QUOTE_ID) is not None

    def _enter(self, stage: OrderStage, *, blocked: Step | None = None) -> None:
        """Move to ``stage``: fresh details for the Web UI and one search-attribute upsert."""
        now = workflow.now()
        self._status.stage = stage
        self._status.stage_since = now
        blocked_step = {} if blocked is None else {"blocked_step": blocked.value}
        workflow.logger.info("stage changed", extra=self._log(stage=stage.value, **blocked_step))
        if self._indexed():
            updates: list[SearchAttributeUpdate[Any]] = [
                visibility.ORDER_STAGE.value_set(stage.value),
                visibility.STAGE_SINCE.value_set(now),
            ]
            if blocked is not None:
                updates.append(visibility.BLOCKED_STEP.value_set(blocked.value))
            elif workflow.info().typed_search_attributes.get(visibility.BLOCKED_STEP) is not None:
                updates.append(visibility.BLOCKED_STEP.value_unset())
            workflow.upsert_search_attributes(updates)
        workflow.set_current_details(self._details())
        self._observe_stage(stage, blocked)

    # -- business metrics (docs/observability.md); a replay records nothing ---------------

    def _observe_stage(self, stage: OrderStage, blocked: Step | None) -> None:
        meter = workflow.metric_meter()
        if stage is OrderStage.BOOKED:
            metrics.count(meter, metrics.QUOTES_BOOKED)
            parked = any(d.step is not Step.AWAIT_APPROVAL for d in self._status.decisions)
            metrics.observe(
                meter,
                metrics.BOOKING_LATENCY,
                workflow.now() - workflow.info().workflow_start_time,
                approval="none" if self._status.approval is None else "required",
                parked="true" if parked else "false",
            )
        elif stage is OrderStage.NEEDS_ATTENTION and blocked is not None:
            metrics.count(meter, metrics.QUOTES_PARKED, step=blocked.value)
        elif stage is OrderStage.REJECTED or stage is OrderStage.COMPENSATED:
            ended = stage is OrderStage.REJECTED
            metric = metrics.QUOTES_REJECTED if ended else metrics.QUOTES_COMPENSATED
            failed = self._failed_step
            metrics.count(meter, metric, step="unknown" if failed is None else failed.value)

    def _observe_approval_wait(self) -> None:
        approval = self._status.approval
        if approval is None or approval.decided is None:
            return
        metrics.observe(
            workflow.metric_meter(),
            metrics.APPROVAL_WAIT,
            approval.decided.at - approval.requested_at,
            decision=approval.decided.action,
        )

    def _breach(self, sla: str, detail: str) -> None:
        workflow.logger.warning("SLA breached", extra=self._log(sla=sla, detail=detail))
        first = not self._status.sla_breaches
        self._status.sla_breaches.append(SlaBreach(sla=sla, at=workflow.now(), detail=detail))
        metrics.count(workflow.metric_meter(), metrics.SLA_BREACHES, sla=sla)
        if first and self._indexed():
            workflow.upsert_search_attributes([visibility.SLA_BREACHED.value_set(True)])
        workflow.set_current_details(self._details())

    def _details(self) -> str:
        s = self._status
        lines = [
            f"**Stage:** {s.stage.value} since {_clock(s.stage_since)}",
            f"**Customer:** {md(s.customer_name) if s.customer_name else '(not read yet)'} "
            f"({md(s.account_id)})",
            f"**Amount:** {self._quote.total_money()}",
        ]
        if s.parked is not None:
            allowed = ", ".join(a.value for a in s.parked.allowed)
            lines.append(f"**Blocked step:** {s.parked.step.value} (operator may: {allowed})")
        if s.reason:
            lines.append(f"**Reason:** {md(s.reason)}")
        if s.approval is not None and s.approval.decided is None:
            lines.append(f"**Needs approval by:** {s.approval.required_role}")
            lines.extend(f"- {md(r.message)}" for r in s.approval.reasons)
            if s.approval.escalated_at is not None:
                lines.append(f"**Escalated** at {_clock(s.approval.escalated_at)}")
        for breach in s.sla_breaches:
            lines.append(f"**SLA breached ({md(breach.sla)}):** {md(breach.detail)}")
        for label, value in (
            ("ERP order", s.erp_order_id),
            ("Subscription", s.subscription_id),
            ("Invoice", s.invoice_id),
            ("CRM order", s.crm_order_id),
        ):
            if value:
                lines.append(f"**{label}:** {md(value)}")
        if s.decisions:
            last = s.decisions[-1]
            lines.append(
                f"**Last decision:** {md(last.action)} by {md(last.actor)}: "
                f"{md(last.note) if last.note else '-'}"
            )
        ids = (s.erp_customer_id, s.erp_order_id, s.billing_customer_id, s.subscription_id)
        if note := shadow_note(s.workflow_id, (*ids, s.invoice_id, s.crm_order_id)):
            lines.append(note)
        return "\n\n".join(lines)


def _clock(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M} UTC"
