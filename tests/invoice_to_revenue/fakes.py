"""In-memory billing, ERP and CRM behind the real ports, bound to the real invoice activities.

The workflow under test runs the production activities (``activities/invoices.py``), so the
keys, the classification of vendor errors and the port calls are the real ones; only the
vendors are fakes. Each call is recorded with the server time its attempt was scheduled at
(the time-skipping server's clock), so tests can tell when a journal was posted.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from activities.invoices import BillingInvoiceActivities, CrmInvoiceActivities, ErpInvoiceActivities
from adapters.errors import RejectedError, TransientError, VendorError
from domain.catalog import CatalogItem
from domain.contracts import Activity, TaskQueue
from domain.customer import Customer
from domain.customer_master import FieldValue, MasterField
from domain.event_contracts import PublishEvent, PublishResult
from domain.invoice import Invoice
from domain.order import (
    Invoice as BillingInvoice,
)
from domain.order import (
    SalesOrder,
    SalesOrderDraft,
    Subscription,
    SubscriptionDraft,
)
from domain.policies import CURRENT_POLICIES, CurrentPolicies
from domain.receivable import (
    CreditPosting,
    JournalPosting,
    PaymentApplication,
    PaymentPosting,
    Receivable,
    ReceivableCredit,
    ReceivableState,
    ReceivableStatus,
    RevenueJournal,
)
from domain.reconciliation import CustomerRecord, InvoiceRecord, OrderRecord, Page, Window
from domain.saga import FailureType
from workflows.invoice_adjustment import InvoiceAdjustmentWorkflow
from workflows.invoice_to_revenue import InvoiceToRevenueWorkflow


def now_in_activity() -> datetime:
    return activity.info().current_attempt_scheduled_time


@dataclass
class Call:
    name: str
    arg: Any
    at: datetime


@dataclass
class FakeVendors:
    """One fake billing, ERP and CRM. ``fail_with`` queues errors per port method."""

    invoices: dict[str, Invoice] = field(default_factory=dict)
    erp_customers: dict[str, str] = field(default_factory=lambda: {})
    receivables: dict[str, Receivable] = field(default_factory=dict)
    journals: dict[str, JournalPosting] = field(default_factory=dict)
    payments: dict[str, PaymentPosting] = field(default_factory=dict)
    reversals: dict[str, str] = field(default_factory=dict)
    credits: dict[str, CreditPosting] = field(default_factory=dict)
    closed_periods: set[str] = field(default_factory=set)
    crm_statuses: list[tuple[ReceivableStatus, Decimal, datetime]] = field(default_factory=list)
    published: list[dict[str, Any]] = field(default_factory=list)
    # The event subscriber answers 503 (asking to come back in 12 hours) until this moment.
    subscriber_down_until: datetime | None = None
    # What the orchestration worker's policy.current answers (None: it fails, and a run
    # keeps the policy it has).
    current_policies: CurrentPolicies | None = None
    delivery_attempts: int = 0
    delivered_by: list[str] = field(default_factory=list)  # the run of each delivery
    # The subscriber fails this many more attempts (backing off as the retry policy says).
    subscriber_failures: int = 0
    failed_in: list[str] = field(default_factory=list)  # the run of each failed attempt
    calls: list[Call] = field(default_factory=list)
    failures: dict[str, list[VendorError]] = field(default_factory=dict)
    # Set: business events are delivered; cleared, every publication waits for it.
    subscribers_up: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.subscribers_up.set()

    def fail_with(self, method: str, *errors: VendorError) -> None:
        self.failures.setdefault(method, []).extend(errors)

    def called(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.name == method]

    def enter(self, method: str, arg: Any) -> None:
        self.calls.append(Call(method, arg, now_in_activity()))
        queued = self.failures.get(method)
        if queued:
            raise queued.pop(0)

    def event_types(self) -> list[str]:
        return [str(e["type"]) for e in self.published]


class FakeBilling:
    vendor = "stripe"

    def __init__(self, vendors: FakeVendors) -> None:
        self.v = vendors

    async def get_invoice(self, invoice_id: str) -> Invoice:
        self.v.enter("get_invoice", invoice_id)
        if invoice_id not in self.v.invoices:
            raise RejectedError(self.vendor, "get_invoice", f"no invoice {invoice_id}")
        return self.v.invoices[invoice_id]

    # The rest of BillingPort is not used by invoice-to-revenue.
    async def find_customer(self, account_id: str) -> str | None:
        raise NotImplementedError

    async def update_customer_fields(
        self, customer_id: str, changes: Mapping[MasterField, FieldValue], idempotency_key: str
    ) -> None:
        raise NotImplementedError

    async def upsert_customer(self, customer: Customer, idempotency_key: str) -> str:
        raise NotImplementedError

    async def create_subscription(self, draft: SubscriptionDraft, customer_id: str) -> Subscription:
        raise NotImplementedError

    async def find_subscription(self, idempotency_key: str) -> Subscription | None:
        raise NotImplementedError

    async def lookup_subscriptions(self, keys: list[str]) -> list[OrderRecord]:
        raise NotImplementedError

    async def list_subscriptions(
        self, cursor: str | None, page_size: int, *, window: Window | None = None
    ) -> Page[OrderRecord]:
        raise NotImplementedError

    async def lookup_customers(self, keys: list[str]) -> list[CustomerRecord]:
        raise NotImplementedError

    async def list_customers(
        self, cursor: str | None, page_size: int, *, window: Window | None = None
    ) -> Page[CustomerRecord]:
        raise NotImplementedError

    async def lookup_invoices(self, keys: list[str]) -> list[InvoiceRecord]:
        raise NotImplementedError

    async def list_invoices(
        self, cursor: str | None, page_size: int, *, window: Window | None = None
    ) -> Page[InvoiceRecord]:
        raise NotImplementedError

    async def cancel_subscription(self, subscription_id: str, reason: str) -> Subscription:
        raise NotImplementedError

    async def void_invoice(self, invoice_id: str) -> BillingInvoice:
        raise NotImplementedError


class FakeErp:
    vendor = "netsuite"

    def __init__(self, vendors: FakeVendors) -> None:
        self.v = vendors

    async def find_customer(self, external_id: str) -> str | None:
        self.v.enter("find_customer", external_id)
        return self.v.erp_customers.get(external_id)

    async def post_receivable(
        self, invoice: Invoice, customer_id: str, external_id: str
    ) -> Receivable:
        self.v.enter("post_receivable", external_id)
        if external_id not in self.v.receivables:
            self.v.receivables[external_id] = Receivable(
                receivable_id=f"INV{len(self.v.receivables) + 501}",
                external_id=external_id,
                invoice_id=invoice.invoice_id,
                customer_id=customer_id,
                currency=invoice.currency,
                total=invoice.total,
                tax=invoice.tax,
                amount_due=invoice.total,
                issue_date=invoice.issue_date,
                due_date=invoice.due_date,
                state=ReceivableState.OPEN,
            )
        return self.v.receivables[external_id]

    async def find_receivable(self, external_id: str) -> Receivable | None:
        return self.v.receivables.get(external_id)

    async def post_revenue_journal(self, journal: RevenueJournal) -> JournalPosting:
        self.v.enter("post_revenue_journal", journal)
        if journal.journal_id not in self.v.journals:
            if journal.period in self.v.closed_periods:
                raise RejectedError(
                    self.vendor,
                    "post_revenue_journal",
                    f"accounting period {journal.period} is closed",
                    code="PERIOD_CLOSED",
                )
            self.v.journals[journal.journal_id] = JournalPosting(
                journal_entry_id=f"JE{len(self.v.journals) + 1}",
                journal_id=journal.journal_id,
                period=journal.period,
                amount=journal.amount,
                currency=journal.currency,
            )
        return self.v.journals[journal.journal_id]

    def _receivable(self, receivable_id: str) -> tuple[str, Receivable]:
        for key, receivable in self.v.receivables.items():
            if receivable.receivable_id == receivable_id:
                return key, receivable
        raise RejectedError(self.vendor, "receivable", f"no receivable {receivable_id}")

    async def apply_payment(self, payment: PaymentApplication) -> PaymentPosting:
        self.v.enter("apply_payment", payment)
        if payment.payment_id not in self.v.payments:
            key, receivable = self._receivable(payment.receivable_id)
            if receivable.amount_due <= 0:
                raise RejectedError(
                    self.vendor, "apply_payment", "nothing due", code="RECEIVABLE_CLOSED"
                )
            applied = min(payment.amount, receivable.amount_due)
            due = receivable.amount_due - applied
            self.v.receivables[key] = receivable.model_copy(
                update={
                    "amount_paid": receivable.amount_paid + applied,
                    "amount_due": due,
                    "state": ReceivableState.PAID if due == 0 else ReceivableState.OPEN,
                }
            )
            self.v.payments[payment.payment_id] = PaymentPosting(
                payment_record_id=f"PAY{len(self.v.payments) + 1}",
                payment_id=payment.payment_id,
                receivable_id=payment.receivable_id,
                amount=payment.amount,
                applied=applied,
                unapplied=payment.amount - applied,
                currency=payment.currency,
                paid_on=payment.paid_on,
            )
        return self.v.payments[payment.payment_id]

    async def reverse_receivable(
        self, receivable_id: str, external_id: str, reason: str
    ) -> Receivable:
        self.v.enter("reverse_receivable", external_id)
        key, receivable = self._receivable(receivable_id)
        if receivable.state is not ReceivableState.REVERSED:
            if receivable.amount_paid > 0:
                raise RejectedError(
                    self.vendor, "reverse_receivable", "payments applied", code="RECEIVABLE_PAID"
                )
            self.v.reversals[external_id] = receivable_id
            self.v.receivables[key] = receivable.model_copy(
                update={
                    "amount_credited": receivable.amount_due,
                    "amount_due": Decimal(0),
                    "state": ReceivableState.REVERSED,
                    "reversal_ids": ("CM1",),
                }
            )
        return self.v.receivables[key]

    async def credit_receivable(self, credit: ReceivableCredit) -> CreditPosting:
        self.v.enter("credit_receivable", credit)
        if credit.external_id not in self.v.credits:
            key, receivable = self._receivable(credit.receivable_id)
            if credit.total > receivable.amount_due:
                raise RejectedError(
                    self.vendor,
                    "credit_receivable",
                    f"credit note {credit.external_id} credits {credit.total}, more than the "
                    f"{receivable.amount_due} still owed",
                    code="CREDIT_EXCEEDS_DUE",
                )
            due = receivable.amount_due - credit.total
            memo_id = f"CM{len(self.v.credits) + 1}"
            self.v.receivables[key] = receivable.model_copy(
                update={
                    "amount_credited": receivable.amount_credited + credit.total,
                    "amount_due": due,
                    "reversal_ids": (*receivable.reversal_ids, memo_id),
                }
            )
            self.v.credits[credit.external_id] = CreditPosting(
                credit_memo_id=memo_id,
                external_id=credit.external_id,
                receivable_id=credit.receivable_id,
                currency=credit.currency,
                lines=credit.lines,
                total=credit.total,
                applied=credit.total,
            )
        return self.v.credits[credit.external_id]

    # Not used by invoice-to-revenue.
    async def update_customer_fields(
        self, customer_id: str, changes: Mapping[MasterField, FieldValue], idempotency_key: str
    ) -> None:
        raise NotImplementedError

    async def get_catalog_items(self, skus: list[str]) -> dict[str, CatalogItem]:
        raise NotImplementedError

    async def upsert_customer(self, customer: Customer, external_id: str) -> str:
        raise NotImplementedError

    async def create_sales_order(self, draft: SalesOrderDraft, customer_id: str) -> SalesOrder:
        raise NotImplementedError

    async def find_sales_order(self, external_id: str) -> SalesOrder | None:
        raise NotImplementedError

    async def cancel_sales_order(self, order_id: str, reason: str) -> SalesOrder:
        raise NotImplementedError

    async def lookup_sales_orders(self, keys: list[str]) -> list[OrderRecord]:
        raise NotImplementedError

    async def list_sales_orders(
        self, cursor: str | None, page_size: int, *, window: Window | None = None
    ) -> Page[OrderRecord]:
        raise NotImplementedError

    async def lookup_customers(self, keys: list[str]) -> list[CustomerRecord]:
        raise NotImplementedError

    async def list_customers(
        self, cursor: str | None, page_size: int, *, window: Window | None = None
    ) -> Page[CustomerRecord]:
        raise NotImplementedError

    async def lookup_receivables(self, keys: list[str]) -> list[InvoiceRecord]:
        raise NotImplementedError

    async def list_receivables(
        self, cursor: str | None, page_size: int, *, window: Window | None = None
    ) -> Page[InvoiceRecord]:
        raise NotImplementedError


class FakeCrm:
    vendor = "salesforce"

    def __init__(self, vendors: FakeVendors) -> None:
        self.v = vendors

    async def set_receivable_status(
        self,
        account_id: str,
        status: ReceivableStatus,
        invoice_id: str,
        amount_due: Decimal,
        currency: str,
        *,
        as_of: datetime,
    ) -> None:
        self.v.enter("set_receivable_status", status)
        self.v.crm_statuses.append((status, amount_due, as_of))

    # Not used by invoice-to-revenue.
    async def update_account_fields(
        self, account_id: str, changes: Mapping[MasterField, FieldValue], idempotency_key: str
    ) -> None:
        raise NotImplementedError

    async def get_account(self, account_id: str) -> Customer:
        raise NotImplementedError

    async def record_order(
        self,
        *,
        quote_id: str,
        account_id: str,
        order_key: str,
        sales_order: SalesOrder,
        subscription: Subscription,
    ) -> str:
        raise NotImplementedError

    async def set_quote_status(self, quote_id: str, status: str, reason: str | None) -> None:
        raise NotImplementedError

    async def lookup_orders(self, keys: list[str]) -> list[OrderRecord]:
        raise NotImplementedError

    async def list_orders(
        self, cursor: str | None, page_size: int, *, window: Window | None = None
    ) -> Page[OrderRecord]:
        raise NotImplementedError

    async def lookup_accounts(self, keys: list[str]) -> list[CustomerRecord]:
        raise NotImplementedError

    async def list_accounts(
        self, cursor: str | None, page_size: int, *, window: Window | None = None
    ) -> Page[CustomerRecord]:
        raise NotImplementedError


def transient(method: str) -> TransientError:
    return TransientError("netsuite", method, "503 Service Unavailable", status=503)


def queues(vendors: FakeVendors) -> dict[str, list[Callable[..., Any]]]:
    billing = BillingInvoiceActivities(FakeBilling(vendors))
    erp = ErpInvoiceActivities(FakeErp(vendors))
    crm = CrmInvoiceActivities(FakeCrm(vendors))

    @activity.defn(name=Activity.EVENTS_PUBLISH)
    async def publish_event(req: PublishEvent) -> PublishResult:
        await vendors.subscribers_up.wait()
        vendors.delivery_attempts += 1
        if vendors.subscriber_failures > 0:
            vendors.subscriber_failures -= 1
            vendors.failed_in.append(activity.info().workflow_run_id or "")
            raise ApplicationError("subscriber answered 503", type=FailureType.VENDOR_TRANSIENT)
        down_until = vendors.subscriber_down_until
        if down_until is not None and now_in_activity() < down_until:
            raise ApplicationError(
                "subscriber answered 503",
                type=FailureType.VENDOR_TRANSIENT,
                next_retry_delay=timedelta(hours=12),
            )
        vendors.published.append(dict(req.event))
        vendors.delivered_by.append(activity.info().workflow_run_id or "")
        return PublishResult(
            event_id=str(req.event["id"]), event_type=str(req.event["type"]), deliveries=[]
        )

    return {
        TaskQueue.BILLING: [billing.get_invoice],
        TaskQueue.ERP: [
            erp.post_receivable,
            erp.post_revenue_journal,
            erp.apply_payment,
            erp.reverse_receivable,
            erp.credit_receivable,
        ],
        TaskQueue.CRM: [crm.set_receivable_status],
        TaskQueue.EVENTS: [publish_event],
    }


@asynccontextmanager
async def running_workers(client: Client, vendors: FakeVendors) -> AsyncIterator[None]:
    """Workers for every queue: the real workflow and activities, the fake vendors."""

    @activity.defn(name=CURRENT_POLICIES)
    async def current_policies() -> CurrentPolicies:
        if vendors.current_policies is None:
            raise ApplicationError("no deployment policy in this test", non_retryable=True)
        return vendors.current_policies

    workers = [
        Worker(
            client,
            task_queue=TaskQueue.ORCHESTRATION,
            workflows=[InvoiceToRevenueWorkflow, InvoiceAdjustmentWorkflow],
            activities=[current_policies],
        )
    ]
    workers += [
        Worker(client, task_queue=queue, activities=acts) for queue, acts in queues(vendors).items()
    ]
    async with AsyncExitStack() as stack:
        for worker in workers:
            await stack.enter_async_context(worker)
        yield


def first_of_next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)
