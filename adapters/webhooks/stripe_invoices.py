"""Stripe invoice and credit-note events, read into what the invoice-to-revenue saga takes.

- ``invoice.finalized``: the invoice id (the saga reads the invoice itself from Stripe);
- ``invoice.paid`` / ``invoice.payment_succeeded``: a :class:`PaymentReceived`. Both arrive
  for one payment and carry the same payment id, so the saga applies it once. The id is the
  payment intent (``payment_intent``, or ``payments.data[].payment.payment_intent`` on API
  versions that moved it), else the charge, else, for an invoice paid out of band, the
  invoice id itself;
- ``invoice.voided``: a :class:`VoidReceived`;
- ``credit_note.created``: a :class:`CreditNoteReceived` whose lines are keyed by the
  invoice line ids (``il_...``) the canonical invoice uses. A credit note line tied to no
  invoice line (``custom_line_item``), or lines beyond the page the event carries, are
  listed as ``unmatched``: the saga parks on them rather than dropping revenue. Each line's
  tax (``tax_amounts``) is carried per invoice line too, for the ERP credit memo; a
  tax-inclusive line's amount is taken net of its tax, as invoice lines are.

Amounts are Stripe integers in the currency's Stripe exponent (``stripe_exponent``, ISK
included). A field missing or malformed raises :class:`InvoiceEventError` with the dotted
paths; messages never quote payload values.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from adapters.billing.stripe import stripe_exponent
from adapters.webhooks.stripe import StripeEvent
from domain.invoice_contracts import CreditNoteReceived, PaymentReceived, VoidReceived
from domain.money import MINOR_UNITS, quantize

__all__ = [
    "CREDIT_NOTE_CREATED",
    "FINALIZED",
    "HANDLED",
    "PAYMENT_EVENTS",
    "VOIDED",
    "InvoiceEventError",
    "credit_note_from_event",
    "invoice_id_of",
    "payment_from_event",
    "void_from_event",
]

FINALIZED: Final = "invoice.finalized"
PAYMENT_EVENTS: Final = frozenset({"invoice.paid", "invoice.payment_succeeded"})
VOIDED: Final = "invoice.voided"
CREDIT_NOTE_CREATED: Final = "credit_note.created"
HANDLED: Final = frozenset({FINALIZED, VOIDED, CREDIT_NOTE_CREATED, *PAYMENT_EVENTS})

BASE = "data.object"


class InvoiceEventError(Exception):
    """The event does not carry what revsync needs; ``fields`` as the gateway's 422 lists."""

    def __init__(self, fields: list[dict[str, str]]) -> None:
        self.fields = fields
        super().__init__("; ".join(f"{f['field']}: {f['message']}" for f in fields))


def _fail(path: str, message: str) -> InvoiceEventError:
    return InvoiceEventError([{"field": f"{BASE}.{path}", "message": message}])


def _id(value: Any) -> str | None:
    """An id field that may be expanded into its object."""
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _text(obj: Mapping[str, Any], path: str, prefix: str = "") -> str:
    value = obj.get(path)
    if not isinstance(value, str) or not value:
        raise _fail(prefix + path, "is required (a non-empty string)")
    return value


def _currency(obj: Mapping[str, Any]) -> str:
    code = _text(obj, "currency").upper()
    if code not in MINOR_UNITS:
        raise _fail("currency", "is not a currency revsync books")
    return code


