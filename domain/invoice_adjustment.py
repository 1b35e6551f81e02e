"""Late invoice events: a payment, credit note or void for an invoice whose saga has ended.

An invoice-to-revenue saga ends CLOSED (paid, every period recognised) or VOIDED, and billing
can still say something about the invoice afterwards: a credit note for a paid invoice (a
refund, a goodwill credit), a payment that overtook nothing but arrived after the saga
closed, a void. Each such event starts one ``InvoiceAdjustment`` saga
(``workflows/invoice_adjustment.py``) that books it against what the ended saga left
(:class:`InvoiceAdjustmentBase`): the ERP receivable, the revenue schedule, the amounts.

Identity: :func:`adjustment_workflow_id` derives the adjustment's id from the invoice and the
event's own business id (the payment id, the credit note id; a void happens once per
invoice), and the gateway starts it with ``REJECT_DUPLICATE`` id reuse: a redelivered event,
or the second of Stripe's two events about one payment, starts nothing. An event the ended
saga had already applied is a duplicate too (:func:`already_handled`).

Pure models and rules, no I/O: safe inside the workflow sandbox.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Self

from pydantic import BaseModel, Field, model_validator

from domain.invoice_contracts import (
    CreditNoteReceived,
    InvoiceDecision,
    InvoiceParked,
    InvoicePolicy,
    InvoiceStage,
    InvoiceStepRecord,
    InvoiceToRevenueStatus,
    PaymentReceived,
    PaymentRecord,
    TimeZoneName,
    VoidReceived,
)
from domain.receivable import Receivable, ReceivableStatus
from domain.revenue import RevenueSchedule

__all__ = [
    "ADJUSTMENT_WORKFLOW_TYPE",
    "AdjustmentKind",
    "AdjustmentStage",
    "InvoiceAdjustmentBase",
    "InvoiceAdjustmentInput",
    "InvoiceAdjustmentStatus",
    "adjustment_prefix",
    "adjustment_workflow_id",
    "already_handled",
    "standing",
]

ADJUSTMENT_WORKFLOW_TYPE = "InvoiceAdjustment"


class AdjustmentKind(StrEnum):
    PAYMENT = "payment"
    CREDIT_NOTE = "credit_note"
    VOID = "void"


class AdjustmentStage(StrEnum):
    """An adjustment's stage, in the ``InvoiceStage`` search attribute (next to the invoice
    saga's own stages: ``NEEDS_ATTENTION`` means the same for both)."""

    ADJUSTING = "ADJUSTING"  # booking the late event
    NEEDS_ATTENTION = "NEEDS_ATTENTION"  # parked: waits for an operator
    ADJUSTED = "ADJUSTED"  # booked, or settled by hand (final)


def adjustment_prefix(invoice_id: str) -> str:
    """What the ids of every adjustment of ``invoice_id`` start with."""
    return f"i2r-adj-{invoice_id}-"


def adjustment_workflow_id(invoice_id: str, kind: AdjustmentKind, key: str) -> str:
    """``i2r-adj-<invoice>-<kind>-<key>``: one adjustment per late payment (by payment id),
    credit note (by credit note id) or void (once) of an invoice."""
    return f"{adjustment_prefix(invoice_id)}{kind.value}-{key}"


class InvoiceAdjustmentBase(BaseModel):
    """What an ended invoice saga leaves for its late events (its ``adjustment_base``
    query): its final status, the revenue schedule as credit notes changed it, the ERP
    receivable (None when it ended before posting one), and the payments and credit notes it
    applied (or parked and had settled by hand). A signal the saga received but never
    handled (it arrived as the saga ended) is not among them."""

    status: InvoiceToRevenueStatus
    schedule: RevenueSchedule | None = None
    receivable: Receivable | None = None
    handled_payments: list[str] = Field(default_factory=list)
    handled_credit_notes: list[str] = Field(default_factory=list)


