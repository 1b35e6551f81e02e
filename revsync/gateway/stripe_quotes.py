"""The gateway's side of Stripe's ``quote.accepted``: the event's quote, with its lines read
from Stripe, becomes a quote-to-cash start.

A webhook event carries its object as the API renders it *without expansion*, and a quote's
``line_items`` (like ``computed.upfront.line_items``) are *includable*: Stripe returns them
only when a request asks for them ("Expanding responses", https://docs.stripe.com/expand),
never in an event. So for each verified ``quote.accepted`` (:mod:`revsync.gateway.webhooks`)
the gateway reads the lines with ``GET /v1/quotes/<id>/line_items``, page by page
(:meth:`adapters.billing.stripe.StripeBilling.quote_line_items`), puts them in the quote's
``line_items`` and maps the whole (:func:`adapters.webhooks.stripe_quotes.quote_from_stripe`).

Answers, so that Stripe (which redelivers any non-2xx answer for up to three days, with
backoff) delivers again exactly when that can help:

- the lines cannot be read: Stripe away, throttled, a lost answer, or a refusal of the
  gateway's own key (401, 403: ``REVSYNC_STRIPE_API_KEY`` wrong or lacking the Quotes read
  permission; a 404 for a quote of another account or mode than the key's): 503 with
  ``Retry-After``, logged with Stripe's code, counted ``unavailable``; nothing started, the
  redelivery reads again once the cause is fixed;
- the quote (with its lines) cannot be mapped: 422 with the fields at fault, as before;
- otherwise the saga starts (202), or exists already (200 ``duplicate``).

The Stripe client is the billing adapter's, built from the same settings as the billing
worker's (``REVSYNC_STRIPE_BASE_URL``, ``REVSYNC_STRIPE_API_KEY``) on the gateway's vendor
HTTP client; a restricted key with read access to Quotes is enough for the gateway. The
gateway builds it only when Stripe may send events (``REVSYNC_STRIPE_WEBHOOK_SECRET`` set).
"""

from __future__ import annotations

from typing import Any

import httpx
import structlog
from fastapi.responses import JSONResponse

from adapters.billing.stripe import StripeBilling
from adapters.errors import ConfigurationError, VendorError
from adapters.webhooks.stripe_quotes import MappingError, quote_from_stripe, with_line_items
from domain.quote import Quote
from revsync.gateway.refusals import Refused
from revsync.settings import Settings

log = structlog.get_logger("revsync.gateway.stripe_quotes")

RETRY_AFTER_SECONDS = 30


def quote_reader(settings: Settings, http: httpx.AsyncClient) -> StripeBilling | None:
    """The Stripe client the gateway reads quote lines with, on its vendor client ``http``;
    None when no Stripe endpoint may deliver (``REVSYNC_STRIPE_WEBHOOK_SECRET`` unset)."""
    if settings.stripe_webhook_secret is None:
        return None
    return StripeBilling(
        http,
        base_url=settings.stripe_base_url,
        api_key=settings.stripe_api_key.get_secret_value(),
    )


def retry_later(reason: str) -> JSONResponse:
    """The 503 that makes Stripe deliver the event again later."""
    return JSONResponse(
        {"error": reason}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
    )


async def accepted_quote(
    reader: StripeBilling | None, quote_obj: dict[str, Any]
) -> Quote | JSONResponse:
    """The canonical quote of a ``quote.accepted`` event's ``data.object``, its lines read
    from Stripe; the 503 to answer when they cannot be read. Raises :class:`Refused` (422)
    for a quote that cannot be mapped."""
    quote_id = quote_obj.get("id")
    if not isinstance(quote_id, str) or not quote_id.strip():
        raise Refused(
            422, "invalid quote", fields=[{"field": "data.object.id", "message": "is required"}]
        )
    if reader is None:
        log.error("stripe quote lines cannot be read: no Stripe client configured")
        return retry_later("stripe cannot be read, retry later")
    try:
        lines = await reader.quote_line_items(quote_id)
    except VendorError as error:
        misconfigured = isinstance(error, ConfigurationError)
        (log.error if misconfigured else log.warning)(
            "stripe quote lines not read",
            quote_id=quote_id,
            outcome=error.outcome,
            status=error.status,
            code=error.code,
            reason=error.message,
        )
        return retry_later("stripe could not be read, retry later")
    try:
        return quote_from_stripe(with_line_items(quote_obj, lines))
    except MappingError as error:
        raise Refused(422, "invalid quote", fields=error.fields) from None
