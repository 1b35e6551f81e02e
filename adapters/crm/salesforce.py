"""Salesforce (Sales Cloud + Salesforce CPQ) behind :class:`adapters.ports.CrmPort`.

REST API at ``{instance}/services/data/{api_version}/``, bearer token auth (a static token,
or OAuth 2.0 client credentials or JWT bearer through :mod:`adapters.oauth`; the instance is
the token answer's ``instance_url``, else the configured base URL). Reads use SOQL
(``query`` with ``nextRecordsUrl`` paging). Where a step needs several writes they go as one
``composite`` call (:meth:`SalesforceCrm.composite`), all or none, and
:meth:`SalesforceCrm.query_many` runs up to five SOQL queries in one call (the CPQ trigger's
read, :mod:`adapters.crm.salesforce_cpq`).

**The booked order goes through Salesforce CPQ** (``record_order``). revsync's quotes are
CPQ quotes (``SBQQ__Quote__c``), and a CPQ org makes its orders from them: checking
``SBQQ__Ordered__c`` on the primary quote makes CPQ create the Order (Draft, the quote's
account, price book, currency and start date) and one order product per quote line (its
price book entry, quantity and net unit price, linked by ``SBQQ__QuoteLine__c``) in the same
transaction. That is the order a CPQ admin expects: contracting, renewals, amendments and
reports all start from it. An Order revsync built itself would bypass CPQ (no quote-line
links), and ordering the quote later would make a second one; it could not be written in one
call either, since the platform creates an Order only as Draft, activates it only once it has
order products (which need a price book on the order and price book entry ids), by an update
of ``Status`` alone, and computes ``TotalAmount`` as a read-only roll-up of the order
products. So ``record_order`` reads the quote (its account, ``SBQQ__Ordered__c``, status) and
the quote's Orders, then writes what is missing in one all-or-none composite: the quote
marked Ordered (``SBQQ__Ordered__c`` and ``SBQQ__Status__c``), the generated Order read back
by ``SBQQ__Quote__c``, revsync's ids written onto it (``Revsync_Key__c``, the ERP order,
customer and total, the billing subscription and customer) and its activation. It never
sends ``AccountId`` (CPQ copied the quote's; Salesforce refuses it on an order past Draft,
even unchanged) nor ``TotalAmount``. Salesforce Billing's automation guide states that CPQ
creates the order synchronously when Ordered is checked, so the generated Order is there for
the next subrequest to read; nothing waits.

Idempotent by its reads: a retry, or one after a lost answer, finds the Order by
``Revsync_Key__c`` (or, not stamped yet, as the quote's only Order: a person ordered the
quote first) and writes only what it lacks; a done write-back writes nothing. A quote that
is Ordered but has no Order (deleted, or never generated) is rejected for a person to
re-order in Salesforce rather than ordered again: unchecking and checking Ordered may make a
second order that revsync cannot see. Several Orders none of which carries the key, the
quote's account differing from the booked one, a quote that is not primary, or an Order CPQ
generated without order products (a quote without lines: its activation is refused) are
rejected; the saga parks the CRM step, it never unwinds the booking.

Reconciliation reads the Order's ``ERP_Order_Total__c`` as its amount: the Order's own
``TotalAmount`` is CPQ's roll-up of the order products, priced for the whole subscription
term, while the ERP order revsync books holds one billing period. It reads only Orders that
name a CPQ quote (``WHERE SBQQ__Quote__c != null``). A window is a SOQL ``WHERE`` on
``SystemModstamp`` (changed by every save, the system's included; "System Fields", Object
Reference) or ``CreatedDate`` with dateTime literals (``2026-03-01T10:00:00Z``; "Date Formats
and Date Literals", SOQL and SOSL Reference), ``ORDER BY Id``. Its pages follow
``nextRecordsUrl``; a query locator expires after 15 minutes of inactivity ("QueryLocator",
SOAP API Developer Guide) and is then refused ``INVALID_QUERY_LOCATOR``: the cursor also
carries the last Id read, and the listing resumes with the query again ``AND Id > 'last'``
instead of failing. Keyed lookups are ``WHERE SBQQ__Quote__c IN (...)`` (orders) and
``WHERE Id IN (...)`` (accounts), 100 ids a query, so the GET stays far below the 16,384
bytes Salesforce takes in a URI.

Salesforce error bodies are a JSON list ``[{"message", "errorCode", "fields"}]``;
:func:`classify_salesforce` reads them into the failure taxonomy. ``REQUEST_LIMIT_EXCEEDED``
(403, no ``Retry-After``) is throttling: the org's rolling 24-hour API request allocation
spent (a quota, backed off for minutes by :mod:`activities.classify`), or the concurrent
long-running request limit (a rate limit), as its message says (:func:`request_limit`).

The receivable status of invoice-to-revenue is a PATCH of custom fields on the Account:
``Revsync_AR_Status__c`` (Current, Overdue, Paid, Void), ``Revsync_AR_Invoice__c`` (the
billing invoice), ``Revsync_AR_Amount_Due__c`` with ``Revsync_AR_Currency__c`` (the invoice's
currency, which need not be the account's) and ``Revsync_AR_As_Of__c``, when the saga decided
the status. Writing the same values again changes nothing, so a retry is harmless. A late
retry of an *older* status must not overwrite a newer one; the org enforces it atomically
with the validation rule ``Revsync_AR_Monotonic`` (error when ``Revsync_AR_As_Of__c`` would
move back in time: ``ISCHANGED(Revsync_AR_As_Of__c) && Revsync_AR_As_Of__c <
PRIORVALUE(Revsync_AR_As_Of__c)``). When the PATCH fails with a custom validation error, the
adapter reads the account's as-of back: a newer one shown means the write was stale and the
call is a no-op; anything else is the rejection it is. The fields summarise the account's
latest receivable event across its invoices (the last one wins), not each invoice.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import httpx
from pydantic import ValidationError

from adapters.crm.salesforce_fields import (
    ADDRESS_FIELDS,
    CREDIT_LIMIT_FIELDS,
    PAYMENT_STATE_FIELD,
    SIMPLE_FIELDS,
    account_update,
    changes_from_account,
)
from adapters.errors import (
    NotFoundError,
    RejectedError,
    Throttle,
    TransientError,
    VendorError,
    enforce,
)
from adapters.http import (
    AnswerCheck,
    VendorHttp,
    classify_by_status,
    decode_json,
    dumps_json,
    retry_after_seconds,
)
from adapters.oauth import AuthorizedHttp, StaticToken, TokenSource
from domain.customer import Customer
from domain.customer_master import FieldValue, MasterField
from domain.order import SalesOrder, Subscription
from domain.receivable import ReceivableStatus
from domain.receivable_rules import unshowable_status
from domain.reconciliation import (
    Basis,
    CustomerRecord,
    OrderRecord,
    Page,
    System,
    Window,
    fingerprints,
)

VENDOR = "salesforce"

# Record ids are 15 (case-sensitive) or 18 (case-safe) alphanumerics. The sandbox seed uses
# 17-character ids, so any length in between is accepted: the point is that nothing but
# letters and digits ever reaches a URL path or a SOQL literal.
_RECORD_ID = re.compile(r"^[A-Za-z0-9]{15,18}$")

# Error codes that mean "try again later" whatever the HTTP status.
REQUEST_LIMIT_EXCEEDED = "REQUEST_LIMIT_EXCEEDED"
_TRANSIENT_CODES = frozenset(
    {REQUEST_LIMIT_EXCEEDED, "UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "QUERY_TIMEOUT"}
)
DAILY_LIMIT = "Salesforce daily API request limit"
CONCURRENT_LIMIT = "Salesforce concurrent long-running API request limit"
_NOT_FOUND_CODES = frozenset({"NOT_FOUND", "ENTITY_IS_DELETED"})

ORDER_STATUS = "Activated"
QUOTE_ORDERED = "Ordered"
# What record_order reads before it writes: the quote's ordering state, and the quote's
# Orders with revsync's fields.
QUOTE_STATE_FIELDS = ("Id", "SBQQ__Account__c", "SBQQ__Ordered__c", "SBQQ__Status__c")
STAMP_FIELDS = (
    "Revsync_Key__c",
    "ERP_Order_Id__c",
    "ERP_Customer_Id__c",
    "ERP_Order_Total__c",
    "Billing_Subscription_Id__c",
    "Billing_Customer_Id__c",
)
ORDER_STATE_FIELDS = ("Id", "Status", "AccountId", *STAMP_FIELDS)
REASON_MAX_LENGTH = 255  # Revsync_Status_Reason__c is a Text(255) field

# Revsync_AR_Status__c picklist values.
AR_STATUS_VALUES: dict[ReceivableStatus, str] = {
    ReceivableStatus.CURRENT: "Current",
    ReceivableStatus.OVERDUE: "Overdue",
    ReceivableStatus.PAID: "Paid",
    ReceivableStatus.VOID: "Void",
}
AR_AS_OF_FIELD = "Revsync_AR_As_Of__c"


def salesforce_datetime(moment: datetime) -> str:
    """A timezone-aware ``moment`` as Salesforce writes a date-time (UTC, milliseconds)."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}+0000"


