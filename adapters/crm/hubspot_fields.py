"""The golden customer's fields as HubSpot company properties, both ways.

HubSpot answers every property value as a string (numbers too) and clears a property written
as the empty string. Standard properties keep their HubSpot names; what HubSpot has no
standard property for is a custom company property prefixed ``revsync_`` (created once per
account by the integration's setup, see docs/adapters.md).

============================  ================================================================
golden field                  company property(ies)
============================  ================================================================
``name``                      ``name``
``owner``                     ``hubspot_owner_id`` (read only: HubSpot owns it)
``website``                   ``website``
``email``                     ``revsync_billing_email``
``legal_entity``              ``revsync_legal_entity``
``tax_id``                    ``revsync_tax_id``
``credit_limit``              ``revsync_credit_limit`` (number) and
                              ``revsync_credit_limit_currency``
``billing_address``           ``address`` (line 1), ``address2`` (line 2), ``city``, ``state``,
                              ``zip``, ``country`` (ISO 3166 alpha-2 code)
``payment_method_state``      ``revsync_payment_method_status`` (valid, missing, expired,
                              failing)
============================  ================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from domain.customer import Address
from domain.customer_master import FieldValue, MasterField
from domain.money import Money

SIMPLE_PROPERTIES: dict[MasterField, str] = {
    MasterField.NAME: "name",
    MasterField.OWNER: "hubspot_owner_id",
    MasterField.WEBSITE: "website",
    MasterField.EMAIL: "revsync_billing_email",
    MasterField.LEGAL_ENTITY: "revsync_legal_entity",
    MasterField.TAX_ID: "revsync_tax_id",
}
CREDIT_LIMIT_PROPERTIES = ("revsync_credit_limit", "revsync_credit_limit_currency")
ADDRESS_PROPERTIES = ("address", "address2", "city", "state", "zip", "country")
PAYMENT_STATE_PROPERTY = "revsync_payment_method_status"

# Every property the golden fields live in (what list_accounts asks HubSpot for).
GOLDEN_PROPERTIES = (
    *SIMPLE_PROPERTIES.values(),
    *CREDIT_LIMIT_PROPERTIES,
    *ADDRESS_PROPERTIES,
    PAYMENT_STATE_PROPERTY,
)


def _value(value: object) -> str:
    """A property value as HubSpot takes it: a string, ``""`` clearing the property."""
    if value is None:
        return ""
    return str(value)


def company_update(changes: Mapping[MasterField, FieldValue]) -> dict[str, str]:
    """The ``properties`` of a company PATCH writing ``changes`` (None clears a field).
    Raises ValueError for the owner, which only HubSpot sets."""
    properties: dict[str, str] = {}
    for field, value in changes.items():
        if field is MasterField.OWNER:
            raise ValueError("the company owner is set in HubSpot, never by revsync")
        if field in SIMPLE_PROPERTIES:
            properties[SIMPLE_PROPERTIES[field]] = _value(value)
        elif field is MasterField.CREDIT_LIMIT:
            money = value if isinstance(value, Money) else None
            properties["revsync_credit_limit"] = "" if money is None else str(money.amount)
            properties["revsync_credit_limit_currency"] = "" if money is None else money.currency
        elif field is MasterField.BILLING_ADDRESS:
            address = value if isinstance(value, Address) else None
            if address is None:
                properties.update(dict.fromkeys(ADDRESS_PROPERTIES, ""))
                continue
            properties.update(
                {
                    "address": address.line1,
                    "address2": _value(address.line2),
                    "city": _value(address.city),
                    "state": _value(address.region),
                    "zip": _value(address.postal_code),
                    "country": address.country,
                }
            )
        elif field is MasterField.PAYMENT_METHOD_STATE:
            properties[PAYMENT_STATE_PROPERTY] = _value(value)
    return properties


def _blank(value: Any) -> str | None:
    text = "" if value is None else str(value).strip()
    return text or None


def changes_from_company(properties: Mapping[str, Any]) -> dict[str, object]:
    """Raw golden-field changes from company properties (only those present; an empty or
    null value clears the field). An address is read only when every part is present."""
    raw: dict[str, object] = {}
    for field, name in SIMPLE_PROPERTIES.items():
        if name in properties:
            raw[field.value] = _blank(properties[name])
    if all(name in properties for name in CREDIT_LIMIT_PROPERTIES):
        amount, currency = (_blank(properties[name]) for name in CREDIT_LIMIT_PROPERTIES)
        if amount is None:
            raw[MasterField.CREDIT_LIMIT.value] = None
        else:
            try:
                raw[MasterField.CREDIT_LIMIT.value] = {
                    "amount": Decimal(amount),
                    "currency": currency,
                }
            except InvalidOperation:
                raw[MasterField.CREDIT_LIMIT.value] = amount  # refused by the field's type
    if all(name in properties for name in ADDRESS_PROPERTIES):
        line1, line2, city, state, postal_code, country = (
            _blank(properties[name]) for name in ADDRESS_PROPERTIES
        )
        if not any((line1, line2, city, state, postal_code, country)):
            raw[MasterField.BILLING_ADDRESS.value] = None
        else:
            raw[MasterField.BILLING_ADDRESS.value] = {
                "line1": line1 or "",
                "line2": line2,
                "city": city,
                "region": state,
                "postal_code": postal_code,
                "country": (country or "").upper(),
            }
    if PAYMENT_STATE_PROPERTY in properties:
        state_value = _blank(properties[PAYMENT_STATE_PROPERTY])
        raw[MasterField.PAYMENT_METHOD_STATE.value] = (
            None if state_value is None else state_value.lower()
        )
    return raw


__all__ = [
    "ADDRESS_PROPERTIES",
    "CREDIT_LIMIT_PROPERTIES",
    "GOLDEN_PROPERTIES",
    "PAYMENT_STATE_PROPERTY",
    "SIMPLE_PROPERTIES",
    "changes_from_company",
    "company_update",
]
