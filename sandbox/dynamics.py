"""Microsoft Dynamics 365 emulator: the slice of the Dataverse Web API revsync uses, and the
Microsoft Entra ID token endpoint in front of it.

Mounted at ``/dynamics``: the environment URL is ``http://<sandbox>/dynamics`` (a real one is
``https://<org>.crm.dynamics.com``), the Web API under ``/api/data/v9.2``, the token endpoint
at ``/<tenant>/oauth2/v2.0/token`` (a real one at ``https://login.microsoftonline.com``).

Tables (entity sets), each with its primary id column and, for revsync's records, the
alternate key revsync upserts by:

======================================  =========================  ==========================
entity set                              id column                  alternate key
======================================  =========================  ==========================
``accounts``                            ``accountid``              ``revsync_externalkey``
``transactioncurrencies``               ``transactioncurrencyid``
``uoms``                                ``uomid``
``products``                            ``productid``              (``productnumber`` = SKU)
``pricelevels``                         ``pricelevelid``
``productpricelevels``                  ``productpricelevelid``
``salesorders``                         ``salesorderid``           ``revsync_externalkey``
``salesorderdetails``                   ``salesorderdetailid``
``invoices``                            ``invoiceid``              ``revsync_externalkey``
``invoicedetails``                      ``invoicedetailid``
``revsync_payments``                    ``revsync_paymentid``      ``revsync_key``
``revsync_creditnotes``                 ``revsync_creditnoteid``   ``revsync_key``
``revsync_creditnotelines``             ``revsync_creditnotelineid``
``revsync_revenuejournals``             ``revsync_revenuejournalid`` ``revsync_key``
``revsync_fiscalperiods``               ``revsync_fiscalperiodid`` (``revsync_period``)
======================================  =========================  ==========================

Routes below ``/api/data/v9.2`` and the operation names fault rules target (``<one>`` is the
singular: ``account``, ``sales_order``, ``invoice``, ``payment``, ``credit_note``,
``revenue_journal``, ``product``, ...):

- ``GET /<set>`` (``list_<set>``): ``$select`` (only those columns and the primary id are
  answered, on single reads too), ``$filter`` (``col eq|ne|gt|ge|lt|le literal`` joined by
  ``and``, a date-time literal such as ``2026-03-01T10:00:00Z`` for ``createdon`` and
  ``modifiedon``, and ``Microsoft.Dynamics.CRM.In(PropertyName='col',PropertyValues=[...])``;
  "Filter rows", Dataverse Web API), ``$count=true`` (``@odata.count``, at most 5,000),
  ``$expand`` of the line collections (``$orderby`` is accepted; rows come in creation order),
  ``Prefer: odata.maxpagesize=N`` paging with ``@odata.nextLink`` (``$skiptoken``) and
  ``Preference-Applied``;
- ``GET /<set>(<guid>)`` or ``/<set>(<key>='<value>')`` (``get_<one>``): 404 ``0x80040217``
  when missing;
- ``PATCH /<set>(...)`` upsert: ``upsert_<one>`` without conditions (204, or with
  ``Prefer: return=representation`` 201 created / 200 updated), ``create_<one>`` with
  ``If-None-Match: *`` (412 ``0x80040237`` when the key exists), ``update_<one>`` with
  ``If-Match: *`` (404 when missing); ``POST /<set>``
  (``create_<one>``), 412 ``0x80040237`` when the body's alternate key value exists; deep
  insert of lines (``order_details``, ``invoice_details``, ``revsync_creditnote_lines``) on
  ``POST`` only, as Dataverse documents it ("Create a table row using the Web API"): a
  ``PATCH`` (update or upsert) carrying a collection-valued navigation property is 400
  ``0x80048d19`` ("Error identified in Payload provided by the user for Entity ...", the code
  Dataverse answers a payload it cannot take); ``Prefer: return=representation`` answers the
  record;
- ``POST /CancelSalesOrder`` (``cancel_sales_order``): ``{"OrderClose": {...,
  "salesorderid@odata.bind": "/salesorders(<id>)"}, "Status": 4}``: state Canceled.

What it reproduces: ``Authorization: Bearer`` (an issued, unexpired token or the static
sandbox token; else 401 with ``WWW-Authenticate: Bearer authorization_uri=...`` and no body);
errors as ``{"error": {"code": "0x8004....", "message"}}``; service protection limits (with
``DynamicsStore.request_limit`` set, requests past it get 429 ``0x80072322`` with
``Retry-After``); money as exact decimals rounded to the currency's precision (more decimals
are refused); a sales order line priced otherwise than the order's price list is refused
unless ``ispriceoverridden``; ``extendedamount = quantity x priceperunit -
manualdiscountamount + tax`` and order/invoice ``totalamount`` their sum; a retired product
is refused. The revsync solution's tables behave as its plug-ins make them (errors
``0x80040265``): a payment applies up to what the invoice still owes (none owed: refused); a
credit note credits invoice lines, never more than is left of a line or than the invoice
owes; a revenue journal balances two accounts and is refused in a closed fiscal period.
``POST /_sandbox/dynamics/periods`` (``{"period": "2026-03", "closed": true}``, no auth)
closes or reopens a month.
"""

from __future__ import annotations

import base64
import itertools
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from sandbox.faults import VendorFaults
from sandbox.oauth import OAuthClient, OAuthFailure, OAuthServer, read_form
from sandbox.seed import CATALOG
from sandbox.wire import bearer_token, json_response, read_json

if TYPE_CHECKING:
    from sandbox.app import SandboxState

VENDOR = "dynamics"
API_ROOT = "/api/data/v9.2"
TENANT = "sandbox-tenant"
CLIENT_ID = "sandbox-dynamics-client"
CLIENT_SECRET = "sandbox-dynamics-secret"
TOKEN_LIFETIME = 3599.0
DEFAULT_PAGE_SIZE = 5000

NOT_FOUND = "0x80040217"
DUPLICATE_KEY = "0x80040237"
INVALID_ARGUMENT = "0x80040203"
PLUGIN_ERROR = "0x80040265"
PAYLOAD_ERROR = "0x80048d19"  # "Error identified in Payload provided by the user for Entity"
THROTTLED = "0x80072322"