ACCOUNT_FIELDS = (
    "Id",
    "Name",
    "Legal_Entity__c",
    "Tax_Id__c",
    "Billing_Email__c",
    "BillingStreet",
    "BillingCity",
    "BillingState",
    "BillingPostalCode",
    "BillingCountryCode",
    "CurrencyIsoCode",
    "Type",
    "Credit_Check_Status__c",
)
# Account types that mean "has bought before"; anything else (Prospect, Other) is new.
CUSTOMER_TYPES = frozenset({"Customer - Direct", "Customer - Channel"})

_SOQL_ESCAPES = {
    "\\": "\\\\",
    "'": "\\'",
    '"': '\\"',
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
}


def soql_literal(value: str) -> str:
    """``value`` as a quoted SOQL string literal, escaped as SOQL requires."""
    return "'" + "".join(_SOQL_ESCAPES.get(ch, ch) for ch in value) + "'"


def _error_items(response: httpx.Response) -> list[tuple[str | None, str]]:
    """``(errorCode, message)`` pairs from a Salesforce error body, whatever its shape."""
    try:
        body = decode_json(response)
    except ValueError:
        body = None
    if isinstance(body, dict):
        body = [body]
    items: list[tuple[str | None, str]] = []
    if isinstance(body, list):
        for entry in body:
            if not isinstance(entry, dict):
                continue
            # REST errors use errorCode/message; OAuth errors use error/error_description.
            code = entry.get("errorCode") or entry.get("error")
            message = entry.get("message") or entry.get("error_description") or ""
            if code is None and not message:
                continue
            items.append((str(code) if code else None, str(message)))
    return items


