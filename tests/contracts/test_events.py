"""Canonical business events: stable ids, CloudEvents envelopes, facts read from the saga's
status, and every event valid against its committed schema."""

from __future__ import annotations

import json
import re
import typing
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from domain.events import (
    ENVELOPES,
    OrderCompensated,
    OrderParked,
    QuoteBooked,
    QuoteRejected,
    event_for,
    event_id,
)
from domain.saga import (
    ParkedState,
    QuoteToCashStatus,
    ResolveAction,
    Step,
    StepRecord,
    StepState,
)
from domain.stages import OrderStage
from revsync.schemas import SCHEMAS_DIR

T0 = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
BASE = "https://revsync.example.com/v1/schemas"


def committed_schema(event_type: str) -> dict[str, Any]:
    fact, _, version = event_type.removeprefix("com.revsync.").rpartition(".")
    document: dict[str, Any] = json.loads(
        (SCHEMAS_DIR / "events" / f"{fact}.{version}.json").read_text()
    )
    return document


def assert_valid(event: dict[str, Any]) -> None:
    schema = committed_schema(event["type"])
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(event)]
    assert errors == [], errors


def status(stage: OrderStage, *steps: tuple[Step, StepState], **fields: Any) -> QuoteToCashStatus:
    records = [
        StepRecord(step=step, state=state, started_at=T0 + timedelta(seconds=i))
        for i, (step, state) in enumerate(steps)
    ]
    base: dict[str, Any] = {
        "workflow_id": "q2c-Q-1001",
        "quote_id": "Q-1001",
        "account_id": "0015e00000AcmeUS1",
        "amount": Decimal("10800.00"),
        "currency": "USD",
        "stage": stage,
        "steps": records,
    }
    return QuoteToCashStatus.model_validate(base | fields)


BOOKED = status(
    OrderStage.BOOKED,
    (Step.VALIDATE_QUOTE, StepState.DONE),
    (Step.BOOK_ERP_ORDER, StepState.DONE),
    (Step.PROVISION_BILLING, StepState.DONE),
    (Step.UPDATE_CRM, StepState.DONE),
    erp_customer_id="ns-cust-7",
    erp_order_id="SO-5501",
    billing_customer_id="cus_Q1",
    subscription_id="sub_Q1",
    invoice_id="in_Q1",
    crm_order_id="801-Q1",
)


def test_an_event_id_names_one_fact_of_one_workflow():
    first = event_id("q2c-Q-1001", "quote.booked")
    assert first == event_id("q2c-Q-1001", "quote.booked")
    assert uuid.UUID(first).version == 5
    others = {
        event_id("q2c-Q-1002", "quote.booked"),
        event_id("q2c-Q-1001", "quote.rejected"),
        event_id("q2c-Q-1001", "quote.booked", "again"),
    }
    assert first not in others
    assert len(others) == 3


def test_each_envelope_pins_its_data_and_its_versioned_type():
    assert len({data.event_type() for data in ENVELOPES}) == len(ENVELOPES)
    for data, envelope in ENVELOPES.items():
        (pinned,) = typing.get_args(envelope.model_fields["type"].annotation)
        assert pinned == data.event_type() == f"com.revsync.{data.fact}.v{data.version}"
        assert envelope.model_fields["data"].annotation is data
        assert (SCHEMAS_DIR / "events" / data.schema_file()).exists()


def test_a_booked_saga_is_a_quote_booked_event():
    event = event_for(
        QuoteBooked.from_status(BOOKED), workflow_id=BOOKED.workflow_id, time=T0, schema_base=BASE
    )
    document = json.loads(event.model_dump_json())
    assert {k: v for k, v in document.items() if k != "data"} == {
        "specversion": "1.0",
        "id": event_id("q2c-Q-1001", "quote.booked"),
        "source": "/revsync/quote-to-cash",
        "type": "com.revsync.quote.booked.v1",
        "subject": "Q-1001",
        "time": "2026-11-02T09:30:00Z",
        "datacontenttype": "application/json",
        "dataschema": f"{BASE}/events/quote.booked.v1.json",
    }
    assert document["data"] == {
        "quote_id": "Q-1001",
        "account_id": "0015e00000AcmeUS1",
        "amount": "10800.00",
        "currency": "USD",
        "erp_customer_id": "ns-cust-7",
        "erp_order_id": "SO-5501",
        "billing_customer_id": "cus_Q1",
        "subscription_id": "sub_Q1",
        "invoice_id": "in_Q1",
        "crm_order_id": "801-Q1",
    }
    assert_valid(document)


def test_publishing_a_fact_again_gives_the_same_event():
    def publish() -> str:
        data = QuoteBooked.from_status(BOOKED)
        event = event_for(data, workflow_id="q2c-Q-1001", time=T0, schema_base=BASE + "/")
        return event.model_dump_json()

    assert publish() == publish()


