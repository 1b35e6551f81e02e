"""What invoice-to-revenue books outside billing: the receivable in the ERP, its payments,
the revenue journals of its schedule, and the receivable status the CRM shows.

These are the inputs and results of the port methods the saga calls
(:class:`adapters.ports.ErpPort` ``post_receivable`` .. ``reverse_receivable`` and
:class:`adapters.ports.CrmPort` ``set_receivable_status``). Pure models, no I/O.

Keys (each side effect is idempotent by one of them):

* the receivable: ``external_id`` chosen by the saga (one per invoice);
* a revenue journal: the schedule entry's id ``{invoice}/{line}/{period}`` (or the void
  journal's ``.../void``), see :mod:`domain.revenue`;
* a payment: the billing system's payment id (Stripe charge / payment intent, or the
  invoice id for a payment recorded out of band): one billing payment is applied once;
* a reversal (credit memo): ``external_id`` chosen by the saga;
* a partial credit (credit memo for some lines): the billing credit note id.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from domain.money import CurrencyCode, quantize
from domain.revenue import Period, RevenueEntry, period_of

__all__ = [
    "CreditLine",
    "CreditPosting",
    "JournalPosting",
    "PaymentApplication",
    "PaymentPosting",
    "Receivable",
    "ReceivableCredit",
    "ReceivableState",
    "ReceivableStatus",
    "RevenueJournal",
]

Key = Annotated[str, StringConstraints(min_length=1, max_length=255)]
Amount = Annotated[Decimal, Field(max_digits=18)]


def _check_places(what: str, value: Decimal, currency: str) -> None:
    if value != quantize(value, currency):
        raise ValueError(f"{what} {value} has more decimal places than {currency} allows")


class ReceivableStatus(StrEnum):
    """The receivable status the CRM shows on the customer's account."""

    CURRENT = "current"  # open, not yet past due (plus grace)
    OVERDUE = "overdue"  # open and past due plus grace: dunning
    PAID = "paid"
    VOID = "void"  # voided or credited in full


class ReceivableState(StrEnum):
    """Where the ERP receivable stands."""

    OPEN = "open"  # something is still due (possibly partly paid)
    PAID = "paid"  # nothing due, paid by payments
    REVERSED = "reversed"  # nothing due, cancelled by a credit (void or credit note)

    @classmethod
    def of(cls, amount_due: Decimal, amount_paid: Decimal, amount_credited: Decimal) -> Self:
        """The state of a receivable with these amounts: open while anything is due; with
        nothing due, reversed if only credits settled it, else paid."""
        if amount_due > 0:
            return cls.OPEN
        if amount_credited > 0 and amount_paid == 0:
            return cls.REVERSED
        return cls.PAID


class Receivable(BaseModel):
    """The ERP's open item for one billing invoice (NetSuite: an ``invoice`` record)."""

    model_config = ConfigDict(frozen=True)

    receivable_id: str = Field(description="ERP internal id")
    external_id: str = Field(description="The saga's key for it")
    invoice_id: str | None = Field(default=None, description="Billing invoice id it mirrors")
    customer_id: str = Field(description="ERP customer internal id")
    currency: CurrencyCode
    total: Amount = Field(description="Lines plus tax")
    tax: Amount = Decimal(0)
    amount_paid: Amount = Decimal(0)
    amount_credited: Amount = Decimal(0)
    amount_due: Amount = Field(description="What is still owed")
    issue_date: date
    due_date: date
    state: ReceivableState
    reversal_ids: tuple[str, ...] = Field(
        default=(), description="ERP ids of the credit memos that reversed it"
    )


class RevenueJournal(BaseModel):
    """One revenue schedule entry to post: move ``amount`` from deferred revenue to revenue
    in ``period`` (a negative amount moves it back: a reversal or a credit)."""

    model_config = ConfigDict(frozen=True)

    journal_id: Key = Field(description="The schedule entry's id: the journal's idempotency key")
    invoice_id: str
    line_id: str
    period: Period
    amount: Amount
    currency: CurrencyCode
    customer_id: str | None = Field(
        default=None, description="ERP customer the journal lines name, if any"
    )
    memo: Annotated[str, StringConstraints(max_length=999)] = ""

    @model_validator(mode="after")
    def _amount_is_postable(self) -> Self:
        if self.amount == 0:
            raise ValueError(
                f"journal {self.journal_id} is zero: a zero entry is not posted (skip it)"
            )
        _check_places(f"journal {self.journal_id}: amount", self.amount, self.currency)
        return self

    @classmethod
    def for_entry(
        cls,
        entry: RevenueEntry,
        *,
        invoice_id: str,
        currency: str,
        customer_id: str | None = None,
    ) -> RevenueJournal:
        """The journal of one schedule (or reversal) entry, keyed by the entry's id."""
        return cls(
            journal_id=entry.id,
            invoice_id=invoice_id,
            line_id=entry.line_id,
            period=entry.period,
            amount=entry.amount,
            currency=currency,
            customer_id=customer_id,
            memo=f"revsync revenue {entry.id}",
        )


