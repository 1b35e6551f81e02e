"""In-memory stand-ins for the CRM, ERP and billing activities, with scripted failures.

They register under the real activity names, so the workflow under test cannot tell them
from the real ones. Each call is recorded; ``fail_with`` queues errors per activity name.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from decimal import Decimal
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from domain.catalog import CatalogItem, catalog_mismatches
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
from domain.customer import Address, CreditCheck, Customer
from domain.event_contracts import PublishEvent, PublishResult
from domain.order import (
    Invoice,
    InvoiceStatus,
    SalesOrder,
    SalesOrderStatus,
    Subscription,
    SubscriptionStatus,
)
from domain.quote import BillingType
from domain.saga import FailureType
from sandbox.seed import CATALOG
from workflows.quote_to_cash import QuoteToCashWorkflow

CUSTOMER = Customer(
    account_id="0015e00000AcmeUS1",
    name="Acme Robotics",
    legal_entity="Acme Robotics, Inc.",
    tax_id="94-1234567",
    email="ap@acme-robotics.example",
    billing_address=Address(
        line1="500 Howard St", city="San Francisco", region="CA", postal_code="94105", country="US"
    ),
    currency="USD",
    existing_customer=True,
    credit_check=CreditCheck.APPROVED,
)

CATALOG_ITEMS = {
    item["itemId"]: CatalogItem(
        sku=item["itemId"],
        item_id=item["id"],
        name=item["displayName"],
        billing=BillingType(item["billing"]),
        prices={k: Decimal(v) for k, v in item["prices"].items()},
        active=not item.get("isInactive", False),
    )
    for item in CATALOG
}


def rejected(message: str, type_: str = FailureType.VENDOR_REJECTED) -> ApplicationError:
    return ApplicationError(message, type=type_, non_retryable=True)


def transient(message: str = "503 from vendor") -> ApplicationError:
    return ApplicationError(message, type=FailureType.VENDOR_TRANSIENT)


class FakeSystems:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.failures: dict[str, list[Exception]] = {}
        self.orders: dict[str, SalesOrder] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.crm_orders: dict[str, str] = {}
        self.quote_status: dict[str, str] = {}
        self.customer_updates: dict[str, Any] = {}
        # Business events published (events.publish), as the JSON documents subscribers get;
        # kept apart from ``calls`` so the vendor call sequences stay what they were.
        self.published: list[dict[str, Any]] = []
        # Activity names whose next call does its work and then loses the answer (a timeout
        # after the vendor committed: the unknown-outcome path).
        self.answers_lost: list[str] = []

    def fail_with(self, activity_name: str, *errors: Exception) -> None:
        self.failures.setdefault(activity_name, []).extend(errors)

    def lose_answer(self, activity_name: str, *then: Exception) -> None:
        """The next call of ``activity_name`` does its work, then its answer never comes;
        the calls after it fail with ``then``, in order."""
        self.answers_lost.append(activity_name)
        self.fail_with(activity_name, *then)

    def _answer(self, name: str) -> None:
        """Lose this answer if the test asked for it (after the vendor's work is done)."""
        if name in self.answers_lost:
            self.answers_lost.remove(name)
            raise ApplicationError(
                "read timed out after the request was sent",
                type=FailureType.VENDOR_UNKNOWN_OUTCOME,
            )

    def called(self, activity_name: str) -> list[Any]:
        return [arg for name, arg in self.calls if name == activity_name]

    def _enter(self, name: str, arg: Any) -> None:
        self.calls.append((name, arg))
        queued = self.failures.get(name)
        if queued and name not in self.answers_lost:
            raise queued.pop(0)

    def activities(self) -> dict[str, list[Callable[..., Any]]]:
        @activity.defn(name=Activity.CRM_FETCH_ACCOUNT)
        async def fetch_account(req: FetchAccount) -> Customer:
            self._enter(Activity.CRM_FETCH_ACCOUNT, req)
            return CUSTOMER.model_copy(
                update={"account_id": req.account_id, **self.customer_updates}
            )

        @activity.defn(name=Activity.ERP_CHECK_CATALOG)
        async def check_catalog(req: CheckCatalog) -> CatalogCheckResult:
            self._enter(Activity.ERP_CHECK_CATALOG, req)
            return CatalogCheckResult(mismatches=catalog_mismatches(req.quote, CATALOG_ITEMS))

        @activity.defn(name=Activity.ERP_BOOK_SALES_ORDER)
        async def book_sales_order(req: BookSalesOrder) -> BookedSalesOrder:
            self._enter(Activity.ERP_BOOK_SALES_ORDER, req)
            key = req.order.external_id
            if key not in self.orders:
                self.orders[key] = SalesOrder(
                    order_id=f"SO{len(self.orders) + 1001}",
                    external_id=key,
                    customer_id="C77",
                    currency=req.order.currency,
                    total=req.order.total,
                    status=SalesOrderStatus.PENDING_FULFILLMENT,
                )
            self._answer(Activity.ERP_BOOK_SALES_ORDER)
            return BookedSalesOrder(customer_id="C77", order=self.orders[key])

        @activity.defn(name=Activity.ERP_CANCEL_SALES_ORDER)
        async def cancel_sales_order(req: CancelSalesOrder) -> SalesOrder:
            self._enter(Activity.ERP_CANCEL_SALES_ORDER, req)
            for key, order in self.orders.items():
                if order.order_id == req.order_id:
                    self.orders[key] = order.model_copy(
                        update={"status": SalesOrderStatus.CANCELLED}
                    )
                    return self.orders[key]
            raise rejected(f"no order {req.order_id}")

        @activity.defn(name=Activity.ERP_CANCEL_KEYED_SALES_ORDER)
        async def cancel_keyed_sales_order(req: CancelKeyedSalesOrder) -> KeyedCancellation:
            self._enter(Activity.ERP_CANCEL_KEYED_SALES_ORDER, req)
            order = self.orders.get(req.external_id)
            if order is None:
                return KeyedCancellation(found=False)
            self.orders[req.external_id] = order.model_copy(
                update={"status": SalesOrderStatus.CANCELLED}
            )
            return KeyedCancellation(
                found=True, record_id=order.order_id, status=SalesOrderStatus.CANCELLED.value
            )

        @activity.defn(name=Activity.BILLING_PROVISION_SUBSCRIPTION)
        async def provision_subscription(req: ProvisionSubscription) -> ProvisionedSubscription:
            self._enter(Activity.BILLING_PROVISION_SUBSCRIPTION, req)
            key = req.subscription.idempotency_key
            if key not in self.subscriptions:
                self.subscriptions[key] = Subscription(
                    subscription_id=f"sub_{uuid.uuid4().hex[:10]}",
                    customer_id="cus_1",
                    currency=req.subscription.currency,
                    status=SubscriptionStatus.ACTIVE,
                    latest_invoice_id="in_1",
                )
            self._answer(Activity.BILLING_PROVISION_SUBSCRIPTION)
            return ProvisionedSubscription(
                customer_id="cus_1", subscription=self.subscriptions[key]
            )

        @activity.defn(name=Activity.BILLING_CANCEL_SUBSCRIPTION)
        async def cancel_subscription(req: CancelSubscription) -> Subscription:
            self._enter(Activity.BILLING_CANCEL_SUBSCRIPTION, req)
            for key, sub in self.subscriptions.items():
                if sub.subscription_id == req.subscription_id:
                    self.subscriptions[key] = sub.model_copy(
                        update={"status": SubscriptionStatus.CANCELED}
                    )
                    return self.subscriptions[key]
            raise rejected(f"no subscription {req.subscription_id}")

        @activity.defn(name=Activity.BILLING_CANCEL_KEYED_SUBSCRIPTION)
        async def cancel_keyed_subscription(req: CancelKeyedSubscription) -> KeyedCancellation:
            self._enter(Activity.BILLING_CANCEL_KEYED_SUBSCRIPTION, req)
            sub = self.subscriptions.get(req.idempotency_key)
            if sub is None:
                return KeyedCancellation(found=False)
            self.subscriptions[req.idempotency_key] = sub.model_copy(
                update={"status": SubscriptionStatus.CANCELED}
            )
            return KeyedCancellation(
                found=True,
                record_id=sub.subscription_id,
                status=SubscriptionStatus.CANCELED.value,
                voided_invoice_id=sub.latest_invoice_id,
            )

        @activity.defn(name=Activity.BILLING_VOID_INVOICE)
        async def void_invoice(req: VoidInvoice) -> Invoice:
            self._enter(Activity.BILLING_VOID_INVOICE, req)
            return Invoice(
                invoice_id=req.invoice_id,
                customer_id="cus_1",
                currency="USD",
                status=InvoiceStatus.VOID,
                lines=[],
                subtotal=Decimal(0),
                total=Decimal(0),
            )

        @activity.defn(name=Activity.CRM_RECORD_ORDER)
        async def record_order(req: RecordOrderInCrm) -> CrmOrderRecord:
            self._enter(Activity.CRM_RECORD_ORDER, req)
            self.crm_orders.setdefault(req.order_key, f"801{len(self.crm_orders) + 1:015d}")
            self.quote_status[req.quote_id] = "Ordered"
            return CrmOrderRecord(
                crm_order_id=self.crm_orders[req.order_key], quote_status="Ordered"
            )

        @activity.defn(name=Activity.CRM_MARK_QUOTE_REJECTED)
        async def mark_quote_rejected(req: MarkQuoteRejected) -> str:
            self._enter(Activity.CRM_MARK_QUOTE_REJECTED, req)
            self.quote_status[req.quote_id] = "Rejected"
            return "Rejected"

        @activity.defn(name=Activity.EVENTS_PUBLISH)
        async def publish_event(req: PublishEvent) -> PublishResult:
            queued = self.failures.get(Activity.EVENTS_PUBLISH)
            if queued:
                raise queued.pop(0)
            self.published.append(dict(req.event))
            return PublishResult(
                event_id=str(req.event["id"]), event_type=str(req.event["type"]), deliveries=[]
            )

        return {
            TaskQueue.EVENTS: [publish_event],
            TaskQueue.CRM: [fetch_account, record_order, mark_quote_rejected],
            TaskQueue.ERP: [
                check_catalog,
                book_sales_order,
                cancel_sales_order,
                cancel_keyed_sales_order,
            ],
            TaskQueue.BILLING: [
                provision_subscription,
                cancel_subscription,
                cancel_keyed_subscription,
                void_invoice,
            ],
        }


@asynccontextmanager
async def running_workers(client: Client, fakes: FakeSystems) -> AsyncIterator[None]:
    """Workers for every queue: the real workflow, the fake activities."""
    workers = [Worker(client, task_queue=TaskQueue.ORCHESTRATION, workflows=[QuoteToCashWorkflow])]
    workers += [
        Worker(client, task_queue=queue, activities=acts)
        for queue, acts in fakes.activities().items()
    ]
    async with AsyncExitStack() as stack:
        for worker in workers:
            await stack.enter_async_context(worker)
        yield
