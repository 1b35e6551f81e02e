"""Salesforce REST API emulator: the subset revsync's CRM adapter and the demo use.

Emulated, as a Salesforce org with Salesforce CPQ answers it (API path
``/services/data/vNN.N/``, mounted under ``/salesforce`` by :mod:`sandbox.app`):

- ``GET query?q=SOQL`` and ``GET query/<locator>``: a SOQL subset,
  ``SELECT f1, f2 FROM Obj [WHERE cond [AND cond ...]] [ORDER BY f [ASC|DESC]] [LIMIT n]``
  where ``cond`` is ``f op literal`` (``=``, ``!=``, ``<``, ``<=``, ``>``, ``>=``; a string,
  number, dateTime literal such as ``2026-03-01T10:00:00Z``, or ``null`` with ``=``/``!=``)
  or ``f IN ('a', 'b')`` ("Comparison Operators", "Date Formats and Date Literals", SOQL and
  SOSL Reference: text compares case-insensitively, a null field is ``!=`` any value),
  paged by ``SalesforceStore.query_batch_size`` with ``nextRecordsUrl``; anything else is
  400 ``MALFORMED_QUERY``. ``Sforce-Query-Options: batchSize=N`` is honoured between
  200 and 2000, never above ``query_batch_size`` (tests set that low to page small). A
  query locator expires after 15 idle minutes and at most ten are open (the oldest is
  released): using one then is 400 ``INVALID_QUERY_LOCATOR`` ("QueryLocator", SOAP API
  Developer Guide). ``CreatedDate``, ``LastModifiedDate`` and ``SystemModstamp`` are set
  by every save.
- ``POST sobjects/Obj`` (201), ``GET sobjects/Obj/Id``, ``PATCH sobjects/Obj/Id`` (204),
  ``GET``/``PATCH sobjects/Obj/ExtField/value`` (read / upsert by external id: 201 created,
  200 updated, both with ``created``).
- ``POST composite``: up to 25 subrequests (5 queries) run in order, ``@{ref.field}``
  references resolved from earlier answers, ``allOrNone`` rolling every change back on the
  first failure (:func:`run_composite`); always 200, one result per subrequest.
- Objects ``Account`` (seeded from :data:`sandbox.seed.ACCOUNTS`), ``Order``,
  ``OrderItem``, ``Product2``, ``Pricebook2`` and ``PricebookEntry`` (the standard price book
  with the seed catalog, one entry per product and currency, fixed ids:
  :data:`PRODUCT_IDS`, :data:`PRICE_BOOK_ENTRY_IDS`), ``SBQQ__Quote__c`` and
  ``SBQQ__QuoteLine__c`` (the Salesforce CPQ fields revsync reads, ``CreatedDate``/
  ``LastModifiedDate`` kept by the org), with 18-character ids (key prefixes 001, 801, 802,
  01t, 01s, 01u, a0x, a0y), field-level validation (unknown fields, required fields, text
  lengths, lookups that must point at an existing record, restricted picklist, a unique
  external id, date-times with a zone, read-only and create-only fields:
  ``INVALID_FIELD_FOR_INSERT_UPDATE``) and an admin's validation rule: an Account's
  ``Revsync_AR_As_Of__c`` cannot move back in time (``Revsync_AR_Monotonic``: the receivable
  fields revsync writes keep the newest status when an older one arrives late).
- The Order as the platform has it (Object Reference, "Order" and "OrderItem";
  docs/vendor-fidelity.md has the sources): ``TotalAmount`` is read only, the sum of the
  order products' ``TotalPrice`` (unit price times quantity), worked out when read; an order
  is created ``Draft`` (400 ``FIELD_INTEGRITY_EXCEPTION`` otherwise) and activated by an
  update of ``Status`` alone, only once it has order products (``FIELD_INTEGRITY_EXCEPTION``
  on ``Status``); ``AccountId`` is refused on an order past Draft, even unchanged
  (``FIELD_INTEGRITY_EXCEPTION``); an order product needs the order's price book and its
  currency (``FIELD_INTEGRITY_EXCEPTION`` on ``PricebookEntryId``), takes ``Product2Id`` and
  ``ListPrice`` from its entry, keeps ``OrderId`` and ``PricebookEntryId`` for life, and
  cannot be added to or changed on an activated order (``ENTITY_IS_LOCKED``). Custom fields
  stay writable on an activated order (the integration user is assumed to hold "Edit
  Activated Orders").
- Salesforce CPQ ordering: a quote save that makes ``SBQQ__Ordered__c`` true generates, in
  the same save (synchronously, as Salesforce Billing's automation guide says CPQ does), a
  Draft Order for the quote's account, price book (``SBQQ__PriceBook__c``, else the
  standard one), currency and start date, with one order product per quote line not on an
  order yet (``SBQQ__PricebookEntryId__c``, else the line product's entry in that price book
  and currency; ``SBQQ__NetPrice__c`` as the unit price; ``SBQQ__QuoteLine__c``). Only a
  primary quote can be ordered (``FIELD_CUSTOM_VALIDATION_EXCEPTION``); when one of the
  generated records is refused, the quote's save is refused whole with
  ``CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY`` naming the inner error, as a managed package's
  trigger failure is. A quote without lines gives an Order without order products, which
  cannot be activated. Every write, a trigger's included, goes through the store's journal:
  an all-or-none composite that fails undoes the generated records too.
- The Account's receivable fields revsync writes: ``Revsync_AR_Status__c`` (restricted
  picklist Current, Overdue, Paid, Void), ``Revsync_AR_Invoice__c``,
  ``Revsync_AR_Amount_Due__c`` (a number in ``Revsync_AR_Currency__c``, not in the account's
  currency) and ``Revsync_AR_As_Of__c`` (date-time). Date-times are stored and answered as
  Salesforce writes them, ``2026-03-01T10:00:00.000+0000``.
- Errors in Salesforce's shape: ``[{"message", "errorCode", "fields"}]``; a missing or
  wrong bearer token (neither the static sandbox token nor an issued, unexpired one) is 401
  ``INVALID_SESSION_ID``.
- The OAuth 2.0 token endpoint ``POST /services/oauth2/token``: client credentials and JWT
  bearer grants (see :func:`build_oauth_router`).
- The org's API request allocation (off until set): every REST call counts against a
  rolling 24-hour allocation; once it is spent, every call is a 403 ``REQUEST_LIMIT_EXCEEDED``
  (``TotalRequests Limit exceeded.``, no ``Retry-After``) until usage ages out; answers carry
  ``Sforce-Limit-Info``. See :mod:`sandbox.salesforce_limits` (with its sources).

Fault-injection operation names (``POST /_sandbox/faults`` with ``vendor="salesforce"``):
``query``, ``query_more``, ``get``, ``create``, ``update``, ``upsert``, ``composite`` (the
whole call), ``oauth_token``. A composite's subrequests go through the rules of their own
operation: an injected fault becomes that subrequest's answer. A rule's ``code`` becomes
the ``errorCode`` of the injected error.

Sandbox controls (``/_sandbox/salesforce``, :func:`build_control_router`): ``POST
cpq-quotes`` makes an accepted CPQ quote with priced lines (:func:`seed_cpq_quote`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import copy
import dataclasses
import json
import re
import secrets
import string
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qs, unquote

from fastapi import APIRouter, Request, Response

from domain.money import quantize
from sandbox import seed
from sandbox.faults import VendorFaults
from sandbox.oauth import (
    OAuthClient,
    OAuthFailure,
    OAuthServer,
    check_times,
    parse_jwt,
    read_form,
    request_url,
    verify_signature,
)
from sandbox.salesforce_limits import ApiAllocation
from sandbox.wire import bearer_token, json_response, read_json

if TYPE_CHECKING:
    from sandbox.app import SandboxState

VENDOR = "salesforce"

# -- schema -------------------------------------------------------------------------------

FieldType = Literal[
    "id",
    "autonumber",
    "string",
    "reference",
    "currency",
    "number",
    "date",
    "datetime",
    "picklist",
    "boolean",
]


@dataclass(frozen=True)
class FieldSpec:
    type: FieldType
    length: int | None = None
    references: str | None = None  # the object a lookup (reference) field points at
    required: bool = False  # must be non-null on create, cannot be cleared on update
    external_id: bool = False  # unique; usable for upsert
    values: frozenset[str] = frozenset()  # restricted picklist values
    system: bool = False  # maintained by the org (CreatedDate, LastModifiedDate)
    # Computed by the org on every read (a roll-up summary, a formula): never written.
    calculated: bool = False
    # Set when the record is created, never changed by an update (OrderItem.OrderId).
    create_only: bool = False

    @property
    def writable(self) -> bool:
        return self.type not in ("id", "autonumber") and not self.system and not self.calculated


# Audit fields the org sets on create and update; never written by a client.
AUDIT_FIELDS = {
    "CreatedDate": FieldSpec("datetime", system=True),
    "LastModifiedDate": FieldSpec("datetime", system=True),
    # Changed by every save, the user's and the system's ("System Fields", Object
    # Reference): what an incremental read filters on.
    "SystemModstamp": FieldSpec("datetime", system=True),
}


def _text(length: int = 255, **kwargs: Any) -> FieldSpec:
    return FieldSpec("string", length=length, **kwargs)


# Salesforce CPQ picklists (the package's values; orgs may add their own).
PAYMENT_TERMS = frozenset({"Due on Receipt", "Net 15", "Net 30", "Net 45", "Net 60", "Net 90"})
CHARGE_TYPES = frozenset({"One-Time", "Recurring", "Usage"})
BILLING_FREQUENCIES = frozenset({"Monthly", "Quarterly", "Semiannual", "Annual", "Invoice Plan"})
SUBSCRIPTION_PRICING = frozenset({"Fixed Price", "Percent Of Total"})

SCHEMA: dict[str, dict[str, FieldSpec]] = {
    "Account": {
        "Id": FieldSpec("id"),
        "Name": _text(required=True),
        "Legal_Entity__c": _text(),
        "Tax_Id__c": _text(40),
        "Billing_Email__c": _text(80),
        "BillingStreet": _text(255),
        "BillingCity": _text(40),
        "BillingState": _text(80),
        "BillingPostalCode": _text(20),
        "BillingCountryCode": _text(2),
        "CurrencyIsoCode": _text(3),
        "Type": FieldSpec(
            "picklist",
            values=frozenset({"Prospect", "Customer - Direct", "Customer - Channel", "Other"}),
        ),
        "Credit_Check_Status__c": FieldSpec(
            "picklist", values=frozenset({"Approved", "Pending", "Declined"})
        ),
        "Revsync_AR_Status__c": FieldSpec(
            "picklist", values=frozenset({"Current", "Overdue", "Paid", "Void"})
        ),
        "Revsync_AR_Invoice__c": _text(255),
        "Revsync_AR_Amount_Due__c": FieldSpec("number"),
        "Revsync_AR_Currency__c": _text(3),
        "Revsync_AR_As_Of__c": FieldSpec("datetime"),
        # The golden customer's fields that quote-to-cash does not read (customer master).
        "OwnerId": _text(18),
        "Website": _text(255),
        "Credit_Limit__c": FieldSpec("number"),
        "Credit_Limit_Currency__c": _text(3),
        "Payment_Method_Status__c": _text(20),
        **AUDIT_FIELDS,
    },
    "SBQQ__Quote__c": {
        "Id": FieldSpec("id"),
        "Name": FieldSpec("autonumber"),
        "SBQQ__Account__c": FieldSpec("reference", references="Account"),
        "SBQQ__Status__c": _text(40),
        "Revsync_Status_Reason__c": _text(255),
        # What a quote-accepted Outbound Message makes revsync read (adapters/crm/salesforce_cpq).
        "SBQQ__Primary__c": FieldSpec("boolean"),
        # Checking it makes Salesforce CPQ generate the quote's Order with its order
        # products, in the same transaction (SalesforceStore._order_quote).
        "SBQQ__Ordered__c": FieldSpec("boolean"),
        "SBQQ__PriceBook__c": FieldSpec("reference", references="Pricebook2"),
        # Lookups to Opportunity and User, objects the emulator does not hold: not checked.
        "SBQQ__Opportunity2__c": _text(18),
        "SBQQ__SalesRep__c": _text(18),
        "OwnerId": _text(18),
        "CurrencyIsoCode": _text(3),
        "SBQQ__StartDate__c": FieldSpec("date"),
        "SBQQ__SubscriptionTerm__c": FieldSpec("number"),
        "SBQQ__PaymentTerms__c": FieldSpec("picklist", values=PAYMENT_TERMS),
        **AUDIT_FIELDS,
    },
    "SBQQ__QuoteLine__c": {
        "Id": FieldSpec("id"),
        "Name": FieldSpec("autonumber"),
        "SBQQ__Quote__c": FieldSpec("reference", references="SBQQ__Quote__c", required=True),
        "SBQQ__Number__c": FieldSpec("number"),
        "SBQQ__Product__c": FieldSpec("reference", references="Product2", required=True),
        "SBQQ__PricebookEntryId__c": _text(18),
        "SBQQ__ProductCode__c": _text(255),
        "SBQQ__Description__c": _text(4000),
        "SBQQ__Quantity__c": FieldSpec("number", required=True),
        "SBQQ__ListPrice__c": FieldSpec("currency"),
        "SBQQ__CustomerPrice__c": FieldSpec("currency"),
        "SBQQ__NetPrice__c": FieldSpec("currency"),
        "SBQQ__Discount__c": FieldSpec("number"),
        "SBQQ__ChargeType__c": FieldSpec("picklist", values=CHARGE_TYPES),
        "SBQQ__BillingFrequency__c": FieldSpec("picklist", values=BILLING_FREQUENCIES),
        "SBQQ__SubscriptionPricing__c": FieldSpec("picklist", values=SUBSCRIPTION_PRICING),
        "SBQQ__SubscriptionTerm__c": FieldSpec("number"),
        "SBQQ__ProrateMultiplier__c": FieldSpec("number"),
        "CurrencyIsoCode": _text(3),
        **AUDIT_FIELDS,
    },
    "Order": {
        "Id": FieldSpec("id"),
        "OrderNumber": FieldSpec("autonumber"),
        # Only changed while the order is Draft (SalesforceStore._order_rules).
        "AccountId": FieldSpec("reference", references="Account", required=True),
        "Pricebook2Id": FieldSpec("reference", references="Pricebook2"),
        "SBQQ__Quote__c": FieldSpec("reference", references="SBQQ__Quote__c"),
        "Revsync_Key__c": _text(80, external_id=True),
        "ERP_Order_Id__c": _text(40),
        "ERP_Customer_Id__c": _text(40),
        # The ERP sales order's total as revsync booked it (a custom currency field).
        "ERP_Order_Total__c": FieldSpec("currency"),
        "Billing_Subscription_Id__c": _text(80),
        "Billing_Customer_Id__c": _text(80),
        # Read only: the sum of the order products' TotalPrice.
        "TotalAmount": FieldSpec("currency", calculated=True),
        "CurrencyIsoCode": _text(3),
        "Status": FieldSpec("picklist", required=True, values=frozenset({"Draft", "Activated"})),
        "EffectiveDate": FieldSpec("date", required=True),
        **AUDIT_FIELDS,
    },
    "OrderItem": {
        "Id": FieldSpec("id"),
        "OrderItemNumber": FieldSpec("autonumber"),
        "OrderId": FieldSpec("reference", references="Order", required=True, create_only=True),
        "PricebookEntryId": FieldSpec(
            "reference", references="PricebookEntry", required=True, create_only=True
        ),
        # Both from the price book entry when the order product is created.
        "Product2Id": FieldSpec("reference", references="Product2", calculated=True),
        "ListPrice": FieldSpec("currency", calculated=True),
        "Quantity": FieldSpec("number", required=True),
        "UnitPrice": FieldSpec("currency", required=True),
        # Read only: UnitPrice times Quantity.
        "TotalPrice": FieldSpec("currency", calculated=True),
        "ServiceDate": FieldSpec("date"),
        "SBQQ__QuoteLine__c": FieldSpec("reference", references="SBQQ__QuoteLine__c"),
        **AUDIT_FIELDS,
    },
    "Product2": {
        "Id": FieldSpec("id"),
        "Name": _text(required=True),
        "ProductCode": _text(255),
        "IsActive": FieldSpec("boolean"),
    },
    "Pricebook2": {
        "Id": FieldSpec("id"),
        "Name": _text(required=True),
        "IsStandard": FieldSpec("boolean", system=True),
        "IsActive": FieldSpec("boolean"),
    },
    "PricebookEntry": {
        "Id": FieldSpec("id"),
        "Pricebook2Id": FieldSpec(
            "reference", references="Pricebook2", required=True, create_only=True
        ),
        "Product2Id": FieldSpec(
            "reference", references="Product2", required=True, create_only=True
        ),
        "UnitPrice": FieldSpec("currency", required=True),
        "CurrencyIsoCode": _text(3, create_only=True),
        "IsActive": FieldSpec("boolean"),
    },
}
# Sforce-Query-Options batchSize bounds.
MIN_BATCH_SIZE = 200
MAX_BATCH_SIZE = 2000
KEY_PREFIXES = {
    "Account": "001",
    "Order": "801",
    "OrderItem": "802",
    "Product2": "01t",
    "Pricebook2": "01s",
    "PricebookEntry": "01u",
    "SBQQ__Quote__c": "a0x",
    "SBQQ__QuoteLine__c": "a0y",
}
AUTONUMBER_FORMATS = {
    "SBQQ__Quote__c": "Q-{:05d}",
    "Order": "{:08d}",
    "OrderItem": "{:010d}",
    "SBQQ__QuoteLine__c": "QL-{:07d}",
}
SNAPSHOT_KEYS = {
    "Account": "accounts",
    "SBQQ__Quote__c": "quotes",
    "SBQQ__QuoteLine__c": "quote_lines",
    "Order": "orders",
    "OrderItem": "order_items",
}
ORDER_DRAFT = "Draft"
ORDER_ACTIVATED = "Activated"

_ALNUM = string.ascii_letters + string.digits
_CHECKSUM_CHARS = string.ascii_uppercase + "012345"


class SalesforceApiError(Exception):
    """An error Salesforce would answer with: HTTP status plus one error entry."""

    def __init__(
        self, status: int, code: str, message: str, fields: list[str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or []


def error_response(
    status: int, code: str | None, message: str, fields: list[str] | None = None
) -> Response:
    """A response in Salesforce's error format (also the fault injector's factory)."""
    default = {401: "INVALID_SESSION_ID", 404: "NOT_FOUND", 503: "SERVER_UNAVAILABLE"}
    body = [
        {
            "message": message,
            "errorCode": code or default.get(status, "UNKNOWN_EXCEPTION"),
            "fields": fields or [],
        }
    ]
    return json_response(body, status)


def _not_found() -> SalesforceApiError:
    return SalesforceApiError(404, "NOT_FOUND", "The requested resource does not exist")


def _integrity(message: str, field: str) -> SalesforceApiError:
    """One of the platform's own data-integrity refusals (not an admin's validation rule)."""
    return SalesforceApiError(400, "FIELD_INTEGRITY_EXCEPTION", f"{message}: {field}", [field])


def _line_total(item: dict[str, Any]) -> Decimal:
    """An order product's ``TotalPrice``: its unit price times its quantity."""
    return Decimal(str(item.get("UnitPrice") or 0)) * Decimal(str(item.get("Quantity") or 0))


