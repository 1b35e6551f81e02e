"""Stripe as the billing system (``BillingPort``), over the Stripe v1 REST API.

Wire format: form-encoded bodies with Stripe's bracket notation (``metadata[revsync_key]``,
``items[0][price_data][unit_amount_decimal]``), flattened here into a plain ``dict[str, str]``
and sent through :class:`adapters.http.VendorHttp`; JSON answers; ``Authorization: Bearer``;
the API version pinned with ``Stripe-Version`` so object shapes do not move under us.

Keys and duplicates:

- customer: one per CRM account. Looked up by ``metadata['revsync_account_id']`` (Stripe
  Search), created when absent under an ``Idempotency-Key`` derived from the *account*
  (:func:`customer_idempotency_key`), not from the saga: Stripe Search is eventually
  consistent (new objects become searchable in under a minute, later during an outage), so
  two sagas of one new account within that lag both miss the search, and their creates must
  be one request to Stripe. The create's parameters come from the account alone
  (:func:`customer_form`), so the second create replays the first one's answer (the same
  customer); a create still running answers 409 ``idempotency_key_in_use`` (transient). If
  the account changed in CRM between the two reads, the parameters differ and Stripe answers
  400 ``idempotency_error``: then the first create made the customer, which the search finds
  once indexed, so that answer is transient here (with ``Retry-After``) and the retried step
  finds it. Stripe prunes keys after 24 hours: by then the customer is long searchable and no
  create is sent; a customer deleted in Stripe is not found by the search, and a new one is
  created once the key is pruned (within the 24 hours the create would replay the deleted
  one, and the subscription create is then refused).
- subscription: looked up by ``metadata['revsync_key']``, created with that key as
  ``Idempotency-Key``; the same two layers cover a retry after a lost answer.
- products: one per SKU, with the SKU as the Stripe product id (``GET /v1/products/<sku>``,
  created on 404; ``resource_already_exists`` from a concurrent create counts as present).

Money: amounts are integers in Stripe's minor unit (``to_stripe_amount``: the ISO 4217
exponent, JPY none, except ISK which Stripe carries with two zero decimals), currencies
lowercase on the wire and uppercase in the domain. Stripe bills
``unit_amount_decimal * quantity`` per line and its quantities are integers, while the quote's
net line amount (quantity * unit price * (1 - discount), rounded once to the minor unit) need
not be a whole number of cents per seat. So each line is sent as:

- ``quantity`` = the line's quantity and ``unit_amount_decimal`` = net amount in minor units
  ÷ quantity, when the quantity is whole and that division is exact within Stripe's 12
  decimal places (e.g. 20 seats at 4050 cents, or 18 seats at 5687.5 yen): Stripe's product
  is then exactly the net amount, with no rounding on its side;
- otherwise ``quantity`` = 1 and ``unit_amount_decimal`` = the line's net amount in minor
  units (e.g. 7 seats with a 12.5 % discount), so the bill is still exact to the minor unit.

Either way the quote's line id and real quantity ride along in the subscription item's
metadata. Three-decimal currencies (KWD, BHD, JOD, OMR) are sent as is; Stripe additionally
wants their amounts divisible by 10, which a quote priced to the fils can violate.

Subscriptions are created with ``collection_method=send_invoice`` and the payment terms as
``days_until_due``; the quote's start date, term and key are stored as metadata. Stripe refuses
mixed billing intervals on one subscription and more than 20 items (or 20 one-off invoice
items): such drafts are rejected here, before anything is sent.

Cancelling sends ``DELETE /v1/subscriptions/<id>`` with ``prorate=false``,
``invoice_now=false`` and the reason as ``cancellation_details[comment]``; a cancelled one is
returned as is. Voiding: ``void`` is returned as is; ``paid`` is rejected (refund or credit it
instead) unless its total is zero, since nothing was collected; ``open`` and
``uncollectible`` are voided. A ``draft`` is finalized with ``auto_advance=false`` (so Stripe
sends nothing to the customer) and then voided: Stripe only deletes one-off drafts, never a
subscription's, and a void invoice keeps the audit trail (at the cost of an invoice number).
A finalized zero-amount draft comes back paid and is returned as is.

Reading an invoice for invoice-to-revenue (``get_invoice``): ``GET /v1/invoices/<id>`` with
``expand[0]=customer`` (one call brings the customer's ``metadata.revsync_account_id``, the CRM
account quote-to-cash stamped on it), then ``/v1/invoices/<id>/lines`` page by page past the
embedded ones. A draft is rejected before the lines are read (revsync starts on
``invoice.finalized``), as is a currency outside ``domain.money`` and a customer without the
CRM account id. Each line maps to one canonical line:

- amount: Stripe's line ``amount`` is quantity times unit price before discounts (and
  includes the tax when the price is tax-inclusive); the canonical amount is that minus the
  line's ``discount_amounts`` (which carry its share of invoice-level coupons too) minus any
  inclusive ``tax_amounts``. The tax is every ``tax_amounts`` entry. The lines must add up
  to Stripe's ``total`` (net lines plus exclusive tax), else the invoice is rejected
  (``amount_mismatch``) rather than booked wrong;
- money: integers in Stripe's minor unit. That is the ISO 4217 exponent except for ISK,
  which Stripe carries with two (always zero) decimals;
- kind: a line whose price is recurring (or whose type is ``subscription``) is a
  subscription line over its ``period`` (``start`` inclusive, ``end`` exclusive, as the
  domain wants); any other line is one-off, recognised on the issue date. A recurring line
  whose period is shorter than a day is one-off on its start date;
- dates: timestamps become calendar dates in the accounting time zone (UTC unless the
  adapter is given another). The issue date is ``effective_at`` when set, else
  ``status_transitions.finalized_at``; without a ``due_date`` (charged automatically) the
  invoice is due on issue;
- the SKU is the price's product id (quote-to-cash creates products with the SKU as id); a
  product id that is not a SKU is rejected.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any
from urllib.parse import quote as url_quote
from zoneinfo import ZoneInfo

import httpx
from pydantic import ValidationError

from adapters.billing.stripe_fields import (
    ACCOUNT_METADATA_KEY,
    changes_from_customer,
    customer_update_form,
)
from adapters.errors import (
    ConfigurationError,
    NotFoundError,
    RejectedError,
    TransientError,
    VendorError,
)
from adapters.http import VendorHttp, decode_json, vendor_error
from domain.customer import Customer
from domain.customer_master import FieldValue, MasterField
from domain.invoice import Invoice as FinalizedInvoice
from domain.invoice import OneOffLine, SubscriptionLine
from domain.money import MINOR_UNITS, quantize
from domain.order import (
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    OrderLine,
    Subscription,
    SubscriptionDraft,
    SubscriptionStatus,
)
from domain.quote import BillingInterval
from domain.reconciliation import (
    Basis,
    CustomerRecord,
    InvoiceRecord,
    OrderRecord,
    Page,
    System,
    Window,
    fingerprints,
)

VENDOR = "stripe"
# The API version whose object shapes this module reads (invoice.subscription,
# subscription.latest_invoice, cancellation_details).
STRIPE_API_VERSION = "2024-06-20"
# Stripe's limits on one subscription.
MAX_SUBSCRIPTION_ITEMS = 20
MAX_ADD_INVOICE_ITEMS = 20
# unit_amount_decimal accepts at most 12 decimal places.
UNIT_AMOUNT_DECIMALS = 12
# Longest cancellation_details[comment] Stripe accepts.
MAX_COMMENT = 5000

_TRANSIENT_CODES = frozenset({"idempotency_key_in_use", "lock_timeout", "rate_limit"})
# How long a new object may take to appear in Stripe Search under normal conditions ("Search",
# https://docs.stripe.com/search: searchable in under a minute).
SEARCH_LAG_SECONDS = 60.0

_SUBSCRIPTION_STATUS: dict[str, SubscriptionStatus] = {
    "active": SubscriptionStatus.ACTIVE,
    "trialing": SubscriptionStatus.TRIALING,
    "incomplete": SubscriptionStatus.INCOMPLETE,
    "past_due": SubscriptionStatus.PAST_DUE,
    "unpaid": SubscriptionStatus.PAST_DUE,
    "paused": SubscriptionStatus.INCOMPLETE,
    "canceled": SubscriptionStatus.CANCELED,
    "incomplete_expired": SubscriptionStatus.CANCELED,
}

_EU_VAT_COUNTRIES = frozenset(
    {"AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU"}
    | {"IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK"}
)


# --- classification -------------------------------------------------------------------------


def _error_fields(response: httpx.Response) -> dict[str, Any]:
    try:
        body = decode_json(response)
    except ValueError:
        return {}
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return dict(body["error"])
    return {}


def classify_stripe_error(operation: str, response: httpx.Response) -> VendorError:
    """Stripe's reading of an error response ("Errors", https://docs.stripe.com/api/errors;
    "Advanced error handling", https://docs.stripe.com/error-low-level).

    - 401 (no valid API key) and 403 (the key lacks the permission) are
      :class:`ConfigurationError`: revsync's own credentials, not the customer's order, so
      neither a retry (the same key fails the same way) nor a rejection (which would unwind
      the order) is right: the saga parks at once, saying so. Only ``Stripe-Should-Retry:
      true`` makes them transient.
    - ``Stripe-Should-Retry`` decides otherwise when present (``true``: transient,
      ``false``: not).
    - Without it, 5xx, 409 (``idempotency_key_in_use``), 429 / ``rate_limit_error`` and
      ``lock_timeout`` are transient (with ``Retry-After``); 404 is :class:`NotFoundError`;
      everything else (``invalid_request_error``, ``card_error`` with its
      ``decline_code``, ``idempotency_error``) is rejected, with Stripe's code (or the
      error type when there is no code).
    """
    status = response.status_code
    error = _error_fields(response)
    error_type = str(error.get("type") or "")
    code = str(error["code"]) if error.get("code") else None
    message = str(error.get("message") or f"HTTP {status} without a Stripe error body")
    if error.get("decline_code"):
        message = f"{message} (decline_code {error['decline_code']})"
    if error.get("param"):
        message = f"{message} (param {error['param']})"
    vendor_code = code or error_type or None
    should_retry = response.headers.get("stripe-should-retry", "").strip().lower()

    if status in (401, 403) and should_retry != "true":
        return ConfigurationError(
            VENDOR,
            operation,
            f"{message} (check REVSYNC_STRIPE_API_KEY and the key's permissions)",
            status=status,
            code=vendor_code,
        )
    transient = should_retry == "true" or (
        should_retry != "false"
        and (
            status in (409, 429)
            or status >= 500
            or error_type == "rate_limit_error"
            or code in _TRANSIENT_CODES
        )
    )
    return vendor_error(VENDOR, operation, response, message, vendor_code, transient=transient)


# --- request building (pure) ----------------------------------------------------------------


@dataclass(frozen=True)
class StripeLinePrice:
    """How one quote line is billed: Stripe charges ``unit_amount_decimal * quantity``."""

    unit_amount_decimal: str
    quantity: int


def _plain(value: Decimal) -> str:
    """A decimal without exponent or trailing zeros: ``4050``, ``5687.5``, ``0``."""
    return format(value.normalize(), "f")


def stripe_line_price(line: OrderLine, currency: str) -> StripeLinePrice:
    """The unit price and quantity whose product is exactly the line's net amount."""
    net = to_stripe_amount(line.amount, currency)
    quantity = line.quantity
    if quantity == quantity.to_integral_value() and quantity > 0:
        count = int(quantity)
        scale = 10**UNIT_AMOUNT_DECIMALS
        if (net * scale) % count == 0:
            unit = Decimal(net * scale // count).scaleb(-UNIT_AMOUNT_DECIMALS)
            return StripeLinePrice(_plain(unit), count)
    return StripeLinePrice(str(net), 1)


def stripe_tax_id(country: str, tax_id: str) -> tuple[str, str] | None:
    """``(type, value)`` for Stripe's ``tax_id_data`` when the id plainly is one of Stripe's
    types for the country; ``None`` when unsure (Stripe rejects a malformed tax id, so an id
    of unknown shape is kept in metadata only)."""
    value = tax_id.strip().upper()
    if country == "US" and re.fullmatch(r"\d{2}-\d{7}", value):
        return "us_ein", value
    if country in _EU_VAT_COUNTRIES:
        prefix = "EL" if country == "GR" else country
        if re.fullmatch(prefix + r"[0-9A-Z]{2,13}", value):
            return "eu_vat", value
    if country == "GB" and re.fullmatch(r"GB(\d{9}|\d{12})", value):
        return "gb_vat", value
    if country == "JP" and re.fullmatch(r"T\d{13}", value):
        return "jp_trn", value
    if country == "CA" and re.fullmatch(r"\d{9}RT\d{4}", value):
        return "ca_gst_hst", value
    if country == "AU" and re.fullmatch(r"\d{11}", value):
        return "au_abn", value
    return None


def customer_idempotency_key(account_id: str) -> str:
    """The ``Idempotency-Key`` of the customer create for a CRM account: the same for every
    saga of the account, so two of them create one customer (module docstring)."""
    return f"revsync:customer:{account_id}"


def customer_form(customer: Customer) -> dict[str, str]:
    address = customer.billing_address
    form = {
        "name": customer.legal_entity,
        "email": customer.email,
        "description": f"{customer.name} (CRM account {customer.account_id})",
        "address[line1]": address.line1,
        "address[city]": address.city,
        "address[postal_code]": address.postal_code,
        "address[country]": address.country,
        "metadata[revsync_account_id]": customer.account_id,
    }
    if address.line2:
        form["address[line2]"] = address.line2
    if address.region:
        form["address[state]"] = address.region
    if customer.tax_id and customer.tax_id.strip():
        form["metadata[tax_id]"] = customer.tax_id.strip()
        typed = stripe_tax_id(address.country, customer.tax_id)
        if typed is not None:
            form["tax_id_data[0][type]"], form["tax_id_data[0][value]"] = typed
    return form


def _reject(operation: str, code: str, message: str) -> RejectedError:
    return RejectedError(VENDOR, operation, message, code=code)


def subscription_interval(draft: SubscriptionDraft) -> BillingInterval:
    """The one billing interval of the draft's recurring lines; rejects mixed intervals."""
    intervals = {line.interval or BillingInterval.MONTH for line in draft.recurring_lines}
    if not intervals:
        raise _reject(
            "create_subscription",
            "no_recurring_lines",
            f"quote {draft.quote_id} has no recurring line to subscribe to",
        )
    if len(intervals) > 1:
        listing = ", ".join(
            f"{line.line_id}={line.interval or BillingInterval.MONTH}"
            for line in draft.recurring_lines
        )
        raise _reject(
            "create_subscription",
            "mixed_intervals",
            "Stripe bills every item of a subscription on one interval; quote "
            f"{draft.quote_id} mixes {sorted(str(i) for i in intervals)} ({listing})",
        )
    (interval,) = intervals
    return interval


def subscription_form(draft: SubscriptionDraft, customer_id: str) -> dict[str, str]:
    """The ``POST /v1/subscriptions`` body for ``draft``. Deterministic, so a retry with the
    same ``Idempotency-Key`` sends the same parameters."""
    interval = subscription_interval(draft)
    if len(draft.recurring_lines) > MAX_SUBSCRIPTION_ITEMS:
        raise _reject(
            "create_subscription",
            "too_many_items",
            f"quote {draft.quote_id} has {len(draft.recurring_lines)} recurring lines; "
            f"a Stripe subscription holds at most {MAX_SUBSCRIPTION_ITEMS}",
        )
    if len(draft.one_time_lines) > MAX_ADD_INVOICE_ITEMS:
        raise _reject(
            "create_subscription",
            "too_many_items",
            f"quote {draft.quote_id} has {len(draft.one_time_lines)} one-off lines; "
            f"a Stripe subscription adds at most {MAX_ADD_INVOICE_ITEMS} to its first invoice",
        )
    currency = draft.currency.lower()
    form = {
        "customer": customer_id,
        "currency": currency,
        "collection_method": "send_invoice",
        "days_until_due": str(draft.payment_terms.days),
        "description": f"revsync quote {draft.quote_id}",
        "metadata[revsync_key]": draft.idempotency_key,
        "metadata[quote_id]": draft.quote_id,
        "metadata[account_id]": draft.account_id,
        "metadata[term_months]": str(draft.term_months),
        "metadata[start_date]": draft.start_date.isoformat(),
        "metadata[payment_terms]": draft.payment_terms.value,
    }
    for index, line in enumerate(draft.recurring_lines):
        price = stripe_line_price(line, draft.currency)
        item = f"items[{index}]"
        form[f"{item}[price_data][currency]"] = currency
        form[f"{item}[price_data][product]"] = line.sku
        form[f"{item}[price_data][unit_amount_decimal]"] = price.unit_amount_decimal
        form[f"{item}[price_data][recurring][interval]"] = interval.value
        form[f"{item}[quantity]"] = str(price.quantity)
        form[f"{item}[metadata][line_id]"] = line.line_id
        form[f"{item}[metadata][quantity]"] = str(line.quantity)
    for index, line in enumerate(draft.one_time_lines):
        price = stripe_line_price(line, draft.currency)
        item = f"add_invoice_items[{index}]"
        form[f"{item}[price_data][currency]"] = currency
        form[f"{item}[price_data][product]"] = line.sku
        form[f"{item}[price_data][unit_amount_decimal]"] = price.unit_amount_decimal
        form[f"{item}[quantity]"] = str(price.quantity)
    return form


def search_query(field: str, value: str) -> str:
    """A Stripe Search query ``metadata['field']:'value'`` with the value's quotes escaped."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"metadata['{field}']:'{escaped}'"


# Stripe Search takes at most ten clauses in one query ("Search query language").
MAX_SEARCH_CLAUSES = 10
# Stripe keeps events for 30 days ("List all events": "going back up to 30 days").
EVENTS_KEPT = timedelta(days=30)
# The events that change each object reconciliation reads (``type`` takes a ``*`` wildcard).
CHANGE_EVENTS: dict[str, dict[str, str]] = {
    "subscriptions": {"type": "customer.subscription.*"},
    "invoices": {"type": "invoice.*"},
    "customers": {
        "types[0]": "customer.created",
        "types[1]": "customer.updated",
        "types[2]": "customer.deleted",
    },
}


def any_of_query(field: str, values: list[str]) -> str:
    """``metadata['field']:'a' OR metadata['field']:'b' ...`` (at most ten values)."""
    return " OR ".join(search_query(field, v) for v in values)


# --- response mapping (pure) ----------------------------------------------------------------


def _unexpected(operation: str, message: str) -> RejectedError:
    return _reject(operation, "unexpected_response", message)


def _id(value: Any) -> str | None:
    """An id that Stripe may give as a string or as an expanded object."""
    if isinstance(value, dict):
        value = value.get("id")
    return str(value) if value else None


def _date(timestamp: Any) -> date | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(int(timestamp), UTC).date()


def to_subscription(obj: Mapping[str, Any], operation: str) -> Subscription:
    status = _SUBSCRIPTION_STATUS.get(str(obj.get("status")))
    if status is None:
        raise _unexpected(operation, f"unknown subscription status {obj.get('status')!r}")
    customer_id = _id(obj.get("customer"))
    if not obj.get("id") or customer_id is None or not obj.get("currency"):
        raise _unexpected(operation, "subscription without id, customer or currency")
    return Subscription(
        subscription_id=str(obj["id"]),
        customer_id=customer_id,
        currency=str(obj["currency"]).upper(),
        status=status,
        latest_invoice_id=_id(obj.get("latest_invoice")),
    )


def to_invoice(obj: Mapping[str, Any], lines: list[Mapping[str, Any]], operation: str) -> Invoice:
    currency = str(obj.get("currency") or "").upper()
    customer_id = _id(obj.get("customer"))
    if not obj.get("id") or customer_id is None or not currency:
        raise _unexpected(operation, "invoice without id, customer or currency")
    try:
        status = InvoiceStatus(str(obj.get("status")))
    except ValueError:
        raise _unexpected(operation, f"unknown invoice status {obj.get('status')!r}") from None
    subscription_id = _id(obj.get("subscription"))
    if subscription_id is None:  # API versions from 2025 move it under ``parent``
        parent = obj.get("parent") or {}
        subscription_id = _id((parent.get("subscription_details") or {}).get("subscription"))
    if obj.get("tax") is not None:
        tax_minor = int(obj["tax"])
    else:
        tax_minor = sum(int(t.get("amount") or 0) for t in obj.get("total_taxes") or [])
    return Invoice(
        invoice_id=str(obj["id"]),
        customer_id=customer_id,
        subscription_id=subscription_id,
        currency=currency,
        status=status,
        lines=[
            InvoiceLine(
                description=str(line.get("description") or ""),
                amount=_stripe_decimal(int(line["amount"]), currency),
                period_start=_date((line.get("period") or {}).get("start")),
                period_end=_date((line.get("period") or {}).get("end")),
            )
            for line in lines
        ],
        subtotal=_stripe_decimal(int(obj.get("subtotal") or 0), currency),
        tax=_stripe_decimal(tax_minor, currency),
        total=_stripe_decimal(int(obj.get("total") or 0), currency),
        due_date=_date(obj.get("due_date")),
    )


# Where Stripe's API exponent differs from ISO 4217: ISK is zero-decimal, but Stripe carries
# it as a two-decimal amount whose decimals are always zero.
STRIPE_EXPONENT_OVERRIDES: dict[str, int] = {"ISK": 2}
# A SKU as quote-to-cash uses it for a Stripe product id (domain.quote.Sku).
_SKU = re.compile(r"^[A-Z0-9][A-Z0-9_-]{1,39}$")
MAX_LINE_DESCRIPTION = 500


def stripe_exponent(currency: str) -> int:
    """Decimal places of Stripe's integer amounts in ``currency`` (either case)."""
    code = currency.upper()
    return STRIPE_EXPONENT_OVERRIDES.get(code, MINOR_UNITS[code])


def to_stripe_amount(amount: Decimal, currency: str) -> int:
    """``amount`` as Stripe's integer (cents for USD, yen for JPY, ISK times 100)."""
    return int(quantize(amount, currency.upper()).scaleb(stripe_exponent(currency)))


def _stripe_decimal(value: int, currency: str) -> Decimal:
    return Decimal(value).scaleb(-stripe_exponent(currency))


def from_stripe_amount(value: Any, currency: str, what: str, operation: str) -> Decimal:
    """A Stripe integer amount as a ``Decimal`` in ``currency``'s own places."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise _unexpected(operation, f"{what} is not an integer amount: {value!r}")
    amount = Decimal(value).scaleb(-stripe_exponent(currency))
    exact = quantize(amount, currency)
    if exact != amount:
        raise _reject(
            operation,
            "amount_precision",
            f"{what} {amount} {currency} is finer than the currency's unit",
        )
    return exact


def _local_date(timestamp: Any, zone: tzinfo) -> date | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(int(timestamp), zone).date()


def check_finalized(obj: Mapping[str, Any], operation: str) -> str:
    """The invoice's currency (upper case) when revsync can read it as finalized; rejects a
    draft and a currency revsync does not support."""
    invoice_id = str(obj.get("id") or "?")
    status = obj.get("status")
    if status == "draft":
        raise _reject(
            operation,
            "invoice_draft",
            f"invoice {invoice_id} is a draft: revsync reads an invoice only once it is "
            "finalized (invoice.finalized)",
        )
    currency = str(obj.get("currency") or "").upper()
    if currency not in MINOR_UNITS:
        raise _reject(
            operation,
            "unsupported_currency",
            f"invoice {invoice_id} is in {currency or 'no currency'}, which revsync does not "
            f"support (domain.money lists {len(MINOR_UNITS)} ISO 4217 currencies)",
        )
    return currency


@dataclass(frozen=True)
class _MappedLine:
    line: SubscriptionLine | OneOffLine
    gross_minor: int  # amount net of discounts, tax included where inclusive
    exclusive_tax_minor: int


def _line_product(line: Mapping[str, Any]) -> str | None:
    price = line.get("price")
    if isinstance(price, dict) and price.get("product"):
        return _id(price.get("product"))
    details = (line.get("pricing") or {}).get("price_details") or {}  # API versions from 2025
    return _id(details.get("product"))


def _is_recurring(line: Mapping[str, Any]) -> bool:
    price = line.get("price")
    if isinstance(price, dict) and (
        price.get("type") == "recurring" or price.get("recurring") is not None
    ):
        return True
    parent_type = (line.get("parent") or {}).get("type")  # API versions from 2025
    return line.get("type") == "subscription" or parent_type == "subscription_item_details"


def _map_line(
    line: Mapping[str, Any], invoice_id: str, currency: str, zone: tzinfo, operation: str
) -> _MappedLine:
    line_id = str(line.get("id") or "")
    if not line_id:
        raise _unexpected(operation, f"invoice {invoice_id} has a line without an id")
    product = _line_product(line)
    if product is None:
        raise _reject(
            operation,
            "line_without_product",
            f"invoice {invoice_id} line {line_id} has no price product: revsync books each line "
            "against the SKU of its product",
        )
    if not _SKU.fullmatch(product):
        raise _reject(
            operation,
            "invalid_sku",
            f"invoice {invoice_id} line {line_id} bills product {product!r}, which is not a "
            "revsync SKU (quote-to-cash creates Stripe products with the SKU as their id)",
        )
    amount = line.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise _unexpected(operation, f"line {line_id} amount is not an integer: {amount!r}")
    discount = sum(int(d.get("amount") or 0) for d in line.get("discount_amounts") or [])
    taxes = [t for t in (line.get("tax_amounts") or line.get("taxes") or []) if t]
    tax = sum(int(t.get("amount") or 0) for t in taxes)
    inclusive = sum(
        int(t.get("amount") or 0)
        for t in taxes
        if t.get("inclusive") is True or t.get("tax_behavior") == "inclusive"
    )
    what = f"invoice {invoice_id} line {line_id}"
    fields: dict[str, Any] = {
        "line_id": line_id,
        "sku": product,
        "description": str(line.get("description") or "")[:MAX_LINE_DESCRIPTION],
        "amount": from_stripe_amount(amount - discount - inclusive, currency, what, operation),
        "tax_amount": from_stripe_amount(tax, currency, f"{what} tax", operation),
    }
    period = line.get("period") or {}
    start = _local_date(period.get("start"), zone)
    end = _local_date(period.get("end"), zone)
    mapped: SubscriptionLine | OneOffLine
    try:
        if _is_recurring(line) and start is not None and end is not None and end > start:
            mapped = SubscriptionLine(**fields, service_start=start, service_end=end)
        elif _is_recurring(line):
            mapped = OneOffLine(**fields, delivery_date=start)
        else:
            mapped = OneOffLine(**fields)
    except ValidationError as error:
        raise _reject(operation, "invalid_line", f"{what}: {_problems(error)}") from None
    return _MappedLine(mapped, amount - discount, tax - inclusive)


def _problems(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" if e["loc"] else e["msg"]
        for e in error.errors()
    )


def finalized_invoice(
    obj: Mapping[str, Any],
    lines: list[Mapping[str, Any]],
    customer: Mapping[str, Any],
    *,
    zone: tzinfo = UTC,
    operation: str = "get_invoice",
) -> FinalizedInvoice:
    """Stripe's invoice (with every line and its customer) as the canonical invoice. See the
    module docstring for the rules; every refusal is a :class:`RejectedError` saying why."""
    currency = check_finalized(obj, operation)
    invoice_id = str(obj.get("id") or "")
    if not invoice_id:
        raise _unexpected(operation, "invoice without an id")
    try:
        status = InvoiceStatus(str(obj.get("status")))
    except ValueError:
        raise _unexpected(operation, f"unknown invoice status {obj.get('status')!r}") from None
    customer_id = _id(customer) or "?"
    if customer.get("deleted") is True:
        raise _reject(
            operation,
            "customer_deleted",
            f"invoice {invoice_id} bills customer {customer_id}, which is deleted in Stripe",
        )
    account_id = (customer.get("metadata") or {}).get("revsync_account_id")
    if not account_id:
        raise _reject(
            operation,
            "no_account_id",
            f"invoice {invoice_id} bills Stripe customer {customer_id}, which has no "
            "metadata.revsync_account_id: revsync posts invoices of the customers "
            "quote-to-cash created for a CRM account",
        )
    mapped = [_map_line(line, invoice_id, currency, zone, operation) for line in lines]
    if not mapped:
        raise _reject(operation, "no_lines", f"invoice {invoice_id} has no lines")
    expected = sum(m.gross_minor + m.exclusive_tax_minor for m in mapped)
    if obj.get("total") != expected:
        raise _reject(
            operation,
            "amount_mismatch",
            f"invoice {invoice_id}: its lines net of discounts plus exclusive tax come to "
            f"{expected} but Stripe's total is {obj.get('total')} (minor units of {currency}); "
            "revsync does not book an invoice it cannot account for line by line",
        )
    transitions = obj.get("status_transitions") or {}
    issued = obj.get("effective_at") or transitions.get("finalized_at") or obj.get("created")
    issue_date = _local_date(issued, zone)
    if issue_date is None:
        raise _unexpected(operation, f"invoice {invoice_id} has no finalization date")
    due_date = _local_date(obj.get("due_date"), zone) or issue_date
    subtotal = sum((m.line.amount for m in mapped), Decimal(0))
    tax = sum((m.line.tax_amount for m in mapped), Decimal(0))
    try:
        return FinalizedInvoice(
            invoice_id=invoice_id,
            account_id=str(account_id),
            currency=currency,
            issue_date=issue_date,
            due_date=due_date,
            status=status,
            lines=[m.line for m in mapped],
            subtotal=subtotal,
            tax=tax,
            total=subtotal + tax,
        )
    except ValidationError as error:
        raise _reject(
            operation, "invalid_invoice", f"invoice {invoice_id}: {_problems(error)}"
        ) from None


# Stripe's largest list page.
MAX_LIST_LIMIT = 100
_OBJECT_ID = re.compile(r"^[A-Za-z]+_[A-Za-z0-9]+$")


def _epoch(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if isinstance(value, int) else None


def subscription_record(obj: Mapping[str, Any], changed_at: datetime | None = None) -> OrderRecord:
    """A listed subscription as reconciliation reads it: keyed by ``metadata.revsync_key``,
    naming its quote and CRM account in ``metadata``; live unless canceled."""
    metadata = obj.get("metadata") or {}
    raw = str(obj.get("status"))
    status = _SUBSCRIPTION_STATUS.get(raw)
    return OrderRecord(
        system=System.BILLING,
        record_id=str(obj["id"]),
        key=metadata.get("revsync_key") or None,
        quote_ref=metadata.get("quote_id") or None,
        account_id=metadata.get("account_id") or None,
        customer_id=_id(obj.get("customer")),
        currency=str(obj.get("currency") or "").upper() or None,
        status=status.value if status is not None else raw,
        live=status is not SubscriptionStatus.CANCELED,
        created_at=_epoch(obj.get("created")),
        changed_at=changed_at,
    )


def customer_record(obj: Mapping[str, Any], changed_at: datetime | None = None) -> CustomerRecord:
    """A listed customer as reconciliation reads it: linked to the CRM account in
    ``metadata.revsync_account_id``, with the golden fields billing holds."""
    metadata = obj.get("metadata") or {}
    return CustomerRecord(
        system=System.BILLING,
        record_id=str(obj["id"]),
        account_id=metadata.get(ACCOUNT_METADATA_KEY) or None,
        fields=fingerprints(changes_from_customer(obj, None)),
        created_at=_epoch(obj.get("created")),
        changed_at=changed_at,
    )


# Invoice statuses reconciliation compares: finalized ones (a draft is not yet an invoice).
FINALIZED_INVOICE_STATUSES = frozenset({"open", "paid", "void", "uncollectible"})


def invoice_record(
    obj: Mapping[str, Any], operation: str, changed_at: datetime | None = None
) -> InvoiceRecord:
    """A listed (finalized) invoice as reconciliation reads it, amounts in major units."""
    currency = str(obj.get("currency") or "").upper()
    return InvoiceRecord(
        system=System.BILLING,
        record_id=str(obj["id"]),
        invoice_id=str(obj["id"]),
        amount=from_stripe_amount(obj.get("total"), currency, "invoice total", operation),
        currency=currency,
        amount_due=from_stripe_amount(
            obj.get("amount_remaining"), currency, "amount remaining", operation
        ),
        status=str(obj.get("status")),
        created_at=_epoch(obj.get("created")),
        changed_at=changed_at,
    )


def _oldest(objects: list[dict[str, Any]]) -> dict[str, Any] | None:
    return min(objects, key=lambda o: int(o.get("created") or 0)) if objects else None


def _created_in(window: Window | None) -> dict[str, str]:
    """A list's ``created[gte]``/``created[lt]`` filter (Stripe's times are whole seconds)."""
    if window is None:
        return {}
    return {
        "created[gte]": str(int(window.start.timestamp())),
        "created[lt]": str(int(window.end.timestamp())),
    }


# --- the adapter ----------------------------------------------------------------------------


class StripeBilling:
    """``BillingPort`` on Stripe. See the module docstring for keys, money and edge cases."""

    vendor = VENDOR

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        api_key: str,
        accounting_timezone: str = "UTC",
    ) -> None:
        self._http = VendorHttp(VENDOR, http, classify_stripe_error)
        self._base = base_url.rstrip("/") + "/v1"
        self._api_key = api_key
        # Invoice timestamps become calendar dates (service periods, issue and due dates) here.
        self._zone = ZoneInfo(accounting_timezone)

    def __repr__(self) -> str:  # never shows the key
        return f"StripeBilling(base_url={self._base!r})"

    def _url(self, *segments: str) -> str:
        return "/".join([self._base, *(url_quote(s, safe="") for s in segments)])

    async def _call(
        self,
        operation: str,
        method: str,
        url: str,
        *,
        form: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        headers = {
            "Authorization": f"Bearer {self._api_key}",
            "Stripe-Version": STRIPE_API_VERSION,
        }
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        response = await self._http.request(
            operation, method, url, form=form, params=params, headers=headers, ok=(200,)
        )
        try:
            body = decode_json(response)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise _unexpected(operation, "answer is not a JSON object")
        return body

    async def _search(self, operation: str, resource: str, field: str, value: str) -> Any:
        body = await self._call(
            operation,
            "GET",
            self._url(resource, "search"),
            params={"query": search_query(field, value), "limit": "10"},
        )
        data = body.get("data")
        return _oldest([o for o in data if isinstance(o, dict)] if isinstance(data, list) else [])

    # customers

    async def upsert_customer(self, customer: Customer, idempotency_key: str) -> str:
        """The account's customer: found by the search, else created under the *account's*
        key (:func:`customer_idempotency_key`; the caller's per-saga ``idempotency_key`` is
        not used, see the module docstring)."""
        found = await self._search(
            "search_customers", "customers", ACCOUNT_METADATA_KEY, customer.account_id
        )
        if found is not None:
            return str(found["id"])
        try:
            created = await self._call(
                "create_customer",
                "POST",
                self._url("customers"),
                form=customer_form(customer),
                idempotency_key=customer_idempotency_key(customer.account_id),
            )
        except RejectedError as error:
            if error.code != "idempotency_error":
                raise
            # Another saga of this account created the customer with the account's data as
            # it then was; the search finds it once Stripe has indexed it.
            raise TransientError(
                VENDOR,
                "create_customer",
                f"the customer of account {customer.account_id} was created by another "
                "request with other data (idempotency_error); waiting for Stripe Search to "
                f"index it: {error.message}",
                status=error.status,
                code=error.code,
                retry_after=SEARCH_LAG_SECONDS,
            ) from error
        return str(created["id"])

    async def find_customer(self, account_id: str) -> str | None:
        """The billing customer of a CRM account (``metadata.revsync_account_id``), oldest
        first; None when there is none yet (or Stripe Search has not indexed it yet)."""
        found = await self._search(
            "search_customers", "customers", ACCOUNT_METADATA_KEY, account_id
        )
        return None if found is None else str(found["id"])

    async def link_customer(self, customer_id: str, golden_id: str, idempotency_key: str) -> None:
        """Adoption: set ``metadata.revsync_account_id`` on a customer revsync did not create
        (metadata keys merge on an update), so ``find_customer`` finds it once Stripe Search
        has indexed it; under ``Idempotency-Key``, a retry replays the first answer."""
        await self._call(
            "link_customer",
            "POST",
            self._url("customers", customer_id),
            form={f"metadata[{ACCOUNT_METADATA_KEY}]": golden_id},
            idempotency_key=idempotency_key,
        )

    async def update_customer_fields(
        self, customer_id: str, changes: Mapping[MasterField, FieldValue], idempotency_key: str
    ) -> None:
        """Write golden fields onto the customer (see :mod:`adapters.billing.stripe_fields`)
        under ``Idempotency-Key``: a retry replays the first answer."""
        operation = "update_customer_fields"
        try:
            form = customer_update_form(changes)
        except ValueError as error:
            raise _reject(operation, "not_writable", str(error)) from None
        await self._call(
            operation,
            "POST",
            self._url("customers", customer_id),
            form=form,
            idempotency_key=idempotency_key,
        )

    # subscriptions

    async def find_subscription(self, idempotency_key: str) -> Subscription | None:
        found = await self._search(
            "search_subscriptions", "subscriptions", "revsync_key", idempotency_key
        )
        return None if found is None else to_subscription(found, "search_subscriptions")

    async def _ensure_product(self, sku: str, name: str, idempotency_key: str) -> None:
        try:
            await self._call("get_product", "GET", self._url("products", sku))
            return
        except NotFoundError:
            pass
        try:
            await self._call(
                "create_product",
                "POST",
                self._url("products"),
                form={"id": sku, "name": name, "metadata[sku]": sku},
                idempotency_key=idempotency_key,
            )
        except RejectedError as error:
            if error.code != "resource_already_exists":
                raise

    async def create_subscription(self, draft: SubscriptionDraft, customer_id: str) -> Subscription:
        existing = await self.find_subscription(draft.idempotency_key)
        if existing is not None:
            return existing
        form = subscription_form(draft, customer_id)  # rejects what Stripe would refuse
        products: dict[str, str] = {}
        for line in [*draft.recurring_lines, *draft.one_time_lines]:
            products.setdefault(line.sku, line.description or line.sku)
        for sku, name in products.items():
            await self._ensure_product(sku, name, f"{draft.idempotency_key}:product:{sku}")
        created = await self._call(
            "create_subscription",
            "POST",
            self._url("subscriptions"),
            form=form,
            idempotency_key=draft.idempotency_key,
        )
        return to_subscription(created, "create_subscription")

    async def cancel_subscription(self, subscription_id: str, reason: str) -> Subscription:
        current = await self._call(
            "get_subscription", "GET", self._url("subscriptions", subscription_id)
        )
        subscription = to_subscription(current, "get_subscription")
        if subscription.status is SubscriptionStatus.CANCELED:
            return subscription
        try:
            canceled = await self._call(
                "cancel_subscription",
                "DELETE",
                self._url("subscriptions", subscription_id),
                params={
                    "prorate": "false",
                    "invoice_now": "false",
                    "cancellation_details[comment]": reason[:MAX_COMMENT],
                },
            )
        except RejectedError:
            # A concurrent cancel may have won the race: then it is done.
            again = await self._call(
                "get_subscription", "GET", self._url("subscriptions", subscription_id)
            )
            if to_subscription(again, "get_subscription").status is SubscriptionStatus.CANCELED:
                return to_subscription(again, "get_subscription")
            raise
        return to_subscription(canceled, "cancel_subscription")

    async def list_subscriptions(
        self, cursor: str | None, page_size: int, *, window: Window | None = None
    ) -> Page[OrderRecord]:
        """One page of every subscription, canceled ones included (``status=all``), newest
        first; the cursor is the last subscription id (``starting_after``). In a ``created``
        window: ``created[gte]``/``created[lt]``; in a ``changed`` one: the objects of the
        window's ``customer.subscription.*`` events (:meth:`_changes`)."""
        operation = "list_subscriptions"
        if window is not None and window.basis is Basis.CHANGED:
            changes, after = await self._changes(
                operation, "subscriptions", window, cursor, page_size
            )
            return Page(
                items=[subscription_record(o, changed_at=at) for o, at in changes], cursor=after
            )
        data, after = await self._list_page(
            operation,
            "subscriptions",
            cursor,
            page_size,
            {"status": "all", **_created_in(window)},
        )
        return Page(items=[subscription_record(o) for o in data], cursor=after)

    async def lookup_subscriptions(self, quote_ids: list[str]) -> list[OrderRecord]:
        """Every subscription naming one of these quotes (``metadata.quote_id``), by Stripe
        Search, ten quotes a query. Search lags writes (under a minute normally): a window
        ends ``settle_seconds`` before its run started for that."""
        found = await self._search_all(
            "search_subscriptions", "subscriptions", "quote_id", quote_ids
        )
        return [subscription_record(o) for o in found]

    async def list_customers(
        self, cursor: str | None, page_size: int, *, window: Window | None = None
    ) -> Page[CustomerRecord]:
        """One page of every customer, newest first (``starting_after`` as the cursor); in a
        window as :meth:`list_subscriptions` (``customer.created``/``updated``/``deleted``)."""
        operation = "list_customers"
        if window is not None and window.basis is Basis.CHANGED:
            changes, after = await self._changes(operation, "customers", window, cursor, page_size)
            return Page(
                items=[customer_record(o, changed_at=at) for o, at in changes], cursor=after
            )
        data, after = await self._list_page(
            operation, "customers", cursor, page_size, _created_in(window)
        )
        return Page(items=[customer_record(o) for o in data], cursor=after)

    async def lookup_customers(self, account_ids: list[str]) -> list[CustomerRecord]:
        """The customers of these CRM accounts (``metadata.revsync_account_id``), by
        Stripe Search, ten accounts a query."""
        found = await self._search_all(
            "search_customers", "customers", ACCOUNT_METADATA_KEY, account_ids
        )
        return [customer_record(o) for o in found]

    async def list_invoices(
        self, cursor: str | None, page_size: int, *, window: Window | None = None
    ) -> Page[InvoiceRecord]:
        """One page of every invoice, newest first; drafts are read past, not returned. In
        a window as :meth:`list_subscriptions` (``invoice.*`` events)."""
        operation = "list_invoices"
        if window is not None and window.basis is Basis.CHANGED:
            changes, after = await self._changes(operation, "invoices", window, cursor, page_size)
            return Page(
                items=[
                    invoice_record(o, operation, changed_at=at)
                    for o, at in changes
                    if o.get("status") in FINALIZED_INVOICE_STATUSES
                ],
                cursor=after,
            )
        data, after = await self._list_page(
            operation, "invoices", cursor, page_size, _created_in(window)
        )
        items = [
            invoice_record(o, operation)
            for o in data
            if o.get("status") in FINALIZED_INVOICE_STATUSES
        ]
        return Page(items=items, cursor=after)

    async def lookup_invoices(self, invoice_ids: list[str]) -> list[InvoiceRecord]:
        """These invoices, finalized ones only: ``GET /v1/invoices/<id>`` each (Stripe has
        no batch read, and Search has no id field); one Stripe does not know is absent."""
        operation = "lookup_invoices"
        found: list[InvoiceRecord] = []
        for invoice_id in invoice_ids:
            if not _OBJECT_ID.fullmatch(invoice_id):
                continue
            try:
                invoice = await self._call(operation, "GET", self._url("invoices", invoice_id))
            except NotFoundError:
                continue
            if invoice.get("status") in FINALIZED_INVOICE_STATUSES:
                found.append(invoice_record(invoice, operation))
        return found

    async def _search_all(
        self, operation: str, resource: str, field: str, values: list[str]
    ) -> list[dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(values), MAX_SEARCH_CLAUSES):
            batch = values[start : start + MAX_SEARCH_CLAUSES]
            params: dict[str, str] = {"query": any_of_query(field, batch), "limit": "100"}
            while True:
                body = await self._call(
                    operation, "GET", self._url(resource, "search"), params=params
                )
                data = body.get("data")
                if not isinstance(data, list):
                    raise _unexpected(operation, "search answer without data")
                for obj in data:
                    if isinstance(obj, dict) and obj.get("id"):
                        found[str(obj["id"])] = obj
                following = body.get("next_page")
                if not body.get("has_more") or not isinstance(following, str):
                    break
                params = {**params, "page": following}
        return list(found.values())

    async def _changes(
        self,
        operation: str,
        resource: str,
        window: Window,
        cursor: str | None,
        page_size: int,
    ) -> tuple[list[tuple[dict[str, Any], datetime]], str | None]:
        """One page of the events about ``resource`` created in the window (``GET
        /v1/events``, newest first, ``created[gte]``/``created[lt]``), as the objects they
        carry, each with its event's time: the object as that event left it (the newest in
        the page for an object changed twice). Stripe objects carry no update time, and
        Stripe keeps events 30 days: a window starting earlier cannot be read, and says so."""
        now = datetime.now(UTC)
        if window.start < now - EVENTS_KEPT:
            raise _reject(
                operation,
                "events_expired",
                f"Stripe keeps events for 30 days; changes since {window.start:%Y-%m-%d} "
                "cannot be listed: run a full reconciliation (revsync reconcile --now --full)",
            )
        params = {
            "limit": str(min(max(page_size, 1), MAX_LIST_LIMIT)),
            **CHANGE_EVENTS[resource],
            **_created_in(window),
        }
        if cursor is not None:
            if not _OBJECT_ID.fullmatch(cursor):
                raise _reject(operation, "invalid_cursor", f"{cursor!r} is not a Stripe id")
            params["starting_after"] = cursor
        body = await self._call(operation, "GET", self._url("events"), params=params)
        data = body.get("data")
        if not isinstance(data, list):
            raise _unexpected(operation, "event list answer without data")
        events = [e for e in data if isinstance(e, dict) and e.get("id")]
        seen: dict[str, tuple[dict[str, Any], datetime]] = {}
        for event in events:
            obj = (event.get("data") or {}).get("object")
            if not isinstance(obj, dict) or not obj.get("id") or obj["id"] in seen:
                continue
            at = _epoch(event.get("created"))
            if at is None:
                raise _unexpected(operation, "event without its created time")
            seen[str(obj["id"])] = (obj, at)
        after = str(events[-1]["id"]) if body.get("has_more") and events else None
        return list(seen.values()), after

    async def _list_page(
        self,
        operation: str,
        resource: str,
        cursor: str | None,
        page_size: int,
        extra: Mapping[str, str] | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of a Stripe list (``limit``, ``starting_after``) and the cursor of the
        next one: the last object's id, None after the last page."""
        params = {"limit": str(min(max(page_size, 1), MAX_LIST_LIMIT)), **(extra or {})}
        if cursor is not None:
            if not _OBJECT_ID.fullmatch(cursor):
                raise _reject(operation, "invalid_cursor", f"{cursor!r} is not a Stripe id")
            params["starting_after"] = cursor
        body = await self._call(operation, "GET", self._url(resource), params=params)
        data = body.get("data")
        if not isinstance(data, list):
            raise _unexpected(operation, "list answer without data")
        objects = [o for o in data if isinstance(o, dict) and o.get("id")]
        if body.get("has_more") and objects:
            return objects, str(objects[-1]["id"])
        return objects, None

    # quotes (read by the gateway for Stripe's quote.accepted)

    async def quote_line_items(self, quote_id: str) -> list[dict[str, Any]]:
        """Every line item of a quote, in order: ``GET /v1/quotes/<id>/line_items`` page by
        page (``limit=100``, ``starting_after`` the last id while ``has_more``). A quote's
        ``line_items`` are includable, so a webhook event's quote never carries them ("Retrieve
        a quote's line items", https://docs.stripe.com/api/quotes/line_items/list)."""
        operation = "list_quote_line_items"
        url = self._url("quotes", quote_id, "line_items")
        items: list[dict[str, Any]] = []
        params = {"limit": str(MAX_LIST_LIMIT)}
        while True:
            page = await self._call(operation, "GET", url, params=params)
            data = page.get("data")
            if not isinstance(data, list) or not all(isinstance(i, dict) for i in data):
                raise _unexpected(operation, "line item list answer without data")
            items.extend(data)
            if not page.get("has_more"):
                return items
            if not data or not data[-1].get("id"):
                raise _unexpected(operation, "has_more without a last line item id")
            params = {"limit": str(MAX_LIST_LIMIT), "starting_after": str(data[-1]["id"])}

    # invoices

    async def _invoice_lines(self, invoice: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        """Every line of the invoice: the embedded first page, then the rest, page by page."""
        page = invoice.get("lines") or {}
        lines: list[Mapping[str, Any]] = list(page.get("data") or [])
        while page.get("has_more") and lines:
            page = await self._call(
                "list_invoice_lines",
                "GET",
                self._url("invoices", str(invoice["id"]), "lines"),
                params={"limit": "100", "starting_after": str(lines[-1]["id"])},
            )
            lines.extend(page.get("data") or [])
        return lines

    async def _to_invoice(self, obj: Mapping[str, Any], operation: str) -> Invoice:
        return to_invoice(obj, await self._invoice_lines(obj), operation)

    async def _get_invoice(self, invoice_id: str) -> dict[str, Any]:
        return await self._call("get_invoice", "GET", self._url("invoices", invoice_id))

    async def get_invoice(self, invoice_id: str) -> FinalizedInvoice:
        operation = "get_invoice"
        invoice = await self._call(
            operation, "GET", self._url("invoices", invoice_id), params={"expand[0]": "customer"}
        )
        check_finalized(invoice, operation)  # before reading more pages of a draft
        customer = invoice.get("customer")
        if not isinstance(customer, dict):  # not expanded: read it
            customer_id = _id(customer)
            if customer_id is None:
                raise _unexpected(operation, f"invoice {invoice_id} has no customer")
            customer = await self._call("get_customer", "GET", self._url("customers", customer_id))
        lines = await self._invoice_lines(invoice)
        return finalized_invoice(invoice, lines, customer, zone=self._zone, operation=operation)

    async def void_invoice(self, invoice_id: str) -> Invoice:
        invoice = await self._get_invoice(invoice_id)
        status = invoice.get("status")
        if status == "void" or (status == "paid" and int(invoice.get("total") or 0) == 0):
            return await self._to_invoice(invoice, "void_invoice")
        if status == "paid":
            raise _reject(
                "void_invoice",
                "invoice_paid",
                f"invoice {invoice_id} is paid; it cannot be voided (refund or credit it)",
            )
        try:
            if status == "draft":
                invoice = await self._call(
                    "finalize_invoice",
                    "POST",
                    self._url("invoices", invoice_id, "finalize"),
                    form={"auto_advance": "false"},
                )
                if invoice.get("status") == "paid" and int(invoice.get("total") or 0) == 0:
                    return await self._to_invoice(invoice, "void_invoice")
            voided = await self._call(
                "void_invoice", "POST", self._url("invoices", invoice_id, "void")
            )
        except RejectedError:
            again = await self._get_invoice(invoice_id)
            if again.get("status") == "void":  # voided by a concurrent call
                return await self._to_invoice(again, "void_invoice")
            raise
        return await self._to_invoice(voided, "void_invoice")
