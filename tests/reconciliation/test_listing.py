"""Listing one page at a time, as each vendor pages: Salesforce ``nextRecordsUrl`` with
``Sforce-Query-Options: batchSize``, Stripe ``limit``/``starting_after``/``has_more``,
NetSuite SuiteQL ``limit``/``offset``/``hasMore``. Each against its emulator: more records
than a page, cursors that resume exactly where the page ended, every failure class through
the activity's classifier."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal

import httpx
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.reconciliation import (
    ReconcileBillingActivities,
    ReconcileCrmActivities,
    ReconcileErpActivities,
)
from adapters.billing.stripe import StripeBilling
from adapters.crm.salesforce import SalesforceCrm
from adapters.erp.netsuite import NetSuiteErp
from adapters.errors import RejectedError, UnknownOutcomeError
from domain.reconciliation import ListPage, OrderRecord, Page, System
from domain.saga import FailureType
from sandbox.app import DEFAULT_TOKENS, SandboxState
from sandbox.faults import FaultRule, FaultsRequest
from sandbox.seed import ACCOUNTS
from tests.adapters.lossy import LossyTransport

Lister = Callable[[str | None, int], Awaitable[Page[OrderRecord]]]


def sent_requests(http: httpx.AsyncClient) -> list[httpx.Request]:
    sent: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        sent.append(request)

    http.event_hooks["request"].append(record)
    return sent


async def read_all(lister: Lister, page_size: int) -> list[Page[OrderRecord]]:
    pages = [await lister(None, page_size)]
    while pages[-1].cursor is not None:
        assert len(pages) < 100, "the cursor never ends"
        pages.append(await lister(pages[-1].cursor, page_size))
    return pages


def inject(state: SandboxState, vendor: str, **rule: object) -> None:
    state.faults.configure(
        FaultsRequest(faults=[FaultRule.model_validate({"vendor": vendor, **rule})])
    )


async def classified(call: Callable[[], Awaitable[object]]) -> ApplicationError:
    """The ApplicationError the activity raised (what Temporal retries or not on)."""
    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(call)
    return raised.value


# -- Salesforce ------------------------------------------------------------------------------


@pytest.fixture
def crm(http: httpx.AsyncClient) -> SalesforceCrm:
    return SalesforceCrm(
        http,
        base_url="http://sandbox/salesforce",
        api_version="v61.0",
        access_token=DEFAULT_TOKENS["salesforce"],
    )


def seed_crm_orders(state: SandboxState, count: int) -> list[str]:
    store = state.salesforce
    account = ACCOUNTS[0]["Id"]
    ids = []
    for n in range(count):
        quote = store.create("SBQQ__Quote__c", {"SBQQ__Account__c": account})
        ids.append(
            store.create(
                "Order",
                {
                    "AccountId": account,
                    "SBQQ__Quote__c": quote,
                    "Revsync_Key__c": f"q2c-{quote}:crm-order",
                    "ERP_Order_Total__c": Decimal(f"{100 + n}.50"),
                    "CurrencyIsoCode": "USD",
                    "Status": "Draft",
                    "EffectiveDate": "2026-03-01",
                },
            )
        )
    return ids


async def test_salesforce_pages_by_the_batch_size_it_is_asked_for_within_its_bounds(
    crm: SalesforceCrm, state: SandboxState, http: httpx.AsyncClient
):
    ids = seed_crm_orders(state, 450)
    sent = sent_requests(http)
    pages = await read_all(crm.list_orders, 50)  # below Salesforce's minimum of 200
    assert [len(p.items) for p in pages] == [200, 200, 50]
    assert {r.headers["sforce-query-options"] for r in sent} == {"batchSize=200"}
    assert sorted(r.record_id for p in pages for r in p.items) == sorted(ids)


async def test_salesforce_cursors_resume_where_the_page_ended(
    crm: SalesforceCrm, state: SandboxState
):
    state.salesforce.query_batch_size = 3  # the org pages smaller than asked
    ids = seed_crm_orders(state, 8)
    pages = await read_all(crm.list_orders, 200)
    assert [len(p.items) for p in pages] == [3, 3, 2]
    assert all(p.cursor and p.cursor.startswith("/services/data/v61.0/query/") for p in pages[:2])
    listed = [r.record_id for p in pages for r in p.items]
    assert sorted(listed) == sorted(ids) and len(set(listed)) == 8
    first = pages[0].items[0]
    assert first.system is System.CRM and first.keyed and first.quote_id is not None
    assert first.amount == Decimal("100.50") and first.currency == "USD" and first.live


async def test_salesforce_refuses_a_cursor_that_is_not_a_query_locator(crm: SalesforceCrm):
    with pytest.raises(RejectedError) as refused:
        await crm.list_orders("https://elsewhere.example/steal", 200)
    assert refused.value.code == "INVALID_CURSOR"
    with pytest.raises(RejectedError) as expired:
        await crm.list_orders("/services/data/v61.0/query/01g5eGONE-3", 200)
    assert expired.value.code == "INVALID_QUERY_LOCATOR"


async def test_salesforce_listing_failures_are_classified(crm: SalesforceCrm, state: SandboxState):
    acts = ReconcileCrmActivities(crm)
    inject(state, "salesforce", operation="query", status=403, code="REQUEST_LIMIT_EXCEEDED")
    error = await classified(lambda: acts.list_orders(ListPage()))
    assert error.type == FailureType.VENDOR_TRANSIENT and not error.non_retryable
    inject(state, "salesforce", operation="query", status=400, code="MALFORMED_QUERY")
    error = await classified(lambda: acts.list_orders(ListPage()))
    assert error.type == FailureType.VENDOR_REJECTED and error.non_retryable


# -- Stripe ----------------------------------------------------------------------------------


@pytest.fixture
def billing(http: httpx.AsyncClient) -> StripeBilling:
    return StripeBilling(http, base_url="http://sandbox/stripe", api_key=DEFAULT_TOKENS["stripe"])


def seed_subscriptions(state: SandboxState, count: int) -> list[str]:
    ids = []
    for n in range(count):
        sub_id = f"sub_{n:05d}"
        state.stripe.subscriptions[sub_id] = {
            "id": sub_id,
            "object": "subscription",
            "created": 1_700_000_000 + n,
            "customer": "cus_1",
            "currency": "eur",
            "status": "canceled" if n % 10 == 0 else "active",
            "metadata": {"revsync_key": f"q2c-Q{n}:subscription", "quote_id": f"Q{n}"},
        }
        ids.append(sub_id)
    return ids


async def test_stripe_pages_newest_first_with_starting_after_and_canceled_ones_too(
    billing: StripeBilling, state: SandboxState, http: httpx.AsyncClient
):
    ids = seed_subscriptions(state, 250)
    sent = sent_requests(http)
    pages = await read_all(billing.list_subscriptions, 500)  # Stripe's limit is 100
    assert [len(p.items) for p in pages] == [100, 100, 50]
    assert {r.url.params["limit"] for r in sent} == {"100"}
    assert {r.url.params["status"] for r in sent} == {"all"}
    assert [r.url.params.get("starting_after") for r in sent] == [None, "sub_00150", "sub_00050"]
    listed = [r.record_id for p in pages for r in p.items]
    assert listed == sorted(ids, reverse=True)
    cancelled = [r for p in pages for r in p.items if not r.live]
    assert len(cancelled) == 25 and {r.status for r in cancelled} == {"canceled"}
    first = pages[0].items[0]
    assert (first.quote_id, first.currency, first.customer_id) == ("Q249", "EUR", "cus_1")


async def test_stripe_refuses_an_unknown_cursor(billing: StripeBilling, state: SandboxState):
    seed_subscriptions(state, 3)
    with pytest.raises(RejectedError) as refused:
        await billing.list_subscriptions("sub_nothere", 10)
    assert refused.value.status == 400
    with pytest.raises(RejectedError):
        await billing.list_subscriptions("../customers", 10)


async def test_stripe_listing_failures_are_classified(billing: StripeBilling, state: SandboxState):
    acts = ReconcileBillingActivities(billing)
    inject(state, "stripe", operation="list_subscriptions", status=429)
    error = await classified(lambda: acts.list_subscriptions(ListPage()))
    assert error.type == FailureType.VENDOR_TRANSIENT and not error.non_retryable
    inject(state, "stripe", operation="list_subscriptions", status=400, code="parameter_unknown")
    error = await classified(lambda: acts.list_subscriptions(ListPage()))
    assert error.type == FailureType.VENDOR_REJECTED and error.non_retryable


# -- NetSuite --------------------------------------------------------------------------------


@pytest.fixture
def erp(http: httpx.AsyncClient) -> NetSuiteErp:
    return NetSuiteErp(
        http, base_url="http://sandbox/netsuite", access_token=DEFAULT_TOKENS["netsuite"]
    )


def seed_sales_orders(state: SandboxState, count: int) -> list[str]:
    ids = []
    for n in range(count):
        order_id = str(7001 + n)
        state.netsuite.sales_orders[order_id] = {
            "id": order_id,
            "tranId": f"SO{n}",
            "externalId": f"q2c-Q{n}:erp-order" if n % 7 else None,
            "otherRefNum": f"Q{n}",
            "entity": "301",
            "currency": "4",  # EUR
            "total": Decimal("999.95"),
            "tranDate": "2026-03-01",
            "memo": None,
            "orderStatus": "C" if n % 5 == 0 else "B",
        }
        ids.append(order_id)
    return ids


async def test_netsuite_pages_with_limit_and_offset_until_has_more_ends(
    erp: NetSuiteErp, state: SandboxState, http: httpx.AsyncClient
):
    ids = seed_sales_orders(state, 2500)
    sent = sent_requests(http)
    pages = await read_all(erp.list_sales_orders, 5000)  # NetSuite's limit is 1000
    assert [len(p.items) for p in pages] == [1000, 1000, 500]
    assert [p.cursor for p in pages] == ["1000:1000", "2000:1000", None]
    listings = [r for r in sent if b"SalesOrd" in r.content]  # not the currency lookup
    assert [r.url.params["offset"] for r in listings] == ["0", "1000", "2000"]
    assert {r.headers["prefer"] for r in listings} == {"transient"}
    assert [r.record_id for p in pages for r in p.items] == ids
    first, keyed = pages[0].items[0], pages[0].items[1]
    assert first.key is None and first.quote_id == "Q0"  # found by otherRefNum
    assert (first.status, first.live) == ("cancelled", False)
    assert keyed.keyed and keyed.live and keyed.amount == Decimal("999.95")
    assert keyed.currency == "EUR" and keyed.customer_id == "301"


async def test_netsuite_keeps_the_page_size_of_the_first_page(
    erp: NetSuiteErp, state: SandboxState
):
    seed_sales_orders(state, 7)
    first = await erp.list_sales_orders(None, 3)
    assert first.cursor == "3:3"
    second = await erp.list_sales_orders(first.cursor, 1000)  # the cursor decides
    assert [r.record_id for r in second.items] == ["7004", "7005", "7006"]
    with pytest.raises(RejectedError) as refused:
        await erp.list_sales_orders("2:3", 3)  # NetSuite: offset must be a multiple of limit
    assert refused.value.code == "INVALID_PARAMETER"
    with pytest.raises(RejectedError):
        await erp.list_sales_orders("eid:x", 3)


async def test_netsuite_listing_failures_are_classified(
    erp: NetSuiteErp, state: SandboxState, lossy: LossyTransport
):
    acts = ReconcileErpActivities(erp)
    inject(state, "netsuite", operation="suiteql", status=429, code="CONCURRENCY_LIMIT_EXCEEDED")
    error = await classified(lambda: acts.list_sales_orders(ListPage()))
    assert error.type == FailureType.VENDOR_TRANSIENT and not error.non_retryable
    # SuiteQL is a POST: an answer lost after sending is an unknown outcome (retried).
    lossy.lose("POST", "/suiteql")
    with pytest.raises(UnknownOutcomeError):
        await erp.list_sales_orders(None, 10)
    lossy.lose("POST", "/suiteql")
    error = await classified(lambda: acts.list_sales_orders(ListPage()))
    assert error.type == FailureType.VENDOR_UNKNOWN_OUTCOME and not error.non_retryable
    inject(state, "netsuite", operation="suiteql", status=400, code="INVALID_PARAMETER")
    error = await classified(lambda: acts.list_sales_orders(ListPage()))
    assert error.type == FailureType.VENDOR_REJECTED and error.non_retryable
