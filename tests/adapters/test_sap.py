"""The SAP S/4HANA Cloud adapter against the SAP emulator, in process: keys and their
length limits, catalog, customers, sales orders, CSRF, auth, locking, errors, paging."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest

from adapters.erp.sap import (
    SapErp,
    classify_sap,
    customer_key,
    customer_reference,
    order_reference,
)
from adapters.errors import (
    NotFoundError,
    RejectedError,
    TransientError,
    UnknownOutcomeError,
    VendorError,
)
from adapters.oauth import ClientSecretGrant, OAuthTokens
from adapters.ports import ErpPort
from domain.customer import Address
from domain.customer_master import MasterField
from domain.order import SalesOrderDraft, SalesOrderStatus, build_sales_order
from sandbox.app import DEFAULT_TOKENS, SandboxState, create_app
from sandbox.faults import FaultRule, FaultsRequest
from tests.adapters.lossy import LossyTransport
from tests.ports.contract import accepted_quote, seeded_customer

BASE_URL = "http://sandbox/sap"
PASSWORD = DEFAULT_TOKENS["sap"]
CUSTOMER_KEY = "acct-0015e00000NordDE1"
# A quote id long enough that its key does not fit PurchaseOrderByCustomer (35).
LONG_QUOTE = "a0B7Q00000LongQuoteIdentifier42"


@dataclass
class Rig:
    erp: SapErp
    http: httpx.AsyncClient
    lossy: LossyTransport
    state: SandboxState
    customer_id: str

    def inject(self, **rule: Any) -> None:
        self.state.faults.configure(FaultsRequest(faults=[FaultRule(vendor="sap", **rule)]))

    def orders(self) -> list[dict[str, Any]]:
        return list(self.state.sap.snapshot()["salesOrders"])


def sap(http: httpx.AsyncClient, password: str = PASSWORD) -> SapErp:
    return SapErp(http, base_url=BASE_URL, username="COMM_REVSYNC", password=password)


@pytest.fixture
async def rig(state: SandboxState) -> AsyncIterator[Rig]:
    lossy = LossyTransport(httpx.ASGITransport(app=create_app(state)))
    async with httpx.AsyncClient(transport=lossy, base_url="http://sandbox") as http:
        erp = sap(http)
        port: ErpPort = erp  # mypy checks the adapter implements the port
        assert port.vendor == "sap"
        customer_id = await erp.upsert_customer(seeded_customer(), CUSTOMER_KEY)
        yield Rig(erp, http, lossy, state, customer_id)


def draft(quote_id: str = LONG_QUOTE) -> SalesOrderDraft:
    return build_sales_order(accepted_quote(quote_id), f"q2c-{quote_id}:erp-order")


# -- keys -------------------------------------------------------------------------------------


def test_order_references_fit_35_characters_and_never_collide_with_plain_ones() -> None:
    short = "q2c-0Q0SHORT:erp-order"
    assert order_reference(short) == short
    long_key = f"q2c-{LONG_QUOTE}:erp-order"
    hashed = order_reference(long_key)
    assert len(long_key) > 35 and len(hashed) == 35 and hashed.startswith("#")
    assert order_reference(long_key) == hashed  # deterministic
    assert order_reference(long_key.replace("42", "43")) != hashed
    # A plain key that looks hashed is hashed itself, so it cannot equal another's reference.
    assert order_reference(hashed) != hashed


def test_customer_references_fit_20_characters_and_map_back() -> None:
    assert customer_reference(CUSTOMER_KEY) == "0015e00000NordDE1"
    assert customer_key("0015e00000NordDE1") == CUSTOMER_KEY
    long_account = "acct-" + "9" * 25
    hashed = customer_reference(long_account)
    assert len(hashed) == 20 and hashed.startswith("#")
    assert customer_key(hashed) is None
    assert customer_reference("other-key") != customer_reference("acct-other-key")


# -- catalog and customers --------------------------------------------------------------------


async def test_catalog_items_carry_exact_list_prices(rig: Rig) -> None:
    items = await rig.erp.get_catalog_items(["PLAT-ANALYTICS", "LEGACY-SEAT", "NOPE"])
    assert sorted(items) == ["LEGACY-SEAT", "PLAT-ANALYTICS"]
    assert items["PLAT-ANALYTICS"].prices["EUR"] == Decimal("14.25")
    assert items["PLAT-ANALYTICS"].billing == "recurring"
    assert items["PLAT-ANALYTICS"].name == "Analytics Add-on (per seat / month)"
    assert not items["LEGACY-SEAT"].active


async def test_internal_reads_follow_server_driven_paging(rig: Rig) -> None:
    rig.state.sap.max_page_size = 2
    items = await rig.erp.get_catalog_items(["PLAT-CORE", "PLAT-ANALYTICS", "ONBOARD-STD"])
    assert sorted(items) == ["ONBOARD-STD", "PLAT-ANALYTICS", "PLAT-CORE"]
    assert items["PLAT-CORE"].prices == {
        "CAD": Decimal("61.00"),
        "EUR": Decimal("42.00"),
        "GBP": Decimal("36.00"),
        "JPY": Decimal("6500"),
        "USD": Decimal("45.00"),
    }


async def test_the_customer_is_one_business_partner_keyed_by_the_account(rig: Rig) -> None:
    again = await rig.erp.upsert_customer(seeded_customer(), CUSTOMER_KEY)
    assert again == rig.customer_id
    (partner,) = rig.state.sap.snapshot()["businessPartners"]
    assert partner["BusinessPartnerIDByExtSystem"] == "0015e00000NordDE1"
    assert partner["OrganizationBPName2"] == "Nordlicht Logistik GmbH"
    assert partner["to_BusinessPartnerTax"]["results"][0]["BPTaxType"] == "DE0"
    assert partner["to_Customer"]["to_CustomerSalesArea"]["results"][0]["Currency"] == "EUR"
    assert await rig.erp.find_customer(CUSTOMER_KEY) == rig.customer_id
    assert await rig.erp.find_customer("acct-0015e00000Missing") is None


async def test_golden_fields_are_written_and_listed(rig: Rig) -> None:
    new_address = Address(
        line1="Am Sandtorkai 1", city="Hamburg", postal_code="20457", country="DE"
    )
    await rig.erp.update_customer_fields(
        rig.customer_id,
        {
            MasterField.EMAIL: "ap@nordlicht.example",
            MasterField.BILLING_ADDRESS: new_address,
            MasterField.TAX_ID: "DE999999999",
            MasterField.OWNER: "maya.chen@seller.example",
        },
        "key-1",
    )
    page = await rig.erp.list_customers(None, 10)
    (record,) = page.items
    assert record.account_id == "0015e00000NordDE1"
    assert page.cursor is None
    (partner,) = rig.state.sap.snapshot()["businessPartners"]
    address = partner["to_BusinessPartnerAddress"]["results"][0]
    assert address["StreetName"] == "Am Sandtorkai 1"
    assert address["to_EmailAddress"]["results"][0]["EmailAddress"] == "ap@nordlicht.example"
    assert partner["to_BusinessPartnerTax"]["results"][0]["BPTaxNumber"] == "DE999999999"
    assert partner["YY1_RevsyncOwner_bus"] == "maya.chen@seller.example"
    assert set(record.fields) >= {MasterField.EMAIL, MasterField.TAX_ID, MasterField.OWNER}


async def test_the_credit_limit_is_never_written(rig: Rig) -> None:
    with pytest.raises(RejectedError) as caught:
        await rig.erp.update_customer_fields(rig.customer_id, {MasterField.CREDIT_LIMIT: None}, "k")
    assert caught.value.code == "NOT_WRITABLE"


# -- sales orders -------------------------------------------------------------------------------


async def test_a_long_key_creates_one_order_found_again_with_its_full_key(rig: Rig) -> None:
    order = draft()
    first = await rig.erp.create_sales_order(order, rig.customer_id)
    second = await rig.erp.create_sales_order(order, rig.customer_id)
    assert second.order_id == first.order_id
    assert first.external_id == order.external_id
    assert first.total == order.total  # 20 seats at 10 % off plus onboarding, to the cent
    (stored,) = rig.orders()
    assert stored["PurchaseOrderByCustomer"] == order_reference(order.external_id)
    assert stored["TotalNetAmount"] == str(order.total)
    listed = await rig.erp.list_sales_orders(None, 10)
    assert [r.key for r in listed.items] == [order.external_id]
    assert listed.items[0].quote_id == LONG_QUOTE
    assert listed.items[0].amount == order.total


async def test_a_lost_create_answer_is_settled_by_the_keyed_retry(rig: Rig) -> None:
    rig.lossy.lose("POST", "/API_SALES_ORDER_SRV/A_SalesOrder")
    with pytest.raises(UnknownOutcomeError):
        await rig.erp.create_sales_order(draft(), rig.customer_id)
    assert len(rig.orders()) == 1
    again = await rig.erp.create_sales_order(draft(), rig.customer_id)
    assert len(rig.orders()) == 1
    assert again.order_id == rig.orders()[0]["SalesOrder"]


async def test_an_injected_after_fault_is_recovered_the_same_way(rig: Rig) -> None:
    rig.inject(operation="create_sales_order", phase="after", status=504)
    with pytest.raises(TransientError):
        await rig.erp.create_sales_order(draft(), rig.customer_id)
    assert len(rig.orders()) == 1
    await rig.erp.create_sales_order(draft(), rig.customer_id)
    assert len(rig.orders()) == 1


async def test_an_unknown_sold_to_party_is_rejected_with_the_sap_code(rig: Rig) -> None:
    with pytest.raises(RejectedError) as caught:
        await rig.erp.create_sales_order(draft(), "99999999")
    assert caught.value.code == "V1/390"
    assert caught.value.status == 400
    assert rig.orders() == []


async def test_cancel_rejects_every_item_and_twice_is_a_no_op(rig: Rig) -> None:
    created = await rig.erp.create_sales_order(draft(), rig.customer_id)
    cancelled = await rig.erp.cancel_sales_order(created.order_id, "billing refused")
    assert cancelled.status is SalesOrderStatus.CANCELLED
    (stored,) = rig.orders()
    assert {i["SalesDocumentRjcnReason"] for i in stored["to_Item"]["results"]} == {"10"}
    methods: list[str] = []

    async def record(request: httpx.Request) -> None:
        methods.append(request.method)

    rig.http.event_hooks["request"].append(record)
    again = await rig.erp.cancel_sales_order(created.order_id, "billing refused")
    assert again.status is SalesOrderStatus.CANCELLED
    assert "PATCH" not in methods  # read, found cancelled, nothing written
    listed = await rig.erp.list_sales_orders(None, 10)
    assert not listed.items[0].live


async def test_a_stale_etag_is_read_again_and_retried_once(rig: Rig) -> None:
    created = await rig.erp.create_sales_order(draft(), rig.customer_id)
    (stored,) = rig.orders()
    item = stored["to_Item"]["results"][0]
    stale = {
        "SalesOrder": item["SalesOrder"],
        "SalesOrderItem": item["SalesOrderItem"],
        "__metadata": {"etag": "W/\"datetimeoffset'1999-01-01'\""},
    }
    await rig.erp._reject_item(stale, "cancel_sales_order")
    assert (
        rig.state.sap.item(created.order_id, item["SalesOrderItem"])["SalesDocumentRjcnReason"]
        == "10"
    )


async def test_cancelling_an_unknown_order_is_not_found(rig: Rig) -> None:
    with pytest.raises(NotFoundError):
        await rig.erp.cancel_sales_order("4711", "no such order")


async def test_listing_pages_by_skip_until_the_count(rig: Rig) -> None:
    for number in range(5):
        await rig.erp.create_sales_order(draft(f"0Q0PAGE{number:08d}"), rig.customer_id)
    cursor: str | None = None
    pages: list[list[str]] = []
    while True:
        page = await rig.erp.list_sales_orders(cursor, 2)
        pages.append([r.record_id for r in page.items])
        cursor = page.cursor
        if cursor is None:
            break
    assert [len(p) for p in pages] == [2, 2, 1]
    assert len({r for p in pages for r in p}) == 5
    with pytest.raises(RejectedError):
        await rig.erp.list_sales_orders("not-a-cursor", 2)


# -- CSRF, auth, throttling -------------------------------------------------------------------


async def test_one_csrf_fetch_serves_every_write_until_it_expires(rig: Rig) -> None:
    fetched = rig.erp.session.csrf_fetches
    assert fetched == 1  # the customer's create
    await rig.erp.create_sales_order(draft(), rig.customer_id)
    assert rig.erp.session.csrf_fetches == 1
    rig.state.sap.expire_csrf()
    created = await rig.erp.create_sales_order(draft("0Q0CSRF000000001"), rig.customer_id)
    assert created.order_id
    assert rig.erp.session.csrf_fetches == 2
    assert len(rig.orders()) == 2


async def test_a_csrf_token_refused_again_is_transient(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rig.state.sap, "csrf_ok", lambda request: False)
    with pytest.raises(TransientError) as caught:
        await rig.erp.create_sales_order(draft(), rig.customer_id)
    assert (caught.value.status, caught.value.code) == (403, "CSRF_TOKEN_REQUIRED")
    assert rig.orders() == []


async def test_a_wrong_password_is_a_transient_auth_error_naming_the_settings(
    rig: Rig,
) -> None:
    erp = sap(rig.http, password="wrong")
    with pytest.raises(TransientError) as caught:
        await erp.find_sales_order("q2c-x:erp-order")
    assert caught.value.status == 401
    assert "REVSYNC_SAP_PASSWORD" in caught.value.message
    assert "wrong" not in caught.value.message


async def test_oauth_tokens_are_cached_and_refreshed_once_on_a_401(rig: Rig) -> None:
    tokens = OAuthTokens(
        rig.http,
        vendor="sap",
        token_url=f"{BASE_URL}/sap/bc/sec/oauth2/token",
        grant=ClientSecretGrant("sandbox-sap-client", "sandbox-secret"),
        fix="REVSYNC_SAP_CLIENT_ID and REVSYNC_SAP_CLIENT_SECRET",
    )
    erp = SapErp(rig.http, base_url=BASE_URL, tokens=tokens)
    server = rig.state.oauth["sap"]
    await erp.create_sales_order(draft(), rig.customer_id)
    await erp.find_sales_order(draft().external_id)
    assert server.token_requests == 1
    server.expire_all()
    assert (await erp.find_sales_order(draft().external_id)) is not None
    assert server.token_requests == 2
    # The client's secret rotated elsewhere: the refresh is refused, transient, named.
    server.clients["sandbox-sap-client"] = server.clients["sandbox-sap-client"].model_copy(
        update={"client_secret": "rotated"}
    )
    server.expire_all()
    with pytest.raises(TransientError) as caught:
        await erp.find_sales_order(draft().external_id)
    assert caught.value.status == 401
    assert "REVSYNC_SAP_CLIENT_SECRET" in caught.value.message


async def test_throttling_is_transient_with_its_retry_after(rig: Rig) -> None:
    rig.state.sap.throttle, rig.state.sap.throttle_retry_after = 1, 9
    with pytest.raises(TransientError) as caught:
        await rig.erp.find_sales_order("q2c-x:erp-order")
    assert (caught.value.status, caught.value.retry_after) == (429, 9.0)
    assert await rig.erp.find_sales_order("q2c-x:erp-order") is None


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": {"lang": "en", "value": message}}}


@pytest.mark.parametrize(
    ("status", "body", "headers", "kind", "code", "retry_after"),
    [
        (400, _error("V1/390", "Sold-to party not maintained"), {}, RejectedError, "V1/390", None),
        (
            400,
            _error("V1/042", "Sales document is being processed"),
            {},
            TransientError,
            "V1/042",
            None,
        ),
        (
            404,
            _error("/IWBEP/CM_MGW_RT/020", "Resource not found"),
            {},
            NotFoundError,
            "/IWBEP/CM_MGW_RT/020",
            None,
        ),
        (
            412,
            _error("/IWBEP/CM_MGW_RT/098", "Precondition failed"),
            {},
            TransientError,
            "/IWBEP/CM_MGW_RT/098",
            None,
        ),
        (
            428,
            _error("/IWBEP/CM_MGW_RT/099", "Precondition required"),
            {},
            RejectedError,
            "/IWBEP/CM_MGW_RT/099",
            None,
        ),
        (
            429,
            _error("/IWFND/CM_BEC/076", "Rate limit"),
            {"Retry-After": "30"},
            TransientError,
            "/IWFND/CM_BEC/076",
            30.0,
        ),
        (
            503,
            _error("/IWFND/CM_BEC/026", "Service unavailable"),
            {},
            TransientError,
            "/IWFND/CM_BEC/026",
            None,
        ),
        (500, None, {}, TransientError, None, None),
        (401, None, {}, TransientError, None, None),
        (
            403,
            _error("/IWFND/MED/170", "No service found for namespace"),
            {},
            TransientError,
            "/IWFND/MED/170",
            None,
        ),
    ],
)
def test_classifier(
    status: int,
    body: dict[str, Any] | None,
    headers: dict[str, str],
    kind: type[VendorError],
    code: str | None,
    retry_after: float | None,
) -> None:
    request = httpx.Request("POST", f"{BASE_URL}/x")
    response = (
        httpx.Response(status, json=body, headers=headers, request=request)
        if body is not None
        else httpx.Response(status, text="Logon failed", headers=headers, request=request)
    )
    error = classify_sap("create_sales_order", response)
    assert type(error) is kind
    assert error.code == code
    assert error.status == status
    assert getattr(error, "retry_after", None) == retry_after


async def test_an_order_date_travels_as_an_odata_date(rig: Rig) -> None:
    order = draft()
    await rig.erp.create_sales_order(order, rig.customer_id)
    (stored,) = rig.orders()
    from sandbox.sap import parse_odata_date

    assert parse_odata_date(stored["SalesOrderDate"]) == order.order_date
    assert isinstance(order.order_date, date)
