"""The Stripe billing adapter against the Stripe emulator, in process."""

from __future__ import annotations

import ast
import asyncio
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.billing.stripe import (
    StripeBilling,
    classify_stripe_error,
    customer_idempotency_key,
    stripe_exponent,
    stripe_line_price,
    stripe_tax_id,
    to_stripe_amount,
)
from adapters.errors import ConfigurationError, NotFoundError, RejectedError, TransientError
from adapters.ports import BillingPort
from domain.customer import Address, Customer
from domain.money import MINOR_UNITS, to_minor
from domain.order import InvoiceStatus, SubscriptionDraft, SubscriptionStatus, build_subscription
from domain.quote import BillingInterval, BillingType, Quote, QuoteLine
from sandbox import stripe as stripe_emulator
from sandbox.app import DEFAULT_TOKENS, SandboxState
from sandbox.seed import ACCOUNTS
from sandbox.stripe import StripeError, StripeStore, parse_form

BASE_URL = "http://sandbox/stripe"
API_KEY = DEFAULT_TOKENS["stripe"]
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
def billing(http: httpx.AsyncClient) -> StripeBilling:
    adapter = StripeBilling(http, base_url=BASE_URL, api_key=API_KEY)
    port: BillingPort = adapter  # mypy checks the adapter implements the port
    assert port.vendor == "stripe"
    return adapter


def seed_customer(account_id: str = "0015e00000NordDE1") -> Customer:
    (account,) = [a for a in ACCOUNTS if a["Id"] == account_id]
    return Customer(
        account_id=account["Id"],
        name=account["Name"],
        legal_entity=account["Legal_Entity__c"],
        tax_id=account["Tax_Id__c"],
        email=account["Billing_Email__c"],
        billing_address=Address(
            line1=account["BillingStreet"],
            city=account["BillingCity"],
            region=account["BillingState"],
            postal_code=account["BillingPostalCode"],
            country=account["BillingCountryCode"],
        ),
        currency=account["CurrencyIsoCode"],
    )


def line(
    line_id: str,
    sku: str,
    quantity: str,
    unit_price: str,
    discount: str = "0",
    *,
    one_time: bool = False,
    interval: BillingInterval | None = None,
) -> QuoteLine:
    return QuoteLine(
        line_id=line_id,
        sku=sku,
        description=f"{sku} line",
        quantity=Decimal(quantity),
        unit_price=Decimal(unit_price),
        discount_percent=Decimal(discount),
        billing=BillingType.ONE_TIME if one_time else BillingType.RECURRING,
        interval=interval,
    )


def draft_for(
    currency: str,
    lines: list[QuoteLine],
    *,
    quote_id: str = "0Q0TEST000001",
    account_id: str = "0015e00000NordDE1",
) -> SubscriptionDraft:
    quote = Quote(
        quote_id=quote_id,
        account_id=account_id,
        owner="maya.chen@seller.example",
        currency=currency,
        start_date=date(2025, 3, 1),
        accepted_at=datetime(2025, 2, 20, 9, 30, tzinfo=UTC),
        lines=lines,
    )
    return build_subscription(quote, idempotency_key=f"q2c-{quote_id}:subscription")


EUR_DRAFT_LINES = [
    line("L1", "PLAT-CORE", "20", "42.00", "10"),
    line("L2", "SUPPORT-PREMIUM", "1", "459.00"),
    line("L3", "ONBOARD-STD", "1", "2300.00", one_time=True),
]


async def inject(http: httpx.AsyncClient, **rule: Any) -> None:
    response = await http.post("/_sandbox/faults", json={"faults": [{"vendor": "stripe", **rule}]})
    assert response.status_code == 200, response.text


def snapshot(state: SandboxState) -> dict[str, Any]:
    return state.stripe.snapshot()


async def subscribed(
    billing: StripeBilling, draft: SubscriptionDraft | None = None
) -> tuple[str, str, str]:
    """(customer id, subscription id, first invoice id) of a freshly booked EUR draft."""
    draft = draft or draft_for("EUR", EUR_DRAFT_LINES)
    customer_id = await billing.upsert_customer(seed_customer(), "q2c-x:billing-customer")
    subscription = await billing.create_subscription(draft, customer_id)
    assert subscription.latest_invoice_id is not None
    return customer_id, subscription.subscription_id, subscription.latest_invoice_id


# --- customers ------------------------------------------------------------------------------


async def test_customer_is_created_once_then_found(
    billing: StripeBilling, state: SandboxState
) -> None:
    customer = seed_customer()
    first = await billing.upsert_customer(customer, "q2c-Q1:billing-customer")
    # Another quote for the same account: a different key, the same Stripe customer.
    second = await billing.upsert_customer(customer, "q2c-Q2:billing-customer")

    assert first == second
    assert first.startswith("cus_")
    (stored,) = snapshot(state)["customers"]
    assert stored["id"] == first
    assert stored["name"] == "Nordlicht Logistik GmbH"
    assert stored["email"] == "rechnung@nordlicht.example"
    assert stored["address"]["city"] == "Hamburg"
    assert stored["address"]["country"] == "DE"
    assert stored["metadata"]["revsync_account_id"] == "0015e00000NordDE1"
    assert stored["metadata"]["tax_id"] == "DE811907980"
    assert [(t["type"], t["value"]) for t in stored["tax_ids"]["data"]] == [
        ("eu_vat", "DE811907980")
    ]


