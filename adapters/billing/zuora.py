"""Zuora as the billing system (``BillingPort``), over the Zuora v1 REST API.

Wire format: JSON both ways; amounts are decimal numbers in major units (``37.8``, not
cents), parsed as exact ``Decimal`` and sent as exact JSON numbers; dates are ISO calendar
dates in the tenant's time zone. Every call carries ``Authorization: Bearer <token>`` from
Zuora's OAuth 2.0 client credentials grant (``POST /oauth/token`` with ``client_id``,
``client_secret`` and ``grant_type=client_credentials``): the token is cached until a minute
before its ``expires_in`` (about an hour) and fetched again once when the API answers 401
(:mod:`adapters.oauth`).

Zuora reports most failures of its v1 API as **HTTP 200** with ``"success": false`` and
``reasons: [{"code": <8 digits>, "message"}]``; some endpoints use a 4xx status with the same
body. The last two digits of the code are its category: 11 authentication, 50 locking
contention, 60 internal error, 61 temporary error and 70 request limit are transient; 10
permission, 20 invalid value, 21 unknown field, 22 missing required field, 30 rule
restriction, 45 unsupported and 90 malformed are rejections; 40 is :class:`NotFoundError`.
Statuses decide first: 401, 408, 409 (an ``idempotency-key`` request still in flight), 429
(with ``Retry-After``) and 5xx are transient; 422 (the key reused with another body) is a
rejection. A 429, category 70 and CRUD's ``REQUEST_EXCEEDED_LIMIT`` / ``REQUEST_EXCEEDED_RATE``
are throttling (:class:`~adapters.errors.Throttle`, never a circuit-breaker failure). The
body of an HTTP 200 is read inside the breaker's guard (:func:`answer_failure`), so a failure
Zuora reports there counts as the same error status would.

Mapping and keys:

- **customer** = a Zuora Account (``POST /v1/accounts``): ``crmId`` holds the CRM account id;
  ``name`` the legal entity; one contact as bill-to and sold-to (the postal code is the
  contact's ``zipCode``); ``taxInfo.VATId``; the
  account's ``currency`` (Zuora bills an account in one currency: a customer without a
  preferred currency is rejected); ``billCycleDay`` 0 (set by the first subscription). The
  billing id revsync uses is the ``accountNumber``. Found again by Object Query
  (``GET /object-query/accounts?filter[]=crmId.EQ:<id>``), created with the caller's key as
  ``idempotency-key``. Golden fields: :mod:`adapters.billing.zuora_fields`.
- **subscription** = created by an Order (``POST /v1/orders``) with one ``CreateSubscription``
  action for ``existingAccountNumber``: termed (``term_months``, no auto-renewal), every
  trigger date the quote's start date, ``paymentTerm`` the quote's terms (``Net 30``), and one
  ``subscribeToRatePlans`` entry per quote line whose charge override carries the discounted
  price (``recurringPerUnit`` / ``oneTimePerUnit`` ``quantity`` and ``listPrice``) and the
  quote line id (``QuoteLineId__c``). ``processingOptions.runBilling`` bills the first period
  at once, so the answer names the first invoice. Subscription custom fields
  ``RevsyncKey__c`` (the idempotency key), ``QuoteId__c``, ``CrmAccountId__c``. Zuora keeps
  ``idempotency-key`` for 24 hours only, so ``create_subscription`` first looks the key up
  (``GET /object-query/subscriptions?filter[]=RevsyncKey__c.EQ:<key>``); the same key and
  the same body replay the first answer. The subscription id revsync uses is the
  ``subscriptionNumber`` (Object Query names it the subscription's ``name``, and names
  custom fields with a lower-case first letter: ``revsyncKey__c``); its latest invoice is
  found through its invoice items
  (``/object-query/invoice-items?filter[]=subscriptionNumber.EQ:<n>&expand[]=invoice``).
  The account's currency is ``billingAndPayment.currency`` of ``GET /v1/accounts/<key>``.
- **rate plans**: each SKU is a Zuora product (``GET /v1/catalog/product/<sku>``, the SKU
  being a product key); a line uses the product's first active rate plan with a per-unit
  charge of its kind (``Recurring`` for recurring lines, billed ``Month`` or ``Annual``;
  ``OneTime`` otherwise) priced in the quote's currency. An unknown SKU, or one without
  such a charge, is rejected before the order is sent.
- **prices**: Zuora bills ``quantity * listPrice`` rounded to the currency's unit. A line is
  sent with its own quantity and ``listPrice`` = net amount / quantity when that division is
  exact within nine decimal places (so Zuora's product is the net amount), else with quantity
  1 and the net amount as the price (the real quantity stays in ``QuoteQuantity__c``).
- **cancel** = an Order with a ``CancelSubscription`` action, ``cancellationPolicy``
  ``SpecificDate`` at the subscription's contract effective date (at once: nothing is left to
  prorate or credit), no billing run, the reason as the order ``description``, under the key
  ``revsync-cancel:<subscription number>:<hash of the reason>`` (a cancel with another reason
  is another request, not a reused key). A ``Cancelled`` subscription is returned as is.
- **invoices**: ``invoice_id`` is the Zuora invoice number (any invoice key works in the
  API). ``get_invoice`` reads ``GET /v1/invoices/<key>`` (which names its account by
  ``accountId`` only), the account (for ``crmId`` and ``accountNumber``) and
  ``/v1/invoices/<key>/items`` page by page (40 a page, Zuora's largest; an item names its
  subscription's number as ``subscriptionName``). Zuora's ``serviceEndDate`` is the *last* day of
  service; the domain's ``service_end`` is the day after. A ``OneTime`` item (or one without
  a period) is a one-off line; the item ``sku`` is the line's SKU; ``chargeAmount`` is net of
  tax, ``taxAmount`` the tax; the items must add up to the invoice ``amount``
  (``amount_mismatch`` otherwise). Status: ``Draft`` is rejected; ``Posted`` is ``open``
  while a balance is due and ``paid`` once none is; ``Canceled`` is ``void``.
  ``void_invoice`` cancels (``PUT /v1/invoices/<key>/cancel``), which Zuora does for a draft
  only, so a posted invoice is first unposted back to draft (``PUT
  /v1/invoices/<key>/unpost``), which Zuora refuses once a payment, adjustment or credit is
  applied. A large invoice is unposted by a job (the answer names ``jobId`` and a
  ``jobStatus`` not yet ``Completed``): that is transient, and the retry finds a draft. A
  paid invoice is rejected (``invoice_paid``), a partly paid one too
  (``invoice_partially_paid``); a zero one is returned as is, a cancelled one too. The
  classifier also reads the CRUD form of failures (``{"Success": false, "Errors":
  [{"Code", "Message"}]}`` with named codes: ``INVALID_ID`` is not found;
  ``LOCK_COMPETITION``, ``TEMPORARY_ERROR``, ``SERVER_UNAVAILABLE``, ``UNKNOWN_ERROR``,
  ``TRANSACTION_TIMEOUT``, ``REQUEST_EXCEEDED_LIMIT``, ``REQUEST_EXCEEDED_RATE`` and
  ``INVALID_SESSION`` are transient; the rest rejected), though revsync makes no CRUD call.
- **listings** use Object Query throughout (``pageSize`` at most 99: Zuora's limit for
  Object Query, where the SDK's generated bound says 50, the v1 pagination one; ``cursor`` =
  ``nextPage``): every subscription (the latest version of each), every account, and every
  invoice but drafts (``filter[]=status.NE:Draft``): posted ones (open or paid) and cancelled
  ones (void), so reconciliation sees an invoice voided in billing whose receivable is open.
  A reconciliation window adds ``filter[]=updatedDate.GE:<start>`` and ``updatedDate.LT:<end>``
  (``createdDate`` for a created window; UTC ISO 8601; the audit fields as Zuora's SDK
  models name them); keyed lookups are ``IN`` filters
  (``filter[]=RevsyncKey__c.IN:[...]``, ``crmId.IN:[...]``, ``invoiceNumber.IN:[...]``, 50
  values a query) ("Expand, filter, fields, and sort", Zuora developer documentation).

Updates (``PUT /v1/accounts/<key>``) carry no ``idempotency-key`` (Zuora takes it on POST and
PATCH only): writing the same values again changes nothing. A quote in another currency than
its account is rejected before the order (``currency_mismatch``, read from
``GET /v1/accounts/<number>``): Zuora would bill it in the account's currency.

What the tenant must have (set up once, outside revsync): Orders enabled; the custom fields
``CrmAccountName__c`` (Account), ``RevsyncKey__c``, ``QuoteId__c``, ``CrmAccountId__c``
(Subscription; ``RevsyncKey__c`` filterable in Object Query) and ``QuoteLineId__c``,
``QuoteQuantity__c`` (rate plan charge); the payment terms ``Due Upon Receipt`` and
``Net 15`` to ``Net 90``; a product per catalog SKU; invoices from order billing runs posted
automatically (a draft first invoice is cancelled directly on compensation, but
invoice-to-revenue reads posted invoices only).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any
from urllib.parse import quote as url_quote
from urllib.parse import urlencode

import httpx
from pydantic import ValidationError

from adapters.billing.zuora_fields import (
    NAME_FIELD,
    _dict,
    account_update_body,
    fields_from_account,
)
from adapters.breaker import CircuitBreaker
from adapters.errors import NotFoundError, RejectedError, Throttle, TransientError, VendorError
from adapters.http import AnswerCheck, VendorHttp, decode_json, vendor_error
from adapters.oauth import AuthorizedHttp, ClientSecretGrant, OAuthTokens, TokenSource
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
from domain.quote import BillingInterval, PaymentTerms
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

VENDOR = "zuora"
TOKEN_PATH = "/oauth/token"
# Object Query's largest page.
MAX_PAGE_SIZE = 99
# Invoice items read per request (``GET /v1/invoices/{key}/items`` takes at most 40).
ITEMS_PAGE_SIZE = 40
# listPrice decimals revsync sends (Zuora stores prices with more places than currencies).
PRICE_DECIMALS = 9
MAX_DESCRIPTION = 500
# An order action takes effect on each of these dates; revsync sets all to the start date.
TRIGGER_DATES = ("ContractEffective", "ServiceActivation", "CustomerAcceptance")

KEY_FIELD = "RevsyncKey__c"
QUOTE_FIELD = "QuoteId__c"
ACCOUNT_FIELD = "CrmAccountId__c"
LINE_FIELD = "QuoteLineId__c"
QUANTITY_FIELD = "QuoteQuantity__c"

# Error categories (the code's last two digits) worth retrying.
TRANSIENT_CATEGORIES = frozenset({"11", "50", "60", "61", "70"})
NOT_FOUND_CATEGORY = "40"
# The named error codes of CRUD (``/v1/object/...``) calls.
TRANSIENT_CRUD_CODES = frozenset(
    {"LOCK_COMPETITION", "TEMPORARY_ERROR", "SERVER_UNAVAILABLE", "UNKNOWN_ERROR"}
    | {"TRANSACTION_TIMEOUT", "REQUEST_EXCEEDED_LIMIT", "REQUEST_EXCEEDED_RATE"}
    | {"INVALID_SESSION"}
)
NOT_FOUND_CRUD_CODES = frozenset({"INVALID_ID"})
# Throttling, not failure: the request-limit category and CRUD's request-limit codes.
THROTTLE_CATEGORY = "70"
THROTTLE_CRUD_CODES = frozenset({"REQUEST_EXCEEDED_LIMIT", "REQUEST_EXCEEDED_RATE"})
CATEGORY_NAMES = {
    "10": "permission or access denied",
    "11": "authentication failed",
    "20": "invalid format or value",
    "21": "unknown field in request",
    "22": "missing required field",
    "30": "rule restriction",
    "40": "not found",
    "45": "unsupported request",
    "50": "locking contention",
    "60": "internal error",
    "61": "temporary error",
    "70": "request exceeded limit",
    "90": "malformed request",
}

_SUBSCRIPTION_STATUS: dict[str, SubscriptionStatus] = {
    "Active": SubscriptionStatus.ACTIVE,
    "Draft": SubscriptionStatus.INCOMPLETE,
    "PendingActivation": SubscriptionStatus.INCOMPLETE,
    "PendingAcceptance": SubscriptionStatus.INCOMPLETE,
    "Suspended": SubscriptionStatus.PAST_DUE,
    "Cancelled": SubscriptionStatus.CANCELED,
    "Expired": SubscriptionStatus.CANCELED,
}

PAYMENT_TERM_NAMES: dict[PaymentTerms, str] = {
    PaymentTerms.DUE_ON_RECEIPT: "Due Upon Receipt",
    PaymentTerms.NET15: "Net 15",
    PaymentTerms.NET30: "Net 30",
    PaymentTerms.NET45: "Net 45",
    PaymentTerms.NET60: "Net 60",
    PaymentTerms.NET90: "Net 90",
}
BILLING_PERIODS = {BillingInterval.MONTH: "Month", BillingInterval.YEAR: "Annual"}
_SKU = re.compile(r"^[A-Z0-9][A-Z0-9_-]{1,39}$")


# --- classification -------------------------------------------------------------------------


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = decode_json(response)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def error_reasons(body: Mapping[str, Any]) -> list[tuple[str | None, str]]:
    """``(code, message)`` of each reason in a Zuora error body (``reasons``, or the
    ``Errors`` / ``message`` forms some endpoints use)."""
    found: list[tuple[str | None, str]] = []
    for reason in body.get("reasons") or body.get("Errors") or []:
        if isinstance(reason, dict):
            code = reason.get("code") or reason.get("Code")
            message = reason.get("message") or reason.get("Message") or ""
            found.append((str(code) if code is not None else None, str(message)))
    if not found and body.get("message"):
        found.append((None, str(body["message"])))
    return found


def error_category(code: str | None) -> str | None:
    """The category of an 8-digit Zuora error code: its last two digits."""
    if code is None or not re.fullmatch(r"\d{8}", code):
        return None
    return code[-2:]


def classify_zuora_error(operation: str, response: httpx.Response) -> VendorError:
    """Zuora's reading of a failed answer (an error status, or HTTP 200 with
    ``"success": false``). See the module docstring for the table."""
    status = response.status_code
    reasons = error_reasons(_body(response))
    code = next((c for c, _ in reasons if c), None)
    category = error_category(code)
    message = "; ".join(m for _, m in reasons if m) or f"HTTP {status} without a Zuora error body"
    if category in CATEGORY_NAMES:
        message = f"{message} ({CATEGORY_NAMES[category]})"
    transient = (
        status in (401, 408, 409, 429)
        or status >= 500
        or category in TRANSIENT_CATEGORIES
        or code in TRANSIENT_CRUD_CODES
    )
    if not transient and (category == NOT_FOUND_CATEGORY or code in NOT_FOUND_CRUD_CODES):
        return NotFoundError(VENDOR, operation, message, status=status, code=code)
    throttled = status == 429 or category == THROTTLE_CATEGORY or code in THROTTLE_CRUD_CODES
    throttle = Throttle.rate("Zuora request limit") if throttled else None
    return vendor_error(
        VENDOR, operation, response, message, code, transient=transient, throttle=throttle
    )


def answer_failure(operation: str) -> AnswerCheck:
    """What a successful status still reports: an answer that is no JSON object, or one
    with ``"success": false`` (v1) / ``"Success": false`` (CRUD), classified as its error
    status would be. Read inside the circuit breaker's guard, so a request limit there is
    no failure and an internal error is one."""

    def check(response: httpx.Response) -> VendorError | None:
        try:
            body = decode_json(response)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _unexpected(operation, "the answer is not a JSON object")
        if body.get("success") is False or body.get("Success") is False:  # v1, CRUD
            return classify_zuora_error(operation, response)
        return None

    return check


def _reject(operation: str, code: str, message: str) -> RejectedError:
    return RejectedError(VENDOR, operation, message, code=code)


def _unexpected(operation: str, message: str) -> TransientError:
    # An answer Zuora does not send (a proxy's page, a truncated body): worth another try.
    return TransientError(VENDOR, operation, f"unexpected answer: {message}")


# --- request building (pure) ----------------------------------------------------------------


def zuora_line_price(line: OrderLine, currency: str) -> tuple[Decimal, Decimal]:
    """``(quantity, listPrice)`` whose product, rounded to the currency, is exactly the
    line's net amount."""
    net = quantize(line.amount, currency)
    quantity = line.quantity
    if quantity > 0:
        with localcontext() as context:
            context.prec = 40
            price = net / quantity
            exact = price.quantize(Decimal(1).scaleb(-PRICE_DECIMALS))
            if exact * quantity == net:
                return quantity.normalize(), _plain(exact)
    return Decimal(1), net


