"""SAP S/4HANA Cloud emulator: the OData v2 services revsync's SAP adapter uses.

Mounted at ``/sap``; the adapter's base URL is the only thing that differs from a tenant
(``https://<tenant>-api.s4hana.cloud.sap``). Services live under
``/sap/opu/odata/sap/<SERVICE>/``.

Routes (below the prefix) and the operation names fault rules can target:

======  ===================================================================  ====================
method  path (below ``/sap/opu/odata/sap``)                                  operation
======  ===================================================================  ====================
GET     ``/<SERVICE>/`` (service document; ``x-csrf-token: Fetch``)          ``fetch_csrf``
GET     ``/API_BUSINESS_PARTNER/A_BusinessPartner``                          ``list_partners``
GET     ``/API_BUSINESS_PARTNER/A_BusinessPartner('<id>')``                  ``get_partner``
POST    ``/API_BUSINESS_PARTNER/A_BusinessPartner`` (deep insert)            ``create_partner``
PATCH   ``/API_BUSINESS_PARTNER/A_BusinessPartner('<id>')``                  ``update_partner``
PATCH   ``/API_BUSINESS_PARTNER/A_BusinessPartnerAddress(...)``              ``update_address``
PATCH   ``/API_BUSINESS_PARTNER/A_AddressEmailAddress(...)``                 ``update_email``
POST    ``/API_BUSINESS_PARTNER/A_BusinessPartnerTaxNumber``                 ``create_tax_number``
PATCH   ``/API_BUSINESS_PARTNER/A_BusinessPartnerTaxNumber(...)``            ``update_tax_number``
PATCH   ``/API_BUSINESS_PARTNER/A_CustomerSalesArea(...)``                   ``update_sales_area``
GET     ``/API_PRODUCT_SRV/A_Product``                                       ``list_products``
GET     ``/API_SLSPRICINGCONDITIONRECORD_SRV/A_SlsPrcgCndnRecdValidity``     ``list_prices``
GET     ``/API_SALES_ORDER_SRV/A_SalesOrder``                                ``list_sales_orders``
GET     ``/API_SALES_ORDER_SRV/A_SalesOrder('<id>')``                        ``get_sales_order``
POST    ``/API_SALES_ORDER_SRV/A_SalesOrder`` (deep insert with ``to_Item``)  ``create_sales_order``
GET     ``/API_SALES_ORDER_SRV/A_SalesOrderItem(...)``                       ``get_order_item``
PATCH   ``/API_SALES_ORDER_SRV/A_SalesOrderItem(...)``                       ``update_order_item``
POST    ``/sap/bc/sec/oauth2/token`` (not under ``/sap/opu``)                ``oauth_token``
======  ===================================================================  ====================

``POST /API_SALES_ORDER_SIMULATION_SRV/A_SalesOrderSimulation`` is ``simulate_sales_order``
(see Sales orders below). Invoice-to-revenue services are in :mod:`sandbox.sap_finance`
(same router).

What it reproduces:

- **Auth**: the communication user's Basic auth (``COMM_REVSYNC`` with the sandbox password,
  ``state.tokens["sap"]``) or a bearer token from the token endpoint (OAuth 2.0 client
  credentials, client ``sandbox-sap-client`` / ``sandbox-secret``, client authentication in
  the form or as Basic); anything else is 401 with SAP's plain ``Logon failed`` answer.
- **CSRF**: a ``GET`` with ``x-csrf-token: Fetch`` answers the token in the ``x-csrf-token``
  header and sets the session cookies (``SAP_SESSIONID_SBX_100``, ``sap-usercontext``); every
  ``POST``/``PATCH``/``PUT``/``DELETE`` must carry that session's cookie and token, else 403
  with header ``x-csrf-token: Required`` and the text ``CSRF token validation failed``.
  :meth:`SapStore.expire_csrf` (``POST /_sandbox/sap/csrf/expire``) invalidates every token.
- **JSON format**: ``{"d": {...}}`` for one entity, ``{"d": {"results": [...], "__count",
  "__next"}}`` for a collection; ``__metadata`` with ``uri``, ``type`` and ``etag``; dates as
  ``/Date(ms)/``; every decimal as a string.
- **Query options**: ``$filter`` (``eq``/``ne`` on string fields joined by ``and``/``or``,
  parentheses; ``eq``/``ne``/``gt``/``ge``/``lt``/``le`` with a typed literal,
  ``datetime'2026-03-01T00:00:00'``, ``datetimeoffset'2026-03-01T10:00:00Z'`` or
  ``time'PT10H00M00S'``, "URI Conventions" of OData v2), ``$top``, ``$skip``,
  ``$inlinecount=allpages``, ``$expand`` (navigation properties are always returned
  inline), ``$orderby`` ignored (key order). Server-driven paging: a page holds at most
  ``SapStore.max_page_size`` entries and carries ``__next`` with a ``$skiptoken``.
- **Errors** in SAP's OData v2 shape: ``{"error": {"code", "message": {"lang", "value"},
  "innererror": {"application", "transactionid", "timestamp", "errordetails": [...]}}}``.
- **Optimistic locking**: sales order items answer an ``ETag`` (also in ``__metadata``); a
  ``PATCH`` without ``If-Match`` is 428, with a stale one 412.
- **Sales orders**: a deep insert needs ``SalesOrderType``, ``SalesOrganization``,
  ``DistributionChannel``, ``OrganizationDivision``, ``SoldToParty`` (an existing customer:
  else 400 ``V1/390``), ``TransactionCurrency`` and at least one ``to_Item`` with a known,
  active ``Material`` (else 400 ``V1/320``) and a positive ``RequestedQuantity``. A
  ``PPR0`` pricing element on the item sets its price: ``NetAmount`` is quantity times rate,
  rounded to the currency. ``PurchaseOrderByCustomer`` holds at most 35 characters (400
  ``V1/033`` beyond) and, as in S/4HANA, nothing stops a second order with the same one: the
  adapter must look before it creates. The Sales Order Simulation API (*Sales Order -
  Simulate (A2X)*, ``API_SALES_ORDER_SIMULATION_SRV``, communication scenario
  ``SAP_COM_0109``; SAP Cloud SDK "Sales Order Simulation Service",
  https://help.sap.com/doc/dfb895df81c04bbc9e7cefc82e92dff7/1.0/en-US/modules/_sap_cloud_sdk_vdm_sales_order_simulation_service.html)
  runs the same checks and pricing on the same body and saves nothing: the simulated order
  comes back with an empty ``SalesOrder``. Rejecting every item (``SalesDocumentRjcnReason``)
  sets ``OverallSDDocumentRejectionSts`` to ``C``; an unknown reason is 400 ``V1/207``.
- **Change times**: a sales order carries ``CreationDate`` and ``LastChangeDateTime``
  (``Edm.DateTimeOffset``, set by every change); a business partner ``CreationDate``,
  ``LastChangeDate`` and ``LastChangeTime`` (set by a change to it, its address, e-mail or
  tax numbers), as the APIs' entity types have them.
- **Business partners**: organisations (``BusinessPartnerCategory`` 2) with roles, one
  address with its e-mail, tax numbers and the customer with its sales areas;
  ``BusinessPartnerIDByExtSystem`` holds at most 20 characters and ``SearchTerm1`` 20
  (400 ``R11/…`` beyond).
- **Throttling**: ``SapStore.throttle`` requests answer 429 with ``Retry-After``.
"""

