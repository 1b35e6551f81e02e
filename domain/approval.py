"""The manual-approval policy of a quote: who must approve it, why, and for how long it waits.

Pure and deterministic (no I/O, no clock): the workflow passes in what it knows, including how
long it has waited, so every function here is safe inside the Temporal workflow sandbox and the
``*_problem`` functions can back Temporal Update validators (they never raise).
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    computed_field,
    field_serializer,
    field_validator,
)

from domain.customer import NonBlank
from domain.money import CurrencyCode, minor_units, quantize
from domain.quote import PaymentTerms, Quote


class ApproverRole(StrEnum):
    """Who may approve. Ranked ``sales_manager`` < ``deal_desk`` < ``finance``: a higher role
    may approve anything a lower one may. Compare with :meth:`covers` or :attr:`rank`, never
    with ``<`` (that would compare the strings)."""

    SALES_MANAGER = "sales_manager"
    DEAL_DESK = "deal_desk"
    FINANCE = "finance"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def covers(self, required: ApproverRole) -> bool:
        """Whether this role may approve what ``required`` may approve."""
        return self.rank >= required.rank


_RANK: Final[dict[ApproverRole, int]] = {role: n for n, role in enumerate(ApproverRole)}


class ApprovalReasonCode(StrEnum):
    """Stable codes of the approval rules; code branches on these, never on messages."""

    DISCOUNT_ABOVE_THRESHOLD = "discount_above_threshold"
    FINANCE_DISCOUNT = "finance_discount"
    AMOUNT_ABOVE_LIMIT = "amount_above_limit"
    NO_AMOUNT_LIMIT_FOR_CURRENCY = "no_amount_limit_for_currency"
    NON_STANDARD_PAYMENT_TERMS = "non_standard_payment_terms"
    NEW_CUSTOMER_WITHOUT_CREDIT_CHECK = "new_customer_without_credit_check"


Percent = Annotated[Decimal, Field(ge=0, le=100)]
NonNegativeAmount = Annotated[Decimal, Field(ge=0)]


def _default_amount_limits() -> dict[str, Decimal]:
    return {
        "USD": Decimal("100000"),
        "EUR": Decimal("90000"),
        "GBP": Decimal("80000"),
        "CAD": Decimal("135000"),
        "JPY": Decimal("15000000"),
    }


_DEFAULT_STANDARD_TERMS: Final = frozenset(
    {PaymentTerms.DUE_ON_RECEIPT, PaymentTerms.NET15, PaymentTerms.NET30}
)


def _terms_in_order(terms: frozenset[PaymentTerms]) -> list[PaymentTerms]:
    return sorted(terms, key=lambda t: (t.days, t.value))


class ApprovalPolicy(BaseModel):
    """When an accepted quote needs a human approval, and how long the saga waits for it.

    Fixed at the saga's start (it travels in the workflow input), so it round-trips through
    JSON exactly: limits keep their digits, durations are ISO 8601, unknown fields are refused.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_discount_percent: Percent = Field(
        default=Decimal(20),
        description="A line discount above this percentage needs a sales_manager",
    )
    finance_discount_percent: Percent = Field(
        default=Decimal(40),
        validate_default=True,
        description=(
            "A line discount above this percentage needs finance; at least max_discount_percent"
        ),
    )
    amount_limits: dict[CurrencyCode, NonNegativeAmount] = Field(
        default_factory=_default_amount_limits,
        description=(
            "Per currency, the quote total above which finance must approve. There is no FX "
            "here: a quote in a currency without a limit always needs finance"
        ),
    )
    standard_payment_terms: frozenset[PaymentTerms] = Field(
        default=_DEFAULT_STANDARD_TERMS,
        description="Payment terms that need no approval; any other terms need the deal desk",
    )
    require_credit_check_for_new_customers: bool = Field(
        default=True,
        description="A new customer without an approved credit check needs finance",
    )
    escalate_after: timedelta = Field(
        default=timedelta(hours=8),
        gt=timedelta(0),
        description="Approval SLA: once waited this long, the saga marks itself escalated",
    )
    expire_after: timedelta = Field(
        default=timedelta(days=5),
        gt=timedelta(0),
        validate_default=True,
        description="Once waited this long, the quote is rejected as expired; > escalate_after",
    )

    @field_validator("finance_discount_percent")
    @classmethod
    def _finance_discount_not_below_sales(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        lower = info.data.get("max_discount_percent")
        if lower is not None and value < lower:
            raise ValueError(
                f"finance_discount_percent ({_pct(value)}%) must not be below "
                f"max_discount_percent ({_pct(lower)}%)"
            )
        return value

    @field_validator("amount_limits")
    @classmethod
    def _limits_fit_the_currency(cls, limits: dict[str, Decimal]) -> dict[str, Decimal]:
        for currency, limit in limits.items():
            if limit != quantize(limit, currency):
                raise ValueError(
                    f"the {currency} limit {limit} has more decimal places than {currency} "
                    f"uses ({minor_units(currency)})"
                )
        return limits

    @field_validator("expire_after")
    @classmethod
    def _expiry_after_escalation(cls, value: timedelta, info: ValidationInfo) -> timedelta:
        escalate = info.data.get("escalate_after")
        if escalate is not None and value <= escalate:
            raise ValueError(
                f"expire_after ({value}) must be longer than escalate_after ({escalate})"
            )
        return value

    @field_serializer("standard_payment_terms", when_used="json")
    def _terms_sorted(self, terms: frozenset[PaymentTerms]) -> list[PaymentTerms]:
        # A set has no order; sorting keeps the serialized workflow input stable.
        return _terms_in_order(terms)


class ApprovalFacts(BaseModel):
    """What the workflow knows about the deal besides the quote itself."""

    model_config = ConfigDict(frozen=True)

    is_new_customer: bool = Field(description="The account has never been booked before")
    credit_check_approved: bool | None = Field(
        default=None, description="Outcome of the credit check; None when none is on record"
    )


class ApprovalReason(BaseModel):
    """One rule the quote trips, and the lowest role that may approve it."""

    model_config = ConfigDict(frozen=True)

    code: ApprovalReasonCode
    message: str = Field(description="Precise and human, e.g. 'line L2 (PLAT-CORE) ...'")
    required_role: ApproverRole


class ApprovalRequirement(BaseModel):
    """Every reason a quote needs approval (empty: it needs none)."""

    model_config = ConfigDict(frozen=True)

    reasons: list[ApprovalReason] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def needed(self) -> bool:
        return bool(self.reasons)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def required_role(self) -> ApproverRole | None:
        """The highest role among the reasons; None when no approval is needed."""
        if not self.reasons:
            return None
        return max((r.required_role for r in self.reasons), key=lambda role: role.rank)

    def reasons_beyond(self, role: ApproverRole) -> list[ApprovalReason]:
        """The reasons ``role`` may not approve."""
        return [r for r in self.reasons if not role.covers(r.required_role)]


def _pct(value: Decimal) -> str:
    """25.0000 -> '25', 12.50 -> '12.5' (never scientific notation)."""
    return f"{value.normalize():f}"


def _money(amount: Decimal, currency: str) -> str:
    return f"{quantize(amount, currency):,} {currency}"


def approval_requirement(
    quote: Quote, facts: ApprovalFacts, policy: ApprovalPolicy
) -> ApprovalRequirement:
    """Every reason ``quote`` needs a manual approval under ``policy``, in a stable order:
    line discounts (in line order), the amount, the payment terms, the credit check.

    A line discount above ``finance_discount_percent`` gives one ``finance_discount`` reason
    (it subsumes the sales-manager one for that line). Thresholds are exclusive: a discount or
    total exactly at the threshold needs no approval.
    """
    reasons: list[ApprovalReason] = []

    for line in quote.lines:
        where = f"line {line.line_id} ({line.sku}) discount {_pct(line.discount_percent)}%"
        if line.discount_percent > policy.finance_discount_percent:
            reasons.append(
                ApprovalReason(
                    code=ApprovalReasonCode.FINANCE_DISCOUNT,
                    message=(
                        f"{where} exceeds the finance threshold of "
                        f"{_pct(policy.finance_discount_percent)}%"
                    ),
                    required_role=ApproverRole.FINANCE,
                )
            )
        elif line.discount_percent > policy.max_discount_percent:
            reasons.append(
                ApprovalReason(
                    code=ApprovalReasonCode.DISCOUNT_ABOVE_THRESHOLD,
                    message=f"{where} exceeds {_pct(policy.max_discount_percent)}%",
                    required_role=ApproverRole.SALES_MANAGER,
                )
            )

    total = quote.total
    limit = policy.amount_limits.get(quote.currency)
    if limit is None:
        reasons.append(
            ApprovalReason(
                code=ApprovalReasonCode.NO_AMOUNT_LIMIT_FOR_CURRENCY,
                message=(
                    f"no approval limit is configured for {quote.currency}: a quote in "
                    f"{quote.currency} (total {_money(total, quote.currency)}) always needs "
                    "finance approval"
                ),
                required_role=ApproverRole.FINANCE,
            )
        )
    elif total > limit:
        reasons.append(
            ApprovalReason(
                code=ApprovalReasonCode.AMOUNT_ABOVE_LIMIT,
                message=(
                    f"quote total {_money(total, quote.currency)} exceeds the "
                    f"{quote.currency} limit of {_money(limit, quote.currency)}"
                ),
                required_role=ApproverRole.FINANCE,
            )
        )

    if quote.payment_terms not in policy.standard_payment_terms:
        standard = ", ".join(t.value for t in _terms_in_order(policy.standard_payment_terms))
        reasons.append(
            ApprovalReason(
                code=ApprovalReasonCode.NON_STANDARD_PAYMENT_TERMS,
                message=(
                    f"payment terms {quote.payment_terms.value} are not standard "
                    f"(standard: {standard or 'none'})"
                ),
                required_role=ApproverRole.DEAL_DESK,
            )
        )

    if (
        policy.require_credit_check_for_new_customers
        and facts.is_new_customer
        and facts.credit_check_approved is not True
    ):
        outcome = (
            "has no credit check on record"
            if facts.credit_check_approved is None
            else "failed its credit check"
        )
        reasons.append(
            ApprovalReason(
                code=ApprovalReasonCode.NEW_CUSTOMER_WITHOUT_CREDIT_CHECK,
                message=f"new customer {quote.account_id} {outcome}",
                required_role=ApproverRole.FINANCE,
            )
        )

    return ApprovalRequirement(reasons=reasons)


class Approver(BaseModel):
    """The person deciding, with the role they act in."""

    model_config = ConfigDict(frozen=True)

    name: NonBlank = Field(description="Name or e-mail, as the audit trail keeps it")
    role: ApproverRole


_BRACKETED_EMAIL = re.compile(r"<\s*([^<>\s]+@[^<>\s]+)\s*>")


def _identities(who: str) -> set[str]:
    """Ways to recognise a person: the whole text, case-folded and stripped, plus the e-mail
    in ``Name <e-mail>`` form."""
    text = who.strip().casefold()
    found = {text}
    match = _BRACKETED_EMAIL.search(text)
    if match:
        found.add(match.group(1))
    return found


def is_same_person(a: str, b: str) -> bool:
    """Whether two identifications name the same person, ignoring case and surrounding
    whitespace; ``Maya Chen <maya@x.example>`` matches ``MAYA@x.example``."""
    return bool(_identities(a) & _identities(b))


def _nothing_pending(requirement: ApprovalRequirement) -> str | None:
    if not requirement.needed:
        return "no approval pending: the quote needs no manual approval"
    return None


def _role_problem(requirement: ApprovalRequirement, approver: Approver, verb: str) -> str | None:
    required = requirement.required_role
    if required is None or approver.role.covers(required):
        return None
    beyond = "; ".join(r.message for r in requirement.reasons_beyond(approver.role))
    return (
        f"{approver.role.value} may not {verb} this quote: it needs {required.value} "
        f"or higher because {beyond}"
    )


def approve_problem(
    requirement: ApprovalRequirement, approver: Approver, quote_owner: str
) -> str | None:
    """Why ``approver`` may not approve, or None when they may.

    Checked in this order: something must be pending; the quote owner may never approve their
    own quote (compared ignoring case and surrounding whitespace, e-mail or name); the role
    must be at least the requirement's ``required_role``. Whether the saga still waits for a
    decision is the workflow's state, not checked here.
    """
    if problem := _nothing_pending(requirement):
        return problem
    if is_same_person(approver.name, quote_owner):
        return f"{approver.name} owns this quote and may not approve it"
    return _role_problem(requirement, approver, "approve")


def reject_problem(
    requirement: ApprovalRequirement,
    approver: Approver,
    quote_owner: str,
    reason: str | None,
) -> str | None:
    """Why ``approver`` may not reject, or None when they may.

    Decisions: only someone who could approve may reject (same role rule as
    :func:`approve_problem`), so a lower role cannot veto a deal escalated past it. The quote
    owner may not reject their own quote through the approval either; they withdraw it in
    CPQ. A rejection needs a non-blank reason, kept in the audit trail and written back to CRM.
    Checked in the order: pending, owner, role, reason.
    """
    if problem := _nothing_pending(requirement):
        return problem
    if is_same_person(approver.name, quote_owner):
        return f"{approver.name} owns this quote and may not reject it here; withdraw it in CPQ"
    if problem := _role_problem(requirement, approver, "reject"):
        return problem
    if reason is None or not reason.strip():
        return "a rejection needs a reason"
    return None


SlaState = Literal["on_time", "escalated", "expired"]


def sla_state(waited: timedelta, policy: ApprovalPolicy) -> SlaState:
    """Where a pending approval stands after ``waited``. A deadline counts as reached at the
    instant itself, as a timer set to it fires then."""
    if waited >= policy.expire_after:
        return "expired"
    if waited >= policy.escalate_after:
        return "escalated"
    return "on_time"