@pytest.mark.parametrize(
    ("country", "tax_id", "expected"),
    [
        ("US", "94-1234567", ("us_ein", "94-1234567")),
        ("DE", "DE811907980", ("eu_vat", "DE811907980")),
        ("GR", "EL123456789", ("eu_vat", "EL123456789")),
        ("GB", "GB123456789", ("gb_vat", "GB123456789")),
        ("JP", "T1234567890123", ("jp_trn", "T1234567890123")),
        ("CA", "123456789RT0001", ("ca_gst_hst", "123456789RT0001")),
        ("DE", "811907980", None),  # no country prefix: not sent as eu_vat
        ("FR", "DE811907980", None),  # another country's VAT number
        ("BR", "12.345.678/0001-90", None),  # no mapping: metadata only
    ],
)
def test_tax_ids_are_typed_only_when_they_plainly_fit(
    country: str, tax_id: str, expected: tuple[str, str] | None
) -> None:
    assert stripe_tax_id(country, tax_id) == expected


async def test_a_customer_with_an_untyped_tax_id_keeps_it_in_metadata(
    billing: StripeBilling, state: SandboxState
) -> None:
    base = seed_customer("0015e00000MapleCA")
    customer = base.model_copy(update={"tax_id": "123456789"})
    await billing.upsert_customer(customer, "q2c-Q3:billing-customer")
    (stored,) = snapshot(state)["customers"]
    assert stored["metadata"]["tax_id"] == "123456789"
    assert stored["tax_ids"]["data"] == []
    assert stored["address"]["state"] == "ON"


async def test_two_sagas_of_a_new_account_within_the_search_lag_create_one_customer(
    billing: StripeBilling, state: SandboxState
) -> None:
    # Stripe Search is eventually consistent: neither saga's search sees the other's customer.
    state.stripe.search_lag_seconds = 60
    customer = seed_customer()

    conflicts: list[str | None] = []

    async def provision(saga_key: str) -> str:
        try:
            return await billing.upsert_customer(customer, saga_key)
        except TransientError as error:  # 409: the other saga's create is still running
            conflicts.append(error.code)
            return await billing.upsert_customer(customer, saga_key)  # the activity's retry

    first, second = await asyncio.gather(
        provision("q2c-Q1:billing-customer"), provision("q2c-Q2:billing-customer")
    )
    # And a third, later, still inside the lag: the create replays the first answer.
    third = await billing.upsert_customer(customer, "q2c-Q3:billing-customer")

    assert first == second == third
    assert set(conflicts) <= {"idempotency_key_in_use"}
    (stored,) = snapshot(state)["customers"]
    assert stored["id"] == first
    assert [key for _, key in state.stripe.idempotency] == [
        customer_idempotency_key(customer.account_id)
    ]


async def test_the_customer_create_is_keyed_by_the_account_not_by_the_saga(
    billing: StripeBilling, http: httpx.AsyncClient
) -> None:
    sent: list[httpx.Request] = []
    http.event_hooks["request"].append(lambda request: _record(sent, request))
    await billing.upsert_customer(seed_customer(), "q2c-Q9:billing-customer")
    (create,) = [r for r in sent if r.method == "POST"]
    assert create.headers["idempotency-key"] == "revsync:customer:0015e00000NordDE1"
    assert customer_idempotency_key("0015e00000NordDE1") == "revsync:customer:0015e00000NordDE1"


async def _record(sent: list[httpx.Request], request: httpx.Request) -> None:
    sent.append(request)


async def test_an_account_changed_between_two_sagas_waits_for_the_search_not_a_second_customer(
    billing: StripeBilling, state: SandboxState
) -> None:
    state.stripe.search_lag_seconds = 60
    before = seed_customer()
    after = before.model_copy(update={"email": "billing@nordlicht.example"})
    first = await billing.upsert_customer(before, "q2c-Q1:billing-customer")

    # Same account key, other parameters: Stripe's 400 idempotency_error. The customer
    # exists: the step is retried (after the search lag), not rejected and not duplicated.
    with pytest.raises(TransientError) as caught:
        await billing.upsert_customer(after, "q2c-Q2:billing-customer")
    assert (caught.value.status, caught.value.code) == (400, "idempotency_error")
    assert caught.value.retry_after == 60
    assert len(snapshot(state)["customers"]) == 1

    state.stripe.search_lag_seconds = 0  # indexed now
    state.stripe._searchable_at.clear()
    assert await billing.upsert_customer(after, "q2c-Q2:billing-customer") == first
    assert len(snapshot(state)["customers"]) == 1


async def test_after_stripe_pruned_the_customer_key_the_search_finds_the_customer(
    billing: StripeBilling, state: SandboxState
) -> None:
    first = await billing.upsert_customer(seed_customer(), "q2c-Q1:billing-customer")
    state.stripe.idempotency.clear()  # Stripe forgets idempotency keys after 24 hours
    changed = seed_customer().model_copy(update={"email": "new@nordlicht.example"})
    assert await billing.upsert_customer(changed, "q2c-Q2:billing-customer") == first
    assert len(snapshot(state)["customers"]) == 1