class JournalPosting(BaseModel):
    """A revenue journal as the ERP booked it."""

    model_config = ConfigDict(frozen=True)

    journal_entry_id: str = Field(description="ERP internal id of the journal entry")
    journal_id: str = Field(description="Its key (the schedule entry id)")
    period: Period
    amount: Amount = Field(description="Signed: positive recognises revenue")
    currency: CurrencyCode


class PaymentApplication(BaseModel):
    """A billing payment to apply to the ERP receivable."""

    model_config = ConfigDict(frozen=True)

    payment_id: Key = Field(description="Billing payment id: the ERP payment's key")
    invoice_id: str = Field(description="Billing invoice the payment paid")
    receivable_id: str = Field(description="ERP receivable to apply it to")
    amount: Amount = Field(gt=0)
    currency: CurrencyCode
    paid_on: date

    @model_validator(mode="after")
    def _amount_has_currency_places(self) -> Self:
        _check_places(f"payment {self.payment_id}: amount", self.amount, self.currency)
        return self

    @property
    def period(self) -> str:
        return period_of(self.paid_on)


class PaymentPosting(BaseModel):
    """A payment as the ERP booked it. ``applied`` went to the receivable; ``unapplied`` is
    left on the customer (an overpayment)."""

    model_config = ConfigDict(frozen=True)

    payment_record_id: str = Field(description="ERP internal id of the payment")
    payment_id: str = Field(description="Its key (the billing payment id)")
    receivable_id: str
    amount: Amount
    applied: Amount
    unapplied: Amount = Decimal(0)
    currency: CurrencyCode
    paid_on: date


class CreditLine(BaseModel):
    """What a credit takes off one receivable line: the pre-tax amount and its tax."""

    model_config = ConfigDict(frozen=True)

    line_id: str = Field(description="The billing invoice line id (``custcol_revsync_line``)")
    amount: Amount = Field(ge=0, description="Pre-tax amount credited")
    tax: Amount = Field(default=Decimal(0), ge=0, description="Tax credited on that line")

    @property
    def total(self) -> Decimal:
        return self.amount + self.tax


class ReceivableCredit(BaseModel):
    """A partial credit of the ERP receivable: a billing credit note, line by line."""

    model_config = ConfigDict(frozen=True)

    external_id: Key = Field(description="The billing credit note id: the credit memo's key")
    invoice_id: str = Field(description="Billing invoice the credit note credits")
    receivable_id: str = Field(description="ERP receivable to credit")
    currency: CurrencyCode
    lines: tuple[CreditLine, ...] = Field(min_length=1)
    reason: Annotated[str, StringConstraints(max_length=999)] = ""

    @model_validator(mode="after")
    def _lines_are_creditable(self) -> Self:
        seen: set[str] = set()
        for line in self.lines:
            if line.line_id in seen:
                raise ValueError(f"credit {self.external_id}: line {line.line_id} appears twice")
            seen.add(line.line_id)
            _check_places(
                f"credit {self.external_id} line {line.line_id}: amount", line.amount, self.currency
            )
            _check_places(
                f"credit {self.external_id} line {line.line_id}: tax", line.tax, self.currency
            )
        if self.total <= 0:
            raise ValueError(f"credit {self.external_id} credits nothing")
        return self

    @property
    def total(self) -> Decimal:
        return sum((line.total for line in self.lines), Decimal(0))


class CreditPosting(BaseModel):
    """A partial credit as the ERP booked it: a credit memo applied to the receivable.
    ``unapplied`` is what the ERP left on the customer (the receivable owed less than the
    credit by the time it was posted)."""

    model_config = ConfigDict(frozen=True)

    credit_memo_id: str = Field(description="ERP internal id of the credit memo")
    external_id: str = Field(description="Its key (the billing credit note id)")
    receivable_id: str
    currency: CurrencyCode
    lines: tuple[CreditLine, ...]
    total: Amount = Field(description="Lines plus tax")
    applied: Amount
    unapplied: Amount = Decimal(0)