def case_safe_id(id15: str) -> str:
    """The 18-character form of a 15-character id (Salesforce's case-safe suffix)."""
    suffix = ""
    for start in range(0, 15, 5):
        chunk = id15[start : start + 5]
        bits = sum(1 << i for i, ch in enumerate(chunk) if ch.isupper())
        suffix += _CHECKSUM_CHARS[bits]
    return id15 + suffix


def parse_datetime(value: str) -> datetime:
    """A date-time as Salesforce writes it (or any ISO 8601 form with a zone)."""
    return datetime.fromisoformat(value)


def format_datetime(moment: datetime) -> str:
    """``moment`` as Salesforce answers a date-time: UTC, milliseconds, ``+0000``."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}+0000"


# -- SOQL subset --------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^'\\]|\\.)*')"
    r"|(?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))"
    r"|(?P<number>\d+)(?![A-Za-z_])"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<punct>!=|<=|>=|[,=()<>]))"
)
_UNESCAPE = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}
_COMPARISONS = ("=", "!=", "<", "<=", ">", ">=")


@dataclass(frozen=True)
class Condition:
    """``field op value`` (``value`` None is SOQL's ``null``; a date-time literal is kept
    as Salesforce answers date-times, so that they compare as text), or ``field IN (...)``
    (``op`` "IN", ``values`` every literal)."""

    field: str
    op: str
    values: tuple[str | None, ...]


@dataclass(frozen=True)
class Soql:
    fields: list[str]
    sobject: str
    # Conditions joined by AND (SOQL's OR, NOT and parentheses are not emulated).
    where: list[Condition]
    limit: int | None
    order_by: tuple[str, bool] | None = None  # (field, descending)


def _malformed(detail: str) -> SalesforceApiError:
    return SalesforceApiError(400, "MALFORMED_QUERY", detail)


def _unescape(literal: str) -> str:
    out: list[str] = []
    chars = iter(literal[1:-1])
    for ch in chars:
        if ch == "\\":
            escaped = next(chars)
            if escaped not in _UNESCAPE:
                raise _malformed(f"Invalid string literal {literal}: illegal escape sequence")
            out.append(_UNESCAPE[escaped])
        else:
            out.append(ch)
    return "".join(out)


def _datetime_literal(text: str) -> str:
    """A SOQL dateTime literal ("Date Formats and Date Literals": ``YYYY-MM-DDThh:mm:ssZ``
    or with an offset ``+hh:mm``) as the org answers date-times (UTC, milliseconds)."""
    normalised = text.replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", normalised):
        normalised = normalised[:-2] + ":" + normalised[-2:]
    return format_datetime(datetime.fromisoformat(normalised))


def parse_soql(soql: str) -> Soql:
    """Parse the supported SOQL subset; raises 400 MALFORMED_QUERY for anything else."""
    tokens: list[tuple[str, str]] = []
    position = 0
    text = soql.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise _malformed(f"unexpected token at: {text[position:][:30]!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()

    def keyword(index: int, word: str) -> bool:
        if index >= len(tokens):
            return False
        kind, value = tokens[index]
        return kind == "name" and value.upper() == word

    def expect(index: int, kind: str) -> str:
        if index >= len(tokens) or tokens[index][0] != kind:
            got = tokens[index][1] if index < len(tokens) else "end of query"
            raise _malformed(f"unexpected token: {got!r}")
        return tokens[index][1]

    def value(index: int) -> str | None:
        if keyword(index, "NULL"):
            return None
        kind = tokens[index][0] if index < len(tokens) else ""
        if kind == "datetime":
            return _datetime_literal(tokens[index][1])
        if kind == "number":
            return tokens[index][1]
        return _unescape(expect(index, "string"))

    i = 0
    if not keyword(i, "SELECT"):
        raise _malformed("query must start with SELECT")
    i += 1
    fields = [expect(i, "name")]
    i += 1
    while i < len(tokens) and tokens[i] == ("punct", ","):
        fields.append(expect(i + 1, "name"))
        i += 2
    if not keyword(i, "FROM"):
        raise _malformed("expected FROM")
    sobject = expect(i + 1, "name")
    i += 2
    where: list[Condition] = []
    if keyword(i, "WHERE"):
        i += 1
        while True:
            field = expect(i, "name")
            if keyword(i + 1, "IN"):
                i, values = _in_list(tokens, i + 2, expect)
                where.append(Condition(field, "IN", values))
            else:
                op = expect(i + 1, "punct")
                if op not in _COMPARISONS:
                    raise _malformed(f"unexpected operator {op!r}")
                literal = value(i + 2)
                if literal is None and op not in ("=", "!="):
                    raise _malformed(f"null can only be compared with = or != (got {op})")
                where.append(Condition(field, op, (literal,)))
                i += 3
            if not keyword(i, "AND"):
                break
            i += 1
    order_by: tuple[str, bool] | None = None
    if keyword(i, "ORDER"):
        if not keyword(i + 1, "BY"):
            raise _malformed("expected BY after ORDER")
        order_field = expect(i + 2, "name")
        i += 3
        descending = keyword(i, "DESC")
        if descending or keyword(i, "ASC"):
            i += 1
        order_by = (order_field, descending)
    limit: int | None = None
    if keyword(i, "LIMIT"):
        limit = int(expect(i + 1, "number"))
        i += 2
    if i != len(tokens):
        raise _malformed(f"unexpected token: {tokens[i][1]!r}")
    return Soql(fields=fields, sobject=sobject, where=where, limit=limit, order_by=order_by)


def _in_list(
    tokens: list[tuple[str, str]], i: int, expect: Callable[[int, str], str]
) -> tuple[int, tuple[str | None, ...]]:
    """The string literals of ``IN ('a', 'b')`` starting at the ``(`` at ``i``, and the
    index after the ``)``."""
    if expect(i, "punct") != "(":
        raise _malformed("expected ( after IN")
    values: list[str | None] = [_unescape(expect(i + 1, "string"))]
    i += 2
    while i < len(tokens) and tokens[i] == ("punct", ","):
        values.append(_unescape(expect(i + 1, "string")))
        i += 2
    if expect(i, "punct") != ")":
        raise _malformed("expected ) to close IN")
    return i + 1, tuple(values)


def _answer(value: Any) -> Any:
    """A field's value as a query answers it: scalars as they are, containers copied."""
    return copy.deepcopy(value) if isinstance(value, (dict, list)) else value


