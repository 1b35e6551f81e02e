"""The part of the port contract every port shares: how a keyed create ends in each error
class of the failure taxonomy (ARCHITECTURE.md), asserted in port terms only.

Each port's suite defines a :class:`Subject` (its keyed create and lookup, driven through the
port) and a ``subject`` fixture parameterised over the port's registered adapters, and
subclasses :class:`ErrorClassContract` to run these tests against every one of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Protocol

import pytest

from adapters.breaker import CIRCUIT_OPEN
from adapters.errors import (
    ConfigurationError,
    NotFoundError,
    RejectedError,
    TransientError,
    UnknownOutcomeError,
)
from domain.customer import Address, Customer
from domain.quote import BillingType, Quote, QuoteLine
from sandbox.app import SandboxState
from sandbox.faults import FaultRule, FaultsRequest
from sandbox.seed import ACCOUNTS, CATALOG
from tests.adapters.lossy import LossyTransport
from tests.ports.emulators import Emulator

ACCOUNT_ID = "0015e00000NordDE1"


def seeded_customer(account_id: str = ACCOUNT_ID) -> Customer:
    """The CRM account as the sagas carry it (every emulator seeds the same accounts)."""
    (account,) = [a for a in ACCOUNTS if a["Id"] == account_id]
    return Customer(
        account_id=account["Id"],
        name=account["Name"],
        legal_entity=account["Legal_Entity__c"],
        tax_id=account["Tax_Id__c"],
        email=account["Billing_Email__c"],
        billing_address=Address(
            line1=account["BillingStreet"],
            city=account["BillingCity"],
            region=account["BillingState"],
            postal_code=account["BillingPostalCode"],
            country=account["BillingCountryCode"],
        ),
        currency=account["CurrencyIsoCode"],
    )


def accepted_quote(quote_id: str, currency: str = "EUR") -> Quote:
    """A quote of catalog items at list price: a recurring platform line with a discount and
    a one-time onboarding line."""

    def line(line_id: str, sku: str, quantity: str, discount: str) -> QuoteLine:
        item = next(i for i in CATALOG if i["itemId"] == sku)
        return QuoteLine(
            line_id=line_id,
            sku=sku,
            description=f"{sku} line",
            quantity=Decimal(quantity),
            unit_price=Decimal(item["prices"][currency]),
            discount_percent=Decimal(discount),
            billing=BillingType(item["billing"]),
        )

    return Quote(
        quote_id=quote_id,
        account_id=ACCOUNT_ID,
        owner="maya.chen@seller.example",
        currency=currency,
        start_date=date(2025, 3, 1),
        accepted_at=datetime(2025, 2, 20, 9, 30, tzinfo=UTC),
        lines=[line("L1", "PLAT-CORE", "20", "10"), line("L2", "ONBOARD-STD", "1", "0")],
    )


class Subject(Protocol):
    """One registered adapter of a port, with what its keyed create needs prepared."""

    @property
    def emulator(self) -> Emulator: ...

    @property
    def key(self) -> str:
        """The external/idempotency key of the create."""
        ...

    async def create(self) -> str:
        """The port's keyed create; the id of the record it made (or found)."""
        ...

    async def find(self) -> str | None:
        """The port's lookup of that record by its key."""
        ...


def inject(state: SandboxState, emulator: Emulator, **rule: Any) -> None:
    """A fault on the emulator's keyed create (``phase="before"``: nothing applied)."""
    fault = FaultRule(vendor=emulator.vendor, operation=emulator.create_operation, **rule)
    state.faults.configure(FaultsRequest(faults=[fault]))


@dataclass(frozen=True)
class _Ctx:
    subject: Subject
    state: SandboxState

    def records(self) -> int:
        return self.subject.emulator.records(self.state)


