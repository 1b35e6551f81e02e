"""SAP S/4HANA Cloud ERP adapter: OData v2 APIs of a communication arrangement.

Everything goes to ``<base>/sap/opu/odata/sap/<SERVICE>/`` in JSON (``Accept:
application/json``), except journal entry postings, which are SOAP
(:mod:`adapters.erp.sap_soap`); the sandbox emulator (``sandbox/sap.py``,
``sandbox/sap_finance.py``) speaks the same shapes. Answers are ``{"d": {...}}`` or
``{"d": {"results": [...], "__count", "__next"}}``; decimals are strings both ways
(``Edm.Decimal``), dates ``/Date(ms)/``.

Mapping:

- **Customers**: business partners (``API_BUSINESS_PARTNER/A_BusinessPartner``), category 2
  (organisation), roles ``FLCU00``/``FLCU01`` (the customer, same number as the partner), one
  standard address with its e-mail, a tax number and one sales area (sales organisation,
  distribution channel, division, currency, payment terms), created by one deep insert.
  Field mapping in :mod:`adapters.erp.sap_fields`.
- **Catalog**: ``API_PRODUCT_SRV/A_Product`` (``Product`` is the SKU, ``IsMarkedForDeletion``
  inactive, the custom field ``YY1_RevsyncBilling_PRD`` ``recurring``/``one_time``, the English
  ``to_Description``), list prices from ``API_SLSPRICINGCONDITIONRECORD_SRV/
  A_SlsPrcgCndnRecdValidity`` (condition type ``PPR0`` of the sales organisation and
  distribution channel, one record per currency, ``to_SlsPrcgConditionRecord``
  ``ConditionRateValue`` in ``ConditionRateValueUnit``).
- **Sales orders**: ``API_SALES_ORDER_SRV/A_SalesOrder`` deep insert with ``to_Item`` (one item
  per line, ``Material`` the SKU, ``RequestedQuantity``, a ``PPR0`` pricing element carrying the
  effective unit rate: list price, or amount / quantity for a discounted line, as NetSuite's
  rate), ``to_Text`` (``TX01``: the full external key), order type ``OR``.
  ``TotalNetAmount`` is the total; ``OverallSDDocumentRejectionSts`` ``C`` means cancelled,
  ``OverallSDProcessStatus`` ``C`` completed (closed).
- **Cancel**: SAP has no cancel of a sales order through the API: every item is rejected
  (``PATCH A_SalesOrderItem`` with ``SalesDocumentRjcnReason``, ``10`` "Unreasonable request"
  by default) with ``If-Match`` of the item's ETag. A 412 (someone changed the item) re-reads it
  and tries once more; a second 412 is transient. A fully rejected order is returned as is.

Keys (S/4HANA has no idempotency header, and a second order with the same customer
reference is accepted: the adapter looks before it creates, and a lost answer is settled by
the retry's look-up):

- the sales order is keyed by ``PurchaseOrderByCustomer`` (35 characters at most):
  :func:`order_reference`: the external id itself when it fits and does not start with ``#``,
  else ``#`` and the first 34 characters of the base32 SHA-256 of the id (170 bits: no two ids
  collide in practice, and a hashed reference never equals a plain one). The full id is also
  kept in the header text ``TX01``, which the listing reads back for hashed references.
- the customer is keyed by ``BusinessPartnerIDByExtSystem`` (20 characters):
  :func:`customer_reference`: for ``acct-<account id>`` the account id when it fits, else ``#``
  and 19 characters of the hash (95 bits); the listing maps a plain reference back to
  ``acct-<reference>`` (a hashed one is not linked to an account).

Protocol:

- **Auth**: the communication user's Basic auth (``REVSYNC_SAP_AUTH=basic``) or OAuth 2.0
  client credentials against the tenant's ``/sap/bc/sec/oauth2/token`` (tokens cached, one
  refresh on a 401, :mod:`adapters.oauth`). A 401 with Basic, or a second 401, is transient
  naming the settings.
- **CSRF**: before the first write, ``GET`` of the service document with ``x-csrf-token:
  Fetch``; the token and the session cookies it set go with every write. A 403 with
  ``x-csrf-token: Required`` (the session or token expired) refetches once and resends once.
- **Errors** (:func:`classify_sap`): a SOAP fault (the journal entry posting service) is
  read by :func:`adapters.erp.sap_soap.fault_error`; OData's are
  ``{"error": {"code", "message": {"value"}}}``. 5xx, 408,
  429 (with ``Retry-After``), 401, 403 (authorization or CSRF: configuration), 412 (a
  concurrent change) and SAP's lock messages (``V1/042`` document being processed,
  ``M3/897``) are transient; 404 is not found; other 4xx are rejections with SAP's message
  code (``V1/390``...).
- **Paging**: listings send ``$top``/``$skip`` with ``$inlinecount=allpages``; the cursor is
  the next ``$skip``. Internal reads follow ``__next`` (server-driven paging).
- **Reconciliation's windows**: a sales order's ``changed`` window is ``$filter`` on
  ``LastChangeDateTime`` (``Edm.DateTimeOffset``: ``datetimeoffset'2026-03-01T10:00:00Z'``);
  a business partner's on ``LastChangeDate`` with ``LastChangeTime`` (a date and an
  ``Edm.Time``: ``time'PT10H00M00S'``). Creation is only a date there (``CreationDate``):
  a record's creation time is midnight UTC of that date, and a ``created`` window holds the
  records whose creation date's midnight falls in it. Keyed lookups are ``eq`` terms joined
  by ``or``, 20 a query (Gateway's URLs stay short).

Invoice-to-revenue methods: see :mod:`adapters.erp.sap_finance`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx

from adapters.erp import sap_fields, sap_soap
from adapters.erp.netsuite import line_rate
from adapters.erp.sap_finance import SapFinanceMixin
from adapters.errors import (
    RejectedError,
    Throttle,
    TransientError,
    UnknownOutcomeError,
    VendorError,
    enforce,
)
from adapters.http import VendorHttp, classify_by_status, decode_json, vendor_error, vendor_number
from adapters.oauth import AccessToken, TokenSource
from domain.catalog import CatalogItem
from domain.customer import Address, Customer
from domain.customer_master import FieldValue, MasterField
from domain.master_contracts import golden_id_from_erp
from domain.order import SalesOrder, SalesOrderDraft, SalesOrderStatus
from domain.quote import BillingType, PaymentTerms
from domain.reconciliation import (
    Basis,
    CustomerRecord,
    OrderRecord,
    Page,
    System,
    Window,
    fingerprints,
)

VENDOR = "sap"
ODATA = "/sap/opu/odata/sap"
BP = "API_BUSINESS_PARTNER"
SO = "API_SALES_ORDER_SRV"
PRODUCT = "API_PRODUCT_SRV"
PRICES = "API_SLSPRICINGCONDITIONRECORD_SRV"
MAX_PO_REFERENCE = 35
MAX_EXT_ID = 20
KEY_TEXT_ID = "TX01"
DEFAULT_REJECTION_REASON = "10"
MAX_PAGE = 1000

# Payment terms keys of the tenant for revsync's terms.
PAYMENT_TERMS: dict[PaymentTerms, str] = {
    PaymentTerms.DUE_ON_RECEIPT: "0001",
    PaymentTerms.NET15: "NT15",
    PaymentTerms.NET30: "NT30",
    PaymentTerms.NET45: "NT45",
    PaymentTerms.NET60: "NT60",
    PaymentTerms.NET90: "NT90",
}
# SAP messages meaning "locked by someone else right now": worth retrying.
_LOCK_CODES = frozenset({"V1/042", "M3/897", "F5/290"})
_WRITES = frozenset({"POST", "PATCH", "PUT", "MERGE", "DELETE"})


# -- keys -----------------------------------------------------------------------------------


def _digest(external_id: str, length: int) -> str:
    raw = hashlib.sha256(external_id.encode()).digest()
    return "#" + base64.b32encode(raw).decode("ascii").rstrip("=")[: length - 1]


def order_reference(external_id: str) -> str:
    """The ``PurchaseOrderByCustomer`` (at most 35 characters) of a sales order's key."""
    if len(external_id) <= MAX_PO_REFERENCE and not external_id.startswith("#"):
        return external_id
    return _digest(external_id, MAX_PO_REFERENCE)