async def test_a_create_refused_in_validation_stores_no_answer_for_its_key(
    http: httpx.AsyncClient, state: SandboxState
) -> None:
    # Stripe saves an idempotent result only once the endpoint began to execute.
    headers = AUTH | {"Idempotency-Key": "k-validation"}
    bad = await http.post("/stripe/v1/customers", data={"email": "not-an-email"}, headers=headers)
    assert (bad.status_code, bad.json()["error"]["param"]) == (400, "email")
    good = await http.post(
        "/stripe/v1/customers", data={"email": "ap@nordlicht.example"}, headers=headers
    )
    assert good.status_code == 200, good.text
    assert "idempotent-replayed" not in good.headers
    assert len(snapshot(state)["customers"]) == 1


# --- subscriptions --------------------------------------------------------------------------


async def test_subscription_is_created_once_for_its_key(
    billing: StripeBilling, state: SandboxState
) -> None:
    draft = draft_for("EUR", EUR_DRAFT_LINES)
    customer_id = await billing.upsert_customer(seed_customer(), "q2c-x:billing-customer")
    first = await billing.create_subscription(draft, customer_id)
    second = await billing.create_subscription(draft, customer_id)

    assert second == first
    assert first.subscription_id.startswith("sub_")
    assert first.customer_id == customer_id
    assert first.currency == "EUR"
    assert first.status is SubscriptionStatus.ACTIVE
    assert await billing.find_subscription(draft.idempotency_key) == first
    assert await billing.find_subscription("q2c-other:subscription") is None

    state_now = snapshot(state)
    (subscription,) = state_now["subscriptions"]
    assert len(state_now["invoices"]) == 1
    assert subscription["id"] == first.subscription_id
    assert subscription["currency"] == "eur"
    assert subscription["customer"] == customer_id
    assert subscription["status"] == "active"
    assert subscription["collection_method"] == "send_invoice"
    assert subscription["days_until_due"] == 30
    assert subscription["metadata"] == {
        "revsync_key": "q2c-0Q0TEST000001:subscription",
        "quote_id": "0Q0TEST000001",
        "account_id": "0015e00000NordDE1",
        "term_months": "12",
        "start_date": "2025-03-01",
        "payment_terms": "NET30",
    }
    assert subscription["latest_invoice"] == first.latest_invoice_id
    assert sorted(p["id"] for p in state_now["products"]) == [
        "ONBOARD-STD",
        "PLAT-CORE",
        "SUPPORT-PREMIUM",
    ]
    # The e2e helper finds records by dumping them as JSON.
    assert "q2c-0Q0TEST000001" in json.dumps(subscription)


async def test_a_repeat_after_stripe_pruned_the_key_still_creates_nothing(
    billing: StripeBilling, state: SandboxState
) -> None:
    draft = draft_for("EUR", EUR_DRAFT_LINES)
    customer_id = await billing.upsert_customer(seed_customer(), "q2c-x:billing-customer")
    first = await billing.create_subscription(draft, customer_id)
    state.stripe.idempotency.clear()  # Stripe forgets idempotency keys after 24 hours

    assert await billing.create_subscription(draft, customer_id) == first
    assert len(snapshot(state)["subscriptions"]) == 1


async def test_a_lost_create_answer_is_recovered_by_the_search(
    billing: StripeBilling, http: httpx.AsyncClient, state: SandboxState
) -> None:
    draft = draft_for("EUR", EUR_DRAFT_LINES)
    customer_id = await billing.upsert_customer(seed_customer(), "q2c-x:billing-customer")
    await inject(http, operation="create_subscription", phase="after", status=500)

    with pytest.raises(TransientError):
        await billing.create_subscription(draft, customer_id)
    assert len(snapshot(state)["subscriptions"]) == 1  # applied, answer lost

    retried = await billing.create_subscription(draft, customer_id)
    (subscription,) = snapshot(state)["subscriptions"]
    assert retried.subscription_id == subscription["id"]


async def test_a_lost_create_answer_is_recovered_by_the_idempotency_key_when_search_lags(
    billing: StripeBilling, http: httpx.AsyncClient, state: SandboxState
) -> None:
    draft = draft_for("EUR", EUR_DRAFT_LINES)
    customer_id = await billing.upsert_customer(seed_customer(), "q2c-x:billing-customer")
    state.stripe.search_lag_seconds = 60  # new subscriptions are not searchable yet
    await inject(http, operation="create_subscription", phase="after", status=502)

    with pytest.raises(TransientError):
        await billing.create_subscription(draft, customer_id)
    assert await billing.find_subscription(draft.idempotency_key) is None

    retried = await billing.create_subscription(draft, customer_id)
    (subscription,) = snapshot(state)["subscriptions"]
    assert retried.subscription_id == subscription["id"]
    assert retried.latest_invoice_id == subscription["latest_invoice"]
    assert len(snapshot(state)["invoices"]) == 1


