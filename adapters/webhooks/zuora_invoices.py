"""Zuora callout notifications about invoices, read into what the invoice-to-revenue saga takes.

Zuora's Events & Notifications send a *callout* (an HTTP POST) when a notification's event
fires; the body is a template the tenant defines from merge fields. revsync defines one JSON
body shape (:data:`CALLOUT_SCHEMA`; the templates to paste are in docs/api.md), one
notification per event:

- ``invoice.posted`` (standard event *Invoice Posted*): the invoice number; the saga reads the
  invoice itself from Zuora (``billing.get_invoice``);
- ``payment.applied`` (a custom event on ``PaymentApplication``) or ``payment.processed``
  (standard event *Payment Processed*, electronic payments only): a :class:`PaymentReceived`
  for what the payment applies to *this* invoice. The payment id the saga (and the ERP
  payment's key) uses is ``<payment number>@<invoice number>``: one Zuora payment can settle
  several invoices, each its own ERP payment, and both events about one payment and invoice
  carry the same id, so the saga applies it once;
- ``invoice.canceled`` (a custom event on ``Invoice``: the status became ``Canceled``): a
  :class:`VoidReceived`;
- ``creditmemo.posted`` (a custom event on ``CreditMemo``: the status became ``Posted``): a
  :class:`CreditNoteReceived` whose lines are keyed by the invoice item ids the canonical
  invoice uses (each credit memo item's ``sourceItemId``). An item tied to no invoice item
  (no ``sourceItemId``, or a ``sourceItemType`` other than ``InvoiceDetail``), or items that do
  not add up to the memo's total, are listed as ``unmatched``: the saga parks on them rather
  than dropping revenue.

Merge fields render inside JSON strings, so amounts arrive as decimal strings in major units
(``"1494.64"``; JSON numbers are taken too) and must be plain: no grouping separators, no
more decimal places than the currency has. Dates are ISO 8601: a bare ``yyyy-mm-dd`` is the
start of that day in the accounting time zone, so the saga books the payment on the day Zuora
says; a date-time without an offset is read as wall-clock time in that zone too. A field
missing or malformed raises :class:`CalloutError` with its name; messages never quote payload
values.

Authentication (:func:`verify`): the callout template sends the shared secret in a custom
callout header, :data:`SECRET_HEADER`; it is compared in constant time with each configured
secret (several while one is rotated). Zuora adds ``Zuora-Notification-Id`` (the same on every
retry of one notification), which revsync logs as the event id.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final
from zoneinfo import ZoneInfo

from adapters.webhooks.signatures import MalformedPayload, SignatureError
from domain.invoice_contracts import (
    CreditNoteReceived,
    PaymentReceived,
    VoidReceived,
    start_of,
)
from domain.money import MINOR_UNITS, quantize

__all__ = [
    "CALLOUT_SCHEMA",
    "CANCELED",
    "CREDIT_MEMO_POSTED",
    "EVENTS",
    "NOTIFICATION_HEADER",
    "PAYMENT_EVENTS",
    "POSTED",
    "SECRET_HEADER",
    "CalloutError",
    "ZuoraCallout",
    "credit_note_from_callout",
    "parse_callout",
    "payment_from_callout",
    "payment_key",
    "verify",
    "void_from_callout",
]

SECRET_HEADER: Final = "X-Revsync-Callout-Secret"
NOTIFICATION_HEADER: Final = "Zuora-Notification-Id"

POSTED: Final = "invoice.posted"
PAYMENT_EVENTS: Final = frozenset({"payment.applied", "payment.processed"})
CANCELED: Final = "invoice.canceled"
CREDIT_MEMO_POSTED: Final = "creditmemo.posted"
EVENTS: Final = frozenset({POSTED, CANCELED, CREDIT_MEMO_POSTED, *PAYMENT_EVENTS})

# The canonical invoice's id pattern (domain.quote.Identifier): Zuora invoice numbers fit it.
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_PLAIN_DECIMAL = re.compile(r"^-?[0-9]{1,15}(\.[0-9]{1,9})?$")
_MAX_NOTIFICATION_ID = 128
INVOICE_DETAIL: Final = "InvoiceDetail"

_STRING = {"type": "string"}
_DECIMAL = {
    "anyOf": [{"type": "string", "pattern": _PLAIN_DECIMAL.pattern}, {"type": "number"}],
    "description": 'A plain decimal in major units, e.g. "1494.64"',
}
_DATE = {
    "type": "string",
    "description": "ISO 8601: yyyy-mm-dd, or a date-time (without an offset: in the "
    "accounting time zone)",
}
# The body every revsync callout template renders (docs/api.md has the templates).
CALLOUT_SCHEMA: Final[dict[str, Any]] = {
    "title": "ZuoraCallout",
    "type": "object",
    "required": ["event", "invoiceNumber"],
    "properties": {
        "event": {"type": "string", "enum": sorted(EVENTS)},
        "invoiceNumber": {**_STRING, "description": "The invoice the event is about"},
        "paymentNumber": {**_STRING, "description": "payment.*: the Zuora payment"},
        "amount": {
            **_DECIMAL,
            "description": "payment.*: what the payment applies to this invoice; "
            "creditmemo.posted: the memo's total with tax",
        },
        "currency": {**_STRING, "description": "payment.*, creditmemo.posted: ISO 4217"},
        "effectiveDate": {**_DATE, "description": "payment.*: when it was paid"},
        "updatedDate": {**_DATE, "description": "invoice.canceled: when it was cancelled"},
        "memoNumber": {**_STRING, "description": "creditmemo.posted: the credit memo"},
        "items": {
            "type": "array",
            "description": "creditmemo.posted: its items (a trailing null is skipped)",
            "items": {
                "anyOf": [
                    {
                        "type": "object",
                        "required": ["amount"],
                        "properties": {
                            "id": _STRING,
                            "sourceItemId": {
                                **_STRING,
                                "description": "The invoice item it credits",
                            },
                            "sourceItemType": {**_STRING, "description": "InvoiceDetail"},
                            "amount": {**_DECIMAL, "description": "Without tax"},
                            "tax": _DECIMAL,
                        },
                    },
                    {"type": "null"},
                ]
            },
        },
    },
}


class CalloutError(Exception):
    """The callout does not carry what revsync needs; ``fields`` as the gateway's 422 lists."""

    def __init__(self, fields: list[dict[str, str]]) -> None:
        self.fields = fields
        super().__init__("; ".join(f"{f['field']}: {f['message']}" for f in fields))