from __future__ import annotations

import itertools
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote, unquote

from fastapi import APIRouter, Request, Response

from domain.money import MINOR_UNITS, quantize
from sandbox import sap_finance
from sandbox.faults import VendorFaults
from sandbox.oauth import OAuthClient, OAuthFailure, OAuthServer, read_form
from sandbox.seed import CATALOG
from sandbox.wire import json_response, read_json

if TYPE_CHECKING:
    from sandbox.app import SandboxState

VENDOR = "sap"
ODATA = "/sap/opu/odata/sap"
TOKEN_PATH = "/sap/bc/sec/oauth2/token"
SANDBOX_USER = "COMM_REVSYNC"
SANDBOX_CLIENT = {"client_id": "sandbox-sap-client", "client_secret": "sandbox-secret"}
TOKEN_LIFETIME = 43200.0
SESSION_COOKIE = "SAP_SESSIONID_SBX_100"
SALES_ORGANIZATION = "1010"
DISTRIBUTION_CHANNEL = "10"
DIVISION = "00"
REJECTION_REASONS = frozenset({"01", "02", "03", "04", "05", "10", "11", "50"})
MAX_PO_BY_CUSTOMER = 35
MAX_EXT_ID = 20
MAX_SEARCH_TERM = 20

Handler = Callable[[Request, "Match"], Awaitable[Response]]


# -- wire helpers ---------------------------------------------------------------------------


def odata_date(day: date) -> str:
    """``/Date(ms)/`` of midnight UTC of ``day``."""
    moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return f"/Date({int(moment.timestamp() * 1000)})/"


def odata_datetime(moment: datetime) -> str:
    """``/Date(ms+0000)/``: an ``Edm.DateTimeOffset`` in UTC, as OData v2 JSON writes it."""
    return f"/Date({int(moment.timestamp() * 1000)}+0000)/"


def odata_time(moment: datetime) -> str:
    """``PT10H05M00S``: an ``Edm.Time`` (time of day), as OData v2 JSON writes it."""
    return f"PT{moment.hour:02d}H{moment.minute:02d}M{moment.second:02d}S"


def _comparable(value: Any) -> Any:
    """A stored value in the form a typed literal compares with: ``/Date(ms)/`` as
    milliseconds, ``PT..H..M..S`` as seconds, anything else as text."""
    text = str(value or "")
    if (match := re.fullmatch(r"/Date\((-?\d+)(?:[+-]\d+)?\)/", text)) is not None:
        return int(match.group(1))
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)
    if (match := re.fullmatch(r"PT(\d+)H(\d+)M(\d+)S", text)) is not None:
        return int(match.group(1)) * 3600 + int(match.group(2)) * 60 + int(match.group(3))
    return text