# Each case: currency, quote lines, and the Stripe quantity each line must be sent with
# (the real quantity when net / quantity is exact, else 1 at the line's net amount).
AMOUNT_CASES = {
    "USD": (
        [
            line("U1", "PLAT-CORE", "20", "45.00", "10"),  # 810.00 = 20 x 40.50
            line("U2", "PLAT-ANALYTICS", "7", "15.50", "12.5"),  # 94.9375 -> 94.94, not /7
            line("U3", "PLAT-ANALYTICS", "3", "15.50", "33.3333"),  # 31.000015 -> 31.00
            line("U4", "ONBOARD-STD", "1", "2500.00", one_time=True),
        ],
        [20, 1, 1, 1],
    ),
    "EUR": (
        [
            line("E1", "PLAT-CORE", "3", "42.00", "15"),  # 107.10 = 3 x 35.70
            line("E2", "PLAT-ANALYTICS", "13", "14.25", "12.5"),  # 162.09375 -> 162.09
            line("E3", "SUPPORT-PREMIUM", "2.5", "459.00"),  # fractional quantity
            line("E4", "TRAINING-DAY", "2", "1100.00", "5", one_time=True),
        ],
        [3, 1, 1, 2],
    ),
    "JPY": (
        [
            line("J1", "PLAT-CORE", "18", "6500", "12.5"),  # 102375 = 18 x 5687.5 yen
            line("J2", "PLAT-CORE", "7", "6500", "12.5"),  # 39812.5 -> 39813, not /7
            line("J3", "ONBOARD-STD", "1", "360000", "10", one_time=True),
        ],
        [18, 1, 1],
    ),
}


@pytest.mark.parametrize("currency", sorted(AMOUNT_CASES))
async def test_stripe_bills_each_line_at_its_exact_net_amount(
    billing: StripeBilling, state: SandboxState, currency: str
) -> None:
    lines, quantities = AMOUNT_CASES[currency]
    draft = draft_for(currency, lines, quote_id=f"0Q0AMOUNT{currency}")
    ordered = [*draft.recurring_lines, *draft.one_time_lines]
    customer_id = await billing.upsert_customer(seed_customer(), f"q2c-{currency}:customer")
    subscription = await billing.create_subscription(draft, customer_id)
    assert subscription.currency == currency

    (invoice,) = snapshot(state)["invoices"]
    assert invoice["id"] == subscription.latest_invoice_id
    assert invoice["currency"] == currency.lower()
    assert invoice["status"] == "open"
    billed = invoice["lines"]["data"]
    assert [b["price"]["product"] for b in billed] == [o.sku for o in ordered]
    assert [b["amount"] for b in billed] == [to_minor(o.amount, currency) for o in ordered]
    assert [b["quantity"] for b in billed] == quantities
    assert invoice["amount_due"] == sum(to_minor(o.amount, currency) for o in ordered)

    (stored,) = snapshot(state)["subscriptions"]
    assert [i["metadata"]["line_id"] for i in stored["items"]["data"]] == [
        o.line_id for o in draft.recurring_lines
    ]
    assert [Decimal(i["metadata"]["quantity"]) for i in stored["items"]["data"]] == [
        o.quantity for o in draft.recurring_lines
    ]

    # The domain invoice read back carries the same exact Decimal amounts.
    voided = await billing.void_invoice(invoice["id"])
    assert [x.amount for x in voided.lines] == [o.amount for o in ordered]
    assert voided.total == sum((o.amount for o in ordered), Decimal(0))


def test_line_prices_multiply_back_to_the_net_amount_exactly() -> None:
    draft = draft_for(
        "JPY",
        [
            line("J1", "PLAT-CORE", "18", "6500", "12.5"),
            line("J2", "PLAT-CORE", "7", "6500", "12.5"),
        ],
    )
    first, second = (stripe_line_price(x, "JPY") for x in draft.recurring_lines)
    assert (first.unit_amount_decimal, first.quantity) == ("5687.5", 18)
    assert (second.unit_amount_decimal, second.quantity) == ("39813", 1)
    usd = draft_for("USD", [line("U1", "PLAT-CORE", "3", "0.01", "50")])
    (tiny,) = usd.recurring_lines  # 0.015 -> 0.02 = 2 cents, not divisible by 3
    tiny_price = stripe_line_price(tiny, "USD")
    assert (tiny_price.unit_amount_decimal, tiny_price.quantity) == ("2", 1)
    cents = draft_for("USD", [line("U1", "PLAT-CORE", "8", "0.01", "50")]).recurring_lines[0]
    assert stripe_line_price(cents, "USD").unit_amount_decimal == "0.5"  # 8 x 0.5 = 4 cents


async def test_mixed_intervals_are_rejected_before_anything_is_sent(
    billing: StripeBilling, state: SandboxState
) -> None:
    draft = draft_for(
        "EUR",
        [
            line("M1", "PLAT-CORE", "5", "42.00", interval=BillingInterval.MONTH),
            line("Y1", "SUPPORT-PREMIUM", "1", "5000.00", interval=BillingInterval.YEAR),
        ],
    )
    customer_id = await billing.upsert_customer(seed_customer(), "q2c-x:billing-customer")
    with pytest.raises(RejectedError) as caught:
        await billing.create_subscription(draft, customer_id)
    assert caught.value.code == "mixed_intervals"
    assert "M1=month" in caught.value.message and "Y1=year" in caught.value.message
    assert snapshot(state)["subscriptions"] == []
    assert snapshot(state)["products"] == []


