"""The golden customer's fields as Stripe Customer attributes, both ways.

Quote-to-cash creates the Stripe customer with ``name`` = the legal entity (it is what
invoices print), ``description`` = the account name, ``metadata.tax_id`` and
``metadata.revsync_account_id`` (the golden id, by which billing changes are routed). The
same attributes carry the golden fields afterwards:

============================  ================================================================
golden field                  Customer attribute
============================  ================================================================
``name``                      ``description``
``email``                     ``email``
``legal_entity``              ``name``
``tax_id``                    ``metadata.tax_id`` (Stripe's typed ``tax_ids`` are not kept in
                              step: they are separate objects Stripe validates per country)
``billing_address``           ``address``
``payment_method_state``      ``invoice_settings.default_payment_method``: set is ``valid``,
                              none is ``missing`` (read only: billing owns it)
============================  ================================================================

Owner, website and credit limit are not held in billing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from domain.customer import Address
from domain.customer_master import FieldValue, MasterField

ACCOUNT_METADATA_KEY = "revsync_account_id"
TAX_ID_METADATA_KEY = "tax_id"
_ADDRESS_PARTS = {
    "line1": "line1",
    "line2": "line2",
    "city": "city",
    "region": "state",
    "postal_code": "postal_code",
    "country": "country",
}


def customer_update_form(changes: Mapping[MasterField, FieldValue]) -> dict[str, str]:
    """The ``POST /v1/customers/{id}`` form writing ``changes``; an empty string clears an
    attribute, as Stripe reads it. Raises ValueError for a field billing does not hold."""
    form: dict[str, str] = {}
    for field, value in changes.items():
        text = "" if value is None else str(value)
        if field is MasterField.NAME:
            form["description"] = text
        elif field is MasterField.EMAIL:
            form["email"] = text
        elif field is MasterField.LEGAL_ENTITY:
            form["name"] = text
        elif field is MasterField.TAX_ID:
            form[f"metadata[{TAX_ID_METADATA_KEY}]"] = text
        elif field is MasterField.BILLING_ADDRESS:
            if not isinstance(value, Address):
                form["address"] = ""
                continue
            for attribute, stripe_name in _ADDRESS_PARTS.items():
                part = getattr(value, attribute)
                form[f"address[{stripe_name}]"] = "" if part is None else str(part)
        else:
            raise ValueError(f"{field.value} is not held in billing")
    return form


def _address(raw: Any) -> object:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        return raw  # refused by the field's type
    if not any(raw.get(name) for name in _ADDRESS_PARTS.values()):
        return None
    return {attribute: raw.get(stripe_name) for attribute, stripe_name in _ADDRESS_PARTS.items()}


def changes_from_customer(
    customer: Mapping[str, Any], previous: Mapping[str, Any] | None
) -> dict[str, object]:
    """Raw golden-field changes from a Stripe customer and the ``previous_attributes`` of
    its ``customer.updated`` event: only the attributes the event says changed (all mapped
    ones when ``previous`` is None, as for ``customer.created``)."""

    def changed(name: str) -> bool:
        return previous is None or name in previous

    raw: dict[str, object] = {}
    if changed("email"):
        raw[MasterField.EMAIL.value] = customer.get("email") or None
    if changed("name"):
        raw[MasterField.LEGAL_ENTITY.value] = customer.get("name") or None
    if changed("address"):
        raw[MasterField.BILLING_ADDRESS.value] = _address(customer.get("address"))
    metadata = customer.get("metadata") if isinstance(customer.get("metadata"), dict) else {}
    previous_metadata = (previous or {}).get("metadata")
    if previous is None or (
        isinstance(previous_metadata, dict) and TAX_ID_METADATA_KEY in previous_metadata
    ):
        raw[MasterField.TAX_ID.value] = (metadata or {}).get(TAX_ID_METADATA_KEY) or None
    previous_settings = (previous or {}).get("invoice_settings")
    if previous is None or (
        isinstance(previous_settings, dict) and "default_payment_method" in previous_settings
    ):
        settings = customer.get("invoice_settings")
        method = settings.get("default_payment_method") if isinstance(settings, dict) else None
        raw[MasterField.PAYMENT_METHOD_STATE.value] = "valid" if method else "missing"
    return raw