def _typed_literal(kind: str, quoted: str) -> Any:
    """``datetime'2026-03-01T10:00:00'`` and ``datetimeoffset'2026-03-01T10:00:00Z'`` as
    milliseconds (UTC), ``time'PT10H00M00S'`` as seconds ("URI Conventions", OData v2)."""
    text = quoted[1:-1]
    if kind == "time":
        seconds = _comparable(text)
        if not isinstance(seconds, int):
            raise SapError(400, "/IWBEP/CM_MGW_RT/004", f"Invalid time literal {text!r}")
        return seconds
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SapError(400, "/IWBEP/CM_MGW_RT/004", f"Invalid {kind} literal {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def parse_odata_date(value: Any) -> date | None:
    match = re.fullmatch(r"/Date\((-?\d+)(?:[+-]\d+)?\)/", str(value or ""))
    if match is None:
        return None
    return datetime.fromtimestamp(int(match.group(1)) / 1000, tz=UTC).date()


def _changed_now() -> dict[str, str]:
    """A business partner's ``LastChangeDate`` and ``LastChangeTime``, now (UTC)."""
    now = datetime.now(UTC)
    return {"LastChangeDate": odata_date(now.date()), "LastChangeTime": odata_time(now)}


def error_response(
    status: int,
    code: str | None,
    message: str,
    *,
    target: str = "",
    headers: dict[str, str] | None = None,
) -> Response:
    """An error answer as SAP Gateway writes it (OData v2 JSON)."""
    code = code or {
        400: "/IWBEP/CM_MGW_RT/022",
        404: "/IWBEP/CM_MGW_RT/020",
        412: "/IWBEP/CM_MGW_RT/098",
        428: "/IWBEP/CM_MGW_RT/099",
        429: "/IWFND/CM_BEC/076",
    }.get(status, "/IWFND/CM_BEC/026")
    now = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    body = {
        "error": {
            "code": code,
            "message": {"lang": "en", "value": message},
            "innererror": {
                "application": {"component_id": "SD-SLS-API", "service_namespace": "/SAP/"},
                "transactionid": secrets.token_hex(16).upper(),
                "timestamp": now,
                "errordetails": [
                    {
                        "code": code,
                        "message": message,
                        "propertyref": "",
                        "severity": "error",
                        "target": target,
                    }
                ],
            },
        }
    }
    return json_response(body, status, headers)


def _fault_response(status: int, code: str | None, message: str) -> Response:
    return error_response(status, code, message)


class SapError(Exception):
    def __init__(self, status: int, code: str, message: str, target: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.target = target

    def response(self) -> Response:
        return error_response(self.status, self.code, self.message, target=self.target)


def _decimal(value: Any, what: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise SapError(400, "/IWBEP/CM_MGW_RT/022", f"{what}: {value!r} is not a number") from None
    if not number.is_finite():
        raise SapError(400, "/IWBEP/CM_MGW_RT/022", f"{what}: {value!r} is not a number")
    return number


def text(value: Decimal) -> str:
    """A decimal as OData v2 JSON writes it: a string."""
    return format(value, "f")


# -- $filter --------------------------------------------------------------------------------

_TOKEN = re.compile(r"\s*(\(|\)|'(?:[^']|'')*'|[A-Za-z_][A-Za-z0-9_/]*|-?\d+(?:\.\d+)?)")

Predicate = Callable[[dict[str, Any]], bool]


def parse_filter(expression: str) -> Predicate:
    """A predicate for a ``$filter`` of ``Field eq|ne 'literal'`` terms with ``and``/``or``
    and parentheses. Anything else is 400, as Gateway answers an unsupported expression."""
    tokens: list[str] = []
    position = 0
    while position < len(expression):
        if expression[position:].strip() == "":
            break
        match = _TOKEN.match(expression, position)
        if match is None:
            raise SapError(400, "/IWBEP/CM_MGW_RT/004", f"Invalid filter at {position}")
        tokens.append(match.group(1))
        position = match.end()
    index = 0

    def peek() -> str | None:
        return tokens[index] if index < len(tokens) else None

    def take() -> str:
        nonlocal index
        if index >= len(tokens):
            raise SapError(400, "/IWBEP/CM_MGW_RT/004", "Invalid filter: unexpected end")
        index += 1
        return tokens[index - 1]

    def term() -> Predicate:
        if peek() == "(":
            take()
            inner = disjunction()
            if take() != ")":
                raise SapError(400, "/IWBEP/CM_MGW_RT/004", "Invalid filter: ) expected")
            return inner
        name, operator, literal = take(), take(), take()
        if operator not in ("eq", "ne", "gt", "ge", "lt", "le"):
            raise SapError(400, "/IWBEP/CM_MGW_RT/004", f"Invalid filter operator {operator}")
        if literal in ("datetime", "datetimeoffset", "time") and (peek() or "").startswith("'"):
            typed = _typed_literal(literal, take())
            compare: Callable[[Any, Any], bool] = {
                "eq": lambda a, b: a == b,
                "ne": lambda a, b: a != b,
                "gt": lambda a, b: a > b,
                "ge": lambda a, b: a >= b,
                "lt": lambda a, b: a < b,
                "le": lambda a, b: a <= b,
            }[operator]

            def typed_test(row: dict[str, Any]) -> bool:
                held = _comparable(row.get(name))
                return isinstance(held, int) and compare(held, typed)

            return typed_test
        if operator not in ("eq", "ne"):
            raise SapError(400, "/IWBEP/CM_MGW_RT/004", f"{operator} needs a typed literal")
        value = literal[1:-1].replace("''", "'") if literal.startswith("'") else literal
        if operator == "eq":
            return lambda row: str(row.get(name, "")) == value
        return lambda row: str(row.get(name, "")) != value

    def conjunction() -> Predicate:
        parts = [term()]
        while peek() == "and":
            take()
            parts.append(term())
        return lambda row: all(part(row) for part in parts)

    def disjunction() -> Predicate:
        parts = [conjunction()]
        while peek() == "or":
            take()
            parts.append(conjunction())
        return lambda row: any(part(row) for part in parts)

    predicate = disjunction()
    if index != len(tokens):
        raise SapError(400, "/IWBEP/CM_MGW_RT/004", f"Invalid filter near {tokens[index]!r}")
    return predicate


# -- the store ------------------------------------------------------------------------------


@dataclass
class Match:
    """A parsed OData resource path: service, entity set and key predicates."""

    service: str
    entity_set: str
    keys: dict[str, str] = field(default_factory=dict)
    single: str | None = None
    navigation: str | None = None


_RESOURCE = re.compile(
    r"^/(?P<service>[A-Z_0-9]+)/(?P<set>[A-Za-z_]+)(?:\((?P<keys>[^)]*)\))?(?:/(?P<nav>\w+))?$"
)


def parse_resource(path: str) -> Match | None:
    match = _RESOURCE.match(unquote(path))
    if match is None:
        return None
    result = Match(match.group("service"), match.group("set"), navigation=match.group("nav"))
    raw = match.group("keys")
    if raw is not None:
        if "=" not in raw:
            result.single = raw.strip("'")
        else:
            for part in raw.split(","):
                name, _, value = part.partition("=")
                result.keys[name.strip()] = value.strip().strip("'")
    return result


class SapStore:
    """A tenant: business partners, products, prices, sales orders and the finance books."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._bp_ids = itertools.count(10100001)
        self._order_ids = itertools.count(1)
        self._etag_seq = itertools.count(1)
        self.max_page_size = 1000
        # Requests still to answer 429 (with Retry-After ``throttle_retry_after``).
        self.throttle = 0
        self.throttle_retry_after = 2
        self.partners: dict[str, dict[str, Any]] = {}
        self.products: dict[str, dict[str, Any]] = {}
        self.prices: list[dict[str, Any]] = []
        self.orders: dict[str, dict[str, Any]] = {}
        # CSRF: session id -> token.
        self.sessions: dict[str, str] = {}
        self.csrf_fetches = 0
        for number, item in enumerate(CATALOG, start=1):
            sku = str(item["itemId"])
            self.products[sku] = {
                "Product": sku,
                "ProductType": "SERV",
                "BaseUnit": "EA",
                "IsMarkedForDeletion": bool(item.get("isInactive", False)),
                "YY1_RevsyncBilling_PRD": item["billing"],
                "to_Description": {
                    "results": [
                        {
                            "Product": sku,
                            "Language": "EN",
                            "ProductDescription": item["displayName"],
                        }
                    ]
                },
            }
            for currency, price in sorted(item["prices"].items()):
                self.prices.append(
                    {
                        "ConditionRecord": f"{number:04d}{len(self.prices) + 1:06d}",
                        "ConditionType": "PPR0",
                        "SalesOrganization": SALES_ORGANIZATION,
                        "DistributionChannel": DISTRIBUTION_CHANNEL,
                        "Material": sku,
                        "ConditionValidityStartDate": odata_date(date(2020, 1, 1)),
                        "ConditionValidityEndDate": odata_date(date(9999, 12, 31)),
                        "to_SlsPrcgConditionRecord": {
                            "ConditionRecord": f"{number:04d}{len(self.prices) + 1:06d}",
                            "ConditionRateValue": text(price),
                            "ConditionRateValueUnit": currency,
                            "ConditionQuantity": "1",
                            "ConditionQuantityUnit": "EA",
                        },
                    }
                )
        self.finance = _finance_store()

    # -- etags -----------------------------------------------------------------------------

    def new_etag(self) -> str:
        return f"W/\"datetimeoffset'2026-01-01T00%3A00%3A{next(self._etag_seq):02d}.0000000Z'\""

    # -- csrf ------------------------------------------------------------------------------

    def new_session(self) -> tuple[str, str]:
        session, token = secrets.token_hex(16), secrets.token_urlsafe(18)
        self.sessions[session] = token
        self.csrf_fetches += 1
        return session, token

    def expire_csrf(self) -> int:
        count = len(self.sessions)
        self.sessions.clear()
        return count

    def csrf_ok(self, request: Request) -> bool:
        session = request.cookies.get(SESSION_COOKIE)
        token = request.headers.get("x-csrf-token")
        expected = self.sessions.get(session or "")
        return (
            expected is not None and token is not None and secrets.compare_digest(token, expected)
        )

    def snapshot(self) -> dict[str, Any]:
        return {
            "businessPartners": list(self.partners.values()),
            "salesOrders": list(self.orders.values()),
            "products": list(self.products.values()),
            "csrfFetches": self.csrf_fetches,
            **self.finance.snapshot(),
        }

    # -- business partners -----------------------------------------------------------------

    def create_partner(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("BusinessPartnerCategory") != "2":
            raise SapError(400, "R11/401", "Business partner category must be 2 (organization)")
        name = str(body.get("OrganizationBPName1") or "").strip()
        if not name:
            raise SapError(
                400, "R11/402", "Enter a name (OrganizationBPName1)", "OrganizationBPName1"
            )
        for field_name, limit in (
            ("BusinessPartnerIDByExtSystem", MAX_EXT_ID),
            ("SearchTerm1", MAX_SEARCH_TERM),
            ("OrganizationBPName1", 40),
            ("OrganizationBPName2", 40),
        ):
            if len(str(body.get(field_name) or "")) > limit:
                raise SapError(
                    400,
                    "R11/124",
                    f"Value of field {field_name} is longer than {limit} characters",
                    field_name,
                )
        partner_id = str(next(self._bp_ids))
        addresses = []
        for number, raw in enumerate(_results(body.get("to_BusinessPartnerAddress")), start=1):
            address_id = str(30000 + next(self._ids))
            if not raw.get("Country"):
                raise SapError(400, "AM/216", "Enter a country for the address", "Country")
            emails = [
                {
                    "AddressID": address_id,
                    "Person": "",
                    "OrdinalNumber": str(ordinal),
                    "IsDefaultEmailAddress": ordinal == 1,
                    "EmailAddress": str(entry.get("EmailAddress") or ""),
                }
                for ordinal, entry in enumerate(_results(raw.get("to_EmailAddress")), start=1)
            ]
            addresses.append(
                {
                    **{k: v for k, v in raw.items() if not k.startswith("to_")},
                    "BusinessPartner": partner_id,
                    "AddressID": address_id,
                    "to_EmailAddress": {"results": emails},
                }
            )
            del number
        taxes = [
            {
                "BusinessPartner": partner_id,
                "BPTaxType": t["BPTaxType"],
                "BPTaxNumber": t["BPTaxNumber"],
            }
            for t in _results(body.get("to_BusinessPartnerTax"))
        ]
        roles = [
            {"BusinessPartner": partner_id, "BusinessPartnerRole": r["BusinessPartnerRole"]}
            for r in _results(body.get("to_BusinessPartnerRole"))
        ]
        customer = None
        if any(r["BusinessPartnerRole"].startswith("FLCU") for r in roles):
            raw_customer = body.get("to_Customer") or {}
            areas = [
                {
                    "Customer": partner_id,
                    "SalesOrganization": a.get("SalesOrganization", SALES_ORGANIZATION),
                    "DistributionChannel": a.get("DistributionChannel", DISTRIBUTION_CHANNEL),
                    "Division": a.get("Division", DIVISION),
                    "Currency": a.get("Currency", ""),
                    "CustomerPaymentTerms": a.get("CustomerPaymentTerms", ""),
                }
                for a in _results(raw_customer.get("to_CustomerSalesArea"))
            ]
            for area in areas:
                if area["Currency"] and area["Currency"] not in MINOR_UNITS:
                    raise SapError(400, "V1/076", f"Currency {area['Currency']} is not defined")
            customer = {"Customer": partner_id, "to_CustomerSalesArea": {"results": areas}}
        partner = {
            **{k: v for k, v in body.items() if not k.startswith("to_")},
            "BusinessPartner": partner_id,
            "Customer": partner_id if customer else "",
            "BusinessPartnerFullName": name,
            "CreationDate": odata_date(date.today()),
            **_changed_now(),
            "to_BusinessPartnerAddress": {"results": addresses},
            "to_BusinessPartnerTax": {"results": taxes},
            "to_BusinessPartnerRole": {"results": roles},
            "to_Customer": customer,
        }
        self.partners[partner_id] = partner
        return partner

    def partner(self, partner_id: str) -> dict[str, Any]:
        found = self.partners.get(partner_id)
        if found is None:
            raise SapError(
                404,
                "/IWBEP/CM_MGW_RT/020",
                "Resource not found for segment 'A_BusinessPartnerType'",
            )
        return found

    def customer_ok(self, customer: str) -> bool:
        partner = self.partners.get(customer)
        return partner is not None and bool(partner.get("Customer"))

    # -- sales orders ----------------------------------------------------------------------

    def create_order(self, body: dict[str, Any], *, simulate: bool = False) -> dict[str, Any]:
        """Deep-insert a sales order. ``simulate``: check and price it exactly so, save
        nothing (the Sales Order Simulation API answers ``SalesOrder`` empty)."""
        for required in (
            "SalesOrderType",
            "SalesOrganization",
            "DistributionChannel",
            "OrganizationDivision",
            "SoldToParty",
            "TransactionCurrency",
        ):
            if not body.get(required):
                raise SapError(400, "V1/384", f"Enter a value for field {required}", required)
        if body["SalesOrderType"] != "OR":
            raise SapError(
                400, "V1/888", f"Sales document type {body['SalesOrderType']} is not defined"
            )
        if body["SalesOrganization"] != SALES_ORGANIZATION:
            raise SapError(400, "V1/312", f"Sales area {body['SalesOrganization']} is not defined")
        if not self.customer_ok(str(body["SoldToParty"])):
            raise SapError(
                400,
                "V1/390",
                f"Sold-to party {body['SoldToParty']} not maintained for sales area",
                "SoldToParty",
            )
        currency = str(body["TransactionCurrency"])
        if currency not in MINOR_UNITS:
            raise SapError(
                400, "V1/076", f"Currency {currency} is not defined", "TransactionCurrency"
            )
        purchase_order = str(body.get("PurchaseOrderByCustomer") or "")
        if len(purchase_order) > MAX_PO_BY_CUSTOMER:
            raise SapError(
                400,
                "V1/033",
                "Customer reference longer than 35 characters",
                "PurchaseOrderByCustomer",
            )
        raw_items = _results(body.get("to_Item"))
        if not raw_items:
            raise SapError(400, "V1/761", "Sales document contains no items")
        order_id = "" if simulate else str(next(self._order_ids))
        items: list[dict[str, Any]] = []
        total = Decimal(0)
        for number, raw in enumerate(raw_items, start=1):
            material = str(raw.get("Material") or "")
            product = self.products.get(material)
            if product is None or product["IsMarkedForDeletion"]:
                raise SapError(
                    400, "V1/320", f"Material {material} is not defined or blocked", "Material"
                )
            quantity = _decimal(raw.get("RequestedQuantity"), "RequestedQuantity")
            if quantity <= 0:
                raise SapError(
                    400, "V1/305", "Enter a positive order quantity", "RequestedQuantity"
                )
            rate = self.list_price(material, currency)
            for element in _results(raw.get("to_PricingElement")):
                if element.get("ConditionType") == "PPR0":
                    rate = _decimal(element.get("ConditionRateValue"), "ConditionRateValue")
            if rate is None:
                raise SapError(400, "V1/803", f"No price for material {material} in {currency}")
            amount = quantize(quantity * rate, currency)
            total += amount
            items.append(
                {
                    "SalesOrder": order_id,
                    "SalesOrderItem": str(raw.get("SalesOrderItem") or number * 10),
                    "Material": material,
                    "SalesOrderItemText": str(raw.get("SalesOrderItemText") or "")[:40],
                    "RequestedQuantity": text(quantity),
                    "RequestedQuantityUnit": "EA",
                    "NetAmount": text(amount),
                    "TransactionCurrency": currency,
                    "SalesDocumentRjcnReason": "",
                    "YY1_RevsyncLine_SDI": str(raw.get("YY1_RevsyncLine_SDI") or ""),
                    "__etag": self.new_etag(),
                    "to_PricingElement": {
                        "results": [
                            {
                                "ConditionType": "PPR0",
                                "ConditionRateValue": text(rate),
                                "ConditionCurrency": currency,
                            }
                        ]
                    },
                }
            )
        order = {
            **{k: v for k, v in body.items() if not k.startswith("to_")},
            "SalesOrder": order_id,
            "PurchaseOrderByCustomer": purchase_order,
            "TotalNetAmount": text(total),
            "OverallSDProcessStatus": "A",
            "OverallSDDocumentRejectionSts": "A",
            "CreationDate": odata_date(date.today()),
            "LastChangeDateTime": odata_datetime(datetime.now(UTC)),
            "__etag": self.new_etag(),
            "to_Item": {"results": items},
            "to_Text": {
                "results": [
                    {
                        "SalesOrder": order_id,
                        "Language": t.get("Language", "EN"),
                        "LongTextID": t.get("LongTextID", "TX01"),
                        "LongText": t.get("LongText", ""),
                    }
                    for t in _results(body.get("to_Text"))
                ]
            },
        }
        if not simulate:
            self.orders[order_id] = order
        return order

    def list_price(self, material: str, currency: str) -> Decimal | None:
        for row in self.prices:
            record = row["to_SlsPrcgConditionRecord"]
            if row["Material"] == material and record["ConditionRateValueUnit"] == currency:
                return Decimal(record["ConditionRateValue"])
        return None

    def order(self, order_id: str) -> dict[str, Any]:
        found = self.orders.get(order_id)
        if found is None:
            raise SapError(
                404, "/IWBEP/CM_MGW_RT/020", "Resource not found for segment 'A_SalesOrderType'"
            )
        return found

    def item(self, order_id: str, item_id: str) -> dict[str, Any]:
        for item in self.order(order_id)["to_Item"]["results"]:
            if item["SalesOrderItem"] in (item_id.lstrip("0"), item_id):
                found: dict[str, Any] = item
                return found
        raise SapError(
            404, "/IWBEP/CM_MGW_RT/020", "Resource not found for segment 'A_SalesOrderItemType'"
        )

    def refresh_status(self, order: dict[str, Any]) -> None:
        items = order["to_Item"]["results"]
        rejected = [i for i in items if i["SalesDocumentRjcnReason"]]
        order["OverallSDDocumentRejectionSts"] = (
            "C" if len(rejected) == len(items) else "B" if rejected else "A"
        )
        if len(rejected) == len(items):
            order["OverallSDProcessStatus"] = "C"
        order["LastChangeDateTime"] = odata_datetime(datetime.now(UTC))
        order["__etag"] = self.new_etag()


def _results(value: Any) -> list[dict[str, Any]]:
    """The entries of a navigation property as deep-insert bodies write it (a list or
    ``{"results": [...]}``)."""
    if isinstance(value, dict):
        value = value.get("results")
    if not isinstance(value, list):
        return []
    return [entry for entry in value if isinstance(entry, dict)]


def _finance_store() -> sap_finance.FinanceBooks:
    return sap_finance.FinanceBooks()


# -- entities as the wire shows them --------------------------------------------------------


def _entity(root: str, entity_type: str, uri: str, row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    metadata: dict[str, Any] = {"id": f"{root}{uri}", "uri": f"{root}{uri}", "type": entity_type}
    for key, value in row.items():
        if key == "__etag":
            metadata["etag"] = value
        elif isinstance(value, dict) and "results" in value:
            out[key] = {"results": [dict(entry) for entry in value["results"]]}
        else:
            out[key] = value
    return {"__metadata": metadata, **out}


def _strip_etags(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_etags(v) for k, v in value.items() if k != "__etag"}
    if isinstance(value, list):
        return [_strip_etags(v) for v in value]
    return value


def collection(
    request: Request,
    rows: list[dict[str, Any]],
    render: Callable[[dict[str, Any]], dict[str, Any]],
    page_limit: int,
) -> Response:
    params = request.query_params
    if "$filter" in params:
        predicate = parse_filter(params["$filter"])
        rows = [row for row in rows if predicate(row)]
    count = len(rows)
    try:
        skip = int(params.get("$skiptoken") or params.get("$skip") or 0)
        top = int(params["$top"]) if "$top" in params else None
    except ValueError:
        raise SapError(400, "/IWBEP/CM_MGW_RT/005", "Invalid system query option value") from None
    end = count if top is None else min(count, skip + top)
    page_end = min(end, skip + page_limit)
    body: dict[str, Any] = {"results": [render(row) for row in rows[skip:page_end]]}
    if params.get("$inlinecount") == "allpages":
        body["__count"] = str(count)
    if page_end < end:
        query = {k: v for k, v in params.items() if k not in ("$skiptoken", "$skip")}
        if top is not None:
            query["$top"] = str(end - page_end)
        query["$skiptoken"] = str(page_end)
        body["__next"] = f"{request.url.path}?" + "&".join(
            f"{k}={quote(v, safe='')}" for k, v in query.items()
        )
    return json_response({"d": _strip_etags(body)})


# -- auth -----------------------------------------------------------------------------------


def authorized(state: SandboxState, request: Request) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        import base64
        import binascii

        try:
            user, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return user == SANDBOX_USER and secrets.compare_digest(password, state.tokens[VENDOR])
    if scheme.lower() == "bearer":
        token = value.strip() or None
        return state.oauth[VENDOR].accepts(token, "\x00never-static\x00")
    return False


def logon_failed() -> Response:
    """SAP's 401: an HTML/plain logon failure page, not an OData error."""
    return Response(
        content=b"Logon failed",
        status_code=401,
        media_type="text/plain",
        headers={"WWW-Authenticate": 'Basic realm="SAP NetWeaver Application Server [SBX/100]"'},
    )


def oauth_server() -> OAuthServer:
    """The tenant's OAuth server (``state.oauth["sap"]``, controlled at
    ``/_sandbox/oauth/sap``): the sandbox client registered, tokens living 12 hours."""
    server = OAuthServer(VENDOR, token_lifetime=TOKEN_LIFETIME)
    server.register(OAuthClient(**SANDBOX_CLIENT))
    return server


# -- the router -----------------------------------------------------------------------------


def build_router(state: SandboxState) -> APIRouter:
    router = APIRouter()
    faults = VendorFaults(state.faults, VENDOR, _fault_response)
    # The SOAP posting service answers injected faults as SOAP faults.
    soap_faults = VendorFaults(state.faults, VENDOR, sap_finance.fault_response)

    def store() -> SapStore:
        result: SapStore = state.sap
        return result

    async def guarded(
        request: Request,
        operation: str,
        handler: Callable[[], Awaitable[Response]],
        *,
        csrf: bool = True,
        hooks: VendorFaults = faults,
    ) -> Response:
        if not authorized(state, request):
            return logon_failed()
        current = store()
        if current.throttle > 0:
            current.throttle -= 1
            return error_response(
                429,
                "/IWFND/CM_BEC/076",
                "Rate limit exceeded",
                headers={"Retry-After": str(current.throttle_retry_after)},
            )
        if csrf and request.method not in ("GET", "HEAD") and not current.csrf_ok(request):
            return Response(
                content=b"CSRF token validation failed",
                status_code=403,
                media_type="text/plain",
                headers={"x-csrf-token": "Required"},
            )
        if (injected := await hooks.before(operation)) is not None:
            return injected
        try:
            response = await handler()
        except SapError as error:
            return error.response()
        if response.status_code < 400 and (injected := await hooks.after(operation)) is not None:
            return injected
        return response

    def root_of(request: Request) -> str:
        return f"{str(request.base_url).rstrip('/')}/sap{ODATA}"

    @router.post(TOKEN_PATH)
    async def token(request: Request) -> Response:
        server = state.oauth[VENDOR]
        server.token_requests += 1
        if (injected := await faults.before("oauth_token")) is not None:
            return injected
        try:
            form = await read_form(request)
            if form.get("grant_type") != "client_credentials":
                raise OAuthFailure("unsupported_grant_type", "grant type not supported")
            client_id, secret = form.get("client_id"), form.get("client_secret")
            scheme, _, value = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() == "basic":
                import base64

                client_id, _, secret = base64.b64decode(value.strip()).decode().partition(":")
            client = server.clients.get(client_id or "")
            if (
                client is None
                or client.client_secret is None
                or not secrets.compare_digest(client.client_secret, secret or "")
            ):
                raise OAuthFailure("invalid_client", "Bad client credentials", 401)
        except OAuthFailure as failure:
            return failure.response()
        return json_response(
            {
                "access_token": server.issue(),
                "token_type": "bearer",
                "expires_in": int(server.token_lifetime),
                "scope": "API_SALES_ORDER_SRV_0001 API_BUSINESS_PARTNER_0001",
            }
        )

    @router.post(sap_finance.POST_PATH)
    async def post_journal(request: Request) -> Response:
        # A SOAP service: authenticated, but no CSRF token (that is OData's).
        return await guarded(
            request,
            "post_journal",
            lambda: sap_finance.post_journal(state, request),
            csrf=False,
            hooks=soap_faults,
        )

    @router.get(ODATA + "/{service}/")
    async def service_document(service: str, request: Request) -> Response:
        async def handle() -> Response:
            headers: dict[str, str] = {}
            response = json_response({"d": {"EntitySets": []}})
            if request.headers.get("x-csrf-token", "").lower() == "fetch":
                session, token_value = store().new_session()
                response.headers["x-csrf-token"] = token_value
                response.set_cookie(SESSION_COOKIE, session, path="/", httponly=True)
                response.set_cookie("sap-usercontext", "sap-client=100", path="/")
            del headers
            return response

        return await guarded(request, "fetch_csrf", handle)

    @router.api_route(ODATA + "/{path:path}", methods=["GET", "POST", "PATCH", "PUT", "DELETE"])
    async def dispatch(path: str, request: Request) -> Response:
        match = parse_resource("/" + path)
        if match is None:
            return error_response(404, None, f"Resource not found for segment '{path}'")
        route = ROUTES.get(
            (request.method, match.service, match.entity_set, bool(match.keys or match.single))
        )
        if route is None:
            finance_route = sap_finance.ROUTES.get(
                (request.method, match.service, match.entity_set, bool(match.keys or match.single))
            )
            if finance_route is None:
                return error_response(
                    404, None, f"Resource not found for segment '{match.entity_set}'"
                )
            operation, finance_handler = cast(tuple[str, RouteHandler], finance_route)
            return await guarded(
                request, operation, lambda: finance_handler(state, request, match, root_of(request))
            )
        operation, handler = route
        return await guarded(
            request, operation, lambda: handler(state, request, match, root_of(request))
        )

    return router


def build_control_router(state: SandboxState) -> APIRouter:
    """Sandbox-only controls (no auth, not SAP's API): expire CSRF tokens, throttle."""
    router = APIRouter()

    @router.post("/csrf/expire")
    async def expire() -> Response:
        return json_response({"expired": state.sap.expire_csrf()})

    @router.post("/periods")
    async def periods(request: Request) -> Response:
        body = await read_json(request) or {}
        period = str(body.get("period"))
        if body.get("closed", True):
            state.sap.finance.closed.add(period)
        else:
            state.sap.finance.closed.discard(period)
        return json_response({"closed": sorted(state.sap.finance.closed)})

    @router.post("/throttle")
    async def throttle(request: Request) -> Response:
        body = await read_json(request) or {}
        state.sap.throttle = int(body.get("requests", 1))
        state.sap.throttle_retry_after = int(body.get("retry_after", 2))
        return json_response({"throttle": state.sap.throttle})

    return router


# -- handlers -------------------------------------------------------------------------------

RouteHandler = Callable[["SandboxState", Request, Match, str], Awaitable[Response]]


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = await read_json(request)
    except ValueError:
        raise SapError(400, "/IWBEP/CM_MGW_RT/021", "Malformed request body") from None
    if not isinstance(body, dict):
        raise SapError(400, "/IWBEP/CM_MGW_RT/021", "Malformed request body")
    return body


def _partner_view(root: str, partner: dict[str, Any]) -> dict[str, Any]:
    uri = f"/API_BUSINESS_PARTNER/A_BusinessPartner('{partner['BusinessPartner']}')"
    view = _entity(root, "API_BUSINESS_PARTNER.A_BusinessPartnerType", uri, partner)
    if partner.get("to_Customer") is not None:
        view["to_Customer"] = dict(partner["to_Customer"])
    return view


async def list_partners(state: SandboxState, request: Request, match: Match, root: str) -> Response:
    store: SapStore = state.sap
    return collection(
        request,
        list(store.partners.values()),
        lambda p: _partner_view(root, p),
        store.max_page_size,
    )


async def get_partner(state: SandboxState, request: Request, match: Match, root: str) -> Response:
    store: SapStore = state.sap
    partner = store.partner(match.single or match.keys.get("BusinessPartner", ""))
    return json_response({"d": _strip_etags(_partner_view(root, partner))})


async def create_partner(
    state: SandboxState, request: Request, match: Match, root: str
) -> Response:
    store: SapStore = state.sap
    partner = store.create_partner(await _body(request))
    view = _partner_view(root, partner)
    return json_response({"d": view}, 201, {"Location": view["__metadata"]["uri"]})


_PARTNER_WRITABLE = frozenset(
    {
        "OrganizationBPName1",
        "OrganizationBPName2",
        "SearchTerm1",
        "SearchTerm2",
        "BusinessPartnerIDByExtSystem",
        "YY1_RevsyncOwner_bus",
        "YY1_RevsyncWebsite_bus",
        "YY1_RevsyncPayState_bus",
    }
)


async def update_partner(
    state: SandboxState, request: Request, match: Match, root: str
) -> Response:
    store: SapStore = state.sap
    partner = store.partner(match.single or match.keys.get("BusinessPartner", ""))
    body = await _body(request)
    for name, value in body.items():
        if name not in _PARTNER_WRITABLE and name not in partner:
            raise SapError(400, "/IWBEP/CM_MGW_RT/021", f"Property '{name}' is invalid", name)
        if name in ("OrganizationBPName1", "OrganizationBPName2") and len(str(value or "")) > 40:
            raise SapError(
                400, "R11/124", f"Value of field {name} is longer than 40 characters", name
            )
    partner.update({k: v for k, v in body.items() if not k.startswith("to_")})
    partner["BusinessPartnerFullName"] = partner.get("OrganizationBPName1", "")
    partner.update(_changed_now())
    return Response(status_code=204)


def _address(store: SapStore, match: Match) -> dict[str, Any]:
    partner = store.partner(match.keys.get("BusinessPartner", ""))
    for address in partner["to_BusinessPartnerAddress"]["results"]:
        if address["AddressID"] == match.keys.get("AddressID"):
            found: dict[str, Any] = address
            return found
    raise SapError(
        404, "/IWBEP/CM_MGW_RT/020", "Resource not found for segment 'A_BusinessPartnerAddressType'"
    )


_ADDRESS_FIELDS = frozenset(
    {"StreetName", "StreetSuffixName", "CityName", "PostalCode", "Region", "Country"}
)


async def update_address(
    state: SandboxState, request: Request, match: Match, root: str
) -> Response:
    address = _address(state.sap, match)
    body = await _body(request)
    unknown = set(body) - _ADDRESS_FIELDS
    if unknown:
        raise SapError(400, "/IWBEP/CM_MGW_RT/021", f"Property '{sorted(unknown)[0]}' is invalid")
    if "Country" in body and not body["Country"]:
        raise SapError(400, "AM/216", "Enter a country for the address", "Country")
    address.update(body)
    return Response(status_code=204)


async def update_email(state: SandboxState, request: Request, match: Match, root: str) -> Response:
    store: SapStore = state.sap
    body = await _body(request)
    for partner in store.partners.values():
        for address in partner["to_BusinessPartnerAddress"]["results"]:
            if address["AddressID"] != match.keys.get("AddressID"):
                continue
            for email in address["to_EmailAddress"]["results"]:
                if email["OrdinalNumber"] == match.keys.get("OrdinalNumber"):
                    email["EmailAddress"] = str(body.get("EmailAddress") or "")
                    partner.update(_changed_now())
                    return Response(status_code=204)
    raise SapError(
        404, "/IWBEP/CM_MGW_RT/020", "Resource not found for segment 'A_AddressEmailAddressType'"
    )


async def create_tax_number(
    state: SandboxState, request: Request, match: Match, root: str
) -> Response:
    store: SapStore = state.sap
    body = await _body(request)
    partner = store.partner(str(body.get("BusinessPartner") or ""))
    taxes = partner["to_BusinessPartnerTax"]["results"]
    if any(t["BPTaxType"] == body.get("BPTaxType") for t in taxes):
        raise SapError(
            400, "R11/657", f"Tax number category {body.get('BPTaxType')} already exists"
        )
    entry = {
        "BusinessPartner": partner["BusinessPartner"],
        "BPTaxType": str(body.get("BPTaxType")),
        "BPTaxNumber": str(body.get("BPTaxNumber") or ""),
    }
    taxes.append(entry)
    partner.update(_changed_now())
    return json_response({"d": entry}, 201)


async def update_tax_number(
    state: SandboxState, request: Request, match: Match, root: str
) -> Response:
    store: SapStore = state.sap
    partner = store.partner(match.keys.get("BusinessPartner", ""))
    body = await _body(request)
    for entry in partner["to_BusinessPartnerTax"]["results"]:
        if entry["BPTaxType"] == match.keys.get("BPTaxType"):
            entry["BPTaxNumber"] = str(body.get("BPTaxNumber") or "")
            partner.update(_changed_now())
            return Response(status_code=204)
    raise SapError(
        404,
        "/IWBEP/CM_MGW_RT/020",
        "Resource not found for segment 'A_BusinessPartnerTaxNumberType'",
    )


async def list_products(state: SandboxState, request: Request, match: Match, root: str) -> Response:
    store: SapStore = state.sap

    def render(row: dict[str, Any]) -> dict[str, Any]:
        return _entity(
            root,
            "API_PRODUCT_SRV.A_ProductType",
            f"/API_PRODUCT_SRV/A_Product('{row['Product']}')",
            row,
        )

    return collection(request, list(store.products.values()), render, store.max_page_size)


async def list_prices(state: SandboxState, request: Request, match: Match, root: str) -> Response:
    store: SapStore = state.sap

    def render(row: dict[str, Any]) -> dict[str, Any]:
        uri = (
            "/API_SLSPRICINGCONDITIONRECORD_SRV/A_SlsPrcgCndnRecdValidity"
            f"(ConditionRecord='{row['ConditionRecord']}')"
        )
        return _entity(
            root, "API_SLSPRICINGCONDITIONRECORD_SRV.A_SlsPrcgCndnRecdValidityType", uri, row
        )

    return collection(request, store.prices, render, store.max_page_size)


def _order_view(root: str, order: dict[str, Any]) -> dict[str, Any]:
    uri = f"/API_SALES_ORDER_SRV/A_SalesOrder('{order['SalesOrder']}')"
    view = _entity(root, "API_SALES_ORDER_SRV.A_SalesOrderType", uri, order)
    view["to_Item"] = {"results": [_item_view(root, item) for item in order["to_Item"]["results"]]}
    return view


def _item_view(root: str, item: dict[str, Any]) -> dict[str, Any]:
    uri = (
        f"/API_SALES_ORDER_SRV/A_SalesOrderItem(SalesOrder='{item['SalesOrder']}',"
        f"SalesOrderItem='{item['SalesOrderItem']}')"
    )
    return _entity(root, "API_SALES_ORDER_SRV.A_SalesOrderItemType", uri, item)


async def list_orders(state: SandboxState, request: Request, match: Match, root: str) -> Response:
    store: SapStore = state.sap
    return collection(
        request, list(store.orders.values()), lambda o: _order_view(root, o), store.max_page_size
    )


async def get_order(state: SandboxState, request: Request, match: Match, root: str) -> Response:
    store: SapStore = state.sap
    order = store.order(match.single or match.keys.get("SalesOrder", ""))
    view = _order_view(root, order)
    return json_response({"d": view}, headers={"ETag": order["__etag"]})


async def create_order(state: SandboxState, request: Request, match: Match, root: str) -> Response:
    store: SapStore = state.sap
    order = store.create_order(await _body(request))
    view = _order_view(root, order)
    return json_response(
        {"d": view}, 201, {"Location": view["__metadata"]["uri"], "ETag": order["__etag"]}
    )


async def simulate_order(
    state: SandboxState, request: Request, match: Match, root: str
) -> Response:
    """Sales Order Simulation (``API_SALES_ORDER_SIMULATION_SRV``): the same checks and
    pricing as the deep insert, nothing saved; the answer is the simulated order."""
    store: SapStore = state.sap
    simulated = store.create_order(await _body(request), simulate=True)
    items = _results(simulated.get("to_Item"))
    view = {
        **{k: v for k, v in simulated.items() if not k.startswith(("to_", "__"))},
        "to_Item": {"results": [{k: v for k, v in i.items() if k != "__etag"} for i in items]},
    }
    return json_response({"d": view}, 201)


async def get_item(state: SandboxState, request: Request, match: Match, root: str) -> Response:
    store: SapStore = state.sap
    item = store.item(match.keys.get("SalesOrder", ""), match.keys.get("SalesOrderItem", ""))
    return json_response({"d": _item_view(root, item)}, headers={"ETag": item["__etag"]})


async def update_item(state: SandboxState, request: Request, match: Match, root: str) -> Response:
    store: SapStore = state.sap
    order = store.order(match.keys.get("SalesOrder", ""))
    item = store.item(match.keys.get("SalesOrder", ""), match.keys.get("SalesOrderItem", ""))
    if_match = request.headers.get("if-match")
    if if_match is None:
        raise SapError(428, "/IWBEP/CM_MGW_RT/099", "Precondition required: send If-Match")
    if if_match != "*" and if_match != item["__etag"]:
        raise SapError(412, "/IWBEP/CM_MGW_RT/098", "Precondition failed: the entity was changed")
    body = await _body(request)
    for name in body:
        if name not in ("SalesDocumentRjcnReason", "SalesOrderItemText", "RequestedQuantity"):
            raise SapError(400, "/IWBEP/CM_MGW_RT/021", f"Property '{name}' is invalid", name)
    reason = body.get("SalesDocumentRjcnReason")
    if reason is not None and reason != "" and reason not in REJECTION_REASONS:
        raise SapError(
            400,
            "V1/207",
            f"Reason for rejection {reason} is not defined",
            "SalesDocumentRjcnReason",
        )
    item.update(body)
    item["__etag"] = store.new_etag()
    store.refresh_status(order)
    return Response(status_code=204, headers={"ETag": item["__etag"]})


ROUTES: dict[tuple[str, str, str, bool], tuple[str, RouteHandler]] = {
    ("GET", "API_BUSINESS_PARTNER", "A_BusinessPartner", False): ("list_partners", list_partners),
    ("GET", "API_BUSINESS_PARTNER", "A_BusinessPartner", True): ("get_partner", get_partner),
    ("POST", "API_BUSINESS_PARTNER", "A_BusinessPartner", False): (
        "create_partner",
        create_partner,
    ),
    ("PATCH", "API_BUSINESS_PARTNER", "A_BusinessPartner", True): (
        "update_partner",
        update_partner,
    ),
    ("PATCH", "API_BUSINESS_PARTNER", "A_BusinessPartnerAddress", True): (
        "update_address",
        update_address,
    ),
    ("PATCH", "API_BUSINESS_PARTNER", "A_AddressEmailAddress", True): (
        "update_email",
        update_email,
    ),
    ("POST", "API_BUSINESS_PARTNER", "A_BusinessPartnerTaxNumber", False): (
        "create_tax_number",
        create_tax_number,
    ),
    ("PATCH", "API_BUSINESS_PARTNER", "A_BusinessPartnerTaxNumber", True): (
        "update_tax_number",
        update_tax_number,
    ),
    ("GET", "API_PRODUCT_SRV", "A_Product", False): ("list_products", list_products),
    ("GET", "API_SLSPRICINGCONDITIONRECORD_SRV", "A_SlsPrcgCndnRecdValidity", False): (
        "list_prices",
        list_prices,
    ),
    ("GET", "API_SALES_ORDER_SRV", "A_SalesOrder", False): ("list_sales_orders", list_orders),
    ("GET", "API_SALES_ORDER_SRV", "A_SalesOrder", True): ("get_sales_order", get_order),
    ("POST", "API_SALES_ORDER_SRV", "A_SalesOrder", False): ("create_sales_order", create_order),
    ("POST", "API_SALES_ORDER_SIMULATION_SRV", "A_SalesOrderSimulation", False): (
        "simulate_sales_order",
        simulate_order,
    ),
    ("GET", "API_SALES_ORDER_SRV", "A_SalesOrderItem", True): ("get_order_item", get_item),
    ("PATCH", "API_SALES_ORDER_SRV", "A_SalesOrderItem", True): (
        "update_sales_order_item",
        update_item,
    ),
}