async def test_the_emulator_refuses_mixed_intervals_like_stripe(
    http: httpx.AsyncClient, state: SandboxState
) -> None:
    customer = await http.post("/stripe/v1/customers", data={"name": "X"}, headers=AUTH)
    for sku in ("A-1", "B-1"):
        made = await http.post("/stripe/v1/products", data={"id": sku, "name": sku}, headers=AUTH)
        assert made.status_code == 200, made.text
    form = {"customer": customer.json()["id"]}
    for index, (sku, interval) in enumerate([("A-1", "month"), ("B-1", "year")]):
        form |= {
            f"items[{index}][price_data][currency]": "usd",
            f"items[{index}][price_data][product]": sku,
            f"items[{index}][price_data][unit_amount]": "1000",
            f"items[{index}][price_data][recurring][interval]": interval,
        }
    response = await http.post("/stripe/v1/subscriptions", data=form, headers=AUTH)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert response.json()["error"]["param"] == "items"
    assert snapshot(state)["subscriptions"] == []


async def test_an_unknown_customer_is_a_rejection(billing: StripeBilling) -> None:
    draft = draft_for("EUR", EUR_DRAFT_LINES)
    with pytest.raises(RejectedError) as caught:
        await billing.create_subscription(draft, "cus_doesnotexist")
    assert caught.value.code == "resource_missing"
    assert caught.value.status == 400
    assert "param customer" in caught.value.message


async def test_card_error_is_rejected_with_its_code(
    billing: StripeBilling, http: httpx.AsyncClient, state: SandboxState
) -> None:
    customer_id = await billing.upsert_customer(seed_customer(), "q2c-x:billing-customer")
    await inject(http, operation="create_subscription", status=402, code="card_declined")
    with pytest.raises(RejectedError) as caught:
        await billing.create_subscription(draft_for("EUR", EUR_DRAFT_LINES), customer_id)
    assert caught.value.code == "card_declined"
    assert caught.value.status == 402
    assert "generic_decline" in caught.value.message
    assert snapshot(state)["subscriptions"] == []


# --- cancelling -----------------------------------------------------------------------------


async def test_cancelling_twice_is_a_no_op(
    billing: StripeBilling, http: httpx.AsyncClient, state: SandboxState
) -> None:
    _, subscription_id, _ = await subscribed(billing)
    canceled = await billing.cancel_subscription(subscription_id, "ERP order could not be booked")
    assert canceled.status is SubscriptionStatus.CANCELED

    (stored,) = snapshot(state)["subscriptions"]
    assert stored["status"] == "canceled"
    assert stored["cancellation_details"]["comment"] == "ERP order could not be booked"

    # A second cancel must not send the DELETE: this fault would fire if it did.
    await inject(http, operation="cancel_subscription", status=500)
    again = await billing.cancel_subscription(subscription_id, "ERP order could not be booked")
    assert again == canceled
    assert len(state.faults.pending()) == 1


async def test_a_lost_cancel_answer_is_settled_by_the_retry(
    billing: StripeBilling, http: httpx.AsyncClient, state: SandboxState
) -> None:
    _, subscription_id, _ = await subscribed(billing)
    await inject(http, operation="cancel_subscription", phase="after", status=503)
    with pytest.raises(TransientError):
        await billing.cancel_subscription(subscription_id, "compensating")
    canceled = await billing.cancel_subscription(subscription_id, "compensating")
    assert canceled.status is SubscriptionStatus.CANCELED
    assert snapshot(state)["subscriptions"][0]["status"] == "canceled"


async def test_cancelling_an_unknown_subscription_is_not_found(billing: StripeBilling) -> None:
    with pytest.raises(NotFoundError) as caught:
        await billing.cancel_subscription("sub_doesnotexist", "compensating")
    assert caught.value.code == "resource_missing"


async def test_cancellation_details_can_be_updated(
    billing: StripeBilling, http: httpx.AsyncClient, state: SandboxState
) -> None:
    _, subscription_id, _ = await subscribed(billing)
    response = await http.post(
        f"/stripe/v1/subscriptions/{subscription_id}",
        data={"cancellation_details[comment]": "customer asked", "metadata[ticket]": "T-1"},
        headers=AUTH,
    )
    assert response.status_code == 200, response.text
    (stored,) = snapshot(state)["subscriptions"]
    assert stored["cancellation_details"]["comment"] == "customer asked"
    assert stored["metadata"]["ticket"] == "T-1"
    assert stored["metadata"]["revsync_key"].startswith("q2c-")


# --- invoices -------------------------------------------------------------------------------


async def test_voiding_an_open_invoice_then_again_is_a_no_op(
    billing: StripeBilling, http: httpx.AsyncClient, state: SandboxState
) -> None:
    customer_id, subscription_id, invoice_id = await subscribed(billing)
    invoice = await billing.void_invoice(invoice_id)

    assert invoice.status is InvoiceStatus.VOID
    assert invoice.invoice_id == invoice_id
    assert invoice.customer_id == customer_id
    assert invoice.subscription_id == subscription_id
    assert invoice.currency == "EUR"
    # 20 x 42.00 at 10% off + 459.00 + 2300.00
    assert invoice.total == Decimal("3515.00")
    assert invoice.subtotal == invoice.total
    assert invoice.tax == Decimal(0)
    assert [x.amount for x in invoice.lines] == [
        Decimal("756.00"),
        Decimal("459.00"),
        Decimal("2300.00"),
    ]
    assert invoice.due_date is not None
    assert snapshot(state)["invoices"][0]["status"] == "void"

    await inject(http, operation="void_invoice", status=500)
    assert (await billing.void_invoice(invoice_id)).status is InvoiceStatus.VOID
    assert len(state.faults.pending()) == 1  # no second void was sent