# -- the price book ---------------------------------------------------------------------------

# The org's standard price book and, for every catalog product (sandbox.seed.CATALOG), a
# Product2 and one PricebookEntry per currency it is priced in: what CPQ's order products
# point at. The ids are fixed so that dev tooling can name them (revsync.demo).
STANDARD_PRICE_BOOK_ID = case_safe_id("01s5e000000Std1")
PRODUCT_IDS: dict[str, str] = {
    str(item["itemId"]): case_safe_id(f"01t5e{number:010d}")
    for number, item in enumerate(seed.CATALOG, start=1)
}
PRICE_BOOK_ENTRY_IDS: dict[tuple[str, str], str] = {
    (str(item["itemId"]), currency): case_safe_id(f"01u5e{number * 10 + index:010d}")
    for number, item in enumerate(seed.CATALOG, start=1)
    for index, currency in enumerate(sorted(item["prices"]))
}


def _price_book_records() -> dict[str, list[dict[str, Any]]]:
    active = {str(item["itemId"]): not item.get("isInactive") for item in seed.CATALOG}
    return {
        "Pricebook2": [
            {
                "Id": STANDARD_PRICE_BOOK_ID,
                "Name": "Standard Price Book",
                "IsStandard": True,
                "IsActive": True,
            }
        ],
        "Product2": [
            {
                "Id": PRODUCT_IDS[str(item["itemId"])],
                "Name": item["displayName"],
                "ProductCode": item["itemId"],
                "IsActive": active[str(item["itemId"])],
            }
            for item in seed.CATALOG
        ],
        "PricebookEntry": [
            {
                "Id": entry_id,
                "Pricebook2Id": STANDARD_PRICE_BOOK_ID,
                "Product2Id": PRODUCT_IDS[code],
                "UnitPrice": next(
                    Decimal(i["prices"][currency]) for i in seed.CATALOG if i["itemId"] == code
                ),
                "CurrencyIsoCode": currency,
                "IsActive": active[code],
            }
            for (code, currency), entry_id in PRICE_BOOK_ENTRY_IDS.items()
        ],
    }


# -- the store ----------------------------------------------------------------------------


@dataclass(eq=False)  # compared by identity: the store stacks and unstacks them
class Transaction:
    """What one all-or-none composite wrote, so that its rollback undoes just that.

    Other requests go on while a composite waits between subrequests (an injected fault
    may hold one back), so a rollback must never restore a copy of the whole org: that
    would erase their writes too."""

    created: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    # (sobject, id) -> field -> (value before this transaction, value it wrote)
    changed: dict[tuple[str, str], dict[str, tuple[Any, Any]]] = dataclasses.field(
        default_factory=dict
    )

    def journal_update(
        self, sobject: str, record_id: str, before: dict[str, Any], after: dict[str, Any]
    ) -> None:
        fields = self.changed.setdefault((sobject, record_id), {})
        for name, value in after.items():
            if before.get(name) != value:
                first_before = fields[name][0] if name in fields else before.get(name)
                fields[name] = (first_before, value)


def _trigger_failure(error: SalesforceApiError) -> SalesforceApiError:
    """How the platform answers when a managed package's trigger fails on a DML of its own:
    the save is refused whole with the inner error in the message."""
    return SalesforceApiError(
        400,
        "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY",
        "SBQQ.QuoteAfter: execution of AfterUpdate caused by: System.DmlException: Insert "
        f"failed. First exception on row 0; first error: {error.code}, {error.message}: "
        f"[{', '.join(error.fields)}]",
    )


# Query locators: expired after 15 idle minutes; ten open per user, the oldest released.
LOCATOR_IDLE_SECONDS = 15 * 60
MAX_OPEN_LOCATORS = 10
# When the seeded accounts were made (their audit fields).
SEEDED_AT = "2024-01-02T09:00:00.000+0000"