def _plain(value: Decimal) -> Decimal:
    """``value`` without trailing zeros or exponent notation (``37.8``, ``4050``)."""
    normal = value.normalize()
    return normal.quantize(Decimal(1)) if normal == normal.to_integral_value() else normal


def account_body(customer: Customer) -> dict[str, Any]:
    """The ``POST /v1/accounts`` body for ``customer``."""
    if customer.currency is None:
        raise _reject(
            "create_account",
            "currency_required",
            f"CRM account {customer.account_id} has no currency: a Zuora account bills in one "
            "currency, set on creation",
        )
    address = customer.billing_address
    contact: dict[str, Any] = {
        "firstName": "Accounts",
        "lastName": "Payable",
        "workEmail": customer.email,
        "address1": address.line1,
        "city": address.city,
        "zipCode": address.postal_code,
        "country": address.country,
    }
    if address.line2:
        contact["address2"] = address.line2
    if address.region:
        contact["state"] = address.region
    body: dict[str, Any] = {
        "name": customer.legal_entity,
        "crmId": customer.account_id,
        "currency": customer.currency,
        "billCycleDay": 0,
        "autoPay": False,
        "billToContact": contact,
        "soldToContact": dict(contact),
        NAME_FIELD: customer.name,
    }
    if customer.tax_id and customer.tax_id.strip():
        body["taxInfo"] = {"VATId": customer.tax_id.strip()}
    return body


