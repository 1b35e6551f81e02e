"""What an ERP must refuse when invoice-to-revenue posts to it, whichever ERP it is.

The ERP port (``adapters/ports.py``) promises the same guarantees from every vendor: only a
finalized, non-negative invoice becomes a receivable; a payment is applied only in the
receivable's currency and only while something is due; a receivable with payments applied is
never reversed; a credit note credits only what is left of each line and never more than is
still owed; and a key that was already posted with other figures is refused rather than
returned as if it were the same posting. Those rules live here, once; each adapter reads the
ERP's records into the canonical models of :mod:`domain.receivable`, asks these functions, and
raises the vendor error for a :class:`Refusal` (``adapters.errors.enforce``).

Messages name the ERP (``erp``: "NetSuite", "SAP", "Dynamics") and its record ids, never
customer data beyond ids and amounts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal

from domain.invoice import Invoice, InvoiceStatus
from domain.money import MINOR_UNITS
from domain.receivable import (
    CreditLine,
    CreditPosting,
    JournalPosting,
    PaymentApplication,
    Receivable,
    ReceivableCredit,
    RevenueJournal,
)
from domain.refusal import Refusal


def describe_lines(lines: Iterable[CreditLine]) -> str:
    """Credit lines as ``L1 100.00 + tax 19.00, ...`` (``nothing`` for none)."""
    return ", ".join(f"{x.line_id} {x.amount} + tax {x.tax}" for x in lines) or "nothing"


def unpostable(invoice: Invoice, erp: str) -> Refusal | None:
    """An invoice that cannot become a receivable: a draft or void one, or a negative one
    (that is a credit note, not an invoice)."""
    if invoice.status is InvoiceStatus.VOID or invoice.status is InvoiceStatus.DRAFT:
        return Refusal(
            "INVOICE_NOT_FINALIZED",
            f"invoice {invoice.invoice_id} is {invoice.status}: only a finalized invoice is "
            "posted as a receivable",
        )
    if invoice.total < 0:
        return Refusal(
            "NEGATIVE_TOTAL",
            f"invoice {invoice.invoice_id} totals {invoice.total} {invoice.currency}: a "
            f"{erp} invoice cannot be negative (that is a credit memo)",
        )
    return None


def other_invoice(receivable: Receivable, invoice: Invoice, key: str) -> Refusal | None:
    """The receivable found under ``key`` is not this invoice's."""
    if receivable.total == invoice.total and receivable.currency == invoice.currency:
        return None
    return Refusal(
        "EXTERNAL_ID_REUSED",
        f"receivable {receivable.receivable_id} keyed {key!r} is {receivable.total} "
        f"{receivable.currency}, not invoice {invoice.invoice_id}'s {invoice.total} "
        f"{invoice.currency}: the key belongs to another invoice",
    )


def other_journal(posting: JournalPosting, journal: RevenueJournal, key: str) -> Refusal | None:
    """The journal entry found under ``key`` moves other figures than ``journal``."""
    found = (posting.amount, posting.period, posting.currency)
    if found == (journal.amount, journal.period, journal.currency):
        return None
    return Refusal(
        "JOURNAL_MISMATCH",
        f"journal entry {posting.journal_entry_id} keyed {key!r} moves {posting.amount} "
        f"{posting.currency} in {posting.period}, not {journal.amount} {journal.currency} in "
        f"{journal.period}: the key was posted with other figures",
    )


def unpayable(receivable: Receivable, payment: PaymentApplication, ref: str) -> Refusal | None:
    """A payment the receivable ``ref`` cannot take: another currency, or nothing due."""
    if receivable.currency != payment.currency:
        return Refusal(
            "CURRENCY_MISMATCH",
            f"payment {payment.payment_id} is in {payment.currency} but receivable {ref} is in "
            f"{receivable.currency}",
        )
    if receivable.amount_due <= 0:
        return Refusal(
            "RECEIVABLE_CLOSED",
            f"receivable {ref} (invoice {receivable.invoice_id}) has nothing due, it is "
            f"{receivable.state}: payment {payment.payment_id} of {payment.amount} "
            f"{payment.currency} was not applied",
        )
    return None


