"""A Stripe ``quote.accepted`` quote object mapped to revsync's canonical quote."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from adapters.webhooks import stripe
from adapters.webhooks.stripe_quotes import (
    MappingError,
    quote_from_stripe,
    sample_event,
    sample_stripe_quote,
    with_line_items,
)
from domain.quote import BillingInterval, BillingType, PaymentTerms, Quote

FIXTURE = Path(__file__).parent / "fixtures" / "stripe_quote_accepted.json"
LINE_ITEMS = Path(__file__).parent / "fixtures" / "stripe_quote_line_items.json"
ACCEPTED = 1_718_893_927  # 2024-06-20T14:32:07Z
LINE0 = "data.object.line_items.data.0"


def fixture_event() -> dict[str, Any]:
    event: dict[str, Any] = stripe.parse_event(FIXTURE.read_bytes()).model_dump()
    return event


def fixture_line_items() -> list[dict[str, Any]]:
    """The quote's lines, as ``GET /v1/quotes/<id>/line_items`` answers."""
    answer: dict[str, Any] = json.loads(LINE_ITEMS.read_text())
    return list(answer["data"])


def fixture_quote() -> dict[str, Any]:
    """The event's quote with its lines put back, as the gateway maps it."""
    return with_line_items(copy.deepcopy(fixture_event()["data"]["object"]), fixture_line_items())


def mapping_error(quote: dict[str, Any]) -> MappingError:
    with pytest.raises(MappingError) as caught:
        quote_from_stripe(quote)
    return caught.value


def failed_fields(quote: dict[str, Any]) -> list[str]:
    return [item["field"] for item in mapping_error(quote).fields]


def set_line_amounts(line: dict[str, Any], subtotal: int, discount: int) -> None:
    line["amount_subtotal"] = subtotal
    line["amount_discount"] = discount
    line["amount_total"] = subtotal - discount


# -- the realistic fixture -------------------------------------------------------------------


def test_fixture_is_a_stripe_quote_accepted_event():
    raw = json.loads(FIXTURE.read_text())
    assert raw["object"] == "event"
    assert raw["type"] == "quote.accepted"
    assert raw["data"]["object"]["object"] == "quote"
    assert raw["data"]["object"]["status"] == "accepted"
    # Includable properties never come in an event: the lines are a separate list answer.
    assert "line_items" not in raw["data"]["object"]
    assert "line_items" not in raw["data"]["object"]["computed"]["upfront"]
    lines = json.loads(LINE_ITEMS.read_text())
    assert (lines["object"], lines["has_more"]) == ("list", False)
    assert lines["url"] == f"/v1/quotes/{raw['data']['object']['id']}/line_items"
    event = stripe.parse_event(FIXTURE.read_bytes())
    assert event.id == "evt_1PTk9sRvQ3nYw8ZfK2cLx7Hd"
    assert event.livemode is False


def test_fixture_quote_header():
    quote = quote_from_stripe(fixture_quote())
    assert quote.quote_id == "qt_1PTk2aRvQ3nYw8ZfT0mQ4uEb"
    assert quote.account_id == "0015e00000AcmeUS1"
    assert quote.opportunity_id == "0065e00000Q7xYzAAB"
    assert quote.owner == "Maya Chen"
    assert quote.currency == "USD"
    assert quote.payment_terms is PaymentTerms.NET30
    assert quote.term_months == 12
    assert quote.accepted_at == datetime(2024, 6, 20, 14, 32, 7, tzinfo=UTC)
    assert quote.accepted_at.utcoffset() is not None
    assert quote.start_date == date(2024, 7, 1)  # subscription_data.effective_date