def pick_charge(product: Mapping[str, Any], line: OrderLine, currency: str) -> tuple[str, str]:
    """``(productRatePlanId, productRatePlanChargeId)`` the line subscribes to: the first
    active rate plan with a per-unit charge of the line's kind priced in ``currency``."""
    wanted = "OneTime" if line.billing.value == "one_time" else "Recurring"
    for plan in product.get("productRatePlans") or []:
        if not isinstance(plan, dict) or plan.get("status", "Active") != "Active":
            continue
        for charge in plan.get("productRatePlanCharges") or []:
            if not isinstance(charge, dict) or charge.get("type") != wanted:
                continue
            if charge.get("model") not in ("PerUnit", None):
                continue
            currencies = {str(p.get("currency")) for p in charge.get("pricing") or []}
            if currency in currencies:
                return str(plan["id"]), str(charge["id"])
    raise _reject(
        "create_subscription",
        "no_rate_plan",
        f"product {line.sku} has no active rate plan with a per-unit {wanted} charge priced "
        f"in {currency} (quote line {line.line_id})",
    )


def order_body(
    draft: SubscriptionDraft,
    account_number: str,
    charges: Mapping[str, tuple[str, str]],
) -> dict[str, Any]:
    """The ``POST /v1/orders`` body creating the draft's subscription. ``charges`` maps each
    line id to its rate plan and charge. Deterministic: a retry under the same
    ``idempotency-key`` sends the same body."""
    start = draft.start_date.isoformat()
    plans: list[dict[str, Any]] = []
    for line in [*draft.recurring_lines, *draft.one_time_lines]:
        plan_id, charge_id = charges[line.line_id]
        quantity, price = zuora_line_price(line, draft.currency)
        per_unit = {"quantity": quantity, "listPrice": price}
        override: dict[str, Any] = {
            "productRatePlanChargeId": charge_id,
            "description": (line.description or line.sku)[:MAX_DESCRIPTION],
            "customFields": {LINE_FIELD: line.line_id, QUANTITY_FIELD: str(line.quantity)},
        }
        if line in draft.recurring_lines:
            interval = line.interval or BillingInterval.MONTH
            override["billing"] = {"billingPeriod": BILLING_PERIODS[interval]}
            override["pricing"] = {"recurringPerUnit": per_unit}
        else:
            override["pricing"] = {"oneTimePerUnit": per_unit}
        plans.append({"productRatePlanId": plan_id, "chargeOverrides": [override]})
    return {
        "orderDate": start,
        "existingAccountNumber": account_number,
        "description": f"revsync quote {draft.quote_id}",
        "subscriptions": [
            {
                "orderActions": [
                    {
                        "type": "CreateSubscription",
                        "triggerDates": [
                            {"name": name, "triggerDate": start} for name in TRIGGER_DATES
                        ],
                        "createSubscription": {
                            "terms": {
                                "initialTerm": {
                                    "termType": "TERMED",
                                    "period": draft.term_months,
                                    "periodType": "Month",
                                    "startDate": start,
                                },
                                "renewalSetting": "RENEW_WITH_SPECIFIC_TERM",
                                "renewalTerms": [
                                    {"period": draft.term_months, "periodType": "Month"}
                                ],
                                "autoRenew": False,
                            },
                            "paymentTerm": PAYMENT_TERM_NAMES[draft.payment_terms],
                            "notes": f"revsync quote {draft.quote_id}",
                            "subscribeToRatePlans": plans,
                        },
                    }
                ],
                "customFields": {
                    KEY_FIELD: draft.idempotency_key,
                    QUOTE_FIELD: draft.quote_id,
                    ACCOUNT_FIELD: draft.account_id,
                },
            }
        ],
        "processingOptions": {"runBilling": True, "billingOptions": {"targetDate": start}},
    }


