"""NetSuite emulator: the slice of SuiteTalk REST web services revsync uses.

Mounted at ``/netsuite``; the adapter's base URL is the only thing that differs from a real
account (``https://<account>.suitetalk.api.netsuite.com``).

Routes (below the prefix) and the operation names fault rules can target:

==========  =====================================================  =======================
method      path                                                   operation
==========  =====================================================  =======================
POST        /services/rest/query/v1/suiteql                        ``suiteql``
PUT         /services/rest/record/v1/customer/eid:<external id>    ``upsert_customer``
GET         /services/rest/record/v1/customer/<id or eid:x>        ``get_customer``
PATCH       /services/rest/record/v1/customer/<id or eid:x>        ``update_customer``
POST        /services/rest/record/v1/salesOrder                    ``create_sales_order``
GET         /services/rest/record/v1/salesOrder                    ``list_sales_orders``
GET         /services/rest/record/v1/salesOrder/<id or eid:x>      ``get_sales_order``
PATCH       /services/rest/record/v1/salesOrder/<id or eid:x>      ``update_sales_order``
POST        /services/rest/record/v1/invoice                       ``create_invoice``
GET         /services/rest/record/v1/invoice/<id or eid:x>         ``get_invoice``
POST        /services/rest/record/v1/invoice/<id>/!transform/      ``create_credit_memo``
            creditMemo
GET         /services/rest/record/v1/creditMemo/<id or eid:x>      ``get_credit_memo``
POST        /services/rest/record/v1/invoice/<id>/!transform/      ``create_customer_payment``
            customerPayment
GET         /services/rest/record/v1/customerPayment/<id or eid:x> ``get_customer_payment``
POST        /services/rest/record/v1/journalEntry                  ``create_journal_entry``
GET         /services/rest/record/v1/journalEntry/<id or eid:x>    ``get_journal_entry``
==========  =====================================================  =======================

Any other path under ``/services/rest/`` answers 404 ``NONEXISTENT_ID`` (operation
``unsupported``).

What it reproduces:

- ``Authorization: Bearer <token>`` (the static sandbox token, or one the token endpoint
  issued and that has not expired); anything else is 401 ``INVALID_LOGIN``.
- OAuth 2.0 client credentials (M2M), ``POST /services/rest/auth/oauth2/v1/token``: see
  :func:`build_oauth_router`.
- Errors in NetSuite's shape: ``{"type", "title", "status", "o:errorDetails": [{"detail",
  "o:errorCode", "o:errorPath"?}]}``.
- Account concurrency governance: with ``NetSuiteStore.concurrency_limit`` set, a request
  arriving while that many are in flight gets 429 ``CONCURRENCY_LIMIT_EXCEEDED``. Peak
  in-flight and refusals are counted (``snapshot()["governance"]``), with or without a limit.
- SuiteQL (``Prefer: transient``, ``limit``/``offset`` paging with ``offset`` a multiple of
  ``limit`` as NetSuite requires, every value a string, nulls
  omitted) over the tables ``item``, ``pricing``, ``currency``, ``term``, ``accountingperiod``,
  ``customer`` (body fields: names, e-mail, url, revsync's custom fields, credit
  limit, currency; invoices also answer ``foreignamountremaining`` in ``transaction``),
  ``account``, ``taxtype`` and ``salestaxitem`` (SuiteTax tax types and tax codes: ``id``,
  ``name``, a code's ``taxtype``) and ``transaction`` (every transaction below plus sales
  orders, with ``type`` ``CustInvc``/``CustCred``/``CustPymt``/``Journal``/``SalesOrd``,
  ``createdfrom``, ``otherrefnum``, ``status`` (a sales order's one-letter code) and
  ``foreigntotal``, negative for a credit memo), for a subset:
  ``SELECT col [AS alias], ... FROM table [INNER JOIN table ON a = b] [WHERE cond AND ...]
  [ORDER BY col [ASC|DESC], ...]`` where a condition is ``col = literal`` or
  ``col IN (literal, ...)``. Anything else is 400 ``INVALID_PARAMETER``.
- Creates and upserts answer 204 with ``Location: <base>/services/rest/record/v1/<type>/<id>``.
  A second sales order with the same ``externalId`` is 400 ``DUP_RCRD``; a reference to a
  customer, item, currency or terms that does not exist is 400 ``INVALID_KEY_OR_REF``; a line
  whose amount is not rate times quantity (rounded to the currency), or an amount finer than the
  currency's minor unit, is 400 ``USER_ERROR``.
- Sublists on upsert/PATCH are merged (appended) unless named in ``?replace=``.
- A body field the record type does not have is 400 ``NONEXISTENT_FIELD`` with its
  ``o:errorPath`` ("Error Handling in REST Web Services"; the code NetSuite answers for an
  unknown field name).
- **SuiteTax** ("REST web services do not support legacy tax features", REST Web Services
  Supported Records): the account runs SuiteTax, so legacy tax fields (a customer's
  ``vatRegNumber``, a line's ``tax1Amt``, ``taxRate1``, ``taxRate2``) are unknown fields. A
  customer's tax ids are its ``taxRegistration`` sublist (``nexusCountry``,
  ``taxRegistrationNumber``, both required). An invoice or credit memo line has a
  ``taxDetailsReference``; its tax comes from the ``taxDetails`` sublist, which can be
  written only with ``taxDetailsOverride: true`` (400 ``USER_ERROR`` on ``taxDetails``
  otherwise), each line naming an item line's reference, a tax type and a tax code of that
  type (``INVALID_KEY_OR_REF`` / ``INVALID_FLD_VALUE`` otherwise), with every column
  (``taxBasis``, ``taxRate``, ``taxAmount`` too) given and the amounts in the currency's minor
  unit; the amounts are kept exactly as given, ``taxTotal`` is their sum. Without the override
  the account's tax engine would compute the tax: the emulator's computes none. A credit memo
  transform copies the invoice's override and the tax details of the lines it keeps, unless
  the body's replace them (``?replace=item,taxDetails``).
- Sales order status ("Closing a Sales Order", "Closing Line Items on Sales Orders"): a new
  order is Pending Approval (A) or Pending Fulfillment (B). ``orderStatus`` can be set only
  on an order Pending Approval, to approve it (B) or cancel it (C); any other value is 400
  ``INVALID_CONTENT`` ("You have entered an Invalid Field Value ... orderStatus"). An approved
  order is closed by closing its lines (``item`` sublist keyed by ``line``, ``isClosed:
  true``), in Pending Fulfillment, Partially Fulfilled, Pending Billing/Partially Fulfilled or
  Pending Billing (400 ``USER_ERROR`` on the line otherwise); once every line is closed the
  order is Closed (H), and reopening a line makes it Pending Fulfillment again.
- A fiscal calendar: a year, four quarters and twelve monthly periods for each of 2020-2035
  (``FY 2026``, ``Q1 2026``, ``Jan 2026``), all open; ``POST /_sandbox/netsuite/periods``
  (``{"period": "2026-03" or "Mar 2026", "closed": true}``, no auth, not NetSuite's API) closes
  or reopens a month, as finance does at month end. A transaction naming a closed
  ``postingPeriod`` (or a quarter or year) is 400 ``USER_ERROR`` on ``postingPeriod``; one
  without a posting period posts in its date's month, or the first open one after it when
  that month is closed (NetSuite's "first open period" preference).
- A chart of accounts: 1000 bank, 1100 receivables, 2200 sales tax, 2400 deferred revenue,
  4000 subscription revenue, 4100 services revenue (``SELECT ... FROM account``).
- Invoices: lines as sales orders have them plus ``taxDetailsReference``,
  ``revRecStartDate``, ``revRecEndDate`` and ``custcol_revsync_line``, and the tax details
  above; ``subtotal``, ``taxTotal``, ``total``,
  ``amountRemaining``, ``amountPaid``, ``status`` A (Open) or B (Paid In Full), ``dueDate``
  (given, else from ``terms``); a negative total is refused. Credit memos and customer
  payments are made only by transforming an invoice: a credit memo copies its lines (or, with
  ``?replace=item`` and lines in the body, credits only those lines and amounts: a partial
  credit memo) and is applied to what is still due, which goes down by as much (the rest stays
  unapplied on the customer); a payment is applied up to what is due (the rest stays
  unapplied) and an invoice with nothing due refuses one. Journal entries must balance and
  have at least two lines, each a positive ``debit`` or ``credit`` on an existing account.
  Every one of them is unique by ``externalId`` (400 ``DUP_RCRD``).
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, overload

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

from domain.money import MINOR_UNITS, quantize
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
from sandbox.seed import CATALOG
from sandbox.wire import bearer_token, json_response, read_json

if TYPE_CHECKING:
    from sandbox.app import SandboxState

VENDOR = "netsuite"
RECORD_ROOT = "/services/rest/record/v1"
SUITEQL_PATH = "/services/rest/query/v1/suiteql"
MAX_PAGE_SIZE = 1000

ORDER_STATUS_NAMES = {
    "A": "Pending Approval",
    "B": "Pending Fulfillment",
    "C": "Cancelled",
    "D": "Partially Fulfilled",
    "E": "Pending Billing/Partially Fulfilled",
    "F": "Pending Billing",
    "G": "Billed",
    "H": "Closed",
}
# Statuses in which an order's lines can be closed ("Closing a Sales Order": pending
# fulfillment, partially fulfilled, pending billing), and the already closed one (closing a
# closed line again changes nothing).
_CLOSABLE = frozenset("BDEFH")

# Internal ids as a fresh NetSuite account numbers them.
_CURRENCIES = [
    ("1", "USD", "US Dollar"),
    ("2", "GBP", "British pound"),
    ("3", "CAD", "Canadian Dollar"),
    ("4", "EUR", "Euro"),
    ("5", "JPY", "Yen"),
    ("6", "AUD", "Australian Dollar"),
    ("7", "CHF", "Swiss Franc"),
]
_TERMS = [
    ("1", "1% 10 Net 30", 30),
    ("2", "2% 10 Net 30", 30),
    ("3", "Due on receipt", 0),
    ("4", "Net 15", 15),
    ("5", "Net 30", 30),
    ("6", "Net 45", 45),
    ("7", "Net 60", 60),
    ("8", "Net 90", 90),
]
# The chart of accounts revsync's postings touch: (id, number, name, type).
_ACCOUNTS = [
    ("1", "1000", "Operating Bank Account", "Bank"),
    ("2", "1100", "Accounts Receivable", "AcctRec"),
    ("3", "2200", "Sales Tax Payable", "OthCurrLiab"),
    ("4", "2400", "Deferred Revenue", "DeferRevenue"),
    ("5", "4000", "Subscription Revenue", "Income"),
    ("6", "4100", "Professional Services Revenue", "Income"),
]
# SuiteTax is enabled (REST web services support no legacy tax): the tax types (id, name,
# country) and tax codes (id, name, tax type) set up in the emulated account. ``BILLED-TAX`` is
# the code revsync records billing's tax under (REVSYNC_NETSUITE_TAX_CODE).
_TAX_TYPES = [
    ("1", "VAT", "DE"),
    ("2", "Sales Tax", "US"),
]
_TAX_CODES = [
    ("11", "BILLED-TAX", "1"),
    ("12", "BILLED-SALES-TAX", "2"),
    ("13", "VAT_DE_19", "1"),
]
# Fiscal years set up in the emulated account (calendar years, monthly periods).
FISCAL_YEARS = range(2020, 2036)
MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
INVOICE_STATUS_NAMES = {"A": "Open", "B": "Paid In Full"}
BASE_PRICE_LEVEL = "1"
# A second price level, 20% below list, so a query that forgets the price level is caught.
PARTNER_PRICE_LEVEL = "2"

_STATUS_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Record not found",
    405: "Method Not Allowed",
    409: "Conflict",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
_DEFAULT_CODES = {
    400: "USER_ERROR",
    401: "INVALID_LOGIN",
    403: "INSUFFICIENT_PERMISSION",
    404: "NONEXISTENT_ID",
    429: "CONCURRENCY_LIMIT_EXCEEDED",
}


def error_response(status: int, code: str | None, detail: str, path: str | None = None) -> Response:
    """An error answer as NetSuite writes it."""
    entry: dict[str, Any] = {
        "detail": detail,
        "o:errorCode": code or _DEFAULT_CODES.get(status, "UNEXPECTED_ERROR"),
    }
    if path:
        entry["o:errorPath"] = path
    section = {400: "15.5.1", 401: "15.5.2", 404: "15.5.5", 429: "6"}.get(status, "15.6.1")
    body = {
        "type": f"https://www.rfc-editor.org/rfc/rfc9110.html#section-{section}",
        "title": _STATUS_TITLES.get(status, "Error"),
        "status": status,
        "o:errorDetails": [entry],
    }
    return json_response(
        body,
        status,
        headers={"content-type": "application/vnd.oracle.resource+json; type=error"},
    )


def _fault_response(status: int, code: str | None, message: str) -> Response:
    return error_response(status, code, message)


class NetSuiteError(Exception):
    """Raised by a route to answer with a NetSuite error."""

    def __init__(self, status: int, code: str, detail: str, path: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.path = path

    def response(self) -> Response:
        return error_response(self.status, self.code, self.detail, self.path)


def _bad_ref(path: str, detail: str) -> NetSuiteError:
    return NetSuiteError(400, "INVALID_KEY_OR_REF", detail, path)


def _bad_value(path: str, detail: str) -> NetSuiteError:
    return NetSuiteError(400, "INVALID_FLD_VALUE", detail, path)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# -- SuiteQL ---------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)"
    r"|(?P<op><>|!=|>=|<=|[(),=<>]))"
)
_KEYWORDS = frozenset(
    {"select", "from", "inner", "join", "on", "where", "and", "in", "order", "by", "as"}
    | {"asc", "desc", "to_timestamp"}
)
_COMPARISONS = ("=", "<>", "!=", "<", "<=", ">", ">=")
# The one timestamp format TO_TIMESTAMP takes here (Oracle's format model, as SuiteQL's).
TIMESTAMP_FORMAT = "YYYY-MM-DD HH24:MI:SS"
# Date-time columns (answered, stored and compared as UTC ``2026-03-01T10:00:00Z`` text).
_DATETIME_COLUMNS = frozenset({"createddate", "lastmodifieddate", "datecreated"})
# SuiteQL over REST pages through at most 100,000 results of a query ("Collection Paging"
# and "Executing SuiteQL Queries Through REST Web Services", NetSuite Help Center).
MAX_QUERY_RESULTS = 100_000
_TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "item": ("id", "itemid", "displayname", "isinactive", "itemtype", "custitem_revsync_billing"),
    "pricing": ("item", "pricelevel", "currency", "unitprice"),
    "currency": ("id", "symbol", "name", "isinactive"),
    "term": ("id", "name", "daysuntilnetdue", "isinactive"),
    "accountingperiod": (
        "id",
        "periodname",
        "startdate",
        "enddate",
        "closed",
        "isquarter",
        "isyear",
        "isadjust",
        "isinactive",
        "alllocked",
        "arlocked",
        "aplocked",
        "parent",
    ),
    "account": ("id", "acctnumber", "fullname", "accttype", "isinactive"),
    # SuiteTax: tax types and tax codes (a tax code record names its tax type).
    "taxtype": ("id", "name", "country", "isinactive"),
    "salestaxitem": ("id", "name", "taxtype", "isinactive"),
    "transaction": (
        "id",
        "tranid",
        "type",
        "recordtype",
        "externalid",
        "createdfrom",
        "entity",
        "currency",
        "foreigntotal",
        "trandate",
        "postingperiod",
        "memo",
        "otherrefnum",
        "status",
        "foreignamountremaining",
        "createddate",
        "lastmodifieddate",
    ),
    "customer": (
        "id",
        "externalid",
        "companyname",
        "legalname",
        "email",
        "url",
        "custentity_revsync_owner",
        "custentity_revsync_payment_state",
        "creditlimit",
        "currency",
        "datecreated",
        "lastmodifieddate",
    ),
}


class SuiteQLError(Exception):
    pass


@dataclass
class _Tokens:
    items: list[tuple[str, str]]
    pos: int = 0

    def peek(self) -> tuple[str, str] | None:
        return self.items[self.pos] if self.pos < len(self.items) else None

    def next(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise SuiteQLError("unexpected end of query")
        self.pos += 1
        return token

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token == ("name", word):
            self.pos += 1
            return True
        return False

    def expect(self, kind: str, value: str | None = None) -> str:
        got_kind, got = self.next()
        if got_kind != kind or (value is not None and got != value):
            raise SuiteQLError(f"expected {value or kind}, found {got!r}")
        return got


def _tokenize(query: str) -> _Tokens:
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = query.strip().rstrip(";")
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise SuiteQLError(f"unexpected character at {pos}: {text[pos : pos + 10]!r}")
        pos = match.end()
        kind = match.lastgroup
        if kind is None:
            continue
        value = match.group(kind)
        if kind == "str":
            value = value[1:-1].replace("''", "'")
        elif kind == "name":
            value = value.lower()
        tokens.append((kind, value))
    return _Tokens(tokens)


@dataclass
class _Query:
    columns: list[tuple[str, str]] = field(default_factory=list)  # (table.col, output name)
    tables: list[str] = field(default_factory=list)
    join: tuple[str, str] | None = None
    # (table.col, operator, literals): ``IN`` holds every literal, the others one.
    conditions: list[tuple[str, str, list[str]]] = field(default_factory=list)
    order: list[tuple[str, bool]] = field(default_factory=list)  # (table.col, descending)
    # Output names of TO_CHAR(col, 'YYYY-MM-DD HH24:MI:SS') columns.
    formatted: set[str] = field(default_factory=set)


def _literal(tokens: _Tokens) -> str:
    if tokens.keyword("to_timestamp"):
        tokens.expect("op", "(")
        text = tokens.expect("str")
        tokens.expect("op", ",")
        model = tokens.expect("str")
        tokens.expect("op", ")")
        if model != TIMESTAMP_FORMAT:
            raise SuiteQLError(f"unsupported timestamp format {model!r}")
        try:
            moment = datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
        except ValueError:
            raise SuiteQLError(f"{text!r} does not match {model!r}") from None
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    kind, value = tokens.next()
    if kind not in ("str", "num"):
        raise SuiteQLError(f"expected a literal, found {value!r}")
    return value


def _parse(query: str) -> _Query:
    tokens = _tokenize(query)
    parsed = _Query()
    raw_columns: list[tuple[str, str | None]] = []
    tokens.expect("name", "select")
    formatted: set[str] = set()
    while True:
        ref = tokens.expect("name")
        if ref == "to_char" and tokens.peek() == ("op", "("):
            # TO_CHAR(datetime column, 'YYYY-MM-DD HH24:MI:SS') AS alias: the full time.
            tokens.next()
            ref = tokens.expect("name")
            tokens.expect("op", ",")
            model = tokens.expect("str")
            tokens.expect("op", ")")
            if model != TIMESTAMP_FORMAT:
                raise SuiteQLError(f"unsupported format {model!r}")
            if not tokens.keyword("as"):
                raise SuiteQLError("TO_CHAR(...) needs an alias here")
            alias: str | None = tokens.expect("name")
            formatted.add(alias or ref)
        else:
            alias = tokens.expect("name") if tokens.keyword("as") else None
        raw_columns.append((ref, alias))
        if tokens.peek() != ("op", ","):
            break
        tokens.next()
    tokens.expect("name", "from")
    parsed.tables.append(tokens.expect("name"))
    raw_join: tuple[str, str] | None = None
    if tokens.keyword("inner") or tokens.peek() == ("name", "join"):
        tokens.expect("name", "join")
        parsed.tables.append(tokens.expect("name"))
        tokens.expect("name", "on")
        left = tokens.expect("name")
        tokens.expect("op", "=")
        raw_join = (left, tokens.expect("name"))
    for table in parsed.tables:
        if table not in _TABLE_COLUMNS:
            raise SuiteQLError(f"unknown table {table!r}")
    if len(set(parsed.tables)) != len(parsed.tables):
        raise SuiteQLError("a table may appear once")

    def resolve(ref: str) -> str:
        if ref in _KEYWORDS:
            raise SuiteQLError(f"unexpected keyword {ref!r}")
        table, _, column = ref.rpartition(".")
        if table:
            if table not in parsed.tables or column not in _TABLE_COLUMNS[table]:
                raise SuiteQLError(f"unknown column {ref!r}")
            return ref
        owners = [t for t in parsed.tables if column in _TABLE_COLUMNS[t]]
        if len(owners) != 1:
            raise SuiteQLError(f"unknown or ambiguous column {ref!r}")
        return f"{owners[0]}.{column}"

    parsed.columns = [(resolve(ref), alias or ref.rpartition(".")[2]) for ref, alias in raw_columns]
    parsed.formatted = formatted
    if raw_join is not None:
        parsed.join = (resolve(raw_join[0]), resolve(raw_join[1]))
    if tokens.keyword("where"):
        while True:
            column = resolve(tokens.expect("name"))
            if tokens.keyword("in"):
                tokens.expect("op", "(")
                values = [_literal(tokens)]
                while tokens.peek() == ("op", ","):
                    tokens.next()
                    values.append(_literal(tokens))
                tokens.expect("op", ")")
                operator = "IN"
            else:
                operator = tokens.expect("op")
                if operator not in _COMPARISONS:
                    raise SuiteQLError(f"unexpected operator {operator!r}")
                values = [_literal(tokens)]
            parsed.conditions.append((column, operator, values))
            if not tokens.keyword("and"):
                break
    if tokens.keyword("order"):
        tokens.expect("name", "by")
        while True:
            column = resolve(tokens.expect("name"))
            descending = tokens.keyword("desc")
            if not descending:
                tokens.keyword("asc")
            parsed.order.append((column, descending))
            if tokens.peek() != ("op", ","):
                break
            tokens.next()
    leftover = tokens.peek()
    if leftover is not None:
        raise SuiteQLError(f"unexpected {leftover[1]!r}")
    return parsed


def _condition(column: str, operator: str, values: list[str]) -> Callable[[Any], bool]:
    """One WHERE condition as a test of a column's value: ``IN`` and ``=`` compare text,
    the orderings numbers as numbers and date-times as times (UTC text compares as time)."""
    if operator == "IN":
        wanted = set(values)
        return lambda value: _text(value) in wanted
    (literal,) = values
    if operator == "=":
        return lambda value: _text(value) == literal
    if operator in ("<>", "!="):
        return lambda value: value is not None and _text(value) != literal
    name = column.rpartition(".")[2]
    orderings: dict[str, Callable[[Any, Any], bool]] = {
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }
    if name in _DATETIME_COLUMNS:  # UTC text compares as time
        by_text = orderings[operator]
        return lambda value: value is not None and by_text(str(value), literal)
    if name == "id" and literal.isdigit():
        by_number, bound = orderings[operator], int(literal)
        return lambda value: value is not None and by_number(int(value), bound)
    target = _sort_key(literal)
    compare: Callable[[Any, Any], bool] = {
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }[operator]
    return lambda value: value is not None and compare(_sort_key(_text(value)), target)


class _Answer(Sequence[dict[str, str]]):
    """The rows of a SuiteQL answer, each formatted as SuiteQL writes it when read."""

    def __init__(self, parsed: _Query, rows: list[Any], names: dict[str, str]) -> None:
        self.parsed, self.rows, self.names = parsed, rows, names

    def __len__(self) -> int:
        return len(self.rows)

    def _format(self, row: Any) -> dict[str, str]:
        out: dict[str, str] = {}
        for column, name in self.parsed.columns:
            value = _text(row.get(self.names.get(column, column)))
            if value is None:
                continue
            if column.rpartition(".")[2] in _DATETIME_COLUMNS:
                value = _datetime_text(value, full=name in self.parsed.formatted)
            out[name] = value
        return out

    @overload
    def __getitem__(self, index: int) -> dict[str, str]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, str]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, str] | list[dict[str, str]]:
        if isinstance(index, slice):
            return [self._format(row) for row in self.rows[index]]
        return self._format(self.rows[index])


def _created_bounds(parsed: _Query) -> tuple[str | None, str | None] | None:
    """The bounds a query puts on ``createddate`` (for the creation index), if any."""
    low: str | None = None
    high: str | None = None
    for column, operator, values in parsed.conditions:
        if column != "transaction.createddate" or operator not in (">=", ">", "<", "<="):
            continue
        if operator in (">=", ">"):
            low = values[0] if low is None else max(low, values[0])
        else:
            high = values[0] if high is None else min(high, values[0])
    return None if low is None and high is None else (low, high)


def _datetime_text(value: str, *, full: bool) -> str:
    """A stored UTC date-time as SuiteQL answers it: ``2026-03-01 10:00:00`` through
    TO_CHAR, else the date in the account's default format (``3/1/2026``)."""
    moment = datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
    if full:
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    return f"{moment.month}/{moment.day}/{moment.year}"