def _fail(path: str, message: str) -> CalloutError:
    return CalloutError([{"field": path, "message": message}])


# -- authentication -------------------------------------------------------------------------


def _digest(value: str) -> bytes:
    # Hashing both sides first makes the comparison independent of the values' lengths.
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


def verify(secrets: Sequence[str], header: str | None) -> None:
    """Accept the callout when :data:`SECRET_HEADER` holds one of ``secrets``; every secret
    is compared, in constant time. Raises :class:`SignatureError` otherwise."""
    if not header:
        raise SignatureError(f"missing {SECRET_HEADER} header")
    presented = _digest(header)
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(_digest(secret), presented)
    if not matched:
        raise SignatureError("callout secret does not match")


def notification_id(header: str | None) -> str | None:
    """Zuora's ``Zuora-Notification-Id`` when it looks like one (it is logged, never trusted)."""
    if header and len(header) <= _MAX_NOTIFICATION_ID and header.isascii() and header.isalnum():
        return header
    return None


# -- the body -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZuoraCallout:
    """A parsed callout: its ``event``, the ``invoice`` number and the whole body."""

    event: str
    invoice: str
    body: Mapping[str, Any]
    notification_id: str | None = None

    @property
    def event_id(self) -> str:
        """What logs and the saga record as the event: Zuora's notification id, else the
        event and its object."""
        return self.notification_id or f"zuora:{self.event}:{self.invoice}"


def parse_callout(body: bytes, notification: str | None = None) -> ZuoraCallout:
    """The callout in ``body``. Raises :class:`MalformedPayload` when it is not JSON and
    :class:`CalloutError` when it is not a revsync callout (no known ``event``, no invoice)."""
    try:
        document = json.loads(body, parse_float=Decimal)
    except (ValueError, RecursionError):
        raise MalformedPayload("body is not valid JSON") from None
    if not isinstance(document, dict):
        raise _fail("(body)", "is not a JSON object")
    event = document.get("event")
    if not isinstance(event, str) or event not in EVENTS:
        raise _fail("event", f"must be one of {', '.join(sorted(EVENTS))}")
    invoice = _key(document, "invoiceNumber")
    return ZuoraCallout(event, invoice, document, notification_id(notification))


def _text(obj: Mapping[str, Any], name: str, path: str | None = None) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or not value.strip():
        raise _fail(path or name, "is required (a non-empty string)")
    return value.strip()


def _key(obj: Mapping[str, Any], name: str) -> str:
    value = _text(obj, name)
    if not _KEY.fullmatch(value):
        raise _fail(name, "is not a Zuora number (letters, digits, '-', '_', '.', ':')")
    return value


