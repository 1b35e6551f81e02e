"""Invoice-to-revenue: its stages, steps, policy, signals, step contracts and status.

The saga (``workflows/invoice_to_revenue.py``, workflow id ``i2r-<invoice id>``) and its
activities (``activities/invoices.py``) both import this module. Pure models and rules, no
I/O: safe inside the workflow sandbox.

Operators decide on a parked invoice with the same :class:`domain.saga.ResolveRequest` as on a
parked quote (retry, skip; an invoice has nothing to compensate: its reversal comes from
billing, as a void or a credit note).
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from domain.invoice import Invoice
from domain.money import CurrencyCode
from domain.receivable import Receivable, ReceivableStatus
from domain.revenue import Period, RevenueSchedule
from domain.saga import NonBlank, ResolveAction

__all__ = [
    "CreditNoteReceived",
    "GetInvoice",
    "InvoiceActivity",
    "InvoiceCarry",
    "InvoiceDecision",
    "InvoiceParked",
    "InvoicePolicy",
    "InvoiceStage",
    "InvoiceStep",
    "InvoiceStepRecord",
    "InvoiceToRevenueInput",
    "InvoiceToRevenueStatus",
    "PaymentReceived",
    "PaymentRecord",
    "PostReceivable",
    "ReverseReceivable",
    "SetReceivableStatus",
    "TimeZoneName",
    "VoidReceived",
    "invoice_resolution_problem",
    "invoice_workflow_id",
]

Amount = Annotated[Decimal, Field(max_digits=18)]


def invoice_workflow_id(invoice_id: str) -> str:
    """The saga of one billing invoice: at most one per invoice id, ever."""
    return f"i2r-{invoice_id}"


class InvoiceActivity:
    """Registered names of the invoice-to-revenue activities (queue = name prefix)."""

    BILLING_GET_INVOICE = "billing.get_invoice"
    ERP_POST_RECEIVABLE = "erp.post_receivable"
    ERP_POST_REVENUE_JOURNAL = "erp.post_revenue_journal"
    ERP_APPLY_PAYMENT = "erp.apply_payment"
    ERP_REVERSE_RECEIVABLE = "erp.reverse_receivable"
    ERP_CREDIT_RECEIVABLE = "erp.credit_receivable"
    CRM_SET_RECEIVABLE_STATUS = "crm.set_receivable_status"


# -- stages and steps -------------------------------------------------------------------------


class InvoiceStage(StrEnum):
    """The closed vocabulary of the ``InvoiceStage`` search attribute."""

    RECEIVED = "RECEIVED"  # reading the invoice from billing
    POSTING_RECEIVABLE = "POSTING_RECEIVABLE"
    AWAITING_PAYMENT = "AWAITING_PAYMENT"  # open, not past due plus grace; revenue recognised
    OVERDUE = "OVERDUE"  # open and past due plus grace: dunning
    PAID = "PAID"  # nothing due; revenue still recognised as periods close
    VOIDING = "VOIDING"
    VOIDED = "VOIDED"  # the receivable and the revenue are reversed (final)
    CLOSED = "CLOSED"  # paid and every period recognised (final)
    NEEDS_ATTENTION = "NEEDS_ATTENTION"  # parked: waits for an operator

    @property
    def is_terminal(self) -> bool:
        return self in (InvoiceStage.VOIDED, InvoiceStage.CLOSED)


class InvoiceStep(StrEnum):
    """The saga's steps; also the values of ``BlockedStep`` on a parked invoice."""

    FETCH_INVOICE = "fetch_invoice"
    POST_RECEIVABLE = "post_receivable"
    POST_JOURNAL = "post_journal"
    APPLY_PAYMENT = "apply_payment"
    APPLY_CREDIT_NOTE = "apply_credit_note"
    CREDIT_RECEIVABLE = "credit_receivable"
    REVERSE_RECEIVABLE = "reverse_receivable"
    REVERSE_REVENUE = "reverse_revenue"
    NOTIFY_CRM = "notify_crm"


