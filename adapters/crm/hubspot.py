"""HubSpot (CRM v3 objects API) behind :class:`adapters.ports.CrmPort`.

Mapping (every value HubSpot answers is a string; revsync writes strings too, so money goes
as its exact decimal text, never through float):

- **account** = a *company* (numeric id). Golden fields: :mod:`adapters.crm.hubspot_fields`;
  ``get_account`` also reads ``revsync_currency`` (preferred billing currency),
  ``lifecyclestage`` (``customer`` = has bought before) and ``revsync_credit_check_status``.
- **quote** = a *deal* (revsync's ``quote_id`` is the deal id). ``set_quote_status`` writes
  the deal properties ``revsync_status`` and ``revsync_status_reason`` (HubSpot's text limit,
  65,536 characters, is not reached: the reason is cut to 1,000).
- **booked order** = a record of HubSpot's commerce ``orders`` object (or a custom object:
  ``order_object``), upserted by the unique-value property ``revsync_order_key`` through
  ``POST /crm/v3/objects/{type}/batch/upsert`` with ``idProperty``: a retry with the same key
  updates the order the first attempt made. It is then associated (v4 default
  associations, idempotent ``PUT``) to the deal and the company, and the deal is marked
  ``revsync_status=Ordered`` with ``revsync_order_id``.
- **receivable status** = company properties ``revsync_ar_status`` (Current, Overdue, Paid,
  Void), ``revsync_ar_invoice``, ``revsync_ar_amount_due``, ``revsync_ar_currency`` and
  ``revsync_ar_as_of``. HubSpot has no validation rules and no conditional update, so the
  as-of ordering is checked by the adapter: it reads the company's ``revsync_ar_as_of`` and
  writes only if the shown one is not newer. Two writes for one company racing between that
  read and the write can still land out of order (the CRM queue's concurrency makes it rare;
  the next status written corrects it).

Listings page with ``limit`` (HubSpot caps it at 100) and ``after``; the cursor is
``paging.next.after``. Reconciliation's windows and keyed lookups use the CRM search API
(``POST /crm/v3/objects/<type>/search``, "Search the CRM"): a window is two filters on
``hs_lastmodifieddate`` (or ``createdate``), ``GTE`` and ``LT`` in epoch milliseconds;
lookups are ``IN`` filters (100 values). Search answers at most 10,000 results of one query,
so every page sorts by ``hs_object_id`` and asks again past the last id read (a ``GT``
filter) instead of paging with ``after``: a window of any size is read whole. The first
page's ``total`` sizes the window. Accounts are looked up with ``batch/read`` (100 ids).

Errors: ``{"status": "error", "message", "correlationId", "category", "errors": [...]}``.
:func:`classify_hubspot` reads the category: ``VALIDATION_ERROR``, ``CONFLICT`` and other
refusals are rejections with the category as the code; ``OBJECT_NOT_FOUND`` (and 404) is
not found; 401 is a transient auth failure; 5xx, 408, 423 (record locked) are transient;
429 is throttling, and its ``policyName`` decides how long to wait: ``TEN_SECONDLY_ROLLING``
(or any other) takes ``Retry-After`` if sent, while ``DAILY`` means the account's daily
allowance is spent until midnight in the *account's* time zone (HubSpot's reset), which
revsync cannot ask HubSpot without spending a call: it is configured
(``REVSYNC_HUBSPOT_ACCOUNT_TIMEZONE``) and ``retry_after`` is the time until that midnight.
Both are throttling (:class:`~adapters.errors.Throttle`: never a circuit-breaker failure);
``DAILY`` is a quota, backed off for long by :mod:`activities.classify`.
Batch answers can be ``207 Multi-Status`` with ``results`` and ``errors``: an error item
naming revsync's record is classified the same way (its ``category``), never dropped.

Auth: a private app's access token (``static``), or OAuth: ``POST /oauth/v1/token`` with
``grant_type=refresh_token``, ``client_id``, ``client_secret``, ``refresh_token``; the access
token lives ``expires_in`` seconds (30 minutes) and is refreshed a minute early, and once
on a 401 (:mod:`adapters.oauth`).

Besides the port, :meth:`HubSpotCrm.closed_won_quote` reads a deal with its line items and
company for the gateway's closed-won trigger (:mod:`adapters.crm.hubspot_deals`), and
:meth:`HubSpotCrm.company_properties` reads a company's golden-field properties for its
company change events (:mod:`adapters.webhooks.hubspot_companies`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from pydantic import ValidationError

from adapters.crm.hubspot_deals import (
    DEAL_PROPERTIES,
    LINE_ITEM_PROPERTIES,
    line_item_ids,
    quote_from_deal,
)
from adapters.crm.hubspot_fields import GOLDEN_PROPERTIES, changes_from_company, company_update
from adapters.errors import (
    NotFoundError,
    RejectedError,
    Throttle,
    TransientError,
    VendorError,
    enforce,
)
from adapters.http import Classifier, VendorHttp, decode_json, retry_after_seconds, vendor_error
from adapters.oauth import AuthorizedHttp, StaticToken, TokenSource
from domain.customer import Customer
from domain.customer_master import FieldValue, MasterField
from domain.order import SalesOrder, Subscription
from domain.quote import Quote
from domain.receivable import ReceivableStatus
from domain.receivable_rules import unshowable_status
from domain.reconciliation import (
    Basis,
    CustomerRecord,
    OrderRecord,
    Page,
    System,
    Window,
    fingerprints,
)

VENDOR = "hubspot"
DEFAULT_CLOSED_WON_STAGE = "closedwon"
DEFAULT_ORDER_OBJECT = "orders"
ORDER_KEY_PROPERTY = "revsync_order_key"
ORDER_STATUS = "Activated"
QUOTE_ORDERED = "Ordered"
REASON_MAX_LENGTH = 1000
MAX_PAGE_SIZE = 100  # HubSpot's cap on `limit` for object listings
SEARCH_LIMIT = 200  # HubSpot's cap on `limit` for a search page
SEARCH_IN_VALUES = 100  # values of one IN filter


def _window_filters(window: Window) -> list[dict[str, Any]]:
    name = "hs_lastmodifieddate" if window.basis is Basis.CHANGED else "createdate"
    return [
        {
            "propertyName": name,
            "operator": "GTE",
            "value": str(int(window.start.timestamp() * 1000)),
        },
        {"propertyName": name, "operator": "LT", "value": str(int(window.end.timestamp() * 1000))},
    ]


_RECORD_ID = re.compile(r"^[0-9]{1,20}$")
_CURSOR = re.compile(r"^[A-Za-z0-9_=-]{1,200}$")
_OBJECT_TYPE = re.compile(r"^(?:[a-z_]{1,40}|2-[0-9]{1,12})$")
_NOT_FOUND = frozenset({"OBJECT_NOT_FOUND", "NOT_FOUND"})
# Categories of refusals that no retry changes; anything else unknown is retried.
_REJECTED = frozenset(
    {"VALIDATION_ERROR", "CONFLICT", "BAD_REQUEST", "INVALID_PARAMS", "MISSING_SCOPES"}
)
DAILY_POLICY = "DAILY"

AR_STATUS_VALUES: dict[ReceivableStatus, str] = {
    ReceivableStatus.CURRENT: "Current",
    ReceivableStatus.OVERDUE: "Overdue",
    ReceivableStatus.PAID: "Paid",
    ReceivableStatus.VOID: "Void",
}
AR_AS_OF = "revsync_ar_as_of"

COMPANY_PROPERTIES = (
    "name",
    "revsync_legal_entity",
    "revsync_tax_id",
    "revsync_billing_email",
    "address",
    "address2",
    "city",
    "state",
    "zip",
    "country",
    "revsync_currency",
    "lifecyclestage",
    "revsync_credit_check_status",
)
ORDER_PROPERTIES = (
    ORDER_KEY_PROPERTY,
    "revsync_quote_id",
    "revsync_account_id",
    "hs_total_price",
    "hs_currency_code",
    "revsync_status",
)
_SOURCE_FIELDS = {
    ("account_id",): "id",
    ("name",): "name",
    ("legal_entity",): "revsync_legal_entity",
    ("tax_id",): "revsync_tax_id",
    ("email",): "revsync_billing_email",
    ("billing_address", "line1"): "address",
    ("billing_address", "line2"): "address2",
    ("billing_address", "city"): "city",
    ("billing_address", "region"): "state",
    ("billing_address", "postal_code"): "zip",
    ("billing_address", "country"): "country",
    ("currency",): "revsync_currency",
    ("credit_check",): "revsync_credit_check_status",
}


def hubspot_datetime(moment: datetime) -> str:
    """A timezone-aware ``moment`` as HubSpot writes a date-time (UTC, milliseconds, Z)."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_hubspot_datetime(value: str) -> datetime:
    """An ISO 8601 date-time as HubSpot answers it (``Z`` or an offset), or epoch millis."""
    text = value.strip()
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def seconds_until_midnight(zone: ZoneInfo, now: datetime) -> float:
    """Seconds from ``now`` to the next midnight in ``zone`` (when HubSpot's daily limit
    resets for an account in that zone)."""
    local = now.astimezone(zone)
    midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), zone)
    # In UTC: aware datetimes sharing a tzinfo subtract as wall clocks, which is wrong
    # across a DST change.
    return max(0.0, (midnight.astimezone(UTC) - now.astimezone(UTC)).total_seconds())