async def test_voiding_a_paid_invoice_is_rejected(
    billing: StripeBilling, http: httpx.AsyncClient, state: SandboxState
) -> None:
    _, _, invoice_id = await subscribed(billing)
    paid = await http.post(
        f"/stripe/v1/invoices/{invoice_id}/pay", data={"paid_out_of_band": "true"}, headers=AUTH
    )
    assert paid.status_code == 200, paid.text
    with pytest.raises(RejectedError) as caught:
        await billing.void_invoice(invoice_id)
    assert caught.value.code == "invoice_paid"
    assert snapshot(state)["invoices"][0]["status"] == "paid"


async def test_a_draft_invoice_is_finalized_quietly_then_voided(
    billing: StripeBilling, state: SandboxState
) -> None:
    _, _, invoice_id = await subscribed(billing)
    state.stripe.invoices[invoice_id]["status"] = "draft"  # as if not yet finalized

    invoice = await billing.void_invoice(invoice_id)
    assert invoice.status is InvoiceStatus.VOID
    stored = snapshot(state)["invoices"][0]
    assert stored["status"] == "void"
    assert stored["auto_advance"] is False  # finalized without sending it to the customer


async def test_voiding_reads_every_line_of_a_long_invoice(
    billing: StripeBilling, state: SandboxState
) -> None:
    lines = [line(f"L{i:02d}", "PLAT-CORE", str(i + 1), "42.00", "5") for i in range(12)]
    draft = draft_for("EUR", lines)
    _, _, invoice_id = await subscribed(billing, draft)

    invoice = await billing.void_invoice(invoice_id)
    assert len(invoice.lines) == 12
    assert [x.amount for x in invoice.lines] == [x.amount for x in draft.recurring_lines]
    assert sum(x.amount for x in invoice.lines) == invoice.total


async def test_voiding_an_unknown_invoice_is_not_found(billing: StripeBilling) -> None:
    with pytest.raises(NotFoundError):
        await billing.void_invoice("in_doesnotexist")


# --- idempotency at the wire ----------------------------------------------------------------


async def test_idempotent_replay_and_idempotency_error(
    http: httpx.AsyncClient, state: SandboxState
) -> None:
    headers = {**AUTH, "Idempotency-Key": "key-1"}
    form = {"name": "Replay GmbH", "metadata[revsync_account_id]": "A-1"}
    first = await http.post("/stripe/v1/customers", data=form, headers=headers)
    second = await http.post("/stripe/v1/customers", data=form, headers=headers)

    assert first.status_code == second.status_code == 200
    assert second.json() == first.json()
    assert second.headers.get("idempotent-replayed") == "true"
    assert "idempotent-replayed" not in first.headers

    changed = await http.post(
        "/stripe/v1/customers", data={**form, "name": "Other GmbH"}, headers=headers
    )
    assert changed.status_code == 400
    assert changed.json()["error"]["type"] == "idempotency_error"
    elsewhere = await http.post("/stripe/v1/products", data={"name": "P"}, headers=headers)
    assert elsewhere.status_code == 400
    assert elsewhere.json()["error"]["type"] == "idempotency_error"
    assert len(snapshot(state)["customers"]) == 1
    assert snapshot(state)["products"] == []


async def test_a_fault_after_applying_stores_the_first_answer_for_the_retry(
    http: httpx.AsyncClient, state: SandboxState
) -> None:
    await inject(http, operation="create_customer", phase="after", status=500)
    headers = {**AUTH, "Idempotency-Key": "key-after"}
    form = {"name": "Lost Answer AG"}
    lost = await http.post("/stripe/v1/customers", data=form, headers=headers)
    assert lost.status_code == 500
    assert lost.json()["error"]["type"] == "api_error"

    retry = await http.post("/stripe/v1/customers", data=form, headers=headers)
    assert retry.status_code == 200
    assert retry.headers.get("idempotent-replayed") == "true"
    (stored,) = snapshot(state)["customers"]
    assert retry.json()["id"] == stored["id"]


async def test_a_fault_before_applying_is_not_stored(
    http: httpx.AsyncClient, state: SandboxState
) -> None:
    await inject(http, operation="create_customer", status=503)
    headers = {**AUTH, "Idempotency-Key": "key-before"}
    failed = await http.post("/stripe/v1/customers", data={"name": "N"}, headers=headers)
    assert failed.status_code == 503
    assert snapshot(state)["customers"] == []

    retry = await http.post("/stripe/v1/customers", data={"name": "N"}, headers=headers)
    assert retry.status_code == 200
    assert "idempotent-replayed" not in retry.headers
    assert len(snapshot(state)["customers"]) == 1


