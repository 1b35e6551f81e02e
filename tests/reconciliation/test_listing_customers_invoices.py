"""Customer and invoice listings against the emulators, one page at a time as each vendor
pages (Salesforce ``nextRecordsUrl``, Stripe ``starting_after``, NetSuite SuiteQL
``offset``): every record once, linked to its CRM account, fields as fingerprints of what the
system holds; invoices and receivables in major units; failures classified."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest

from activities.reconciliation import ReconcileBillingActivities, ReconcileErpActivities
from adapters.billing.stripe import StripeBilling
from adapters.crm.salesforce import SalesforceCrm
from adapters.erp.netsuite import NetSuiteErp
from domain.customer_master import MasterField
from domain.money import Money
from domain.reconciliation import ListPage, Page, System, fingerprint
from domain.saga import FailureType
from sandbox.app import DEFAULT_TOKENS, SandboxState
from sandbox.seed import ACCOUNTS
from tests.reconciliation.test_listing import classified, inject, sent_requests


async def read_all(lister: Callable[[str | None, int], Awaitable[Page[Any]]], size: int):
    pages = [await lister(None, size)]
    while pages[-1].cursor is not None:
        assert len(pages) < 100, "the cursor never ends"
        pages.append(await lister(pages[-1].cursor, size))
    return pages


# -- Salesforce accounts ---------------------------------------------------------------------


@pytest.fixture
def crm(http: httpx.AsyncClient) -> SalesforceCrm:
    return SalesforceCrm(
        http,
        base_url="http://sandbox/salesforce",
        api_version="v61.0",
        access_token=DEFAULT_TOKENS["salesforce"],
    )


async def test_salesforce_lists_every_account_page_by_page_with_its_golden_fields(
    crm: SalesforceCrm, state: SandboxState
):
    state.salesforce.query_batch_size = 3
    made = [
        state.salesforce.create("Account", {"Name": f"Extra {n}", "Website": "https://x.example"})
        for n in range(5)
    ]
    pages = await read_all(crm.list_accounts, 200)
    assert [len(p.items) for p in pages[:-1]] == [3] * (len(pages) - 1)
    listed = [a for p in pages for a in p.items]
    ids = [a.record_id for a in listed]
    assert len(ids) == len(set(ids)) == len(ACCOUNTS) + 5
    assert set(made) <= set(ids) and {a["Id"] for a in ACCOUNTS} <= set(ids)
    acme = next(a for a in listed if a.record_id == ACCOUNTS[0]["Id"])
    assert acme.system is System.CRM and acme.account_id == acme.record_id
    assert acme.fields[MasterField.NAME] == fingerprint(MasterField.NAME, ACCOUNTS[0]["Name"])
    extra = next(a for a in listed if a.record_id == made[0])
    assert extra.fields[MasterField.WEBSITE] == fingerprint(MasterField.WEBSITE, "x.example")


# -- Stripe customers and invoices ---------------------------------------------------------


@pytest.fixture
def billing(http: httpx.AsyncClient) -> StripeBilling:
    return StripeBilling(http, base_url="http://sandbox/stripe", api_key=DEFAULT_TOKENS["stripe"])


def seed_customers(state: SandboxState, count: int) -> list[str]:
    ids = []
    for n in range(count):
        customer_id = f"cus_{n:04d}"
        state.stripe.customers[customer_id] = {
            "id": customer_id,
            "object": "customer",
            "created": 1_700_000_000 + n,
            "name": f"Company {n} GmbH",
            "email": f"ap{n}@example.com",
            "description": f"Company {n}",
            "address": None,
            "invoice_settings": {"default_payment_method": None},
            # Every fifth one was made by hand in Stripe: linked to no CRM account.
            "metadata": {} if n % 5 == 0 else {"revsync_account_id": f"ACC{n}"},
        }
        ids.append(customer_id)
    return ids


async def test_stripe_lists_every_customer_newest_first_linked_by_metadata(
    billing: StripeBilling, state: SandboxState, http: httpx.AsyncClient
):
    ids = seed_customers(state, 130)
    sent = sent_requests(http)
    pages = await read_all(billing.list_customers, 1000)
    assert [len(p.items) for p in pages] == [100, 30]
    assert [r.url.params.get("starting_after") for r in sent] == [None, "cus_0030"]
    listed = [c for p in pages for c in p.items]
    assert [c.record_id for c in listed] == sorted(ids, reverse=True)
    unlinked = [c for c in listed if c.account_id is None]
    assert len(unlinked) == 26
    seven = next(c for c in listed if c.record_id == "cus_0007")
    assert seven.account_id == "ACC7" and seven.system is System.BILLING
    assert seven.fields[MasterField.EMAIL] == fingerprint(MasterField.EMAIL, "AP7@example.com")
    assert seven.fields[MasterField.LEGAL_ENTITY] == fingerprint(
        MasterField.LEGAL_ENTITY, "company 7 gmbh"
    )
    assert seven.fields[MasterField.PAYMENT_METHOD_STATE] == fingerprint(
        MasterField.PAYMENT_METHOD_STATE, "missing"
    )
    # Billing's description is quote-to-cash's label, not the golden name: not compared.
    assert MasterField.NAME not in seven.fields


def seed_invoices(state: SandboxState) -> None:
    def invoice(n: int, status: str, currency: str, total: int, remaining: int) -> None:
        invoice_id = f"in_{n:03d}"
        state.stripe.invoices[invoice_id] = {
            "id": invoice_id,
            "object": "invoice",
            "created": 1_700_000_000 + n,
            "status": status,
            "currency": currency,
            "total": total,
            "amount_remaining": remaining,
            "lines": {"object": "list", "data": [], "has_more": False},
        }

    for n in range(3):
        invoice(n, "draft", "eur", 1000, 1000)
    invoice(3, "open", "eur", 12050, 12050)
    invoice(4, "paid", "jpy", 5000, 0)
    invoice(5, "void", "isk", 990000, 0)  # ISK goes over the wire with two decimals


async def test_stripe_lists_finalized_invoices_in_major_units_reading_past_drafts(
    billing: StripeBilling, state: SandboxState
):
    seed_invoices(state)
    pages = await read_all(billing.list_invoices, 2)
    assert [len(p.items) for p in pages] == [2, 1, 0]  # the last page held drafts only
    by_id = {i.record_id: i for p in pages for i in p.items}
    assert sorted(by_id) == ["in_003", "in_004", "in_005"]
    assert (by_id["in_003"].amount, by_id["in_003"].amount_due) == (
        Decimal("120.50"),
        Decimal("120.50"),
    )
    assert by_id["in_003"].status == "open" and by_id["in_003"].currency == "EUR"
    assert by_id["in_004"].amount == Decimal("5000") and by_id["in_004"].status == "paid"
    assert by_id["in_005"].amount == Decimal("9900") and by_id["in_005"].currency == "ISK"


async def test_stripe_customer_and_invoice_listing_failures_are_classified(
    billing: StripeBilling, state: SandboxState
):
    acts = ReconcileBillingActivities(billing)
    inject(state, "stripe", operation="list_customers", status=500)
    error = await classified(lambda: acts.list_customers(ListPage()))
    assert error.type == FailureType.VENDOR_TRANSIENT and not error.non_retryable
    inject(state, "stripe", operation="list_invoices", status=400, code="parameter_unknown")
    error = await classified(lambda: acts.list_invoices(ListPage()))
    assert error.type == FailureType.VENDOR_REJECTED and error.non_retryable


# -- NetSuite customers and receivables ------------------------------------------------------


@pytest.fixture
def erp(http: httpx.AsyncClient) -> NetSuiteErp:
    return NetSuiteErp(
        http, base_url="http://sandbox/netsuite", access_token=DEFAULT_TOKENS["netsuite"]
    )


async def test_netsuite_lists_customers_with_offset_paging_linked_by_external_id(
    erp: NetSuiteErp, state: SandboxState
):
    store = state.netsuite
    before = len(store.customers)
    for n in range(7):
        external_id = f"acct-ACC{n}" if n % 3 else f"legacy-{n}"
        store.upsert_customer(
            external_id,
            {
                "companyName": f"Company {n}",
                "taxRegistration": {
                    "items": [
                        {"nexusCountry": {"id": "DE"}, "taxRegistrationNumber": f"DE 000 00{n}"}
                    ]
                },
                "currency": {"id": "4"},
            },
            set(),
        )
    made = store.customers[max(store.customers, key=int)]
    made["creditLimit"] = 5000
    pages = await read_all(erp.list_customers, 3)
    listed = [c for p in pages for c in p.items]
    assert len(listed) == before + 7 and len({c.record_id for c in listed}) == len(listed)
    assert all(len(p.items) == 3 for p in pages[:-1])
    linked = {c.account_id: c for c in listed if c.account_id and c.account_id.startswith("ACC")}
    assert sorted(linked) == ["ACC1", "ACC2", "ACC4", "ACC5"]
    one = linked["ACC1"]
    assert one.system is System.ERP
    assert one.fields[MasterField.NAME] == fingerprint(MasterField.NAME, "company 1")
    # The tax id is a tax registration (a sublist, as the billing address): not compared.
    assert MasterField.TAX_ID not in one.fields
    last = next(c for c in listed if c.record_id == made["id"])
    assert last.fields[MasterField.CREDIT_LIMIT] == fingerprint(
        MasterField.CREDIT_LIMIT, Money(amount=Decimal(5000), currency="EUR")
    )


async def test_netsuite_lists_receivables_named_by_their_billing_invoice(
    erp: NetSuiteErp, state: SandboxState, http: httpx.AsyncClient
):
    def receivable(n: int, external_id: str | None, other: str | None, due: str) -> None:
        invoice_id = str(9001 + n)
        state.netsuite.invoices[invoice_id] = {
            "id": invoice_id,
            "tranId": f"INV{n}",
            "externalId": external_id,
            "otherRefNum": other,
            "entity": "301",
            "currency": "4",
            "total": Decimal("120.50"),
            "amountRemaining": Decimal(due),
            "status": "A" if Decimal(due) > 0 else "B",
            "tranDate": "2026-03-01",
        }

    receivable(0, "i2r-in_0:receivable", "in_0", "120.50")
    receivable(1, None, "in_1", "0")  # made by hand, naming the invoice
    receivable(2, None, None, "0")  # not revsync's
    receivable(3, "i2r-in_3:receivable", None, "20.00")
    sent = sent_requests(http)
    pages = await read_all(erp.list_receivables, 2)
    listings = [r for r in sent if b"CustInvc" in r.content]
    assert [r.url.params["offset"] for r in listings] == ["0", "2"]
    listed = {r.invoice_id: r for p in pages for r in p.items}
    assert sorted(listed) == ["in_0", "in_1", "in_3"]
    assert listed["in_0"].status == "open" and listed["in_0"].amount == Decimal("120.50")
    assert listed["in_1"].status == "closed" and listed["in_1"].key is None
    assert listed["in_3"].amount_due == Decimal("20.00") and listed["in_3"].currency == "EUR"


async def test_netsuite_customer_listing_failures_are_classified(
    erp: NetSuiteErp, state: SandboxState
):
    acts = ReconcileErpActivities(erp)
    inject(state, "netsuite", operation="suiteql", status=503)
    error = await classified(lambda: acts.list_customers(ListPage()))
    assert error.type == FailureType.VENDOR_TRANSIENT and not error.non_retryable