def other_receivable(record: str, key: str, applies_to: str, ref: str) -> Refusal | None:
    """The ERP record (payment, credit) found under ``key`` belongs to another receivable."""
    if applies_to == ref:
        return None
    return Refusal(
        "EXTERNAL_ID_REUSED", f"{record} keyed {key!r} applies to {applies_to}, not {ref}"
    )


def irreversible(receivable: Receivable, ref: str, erp: str) -> Refusal | None:
    """A receivable with payments applied is not reversed: a reversal would leave what was
    paid owed back to the customer, which a person settles (refund in billing first)."""
    if receivable.amount_paid <= 0:
        return None
    return Refusal(
        "RECEIVABLE_PAID",
        f"receivable {ref} (invoice {receivable.invoice_id}) has {receivable.amount_paid} "
        f"{receivable.currency} of payments applied: a reversal would leave that much owed back "
        f"to the customer. Refund the payment in billing and settle it in {erp} by hand; "
        "revsync reverses unpaid receivables only",
    )


def uncreditable(
    receivable: Receivable,
    credit: ReceivableCredit,
    left: Mapping[str, tuple[Decimal, Decimal]],
    what: str,
    erp: str,
) -> Refusal | None:
    """A credit note the receivable cannot take. ``left`` is, per invoice line id, the amount
    and the tax not credited yet; ``what`` names the credit note and the ERP record."""
    if receivable.currency != credit.currency:
        return Refusal(
            "CURRENCY_MISMATCH",
            f"{what} is in {credit.currency}, the invoice in {receivable.currency}",
        )
    for line in credit.lines:
        if line.line_id not in left:
            return Refusal(
                "UNKNOWN_LINE",
                f"{what}: the invoice has no line {line.line_id} (its lines: "
                f"{', '.join(sorted(left)) or 'none'})",
            )
        amount_left, tax_left = left[line.line_id]
        if line.amount > amount_left or line.tax > tax_left:
            return Refusal(
                "LINE_OVER_CREDITED",
                f"{what}: line {line.line_id} would be credited {line.amount} + tax {line.tax} "
                f"{credit.currency}, but only {amount_left} + tax {tax_left} {credit.currency} "
                "of it is left to credit",
            )
    if credit.total > receivable.amount_due:
        return Refusal(
            "CREDIT_EXCEEDS_DUE",
            f"{what} credits {credit.total} {credit.currency}, more than the "
            f"{receivable.amount_due} {credit.currency} the invoice still owes (paid "
            f"{receivable.amount_paid}, credited {receivable.amount_credited}): {erp} would "
            "leave the difference on the customer, owed back to them. Refund or settle it in "
            f"{erp} by hand",
        )
    return None


def other_credit(posting: CreditPosting, credit: ReceivableCredit, key: str) -> Refusal | None:
    """The credit found under ``key`` credits other lines or amounts than ``credit``."""
    wanted = sorted((line for line in credit.lines if line.total), key=lambda x: x.line_id)
    if sorted(posting.lines, key=lambda x: x.line_id) == wanted:
        return None
    return Refusal(
        "CREDIT_MISMATCH",
        f"credit {posting.credit_memo_id} keyed {key!r} credits "
        f"{describe_lines(posting.lines)}, not {describe_lines(wanted)}: the key was posted "
        "with other figures",
    )


def unshowable_status(as_of: datetime, currency: str) -> Refusal | None:
    """A receivable status the CRM cannot show: statuses are ordered by the instant the saga
    decided them, so ``as_of`` needs a time zone; and the amount needs a known currency."""
    if as_of.tzinfo is None or as_of.utcoffset() is None:
        return Refusal(
            "INVALID_AS_OF",
            f"as_of {as_of.isoformat()} has no time zone: statuses are ordered by instant",
        )
    if currency not in MINOR_UNITS:
        return Refusal("INVALID_CURRENCY", f"unsupported currency {currency!r}")
    return None
