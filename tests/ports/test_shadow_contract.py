"""The shadow-mode gate, as part of the port contract: for every registered vendor of every
port, in shadow mode every write method of the port sends no write request to the vendor's
emulator (tests/shadow/audit.py says what a write request is), is recorded with its target,
difference, key and effect, and returns a result shaped like the real one that the saga's
next steps can use (the keyed reads see it); a keyed create whose record exists returns that
record. Switched to live, a saga's next write makes its recorded writes live under their
recorded keys, once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal as D
from pathlib import Path

import httpx
import pytest

from adapters import registry
from adapters.ports import BillingPort, CrmPort, ErpPort
from adapters.registry import Port
from adapters.shadow.build import store_of
from adapters.shadow.gate import GatedBilling, GatedCrm, GatedErp
from adapters.shadow.store import ShadowStore
from domain.customer import Customer
from domain.customer_master import MasterField
from domain.invoice import Invoice, InvoiceStatus, OneOffLine
from domain.order import (
    SalesOrder,
    SalesOrderStatus,
    Subscription,
    SubscriptionStatus,
    build_sales_order,
    build_subscription,
)
from domain.receivable import (
    CreditLine,
    PaymentApplication,
    ReceivableCredit,
    ReceivableState,
    ReceivableStatus,
    RevenueJournal,
)
from domain.shadow import ChangeState, Effect, RefusalSource, is_synthetic
from revsync.settings import Settings
from sandbox.app import SandboxState
from tests.adapters.lossy import LossyTransport
from tests.ports.contract import accepted_quote, seeded_customer
from tests.ports.emulators import BILLING_EMULATORS, CRM_EMULATORS, ERP_EMULATORS
from tests.shadow.audit import WriteAudit

QUOTE_ID = "0Q0SHADOW0000001"
ACCOUNT = seeded_customer().account_id


@dataclass
class Rig:
    settings: Settings
    audited: httpx.AsyncClient
    audit: WriteAudit
    store: ShadowStore


@pytest.fixture
def audit() -> WriteAudit:
    return WriteAudit()


@pytest.fixture
async def audited(lossy: LossyTransport, audit: WriteAudit) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=lossy, base_url="http://sandbox", event_hooks={"request": [audit.hook]}
    ) as client:
        yield client


def shadow_settings(settings: Settings, tmp_path: Path, **vendors: str) -> Settings:
    modes = {f"{vendor}_mode": "shadow" for vendor in vendors.values()}
    return settings.model_copy(
        update={"shadow_store": tmp_path / "shadow.sqlite3", **vendors, **modes}
    )


@pytest.fixture
def rig(settings: Settings, tmp_path: Path, audited: httpx.AsyncClient, audit: WriteAudit) -> Rig:
    store = store_of(settings.model_copy(update={"shadow_store": tmp_path / "shadow.sqlite3"}))
    return Rig(settings, audited, audit, store)


# Counters an emulator keeps about traffic (not records): they move with reads too.
TRAFFIC = ("governance", "throttl", "limit", "usage", "allocation", "requests")


def records_of(state: SandboxState, vendor: str) -> dict[str, object]:
    """What the vendor's emulator holds, without its traffic counters."""
    snapshot: dict[str, object] = getattr(state, vendor).snapshot()
    return {k: v for k, v in snapshot.items() if not any(t in k.lower() for t in TRAFFIC)}


def other_customer(account_id: str = "0015e00000SHADOW1") -> Customer:
    return seeded_customer().model_copy(
        update={"account_id": account_id, "name": "Schatten GmbH", "legal_entity": "Schatten GmbH"}
    )


def finalized_invoice(invoice_id: str = "in_shadow_1") -> Invoice:
    return Invoice(
        invoice_id=invoice_id,
        account_id=seeded_customer().account_id,
        currency="EUR",
        issue_date=date(2025, 3, 1),
        due_date=date(2025, 3, 31),
        status=InvoiceStatus.OPEN,
        lines=[
            OneOffLine(line_id="L1", sku="ONBOARD-STD", amount=D("100.00"), tax_amount=D("19.00"))
        ],
        subtotal=D("100.00"),
        tax=D("19.00"),
        total=D("119.00"),
    )


# -- CRM ----------------------------------------------------------------------------------