def _error_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = decode_json(response)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _message(body: Mapping[str, Any], response: httpx.Response | None) -> str:
    message = body.get("message")
    if isinstance(message, str) and message.strip():
        return message.strip()
    if response is None:
        return "error"
    return response.text[:200].strip() or response.reason_phrase or f"HTTP {response.status_code}"


_UTC_ZONE = ZoneInfo("UTC")


def hubspot_classifier(
    zone: ZoneInfo = _UTC_ZONE, now: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> Classifier:
    """The classifier of HubSpot error answers; ``zone`` is the account's time zone (for a
    ``DAILY`` 429, which lasts until midnight there)."""

    def classify(operation: str, response: httpx.Response) -> VendorError:
        status = response.status_code
        body = _error_body(response)
        category = body.get("category") if isinstance(body.get("category"), str) else None
        message = _message(body, response)
        correlation = body.get("correlationId")
        if isinstance(correlation, str):
            message = f"{message} (correlationId {correlation})"
        if status == 429:
            policy = body.get("policyName") if isinstance(body.get("policyName"), str) else None
            retry_after = retry_after_seconds(response)
            throttle = Throttle.rate(f"HubSpot {policy or 'rate'} limit")
            if policy == DAILY_POLICY:
                until_reset = seconds_until_midnight(zone, now())
                retry_after = max(retry_after or 0.0, until_reset)
                message = f"daily API limit spent until midnight {zone.key}: {message}"
                throttle = Throttle.quota("HubSpot daily API request limit")
            return TransientError(
                VENDOR,
                operation,
                message,
                status=status,
                code=policy or category or "RATE_LIMITS",
                retry_after=retry_after,
                throttle=throttle,
            )
        if status == 401:
            # Expired or revoked token: adapters.oauth refreshes it once; a credential that
            # stays refused parks the step, it never rejects the saga.
            return TransientError(
                VENDOR,
                operation,
                f"access token rejected: {message}",
                status=status,
                code=category or "INVALID_AUTHENTICATION",
            )
        if category in _NOT_FOUND or status == 404:
            return NotFoundError(VENDOR, operation, message, status=status, code=category)
        transient = status >= 500 or status in (408, 423)
        return vendor_error(VENDOR, operation, response, message, category, transient=transient)

    return classify


classify_hubspot = hubspot_classifier()


def item_error(operation: str, item: Mapping[str, Any], status: int) -> VendorError:
    """The error one item of a batch answer (``errors[i]`` of a 207) means."""
    category = item.get("category") if isinstance(item.get("category"), str) else None
    message = _message(item, None)
    if category in _NOT_FOUND:
        return NotFoundError(VENDOR, operation, message, status=status, code=category)
    if category in _REJECTED:
        return RejectedError(VENDOR, operation, message, status=status, code=category)
    return TransientError(VENDOR, operation, message, status=status, code=category)


def _unexpected(operation: str, what: str) -> TransientError:
    # A success status with a body HubSpot does not send (a proxy page, a cut answer).
    return TransientError(VENDOR, operation, f"unexpected response: {what}")


def _text(properties: Mapping[str, Any], name: str) -> str | None:
    value = properties.get(name)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _customer(company_id: str, properties: Mapping[str, Any]) -> Customer:
    """The company as a :class:`Customer`. Raises ``ValidationError``."""
    return Customer.model_validate(
        {
            "account_id": company_id,
            "name": _text(properties, "name"),
            "legal_entity": _text(properties, "revsync_legal_entity") or _text(properties, "name"),
            "tax_id": _text(properties, "revsync_tax_id"),
            "email": _text(properties, "revsync_billing_email"),
            "billing_address": {
                "line1": _text(properties, "address"),
                "line2": _text(properties, "address2"),
                "city": _text(properties, "city"),
                "region": _text(properties, "state"),
                "postal_code": _text(properties, "zip"),
                "country": (_text(properties, "country") or "").upper() or None,
            },
            "currency": (_text(properties, "revsync_currency") or "").upper() or None,
            "existing_customer": _text(properties, "lifecyclestage") == "customer",
            "credit_check": (_text(properties, "revsync_credit_check_status") or "").lower()
            or None,
        }
    )


def _bad_fields(error: ValidationError) -> str:
    names = [_SOURCE_FIELDS.get(tuple(map(str, e["loc"])), str(e["loc"])) for e in error.errors()]
    return ", ".join(dict.fromkeys(names))


def _decimal(value: str | None) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(value)
    except InvalidOperation:
        return None


def _stamp(record: Mapping[str, Any], name: str) -> datetime | None:
    text = record.get(name)
    if not isinstance(text, str) or not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def order_record(record: Mapping[str, Any]) -> OrderRecord:
    properties = record.get("properties") or {}
    return OrderRecord(
        system=System.CRM,
        record_id=str(record["id"]),
        key=_text(properties, ORDER_KEY_PROPERTY),
        quote_ref=_text(properties, "revsync_quote_id"),
        account_id=_text(properties, "revsync_account_id"),
        amount=_decimal(_text(properties, "hs_total_price")),
        currency=(_text(properties, "hs_currency_code") or "").upper() or None,
        status=_text(properties, "revsync_status") or "",
        live=not record.get("archived", False),
        created_at=_stamp(record, "createdAt"),
        changed_at=_stamp(record, "updatedAt"),
    )


def account_record(record: Mapping[str, Any]) -> CustomerRecord:
    properties = record.get("properties") or {}
    company_id = str(record["id"])
    present = {name: properties.get(name) for name in GOLDEN_PROPERTIES}
    return CustomerRecord(
        system=System.CRM,
        record_id=company_id,
        account_id=company_id,
        fields=fingerprints(changes_from_company(present)),
        created_at=_stamp(record, "createdAt"),
        changed_at=_stamp(record, "updatedAt"),
    )


def order_properties(
    *, quote_id: str, account_id: str, sales_order: SalesOrder, subscription: Subscription
) -> dict[str, str]:
    """The order record's properties (the key goes as the upsert's ``id``)."""
    return {
        "hs_order_name": f"Deal {quote_id} order {sales_order.order_id}",
        "hs_currency_code": sales_order.currency,
        "hs_total_price": str(sales_order.total),
        "revsync_quote_id": quote_id,
        "revsync_account_id": account_id,
        "revsync_erp_order_id": sales_order.order_id,
        "revsync_erp_customer_id": sales_order.customer_id,
        "revsync_billing_subscription_id": subscription.subscription_id,
        "revsync_billing_customer_id": subscription.customer_id,
        "revsync_status": ORDER_STATUS,
    }


class HubSpotCrm:
    """The CRM port on HubSpot's CRM v3 API."""

    vendor = VENDOR

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        access_token: str | None = None,
        tokens: TokenSource | None = None,
        closed_won_stage: str = DEFAULT_CLOSED_WON_STAGE,
        order_object: str = DEFAULT_ORDER_OBJECT,
        account_timezone: str = "UTC",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if tokens is None:
            if access_token is None:
                raise ValueError("HubSpotCrm needs an access_token or a token source")
            tokens = StaticToken(access_token)
        if not _OBJECT_TYPE.fullmatch(order_object):
            raise ValueError(f"{order_object!r} is not a HubSpot object type")
        classify = hubspot_classifier(ZoneInfo(account_timezone), clock)
        self._http = AuthorizedHttp(
            VendorHttp(VENDOR, http, classify), tokens, classify=classify, base_url=base_url
        )
        self._closed_won_stage = closed_won_stage
        self._orders = order_object
        self._headers = {"Accept": "application/json"}

    def __repr__(self) -> str:
        return f"HubSpotCrm(orders={self._orders!r}, closed_won_stage={self._closed_won_stage!r})"

    # -- reads ------------------------------------------------------------------------------

    async def _get(
        self,
        operation: str,
        object_type: str,
        record_id: str,
        properties: tuple[str, ...],
        **q: str,
    ) -> dict[str, Any]:
        response = await self._http.request(
            operation,
            "GET",
            f"/crm/v3/objects/{object_type}/{record_id}",
            ok=(200,),
            params={"properties": ",".join(properties), **q},
            headers=self._headers,
        )
        body = decode_json(response)
        if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
            raise _unexpected(operation, f"{object_type} record without properties")
        return body

    async def get_account(self, account_id: str) -> Customer:
        operation = "get_account"
        self._check_id(operation, "company", account_id)
        record = await self._get(operation, "companies", account_id, COMPANY_PROPERTIES)
        try:
            return _customer(account_id, record["properties"])
        except ValidationError as error:
            raise RejectedError(
                VENDOR,
                operation,
                f"company {account_id} is missing or has invalid {_bad_fields(error)}",
                code="INVALID_ACCOUNT",
            ) from error

    async def company_properties(self, company_id: str) -> dict[str, Any]:
        """The company's golden-field properties as HubSpot answers them (strings, None for
        an empty one), for the gateway's company change events: an event carries one
        property, an address or a credit limit is several."""
        operation = "company_properties"
        self._check_id(operation, "company", company_id)
        record = await self._get(operation, "companies", company_id, GOLDEN_PROPERTIES)
        properties: dict[str, Any] = record["properties"]
        return {name: properties.get(name) for name in GOLDEN_PROPERTIES}

    async def closed_won_quote(self, deal_id: str) -> Quote:
        """The closed-won deal ``deal_id`` as a canonical quote: the deal with its company and
        line item associations, then its line items in one batch read. Raises
        ``DealMappingError`` (adapters.crm.hubspot_deals) when it does not fit, and the
        vendor errors of the reads (``NotFoundError`` for a deleted deal)."""
        operation = "read_deal"
        self._check_id(operation, "deal", deal_id)
        deal = await self._get(
            operation,
            "deals",
            deal_id,
            DEAL_PROPERTIES,
            associations="companies,line_items",
        )
        items = await self._batch_read(
            "read_line_items", "line_items", line_item_ids(deal), LINE_ITEM_PROPERTIES
        )
        return quote_from_deal(deal, items, closed_won_stage=self._closed_won_stage)

    async def _batch_read(
        self, operation: str, object_type: str, ids: list[str], properties: tuple[str, ...]
    ) -> list[dict[str, Any]]:
        """Records by id, in the order of ``ids`` (HubSpot answers in any order, 100 a call).
        An id HubSpot does not find is a :class:`NotFoundError`."""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), 100):
            chunk = ids[start : start + 100]
            response = await self._http.request(
                operation,
                "POST",
                f"/crm/v3/objects/{object_type}/batch/read",
                ok=(200, 207),
                json_body={
                    "properties": list(properties),
                    "inputs": [{"id": i} for i in chunk],
                },
                headers=self._headers,
            )
            results, errors = self._batch_answer(operation, response)
            if errors:
                raise item_error(operation, errors[0], response.status_code)
            found.update({str(r.get("id")): r for r in results})
        missing = [i for i in ids if i not in found]
        if missing:
            raise NotFoundError(
                VENDOR,
                operation,
                f"{object_type} {', '.join(missing)} not found",
                code="OBJECT_NOT_FOUND",
            )
        return [found[i] for i in ids]

    @staticmethod
    def _batch_answer(
        operation: str, response: httpx.Response
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        body = decode_json(response)
        if not isinstance(body, dict) or not isinstance(body.get("results"), list):
            raise _unexpected(operation, "batch answer without results")
        errors = body.get("errors") or []
        if not isinstance(errors, list):
            raise _unexpected(operation, "batch errors are not a list")
        return (
            [r for r in body["results"] if isinstance(r, dict)],
            [e for e in errors if isinstance(e, dict)],
        )

    # -- writes -----------------------------------------------------------------------------

    async def record_order(
        self,
        *,
        quote_id: str,
        account_id: str,
        order_key: str,
        sales_order: SalesOrder,
        subscription: Subscription,
    ) -> str:
        operation = "record_order"
        self._check_id(operation, "deal", quote_id)
        self._check_id(operation, "company", account_id)
        properties = order_properties(
            quote_id=quote_id,
            account_id=account_id,
            sales_order=sales_order,
            subscription=subscription,
        )
        response = await self._http.request(
            operation,
            "POST",
            f"/crm/v3/objects/{self._orders}/batch/upsert",
            ok=(200, 207),
            json_body={
                "inputs": [
                    {"idProperty": ORDER_KEY_PROPERTY, "id": order_key, "properties": properties}
                ]
            },
            headers=self._headers,
        )
        results, errors = self._batch_answer(operation, response)
        if errors:
            # One input: any error item is about revsync's record.
            raise item_error(operation, errors[0], response.status_code)
        order_id = next(
            (
                str(r["id"])
                for r in results
                if r.get("id") is not None
                and (r.get("properties") or {}).get(ORDER_KEY_PROPERTY) in (None, order_key)
            ),
            None,
        )
        if order_id is None:
            raise _unexpected(operation, "upsert answer without the order")
        for to_type, to_id in (("deals", quote_id), ("companies", account_id)):
            await self._http.request(
                operation,
                "PUT",
                f"/crm/v4/objects/{self._orders}/{order_id}/associations/default/{to_type}/{to_id}",
                ok=(200, 201),
                headers=self._headers,
            )
        await self._patch(
            operation,
            "deals",
            quote_id,
            {"revsync_status": QUOTE_ORDERED, "revsync_order_id": order_id},
        )
        return order_id

    async def set_quote_status(self, quote_id: str, status: str, reason: str | None) -> None:
        operation = "set_quote_status"
        self._check_id(operation, "deal", quote_id)
        await self._patch(
            operation,
            "deals",
            quote_id,
            {
                "revsync_status": status,
                "revsync_status_reason": reason[:REASON_MAX_LENGTH] if reason else "",
            },
        )

    async def set_receivable_status(
        self,
        account_id: str,
        status: ReceivableStatus,
        invoice_id: str,
        amount_due: Decimal,
        currency: str,
        *,
        as_of: datetime,
    ) -> None:
        operation = "set_receivable_status"
        self._check_id(operation, "company", account_id)
        enforce(VENDOR, operation, unshowable_status(as_of, currency))
        company = await self._get(operation, "companies", account_id, (AR_AS_OF,))
        shown = _text(company["properties"], AR_AS_OF)
        if shown is not None:
            try:
                shown_at = parse_hubspot_datetime(shown)
            except ValueError:
                raise _unexpected(operation, f"{AR_AS_OF} is not a date-time") from None
            if shown_at > as_of:
                return  # a newer status is shown: this one arrived late
        await self._patch(
            operation,
            "companies",
            account_id,
            {
                "revsync_ar_status": AR_STATUS_VALUES[status],
                "revsync_ar_invoice": invoice_id,
                "revsync_ar_amount_due": str(amount_due),
                "revsync_ar_currency": currency,
                AR_AS_OF: hubspot_datetime(as_of),
            },
        )

    async def update_account_fields(
        self, account_id: str, changes: Mapping[MasterField, FieldValue], idempotency_key: str
    ) -> None:
        """PATCH the golden fields onto the company. Writing the same values again changes
        nothing, so the key is not sent (HubSpot takes none)."""
        operation = "update_account_fields"
        self._check_id(operation, "company", account_id)
        try:
            properties = company_update(changes)
        except ValueError as error:
            raise RejectedError(VENDOR, operation, str(error), code="NOT_WRITABLE") from None
        await self._patch(operation, "companies", account_id, properties)

    async def _patch(
        self, operation: str, object_type: str, record_id: str, properties: dict[str, str]
    ) -> None:
        await self._http.request(
            operation,
            "PATCH",
            f"/crm/v3/objects/{object_type}/{record_id}",
            ok=(200,),
            json_body={"properties": properties},
            headers=self._headers,
        )

    # -- reconciliation ---------------------------------------------------------------------

    async def list_orders(
        self, cursor: str | None, page_size: int, *, window: Window | None = None
    ) -> Page[OrderRecord]:
        """One page of the order object's records (``limit`` at most 100, ``after``); in a
        window, by search (module docstring)."""
        if window is not None:
            records, after, total = await self._search_page(
                "list_orders",
                self._orders,
                ORDER_PROPERTIES,
                _window_filters(window),
                cursor,
                page_size,
            )
            return Page(items=[order_record(r) for r in records], cursor=after, total=total)
        records, after = await self._list(
            "list_orders", self._orders, ORDER_PROPERTIES, cursor, page_size
        )
        return Page(items=[order_record(r) for r in records], cursor=after)

    async def lookup_orders(self, quote_ids: list[str]) -> list[OrderRecord]:
        """The order records naming these quotes (``revsync_quote_id IN``)."""
        found: list[OrderRecord] = []
        for start in range(0, len(quote_ids), SEARCH_IN_VALUES):
            batch = quote_ids[start : start + SEARCH_IN_VALUES]
            filters = [{"propertyName": "revsync_quote_id", "operator": "IN", "values": batch}]
            cursor: str | None = None
            while True:
                records, cursor, _ = await self._search_page(
                    "lookup_orders", self._orders, ORDER_PROPERTIES, filters, cursor, SEARCH_LIMIT
                )
                found.extend(order_record(r) for r in records)
                if cursor is None:
                    break
        return found

    async def list_accounts(
        self, cursor: str | None, page_size: int, *, window: Window | None = None
    ) -> Page[CustomerRecord]:
        """One page of companies with their golden fields; each company is its own golden id."""
        if window is not None:
            records, after, total = await self._search_page(
                "list_accounts",
                "companies",
                GOLDEN_PROPERTIES,
                _window_filters(window),
                cursor,
                page_size,
            )
            return Page(items=[account_record(r) for r in records], cursor=after, total=total)
        records, after = await self._list(
            "list_accounts", "companies", GOLDEN_PROPERTIES, cursor, page_size
        )
        return Page(items=[account_record(r) for r in records], cursor=after)

    async def lookup_accounts(self, account_ids: list[str]) -> list[CustomerRecord]:
        """These companies (``batch/read``, 100 ids a call); an id HubSpot does not know is
        absent (a 207 answer's errors name them)."""
        operation = "lookup_accounts"
        found: list[CustomerRecord] = []
        ids = [a for a in account_ids if _RECORD_ID.fullmatch(a)]
        for start in range(0, len(ids), 100):
            response = await self._http.request(
                operation,
                "POST",
                "/crm/v3/objects/companies/batch/read",
                ok=(200, 207, 404),
                json_body={
                    "inputs": [{"id": i} for i in ids[start : start + 100]],
                    "properties": list(GOLDEN_PROPERTIES),
                },
                headers=self._headers,
            )
            if response.status_code == 404:
                continue
            body = decode_json(response)
            results = body.get("results") if isinstance(body, dict) else None
            if not isinstance(results, list):
                raise _unexpected(operation, "batch read without results")
            found.extend(account_record(r) for r in results if isinstance(r, dict) and r.get("id"))
        return found

    async def _search_page(
        self,
        operation: str,
        object_type: str,
        properties: tuple[str, ...],
        filters: list[dict[str, Any]],
        cursor: str | None,
        page_size: int,
    ) -> tuple[list[dict[str, Any]], str | None, int | None]:
        """One search page sorted by ``hs_object_id``, past the id ``cursor`` (the last one
        read); the query's ``total`` on the first page."""
        conditions = list(filters)
        if cursor is not None:
            if not _RECORD_ID.fullmatch(cursor):
                raise RejectedError(
                    VENDOR, operation, f"{cursor!r} is not a search cursor", code="INVALID_CURSOR"
                )
            conditions.append({"propertyName": "hs_object_id", "operator": "GT", "value": cursor})
        limit = min(max(page_size, 1), SEARCH_LIMIT)
        response = await self._http.request(
            operation,
            "POST",
            f"/crm/v3/objects/{object_type}/search",
            ok=(200,),
            json_body={
                "filterGroups": [{"filters": conditions}],
                "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
                "properties": list(properties),
                "limit": limit,
            },
            headers=self._headers,
        )
        body = decode_json(response)
        if not isinstance(body, dict) or not isinstance(body.get("results"), list):
            raise _unexpected(operation, "search answer without results")
        records = [r for r in body["results"] if isinstance(r, dict) and r.get("id") is not None]
        more = isinstance(body.get("paging"), dict) and bool(body["paging"].get("next"))
        after = str(records[-1]["id"]) if more and records else None
        total = body.get("total") if cursor is None and isinstance(body.get("total"), int) else None
        return records, after, total

    async def _list(
        self,
        operation: str,
        object_type: str,
        properties: tuple[str, ...],
        cursor: str | None,
        page_size: int,
    ) -> tuple[list[dict[str, Any]], str | None]:
        params = {
            "limit": str(min(max(page_size, 1), MAX_PAGE_SIZE)),
            "properties": ",".join(properties),
            "archived": "false",
        }
        if cursor is not None:
            if not _CURSOR.fullmatch(cursor):
                raise RejectedError(
                    VENDOR, operation, f"{cursor!r} is not a paging cursor", code="INVALID_CURSOR"
                )
            params["after"] = cursor
        response = await self._http.request(
            operation,
            "GET",
            f"/crm/v3/objects/{object_type}",
            ok=(200,),
            params=params,
            headers=self._headers,
        )
        body = decode_json(response)
        if not isinstance(body, dict) or not isinstance(body.get("results"), list):
            raise _unexpected(operation, "listing without results")
        records = [r for r in body["results"] if isinstance(r, dict) and r.get("id") is not None]
        paging = body.get("paging")
        following = paging.get("next") if isinstance(paging, dict) else None
        after = following.get("after") if isinstance(following, dict) else None
        if after is not None and not isinstance(after, str):
            after = str(after)
        return records, after

    @staticmethod
    def _check_id(operation: str, what: str, record_id: str) -> None:
        if not _RECORD_ID.fullmatch(record_id):
            raise NotFoundError(
                VENDOR, operation, f"{record_id!r} is not a HubSpot {what} id", code="MALFORMED_ID"
            )


__all__ = [
    "DEFAULT_CLOSED_WON_STAGE",
    "VENDOR",
    "HubSpotCrm",
    "classify_hubspot",
    "hubspot_classifier",
    "item_error",
    "seconds_until_midnight",
]
