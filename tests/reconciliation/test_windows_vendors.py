"""Vendor limits a window listing must live with, each against its emulator: a Salesforce
query locator that expired between two pages, HubSpot's 10,000-result cap on a search, and
SuiteQL's 100,000-result cap on paging a query. A large read takes longer; it never fails
and never misses a record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from adapters.crm.hubspot import HubSpotCrm
from adapters.crm.salesforce import SalesforceCrm
from adapters.erp.netsuite import NetSuiteErp
from domain.reconciliation import Basis, Window
from sandbox import netsuite as netsuite_emulator
from sandbox.app import DEFAULT_TOKENS, SandboxState
from sandbox.seed import ACCOUNTS
from tests.reconciliation.test_listing import seed_crm_orders

NOW = datetime.now(UTC).replace(microsecond=0)
AROUND_NOW = Window(
    basis=Basis.CHANGED, start=NOW - timedelta(hours=1), end=NOW + timedelta(hours=1)
)


async def test_an_expired_query_locator_is_read_again_past_the_last_id(
    http: httpx.AsyncClient, state: SandboxState
):
    crm = SalesforceCrm(
        http,
        base_url="http://sandbox/salesforce",
        api_version="v61.0",
        access_token=DEFAULT_TOKENS["salesforce"],
    )
    state.salesforce.query_batch_size = 3
    ids = seed_crm_orders(state, 8)
    moment = [0.0]
    state.salesforce.clock = lambda: moment[0]
    first = await crm.list_orders(None, 200, window=AROUND_NOW)
    assert len(first.items) == 3 and first.cursor is not None and first.total == 8
    moment[0] += 16 * 60  # the locator sat idle longer than Salesforce keeps it
    locator = first.cursor.split("#")[0]
    expired = await http.get(
        f"/salesforce{locator}",
        headers={"Authorization": f"Bearer {DEFAULT_TOKENS['salesforce']}"},
    )
    assert expired.status_code == 400
    assert expired.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"
    read = list(first.items)
    cursor: str | None = first.cursor
    while cursor is not None:
        page = await crm.list_orders(cursor, 200, window=AROUND_NOW)
        read.extend(page.items)
        cursor = page.cursor
    assert sorted(r.record_id for r in read) == sorted(ids)


async def test_hubspot_reads_a_window_past_ten_thousand_results(
    http: httpx.AsyncClient, state: SandboxState
):
    store = state.hubspot
    for n in range(10_050):
        store._insert(
            "orders",
            store._new_id(),
            {"revsync_order_key": f"q2c-Q{n}:crm-order", "revsync_quote_id": f"Q{n}"},
        )
    crm = HubSpotCrm(
        http, base_url="http://sandbox/hubspot", access_token=DEFAULT_TOKENS["hubspot"]
    )
    # Paging a search with `after` stops at HubSpot's cap...
    refused = await http.post(
        "/hubspot/crm/v3/objects/orders/search",
        json={"limit": 200, "after": "9900", "filterGroups": []},
        headers={"Authorization": f"Bearer {DEFAULT_TOKENS['hubspot']}"},
    )
    assert refused.status_code == 400
    # ...the adapter pages past the last id instead and reads every record once.
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await crm.list_orders(cursor, 200, window=AROUND_NOW)
        if pages == 0:
            assert page.total == 10_050
        pages += 1
        seen.extend(r.record_id for r in page.items)
        cursor = page.cursor
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 10_050
    assert pages == 51


async def test_netsuite_pages_by_id_and_never_offsets_past_the_cap(
    http: httpx.AsyncClient, state: SandboxState, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(netsuite_emulator, "MAX_QUERY_RESULTS", 50)
    ns = state.netsuite
    stamp = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    customer = ACCOUNTS[0]["Id"]
    for n in range(120):
        order_id = str(next(ns._order_ids))
        ns.sales_orders[order_id] = {
            "id": order_id,
            "tranId": f"SO{order_id}",
            "externalId": f"q2c-Q{n}:erp-order",
            "entity": customer,
            "currency": "1",
            "tranDate": NOW.date().isoformat(),
            "orderStatus": "B",
            "otherRefNum": f"Q{n}",
            "item": [],
            "total": Decimal("10.00"),
            "createdDate": stamp,
            "lastModifiedDate": stamp,
        }
    erp = NetSuiteErp(
        http, base_url="http://sandbox/netsuite", access_token=DEFAULT_TOKENS["netsuite"]
    )
    # An offset listing stops at the cap (the next offset is refused)...
    offset_read = []
    cursor: str | None = None
    while True:
        page = await erp.list_sales_orders(cursor, 10)
        offset_read.extend(page.items)
        cursor = page.cursor
        if cursor is None:
            break
    assert len(offset_read) == 50
    # ...a window pages past the last id and reads them all.
    window_read = []
    cursor = None
    while True:
        page = await erp.list_sales_orders(cursor, 10, window=AROUND_NOW)
        window_read.extend(page.items)
        cursor = page.cursor
        if cursor is None:
            break
    assert len(window_read) == len({r.record_id for r in window_read}) == 120
