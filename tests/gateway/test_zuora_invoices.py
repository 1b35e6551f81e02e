"""Zuora callouts at the gateway's ``/v1/webhooks/zuora/invoices`` (realistic bodies in
tests/fixtures/zuora/, as revsync's callout templates render them): the shared secret in its
custom header, ``invoice.posted`` starts ``i2r-<invoice number>`` once, payments, cancellations
and credit memos signal it through the same path as Stripe's events, unknown invoices are
refused for redelivery, ended sagas acknowledged; each answer matches its OpenAPI model. Then
the mapping on its own, and the callouts the sandbox's Zuora renders."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from temporalio.client import WorkflowExecutionStatus

from adapters.http import dumps_json
from adapters.webhooks import zuora_invoices
from adapters.webhooks.signatures import SignatureError
from adapters.webhooks.zuora_invoices import (
    CalloutError,
    credit_note_from_callout,
    parse_callout,
    payment_from_callout,
    void_from_callout,
)
from domain.invoice_contracts import (
    CreditNoteReceived,
    InvoiceStage,
    InvoiceToRevenueInput,
    PaymentReceived,
    VoidReceived,
)
from revsync import metrics
from revsync.gateway.app import create_app
from revsync.gateway.versioning import InvoiceEventDelivered, InvoiceSagaAccepted, UnknownInvoice
from revsync.settings import Settings
from sandbox.zuora import ZuoraStore
from tests.invoice_to_revenue.test_gateway import FakeTemporal
from tests.staff import secret_settings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "zuora"
PATH = "/v1/webhooks/zuora/invoices"
INVOICE = "INV00004127"
WORKFLOW = f"i2r-{INVOICE}"
SECRET = "zcs_" + "7f3a9c" * 6
OLD_SECRET = "zcs_" + "0b1d2e" * 6
NOTIFICATION = "3f0c2a61d9e84b2c9a1f5e7d8c6b4a20"


def fixture(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return document


@pytest.fixture
def settings() -> Settings:
    # Rotation: the new secret first, the old one still accepted.
    return Settings(
        **secret_settings(),
        zuora_callout_secret=f"{SECRET},{OLD_SECRET}",
        accounting_timezone="America/Los_Angeles",
    )


@pytest.fixture
def temporal() -> FakeTemporal:
    return FakeTemporal()


@pytest.fixture
def deliveries(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """What the gateway counts in revsync_webhook_deliveries: (source, outcome)."""
    counted: list[tuple[str, str]] = []

    def count(_meter: Any, metric: Any, **labels: str) -> None:
        if metric is metrics.WEBHOOK_DELIVERIES:
            counted.append((labels["source"], labels["outcome"]))

    monkeypatch.setattr(metrics, "count", count)
    return counted


async def gateway(settings: Settings, temporal: FakeTemporal) -> httpx.AsyncClient:
    app = create_app(settings, temporal)  # type: ignore[arg-type]
    app.state.client = temporal
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")


@pytest.fixture
async def http(settings: Settings, temporal: FakeTemporal, deliveries: list[tuple[str, str]]):
    async with await gateway(settings, temporal) as client:
        yield client


async def post(
    http: httpx.AsyncClient,
    body: dict[str, Any] | bytes,
    secret: str | None = SECRET,
    notification: str | None = NOTIFICATION,
) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if secret is not None:
        headers[zuora_invoices.SECRET_HEADER] = secret
    if notification is not None:
        headers[zuora_invoices.NOTIFICATION_HEADER] = notification
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await http.post(PATH, content=content, headers=headers)


# -- the endpoint ---------------------------------------------------------------------------


async def test_invoice_posted_starts_one_saga_and_duplicates_start_nothing(
    http: httpx.AsyncClient,
    settings: Settings,
    temporal: FakeTemporal,
    deliveries: list[tuple[str, str]],
):
    first = await post(http, fixture("invoice_posted"))
    retried = await post(http, fixture("invoice_posted"))  # Zuora's next attempt
    other = await post(http, fixture("invoice_posted"), notification="a" * 32)

    # 200, not 202: Zuora counts any other answer as a failed callout and sends it again.
    assert first.status_code == 200, first.text
    assert first.json() == {
        "status": "started",
        "run_id": "run-1",
        "workflow_id": WORKFLOW,
        "invoice_id": INVOICE,
    }
    assert retried.status_code == other.status_code == 200
    assert retried.json()["status"] == other.json()["status"] == "duplicate"
    for answer in (first, retried, other):
        InvoiceSagaAccepted.model_validate_json(answer.content)
    assert list(temporal.started) == [WORKFLOW]
    started = temporal.started[WORKFLOW]
    arg = started["arg"]
    assert isinstance(arg, InvoiceToRevenueInput)
    assert (arg.invoice_id, arg.event_id) == (INVOICE, NOTIFICATION)
    assert arg.policy == settings.invoice_policy
    assert arg.accounting_timezone == "America/Los_Angeles"
    assert started["task_queue"] == "orchestration"
    names = {pair.key.name: pair.value for pair in started["search_attributes"]}
    assert names["InvoiceId"] == INVOICE and names["InvoiceStage"] == "RECEIVED"
    assert deliveries == [("zuora", "started"), ("zuora", "duplicate"), ("zuora", "duplicate")]


async def test_applied_and_processed_callouts_of_one_payment_signal_one_payment_id(
    http: httpx.AsyncClient, temporal: FakeTemporal
):
    await post(http, fixture("invoice_posted"))
    applied = await post(http, fixture("payment_applied"))
    processed = await post(http, fixture("payment_processed"))

    assert applied.status_code == processed.status_code == 200
    assert applied.json() == {
        "status": "delivered",
        "signal": "payment_received",
        "workflow_id": WORKFLOW,
        "invoice_id": INVOICE,
    }
    InvoiceEventDelivered.model_validate_json(applied.content)
    payments = [arg for _, name, arg in temporal.signals if name == "payment_received"]
    assert all(isinstance(p, PaymentReceived) for p in payments)
    # the saga applies it once: it drops the repeat by payment id
    assert [p.payment_id for p in payments] == ["P-00002214@INV00004127"] * 2
    assert {(p.amount, p.currency) for p in payments} == {(Decimal("12960.00"), "USD")}
    # A bare date is that day in the books' time zone, so the saga books it on that day.
    books = ZoneInfo("America/Los_Angeles")
    assert payments[0].paid_at == datetime(2026, 11, 17, tzinfo=books)
    assert payments[1].paid_at == datetime(2026, 11, 17, 17, 45, tzinfo=UTC)
    assert payments[0].event_id == NOTIFICATION


async def test_a_cancellation_and_a_credit_memo_signal_the_saga(
    http: httpx.AsyncClient, temporal: FakeTemporal
):
    await post(http, fixture("invoice_posted"))
    credit = await post(http, fixture("creditmemo_posted"))
    cancel = await post(http, fixture("invoice_canceled"))

    assert credit.status_code == cancel.status_code == 200, (credit.text, cancel.text)
    assert [name for _, name, _ in temporal.signals] == ["credit_note", "voided"]
    (_, _, note), (_, _, void) = temporal.signals
    assert isinstance(note, CreditNoteReceived)
    assert note.credit_note_id == "CM00000412"
    assert note.lines == {"8ad09be48db5aba7018dc2d1c7a05131": Decimal("3000.00")}
    assert note.tax == {"8ad09be48db5aba7018dc2d1c7a05131": Decimal("240.00")}
    assert (note.total, note.currency, note.unmatched) == (Decimal("3240.00"), "USD", [])
    assert isinstance(void, VoidReceived)
    assert void.voided_at == datetime(2026, 12, 19, 8, tzinfo=UTC)


async def test_a_callout_for_an_unknown_invoice_is_refused_so_that_zuora_sends_it_again(
    http: httpx.AsyncClient, temporal: FakeTemporal, deliveries: list[tuple[str, str]]
):
    early = await post(http, fixture("payment_applied"))
    assert early.status_code == 409
    assert UnknownInvoice.model_validate_json(early.content).invoice_id == INVOICE
    assert temporal.started == {} and temporal.signals == []

    await post(http, fixture("invoice_posted"))
    again = await post(http, fixture("payment_applied"))
    assert again.status_code == 200 and len(temporal.signals) == 1
    assert deliveries == [("zuora", "unknown"), ("zuora", "started"), ("zuora", "signalled")]


async def test_a_callout_for_an_ended_saga_starts_its_adjustment_with_a_200(
    http: httpx.AsyncClient, temporal: FakeTemporal, deliveries: list[tuple[str, str]]
):
    await post(http, fixture("invoice_posted"))
    temporal.end(WORKFLOW, InvoiceStage.CLOSED)
    late = await post(http, fixture("invoice_canceled"))
    again = await post(http, fixture("invoice_canceled"))  # Zuora's next attempt

    # 200 (Zuora counts anything else as failed): the void is booked by an adjustment.
    assert late.status_code == again.status_code == 200, late.text
    answer = InvoiceSagaAccepted.model_validate_json(late.content)
    assert (answer.status, answer.adjustment) == ("started", "void")
    assert answer.workflow_id == f"i2r-adj-{INVOICE}-void-void"
    assert InvoiceSagaAccepted.model_validate_json(again.content).status == "duplicate"
    assert temporal.signals == []
    assert deliveries[-2:] == [("zuora", "adjusting"), ("zuora", "duplicate")]


async def test_a_callout_for_a_terminated_saga_is_acknowledged(
    http: httpx.AsyncClient, temporal: FakeTemporal
):
    await post(http, fixture("invoice_posted"))
    temporal.end(WORKFLOW, WorkflowExecutionStatus.TERMINATED)
    late = await post(http, fixture("invoice_canceled"))
    assert late.status_code == 200
    assert InvoiceEventDelivered.model_validate_json(late.content).status == "closed"
    assert temporal.signals == []


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        (None, f"missing {zuora_invoices.SECRET_HEADER} header"),
        ("", f"missing {zuora_invoices.SECRET_HEADER} header"),
        (SECRET[:-1], "callout secret does not match"),
        (SECRET + " ", "callout secret does not match"),
        ("zcs_wrong", "callout secret does not match"),
    ],
)
async def test_a_callout_without_the_secret_is_401_and_never_read(
    http: httpx.AsyncClient,
    temporal: FakeTemporal,
    deliveries: list[tuple[str, str]],
    secret: str | None,
    reason: str,
):
    response = await post(http, b"not even json", secret=secret)
    assert (response.status_code, response.json()) == (401, {"error": reason})
    assert temporal.started == {}
    assert deliveries == [("zuora", "refused")]


async def test_the_old_secret_is_accepted_while_it_is_rotated_out(
    http: httpx.AsyncClient, temporal: FakeTemporal
):
    response = await post(http, fixture("invoice_posted"), secret=OLD_SECRET)
    assert response.status_code == 200, response.text
    assert list(temporal.started) == [WORKFLOW]


async def test_without_a_configured_secret_the_endpoint_refuses_everything(
    temporal: FakeTemporal,
):
    settings = Settings(**secret_settings())
    assert settings.zuora_callout_secret is None
    async with await gateway(settings, temporal) as http:
        response = await post(http, fixture("invoice_posted"), secret="")
        guessed = await post(http, fixture("invoice_posted"), secret="anything")
    assert response.status_code == guessed.status_code == 401
    assert guessed.json() == {"error": "unknown source"}
    assert temporal.started == {}


@pytest.mark.parametrize(
    ("change", "status", "fields"),
    [
        ({"event": "invoice.due"}, 422, ["event"]),
        ({"invoiceNumber": ""}, 422, ["invoiceNumber"]),
        ({"invoiceNumber": "INV 0001"}, 422, ["invoiceNumber"]),
        ({"event": "payment.applied", "amount": "12,960.00"}, 422, ["amount"]),
    ],
)
async def test_an_authentic_callout_missing_what_revsync_needs_is_refused_with_the_field(
    http: httpx.AsyncClient,
    temporal: FakeTemporal,
    change: dict[str, Any],
    status: int,
    fields: list[str],
):
    body = fixture("payment_applied") | change
    response = await post(http, body)
    assert response.status_code == status, response.text
    assert [f["field"] for f in response.json()["fields"]] == fields
    assert temporal.started == {} and temporal.signals == []


async def test_a_body_that_is_not_json_is_400_and_an_oversized_one_413(
    http: httpx.AsyncClient, settings: Settings
):
    assert (await post(http, b"{invoice")).status_code == 400
    assert (await post(http, b"[]")).status_code == 422
    big = b"{" + b" " * settings.webhook_max_body_bytes + b"}"
    assert (await post(http, big)).status_code == 413


async def test_the_unversioned_path_serves_it_too_deprecated(
    http: httpx.AsyncClient, temporal: FakeTemporal
):
    body = json.dumps(fixture("invoice_posted")).encode()
    response = await http.post(
        "/webhooks/zuora/invoices",
        content=body,
        headers={zuora_invoices.SECRET_HEADER: SECRET, "content-type": "application/json"},
    )
    assert response.status_code == 200
    assert response.headers["link"] == '</v1/webhooks/zuora/invoices>; rel="successor-version"'
    assert list(temporal.started) == [WORKFLOW]


# -- the mapping ----------------------------------------------------------------------------


def callout(body: dict[str, Any], notification: str | None = None) -> zuora_invoices.ZuoraCallout:
    """The body sent as JSON (a Decimal as an exact JSON number)."""
    return parse_callout(dumps_json(body), notification)


def test_verify_compares_every_secret_and_refuses_anything_else():
    zuora_invoices.verify([SECRET, OLD_SECRET], OLD_SECRET)
    zuora_invoices.verify([SECRET], SECRET)
    for bad in (None, "", SECRET.upper(), "é" + SECRET):
        with pytest.raises(SignatureError):
            zuora_invoices.verify([SECRET, OLD_SECRET], bad)
    with pytest.raises(SignatureError):
        zuora_invoices.verify([], SECRET)


def test_the_event_id_is_zuoras_notification_id_when_it_looks_like_one():
    body = fixture("invoice_posted")
    assert callout(body, NOTIFICATION).event_id == NOTIFICATION
    assert callout(body, None).event_id == "zuora:invoice.posted:INV00004127"
    assert callout(body, "x" * 200).event_id == "zuora:invoice.posted:INV00004127"
    assert callout(body, "id with spaces").notification_id is None


@pytest.mark.parametrize(
    ("currency", "amount", "expected"),
    [
        ("usd", "12960", "12960.00"),
        ("JPY", "12960", "12960"),
        ("EUR", Decimal("99.5"), "99.50"),
        ("ISK", 1500, "1500"),
    ],
)
def test_payment_amounts_are_major_units_exact_in_the_currency(
    currency: str, amount: Any, expected: str
):
    body = fixture("payment_applied") | {"currency": currency, "amount": amount}
    payment = payment_from_callout(callout(body), "UTC")
    assert str(payment.amount) == expected
    assert payment.currency == currency.upper()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": "12960.001"}, "amount"),  # more places than USD has
        ({"amount": "1.2e4"}, "amount"),
        ({"amount": "0"}, "amount"),
        ({"amount": "-5.00"}, "amount"),
        ({"amount": True}, "amount"),
        ({"currency": "XXX"}, "currency"),
        ({"paymentNumber": None}, "paymentNumber"),
        ({"effectiveDate": "17/11/2026"}, "effectiveDate"),
        ({"effectiveDate": "2026-11-17 at 09:45"}, "effectiveDate"),
    ],
)
def test_a_malformed_payment_names_its_field_and_never_its_value(
    change: dict[str, Any], field: str
):
    body = fixture("payment_applied") | change
    with pytest.raises(CalloutError) as caught:
        payment_from_callout(callout(body), "UTC")
    assert [f["field"] for f in caught.value.fields] == [field]
    shown = json.dumps(caught.value.fields)
    for value in change.values():
        if isinstance(value, str) and len(value) > 3:
            assert value not in shown


def test_one_payment_settling_two_invoices_is_two_erp_payments():
    first = payment_from_callout(callout(fixture("payment_applied")), "UTC")
    second_body = fixture("payment_applied") | {"invoiceNumber": "INV00004128", "amount": "40"}
    second = payment_from_callout(callout(second_body), "UTC")
    assert first.payment_id != second.payment_id
    assert second.payment_id == "P-00002214@INV00004128"


def test_a_cancellation_needs_when():
    body = fixture("invoice_canceled")
    assert void_from_callout(callout(body), "UTC").voided_at.tzinfo is not None
    berlin = ZoneInfo("Europe/Berlin")
    day = void_from_callout(callout(body | {"updatedDate": "2026-12-19"}), "Europe/Berlin")
    assert day.voided_at == datetime(2026, 12, 19, tzinfo=berlin)
    # without an offset (as a tenant's profile may render it): wall-clock time in the books
    naive = callout(body | {"updatedDate": "2026-12-19 08:30:00"})
    assert void_from_callout(naive, "Europe/Berlin").voided_at == datetime(
        2026, 12, 19, 8, 30, tzinfo=berlin
    )
    with pytest.raises(CalloutError):
        void_from_callout(callout({"event": "invoice.canceled", "invoiceNumber": INVOICE}), "UTC")


def test_credit_memo_items_tied_to_no_invoice_item_or_short_of_the_total_are_unmatched():
    body = fixture("creditmemo_posted")
    items = body["items"]
    first = items[0]
    items.insert(
        1,
        copy.deepcopy(first)
        | {"id": "cmi-charge", "sourceItemType": "ProductRatePlanCharge", "amount": "50.00"},
    )
    items.insert(2, {"id": "cmi-none", "amount": "10.00", "tax": None})
    body["amount"] = "3400.00"  # items with tax: 3240 + 290 + 10 = 3540

    note = credit_note_from_callout(callout(body))

    assert note.lines == {"8ad09be48db5aba7018dc2d1c7a05131": Decimal("3000.00")}
    assert note.total == Decimal("3400.00")
    assert note.unmatched == [
        "cmi-charge: 50.00 USD not tied to an invoice item",
        "cmi-none: 10.00 USD not tied to an invoice item",
        "items come to 3540.00 USD with tax but the memo's total is 3400.00",
    ]


def test_two_items_of_one_invoice_item_add_up_and_zero_lines_are_dropped():
    body = fixture("creditmemo_posted")
    item = body["items"][0]
    body["items"] = [
        item,
        item | {"id": "second", "amount": "500.00", "tax": "40.00"},
        item | {"id": "zero", "sourceItemId": "other-item", "amount": "0", "tax": "0"},
        None,
    ]
    body["amount"] = "3780.00"
    note = credit_note_from_callout(callout(body))
    assert note.lines == {item["sourceItemId"]: Decimal("3500.00")}
    assert note.tax == {item["sourceItemId"]: Decimal("280.00")}
    assert note.unmatched == []


def test_a_credit_memo_without_items_or_number_is_refused():
    body = fixture("creditmemo_posted")
    with pytest.raises(CalloutError) as caught:
        credit_note_from_callout(callout(body | {"items": None}))
    assert caught.value.fields[0]["field"] == "items"
    with pytest.raises(CalloutError) as caught:
        credit_note_from_callout(callout(body | {"items": ["x", None]}))
    assert caught.value.fields[0]["field"] == "items.0"
    with pytest.raises(CalloutError) as caught:
        credit_note_from_callout(callout(body | {"memoNumber": ""}))
    assert caught.value.fields[0]["field"] == "memoNumber"


# -- the sandbox's Zuora renders what the gateway reads --------------------------------------


def test_the_sandbox_renders_each_event_as_revsyncs_templates_do():
    store = ZuoraStore()
    created = store.create_account(
        {
            "name": "Nord GmbH",
            "crmId": "0015e00000NordDE1",
            "currency": "EUR",
            "billToContact": {"firstName": "A", "lastName": "P", "country": "DE"},
        }
    )
    account = store.accounts[created["accountId"]]
    item = {
        "sku": "PLAT-CORE",
        "chargeName": "Core",
        "chargeDescription": "Core",
        "chargeType": "Recurring",
        "chargeAmount": Decimal("840.00"),
        "taxAmount": Decimal("159.60"),
        "serviceStartDate": "2026-01-01",
        "serviceEndDate": "2026-01-31",
    }
    day = date(2026, 1, 1)
    invoice = store.add_invoice(account, [item], day, day, "Posted")
    number = invoice["invoiceNumber"]
    (item_id,) = [i["id"] for i in store.items if i["invoiceId"] == invoice["id"]]
    memo = store.credit(number, [(item_id, Decimal("210.00"), Decimal("39.90"))], "seats")
    store.pay(number, Decimal("100.00"), date(2026, 2, 3))
    store.add_invoice(account, [item], day, day, "Draft")

    rendered = store.callouts_of(number)
    assert [c["event"] for c in rendered] == [
        "invoice.posted",
        "creditmemo.posted",
        "payment.applied",
    ]
    assert len(store.callouts) == 3  # a draft is not posted: no callout
    parsed = [parse_callout(json.dumps(c["body"]).encode(), c["notificationId"]) for c in rendered]
    assert [p.invoice for p in parsed] == [number] * 3
    assert parsed[0].event_id == rendered[0]["notificationId"]
    note = credit_note_from_callout(parsed[1])
    assert (note.credit_note_id, note.total, note.unmatched) == (
        memo["number"],
        Decimal("249.90"),
        [],
    )
    assert (note.lines, note.tax) == ({item_id: Decimal("210.00")}, {item_id: Decimal("39.90")})
    payment = payment_from_callout(parsed[2], "UTC")
    assert payment.payment_id == f"{store.payments[0]['number']}@{number}"
    assert (payment.amount, payment.paid_at) == (
        Decimal("100.00"),
        datetime(2026, 2, 3, tzinfo=ZoneInfo("UTC")),
    )
    assert store.invoice(number)["balance"] == Decimal("649.70")
