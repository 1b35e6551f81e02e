"""Stripe invoice events at the gateway: start or signal the invoice-to-revenue saga.

Called by the ``/stripe`` webhook once the delivery is authenticated and parsed
(:mod:`revsync.gateway.webhooks`). One saga per invoice, workflow id ``i2r-<invoice id>``:

- ``invoice.finalized`` starts it with ``REJECT_DUPLICATE`` id reuse: a redelivered event, or
  a second event about one invoice, starts nothing (200 ``duplicate``); 202 ``started``;
- ``invoice.paid`` / ``invoice.payment_succeeded`` signal ``payment_received``,
  ``invoice.voided`` signals ``voided``, ``credit_note.created`` signals ``credit_note``
  (200 ``delivered``; the saga drops repeats by payment and credit note id);
- a signal for an invoice with no saga answers **409** ``unknown invoice``: Stripe does not
  promise to deliver events in order, and redelivers a refused event for days, so a payment
  that overtakes its ``invoice.finalized`` lands once the saga exists. It is not a
  signal-with-start: only ``invoice.finalized`` says the invoice is final and revsync's to
  post; a payment alone never posts a receivable;
- a signal for a saga that has ended (CLOSED or VOIDED) answers 200 ``closed`` and logs a
  warning: there is nothing left to apply it to, and a redelivery would not change that;
- Temporal unreachable: 503 with ``Retry-After``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from temporalio.client import Client
from temporalio.common import MetricMeter, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from adapters.webhooks import stripe_invoices
from adapters.webhooks.stripe import StripeEvent
from domain.contracts import TaskQueue
from domain.invoice_contracts import InvoiceToRevenueInput, invoice_workflow_id
from revsync import metrics
from revsync.settings import Settings
from workflows.invoice_to_revenue import (
    InvoiceToRevenueWorkflow,
    start_attributes,
    static_summary,
)

log = structlog.get_logger("revsync.gateway.webhooks")

SOURCE = "stripe"
RETRY_AFTER_SECONDS = 5
UNAVAILABLE = (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED)


def _delivered(meter: MetricMeter, outcome: str) -> None:
    metrics.count(meter, metrics.WEBHOOK_DELIVERIES, source=SOURCE, outcome=outcome)


def _unavailable(meter: MetricMeter, event: StripeEvent) -> JSONResponse:
    log.warning("temporal unavailable", source=SOURCE, event_id=event.id, type=event.type)
    _delivered(meter, "unavailable")
    return JSONResponse(
        {"error": "temporarily unavailable, retry later"},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def invoice_event(
    client: Client, event: StripeEvent, settings: Settings, meter: MetricMeter
) -> JSONResponse:
    """Act on one authenticated Stripe invoice or credit note event (see the module doc).
    Raises :class:`~adapters.webhooks.stripe_invoices.InvoiceEventError` for an event that
    lacks what revsync needs (the caller answers 422)."""
    invoice_id = stripe_invoices.invoice_id_of(event)
    if event.type == stripe_invoices.FINALIZED:
        return await _start(client, event, invoice_id, settings, meter)
    signal: str
    payload: BaseModel
    if event.type in stripe_invoices.PAYMENT_EVENTS:
        signal, payload = "payment_received", stripe_invoices.payment_from_event(event)
    elif event.type == stripe_invoices.VOIDED:
        signal, payload = "voided", stripe_invoices.void_from_event(event)
    else:
        signal, payload = "credit_note", stripe_invoices.credit_note_from_event(event)
    return await _signal(client, event, invoice_id, signal, payload, meter)


async def _start(
    client: Client, event: StripeEvent, invoice_id: str, settings: Settings, meter: MetricMeter
) -> JSONResponse:
    workflow_id = invoice_workflow_id(invoice_id)
    body: dict[str, Any] = {"workflow_id": workflow_id, "invoice_id": invoice_id}
    try:
        handle = await client.start_workflow(
            InvoiceToRevenueWorkflow.run,
            InvoiceToRevenueInput(
                invoice_id=invoice_id,
                accounting_timezone=settings.accounting_timezone,
                policy=settings.invoice_policy,
                event_id=event.id,
            ),
            id=workflow_id,
            task_queue=TaskQueue.ORCHESTRATION,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=start_attributes(invoice_id, datetime.now(UTC)),
            static_summary=static_summary(invoice_id),
        )
    except RPCError as error:
        if error.status not in UNAVAILABLE:
            raise
        return _unavailable(meter, event)
    except WorkflowAlreadyStartedError:
        log.info("duplicate delivery", source=SOURCE, event_id=event.id, invoice_id=invoice_id)
        _delivered(meter, "duplicate")
        return JSONResponse({"status": "duplicate", **body})
    log.info("saga started", source=SOURCE, invoice_id=invoice_id, workflow_id=workflow_id)
    _delivered(meter, "started")
    return JSONResponse(
        {"status": "started", "run_id": handle.result_run_id, **body}, status_code=202
    )


async def _signal(
    client: Client,
    event: StripeEvent,
    invoice_id: str,
    signal: str,
    payload: BaseModel,
    meter: MetricMeter,
) -> JSONResponse:
    workflow_id = invoice_workflow_id(invoice_id)
    body: dict[str, Any] = {"workflow_id": workflow_id, "invoice_id": invoice_id}
    handle = client.get_workflow_handle(workflow_id)
    try:
        await handle.signal(signal, payload)
    except RPCError as error:
        if error.status in UNAVAILABLE:
            return _unavailable(meter, event)
        if error.status is not RPCStatusCode.NOT_FOUND:
            raise
    else:
        log.info("saga signalled", source=SOURCE, invoice_id=invoice_id, signal=signal)
        _delivered(meter, "signalled")
        return JSONResponse({"status": "delivered", "signal": signal, **body})
    # Not running: ended, or never started (yet).
    try:
        await handle.describe()
    except RPCError as error:
        if error.status in UNAVAILABLE:
            return _unavailable(meter, event)
        if error.status is not RPCStatusCode.NOT_FOUND:
            raise
        log.warning(
            "invoice event for an unknown invoice: refused so that Stripe redelivers it",
            source=SOURCE,
            event_id=event.id,
            type=event.type,
            invoice_id=invoice_id,
        )
        _delivered(meter, "unknown")
        return JSONResponse({"status": "unknown invoice", **body}, status_code=409)
    log.warning(
        "invoice event for an ended saga",
        source=SOURCE,
        event_id=event.id,
        type=event.type,
        invoice_id=invoice_id,
    )
    _delivered(meter, "closed")
    return JSONResponse({"status": "closed", **body})