@pytest.mark.parametrize("vendor", registry.available(Port.CRM))
async def test_crm_writes_are_recorded_never_sent(
    vendor: str, rig: Rig, tmp_path: Path, http: httpx.AsyncClient, state: SandboxState
) -> None:
    emulator = CRM_EMULATORS[vendor]
    settings = shadow_settings(rig.settings, tmp_path, crm=vendor)
    crm: CrmPort = registry.build_crm(settings, rig.audited)
    assert isinstance(crm, GatedCrm) and crm.vendor == vendor
    quote_id = await emulator.new_quote(http, settings, emulator.account_id)
    status_before = emulator.quote_status(state, quote_id)
    held = await crm.get_account(emulator.account_id)
    rig.audit.reset()

    await crm.update_account_fields(
        emulator.account_id,
        {MasterField.EMAIL: "payables@new.example", MasterField.NAME: held.name},
        "customer-x:1",
    )
    order = dict(
        quote_id=quote_id,
        account_id=emulator.account_id,
        order_key=f"q2c-{quote_id}:crm-order",
        sales_order=SalesOrder(
            order_id="5501",
            external_id=f"q2c-{quote_id}:erp-order",
            customer_id="301",
            currency="EUR",
            total=D("12345.67"),
            status=SalesOrderStatus.PENDING_FULFILLMENT,
        ),
        subscription=Subscription(
            subscription_id="sub_1Q2c",
            customer_id="cus_9Z",
            currency="EUR",
            status=SubscriptionStatus.ACTIVE,
        ),
    )
    crm_order = await crm.record_order(**order)  # type: ignore[arg-type]
    assert await crm.record_order(**order) == crm_order  # type: ignore[arg-type]
    assert crm_order.startswith(f"shadow:{vendor}:")
    await crm.set_quote_status(quote_id, "Rejected", "ERP order refused")
    await crm.set_receivable_status(
        emulator.account_id,
        ReceivableStatus.CURRENT,
        "in_1",
        D("119.00"),
        "EUR",
        as_of=datetime(2025, 3, 1, tzinfo=UTC),
    )

    assert rig.audit.writes[vendor] == 0, rig.audit.seen
    assert rig.audit.requests[vendor] > 0  # it read: the account before its update
    assert emulator.records(state) == 0
    assert emulator.quote_status(state, quote_id) == status_before
    writes = rig.store.writes(vendor=vendor)
    assert [w.operation for w in writes] == [
        "update_account_fields",
        "record_order",
        "set_quote_status",
        "set_receivable_status",
    ]
    update = writes[0]
    assert update.target.read and update.effect is Effect.UPDATE
    states = {c.field: c.state for c in update.changes}
    assert states == {"email": ChangeState.CHANGED, "name": ChangeState.UNCHANGED}
    email = next(c for c in update.changes if c.field == "email")
    assert email.before == held.email and email.after == "payables@new.example"
    assert writes[1].effect is Effect.CREATE and writes[1].idempotency_key.endswith(":crm-order")


# -- ERP ----------------------------------------------------------------------------------


