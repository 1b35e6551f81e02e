"""A Stripe API emulator (the v1 subset revsync uses, in the object shapes of API version
2024-06-20), mounted by :mod:`sandbox.app` at ``/stripe``, so the real adapter runs against it
unchanged. Every rule below follows Stripe's public documentation (cited inline;
docs/vendor-fidelity.md lists them with the tests that hold them); the emulator imports no
adapter code.

What it keeps faithful:

- **Wire format**: form-encoded bodies in bracket notation (``items[0][price_data][currency]``,
  ``expand[]``) parsed into nested objects; unknown or malformed parameters are refused with
  Stripe's ``{"error": {"type", "code", "message", "param"}}`` body; JSON answers.
- **Auth** ("Authentication", https://docs.stripe.com/api/authentication): ``Authorization:
  Bearer <key>`` or HTTP basic with the key as user; anything else is a 401
  ``invalid_request_error``.
- **Idempotency** (per API key, POST only; "Idempotent requests",
  https://docs.stripe.com/api/idempotent_requests): the first answer (status and body) to an
  ``Idempotency-Key`` is stored and replayed for a repeat with the same parameters, with
  ``Idempotent-Replayed: true``; the same key with other parameters (or on another endpoint)
  is a 400 ``idempotency_error``; a repeat while the first is still executing is a 409
  ``idempotency_key_in_use`` with ``Stripe-Should-Retry: true``. Stripe saves a result only
  once the endpoint began to execute: a request refused in parameter validation (a 400
  naming its ``param``) is not stored, nor is a 5xx (Stripe itself replays 500s; not
  storing them lets a retry succeed, as a transient fault should), so a retry can succeed.
  Stripe prunes keys after 24 hours: a test clears ``StripeStore.idempotency`` to model
  that. A replayed answer skips the fault hooks: it is the stored response.
- **Lists**: ``GET /v1/subscriptions``, ``/v1/customers`` and ``/v1/invoices`` page newest
  first with ``limit`` (at most 100), ``starting_after`` and ``has_more``; ``created``
  (``created[gte]``, ``[gt]``, ``[lt]``, ``[lte]``) filters ("List all subscriptions" and
  the like); a subscription's ``status`` filters (canceled ones only with ``all`` or
  ``canceled``), as Stripe's list endpoints do. Objects are kept ordered by creation, so a
  page costs what it returns, not what the account holds.
- **Events** ("The Event object", "List all events", https://docs.stripe.com/api/events):
  every write records its event (``customer.created``/``updated``,
  ``customer.subscription.created``/``updated``/``deleted``, ``invoice.created``,
  ``invoice.finalized``, ``invoice.paid``, ``invoice.voided``) with the object as the write
  left it; ``GET /v1/events`` lists them newest first with ``limit``, ``starting_after``,
  ``type`` (``*`` as a wildcard: ``invoice.*``) or ``types`` (up to 20), and ``created``
  filters, going back 30 days (older events are gone). Objects seeded in bulk
  (``StripeStore.bulk_add``) carry no events: they are older than that.
- **Search** ("Search", https://docs.stripe.com/search; "Search query language"):
  ``/v1/customers/search`` and ``/v1/subscriptions/search`` accept only
  ``metadata['key']:'value'`` clauses (quotes escaped with a backslash), up to ten joined by
  ``OR``; ``limit`` up to 100 and ``page`` (``next_page``) page the results. Like
  Stripe's, search can lag behind writes (under a minute normally, more in an outage):
  set ``StripeStore.search_lag_seconds`` to hide new objects from search for that long.
- **Subscriptions**: all items must share one currency and one billing interval; creating one
  creates its first invoice (first period of every item plus the ``add_invoice_items``),
  open, or paid at once when it comes to zero. Amounts are integers in minor units;
  ``unit_amount_decimal * quantity`` is rounded half up per line.
- **Invoices**: ``finalize`` only from draft; ``void`` only from open or uncollectible;
  ``pay`` only with ``paid_out_of_band=true`` (the sandbox has no payment methods). Responses
  embed the first 10 lines; ``/v1/invoices/<id>/lines`` pages through the rest.
  ``GET /v1/invoices/<id>`` takes ``expand[]=customer`` (any other expansion is a 400). Lines
  carry what Stripe's do for revenue: ``period`` (start, exclusive end), ``price`` with its
  ``type`` and ``recurring``, ``amount`` before discounts (tax included when inclusive),
  ``discount_amounts``, ``tax_amounts`` (``inclusive``), ``subscription``; invoices carry
  ``subtotal`` (net of line discounts), ``tax``, ``total`` (plus exclusive tax),
  ``effective_at``, ``due_date`` and ``status_transitions``.
- **Quotes** ("The Quote object", "Retrieve a quote's line items",
  https://docs.stripe.com/api/quotes/line_items/list; "Expanding responses",
  https://docs.stripe.com/expand): ``GET /v1/quotes/<id>`` answers without the includable
  ``line_items`` and ``computed.upfront.line_items`` unless ``expand[]`` asks for them (then
  their first 10, ``has_more`` and the list ``url``); ``GET /v1/quotes/<id>/line_items`` (and
  ``computed_upfront_line_items``) is a list (``object``, ``data``, ``has_more``, ``url``) in
  quote order with ``limit`` (1 to 100, default 10), ``starting_after``, ``ending_before``,
  each item's ``discounts`` and ``taxes`` only with ``expand[]=data.discounts`` /
  ``data.taxes``. Line items (``object: item``) carry ``amount_subtotal`` (quantity times
  unit amount), ``amount_discount``, ``amount_tax``, ``amount_total`` and the full ``price``.
  Accepting a quote does not create its invoice and subscription here (Stripe does).
- **Events** ("Receive Stripe events in your webhook endpoint",
  https://docs.stripe.com/webhooks): :meth:`StripeStore.quote_event` renders the envelope
  (``id``, ``object: event``, ``api_version``, ``created``, ``data.object``, ``livemode``,
  ``pending_webhooks``, ``request``, ``type``) with the quote as the API renders it *without
  expansion*: no event carries an includable property. :func:`sign_event` signs a payload
  the way Stripe signs a delivery (``Stripe-Signature: t=<timestamp>,v1=<hex HMAC-SHA256 of
  "<timestamp>.<payload>" keyed with the endpoint secret>``), with the emulator's own code.
- **Sandbox-made quotes** (``POST /_sandbox/stripe/quotes``, and
  ``POST /_sandbox/stripe/quotes/<id>/events`` for a signed delivery; not Stripe's API, no
  auth, no faults): see :class:`SandboxQuote` and :class:`QuoteEventRequest`.
- **Sandbox-made invoices** (``POST /_sandbox/stripe/invoices``, not Stripe's API; no auth, no
  faults): an invoice with given lines (product = SKU, quantity, unit amount in minor units,
  recurring interval, period, discount, tax, inclusive or not), for a customer id or for a
  CRM ``account_id`` (the customer with that ``metadata.revsync_account_id``, created when
  missing); open (default), paid or draft. See :class:`SandboxInvoice`.

Operations, as named for fault injection (``POST /_sandbox/faults`` with vendor ``stripe``):
``search_customers``, ``get_customer``, ``create_customer``, ``update_customer``,
``get_product``,
``create_product``, ``search_subscriptions``, ``list_subscriptions``, ``get_subscription``,
``list_events``,
``create_subscription``, ``update_subscription``, ``cancel_subscription``, ``get_invoice``,
``list_invoice_lines``, ``list_customers``, ``list_invoices``,
``finalize_invoice``, ``void_invoice``, ``pay_invoice``, ``get_quote``,
``list_quote_line_items``, ``list_quote_upfront_line_items``. Injected faults answer in Stripe's
format: 402 is a ``card_error`` (``card_declined`` with ``decline_code`` ``generic_decline``
unless another code is given), 409 carries ``Stripe-Should-Retry: true``, 429 is
``rate_limit``, 5xx is an ``api_error``.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import calendar
import copy
import hashlib
import hmac
import json
import re
import secrets
import string
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_start
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Literal, Self
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from sandbox.faults import VendorFaults
from sandbox.wire import bearer_token, json_response

if TYPE_CHECKING:
    from sandbox.app import SandboxState

VENDOR = "stripe"
# Stripe's presentment currencies and how many decimals its integer amounts carry, from
# "Supported currencies" (https://docs.stripe.com/currencies): amounts are in the currency's
# minor unit; the zero-decimal currencies carry none; the three-decimal ones three. ISK is a
# special case there: zero-decimal in ISO 4217, but the API takes it with two decimals (which
# must be zero), so it is a two-decimal currency here. The emulator's own table: it never
# reads revsync's (domain.money, the adapter's exponents).
CURRENCIES = frozenset(
    """
    usd aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bhd bif bmd bnd bob brl bsd
    bwp byn bzd cad cdf chf clp cny cop crc cve czk djf dkk dop dzd egp etb eur fjd fkp gbp
    gel gip gmd gnf gtq gyd hkd hnl htg huf idr ils inr isk jmd jod jpy kes kgs khr kmf krw
    kwd kyd kzt lak lbp lkr lrd lsl mad mdl mga mkd mmk mnt mop mur mvr mwk mxn myr mzn nad
    ngn nio nok npr nzd omr pab pen pgk php pkr pln pyg qar ron rsd rub rwf sar sbd scr sek
    sgd shp sle sos srd std szl thb tjs tnd top try ttd twd tzs uah ugx uyu uzs vnd vuv wst
    xaf xcd xof xpf yer zar zmw
    """.split()  # noqa: SIM905 (the docs' list, as written there)
)
ZERO_DECIMAL_CURRENCIES = frozenset(
    "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split()  # noqa: SIM905
)
THREE_DECIMAL_CURRENCIES = frozenset(("bhd", "jod", "kwd", "omr", "tnd"))


def currency_decimals(currency: str) -> int:
    """Decimal places of Stripe's integer amounts in ``currency`` (either case)."""
    code = currency.lower()
    if code in ZERO_DECIMAL_CURRENCIES:
        return 0
    if code in THREE_DECIMAL_CURRENCIES:
        return 3
    return 2


INTERVALS = frozenset({"day", "week", "month", "year"})
TAX_ID_TYPES = frozenset(
    {"eu_vat", "gb_vat", "us_ein", "jp_trn", "ca_bn", "ca_gst_hst", "au_abn", "ch_vat"}
)
MAX_ITEMS = 20
# The API version whose object shapes the emulator answers with (and stamps on events).
API_VERSION = "2024-06-20"
EMBEDDED_LINES = 10
Json = dict[str, Any]


# --- errors ---------------------------------------------------------------------------------


