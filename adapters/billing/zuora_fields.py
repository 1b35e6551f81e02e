"""The golden customer's fields as Zuora Account attributes, both ways.

Quote-to-cash creates the Zuora account with ``name`` = the legal entity (what invoices
print), ``crmId`` = the CRM account id (the golden id, by which billing changes are routed),
the account name in the custom field ``CrmAccountName__c``, the tax id as ``taxInfo.VATId``
and one contact as both bill-to and sold-to. The same attributes carry the golden fields
afterwards:

============================  ================================================================
golden field                  Account attribute
============================  ================================================================
``name``                      ``CrmAccountName__c`` (custom field on Account)
``email``                     ``billToContact.workEmail``
``legal_entity``              ``name``
``tax_id``                    ``taxInfo.VATId``
``billing_address``           ``billToContact`` ``address1``, ``address2``, ``city``,
                              ``state``, ``zipCode``, ``country`` (ISO alpha-2)
``payment_method_state``      ``defaultPaymentMethodId``: set is ``valid``, none is
                              ``missing`` (read only: billing owns it)
============================  ================================================================

The v1 account operations name the postal code ``zipCode``; Object Query's expanded
contact (``billTo``) names it ``postalCode``, and names the account's own fields with a
lower-case first letter (``vATId``, ``crmAccountName__c``): both are read.

Owner, website and credit limit are not held in billing. Zuora clears a text field written
as an empty string; a contact's ``country`` cannot be cleared (Zuora requires it), so
clearing the address empties its lines and keeps the country.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from domain.customer import Address
from domain.customer_master import FieldValue, MasterField

NAME_FIELD = "CrmAccountName__c"
_QUERY_NAME_FIELD = "crmAccountName__c"  # as Object Query names it
_ADDRESS_PARTS = {
    "line1": "address1",
    "line2": "address2",
    "city": "city",
    "region": "state",
    "postal_code": "zipCode",
    "country": "country",
}


def account_update_body(changes: Mapping[MasterField, FieldValue]) -> dict[str, Any]:
    """The ``PUT /v1/accounts/{key}`` body writing ``changes``; an empty string clears a
    field, as Zuora reads it. Raises ValueError for a field billing does not hold."""
    body: dict[str, Any] = {}
    contact: dict[str, str] = {}
    for field, value in changes.items():
        text = "" if value is None else str(value)
        if field is MasterField.NAME:
            body[NAME_FIELD] = text
        elif field is MasterField.EMAIL:
            contact["workEmail"] = text
        elif field is MasterField.LEGAL_ENTITY:
            if not text:
                raise ValueError("legal_entity cannot be cleared: it is the Zuora account name")
            body["name"] = text
        elif field is MasterField.TAX_ID:
            body["taxInfo"] = {"VATId": text}
        elif field is MasterField.BILLING_ADDRESS:
            for attribute, zuora_name in _ADDRESS_PARTS.items():
                if not isinstance(value, Address):
                    if attribute != "country":
                        contact[zuora_name] = ""
                    continue
                part = getattr(value, attribute)
                contact[zuora_name] = "" if part is None else str(part)
        else:
            raise ValueError(f"{field.value} is not held in billing")
    if contact:
        body["billToContact"] = contact
    return body


def _dict(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def _address(contact: Mapping[str, Any]) -> object:
    # zipCode in the v1 account operations, postalCode in Object Query's contact.
    postal = contact.get("zipCode") or contact.get("postalCode")
    if not (contact.get("address1") or contact.get("city") or postal):
        return None
    parts = {
        attribute: contact.get(zuora_name) or None
        for attribute, zuora_name in _ADDRESS_PARTS.items()
    }
    parts["postal_code"] = postal or None
    return parts


def fields_from_account(account: Mapping[str, Any]) -> dict[str, object]:
    """Raw golden-field values of a Zuora account, as ``GET /v1/accounts/{key}`` nests them
    (``basicInfo``, ``billToContact``, ``taxInfo``) or as Object Query flattens them (the
    account's own fields at the top, ``billTo`` expanded)."""
    basic = _dict(account.get("basicInfo")) or account
    contact = _dict(account.get("billToContact")) or _dict(account.get("billTo"))
    tax = _dict(account.get("taxInfo"))
    vat = tax.get("VATId") if tax else account.get("vATId") or account.get("VATId")
    method = basic.get("defaultPaymentMethodId") or account.get("defaultPaymentMethodId")
    name = basic.get(NAME_FIELD) or account.get(NAME_FIELD) or account.get(_QUERY_NAME_FIELD)
    return {
        MasterField.NAME.value: name or None,
        MasterField.EMAIL.value: contact.get("workEmail") or None,
        MasterField.LEGAL_ENTITY.value: basic.get("name") or None,
        MasterField.TAX_ID.value: vat or None,
        MasterField.BILLING_ADDRESS.value: _address(contact) if contact else None,
        MasterField.PAYMENT_METHOD_STATE.value: "valid" if method else "missing",
    }