# salesorder statecode / statuscode
ORDER_ACTIVE, ORDER_SUBMITTED, ORDER_CANCELED, ORDER_FULFILLED, ORDER_INVOICED = 0, 1, 2, 3, 4
ORDER_STATUS_NEW, ORDER_STATUS_NO_MONEY = 1, 4
# invoice statecode
INVOICE_ACTIVE, INVOICE_CLOSED, INVOICE_PAID, INVOICE_CANCELED = 0, 1, 2, 3

ID_COLUMNS = {
    "accounts": "accountid",
    "transactioncurrencies": "transactioncurrencyid",
    "uoms": "uomid",
    "products": "productid",
    "pricelevels": "pricelevelid",
    "productpricelevels": "productpricelevelid",
    "salesorders": "salesorderid",
    "salesorderdetails": "salesorderdetailid",
    "invoices": "invoiceid",
    "invoicedetails": "invoicedetailid",
    "revsync_payments": "revsync_paymentid",
    "revsync_creditnotes": "revsync_creditnoteid",
    "revsync_creditnotelines": "revsync_creditnotelineid",
    "revsync_revenuejournals": "revsync_revenuejournalid",
    "revsync_fiscalperiods": "revsync_fiscalperiodid",
}
ALTERNATE_KEYS = {
    "accounts": "revsync_externalkey",
    "salesorders": "revsync_externalkey",
    "invoices": "revsync_externalkey",
    "revsync_payments": "revsync_key",
    "revsync_creditnotes": "revsync_key",
    "revsync_revenuejournals": "revsync_key",
}
SINGULAR = {
    "accounts": "account",
    "salesorders": "sales_order",
    "invoices": "invoice",
    "revsync_payments": "payment",
    "revsync_creditnotes": "credit_note",
    "revsync_revenuejournals": "revenue_journal",
    "products": "product",
}
WRITABLE = frozenset(
    {"accounts", "salesorders", "invoices", "revsync_payments", "revsync_creditnotes"}
    | {"revsync_revenuejournals"}
)
# Collection-valued navigation properties: (parent set, property) -> (child set, parent column)
LINES = {
    ("salesorders", "order_details"): ("salesorderdetails", "salesorderid"),
    ("invoices", "invoice_details"): ("invoicedetails", "invoiceid"),
    ("revsync_creditnotes", "revsync_creditnote_lines"): (
        "revsync_creditnotelines",
        "revsync_creditnoteid",
    ),
}
# Lookups a body may bind: property -> (target set, the _<x>_value column it sets)
BINDS = {
    "customerid_account": ("accounts", "customerid"),
    "transactioncurrencyid": ("transactioncurrencies", "transactioncurrencyid"),
    "pricelevelid": ("pricelevels", "pricelevelid"),
    "productid": ("products", "productid"),
    "uomid": ("uoms", "uomid"),
    "salesorderid": ("salesorders", "salesorderid"),
    "revsync_invoiceid": ("invoices", "revsync_invoiceid"),
    "revsync_invoicedetailid": ("invoicedetails", "revsync_invoicedetailid"),
}
_COLUMN = re.compile(r"^[a-z_][a-z0-9_]{0,99}$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class DataverseError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> Response:
        return error_response(self.status, self.code, self.message)


def error_response(status: int, code: str | None, message: str) -> Response:
    return json_response(
        {"error": {"code": code or INVALID_ARGUMENT, "message": message}},
        status,
        headers={"OData-Version": "4.0"},
    )


def _fault_response(status: int, code: str | None, message: str) -> Response:
    if status == 429 and code is None:
        code = THROTTLED
    if status >= 500 and code is None:
        code = "0x80040216"  # an unexpected error occurred
    return error_response(status, code, message)


def _guid() -> str:
    return str(uuid.uuid4())


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _select(request: Request) -> set[str] | None:
    raw = request.query_params.get("$select", "")
    columns = {c.strip() for c in raw.split(",") if c.strip()}
    return columns or None


# -- $filter ----------------------------------------------------------------------------------

_IN = re.compile(
    r"^Microsoft\.Dynamics\.CRM\.In\(PropertyName='(?P<col>[a-z0-9_]+)',"
    r"PropertyValues=\[(?P<values>.*)\]\)$"
)
_COMPARE = re.compile(r"^(?P<col>[a-z0-9_]+) (?P<op>eq|ne|gt|ge|lt|le) (?P<value>.+)$")
_LITERAL = re.compile(
    r"'((?:[^']|'')*)'|(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z)"
    r"|(-?[0-9]+(?:\.[0-9]+)?)|(null|true|false)|([0-9a-fA-F-]{36})"
)
# Dataverse counts a collection up to 5,000 rows ("$count": a larger count answers 5000).
MAX_COUNT = 5000


def _literal(text: str) -> Any:
    match = _LITERAL.fullmatch(text.strip())
    if match is None:
        raise DataverseError(400, INVALID_ARGUMENT, f"Syntax error: unsupported literal {text!r}.")
    if match.group(1) is not None:
        return match.group(1).replace("''", "'")
    if match.group(2) is not None:  # Edm.DateTimeOffset, UTC: compares as text
        return match.group(2).split(".")[0].rstrip("Z") + "Z"
    if match.group(3) is not None:
        number = match.group(3)
        return Decimal(number) if "." in number else int(number)
    if match.group(4) is not None:
        return {"null": None, "true": True, "false": False}[match.group(4)]
    return match.group(5).lower()


def _split_and(text: str) -> list[str]:
    parts, current, quoted = [], "", False
    i = 0
    while i < len(text):
        if text[i] == "'":
            quoted = not quoted
        if not quoted and text.startswith(" and ", i):
            parts.append(current)
            current = ""
            i += 5
            continue
        current += text[i]
        i += 1
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


Condition = tuple[str, str, list[Any]]


def parse_filter(text: str) -> list[Condition]:
    """``$filter`` as (column, operator, literals) conditions, all of which must hold:
    ``eq`` and ``In`` hold any of the literals; ``ne``, ``gt``, ``ge``, ``lt``, ``le`` compare
    with one (date-times as UTC text, numbers as numbers)."""
    conditions: list[Condition] = []
    for part in _split_and(text):
        if (match := _IN.match(part)) is not None:
            values = [
                _literal(v.group(0)) for v in re.finditer(r"'(?:[^']|'')*'", match.group("values"))
            ]
            conditions.append((match.group("col"), "eq", values))
        elif (match := _COMPARE.match(part)) is not None:
            conditions.append(
                (match.group("col"), match.group("op"), [_literal(match.group("value"))])
            )
        else:
            raise DataverseError(
                400, INVALID_ARGUMENT, f"The emulator cannot evaluate the filter {part!r}."
            )
    return conditions


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}


