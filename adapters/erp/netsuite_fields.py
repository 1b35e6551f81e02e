"""The golden customer's fields as NetSuite customer fields, both ways.

============================  ================================================================
golden field                  customer field
============================  ================================================================
``name``                      ``companyName``
``owner``                     ``custentity_revsync_owner`` (free-form text: the CRM owner)
``website``                   ``url``
``email``                     ``email``
``legal_entity``              ``legalName``
``tax_id``                    the ``taxRegistration`` sublist (SuiteTax): one line, the
                              ``taxRegistrationNumber`` in its ``nexusCountry`` (replaced
                              whole). REST web services support no legacy tax, so the legacy
                              ``vatRegNumber`` body field does not exist for them.
``credit_limit``              ``creditLimit`` in the customer's ``currency`` (read only: ERP
                              owns it)
``billing_address``           the default billing ``addressBook`` entry (replaced whole)
``payment_method_state``      ``custentity_revsync_payment_state`` (free-form text)
============================  ================================================================

The ERP change webhook (``POST /v1/webhooks/erp/customer-changed``, see
docs/customer-master.md) carries the same NetSuite field names, the billing address as
``defaultBillingAddress`` with NetSuite's address field names, and the tax id as
``vatRegNumber`` (the webhook contract's name for the customer's tax registration number,
which the user-event script reads from the ``taxregistration`` sublist).
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
    MasterField.PAYMENT_METHOD_STATE: "custentity_revsync_payment_state",
}
ADDRESS_FIELD = "defaultBillingAddress"
# The tax id in the ERP change webhook (its contract's name; not a record field).
TAX_ID_FIELD = "vatRegNumber"
TAX_REGISTRATIONS = "taxRegistration"
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


def tax_registrations(tax_id: str | None, country: str) -> dict[str, Any]:
    """The ``taxRegistration`` sublist holding ``tax_id`` in ``country`` (none for no tax id):
    sent with ``?replace=taxRegistration``, it replaces the customer's registrations."""
    if not tax_id:
        return {"items": []}
    return {"items": [{"nexusCountry": {"id": country}, "taxRegistrationNumber": tax_id}]}


def customer_update(
    changes: Mapping[MasterField, FieldValue], tax_country: str | None = None
) -> tuple[dict[str, Any], list[str]]:
    """The customer PATCH body writing ``changes`` and the sublists it replaces (the
    ``replace`` query parameter: ``addressBook``, ``taxRegistration``). A tax id is registered
    in ``tax_country`` (the caller finds it when the changes carry no billing address).
    Raises ValueError for the credit limit, which only ERP sets, and for a tax id with no
    country."""
    body: dict[str, Any] = {}
    replace: list[str] = []
    address = changes.get(MasterField.BILLING_ADDRESS)
    for field, value in changes.items():
        if field in SIMPLE_FIELDS:
            body[SIMPLE_FIELDS[field]] = None if value is None else str(value)
        elif field is MasterField.BILLING_ADDRESS:
            entries = [address_entry(value)] if isinstance(value, Address) else []
            body["addressBook"] = {"items": entries}
            replace.append("addressBook")
        elif field is MasterField.TAX_ID:
            country = address.country if isinstance(address, Address) else tax_country
            if value is not None and country is None:
                raise ValueError("a tax id needs the country to register it in")
            body[TAX_REGISTRATIONS] = tax_registrations(
                None if value is None else str(value), country or ""
            )
            replace.append(TAX_REGISTRATIONS)
        else:
            raise ValueError(f"{field.value} is set in the ERP, never by revsync")
    return body, replace


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
    if TAX_ID_FIELD in fields:
        value = fields[TAX_ID_FIELD]
        raw[MasterField.TAX_ID.value] = value.strip() or None if isinstance(value, str) else value
    if CREDIT_LIMIT_FIELD in fields:
        amount = fields[CREDIT_LIMIT_FIELD]
        raw[MasterField.CREDIT_LIMIT.value] = (
            None if amount is None else {"amount": amount, "currency": fields.get(CURRENCY_FIELD)}
        )
    if ADDRESS_FIELD in fields:
        raw[MasterField.BILLING_ADDRESS.value] = _address(fields[ADDRESS_FIELD])
    return raw
