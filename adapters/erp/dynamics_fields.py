"""The golden customer's fields as Dataverse ``account`` columns, both ways.

============================  ================================================================
golden field                  account column
============================  ================================================================
``name``                      ``name``
``owner``                     ``revsync_owner`` (text: the CRM owner; ``ownerid`` is a
                              Dataverse user or team, not the CRM's)
``website``                   ``websiteurl``
``email``                     ``emailaddress1``
``legal_entity``              ``revsync_legalname`` (Dataverse has no legal name column)
``tax_id``                    ``revsync_taxid`` (nor a tax id column)
``credit_limit``              ``creditlimit`` (money) in the account's ``transactioncurrencyid``
                              (read only: the ERP owns it)
``billing_address``           ``address1_line1``, ``address1_line2``, ``address1_city``,
                              ``address1_stateorprovince``, ``address1_postalcode``,
                              ``address1_country`` (the ISO 3166 code; a text column)
``payment_method_state``      ``revsync_paymentstate`` (text)
============================  ================================================================

The ``revsync_`` columns come with revsync's Dataverse solution (docs/adapters.md, Dynamics).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from domain.customer import Address
from domain.customer_master import FieldValue, MasterField

SIMPLE_FIELDS: dict[MasterField, str] = {
    MasterField.NAME: "name",
    MasterField.OWNER: "revsync_owner",
    MasterField.WEBSITE: "websiteurl",
    MasterField.EMAIL: "emailaddress1",
    MasterField.LEGAL_ENTITY: "revsync_legalname",
    MasterField.TAX_ID: "revsync_taxid",
    MasterField.PAYMENT_METHOD_STATE: "revsync_paymentstate",
}
ADDRESS_COLUMNS: dict[str, str] = {
    "line1": "address1_line1",
    "line2": "address1_line2",
    "city": "address1_city",
    "region": "address1_stateorprovince",
    "postal_code": "address1_postalcode",
    "country": "address1_country",
}
CREDIT_LIMIT_COLUMN = "creditlimit"
CURRENCY_COLUMN = "_transactioncurrencyid_value"
# What a listing reads ($select).
SELECT = (
    "accountid",
    "revsync_externalkey",
    *SIMPLE_FIELDS.values(),
    *ADDRESS_COLUMNS.values(),
    CREDIT_LIMIT_COLUMN,
    CURRENCY_COLUMN,
)


def address_columns(address: Address | None) -> dict[str, Any]:
    """The ``address1_*`` columns of ``address`` (all None: cleared)."""
    if address is None:
        return dict.fromkeys(ADDRESS_COLUMNS.values())
    return {column: getattr(address, name) for name, column in ADDRESS_COLUMNS.items()}


def account_update(changes: Mapping[MasterField, FieldValue]) -> dict[str, Any]:
    """The account PATCH body writing ``changes``. Raises ValueError for the credit limit,
    which only the ERP sets."""
    body: dict[str, Any] = {}
    for field, value in changes.items():
        if field in SIMPLE_FIELDS:
            body[SIMPLE_FIELDS[field]] = None if value is None else str(value)
        elif field is MasterField.BILLING_ADDRESS:
            body.update(address_columns(value if isinstance(value, Address) else None))
        else:
            raise ValueError(f"{field.value} is set in the ERP, never by revsync")
    return body


def changes_from_account(row: Mapping[str, Any], currency: str | None) -> dict[str, object]:
    """Raw golden-field values of an account row (``currency``: the ISO code of its
    ``transactioncurrencyid``)."""
    raw: dict[str, object] = {}
    for field, column in SIMPLE_FIELDS.items():
        value = row.get(column)
        raw[field.value] = value.strip() or None if isinstance(value, str) else value
    address = {name: row.get(column) or None for name, column in ADDRESS_COLUMNS.items()}
    raw[MasterField.BILLING_ADDRESS.value] = None if not any(address.values()) else address
    if row.get(CREDIT_LIMIT_COLUMN) is not None and currency is not None:
        raw[MasterField.CREDIT_LIMIT.value] = {
            "amount": row[CREDIT_LIMIT_COLUMN],
            "currency": currency,
        }
    return raw
