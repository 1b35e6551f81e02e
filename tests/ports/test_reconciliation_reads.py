"""The reconciliation reads of every port, against every registered adapter and its
emulator: a record made through the port is listed in a window of the time it changed (and
was created) in, not in another window, and found by its subject with a keyed lookup;
listings of a window page to their end; a subject the vendor holds nothing of is absent."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from adapters import registry
from adapters.registry import Port
from domain.order import build_sales_order, build_subscription
from domain.reconciliation import Basis, Page, Window
from revsync.settings import Settings
from sandbox.app import SandboxState
from tests.adapters.test_invoices_netsuite import invoice as finalized_invoice
from tests.ports.contract import ACCOUNT_ID, accepted_quote, seeded_customer
from tests.ports.emulators import CRM_EMULATORS
from tests.ports.test_crm_contract import CrmSubject

DAY = timedelta(days=1)


def around_now(basis: Basis) -> Window:
    """A window holding now, and today's midnight (SAP keeps some times as a day only)."""
    now = datetime.now(UTC).replace(microsecond=0)
    return Window(basis=basis, start=now - DAY, end=now + DAY)


def long_ago(basis: Basis) -> Window:
    """A window touching neither today nor yesterday."""
    now = datetime.now(UTC).replace(microsecond=0)
    return Window(basis=basis, start=now - 10 * DAY, end=now - 8 * DAY)


Lister = Callable[..., Awaitable[Page[Any]]]


async def listed(lister: Lister, window: Window, page_size: int = 2) -> list[Any]:
    """Every record of the window, page by page (small pages: the cursor is exercised)."""
    items: list[Any] = []
    cursor: str | None = None
    for _ in range(200):
        page = await lister(cursor, page_size, window=window)
        items.extend(page.items)
        if page.cursor is None:
            return items
        cursor = page.cursor
    raise AssertionError("the window listing never ends")


def ids(records: list[Any]) -> set[str]:
    return {r.record_id for r in records}


# -- CRM ---------------------------------------------------------------------------------------


@pytest.fixture(params=registry.available(Port.CRM))
async def crm_subject(
    request: pytest.FixtureRequest, settings: Settings, http: httpx.AsyncClient
) -> CrmSubject:
    vendor: str = request.param
    emulator = CRM_EMULATORS[vendor]
    crm = registry.CRM_VENDORS[vendor](settings, http)
    quote_id = await emulator.new_quote(http, settings, emulator.account_id)
    return CrmSubject(crm, emulator, quote_id, key=f"q2c-{quote_id}:crm-order")


async def test_crm_orders_are_listed_by_window_and_looked_up_by_quote(crm_subject: CrmSubject):
    crm = crm_subject.crm
    order_id = await crm_subject.create()
    for basis in Basis:
        found = [r for r in await listed(crm.list_orders, around_now(basis)) if r.key]
        assert order_id in ids(found), basis
        (record,) = [r for r in found if r.record_id == order_id]
        assert record.quote_id == crm_subject.quote_id
        assert record.created_at is not None and record.changed_at is not None
        assert order_id not in ids(await listed(crm.list_orders, long_ago(basis)))
    looked = await crm.lookup_orders([crm_subject.quote_id, "0Q0NOSUCHQUOTE1"])
    assert order_id in ids(looked)
    assert all(r.quote_id == crm_subject.quote_id for r in looked)
    assert await crm.lookup_orders([]) == []


async def test_crm_accounts_are_listed_when_changed_and_looked_up_by_id(crm_subject: CrmSubject):
    crm = crm_subject.crm
    account_id = crm_subject.emulator.account_id
    window = around_now(Basis.CHANGED)
    assert account_id not in ids(await listed(crm.list_accounts, window))
    from domain.customer_master import MasterField

    await crm.update_account_fields(
        account_id, {MasterField.WEBSITE: "https://nordlicht.example"}, "contract-website"
    )
    (changed,) = [a for a in await listed(crm.list_accounts, window) if a.record_id == account_id]
    assert changed.account_id == account_id and changed.changed_at is not None
    (looked,) = await crm.lookup_accounts([account_id])
    assert looked.fields == changed.fields
    assert MasterField.WEBSITE in looked.fields


# -- ERP ---------------------------------------------------------------------------------------

ERP_QUOTE = "0Q0PORT00000003"


@pytest.fixture(params=registry.available(Port.ERP))
async def erp(request: pytest.FixtureRequest, settings: Settings, http: httpx.AsyncClient) -> Any:
    return registry.ERP_VENDORS[request.param](settings, http)