class SalesforceStore:
    """The org's records, in memory, with the validation a real org would enforce."""

    def __init__(self, *, query_batch_size: int = 2000) -> None:
        # Salesforce pages query results 2000 at a time; tests set a small batch size.
        self.query_batch_size = query_batch_size
        self.records: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in SCHEMA}
        self._autonumbers: dict[str, int] = dict.fromkeys(SCHEMA, 0)
        self._cursors: dict[str, list[dict[str, Any]]] = {}
        # When each open query locator was last used: one idle for LOCATOR_IDLE_SECONDS
        # expires, and past MAX_OPEN_LOCATORS the oldest is released ("QueryLocator", SOAP
        # API Developer Guide); either is then INVALID_QUERY_LOCATOR.
        self._cursor_used: dict[str, float] = {}
        # Records by CreatedDate, per object: (records indexed, sorted (CreatedDate, Id)).
        self._created_index: dict[str, tuple[int, list[tuple[str, str]]]] = {}
        self.clock: Callable[[], float] = time.monotonic
        # The batch size each open query locator pages by.
        self._batch_sizes: dict[str, int] = {}
        # The transactions whose writes are being journalled: the all-or-none composite
        # (writing_for) and, inside it, the save of one record with what its triggers wrote
        # (_savepoint).
        self._transactions: list[Transaction] = []
        # The org's rolling 24-hour API request allocation (sandbox.salesforce_limits).
        self.api_allocation = ApiAllocation()
        for account in seed.ACCOUNTS:
            self.records["Account"][account["Id"]] = {
                **copy.deepcopy(account),
                **dict.fromkeys(AUDIT_FIELDS, SEEDED_AT),
            }
        for sobject, rows in _price_book_records().items():
            for row in rows:
                self.records[sobject][row["Id"]] = {**dict.fromkeys(SCHEMA[sobject]), **row}

    def snapshot(self) -> dict[str, Any]:
        return {
            key: [copy.deepcopy(view) for view in self._views(sobject)]
            for sobject, key in SNAPSHOT_KEYS.items()
        }

    # names: Salesforce matches object and field names case-insensitively

    @staticmethod
    def sobject_name(name: str) -> str:
        for known in SCHEMA:
            if known.lower() == name.lower():
                return known
        raise _not_found()

    @staticmethod
    def field_name(sobject: str, name: str) -> str:
        for known in SCHEMA[sobject]:
            if known.lower() == name.lower():
                return known
        raise SalesforceApiError(
            400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {sobject}", [name]
        )

    # records

    def _new_id(self, sobject: str) -> str:
        while True:
            id15 = KEY_PREFIXES[sobject] + "5e0" + "".join(secrets.choice(_ALNUM) for _ in range(9))
            record_id = case_safe_id(id15)
            if record_id not in self.records[sobject]:
                return record_id

    def _views(self, sobject: str, *, calculated: bool = True) -> Iterator[dict[str, Any]]:
        """Every record of ``sobject`` as the org answers it: with its calculated fields
        (an Order's ``TotalAmount`` rolled up from its order products, an order product's
        ``TotalPrice``), worked out when read, as a roll-up summary is. ``calculated``
        False: the stored fields only (a query that neither selects nor filters on one)."""
        if not calculated:
            yield from self.records[sobject].values()
            return
        totals: dict[str, Decimal] = {}
        if sobject == "Order":
            for item in self.records["OrderItem"].values():
                order_id = str(item["OrderId"])
                totals[order_id] = totals.get(order_id, Decimal(0)) + _line_total(item)
        for record in self.records[sobject].values():
            if sobject == "Order":
                yield {**record, "TotalAmount": totals.get(str(record["Id"]), Decimal(0))}
            elif sobject == "OrderItem":
                yield {**record, "TotalPrice": _line_total(record)}
            else:
                yield record

    def _view(self, sobject: str, record: dict[str, Any]) -> dict[str, Any]:
        if sobject == "Order":
            items = self._order_items(str(record["Id"]))
            return {**record, "TotalAmount": sum((_line_total(i) for i in items), Decimal(0))}
        if sobject == "OrderItem":
            return {**record, "TotalPrice": _line_total(record)}
        return record

    def _order_items(self, order_id: str) -> list[dict[str, Any]]:
        return [i for i in self.records["OrderItem"].values() if i["OrderId"] == order_id]

    def get(self, sobject: str, record_id: str) -> dict[str, Any]:
        record = self.records[sobject].get(record_id)
        if record is None:
            raise _not_found()
        view = self._view(sobject, record)
        return {field: view.get(field) for field in SCHEMA[sobject]}

    def find_by_external_id(self, sobject: str, field: str, value: str) -> dict[str, Any] | None:
        for record in self.records[sobject].values():
            if record.get(field) == value:
                return record
        return None

    @staticmethod
    def external_id_field(sobject: str, name: str) -> str:
        """The canonical name of an external id field usable for upsert."""
        for known, spec in SCHEMA[sobject].items():
            if known.lower() == name.lower() and spec.external_id:
                return known
        raise SalesforceApiError(
            404,
            "NOT_FOUND",
            f"Provided external ID field does not exist or is not accessible: {name}",
        )

    def create(self, sobject: str, body: dict[str, Any]) -> str:
        fields = self._validated(sobject, body, existing=None)
        fields |= self._set_on_create(sobject, fields)
        record_id = self._new_id(sobject)
        record: dict[str, Any] = dict.fromkeys(SCHEMA[sobject])
        record.update(fields)
        record["Id"] = record_id
        self._touch(sobject, record, created=True)
        if sobject in AUTONUMBER_FORMATS:
            self._autonumbers[sobject] += 1
            number = AUTONUMBER_FORMATS[sobject].format(self._autonumbers[sobject])
            autonumber = next(n for n, s in SCHEMA[sobject].items() if s.type == "autonumber")
            record[autonumber] = number
        self.records[sobject][record_id] = record
        for transaction in self._transactions:
            transaction.created.append((sobject, record_id))
        return record_id

    def update(self, sobject: str, record_id: str, body: dict[str, Any]) -> None:
        """Save ``body`` onto the record, and what the save triggers (Salesforce CPQ orders a
        quote whose ``SBQQ__Ordered__c`` becomes true), as one save: if a trigger fails,
        nothing of it stays."""
        record = self.records[sobject].get(record_id)
        if record is None:
            raise _not_found()
        fields = self._validated(sobject, body, existing=record)
        with self._savepoint():
            before = dict(record)
            record.update(fields)
            self._touch(sobject, record, created=False)
            for transaction in self._transactions:
                transaction.journal_update(sobject, record_id, before, record)
            if (
                sobject == "SBQQ__Quote__c"
                and record.get("SBQQ__Ordered__c") is True
                and before.get("SBQQ__Ordered__c") is not True
            ):
                self._order_quote(record)

    @staticmethod
    def _touch(sobject: str, record: dict[str, Any], *, created: bool) -> None:
        """Set the audit fields the object has, as the org does on every save."""
        now = format_datetime(datetime.now(UTC))
        if created and "CreatedDate" in SCHEMA[sobject]:
            record["CreatedDate"] = now
        if "LastModifiedDate" in SCHEMA[sobject]:
            record["LastModifiedDate"] = now
        if "SystemModstamp" in SCHEMA[sobject]:
            record["SystemModstamp"] = now

    @contextmanager
    def writing_for(self, transaction: Transaction) -> Iterator[None]:
        """Journal every write made inside the block into ``transaction``, so that a rollback
        undoes those writes and nothing else. The block must not await: the journal is the
        store's, and another request's writes between two awaits belong to that request."""
        self._transactions.append(transaction)
        try:
            yield
        finally:
            self._transactions.remove(transaction)

    @contextmanager
    def _savepoint(self) -> Iterator[None]:
        """One save with what its triggers write: undone whole when any of it is refused."""
        savepoint = Transaction()
        self._transactions.append(savepoint)
        try:
            yield
        except SalesforceApiError:
            self.rollback(savepoint)
            raise
        finally:
            self._transactions.remove(savepoint)

    def rollback(self, transaction: Transaction) -> None:
        """Undo what ``transaction`` wrote, and only that.

        Records it created are removed. A field it changed gets its earlier value back,
        unless another request has written that field since (the later write stands, as if
        the rolled-back transaction had never run). Auto-numbers it took are not reused:
        an org leaves a gap."""
        for (sobject, record_id), fields in transaction.changed.items():
            record = self.records[sobject].get(record_id)
            if record is None:
                continue
            for name, (before, written) in fields.items():
                if record.get(name) == written:
                    record[name] = before
        for sobject, record_id in reversed(transaction.created):
            self.records[sobject].pop(record_id, None)

    def upsert(
        self, sobject: str, field: str, value: str, body: dict[str, Any]
    ) -> tuple[str, bool]:
        """Update the record whose ``field`` is ``value``, or create it. Returns (id, created)."""
        given = {self.field_name(sobject, k): v for k, v in body.items() if k != "attributes"}
        if field in given and given[field] != value:
            raise SalesforceApiError(
                400,
                "INVALID_FIELD",
                f"The external ID field {field} in the body does not match the URL",
                [field],
            )
        existing = self.find_by_external_id(sobject, field, value)
        if existing is not None:
            self.update(sobject, existing["Id"], body)
            return str(existing["Id"]), False
        return self.create(sobject, {**body, field: value}), True

    # Salesforce CPQ: ordering a quote

    def _order_quote(self, quote: dict[str, Any]) -> None:
        """What Salesforce CPQ does, in the same transaction, when a quote's
        ``SBQQ__Ordered__c`` becomes true: an Order in Draft for the quote's account, price
        book, currency and start date, and one order product per quote line not ordered
        yet (its price book entry, quantity and net unit price). Only a primary quote can
        be ordered. A refusal of any of those saves refuses the quote's save."""
        if quote.get("SBQQ__Primary__c") is not True:
            raise SalesforceApiError(
                400,
                "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                "Only the primary quote of an opportunity can be ordered",
                ["SBQQ__Ordered__c"],
            )
        quote_id = str(quote["Id"])
        ordered_lines = {item["SBQQ__QuoteLine__c"] for item in self.records["OrderItem"].values()}
        lines = sorted(
            (
                line
                for line in self.records["SBQQ__QuoteLine__c"].values()
                if line["SBQQ__Quote__c"] == quote_id and line["Id"] not in ordered_lines
            ),
            key=lambda line: (line["SBQQ__Number__c"] is not None, line["SBQQ__Number__c"] or 0),
        )
        price_book = quote.get("SBQQ__PriceBook__c") or STANDARD_PRICE_BOOK_ID
        currency = quote.get("CurrencyIsoCode")
        start = quote.get("SBQQ__StartDate__c") or datetime.now(UTC).date().isoformat()
        try:
            order_id = self.create(
                "Order",
                {
                    "AccountId": quote.get("SBQQ__Account__c"),
                    "SBQQ__Quote__c": quote_id,
                    "Pricebook2Id": price_book,
                    "CurrencyIsoCode": currency,
                    "EffectiveDate": start,
                    "Status": ORDER_DRAFT,
                },
            )
            for line in lines:
                entry = line.get("SBQQ__PricebookEntryId__c") or self._price_book_entry(
                    line.get("SBQQ__Product__c"), price_book, currency
                )
                unit_price = next(
                    (
                        line[name]
                        for name in (
                            "SBQQ__NetPrice__c",
                            "SBQQ__CustomerPrice__c",
                            "SBQQ__ListPrice__c",
                        )
                        if line.get(name) is not None
                    ),
                    None,
                )
                self.create(
                    "OrderItem",
                    {
                        "OrderId": order_id,
                        "PricebookEntryId": entry,
                        "Quantity": line.get("SBQQ__Quantity__c"),
                        "UnitPrice": unit_price,
                        "ServiceDate": start,
                        "SBQQ__QuoteLine__c": line["Id"],
                    },
                )
        except SalesforceApiError as error:
            raise _trigger_failure(error) from None

    def _price_book_entry(
        self, product_id: object, price_book_id: str, currency: object
    ) -> str | None:
        for entry in self.records["PricebookEntry"].values():
            if (
                entry["Product2Id"] == product_id
                and entry["Pricebook2Id"] == price_book_id
                and entry["CurrencyIsoCode"] == currency
                and entry["IsActive"]
            ):
                return str(entry["Id"])
        return None

    # validation

    def _set_on_create(self, sobject: str, fields: dict[str, Any]) -> dict[str, Any]:
        """The fields the org fills in itself when a record is created."""
        if sobject == "OrderItem":
            entry = self.records["PricebookEntry"][fields["PricebookEntryId"]]
            return {"Product2Id": entry["Product2Id"], "ListPrice": entry["UnitPrice"]}
        return {}

    def _validated(
        self, sobject: str, body: dict[str, Any], existing: dict[str, Any] | None
    ) -> dict[str, Any]:
        schema = SCHEMA[sobject]
        fields: dict[str, Any] = {}
        for name, value in body.items():
            if name == "attributes":
                continue
            canonical = self.field_name(sobject, name)
            spec = schema[canonical]
            if not spec.writable or (existing is not None and spec.create_only):
                raise SalesforceApiError(
                    400,
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {canonical}. Please check the security "
                    "settings of this field and verify that it is read/write for your profile.",
                    [canonical],
                )
            fields[canonical] = self._checked_value(canonical, spec, value)
        merged = {**(existing or {}), **fields}
        missing = [n for n, s in schema.items() if s.required and merged.get(n) in (None, "")]
        if missing:
            raise SalesforceApiError(
                400,
                "REQUIRED_FIELD_MISSING",
                f"Required fields are missing: [{', '.join(missing)}]",
                missing,
            )
        for name, value in fields.items():
            spec = schema[name]
            if spec.external_id and value is not None:
                clash = self.find_by_external_id(sobject, name, value)
                if clash is not None and (existing is None or clash["Id"] != existing["Id"]):
                    raise SalesforceApiError(
                        400,
                        "DUPLICATE_VALUE",
                        f"duplicate value found: {name} duplicates value on record with id: "
                        f"{clash['Id']}",
                        [name],
                    )
        if sobject == "Order":
            self._order_rules(fields, existing)
        elif sobject == "OrderItem":
            self._order_item_rules(merged, existing)
        # Validation rules, as an admin would add them.
        as_of = fields.get("Revsync_AR_As_Of__c")
        prior = (existing or {}).get("Revsync_AR_As_Of__c")
        if (
            sobject == "Account"
            and isinstance(as_of, str)
            and isinstance(prior, str)
            and parse_datetime(as_of) < parse_datetime(prior)
        ):
            raise SalesforceApiError(
                400,
                "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                "Revsync_AR_Monotonic: the receivable status shown is newer "
                f"(as of {prior}) than the one written (as of {as_of})",
                ["Revsync_AR_As_Of__c"],
            )
        return fields

    def _order_rules(self, fields: dict[str, Any], existing: dict[str, Any] | None) -> None:
        """The platform's own rules on an Order's life (Object Reference, Order):

        - an order is created Draft;
        - its account changes only while it is Draft: once activated, an update naming
          ``AccountId`` is refused, even with the value it already has;
        - it is activated by an update of ``Status`` alone, and only when it has order
          products;
        - its price book cannot change once it has order products."""
        if existing is None:
            if fields.get("Status", ORDER_DRAFT) != ORDER_DRAFT:
                raise _integrity("An order is created in Draft; activate it afterwards", "Status")
            return
        prior = existing.get("Status")
        if "AccountId" in fields and prior != ORDER_DRAFT:
            raise _integrity(
                "The account of an order can only be changed while the order is Draft",
                "AccountId",
            )
        items = self._order_items(str(existing["Id"]))
        if fields.get("Status") == ORDER_ACTIVATED and prior != ORDER_ACTIVATED:
            others = sorted(set(fields) - {"Status"})
            if others:
                raise _integrity(
                    "Activating an order updates its Status only; update "
                    f"{', '.join(others)} before activating",
                    "Status",
                )
            if not items:
                raise _integrity("An order without order products cannot be activated", "Status")
        if (
            "Pricebook2Id" in fields
            and fields["Pricebook2Id"] != existing.get("Pricebook2Id")
            and items
        ):
            raise _integrity(
                "The price book of an order with order products cannot change", "Pricebook2Id"
            )

    def _order_item_rules(self, item: dict[str, Any], existing: dict[str, Any] | None) -> None:
        """An order product is added to (or changed on) a Draft order only, and its price
        book entry must be in the order's price book and currency."""
        order = self.records["Order"][item["OrderId"]]
        if order.get("Status") != ORDER_DRAFT:
            raise SalesforceApiError(
                400,
                "ENTITY_IS_LOCKED",
                "The order is activated: its order products cannot be added, changed or removed",
            )
        if existing is not None:
            return
        entry = self.records["PricebookEntry"][item["PricebookEntryId"]]
        if order.get("Pricebook2Id") is None or entry["Pricebook2Id"] != order["Pricebook2Id"]:
            raise _integrity(
                "The order product's price book entry is not in the order's price book (or "
                "the order has none)",
                "PricebookEntryId",
            )
        if entry["CurrencyIsoCode"] != order.get("CurrencyIsoCode"):
            raise _integrity(
                "The order product's price book entry is in another currency than the order",
                "PricebookEntryId",
            )
        if not entry["IsActive"]:
            raise _integrity("The price book entry is inactive", "PricebookEntryId")

    def _checked_value(self, name: str, spec: FieldSpec, value: Any) -> Any:
        if value is None:
            return None
        if spec.type in ("string", "picklist", "reference", "date", "datetime") and not isinstance(
            value, str
        ):
            raise SalesforceApiError(
                400, "JSON_PARSER_ERROR", f"Cannot deserialize value for {name}: expected a string"
            )
        if spec.type == "string" and spec.length is not None and len(value) > spec.length:
            raise SalesforceApiError(
                400,
                "STRING_TOO_LONG",
                f"{name}: data value too large: {value[:40]}... (max length={spec.length})",
                [name],
            )
        if spec.type == "picklist" and value not in spec.values:
            raise SalesforceApiError(
                400,
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                f"{name}: bad value for restricted picklist field: {value}",
                [name],
            )
        if spec.references is not None and value not in self.records[spec.references]:
            raise SalesforceApiError(
                400,
                "INVALID_CROSS_REFERENCE_KEY",
                f"invalid cross reference id: {name} = {value}",
                [name],
            )
        if spec.type == "date":
            try:
                date.fromisoformat(value)
            except ValueError:
                raise SalesforceApiError(
                    400,
                    "JSON_PARSER_ERROR",
                    f"Cannot deserialize instance of date from VALUE_STRING value {value}",
                ) from None
            if len(value) != 10:
                raise SalesforceApiError(
                    400, "JSON_PARSER_ERROR", f"{name}: expected YYYY-MM-DD, got {value}"
                )
        if spec.type == "datetime":
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                moment = None
            if moment is None or moment.tzinfo is None or len(value) < 19:
                raise SalesforceApiError(
                    400,
                    "JSON_PARSER_ERROR",
                    f"Cannot deserialize instance of datetime from VALUE_STRING value {value}: "
                    "expected YYYY-MM-DDThh:mm:ss with a zone (Z or +hh:mm)",
                )
            return format_datetime(moment)
        if spec.type == "boolean" and not isinstance(value, bool):
            raise SalesforceApiError(
                400, "JSON_PARSER_ERROR", f"Cannot deserialize value for {name}: expected a boolean"
            )
        if spec.type in ("currency", "number") and (
            isinstance(value, bool) or not isinstance(value, int | Decimal)
        ):
            raise SalesforceApiError(
                400, "JSON_PARSER_ERROR", f"Cannot deserialize value for {name}: expected a number"
            )
        return value

    # queries

    def batch_size(self, options: str | None) -> int:
        """The batch size of a query: ``Sforce-Query-Options: batchSize=N`` taken between
        Salesforce's 200 and 2000 as a wish, and never above ``query_batch_size`` (as a real
        org may page smaller than asked; tests set it low)."""
        wanted = MAX_BATCH_SIZE
        for option in (options or "").split(","):
            name, _, value = option.strip().partition("=")
            if name.strip().lower() == "batchsize" and value.strip().isdigit():
                wanted = min(max(int(value.strip()), MIN_BATCH_SIZE), MAX_BATCH_SIZE)
        return min(wanted, self.query_batch_size)

    def query(self, soql: str, version: str, batch_size: int | None = None) -> dict[str, Any]:
        parsed = parse_soql(soql)
        try:
            sobject = self.sobject_name(parsed.sobject)
        except SalesforceApiError:
            raise SalesforceApiError(
                400, "INVALID_TYPE", f"sObject type '{parsed.sobject}' is not supported."
            ) from None
        fields = [self.field_name(sobject, f) for f in parsed.fields]

        def on_calculated(condition: Condition) -> bool:
            return SCHEMA[sobject][self.field_name(sobject, condition.field)].calculated

        stored = [self._predicate(sobject, c) for c in parsed.where if not on_calculated(c)]
        worked_out = [self._predicate(sobject, c) for c in parsed.where if on_calculated(c)]
        calculated = bool(worked_out) or any(SCHEMA[sobject][f].calculated for f in fields)
        # Stored fields first: calculated ones are worked out for those records only.
        matches = [
            record
            for record in self._created_candidates(sobject, parsed.where)
            if all(test(record) for test in stored)
        ]
        if calculated:
            matches = [self._view(sobject, record) for record in matches]
            matches = [r for r in matches if all(test(r) for test in worked_out)]
        if parsed.order_by is not None:
            order_field, descending = parsed.order_by
            order_field = self.field_name(sobject, order_field)
            # Salesforce puts nulls first in ascending order (NULLS FIRST is the default).
            matches.sort(
                key=lambda r: (
                    r.get(order_field) is not None,
                    "" if r.get(order_field) is None else r.get(order_field),
                ),
                reverse=descending,
            )
        if parsed.limit is not None:
            matches = matches[: parsed.limit]
        rows = [
            {
                "attributes": {
                    "type": sobject,
                    "url": f"/services/data/{version}/sobjects/{sobject}/{record['Id']}",
                },
                **{f: _answer(record.get(f)) for f in fields},
            }
            for record in matches
        ]
        batch = self.query_batch_size if batch_size is None else batch_size
        return self._page(rows, version, locator=None, offset=0, batch=batch)

    def query_more(self, cursor: str, version: str) -> dict[str, Any]:
        locator, _, offset = cursor.rpartition("-")
        used = self._cursor_used.get(locator)
        if used is not None and self.clock() - used > LOCATOR_IDLE_SECONDS:
            self._release(locator)
        rows = self._cursors.get(locator)
        if rows is None or not offset.isdigit() or int(offset) > len(rows):
            raise SalesforceApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        batch = self._batch_sizes.get(locator, self.query_batch_size)
        return self._page(rows, version, locator=locator, offset=int(offset), batch=batch)

    def _page(
        self,
        rows: list[dict[str, Any]],
        version: str,
        *,
        locator: str | None,
        offset: int,
        batch: int,
    ) -> dict[str, Any]:
        end = offset + batch
        page: dict[str, Any] = {
            "totalSize": len(rows),
            "done": end >= len(rows),
            "records": rows[offset:end],
        }
        if end < len(rows):
            if locator is None:
                locator = "01g5e" + "".join(secrets.choice(_ALNUM) for _ in range(13))
                self._cursors[locator] = rows
                self._batch_sizes[locator] = batch
                while len(self._cursors) > MAX_OPEN_LOCATORS:
                    self._release(min(self._cursor_used, key=self._cursor_used.__getitem__))
            self._cursor_used[locator] = self.clock()
            page["nextRecordsUrl"] = f"/services/data/{version}/query/{locator}-{end}"
        elif locator is not None:
            self._release(locator)
        return page

    def _release(self, locator: str) -> None:
        self._cursors.pop(locator, None)
        self._batch_sizes.pop(locator, None)
        self._cursor_used.pop(locator, None)

    def _created_candidates(self, sobject: str, where: list[Condition]) -> Iterable[dict[str, Any]]:
        """The records a query's ``CreatedDate`` bounds allow (a superset; every condition is
        still tested), from an index by creation time (``CreatedDate`` never changes; the
        index is rebuilt when records were added or removed); all records without bounds."""
        records = self.records[sobject]
        bounds = [
            c
            for c in where
            if c.field.lower() == "createddate" and c.op in (">=", ">", "<", "<=") and c.values[0]
        ]
        if not bounds or "CreatedDate" not in SCHEMA[sobject]:
            return records.values()
        count, keys = self._created_index.get(sobject, (-1, []))
        if count != len(records):
            keys = sorted((str(r.get("CreatedDate") or ""), k) for k, r in records.items())
            self._created_index[sobject] = (len(records), keys)
        low = max((str(c.values[0]) for c in bounds if c.op in (">=", ">")), default=None)
        high = min((str(c.values[0]) for c in bounds if c.op in ("<", "<=")), default=None)
        lo = 0 if low is None else bisect.bisect_left(keys, (low, ""))
        hi = len(keys) if high is None else bisect.bisect_right(keys, (high, "\uffff"))
        return (records[k] for _, k in keys[lo:hi] if k in records)

    def _predicate(self, sobject: str, condition: Condition) -> Callable[[dict[str, Any]], bool]:
        """``condition`` as a test of one record. Text compares case-insensitively (SOQL
        does), ids and references exactly, numbers as numbers, date-times as the org writes
        them (UTC, so as text); ``null`` only with ``=`` and ``!=``."""
        field = self.field_name(sobject, condition.field)
        kind = SCHEMA[sobject][field].type
        numeric = kind in ("number", "currency")

        def norm(value: Any) -> Any:
            if numeric:
                try:
                    return Decimal(str(value))
                except InvalidOperation:
                    raise _malformed(f"{value!r} is not a number for {field}") from None
            if kind in ("id", "reference", "datetime", "date", "boolean"):
                return str(value).lower() if kind == "boolean" else str(value)
            return str(value).casefold()

        if condition.op == "IN":
            wanted = {norm(v) for v in condition.values if v is not None}
            return lambda r: r.get(field) is not None and norm(r.get(field)) in wanted
        (literal,) = condition.values
        if literal is None:
            if condition.op == "=":
                return lambda r: r.get(field) is None
            return lambda r: r.get(field) is not None
        target = norm(literal)
        compare: Callable[[Any, Any], bool] = {
            "=": lambda a, b: a == b,
            "!=": lambda a, b: a != b,
            "<": lambda a, b: a < b,
            "<=": lambda a, b: a <= b,
            ">": lambda a, b: a > b,
            ">=": lambda a, b: a >= b,
        }[condition.op]
        if condition.op == "!=":
            # SOQL: a null field is "not equal" to every value.
            return lambda r: r.get(field) is None or compare(norm(r.get(field)), target)
        return lambda r: r.get(field) is not None and compare(norm(r.get(field)), target)


