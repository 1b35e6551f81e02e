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

from temporalio import activity
from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError

from activities.classify import vendor_call
from adapters.ports import BillingPort, CrmPort, ErpPort
from domain.reconciliation import (
    QUOTE_TO_CASH_TYPE,
    ListPage,
    ListSagas,
    OrderPage,
    ReconcileActivity,
    SagaPage,
    SagaState,
)
from domain.stages import OrderStage
from workflows import visibility


class ReconcileCrmActivities:
    def __init__(self, crm: CrmPort) -> None:
        self.crm = crm

    @activity.defn(name=ReconcileActivity.CRM_LIST_ORDERS)
    async def list_orders(self, request: ListPage) -> OrderPage:
        with vendor_call(self.crm.vendor):
            return await self.crm.list_orders(request.cursor, request.page_size)


class ReconcileErpActivities:
    def __init__(self, erp: ErpPort) -> None:
        self.erp = erp

    @activity.defn(name=ReconcileActivity.ERP_LIST_SALES_ORDERS)
    async def list_sales_orders(self, request: ListPage) -> OrderPage:
        with vendor_call(self.erp.vendor):
            return await self.erp.list_sales_orders(request.cursor, request.page_size)


class ReconcileBillingActivities:
    def __init__(self, billing: BillingPort) -> None:
        self.billing = billing

    @activity.defn(name=ReconcileActivity.BILLING_LIST_SUBSCRIPTIONS)
    async def list_subscriptions(self, request: ListPage) -> OrderPage:
        with vendor_call(self.billing.vendor):
            return await self.billing.list_subscriptions(request.cursor, request.page_size)


SAGA_QUERY = f'WorkflowType = "{QUOTE_TO_CASH_TYPE}"'
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


class SagaDirectory:
    """Which quote's saga is in which stage, page by page from visibility."""

    def __init__(self, client: Client) -> None:
        self.client = client

    @activity.defn(name=ReconcileActivity.LIST_SAGAS)
    async def list_sagas(self, request: ListSagas) -> SagaPage:
        token: bytes | None = None
        if request.cursor is not None:
            try:
                token = base64.b64decode(request.cursor, validate=True)
            except binascii.Error:
                raise ApplicationError(
                    f"{request.cursor!r} is not a visibility cursor", non_retryable=True
                ) from None
        listing = self.client.list_workflows(
            SAGA_QUERY, page_size=request.page_size, next_page_token=token
        )
        await listing.fetch_next_page()
        states = [saga_state(e) for e in listing.current_page or []]
        after = listing.next_page_token
        return SagaPage(
            items=[s for s in states if s is not None],
            cursor=base64.b64encode(after).decode() if after else None,
        )
