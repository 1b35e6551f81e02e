"""What quote-to-cash creates downstream: the ERP sales order, the billing subscription
and its invoice. Built from the quote and the customer by pure functions."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from domain.money import CurrencyCode
from domain.quote import BillingInterval, BillingType, PaymentTerms, Quote
from domain.refusal import Refusal


class OrderLine(BaseModel):
    model_config = ConfigDict(frozen=True)

    line_id: str
    sku: str
    description: str
    quantity: Decimal
    unit_price: Decimal
    discount_percent: Decimal
    amount: Decimal = Field(description="Net line amount after discount, in the order currency")
    billing: BillingType
    interval: BillingInterval | None = None


class SalesOrderStatus(StrEnum):
    PENDING_FULFILLMENT = "pending_fulfillment"
    CLOSED = "closed"
    CANCELLED = "cancelled"


class SalesOrderDraft(BaseModel):
    """The sales order revsync asks the ERP to create for a quote."""

    model_config = ConfigDict(frozen=True)

    external_id: str = Field(description="Idempotency key; the ERP's external id for the order")
    quote_id: str
    account_id: str
    currency: CurrencyCode
    payment_terms: PaymentTerms
    order_date: date
    lines: list[OrderLine]
    total: Decimal
    memo: str

    def unbookable(self) -> Refusal | None:
        """Why no ERP may book this draft: its lines do not add up to its total."""
        line_sum = sum((line.amount for line in self.lines), Decimal(0))
        if line_sum == self.total:
            return None
        return Refusal(
            "TOTAL_MISMATCH", f"line amounts add up to {line_sum}, not the order total {self.total}"
        )


class SalesOrder(BaseModel):
    model_config = ConfigDict(frozen=True)

    order_id: str = Field(description="ERP internal id")
    external_id: str
    customer_id: str = Field(description="ERP customer internal id")
    currency: CurrencyCode
    total: Decimal
    status: SalesOrderStatus


class SubscriptionStatus(StrEnum):
    ACTIVE = "active"
    TRIALING = "trialing"
    INCOMPLETE = "incomplete"
    PAST_DUE = "past_due"
    CANCELED = "canceled"


class SubscriptionDraft(BaseModel):
    """The subscription revsync asks the billing system to create for a quote."""

    model_config = ConfigDict(frozen=True)

    idempotency_key: str
    quote_id: str
    account_id: str
    currency: CurrencyCode
    start_date: date
    term_months: int
    payment_terms: PaymentTerms
    recurring_lines: list[OrderLine]
    one_time_lines: list[OrderLine]


class Subscription(BaseModel):
    model_config = ConfigDict(frozen=True)

    subscription_id: str
    customer_id: str = Field(description="Billing system customer id")
    currency: CurrencyCode
    status: SubscriptionStatus
    latest_invoice_id: str | None = None


class InvoiceStatus(StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    VOID = "void"
    UNCOLLECTIBLE = "uncollectible"


class InvoiceLine(BaseModel):
    model_config = ConfigDict(frozen=True)

    description: str
    amount: Decimal
    period_start: date | None = None
    period_end: date | None = None


class Invoice(BaseModel):
    model_config = ConfigDict(frozen=True)

    invoice_id: str
    customer_id: str
    subscription_id: str | None = None
    currency: CurrencyCode
    status: InvoiceStatus
    lines: list[InvoiceLine]
    subtotal: Decimal
    tax: Decimal = Decimal(0)
    total: Decimal
    due_date: date | None = None


def order_lines(quote: Quote) -> list[OrderLine]:
    return [
        OrderLine(
            line_id=line.line_id,
            sku=line.sku,
            description=line.description or line.sku,
            quantity=line.quantity,
            unit_price=line.unit_price,
            discount_percent=line.discount_percent,
            amount=line.net_amount(quote.currency),
            billing=line.billing,
            interval=line.billing_interval,
        )
        for line in quote.lines
    ]


def build_sales_order(quote: Quote, external_id: str) -> SalesOrderDraft:
    return SalesOrderDraft(
        external_id=external_id,
        quote_id=quote.quote_id,
        account_id=quote.account_id,
        currency=quote.currency,
        payment_terms=quote.payment_terms,
        order_date=quote.accepted_at.date(),
        lines=order_lines(quote),
        total=quote.total,
        memo=f"revsync quote {quote.quote_id}",
    )


def build_subscription(quote: Quote, idempotency_key: str) -> SubscriptionDraft:
    lines = order_lines(quote)
    return SubscriptionDraft(
        idempotency_key=idempotency_key,
        quote_id=quote.quote_id,
        account_id=quote.account_id,
        currency=quote.currency,
        start_date=quote.start_date,
        term_months=quote.term_months,
        payment_terms=quote.payment_terms,
        recurring_lines=[line for line in lines if line.billing is BillingType.RECURRING],
        one_time_lines=[line for line in lines if line.billing is BillingType.ONE_TIME],
    )