def _currency(obj: Mapping[str, Any]) -> str:
    code = _text(obj, "currency").upper()
    if code not in MINOR_UNITS:
        raise _fail("currency", "is not a currency revsync books")
    return code


def _amount(value: Any, currency: str, path: str) -> Decimal:
    """A decimal in major units, from a merge field's string or a JSON number."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise _fail(path, "is required (a decimal amount)")
    text = value.strip() if isinstance(value, str) else str(value)
    if not _PLAIN_DECIMAL.fullmatch(text):
        raise _fail(path, "is not a plain decimal amount (digits and one '.', no separators)")
    try:
        amount = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
        raise _fail(path, "is not a decimal amount") from None
    if quantize(amount, currency) != amount:
        raise _fail(path, f"has more decimal places than {currency} allows")
    return quantize(amount, currency)


def _moment(obj: Mapping[str, Any], name: str, zone: str) -> datetime:
    """A date (the start of that day in ``zone``) or a date-time (without an offset: the
    wall-clock time in ``zone``)."""
    text = _text(obj, name)
    try:
        if len(text) == 10:
            return start_of(date.fromisoformat(text), zone)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _fail(name, "is not an ISO 8601 date (yyyy-mm-dd) or date-time") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=ZoneInfo(zone))


def payment_key(payment_number: str, invoice_number: str) -> str:
    """The id the saga and the ERP payment use for one payment's application to one invoice."""
    return f"{payment_number}@{invoice_number}"


def payment_from_callout(callout: ZuoraCallout, zone: str) -> PaymentReceived:
    """A ``payment.applied`` / ``payment.processed`` callout: what it pays of the invoice."""
    body = callout.body
    currency = _currency(body)
    amount = _amount(body.get("amount"), currency, "amount")
    if amount <= 0:
        raise _fail("amount", "must be positive for a payment")
    return PaymentReceived(
        payment_id=payment_key(_key(body, "paymentNumber"), callout.invoice),
        amount=amount,
        currency=currency,
        paid_at=_moment(body, "effectiveDate", zone),
        event_id=callout.event_id,
    )


def void_from_callout(callout: ZuoraCallout, zone: str) -> VoidReceived:
    """An ``invoice.canceled`` callout."""
    return VoidReceived(
        voided_at=_moment(callout.body, "updatedDate", zone), event_id=callout.event_id
    )


def credit_note_from_callout(callout: ZuoraCallout) -> CreditNoteReceived:
    """A ``creditmemo.posted`` callout: pre-tax amount and tax per invoice item, the total
    with tax, and what could not be tied to an invoice item."""
    body = callout.body
    memo = _key(body, "memoNumber")
    currency = _currency(body)
    total = _amount(body.get("amount"), currency, "amount")
    rows = body.get("items")
    if not isinstance(rows, list):
        raise _fail("items", "is required (the credit memo's items)")
    lines: dict[str, Decimal] = {}
    taxes: dict[str, Decimal] = {}
    unmatched: list[str] = []
    counted = Decimal(0)
    for index, row in enumerate(rows):
        path = f"items.{index}"
        if row is None:  # the sentinel that closes a rendered list: `{{/...}} null]`
            continue
        if not isinstance(row, Mapping):
            raise _fail(path, "is not a credit memo item")
        amount = _amount(row.get("amount"), currency, f"{path}.amount")
        tax = _amount(row.get("tax") or "0", currency, f"{path}.tax")
        counted += amount + tax
        source = row.get("sourceItemId")
        kind = row.get("sourceItemType")
        if not isinstance(source, str) or not source.strip() or kind not in (None, INVOICE_DETAIL):
            name = row.get("id") if isinstance(row.get("id"), str) and row.get("id") else path
            unmatched.append(f"{name}: {amount} {currency} not tied to an invoice item")
            continue
        line_id = source.strip()
        lines[line_id] = lines.get(line_id, Decimal(0)) + amount
        taxes[line_id] = taxes.get(line_id, Decimal(0)) + tax
    if counted != total:
        unmatched.append(
            f"items come to {counted} {currency} with tax but the memo's total is {total}"
        )
    return CreditNoteReceived(
        credit_note_id=memo,
        currency=currency,
        lines={line_id: amount for line_id, amount in lines.items() if amount != 0},
        tax={line_id: tax for line_id, tax in taxes.items() if tax != 0},
        total=total,
        unmatched=unmatched,
        event_id=callout.event_id,
    )