def invoice_resolution_problem(step: InvoiceStep, action: ResolveAction) -> str | None:
    """Why ``action`` does not apply to an invoice parked at ``step``; None when it does.

    Nothing is ever compensated: the invoice exists in billing whatever revsync does, and
    its undoing arrives from billing (void, credit note). Skip means "done by hand": allowed
    where nothing later depends on the step's result (a journal the accountant posted, a
    payment applied in the ERP, a reversal settled by hand, the CRM status). The invoice read
    and the receivable cannot be skipped: every later step needs them. A refused credit note
    cannot succeed on retry (its lines do not fit the invoice): skip it after handling it by
    hand.
    """
    if action is ResolveAction.COMPENSATE:
        return (
            "an invoice is never compensated: void it or credit it in billing; retry or skip "
            f"{step.value}"
        )
    if action is ResolveAction.SKIP and step in (
        InvoiceStep.FETCH_INVOICE,
        InvoiceStep.POST_RECEIVABLE,
    ):
        return f"{step.value} cannot be skipped: every later step needs it; retry it"
    if action is ResolveAction.RETRY and step is InvoiceStep.APPLY_CREDIT_NOTE:
        return "the credit note does not fit the invoice; retrying cannot change that: skip it"
    return None


def invoice_allowed_resolutions(step: InvoiceStep) -> list[ResolveAction]:
    return [a for a in ResolveAction if invoice_resolution_problem(step, a) is None]


# -- policy -----------------------------------------------------------------------------------


def _check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/Berlin)") from None
    return value


TimeZoneName = Annotated[str, AfterValidator(_check_zone)]


class InvoicePolicy(BaseModel):
    """Rules an invoice saga runs under, fixed at its start (so they are in its history)."""

    model_config = ConfigDict(frozen=True)

    grace: timedelta = Field(
        default=timedelta(days=7),
        ge=timedelta(0),
        description="Days after the due date before an unpaid invoice is overdue (dunning)",
    )
    step_retry_budget: timedelta = Field(
        default=timedelta(minutes=30),
        gt=timedelta(0),
        description="How long a step retries transient failures before the saga parks",
    )
    periods_per_run: int = Field(
        default=12,
        ge=1,
        le=120,
        description="Periods one workflow run posts before it continues as new",
    )
    wake_spread: timedelta = Field(
        default=timedelta(hours=4),
        ge=timedelta(0),
        lt=timedelta(days=1),
        description="Open invoices wake for a period close or an overdue day at a moment of "
        "this window after midnight, fixed per invoice, not all at once",
    )


def wake_offset(key: str, spread: timedelta) -> timedelta:
    """Where in ``spread`` the saga keyed ``key`` wakes: the same every time for one key
    (a hash, so replays agree), evenly spread over many keys, whole seconds."""
    seconds = int(spread.total_seconds())
    if seconds <= 0:
        return timedelta(0)
    digest = hashlib.sha256(key.encode()).digest()
    return timedelta(seconds=int.from_bytes(digest[:8], "big") % seconds)


def local_date(moment: datetime, zone: str) -> date:
    """The calendar day ``moment`` falls on in the accounting time zone."""
    return moment.astimezone(ZoneInfo(zone)).date()


def start_of(day: date, zone: str) -> datetime:
    """Midnight starting ``day`` in the accounting time zone."""
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(zone))


def overdue_on(due_date: date, grace: timedelta) -> date:
    """The first day an unpaid invoice is overdue: the day after due date plus grace."""
    return due_date + timedelta(days=grace.days + 1)


# -- what the gateway sends --------------------------------------------------------------------


class PaymentReceived(BaseModel):
    """Signal ``payment_received``: billing recorded a payment of the invoice."""

    model_config = ConfigDict(frozen=True)

    payment_id: NonBlank = Field(description="Billing payment id: the ERP payment's key")
    amount: Amount = Field(gt=0)
    currency: CurrencyCode
    paid_at: AwareDatetime
    event_id: str | None = Field(default=None, description="The billing event that said so")


class VoidReceived(BaseModel):
    """Signal ``voided``: the invoice was voided in billing."""

    model_config = ConfigDict(frozen=True)

    voided_at: AwareDatetime
    event_id: str | None = None


class CreditNoteReceived(BaseModel):
    """Signal ``credit_note``: billing issued a credit note against the invoice.

    ``lines`` is the pre-tax amount credited per invoice line id, ``tax`` the tax credited
    per invoice line id (as the billing credit note carries it); ``unmatched`` describes
    credit note lines tied to no invoice line (the saga parks on those: revenue is never
    dropped silently)."""

    model_config = ConfigDict(frozen=True)

    credit_note_id: NonBlank
    currency: CurrencyCode
    lines: dict[str, Amount] = Field(default_factory=dict)
    tax: dict[str, Amount] = Field(default_factory=dict)
    total: Amount = Field(description="What the credit note takes off the amount due (with tax)")
    unmatched: list[str] = Field(default_factory=list)
    event_id: str | None = None


# -- step contracts ---------------------------------------------------------------------------


class _Contract(BaseModel):
    model_config = ConfigDict(frozen=True)


class GetInvoice(_Contract):
    invoice_id: str


