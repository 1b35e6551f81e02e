"""The golden customer's fields as Salesforce Account fields, both ways.

============================  ================================================================
golden field                  Account field(s)
============================  ================================================================
``name``                      ``Name``
``owner``                     ``OwnerId`` (read only: CRM owns it, revsync never writes it)
``website``                   ``Website``
``email``                     ``Billing_Email__c``
``legal_entity``              ``Legal_Entity__c``
``tax_id``                    ``Tax_Id__c``
``credit_limit``              ``Credit_Limit__c`` (number) and ``Credit_Limit_Currency__c``
``billing_address``           ``BillingStreet`` (line 1, a newline, line 2), ``BillingCity``,
                              ``BillingState``, ``BillingPostalCode``, ``BillingCountryCode``
``payment_method_state``      ``Payment_Method_Status__c`` (valid, missing, expired, failing)
============================  ================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from domain.customer import Address
from domain.customer_master import FieldValue, MasterField
from domain.money import Money

SIMPLE_FIELDS: dict[MasterField, str] = {
    MasterField.NAME: "Name",
    MasterField.OWNER: "OwnerId",
    MasterField.WEBSITE: "Website",
    MasterField.EMAIL: "Billing_Email__c",
    MasterField.LEGAL_ENTITY: "Legal_Entity__c",
    MasterField.TAX_ID: "Tax_Id__c",
}
CREDIT_LIMIT_FIELDS = ("Credit_Limit__c", "Credit_Limit_Currency__c")
ADDRESS_FIELDS = (
    "BillingStreet",
    "BillingCity",
    "BillingState",
    "BillingPostalCode",
    "BillingCountryCode",
)
PAYMENT_STATE_FIELD = "Payment_Method_Status__c"
# What an Account change event needs to be ordered: the record's last modification.
VERSION_FIELDS = ("SystemModstamp", "LastModifiedDate")


def account_update(changes: Mapping[MasterField, FieldValue]) -> dict[str, Any]:
    """The Account PATCH body writing ``changes`` (None clears a field). Raises ValueError
    for the owner, which only Salesforce sets."""
    body: dict[str, Any] = {}
    for field, value in changes.items():
        if field is MasterField.OWNER:
            raise ValueError("the account owner is set in Salesforce, never by revsync")
        if field in SIMPLE_FIELDS:
            body[SIMPLE_FIELDS[field]] = value
        elif field is MasterField.CREDIT_LIMIT:
            money = value if isinstance(value, Money) else None
            body["Credit_Limit__c"] = None if money is None else money.amount
            body["Credit_Limit_Currency__c"] = None if money is None else money.currency
        elif field is MasterField.BILLING_ADDRESS:
            address = value if isinstance(value, Address) else None
            if address is None:
                body.update(dict.fromkeys(ADDRESS_FIELDS))
                continue
            street = address.line1 if not address.line2 else f"{address.line1}\n{address.line2}"
            body.update(
                {
                    "BillingStreet": street,
                    "BillingCity": address.city,
                    "BillingState": address.region,
                    "BillingPostalCode": address.postal_code,
                    "BillingCountryCode": address.country,
                }
            )
        elif field is MasterField.PAYMENT_METHOD_STATE:
            body[PAYMENT_STATE_FIELD] = None if value is None else str(value)
    return body


def _blank(value: str | None) -> str | None:
    text = (value or "").strip()
    return text or None


def changes_from_account(fields: Mapping[str, str | None]) -> dict[str, object]:
    """Raw golden-field changes from the Account fields an Outbound Message carries (only
    the fields present; a nil field clears the value). An address is reported only when
    all of its fields are present: clearing it takes every part nil, a partial one is not
    read."""
    raw: dict[str, object] = {}
    for field, name in SIMPLE_FIELDS.items():
        if name in fields:
            raw[field.value] = _blank(fields[name])
    if all(name in fields for name in CREDIT_LIMIT_FIELDS):
        amount, currency = (_blank(fields[name]) for name in CREDIT_LIMIT_FIELDS)
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
    if all(name in fields for name in ADDRESS_FIELDS):
        street, city, state, postal_code, country = (
            _blank(fields[name]) for name in ADDRESS_FIELDS
        )
        if not any((street, city, state, postal_code, country)):
            raw[MasterField.BILLING_ADDRESS.value] = None
        else:
            line1, _, rest = (street or "").partition("\n")
            raw[MasterField.BILLING_ADDRESS.value] = {
                "line1": line1.strip(),
                "line2": " ".join(rest.split()) or None,
                "city": city,
                "region": state,
                "postal_code": postal_code,
                "country": (country or "").upper(),
            }
    if PAYMENT_STATE_FIELD in fields:
        state_value = _blank(fields[PAYMENT_STATE_FIELD])
        raw[MasterField.PAYMENT_METHOD_STATE.value] = (
            None if state_value is None else state_value.lower()
        )
    return raw


__all__ = [
    "ADDRESS_FIELDS",
    "CREDIT_LIMIT_FIELDS",
    "PAYMENT_STATE_FIELD",
    "SIMPLE_FIELDS",
    "VERSION_FIELDS",
    "account_update",
    "changes_from_account",
]