def cancel_key(subscription_number: str, reason: str) -> str:
    """The ``idempotency-key`` of a cancel order: the same subscription and reason, the same
    key (a retry replays), another reason another key (Zuora would refuse a reused key with
    another body as a 422)."""
    digest = hashlib.sha256(reason.encode()).hexdigest()[:16]
    return f"revsync-cancel:{subscription_number}:{digest}"


def cancel_body(subscription: Mapping[str, Any], reason: str) -> dict[str, Any]:
    """The ``POST /v1/orders`` body cancelling ``subscription`` (as ``GET
    /v1/subscriptions/<key>`` answers it) at its contract effective date."""
    effective = str(subscription.get("contractEffectiveDate") or "")
    if not effective:
        raise _unexpected("cancel_subscription", "subscription without contractEffectiveDate")
    return {
        "orderDate": effective,
        "existingAccountNumber": str(subscription.get("accountNumber")),
        "description": reason[:MAX_DESCRIPTION],
        "subscriptions": [
            {
                "subscriptionNumber": str(subscription.get("subscriptionNumber")),
                "orderActions": [
                    {
                        "type": "CancelSubscription",
                        "triggerDates": [{"name": "ContractEffective", "triggerDate": effective}],
                        "cancelSubscription": {
                            "cancellationPolicy": "SpecificDate",
                            "cancellationEffectiveDate": effective,
                        },
                    }
                ],
            }
        ],
        "processingOptions": {"runBilling": False},
    }


def object_query(
    resource: str,
    *,
    filters: Sequence[str] = (),
    expand: Sequence[str] = (),
    page_size: int = MAX_PAGE_SIZE,
    cursor: str | None = None,
    sort: Sequence[str] = (),
) -> str:
    """The Object Query path for ``resource`` (``accounts``, ``subscriptions``...)."""
    query: list[tuple[str, str]] = [("pageSize", str(min(max(page_size, 1), MAX_PAGE_SIZE)))]
    query += [("filter[]", f) for f in filters]
    query += [("expand[]", e) for e in expand]
    query += [("sort[]", s) for s in sort]
    if cursor is not None:
        query.append(("cursor", cursor))
    return f"/object-query/{resource}?{urlencode(query)}"


# --- response mapping (pure) ----------------------------------------------------------------


def _decimal(value: Any, what: str, operation: str) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise _unexpected(operation, f"{what} is not a number: {value!r}")
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise _unexpected(operation, f"{what} is not a number: {value!r}") from None


def zuora_amount(value: Any, currency: str, what: str, operation: str) -> Decimal:
    """A Zuora amount as an exact ``Decimal`` in the currency's places; rejects one finer
    than the currency's unit (revsync never books a fraction of a cent)."""
    amount = _decimal(value, what, operation)
    exact = quantize(amount, currency)
    if exact != amount:
        raise _reject(
            operation,
            "amount_precision",
            f"{what} {amount} {currency} is finer than the currency's unit",
        )
    return exact


def _date(value: Any, what: str, operation: str) -> date | None:
    if value in (None, ""):
        return None
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise _unexpected(operation, f"{what} is not a date: {value!r}") from None


def to_subscription(
    obj: Mapping[str, Any], operation: str, latest_invoice_id: str | None = None
) -> Subscription:
    status = _SUBSCRIPTION_STATUS.get(str(obj.get("status")))
    if status is None:
        raise _unexpected(operation, f"unknown subscription status {obj.get('status')!r}")
    number = obj.get("subscriptionNumber")
    account = obj.get("accountNumber")
    currency = str(obj.get("currency") or "").upper()
    if not number or not account or currency not in MINOR_UNITS:
        raise _unexpected(operation, "subscription without number, account or currency")
    return Subscription(
        subscription_id=str(number),
        customer_id=str(account),
        currency=currency,
        status=status,
        latest_invoice_id=latest_invoice_id,
    )


def invoice_status(obj: Mapping[str, Any], operation: str) -> InvoiceStatus:
    """Zuora's invoice status in revsync's terms (a posted invoice is paid once its balance
    is zero and something was billed)."""
    status = obj.get("status")
    if status == "Draft":
        return InvoiceStatus.DRAFT
    if status in ("Canceled", "Cancelled"):
        return InvoiceStatus.VOID
    if status == "Posted":
        amount = _decimal(obj.get("amount"), "invoice amount", operation)
        balance = _decimal(obj.get("balance"), "invoice balance", operation)
        return InvoiceStatus.PAID if balance == 0 and amount != 0 else InvoiceStatus.OPEN
    raise _unexpected(operation, f"unknown invoice status {status!r}")


