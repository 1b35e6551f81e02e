"""The Salesforce emulator's Order as the platform and Salesforce CPQ have it (sources in
docs/vendor-fidelity.md): ``TotalAmount`` is a read-only roll-up of the order products, an
order is created Draft and activated, by an update of ``Status`` alone, only once it has
order products (which need the order's price book), its account changes only while Draft,
and checking ``SBQQ__Ordered__c`` on a primary quote makes CPQ generate the Order and its
order products from the quote lines in the same transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from sandbox.app import DEFAULT_TOKENS, SandboxState, create_app
from sandbox.salesforce import CpqLine, seed_cpq_quote

API = "/salesforce/services/data/v61.0"
AUTH = {"Authorization": f"Bearer {DEFAULT_TOKENS['salesforce']}"}
ACCOUNT = "0015e00000NordDE1"  # EUR


@pytest.fixture
def state() -> SandboxState:
    return SandboxState()


@pytest.fixture
async def http(state: SandboxState) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        yield client


async def soql(http: httpx.AsyncClient, query: str) -> list[dict[str, Any]]:
    answer = await http.get(f"{API}/query", params={"q": query}, headers=AUTH)
    assert answer.status_code == 200, answer.text
    return list(answer.json(parse_float=Decimal)["records"])


async def price_book(http: httpx.AsyncClient) -> str:
    (book,) = await soql(http, "SELECT Id FROM Pricebook2 WHERE Name = 'Standard Price Book'")
    return str(book["Id"])


async def entry(http: httpx.AsyncClient, code: str, currency: str = "EUR") -> str:
    (product,) = await soql(http, f"SELECT Id FROM Product2 WHERE ProductCode = '{code}'")
    (found,) = await soql(
        http,
        "SELECT Id FROM PricebookEntry WHERE Product2Id = "
        f"'{product['Id']}' AND CurrencyIsoCode = '{currency}'",
    )
    return str(found["Id"])


async def post(http: httpx.AsyncClient, sobject: str, body: dict[str, Any]) -> httpx.Response:
    return await http.post(f"{API}/sobjects/{sobject}", json=body, headers=AUTH)


async def patch(
    http: httpx.AsyncClient, sobject: str, record_id: str, body: dict[str, Any]
) -> httpx.Response:
    return await http.patch(f"{API}/sobjects/{sobject}/{record_id}", json=body, headers=AUTH)


async def draft_order(http: httpx.AsyncClient, **fields: Any) -> str:
    body = {
        "AccountId": ACCOUNT,
        "EffectiveDate": "2026-12-01",
        "Status": "Draft",
        "CurrencyIsoCode": "EUR",
        "Pricebook2Id": await price_book(http),
        **fields,
    }
    created = await post(http, "Order", body)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def add_product(
    http: httpx.AsyncClient, order_id: str, code: str = "PLAT-CORE", **fields: Any
) -> httpx.Response:
    body = {
        "OrderId": order_id,
        "PricebookEntryId": await entry(http, code),
        "Quantity": 2,
        "UnitPrice": 40.5,
        **fields,
    }
    return await post(http, "OrderItem", body)


def refusal(response: httpx.Response) -> tuple[int, str, list[str]]:
    (error,) = response.json()
    return response.status_code, error["errorCode"], error["fields"]


async def order(http: httpx.AsyncClient, order_id: str) -> dict[str, Any]:
    answer = await http.get(f"{API}/sobjects/Order/{order_id}", headers=AUTH)
    assert answer.status_code == 200, answer.text
    return dict(answer.json(parse_float=Decimal))


# -- TotalAmount ---------------------------------------------------------------------------------


async def test_total_amount_cannot_be_written_on_create_or_update(http: httpx.AsyncClient):
    refused = await post(
        http,
        "Order",
        {
            "AccountId": ACCOUNT,
            "EffectiveDate": "2026-12-01",
            "Status": "Draft",
            "TotalAmount": 100,
        },
    )
    assert refusal(refused) == (400, "INVALID_FIELD_FOR_INSERT_UPDATE", ["TotalAmount"])
    order_id = await draft_order(http)
    again = await patch(http, "Order", order_id, {"TotalAmount": 100})
    assert refusal(again) == (400, "INVALID_FIELD_FOR_INSERT_UPDATE", ["TotalAmount"])


async def test_total_amount_is_the_sum_of_the_order_products(http: httpx.AsyncClient):
    order_id = await draft_order(http)
    assert (await order(http, order_id))["TotalAmount"] == 0
    assert (await add_product(http, order_id)).status_code == 201
    assert (
        await add_product(http, order_id, "ONBOARD-STD", Quantity=1, UnitPrice=2300)
    ).status_code == 201
    assert (await order(http, order_id))["TotalAmount"] == Decimal("2381.0")
    (listed,) = await soql(http, f"SELECT Id, TotalAmount FROM Order WHERE Id = '{order_id}'")
    assert listed["TotalAmount"] == Decimal("2381.0")
    items = await soql(
        http, f"SELECT TotalPrice, ListPrice FROM OrderItem WHERE OrderId = '{order_id}'"
    )
    assert sorted(i["TotalPrice"] for i in items) == [Decimal("81.0"), 2300]
    assert sorted(i["ListPrice"] for i in items) == [42, 2300]  # from the price book entry


# -- Draft, order products, activation ------------------------------------------------------------


async def test_an_order_is_created_draft_never_activated(http: httpx.AsyncClient):
    refused = await post(
        http, "Order", {"AccountId": ACCOUNT, "EffectiveDate": "2026-12-01", "Status": "Activated"}
    )
    assert refusal(refused) == (400, "FIELD_INTEGRITY_EXCEPTION", ["Status"])


async def test_an_order_without_order_products_cannot_be_activated(http: httpx.AsyncClient):
    order_id = await draft_order(http)
    refused = await patch(http, "Order", order_id, {"Status": "Activated"})
    assert refusal(refused) == (400, "FIELD_INTEGRITY_EXCEPTION", ["Status"])
    assert (await order(http, order_id))["Status"] == "Draft"

    assert (await add_product(http, order_id)).status_code == 201
    assert (await patch(http, "Order", order_id, {"Status": "Activated"})).status_code == 204
    assert (await order(http, order_id))["Status"] == "Activated"


async def test_activation_updates_the_status_alone(http: httpx.AsyncClient):
    order_id = await draft_order(http)
    assert (await add_product(http, order_id)).status_code == 201
    refused = await patch(
        http, "Order", order_id, {"Status": "Activated", "ERP_Order_Id__c": "5501"}
    )
    assert refusal(refused) == (400, "FIELD_INTEGRITY_EXCEPTION", ["Status"])
    written = await patch(http, "Order", order_id, {"ERP_Order_Id__c": "5501"})
    assert written.status_code == 204
    assert (await patch(http, "Order", order_id, {"Status": "Activated"})).status_code == 204


async def test_the_account_changes_only_while_the_order_is_draft(http: httpx.AsyncClient):
    order_id = await draft_order(http)
    moved = await patch(http, "Order", order_id, {"AccountId": "0015e00000AcmeUS1"})
    assert moved.status_code == 204
    assert (await patch(http, "Order", order_id, {"AccountId": ACCOUNT})).status_code == 204
    assert (await add_product(http, order_id)).status_code == 201
    assert (await patch(http, "Order", order_id, {"Status": "Activated"})).status_code == 204

    same = await patch(http, "Order", order_id, {"AccountId": ACCOUNT})  # even unchanged
    assert refusal(same) == (400, "FIELD_INTEGRITY_EXCEPTION", ["AccountId"])
    # revsync's own fields can still be written on an activated order.
    stamped = await patch(http, "Order", order_id, {"Billing_Subscription_Id__c": "sub_1"})
    assert stamped.status_code == 204


async def test_order_products_need_the_orders_price_book_and_currency(http: httpx.AsyncClient):
    without_book = await draft_order(http, Pricebook2Id=None)
    refused = await add_product(http, without_book)
    assert refusal(refused) == (400, "FIELD_INTEGRITY_EXCEPTION", ["PricebookEntryId"])

    order_id = await draft_order(http)
    dollars = await add_product(
        http, order_id, PricebookEntryId=await entry(http, "PLAT-CORE", "USD")
    )
    assert refusal(dollars) == (400, "FIELD_INTEGRITY_EXCEPTION", ["PricebookEntryId"])

    missing = await post(http, "OrderItem", {"OrderId": order_id, "Quantity": 1, "UnitPrice": 1})
    assert refusal(missing) == (400, "REQUIRED_FIELD_MISSING", ["PricebookEntryId"])


async def test_an_activated_order_takes_no_more_order_products(http: httpx.AsyncClient):
    order_id = await draft_order(http)
    first = await add_product(http, order_id)
    assert first.status_code == 201
    assert (await patch(http, "Order", order_id, {"Status": "Activated"})).status_code == 204

    locked = await add_product(http, order_id, "ONBOARD-STD")
    assert refusal(locked)[:2] == (400, "ENTITY_IS_LOCKED")
    changed = await patch(http, "OrderItem", first.json()["id"], {"Quantity": 3})
    assert refusal(changed)[:2] == (400, "ENTITY_IS_LOCKED")
    moved = await patch(http, "OrderItem", first.json()["id"], {"OrderId": order_id})
    assert refusal(moved) == (400, "INVALID_FIELD_FOR_INSERT_UPDATE", ["OrderId"])


# -- Salesforce CPQ ordering ----------------------------------------------------------------------


async def test_ordering_a_quote_generates_its_draft_order_with_the_quote_lines(
    http: httpx.AsyncClient, state: SandboxState
):
    seeded = seed_cpq_quote(state.salesforce, account_id=ACCOUNT)
    quote_id = seeded["quote_id"]
    assert await soql(http, f"SELECT Id FROM Order WHERE SBQQ__Quote__c = '{quote_id}'") == []

    ordered = await patch(http, "SBQQ__Quote__c", quote_id, {"SBQQ__Ordered__c": True})
    assert ordered.status_code == 204

    (generated,) = await soql(
        http,
        "SELECT Id, AccountId, Status, Pricebook2Id, CurrencyIsoCode, TotalAmount, "
        f"EffectiveDate FROM Order WHERE SBQQ__Quote__c = '{quote_id}'",
    )
    assert generated["AccountId"] == ACCOUNT
    assert generated["Status"] == "Draft"
    assert generated["Pricebook2Id"] == await price_book(http)
    assert generated["CurrencyIsoCode"] == "EUR"
    items = await soql(
        http,
        "SELECT SBQQ__QuoteLine__c, Quantity, UnitPrice, TotalPrice FROM OrderItem "
        f"WHERE OrderId = '{generated['Id']}'",
    )
    assert sorted(i["SBQQ__QuoteLine__c"] for i in items) == sorted(seeded["line_ids"])
    lines = {
        line["Id"]: line
        for line in state.salesforce.snapshot()["quote_lines"]
        if line["SBQQ__Quote__c"] == quote_id
    }
    for item in items:
        line = lines[item["SBQQ__QuoteLine__c"]]
        assert item["UnitPrice"] == line["SBQQ__NetPrice__c"]
        assert item["Quantity"] == line["SBQQ__Quantity__c"]
    assert generated["TotalAmount"] == sum(i["TotalPrice"] for i in items)

    # Checked again, it generates nothing more.
    assert (
        await patch(http, "SBQQ__Quote__c", quote_id, {"SBQQ__Ordered__c": True})
    ).status_code == 204
    assert len(await soql(http, f"SELECT Id FROM Order WHERE SBQQ__Quote__c = '{quote_id}'")) == 1


async def test_only_a_primary_quote_can_be_ordered(http: httpx.AsyncClient, state: SandboxState):
    quote_id = seed_cpq_quote(state.salesforce, account_id=ACCOUNT, primary=False)["quote_id"]
    refused = await patch(http, "SBQQ__Quote__c", quote_id, {"SBQQ__Ordered__c": True})
    assert refusal(refused) == (400, "FIELD_CUSTOM_VALIDATION_EXCEPTION", ["SBQQ__Ordered__c"])
    assert state.salesforce.get("SBQQ__Quote__c", quote_id)["SBQQ__Ordered__c"] is not True
    assert state.salesforce.snapshot()["orders"] == []


async def test_a_failing_order_generation_refuses_the_quotes_save_whole(
    http: httpx.AsyncClient, state: SandboxState
):
    store = state.salesforce
    quote_id = seed_cpq_quote(
        store, account_id=ACCOUNT, lines=[CpqLine("PLAT-CORE"), CpqLine("ONBOARD-STD")]
    )["quote_id"]
    # The quote moved to a currency the price book has no entries in: CPQ finds no price book
    # entry for its lines, and the order products cannot be saved.
    store.records["SBQQ__Quote__c"][quote_id]["CurrencyIsoCode"] = "CHF"
    for line in store.records["SBQQ__QuoteLine__c"].values():
        if line["SBQQ__Quote__c"] == quote_id:
            line["SBQQ__PricebookEntryId__c"] = None

    refused = await patch(
        http, "SBQQ__Quote__c", quote_id, {"SBQQ__Ordered__c": True, "SBQQ__Status__c": "Ordered"}
    )

    status, code, _ = refusal(refused)
    assert (status, code) == (400, "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY")
    assert "SBQQ" in refused.json()[0]["message"]
    quote = store.get("SBQQ__Quote__c", quote_id)
    assert (quote["SBQQ__Ordered__c"], quote["SBQQ__Status__c"]) == (None, "Accepted")
    assert store.snapshot()["orders"] == [] and store.snapshot()["order_items"] == []


async def test_ordering_inside_an_all_or_none_composite_rolls_back_with_it(
    http: httpx.AsyncClient, state: SandboxState
):
    quote_id = seed_cpq_quote(state.salesforce, account_id=ACCOUNT, lines=[])["quote_id"]
    path = "/services/data/v61.0"
    generated = f"SELECT Id FROM Order WHERE SBQQ__Quote__c = '{quote_id}'"
    body = {
        "allOrNone": True,
        "compositeRequest": [
            {
                "method": "PATCH",
                "url": f"{path}/sobjects/SBQQ__Quote__c/{quote_id}",
                "referenceId": "ordered",
                "body": {"SBQQ__Ordered__c": True},
            },
            {
                "method": "GET",
                "url": f"{path}/query?{urlencode({'q': generated})}",
                "referenceId": "generated",
            },
            {
                "method": "PATCH",
                "url": f"{path}/sobjects/Order/@{{generated.records[0].Id}}",
                "referenceId": "activated",
                "body": {"Status": "Activated"},
            },
        ],
    }
    answer = await http.post(f"{API}/composite", json=body, headers=AUTH)

    codes = [a["httpStatusCode"] for a in answer.json()["compositeResponse"]]
    assert codes == [400, 400, 400]
    (activation,) = answer.json()["compositeResponse"][2]["body"]
    assert activation["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"  # a quote without lines
    assert state.salesforce.snapshot()["orders"] == []
    assert state.salesforce.get("SBQQ__Quote__c", quote_id)["SBQQ__Ordered__c"] is not True