def test_fixture_quote_lines():
    seats, support, onboarding = quote_from_stripe(fixture_quote()).lines

    assert seats.line_id == "li_1PTk2bRvQ3nYw8ZfW9c3JqLs"
    assert seats.sku == "PLAT-CORE"  # lookup_key, upper-cased
    assert seats.description == "Platform Core (per seat / month)"
    assert seats.quantity == Decimal(20)
    assert seats.unit_price == Decimal("45.00")
    assert seats.discount_percent == Decimal("10.0000")
    assert seats.billing is BillingType.RECURRING
    assert seats.interval is BillingInterval.MONTH

    assert support.line_id == "li_1PTk2bRvQ3nYw8ZfH4dE8kRt"
    assert support.sku == "SUPPORT-PREMIUM"  # price.metadata.sku: no lookup_key
    assert support.description == "Premium Support (annual)"
    assert support.quantity == Decimal(1)
    assert support.unit_price == Decimal("4990.00")
    assert support.discount_percent == Decimal(0)
    assert support.billing is BillingType.RECURRING
    assert support.interval is BillingInterval.YEAR

    assert onboarding.line_id == "li_1PTk2bRvQ3nYw8ZfB7uM2nXo"
    assert onboarding.sku == "ONBOARD-STD"
    assert onboarding.description == "Standard Onboarding (one-off)"
    assert onboarding.quantity == Decimal(1)
    assert onboarding.unit_price == Decimal("2500.00")
    assert onboarding.discount_percent == Decimal(0)
    assert onboarding.billing is BillingType.ONE_TIME
    assert onboarding.interval is None


def test_fixture_total_matches_stripe_amount_total():
    raw = fixture_quote()
    quote = quote_from_stripe(raw)
    assert quote.total == Decimal("8300.00")
    assert quote.total == Decimal(raw["amount_total"]).scaleb(-2)
    for line, item in zip(quote.lines, raw["line_items"]["data"], strict=True):
        assert line.net_amount("USD") == Decimal(item["amount_total"]).scaleb(-2)


def test_fixture_maps_the_same_from_raw_json_and_parsed_envelope():
    raw = json.loads(FIXTURE.read_text())["data"]["object"]
    lines = json.loads(LINE_ITEMS.read_text())["data"]
    assert quote_from_stripe(with_line_items(raw, lines)) == quote_from_stripe(fixture_quote())


def test_mapping_does_not_modify_the_payload():
    raw = fixture_quote()
    before = copy.deepcopy(raw)
    quote_from_stripe(raw)
    assert raw == before


# -- currencies and amounts --------------------------------------------------------------------


def test_jpy_amounts_have_no_minor_unit():
    raw = sample_stripe_quote(
        "qt_1JpyQuote0001",
        "0015e00000SakuJP1",
        currency="jpy",
        lines=[("PLAT-CORE", 10, 6500, "month"), ("ONBOARD-STD", 1, 360000, None)],
        accepted_at=ACCEPTED,
    )
    quote = quote_from_stripe(raw)
    assert quote.currency == "JPY"
    assert [line.unit_price for line in quote.lines] == [Decimal(6500), Decimal(360000)]
    assert quote.total == Decimal(425000)
    assert quote.total == Decimal(raw["amount_total"])


def test_eur_amounts_keep_their_cents():
    raw = sample_stripe_quote(
        "qt_1EurQuote0001",
        "0015e00000NordDE1",
        currency="eur",
        lines=[("PLAT-ANALYTICS", 7, 1425, "year"), ("TRAINING-DAY", 1, 110001, None)],
        accepted_at=ACCEPTED,
    )
    quote = quote_from_stripe(raw)
    assert quote.currency == "EUR"
    assert [line.unit_price for line in quote.lines] == [Decimal("14.25"), Decimal("1100.01")]
    assert quote.total == Decimal("1199.76")


def test_fractional_unit_amount_decimal_is_exact():
    raw = sample_stripe_quote("qt_1FracQuote01", "0015e00000AcmeUS1", accepted_at=ACCEPTED)
    raw["line_items"]["data"][0]["price"]["unit_amount_decimal"] = "4500.125"
    assert quote_from_stripe(raw).lines[0].unit_price == Decimal("45.00125")


def test_unit_amount_is_the_fallback_for_unit_amount_decimal():
    raw = sample_stripe_quote("qt_1IntQuote001", "0015e00000AcmeUS1", accepted_at=ACCEPTED)
    price = raw["line_items"]["data"][0]["price"]
    price["unit_amount_decimal"] = None
    price["unit_amount"] = 4599
    assert quote_from_stripe(raw).lines[0].unit_price == Decimal("45.99")


def test_a_price_without_any_unit_amount_is_refused():
    raw = sample_stripe_quote("qt_1NoAmount001", "0015e00000AcmeUS1", accepted_at=ACCEPTED)
    price = raw["line_items"]["data"][0]["price"]
    price["unit_amount_decimal"] = None
    price["unit_amount"] = None
    assert failed_fields(raw) == [f"{LINE0}.price.unit_amount"]


