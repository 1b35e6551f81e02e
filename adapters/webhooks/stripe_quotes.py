"""Stripe quotes: an accepted Stripe Quote object as revsync's canonical :class:`Quote`.

The ``quote.accepted`` event carries the Quote in ``data.object`` *without* its lines: a
quote's ``line_items`` (and ``computed.upfront.line_items``) are includable, returned only
when a request asks for them, never in an event ("Expanding responses",
https://docs.stripe.com/expand). The gateway reads them with
``GET /v1/quotes/<id>/line_items`` (:mod:`revsync.gateway.stripe_quotes`) and puts them in
the quote's ``line_items`` (:func:`with_line_items`), as an expanded retrieval would show
them; :func:`quote_from_stripe` maps that whole, and its field paths name the quote's
``line_items`` property (``data.object.line_items.data.0.price.lookup_key``). Conventions
the sales team follows when building a quote in Stripe:

* ``metadata.crm_account_id`` (required): the CRM account the quote belongs to;
  ``metadata.crm_opportunity_id`` (optional); ``metadata.owner`` (required): the seller;
  ``metadata.term_months`` (optional, a whole number; 12 when absent).
* Each price names its SKU in ``lookup_key``, or else in ``metadata.sku``; either is
  upper-cased. Prices are per unit (no tiers, no ``transform_quantity``), billed every
  month or every year (``interval_count`` 1), or once.
* ``collection_method`` ``charge_automatically`` is due on receipt; ``send_invoice`` uses
  ``invoice_settings.days_until_due``, which must be 0, 15, 30, 45, 60 or 90.

Amounts are integers (``unit_amount_decimal``: a decimal string) in the currency's smallest
unit and become exact :class:`~decimal.Decimal` major units. A line's discount becomes a
percentage of its subtotal, rounded half-up to four places.

Anything that does not fit raises :class:`MappingError` listing every offending field as a
dotted path inside the event (``data.object.metadata.owner``). Messages never repeat values
from the payload: quotes carry names and other personal data.
"""

from __future__ import annotations

import hashlib
import re
import time
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from adapters.billing.stripe import stripe_exponent
from adapters.mapping import FieldErrors, QuoteMappingError, validation_fields
from domain.money import MINOR_UNITS
from domain.quote import BillingInterval, BillingType, PaymentTerms, Quote

__all__ = [
    "API_VERSION",
    "MappingError",
    "quote_from_stripe",
    "sample_event",
    "sample_stripe_quote",
    "with_line_items",
]

API_VERSION = "2024-06-20"
ROOT = "data.object"
DEFAULT_TERM_MONTHS = 12

_TERMS_BY_DAYS = {terms.days: terms for terms in PaymentTerms}
_INTERVALS = {interval.value: interval for interval in BillingInterval}
_WHOLE_NUMBER = re.compile(r"^\s*\d{1,4}\s*$")
# Quoted literals in a validator's own message may be payload values.

# Where each Quote field comes from, relative to ``data.object``.
_QUOTE_SOURCES = {
    "quote_id": "id",
    "account_id": "metadata.crm_account_id",
    "opportunity_id": "metadata.crm_opportunity_id",
    "owner": "metadata.owner",
    "currency": "currency",
    "payment_terms": "collection_method",
    "term_months": "metadata.term_months",
    "start_date": "subscription_data.effective_date",
    "accepted_at": "status_transitions.accepted_at",
    "lines": "line_items.data",
}
# Where each QuoteLine field comes from, relative to the line item; sku and unit_price
# depend on which Stripe field was present and are recorded per line.
_LINE_SOURCES = {
    "line_id": "id",
    "sku": "price.lookup_key",
    "description": "description",
    "quantity": "quantity",
    "unit_price": "price.unit_amount_decimal",
    "discount_percent": "amount_discount",
    "billing": "price.type",
    "interval": "price.recurring.interval",
}


class MappingError(QuoteMappingError):
    """The Stripe quote does not describe a valid revsync quote; ``fields`` are dotted paths
    inside the event."""

    source = "Stripe quote"