# -- HTTP ---------------------------------------------------------------------------------

_VERSION = re.compile(r"^v\d+\.\d$")
_API_PATH = re.compile(
    r"^/services/data/(?P<version>v\d+\.\d)/(?P<rest>[^?]*)(?:\?(?P<query>.*))?$"
)
_REFERENCE_ID = re.compile(r"^[A-Za-z0-9_]{1,80}$")
_REFERENCE = re.compile(r"@\{(?P<ref>[A-Za-z0-9_]+)\.(?P<path>[^}]+)\}")
_PATH_STEP = re.compile(r"([A-Za-z0-9_]+)|\[(\d+)\]")
# Composite limits: 25 subrequests, of which at most 5 queries.
MAX_SUBREQUESTS = 25
MAX_COMPOSITE_QUERIES = 5
HALTED = "PROCESSING_HALTED"

# One REST operation: its fault-injection name and what it does, answering (status, body).
Answer = tuple[int, Any]


def _sobject_body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise SalesforceApiError(400, "JSON_PARSER_ERROR", "Expected a JSON object")
    return body


def _record(store: SalesforceStore, sobject: str, record_id: str, version: str) -> Answer:
    url = f"/services/data/{version}/sobjects/{sobject}/{record_id}"
    return 200, {"attributes": {"type": sobject, "url": url}, **store.get(sobject, record_id)}


