"""Microsoft Dynamics 365 ERP adapter: the Dataverse Web API (OData v4), ``/api/data/v9.2``.

Mapping (the sandbox emulator in ``sandbox/dynamics.py`` speaks the same shapes):

- **Customer**: an ``account`` keyed by the alternate key ``revsync_externalkey`` (the saga's
  ``acct-<CRM account id>``), upserted with ``PATCH /accounts(revsync_externalkey='...')`` and
  ``Prefer: return=representation`` (Dataverse creates or updates); golden fields as in
  :mod:`adapters.erp.dynamics_fields`; the currency as ``transactioncurrencyid@odata.bind``.
  Field updates are ``PATCH /accounts(<id>)`` with ``If-Match: *`` (update only: a missing
  account is a 404, never a new one).
- **Catalog**: ``products`` whose ``productnumber`` is the SKU (``statecode`` 0 active, other
  states retired/draft), ``revsync_billing`` (``recurring`` / ``one_time``); list prices are
  ``productpricelevels`` of the active price list named ``<prefix> <ISO>`` (Dataverse price
  lists are per currency; the prefix is ``REVSYNC_DYNAMICS_PRICE_LIST_PREFIX``, ``List
  Price`` by default). Currencies are ``transactioncurrencies`` by ``isocurrencycode``,
  read once and cached.
- **Sales order**: ``salesorders`` keyed by ``revsync_externalkey``. Dataverse documents
  deep insert (a record and its related records in one request) for ``POST`` only ("Create a
  table row using the Web API"); an upsert ``PATCH`` carrying a collection-valued navigation
  property is refused. So the order is looked up by its key first (``GET
  /salesorders(revsync_externalkey='...')``) and, when absent, created with ``POST
  /salesorders``, the key in the body and the lines deep-inserted in ``order_details`` (the
  collection-valued navigation property of ``salesorderdetail``). A duplicate key answer
  (412 ``0x80040237``: an earlier attempt, whose answer was lost, or a concurrent one made
  it) is the "already exists" signal: that order is read by its key and returned. Updates
  never carry nested collections. Lines bind ``productid`` and ``uomid`` (the product's
  default unit), with ``quantity``, ``priceperunit`` = the list price and
  ``manualdiscountamount`` = list amount minus the net line amount, so Dataverse's
  ``extendedamount`` is exactly the line amount and ``totalamount`` the order total.
  Payment terms go to ``paymenttermscode`` (Dataverse's choices Net 30 = 1, Net 45 = 3,
  Net 60 = 4; revsync's solution adds Due on receipt, Net 15, Net 90 as
  100000000-100000002), the quote to ``revsync_quoteid``.
- **Cancel**: the unbound action ``POST /CancelSalesOrder`` with an ``OrderClose`` activity
  bound to the order and ``Status`` 4 (Canceled: "No Money"); the order is read first and
  returned as is when already canceled (``statecode`` 2), fulfilled (3) or invoiced (4).
- **Listings** page with ``Prefer: odata.maxpagesize=N`` and follow ``@odata.nextLink``
  (the cursor is that link: Dataverse's paging cookie). Reconciliation's windows add
  ``$filter=modifiedon ge <start> and modifiedon lt <end>`` (or ``createdon``) with
  ``Edm.DateTimeOffset`` literals and ``$count=true`` on the first page (Dataverse counts up
  to 5,000 rows: a count of 5,000 means at least that many); keyed lookups use
  ``Microsoft.Dynamics.CRM.In(PropertyName=...,PropertyValues=[...])`` on the alternate
  key and on the quote or invoice column, 100 values a query ("Filter rows", "Query
  functions", Dataverse Web API).
- **Money** is ``Edm.Decimal``: parsed as :class:`~decimal.Decimal` (never float), sent as
  exact JSON numbers; Dataverse refuses more decimals than the currency's precision.

Invoice-to-revenue. Dataverse (the Sales app) has ``invoices`` but no receivables ledger,
payments, credit notes or general ledger: those live in Dynamics 365 Finance, whose OData
entities (``CustomerPaymentJournalLines`` with their settled invoices, ``LedgerJournalHeaders``
/ ``LedgerJournalLines`` of a general journal, free text credit notes) only stage *unposted*
journals: posting is a Finance batch or form action, not an OData operation, so a payment
would not lower what the invoice owes until someone posts it, and the port needs that at
once (a reversal after a payment must be refused, a second payment must see nothing due).
revsync therefore keeps them in Dataverse tables its solution adds (``revsync_``), whose
plug-ins apply at once the rules a subledger applies, and which dual-write or a Finance
integration carries to those journals (payment -> customer payment journal line settled
against the invoice; credit note -> free text credit note; revenue journal -> general journal
line, ledger account 2400 against 4000):

- **Receivable**: an ``invoice`` keyed by ``revsync_externalkey``, looked up by its key and
  created like the sales order (``POST /invoices``, deep insert of ``invoice_details``; a
  duplicate key reads the existing one), lines in ``invoice_details``: the product,
  quantity 1, ``priceperunit`` = the net line amount with ``ispriceoverridden`` (billing
  priced it), ``tax`` = the line's tax,
  ``revsync_lineid`` = the billing line id, ``revsync_servicestart``/``revsync_serviceend``
  (end exclusive, as billing has it). ``revsync_invoiceid`` is the billing invoice,
  ``revsync_issuedate``/``duedate`` its dates. The solution keeps ``revsync_amountpaid``,
  ``revsync_amountcredited`` and ``revsync_amountdue`` and the state: Active while something
  is due, Paid (``statecode`` 2) when payments settled it, Canceled (3) when credits did.
- **Payment**: a ``revsync_payment`` keyed by ``revsync_key`` (the billing payment id) bound
  to the invoice; the plug-in applies it up to what is due (``revsync_applied``, the rest
  ``revsync_unapplied``) and refuses one when nothing is due.
- **Credit / reversal**: a ``revsync_creditnote`` keyed by ``revsync_key`` with lines
  (``revsync_creditnote_lines``) bound to the invoice lines, each crediting ``revsync_amount``
  and ``revsync_tax``; a reversal credits what is left of every line. Checked here before
  sending and by the plug-in: no more than is left of a line, nor than the invoice owes.
- **Revenue journal**: a ``revsync_revenuejournal`` keyed by ``revsync_key`` (the schedule
  entry id, which may hold ``/``: these keys travel in ``$filter``, never in a URL segment),
  moving ``revsync_amount`` from ``revsync_debitaccount`` to ``revsync_creditaccount``
  (deferred revenue to revenue; the reverse for a negative entry) in ``revsync_period``. The
  period is read first from ``revsync_fiscalperiods`` (``revsync_status`` Open / Closed, kept
  in step with Finance's ledger calendar): closed is ``PERIOD_CLOSED``, missing ``NO_PERIOD``.
- These keyed creates ``POST`` with the key in the body after a ``$filter`` look-up; a 412
  ``0x80040237`` (the alternate key exists: a lost answer's record) reads the first one and
  returns it.

Errors are ``{"error": {"code": "0x8004....", "message": ...}}``: 429 (service protection,
``0x80072322``/``0x80072321``/``0x80072326``) is transient with ``Retry-After``; 401 (no body,
``WWW-Authenticate: Bearer``) is a transient auth failure after one token refresh; 5xx and 408
transient; 404 not found; other 4xx (400, 403, 412) rejected with the hex code.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import SplitResult, urlsplit
from urllib.parse import quote as url_quote

import httpx

from adapters.erp.dynamics_fields import (
    CREDIT_LIMIT_COLUMN,
    CURRENCY_COLUMN,
    SELECT,
    account_update,
    address_columns,
    changes_from_account,
)
from adapters.errors import (
    NotFoundError,
    RejectedError,
    Throttle,
    UnknownOutcomeError,
    VendorError,
    enforce,
)
from adapters.http import VendorHttp, decode_json, vendor_error, vendor_number
from adapters.oauth import AuthorizedHttp, TokenSource
from domain import receivable_rules as rules
from domain.catalog import CatalogItem
from domain.customer import Customer
from domain.customer_master import FieldValue, MasterField
from domain.invoice import Invoice as FinalizedInvoice
from domain.invoice import SubscriptionLine
from domain.master_contracts import golden_id_from_erp
from domain.money import quantize
from domain.order import SalesOrder, SalesOrderDraft, SalesOrderStatus
from domain.quote import BillingType, PaymentTerms
from domain.receivable import (
    CreditLine,
    CreditPosting,
    JournalPosting,
    PaymentApplication,
    PaymentPosting,
    Receivable,
    ReceivableCredit,
    ReceivableState,
    RevenueJournal,
)
from domain.reconciliation import (
    Basis,
    CustomerRecord,
    InvoiceRecord,
    OrderRecord,
    Page,
    System,
    Window,
    fingerprints,
    invoice_of_key,
    receivable_key,
)

VENDOR = "dynamics"
ERP = "Dynamics"  # how messages name it
API_PATH = "/api/data/v9.2"
MAX_PAGE_SIZE = 5000
# Values per In(...) lookup, and the most Dataverse counts.
LOOKUP_BATCH = 100
MAX_COUNT = 5000
SALES_ORDER_SELECT = (
    "salesorderid,revsync_externalkey,revsync_quoteid,_customerid_value,"
    "totalamount,_transactioncurrencyid_value,statecode,createdon,modifiedon"
)
RECEIVABLE_SELECT = (
    "invoiceid,revsync_externalkey,revsync_invoiceid,totalamount,"
    "revsync_amountdue,_transactioncurrencyid_value,createdon,modifiedon"
)


def _window_filter(window: Window) -> str:
    column = "modifiedon" if window.basis is Basis.CHANGED else "createdon"
    start = window.start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = window.end.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{column} ge {start} and {column} lt {end}"


def _stamp(row: Mapping[str, Any], column: str) -> datetime | None:
    text = row.get(column)
    if not isinstance(text, str) or not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# Service protection limits: number of requests, execution time, concurrent requests.
THROTTLE_CODES = frozenset({"0x80072322", "0x80072321", "0x80072326"})
DUPLICATE_KEY = "0x80040237"

# salesorder statecode
ORDER_CANCELED, ORDER_FULFILLED, ORDER_INVOICED = 2, 3, 4
CANCELED_STATUS = 4  # statuscode "No Money", the Canceled state's status

PAYMENT_TERMS: dict[PaymentTerms, int] = {
    PaymentTerms.NET30: 1,
    PaymentTerms.NET45: 3,
    PaymentTerms.NET60: 4,
    PaymentTerms.DUE_ON_RECEIPT: 100000000,
    PaymentTerms.NET15: 100000001,
    PaymentTerms.NET90: 100000002,
}
DEFERRED_REVENUE_ACCOUNT = "2400"
REVENUE_ACCOUNT = "4000"
PRICE_LIST_PREFIX = "List Price"

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_SKU = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def classify_dynamics(operation: str, response: httpx.Response) -> VendorError:
    """What a Dataverse error answer means for revsync (see the module docstring)."""
    status = response.status_code
    try:
        body = decode_json(response)
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    code = message = None
    if isinstance(error, dict):
        code = str(error["code"]) if error.get("code") is not None else None
        message = str(error["message"]) if error.get("message") is not None else None
    if message is None:
        text = response.text.strip()
        message = text[:300] if text else response.reason_phrase or f"HTTP {status}"
    if status == 429 or code in THROTTLE_CODES:
        message = f"throttled by Dataverse service protection limits: {message}"
        return vendor_error(
            VENDOR,
            operation,
            response,
            message,
            code,
            transient=True,
            throttle=Throttle.rate("Dataverse service protection limit"),
        )
    if status == 401:
        challenge = response.headers.get("www-authenticate", "")
        message = f"Dataverse refused the access token ({challenge or message})"
        return vendor_error(VENDOR, operation, response, message, code, transient=True)
    transient = status >= 500 or status == 408
    return vendor_error(VENDOR, operation, response, message, code, transient=transient)


def is_duplicate_key(error: RejectedError) -> bool:
    """Whether Dataverse refused a create because a record with its alternate key exists
    (412, ``0x80040237``): the "already exists" signal of a keyed create."""
    return error.status == 412 or error.code == DUPLICATE_KEY


def odata_string(value: str) -> str:
    """``value`` as an OData string literal."""
    return "'" + value.replace("'", "''") + "'"


def key_segment(column: str, value: str) -> str:
    """An alternate-key segment, ``(column='value')``, percent-encoded for a URL path."""
    return f"({column}={url_quote(odata_string(value), safe=chr(39))})"


def _guid(value: str, what: str, operation: str) -> str:
    if not _GUID.fullmatch(value):
        raise NotFoundError(VENDOR, operation, f"{value!r} is not a Dataverse {what} id")
    return value.lower()


def _decimal(value: Any, what: str, operation: str) -> Decimal:
    return vendor_number(VENDOR, operation, value, what)


def _in(column: str, values: Iterable[str]) -> str:
    listed = ",".join(odata_string(v) for v in values)
    return f"Microsoft.Dynamics.CRM.In(PropertyName='{column}',PropertyValues=[{listed}])"


def order_status(statecode: Any) -> SalesOrderStatus:
    if statecode == ORDER_CANCELED:
        return SalesOrderStatus.CANCELLED
    if statecode in (ORDER_FULFILLED, ORDER_INVOICED):
        return SalesOrderStatus.CLOSED
    return SalesOrderStatus.PENDING_FULFILLMENT


class DynamicsErp:
    """:class:`adapters.ports.ErpPort` on the Dataverse Web API of Dynamics 365."""

    vendor = VENDOR

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        tokens: TokenSource,
        price_list_prefix: str = PRICE_LIST_PREFIX,
        deferred_revenue_account: str = DEFERRED_REVENUE_ACCOUNT,
        revenue_account: str = REVENUE_ACCOUNT,
    ) -> None:
        self._http = AuthorizedHttp(
            VendorHttp(VENDOR, http, classify_dynamics), tokens, classify=classify_dynamics
        )
        self._api = base_url.rstrip("/") + API_PATH
        self.price_list_prefix = price_list_prefix
        self.deferred_revenue_account = deferred_revenue_account
        self.revenue_account = revenue_account
        self._currency_ids: dict[str, str] = {}
        self._currency_codes: dict[str, str] = {}
        self._price_lists: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"DynamicsErp(api={self._api!r})"

    # -- plumbing ---------------------------------------------------------------------------

    async def _request(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        ok: tuple[int, ...] = (200, 201, 204),
    ) -> httpx.Response:
        url = path if path.startswith("http") else f"{self._api}/{path}"
        return await self._http.request(
            operation,
            method,
            url,
            ok=ok,
            json_body=json_body,
            params=params,
            headers={
                "Accept": "application/json",
                "OData-MaxVersion": "4.0",
                "OData-Version": "4.0",
                **(headers or {}),
            },
        )

    async def _record(
        self, operation: str, path: str, params: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        record = decode_json(await self._request(operation, "GET", path, params=params))
        if not isinstance(record, dict):
            raise UnknownOutcomeError(VENDOR, operation, "the answer is not a record")
        return record

    async def _find(
        self, operation: str, path: str, params: Mapping[str, str] | None = None
    ) -> dict[str, Any] | None:
        try:
            return await self._record(operation, path, params)
        except NotFoundError:
            return None

    async def _page(
        self,
        operation: str,
        path: str,
        params: Mapping[str, str] | None,
        page_size: int,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of a collection and its ``@odata.nextLink`` (None after the last)."""
        size = min(max(page_size, 1), MAX_PAGE_SIZE)
        response = await self._request(
            operation,
            "GET",
            path,
            params=None if path.startswith("http") else params,
            headers={"Prefer": f"odata.maxpagesize={size}"},
        )
        body = decode_json(response)
        if not isinstance(body, dict) or not isinstance(body.get("value"), list):
            raise UnknownOutcomeError(VENDOR, operation, "a collection answer without value")
        rows = [row for row in body["value"] if isinstance(row, dict)]
        link = body.get("@odata.nextLink")
        return rows, str(link) if link else None

    async def _all(
        self, operation: str, entity_set: str, params: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        rows, link = await self._page(operation, entity_set, params, MAX_PAGE_SIZE)
        while link is not None:
            more, link = await self._page(operation, link, None, MAX_PAGE_SIZE)
            rows.extend(more)
        return rows

    def _cursor(self, cursor: str, operation: str) -> str:
        """A nextLink of this environment's Web API (a cursor is never sent elsewhere)."""
        ours, theirs = urlsplit(self._api), urlsplit(cursor)

        def where(parts: SplitResult) -> tuple[str, str, int]:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            return parts.scheme, (parts.hostname or "").lower(), port

        if where(ours) != where(theirs) or not theirs.path.startswith(ours.path + "/"):
            raise RejectedError(
                VENDOR, operation, f"{cursor!r} is not a Dataverse nextLink", code="INVALID_CURSOR"
            )
        return cursor

    async def _listing(
        self,
        operation: str,
        entity_set: str,
        params: Mapping[str, str],
        cursor: str | None,
        page_size: int,
    ) -> tuple[list[dict[str, Any]], str | None]:
        path = entity_set if cursor is None else self._cursor(cursor, operation)
        return await self._page(operation, path, params, page_size)

    async def _create(
        self,
        operation: str,
        entity_set: str,
        body: dict[str, Any],
        *,
        again: str,
        again_params: Mapping[str, str] | None = None,
        by_filter: bool = False,
    ) -> dict[str, Any]:
        """A keyed create (``POST``, the key in the body, related records deep-inserted)
        answering the record; a duplicate key (412 ``0x80040237``) means an earlier or
        concurrent attempt made it: read (``again``) and returned."""
        try:
            response = await self._request(
                operation,
                "POST",
                entity_set,
                json_body=body,
                headers={"Prefer": "return=representation"},
                ok=(200, 201),
            )
        except RejectedError as error:
            if not is_duplicate_key(error):
                raise
            found: dict[str, Any] | None
            if by_filter:
                rows = await self._all(operation, again, dict(again_params or {}))
                found = rows[0] if rows else None
            else:
                found = await self._find(operation, again, again_params)
            if found is None:
                raise
            return found
        record = decode_json(response)
        if not isinstance(record, dict):
            raise UnknownOutcomeError(VENDOR, operation, "the create answered no record")
        return record

    # -- reference data ---------------------------------------------------------------------

    async def _load_currencies(self, operation: str) -> None:
        rows = await self._all(
            operation,
            "transactioncurrencies",
            {"$select": "transactioncurrencyid,isocurrencycode"},
        )
        self._currency_ids = {
            str(r["isocurrencycode"]).upper(): str(r["transactioncurrencyid"]) for r in rows
        }
        self._currency_codes = {v: k for k, v in self._currency_ids.items()}

    async def _currency_id(self, code: str, operation: str) -> str:
        if code not in self._currency_ids:
            await self._load_currencies(operation)
        if code not in self._currency_ids:
            raise RejectedError(
                VENDOR,
                operation,
                f"currency {code} is not a transaction currency of this environment",
                code="UNKNOWN_CURRENCY",
            )
        return self._currency_ids[code]

    async def _currency_code(self, currency_id: Any, operation: str) -> str:
        key = str(currency_id)
        if key not in self._currency_codes:
            await self._load_currencies(operation)
        if key not in self._currency_codes:
            raise RejectedError(
                VENDOR, operation, f"transaction currency {key} is unknown", code="UNKNOWN_CURRENCY"
            )
        return self._currency_codes[key]

    async def _load_price_lists(self, operation: str) -> None:
        rows = await self._all(
            operation,
            "pricelevels",
            {
                "$select": "pricelevelid,name,_transactioncurrencyid_value",
                "$filter": "statecode eq 0",
            },
        )
        lists: dict[str, str] = {}
        for row in rows:
            currency_id = row.get("_transactioncurrencyid_value")
            if currency_id is None:
                continue
            code = await self._currency_code(currency_id, operation)
            if str(row.get("name")) == f"{self.price_list_prefix} {code}":
                lists[code] = str(row["pricelevelid"])
        self._price_lists = lists

    async def _price_list(self, code: str, operation: str) -> str:
        if code not in self._price_lists:
            await self._load_price_lists(operation)
        if code not in self._price_lists:
            raise RejectedError(
                VENDOR,
                operation,
                f"no active price list named {self.price_list_prefix!r} {code}",
                code="NO_PRICE_LIST",
            )
        return self._price_lists[code]

    # -- catalog ----------------------------------------------------------------------------

    async def _products(self, skus: Iterable[str], operation: str) -> dict[str, dict[str, Any]]:
        wanted = sorted(set(skus))
        for sku in wanted:
            if not _SKU.fullmatch(sku):
                raise RejectedError(
                    VENDOR, operation, f"not a valid SKU: {sku!r}", code="INVALID_SKU"
                )
        if not wanted:
            return {}
        rows = await self._all(
            operation,
            "products",
            {
                "$select": "productid,productnumber,name,statecode,revsync_billing,"
                "_defaultuomid_value",
                "$filter": _in("productnumber", wanted),
            },
        )
        return {str(r["productnumber"]): r for r in rows if str(r.get("productnumber")) in wanted}

    async def _sellable(self, skus: list[str], operation: str) -> dict[str, dict[str, Any]]:
        products = await self._products(skus, operation)
        missing = sorted(set(skus) - products.keys())
        if missing:
            raise RejectedError(
                VENDOR,
                operation,
                f"products not in the Dynamics catalog: {', '.join(missing)}",
                code="UNKNOWN_ITEM",
            )
        return products

    async def get_catalog_items(self, skus: list[str]) -> dict[str, CatalogItem]:
        operation = "get_catalog_items"
        products = await self._products(skus, operation)
        if not products:
            return {}
        await self._load_price_lists(operation)
        by_list = {list_id: code for code, list_id in self._price_lists.items()}
        price_rows = await self._all(
            operation,
            "productpricelevels",
            {
                "$select": "_productid_value,_pricelevelid_value,amount",
                "$filter": _in("productid", [str(p["productid"]) for p in products.values()]),
            },
        )
        prices: dict[str, dict[str, Decimal]] = {}
        for row in price_rows:
            code = by_list.get(str(row.get("_pricelevelid_value")))
            if code is None or row.get("amount") is None:
                continue
            prices.setdefault(str(row["_productid_value"]), {})[code] = _decimal(
                row["amount"], "list price", operation
            )
        items: dict[str, CatalogItem] = {}
        for sku, row in products.items():
            value = str(row.get("revsync_billing") or "").strip().lower()
            try:
                billing = BillingType(value)
            except ValueError:
                raise RejectedError(
                    VENDOR,
                    operation,
                    f"product {sku} has no valid revsync_billing (recurring or one_time, got "
                    f"{value!r})",
                    code="INVALID_CATALOG_ITEM",
                ) from None
            items[sku] = CatalogItem(
                sku=sku,
                item_id=str(row["productid"]),
                name=str(row.get("name") or sku),
                billing=billing,
                prices=prices.get(str(row["productid"]), {}),
                active=row.get("statecode") == 0,
            )
        return items

    # -- customers --------------------------------------------------------------------------

    async def upsert_customer(self, customer: Customer, external_id: str) -> str:
        operation = "upsert_customer"
        body: dict[str, Any] = {
            "name": customer.name,
            "revsync_legalname": customer.legal_entity,
            "emailaddress1": customer.email,
            "revsync_taxid": customer.tax_id,
            **address_columns(customer.billing_address),
        }
        if customer.currency:
            currency_id = await self._currency_id(customer.currency, operation)
            body["transactioncurrencyid@odata.bind"] = f"/transactioncurrencies({currency_id})"
        response = await self._request(
            operation,
            "PATCH",
            "accounts" + key_segment("revsync_externalkey", external_id),
            json_body=body,
            headers={"Prefer": "return=representation"},
            ok=(200, 201),
        )
        record = decode_json(response)
        if not isinstance(record, dict) or not record.get("accountid"):
            raise UnknownOutcomeError(VENDOR, operation, "the upsert answered no account")
        return str(record["accountid"])

    async def find_customer(self, external_id: str) -> str | None:
        record = await self._find(
            "find_customer",
            "accounts" + key_segment("revsync_externalkey", external_id),
            {"$select": "accountid"},
        )
        return None if record is None else str(record["accountid"])

    async def update_customer_fields(
        self, customer_id: str, changes: Mapping[MasterField, FieldValue], idempotency_key: str
    ) -> None:
        """PATCH the golden columns (update only). The same values again change nothing, so
        a retry is harmless; Dataverse takes no idempotency key."""
        operation = "update_customer_fields"
        ref = _guid(customer_id, "account", operation)
        try:
            body = account_update(changes)
        except ValueError as error:
            raise RejectedError(VENDOR, operation, str(error), code="NOT_WRITABLE") from None
        await self._request(
            operation, "PATCH", f"accounts({ref})", json_body=body, headers={"If-Match": "*"}
        )

    # -- sales orders -----------------------------------------------------------------------

    async def _to_sales_order(self, record: dict[str, Any], operation: str) -> SalesOrder:
        return SalesOrder(
            order_id=str(record["salesorderid"]),
            external_id=str(record.get("revsync_externalkey") or ""),
            customer_id=str(record.get("_customerid_value") or ""),
            currency=await self._currency_code(record.get(CURRENCY_COLUMN), operation),
            total=_decimal(record.get("totalamount"), "sales order total", operation),
            status=order_status(record.get("statecode")),
        )

    async def find_sales_order(self, external_id: str) -> SalesOrder | None:
        operation = "find_sales_order"
        record = await self._find(
            operation, "salesorders" + key_segment("revsync_externalkey", external_id)
        )
        return None if record is None else await self._to_sales_order(record, operation)

    async def _order_body(self, draft: SalesOrderDraft, customer_id: str) -> dict[str, Any]:
        operation = "create_sales_order"
        enforce(VENDOR, operation, draft.unbookable())
        products = await self._sellable([line.sku for line in draft.lines], operation)
        currency_id = await self._currency_id(draft.currency, operation)
        lines = []
        for line in draft.lines:
            product = products[line.sku]
            listed = quantize(line.quantity * line.unit_price, draft.currency)
            lines.append(
                {
                    "productid@odata.bind": f"/products({product['productid']})",
                    "uomid@odata.bind": f"/uoms({product['_defaultuomid_value']})",
                    "quantity": line.quantity,
                    "priceperunit": line.unit_price,
                    "ispriceoverridden": False,
                    "manualdiscountamount": listed - line.amount,
                    "description": line.description[:2000],
                }
            )
        account = _guid(customer_id, "account", operation)
        price_list = await self._price_list(draft.currency, operation)
        return {
            "name": f"Quote {draft.quote_id}"[:300],
            "revsync_quoteid": draft.quote_id,
            "description": f"{draft.memo} (ordered {draft.order_date.isoformat()})"[:2000],
            "customerid_account@odata.bind": f"/accounts({account})",
            "transactioncurrencyid@odata.bind": f"/transactioncurrencies({currency_id})",
            "pricelevelid@odata.bind": f"/pricelevels({price_list})",
            "paymenttermscode": PAYMENT_TERMS[draft.payment_terms],
            "order_details": lines,
        }

    async def create_sales_order(self, draft: SalesOrderDraft, customer_id: str) -> SalesOrder:
        operation = "create_sales_order"
        existing = await self.find_sales_order(draft.external_id)
        if existing is not None:
            return existing
        body = {
            "revsync_externalkey": draft.external_id,
            **await self._order_body(draft, customer_id),
        }
        path = "salesorders" + key_segment("revsync_externalkey", draft.external_id)
        record = await self._create(operation, "salesorders", body, again=path)
        return await self._to_sales_order(record, operation)

    async def cancel_sales_order(self, order_id: str, reason: str) -> SalesOrder:
        operation = "cancel_sales_order"
        path = f"salesorders({_guid(order_id, 'sales order', operation)})"
        record = await self._record(operation, path)
        if order_status(record.get("statecode")) is not SalesOrderStatus.PENDING_FULFILLMENT:
            return await self._to_sales_order(record, operation)
        action = {
            "OrderClose": {
                "subject": f"Canceled by revsync: {reason}"[:200],
                "description": reason[:2000],
                "salesorderid@odata.bind": f"/salesorders({order_id.lower()})",
            },
            "Status": CANCELED_STATUS,
        }
        try:
            await self._request(operation, "POST", "CancelSalesOrder", json_body=action)
        except RejectedError:
            # A concurrent cancel won the race: done. Anything else stands.
            again = await self._record(operation, path)
            if again.get("statecode") != ORDER_CANCELED:
                raise
            return await self._to_sales_order(again, operation)
        return await self._to_sales_order(await self._record(operation, path), operation)

    # -- reconciliation listings ------------------------------------------------------------

    async def _window_listing(
        self,
        operation: str,
        entity_set: str,
        select: str,
        order: str,
        cursor: str | None,
        page_size: int,
        window: Window | None,
    ) -> tuple[list[dict[str, Any]], str | None, int | None]:
        params = {"$select": select, "$orderby": order}
        if window is not None:
            params["$filter"] = _window_filter(window)
            params["$count"] = "true"
        path = entity_set if cursor is None else self._cursor(cursor, operation)
        size = min(max(page_size, 1), MAX_PAGE_SIZE)
        response = await self._request(
            operation,
            "GET",
            path,
            params=None if cursor is not None else params,
            headers={"Prefer": f"odata.maxpagesize={size}"},
        )
        body = decode_json(response)
        if not isinstance(body, dict) or not isinstance(body.get("value"), list):
            raise UnknownOutcomeError(VENDOR, operation, "a collection answer without value")
        rows = [row for row in body["value"] if isinstance(row, dict)]
        link = body.get("@odata.nextLink")
        count = body.get("@odata.count") if cursor is None else None
        total = None if not isinstance(count, int) else (count if count < MAX_COUNT else count + 1)
        return rows, (str(link) if link else None), total

    async def _lookup(
        self, operation: str, entity_set: str, select: str, keys: dict[str, list[str]]
    ) -> list[dict[str, Any]]:
        """Rows whose column holds one of its values (``In``, 100 values a query)."""
        id_column = entity_set.removesuffix("s") + "id"
        found: dict[str, dict[str, Any]] = {}
        for column, values in keys.items():
            for start in range(0, len(values), LOOKUP_BATCH):
                batch = values[start : start + LOOKUP_BATCH]
                if batch:
                    params = {"$select": select, "$filter": _in(column, batch)}
                    for row in await self._all(operation, entity_set, params):
                        found[str(row.get(id_column))] = row
        return list(found.values())

    async def list_sales_orders(
        self, cursor: str | None, page_size: int, *, window: Window | None = None
    ) -> Page[OrderRecord]:
        operation = "list_sales_orders"
        rows, link, total = await self._window_listing(
            operation,
            "salesorders",
            SALES_ORDER_SELECT,
            "createdon asc,salesorderid asc",
            cursor,
            page_size,
            window,
        )
        return Page(items=await self._order_records(rows, operation), cursor=link, total=total)

    async def lookup_sales_orders(self, quote_ids: list[str]) -> list[OrderRecord]:
        operation = "lookup_sales_orders"
        rows = await self._lookup(
            operation,
            "salesorders",
            SALES_ORDER_SELECT,
            {
                "revsync_externalkey": [f"q2c-{q}:erp-order" for q in quote_ids],
                "revsync_quoteid": list(quote_ids),
            },
        )
        return await self._order_records(rows, operation)

    async def _order_records(self, rows: list[dict[str, Any]], operation: str) -> list[OrderRecord]:
        items = []
        for row in rows:
            status = order_status(row.get("statecode"))
            currency = row.get(CURRENCY_COLUMN)
            items.append(
                OrderRecord(
                    system=System.ERP,
                    record_id=str(row["salesorderid"]),
                    key=row.get("revsync_externalkey") or None,
                    quote_ref=row.get("revsync_quoteid") or None,
                    customer_id=row.get("_customerid_value") or None,
                    amount=None
                    if row.get("totalamount") is None
                    else _decimal(row["totalamount"], "sales order total", operation),
                    currency=None
                    if currency is None
                    else await self._currency_code(currency, operation),
                    status=status.value,
                    live=status is not SalesOrderStatus.CANCELLED,
                    created_at=_stamp(row, "createdon"),
                    changed_at=_stamp(row, "modifiedon"),
                )
            )
        return items

    async def list_customers(
        self, cursor: str | None, page_size: int, *, window: Window | None = None
    ) -> Page[CustomerRecord]:
        operation = "list_customers"
        rows, link, total = await self._window_listing(
            operation,
            "accounts",
            ",".join((*SELECT, "createdon", "modifiedon")),
            "createdon asc,accountid asc",
            cursor,
            page_size,
            window,
        )
        return Page(items=await self._customer_records(rows, operation), cursor=link, total=total)

    async def lookup_customers(self, account_ids: list[str]) -> list[CustomerRecord]:
        operation = "lookup_customers"
        rows = await self._lookup(
            operation,
            "accounts",
            ",".join((*SELECT, "createdon", "modifiedon")),
            {"revsync_externalkey": [f"acct-{a}" for a in account_ids]},
        )
        return await self._customer_records(rows, operation)

    async def _customer_records(
        self, rows: list[dict[str, Any]], operation: str
    ) -> list[CustomerRecord]:
        items = []
        for row in rows:
            currency_id = row.get(CURRENCY_COLUMN)
            currency = (
                await self._currency_code(currency_id, operation)
                if currency_id is not None and row.get(CREDIT_LIMIT_COLUMN) is not None
                else None
            )
            key = row.get("revsync_externalkey")
            items.append(
                CustomerRecord(
                    system=System.ERP,
                    record_id=str(row["accountid"]),
                    account_id=golden_id_from_erp(key) if key else None,
                    fields=fingerprints(changes_from_account(row, currency)),
                    created_at=_stamp(row, "createdon"),
                    changed_at=_stamp(row, "modifiedon"),
                )
            )
        return items

    async def list_receivables(
        self, cursor: str | None, page_size: int, *, window: Window | None = None
    ) -> Page[InvoiceRecord]:
        operation = "list_receivables"
        rows, link, total = await self._window_listing(
            operation,
            "invoices",
            RECEIVABLE_SELECT,
            "createdon asc,invoiceid asc",
            cursor,
            page_size,
            window,
        )
        return Page(items=await self._receivable_records(rows, operation), cursor=link, total=total)

    async def lookup_receivables(self, invoice_ids: list[str]) -> list[InvoiceRecord]:
        operation = "lookup_receivables"
        rows = await self._lookup(
            operation,
            "invoices",
            RECEIVABLE_SELECT,
            {
                "revsync_externalkey": [receivable_key(i) for i in invoice_ids],
                "revsync_invoiceid": list(invoice_ids),
            },
        )
        return await self._receivable_records(rows, operation)

    async def _receivable_records(
        self, rows: list[dict[str, Any]], operation: str
    ) -> list[InvoiceRecord]:
        items = []
        for row in rows:
            key = row.get("revsync_externalkey") or None
            invoice_id = invoice_of_key(key) or row.get("revsync_invoiceid")
            if not invoice_id or row.get(CURRENCY_COLUMN) is None:
                continue
            due = _decimal(row.get("revsync_amountdue", 0), "amount due", operation)
            items.append(
                InvoiceRecord(
                    system=System.ERP,
                    record_id=str(row["invoiceid"]),
                    invoice_id=str(invoice_id),
                    key=key,
                    amount=_decimal(row.get("totalamount"), "invoice total", operation),
                    currency=await self._currency_code(row[CURRENCY_COLUMN], operation),
                    amount_due=due,
                    status="open" if due > 0 else "closed",
                    created_at=_stamp(row, "createdon"),
                    changed_at=_stamp(row, "modifiedon"),
                )
            )
        return items

    # -- receivables ------------------------------------------------------------------------

    async def _credit_notes(self, invoice_id: str, operation: str) -> list[dict[str, Any]]:
        return await self._all(
            operation,
            "revsync_creditnotes",
            {
                "$filter": f"_revsync_invoiceid_value eq {invoice_id}",
                "$expand": "revsync_creditnote_lines",
            },
        )

    async def _receivable(
        self,
        record: dict[str, Any],
        operation: str,
        notes: list[dict[str, Any]] | None = None,
    ) -> Receivable:
        invoice_id = str(record["invoiceid"])
        if notes is None:
            notes = await self._credit_notes(invoice_id, operation)
        paid = _decimal(record.get("revsync_amountpaid", 0), "amount paid", operation)
        credited = _decimal(record.get("revsync_amountcredited", 0), "amount credited", operation)
        due = _decimal(record.get("revsync_amountdue", 0), "amount due", operation)
        state = ReceivableState.of(due, paid, credited)
        try:
            issued = date.fromisoformat(str(record.get("revsync_issuedate")))
            due_date = date.fromisoformat(str(record.get("duedate") or issued.isoformat()))
        except ValueError:
            raise RejectedError(
                VENDOR, operation, f"invoice {invoice_id} has no valid issue or due date"
            ) from None
        return Receivable(
            receivable_id=invoice_id,
            external_id=str(record.get("revsync_externalkey") or ""),
            invoice_id=str(record["revsync_invoiceid"])
            if record.get("revsync_invoiceid")
            else None,
            customer_id=str(record.get("_customerid_value") or ""),
            currency=await self._currency_code(record.get(CURRENCY_COLUMN), operation),
            total=_decimal(record.get("totalamount"), "invoice total", operation),
            tax=_decimal(record.get("totaltax", 0), "invoice tax", operation),
            amount_paid=paid,
            amount_credited=credited,
            amount_due=due,
            issue_date=issued,
            due_date=due_date,
            state=state,
            reversal_ids=tuple(str(n["revsync_creditnoteid"]) for n in notes),
        )

    async def find_receivable(self, external_id: str) -> Receivable | None:
        operation = "find_receivable"
        record = await self._find(
            operation, "invoices" + key_segment("revsync_externalkey", external_id)
        )
        return None if record is None else await self._receivable(record, operation)

    async def _receivable_body(self, invoice: FinalizedInvoice, customer_id: str) -> dict[str, Any]:
        operation = "post_receivable"
        enforce(VENDOR, operation, rules.unpostable(invoice, ERP))
        products = await self._sellable([line.sku for line in invoice.lines], operation)
        lines = []
        for line in invoice.lines:
            product = products[line.sku]
            entry: dict[str, Any] = {
                "productid@odata.bind": f"/products({product['productid']})",
                "uomid@odata.bind": f"/uoms({product['_defaultuomid_value']})",
                "quantity": 1,
                "priceperunit": line.amount,
                "ispriceoverridden": True,
                "tax": line.tax_amount,
                "description": (line.description or line.sku)[:2000],
                "revsync_lineid": line.line_id,
            }
            if isinstance(line, SubscriptionLine):
                entry["revsync_servicestart"] = line.service_start.isoformat()
                entry["revsync_serviceend"] = line.service_end.isoformat()
            lines.append(entry)
        currency_id = await self._currency_id(invoice.currency, operation)
        price_list = await self._price_list(invoice.currency, operation)
        account = _guid(customer_id, "account", operation)
        return {
            "name": f"Invoice {invoice.invoice_id}"[:300],
            "revsync_invoiceid": invoice.invoice_id,
            "revsync_issuedate": invoice.issue_date.isoformat(),
            "duedate": invoice.due_date.isoformat(),
            "customerid_account@odata.bind": f"/accounts({account})",
            "transactioncurrencyid@odata.bind": f"/transactioncurrencies({currency_id})",
            "pricelevelid@odata.bind": f"/pricelevels({price_list})",
            "invoice_details": lines,
        }

    async def post_receivable(
        self, invoice: FinalizedInvoice, customer_id: str, external_id: str
    ) -> Receivable:
        operation = "post_receivable"
        path = "invoices" + key_segment("revsync_externalkey", external_id)
        record = await self._find(operation, path)
        if record is None:
            body = {
                "revsync_externalkey": external_id,
                **await self._receivable_body(invoice, customer_id),
            }
            record = await self._create(operation, "invoices", body, again=path)
        receivable = await self._receivable(record, operation)
        enforce(VENDOR, operation, rules.other_invoice(receivable, invoice, external_id))
        return receivable

    async def _invoice(
        self, receivable_id: str, operation: str, *, lines: bool = False
    ) -> dict[str, Any]:
        ref = _guid(receivable_id, "invoice", operation)
        params = {"$expand": "invoice_details"} if lines else None
        return await self._record(operation, f"invoices({ref})", params)

    async def _keyed(
        self, operation: str, entity_set: str, key: str, expand: str | None = None
    ) -> dict[str, Any] | None:
        params = {"$filter": f"revsync_key eq {odata_string(key)}"}
        if expand:
            params["$expand"] = expand
        rows = await self._all(operation, entity_set, params)
        return rows[0] if rows else None

    async def _keyed_create(
        self,
        operation: str,
        entity_set: str,
        key: str,
        body: dict[str, Any],
        expand: str | None = None,
    ) -> dict[str, Any]:
        params = {"$filter": f"revsync_key eq {odata_string(key)}"}
        if expand:
            params["$expand"] = expand
        record = await self._create(
            operation,
            entity_set,
            body,
            again=entity_set,
            again_params=params,
            by_filter=True,
        )
        if expand and expand not in record:
            found = await self._keyed(operation, entity_set, key, expand)
            if found is not None:
                return found
        return record

    # -- revenue journals -------------------------------------------------------------------

    async def _open_period(self, period: str, operation: str, what: str) -> None:
        rows = await self._all(
            operation,
            "revsync_fiscalperiods",
            {"$filter": f"revsync_period eq {odata_string(period)}"},
        )
        if not rows:
            raise RejectedError(
                VENDOR, operation, f"no fiscal period {period} for {what}", code="NO_PERIOD"
            )
        if str(rows[0].get("revsync_status")) != "Open":
            raise RejectedError(
                VENDOR,
                operation,
                f"fiscal period {period} is closed: {what} cannot be posted into it (reopen "
                "the period, or post the correction in an open period)",
                code="PERIOD_CLOSED",
            )

    async def _journal_posting(self, record: dict[str, Any], operation: str) -> JournalPosting:
        amount = _decimal(record.get("revsync_amount"), "journal amount", operation)
        if record.get("revsync_debitaccount") != self.deferred_revenue_account:
            amount = -amount
        return JournalPosting(
            journal_entry_id=str(record["revsync_revenuejournalid"]),
            journal_id=str(record.get("revsync_key") or ""),
            period=str(record.get("revsync_period")),
            amount=amount,
            currency=await self._currency_code(record.get(CURRENCY_COLUMN), operation),
        )

    async def post_revenue_journal(self, journal: RevenueJournal) -> JournalPosting:
        operation = "post_revenue_journal"
        entity_set = "revsync_revenuejournals"
        record = await self._keyed(operation, entity_set, journal.journal_id)
        if record is None:
            await self._open_period(
                journal.period, operation, f"revenue journal {journal.journal_id}"
            )
            recognise = journal.amount > 0
            body: dict[str, Any] = {
                "revsync_key": journal.journal_id,
                "revsync_name": f"revsync revenue {journal.journal_id}"[:200],
                "revsync_period": journal.period,
                "revsync_amount": abs(journal.amount),
                "revsync_debitaccount": self.deferred_revenue_account
                if recognise
                else self.revenue_account,
                "revsync_creditaccount": self.revenue_account
                if recognise
                else self.deferred_revenue_account,
                "revsync_billinginvoice": journal.invoice_id,
                "revsync_lineid": journal.line_id,
                "revsync_memo": journal.memo or f"revsync revenue {journal.journal_id}",
                "transactioncurrencyid@odata.bind": "/transactioncurrencies("
                f"{await self._currency_id(journal.currency, operation)})",
            }
            if journal.customer_id:
                body["customerid_account@odata.bind"] = (
                    f"/accounts({_guid(journal.customer_id, 'account', operation)})"
                )
            record = await self._keyed_create(operation, entity_set, journal.journal_id, body)
        posting = await self._journal_posting(record, operation)
        enforce(VENDOR, operation, rules.other_journal(posting, journal, journal.journal_id))
        return posting

    # -- payments ---------------------------------------------------------------------------

    async def _payment_posting(self, record: dict[str, Any], operation: str) -> PaymentPosting:
        return PaymentPosting(
            payment_record_id=str(record["revsync_paymentid"]),
            payment_id=str(record.get("revsync_key") or ""),
            receivable_id=str(record.get("_revsync_invoiceid_value") or ""),
            amount=_decimal(record.get("revsync_amount"), "payment", operation),
            applied=_decimal(record.get("revsync_applied", 0), "payment applied", operation),
            unapplied=_decimal(record.get("revsync_unapplied", 0), "payment unapplied", operation),
            currency=await self._currency_code(record.get(CURRENCY_COLUMN), operation),
            paid_on=date.fromisoformat(str(record.get("revsync_paidon"))),
        )

    async def apply_payment(self, payment: PaymentApplication) -> PaymentPosting:
        operation = "apply_payment"
        ref = _guid(payment.receivable_id, "invoice", operation)
        record = await self._keyed(operation, "revsync_payments", payment.payment_id)
        if record is None:
            receivable = await self._receivable(await self._invoice(ref, operation), operation)
            enforce(VENDOR, operation, rules.unpayable(receivable, payment, ref))
            body = {
                "revsync_key": payment.payment_id,
                "revsync_amount": payment.amount,
                "revsync_paidon": payment.paid_on.isoformat(),
                "revsync_billinginvoice": payment.invoice_id,
                "revsync_invoiceid@odata.bind": f"/invoices({ref})",
            }
            record = await self._keyed_create(
                operation, "revsync_payments", payment.payment_id, body
            )
        posting = await self._payment_posting(record, operation)
        what = f"payment {posting.payment_record_id}"
        enforce(
            VENDOR,
            operation,
            rules.other_receivable(what, payment.payment_id, posting.receivable_id, ref),
        )
        return posting

    # -- credits ----------------------------------------------------------------------------

    @staticmethod
    def _left(
        invoice: dict[str, Any], notes: list[dict[str, Any]], operation: str
    ) -> dict[str, tuple[dict[str, Any], Decimal, Decimal]]:
        """Each invoice line (by billing line id) with the amount and tax not credited yet."""
        done: dict[str, tuple[Decimal, Decimal]] = {}
        for note in notes:
            for line in note.get("revsync_creditnote_lines") or []:
                key = str(line.get("_revsync_invoicedetailid_value"))
                amount, tax = done.get(key, (Decimal(0), Decimal(0)))
                done[key] = (
                    amount + _decimal(line.get("revsync_amount", 0), "credit", operation),
                    tax + _decimal(line.get("revsync_tax", 0), "credit tax", operation),
                )
        left = {}
        for row in invoice.get("invoice_details") or []:
            tax = _decimal(row.get("tax", 0), "line tax", operation)
            amount = _decimal(row.get("extendedamount", 0), "line amount", operation) - tax
            done_amount, done_tax = done.get(str(row["invoicedetailid"]), (Decimal(0), Decimal(0)))
            left[str(row.get("revsync_lineid"))] = (row, amount - done_amount, tax - done_tax)
        return left

    @staticmethod
    def _credit_line(row: dict[str, Any], amount: Decimal, tax: Decimal) -> dict[str, Any]:
        return {
            "revsync_invoicedetailid@odata.bind": f"/invoicedetails({row['invoicedetailid']})",
            "revsync_lineid": row.get("revsync_lineid"),
            "revsync_amount": amount,
            "revsync_tax": tax,
        }

    async def reverse_receivable(
        self, receivable_id: str, external_id: str, reason: str
    ) -> Receivable:
        operation = "reverse_receivable"
        ref = _guid(receivable_id, "invoice", operation)
        note = await self._keyed(operation, "revsync_creditnotes", external_id)
        if note is None:
            invoice = await self._invoice(ref, operation, lines=True)
            notes = await self._credit_notes(ref, operation)
            receivable = await self._receivable(invoice, operation, notes)
            if receivable.state is ReceivableState.REVERSED:
                return receivable
            enforce(VENDOR, operation, rules.irreversible(receivable, ref, ERP))
            lines = [
                self._credit_line(row, amount, tax)
                for row, amount, tax in self._left(invoice, notes, operation).values()
                if amount or tax
            ]
            body = {
                "revsync_key": external_id,
                "revsync_reason": f"Reversed by revsync: {reason}"[:2000],
                "revsync_invoiceid@odata.bind": f"/invoices({ref})",
                "revsync_creditnote_lines": lines,
            }
            note = await self._keyed_create(operation, "revsync_creditnotes", external_id, body)
        reverses = str(note.get("_revsync_invoiceid_value"))
        what = f"credit note {note['revsync_creditnoteid']}"
        enforce(VENDOR, operation, rules.other_receivable(what, external_id, reverses, ref))
        return await self._receivable(await self._invoice(ref, operation), operation)

    async def _credit_posting(self, record: dict[str, Any], operation: str) -> CreditPosting:
        lines = tuple(
            CreditLine(
                line_id=str(line.get("revsync_lineid")),
                amount=_decimal(line.get("revsync_amount", 0), "credit", operation),
                tax=_decimal(line.get("revsync_tax", 0), "credit tax", operation),
            )
            for line in record.get("revsync_creditnote_lines") or []
        )
        return CreditPosting(
            credit_memo_id=str(record["revsync_creditnoteid"]),
            external_id=str(record.get("revsync_key") or ""),
            receivable_id=str(record.get("_revsync_invoiceid_value") or ""),
            currency=await self._currency_code(record.get(CURRENCY_COLUMN), operation),
            lines=tuple(line for line in lines if line.total),
            total=_decimal(record.get("revsync_total"), "credit total", operation),
            applied=_decimal(record.get("revsync_applied", 0), "credit applied", operation),
            unapplied=_decimal(record.get("revsync_unapplied", 0), "credit unapplied", operation),
        )

    async def credit_receivable(self, credit: ReceivableCredit) -> CreditPosting:
        operation = "credit_receivable"
        ref = _guid(credit.receivable_id, "invoice", operation)
        key = credit.external_id
        expand = "revsync_creditnote_lines"
        record = await self._keyed(operation, "revsync_creditnotes", key, expand)
        if record is None:
            invoice = await self._invoice(ref, operation, lines=True)
            notes = await self._credit_notes(ref, operation)
            receivable = await self._receivable(invoice, operation, notes)
            what = f"credit note {key} of invoice {credit.invoice_id} (Dynamics invoice {ref})"
            left = self._left(invoice, notes, operation)
            remaining = {line_id: (amount, tax) for line_id, (_, amount, tax) in left.items()}
            enforce(VENDOR, operation, rules.uncreditable(receivable, credit, remaining, what, ERP))
            lines = [
                self._credit_line(left[line.line_id][0], line.amount, line.tax)
                for line in credit.lines
                if line.total
            ]
            body = {
                "revsync_key": key,
                "revsync_reason": (f"revsync credit note {key}: {credit.reason}")[:2000],
                "revsync_invoiceid@odata.bind": f"/invoices({ref})",
                "revsync_creditnote_lines": lines,
            }
            record = await self._keyed_create(operation, "revsync_creditnotes", key, body, expand)
        posting = await self._credit_posting(record, operation)
        what = f"credit note {posting.credit_memo_id}"
        enforce(VENDOR, operation, rules.other_receivable(what, key, posting.receivable_id, ref))
        enforce(VENDOR, operation, rules.other_credit(posting, credit, key))
        return posting