def _path(relative: str) -> str:
    return f"{ROOT}.{relative}" if relative else ROOT


def _join(base: str, key: str) -> str:
    return f"{base}.{key}" if base else key


class _Reader(FieldErrors):
    """Reads typed values out of the Quote object, collecting errors instead of raising."""

    def error(self, relative: str, message: str) -> None:
        super().error(_path(relative), message)

    def mapping(
        self, container: dict[str, Any], base: str, key: str, *, required: bool = True
    ) -> dict[str, Any] | None:
        value = container.get(key)
        if value is None:
            if required:
                self.error(_join(base, key), "is required")
            return None
        if not isinstance(value, dict):
            self.error(_join(base, key), "must be an object")
            return None
        return value

    def text(
        self, container: dict[str, Any], base: str, key: str, *, required: bool = True
    ) -> str | None:
        value = container.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.error(_join(base, key), "is required")
            return None
        if not isinstance(value, str):
            self.error(_join(base, key), "must be a string")
            return None
        return value

    def integer(
        self, container: dict[str, Any], base: str, key: str, *, required: bool = True
    ) -> int | None:
        value = container.get(key)
        if value is None:
            if required:
                self.error(_join(base, key), "is required")
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(_join(base, key), "must be an integer")
            return None
        return value

    def timestamp(
        self, container: dict[str, Any], base: str, key: str, *, required: bool = True
    ) -> datetime | None:
        seconds = self.integer(container, base, key, required=required)
        if seconds is None:
            return None
        try:
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):
            self.error(_join(base, key), "is not a valid Unix timestamp")
            return None