def _service_end(item: Mapping[str, Any], operation: str) -> date | None:
    """The day after Zuora's (inclusive) ``serviceEndDate``."""
    last = _date(item.get("serviceEndDate"), "serviceEndDate", operation)
    return None if last is None else last + timedelta(days=1)


def to_invoice(
    obj: Mapping[str, Any],
    items: Sequence[Mapping[str, Any]],
    operation: str,
    account_number: str | None = None,
) -> Invoice:
    """The invoice (``GET /v1/invoices/{key}``, which names its account by ``accountId``
    only) with its items; ``account_number`` is the account's number, revsync's billing
    customer id."""
    currency = str(obj.get("currency") or "").upper()
    number = obj.get("invoiceNumber")
    account = account_number or obj.get("accountNumber") or obj.get("accountId")
    if not number or not account or currency not in MINOR_UNITS:
        raise _unexpected(operation, "invoice without number, account or currency")
    lines = [
        InvoiceLine(
            description=str(item.get("chargeDescription") or item.get("chargeName") or ""),
            amount=zuora_amount(item.get("chargeAmount"), currency, "item amount", operation),
            period_start=_date(item.get("serviceStartDate"), "serviceStartDate", operation),
            period_end=_service_end(item, operation),
        )
        for item in items
    ]
    # An item names its subscription's number as ``subscriptionName``.
    subscriptions = {str(i["subscriptionName"]) for i in items if i.get("subscriptionName")}
    return Invoice(
        invoice_id=str(number),
        customer_id=str(account),
        subscription_id=min(subscriptions) if subscriptions else None,
        currency=currency,
        status=invoice_status(obj, operation),
        lines=lines,
        subtotal=zuora_amount(
            obj.get("amountWithoutTax", obj.get("amount")), currency, "subtotal", operation
        ),
        tax=zuora_amount(obj.get("taxAmount") or 0, currency, "tax", operation),
        total=zuora_amount(obj.get("amount"), currency, "amount", operation),
        due_date=_date(obj.get("dueDate"), "dueDate", operation),
    )


def _problems(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" if e["loc"] else e["msg"]
        for e in error.errors()
    )


def _map_item(
    item: Mapping[str, Any], invoice_id: str, currency: str, operation: str
) -> SubscriptionLine | OneOffLine:
    item_id = str(item.get("id") or "")
    if not item_id:
        raise _unexpected(operation, f"invoice {invoice_id} has an item without an id")
    sku = str(item.get("sku") or "")
    what = f"invoice {invoice_id} item {item_id}"
    if not _SKU.fullmatch(sku):
        raise _reject(
            operation,
            "invalid_sku",
            f"{what} bills product SKU {sku!r}, which is not a revsync SKU (quote-to-cash "
            "subscribes to products whose SKU is the catalog SKU)",
        )
    fields: dict[str, Any] = {
        "line_id": item_id,
        "sku": sku,
        "description": str(item.get("chargeDescription") or item.get("chargeName") or "")[
            :MAX_DESCRIPTION
        ],
        "amount": zuora_amount(item.get("chargeAmount"), currency, what, operation),
        "tax_amount": zuora_amount(item.get("taxAmount") or 0, currency, f"{what} tax", operation),
    }
    start = _date(item.get("serviceStartDate"), "serviceStartDate", operation)
    end = _service_end(item, operation)
    one_time = item.get("chargeType") == "OneTime"
    try:
        if not one_time and start is not None and end is not None and end > start + timedelta(1):
            return SubscriptionLine(**fields, service_start=start, service_end=end)
        return OneOffLine(**fields, delivery_date=start)
    except ValidationError as error:
        raise _reject(operation, "invalid_line", f"{what}: {_problems(error)}") from None


def check_posted(obj: Mapping[str, Any], operation: str) -> tuple[InvoiceStatus, str]:
    """The invoice's status and currency when revsync can read it for revenue; rejects a
    draft and a currency revsync does not support."""
    invoice_id = str(obj.get("invoiceNumber") or obj.get("id") or "?")
    status = invoice_status(obj, operation)
    if status is InvoiceStatus.DRAFT:
        raise _reject(
            operation,
            "invoice_draft",
            f"invoice {invoice_id} is a draft: revsync reads an invoice once it is posted",
        )
    currency = str(obj.get("currency") or "").upper()
    if currency not in MINOR_UNITS:
        raise _reject(
            operation,
            "unsupported_currency",
            f"invoice {invoice_id} is in {currency or 'no currency'}, which revsync does not "
            "support",
        )
    return status, currency


def finalized_invoice(
    obj: Mapping[str, Any],
    items: Sequence[Mapping[str, Any]],
    account: Mapping[str, Any],
    operation: str = "get_invoice",
) -> FinalizedInvoice:
    """Zuora's invoice (with every item and its account) as the canonical invoice; every
    refusal is a :class:`RejectedError` saying why."""
    invoice_id = str(obj.get("invoiceNumber") or "")
    if not invoice_id:
        raise _unexpected(operation, "invoice without an invoiceNumber")
    status, currency = check_posted(obj, operation)
    basic = _dict(account.get("basicInfo")) or account
    account_id = basic.get("crmId")
    if not account_id:
        raise _reject(
            operation,
            "no_account_id",
            f"invoice {invoice_id} bills Zuora account {basic.get('accountNumber') or '?'}, "
            "which has no crmId: revsync posts invoices of the accounts quote-to-cash created "
            "for a CRM account",
        )
    lines = [_map_item(item, invoice_id, currency, operation) for item in items]
    if not lines:
        raise _reject(operation, "no_lines", f"invoice {invoice_id} has no items")
    subtotal = sum((line.amount for line in lines), Decimal(0))
    tax = sum((line.tax_amount for line in lines), Decimal(0))
    total = zuora_amount(obj.get("amount"), currency, "invoice amount", operation)
    if subtotal + tax != total:
        raise _reject(
            operation,
            "amount_mismatch",
            f"invoice {invoice_id}: its items and their tax come to {subtotal + tax} "
            f"{currency} but Zuora's amount is {total}; revsync does not book an invoice it "
            "cannot account for line by line",
        )
    issue_date = _date(obj.get("invoiceDate"), "invoiceDate", operation)
    if issue_date is None:
        raise _unexpected(operation, f"invoice {invoice_id} has no invoiceDate")
    due_date = _date(obj.get("dueDate"), "dueDate", operation) or issue_date
    try:
        return FinalizedInvoice(
            invoice_id=invoice_id,
            account_id=str(account_id),
            currency=currency,
            issue_date=issue_date,
            due_date=due_date,
            status=status,
            lines=lines,
            subtotal=subtotal,
            tax=tax,
            total=total,
        )
    except ValidationError as error:
        raise _reject(
            operation, "invalid_invoice", f"invoice {invoice_id}: {_problems(error)}"
        ) from None


