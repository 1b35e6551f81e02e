"""The customer-master port methods of each adapter, against the vendor emulators: golden
fields written in the vendor's own field names, keyed, lookups by the golden id."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest

from adapters.billing.stripe import StripeBilling
from adapters.crm.salesforce import SalesforceCrm
from adapters.erp.netsuite import NetSuiteErp
from adapters.errors import NotFoundError, RejectedError
from adapters.ports import BillingPort, CrmPort, ErpPort
from domain.customer import Address
from domain.customer_master import FieldValue, MasterField, PaymentMethodState
from domain.money import Money
from sandbox.app import SandboxState, create_app
from tests.workflows.fakes import CUSTOMER

ACCOUNT = "0015e00000AcmeUS1"
MOVED = Address(line1="1 Market St", line2="Floor 3", city="San Francisco", region="CA",
                postal_code="94105", country="US")  # fmt: skip


@pytest.fixture
def state() -> SandboxState:
    return SandboxState()


@pytest.fixture
async def http(state: SandboxState) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        yield client


async def test_salesforce_writes_golden_fields_onto_the_account(
    http: httpx.AsyncClient, state: SandboxState
) -> None:
    crm: CrmPort = SalesforceCrm(
        http,
        base_url="http://sandbox/salesforce",
        api_version="v61.0",
        access_token="sandbox-salesforce-token",
    )
    changes: dict[MasterField, FieldValue] = {
        MasterField.EMAIL: "billing@acme.example",
        MasterField.CREDIT_LIMIT: Money(amount=Decimal("50000.00"), currency="USD"),
        MasterField.BILLING_ADDRESS: MOVED,
        MasterField.PAYMENT_METHOD_STATE: PaymentMethodState.EXPIRED,
    }
    await crm.update_account_fields(ACCOUNT, changes, "cm-key")
    await crm.update_account_fields(ACCOUNT, changes, "cm-key")  # the same again: no change

    account = state.salesforce.records["Account"][ACCOUNT]
    assert account["Billing_Email__c"] == "billing@acme.example"
    assert Decimal(str(account["Credit_Limit__c"])) == Decimal("50000.00")
    assert account["Credit_Limit_Currency__c"] == "USD"
    assert account["BillingStreet"] == "1 Market St\nFloor 3"
    assert account["BillingCountryCode"] == "US"
    assert account["Payment_Method_Status__c"] == "expired"
    with pytest.raises(RejectedError, match="owner"):
        await crm.update_account_fields(ACCOUNT, {MasterField.OWNER: "005xx"}, "cm-key-2")


async def test_stripe_finds_the_customer_by_account_and_updates_it_keyed(
    http: httpx.AsyncClient, state: SandboxState
) -> None:
    billing: BillingPort = StripeBilling(
        http, base_url="http://sandbox/stripe", api_key="sk_test_sandbox"
    )
    assert await billing.find_customer(ACCOUNT) is None
    customer_id = await billing.upsert_customer(CUSTOMER, "q2c-Q-1:billing-customer")
    assert await billing.find_customer(ACCOUNT) == customer_id

    changes: dict[MasterField, FieldValue] = {
        MasterField.LEGAL_ENTITY: "Acme Robotics Holdings, Inc.",
        MasterField.TAX_ID: "94-7654321",
        MasterField.BILLING_ADDRESS: MOVED,
    }
    await billing.update_customer_fields(customer_id, changes, "cm-acme:billing:abc")
    # a retry with the same key replays; Stripe would refuse the key with other parameters
    await billing.update_customer_fields(customer_id, changes, "cm-acme:billing:abc")
    customer = state.stripe.customers[customer_id]
    assert customer["name"] == "Acme Robotics Holdings, Inc."
    assert customer["metadata"]["tax_id"] == "94-7654321"
    assert customer["metadata"]["revsync_account_id"] == ACCOUNT  # merged, not replaced
    assert customer["address"]["line2"] == "Floor 3"
    other = {MasterField.LEGAL_ENTITY: "Someone Else"}
    with pytest.raises(RejectedError):
        await billing.update_customer_fields(customer_id, other, "cm-acme:billing:abc")

    await billing.update_customer_fields(
        customer_id, {MasterField.BILLING_ADDRESS: None}, "cm-acme:billing:def"
    )
    assert state.stripe.customers[customer_id]["address"] is None


async def test_netsuite_finds_the_customer_by_external_id_and_patches_it(
    http: httpx.AsyncClient, state: SandboxState
) -> None:
    erp: ErpPort = NetSuiteErp(
        http, base_url="http://sandbox/netsuite", access_token="sandbox-netsuite-token"
    )
    assert await erp.find_customer(f"acct-{ACCOUNT}") is None
    customer_id = await erp.upsert_customer(CUSTOMER, f"acct-{ACCOUNT}")
    assert await erp.find_customer(f"acct-{ACCOUNT}") == customer_id

    changes: dict[MasterField, FieldValue] = {
        MasterField.NAME: "Acme Robotics Group",
        MasterField.WEBSITE: "https://acme-robotics.example",
        MasterField.EMAIL: "billing@acme.example",
        MasterField.BILLING_ADDRESS: MOVED,
    }
    await erp.update_customer_fields(customer_id, changes, "cm-acme:erp:abc")
    record = state.netsuite.customers[customer_id]
    assert record["companyName"] == "Acme Robotics Group"
    assert record["url"] == "https://acme-robotics.example"
    assert record["email"] == "billing@acme.example"
    (address,) = record["addressBook"]  # replaced, not appended
    assert (address["addr1"], address["addr2"], address["country"]) == (
        "1 Market St",
        "Floor 3",
        "US",
    )
    limit = Money(amount=Decimal(1), currency="USD")
    with pytest.raises(RejectedError, match="credit_limit"):
        await erp.update_customer_fields(customer_id, {MasterField.CREDIT_LIMIT: limit}, "k")
    with pytest.raises(NotFoundError):
        await erp.update_customer_fields("999999", {MasterField.NAME: "x"}, "k")


async def test_netsuite_writes_the_tax_id_as_a_suitetax_registration(
    http: httpx.AsyncClient, state: SandboxState
) -> None:
    """REST web services have no legacy ``vatRegNumber``: the golden tax id is the customer's
    tax registration, in the country it already has one in (else its billing country), or in
    the country of a billing address changed with it; clearing it removes the registration."""
    erp: ErpPort = NetSuiteErp(
        http, base_url="http://sandbox/netsuite", access_token="sandbox-netsuite-token"
    )
    customer_id = await erp.upsert_customer(CUSTOMER, f"acct-{ACCOUNT}")
    record = state.netsuite.customers[customer_id]
    assert record["taxRegistration"] == [
        {"nexusCountry": "US", "taxRegistrationNumber": "94-1234567"}
    ]

    await erp.update_customer_fields(customer_id, {MasterField.TAX_ID: "94-7654321"}, "k1")
    assert record["taxRegistration"] == [
        {"nexusCountry": "US", "taxRegistrationNumber": "94-7654321"}
    ]  # replaced, not appended
    assert "vatRegNumber" not in record

    berlin = Address(line1="Unter den Linden 1", city="Berlin", postal_code="10117", country="DE")
    await erp.update_customer_fields(
        customer_id, {MasterField.TAX_ID: "DE811907980", MasterField.BILLING_ADDRESS: berlin}, "k2"
    )
    assert record["taxRegistration"] == [
        {"nexusCountry": "DE", "taxRegistrationNumber": "DE811907980"}
    ]

    await erp.update_customer_fields(customer_id, {MasterField.TAX_ID: None}, "k3")
    assert record["taxRegistration"] == []
    await erp.update_customer_fields(customer_id, {MasterField.TAX_ID: "DE999999999"}, "k4")
    assert record["taxRegistration"] == [  # no registration left: the billing country
        {"nexusCountry": "DE", "taxRegistrationNumber": "DE999999999"}
    ]
