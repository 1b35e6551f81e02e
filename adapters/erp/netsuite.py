"""NetSuite ERP adapter: SuiteTalk REST web services (record API and SuiteQL).

Wire shapes this adapter relies on (the sandbox emulator in ``sandbox/netsuite.py`` speaks
the same ones):

- **Catalog items** — SuiteQL::

      SELECT id, itemid, displayname, isinactive, custitem_revsync_billing
      FROM item WHERE itemid IN ('PLAT-CORE', ...) ORDER BY id

  ``itemid`` is the SKU. ``custitem_revsync_billing`` is a free-form text custom item field
  holding ``recurring`` or ``one_time``.
- **List prices** — SuiteQL on the pricing table, base price level (internal id 1, NetSuite's
  "Base Price"), quantity-break pricing not used::

      SELECT pricing.item AS item, currency.symbol AS currency, pricing.unitprice AS unitprice
      FROM pricing INNER JOIN currency ON pricing.currency = currency.id
      WHERE pricing.pricelevel = 1 AND pricing.item IN (1101, ...)
      ORDER BY pricing.item, currency.symbol

- **Reference data**, read once per adapter and cached (refreshed on a miss):
  ``SELECT id, symbol FROM currency ORDER BY id`` (``symbol`` is the ISO 4217 code) and
  ``SELECT id, name FROM term WHERE isinactive = 'F' ORDER BY id`` (payment terms matched by
  their standard names, e.g. ``Net 30``, ``Due on receipt``). Record bodies reference
  currencies and terms by internal id.
- SuiteQL answers carry every value as a string (``"45.00"``, ``"T"``/``"F"``) and page with
  ``limit``/``offset``; the adapter follows ``hasMore``.
- **Reconciliation's reads** are SuiteQL on ``transaction`` (sales orders ``SalesOrd``,
  receivables ``CustInvc``) and ``customer``. A window filters on ``lastmodifieddate`` (or
  ``createddate``/``datecreated``) between ``TO_TIMESTAMP('2026-03-01 10:00:00',
  'YYYY-MM-DD HH24:MI:SS')`` literals, and reads both times back with ``TO_CHAR(...,
  'YYYY-MM-DD HH24:MI:SS')`` (a date-time column answers only its date otherwise). SuiteQL
  over REST pages through at most 100,000 results of one query ("Collection Paging":
  offsets stop there), so window listings and lookups page by key instead of offset: each
  page is the query again ``AND id > <last id read> ORDER BY id`` at offset 0, which reads
  any number of rows. The first page's ``totalResults`` is the window's size. Keyed lookups
  are ``externalid IN (...)`` and ``otherrefnum IN (...)`` (a record made by hand names its
  quote or invoice only there), 500 keys a query. SuiteQL compares date-times in the
  integration user's time zone preference: revsync's windows are UTC, so that user's time
  zone must be GMT/UTC (docs/reconciliation.md).
- **Customers** are upserted with
  ``PUT /customer/eid:<external id>?replace=addressBook,taxRegistration`` (the billing address
  and the tax registration replace the sublists instead of being appended on each upsert):
  ``companyName``, ``legalName``, ``email``, ``currency``, one default-billing
  ``addressBook`` entry whose ``country`` is the ISO 3166 code, and the tax id as the one line
  of the ``taxRegistration`` sublist (``nexusCountry`` the billing country,
  ``taxRegistrationNumber``).
- **SuiteTax only.** NetSuite's REST web services do not support legacy tax ("REST Web
  Services Supported Records"): an account used through them runs SuiteTax, and legacy tax
  fields (a customer's ``vatRegNumber``, a line's ``tax1Amt``) do not exist there. Billing
  computed every tax amount, and the ERP must record it as is, so a receivable or credit memo
  never lets NetSuite's tax engine compute its tax: it is sent with ``taxDetailsOverride:
  true`` and a ``taxDetails`` sublist holding, per taxed line, the line's
  ``taxDetailsReference`` (the billing line id, also set on the item line), ``taxType`` and
  ``taxCode`` (the tax code named ``REVSYNC_NETSUITE_TAX_CODE``, ``BILLED-TAX`` by default,
  and its tax type, read with SuiteQL ``SELECT id, name, taxtype, isinactive FROM
  salestaxitem WHERE name = ...``), ``taxBasis`` (the net line amount), ``taxRate`` (tax over
  basis, as a percentage, informative) and ``taxAmount`` (billing's tax, exactly). The
  override is set even when nothing is taxed, so the engine adds no tax billing did not
  charge. A line's tax is read back as the sum of its ``taxDetails`` lines.
- **Sales orders** reference their items by internal id, resolved from the SKUs with the item
  query above. Each line carries ``quantity``, ``rate`` and ``amount``; a discounted line's
  rate is its effective unit rate (amount / quantity, with as few decimals as reproduce the
  amount exactly) and its description names the list price and the discount.
- Creates and upserts answer ``204 No Content`` with a ``Location`` header ending in the new
  record's internal id.
- **Cancel** (a compensation) does what NetSuite allows for the order's status, read first
  ("Closing a Sales Order", "Closing Line Items on Sales Orders"): an order Pending Approval
  (A) is cancelled (``orderStatus`` C, the only order NetSuite cancels); an approved one,
  Pending Fulfillment (B), whose status can no longer be set, is closed by a PATCH closing
  every line (``item`` keyed by ``line``, ``isClosed: true``), which makes it Closed (H);
  Cancelled or Closed is returned as is (closed reads as cancelled: nothing more will be
  fulfilled or billed from it); partly or wholly fulfilled or billed (D, E, F, G) is refused
  before anything is sent (``ORDER_FULFILLED``: finance decides), and the saga parks. A
  refusal of the PATCH after which the order reads Cancelled or Closed (a concurrent cancel
  won) counts as done.

Invoice-to-revenue (the receivable and what follows it):

- **Receivable**: an ``invoice`` record keyed by ``externalId`` exactly as the sales order is
  (look it up by ``eid:`` first, create, and on ``DUP_RCRD`` return the one an earlier attempt
  made). One line per billing line: the item by SKU, quantity 1 and rate = amount (the
  canonical invoice carries line amounts net of discounts, not quantities), the billing
  line's tax in the tax details override (above: billing computed the tax; the ERP records
  it as is), ``custcol_revsync_line`` = the billing line id, and for a subscription line
  ``revRecStartDate``/``revRecEndDate`` (the service period, end inclusive). ``tranDate`` is
  the issue date, ``dueDate`` the due date, ``terms`` the standard term whose days match when
  there is one, ``otherRefNum`` the billing invoice id. Items revsync bills must post to the
  deferred revenue account: revsync, not NetSuite revenue recognition, moves it to revenue.
  Reading a receivable also reads the credit memos created from it (SuiteQL ``transaction``
  ``WHERE type = 'CustCred' AND createdfrom = <id>``, then each one's ``apply`` sublist): paid
  is total minus remaining minus credited.
- **Revenue journals**: one ``journalEntry`` per schedule entry (not one per period), keyed by
  the entry id with ``/`` written as ``~`` (the id travels in the URL as ``eid:...``, where a
  ``/`` cannot, not even percent-encoded: many HTTP stacks decode it before routing; ``~``
  appears in no invoice id, line id or period, so the mapping is one to one). A positive
  amount debits deferred revenue and credits revenue, a negative one the reverse; accounts
  are looked up by number (``2400`` and ``4000`` unless the adapter is given others). The
  journal is dated the last day of its period and names the posting period explicitly: the
  monthly period named NetSuite's default way (``Mar 2026``), read with SuiteQL on
  ``accountingperiod``. A closed period is rejected (``PERIOD_CLOSED``) before anything is
  sent, and NetSuite's own refusal (the period closed in between) is a rejection too. A key
  already posted with another amount or period is rejected (``JOURNAL_MISMATCH``), never
  returned as if it were the same journal.
- **Payments**: ``POST invoice/<id>/!transform/customerPayment`` (the payment comes out
  applied to that invoice) keyed by the billing payment id as ``externalId``; looked up first,
  and a duplicate returns the first one. A receivable with nothing due is rejected
  (``RECEIVABLE_CLOSED``); a payment larger than what is due leaves the rest unapplied, which
  the result reports.
- **Reversal**: ``POST invoice/<id>/!transform/creditMemo?replace=item,taxDetails`` keyed by
  the saga's key, crediting what is left of each invoice line (all of it when nothing was
  credited yet), its tax in the tax details override: the lines are sent, never left to the
  transform to copy, so the memo records billing's tax and never a full line again after a
  credit note. NetSuite applies the credit to the invoice. REST has no void, and a credit memo
  keeps the audit trail. A receivable with payments applied is rejected
  (``RECEIVABLE_PAID``): NetSuite would accept the credit and leave it unapplied, owed back to
  the customer, which is a refund for finance to decide, not a reversal. A reversed receivable
  is returned as is.
- **Partial credit** (a billing credit note): ``POST invoice/<id>/!transform/creditMemo
  ?replace=item,taxDetails`` whose ``item`` sublist holds only the credited lines (same item,
  quantity 1, rate = amount = the pre-tax credit, ``custcol_revsync_line`` and
  ``taxDetailsReference`` the billing line id) and whose tax details override holds their
  tax, keyed by the credit note id as ``externalId``; looked up first, and a duplicate
  returns the first one (one posted with other lines or amounts is ``CREDIT_MISMATCH``).
  Checked before sending, from the invoice's lines and its earlier credit memos: an unknown
  line (``UNKNOWN_LINE``), more than is left of a line (``LINE_OVER_CREDITED``), and a credit
  larger than what the invoice still owes (``CREDIT_EXCEEDS_DUE``: NetSuite would apply what
  is due and leave the rest unapplied on the customer, a refund for finance to decide).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote as url_quote

import httpx

from adapters.erp.netsuite_fields import (
    CREDIT_LIMIT_FIELD,
    CURRENCY_FIELD,
    TAX_REGISTRATIONS,
    customer_update,
    tax_registrations,
)
from adapters.erp.netsuite_fields import SIMPLE_FIELDS as CUSTOMER_SIMPLE_FIELDS
from adapters.erp.netsuite_fields import changes_from_customer as customer_changes
from adapters.errors import (
    NotFoundError,
    RejectedError,
    Throttle,
    UnknownOutcomeError,
    VendorError,
    enforce,
)
from adapters.http import VendorHttp, classify_by_status, decode_json, vendor_error, vendor_number
from adapters.oauth import AuthorizedHttp, StaticToken, TokenSource
from domain import receivable_rules as rules
from domain.catalog import CatalogItem
from domain.customer import Address, Customer
from domain.customer_master import FieldValue, MasterField
from domain.invoice import Invoice as FinalizedInvoice
from domain.invoice import SubscriptionLine
from domain.master_contracts import erp_external_id, golden_id_from_erp
from domain.money import quantize
from domain.order import OrderLine, SalesOrder, SalesOrderDraft, SalesOrderStatus
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
from domain.revenue import closes_on, period_of, period_start

VENDOR = "netsuite"
ERP = "NetSuite"  # how messages name it

# NetSuite's largest SuiteQL page.
SUITEQL_PAGE_SIZE = 1000
# The record's creation and last change, read back with the time (not just the date).
TIMES = (
    "TO_CHAR({created}, 'YYYY-MM-DD HH24:MI:SS') AS created_at, "
    "TO_CHAR(lastmodifieddate, 'YYYY-MM-DD HH24:MI:SS') AS changed_at"
)
# Keys per keyed lookup query.
LOOKUP_BATCH = 500
# Every sales order, for reconciliation (``status`` is the one-letter order status code).
SALES_ORDER_LISTING = (
    "SELECT id, externalid, otherrefnum, entity, currency, foreigntotal, status "
    "FROM transaction WHERE type = 'SalesOrd' ORDER BY id"
)
# Every customer's golden fields, for reconciliation (column names as SuiteQL answers them).
# The tax id is a tax registration (a sublist, like the billing address): not listed, not
# compared.
CUSTOMER_COLUMNS = (
    "id, externalid, companyname, custentity_revsync_owner, url, email, legalname, "
    "custentity_revsync_payment_state, creditlimit, currency"
)
CUSTOMER_LISTING = f"SELECT {CUSTOMER_COLUMNS} FROM customer ORDER BY id"
# Every invoice (receivable), for reconciliation.
RECEIVABLE_COLUMNS = "id, externalid, otherrefnum, currency, foreigntotal, foreignamountremaining"
RECEIVABLE_LISTING = (
    f"SELECT {RECEIVABLE_COLUMNS} FROM transaction WHERE type = 'CustInvc' ORDER BY id"
)
# Price level 1 is "Base Price", the list price every account has.
BASE_PRICE_LEVEL = 1

# Sales order status codes (``orderStatus``).
STATUS_PENDING_APPROVAL = "A"
STATUS_PENDING_FULFILLMENT = "B"
STATUS_CANCELLED = "C"
STATUS_PARTIALLY_FULFILLED = "D"
STATUS_PENDING_BILLING_PARTIALLY_FULFILLED = "E"
STATUS_PENDING_BILLING = "F"
STATUS_BILLED = "G"
STATUS_CLOSED = "H"

# Error codes that mean "too many requests right now": worth retrying later.
_THROTTLE_CODES = frozenset(
    {"CONCURRENCY_LIMIT_EXCEEDED", "SSS_REQUEST_LIMIT_EXCEEDED", "REQUEST_LIMIT_EXCEEDED"}
)
_DUPLICATE_CODES = frozenset({"DUP_RCRD", "DUP_ENTITY", "DUP_ITEM"})

# A SKU as it may appear in a SuiteQL string literal: no quotes, no whitespace, no wildcards.
_SKU = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,59}$")
_INTERNAL_ID = re.compile(r"^[0-9]{1,18}$")

# The standard NetSuite term names for revsync's payment terms.
_TERM_NAMES: dict[PaymentTerms, str] = {
    PaymentTerms.DUE_ON_RECEIPT: "Due on receipt",
    PaymentTerms.NET15: "Net 15",
    PaymentTerms.NET30: "Net 30",
    PaymentTerms.NET45: "Net 45",
    PaymentTerms.NET60: "Net 60",
    PaymentTerms.NET90: "Net 90",
}


# Default account numbers of revenue journals.
DEFERRED_REVENUE_ACCOUNT = "2400"
REVENUE_ACCOUNT = "4000"
# Default name of the SuiteTax tax code billing's tax is recorded under (its tax type says which
# tax accounts it posts to).
TAX_CODE = "BILLED-TAX"
_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
MAX_MEMO = 999
MAX_OTHER_REF = 45


def period_name(period: str) -> str:
    """NetSuite's default name of the monthly accounting period ``YYYY-MM``: ``Mar 2026``."""
    start = period_start(period)
    return f"{_MONTH_NAMES[start.month - 1]} {start.year}"