class PostReceivable(_Contract):
    invoice: Invoice
    customer_key: str = Field(description="ERP customer external id (acct-<CRM account id>)")
    external_id: str = Field(description="The receivable's key")


class ReverseReceivable(_Contract):
    receivable_id: str
    external_id: str
    reason: str


class SetReceivableStatus(_Contract):
    account_id: str
    status: ReceivableStatus
    invoice_id: str
    amount_due: Decimal
    currency: CurrencyCode
    as_of: AwareDatetime


# -- status -----------------------------------------------------------------------------------


class InvoiceStepRecord(BaseModel):
    step: InvoiceStep
    key: str | None = Field(default=None, description="Period, payment or credit note id")
    state: str = Field(description="running, done, failed or skipped")
    started_at: datetime
    finished_at: datetime | None = None
    detail: str | None = None


class InvoiceDecision(BaseModel):
    at: datetime
    actor: str
    action: str
    step: InvoiceStep
    note: str | None = None


class InvoiceParked(BaseModel):
    step: InvoiceStep
    key: str | None = None
    reason: str
    since: datetime
    allowed: list[ResolveAction]


class PaymentRecord(BaseModel):
    payment_id: str
    amount: Decimal
    paid_on: date
    applied: Decimal = Field(description="What the ERP applied to the receivable")
    erp_payment_id: str | None = Field(default=None, description="None: applied by hand")


# Step records kept in the status (older ones are dropped, most recent kept).
MAX_STEP_RECORDS: Final = 60


class InvoiceToRevenueStatus(BaseModel):
    """Everything an operator needs to know about one invoice, in one place."""

    workflow_id: str
    invoice_id: str
    stage: InvoiceStage
    stage_since: datetime
    account_id: str | None = None
    currency: str | None = None
    total: Decimal | None = None
    amount_paid: Decimal = Decimal(0)
    amount_credited: Decimal = Decimal(0)
    amount_due: Decimal | None = None
    issue_date: date | None = None
    due_date: date | None = None
    overdue_on: date | None = None
    reason: str | None = None
    erp_customer_id: str | None = None
    receivable_id: str | None = None
    receivable_status: ReceivableStatus | None = Field(
        default=None, description="The status last shown in CRM"
    )
    scheduled_revenue: Decimal | None = None
    recognised_revenue: Decimal = Decimal(0)
    recognised_through: Period | None = None
    next_close: date | None = None
    periods_posted: int = 0
    journals_posted: int = 0
    payments: list[PaymentRecord] = Field(default_factory=list)
    credit_notes: list[str] = Field(default_factory=list)
    voided_at: datetime | None = None
    parked: InvoiceParked | None = None
    decisions: list[InvoiceDecision] = Field(default_factory=list)
    steps: list[InvoiceStepRecord] = Field(default_factory=list)
    run: int = Field(default=1, description="Workflow run (continue-as-new generation)")
    adopted_at: datetime | None = Field(
        default=None,
        description="Adopted from what already existed (docs/adoption.md): billing's amounts "
        "were read at this watermark, so a payment made before it is already in the state",
    )

    def step(self, step: InvoiceStep, key: str | None = None) -> InvoiceStepRecord | None:
        for record in reversed(self.steps):
            if record.step is step and (key is None or record.key == key):
                return record
        return None


class InvoiceCarry(BaseModel):
    """What one run hands the next (continue-as-new): the invoice, its schedule as changed by
    credit notes, the status, and the signals not yet handled."""

    invoice: Invoice
    schedule: RevenueSchedule
    receivable: Receivable
    status: InvoiceToRevenueStatus
    pending_payments: list[PaymentReceived] = Field(default_factory=list)
    pending_credit_notes: list[CreditNoteReceived] = Field(default_factory=list)
    void: VoidReceived | None = None
    seen_payments: list[str] = Field(default_factory=list)
    seen_credit_notes: list[str] = Field(default_factory=list)
    undelivered_events: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Business events still on their way when the run continued as new "
        "(CloudEvents, ids unchanged): the next run sends them again",
    )


class InvoiceToRevenueInput(BaseModel):
    invoice_id: str
    accounting_timezone: TimeZoneName = "UTC"
    policy: InvoicePolicy = Field(default_factory=InvoicePolicy)
    event_id: str | None = Field(default=None, description="The invoice.finalized event")
    carry: InvoiceCarry | None = None
    adopted_at: AwareDatetime | None = Field(
        default=None,
        description="Started by adoption: payments made before this watermark are already "
        "counted (the adoption's catch-up payment); their events are dropped",
    )
