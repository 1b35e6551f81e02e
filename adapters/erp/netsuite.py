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
- **Customers** are upserted with ``PUT /customer/eid:<external id>?replace=addressBook``
  (the billing address replaces the address book instead of being appended on each upsert):
  ``companyName``, ``legalName``, ``email``, ``vatRegNumber`` (tax id), ``currency`` and one
  default-billing ``addressBook`` entry whose ``country`` is the ISO 3166 code.
- **Sales orders** reference their items by internal id, resolved from the SKUs with the item
  query above. Each line carries ``quantity``, ``rate`` and ``amount``; a discounted line's
  rate is its effective unit rate (amount / quantity, with as few decimals as reproduce the
  amount exactly) and its description names the list price and the discount.
- Creates and upserts answer ``204 No Content`` with a ``Location`` header ending in the new
  record's internal id.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote as url_quote

import httpx

from adapters.errors import (
    NotFoundError,
    RejectedError,
    UnknownOutcomeError,
    VendorError,
)
from adapters.http import VendorHttp, classify_by_status, decode_json, vendor_error
from domain.catalog import CatalogItem
from domain.customer import Customer
from domain.money import quantize
from domain.order import OrderLine, SalesOrder, SalesOrderDraft, SalesOrderStatus
from domain.quote import BillingType, PaymentTerms

VENDOR = "netsuite"

# NetSuite's largest SuiteQL page.
SUITEQL_PAGE_SIZE = 1000
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
    rejections carrying NetSuite's error code. ``INVALID_LOGIN`` is transient for now: an
    expired token is fixed by renewing it, not by compensating the saga.
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
        return vendor_error(VENDOR, operation, response, message, code, transient=True)
    if status == 401 or code == "INVALID_LOGIN":
        message = (
            "NetSuite refused the access token (INVALID_LOGIN); renew the token "
            f"(automatic refresh is not implemented yet): {detail}"
        )
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
    if isinstance(value, bool):
        raise RejectedError(VENDOR, operation, f"{what} is not a number: {value!r}")
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise RejectedError(VENDOR, operation, f"{what} is not a number: {value!r}") from None
    if not number.is_finite():
        raise RejectedError(VENDOR, operation, f"{what} is not a finite number: {value!r}")
    return number


def _ref_id(value: Any) -> str | None:
    """The internal id of a reference field (``{"id": "12", "refName": ...}``)."""
    if isinstance(value, dict):
        ref = value.get("id")
        return None if ref is None else str(ref)
    return None if value is None else str(value)


def _is_true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.upper() in ("T", "TRUE"))


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
    """revsync's reading of a NetSuite ``orderStatus`` code."""
    if code == STATUS_CANCELLED:
        return SalesOrderStatus.CANCELLED
    if code in (STATUS_CLOSED, STATUS_BILLED):
        return SalesOrderStatus.CLOSED
    return SalesOrderStatus.PENDING_FULFILLMENT


class NetSuiteErp:
    """:class:`adapters.ports.ErpPort` on NetSuite's REST web services."""

    vendor = VENDOR

    def __init__(self, http: httpx.AsyncClient, *, base_url: str, access_token: str) -> None:
        self._http = VendorHttp(VENDOR, http, classify_netsuite)
        root = base_url.rstrip("/")
        self._records = f"{root}/services/rest/record/v1"
        self._suiteql = f"{root}/services/rest/query/v1/suiteql"
        self._auth = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
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
        if customer.tax_id:
            body["vatRegNumber"] = customer.tax_id
        if customer.currency:
            body["currency"] = {"id": await self._currency_id(customer.currency, operation)}
        response = await self._request(
            operation,
            "PUT",
            self._record_url("customer", self._eid(external_id)),
            json_body=body,
            params={"replace": "addressBook"},
        )
        return self._created_id(operation, response)

    # -- sales orders -----------------------------------------------------------------------

    async def _get_order(self, ref: str, operation: str) -> dict[str, Any]:
        response = await self._request(operation, "GET", self._record_url("salesOrder", ref))
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
        line_sum = sum((line.amount for line in draft.lines), Decimal(0))
        if line_sum != draft.total:
            raise RejectedError(
                VENDOR,
                operation,
                f"line amounts add up to {line_sum}, not the order total {draft.total}",
                code="TOTAL_MISMATCH",
            )
        items = {
            str(row["itemid"]): str(row["id"])
            for row in await self._items((line.sku for line in draft.lines), operation)
        }
        missing = sorted({line.sku for line in draft.lines} - items.keys())
        if missing:
            raise RejectedError(
                VENDOR,
                operation,
                f"items not in the NetSuite catalog: {', '.join(missing)}",
                code="UNKNOWN_ITEM",
            )
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
        operation = "cancel_sales_order"
        ref = url_quote(order_id, safe="")
        record = await self._get_order(ref, operation)
        if _ref_id(record.get("orderStatus")) in (STATUS_CANCELLED, STATUS_CLOSED):
            return await self._to_sales_order(record, operation)
        await self._request(
            operation,
            "PATCH",
            self._record_url("salesOrder", ref),
            json_body={
                "orderStatus": {"id": STATUS_CANCELLED},
                "memo": f"Cancelled by revsync: {reason}"[:999],
            },
        )
        return await self._to_sales_order(await self._get_order(ref, operation), operation)