def rest_operation(
    method: str, version: str, parts: list[str], params: dict[str, str], options: str | None
) -> tuple[str, Callable[[SalesforceStore, Any], Answer]]:
    """The operation a REST call names (its fault-injection name and its action on the
    store and the request body), for the decoded path segments after
    ``/services/data/vNN.N/``. Raises 404 ``NOT_FOUND`` for a path or method the emulator
    does not serve."""
    parts = [p for p in parts if p]
    method = method.upper()
    if parts == ["query"] and method == "GET":
        soql = params.get("q")

        def query(store: SalesforceStore, _body: Any) -> Answer:
            if not soql:
                raise _malformed("missing query parameter q")
            return 200, store.query(soql, version, store.batch_size(options))

        return "query", query
    if len(parts) == 2 and parts[0] == "query" and method == "GET":
        return "query_more", lambda store, _b: (200, store.query_more(parts[1], version))
    if not parts or parts[0] != "sobjects" or len(parts) not in (2, 3, 4):
        raise _not_found()
    if len(parts) == 2 and method == "POST":

        def create(store: SalesforceStore, body: Any) -> Answer:
            record_id = store.create(store.sobject_name(parts[1]), _sobject_body(body))
            return 201, {"id": record_id, "success": True, "errors": []}

        return "create", create
    if len(parts) == 3 and method == "GET":
        return "get", lambda store, _b: _record(
            store, store.sobject_name(parts[1]), parts[2], version
        )
    if len(parts) == 3 and method == "PATCH":

        def update(store: SalesforceStore, body: Any) -> Answer:
            store.update(store.sobject_name(parts[1]), parts[2], _sobject_body(body))
            return 204, None

        return "update", update
    if len(parts) == 4 and method == "GET":

        def get_by_external_id(store: SalesforceStore, _body: Any) -> Answer:
            name = store.sobject_name(parts[1])
            field = store.external_id_field(name, parts[2])
            record = store.find_by_external_id(name, field, parts[3])
            if record is None:
                raise _not_found()
            return _record(store, name, record["Id"], version)

        return "get", get_by_external_id
    if len(parts) == 4 and method == "PATCH":

        def upsert(store: SalesforceStore, body: Any) -> Answer:
            name = store.sobject_name(parts[1])
            field = store.external_id_field(name, parts[2])
            record_id, created = store.upsert(name, field, parts[3], _sobject_body(body))
            answer = {"id": record_id, "success": True, "errors": [], "created": created}
            return (201 if created else 200), answer

        return "upsert", upsert
    raise _not_found()


def _error_body(code: str, message: str, fields: list[str] | None = None) -> list[dict[str, Any]]:
    return [{"message": message, "errorCode": code, "fields": fields or []}]


def _resolve(value: Any, results: dict[str, Any]) -> Any:
    """``value`` with every ``@{referenceId.path}`` replaced by what that earlier
    subrequest answered (``@{order.id}``, ``@{quotes.records[0].Id}``)."""
    if isinstance(value, dict):
        return {key: _resolve(item, results) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve(item, results) for item in value]
    if not isinstance(value, str):
        return value

    def lookup(match: re.Match[str]) -> str:
        ref, path = match.group("ref"), match.group("path")
        if ref not in results:
            raise SalesforceApiError(
                400, HALTED, f"Invalid reference specified. No value for {ref} found."
            )
        found: Any = results[ref]
        for step in re.split(r"\.", path):
            for name, index in _PATH_STEP.findall(step):
                if name and isinstance(found, dict) and name in found:
                    found = found[name]
                elif index and isinstance(found, list) and int(index) < len(found):
                    found = found[int(index)]
                else:
                    raise SalesforceApiError(
                        400,
                        HALTED,
                        f"Invalid reference specified. No value for {ref}.{path} found in {ref}.",
                    )
        return str(found)

    return _REFERENCE.sub(lookup, value)


def _composite_request(body: Any) -> tuple[bool, list[dict[str, Any]]]:
    """``allOrNone`` and the subrequests of a composite body, checked as Salesforce does."""
    if not isinstance(body, dict) or not isinstance(body.get("compositeRequest"), list):
        raise SalesforceApiError(400, "JSON_PARSER_ERROR", "compositeRequest is required")
    subrequests = body["compositeRequest"]
    if not 1 <= len(subrequests) <= MAX_SUBREQUESTS:
        raise SalesforceApiError(
            400, "INVALID_BATCH_REQUEST", f"a composite holds 1 to {MAX_SUBREQUESTS} subrequests"
        )
    seen: set[str] = set()
    queries = 0
    for sub in subrequests:
        if not isinstance(sub, dict) or not all(
            isinstance(sub.get(key), str) for key in ("method", "url", "referenceId")
        ):
            raise SalesforceApiError(
                400, "JSON_PARSER_ERROR", "each subrequest needs method, url and referenceId"
            )
        ref = sub["referenceId"]
        if not _REFERENCE_ID.fullmatch(ref) or ref in seen:
            raise SalesforceApiError(
                400, "INVALID_BATCH_REQUEST", f"referenceId {ref!r} is invalid or repeated"
            )
        seen.add(ref)
        queries += "/query" in sub["url"]
    if queries > MAX_COMPOSITE_QUERIES:
        raise SalesforceApiError(
            400,
            "INVALID_BATCH_REQUEST",
            f"a composite holds at most {MAX_COMPOSITE_QUERIES} query subrequests",
        )
    all_or_none = body.get("allOrNone", False)
    if not isinstance(all_or_none, bool):
        raise SalesforceApiError(400, "JSON_PARSER_ERROR", "allOrNone must be a boolean")
    return all_or_none, subrequests


