"""Canonical quote, money and catalog rules."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from domain.catalog import catalog_mismatches
from domain.customer import Address, Customer, account_problems
from domain.money import from_minor, quantize, to_minor
from domain.order import build_sales_order, build_subscription
from domain.quote import Quote
from sandbox.quotes import quote_payload
from tests.workflows.fakes import CATALOG_ITEMS


def quote(**changes: object) -> Quote:
    payload = quote_payload("Q-1")
    payload.update(changes)
    return Quote.model_validate(payload)


def test_line_totals_apply_discount_and_round_half_up_to_the_currency():
    q = quote()
    # 20 x 45.00 at 10% off, 1 x 499.00, 1 x 2500.00
    assert [line.net_amount("USD") for line in q.lines] == [
        Decimal("810.00"),
        Decimal("499.00"),
        Decimal("2500.00"),
    ]
    assert q.total == Decimal("3809.00")
    assert quantize(Decimal("0.125"), "USD") == Decimal("0.13")
    assert quantize(Decimal("1234.5"), "JPY") == Decimal("1235")
    assert quantize(Decimal("1.0005"), "KWD") == Decimal("1.001")


def test_minor_units_round_trip_exactly():
    assert to_minor(Decimal("3809.00"), "USD") == 380900
    assert to_minor(Decimal("6500"), "JPY") == 6500
    assert from_minor(380900, "USD") == Decimal("3809.00")


def test_unit_prices_parse_exactly_from_strings():
    q = quote(lines=[{**quote_payload("Q-1")["lines"][0], "unit_price": "45.10"}])
    assert q.lines[0].unit_price == Decimal("45.10")


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"currency": "usd"}, "currency", "unsupported currency"),
        ({"lines": []}, "lines", "at least 1 item"),
        ({"term_months": 0}, "term_months", "greater than or equal to 1"),
        ({"accepted_at": "2026-01-01T10:00:00"}, "", "timezone"),
        ({"quote_id": "has space"}, "quote_id", "should match pattern"),
    ],
)
def test_invalid_quotes_are_rejected_precisely(changes, field, message):
    with pytest.raises(ValidationError) as info:
        quote(**changes)
    errors = info.value.errors()
    assert any(".".join(map(str, e["loc"])) == field and message in e["msg"] for e in errors), (
        errors
    )


def test_duplicate_line_ids_and_one_time_only_quotes_are_rejected():
    lines = quote_payload("Q-1")["lines"]
    with pytest.raises(ValidationError, match="appears more than once"):
        quote(lines=[lines[0], {**lines[1], "line_id": lines[0]["line_id"]}])
    with pytest.raises(ValidationError, match="at least one recurring line"):
        quote(lines=[lines[2]])


def test_discount_above_100_percent_is_rejected():
    lines = quote_payload("Q-1")["lines"]
    with pytest.raises(ValidationError, match="less than or equal to 100"):
        quote(lines=[{**lines[0], "discount_percent": "101"}])


def test_catalog_rule_reports_unknown_inactive_and_price_drift():
    lines = quote_payload("Q-1")["lines"]
    q = quote(
        lines=[
            {**lines[0], "unit_price": "44.99"},
            {**lines[1], "sku": "NOPE"},
            {**lines[0], "line_id": "L9", "sku": "LEGACY-SEAT", "unit_price": "30.00"},
        ]
    )
    problems = {(p.line_id, p.reason) for p in catalog_mismatches(q, CATALOG_ITEMS)}
    assert problems == {
        ("L1", "unit price 44.99 USD differs from ERP list price 45.00 USD"),
        ("L2", "unknown item: not in the ERP catalog"),
        ("L9", "item is inactive in the ERP catalog"),
    }
    assert catalog_mismatches(quote(), CATALOG_ITEMS) == []


def test_a_currency_the_catalog_does_not_price_is_a_mismatch():
    q = quote(currency="CHF")
    assert {p.reason for p in catalog_mismatches(q, CATALOG_ITEMS)} == {"no ERP list price in CHF"}


def test_orders_and_subscriptions_carry_the_quote_totals_and_keys():
    q = quote()
    order = build_sales_order(q, "q2c-Q-1:erp-order")
    assert order.total == q.total
    assert sum(line.amount for line in order.lines) == q.total
    sub = build_subscription(q, "q2c-Q-1:subscription")
    assert [line.sku for line in sub.recurring_lines] == ["PLAT-CORE", "SUPPORT-PREMIUM"]
    assert [line.sku for line in sub.one_time_lines] == ["ONBOARD-STD"]


def test_non_us_accounts_need_a_tax_id():
    address = Address(line1="8 Rue de Rivoli", city="Paris", postal_code="75004", country="FR")
    customer = Customer(
        account_id="A1",
        name="X",
        legal_entity="X SAS",
        email="a@x.example",
        billing_address=address,
    )
    assert [p.field for p in account_problems(customer)] == ["tax_id"]
    assert account_problems(customer.model_copy(update={"tax_id": "FR123"})) == []
