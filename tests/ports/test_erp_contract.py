"""The ERP port contract, run against every registered ERP adapter and its emulator."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest

from activities.erp import ErpActivities
from adapters import registry
from adapters.ports import ErpPort
from adapters.registry import Port
from domain.contracts import CancelKeyedSalesOrder
from domain.order import SalesOrderDraft, SalesOrderStatus, build_sales_order
from revsync.settings import Settings
from sandbox.app import SandboxState
from tests.ports.contract import ErrorClassContract, Subject, accepted_quote, seeded_customer
from tests.ports.emulators import ERP_EMULATORS, Emulator

QUOTE_ID = "0Q0PORT00000002"
CUSTOMER_KEY = f"acct-{seeded_customer().account_id}"


@dataclass
class ErpSubject:
    erp: ErpPort
    emulator: Emulator
    customer_id: str
    draft: SalesOrderDraft

    @property
    def key(self) -> str:
        return self.draft.external_id

    async def create(self) -> str:
        return (await self.erp.create_sales_order(self.draft, self.customer_id)).order_id

    async def find(self) -> str | None:
        found = await self.erp.find_sales_order(self.key)
        return None if found is None else found.order_id


def _is_a_subject(subject: ErpSubject) -> Subject:
    return subject  # mypy checks ErpSubject is a contract Subject


def test_every_registered_vendor_has_an_emulator() -> None:
    assert sorted(ERP_EMULATORS) == sorted(registry.available(Port.ERP))


@pytest.fixture(params=registry.available(Port.ERP))
async def subject(
    request: pytest.FixtureRequest, settings: Settings, http: httpx.AsyncClient
) -> ErpSubject:
    vendor: str = request.param
    erp = registry.ERP_VENDORS[vendor](settings, http)
    assert erp.vendor == vendor
    customer_id = await erp.upsert_customer(seeded_customer(), CUSTOMER_KEY)
    draft = build_sales_order(accepted_quote(QUOTE_ID), f"q2c-{QUOTE_ID}:erp-order")
    return ErpSubject(erp, ERP_EMULATORS[vendor], customer_id, draft)


async def test_the_customer_is_upserted_by_its_external_key(subject: ErpSubject) -> None:
    assert await subject.erp.upsert_customer(seeded_customer(), CUSTOMER_KEY) == subject.customer_id
    assert await subject.erp.find_customer(CUSTOMER_KEY) == subject.customer_id
    assert await subject.erp.find_customer("acct-0015e00000NoSuchXX") is None


async def test_create_then_again_is_one_sales_order(
    subject: ErpSubject, state: SandboxState
) -> None:
    first = await subject.erp.create_sales_order(subject.draft, subject.customer_id)
    second = await subject.erp.create_sales_order(subject.draft, subject.customer_id)
    assert second.order_id == first.order_id
    assert first.external_id == subject.key
    assert first.total == subject.draft.total
    assert first.currency == subject.draft.currency
    assert subject.emulator.records(state) == 1


async def test_the_sales_order_is_found_by_its_key(subject: ErpSubject) -> None:
    assert await subject.find() is None
    created = await subject.create()
    assert await subject.find() == created
    assert await subject.erp.find_sales_order(f"q2c-{QUOTE_ID}:other") is None


async def test_cancelling_twice_is_a_no_op(subject: ErpSubject, state: SandboxState) -> None:
    created = await subject.create()
    cancelled = await subject.erp.cancel_sales_order(created, "billing refused the order")
    assert cancelled.order_id == created
    assert cancelled.status is SalesOrderStatus.CANCELLED
    again = await subject.erp.cancel_sales_order(created, "billing refused the order")
    assert again.status is SalesOrderStatus.CANCELLED
    assert again.order_id == created
    assert subject.emulator.records(state) == 1
    found = await subject.erp.find_sales_order(subject.key)
    assert found is not None and found.status is SalesOrderStatus.CANCELLED


async def test_the_undo_by_key_cancels_what_the_erp_made_and_finds_nothing_otherwise(
    subject: ErpSubject,
) -> None:
    """``erp.cancel_keyed_sales_order``, the undo of a booking whose answer was lost."""
    acts = ErpActivities(subject.erp)
    request = CancelKeyedSalesOrder(external_id=subject.key, reason="answer lost, unwound")
    assert (await acts.cancel_keyed_sales_order(request)).found is False
    created = await subject.create()
    undone = await acts.cancel_keyed_sales_order(request)
    assert (undone.found, undone.record_id) == (True, created)
    assert undone.status == SalesOrderStatus.CANCELLED.value
    again = await acts.cancel_keyed_sales_order(request)
    assert (again.found, again.record_id, again.status) == (True, created, undone.status)


class TestErpErrorClasses(ErrorClassContract):
    """Each error class of the ERP's keyed create (create_sales_order)."""