def customer_reference(external_id: str) -> str:
    """The ``BusinessPartnerIDByExtSystem`` (at most 20 characters) of a customer's key."""
    account = external_id.removeprefix("acct-")
    plain = external_id.startswith("acct-") and 0 < len(account) <= MAX_EXT_ID
    if plain and not account.startswith("#"):
        return account
    return _digest(external_id, MAX_EXT_ID)


def customer_key(reference: str) -> str | None:
    """The external id a plain customer reference stands for (None for a hashed one)."""
    return None if not reference or reference.startswith("#") else f"acct-{reference}"


def literal(value: str) -> str:
    """``value`` as an OData string literal."""
    return "'" + value.replace("'", "''") + "'"


def odata_date(day: date) -> str:
    moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return f"/Date({int(moment.timestamp() * 1000)})/"


def parse_date(value: Any) -> date | None:
    raw = str(value or "")
    if not raw.startswith("/Date(") or not raw.endswith(")/"):
        return None
    digits = raw[6:-2].split("+")[0]
    if digits[1:].find("-") >= 0:
        digits = digits[0] + digits[1:].split("-")[0]
    try:
        return datetime.fromtimestamp(int(digits) / 1000, tz=UTC).date()
    except ValueError:
        return None


def decimal(value: Any, what: str, operation: str) -> Decimal:
    return vendor_number(VENDOR, operation, value, what)


def _next_midnight(moment: datetime) -> datetime:
    """The first midnight (UTC) at or after ``moment``."""
    utc = moment.astimezone(UTC)
    day = datetime(utc.year, utc.month, utc.day, tzinfo=UTC)
    return day if day == utc else day + timedelta(days=1)


def _odata_timestamp(moment: datetime, kind: str) -> str:
    text = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"datetimeoffset'{text}Z'" if kind == "offset" else f"datetime'{text}'"


def _odata_time(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return f"time'PT{utc.hour:02d}H{utc.minute:02d}M{utc.second:02d}S'"


def created_filter(window: Window, column: str = "CreationDate") -> str | None:
    """Records whose creation date's midnight is in the window; None: no midnight is."""
    first, end = _next_midnight(window.start), _next_midnight(window.end)
    if first >= end:
        return None
    return (
        f"{column} ge {_odata_timestamp(first, 'date')} and "
        f"{column} lt {_odata_timestamp(end, 'date')}"
    )


def date_time_filter(window: Window, date_column: str, time_column: str) -> str:
    """A date column and a time column together in ``[start, end)``."""
    start, end = window.start.astimezone(UTC), window.end.astimezone(UTC)
    start_day = _odata_timestamp(datetime(start.year, start.month, start.day), "date")
    end_day = _odata_timestamp(datetime(end.year, end.month, end.day), "date")
    return (
        f"({date_column} gt {start_day} or ({date_column} eq {start_day} and "
        f"{time_column} ge {_odata_time(start)})) and ({date_column} lt {end_day} or "
        f"({date_column} eq {end_day} and {time_column} lt {_odata_time(end)}))"
    )


def parse_time_of_day(value: Any) -> timedelta | None:
    match = re.fullmatch(r"PT(\d+)H(\d+)M(\d+)S", str(value or ""))
    if match is None:
        return None
    hours, minutes, seconds = (int(g) for g in match.groups())
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)


