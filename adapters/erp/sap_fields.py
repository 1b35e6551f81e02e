"""The golden customer's fields as SAP business partner fields (``API_BUSINESS_PARTNER``).

============================  ================================================================
golden field                  business partner field
============================  ================================================================
``name``                      ``OrganizationBPName1`` (40 characters)
``legal_entity``              ``OrganizationBPName2`` (40 characters)
``owner``                     ``YY1_RevsyncOwner_bus`` (custom field, Custom Fields app)
``website``                   ``YY1_RevsyncWebsite_bus`` (custom field)
``payment_method_state``      ``YY1_RevsyncPayState_bus`` (custom field)
``email``                     the first e-mail of the standard address
                              (``A_AddressEmailAddress``, ordinal 1)
``tax_id``                    the tax number (``A_BusinessPartnerTaxNumber``) of category
                              ``<country>0`` (``DE0``, ``US0``...), the country of the address
``billing_address``           the standard address (``A_BusinessPartnerAddress``): line 1 in
                              ``StreetName``, line 2 in ``StreetSuffixName``, ``CityName``,
                              ``Region``, ``PostalCode``, ``Country``
``credit_limit``              not written (SAP Credit Management owns it) and not read
============================  ================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from domain.customer import Address
from domain.customer_master import FieldValue, MasterField

HEADER_FIELDS: dict[MasterField, str] = {
    MasterField.NAME: "OrganizationBPName1",
    MasterField.LEGAL_ENTITY: "OrganizationBPName2",
    MasterField.OWNER: "YY1_RevsyncOwner_bus",
    MasterField.WEBSITE: "YY1_RevsyncWebsite_bus",
    MasterField.PAYMENT_METHOD_STATE: "YY1_RevsyncPayState_bus",
}
NAME_LENGTH = 40


def header_value(field: MasterField, value: FieldValue) -> str:
    """A header field's value as SAP takes it (names cut to 40 characters, None as empty)."""
    text = "" if value is None else str(value)
    if field in (MasterField.NAME, MasterField.LEGAL_ENTITY):
        return text[:NAME_LENGTH]
    return text


def address_fields(address: Address) -> dict[str, str]:
    """An ``A_BusinessPartnerAddress`` body for ``address``."""
    return {
        "StreetName": address.line1,
        "StreetSuffixName": address.line2 or "",
        "CityName": address.city,
        "Region": address.region or "",
        "PostalCode": address.postal_code,
        "Country": address.country,
    }


def tax_type(country: str) -> str:
    """The tax number category of a country's VAT or tax registration number."""
    return f"{country}0"


def standard_address(partner: Mapping[str, Any]) -> dict[str, Any] | None:
    addresses = (partner.get("to_BusinessPartnerAddress") or {}).get("results") or []
    return addresses[0] if addresses and isinstance(addresses[0], dict) else None


def first_email(address: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if address is None:
        return None
    emails = (address.get("to_EmailAddress") or {}).get("results") or []
    return emails[0] if emails and isinstance(emails[0], dict) else None


def golden_fields(partner: Mapping[str, Any]) -> dict[str, object]:
    """The raw golden fields a business partner (read with its address, e-mail and tax
    numbers expanded) holds, in :func:`domain.reconciliation.fingerprints`' terms."""
    raw: dict[str, object] = {}
    for field, name in HEADER_FIELDS.items():
        value = partner.get(name)
        raw[field.value] = value.strip() or None if isinstance(value, str) else value
    address = standard_address(partner)
    email = first_email(address)
    raw[MasterField.EMAIL.value] = (email or {}).get("EmailAddress") or None
    if address is not None:
        raw[MasterField.BILLING_ADDRESS.value] = {
            "line1": address.get("StreetName"),
            "line2": address.get("StreetSuffixName") or None,
            "city": address.get("CityName"),
            "region": address.get("Region") or None,
            "postal_code": address.get("PostalCode"),
            "country": address.get("Country"),
        }
        wanted = tax_type(str(address.get("Country") or ""))
        taxes = (partner.get("to_BusinessPartnerTax") or {}).get("results") or []
        numbers = [t.get("BPTaxNumber") for t in taxes if t.get("BPTaxType") == wanted]
        raw[MasterField.TAX_ID.value] = numbers[0] if numbers and numbers[0] else None
    return raw
