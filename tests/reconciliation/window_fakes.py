"""A fake estate for ReconcileRun on the time-skipping server: every system's records in
memory with their creation and change times, listed by window and looked up by key as the
ports do; the repairs recorded; the report store a temporary folder."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from activities.reconciliation import ReportActivities
from adapters.reports import LocalReportStore
from domain.contracts import (
    Activity,
    CancelSalesOrder,
    CancelSubscription,
    CrmOrderRecord,
    RecordOrderInCrm,
    TaskQueue,
)
from domain.customer_master import MasterField
from domain.order import SalesOrder, SalesOrderStatus, Subscription, SubscriptionStatus
from domain.reconciliation import (
    Basis,
    CustomerPage,
    CustomerRecord,
    InvoicePage,
    InvoiceRecord,
    InvoiceSagaPage,
    InvoiceSagaState,
    OrderPage,
    OrderRecord,
    ReconcileActivity,
    RepropagateCustomer,
    RepropagateOutcome,
    SagaPage,
    SagaState,
    System,
    Window,
    fingerprint,
    order_key,
)
from domain.reconciliation_windows import Entity, ListWindow, Lookup, reads, subject_of
from domain.saga import FailureType
from domain.stages import OrderStage
from workflows.reconcile_run import ReconcileRunWorkflow, ReconcileWindowWorkflow

T0 = datetime(2025, 1, 1, tzinfo=UTC)
Record = OrderRecord | CustomerRecord | InvoiceRecord


def order(system: System, quote: str, record_id: str, at: datetime, **kw: Any) -> OrderRecord:
    fields: dict[str, Any] = {
        "system": system,
        "record_id": record_id,
        "key": order_key(system, quote),
        "quote_ref": quote,
        "customer_id": "c-1",
        "account_id": "ACC1",
        "currency": "USD",
        "live": True,
        "created_at": at,
        "changed_at": at,
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


def booked_quote(quote: str, at: datetime) -> list[OrderRecord]:
    return [
        order(System.ERP, quote, f"so-{quote}", at),
        order(System.BILLING, quote, f"sub-{quote}", at + timedelta(seconds=1)),
        order(System.CRM, quote, f"801-{quote}", at + timedelta(seconds=2)),
    ]


def customer(
    system: System, account: str, record_id: str, at: datetime, **values: Any
) -> CustomerRecord:
    return CustomerRecord(
        system=system,
        record_id=record_id,
        account_id=account,
        fields={MasterField(k): fingerprint(MasterField(k), v) for k, v in values.items()},
        created_at=at,
        changed_at=at,
    )


def invoice(
    system: System, invoice_id: str, at: datetime, status: str = "paid", **kw: Any
) -> InvoiceRecord:
    fields: dict[str, Any] = {
        "system": system,
        "record_id": invoice_id if system is System.BILLING else f"ar-{invoice_id}",
        "invoice_id": invoice_id,
        "key": f"i2r-{invoice_id}:receivable" if system is System.ERP else None,
        "amount": Decimal("120.00"),
        "currency": "EUR",
        "amount_due": Decimal("0"),
        "status": status if system is System.BILLING else "closed",
        "created_at": at,
        "changed_at": at,
    }
    fields.update(kw)
    return InvoiceRecord.model_validate(fields)


_PAGES: dict[Entity, type[Any]] = {
    Entity.ORDERS: OrderPage,
    Entity.CUSTOMERS: CustomerPage,
    Entity.INVOICES: InvoicePage,
}
_ENTITY_OF: dict[type[Any], Entity] = {
    OrderRecord: Entity.ORDERS,
    CustomerRecord: Entity.CUSTOMERS,
    InvoiceRecord: Entity.INVOICES,
}


@dataclass
class Estate:
    """Every system's records (replaced whole by ``put``), the sagas, and what was called."""

    records: dict[tuple[Entity, System], dict[str, Record]] = field(default_factory=dict)
    sagas: list[SagaState] = field(default_factory=list)
    invoice_sagas: list[InvoiceSagaState] = field(default_factory=list)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    broken: dict[str, str] = field(default_factory=dict)  # activity -> "rejected"|"transient"
    refuse: set[str] = field(default_factory=set)  # record ids whose repair is refused
    repeated: set[str] = field(default_factory=set)  # golden ids asked before

    def put(self, *records: Record) -> None:
        for record in records:
            entity = _ENTITY_OF[type(record)]
            self.records.setdefault((entity, record.system), {})[record.record_id] = record

    def drop(self, entity: Entity, system: System, record_id: str) -> None:
        self.records[(entity, system)].pop(record_id)

    def change(
        self, entity: Entity, system: System, record_id: str, at: datetime, **kw: Any
    ) -> None:
        held = self.records[(entity, system)][record_id]
        self.records[(entity, system)][record_id] = held.model_copy(update={"changed_at": at, **kw})

    def _held(self, entity: Entity, system: System) -> list[Record]:
        return sorted(self.records.get((entity, system), {}).values(), key=lambda r: r.record_id)

    def _check(self, name: str) -> None:
        how = self.broken.get(name)
        if how == "rejected":
            raise ApplicationError(
                f"{name}: a page that cannot be read: 'amount' is not a number",
                type="VendorUnreadable",
                non_retryable=True,
            )
        if how == "transient":
            raise ApplicationError(f"{name}: 503 Service Unavailable", type="VendorTransient")

    def _lister(self, entity: Entity, system: System) -> Callable[..., Any]:
        name = reads(entity, system).listing

        @activity.defn(name=name)
        async def list_in(request: ListWindow) -> Any:
            self.calls.append((name, request))
            self._check(name)
            window = request.window
            moment = "changed_at" if window.basis is Basis.CHANGED else "created_at"
            held = [r for r in self._held(entity, system) if window.contains(getattr(r, moment))]
            start = int(request.cursor or 0)
            end = start + request.page_size
            return _PAGES[entity](
                items=held[start:end],
                cursor=str(end) if end < len(held) else None,
                total=len(held),
            )

        return list_in

    def _looker(self, entity: Entity, system: System) -> Callable[..., Any]:
        name = reads(entity, system).lookup

        @activity.defn(name=name)
        async def lookup(request: Lookup) -> Any:
            self.calls.append((name, request))
            self._check(name)
            keys = set(request.keys)
            found = [r for r in self._held(entity, system) if subject_of(entity, r) in keys]
            return _PAGES[entity](items=found)

        return lookup

    def activities(self, store: LocalReportStore) -> dict[str, list[Callable[..., Any]]]:
        by_queue: dict[str, list[Callable[..., Any]]] = {
            TaskQueue.CRM: [],
            TaskQueue.ERP: [],
            TaskQueue.BILLING: [],
        }
        for entity, systems in (
            (Entity.ORDERS, (System.CRM, System.ERP, System.BILLING)),
            (Entity.CUSTOMERS, (System.CRM, System.ERP, System.BILLING)),
            (Entity.INVOICES, (System.ERP, System.BILLING)),
        ):
            for system in systems:
                queue = reads(entity, system).queue
                by_queue[queue] += [self._lister(entity, system), self._looker(entity, system)]

        @activity.defn(name="temporal.list_quote_sagas_in")
        async def list_sagas_in(request: ListWindow) -> SagaPage:
            self.calls.append(("temporal.list_quote_sagas_in", request))
            found = [s for s in self.sagas if request.window.contains(s.changed_at)]
            return SagaPage(items=found)

        @activity.defn(name="temporal.lookup_quote_sagas")
        async def lookup_sagas(request: Lookup) -> SagaPage:
            self.calls.append(("temporal.lookup_quote_sagas", request))
            return SagaPage(items=[s for s in self.sagas if s.quote_id in set(request.keys)])

        @activity.defn(name="temporal.list_invoice_sagas_in")
        async def list_invoice_sagas_in(request: ListWindow) -> InvoiceSagaPage:
            self.calls.append(("temporal.list_invoice_sagas_in", request))
            found = [s for s in self.invoice_sagas if request.window.contains(s.changed_at)]
            return InvoiceSagaPage(items=found)

        @activity.defn(name="temporal.lookup_invoice_sagas")
        async def lookup_invoice_sagas(request: Lookup) -> InvoiceSagaPage:
            self.calls.append(("temporal.lookup_invoice_sagas", request))
            keys = set(request.keys)
            return InvoiceSagaPage(items=[s for s in self.invoice_sagas if s.invoice_id in keys])

        @activity.defn(name=ReconcileActivity.REPROPAGATE_CUSTOMER)
        async def repropagate(request: RepropagateCustomer) -> RepropagateOutcome:
            self.calls.append((ReconcileActivity.REPROPAGATE_CUSTOMER, request))
            if request.golden_id in self.repeated:
                return RepropagateOutcome(scheduled=False, detail="asked before", repeated=True)
            return RepropagateOutcome(scheduled=True, detail="sent")

        @activity.defn(name=Activity.BILLING_CANCEL_SUBSCRIPTION)
        async def cancel_subscription(request: CancelSubscription) -> Subscription:
            self.calls.append((Activity.BILLING_CANCEL_SUBSCRIPTION, request))
            if request.subscription_id in self.refuse:
                raise ApplicationError(
                    "refused", type=FailureType.VENDOR_REJECTED, non_retryable=True
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

        reports = ReportActivities(store)
        by_queue[TaskQueue.CRM].append(record_order)
        by_queue[TaskQueue.ERP].append(cancel_sales_order)
        by_queue[TaskQueue.BILLING].append(cancel_subscription)
        by_queue[TaskQueue.ORCHESTRATION] = [
            list_sagas_in,
            lookup_sagas,
            list_invoice_sagas_in,
            lookup_invoice_sagas,
            repropagate,
            reports.load_marks,
            reports.save_progress,
            reports.write_rows,
        ]
        return by_queue

    def called(self, name: str) -> list[Any]:
        return [arg for called, arg in self.calls if called == name]


def saga(quote: str, stage: OrderStage, at: datetime) -> SagaState:
    return SagaState(
        workflow_id=f"q2c-{quote}",
        quote_id=quote,
        account_id="ACC1",
        stage=stage,
        running=False,
        changed_at=at,
    )


@asynccontextmanager
async def workers(client: Client, estate: Estate, folder: Path) -> AsyncIterator[LocalReportStore]:
    store = LocalReportStore(folder)
    acts = estate.activities(store)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(
            Worker(
                client,
                task_queue=TaskQueue.ORCHESTRATION,
                workflows=[ReconcileRunWorkflow, ReconcileWindowWorkflow],
                activities=acts.pop(TaskQueue.ORCHESTRATION),
            )
        )
        for queue, listed in acts.items():
            await stack.enter_async_context(Worker(client, task_queue=queue, activities=listed))
        yield store


def subjects(items: Iterable[Any]) -> set[tuple[str, str]]:
    return {(i.kind.value, i.subject) for i in items}


__all__ = ["T0", "Estate", "Window"]
