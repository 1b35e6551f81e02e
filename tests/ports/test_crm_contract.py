"""The CRM port contract, run against every registered CRM adapter and its emulator."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import httpx
import pytest

from adapters import registry
from adapters.errors import TransientError
from adapters.ports import CrmPort
from adapters.registry import Port
from domain.order import SalesOrder, SalesOrderStatus, Subscription, SubscriptionStatus
from revsync.settings import Settings
from sandbox.app import SandboxState
from tests.ports.contract import ErrorClassContract, Subject
from tests.ports.emulators import CRM_EMULATORS, CrmEmulator

REJECTED = "Rejected"  # the status the saga's CRM compensation writes (activities/crm.py)


@dataclass
class CrmSubject:
    crm: CrmPort
    emulator: CrmEmulator
    quote_id: str
    key: str

    async def create(self) -> str:
        return await self.crm.record_order(
            quote_id=self.quote_id,
            account_id=self.emulator.account_id,
            order_key=self.key,
            sales_order=SalesOrder(
                order_id="5501",
                external_id=f"q2c-{self.quote_id}:erp-order",
                customer_id="301",
                currency="EUR",
                total=Decimal("12345.67"),
                status=SalesOrderStatus.PENDING_FULFILLMENT,
            ),
            subscription=Subscription(
                subscription_id="sub_1Q2c",
                customer_id="cus_9Z",
                currency="EUR",
                status=SubscriptionStatus.ACTIVE,
            ),
        )

    async def find(self) -> str | None:
        return await find_order(self.crm, self.key)


async def find_order(crm: CrmPort, key: str) -> str | None:
    """The CRM's order record carrying revsync's ``key``, through the port's listing."""
    cursor: str | None = None
    while True:
        page = await crm.list_orders(cursor, 200)
        for record in page.items:
            if record.key == key:
                return record.record_id
        if page.cursor is None:
            return None
        cursor = page.cursor


def _is_a_subject(subject: CrmSubject) -> Subject:
    return subject  # mypy checks CrmSubject is a contract Subject


def test_every_registered_vendor_has_an_emulator() -> None:
    assert sorted(CRM_EMULATORS) == sorted(registry.available(Port.CRM))


@pytest.fixture(params=registry.available(Port.CRM))
async def subject(
    request: pytest.FixtureRequest, settings: Settings, http: httpx.AsyncClient
) -> CrmSubject:
    vendor: str = request.param
    emulator = CRM_EMULATORS[vendor]
    crm = registry.CRM_VENDORS[vendor](settings, http)
    assert crm.vendor == vendor
    quote_id = await emulator.new_quote(http, settings, emulator.account_id)
    return CrmSubject(crm, emulator, quote_id, key=f"q2c-{quote_id}:crm-order")


async def test_record_order_then_again_is_one_record(
    subject: CrmSubject, state: SandboxState
) -> None:
    first = await subject.create()
    assert await subject.create() == first
    assert subject.emulator.records(state) == 1


async def test_the_order_is_found_by_its_key(subject: CrmSubject) -> None:
    created = await subject.create()
    assert await subject.find() == created
    assert await find_order(subject.crm, f"q2c-{subject.quote_id}:no-such-order") is None


async def test_marking_the_quote_rejected_twice_is_a_no_op(
    subject: CrmSubject, state: SandboxState
) -> None:
    await subject.crm.set_quote_status(subject.quote_id, REJECTED, "ERP order refused")
    assert subject.emulator.quote_status(state, subject.quote_id) == REJECTED
    await subject.crm.set_quote_status(subject.quote_id, REJECTED, "ERP order refused")
    assert subject.emulator.quote_status(state, subject.quote_id) == REJECTED
    assert subject.emulator.records(state) == 0


async def test_a_lookup_with_expired_credentials_is_transient(
    subject: CrmSubject, state: SandboxState
) -> None:
    subject.emulator.expire_credentials(state)
    with pytest.raises(TransientError) as caught:
        await subject.crm.get_account(subject.emulator.account_id)
    assert caught.value.status == 401


class TestCrmErrorClasses(ErrorClassContract):
    """Each error class of the CRM's keyed create (record_order)."""
