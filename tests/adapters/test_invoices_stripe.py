"""Invoice-to-revenue, billing side: ``StripeBilling.get_invoice`` against the Stripe emulator.

Invoices are made with the sandbox control route ``POST /_sandbox/stripe/invoices`` (lines,
periods, discounts, tax as Stripe would hold them) or by quote-to-cash's own subscription
create, then read back as canonical invoices.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest

from adapters.billing.stripe import StripeBilling, finalized_invoice
from adapters.errors import ConfigurationError, NotFoundError, RejectedError, TransientError
from adapters.ports import BillingPort
from domain.invoice import InvoiceStatus, LineKind, OneOffLine, SubscriptionLine
from domain.revenue import build_schedule
from sandbox.app import DEFAULT_TOKENS, SandboxState, create_app
from tests.adapters.lossy import LossyTransport
from tests.adapters.test_stripe import EUR_DRAFT_LINES, draft_for, seed_customer

BASE_URL = "http://sandbox/stripe"
API_KEY = DEFAULT_TOKENS["stripe"]
AUTH = {"Authorization": f"Bearer {API_KEY}"}
ACCOUNT = "0015e00000NordDE1"


@pytest.fixture
def billing(http: httpx.AsyncClient) -> StripeBilling:
    adapter = StripeBilling(http, base_url=BASE_URL, api_key=API_KEY)
    port: BillingPort = adapter  # mypy checks the adapter implements the port
    assert port.vendor == "stripe"
    return adapter


def sent_requests(http: httpx.AsyncClient) -> list[httpx.Request]:
    sent: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        sent.append(request)

    http.event_hooks["request"].append(record)
    return sent


async def make_invoice(http: httpx.AsyncClient, **spec: Any) -> dict[str, Any]:
    """An invoice made through the sandbox control route; returns it as the API shows it."""
    body = {"account_id": ACCOUNT, "currency": "eur", **spec}
    response = await http.post("/_sandbox/stripe/invoices", json=body)
    assert response.status_code == 200, response.text
    made: dict[str, Any] = response.json()
    return made


async def inject(http: httpx.AsyncClient, **rule: Any) -> None:
    response = await http.post("/_sandbox/faults", json={"faults": [{"vendor": "stripe", **rule}]})
    assert response.status_code == 200, response.text


SEATS = {
    "product": "PLAT-CORE",
    "description": "Platform Core, 20 seats",
    "quantity": 20,
    "unit_amount": 4200,
    "recurring": "month",
    "period_start": "2026-01-15T00:00:00Z",
    "period_end": "2026-02-15T00:00:00Z",
    "discount": 8400,  # 10 % off 840.00
    "tax": 14364,  # 19 % VAT on 756.00
}
ONBOARDING = {"product": "ONBOARD-STD", "unit_amount": 230000, "tax": 43700}


# --- mapping --------------------------------------------------------------------------------


async def test_a_finalized_invoice_maps_to_the_canonical_invoice(
    billing: StripeBilling, http: httpx.AsyncClient
) -> None:
    made = await make_invoice(
        http, finalized_at="2026-01-15T09:30:00Z", days_until_due=30, lines=[SEATS, ONBOARDING]
    )

    invoice = await billing.get_invoice(made["id"])

    assert invoice.invoice_id == made["id"]
    assert invoice.account_id == ACCOUNT  # from the customer's metadata.revsync_account_id
    assert invoice.currency == "EUR"
    assert invoice.status is InvoiceStatus.OPEN
    assert invoice.issue_date == date(2026, 1, 15)
    assert invoice.due_date == date(2026, 2, 14)
    seats, onboarding = invoice.lines
    assert isinstance(seats, SubscriptionLine)
    assert seats.line_id == made["lines"]["data"][0]["id"]
    assert seats.sku == "PLAT-CORE"
    assert seats.description == "Platform Core, 20 seats"
    assert seats.amount == Decimal("756.00")  # 840.00 less the 84.00 discount
    assert seats.tax_amount == Decimal("143.64")
    assert (seats.service_start, seats.service_end) == (date(2026, 1, 15), date(2026, 2, 15))
    assert isinstance(onboarding, OneOffLine)
    assert onboarding.amount == Decimal("2300.00")
    assert onboarding.tax_amount == Decimal("437.00")
    assert onboarding.delivery_date is None  # recognised on the issue date
    assert invoice.subtotal == Decimal("3056.00")
    assert invoice.tax == Decimal("580.64")
    assert invoice.total == Decimal("3636.64")
    assert Decimal(made["total"]).scaleb(-2) == invoice.total
    # The canonical invoice is what the revenue rules take.
    by_period = {(e.line_id, e.period): e.amount for e in build_schedule(invoice).entries}
    assert by_period[(seats.line_id, "2026-01")] + by_period[(seats.line_id, "2026-02")] == (
        seats.amount
    )


@pytest.mark.parametrize(
    ("currency", "unit_amount", "tax", "amount", "tax_amount"),
    [
        ("usd", 4500, 394, Decimal("45.00"), Decimal("3.94")),
        ("jpy", 6500, 650, Decimal("6500"), Decimal("650")),  # zero-decimal: whole yen
        ("kwd", 12340, 0, Decimal("12.340"), Decimal("0.000")),  # three decimals
        ("isk", 1250000, 300000, Decimal("12500"), Decimal("3000")),  # Stripe's 2 decimals
    ],
)
async def test_minor_units_follow_the_currency(
    billing: StripeBilling,
    http: httpx.AsyncClient,
    currency: str,
    unit_amount: int,
    tax: int,
    amount: Decimal,
    tax_amount: Decimal,
) -> None:
    made = await make_invoice(
        http,
        currency=currency,
        lines=[{"product": "PLAT-CORE", "unit_amount": unit_amount, "tax": tax}],
    )

    invoice = await billing.get_invoice(made["id"])

    (line,) = invoice.lines
    assert invoice.currency == currency.upper()
    assert (line.amount, line.tax_amount) == (amount, tax_amount)
    assert str(line.amount) == str(amount)  # exact places, never through float
    assert invoice.total == amount + tax_amount


async def test_an_isk_amount_finer_than_a_krona_is_rejected(
    billing: StripeBilling, http: httpx.AsyncClient
) -> None:
    made = await make_invoice(
        http, currency="isk", lines=[{"product": "PLAT-CORE", "unit_amount": 12345}]
    )
    with pytest.raises(RejectedError) as caught:
        await billing.get_invoice(made["id"])
    assert caught.value.code == "amount_precision"
    assert "123.45 ISK" in caught.value.message


async def test_tax_inclusive_prices_book_the_net_amount_and_the_tax(
    billing: StripeBilling, http: httpx.AsyncClient
) -> None:
    # 119.00 including 19.00 VAT, 10.00 off before tax: Stripe's total is 109.00.
    made = await make_invoice(
        http,
        lines=[
            {
                "product": "SUPPORT-PREMIUM",
                "unit_amount": 11900,
                "discount": 1000,
                "tax": 1740,
                "tax_inclusive": True,
            }
        ],
    )
    assert made["total"] == 10900

    (line,) = (await billing.get_invoice(made["id"])).lines

    assert line.amount == Decimal("91.60")  # 119.00 - 10.00 discount - 17.40 inclusive tax
    assert line.tax_amount == Decimal("17.40")
    assert line.amount + line.tax_amount == Decimal("109.00")


async def test_lines_past_the_embedded_ten_are_paged_in(
    billing: StripeBilling, http: httpx.AsyncClient
) -> None:
    lines = [
        {**SEATS, "quantity": n, "discount": 0, "tax": 0, "description": f"seats {n}"}
        for n in range(1, 14)
    ]
    made = await make_invoice(http, lines=lines)
    assert len(made["lines"]["data"]) == 10 and made["lines"]["has_more"] is True
    sent = sent_requests(http)

    invoice = await billing.get_invoice(made["id"])

    assert [line.description for line in invoice.lines] == [f"seats {n}" for n in range(1, 14)]
    assert [line.amount for line in invoice.lines] == [Decimal(42 * n) for n in range(1, 14)]
    assert [r.url.path for r in sent] == [
        f"/stripe/v1/invoices/{made['id']}",
        f"/stripe/v1/invoices/{made['id']}/lines",
    ]
    assert sent[0].url.params.get_list("expand[0]") == ["customer"]
    assert sent[1].url.params["starting_after"] == made["lines"]["data"][9]["id"]


async def test_an_invoice_from_a_quote_to_cash_subscription_maps(
    billing: StripeBilling, state: SandboxState
) -> None:
    customer_id = await billing.upsert_customer(seed_customer(), "q2c-x:billing-customer")
    subscription = await billing.create_subscription(draft_for("EUR", EUR_DRAFT_LINES), customer_id)
    assert subscription.latest_invoice_id is not None

    invoice = await billing.get_invoice(subscription.latest_invoice_id)

    assert invoice.account_id == ACCOUNT
    kinds = [line.kind for line in invoice.lines]
    assert kinds == [LineKind.SUBSCRIPTION, LineKind.SUBSCRIPTION, LineKind.ONE_OFF]
    assert [line.sku for line in invoice.lines] == ["PLAT-CORE", "SUPPORT-PREMIUM", "ONBOARD-STD"]
    assert invoice.total == Decimal("3515.00")
    stored = state.stripe.invoices[subscription.latest_invoice_id]
    first = stored["lines"]["data"][0]
    seats = invoice.lines[0]
    assert isinstance(seats, SubscriptionLine)
    assert seats.service_start.isoformat() < seats.service_end.isoformat()
    assert (seats.service_end - seats.service_start).days in (28, 29, 30, 31)
    assert first["subscription"] == subscription.subscription_id


async def test_dates_are_taken_in_the_accounting_time_zone(http: httpx.AsyncClient) -> None:
    # 03:00 UTC on 1 February is still 31 January in New York.
    made = await make_invoice(
        http,
        finalized_at="2026-02-01T03:00:00Z",
        collection_method="charge_automatically",
        lines=[
            {
                **SEATS,
                "period_start": "2026-02-01T03:00:00Z",
                "period_end": "2026-03-01T03:00:00Z",
            }
        ],
    )
    utc = StripeBilling(http, base_url=BASE_URL, api_key=API_KEY)
    new_york = StripeBilling(
        http, base_url=BASE_URL, api_key=API_KEY, accounting_timezone="America/New_York"
    )

    in_utc = await utc.get_invoice(made["id"])
    in_new_york = await new_york.get_invoice(made["id"])

    (line_utc,) = in_utc.lines
    (line_ny,) = in_new_york.lines
    assert isinstance(line_utc, SubscriptionLine) and isinstance(line_ny, SubscriptionLine)
    assert (line_utc.service_start, line_utc.service_end) == (date(2026, 2, 1), date(2026, 3, 1))
    assert (line_ny.service_start, line_ny.service_end) == (date(2026, 1, 31), date(2026, 2, 28))
    assert (in_utc.issue_date, in_new_york.issue_date) == (date(2026, 2, 1), date(2026, 1, 31))
    # Charged automatically: no due date at Stripe, due on issue.
    assert in_utc.due_date == in_utc.issue_date


async def test_the_effective_date_is_the_issue_date(
    billing: StripeBilling, http: httpx.AsyncClient
) -> None:
    made = await make_invoice(
        http,
        finalized_at="2026-03-02T10:00:00Z",
        effective_at="2026-02-28T12:00:00Z",
        due_date="2026-03-30T00:00:00Z",
        lines=[ONBOARDING],
    )
    # Stripe (API 2024-06-20) names it effective_at; there is no effective_date.
    assert made["effective_at"] == 1772280000
    assert "effective_date" not in made
    invoice = await billing.get_invoice(made["id"])
    assert (invoice.issue_date, invoice.due_date) == (date(2026, 2, 28), date(2026, 3, 30))


async def test_a_recurring_line_shorter_than_a_day_is_one_off_on_its_day(
    billing: StripeBilling, http: httpx.AsyncClient
) -> None:
    made = await make_invoice(
        http,
        lines=[
            {
                **SEATS,
                "discount": 0,
                "tax": 0,
                "period_start": "2026-01-20T08:00:00Z",
                "period_end": "2026-01-20T20:00:00Z",
            }
        ],
    )
    (line,) = (await billing.get_invoice(made["id"])).lines
    assert isinstance(line, OneOffLine)
    assert line.delivery_date == date(2026, 1, 20)


async def test_paid_and_void_invoices_map_with_their_status(
    billing: StripeBilling, http: httpx.AsyncClient
) -> None:
    paid = await make_invoice(http, status="paid", lines=[ONBOARDING])
    assert (await billing.get_invoice(paid["id"])).status is InvoiceStatus.PAID
    voided = await make_invoice(http, lines=[ONBOARDING])
    response = await http.post(f"/stripe/v1/invoices/{voided['id']}/void", headers=AUTH)
    assert response.status_code == 200, response.text
    assert (await billing.get_invoice(voided["id"])).status is InvoiceStatus.VOID


# --- refusals -------------------------------------------------------------------------------


async def test_a_draft_invoice_is_rejected_before_its_lines_are_read(
    billing: StripeBilling, http: httpx.AsyncClient
) -> None:
    made = await make_invoice(http, status="draft", lines=[SEATS] * 12)
    sent = sent_requests(http)

    with pytest.raises(RejectedError) as caught:
        await billing.get_invoice(made["id"])

    assert caught.value.code == "invoice_draft"
    assert made["id"] in caught.value.message and "finalized" in caught.value.message
    assert len(sent) == 1  # the invoice only, no line pages


async def test_an_unsupported_currency_is_rejected(
    billing: StripeBilling, http: httpx.AsyncClient
) -> None:
    made = await make_invoice(http, currency="vnd", lines=[{**ONBOARDING, "tax": 0}])
    with pytest.raises(RejectedError) as caught:
        await billing.get_invoice(made["id"])
    assert caught.value.code == "unsupported_currency"
    assert "VND" in caught.value.message


async def test_a_customer_without_a_crm_account_is_rejected(
    billing: StripeBilling, http: httpx.AsyncClient
) -> None:
    created = await http.post("/stripe/v1/customers", data={"name": "Walk-in"}, headers=AUTH)
    customer_id = created.json()["id"]
    made = await make_invoice(http, account_id=None, customer=customer_id, lines=[ONBOARDING])

    with pytest.raises(RejectedError) as caught:
        await billing.get_invoice(made["id"])

    assert caught.value.code == "no_account_id"
    assert customer_id in caught.value.message
    assert "revsync_account_id" in caught.value.message


async def test_a_product_that_is_not_a_sku_is_rejected(
    billing: StripeBilling, http: httpx.AsyncClient
) -> None:
    made = await make_invoice(http, lines=[{"product": "prod_Q1w2e3", "unit_amount": 100}])
    with pytest.raises(RejectedError) as caught:
        await billing.get_invoice(made["id"])
    assert caught.value.code == "invalid_sku"
    assert "prod_Q1w2e3" in caught.value.message


async def test_lines_that_do_not_add_up_to_stripes_total_are_rejected(
    billing: StripeBilling, http: httpx.AsyncClient, state: SandboxState
) -> None:
    made = await make_invoice(http, lines=[SEATS, ONBOARDING])
    state.stripe.invoices[made["id"]]["total"] += 1  # e.g. an amount revsync cannot place

    with pytest.raises(RejectedError) as caught:
        await billing.get_invoice(made["id"])

    assert caught.value.code == "amount_mismatch"
    assert "363664" in caught.value.message and "363665" in caught.value.message


def test_mapping_refuses_an_invoice_without_lines() -> None:
    obj = {"id": "in_1", "status": "open", "currency": "eur", "total": 0, "created": 1}
    customer = {"id": "cus_1", "metadata": {"revsync_account_id": ACCOUNT}}
    with pytest.raises(RejectedError) as caught:
        finalized_invoice(obj, [], customer)
    assert caught.value.code == "no_lines"


# --- failures at the wire -------------------------------------------------------------------


async def test_an_unknown_invoice_is_not_found(billing: StripeBilling) -> None:
    with pytest.raises(NotFoundError) as caught:
        await billing.get_invoice("in_doesnotexist")
    assert caught.value.status == 404
    assert caught.value.code == "resource_missing"


async def test_server_errors_and_throttling_are_transient(
    billing: StripeBilling, http: httpx.AsyncClient
) -> None:
    made = await make_invoice(http, lines=[SEATS] * 11)
    await inject(http, operation="get_invoice", status=503)
    with pytest.raises(TransientError) as caught:
        await billing.get_invoice(made["id"])
    assert caught.value.status == 503

    await inject(http, operation="list_invoice_lines", status=429, retry_after=4)
    with pytest.raises(TransientError) as throttled:
        await billing.get_invoice(made["id"])
    assert (throttled.value.status, throttled.value.code) == (429, "rate_limit")
    assert throttled.value.retry_after == 4.0

    assert len((await billing.get_invoice(made["id"])).lines) == 11


async def test_a_lost_answer_to_a_read_is_transient(state: SandboxState) -> None:
    lossy = LossyTransport(httpx.ASGITransport(app=create_app(state)))
    async with httpx.AsyncClient(transport=lossy, base_url="http://sandbox") as client:
        made = await make_invoice(client, lines=[ONBOARDING])
        billing = StripeBilling(client, base_url=BASE_URL, api_key=API_KEY)
        lossy.lose("GET", f"/invoices/{made['id']}")

        with pytest.raises(TransientError):  # a read changes nothing: safe to retry
            await billing.get_invoice(made["id"])
        assert lossy.lost == [f"GET /stripe/v1/invoices/{made['id']}"]
        assert (await billing.get_invoice(made["id"])).invoice_id == made["id"]


# --- the emulator ---------------------------------------------------------------------------


async def test_the_emulator_expands_only_what_it_knows(http: httpx.AsyncClient) -> None:
    made = await make_invoice(http, lines=[ONBOARDING])
    expanded = await http.get(
        f"/stripe/v1/invoices/{made['id']}", params={"expand[]": "customer"}, headers=AUTH
    )
    assert expanded.json()["customer"]["metadata"] == {"revsync_account_id": ACCOUNT}
    plain = await http.get(f"/stripe/v1/invoices/{made['id']}", headers=AUTH)
    assert plain.json()["customer"] == expanded.json()["customer"]["id"]
    wrong = await http.get(
        f"/stripe/v1/invoices/{made['id']}", params={"expand[]": "charge"}, headers=AUTH
    )
    assert wrong.status_code == 400
    assert wrong.json()["error"]["message"] == "This property cannot be expanded (charge)."


async def test_the_control_route_finds_or_creates_the_accounts_customer(
    http: httpx.AsyncClient, state: SandboxState
) -> None:
    first = await make_invoice(http, lines=[ONBOARDING])
    second = await make_invoice(http, lines=[ONBOARDING])
    assert first["customer"] == second["customer"]
    assert len(state.stripe.customers) == 1
    both = await http.post(
        "/_sandbox/stripe/invoices",
        json={"account_id": ACCOUNT, "customer": "cus_x", "currency": "eur", "lines": [ONBOARDING]},
    )
    assert both.status_code == 422
    unknown = await http.post(
        "/_sandbox/stripe/invoices",
        json={"customer": "cus_nope", "currency": "eur", "lines": [ONBOARDING]},
    )
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "resource_missing"


async def test_a_made_draft_can_be_finalized_through_the_api(
    billing: StripeBilling, http: httpx.AsyncClient
) -> None:
    made = await make_invoice(http, status="draft", lines=[ONBOARDING])
    finalized = await http.post(
        f"/stripe/v1/invoices/{made['id']}/finalize", data={"auto_advance": "false"}, headers=AUTH
    )
    assert finalized.status_code == 200, finalized.text
    invoice = await billing.get_invoice(made["id"])
    assert invoice.status is InvoiceStatus.OPEN
    assert invoice.total == Decimal("2737.00")


async def test_a_refused_api_key_is_a_configuration_error_not_a_rejection(
    http: httpx.AsyncClient,
) -> None:
    made = await make_invoice(http, lines=[ONBOARDING])
    wrong = StripeBilling(http, base_url=BASE_URL, api_key="sk_test_revoked")
    with pytest.raises(ConfigurationError) as caught:
        await wrong.get_invoice(made["id"])
    assert caught.value.status == 401
    assert "Invalid API Key" in caught.value.message