def test_unsupported_currency_is_refused():
    raw = sample_stripe_quote("qt_1BadCurrncy1", "0015e00000AcmeUS1", accepted_at=ACCEPTED)
    raw["currency"] = "xts"
    assert failed_fields(raw) == ["data.object.currency"]


# -- discounts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subtotal", "discount", "expected"),
    [
        (90000, 9000, "10.0000"),
        (30000, 10000, "33.3333"),
        (3, 2, "66.6667"),
        (8, 1, "12.5000"),
        (20000, 1, "0.0050"),
        (2_000_000, 1, "0.0001"),  # exactly 0.00005: half-up
        (6_000_000, 1, "0.0000"),  # 0.0000166...
        (49900, 49900, "100.0000"),
        (0, 0, "0"),
    ],
)
def test_discount_percent_is_derived_exactly(subtotal, discount, expected):
    raw = sample_stripe_quote("qt_1Discount001", "0015e00000AcmeUS1", accepted_at=ACCEPTED)
    set_line_amounts(raw["line_items"]["data"][0], subtotal, discount)
    line = quote_from_stripe(raw).lines[0]
    assert line.discount_percent == Decimal(expected)
    assert line.discount_percent == line.discount_percent.quantize(Decimal("0.0001"))


def test_discount_is_derived_from_amount_total_without_amount_discount():
    raw = sample_stripe_quote("qt_1Discount002", "0015e00000AcmeUS1", accepted_at=ACCEPTED)
    item = raw["line_items"]["data"][0]
    set_line_amounts(item, 90000, 13500)
    del item["amount_discount"]
    assert quote_from_stripe(raw).lines[0].discount_percent == Decimal("15.0000")


def test_a_discount_above_the_subtotal_is_refused_at_amount_discount():
    raw = sample_stripe_quote("qt_1Discount003", "0015e00000AcmeUS1", accepted_at=ACCEPTED)
    set_line_amounts(raw["line_items"]["data"][0], 1000, 1001)
    assert failed_fields(raw) == [f"{LINE0}.amount_discount"]


# -- required fields ---------------------------------------------------------------------------


def _drop_account(q):
    del q["metadata"]["crm_account_id"]


def _drop_owner(q):
    del q["metadata"]["owner"]


def _blank_owner(q):
    q["metadata"]["owner"] = "   "


def _unaccepted(q):
    q["status_transitions"]["accepted_at"] = None


def _no_transitions(q):
    del q["status_transitions"]


def _no_sku(q):
    price = q["line_items"]["data"][0]["price"]
    price["lookup_key"] = None
    price["metadata"] = {}


def _no_line_items(q):
    del q["line_items"]


@pytest.mark.parametrize(
    ("damage", "field"),
    [
        (_drop_account, "data.object.metadata.crm_account_id"),
        (_drop_owner, "data.object.metadata.owner"),
        (_blank_owner, "data.object.metadata.owner"),
        (_unaccepted, "data.object.status_transitions.accepted_at"),
        (_no_transitions, "data.object.status_transitions.accepted_at"),
        (_no_sku, f"{LINE0}.price.lookup_key"),
        (_no_line_items, "data.object.line_items"),
    ],
)
def test_a_missing_required_field_is_named_by_its_path(damage, field):
    raw = fixture_quote()
    damage(raw)
    error = mapping_error(raw)
    assert [item["field"] for item in error.fields] == [field]
    assert error.fields[0]["message"].startswith("is required")
    assert field in str(error)


def test_every_problem_is_reported_at_once():
    raw = fixture_quote()
    del raw["metadata"]["crm_account_id"]
    del raw["metadata"]["owner"]
    raw["status_transitions"]["accepted_at"] = None
    assert failed_fields(raw) == [
        "data.object.metadata.crm_account_id",
        "data.object.metadata.owner",
        "data.object.status_transitions.accepted_at",
    ]


def test_a_quote_without_metadata_names_each_required_key():
    raw = fixture_quote()
    del raw["metadata"]
    assert failed_fields(raw) == [
        "data.object.metadata.crm_account_id",
        "data.object.metadata.owner",
    ]