class InvoiceAdjustmentInput(BaseModel):
    """The ``InvoiceAdjustment`` saga's input: one late event (exactly one of ``payment``,
    ``credit_note``, ``void``) and the ended saga's base."""

    invoice_id: str
    base: InvoiceAdjustmentBase
    payment: PaymentReceived | None = None
    credit_note: CreditNoteReceived | None = None
    void: VoidReceived | None = None
    accounting_timezone: TimeZoneName = "UTC"
    policy: InvoicePolicy = Field(default_factory=InvoicePolicy)
    event_id: str | None = Field(default=None, description="The billing event that said so")

    @model_validator(mode="after")
    def _one_event(self) -> Self:
        given = [e for e in (self.payment, self.credit_note, self.void) if e is not None]
        if len(given) != 1:
            raise ValueError("an adjustment books exactly one payment, credit note or void")
        return self

    @property
    def kind(self) -> AdjustmentKind:
        if self.payment is not None:
            return AdjustmentKind.PAYMENT
        if self.credit_note is not None:
            return AdjustmentKind.CREDIT_NOTE
        return AdjustmentKind.VOID

    @property
    def key(self) -> str:
        """The event's own business id: the payment id, the credit note id, or ``void``."""
        if self.payment is not None:
            return self.payment.payment_id
        if self.credit_note is not None:
            return self.credit_note.credit_note_id
        return AdjustmentKind.VOID.value

    @property
    def workflow_id(self) -> str:
        return adjustment_workflow_id(self.invoice_id, self.kind, self.key)


def already_handled(base: InvoiceAdjustmentBase, kind: AdjustmentKind, key: str) -> str | None:
    """Why the late event ``kind``/``key`` needs no adjustment (the ended saga applied it
    itself), or None when it does."""
    saga = base.status.workflow_id
    if kind is AdjustmentKind.PAYMENT and key in base.handled_payments:
        return f"payment {key} was applied by {saga}"
    if kind is AdjustmentKind.CREDIT_NOTE and key in base.handled_credit_notes:
        return f"credit note {key} was applied by {saga}"
    if kind is AdjustmentKind.VOID and base.status.stage is InvoiceStage.VOIDED:
        return f"{saga} voided the invoice"
    return None


def standing(*, voided: bool, amount_due: Decimal, amount_paid: Decimal) -> ReceivableStatus:
    """What CRM shows for the invoice after an adjustment: VOID once voided; otherwise what
    is due decides (as in the invoice saga): CURRENT while something is owed, PAID once
    nothing is and something was paid, VOID when credits alone settled it."""
    if voided:
        return ReceivableStatus.VOID
    if amount_due > 0:
        return ReceivableStatus.CURRENT
    return ReceivableStatus.PAID if amount_paid > 0 else ReceivableStatus.VOID


class InvoiceAdjustmentStatus(BaseModel):
    """Everything an operator needs to know about one adjustment (the ``status`` query and
    the workflow's result)."""

    workflow_id: str
    invoice_id: str
    saga_workflow_id: str = Field(description="The ended invoice saga (i2r-<invoice id>)")
    saga_stage: InvoiceStage = Field(description="How the invoice saga ended")
    kind: AdjustmentKind
    key: str = Field(description="Payment id, credit note id, or void")
    event_id: str | None = None
    stage: AdjustmentStage
    stage_since: datetime
    account_id: str | None = None
    currency: str | None = None
    total: Decimal | None = None
    amount_paid: Decimal = Decimal(0)
    amount_credited: Decimal = Decimal(0)
    amount_due: Decimal | None = None
    erp_customer_id: str | None = None
    receivable_id: str | None = None
    receivable_status: ReceivableStatus | None = Field(
        default=None, description="The status last shown in CRM"
    )
    payment: PaymentRecord | None = None
    credit_memo_id: str | None = None
    revenue_taken_back: Decimal = Decimal(0)
    journals: list[str] = Field(default_factory=list, description="Keys of the journals posted")
    voided_at: datetime | None = None
    reason: str | None = None
    parked: InvoiceParked | None = None
    decisions: list[InvoiceDecision] = Field(default_factory=list)
    steps: list[InvoiceStepRecord] = Field(default_factory=list)

    def step(self, step: str, key: str | None = None) -> InvoiceStepRecord | None:
        for record in reversed(self.steps):
            if record.step == step and (key is None or record.key == key):
                return record
        return None