@pytest.mark.parametrize("vendor", registry.available(Port.ERP))
async def test_erp_writes_are_recorded_never_sent_and_the_saga_reads_them_back(
    vendor: str, rig: Rig, tmp_path: Path, state: SandboxState
) -> None:
    emulator = ERP_EMULATORS[vendor]
    settings = shadow_settings(rig.settings, tmp_path, erp=vendor)
    erp: ErpPort = registry.build_erp(settings, rig.audited)
    assert isinstance(erp, GatedErp) and erp.vendor == vendor
    snapshot = records_of(state, vendor)
    rig.audit.reset()

    key = "acct-0015e00000SHADOW1"
    customer_id = await erp.upsert_customer(other_customer(), key)
    assert (
        is_synthetic(customer_id)
        and await erp.upsert_customer(other_customer(), key) == customer_id
    )
    assert await erp.find_customer(key) == customer_id
    draft = build_sales_order(accepted_quote(QUOTE_ID), f"q2c-{QUOTE_ID}:erp-order")
    order = await erp.create_sales_order(draft, customer_id)
    assert is_synthetic(order.order_id) and order.customer_id == customer_id
    assert order.total == draft.total and order.status is SalesOrderStatus.PENDING_FULFILLMENT
    assert await erp.find_sales_order(draft.external_id) == order
    cancelled = await erp.cancel_sales_order(order.order_id, "rejected")
    assert cancelled.status is SalesOrderStatus.CANCELLED
    assert (await erp.find_sales_order(draft.external_id)) == cancelled
    await erp.update_customer_fields(customer_id, {MasterField.EMAIL: "ap@schatten.example"}, "c:1")

    invoice = finalized_invoice()
    receivable = await erp.post_receivable(invoice, customer_id, "i2r-in_shadow_1:receivable")
    assert is_synthetic(receivable.receivable_id) and receivable.amount_due == D("119.00")
    journal = await erp.post_revenue_journal(
        RevenueJournal(
            journal_id="in_shadow_1/L1/2025-03",
            invoice_id=invoice.invoice_id,
            line_id="L1",
            period="2025-03",
            amount=D("100.00"),
            currency="EUR",
        )
    )
    assert is_synthetic(journal.journal_entry_id)
    paid = await erp.apply_payment(
        PaymentApplication(
            payment_id="py_shadow_1",
            invoice_id=invoice.invoice_id,
            receivable_id=receivable.receivable_id,
            amount=D("59.50"),
            currency="EUR",
            paid_on=date(2025, 3, 10),
        )
    )
    assert paid.applied == D("59.50")
    half = await erp.find_receivable("i2r-in_shadow_1:receivable")
    assert half is not None and half.amount_due == D("59.50") and half.amount_paid == D("59.50")
    credit = await erp.credit_receivable(
        ReceivableCredit(
            external_id="cn_shadow_1",
            invoice_id=invoice.invoice_id,
            receivable_id=receivable.receivable_id,
            currency="EUR",
            lines=(CreditLine(line_id="L1", amount=D("10.00"), tax=D("1.90")),),
        )
    )
    assert credit.applied == D("11.90")
    reversed_ = await erp.reverse_receivable(
        receivable.receivable_id, "i2r-in_shadow_1:void", "voided"
    )
    assert reversed_.state is ReceivableState.REVERSED and reversed_.amount_due == 0

    assert rig.audit.writes[vendor] == 0, rig.audit.seen
    assert records_of(state, vendor) == snapshot
    writes = rig.store.writes(vendor=vendor)
    assert [w.operation for w in writes] == [
        "upsert_customer",
        "create_sales_order",
        "cancel_sales_order",
        "update_customer_fields",
        "post_receivable",
        "post_revenue_journal",
        "apply_payment",
        "credit_receivable",
        "reverse_receivable",
    ]
    assert writes[0].effect is Effect.CREATE and writes[0].target.read
    # Compared with the customer as shadow mode made it.
    (email,) = writes[3].changes
    assert (email.before, email.state) == (other_customer().email, ChangeState.CHANGED)
    assert [r.code for r in writes[-1].refusals] == ["PAYMENTS_APPLIED"]
    assert emulator.records(state) == 0


@pytest.mark.parametrize("vendor", registry.available(Port.ERP))
async def test_a_keyed_create_whose_record_exists_returns_it_and_records_a_no_op(
    vendor: str, rig: Rig, tmp_path: Path, http: httpx.AsyncClient, state: SandboxState
) -> None:
    live = registry.ERP_VENDORS[vendor](rig.settings, http)
    key = f"acct-{seeded_customer().account_id}"
    customer_id = await live.upsert_customer(seeded_customer(), key)
    draft = build_sales_order(accepted_quote(QUOTE_ID), f"q2c-{QUOTE_ID}:erp-order")
    booked = await live.create_sales_order(draft, customer_id)
    erp = registry.build_erp(shadow_settings(rig.settings, tmp_path, erp=vendor), rig.audited)
    rig.audit.reset()

    assert await erp.upsert_customer(seeded_customer(), key) == customer_id
    found = await erp.create_sales_order(draft, customer_id)
    assert found.order_id == booked.order_id
    cancelled = await erp.cancel_sales_order(found.order_id, "rejected")  # seen: shaped
    assert cancelled.status is SalesOrderStatus.CANCELLED

    assert rig.audit.writes[vendor] == 0, rig.audit.seen
    assert (await live.find_sales_order(draft.external_id)) == booked  # still live
    upsert, create, cancel = rig.store.writes(vendor=vendor)
    assert upsert.effect is Effect.UPDATE and upsert.target.record_id == customer_id
    assert create.effect is Effect.NOOP and create.result_id == booked.order_id
    assert cancel.effect is Effect.UPDATE
    assert ERP_EMULATORS[vendor].records(state) == 1