def request_limit(message: str) -> Throttle:
    """Which API limit a ``REQUEST_LIMIT_EXCEEDED`` names (Salesforce answers both with 403
    and that code, no ``Retry-After``; the message names the limit):

    - ``ConcurrentPerOrgLongTxn`` / ``ConcurrentRequests``: too many requests of 20 s or more
      in flight (25 per production org): a rate limit that clears as they finish;
    - ``TotalRequests`` (or anything else): the org's API request allocation, counted over a
      rolling 24 hours and shared by every integration of the org: a quota. Calls stay
      refused until the last 24 hours' usage drops below it, so retrying every few seconds
      spends on refusals what little recovers.

    Salesforce, *API Request Limits and Allocations*:
    https://developer.salesforce.com/docs/platform/salesforce-app-limits-cheatsheet/guide/salesforce-app-limits-platform-api.html;
    Salesforce Help, *System Overview: API Usage*:
    https://help.salesforce.com/s/articleView?id=xcloud.setup_system_overview_api.htm.
    A message that names no limit is read as the quota: waiting minutes on a concurrency
    limit costs minutes, retrying fast on a spent quota costs the org's integrations."""
    if "concurrent" in message.lower():
        return Throttle.rate(CONCURRENT_LIMIT)
    return Throttle.quota(DAILY_LIMIT)


def classify_salesforce(operation: str, response: httpx.Response) -> VendorError:
    """The failure an error response from Salesforce means."""
    status = response.status_code
    items = _error_items(response)
    codes = [code for code, _ in items if code]
    transient_codes = [code for code in codes if code in _TRANSIENT_CODES]
    code = transient_codes[0] if transient_codes else (codes[0] if codes else None)
    message = "; ".join(m for _, m in items if m) or (
        response.text[:200].strip() or response.reason_phrase or f"HTTP {status}"
    )

    if transient_codes:
        throttle = None
        if code == REQUEST_LIMIT_EXCEEDED:
            limit_message = " ".join(m for c, m in items if c == REQUEST_LIMIT_EXCEEDED)
            throttle = request_limit(limit_message)
        elif status == 429:
            throttle = Throttle.rate("Salesforce request rate limit (HTTP 429)")
        return TransientError(
            VENDOR,
            operation,
            message,
            status=status,
            code=code,
            retry_after=retry_after_seconds(response),
            throttle=throttle,
        )
    if status == 401 or code == "INVALID_SESSION_ID":
        # The token expired or was revoked. adapters.oauth refreshes it once; a credential
        # that stays refused is retried (and parks the step), never a rejection of the saga.
        return TransientError(
            VENDOR,
            operation,
            f"access token rejected: {message}",
            status=status,
            code=code or "INVALID_SESSION_ID",
        )
    if code in _NOT_FOUND_CODES:
        return NotFoundError(VENDOR, operation, message, status=status, code=code)
    return classify_by_status(VENDOR, operation, response, message, code)


def _unexpected(operation: str, what: str) -> TransientError:
    # A success status with a body that is not what Salesforce sends (a proxy page, a
    # truncated answer): retry, and let the step park if it keeps happening.
    return TransientError(VENDOR, operation, f"unexpected response: {what}")


def _text(record: dict[str, Any], field: str) -> str | None:
    value = record.get(field)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


# Where each Customer field comes from, to name the Salesforce field a bad value came from.
_SOURCE_FIELDS = {
    ("account_id",): "Id",
    ("name",): "Name",
    ("legal_entity",): "Legal_Entity__c",
    ("tax_id",): "Tax_Id__c",
    ("email",): "Billing_Email__c",
    ("billing_address", "line1"): "BillingStreet",
    ("billing_address", "line2"): "BillingStreet",
    ("billing_address", "city"): "BillingCity",
    ("billing_address", "region"): "BillingState",
    ("billing_address", "postal_code"): "BillingPostalCode",
    ("billing_address", "country"): "BillingCountryCode",
    ("currency",): "CurrencyIsoCode",
}


def _customer(record: dict[str, Any]) -> Customer:
    """The Account record as a :class:`Customer`. Raises ``ValidationError``."""
    street = _text(record, "BillingStreet") or ""
    line1, _, rest = street.partition("\n")
    return Customer.model_validate(
        {
            "account_id": record.get("Id"),
            "name": _text(record, "Name"),
            # Orgs without a separate legal-entity field invoice under the account name.
            "legal_entity": _text(record, "Legal_Entity__c") or _text(record, "Name"),
            "tax_id": _text(record, "Tax_Id__c"),
            "email": _text(record, "Billing_Email__c"),
            "billing_address": {
                "line1": line1.strip() or None,
                "line2": " ".join(rest.split()) or None,
                "city": _text(record, "BillingCity"),
                "region": _text(record, "BillingState"),
                "postal_code": _text(record, "BillingPostalCode"),
                "country": (_text(record, "BillingCountryCode") or "").upper() or None,
            },
            "currency": _text(record, "CurrencyIsoCode"),
            "existing_customer": _text(record, "Type") in CUSTOMER_TYPES,
            "credit_check": (_text(record, "Credit_Check_Status__c") or "").lower() or None,
        }
    )


# Reconciliation reads every Order page by page (``list_orders``). The amount it compares
# with the ERP order is the ERP total revsync wrote (``ERP_Order_Total__c``): the Order's
# own ``TotalAmount`` is CPQ's roll-up of the order products, priced for the whole term.
ORDER_FIELDS = (
    "Id",
    "Revsync_Key__c",
    "SBQQ__Quote__c",
    "AccountId",
    "ERP_Order_Total__c",
    "CurrencyIsoCode",
    "Status",
)
# When the record was made, and last saved by anyone (the system too): windows filter on them.
AUDIT_FIELDS = ("CreatedDate", "SystemModstamp")
# Sforce-Query-Options batchSize: Salesforce takes 200 to 2000, as a wish, not a promise.
MIN_BATCH_SIZE = 200
MAX_BATCH_SIZE = 2000
_QUERY_CURSOR = re.compile(r"^/services/data/v\d+\.\d/query/[A-Za-z0-9-]+$")
# A window listing's cursor: the next page's locator, then the last Id read.
_WINDOW_CURSOR = re.compile(
    r"^(?P<url>/services/data/v\d+\.\d/query/[A-Za-z0-9-]+)#(?P<last>[A-Za-z0-9]{15,18})$"
)
# Ids per keyed lookup query.
LOOKUP_BATCH = 100
INVALID_QUERY_LOCATOR = "INVALID_QUERY_LOCATOR"