def _amount(value: Any, currency: str, path: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(path, "is not an integer amount")
    amount = Decimal(value).scaleb(-stripe_exponent(currency))
    if quantize(amount, currency) != amount:
        raise _fail(path, f"has more decimal places than {currency} allows")
    return quantize(amount, currency)


def _line_tax(row: Mapping[str, Any], currency: str, path: str) -> tuple[Decimal, Decimal]:
    """A credit note line's tax, and the part of it its ``amount`` includes (tax-inclusive
    prices), read as the invoice lines are (``tax_amounts``, or ``taxes`` on API versions that
    renamed it)."""
    key = "tax_amounts" if row.get("tax_amounts") is not None else "taxes"
    entries = row.get(key) or []
    if not isinstance(entries, list):
        raise _fail(f"{path}.{key}", "is not a list")
    tax = inclusive = Decimal(0)
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise _fail(f"{path}.{key}.{index}", "is not a tax amount")
        amount = _amount(entry.get("amount", 0) or 0, currency, f"{path}.{key}.{index}.amount")
        tax += amount
        if entry.get("inclusive") is True or entry.get("tax_behavior") == "inclusive":
            inclusive += amount
    return tax, inclusive


def _moment(value: Any, fallback: int) -> datetime:
    seconds = value if isinstance(value, int) and not isinstance(value, bool) else fallback
    return datetime.fromtimestamp(seconds, tz=UTC)


def invoice_id_of(event: StripeEvent) -> str:
    """The billing invoice an ``invoice.*`` or ``credit_note.*`` event is about."""
    obj = event.data.object
    if event.type == CREDIT_NOTE_CREATED:
        invoice_id = _id(obj.get("invoice"))
        if invoice_id is None:
            raise _fail("invoice", "is required: the invoice the credit note credits")
        return invoice_id
    return _text(obj, "id")


def _payment_id(obj: Mapping[str, Any]) -> str:
    for key in ("payment_intent", "charge"):
        found = _id(obj.get(key))
        if found is not None:
            return found
    payments = obj.get("payments")
    rows = payments.get("data") if isinstance(payments, Mapping) else None
    for row in rows if isinstance(rows, list) else []:
        payment = row.get("payment") if isinstance(row, Mapping) else None
        if isinstance(payment, Mapping):
            for key in ("payment_intent", "charge"):
                found = _id(payment.get(key))
                if found is not None:
                    return found
    if obj.get("paid_out_of_band") is True:
        return _text(obj, "id")
    raise _fail("payment_intent", "is required: no payment intent, charge or payment is named")


def payment_from_event(event: StripeEvent) -> PaymentReceived:
    """The payment an ``invoice.paid`` / ``invoice.payment_succeeded`` event reports."""
    obj = event.data.object
    currency = _currency(obj)
    amount = _amount(obj.get("amount_paid"), currency, "amount_paid")
    if amount <= 0:
        raise _fail("amount_paid", "must be positive for a payment")
    transitions = obj.get("status_transitions")
    paid_at = transitions.get("paid_at") if isinstance(transitions, Mapping) else None
    return PaymentReceived(
        payment_id=_payment_id(obj),
        amount=amount,
        currency=currency,
        paid_at=_moment(paid_at, event.created),
        event_id=event.id,
    )


def void_from_event(event: StripeEvent) -> VoidReceived:
    obj = event.data.object
    transitions = obj.get("status_transitions")
    voided_at = transitions.get("voided_at") if isinstance(transitions, Mapping) else None
    return VoidReceived(voided_at=_moment(voided_at, event.created), event_id=event.id)


def credit_note_from_event(event: StripeEvent) -> CreditNoteReceived:
    """A ``credit_note.created`` event: pre-tax amount per invoice line, total with tax."""
    obj = event.data.object
    credit_note_id = _text(obj, "id")
    currency = _currency(obj)
    total = _amount(obj.get("total"), currency, "total")
    lines_obj = obj.get("lines")
    rows = lines_obj.get("data") if isinstance(lines_obj, Mapping) else None
    if not isinstance(rows, list):
        raise _fail("lines.data", "is required (the credit note's lines)")
    lines: dict[str, Decimal] = {}
    taxes: dict[str, Decimal] = {}
    unmatched: list[str] = []
    for index, row in enumerate(rows):
        path = f"lines.data.{index}"
        if not isinstance(row, Mapping):
            raise _fail(path, "is not a credit note line")
        amount = _amount(row.get("amount"), currency, f"{path}.amount")
        discounts = row.get("discount_amount", 0) or 0
        amount -= _amount(discounts, currency, f"{path}.discount_amount")
        tax, inclusive = _line_tax(row, currency, path)
        amount -= inclusive
        line_id = _id(row.get("invoice_line_item"))
        if row.get("type") != "invoice_line_item" or line_id is None:
            unmatched.append(f"{_id(row) or path}: {amount} {currency} not tied to an invoice line")
            continue
        lines[line_id] = lines.get(line_id, Decimal(0)) + amount
        taxes[line_id] = taxes.get(line_id, Decimal(0)) + tax
    if isinstance(lines_obj, Mapping) and lines_obj.get("has_more") is True:
        unmatched.append(f"lines beyond the {len(rows)} the event carries")
    return CreditNoteReceived(
        credit_note_id=credit_note_id,
        currency=currency,
        lines={line_id: amount for line_id, amount in lines.items() if amount != 0},
        tax={line_id: tax for line_id, tax in taxes.items() if tax != 0},
        total=total,
        unmatched=unmatched,
        event_id=event.id,
    )