# -- billing ------------------------------------------------------------------------------


@pytest.mark.parametrize("vendor", registry.available(Port.BILLING))
async def test_billing_writes_are_recorded_never_sent(
    vendor: str, rig: Rig, tmp_path: Path, http: httpx.AsyncClient, state: SandboxState
) -> None:
    emulator = BILLING_EMULATORS[vendor]
    live = registry.BILLING_VENDORS[vendor](rig.settings, http)
    real_customer = await live.upsert_customer(seeded_customer(), f"q2c-{QUOTE_ID}:customer")
    draft = build_subscription(accepted_quote(QUOTE_ID), f"q2c-{QUOTE_ID}:subscription")
    real = await live.create_subscription(draft, real_customer)
    assert real.latest_invoice_id is not None
    billing: BillingPort = registry.build_billing(
        shadow_settings(rig.settings, tmp_path, billing=vendor), rig.audited
    )
    assert isinstance(billing, GatedBilling)
    snapshot = records_of(state, vendor)
    rig.audit.reset()

    assert await billing.upsert_customer(seeded_customer(), "k") == real_customer  # found
    new_customer = await billing.upsert_customer(other_customer(), "q2c-NEW:customer")
    assert is_synthetic(new_customer)
    assert await billing.find_customer(other_customer().account_id) == new_customer
    other = build_subscription(accepted_quote("0Q0SHADOW0000002"), "q2c-NEW:subscription")
    subscription = await billing.create_subscription(other, new_customer)
    assert is_synthetic(subscription.subscription_id)
    assert subscription.status is SubscriptionStatus.ACTIVE
    assert subscription.latest_invoice_id is None  # no synthetic invoice to void later
    assert await billing.find_subscription("q2c-NEW:subscription") == subscription
    assert (await billing.cancel_subscription(subscription.subscription_id, "r")).status is (
        SubscriptionStatus.CANCELED
    )
    existing = await billing.create_subscription(draft, real_customer)
    assert existing.subscription_id == real.subscription_id
    cancelled = await billing.cancel_subscription(real.subscription_id, "rejected")
    assert cancelled.status is SubscriptionStatus.CANCELED
    voided = await billing.void_invoice(real.latest_invoice_id)
    assert voided.invoice_id == real.latest_invoice_id
    await billing.update_customer_fields(
        real_customer, {MasterField.EMAIL: "ap@nordlicht.example"}, "c:2"
    )

    assert rig.audit.writes[vendor] == 0, rig.audit.seen
    assert records_of(state, vendor) == snapshot
    assert (await live.find_subscription(draft.idempotency_key)) == real
    ops = [(w.operation, w.effect) for w in rig.store.writes(vendor=vendor)]
    assert ops == [
        ("upsert_customer", Effect.NOOP),
        ("upsert_customer", Effect.CREATE),
        ("create_subscription", Effect.CREATE),
        ("cancel_subscription", Effect.UPDATE),
        ("create_subscription", Effect.NOOP),
        ("cancel_subscription", Effect.UPDATE),
        ("void_invoice", Effect.UPDATE),
        ("update_customer_fields", Effect.UPDATE),
    ]
    assert emulator.records(state) == 1


# -- from shadow to live --------------------------------------------------------------------


