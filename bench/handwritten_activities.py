"""The hand-written baseline's activities and workers (``bench/handwritten.py`` is the
workflow): quote-to-cash's vendor calls written out by hand, as a team without revsync would.

Each activity makes exactly the HTTP requests revsync's adapters make on the happy path for
the default vendors (method, path, query, the headers that matter, the same fields in the
body), in the same order; ``tests/bench/test_handwritten.py`` compares the two request by
request. Ids returned by earlier calls are read from the answers as the adapters read them,
and reference data the adapters cache per worker (NetSuite currencies and payment terms)
is cached per worker here too, so a warm worker makes the same calls as a warm revsync one.

What a hand-written version has, and nothing more: one plain ``httpx.AsyncClient`` per queue
worker, bodies built from the quote dict, ``raise_for_status()``. The statuses the happy path
itself branches on are read (NetSuite's 404 for an order not created yet, Stripe's 404 for a
product it does not have yet), as the adapters do. Money is ``Decimal`` worked out from the
quote's strings and written as JSON numbers or form strings.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import quote as url_quote
from urllib.parse import urlencode

import httpx
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from bench import handwritten as hw
from domain.contracts import TaskQueue
from revsync.settings import Settings

RequestHook = Callable[[httpx.Request], Awaitable[None]]

STRIPE_VERSION = "2024-06-20"
# Decimal places of a currency where it is not 2 (ISO 4217); Stripe counts ISK in hundredths.
_MINOR_UNITS = {"JPY": 0, "KRW": 0, "CLP": 0, "ISK": 0, "KWD": 3, "BHD": 3, "JOD": 3, "OMR": 3}
_STRIPE_MINOR_UNITS = _MINOR_UNITS | {"ISK": 2}
_DAYS_DUE = {"DUE_ON_RECEIPT": "0"}
_EU_VAT = frozenset(
    "AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK".split()  # noqa: SIM905
)
_TERM_NAMES = {
    "DUE_ON_RECEIPT": "Due on receipt",
    "NET15": "Net 15",
    "NET30": "Net 30",
    "NET45": "Net 45",
    "NET60": "Net 60",
    "NET90": "Net 90",
}
ACCOUNT_FIELDS = (
    "Id, Name, Legal_Entity__c, Tax_Id__c, Billing_Email__c, BillingStreet, BillingCity, "
    "BillingState, BillingPostalCode, BillingCountryCode, CurrencyIsoCode, Type, "
    "Credit_Check_Status__c"
)
EVENT_TYPE = "com.revsync.quote.booked.v1"
EVENT_SOURCE = "/revsync/quote-to-cash"
_EVENT_IDS = uuid.UUID("5d0c5b8e-2b4a-4d55-9a39-6f1f3f0b7d21")


@dataclass(frozen=True)
class VendorConfig:
    """Where the vendors are and how to call them (the default vendors' settings)."""

    salesforce_url: str
    salesforce_api_version: str
    salesforce_token: str
    netsuite_url: str
    netsuite_token: str
    stripe_url: str
    stripe_key: str
    subscriber_url: str
    subscriber_secret: str
    public_base_url: str
    http_timeout_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> VendorConfig:
        subscriber = settings.event_subscribers[0]
        return cls(
            salesforce_url=settings.salesforce_base_url.rstrip("/"),
            salesforce_api_version=settings.salesforce_api_version,
            salesforce_token=settings.salesforce_access_token.get_secret_value(),
            netsuite_url=settings.netsuite_base_url.rstrip("/"),
            netsuite_token=settings.netsuite_access_token.get_secret_value(),
            stripe_url=settings.stripe_base_url.rstrip("/"),
            stripe_key=settings.stripe_api_key.get_secret_value(),
            subscriber_url=subscriber.url,
            subscriber_secret=subscriber.secret.get_secret_value(),
            public_base_url=(settings.public_base_url or settings.gateway_url).rstrip("/"),
            http_timeout_seconds=settings.http_timeout_seconds,
        )


# -- money, from the quote's strings ------------------------------------------------------


def _places(currency: str) -> int:
    return _MINOR_UNITS.get(currency, 2)


def _net(line: Mapping[str, Any], currency: str) -> Decimal:
    """The line's amount after discount, rounded half up to the currency's minor unit."""
    gross = Decimal(line["quantity"]) * Decimal(line["unit_price"])
    net = gross * (100 - Decimal(line.get("discount_percent") or 0)) / 100
    return net.quantize(Decimal(1).scaleb(-_places(currency)), rounding=ROUND_HALF_UP)


def _total(quote: Mapping[str, Any]) -> Decimal:
    return sum((_net(line, quote["currency"]) for line in quote["lines"]), Decimal(0))


def _number(value: Decimal) -> int | float:
    """A JSON number for ``value``."""
    return int(value) if value == value.to_integral_value() else float(value)


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


# -- the activities -------------------------------------------------------------------------


class Crm:
    """Salesforce, task queue ``crm``."""

    def __init__(self, http: httpx.AsyncClient, config: VendorConfig) -> None:
        self.http = http
        self.api = f"{config.salesforce_url}/services/data/{config.salesforce_api_version}"
        self.path = f"/services/data/{config.salesforce_api_version}"
        self.headers = {
            "Accept": "application/json",
            "Authorization": f"Bearer {config.salesforce_token}",
        }

    @activity.defn(name=hw.FETCH_ACCOUNT)
    async def fetch_account(self, quote: dict[str, Any]) -> dict[str, Any]:
        account_id = str(quote["account_id"]).replace("\\", "\\\\").replace("'", "\\'")
        soql = f"SELECT {ACCOUNT_FIELDS} FROM Account WHERE Id = '{account_id}'"
        response = await self.http.get(
            f"{self.api}/query", params={"q": soql}, headers=self.headers
        )
        response.raise_for_status()
        records = response.json()["records"]
        if not records:
            raise ApplicationError(f"no CRM account {quote['account_id']}", non_retryable=True)
        account: dict[str, Any] = records[0]
        return account

    async def soql(self, soql: str) -> list[dict[str, Any]]:
        response = await self.http.get(
            f"{self.api}/query", params={"q": soql}, headers=self.headers
        )
        response.raise_for_status()
        records: list[dict[str, Any]] = response.json()["records"]
        return records

    @activity.defn(name=hw.UPDATE_CRM)
    async def update_crm(
        self, quote: dict[str, Any], key: str, erp: dict[str, Any], billing: dict[str, Any]
    ) -> str:
        # Salesforce CPQ generates the Order when the quote is ordered; the ids go onto that
        # Order, then it is activated (Status alone), all or none. Read first: a retry finds
        # the order done.
        quote_id = str(quote["quote_id"])
        literal = "'" + quote_id.replace("\\", "\\\\").replace("'", "\\'") + "'"
        await self.soql(
            "SELECT Id, SBQQ__Account__c, SBQQ__Ordered__c, SBQQ__Status__c FROM SBQQ__Quote__c"
            f" WHERE Id = {literal}"
        )
        stamp = {
            "Revsync_Key__c": f"{key}:crm-order",
            "ERP_Order_Id__c": erp["order_id"],
            "ERP_Customer_Id__c": erp["customer_id"],
            "ERP_Order_Total__c": erp["total"],
            "Billing_Subscription_Id__c": billing["subscription_id"],
            "Billing_Customer_Id__c": billing["customer_id"],
        }
        found = await self.soql(
            f"SELECT Id, Status, AccountId, {', '.join(stamp)} FROM Order"
            f" WHERE SBQQ__Quote__c = {literal}"
        )
        if found and found[0]["Status"] == "Activated":
            return str(found[0]["Id"])
        generated = f"SELECT Id FROM Order WHERE SBQQ__Quote__c = {literal}"
        order_url = f"{self.path}/sobjects/Order/@{{generated.records[0].Id}}"
        body = {
            "allOrNone": True,
            "compositeRequest": [
                {
                    "method": "PATCH",
                    "url": f"{self.path}/sobjects/SBQQ__Quote__c/{quote_id}",
                    "referenceId": "ordered",
                    "body": {"SBQQ__Ordered__c": True, "SBQQ__Status__c": "Ordered"},
                },
                {
                    "method": "GET",
                    "url": f"{self.path}/query?{urlencode({'q': generated})}",
                    "referenceId": "generated",
                },
                {"method": "PATCH", "url": order_url, "referenceId": "stamped", "body": stamp},
                {
                    "method": "PATCH",
                    "url": order_url,
                    "referenceId": "activated",
                    "body": {"Status": "Activated"},
                },
            ],
        }
        response = await self.http.post(f"{self.api}/composite", json=body, headers=self.headers)
        response.raise_for_status()
        answers = response.json()["compositeResponse"]
        failed = [a for a in answers if a["httpStatusCode"] >= 300]
        if failed:
            raise ApplicationError(f"CRM write-back failed: {failed}")
        return str(answers[1]["body"]["records"][0]["Id"])


class Erp:
    """NetSuite, task queue ``erp``. Currency and term ids are cached for the worker's life."""

    def __init__(self, http: httpx.AsyncClient, config: VendorConfig) -> None:
        self.http = http
        self.records = f"{config.netsuite_url}/services/rest/record/v1"
        self.suiteql_url = f"{config.netsuite_url}/services/rest/query/v1/suiteql"
        self.headers = {
            "Accept": "application/json",
            "Authorization": f"Bearer {config.netsuite_token}",
        }
        self.currencies: dict[str, str] = {}
        self.terms: dict[str, str] = {}

    async def suiteql(self, query: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        offset = 0
        while True:
            response = await self.http.post(
                self.suiteql_url,
                params={"limit": "1000", "offset": str(offset)},
                json={"q": query},
                headers={**self.headers, "Prefer": "transient"},
            )
            response.raise_for_status()
            page = response.json()
            rows += page["items"]
            if not page.get("hasMore") or not page["items"]:
                return rows
            offset = int(page["offset"]) + len(page["items"])

    async def items(self, quote: Mapping[str, Any]) -> list[dict[str, Any]]:
        skus = ", ".join(f"'{sku}'" for sku in sorted({line["sku"] for line in quote["lines"]}))
        return await self.suiteql(
            "SELECT id, itemid, displayname, isinactive, custitem_revsync_billing "
            f"FROM item WHERE itemid IN ({skus}) ORDER BY id"
        )

    async def currency_id(self, code: str) -> str:
        if code not in self.currencies:
            rows = await self.suiteql("SELECT id, symbol FROM currency ORDER BY id")
            self.currencies = {str(r["symbol"]).upper(): str(r["id"]) for r in rows}
        return self.currencies[code]

    async def term_id(self, terms: str) -> str:
        name = _TERM_NAMES[terms].lower()
        if name not in self.terms:
            rows = await self.suiteql(
                "SELECT id, name FROM term WHERE isinactive = 'F' ORDER BY id"
            )
            self.terms = {str(r["name"]).lower(): str(r["id"]) for r in reversed(rows)}
        return self.terms[name]

    @activity.defn(name=hw.CHECK_CATALOG)
    async def check_catalog(self, quote: dict[str, Any]) -> None:
        """Every quoted SKU exists, is active, is billed as quoted and costs what the quote
        says in its currency; else the quote is refused."""
        items = {row["itemid"]: row for row in await self.items(quote)}
        ids = ", ".join(str(row["id"]) for row in items.values())
        prices = await self.suiteql(
            "SELECT pricing.item AS item, currency.symbol AS currency, "
            "pricing.unitprice AS unitprice "
            "FROM pricing INNER JOIN currency ON pricing.currency = currency.id "
            f"WHERE pricing.pricelevel = 1 AND pricing.item IN ({ids}) "
            "ORDER BY pricing.item, currency.symbol"
        )
        price = {(str(r["item"]), str(r["currency"])): Decimal(str(r["unitprice"])) for r in prices}
        for line in quote["lines"]:
            item = items.get(line["sku"])
            if (
                item is None
                or item["isinactive"] == "T"
                or item["custitem_revsync_billing"] != line["billing"]
                or price.get((str(item["id"]), quote["currency"])) != Decimal(line["unit_price"])
            ):
                raise ApplicationError(
                    f"line {line['line_id']} ({line['sku']}) does not match the ERP catalog",
                    non_retryable=True,
                )

    @activity.defn(name=hw.BOOK_ERP_ORDER)
    async def book_erp_order(
        self, quote: dict[str, Any], account: dict[str, Any], key: str
    ) -> dict[str, Any]:
        currency = quote["currency"]
        legal_name = account["Legal_Entity__c"] or account["Name"]
        address: dict[str, Any] = {
            "addressee": legal_name,
            "addr1": account["BillingStreet"],
            "city": account["BillingCity"],
            "zip": account["BillingPostalCode"],
            "country": {"id": account["BillingCountryCode"]},
        }
        if account["BillingState"]:
            address["state"] = account["BillingState"]
        customer: dict[str, Any] = {
            "externalId": f"acct-{account['Id']}",
            "companyName": account["Name"],
            "legalName": legal_name,
            "email": account["Billing_Email__c"],
            "addressBook": {
                "items": [
                    {
                        "defaultBilling": True,
                        "defaultShipping": False,
                        "label": "Billing",
                        "addressBookAddress": address,
                    }
                ]
            },
        }
        # SuiteTax: the tax id is a tax registration in the billing country.
        registrations = []
        if account["Tax_Id__c"]:
            registrations.append(
                {
                    "nexusCountry": {"id": account["BillingCountryCode"]},
                    "taxRegistrationNumber": account["Tax_Id__c"],
                }
            )
        customer["taxRegistration"] = {"items": registrations}
        customer["currency"] = {"id": await self.currency_id(account["CurrencyIsoCode"])}
        response = await self.http.put(
            f"{self.records}/customer/eid:" + url_quote(customer["externalId"], safe=""),
            params={"replace": "addressBook,taxRegistration"},
            json=customer,
            headers=self.headers,
        )
        response.raise_for_status()
        customer_id = response.headers["location"].rsplit("/", 1)[-1]

        external_id = f"{key}:erp-order"
        response = await self.http.get(
            f"{self.records}/salesOrder/eid:" + url_quote(external_id, safe=""),
            headers=self.headers,
        )
        if response.status_code == 404:
            item_ids = {row["itemid"]: str(row["id"]) for row in await self.items(quote)}
            lines = []
            for line in quote["lines"]:
                quantity, unit = Decimal(line["quantity"]), Decimal(line["unit_price"])
                discount = Decimal(line.get("discount_percent") or 0)
                amount = _net(line, currency)
                described = line.get("description") or line["sku"]
                if discount:
                    described += f" (list {unit}, {discount.normalize():f}% off)"
                lines.append(
                    {
                        "item": {"id": item_ids[line["sku"]]},
                        "quantity": _number(quantity),
                        "rate": _number(amount / quantity if discount else unit),
                        "amount": _number(amount),
                        "description": described,
                    }
                )
            order = {
                "externalId": external_id,
                "entity": {"id": customer_id},
                "currency": {"id": await self.currency_id(currency)},
                "terms": {"id": await self.term_id(quote["payment_terms"])},
                "tranDate": datetime.fromisoformat(quote["accepted_at"]).date().isoformat(),
                "orderStatus": {"id": "B"},
                "otherRefNum": quote["quote_id"],
                "memo": f"revsync quote {quote['quote_id']}",
                "item": {"items": lines},
            }
            response = await self.http.post(
                f"{self.records}/salesOrder", json=order, headers=self.headers
            )
            response.raise_for_status()
            order_id = response.headers["location"].rsplit("/", 1)[-1]
            response = await self.http.get(
                f"{self.records}/salesOrder/{order_id}", headers=self.headers
            )
        response.raise_for_status()
        record = response.json()
        return {
            "customer_id": str(record["entity"]["id"]),
            "order_id": str(record["id"]),
            "total": record["total"],
        }


class Billing:
    """Stripe, task queue ``billing``."""

    def __init__(self, http: httpx.AsyncClient, config: VendorConfig) -> None:
        self.http = http
        self.api = f"{config.stripe_url}/v1"
        self.headers = {
            "Authorization": f"Bearer {config.stripe_key}",
            "Stripe-Version": STRIPE_VERSION,
        }

    async def search(self, kind: str, field: str, value: str) -> dict[str, Any] | None:
        response = await self.http.get(
            f"{self.api}/{kind}/search",
            params={"query": f"metadata['{field}']:'{value}'", "limit": "10"},
            headers=self.headers,
        )
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()["data"]
        return min(found, key=lambda o: int(o["created"])) if found else None

    async def post(self, kind: str, form: dict[str, str], idempotency_key: str) -> Any:
        response = await self.http.post(
            f"{self.api}/{kind}",
            data=form,
            headers={**self.headers, "Idempotency-Key": idempotency_key},
        )
        response.raise_for_status()
        return response.json()

    @activity.defn(name=hw.PROVISION_BILLING)
    async def provision_billing(
        self, quote: dict[str, Any], account: dict[str, Any], key: str
    ) -> dict[str, Any]:
        account_id = account["Id"]
        customer = await self.search("customers", "revsync_account_id", account_id)
        if customer is None:
            country, tax_id = account["BillingCountryCode"], account["Tax_Id__c"]
            form = {
                "name": account["Legal_Entity__c"] or account["Name"],
                "email": account["Billing_Email__c"],
                "description": f"{account['Name']} (CRM account {account_id})",
                "address[line1]": account["BillingStreet"],
                "address[city]": account["BillingCity"],
                "address[postal_code]": account["BillingPostalCode"],
                "address[country]": country,
                "metadata[revsync_account_id]": account_id,
            }
            if account["BillingState"]:
                form["address[state]"] = account["BillingState"]
            if tax_id:
                form["metadata[tax_id]"] = tax_id
                tax_type = {"US": "us_ein", "GB": "gb_vat", "JP": "jp_trn", "CA": "ca_gst_hst"}.get(
                    country, "eu_vat" if country in _EU_VAT else None
                )
                if tax_type:
                    form["tax_id_data[0][type]"] = tax_type
                    form["tax_id_data[0][value]"] = tax_id
            # One customer per account: the create is keyed by the account, as revsync's.
            customer = await self.post("customers", form, f"revsync:customer:{account_id}")
        customer_id = str(customer["id"])

        sub_key = f"{key}:subscription"
        subscription = await self.search("subscriptions", "revsync_key", sub_key)
        if subscription is None:
            currency, terms = quote["currency"], quote["payment_terms"]
            form = {
                "customer": customer_id,
                "currency": currency.lower(),
                "collection_method": "send_invoice",
                "days_until_due": _DAYS_DUE.get(terms, terms.removeprefix("NET")),
                "description": f"revsync quote {quote['quote_id']}",
                "metadata[revsync_key]": sub_key,
                "metadata[quote_id]": quote["quote_id"],
                "metadata[account_id]": quote["account_id"],
                "metadata[term_months]": str(quote["term_months"]),
                "metadata[start_date]": quote["start_date"],
                "metadata[payment_terms]": terms,
            }
            recurring = [line for line in quote["lines"] if line["billing"] == "recurring"]
            one_time = [line for line in quote["lines"] if line["billing"] == "one_time"]
            for n, line in enumerate(recurring):
                item = f"items[{n}]"
                unit, count = self._price(line, currency)
                form[f"{item}[price_data][currency]"] = currency.lower()
                form[f"{item}[price_data][product]"] = line["sku"]
                form[f"{item}[price_data][unit_amount_decimal]"] = unit
                form[f"{item}[price_data][recurring][interval]"] = line.get("interval") or "month"
                form[f"{item}[quantity]"] = count
                form[f"{item}[metadata][line_id]"] = line["line_id"]
                form[f"{item}[metadata][quantity]"] = line["quantity"]
            for n, line in enumerate(one_time):
                item = f"add_invoice_items[{n}]"
                unit, count = self._price(line, currency)
                form[f"{item}[price_data][currency]"] = currency.lower()
                form[f"{item}[price_data][product]"] = line["sku"]
                form[f"{item}[price_data][unit_amount_decimal]"] = unit
                form[f"{item}[quantity]"] = count
            products: dict[str, str] = {}
            for line in recurring + one_time:
                products.setdefault(line["sku"], line.get("description") or line["sku"])
            for sku, name in products.items():
                response = await self.http.get(f"{self.api}/products/{sku}", headers=self.headers)
                if response.status_code == 404:
                    product = {"id": sku, "name": name, "metadata[sku]": sku}
                    await self.post("products", product, f"{sub_key}:product:{sku}")
                else:
                    response.raise_for_status()
            subscription = await self.post("subscriptions", form, sub_key)
        invoice = subscription.get("latest_invoice")
        return {
            "customer_id": customer_id,
            "subscription_id": str(subscription["id"]),
            "invoice_id": invoice["id"] if isinstance(invoice, dict) else invoice,
        }

    @staticmethod
    def _price(line: Mapping[str, Any], currency: str) -> tuple[str, str]:
        """Stripe's unit amount (in the smallest unit, decimals allowed) and quantity whose
        product is the line's net amount."""
        places = _STRIPE_MINOR_UNITS.get(currency, 2)
        net = int(_net(line, currency).scaleb(places))
        quantity = Decimal(line["quantity"])
        if quantity == quantity.to_integral_value() and (net * 10**12) % int(quantity) == 0:
            return _plain(Decimal(net) / quantity), str(int(quantity))
        return str(net), "1"


class Events:
    """The signed CloudEvent to the subscriber, task queue ``events``."""

    def __init__(self, http: httpx.AsyncClient, config: VendorConfig) -> None:
        self.http = http
        self.config = config

    @activity.defn(name=hw.PUBLISH_EVENT)
    async def publish_event(self, quote: dict[str, Any], key: str, booked: dict[str, Any]) -> None:
        event = {
            "specversion": "1.0",
            "id": str(uuid.uuid5(_EVENT_IDS, f"{key}|quote.booked")),
            "source": EVENT_SOURCE,
            "type": EVENT_TYPE,
            "subject": quote["quote_id"],
            "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "datacontenttype": "application/json",
            "dataschema": f"{self.config.public_base_url}/v1/schemas/events/quote.booked.v1.json",
            "data": {
                "quote_id": quote["quote_id"],
                "account_id": quote["account_id"],
                "amount": str(_total(quote)),
                "currency": quote["currency"],
                **booked,
            },
        }
        body = json.dumps(event, separators=(",", ":")).encode()
        now = int(time.time())
        digest = hmac.new(
            self.config.subscriber_secret.encode(), f"{now}.".encode() + body, hashlib.sha256
        ).hexdigest()
        headers = {
            "content-type": "application/cloudevents+json",
            "X-Revsync-Signature": f"t={now},v1={digest}",
            "ce-id": event["id"],
            "ce-type": EVENT_TYPE,
            "ce-source": EVENT_SOURCE,
            "ce-specversion": "1.0",
        }
        response = await self.http.post(self.config.subscriber_url, content=body, headers=headers)
        response.raise_for_status()


def activities_for(
    queue: str, http: httpx.AsyncClient, config: VendorConfig
) -> list[Callable[..., Any]]:
    """The hand-written activities a worker of ``queue`` registers."""
    if queue == TaskQueue.CRM:
        crm = Crm(http, config)
        return [crm.fetch_account, crm.update_crm]
    if queue == TaskQueue.ERP:
        erp = Erp(http, config)
        return [erp.check_catalog, erp.book_erp_order]
    if queue == TaskQueue.BILLING:
        return [Billing(http, config).provision_billing]
    if queue == TaskQueue.EVENTS:
        return [Events(http, config).publish_event]
    raise ValueError(f"no hand-written activities for queue {queue!r}")


@asynccontextmanager
async def handwritten_workers(
    client: Client,
    config: VendorConfig,
    slots: Mapping[str, int],
    *,
    max_concurrent_workflow_tasks: int,
    graceful_shutdown: timedelta = timedelta(seconds=10),
    request_hooks: Sequence[RequestHook] = (),
) -> AsyncIterator[None]:
    """The workflow worker and one worker per activity queue (``slots[queue]`` activity
    slots each), each activity worker with its own plain ``httpx.AsyncClient``.
    ``request_hooks`` (httpx request event hooks) let a benchmark or a test count or record
    the requests; ``client`` should use the default data converter."""
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(
            Worker(
                client,
                task_queue=TaskQueue.ORCHESTRATION,
                workflows=[hw.HandwrittenQuoteToCashWorkflow],
                max_concurrent_workflow_tasks=max_concurrent_workflow_tasks,
                graceful_shutdown_timeout=graceful_shutdown,
            )
        )
        for queue in dict.fromkeys(q for _, q in hw.STEPS):
            http = await stack.enter_async_context(
                httpx.AsyncClient(
                    timeout=config.http_timeout_seconds,
                    event_hooks={"request": list(request_hooks), "response": []},
                )
            )
            await stack.enter_async_context(
                Worker(
                    client,
                    task_queue=queue,
                    activities=activities_for(queue, http, config),
                    max_concurrent_activities=slots[queue],
                    graceful_shutdown_timeout=graceful_shutdown,
                )
            )
        yield
