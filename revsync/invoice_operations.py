"""What finance ops do with invoice sagas: find the parked ones (``revsync stuck``) and decide
on them (:func:`resolve_invoice`, behind ``POST /v1/ops/invoices/{id}/resolve``). The
adjustments that book late events of an ended saga (``InvoiceAdjustment``,
docs/invoice-to-revenue.md#late-events) are listed and decided on the same way.

An invoice saga waits for months by design (``AWAITING_PAYMENT``, ``OVERDUE``, ``PAID`` until
its last period closes), so time in one stage says nothing; only ``NEEDS_ATTENTION`` (a step
parked, ``BlockedStep`` set) needs a person. The decision is the saga's ``resolve`` update
(docs/invoice-to-revenue.md#parking-and-operator-decisions).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from domain.invoice_adjustment import ADJUSTMENT_WORKFLOW_TYPE, adjustment_prefix
from domain.invoice_contracts import InvoiceDecision, InvoiceStage, invoice_workflow_id
from domain.money import MINOR_UNITS, quantize
from domain.saga import ResolveRequest
from revsync.operations import DecisionRefused, decision_update_id, refusal
from workflows import visibility

WORKFLOW_TYPE = "InvoiceToRevenue"


async def resolve_invoice(
    client: Client,
    invoice_id: str,
    request: ResolveRequest,
    *,
    idempotency_key: str | None = None,
    workflow_id: str | None = None,
) -> InvoiceDecision:
    """Send an operator's decision on a parked step to the invoice's saga, or once that has
    ended, to the invoice's parked adjustment (``workflow_id`` names one; without it, the
    only one parked); returns what it recorded. Raises :class:`DecisionRefused` with the
    reason (nothing parked, an action the step does not allow, several adjustments parked
    and none named), and ``RPCError`` NOT_FOUND when no such saga runs."""
    saga = invoice_workflow_id(invoice_id)
    if workflow_id is not None and workflow_id != saga:
        if not workflow_id.startswith(adjustment_prefix(invoice_id)):
            raise DecisionRefused(f"{workflow_id} is no adjustment of invoice {invoice_id}")
        return await _resolve(client, workflow_id, request, idempotency_key)
    try:
        return await _resolve(client, saga, request, idempotency_key)
    except RPCError as error:
        if error.status is not RPCStatusCode.NOT_FOUND:
            raise
        # The saga has ended (or never was): a late event's adjustment may be what is parked.
        parked = await parked_adjustments(client, invoice_id)
        if not parked:
            raise
        if len(parked) > 1:
            raise DecisionRefused(
                f"the saga of invoice {invoice_id} has ended and several of its adjustments are "
                f"parked ({', '.join(parked)}): name one (workflow_id)"
            ) from error
        return await _resolve(client, parked[0], request, idempotency_key)


async def _resolve(
    client: Client, workflow_id: str, request: ResolveRequest, idempotency_key: str | None
) -> InvoiceDecision:
    handle = client.get_workflow_handle(workflow_id)
    update_id = decision_update_id(workflow_id, "resolve", request, idempotency_key)
    try:
        decision: InvoiceDecision = await handle.execute_update(
            "resolve", request, result_type=InvoiceDecision, id=update_id
        )
    except WorkflowUpdateFailedError as error:
        raise DecisionRefused(refusal(error)) from error
    return decision


async def parked_adjustments(client: Client, invoice_id: str) -> list[str]:
    """The workflow ids of the invoice's adjustments waiting for an operator (visibility)."""
    query = (
        f'WorkflowType = "{ADJUSTMENT_WORKFLOW_TYPE}" AND ExecutionStatus = "Running" AND '
        f'{visibility.INVOICE_ID.name} = "{invoice_id}" AND '
        f'{visibility.INVOICE_STAGE.name} = "{InvoiceStage.NEEDS_ATTENTION.value}"'
    )
    return sorted([execution.id async for execution in client.list_workflows(query)])


def parked_invoice_query() -> str:
    """The visibility query for invoice sagas, and adjustments of ended ones, waiting for an
    operator. Also a Web UI view."""
    return (
        f'(WorkflowType = "{WORKFLOW_TYPE}" OR WorkflowType = "{ADJUSTMENT_WORKFLOW_TYPE}") '
        f'AND ExecutionStatus = "Running" AND '
        f'{visibility.INVOICE_STAGE.name} = "{InvoiceStage.NEEDS_ATTENTION.value}"'
    )


@dataclass(frozen=True)
class ParkedInvoice:
    invoice_id: str
    workflow_id: str  # i2r-<invoice id>, or an adjustment i2r-adj-<invoice id>-<kind>-<key>
    customer_id: str
    blocked_step: str | None
    amount_due: str
    waiting_since: datetime | None
    waited: timedelta | None


async def parked_invoices(client: Client, *, now: datetime | None = None) -> list[ParkedInvoice]:
    """Every invoice saga :func:`parked_invoice_query` finds, longest wait first."""
    now = now or datetime.now(UTC)
    found: list[ParkedInvoice] = []
    async for execution in client.list_workflows(parked_invoice_query()):
        attrs = execution.typed_search_attributes
        since = attrs.get(visibility.STAGE_SINCE)
        due = attrs.get(visibility.INVOICE_AMOUNT_DUE)
        currency = attrs.get(visibility.CURRENCY) or ""
        found.append(
            ParkedInvoice(
                invoice_id=attrs.get(visibility.INVOICE_ID) or execution.id,
                workflow_id=execution.id,
                customer_id=attrs.get(visibility.CUSTOMER_ID) or "",
                blocked_step=attrs.get(visibility.BLOCKED_STEP),
                # Display only: the exact amount is in the saga's status, never a float.
                amount_due=_display(due, currency),
                waiting_since=since,
                waited=None if since is None else now - since,
            )
        )
    return sorted(found, key=lambda i: i.waited or timedelta(0), reverse=True)


def _display(amount: float | None, currency: str) -> str:
    """The amount due for people to read (search attributes hold it as a float, for filtering
    only; the exact amount is in the saga's status)."""
    if amount is None:
        return "-"
    value = Decimal(str(amount))
    if currency in MINOR_UNITS:
        value = quantize(value, currency)
    return f"{value:,} {currency}".strip()
