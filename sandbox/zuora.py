"""A Zuora billing API emulator (the v1 and Object Query subset revsync uses), mounted by
:mod:`sandbox.app` at ``/zuora``, so the real adapter runs against it unchanged.

What it keeps faithful:

- **Auth**: ``POST /oauth/token`` with a form ``client_id``, ``client_secret``,
  ``grant_type=client_credentials`` answers ``{"access_token", "token_type": "bearer",
  "expires_in", "scope", "jti"}``; tokens live ``/_sandbox/oauth/zuora/lifetime`` seconds (an
  hour by default) and ``/_sandbox/oauth/zuora/expire`` expires them. The sandbox client
  ``sandbox-zuora-client`` has the secret ``state.tokens["zuora"]`` (``sandbox-zuora-secret``);
  more clients can be registered at ``/_sandbox/oauth/zuora/clients``. A bad client is a 401
  ``invalid_client``. An API call without a live token is a 401 with code ``90000011``.
- **Errors**: failures of the v1 API are HTTP 200 with ``{"success": false, "processId",
  "reasons": [{"code": <8 digits>, "message"}]}``, the code's last two digits its category
  (20 invalid value, 21 unknown field, 22 missing required field, 30 rule restriction, 40 not
  found...). Injected faults answer with their status and the same body (5xx: category 60,
  429: 70, 401: 11, 404: 40, 409: 50, any other: 20, unless a code is given).
- **Idempotency** (``idempotency-key`` on POST): the first answer to a key is stored and
  replayed for the same method, path and body; the key with another request is a 422; a
  request while the first is still executing is a 409. Answers that were not processed (a
  fault injected before, 5xx, 429, a transient category) are not stored, so a retry can
  succeed. A replayed answer skips the fault hooks.
- **Accounts** (``POST/GET/PUT /v1/accounts``): ``name``, ``currency`` and ``billToContact``
  (``firstName``, ``lastName``, ``country``) are required; ``crmId``, ``taxInfo.VATId``,
  ``soldToContact`` (the bill-to when absent), custom fields ``CrmAccountName__c``. A
  contact's fields are ``firstName``, ``lastName``, ``workEmail``, ``address1``,
  ``address2``, ``city``, ``state``, ``zipCode``, ``country``: any other is an unknown field
  (category 21). Numbers ``A00000001``; keys are the id or the number. ``GET`` nests
  ``basicInfo`` (custom fields at its top level), ``billToContact``, ``soldToContact``,
  ``taxInfo``, ``billingAndPayment`` (``currency``) and ``metrics`` (``balance``).
- **Catalog**: one product per ``sandbox.seed.CATALOG`` SKU (``GET
  /v1/catalog/product/<id or SKU>``) with one rate plan (``Expired`` for inactive items) and
  one per-unit charge, ``Recurring`` monthly or ``OneTime``, priced in the catalog's
  currencies.
- **Orders** (``POST /v1/orders``): ``CreateSubscription`` (for ``existingAccountNumber``;
  termed or evergreen; rate plans of the catalog with per-unit price overrides, each charge
  priced in the account's currency; known custom fields only; a known ``paymentTerm``) and
  ``CancelSubscription`` (``SpecificDate``, ``EndOfCurrentTerm``; a cancelled subscription is
  a rule restriction). ``processingOptions.runBilling`` bills the new subscription up to
  ``billingOptions.targetDate``: one invoice with one item per charge (recurring: the first
  billing period, ``serviceEndDate`` its last day; one-time: on the start date), the amount
  ``quantity * listPrice`` rounded half up to the currency. The tenant posts invoices it
  generates. The answer names ``subscriptionNumbers`` and ``invoiceNumbers``.
- **Subscriptions** (``GET /v1/subscriptions/<number or id>``): ``status`` Active or
  Cancelled (then ``subscriptionEndDate`` is the cancellation date), ``currency``,
  ``contractEffectiveDate``, custom fields at the top level. One version per subscription is
  kept (a cancellation updates it in place).
- **Invoices**: ``GET /v1/invoices/<id or number>`` (the account named by ``accountId``
  only) and ``/items`` (``page``, ``pageSize`` at most 40, ``nextPage`` while more remain;
  an item names its subscription ``subscriptionName``); ``PUT .../unpost`` (Posted to Draft;
  refused, category 30, once anything is applied: the balance differs from the amount) and
  ``PUT .../cancel`` (Draft only).
- **Object Query** (``GET /object-query/<accounts|subscriptions|invoices|invoice-items>``):
  ``filter[]=<field>.<EQ|NE|GT|LT|GE|LE>:<value>`` and ``<field>.IN:[a,b]`` ("Expand,
  filter, fields, and sort", Zuora developer docs), ``sort[]=<field>.<ASC|DESC>`` (field names
  match case-insensitively), ``expand[]`` (``billto``/``soldto`` on accounts, ``account``
  on subscriptions and invoices, ``invoice`` on invoice items), ``pageSize`` 1 to 99 and
  ``cursor`` from the answer's ``nextPage``. An unknown field is an error. Records are flat
  and their fields are named as Object Query names them: a lower-case first letter, custom
  fields too (``revsyncKey__c``, ``crmAccountName__c``), the tax id ``vATId``, the
  subscription number the subscription's ``name``, an invoice item's SKU ``sKU``, a
  contact's postal code ``postalCode``; an invoice names its account by ``accountId``.
  Accounts, subscriptions and invoices carry ``createdDate`` and ``updatedDate`` (the names
  of Zuora's SDK models; ISO 8601 with an offset, to the millisecond, on the tenant's wall
  clock), compared as moments by ``GE``/``LT`` filters.
- **The SDK as judge**: ``tests/oracles/test_zuora_oracle.py`` loads every request the
  adapter sends and every answer here into Zuora's own SDK models (``zuora-sdk``); the
  shapes above are what it accepts (docs/vendor-fidelity.md, "Zuora").
- **Limits**: ``ZuoraStore.requests_per_minute`` caps API calls per minute; past it a call is
  a 429 (code ``50000070``) with ``Retry-After`` the seconds left in the minute.
- **Sandbox controls** (``/_sandbox/zuora``, not Zuora's API; no auth, no faults):
  ``POST /invoices`` makes a posted (or draft) invoice with given items for a CRM account;
  ``POST /invoices/<key>/payments`` applies an external payment (lowers the balance);
  ``POST /invoices/<key>/credit-memos`` posts a credit memo for some of its items and applies
  it; ``GET /callouts`` (``?invoice=<number>``) lists the callouts Zuora would have sent.
- **Callouts** (Events & Notifications): the store renders, as a tenant configured with
  revsync's callout templates would (docs/api.md), one callout per event: ``invoice.posted``
  when an invoice is posted (made posted, or billed by an order), ``payment.applied`` when a
  payment is applied, ``invoice.canceled`` when an invoice is cancelled, ``creditmemo.posted``
  when a credit memo is posted. Merge fields render inside JSON strings (amounts as decimal
  strings); a credit memo's item list ends with the ``null`` the template's loop leaves. Each
  has a ``notificationId`` (Zuora's ``Zuora-Notification-Id`` header). Nothing is sent: a
  test or a developer posts the body to revsync with the secret header.

Operations, as named for fault injection (vendor ``zuora``): ``oauth_token``,
``create_account``, ``get_account``, ``update_account``, ``get_product``, ``create_order``,
``cancel_order`` (``POST /v1/orders`` with a ``CancelSubscription`` action),
``get_subscription``, ``get_invoice``, ``list_invoice_items``, ``unpost_invoice``,
``cancel_invoice``, ``query_accounts``, ``query_subscriptions``, ``query_invoices``,
``query_invoice_items``.
"""