def with_line_items(quote: dict[str, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    """``quote`` (an event's ``data.object``) with ``items``, every line item read from
    ``GET /v1/quotes/<id>/line_items``, as its complete ``line_items`` list."""
    return {
        **quote,
        "line_items": {
            "object": "list",
            "data": items,
            "has_more": False,
            "url": f"/v1/quotes/{quote.get('id')}/line_items",
        },
    }


def quote_from_stripe(quote: dict[str, Any]) -> Quote:
    """The canonical quote for a Stripe Quote object with ``line_items`` included.

    Raises :class:`MappingError` naming every field that is missing, unsupported or invalid.
    """
    if not isinstance(quote, dict):
        raise MappingError([{"field": ROOT, "message": "must be an object"}])
    read = _Reader()

    if quote.get("object", "quote") != "quote":
        read.error("object", "must be a quote")
    if quote.get("status", "accepted") != "accepted":
        read.error("status", "quote is not accepted")

    quote_id = read.text(quote, "", "id")
    metadata = read.mapping(quote, "", "metadata", required=False) or {}
    account_id = read.text(metadata, "metadata", "crm_account_id")
    opportunity_id = read.text(metadata, "metadata", "crm_opportunity_id", required=False)
    owner = read.text(metadata, "metadata", "owner")
    term_months = _term_months(read, metadata)

    currency: str | None = None
    raw_currency = read.text(quote, "", "currency")
    if raw_currency is not None:
        currency = raw_currency.strip().upper()
        if currency not in MINOR_UNITS:
            read.error("currency", "unsupported currency")
            currency = None

    payment_terms = _payment_terms(read, quote)

    transitions = read.mapping(quote, "", "status_transitions", required=False) or {}
    accepted_at = read.timestamp(transitions, "status_transitions", "accepted_at")
    subscription_data = read.mapping(quote, "", "subscription_data", required=False) or {}
    effective = read.timestamp(
        subscription_data, "subscription_data", "effective_date", required=False
    )
    start_date: date | None = (
        effective.date() if effective else accepted_at.date() if accepted_at else None
    )

    lines, sources = _lines(read, quote, currency)

    if read.errors:
        raise MappingError(read.errors)
    try:
        return Quote.model_validate(
            {
                "quote_id": quote_id,
                "account_id": account_id,
                "opportunity_id": opportunity_id,
                "owner": owner,
                "currency": currency,
                "payment_terms": payment_terms,
                "term_months": term_months,
                "start_date": start_date,
                "accepted_at": accepted_at,
                "lines": lines,
            }
        )
    except ValidationError as error:
        raise MappingError(
            validation_fields(error, lambda loc: _path(_source_of(loc, sources)))
        ) from None


def _term_months(read: _Reader, metadata: dict[str, Any]) -> int | None:
    value = metadata.get("term_months")
    if value is None:
        return DEFAULT_TERM_MONTHS
    if isinstance(value, bool) or not isinstance(value, str | int):
        read.error("metadata.term_months", "must be a whole number of months")
        return None
    if isinstance(value, int):
        return value
    if not _WHOLE_NUMBER.match(value):
        read.error("metadata.term_months", "must be a whole number of months")
        return None
    return int(value)


def _payment_terms(read: _Reader, quote: dict[str, Any]) -> PaymentTerms | None:
    method = read.text(quote, "", "collection_method")
    if method is None:
        return None
    if method == "charge_automatically":
        return PaymentTerms.DUE_ON_RECEIPT
    if method != "send_invoice":
        read.error("collection_method", "must be charge_automatically or send_invoice")
        return None
    settings = read.mapping(quote, "", "invoice_settings")
    if settings is None:
        return None
    days = read.integer(settings, "invoice_settings", "days_until_due")
    if days is None:
        return None
    terms = _TERMS_BY_DAYS.get(days)
    if terms is None:
        allowed = ", ".join(str(d) for d in sorted(_TERMS_BY_DAYS))
        read.error("invoice_settings.days_until_due", f"unsupported payment terms: use {allowed}")
    return terms


def _lines(
    read: _Reader, quote: dict[str, Any], currency: str | None
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """The QuoteLine inputs, and per line where each field was read (relative paths)."""
    line_items = quote.get("line_items")
    if line_items is None:
        read.error("line_items", "is required: read with GET /v1/quotes/<id>/line_items")
        return [], []
    if not isinstance(line_items, dict):
        read.error("line_items", "must be a list object")
        return [], []
    if line_items.get("has_more") is True:
        read.error("line_items.has_more", "the line item list is incomplete; fetch every page")
    data = line_items.get("data")
    if not isinstance(data, list):
        read.error("line_items.data", "must be an array")
        return [], []

    lines: list[dict[str, Any]] = []
    sources: list[dict[str, str]] = []
    for index, item in enumerate(data):
        base = f"line_items.data.{index}"
        source = {field: _join(base, rel) for field, rel in _LINE_SOURCES.items()}
        sources.append(source)
        if not isinstance(item, dict):
            read.error(base, "must be an object")
            lines.append({})
            continue
        line: dict[str, Any] = {
            "line_id": read.text(item, base, "id"),
            "quantity": _quantity(read, item, base),
            "discount_percent": _discount_percent(read, item, base),
        }
        description = item.get("description")
        if description is not None and not isinstance(description, str):
            read.error(_join(base, "description"), "must be a string")
        line["description"] = description or ""
        price = read.mapping(item, base, "price")
        if price is not None:
            _read_price(read, price, f"{base}.price", currency, line, source)
        lines.append(line)
    return lines, sources


def _read_price(
    read: _Reader,
    price: dict[str, Any],
    base: str,
    currency: str | None,
    line: dict[str, Any],
    source: dict[str, str],
) -> None:
    lookup_key = read.text(price, base, "lookup_key", required=False)
    price_metadata = read.mapping(price, base, "metadata", required=False) or {}
    if lookup_key is not None:
        line["sku"] = lookup_key.strip().upper()
    else:
        sku = read.text(price_metadata, f"{base}.metadata", "sku", required=False)
        if sku is None:
            read.error(f"{base}.lookup_key", "is required (or price.metadata.sku)")
        else:
            line["sku"] = sku.strip().upper()
            source["sku"] = f"{base}.metadata.sku"

    price_currency = price.get("currency")
    if (
        currency is not None
        and isinstance(price_currency, str)
        and price_currency.strip().upper() != currency
    ):
        read.error(f"{base}.currency", "differs from the quote currency")
    if price.get("billing_scheme", "per_unit") != "per_unit":
        read.error(f"{base}.billing_scheme", "only per-unit prices are supported")
    if price.get("transform_quantity") is not None:
        read.error(f"{base}.transform_quantity", "transformed quantities are not supported")

    unit_minor = _unit_amount(read, price, base, source)
    if unit_minor is not None and currency is not None:
        line["unit_price"] = unit_minor.scaleb(-stripe_exponent(currency))

    kind = price.get("type")
    if kind == "one_time":
        line["billing"] = BillingType.ONE_TIME
    elif kind == "recurring":
        line["billing"] = BillingType.RECURRING
        recurring = read.mapping(price, base, "recurring")
        if recurring is not None:
            line["interval"] = _interval(read, recurring, f"{base}.recurring")
    else:
        read.error(f"{base}.type", "must be one_time or recurring")


def _unit_amount(
    read: _Reader, price: dict[str, Any], base: str, source: dict[str, str]
) -> Decimal | None:
    """The unit amount in minor units: ``unit_amount_decimal``, else ``unit_amount``."""
    text = price.get("unit_amount_decimal")
    if text is not None:
        path = f"{base}.unit_amount_decimal"
        if not isinstance(text, str | Decimal | int) or isinstance(text, bool):
            read.error(path, "must be a decimal string")
            return None
        try:
            amount = Decimal(text.strip() if isinstance(text, str) else text)
        except InvalidOperation:
            read.error(path, "must be a decimal string")
            return None
        if not amount.is_finite():
            read.error(path, "must be a finite number")
            return None
        return amount
    if price.get("unit_amount") is None:
        read.error(f"{base}.unit_amount", "is required (or unit_amount_decimal)")
        return None
    amount_int = read.integer(price, base, "unit_amount")
    if amount_int is None:
        return None
    source["unit_price"] = f"{base}.unit_amount"
    return Decimal(amount_int)


def _interval(read: _Reader, recurring: dict[str, Any], base: str) -> BillingInterval | None:
    count = recurring.get("interval_count", 1)
    if count is not None and count != 1:
        read.error(f"{base}.interval_count", "only a count of 1 is supported")
    interval = read.text(recurring, base, "interval")
    if interval is None:
        return None
    mapped = _INTERVALS.get(interval)
    if mapped is None:
        read.error(f"{base}.interval", "unsupported billing interval: use month or year")
    return mapped


def _quantity(read: _Reader, item: dict[str, Any], base: str) -> Decimal | None:
    value = item.get("quantity")
    if value is None:
        read.error(_join(base, "quantity"), "is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        read.error(_join(base, "quantity"), "must be a number")
        return None
    return Decimal(value)


def _discount_percent(read: _Reader, item: dict[str, Any], base: str) -> Decimal | None:
    """``amount_discount / amount_subtotal * 100``, rounded half-up to 4 places, exactly."""
    subtotal = read.integer(item, base, "amount_subtotal")
    if "amount_discount" in item and item["amount_discount"] is not None:
        discount = read.integer(item, base, "amount_discount")
        discount_path = "amount_discount"
    else:
        total = read.integer(item, base, "amount_total")
        tax = read.integer(item, base, "amount_tax", required=False)
        if tax:
            read.error(_join(base, "amount_discount"), "is required when the line is taxed")
            return None
        discount = None if total is None or subtotal is None else subtotal - total
        discount_path = "amount_total"
    if subtotal is None or discount is None:
        return None
    if subtotal < 0:
        read.error(_join(base, "amount_subtotal"), "must not be negative")
        return None
    if discount < 0:
        read.error(_join(base, discount_path), "implies a negative discount")
        return None
    if subtotal == 0:
        return Decimal(0)
    # percent * 10**4 = discount * 10**6 / subtotal, rounded half-up in integers.
    quotient, remainder = divmod(discount * 1_000_000, subtotal)
    if 2 * remainder >= subtotal:
        quotient += 1
    return Decimal(quotient).scaleb(-4)


def _source_of(loc: tuple[int | str, ...], sources: list[dict[str, str]]) -> str:
    """The Stripe path (relative to ``data.object``) a pydantic ``loc`` of Quote refers to."""
    if not loc:
        return ""
    head, rest = str(loc[0]), loc[1:]
    if head != "lines":
        return _QUOTE_SOURCES.get(head, head)
    base = _QUOTE_SOURCES["lines"]
    if not rest or not isinstance(rest[0], int):
        return base
    index, rest = rest[0], rest[1:]
    if not rest:
        return f"{base}.{index}"
    field = str(rest[0])
    if 0 <= index < len(sources) and field in sources[index]:
        return sources[index][field]
    return f"{base}.{index}.{field}"


# -- samples for tests and the sandbox --------------------------------------------------------

_DEFAULT_LINES: list[tuple[str, int, int, str | None]] = [
    ("PLAT-CORE", 20, 4500, "month"),
    ("SUPPORT-PREMIUM", 1, 49900, "month"),
    ("ONBOARD-STD", 1, 250000, None),
]
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_DAY = 86_400


def _token(*parts: str, length: int = 24) -> str:
    """A Stripe-looking id suffix derived from ``parts`` (stable across runs)."""
    number = int.from_bytes(hashlib.sha256("\x1f".join(parts).encode()).digest(), "big")
    out = []
    for _ in range(length):
        number, digit = divmod(number, 62)
        out.append(_BASE62[digit])
    return "1" + "".join(out)[: length - 1]


def _totals(subtotal: int, discount: int = 0) -> dict[str, Any]:
    return {
        "amount_subtotal": subtotal,
        "amount_total": subtotal - discount,
        "total_details": {"amount_discount": discount, "amount_shipping": 0, "amount_tax": 0},
    }


def sample_stripe_quote(
    quote_id: str,
    account_id: str,
    *,
    currency: str = "usd",
    lines: list[tuple[str, int, int, str | None]] | None = None,
    owner: str = "Dana Seller",
    accepted_at: int | None = None,
) -> dict[str, Any]:
    """An accepted Stripe Quote object (test mode) with its ``line_items`` included.

    Each line is ``(sku, quantity, unit amount in minor units, "month" | "year" | None)``;
    ``None`` is a one-time price. The default lines (20 Platform Core seats and Premium
    Support monthly, one onboarding) are priced in US cents. Ids are derived from
    ``quote_id`` so the same arguments give the same object; ``accepted_at`` defaults to
    now. Collection is by invoice, due in 30 days, for a 12-month term.
    """
    code = currency.lower()
    accepted = int(time.time()) if accepted_at is None else accepted_at
    created = accepted - 7 * _DAY
    specs = _DEFAULT_LINES if lines is None else lines

    items: list[dict[str, Any]] = []
    for index, (sku, quantity, unit_minor, interval) in enumerate(specs):
        subtotal = quantity * unit_minor
        recurring = (
            None
            if interval is None
            else {
                "aggregate_usage": None,
                "interval": interval,
                "interval_count": 1,
                "meter": None,
                "trial_period_days": None,
                "usage_type": "licensed",
            }
        )
        price = {
            "id": f"price_{_token('price', code, sku, str(unit_minor), str(interval))}",
            "object": "price",
            "active": True,
            "billing_scheme": "per_unit",
            "created": created - 180 * _DAY,
            "currency": code,
            "custom_unit_amount": None,
            "livemode": False,
            "lookup_key": sku.lower(),
            "metadata": {"sku": sku},
            "nickname": None,
            "product": f"prod_{_token('product', sku, length=14)}",
            "recurring": recurring,
            "tax_behavior": "exclusive",
            "tiers_mode": None,
            "transform_quantity": None,
            "type": "one_time" if interval is None else "recurring",
            "unit_amount": unit_minor,
            "unit_amount_decimal": str(unit_minor),
        }
        items.append(
            {
                "id": f"li_{_token(quote_id, 'line', str(index))}",
                "object": "item",
                "amount_discount": 0,
                "amount_subtotal": subtotal,
                "amount_tax": 0,
                "amount_total": subtotal,
                "currency": code,
                "description": sku.replace("-", " ").title(),
                "discounts": [],
                "price": price,
                "quantity": quantity,
                "taxes": [],
            }
        )

    upfront_subtotal = sum(item["amount_subtotal"] for item in items)
    first_interval = next((spec[3] for spec in specs if spec[3] is not None), None)
    recurring_totals: dict[str, Any] | None = None
    if first_interval is not None:
        recurring_totals = {
            **_totals(
                sum(
                    item["amount_subtotal"]
                    for item, spec in zip(items, specs, strict=True)
                    if spec[3] == first_interval
                )
            ),
            "interval": first_interval,
            "interval_count": 1,
        }
    has_recurring = recurring_totals is not None
    return {
        "id": quote_id,
        "object": "quote",
        **_totals(upfront_subtotal),
        "application": None,
        "application_fee_amount": None,
        "application_fee_percent": None,
        "automatic_tax": {"enabled": False, "liability": None, "status": None},
        "collection_method": "send_invoice",
        "computed": {"recurring": recurring_totals, "upfront": _totals(upfront_subtotal)},
        "created": created,
        "currency": code,
        "customer": f"cus_{_token('customer', account_id, length=14)}",
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "expires_at": created + 30 * _DAY,
        "footer": None,
        "from_quote": None,
        "header": None,
        "invoice": f"in_{_token(quote_id, 'invoice')}",
        "invoice_settings": {"days_until_due": 30, "issuer": {"type": "self"}},
        "line_items": {
            "object": "list",
            "data": items,
            "has_more": False,
            "url": f"/v1/quotes/{quote_id}/line_items",
        },
        "livemode": False,
        "metadata": {
            "crm_account_id": account_id,
            "crm_opportunity_id": f"006{_token(quote_id, 'opportunity', length=15)}",
            "owner": owner,
            "term_months": "12",
        },
        "number": f"QT-{_token(quote_id, 'number', length=8).upper()}-0001-1",
        "on_behalf_of": None,
        "status": "accepted",
        "status_transitions": {
            "accepted_at": accepted,
            "canceled_at": None,
            "finalized_at": created + 3600,
        },
        "subscription": f"sub_{_token(quote_id, 'subscription')}" if has_recurring else None,
        "subscription_data": {
            "description": None,
            "effective_date": None,
            "metadata": {},
            "trial_period_days": None,
        },
        "subscription_schedule": None,
        "test_clock": None,
        "transfer_data": None,
    }


def without_includables(quote_obj: dict[str, Any]) -> dict[str, Any]:
    """``quote_obj`` as an event or an unexpanded retrieval renders it: no ``line_items``,
    no ``computed.upfront.line_items``."""
    rendered = {key: value for key, value in quote_obj.items() if key != "line_items"}
    computed = rendered.get("computed")
    if isinstance(computed, dict) and isinstance(computed.get("upfront"), dict):
        upfront = {k: v for k, v in computed["upfront"].items() if k != "line_items"}
        rendered["computed"] = {**computed, "upfront": upfront}
    return rendered


def sample_event(
    quote_obj: dict[str, Any], event_id: str | None = None, type: str = "quote.accepted"
) -> dict[str, Any]:
    """The event envelope Stripe would deliver for ``quote_obj``: its ``data.object`` is the
    quote without the includable ``line_items`` and ``computed.upfront.line_items``, which
    no event carries (read them with ``GET /v1/quotes/<id>/line_items``).

    Without ``event_id`` the id is derived from the quote id and ``type``, so building the
    same event twice gives a redelivery, as Stripe's retries are.
    """
    transitions = quote_obj.get("status_transitions") or {}
    created = transitions.get("accepted_at") if type == "quote.accepted" else None
    return {
        "id": event_id or f"evt_{_token(str(quote_obj.get('id')), type)}",
        "object": "event",
        "api_version": API_VERSION,
        "created": created if isinstance(created, int) else int(time.time()),
        "data": {"object": without_includables(quote_obj)},
        "livemode": bool(quote_obj.get("livemode", False)),
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": type,
    }
