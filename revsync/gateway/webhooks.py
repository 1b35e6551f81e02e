"""Inbound webhooks: every delivery is authenticated before anything else reads its body.

One pipeline for every source, in this order:

1. size: a body over ``REVSYNC_WEBHOOK_MAX_BODY_BYTES`` → 413 (declared or actual length);
2. authenticity: the source's signature scheme (:mod:`adapters.webhooks`) → 401 with a short
   reason, and a structured log line that never holds the body, the header or the secret;
3. syntax: not JSON / not XML → 400;
4. shape: a valid signature over an invalid payload → 422 with field errors;
5. action, idempotent: a saga's workflow id is derived from the business key (``q2c-<quote
   id>``), so a replayed or duplicated delivery starts nothing new (200 ``duplicate``);
   Temporal unreachable → 503 with ``Retry-After``, so the sender delivers again later.

Sources, under ``/v1/webhooks`` (and, deprecated, the unversioned ``/webhooks``: see
:mod:`revsync.gateway.versioning`): ``/cpq/quote-accepted`` (revsync's HMAC scheme),
``/stripe`` (``quote.accepted``, its lines read from Stripe:
:mod:`revsync.gateway.stripe_quotes`), ``/stripe/customers`` and ``/stripe/invoices``
(``Stripe-Signature``),
``/zuora/invoices`` (Zuora callouts: a shared secret in ``X-Revsync-Callout-Secret``;
invoice-to-revenue, :mod:`revsync.gateway.invoice_webhooks`), ``/hubspot``
(``X-HubSpot-Signature-v3``),
``/salesforce/outbound-message`` (organisation allow-list; mutual TLS at the proxy; accepted
Salesforce CPQ quotes start quote-to-cash: :mod:`revsync.gateway.salesforce_quotes`), and
``/erp/customer-changed`` (revsync's HMAC scheme, ``REVSYNC_ERP_WEBHOOK_SECRET``). Customer
changes (Stripe ``customer.updated``, Salesforce ``Account`` notifications, HubSpot company
events, the ERP webhook) go to their golden customer (:mod:`revsync.gateway.customer_changes`).
A source whose secret is not configured, or any other path under the prefix, answers 401
``unknown source``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Collection
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from temporalio.client import Client
from temporalio.common import MetricMeter, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from adapters.webhooks import (
    cpq,
    customer_changes,
    hubspot,
    salesforce,
    stripe,
    stripe_invoices,
    zuora_invoices,
)
from adapters.webhooks.signatures import MalformedPayload, SignatureError
from domain.contracts import TaskQueue
from domain.quote import Quote
from domain.saga import QuoteToCashInput, SagaPolicy
from revsync import metrics
from revsync.gateway import hubspot_trigger, stripe_quotes
from revsync.gateway.customer_changes import apply_customer_changes, customer_change_response
from revsync.gateway.invoice_webhooks import act, from_zuora, invoice_event
from revsync.gateway.refusals import Refused, read_body
from revsync.gateway.salesforce_quotes import book_accepted_quotes
from revsync.gateway.versioning import versioned_webhooks
from revsync.settings import Settings, secret_list
from workflows import visibility
from workflows.quote_to_cash import QuoteToCashWorkflow

log = structlog.get_logger("revsync.gateway.webhooks")

T = TypeVar("T")

UNKNOWN_SOURCE = "unknown source"
RETRY_AFTER_SECONDS = 5


def field_errors(error: ValidationError) -> list[dict[str, str]]:
    """Pydantic errors as ``{"field": "lines.0.sku", "message": ...}``, without echoing input."""
    return [
        {"field": ".".join(str(p) for p in item["loc"]) or "(body)", "message": item["msg"]}
        for item in error.errors(include_url=False, include_input=False)
    ]


def authentic(source: str, check: Callable[[], None], request: Request, size: int) -> None:
    """Run the signature ``check``; on failure log why (never the body) and refuse with 401."""
    try:
        check()
    except SignatureError as error:
        client = request.client.host if request.client else None
        log.warning("webhook refused", source=source, reason=error.reason, peer=client, size=size)
        raise Refused(401, error.reason) from None


def parsed(parse: Callable[[bytes], T], body: bytes, invalid: str) -> T:
    """``parse(body)``: 400 when it is not the format at all, 422 with field errors when its
    content is invalid."""
    try:
        return parse(body)
    except MalformedPayload as error:
        raise Refused(400, error.reason) from None
    except ValidationError as error:
        raise Refused(422, invalid, fields=field_errors(error)) from None


def json_body(body: bytes) -> Any:
    try:
        # Non-integer JSON numbers become Decimal, never float: money stays exact.
        return json.loads(body, parse_float=Decimal)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise Refused(400, "body is not valid JSON") from None


def public_url(request: Request, settings: Settings) -> str:
    """The URL the sender called: behind a proxy, REVSYNC_PUBLIC_BASE_URL plus the path."""
    if settings.public_base_url is None:
        return str(request.url)
    query = f"?{request.url.query}" if request.url.query else ""
    return settings.public_base_url.rstrip("/") + request.url.path + query


def delivered(meter: MetricMeter, source: str, outcome: str) -> None:
    """Count one delivery (``revsync_webhook_deliveries``): started, duplicate, unavailable,
    refused, or acknowledged (verified, but not a quote to book)."""
    metrics.count(meter, metrics.WEBHOOK_DELIVERIES, source=source, outcome=outcome)


Handler = Callable[..., Awaitable[Response]]


def refusals_counted(meter: MetricMeter, source: str) -> Callable[[Handler], Handler]:
    """Count the deliveries ``handler`` refuses (any :class:`Refused`) for ``source``."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def counted(*args: Any, **kwargs: Any) -> Response:
            try:
                return await handler(*args, **kwargs)
            except Refused:
                delivered(meter, source, "refused")
                raise

        return counted

    return wrap