async def test_erp_sales_orders_customers_and_receivables_by_window_and_key(erp: Any):
    customer_id = await erp.upsert_customer(seeded_customer(), f"acct-{ACCOUNT_ID}")
    draft = build_sales_order(accepted_quote(ERP_QUOTE), f"q2c-{ERP_QUOTE}:erp-order")
    order = await erp.create_sales_order(draft, customer_id)
    receivable = await erp.post_receivable(
        finalized_invoice("in_1Contract"), customer_id, "i2r-in_1Contract:receivable"
    )
    for basis in Basis:
        window = around_now(basis)
        orders = await listed(erp.list_sales_orders, window)
        assert order.order_id in ids(orders), basis
        assert customer_id in ids(await listed(erp.list_customers, window)), basis
        receivables = await listed(erp.list_receivables, window)
        assert receivable.receivable_id in ids(receivables), basis
        assert all(r.created_at is not None and r.changed_at is not None for r in orders)
        past = long_ago(basis)
        assert order.order_id not in ids(await listed(erp.list_sales_orders, past))
        assert customer_id not in ids(await listed(erp.list_customers, past))
        assert receivable.receivable_id not in ids(await listed(erp.list_receivables, past))
    (found,) = await erp.lookup_sales_orders([ERP_QUOTE, "0Q0NOSUCHQUOTE1"])
    assert found.record_id == order.order_id and found.quote_id == ERP_QUOTE
    (customer,) = await erp.lookup_customers([ACCOUNT_ID, "0015e00000NoSuchXX"])
    assert customer.record_id == customer_id and customer.account_id == ACCOUNT_ID
    (posted,) = await erp.lookup_receivables(["in_1Contract", "in_NoSuch"])
    assert posted.record_id == receivable.receivable_id and posted.invoice_id == "in_1Contract"
    assert posted.amount == receivable.total


# -- billing -----------------------------------------------------------------------------------

BILLING_QUOTE = "0Q0PORT00000004"


@pytest.fixture(params=registry.available(Port.BILLING))
async def billing(
    request: pytest.FixtureRequest, settings: Settings, http: httpx.AsyncClient
) -> Any:
    return registry.BILLING_VENDORS[request.param](settings, http)


async def test_billing_subscriptions_and_customers_by_window_and_key(billing: Any):
    customer_id = await billing.upsert_customer(seeded_customer(), f"q2c-{BILLING_QUOTE}:customer")
    draft = build_subscription(accepted_quote(BILLING_QUOTE), f"q2c-{BILLING_QUOTE}:subscription")
    subscription = await billing.create_subscription(draft, customer_id)
    for basis in Basis:
        window = around_now(basis)
        subscriptions = await listed(billing.list_subscriptions, window)
        assert subscription.subscription_id in ids(subscriptions), basis
        (record,) = [r for r in subscriptions if r.record_id == subscription.subscription_id]
        assert record.quote_id == BILLING_QUOTE and record.created_at is not None
        assert customer_id in ids(await listed(billing.list_customers, window)), basis
        past = long_ago(basis)
        assert subscription.subscription_id not in ids(
            await listed(billing.list_subscriptions, past)
        )
        assert customer_id not in ids(await listed(billing.list_customers, past))
    looked = await billing.lookup_subscriptions([BILLING_QUOTE, "0Q0NOSUCHQUOTE1"])
    assert ids(looked) == {subscription.subscription_id}
    (customer,) = await billing.lookup_customers([ACCOUNT_ID, "0015e00000NoSuchXX"])
    assert customer.record_id == customer_id and customer.account_id == ACCOUNT_ID


async def test_billing_invoices_by_window_and_key(billing: Any, state: SandboxState):
    customer_id = await billing.upsert_customer(seeded_customer(), f"q2c-{BILLING_QUOTE}:customer")
    draft = build_subscription(accepted_quote(BILLING_QUOTE), f"q2c-{BILLING_QUOTE}:subscription")
    await billing.create_subscription(draft, customer_id)
    invoices = await listed(billing.list_invoices, around_now(Basis.CREATED))
    assert invoices, "creating a subscription invoices its first period"
    assert ids(invoices) == ids(await listed(billing.list_invoices, around_now(Basis.CHANGED)))
    assert not await listed(billing.list_invoices, long_ago(Basis.CREATED))
    first = invoices[0]
    (found,) = await billing.lookup_invoices([first.invoice_id])
    assert found.record_id == first.record_id and found.amount == first.amount
    assert await billing.lookup_invoices(["in_NoSuchInvoice0"]) == []
