"""A billing event for an invoice whose saga has ended starts an adjustment saga.

:func:`start_adjustment` is what the gateway does when a payment, void or credit note cannot
be signalled because ``i2r-<invoice>`` has closed (docs/invoice-to-revenue.md#late-events):

1. read what the ended saga left (its ``adjustment_base`` query; Temporal answers queries of
   a closed workflow by replaying its history on a worker);
2. an event that saga had handled already (a redelivered payment, the second of Stripe's two
   events about one payment) is a ``duplicate``: nothing starts;
3. otherwise start ``InvoiceAdjustment`` ``i2r-adj-<invoice>-<kind>-<key>`` with id reuse
   ``REJECT_DUPLICATE``: ``started``, or ``duplicate`` when it exists (runs or ran) already.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from domain.contracts import TaskQueue
from domain.invoice_adjustment import (
    InvoiceAdjustmentBase,
    InvoiceAdjustmentInput,
    already_handled,
)
from domain.invoice_contracts import (
    CreditNoteReceived,
    InvoicePolicy,
    PaymentReceived,
    VoidReceived,
    invoice_workflow_id,
)
from workflows.invoice_adjustment import (
    InvoiceAdjustmentWorkflow,
    start_attributes,
    static_summary,
)

BASE_QUERY = "adjustment_base"


@dataclass(frozen=True)
class AdjustmentOutcome:
    """``started`` (this delivery started the adjustment ``workflow_id``, run ``run_id``) or
    ``duplicate`` (it exists already, or the ended saga handled the event: ``reason``)."""

    status: Literal["started", "duplicate"]
    workflow_id: str
    kind: str
    run_id: str | None = None
    reason: str | None = None


def adjustment_input(
    invoice_id: str,
    base: InvoiceAdjustmentBase,
    payload: BaseModel,
    *,
    accounting_timezone: str,
    policy: InvoicePolicy,
    event_id: str | None,
) -> InvoiceAdjustmentInput:
    """The adjustment's input for one late event (a payment, credit note or void)."""
    if not isinstance(payload, PaymentReceived | CreditNoteReceived | VoidReceived):
        raise TypeError(f"no adjustment books a {type(payload).__name__}")
    return InvoiceAdjustmentInput(
        invoice_id=invoice_id,
        base=base,
        payment=payload if isinstance(payload, PaymentReceived) else None,
        credit_note=payload if isinstance(payload, CreditNoteReceived) else None,
        void=payload if isinstance(payload, VoidReceived) else None,
        accounting_timezone=accounting_timezone,
        policy=policy,
        event_id=event_id,
    )


async def start_adjustment(
    client: Client,
    invoice_id: str,
    payload: BaseModel,
    *,
    accounting_timezone: str,
    policy: InvoicePolicy,
    event_id: str | None = None,
    indexed: bool = True,
) -> AdjustmentOutcome:
    """Start the adjustment of ``payload`` (a payment, credit note or void) for the invoice
    whose saga has ended (see the module doc). Raises ``RPCError`` when Temporal is
    unreachable and ``WorkflowQueryFailedError`` when the ended saga cannot be read.
    ``indexed=False`` starts it without search attributes, on a namespace where revsync's are
    not registered (the time-skipping test server)."""
    saga = client.get_workflow_handle(invoice_workflow_id(invoice_id))
    base = await saga.query(BASE_QUERY, result_type=InvoiceAdjustmentBase)
    request = adjustment_input(
        invoice_id,
        base,
        payload,
        accounting_timezone=accounting_timezone,
        policy=policy,
        event_id=event_id,
    )
    kind = request.kind.value
    reason = already_handled(base, request.kind, request.key)
    if reason is not None:
        return AdjustmentOutcome("duplicate", saga.id, kind, reason=reason)
    try:
        handle = await client.start_workflow(
            InvoiceAdjustmentWorkflow.run,
            request,
            id=request.workflow_id,
            task_queue=TaskQueue.ORCHESTRATION,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=start_attributes(request, datetime.now(UTC)) if indexed else None,
            static_summary=static_summary(request),
        )
    except WorkflowAlreadyStartedError:
        return AdjustmentOutcome(
            "duplicate", request.workflow_id, kind, reason="the adjustment exists already"
        )
    return AdjustmentOutcome("started", request.workflow_id, kind, run_id=handle.result_run_id)