def _matches(record: dict[str, Any], conditions: list[Condition]) -> bool:
    for column, op, values in conditions:
        value = record.get(column, record.get(f"_{column}_value"))
        if isinstance(value, str):
            value = value.lower() if _GUID.match(value) else value
        if op in _ORDER:
            (literal,) = values
            if value is None or literal is None:
                return False
            try:
                if not _ORDER[op](value, literal):
                    return False
            except TypeError:
                return False
            continue
        equal = value in values or (
            isinstance(value, str) and value.lower() in [str(v).lower() for v in values]
        )
        if equal == (op == "ne"):
            return False
    return True


# -- the store --------------------------------------------------------------------------------


@dataclass
class DynamicsStore:
    """Every table of the emulated environment, in memory."""

    tables: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    # Service protection: requests allowed before 429 (None: unlimited); Retry-After seconds.
    request_limit: int | None = None
    retry_after: int = 5
    requests: int = 0
    throttled: int = 0
    _numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1001))
    _versions: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        for name in ID_COLUMNS:
            self.tables.setdefault(name, {})
        if not self.tables["products"]:
            self._seed()

    def _insert(self, entity_set: str, record: dict[str, Any]) -> dict[str, Any]:
        record.setdefault(ID_COLUMNS[entity_set], _guid())
        record.setdefault("statecode", 0)
        record.setdefault("createdon", _now())
        record.setdefault("modifiedon", record["createdon"])
        record.setdefault("versionnumber", next(self._versions))
        self.tables[entity_set][record[ID_COLUMNS[entity_set]]] = record
        return record

    def _seed(self) -> None:
        uom = self._insert("uoms", {"name": "Primary Unit"})
        currencies: dict[str, str] = {}
        codes = sorted({code for item in CATALOG for code in item["prices"]})
        for code in codes:
            precision = 0 if code == "JPY" else 2
            row = self._insert(
                "transactioncurrencies",
                {"isocurrencycode": code, "currencyname": code, "currencyprecision": precision},
            )
            currencies[code] = row["transactioncurrencyid"]
        lists = {
            code: self._insert(
                "pricelevels",
                {"name": f"List Price {code}", "_transactioncurrencyid_value": currencies[code]},
            )["pricelevelid"]
            for code in codes
        }
        for item in CATALOG:
            product = self._insert(
                "products",
                {
                    "productnumber": item["itemId"],
                    "name": item["displayName"],
                    "revsync_billing": item["billing"],
                    "statecode": 1 if item.get("isInactive") else 0,
                    "_defaultuomid_value": uom["uomid"],
                },
            )
            for code, amount in item["prices"].items():
                self._insert(
                    "productpricelevels",
                    {
                        "_productid_value": product["productid"],
                        "_pricelevelid_value": lists[code],
                        "_transactioncurrencyid_value": currencies[code],
                        "_uomid_value": uom["uomid"],
                        "amount": Decimal(amount),
                    },
                )
        for year in range(2020, 2036):
            for month in range(1, 13):
                self._insert(
                    "revsync_fiscalperiods",
                    {"revsync_period": f"{year}-{month:02d}", "revsync_status": "Open"},
                )

    # -- lookups --------------------------------------------------------------------------

    def find(self, entity_set: str, ref: str) -> dict[str, Any] | None:
        """A record by ``<guid>`` or ``<key column>='<value>'`` (already unquoted)."""
        table = self.tables[entity_set]
        if "=" not in ref:
            return table.get(ref.lower())
        column, _, value = ref.partition("=")
        if ALTERNATE_KEYS.get(entity_set) != column.strip():
            raise DataverseError(
                400, INVALID_ARGUMENT, f"{column} is not an alternate key of {entity_set}."
            )
        for record in table.values():
            if record.get(column.strip()) == value:
                return record
        return None

    def currency(self, currency_id: Any) -> dict[str, Any]:
        row = self.tables["transactioncurrencies"].get(str(currency_id))
        if row is None:
            raise DataverseError(
                400, NOT_FOUND, f"transactioncurrency {currency_id} Does Not Exist"
            )
        return row

    def money(self, value: Any, column: str, currency_id: Any) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, int | Decimal):
            raise DataverseError(400, INVALID_ARGUMENT, f"{column} must be a number: {value!r}")
        amount = Decimal(value)
        places = int(self.currency(currency_id)["currencyprecision"])
        if amount != amount.quantize(Decimal(1).scaleb(-places)):
            raise DataverseError(
                400,
                INVALID_ARGUMENT,
                f"{column} {amount} has more decimals than the currency's precision ({places}).",
            )
        return amount

    # -- writes ---------------------------------------------------------------------------

    def _apply(self, entity_set: str, record: dict[str, Any], body: dict[str, Any]) -> None:
        for name, value in body.items():
            if name.endswith("@odata.bind"):
                prop = name[: -len("@odata.bind")]
                if prop not in BINDS:
                    raise DataverseError(
                        400, INVALID_ARGUMENT, f"An undeclared property '{prop}' was found."
                    )
                target, column = BINDS[prop]
                match = re.fullmatch(rf"/?{target}\(([^)]+)\)", str(value))
                if match is None or match.group(1).lower() not in self.tables[target]:
                    raise DataverseError(
                        400, NOT_FOUND, f"{target.rstrip('s')} With Id = {value} Does Not Exist"
                    )
                record[f"_{column}_value"] = match.group(1).lower()
            elif (entity_set, name) in LINES:
                continue
            elif not _COLUMN.match(name) or name in (
                ID_COLUMNS[entity_set],
                "statecode",
                "createdon",
                "modifiedon",
                "versionnumber",
            ):
                raise DataverseError(
                    400, INVALID_ARGUMENT, f"Property '{name}' cannot be set on {entity_set}."
                )
            else:
                record[name] = value

    def write(
        self, entity_set: str, existing: dict[str, Any] | None, body: Any, key: tuple[str, str]
    ) -> tuple[dict[str, Any], bool]:
        """Create (``existing`` None) or update a record; returns it and whether it is new."""
        if entity_set not in WRITABLE:
            raise DataverseError(405, INVALID_ARGUMENT, f"{entity_set} is read-only here.")
        if not isinstance(body, dict):
            raise DataverseError(400, INVALID_ARGUMENT, "The request body must be an object.")
        if existing is not None:
            if entity_set != "accounts":
                raise DataverseError(
                    400, PLUGIN_ERROR, f"revsync: a posted {SINGULAR[entity_set]} is not edited."
                )
            draft = dict(existing)
            self._apply(entity_set, draft, body)
            self._check_account(draft)
            draft.update(modifiedon=_now(), versionnumber=next(self._versions))
            existing.update(draft)
            return existing, False
        record: dict[str, Any] = {}
        if key[0]:
            record[key[0]] = key[1]
        self._apply(entity_set, record, body)
        if ALTERNATE_KEYS.get(entity_set) and not record.get(ALTERNATE_KEYS[entity_set]):
            record[ALTERNATE_KEYS[entity_set]] = None
        create = getattr(self, f"_create_{entity_set}")
        create(record, body)
        return self._insert(entity_set, record), True

    def _check_account(self, record: dict[str, Any]) -> None:
        if not record.get("name"):
            raise DataverseError(400, INVALID_ARGUMENT, "Account Name is required.")
        if record.get("creditlimit") is not None and record.get("_transactioncurrencyid_value"):
            self.money(record["creditlimit"], "creditlimit", record["_transactioncurrencyid_value"])

    def _create_accounts(self, record: dict[str, Any], body: dict[str, Any]) -> None:
        self._check_account(record)
        record["accountnumber"] = f"ACC-{next(self._numbers)}"

    def _priced_lines(
        self, record: dict[str, Any], body: dict[str, Any], nav: str, parent: str
    ) -> list[dict[str, Any]]:
        for column in ("_customerid_value", "_transactioncurrencyid_value", "_pricelevelid_value"):
            if not record.get(column):
                raise DataverseError(400, INVALID_ARGUMENT, f"{column[1:-6]} is required.")
        currency_id = record["_transactioncurrencyid_value"]
        price_list = self.tables["pricelevels"][record["_pricelevelid_value"]]
        if price_list["_transactioncurrencyid_value"] != currency_id:
            raise DataverseError(
                400, INVALID_ARGUMENT, "The price list's currency is not the record's currency."
            )
        entries = body.get(nav)
        if not isinstance(entries, list) or not entries:
            raise DataverseError(400, PLUGIN_ERROR, f"revsync: {parent} needs at least one line.")
        lines = []
        for n, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise DataverseError(400, INVALID_ARGUMENT, f"{nav}[{n}] is not an object.")
            line: dict[str, Any] = {}
            self._apply(LINES[(parent, nav)][0], line, entry)
            product = self.tables["products"].get(line.get("_productid_value", ""))
            if product is None or not line.get("_uomid_value"):
                raise DataverseError(400, INVALID_ARGUMENT, f"{nav}[{n}]: productid and uomid.")
            if product["statecode"] != 0:
                raise DataverseError(
                    400, "0x80043b1d", f"The product {product['productnumber']} is retired."
                )
            quantity = line.get("quantity")
            if (
                isinstance(quantity, bool)
                or not isinstance(quantity, int | Decimal)
                or quantity <= 0
            ):
                raise DataverseError(400, INVALID_ARGUMENT, f"{nav}[{n}]: quantity must be > 0.")
            price = self.money(line.get("priceperunit", 0), "priceperunit", currency_id)
            listed = [
                p["amount"]
                for p in self.tables["productpricelevels"].values()
                if p["_productid_value"] == product["productid"]
                and p["_pricelevelid_value"] == record["_pricelevelid_value"]
            ]
            if not listed:
                raise DataverseError(
                    400,
                    "0x8004d218",
                    f"The product {product['productnumber']} is not in the price list.",
                )
            if not line.get("ispriceoverridden") and price != listed[0]:
                raise DataverseError(
                    400,
                    PLUGIN_ERROR,
                    f"{nav}[{n}]: priceperunit {price} is not the price list's {listed[0]} "
                    "(set ispriceoverridden to override it).",
                )
            discount = self.money(
                line.get("manualdiscountamount", 0), "manualdiscountamount", currency_id
            )
            tax = self.money(line.get("tax", 0), "tax", currency_id)
            base = Decimal(quantity) * price
            if base != base.quantize(
                Decimal(1).scaleb(-int(self.currency(currency_id)["currencyprecision"]))
            ):
                raise DataverseError(400, INVALID_ARGUMENT, f"{nav}[{n}]: amount is too precise.")
            line.update(
                baseamount=base,
                manualdiscountamount=discount,
                tax=tax,
                extendedamount=base - discount + tax,
                lineitemnumber=n + 1,
                _transactioncurrencyid_value=currency_id,
            )
            if line["extendedamount"] < 0:
                raise DataverseError(400, INVALID_ARGUMENT, f"{nav}[{n}]: negative amount.")
            lines.append(line)
        return lines

    def _store_lines(
        self, parent: str, nav: str, parent_id: str, lines: list[dict[str, Any]]
    ) -> None:
        child, column = LINES[(parent, nav)]
        for line in lines:
            line[f"_{column}_value"] = parent_id
            self._insert(child, line)

    def _create_salesorders(self, record: dict[str, Any], body: dict[str, Any]) -> None:
        lines = self._priced_lines(record, body, "order_details", "salesorders")
        record.update(
            salesorderid=_guid(),
            ordernumber=f"ORD-{next(self._numbers):05d}-S4N1",
            totallineitemamount=sum(
                (x["baseamount"] - x["manualdiscountamount"] for x in lines), Decimal(0)
            ),
            totaltax=sum((x["tax"] for x in lines), Decimal(0)),
            totalamount=sum((x["extendedamount"] for x in lines), Decimal(0)),
            statuscode=ORDER_STATUS_NEW,
        )
        self._store_lines("salesorders", "order_details", record["salesorderid"], lines)

    def _create_invoices(self, record: dict[str, Any], body: dict[str, Any]) -> None:
        lines = self._priced_lines(record, body, "invoice_details", "invoices")
        total = sum((x["extendedamount"] for x in lines), Decimal(0))
        record.update(
            invoiceid=_guid(),
            invoicenumber=f"INV-{next(self._numbers):05d}-S4N1",
            totallineitemamount=sum(
                (x["baseamount"] - x["manualdiscountamount"] for x in lines), Decimal(0)
            ),
            totaltax=sum((x["tax"] for x in lines), Decimal(0)),
            totalamount=total,
            revsync_amountpaid=Decimal(0),
            revsync_amountcredited=Decimal(0),
            revsync_amountdue=total,
            statuscode=1,
        )
        self._store_lines("invoices", "invoice_details", record["invoiceid"], lines)

    def _invoice_of(self, record: dict[str, Any]) -> dict[str, Any]:
        invoice = self.tables["invoices"].get(record.get("_revsync_invoiceid_value") or "")
        if invoice is None:
            raise DataverseError(400, INVALID_ARGUMENT, "revsync_invoiceid is required.")
        return invoice

    @staticmethod
    def _settle(invoice: dict[str, Any]) -> None:
        if invoice["revsync_amountdue"] > 0:
            invoice["statecode"], invoice["statuscode"] = INVOICE_ACTIVE, 1
        elif invoice["revsync_amountpaid"] > 0:
            invoice["statecode"], invoice["statuscode"] = INVOICE_PAID, 100001
        else:
            invoice["statecode"], invoice["statuscode"] = INVOICE_CANCELED, 100003

    def _create_revsync_payments(self, record: dict[str, Any], body: dict[str, Any]) -> None:
        invoice = self._invoice_of(record)
        currency_id = invoice["_transactioncurrencyid_value"]
        amount = self.money(record.get("revsync_amount"), "revsync_amount", currency_id)
        if amount <= 0:
            raise DataverseError(400, PLUGIN_ERROR, "revsync: a payment must be positive.")
        due = invoice["revsync_amountdue"]
        if due <= 0:
            raise DataverseError(
                400, PLUGIN_ERROR, f"revsync: invoice {invoice['invoicenumber']} has nothing due."
            )
        applied = min(amount, due)
        record.update(
            revsync_applied=applied,
            revsync_unapplied=amount - applied,
            _transactioncurrencyid_value=currency_id,
        )
        invoice["revsync_amountdue"] = due - applied
        invoice["revsync_amountpaid"] += applied
        self._settle(invoice)

    def _create_revsync_creditnotes(self, record: dict[str, Any], body: dict[str, Any]) -> None:
        invoice = self._invoice_of(record)
        currency_id = invoice["_transactioncurrencyid_value"]
        entries = body.get("revsync_creditnote_lines")
        if not isinstance(entries, list) or not entries:
            raise DataverseError(400, PLUGIN_ERROR, "revsync: a credit note needs lines.")
        credited = self._credited_by_line(invoice["invoiceid"])
        lines = []
        for n, entry in enumerate(entries):
            line: dict[str, Any] = {}
            self._apply("revsync_creditnotelines", line, entry if isinstance(entry, dict) else {})
            detail = self.tables["invoicedetails"].get(
                line.get("_revsync_invoicedetailid_value", "")
            )
            if detail is None or detail["_invoiceid_value"] != invoice["invoiceid"]:
                raise DataverseError(
                    400, PLUGIN_ERROR, f"revsync: line {n} credits no line of this invoice."
                )
            amount = self.money(line.get("revsync_amount", 0), "revsync_amount", currency_id)
            tax = self.money(line.get("revsync_tax", 0), "revsync_tax", currency_id)
            done_amount, done_tax = credited.get(
                detail["invoicedetailid"], (Decimal(0), Decimal(0))
            )
            if (
                amount < 0
                or tax < 0
                or amount + done_amount > detail["extendedamount"] - detail["tax"]
                or tax + done_tax > detail["tax"]
            ):
                raise DataverseError(
                    400, PLUGIN_ERROR, f"revsync: line {n} credits more than is left of it."
                )
            line.update(revsync_amount=amount, revsync_tax=tax)
            lines.append(line)
        total = sum((x["revsync_amount"] + x["revsync_tax"] for x in lines), Decimal(0))
        if total <= 0 or total > invoice["revsync_amountdue"]:
            raise DataverseError(
                400,
                PLUGIN_ERROR,
                f"revsync: the credit of {total} is more than the {invoice['revsync_amountdue']} "
                "the invoice owes.",
            )
        record.update(
            revsync_creditnoteid=_guid(),
            revsync_total=total,
            revsync_applied=total,
            revsync_unapplied=Decimal(0),
            _transactioncurrencyid_value=currency_id,
        )
        invoice["revsync_amountdue"] -= total
        invoice["revsync_amountcredited"] += total
        self._settle(invoice)
        self._store_lines(
            "revsync_creditnotes", "revsync_creditnote_lines", record["revsync_creditnoteid"], lines
        )

    def _credited_by_line(self, invoice_id: str) -> dict[str, tuple[Decimal, Decimal]]:
        notes = {
            note["revsync_creditnoteid"]
            for note in self.tables["revsync_creditnotes"].values()
            if note["_revsync_invoiceid_value"] == invoice_id
        }
        done: dict[str, tuple[Decimal, Decimal]] = {}
        for line in self.tables["revsync_creditnotelines"].values():
            if line["_revsync_creditnoteid_value"] in notes:
                amount, tax = done.get(
                    line["_revsync_invoicedetailid_value"], (Decimal(0), Decimal(0))
                )
                done[line["_revsync_invoicedetailid_value"]] = (
                    amount + line["revsync_amount"],
                    tax + line["revsync_tax"],
                )
        return done

    def period(self, period: str) -> dict[str, Any] | None:
        for row in self.tables["revsync_fiscalperiods"].values():
            if row["revsync_period"] == period:
                return row
        return None

    def _create_revsync_revenuejournals(self, record: dict[str, Any], body: dict[str, Any]) -> None:
        currency_id = record.get("_transactioncurrencyid_value")
        if not currency_id:
            raise DataverseError(400, INVALID_ARGUMENT, "transactioncurrencyid is required.")
        amount = self.money(record.get("revsync_amount"), "revsync_amount", currency_id)
        if amount <= 0:
            raise DataverseError(400, PLUGIN_ERROR, "revsync: a journal amount must be positive.")
        for column in ("revsync_debitaccount", "revsync_creditaccount"):
            if not isinstance(record.get(column), str) or not record[column]:
                raise DataverseError(400, INVALID_ARGUMENT, f"{column} is required.")
        if record["revsync_debitaccount"] == record["revsync_creditaccount"]:
            raise DataverseError(
                400, PLUGIN_ERROR, "revsync: a journal moves between two accounts."
            )
        period = self.period(str(record.get("revsync_period")))
        if period is None:
            raise DataverseError(
                400, PLUGIN_ERROR, f"revsync: no fiscal period {record.get('revsync_period')}."
            )
        if period["revsync_status"] != "Open":
            raise DataverseError(
                400, PLUGIN_ERROR, f"revsync: fiscal period {period['revsync_period']} is closed."
            )
        record["revsync_amount"] = amount

    def cancel_order(self, order: dict[str, Any], status: Any) -> None:
        if status != ORDER_STATUS_NO_MONEY:
            raise DataverseError(400, INVALID_ARGUMENT, f"{status} is not a Canceled status.")
        if order["statecode"] == ORDER_CANCELED:
            raise DataverseError(400, "0x80040225", "The sales order is already canceled.")
        if order["statecode"] in (ORDER_FULFILLED, ORDER_INVOICED):
            raise DataverseError(
                400, "0x80040225", "A fulfilled or invoiced order cannot be canceled."
            )
        order["statecode"], order["statuscode"] = ORDER_CANCELED, ORDER_STATUS_NO_MONEY

    def set_period(self, period: str, closed: bool) -> dict[str, Any]:
        row = self.period(period)
        if row is None:
            raise KeyError(f"no fiscal period {period}")
        row["revsync_status"] = "Closed" if closed else "Open"
        return row

    # -- reads ----------------------------------------------------------------------------

    def render(
        self,
        entity_set: str,
        record: dict[str, Any],
        expand: set[str],
        select: set[str] | None = None,
    ) -> dict[str, Any]:
        """A record as the Web API answers it: ``$select`` columns only (the primary id
        always), expanded line collections, an ``@odata.etag`` of its version."""
        out: dict[str, Any] = {"@odata.etag": f'W/"{record.get("versionnumber", 1)}"'}
        id_column = ID_COLUMNS[entity_set]
        out.update((k, v) for k, v in record.items() if not select or k in select or k == id_column)
        for (parent, nav), (child, column) in LINES.items():
            if parent == entity_set and nav in expand:
                out[nav] = [
                    dict(line)
                    for line in self.tables[child].values()
                    if line.get(f"_{column}_value") == record[ID_COLUMNS[entity_set]]
                ]
        return out

    def snapshot(self) -> dict[str, Any]:
        def rows(name: str) -> list[dict[str, Any]]:
            return [dict(r) for r in self.tables[name].values()]

        return {
            "accounts": rows("accounts"),
            "salesorders": rows("salesorders"),
            "salesorderdetails": rows("salesorderdetails"),
            "invoices": rows("invoices"),
            "invoicedetails": rows("invoicedetails"),
            "payments": rows("revsync_payments"),
            "creditnotes": rows("revsync_creditnotes"),
            "creditnotelines": rows("revsync_creditnotelines"),
            "revenuejournals": rows("revsync_revenuejournals"),
            "closedPeriods": [
                r["revsync_period"]
                for r in self.tables["revsync_fiscalperiods"].values()
                if r["revsync_status"] != "Open"
            ],
            "products": len(self.tables["products"]),
            "throttling": {"requests": self.requests, "throttled": self.throttled},
        }