def period_from_name(name: str) -> str | None:
    """``YYYY-MM`` of a monthly period named the default way, or None."""
    match = re.fullmatch(r"([A-Z][a-z]{2}) (\d{4})", name.strip())
    if match is None or match.group(1) not in _MONTH_NAMES:
        return None
    return f"{match.group(2)}-{_MONTH_NAMES.index(match.group(1)) + 1:02d}"


def journal_external_id(journal_id: str) -> str:
    """The ``externalId`` of a revenue journal: its entry id with ``/`` written as ``~``."""
    return journal_id.replace("/", "~")


def _error_detail(body: Any) -> tuple[str | None, str | None]:
    """``(o:errorCode, detail)`` of the first entry of a NetSuite error body, if it is one."""
    if not isinstance(body, dict):
        return None, None
    details = body.get("o:errorDetails")
    if isinstance(details, list) and details and isinstance(details[0], dict):
        first = details[0]
        code = first.get("o:errorCode")
        detail = first.get("detail")
        return (
            str(code) if code is not None else None,
            str(detail) if detail is not None else None,
        )
    title = body.get("title")
    return None, str(title) if title is not None else None


def classify_netsuite(operation: str, response: httpx.Response) -> VendorError:
    """What a NetSuite error response means for revsync.

    NetSuite errors look like ``{"type", "title", "status", "o:errorDetails": [{"detail",
    "o:errorCode", "o:errorPath"}]}``. Throttling (429, ``CONCURRENCY_LIMIT_EXCEEDED``,
    ``SSS_REQUEST_LIMIT_EXCEEDED``) and 5xx are transient; 404 is not-found; other 4xx are
    rejections carrying NetSuite's error code. ``INVALID_LOGIN`` (401) is transient:
    :mod:`adapters.oauth` refreshes the token once, and a credential that stays refused is
    fixed by an operator, not by compensating the saga.
    """
    status = response.status_code
    try:
        body = decode_json(response)
    except ValueError:
        body = None
    code, detail = _error_detail(body)
    if detail is None:
        text = response.text.strip()
        message = text[:300] if text else response.reason_phrase or f"HTTP {status}"
        return classify_by_status(VENDOR, operation, response, message, code)
    throttled = (
        status == 429
        or code in _THROTTLE_CODES
        or "request limit exceeded" in detail.lower()
        or "concurrency limit" in detail.lower()
    )
    if throttled:
        message = f"throttled by NetSuite governance: {detail}"
        return vendor_error(
            VENDOR,
            operation,
            response,
            message,
            code,
            transient=True,
            throttle=Throttle.rate("NetSuite concurrency governance limit"),
        )
    if status == 401 or code == "INVALID_LOGIN":
        message = f"NetSuite refused the access token (INVALID_LOGIN): {detail}"
        return vendor_error(VENDOR, operation, response, message, code, transient=True)
    return vendor_error(VENDOR, operation, response, detail, code, transient=status >= 500)