def _when(record: dict[str, Any], field: str) -> datetime | None:
    """A Salesforce date-time (``2026-03-01T10:00:00.000+0000``), aware; None if absent."""
    text = record.get(field)
    if not isinstance(text, str) or not text:
        return None
    if re.search(r"[+-]\d{4}$", text):
        text = text[:-2] + ":" + text[-2:]
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def soql_datetime(moment: datetime) -> str:
    """A SOQL dateTime literal, UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def window_filter(window: Window) -> str:
    field = "SystemModstamp" if window.basis is Basis.CHANGED else "CreatedDate"
    return f"{field} >= {soql_datetime(window.start)} AND {field} < {soql_datetime(window.end)}"


def soql_in(values: Sequence[str]) -> str:
    return (
        "("
        + ", ".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in values)
        + ")"
    )


def _order_record(record: dict[str, Any]) -> OrderRecord:
    amount = record.get("ERP_Order_Total__c")
    return OrderRecord(
        system=System.CRM,
        record_id=str(record["Id"]),
        key=_text(record, "Revsync_Key__c"),
        quote_ref=_text(record, "SBQQ__Quote__c"),
        account_id=_text(record, "AccountId"),
        amount=None if amount is None else Decimal(str(amount)),
        currency=(_text(record, "CurrencyIsoCode") or "").upper() or None,
        status=_text(record, "Status") or "",
        live=True,  # an Order has no cancelled state; a cancelled one is deleted
        created_at=_when(record, "CreatedDate"),
        changed_at=_when(record, "SystemModstamp"),
    )


def _order_stamp(
    order_key: str, sales_order: SalesOrder, subscription: Subscription
) -> dict[str, Any]:
    """revsync's fields on the booked Order: its key and the ERP and billing ids. Never
    ``AccountId`` (CPQ copied the quote's, and Salesforce refuses it on an order past
    Draft) and never ``TotalAmount`` (a read-only roll-up of the order products)."""
    return {
        "Revsync_Key__c": order_key,
        "ERP_Order_Id__c": sales_order.order_id,
        "ERP_Customer_Id__c": sales_order.customer_id,
        "ERP_Order_Total__c": sales_order.total,
        "Billing_Subscription_Id__c": subscription.subscription_id,
        "Billing_Customer_Id__c": subscription.customer_id,
    }


def _same(record: dict[str, Any], field: str, value: Any) -> bool:
    """Whether ``record`` already holds ``value`` in ``field`` (numbers compared exactly)."""
    held = record.get(field)
    if isinstance(value, Decimal):
        try:
            return held is not None and Decimal(str(held)) == value
        except ArithmeticError:
            return False
    return bool(held == value)


def _booked_order(
    operation: str, quote_id: str, orders: list[dict[str, Any]], order_key: str
) -> dict[str, Any] | None:
    """The quote's Order revsync records the booking on: the one carrying ``order_key``,
    else the quote's only Order while it carries no key (CPQ generated it; the write that
    would have stamped it did not land, or a person ordered the quote). None when the quote
    has no Order. Several Orders, none of them revsync's, or one stamped with another key,
    are for a person to sort out: rejected."""
    mine = [o for o in orders if o.get("Revsync_Key__c") == order_key]
    if mine:
        return mine[0]
    if not orders:
        return None
    if len(orders) == 1 and not orders[0].get("Revsync_Key__c"):
        return orders[0]
    listed = ", ".join(f"{o.get('Id')} ({o.get('Revsync_Key__c') or 'no key'})" for o in orders)
    raise RejectedError(
        VENDOR,
        operation,
        f"quote {quote_id} has orders {listed} and none carries {order_key}: "
        "choose the order in Salesforce",
        code="AMBIGUOUS_ORDER",
    )


# Reconciliation reads every Account's golden fields (``list_accounts``).
ACCOUNT_LISTING_FIELDS = (
    "Id",
    *SIMPLE_FIELDS.values(),
    *CREDIT_LIMIT_FIELDS,
    *ADDRESS_FIELDS,
    PAYMENT_STATE_FIELD,
)


def _account_record(record: dict[str, Any]) -> CustomerRecord:
    fields = {name: _text(record, name) for name in ACCOUNT_LISTING_FIELDS if name != "Id"}
    account_id = str(record["Id"])
    return CustomerRecord(
        system=System.CRM,
        record_id=account_id,
        account_id=account_id,
        fields=fingerprints(changes_from_account(fields)),
        created_at=_when(record, "CreatedDate"),
        changed_at=_when(record, "SystemModstamp"),
    )


# Composite: at most 25 subrequests a call. A subrequest that did not fail itself but was
# rolled back or skipped because another one failed answers this code.
MAX_SUBREQUESTS = 25
HALTED = "PROCESSING_HALTED"


@dataclass(frozen=True)
class Subrequest:
    """One subrequest of a composite call; ``url`` is a path under ``/services/data``."""

    method: str
    url: str
    reference: str
    body: Any = None

    def wire(self) -> dict[str, Any]:
        sub: dict[str, Any] = {
            "method": self.method,
            "url": self.url,
            "referenceId": self.reference,
        }
        if self.body is not None:
            sub["body"] = self.body
        return sub


@dataclass(frozen=True)
class SubrequestResult:
    """A subrequest's answer inside a composite response."""

    reference: str
    status: int
    body: Any
    headers: dict[str, str]

    @classmethod
    def read(cls, answer: Any) -> SubrequestResult | None:
        if not isinstance(answer, dict):
            return None
        status = answer.get("httpStatusCode")
        if isinstance(status, bool) or not isinstance(status, int):
            return None
        headers = answer.get("httpHeaders")
        return cls(
            reference=str(answer.get("referenceId", "")),
            status=status,
            body=answer.get("body"),
            headers={str(k): str(v) for k, v in headers.items()}
            if isinstance(headers, dict)
            else {},
        )

    @property
    def halted(self) -> bool:
        """Failed only because another subrequest did."""
        body = self.body if isinstance(self.body, list) else [self.body]
        codes = {entry.get("errorCode") for entry in body if isinstance(entry, dict)}
        return codes == {HALTED}

    def response(self) -> httpx.Response:
        """The answer as the response the same call made alone would have been, for
        :func:`classify_salesforce` and the code that reads a single call's answer."""
        content = b"" if self.body is None else dumps_json(self.body)
        return httpx.Response(self.status, content=content, headers=self.headers)