from __future__ import annotations

import base64
import calendar
import copy
import hashlib
import json
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from domain.money import MINOR_UNITS
from sandbox.faults import VendorFaults
from sandbox.oauth import OAuthClient, OAuthFailure, OAuthServer, read_form
from sandbox.seed import ACCOUNTS, CATALOG
from sandbox.wire import bearer_token, json_response, read_json

if TYPE_CHECKING:
    from sandbox.app import SandboxState

VENDOR = "zuora"
SANDBOX_CLIENT_ID = "sandbox-zuora-client"
TOKEN_LIFETIME = 3600.0
MAX_QUERY_PAGE = 99
MAX_ITEMS_PAGE = 40
CUSTOM_FIELDS = {
    "account": frozenset({"CrmAccountName__c"}),
    "subscription": frozenset({"RevsyncKey__c", "QuoteId__c", "CrmAccountId__c"}),
    "charge": frozenset({"QuoteLineId__c", "QuoteQuantity__c"}),
}
PAYMENT_TERMS = {
    "Due Upon Receipt": 0,
    "Net 15": 15,
    "Net 30": 30,
    "Net 45": 45,
    "Net 60": 60,
    "Net 90": 90,
}
BILLING_PERIOD_MONTHS = {"Month": 1, "Quarter": 3, "Semi-Annual": 6, "Annual": 12}
Json = dict[str, Any]

# Error categories (the last two digits of a code).
INVALID = "20"
UNKNOWN_FIELD = "21"
MISSING = "22"
RULE = "30"
NOT_FOUND = "40"
TRANSIENT_CATEGORIES = frozenset({"11", "50", "60", "61", "70"})


class ZuoraError(Exception):
    """A failure in Zuora's format: ``resource`` (6 digits) and ``category`` (2) make the
    code. Business failures are HTTP 200 with ``success: false``."""

    def __init__(
        self, category: str, message: str, *, resource: str = "500000", status: int = 200
    ) -> None:
        super().__init__(message)
        self.code = f"{resource}{category}"
        self.message = message
        self.status = status

    def body(self) -> Json:
        return error_body(self.code, self.message)

    def response(self) -> Response:
        return error_response(self.status, self.code, self.message)


def error_body(code: str | None, message: str) -> Json:
    """Zuora's failure body; the code is a number, as Zuora writes it."""
    reason: Json = {"message": message}
    if code is not None:
        reason["code"] = int(code) if code.isdigit() else code
    return {"success": False, "processId": secrets.token_hex(8).upper(), "reasons": [reason]}


def error_response(status: int, code: str | None, message: str) -> Response:
    return json_response(error_body(code, message), status)


_FAULT_CATEGORIES = {401: "11", 404: NOT_FOUND, 409: "50", 429: "70"}


def fault_response(status: int, code: str | None, message: str) -> Response:
    """An injected fault in Zuora's error format."""
    if code is None:
        category = _FAULT_CATEGORIES.get(status, "60" if status >= 500 else INVALID)
        code = f"500000{category}"
    response = error_response(status, code, message)
    return response


def _plain_error(status: int, message: str) -> Response:
    return json_response({"success": False, "message": message}, status)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def _money(value: Decimal, currency: str) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-MINOR_UNITS[currency]), rounding=ROUND_HALF_UP)


