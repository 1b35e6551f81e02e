"""Fake listings and repairs for ReconciliationWorkflow on the time-skipping server: every
system as a list paged by index, every repair recorded (or refused)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from domain.contracts import (
    Activity,
    CancelSalesOrder,
    CancelSubscription,
    CrmOrderRecord,
    RecordOrderInCrm,
    TaskQueue,
)
from domain.customer_master import MasterField
from domain.invoice_contracts import InvoiceStage
from domain.order import SalesOrder, SalesOrderStatus, Subscription, SubscriptionStatus
from domain.reconciliation import (
    CustomerPage,
    CustomerRecord,
    InvoicePage,
    InvoiceRecord,
    InvoiceSagaPage,
    InvoiceSagaState,
    ListPage,
    ListSagas,
    OrderPage,
    OrderRecord,
    ReconcileActivity,
    RepropagateCustomer,
    RepropagateOutcome,
    SagaPage,
    SagaState,
    System,
    fingerprint,
    order_key,
)
from domain.saga import FailureType
from domain.stages import OrderStage
from workflows.reconciliation import ReconciliationWorkflow

LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)


def record(system: System, quote: str, record_id: str, **kw: Any) -> OrderRecord:
    fields: dict[str, Any] = {
        "system": system,
        "record_id": record_id,
        "key": order_key(system, quote),
        "quote_ref": quote,
        "customer_id": "c-1",
        "account_id": "0015e00000AcmeUS1",
        "currency": "USD",
        "live": True,
    }
    if system is System.BILLING:
        fields["status"] = SubscriptionStatus.ACTIVE.value
    else:
        fields["status"] = (
            SalesOrderStatus.PENDING_FULFILLMENT.value if system is System.ERP else "Activated"
        )
        fields["amount"] = Decimal("500.00")
    fields.update(kw)
    return OrderRecord.model_validate(fields)


def saga(quote: str, stage: OrderStage) -> SagaState:
    return SagaState(
        workflow_id=f"q2c-{quote}",
        quote_id=quote,
        account_id="0015e00000AcmeUS1",
        stage=stage,
        running=False,
        changed_at=LONG_AGO,
    )


def customer(system: System, account: str | None, record_id: str, **values: Any) -> CustomerRecord:
    """A customer record holding ``values`` (golden field name -> value)."""
    return CustomerRecord(
        system=system,
        record_id=record_id,
        account_id=account,
        fields={MasterField(k): fingerprint(MasterField(k), v) for k, v in values.items()},
    )


def invoice(
    system: System, invoice_id: str, record_id: str, status: str, due: str = "0", **kw: Any
) -> InvoiceRecord:
    fields: dict[str, Any] = {
        "system": system,
        "record_id": record_id,
        "invoice_id": invoice_id,
        "key": f"i2r-{invoice_id}:receivable" if system is System.ERP else None,
        "amount": Decimal("120.00"),
        "currency": "EUR",
        "amount_due": Decimal(due),
        "status": status,
    }
    fields.update(kw)
    return InvoiceRecord.model_validate(fields)


def invoice_saga(invoice_id: str, stage: InvoiceStage, *, running: bool) -> InvoiceSagaState:
    return InvoiceSagaState(
        workflow_id=f"i2r-{invoice_id}",
        invoice_id=invoice_id,
        stage=stage,
        running=running,
        changed_at=LONG_AGO,
    )


class Fakes:
    """Every system as lists, paged by index; the repairs recorded or refused."""

    def __init__(
        self,
        records: list[OrderRecord],
        sagas: list[SagaState],
        customers: list[CustomerRecord] | None = None,
        invoices: list[InvoiceRecord] | None = None,
        invoice_sagas: list[InvoiceSagaState] | None = None,
    ) -> None:
        self.records = {s: [r for r in records if r.system is s] for s in System}
        self.sagas = sagas
        self.customers = {s: [c for c in customers or [] if c.system is s] for s in System}
        self.invoices = {s: [i for i in invoices or [] if i.system is s] for s in System}
        self.invoice_sagas = invoice_sagas or []
        self.calls: list[tuple[str, Any]] = []
        self.refuse: set[str] = set()
        self.broken: set[str] = set()
        self.no_master: set[str] = set()  # golden ids without a customer-master workflow
        self.repeated: set[str] = set()  # golden ids whose request the master saw before

    @staticmethod
    def _slice(items: list[Any], cursor: str | None, size: int) -> tuple[list[Any], str | None]:
        start = int(cursor or 0)
        end = start + size
        return items[start:end], (str(end) if end < len(items) else None)

    def _lister(self, name: str, system: System) -> Callable[..., Any]:
        @activity.defn(name=name)
        async def list_page(request: ListPage) -> OrderPage:
            self.calls.append((name, request.cursor))
            if name in self.broken:
                raise ApplicationError(
                    "HTTP 400 INVALID_QUERY_LOCATOR",
                    type=FailureType.VENDOR_REJECTED,
                    non_retryable=True,
                )
            items, cursor = self._slice(self.records[system], request.cursor, request.page_size)
            return OrderPage(items=items, cursor=cursor)

        return list_page

    def _customer_lister(self, name: str, system: System) -> Callable[..., Any]:
        @activity.defn(name=name)
        async def list_page(request: ListPage) -> CustomerPage:
            self.calls.append((name, request.cursor))
            items, cursor = self._slice(self.customers[system], request.cursor, request.page_size)
            return CustomerPage(items=items, cursor=cursor)

        return list_page

    def _invoice_lister(self, name: str, system: System) -> Callable[..., Any]:
        @activity.defn(name=name)
        async def list_page(request: ListPage) -> InvoicePage:
            self.calls.append((name, request.cursor))
            items, cursor = self._slice(self.invoices[system], request.cursor, request.page_size)
            return InvoicePage(items=items, cursor=cursor)

        return list_page

    def activities(self) -> dict[str, list[Callable[..., Any]]]:
        @activity.defn(name=ReconcileActivity.LIST_SAGAS)
        async def list_sagas(request: ListSagas) -> SagaPage:
            self.calls.append((ReconcileActivity.LIST_SAGAS, request.cursor))
            items, cursor = self._slice(self.sagas, request.cursor, request.page_size)
            return SagaPage(items=items, cursor=cursor)

        @activity.defn(name=ReconcileActivity.LIST_INVOICE_SAGAS)
        async def list_invoice_sagas(request: ListSagas) -> InvoiceSagaPage:
            self.calls.append((ReconcileActivity.LIST_INVOICE_SAGAS, request.cursor))
            items, cursor = self._slice(self.invoice_sagas, request.cursor, request.page_size)
            return InvoiceSagaPage(items=items, cursor=cursor)

        @activity.defn(name=ReconcileActivity.REPROPAGATE_CUSTOMER)
        async def repropagate(request: RepropagateCustomer) -> RepropagateOutcome:
            self.calls.append((ReconcileActivity.REPROPAGATE_CUSTOMER, request))
            if request.golden_id in self.no_master:
                return RepropagateOutcome(scheduled=False, detail="no customer-master workflow")
            if request.golden_id in self.repeated:
                return RepropagateOutcome(scheduled=False, detail="asked before", repeated=True)
            return RepropagateOutcome(scheduled=True, detail="sent")

        @activity.defn(name=Activity.BILLING_CANCEL_SUBSCRIPTION)
        async def cancel_subscription(request: CancelSubscription) -> Subscription:
            self.calls.append((Activity.BILLING_CANCEL_SUBSCRIPTION, request))
            if request.subscription_id in self.refuse:
                raise ApplicationError(
                    "stripe: subscription is locked",
                    type=FailureType.VENDOR_REJECTED,
                    non_retryable=True,
                )
            return Subscription(
                subscription_id=request.subscription_id,
                customer_id="c-1",
                currency="USD",
                status=SubscriptionStatus.CANCELED,
            )

        @activity.defn(name=Activity.ERP_CANCEL_SALES_ORDER)
        async def cancel_sales_order(request: CancelSalesOrder) -> SalesOrder:
            self.calls.append((Activity.ERP_CANCEL_SALES_ORDER, request))
            return SalesOrder(
                order_id=request.order_id,
                external_id="x",
                customer_id="c-1",
                currency="USD",
                total=Decimal("500.00"),
                status=SalesOrderStatus.CANCELLED,
            )

        @activity.defn(name=Activity.CRM_RECORD_ORDER)
        async def record_order(request: RecordOrderInCrm) -> CrmOrderRecord:
            self.calls.append((Activity.CRM_RECORD_ORDER, request))
            return CrmOrderRecord(crm_order_id="801NEW", quote_status="Ordered")

        return {
            TaskQueue.ORCHESTRATION: [list_sagas, list_invoice_sagas, repropagate],
            TaskQueue.CRM: [
                self._lister(ReconcileActivity.CRM_LIST_ORDERS, System.CRM),
                self._customer_lister(ReconcileActivity.CRM_LIST_ACCOUNTS, System.CRM),
                record_order,
            ],
            TaskQueue.ERP: [
                self._lister(ReconcileActivity.ERP_LIST_SALES_ORDERS, System.ERP),
                self._customer_lister(ReconcileActivity.ERP_LIST_CUSTOMERS, System.ERP),
                self._invoice_lister(ReconcileActivity.ERP_LIST_RECEIVABLES, System.ERP),
                cancel_sales_order,
            ],
            TaskQueue.BILLING: [
                self._lister(ReconcileActivity.BILLING_LIST_SUBSCRIPTIONS, System.BILLING),
                self._customer_lister(ReconcileActivity.BILLING_LIST_CUSTOMERS, System.BILLING),
                self._invoice_lister(ReconcileActivity.BILLING_LIST_INVOICES, System.BILLING),
                cancel_subscription,
            ],
        }

    def repairs(self, name: str) -> list[Any]:
        return [arg for called, arg in self.calls if called == name]


@asynccontextmanager
async def workers(client: Client, fakes: Fakes) -> AsyncIterator[None]:
    acts = fakes.activities()
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(
            Worker(
                client,
                task_queue=TaskQueue.ORCHESTRATION,
                workflows=[ReconciliationWorkflow],
                activities=acts.pop(TaskQueue.ORCHESTRATION),
            )
        )
        for queue, listed in acts.items():
            await stack.enter_async_context(Worker(client, task_queue=queue, activities=listed))
        yield


def many_quotes() -> tuple[list[OrderRecord], list[SagaState]]:
    """Q0..Q5 booked and consistent; QM booked without its CRM order; QC compensated with a
    live subscription; QL compensated with a subscription the vendor refuses to cancel;
    QD booked with two live ERP orders."""
    records: list[OrderRecord] = []
    sagas: list[SagaState] = []
    for n in range(6):
        quote = f"Q{n}"
        records += [
            record(System.CRM, quote, f"801{n}"),
            record(System.ERP, quote, f"70{n}"),
            record(System.BILLING, quote, f"sub_{n}"),
        ]
        sagas.append(saga(quote, OrderStage.BOOKED))
    records += [record(System.ERP, "QM", "7M"), record(System.BILLING, "QM", "sub_M")]
    records += [
        record(System.ERP, "QC", "7C", status="cancelled", live=False),
        record(System.BILLING, "QC", "sub_C"),
        record(System.ERP, "QL", "7L", status="cancelled", live=False),
        record(System.BILLING, "QL", "sub_L"),
    ]
    records += [
        record(System.CRM, "QD", "801D"),
        record(System.ERP, "QD", "7D"),
        record(System.ERP, "QD", "7D2", key=None),
        record(System.BILLING, "QD", "sub_D"),
    ]
    sagas += [
        saga("QM", OrderStage.BOOKED),
        saga("QC", OrderStage.COMPENSATED),
        saga("QL", OrderStage.COMPENSATED),
        saga("QD", OrderStage.BOOKED),
    ]
    return records, sagas
