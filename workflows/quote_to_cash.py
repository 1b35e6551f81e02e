"""QuoteToCashWorkflow: an accepted quote becomes an ERP sales order, a billing subscription
and a CRM order record, or nothing at all.

Steps (workflow id ``q2c-<quote id>``, queue ``orchestration``):

1. validate the quote (pure)                        stage VALIDATING
2. read and check the CRM account                   (crm)
3. check every line against the ERP catalog         (erp)   - rejects before any side effect
4. upsert the ERP customer, create the sales order  (erp)   stage BOOKING_ERP
5. upsert the billing customer, create subscription (billing) stage PROVISIONING_BILLING
6. record the order in CRM, mark the quote ordered  (crm)   stage UPDATING_CRM
7. BOOKED

A rejection (non-retryable) before step 4 ends REJECTED; after it, the done side effects are
undone in reverse order (cancel subscription, void invoice, cancel ERP order) and the saga
ends COMPENSATED. Either way the CRM quote is marked Rejected with the reason. Transient
failures are retried with backoff; a CRM write-back failure never unwinds a booked order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain.contracts import (
        Activity,
        BookedSalesOrder,
        BookSalesOrder,
        CancelSalesOrder,
        CancelSubscription,
        CatalogCheckResult,
        CheckCatalog,
        CrmOrderRecord,
        FetchAccount,
        MarkQuoteRejected,
        ProvisionedSubscription,
        ProvisionSubscription,
        RecordOrderInCrm,
        TaskQueue,
        VoidInvoice,
    )
    from domain.customer import Customer
    from domain.order import (
        Invoice,
        SalesOrder,
        Subscription,
        build_sales_order,
        build_subscription,
    )
    from domain.quote import Quote
    from domain.saga import (
        FailureType,
        QuoteToCashInput,
        QuoteToCashStatus,
        Step,
        StepRecord,
        StepState,
    )
    from domain.stages import OrderStage
    from workflows import visibility

T = TypeVar("T")

# Every step retries transient failures with backoff; business rejections are final.
STEP_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    non_retryable_error_types=list(FailureType.NON_RETRYABLE),
)
STEP_TIMEOUT = timedelta(minutes=2)


class SagaRejected(Exception):
    """A step was rejected for a business reason; the saga must not go on."""

    def __init__(self, step: Step, reason: str) -> None:
        super().__init__(reason)
        self.step = step
        self.reason = reason


def rejection_reason(error: ActivityError) -> str | None:
    """The business reason if ``error`` is a non-retryable rejection, else None."""
    cause = error.cause
    if isinstance(cause, ApplicationError) and cause.type in FailureType.NON_RETRYABLE:
        return cause.message
    return None


@workflow.defn(name="QuoteToCash")
class QuoteToCashWorkflow:
    @workflow.init
    def __init__(self, request: QuoteToCashInput) -> None:
        quote = request.quote
        self._quote = quote
        self._status = QuoteToCashStatus(
            workflow_id=workflow.info().workflow_id,
            quote_id=quote.quote_id,
            account_id=quote.account_id,
            amount=quote.total,
            currency=quote.currency,
            stage=OrderStage.RECEIVED,
        )
        # Undo actions for done side effects, run last-in first-out.
        self._compensations: list[tuple[Step, Callable[[], Awaitable[str]]]] = []

    @workflow.query(name="status")
    def status(self) -> QuoteToCashStatus:
        return self._status

    @workflow.run
    async def run(self, request: QuoteToCashInput) -> QuoteToCashStatus:
        quote = request.quote
        try:
            await self._book(quote)
        except SagaRejected as rejected:
            await self._unwind(rejected)
        return self._status

    # -- the happy path -------------------------------------------------------------------

    async def _book(self, quote: Quote) -> None:
        self._enter(OrderStage.VALIDATING)
        workflow_id = self._status.workflow_id

        customer = await self._run(
            Step.FETCH_ACCOUNT,
            Activity.CRM_FETCH_ACCOUNT,
            FetchAccount(account_id=quote.account_id),
            Customer,
            TaskQueue.CRM,
        )
        self._status.customer_name = customer.name

        check = await self._run(
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

        self._enter(OrderStage.BOOKING_ERP)
        booked = await self._run(
            Step.BOOK_ERP_ORDER,
            Activity.ERP_BOOK_SALES_ORDER,
            BookSalesOrder(
                customer=customer,
                customer_key=f"acct-{quote.account_id}",
                order=build_sales_order(quote, external_id=f"{workflow_id}:erp-order"),
            ),
            BookedSalesOrder,
            TaskQueue.ERP,
        )
        order = booked.order
        self._status.erp_customer_id = booked.customer_id
        self._status.erp_order_id = order.order_id
        self._done(
            Step.BOOK_ERP_ORDER, erp_customer_id=booked.customer_id, erp_order_id=order.order_id
        )
        self._compensations.append((Step.CANCEL_ERP_ORDER, lambda: self._cancel_order(order)))

        self._enter(OrderStage.PROVISIONING_BILLING)
        provisioned = await self._run(
            Step.PROVISION_BILLING,
            Activity.BILLING_PROVISION_SUBSCRIPTION,
            ProvisionSubscription(
                customer=customer,
                customer_key=f"{workflow_id}:billing-customer",
                subscription=build_subscription(
                    quote, idempotency_key=f"{workflow_id}:subscription"
                ),
            ),
            ProvisionedSubscription,
            TaskQueue.BILLING,
        )
        subscription = provisioned.subscription
        self._status.billing_customer_id = provisioned.customer_id
        self._status.subscription_id = subscription.subscription_id
        self._status.invoice_id = subscription.latest_invoice_id
        self._done(
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
        await self._write_back(quote, order, subscription)

    async def _write_back(
        self, quote: Quote, order: SalesOrder, subscription: Subscription
    ) -> None:
        """Record the booked order in CRM. The order is booked in the financial systems by
        now, so a CRM failure never unwinds it: the step is marked and the saga parks."""
        try:
            record = await self._run(
                Step.UPDATE_CRM,
                Activity.CRM_RECORD_ORDER,
                RecordOrderInCrm(
                    quote_id=quote.quote_id,
                    account_id=quote.account_id,
                    order_key=f"{self._status.workflow_id}:crm-order",
                    sales_order=order,
                    subscription=subscription,
                ),
                CrmOrderRecord,
                TaskQueue.CRM,
            )
        except SagaRejected as rejected:
            self._status.reason = f"CRM write-back rejected: {rejected.reason}"
            self._enter(OrderStage.NEEDS_ATTENTION, blocked=Step.UPDATE_CRM)
            return
        self._status.crm_order_id = record.crm_order_id
        self._status.crm_status = record.quote_status
        self._done(Step.UPDATE_CRM, crm_order_id=record.crm_order_id)
        self._enter(OrderStage.BOOKED)

    # -- rejection and compensation -------------------------------------------------------

    async def _unwind(self, rejected: SagaRejected) -> None:
        self._status.reason = rejected.reason
        compensated = bool(self._compensations)
        if compensated:
            self._enter(OrderStage.COMPENSATING)
            while self._compensations:
                step, undo = self._compensations.pop()
                self._start(step)
                detail = await undo()
                self._record(step, StepState.DONE, detail=detail)
        self._start(Step.MARK_CRM_REJECTED)
        self._status.crm_status = await self._activity(
            Activity.CRM_MARK_QUOTE_REJECTED,
            MarkQuoteRejected(quote_id=self._quote.quote_id, reason=rejected.reason),
            str,
            TaskQueue.CRM,
        )
        self._record(Step.MARK_CRM_REJECTED, StepState.DONE)
        self._enter(OrderStage.COMPENSATED if compensated else OrderStage.REJECTED)

    async def _cancel_order(self, order: SalesOrder) -> str:
        cancelled = await self._activity(
            Activity.ERP_CANCEL_SALES_ORDER,
            CancelSalesOrder(order_id=order.order_id, reason=self._status.reason or "rejected"),
            SalesOrder,
            TaskQueue.ERP,
        )
        self._mark_compensated(Step.BOOK_ERP_ORDER)
        return f"ERP order {cancelled.order_id} {cancelled.status.value}"

    async def _cancel_subscription(self, subscription: Subscription) -> str:
        cancelled = await self._activity(
            Activity.BILLING_CANCEL_SUBSCRIPTION,
            CancelSubscription(
                subscription_id=subscription.subscription_id,
                reason=self._status.reason or "rejected",
            ),
            Subscription,
            TaskQueue.BILLING,
        )
        self._mark_compensated(Step.PROVISION_BILLING)
        return f"subscription {cancelled.subscription_id} {cancelled.status.value}"

    async def _void_invoice(self, invoice_id: str) -> str:
        invoice = await self._activity(
            Activity.BILLING_VOID_INVOICE,
            VoidInvoice(invoice_id=invoice_id),
            Invoice,
            TaskQueue.BILLING,
        )
        return f"invoice {invoice.invoice_id} {invoice.status.value}"

    # -- plumbing -------------------------------------------------------------------------

    async def _run(
        self, step: Step, activity: str, arg: Any, result_type: type[T], queue: str
    ) -> T:
        """Run one saga step: record it, and turn a business rejection into SagaRejected."""
        self._start(step)
        try:
            result = await self._activity(activity, arg, result_type, queue)
        except ActivityError as error:
            reason = rejection_reason(error)
            if reason is None:
                raise
            self._record(step, StepState.FAILED, detail=reason)
            raise SagaRejected(step, reason) from error
        self._record(step, StepState.DONE)
        return result

    async def _activity(self, activity: str, arg: Any, result_type: type[T], queue: str) -> T:
        result: T = await workflow.execute_activity(
            activity,
            arg,
            result_type=result_type,
            task_queue=queue,
            start_to_close_timeout=STEP_TIMEOUT,
            retry_policy=STEP_RETRY,
        )
        return result

    def _start(self, step: Step) -> None:
        self._status.steps.append(
            StepRecord(step=step, state=StepState.RUNNING, started_at=workflow.now())
        )

    def _record(
        self, step: Step, state: StepState, *, detail: str | None = None, **ids: str
    ) -> None:
        record = self._status.step(step)
        if record is None:
            return
        record.state = state
        record.finished_at = workflow.now()
        record.detail = detail
        record.external_ids.update(ids)

    def _done(self, step: Step, **ids: str) -> None:
        """Attach the external ids a done step created."""
        record = self._status.step(step)
        if record is not None:
            record.external_ids.update(ids)

    def _mark_compensated(self, step: Step) -> None:
        record = self._status.step(step)
        if record is not None:
            record.state = StepState.COMPENSATED

    def _enter(self, stage: OrderStage, *, blocked: Step | None = None) -> None:
        """Move to ``stage``: fresh details for the Web UI and, when the saga was started with
        revsync's search attributes, one upsert that keeps ``OrderStage``/``BlockedStep``
        current. (A saga started without them, e.g. on a namespace that lacks them, is not
        indexed, and no upsert is attempted that the server would refuse.)"""
        self._status.stage = stage
        attributes = workflow.info().typed_search_attributes
        if attributes.get(visibility.QUOTE_ID) is not None:
            updates: list[SearchAttributeUpdate[Any]] = [
                visibility.ORDER_STAGE.value_set(stage.value)
            ]
            if blocked is not None:
                updates.append(visibility.BLOCKED_STEP.value_set(blocked.value))
            elif attributes.get(visibility.BLOCKED_STEP) is not None:
                updates.append(visibility.BLOCKED_STEP.value_unset())
            workflow.upsert_search_attributes(updates)
        workflow.set_current_details(self._details())

    def _details(self) -> str:
        s = self._status
        lines = [
            f"**Stage:** {s.stage.value}",
            f"**Customer:** {s.customer_name or '(not read yet)'} ({s.account_id})",
            f"**Amount:** {self._quote.total_money()}",
        ]
        if s.reason:
            lines.append(f"**Reason:** {s.reason}")
        blocked = [r.step.value for r in s.steps if r.state is StepState.FAILED]
        if s.stage is OrderStage.NEEDS_ATTENTION and blocked:
            lines.append(f"**Blocked step:** {blocked[-1]}")
        for label, value in (
            ("ERP order", s.erp_order_id),
            ("Subscription", s.subscription_id),
            ("Invoice", s.invoice_id),
            ("CRM order", s.crm_order_id),
        ):
            if value:
                lines.append(f"**{label}:** {value}")
        return "\n\n".join(lines)