# -- routing ----------------------------------------------------------------------------------

_TARGET = re.compile(r"^(?P<set>[a-z_]+)(?:\((?P<ref>.*)\))?$")


def _parse_target(raw: str) -> tuple[str, str | None]:
    """``salesorders(revsync_externalkey='a%3Ab')`` -> (``salesorders``,
    ``revsync_externalkey=a:b``); a guid reference lower-cased."""
    match = _TARGET.match(raw)
    if match is None:
        raise DataverseError(
            404, NOT_FOUND, f"Resource not found for the segment '{unquote(raw)}'."
        )
    ref = match.group("ref")
    if ref is None:
        return match.group("set"), None
    ref = unquote(ref)
    key = re.fullmatch(r"([a-z_]+)='((?:[^']|'')*)'", ref)
    if key is not None:
        return match.group("set"), f"{key.group(1)}={key.group(2).replace(chr(39) * 2, chr(39))}"
    if not _GUID.match(ref):
        raise DataverseError(400, INVALID_ARGUMENT, f"Bad Request - Error in query syntax: {ref}")
    return match.group("set"), ref.lower()


def _page_size(request: Request) -> int:
    for part in request.headers.get("prefer", "").split(","):
        name, _, value = part.strip().partition("=")
        if name == "odata.maxpagesize" and value.isdigit() and int(value) > 0:
            return min(int(value), DEFAULT_PAGE_SIZE)
    return DEFAULT_PAGE_SIZE