def sql_string(value: str) -> str:
    """``value`` as a SuiteQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def _check_sku(sku: str, operation: str) -> str:
    if not _SKU.fullmatch(sku):
        raise RejectedError(
            VENDOR, operation, f"not a valid SKU for a catalog lookup: {sku!r}", code="INVALID_SKU"
        )
    return sku


def _decimal(value: Any, what: str, operation: str) -> Decimal:
    return vendor_number(VENDOR, operation, value, what)


def _ref_id(value: Any) -> str | None:
    """The internal id of a reference field (``{"id": "12", "refName": ...}``)."""
    if isinstance(value, dict):
        ref = value.get("id")
        return None if ref is None else str(ref)
    return None if value is None else str(value)


def _is_true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.upper() in ("T", "TRUE"))


def tax_rate(tax: Decimal, basis: Decimal) -> Decimal:
    """The percentage a tax details line shows for ``tax`` on ``basis`` (informative: the
    override records the amount as given; zero on a zero basis)."""
    if not basis:
        return Decimal(0)
    return (tax * 100 / basis).quantize(Decimal("0.0001"))


def line_taxes(record: dict[str, Any], operation: str) -> dict[str, Decimal]:
    """The tax of each item line of a transaction read with its sublists, by the line's
    ``taxDetailsReference``: the sum of its ``taxDetails`` lines (SuiteTax)."""
    taxes: dict[str, Decimal] = {}
    for detail in (record.get("taxDetails") or {}).get("items") or []:
        reference = str(detail.get("taxDetailsReference"))
        amount = vendor_number(VENDOR, operation, detail.get("taxAmount", 0), "line tax amount")
        taxes[reference] = taxes.get(reference, Decimal(0)) + amount
    return taxes


def _line_reference(row: dict[str, Any]) -> str:
    """The ``taxDetailsReference`` of the credit memo line crediting the invoice line ``row``:
    its billing line id, as on the invoice."""
    return str(
        row.get("custcol_revsync_line")
        or row.get("taxDetailsReference")
        or f"line{row.get('line')}"
    )


def line_rate(line: OrderLine, currency: str) -> Decimal:
    """The rate NetSuite gets for ``line``: the list price when the line is not discounted,
    else the shortest effective unit rate whose product with the quantity rounds to the
    line amount in ``currency``."""
    if quantize(line.quantity * line.unit_price, currency) == line.amount:
        return line.unit_price
    exact = line.amount / line.quantity
    for places in range(2, 17):
        rate = exact.quantize(Decimal(1).scaleb(-places))
        if quantize(rate * line.quantity, currency) == line.amount:
            return rate
    return exact


def _line_description(line: OrderLine) -> str:
    if line.discount_percent == 0:
        return line.description
    return (
        f"{line.description} (list {line.unit_price}, {line.discount_percent.normalize():f}% off)"
    )[:4000]


def order_status(code: str | None) -> SalesOrderStatus:
    """revsync's reading of a NetSuite ``orderStatus`` code. Closed (every line closed:
    nothing more will be fulfilled or billed from it) reads as cancelled: it is how an
    approved order is cancelled (revsync closes only orders nothing was fulfilled or billed
    from). Billed reads as closed: the order is complete."""
    if code in (STATUS_CANCELLED, STATUS_CLOSED):
        return SalesOrderStatus.CANCELLED
    if code == STATUS_BILLED:
        return SalesOrderStatus.CLOSED
    return SalesOrderStatus.PENDING_FULFILLMENT


STATUS_NAMES = {
    STATUS_PENDING_APPROVAL: "Pending Approval",
    STATUS_PENDING_FULFILLMENT: "Pending Fulfillment",
    STATUS_CANCELLED: "Cancelled",
    STATUS_PARTIALLY_FULFILLED: "Partially Fulfilled",
    STATUS_PENDING_BILLING_PARTIALLY_FULFILLED: "Pending Billing/Partially Fulfilled",
    STATUS_PENDING_BILLING: "Pending Billing",
    STATUS_BILLED: "Billed",
    STATUS_CLOSED: "Closed",
}


def _suiteql_text(value: str) -> str:
    """A SuiteQL string literal (quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


def _suiteql_timestamp(moment: datetime) -> str:
    utc = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return f"TO_TIMESTAMP('{utc}', 'YYYY-MM-DD HH24:MI:SS')"


def _window_filter(window: Window, created: str) -> str:
    column = "lastmodifieddate" if window.basis is Basis.CHANGED else created
    return (
        f"{column} >= {_suiteql_timestamp(window.start)} "
        f"AND {column} < {_suiteql_timestamp(window.end)}"
    )


def _suiteql_time(text: Any) -> datetime | None:
    """``2026-03-01 10:00:00`` (TO_CHAR's answer), read as UTC."""
    if not isinstance(text, str) or not text:
        return None
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


class NetSuiteErp:
    """:class:`adapters.ports.ErpPort` on NetSuite's REST web services."""

    vendor = VENDOR

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        access_token: str | None = None,
        tokens: TokenSource | None = None,
        deferred_revenue_account: str = DEFERRED_REVENUE_ACCOUNT,
        revenue_account: str = REVENUE_ACCOUNT,
        tax_code: str = TAX_CODE,
    ) -> None:
        """``tokens`` (OAuth 2.0 client credentials, :mod:`adapters.oauth`) or a static
        ``access_token``; ``tax_code`` the name of the SuiteTax tax code billing's tax is
        recorded under."""
        if tokens is None:
            if access_token is None:
                raise ValueError("NetSuiteErp needs an access_token or a token source")
            tokens = StaticToken(access_token)
        self._http = AuthorizedHttp(
            VendorHttp(VENDOR, http, classify_netsuite), tokens, classify=classify_netsuite
        )
        # Account numbers revenue journals move money between.
        self.deferred_revenue_account = deferred_revenue_account
        self.revenue_account = revenue_account
        self.tax_code = tax_code
        self._tax_code_ids: tuple[str, str] | None = None
        self._account_ids: dict[str, str] = {}
        root = base_url.rstrip("/")
        self._records = f"{root}/services/rest/record/v1"
        self._suiteql = f"{root}/services/rest/query/v1/suiteql"
        self._auth = {"Accept": "application/json"}
        # SuiteQL page size; NetSuite allows at most 1000.
        self.page_size = SUITEQL_PAGE_SIZE
        self._currency_ids: dict[str, str] = {}
        self._currency_codes: dict[str, str] = {}
        self._term_ids: dict[str, str] = {}

    # -- plumbing ---------------------------------------------------------------------------

    async def _request(
        self,
        operation: str,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        return await self._http.request(
            operation,
            method,
            url,
            json_body=json_body,
            params=params,
            headers={**self._auth, **(headers or {})},
        )

    async def suiteql(self, operation: str, query: str) -> list[dict[str, Any]]:
        """Every row of a SuiteQL query, following ``hasMore`` across pages."""
        rows: list[dict[str, Any]] = []
        offset = 0
        while True:
            response = await self._request(
                operation,
                "POST",
                self._suiteql,
                json_body={"q": query},
                params={"limit": str(self.page_size), "offset": str(offset)},
                headers={"Prefer": "transient"},
            )
            page = decode_json(response)
            if not isinstance(page, dict) or not isinstance(page.get("items"), list):
                raise UnknownOutcomeError(VENDOR, operation, "SuiteQL answer without an items list")
            items: list[dict[str, Any]] = [row for row in page["items"] if isinstance(row, dict)]
            rows.extend(items)
            if not page.get("hasMore") or not items:
                return rows
            offset = int(page.get("offset", offset)) + len(items)

    def _record_url(self, record_type: str, ref: str | None = None) -> str:
        url = f"{self._records}/{record_type}"
        return url if ref is None else f"{url}/{ref}"

    @staticmethod
    def _eid(external_id: str) -> str:
        return "eid:" + url_quote(external_id, safe="")

    @staticmethod
    def _created_id(operation: str, response: httpx.Response) -> str:
        location = str(response.headers.get("location") or "")
        if not location:
            raise UnknownOutcomeError(
                VENDOR,
                operation,
                f"answered {response.status_code} without a Location header naming the record",
                status=response.status_code,
            )
        internal_id = location.rstrip("/").rsplit("/", 1)[-1]
        if not _INTERNAL_ID.fullmatch(internal_id):
            raise UnknownOutcomeError(
                VENDOR,
                operation,
                f"Location header does not end in an internal id: {location!r}",
                status=response.status_code,
            )
        return internal_id

    # -- reference data ---------------------------------------------------------------------

    async def _load_currencies(self, operation: str) -> None:
        rows = await self.suiteql(operation, "SELECT id, symbol FROM currency ORDER BY id")
        ids = {str(row["symbol"]).upper(): str(row["id"]) for row in rows if "symbol" in row}
        self._currency_ids = ids
        self._currency_codes = {internal: code for code, internal in ids.items()}

    async def _currency_id(self, code: str, operation: str) -> str:
        if code not in self._currency_ids:
            await self._load_currencies(operation)
        if code not in self._currency_ids:
            raise RejectedError(
                VENDOR,
                operation,
                f"currency {code} is not enabled in this NetSuite account",
                code="UNKNOWN_CURRENCY",
            )
        return self._currency_ids[code]

    async def _currency_code(self, internal_id: str, operation: str) -> str:
        if internal_id not in self._currency_codes:
            await self._load_currencies(operation)
        if internal_id not in self._currency_codes:
            raise RejectedError(
                VENDOR,
                operation,
                f"NetSuite currency {internal_id} is not in the currency list",
                code="UNKNOWN_CURRENCY",
            )
        return self._currency_codes[internal_id]

    async def _term_id(self, terms: PaymentTerms, operation: str) -> str:
        name = _TERM_NAMES[terms].lower()
        if name not in self._term_ids:
            rows = await self.suiteql(
                operation, "SELECT id, name FROM term WHERE isinactive = 'F' ORDER BY id"
            )
            self._term_ids = {}
            for row in rows:
                self._term_ids.setdefault(str(row.get("name", "")).lower(), str(row["id"]))
        if name not in self._term_ids:
            raise RejectedError(
                VENDOR,
                operation,
                f"payment terms {_TERM_NAMES[terms]!r} do not exist in NetSuite",
                code="UNKNOWN_TERMS",
            )
        return self._term_ids[name]

    # -- catalog ----------------------------------------------------------------------------

    async def _items(self, skus: Iterable[str], operation: str) -> list[dict[str, Any]]:
        wanted = sorted({_check_sku(sku, operation) for sku in skus})
        if not wanted:
            return []
        literals = ", ".join(sql_string(sku) for sku in wanted)
        rows = await self.suiteql(
            operation,
            "SELECT id, itemid, displayname, isinactive, custitem_revsync_billing "
            f"FROM item WHERE itemid IN ({literals}) ORDER BY id",
        )
        # Keep exact matches only, whatever collation the account's database uses.
        exact = set(wanted)
        return [row for row in rows if str(row.get("itemid")) in exact]

    async def _item_ids(self, skus: list[str], operation: str) -> dict[str, str]:
        """NetSuite internal item id by SKU; a SKU NetSuite does not have is rejected."""
        items = {str(row["itemid"]): str(row["id"]) for row in await self._items(skus, operation)}
        missing = sorted(set(skus) - items.keys())
        if missing:
            raise RejectedError(
                VENDOR,
                operation,
                f"items not in the NetSuite catalog: {', '.join(missing)}",
                code="UNKNOWN_ITEM",
            )
        return items

    async def get_catalog_items(self, skus: list[str]) -> dict[str, CatalogItem]:
        operation = "get_catalog_items"
        rows = await self._items(skus, operation)
        if not rows:
            return {}
        ids = [str(row["id"]) for row in rows]
        for internal_id in ids:
            if not _INTERNAL_ID.fullmatch(internal_id):
                raise RejectedError(VENDOR, operation, f"unexpected item id {internal_id!r}")
        price_rows = await self.suiteql(
            operation,
            "SELECT pricing.item AS item, currency.symbol AS currency, "
            "pricing.unitprice AS unitprice "
            "FROM pricing INNER JOIN currency ON pricing.currency = currency.id "
            f"WHERE pricing.pricelevel = {BASE_PRICE_LEVEL} "
            f"AND pricing.item IN ({', '.join(ids)}) "
            "ORDER BY pricing.item, currency.symbol",
        )
        prices: dict[str, dict[str, Decimal]] = {}
        for row in price_rows:
            if row.get("unitprice") is None or row.get("currency") is None:
                continue
            prices.setdefault(str(row["item"]), {})[str(row["currency"]).upper()] = _decimal(
                row["unitprice"], f"unit price of item {row['item']}", operation
            )
        items: dict[str, CatalogItem] = {}
        for row in rows:
            sku = str(row["itemid"])
            billing_value = str(row.get("custitem_revsync_billing") or "").strip().lower()
            try:
                billing = BillingType(billing_value)
            except ValueError:
                raise RejectedError(
                    VENDOR,
                    operation,
                    f"item {sku} has no valid custitem_revsync_billing "
                    f"(expected recurring or one_time, got {billing_value!r})",
                    code="INVALID_CATALOG_ITEM",
                ) from None
            items[sku] = CatalogItem(
                sku=sku,
                item_id=str(row["id"]),
                name=str(row.get("displayname") or sku),
                billing=billing,
                prices=prices.get(str(row["id"]), {}),
                active=not _is_true(row.get("isinactive")),
            )
        return items

    # -- customers --------------------------------------------------------------------------

    async def upsert_customer(self, customer: Customer, external_id: str) -> str:
        operation = "upsert_customer"
        address = customer.billing_address
        address_fields: dict[str, Any] = {
            "addressee": customer.legal_entity,
            "addr1": address.line1,
            "city": address.city,
            "zip": address.postal_code,
            "country": {"id": address.country},
        }
        if address.line2:
            address_fields["addr2"] = address.line2
        if address.region:
            address_fields["state"] = address.region
        body: dict[str, Any] = {
            "externalId": external_id,
            "companyName": customer.name,
            "legalName": customer.legal_entity,
            "email": customer.email,
            "addressBook": {
                "items": [
                    {
                        "defaultBilling": True,
                        "defaultShipping": False,
                        "label": "Billing",
                        "addressBookAddress": address_fields,
                    }
                ]
            },
        }
        # SuiteTax: the tax id is the customer's tax registration in its billing country.
        body[TAX_REGISTRATIONS] = tax_registrations(customer.tax_id, address.country)
        if customer.currency:
            body["currency"] = {"id": await self._currency_id(customer.currency, operation)}
        response = await self._request(
            operation,
            "PUT",
            self._record_url("customer", self._eid(external_id)),
            json_body=body,
            params={"replace": f"addressBook,{TAX_REGISTRATIONS}"},
        )
        return self._created_id(operation, response)

    async def find_customer(self, external_id: str) -> str | None:
        """The internal id of the customer keyed by ``external_id``; None when there is none."""
        found = await self._find("customer", external_id, "find_customer")
        return None if found is None else str(found["id"])

    async def update_customer_fields(
        self, customer_id: str, changes: Mapping[MasterField, FieldValue], idempotency_key: str
    ) -> None:
        """PATCH golden fields onto the customer (see :mod:`adapters.erp.netsuite_fields`).
        A PATCH of the same values changes nothing, so a retry is harmless; NetSuite takes
        no idempotency key on a PATCH."""
        operation = "update_customer_fields"
        ref = self._internal_ref(customer_id, "customer", operation)
        country: str | None = None
        if changes.get(MasterField.TAX_ID) is not None and not isinstance(
            changes.get(MasterField.BILLING_ADDRESS), Address
        ):
            country = await self._tax_country(ref, operation)
        try:
            body, replace = customer_update(changes, country)
        except ValueError as error:
            raise RejectedError(VENDOR, operation, str(error), code="NOT_WRITABLE") from None
        await self._request(
            operation,
            "PATCH",
            self._record_url("customer", ref),
            json_body=body,
            params={"replace": ",".join(replace)} if replace else None,
        )

    async def link_customer(self, customer_id: str, golden_id: str, idempotency_key: str) -> None:
        """Adoption: stamp ``acct-<golden id>`` as the external id of a customer revsync did
        not create (a PATCH of ``externalId``: NetSuite lets a record's external id be set or
        changed, unique per record type), so ``find_customer`` and the upsert find it. A
        repeat writes the same value; a key another customer holds is ``DUP_RCRD``."""
        operation = "link_customer"
        ref = self._internal_ref(customer_id, "customer", operation)
        await self._request(
            operation,
            "PATCH",
            self._record_url("customer", ref),
            json_body={"externalId": erp_external_id(golden_id)},
        )

    async def _tax_country(self, ref: str, operation: str) -> str | None:
        """The country a new tax id of the customer is registered in: that of its current tax
        registration, else its default billing address's."""
        record = await self._get("customer", ref, operation, expand=True)
        for line in (record.get(TAX_REGISTRATIONS) or {}).get("items") or []:
            country = _ref_id(line.get("nexusCountry"))
            if country:
                return country
        for entry in (record.get("addressBook") or {}).get("items") or []:
            if entry.get("defaultBilling"):
                country = _ref_id((entry.get("addressBookAddress") or {}).get("country"))
                if country:
                    return country
        return None

    # -- sales orders -----------------------------------------------------------------------

    async def _get_order(self, ref: str, operation: str, *, expand: bool = False) -> dict[str, Any]:
        response = await self._request(
            operation,
            "GET",
            self._record_url("salesOrder", ref),
            params={"expandSubResources": "true"} if expand else None,
        )
        record = decode_json(response)
        if not isinstance(record, dict):
            raise UnknownOutcomeError(VENDOR, operation, "sales order answer is not an object")
        return record

    async def _to_sales_order(self, record: dict[str, Any], operation: str) -> SalesOrder:
        currency_id = _ref_id(record.get("currency"))
        if currency_id is None:
            raise RejectedError(
                VENDOR, operation, f"sales order {record.get('id')} has no currency"
            )
        customer_id = _ref_id(record.get("entity"))
        if customer_id is None:
            raise RejectedError(VENDOR, operation, f"sales order {record.get('id')} has no entity")
        return SalesOrder(
            order_id=str(record["id"]),
            external_id=str(record.get("externalId") or ""),
            customer_id=customer_id,
            currency=await self._currency_code(currency_id, operation),
            total=_decimal(record.get("total"), "sales order total", operation),
            status=order_status(_ref_id(record.get("orderStatus"))),
        )

    async def find_sales_order(self, external_id: str) -> SalesOrder | None:
        operation = "find_sales_order"
        try:
            record = await self._get_order(self._eid(external_id), operation)
        except NotFoundError:
            return None
        return await self._to_sales_order(record, operation)

    async def _order_body(self, draft: SalesOrderDraft, customer_id: str) -> dict[str, Any]:
        operation = "create_sales_order"
        enforce(VENDOR, operation, draft.unbookable())
        items = await self._item_ids([line.sku for line in draft.lines], operation)
        return {
            "externalId": draft.external_id,
            "entity": {"id": customer_id},
            "currency": {"id": await self._currency_id(draft.currency, operation)},
            "terms": {"id": await self._term_id(draft.payment_terms, operation)},
            "tranDate": draft.order_date.isoformat(),
            "orderStatus": {"id": STATUS_PENDING_FULFILLMENT},
            "otherRefNum": draft.quote_id,
            "memo": draft.memo,
            "item": {
                "items": [
                    {
                        "item": {"id": items[line.sku]},
                        "quantity": line.quantity,
                        "rate": line_rate(line, draft.currency),
                        "amount": line.amount,
                        "description": _line_description(line),
                    }
                    for line in draft.lines
                ]
            },
        }

    async def create_sales_order(self, draft: SalesOrderDraft, customer_id: str) -> SalesOrder:
        operation = "create_sales_order"
        existing = await self.find_sales_order(draft.external_id)
        if existing is not None:
            return existing
        body = await self._order_body(draft, customer_id)
        try:
            response = await self._request(
                operation, "POST", self._record_url("salesOrder"), json_body=body
            )
        except RejectedError as error:
            duplicate = error.code in _DUPLICATE_CODES or "already exists" in error.message.lower()
            if not duplicate:
                raise
            # An earlier attempt created it and its answer was lost: return that order.
            found = await self.find_sales_order(draft.external_id)
            if found is None:
                raise
            return found
        order_id = self._created_id(operation, response)
        return await self._to_sales_order(await self._get_order(order_id, operation), operation)

    async def cancel_sales_order(self, order_id: str, reason: str) -> SalesOrder:
        """Undo the order as NetSuite allows for its status, read first: Pending Approval is
        cancelled (``orderStatus`` C, the one order NetSuite cancels); Pending Fulfillment
        (approved: its status can no longer be set) is closed by closing every line
        (``isClosed``), which makes it Closed; Cancelled or Closed is returned as it is. An
        order partly or wholly fulfilled or billed is refused (``ORDER_FULFILLED``): what was
        delivered or billed is for finance to settle, not for a compensation to close."""
        operation = "cancel_sales_order"
        ref = url_quote(order_id, safe="")
        record = await self._get_order(ref, operation, expand=True)
        status = _ref_id(record.get("orderStatus"))
        if status in (STATUS_CANCELLED, STATUS_CLOSED):
            return await self._to_sales_order(record, operation)
        if status == STATUS_PENDING_APPROVAL:
            body: dict[str, Any] = {
                "orderStatus": {"id": STATUS_CANCELLED},
                "memo": f"Cancelled by revsync: {reason}"[:MAX_MEMO],
            }
        elif status == STATUS_PENDING_FULFILLMENT:
            lines = (record.get("item") or {}).get("items") or []
            body = {
                "memo": f"Closed by revsync: {reason}"[:MAX_MEMO],
                "item": {"items": [{"line": row["line"], "isClosed": True} for row in lines]},
            }
        else:
            name = STATUS_NAMES.get(str(status), f"status {status}")
            raise RejectedError(
                VENDOR,
                operation,
                f"sales order {order_id} is {name} in NetSuite: part of it was fulfilled or "
                "billed, so revsync neither cancels nor closes it; finance decides what to "
                "do with it (close what is left, credit what was billed)",
                code="ORDER_FULFILLED",
            )
        try:
            await self._request(
                operation, "PATCH", self._record_url("salesOrder", ref), json_body=body
            )
        except RejectedError:
            # A concurrent cancel or close won the race: done. Anything else stands.
            again = await self._get_order(ref, operation)
            if _ref_id(again.get("orderStatus")) not in (STATUS_CANCELLED, STATUS_CLOSED):
                raise
            return await self._to_sales_order(again, operation)
        return await self._to_sales_order(await self._get_order(ref, operation), operation)

    # -- reconciliation -----------------------------------------------------------------------

    async def list_sales_orders(
        self, cursor: str | None, page_size: int, *, window: Window | None = None
    ) -> Page[OrderRecord]:
        """One page of every sales order (SuiteQL on ``transaction``, by internal id); in a
        ``window``, those changed (or made) in it."""
        operation = "list_sales_orders"
        if window is None:
            rows, after = await self._suiteql_page(
                operation, SALES_ORDER_LISTING, cursor, page_size
            )
            return Page(items=await self._sales_order_records(rows, operation), cursor=after)
        columns = "id, externalid, otherrefnum, entity, currency, foreigntotal, status"
        rows, after, total = await self._keyset_page(
            operation,
            f"{columns}, {TIMES.format(created='createddate')}",
            "transaction",
            f"type = 'SalesOrd' AND {_window_filter(window, 'createddate')}",
            cursor,
            page_size,
        )
        items = await self._sales_order_records(rows, operation)
        return Page(items=items, cursor=after, total=total)

    async def lookup_sales_orders(self, quote_ids: list[str]) -> list[OrderRecord]:
        """The sales orders of these quotes: keyed ``q2c-<quote>:erp-order``, or naming the
        quote in ``otherrefnum``."""
        operation = "lookup_sales_orders"
        columns = "id, externalid, otherrefnum, entity, currency, foreigntotal, status"
        rows = await self._lookup_rows(
            operation,
            f"{columns}, {TIMES.format(created='createddate')}",
            "transaction",
            "type = 'SalesOrd'",
            {
                "externalid": [f"q2c-{q}:erp-order" for q in quote_ids],
                "otherrefnum": list(quote_ids),
            },
        )
        return await self._sales_order_records(rows, operation)

    async def _sales_order_records(
        self, rows: list[dict[str, Any]], operation: str
    ) -> list[OrderRecord]:
        items: list[OrderRecord] = []
        for row in rows:
            currency_id = row.get("currency")
            currency = (
                None if currency_id is None else await self._currency_code(currency_id, operation)
            )
            status = order_status(row.get("status"))
            items.append(
                OrderRecord(
                    system=System.ERP,
                    record_id=str(row["id"]),
                    key=row.get("externalid") or None,
                    quote_ref=row.get("otherrefnum") or None,
                    customer_id=row.get("entity") or None,
                    amount=None
                    if row.get("foreigntotal") is None
                    else _decimal(row["foreigntotal"], "sales order total", operation),
                    currency=currency,
                    status=status.value,
                    live=status is not SalesOrderStatus.CANCELLED,
                    created_at=_suiteql_time(row.get("created_at")),
                    changed_at=_suiteql_time(row.get("changed_at")),
                )
            )
        return items

    async def list_customers(
        self, cursor: str | None, page_size: int, *, window: Window | None = None
    ) -> Page[CustomerRecord]:
        """One page of every customer (SuiteQL on ``customer``, by internal id), linked to
        the CRM account its external id names (``acct-<account id>``; others: None). The
        billing address (an address book sublist) is not read: not compared."""
        operation = "list_customers"
        if window is None:
            rows, after = await self._suiteql_page(operation, CUSTOMER_LISTING, cursor, page_size)
            return Page(items=await self._customer_records(rows, operation), cursor=after)
        rows, after, total = await self._keyset_page(
            operation,
            f"{CUSTOMER_COLUMNS}, {TIMES.format(created='datecreated')}",
            "customer",
            _window_filter(window, "datecreated"),
            cursor,
            page_size,
        )
        return Page(items=await self._customer_records(rows, operation), cursor=after, total=total)

    async def lookup_customers(self, account_ids: list[str]) -> list[CustomerRecord]:
        """The customers of these CRM accounts (external id ``acct-<account id>``)."""
        operation = "lookup_customers"
        rows = await self._lookup_rows(
            operation,
            f"{CUSTOMER_COLUMNS}, {TIMES.format(created='datecreated')}",
            "customer",
            None,
            {"externalid": [f"acct-{a}" for a in account_ids]},
        )
        return await self._customer_records(rows, operation)

    async def _customer_records(
        self, rows: list[dict[str, Any]], operation: str
    ) -> list[CustomerRecord]:
        items: list[CustomerRecord] = []
        for row in rows:
            fields: dict[str, Any] = {
                name: row.get(name.lower()) for name in CUSTOMER_SIMPLE_FIELDS.values()
            }
            if row.get("creditlimit") is not None and row.get("currency") is not None:
                fields[CREDIT_LIMIT_FIELD] = row["creditlimit"]
                fields[CURRENCY_FIELD] = await self._currency_code(row["currency"], operation)
            external_id = row.get("externalid")
            items.append(
                CustomerRecord(
                    system=System.ERP,
                    record_id=str(row["id"]),
                    account_id=golden_id_from_erp(external_id) if external_id else None,
                    fields=fingerprints(customer_changes(fields)),
                    created_at=_suiteql_time(row.get("created_at")),
                    changed_at=_suiteql_time(row.get("changed_at")),
                )
            )
        return items

    async def list_receivables(
        self, cursor: str | None, page_size: int, *, window: Window | None = None
    ) -> Page[InvoiceRecord]:
        """One page of the receivables invoice-to-revenue posts (SuiteQL on ``transaction``,
        type ``CustInvc``), named by their billing invoice (the external id
        ``i2r-<invoice>:receivable``, else ``otherrefnum``); others are read past."""
        operation = "list_receivables"
        if window is None:
            rows, after = await self._suiteql_page(operation, RECEIVABLE_LISTING, cursor, page_size)
            return Page(items=await self._receivable_records(rows, operation), cursor=after)
        rows, after, total = await self._keyset_page(
            operation,
            f"{RECEIVABLE_COLUMNS}, {TIMES.format(created='createddate')}",
            "transaction",
            f"type = 'CustInvc' AND {_window_filter(window, 'createddate')}",
            cursor,
            page_size,
        )
        items = await self._receivable_records(rows, operation)
        return Page(items=items, cursor=after, total=total)

    async def lookup_receivables(self, invoice_ids: list[str]) -> list[InvoiceRecord]:
        """The receivables of these billing invoices: keyed ``i2r-<invoice>:receivable``,
        or naming the invoice in ``otherrefnum``."""
        operation = "lookup_receivables"
        rows = await self._lookup_rows(
            operation,
            f"{RECEIVABLE_COLUMNS}, {TIMES.format(created='createddate')}",
            "transaction",
            "type = 'CustInvc'",
            {
                "externalid": [receivable_key(i) for i in invoice_ids],
                "otherrefnum": list(invoice_ids),
            },
        )
        return await self._receivable_records(rows, operation)

    async def _receivable_records(
        self, rows: list[dict[str, Any]], operation: str
    ) -> list[InvoiceRecord]:
        items: list[InvoiceRecord] = []
        for row in rows:
            key = row.get("externalid") or None
            invoice_id = invoice_of_key(key) or row.get("otherrefnum")
            if not invoice_id or row.get("currency") is None:
                continue
            due = _decimal(row.get("foreignamountremaining", 0), "amount remaining", operation)
            items.append(
                InvoiceRecord(
                    system=System.ERP,
                    record_id=str(row["id"]),
                    invoice_id=str(invoice_id),
                    key=key,
                    amount=_decimal(row.get("foreigntotal"), "invoice total", operation),
                    currency=await self._currency_code(row["currency"], operation),
                    amount_due=due,
                    status="open" if due > 0 else "closed",
                    created_at=_suiteql_time(row.get("created_at")),
                    changed_at=_suiteql_time(row.get("changed_at")),
                )
            )
        return items

    async def _keyset_page(
        self,
        operation: str,
        columns: str,
        table: str,
        where: str | None,
        cursor: str | None,
        page_size: int,
    ) -> tuple[list[dict[str, Any]], str | None, int | None]:
        """One page of ``SELECT columns FROM table WHERE where`` by internal id: the query
        again past the last id read (the cursor), at offset 0, so no offset ever reaches
        SuiteQL's 100,000-result limit. The first page carries ``totalResults``."""
        conditions = [where] if where else []
        if cursor is not None:
            if not cursor.isdigit():
                raise RejectedError(
                    VENDOR, operation, f"{cursor!r} is not a SuiteQL cursor", code="INVALID_CURSOR"
                )
            conditions.append(f"id > {cursor}")
        query = f"SELECT {columns} FROM {table}"
        if conditions:
            query += " WHERE " + " AND ".join(conditions)
        query += " ORDER BY id"
        page = await self._suiteql_request(
            operation, query, 0, min(max(page_size, 1), SUITEQL_PAGE_SIZE)
        )
        rows = [r for r in page["items"] if isinstance(r, dict) and r.get("id") is not None]
        total = page.get("totalResults") if cursor is None else None
        after = str(rows[-1]["id"]) if page.get("hasMore") and rows else None
        return rows, after, total if isinstance(total, int) else None

    async def _lookup_rows(
        self,
        operation: str,
        columns: str,
        table: str,
        where: str | None,
        keys: dict[str, list[str]],
    ) -> list[dict[str, Any]]:
        """Rows whose column holds one of its keys (``column IN (...)``, 500 a query, each
        read to its end by id); a row found by two columns once."""
        found: dict[str, dict[str, Any]] = {}
        for column, values in keys.items():
            for start in range(0, len(values), LOOKUP_BATCH):
                batch = values[start : start + LOOKUP_BATCH]
                if not batch:
                    continue
                condition = f"{column} IN ({', '.join(_suiteql_text(v) for v in batch)})"
                scope = f"{where} AND {condition}" if where else condition
                cursor: str | None = None
                while True:
                    rows, cursor, _ = await self._keyset_page(
                        operation, columns, table, scope, cursor, SUITEQL_PAGE_SIZE
                    )
                    for row in rows:
                        found[str(row["id"])] = row
                    if cursor is None:
                        break
        return [found[k] for k in sorted(found, key=int)]

    async def _suiteql_request(
        self, operation: str, query: str, offset: int, limit: int
    ) -> dict[str, Any]:
        response = await self._request(
            operation,
            "POST",
            self._suiteql,
            json_body={"q": query},
            params={"limit": str(limit), "offset": str(offset)},
            headers={"Prefer": "transient"},
        )
        page = decode_json(response)
        if not isinstance(page, dict) or not isinstance(page.get("items"), list):
            raise UnknownOutcomeError(VENDOR, operation, "SuiteQL answer without an items list")
        return page

    async def _suiteql_page(
        self, operation: str, query: str, cursor: str | None, page_size: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of ``query`` and the cursor of the next, None after the last. The cursor
        is ``<offset>:<limit>``: NetSuite wants every page of a query the same size, with the
        offset a multiple of it. SuiteQL over REST reads at most 100,000 rows this way (the
        window listings page by id instead)."""
        offset, limit = 0, min(max(page_size, 1), SUITEQL_PAGE_SIZE)
        if cursor is not None:
            parts = cursor.split(":")
            if len(parts) != 2 or not all(p.isdigit() for p in parts) or int(parts[1]) < 1:
                raise RejectedError(
                    VENDOR, operation, f"{cursor!r} is not a SuiteQL cursor", code="INVALID_CURSOR"
                )
            offset, limit = int(parts[0]), int(parts[1])
        page = await self._suiteql_request(operation, query, offset, limit)
        rows = [r for r in page["items"] if isinstance(r, dict) and r.get("id") is not None]
        if not page.get("hasMore") or not page["items"]:
            return rows, None
        return rows, f"{offset + limit}:{limit}"

    # -- invoice-to-revenue: shared ---------------------------------------------------------

    async def _get(
        self, record_type: str, ref: str, operation: str, *, expand: bool = False
    ) -> dict[str, Any]:
        response = await self._request(
            operation,
            "GET",
            self._record_url(record_type, ref),
            params={"expandSubResources": "true"} if expand else None,
        )
        record = decode_json(response)
        if not isinstance(record, dict) or record.get("id") is None:
            raise UnknownOutcomeError(VENDOR, operation, f"{record_type} answer is not a record")
        return record

    async def _find(
        self, record_type: str, external_id: str, operation: str, *, expand: bool = False
    ) -> dict[str, Any] | None:
        try:
            return await self._get(record_type, self._eid(external_id), operation, expand=expand)
        except NotFoundError:
            return None

    async def _create(
        self,
        record_type: str,
        url: str,
        body: dict[str, Any],
        external_id: str,
        operation: str,
        *,
        expand: bool = False,
    ) -> dict[str, Any]:
        """POST a keyed record and read it back; a duplicate key returns the record an
        earlier attempt made."""
        try:
            response = await self._request(operation, "POST", url, json_body=body)
        except RejectedError as error:
            duplicate = error.code in _DUPLICATE_CODES or "already exists" in error.message.lower()
            if not duplicate:
                raise
            found = await self._find(record_type, external_id, operation, expand=expand)
            if found is None:
                raise
            return found
        record_id = self._created_id(operation, response)
        return await self._get(record_type, record_id, operation, expand=expand)

    @staticmethod
    def _internal_ref(record_id: str, what: str, operation: str) -> str:
        if not _INTERNAL_ID.fullmatch(record_id):
            raise NotFoundError(
                VENDOR, operation, f"{record_id!r} is not a NetSuite {what} internal id"
            )
        return record_id

    async def _account_id(self, number: str, operation: str) -> str:
        if number not in self._account_ids:
            wanted = sorted({self.deferred_revenue_account, self.revenue_account, number})
            rows = await self.suiteql(
                operation,
                "SELECT id, acctnumber, isinactive FROM account "
                f"WHERE acctnumber IN ({', '.join(sql_string(n) for n in wanted)}) ORDER BY id",
            )
            for row in rows:
                if not _is_true(row.get("isinactive")):
                    self._account_ids[str(row.get("acctnumber"))] = str(row["id"])
        if number not in self._account_ids:
            raise RejectedError(
                VENDOR,
                operation,
                f"account {number} does not exist in NetSuite or is inactive",
                code="UNKNOWN_ACCOUNT",
            )
        return self._account_ids[number]

    async def _billed_tax(self, operation: str) -> tuple[str, str]:
        """The internal ids of the tax code billing's tax is recorded under and of its tax
        type (SuiteQL on ``salestaxitem``), read once."""
        if self._tax_code_ids is None:
            rows = await self.suiteql(
                operation,
                "SELECT id, name, taxtype, isinactive FROM salestaxitem "
                f"WHERE name = {sql_string(self.tax_code)} ORDER BY id",
            )
            active = [r for r in rows if not _is_true(r.get("isinactive")) and r.get("taxtype")]
            if not active:
                raise RejectedError(
                    VENDOR,
                    operation,
                    f"NetSuite has no active SuiteTax tax code named {self.tax_code!r} to record "
                    "billing's tax under: set one up (or REVSYNC_NETSUITE_TAX_CODE)",
                    code="UNKNOWN_TAX_CODE",
                )
            self._tax_code_ids = (str(active[0]["id"]), str(active[0]["taxtype"]))
        return self._tax_code_ids

    async def _tax_details(
        self, taxed: list[tuple[str, Decimal, Decimal]], operation: str
    ) -> dict[str, Any]:
        """The tax details override of a transaction: ``taxDetailsOverride`` and one
        ``taxDetails`` line per (item line reference, net amount, tax) with tax, recording
        billing's tax exactly (billing computed it; NetSuite's tax engine must not)."""
        lines: list[dict[str, Any]] = []
        for reference, basis, tax in taxed:
            if not tax:
                continue
            code_id, type_id = await self._billed_tax(operation)
            lines.append(
                {
                    "taxDetailsReference": reference,
                    "taxType": {"id": type_id},
                    "taxCode": {"id": code_id},
                    "taxBasis": basis,
                    "taxRate": tax_rate(tax, basis),
                    "taxAmount": tax,
                }
            )
        return {"taxDetailsOverride": True, "taxDetails": {"items": lines}}

    async def _open_period(self, period: str, operation: str, what: str) -> str:
        """The internal id of the open monthly period ``YYYY-MM``; rejects a closed one."""
        name = period_name(period)
        rows = await self.suiteql(
            operation,
            "SELECT id, periodname, closed FROM accountingperiod "
            f"WHERE periodname = {sql_string(name)} AND isquarter = 'F' AND isyear = 'F' "
            "AND isadjust = 'F'",
        )
        if not rows:
            raise RejectedError(
                VENDOR,
                operation,
                f"NetSuite has no accounting period {name!r} for {what}: set up the fiscal "
                "calendar",
                code="NO_PERIOD",
            )
        row = rows[0]
        if _is_true(row.get("closed")):
            raise RejectedError(
                VENDOR,
                operation,
                f"accounting period {name} is closed in NetSuite: {what} cannot be posted into "
                "it (reopen the period, or post the correction in an open period)",
                code="PERIOD_CLOSED",
            )
        return str(row["id"])

    # -- receivables ------------------------------------------------------------------------

    async def _credit_memos(self, receivable_id: str, operation: str) -> list[dict[str, Any]]:
        """The credit memos created from the invoice, expanded (lines and apply sublist)."""
        rows = await self.suiteql(
            operation,
            "SELECT id FROM transaction "
            f"WHERE type = 'CustCred' AND createdfrom = {receivable_id} ORDER BY id",
        )
        return [
            await self._get("creditMemo", str(row["id"]), operation, expand=True) for row in rows
        ]

    async def _receivable(
        self,
        record: dict[str, Any],
        operation: str,
        memos: list[dict[str, Any]] | None = None,
    ) -> Receivable:
        receivable_id = str(record["id"])
        currency_id = _ref_id(record.get("currency"))
        customer_id = _ref_id(record.get("entity"))
        if currency_id is None or customer_id is None:
            raise RejectedError(
                VENDOR, operation, f"invoice {receivable_id} has no currency or customer"
            )
        total = _decimal(record.get("total"), "invoice total", operation)
        remaining = _decimal(record.get("amountRemaining", 0), "amount remaining", operation)
        if memos is None:
            memos = await self._credit_memos(receivable_id, operation)
        credited = Decimal(0)
        reversal_ids: list[str] = []
        for credit in memos:
            reversal_ids.append(str(credit["id"]))
            for entry in (credit.get("apply") or {}).get("items") or []:
                if _ref_id(entry.get("doc")) == receivable_id and entry.get("apply", True):
                    credited += _decimal(entry.get("amount"), "credit applied", operation)
        paid = max(total - remaining - credited, Decimal(0))
        state = ReceivableState.of(remaining, paid, credited)
        try:
            issue_date = date.fromisoformat(str(record.get("tranDate")))
            due_date = date.fromisoformat(str(record.get("dueDate") or record.get("tranDate")))
        except ValueError:
            raise RejectedError(
                VENDOR, operation, f"invoice {receivable_id} has no valid tranDate or dueDate"
            ) from None
        return Receivable(
            receivable_id=receivable_id,
            external_id=str(record.get("externalId") or ""),
            invoice_id=str(record["otherRefNum"]) if record.get("otherRefNum") else None,
            customer_id=customer_id,
            currency=await self._currency_code(currency_id, operation),
            total=total,
            tax=_decimal(record.get("taxTotal", 0), "tax total", operation),
            amount_paid=paid,
            amount_credited=credited,
            amount_due=remaining,
            issue_date=issue_date,
            due_date=due_date,
            state=state,
            reversal_ids=tuple(reversal_ids),
        )

    async def find_receivable(self, external_id: str) -> Receivable | None:
        operation = "find_receivable"
        record = await self._find("invoice", external_id, operation)
        return None if record is None else await self._receivable(record, operation)

    async def _terms_for(self, days: int, operation: str) -> str | None:
        for terms in PaymentTerms:
            if terms.days == days:
                return await self._term_id(terms, operation)
        return None

    async def _receivable_body(
        self, invoice: FinalizedInvoice, customer_id: str, external_id: str
    ) -> dict[str, Any]:
        operation = "post_receivable"
        enforce(VENDOR, operation, rules.unpostable(invoice, ERP))
        items = await self._item_ids([line.sku for line in invoice.lines], operation)
        lines: list[dict[str, Any]] = []
        for line in invoice.lines:
            entry: dict[str, Any] = {
                "item": {"id": items[line.sku]},
                "quantity": 1,
                "rate": line.amount,
                "amount": line.amount,
                "description": (line.description or line.sku)[:4000],
                "custcol_revsync_line": line.line_id,
                "taxDetailsReference": line.line_id,
            }
            if isinstance(line, SubscriptionLine):
                entry["revRecStartDate"] = line.service_start.isoformat()
                entry["revRecEndDate"] = (line.service_end - timedelta(days=1)).isoformat()
            lines.append(entry)
        body: dict[str, Any] = {
            "externalId": external_id,
            "entity": {"id": customer_id},
            "currency": {"id": await self._currency_id(invoice.currency, operation)},
            "tranDate": invoice.issue_date.isoformat(),
            "dueDate": invoice.due_date.isoformat(),
            "otherRefNum": invoice.invoice_id[:MAX_OTHER_REF],
            "memo": f"revsync invoice {invoice.invoice_id}",
            "item": {"items": lines},
            **await self._tax_details(
                [(line.line_id, line.amount, line.tax_amount) for line in invoice.lines],
                operation,
            ),
        }
        terms = await self._terms_for((invoice.due_date - invoice.issue_date).days, operation)
        if terms is not None:
            body["terms"] = {"id": terms}
        return body

    async def post_receivable(
        self, invoice: FinalizedInvoice, customer_id: str, external_id: str
    ) -> Receivable:
        operation = "post_receivable"
        existing = await self.find_receivable(external_id)
        if existing is None:
            body = await self._receivable_body(invoice, customer_id, external_id)
            record = await self._create(
                "invoice", self._record_url("invoice"), body, external_id, operation
            )
            existing = await self._receivable(record, operation)
        enforce(VENDOR, operation, rules.other_invoice(existing, invoice, external_id))
        return existing

    # -- revenue journals -------------------------------------------------------------------

    async def _journal_posting(
        self, record: dict[str, Any], deferred_id: str, operation: str
    ) -> JournalPosting:
        """A journal entry read back: the signed amount is what it debits deferred revenue."""
        amount = Decimal(0)
        for line in (record.get("line") or {}).get("items") or []:
            if _ref_id(line.get("account")) != deferred_id:
                continue
            if line.get("debit") is not None:
                amount += _decimal(line["debit"], "journal debit", operation)
            if line.get("credit") is not None:
                amount -= _decimal(line["credit"], "journal credit", operation)
        posting = record.get("postingPeriod") or {}
        period = period_from_name(str(posting.get("refName") or "")) if posting else None
        if period is None:
            period = period_of(date.fromisoformat(str(record.get("tranDate"))))
        return JournalPosting(
            journal_entry_id=str(record["id"]),
            journal_id=str(record.get("externalId") or "").replace("~", "/"),
            period=period,
            amount=amount,
            currency=await self._currency_code(_ref_id(record.get("currency")) or "", operation),
        )

    async def post_revenue_journal(self, journal: RevenueJournal) -> JournalPosting:
        operation = "post_revenue_journal"
        key = journal_external_id(journal.journal_id)
        currency_id = await self._currency_id(journal.currency, operation)
        deferred_id = await self._account_id(self.deferred_revenue_account, operation)
        revenue_id = await self._account_id(self.revenue_account, operation)
        record = await self._find("journalEntry", key, operation, expand=True)
        if record is None:
            period_id = await self._open_period(
                journal.period, operation, f"revenue journal {journal.journal_id}"
            )
            amount = abs(journal.amount)
            recognise = journal.amount > 0
            memo = (journal.memo or f"revsync revenue {journal.journal_id}")[:MAX_MEMO]
            entity = {"entity": {"id": journal.customer_id}} if journal.customer_id else {}
            body = {
                "externalId": key,
                "currency": {"id": currency_id},
                "tranDate": (closes_on(journal.period) - timedelta(days=1)).isoformat(),
                "postingPeriod": {"id": period_id},
                "memo": memo,
                "line": {
                    "items": [
                        {
                            "account": {"id": deferred_id},
                            ("debit" if recognise else "credit"): amount,
                            "memo": memo,
                            **entity,
                        },
                        {
                            "account": {"id": revenue_id},
                            ("credit" if recognise else "debit"): amount,
                            "memo": memo,
                            **entity,
                        },
                    ]
                },
            }
            record = await self._create(
                "journalEntry",
                self._record_url("journalEntry"),
                body,
                key,
                operation,
                expand=True,
            )
        posting = await self._journal_posting(record, deferred_id, operation)
        enforce(VENDOR, operation, rules.other_journal(posting, journal, key))
        return posting

    # -- payments ---------------------------------------------------------------------------

    async def _payment_posting(self, record: dict[str, Any], operation: str) -> PaymentPosting:
        applied_to = [
            _ref_id(entry.get("doc"))
            for entry in (record.get("apply") or {}).get("items") or []
            if entry.get("apply", True)
        ]
        currency_id = _ref_id(record.get("currency"))
        if currency_id is None or not applied_to or applied_to[0] is None:
            raise RejectedError(
                VENDOR,
                operation,
                f"customer payment {record.get('id')} has no currency or applies to nothing",
            )
        return PaymentPosting(
            payment_record_id=str(record["id"]),
            payment_id=str(record.get("externalId") or ""),
            receivable_id=applied_to[0],
            amount=_decimal(record.get("payment"), "payment", operation),
            applied=_decimal(record.get("applied", 0), "payment applied", operation),
            unapplied=_decimal(record.get("unapplied", 0), "payment unapplied", operation),
            currency=await self._currency_code(currency_id, operation),
            paid_on=date.fromisoformat(str(record.get("tranDate"))),
        )

    async def apply_payment(self, payment: PaymentApplication) -> PaymentPosting:
        operation = "apply_payment"
        ref = self._internal_ref(payment.receivable_id, "invoice", operation)
        record = await self._find("customerPayment", payment.payment_id, operation, expand=True)
        if record is None:
            receivable = await self._receivable(
                await self._get("invoice", ref, operation), operation
            )
            enforce(VENDOR, operation, rules.unpayable(receivable, payment, ref))
            body = {
                "externalId": payment.payment_id,
                "payment": payment.amount,
                "tranDate": payment.paid_on.isoformat(),
                "memo": f"revsync payment {payment.payment_id} of invoice {payment.invoice_id}"[
                    :MAX_MEMO
                ],
            }
            record = await self._create(
                "customerPayment",
                f"{self._record_url('invoice', ref)}/!transform/customerPayment",
                body,
                payment.payment_id,
                operation,
                expand=True,
            )
        posting = await self._payment_posting(record, operation)
        what = f"customer payment {posting.payment_record_id}"
        enforce(
            VENDOR,
            operation,
            rules.other_receivable(what, payment.payment_id, posting.receivable_id, ref),
        )
        return posting

    # -- reversal ---------------------------------------------------------------------------

    async def reverse_receivable(
        self, receivable_id: str, external_id: str, reason: str
    ) -> Receivable:
        operation = "reverse_receivable"
        ref = self._internal_ref(receivable_id, "invoice", operation)
        credit = await self._find("creditMemo", external_id, operation)
        if credit is not None:
            reverses = str(_ref_id(credit.get("createdFrom")))
            what = f"credit memo {credit['id']}"
            enforce(VENDOR, operation, rules.other_receivable(what, external_id, reverses, ref))
            return await self._receivable(await self._get("invoice", ref, operation), operation)
        invoice = await self._get("invoice", ref, operation, expand=True)
        memos = await self._credit_memos(ref, operation)
        receivable = await self._receivable(invoice, operation, memos)
        if receivable.state is ReceivableState.REVERSED:
            return receivable
        enforce(VENDOR, operation, rules.irreversible(receivable, ref, ERP))
        # Credit what is left of each line, its tax as billing computed it: the lines and tax
        # details are sent (never copied by the transform), so a credit memo records exactly
        # what is left even when credit notes took part of it already (a copy would credit
        # every line in full and leave the difference unapplied, owed to the customer).
        left = [
            (row, amount, tax)
            for row, amount, tax in self._left_to_credit(invoice, memos, operation)
            if amount or tax
        ]
        body: dict[str, Any] = {
            "externalId": external_id,
            "memo": f"Reversed by revsync: {reason}"[:MAX_MEMO],
            "item": {
                "items": [
                    {**self._memo_line(row), "amount": amount, "rate": amount}
                    for row, amount, _ in left
                ]
            },
            **await self._tax_details(
                [(_line_reference(row), amount, tax) for row, amount, tax in left], operation
            ),
        }
        url = f"{self._record_url('invoice', ref)}/!transform/creditMemo?replace=item,taxDetails"
        await self._create("creditMemo", url, body, external_id, operation)
        return await self._receivable(await self._get("invoice", ref, operation), operation)

    # -- partial credit (a billing credit note) ---------------------------------------------

    @staticmethod
    def _memo_line(row: dict[str, Any]) -> dict[str, Any]:
        """A credit memo line for the invoice line ``row`` (amounts set by the caller)."""
        line: dict[str, Any] = {
            "item": {"id": _ref_id(row.get("item"))},
            "quantity": 1,
            "custcol_revsync_line": row.get("custcol_revsync_line"),
            "taxDetailsReference": _line_reference(row),
        }
        if row.get("description"):
            line["description"] = row["description"]
        return line

    @staticmethod
    def _credit_lines(record: dict[str, Any], operation: str) -> list[CreditLine]:
        """A credit memo's lines by billing line id (``custcol_revsync_line``), each with the
        tax its tax details record."""
        taxes = line_taxes(record, operation)
        lines: list[CreditLine] = []
        for row in (record.get("item") or {}).get("items") or []:
            lines.append(
                CreditLine(
                    line_id=str(row.get("custcol_revsync_line") or f"line {row.get('line')}"),
                    amount=_decimal(row.get("amount", 0), "credit memo line amount", operation),
                    tax=taxes.get(str(row.get("taxDetailsReference")), Decimal(0)),
                )
            )
        return lines

    def _left_to_credit(
        self, invoice: dict[str, Any], memos: list[dict[str, Any]], operation: str
    ) -> list[tuple[dict[str, Any], Decimal, Decimal]]:
        """Each invoice line with the amount and tax its credit memos have not credited yet."""
        credited: dict[str, tuple[Decimal, Decimal]] = {}
        for memo in memos:
            for line in self._credit_lines(memo, operation):
                amount, tax = credited.get(line.line_id, (Decimal(0), Decimal(0)))
                credited[line.line_id] = (amount + line.amount, tax + line.tax)
        left: list[tuple[dict[str, Any], Decimal, Decimal]] = []
        taxes = line_taxes(invoice, operation)
        for row in (invoice.get("item") or {}).get("items") or []:
            amount = _decimal(row.get("amount", 0), "invoice line amount", operation)
            tax = taxes.get(str(row.get("taxDetailsReference")), Decimal(0))
            done_amount, done_tax = credited.get(
                str(row.get("custcol_revsync_line")), (Decimal(0), Decimal(0))
            )
            left.append((row, amount - done_amount, tax - done_tax))
        return left

    async def _credit_posting(self, record: dict[str, Any], operation: str) -> CreditPosting:
        applied_to = [
            _ref_id(entry.get("doc"))
            for entry in (record.get("apply") or {}).get("items") or []
            if entry.get("apply", True)
        ]
        return CreditPosting(
            credit_memo_id=str(record["id"]),
            external_id=str(record.get("externalId") or ""),
            receivable_id=_ref_id(record.get("createdFrom")) or (applied_to or [""])[0] or "",
            currency=await self._currency_code(_ref_id(record.get("currency")) or "", operation),
            lines=tuple(line for line in self._credit_lines(record, operation) if line.total),
            total=_decimal(record.get("total"), "credit memo total", operation),
            applied=_decimal(record.get("applied", 0), "credit memo applied", operation),
            unapplied=_decimal(record.get("unapplied", 0), "credit memo unapplied", operation),
        )

    async def credit_receivable(self, credit: ReceivableCredit) -> CreditPosting:
        operation = "credit_receivable"
        ref = self._internal_ref(credit.receivable_id, "invoice", operation)
        key = credit.external_id
        record = await self._find("creditMemo", key, operation, expand=True)
        if record is None:
            invoice = await self._get("invoice", ref, operation, expand=True)
            memos = await self._credit_memos(ref, operation)
            receivable = await self._receivable(invoice, operation, memos)
            what = f"credit note {key} of invoice {credit.invoice_id} (NetSuite invoice {ref})"
            left = {
                str(row.get("custcol_revsync_line")): (row, amount, tax)
                for row, amount, tax in self._left_to_credit(invoice, memos, operation)
            }
            remaining = {line_id: (amount, tax) for line_id, (_, amount, tax) in left.items()}
            enforce(VENDOR, operation, rules.uncreditable(receivable, credit, remaining, what, ERP))
            credited = [line for line in credit.lines if line.total]
            lines = [
                {
                    **self._memo_line(left[line.line_id][0]),
                    "rate": line.amount,
                    "amount": line.amount,
                }
                for line in credited
            ]
            taxes = await self._tax_details(
                [
                    (_line_reference(left[line.line_id][0]), line.amount, line.tax)
                    for line in credited
                ],
                operation,
            )
            memo = f"revsync credit note {key}" + (f": {credit.reason}" if credit.reason else "")
            record = await self._create(
                "creditMemo",
                f"{self._record_url('invoice', ref)}/!transform/creditMemo?replace=item,taxDetails",
                {"externalId": key, "memo": memo[:MAX_MEMO], "item": {"items": lines}, **taxes},
                key,
                operation,
                expand=True,
            )
        posting = await self._credit_posting(record, operation)
        what = f"credit memo {posting.credit_memo_id}"
        enforce(VENDOR, operation, rules.other_receivable(what, key, posting.receivable_id, ref))
        enforce(VENDOR, operation, rules.other_credit(posting, credit, key))
        return posting
