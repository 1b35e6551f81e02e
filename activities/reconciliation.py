"""Reconciliation's reads: one page of one system per activity call.

The vendor listings run on their vendor's task queue (``crm``, ``erp``, ``billing``), within
that queue's limits, and classify failures like every other vendor call
(:mod:`activities.classify`). The saga directory reads Temporal's visibility (which quote's
saga is where) and runs on the ``orchestration`` queue, whose worker holds a client. Repairs
are not here: the workflow runs the sagas' own idempotent activities.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TypeVar

from temporalio import activity
from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError

from activities.classify import vendor_call
from adapters.ports import BillingPort, CrmPort, ErpPort
from adapters.reports import ReportStore
from domain.invoice_contracts import InvoiceStage
from domain.reconciliation import (
    INVOICE_TO_REVENUE_TYPE,
    QUOTE_TO_CASH_TYPE,
    CustomerPage,
    InvoicePage,
    InvoiceSagaPage,
    InvoiceSagaState,
    ListPage,
    ListSagas,
    OrderPage,
    ReconcileActivity,
    RepropagateCustomer,
    RepropagateOutcome,
    SagaPage,
    SagaState,
)
from domain.reconciliation_windows import (
    ListWindow,
    Lookup,
    Marks,
    SaveProgress,
    WindowActivity,
    WriteRows,
)
from domain.stages import OrderStage
from revsync.customer_master import CustomerNotFound, repropagate
from revsync.operations import DecisionRefused
from workflows import visibility

T = TypeVar("T")

UNREADABLE = "VendorUnreadable"


@contextmanager
def readable(vendor: str, operation: str) -> Iterator[None]:
    """A page whose records cannot be read (a value that is not what the vendor documents)
    fails the read at once, never retried: the window is then incomplete and compares
    nothing (vendor failures are classified by :func:`vendor_call` as always)."""
    try:
        with vendor_call(vendor):
            yield
    except (ValueError, KeyError, TypeError) as error:
        raise ApplicationError(
            f"{vendor} {operation}: a page that cannot be read: {error}",
            type=UNREADABLE,
            non_retryable=True,
        ) from error


async def _read(vendor: str, operation: str, call: Awaitable[T]) -> T:
    with readable(vendor, operation):
        return await call


class ReconcileCrmActivities:
    def __init__(self, crm: CrmPort) -> None:
        self.crm = crm

    @activity.defn(name=WindowActivity.CRM_LIST_ORDERS)
    async def list_orders_in(self, request: ListWindow) -> OrderPage:
        return await _read(
            self.crm.vendor,
            "list_orders",
            self.crm.list_orders(request.cursor, request.page_size, window=request.window),
        )

    @activity.defn(name=WindowActivity.CRM_LOOKUP_ORDERS)
    async def lookup_orders(self, request: Lookup) -> OrderPage:
        found = await _read(self.crm.vendor, "lookup_orders", self.crm.lookup_orders(request.keys))
        return OrderPage(items=found)

    @activity.defn(name=WindowActivity.CRM_LIST_ACCOUNTS)
    async def list_accounts_in(self, request: ListWindow) -> CustomerPage:
        return await _read(
            self.crm.vendor,
            "list_accounts",
            self.crm.list_accounts(request.cursor, request.page_size, window=request.window),
        )

    @activity.defn(name=WindowActivity.CRM_LOOKUP_ACCOUNTS)
    async def lookup_accounts(self, request: Lookup) -> CustomerPage:
        found = await _read(
            self.crm.vendor, "lookup_accounts", self.crm.lookup_accounts(request.keys)
        )
        return CustomerPage(items=found)

    @activity.defn(name=ReconcileActivity.CRM_LIST_ORDERS)
    async def list_orders(self, request: ListPage) -> OrderPage:
        with vendor_call(self.crm.vendor):
            return await self.crm.list_orders(request.cursor, request.page_size)

    @activity.defn(name=ReconcileActivity.CRM_LIST_ACCOUNTS)
    async def list_accounts(self, request: ListPage) -> CustomerPage:
        with vendor_call(self.crm.vendor):
            return await self.crm.list_accounts(request.cursor, request.page_size)


class ReconcileErpActivities:
    def __init__(self, erp: ErpPort) -> None:
        self.erp = erp

    @activity.defn(name=WindowActivity.ERP_LIST_SALES_ORDERS)
    async def list_sales_orders_in(self, request: ListWindow) -> OrderPage:
        return await _read(
            self.erp.vendor,
            "list_sales_orders",
            self.erp.list_sales_orders(request.cursor, request.page_size, window=request.window),
        )

    @activity.defn(name=WindowActivity.ERP_LOOKUP_SALES_ORDERS)
    async def lookup_sales_orders(self, request: Lookup) -> OrderPage:
        found = await _read(
            self.erp.vendor, "lookup_sales_orders", self.erp.lookup_sales_orders(request.keys)
        )
        return OrderPage(items=found)

    @activity.defn(name=WindowActivity.ERP_LIST_CUSTOMERS)
    async def list_customers_in(self, request: ListWindow) -> CustomerPage:
        return await _read(
            self.erp.vendor,
            "list_customers",
            self.erp.list_customers(request.cursor, request.page_size, window=request.window),
        )

    @activity.defn(name=WindowActivity.ERP_LOOKUP_CUSTOMERS)
    async def lookup_customers(self, request: Lookup) -> CustomerPage:
        found = await _read(
            self.erp.vendor, "lookup_customers", self.erp.lookup_customers(request.keys)
        )
        return CustomerPage(items=found)

    @activity.defn(name=WindowActivity.ERP_LIST_RECEIVABLES)
    async def list_receivables_in(self, request: ListWindow) -> InvoicePage:
        return await _read(
            self.erp.vendor,
            "list_receivables",
            self.erp.list_receivables(request.cursor, request.page_size, window=request.window),
        )

    @activity.defn(name=WindowActivity.ERP_LOOKUP_RECEIVABLES)
    async def lookup_receivables(self, request: Lookup) -> InvoicePage:
        found = await _read(
            self.erp.vendor, "lookup_receivables", self.erp.lookup_receivables(request.keys)
        )
        return InvoicePage(items=found)

    @activity.defn(name=ReconcileActivity.ERP_LIST_SALES_ORDERS)
    async def list_sales_orders(self, request: ListPage) -> OrderPage:
        with vendor_call(self.erp.vendor):
            return await self.erp.list_sales_orders(request.cursor, request.page_size)

    @activity.defn(name=ReconcileActivity.ERP_LIST_CUSTOMERS)
    async def list_customers(self, request: ListPage) -> CustomerPage:
        with vendor_call(self.erp.vendor):
            return await self.erp.list_customers(request.cursor, request.page_size)

    @activity.defn(name=ReconcileActivity.ERP_LIST_RECEIVABLES)
    async def list_receivables(self, request: ListPage) -> InvoicePage:
        with vendor_call(self.erp.vendor):
            return await self.erp.list_receivables(request.cursor, request.page_size)


class ReconcileBillingActivities:
    def __init__(self, billing: BillingPort) -> None:
        self.billing = billing

    @activity.defn(name=WindowActivity.BILLING_LIST_SUBSCRIPTIONS)
    async def list_subscriptions_in(self, request: ListWindow) -> OrderPage:
        return await _read(
            self.billing.vendor,
            "list_subscriptions",
            self.billing.list_subscriptions(
                request.cursor, request.page_size, window=request.window
            ),
        )

    @activity.defn(name=WindowActivity.BILLING_LOOKUP_SUBSCRIPTIONS)
    async def lookup_subscriptions(self, request: Lookup) -> OrderPage:
        found = await _read(
            self.billing.vendor,
            "lookup_subscriptions",
            self.billing.lookup_subscriptions(request.keys),
        )
        return OrderPage(items=found)

    @activity.defn(name=WindowActivity.BILLING_LIST_CUSTOMERS)
    async def list_customers_in(self, request: ListWindow) -> CustomerPage:
        return await _read(
            self.billing.vendor,
            "list_customers",
            self.billing.list_customers(request.cursor, request.page_size, window=request.window),
        )

    @activity.defn(name=WindowActivity.BILLING_LOOKUP_CUSTOMERS)
    async def lookup_customers(self, request: Lookup) -> CustomerPage:
        found = await _read(
            self.billing.vendor, "lookup_customers", self.billing.lookup_customers(request.keys)
        )
        return CustomerPage(items=found)

    @activity.defn(name=WindowActivity.BILLING_LIST_INVOICES)
    async def list_invoices_in(self, request: ListWindow) -> InvoicePage:
        return await _read(
            self.billing.vendor,
            "list_invoices",
            self.billing.list_invoices(request.cursor, request.page_size, window=request.window),
        )

    @activity.defn(name=WindowActivity.BILLING_LOOKUP_INVOICES)
    async def lookup_invoices(self, request: Lookup) -> InvoicePage:
        found = await _read(
            self.billing.vendor, "lookup_invoices", self.billing.lookup_invoices(request.keys)
        )
        return InvoicePage(items=found)

    @activity.defn(name=ReconcileActivity.BILLING_LIST_SUBSCRIPTIONS)
    async def list_subscriptions(self, request: ListPage) -> OrderPage:
        with vendor_call(self.billing.vendor):
            return await self.billing.list_subscriptions(request.cursor, request.page_size)

    @activity.defn(name=ReconcileActivity.BILLING_LIST_CUSTOMERS)
    async def list_customers(self, request: ListPage) -> CustomerPage:
        with vendor_call(self.billing.vendor):
            return await self.billing.list_customers(request.cursor, request.page_size)

    @activity.defn(name=ReconcileActivity.BILLING_LIST_INVOICES)
    async def list_invoices(self, request: ListPage) -> InvoicePage:
        with vendor_call(self.billing.vendor):
            return await self.billing.list_invoices(request.cursor, request.page_size)


SAGA_QUERY = f'WorkflowType = "{QUOTE_TO_CASH_TYPE}"'
INVOICE_SAGA_QUERY = f'WorkflowType = "{INVOICE_TO_REVENUE_TYPE}"'
_CLOSED_STAGE_TRUSTED = WorkflowExecutionStatus.COMPLETED


def saga_state(execution: WorkflowExecution) -> SagaState | None:
    """A listed quote-to-cash execution as reconciliation judges by it; None when it names
    no quote. A saga that ended without completing (terminated, failed, timed out) has no
    stage to trust: its last stage says where it was, not where it got to."""
    attrs = execution.typed_search_attributes
    quote_id = attrs.get(visibility.QUOTE_ID)
    if quote_id is None and execution.id.startswith("q2c-"):
        quote_id = execution.id.removeprefix("q2c-")
    if not quote_id:
        return None
    running = execution.status is WorkflowExecutionStatus.RUNNING
    raw = attrs.get(visibility.ORDER_STAGE)
    stage = next((s for s in OrderStage if s.value == raw), None)
    if not running and execution.status is not _CLOSED_STAGE_TRUSTED:
        stage = None
    return SagaState(
        workflow_id=execution.id,
        quote_id=quote_id,
        account_id=attrs.get(visibility.CUSTOMER_ID),
        stage=stage,
        running=running,
        changed_at=attrs.get(visibility.STAGE_SINCE) if running else execution.close_time,
    )


def invoice_saga_state(execution: WorkflowExecution) -> InvoiceSagaState | None:
    """A listed invoice-to-revenue execution; None when it names no invoice."""
    attrs = execution.typed_search_attributes
    invoice_id = attrs.get(visibility.INVOICE_ID)
    if invoice_id is None and execution.id.startswith("i2r-"):
        invoice_id = execution.id.removeprefix("i2r-")
    if not invoice_id:
        return None
    running = execution.status is WorkflowExecutionStatus.RUNNING
    raw = attrs.get(visibility.INVOICE_STAGE)
    stage = next((s for s in InvoiceStage if s.value == raw), None)
    if not running and execution.status is not _CLOSED_STAGE_TRUSTED:
        stage = None
    return InvoiceSagaState(
        workflow_id=execution.id,
        invoice_id=invoice_id,
        stage=stage,
        running=running,
        changed_at=attrs.get(visibility.STAGE_SINCE) if running else execution.close_time,
    )


def _literal(value: str) -> str:
    """A string literal of Temporal's list filter (SQL-like: double quotes, backslash
    escapes)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _timestamp(moment: datetime) -> str:
    return _literal(moment.isoformat().replace("+00:00", "Z"))