def query_field(obj: Mapping[str, Any], name: str) -> Any:
    """Field ``name`` of an Object Query record, which names fields with a lower-case first
    letter (``RevsyncKey__c`` answers as ``revsyncKey__c``, ``VATId`` as ``vATId``)."""
    lowered = name[:1].lower() + name[1:]
    return obj.get(lowered, obj.get(name))


def _when(obj: Mapping[str, Any], name: str) -> datetime | None:
    text = obj.get(name)
    if not isinstance(text, str) or not text:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def window_filters(window: Window | None) -> list[str]:
    if window is None:
        return []
    field = "updatedDate" if window.basis is Basis.CHANGED else "createdDate"
    start = window.start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = window.end.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [f"{field}.GE:{start}", f"{field}.LT:{end}"]


# Values of one IN filter.
LOOKUP_BATCH = 50


def subscription_record(obj: Mapping[str, Any]) -> OrderRecord:
    """A listed subscription (Object Query, ``account`` expanded: the number is its
    ``name``) as reconciliation reads it: keyed by ``RevsyncKey__c``, naming its quote and
    CRM account; live unless cancelled or expired."""
    account = _dict(obj.get("account"))
    raw = str(obj.get("status"))
    status = _SUBSCRIPTION_STATUS.get(raw)
    currency = str(obj.get("currency") or account.get("currency") or "").upper()
    return OrderRecord(
        system=System.BILLING,
        record_id=str(obj.get("name")),
        key=query_field(obj, KEY_FIELD) or None,
        quote_ref=query_field(obj, QUOTE_FIELD) or None,
        account_id=query_field(obj, ACCOUNT_FIELD) or account.get("crmId") or None,
        customer_id=account.get("accountNumber") or None,
        currency=currency or None,
        status=status.value if status is not None else raw,
        live=status is not SubscriptionStatus.CANCELED,
        created_at=_when(obj, "createdDate"),
        changed_at=_when(obj, "updatedDate"),
    )


def customer_record(obj: Mapping[str, Any]) -> CustomerRecord:
    """A listed account (Object Query, ``billTo`` expanded) as reconciliation reads it."""
    return CustomerRecord(
        system=System.BILLING,
        record_id=str(obj.get("accountNumber")),
        account_id=obj.get("crmId") or None,
        fields=fingerprints(fields_from_account(obj)),
        created_at=_when(obj, "createdDate"),
        changed_at=_when(obj, "updatedDate"),
    )


# Invoice statuses reconciliation compares: posted (open or paid) and cancelled (void).
LISTED_INVOICES = frozenset({"Posted", "Canceled"})


def invoice_record(obj: Mapping[str, Any], operation: str) -> InvoiceRecord:
    """A listed invoice as reconciliation reads it."""
    currency = str(obj.get("currency") or "").upper()
    if currency not in MINOR_UNITS:
        raise _unexpected(operation, f"invoice {obj.get('invoiceNumber')} without a currency")
    status = invoice_status(obj, operation)
    return InvoiceRecord(
        system=System.BILLING,
        record_id=str(obj.get("invoiceNumber")),
        invoice_id=str(obj.get("invoiceNumber")),
        amount=zuora_amount(obj.get("amount"), currency, "invoice amount", operation),
        currency=currency,
        # A cancelled invoice is owed nothing, whatever balance Zuora left on it.
        amount_due=Decimal(0)
        if status is InvoiceStatus.VOID
        else zuora_amount(obj.get("balance"), currency, "invoice balance", operation),
        status=status.value,
        created_at=_when(obj, "createdDate"),
        changed_at=_when(obj, "updatedDate"),
    )


