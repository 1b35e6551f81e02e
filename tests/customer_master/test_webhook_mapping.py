"""Vendor customer changes as golden-field change events, routed to their golden id."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from adapters.webhooks.customer_changes import (
    ErpCustomerChanged,
    RoutingError,
    from_erp,
    from_salesforce,
    from_stripe,
)
from adapters.webhooks.salesforce import parse_outbound_message, sample_outbound_message
from adapters.webhooks.stripe import StripeEvent
from domain.customer import Address
from domain.customer_master import MasterField, PaymentMethodState, System
from domain.money import Money

ORG = "00D5e000000AbCdEAM"


def stripe_event(customer: Mapping[str, object], previous: Mapping[str, object]) -> StripeEvent:
    return StripeEvent.model_validate(
        {
            "id": "evt_1PxYzAbCdEfGh",
            "type": "customer.updated",
            "created": 1772442000,
            "data": {"object": customer, "previous_attributes": previous},
        }
    )


CUSTOMER: dict[str, object] = {
    "id": "cus_Q1w2E3r4",
    "object": "customer",
    "name": "Acme Robotics, Inc.",
    "email": "invoices@acme-robotics.example",
    "address": {
        "line1": "500 Howard St",
        "line2": None,
        "city": "San Francisco",
        "state": "CA",
        "postal_code": "94105",
        "country": "US",
    },
    "metadata": {"revsync_account_id": "0015e00000AcmeUS1", "tax_id": "94-1234567"},
    "invoice_settings": {"default_payment_method": None},
}


def test_stripe_maps_only_the_changed_attributes() -> None:
    routed = from_stripe(
        stripe_event(
            CUSTOMER,
            {
                "email": "ap@acme-robotics.example",
                "invoice_settings": {"default_payment_method": "pm_1"},
            },
        )
    )
    assert routed is not None
    assert routed.golden_id == "0015e00000AcmeUS1"
    event = routed.event
    assert (event.source, event.record_id, event.event_id) == (
        System.BILLING,
        "cus_Q1w2E3r4",
        "evt_1PxYzAbCdEfGh",
    )
    assert event.version.modified_at == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert event.changes == {
        MasterField.EMAIL: "invoices@acme-robotics.example",
        MasterField.PAYMENT_METHOD_STATE: PaymentMethodState.MISSING,
    }
    # a change of attributes revsync does not master: nothing to do
    assert from_stripe(stripe_event(CUSTOMER, {"phone": "+1 555"})) is None


def test_stripe_customer_without_an_account_id_cannot_be_routed() -> None:
    orphan = {**CUSTOMER, "metadata": {}}
    with pytest.raises(RoutingError, match=r"metadata\.revsync_account_id"):
        from_stripe(stripe_event(orphan, {"email": "x@y.example"}))


def test_stripe_invalid_values_are_named() -> None:
    with pytest.raises(RoutingError) as caught:
        from_stripe(stripe_event({**CUSTOMER, "email": "not an address"}, {"email": "a@b.c"}))
    assert caught.value.fields[0]["field"].startswith("changes")


def account_note(**fields: str | None) -> bytes:
    return sample_outbound_message(ORG, [("04l5e00000AbCdEAAB", "Account", fields)])


def test_salesforce_account_notification_maps_the_selected_fields() -> None:
    message = parse_outbound_message(
        account_note(
            Id="0015e00000AcmeUS1",
            SystemModstamp="2026-03-02T09:15:00.000Z",
            Name="Acme Robotics",
            Website="www.acme-robotics.example",
            Billing_Email__c=None,
            BillingStreet="1 Market St\nFloor 3",
            BillingCity="San Francisco",
            BillingState="CA",
            BillingPostalCode="94105",
            BillingCountryCode="us",
            Credit_Limit__c="50000.00",
            Credit_Limit_Currency__c="USD",
        )
    )
    routed = from_salesforce(message.notifications[0])
    assert routed is not None and routed.golden_id == "0015e00000AcmeUS1"
    assert routed.event.version.modified_at == datetime(2026, 3, 2, 9, 15, tzinfo=UTC)
    assert routed.event.changes == {
        MasterField.NAME: "Acme Robotics",
        MasterField.WEBSITE: "www.acme-robotics.example",
        MasterField.EMAIL: None,  # nil clears
        MasterField.CREDIT_LIMIT: Money(amount=Decimal("50000.00"), currency="USD"),
        MasterField.BILLING_ADDRESS: Address(
            line1="1 Market St",
            line2="Floor 3",
            city="San Francisco",
            region="CA",
            postal_code="94105",
            country="US",
        ),
    }


def test_salesforce_notification_needs_a_modification_stamp() -> None:
    message = parse_outbound_message(account_note(Id="0015e00000AcmeUS1", Name="Acme"))
    with pytest.raises(RoutingError, match="SystemModstamp"):
        from_salesforce(message.notifications[0])


def erp_change(**overrides: object) -> ErpCustomerChanged:
    payload: dict[str, object] = {
        "eventId": "ns-7d1c1a55",
        "recordType": "customer",
        "id": "301",
        "externalId": "acct-0015e00000AcmeUS1",
        "lastModifiedDate": "2026-03-02T10:00:00Z",
        "fields": {
            "legalName": "Acme Robotics Holdings, Inc.",
            "vatRegNumber": "94-1234567",
            "creditLimit": Decimal("75000"),
            "currency": "USD",
            "defaultBillingAddress": {
                "addr1": "1 Market St",
                "city": "San Francisco",
                "state": "CA",
                "zip": "94105",
                "country": {"id": "US"},
            },
        },
    }
    payload.update(overrides)
    return ErpCustomerChanged.model_validate(payload)


def test_erp_change_is_routed_by_the_external_id() -> None:
    routed = from_erp(erp_change())
    assert routed is not None and routed.golden_id == "0015e00000AcmeUS1"
    assert (routed.event.source, routed.event.record_id) == (System.ERP, "301")
    assert routed.event.changes[MasterField.CREDIT_LIMIT] == Money(
        amount=Decimal(75000), currency="USD"
    )
    assert routed.event.changes[MasterField.LEGAL_ENTITY] == "Acme Robotics Holdings, Inc."
    address = routed.event.changes[MasterField.BILLING_ADDRESS]
    assert isinstance(address, Address) and address.country == "US"
    with pytest.raises(RoutingError, match="acct-<CRM account id>"):
        from_erp(erp_change(externalId="CUST-0042"))
