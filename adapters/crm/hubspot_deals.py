"""A closed-won HubSpot deal, with its line items and company, as revsync's canonical quote.

What is read (HubSpot CRM v3 answers; every property value is a string or null):

=================================================  ============================================
Quote field                                        HubSpot source
=================================================  ============================================
``quote_id``                                       the deal's ``id``
``account_id``                                     the deal's primary company (association type
                                                   ``deal_to_company``; one unlabeled company
                                                   alone is taken too)
``owner``                                          ``hubspot_owner_id`` (required)
``currency``                                       ``deal_currency_code`` (required)
``accepted_at``                                    ``closedate`` (ISO date-time, required)
``start_date``                                     ``revsync_start_date`` (``YYYY-MM-DD``), else
                                                   the close date
``payment_terms``                                  ``revsync_payment_terms`` (``NET30``...,
                                                   ``DUE_ON_RECEIPT``), else NET30
``term_months``                                    the recurring lines' ``hs_recurring_billing_
                                                   period`` (``P12M``, ``P1Y``: all the same),
                                                   else 12
line ``line_id``                                   the line item's ``id``
line ``sku``                                       ``hs_sku`` (upper-cased, required)
line ``description``                               ``name``
line ``quantity`` / ``unit_price``                 ``quantity`` / ``price`` (exact decimals)
line ``discount_percent``                          ``hs_discount_percentage`` (0 when empty); a
                                                   fixed ``discount`` amount is refused
line ``billing`` / ``interval``                    ``recurringbillingfrequency``: ``monthly``,
                                                   ``annually``; empty: one-time
=================================================  ============================================

The deal must still be in the closed-won stage when it is read (an event can be late: a deal
moved back out of closed-won is not booked). Anything that does not fit raises
:class:`DealMappingError` listing every offending field as a path inside the HubSpot records
(``deal.properties.deal_currency_code``, ``line_items.1.properties.hs_sku``); messages never
repeat property values (deals carry names and amounts).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from adapters.mapping import FieldErrors, QuoteMappingError, validation_fields
from domain.money import MINOR_UNITS
from domain.quote import BillingInterval, BillingType, PaymentTerms, Quote

__all__ = [
    "DEAL_PROPERTIES",
    "DEFAULT_TERM_MONTHS",
    "LINE_ITEM_PROPERTIES",
    "DealMappingError",
    "line_item_ids",
    "quote_from_deal",
]

DEFAULT_TERM_MONTHS = 12
DEAL_PROPERTIES = (
    "dealname",
    "dealstage",
    "pipeline",
    "amount",
    "deal_currency_code",
    "hubspot_owner_id",
    "closedate",
    "revsync_start_date",
    "revsync_payment_terms",
)
LINE_ITEM_PROPERTIES = (
    "name",
    "hs_sku",
    "hs_product_id",
    "quantity",
    "price",
    "hs_discount_percentage",
    "discount",
    "recurringbillingfrequency",
    "hs_recurring_billing_period",
)
# HubSpot's association key for line items in a v3 object answer has a space in it.
LINE_ITEMS_ASSOCIATION = "line items"
PRIMARY_COMPANY = "deal_to_company"

_FREQUENCIES = {"monthly": BillingInterval.MONTH, "annually": BillingInterval.YEAR}
_PERIOD = re.compile(r"^P(?:(\d{1,3})M|(\d{1,2})Y)$")
# Quote fields and where they come from, to name the HubSpot field a validator refused.
_QUOTE_SOURCES = {
    "quote_id": "deal.id",
    "account_id": "deal.associations.companies",
    "owner": "deal.properties.hubspot_owner_id",
    "currency": "deal.properties.deal_currency_code",
    "payment_terms": "deal.properties.revsync_payment_terms",
    "term_months": "line_items.properties.hs_recurring_billing_period",
    "start_date": "deal.properties.revsync_start_date",
    "accepted_at": "deal.properties.closedate",
    "lines": "deal.associations.line items",
}
_LINE_SOURCES = {
    "line_id": "id",
    "sku": "properties.hs_sku",
    "description": "properties.name",
    "quantity": "properties.quantity",
    "unit_price": "properties.price",
    "discount_percent": "properties.hs_discount_percentage",
    "billing": "properties.recurringbillingfrequency",
    "interval": "properties.recurringbillingfrequency",
}


class DealMappingError(QuoteMappingError):
    """The deal does not describe a quote revsync can book; ``fields`` are paths inside the
    HubSpot records."""

    source = "HubSpot deal"


def _text(properties: dict[str, Any], name: str) -> str | None:
    value = properties.get(name)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def associated_ids(record: dict[str, Any], key: str) -> list[tuple[str, str]]:
    """``(id, type)`` of the associations under ``key`` in a v3 object answer."""
    associations = record.get("associations")
    if not isinstance(associations, dict):
        return []
    group = associations.get(key)
    results = group.get("results") if isinstance(group, dict) else None
    if not isinstance(results, list):
        return []
    return [
        (str(item["id"]), str(item.get("type", "")))
        for item in results
        if isinstance(item, dict) and item.get("id") is not None
    ]


def line_item_ids(deal: dict[str, Any]) -> list[str]:
    """The ids of the deal's line items, in HubSpot's order, each once."""
    return list(dict.fromkeys(i for i, _ in associated_ids(deal, LINE_ITEMS_ASSOCIATION)))


class _Reader(FieldErrors):
    def decimal(self, properties: dict[str, Any], base: str, name: str) -> Decimal | None:
        text = _text(properties, name)
        if text is None:
            return None
        try:
            value = Decimal(text)
        except InvalidOperation:
            self.error(f"{base}.properties.{name}", "is not a number")
            return None
        if not value.is_finite():
            self.error(f"{base}.properties.{name}", "is not a number")
            return None
        return value


def _company(read: _Reader, deal: dict[str, Any]) -> str | None:
    companies = associated_ids(deal, "companies")
    primary = {i for i, kind in companies if kind == PRIMARY_COMPANY}
    every = {i for i, _ in companies}
    chosen = primary if primary else every
    if len(chosen) != 1:
        read.error(
            "deal.associations.companies",
            "a closed-won deal needs one primary company"
            if chosen
            else "the deal has no associated company",
        )
        return None
    return next(iter(chosen))


def _accepted_at(read: _Reader, properties: dict[str, Any]) -> datetime | None:
    text = _text(properties, "closedate")
    if text is None:
        read.error("deal.properties.closedate", "is required")
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        read.error("deal.properties.closedate", "is not an ISO 8601 date-time")
        return None
    if moment.tzinfo is None:
        read.error("deal.properties.closedate", "has no time zone")
        return None
    return moment


def _start_date(read: _Reader, properties: dict[str, Any], accepted: datetime | None) -> Any:
    text = _text(properties, "revsync_start_date")
    if text is None:
        return accepted.date() if accepted else None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        read.error("deal.properties.revsync_start_date", "is not a YYYY-MM-DD date")
        return None


def _payment_terms(read: _Reader, properties: dict[str, Any]) -> PaymentTerms | None:
    text = _text(properties, "revsync_payment_terms")
    if text is None:
        return PaymentTerms.NET30
    try:
        return PaymentTerms(text.upper().replace(" ", "_"))
    except ValueError:
        read.error(
            "deal.properties.revsync_payment_terms",
            f"must be one of {', '.join(t.value for t in PaymentTerms)}",
        )
        return None


def _line(
    read: _Reader, index: int, item: dict[str, Any], terms: set[int]
) -> dict[str, Any] | None:
    base = f"line_items.{index}"
    properties = item.get("properties")
    if not isinstance(properties, dict):
        read.error(f"{base}.properties", "is required")
        return None
    before = len(read.errors)
    sku = _text(properties, "hs_sku")
    if sku is None:
        read.error(f"{base}.properties.hs_sku", "is required (the product's SKU)")
    quantity = read.decimal(properties, base, "quantity")
    if quantity is None and _text(properties, "quantity") is None:
        read.error(f"{base}.properties.quantity", "is required")
    price = read.decimal(properties, base, "price")
    if price is None and _text(properties, "price") is None:
        read.error(f"{base}.properties.price", "is required")
    discount = read.decimal(properties, base, "hs_discount_percentage") or Decimal(0)
    fixed = read.decimal(properties, base, "discount")
    if fixed is not None and fixed != 0:
        read.error(
            f"{base}.properties.discount",
            "a fixed discount amount is not supported: use hs_discount_percentage",
        )
    frequency = _text(properties, "recurringbillingfrequency")
    billing, interval = BillingType.ONE_TIME, None
    if frequency is not None:
        if frequency.lower() not in _FREQUENCIES:
            read.error(
                f"{base}.properties.recurringbillingfrequency",
                "must be monthly or annually (or empty for a one-time line)",
            )
        else:
            billing, interval = BillingType.RECURRING, _FREQUENCIES[frequency.lower()]
            period = _text(properties, "hs_recurring_billing_period")
            if period is not None:
                match = _PERIOD.match(period.upper())
                if match is None:
                    read.error(
                        f"{base}.properties.hs_recurring_billing_period",
                        "must be a term in months or years (P12M, P1Y)",
                    )
                else:
                    months, years = match.groups()
                    terms.add(int(months) if months else int(years) * 12)
    if len(read.errors) != before:
        return None
    return {
        "line_id": str(item.get("id", "")),
        "sku": (sku or "").upper(),
        "description": _text(properties, "name") or "",
        "quantity": quantity,
        "unit_price": price,
        "discount_percent": discount,
        "billing": billing,
        "interval": interval,
    }


def quote_from_deal(
    deal: dict[str, Any], line_items: list[dict[str, Any]], *, closed_won_stage: str
) -> Quote:
    """The canonical quote for ``deal`` (a v3 object answer with its ``companies`` and
    ``line items`` associations) and its ``line_items`` (v3 answers, in the deal's order).
    Raises :class:`DealMappingError` naming every field that does not fit."""
    read = _Reader()
    properties = deal.get("properties")
    if not isinstance(properties, dict):
        raise DealMappingError([{"field": "deal.properties", "message": "is required"}])
    if _text(properties, "dealstage") != closed_won_stage:
        read.error("deal.properties.dealstage", "the deal is not in the closed-won stage")
    account_id = _company(read, deal)
    owner = _text(properties, "hubspot_owner_id")
    if owner is None:
        read.error("deal.properties.hubspot_owner_id", "is required (the deal owner)")
    currency = (_text(properties, "deal_currency_code") or "").upper() or None
    if currency is None:
        read.error("deal.properties.deal_currency_code", "is required")
    elif currency not in MINOR_UNITS:
        read.error("deal.properties.deal_currency_code", "unsupported currency")
    accepted_at = _accepted_at(read, properties)
    start_date = _start_date(read, properties, accepted_at)
    payment_terms = _payment_terms(read, properties)
    if not line_items:
        read.error("deal.associations.line items", "a closed-won deal needs line items")
    terms: set[int] = set()
    lines = [_line(read, index, item, terms) for index, item in enumerate(line_items)]
    if len(terms) > 1:
        read.error(
            "line_items.properties.hs_recurring_billing_period",
            "recurring lines of one deal must share one term",
        )
    if read.errors:
        raise DealMappingError(read.errors)
    try:
        return Quote.model_validate(
            {
                "quote_id": str(deal.get("id", "")),
                "account_id": account_id,
                "opportunity_id": None,
                "owner": owner,
                "currency": currency,
                "payment_terms": payment_terms,
                "term_months": terms.pop() if terms else DEFAULT_TERM_MONTHS,
                "start_date": start_date,
                "accepted_at": accepted_at,
                "lines": lines,
            }
        )
    except ValidationError as error:
        raise DealMappingError(validation_fields(error, _field_of, scrub_all=True)) from None


def _field_of(loc: tuple[int | str, ...]) -> str:
    """The HubSpot path a pydantic ``loc`` of Quote refers to."""
    parts = [str(part) for part in loc]
    if len(parts) >= 3 and parts[0] == "lines" and parts[2] in _LINE_SOURCES:
        return f"line_items.{parts[1]}.{_LINE_SOURCES[parts[2]]}"
    if parts and parts[0] in _QUOTE_SOURCES:
        return _QUOTE_SOURCES[parts[0]]
    return "deal"
