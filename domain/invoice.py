"""The finalized invoice as revsync understands it, whichever billing system issued it.

It is what the invoice-to-revenue saga starts from: each line says what was sold, for how
much (net of discounts, before tax) and how its revenue is earned: over a service period
(a subscription line) or at a point in time (a one-off line).

Service periods follow Stripe's convention for invoice line periods: ``service_start`` is
the first day of service and ``service_end`` the first day *after* it (exclusive), so a
monthly line from 15 January reads ``2026-01-15 .. 2026-02-15`` and one day of service
ends the next day. Dates are calendar dates; turning a vendor's timestamps into dates (in
the seller's accounting time zone) is the adapter's job.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from domain.money import CurrencyCode, minor_units, quantize
from domain.order import InvoiceStatus
from domain.quote import Identifier, Sku

__all__ = [
    "MAX_SERVICE_DAYS",
    "Invoice",
    "InvoiceLine",
    "InvoiceStatus",
    "LineKind",
    "OneOffLine",
    "SubscriptionLine",
]

# Ten calendar years at most (three leap days): bounds the size of a revenue schedule.
MAX_SERVICE_DAYS = 3653

Amount = Annotated[Decimal, Field(max_digits=18)]


class LineKind(StrEnum):
    SUBSCRIPTION = "subscription"
    ONE_OFF = "one_off"


class _Line(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    line_id: Identifier
    sku: Sku
    description: Annotated[str, StringConstraints(max_length=500)] = ""
    amount: Amount = Field(
        description="Line amount net of discounts, before tax, in the invoice currency; "
        "negative for a discount or credit line"
    )
    tax_amount: Amount = Decimal(0)


class SubscriptionLine(_Line):
    """Revenue earned evenly per day over ``service_start`` (inclusive) to ``service_end``
    (exclusive)."""

    kind: Literal[LineKind.SUBSCRIPTION] = LineKind.SUBSCRIPTION
    service_start: date
    service_end: date = Field(description="First day after the service period (exclusive)")

    @model_validator(mode="after")
    def _service_period_is_positive(self) -> Self:
        if self.service_end <= self.service_start:
            raise ValueError(
                f"service_end {self.service_end} must be after service_start "
                f"{self.service_start} (service_end is exclusive: one day of service from "
                f"{self.service_start} ends on the next day)"
            )
        if self.service_days > MAX_SERVICE_DAYS:
            raise ValueError(
                f"service period of {self.service_days} days is longer than the "
                f"{MAX_SERVICE_DAYS} days (ten years) revsync schedules"
            )
        return self

    @property
    def service_days(self) -> int:
        return (self.service_end - self.service_start).days


class OneOffLine(_Line):
    """Revenue earned at one point in time: delivery, or the invoice's issue date."""

    kind: Literal[LineKind.ONE_OFF] = LineKind.ONE_OFF
    delivery_date: date | None = None


InvoiceLine = Annotated[SubscriptionLine | OneOffLine, Field(discriminator="kind")]


class Invoice(BaseModel):
    """A finalized invoice. ``invoice_id`` is the billing system's id (Stripe ``in_...``)."""

    model_config = ConfigDict(frozen=True)

    invoice_id: Identifier
    account_id: Identifier = Field(description="Customer account the invoice bills")
    currency: CurrencyCode
    issue_date: date
    due_date: date
    status: InvoiceStatus
    lines: list[InvoiceLine] = Field(min_length=1, max_length=500)
    subtotal: Amount = Field(description="Sum of the line amounts")
    tax: Amount = Field(default=Decimal(0), description="Sum of the line tax amounts")
    total: Amount = Field(description="subtotal + tax")

    @model_validator(mode="after")
    def _amounts_are_consistent(self) -> Self:
        problems: list[str] = []
        seen: set[str] = set()
        places = minor_units(self.currency)

        def check_places(what: str, value: Decimal) -> None:
            if value != quantize(value, self.currency):
                problems.append(
                    f"{what} {value} has more decimal places than {self.currency} allows ({places})"
                )

        for line in self.lines:
            if line.line_id in seen:
                problems.append(f"line_id {line.line_id!r} appears more than once")
            seen.add(line.line_id)
            check_places(f"line {line.line_id!r}: amount", line.amount)
            check_places(f"line {line.line_id!r}: tax_amount", line.tax_amount)
        for name in ("subtotal", "tax", "total"):
            check_places(name, getattr(self, name))

        line_sum = sum((line.amount for line in self.lines), Decimal(0))
        tax_sum = sum((line.tax_amount for line in self.lines), Decimal(0))
        if self.subtotal != line_sum:
            problems.append(
                f"subtotal {self.subtotal} does not match the sum of the line amounts {line_sum}"
            )
        if self.tax != tax_sum:
            problems.append(
                f"tax {self.tax} does not match the sum of the line tax amounts {tax_sum}"
            )
        if self.total != self.subtotal + self.tax:
            problems.append(
                f"total {self.total} does not match subtotal + tax "
                f"({self.subtotal} + {self.tax} = {self.subtotal + self.tax})"
            )
        if self.due_date < self.issue_date:
            problems.append(f"due_date {self.due_date} is before issue_date {self.issue_date}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def line(self, line_id: str) -> SubscriptionLine | OneOffLine:
        for line in self.lines:
            if line.line_id == line_id:
                return line
        raise KeyError(f"invoice {self.invoice_id} has no line {line_id!r}")
