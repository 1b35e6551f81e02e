"""The Salesforce CRM adapter against the Salesforce emulator, in process."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from adapters.crm.salesforce import SalesforceCrm, classify_salesforce, soql_literal
from adapters.errors import NotFoundError, RejectedError, TransientError
from adapters.ports import CrmPort
from domain.customer import account_problems
from domain.order import SalesOrder, SalesOrderStatus, Subscription, SubscriptionStatus
from revsync.demo import create_crm_quote
from revsync.settings import Settings
from sandbox.app import DEFAULT_TOKENS, SandboxState
from sandbox.salesforce import case_safe_id, seed_cpq_quote

BASE_URL = "http://sandbox/salesforce"
API = f"{BASE_URL}/services/data/v61.0"
TOKEN = DEFAULT_TOKENS["salesforce"]
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def crm(http: httpx.AsyncClient) -> SalesforceCrm:
    adapter = SalesforceCrm(http, base_url=BASE_URL, api_version="v61.0", access_token=TOKEN)
    port: CrmPort = adapter  # mypy checks the adapter implements the port
    assert port.vendor == "salesforce"
    return adapter


async def new_quote(http: httpx.AsyncClient, account_id: str = "0015e00000NordDE1") -> str:
    settings = Settings(salesforce_base_url=BASE_URL)
    return await create_crm_quote(http, settings, account_id)


async def inject(http: httpx.AsyncClient, **rule: Any) -> None:
    response = await http.post(
        "/_sandbox/faults", json={"faults": [{"vendor": "salesforce", **rule}]}
    )
    assert response.status_code == 200, response.text


async def record(
    crm: SalesforceCrm,
    quote_id: str,
    *,
    account_id: str = "0015e00000NordDE1",
    total: str = "12345.67",
) -> str:
    """Record the booked order of ``quote_id``, keyed as the saga keys it."""
    return await crm.record_order(
        quote_id=quote_id,
        account_id=account_id,
        order_key=f"q2c-{quote_id}:crm-order",
        sales_order=SalesOrder(
            order_id="5501",
            external_id=f"q2c-{quote_id}:erp-order",
            customer_id="301",
            currency="EUR",
            total=Decimal(total),
            status=SalesOrderStatus.PENDING_FULFILLMENT,
        ),
        subscription=Subscription(
            subscription_id="sub_1Q2c",
            customer_id="cus_9Z",
            currency="EUR",
            status=SubscriptionStatus.ACTIVE,
        ),
    )


def orders(state: SandboxState) -> list[dict[str, Any]]:
    return list(state.salesforce.snapshot()["orders"])


def quote_record(state: SandboxState, quote_id: str) -> dict[str, Any]:
    (quote,) = [q for q in state.salesforce.snapshot()["quotes"] if q["Id"] == quote_id]
    return dict(quote)


# -- accounts -------------------------------------------------------------------------------


async def test_us_account_maps_to_customer(crm: SalesforceCrm):
    customer = await crm.get_account("0015e00000AcmeUS1")
    assert customer.account_id == "0015e00000AcmeUS1"
    assert customer.name == "Acme Robotics"
    assert customer.legal_entity == "Acme Robotics, Inc."
    assert customer.tax_id == "94-1234567"
    assert customer.email == "ap@acme-robotics.example"
    assert customer.currency == "USD"
    address = customer.billing_address
    assert (address.line1, address.city, address.region) == ("500 Howard St", "San Francisco", "CA")
    assert (address.postal_code, address.country) == ("94105", "US")


async def test_foreign_account_with_tax_id_is_bookable(crm: SalesforceCrm):
    customer = await crm.get_account("0015e00000NordDE1")
    assert customer.tax_id == "DE811907980"
    assert customer.currency == "EUR"
    assert customer.billing_address.country == "DE"
    assert customer.billing_address.region is None
    assert account_problems(customer) == []


async def test_foreign_account_lacking_tax_id_maps_with_none(crm: SalesforceCrm):
    customer = await crm.get_account("0015e00000NoTaxFR")
    assert customer.tax_id is None
    assert [p.field for p in account_problems(customer)] == ["tax_id"]


async def test_account_missing_billing_details_is_rejected(
    crm: SalesforceCrm, http: httpx.AsyncClient
):
    created = await http.post(f"{API}/sobjects/Account", json={"Name": "Bare"}, headers=AUTH)
    with pytest.raises(RejectedError) as caught:
        await crm.get_account(created.json()["id"])
    assert caught.value.code == "INVALID_ACCOUNT"
    for field in ("Billing_Email__c", "BillingStreet", "BillingCountryCode"):
        assert field in caught.value.message


async def test_unknown_account_is_not_found(crm: SalesforceCrm):
    with pytest.raises(NotFoundError):
        await crm.get_account("001000000000000AAA")


async def test_malformed_account_id_never_reaches_soql(crm: SalesforceCrm, http: httpx.AsyncClient):
    sent: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        sent.append(request)

    http.event_hooks["request"].append(record)
    with pytest.raises(NotFoundError) as caught:
        await crm.get_account("0015e00000AcmeUS1' OR Name != '")
    assert caught.value.code == "MALFORMED_ID"
    assert sent == []


async def test_soql_literals_are_escaped(crm: SalesforceCrm, http: httpx.AsyncClient):
    name = "O'Brien \\ Sons\n"
    created = await http.post(f"{API}/sobjects/Account", json={"Name": name}, headers=AUTH)
    assert created.status_code == 201, created.text
    assert soql_literal("it's") == "'it\\'s'"
    records = await crm._query(
        "test", f"SELECT Id, Name FROM Account WHERE Name = {soql_literal(name)}"
    )
    assert [(r["Id"], r["Name"]) for r in records] == [(created.json()["id"], name)]


async def test_query_follows_next_records_url_over_several_pages(
    crm: SalesforceCrm, http: httpx.AsyncClient, state: SandboxState
):
    state.salesforce.query_batch_size = 2
    for n in range(3):
        response = await http.post(
            f"{API}/sobjects/Account", json={"Name": f"Paged {n}"}, headers=AUTH
        )
        assert response.status_code == 201
    pages: list[str] = []

    async def record(request: httpx.Request) -> None:
        pages.append(request.url.path)

    http.event_hooks["request"].append(record)
    records = await crm._query("test", "SELECT Id, Name FROM Account")

    expected = [a["Id"] for a in state.salesforce.snapshot()["accounts"]]
    assert len(expected) == 9
    assert [r["Id"] for r in records] == expected
    assert all(r["attributes"]["type"] == "Account" for r in records)
    assert len(pages) == 5  # 9 records, 2 a page
    assert all(p.startswith("/salesforce/services/data/v61.0/query/") for p in pages[1:])
    # A single account still reads fine with tiny pages.
    assert (await crm.get_account("0015e00000SakuJP1")).currency == "JPY"


async def test_every_call_names_the_api_version_and_a_path_without_one_is_not_found(
    crm: SalesforceCrm, http: httpx.AsyncClient
):
    paths: list[str] = []

    async def keep(request: httpx.Request) -> None:
        paths.append(request.url.path)

    http.event_hooks["request"].append(keep)
    await crm.get_account("0015e00000AcmeUS1")
    await record(crm, await new_quote(http))
    assert paths and all(p.startswith("/salesforce/services/data/v61.0/") for p in paths)

    for version in ("61.0", "v61", "latest-ish"):
        missing = await http.get(
            f"{BASE_URL}/services/data/{version}/sobjects/Account", headers=AUTH
        )
        assert missing.status_code == 404
        assert missing.json()[0]["errorCode"] == "NOT_FOUND"


async def test_unsupported_soql_is_rejected_as_malformed(crm: SalesforceCrm):
    with pytest.raises(RejectedError) as caught:
        await crm._query("test", "SELECT Id FROM Account WHERE Name LIKE 'Acme%'")
    assert caught.value.code == "MALFORMED_QUERY"
    assert caught.value.status == 400


# -- orders and quotes ----------------------------------------------------------------------


async def test_record_order_orders_the_quote_through_cpq_and_stamps_the_generated_order(
    crm: SalesforceCrm, http: httpx.AsyncClient, state: SandboxState
):
    quote_id = await new_quote(http)
    key = f"q2c-{quote_id}:crm-order"

    first = await record(crm, quote_id)
    again = await record(crm, quote_id)

    assert again == first
    assert first.startswith("801") and len(first) == 18
    (order,) = orders(state)
    assert order["Id"] == first
    assert order["Revsync_Key__c"] == key
    assert order["SBQQ__Quote__c"] == quote_id
    assert order["AccountId"] == "0015e00000NordDE1"  # CPQ took the quote's account
    assert order["ERP_Order_Id__c"] == "5501"
    assert order["ERP_Customer_Id__c"] == "301"
    assert order["ERP_Order_Total__c"] == Decimal("12345.67")
    assert order["Billing_Subscription_Id__c"] == "sub_1Q2c"
    assert order["Billing_Customer_Id__c"] == "cus_9Z"
    assert order["CurrencyIsoCode"] == "EUR"
    assert order["Status"] == "Activated"
    # The order products are CPQ's, one per quote line, and the amount is their roll-up.
    items = [i for i in state.salesforce.snapshot()["order_items"] if i["OrderId"] == first]
    lines = [
        q for q in state.salesforce.snapshot()["quote_lines"] if q["SBQQ__Quote__c"] == quote_id
    ]
    assert sorted(i["SBQQ__QuoteLine__c"] for i in items) == sorted(line["Id"] for line in lines)
    assert order["TotalAmount"] == sum(i["TotalPrice"] for i in items) > 0
    quote = quote_record(state, quote_id)
    assert (quote["SBQQ__Ordered__c"], quote["SBQQ__Status__c"]) == (True, "Ordered")


async def test_record_order_never_writes_total_amount_nor_the_account(
    crm: SalesforceCrm, http: httpx.AsyncClient
):
    quote_id = await new_quote(http)
    bodies: list[bytes] = []

    async def keep(request: httpx.Request) -> None:
        bodies.append(request.content)

    http.event_hooks["request"].append(keep)
    await record(crm, quote_id)
    await record(crm, quote_id)
    sent = b"".join(bodies)
    assert b"TotalAmount" not in sent
    assert b"AccountId" not in sent


async def test_erp_total_stays_exact_on_the_wire(crm: SalesforceCrm, http: httpx.AsyncClient):
    quote_id = await new_quote(http)
    total = "98765432109876.543210987"
    order_id = await record(crm, quote_id, total=total)
    response = await http.get(f"{API}/sobjects/Order/{order_id}", headers=AUTH)
    assert f'"ERP_Order_Total__c":{total}' in response.text


async def test_an_order_a_person_generated_is_stamped_and_activated_not_made_again(
    crm: SalesforceCrm, http: httpx.AsyncClient, state: SandboxState
):
    quote_id = await new_quote(http)
    # A seller checks Ordered in Salesforce before revsync gets there: CPQ makes the order.
    ordered = await http.patch(
        f"{API}/sobjects/SBQQ__Quote__c/{quote_id}", json={"SBQQ__Ordered__c": True}, headers=AUTH
    )
    assert ordered.status_code == 204
    (generated,) = orders(state)
    assert (generated["Status"], generated["Revsync_Key__c"]) == ("Draft", None)

    assert await record(crm, quote_id) == generated["Id"]
    (order,) = orders(state)
    assert (order["Status"], order["Revsync_Key__c"]) == ("Activated", f"q2c-{quote_id}:crm-order")
    assert order["ERP_Order_Id__c"] == "5501"
    assert quote_record(state, quote_id)["SBQQ__Status__c"] == "Ordered"


async def test_an_order_already_activated_in_salesforce_only_gets_revsyncs_ids(
    crm: SalesforceCrm, http: httpx.AsyncClient, state: SandboxState
):
    quote_id = await new_quote(http)
    await http.patch(
        f"{API}/sobjects/SBQQ__Quote__c/{quote_id}", json={"SBQQ__Ordered__c": True}, headers=AUTH
    )
    (generated,) = orders(state)
    activated = await http.patch(
        f"{API}/sobjects/Order/{generated['Id']}", json={"Status": "Activated"}, headers=AUTH
    )
    assert activated.status_code == 204  # an org's flow activates CPQ orders at once

    assert await record(crm, quote_id) == generated["Id"]
    (order,) = orders(state)
    assert order["Revsync_Key__c"] == f"q2c-{quote_id}:crm-order"
    assert order["Billing_Subscription_Id__c"] == "sub_1Q2c"


async def test_an_ordered_quote_whose_order_is_gone_is_rejected_for_a_person(
    crm: SalesforceCrm, http: httpx.AsyncClient, state: SandboxState
):
    quote_id = await new_quote(http)
    order_id = await record(crm, quote_id)
    store = state.salesforce
    del store.records["Order"][order_id]  # deleted in Salesforce
    for item in [i for i in store.records["OrderItem"].values() if i["OrderId"] == order_id]:
        del store.records["OrderItem"][item["Id"]]

    with pytest.raises(RejectedError) as caught:
        await record(crm, quote_id)
    assert caught.value.code == "ORDER_NOT_GENERATED"
    assert "Ordered" in caught.value.message
    assert orders(state) == []


async def test_a_quote_without_lines_is_refused_whole(
    crm: SalesforceCrm, http: httpx.AsyncClient, state: SandboxState
):
    """CPQ generates an order without order products, which cannot be activated: the
    composite is refused whole, nothing is ordered."""
    quote_id = seed_cpq_quote(state.salesforce, account_id="0015e00000NordDE1", lines=[])[
        "quote_id"
    ]
    with pytest.raises(RejectedError) as caught:
        await record(crm, quote_id)
    assert (caught.value.status, caught.value.code) == (400, "FIELD_INTEGRITY_EXCEPTION")
    assert orders(state) == []
    quote = quote_record(state, quote_id)
    assert (quote["SBQQ__Ordered__c"], quote["SBQQ__Status__c"]) == (None, "Accepted")


async def test_set_quote_status_truncates_the_reason_and_clears_it(
    crm: SalesforceCrm, http: httpx.AsyncClient, state: SandboxState
):
    quote_id = await new_quote(http)
    reason = "discount above policy; " * 20
    assert len(reason) > 255

    await crm.set_quote_status(quote_id, "Rejected", reason)
    await crm.set_quote_status(quote_id, "Rejected", reason)
    quote = quote_record(state, quote_id)
    assert quote["SBQQ__Status__c"] == "Rejected"
    assert quote["Revsync_Status_Reason__c"] == reason[:255]

    await crm.set_quote_status(quote_id, "Accepted", None)
    quote = quote_record(state, quote_id)
    assert quote["SBQQ__Status__c"] == "Accepted"
    assert quote["Revsync_Status_Reason__c"] is None


async def test_status_of_an_unknown_quote_is_not_found(crm: SalesforceCrm):
    with pytest.raises(NotFoundError) as caught:
        await crm.set_quote_status("a0x5e0000000000AAA", "Rejected", "no")
    assert caught.value.status == 404


async def test_quote_ids_look_like_salesforce_ids(http: httpx.AsyncClient):
    quote_id = await new_quote(http)
    assert quote_id.startswith("a0x")
    assert len(quote_id) == 18
    assert case_safe_id(quote_id[:15]) == quote_id


async def test_reset_gives_the_router_a_fresh_store(crm: SalesforceCrm, http: httpx.AsyncClient):
    quote_id = await new_quote(http)
    assert (await http.post("/_sandbox/reset")).status_code == 200
    with pytest.raises(NotFoundError):
        await crm.set_quote_status(quote_id, "Rejected", None)


# -- failures -------------------------------------------------------------------------------


async def test_request_limit_exceeded_is_transient(crm: SalesforceCrm, http: httpx.AsyncClient):
    await inject(http, operation="query", status=403, code="REQUEST_LIMIT_EXCEEDED")
    with pytest.raises(TransientError) as caught:
        await crm.get_account("0015e00000AcmeUS1")
    assert (caught.value.status, caught.value.code) == (403, "REQUEST_LIMIT_EXCEEDED")
    # The limit lifted, the same call succeeds.
    assert (await crm.get_account("0015e00000AcmeUS1")).name == "Acme Robotics"


async def test_row_lock_contention_is_transient(
    crm: SalesforceCrm, http: httpx.AsyncClient, state: SandboxState
):
    quote_id = await new_quote(http)
    await inject(http, operation="update", status=400, code="UNABLE_TO_LOCK_ROW")
    with pytest.raises(TransientError) as caught:
        await record(crm, quote_id)
    assert caught.value.code == "UNABLE_TO_LOCK_ROW"
    assert orders(state) == []


async def test_unavailable_with_retry_after_is_transient(
    crm: SalesforceCrm, http: httpx.AsyncClient
):
    quote_id = await new_quote(http)
    await inject(http, operation="update", status=503, retry_after=7)
    with pytest.raises(TransientError) as caught:
        await crm.set_quote_status(quote_id, "Rejected", "no")
    assert caught.value.status == 503
    assert caught.value.code == "SERVER_UNAVAILABLE"
    assert caught.value.retry_after == 7


async def test_an_order_booked_for_another_account_than_the_quotes_is_rejected(
    crm: SalesforceCrm, http: httpx.AsyncClient, state: SandboxState
):
    quote_id = await new_quote(http)
    with pytest.raises(RejectedError) as caught:
        await record(crm, quote_id, account_id="0015e00000AcmeUS1")
    assert not isinstance(caught.value, NotFoundError)
    assert caught.value.code == "ACCOUNT_MISMATCH"
    assert orders(state) == []
    assert quote_record(state, quote_id)["SBQQ__Status__c"] == "Accepted"


async def test_an_order_for_an_unknown_quote_is_not_found(crm: SalesforceCrm):
    with pytest.raises(NotFoundError):
        await record(crm, "a0x5e0000000000AAA")


async def test_fault_after_the_write_back_applies_it_and_the_retry_finds_it(
    crm: SalesforceCrm, http: httpx.AsyncClient, state: SandboxState
):
    quote_id = await new_quote(http)
    # The order is ordered and stamped inside one composite call: its answer gets lost.
    await inject(http, operation="composite", status=500, phase="after")

    with pytest.raises(TransientError):
        await record(crm, quote_id)
    (applied,) = orders(state)  # the change went through; only the answer was lost

    order_id = await record(crm, quote_id)
    assert order_id == applied["Id"]
    assert [o["Id"] for o in orders(state)] == [order_id]
    assert quote_record(state, quote_id)["SBQQ__Status__c"] == "Ordered"


async def test_bad_token_is_classified(http: httpx.AsyncClient):
    crm = SalesforceCrm(http, base_url=BASE_URL, api_version="v61.0", access_token="expired")
    with pytest.raises(TransientError) as caught:
        await crm.get_account("0015e00000AcmeUS1")
    assert (caught.value.status, caught.value.code) == (401, "INVALID_SESSION_ID")
    assert "token" in caught.value.message


def response(status: int, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, content=body, headers=headers)


@pytest.mark.parametrize(
    ("status", "body", "kind", "code"),
    [
        (502, b"<html>Bad gateway</html>", TransientError, None),
        (400, b"<html>nope</html>", RejectedError, None),
        (404, b"", NotFoundError, None),
        (408, b"[]", TransientError, None),
        (429, b"{}", TransientError, None),
        (400, b'[{"errorCode": "NOT_FOUND", "message": "gone"}]', NotFoundError, "NOT_FOUND"),
        (
            400,
            b'[{"errorCode": "REQUIRED_FIELD_MISSING", "message": "x", "fields": ["Status"]},'
            b' {"errorCode": "UNABLE_TO_LOCK_ROW", "message": "y"}]',
            TransientError,
            "UNABLE_TO_LOCK_ROW",
        ),
        (
            403,
            b'[{"errorCode": "INSUFFICIENT_ACCESS", "message": "no"}]',
            RejectedError,
            "INSUFFICIENT_ACCESS",
        ),
        (
            401,
            b'{"error": "invalid_grant", "error_description": "expired"}',
            TransientError,
            "invalid_grant",
        ),
        (
            400,
            b'[{"errorCode": "DUPLICATE_VALUE", "message": "dup"}]',
            RejectedError,
            "DUPLICATE_VALUE",
        ),
    ],
)
def test_classifier_reads_status_and_error_codes(
    status: int, body: bytes, kind: type[Exception], code: str | None
):
    error = classify_salesforce("op", response(status, body))
    assert type(error) is kind
    assert error.code == code
    assert error.status == status


def test_classifier_keeps_every_message_and_the_retry_after_date():
    error = classify_salesforce(
        "op",
        response(
            403,
            b'[{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit"}]',
            {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"},
        ),
    )
    assert isinstance(error, TransientError)
    assert error.retry_after == 0.0
    assert "TotalRequests Limit" in error.message
