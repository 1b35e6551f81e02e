"""The NetSuite ERP adapter against the NetSuite emulator, in process."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from adapters.erp.netsuite import NetSuiteErp, classify_netsuite, sql_string
from adapters.errors import NotFoundError, RejectedError, TransientError
from adapters.http import dumps_json
from adapters.ports import ErpPort
from domain.customer import Address, Customer
from domain.order import SalesOrderDraft, SalesOrderStatus, build_sales_order
from domain.quote import BillingType, Quote, QuoteLine
from sandbox.app import DEFAULT_TOKENS, SandboxState
from sandbox.faults import FaultRule, FaultsRequest, LatencyRule
from sandbox.seed import CATALOG

BASE_URL = "http://sandbox/netsuite"
RECORDS = f"{BASE_URL}/services/rest/record/v1"
TOKEN = DEFAULT_TOKENS["netsuite"]
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def erp(http: httpx.AsyncClient) -> NetSuiteErp:
    adapter = NetSuiteErp(http, base_url=BASE_URL, access_token=TOKEN)
    port: ErpPort = adapter  # mypy checks the adapter implements the port
    assert port.vendor == "netsuite"
    return adapter


def sent_requests(http: httpx.AsyncClient) -> list[httpx.Request]:
    """Every request ``http`` sends from now on."""
    sent: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        sent.append(request)

    http.event_hooks["request"].append(record)
    return sent


def inject(state: SandboxState, **rule: Any) -> None:
    state.faults.configure(FaultsRequest(faults=[FaultRule(vendor="netsuite", **rule)]))


def customer(
    account_id: str = "0015e00000NordDE1", currency: str = "EUR", email: str = "ap@n.example"
) -> Customer:
    return Customer(
        account_id=account_id,
        name="Nordlicht Logistik",
        legal_entity="Nordlicht Logistik GmbH",
        tax_id="DE811907980",
        email=email,
        billing_address=Address(
            line1="Speicherstadt 12", city="Hamburg", postal_code="20457", country="DE"
        ),
        currency=currency,
    )


def list_price(sku: str, currency: str) -> Decimal:
    item = next(i for i in CATALOG if i["itemId"] == sku)
    return Decimal(item["prices"][currency])


def draft(
    quote_id: str = "Q-1001",
    currency: str = "EUR",
    lines: list[tuple[str, str, str]] | None = None,
) -> SalesOrderDraft:
    """A sales order draft built the way the saga builds it: (sku, quantity, discount %)."""
    picks = lines or [("PLAT-CORE", "20", "10"), ("ONBOARD-STD", "1", "0")]
    quote = Quote(
        quote_id=quote_id,
        account_id="0015e00000NordDE1",
        owner="maya.chen@seller.example",
        currency=currency,
        start_date=date(2025, 3, 1),
        accepted_at=datetime(2025, 2, 20, 9, 30, tzinfo=UTC),
        lines=[
            QuoteLine(
                line_id=f"L{n}",
                sku=sku,
                quantity=Decimal(quantity),
                unit_price=list_price(sku, currency),
                discount_percent=Decimal(discount),
                billing=BillingType(next(i["billing"] for i in CATALOG if i["itemId"] == sku)),
            )
            for n, (sku, quantity, discount) in enumerate(picks, start=1)
        ],
    )
    return build_sales_order(quote, f"q2c-{quote_id}:erp-order")


def orders(state: SandboxState) -> list[dict[str, Any]]:
    return list(state.netsuite.snapshot()["salesOrders"])


async def booked(erp: NetSuiteErp, order: SalesOrderDraft | None = None) -> tuple[str, str]:
    """(customer id, order id) of a freshly booked order."""
    customer_id = await erp.upsert_customer(customer(), "acct-0015e00000NordDE1")
    created = await erp.create_sales_order(order or draft(), customer_id)
    return customer_id, created.order_id


# -- catalog --------------------------------------------------------------------------------


async def test_catalog_items_carry_billing_and_exact_list_prices(erp: NetSuiteErp):
    items = await erp.get_catalog_items(["PLAT-CORE", "ONBOARD-STD", "LEGACY-SEAT", "NO-SUCH"])

    assert set(items) == {"PLAT-CORE", "ONBOARD-STD", "LEGACY-SEAT"}  # unknown SKU absent
    core = items["PLAT-CORE"]
    assert core.item_id == "1101"
    assert core.name == "Platform Core (per seat / month)"
    assert core.billing is BillingType.RECURRING
    assert core.active is True
    # Base price level only (the emulator also holds a partner level 20% below list).
    assert core.prices == {
        "USD": Decimal("45.00"),
        "EUR": Decimal("42.00"),
        "GBP": Decimal("36.00"),
        "JPY": Decimal("6500"),
        "CAD": Decimal("61.00"),
    }
    assert all(isinstance(p, Decimal) for p in core.prices.values())
    assert items["ONBOARD-STD"].billing is BillingType.ONE_TIME
    assert items["ONBOARD-STD"].prices["JPY"] == Decimal("360000")
    legacy = items["LEGACY-SEAT"]
    assert legacy.active is False
    assert legacy.prices == {"USD": Decimal("30.00")}


async def test_catalog_follows_suiteql_pages(erp: NetSuiteErp, http: httpx.AsyncClient):
    skus = [item["itemId"] for item in CATALOG]
    everything = await erp.get_catalog_items(skus)
    erp.page_size = 2
    sent = sent_requests(http)

    paged = await erp.get_catalog_items(skus)

    assert paged == everything
    assert len(paged) == len(CATALOG)
    offsets = [int(r.url.params["offset"]) for r in sent]
    assert all(r.url.params["limit"] == "2" for r in sent)
    # 6 items in 3 pages, then 26 base prices (5 items x 5 currencies + 1) in 13 pages.
    assert offsets == [0, 2, 4, *range(0, 26, 2)]
    assert all(r.headers["prefer"] == "transient" for r in sent)


async def test_empty_sku_list_asks_nothing(erp: NetSuiteErp, http: httpx.AsyncClient):
    sent = sent_requests(http)
    assert await erp.get_catalog_items([]) == {}
    assert sent == []


async def test_sku_shape_is_checked_before_any_query(erp: NetSuiteErp, http: httpx.AsyncClient):
    sent = sent_requests(http)
    with pytest.raises(RejectedError) as caught:
        await erp.get_catalog_items(["PLAT-CORE", "X') OR ('1'='1"])
    assert caught.value.code == "INVALID_SKU"
    assert sent == []


async def test_suiteql_string_literals_are_escaped(erp: NetSuiteErp, state: SandboxState):
    sku = "O'BRIEN-KIT"
    state.netsuite.items["3001"] = {
        "id": "3001",
        "itemid": sku,
        "displayname": "O'Brien kit",
        "isinactive": False,
        "itemtype": "Service",
        "custitem_revsync_billing": "one_time",
    }
    assert sql_string(sku) == "'O''BRIEN-KIT'"
    rows = await erp.suiteql(
        "test", f"SELECT id, displayname FROM item WHERE itemid = {sql_string(sku)}"
    )
    assert rows == [{"links": [], "id": "3001", "displayname": "O'Brien kit"}]


async def test_unsupported_suiteql_is_rejected(erp: NetSuiteErp):
    with pytest.raises(RejectedError) as caught:
        await erp.suiteql("test", "SELECT * FROM transaction")
    assert caught.value.status == 400
    assert caught.value.code == "INVALID_PARAMETER"


# -- customers ------------------------------------------------------------------------------


async def test_customer_upsert_twice_keeps_one_customer(erp: NetSuiteErp, state: SandboxState):
    first = await erp.upsert_customer(customer(), "acct-0015e00000NordDE1")
    second = await erp.upsert_customer(
        customer(email="rechnung@nordlicht.example"), "acct-0015e00000NordDE1"
    )

    assert first == second
    (record,) = state.netsuite.snapshot()["customers"]
    assert record["id"] == first
    assert record["externalId"] == "acct-0015e00000NordDE1"
    assert record["companyName"] == "Nordlicht Logistik"
    assert record["legalName"] == "Nordlicht Logistik GmbH"
    # SuiteTax: the tax id is a tax registration in the billing country, replaced on upsert.
    assert record["taxRegistration"] == [
        {"nexusCountry": "DE", "taxRegistrationNumber": "DE811907980"}
    ]
    assert "vatRegNumber" not in record
    assert record["email"] == "rechnung@nordlicht.example"  # the second upsert updated it
    assert record["currency"] == "EUR"
    (address,) = record["addressBook"]  # replaced, not appended
    assert address["defaultBilling"] is True
    assert (address["addr1"], address["city"], address["zip"], address["country"]) == (
        "Speicherstadt 12",
        "Hamburg",
        "20457",
        "DE",
    )


async def test_the_legacy_tax_field_is_refused_as_netsuite_refuses_an_unknown_field(
    http: httpx.AsyncClient, state: SandboxState
):
    """REST web services support no legacy tax: ``vatRegNumber`` does not exist for them."""
    response = await http.put(
        f"{RECORDS}/customer/eid:acct-legacy",
        json={"companyName": "Legacy GmbH", "vatRegNumber": "DE811907980"},
        headers=AUTH,
    )
    assert response.status_code == 400
    body = response.json()
    assert (body["title"], body["status"]) == ("Bad Request", 400)
    (detail,) = body["o:errorDetails"]
    assert (detail["o:errorCode"], detail["o:errorPath"]) == ("NONEXISTENT_FIELD", "vatRegNumber")
    assert "legacy tax" in detail["detail"]
    assert state.netsuite.customers == {}
    # The SuiteTax shape is taken, and checked.
    bad = await http.put(
        f"{RECORDS}/customer/eid:acct-legacy",
        json={
            "companyName": "Legacy GmbH",
            "taxRegistration": {"items": [{"nexusCountry": {"id": "DE"}}]},
        },
        headers=AUTH,
    )
    assert bad.status_code == 400
    assert bad.json()["o:errorDetails"][0]["o:errorPath"] == (
        "taxRegistration.items[0].taxRegistrationNumber"
    )


async def test_distinct_external_ids_make_distinct_customers(erp: NetSuiteErp):
    one = await erp.upsert_customer(customer(), "acct-A")
    two = await erp.upsert_customer(customer(), "acct-B")
    assert one != two


async def test_customer_in_a_currency_the_account_lacks_is_rejected(erp: NetSuiteErp):
    with pytest.raises(RejectedError) as caught:
        await erp.upsert_customer(customer(currency="KWD"), "acct-K")
    assert caught.value.code == "UNKNOWN_CURRENCY"


# -- sales orders ---------------------------------------------------------------------------


async def test_sales_order_is_created_once(erp: NetSuiteErp, state: SandboxState):
    customer_id = await erp.upsert_customer(customer(), "acct-0015e00000NordDE1")
    order = draft()

    first = await erp.create_sales_order(order, customer_id)
    again = await erp.create_sales_order(order, customer_id)

    assert again == first
    assert first.external_id == "q2c-Q-1001:erp-order"
    assert first.customer_id == customer_id
    assert first.currency == "EUR"
    assert first.status is SalesOrderStatus.PENDING_FULFILLMENT
    # 20 x 42.00 at 10% off + 2300.00 onboarding
    assert first.total == Decimal("3056.00") == order.total
    (record,) = orders(state)
    assert record["id"] == first.order_id
    assert record["externalId"] == order.external_id
    assert record["entity"] == customer_id
    assert record["orderStatus"] == "B"
    assert record["terms"] == "Net 30"
    assert record["tranDate"] == "2025-02-20"
    assert record["otherRefNum"] == "Q-1001"
    assert record["total"] == sum(line["amount"] for line in record["item"])
    assert [
        (line["itemId"], line["quantity"], line["rate"], line["amount"]) for line in record["item"]
    ] == [
        ("PLAT-CORE", Decimal(20), Decimal("37.80"), Decimal("756.00")),
        ("ONBOARD-STD", Decimal(1), Decimal("2300.00"), Decimal("2300.00")),
    ]
    assert "10% off" in record["item"][0]["description"]
    assert await erp.find_sales_order(order.external_id) == first


async def test_find_unknown_sales_order_is_none(erp: NetSuiteErp):
    assert await erp.find_sales_order("q2c-nothing:erp-order") is None


async def test_lost_answer_on_create_is_recovered_by_the_retry(
    erp: NetSuiteErp, state: SandboxState
):
    customer_id = await erp.upsert_customer(customer(), "acct-0015e00000NordDE1")
    inject(state, operation="create_sales_order", phase="after", status=503)

    with pytest.raises(TransientError):
        await erp.create_sales_order(draft(), customer_id)
    (made,) = orders(state)  # applied although the caller heard a 503

    retried = await erp.create_sales_order(draft(), customer_id)
    assert retried.order_id == made["id"]
    assert len(orders(state)) == 1


async def test_duplicate_external_id_on_create_returns_the_existing_order(
    erp: NetSuiteErp, state: SandboxState
):
    customer_id, order_id = await booked(erp)
    # The lookup before creating misses (as if the earlier create had not landed yet), so the
    # adapter POSTs and meets NetSuite's duplicate-record error.
    inject(state, operation="get_sales_order", status=404, code="NONEXISTENT_ID")

    again = await erp.create_sales_order(draft(), customer_id)

    assert again.order_id == order_id
    assert len(orders(state)) == 1
    assert state.faults.pending() == []


async def test_duplicate_external_id_is_a_dup_rcrd_error(erp: NetSuiteErp, http: httpx.AsyncClient):
    customer_id, _ = await booked(erp)
    body = {
        "externalId": "q2c-Q-1001:erp-order",
        "entity": {"id": customer_id},
        "item": {"items": [{"item": {"id": "1101"}, "quantity": 1}]},
    }
    response = await http.post(f"{RECORDS}/salesOrder", json=body, headers=AUTH)
    assert response.status_code == 400
    (detail,) = response.json()["o:errorDetails"]
    assert detail["o:errorCode"] == "DUP_RCRD"


@pytest.mark.parametrize(
    ("currency", "lines", "total"),
    [
        # 7 x 6500 at 12.5% off = 39812.5 -> 39813 yen; 3 x 2200 at 15% off = 5610
        ("JPY", [("PLAT-CORE", "7", "12.5"), ("PLAT-ANALYTICS", "3", "15")], Decimal("45423")),
        # 3 x 15.50 at 12.5% off = 40.6875 -> 40.69; 1 x 1200.00
        ("USD", [("PLAT-ANALYTICS", "3", "12.5"), ("TRAINING-DAY", "1", "0")], Decimal("1240.69")),
        # 120 x 36.00 at 5% off = 4104.00; 1 x 399.00 at 0.0001% off = 398.999601 -> 399.00
        (
            "GBP",
            [("PLAT-CORE", "120", "5"), ("SUPPORT-PREMIUM", "1", "0.0001")],
            Decimal("4503.00"),
        ),
    ],
)
async def test_totals_are_exact(
    erp: NetSuiteErp,
    state: SandboxState,
    currency: str,
    lines: list[tuple[str, str, str]],
    total: Decimal,
):
    customer_id = await erp.upsert_customer(customer(currency=currency), f"acct-{currency}")
    order = draft(f"Q-{currency}", currency, lines)
    assert order.total == total

    created = await erp.create_sales_order(order, customer_id)

    assert created.total == total
    assert str(created.total) == str(total)
    assert created.currency == currency
    (record,) = orders(state)
    assert record["total"] == total
    assert record["currency"] == currency
    assert [line["amount"] for line in record["item"]] == [line.amount for line in order.lines]


async def test_order_lines_must_add_up_before_anything_is_sent(
    erp: NetSuiteErp, http: httpx.AsyncClient
):
    customer_id = await erp.upsert_customer(customer(), "acct-0015e00000NordDE1")
    order = draft().model_copy(update={"total": Decimal("1.00")})
    sent = sent_requests(http)
    with pytest.raises(RejectedError) as caught:
        await erp.create_sales_order(order, customer_id)
    assert caught.value.code == "TOTAL_MISMATCH"
    assert all(r.method == "GET" for r in sent)  # only the lookup by external id


async def test_emulator_refuses_inconsistent_lines(
    erp: NetSuiteErp, http: httpx.AsyncClient, state: SandboxState
):
    customer_id = await erp.upsert_customer(customer(currency="JPY"), "acct-J")

    async def post(line: dict[str, Any], currency: str = "5") -> dict[str, Any]:
        body = {
            "entity": {"id": customer_id},
            "currency": {"id": currency},
            "item": {"items": [line]},
        }
        response = await http.post(
            f"{RECORDS}/salesOrder",
            content=dumps_json(body),
            headers={**AUTH, "content-type": "application/json"},
        )
        assert response.status_code == 400, response.text
        detail: dict[str, Any] = response.json()["o:errorDetails"][0]
        return detail

    wrong_amount = await post(
        {"item": {"id": "1101"}, "quantity": 2, "rate": 6500, "amount": 12000}
    )
    assert wrong_amount["o:errorCode"] == "USER_ERROR"
    assert wrong_amount["o:errorPath"] == "item.items[0].amount"
    fractional_yen = await post(
        {
            "item": {"id": "1101"},
            "quantity": 1,
            "rate": Decimal("6500.5"),
            "amount": Decimal("6500.5"),
        }
    )
    assert fractional_yen["o:errorCode"] == "USER_ERROR"
    inactive = await post({"item": {"id": "1999"}, "quantity": 1, "rate": 30, "amount": 30}, "1")
    assert inactive["o:errorCode"] == "INVALID_KEY_OR_REF"
    assert orders(state) == []


async def test_create_answers_204_with_an_absolute_location(
    erp: NetSuiteErp, http: httpx.AsyncClient
):
    customer_id = await erp.upsert_customer(customer(), "acct-0015e00000NordDE1")
    body = {"entity": {"id": customer_id}, "item": {"items": [{"item": {"id": "1101"}}]}}
    response = await http.post(f"{RECORDS}/salesOrder", json=body, headers=AUTH)
    assert response.status_code == 204
    assert response.content == b""
    assert response.headers["location"] == f"{RECORDS}/salesOrder/7001"
    record = (await http.get(f"{RECORDS}/salesOrder/7001", headers=AUTH)).json()
    assert record["total"] == 42  # one seat at the EUR list price, the customer's currency
    assert record["currency"]["id"] == "4"


# -- cancel ---------------------------------------------------------------------------------


async def test_an_approved_order_is_closed_line_by_line_and_again_is_a_no_op(
    erp: NetSuiteErp, http: httpx.AsyncClient, state: SandboxState
):
    """revsync books orders approved (Pending Fulfillment): NetSuite cancels only an order
    Pending Approval, so the compensation closes every line, which makes the order Closed."""
    _, order_id = await booked(erp)
    sent = sent_requests(http)

    cancelled = await erp.cancel_sales_order(order_id, "billing provisioning failed")
    assert cancelled.status is SalesOrderStatus.CANCELLED
    assert cancelled.order_id == order_id
    (record,) = orders(state)
    assert record["orderStatus"] == "H"
    assert [line["isClosed"] for line in record["item"]] == [True, True]
    assert "billing provisioning failed" in record["memo"]
    (patch,) = [r for r in sent if r.method == "PATCH"]
    body = json.loads(patch.content)
    assert "orderStatus" not in body
    assert body["item"] == {"items": [{"line": 1, "isClosed": True}, {"line": 2, "isClosed": True}]}

    sent.clear()
    again = await erp.cancel_sales_order(order_id, "again")
    assert again == cancelled
    assert [r.method for r in sent] == ["GET"]
    assert "again" not in orders(state)[0]["memo"]
    listed = (await erp.list_sales_orders(None, 10)).items
    assert [(o.record_id, o.status, o.live) for o in listed] == [(order_id, "cancelled", False)]


async def test_an_order_pending_approval_is_cancelled(erp: NetSuiteErp, state: SandboxState):
    _, order_id = await booked(erp)
    state.netsuite.set_order_status(order_id, "A")
    cancelled = await erp.cancel_sales_order(order_id, "quote withdrawn")
    assert cancelled.status is SalesOrderStatus.CANCELLED
    (record,) = orders(state)
    assert record["orderStatus"] == "C"
    assert [line["isClosed"] for line in record["item"]] == [False, False]
    assert "quote withdrawn" in record["memo"]


@pytest.mark.parametrize("status", ["C", "H"])
async def test_a_cancelled_or_closed_order_is_returned_as_is(
    erp: NetSuiteErp, http: httpx.AsyncClient, state: SandboxState, status: str
):
    _, order_id = await booked(erp)
    state.netsuite.set_order_status(order_id, status)
    sent = sent_requests(http)
    done = await erp.cancel_sales_order(order_id, "too late")
    assert done.status is SalesOrderStatus.CANCELLED
    assert [r.method for r in sent] == ["GET"]
    assert orders(state)[0]["orderStatus"] == status


@pytest.mark.parametrize("status", ["D", "E", "F", "G"])
async def test_a_fulfilled_or_billed_order_is_refused_before_anything_is_sent(
    erp: NetSuiteErp, http: httpx.AsyncClient, state: SandboxState, status: str
):
    _, order_id = await booked(erp)
    state.netsuite.set_order_status(order_id, status)
    sent = sent_requests(http)
    with pytest.raises(RejectedError) as caught:
        await erp.cancel_sales_order(order_id, "customer changed their mind")
    assert caught.value.code == "ORDER_FULFILLED"
    assert "fulfilled or billed" in caught.value.message
    assert "finance decides" in caught.value.message
    assert [r.method for r in sent] == ["GET"]
    assert orders(state)[0]["orderStatus"] == status


async def test_a_close_that_lost_the_race_to_another_counts_as_done(
    erp: NetSuiteErp, state: SandboxState
):
    _, order_id = await booked(erp)
    # Applied (the other cancel got there first), then the answer is a refusal.
    inject(state, operation="update_sales_order", phase="after", status=400, code="USER_ERROR")
    cancelled = await erp.cancel_sales_order(order_id, "billing refused")
    assert cancelled.status is SalesOrderStatus.CANCELLED
    assert orders(state)[0]["orderStatus"] == "H"


async def test_netsuite_refuses_to_cancel_an_approved_order_by_its_status(
    erp: NetSuiteErp, http: httpx.AsyncClient, state: SandboxState
):
    """What revsync used to send: ``orderStatus`` C on an order Pending Fulfillment."""
    _, order_id = await booked(erp)
    for status in ("C", "H"):
        response = await http.patch(
            f"{RECORDS}/salesOrder/{order_id}",
            json={"orderStatus": {"id": status}},
            headers=AUTH,
        )
        assert response.status_code == 400
        (detail,) = response.json()["o:errorDetails"]
        assert (detail["o:errorCode"], detail["o:errorPath"]) == ("INVALID_CONTENT", "orderStatus")
        assert (
            f"Invalid Field Value {status} for the following field: orderStatus"
            in (detail["detail"])
        )
    state.netsuite.set_order_status(order_id, "G")
    closing = await http.patch(
        f"{RECORDS}/salesOrder/{order_id}",
        json={"item": {"items": [{"line": 1, "isClosed": True}]}},
        headers=AUTH,
    )
    assert closing.status_code == 400
    (detail,) = closing.json()["o:errorDetails"]
    assert (detail["o:errorCode"], detail["o:errorPath"]) == (
        "USER_ERROR",
        "item.items[0].isClosed",
    )
    assert orders(state)[0]["orderStatus"] == "G"


async def test_closing_some_lines_leaves_the_order_open_and_reopening_reopens_it(
    erp: NetSuiteErp, http: httpx.AsyncClient, state: SandboxState
):
    _, order_id = await booked(erp)

    async def close(*lines: tuple[int, bool]) -> None:
        items = [{"line": line, "isClosed": closed} for line, closed in lines]
        response = await http.patch(
            f"{RECORDS}/salesOrder/{order_id}", json={"item": {"items": items}}, headers=AUTH
        )
        assert response.status_code == 204, response.text

    await close((1, True))
    assert orders(state)[0]["orderStatus"] == "B"
    await close((2, True))
    assert orders(state)[0]["orderStatus"] == "H"
    await close((2, False))
    assert orders(state)[0]["orderStatus"] == "B"


async def test_cancel_unknown_order_is_not_found(erp: NetSuiteErp):
    with pytest.raises(NotFoundError):
        await erp.cancel_sales_order("999999", "nothing")


# -- failures -------------------------------------------------------------------------------


async def test_concurrency_limit_429_with_retry_after_is_transient(
    erp: NetSuiteErp, state: SandboxState
):
    inject(
        state,
        operation="get_sales_order",
        status=429,
        code="CONCURRENCY_LIMIT_EXCEEDED",
        retry_after=7,
    )
    with pytest.raises(TransientError) as caught:
        await erp.find_sales_order("q2c-x:erp-order")
    assert caught.value.status == 429
    assert caught.value.code == "CONCURRENCY_LIMIT_EXCEEDED"
    assert caught.value.retry_after == 7


async def test_503_is_transient(erp: NetSuiteErp, state: SandboxState):
    inject(state, operation="suiteql", status=503)
    with pytest.raises(TransientError) as caught:
        await erp.get_catalog_items(["PLAT-CORE"])
    assert caught.value.status == 503
    assert (await erp.get_catalog_items(["PLAT-CORE"]))["PLAT-CORE"].item_id == "1101"


async def test_unknown_customer_reference_is_rejected_with_its_code(erp: NetSuiteErp):
    with pytest.raises(RejectedError) as caught:
        await erp.create_sales_order(draft(), "424242")
    assert not isinstance(caught.value, NotFoundError)
    assert caught.value.status == 400
    assert caught.value.code == "INVALID_KEY_OR_REF"
    assert "424242" in caught.value.message


async def test_wrong_token_is_invalid_login_and_transient(http: httpx.AsyncClient):
    erp = NetSuiteErp(http, base_url=BASE_URL, access_token="expired")
    with pytest.raises(TransientError) as caught:
        await erp.find_sales_order("q2c-x:erp-order")
    assert caught.value.status == 401
    assert caught.value.code == "INVALID_LOGIN"
    assert "token" in caught.value.message


def error(status: int, body: Any = None, text: str = "", **headers: str) -> httpx.Response:
    request = httpx.Request("GET", f"{RECORDS}/salesOrder/1")
    if body is not None:
        return httpx.Response(status, json=body, headers=headers, request=request)
    return httpx.Response(status, text=text, headers=headers, request=request)


def netsuite_body(status: int, code: str, detail: str = "boom") -> dict[str, Any]:
    return {
        "type": "https://www.rfc-editor.org/rfc/rfc9110.html",
        "title": "x",
        "status": status,
        "o:errorDetails": [{"detail": detail, "o:errorCode": code}],
    }


def test_classifier_reads_netsuite_error_codes():
    throttled = classify_netsuite(
        "op", error(400, netsuite_body(400, "SSS_REQUEST_LIMIT_EXCEEDED"))
    )
    assert isinstance(throttled, TransientError)
    by_text = classify_netsuite(
        "op", error(403, netsuite_body(403, "USER_ERROR", "Request limit exceeded."))
    )
    assert isinstance(by_text, TransientError)
    dated = classify_netsuite(
        "op", error(429, netsuite_body(429, "CONCURRENCY_LIMIT_EXCEEDED"), **{"Retry-After": "3"})
    )
    assert isinstance(dated, TransientError)
    assert dated.retry_after == 3
    invalid = classify_netsuite("op", error(400, netsuite_body(400, "INVALID_FLD_VALUE", "bad")))
    assert type(invalid) is RejectedError
    assert (invalid.code, invalid.message) == ("INVALID_FLD_VALUE", "bad")
    missing = classify_netsuite("op", error(404, netsuite_body(404, "NONEXISTENT_ID")))
    assert isinstance(missing, NotFoundError)
    assert isinstance(
        classify_netsuite("op", error(500, netsuite_body(500, "UNEXPECTED_ERROR"))), TransientError
    )
    # Not NetSuite's shape: the status decides.
    assert isinstance(
        classify_netsuite("op", error(502, text="<html>bad gateway</html>")), TransientError
    )
    assert type(classify_netsuite("op", error(409, text="conflict"))) is RejectedError


async def test_concurrency_limit_refuses_requests_over_the_limit(
    erp: NetSuiteErp, state: SandboxState
):
    state.faults.configure(
        FaultsRequest(latency=[LatencyRule(vendor="netsuite", operation="get_sales_order", ms=200)])
    )
    state.netsuite.concurrency_limit = 2

    outcomes = await asyncio.gather(
        *(erp.find_sales_order(f"q2c-{n}:erp-order") for n in range(4)), return_exceptions=True
    )

    refused = [o for o in outcomes if isinstance(o, TransientError)]
    assert [o for o in outcomes if o is None] == [None, None]
    assert len(refused) == 2
    assert all(o.status == 429 and o.code == "CONCURRENCY_LIMIT_EXCEEDED" for o in refused)
    assert state.netsuite.snapshot()["governance"] == {
        "limit": 2,
        "peak_in_flight": 2,
        "rejected": 2,
    }


async def test_without_a_limit_governance_only_counts(erp: NetSuiteErp, state: SandboxState):
    state.faults.configure(
        FaultsRequest(latency=[LatencyRule(vendor="netsuite", operation="get_sales_order", ms=100)])
    )
    outcomes = await asyncio.gather(*(erp.find_sales_order(f"q2c-{n}:o") for n in range(4)))
    assert outcomes == [None] * 4
    assert state.netsuite.snapshot()["governance"] == {
        "limit": None,
        "peak_in_flight": 4,
        "rejected": 0,
    }


async def test_a_reset_store_is_picked_up_by_the_router(
    erp: NetSuiteErp, http: httpx.AsyncClient, state: SandboxState
):
    await booked(erp)
    before = state.netsuite
    assert (await http.post("/_sandbox/reset")).status_code == 200
    assert state.netsuite is not before
    assert await erp.find_sales_order("q2c-Q-1001:erp-order") is None
    assert orders(state) == []