def _add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year = day.year + month // 12
    month = month % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _decimal(value: Any, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise ZuoraError(INVALID, f"'{what}' must be a number")
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ZuoraError(INVALID, f"'{what}' must be a number") from None


def _date(value: Any, what: str) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ZuoraError(INVALID, f"'{what}' must be a date (yyyy-mm-dd)") from None


def _required(body: Json, name: str, where: str) -> Any:
    value = body.get(name)
    if value in (None, ""):
        raise ZuoraError(MISSING, f"'{name}' is required in {where}")
    return value


def _custom(body: Json, kind: str) -> Json:
    custom = {k: v for k, v in body.items() if k.endswith("__c")}
    unknown = sorted(set(custom) - CUSTOM_FIELDS[kind])
    if unknown:
        raise ZuoraError(UNKNOWN_FIELD, f"unknown field {unknown[0]!r} on {kind}")
    return custom


# --- the store -------------------------------------------------------------------------------


def _catalog_products() -> dict[str, Json]:
    products: dict[str, Json] = {}
    for item in CATALOG:
        sku = str(item["itemId"])
        recurring = item["billing"] == "recurring"
        charge: Json = {
            "id": _digest(f"charge:{sku}"),
            "name": str(item["displayName"]),
            "type": "Recurring" if recurring else "OneTime",
            "model": "PerUnit",
            "uom": "Each",
            "pricing": [
                {"currency": currency, "price": price}
                for currency, price in sorted(item["prices"].items())
            ],
        }
        if recurring:
            charge["billingPeriod"] = "Month"
        products[sku] = {
            "id": _digest(f"product:{sku}"),
            "sku": sku,
            "name": str(item["displayName"]),
            "productRatePlans": [
                {
                    "id": _digest(f"plan:{sku}"),
                    "name": "Standard",
                    "status": "Expired" if item.get("isInactive") else "Active",
                    "productRatePlanCharges": [charge],
                }
            ],
        }
    return products


class ZuoraStore:
    """Zuora's records, in memory."""

    def __init__(self) -> None:
        self.accounts: dict[str, Json] = {}  # by id
        self.subscriptions: dict[str, Json] = {}  # by number
        self.orders: list[Json] = []
        self.invoices: dict[str, Json] = {}  # by id
        self.items: list[Json] = []
        self.payments: list[Json] = []
        self.credit_memos: list[Json] = []
        self.callouts: list[Json] = []  # {"notificationId", "event", "body"}, in order
        self.products = _catalog_products()
        # idempotency-key -> (request fingerprint, stored status and body, or None in flight)
        self.keys: dict[str, tuple[str, tuple[int, Json] | None]] = {}
        self._last_ms = 0
        self._numbers: dict[str, int] = {}
        # The tenant's request limit: at most this many API calls per minute (None: no limit).
        self.requests_per_minute: int | None = None
        self.clock: Callable[[], float] = time.monotonic
        self.wall_clock: Callable[[], float] = time.time
        self._window: tuple[float, int] = (0.0, 0)

    def throttle(self) -> int | None:
        """Seconds until the next minute window when this request is over the limit (it is
        answered 429 with ``Retry-After``); None to serve it."""
        if self.requests_per_minute is None:
            return None
        now = self.clock()
        start, count = self._window
        if now - start >= 60:
            start, count = now, 0
        self._window = (start, count + 1)
        if count < self.requests_per_minute:
            return None
        return max(1, math.ceil(start + 60 - now))

    def snapshot(self) -> Json:
        return {
            "accounts": [copy.deepcopy(a) for a in self.accounts.values()],
            "subscriptions": [copy.deepcopy(s) for s in self.subscriptions.values()],
            "orders": copy.deepcopy(self.orders),
            "invoices": [self._invoice_view(i) for i in self.invoices.values()],
            "payments": copy.deepcopy(self.payments),
            "creditMemos": copy.deepcopy(self.credit_memos),
            "products": sorted(self.products),
        }

    # identities

    def _id(self) -> str:
        return secrets.token_hex(16)

    def _number(self, prefix: str, width: int = 8) -> str:
        count = self._numbers.get(prefix, 0) + 1
        self._numbers[prefix] = count
        return f"{prefix}{count:0{width}d}"

    def _times(self, record: Json, *, created: bool = False) -> None:
        """``updatedDate`` (Zuora's audit field, as its SDK's models name it next to
        ``createdDate``; ISO 8601 with an offset), set whenever a record changes; a new record
        is updated when it is created."""
        if created:
            record["updatedDate"] = record["createdDate"]
        else:
            record["updatedDate"] = self._created()

    def _created(self) -> str:
        """Now on the tenant's wall clock, to the millisecond, and later than any moment this
        tenant gave before: records made in one millisecond still sort in the order made."""
        moment = max(int(self.wall_clock() * 1000), self._last_ms + 1)
        self._last_ms = moment
        stamp = datetime.fromtimestamp(moment / 1000, UTC)
        return stamp.isoformat(timespec="milliseconds")

    # accounts

    def account(self, key: str) -> Json:
        for account in self.accounts.values():
            if key in (account["id"], account["accountNumber"]):
                return account
        raise ZuoraError(NOT_FOUND, f"Cannot find entity by key: '{key}'.", resource="500000")

    def _contact(self, raw: Any, where: str) -> Json:
        if not isinstance(raw, dict):
            raise ZuoraError(MISSING, f"'{where}' is required")
        unknown = sorted(set(raw) - set(CONTACT_FIELDS))
        if unknown:
            raise ZuoraError(UNKNOWN_FIELD, f"unknown field {unknown[0]!r} on {where}")
        for name in ("firstName", "lastName", "country"):
            _required(raw, name, where)
        return {
            "id": self._id(),
            **{k: raw.get(k) for k in CONTACT_FIELDS if raw.get(k) not in (None, "")},
        }

    def create_account(self, body: Json) -> Json:
        name = _required(body, "name", "the account")
        currency = str(_required(body, "currency", "the account"))
        if currency not in MINOR_UNITS:
            raise ZuoraError(INVALID, f"'currency' {currency!r} is not enabled", resource="500031")
        custom = _custom(body, "account")
        bill_to = self._contact(body.get("billToContact"), "billToContact")
        sold_to = (
            self._contact(body["soldToContact"], "soldToContact")
            if body.get("soldToContact")
            else dict(bill_to)
        )
        bcd = body.get("billCycleDay", 0)
        if not isinstance(bcd, int) or not 0 <= bcd <= 31:
            raise ZuoraError(INVALID, "'billCycleDay' must be between 0 and 31")
        tax: Json = body["taxInfo"] if isinstance(body.get("taxInfo"), dict) else {}
        account = {
            "id": self._id(),
            "accountNumber": self._number("A"),
            "name": str(name),
            "crmId": body.get("crmId"),
            "currency": currency,
            "status": "Active",
            "billCycleDay": bcd,
            "autoPay": bool(body.get("autoPay", False)),
            "paymentTerm": body.get("paymentTerm") or "Due Upon Receipt",
            "defaultPaymentMethodId": None,
            "billTo": bill_to,
            "soldTo": sold_to,
            "taxInfo": {"VATId": tax.get("VATId")} if tax.get("VATId") else {},
            "createdDate": self._created(),
            **custom,
        }
        self._times(account, created=True)
        self.accounts[account["id"]] = account
        return {
            "success": True,
            "accountId": account["id"],
            "accountNumber": account["accountNumber"],
            "billToContactId": bill_to["id"],
            "soldToContactId": sold_to["id"],
        }

    def account_view(self, account: Json) -> Json:
        """``GET /v1/accounts/<key>``: ``basicInfo`` (custom fields at its top level),
        ``billingAndPayment`` (the currency), ``metrics`` (the balance), the contacts and
        ``taxInfo``."""
        basic = {k: account.get(k) for k in ("id", "accountNumber", "name", "crmId", "status")}
        basic["defaultPaymentMethodId"] = account.get("defaultPaymentMethodId")
        basic.update({k: v for k, v in account.items() if k.endswith("__c")})
        balance = sum(
            (
                i["balance"]
                for i in self.invoices.values()
                if i["accountId"] == account["id"] and i["status"] == "Posted"
            ),
            Decimal(0),
        )
        return {
            "success": True,
            "basicInfo": basic,
            "billingAndPayment": {
                "billCycleDay": account["billCycleDay"],
                "currency": account["currency"],
                "paymentTerm": account["paymentTerm"],
                "autoPay": account["autoPay"],
            },
            "metrics": {"balance": balance, "currency": account["currency"]},
            "billToContact": copy.deepcopy(account["billTo"]),
            "soldToContact": copy.deepcopy(account["soldTo"]),
            "taxInfo": copy.deepcopy(account["taxInfo"]),
        }

    def update_account(self, key: str, body: Json) -> Json:
        account = self.account(key)
        before = copy.deepcopy(account)
        custom = _custom(body, "account")
        unknown = set(body) - set(custom) - {"name", "crmId", "billToContact", "taxInfo", "autoPay"}
        if unknown:
            raise ZuoraError(UNKNOWN_FIELD, f"unknown field {sorted(unknown)[0]!r} on account")
        if "name" in body and not body["name"]:
            raise ZuoraError(MISSING, "'name' cannot be empty")
        contact = body.get("billToContact")
        if contact is not None:
            if not isinstance(contact, dict) or set(contact) - set(CONTACT_FIELDS):
                raise ZuoraError(UNKNOWN_FIELD, "unknown field on billToContact")
            if "country" in contact and not contact["country"]:
                raise ZuoraError(MISSING, "'country' is required in billToContact")
            for name, value in contact.items():
                if value in (None, ""):
                    account["billTo"].pop(name, None)
                else:
                    account["billTo"][name] = value
        if isinstance(body.get("taxInfo"), dict):
            vat = body["taxInfo"].get("VATId")
            account["taxInfo"] = {"VATId": vat} if vat else {}
        for name in ("name", "crmId", "autoPay", *custom):
            if name in body:
                account[name] = body[name] if body[name] != "" else None
        if account != before:
            self._times(account)
        return {"success": True}

    # catalog

    def product(self, key: str) -> Json:
        for product in self.products.values():
            if key in (product["id"], product["sku"]):
                return copy.deepcopy(product)
        raise ZuoraError(NOT_FOUND, f"Cannot find entity by key: '{key}'.", resource="500100")

    def _charge(self, plan_id: Any, charge_id: Any) -> tuple[Json, Json]:
        for product in self.products.values():
            for plan in product["productRatePlans"]:
                if plan["id"] != plan_id:
                    continue
                if plan["status"] != "Active":
                    raise ZuoraError(RULE, f"product rate plan {plan_id} is not active")
                for charge in plan["productRatePlanCharges"]:
                    if charge["id"] == charge_id:
                        return product, charge
                raise ZuoraError(
                    INVALID, f"charge {charge_id} is not in rate plan {plan_id}", resource="531040"
                )
        raise ZuoraError(NOT_FOUND, f"Cannot find product rate plan {plan_id}", resource="531030")

    # orders

    def create_order(self, body: Json) -> Json:
        order_date = _date(_required(body, "orderDate", "the order"), "orderDate")
        account = self.account(str(_required(body, "existingAccountNumber", "the order")))
        subscriptions = body.get("subscriptions")
        if not isinstance(subscriptions, list) or not subscriptions:
            raise ZuoraError(MISSING, "'subscriptions' is required in the order")
        options = body.get("processingOptions") or {}
        # Validate every action before applying any (an order is all or nothing).
        plans = [self._plan_action(entry, account) for entry in subscriptions]
        order = {
            "orderNumber": self._number("O-"),
            "orderDate": order_date.isoformat(),
            "accountNumber": account["accountNumber"],
            "description": body.get("description"),
            "status": "Completed",
        }
        numbers: list[str] = []
        invoices: list[str] = []
        for plan in plans:
            numbers.append(plan())
        if options.get("runBilling"):
            target = (options.get("billingOptions") or {}).get("targetDate")
            target_date = _date(target, "targetDate") if target else order_date
            for number in numbers:
                invoice = self._bill(self.subscriptions[number], target_date)
                if invoice is not None:
                    invoices.append(invoice)
        order["subscriptionNumbers"] = numbers
        self.orders.append(order)
        answer: Json = {
            "success": True,
            "orderNumber": order["orderNumber"],
            "accountNumber": account["accountNumber"],
            "status": "Completed",
            "subscriptionNumbers": numbers,
        }
        if invoices:
            answer["invoiceNumbers"] = invoices
        return answer

    def _plan_action(self, entry: Any, account: Json) -> Callable[[], str]:
        if not isinstance(entry, dict):
            raise ZuoraError(INVALID, "each subscription of an order must be an object")
        actions = entry.get("orderActions")
        if not isinstance(actions, list) or len(actions) != 1 or not isinstance(actions[0], dict):
            raise ZuoraError(INVALID, "the sandbox takes one order action per subscription")
        action = actions[0]
        kind = action.get("type")
        if kind == "CreateSubscription":
            return self._plan_create(entry, action, account)
        if kind == "CancelSubscription":
            return self._plan_cancel(entry, action, account)
        raise ZuoraError(
            INVALID,
            f"'type' value should be one of: CreateSubscription, CancelSubscription "
            f"(the sandbox's subset), not {kind!r}",
            resource="581020",
        )

    def _plan_create(self, entry: Json, action: Json, account: Json) -> Callable[[], str]:
        custom = _custom(entry.get("customFields") or {}, "subscription")
        create = action.get("createSubscription")
        if not isinstance(create, dict):
            raise ZuoraError(MISSING, "'createSubscription' is required")
        terms = create.get("terms") or {}
        initial = terms.get("initialTerm") or {}
        term_type = initial.get("termType")
        if term_type not in ("TERMED", "EVERGREEN"):
            raise ZuoraError(
                INVALID, "'termType' value should be one of: TERMED, EVERGREEN", resource="531003"
            )
        if term_type == "TERMED" and not (
            isinstance(initial.get("period"), int) and initial["period"] > 0
        ):
            raise ZuoraError(INVALID, "'period' of a termed initial term must be positive")
        triggers = {
            t.get("name"): t.get("triggerDate")
            for t in action.get("triggerDates") or []
            if isinstance(t, dict)
        }
        start = _date(
            triggers.get("ContractEffective") or initial.get("startDate"), "ContractEffective"
        )
        term = create.get("paymentTerm") or account["paymentTerm"]
        if term not in PAYMENT_TERMS:
            raise ZuoraError(INVALID, f"payment term {term!r} does not exist", resource="531120")
        currency = account["currency"]
        charges: list[Json] = []
        for plan in create.get("subscribeToRatePlans") or []:
            plan_id = plan.get("productRatePlanId")
            overrides = plan.get("chargeOverrides") or []
            if len(overrides) != 1:
                raise ZuoraError(INVALID, "the sandbox takes one charge override per rate plan")
            override = overrides[0]
            product, charge = self._charge(plan_id, override.get("productRatePlanChargeId"))
            if currency not in {p["currency"] for p in charge["pricing"]}:
                raise ZuoraError(
                    RULE,
                    f"charge {charge['name']!r} has no price in the account currency {currency}",
                    resource="531050",
                )
            pricing = override.get("pricing") or {}
            wanted = "recurringPerUnit" if charge["type"] == "Recurring" else "oneTimePerUnit"
            if set(pricing) - {wanted}:
                raise ZuoraError(
                    INVALID, f"a {charge['type']} per-unit charge takes {wanted} pricing only"
                )
            per_unit = pricing.get(wanted) or {}
            quantity = _decimal(per_unit.get("quantity", 1), "quantity")
            price = _decimal(per_unit.get("listPrice", _list_price(charge, currency)), "listPrice")
            if quantity <= 0 or price < 0:
                raise ZuoraError(
                    INVALID, "'quantity' must be positive and 'listPrice' not negative"
                )
            period = (override.get("billing") or {}).get("billingPeriod") or charge.get(
                "billingPeriod"
            )
            if charge["type"] == "Recurring" and period not in BILLING_PERIOD_MONTHS:
                raise ZuoraError(INVALID, f"'billingPeriod' {period!r} is not supported")
            charges.append(
                {
                    "id": self._id(),
                    "productRatePlanChargeId": charge["id"],
                    "sku": product["sku"],
                    "name": charge["name"],
                    "description": override.get("description") or charge["name"],
                    "type": charge["type"],
                    "billingPeriod": period if charge["type"] == "Recurring" else None,
                    "quantity": quantity,
                    "listPrice": price,
                    **_custom(override.get("customFields") or {}, "charge"),
                }
            )
        if not charges:
            raise ZuoraError(MISSING, "'subscribeToRatePlans' is required")

        def apply() -> str:
            number = self._number("A-S")
            self.subscriptions[number] = {
                "id": self._id(),
                "subscriptionNumber": number,
                "version": 1,
                "accountId": account["id"],
                "accountNumber": account["accountNumber"],
                "currency": currency,
                "status": "Active",
                "termType": term_type,
                "initialTerm": initial.get("period"),
                "contractEffectiveDate": start.isoformat(),
                "termStartDate": start.isoformat(),
                "paymentTerm": term,
                "notes": create.get("notes"),
                "autoRenew": bool(terms.get("autoRenew", False)),
                "cancelledDate": None,
                "createdDate": self._created(),
                "ratePlanCharges": charges,
                **custom,
            }
            self._times(self.subscriptions[number], created=True)
            return number

        return apply

    def _plan_cancel(self, entry: Json, action: Json, account: Json) -> Callable[[], str]:
        number = str(_required(entry, "subscriptionNumber", "a CancelSubscription"))
        subscription = self.subscriptions.get(number)
        if subscription is None or subscription["accountId"] != account["id"]:
            raise ZuoraError(NOT_FOUND, f"subscription {number} does not exist", resource="581030")
        if subscription["status"] == "Cancelled":
            raise ZuoraError(RULE, f"subscription {number} is already cancelled", resource="581030")
        cancel = action.get("cancelSubscription") or {}
        policy = cancel.get("cancellationPolicy")
        if policy == "SpecificDate":
            effective = _date(
                _required(cancel, "cancellationEffectiveDate", "cancelSubscription"),
                "cancellationEffectiveDate",
            )
        elif policy == "EndOfCurrentTerm":
            effective = _add_months(
                _date(subscription["termStartDate"], "termStartDate"),
                int(subscription["initialTerm"] or 1),
            )
        else:
            raise ZuoraError(
                INVALID,
                "'cancellationPolicy' value should be one of: EndOfCurrentTerm, "
                "EndOfLastInvoicePeriod, SpecificDate",
                resource="581040",
            )

        def apply() -> str:
            subscription["status"] = "Cancelled"
            subscription["cancelledDate"] = effective.isoformat()
            self._times(subscription)
            return number

        return apply

    # billing

    def _bill(self, subscription: Json, target: date) -> str | None:
        start = _date(subscription["contractEffectiveDate"], "contractEffectiveDate")
        if target < start:
            return None
        currency = subscription["currency"]
        account = self.account(subscription["accountId"])
        items: list[Json] = []
        for charge in subscription["ratePlanCharges"]:
            if charge["type"] == "Recurring":
                months = BILLING_PERIOD_MONTHS[charge["billingPeriod"]]
                end = _add_months(start, months) - timedelta(days=1)
            else:
                end = start
            items.append(
                {
                    "subscriptionId": subscription["id"],
                    "subscriptionNumber": subscription["subscriptionNumber"],
                    "sku": charge["sku"],
                    "chargeName": charge["name"],
                    "chargeDescription": charge["description"],
                    "chargeType": charge["type"],
                    "quantity": charge["quantity"],
                    "unitPrice": charge["listPrice"],
                    "chargeAmount": _money(charge["quantity"] * charge["listPrice"], currency),
                    "taxAmount": Decimal(0),
                    "serviceStartDate": start.isoformat(),
                    "serviceEndDate": end.isoformat(),
                }
            )
        days = PAYMENT_TERMS[subscription["paymentTerm"]]
        invoice = self.add_invoice(account, items, target, target + timedelta(days=days), "Posted")
        return str(invoice["invoiceNumber"])

    def add_invoice(
        self, account: Json, items: list[Json], issued: date, due: date, status: str
    ) -> Json:
        currency = account["currency"]
        invoice_id = self._id()
        subtotal = sum((_money(i["chargeAmount"], currency) for i in items), Decimal(0))
        tax = sum((_money(i["taxAmount"], currency) for i in items), Decimal(0))
        created = self._created()
        invoice = {
            "id": invoice_id,
            "invoiceNumber": self._number("INV"),
            "accountId": account["id"],
            "accountNumber": account["accountNumber"],
            "currency": currency,
            "status": status,
            "invoiceDate": issued.isoformat(),
            "dueDate": due.isoformat(),
            "amountWithoutTax": subtotal,
            "taxAmount": tax,
            "amount": subtotal + tax,
            "balance": subtotal + tax,
            "createdDate": created,
        }
        self._times(invoice, created=True)
        self.invoices[invoice_id] = invoice
        for item in items:
            self.items.append(
                {"id": self._id(), "invoiceId": invoice_id, "createdDate": created, **item}
            )
        if status == "Posted":
            self._callout(
                "invoice.posted",
                {
                    "invoiceId": invoice_id,
                    "accountNumber": account["accountNumber"],
                    "amount": str(invoice["amount"]),
                    "currency": currency,
                },
                invoice,
            )
        return invoice

    # callouts

    def _callout(self, event: str, fields: Json, invoice: Json) -> None:
        """Record the callout revsync's template for ``event`` renders (strings throughout,
        as merge fields inside JSON strings are)."""
        body = {"event": event, "invoiceNumber": invoice["invoiceNumber"], **fields}
        self.callouts.append(
            {"notificationId": secrets.token_hex(16), "event": event, "body": body}
        )

    def callouts_of(self, invoice_number: str | None) -> list[Json]:
        return [
            copy.deepcopy(c)
            for c in self.callouts
            if invoice_number is None or c["body"]["invoiceNumber"] == invoice_number
        ]

    def invoice(self, key: str) -> Json:
        for invoice in self.invoices.values():
            if key in (invoice["id"], invoice["invoiceNumber"]):
                return invoice
        raise ZuoraError(NOT_FOUND, f"Cannot find entity by key: '{key}'.", resource="500000")

    def _invoice_view(self, invoice: Json) -> Json:
        return copy.deepcopy(invoice)

    def invoice_view(self, invoice: Json) -> Json:
        """``GET /v1/invoices/<key>``: the invoice names its account by ``accountId`` only."""
        return {"success": True, **{k: v for k, v in invoice.items() if k != "accountNumber"}}

    def subscription_view(self, subscription: Json) -> Json:
        """``GET /v1/subscriptions/<key>``: custom fields at the top level; a cancelled
        subscription ends (``subscriptionEndDate``) on its cancellation date."""
        hidden = ("cancelledDate", "createdDate", "updatedDate", "ratePlanCharges")
        view = {k: copy.deepcopy(v) for k, v in subscription.items() if k not in hidden}
        if subscription.get("cancelledDate"):
            view["subscriptionEndDate"] = subscription["cancelledDate"]
        return {**view, "success": True}

    @staticmethod
    def item_view(item: Json) -> Json:
        """An item of ``GET /v1/invoices/<key>/items``: its subscription is
        ``subscriptionName`` (the number) and ``subscriptionId``."""
        hidden = ("invoiceId", "createdDate", "subscriptionNumber")
        view = {k: copy.deepcopy(v) for k, v in item.items() if k not in hidden}
        if item.get("subscriptionNumber"):
            view["subscriptionName"] = item["subscriptionNumber"]
        return view

    def invoice_items(self, key: str, page: int, size: int) -> Json:
        invoice = self.invoice(key)
        items = [i for i in self.items if i["invoiceId"] == invoice["id"]]
        chunk = items[(page - 1) * size : page * size]
        answer: Json = {"success": True, "invoiceItems": [self.item_view(i) for i in chunk]}
        if page * size < len(items):
            answer["nextPage"] = (
                f"/v1/invoices/{invoice['invoiceNumber']}/items?page={page + 1}&pageSize={size}"
            )
        return answer

    def unpost(self, key: str) -> Json:
        """``PUT /v1/invoices/<key>/unpost``: a posted invoice with nothing applied back to
        draft (synchronously: the sandbox's invoices are small)."""
        invoice = self.invoice(key)
        if invoice["status"] != "Posted":
            raise ZuoraError(RULE, f"only a posted invoice can be unposted ({invoice['status']})")
        if invoice["balance"] != invoice["amount"]:
            raise ZuoraError(
                RULE,
                "an invoice with payments, adjustments or credit memos applied cannot be unposted",
            )
        invoice["status"] = "Draft"
        self._times(invoice)
        return {"success": True}

    def cancel_invoice(self, key: str) -> Json:
        invoice = self.invoice(key)
        if invoice["status"] != "Draft":
            raise ZuoraError(RULE, f"only a draft invoice can be cancelled ({invoice['status']})")
        invoice["status"] = "Canceled"
        self._times(invoice)
        self._callout(
            "invoice.canceled",
            {"updatedDate": datetime.now(UTC).isoformat(timespec="seconds")},
            invoice,
        )
        return {"success": True, "id": invoice["id"]}

    def pay(self, key: str, amount: Decimal, effective: date | None = None) -> Json:
        """An external payment of ``amount`` applied to the invoice (one payment, one
        application); the invoice is returned."""
        invoice = self.invoice(key)
        if invoice["status"] != "Posted" or not 0 < amount <= invoice["balance"]:
            raise ZuoraError(RULE, "a payment must not exceed the balance of a posted invoice")
        invoice["balance"] -= amount
        self._times(invoice)
        day = effective or datetime.now(UTC).date()
        payment = {
            "id": self._id(),
            "number": self._number("P-"),
            "accountId": invoice["accountId"],
            "type": "External",
            "status": "Processed",
            "amount": amount,
            "appliedAmount": amount,
            "currency": invoice["currency"],
            "effectiveDate": day.isoformat(),
            "paymentApplications": [{"invoiceId": invoice["id"], "appliedAmount": amount}],
        }
        self.payments.append(payment)
        self._callout(
            "payment.applied",
            {
                "paymentNumber": payment["number"],
                "amount": str(amount),
                "currency": invoice["currency"],
                "effectiveDate": payment["effectiveDate"],
            },
            invoice,
        )
        return copy.deepcopy(invoice)

    def credit(self, key: str, items: list[tuple[str, Decimal, Decimal]], reason: str) -> Json:
        """A credit memo from the invoice for ``(invoice item id, amount without tax, tax)``
        items, posted and applied to the invoice (up to its balance)."""
        invoice = self.invoice(key)
        if invoice["status"] != "Posted":
            raise ZuoraError(RULE, "a credit memo is created from a posted invoice")
        currency = invoice["currency"]
        own = {i["id"]: i for i in self.items if i["invoiceId"] == invoice["id"]}
        memo_items: list[Json] = []
        for item_id, amount, tax in items:
            source = own.get(item_id)
            if source is None:
                raise ZuoraError(INVALID, f"invoice item {item_id!r} is not on the invoice")
            if not 0 < amount <= source["chargeAmount"] or tax < 0:
                raise ZuoraError(INVALID, "a credit memo item credits up to its invoice item")
            memo_items.append(
                {
                    "id": self._id(),
                    "sourceItemId": item_id,
                    "sourceItemType": "InvoiceDetail",
                    "sku": source["sku"],
                    "amountWithoutTax": _money(amount, currency),
                    "taxAmount": _money(tax, currency),
                }
            )
        if not memo_items:
            raise ZuoraError(MISSING, "'items' is required")
        total = sum((i["amountWithoutTax"] + i["taxAmount"] for i in memo_items), Decimal(0))
        applied = min(total, invoice["balance"])
        invoice["balance"] -= applied
        memo = {
            "id": self._id(),
            "number": self._number("CM"),
            "accountId": invoice["accountId"],
            "referredInvoiceId": invoice["id"],
            "status": "Posted",
            "reasonCode": reason,
            "currency": currency,
            "totalAmount": total,
            "appliedAmount": applied,
            "items": memo_items,
        }
        self.credit_memos.append(memo)
        rendered: list[Json | None] = [
            {
                "id": i["id"],
                "sourceItemId": i["sourceItemId"],
                "sourceItemType": i["sourceItemType"],
                "amount": str(i["amountWithoutTax"]),
                "tax": str(i["taxAmount"]),
            }
            for i in memo_items
        ]
        self._callout(
            "creditmemo.posted",
            {
                "memoNumber": memo["number"],
                "amount": str(total),
                "currency": currency,
                "items": [*rendered, None],  # the loop's trailing `null`
            },
            invoice,
        )
        return copy.deepcopy(memo)

    # object query

    def query(self, resource: str, params: list[tuple[str, str]]) -> Json:
        source = QUERY_SOURCES.get(resource)
        if source is None:
            raise ZuoraError(NOT_FOUND, f"unknown object {resource!r}", status=404)
        records = [self._flat(resource, r) for r in source(self)]
        # Field names in filter[] and sort[] match case-insensitively.
        fields = {name.lower(): name for name in QUERY_FIELDS[resource]}
        size = MAX_QUERY_PAGE
        offset = 0
        expands: list[str] = []
        for name, value in params:
            if name == "filter[]":
                check = _filter(value, fields)
                records = [r for r in records if check(r)]
            elif name == "sort[]":
                given, _, direction = value.rpartition(".")
                field = fields.get(given.lower(), "")
                if not field or direction.upper() not in ("ASC", "DESC"):
                    raise ZuoraError(INVALID, f"invalid sort {value!r}", status=400)
                records.sort(
                    key=lambda r: str(r.get(field) or ""), reverse=direction.upper() == "DESC"
                )
            elif name == "expand[]":
                if value.lower() not in QUERY_EXPANDS[resource]:
                    raise ZuoraError(INVALID, f"cannot expand {value!r} on {resource}", status=400)
                expands.append(value.lower())
            elif name == "pageSize":
                if not value.isdigit() or not 1 <= int(value) <= MAX_QUERY_PAGE:
                    raise ZuoraError(INVALID, f"pageSize must be 1 to {MAX_QUERY_PAGE}", status=400)
                size = int(value)
            elif name == "cursor":
                offset = _read_cursor(value)
            else:
                raise ZuoraError(UNKNOWN_FIELD, f"unknown parameter {name!r}", status=400)
        page = records[offset : offset + size]
        data = [self._expand(resource, r, expands) for r in page]
        answer: Json = {"data": data}
        if offset + size < len(records):
            answer["nextPage"] = _cursor(offset + size)
        return answer

    def _flat(self, resource: str, record: Json) -> Json:
        """A record as Object Query answers it: its own fields flat, named as Object Query
        names them (the first letter lower case, custom fields too: ``revsyncKey__c``)."""
        renamed = QUERY_RENAMES[resource]
        flat: Json = {}
        for key, value in record.items():
            if key in QUERY_HIDDEN[resource]:
                continue
            name = renamed.get(key, key)
            flat[name[:1].lower() + name[1:]] = copy.deepcopy(value)
        if resource == "accounts":
            flat["billToId"] = record["billTo"]["id"]
            flat["soldToId"] = record["soldTo"]["id"]
            vat = (record.get("taxInfo") or {}).get("VATId")
            if vat:
                flat["vATId"] = vat
        return flat

    def _contact_view(self, account: Json, contact: Json) -> Json:
        """A contact as Object Query expands it (``postalCode``, the account's id)."""
        view = {CONTACT_QUERY_NAMES.get(k, k): copy.deepcopy(v) for k, v in contact.items()}
        return {**view, "accountId": account["id"]}

    def _expand(self, resource: str, record: Json, expands: list[str]) -> Json:
        out = copy.deepcopy(record)
        if resource == "accounts":
            account = self.accounts[record["id"]]
            if "billto" in expands:
                out["billTo"] = self._contact_view(account, account["billTo"])
            if "soldto" in expands:
                out["soldTo"] = self._contact_view(account, account["soldTo"])
        elif "account" in expands:
            out["account"] = self._flat("accounts", self.accounts[record["accountId"]])
        elif "invoice" in expands:
            out["invoice"] = self._flat("invoices", self.invoices[record["invoiceId"]])
        return out


# The contact fields of the v1 account operations (Zuora's ``zipCode``); Object Query's
# expanded contact names the postal code ``postalCode``.
CONTACT_FIELDS = (
    "firstName",
    "lastName",
    "workEmail",
    "address1",
    "address2",
    "city",
    "state",
    "zipCode",
    "country",
)
CONTACT_QUERY_NAMES = {"zipCode": "postalCode"}


def _list_price(charge: Json, currency: str) -> Decimal:
    return next(Decimal(str(p["price"])) for p in charge["pricing"] if p["currency"] == currency)


QUERY_SOURCES: dict[str, Callable[[ZuoraStore], list[Json]]] = {
    "accounts": lambda store: list(store.accounts.values()),
    "subscriptions": lambda store: list(store.subscriptions.values()),
    "invoices": lambda store: list(store.invoices.values()),
    "invoice-items": lambda store: list(store.items),
}
# What Object Query leaves out of a record (kept elsewhere, or a v1-only field) and the
# fields it names otherwise (the subscription number is the subscription's ``name``).
QUERY_HIDDEN: dict[str, frozenset[str]] = {
    "accounts": frozenset({"billTo", "soldTo", "taxInfo"}),
    "subscriptions": frozenset({"accountNumber", "ratePlanCharges"}),
    "invoices": frozenset({"accountNumber"}),
    "invoice-items": frozenset({"chargeType"}),
}
QUERY_RENAMES: dict[str, dict[str, str]] = {
    "accounts": {},
    "subscriptions": {"subscriptionNumber": "name"},
    "invoices": {},
    "invoice-items": {"sku": "sKU", "chargeDescription": "description"},
}


def _query_name(name: str) -> str:
    return name[:1].lower() + name[1:]


QUERY_FIELDS: dict[str, frozenset[str]] = {
    "accounts": frozenset(
        {"id", "accountNumber", "name", "crmId", "currency", "status", "billCycleDay"}
        | {"autoPay", "paymentTerm", "defaultPaymentMethodId", "billToId", "soldToId"}
        | {"createdDate", "updatedDate", "vATId"}
        | {_query_name(f) for f in CUSTOM_FIELDS["account"]}
    ),
    "subscriptions": frozenset(
        {"id", "name", "version", "accountId", "currency"}
        | {"status", "termType", "initialTerm", "contractEffectiveDate", "termStartDate"}
        | {"paymentTerm", "notes", "autoRenew", "cancelledDate", "createdDate"}
        | {"updatedDate"}
        | {_query_name(f) for f in CUSTOM_FIELDS["subscription"]}
    ),
    "invoices": frozenset(
        {"id", "invoiceNumber", "accountId", "currency", "status"}
        | {"invoiceDate", "dueDate", "amountWithoutTax", "taxAmount", "amount", "balance"}
        | {"createdDate", "updatedDate"}
    ),
    "invoice-items": frozenset(
        {"id", "invoiceId", "subscriptionId", "subscriptionNumber", "sKU", "chargeName"}
        | {"description", "quantity", "unitPrice", "chargeAmount"}
        | {"taxAmount", "serviceStartDate", "serviceEndDate", "createdDate"}
    ),
}
QUERY_EXPANDS: dict[str, frozenset[str]] = {
    "accounts": frozenset({"billto", "soldto"}),
    "subscriptions": frozenset({"account"}),
    "invoices": frozenset({"account"}),
    "invoice-items": frozenset({"invoice"}),
}


def _filter(expression: str, fields: dict[str, str]) -> Callable[[Json], bool]:
    """The test of one ``filter[]`` expression ``<field>.<operator>:<value>``; an unknown
    field or operator is an error whether or not any record exists."""
    left, sep, value = expression.partition(":")
    given, _, operator = left.rpartition(".")
    field = fields.get(given.lower(), "")
    if not sep or not field or operator not in ("EQ", "NE", "GT", "LT", "GE", "LE", "IN"):
        raise ZuoraError(INVALID, f"invalid filter {expression!r}", status=400)
    if operator == "IN":
        if not (value.startswith("[") and value.endswith("]")):
            raise ZuoraError(INVALID, f"IN takes [a,b,...]: {expression!r}", status=400)
        wanted = {v.strip() for v in value[1:-1].split(",") if v.strip()}
        return lambda record: str(record.get(field) or "") in wanted

    def check(record: Json) -> bool:
        actual = record.get(field)
        if actual is None:
            text = ""
        elif isinstance(actual, bool):
            text = str(actual).lower()
        else:
            text = str(actual)
        if operator == "EQ":
            return text == value
        if operator == "NE":
            return text != value
        if actual is None:
            return False
        compare: Callable[[Any, Any], bool] = {
            "GT": lambda a, b: a > b,
            "LT": lambda a, b: a < b,
            "GE": lambda a, b: a >= b,
            "LE": lambda a, b: a <= b,
        }[operator]
        try:
            return bool(compare(Decimal(text), Decimal(value)))
        except InvalidOperation:
            pass
        moments = _moment(text), _moment(value)
        if moments[0] is not None and moments[1] is not None:
            return bool(compare(*moments))
        return bool(compare(text, value))

    return check


def _moment(text: str) -> datetime | None:
    """``text`` as a moment if it is an ISO 8601 date-time (UTC when it names no offset)."""
    if "T" not in text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def _read_cursor(value: str) -> int:
    try:
        raw = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        offset = raw["o"]
    except (ValueError, KeyError, TypeError):
        raise ZuoraError(INVALID, "invalid cursor", status=400) from None
    if not isinstance(offset, int) or offset < 0:
        raise ZuoraError(INVALID, "invalid cursor", status=400)
    return offset


# --- OAuth -----------------------------------------------------------------------------------


def oauth_server() -> OAuthServer:
    """Zuora's token server: tokens for an hour; the sandbox client's secret is read from
    ``state.tokens`` at each request (so rotating it there revokes the client)."""
    server = OAuthServer(VENDOR, token_lifetime=TOKEN_LIFETIME)
    server.register(OAuthClient(client_id=SANDBOX_CLIENT_ID))
    return server


def revoke_credentials(state: SandboxState) -> None:
    """What a revoked OAuth client looks like: its secret no longer matches and every token
    issued to it is refused."""
    state.tokens[VENDOR] = "zuora-rotated-elsewhere"
    state.oauth[VENDOR].expire_all()


def build_oauth_router(state: SandboxState) -> APIRouter:
    router = APIRouter()

    @router.post("/oauth/token")
    async def token(request: Request) -> Response:
        server = state.oauth[VENDOR]
        server.token_requests += 1
        faults = VendorFaults(state.faults, VENDOR, fault_response)
        if (injected := await faults.before("oauth_token")) is not None:
            return injected
        try:
            form = await read_form(request)
            if form.get("grant_type") != "client_credentials":
                raise OAuthFailure("unsupported_grant_type", "grant type not supported")
            client = server.clients.get(form.get("client_id", ""))
            expected = (
                state.tokens[VENDOR]
                if client is not None and client.client_id == SANDBOX_CLIENT_ID
                else client.client_secret
                if client is not None
                else None
            )
            given = form.get("client_secret", "")
            if not expected or not secrets.compare_digest(given.encode(), expected.encode()):
                raise OAuthFailure("invalid_client", "Bad client credentials", status=401)
        except OAuthFailure as failure:
            return failure.response()
        return json_response(
            {
                "access_token": server.issue(),
                "token_type": "bearer",
                "expires_in": int(server.token_lifetime),
                "scope": "platform.write service.usage.delete service.usage.update entity.1",
                "jti": secrets.token_hex(16),
            }
        )

    return router


# --- the API ---------------------------------------------------------------------------------

Action = Callable[["ZuoraStore"], Awaitable[Json] | Json]


def build_router(state: SandboxState) -> APIRouter:
    """The Zuora routes over ``state.zuora`` (looked up per request: a reset replaces it)."""
    router = APIRouter()

    def authorized(request: Request) -> bool:
        return state.oauth[VENDOR].accepts(bearer_token(request), "")

    async def serve(
        request: Request,
        operation: str,
        action: Callable[[ZuoraStore, Any], Json],
        *,
        body: Any = None,
    ) -> Response:
        if not authorized(request):
            return error_response(401, "90000011", "Authentication error")
        store = state.zuora
        if (wait := store.throttle()) is not None:
            response = error_response(429, "50000070", "Too many requests")
            response.headers["Retry-After"] = str(wait)
            return response
        faults = VendorFaults(state.faults, VENDOR, fault_response)
        key = request.headers.get("idempotency-key") if request.method == "POST" else None
        fingerprint = ""
        if key is not None:
            if not 0 < len(key) < 255:
                return error_response(
                    400, "90000020", "idempotency-key must be 1 to 254 characters"
                )
            fingerprint = _digest(
                " ".join(
                    (
                        request.method,
                        request.url.path,
                        json.dumps(body, sort_keys=True, default=str),
                    )
                )
            )
            stored = store.keys.get(key)
            if stored is not None:
                first, saved = stored
                if first != fingerprint:
                    return _plain_error(422, "the idempotency-key was used with another request")
                if saved is None:
                    return _plain_error(
                        409, "a request with this idempotency-key is still in progress"
                    )
                return json_response(saved[1], saved[0], {"Idempotent-Replayed": "true"})
            store.keys[key] = (fingerprint, None)
        try:
            if (injected := await faults.before(operation)) is not None:
                if key is not None:
                    store.keys.pop(key, None)
                return injected
            try:
                status, answer = 200, action(store, body)
            except ZuoraError as error:
                status, answer = error.status, error.body()
            if key is not None:
                codes = [str(r.get("code", "")) for r in answer.get("reasons") or []]
                transient = (
                    status >= 500
                    or status == 429
                    or any(c[-2:] in TRANSIENT_CATEGORIES for c in codes)
                )
                if transient:
                    store.keys.pop(key, None)
                else:
                    store.keys[key] = (fingerprint, (status, copy.deepcopy(answer)))
            if (injected := await faults.after(operation)) is not None:
                return injected
            return json_response(answer, status)
        except BaseException:
            if key is not None and store.keys.get(key, ("", None))[1] is None:
                store.keys.pop(key, None)
            raise

    async def json_body(request: Request) -> Any:
        try:
            body = await read_json(request)
        except ValueError:
            return None
        return body

    def malformed() -> Response:
        return error_response(200, "50000090", "the request body is not a JSON object")

    @router.post("/v1/accounts")
    async def create_account(request: Request) -> Response:
        body = await json_body(request)
        if not isinstance(body, dict):
            return malformed()
        return await serve(request, "create_account", lambda s, b: s.create_account(b), body=body)

    @router.get("/v1/accounts/{key}")
    async def get_account(request: Request, key: str) -> Response:
        return await serve(request, "get_account", lambda s, _: s.account_view(s.account(key)))

    @router.put("/v1/accounts/{key}")
    async def update_account(request: Request, key: str) -> Response:
        body = await json_body(request)
        if not isinstance(body, dict):
            return malformed()
        return await serve(
            request, "update_account", lambda s, b: s.update_account(key, b), body=body
        )

    @router.get("/v1/catalog/product/{key}")
    async def get_product(request: Request, key: str) -> Response:
        return await serve(request, "get_product", lambda s, _: s.product(key))

    @router.post("/v1/orders")
    async def create_order(request: Request) -> Response:
        body = await json_body(request)
        if not isinstance(body, dict):
            return malformed()
        kinds = {
            action.get("type")
            for entry in body.get("subscriptions") or []
            if isinstance(entry, dict)
            for action in entry.get("orderActions") or []
            if isinstance(action, dict)
        }
        operation = "cancel_order" if "CancelSubscription" in kinds else "create_order"
        return await serve(request, operation, lambda s, b: s.create_order(b), body=body)

    @router.get("/v1/subscriptions/{key}")
    async def get_subscription(request: Request, key: str) -> Response:
        def read(store: ZuoraStore, _: Any) -> Json:
            for subscription in store.subscriptions.values():
                if key in (subscription["id"], subscription["subscriptionNumber"]):
                    return store.subscription_view(subscription)
            raise ZuoraError(NOT_FOUND, f"Cannot find entity by key: '{key}'.")

        return await serve(request, "get_subscription", read)

    @router.get("/v1/invoices/{key}")
    async def get_invoice(request: Request, key: str) -> Response:
        return await serve(request, "get_invoice", lambda s, _: s.invoice_view(s.invoice(key)))

    @router.get("/v1/invoices/{key}/items")
    async def list_invoice_items(request: Request, key: str) -> Response:
        page_text = request.query_params.get("page", "1")
        size_text = request.query_params.get("pageSize", "20")
        if not page_text.isdigit() or not size_text.isdigit():
            return error_response(200, "50000020", "page and pageSize must be positive integers")
        page, size = int(page_text), int(size_text)
        if page < 1 or not 1 <= size <= MAX_ITEMS_PAGE:
            return error_response(200, "50000020", f"pageSize must be 1 to {MAX_ITEMS_PAGE}")
        return await serve(
            request, "list_invoice_items", lambda s, _: s.invoice_items(key, page, size)
        )

    @router.put("/v1/invoices/{key}/unpost")
    async def unpost_invoice(request: Request, key: str) -> Response:
        return await serve(request, "unpost_invoice", lambda s, _: s.unpost(key))

    @router.put("/v1/invoices/{key}/cancel")
    async def cancel_invoice(request: Request, key: str) -> Response:
        return await serve(request, "cancel_invoice", lambda s, _: s.cancel_invoice(key))

    @router.get("/object-query/{resource}")
    async def object_query(request: Request, resource: str) -> Response:
        operation = "query_" + resource.replace("-", "_")
        params = list(request.query_params.multi_items())
        return await serve(request, operation, lambda s, _: s.query(resource, params))

    return router


# --- sandbox controls ------------------------------------------------------------------------


class SandboxItem(BaseModel):
    sku: str
    amount: Decimal = Field(description="chargeAmount, net of tax")
    tax: Decimal = Decimal(0)
    start: date
    end: date = Field(description="the last day of service (inclusive), as Zuora writes it")
    charge_type: str = "Recurring"
    description: str = ""


class SandboxInvoice(BaseModel):
    account_id: str = Field(description="the CRM account (crmId); its Zuora account is made")
    currency: str = "USD"
    status: str = Field(default="Posted", pattern="^(Posted|Draft)$")
    invoice_date: date = date(2026, 1, 1)
    due_days: int = Field(default=30, ge=0)
    items: list[SandboxItem] = Field(min_length=1)


class SandboxPayment(BaseModel):
    amount: Decimal = Field(gt=0)
    effective_date: date | None = Field(default=None, description="today when absent")


class SandboxCreditItem(BaseModel):
    item_id: str = Field(description="the invoice item credited")
    amount: Decimal = Field(gt=0, description="without tax")
    tax: Decimal = Field(default=Decimal(0), ge=0)


class SandboxCreditMemo(BaseModel):
    items: list[SandboxCreditItem] = Field(min_length=1)
    reason: str = "Correcting invoice error"


def build_control_router(state: SandboxState) -> APIRouter:
    router = APIRouter()

    @router.post("/invoices")
    async def make_invoice(spec: SandboxInvoice) -> Response:
        store = state.zuora
        account = next(
            (a for a in store.accounts.values() if a.get("crmId") == spec.account_id), None
        )
        if account is None:
            seeded = next((a for a in ACCOUNTS if a["Id"] == spec.account_id), None)
            created = store.create_account(
                {
                    "name": seeded["Legal_Entity__c"] if seeded else spec.account_id,
                    "crmId": spec.account_id,
                    "currency": spec.currency,
                    "billToContact": {
                        "firstName": "Accounts",
                        "lastName": "Payable",
                        "country": seeded["BillingCountryCode"] if seeded else "US",
                    },
                }
            )
            account = store.accounts[created["accountId"]]
        items = [
            {
                "sku": item.sku,
                "chargeName": item.description or item.sku,
                "chargeDescription": item.description or item.sku,
                "chargeType": item.charge_type,
                "chargeAmount": item.amount,
                "taxAmount": item.tax,
                "serviceStartDate": item.start.isoformat(),
                "serviceEndDate": item.end.isoformat(),
            }
            for item in spec.items
        ]
        invoice = store.add_invoice(
            account,
            items,
            spec.invoice_date,
            spec.invoice_date + timedelta(days=spec.due_days),
            spec.status,
        )
        return json_response(copy.deepcopy(invoice))

    @router.post("/invoices/{key}/payments")
    async def pay(key: str, payment: SandboxPayment) -> Response:
        try:
            return json_response(state.zuora.pay(key, payment.amount, payment.effective_date))
        except ZuoraError as error:
            return error.response()

    @router.post("/invoices/{key}/credit-memos")
    async def credit(key: str, spec: SandboxCreditMemo) -> Response:
        items = [(i.item_id, i.amount, i.tax) for i in spec.items]
        try:
            return json_response(state.zuora.credit(key, items, spec.reason))
        except ZuoraError as error:
            return error.response()

    @router.get("/callouts")
    async def callouts(invoice: str | None = None) -> Response:
        return json_response({"callouts": state.zuora.callouts_of(invoice)})

    return router