def test_opportunity_id_is_optional():
    raw = fixture_quote()
    del raw["metadata"]["crm_opportunity_id"]
    assert quote_from_stripe(raw).opportunity_id is None


def test_a_truncated_line_item_list_is_refused():
    raw = fixture_quote()
    raw["line_items"]["has_more"] = True
    assert failed_fields(raw) == ["data.object.line_items.has_more"]


def test_a_quote_that_is_not_accepted_is_refused():
    raw = fixture_quote()
    raw["status"] = "open"
    assert failed_fields(raw) == ["data.object.status"]


# -- billing intervals -------------------------------------------------------------------------


@pytest.mark.parametrize("interval", ["day", "week"])
def test_unsupported_interval_is_refused(interval):
    raw = fixture_quote()
    raw["line_items"]["data"][0]["price"]["recurring"]["interval"] = interval
    error = mapping_error(raw)
    assert [item["field"] for item in error.fields] == [f"{LINE0}.price.recurring.interval"]
    assert interval not in error.fields[0]["message"]


def test_an_interval_count_other_than_one_is_refused():
    raw = fixture_quote()
    raw["line_items"]["data"][0]["price"]["recurring"]["interval_count"] = 3
    assert failed_fields(raw) == [f"{LINE0}.price.recurring.interval_count"]


def test_tiered_prices_are_refused():
    raw = fixture_quote()
    price = raw["line_items"]["data"][0]["price"]
    price["billing_scheme"] = "tiered"
    price["tiers_mode"] = "graduated"
    price["unit_amount"] = price["unit_amount_decimal"] = None
    assert failed_fields(raw) == [
        f"{LINE0}.price.billing_scheme",
        f"{LINE0}.price.unit_amount",
    ]


def test_a_quote_with_only_one_time_lines_is_refused():
    raw = sample_stripe_quote(
        "qt_1OneTimeOnly1",
        "0015e00000AcmeUS1",
        lines=[("ONBOARD-STD", 1, 250000, None), ("TRAINING-DAY", 2, 120000, None)],
        accepted_at=ACCEPTED,
    )
    error = mapping_error(raw)
    assert [item["field"] for item in error.fields] == ["data.object"]
    assert "recurring line" in error.fields[0]["message"]


# -- payment terms -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "terms"),
    [
        (0, PaymentTerms.DUE_ON_RECEIPT),
        (15, PaymentTerms.NET15),
        (30, PaymentTerms.NET30),
        (45, PaymentTerms.NET45),
        (60, PaymentTerms.NET60),
        (90, PaymentTerms.NET90),
    ],
)
def test_send_invoice_days_until_due_become_payment_terms(days, terms):
    raw = fixture_quote()
    raw["invoice_settings"]["days_until_due"] = days
    assert quote_from_stripe(raw).payment_terms is terms


def test_charge_automatically_is_due_on_receipt():
    raw = fixture_quote()
    raw["collection_method"] = "charge_automatically"
    raw["invoice_settings"]["days_until_due"] = None
    assert quote_from_stripe(raw).payment_terms is PaymentTerms.DUE_ON_RECEIPT


@pytest.mark.parametrize("days", [7, 14, 31, 120])
def test_other_days_until_due_are_refused(days):
    raw = fixture_quote()
    raw["invoice_settings"]["days_until_due"] = days
    error = mapping_error(raw)
    assert [item["field"] for item in error.fields] == [
        "data.object.invoice_settings.days_until_due"
    ]


def test_send_invoice_without_days_until_due_is_refused():
    raw = fixture_quote()
    raw["invoice_settings"]["days_until_due"] = None
    assert failed_fields(raw) == ["data.object.invoice_settings.days_until_due"]


# -- term and dates ----------------------------------------------------------------------------


def test_term_months_comes_from_metadata_else_twelve():
    raw = fixture_quote()
    raw["metadata"]["term_months"] = "36"
    assert quote_from_stripe(raw).term_months == 36
    del raw["metadata"]["term_months"]
    assert quote_from_stripe(raw).term_months == 12


@pytest.mark.parametrize("value", ["twelve", "12.5", "-3", "0", "999"])
def test_an_invalid_term_is_refused(value):
    raw = fixture_quote()
    raw["metadata"]["term_months"] = value
    assert failed_fields(raw) == ["data.object.metadata.term_months"]


