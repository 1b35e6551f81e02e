"""The state of one quote-to-cash saga, as the ``status`` query returns it."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from domain.approval import ApprovalPolicy, ApprovalReason, Approver, ApproverRole
from domain.quote import Quote
from domain.stages import OrderStage

NonBlank = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class Step(StrEnum):
    """The saga's steps, in order. Also the values of the ``BlockedStep`` search attribute."""

    VALIDATE_QUOTE = "validate_quote"
    FETCH_ACCOUNT = "fetch_account"
    CHECK_CATALOG = "check_catalog"
    AWAIT_APPROVAL = "await_approval"
    BOOK_ERP_ORDER = "book_erp_order"
    PROVISION_BILLING = "provision_billing"
    UPDATE_CRM = "update_crm"
    # Compensations
    CANCEL_SUBSCRIPTION = "cancel_subscription"
    VOID_INVOICE = "void_invoice"
    CANCEL_ERP_ORDER = "cancel_erp_order"
    MARK_CRM_REJECTED = "mark_crm_rejected"


class StepState(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    COMPENSATED = "compensated"
    SKIPPED = "skipped"


class StepRecord(BaseModel):
    step: Step
    state: StepState
    started_at: datetime
    finished_at: datetime | None = None
    detail: str | None = None
    external_ids: dict[str, str] = Field(default_factory=dict)


class FailureType:
    """Stable ``ApplicationError.type`` names; workflows branch on these, never on messages."""

    VENDOR_TRANSIENT = "VendorTransient"
    VENDOR_UNKNOWN_OUTCOME = "VendorUnknownOutcome"
    VENDOR_REJECTED = "VendorRejected"
    # The vendor refused revsync's credentials or configuration (not the order): not
    # retried, and the saga parks rather than compensates.
    VENDOR_MISCONFIGURED = "VendorMisconfigured"
    ACCOUNT_NOT_FOUND = "AccountNotFound"
    ACCOUNT_INVALID = "AccountInvalid"
    CATALOG_MISMATCH = "CatalogMismatch"
    # A step whose retry budget is spent (workers/attempts.py): it parks, it is no refusal.
    RETRY_BUDGET_EXHAUSTED = "RetryBudgetExhausted"

    NON_RETRYABLE = (VENDOR_REJECTED, ACCOUNT_NOT_FOUND, ACCOUNT_INVALID, CATALOG_MISMATCH)


COMPENSATION_STEPS = frozenset(
    {Step.CANCEL_SUBSCRIPTION, Step.VOID_INVOICE, Step.CANCEL_ERP_ORDER, Step.MARK_CRM_REJECTED}
)


class ResolveAction(StrEnum):
    """What an operator can decide for a parked step."""

    RETRY = "retry"  # run the step again (after fixing the cause)
    COMPENSATE = "compensate"  # give up on the quote: undo what is done, mark it rejected
    SKIP = "skip"  # treat the step as done by hand and go on


def resolution_problem(step: Step, action: ResolveAction) -> str | None:
    """Why ``action`` does not apply to a saga parked at ``step``, or None when it does.

    The rules: retry always applies. A forward step may be compensated, except the CRM
    write-back, because a CRM failure never unwinds an order booked in ERP and billing. Only
    steps nothing else depends on may be skipped: the CRM write-back and the compensations
    (the operator did them by hand); skipping validation, the ERP order or the subscription
    would leave the systems diverged.
    """
    if action is ResolveAction.RETRY:
        return None
    if step in COMPENSATION_STEPS:
        if action is ResolveAction.COMPENSATE:
            return f"{step.value} is already part of compensating; retry or skip it"
        return None
    if step is Step.UPDATE_CRM:
        if action is ResolveAction.COMPENSATE:
            return (
                "the order is booked in ERP and billing; a CRM write-back failure never unwinds "
                "it: retry or skip update_crm"
            )
        return None
    if action is ResolveAction.SKIP:
        return (
            f"{step.value} cannot be skipped: the steps after it depend on it; retry it or "
            "compensate"
        )
    return None


def allowed_resolutions(step: Step) -> list[ResolveAction]:
    return [a for a in ResolveAction if resolution_problem(step, a) is None]


class ResolveRequest(BaseModel):
    """The ``resolve`` update: an operator's decision on a parked saga."""

    model_config = ConfigDict(frozen=True)

    action: ResolveAction
    operator: NonBlank = Field(description="Who decides (name or e-mail)")
    note: NonBlank = Field(description="Why: kept in the saga's audit trail")


class ApproveRequest(BaseModel):
    """The ``approve`` update."""

    model_config = ConfigDict(frozen=True)

    approver: Approver
    note: str | None = None


class RejectRequest(BaseModel):
    """The ``reject`` update. ``reason`` is required (checked by the update's validator, so
    that a missing reason is refused with a clear message instead of a parse error)."""

    model_config = ConfigDict(frozen=True)

    approver: Approver
    reason: str | None = None


class OperatorDecision(BaseModel):
    """One human decision, as the audit trail keeps it."""

    at: datetime
    actor: str
    role: ApproverRole | None = None
    action: str = Field(description="approve, reject, expire, retry, compensate or skip")
    step: Step
    note: str | None = None


class ParkedState(BaseModel):
    """Why the saga waits for an operator, and what they may decide."""

    step: Step
    reason: str
    since: datetime
    allowed: list[ResolveAction]


class ApprovalState(BaseModel):
    reasons: list[ApprovalReason]
    required_role: ApproverRole
    requested_at: datetime
    escalated_at: datetime | None = None
    decided: OperatorDecision | None = None


class SlaBreach(BaseModel):
    sla: str = Field(description="booking or approval")
    at: datetime
    detail: str


class SagaPolicy(BaseModel):
    """Business rules a saga runs under, fixed at its start (so they are in its history)."""

    model_config = ConfigDict(frozen=True)

    approval: ApprovalPolicy = Field(default_factory=ApprovalPolicy)
    book_within: timedelta = Field(
        default=timedelta(minutes=15),
        gt=timedelta(0),
        description="Booking SLA: from acceptance (or approval) to BOOKED",
    )
    step_retry_budget: timedelta = Field(
        default=timedelta(minutes=30),
        gt=timedelta(0),
        description="How long a step retries transient failures before the saga parks",
    )
    compensation_retry_budget: timedelta = Field(
        default=timedelta(hours=2),
        gt=timedelta(0),
        description="How long a compensation retries before the saga parks",
    )


class QuoteToCashInput(BaseModel):
    quote: Quote
    policy: SagaPolicy = Field(default_factory=SagaPolicy)


class QuoteToCashStatus(BaseModel):
    """Everything an operator needs to know about one order, in one place."""

    workflow_id: str
    quote_id: str
    account_id: str
    customer_name: str | None = None
    amount: Decimal
    currency: str
    stage: OrderStage
    reason: str | None = Field(default=None, description="Why it was rejected or compensated")
    erp_customer_id: str | None = None
    erp_order_id: str | None = None
    billing_customer_id: str | None = None
    subscription_id: str | None = None
    invoice_id: str | None = None
    crm_order_id: str | None = None
    crm_status: str | None = None
    stage_since: datetime | None = None
    parked: ParkedState | None = None
    approval: ApprovalState | None = None
    sla_breaches: list[SlaBreach] = Field(default_factory=list)
    decisions: list[OperatorDecision] = Field(default_factory=list)
    steps: list[StepRecord] = Field(default_factory=list)

    def step(self, step: Step) -> StepRecord | None:
        """The latest record of ``step``, if it ran."""
        for record in reversed(self.steps):
            if record.step is step:
                return record
        return None