def id_in(workflow_ids: list[str]) -> str:
    """``WorkflowId IN (...)`` (Temporal's list filter, "List Filter" in the visibility
    docs)."""
    return f"WorkflowId IN ({', '.join(_literal(i) for i in workflow_ids)})"


def changed_in(query: str, start: datetime, end: datetime) -> str:
    """Executions of ``query`` that closed, or (running) entered their current stage, in
    ``[start, end)``."""
    lo, hi = _timestamp(start), _timestamp(end)
    return (
        f"{query} AND ((CloseTime >= {lo} AND CloseTime < {hi}) OR "
        f"({visibility.STAGE_SINCE.name} >= {lo} AND {visibility.STAGE_SINCE.name} < {hi}))"
    )


class SagaDirectory:
    """Which quote's (and invoice's) saga is in which stage, page by page from visibility;
    and the customer master, asked to re-propagate a customer."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def _page(
        self, query: str, request: ListSagas
    ) -> tuple[list[WorkflowExecution], str | None]:
        token: bytes | None = None
        if request.cursor is not None:
            try:
                token = base64.b64decode(request.cursor, validate=True)
            except binascii.Error:
                raise ApplicationError(
                    f"{request.cursor!r} is not a visibility cursor", non_retryable=True
                ) from None
        listing = self.client.list_workflows(
            query, page_size=request.page_size, next_page_token=token
        )
        await listing.fetch_next_page()
        after = listing.next_page_token
        return list(listing.current_page or []), (
            base64.b64encode(after).decode() if after else None
        )

    @activity.defn(name=ReconcileActivity.LIST_SAGAS)
    async def list_sagas(self, request: ListSagas) -> SagaPage:
        executions, cursor = await self._page(SAGA_QUERY, request)
        states = [saga_state(e) for e in executions]
        return SagaPage(items=[s for s in states if s is not None], cursor=cursor)

    @activity.defn(name=ReconcileActivity.LIST_INVOICE_SAGAS)
    async def list_invoice_sagas(self, request: ListSagas) -> InvoiceSagaPage:
        executions, cursor = await self._page(INVOICE_SAGA_QUERY, request)
        states = [invoice_saga_state(e) for e in executions]
        return InvoiceSagaPage(items=[s for s in states if s is not None], cursor=cursor)

    async def _all(self, query: str, page_size: int) -> list[WorkflowExecution]:
        found: list[WorkflowExecution] = []
        async for execution in self.client.list_workflows(query, page_size=page_size):
            found.append(execution)
        return found

    @activity.defn(name=WindowActivity.LIST_QUOTE_SAGAS)
    async def list_sagas_in(self, request: ListWindow) -> SagaPage:
        """The quote sagas that closed or changed stage in the window, one page."""
        executions, cursor = await self._page(
            changed_in(SAGA_QUERY, request.window.start, request.window.end),
            ListSagas(cursor=request.cursor, page_size=min(request.page_size, 1000)),
        )
        states = [saga_state(e) for e in executions]
        return SagaPage(items=[s for s in states if s is not None], cursor=cursor)

    @activity.defn(name=WindowActivity.LOOKUP_QUOTE_SAGAS)
    async def lookup_sagas(self, request: Lookup) -> SagaPage:
        """The sagas of these quotes (``q2c-<quote>``), every run of each."""
        if not request.keys:
            return SagaPage(items=[])
        ids = [f"q2c-{quote}" for quote in request.keys]
        executions = await self._all(f"{SAGA_QUERY} AND {id_in(ids)}", len(ids))
        states = [saga_state(e) for e in executions]
        return SagaPage(items=[s for s in states if s is not None])

    @activity.defn(name=WindowActivity.LIST_INVOICE_SAGAS)
    async def list_invoice_sagas_in(self, request: ListWindow) -> InvoiceSagaPage:
        executions, cursor = await self._page(
            changed_in(INVOICE_SAGA_QUERY, request.window.start, request.window.end),
            ListSagas(cursor=request.cursor, page_size=min(request.page_size, 1000)),
        )
        states = [invoice_saga_state(e) for e in executions]
        return InvoiceSagaPage(items=[s for s in states if s is not None], cursor=cursor)

    @activity.defn(name=WindowActivity.LOOKUP_INVOICE_SAGAS)
    async def lookup_invoice_sagas(self, request: Lookup) -> InvoiceSagaPage:
        if not request.keys:
            return InvoiceSagaPage(items=[])
        ids = [f"i2r-{invoice}" for invoice in request.keys]
        executions = await self._all(f"{INVOICE_SAGA_QUERY} AND {id_in(ids)}", len(ids))
        states = [invoice_saga_state(e) for e in executions]
        return InvoiceSagaPage(items=[s for s in states if s is not None])

    @activity.defn(name=ReconcileActivity.REPROPAGATE_CUSTOMER)
    async def repropagate_customer(self, request: RepropagateCustomer) -> RepropagateOutcome:
        """Ask ``customer-<golden id>`` to send the golden values of the fields again, under
        the run's request id (``request.request_id``): a retry of this activity schedules
        nothing twice, a later run asks anew. A ``repeated`` answer sent nothing now.
        A customer without a customer-master workflow (or one refusing the request) is
        answered, not raised: reconciliation then leaves the drift for review."""
        try:
            result = await repropagate(
                self.client,
                request.golden_id,
                [f.value for f in request.fields],
                request.reason,
                requested_by="reconciliation",
                request_id=request.request_id,
            )
        except CustomerNotFound as error:
            return RepropagateOutcome(
                scheduled=False, detail=f"no customer-master workflow: {error}"
            )
        except DecisionRefused as error:
            return RepropagateOutcome(scheduled=False, detail=f"refused: {error}")
        sent = ", ".join(sorted({s.system.value for s in result.scheduled})) or "nothing"
        detail = f"re-propagation {result.request_key} sent to {sent}"
        if result.repeated:
            # The customer master answered a request it had seen: nothing was sent now.
            detail = f"re-propagation {result.request_key} asked before (sent to {sent} then)"
        if result.unset:
            detail += "; no golden value for " + ", ".join(f.value for f in result.unset)
        return RepropagateOutcome(
            scheduled=bool(result.scheduled) and not result.repeated,
            detail=detail,
            repeated=result.repeated,
        )


class ReportActivities:
    """The report store, on the ``orchestration`` worker: marks, the run's report, its rows."""

    def __init__(self, store: ReportStore) -> None:
        self.store = store

    @activity.defn(name=WindowActivity.LOAD_MARKS)
    async def load_marks(self, run_id: str) -> Marks:
        return await self.store.load_marks()

    @activity.defn(name=WindowActivity.SAVE_PROGRESS)
    async def save_progress(self, request: SaveProgress) -> int:
        """The marks, then the report: a report never names marks not yet saved."""
        await self.store.save_marks(request.marks)
        await self.store.write_report(request.run_id, request.report)
        return request.report.windows

    @activity.defn(name=WindowActivity.WRITE_ROWS)
    async def write_rows(self, request: WriteRows) -> int:
        await self.store.write_rows(request.run_id, request.part, request.items)
        return len(request.items)
