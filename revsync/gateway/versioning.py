"""Versioned paths for the webhooks: ``/v1/webhooks/...`` is canonical, the unversioned
``/webhooks/...`` paths keep working, deprecated.

The old paths are served by the same handlers, not redirected: a sender does not follow a
redirect for a signed POST, and HubSpot signs the exact URL it called, so a redirected
delivery could not be verified. Each answer on an old path (refusals included) carries
``Deprecation`` (RFC 9745: since when) and ``Link: <the /v1 path>; rel="successor-version"``,
the OpenAPI document marks those operations deprecated, and each use is logged so operators
can see which senders still have to move (docs/api.md).

This module also holds what the OpenAPI document says about each webhook (summary, body,
answers); the handlers themselves live in :mod:`revsync.gateway.webhooks`.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from adapters.webhooks.zuora_invoices import CALLOUT_SCHEMA, SECRET_HEADER
from revsync.gateway.refusals import Problem, Refused, refused_handler

log = structlog.get_logger("revsync.gateway")

API_VERSION = 1
API_PREFIX = f"/v{API_VERSION}"
WEBHOOKS = "/webhooks"
# When the unversioned paths were deprecated (RFC 9745 announces it as a Unix time).
UNVERSIONED_DEPRECATED_AT = datetime(2026, 11, 23, tzinfo=UTC)

Endpoint = Callable[..., Awaitable[Response]]


# -- what the webhooks answer (documented in OpenAPI; tests hold the handlers to it) --------


class SagaAccepted(BaseModel):
    """A delivery that names a quote: its saga started now, or had started before."""

    status: Literal["started", "duplicate"]
    workflow_id: str = Field(description="q2c-<quote id>")
    run_id: str | None = Field(default=None, description="Only when this delivery started it")
    quote_id: str


class EventIgnored(BaseModel):
    """A verified Stripe event of a type revsync does not act on."""

    status: Literal["ignored"]
    event_id: str
    type: str


class InvoiceSagaAccepted(BaseModel):
    """An ``invoice.finalized``: its invoice-to-revenue saga started now, or had before. Or a
    payment, void or credit note for an invoice whose saga has ended (``adjustment`` set):
    the adjustment saga that books it started now, or had before (or the ended saga had
    handled the event itself: ``reason``)."""

    status: Literal["started", "duplicate"]
    workflow_id: str = Field(
        description="i2r-<invoice id>, or the adjustment i2r-adj-<invoice id>-<kind>-<key>"
    )
    run_id: str | None = Field(default=None, description="Only when this delivery started it")
    invoice_id: str
    adjustment: str | None = Field(
        default=None,
        description="A late event for an ended saga: payment, credit_note or void",
    )
    reason: str | None = Field(default=None, description="Why a late event is a duplicate")


class InvoiceEventDelivered(BaseModel):
    """A payment, void or credit note for an invoice: signalled to its saga (``delivered``),
    or acknowledged because the saga was ended by an operator (terminated, cancelled) or
    failed (``closed``); one for a saga that ended CLOSED or VOIDED starts an adjustment
    (``InvoiceSagaAccepted``)."""

    status: Literal["delivered", "closed"]
    signal: str | None = Field(
        default=None, description="payment_received, voided or credit_note (when delivered)"
    )
    workflow_id: str
    invoice_id: str


class UnknownInvoice(BaseModel):
    """An invoice event for an invoice with no saga (yet): refused so that the billing system
    (Stripe, Zuora) delivers it again once ``invoice.finalized`` (Zuora: ``invoice.posted``)
    has started the saga."""

    status: Literal["unknown invoice"]
    workflow_id: str
    invoice_id: str


class DealOutcome(BaseModel):
    """What became of one closed-won HubSpot deal of a batch (revsync.gateway.hubspot_trigger)."""

    deal_id: str
    status: str = Field(description="started, duplicate, unavailable or unmappable")
    workflow_id: str | None = Field(default=None, description="q2c-<deal id>, when it has one")
    fields: list[dict[str, str]] | None = Field(
        default=None, description="Why an unmappable deal cannot be booked (field, message)"
    )


class CompanyChangeOutcome(BaseModel):
    """What became of one HubSpot company event of a batch: its customer change, delivered
    to ``customer-<company id>`` (revsync.gateway.hubspot_trigger.company_changes)."""

    golden_id: str = Field(description="The HubSpot company id")
    event_id: str = Field(description="The id revsync deduplicates the event by")
    status: str = Field(
        description="applied, duplicate, gone (the company was deleted), unavailable or unmappable"
    )
    workflow_id: str | None = Field(default=None, description="customer-<golden id>")
    verdicts: dict[str, str] | None = Field(
        default=None,
        description="field -> applied, unchanged, stale, not_owner_ignored or not_owner_review",
    )
    reviews: int | None = Field(default=None, description="Proposals raised for a steward")
    propagating_to: list[str] | None = None
    state: str | None = Field(default=None, description="ACTIVE, NEEDS_REVIEW or MERGED")
    fields: list[dict[str, str]] | None = Field(
        default=None, description="Why an unmappable change was not taken (field, message)"
    )


class EventsReceived(BaseModel):
    """A verified HubSpot batch, acknowledged; ``deals`` lists its closed-won deals when it
    had some (each a duplicate, or unmappable after its last attempt), ``customers`` its
    company changes when it had some."""

    status: Literal["received"]
    events: int = Field(ge=1)
    deals: list[DealOutcome] | None = None
    customers: list[CompanyChangeOutcome] | None = None


class DealsAccepted(BaseModel):
    """A verified HubSpot batch in which a closed-won deal started quote-to-cash."""

    status: Literal["started"]
    events: int = Field(ge=1)
    deals: list[DealOutcome]
    customers: list[CompanyChangeOutcome] | None = None


REFUSALS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "The body is not JSON"},
    401: {
        "model": Problem,
        "description": "Not authenticated: bad or missing signature, stale timestamp, "
        "organisation not allowed, or a source that is not configured",
    },
    413: {"model": Problem, "description": "Body over REVSYNC_WEBHOOK_MAX_BODY_BYTES"},
    422: {
        "model": Problem,
        "description": "Authentic but invalid payload; the answer lists the fields",
    },
}
UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {
        "model": Problem,
        "description": "Temporal is unreachable: nothing started; retry after Retry-After",
    }
}


def _json_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": schema}},
        }
    }


def _component(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


@dataclass(frozen=True)
class WebhookDocs:
    """What the OpenAPI document says about one webhook route."""

    operation: str
    summary: str
    description: str
    openapi_extra: dict[str, Any] = field(default_factory=dict)
    responses: dict[int | str, dict[str, Any]] = field(default_factory=dict)
    status_code: int = 200


# Keyed by the handler's path in revsync.gateway.webhooks; every route there needs an entry.
WEBHOOK_DOCS: dict[str, WebhookDocs] = {
    "/cpq/quote-accepted": WebhookDocs(
        operation="cpq_quote_accepted",
        summary="A quote accepted in CPQ: start its quote-to-cash saga",
        description="Signed with `X-Revsync-Signature: t=<unix s>,v1=<hex HMAC-SHA256 of "
        '"<t>.<raw body>">` (docs/security.md). Starts saga `q2c-<quote_id>` at most once.',
        openapi_extra=_json_body(
            _component("Quote"),
            "The accepted quote (schemas/webhooks/cpq.quote-accepted.v1.json)",
        ),
        responses={
            202: {"model": SagaAccepted, "description": "Saga started"},
            200: {"model": SagaAccepted, "description": "Duplicate: the saga exists already"},
            **REFUSALS,
            **UNAVAILABLE,
        },
        status_code=202,
    ),
    "/stripe": WebhookDocs(
        operation="stripe_event",
        summary="A Stripe event: quote.accepted starts a saga, other types are acknowledged",
        description="Signed with `Stripe-Signature` (the endpoint's signing secret). The "
        "event's quote carries no lines (an includable property): the gateway reads them with "
        "`GET /v1/quotes/<id>/line_items` before mapping it (docs/api.md#stripe-quotes).",
        openapi_extra=_json_body(
            _component("StripeEvent"),
            "A Stripe event envelope (schemas/webhooks/stripe.event.v1.json)",
        ),
        responses={
            202: {"model": SagaAccepted, "description": "Saga started"},
            200: {
                "description": "Duplicate delivery (SagaAccepted) or an event type revsync "
                "does not act on (EventIgnored)",
                "content": {
                    "application/json": {
                        "schema": {
                            "anyOf": [_component("SagaAccepted"), _component("EventIgnored")]
                        }
                    }
                },
            },
            **REFUSALS,
            503: {
                "description": "Temporal is unreachable, or the quote's lines could not be "
                "read from Stripe (Stripe away or throttled, the gateway's key refused): "
                "nothing started; Stripe delivers again"
            },
        },
        status_code=202,
    ),
    "/stripe/invoices": WebhookDocs(
        operation="stripe_invoice_event",
        summary="A Stripe invoice event: invoice.finalized starts invoice-to-revenue; "
        "payments, voids and credit notes signal it",
        description="A Stripe webhook endpoint subscribed to invoice.finalized, invoice.paid, "
        "invoice.payment_succeeded, invoice.voided and credit_note.created; signed with "
        "`Stripe-Signature` (its signing secret is one of REVSYNC_STRIPE_WEBHOOK_SECRET). "
        "Other types are acknowledged (docs/invoice-to-revenue.md#billing-events).",
        openapi_extra=_json_body(
            _component("StripeEvent"),
            "A Stripe event envelope (schemas/webhooks/stripe.event.v1.json)",
        ),
        responses={
            202: {"model": InvoiceSagaAccepted, "description": "Saga i2r-<invoice id> started"},
            200: {
                "description": "Duplicate invoice.finalized (InvoiceSagaAccepted), an event "
                "signalled to its saga (InvoiceEventDelivered), an event for a saga that "
                "ended CLOSED or VOIDED whose adjustment saga started or had started "
                "(InvoiceSagaAccepted with `adjustment`), an event for a saga ended otherwise "
                "(InvoiceEventDelivered `closed`), or an event type revsync does not act on "
                "here (EventIgnored)",
                "content": {
                    "application/json": {
                        "schema": {
                            "anyOf": [
                                _component("InvoiceSagaAccepted"),
                                _component("InvoiceEventDelivered"),
                                _component("EventIgnored"),
                            ]
                        }
                    }
                },
            },
            409: {
                "model": UnknownInvoice,
                "description": "An event for an invoice with no saga yet (events can arrive "
                "before invoice.finalized): Stripe redelivers it later",
            },
            **REFUSALS,
            **UNAVAILABLE,
        },
        status_code=202,
    ),
    "/zuora/invoices": WebhookDocs(
        operation="zuora_invoice_callout",
        summary="A Zuora callout: invoice.posted starts invoice-to-revenue; payments, "
        "cancellations and credit memos signal it",
        description=f"A Zuora Events & Notifications callout whose body is one of revsync's "
        f"callout templates (docs/api.md#zuora-invoice-callouts); authenticated by the "
        f"custom callout header `{SECRET_HEADER}` holding one of "
        "REVSYNC_ZUORA_CALLOUT_SECRET. Zuora counts any answer but 200 as a failure and "
        "sends the callout again, so a started saga is a 200 here (not a 202).",
        openapi_extra=_json_body(
            CALLOUT_SCHEMA, "One callout, rendered from revsync's template for its event"
        ),
        responses={
            200: {
                "description": "Started or duplicate invoice.posted (InvoiceSagaAccepted), "
                "an event signalled to its saga (InvoiceEventDelivered), an event for a saga "
                "that ended CLOSED or VOIDED whose adjustment saga started or had started "
                "(InvoiceSagaAccepted with `adjustment`), or an event for a saga ended "
                "otherwise (InvoiceEventDelivered `closed`)",
                "content": {
                    "application/json": {
                        "schema": {
                            "anyOf": [
                                _component("InvoiceSagaAccepted"),
                                _component("InvoiceEventDelivered"),
                            ]
                        }
                    }
                },
            },
            409: {
                "model": UnknownInvoice,
                "description": "An event for an invoice with no saga yet (callouts can arrive "
                "before invoice.posted): Zuora sends it again at its next attempt",
            },
            **REFUSALS,
            **UNAVAILABLE,
        },
    ),
    "/hubspot": WebhookDocs(
        operation="hubspot_events",
        summary="A HubSpot webhook batch (v3 signatures)",
        description="Signed with `X-HubSpot-Signature-v3` over method, the URL HubSpot "
        "called, body and `X-HubSpot-Request-Timestamp`; both the /v1 and the unversioned "
        "URL verify, as each is signed as called.",
        openapi_extra=_json_body(
            {
                "type": "array",
                "items": _component("HubSpotEvent"),
                "minItems": 1,
                "maxItems": 100,
            },
            "1 to 100 events (schemas/webhooks/hubspot.events.v1.json)",
        ),
        responses={
            202: {
                "model": DealsAccepted,
                "description": "A deal moved to closed-won started quote-to-cash (CRM HubSpot)",
            },
            200: {
                "model": EventsReceived,
                "description": "Acknowledged: no closed-won deal, or the CRM is not HubSpot; "
                "or each closed-won deal's saga existed already (duplicate), or it is "
                "unmappable after its last attempt (both listed in deals); company changes "
                "(CRM HubSpot) taken by their golden customers, listed in customers",
            },
            **REFUSALS,
            503: {
                "description": "HubSpot's read of a deal or a company failed transiently, or "
                "Temporal is unreachable: HubSpot redelivers after Retry-After"
            },
        },
        status_code=202,
    ),
    "/salesforce/outbound-message": WebhookDocs(
        operation="salesforce_outbound_message",
        summary="A Salesforce Outbound Message (SOAP)",
        description="No signature: the OrganizationId must be in REVSYNC_SALESFORCE_ORG_IDS "
        "and mutual TLS is enforced at the proxy (docs/security.md).",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"text/xml": {"schema": {"type": "string"}}},
            }
        },
        responses={
            200: {
                "description": "The SOAP acknowledgement (`<Ack>true</Ack>`)",
                "content": {"text/xml": {"schema": {"type": "string"}}},
            },
            **REFUSALS,
            400: {
                "model": Problem,
                "description": "Not a well-formed outbound message (hardened XML parser)",
            },
        },
    ),
    "/stripe/customers": WebhookDocs(
        operation="stripe_customer_event",
        summary="A Stripe customer event: customer.updated goes to the golden customer",
        description="A second Stripe webhook endpoint, subscribed to customer.updated; signed "
        "with `Stripe-Signature` (its signing secret is one of REVSYNC_STRIPE_WEBHOOK_SECRET). "
        "Routed by metadata.revsync_account_id (422 without it); other types are acknowledged.",
        openapi_extra=_json_body(
            _component("StripeEvent"),
            "A Stripe event envelope (schemas/webhooks/stripe.event.v1.json)",
        ),
        responses={
            200: {
                "description": "Taken (CustomerChangeApplied), not about a golden field "
                "(CustomerChangeIgnored), or an event type revsync does not act on here "
                "(EventIgnored)",
                "content": {
                    "application/json": {
                        "schema": {
                            "anyOf": [
                                _component("CustomerChangeApplied"),
                                _component("CustomerChangeIgnored"),
                                _component("EventIgnored"),
                            ]
                        }
                    }
                },
            },
            **REFUSALS,
            **UNAVAILABLE,
        },
    ),
    "/erp/customer-changed": WebhookDocs(
        operation="erp_customer_changed",
        summary="An ERP customer changed: the change goes to its golden customer",
        description="Signed as the CPQ webhook (`X-Revsync-Signature`, REVSYNC_ERP_WEBHOOK_SECRET)"
        "; posted by a NetSuite SuiteScript (docs/customer-master.md). Routed by the external "
        "id acct-<CRM account id> (422 without it).",
        openapi_extra=_json_body(
            _component("ErpCustomerChanged"),
            "One changed customer (schemas/webhooks/erp.customer-changed.v1.json)",
        ),
        responses={
            200: {
                "description": "Taken (CustomerChangeApplied) or not about a golden field "
                "(CustomerChangeIgnored)",
                "content": {
                    "application/json": {
                        "schema": {
                            "anyOf": [
                                _component("CustomerChangeApplied"),
                                _component("CustomerChangeIgnored"),
                            ]
                        }
                    }
                },
            },
            **REFUSALS,
            **UNAVAILABLE,
        },
    ),
}
# Any other path under the webhooks prefix answers 401 "unknown source"; it is no operation.
CATCH_ALL = "/{source:path}"


# -- the two path sets --------------------------------------------------------------------


def deprecation_headers(successor: str) -> dict[str, str]:
    return {
        "Deprecation": f"@{int(UNVERSIONED_DEPRECATED_AT.timestamp())}",
        "Link": f'<{successor}>; rel="successor-version"',
    }


def _unversioned(endpoint: Endpoint) -> Endpoint:
    """``endpoint`` answering on a deprecated path: the same answer, refusals included, with
    the deprecation headers."""

    @functools.wraps(endpoint)
    async def deprecated(*args: Any, **kwargs: Any) -> Response:
        request = next(a for a in (*args, *kwargs.values()) if isinstance(a, Request))
        successor = API_PREFIX + request.url.path
        log.info("unversioned webhook path", path=request.url.path, successor=successor)
        try:
            response = await endpoint(*args, **kwargs)
        except Refused as refused:
            response = await refused_handler(request, refused)
        response.headers.update(deprecation_headers(successor))
        return response

    return deprecated


def versioned_webhooks(handlers: APIRouter) -> APIRouter:
    """The webhook ``handlers`` (paths without a prefix) at ``/v1/webhooks`` and, deprecated,
    at ``/webhooks``. The catch-all comes last in each set, as in ``handlers``."""
    router = APIRouter()
    for prefix, deprecated in ((API_PREFIX + WEBHOOKS, False), (WEBHOOKS, True)):
        for route in handlers.routes:
            if not isinstance(route, APIRoute):
                raise TypeError(f"unexpected route {route!r} among the webhooks")
            endpoint = _unversioned(route.endpoint) if deprecated else route.endpoint
            methods = sorted(route.methods or ())
            if route.path == CATCH_ALL:
                router.add_api_route(
                    prefix + route.path, endpoint, methods=methods, include_in_schema=False
                )
                continue
            docs = WEBHOOK_DOCS.get(route.path)
            if docs is None:
                raise LookupError(
                    f"webhook route {route.path} has no entry in "
                    "revsync.gateway.versioning.WEBHOOK_DOCS (its OpenAPI description)"
                )
            router.add_api_route(
                prefix + route.path,
                endpoint,
                methods=methods,
                tags=["webhooks"],
                operation_id=f"{docs.operation}_unversioned" if deprecated else docs.operation,
                summary=docs.summary,
                description=(
                    f"Deprecated: use `{API_PREFIX}{WEBHOOKS}{route.path}`. {docs.description}"
                    if deprecated
                    else docs.description
                ),
                deprecated=deprecated or None,
                status_code=docs.status_code,
                responses=docs.responses,
                openapi_extra=docs.openapi_extra,
            )
    return router