def test_start_date_is_the_accepted_date_in_utc_without_effective_date():
    raw = fixture_quote()
    raw["subscription_data"]["effective_date"] = None
    # 2024-06-20T23:30:00Z: still the 20th in UTC, already the 21st east of it.
    raw["status_transitions"]["accepted_at"] = 1_718_926_200
    quote = quote_from_stripe(raw)
    assert quote.start_date == date(2024, 6, 20)
    assert quote.accepted_at == datetime(2024, 6, 20, 23, 30, tzinfo=UTC)


# -- model validation mapped back to Stripe paths ----------------------------------------------


def test_model_errors_point_at_the_stripe_field():
    raw = fixture_quote()
    raw["line_items"]["data"][0]["price"]["lookup_key"] = "plat core!"
    raw["line_items"]["data"][1]["price"]["metadata"]["sku"] = "x"
    raw["line_items"]["data"][2]["quantity"] = 0
    raw["metadata"]["crm_account_id"] = "not an id"
    assert sorted(failed_fields(raw)) == [
        "data.object.line_items.data.0.price.lookup_key",
        "data.object.line_items.data.1.price.metadata.sku",
        "data.object.line_items.data.2.quantity",
        "data.object.metadata.crm_account_id",
    ]


def test_unit_price_errors_point_at_the_field_that_was_read():
    raw = fixture_quote()
    raw["line_items"]["data"][0]["price"]["unit_amount_decimal"] = "-1"
    raw["line_items"]["data"][1]["price"]["unit_amount_decimal"] = None
    raw["line_items"]["data"][1]["price"]["unit_amount"] = -5
    assert failed_fields(raw) == [
        f"{LINE0}.price.unit_amount_decimal",
        "data.object.line_items.data.1.price.unit_amount",
    ]


# -- no payload values in errors ---------------------------------------------------------------


def test_messages_never_contain_payload_values():
    owner = "Zebulon Quartermaine-Oyelaran " * 6  # too long: refused by the model
    raw = sample_stripe_quote(
        "qt_1PiiQuote001",
        "0015e00000AcmeUS1",
        owner=owner,
        lines=[("PLAT-CORE", 5, 4500, "month"), ("ONBOARD-STD", 1, 250000, None)],
        accepted_at=ACCEPTED,
    )
    raw["metadata"]["crm_opportunity_id"] = "opp with spaces Hunter2"
    raw["line_items"]["data"][0]["description"] = "Private note for Zebulon " * 30
    error = mapping_error(raw)
    rendered = str(error) + json.dumps(error.fields)
    assert {item["field"] for item in error.fields} == {
        "data.object.metadata.owner",
        "data.object.metadata.crm_opportunity_id",
        f"{LINE0}.description",
    }
    for secret in ("Zebulon", "Quartermaine", "Hunter2", "Private"):
        assert secret not in rendered

    # The model's own message names the duplicate id; it is redacted.
    raw = sample_stripe_quote("qt_1PiiQuote003", "0015e00000AcmeUS1", accepted_at=ACCEPTED)
    items = raw["line_items"]["data"]
    items[1]["id"] = items[0]["id"] = "li_SecretDuplicate77"
    error = mapping_error(raw)
    assert [item["field"] for item in error.fields] == ["data.object"]
    assert "more than once" in error.fields[0]["message"]
    assert "SecretDuplicate77" not in str(error) + json.dumps(error.fields)

    raw = sample_stripe_quote("qt_1PiiQuote002", "0015e00000AcmeUS1", accepted_at=ACCEPTED)
    raw["currency"] = "zzq"
    raw["line_items"]["data"][0]["price"]["recurring"]["interval"] = "fortnight"
    raw["metadata"]["term_months"] = "Hunter2"
    raw["invoice_settings"]["days_until_due"] = 17
    rendered = str(mapping_error(raw).fields)
    for secret in ("zzq", "ZZQ", "fortnight", "Hunter2", "17"):
        assert secret not in rendered


def test_mapping_error_summary():
    error = MappingError(
        [
            {"field": "data.object.metadata.owner", "message": "is required"},
            {"field": "data.object.currency", "message": "unsupported currency"},
        ]
    )
    assert isinstance(error, Exception)
    assert "2 field errors" in str(error)
    assert "data.object.metadata.owner" in str(error)


# -- samples -----------------------------------------------------------------------------------