class ErrorClassContract:
    """Every error class of a keyed create, for whichever adapter ``subject`` is."""

    async def test_transient_server_error_creates_nothing_and_a_retry_creates_once(
        self, subject: Subject, state: SandboxState
    ) -> None:
        ctx = _Ctx(subject, state)
        inject(state, subject.emulator, status=503)
        with pytest.raises(TransientError) as caught:
            await subject.create()
        assert caught.value.status == 503
        assert caught.value.code != CIRCUIT_OPEN
        assert ctx.records() == 0

        created = await subject.create()
        assert ctx.records() == 1
        assert await subject.find() == created

    async def test_a_validation_error_is_rejected_with_the_vendor_code(
        self, subject: Subject, state: SandboxState
    ) -> None:
        status, code = subject.emulator.validation_error
        inject(state, subject.emulator, status=status, code=code, message="field is invalid")
        with pytest.raises(RejectedError) as caught:
            await subject.create()
        assert not isinstance(caught.value, NotFoundError)
        assert (caught.value.status, caught.value.code) == (status, code)
        assert "field is invalid" in caught.value.message
        assert _Ctx(subject, state).records() == 0

    async def test_a_lost_answer_is_an_unknown_outcome_the_keyed_retry_settles(
        self, subject: Subject, state: SandboxState, lossy: LossyTransport
    ) -> None:
        ctx = _Ctx(subject, state)
        lossy.lose(*subject.emulator.create_request(subject.key))
        with pytest.raises(UnknownOutcomeError):
            await subject.create()
        assert lossy.lost, "the create's answer was not lost: wrong create_request"
        assert ctx.records() == 1  # applied, answer lost

        again = await subject.create()
        assert ctx.records() == 1
        assert await subject.find() == again

    async def test_throttled_with_retry_after_carries_it_and_never_opens_the_breaker(
        self, subject: Subject, state: SandboxState
    ) -> None:
        # More throttled answers than any breaker threshold: each still reaches the vendor.
        inject(state, subject.emulator, status=429, retry_after=7, times=8)
        for _ in range(8):
            with pytest.raises(TransientError) as caught:
                await subject.create()
            assert caught.value.status == 429
            assert caught.value.code != CIRCUIT_OPEN
            assert caught.value.retry_after == 7.0
        assert _Ctx(subject, state).records() == 0
        assert await subject.create()

    async def test_the_vendors_own_throttle_answer_is_flow_control_never_a_failure(
        self, subject: Subject, state: SandboxState
    ) -> None:
        # The vendor's own throttle signal (Salesforce's 403 REQUEST_LIMIT_EXCEEDED,
        # Dataverse's 0x80072322, ...), more often than any breaker threshold: the adapter
        # reads it as throttling, once, and the breaker lets every retry reach the vendor.
        answer = subject.emulator.throttle
        inject(
            state,
            subject.emulator,
            status=answer.status,
            code=answer.code,
            message=answer.message,
            retry_after=answer.retry_after,
            times=8,
        )
        for _ in range(8):
            with pytest.raises(TransientError) as caught:
                await subject.create()
            assert caught.value.code != CIRCUIT_OPEN
            assert caught.value.status == answer.status
            assert caught.value.throttle is not None
            assert caught.value.throttle.kind == answer.kind
            expected = None if answer.retry_after is None else float(answer.retry_after)
            assert caught.value.retry_after == expected
        assert _Ctx(subject, state).records() == 0
        assert await subject.create()

    async def test_throttled_answers_neither_count_as_failures_nor_reset_them(
        self, subject: Subject, state: SandboxState
    ) -> None:
        # 4 failures, then throttling, then a 5th failure: the breaker opens (5 in a row), as
        # the throttled answers between them said nothing about the vendor being up or down.
        # Every call is faulted (a create may look its key up first: a success would reset).
        answer = subject.emulator.throttle
        for status, code, times in (
            (503, None, 4),
            (answer.status, answer.code, 3),
            (503, None, 1),
        ):
            rule = FaultRule(vendor=subject.emulator.vendor, status=status, code=code, times=times)
            state.faults.configure(FaultsRequest(faults=[rule]))
            for _ in range(times):
                with pytest.raises(TransientError) as caught:
                    await subject.create()
                assert caught.value.code != CIRCUIT_OPEN
        with pytest.raises(TransientError) as fast:
            await subject.create()
        assert fast.value.code == CIRCUIT_OPEN

    async def test_throttled_without_retry_after_leaves_the_delay_to_the_backoff(
        self, subject: Subject, state: SandboxState
    ) -> None:
        inject(state, subject.emulator, status=429)
        with pytest.raises(TransientError) as caught:
            await subject.create()
        assert caught.value.status == 429
        assert caught.value.retry_after is None
        assert _Ctx(subject, state).records() == 0

    async def test_expired_credentials_are_an_auth_error_never_a_rejection(
        self, subject: Subject, state: SandboxState
    ) -> None:
        subject.emulator.expire_credentials(state)
        # Transient (a token the adapter refreshes: retried, parked after the budget) or a
        # ConfigurationError (a static key nothing can renew, Stripe's: parked at once);
        # never a rejection, which would unwind the customer's order.
        with pytest.raises((TransientError, ConfigurationError)) as caught:
            await subject.create()
        assert caught.value.status == 401
        assert caught.value.code != CIRCUIT_OPEN
        assert _Ctx(subject, state).records() == 0