def _composite_results(
    operation: str, response: httpx.Response, count: int
) -> list[SubrequestResult]:
    """The ``count`` subrequest answers of a composite response, in order."""
    body = decode_json(response)
    answers = body.get("compositeResponse") if isinstance(body, dict) else None
    if not isinstance(answers, list) or len(answers) != count:
        raise _unexpected(operation, "composite answer without one result per subrequest")
    results = [SubrequestResult.read(answer) for answer in answers]
    done = [result for result in results if result is not None]
    if len(done) != count:
        raise _unexpected(operation, "composite subrequest answer without httpStatusCode")
    return done


def _composite_failure(operation: str, count: int) -> AnswerCheck:
    """What a composite's 200 reports: the first failed subrequest (not one merely halted or
    rolled back because of another) classified as if it had been called alone, an
    unreadable answer, or None when every subrequest succeeded."""

    def check(response: httpx.Response) -> VendorError | None:
        try:
            done = _composite_results(operation, response, count)
        except (TransientError, ValueError) as error:
            if isinstance(error, TransientError):
                return error
            return _unexpected(operation, "composite answer is not JSON")
        failed = [result for result in done if result.status >= 300]
        if not failed:
            return None
        cause = next((r for r in failed if not r.halted), failed[0])
        return classify_salesforce(operation, cause.response())

    return check


def _bad_fields(error: ValidationError) -> str:
    names = [_SOURCE_FIELDS.get(tuple(map(str, e["loc"])), str(e["loc"])) for e in error.errors()]
    return ", ".join(dict.fromkeys(names))