async def test_a_concurrent_request_with_the_same_key_gets_409_and_is_transient(
    billing: StripeBilling, http: httpx.AsyncClient, state: SandboxState
) -> None:
    response = await http.post(
        "/_sandbox/faults",
        json={"latency": [{"vendor": "stripe", "operation": "create_customer", "ms": 300}]},
    )
    assert response.status_code == 200
    customer = seed_customer()
    results = await asyncio.gather(
        billing.upsert_customer(customer, "q2c-Q9:billing-customer"),
        billing.upsert_customer(customer, "q2c-Q9:billing-customer"),
        return_exceptions=True,
    )
    created = [r for r in results if isinstance(r, str)]
    conflicts = [r for r in results if isinstance(r, TransientError)]
    assert len(created) == 1 and len(conflicts) == 1, results
    assert conflicts[0].status == 409
    assert conflicts[0].code == "idempotency_key_in_use"

    # The retry finds the customer the first request made.
    assert await billing.upsert_customer(customer, "q2c-Q9:billing-customer") == created[0]
    assert len(snapshot(state)["customers"]) == 1


# --- throttling and classification ----------------------------------------------------------


async def test_429_is_transient_with_retry_after(
    billing: StripeBilling, http: httpx.AsyncClient
) -> None:
    await inject(http, operation="search_customers", status=429, retry_after=7)
    with pytest.raises(TransientError) as caught:
        await billing.upsert_customer(seed_customer(), "q2c-x:billing-customer")
    assert caught.value.status == 429
    assert caught.value.retry_after == 7.0
    assert caught.value.code == "rate_limit"