def _text(value: Any) -> str | None:
    """A value as SuiteQL answers it: text, or nothing for null."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "T" if value else "F"
    return str(value)


def _sort_key(value: str | None) -> tuple[int, Decimal, str]:
    if value is None:
        return (2, Decimal(0), "")
    try:
        return (0, Decimal(value), "")
    except InvalidOperation:
        return (1, Decimal(0), value)


# -- accounting periods ----------------------------------------------------------------------


def _period_row(
    pid: str, name: str, start: date, end: date, *, kind: str, parent: str | None
) -> dict[str, Any]:
    return {
        "id": pid,
        "periodname": name,
        "startdate": start,
        "enddate": end,
        "closed": False,
        "isquarter": kind == "quarter",
        "isyear": kind == "year",
        "isadjust": False,
        "isinactive": False,
        "alllocked": False,
        "arlocked": False,
        "aplocked": False,
        "parent": parent,
    }


def _month_end(year: int, month: int) -> date:
    if month == 12:
        return date(year, 12, 31)
    return date(year, month + 1, 1) - timedelta(days=1)


def _fiscal_calendar(years: range) -> dict[str, dict[str, Any]]:
    """A year, its quarters and its months per fiscal year, named as NetSuite names them
    by default (``FY 2026``, ``Q1 2026``, ``Jan 2026``), all open."""
    periods: dict[str, dict[str, Any]] = {}
    ids = itertools.count(1)
    for year in years:
        year_id = str(next(ids))
        periods[year_id] = _period_row(
            year_id, f"FY {year}", date(year, 1, 1), date(year, 12, 31), kind="year", parent=None
        )
        for quarter in range(4):
            first = quarter * 3 + 1
            quarter_id = str(next(ids))
            periods[quarter_id] = _period_row(
                quarter_id,
                f"Q{quarter + 1} {year}",
                date(year, first, 1),
                _month_end(year, first + 2),
                kind="quarter",
                parent=year_id,
            )
            for month in range(first, first + 3):
                month_id = str(next(ids))
                periods[month_id] = _period_row(
                    month_id,
                    f"{MONTH_NAMES[month - 1]} {year}",
                    date(year, month, 1),
                    _month_end(year, month),
                    kind="month",
                    parent=quarter_id,
                )
    return periods


# -- the store -------------------------------------------------------------------------------


Column = Callable[[dict[str, Any]], Any]
# How each ``transaction`` column reads a transaction record.
_TXN_COLUMNS: dict[str, Column] = {
    "id": lambda r: r["id"],
    "tranid": lambda r: r.get("tranId"),
    "externalid": lambda r: r.get("externalId"),
    "createdfrom": lambda r: None,
    "entity": lambda r: r.get("entity") or r.get("customer"),
    "currency": lambda r: r.get("currency"),
    "foreigntotal": lambda r: r.get("total"),
    "trandate": lambda r: r.get("tranDate"),
    "postingperiod": lambda r: r.get("postingPeriod"),
    "memo": lambda r: r.get("memo"),
    "otherrefnum": lambda r: r.get("otherRefNum"),
    # SuiteQL answers a transaction's status as its one-letter code.
    "status": lambda r: None,
    "foreignamountremaining": lambda r: None,
    "createddate": lambda r: r.get("createdDate"),
    "lastmodifieddate": lambda r: r.get("lastModifiedDate"),
}
# What differs by type.
_ORDER: dict[str, Column] = {
    "postingperiod": lambda r: None,
    "status": lambda r: r["orderStatus"],
}
_INVOICE: dict[str, Column] = {
    "status": lambda r: r.get("status"),
    "foreignamountremaining": lambda r: r.get("amountRemaining"),
}
_CREDIT: dict[str, Column] = {
    "createdfrom": lambda r: r["createdFrom"],
    "foreigntotal": lambda r: -r["total"],
}
_PAYMENT: dict[str, Column] = {"foreigntotal": lambda r: r["payment"]}


def _constant(value: Any) -> Column:
    def read(record: dict[str, Any]) -> Any:
        return value

    return read


class _TxnRow:
    """One row of SuiteQL's ``transaction`` table, read from its record when asked."""

    __slots__ = ("kind", "overrides", "record", "recordtype")

    def __init__(
        self, record: dict[str, Any], kind: str, recordtype: str, overrides: dict[str, Column]
    ) -> None:
        self.record, self.kind, self.recordtype, self.overrides = (
            record,
            kind,
            recordtype,
            overrides,
        )

    def get(self, column: str, default: Any = None) -> Any:
        if column == "type":
            return self.kind
        if column == "recordtype":
            return self.recordtype
        read = self.overrides.get(column) or _TXN_COLUMNS.get(column)
        return default if read is None else read(self.record)

    def items(self) -> list[tuple[str, Any]]:
        return [(c, self.get(c)) for c in ("type", "recordtype", *_TXN_COLUMNS)]