def _skip(request: Request) -> int:
    token = request.query_params.get("$skiptoken")
    if token is None:
        return 0
    try:
        cookie = base64.urlsafe_b64decode(token.encode()).decode()
        match = re.fullmatch(r'<cookie pagenumber="(\d+)" skip="(\d+)" />', cookie)
        assert match is not None
        return int(match.group(2))
    except (ValueError, AssertionError):
        raise DataverseError(400, INVALID_ARGUMENT, "Invalid $skiptoken.") from None


def _wants_representation(request: Request) -> bool:
    return "return=representation" in request.headers.get("prefer", "")


def _environment(request: Request) -> str:
    path = request.url.path
    root = path[: path.index(API_ROOT)] if API_ROOT in path else path
    return f"{request.url.scheme}://{request.url.netloc}{root}"


def _unauthorized(request: Request) -> Response:
    return Response(
        status_code=401,
        headers={
            "WWW-Authenticate": (
                f"Bearer authorization_uri=https://login.microsoftonline.com/{TENANT}/oauth2/"
                f"authorize, resource_id={_environment(request)}/"
            )
        },
    )


def build_router(state: SandboxState) -> APIRouter:
    """The Web API, reading ``state.dynamics`` afresh on every request."""
    router = APIRouter()

    def store() -> DynamicsStore:
        current: DynamicsStore = state.dynamics
        return current

    async def guarded(
        request: Request, operation: str, handler: Callable[[], Awaitable[Response]]
    ) -> Response:
        if not state.oauth[VENDOR].accepts(bearer_token(request), state.tokens[VENDOR]):
            return _unauthorized(request)
        current = store()
        current.requests += 1
        if current.request_limit is not None and current.requests > current.request_limit:
            current.throttled += 1
            response = error_response(
                429,
                THROTTLED,
                "Number of requests exceeded the limit of 6000 over time window of 300 seconds.",
            )
            response.headers["Retry-After"] = str(current.retry_after)
            return response
        faults = VendorFaults(state.faults, VENDOR, _fault_response)
        if (injected := await faults.before(operation)) is not None:
            return injected
        try:
            response = await handler()
        except DataverseError as error:
            return error.response()
        if response.status_code < 400 and (injected := await faults.after(operation)) is not None:
            return injected
        return response

    @router.api_route(API_ROOT + "/{target}", methods=["GET", "POST", "PATCH", "DELETE"])
    async def dispatch(target: str, request: Request) -> Response:
        raw_path = request.scope.get("raw_path", b"").decode("latin-1")
        raw_target = raw_path.rsplit("/", 1)[-1] if raw_path else target
        if request.method == "POST" and unquote(raw_target) == "CancelSalesOrder":
            return await guarded(request, "cancel_sales_order", lambda: _cancel(request))
        try:
            entity_set, ref = _parse_target(raw_target)
        except DataverseError as error:
            return error.response()
        if entity_set not in ID_COLUMNS:
            return error_response(
                404, NOT_FOUND, f"Resource not found for the segment '{entity_set}'."
            )
        one = SINGULAR.get(entity_set, entity_set)
        if request.method == "GET":
            if ref is None:
                return await guarded(
                    request, f"list_{entity_set}", lambda: _list(request, entity_set)
                )
            return await guarded(request, f"get_{one}", lambda: _get(request, entity_set, ref))
        if request.method == "POST" and ref is None:
            return await guarded(
                request, f"create_{one}", lambda: _write(request, entity_set, None)
            )
        if request.method == "PATCH" and ref is not None:
            if request.headers.get("if-none-match", "").strip() == "*":
                operation = f"create_{one}"
            elif request.headers.get("if-match", "").strip() == "*":
                operation = f"update_{one}"
            else:
                operation = f"upsert_{one}"
            return await guarded(request, operation, lambda: _write(request, entity_set, ref))
        return error_response(405, INVALID_ARGUMENT, f"{request.method} is not supported here.")

    async def _body(request: Request) -> Any:
        try:
            return await read_json(request)
        except ValueError:
            raise DataverseError(400, INVALID_ARGUMENT, "The request body is not JSON.") from None

    async def _get(request: Request, entity_set: str, ref: str) -> Response:
        record = store().find(entity_set, ref)
        if record is None:
            raise DataverseError(
                404, NOT_FOUND, f"{entity_set.rstrip('s')} With Id = {ref} Does Not Exist"
            )
        expand = set(request.query_params.get("$expand", "").replace(" ", "").split(",")) - {""}
        expand = {e.split("(")[0] for e in expand}
        return json_response(store().render(entity_set, record, expand, _select(request)))

    async def _list(request: Request, entity_set: str) -> Response:
        conditions = parse_filter(request.query_params.get("$filter", ""))
        expand = {
            e.split("(")[0]
            for e in request.query_params.get("$expand", "").replace(" ", "").split(",")
            if e
        }
        rows = [r for r in store().tables[entity_set].values() if _matches(r, conditions)]
        size, skip = _page_size(request), _skip(request)
        chunk = rows[skip : skip + size]
        body: dict[str, Any] = {
            "@odata.context": f"{_environment(request)}{API_ROOT}/$metadata#{entity_set}",
        }
        if request.query_params.get("$count", "").lower() == "true":
            body["@odata.count"] = min(len(rows), MAX_COUNT)
        body["value"] = [store().render(entity_set, r, expand, _select(request)) for r in chunk]
        if skip + size < len(rows):
            page = skip // size + 2
            cookie = f'<cookie pagenumber="{page}" skip="{skip + size}" />'
            token = base64.urlsafe_b64encode(cookie.encode()).decode()
            body["@odata.nextLink"] = str(request.url.include_query_params(**{"$skiptoken": token}))
        headers = (
            {"Preference-Applied": f"odata.maxpagesize={size}"}
            if "maxpagesize" in request.headers.get("prefer", "")
            else None
        )
        return json_response(body, headers=headers)

    async def _write(request: Request, entity_set: str, ref: str | None) -> Response:
        body = await _body(request)
        if request.method == "PATCH" and isinstance(body, dict):
            nested = [
                name
                for name, value in body.items()
                if (entity_set, name) in LINES or isinstance(value, list)
            ]
            if nested:
                # Deep insert is for POST only; an update or upsert takes no related records.
                raise DataverseError(
                    400,
                    PAYLOAD_ERROR,
                    f"Error identified in Payload provided by the user for Entity :'{entity_set}', "
                    "For more information on this error please follow this help link "
                    "https://go.microsoft.com/fwlink/?linkid=2195293  ---->  InnerException : "
                    "Microsoft.OData.ODataException: the collection-valued navigation property "
                    f"'{nested[0]}' cannot be written by an update (PATCH); related rows are "
                    "created with the record in a POST (deep insert).",
                )
        current = store()
        existing = None if ref is None else current.find(entity_set, ref)
        if request.headers.get("if-none-match", "").strip() == "*" and existing is not None:
            raise DataverseError(
                412, DUPLICATE_KEY, "A record with matching key values already exists."
            )
        if request.headers.get("if-match", "").strip() == "*" and existing is None:
            raise DataverseError(
                404, NOT_FOUND, f"{entity_set.rstrip('s')} With Id = {ref} Does Not Exist"
            )
        key: tuple[str, str] = ("", "")
        if ref is not None and existing is None:
            if "=" not in ref:
                raise DataverseError(
                    404, NOT_FOUND, f"{entity_set.rstrip('s')} With Id = {ref} Does Not Exist"
                )
            column, _, value = ref.partition("=")
            key = (column, value)
        if existing is None and isinstance(body, dict):
            alt = ALTERNATE_KEYS.get(entity_set)
            given = body.get(alt) if alt else None
            if given and current.find(entity_set, f"{alt}={given}") is not None:
                raise DataverseError(
                    412, DUPLICATE_KEY, "A record with matching key values already exists."
                )
        record, created = current.write(entity_set, existing, body, key)
        record_id = record[ID_COLUMNS[entity_set]]
        url = f"{_environment(request)}{API_ROOT}/{entity_set}({record_id})"
        headers = {"OData-EntityId": url}
        if _wants_representation(request):
            return json_response(
                current.render(entity_set, record, set()), 201 if created else 200, headers
            )
        return Response(status_code=204, headers=headers)

    async def _cancel(request: Request) -> Response:
        body = await _body(request)
        close = body.get("OrderClose") if isinstance(body, dict) else None
        bind = close.get("salesorderid@odata.bind") if isinstance(close, dict) else None
        match = re.fullmatch(r"/?salesorders\(([^)]+)\)", str(bind))
        if match is None:
            raise DataverseError(400, INVALID_ARGUMENT, "OrderClose must bind salesorderid.")
        order = store().tables["salesorders"].get(match.group(1).lower())
        if order is None:
            raise DataverseError(
                404, NOT_FOUND, f"salesorder With Id = {match.group(1)} Does Not Exist"
            )
        store().cancel_order(order, body.get("Status"))
        order["revsync_cancelreason"] = (
            close.get("description") if isinstance(close, dict) else None
        )
        return Response(status_code=204)

    return router


