"""Stripe invoice events at the gateway's ``/v1/webhooks/stripe/invoices`` (realistic fixtures
in tests/gateway/fixtures/): ``invoice.finalized`` starts ``i2r-<invoice>`` once, payments,
voids and credit notes signal it, unknown invoices are refused for redelivery, an event for
an ended saga starts one adjustment (a terminated saga's is acknowledged), other types
ignored; each answer matches its OpenAPI model."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from adapters.webhooks import stripe
from adapters.webhooks.stripe_invoices import (
    InvoiceEventError,
    credit_note_from_event,
    payment_from_event,
)
from domain.invoice_adjustment import InvoiceAdjustmentBase, InvoiceAdjustmentInput
from domain.invoice_contracts import (
    CreditNoteReceived,
    InvoiceStage,
    InvoiceToRevenueInput,
    InvoiceToRevenueStatus,
    PaymentReceived,
    VoidReceived,
)
from revsync.gateway.app import create_app
from revsync.gateway.versioning import (
    EventIgnored,
    InvoiceEventDelivered,
    InvoiceSagaAccepted,
    UnknownInvoice,
)
from revsync.settings import Settings
from tests.staff import secret_settings

FIXTURES = Path(__file__).resolve().parents[1] / "gateway" / "fixtures"
INVOICE = "in_1QbCdE2eZvKYlo2C"
WORKFLOW = f"i2r-{INVOICE}"


def fixture(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((FIXTURES / f"stripe_{name}.json").read_text())
    return document


class FakeTemporal:
    """Stands in for temporalio's Client: starts (one per id), signals, describes, and
    answers the ``adjustment_base`` query of an ended saga (``ended``: how it ended)."""

    def __init__(self) -> None:
        self.started: dict[str, dict[str, Any]] = {}
        self.closed: set[str] = set()
        self.ended: dict[str, InvoiceStage | WorkflowExecutionStatus] = {}
        self.handled_payments: list[str] = []
        self.signals: list[tuple[str, str, Any]] = []

    def end(self, workflow_id: str, how: InvoiceStage | WorkflowExecutionStatus) -> None:
        self.closed.add(workflow_id)
        self.ended[workflow_id] = how

    async def start_workflow(self, _run: Any, arg: Any, **kwargs: Any) -> Any:
        if kwargs["id"] in self.started:
            raise WorkflowAlreadyStartedError(kwargs["id"], "InvoiceToRevenue")
        self.started[kwargs["id"]] = {"arg": arg, **kwargs}
        return type("Handle", (), {"result_run_id": "run-1"})()

    def get_workflow_handle(self, workflow_id: str) -> FakeHandle:
        return FakeHandle(self, workflow_id)


class FakeHandle:
    def __init__(self, temporal: FakeTemporal, workflow_id: str) -> None:
        self.temporal = temporal
        self.id = workflow_id

    async def signal(self, name: str, arg: Any) -> None:
        if self.id not in self.temporal.started or self.id in self.temporal.closed:
            raise RPCError("workflow not found", RPCStatusCode.NOT_FOUND, b"")
        self.temporal.signals.append((self.id, name, arg))

    async def describe(self) -> Any:
        if self.id not in self.temporal.started:
            raise RPCError("workflow not found", RPCStatusCode.NOT_FOUND, b"")
        how = self.temporal.ended.get(self.id)
        status = (
            WorkflowExecutionStatus.RUNNING
            if self.id not in self.temporal.closed
            else how
            if isinstance(how, WorkflowExecutionStatus)
            else WorkflowExecutionStatus.COMPLETED
        )
        return type("Description", (), {"status": status})()

    async def query(self, name: str, *, result_type: Any) -> Any:
        assert name == "adjustment_base" and self.id in self.temporal.closed
        stage = self.temporal.ended.get(self.id)
        assert isinstance(stage, InvoiceStage)
        return InvoiceAdjustmentBase(
            status=InvoiceToRevenueStatus(
                workflow_id=self.id,
                invoice_id=self.id.removeprefix("i2r-"),
                stage=stage,
                stage_since=datetime(2026, 3, 1, tzinfo=UTC),
                account_id="0015e00000AcmeUS1",
                currency="USD",
                total=Decimal("12960.00"),
                amount_paid=Decimal("12960.00"),
                amount_due=Decimal(0),
            ),
            handled_payments=self.temporal.handled_payments,
        )


@pytest.fixture
def settings() -> Settings:
    return Settings(**secret_settings())


@pytest.fixture
def temporal() -> FakeTemporal:
    return FakeTemporal()


@pytest.fixture
async def http(settings: Settings, temporal: FakeTemporal):
    app = create_app(settings, temporal)  # type: ignore[arg-type]
    app.state.client = temporal
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw"
    ) as client:
        yield client


async def post(
    http: httpx.AsyncClient, settings: Settings, event: dict[str, Any]
) -> httpx.Response:
    body = json.dumps(event).encode()
    assert settings.stripe_webhook_secret is not None
    header = stripe.sign(settings.stripe_webhook_secret.get_secret_value(), body)
    return await http.post(
        "/v1/webhooks/stripe/invoices",
        content=body,
        headers={"content-type": "application/json", stripe.SIGNATURE_HEADER: header},
    )


async def test_invoice_finalized_starts_one_saga_and_duplicates_start_nothing(
    http: httpx.AsyncClient, settings: Settings, temporal: FakeTemporal
):
    event = fixture("invoice_finalized")
    first = await post(http, settings, event)
    replay = await post(http, settings, event)
    other_event = await post(http, settings, event | {"id": "evt_1QbCdF2eZvKYlo2CFin0002"})

    assert first.status_code == 202
    assert first.json() == {
        "status": "started",
        "run_id": "run-1",
        "workflow_id": WORKFLOW,
        "invoice_id": INVOICE,
    }
    assert replay.status_code == other_event.status_code == 200
    InvoiceSagaAccepted.model_validate_json(first.content)
    InvoiceSagaAccepted.model_validate_json(replay.content)
    assert replay.json()["status"] == other_event.json()["status"] == "duplicate"
    assert list(temporal.started) == [WORKFLOW]
    started = temporal.started[WORKFLOW]
    arg = started["arg"]
    assert isinstance(arg, InvoiceToRevenueInput)
    assert arg.invoice_id == INVOICE and arg.event_id == "evt_1QbCdF2eZvKYlo2CFin0001"
    assert arg.policy == settings.invoice_policy
    assert arg.accounting_timezone == settings.accounting_timezone
    assert started["task_queue"] == "orchestration"
    names = {pair.key.name: pair.value for pair in started["search_attributes"]}
    assert names["InvoiceId"] == INVOICE and names["InvoiceStage"] == "RECEIVED"


async def test_paid_and_payment_succeeded_signal_one_payment_id(
    http: httpx.AsyncClient, settings: Settings, temporal: FakeTemporal
):
    await post(http, settings, fixture("invoice_finalized"))
    paid = await post(http, settings, fixture("invoice_paid"))
    succeeded = await post(http, settings, fixture("invoice_payment_succeeded"))

    assert paid.status_code == succeeded.status_code == 200
    assert paid.json() == {
        "status": "delivered",
        "signal": "payment_received",
        "workflow_id": WORKFLOW,
        "invoice_id": INVOICE,
    }
    InvoiceEventDelivered.model_validate_json(paid.content)
    payments = [arg for _, name, arg in temporal.signals if name == "payment_received"]
    assert len(payments) == 2
    assert all(isinstance(p, PaymentReceived) for p in payments)
    # one payment intent: the saga applies it once (it drops the repeat by payment id)
    assert {p.payment_id for p in payments} == {"pi_3QbCdG2eZvKYlo2C0Pay0001"}
    assert payments[0].amount == Decimal("12960.00") and payments[0].currency == "USD"
    assert payments[0].paid_at == datetime.fromtimestamp(1731855900, tz=UTC)


async def test_voided_and_credit_note_signal_the_saga(
    http: httpx.AsyncClient, settings: Settings, temporal: FakeTemporal
):
    await post(http, settings, fixture("invoice_finalized"))
    credit = await post(http, settings, fixture("credit_note_created"))
    void = await post(http, settings, fixture("invoice_voided"))

    assert credit.status_code == void.status_code == 200
    (_, _, note), (_, _, voided) = [(w, n, a) for w, n, a in temporal.signals]
    assert isinstance(note, CreditNoteReceived)
    assert note.credit_note_id == "cn_1QbCdK2eZvKYlo2CCred01"
    assert note.lines == {"il_1QbCdE2eZvKYlo2CxPlat01": Decimal("3000.00")}
    assert note.tax == {"il_1QbCdE2eZvKYlo2CxPlat01": Decimal("240.00")}
    assert note.total == Decimal("3240.00") and note.unmatched == []
    assert isinstance(voided, VoidReceived)
    assert voided.voided_at == datetime.fromtimestamp(1734595200, tz=UTC)


async def test_an_event_for_an_unknown_invoice_is_refused_for_redelivery(
    http: httpx.AsyncClient, settings: Settings, temporal: FakeTemporal
):
    early = await post(http, settings, fixture("invoice_paid"))
    assert early.status_code == 409
    assert UnknownInvoice.model_validate_json(early.content).status == "unknown invoice"
    assert temporal.started == {} and temporal.signals == []

    # once invoice.finalized started the saga, Stripe's redelivery lands
    await post(http, settings, fixture("invoice_finalized"))
    again = await post(http, settings, fixture("invoice_paid"))
    assert again.status_code == 200 and len(temporal.signals) == 1


async def test_an_event_for_an_ended_saga_starts_one_adjustment_and_a_redelivery_none(
    http: httpx.AsyncClient, settings: Settings, temporal: FakeTemporal
):
    await post(http, settings, fixture("invoice_finalized"))
    temporal.end(WORKFLOW, InvoiceStage.CLOSED)
    late = await post(http, settings, fixture("credit_note_created"))
    again = await post(http, settings, fixture("credit_note_created"))

    adjustment = f"i2r-adj-{INVOICE}-credit_note-cn_1QbCdK2eZvKYlo2CCred01"
    assert late.status_code == again.status_code == 200
    assert late.json() == {
        "status": "started",
        "workflow_id": adjustment,
        "run_id": "run-1",
        "invoice_id": INVOICE,
        "adjustment": "credit_note",
    }
    InvoiceSagaAccepted.model_validate_json(late.content)
    assert again.json()["status"] == "duplicate" and again.json()["workflow_id"] == adjustment
    InvoiceSagaAccepted.model_validate_json(again.content)
    assert temporal.signals == []
    assert list(temporal.started) == [WORKFLOW, adjustment]
    started = temporal.started[adjustment]
    arg = started["arg"]
    assert isinstance(arg, InvoiceAdjustmentInput)
    assert arg.credit_note is not None and arg.credit_note.total == Decimal("3240.00")
    assert arg.base.status.stage is InvoiceStage.CLOSED
    assert arg.event_id == fixture("credit_note_created")["id"]
    assert arg.policy == settings.invoice_policy
    assert started["id_reuse_policy"] is WorkflowIDReusePolicy.REJECT_DUPLICATE
    assert started["task_queue"] == "orchestration"
    names = {pair.key.name: pair.value for pair in started["search_attributes"]}
    assert names["InvoiceId"] == INVOICE and names["InvoiceStage"] == "ADJUSTING"
    assert names["CustomerId"] == "0015e00000AcmeUS1"


async def test_a_late_payment_the_ended_saga_applied_is_a_duplicate(
    http: httpx.AsyncClient, settings: Settings, temporal: FakeTemporal
):
    await post(http, settings, fixture("invoice_finalized"))
    temporal.end(WORKFLOW, InvoiceStage.CLOSED)
    temporal.handled_payments.append("pi_3QbCdG2eZvKYlo2C0Pay0001")
    late = await post(http, settings, fixture("invoice_payment_succeeded"))

    assert late.status_code == 200
    answer = InvoiceSagaAccepted.model_validate_json(late.content)
    assert (answer.status, answer.workflow_id, answer.adjustment) == (
        "duplicate",
        WORKFLOW,
        "payment",
    )
    assert answer.reason == f"payment pi_3QbCdG2eZvKYlo2C0Pay0001 was applied by {WORKFLOW}"
    assert list(temporal.started) == [WORKFLOW]


async def test_an_event_for_a_terminated_saga_is_acknowledged(
    http: httpx.AsyncClient, settings: Settings, temporal: FakeTemporal
):
    await post(http, settings, fixture("invoice_finalized"))
    temporal.end(WORKFLOW, WorkflowExecutionStatus.TERMINATED)
    late = await post(http, settings, fixture("invoice_voided"))
    assert late.status_code == 200
    assert InvoiceEventDelivered.model_validate_json(late.content).status == "closed"
    assert temporal.signals == [] and list(temporal.started) == [WORKFLOW]


async def test_other_event_types_are_acknowledged_and_quotes_do_not_start_here(
    http: httpx.AsyncClient, settings: Settings, temporal: FakeTemporal
):
    other = fixture("invoice_finalized") | {"type": "invoice.upcoming"}
    response = await post(http, settings, other)
    assert response.status_code == 200
    assert EventIgnored.model_validate_json(response.content).type == "invoice.upcoming"
    assert temporal.started == {}


async def test_an_invoice_event_missing_what_revsync_needs_is_422_with_the_field(
    http: httpx.AsyncClient, settings: Settings, temporal: FakeTemporal
):
    await post(http, settings, fixture("invoice_finalized"))
    event = fixture("invoice_paid")
    event["data"]["object"]["amount_paid"] = "12960.00"
    response = await post(http, settings, event)
    assert response.status_code == 422
    assert [f["field"] for f in response.json()["fields"]] == ["data.object.amount_paid"]
    assert temporal.signals == []


# -- the mapping -------------------------------------------------------------------------


def parsed(event: dict[str, Any]) -> stripe.StripeEvent:
    return stripe.parse_event(json.dumps(event).encode())


def test_payment_id_falls_back_to_payments_list_charge_then_out_of_band_invoice():
    event = fixture("invoice_paid")
    obj = event["data"]["object"]
    obj["payment_intent"] = None
    assert payment_from_event(parsed(event)).payment_id == "ch_3QbCdG2eZvKYlo2C0Chg0001"
    obj["charge"] = None
    obj["payments"] = {"data": [{"payment": {"type": "payment_intent", "payment_intent": "pi_9"}}]}
    assert payment_from_event(parsed(event)).payment_id == "pi_9"
    obj["payments"] = {"data": []}
    obj["paid_out_of_band"] = True
    assert payment_from_event(parsed(event)).payment_id == INVOICE
    obj["paid_out_of_band"] = False
    with pytest.raises(InvoiceEventError):
        payment_from_event(parsed(event))


@pytest.mark.parametrize(
    ("currency", "minor", "amount"),
    [("usd", 1296000, "12960.00"), ("jpy", 12960, "12960"), ("isk", 1296000, "12960")],
)
def test_payment_amounts_follow_stripes_exponent(currency: str, minor: int, amount: str):
    event = fixture("invoice_paid")
    event["data"]["object"] |= {"currency": currency, "amount_paid": minor}
    payment = payment_from_event(parsed(event))
    assert payment.amount == Decimal(amount) and str(payment.amount) == amount


def test_a_tax_inclusive_credit_note_line_is_taken_net_of_its_tax_and_the_tax_kept_per_line():
    event = fixture("credit_note_created")
    obj = event["data"]["object"]
    (line,) = obj["lines"]["data"]
    # 1,190.00 EUR gross including 19 % VAT, on the API version that names them ``taxes``.
    line |= {"amount": 119000, "tax_amounts": None}
    line["taxes"] = [{"amount": 19000, "tax_behavior": "inclusive", "taxable_amount": 100000}]
    obj |= {"currency": "eur", "subtotal": 119000, "total": 119000, "amount": 119000}

    note = credit_note_from_event(parsed(event))

    assert note.lines == {"il_1QbCdE2eZvKYlo2CxPlat01": Decimal("1000.00")}
    assert note.tax == {"il_1QbCdE2eZvKYlo2CxPlat01": Decimal("190.00")}
    assert note.total == Decimal("1190.00")


def test_a_credit_note_line_tied_to_no_invoice_line_is_unmatched_not_dropped():
    event = fixture("credit_note_created")
    lines = event["data"]["object"]["lines"]
    custom = copy.deepcopy(lines["data"][0]) | {
        "id": "cnli_custom",
        "type": "custom_line_item",
        "invoice_line_item": None,
        "amount": 5000,
    }
    lines["data"].append(custom)
    lines["has_more"] = True
    note = credit_note_from_event(parsed(event))
    assert note.lines == {"il_1QbCdE2eZvKYlo2CxPlat01": Decimal("3000.00")}
    assert note.unmatched == [
        "cnli_custom: 50.00 USD not tied to an invoice line",
        "lines beyond the 2 the event carries",
    ]