def latest_versions(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One subscription per number (its ``name``), its highest ``version`` (Zuora versions a
    subscription on every amendment; Object Query can return several), in the order first
    seen."""
    best: dict[str, dict[str, Any]] = {}
    for obj in objects:
        number = str(obj.get("name"))
        kept = best.get(number)
        if kept is None or int(obj.get("version") or 0) > int(kept.get("version") or 0):
            best[number] = obj
    return list(best.values())


# --- the adapter ----------------------------------------------------------------------------


class ZuoraBilling:
    """``BillingPort`` on Zuora. See the module docstring for keys, money and edge cases."""

    vendor = VENDOR

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        client_id: str = "",
        client_secret: str = "",
        tokens: TokenSource | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        if tokens is None:
            tokens = OAuthTokens(
                http,
                vendor=VENDOR,
                token_url=self._base + TOKEN_PATH,
                grant=ClientSecretGrant(client_id, client_secret),
                fix="REVSYNC_ZUORA_CLIENT_ID and REVSYNC_ZUORA_CLIENT_SECRET",
            )
        self.tokens = tokens
        self._http = AuthorizedHttp(
            VendorHttp(VENDOR, http, classify_zuora_error),
            tokens,
            classify=classify_zuora_error,
            base_url=self._base,
        )

    def __repr__(self) -> str:  # never shows the credentials
        return f"ZuoraBilling(base_url={self._base!r})"

    @property
    def breaker(self) -> CircuitBreaker:
        return self._http.breaker

    async def _call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if idempotency_key is not None:
            headers["idempotency-key"] = idempotency_key
        response = await self._http.request(
            operation,
            method,
            path,
            json_body=json_body,
            headers=headers,
            ok=(200, 201),
            check=answer_failure(operation),
        )
        body = decode_json(response)
        assert isinstance(body, dict)  # answer_failure let only a JSON object through
        return body

    async def _query(
        self,
        operation: str,
        resource: str,
        *,
        filters: Sequence[str] = (),
        expand: Sequence[str] = (),
        page_size: int = MAX_PAGE_SIZE,
        cursor: str | None = None,
        sort: Sequence[str] = (),
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One Object Query page and the cursor of the next (None after the last)."""
        body = await self._call(
            operation,
            "GET",
            object_query(
                resource,
                filters=filters,
                expand=expand,
                page_size=page_size,
                cursor=cursor,
                sort=sort,
            ),
        )
        data = body.get("data")
        if not isinstance(data, list):
            raise _unexpected(operation, "an Object Query answer without data")
        after = body.get("nextPage")
        return [o for o in data if isinstance(o, dict)], str(after) if after else None

    @staticmethod
    def _path(*segments: str) -> str:
        return "/" + "/".join(url_quote(s, safe="") for s in segments)

    # customers

    async def find_customer(self, account_id: str) -> str | None:
        """The account number of the CRM account's Zuora account (the oldest if several)."""
        found, _ = await self._query(
            "query_accounts",
            "accounts",
            filters=[f"crmId.EQ:{account_id}"],
            sort=["createdDate.ASC"],
        )
        return str(found[0]["accountNumber"]) if found else None

    async def upsert_customer(self, customer: Customer, idempotency_key: str) -> str:
        found = await self.find_customer(customer.account_id)
        if found is not None:
            return found
        created = await self._call(
            "create_account",
            "POST",
            "/v1/accounts",
            json_body=account_body(customer),
            idempotency_key=idempotency_key,
        )
        number = created.get("accountNumber")
        if not number:
            raise _unexpected("create_account", "no accountNumber")
        return str(number)

    async def update_customer_fields(
        self, customer_id: str, changes: Mapping[MasterField, FieldValue], idempotency_key: str
    ) -> None:
        """Write golden fields onto the account (:mod:`adapters.billing.zuora_fields`). A
        ``PUT`` of the same values again changes nothing, so ``idempotency_key`` (which
        Zuora does not take on PUT) is not sent."""
        operation = "update_account"
        try:
            body = account_update_body(changes)
        except ValueError as error:
            raise _reject(operation, "not_writable", str(error)) from None
        if body:
            await self._call(
                operation, "PUT", self._path("v1", "accounts", customer_id), json_body=body
            )

    # subscriptions

    async def _latest_invoice(self, subscription_number: str) -> str | None:
        items, _ = await self._query(
            "query_invoice_items",
            "invoice-items",
            filters=[f"subscriptionNumber.EQ:{subscription_number}"],
            expand=["invoice"],
            sort=["createdDate.DESC"],
            page_size=1,
        )
        invoice = _dict(items[0].get("invoice")) if items else {}
        return str(invoice["invoiceNumber"]) if invoice.get("invoiceNumber") else None

    async def _get_subscription(
        self, key: str, operation: str = "get_subscription"
    ) -> dict[str, Any]:
        return await self._call(operation, "GET", self._path("v1", "subscriptions", key))

    async def find_subscription(self, idempotency_key: str) -> Subscription | None:
        found, _ = await self._query(
            "query_subscriptions",
            "subscriptions",
            filters=[f"{KEY_FIELD}.EQ:{idempotency_key}"],
            sort=["createdDate.ASC"],
        )
        if not found:
            return None
        number = str(found[0]["name"])  # Object Query's subscription number
        current = await self._get_subscription(number)
        return to_subscription(current, "get_subscription", await self._latest_invoice(number))

    async def _product(self, sku: str) -> dict[str, Any]:
        """The catalog product of ``sku``, read for each order (not cached: a rate plan
        retired since would make Zuora refuse the order)."""
        try:
            return await self._call(
                "get_product", "GET", self._path("v1", "catalog", "product", sku)
            )
        except NotFoundError:
            raise _reject(
                "create_subscription",
                "unknown_sku",
                f"Zuora's product catalog has no product with SKU {sku}",
            ) from None

    async def create_subscription(self, draft: SubscriptionDraft, customer_id: str) -> Subscription:
        existing = await self.find_subscription(draft.idempotency_key)
        if existing is not None:
            return existing
        account = await self._call("get_account", "GET", self._path("v1", "accounts", customer_id))
        currency = _dict(account.get("billingAndPayment")).get("currency")
        if currency != draft.currency:
            raise _reject(
                "create_subscription",
                "currency_mismatch",
                f"quote {draft.quote_id} is in {draft.currency} but Zuora account "
                f"{customer_id} bills in {currency}: a subscription takes its account's currency",
            )
        charges: dict[str, tuple[str, str]] = {}
        for line in [*draft.recurring_lines, *draft.one_time_lines]:
            charges[line.line_id] = pick_charge(await self._product(line.sku), line, draft.currency)
        order = await self._call(
            "create_order",
            "POST",
            "/v1/orders",
            json_body=order_body(draft, customer_id, charges),
            idempotency_key=draft.idempotency_key,
        )
        numbers = [str(n) for n in order.get("subscriptionNumbers") or []]
        numbers += [
            str(s["subscriptionNumber"])
            for s in order.get("subscriptions") or []
            if isinstance(s, dict) and s.get("subscriptionNumber")
        ]
        if not numbers:
            raise _unexpected("create_order", "the order names no subscription")
        invoices = [str(n) for n in order.get("invoiceNumbers") or []]
        current = await self._get_subscription(numbers[0])
        return to_subscription(current, "get_subscription", invoices[0] if invoices else None)

    async def cancel_subscription(self, subscription_id: str, reason: str) -> Subscription:
        current = await self._get_subscription(subscription_id)
        subscription = to_subscription(current, "get_subscription")
        if subscription.status is SubscriptionStatus.CANCELED:
            return subscription
        try:
            await self._call(
                "cancel_order",
                "POST",
                "/v1/orders",
                json_body=cancel_body(current, reason),
                idempotency_key=cancel_key(subscription.subscription_id, reason),
            )
        except RejectedError:
            # A concurrent cancel may have won the race: then it is done.
            again = to_subscription(
                await self._get_subscription(subscription_id), "get_subscription"
            )
            if again.status is SubscriptionStatus.CANCELED:
                return again
            raise
        return to_subscription(await self._get_subscription(subscription_id), "get_subscription")

    async def list_subscriptions(
        self, cursor: str | None, page_size: int, *, window: Window | None = None
    ) -> Page[OrderRecord]:
        """One Object Query page of every subscription, cancelled ones included."""
        found, after = await self._query(
            "query_subscriptions",
            "subscriptions",
            filters=window_filters(window),
            expand=["account"],
            page_size=page_size,
            cursor=cursor,
        )
        return Page(items=[subscription_record(o) for o in latest_versions(found)], cursor=after)

    async def lookup_subscriptions(self, quote_ids: list[str]) -> list[OrderRecord]:
        """The subscriptions keyed ``q2c-<quote>:subscription`` (``RevsyncKey__c`` is
        filterable; ``QuoteId__c`` is not)."""
        keys = [f"q2c-{q}:subscription" for q in quote_ids]
        found = await self._lookup(
            "query_subscriptions", "subscriptions", KEY_FIELD, keys, ["account"]
        )
        return [subscription_record(o) for o in latest_versions(found)]

    async def list_customers(
        self, cursor: str | None, page_size: int, *, window: Window | None = None
    ) -> Page[CustomerRecord]:
        """One Object Query page of every account, with its bill-to contact."""
        found, after = await self._query(
            "query_accounts",
            "accounts",
            filters=window_filters(window),
            expand=["billto"],
            page_size=page_size,
            cursor=cursor,
        )
        return Page(items=[customer_record(o) for o in found], cursor=after)

    async def lookup_customers(self, account_ids: list[str]) -> list[CustomerRecord]:
        found = await self._lookup("query_accounts", "accounts", "crmId", account_ids, ["billto"])
        return [customer_record(o) for o in found]

    async def list_invoices(
        self, cursor: str | None, page_size: int, *, window: Window | None = None
    ) -> Page[InvoiceRecord]:
        """One Object Query page of every invoice but drafts: posted (open, paid) and
        cancelled (void) ones; an ``Error`` invoice (a failed posting) is read past."""
        operation = "query_invoices"
        found, after = await self._query(
            operation,
            "invoices",
            filters=["status.NE:Draft", *window_filters(window)],
            page_size=page_size,
            cursor=cursor,
        )
        items = [invoice_record(o, operation) for o in found if o.get("status") in LISTED_INVOICES]
        return Page(items=items, cursor=after)

    async def lookup_invoices(self, invoice_ids: list[str]) -> list[InvoiceRecord]:
        operation = "query_invoices"
        found = await self._lookup(operation, "invoices", "invoiceNumber", invoice_ids, [])
        return [invoice_record(o, operation) for o in found if o.get("status") in LISTED_INVOICES]

    async def _lookup(
        self,
        operation: str,
        resource: str,
        field: str,
        values: list[str],
        expand: list[str],
    ) -> list[dict[str, Any]]:
        """Every record whose ``field`` is one of ``values`` (``IN``, 50 a query)."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(values), LOOKUP_BATCH):
            batch = [v for v in values[start : start + LOOKUP_BATCH] if "," not in v]
            if not batch:
                continue
            cursor: str | None = None
            while True:
                page, cursor = await self._query(
                    operation,
                    resource,
                    filters=[f"{field}.IN:[{','.join(batch)}]"],
                    expand=expand,
                    cursor=cursor,
                )
                found.extend(page)
                if cursor is None:
                    break
        return found

    # invoices

    async def _get_invoice(self, invoice_id: str, operation: str = "get_invoice") -> dict[str, Any]:
        return await self._call(operation, "GET", self._path("v1", "invoices", invoice_id))

    async def _items(self, invoice_id: str) -> list[dict[str, Any]]:
        """Every item of the invoice, page by page (``page``/``pageSize``, until Zuora gives
        no ``nextPage``)."""
        items: list[dict[str, Any]] = []
        page = 1
        while True:
            body = await self._call(
                "list_invoice_items",
                "GET",
                self._path("v1", "invoices", invoice_id, "items")
                + f"?page={page}&pageSize={ITEMS_PAGE_SIZE}",
            )
            batch = body.get("invoiceItems")
            if not isinstance(batch, list):
                raise _unexpected("list_invoice_items", "no invoiceItems")
            items.extend(i for i in batch if isinstance(i, dict))
            if not body.get("nextPage") or not batch:
                return items
            page += 1

    async def _to_invoice(self, obj: Mapping[str, Any], operation: str) -> Invoice:
        """The invoice with its items and its account's number (read: the invoice names
        its account by id only)."""
        account = await self._call(
            "get_account", "GET", self._path("v1", "accounts", str(obj.get("accountId") or ""))
        )
        number = _dict(account.get("basicInfo")).get("accountNumber")
        items = await self._items(str(obj.get("invoiceNumber")))
        return to_invoice(obj, items, operation, str(number) if number else None)

    async def get_invoice(self, invoice_id: str) -> FinalizedInvoice:
        operation = "get_invoice"
        invoice = await self._get_invoice(invoice_id)
        check_posted(invoice, operation)  # before reading the items of a draft
        account_key = str(invoice.get("accountId") or invoice.get("accountNumber") or "")
        if not account_key:
            raise _unexpected(operation, f"invoice {invoice_id} names no account")
        account = await self._call("get_account", "GET", self._path("v1", "accounts", account_key))
        items = await self._items(str(invoice.get("invoiceNumber") or invoice_id))
        return finalized_invoice(invoice, items, account, operation)

    async def void_invoice(self, invoice_id: str) -> Invoice:
        operation = "void_invoice"
        invoice = await self._get_invoice(invoice_id)
        status = invoice_status(invoice, operation)
        amount = _decimal(invoice.get("amount"), "invoice amount", operation)
        if status is InvoiceStatus.VOID or (status is not InvoiceStatus.DRAFT and amount == 0):
            return await self._to_invoice(invoice, operation)
        if status is InvoiceStatus.PAID:
            raise _reject(
                operation,
                "invoice_paid",
                f"invoice {invoice_id} is paid; it cannot be cancelled (refund or credit it)",
            )
        balance = _decimal(invoice.get("balance"), "invoice balance", operation)
        if status is InvoiceStatus.OPEN and balance != amount:
            raise _reject(
                operation,
                "invoice_partially_paid",
                f"invoice {invoice_id} has {amount - balance} applied against it; Zuora "
                "unposts only an invoice with nothing applied (refund or credit it)",
            )
        number = str(invoice.get("invoiceNumber") or invoice_id)
        try:
            if status is InvoiceStatus.OPEN:
                unposted = await self._call(
                    "unpost_invoice", "PUT", self._path("v1", "invoices", number, "unpost")
                )
                if unposted.get("jobId") and unposted.get("jobStatus") != "Completed":
                    # A large invoice is unposted by a job: cancel it once it is a draft (the
                    # retry reads it again, and a draft goes straight to the cancel).
                    raise TransientError(
                        VENDOR,
                        "unpost_invoice",
                        f"invoice {number} is being unposted by job {unposted['jobId']}",
                    )
            await self._call(
                "cancel_invoice", "PUT", self._path("v1", "invoices", number, "cancel")
            )
        except RejectedError:
            again = await self._get_invoice(invoice_id)
            if invoice_status(again, operation) is InvoiceStatus.VOID:  # a concurrent void won
                return await self._to_invoice(again, operation)
            raise
        return await self._to_invoice(await self._get_invoice(invoice_id), operation)