@pytest.mark.parametrize("vendor", registry.available(Port.ERP))
async def test_switched_to_live_a_saga_makes_its_recorded_writes_once_under_their_keys(
    vendor: str, rig: Rig, tmp_path: Path, state: SandboxState
) -> None:
    emulator = ERP_EMULATORS[vendor]
    shadow = shadow_settings(rig.settings, tmp_path, erp=vendor)
    erp = registry.build_erp(shadow, rig.audited)
    key = "acct-0015e00000SHADOW1"
    customer_id = await erp.upsert_customer(other_customer(), key)
    draft = build_sales_order(accepted_quote(QUOTE_ID), f"q2c-{QUOTE_ID}:erp-order")
    await erp.create_sales_order(draft, customer_id)
    assert rig.audit.writes[vendor] == 0

    live_settings = shadow.model_copy(update={f"{vendor}_mode": "live"})
    live = registry.build_erp(live_settings, rig.audited)
    assert isinstance(live, GatedErp)  # a store exists: the live vendor keeps the gate
    # The saga's step runs again (an operator's retry), with the ids it holds: synthetic.
    booked = await live.create_sales_order(draft, customer_id)
    assert not is_synthetic(booked.order_id) and not is_synthetic(booked.customer_id)
    assert emulator.records(state) == 1
    again = await live.create_sales_order(draft, customer_id)
    assert again.order_id == booked.order_id and emulator.records(state) == 1
    assert await live.upsert_customer(other_customer(), key) == booked.customer_id
    writes = {w.operation: w for w in rig.store.writes(vendor=vendor)}
    assert writes["upsert_customer"].materialized_id == booked.customer_id
    assert writes["create_sales_order"].materialized_id == booked.order_id


async def test_a_live_write_that_carries_another_vendors_shadow_id_is_held_back(
    rig: Rig, tmp_path: Path, http: httpx.AsyncClient, state: SandboxState
) -> None:
    shadow = shadow_settings(rig.settings, tmp_path, erp="netsuite")
    erp = registry.build_erp(shadow, rig.audited)
    customer_id = await erp.upsert_customer(other_customer(), "acct-0015e00000SHADOW1")
    draft = build_sales_order(accepted_quote(QUOTE_ID), f"q2c-{QUOTE_ID}:erp-order")
    order = await erp.create_sales_order(draft, customer_id)
    crm = registry.build_crm(shadow, rig.audited)  # Salesforce live, NetSuite in shadow
    assert isinstance(crm, GatedCrm)
    quote_id = await CRM_EMULATORS["salesforce"].new_quote(http, shadow, "0015e00000NordDE1")
    rig.audit.reset()

    crm_order = await crm.record_order(
        quote_id=quote_id,
        account_id="0015e00000NordDE1",
        order_key=f"q2c-{quote_id}:crm-order",
        sales_order=order,
        subscription=Subscription(
            subscription_id="sub_1", customer_id="cus_1", currency="EUR", status="active"
        ),
    )
    assert is_synthetic(crm_order)
    assert rig.audit.writes["salesforce"] == 0, rig.audit.seen
    (held,) = rig.store.writes(vendor="salesforce")
    assert held.held_back and held.depends_on == [order.order_id, customer_id]


async def test_sap_refusals_come_from_its_sales_order_simulation_and_nothing_is_saved(
    rig: Rig, tmp_path: Path, http: httpx.AsyncClient, state: SandboxState
) -> None:
    """SAP offers a validate-only call (the Sales Order Simulation API): shadow mode reports
    what SAP would refuse, with SAP's own code, and saves nothing; a valid order is
    simulated and accepted."""
    live = registry.ERP_VENDORS["sap"](rig.settings, http)
    customer_id = await live.upsert_customer(seeded_customer(), f"acct-{ACCOUNT}")
    erp = registry.build_erp(shadow_settings(rig.settings, tmp_path, erp="sap"), rig.audited)
    good = build_sales_order(accepted_quote(QUOTE_ID), f"q2c-{QUOTE_ID}:erp-order")
    line = good.lines[0].model_copy(update={"sku": "NO-SUCH-SKU"})
    bad = build_sales_order(accepted_quote("0Q0SHADOW0000003"), "q2c-0Q0SHADOW0000003:erp-order")
    bad = bad.model_copy(update={"lines": [line, *bad.lines[1:]]})
    rig.audit.reset()

    await erp.create_sales_order(good, customer_id)
    await erp.create_sales_order(bad, customer_id)

    assert rig.audit.writes["sap"] == 0, rig.audit.seen
    simulated = [s for s in rig.audit.seen if "Simulation" in s]
    assert simulated == []  # counted as reads, never as writes
    accepted, refused = rig.store.writes(vendor="sap")
    assert accepted.refusals == []
    (refusal,) = refused.refusals
    assert (refusal.source, refusal.code) == (RefusalSource.VENDOR, "V1/320")
    assert ERP_EMULATORS["sap"].records(state) == 0
