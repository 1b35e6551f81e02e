"""HubSpot CRM emulator: the slice of the CRM v3/v4 objects API revsync uses.

Mounted at ``/hubspot``; the adapter's base URL is the only thing that differs from HubSpot
(``https://api.hubapi.com``).

==========  =========================================================  ====================
method      path                                                       operation
==========  =========================================================  ====================
POST        /oauth/v1/token                                            ``oauth_token``
GET         /crm/v3/objects/<type>                                     ``list``
POST        /crm/v3/objects/<type>                                     ``create``
GET         /crm/v3/objects/<type>/<id>[?idProperty=]                  ``get``
PATCH       /crm/v3/objects/<type>/<id>[?idProperty=]                  ``update``
POST        /crm/v3/objects/<type>/search                              ``search``
POST        /crm/v3/objects/<type>/batch/read                          ``batch_read``
POST        /crm/v3/objects/<type>/batch/upsert                        ``batch_upsert``
PUT         /crm/v4/objects/<type>/<id>/associations/default/<to>/<id> ``associate``
==========  =========================================================  ====================

Object types: ``companies`` (``0-2``), ``deals`` (``0-3``), ``line_items`` (``0-8``) and
``orders`` (``0-123``), each with a property schema: a property that does not exist, a
number that is not one, an option that is not in an enumeration, or a date-time that is not
ISO 8601 / epoch millis is 400 ``VALIDATION_ERROR``; ``orders.revsync_order_key`` has unique
values (a create repeating one is 409 ``CONFLICT``; ``batch/upsert`` with
``idProperty=revsync_order_key`` updates the record holding it). Values are stored and
answered as strings, as HubSpot does; the empty string clears a property.

What else it reproduces:

- companies seeded from :data:`sandbox.seed.ACCOUNTS` (same names, addresses, tax ids,
  currencies) with the numeric ids of :data:`COMPANY_IDS`;
- reads answer the asked ``properties`` plus ``hs_object_id``, ``createdate`` and
  ``hs_lastmodifieddate``; ``associations=companies,line_items`` adds v3 association lists
  (keyed ``companies`` and ``line items``, with the association type names
  ``deal_to_company`` for the primary company, ``deal_to_company_unlabeled``,
  ``deal_to_line_item``);
- listings page with ``limit`` (1 to 100, else 400) and ``after``, answering
  ``paging.next.after`` until the last page; ``HubSpotStore.page_cap`` pages smaller (tests);
- search (:meth:`HubSpotStore.search`, "Search the CRM"): filter groups (5, of 10 filters,
  25 in all), ``EQ``/``NEQ``/``LT``/``LTE``/``GT``/``GTE``/``IN``/``HAS_PROPERTY``
  operators (date-times as epoch milliseconds or ISO 8601), one sort, ``limit`` up to 200,
  ``total``, and at most 10,000 results paged through per query;
- batch answers: 200 ``{"status": "COMPLETE", "results"}`` when every input worked, 207
  with ``errors`` (``{"status": "error", "category", "message", "context"}``) when some did,
  the input's error status when none did;
- errors ``{"status": "error", "message", "correlationId", "category"}``; a missing or wrong
  bearer token (neither the static sandbox token nor an unexpired issued one) is 401
  ``INVALID_AUTHENTICATION``; an unknown id is 404 ``OBJECT_NOT_FOUND``;
- rate limits: with ``HubSpotStore.ten_secondly_limit`` set, more requests than that in a
  rolling ten seconds answer 429 ``policyName: TEN_SECONDLY_ROLLING``; with
  ``daily_remaining`` set, requests past it answer 429 ``policyName: DAILY``. A fault rule
  with status 429 answers the same body, its ``code`` the policy name (default
  ``TEN_SECONDLY_ROLLING``);
- OAuth: ``POST /oauth/v1/token`` (form) with ``grant_type=refresh_token``, ``client_id``,
  ``client_secret`` and a refresh token issued to that client (the sandbox client
  :data:`SANDBOX_CLIENT_ID` / ``sandbox-hubspot-secret`` holds :data:`SANDBOX_REFRESH_TOKEN`)
  answers ``{"token_type": "bearer", "refresh_token", "access_token", "expires_in": 1800}``;
  refusals are 400 ``{"status": "BAD_REFRESH_TOKEN" | "BAD_CLIENT_ID" |
  "BAD_CLIENT_SECRET", "message", "correlationId"}``.

Webhooks (what HubSpot would send the app's target URL; nothing is sent: a test or a
developer renders a delivery and posts it):

- every change to a company or a deal is journalled as the event HubSpot sends subscribers
  of its legacy subscription types: ``company.creation`` / ``deal.creation`` (with
  ``changeFlag`` ``CREATED``) for a record made, and one ``company.propertyChange`` /
  ``deal.propertyChange`` per property whose value a write changed (``propertyName``, the
  new ``propertyValue``, ``""`` when cleared). Each event has ``eventId``,
  ``subscriptionId``, ``portalId`` (:data:`SANDBOX_PORTAL_ID`), ``appId`` (the app
  subscribed: :data:`SANDBOX_APP_ID`), ``occurredAt`` (milliseconds), ``attemptNumber`` 0
  and ``objectId`` (a number);
- who made the change, as HubSpot reports it: a write through the API with the app's
  credentials (the sandbox token, an OAuth token issued to the app) is ``changeSource``
  ``INTEGRATION`` with ``sourceId`` the app's id (as a string); a user's edit in HubSpot
  (``PATCH /_sandbox/hubspot/objects/<type>/<id>`` with ``userId``) is ``CRM_UI`` with
  ``sourceId`` ``userId:<id>``;
- ``POST /_sandbox/hubspot/webhooks/render`` with ``{"url", "client_secret", "after",
  "object_id"?}`` renders the journalled events after ``after`` (at most 100, HubSpot's
  batch) as one delivery: the JSON array body and the headers HubSpot signs it with,
  ``X-HubSpot-Request-Timestamp`` (milliseconds) and ``X-HubSpot-Signature-v3`` (base64
  HMAC-SHA256 keyed by the client secret over ``POST`` + the URL, with HubSpot's few
  percent-escapes decoded, + the body + the timestamp); ``GET /_sandbox/hubspot/webhooks``
  lists the journal.

Fault-injection operation names: those in the table. A rule's ``code`` becomes the error's
``category`` (or, for 429, its ``policyName``).

Sources (docs/vendor-fidelity.md, "HubSpot", lists them per rule): HubSpot's "Webhooks"
guide (https://developers.hubspot.com/docs/api/webhooks) and "Create generic webhook
subscriptions" (https://developers.hubspot.com/docs/guides/apps/public-apps/create-generic-
webhook-subscriptions) for the batches and the event fields (``changeSource``: who made the
change); the form of ``sourceId`` (the app's id for an app's API write, ``userId:<id>`` for
a user) is what HubSpot sends in public captured payloads, not a documented table (*doc
only*). "Validating Requests" (https://developers.hubspot.com/docs/apps/developer-platform/
build-apps/authentication/request-validation) for the v3 signature and the decoded escapes.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import re
import secrets
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from domain.money import MINOR_UNITS
from sandbox import seed
from sandbox.faults import VendorFaults
from sandbox.oauth import OAuthFailure, read_form
from sandbox.wire import bearer_token, json_response, read_json

if TYPE_CHECKING:
    from sandbox.app import SandboxState

VENDOR = "hubspot"
SANDBOX_CLIENT_ID = "sandbox-hubspot-client"
SANDBOX_REFRESH_TOKEN = "sandbox-hubspot-refresh-token"
TOKEN_PATH = "/oauth/v1/token"

# Numeric company ids for the seeded accounts (deterministic: the same in every sandbox).
COMPANY_IDS: dict[str, str] = {
    account["Id"]: str(31_800_000_001 + index) for index, account in enumerate(seed.ACCOUNTS)
}
OBJECT_TYPE_IDS = {"0-2": "companies", "0-3": "deals", "0-8": "line_items", "0-123": "orders"}

# The sandbox's HubSpot account (portal) and the app whose credentials revsync uses: its
# API writes are reported with this app's id, and it receives the webhooks.
SANDBOX_PORTAL_ID = 62515
SANDBOX_APP_ID = 1160452
# Object types with legacy webhook subscriptions, as named in subscriptionType.
WEBHOOK_OBJECTS = {"companies": "company", "deals": "deal"}
SUBSCRIPTION_IDS = {
    "company.creation": 2840518,
    "company.propertyChange": 2840520,
    "deal.creation": 2840510,
    "deal.propertyChange": 2840512,
}
MAX_WEBHOOK_EVENTS = 100
INTEGRATION = "INTEGRATION"
CRM_UI = "CRM_UI"
# Percent-escapes HubSpot decodes in the URL before signing it (v3).
_SIGNED_ESCAPES = {
    "3A": ":",
    "2F": "/",
    "3F": "?",
    "40": "@",
    "21": "!",
    "24": "$",
    "27": "'",
    "28": "(",
    "29": ")",
    "2A": "*",
    "2C": ",",
    "3B": ";",
}
_ESCAPE = re.compile("%(" + "|".join(_SIGNED_ESCAPES) + ")", re.IGNORECASE)

PropertyType = Literal["string", "number", "enumeration", "datetime", "date"]


@dataclass(frozen=True)
class Prop:
    type: PropertyType = "string"
    options: frozenset[str] = frozenset()
    unique: bool = False


@dataclass(frozen=True)
class ChangeSource:
    """Who made a change, as webhook events report it (``changeSource``, ``sourceId``)."""

    change_source: str
    source_id: str

    @classmethod
    def app(cls, app_id: int) -> ChangeSource:
        """A write through the API with the credentials of the app ``app_id``."""
        return cls(INTEGRATION, str(app_id))

    @classmethod
    def user(cls, user_id: int) -> ChangeSource:
        """A user's edit in HubSpot's UI."""
        return cls(CRM_UI, f"userId:{user_id}")


# The account's enabled currencies: every currency revsync books.
CURRENCIES = frozenset(MINOR_UNITS)
_STRING = Prop()
_NUMBER = Prop("number")
_DATETIME = Prop("datetime")

SCHEMA: dict[str, dict[str, Prop]] = {
    "companies": {
        "name": _STRING,
        "domain": _STRING,
        "website": _STRING,
        "hubspot_owner_id": _STRING,
        "address": _STRING,
        "address2": _STRING,
        "city": _STRING,
        "state": _STRING,
        "zip": _STRING,
        "country": _STRING,
        "lifecyclestage": Prop(
            "enumeration",
            frozenset(
                {"subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead"}
                | {"opportunity", "customer", "evangelist", "other"}
            ),
        ),
        "revsync_legal_entity": _STRING,
        "revsync_tax_id": _STRING,
        "revsync_billing_email": _STRING,
        "revsync_currency": _STRING,
        "revsync_credit_check_status": Prop(
            "enumeration", frozenset({"Approved", "Pending", "Declined"})
        ),
        "revsync_credit_limit": _NUMBER,
        "revsync_credit_limit_currency": _STRING,
        "revsync_payment_method_status": _STRING,
        "revsync_ar_status": Prop("enumeration", frozenset({"Current", "Overdue", "Paid", "Void"})),
        "revsync_ar_invoice": _STRING,
        "revsync_ar_amount_due": _NUMBER,
        "revsync_ar_currency": _STRING,
        "revsync_ar_as_of": _DATETIME,
    },
    "deals": {
        "dealname": _STRING,
        "dealstage": Prop(
            "enumeration",
            frozenset(
                {"appointmentscheduled", "qualifiedtobuy", "presentationscheduled"}
                | {"decisionmakerboughtin", "contractsent", "closedwon", "closedlost"}
            ),
        ),
        "pipeline": _STRING,
        "amount": _NUMBER,
        "deal_currency_code": Prop("enumeration", CURRENCIES),
        "hubspot_owner_id": _STRING,
        "closedate": _DATETIME,
        "revsync_start_date": Prop("date"),
        "revsync_payment_terms": _STRING,
        "revsync_status": _STRING,
        "revsync_status_reason": _STRING,
        "revsync_order_id": _STRING,
    },
    "line_items": {
        "name": _STRING,
        "hs_sku": _STRING,
        "hs_product_id": _STRING,
        "quantity": _NUMBER,
        "price": _NUMBER,
        "amount": _NUMBER,
        "hs_discount_percentage": _NUMBER,
        "discount": _NUMBER,
        "recurringbillingfrequency": Prop(
            "enumeration",
            frozenset(
                {"weekly", "biweekly", "monthly", "quarterly", "per_six_months", "annually"}
                | {"per_two_years", "per_three_years", "per_four_years", "per_five_years"}
            ),
        ),
        "hs_recurring_billing_period": _STRING,
    },
    "orders": {
        "hs_order_name": _STRING,
        "hs_currency_code": Prop("enumeration", CURRENCIES),
        "hs_total_price": _NUMBER,
        "revsync_order_key": Prop(unique=True),
        "revsync_quote_id": _STRING,
        "revsync_account_id": _STRING,
        "revsync_erp_order_id": _STRING,
        "revsync_erp_customer_id": _STRING,
        "revsync_billing_subscription_id": _STRING,
        "revsync_billing_customer_id": _STRING,
        "revsync_status": _STRING,
    },
}
DEFAULT_PROPERTIES = ("hs_object_id", "createdate", "hs_lastmodifieddate")
# v3 answers name association groups by the plural object name ("line items": with a space).
ASSOCIATION_KEYS = {
    "companies": "companies",
    "deals": "deals",
    "line_items": "line items",
    "orders": "orders",
}
# HUBSPOT_DEFINED association type ids the emulator knows (from -> to: id -> name).
ASSOCIATION_TYPES: dict[tuple[str, str], dict[int, str]] = {
    ("deals", "companies"): {5: "deal_to_company", 341: "deal_to_company_unlabeled"},
    ("companies", "deals"): {6: "company_to_deal", 342: "company_to_deal_unlabeled"},
    ("deals", "line_items"): {19: "deal_to_line_item"},
    ("line_items", "deals"): {20: "line_item_to_deal"},
    ("orders", "deals"): {512: "order_to_deal"},
    ("deals", "orders"): {511: "deal_to_order"},
    ("orders", "companies"): {509: "order_to_company"},
    ("companies", "orders"): {510: "company_to_order"},
}
_INVERSE = {
    5: 6,
    6: 5,
    341: 342,
    342: 341,
    19: 20,
    20: 19,
    512: 511,
    511: 512,
    509: 510,
    510: 509,
}
DEFAULT_ASSOCIATION = {
    ("orders", "deals"): 512,
    ("orders", "companies"): 509,
    ("deals", "companies"): 341,
    ("line_items", "deals"): 20,
    ("deals", "line_items"): 19,
}
MAX_LIMIT = 100
DEFAULT_CATEGORIES = {
    400: "VALIDATION_ERROR",
    401: "INVALID_AUTHENTICATION",
    403: "MISSING_SCOPES",
    404: "OBJECT_NOT_FOUND",
    409: "CONFLICT",
    429: "RATE_LIMITS",
}


class HubSpotApiError(Exception):
    """An error HubSpot would answer: HTTP status, category, message (and detail items)."""

    def __init__(
        self,
        status: int,
        category: str,
        message: str,
        errors: list[dict[str, Any]] | None = None,
        context: dict[str, list[str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.category = category
        self.message = message
        self.errors = errors or []
        self.context = context or {}

    def item(self) -> dict[str, Any]:
        """This error as an ``errors[]`` item of a batch answer."""
        return {
            "status": "error",
            "category": self.category,
            "message": self.message,
            "context": self.context,
            "errors": self.errors,
        }


def error_response(
    status: int,
    category: str | None,
    message: str,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """An answer in HubSpot's error format (also the fault injector's factory: for 429 the
    rule's ``code`` is the ``policyName``)."""
    body: dict[str, Any] = {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
    }
    if status == 429:
        policy = category or "TEN_SECONDLY_ROLLING"
        # HubSpot's API usage guidelines: errorType RATE_LIMIT and the policy hit
        # (the example's requestId was dropped in 2020; category RATE_LIMITS replaced it).
        body.update({"errorType": "RATE_LIMIT", "policyName": policy})
        body["category"] = "RATE_LIMITS"
    else:
        body["category"] = category or DEFAULT_CATEGORIES.get(status, "INTERNAL_ERROR")
    if errors:
        body["errors"] = errors
    return json_response(body, status, headers)