def stripe_response(
    status: int, error: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    body = {"error": error} if error is not None else None
    return httpx.Response(status, json=body, headers=headers)


@pytest.mark.parametrize(
    ("response", "kind", "code"),
    [
        # Stripe-Should-Retry decides when present.
        (
            stripe_response(500, {"type": "api_error"}, {"Stripe-Should-Retry": "false"}),
            RejectedError,
            "api_error",
        ),
        (
            stripe_response(
                400,
                {"type": "invalid_request_error", "code": "x"},
                {"Stripe-Should-Retry": "true"},
            ),
            TransientError,
            "x",
        ),
        (
            stripe_response(
                409,
                {"type": "invalid_request_error", "code": "idempotency_key_in_use"},
                {"Stripe-Should-Retry": "false"},
            ),
            RejectedError,
            "idempotency_key_in_use",
        ),
        # Otherwise status and code.
        (stripe_response(500, {"type": "api_error"}), TransientError, "api_error"),
        (stripe_response(502), TransientError, None),
        (
            stripe_response(409, {"type": "idempotency_error"}),
            TransientError,
            "idempotency_error",
        ),
        (
            stripe_response(429, {"type": "rate_limit_error", "message": "slow down"}),
            TransientError,
            "rate_limit_error",
        ),
        (
            stripe_response(400, {"type": "invalid_request_error", "code": "lock_timeout"}),
            TransientError,
            "lock_timeout",
        ),
        (
            stripe_response(400, {"type": "idempotency_error", "message": "same key"}),
            RejectedError,
            "idempotency_error",
        ),
        (
            stripe_response(
                402,
                {"type": "card_error", "code": "card_declined", "decline_code": "fraudulent"},
            ),
            RejectedError,
            "card_declined",
        ),
        (
            stripe_response(404, {"type": "invalid_request_error", "code": "resource_missing"}),
            NotFoundError,
            "resource_missing",
        ),
        # A wrong, revoked or under-privileged key is revsync's configuration, not the order:
        # not retried, not a rejection (the saga parks at once).
        (
            stripe_response(401, {"type": "invalid_request_error", "message": "bad key"}),
            ConfigurationError,
            "invalid_request_error",
        ),
        (
            stripe_response(403, {"type": "invalid_request_error", "message": "restricted"}),
            ConfigurationError,
            "invalid_request_error",
        ),
        (
            stripe_response(
                401, {"type": "invalid_request_error"}, {"Stripe-Should-Retry": "false"}
            ),
            ConfigurationError,
            "invalid_request_error",
        ),
        (
            stripe_response(403, {"type": "api_error"}, {"Stripe-Should-Retry": "true"}),
            TransientError,
            "api_error",
        ),
    ],
)
def test_classifier(response: httpx.Response, kind: type[Exception], code: str | None) -> None:
    error = classify_stripe_error("op", response)
    assert type(error) is kind
    assert error.code == code
    assert error.vendor == "stripe"


def test_classifier_honours_retry_after_and_keeps_the_decline_code() -> None:
    throttled = classify_stripe_error(
        "op",
        stripe_response(429, {"type": "invalid_request_error"}, {"Retry-After": "3"}),
    )
    assert isinstance(throttled, TransientError)
    assert throttled.retry_after == 3.0
    declined = classify_stripe_error(
        "op",
        stripe_response(
            402,
            {
                "type": "card_error",
                "code": "card_declined",
                "decline_code": "insufficient_funds",
                "message": "Your card has insufficient funds.",
            },
        ),
    )
    assert "insufficient_funds" in declined.message


async def test_the_emulator_says_409_should_be_retried(http: httpx.AsyncClient) -> None:
    await inject(http, operation="create_product", status=409)
    response = await http.post("/stripe/v1/products", data={"name": "P"}, headers=AUTH)
    assert response.status_code == 409
    assert response.headers["stripe-should-retry"] == "true"
    assert isinstance(classify_stripe_error("create_product", response), TransientError)


# --- auth, search grammar, form parsing, reset ----------------------------------------------


async def test_a_wrong_api_key_is_a_configuration_error_not_a_rejected_order(
    http: httpx.AsyncClient,
) -> None:
    wrong = StripeBilling(http, base_url=BASE_URL, api_key="sk_test_wrong_key_123")
    with pytest.raises(ConfigurationError) as caught:
        await wrong.find_subscription("q2c-x:subscription")
    assert caught.value.status == 401
    assert "Invalid API Key" in caught.value.message
    assert "sk_test_wrong_key_123" not in caught.value.message


async def test_basic_auth_with_the_key_as_user_is_accepted(http: httpx.AsyncClient) -> None:
    response = await http.get(
        "/stripe/v1/customers/search",
        params={"query": "metadata['revsync_account_id']:'A-1'"},
        auth=(API_KEY, ""),
    )
    assert response.status_code == 200
    assert response.json()["data"] == []
    assert (await http.get("/stripe/v1/customers/search")).status_code == 401


@pytest.mark.parametrize(
    "query", ["email:'a@b.example'", "metadata['k']:'v' AND name:'x'", "metadata[k]:v"]
)
async def test_search_understands_only_metadata_equality(
    http: httpx.AsyncClient, query: str
) -> None:
    response = await http.get(
        "/stripe/v1/subscriptions/search", params={"query": query}, headers=AUTH
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "query"


async def test_search_values_with_quotes_round_trip(
    billing: StripeBilling, state: SandboxState
) -> None:
    customer = seed_customer().model_copy(update={"account_id": "O'Brien\\Ltd"})
    created = await billing.upsert_customer(customer, "k-quote")
    assert await billing.upsert_customer(customer, "k-quote-2") == created
    assert len(snapshot(state)["customers"]) == 1


def test_parse_form_builds_nested_objects_and_lists() -> None:
    parsed = parse_form(
        [
            ("customer", "cus_1"),
            ("items[0][price_data][currency]", "usd"),
            ("items[0][quantity]", "2"),
            ("items[1][price]", "price_1"),
            ("metadata[revsync_key]", "k"),
            ("expand[]", "latest_invoice"),
            ("expand[]", "customer"),
        ]
    )
    assert parsed == {
        "customer": "cus_1",
        "items": [{"price_data": {"currency": "usd"}, "quantity": "2"}, {"price": "price_1"}],
        "metadata": {"revsync_key": "k"},
        "expand": ["latest_invoice", "customer"],
    }
    with pytest.raises(StripeError):
        parse_form([("items[1][quantity]", "1")])  # index 0 missing
    with pytest.raises(StripeError):
        parse_form([("a", "1"), ("a[b]", "2")])


async def test_unknown_parameters_are_refused(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/stripe/v1/customers", data={"name": "X", "nmae": "typo"}, headers=AUTH
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "nmae"


async def test_the_router_reads_the_store_again_after_a_reset(
    billing: StripeBilling, http: httpx.AsyncClient, state: SandboxState
) -> None:
    await billing.upsert_customer(seed_customer(), "q2c-x:billing-customer")
    assert (await http.post("/_sandbox/reset")).status_code == 200
    assert isinstance(state.stripe, StripeStore)
    assert snapshot(state)["customers"] == []
    response = await http.get(
        "/stripe/v1/customers/search",
        params={"query": "metadata['revsync_account_id']:'0015e00000NordDE1'"},
        headers=AUTH,
    )
    assert response.json()["data"] == []
    json.dumps(state.stripe.snapshot())  # plain JSON: ints and strings, no Decimal


def test_isk_goes_to_stripe_with_two_zero_decimals() -> None:
    """ISK has no minor unit in ISO 4217, but Stripe carries it as a two-decimal amount."""
    (isk,) = draft_for("ISK", [line("K1", "PLAT-CORE", "3", "15000", "0")]).recurring_lines
    price = stripe_line_price(isk, "ISK")
    assert (price.unit_amount_decimal, price.quantity) == ("1500000", 3)
    assert to_stripe_amount(Decimal(45000), "ISK") == 4_500_000
    assert to_stripe_amount(Decimal(45000), "JPY") == 45_000
    assert to_stripe_amount(Decimal("450.10"), "usd") == 45_010


def test_the_emulator_has_its_own_currency_table_and_imports_no_adapter_code() -> None:
    """The emulator is a second reading of Stripe's "Supported currencies", not a copy of the
    adapter's: the two must agree on every currency revsync supports, and Stripe takes each."""
    tree = ast.parse(Path(stripe_emulator.__file__).read_text(encoding="utf-8"))
    imported = [
        node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
    ] + [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    ]
    assert not [name for name in imported if name.split(".")[0] in ("adapters", "domain")]
    for code in MINOR_UNITS:
        assert code.lower() in stripe_emulator.CURRENCIES, code
        assert stripe_emulator.currency_decimals(code) == stripe_exponent(code), code
    assert [stripe_emulator.currency_decimals(c) for c in ("jpy", "isk", "kwd", "usd")] == [
        0,
        2,
        3,
        2,
    ]