def _subrequest_answer(status: int, body: Any, ref: str, headers: dict[str, str]) -> dict[str, Any]:
    return {"body": body, "httpHeaders": headers, "httpStatusCode": status, "referenceId": ref}


async def run_composite(
    store: SalesforceStore, faults: VendorFaults, body: Any, options: str | None
) -> tuple[int, Any] | Response:
    """``POST composite``: each subrequest in order, references resolved from earlier
    answers. With ``allOrNone`` the first failure rolls back what this composite wrote and
    every other subrequest answers 400 ``PROCESSING_HALTED``; without it a failure halts
    only the subrequests that reference it. The answer is 200 whatever the subrequests did.

    The subrequests run as one step with no await in between, as the org runs a
    transaction: other requests never see it half done, and a rollback cannot meet their
    writes. Injected latency and hangs hold the answer back after the work is done. A
    fault of the ``after`` phase on a subrequest means what it means on a call made alone,
    "applied, but the answer was lost": the composite is committed and the whole call
    answers that fault."""
    all_or_none, subrequests = _composite_request(body)
    transaction = Transaction()
    answers: list[dict[str, Any]] = []
    results: dict[str, Any] = {}
    failed: str | None = None
    hold = 0.0
    lost: Response | None = None
    for sub in subrequests:
        ref = sub["referenceId"]
        if failed is not None and all_or_none:
            break
        outcome = _run_subrequest(store, faults, sub, results, options, transaction)
        hold += outcome.hold_seconds
        lost = lost or outcome.lost_answer
        if outcome.status >= 400:
            failed = failed or ref
        else:
            results[ref] = outcome.body
        answers.append(_subrequest_answer(outcome.status, outcome.body, ref, outcome.headers))
    if failed is not None and all_or_none:
        store.rollback(transaction)
        rolled_back = _error_body(
            HALTED,
            "The transaction was rolled back since another operation in the same transaction "
            "failed.",
        )
        answers = [
            answer
            if answer["referenceId"] == failed
            else _subrequest_answer(400, rolled_back, answer["referenceId"], {})
            for answer in answers
        ] + [
            _subrequest_answer(400, rolled_back, sub["referenceId"], {})
            for sub in subrequests[len(answers) :]
        ]
    if hold:
        await asyncio.sleep(hold)
    if lost is not None:
        return lost
    return 200, {"compositeResponse": answers}


@dataclass(frozen=True)
class _SubrequestOutcome:
    status: int
    body: Any
    headers: dict[str, str]
    hold_seconds: float = 0.0
    # An ``after`` fault: the change is made, and the composite's answer is this error.
    lost_answer: Response | None = None


def _run_subrequest(
    store: SalesforceStore,
    faults: VendorFaults,
    sub: dict[str, Any],
    results: dict[str, Any],
    options: str | None,
    transaction: Transaction,
) -> _SubrequestOutcome:
    """One subrequest, without waiting. Its operation's fault rules apply to it as to the
    same call made alone: a ``before`` fault becomes its answer, unapplied."""
    try:
        url = _resolve(sub["url"], results)
        match = _API_PATH.fullmatch(url)
        if match is None:
            raise _not_found()
        params = {k: v[0] for k, v in parse_qs(match.group("query") or "").items()}
        parts = [unquote(part) for part in match.group("rest").split("/")]
        operation, action = rest_operation(
            sub["method"], match.group("version"), parts, params, options
        )
        request_body = _resolve(sub.get("body"), results)
        before = faults.decide_before(operation)
        if before.response is not None:
            status, body, headers = _injected(before.response)
            return _SubrequestOutcome(status, body, headers, before.hold_seconds)
        with store.writing_for(transaction):
            status, body = action(store, request_body)
        after = faults.decide_after(operation)
        return _SubrequestOutcome(
            status, body, {}, before.hold_seconds + after.hold_seconds, after.response
        )
    except SalesforceApiError as error:
        return _SubrequestOutcome(
            error.status, _error_body(error.code, error.message, error.fields), {}
        )


def _injected(response: Response) -> tuple[int, Any, dict[str, str]]:
    headers = {k: v for k, v in response.headers.items() if k.lower() == "retry-after"}
    return response.status_code, json.loads(bytes(response.body)), headers


def build_router(state: SandboxState) -> APIRouter:
    """Salesforce's REST routes over ``state.salesforce`` (looked up per request, since a
    sandbox reset replaces the store)."""
    router = APIRouter()
    base = "/services/data/{version}"

    async def serve(request: Request, version: str, rest: str) -> Response:
        """Auth, the operation's fault hooks around it, Salesforce-shaped errors."""
        if not state.oauth[VENDOR].accepts(bearer_token(request), state.tokens[VENDOR]):
            return error_response(401, "INVALID_SESSION_ID", "Session expired or invalid")
        if not _VERSION.fullmatch(version):
            return error_response(404, "NOT_FOUND", "The requested resource does not exist")
        allocation = state.salesforce.api_allocation
        if not allocation.spend():
            return allocation.refusal()  # the org's 24-hour API allocation is spent
        options = request.headers.get("sforce-query-options")
        faults = VendorFaults(state.faults, VENDOR, error_response)
        try:
            if rest == "composite" and request.method == "POST":
                operation = "composite"
            else:
                operation, action = rest_operation(
                    request.method, version, rest.split("/"), dict(request.query_params), options
                )
            if (injected := await faults.before(operation)) is not None:
                return injected
            try:
                body = await read_json(request)
            except ValueError:
                raise SalesforceApiError(
                    400, "JSON_PARSER_ERROR", "The request body is not valid JSON"
                ) from None
            if operation == "composite":
                ran = await run_composite(state.salesforce, faults, body, options)
                if isinstance(ran, Response):
                    return ran
                status, answer = ran
            else:
                status, answer = action(state.salesforce, body)
        except SalesforceApiError as error:
            return error_response(error.status, error.code, error.message, error.fields)
        if (injected := await faults.after(operation)) is not None:
            return injected
        return Response(status_code=204) if answer is None else json_response(answer, status)

    @router.api_route(base + "/{rest:path}", methods=["GET", "POST", "PATCH"])
    async def rest_api(version: str, rest: str, request: Request) -> Response:
        response = await serve(request, version, rest)
        if response.status_code != 401:
            response.headers.update(state.salesforce.api_allocation.usage_header())
        return response

    return router


def build_control_router(state: SandboxState) -> APIRouter:
    """Sandbox-only controls (no auth, no faults), mounted at ``/_sandbox/salesforce``:

    ``POST /cpq-quotes`` makes an accepted primary Salesforce CPQ quote with its lines, as a
    seller's CPQ session leaves it (see :func:`seed_cpq_quote`), and answers its ids with
    the Outbound Message envelope the org would post for it (``outbound_message``: send it
    to the gateway's ``/v1/webhooks/salesforce/outbound-message``).

    ``POST /api-allocation`` with ``{"max": <calls or null>, "used": <calls>}`` sets the
    org's 24-hour API request allocation and the calls already spent
    (:mod:`sandbox.salesforce_limits`); ``GET`` reads it."""
    router = APIRouter()

    @router.post("/api-allocation")
    async def set_api_allocation(request: Request) -> Response:
        try:
            body = await read_json(request) or {}
            maximum = body.get("max")
            used = int(body.get("used", 0))
            if maximum is not None and (isinstance(maximum, bool) or int(maximum) < 0):
                raise ValueError("max must be a number of calls, or null")
            if used < 0:
                raise ValueError("used cannot be negative")
        except (ValueError, TypeError, AttributeError) as error:
            return json_response({"detail": str(error)}, 400)
        allocation = state.salesforce.api_allocation
        allocation.set(None if maximum is None else int(maximum), used)
        return json_response(allocation.snapshot())

    @router.get("/api-allocation")
    async def get_api_allocation() -> Response:
        return json_response(state.salesforce.api_allocation.snapshot())

    @router.post("/cpq-quotes")
    async def cpq_quote(request: Request) -> Response:
        try:
            body = _sobject_body(await read_json(request) or {})
            seeded = seed_cpq_quote(state.salesforce, **_cpq_options(body))
        except (SalesforceApiError, ValueError, TypeError, KeyError) as error:
            return json_response({"detail": str(error)}, 400)
        return json_response(seeded, 201)

    return router


# -- Salesforce CPQ: an accepted quote, as a seller's session leaves it ------------------------

# The org the sandbox plays (REVSYNC_SALESFORCE_ORG_IDS must allow it for its Outbound
# Messages to be taken; ``revsync dev`` allows it).
ORG_ID = case_safe_id("00D5e0000001Rsb")
SANDBOX_SALES_REP = case_safe_id("0055e000001SRep")
_FREQUENCIES = {"month": ("Monthly", 1), "year": ("Annual", 12)}


@dataclass(frozen=True)
class CpqLine:
    """One line a seller adds: a catalog product, a quantity, an additional discount."""

    product_code: str
    quantity: Decimal = Decimal(1)
    discount_percent: Decimal = Decimal(0)
    billing_frequency: str = "month"  # "month" or "year"; ignored for one-time products


DEFAULT_CPQ_LINES = (
    CpqLine("PLAT-CORE", Decimal(20), Decimal(10)),
    CpqLine("SUPPORT-PREMIUM"),
    CpqLine("ONBOARD-STD"),
)


