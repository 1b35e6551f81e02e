"""Billing invoice events at the gateway: start or signal the invoice-to-revenue saga.

Each billing vendor's endpoint (:mod:`revsync.gateway.webhooks`) authenticates and parses its
delivery, then turns it into one :class:`InvoiceEvent` here (:func:`from_stripe`,
:func:`from_zuora`; the vendor specifics live in :mod:`adapters.webhooks.stripe_invoices` and
:mod:`adapters.webhooks.zuora_invoices`), and :func:`act` does the rest, the same for every
vendor. One saga per invoice, workflow id ``i2r-<invoice id>``:

- the event that says the invoice is final (Stripe ``invoice.finalized``, Zuora
  ``invoice.posted``) starts it with ``REJECT_DUPLICATE`` id reuse: a redelivered event, or a
  second event about one invoice, starts nothing (200 ``duplicate``); ``started``;
- a payment signals ``payment_received``, a void (a Zuora cancellation) ``voided``, a credit
  note (a Zuora credit memo) ``credit_note`` (200 ``delivered``; the saga drops repeats by
  payment and credit note id);
- a signal for an invoice with no saga answers **409** ``unknown invoice``: neither Stripe
  nor Zuora promises to deliver events in order, and both deliver a refused event again, so a
  payment that overtakes the invoice's start lands once the saga exists. It is not a
  signal-with-start: only the "final" event says the invoice is revsync's to post; a payment
  alone never posts a receivable;
- a signal for a saga that has ended (CLOSED or VOIDED) starts an adjustment saga that books
  it against what the saga left (:mod:`revsync.late_invoice_events`): 200 ``started`` with
  ``adjustment``, and 200 ``duplicate`` for a redelivery, or for an event the ended saga had
  handled itself. A saga an operator terminated (or that failed) answers 200 ``closed`` and
  logs a warning: nothing revsync ran stands behind it any more;
- Temporal unreachable: 503 with ``Retry-After``.

``started`` is a 202 for Stripe and a 200 for Zuora: Zuora counts any callout answer but 200
as a failure and sends it again (the saga exists by then: ``duplicate``), and shows it failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowQueryFailedError
from temporalio.common import MetricMeter, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from adapters.webhooks import stripe_invoices, zuora_invoices
from adapters.webhooks.stripe import StripeEvent
from domain.contracts import TaskQueue
from domain.invoice_contracts import InvoiceToRevenueInput, invoice_workflow_id
from revsync import metrics
from revsync.late_invoice_events import start_adjustment
from revsync.settings import Settings
from workflows.invoice_to_revenue import (
    InvoiceToRevenueWorkflow,
    start_attributes,
    static_summary,
)

log = structlog.get_logger("revsync.gateway.webhooks")

RETRY_AFTER_SECONDS = 5
UNAVAILABLE = (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED)
PAYMENT_RECEIVED, VOIDED, CREDIT_NOTE = "payment_received", "voided", "credit_note"


@dataclass(frozen=True)
class InvoiceEvent:
    """One billing event about one invoice, as the saga takes it, whichever vendor sent it.

    ``signal`` None starts the saga (the invoice is final); otherwise ``payload`` is signalled
    under that name. ``source``, ``event_id`` and ``type`` are for metrics and logs."""

    source: str
    event_id: str
    type: str
    invoice_id: str
    signal: str | None = None
    payload: BaseModel | None = None
    started_status: int = 202


def from_stripe(event: StripeEvent) -> InvoiceEvent:
    """A Stripe invoice or credit note event (see :mod:`adapters.webhooks.stripe_invoices`).
    Raises :class:`~adapters.webhooks.stripe_invoices.InvoiceEventError` for an event that
    lacks what revsync needs (the caller answers 422)."""
    common: dict[str, Any] = {
        "source": "stripe",
        "event_id": event.id,
        "type": event.type,
        "invoice_id": stripe_invoices.invoice_id_of(event),
    }
    if event.type == stripe_invoices.FINALIZED:
        return InvoiceEvent(**common)
    if event.type in stripe_invoices.PAYMENT_EVENTS:
        return InvoiceEvent(
            **common, signal=PAYMENT_RECEIVED, payload=stripe_invoices.payment_from_event(event)
        )
    if event.type == stripe_invoices.VOIDED:
        return InvoiceEvent(**common, signal=VOIDED, payload=stripe_invoices.void_from_event(event))
    return InvoiceEvent(
        **common, signal=CREDIT_NOTE, payload=stripe_invoices.credit_note_from_event(event)
    )


def from_zuora(callout: zuora_invoices.ZuoraCallout, settings: Settings) -> InvoiceEvent:
    """A Zuora callout (see :mod:`adapters.webhooks.zuora_invoices`). Raises
    :class:`~adapters.webhooks.zuora_invoices.CalloutError` for one that lacks what revsync
    needs (the caller answers 422)."""
    zone = settings.accounting_timezone
    common: dict[str, Any] = {
        "source": "zuora",
        "event_id": callout.event_id,
        "type": callout.event,
        "invoice_id": callout.invoice,
        "started_status": 200,
    }
    if callout.event == zuora_invoices.POSTED:
        return InvoiceEvent(**common)
    if callout.event in zuora_invoices.PAYMENT_EVENTS:
        payment = zuora_invoices.payment_from_callout(callout, zone)
        return InvoiceEvent(**common, signal=PAYMENT_RECEIVED, payload=payment)
    if callout.event == zuora_invoices.CANCELED:
        void = zuora_invoices.void_from_callout(callout, zone)
        return InvoiceEvent(**common, signal=VOIDED, payload=void)
    note = zuora_invoices.credit_note_from_callout(callout)
    return InvoiceEvent(**common, signal=CREDIT_NOTE, payload=note)


async def invoice_event(
    client: Client, event: StripeEvent, settings: Settings, meter: MetricMeter
) -> JSONResponse:
    """Act on one authenticated Stripe invoice or credit note event (see the module doc)."""
    return await act(client, from_stripe(event), settings, meter)


async def act(
    client: Client, event: InvoiceEvent, settings: Settings, meter: MetricMeter
) -> JSONResponse:
    """Start the invoice's saga, or signal it (see the module doc)."""
    if event.signal is None:
        return await _start(client, event, settings, meter)
    assert event.payload is not None, "a signal carries its payload"
    return await _signal(client, event, event.signal, event.payload, settings, meter)


