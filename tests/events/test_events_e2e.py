"""Business events on the real stack: a CPQ webhook books a quote on a Temporal dev server,
the events worker POSTs quote.booked to the sandbox subscriber."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from adapters.events.webhooks import SCHEME
from adapters.http import dumps_json
from domain.events import QuoteBookedEvent, event_id
from domain.saga import QuoteToCashStatus
from domain.stages import OrderStage
from tests.e2e.stack import EVENT_SECRET, EVENT_SUBSCRIBER, Stack, running_stack
from tests.e2e.test_quote_to_cash_e2e import deliver, new_quote
from workflows import visibility
from workflows.quote_to_cash import QuoteToCashWorkflow

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    async with running_stack() as running:
        yield running


async def book(stack: Stack) -> tuple[str, QuoteToCashStatus]:
    """A quote through the gateway; returns once the workflow has ended (events delivered)."""
    payload = await new_quote(stack, "0015e00000AcmeUS1")
    assert (await deliver(stack, payload)).json()["status"] == "started"
    quote_id = payload["quote_id"]
    handle = stack.client.get_workflow_handle_for(
        QuoteToCashWorkflow.run, visibility.workflow_id_for_quote(quote_id)
    )
    async with asyncio.timeout(90):  # a guard against a hang, not a speed check
        status = await handle.result()
    assert status.stage is OrderStage.BOOKED, status
    return quote_id, status


def received(stack: Stack, quote_id: str) -> list[dict[str, Any]]:
    return [
        d
        for d in stack.sandbox.state.events.received(EVENT_SUBSCRIBER)
        if d["event"]["subject"] == quote_id
    ]


def signed_by_revsync(delivery: dict[str, Any]) -> None:
    """The subscriber's own check: the signature covers the body exactly as sent."""
    SCHEME.verify([EVENT_SECRET], delivery["signature"], dumps_json(delivery["event"]))


async def test_a_booked_quote_reaches_the_subscriber_once_as_a_signed_cloudevent(stack: Stack):
    quote_id, status = await book(stack)

    (delivery,) = received(stack, quote_id)
    signed_by_revsync(delivery)
    event = QuoteBookedEvent.model_validate(delivery["event"])
    assert event.id == event_id(f"q2c-{quote_id}", "quote.booked")
    assert event.data.erp_order_id == status.erp_order_id
    assert event.data.amount == status.amount
    assert event.dataschema == (
        f"{stack.settings.gateway_url}/v1/schemas/events/quote.booked.v1.json"
    )
    assert delivery["duplicate"] is False


async def test_a_redelivery_after_a_subscriber_503_carries_the_same_id(stack: Stack):
    # The subscriber takes the first delivery but answers 503: revsync cannot know it arrived.
    stack.sandbox.state.faults.configure(
        _faults({"operation": EVENT_SUBSCRIBER, "status": 503, "phase": "after"})
    )
    quote_id, _ = await book(stack)

    first, second = received(stack, quote_id)
    assert first["event"]["id"] == second["event"]["id"]
    assert first["event"]["id"] == event_id(f"q2c-{quote_id}", "quote.booked")
    assert (first["duplicate"], second["duplicate"]) == (False, True)
    signed_by_revsync(first)
    signed_by_revsync(second)


def _faults(rule: dict[str, Any]) -> Any:
    from sandbox.faults import FaultsRequest

    return FaultsRequest.model_validate({"faults": [{"vendor": "events", **rule}]})