def test_sample_quote_round_trips_through_a_signed_event():
    quote_obj = sample_stripe_quote("qt_1SampleQuote1", "0015e00000AcmeUS1", accepted_at=ACCEPTED)
    event = sample_event(quote_obj)
    body = json.dumps(event).encode()
    secret = "whsec_test_sample"
    stripe.verify([secret], stripe.sign(secret, body, ACCEPTED), body, now=ACCEPTED)
    parsed = stripe.parse_event(body)
    assert parsed.type == "quote.accepted"
    assert parsed.id.startswith("evt_")
    assert parsed.created == ACCEPTED
    # No event carries a quote's includable lines: they are read and put back.
    assert "line_items" not in parsed.data.object
    with pytest.raises(MappingError):
        quote_from_stripe(parsed.data.object)
    quote = quote_from_stripe(with_line_items(parsed.data.object, quote_obj["line_items"]["data"]))
    assert isinstance(quote, Quote)
    assert quote.quote_id == "qt_1SampleQuote1"
    assert quote.owner == "Dana Seller"
    assert quote.account_id == "0015e00000AcmeUS1"
    assert quote.payment_terms is PaymentTerms.NET30
    assert [line.sku for line in quote.lines] == ["PLAT-CORE", "SUPPORT-PREMIUM", "ONBOARD-STD"]
    assert quote.total == Decimal("3899.00")
    assert quote.total == Decimal(quote_obj["amount_total"]).scaleb(-2)


def test_sample_quote_looks_like_stripe():
    quote_obj = sample_stripe_quote("qt_1SampleQuote2", "0015e00000AcmeUS1", accepted_at=ACCEPTED)
    assert quote_obj["object"] == "quote"
    assert quote_obj["status"] == "accepted"
    assert quote_obj["livemode"] is False
    assert quote_obj["status_transitions"]["accepted_at"] == ACCEPTED
    assert quote_obj["computed"]["upfront"]["amount_total"] == quote_obj["amount_total"]
    assert quote_obj["computed"]["recurring"]["interval"] == "month"
    assert quote_obj["line_items"]["object"] == "list"
    for item in quote_obj["line_items"]["data"]:
        assert item["object"] == "item"
        assert item["id"].startswith("li_")
        assert item["price"]["product"].startswith("prod_")
        assert item["price"]["lookup_key"]
        assert "recurring" in item["price"]
    assert (
        quote_from_stripe(quote_obj).lines[0].line_id == (quote_obj["line_items"]["data"][0]["id"])
    )


def test_samples_are_deterministic():
    first = sample_stripe_quote("qt_1SampleQuote3", "0015e00000AcmeUS1", accepted_at=ACCEPTED)
    second = sample_stripe_quote("qt_1SampleQuote3", "0015e00000AcmeUS1", accepted_at=ACCEPTED)
    assert first == second
    assert sample_event(first) == sample_event(second)
    assert sample_event(first)["id"] != sample_event(first, type="quote.finalized")["id"]
    assert sample_event(first, event_id="evt_given")["id"] == "evt_given"


def test_sample_event_envelope():
    quote_obj = sample_stripe_quote("qt_1SampleQuote4", "0015e00000AcmeUS1", accepted_at=ACCEPTED)
    event = sample_event(quote_obj)
    assert set(event) == {
        "id",
        "object",
        "api_version",
        "created",
        "data",
        "livemode",
        "pending_webhooks",
        "request",
        "type",
    }
    assert event["object"] == "event"
    assert event["data"]["object"] == {k: v for k, v in quote_obj.items() if k != "line_items"}
    assert "line_items" in quote_obj  # the quote given is left as it was
    assert event["livemode"] is False
    assert event["type"] == "quote.accepted"


def test_isk_unit_amounts_come_with_two_zero_decimals():
    raw = sample_stripe_quote(
        "qt_1IskQuote0001",
        "0015e00000HekluIS",
        currency="isk",
        lines=[("PLAT-CORE", 2, 1_500_000, "month")],  # Stripe: 15,000 ISK as 1500000
        accepted_at=ACCEPTED,
    )
    quote = quote_from_stripe(raw)
    assert quote.currency == "ISK"
    assert [line.unit_price for line in quote.lines] == [Decimal(15000)]
    assert quote.total == Decimal(30000)
