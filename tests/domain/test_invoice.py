"""The canonical invoice: line kinds, service periods and amount validation."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from domain.invoice import (
    MAX_SERVICE_DAYS,
    Invoice,
    InvoiceStatus,
    LineKind,
    OneOffLine,
    SubscriptionLine,
)


def subscription(line_id: str = "L1", amount: str = "1200.00", **changes: Any) -> dict[str, Any]:
    return {
        "line_id": line_id,
        "sku": "PLAT-CORE",
        "description": "Platform, annual",
        "amount": amount,
        "tax_amount": "0",
        "kind": "subscription",
        "service_start": "2026-01-15",
        "service_end": "2027-01-15",
        **changes,
    }


def one_off(line_id: str = "L2", amount: str = "500.00", **changes: Any) -> dict[str, Any]:
    return {
        "line_id": line_id,
        "sku": "ONBOARDING",
        "amount": amount,
        "kind": "one_off",
        **changes,
    }


def payload(*lines: dict[str, Any], currency: str = "USD", **changes: Any) -> dict[str, Any]:
    lines = lines or (subscription(), one_off())
    subtotal = sum((Decimal(line["amount"]) for line in lines), Decimal(0))
    tax = sum((Decimal(line.get("tax_amount", "0")) for line in lines), Decimal(0))
    return {
        "invoice_id": "in_1MtHbELkdIwHu7ixl4OzzPMv",
        "account_id": "ACME-001",
        "currency": currency,
        "issue_date": "2026-01-15",
        "due_date": "2026-02-14",
        "status": "open",
        "lines": list(lines),
        "subtotal": str(subtotal),
        "tax": str(tax),
        "total": str(subtotal + tax),
        **changes,
    }


def invoice(*lines: dict[str, Any], **changes: Any) -> Invoice:
    return Invoice.model_validate(payload(*lines, **changes))


def test_a_finalized_invoice_parses_into_typed_lines():
    inv = invoice(
        subscription(tax_amount="96.00"),
        one_off(delivery_date="2026-02-03"),
        one_off("D1", "-100.00", sku="DISCOUNT"),
    )
    sub, onboarding, discount = inv.lines
    assert isinstance(sub, SubscriptionLine)
    assert sub.kind is LineKind.SUBSCRIPTION
    assert sub.service_days == 365
    assert isinstance(onboarding, OneOffLine)
    assert onboarding.delivery_date == date(2026, 2, 3)
    assert discount.amount == Decimal("-100.00")
    assert (inv.subtotal, inv.tax, inv.total) == (
        Decimal("1600.00"),
        Decimal("96.00"),
        Decimal("1696.00"),
    )
    assert inv.status is InvoiceStatus.OPEN
    assert inv.line("L2") is onboarding
    with pytest.raises(KeyError, match="no line 'L9'"):
        inv.line("L9")


def test_service_end_is_exclusive_like_a_stripe_line_period():
    # Stripe writes a month of service from 15 January as period.start=Jan 15, end=Feb 15.
    month = invoice(subscription(service_start="2026-01-15", service_end="2026-02-15"))
    assert month.lines[0].service_days == 31  # type: ignore[union-attr]
    one_day = invoice(subscription(service_start="2026-03-31", service_end="2026-04-01"))
    assert one_day.lines[0].service_days == 1  # type: ignore[union-attr]


def test_the_invoice_round_trips_through_json():
    inv = invoice(subscription(), one_off(delivery_date="2026-02-03"))
    assert Invoice.model_validate_json(inv.model_dump_json()) == inv


def test_amounts_with_trailing_zeros_are_accepted():
    inv = invoice(subscription(amount="10.000"), currency="USD")
    assert inv.lines[0].amount == Decimal("10")


@pytest.mark.parametrize(
    ("lines", "changes", "message"),
    [
        (
            [subscription(service_start="2026-03-01", service_end="2026-02-01")],
            {},
            "service_end 2026-02-01 must be after service_start 2026-03-01",
        ),
        (
            [subscription(service_start="2026-03-01", service_end="2026-03-01")],
            {},
            "service_end is exclusive",
        ),
        (
            [subscription(service_start="2026-01-01", service_end="2036-01-03")],
            {},
            f"longer than the {MAX_SERVICE_DAYS} days",
        ),
        (
            [subscription(amount="10.005")],
            {},
            "line 'L1': amount 10.005 has more decimal places than USD allows (2)",
        ),
        (
            [subscription(amount="1000.5")],
            {"currency": "JPY"},
            "line 'L1': amount 1000.5 has more decimal places than JPY allows (0)",
        ),
        (
            [subscription(amount="1.0005")],
            {"currency": "KWD"},
            "line 'L1': amount 1.0005 has more decimal places than KWD allows (3)",
        ),
        (
            [subscription(tax_amount="0.001")],
            {"subtotal": "1200.00", "tax": "0.001", "total": "1200.001"},
            "line 'L1': tax_amount 0.001 has more decimal places",
        ),
        (
            [subscription(), one_off()],
            {"subtotal": "1600.00", "total": "1600.00"},
            "subtotal 1600.00 does not match the sum of the line amounts 1700.00",
        ),
        (
            [subscription(tax_amount="96.00")],
            {"tax": "90.00", "total": "1290.00"},
            "tax 90.00 does not match the sum of the line tax amounts 96.00",
        ),
        (
            [subscription()],
            {"total": "1300.00"},
            "total 1300.00 does not match subtotal + tax (1200.00 + 0 = 1200.00)",
        ),
        (
            [subscription()],
            {"due_date": "2026-01-14"},
            "due_date 2026-01-14 is before issue_date 2026-01-15",
        ),
        (
            [subscription("L1"), one_off("L1")],
            {},
            "line_id 'L1' appears more than once",
        ),
    ],
)
def test_inconsistent_invoices_are_rejected_precisely(lines, changes, message):
    with pytest.raises(ValidationError) as info:
        invoice(*lines, **changes)
    messages = [error["msg"] for error in info.value.errors()]
    assert any(message in text for text in messages), messages


def test_every_problem_is_reported_at_once():
    with pytest.raises(ValidationError) as info:
        invoice(subscription(amount="10.005"), subtotal="1.00", total="2.00")
    message = info.value.errors()[0]["msg"]
    assert "amount 10.005 has more decimal places" in message
    assert "subtotal 1.00 does not match" in message
    assert "total 2.00 does not match" in message


@pytest.mark.parametrize(
    ("line", "currency", "field", "message"),
    [
        (subscription(), "usd", "currency", "unsupported currency"),
        (subscription(kind="usage"), "USD", "lines.0", "does not match any of the expected tags"),
        (
            subscription(service_end=None),
            "USD",
            "lines.0.subscription.service_end",
            "valid date",
        ),
        (
            one_off(service_start="2026-01-01"),
            "USD",
            "lines.0.one_off.service_start",
            "Extra inputs are not permitted",
        ),
        (subscription(line_id="has space"), "USD", "lines.0.subscription.line_id", "pattern"),
        (subscription(amount="NaN"), "USD", "lines.0.subscription.amount", "finite"),
    ],
)
def test_malformed_lines_are_located(line, currency, field, message):
    with pytest.raises(ValidationError) as info:
        Invoice.model_validate(
            {**payload(subscription(), currency="USD"), "currency": currency, "lines": [line]}
        )
    errors = info.value.errors()
    assert any(".".join(map(str, e["loc"])) == field and message in e["msg"] for e in errors), (
        errors
    )


def test_an_invoice_needs_at_least_one_line():
    with pytest.raises(ValidationError, match="at least 1 item"):
        Invoice.model_validate({**payload(), "lines": [], "subtotal": "0", "total": "0"})