def parse_timestamp(value: Any) -> datetime | None:
    """``/Date(ms)/`` or ``/Date(ms+0000)/`` as an aware UTC time."""
    match = re.fullmatch(r"/Date\((-?\d+)(?:[+-]\d+)?\)/", str(value or ""))
    if match is None:
        return None
    return datetime.fromtimestamp(int(match.group(1)) / 1000, tz=UTC)


def _midnight(value: Any) -> datetime | None:
    day = parse_date(value)
    return None if day is None else datetime(day.year, day.month, day.day, tzinfo=UTC)


# Keys per lookup query (``eq`` terms joined by ``or``).
LOOKUP_BATCH = 20


def results(value: Any) -> list[dict[str, Any]]:
    """The entries of an expanded navigation property (``{"results": [...]}``)."""
    if isinstance(value, dict):
        value = value.get("results")
    return [x for x in value if isinstance(x, dict)] if isinstance(value, list) else []


# -- errors ---------------------------------------------------------------------------------


def error_detail(body: Any) -> tuple[str | None, str | None]:
    """``(code, message)`` of an OData v2 error body."""
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return None, None
    error = body["error"]
    code = error.get("code")
    message = error.get("message")
    if isinstance(message, dict):
        message = message.get("value")
    return (
        str(code) if code is not None else None,
        str(message) if message is not None else None,
    )


def classify_sap(operation: str, response: httpx.Response) -> VendorError:
    """What an SAP Gateway error answer means for revsync (see the module docstring)."""
    fault = sap_soap.fault_error(VENDOR, operation, response)
    if fault is not None:
        return fault
    status = response.status_code
    try:
        body = decode_json(response)
    except ValueError:
        body = None
    code, message = error_detail(body)
    if message is None:
        raw = response.text.strip()
        message = raw[:300] if raw else response.reason_phrase or f"HTTP {status}"
        if status in (401, 403, 412):
            return vendor_error(VENDOR, operation, response, message, code, transient=True)
        return classify_by_status(VENDOR, operation, response, message, code)
    if status == 429:
        return vendor_error(
            VENDOR,
            operation,
            response,
            f"throttled by SAP: {message}",
            code,
            transient=True,
            throttle=Throttle.rate("SAP API rate limit"),
        )
    if status in (401, 403):
        what = "logon" if status == 401 else "authorization"
        return vendor_error(
            VENDOR, operation, response, f"SAP refused the {what}: {message}", code, transient=True
        )
    if status == 412:
        return vendor_error(
            VENDOR,
            operation,
            response,
            f"changed by someone else meanwhile (stale ETag): {message}",
            code or "PRECONDITION_FAILED",
            transient=True,
        )
    transient = status >= 500 or status == 408 or code in _LOCK_CODES
    return vendor_error(VENDOR, operation, response, message, code, transient=transient)


# -- the session: auth and CSRF -------------------------------------------------------------


class BasicAuth:
    """The communication user's Basic credentials (never refreshed)."""

    def __init__(self, username: str, password: str) -> None:
        raw = f"{username}:{password}".encode()
        self._header = "Basic " + base64.b64encode(raw).decode("ascii")

    def __repr__(self) -> str:
        return "BasicAuth(...)"

    def header(self) -> str:
        return self._header


