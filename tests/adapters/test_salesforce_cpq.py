"""Salesforce CPQ: the quote-accepted trigger read from realistic Outbound Messages and SOQL
answers, mapped to the canonical Quote; the reader against the emulator."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.crm.salesforce import SalesforceCrm
from adapters.crm.salesforce_cpq import CpqQuoteReader, cpq_reader
from adapters.errors import NotFoundError, TransientError
from adapters.http import decode_json
from adapters.webhooks.salesforce import Notification, parse_outbound_message
from adapters.webhooks.salesforce_cpq import (
    CpqMappingError,
    accepted_quote_id,
    is_bookable,
    quote_from_cpq,
)
from domain.quote import BillingInterval, BillingType, PaymentTerms
from revsync.settings import Settings
from sandbox.app import DEFAULT_TOKENS, SandboxState
from sandbox.quotes import price
from sandbox.salesforce import CpqLine, seed_cpq_quote

FIXTURES = Path(__file__).parent.parent / "fixtures" / "salesforce"
BASE_URL = "http://sandbox/salesforce"
TOKEN = DEFAULT_TOKENS["salesforce"]


def fixture_json(name: str) -> Any:
    # As the adapter reads an answer: non-integer numbers as exact Decimals.
    return decode_json(httpx.Response(200, content=(FIXTURES / name).read_bytes()))


@pytest.fixture
def quote_record() -> dict[str, Any]:
    return dict(fixture_json("cpq_quote_query.json")["records"][0])


@pytest.fixture
def line_records() -> list[dict[str, Any]]:
    return list(fixture_json("cpq_quote_lines_query.json")["records"])


def errors_of(quote: dict[str, Any], lines: list[dict[str, Any]]) -> dict[str, str]:
    with pytest.raises(CpqMappingError) as caught:
        quote_from_cpq(quote, lines)
    return {item["field"]: item["message"] for item in caught.value.fields}


# -- the trigger ------------------------------------------------------------------------------


def test_the_outbound_message_names_only_accepted_primary_quotes():
    message = parse_outbound_message((FIXTURES / "cpq_quote_outbound_message.xml").read_bytes())
    assert [accepted_quote_id(note) for note in message.notifications] == [
        "a0x5g00000Qw1RtAAJ",
        None,  # Presented
        None,  # accepted, but not the primary quote
    ]


def test_a_notification_without_status_fields_leaves_the_decision_to_the_read():
    bare = Notification(
        id="04l5g00000CpQ1aAAB", sobject_type="SBQQ__Quote__c", fields={"Id": "a0x5g00000Qw1Rt"}
    )
    assert accepted_quote_id(bare) == "a0x5g00000Qw1Rt"
    other = bare.model_copy(update={"sobject_type": "Opportunity"})
    assert accepted_quote_id(other) is None
    malformed = bare.model_copy(update={"fields": {"Id": "a0x' OR Id != '"}})
    assert accepted_quote_id(malformed) is None


def test_bookable_means_accepted_and_primary_as_read(quote_record):
    assert is_bookable(quote_record)
    assert not is_bookable(quote_record | {"SBQQ__Primary__c": False})
    assert not is_bookable(quote_record | {"SBQQ__Status__c": "Ordered"})


# -- mapping ----------------------------------------------------------------------------------


def test_a_realistic_quote_maps_to_the_canonical_quote(quote_record, line_records):
    quote = quote_from_cpq(quote_record, line_records)

    assert quote.quote_id == "a0x5g00000Qw1RtAAJ"
    assert quote.account_id == "0015e00000NordDE1"
    assert quote.opportunity_id == "0065g00000Op7XyAAJ"
    assert quote.owner == "0055g00000Rp3KqAAJ"
    assert quote.currency == "EUR"
    assert quote.payment_terms is PaymentTerms.NET45
    assert quote.term_months == 12
    assert quote.start_date == date(2026, 12, 1)
    assert quote.accepted_at == datetime(2026, 11, 23, 16, 42, 7, tzinfo=UTC)
    # In SBQQ__Number__c order, whatever order the query answered in.
    assert [line.line_id for line in quote.lines] == [
        "a0y5g00000Ln1AaAAJ",
        "a0y5g00000Ln1AbAAJ",
        "a0y5g00000Ln1AcAAJ",
        "a0y5g00000Ln1AdAAJ",
    ]
    core, support, onboarding, analytics = quote.lines
    # 504.00 for the 12-month term, prorated x12: 42.00 a seat a month, 10 % off.
    assert (core.sku, core.quantity, core.unit_price) == (
        "PLAT-CORE",
        Decimal(25),
        Decimal("42.00"),
    )
    assert core.discount_percent == Decimal("10.0000")
    assert (core.billing, core.billing_interval) == (BillingType.RECURRING, BillingInterval.MONTH)
    # Billed yearly, not prorated; a partner discount shows only in the net price.
    assert (support.unit_price, support.discount_percent) == (Decimal("5520.00"), Decimal(10))
    assert support.billing_interval is BillingInterval.YEAR
    assert (onboarding.sku, onboarding.billing) == ("ONBOARD-STD", BillingType.ONE_TIME)
    assert onboarding.interval is None
    # No charge type (an org without Salesforce Billing) but subscription pricing: recurring.
    assert analytics.billing is BillingType.RECURRING
    assert (analytics.unit_price, analytics.discount_percent) == (Decimal("14.25"), Decimal(5))
    # What revsync books per period is what CPQ shows net.
    assert core.net_amount("EUR") == Decimal("25") * Decimal("453.60") / 12
    assert quote.total == Decimal("945.00") + Decimal("4968.00") + Decimal("2300.00") + Decimal(
        "135.38"
    )


def test_blank_optional_fields_take_the_package_defaults(quote_record, line_records):
    quote_record |= {
        "SBQQ__PaymentTerms__c": None,
        "SBQQ__SubscriptionTerm__c": None,
        "SBQQ__StartDate__c": None,
        "SBQQ__SalesRep__c": None,
        "SBQQ__Opportunity2__c": None,
    }
    for line in line_records:
        line["SBQQ__SubscriptionTerm__c"] = None
    quote = quote_from_cpq(quote_record, line_records)
    assert quote.payment_terms is PaymentTerms.NET30
    assert quote.term_months == 12
    assert quote.start_date == date(2026, 11, 23)  # the day it was accepted
    assert quote.owner == "0055g00000Rp3KqAAJ"  # the record owner
    assert quote.opportunity_id is None


def test_a_line_priced_before_calculation_uses_the_customer_price(quote_record, line_records):
    line_records[0]["SBQQ__NetPrice__c"] = None
    quote = quote_from_cpq(quote_record, line_records)
    assert quote.lines[0].discount_percent == Decimal("10.0000")


def test_every_unsupported_field_is_named_without_its_value(quote_record, line_records):
    quote_record |= {"CurrencyIsoCode": "XXX", "SBQQ__PaymentTerms__c": "Net 7", "Id": "a0xQ"}
    core, onboarding, support, analytics = copy.deepcopy(line_records)
    core["SBQQ__ChargeType__c"] = "Usage"
    support["SBQQ__BillingFrequency__c"] = "Quarterly"
    onboarding["SBQQ__ListPrice__c"] = None
    analytics["SBQQ__SubscriptionTerm__c"] = 24
    fields = errors_of(quote_record, [core, onboarding, support, analytics])
    assert fields == {
        "SBQQ__Quote__c.CurrencyIsoCode": "unsupported currency",
        "SBQQ__Quote__c.SBQQ__PaymentTerms__c": (
            "unsupported payment terms: use Due on Receipt or Net 15, 30, 45, 60 or 90"
        ),
        "SBQQ__QuoteLine__c.a0y5g00000Ln1AaAAJ.SBQQ__ChargeType__c": (
            "unsupported charge type: use Recurring or One-Time"
        ),
        "SBQQ__QuoteLine__c.a0y5g00000Ln1AbAAJ.SBQQ__BillingFrequency__c": (
            "unsupported billing frequency: use Monthly or Annual"
        ),
        "SBQQ__QuoteLine__c.a0y5g00000Ln1AcAAJ.SBQQ__ListPrice__c": "is required",
        "SBQQ__QuoteLine__c.a0y5g00000Ln1AdAAJ.SBQQ__SubscriptionTerm__c": (
            "differs from the quote's subscription term"
        ),
    }
    with pytest.raises(CpqMappingError) as caught:
        quote_from_cpq(quote_record, [core, onboarding, support, analytics])
    assert "XXX" not in str(caught.value) and "Net 7" not in json.dumps(caught.value.fields)


def test_prices_that_do_not_make_a_per_period_price_are_refused(quote_record, line_records):
    core = line_records[0]
    assert errors_of(quote_record, [core | {"SBQQ__ProrateMultiplier__c": Decimal(11)}]) == {
        "SBQQ__QuoteLine__c.a0y5g00000Ln1AaAAJ.SBQQ__ProrateMultiplier__c": (
            "the list price does not divide into an exact price per billing period"
        )
    }
    assert errors_of(quote_record, [core | {"SBQQ__NetPrice__c": Decimal("600.00")}]) == {
        "SBQQ__QuoteLine__c.a0y5g00000Ln1AaAAJ.SBQQ__NetPrice__c": "is above the list price"
    }


def test_domain_rules_are_reported_on_the_salesforce_field(quote_record, line_records):
    onboarding = line_records[1]
    # Only a one-time line: no subscription to provision.
    fields = errors_of(quote_record, [onboarding])
    assert list(fields) == ["SBQQ__Quote__c"]
    assert "recurring line" in fields["SBQQ__Quote__c"]
    bad_sku = line_records[0] | {"SBQQ__ProductCode__c": "Platform Core!"}
    fields = errors_of(quote_record, [bad_sku])
    assert list(fields) == ["SBQQ__QuoteLine__c.a0y5g00000Ln1AaAAJ.SBQQ__ProductCode__c"]


def test_a_quote_without_lines_is_refused(quote_record):
    assert errors_of(quote_record, []) == {"SBQQ__QuoteLine__c": "the quote has no lines"}


# -- the reader against the emulator ------------------------------------------------------------


@pytest.fixture
def crm(http: httpx.AsyncClient) -> SalesforceCrm:
    return SalesforceCrm(http, base_url=BASE_URL, api_version="v61.0", access_token=TOKEN)


async def test_a_seeded_quote_reads_back_and_maps_to_its_price_book_prices(
    crm: SalesforceCrm, state: SandboxState
):
    seeded = seed_cpq_quote(
        state.salesforce,
        account_id="0015e00000NordDE1",
        lines=[
            CpqLine("PLAT-CORE", Decimal(20), Decimal(10)),
            CpqLine("SUPPORT-PREMIUM", billing_frequency="year"),
            CpqLine("ONBOARD-STD"),
        ],
        term_months=24,
        payment_terms="Net 15",
        start_date=date(2027, 1, 1),
    )
    other = seed_cpq_quote(state.salesforce)  # lines of another quote stay with it

    found = await CpqQuoteReader(crm).read([seeded["quote_id"], other["quote_id"]])

    records = found[seeded["quote_id"]]
    assert len(records.lines) == 3 and len(found[other["quote_id"]].lines) == 3
    quote = quote_from_cpq(records.quote, records.lines)
    assert (quote.account_id, quote.currency, quote.term_months) == ("0015e00000NordDE1", "EUR", 24)
    assert (quote.payment_terms, quote.start_date) == (PaymentTerms.NET15, date(2027, 1, 1))
    core, support, onboarding = quote.lines
    assert (core.unit_price, core.discount_percent) == (Decimal("42.00"), Decimal(10))
    yearly = price("SUPPORT-PREMIUM", "EUR") * 12
    assert (support.unit_price, support.billing_interval) == (yearly, BillingInterval.YEAR)
    assert (onboarding.unit_price, onboarding.billing) == (Decimal("2300.00"), BillingType.ONE_TIME)


async def test_every_quote_of_a_delivery_is_read_in_one_call(
    http: httpx.AsyncClient, state: SandboxState
):
    calls: list[str] = []

    async def count(request: httpx.Request) -> None:
        calls.append(f"{request.method} {request.url.path}")

    http.event_hooks["request"].append(count)
    crm = SalesforceCrm(http, base_url=BASE_URL, api_version="v61.0", access_token=TOKEN)
    ids = [seed_cpq_quote(state.salesforce)["quote_id"] for _ in range(40)]

    found = await CpqQuoteReader(crm).read(ids + ids[:5])  # repeats are read once

    assert sorted(found) == sorted(ids)
    assert all(len(records.lines) == 3 for records in found.values())
    # Quotes and lines of 40 quotes: one composite call (two queries one by one: 2 calls).
    assert calls == ["POST /salesforce/services/data/v61.0/composite"]


async def test_lines_beyond_a_page_are_followed(http: httpx.AsyncClient, state: SandboxState):
    state.salesforce.query_batch_size = 2
    crm = SalesforceCrm(http, base_url=BASE_URL, api_version="v61.0", access_token=TOKEN)
    ids = [seed_cpq_quote(state.salesforce)["quote_id"] for _ in range(3)]
    found = await CpqQuoteReader(crm).read(ids)
    assert sum(len(records.lines) for records in found.values()) == 9


async def test_a_deleted_quote_is_simply_absent(crm: SalesforceCrm):
    assert await CpqQuoteReader(crm).read(["a0x5e0000000000AAA"]) == {}


async def test_a_malformed_id_never_reaches_soql(crm: SalesforceCrm):
    with pytest.raises(NotFoundError) as caught:
        await CpqQuoteReader(crm).read(["a0x' OR Name != '"])
    assert caught.value.code == "MALFORMED_ID"


async def test_a_query_failing_inside_the_composite_is_classified(
    crm: SalesforceCrm, http: httpx.AsyncClient, state: SandboxState
):
    quote_id = seed_cpq_quote(state.salesforce)["quote_id"]
    rule = {"vendor": "salesforce", "operation": "query", "status": 403}
    rule |= {"code": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit exceeded."}
    await http.post("/_sandbox/faults", json={"faults": [rule]})
    with pytest.raises(TransientError) as caught:
        await CpqQuoteReader(crm).read([quote_id])
    assert (caught.value.status, caught.value.code) == (403, "REQUEST_LIMIT_EXCEEDED")
    assert "TotalRequests" in caught.value.message


def test_the_reader_is_built_from_settings(http: httpx.AsyncClient):
    reader = cpq_reader(Settings(salesforce_base_url=BASE_URL), http)
    assert isinstance(reader, CpqQuoteReader)


async def test_the_sandbox_route_seeds_a_quote_the_reader_can_book(
    crm: SalesforceCrm, http: httpx.AsyncClient
):
    response = await http.post(
        "/_sandbox/salesforce/cpq-quotes",
        json={
            "account_id": "0015e00000ThamGB1",
            "term_months": 36,
            "start_date": "2027-02-01",
            "lines": [
                {"product_code": "PLAT-CORE", "quantity": 5, "discount_percent": "12.5"},
                {"product_code": "ONBOARD-STD"},
            ],
        },
    )
    assert response.status_code == 201, response.text
    seeded = response.json()
    message = parse_outbound_message(seeded["outbound_message"].encode())
    (note,) = message.notifications
    assert accepted_quote_id(note) == seeded["quote_id"]

    records = (await CpqQuoteReader(crm).read([seeded["quote_id"]]))[seeded["quote_id"]]
    quote = quote_from_cpq(records.quote, records.lines)
    assert (quote.currency, quote.term_months, quote.start_date) == ("GBP", 36, date(2027, 2, 1))
    assert quote.lines[0].unit_price == price("PLAT-CORE", "GBP")
    assert quote.lines[0].discount_percent == Decimal("12.5")


@pytest.mark.parametrize(
    "body",
    [
        {"account_id": "001000000000000AAA"},
        {"lines": [{"product_code": "NO-SUCH-SKU"}]},
        {"lines": [{"product_code": "PLAT-CORE", "billing_frequency": "week"}]},
        {"lines": [{"quantity": 2}]},
    ],
    ids=["unknown-account", "unknown-product", "weekly", "no-product"],
)
async def test_the_sandbox_route_refuses_what_it_cannot_seed(
    http: httpx.AsyncClient, body: dict[str, Any], state: SandboxState
):
    response = await http.post("/_sandbox/salesforce/cpq-quotes", json=body)
    assert response.status_code == 400
    assert state.salesforce.snapshot()["quotes"] == []  # nothing half made