class SalesforceCrm:
    """The CRM port on the Salesforce REST API."""

    vendor = VENDOR

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        api_version: str,
        access_token: str | None = None,
        tokens: TokenSource | None = None,
    ) -> None:
        """``tokens`` (see :mod:`adapters.oauth`) or a static ``access_token``. Paths are
        resolved against the ``instance_url`` the token endpoint answers, else ``base_url``."""
        if tokens is None:
            if access_token is None:
                raise ValueError("SalesforceCrm needs an access_token or a token source")
            tokens = StaticToken(access_token)
        self._http = AuthorizedHttp(
            VendorHttp(VENDOR, http, classify_salesforce),
            tokens,
            classify=classify_salesforce,
            base_url=base_url,
        )
        self._api = f"/services/data/{api_version}"
        self._headers = {"Accept": "application/json"}

    # -- reads ------------------------------------------------------------------------------

    async def get_account(self, account_id: str) -> Customer:
        operation = "get_account"
        self._check_id(operation, "Account", account_id)
        soql = (
            f"SELECT {', '.join(ACCOUNT_FIELDS)} FROM Account WHERE Id = {soql_literal(account_id)}"
        )
        records = await self._query(operation, soql)
        if not records:
            raise NotFoundError(
                VENDOR, operation, f"Account {account_id} does not exist", code="NOT_FOUND"
            )
        try:
            return _customer(records[0])
        except ValidationError as error:
            raise RejectedError(
                VENDOR,
                operation,
                f"Account {account_id} is missing or has invalid {_bad_fields(error)}",
                code="INVALID_ACCOUNT",
            ) from error

    async def _query(self, operation: str, soql: str) -> list[dict[str, Any]]:
        """Every record a SOQL query matches, following ``nextRecordsUrl`` until ``done``."""
        response = await self._http.request(
            operation, "GET", f"{self._api}/query", params={"q": soql}, headers=self._headers
        )
        return await self._all_records(operation, decode_json(response))

    async def _all_records(self, operation: str, body: Any) -> list[dict[str, Any]]:
        """The records of a query answer ``body`` and of every page after it."""
        records: list[dict[str, Any]] = []
        while True:
            if not isinstance(body, dict) or not isinstance(body.get("records"), list):
                raise _unexpected(operation, "query answer without records")
            records.extend(r for r in body["records"] if isinstance(r, dict))
            if body.get("done", True):
                return records
            next_url = body.get("nextRecordsUrl")
            if not isinstance(next_url, str) or not next_url.startswith("/services/data/"):
                raise _unexpected(operation, "query not done but no usable nextRecordsUrl")
            response = await self._http.request(operation, "GET", next_url, headers=self._headers)
            body = decode_json(response)

    # -- writes -----------------------------------------------------------------------------

    async def record_order(
        self,
        *,
        quote_id: str,
        account_id: str,
        order_key: str,
        sales_order: SalesOrder,
        subscription: Subscription,
    ) -> str:
        """The booked order through Salesforce CPQ (see the module docstring): the quote
        marked Ordered makes CPQ generate its Order with order products, then revsync's ids
        go onto that Order and it is activated. Reads first, then writes only what is
        missing, all or none: a retry, or one after a lost answer, finds the order by its
        key (or, before it carries one, by its quote) and creates nothing twice."""
        operation = "record_order"
        self._check_id(operation, "SBQQ__Quote__c", quote_id)
        quote = await self._quote_state(operation, quote_id)
        if quote.get("SBQQ__Account__c") != account_id:
            raise RejectedError(
                VENDOR,
                operation,
                f"quote {quote_id} is for account {quote.get('SBQQ__Account__c')}, but the "
                f"order was booked for {account_id}",
                code="ACCOUNT_MISMATCH",
            )
        orders = await self._query(
            operation,
            f"SELECT {', '.join(ORDER_STATE_FIELDS)} FROM Order"
            f" WHERE SBQQ__Quote__c = {soql_literal(quote_id)}",
        )
        order = _booked_order(operation, quote_id, orders, order_key)
        stamp = _order_stamp(order_key, sales_order, subscription)
        if order is None:
            if quote.get("SBQQ__Ordered__c") is True:
                raise RejectedError(
                    VENDOR,
                    operation,
                    f"quote {quote_id} is Ordered but Salesforce holds no Order for it (CPQ "
                    "generated none, or it was deleted): order the quote again in Salesforce "
                    "(clear and check Ordered), then retry",
                    code="ORDER_NOT_GENERATED",
                )
            return await self._order_through_cpq(operation, quote_id, stamp)
        order_id = str(order["Id"])
        subrequests: list[Subrequest] = []
        order_url = f"{self._api}/sobjects/Order/{order_id}"
        missing = {name: value for name, value in stamp.items() if not _same(order, name, value)}
        if missing:
            subrequests.append(Subrequest("PATCH", order_url, "stamped", missing))
        if order.get("Status") != ORDER_STATUS:
            subrequests.append(
                Subrequest("PATCH", order_url, "activated", {"Status": ORDER_STATUS})
            )
        if quote.get("SBQQ__Status__c") != QUOTE_ORDERED:
            subrequests.append(
                Subrequest(
                    "PATCH",
                    f"{self._api}/sobjects/SBQQ__Quote__c/{quote_id}",
                    "quote",
                    {"SBQQ__Status__c": QUOTE_ORDERED},
                )
            )
        if subrequests:
            await self.composite(operation, subrequests, all_or_none=True)
        return order_id

    async def _quote_state(self, operation: str, quote_id: str) -> dict[str, Any]:
        records = await self._query(
            operation,
            f"SELECT {', '.join(QUOTE_STATE_FIELDS)} FROM SBQQ__Quote__c"
            f" WHERE Id = {soql_literal(quote_id)}",
        )
        if not records:
            raise NotFoundError(
                VENDOR, operation, f"SBQQ__Quote__c {quote_id} does not exist", code="NOT_FOUND"
            )
        return records[0]

    async def _order_through_cpq(self, operation: str, quote_id: str, stamp: dict[str, Any]) -> str:
        """One all-or-none composite: the quote marked Ordered (CPQ generates the Draft Order
        and its order products in that save), the generated Order read by its quote,
        revsync's ids written onto it, then its activation, an update of ``Status`` alone.
        Any refusal leaves nothing: no order, the quote not ordered."""
        generated = f"SELECT Id FROM Order WHERE SBQQ__Quote__c = {soql_literal(quote_id)}"
        order_url = f"{self._api}/sobjects/Order/@{{generated.records[0].Id}}"
        answers = await self.composite(
            operation,
            [
                Subrequest(
                    "PATCH",
                    f"{self._api}/sobjects/SBQQ__Quote__c/{quote_id}",
                    "ordered",
                    {"SBQQ__Ordered__c": True, "SBQQ__Status__c": QUOTE_ORDERED},
                ),
                Subrequest("GET", f"{self._api}/query?{urlencode({'q': generated})}", "generated"),
                Subrequest("PATCH", order_url, "stamped", stamp),
                Subrequest("PATCH", order_url, "activated", {"Status": ORDER_STATUS}),
            ],
            all_or_none=True,
        )
        body = answers[1].body
        records = body.get("records") if isinstance(body, dict) else None
        if not isinstance(records, list) or not records or not isinstance(records[0], dict):
            raise _unexpected(operation, "the generated order's query answered no record")
        order_id = records[0].get("Id")
        if not isinstance(order_id, str):
            raise _unexpected(operation, "the generated order has no Id")
        return order_id

    async def set_quote_status(self, quote_id: str, status: str, reason: str | None) -> None:
        operation = "set_quote_status"
        self._check_id(operation, "SBQQ__Quote__c", quote_id)
        await self._patch_quote(
            operation,
            quote_id,
            {
                "SBQQ__Status__c": status,
                "Revsync_Status_Reason__c": reason[:REASON_MAX_LENGTH] if reason else None,
            },
        )

    async def set_receivable_status(
        self,
        account_id: str,
        status: ReceivableStatus,
        invoice_id: str,
        amount_due: Decimal,
        currency: str,
        *,
        as_of: datetime,
    ) -> None:
        operation = "set_receivable_status"
        self._check_id(operation, "Account", account_id)
        enforce(VENDOR, operation, unshowable_status(as_of, currency))
        fields: dict[str, Any] = {
            "Revsync_AR_Status__c": AR_STATUS_VALUES[status],
            "Revsync_AR_Invoice__c": invoice_id,
            "Revsync_AR_Amount_Due__c": amount_due,
            "Revsync_AR_Currency__c": currency,
            AR_AS_OF_FIELD: salesforce_datetime(as_of),
        }
        try:
            await self._http.request(
                operation,
                "PATCH",
                f"{self._api}/sobjects/Account/{account_id}",
                ok=(200, 204),
                json_body=fields,
                headers=self._headers,
            )
        except RejectedError as error:
            if error.code != "FIELD_CUSTOM_VALIDATION_EXCEPTION":
                raise
            shown = await self._receivable_as_of(operation, account_id)
            if shown is not None and shown > as_of:
                return  # a newer status is already shown: this one arrived late
            raise

    async def _receivable_as_of(self, operation: str, account_id: str) -> datetime | None:
        records = await self._query(
            operation,
            f"SELECT Id, {AR_AS_OF_FIELD} FROM Account WHERE Id = {soql_literal(account_id)}",
        )
        value = records[0].get(AR_AS_OF_FIELD) if records else None
        if not isinstance(value, str):
            return None
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise _unexpected(
                operation, f"{AR_AS_OF_FIELD} is not a date-time: {value!r}"
            ) from None

    async def update_account_fields(
        self, account_id: str, changes: Mapping[MasterField, FieldValue], idempotency_key: str
    ) -> None:
        """PATCH the golden fields onto the Account (see :mod:`adapters.crm.salesforce_fields`).
        Writing the same values again changes nothing, so the key is not sent (Salesforce's
        REST API takes none); the workflow never sends an older value after a newer one."""
        operation = "update_account_fields"
        self._check_id(operation, "Account", account_id)
        try:
            body = account_update(changes)
        except ValueError as error:
            raise RejectedError(VENDOR, operation, str(error), code="NOT_WRITABLE") from None
        await self._http.request(
            operation,
            "PATCH",
            f"{self._api}/sobjects/Account/{account_id}",
            ok=(200, 204),
            json_body=body,
            headers=self._headers,
        )

    async def _patch_quote(self, operation: str, quote_id: str, fields: dict[str, Any]) -> None:
        await self._http.request(
            operation,
            "PATCH",
            f"{self._api}/sobjects/SBQQ__Quote__c/{quote_id}",
            ok=(200, 204),
            json_body=fields,
            headers=self._headers,
        )

    # -- composite and CPQ reads (vendor-specific, outside the port) --------------------------

    async def composite(
        self, operation: str, subrequests: Sequence[Subrequest], *, all_or_none: bool
    ) -> list[SubrequestResult]:
        """Send ``subrequests`` as one ``POST composite`` call (at most 25; a later one may
        use an earlier one's answer through ``@{referenceId.field}``). Composite answers 200
        whatever its subrequests did: the first failed subrequest (not one merely halted or
        rolled back because of another) is classified as if it had been called alone, and
        raised. Returns the answers in order."""
        if not 1 <= len(subrequests) <= MAX_SUBREQUESTS:
            raise ValueError(f"a composite holds 1 to {MAX_SUBREQUESTS} subrequests")
        response = await self._http.request(
            operation,
            "POST",
            f"{self._api}/composite",
            ok=(200,),
            json_body={
                "allOrNone": all_or_none,
                "compositeRequest": [sub.wire() for sub in subrequests],
            },
            headers=self._headers,
            # Read inside the breaker's guard: a throttled subrequest is no failure, a
            # subrequest the org could not serve is one.
            check=_composite_failure(operation, len(subrequests)),
        )
        return _composite_results(operation, response, len(subrequests))

    async def query_many(
        self, operation: str, queries: Mapping[str, str]
    ) -> dict[str, list[dict[str, Any]]]:
        """Several SOQL queries in one composite call (up to five), each followed through
        ``nextRecordsUrl`` until done. Returns every record per query name."""
        subrequests = [
            Subrequest("GET", f"{self._api}/query?{urlencode({'q': soql})}", name)
            for name, soql in queries.items()
        ]
        answers = await self.composite(operation, subrequests, all_or_none=False)
        return {
            sub.reference: await self._all_records(operation, answer.body)
            for sub, answer in zip(subrequests, answers, strict=True)
        }

    # -- reconciliation ---------------------------------------------------------------------

    async def list_orders(
        self, cursor: str | None, page_size: int, *, window: Window | None = None
    ) -> Page[OrderRecord]:
        """One page of the org's Orders naming a CPQ quote: a SOQL query, then
        ``nextRecordsUrl`` (the cursor) page by page. ``page_size`` goes as
        ``Sforce-Query-Options: batchSize``, clamped to what Salesforce accepts; the org may
        page smaller. In a ``window``: those saved (or made) in it, by Id."""
        fields = ", ".join((*ORDER_FIELDS, *AUDIT_FIELDS))
        base = f"SELECT {fields} FROM Order WHERE SBQQ__Quote__c != null"
        if window is None:
            records, after = await self._soql_page("list_orders", base, cursor, page_size)
            return Page(items=[_order_record(r) for r in records], cursor=after)
        records, after, total = await self._window_page(
            "list_orders", f"{base} AND {window_filter(window)}", cursor, page_size
        )
        return Page(items=[_order_record(r) for r in records], cursor=after, total=total)

    async def lookup_orders(self, quote_ids: list[str]) -> list[OrderRecord]:
        """Every Order of these CPQ quotes (``SBQQ__Quote__c IN``), 100 quotes a query."""
        found: list[OrderRecord] = []
        for start in range(0, len(quote_ids), LOOKUP_BATCH):
            ids = [q for q in quote_ids[start : start + LOOKUP_BATCH] if _RECORD_ID.fullmatch(q)]
            if not ids:
                continue
            soql = (
                f"SELECT {', '.join((*ORDER_FIELDS, *AUDIT_FIELDS))} FROM Order "
                f"WHERE SBQQ__Quote__c IN {soql_in(ids)}"
            )
            found.extend(_order_record(r) for r in await self._query_all("lookup_orders", soql))
        return found

    async def list_accounts(
        self, cursor: str | None, page_size: int, *, window: Window | None = None
    ) -> Page[CustomerRecord]:
        """One page of the org's Accounts with the golden fields they hold (paged as
        :meth:`list_orders`); each account is its own golden id."""
        base = f"SELECT {', '.join((*ACCOUNT_LISTING_FIELDS, *AUDIT_FIELDS))} FROM Account"
        if window is None:
            records, after = await self._soql_page("list_accounts", base, cursor, page_size)
            return Page(items=[_account_record(r) for r in records], cursor=after)
        records, after, total = await self._window_page(
            "list_accounts", f"{base} WHERE {window_filter(window)}", cursor, page_size
        )
        return Page(items=[_account_record(r) for r in records], cursor=after, total=total)

    async def lookup_accounts(self, account_ids: list[str]) -> list[CustomerRecord]:
        """These Accounts (``Id IN``), 100 a query."""
        found: list[CustomerRecord] = []
        for start in range(0, len(account_ids), LOOKUP_BATCH):
            ids = [a for a in account_ids[start : start + LOOKUP_BATCH] if _RECORD_ID.fullmatch(a)]
            if not ids:
                continue
            soql = (
                f"SELECT {', '.join((*ACCOUNT_LISTING_FIELDS, *AUDIT_FIELDS))} FROM Account "
                f"WHERE Id IN {soql_in(ids)}"
            )
            found.extend(_account_record(r) for r in await self._query_all("lookup_accounts", soql))
        return found

    async def _query_all(self, operation: str, soql: str) -> list[dict[str, Any]]:
        records, after = await self._soql_page(operation, soql, None, MAX_BATCH_SIZE)
        while after is not None:
            more, after = await self._soql_page(operation, soql, after, MAX_BATCH_SIZE)
            records.extend(more)
        return records

    async def _window_page(
        self, operation: str, soql: str, cursor: str | None, page_size: int
    ) -> tuple[list[dict[str, Any]], str | None, int | None]:
        """One page of a window query ordered by Id, with the query's ``totalSize`` on the
        first page. A locator Salesforce no longer knows (expired after 15 idle minutes, or
        released: ``INVALID_QUERY_LOCATOR``) is replaced by the query again past the last Id
        read."""
        ordered = f"{soql} ORDER BY Id"
        total: int | None = None
        if cursor is None:
            body = await self._soql_body(operation, ordered, None, page_size)
            total = body.get("totalSize") if isinstance(body.get("totalSize"), int) else None
        else:
            match = _WINDOW_CURSOR.fullmatch(cursor)
            if match is None:
                raise RejectedError(
                    VENDOR, operation, f"{cursor!r} is not a query cursor", code="INVALID_CURSOR"
                )
            try:
                body = await self._soql_body(operation, ordered, match.group("url"), page_size)
            except RejectedError as error:
                if error.code != INVALID_QUERY_LOCATOR:
                    raise
                again = f"{soql} AND Id > '{match.group('last')}' ORDER BY Id"
                body = await self._soql_body(operation, again, None, page_size)
        records, after = self._read_page(operation, body)
        if after is not None and records:
            after = f"{after}#{records[-1]['Id']}"
        return records, after, total

    async def _soql_body(
        self, operation: str, soql: str, next_url: str | None, page_size: int
    ) -> dict[str, Any]:
        batch = min(max(page_size, MIN_BATCH_SIZE), MAX_BATCH_SIZE)
        headers = {**self._headers, "Sforce-Query-Options": f"batchSize={batch}"}
        if next_url is None:
            response = await self._http.request(
                operation, "GET", f"{self._api}/query", params={"q": soql}, headers=headers
            )
        else:
            response = await self._http.request(operation, "GET", next_url, headers=headers)
        body = decode_json(response)
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise _unexpected(operation, "query answer without records")
        return body

    @staticmethod
    def _read_page(operation: str, body: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
        records = [r for r in body["records"] if isinstance(r, dict) and r.get("Id")]
        if body.get("done", True):
            return records, None
        next_url = body.get("nextRecordsUrl")
        if not isinstance(next_url, str) or not _QUERY_CURSOR.fullmatch(next_url):
            raise _unexpected(operation, "query not done but no usable nextRecordsUrl")
        return records, next_url

    async def _soql_page(
        self, operation: str, soql: str, cursor: str | None, page_size: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of ``soql`` (from its first page when ``cursor`` is None) and the
        ``nextRecordsUrl`` of the next one, None after the last."""
        if cursor is not None and not _QUERY_CURSOR.fullmatch(cursor):
            raise RejectedError(
                VENDOR, operation, f"{cursor!r} is not a query cursor", code="INVALID_CURSOR"
            )
        body = await self._soql_body(operation, soql, cursor, page_size)
        return self._read_page(operation, body)

    @staticmethod
    def _check_id(operation: str, sobject: str, record_id: str) -> None:
        check_record_id(operation, sobject, record_id)


def check_record_id(operation: str, sobject: str, record_id: str) -> None:
    """:class:`NotFoundError` unless ``record_id`` is shaped like a Salesforce id: nothing
    else reaches a URL path or a SOQL literal."""
    if not _RECORD_ID.fullmatch(record_id):
        raise NotFoundError(
            VENDOR,
            operation,
            f"{record_id!r} is not a Salesforce {sobject} id",
            code="MALFORMED_ID",
        )