class NetSuiteStore:
    """One NetSuite account, in memory."""

    def __init__(self) -> None:
        self.currencies: dict[str, dict[str, Any]] = {
            cid: {"id": cid, "symbol": symbol, "name": name, "isinactive": False}
            for cid, symbol, name in _CURRENCIES
        }
        for item in CATALOG:  # every currency the seed catalog prices in is enabled
            for symbol in item["prices"]:
                if symbol not in self._currency_by_symbol():
                    cid = str(len(self.currencies) + 1)
                    self.currencies[cid] = {
                        "id": cid,
                        "symbol": symbol,
                        "name": symbol,
                        "isinactive": False,
                    }
        self.terms: dict[str, dict[str, Any]] = {
            tid: {"id": tid, "name": name, "daysuntilnetdue": days, "isinactive": False}
            for tid, name, days in _TERMS
        }
        self.items: dict[str, dict[str, Any]] = {}
        self.pricing: list[dict[str, Any]] = []
        by_symbol = self._currency_by_symbol()
        for item in CATALOG:
            self.items[item["id"]] = {
                "id": item["id"],
                "itemid": item["itemId"],
                "displayname": item["displayName"],
                "isinactive": bool(item.get("isInactive", False)),
                "itemtype": "Service",
                "custitem_revsync_billing": item["billing"],
            }
            for symbol, price in item["prices"].items():
                list_price = Decimal(price)
                partner = quantize(list_price * Decimal("0.8"), symbol)
                for level, unit_price in (
                    (BASE_PRICE_LEVEL, list_price),
                    (PARTNER_PRICE_LEVEL, partner),
                ):
                    self.pricing.append(
                        {
                            "item": item["id"],
                            "pricelevel": level,
                            "currency": by_symbol[symbol],
                            "unitprice": unit_price,
                        }
                    )
        self.customers: dict[str, dict[str, Any]] = {}
        self.sales_orders: dict[str, dict[str, Any]] = {}
        self._customer_ids = itertools.count(301)
        self._order_ids = itertools.count(7001)
        # Invoice-to-revenue transactions: invoices, credit memos, payments, journal entries.
        self.invoices: dict[str, dict[str, Any]] = {}
        self.credit_memos: dict[str, dict[str, Any]] = {}
        self.customer_payments: dict[str, dict[str, Any]] = {}
        self.journal_entries: dict[str, dict[str, Any]] = {}
        self._transaction_ids = itertools.count(20001)
        self._created_index: dict[str, tuple[int, list[tuple[str, str]]]] = {}
        self.accounts: dict[str, dict[str, Any]] = {
            aid: {
                "id": aid,
                "acctnumber": number,
                "fullname": name,
                "accttype": kind,
                "isinactive": False,
            }
            for aid, number, name, kind in _ACCOUNTS
        }
        self.periods: dict[str, dict[str, Any]] = _fiscal_calendar(FISCAL_YEARS)
        self.tax_types: dict[str, dict[str, Any]] = {
            tid: {"id": tid, "name": name, "country": country, "isinactive": False}
            for tid, name, country in _TAX_TYPES
        }
        self.tax_codes: dict[str, dict[str, Any]] = {
            cid: {"id": cid, "name": name, "taxtype": taxtype, "isinactive": False}
            for cid, name, taxtype in _TAX_CODES
        }
        # Governance.
        self.concurrency_limit: int | None = None
        self.in_flight = 0
        self.peak_in_flight = 0
        self.rejected = 0

    # governance

    def admit(self) -> bool:
        """Count a request in, unless the concurrency limit is reached (then count a refusal)."""
        if self.concurrency_limit is not None and self.in_flight >= self.concurrency_limit:
            self.rejected += 1
            return False
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        return True

    def release(self) -> None:
        self.in_flight -= 1

    # lookups

    def _currency_by_symbol(self) -> dict[str, str]:
        return {c["symbol"]: cid for cid, c in self.currencies.items()}

    def currency_symbol(self, currency_id: str | None) -> str | None:
        if currency_id is None:
            return None
        return str(self.currencies[currency_id]["symbol"])

    def _find(self, records: dict[str, dict[str, Any]], ref: str) -> dict[str, Any] | None:
        if ref.startswith("eid:"):
            external_id = ref[4:]
            return next((r for r in records.values() if r["externalId"] == external_id), None)
        return records.get(ref)

    def find_customer(self, ref: str) -> dict[str, Any] | None:
        return self._find(self.customers, ref)

    def find_sales_order(self, ref: str) -> dict[str, Any] | None:
        return self._find(self.sales_orders, ref)

    def set_order_status(self, order_id: str, status: str) -> None:
        """Move an order on as NetSuite users would outside revsync (approve it or not, fulfil
        it, bill it, close it: Closed closes every line)."""
        if status not in ORDER_STATUS_NAMES:
            raise ValueError(f"unknown sales order status {status!r}")
        order = self.sales_orders[order_id]
        order["orderStatus"] = status
        if status == "H":
            for line in order["item"]:
                line["isClosed"] = True
        order["lastModifiedDate"] = _now()

    # SuiteQL

    def _table(self, name: str) -> list[dict[str, Any]]:
        if name == "item":
            return list(self.items.values())
        if name == "pricing":
            return self.pricing
        if name == "currency":
            return list(self.currencies.values())
        if name == "term":
            return list(self.terms.values())
        if name == "accountingperiod":
            return list(self.periods.values())
        if name == "account":
            return list(self.accounts.values())
        if name == "taxtype":
            return list(self.tax_types.values())
        if name == "salestaxitem":
            return list(self.tax_codes.values())
        if name == "customer":
            return self._customer_rows()
        return self._transaction_rows()

    def _customer_rows(self) -> list[dict[str, Any]]:
        """SuiteQL's ``customer`` table: the body fields, column names in lower case."""
        return [
            {
                "id": c["id"],
                "externalid": c.get("externalId"),
                "companyname": c.get("companyName"),
                "legalname": c.get("legalName"),
                "email": c.get("email"),
                "url": c.get("url"),
                "custentity_revsync_owner": c.get("custentity_revsync_owner"),
                "custentity_revsync_payment_state": c.get("custentity_revsync_payment_state"),
                "creditlimit": c.get("creditLimit"),
                "currency": c.get("currency"),
                "datecreated": c.get("dateCreated"),
                "lastmodifieddate": c.get("lastModifiedDate") or c.get("dateCreated"),
            }
            for c in self.customers.values()
        ]

    def suiteql(self, query: str) -> Sequence[dict[str, str]]:
        """Rows of ``query``, every value as text and nulls left out (each row made when it
        is read: a page of a large answer formats that page only). Raises SuiteQLError.

        A date-time column answers its date in the account's default format (``3/1/2026``)
        unless selected as ``TO_CHAR(col, 'YYYY-MM-DD HH24:MI:SS')``; in a condition it
        compares as a time (``TO_TIMESTAMP('2026-03-01 10:00:00', 'YYYY-MM-DD HH24:MI:SS')``).
        """
        parsed = _parse(query)
        first = parsed.tables[0]
        tests = [
            (column, _condition(column, op, values)) for column, op, values in parsed.conditions
        ]
        if len(parsed.tables) == 1:
            # One table: test the rows as they are (no copies), those of the asked
            # transaction types only.
            types = next(
                (
                    set(v)
                    for c, op, v in parsed.conditions
                    if c == "transaction.type" and op in ("=", "IN")
                ),
                None,
            )
            plain = [(column.rpartition(".")[2], test) for column, test in tests]
            rows: list[Any]
            if first == "transaction":
                rows = self._transactions_where(types, plain, _created_bounds(parsed))
            else:
                rows = [
                    row for row in self._table(first) if all(test(row.get(c)) for c, test in plain)
                ]
            names = {f"{first}.{k}": k for k in _TABLE_COLUMNS[first]}
        else:
            rows = [{f"{first}.{k}": v for k, v in row.items()} for row in self._table(first)]
            assert parsed.join is not None
            right_name = parsed.tables[1]
            joined: list[dict[str, Any]] = []
            for left in rows:
                for right in self._table(right_name):
                    both = {**left, **{f"{right_name}.{k}": v for k, v in right.items()}}
                    a, b = parsed.join
                    if _text(both.get(a)) is not None and _text(both.get(a)) == _text(both.get(b)):
                        joined.append(both)
            rows = [row for row in joined if all(test(row.get(c)) for c, test in tests)]
            names = {}
        for column, descending in reversed(parsed.order):
            lookup = names.get(column, column)

            def key(row: dict[str, Any], column: str = lookup) -> tuple[int, Decimal, str]:
                return _sort_key(_text(row.get(column)))

            rows.sort(key=key, reverse=descending)
        return _Answer(parsed, rows, names)

    # customers

    def upsert_customer(self, external_id: str, body: Any, replace: set[str]) -> dict[str, Any]:
        _check_fields(body, _CUSTOMER_FIELDS)
        if body.get("externalId", external_id) != external_id:
            raise _bad_value("externalId", "externalId does not match the eid in the URL.")
        customer = self.find_customer(f"eid:{external_id}")
        if customer is None:
            if not isinstance(body.get("companyName"), str) or not body["companyName"].strip():
                raise NetSuiteError(
                    400, "USER_ERROR", "Please enter value(s) for: Company Name", "companyName"
                )
            customer = {
                "id": str(next(self._customer_ids)),
                "externalId": external_id,
                "addressBook": [],
                "taxRegistration": [],
                "currency": None,
                "dateCreated": _now(),
            }
            self._apply_customer(customer, body, replace)
            self.customers[customer["id"]] = customer
        else:
            self._apply_customer(customer, body, replace)
        return customer

    def update_customer(self, customer: dict[str, Any], body: Any, replace: set[str]) -> None:
        """PATCH a customer. Its ``externalId`` can be set or changed, unique among customers
        (400 ``DUP_RCRD`` otherwise): "Updating An Existing Record's External ID" (Tim
        Dietrich, SuiteTalk REST and External IDs,
        https://timdietrich.me/blog/netsuite-suitetalk-rest-external-ids) and "Using External
        IDs" (https://docs.oracle.com/en/cloud/saas/netsuite/ns-online-help/section_156334828635.html)."""
        _check_fields(body, _CUSTOMER_FIELDS)
        if "externalId" in body:
            external_id = body["externalId"]
            if not isinstance(external_id, str) or not external_id:
                raise _bad_value("externalId", "Invalid externalId.")
            holder = self._find(self.customers, f"eid:{external_id}")
            if holder is not None and holder["id"] != customer["id"]:
                raise NetSuiteError(
                    400,
                    "DUP_RCRD",
                    f"This record already exists: a customer with external ID {external_id!r}.",
                    "externalId",
                )
            staged = {k: v for k, v in body.items() if k != "externalId"}
            self._apply_customer(customer, staged, replace)
            customer["externalId"] = external_id
            return
        self._apply_customer(customer, body, replace)

    def _apply_customer(
        self, customer: dict[str, Any], body: dict[str, Any], replace: set[str]
    ) -> None:
        staged = dict(customer)
        for key in (
            "companyName",
            "legalName",
            "email",
            "phone",
            "comments",
            "url",
            "custentity_revsync_owner",
            "custentity_revsync_payment_state",
        ):
            if key in body:
                if body[key] is not None and not isinstance(body[key], str):
                    raise _bad_value(key, f"Invalid value for field {key}: expected text.")
                staged[key] = body[key]
        if "currency" in body:
            currency_id = _ref(body["currency"], "currency")
            if currency_id not in self.currencies:
                raise _bad_ref("currency", f"Invalid currency reference key {currency_id}.")
            staged["currency"] = currency_id
        if "addressBook" in body:
            addresses = [
                _address(entry, n)
                for n, entry in enumerate(_sublist(body["addressBook"], "addressBook"))
            ]
            staged["addressBook"] = (
                addresses if "addressbook" in replace else [*customer["addressBook"], *addresses]
            )
        if "taxRegistration" in body:
            registrations = [
                _tax_registration(entry, n)
                for n, entry in enumerate(_sublist(body["taxRegistration"], "taxRegistration"))
            ]
            staged["taxRegistration"] = (
                registrations
                if "taxregistration" in replace
                else [*customer["taxRegistration"], *registrations]
            )
        staged["lastModifiedDate"] = _now()
        customer.update(staged)

    def render_customer(
        self, customer: dict[str, Any], self_url: str, expand: bool = False
    ) -> dict[str, Any]:
        sublists = ("addressBook", "taxRegistration", "currency")
        addresses = [
            {
                "links": [],
                "defaultBilling": a["defaultBilling"],
                "defaultShipping": a["defaultShipping"],
                "label": a["label"],
                "addressBookAddress": {
                    "links": [],
                    **{
                        k: v
                        for k, v in a.items()
                        if k not in ("defaultBilling", "defaultShipping", "label", "country")
                    },
                    "country": {"id": a["country"]},
                },
            }
            for a in customer["addressBook"]
        ]
        registrations = [
            {
                "links": [],
                "id": str(n + 1),
                "nexusCountry": {"id": r["nexusCountry"]},
                "taxRegistrationNumber": r["taxRegistrationNumber"],
            }
            for n, r in enumerate(customer["taxRegistration"])
        ]
        record = {
            "links": [{"rel": "self", "href": self_url}],
            **{k: v for k, v in customer.items() if k not in sublists},
            "addressBook": self._sublist_out(
                self_url, "addressBook", addresses if expand else None
            ),
            "taxRegistration": self._sublist_out(
                self_url, "taxRegistration", registrations if expand else None
            ),
        }
        if customer["currency"] is not None:
            currency = self.currencies[customer["currency"]]
            record["currency"] = {"links": [], "id": currency["id"], "refName": currency["name"]}
        return record

    # sales orders

    def create_sales_order(self, body: Any) -> dict[str, Any]:
        _check_fields(body, _ORDER_FIELDS)
        external_id = body.get("externalId")
        if external_id is not None:
            if not isinstance(external_id, str) or not external_id:
                raise _bad_value("externalId", "Invalid externalId.")
            if self.find_sales_order(f"eid:{external_id}") is not None:
                raise NetSuiteError(
                    400,
                    "DUP_RCRD",
                    f"This record already exists: a sales order with external ID {external_id!r}.",
                    "externalId",
                )
        customer_id, currency_id, symbol, terms_id = self._transaction_parties(body)
        tran_date = body.get("tranDate", date.today().isoformat())
        try:
            date.fromisoformat(str(tran_date))
        except ValueError:
            raise _bad_value("tranDate", f"Invalid date value {tran_date!r}.") from None
        status = _ref(body["orderStatus"], "orderStatus") if "orderStatus" in body else "B"
        if status not in ("A", "B"):
            raise _bad_value("orderStatus", f"A new sales order cannot have status {status}.")
        for key in ("memo", "otherRefNum"):
            if key in body and body[key] is not None and not isinstance(body[key], str):
                raise _bad_value(key, f"Invalid value for field {key}: expected text.")
        lines = self._order_lines(_sublist(body.get("item"), "item"), symbol)
        total = sum((line["amount"] for line in lines), Decimal(0))
        if "total" in body and _number(body["total"], "total") != total:
            raise NetSuiteError(
                400,
                "USER_ERROR",
                f"The line amounts add up to {total}, not {body['total']}.",
                "total",
            )
        now = _now()
        order_id = str(next(self._order_ids))
        order = {
            "id": order_id,
            "tranId": f"SO{order_id}",
            "externalId": external_id,
            "entity": customer_id,
            "currency": currency_id,
            "terms": terms_id,
            "tranDate": str(tran_date),
            "orderStatus": status,
            "memo": body.get("memo"),
            "otherRefNum": body.get("otherRefNum"),
            "item": lines,
            "subtotal": total,
            "total": total,
            "createdDate": now,
            "lastModifiedDate": now,
        }
        self.sales_orders[order_id] = order
        return order

    def _item_entries(
        self, entries: list[Any], fields: frozenset[str]
    ) -> Iterator[tuple[int, str, dict[str, Any], str, dict[str, Any], Decimal]]:
        """Each line of a transaction's ``item`` sublist, checked as NetSuite checks every
        item line (at least one; known fields; an active item; a positive quantity): its
        index, path, entry, item id, item and quantity."""
        if not entries:
            raise NetSuiteError(
                400,
                "USER_ERROR",
                "You must enter at least one line item for this transaction.",
                "item",
            )
        for n, entry in enumerate(entries):
            path = f"item.items[{n}]"
            if not isinstance(entry, dict):
                raise _bad_value(path, "Invalid line.")
            _check_fields(entry, fields, path)
            item_id = _ref(entry.get("item"), f"{path}.item")
            item = self.items.get(item_id)
            if item is None or item["isinactive"]:
                raise _bad_ref(f"{path}.item", f"Invalid item reference key {item_id}.")
            quantity = _number(entry.get("quantity", 1), f"{path}.quantity")
            if quantity <= 0:
                raise _bad_value(f"{path}.quantity", "Quantity must be greater than zero.")
            yield n, path, entry, item_id, item, quantity

    def _order_lines(self, entries: list[Any], symbol: str) -> list[dict[str, Any]]:
        places = MINOR_UNITS.get(symbol, 2)
        lines: list[dict[str, Any]] = []
        for n, path, entry, item_id, item, quantity in self._item_entries(entries, _LINE_FIELDS):
            rate = _number(entry["rate"], f"{path}.rate") if "rate" in entry else None
            amount = _number(entry["amount"], f"{path}.amount") if "amount" in entry else None
            if rate is None:
                rate = self._base_price(item_id, symbol) if amount is None else amount / quantity
            if rate < 0:
                raise _bad_value(f"{path}.rate", "Rate cannot be negative.")
            expected = quantize(rate * quantity, symbol)
            if amount is None:
                amount = expected
            if quantize(amount, symbol) != amount:
                raise NetSuiteError(
                    400,
                    "USER_ERROR",
                    f"Amount {amount} has more decimal places than {symbol} allows ({places}).",
                    f"{path}.amount",
                )
            if amount != expected:
                raise NetSuiteError(
                    400,
                    "USER_ERROR",
                    f"Line {n + 1}: amount {amount} is not rate {rate} times quantity {quantity} "
                    f"({expected} {symbol}).",
                    f"{path}.amount",
                )
            description = entry.get("description", item["displayname"])
            if description is not None and not isinstance(description, str):
                raise _bad_value(f"{path}.description", "Invalid description.")
            lines.append(
                {
                    "line": n + 1,
                    "item": item_id,
                    "itemId": item["itemid"],
                    "quantity": quantity,
                    "rate": rate,
                    "amount": amount,
                    "description": description,
                    "isClosed": False,
                }
            )
        return lines

    def _base_price(self, item_id: str, symbol: str) -> Decimal:
        currency_id = self._currency_by_symbol()[symbol]
        for row in self.pricing:
            if (row["item"], row["pricelevel"], row["currency"]) == (
                item_id,
                BASE_PRICE_LEVEL,
                currency_id,
            ):
                return Decimal(row["unitprice"])
        raise NetSuiteError(
            400,
            "USER_ERROR",
            f"Item {item_id} has no base price in {symbol}; enter a rate.",
            "item",
        )

    def update_sales_order(self, order: dict[str, Any], body: Any) -> None:
        """PATCH a sales order: its memo and reference, its ``orderStatus`` only as a user
        may set it (approve or cancel an order Pending Approval: the only two choices the
        field offers), and its lines' ``isClosed`` (the ``item`` sublist, keyed by ``line``).
        An approved order is never cancelled: it is closed by closing its lines, and an
        order whose every line is closed is Closed (H); reopening a line of a Closed order
        makes it Pending Fulfillment again."""
        _check_fields(body, {"orderStatus", "memo", "otherRefNum", "item"})
        staged = dict(order)
        for key in ("memo", "otherRefNum"):
            if key in body:
                if body[key] is not None and not isinstance(body[key], str):
                    raise _bad_value(key, f"Invalid value for field {key}: expected text.")
                staged[key] = body[key]
        current = order["orderStatus"]
        if "orderStatus" in body:
            new = _ref(body["orderStatus"], "orderStatus")
            if new != current and not (current == "A" and new in ("B", "C")):
                # Once approved, the status follows the order's lines and the transactions
                # made from it; the field offers no other choice.
                raise NetSuiteError(
                    400,
                    "INVALID_CONTENT",
                    "Error while accessing resource: You have entered an Invalid Field Value "
                    f"{new} for the following field: orderStatus",
                    "orderStatus",
                )
            staged["orderStatus"] = new
        lines = [dict(line) for line in order["item"]]
        if "item" in body:
            entries = _sublist(body["item"], "item")
            by_line = {line["line"]: line for line in lines}
            for n, entry in enumerate(entries):
                path = f"item.items[{n}]"
                if not isinstance(entry, dict):
                    raise _bad_value(path, "Invalid line.")
                _check_fields(entry, {"line", "isClosed"}, path)
                number = entry.get("line")
                if isinstance(number, bool) or not isinstance(number, int) or number not in by_line:
                    raise NetSuiteError(
                        400,
                        "USER_ERROR",
                        "The emulator updates existing lines only: name one by its line.",
                        f"{path}.line",
                    )
                if "isClosed" not in entry:
                    continue
                closed = entry["isClosed"]
                if not isinstance(closed, bool):
                    raise _bad_value(f"{path}.isClosed", "Invalid value: expected true or false.")
                if closed != by_line[number]["isClosed"] and current not in _CLOSABLE:
                    raise NetSuiteError(
                        400,
                        "USER_ERROR",
                        f"A sales order that is {ORDER_STATUS_NAMES[current]} has no line "
                        "to close or reopen: only a pending fulfillment, partially fulfilled "
                        "or pending billing order's lines can be closed.",
                        f"{path}.isClosed",
                    )
                by_line[number]["isClosed"] = closed
            if all(line["isClosed"] for line in lines):
                staged["orderStatus"] = "H"
            elif staged["orderStatus"] == "H":
                staged["orderStatus"] = "B"
        staged["item"] = lines
        staged["lastModifiedDate"] = _now()
        order.update(staged)

    def render_sales_order(
        self, order: dict[str, Any], self_url: str, expand: bool
    ) -> dict[str, Any]:
        customer = self.customers[order["entity"]]
        currency = self.currencies[order["currency"]]
        record: dict[str, Any] = {
            "links": [{"rel": "self", "href": self_url}],
            "id": order["id"],
            "tranId": order["tranId"],
            "entity": {"links": [], "id": customer["id"], "refName": customer.get("companyName")},
            "currency": {"links": [], "id": currency["id"], "refName": currency["name"]},
            "orderStatus": {
                "id": order["orderStatus"],
                "refName": ORDER_STATUS_NAMES[order["orderStatus"]],
            },
            "tranDate": order["tranDate"],
            "subtotal": order["subtotal"],
            "total": order["total"],
            "createdDate": order["createdDate"],
            "lastModifiedDate": order["lastModifiedDate"],
        }
        for key in ("externalId", "memo", "otherRefNum"):
            if order[key] is not None:
                record[key] = order[key]
        if order["terms"] is not None:
            terms = self.terms[order["terms"]]
            record["terms"] = {"links": [], "id": terms["id"], "refName": terms["name"]}
        if expand:
            lines = [
                {
                    "links": [],
                    "line": line["line"],
                    "item": {"links": [], "id": line["item"], "refName": line["itemId"]},
                    "quantity": line["quantity"],
                    "rate": line["rate"],
                    "amount": line["amount"],
                    "isClosed": line["isClosed"],
                    **({"description": line["description"]} if line["description"] else {}),
                }
                for line in order["item"]
            ]
            record["item"] = {
                "links": [{"rel": "self", "href": f"{self_url}/item"}],
                "items": lines,
                "count": len(lines),
                "hasMore": False,
                "offset": 0,
                "totalResults": len(lines),
            }
        else:
            record["item"] = {"links": [{"rel": "self", "href": f"{self_url}/item"}]}
        return record

    # accounting periods

    def month_period(self, day: date) -> dict[str, Any] | None:
        """The monthly posting period ``day`` falls in."""
        for period in self.periods.values():
            if (
                not period["isquarter"]
                and not period["isyear"]
                and period["startdate"] <= day <= period["enddate"]
            ):
                return period
        return None

    def find_period(self, name_or_month: str) -> dict[str, Any] | None:
        """A monthly period by NetSuite name (``Mar 2026``) or calendar month (``2026-03``)."""
        match = re.fullmatch(r"(\d{4})-(\d{2})", name_or_month)
        if match is not None:
            year, month = int(match.group(1)), int(match.group(2))
            if not 1 <= month <= 12:
                return None
            return self.month_period(date(year, month, 1))
        return next(
            (
                p
                for p in self.periods.values()
                if p["periodname"] == name_or_month and not p["isquarter"] and not p["isyear"]
            ),
            None,
        )

    def set_period_closed(self, name_or_month: str, closed: bool) -> dict[str, Any]:
        """Close (or reopen) a monthly period, as finance does at month end."""
        period = self.find_period(name_or_month)
        if period is None:
            raise KeyError(f"no monthly accounting period {name_or_month!r}")
        period["closed"] = closed
        return period

    def _posting_period(self, body: dict[str, Any], tran_date: date) -> str:
        """The posting period of a new transaction. An explicit ``postingPeriod`` must be an
        open monthly period; without one, the transaction date's period is used, or the first
        open period after it when that one is closed (NetSuite's "Default Posting Period When
        Transaction Date in Closed Period: First Open Period")."""
        if "postingPeriod" in body:
            pid = _ref(body["postingPeriod"], "postingPeriod")
            period = self.periods.get(pid)
            if period is None:
                raise _bad_ref("postingPeriod", f"Invalid postingPeriod reference key {pid}.")
            if period["isquarter"] or period["isyear"]:
                raise _bad_value(
                    "postingPeriod",
                    f"{period['periodname']} is a summary period; post to a month.",
                )
            if period["closed"]:
                raise NetSuiteError(
                    400,
                    "USER_ERROR",
                    f"The accounting period {period['periodname']} is closed. Choose an open "
                    "posting period or reopen the period.",
                    "postingPeriod",
                )
            return pid
        period = self.month_period(tran_date)
        while period is not None and period["closed"]:
            period = self.month_period(period["enddate"] + timedelta(days=1))
        if period is None:
            raise NetSuiteError(
                400,
                "USER_ERROR",
                f"No open accounting period on or after {tran_date.isoformat()}: set up the "
                "fiscal calendar.",
                "tranDate",
            )
        return str(period["id"])

    # transactions shared rules

    def _tran_date(self, body: dict[str, Any]) -> date:
        raw = body.get("tranDate", date.today().isoformat())
        try:
            return date.fromisoformat(str(raw))
        except ValueError:
            raise _bad_value("tranDate", f"Invalid date value {raw!r}.") from None

    def _new_external_id(self, body: dict[str, Any], records: dict[str, Any], kind: str) -> Any:
        external_id = body.get("externalId")
        if external_id is None:
            return None
        if not isinstance(external_id, str) or not external_id:
            raise _bad_value("externalId", "Invalid externalId.")
        if self._find(records, f"eid:{external_id}") is not None:
            raise NetSuiteError(
                400,
                "DUP_RCRD",
                f"This record already exists: a {kind} with external ID {external_id!r}.",
                "externalId",
            )
        return external_id

    def _text_field(self, body: dict[str, Any], key: str, limit: int = 999) -> str | None:
        value = body.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise _bad_value(key, f"Invalid value for field {key}: expected text.")
        if len(value) > limit:
            raise _bad_value(key, f"{key} is longer than {limit} characters.")
        return value

    def _amount(self, value: Any, path: str, symbol: str) -> Decimal:
        amount = _number(value, path)
        if quantize(amount, symbol) != amount:
            raise NetSuiteError(
                400,
                "USER_ERROR",
                f"Amount {amount} has more decimal places than {symbol} allows "
                f"({MINOR_UNITS.get(symbol, 2)}).",
                path,
            )
        return amount

    def _stamp(self, record: dict[str, Any]) -> dict[str, Any]:
        now = _now()
        record["createdDate"] = now
        record["lastModifiedDate"] = now
        return record

    # invoices

    def find_invoice(self, ref: str) -> dict[str, Any] | None:
        return self._find(self.invoices, ref)

    def _transaction_parties(self, body: Any) -> tuple[str, str, str, str | None]:
        """The customer, currency (id and ISO symbol) and terms a sales order or invoice body
        names, refused as NetSuite refuses a missing or invalid reference. The currency
        defaults to the customer's."""
        if "entity" not in body:
            raise NetSuiteError(400, "USER_ERROR", "Please enter value(s) for: Customer", "entity")
        customer_id = _ref(body["entity"], "entity")
        customer = self.customers.get(customer_id)
        if customer is None:
            raise _bad_ref("entity", f"Invalid entity reference key {customer_id}.")
        currency_id = (
            _ref(body["currency"], "currency")
            if "currency" in body
            else customer["currency"] or "1"
        )
        if currency_id not in self.currencies:
            raise _bad_ref("currency", f"Invalid currency reference key {currency_id}.")
        symbol = str(self.currencies[currency_id]["symbol"])
        terms_id = _ref(body["terms"], "terms") if "terms" in body else None
        if terms_id is not None and terms_id not in self.terms:
            raise _bad_ref("terms", f"Invalid terms reference key {terms_id}.")
        return customer_id, currency_id, symbol, terms_id

    def create_invoice(self, body: Any) -> dict[str, Any]:
        _check_fields(body, _INVOICE_FIELDS)
        external_id = self._new_external_id(body, self.invoices, "invoice")
        customer_id, currency_id, symbol, terms_id = self._transaction_parties(body)
        tran_date = self._tran_date(body)
        if "dueDate" in body:
            try:
                due_date = date.fromisoformat(str(body["dueDate"]))
            except ValueError:
                raise _bad_value("dueDate", f"Invalid date value {body['dueDate']!r}.") from None
        elif terms_id is not None:
            due_date = tran_date + timedelta(days=int(self.terms[terms_id]["daysuntilnetdue"]))
        else:
            due_date = tran_date
        memo = self._text_field(body, "memo")
        other_ref = self._text_field(body, "otherRefNum", 45)
        lines = self._invoice_lines(_sublist(body.get("item"), "item"), symbol)
        override, details = self._tax_details(body, lines, symbol)
        subtotal = sum((line["amount"] for line in lines), Decimal(0))
        tax_total = sum((line["taxAmount"] for line in lines), Decimal(0))
        total = subtotal + tax_total
        if total < 0:
            raise NetSuiteError(
                400,
                "USER_ERROR",
                f"An invoice total cannot be negative ({total} {symbol}); enter a credit "
                "memo instead.",
                "item",
            )
        posting_period = self._posting_period(body, tran_date)
        invoice_id = str(next(self._transaction_ids))
        invoice = self._stamp(
            {
                "id": invoice_id,
                "tranId": f"INV{invoice_id}",
                "externalId": external_id,
                "entity": customer_id,
                "currency": currency_id,
                "terms": terms_id,
                "tranDate": tran_date.isoformat(),
                "dueDate": due_date.isoformat(),
                "postingPeriod": posting_period,
                "memo": memo,
                "otherRefNum": other_ref,
                "item": lines,
                "taxDetailsOverride": override,
                "taxDetails": details,
                "subtotal": subtotal,
                "taxTotal": tax_total,
                "total": total,
                "amountRemaining": total,
                "status": "A" if total > 0 else "B",
            }
        )
        self.invoices[invoice_id] = invoice
        return invoice

    def _invoice_lines(self, entries: list[Any], symbol: str) -> list[dict[str, Any]]:
        lines: list[dict[str, Any]] = []
        entries_checked = self._item_entries(entries, _INVOICE_LINE_FIELDS)
        for n, path, entry, item_id, item, quantity in entries_checked:
            if "rate" not in entry and "amount" not in entry:
                raise NetSuiteError(
                    400, "USER_ERROR", "Please enter value(s) for: Rate", f"{path}.rate"
                )
            rate = _number(entry["rate"], f"{path}.rate") if "rate" in entry else None
            amount = (
                self._amount(entry["amount"], f"{path}.amount", symbol)
                if "amount" in entry
                else None
            )
            if rate is None:
                assert amount is not None
                rate = amount / quantity
            expected = quantize(rate * quantity, symbol)
            if amount is None:
                amount = expected
            if amount != expected:
                raise NetSuiteError(
                    400,
                    "USER_ERROR",
                    f"Line {n + 1}: amount {amount} is not rate {rate} times quantity {quantity} "
                    f"({expected} {symbol}).",
                    f"{path}.amount",
                )
            reference = entry.get("taxDetailsReference", f"line{n + 1}")
            if not isinstance(reference, str) or not reference:
                raise _bad_value(f"{path}.taxDetailsReference", "Invalid value: expected text.")
            if any(line["taxDetailsReference"] == reference for line in lines):
                raise _bad_value(
                    f"{path}.taxDetailsReference",
                    f"Tax details reference {reference!r} is on two lines.",
                )
            rev_rec: dict[str, str | None] = {}
            for key in ("revRecStartDate", "revRecEndDate"):
                value = entry.get(key)
                if value is not None:
                    try:
                        date.fromisoformat(str(value))
                    except ValueError:
                        raise _bad_value(
                            f"{path}.{key}", f"Invalid date value {value!r}."
                        ) from None
                rev_rec[key] = None if value is None else str(value)
            if (
                rev_rec.get("revRecStartDate")
                and rev_rec.get("revRecEndDate")
                and str(rev_rec["revRecEndDate"]) < str(rev_rec["revRecStartDate"])
            ):
                raise _bad_value(
                    f"{path}.revRecEndDate", "The rev rec end date is before its start date."
                )
            description = entry.get("description", item["displayname"])
            if description is not None and not isinstance(description, str):
                raise _bad_value(f"{path}.description", "Invalid description.")
            custom_line = entry.get("custcol_revsync_line")
            if custom_line is not None and not isinstance(custom_line, str):
                raise _bad_value(f"{path}.custcol_revsync_line", "Invalid value: expected text.")
            lines.append(
                {
                    "line": n + 1,
                    "item": item_id,
                    "itemId": item["itemid"],
                    "quantity": quantity,
                    "rate": rate,
                    "amount": amount,
                    "taxDetailsReference": reference,
                    "taxAmount": Decimal(0),
                    "description": description,
                    "revRecStartDate": rev_rec.get("revRecStartDate"),
                    "revRecEndDate": rev_rec.get("revRecEndDate"),
                    "custcol_revsync_line": custom_line,
                }
            )
        return lines

    def _tax_details(
        self,
        body: dict[str, Any],
        lines: list[dict[str, Any]],
        symbol: str,
        inherited: tuple[bool, list[dict[str, Any]]] | None = None,
        replace: bool = False,
    ) -> tuple[bool, list[dict[str, Any]]]:
        """SuiteTax tax details of a transaction: whether ``taxDetailsOverride`` is set and the
        ``taxDetails`` lines, each checked (every column given, a tax code of the tax type
        named, an amount in the currency's minor unit, linked to an item line by its
        ``taxDetailsReference``), kept exactly as given. Sets each line's ``taxAmount``.

        Without the override, the account's tax engine computes the tax; the emulator's engine
        computes none (a transaction sent without the override carries no tax), and tax
        details sent without the override are refused. ``inherited`` is what a transform
        copies from its source (override and details of the lines it keeps); ``replace``:
        the body's details replace them instead of being appended."""
        references = {line["taxDetailsReference"] for line in lines}
        override = body.get("taxDetailsOverride", inherited[0] if inherited else False)
        if not isinstance(override, bool):
            raise _bad_value("taxDetailsOverride", "Invalid value: expected true or false.")
        details = [
            dict(d)
            for d in (inherited[1] if inherited else [])
            if d["taxDetailsReference"] in references
        ]
        if "taxDetails" in body:
            if not override:
                raise NetSuiteError(
                    400,
                    "USER_ERROR",
                    "The tax details can be changed only when Tax Details Override is checked.",
                    "taxDetails",
                )
            given = [
                self._tax_detail(entry, n, references, symbol)
                for n, entry in enumerate(_sublist(body["taxDetails"], "taxDetails"))
            ]
            details = given if replace else [*details, *given]
        if not override:
            details = []
        for line in lines:
            line["taxAmount"] = sum(
                (
                    d["taxAmount"]
                    for d in details
                    if d["taxDetailsReference"] == line["taxDetailsReference"]
                ),
                Decimal(0),
            )
        return override, details

    def _tax_detail(self, entry: Any, n: int, references: set[str], symbol: str) -> dict[str, Any]:
        path = f"taxDetails.items[{n}]"
        _check_fields(entry, _TAX_DETAIL_FIELDS, path)
        labels = {
            "taxDetailsReference": "Tax Details Reference",
            "taxType": "Tax Type",
            "taxCode": "Tax Code",
            "taxBasis": "Tax Basis",
            "taxRate": "Tax Rate",
            "taxAmount": "Tax Amount",
        }
        missing = [label for key, label in labels.items() if entry.get(key) is None]
        if missing:
            raise NetSuiteError(
                400, "USER_ERROR", f"Please enter value(s) for: {', '.join(missing)}", path
            )
        reference = entry["taxDetailsReference"]
        if reference not in references:
            raise _bad_value(
                f"{path}.taxDetailsReference",
                f"Tax details reference {reference!r} matches no item line of the transaction.",
            )
        type_id = _ref(entry["taxType"], f"{path}.taxType")
        tax_type = self.tax_types.get(type_id)
        if tax_type is None or tax_type["isinactive"]:
            raise _bad_ref(f"{path}.taxType", f"Invalid taxType reference key {type_id}.")
        code_id = _ref(entry["taxCode"], f"{path}.taxCode")
        code = self.tax_codes.get(code_id)
        if code is None or code["isinactive"]:
            raise _bad_ref(f"{path}.taxCode", f"Invalid taxCode reference key {code_id}.")
        if code["taxtype"] != type_id:
            raise _bad_value(
                f"{path}.taxCode",
                f"Tax code {code['name']} is not of tax type {tax_type['name']}.",
            )
        return {
            "taxDetailsReference": reference,
            "taxType": type_id,
            "taxCode": code_id,
            "taxBasis": self._amount(entry["taxBasis"], f"{path}.taxBasis", symbol),
            "taxRate": _number(entry["taxRate"], f"{path}.taxRate"),
            "taxAmount": self._amount(entry["taxAmount"], f"{path}.taxAmount", symbol),
        }

    def _apply_to_invoice(self, invoice: dict[str, Any], amount: Decimal) -> Decimal:
        """Apply up to ``amount`` to what the invoice still owes; returns what was applied."""
        remaining: Decimal = invoice["amountRemaining"]
        applied = min(amount, remaining)
        invoice["amountRemaining"] = remaining - applied
        invoice["status"] = "A" if invoice["amountRemaining"] > 0 else "B"
        invoice["lastModifiedDate"] = _now()
        return applied

    # credit memos (transformed from an invoice)

    def find_credit_memo(self, ref: str) -> dict[str, Any] | None:
        return self._find(self.credit_memos, ref)

    def credit_invoice(
        self, invoice: dict[str, Any], body: Any, replace: set[str] | None = None
    ) -> dict[str, Any]:
        """``invoice/<id>/!transform/creditMemo``: a credit memo copying the invoice's lines,
        applied to what the invoice still owes (the rest stays unapplied on the customer).
        Lines in the body are appended to the copied ones, or replace them with
        ``?replace=item``: a partial credit memo for those lines and amounts only."""
        body = {} if body is None else body
        _check_fields(body, _CREDIT_MEMO_FIELDS)
        symbol = str(self.currencies[invoice["currency"]]["symbol"])
        external_id = self._new_external_id(body, self.credit_memos, "credit memo")
        replace = replace or set()
        lines = [dict(line) for line in invoice["item"]]
        if "item" in body:
            given = self._invoice_lines(_sublist(body["item"], "item"), symbol)
            lines = given if "item" in replace else lines + given
            references = [line["taxDetailsReference"] for line in lines]
            if len(set(references)) != len(references):
                raise _bad_value("item", "Two lines have the same tax details reference.")
            for n, line in enumerate(lines):
                line["line"] = n + 1
        override, details = self._tax_details(
            body,
            lines,
            symbol,
            (invoice["taxDetailsOverride"], invoice["taxDetails"]),
            "taxdetails" in replace,
        )
        subtotal = sum((line["amount"] for line in lines), Decimal(0))
        tax_total = sum((line["taxAmount"] for line in lines), Decimal(0))
        total = subtotal + tax_total
        if total <= 0:
            raise NetSuiteError(
                400, "USER_ERROR", "A credit memo total must be greater than zero.", "item"
            )
        tran_date = self._tran_date(body)
        posting_period = self._posting_period(body, tran_date)
        memo = self._text_field(body, "memo")
        applied = self._apply_to_invoice(invoice, total)
        memo_id = str(next(self._transaction_ids))
        credit = self._stamp(
            {
                "id": memo_id,
                "tranId": f"CM{memo_id}",
                "externalId": external_id,
                "entity": invoice["entity"],
                "currency": invoice["currency"],
                "tranDate": tran_date.isoformat(),
                "postingPeriod": posting_period,
                "createdFrom": invoice["id"],
                "memo": memo,
                "item": lines,
                "taxDetailsOverride": override,
                "taxDetails": details,
                "subtotal": subtotal,
                "taxTotal": tax_total,
                "total": total,
                "applied": applied,
                "unapplied": total - applied,
                "apply": [{"doc": invoice["id"], "amount": applied}] if applied else [],
            }
        )
        self.credit_memos[memo_id] = credit
        return credit

    # customer payments (transformed from an invoice)

    def find_customer_payment(self, ref: str) -> dict[str, Any] | None:
        return self._find(self.customer_payments, ref)

    def pay_invoice(self, invoice: dict[str, Any], body: Any) -> dict[str, Any]:
        """``invoice/<id>/!transform/customerPayment``: a payment applied to the invoice; a
        payment larger than what is due leaves the rest unapplied on the customer."""
        body = {} if body is None else body
        _check_fields(body, _PAYMENT_FIELDS)
        symbol = str(self.currencies[invoice["currency"]]["symbol"])
        if invoice["amountRemaining"] <= 0:
            raise NetSuiteError(
                400,
                "USER_ERROR",
                f"Invoice {invoice['tranId']} has no amount due: there is nothing to apply a "
                "payment to.",
            )
        external_id = self._new_external_id(body, self.customer_payments, "customer payment")
        payment = (
            self._amount(body["payment"], "payment", symbol)
            if "payment" in body
            else invoice["amountRemaining"]
        )
        if payment <= 0:
            raise _bad_value("payment", "The payment amount must be greater than zero.")
        tran_date = self._tran_date(body)
        posting_period = self._posting_period(body, tran_date)
        memo = self._text_field(body, "memo")
        applied = self._apply_to_invoice(invoice, payment)
        payment_id = str(next(self._transaction_ids))
        record = self._stamp(
            {
                "id": payment_id,
                "tranId": f"PYMT{payment_id}",
                "externalId": external_id,
                "customer": invoice["entity"],
                "currency": invoice["currency"],
                "tranDate": tran_date.isoformat(),
                "postingPeriod": posting_period,
                "memo": memo,
                "payment": payment,
                "applied": applied,
                "unapplied": payment - applied,
                "apply": [{"doc": invoice["id"], "amount": applied}],
            }
        )
        self.customer_payments[payment_id] = record
        return record

    # journal entries

    def find_journal_entry(self, ref: str) -> dict[str, Any] | None:
        return self._find(self.journal_entries, ref)

    def create_journal_entry(self, body: Any) -> dict[str, Any]:
        _check_fields(body, _JOURNAL_FIELDS)
        external_id = self._new_external_id(body, self.journal_entries, "journal entry")
        currency_id = _ref(body["currency"], "currency") if "currency" in body else "1"
        if currency_id not in self.currencies:
            raise _bad_ref("currency", f"Invalid currency reference key {currency_id}.")
        symbol = str(self.currencies[currency_id]["symbol"])
        tran_date = self._tran_date(body)
        memo = self._text_field(body, "memo")
        entries = _sublist(body.get("line"), "line")
        if len(entries) < 2:
            raise NetSuiteError(
                400, "USER_ERROR", "A journal entry needs at least two lines.", "line"
            )
        lines: list[dict[str, Any]] = []
        for n, entry in enumerate(entries):
            path = f"line.items[{n}]"
            if not isinstance(entry, dict):
                raise _bad_value(path, "Invalid line.")
            _check_fields(entry, _JOURNAL_LINE_FIELDS, path)
            account_id = _ref(entry.get("account"), f"{path}.account")
            account = self.accounts.get(account_id)
            if account is None or account["isinactive"]:
                raise _bad_ref(f"{path}.account", f"Invalid account reference key {account_id}.")
            debit = (
                self._amount(entry["debit"], f"{path}.debit", symbol)
                if entry.get("debit") is not None
                else None
            )
            credit = (
                self._amount(entry["credit"], f"{path}.credit", symbol)
                if entry.get("credit") is not None
                else None
            )
            if (debit is None) == (credit is None) or (debit or credit or Decimal(0)) <= 0:
                raise _bad_value(
                    path, "Each journal line needs either a positive debit or a positive credit."
                )
            entity = None
            if entry.get("entity") is not None:
                entity = _ref(entry["entity"], f"{path}.entity")
                if entity not in self.customers:
                    raise _bad_ref(f"{path}.entity", f"Invalid entity reference key {entity}.")
            line_memo = entry.get("memo")
            if line_memo is not None and not isinstance(line_memo, str):
                raise _bad_value(f"{path}.memo", "Invalid value: expected text.")
            lines.append(
                {
                    "line": n,
                    "account": account_id,
                    "debit": debit,
                    "credit": credit,
                    "entity": entity,
                    "memo": line_memo,
                }
            )
        debits = sum((line["debit"] or Decimal(0) for line in lines), Decimal(0))
        credits = sum((line["credit"] or Decimal(0) for line in lines), Decimal(0))
        if debits != credits:
            raise NetSuiteError(
                400,
                "USER_ERROR",
                f"The transaction is not in balance: debits {debits} and credits {credits} "
                f"{symbol}.",
                "line",
            )
        posting_period = self._posting_period(body, tran_date)
        journal_id = str(next(self._transaction_ids))
        journal = self._stamp(
            {
                "id": journal_id,
                "tranId": f"JE{journal_id}",
                "externalId": external_id,
                "currency": currency_id,
                "tranDate": tran_date.isoformat(),
                "postingPeriod": posting_period,
                "memo": memo,
                "line": lines,
                "total": debits,
            }
        )
        self.journal_entries[journal_id] = journal
        return journal

    # rendering

    def _refs(self, record_id: str | None, name: Any) -> dict[str, Any] | None:
        if record_id is None:
            return None
        return {"links": [], "id": record_id, "refName": name}

    def _period_ref(self, pid: str) -> dict[str, Any] | None:
        return self._refs(pid, self.periods[pid]["periodname"])

    def _currency_ref(self, cid: str) -> dict[str, Any] | None:
        return self._refs(cid, self.currencies[cid]["name"])

    def _customer_ref(self, cid: str) -> dict[str, Any] | None:
        return self._refs(cid, self.customers[cid].get("companyName"))

    @staticmethod
    def _sublist_out(self_url: str, name: str, rows: list[dict[str, Any]] | None) -> Any:
        if rows is None:
            return {"links": [{"rel": "self", "href": f"{self_url}/{name}"}]}
        return {
            "links": [{"rel": "self", "href": f"{self_url}/{name}"}],
            "items": rows,
            "count": len(rows),
            "hasMore": False,
            "offset": 0,
            "totalResults": len(rows),
        }

    def _item_rows(self, lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rows = []
        for line in lines:
            row: dict[str, Any] = {
                "links": [],
                "line": line["line"],
                "item": {"links": [], "id": line["item"], "refName": line["itemId"]},
                "quantity": line["quantity"],
                "rate": line["rate"],
                "amount": line["amount"],
            }
            for key in (
                "taxDetailsReference",
                "description",
                "revRecStartDate",
                "revRecEndDate",
                "custcol_revsync_line",
            ):
                if line.get(key) is not None:
                    row[key] = line[key]
            rows.append(row)
        return rows

    def _drop_none(self, record: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in record.items() if v is not None}

    def _tax_detail_rows(self, details: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {
                "links": [],
                "taxDetailsReference": d["taxDetailsReference"],
                "taxType": self._refs(d["taxType"], self.tax_types[d["taxType"]]["name"]),
                "taxCode": self._refs(d["taxCode"], self.tax_codes[d["taxCode"]]["name"]),
                "taxBasis": d["taxBasis"],
                "taxRate": d["taxRate"],
                "taxAmount": d["taxAmount"],
            }
            for d in details
        ]

    def render_invoice(self, invoice: dict[str, Any], self_url: str, expand: bool) -> Any:
        terms = invoice["terms"]
        return self._drop_none(
            {
                "links": [{"rel": "self", "href": self_url}],
                "id": invoice["id"],
                "tranId": invoice["tranId"],
                "externalId": invoice["externalId"],
                "entity": self._customer_ref(invoice["entity"]),
                "currency": self._currency_ref(invoice["currency"]),
                "terms": None if terms is None else self._refs(terms, self.terms[terms]["name"]),
                "tranDate": invoice["tranDate"],
                "dueDate": invoice["dueDate"],
                "postingPeriod": self._period_ref(invoice["postingPeriod"]),
                "memo": invoice["memo"],
                "otherRefNum": invoice["otherRefNum"],
                "subtotal": invoice["subtotal"],
                "taxTotal": invoice["taxTotal"],
                "total": invoice["total"],
                "amountPaid": invoice["total"] - invoice["amountRemaining"],
                "amountRemaining": invoice["amountRemaining"],
                "status": {
                    "id": invoice["status"],
                    "refName": INVOICE_STATUS_NAMES[invoice["status"]],
                },
                "createdDate": invoice["createdDate"],
                "lastModifiedDate": invoice["lastModifiedDate"],
                "item": self._sublist_out(
                    self_url, "item", self._item_rows(invoice["item"]) if expand else None
                ),
                "taxDetailsOverride": invoice["taxDetailsOverride"],
                "taxDetails": self._sublist_out(
                    self_url,
                    "taxDetails",
                    self._tax_detail_rows(invoice["taxDetails"]) if expand else None,
                ),
            }
        )

    @staticmethod
    def _apply_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
        """The ``apply`` sublist rows of a credit memo or payment: the documents it settles."""
        return [
            {
                "links": [],
                "doc": {"links": [], "id": row["doc"]},
                "apply": True,
                "amount": row["amount"],
            }
            for row in record["apply"]
        ]

    def render_credit_memo(self, credit: dict[str, Any], self_url: str, expand: bool) -> Any:
        apply_rows = self._apply_rows(credit)
        return self._drop_none(
            {
                "links": [{"rel": "self", "href": self_url}],
                "id": credit["id"],
                "tranId": credit["tranId"],
                "externalId": credit["externalId"],
                "entity": self._customer_ref(credit["entity"]),
                "currency": self._currency_ref(credit["currency"]),
                "tranDate": credit["tranDate"],
                "postingPeriod": self._period_ref(credit["postingPeriod"]),
                "createdFrom": self._refs(
                    credit["createdFrom"], self.invoices[credit["createdFrom"]]["tranId"]
                ),
                "memo": credit["memo"],
                "subtotal": credit["subtotal"],
                "taxTotal": credit["taxTotal"],
                "total": credit["total"],
                "applied": credit["applied"],
                "unapplied": credit["unapplied"],
                "createdDate": credit["createdDate"],
                "lastModifiedDate": credit["lastModifiedDate"],
                "item": self._sublist_out(
                    self_url, "item", self._item_rows(credit["item"]) if expand else None
                ),
                "taxDetailsOverride": credit["taxDetailsOverride"],
                "taxDetails": self._sublist_out(
                    self_url,
                    "taxDetails",
                    self._tax_detail_rows(credit["taxDetails"]) if expand else None,
                ),
                "apply": self._sublist_out(self_url, "apply", apply_rows if expand else None),
            }
        )

    def render_customer_payment(self, payment: dict[str, Any], self_url: str, expand: bool) -> Any:
        apply_rows = self._apply_rows(payment)
        return self._drop_none(
            {
                "links": [{"rel": "self", "href": self_url}],
                "id": payment["id"],
                "tranId": payment["tranId"],
                "externalId": payment["externalId"],
                "customer": self._customer_ref(payment["customer"]),
                "currency": self._currency_ref(payment["currency"]),
                "tranDate": payment["tranDate"],
                "postingPeriod": self._period_ref(payment["postingPeriod"]),
                "memo": payment["memo"],
                "payment": payment["payment"],
                "applied": payment["applied"],
                "unapplied": payment["unapplied"],
                "createdDate": payment["createdDate"],
                "lastModifiedDate": payment["lastModifiedDate"],
                "apply": self._sublist_out(self_url, "apply", apply_rows if expand else None),
            }
        )

    def render_journal_entry(self, journal: dict[str, Any], self_url: str, expand: bool) -> Any:
        rows = [
            self._drop_none(
                {
                    "links": [],
                    "line": line["line"],
                    "account": self._refs(
                        line["account"], self.accounts[line["account"]]["fullname"]
                    ),
                    "debit": line["debit"],
                    "credit": line["credit"],
                    "entity": None
                    if line["entity"] is None
                    else self._customer_ref(line["entity"]),
                    "memo": line["memo"],
                }
            )
            for line in journal["line"]
        ]
        return self._drop_none(
            {
                "links": [{"rel": "self", "href": self_url}],
                "id": journal["id"],
                "tranId": journal["tranId"],
                "externalId": journal["externalId"],
                "currency": self._currency_ref(journal["currency"]),
                "tranDate": journal["tranDate"],
                "postingPeriod": self._period_ref(journal["postingPeriod"]),
                "memo": journal["memo"],
                "createdDate": journal["createdDate"],
                "lastModifiedDate": journal["lastModifiedDate"],
                "line": self._sublist_out(self_url, "line", rows if expand else None),
            }
        )

    def _created_between(
        self, name: str, records: dict[str, dict[str, Any]], low: str | None, high: str | None
    ) -> Iterable[dict[str, Any]]:
        """The records created in ``[low, high]`` (a superset of a creation window), from an
        index by creation time kept per transaction type (a transaction's creation time
        never changes; the index is rebuilt when records were added)."""
        count, keys = self._created_index.get(name, (-1, []))
        if count != len(records):
            keys = sorted((str(r.get("createdDate") or ""), k) for k, r in records.items())
            self._created_index[name] = (len(records), keys)
        lo = 0 if low is None else bisect.bisect_left(keys, (low, ""))
        hi = len(keys) if high is None else bisect.bisect_right(keys, (high, "\uffff"))
        return (records[key] for _, key in keys[lo:hi] if key in records)

    def _transactions_where(
        self,
        types: set[str] | None,
        tests: list[tuple[str, Callable[[Any], bool]]],
        created: tuple[str | None, str | None] | None = None,
    ) -> list[Any]:
        """The ``transaction`` rows passing every test, tested on the records themselves: a
        row is made only for a record that passes (a query over many transactions reads each
        one's few tested fields, nothing more)."""
        wanted = types or {"SalesOrd", "CustInvc", "CustCred", "CustPymt", "Journal"}
        groups: list[tuple[str, str, dict[str, Column], Any]] = [
            ("SalesOrd", "salesorder", _ORDER, self.sales_orders),
            ("CustInvc", "invoice", _INVOICE, self.invoices),
            ("CustCred", "creditmemo", _CREDIT, self.credit_memos),
            ("CustPymt", "customerpayment", _PAYMENT, self.customer_payments),
            ("Journal", "journalentry", {}, self.journal_entries),
        ]
        rows: list[Any] = []
        for kind, recordtype, overrides, records in groups:
            if kind not in wanted:
                continue
            fixed: dict[str, Column] = {
                "type": _constant(kind),
                "recordtype": _constant(recordtype),
            }
            bound: list[tuple[Column, Callable[[Any], bool]]] = [
                (
                    fixed.get(column)
                    or overrides.get(column)
                    or _TXN_COLUMNS.get(column)
                    or _constant(None),
                    test,
                )
                for column, test in tests
            ]
            source = (
                records.values()
                if created is None
                else self._created_between(kind, records, *created)
            )
            rows.extend(
                _TxnRow(record, kind, recordtype, overrides)
                for record in source
                if all(test(read(record)) for read, test in bound)
            )
        return rows

    def _transaction_rows(self, types: set[str] | None = None) -> list[Any]:
        """SuiteQL's ``transaction`` table over every transaction the emulator keeps (of
        ``types`` only, when given). ``foreigntotal`` is in the transaction currency,
        negative for a credit memo. Rows read their record when asked (:class:`_TxnRow`):
        a query over many transactions builds nothing for the rows it does not keep."""
        wanted = types or {"SalesOrd", "CustInvc", "CustCred", "CustPymt", "Journal"}
        rows: list[Any] = []
        if "SalesOrd" in wanted:
            rows += [
                _TxnRow(o, "SalesOrd", "salesorder", _ORDER) for o in self.sales_orders.values()
            ]
        if "CustInvc" in wanted:
            rows += [_TxnRow(i, "CustInvc", "invoice", _INVOICE) for i in self.invoices.values()]
        if "CustCred" in wanted:
            rows += [
                _TxnRow(c, "CustCred", "creditmemo", _CREDIT) for c in self.credit_memos.values()
            ]
        if "CustPymt" in wanted:
            rows += [
                _TxnRow(p, "CustPymt", "customerpayment", _PAYMENT)
                for p in self.customer_payments.values()
            ]
        if "Journal" in wanted:
            rows += [
                _TxnRow(j, "Journal", "journalentry", {}) for j in self.journal_entries.values()
            ]
        return rows

    # inspection

    def _plain(self, record: dict[str, Any]) -> dict[str, Any]:
        """A transaction with its references in readable form: currency as its ISO code,
        terms and posting period by name, accounts by number."""
        plain: dict[str, Any] = {}
        for key, value in record.items():
            if key == "currency":
                plain[key] = self.currency_symbol(value)
            elif key == "terms":
                plain[key] = None if value is None else self.terms[value]["name"]
            elif key == "postingPeriod":
                plain[key] = self.periods[value]["periodname"]
            elif key == "taxDetails":
                plain[key] = [
                    {
                        **detail,
                        "taxType": self.tax_types[detail["taxType"]]["name"],
                        "taxCode": self.tax_codes[detail["taxCode"]]["name"],
                    }
                    for detail in value
                ]
            elif key == "line":
                plain[key] = [
                    {**line, "account": self.accounts[line["account"]]["acctnumber"]}
                    for line in value
                ]
            elif isinstance(value, list):
                plain[key] = [dict(entry) for entry in value]
            else:
                plain[key] = value
        return plain

    def snapshot(self) -> dict[str, Any]:
        """Every record, in plain form (currencies as ISO codes), plus governance counters."""
        items = []
        for item in self.items.values():
            prices = {
                str(self.currencies[row["currency"]]["symbol"]): row["unitprice"]
                for row in self.pricing
                if row["item"] == item["id"] and row["pricelevel"] == BASE_PRICE_LEVEL
            }
            items.append(
                {
                    "id": item["id"],
                    "itemId": item["itemid"],
                    "displayName": item["displayname"],
                    "isInactive": item["isinactive"],
                    "billing": item["custitem_revsync_billing"],
                    "prices": prices,
                }
            )
        customers = [
            {
                **customer,
                "currency": self.currency_symbol(customer["currency"]),
                "addressBook": [dict(a) for a in customer["addressBook"]],
                "taxRegistration": [dict(r) for r in customer["taxRegistration"]],
            }
            for customer in self.customers.values()
        ]
        orders = [
            {
                **order,
                "currency": self.currency_symbol(order["currency"]),
                "terms": None if order["terms"] is None else self.terms[order["terms"]]["name"],
                "item": [dict(line) for line in order["item"]],
            }
            for order in self.sales_orders.values()
        ]
        return {
            "customers": customers,
            "items": items,
            "salesOrders": orders,
            "invoices": [self._plain(r) for r in self.invoices.values()],
            "creditMemos": [self._plain(r) for r in self.credit_memos.values()],
            "customerPayments": [self._plain(r) for r in self.customer_payments.values()],
            "journalEntries": [self._plain(r) for r in self.journal_entries.values()],
            "closedPeriods": [p["periodname"] for p in self.periods.values() if p["closed"]],
            "governance": {
                "limit": self.concurrency_limit,
                "peak_in_flight": self.peak_in_flight,
                "rejected": self.rejected,
            },
        }


_CUSTOMER_FIELDS = frozenset(
    {
        "externalId",
        "url",
        "custentity_revsync_owner",
        "custentity_revsync_payment_state",
        "companyName",
        "legalName",
        "email",
        "currency",
        "addressBook",
        "taxRegistration",
        "phone",
        "comments",
    }
)
_ORDER_FIELDS = frozenset(
    {
        "externalId",
        "entity",
        "currency",
        "terms",
        "tranDate",
        "orderStatus",
        "memo",
        "otherRefNum",
        "item",
        "total",
    }
)
_LINE_FIELDS = frozenset({"item", "quantity", "rate", "amount", "description"})
_INVOICE_FIELDS = frozenset(
    {
        "externalId",
        "entity",
        "currency",
        "terms",
        "tranDate",
        "dueDate",
        "postingPeriod",
        "memo",
        "otherRefNum",
        "item",
        "taxDetailsOverride",
        "taxDetails",
    }
)
_INVOICE_LINE_FIELDS = _LINE_FIELDS | {
    "taxDetailsReference",
    "revRecStartDate",
    "revRecEndDate",
    "custcol_revsync_line",
}
_CREDIT_MEMO_FIELDS = frozenset(
    {"externalId", "tranDate", "postingPeriod", "memo", "item"}
    | {"taxDetailsOverride", "taxDetails"}
)
_PAYMENT_FIELDS = frozenset({"externalId", "tranDate", "postingPeriod", "memo", "payment"})
_JOURNAL_FIELDS = frozenset({"externalId", "currency", "tranDate", "postingPeriod", "memo", "line"})
_JOURNAL_LINE_FIELDS = frozenset({"account", "debit", "credit", "entity", "memo"})
_TAX_REGISTRATION_FIELDS = frozenset({"nexusCountry", "taxRegistrationNumber"})
# Legacy tax fields: they exist only in accounts without SuiteTax, which REST web services do
# not support (customer ``vatRegNumber``; item line ``tax1Amt``, ``taxRate1``, ``taxRate2``).
LEGACY_TAX_FIELDS = frozenset({"vatRegNumber", "tax1Amt", "taxRate1", "taxRate2"})
# SuiteTax tax details of a transaction (``taxDetails`` sublist, written with
# ``taxDetailsOverride``): each line links to an item line by ``taxDetailsReference``.
_TAX_DETAIL_FIELDS = frozenset(
    {"taxDetailsReference", "taxType", "taxCode", "taxBasis", "taxRate", "taxAmount"}
)
_ADDRESS_FIELDS = frozenset(
    {"addressee", "addr1", "addr2", "addr3", "city", "state", "zip", "country"}
)


def _check_fields(body: Any, allowed: frozenset[str] | set[str], path: str | None = None) -> None:
    """Refuse a field the record type does not have, as NetSuite refuses an unknown field name
    (``NONEXISTENT_FIELD``, the error path naming it). A legacy tax field is one of them: the
    account runs SuiteTax, the only tax model REST web services support."""
    if not isinstance(body, dict):
        raise NetSuiteError(400, "USER_ERROR", "Invalid content in the request body.", path)
    for key in body:
        if key not in allowed:
            where = f"{path}.{key}" if path else key
            detail = f"Unknown field name '{key}'. The field does not exist on this record type."
            if key in LEGACY_TAX_FIELDS:
                detail += (
                    " It is a legacy tax field; REST web services support only SuiteTax "
                    "(tax details on transactions, tax registrations on entities)."
                )
            raise NetSuiteError(400, "NONEXISTENT_FIELD", detail, where)


def _ref(value: Any, path: str) -> str:
    """The internal id of a reference given as ``{"id": ...}``."""
    if (
        isinstance(value, dict)
        and isinstance(value.get("id"), (str, int))
        and not isinstance(value.get("id"), bool)
    ):
        return str(value["id"])
    raise _bad_ref(path, f"Invalid reference for {path}: expected an object with an id.")


def _number(value: Any, path: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise _bad_value(path, f"Invalid number {value!r}.")
    number = Decimal(value)
    if not number.is_finite():
        raise _bad_value(path, f"Invalid number {value!r}.")
    return number


def _sublist(value: Any, path: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, dict) and isinstance(value.get("items"), list):
        return list(value["items"])
    raise _bad_value(path, f"The {path} sublist must be an object with an items list.")


def _address(entry: Any, n: int) -> dict[str, Any]:
    path = f"addressBook.items[{n}]"
    _check_fields(entry, {"defaultBilling", "defaultShipping", "label", "addressBookAddress"}, path)
    address = entry.get("addressBookAddress")
    _check_fields(address, _ADDRESS_FIELDS, f"{path}.addressBookAddress")
    country = _ref(address.get("country"), f"{path}.addressBookAddress.country")
    if not re.fullmatch(r"[A-Z]{2}", country):
        raise _bad_value(f"{path}.addressBookAddress.country", f"Invalid country {country!r}.")
    return {
        "defaultBilling": bool(entry.get("defaultBilling", False)),
        "defaultShipping": bool(entry.get("defaultShipping", False)),
        "label": entry.get("label"),
        **{k: v for k, v in address.items() if k != "country"},
        "country": country,
    }


def _tax_registration(entry: Any, n: int) -> dict[str, Any]:
    """One line of a customer's ``taxRegistration`` sublist (SuiteTax): the country and the
    number (the nexus and address are optional and not kept here)."""
    path = f"taxRegistration.items[{n}]"
    _check_fields(entry, _TAX_REGISTRATION_FIELDS, path)
    country = _ref(entry.get("nexusCountry"), f"{path}.nexusCountry")
    if not re.fullmatch(r"[A-Z]{2}", country):
        raise _bad_value(f"{path}.nexusCountry", f"Invalid country {country!r}.")
    number = entry.get("taxRegistrationNumber")
    if not isinstance(number, str) or not number.strip():
        raise NetSuiteError(
            400,
            "USER_ERROR",
            "Please enter value(s) for: Tax Reg. Number",
            f"{path}.taxRegistrationNumber",
        )
    return {"nexusCountry": country, "taxRegistrationNumber": number}


# -- the router ------------------------------------------------------------------------------

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def _record_url(request: Request, record_type: str, record_id: str) -> str:
    """The absolute URL of a record, on whatever base the request came in on."""
    path = request.url.path
    base = path[: path.index(RECORD_ROOT)] if RECORD_ROOT in path else ""
    return str(request.url.replace(path=f"{base}{RECORD_ROOT}/{record_type}/{record_id}", query=""))


def _replace(request: Request) -> set[str]:
    raw = request.query_params.get("replace", "")
    return {name.strip().lower() for name in raw.split(",") if name.strip()}


async def _body(request: Request) -> Any:
    try:
        return await read_json(request)
    except ValueError:
        raise NetSuiteError(400, "USER_ERROR", "Invalid content in the request body.") from None


def _page_params(request: Request) -> tuple[int, int]:
    try:
        limit = int(request.query_params.get("limit", str(MAX_PAGE_SIZE)))
        offset = int(request.query_params.get("offset", "0"))
    except ValueError:
        raise NetSuiteError(
            400, "INVALID_PARAMETER", "limit and offset must be integers."
        ) from None
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise NetSuiteError(
            400, "INVALID_PARAMETER", f"limit must be between 1 and {MAX_PAGE_SIZE}.", "limit"
        )
    if offset < 0:
        raise NetSuiteError(400, "INVALID_PARAMETER", "offset cannot be negative.", "offset")
    if offset % limit:
        raise NetSuiteError(
            400, "INVALID_PARAMETER", "offset must be a multiple of limit.", "offset"
        )
    if offset >= MAX_QUERY_RESULTS:
        raise NetSuiteError(
            400,
            "INVALID_PARAMETER",
            f"offset must be below {MAX_QUERY_RESULTS}: no more results of this query can be "
            "paged through.",
            "offset",
        )
    return limit, offset


def _page(request: Request, rows: Sequence[Any]) -> dict[str, Any]:
    limit, offset = _page_params(request)
    chunk = rows[offset : offset + limit]
    has_more = offset + limit < min(len(rows), MAX_QUERY_RESULTS)
    links = [{"rel": "self", "href": str(request.url)}]
    if has_more:
        links.append(
            {
                "rel": "next",
                "href": str(request.url.include_query_params(limit=limit, offset=offset + limit)),
            }
        )
    return {
        "links": links,
        "count": len(chunk),
        "hasMore": has_more,
        "items": chunk,
        "offset": offset,
        "totalResults": len(rows),
    }


async def _guarded(
    state: SandboxState, operation: str, request: Request, handler: Handler
) -> Response:
    """Auth, governance, fault injection and error answers around one route."""
    if not state.oauth[VENDOR].accepts(bearer_token(request), state.tokens[VENDOR]):
        return error_response(
            401,
            "INVALID_LOGIN",
            "Invalid login attempt. For more details, see the Login Audit Trail.",
        )
    store: NetSuiteStore = state.netsuite
    if not store.admit():
        return error_response(
            429,
            "CONCURRENCY_LIMIT_EXCEEDED",
            "Concurrent request limit exceeded. Request blocked.",
        )
    try:
        faults = VendorFaults(state.faults, VENDOR, _fault_response)
        if (injected := await faults.before(operation)) is not None:
            return injected
        try:
            response = await handler(request)
        except NetSuiteError as error:
            return error.response()
        if response.status_code < 400 and (injected := await faults.after(operation)) is not None:
            return injected
        return response
    finally:
        store.release()


def build_router(state: SandboxState) -> APIRouter:
    """The NetSuite routes, reading ``state.netsuite`` afresh on every request."""

    class NetSuiteRoute(APIRoute):
        def get_route_handler(self) -> Handler:
            handler = super().get_route_handler()
            operation = self.name

            async def guarded(request: Request) -> Response:
                return await _guarded(state, operation, request, handler)

            return guarded

    router = APIRouter(route_class=NetSuiteRoute)

    def store() -> NetSuiteStore:
        current: NetSuiteStore = state.netsuite
        return current

    @router.post(SUITEQL_PATH, name="suiteql")
    async def suiteql(request: Request) -> Response:
        if "transient" not in request.headers.get("prefer", "").lower():
            raise NetSuiteError(
                400, "USER_ERROR", "SuiteQL requests need the header 'Prefer: transient'."
            )
        body = await _body(request)
        if not isinstance(body, dict) or not isinstance(body.get("q"), str):
            raise NetSuiteError(400, "USER_ERROR", 'The request body must be {"q": <query>}.')
        _page_params(request)
        try:
            rows = store().suiteql(body["q"])
        except SuiteQLError as error:
            raise NetSuiteError(
                400,
                "INVALID_PARAMETER",
                "Invalid search query. Detailed unprocessed description follows. "
                f"Search error occurred: {error}",
                "q",
            ) from None
        page = _page(request, rows)
        page["items"] = [{"links": [], **row} for row in page["items"]]
        return json_response(page)

    @router.put(f"{RECORD_ROOT}/customer/{{ref}}", name="upsert_customer")
    async def upsert_customer(ref: str, request: Request) -> Response:
        if not ref.startswith("eid:") or len(ref) == 4:
            raise NetSuiteError(
                400, "USER_ERROR", "Upsert (PUT) needs an external id: customer/eid:<external id>."
            )
        customer = store().upsert_customer(ref[4:], await _body(request), _replace(request))
        location = _record_url(request, "customer", customer["id"])
        return Response(status_code=204, headers={"Location": location})

    @router.get(f"{RECORD_ROOT}/customer/{{ref}}", name="get_customer")
    async def get_customer(ref: str, request: Request) -> Response:
        customer = store().find_customer(ref)
        if customer is None:
            raise NetSuiteError(404, "NONEXISTENT_ID", f"Record customer {ref} was not found.")
        url = _record_url(request, "customer", customer["id"])
        expand = request.query_params.get("expandSubResources", "").lower() == "true"
        return json_response(store().render_customer(customer, url, expand))

    @router.patch(f"{RECORD_ROOT}/customer/{{ref}}", name="update_customer")
    async def update_customer(ref: str, request: Request) -> Response:
        customer = store().find_customer(ref)
        if customer is None:
            raise NetSuiteError(404, "NONEXISTENT_ID", f"Record customer {ref} was not found.")
        store().update_customer(customer, await _body(request), _replace(request))
        return Response(status_code=204)

    @router.post(f"{RECORD_ROOT}/salesOrder", name="create_sales_order")
    async def create_sales_order(request: Request) -> Response:
        order = store().create_sales_order(await _body(request))
        location = _record_url(request, "salesOrder", order["id"])
        return Response(status_code=204, headers={"Location": location})

    @router.get(f"{RECORD_ROOT}/salesOrder", name="list_sales_orders")
    async def list_sales_orders(request: Request) -> Response:
        rows = [
            {
                "links": [{"rel": "self", "href": _record_url(request, "salesOrder", order_id)}],
                "id": order_id,
            }
            for order_id in store().sales_orders
        ]
        return json_response(_page(request, rows))

    @router.get(f"{RECORD_ROOT}/salesOrder/{{ref}}", name="get_sales_order")
    async def get_sales_order(ref: str, request: Request) -> Response:
        order = store().find_sales_order(ref)
        if order is None:
            raise NetSuiteError(404, "NONEXISTENT_ID", f"Record salesOrder {ref} was not found.")
        expand = request.query_params.get("expandSubResources", "").lower() == "true"
        url = _record_url(request, "salesOrder", order["id"])
        return json_response(store().render_sales_order(order, url, expand))

    @router.patch(f"{RECORD_ROOT}/salesOrder/{{ref}}", name="update_sales_order")
    async def update_sales_order(ref: str, request: Request) -> Response:
        order = store().find_sales_order(ref)
        if order is None:
            raise NetSuiteError(404, "NONEXISTENT_ID", f"Record salesOrder {ref} was not found.")
        store().update_sales_order(order, await _body(request))
        return Response(status_code=204)

    def expanded(request: Request) -> bool:
        return request.query_params.get("expandSubResources", "").lower() == "true"

    def created(request: Request, record_type: str, record_id: str) -> Response:
        return Response(
            status_code=204, headers={"Location": _record_url(request, record_type, record_id)}
        )

    def invoice_of(ref: str) -> dict[str, Any]:
        invoice = store().find_invoice(ref)
        if invoice is None:
            raise NetSuiteError(404, "NONEXISTENT_ID", f"Record invoice {ref} was not found.")
        return invoice

    @router.post(f"{RECORD_ROOT}/invoice", name="create_invoice")
    async def create_invoice(request: Request) -> Response:
        invoice = store().create_invoice(await _body(request))
        return created(request, "invoice", invoice["id"])

    @router.get(f"{RECORD_ROOT}/invoice/{{ref}}", name="get_invoice")
    async def get_invoice(ref: str, request: Request) -> Response:
        invoice = invoice_of(ref)
        url = _record_url(request, "invoice", invoice["id"])
        return json_response(store().render_invoice(invoice, url, expanded(request)))

    @router.post(f"{RECORD_ROOT}/invoice/{{ref}}/!transform/creditMemo", name="create_credit_memo")
    async def create_credit_memo(ref: str, request: Request) -> Response:
        credit = store().credit_invoice(invoice_of(ref), await _body(request), _replace(request))
        return created(request, "creditMemo", credit["id"])

    @router.get(f"{RECORD_ROOT}/creditMemo/{{ref}}", name="get_credit_memo")
    async def get_credit_memo(ref: str, request: Request) -> Response:
        credit = store().find_credit_memo(ref)
        if credit is None:
            raise NetSuiteError(404, "NONEXISTENT_ID", f"Record creditMemo {ref} was not found.")
        url = _record_url(request, "creditMemo", credit["id"])
        return json_response(store().render_credit_memo(credit, url, expanded(request)))

    @router.post(
        f"{RECORD_ROOT}/invoice/{{ref}}/!transform/customerPayment",
        name="create_customer_payment",
    )
    async def create_customer_payment(ref: str, request: Request) -> Response:
        payment = store().pay_invoice(invoice_of(ref), await _body(request))
        return created(request, "customerPayment", payment["id"])

    @router.get(f"{RECORD_ROOT}/customerPayment/{{ref}}", name="get_customer_payment")
    async def get_customer_payment(ref: str, request: Request) -> Response:
        payment = store().find_customer_payment(ref)
        if payment is None:
            raise NetSuiteError(
                404, "NONEXISTENT_ID", f"Record customerPayment {ref} was not found."
            )
        url = _record_url(request, "customerPayment", payment["id"])
        return json_response(store().render_customer_payment(payment, url, expanded(request)))

    @router.post(f"{RECORD_ROOT}/journalEntry", name="create_journal_entry")
    async def create_journal_entry(request: Request) -> Response:
        journal = store().create_journal_entry(await _body(request))
        return created(request, "journalEntry", journal["id"])

    @router.get(f"{RECORD_ROOT}/journalEntry/{{ref}}", name="get_journal_entry")
    async def get_journal_entry(ref: str, request: Request) -> Response:
        journal = store().find_journal_entry(ref)
        if journal is None:
            raise NetSuiteError(404, "NONEXISTENT_ID", f"Record journalEntry {ref} was not found.")
        url = _record_url(request, "journalEntry", journal["id"])
        return json_response(store().render_journal_entry(journal, url, expanded(request)))

    @router.api_route(
        "/services/rest/{rest:path}",
        methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        name="unsupported",
    )
    async def unsupported(rest: str) -> Response:
        raise NetSuiteError(
            404, "NONEXISTENT_ID", f"The emulator has no resource at /services/rest/{rest}."
        )

    return router


class PeriodChange(BaseModel):
    """Body of ``POST /_sandbox/netsuite/periods``."""

    model_config = ConfigDict(extra="forbid")

    period: str = Field(description="A month: 2026-03, or its NetSuite name, Mar 2026")
    closed: bool = True


def build_control_router(state: SandboxState) -> APIRouter:
    """Sandbox-only routes for tests and dev, mounted at ``/_sandbox/netsuite``: no auth,
    no governance, no fault injection (they are not part of NetSuite's API)."""
    router = APIRouter()

    @router.post("/periods")
    async def change_period(change: PeriodChange) -> Response:
        try:
            period = state.netsuite.set_period_closed(change.period, change.closed)
        except KeyError as error:
            return json_response({"detail": str(error.args[0])}, 404)
        return json_response(
            {
                "id": period["id"],
                "periodName": period["periodname"],
                "startDate": period["startdate"],
                "endDate": period["enddate"],
                "closed": period["closed"],
            }
        )

    return router


# -- OAuth 2.0 client credentials (machine to machine) ------------------------------------

TOKEN_PATH = "/services/rest/auth/oauth2/v1/token"
JWT_CLIENT_ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# NetSuite wants the assertion to expire within 60 minutes of its issue.
MAX_ASSERTION_LIFETIME = 3600


def _scopes(value: object) -> set[str]:
    if isinstance(value, list):
        return {str(item) for item in value}
    if isinstance(value, str):
        return {part for part in re.split(r"[,\s]+", value) if part}
    return set()


def _assertion_client(server: OAuthServer, form: dict[str, str], request: Request) -> OAuthClient:
    if form.get("client_assertion_type") != JWT_CLIENT_ASSERTION:
        raise OAuthFailure("invalid_request", "client_assertion_type is not jwt-bearer")
    jwt = parse_jwt(form.get("client_assertion", ""))
    kid = jwt.header.get("kid")
    client = next((c for c in server.clients.values() if c.certificate_id == kid), None)
    if client is None or jwt.claims.get("iss") != client.client_id:
        raise OAuthFailure("invalid_client", "no certificate mapping for this client")
    verify_signature(jwt, client.public_key_pem, ("PS256",))
    if jwt.claims.get("aud") != request_url(request):
        raise OAuthFailure("invalid_grant", "the assertion's aud is not this token endpoint")
    if "rest_webservices" not in _scopes(jwt.claims.get("scope")):
        raise OAuthFailure("invalid_scope", "the assertion's scope lacks rest_webservices")
    check_times(jwt.claims, server.wall_clock(), max_lifetime=MAX_ASSERTION_LIFETIME)
    return client


def build_oauth_router(state: SandboxState) -> APIRouter:
    """NetSuite's token endpoint for the client credentials (M2M) grant: a form with
    ``grant_type=client_credentials``, ``client_assertion_type`` jwt-bearer and a PS256
    ``client_assertion`` whose header ``kid`` is a registered certificate id, ``iss`` that
    client's id, ``aud`` this endpoint's URL, ``scope`` including ``rest_webservices``, and
    ``exp`` at most 60 minutes after ``iat``. The answer is ``{"access_token", "expires_in",
    "token_type": "bearer"}`` with ``expires_in`` a string of seconds, as NetSuite writes it;
    a refusal is 400 ``{"error", "error_description"}``. Fault injection operation:
    ``oauth_token``. Not behind the API's auth and governance (it is how a client gets
    past them)."""
    router = APIRouter()

    @router.post(TOKEN_PATH)
    async def token(request: Request) -> Response:
        server = state.oauth[VENDOR]
        server.token_requests += 1
        faults = VendorFaults(state.faults, VENDOR, _fault_response)
        if (injected := await faults.before("oauth_token")) is not None:
            return injected
        try:
            form = await read_form(request)
            if form.get("grant_type") != "client_credentials":
                raise OAuthFailure("unsupported_grant_type", "grant type not supported")
            _assertion_client(server, form, request)
        except OAuthFailure as failure:
            return failure.response()
        return json_response(
            {
                "access_token": server.issue(),
                "expires_in": str(int(server.token_lifetime)),
                "token_type": "bearer",
            }
        )

    return router