class SapSession:
    """Sends requests with the credentials and, for writes, the CSRF token and the session
    cookies it belongs to."""

    def __init__(
        self,
        http: VendorHttp,
        *,
        base_url: str,
        basic: BasicAuth | None,
        tokens: TokenSource | None,
        fix: str,
    ) -> None:
        if (basic is None) == (tokens is None):
            raise ValueError("SapSession needs Basic credentials or a token source")
        self.http = http
        self.base_url = base_url.rstrip("/")
        self._basic = basic
        self._tokens = tokens
        self.fix = fix
        self._csrf: tuple[str, str] | None = None
        self._csrf_lock = asyncio.Lock()
        #: CSRF token fetches so far (for tests and metrics).
        self.csrf_fetches = 0

    async def _authorization(self) -> tuple[str, AccessToken | None]:
        if self._basic is not None:
            return self._basic.header(), None
        assert self._tokens is not None
        token = await self._tokens.get()
        return f"Bearer {token.value}", token

    async def _fetch_csrf(
        self, operation: str, service: str, stale: tuple[str, str] | None
    ) -> tuple[str, str]:
        async with self._csrf_lock:
            if self._csrf is not None and self._csrf is not stale:
                return self._csrf
            authorization, _ = await self._authorization()
            response = await self.http.request(
                operation,
                "GET",
                f"{self.base_url}{ODATA}/{service}/",
                ok=(200,),
                headers={
                    "Accept": "application/json",
                    "Authorization": authorization,
                    "x-csrf-token": "Fetch",
                },
            )
            self.csrf_fetches += 1
            token = response.headers.get("x-csrf-token")
            if not token or token.lower() == "required":
                raise TransientError(
                    VENDOR, operation, "SAP answered no CSRF token to x-csrf-token: Fetch"
                )
            cookie = "; ".join(f"{name}={value}" for name, value in response.cookies.items())
            self._csrf = (token, cookie)
            return self._csrf

    async def send(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        content: bytes,
        content_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """A request to ``<base><path>`` outside OData (a SOAP service) with a raw body:
        credentials only, a 401 refreshing an OAuth token once."""
        return await self.request(
            operation,
            method,
            "",
            "",
            content=content,
            content_type=content_type,
            headers=headers,
            path=path,
            with_csrf=False,
        )

    async def request(
        self,
        operation: str,
        method: str,
        service: str,
        resource: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        ok: tuple[int, ...] = (200, 201, 204),
        path: str | None = None,
        with_csrf: bool = True,
        content: bytes | None = None,
        content_type: str | None = None,
    ) -> httpx.Response:
        """One request to ``<base>/sap/opu/odata/sap/<service>/<resource>``; a 401 refreshes
        an OAuth token once, a 403 ``x-csrf-token: Required`` refetches the token once."""
        write = with_csrf and method.upper() in _WRITES
        url = f"{self.base_url}{path}" if path else f"{self.base_url}{ODATA}/{service}/{resource}"
        refreshed = csrf_retried = False
        while True:
            authorization, token = await self._authorization()
            send = {"Accept": "application/json", **(headers or {}), "Authorization": authorization}
            csrf = None
            if write:
                csrf = self._csrf or await self._fetch_csrf(operation, service, None)
                send["x-csrf-token"] = csrf[0]
                if csrf[1]:
                    send["Cookie"] = csrf[1]
            response = await self.http.request(
                operation,
                method,
                url,
                ok=(*ok, 401, 403),
                json_body=json_body,
                params=params,
                headers=send,
                content=content,
                content_type=content_type,
            )
            status = response.status_code
            if status == 401 and 401 not in ok:
                if token is not None and self._tokens is not None and not refreshed:
                    self._tokens.invalidate(token)
                    refreshed = True
                    continue
                error = classify_sap(operation, response)
                what = "the credentials" if not refreshed else "a freshly issued token too"
                raise TransientError(
                    VENDOR,
                    operation,
                    f"SAP refused {what} ({error.message}); check {self.fix}",
                    status=401,
                    code=error.code or "LOGON_FAILED",
                )
            csrf_required = response.headers.get("x-csrf-token", "").lower() == "required"
            if status == 403 and 403 not in ok:
                if write and csrf_required and not csrf_retried:
                    csrf_retried = True
                    await self._fetch_csrf(operation, service, csrf)
                    continue
                if csrf_required:
                    raise TransientError(
                        VENDOR,
                        operation,
                        "SAP refused a freshly fetched CSRF token (x-csrf-token: Required)",
                        status=403,
                        code="CSRF_TOKEN_REQUIRED",
                    )
                raise classify_sap(operation, response)
            return response


# -- the adapter ----------------------------------------------------------------------------


def order_status(order: Mapping[str, Any]) -> SalesOrderStatus:
    if order.get("OverallSDDocumentRejectionSts") == "C":
        return SalesOrderStatus.CANCELLED
    if order.get("OverallSDProcessStatus") == "C":
        return SalesOrderStatus.CLOSED
    return SalesOrderStatus.PENDING_FULFILLMENT


def _entity(response: httpx.Response, what: str, operation: str) -> dict[str, Any]:
    body = decode_json(response)
    entity = body.get("d") if isinstance(body, dict) else None
    if not isinstance(entity, dict):
        raise UnknownOutcomeError(VENDOR, operation, f"{what} answer is not an OData entity")
    return entity


def _collection(response: httpx.Response, operation: str) -> dict[str, Any]:
    body = decode_json(response)
    data = body.get("d") if isinstance(body, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise TransientError(VENDOR, operation, "collection answer without d.results")
    return data


def _customer_record(row: dict[str, Any]) -> CustomerRecord:
    key = customer_key(str(row.get("BusinessPartnerIDByExtSystem") or ""))
    changed_day = _midnight(row.get("LastChangeDate"))
    time_of_day = parse_time_of_day(row.get("LastChangeTime"))
    return CustomerRecord(
        system=System.ERP,
        record_id=str(row.get("Customer") or row["BusinessPartner"]),
        account_id=golden_id_from_erp(key) if key else None,
        fields=fingerprints(sap_fields.golden_fields(row)),
        created_at=_midnight(row.get("CreationDate")),
        changed_at=None if changed_day is None else changed_day + (time_of_day or timedelta(0)),
    )


class SapErp(SapFinanceMixin):
    """:class:`adapters.ports.ErpPort` on SAP S/4HANA Cloud's OData APIs."""

    vendor = VENDOR

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        username: str | None = None,
        password: str | None = None,
        tokens: TokenSource | None = None,
        fix: str = "REVSYNC_SAP_USERNAME and REVSYNC_SAP_PASSWORD",
        sales_organization: str = "1010",
        distribution_channel: str = "10",
        division: str = "00",
        order_type: str = "OR",
        rejection_reason: str = DEFAULT_REJECTION_REASON,
        company_code: str = "1010",
        deferred_revenue_account: str = "22000000",
        revenue_account: str = "41000000",
        receivables_account: str = "12100000",
        bank_account: str = "11001020",
    ) -> None:
        """Basic auth (``username``/``password``) or an OAuth token source (``tokens``)."""
        basic = None
        if tokens is None:
            if username is None or password is None:
                raise ValueError("SapErp needs a username and password or a token source")
            basic = BasicAuth(username, password)
        self._session = SapSession(
            VendorHttp(VENDOR, http, classify_sap),
            base_url=base_url,
            basic=basic,
            tokens=tokens,
            fix=fix,
        )
        self.sales_organization = sales_organization
        self.distribution_channel = distribution_channel
        self.division = division
        self.order_type = order_type
        self.rejection_reason = rejection_reason
        self.company_code = company_code
        self.deferred_revenue_account = deferred_revenue_account
        self.revenue_account = revenue_account
        self.receivables_account = receivables_account
        self.bank_account = bank_account

    def __repr__(self) -> str:
        return f"SapErp(base_url={self._session.base_url!r})"

    @property
    def session(self) -> SapSession:
        return self._session

    # -- plumbing ---------------------------------------------------------------------------

    async def request(
        self,
        operation: str,
        method: str,
        service: str,
        resource: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        return await self._session.request(
            operation,
            method,
            service,
            resource,
            json_body=json_body,
            params={"$format": "json", **(params or {})},
            headers=headers,
        )

    async def post_soap(
        self, operation: str, path: str, envelope: bytes, action: str
    ) -> httpx.Response:
        """POST a SOAP 1.1 envelope to a SOAP service of the tenant (no CSRF token: that is
        OData's); a SOAP fault answer is classified by :func:`classify_sap`."""
        return await self._session.send(
            operation,
            "POST",
            path,
            content=envelope,
            content_type=sap_soap.CONTENT_TYPE,
            headers={"Accept": "text/xml", "SOAPAction": f'"{action}"'},
        )

    async def read_all(
        self, operation: str, service: str, entity_set: str, params: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        """Every entity of a query, following ``__next`` (server-driven paging)."""
        rows: list[dict[str, Any]] = []
        query = dict(params)
        while True:
            page = _collection(
                await self.request(operation, "GET", service, entity_set, params=query), operation
            )
            rows.extend(row for row in page["results"] if isinstance(row, dict))
            following = page.get("__next")
            if not following or not page["results"]:
                return rows
            token = httpx.URL(str(following)).params.get("$skiptoken")
            if token is None:
                return rows
            query = {**dict(params), "$skiptoken": token}

    async def read_page(
        self,
        operation: str,
        service: str,
        entity_set: str,
        params: Mapping[str, str],
        cursor: str | None,
        page_size: int,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page at ``$skip`` = ``cursor`` and the cursor of the next (None: the last)."""
        rows, after, _ = await self.read_counted_page(
            operation, service, entity_set, params, cursor, page_size
        )
        return rows, after

    async def read_counted_page(
        self,
        operation: str,
        service: str,
        entity_set: str,
        params: Mapping[str, str],
        cursor: str | None,
        page_size: int,
    ) -> tuple[list[dict[str, Any]], str | None, int | None]:
        """:meth:`read_page` and the listing's ``__count`` (None if SAP sent none)."""
        if cursor is not None and not cursor.isdigit():
            raise RejectedError(
                VENDOR, operation, f"{cursor!r} is not a SAP listing cursor", code="INVALID_CURSOR"
            )
        skip = int(cursor or 0)
        top = min(max(page_size, 1), MAX_PAGE)
        page = _collection(
            await self.request(
                operation,
                "GET",
                service,
                entity_set,
                params={**params, "$top": str(top), "$skip": str(skip), "$inlinecount": "allpages"},
            ),
            operation,
        )
        rows = [row for row in page["results"] if isinstance(row, dict)]
        total: int | None
        try:
            total = int(str(page.get("__count")))
            count = total
        except ValueError:
            total = None
            count = skip + len(rows) + (1 if len(rows) == top else 0)
        after = skip + len(rows)
        return rows, (str(after) if rows and after < count else None), total

    # -- catalog ----------------------------------------------------------------------------

    async def get_catalog_items(self, skus: list[str]) -> dict[str, CatalogItem]:
        operation = "get_catalog_items"
        wanted = sorted(set(skus))
        if not wanted:
            return {}
        either = " or ".join(f"Product eq {literal(sku)}" for sku in wanted)
        products = await self.read_all(
            operation, PRODUCT, "A_Product", {"$filter": either, "$expand": "to_Description"}
        )
        materials = " or ".join(f"Material eq {literal(sku)}" for sku in wanted)
        prices = await self.read_all(
            operation,
            PRICES,
            "A_SlsPrcgCndnRecdValidity",
            {
                "$filter": f"ConditionType eq 'PPR0' and SalesOrganization eq "
                f"{literal(self.sales_organization)} and DistributionChannel eq "
                f"{literal(self.distribution_channel)} and ({materials})",
                "$expand": "to_SlsPrcgConditionRecord",
            },
        )
        by_sku: dict[str, dict[str, Decimal]] = {}
        for row in prices:
            record = row.get("to_SlsPrcgConditionRecord") or {}
            currency = record.get("ConditionRateValueUnit")
            if not currency or record.get("ConditionRateValue") is None:
                continue
            by_sku.setdefault(str(row.get("Material")), {})[str(currency)] = decimal(
                record["ConditionRateValue"], f"price of {row.get('Material')}", operation
            )
        items: dict[str, CatalogItem] = {}
        for product in products:
            sku = str(product.get("Product"))
            if sku not in wanted:
                continue
            billing_value = str(product.get("YY1_RevsyncBilling_PRD") or "").strip().lower()
            try:
                billing = BillingType(billing_value)
            except ValueError:
                raise RejectedError(
                    VENDOR,
                    operation,
                    f"product {sku} has no valid YY1_RevsyncBilling_PRD (expected recurring "
                    f"or one_time, got {billing_value!r})",
                    code="INVALID_CATALOG_ITEM",
                ) from None
            names = [
                d.get("ProductDescription")
                for d in results(product.get("to_Description"))
                if d.get("Language") in ("EN", "E")
            ]
            items[sku] = CatalogItem(
                sku=sku,
                item_id=sku,
                name=str(names[0] if names and names[0] else sku),
                billing=billing,
                prices=by_sku.get(sku, {}),
                active=not bool(product.get("IsMarkedForDeletion")),
            )
        return items

    # -- customers --------------------------------------------------------------------------

    async def _partner_by_reference(self, reference: str, operation: str) -> dict[str, Any] | None:
        rows = await self.read_all(
            operation,
            BP,
            "A_BusinessPartner",
            {
                "$filter": f"BusinessPartnerIDByExtSystem eq {literal(reference)}",
                "$expand": "to_BusinessPartnerAddress/to_EmailAddress,to_BusinessPartnerTax",
            },
        )
        rows.sort(key=lambda row: str(row.get("BusinessPartner")))
        return rows[0] if rows else None

    async def _partner(self, customer_id: str, operation: str) -> dict[str, Any]:
        response = await self.request(
            operation,
            "GET",
            BP,
            f"A_BusinessPartner({literal(quote(customer_id, safe=''))})",
            params={"$expand": "to_BusinessPartnerAddress/to_EmailAddress,to_BusinessPartnerTax"},
        )
        return _entity(response, "business partner", operation)

    async def find_customer(self, external_id: str) -> str | None:
        found = await self._partner_by_reference(customer_reference(external_id), "find_customer")
        if found is None:
            return None
        return str(found.get("Customer") or found.get("BusinessPartner"))

    def _partner_body(self, customer: Customer, reference: str) -> dict[str, Any]:
        address = customer.billing_address
        body: dict[str, Any] = {
            "BusinessPartnerCategory": "2",
            "BusinessPartnerGrouping": "BP02",
            "OrganizationBPName1": customer.name[: sap_fields.NAME_LENGTH],
            "OrganizationBPName2": customer.legal_entity[: sap_fields.NAME_LENGTH],
            "SearchTerm1": customer.name.upper()[:20],
            "BusinessPartnerIDByExtSystem": reference,
            "to_BusinessPartnerRole": {
                "results": [{"BusinessPartnerRole": "FLCU00"}, {"BusinessPartnerRole": "FLCU01"}]
            },
            "to_BusinessPartnerAddress": {
                "results": [
                    {
                        **sap_fields.address_fields(address),
                        "to_EmailAddress": {"results": [{"EmailAddress": customer.email}]},
                    }
                ]
            },
        }
        if customer.tax_id:
            body["to_BusinessPartnerTax"] = {
                "results": [
                    {
                        "BPTaxType": sap_fields.tax_type(address.country),
                        "BPTaxNumber": customer.tax_id,
                    }
                ]
            }
        body["to_Customer"] = {
            "to_CustomerSalesArea": {
                "results": [
                    {
                        "SalesOrganization": self.sales_organization,
                        "DistributionChannel": self.distribution_channel,
                        "Division": self.division,
                        "Currency": customer.currency or "",
                        "CustomerPaymentTerms": PAYMENT_TERMS[PaymentTerms.NET30],
                    }
                ]
            }
        }
        return body

    async def upsert_customer(self, customer: Customer, external_id: str) -> str:
        """Find the partner by its reference and update it, or create it (deep insert). A
        lost create answer is settled by the retry's look-up."""
        operation = "upsert_customer"
        reference = customer_reference(external_id)
        found = await self._partner_by_reference(reference, operation)
        if found is not None:
            changes: dict[MasterField, FieldValue] = {
                MasterField.NAME: customer.name,
                MasterField.LEGAL_ENTITY: customer.legal_entity,
                MasterField.EMAIL: customer.email,
                MasterField.BILLING_ADDRESS: customer.billing_address,
            }
            if customer.tax_id:
                changes[MasterField.TAX_ID] = customer.tax_id
            await self._write_fields(found, changes, operation)
            return str(found.get("Customer") or found["BusinessPartner"])
        response = await self.request(
            operation,
            "POST",
            BP,
            "A_BusinessPartner",
            json_body=self._partner_body(customer, reference),
        )
        created = _entity(response, "business partner", operation)
        return str(created.get("Customer") or created["BusinessPartner"])

    async def update_customer_fields(
        self, customer_id: str, changes: Mapping[MasterField, FieldValue], idempotency_key: str
    ) -> None:
        """PATCH golden fields onto the business partner (see :mod:`adapters.erp.sap_fields`).
        A PATCH of the same values changes nothing, so a retry is harmless."""
        operation = "update_customer_fields"
        if MasterField.CREDIT_LIMIT in changes:
            raise RejectedError(
                VENDOR,
                operation,
                "credit_limit is set in SAP Credit Management, never by revsync",
                code="NOT_WRITABLE",
            )
        partner = await self._partner(customer_id, operation)
        await self._write_fields(partner, changes, operation)

    async def _write_fields(
        self, partner: dict[str, Any], changes: Mapping[MasterField, FieldValue], operation: str
    ) -> None:
        partner_id = str(partner["BusinessPartner"])
        key = literal(partner_id)
        header = {
            name: sap_fields.header_value(field, changes[field])
            for field, name in sap_fields.HEADER_FIELDS.items()
            if field in changes
        }
        if header:
            await self.request(
                operation, "PATCH", BP, f"A_BusinessPartner({key})", json_body=header
            )
        address = sap_fields.standard_address(partner)
        if address is None and (
            MasterField.BILLING_ADDRESS in changes or MasterField.EMAIL in changes
        ):
            raise RejectedError(
                VENDOR,
                operation,
                f"business partner {partner_id} has no address to write to",
                code="NO_ADDRESS",
            )
        country = str((address or {}).get("Country") or "")
        new_address = changes.get(MasterField.BILLING_ADDRESS)
        if address is not None and isinstance(new_address, Address):
            await self.request(
                operation,
                "PATCH",
                BP,
                f"A_BusinessPartnerAddress(BusinessPartner={key},"
                f"AddressID={literal(str(address['AddressID']))})",
                json_body=sap_fields.address_fields(new_address),
            )
            country = new_address.country
        if address is not None and MasterField.EMAIL in changes:
            email = sap_fields.first_email(address)
            value = changes[MasterField.EMAIL]
            if email is None:
                raise RejectedError(
                    VENDOR,
                    operation,
                    f"business partner {partner_id}'s address has no e-mail entry",
                    code="NO_EMAIL",
                )
            await self.request(
                operation,
                "PATCH",
                BP,
                f"A_AddressEmailAddress(AddressID={literal(str(email['AddressID']))},"
                f"Person={literal(str(email.get('Person') or ''))},"
                f"OrdinalNumber={literal(str(email['OrdinalNumber']))})",
                json_body={"EmailAddress": "" if value is None else str(value)},
            )
        if MasterField.TAX_ID in changes:
            value = changes[MasterField.TAX_ID]
            number = "" if value is None else str(value)
            category = sap_fields.tax_type(country)
            existing = [
                t
                for t in results(partner.get("to_BusinessPartnerTax"))
                if t.get("BPTaxType") == category
            ]
            if existing:
                await self.request(
                    operation,
                    "PATCH",
                    BP,
                    f"A_BusinessPartnerTaxNumber(BusinessPartner={key},"
                    f"BPTaxType={literal(category)})",
                    json_body={"BPTaxNumber": number},
                )
            elif number:
                await self.request(
                    operation,
                    "POST",
                    BP,
                    "A_BusinessPartnerTaxNumber",
                    json_body={
                        "BusinessPartner": partner_id,
                        "BPTaxType": category,
                        "BPTaxNumber": number,
                    },
                )

    # -- sales orders -----------------------------------------------------------------------

    def _to_sales_order(
        self, order: Mapping[str, Any], external_id: str | None, operation: str
    ) -> SalesOrder:
        return SalesOrder(
            order_id=str(order["SalesOrder"]),
            external_id=external_id or self._order_key(order) or "",
            customer_id=str(order.get("SoldToParty") or ""),
            currency=str(order.get("TransactionCurrency")),
            total=decimal(order.get("TotalNetAmount"), "TotalNetAmount", operation),
            status=order_status(order),
        )

    @staticmethod
    def _order_key(order: Mapping[str, Any]) -> str | None:
        reference = str(order.get("PurchaseOrderByCustomer") or "")
        for entry in results(order.get("to_Text")):
            if entry.get("LongTextID") == KEY_TEXT_ID and entry.get("LongText"):
                text = str(entry["LongText"])
                if order_reference(text) == reference:
                    return text
        if reference and not reference.startswith("#"):
            return reference
        return None

    async def _orders_by_reference(self, external_id: str, operation: str) -> list[dict[str, Any]]:
        reference = order_reference(external_id)
        rows = await self.read_all(
            operation,
            SO,
            "A_SalesOrder",
            {
                "$filter": f"PurchaseOrderByCustomer eq {literal(reference)}",
                "$expand": "to_Item,to_Text",
            },
        )
        return sorted(rows, key=lambda row: int(str(row.get("SalesOrder") or 0) or 0))

    async def find_sales_order(self, external_id: str) -> SalesOrder | None:
        operation = "find_sales_order"
        rows = await self._orders_by_reference(external_id, operation)
        return self._to_sales_order(rows[0], external_id, operation) if rows else None

    def _order_body(self, draft: SalesOrderDraft, customer_id: str) -> dict[str, Any]:
        operation = "create_sales_order"
        enforce(VENDOR, operation, draft.unbookable())
        when = odata_date(draft.order_date)
        return {
            "SalesOrderType": self.order_type,
            "SalesOrganization": self.sales_organization,
            "DistributionChannel": self.distribution_channel,
            "OrganizationDivision": self.division,
            "SoldToParty": customer_id,
            "PurchaseOrderByCustomer": order_reference(draft.external_id),
            "CustomerPurchaseOrderDate": when,
            "SalesOrderDate": when,
            "TransactionCurrency": draft.currency,
            "CustomerPaymentTerms": PAYMENT_TERMS[draft.payment_terms],
            "to_Text": {
                "results": [
                    {"Language": "EN", "LongTextID": KEY_TEXT_ID, "LongText": draft.external_id}
                ]
            },
            "to_Item": {
                "results": [
                    {
                        "SalesOrderItem": str(10 * number),
                        "Material": line.sku,
                        "SalesOrderItemText": line.description[:40],
                        "RequestedQuantity": format(line.quantity, "f"),
                        "RequestedQuantityUnit": "EA",
                        "to_PricingElement": {
                            "results": [
                                {
                                    "ConditionType": "PPR0",
                                    "ConditionRateValue": format(
                                        line_rate(line, draft.currency), "f"
                                    ),
                                    "ConditionCurrency": draft.currency,
                                }
                            ]
                        },
                    }
                    for number, line in enumerate(draft.lines, start=1)
                ]
            },
        }

    async def create_sales_order(self, draft: SalesOrderDraft, customer_id: str) -> SalesOrder:
        """Look the order up by its reference, else deep-insert it. SAP takes a second order
        with the same reference, so the look-up is what keeps the create idempotent."""
        operation = "create_sales_order"
        existing = await self.find_sales_order(draft.external_id)
        if existing is not None:
            return existing
        body = self._order_body(draft, customer_id)
        response = await self.request(operation, "POST", SO, "A_SalesOrder", json_body=body)
        return self._to_sales_order(
            _entity(response, "sales order", operation), draft.external_id, operation
        )

    async def _get_order(self, order_id: str, operation: str) -> dict[str, Any]:
        response = await self.request(
            operation,
            "GET",
            SO,
            f"A_SalesOrder({literal(quote(order_id, safe=''))})",
            params={"$expand": "to_Item,to_Text"},
        )
        return _entity(response, "sales order", operation)

    async def cancel_sales_order(self, order_id: str, reason: str) -> SalesOrder:
        """Reject every item not rejected yet (``SalesDocumentRjcnReason``), each with the
        ETag it was read with; a rejected order is returned as it is."""
        operation = "cancel_sales_order"
        order = await self._get_order(order_id, operation)
        if order_status(order) is SalesOrderStatus.CANCELLED:
            return self._to_sales_order(order, None, operation)
        for item in results(order.get("to_Item")):
            if item.get("SalesDocumentRjcnReason"):
                continue
            await self._reject_item(item, operation)
        return self._to_sales_order(await self._get_order(order_id, operation), None, operation)

    async def _reject_item(self, item: Mapping[str, Any], operation: str) -> None:
        resource = (
            f"A_SalesOrderItem(SalesOrder={literal(str(item['SalesOrder']))},"
            f"SalesOrderItem={literal(str(item['SalesOrderItem']))})"
        )
        etag = str((item.get("__metadata") or {}).get("etag") or "*")
        for attempt in (1, 2):
            try:
                await self.request(
                    operation,
                    "PATCH",
                    SO,
                    resource,
                    json_body={"SalesDocumentRjcnReason": self.rejection_reason},
                    headers={"If-Match": etag},
                )
                return
            except TransientError as error:
                if error.status != 412 or attempt == 2:
                    raise
            # Someone changed the item since it was read: read it again and decide again.
            response = await self.request(operation, "GET", SO, resource)
            current = _entity(response, "sales order item", operation)
            if current.get("SalesDocumentRjcnReason"):
                return
            etag = str(
                (current.get("__metadata") or {}).get("etag") or response.headers.get("etag") or "*"
            )

    # -- reconciliation ---------------------------------------------------------------------

    async def list_sales_orders(
        self, cursor: str | None, page_size: int, *, window: Window | None = None
    ) -> Page[OrderRecord]:
        operation = "list_sales_orders"
        params = {"$expand": "to_Text", "$orderby": "SalesOrder"}
        if window is not None:
            if window.basis is Basis.CHANGED:
                params["$filter"] = (
                    f"LastChangeDateTime ge {_odata_timestamp(window.start, 'offset')} and "
                    f"LastChangeDateTime lt {_odata_timestamp(window.end, 'offset')}"
                )
            else:
                created = created_filter(window)
                if created is None:
                    return Page(items=[], total=0)
                params["$filter"] = created
        rows, after, total = await self._counted_page(
            operation, SO, "A_SalesOrder", params, cursor, page_size
        )
        return Page(
            items=[self._order_record(r, operation) for r in rows], cursor=after, total=total
        )

    async def lookup_sales_orders(self, quote_ids: list[str]) -> list[OrderRecord]:
        """The orders of these quotes, by their ``PurchaseOrderByCustomer`` reference."""
        operation = "lookup_sales_orders"
        references = [order_reference(f"q2c-{q}:erp-order") for q in quote_ids]
        found: list[OrderRecord] = []
        for start in range(0, len(references), LOOKUP_BATCH):
            batch = references[start : start + LOOKUP_BATCH]
            either = " or ".join(f"PurchaseOrderByCustomer eq {literal(r)}" for r in batch)
            rows = await self.read_all(
                operation, SO, "A_SalesOrder", {"$filter": either, "$expand": "to_Text"}
            )
            found.extend(self._order_record(r, operation) for r in rows)
        return found

    def _order_record(self, row: dict[str, Any], operation: str) -> OrderRecord:
        status = order_status(row)
        return OrderRecord(
            system=System.ERP,
            record_id=str(row["SalesOrder"]),
            key=self._order_key(row),
            customer_id=str(row.get("SoldToParty") or "") or None,
            amount=decimal(row.get("TotalNetAmount"), "TotalNetAmount", operation),
            currency=str(row.get("TransactionCurrency") or "") or None,
            status=status.value,
            live=status is not SalesOrderStatus.CANCELLED,
            created_at=_midnight(row.get("CreationDate")),
            changed_at=parse_timestamp(row.get("LastChangeDateTime")),
        )

    async def _counted_page(
        self,
        operation: str,
        service: str,
        entity_set: str,
        params: Mapping[str, str],
        cursor: str | None,
        page_size: int,
    ) -> tuple[list[dict[str, Any]], str | None, int | None]:
        """A page, and the listing's ``__count`` on the first one."""
        rows, after, total = await self.read_counted_page(
            operation, service, entity_set, params, cursor, page_size
        )
        return rows, after, total if cursor is None else None

    async def list_customers(
        self, cursor: str | None, page_size: int, *, window: Window | None = None
    ) -> Page[CustomerRecord]:
        """One page of every business partner that is a customer, linked to the CRM account
        its plain reference names. The credit limit (Credit Management) is not read."""
        operation = "list_customers"
        scope = "Customer ne ''"
        if window is not None:
            if window.basis is Basis.CHANGED:
                scope += " and " + date_time_filter(window, "LastChangeDate", "LastChangeTime")
            else:
                created = created_filter(window)
                if created is None:
                    return Page(items=[], total=0)
                scope += " and " + created
        rows, after, total = await self._counted_page(
            operation,
            BP,
            "A_BusinessPartner",
            {
                "$filter": scope,
                "$expand": "to_BusinessPartnerAddress/to_EmailAddress,to_BusinessPartnerTax",
                "$orderby": "BusinessPartner",
            },
            cursor,
            page_size,
        )
        return Page(items=[_customer_record(r) for r in rows], cursor=after, total=total)

    async def lookup_customers(self, account_ids: list[str]) -> list[CustomerRecord]:
        """The customers of these CRM accounts, by ``BusinessPartnerIDByExtSystem``."""
        operation = "lookup_customers"
        references = [customer_reference(f"acct-{a}") for a in account_ids]
        found: list[CustomerRecord] = []
        for start in range(0, len(references), LOOKUP_BATCH):
            batch = references[start : start + LOOKUP_BATCH]
            either = " or ".join(f"BusinessPartnerIDByExtSystem eq {literal(r)}" for r in batch)
            rows = await self.read_all(
                operation,
                BP,
                "A_BusinessPartner",
                {
                    "$filter": f"Customer ne '' and ({either})",
                    "$expand": "to_BusinessPartnerAddress/to_EmailAddress,to_BusinessPartnerTax",
                },
            )
            found.extend(_customer_record(r) for r in rows)
        return found
