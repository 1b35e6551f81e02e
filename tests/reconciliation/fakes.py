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
from domain.order import SalesOrder, SalesOrderStatus, Subscription, SubscriptionStatus
from domain.reconciliation import (
    ListPage,
    ListSagas,
    OrderPage,
    OrderRecord,
    ReconcileActivity,
    SagaPage,
    SagaState,
    System,
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


class Fakes:
    """Every system as lists, paged by index; the repairs recorded or refused."""

    def __init__(self, records: list[OrderRecord], sagas: list[SagaState]) -> None:
        self.records = {s: [r for r in records if r.system is s] for s in System}
        self.sagas = sagas
        self.calls: list[tuple[str, Any]] = []
        self.refuse: set[str] = set()
        self.broken: set[str] = set()

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

    def activities(self) -> dict[str, list[Callable[..., Any]]]:
        @activity.defn(name=ReconcileActivity.LIST_SAGAS)
        async def list_sagas(request: ListSagas) -> SagaPage:
            self.calls.append((ReconcileActivity.LIST_SAGAS, request.cursor))
            items, cursor = self._slice(self.sagas, request.cursor, request.page_size)
            return SagaPage(items=items, cursor=cursor)

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
            TaskQueue.ORCHESTRATION: [list_sagas],
            TaskQueue.CRM: [
                self._lister(ReconcileActivity.CRM_LIST_ORDERS, System.CRM),
                record_order,
            ],
            TaskQueue.ERP: [
                self._lister(ReconcileActivity.ERP_LIST_SALES_ORDERS, System.ERP),
                cancel_sales_order,
            ],
            TaskQueue.BILLING: [
                self._lister(ReconcileActivity.BILLING_LIST_SUBSCRIPTIONS, System.BILLING),
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
