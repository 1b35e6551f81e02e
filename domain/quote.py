"""The accepted CPQ quote: what the customer agreed to buy."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    computed_field,
    model_validator,
)

from domain.money import CurrencyCode, Money, quantize

Identifier = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
]
Sku = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Z0-9][A-Z0-9_-]{1,39}$")
]


class BillingType(StrEnum):
    RECURRING = "recurring"
    ONE_TIME = "one_time"


class BillingInterval(StrEnum):
    MONTH = "month"
    YEAR = "year"


class PaymentTerms(StrEnum):
    DUE_ON_RECEIPT = "DUE_ON_RECEIPT"
    NET15 = "NET15"
    NET30 = "NET30"
    NET45 = "NET45"
    NET60 = "NET60"
    NET90 = "NET90"

    @property
    def days(self) -> int:
        return 0 if self is PaymentTerms.DUE_ON_RECEIPT else int(self.value.removeprefix("NET"))


class QuoteLine(BaseModel):
    model_config = ConfigDict(frozen=True)

    line_id: Identifier
    sku: Sku
    description: Annotated[str, StringConstraints(max_length=500)] = ""
    quantity: Decimal = Field(gt=0, max_digits=12, decimal_places=4)
    unit_price: Decimal = Field(ge=0, max_digits=18, decimal_places=6)
    discount_percent: Decimal = Field(default=Decimal(0), ge=0, le=100, decimal_places=4)
    billing: BillingType = BillingType.RECURRING
    interval: BillingInterval | None = Field(
        default=None, description="Billing interval of a recurring line; month when omitted"
    )

    @model_validator(mode="after")
    def _interval_only_for_recurring(self) -> Self:
        if self.billing is BillingType.ONE_TIME and self.interval is not None:
            raise ValueError("a one_time line has no billing interval")
        return self

    @property
    def billing_interval(self) -> BillingInterval | None:
        if self.billing is BillingType.ONE_TIME:
            return None
        return self.interval or BillingInterval.MONTH

    def net_amount(self, currency: str) -> Decimal:
        """Line total after discount, rounded to the currency's minor unit."""
        gross = self.quantity * self.unit_price
        return quantize(gross * (Decimal(100) - self.discount_percent) / Decimal(100), currency)


class Quote(BaseModel):
    """A quote the customer accepted in CPQ. ``quote_id`` is the CPQ/CRM quote record id."""

    model_config = ConfigDict(frozen=True)

    quote_id: Identifier
    account_id: Identifier = Field(description="CRM account the quote belongs to")
    opportunity_id: Identifier | None = None
    owner: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
    currency: CurrencyCode
    payment_terms: PaymentTerms = PaymentTerms.NET30
    term_months: int = Field(default=12, ge=1, le=120, description="Subscription term")
    start_date: date
    accepted_at: datetime
    lines: list[QuoteLine] = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _lines_are_consistent(self) -> Self:
        seen: set[str] = set()
        for line in self.lines:
            if line.line_id in seen:
                raise ValueError(f"line_id {line.line_id!r} appears more than once")
            seen.add(line.line_id)
        if not any(line.billing is BillingType.RECURRING for line in self.lines):
            raise ValueError("a quote needs at least one recurring line to become a subscription")
        if self.accepted_at.tzinfo is None:
            raise ValueError("accepted_at must carry a timezone offset")
        return self

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total(self) -> Decimal:
        """Sum of the line totals, in ``currency``."""
        return sum((line.net_amount(self.currency) for line in self.lines), Decimal(0))

    def total_money(self) -> Money:
        return Money(amount=self.total, currency=self.currency)

    def recurring_lines(self) -> list[QuoteLine]:
        return [line for line in self.lines if line.billing is BillingType.RECURRING]

    def one_time_lines(self) -> list[QuoteLine]:
        return [line for line in self.lines if line.billing is BillingType.ONE_TIME]
