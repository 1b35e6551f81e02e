"""The billing port contract, run against every registered billing adapter and its
emulator."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest

from activities.billing import BillingActivities
from adapters import registry
from adapters.errors import NotFoundError
from adapters.ports import BillingPort
from adapters.registry import Port
from domain.contracts import CancelKeyedSubscription
from domain.order import InvoiceStatus, SubscriptionDraft, SubscriptionStatus, build_subscription
from revsync.settings import Settings
from sandbox.app import SandboxState
from tests.ports.contract import ErrorClassContract, Subject, accepted_quote, seeded_customer
from tests.ports.emulators import BILLING_EMULATORS, Emulator

QUOTE_ID = "0Q0PORT00000001"


@dataclass
class BillingSubject:
    billing: BillingPort
    emulator: Emulator
    customer_id: str
    draft: SubscriptionDraft

    @property
    def key(self) -> str:
        return self.draft.idempotency_key

    async def create(self) -> str:
        return (
            await self.billing.create_subscription(self.draft, self.customer_id)
        ).subscription_id

    async def find(self) -> str | None:
        found = await self.billing.find_subscription(self.key)
        return None if found is None else found.subscription_id


def _is_a_subject(subject: BillingSubject) -> Subject:
    return subject  # mypy checks BillingSubject is a contract Subject


def test_every_registered_vendor_has_an_emulator() -> None:
    assert sorted(BILLING_EMULATORS) == sorted(registry.available(Port.BILLING))


@pytest.fixture(params=registry.available(Port.BILLING))
async def subject(
    request: pytest.FixtureRequest, settings: Settings, http: httpx.AsyncClient
) -> BillingSubject:
    vendor: str = request.param
    billing = registry.BILLING_VENDORS[vendor](settings, http)
    assert billing.vendor == vendor
    customer_id = await billing.upsert_customer(seeded_customer(), f"q2c-{QUOTE_ID}:customer")
    draft = build_subscription(accepted_quote(QUOTE_ID), f"q2c-{QUOTE_ID}:subscription")
    return BillingSubject(billing, BILLING_EMULATORS[vendor], customer_id, draft)


async def test_the_customer_is_created_once_per_account(subject: BillingSubject) -> None:
    again = await subject.billing.upsert_customer(seeded_customer(), f"q2c-{QUOTE_ID}:customer")
    assert again == subject.customer_id
    assert await subject.billing.find_customer(seeded_customer().account_id) == again


async def test_create_then_again_is_one_subscription(
    subject: BillingSubject, state: SandboxState
) -> None:
    first = await subject.billing.create_subscription(subject.draft, subject.customer_id)
    second = await subject.billing.create_subscription(subject.draft, subject.customer_id)
    assert second.subscription_id == first.subscription_id
    assert first.customer_id == subject.customer_id
    assert first.currency == subject.draft.currency
    assert subject.emulator.records(state) == 1


async def test_the_subscription_is_found_by_its_key(subject: BillingSubject) -> None:
    assert await subject.find() is None
    created = await subject.create()
    assert await subject.find() == created
    assert await subject.billing.find_subscription(f"q2c-{QUOTE_ID}:other") is None


async def test_cancelling_twice_is_a_no_op(subject: BillingSubject, state: SandboxState) -> None:
    created = await subject.create()
    cancelled = await subject.billing.cancel_subscription(created, "ERP order refused")
    assert cancelled.subscription_id == created
    assert cancelled.status is SubscriptionStatus.CANCELED
    again = await subject.billing.cancel_subscription(created, "ERP order refused")
    assert again.status is SubscriptionStatus.CANCELED
    assert again.subscription_id == created
    assert subject.emulator.records(state) == 1
    found = await subject.billing.find_subscription(subject.key)
    assert found is not None and found.status is SubscriptionStatus.CANCELED


async def test_cancelling_an_unknown_subscription_is_not_found(subject: BillingSubject) -> None:
    with pytest.raises(NotFoundError):
        await subject.billing.cancel_subscription("sub_doesnotexist000000", "compensating")


async def test_the_undo_by_key_cancels_what_billing_made_and_finds_nothing_otherwise(
    subject: BillingSubject,
) -> None:
    """``billing.cancel_keyed_subscription``, the undo of a provisioning whose answer was
    lost: the subscription cancelled, its first invoice (if any) voided."""
    acts = BillingActivities(subject.billing)
    request = CancelKeyedSubscription(idempotency_key=subject.key, reason="answer lost")
    assert (await acts.cancel_keyed_subscription(request)).found is False
    created = await subject.billing.create_subscription(subject.draft, subject.customer_id)
    undone = await acts.cancel_keyed_subscription(request)
    assert (undone.found, undone.record_id) == (True, created.subscription_id)
    assert undone.status == SubscriptionStatus.CANCELED.value
    assert undone.voided_invoice_id == created.latest_invoice_id
    if created.latest_invoice_id is not None:
        invoice = await subject.billing.get_invoice(created.latest_invoice_id)
        assert invoice.status is InvoiceStatus.VOID
    again = await acts.cancel_keyed_subscription(request)
    assert (again.found, again.status) == (True, undone.status)


class TestBillingErrorClasses(ErrorClassContract):
    """Each error class of billing's keyed create (create_subscription)."""