async def start_quote_to_cash(
    client: Client,
    quote: Quote,
    policy: SagaPolicy,
    *,
    source: str,
    meter: MetricMeter = MetricMeter.noop,
) -> JSONResponse:
    """Start the saga for ``quote`` unless one exists for its quote id (running or ended)."""
    workflow_id = visibility.workflow_id_for_quote(quote.quote_id)
    try:
        handle = await client.start_workflow(
            QuoteToCashWorkflow.run,
            QuoteToCashInput(quote=quote, policy=policy),
            id=workflow_id,
            task_queue=TaskQueue.ORCHESTRATION,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=visibility.start_attributes(quote, datetime.now(UTC)),
            static_summary=visibility.static_summary(quote),
            static_details=visibility.static_details(quote),
        )
    except RPCError as error:
        if error.status not in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            raise
        # Temporal is away (a restart, a network cut): nothing was started; the sender's
        # retry will be the first delivery, or a duplicate if the start did land.
        log.warning("temporal unavailable", source=source, quote_id=quote.quote_id)
        delivered(meter, source, "unavailable")
        return JSONResponse(
            {"error": "temporarily unavailable, retry later"},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    except WorkflowAlreadyStartedError:
        log.info("duplicate delivery", source=source, quote_id=quote.quote_id)
        delivered(meter, source, "duplicate")
        return JSONResponse(
            {"status": "duplicate", "workflow_id": workflow_id, "quote_id": quote.quote_id},
            status_code=200,
        )
    log.info("saga started", source=source, quote_id=quote.quote_id, workflow_id=workflow_id)
    delivered(meter, source, "started")
    return JSONResponse(
        {
            "status": "started",
            "workflow_id": workflow_id,
            "run_id": handle.result_run_id,
            "quote_id": quote.quote_id,
        },
        status_code=202,
    )


def webhooks_router(settings: Settings, meter: MetricMeter = MetricMeter.noop) -> APIRouter:
    router = APIRouter()  # paths without a prefix: versioned_webhooks mounts them twice
    limit = settings.webhook_max_body_bytes
    tolerance = settings.webhook_tolerance_seconds
    cpq_secrets = secret_list(settings.cpq_webhook_secret)
    stripe_secrets = secret_list(settings.stripe_webhook_secret)
    hubspot_secrets = secret_list(settings.hubspot_client_secret)
    salesforce_orgs = list(settings.salesforce_org_ids)
    erp_secrets = secret_list(settings.erp_webhook_secret)
    zuora_secrets = secret_list(settings.zuora_callout_secret)
    master_policy = settings.customer_master_policy
    if settings.crm == "hubspot" and settings.hubspot_app_id is None:
        log.warning(
            "REVSYNC_HUBSPOT_APP_ID is not set: revsync's own HubSpot writes will come back "
            "as changes from the CRM"
        )

    async def verified_body(
        request: Request, source: str, secrets: list[str], verify: Callable[[bytes], None]
    ) -> bytes:
        """The body of a delivery from ``source``, read within the size limit and
        authenticated by ``verify``; 401 at once when no secret is configured for ``source``
        (nothing it sends could be authentic)."""
        body = await read_body(request, limit)
        if not secrets:
            raise Refused(401, UNKNOWN_SOURCE)
        authentic(source, lambda: verify(body), request, len(body))
        return body

    def routed(mapping: Callable[[], T]) -> T:
        """A customer change mapped and routed, or 422 with the reason."""
        try:
            return mapping()
        except customer_changes.RoutingError as error:
            if error.fields:
                raise Refused(422, error.reason, fields=error.fields) from None
            raise Refused(422, error.reason) from None

    @router.post("/cpq/quote-accepted")
    @refusals_counted(meter, "cpq")
    async def cpq_quote_accepted(request: Request) -> Response:
        body = await read_body(request, limit)
        header = request.headers.get(cpq.SIGNATURE_HEADER)
        authentic(
            "cpq",
            lambda: cpq.verify(cpq_secrets, header, body, tolerance_seconds=tolerance),
            request,
            len(body),
        )
        payload = json_body(body)
        try:
            quote = Quote.model_validate(payload)
        except ValidationError as error:
            raise Refused(422, "invalid quote", fields=field_errors(error)) from None
        return await start_quote_to_cash(
            request.app.state.client, quote, settings.saga_policy, source="cpq", meter=meter
        )

    async def verified_stripe_event(
        request: Request, handled: Collection[str], what: str
    ) -> stripe.StripeEvent | JSONResponse:
        """The Stripe event of a delivery verified against the endpoint's signing secrets, or
        the 200 ``ignored`` answer for a type this endpoint does not handle (Stripe sends an
        endpoint only the types it subscribes to; anything else is acknowledged, not retried)."""
        header = request.headers.get(stripe.SIGNATURE_HEADER)
        body = await verified_body(
            request,
            "stripe",
            stripe_secrets,
            lambda body: stripe.verify(stripe_secrets, header, body, tolerance_seconds=tolerance),
        )
        event = parsed(stripe.parse_event, body, "invalid event")
        if event.type in handled:
            return event
        log.info(f"stripe {what} ignored", event_id=event.id, type=event.type)
        delivered(meter, "stripe", "acknowledged")
        return JSONResponse({"status": "ignored", "event_id": event.id, "type": event.type})

    @router.post("/stripe")
    @refusals_counted(meter, "stripe")
    async def stripe_event(request: Request) -> Response:
        event = await verified_stripe_event(request, ("quote.accepted",), "event")
        if isinstance(event, JSONResponse):
            return event
        # The event's quote has no lines (includable): they are read from Stripe
        # (revsync.gateway.stripe_quotes); a read that fails answers 503 so Stripe redelivers.
        quote = await stripe_quotes.accepted_quote(
            getattr(request.app.state, "stripe_quotes", None), event.data.object
        )
        if isinstance(quote, JSONResponse):
            delivered(meter, "stripe", "unavailable")
            return quote
        return await start_quote_to_cash(
            request.app.state.client, quote, settings.saga_policy, source="stripe", meter=meter
        )

    @router.post("/stripe/customers")
    @refusals_counted(meter, "stripe")
    async def stripe_customer_event(request: Request) -> Response:
        event = await verified_stripe_event(
            request, customer_changes.STRIPE_TYPES, "customer event"
        )
        if isinstance(event, JSONResponse):
            return event
        return await customer_change_response(
            request.app.state.client,
            routed(lambda: customer_changes.from_stripe(event)),
            master_policy,
            source="stripe",
            event_id=event.id,
            meter=meter,
        )

    @router.post("/stripe/invoices")
    @refusals_counted(meter, "stripe")
    async def stripe_invoice_event(request: Request) -> Response:
        event = await verified_stripe_event(request, stripe_invoices.HANDLED, "invoice event")
        if isinstance(event, JSONResponse):
            return event
        try:
            return await invoice_event(request.app.state.client, event, settings, meter)
        except stripe_invoices.InvoiceEventError as error:
            raise Refused(422, "invalid invoice event", fields=error.fields) from None

    @router.post("/zuora/invoices")
    @refusals_counted(meter, "zuora")
    async def zuora_invoice_callout(request: Request) -> Response:
        header = request.headers.get(zuora_invoices.SECRET_HEADER)
        body = await verified_body(
            request, "zuora", zuora_secrets, lambda _: zuora_invoices.verify(zuora_secrets, header)
        )
        notification = request.headers.get(zuora_invoices.NOTIFICATION_HEADER)
        try:
            callout = zuora_invoices.parse_callout(body, notification)
            event = from_zuora(callout, settings)
        except MalformedPayload as error:
            raise Refused(400, error.reason) from None
        except zuora_invoices.CalloutError as error:
            raise Refused(422, "invalid callout", fields=error.fields) from None
        log.info("zuora callout received", event_id=event.event_id, type=event.type)
        return await act(request.app.state.client, event, settings, meter)

    @router.post("/hubspot")
    @refusals_counted(meter, "hubspot")
    async def hubspot_events(request: Request) -> Response:
        url = public_url(request, settings)
        signature = request.headers.get(hubspot.SIGNATURE_HEADER)
        timestamp = request.headers.get(hubspot.TIMESTAMP_HEADER)
        body = await verified_body(
            request,
            "hubspot",
            hubspot_secrets,
            lambda body: hubspot.verify(
                hubspot_secrets,
                method=request.method,
                url=url,
                body=body,
                signature=signature,
                timestamp=timestamp,
                max_age_seconds=tolerance,
            ),
        )
        events = parsed(hubspot.parse_events, body, "invalid events")
        for event in events:
            log.info(
                "hubspot event received",
                event_id=event.eventId,
                subscription=event.subscriptionType,
                object_id=event.objectId,
            )
        # revsync's own writes come back as changes: left out. Deals moved to closed-won
        # start quote-to-cash, company changes go to their golden customers
        # (revsync.gateway.hubspot_trigger); a batch may hold both.
        document = json_body(body)
        changes, raw = hubspot_trigger.without_own_writes(
            events,
            document if isinstance(document, list) else [],
            app_id=settings.hubspot_app_id,
            meter=meter,
        )
        reader = getattr(request.app.state, "hubspot", None)
        answer: Response | None = None
        deals_refused: Refused | None = None
        try:
            answer = await hubspot_trigger.closed_won(
                changes,
                settings=settings,
                reader=reader,
                client=request.app.state.client,
                start=start_quote_to_cash,
                meter=meter,
                received=len(events),
            )
        except Refused as refused:
            deals_refused = refused
        companies = await hubspot_trigger.company_changes(
            changes,
            raw,
            reader=reader,
            client=request.app.state.client,
            policy=master_policy,
            meter=meter,
        )
        if companies is not None:
            return hubspot_trigger.batch_answer(answer, deals_refused, companies, len(events))
        if deals_refused is not None:
            raise deals_refused
        if answer is not None:
            return answer
        delivered(meter, "hubspot", "acknowledged")
        return JSONResponse({"status": "received", "events": len(events)})

    @router.post("/salesforce/outbound-message")
    @refusals_counted(meter, "salesforce")
    async def salesforce_outbound(request: Request) -> Response:
        body = await read_body(request, limit)
        if not salesforce_orgs:
            raise Refused(401, UNKNOWN_SOURCE)
        # The organisation id is inside the envelope: a hardened parser reads the envelope
        # (no DTDs, no entities) and nothing of the notifications is used before the check.
        try:
            message = salesforce.parse_outbound_message(body)
        except MalformedPayload as error:
            raise Refused(400, error.reason) from None
        authentic(
            "salesforce",
            lambda: salesforce.verify_organization(message.organization_id, salesforce_orgs),
            request,
            len(body),
        )
        for note in message.notifications:
            log.info(
                "salesforce notification received",
                notification_id=note.id,
                sobject=note.sobject_type,
            )
        # Accepted CPQ quotes start quote-to-cash (revsync.gateway.salesforce_quotes).
        quotes = await book_accepted_quotes(
            getattr(request.app.state, "salesforce_quotes", None),
            message.notifications,
            lambda quote: start_quote_to_cash(
                request.app.state.client,
                quote,
                settings.saga_policy,
                source="salesforce",
                meter=meter,
            ),
            meter=meter,
        )
        if isinstance(quotes, Response):
            return quotes
        accounts: list[customer_changes.RoutedChange] = []
        for note in message.notifications:
            if note.sobject_type == customer_changes.SALESFORCE_SOBJECT:
                mapped = routed(functools.partial(customer_changes.from_salesforce, note))
                accounts.extend([] if mapped is None else [mapped])
        if accounts:
            applied = await apply_customer_changes(
                request.app.state.client, accounts, master_policy, source="salesforce", meter=meter
            )
            if isinstance(applied, Response):
                return applied
            return Response(salesforce.ack(), media_type=salesforce.ACK_CONTENT_TYPE)
        if not quotes:  # each quote notification was counted as it was handled
            delivered(meter, "salesforce", "acknowledged")
        return Response(salesforce.ack(), media_type=salesforce.ACK_CONTENT_TYPE)

    @router.post("/erp/customer-changed")
    @refusals_counted(meter, "erp")
    async def erp_customer_changed(request: Request) -> Response:
        header = request.headers.get(cpq.SIGNATURE_HEADER)
        body = await verified_body(
            request,
            "erp",
            erp_secrets,
            lambda body: cpq.verify(erp_secrets, header, body, tolerance_seconds=tolerance),
        )
        payload = json_body(body)
        try:
            change = customer_changes.ErpCustomerChanged.model_validate(payload)
        except ValidationError as error:
            raise Refused(422, "invalid customer change", fields=field_errors(error)) from None
        return await customer_change_response(
            request.app.state.client,
            routed(lambda: customer_changes.from_erp(change)),
            master_policy,
            source="erp",
            event_id=change.eventId,
            meter=meter,
        )

    @router.post("/{source:path}")
    @refusals_counted(meter, "unknown")
    async def unknown(source: str, request: Request) -> Response:
        log.warning("webhook refused", source=source[:64], reason=UNKNOWN_SOURCE)
        raise Refused(401, UNKNOWN_SOURCE)

    return versioned_webhooks(router)
