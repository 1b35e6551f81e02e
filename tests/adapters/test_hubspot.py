"""The HubSpot CRM adapter against the HubSpot emulator, in process."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from pydantic import SecretStr

from adapters.breaker import is_throttled
from adapters.crm.hubspot import (
    HubSpotCrm,
    classify_hubspot,
    hubspot_classifier,
    seconds_until_midnight,
)
from adapters.errors import NotFoundError, RejectedError, TransientError, UnknownOutcomeError
from adapters.ports import CrmPort
from adapters.registry import hubspot_crm
from domain.customer import Address
from domain.customer_master import FieldValue, MasterField
from domain.money import Money
from domain.order import SalesOrder, SalesOrderStatus, Subscription, SubscriptionStatus
from domain.quote import BillingType
from domain.receivable import ReceivableStatus
from domain.reconciliation import fingerprints
from revsync.settings import MissingSetting, Settings
from sandbox.app import DEFAULT_TOKENS, SandboxState
from sandbox.hubspot import COMPANY_IDS, SANDBOX_CLIENT_ID, SANDBOX_REFRESH_TOKEN, create_deal

BASE_URL = "http://sandbox/hubspot"
TOKEN = DEFAULT_TOKENS["hubspot"]
NORDLICHT = COMPANY_IDS["0015e00000NordDE1"]
ACME = COMPANY_IDS["0015e00000AcmeUS1"]


@pytest.fixture
def crm(http: httpx.AsyncClient) -> HubSpotCrm:
    adapter = HubSpotCrm(http, base_url=BASE_URL, access_token=TOKEN)
    port: CrmPort = adapter  # mypy checks the adapter implements the port
    assert port.vendor == "hubspot"
    return adapter


async def new_deal(http: httpx.AsyncClient, company_id: str = NORDLICHT, **kwargs: Any) -> str:
    lines = kwargs.pop("lines", [("PLAT-CORE", "20", "10"), ("ONBOARD-STD", "1", "0")])
    return await create_deal(
        http, BASE_URL, TOKEN, company_id, currency="EUR", lines=lines, **kwargs
    )


async def inject(http: httpx.AsyncClient, **rule: Any) -> None:
    response = await http.post("/_sandbox/faults", json={"faults": [{"vendor": "hubspot", **rule}]})
    assert response.status_code == 200, response.text


async def record(crm: HubSpotCrm, deal_id: str, *, total: str = "12345.67") -> str:
    return await crm.record_order(
        quote_id=deal_id,
        account_id=NORDLICHT,
        order_key=f"q2c-{deal_id}:crm-order",
        sales_order=SalesOrder(
            order_id="5501",
            external_id=f"q2c-{deal_id}:erp-order",
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


def properties(state: SandboxState, kind: str, record_id: str) -> dict[str, Any]:
    return dict(state.hubspot.records[kind][record_id]["properties"])


def response(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status,
        content=json.dumps(body).encode(),
        headers={"content-type": "application/json", **(headers or {})},
        request=httpx.Request("GET", "http://hubspot.test/crm/v3/objects/deals/1"),
    )


# -- accounts -----------------------------------------------------------------------------


async def test_a_seeded_company_reads_as_the_customer(crm: HubSpotCrm) -> None:
    customer = await crm.get_account(NORDLICHT)
    assert customer.account_id == NORDLICHT
    assert customer.name == "Nordlicht Logistik"
    assert customer.legal_entity == "Nordlicht Logistik GmbH"
    assert customer.tax_id == "DE811907980"
    assert customer.currency == "EUR"
    assert customer.billing_address.country == "DE"
    assert customer.billing_address.city == "Hamburg"
    assert customer.existing_customer is True
    assert customer.credit_check == "approved"


async def test_an_unknown_or_malformed_company_is_not_found(crm: HubSpotCrm) -> None:
    with pytest.raises(NotFoundError) as caught:
        await crm.get_account("99999999999")
    assert (caught.value.status, caught.value.code) == (404, "OBJECT_NOT_FOUND")
    with pytest.raises(NotFoundError) as malformed:
        await crm.get_account("0015e00000NordDE1")  # a Salesforce id is no HubSpot id
    assert malformed.value.code == "MALFORMED_ID"


async def test_golden_fields_are_written_idempotently_and_listed_back(
    crm: HubSpotCrm, state: SandboxState
) -> None:
    changes: dict[MasterField, FieldValue] = {
        MasterField.NAME: "Nordlicht Logistik Nord",
        MasterField.EMAIL: "ap@nordlicht.example",
        MasterField.CREDIT_LIMIT: Money(amount=Decimal("250000.10"), currency="EUR"),
        MasterField.BILLING_ADDRESS: Address(
            line1="Am Sandtorkai 1",
            line2="3. OG",
            city="Hamburg",
            postal_code="20457",
            country="DE",
        ),
        MasterField.WEBSITE: None,
    }
    await crm.update_account_fields(NORDLICHT, changes, "cm-1:crm")
    first = properties(state, "companies", NORDLICHT)
    await crm.update_account_fields(NORDLICHT, changes, "cm-1:crm")
    again = properties(state, "companies", NORDLICHT)
    assert {k: v for k, v in again.items() if k != "hs_lastmodifieddate"} == {
        k: v for k, v in first.items() if k != "hs_lastmodifieddate"
    }
    assert first["revsync_credit_limit"] == "250000.10"  # exact, as text
    assert (first["address"], first["address2"], first["website"]) == (
        "Am Sandtorkai 1",
        "3. OG",
        "",
    )

    page = await crm.list_accounts(None, 100)
    (listed,) = [r for r in page.items if r.record_id == NORDLICHT]
    assert listed.account_id == NORDLICHT
    expected = fingerprints(
        {f.value: v for f, v in changes.items() if f is not MasterField.WEBSITE}
    )
    for field, print_ in expected.items():
        assert listed.fields[field] == print_, field


async def test_the_owner_is_hubspots_and_a_validation_error_is_a_rejection(
    crm: HubSpotCrm, http: httpx.AsyncClient
) -> None:
    with pytest.raises(RejectedError) as owner:
        await crm.update_account_fields(NORDLICHT, {MasterField.OWNER: "73125491"}, "k")
    assert owner.value.code == "NOT_WRITABLE"
    await inject(
        http, operation="update", status=400, code="VALIDATION_ERROR", message="revsync_tax_id"
    )
    with pytest.raises(RejectedError) as caught:
        await crm.update_account_fields(NORDLICHT, {MasterField.TAX_ID: "DE1"}, "k")
    assert not isinstance(caught.value, NotFoundError)
    assert (caught.value.status, caught.value.code) == (400, "VALIDATION_ERROR")
    assert "revsync_tax_id" in caught.value.message


async def test_the_emulator_refuses_a_property_that_does_not_exist(
    http: httpx.AsyncClient,
) -> None:
    answer = await http.patch(
        f"/hubspot/crm/v3/objects/companies/{NORDLICHT}",
        json={"properties": {"tax_number": "DE1", "revsync_ar_amount_due": "ten"}},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert answer.status_code == 400
    body = answer.json()
    assert body["category"] == "VALIDATION_ERROR"
    assert {e["code"] for e in body["errors"]} == {"PROPERTY_DOESNT_EXIST", "INVALID_DECIMAL"}


# -- the booked order ---------------------------------------------------------------------


async def test_record_order_twice_is_one_order_associated_and_the_deal_marked(
    crm: HubSpotCrm, http: httpx.AsyncClient, state: SandboxState
) -> None:
    deal_id = await new_deal(http)
    first = await record(crm, deal_id)
    assert await record(crm, deal_id) == first
    snapshot = state.hubspot.snapshot()
    (order,) = snapshot["orders"]
    assert order["id"] == first
    assert order["properties"]["revsync_order_key"] == f"q2c-{deal_id}:crm-order"
    assert order["properties"]["hs_total_price"] == "12345.67"  # never through float
    links = {(tuple(a["from"]), tuple(a["to"])) for a in snapshot["associations"]}
    assert (("orders", first), ("deals", deal_id)) in links
    assert (("orders", first), ("companies", NORDLICHT)) in links
    deal = properties(state, "deals", deal_id)
    assert (deal["revsync_status"], deal["revsync_order_id"]) == ("Ordered", first)


async def test_a_lost_upsert_answer_is_settled_by_the_keyed_retry(
    crm: HubSpotCrm, http: httpx.AsyncClient, state: SandboxState
) -> None:
    deal_id = await new_deal(http)
    await inject(http, operation="batch_upsert", phase="after", status=502)
    with pytest.raises(TransientError):
        await record(crm, deal_id)
    assert len(state.hubspot.snapshot()["orders"]) == 1  # applied, answer lost
    order_id = await record(crm, deal_id)
    (order,) = state.hubspot.snapshot()["orders"]
    assert order["id"] == order_id


async def test_a_partial_batch_error_about_the_order_is_classified_not_dropped() -> None:
    answers = iter(
        [
            response(
                207,
                {
                    "status": "COMPLETE",
                    "results": [],
                    "numErrors": 1,
                    "errors": [
                        {
                            "status": "error",
                            "category": "VALIDATION_ERROR",
                            "message": "Property values were not valid: hs_currency_code",
                            "context": {"propertyName": ["hs_currency_code"]},
                        }
                    ],
                },
            ),
            response(
                207,
                {
                    "status": "COMPLETE",
                    "results": [],
                    "errors": [{"status": "error", "category": "RATE_LIMITS", "message": "slow"}],
                },
            ),
        ]
    )

    async with httpx.AsyncClient(
        transport=httpx.MockTransport(lambda request: next(answers))
    ) as client:
        crm = HubSpotCrm(client, base_url="http://hubspot.test", access_token="t")
        with pytest.raises(RejectedError) as rejected:
            await record(crm, "52000000001")
        assert (rejected.value.status, rejected.value.code) == (207, "VALIDATION_ERROR")
        with pytest.raises(TransientError) as transient:
            await record(crm, "52000000001")
        assert transient.value.code == "RATE_LIMITS"


async def test_the_emulator_answers_207_when_some_inputs_fail(
    http: httpx.AsyncClient, state: SandboxState
) -> None:
    answer = await http.post(
        "/hubspot/crm/v3/objects/orders/batch/upsert",
        json={
            "inputs": [
                {
                    "idProperty": "revsync_order_key",
                    "id": "k-1",
                    "properties": {"hs_total_price": "9.5"},
                },
                {
                    "idProperty": "revsync_order_key",
                    "id": "k-2",
                    "properties": {"hs_total_price": "x"},
                },
            ]
        },
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert answer.status_code == 207
    body = answer.json()
    assert [r["properties"]["revsync_order_key"] for r in body["results"]] == ["k-1"]
    assert body["errors"][0]["category"] == "VALIDATION_ERROR"
    assert len(state.hubspot.snapshot()["orders"]) == 1


async def test_orders_are_listed_page_by_page(
    crm: HubSpotCrm, http: httpx.AsyncClient, state: SandboxState
) -> None:
    made = set()
    for _ in range(5):
        made.add(await record(crm, await new_deal(http)))
    state.hubspot.page_cap = 2
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await crm.list_orders(cursor, 200)
        pages += 1
        seen += [r.record_id for r in page.items]
        for item in page.items:
            assert item.amount == Decimal("12345.67")
            assert (item.currency, item.status, item.live) == ("EUR", "Activated", True)
            assert item.key == f"q2c-{item.quote_ref}:crm-order"
        if page.cursor is None:
            break
        cursor = page.cursor
    assert pages == 3
    assert sorted(seen) == sorted(made)


async def test_companies_are_listed_page_by_page_and_a_bad_cursor_is_refused(
    crm: HubSpotCrm, state: SandboxState
) -> None:
    state.hubspot.page_cap = 4
    first = await crm.list_accounts(None, 4)
    assert first.cursor is not None
    second = await crm.list_accounts(first.cursor, 4)
    assert second.cursor is None
    ids = [r.record_id for r in first.items + second.items]
    assert sorted(ids) == sorted(COMPANY_IDS.values())
    with pytest.raises(RejectedError) as caught:
        await crm.list_accounts("../../etc", 4)
    assert caught.value.code == "INVALID_CURSOR"


# -- quote status and receivable status -----------------------------------------------------


async def test_marking_the_deal_rejected_twice_is_a_no_op(
    crm: HubSpotCrm, http: httpx.AsyncClient, state: SandboxState
) -> None:
    deal_id = await new_deal(http)
    await crm.set_quote_status(deal_id, "Rejected", "ERP order refused " + "x" * 2000)
    await crm.set_quote_status(deal_id, "Rejected", "ERP order refused " + "x" * 2000)
    deal = properties(state, "deals", deal_id)
    assert deal["revsync_status"] == "Rejected"
    assert len(deal["revsync_status_reason"]) == 1000
    with pytest.raises(NotFoundError):
        await crm.set_quote_status("52999999999", "Rejected", None)


async def test_a_late_older_receivable_status_never_overwrites_a_newer_one(
    crm: HubSpotCrm, state: SandboxState
) -> None:
    noon = datetime(2026, 3, 1, 12, tzinfo=UTC)
    await crm.set_receivable_status(
        ACME, ReceivableStatus.OVERDUE, "in_1", Decimal("1019.90"), "EUR", as_of=noon
    )
    await crm.set_receivable_status(
        ACME,
        ReceivableStatus.CURRENT,
        "in_1",
        Decimal("1019.90"),
        "EUR",
        as_of=noon - timedelta(hours=1),
    )
    shown = properties(state, "companies", ACME)
    assert shown["revsync_ar_status"] == "Overdue"
    assert shown["revsync_ar_amount_due"] == "1019.90"
    assert shown["revsync_ar_as_of"] == "2026-03-01T12:00:00.000Z"
    await crm.set_receivable_status(
        ACME, ReceivableStatus.PAID, "in_1", Decimal("0"), "EUR", as_of=noon + timedelta(days=1)
    )
    assert properties(state, "companies", ACME)["revsync_ar_status"] == "Paid"
    with pytest.raises(RejectedError) as naive:
        await crm.set_receivable_status(
            ACME, ReceivableStatus.PAID, "in_1", Decimal(0), "EUR", as_of=datetime(2026, 3, 3)
        )
    assert naive.value.code == "INVALID_AS_OF"


# -- the closed-won deal --------------------------------------------------------------------


async def test_a_closed_won_deal_reads_as_its_quote(
    crm: HubSpotCrm, http: httpx.AsyncClient
) -> None:
    deal_id = await new_deal(http)
    quote = await crm.closed_won_quote(deal_id)
    assert (quote.quote_id, quote.account_id, quote.currency) == (deal_id, NORDLICHT, "EUR")
    assert [(line.sku, line.quantity, line.unit_price, line.billing) for line in quote.lines] == [
        ("PLAT-CORE", Decimal(20), Decimal("42.00"), BillingType.RECURRING),
        ("ONBOARD-STD", Decimal(1), Decimal("2300.00"), BillingType.ONE_TIME),
    ]
    assert quote.lines[0].discount_percent == Decimal(10)
    with pytest.raises(NotFoundError):
        await crm.closed_won_quote("52999999999")


# -- the classifier -------------------------------------------------------------------------

NOW = datetime(2026, 3, 1, 20, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "body", "headers", "kind", "code", "retry_after"),
    [
        (
            400,
            {"status": "error", "message": "bad", "category": "VALIDATION_ERROR"},
            {},
            RejectedError,
            "VALIDATION_ERROR",
            None,
        ),
        (
            409,
            {"status": "error", "message": "exists", "category": "CONFLICT"},
            {},
            RejectedError,
            "CONFLICT",
            None,
        ),
        (
            404,
            {"status": "error", "message": "gone", "category": "OBJECT_NOT_FOUND"},
            {},
            NotFoundError,
            "OBJECT_NOT_FOUND",
            None,
        ),
        (
            401,
            {"status": "error", "message": "expired", "category": "EXPIRED_AUTHENTICATION"},
            {},
            TransientError,
            "EXPIRED_AUTHENTICATION",
            None,
        ),
        (
            403,
            {"status": "error", "message": "scopes", "category": "MISSING_SCOPES"},
            {},
            RejectedError,
            "MISSING_SCOPES",
            None,
        ),
        (423, {"status": "error", "message": "locked"}, {}, TransientError, None, None),
        (502, "<html>bad gateway</html>", {}, TransientError, None, None),
        (
            429,
            {
                "status": "error",
                "message": "slow down",
                "errorType": "RATE_LIMIT",
                "policyName": "TEN_SECONDLY_ROLLING",
            },
            {"Retry-After": "1"},
            TransientError,
            "TEN_SECONDLY_ROLLING",
            1.0,
        ),
        (
            429,
            {
                "status": "error",
                "message": "daily",
                "errorType": "RATE_LIMIT",
                "policyName": "DAILY",
            },
            {},
            TransientError,
            "DAILY",
            9 * 3600.0,
        ),
    ],
)
def test_classifier(
    status: int,
    body: Any,
    headers: dict[str, str],
    kind: type[Exception],
    code: str | None,
    retry_after: float | None,
) -> None:
    classify = hubspot_classifier(ZoneInfo("America/New_York"), lambda: NOW)  # 15:00 there
    error = classify("op", response(status, body, headers))
    assert type(error) is kind
    assert error.code == code
    assert error.status == status
    assert getattr(error, "retry_after", None) == retry_after


def test_the_daily_limit_resets_at_midnight_in_the_accounts_zone() -> None:
    assert seconds_until_midnight(ZoneInfo("UTC"), NOW) == 4 * 3600
    assert seconds_until_midnight(ZoneInfo("Asia/Tokyo"), NOW) == 19 * 3600  # 05:00 there
    # The night clocks go forward in Berlin (2026-03-29), that midnight is 23 hours after
    # the one before.
    before = datetime(2026, 3, 28, 23, 0, tzinfo=UTC)  # 00:00 on the 29th, Berlin
    assert seconds_until_midnight(ZoneInfo("Europe/Berlin"), before) == 23 * 3600
    assert classify_hubspot("op", response(400, {"message": "x"})).code is None


async def test_throttling_is_transient_paced_and_never_opens_the_breaker(
    crm: HubSpotCrm, state: SandboxState
) -> None:
    state.hubspot.ten_secondly_limit = 1
    await crm.get_account(NORDLICHT)
    with pytest.raises(TransientError) as burst:
        await crm.get_account(NORDLICHT)
    assert (burst.value.status, burst.value.code, burst.value.retry_after) == (
        429,
        "TEN_SECONDLY_ROLLING",
        1.0,
    )
    state.hubspot.ten_secondly_limit = None
    state.hubspot.daily_remaining = 0
    for _ in range(8):
        with pytest.raises(TransientError) as daily:
            await crm.get_account(NORDLICHT)
        assert daily.value.code == "DAILY"
        assert daily.value.retry_after is not None and daily.value.retry_after > 0
        assert is_throttled(daily.value)
    assert state.hubspot.throttled == 9
    state.hubspot.daily_remaining = None
    assert (await crm.get_account(NORDLICHT)).account_id == NORDLICHT  # circuit still closed


async def test_an_unknown_outcome_of_a_write_is_reported_as_such(
    http: httpx.AsyncClient,
) -> None:
    def lose(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("lost", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(lose)) as client:
        crm = HubSpotCrm(client, base_url="http://hubspot.test", access_token="t")
        with pytest.raises(UnknownOutcomeError):
            await crm.set_quote_status("52000000001", "Rejected", None)


# -- auth -----------------------------------------------------------------------------------


def oauth_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "hubspot_base_url": BASE_URL,
        "hubspot_auth": "oauth",
        "hubspot_client_id": SANDBOX_CLIENT_ID,
        "hubspot_client_secret": SecretStr("sandbox-hubspot-secret,old-secret"),
        "hubspot_refresh_token": SecretStr(SANDBOX_REFRESH_TOKEN),
    }
    return Settings(**(values | overrides))


async def test_oauth_token_is_fetched_once_cached_and_refreshed_once_on_401(
    http: httpx.AsyncClient, state: SandboxState
) -> None:
    crm = hubspot_crm(oauth_settings(), http)
    server = state.oauth["hubspot"]
    await crm.get_account(NORDLICHT)
    await crm.get_account(ACME)
    assert server.token_requests == 1
    server.expire_all()  # the 30-minute token lapsed (or was revoked) server-side
    await crm.get_account(NORDLICHT)
    assert server.token_requests == 2


async def test_a_refused_refresh_token_is_transient_and_names_the_settings(
    http: httpx.AsyncClient, state: SandboxState
) -> None:
    state.hubspot.refresh_tokens.clear()  # the app was uninstalled
    crm = hubspot_crm(oauth_settings(), http)
    with pytest.raises(TransientError) as caught:
        await crm.get_account(NORDLICHT)
    assert "REVSYNC_HUBSPOT_REFRESH_TOKEN" in caught.value.message
    assert SANDBOX_REFRESH_TOKEN not in caught.value.message


async def test_a_static_token_refused_is_transient_401_naming_the_setting(
    http: httpx.AsyncClient, state: SandboxState
) -> None:
    crm = hubspot_crm(Settings(hubspot_base_url=BASE_URL), http)
    state.tokens["hubspot"] = "pat-na1-rotated"
    with pytest.raises(TransientError) as caught:
        await crm.get_account(NORDLICHT)
    assert (caught.value.status, caught.value.code) == (401, "INVALID_AUTHENTICATION")
    assert "REVSYNC_HUBSPOT_ACCESS_TOKEN" in caught.value.message


def test_oauth_needs_its_settings(http: httpx.AsyncClient) -> None:
    with pytest.raises(MissingSetting) as caught:
        hubspot_crm(oauth_settings(hubspot_client_id=None), http)
    assert caught.value.setting == "REVSYNC_HUBSPOT_CLIENT_ID"
    with pytest.raises(MissingSetting) as refresh:
        hubspot_crm(oauth_settings(hubspot_refresh_token=None), http)
    assert refresh.value.setting == "REVSYNC_HUBSPOT_REFRESH_TOKEN"