def _fault_response(status: int, code: str | None, message: str) -> Response:
    return error_response(status, code, message)


# When the seeded companies were made (their createdate and hs_lastmodifieddate).
SEEDED_AT = "2024-01-02T09:00:00.000Z"
# Search limits ("Search the CRM"; filter limits raised in August 2024, developer changelog).
MAX_FILTER_GROUPS = 5
MAX_GROUP_FILTERS = 10
MAX_FILTERS = 25
MAX_SEARCH_LIMIT = 200
MAX_SEARCH_RESULTS = 10_000
MAX_IN_VALUES = 100


def _sortable(value: Any) -> tuple[int, Decimal, str]:
    """A property value (always text) ordered as a number, a date-time, else as text."""
    text = "" if value is None else str(value)
    try:
        return (0, Decimal(text), "")
    except InvalidOperation:
        pass
    try:
        return (0, Decimal(int(_parse_datetime(text).timestamp() * 1000)), "")
    except ValueError:
        return (1, Decimal(0), text)


def _search_filter(object_type: str, spec: Any) -> Callable[[dict[str, Any]], bool]:
    """One search filter as a test of a record: ``EQ``, ``NEQ``, ``LT``, ``LTE``, ``GT``,
    ``GTE`` (numbers and date-times, given as epoch milliseconds or ISO 8601, compare as
    such), ``IN`` (``values``, at most 100), ``HAS_PROPERTY``, ``NOT_HAS_PROPERTY``."""
    if not isinstance(spec, dict):
        raise HubSpotApiError(400, "VALIDATION_ERROR", "a filter must be an object")
    name = str(spec.get("propertyName") or "")
    known = set(SCHEMA[object_type]) | {"hs_object_id", "createdate", "hs_lastmodifieddate"}
    if name not in known:
        raise HubSpotApiError(400, "VALIDATION_ERROR", f"Property {name!r} does not exist")
    operator = str(spec.get("operator") or "")

    def held(record: dict[str, Any]) -> Any:
        value = record["properties"].get(name)
        return None if value in (None, "") else value

    if operator == "HAS_PROPERTY":
        return lambda r: held(r) is not None
    if operator == "NOT_HAS_PROPERTY":
        return lambda r: held(r) is None
    if operator == "IN":
        values = spec.get("values")
        if not isinstance(values, list) or len(values) > MAX_IN_VALUES:
            raise HubSpotApiError(
                400, "VALIDATION_ERROR", f"IN takes a list of at most {MAX_IN_VALUES} values"
            )
        wanted = {str(v).lower() for v in values}
        return lambda r: held(r) is not None and str(held(r)).lower() in wanted
    compare: dict[str, Callable[[Any, Any], bool]] = {
        "EQ": lambda a, b: a == b,
        "NEQ": lambda a, b: a != b,
        "LT": lambda a, b: a < b,
        "LTE": lambda a, b: a <= b,
        "GT": lambda a, b: a > b,
        "GTE": lambda a, b: a >= b,
    }
    if operator not in compare:
        raise HubSpotApiError(400, "VALIDATION_ERROR", f"Unsupported operator {operator!r}")
    target = _sortable(spec.get("value"))
    test = compare[operator]
    if operator == "NEQ":
        return lambda r: held(r) is None or test(_sortable(held(r)), target)
    return lambda r: held(r) is not None and test(_sortable(held(r)), target)