class StripeError(Exception):
    """An error answer in Stripe's format."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.decline_code = decline_code
        self.headers = dict(headers or {})

    @property
    def invalid_parameter(self) -> bool:
        """A 400 naming the parameter it refuses: the request failed validation, before the
        endpoint began to execute, so Stripe saves no idempotent result for it."""
        return self.status == 400 and self.type == "invalid_request_error" and bool(self.param)

    def body(self) -> Json:
        error: Json = {"type": self.type, "message": self.message}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param:
            error["param"] = self.param
        if self.decline_code:
            error["decline_code"] = self.decline_code
        return {"error": error}

    def response(self) -> Response:
        return json_response(self.body(), self.status, _with_request_id(self.headers))


def _invalid(message: str, param: str | None = None, code: str | None = None) -> StripeError:
    return StripeError(400, message, param=param, code=code)


def _missing(kind: str, object_id: str, param: str | None = None, status: int = 404) -> StripeError:
    return StripeError(
        status, f"No such {kind}: '{object_id}'", code="resource_missing", param=param
    )


def fault_response(status: int, code: str | None, message: str) -> Response:
    """An injected fault, answered the way Stripe answers that status."""
    if status == 402:
        code = code or "card_declined"
        decline = "generic_decline" if code == "card_declined" else None
        return StripeError(
            status, message, type="card_error", code=code, decline_code=decline
        ).response()
    if status == 409:
        return StripeError(
            status,
            message,
            code=code or "idempotency_key_in_use",
            headers={"Stripe-Should-Retry": "true"},
        ).response()
    if status == 429:
        return StripeError(status, message, code=code or "rate_limit").response()
    if status == 404:
        return StripeError(status, message, code=code or "resource_missing").response()
    if status >= 500:
        return StripeError(status, message, type="api_error", code=code).response()
    return StripeError(status, message, code=code).response()


def _with_request_id(headers: Mapping[str, str] | None = None) -> dict[str, str]:
    return {"Request-Id": new_id("req"), **(headers or {})}


# --- form bodies ----------------------------------------------------------------------------

_KEY = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])*)")
_SEGMENT = re.compile(r"\[([^\[\]]*)\]")


def _key_path(key: str) -> list[str]:
    match = _KEY.fullmatch(key)
    if match is None:
        raise _invalid(f"Invalid parameter name: {key}", param=key)
    return [match.group(1), *_SEGMENT.findall(match.group(2))]


def _listify(node: Any, name: str) -> Any:
    """Dicts whose keys are all indexes become lists (indexes must run 0, 1, 2, ...)."""
    if not isinstance(node, dict):
        return node
    if node and all(k.isdigit() for k in node):
        indexes = sorted(int(k) for k in node)
        if indexes != list(range(len(indexes))):
            raise _invalid(f"Invalid array: indexes of {name} must start at 0 and be contiguous")
        return [_listify(node[str(i)], f"{name}[{i}]") for i in indexes]
    return {k: _listify(v, f"{name}[{k}]") for k, v in node.items()}


def parse_form(pairs: list[tuple[str, str]]) -> Json:
    """Stripe's bracket notation as nested objects: ``a[b][0][c]=1`` → ``{"a": {"b": [{"c":
    "1"}]}}``; ``a[]=x&a[]=y`` → ``{"a": ["x", "y"]}``. Every leaf stays a string."""
    root: Json = {}
    for key, value in pairs:
        path = _key_path(key)
        node: Json = root
        for depth, part in enumerate(path):
            if part == "":  # ``[]`` appends
                part = str(len(node))
            if depth == len(path) - 1:
                if isinstance(node.get(part), dict):
                    raise _invalid(f"Invalid value for {key}: expected an object", param=key)
                node[part] = value
                break
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise _invalid(f"Invalid object: {key} mixes a value and an object", param=key)
            node = child
    return {k: _listify(v, k) for k, v in root.items()}


# --- parameter checks -----------------------------------------------------------------------


def _known(params: Mapping[str, Any], allowed: set[str], prefix: str = "") -> None:
    for name in params:
        if name not in allowed:
            full = f"{prefix}[{name}]" if prefix else name
            raise _invalid(f"Received unknown parameter: {full}", param=full)


def _obj(value: Any, param: str) -> Json:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _invalid(f"Invalid object: {param} must be a hash", param=param)
    return value


def _list(value: Any, param: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _invalid(f"Invalid array: {param} must be an array", param=param)
    return value


def _str(value: Any, param: str, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise _invalid(f"Missing required param: {param}.", param=param)
        return None
    if not isinstance(value, str):
        raise _invalid(f"Invalid string: {param}", param=param)
    if required and not value:
        raise _invalid(f"Missing required param: {param}.", param=param)
    return value


def _int(value: Any, param: str, *, minimum: int = 0, default: int | None = None) -> int:
    if value is None:
        if default is None:
            raise _invalid(f"Missing required param: {param}.", param=param)
        return default
    if not isinstance(value, str) or not re.fullmatch(r"-?\d+", value):
        raise _invalid(f"Invalid integer: {value}", param=param)
    number = int(value)
    if number < minimum:
        raise _invalid(f"Invalid {param}: must be at least {minimum}", param=param)
    return number


def _bool(value: Any, param: str, default: bool) -> bool:
    if value is None:
        return default
    if value not in ("true", "false"):
        raise _invalid(f"Invalid boolean: {value}", param=param)
    return bool(value == "true")


def _currency(value: Any, param: str) -> str:
    code = (_str(value, param, required=True) or "").lower()
    if code not in CURRENCIES:
        raise _invalid(f"Invalid currency: {code}.", param=param)
    return code


def _unit_amount(price_data: Json, param: str) -> str:
    """``unit_amount`` (integer) or ``unit_amount_decimal`` (≤ 12 places), as a plain string."""
    if price_data.get("unit_amount") is not None:
        if price_data.get("unit_amount_decimal") is not None:
            raise _invalid(
                f"You may only specify one of these parameters: {param}[unit_amount], "
                f"{param}[unit_amount_decimal].",
                param=f"{param}[unit_amount]",
            )
        return str(_int(price_data["unit_amount"], f"{param}[unit_amount]"))
    raw = _str(price_data.get("unit_amount_decimal"), f"{param}[unit_amount_decimal]")
    if raw is None:
        raise _invalid(
            f"Missing required param: {param}[unit_amount].", param=f"{param}[unit_amount]"
        )
    try:
        amount = Decimal(raw)
    except InvalidOperation:
        raise _invalid(f"Invalid decimal: {raw}", param=f"{param}[unit_amount_decimal]") from None
    exponent = amount.as_tuple().exponent
    if not amount.is_finite() or amount < 0 or (isinstance(exponent, int) and exponent < -12):
        raise _invalid(
            f"Invalid decimal: {raw} (at most 12 decimal places, not negative)",
            param=f"{param}[unit_amount_decimal]",
        )
    return format(amount.normalize(), "f")


def _metadata(value: Any, param: str = "metadata") -> dict[str, str]:
    data = _obj(value, param)
    if len(data) > 50:
        raise _invalid("Metadata can have at most 50 keys.", param=param)
    for key, item in data.items():
        if not isinstance(item, str):
            raise _invalid(f"Invalid metadata value for {key}", param=f"{param}[{key}]")
        if len(key) > 40 or len(item) > 500:
            raise _invalid(
                "Metadata keys are at most 40 characters and values at most 500.",
                param=f"{param}[{key}]",
            )
    return dict(data)


# --- sandbox-made invoices -------------------------------------------------------------------

# Epoch seconds, or an ISO 8601 date (midnight UTC) or date-time (naive means UTC).
Timestamp = int | datetime | date


def epoch(value: Timestamp) -> int:
    """``value`` as Unix seconds."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return int(aware.timestamp())
    if isinstance(value, date):
        return int(datetime.combine(value, day_start(), UTC).timestamp())
    return int(value)


class SandboxInvoiceLine(BaseModel):
    """One line of an invoice made through ``POST /_sandbox/stripe/invoices``."""

    model_config = ConfigDict(extra="forbid")

    product: str = Field(
        min_length=1,
        max_length=100,
        description="Product id (quote-to-cash uses the SKU); created when it does not exist",
    )
    description: str | None = Field(default=None, max_length=500)
    quantity: int = Field(default=1, ge=1)
    unit_amount: int = Field(
        description="Unit price in Stripe's minor units (cents; yen); negative for a credit"
    )
    recurring: Literal["day", "week", "month", "year"] | None = Field(
        default=None, description="Billing interval of a recurring price; none for one-off"
    )
    period_start: Timestamp | None = Field(
        default=None, description="Defaults to the invoice's finalization time"
    )
    period_end: Timestamp | None = Field(
        default=None,
        description="Exclusive; defaults to one interval after the start (recurring) or the "
        "start (one-off)",
    )
    discount: int = Field(default=0, ge=0, description="Discount on the line, minor units")
    tax: int = Field(default=0, ge=0, description="Tax on the line, minor units")
    tax_inclusive: bool = Field(default=False, description="The unit price includes the tax")
    metadata: dict[str, str] = Field(default_factory=dict)


class SandboxInvoice(BaseModel):
    """Body of ``POST /_sandbox/stripe/invoices``: an invoice with the given lines, as Stripe
    would hold it once finalized (or still a draft)."""

    model_config = ConfigDict(extra="forbid")

    customer: str | None = Field(default=None, description="An existing customer id")
    account_id: str | None = Field(
        default=None,
        description="CRM account id: the customer whose metadata.revsync_account_id it is "
        "(created when there is none)",
    )
    currency: str = Field(pattern=r"^[A-Za-z]{3}$")
    status: Literal["draft", "open", "paid"] = "open"
    finalized_at: Timestamp | None = Field(default=None, description="Defaults to now")
    effective_at: Timestamp | None = Field(
        default=None, description="Stripe's effective_at: the issue date when it differs"
    )
    collection_method: Literal["send_invoice", "charge_automatically"] = "send_invoice"
    days_until_due: int = Field(default=30, ge=0, le=3650)
    due_date: Timestamp | None = Field(default=None, description="Overrides days_until_due")
    subscription: str | None = None
    lines: list[SandboxInvoiceLine] = Field(min_length=1, max_length=250)
    metadata: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_customer(self) -> Self:
        if (self.customer is None) == (self.account_id is None):
            raise ValueError("give exactly one of customer and account_id")
        return self


# --- sandbox-made quotes ---------------------------------------------------------------------


class SandboxQuoteLine(BaseModel):
    """One line of a quote made through ``POST /_sandbox/stripe/quotes``."""

    model_config = ConfigDict(extra="forbid")

    sku: str | None = Field(
        default=None,
        max_length=200,
        description="The price's lookup_key and metadata.sku (revsync reads the SKU there)",
    )
    description: str | None = Field(default=None, max_length=500)
    quantity: int = Field(default=1, ge=1)
    unit_amount: int = Field(ge=0, description="Unit price in Stripe's minor units")
    recurring: Literal["day", "week", "month", "year"] | None = Field(
        default=None, description="Billing interval of a recurring price; none for one-off"
    )
    interval_count: int = Field(default=1, ge=1, le=12)
    discount: int = Field(default=0, ge=0, description="amount_discount, minor units")
    tax: int = Field(default=0, ge=0, description="amount_tax (exclusive), minor units")