def test_a_booking_whose_crm_write_back_was_skipped_has_no_crm_order():
    skipped = BOOKED.model_copy(update={"crm_order_id": None, "invoice_id": None})
    data = QuoteBooked.from_status(skipped)
    assert (data.crm_order_id, data.invoice_id) == (None, None)
    event = event_for(data, workflow_id="q2c-Q-1001", time=T0, schema_base=BASE)
    assert_valid(json.loads(event.model_dump_json()))


def test_a_quote_refused_at_approval_is_a_quote_rejected_event():
    rejected = status(
        OrderStage.REJECTED,
        (Step.VALIDATE_QUOTE, StepState.DONE),
        (Step.AWAIT_APPROVAL, StepState.FAILED),
        (Step.MARK_CRM_REJECTED, StepState.DONE),
        reason="discount above policy",
    )
    data = QuoteRejected.from_status(rejected)
    assert (data.reason, data.failed_step) == ("discount above policy", "await_approval")
    event = event_for(data, workflow_id="q2c-Q-1001", time=T0, schema_base=BASE)
    assert event.id == event_id("q2c-Q-1001", "quote.rejected")
    assert_valid(json.loads(event.model_dump_json()))


def test_a_compensated_order_lists_what_was_undone_in_order():
    compensated = status(
        OrderStage.COMPENSATED,
        (Step.BOOK_ERP_ORDER, StepState.COMPENSATED),
        (Step.PROVISION_BILLING, StepState.COMPENSATED),
        (Step.UPDATE_CRM, StepState.FAILED),
        (Step.CANCEL_SUBSCRIPTION, StepState.DONE),
        (Step.VOID_INVOICE, StepState.FAILED),  # parked, then done by hand
        (Step.VOID_INVOICE, StepState.SKIPPED),
        (Step.CANCEL_ERP_ORDER, StepState.DONE),
        (Step.MARK_CRM_REJECTED, StepState.DONE),
        reason="credit refused",
        erp_order_id="SO-5501",
        subscription_id="sub_Q1",
        invoice_id="in_Q1",
    )
    data = OrderCompensated.from_status(compensated)
    assert data.failed_step == "update_crm"
    assert [(r.step, r.reverses, r.record_id, r.by_hand) for r in data.undone] == [
        ("cancel_subscription", "provision_billing", "sub_Q1", False),
        ("void_invoice", "provision_billing", "in_Q1", True),
        ("cancel_erp_order", "book_erp_order", "SO-5501", False),
    ]
    event = event_for(data, workflow_id="q2c-Q-1001", time=T0, schema_base=BASE)
    assert_valid(json.loads(event.model_dump_json()))


def parked_at(step: Step, since: datetime) -> QuoteToCashStatus:
    return status(
        OrderStage.NEEDS_ATTENTION,
        (step, StepState.FAILED),
        parked=ParkedState(
            step=step,
            reason="gave up after retrying for 0:30:00: 503",
            since=since,
            allowed=[ResolveAction.RETRY, ResolveAction.COMPENSATE],
        ),
    )


def test_each_parking_is_its_own_order_parked_event():
    first = OrderParked.from_status(parked_at(Step.BOOK_ERP_ORDER, T0))
    again = OrderParked.from_status(parked_at(Step.BOOK_ERP_ORDER, T0 + timedelta(hours=1)))
    assert (first.blocked_step, first.allowed) == ("book_erp_order", ["retry", "compensate"])
    ids = [
        event_for(d, workflow_id="q2c-Q-1001", time=d.parked_at, schema_base=BASE).id
        for d in (first, first, again)
    ]
    assert ids[0] == ids[1] != ids[2]
    event = event_for(first, workflow_id="q2c-Q-1001", time=T0, schema_base=BASE)
    assert_valid(json.loads(event.model_dump_json()))


@pytest.mark.parametrize("fact", [QuoteBooked, QuoteRejected, OrderCompensated, OrderParked])
def test_a_fact_is_only_read_from_a_saga_in_its_stage(fact: Any):
    running = status(OrderStage.BOOKING_ERP, (Step.BOOK_ERP_ORDER, StepState.RUNNING))
    with pytest.raises(ValueError, match="BOOKING_ERP"):
        fact.from_status(running)


def test_an_event_breaking_its_schema_is_refused_by_the_committed_schema():
    event = event_for(
        QuoteBooked.from_status(BOOKED), workflow_id="q2c-Q-1001", time=T0, schema_base=BASE
    )
    document = json.loads(event.model_dump_json())
    document["data"]["amount"] = 10800.0  # a float: money must stay an exact string
    del document["subject"]
    schema = committed_schema(document["type"])
    errors = sorted(e.message for e in Draft202012Validator(schema).iter_errors(document))
    assert errors == ["'subject' is a required property", "10800.0 is not of type 'string'"]


DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def test_docs_show_one_valid_example_per_event_type():
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", DOCS.read_text(), re.S)]
    examples = [b for b in blocks if isinstance(b, dict) and b.get("specversion") == "1.0"]
    assert sorted(e["type"] for e in examples) == sorted(d.event_type() for d in ENVELOPES)
    for example in examples:
        assert_valid(example)
