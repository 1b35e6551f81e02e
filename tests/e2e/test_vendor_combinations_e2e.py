"""Quote-to-cash, unchanged, over several choices of CRM, billing and ERP vendor.

Each combination runs the whole stack (real dev server, the workers built from
``REVSYNC_CRM``/``REVSYNC_BILLING``/``REVSYNC_ERP``, the gateway over HTTP, every emulator).
What the saga left in each system is read back through the ports themselves (built by the
registry, as the workers build them), so the assertions are the same for every vendor.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from adapters import registry
from adapters.ports import BillingPort, CrmPort, ErpPort
from domain.order import SalesOrderStatus, SubscriptionStatus
from domain.reconciliation import DriftKind, ReportStatus
from domain.stages import OrderStage
from revsync.demo import accepted_quote
from sandbox.faults import FaultRule
from sandbox.quotes import account_currency, quote_payload
from tests.e2e.stack import Stack, running_stack
from tests.e2e.test_failures_e2e import inject
from tests.e2e.test_quote_to_cash_e2e import deliver, finished
from tests.ports.emulators import BILLING_EMULATORS, CRM_EMULATORS, ERP_EMULATORS
from tests.ports.test_crm_contract import find_order
from tests.reconciliation.test_e2e import reconcile_now, visible

pytestmark = pytest.mark.e2e

# (crm, billing, erp): the default, and every other vendor in at least one combination.
COMBINATIONS = [
    ("salesforce", "stripe", "netsuite"),
    ("hubspot", "zuora", "sap"),
    ("salesforce", "zuora", "dynamics"),
    ("hubspot", "stripe", "dynamics"),
]


@dataclass
class Vendors:
    stack: Stack
    crm_name: str
    billing_name: str
    erp_name: str
    crm: CrmPort
    billing: BillingPort
    erp: ErpPort
    http: httpx.AsyncClient

    async def new_quote(self) -> dict[str, object]:
        """A quote accepted in the chosen CRM, as ``revsync demo`` makes one, and the
        payload the CPQ sends for it."""
        seed_account = "0015e00000NordDE1"
        quote_id, account_id = await accepted_quote(self.http, self.stack.settings, seed_account)
        return quote_payload(
            quote_id, account_id=account_id, currency=account_currency(seed_account)
        )


@pytest.fixture(scope="module", params=COMBINATIONS, ids="-".join)
async def vendors(request: pytest.FixtureRequest) -> AsyncIterator[Vendors]:
    crm, billing, erp = request.param
    async with (
        running_stack(vendors={"crm": crm, "billing": billing, "erp": erp}) as stack,
        httpx.AsyncClient(timeout=30) as http,
    ):
        yield Vendors(
            stack,
            crm,
            billing,
            erp,
            registry.CRM_VENDORS[crm](stack.settings, http),
            registry.BILLING_VENDORS[billing](stack.settings, http),
            registry.ERP_VENDORS[erp](stack.settings, http),
            http,
        )


async def test_a_quote_is_booked_once_in_every_system(vendors: Vendors) -> None:
    stack = vendors.stack
    payload = await vendors.new_quote()
    quote_id = str(payload["quote_id"])
    verdicts = [(await deliver(stack, payload)).json()["status"] for _ in range(2)]
    assert verdicts == ["started", "duplicate"]

    status = await finished(stack, quote_id)
    assert status.stage is OrderStage.BOOKED, status

    state = stack.sandbox.state
    assert CRM_EMULATORS[vendors.crm_name].records(state) == 1
    assert BILLING_EMULATORS[vendors.billing_name].records(state) == 1
    assert ERP_EMULATORS[vendors.erp_name].records(state) == 1

    order = await vendors.erp.find_sales_order(f"q2c-{quote_id}:erp-order")
    assert order is not None
    assert order.order_id == status.erp_order_id
    assert order.total == status.amount
    assert order.status is not SalesOrderStatus.CANCELLED
    subscription = await vendors.billing.find_subscription(f"q2c-{quote_id}:subscription")
    assert subscription is not None
    assert subscription.subscription_id == status.subscription_id
    assert subscription.status is SubscriptionStatus.ACTIVE
    assert await find_order(vendors.crm, f"q2c-{quote_id}:crm-order") == status.crm_order_id


async def test_a_billing_rejection_cancels_the_erp_order_and_rejects_the_quote(
    vendors: Vendors,
) -> None:
    stack = vendors.stack
    crm = CRM_EMULATORS[vendors.crm_name]
    billing = BILLING_EMULATORS[vendors.billing_name]
    payload = await vendors.new_quote()
    quote_id = str(payload["quote_id"])
    status_code, code = billing.validation_error
    inject(
        stack,
        FaultRule(
            vendor=vendors.billing_name,
            operation=billing.create_operation,
            status=status_code,
            code=code,
            message="payment method refused",
        ),
    )
    assert (await deliver(stack, payload)).status_code == 202

    status = await finished(stack, quote_id)
    assert status.stage is OrderStage.COMPENSATED, status
    assert "refused" in (status.reason or "")
    order = await vendors.erp.find_sales_order(f"q2c-{quote_id}:erp-order")
    assert order is not None
    assert order.status is SalesOrderStatus.CANCELLED
    assert await vendors.billing.find_subscription(f"q2c-{quote_id}:subscription") is None
    assert crm.quote_status(stack.sandbox.state, quote_id) == "Rejected"
    assert await find_order(vendors.crm, f"q2c-{quote_id}:crm-order") is None


async def test_reconciliation_finds_every_system_in_agreement(vendors: Vendors) -> None:
    """The listings of every port read back what the sagas above and this one wrote, and the
    vendors' mappings agree with each other: a reconciliation run finds no order or customer
    drift."""
    stack = vendors.stack
    payload = await vendors.new_quote()
    quote_id = str(payload["quote_id"])
    assert (await deliver(stack, payload)).status_code == 202
    assert (await finished(stack, quote_id)).stage is OrderStage.BOOKED
    await visible(stack, {quote_id: OrderStage.BOOKED})

    _, report = await reconcile_now(stack)
    assert report.status is ReportStatus.DONE, report.error
    drift = [item.model_dump(mode="json") for item in report.items if item.invoice_id is None]
    assert drift == []
    # The subscriptions' first invoices: no invoice webhook reaches this stack, so no
    # invoice-to-revenue saga posted them, and reconciliation says exactly that.
    assert {item.kind for item in report.items} <= {DriftKind.MISSING_IN_ERP}
    assert report.omitted == 0
    assert report.quotes >= 3
    assert all(report.scanned.get(system, 0) > 0 for system in ("crm", "billing", "erp")), (
        report.scanned
    )