def _delivered(meter: MetricMeter, event: InvoiceEvent, outcome: str) -> None:
    metrics.count(meter, metrics.WEBHOOK_DELIVERIES, source=event.source, outcome=outcome)


def _unavailable(meter: MetricMeter, event: InvoiceEvent) -> JSONResponse:
    log.warning(
        "temporal unavailable", source=event.source, event_id=event.event_id, type=event.type
    )
    _delivered(meter, event, "unavailable")
    return JSONResponse(
        {"error": "temporarily unavailable, retry later"},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def _start(
    client: Client, event: InvoiceEvent, settings: Settings, meter: MetricMeter
) -> JSONResponse:
    invoice_id = event.invoice_id
    workflow_id = invoice_workflow_id(invoice_id)
    body: dict[str, Any] = {"workflow_id": workflow_id, "invoice_id": invoice_id}
    try:
        handle = await client.start_workflow(
            InvoiceToRevenueWorkflow.run,
            InvoiceToRevenueInput(
                invoice_id=invoice_id,
                accounting_timezone=settings.accounting_timezone,
                policy=settings.invoice_policy,
                event_id=event.event_id,
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
        log.info(
            "duplicate delivery",
            source=event.source,
            event_id=event.event_id,
            invoice_id=invoice_id,
        )
        _delivered(meter, event, "duplicate")
        return JSONResponse({"status": "duplicate", **body})
    log.info("saga started", source=event.source, invoice_id=invoice_id, workflow_id=workflow_id)
    _delivered(meter, event, "started")
    return JSONResponse(
        {"status": "started", "run_id": handle.result_run_id, **body},
        status_code=event.started_status,
    )


async def _signal(
    client: Client,
    event: InvoiceEvent,
    signal: str,
    payload: BaseModel,
    settings: Settings,
    meter: MetricMeter,
) -> JSONResponse:
    invoice_id = event.invoice_id
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
        log.info("saga signalled", source=event.source, invoice_id=invoice_id, signal=signal)
        _delivered(meter, event, "signalled")
        return JSONResponse({"status": "delivered", "signal": signal, **body})
    # Not running: ended, or never started (yet).
    try:
        described = await handle.describe()
    except RPCError as error:
        if error.status in UNAVAILABLE:
            return _unavailable(meter, event)
        if error.status is not RPCStatusCode.NOT_FOUND:
            raise
        log.warning(
            "invoice event for an unknown invoice: refused so that the sender delivers it again",
            source=event.source,
            event_id=event.event_id,
            type=event.type,
            invoice_id=invoice_id,
        )
        _delivered(meter, event, "unknown")
        return JSONResponse({"status": "unknown invoice", **body}, status_code=409)
    if described.status is WorkflowExecutionStatus.COMPLETED:
        return await _adjust(client, event, payload, settings, meter)
    log.warning(
        "invoice event for a saga that did not complete: nothing applies it",
        source=event.source,
        event_id=event.event_id,
        type=event.type,
        invoice_id=invoice_id,
        saga_status=described.status.name if described.status else None,
    )
    _delivered(meter, event, "closed")
    return JSONResponse({"status": "closed", **body})


async def _adjust(
    client: Client,
    event: InvoiceEvent,
    payload: BaseModel,
    settings: Settings,
    meter: MetricMeter,
) -> JSONResponse:
    """The saga ended CLOSED or VOIDED: start the adjustment that books the late event."""
    invoice_id = event.invoice_id
    try:
        outcome = await start_adjustment(
            client,
            invoice_id,
            payload,
            accounting_timezone=settings.accounting_timezone,
            policy=settings.invoice_policy,
            event_id=event.event_id,
        )
    except RPCError as error:
        if error.status in UNAVAILABLE:
            return _unavailable(meter, event)
        raise
    except WorkflowQueryFailedError as error:
        # The ended saga could not be read (its history did not replay): the sender delivers
        # again, and the error log says which saga to look at.
        log.error(
            "cannot read the ended saga for a late invoice event",
            source=event.source,
            event_id=event.event_id,
            invoice_id=invoice_id,
            error=str(error),
        )
        return _unavailable(meter, event)
    log.info(
        "late invoice event: adjustment " + outcome.status,
        source=event.source,
        event_id=event.event_id,
        type=event.type,
        invoice_id=invoice_id,
        workflow_id=outcome.workflow_id,
        reason=outcome.reason,
    )
    _delivered(meter, event, "adjusting" if outcome.status == "started" else "duplicate")
    answer: dict[str, Any] = {
        "status": outcome.status,
        "workflow_id": outcome.workflow_id,
        "invoice_id": invoice_id,
        "adjustment": outcome.kind,
    }
    if outcome.run_id is not None:
        answer["run_id"] = outcome.run_id
    if outcome.reason is not None:
        answer["reason"] = outcome.reason
    return JSONResponse(answer)