def _now_iso() -> str:
    moment = datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _not_found(object_type: str, record_id: str) -> HubSpotApiError:
    return HubSpotApiError(
        404,
        "OBJECT_NOT_FOUND",
        f"Object not found. objectId are usually numeric. ({object_type} {record_id})",
    )


def object_type_name(name: str) -> str:
    """The canonical object type of a path segment (a name or an ``0-n`` type id)."""
    canonical = OBJECT_TYPE_IDS.get(name, name.lower())
    if canonical not in SCHEMA:
        raise HubSpotApiError(400, "VALIDATION_ERROR", f"Unable to infer object type from: {name}")
    return canonical


# -- the store --------------------------------------------------------------------------------


class HubSpotStore:
    """The account's CRM records, in memory."""

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, first_id: int = 52_000_000_001
    ) -> None:
        """``first_id``: the id the first record made gets (ids then count up, shared by
        every object type, as HubSpot's are unique across a portal)."""
        self.records: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in SCHEMA}
        # (from type, from id) -> {(to type, to id): {association type ids}}
        self.associations: dict[tuple[str, str], dict[tuple[str, str], set[int]]] = {}
        self._next_id = first_id
        # Refresh tokens the token endpoint honours -> the client they were issued to.
        self.refresh_tokens: dict[str, str] = {SANDBOX_REFRESH_TOKEN: SANDBOX_CLIENT_ID}
        # Throttling knobs (None: unlimited) and what they counted.
        self.ten_secondly_limit: int | None = None
        self.daily_remaining: int | None = None
        self.page_cap: int = MAX_LIMIT
        self.throttled = 0
        # Webhook events HubSpot would send the app, in order (see the module docstring).
        self.portal_id = SANDBOX_PORTAL_ID
        self.app_id = SANDBOX_APP_ID
        self.webhook_events: list[dict[str, Any]] = []
        self._next_event_id = 3_816_279_001
        self._clock = clock
        self._recent: deque[float] = deque()
        for account in seed.ACCOUNTS:
            company_id = COMPANY_IDS[account["Id"]]
            properties = {
                "name": account["Name"],
                "revsync_legal_entity": account["Legal_Entity__c"],
                "revsync_tax_id": account["Tax_Id__c"],
                "revsync_billing_email": account["Billing_Email__c"],
                "address": account["BillingStreet"],
                "city": account["BillingCity"],
                "state": account["BillingState"],
                "zip": account["BillingPostalCode"],
                "country": account["BillingCountryCode"],
                "revsync_currency": account["CurrencyIsoCode"],
                "lifecyclestage": "customer"
                if account["Type"].startswith("Customer")
                else "opportunity",
                "revsync_credit_check_status": account["Credit_Check_Status__c"],
            }
            self._insert("companies", company_id, properties, SEEDED_AT)

    def snapshot(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            name: [copy.deepcopy(record) for record in records.values()]
            for name, records in self.records.items()
        }
        state["associations"] = [
            {"from": list(src), "to": list(dst), "types": sorted(types)}
            for src, targets in self.associations.items()
            for dst, types in targets.items()
        ]
        state["throttled"] = self.throttled
        state["webhooks"] = copy.deepcopy(self.webhook_events)
        return state

    # throttling

    def throttle(self) -> Response | None:
        """A 429 when a rate limit knob says the request is over the limit."""
        if self.daily_remaining is not None:
            if self.daily_remaining <= 0:
                self.throttled += 1
                return error_response(
                    429, "DAILY", "You have reached your daily limit.", headers=self._headers()
                )
            self.daily_remaining -= 1
        if self.ten_secondly_limit is not None:
            now = self._clock()
            while self._recent and self._recent[0] <= now - 10:
                self._recent.popleft()
            if len(self._recent) >= self.ten_secondly_limit:
                self.throttled += 1
                return error_response(
                    429,
                    "TEN_SECONDLY_ROLLING",
                    "You have reached your ten_secondly_rolling limit.",
                    headers={"Retry-After": "1"},
                )
            self._recent.append(now)
        return None

    def _headers(self) -> dict[str, str]:
        if self.daily_remaining is None:
            return {}
        return {"X-HubSpot-RateLimit-Daily-Remaining": str(max(self.daily_remaining, 0))}

    # records

    def _new_id(self) -> str:
        record_id = str(self._next_id)
        self._next_id += 1
        return record_id

    def _insert(
        self,
        object_type: str,
        record_id: str,
        properties: dict[str, Any],
        stamp: str | None = None,
    ) -> None:
        stamp = stamp or _now_iso()
        values = {k: ("" if v is None else str(v)) for k, v in properties.items()}
        self.records[object_type][record_id] = {
            "id": record_id,
            "properties": {
                **values,
                "hs_object_id": record_id,
                "createdate": stamp,
                "hs_lastmodifieddate": stamp,
            },
            "createdAt": stamp,
            "updatedAt": stamp,
            "archived": False,
        }

    def find(self, object_type: str, record_id: str, id_property: str | None) -> dict[str, Any]:
        records = self.records[object_type]
        if id_property is None or id_property == "hs_object_id":
            record = records.get(record_id)
        else:
            spec = SCHEMA[object_type].get(id_property)
            if spec is None or not spec.unique:
                raise HubSpotApiError(
                    400,
                    "VALIDATION_ERROR",
                    f"{id_property} is not a unique property of {object_type}",
                )
            record = self._by_unique(object_type, id_property, record_id)
        if record is None:
            raise _not_found(object_type, record_id)
        return record

    def _by_unique(self, object_type: str, name: str, value: str) -> dict[str, Any] | None:
        for record in self.records[object_type].values():
            if record["properties"].get(name) == value:
                return record
        return None

    def validated(
        self, object_type: str, properties: object, *, record_id: str | None
    ) -> dict[str, str]:
        """``properties`` as stored (strings), or a 400 listing every invalid one."""
        if not isinstance(properties, dict):
            raise HubSpotApiError(400, "VALIDATION_ERROR", "properties must be an object")
        schema = SCHEMA[object_type]
        problems: list[dict[str, Any]] = []
        values: dict[str, str] = {}
        for name, raw in properties.items():
            spec = schema.get(name)
            if spec is None:
                problems.append(
                    {
                        "isValid": False,
                        "message": f'Property "{name}" does not exist',
                        "error": "PROPERTY_DOESNT_EXIST",
                        "name": name,
                    }
                )
                continue
            if raw is None or raw == "":
                values[name] = ""
                continue
            if isinstance(raw, bool) or not isinstance(raw, str | int | Decimal):
                problems.append(_invalid(name, f"{raw!r} is not a valid value", "INVALID_VALUE"))
                continue
            text = str(raw)
            problem = _check(name, spec, text)
            if problem is not None:
                problems.append(problem)
                continue
            if spec.unique:
                clash = self._by_unique(object_type, name, text)
                if clash is not None and clash["id"] != record_id:
                    raise HubSpotApiError(
                        409,
                        "CONFLICT",
                        f"A {object_type} record with {name} {text} already exists: {clash['id']}",
                        context={"id": [clash["id"]]},
                    )
            values[name] = _normalized(spec, text)
        if problems:
            raise HubSpotApiError(
                400,
                "VALIDATION_ERROR",
                f"Property values were not valid: {problems}",
                errors=[
                    {
                        "message": p["message"],
                        "code": p["error"],
                        "context": {"propertyName": [p["name"]]},
                    }
                    for p in problems
                ],
                context={"propertyName": [p["name"] for p in problems]},
            )
        return values

    def create(
        self, object_type: str, properties: object, source: ChangeSource | None = None
    ) -> dict[str, Any]:
        """A new record; ``source`` made it (default: the app, through the API)."""
        values = self.validated(object_type, properties, record_id=None)
        record_id = self._new_id()
        self._insert(object_type, record_id, values)
        self._journal(object_type, record_id, "creation", source, changeFlag="CREATED")
        return self.records[object_type][record_id]

    def search(self, object_type: str, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /crm/v3/objects/<type>/search`` ("Search the CRM"): ``filterGroups`` (at
        most 5, joined by OR; each at most 10 filters joined by AND; 25 filters in all),
        ``sorts`` (one), ``properties``, ``limit`` (at most 200) and ``after`` (the offset
        ``paging.next.after`` gave). A query pages through at most 10,000 results: an
        ``after`` past that is 400 ``VALIDATION_ERROR``."""
        groups = body.get("filterGroups") or []
        if not isinstance(groups, list) or len(groups) > MAX_FILTER_GROUPS:
            raise HubSpotApiError(
                400, "VALIDATION_ERROR", f"at most {MAX_FILTER_GROUPS} filterGroups"
            )
        tests: list[list[Callable[[dict[str, Any]], bool]]] = []
        count = 0
        for group in groups:
            filters = (group or {}).get("filters") or []
            if not isinstance(filters, list) or len(filters) > MAX_GROUP_FILTERS:
                raise HubSpotApiError(
                    400, "VALIDATION_ERROR", f"at most {MAX_GROUP_FILTERS} filters a group"
                )
            count += len(filters)
            tests.append([_search_filter(object_type, f) for f in filters])
        if count > MAX_FILTERS:
            raise HubSpotApiError(400, "VALIDATION_ERROR", f"at most {MAX_FILTERS} filters")
        limit = body.get("limit", 10)
        if not isinstance(limit, int) or not 1 <= limit <= MAX_SEARCH_LIMIT:
            raise HubSpotApiError(
                400, "VALIDATION_ERROR", f"limit must be between 1 and {MAX_SEARCH_LIMIT}"
            )
        after_text = str(body.get("after") or "0")
        if not after_text.isdigit():
            raise HubSpotApiError(400, "VALIDATION_ERROR", "after is not a valid cursor")
        after = int(after_text)
        if after + limit > MAX_SEARCH_RESULTS:
            raise HubSpotApiError(
                400,
                "VALIDATION_ERROR",
                f"The search API returns at most {MAX_SEARCH_RESULTS} results of a query",
            )
        rows = [
            r
            for r in self.records[object_type].values()
            if not r["archived"] and (not tests or any(all(t(r) for t in g) for g in tests))
        ]
        sorts = body.get("sorts") or [{"propertyName": "hs_object_id", "direction": "ASCENDING"}]
        if not isinstance(sorts, list) or len(sorts) > 1:
            raise HubSpotApiError(400, "VALIDATION_ERROR", "one sort at most")
        sort = sorts[0] if isinstance(sorts[0], dict) else {}
        name = str(sort.get("propertyName") or "hs_object_id")
        rows.sort(
            key=lambda r: _sortable(r["properties"].get(name)),
            reverse=str(sort.get("direction", "ASCENDING")).upper() == "DESCENDING",
        )
        page = rows[after : after + limit]
        properties = [str(p) for p in body.get("properties") or []]
        answer: dict[str, Any] = {
            "total": len(rows),
            "results": [self.answer(object_type, r, properties) for r in page],
        }
        if after + limit < len(rows):
            answer["paging"] = {"next": {"after": str(after + limit)}}
        return answer

    def update(
        self,
        record: dict[str, Any],
        object_type: str,
        properties: object,
        source: ChangeSource | None = None,
    ) -> None:
        """Write ``properties`` onto ``record``; ``source`` made the change (default: the
        app, through the API). Each property whose value changes is a webhook event."""
        values = self.validated(object_type, properties, record_id=record["id"])
        changed = {k: v for k, v in values.items() if record["properties"].get(k, "") != v}
        record["properties"].update(values)
        stamp = _now_iso()
        record["properties"]["hs_lastmodifieddate"] = stamp
        record["updatedAt"] = stamp
        for name, value in changed.items():
            self._journal(
                object_type,
                record["id"],
                "propertyChange",
                source,
                propertyName=name,
                propertyValue=value,
            )

    # webhooks

    def _journal(
        self,
        object_type: str,
        record_id: str,
        kind: str,
        source: ChangeSource | None,
        **fields: str,
    ) -> None:
        """Record the event HubSpot sends for a change (companies and deals only)."""
        name = WEBHOOK_OBJECTS.get(object_type)
        if name is None:
            return
        made_by = source or ChangeSource.app(self.app_id)
        subscription = f"{name}.{kind}"
        self._next_event_id += 1
        self.webhook_events.append(
            {
                "eventId": self._next_event_id,
                "subscriptionId": SUBSCRIPTION_IDS[subscription],
                "portalId": self.portal_id,
                "appId": self.app_id,
                "occurredAt": int(time.time() * 1000),
                "subscriptionType": subscription,
                "attemptNumber": 0,
                "objectId": int(record_id),
                **fields,
                "changeSource": made_by.change_source,
                "sourceId": made_by.source_id,
            }
        )

    def associate(self, src: tuple[str, str], dst: tuple[str, str], type_id: int) -> None:
        for from_type, to_type in ((src[0], dst[0]), (dst[0], src[0])):
            if type_id not in ASSOCIATION_TYPES.get((from_type, to_type), {}) and (
                _INVERSE.get(type_id, -1) not in ASSOCIATION_TYPES.get((from_type, to_type), {})
            ):
                raise HubSpotApiError(
                    400,
                    "VALIDATION_ERROR",
                    f"association type {type_id} is not valid from {src[0]} to {dst[0]}",
                )
        for kind, record_id in (src, dst):
            if record_id not in self.records[kind]:
                raise _not_found(kind, record_id)
        self.associations.setdefault(src, {}).setdefault(dst, set()).add(type_id)
        inverse = _INVERSE.get(type_id, type_id)
        self.associations.setdefault(dst, {}).setdefault(src, set()).add(inverse)

    def associated(self, src: tuple[str, str], to_type: str) -> list[dict[str, str]]:
        found: list[dict[str, str]] = []
        for (kind, record_id), types in self.associations.get(src, {}).items():
            if kind != to_type:
                continue
            names = ASSOCIATION_TYPES.get((src[0], to_type), {})
            for type_id in sorted(types):
                found.append({"id": record_id, "type": names.get(type_id, str(type_id))})
        return found

    def answer(
        self,
        object_type: str,
        record: dict[str, Any],
        properties: list[str],
        associations: list[str] | None = None,
    ) -> dict[str, Any]:
        """A record as a v3 read answers it."""
        shown = {
            name: record["properties"].get(name) or None
            for name in (*DEFAULT_PROPERTIES, *properties)
            if name in SCHEMA[object_type] or name in DEFAULT_PROPERTIES
        }
        body: dict[str, Any] = {
            "id": record["id"],
            "properties": shown,
            "createdAt": record["createdAt"],
            "updatedAt": record["updatedAt"],
            "archived": record["archived"],
        }
        groups: dict[str, Any] = {}
        for name in associations or []:
            to_type = OBJECT_TYPE_IDS.get(name, name)
            if to_type not in SCHEMA:
                continue
            results = self.associated((object_type, record["id"]), to_type)
            if results:
                groups[ASSOCIATION_KEYS[to_type]] = {"results": results}
        if groups:
            body["associations"] = groups
        return body


def _invalid(name: str, message: str, error: str) -> dict[str, Any]:
    return {"isValid": False, "message": message, "error": error, "name": name}


def _check(name: str, spec: Prop, text: str) -> dict[str, Any] | None:
    if spec.type == "number":
        try:
            number = Decimal(text)
        except InvalidOperation:
            number = None
        if number is None or not number.is_finite():
            return _invalid(name, f"{text} was not a valid number.", "INVALID_DECIMAL")
    if spec.type == "enumeration" and text not in spec.options:
        return _invalid(
            name,
            f"{text} was not one of the allowed options: {sorted(spec.options)}",
            "INVALID_OPTION",
        )
    if spec.type == "datetime":
        try:
            _parse_datetime(text)
        except ValueError:
            return _invalid(name, f"{text} is not a valid datetime", "INVALID_DATE")
    if spec.type == "date":
        try:
            datetime.strptime(text, "%Y-%m-%d")
        except ValueError:
            return _invalid(name, f"{text} is not a valid date (YYYY-MM-DD)", "INVALID_DATE")
    return None


def _parse_datetime(text: str) -> datetime:
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("no zone")
    return moment


def _normalized(spec: Prop, text: str) -> str:
    if spec.type == "datetime":
        moment = _parse_datetime(text).astimezone(UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return text


def _names(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def signed_uri(url: str) -> str:
    """``url`` as HubSpot signs it: the percent-escapes it decodes first, decoded."""
    return _ESCAPE.sub(lambda m: _SIGNED_ESCAPES[m.group(1).upper()], url)


def v3_signature(client_secret: str, method: str, url: str, body: bytes, timestamp: str) -> str:
    """The ``X-HubSpot-Signature-v3`` HubSpot sends: base64 HMAC-SHA256, keyed by the app's
    client secret, over method + URL + body + timestamp."""
    message = method.upper().encode() + signed_uri(url).encode() + body + timestamp.encode()
    digest = hmac.new(client_secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def render_delivery(
    events: list[dict[str, Any]], *, url: str, client_secret: str, timestamp_ms: int
) -> dict[str, Any]:
    """One webhook delivery of ``events`` to ``url``: the body HubSpot posts and its headers."""
    body = json.dumps(events, separators=(",", ":")).encode()
    stamp = str(timestamp_ms)
    return {
        "body": body.decode(),
        "headers": {
            "Content-Type": "application/json",
            "X-HubSpot-Request-Timestamp": stamp,
            "X-HubSpot-Signature-v3": v3_signature(client_secret, "POST", url, body, stamp),
        },
    }


# -- HTTP -------------------------------------------------------------------------------------


def build_router(state: SandboxState) -> APIRouter:
    """HubSpot's CRM routes over ``state.hubspot`` (looked up per request: a sandbox reset
    replaces the store)."""
    router = APIRouter()
    Action = Callable[[HubSpotStore], Awaitable[Response]]

    async def run(request: Request, operation: str, action: Action) -> Response:
        """Auth, rate limits, fault hooks around the operation, HubSpot-shaped errors."""
        if not state.oauth[VENDOR].accepts(bearer_token(request), state.tokens[VENDOR]):
            return error_response(
                401,
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found. This API supports OAuth 2.0 "
                "authentication and you can find more details at "
                "https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            )
        store = state.hubspot
        if (limited := store.throttle()) is not None:
            return limited
        faults = VendorFaults(state.faults, VENDOR, _fault_response)
        if (injected := await faults.before(operation)) is not None:
            return injected
        try:
            response = await action(store)
        except HubSpotApiError as error:
            return error_response(error.status, error.category, error.message, error.errors)
        if (injected := await faults.after(operation)) is not None:
            return injected
        return response

    async def body_of(request: Request) -> dict[str, Any]:
        try:
            body = await read_json(request)
        except ValueError:
            raise HubSpotApiError(400, "VALIDATION_ERROR", "Invalid input JSON") from None
        if not isinstance(body, dict):
            raise HubSpotApiError(400, "VALIDATION_ERROR", "Invalid input JSON: not an object")
        return body

    def inputs_of(body: dict[str, Any]) -> list[dict[str, Any]]:
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not inputs or len(inputs) > 100:
            raise HubSpotApiError(400, "VALIDATION_ERROR", "inputs must hold 1 to 100 items")
        if not all(isinstance(i, dict) for i in inputs):
            raise HubSpotApiError(400, "VALIDATION_ERROR", "every input must be an object")
        return inputs

    def batch_response(results: list[dict[str, Any]], errors: list[HubSpotApiError]) -> Response:
        if errors and not results:
            first = errors[0]
            return error_response(first.status, first.category, first.message, first.errors)
        stamp = _now_iso()
        body: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": stamp,
            "completedAt": stamp,
        }
        if errors:
            body["numErrors"] = len(errors)
            body["errors"] = [error.item() for error in errors]
        return json_response(body, 207 if errors else 200)

    base = "/crm/v3/objects/{object_type}"

    @router.get(base)
    async def list_records(object_type: str, request: Request) -> Response:
        async def action(store: HubSpotStore) -> Response:
            kind = object_type_name(object_type)
            params = request.query_params
            limit_text = params.get("limit", "10")
            if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LIMIT:
                raise HubSpotApiError(
                    400, "VALIDATION_ERROR", f"limit must be between 1 and {MAX_LIMIT}"
                )
            limit = min(int(limit_text), store.page_cap)
            archived = params.get("archived", "false").lower() == "true"
            rows = [r for r in store.records[kind].values() if r["archived"] == archived]
            rows.sort(key=lambda r: int(r["id"]))
            after = params.get("after")
            if after is not None:
                if not after.isdigit():
                    raise HubSpotApiError(400, "VALIDATION_ERROR", "after is not a valid cursor")
                rows = [r for r in rows if int(r["id"]) >= int(after)]
            page, rest = rows[:limit], rows[limit:]
            properties = _names(params.get("properties"))
            body: dict[str, Any] = {"results": [store.answer(kind, r, properties) for r in page]}
            if rest:
                following = rest[0]["id"]
                body["paging"] = {
                    "next": {
                        "after": following,
                        "link": f"{request.url.path}?after={following}&limit={limit}",
                    }
                }
            return json_response(body)

        return await run(request, "list", action)

    @router.post(base)
    async def create(object_type: str, request: Request) -> Response:
        async def action(store: HubSpotStore) -> Response:
            kind = object_type_name(object_type)
            body = await body_of(request)
            links = body.get("associations") or []
            if not isinstance(links, list):
                raise HubSpotApiError(400, "VALIDATION_ERROR", "associations must be a list")
            plan: list[tuple[str, str, int]] = []
            for link in links:
                to_id = str(((link or {}).get("to") or {}).get("id", ""))
                types = (link or {}).get("types") or []
                for kind_spec in types:
                    type_id = int((kind_spec or {}).get("associationTypeId", -1))
                    target = next(
                        (
                            to
                            for (src, to), ids in ASSOCIATION_TYPES.items()
                            if src == kind and type_id in ids
                        ),
                        None,
                    )
                    if target is None or to_id not in store.records[target]:
                        raise HubSpotApiError(
                            400,
                            "VALIDATION_ERROR",
                            f"association {type_id} to {to_id} is not valid",
                        )
                    plan.append((target, to_id, type_id))
            record = store.create(kind, body.get("properties") or {})
            for target, to_id, type_id in plan:
                store.associate((kind, record["id"]), (target, to_id), type_id)
            return json_response(store.answer(kind, record, list(record["properties"])), 201)

        return await run(request, "create", action)

    @router.get(base + "/{record_id}")
    async def get(object_type: str, record_id: str, request: Request) -> Response:
        async def action(store: HubSpotStore) -> Response:
            kind = object_type_name(object_type)
            params = request.query_params
            record = store.find(kind, record_id, params.get("idProperty"))
            answer = store.answer(
                kind,
                record,
                _names(params.get("properties")),
                _names(params.get("associations")),
            )
            return json_response(answer)

        return await run(request, "get", action)

    @router.patch(base + "/{record_id}")
    async def update(object_type: str, record_id: str, request: Request) -> Response:
        async def action(store: HubSpotStore) -> Response:
            kind = object_type_name(object_type)
            record = store.find(kind, record_id, request.query_params.get("idProperty"))
            body = await body_of(request)
            store.update(record, kind, body.get("properties"))
            return json_response(store.answer(kind, record, list(record["properties"])))

        return await run(request, "update", action)

    @router.post(base + "/search")
    async def search(object_type: str, request: Request) -> Response:
        async def action(store: HubSpotStore) -> Response:
            kind = object_type_name(object_type)
            body = await body_of(request)
            return json_response(store.search(kind, body))

        return await run(request, "search", action)

    @router.post(base + "/batch/read")
    async def batch_read(object_type: str, request: Request) -> Response:
        async def action(store: HubSpotStore) -> Response:
            kind = object_type_name(object_type)
            body = await body_of(request)
            properties = [str(p) for p in body.get("properties") or []]
            id_property = body.get("idProperty")
            results: list[dict[str, Any]] = []
            errors: list[HubSpotApiError] = []
            for item in inputs_of(body):
                try:
                    record = store.find(kind, str(item.get("id", "")), id_property)
                except HubSpotApiError as error:
                    errors.append(error)
                    continue
                results.append(store.answer(kind, record, properties))
            return batch_response(results, errors)

        return await run(request, "batch_read", action)

    @router.post(base + "/batch/upsert")
    async def batch_upsert(object_type: str, request: Request) -> Response:
        async def action(store: HubSpotStore) -> Response:
            kind = object_type_name(object_type)
            body = await body_of(request)
            results: list[dict[str, Any]] = []
            errors: list[HubSpotApiError] = []
            for item in inputs_of(body):
                id_property = item.get("idProperty")
                value = item.get("id")
                spec = SCHEMA[kind].get(str(id_property))
                try:
                    if spec is None or not spec.unique or not isinstance(value, str) or not value:
                        raise HubSpotApiError(
                            400,
                            "VALIDATION_ERROR",
                            "upsert needs idProperty naming a unique property and an id",
                        )
                    properties = dict(item.get("properties") or {})
                    existing = store._by_unique(kind, str(id_property), value)
                    if existing is None:
                        record = store.create(kind, {**properties, str(id_property): value})
                        created = True
                    else:
                        store.update(existing, kind, properties)
                        record, created = existing, False
                except HubSpotApiError as error:
                    errors.append(error)
                    continue
                answer = store.answer(kind, record, list(record["properties"]))
                results.append({**answer, "new": created})
            return batch_response(results, errors)

        return await run(request, "batch_upsert", action)

    @router.put("/crm/v4/objects/{object_type}/{record_id}/associations/default/{to_type}/{to_id}")
    async def associate_default(
        object_type: str, record_id: str, to_type: str, to_id: str, request: Request
    ) -> Response:
        async def action(store: HubSpotStore) -> Response:
            kind, target = object_type_name(object_type), object_type_name(to_type)
            type_id = DEFAULT_ASSOCIATION.get((kind, target))
            if type_id is None:
                raise HubSpotApiError(
                    400, "VALIDATION_ERROR", f"no default association from {kind} to {target}"
                )
            store.associate((kind, record_id), (target, to_id), type_id)
            stamp = _now_iso()
            return json_response(
                {
                    "status": "COMPLETE",
                    "results": [
                        {
                            "from": {"id": record_id},
                            "to": {"id": to_id},
                            "associationSpec": {
                                "associationCategory": "HUBSPOT_DEFINED",
                                "associationTypeId": type_id,
                            },
                        }
                    ],
                    "startedAt": stamp,
                    "completedAt": stamp,
                }
            )

        return await run(request, "associate", action)

    return router


# -- OAuth ------------------------------------------------------------------------------------


def _oauth_refusal(status: str, message: str) -> Response:
    return json_response(
        {"status": status, "message": message, "correlationId": str(uuid.uuid4())}, 400
    )


def build_oauth_router(state: SandboxState) -> APIRouter:
    """``POST /oauth/v1/token`` with the refresh token grant (see the module docstring)."""
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
        except OAuthFailure as failure:
            return _oauth_refusal("BAD_REQUEST", failure.description)
        if form.get("grant_type") != "refresh_token":
            return _oauth_refusal("BAD_GRANT_TYPE", "grant_type must be refresh_token")
        client = server.clients.get(form.get("client_id", ""))
        if client is None:
            return _oauth_refusal("BAD_CLIENT_ID", "missing or invalid client_id")
        if client.client_secret is None or not secrets.compare_digest(
            form.get("client_secret", "").encode(), client.client_secret.encode()
        ):
            return _oauth_refusal("BAD_CLIENT_SECRET", "missing or invalid client_secret")
        refresh = form.get("refresh_token", "")
        if state.hubspot.refresh_tokens.get(refresh) != client.client_id:
            return _oauth_refusal("BAD_REFRESH_TOKEN", "missing or unknown refresh token")
        return json_response(
            {
                "token_type": "bearer",
                "refresh_token": refresh,
                "access_token": server.issue(),
                "expires_in": int(server.token_lifetime),
            }
        )

    return router


# -- sandbox controls: a user's edit, the webhooks HubSpot would send ------------------------


class UserEdit(BaseModel):
    """A user's edit of a record in HubSpot's UI."""

    properties: dict[str, Any]
    userId: int = Field(default=73125491, gt=0)


class RenderWebhooks(BaseModel):
    """Which journalled events to render as one delivery, and where to."""

    url: str = Field(min_length=1, description="The app's target URL, as HubSpot calls it")
    client_secret: str = Field(min_length=1, description="The app's client secret")
    after: int = Field(default=0, ge=0, description="Skip the journal's first events")
    object_id: str | None = Field(default=None, description="Only this record's events")


def build_control_router(state: SandboxState) -> APIRouter:
    """``/_sandbox/hubspot``: edits as a user makes them, and the webhooks they cause."""
    router = APIRouter()

    @router.patch("/objects/{object_type}/{record_id}")
    async def user_edit(object_type: str, record_id: str, edit: UserEdit) -> Response:
        store = state.hubspot
        try:
            kind = object_type_name(object_type)
            record = store.find(kind, record_id, None)
            store.update(record, kind, edit.properties, ChangeSource.user(edit.userId))
        except HubSpotApiError as error:
            return error_response(error.status, error.category, error.message, error.errors)
        return json_response(store.answer(kind, record, list(record["properties"])))

    @router.get("/webhooks")
    async def webhooks(after: int = 0) -> Response:
        events = state.hubspot.webhook_events
        return json_response({"events": events[after:], "next": len(events)})

    @router.post("/webhooks/render")
    async def render(request: RenderWebhooks) -> Response:
        journal = state.hubspot.webhook_events
        pending = [
            (index, event)
            for index, event in enumerate(journal)
            if index >= request.after
            and (request.object_id is None or str(event["objectId"]) == request.object_id)
        ][:MAX_WEBHOOK_EVENTS]
        if not pending:
            return json_response({"events": 0, "next": len(journal)})
        delivery = render_delivery(
            [event for _, event in pending],
            url=request.url,
            client_secret=request.client_secret,
            timestamp_ms=int(time.time() * 1000),
        )
        return json_response({"events": len(pending), "next": pending[-1][0] + 1, **delivery})

    return router


# -- making deals (what a seller does in HubSpot; for the contract suite, tests and demos) ----


async def create_deal(
    http: Any,
    base_url: str,
    token: str,
    company_id: str,
    *,
    currency: str,
    lines: list[tuple[str, str, str]],
    stage: str = "closedwon",
    owner: str = "73125491",
    close_date: str = "2025-02-20T09:30:00.000Z",
) -> str:
    """Create a deal for ``company_id`` (its primary company) with one line item per
    ``(sku, quantity, discount percent)`` of the seed catalog at list price, through the
    emulator's API (``http`` an ``httpx.AsyncClient``); returns the deal id."""
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{base_url.rstrip('/')}/crm/v3/objects"
    deal = await http.post(
        f"{url}/deals",
        json={
            "properties": {
                "dealname": f"revsync deal for {company_id}",
                "dealstage": stage,
                "pipeline": "default",
                "deal_currency_code": currency,
                "hubspot_owner_id": owner,
                "closedate": close_date,
            },
            "associations": [
                {
                    "to": {"id": company_id},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 5}],
                }
            ],
        },
        headers=headers,
    )
    deal.raise_for_status()
    deal_id = str(deal.json()["id"])
    for sku, quantity, discount in lines:
        item = next(i for i in seed.CATALOG if i["itemId"] == sku)
        properties = {
            "name": item["displayName"],
            "hs_sku": sku,
            "hs_product_id": item["id"],
            "quantity": quantity,
            "price": str(item["prices"][currency]),
            "hs_discount_percentage": discount,
        }
        if item["billing"] == "recurring":
            properties |= {
                "recurringbillingfrequency": "monthly",
                "hs_recurring_billing_period": "P12M",
            }
        created = await http.post(
            f"{url}/line_items",
            json={
                "properties": properties,
                "associations": [
                    {
                        "to": {"id": deal_id},
                        "types": [
                            {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 20}
                        ],
                    }
                ],
            },
            headers=headers,
        )
        created.raise_for_status()
    return deal_id