def _cpq_options(body: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of :func:`seed_cpq_quote` from a control request's JSON."""
    options = dict(body)
    if "lines" in options:
        options["lines"] = [
            CpqLine(
                product_code=str(line["product_code"]),
                quantity=Decimal(str(line.get("quantity", 1))),
                discount_percent=Decimal(str(line.get("discount_percent", 0))),
                billing_frequency=str(line.get("billing_frequency", "month")),
            )
            for line in options["lines"]
        ]
    if "start_date" in options:
        options["start_date"] = date.fromisoformat(str(options["start_date"]))
    return options


def cpq_quote_records(
    *,
    account_id: str,
    currency: str,
    lines: list[CpqLine] | tuple[CpqLine, ...] = DEFAULT_CPQ_LINES,
    term_months: int = 12,
    payment_terms: str = "Net 30",
    start_date: date | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The fields of a Salesforce CPQ quote (draft) and of its lines as the calculator
    prices them from the price book (the seed catalog, in ``currency``): what a CPQ session
    saves. Prices follow CPQ: a subscription's list, customer and net unit prices cover the
    whole term (the per-period price times ``SBQQ__ProrateMultiplier__c``, the term over
    the product's billing period); the additional discount lowers the customer price, and
    the net price equals it (no partner discount). Each line names its product and price
    book entry (the standard price book's, in the quote's currency). The lines lack their
    ``SBQQ__Quote__c``. Raises ValueError for a product without a price in ``currency``."""
    from sandbox.quotes import price

    items = {item["itemId"]: item for item in seed.CATALOG if currency in item["prices"]}
    for line in lines:  # checked before anything is written
        if line.product_code not in items:
            raise ValueError(f"no {currency} price for product code {line.product_code!r}")
        if line.billing_frequency not in _FREQUENCIES:
            raise ValueError("billing_frequency must be month or year")
    start = start_date or datetime.now(UTC).date()
    quote = {
        "SBQQ__Account__c": account_id,
        "SBQQ__Status__c": "Draft",
        "SBQQ__SalesRep__c": SANDBOX_SALES_REP,
        "OwnerId": SANDBOX_SALES_REP,
        "CurrencyIsoCode": currency,
        "SBQQ__PriceBook__c": STANDARD_PRICE_BOOK_ID,
        "SBQQ__StartDate__c": start.isoformat(),
        "SBQQ__SubscriptionTerm__c": term_months,
        "SBQQ__PaymentTerms__c": payment_terms,
        "SBQQ__Opportunity2__c": case_safe_id("0065e" + secrets.token_hex(5)[:10]),
    }
    line_fields: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        item = items[line.product_code]
        per_period = price(line.product_code, currency)
        fields: dict[str, Any] = {
            "SBQQ__Number__c": number,
            "SBQQ__Product__c": PRODUCT_IDS[line.product_code],
            "SBQQ__PricebookEntryId__c": PRICE_BOOK_ENTRY_IDS[(line.product_code, currency)],
            "SBQQ__ProductCode__c": line.product_code,
            "SBQQ__Description__c": item["displayName"],
            "SBQQ__Quantity__c": line.quantity,
            "SBQQ__Discount__c": line.discount_percent or None,
            "CurrencyIsoCode": currency,
        }
        if item["billing"] == "recurring":
            frequency, months = _FREQUENCIES[line.billing_frequency]
            multiplier = Decimal(term_months) / Decimal(months)
            unit = per_period * (12 if months == 12 else 1) * multiplier
            fields |= {
                "SBQQ__ChargeType__c": "Recurring",
                "SBQQ__BillingFrequency__c": frequency,
                "SBQQ__SubscriptionPricing__c": "Fixed Price",
                "SBQQ__SubscriptionTerm__c": term_months,
                "SBQQ__ProrateMultiplier__c": multiplier,
            }
        else:
            unit = per_period
            fields["SBQQ__ChargeType__c"] = "One-Time"
        customer = quantize(unit * (100 - line.discount_percent) / 100, currency)
        fields |= {
            "SBQQ__ListPrice__c": unit,
            "SBQQ__CustomerPrice__c": customer,
            "SBQQ__NetPrice__c": customer,
        }
        line_fields.append(fields)
    return quote, line_fields


def cpq_quote_composite(
    api_path: str,
    *,
    account_id: str,
    currency: str,
    lines: list[CpqLine] | tuple[CpqLine, ...] = DEFAULT_CPQ_LINES,
    status: str = "Accepted",
) -> dict[str, Any]:
    """The ``POST composite`` body (``api_path`` is ``/services/data/vNN.N``) that saves an
    accepted primary CPQ quote with its priced lines in one all-or-none call, as a CPQ
    session leaves it: the quote (draft), its lines (``@{quote.id}``), then the quote
    marked ``status`` and primary. Its first subrequest's answer names the quote. Money and
    quantities are ``Decimal``: send it with :func:`adapters.http.dumps_json`."""
    quote, line_fields = cpq_quote_records(account_id=account_id, currency=currency, lines=lines)
    subrequests: list[dict[str, Any]] = [
        {
            "method": "POST",
            "url": f"{api_path}/sobjects/SBQQ__Quote__c",
            "referenceId": "quote",
            "body": quote,
        }
    ]
    subrequests += [
        {
            "method": "POST",
            "url": f"{api_path}/sobjects/SBQQ__QuoteLine__c",
            "referenceId": f"line{number}",
            "body": {**fields, "SBQQ__Quote__c": "@{quote.id}"},
        }
        for number, fields in enumerate(line_fields, start=1)
    ]
    subrequests.append(
        {
            "method": "PATCH",
            "url": f"{api_path}/sobjects/SBQQ__Quote__c/@{{quote.id}}",
            "referenceId": "accepted",
            "body": {"SBQQ__Status__c": status, "SBQQ__Primary__c": True},
        }
    )
    return {"allOrNone": True, "compositeRequest": subrequests}


def seed_cpq_quote(
    store: SalesforceStore,
    *,
    account_id: str = "0015e00000AcmeUS1",
    lines: list[CpqLine] | tuple[CpqLine, ...] = DEFAULT_CPQ_LINES,
    term_months: int = 12,
    payment_terms: str = "Net 30",
    start_date: date | None = None,
    status: str = "Accepted",
    primary: bool = True,
) -> dict[str, Any]:
    """Make a Salesforce CPQ quote with its lines the way a CPQ session does
    (:func:`cpq_quote_records`), then mark the quote ``status`` (and primary). Returns the
    ids and the Outbound Message the org would post for the accepted quote."""
    from adapters.webhooks.salesforce import sample_outbound_message

    account = store.get("Account", account_id)
    quote_fields, line_fields = cpq_quote_records(
        account_id=account_id,
        currency=str(account["CurrencyIsoCode"]),
        lines=lines,
        term_months=term_months,
        payment_terms=payment_terms,
        start_date=start_date,
    )
    quote_id = store.create("SBQQ__Quote__c", quote_fields)
    line_ids = [
        store.create("SBQQ__QuoteLine__c", {**fields, "SBQQ__Quote__c": quote_id})
        for fields in line_fields
    ]
    store.update(
        "SBQQ__Quote__c", quote_id, {"SBQQ__Status__c": status, "SBQQ__Primary__c": primary}
    )
    quote = store.get("SBQQ__Quote__c", quote_id)
    notification = {
        "Id": quote_id,
        "Name": quote["Name"],
        "SBQQ__Status__c": status,
        "SBQQ__Primary__c": "true" if primary else "false",
    }
    envelope = sample_outbound_message(
        ORG_ID, [("04l5e" + secrets.token_hex(5)[:10] + "AAA", "SBQQ__Quote__c", notification)]
    )
    return {
        "quote_id": quote_id,
        "name": quote["Name"],
        "line_ids": line_ids,
        "currency": quote_fields["CurrencyIsoCode"],
        "outbound_message": envelope.decode(),
    }


# -- OAuth 2.0 ----------------------------------------------------------------------------

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# The JWT bearer flow's audience for a production org (a sandbox org's is
# https://test.salesforce.com: set ``OAuthServer.audience`` to play one).
LOGIN_AUDIENCE = "https://login.salesforce.com"
_TOKEN_PATH = "/services/oauth2/token"


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        client_id, _, secret = base64.b64decode(encoded.strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthFailure("invalid_client", "invalid client credentials") from None
    return client_id, secret


def _client_credentials(server: OAuthServer, form: dict[str, str], request: Request) -> None:
    basic = _basic_credentials(request)
    client_id, secret = basic or (form.get("client_id", ""), form.get("client_secret", ""))
    client = server.client(client_id)
    if client.client_secret is None or not secrets.compare_digest(
        secret.encode(), client.client_secret.encode()
    ):
        raise OAuthFailure("invalid_client", "invalid client credentials")


def _jwt_bearer(server: OAuthServer, form: dict[str, str], request: Request) -> OAuthClient:
    jwt = parse_jwt(form.get("assertion", ""))
    client = server.client(jwt.claims.get("iss"))
    verify_signature(jwt, client.public_key_pem, ("RS256",))
    # The login server's URL, whatever host the token request came to (the org's My Domain,
    # here the emulator): an assertion naming that host is refused.
    if jwt.claims.get("aud") != (server.audience or LOGIN_AUDIENCE):
        raise OAuthFailure("invalid_grant", "audience is invalid")
    check_times(jwt.claims, server.wall_clock(), max_lifetime=None)
    if client.username is None or jwt.claims.get("sub") != client.username:
        raise OAuthFailure("invalid_grant", "user hasn't approved this consumer")
    return client


def build_oauth_router(state: SandboxState) -> APIRouter:
    """Salesforce's token endpoint, ``POST /services/oauth2/token`` (form-encoded):

    - ``grant_type=client_credentials`` with ``client_id``/``client_secret`` in the body or
      HTTP Basic; a wrong secret is 400 ``invalid_client``, an unknown client 400
      ``invalid_client_id``;
    - ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`` with an RS256 ``assertion``
      (``iss`` a registered client, ``sub`` its username, ``aud`` the login server,
      ``https://login.salesforce.com`` unless the server plays a sandbox org, never the host
      the request came to, ``exp`` not past); anything wrong is 400 ``invalid_grant`` (a
      wrong audience: ``error_description`` "audience is invalid").

    The answer carries ``access_token`` and ``instance_url`` but no ``expires_in``, as
    Salesforce's does: the session times out by policy (the server's ``token_lifetime``),
    and the API then answers 401 ``INVALID_SESSION_ID``. Fault injection operation:
    ``oauth_token``."""
    router = APIRouter()

    @router.post(_TOKEN_PATH)
    async def token(request: Request) -> Response:
        server = state.oauth[VENDOR]
        server.token_requests += 1
        faults = VendorFaults(state.faults, VENDOR, error_response)
        if (injected := await faults.before("oauth_token")) is not None:
            return injected
        try:
            form = await read_form(request)
            grant = form.get("grant_type")
            if grant == "client_credentials":
                _client_credentials(server, form, request)
            elif grant == JWT_BEARER_GRANT:
                _jwt_bearer(server, form, request)
            else:
                raise OAuthFailure("unsupported_grant_type", "grant type not supported")
        except OAuthFailure as failure:
            return failure.response()
        instance = server.instance_url or request_url(request).removesuffix(_TOKEN_PATH)
        access_token = server.issue()
        return json_response(
            {
                "access_token": access_token,
                "instance_url": instance,
                "id": f"{instance}/id/00D000000000001EAA/005000000000001AAA",
                "token_type": "Bearer",
                "issued_at": str(int(server.wall_clock() * 1000)),
                "scope": "api",
                "signature": base64.b64encode(secrets.token_bytes(32)).decode(),
            }
        )

    return router
