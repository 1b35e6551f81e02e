"""Salesforce CPQ: an accepted quote (``SBQQ__Quote__c`` with its ``SBQQ__QuoteLine__c``
records) as revsync's canonical :class:`~domain.quote.Quote`.

The trigger is an Outbound Message on ``SBQQ__Quote__c`` (a workflow rule or flow whose
criteria is "status is Accepted"): :func:`accepted_quote_id` reads from a notification
whether it asks revsync to book the quote. The message carries only the quote's own
fields, and whichever of them the admin selected, so revsync reads the quote and its lines
again by SOQL (:mod:`adapters.crm.salesforce_cpq`) and maps those records here; the fresh
read also decides, since a notification can arrive late and out of order: only a quote that
*is* Accepted and primary (``SBQQ__Primary__c``) is booked (:func:`is_bookable`).

================================  ============================================================
Quote                             from
================================  ============================================================
``quote_id``                      ``SBQQ__Quote__c.Id``
``account_id``                    ``SBQQ__Account__c`` (required)
``opportunity_id``                ``SBQQ__Opportunity2__c``
``owner``                         ``SBQQ__SalesRep__c``, else ``OwnerId`` (a User id)
``currency``                      ``CurrencyIsoCode`` (required: a multi-currency org)
``payment_terms``                 ``SBQQ__PaymentTerms__c``: Due on Receipt, Net 15/30/45/60/90
                                  (blank: Net 30, the package default)
``term_months``                   ``SBQQ__SubscriptionTerm__c`` (blank: 12), a whole number
``start_date``                    ``SBQQ__StartDate__c``, else the day it was accepted
``accepted_at``                   ``LastModifiedDate`` of the accepted quote
================================  ============================================================

Each line, in ``SBQQ__Number__c`` order:

* ``line_id`` is the line's Id, ``sku`` its ``SBQQ__ProductCode__c`` (upper-cased), the
  description ``SBQQ__Description__c`` (cut to 500 characters), ``quantity``
  ``SBQQ__Quantity__c``.
* Billing: ``SBQQ__ChargeType__c`` ``Recurring`` or ``One-Time`` (``Usage`` is refused);
  blank (orgs without Salesforce Billing) means recurring when the line has a
  ``SBQQ__SubscriptionPricing__c``. A recurring line is billed per its
  ``SBQQ__BillingFrequency__c``: ``Monthly`` or ``Annual`` (blank: monthly); Quarterly,
  Semiannual and Invoice Plan are refused, as revsync bills months and years only. A line's
  own ``SBQQ__SubscriptionTerm__c``, when set, must equal the quote's: one quote, one term.
* Prices. CPQ prices a subscription line for its whole term: its list, customer and net
  unit prices are the price per the product's pricing unit times
  ``SBQQ__ProrateMultiplier__c``. revsync's price book prices each subscription product per
  its billing period, so ``unit_price`` is ``SBQQ__ListPrice__c / SBQQ__ProrateMultiplier__c``
  (blank multiplier: 1), the price of one unit for one billing period; a division that does
  not come out exact to six places is refused rather than rounded. The net unit price is
  ``SBQQ__NetPrice__c`` (every discount applied: additional, partner, distributor), else
  ``SBQQ__CustomerPrice__c`` before the quote is fully calculated; ``discount_percent`` is
  ``(list - net) / list * 100``, rounded half-up to four places, so the line total revsync
  books is the net CPQ shows. A net above list, or no price at all, is refused.
  ``SBQQ__Discount__c`` (the additional discount alone) is read for the log, not the money.

Anything that does not fit raises :class:`CpqMappingError` listing every field at fault as
``SBQQ__Quote__c.<field>`` or ``SBQQ__QuoteLine__c.<line Id>.<field>``. Messages never
repeat values from the records (they hold names and prices).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from adapters.mapping import FieldError, FieldErrors, QuoteMappingError, validation_fields
from adapters.webhooks.salesforce import Notification
from domain.money import MINOR_UNITS
from domain.quote import BillingInterval, BillingType, PaymentTerms, Quote

__all__ = [
    "ACCEPTED",
    "LINE_FIELDS",
    "LINE_SOBJECT",
    "QUOTE_FIELDS",
    "QUOTE_SOBJECT",
    "CpqMappingError",
    "accepted_quote_id",
    "is_bookable",
    "quote_from_cpq",
]

QUOTE_SOBJECT = "SBQQ__Quote__c"
LINE_SOBJECT = "SBQQ__QuoteLine__c"
ACCEPTED = "Accepted"
DEFAULT_TERM_MONTHS = 12
DESCRIPTION_MAX = 500

QUOTE_FIELDS = (
    "Id",
    "Name",
    "SBQQ__Status__c",
    "SBQQ__Primary__c",
    "SBQQ__Account__c",
    "SBQQ__Opportunity2__c",
    "SBQQ__SalesRep__c",
    "OwnerId",
    "CurrencyIsoCode",
    "SBQQ__PaymentTerms__c",
    "SBQQ__SubscriptionTerm__c",
    "SBQQ__StartDate__c",
    "LastModifiedDate",
)
LINE_FIELDS = (
    "Id",
    "SBQQ__Quote__c",
    "SBQQ__Number__c",
    "SBQQ__ProductCode__c",
    "SBQQ__Description__c",
    "SBQQ__Quantity__c",
    "SBQQ__ListPrice__c",
    "SBQQ__CustomerPrice__c",
    "SBQQ__NetPrice__c",
    "SBQQ__Discount__c",
    "SBQQ__ChargeType__c",
    "SBQQ__BillingFrequency__c",
    "SBQQ__SubscriptionPricing__c",
    "SBQQ__SubscriptionTerm__c",
    "SBQQ__ProrateMultiplier__c",
)

_PAYMENT_TERMS = {
    "due on receipt": PaymentTerms.DUE_ON_RECEIPT,
    "net 15": PaymentTerms.NET15,
    "net 30": PaymentTerms.NET30,
    "net 45": PaymentTerms.NET45,
    "net 60": PaymentTerms.NET60,
    "net 90": PaymentTerms.NET90,
}
_FREQUENCIES = {"monthly": BillingInterval.MONTH, "annual": BillingInterval.YEAR}
_TRUE = frozenset({"true", "1"})
_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
_UNIT_PLACES = Decimal("0.000001")
_PERCENT_PLACES = Decimal("0.0001")

# Where each Quote field comes from, to name the Salesforce field a bad value came from.
_QUOTE_SOURCES = {
    "quote_id": "Id",
    "account_id": "SBQQ__Account__c",
    "opportunity_id": "SBQQ__Opportunity2__c",
    "owner": "SBQQ__SalesRep__c",
    "currency": "CurrencyIsoCode",
    "payment_terms": "SBQQ__PaymentTerms__c",
    "term_months": "SBQQ__SubscriptionTerm__c",
    "start_date": "SBQQ__StartDate__c",
    "accepted_at": "LastModifiedDate",
}
_LINE_SOURCES = {
    "line_id": "Id",
    "sku": "SBQQ__ProductCode__c",
    "description": "SBQQ__Description__c",
    "quantity": "SBQQ__Quantity__c",
    "unit_price": "SBQQ__ListPrice__c",
    "discount_percent": "SBQQ__NetPrice__c",
    "billing": "SBQQ__ChargeType__c",
    "interval": "SBQQ__BillingFrequency__c",
}


class CpqMappingError(QuoteMappingError):
    """The CPQ quote does not describe a quote revsync can book. ``fields`` name
    ``SBQQ__Quote__c.<field>`` or ``SBQQ__QuoteLine__c.<Id>.<field>``."""

    source = "Salesforce CPQ quote"

    def __init__(self, quote_id: str, fields: list[FieldError]) -> None:
        self.quote_id = quote_id
        super().__init__(fields)


# -- the trigger --------------------------------------------------------------------------------


def _flag(value: object) -> bool:
    """A checkbox as a query answers it (a JSON boolean) or a message carries it (text)."""
    if isinstance(value, bool):
        return value
    return isinstance(value, str) and value.strip().lower() in _TRUE


def accepted_quote_id(notification: Notification) -> str | None:
    """The quote a ``SBQQ__Quote__c`` notification asks revsync to book, or None when it
    does not: another object, a malformed Id, or a status or primary flag the message
    carries that says the quote is not an accepted primary quote. A field the admin did
    not select into the message is not held against it: the fresh read decides."""
    if notification.sobject_type != QUOTE_SOBJECT:
        return None
    quote_id = (notification.fields.get("Id") or "").strip()
    if not _ID.fullmatch(quote_id):
        return None
    fields = notification.fields
    if "SBQQ__Status__c" in fields and (fields["SBQQ__Status__c"] or "").strip() != ACCEPTED:
        return None
    if "SBQQ__Primary__c" in fields and not _flag(fields["SBQQ__Primary__c"]):
        return None
    return quote_id


def is_bookable(quote: Mapping[str, Any]) -> bool:
    """Whether the quote record, as read now, is an accepted primary quote."""
    status = quote.get("SBQQ__Status__c")
    return (
        isinstance(status, str)
        and status.strip() == ACCEPTED
        and _flag(quote.get("SBQQ__Primary__c"))
    )


# -- mapping ------------------------------------------------------------------------------------


class _Reader(FieldErrors):
    """Typed values out of the records, collecting errors instead of raising."""

    def text(
        self, record: Mapping[str, Any], base: str, name: str, *, required: bool
    ) -> str | None:
        value = record.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.error(f"{base}.{name}", "is required")
            return None
        if not isinstance(value, str):
            self.error(f"{base}.{name}", "must be text")
            return None
        return value.strip()

    def number(
        self, record: Mapping[str, Any], base: str, name: str, *, required: bool
    ) -> Decimal | None:
        value = record.get(name)
        if value is None:
            if required:
                self.error(f"{base}.{name}", "is required")
            return None
        if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
            self.error(f"{base}.{name}", "must be a number")
            return None
        try:
            number = Decimal(value)
        except InvalidOperation:
            self.error(f"{base}.{name}", "must be a number")
            return None
        if not number.is_finite():
            self.error(f"{base}.{name}", "must be a finite number")
            return None
        return number

    def whole(self, record: Mapping[str, Any], base: str, name: str, default: int) -> int | None:
        number = self.number(record, base, name, required=False)
        if number is None:
            return None if name in record and record[name] is not None else default
        if number != number.to_integral_value():
            self.error(f"{base}.{name}", "must be a whole number of months")
            return None
        return int(number)


def quote_from_cpq(quote: Mapping[str, Any], lines: Sequence[Mapping[str, Any]]) -> Quote:
    """The canonical quote for a CPQ quote record and its line records (as SOQL answers
    them: numbers as ``Decimal`` or int, checkboxes as booleans, dates as ISO text).

    Raises :class:`CpqMappingError` naming every field that is missing, unsupported or
    invalid."""
    read = _Reader()
    base = QUOTE_SOBJECT
    quote_id = read.text(quote, base, "Id", required=True) or ""
    account_id = read.text(quote, base, "SBQQ__Account__c", required=True)
    opportunity_id = read.text(quote, base, "SBQQ__Opportunity2__c", required=False)
    owner = read.text(quote, base, "SBQQ__SalesRep__c", required=False) or read.text(
        quote, base, "OwnerId", required=False
    )
    if owner is None:
        read.error(f"{base}.SBQQ__SalesRep__c", "is required (or OwnerId)")

    currency = read.text(quote, base, "CurrencyIsoCode", required=True)
    if currency is not None:
        currency = currency.upper()
        if currency not in MINOR_UNITS:
            read.error(f"{base}.CurrencyIsoCode", "unsupported currency")
            currency = None

    payment_terms = PaymentTerms.NET30
    terms_text = read.text(quote, base, "SBQQ__PaymentTerms__c", required=False)
    if terms_text is not None:
        found = _PAYMENT_TERMS.get(" ".join(terms_text.lower().split()))
        if found is None:
            read.error(
                f"{base}.SBQQ__PaymentTerms__c",
                "unsupported payment terms: use Due on Receipt or Net 15, 30, 45, 60 or 90",
            )
        else:
            payment_terms = found
    term_months = read.whole(quote, base, "SBQQ__SubscriptionTerm__c", DEFAULT_TERM_MONTHS)

    accepted_at = _datetime(read, quote, base, "LastModifiedDate")
    start_date = _date(read, quote, base, "SBQQ__StartDate__c")
    if start_date is None and accepted_at is not None:
        start_date = accepted_at.date()

    if not lines:
        read.error(f"{LINE_SOBJECT}", "the quote has no lines")
    ordered = sorted(lines, key=_line_order)
    mapped = [_line(read, line, term_months) for line in ordered]

    if read.errors:
        raise CpqMappingError(quote_id, read.errors)
    try:
        return Quote.model_validate(
            {
                "quote_id": quote_id,
                "account_id": account_id,
                "opportunity_id": opportunity_id,
                "owner": owner,
                "currency": currency,
                "payment_terms": payment_terms,
                "term_months": term_months,
                "start_date": start_date,
                "accepted_at": accepted_at,
                "lines": mapped,
            }
        )
    except ValidationError as error:
        ids = [str(line.get("Id") or index) for index, line in enumerate(ordered)]
        raise CpqMappingError(
            quote_id, validation_fields(error, lambda loc: _source_of(loc, ids))
        ) from None


def _line_order(line: Mapping[str, Any]) -> tuple[bool, Decimal, str]:
    number = line.get("SBQQ__Number__c")
    try:
        position = Decimal(number) if number is not None and not isinstance(number, bool) else None
    except (InvalidOperation, TypeError):
        position = None
    return (position is None, position or Decimal(0), str(line.get("Id") or ""))


def _datetime(read: _Reader, record: Mapping[str, Any], base: str, name: str) -> datetime | None:
    text = read.text(record, base, name, required=True)
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        read.error(f"{base}.{name}", "must be a date-time with a zone")
        return None
    return moment


def _date(read: _Reader, record: Mapping[str, Any], base: str, name: str) -> date | None:
    text = read.text(record, base, name, required=False)
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        read.error(f"{base}.{name}", "must be a date (YYYY-MM-DD)")
        return None


def _line(read: _Reader, line: Mapping[str, Any], term_months: int | None) -> dict[str, Any]:
    line_id = read.text(line, LINE_SOBJECT, "Id", required=True) or "?"
    base = f"{LINE_SOBJECT}.{line_id}"
    out: dict[str, Any] = {"line_id": line_id}

    sku = read.text(line, base, "SBQQ__ProductCode__c", required=True)
    if sku is not None:
        out["sku"] = sku.upper()
    description = read.text(line, base, "SBQQ__Description__c", required=False)
    out["description"] = (description or "")[:DESCRIPTION_MAX]
    out["quantity"] = read.number(line, base, "SBQQ__Quantity__c", required=True)

    billing = _billing(read, line, base)
    if billing is not None:
        out["billing"] = billing
    if billing is BillingType.RECURRING:
        out["interval"] = _interval(read, line, base)
        line_term = read.whole(line, base, "SBQQ__SubscriptionTerm__c", 0)
        if line_term and term_months is not None and line_term != term_months:
            read.error(
                f"{base}.SBQQ__SubscriptionTerm__c", "differs from the quote's subscription term"
            )
    _prices(read, line, base, out, recurring=billing is BillingType.RECURRING)
    return out


def _billing(read: _Reader, line: Mapping[str, Any], base: str) -> BillingType | None:
    charge = read.text(line, base, "SBQQ__ChargeType__c", required=False)
    if charge is None:
        pricing = read.text(line, base, "SBQQ__SubscriptionPricing__c", required=False)
        return BillingType.ONE_TIME if pricing is None else BillingType.RECURRING
    kind = charge.lower()
    if kind == "recurring":
        return BillingType.RECURRING
    if kind == "one-time":
        return BillingType.ONE_TIME
    read.error(f"{base}.SBQQ__ChargeType__c", "unsupported charge type: use Recurring or One-Time")
    return None


def _interval(read: _Reader, line: Mapping[str, Any], base: str) -> BillingInterval | None:
    frequency = read.text(line, base, "SBQQ__BillingFrequency__c", required=False)
    if frequency is None:
        return None
    interval = _FREQUENCIES.get(frequency.lower())
    if interval is None:
        read.error(
            f"{base}.SBQQ__BillingFrequency__c",
            "unsupported billing frequency: use Monthly or Annual",
        )
    return interval


def _prices(
    read: _Reader, line: Mapping[str, Any], base: str, out: dict[str, Any], *, recurring: bool
) -> None:
    """``unit_price`` (per billing period) and ``discount_percent`` into ``out``."""
    listed = read.number(line, base, "SBQQ__ListPrice__c", required=True)
    net = read.number(line, base, "SBQQ__NetPrice__c", required=False)
    if net is None:
        net = read.number(line, base, "SBQQ__CustomerPrice__c", required=False)
        if net is None:
            read.error(f"{base}.SBQQ__NetPrice__c", "is required (or SBQQ__CustomerPrice__c)")
    multiplier = read.number(line, base, "SBQQ__ProrateMultiplier__c", required=False)
    if multiplier is None or not recurring:
        multiplier = Decimal(1)
    if multiplier <= 0:
        read.error(f"{base}.SBQQ__ProrateMultiplier__c", "must be positive")
        return
    if listed is None or net is None:
        return
    if listed < 0 or net < 0:
        read.error(f"{base}.SBQQ__ListPrice__c", "negative prices are not supported")
        return
    if net > listed:
        read.error(f"{base}.SBQQ__NetPrice__c", "is above the list price")
        return
    unit = listed / multiplier
    if unit.quantize(_UNIT_PLACES) != unit:
        read.error(
            f"{base}.SBQQ__ProrateMultiplier__c",
            "the list price does not divide into an exact price per billing period",
        )
        return
    # Written with the list price's places when it divides to them (540.00 / 12 = 45.00).
    exponent = listed.as_tuple().exponent
    places = Decimal(1).scaleb(exponent if isinstance(exponent, int) else 0)
    out["unit_price"] = unit.quantize(places) if unit.quantize(places) == unit else unit
    if listed == 0:
        out["discount_percent"] = Decimal(0)
        return
    percent = ((listed - net) * 100 / listed).quantize(_PERCENT_PLACES, rounding=ROUND_HALF_UP)
    out["discount_percent"] = percent


def _source_of(loc: tuple[int | str, ...], line_ids: list[str]) -> str:
    """The Salesforce field a pydantic ``loc`` of Quote refers to."""
    if not loc:
        return QUOTE_SOBJECT
    head, rest = str(loc[0]), loc[1:]
    if head != "lines":
        return f"{QUOTE_SOBJECT}.{_QUOTE_SOURCES.get(head, head)}"
    if not rest or not isinstance(rest[0], int) or not 0 <= rest[0] < len(line_ids):
        return LINE_SOBJECT
    base = f"{LINE_SOBJECT}.{line_ids[rest[0]]}"
    if len(rest) < 2:
        return base
    field = str(rest[1])
    return f"{base}.{_LINE_SOURCES.get(field, field)}"