class PeriodChange(BaseModel):
    """Body of ``POST /_sandbox/dynamics/periods``."""

    model_config = ConfigDict(extra="forbid")

    period: str = Field(pattern=r"^\d{4}-\d{2}$")
    closed: bool = True


def build_control_router(state: SandboxState) -> APIRouter:
    """Sandbox-only routes at ``/_sandbox/dynamics`` (no auth, not Dataverse's API)."""
    router = APIRouter()

    @router.post("/periods")
    async def change_period(change: PeriodChange) -> Response:
        try:
            row = state.dynamics.set_period(change.period, change.closed)
        except KeyError as error:
            return json_response({"detail": str(error.args[0])}, 404)
        return json_response({"period": row["revsync_period"], "status": row["revsync_status"]})

    return router


# -- Microsoft Entra ID: client credentials ------------------------------------------------------


def oauth_server() -> OAuthServer:
    """The token issuer for Dynamics, with the sandbox's app registration."""
    server = OAuthServer(VENDOR, token_lifetime=TOKEN_LIFETIME)
    server.register(OAuthClient(client_id=CLIENT_ID, client_secret=CLIENT_SECRET))
    return server


def _origin(url: str) -> tuple[str, str, int, str]:
    """A URL's scheme, host, port (the default one filled in) and path, for comparing."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, (parts.hostname or "").lower(), port, parts.path.rstrip("/")


def _entra_error(error: str, number: int, description: str, status: int = 400) -> OAuthFailure:
    return OAuthFailure(error, f"AADSTS{number}: {description}", status)


def build_oauth_router(state: SandboxState) -> APIRouter:
    """``POST /<tenant>/oauth2/v2.0/token`` as Entra ID answers the client credentials grant
    with a client secret: form ``client_id``, ``client_secret``, ``grant_type``, ``scope`` =
    ``<environment URL>/.default``. Answers ``{"token_type": "Bearer", "expires_in",
    "ext_expires_in", "access_token"}``; refusals ``{"error", "error_description":
    "AADSTS...", "error_codes"}`` (an unknown tenant 400, an unknown app 400
    ``unauthorized_client``, a wrong secret 401 ``invalid_client``, a scope of another resource
    400 ``invalid_scope``). Fault operation: ``oauth_token``."""
    router = APIRouter()

    @router.post("/{tenant}/oauth2/v2.0/token")
    async def token(tenant: str, request: Request) -> Response:
        server = state.oauth[VENDOR]
        server.token_requests += 1
        faults = VendorFaults(state.faults, VENDOR, _fault_response)
        if (injected := await faults.before("oauth_token")) is not None:
            return injected
        try:
            if tenant != TENANT:
                raise _entra_error("invalid_request", 90002, f"Tenant '{tenant}' not found.")
            form = await read_form(request)
            if form.get("grant_type") != "client_credentials":
                raise _entra_error(
                    "unsupported_grant_type", 70003, "The grant type is not supported."
                )
            client = server.clients.get(form.get("client_id", ""))
            if client is None:
                raise _entra_error(
                    "unauthorized_client", 700016, "Application was not found in the directory."
                )
            if client.client_secret is None or form.get("client_secret") != client.client_secret:
                raise _entra_error(
                    "invalid_client", 7000215, "Invalid client secret provided.", status=401
                )
            environment = str(request.url).split(f"/{tenant}/oauth2/")[0]
            scope = form.get("scope", "")
            if not scope.endswith("/.default") or _origin(scope[: -len("/.default")]) != _origin(
                environment
            ):
                raise _entra_error(
                    "invalid_scope",
                    70011,
                    "The provided value for the input parameter 'scope' is not valid.",
                )
        except OAuthFailure as failure:
            return failure.response()
        lifetime = int(server.token_lifetime)
        return json_response(
            {
                "token_type": "Bearer",
                "expires_in": lifetime,
                "ext_expires_in": lifetime,
                "access_token": server.issue(),
            }
        )

    return router


def revoke_credentials(state: SandboxState) -> None:
    """The app's secret rotated elsewhere: every issued token expires and the secret revsync
    holds is refused (401 ``invalid_client``)."""
    server = state.oauth[VENDOR]
    server.expire_all()
    server.register(OAuthClient(client_id=CLIENT_ID, client_secret="rotated-elsewhere"))
    state.tokens[VENDOR] = f"{VENDOR}-rotated-elsewhere"
