"""The golden customer's fields as NetSuite customer fields, both ways.

============================  ================================================================
golden field                  customer field
============================  ================================================================
``name``                      ``companyName``
``owner``                     ``custentity_revsync_owner`` (free-form text: the CRM owner)
``website``                   ``url``
``email``                     ``email``
``legal_entity``              ``legalName``
``tax_id``                    ``vatRegNumber``
``credit_limit``              ``creditLimit`` in the customer's ``currency`` (read only: ERP
                              owns it)
``billing_address``           the default billing ``addressBook`` entry (replaced whole)
``payment_method_state``      ``custentity_revsync_payment_state`` (free-form text)
============================  ================================================================

The ERP change webhook (``POST /v1/webhooks/erp/customer-changed``, see
docs/customer-master.md) carries the same NetSuite field names, the billing address as
``defaultBillingAddress`` with NetSuite's address field names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from domain.customer import Address
from domain.customer_master import FieldValue, MasterField

SIMPLE_FIELDS: dict[MasterField, str] = {
    MasterField.NAME: "companyName",
    MasterField.OWNER: "custentity_revsync_owner",
    MasterField.WEBSITE: "url",
    MasterField.EMAIL: "email",
    MasterField.LEGAL_ENTITY: "legalName",
    MasterField.TAX_ID: "vatRegNumber",
    MasterField.PAYMENT_METHOD_STATE: "custentity_revsync_payment_state",
}
ADDRESS_FIELD = "defaultBillingAddress"
CREDIT_LIMIT_FIELD = "creditLimit"
CURRENCY_FIELD = "currency"


def address_entry(address: Address, addressee: str | None = None) -> dict[str, Any]:
    """One default-billing ``addressBook`` entry."""
    fields: dict[str, Any] = {
        "addr1": address.line1,
        "city": address.city,
        "zip": address.postal_code,
        "country": {"id": address.country},
    }
    if addressee:
        fields["addressee"] = addressee
    if address.line2:
        fields["addr2"] = address.line2
    if address.region:
        fields["state"] = address.region
    return {
        "defaultBilling": True,
        "defaultShipping": False,
        "label": "Billing",
        "addressBookAddress": fields,
    }


def customer_update(changes: Mapping[MasterField, FieldValue]) -> tuple[dict[str, Any], bool]:
    """The customer PATCH body writing ``changes``, and whether it replaces the address book
    (``?replace=addressBook``). Raises ValueError for the credit limit, which only ERP sets."""
    body: dict[str, Any] = {}
    replace_addresses = False
    for field, value in changes.items():
        if field in SIMPLE_FIELDS:
            body[SIMPLE_FIELDS[field]] = None if value is None else str(value)
        elif field is MasterField.BILLING_ADDRESS:
            entries = [address_entry(value)] if isinstance(value, Address) else []
            body["addressBook"] = {"items": entries}
            replace_addresses = True
        else:
            raise ValueError(f"{field.value} is set in the ERP, never by revsync")
    return body, replace_addresses


def _address(raw: Any) -> object:
    if raw is None or not isinstance(raw, dict):
        return raw
    country = raw.get("country")
    if isinstance(country, dict):
        country = country.get("id")
    return {
        "line1": raw.get("addr1"),
        "line2": raw.get("addr2") or None,
        "city": raw.get("city"),
        "region": raw.get("state") or None,
        "postal_code": raw.get("zip"),
        "country": country,
    }


def changes_from_customer(fields: Mapping[str, Any]) -> dict[str, object]:
    """Raw golden-field changes from the NetSuite fields an ERP change event carries (only
    those present; null clears a value). The credit limit takes the customer's currency
    (its ISO code) from ``currency``."""
    raw: dict[str, object] = {}
    for field, name in SIMPLE_FIELDS.items():
        if name in fields:
            value = fields[name]
            raw[field.value] = value.strip() or None if isinstance(value, str) else value
    if CREDIT_LIMIT_FIELD in fields:
        amount = fields[CREDIT_LIMIT_FIELD]
        raw[MasterField.CREDIT_LIMIT.value] = (
            None if amount is None else {"amount": amount, "currency": fields.get(CURRENCY_FIELD)}
        )
    if ADDRESS_FIELD in fields:
        raw[MasterField.BILLING_ADDRESS.value] = _address(fields[ADDRESS_FIELD])
    return raw