class SandboxQuote(BaseModel):
    """Body of ``POST /_sandbox/stripe/quotes``: a quote as a seller would build it in Stripe
    with revsync's conventions (``metadata.crm_account_id``, ``metadata.owner``), accepted
    unless ``status`` says otherwise."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(
        default=None, pattern=r"^qt_[A-Za-z0-9]{1,40}$", description="Defaults to a new id"
    )
    account_id: str | None = Field(default=None, description="metadata.crm_account_id")
    owner: str | None = Field(default="Dana Seller", description="metadata.owner")
    opportunity_id: str | None = Field(default=None, description="metadata.crm_opportunity_id")
    term_months: str | None = Field(default=None, description="metadata.term_months")
    metadata: dict[str, str] = Field(default_factory=dict, description="More metadata")
    currency: str = Field(default="usd", pattern=r"^[A-Za-z]{3}$")
    collection_method: Literal["send_invoice", "charge_automatically"] = "send_invoice"
    days_until_due: int | None = Field(default=30, ge=0, le=3650)
    status: Literal["draft", "open", "accepted", "canceled"] = "accepted"
    accepted_at: Timestamp | None = Field(default=None, description="Defaults to now")
    effective_date: Timestamp | None = Field(
        default=None, description="subscription_data.effective_date"
    )
    customer: str | None = Field(
        default=None, description="An existing customer id; one is created when absent"
    )
    lines: list[SandboxQuoteLine] = Field(min_length=1, max_length=250)


def _quote_totals(lines: list[Json]) -> Json:
    """``amount_subtotal``, ``amount_total`` and ``total_details`` of some quote lines."""
    discount = sum(int(line["amount_discount"]) for line in lines)
    tax = sum(int(line["amount_tax"]) for line in lines)
    return {
        "amount_subtotal": sum(int(line["amount_subtotal"]) for line in lines),
        "amount_total": sum(int(line["amount_total"]) for line in lines),
        "total_details": {"amount_discount": discount, "amount_shipping": 0, "amount_tax": tax},
    }


def _without_includables(line: Json, included: Sequence[str]) -> Json:
    """A quote line item as a list renders it: ``discounts`` and ``taxes`` only when
    included."""
    return {
        key: copy.deepcopy(value)
        for key, value in line.items()
        if key not in ("discounts", "taxes") or key in included
    }


def sign_event(secret: str, payload: bytes, timestamp: int) -> str:
    """The ``Stripe-Signature`` header Stripe sends with ``payload``: ``t=<timestamp>`` and
    ``v1=`` the hex HMAC-SHA256, keyed with the endpoint's signing secret (as is), of
    ``"<timestamp>."`` followed by the payload ("Check the webhook signatures",
    https://docs.stripe.com/webhooks#verify-manually)."""
    signed = str(timestamp).encode() + b"." + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class QuoteEventRequest(BaseModel):
    """Body of ``POST /_sandbox/stripe/quotes/<id>/events``."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(default="quote.accepted", pattern=r"^quote\.[a-z_]+$")
    secret: str = Field(min_length=1, description="The endpoint's signing secret (whsec_...)")
    timestamp: int | None = Field(default=None, ge=0, description="Defaults to now")


# --- the store ------------------------------------------------------------------------------

_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str) -> str:
    return f"{prefix}_{''.join(secrets.choice(_ALPHABET) for _ in range(16))}"


def _add_interval(timestamp: int, interval: str, count: int) -> int:
    start = datetime.fromtimestamp(timestamp, UTC)
    if interval == "day":
        return int((start + timedelta(days=count)).timestamp())
    if interval == "week":
        return int((start + timedelta(weeks=count)).timestamp())
    months = count * (12 if interval == "year" else 1)
    year, month0 = divmod(start.month - 1 + months, 12)
    year += start.year
    day = min(start.day, calendar.monthrange(year, month0 + 1)[1])
    return int(start.replace(year=year, month=month0 + 1, day=day).timestamp())


def _line_amount(unit_amount_decimal: str, quantity: int) -> int:
    total = Decimal(unit_amount_decimal) * quantity
    return int(total.quantize(Decimal(1), rounding=ROUND_HALF_UP))


_QUERY = re.compile(r"\s*metadata\['([A-Za-z0-9_.\-]+)'\]\s*:\s*'((?:[^'\\]|\\.)*)'\s*")


def parse_search(query: str) -> tuple[str, str]:
    """``metadata['key']:'value'`` → ``(key, value)``; nothing else is understood here."""
    match = _QUERY.fullmatch(query)
    if match is None:
        raise _invalid(
            f"Invalid search query: {query!r}. This sandbox supports metadata['key']:'value'.",
            param="query",
        )
    return match.group(1), re.sub(r"\\(.)", r"\1", match.group(2))


_CLAUSE = re.compile(r"\s*metadata\['[A-Za-z0-9_.\-]+'\]\s*:\s*'(?:[^'\\]|\\.)*'\s*")
# "Search query language": at most ten clauses, joined by AND or OR (not both).
MAX_SEARCH_CLAUSES = 10


def parse_search_clauses(query: str) -> list[tuple[str, str]]:
    """``metadata['k']:'v' OR metadata['k']:'w' ...`` (up to ten clauses) → the pairs any of
    which an object must hold. ``AND`` is not emulated."""
    clauses: list[tuple[str, str]] = []
    position = 0
    while True:
        match = _CLAUSE.match(query, position)
        if match is None:
            raise _invalid(
                f"Invalid search query: {query!r}. This sandbox supports "
                "metadata['key']:'value' clauses joined by OR.",
                param="query",
            )
        clauses.append(parse_search(match.group(0)))
        position = match.end()
        if position == len(query):
            break
        joiner = re.match(r"OR(?=\s)", query[position:])
        if joiner is None:
            raise _invalid(f"Invalid search query: {query!r}: expected OR.", param="query")
        position += joiner.end()
    if len(clauses) > MAX_SEARCH_CLAUSES:
        raise _invalid(f"Search queries take at most {MAX_SEARCH_CLAUSES} clauses.", param="query")
    return clauses


class CreatedIndex:
    """One kind's objects ordered by ``created`` (then by when they were added): what the
    list endpoints page through, newest first, and filter with ``created[gte]`` and the
    like, without sorting every object on every call."""

    def __init__(self) -> None:
        self._keys: list[tuple[int, int, str]] = []
        self._key_of: dict[str, tuple[int, int, str]] = {}
        self._seq = 0

    def add(self, object_id: str, created: int) -> None:
        if object_id in self._key_of:
            return
        self._seq += 1
        key = (created, self._seq, object_id)
        self._key_of[object_id] = key
        if not self._keys or key > self._keys[-1]:
            self._keys.append(key)
        else:
            bisect.insort(self._keys, key)

    def __contains__(self, object_id: object) -> bool:
        return object_id in self._key_of

    def __len__(self) -> int:
        return len(self._key_of)

    def newest_first(self, gte: int | None, lt: int | None, after: str | None) -> Iterator[str]:
        """Ids with ``gte <= created < lt``, newest first, after the object ``after``."""
        lo = 0 if gte is None else bisect.bisect_left(self._keys, (gte,))
        hi = len(self._keys) if lt is None else bisect.bisect_left(self._keys, (lt,))
        if after is not None:
            hi = min(hi, bisect.bisect_left(self._keys, self._key_of[after]))
        for index in range(hi - 1, lo - 1, -1):
            yield self._keys[index][2]


def _created_range(params: Json) -> tuple[int | None, int | None]:
    """A list's ``created`` filter (``created[gte]``, ``[gt]``, ``[lt]``, ``[lte]``, or an
    exact ``created``) as a half-open ``[gte, lt)`` range of whole seconds."""
    created = params.get("created")
    if created is None:
        return None, None
    if not isinstance(created, dict):
        exact = _int(created, "created")
        return exact, exact + 1
    _known(created, {"gte", "gt", "lt", "lte"}, "created")
    gte = _int(created["gte"], "created[gte]") if "gte" in created else None
    if "gt" in created:
        gt = _int(created["gt"], "created[gt]") + 1
        gte = gt if gte is None else max(gte, gt)
    lt = _int(created["lt"], "created[lt]") if "lt" in created else None
    if "lte" in created:
        lte = _int(created["lte"], "created[lte]") + 1
        lt = lte if lt is None else min(lt, lte)
    return gte, lt


# Events are kept for 30 days ("List all events": "going back up to 30 days").
EVENTS_KEPT_SECONDS = 30 * 86_400


@dataclass
class IdempotentRequest:
    """One ``Idempotency-Key``: what the first request sent, and its answer once it has one."""

    fingerprint: tuple[str, str, tuple[tuple[str, str], ...]]
    status: int | None = None
    body: Json | None = None


class StripeStore:
    """Everything the emulated Stripe account holds, in memory."""

    def __init__(self) -> None:
        self.customers: dict[str, Json] = {}
        self.products: dict[str, Json] = {}
        self.prices: dict[str, Json] = {}
        self.subscriptions: dict[str, Json] = {}
        self.invoices: dict[str, Json] = {}
        # Quotes as Stripe holds them, without their includable line item lists, which are
        # kept apart (all of them, discounts and taxes included) and rendered on request.
        self.quotes: dict[str, Json] = {}
        self.quote_lines: dict[str, list[Json]] = {}
        self.idempotency: dict[tuple[str, str], IdempotentRequest] = {}
        # Stripe Search is eventually consistent: new objects appear after this many seconds.
        self.search_lag_seconds = 0.0
        self._searchable_at: dict[str, float] = {}
        self.clock: Callable[[], float] = time.time
        # Lists by creation time, and search by metadata, without scanning every object.
        self._created: dict[str, CreatedIndex] = {
            kind: CreatedIndex() for kind in ("customers", "subscriptions", "invoices")
        }
        self._metadata_index: dict[str, dict[tuple[str, str], set[str]]] = {
            "customers": {},
            "subscriptions": {},
        }
        self._metadata_of: dict[str, set[tuple[str, str]]] = {}
        # Events, oldest first ("The Event object"): what changed, with the object as the
        # change left it (``GET /v1/events``).
        self.events: list[Json] = []

    def snapshot(self) -> dict[str, Any]:
        return copy.deepcopy(
            {
                "customers": list(self.customers.values()),
                "products": list(self.products.values()),
                "subscriptions": list(self.subscriptions.values()),
                "invoices": list(self.invoices.values()),
                "quotes": [
                    {**quote, "line_items": {"object": "list", "data": self.quote_lines[key]}}
                    for key, quote in self.quotes.items()
                ],
            }
        )

    def _now(self) -> int:
        return int(self.clock())

    def _indexed(self, object_id: str) -> None:
        self._searchable_at[object_id] = time.monotonic() + self.search_lag_seconds

    def _track(self, kind: str, obj: Json) -> None:
        """Index a created or updated object: its creation time, its metadata (search)."""
        self._created[kind].add(str(obj["id"]), int(obj["created"]))
        if kind not in self._metadata_index:
            return
        index = self._metadata_index[kind]
        pairs = {(k, str(v)) for k, v in (obj.get("metadata") or {}).items()}
        for pair in self._metadata_of.get(obj["id"], set()) - pairs:
            index.get(pair, set()).discard(obj["id"])
        for pair in pairs:
            index.setdefault(pair, set()).add(obj["id"])
        self._metadata_of[obj["id"]] = pairs

    def _emit(self, event_type: str, obj: Json) -> None:
        """Record the event Stripe creates for a change, with the object as it is now."""
        now = self._now()
        while self.events and self.events[0]["created"] < now - EVENTS_KEPT_SECONDS:
            self.events.pop(0)
        self.events.append(
            {
                "id": new_id("evt"),
                "object": "event",
                "api_version": API_VERSION,
                "created": now,
                "data": {"object": copy.deepcopy(obj)},
                "livemode": False,
                "pending_webhooks": 0,
                "request": {"id": None, "idempotency_key": None},
                "type": event_type,
            }
        )

    def _invoice_events(self, invoice: Json, *, created: bool) -> None:
        rendered = self._render_invoice(invoice)
        if created:
            self._emit("invoice.created", rendered)
        if invoice["status"] in ("open", "paid"):
            self._emit("invoice.finalized", rendered)
        if invoice["status"] == "paid":
            self._emit("invoice.paid", rendered)

    def list_events(self, params: Json) -> Json:
        """``GET /v1/events``: newest first, ``limit`` (1 to 100) after ``starting_after``;
        ``type`` (one type, or a group with ``*``: ``invoice.*``) or ``types`` (up to 20);
        ``created`` filters. Events older than 30 days are gone."""
        _known(params, {"limit", "starting_after", "ending_before", "type", "types", "created"})
        limit = _int(params.get("limit"), "limit", minimum=1, default=10)
        if limit > 100:
            raise _invalid("Invalid limit: must be at most 100", param="limit")
        one = _str(params.get("type"), "type")
        many = [str(t) for t in _list(params.get("types"), "types")] if "types" in params else []
        if one is not None and many:
            raise _invalid("You may only specify one of these parameters: type, types.", "types")
        if len(many) > 20:
            raise _invalid("types may contain at most 20 event types.", "types")
        patterns = [one] if one is not None else many

        def wanted(event_type: str) -> bool:
            if not patterns:
                return True
            return any(
                event_type == p or (p.endswith("*") and event_type.startswith(p[:-1]))
                for p in patterns
            )

        gte, lt = _created_range(params)
        after = _str(params.get("starting_after"), "starting_after")
        oldest = self._now() - EVENTS_KEPT_SECONDS
        start = len(self.events) - 1
        if after is not None:
            position = next((i for i, e in enumerate(self.events) if e["id"] == after), None)
            if position is None:
                raise _missing("event", after, "starting_after", status=400)
            start = position - 1
        found: list[Json] = []
        for index in range(start, -1, -1):
            event = self.events[index]
            if event["created"] < oldest or (gte is not None and event["created"] < gte):
                break
            if lt is not None and event["created"] >= lt:
                continue
            if wanted(event["type"]):
                found.append(event)
                if len(found) > limit:
                    break
        return {
            "object": "list",
            "data": copy.deepcopy(found[:limit]),
            "has_more": len(found) > limit,
            "url": "/v1/events",
        }

    def bulk_add(self, kind: str, objects: Sequence[Json]) -> None:
        """Objects made long ago (a sandbox seed): stored and indexed as they are, no events
        (Stripe would have dropped them after 30 days)."""
        pool = {"customers": self.customers, "subscriptions": self.subscriptions}.get(
            kind, self.invoices
        )
        for obj in objects:
            pool[str(obj["id"])] = obj
            self._track(kind, obj)

    # search

    def search(self, kind: str, params: Json) -> Json:
        _known(params, {"query", "limit", "page", "expand"})
        clauses = parse_search_clauses(_str(params.get("query"), "query", required=True) or "")
        limit = _int(params.get("limit"), "limit", minimum=1, default=10)
        if limit > 100:
            raise _invalid("Invalid limit: must be at most 100", param="limit")
        pool = self.customers if kind == "customers" else self.subscriptions
        index = self._metadata_index[kind]
        ids: set[str] = set()
        for clause in clauses:
            ids |= index.get(clause, set())
        now = time.monotonic()
        ordered = sorted(
            (i for i in ids if self._searchable_at.get(i, 0) <= now),
            key=lambda i: (pool[i]["created"], i),
            reverse=True,
        )
        page = _str(params.get("page"), "page")
        start = int(page) if page and page.isdigit() else 0
        found = [pool[i] for i in ordered[start : start + limit]]
        more = start + limit < len(ordered)
        return {
            "object": "search_result",
            "data": copy.deepcopy(found),
            "has_more": more,
            "next_page": str(start + limit) if more else None,
            "url": f"/v1/{kind}/search",
        }

    # customers

    def create_customer(self, params: Json) -> Json:
        _known(
            params,
            {
                "name",
                "email",
                "description",
                "phone",
                "address",
                "metadata",
                "tax_id_data",
                "preferred_locales",
                "expand",
            },
        )
        email = _str(params.get("email"), "email")
        if email is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
            raise _invalid(f"Invalid email address: {email}", param="email", code="email_invalid")
        address = _obj(params.get("address"), "address")
        _known(address, {"line1", "line2", "city", "state", "postal_code", "country"}, "address")
        customer_id = new_id("cus")
        tax_ids = []
        for index, entry in enumerate(_list(params.get("tax_id_data"), "tax_id_data")):
            param = f"tax_id_data[{index}]"
            entry = _obj(entry, param)
            _known(entry, {"type", "value"}, param)
            tax_type = _str(entry.get("type"), f"{param}[type]", required=True)
            if tax_type not in TAX_ID_TYPES:
                raise _invalid(f"Invalid value for {param}[type]: {tax_type}", f"{param}[type]")
            tax_value = _str(entry.get("value"), f"{param}[value]", required=True)
            tax_ids.append(
                {
                    "id": new_id("txi"),
                    "object": "tax_id",
                    "type": tax_type,
                    "value": tax_value,
                    "customer": customer_id,
                }
            )
        customer: Json = {
            "id": customer_id,
            "object": "customer",
            "created": self._now(),
            "livemode": False,
            "name": _str(params.get("name"), "name"),
            "email": email,
            "description": _str(params.get("description"), "description"),
            "phone": _str(params.get("phone"), "phone"),
            "address": {
                field: address.get(field)
                for field in ("line1", "line2", "city", "state", "postal_code", "country")
            }
            if address
            else None,
            "metadata": _metadata(params.get("metadata")),
            "tax_ids": {"object": "list", "data": tax_ids, "has_more": False},
            "currency": None,
            "deleted": False,
        }
        self.customers[customer_id] = customer
        self._indexed(customer_id)
        self._track("customers", customer)
        self._emit("customer.created", customer)
        return copy.deepcopy(customer)

    def get_customer(self, customer_id: str) -> Json:
        if customer_id not in self.customers:
            raise _missing("customer", customer_id)
        return copy.deepcopy(self.customers[customer_id])

    def update_customer(self, customer_id: str, params: Json) -> Json:
        """``POST /v1/customers/{id}``: the given attributes change; an empty string clears
        one (``address=""``, ``metadata[key]=""``); metadata keys merge."""
        customer = self.customers.get(customer_id)
        if customer is None:
            raise _missing("customer", customer_id)
        _known(params, {"name", "email", "description", "phone", "address", "metadata", "expand"})
        staged = copy.deepcopy(customer)
        for key in ("name", "email", "description", "phone"):
            if key in params:
                staged[key] = _str(params[key], key) or None
        email = staged.get("email")
        if "email" in params and email and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
            raise _invalid(f"Invalid email address: {email}", param="email", code="email_invalid")
        if "address" in params:
            if params["address"] == "":
                staged["address"] = None
            else:
                address = _obj(params["address"], "address")
                _known(
                    address,
                    {"line1", "line2", "city", "state", "postal_code", "country"},
                    "address",
                )
                current = staged.get("address") or {}
                staged["address"] = {
                    field: (address[field] or None) if field in address else current.get(field)
                    for field in ("line1", "line2", "city", "state", "postal_code", "country")
                }
        if "metadata" in params:
            merged = {**staged["metadata"], **_metadata(params["metadata"])}
            staged["metadata"] = {k: v for k, v in merged.items() if v != ""}
        self.customers[customer_id] = staged
        self._track("customers", staged)
        self._emit("customer.updated", staged)
        return copy.deepcopy(staged)

    # products

    def create_product(self, params: Json) -> Json:
        _known(params, {"id", "name", "description", "metadata", "active", "expand"})
        product_id = _str(params.get("id"), "id") or new_id("prod")
        if product_id in self.products:
            raise _invalid(
                f"Product already exists: '{product_id}'", "id", code="resource_already_exists"
            )
        product: Json = {
            "id": product_id,
            "object": "product",
            "created": self._now(),
            "livemode": False,
            "name": _str(params.get("name"), "name", required=True),
            "description": _str(params.get("description"), "description"),
            "active": _bool(params.get("active"), "active", True),
            "metadata": _metadata(params.get("metadata")),
        }
        self.products[product_id] = product
        return copy.deepcopy(product)

    def get_product(self, product_id: str) -> Json:
        if product_id not in self.products:
            raise _missing("product", product_id)
        return copy.deepcopy(self.products[product_id])

    # subscriptions

    def _inline_price(self, data: Json, param: str, *, recurring: bool) -> Json:
        allowed = {"currency", "product", "unit_amount", "unit_amount_decimal", "tax_behavior"}
        _known(data, (allowed | {"recurring"}) if recurring else allowed, param)
        product = _str(data.get("product"), f"{param}[product]", required=True) or ""
        if product not in self.products:
            raise _missing("product", product, f"{param}[product]", status=400)
        unit = _unit_amount(data, param)
        recurrence = None
        if recurring:
            spec = _obj(data.get("recurring"), f"{param}[recurring]")
            if not spec:
                raise _invalid(
                    f"Missing required param: {param}[recurring].", f"{param}[recurring]"
                )
            _known(spec, {"interval", "interval_count"}, f"{param}[recurring]")
            interval = _str(spec.get("interval"), f"{param}[recurring][interval]", required=True)
            if interval not in INTERVALS:
                raise _invalid(
                    f"Invalid {param}[recurring][interval]: must be one of day, week, month, "
                    "or year",
                    f"{param}[recurring][interval]",
                )
            count = _int(
                spec.get("interval_count"),
                f"{param}[recurring][interval_count]",
                minimum=1,
                default=1,
            )
            recurrence = {"interval": interval, "interval_count": count}
        price: Json = {
            "id": new_id("price"),
            "object": "price",
            "active": False,
            "created": self._now(),
            "currency": _currency(data.get("currency"), f"{param}[currency]"),
            "product": product,
            "unit_amount": int(unit) if "." not in unit else None,
            "unit_amount_decimal": unit,
            "recurring": recurrence,
            "type": "recurring" if recurring else "one_time",
        }
        self.prices[price["id"]] = price
        return price

    def _price(self, entry: Json, param: str, *, recurring: bool) -> Json:
        if entry.get("price") is not None:
            if entry.get("price_data") is not None:
                raise _invalid(
                    f"You may only specify one of {param}[price] and {param}[price_data].",
                    f"{param}[price]",
                )
            price_id = _str(entry.get("price"), f"{param}[price]", required=True) or ""
            price = self.prices.get(price_id)
            if price is None:
                raise _missing("price", price_id, f"{param}[price]", status=400)
            if (price["recurring"] is not None) != recurring:
                raise _invalid(f"The price {price_id} has the wrong type here.", f"{param}[price]")
            return price
        data = _obj(entry.get("price_data"), f"{param}[price_data]")
        if not data:
            raise _invalid(f"Missing required param: {param}[price].", f"{param}[price]")
        return self._inline_price(data, f"{param}[price_data]", recurring=recurring)

    def create_subscription(self, params: Json) -> Json:
        _known(
            params,
            {
                "customer",
                "currency",
                "items",
                "add_invoice_items",
                "collection_method",
                "days_until_due",
                "description",
                "metadata",
                "payment_behavior",
                "proration_behavior",
                "expand",
            },
        )
        customer_id = _str(params.get("customer"), "customer", required=True) or ""
        if customer_id not in self.customers:
            raise _missing("customer", customer_id, "customer", status=400)
        collection = _str(params.get("collection_method"), "collection_method")
        collection = collection or "charge_automatically"
        if collection not in ("charge_automatically", "send_invoice"):
            raise _invalid(f"Invalid collection_method: {collection}", "collection_method")
        days_until_due = None
        if collection == "send_invoice":
            days_until_due = _int(params.get("days_until_due"), "days_until_due")
        elif params.get("days_until_due") is not None:
            raise _invalid(
                "days_until_due can only be set when collection_method is send_invoice.",
                "days_until_due",
            )
        metadata = _metadata(params.get("metadata"))
        entries = _list(params.get("items"), "items")
        if not entries:
            raise _invalid("Missing required param: items.", "items")
        if len(entries) > MAX_ITEMS:
            raise _invalid(f"A subscription can have at most {MAX_ITEMS} items.", "items")
        extras = _list(params.get("add_invoice_items"), "add_invoice_items")
        if len(extras) > MAX_ITEMS:
            raise _invalid(f"You can add at most {MAX_ITEMS} invoice items.", "add_invoice_items")

        items: list[tuple[Json, int, dict[str, str]]] = []
        for index, raw in enumerate(entries):
            param = f"items[{index}]"
            entry = _obj(raw, param)
            _known(entry, {"price", "price_data", "quantity", "metadata"}, param)
            price = self._price(entry, param, recurring=True)
            quantity = _int(entry.get("quantity"), f"{param}[quantity]", default=1)
            items.append((price, quantity, _metadata(entry.get("metadata"), f"{param}[metadata]")))
        one_offs: list[tuple[Json, int]] = []
        for index, raw in enumerate(extras):
            param = f"add_invoice_items[{index}]"
            entry = _obj(raw, param)
            _known(entry, {"price", "price_data", "quantity"}, param)
            price = self._price(entry, param, recurring=False)
            one_offs.append((price, _int(entry.get("quantity"), f"{param}[quantity]", default=1)))

        currencies = {price["currency"] for price, _, _ in items}
        currencies |= {price["currency"] for price, _ in one_offs}
        if params.get("currency") is not None:
            currencies.add(_currency(params.get("currency"), "currency"))
        if len(currencies) > 1:
            raise _invalid(
                "All prices on a subscription must share one currency; found "
                + ", ".join(sorted(currencies)),
                "items",
            )
        recurrences = {
            (price["recurring"]["interval"], price["recurring"]["interval_count"])
            for price, _, _ in items
        }
        if len(recurrences) > 1:
            raise _invalid(
                "Currency and interval fields must match across all prices on a "
                "subscription; found intervals "
                + ", ".join(f"{count} {interval}" for interval, count in sorted(recurrences)),
                "items",
            )
        (currency,) = currencies
        ((interval, interval_count),) = recurrences

        now = self._now()
        period_end = _add_interval(now, interval, interval_count)
        subscription_id = new_id("sub")
        invoice_id = new_id("in")
        subscription_items: list[Json] = [
            {
                "id": new_id("si"),
                "object": "subscription_item",
                "subscription": subscription_id,
                "price": copy.deepcopy(price),
                "quantity": quantity,
                "metadata": item_metadata,
                "created": now,
                # In 2024-06-20 the current period is the subscription's; items carry it
                # only from the 2025 (Basil) versions on.
            }
            for price, quantity, item_metadata in items
        ]
        lines = [
            self._invoice_line(
                invoice_id, item["price"], item["quantity"], now, period_end, subscription_id
            )
            | {"subscription_item": item["id"], "metadata": dict(item["metadata"])}
            for item in subscription_items
        ]
        lines += [
            self._invoice_line(invoice_id, price, quantity, now, now)
            for price, quantity in one_offs
        ]
        total = sum(line["amount"] for line in lines)
        status = "active" if collection == "send_invoice" or total == 0 else "incomplete"
        invoice: Json = {
            "id": invoice_id,
            "object": "invoice",
            "livemode": False,
            "created": now,
            "customer": customer_id,
            "subscription": subscription_id,
            "billing_reason": "subscription_create",
            "collection_method": collection,
            "currency": currency,
            "status": "paid" if total == 0 else "open",
            "auto_advance": total != 0,
            "amount_due": total,
            "amount_paid": 0,
            "amount_remaining": total,
            "subtotal": total,
            "subtotal_excluding_tax": total,
            "total": total,
            "total_excluding_tax": total,
            "tax": None,
            "total_tax_amounts": [],
            "total_discount_amounts": [],
            "effective_at": None,
            "due_date": None if days_until_due is None else now + days_until_due * 86400,
            "period_start": now,
            "period_end": now,
            "description": _str(params.get("description"), "description"),
            "metadata": {},
            "status_transitions": {
                "finalized_at": now,
                "paid_at": now if total == 0 else None,
                "voided_at": None,
                "marked_uncollectible_at": None,
            },
            "lines": {
                "object": "list",
                "data": lines,
                "has_more": False,
                "total_count": len(lines),
                "url": f"/v1/invoices/{invoice_id}/lines",
            },
        }
        subscription: Json = {
            "id": subscription_id,
            "object": "subscription",
            "livemode": False,
            "created": now,
            "start_date": now,
            "customer": customer_id,
            "currency": currency,
            "status": status,
            "collection_method": collection,
            "days_until_due": days_until_due,
            "description": _str(params.get("description"), "description"),
            "metadata": metadata,
            "items": {
                "object": "list",
                "data": subscription_items,
                "has_more": False,
                "total_count": len(subscription_items),
                "url": f"/v1/subscription_items?subscription={subscription_id}",
            },
            "latest_invoice": invoice_id,
            "current_period_start": now,
            "current_period_end": period_end,
            "cancel_at": None,
            "cancel_at_period_end": False,
            "canceled_at": None,
            "ended_at": None,
            "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        }
        self.invoices[invoice_id] = invoice
        self.subscriptions[subscription_id] = subscription
        self._indexed(subscription_id)
        self._track("subscriptions", subscription)
        self._track("invoices", invoice)
        self._emit("customer.subscription.created", subscription)
        self._invoice_events(invoice, created=True)
        return copy.deepcopy(subscription)

    def _invoice_line(
        self,
        invoice_id: str,
        price: Json,
        quantity: int,
        start: int,
        end: int,
        subscription_id: str | None = None,
        *,
        discount: int = 0,
        tax: int = 0,
        tax_inclusive: bool = False,
    ) -> Json:
        """A line as the API shows it. ``amount`` is quantity times unit price (tax included
        when the tax is inclusive), before discounts; ``discount_amounts`` and
        ``tax_amounts`` say what comes off and what tax it bears."""
        product = self.products[price["product"]]
        unit = Decimal(price["unit_amount_decimal"]).scaleb(-currency_decimals(price["currency"]))
        per = f" / {price['recurring']['interval']}" if price["recurring"] else ""
        amount = _line_amount(price["unit_amount_decimal"], quantity)
        inclusive_tax = tax if tax_inclusive else 0
        return {
            "id": new_id("il"),
            "object": "line_item",
            "invoice": invoice_id,
            "amount": amount,
            "amount_excluding_tax": amount - inclusive_tax,
            "currency": price["currency"],
            "description": f"{quantity} × {product['name']} "  # noqa: RUF001 (Stripe's sign)
            f"(at {format(unit, 'f')} {price['currency'].upper()}{per})",
            "discountable": True,
            "discount_amounts": (
                [{"amount": discount, "discount": new_id("di")}] if discount else []
            ),
            "discounts": [],
            "quantity": quantity,
            "price": copy.deepcopy(price),
            "period": {"start": start, "end": end},
            "proration": False,
            "subscription": subscription_id if price["recurring"] else None,
            "subscription_item": None,
            "invoice_item": None if price["recurring"] else new_id("ii"),
            "tax_amounts": (
                [
                    {
                        "amount": tax,
                        "inclusive": tax_inclusive,
                        "tax_rate": new_id("txr"),
                        "taxability_reason": None,
                        "taxable_amount": amount - discount - inclusive_tax,
                    }
                ]
                if tax
                else []
            ),
            "tax_rates": [],
            "type": "subscription" if price["recurring"] else "invoiceitem",
            "metadata": {},
        }

    def _subscription(self, subscription_id: str) -> Json:
        if subscription_id not in self.subscriptions:
            raise _missing("subscription", subscription_id)
        return self.subscriptions[subscription_id]

    def get_subscription(self, subscription_id: str) -> Json:
        return copy.deepcopy(self._subscription(subscription_id))

    def _cancellation_details(self, subscription: Json, params: Json) -> None:
        details = _obj(params.get("cancellation_details"), "cancellation_details")
        _known(details, {"comment", "feedback"}, "cancellation_details")
        for field in ("comment", "feedback"):
            if field in details:
                value = _str(details[field], f"cancellation_details[{field}]")
                if value is not None and len(value) > 5000:
                    raise _invalid(
                        "cancellation_details[comment] is at most 5000 characters.",
                        f"cancellation_details[{field}]",
                    )
                subscription["cancellation_details"][field] = value or None

    def update_subscription(self, subscription_id: str, params: Json) -> Json:
        subscription = self._subscription(subscription_id)
        _known(
            params,
            {"metadata", "description", "cancellation_details", "days_until_due", "expand"},
        )
        if subscription["status"] == "canceled" and set(params) - {
            "metadata",
            "cancellation_details",
            "expand",
        }:
            raise _invalid(
                "A canceled subscription can only update its metadata and cancellation_details."
            )
        updated = copy.deepcopy(subscription)
        for key, value in _metadata(params.get("metadata")).items():
            if value == "":
                updated["metadata"].pop(key, None)
            else:
                updated["metadata"][key] = value
        if "description" in params:
            updated["description"] = _str(params["description"], "description") or None
        if "days_until_due" in params:
            if updated["collection_method"] != "send_invoice":
                raise _invalid(
                    "days_until_due can only be set when collection_method is send_invoice.",
                    "days_until_due",
                )
            updated["days_until_due"] = _int(params["days_until_due"], "days_until_due")
        self._cancellation_details(updated, params)
        self.subscriptions[subscription_id] = updated
        self._track("subscriptions", updated)
        self._emit("customer.subscription.updated", updated)
        return copy.deepcopy(updated)

    def list_subscriptions(self, params: Json) -> Json:
        """``GET /v1/subscriptions``: newest first, ``limit`` (1 to 100, default 10) after
        ``starting_after``; ``status`` filters (default: all but canceled; ``all``);
        ``customer`` and ``created`` (``created[gte]`` and the like) filter."""
        _known(
            params,
            {"limit", "starting_after", "ending_before", "status", "customer", "created", "expand"},
        )
        status = _str(params.get("status"), "status")
        customer = _str(params.get("customer"), "customer")

        def keep(sub: Json) -> bool:
            return (
                (status == "all" or sub["status"] == (status or sub["status"]))
                and (status is not None or sub["status"] != "canceled")
                and (customer is None or sub["customer"] == customer)
            )

        return self._list("subscriptions", "subscription", params, keep)

    def _list(
        self, kind: str, singular: str, params: Json, keep: Callable[[Json], bool] | None = None
    ) -> Json:
        """One page of a list endpoint: newest first, ``created`` filtered, after
        ``starting_after`` (an object of that list, else 400)."""
        limit = _int(params.get("limit"), "limit", minimum=1, default=10)
        if limit > 100:
            raise _invalid("Invalid limit: must be at most 100", param="limit")
        pool = {"customers": self.customers, "subscriptions": self.subscriptions}.get(
            kind, self.invoices
        )
        index = self._created[kind]
        if len(index) != len(pool):  # objects a test stored without going through _track
            for obj_id, obj in pool.items():
                if obj_id not in index:
                    index.add(obj_id, int(obj["created"]))
        gte, lt = _created_range(params)
        after = _str(params.get("starting_after"), "starting_after")
        if after is not None and after not in pool:
            raise _missing(singular, after, "starting_after", status=400)
        found: list[Json] = []
        for obj_id in index.newest_first(gte, lt, after):
            obj = pool[obj_id]
            if keep is None or keep(obj):
                found.append(obj)
                if len(found) > limit:
                    break
        page = found[:limit]
        data = (
            [self._render_invoice(i) for i in page] if kind == "invoices" else copy.deepcopy(page)
        )
        return {
            "object": "list",
            "data": data,
            "has_more": len(found) > limit,
            "url": f"/v1/{kind}",
        }

    def list_objects(self, kind: str, params: Json) -> Json:
        """``GET /v1/customers`` and ``GET /v1/invoices``: newest first, ``limit`` (1 to 100,
        default 10) after ``starting_after``, ``created`` filtered; invoices of every
        status."""
        _known(params, {"limit", "starting_after", "ending_before", "created", "expand"})
        return self._list(kind, kind.rstrip("s"), params)

    def cancel_subscription(self, subscription_id: str, params: Json) -> Json:
        subscription = self._subscription(subscription_id)
        _known(params, {"prorate", "invoice_now", "cancellation_details", "expand"})
        _bool(params.get("prorate"), "prorate", True)
        _bool(params.get("invoice_now"), "invoice_now", False)
        if subscription["status"] == "canceled":
            raise _invalid(f"The subscription {subscription_id} has already been canceled.")
        updated = copy.deepcopy(subscription)
        self._cancellation_details(updated, params)
        now = self._now()
        updated.update(status="canceled", canceled_at=now, ended_at=now)
        updated["cancellation_details"]["reason"] = "cancellation_requested"
        self.subscriptions[subscription_id] = updated
        self._emit("customer.subscription.deleted", updated)
        return copy.deepcopy(updated)

    # invoices

    def _invoice(self, invoice_id: str) -> Json:
        if invoice_id not in self.invoices:
            raise _missing("invoice", invoice_id)
        return self.invoices[invoice_id]

    def _render_invoice(self, invoice: Json) -> Json:
        """The invoice as the API answers it: the first lines embedded, the rest paged."""
        rendered = copy.deepcopy(invoice)
        lines = rendered["lines"]["data"]
        rendered["lines"]["data"] = lines[:EMBEDDED_LINES]
        rendered["lines"]["has_more"] = len(lines) > EMBEDDED_LINES
        return rendered

    def get_invoice(self, invoice_id: str, params: Json | None = None) -> Json:
        """The invoice; ``expand[]=customer`` embeds the customer object in place of its id."""
        params = params or {}
        _known(params, {"expand"})
        rendered = self._render_invoice(self._invoice(invoice_id))
        for path in _list(params.get("expand"), "expand"):
            if path != "customer":
                raise _invalid(f"This property cannot be expanded ({path}).", param="expand")
            customer_id = rendered["customer"]
            if customer_id in self.customers:
                rendered["customer"] = copy.deepcopy(self.customers[customer_id])
        return rendered

    def list_invoice_lines(self, invoice_id: str, params: Json) -> Json:
        invoice = self._invoice(invoice_id)
        _known(params, {"limit", "starting_after", "ending_before", "expand"})
        limit = _int(params.get("limit"), "limit", minimum=1, default=10)
        if limit > 100:
            raise _invalid("Invalid limit: must be at most 100", param="limit")
        lines = invoice["lines"]["data"]
        after = _str(params.get("starting_after"), "starting_after")
        start = 0
        if after is not None:
            ids = [line["id"] for line in lines]
            if after not in ids:
                raise _missing("line item", after, "starting_after", status=400)
            start = ids.index(after) + 1
        page = lines[start : start + limit]
        return {
            "object": "list",
            "data": copy.deepcopy(page),
            "has_more": start + limit < len(lines),
            "url": f"/v1/invoices/{invoice_id}/lines",
        }

    def finalize_invoice(self, invoice_id: str, params: Json) -> Json:
        invoice = self._invoice(invoice_id)
        _known(params, {"auto_advance", "expand"})
        if invoice["status"] != "draft":
            raise _invalid(
                f"This invoice is already finalized (status {invoice['status']}); only a draft "
                "can be finalized.",
                code="invoice_not_editable",
            )
        now = self._now()
        invoice["auto_advance"] = _bool(params.get("auto_advance"), "auto_advance", True)
        invoice["status_transitions"]["finalized_at"] = now
        if invoice["amount_due"] == 0:
            invoice["status"] = "paid"
            invoice["status_transitions"]["paid_at"] = now
        else:
            invoice["status"] = "open"
        self._invoice_events(invoice, created=False)
        return self._render_invoice(invoice)

    def _customer_for_account(self, account_id: str) -> str:
        for customer in self.customers.values():
            if customer["metadata"].get("revsync_account_id") == account_id:
                return str(customer["id"])
        return str(
            self.create_customer(
                {
                    "name": f"Account {account_id}",
                    "metadata": {"revsync_account_id": account_id},
                }
            )["id"]
        )

    def _sandbox_price(self, line: SandboxInvoiceLine, currency: str) -> Json:
        if line.product not in self.products:
            self.create_product({"id": line.product, "name": line.description or line.product})
        price: Json = {
            "id": new_id("price"),
            "object": "price",
            "active": False,
            "created": self._now(),
            "currency": currency,
            "product": line.product,
            "unit_amount": line.unit_amount,
            "unit_amount_decimal": str(line.unit_amount),
            "recurring": (
                None
                if line.recurring is None
                else {"interval": line.recurring, "interval_count": 1}
            ),
            "type": "one_time" if line.recurring is None else "recurring",
        }
        self.prices[price["id"]] = price
        return price

    def create_sandbox_invoice(self, spec: SandboxInvoice) -> Json:
        """An invoice with exactly the given lines (what a billing run or a hand-made invoice
        produces), finalized unless ``spec.status`` is ``draft``; returned as the API shows it.

        Totals follow Stripe: ``subtotal`` is the lines net of their discounts (tax included
        where it is inclusive), ``total`` adds the exclusive tax, ``tax`` is all the tax."""
        currency = spec.currency.lower()
        if spec.customer is not None:
            if spec.customer not in self.customers:
                raise _missing("customer", spec.customer, "customer", status=400)
            customer_id = spec.customer
        else:
            assert spec.account_id is not None
            customer_id = self._customer_for_account(spec.account_id)
        now = self._now()
        finalized = None if spec.status == "draft" else epoch(spec.finalized_at or now)
        anchor = finalized if finalized is not None else now
        invoice_id = new_id("in")
        lines: list[Json] = []
        for line in spec.lines:
            price = self._sandbox_price(line, currency)
            start = epoch(line.period_start) if line.period_start is not None else anchor
            if line.period_end is not None:
                end = epoch(line.period_end)
            elif line.recurring is not None:
                end = _add_interval(start, line.recurring, 1)
            else:
                end = start
            made = self._invoice_line(
                invoice_id,
                price,
                line.quantity,
                start,
                end,
                spec.subscription,
                discount=line.discount,
                tax=line.tax,
                tax_inclusive=line.tax_inclusive,
            )
            made["metadata"] = dict(line.metadata)
            if line.description is not None:
                made["description"] = line.description
            lines.append(made)

        subtotal = sum(
            line["amount"] - sum(d["amount"] for d in line["discount_amounts"]) for line in lines
        )
        taxes = [tax for line in lines for tax in line["tax_amounts"]]
        tax = sum(t["amount"] for t in taxes)
        exclusive = sum(t["amount"] for t in taxes if not t["inclusive"])
        inclusive = tax - exclusive
        total = subtotal + exclusive
        discounts = [d for line in lines for d in line["discount_amounts"]]
        due_date: int | None = None
        if spec.collection_method == "send_invoice":
            due_date = (
                epoch(spec.due_date)
                if spec.due_date is not None
                else anchor + spec.days_until_due * 86400
            )
        paid = spec.status == "paid" or (spec.status == "open" and total <= 0)
        status = "draft" if spec.status == "draft" else ("paid" if paid else "open")
        amount_due = max(total, 0)
        invoice: Json = {
            "id": invoice_id,
            "object": "invoice",
            "livemode": False,
            "created": anchor,
            "customer": customer_id,
            "subscription": spec.subscription,
            "billing_reason": "subscription_cycle" if spec.subscription else "manual",
            "collection_method": spec.collection_method,
            "currency": currency,
            "status": status,
            "auto_advance": status == "draft",
            "amount_due": amount_due,
            "amount_paid": amount_due if status == "paid" else 0,
            "amount_remaining": 0 if status == "paid" else amount_due,
            "paid_out_of_band": False,
            "subtotal": subtotal,
            "subtotal_excluding_tax": subtotal - inclusive,
            "total": total,
            "total_excluding_tax": total - tax,
            "tax": tax,
            "total_tax_amounts": [
                {k: t[k] for k in ("amount", "inclusive", "tax_rate", "taxable_amount")}
                for t in taxes
            ],
            "total_discount_amounts": [dict(d) for d in discounts],
            "effective_at": None if spec.effective_at is None else epoch(spec.effective_at),
            "due_date": due_date,
            "period_start": anchor,
            "period_end": anchor,
            "description": None,
            "metadata": dict(spec.metadata),
            "status_transitions": {
                "finalized_at": finalized,
                "paid_at": finalized if status == "paid" else None,
                "voided_at": None,
                "marked_uncollectible_at": None,
            },
            "lines": {
                "object": "list",
                "data": lines,
                "has_more": False,
                "total_count": len(lines),
                "url": f"/v1/invoices/{invoice_id}/lines",
            },
        }
        self.invoices[invoice_id] = invoice
        self._track("invoices", invoice)
        self._invoice_events(invoice, created=True)
        return self._render_invoice(invoice)

    def void_invoice(self, invoice_id: str, params: Json) -> Json:
        invoice = self._invoice(invoice_id)
        _known(params, {"expand"})
        if invoice["status"] not in ("open", "uncollectible"):
            raise _invalid(
                f"You can only void an open or uncollectible invoice; this one is "
                f"{invoice['status']}.",
                code="invoice_not_editable" if invoice["status"] == "draft" else None,
            )
        invoice["status"] = "void"
        invoice["amount_remaining"] = 0
        invoice["status_transitions"]["voided_at"] = self._now()
        self._emit("invoice.voided", self._render_invoice(invoice))
        return self._render_invoice(invoice)

    def pay_invoice(self, invoice_id: str, params: Json) -> Json:
        invoice = self._invoice(invoice_id)
        _known(params, {"paid_out_of_band", "expand"})
        if invoice["status"] not in ("open", "uncollectible"):
            raise _invalid(
                f"Invoice is already {invoice['status']}; only an open or uncollectible invoice "
                "can be paid.",
                code="invoice_not_editable" if invoice["status"] == "draft" else None,
            )
        if not _bool(params.get("paid_out_of_band"), "paid_out_of_band", False):
            raise _invalid(
                "This customer has no attached payment source or default payment method.",
                code="invoice_no_payment_method_types",
            )
        invoice["status"] = "paid"
        invoice["paid_out_of_band"] = True
        invoice["amount_paid"] = invoice["amount_due"]
        invoice["amount_remaining"] = 0
        invoice["status_transitions"]["paid_at"] = self._now()
        self._emit("invoice.paid", self._render_invoice(invoice))
        return self._render_invoice(invoice)

    # quotes

    def _quote(self, quote_id: str) -> Json:
        if quote_id not in self.quotes:
            raise _missing("quote", quote_id)
        return self.quotes[quote_id]

    def create_sandbox_quote(self, spec: SandboxQuote) -> Json:
        """A quote with the given lines, as the API shows it (without its includable lists).
        Prices are made inline (a product per SKU); the amounts follow Stripe's line item:
        ``amount_subtotal`` is quantity times unit amount, ``amount_total`` that less
        ``amount_discount`` plus ``amount_tax``."""
        currency = spec.currency.lower()
        if currency not in CURRENCIES:
            raise _invalid(f"Invalid currency: {currency}.", param="currency")
        quote_id = spec.id or new_id("qt")
        if quote_id in self.quotes:
            raise _invalid(f"Quote already exists: '{quote_id}'", "id", "resource_already_exists")
        if spec.customer is not None:
            if spec.customer not in self.customers:
                raise _missing("customer", spec.customer, "customer", status=400)
            customer_id = spec.customer
        else:
            metadata = {} if spec.account_id is None else {"crm_account_id": spec.account_id}
            name = f"Account {spec.account_id or quote_id}"
            customer_id = str(self.create_customer({"name": name, "metadata": metadata})["id"])
        now = self._now()
        accepted = epoch(spec.accepted_at) if spec.accepted_at is not None else now
        created = min(accepted, now) - 7 * 86400
        lines = [self._quote_line(line, currency, created) for line in spec.lines]
        metadata = dict(spec.metadata)
        for key, value in (
            ("crm_account_id", spec.account_id),
            ("crm_opportunity_id", spec.opportunity_id),
            ("owner", spec.owner),
            ("term_months", spec.term_months),
        ):
            if value is not None:
                metadata[key] = value
        recurring = [line for line in lines if line["price"]["recurring"] is not None]
        computed_recurring: Json | None = None
        if recurring:
            first = recurring[0]["price"]["recurring"]
            same = [
                line
                for line in recurring
                if line["price"]["recurring"]["interval"] == first["interval"]
                and line["price"]["recurring"]["interval_count"] == first["interval_count"]
            ]
            computed_recurring = {
                **_quote_totals(same),
                "interval": first["interval"],
                "interval_count": first["interval_count"],
            }
        accepted_at = accepted if spec.status == "accepted" else None
        quote: Json = {
            "id": quote_id,
            "object": "quote",
            **_quote_totals(lines),
            "application": None,
            "application_fee_amount": None,
            "application_fee_percent": None,
            "automatic_tax": {"enabled": False, "liability": None, "status": None},
            "collection_method": spec.collection_method,
            "computed": {"recurring": computed_recurring, "upfront": _quote_totals(lines)},
            "created": created,
            "currency": currency,
            "customer": customer_id,
            "default_tax_rates": [],
            "description": None,
            "discounts": [],
            "expires_at": created + 30 * 86400,
            "footer": None,
            "from_quote": None,
            "header": None,
            # Accepting a quote makes Stripe create its invoice (and subscription); the
            # emulator does not make them.
            "invoice": None,
            "invoice_settings": {
                "days_until_due": (
                    spec.days_until_due if spec.collection_method == "send_invoice" else None
                ),
                "issuer": {"type": "self"},
            },
            "livemode": False,
            "metadata": metadata,
            "number": None if spec.status == "draft" else f"QT-{quote_id[3:11].upper()}-0001",
            "on_behalf_of": None,
            "status": spec.status,
            "status_transitions": {
                "accepted_at": accepted_at,
                "canceled_at": now if spec.status == "canceled" else None,
                "finalized_at": None if spec.status == "draft" else created + 3600,
            },
            "subscription": None,
            "subscription_data": {
                "description": None,
                "effective_date": (
                    None if spec.effective_date is None else epoch(spec.effective_date)
                ),
                "metadata": None,
                "trial_period_days": None,
            },
            "subscription_schedule": None,
            "test_clock": None,
            "transfer_data": None,
        }
        self.quotes[quote_id] = quote
        self.quote_lines[quote_id] = lines
        return self._render_quote(quote_id, [])

    def _quote_line(self, line: SandboxQuoteLine, currency: str, created: int) -> Json:
        sku = line.sku
        product_id = sku or new_id("prod")
        if product_id not in self.products:
            self.create_product({"id": product_id, "name": line.description or product_id})
        recurrence = (
            None
            if line.recurring is None
            else {
                "aggregate_usage": None,
                "interval": line.recurring,
                "interval_count": line.interval_count,
                "meter": None,
                "trial_period_days": None,
                "usage_type": "licensed",
            }
        )
        price: Json = {
            "id": new_id("price"),
            "object": "price",
            "active": True,
            "billing_scheme": "per_unit",
            "created": created,
            "currency": currency,
            "custom_unit_amount": None,
            "livemode": False,
            "lookup_key": None if sku is None else sku.lower(),
            "metadata": {} if sku is None else {"sku": sku},
            "nickname": None,
            "product": product_id,
            "recurring": recurrence,
            "tax_behavior": "exclusive",
            "tiers_mode": None,
            "transform_quantity": None,
            "type": "one_time" if recurrence is None else "recurring",
            "unit_amount": line.unit_amount,
            "unit_amount_decimal": str(line.unit_amount),
        }
        self.prices[price["id"]] = price
        subtotal = line.quantity * line.unit_amount
        discounts = (
            [
                {
                    "amount": line.discount,
                    "discount": {"id": new_id("di"), "object": "discount", "coupon": None},
                }
            ]
            if line.discount
            else []
        )
        taxes = (
            [
                {
                    "amount": line.tax,
                    "rate": {"id": new_id("txr"), "object": "tax_rate", "inclusive": False},
                    "taxability_reason": None,
                    "taxable_amount": subtotal - line.discount,
                }
            ]
            if line.tax
            else []
        )
        return {
            "id": new_id("li"),
            "object": "item",
            "amount_discount": line.discount,
            "amount_subtotal": subtotal,
            "amount_tax": line.tax,
            "amount_total": subtotal - line.discount + line.tax,
            "currency": currency,
            "description": line.description or self.products[product_id]["name"],
            "discounts": discounts,
            "price": price,
            "quantity": line.quantity,
            "taxes": taxes,
        }

    def _render_quote(self, quote_id: str, expand: list[Any]) -> Json:
        """The quote as the API answers it: ``line_items`` and
        ``computed.upfront.line_items`` are includable, so they appear only when asked for
        with ``expand[]`` (their first page, as a list object)."""
        rendered = copy.deepcopy(self._quote(quote_id))
        for index, path in enumerate(expand):
            if path == "line_items":
                rendered["line_items"] = self._embedded_lines(quote_id, "line_items")
            elif path == "computed.upfront.line_items":
                rendered["computed"]["upfront"]["line_items"] = self._embedded_lines(
                    quote_id, "computed_upfront_line_items"
                )
            elif path == "customer":
                customer_id = rendered["customer"]
                if customer_id in self.customers:
                    rendered["customer"] = copy.deepcopy(self.customers[customer_id])
            else:
                raise _invalid(
                    f"This property cannot be expanded ({path}).", param=f"expand[{index}]"
                )
        return rendered

    def _embedded_lines(self, quote_id: str, path: str) -> Json:
        lines = self.quote_lines[quote_id]
        return {
            "object": "list",
            "data": [_without_includables(line, ()) for line in lines[:EMBEDDED_LINES]],
            "has_more": len(lines) > EMBEDDED_LINES,
            "url": f"/v1/quotes/{quote_id}/{path}",
        }

    def get_quote(self, quote_id: str, params: Json) -> Json:
        """``GET /v1/quotes/{id}``: the quote; ``expand[]`` includes ``line_items``,
        ``computed.upfront.line_items`` or expands ``customer``."""
        _known(params, {"expand"})
        return self._render_quote(quote_id, _list(params.get("expand"), "expand"))

    def list_quote_line_items(self, quote_id: str, params: Json, *, upfront: bool) -> Json:
        """``GET /v1/quotes/{id}/line_items`` (and ``computed_upfront_line_items``): a list
        of the quote's line items in quote order, ``limit`` (1 to 100, default 10) after
        ``starting_after`` or before ``ending_before``; each item's ``discounts`` and
        ``taxes`` are includable (``expand[]=data.discounts``, ``data.taxes``)."""
        self._quote(quote_id)
        _known(params, {"limit", "starting_after", "ending_before", "expand"})
        limit = _int(params.get("limit"), "limit", minimum=1, default=10)
        if limit > 100:
            raise _invalid("Invalid limit: must be at most 100", param="limit")
        included: list[str] = []
        for index, path in enumerate(_list(params.get("expand"), "expand")):
            if path not in ("data.discounts", "data.taxes"):
                raise _invalid(
                    f"This property cannot be expanded ({path}).", param=f"expand[{index}]"
                )
            included.append(str(path).removeprefix("data."))
        lines = self.quote_lines[quote_id]
        ids = [line["id"] for line in lines]
        after = _str(params.get("starting_after"), "starting_after")
        before = _str(params.get("ending_before"), "ending_before")
        if after is not None and before is not None:
            raise _invalid(
                "You may only specify one of these parameters: starting_after, ending_before."
            )
        start, stop = 0, len(lines)
        if after is not None:
            if after not in ids:
                raise _missing("line item", after, "starting_after", status=400)
            start = ids.index(after) + 1
            stop = min(start + limit, len(lines))
        elif before is not None:
            if before not in ids:
                raise _missing("line item", before, "ending_before", status=400)
            stop = ids.index(before)
            start = max(stop - limit, 0)
        else:
            stop = min(limit, len(lines))
        page = lines[start:stop]
        more = start > 0 if before is not None else stop < len(lines)
        path = "computed_upfront_line_items" if upfront else "line_items"
        return {
            "object": "list",
            "data": [_without_includables(line, included) for line in page],
            "has_more": more,
            "url": f"/v1/quotes/{quote_id}/{path}",
        }

    def quote_event(
        self,
        quote_id: str,
        type: str = "quote.accepted",
        *,
        event_id: str | None = None,
        created: int | None = None,
    ) -> Json:
        """The event Stripe would deliver about the quote: the envelope with the quote in
        ``data.object`` as its API renders it *without expansion*, so without
        ``line_items`` or ``computed.upfront.line_items`` (an event never carries
        includable properties)."""
        quote = self._render_quote(quote_id, [])
        return {
            "id": event_id or new_id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": self._now() if created is None else created,
            "data": {"object": quote},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": type,
        }


# --- HTTP -----------------------------------------------------------------------------------


def _api_key(request: Request, expected: str) -> str:
    """The API key the request authenticates with; raises the 401 Stripe answers otherwise."""
    key = bearer_token(request)
    if key is None:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic" and credentials.strip():
            try:
                key = base64.b64decode(credentials.strip(), validate=True).decode().split(":")[0]
            except (binascii.Error, UnicodeDecodeError):
                key = None
    if not key:
        raise StripeError(
            401,
            "You did not provide an API key. Send it in the Authorization header, as Bearer "
            "auth ('Authorization: Bearer <key>') or as the basic-auth user name.",
        )
    if not hmac.compare_digest(key.encode(), expected.encode()):
        shown = f"{key[:8]}{'*' * 8}{key[-4:]}" if len(key) > 12 else "*" * len(key)
        raise StripeError(401, f"Invalid API Key provided: {shown}")
    return key


async def _pairs(request: Request) -> list[tuple[str, str]]:
    pairs = parse_qsl(request.url.query, keep_blank_values=True)
    if request.method != "GET":
        raw = await request.body()
        try:
            pairs += parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=bool(raw))
        except (UnicodeDecodeError, ValueError):
            raise _invalid(
                "Invalid request body: expected application/x-www-form-urlencoded"
            ) from None
    return pairs


Action = Callable[[StripeStore, Json], Json]


def build_control_router(state: SandboxState) -> APIRouter:
    """Sandbox-only routes for tests and dev, mounted at ``/_sandbox/stripe``: no auth, no
    fault injection (they are not part of Stripe's API)."""
    router = APIRouter()

    @router.post("/invoices")
    async def create_invoice(spec: SandboxInvoice) -> Response:
        try:
            return json_response(state.stripe.create_sandbox_invoice(spec))
        except StripeError as error:
            return error.response()

    @router.post("/quotes")
    async def create_quote(spec: SandboxQuote) -> Response:
        try:
            return json_response(state.stripe.create_sandbox_quote(spec))
        except StripeError as error:
            return error.response()

    @router.post("/quotes/{quote_id}/events")
    async def quote_event(quote_id: str, request: QuoteEventRequest) -> Response:
        """The event Stripe would send about the quote, signed with ``secret`` as Stripe
        signs a delivery to an endpoint: the raw ``payload`` to post and its headers."""
        try:
            event = state.stripe.quote_event(quote_id, request.type)
        except StripeError as error:
            return error.response()
        payload = json.dumps(event, indent=2).encode()
        timestamp = int(time.time()) if request.timestamp is None else request.timestamp
        return json_response(
            {
                "event": event,
                "payload": payload.decode(),
                "headers": {
                    "Content-Type": "application/json; charset=utf-8",
                    "Stripe-Signature": sign_event(request.secret, payload, timestamp),
                },
            }
        )

    return router


def build_router(state: SandboxState) -> APIRouter:
    """The Stripe routes over ``state.stripe`` (looked up per request: a reset replaces it)."""
    router = APIRouter()

    async def serve(request: Request, operation: str, action: Action) -> Response:
        store = state.stripe
        faults = VendorFaults(state.faults, VENDOR, fault_response)
        try:
            api_key = _api_key(request, state.tokens[VENDOR])
            pairs = await _pairs(request)
            params = parse_form(pairs)
        except StripeError as error:
            return error.response()

        slot: IdempotentRequest | None = None
        slot_key: tuple[str, str] | None = None
        key = request.headers.get("idempotency-key")
        if request.method == "POST" and key is not None:
            if not key or len(key) > 255:
                return _invalid(
                    "Idempotency keys are 1 to 255 characters long.", "Idempotency-Key"
                ).response()
            fingerprint = (request.method, request.url.path, tuple(sorted(pairs)))
            slot_key = (api_key, key)
            earlier = store.idempotency.get(slot_key)
            if earlier is not None:
                return _replay(earlier, fingerprint, key)
            slot = store.idempotency[slot_key] = IdempotentRequest(fingerprint)

        def release() -> None:
            if slot_key is not None and store.idempotency.get(slot_key) is slot:
                del store.idempotency[slot_key]

        try:
            if (injected := await faults.before(operation)) is not None:
                release()
                return injected
            saved = True
            try:
                status, body = 200, action(store, params)
            except StripeError as error:
                status, body = error.status, error.body()
                saved = not error.invalid_parameter
        except BaseException:
            release()
            raise
        if slot is not None:
            if status < 500 and saved:
                slot.status, slot.body = status, body
            else:
                release()
        if (injected := await faults.after(operation)) is not None:
            return injected
        return json_response(body, status, _with_request_id())

    def _replay(
        earlier: IdempotentRequest,
        fingerprint: tuple[str, str, tuple[tuple[str, str], ...]],
        key: str,
    ) -> Response:
        if earlier.status is None or earlier.body is None:
            return StripeError(
                409,
                "There is currently another in-progress request using this Idempotency-Key "
                "(that probably means a request with it is still running). Try again later.",
                code="idempotency_key_in_use",
                headers={"Stripe-Should-Retry": "true"},
            ).response()
        if earlier.fingerprint[:2] != fingerprint[:2]:
            return StripeError(
                400,
                f"Keys for idempotent requests can only be used for the same endpoint they were "
                f"first used for ({earlier.fingerprint[0]} {earlier.fingerprint[1]}); key {key} "
                "was sent to another one.",
                type="idempotency_error",
            ).response()
        if earlier.fingerprint != fingerprint:
            return StripeError(
                400,
                "Keys for idempotent requests can only be used with the same parameters they "
                f"were first used with. Try using a key other than '{key}' if you meant to "
                "execute a different request.",
                type="idempotency_error",
            ).response()
        return json_response(
            earlier.body, earlier.status, _with_request_id({"Idempotent-Replayed": "true"})
        )

    # customers
    @router.get("/v1/customers/search")
    async def search_customers(request: Request) -> Response:
        return await serve(request, "search_customers", lambda s, p: s.search("customers", p))

    @router.get("/v1/customers")
    async def list_customers(request: Request) -> Response:
        return await serve(request, "list_customers", lambda s, p: s.list_objects("customers", p))

    @router.post("/v1/customers")
    async def create_customer(request: Request) -> Response:
        return await serve(request, "create_customer", lambda s, p: s.create_customer(p))

    @router.get("/v1/customers/{customer_id}")
    async def get_customer(request: Request, customer_id: str) -> Response:
        return await serve(request, "get_customer", lambda s, p: s.get_customer(customer_id))

    @router.post("/v1/customers/{customer_id}")
    async def update_customer(request: Request, customer_id: str) -> Response:
        return await serve(
            request, "update_customer", lambda s, p: s.update_customer(customer_id, p)
        )

    # products
    @router.post("/v1/products")
    async def create_product(request: Request) -> Response:
        return await serve(request, "create_product", lambda s, p: s.create_product(p))

    @router.get("/v1/products/{product_id}")
    async def get_product(request: Request, product_id: str) -> Response:
        return await serve(request, "get_product", lambda s, p: s.get_product(product_id))

    # subscriptions
    @router.get("/v1/subscriptions/search")
    async def search_subscriptions(request: Request) -> Response:
        return await serve(
            request, "search_subscriptions", lambda s, p: s.search("subscriptions", p)
        )

    @router.get("/v1/subscriptions")
    async def list_subscriptions(request: Request) -> Response:
        return await serve(request, "list_subscriptions", lambda s, p: s.list_subscriptions(p))

    @router.post("/v1/subscriptions")
    async def create_subscription(request: Request) -> Response:
        return await serve(request, "create_subscription", lambda s, p: s.create_subscription(p))

    @router.get("/v1/subscriptions/{subscription_id}")
    async def get_subscription(request: Request, subscription_id: str) -> Response:
        return await serve(
            request, "get_subscription", lambda s, p: s.get_subscription(subscription_id)
        )

    @router.post("/v1/subscriptions/{subscription_id}")
    async def update_subscription(request: Request, subscription_id: str) -> Response:
        return await serve(
            request,
            "update_subscription",
            lambda s, p: s.update_subscription(subscription_id, p),
        )

    @router.delete("/v1/subscriptions/{subscription_id}")
    async def cancel_subscription(request: Request, subscription_id: str) -> Response:
        return await serve(
            request,
            "cancel_subscription",
            lambda s, p: s.cancel_subscription(subscription_id, p),
        )

    # quotes
    @router.get("/v1/quotes/{quote_id}")
    async def get_quote(request: Request, quote_id: str) -> Response:
        return await serve(request, "get_quote", lambda s, p: s.get_quote(quote_id, p))

    @router.get("/v1/quotes/{quote_id}/line_items")
    async def list_quote_line_items(request: Request, quote_id: str) -> Response:
        return await serve(
            request,
            "list_quote_line_items",
            lambda s, p: s.list_quote_line_items(quote_id, p, upfront=False),
        )

    @router.get("/v1/quotes/{quote_id}/computed_upfront_line_items")
    async def list_quote_upfront_line_items(request: Request, quote_id: str) -> Response:
        return await serve(
            request,
            "list_quote_upfront_line_items",
            lambda s, p: s.list_quote_line_items(quote_id, p, upfront=True),
        )

    # invoices
    @router.get("/v1/invoices")
    async def list_invoices(request: Request) -> Response:
        return await serve(request, "list_invoices", lambda s, p: s.list_objects("invoices", p))

    @router.get("/v1/events")
    async def list_events(request: Request) -> Response:
        return await serve(request, "list_events", lambda s, p: s.list_events(p))

    @router.get("/v1/invoices/{invoice_id}")
    async def get_invoice(request: Request, invoice_id: str) -> Response:
        return await serve(request, "get_invoice", lambda s, p: s.get_invoice(invoice_id, p))

    @router.get("/v1/invoices/{invoice_id}/lines")
    async def list_invoice_lines(request: Request, invoice_id: str) -> Response:
        return await serve(
            request, "list_invoice_lines", lambda s, p: s.list_invoice_lines(invoice_id, p)
        )

    @router.post("/v1/invoices/{invoice_id}/finalize")
    async def finalize_invoice(request: Request, invoice_id: str) -> Response:
        return await serve(
            request, "finalize_invoice", lambda s, p: s.finalize_invoice(invoice_id, p)
        )

    @router.post("/v1/invoices/{invoice_id}/void")
    async def void_invoice(request: Request, invoice_id: str) -> Response:
        return await serve(request, "void_invoice", lambda s, p: s.void_invoice(invoice_id, p))

    @router.post("/v1/invoices/{invoice_id}/pay")
    async def pay_invoice(request: Request, invoice_id: str) -> Response:
        return await serve(request, "pay_invoice", lambda s, p: s.pay_invoice(invoice_id, p))

    return router
