"""Business events against the sandbox subscriber, in process: a fresh sandbox a test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from domain.event_contracts import EventSubscriber
from domain.events import QuoteBooked, event_for
from sandbox.app import SandboxState, create_app

SECRETS = {"finance": "whsec_finance-secret", "data": "whsec_data-secret"}
BASE = "http://sandbox"


def subscriber(name: str, types: list[str] | None = None, **changes: Any) -> EventSubscriber:
    fields: dict[str, Any] = {
        "name": name,
        "url": f"{BASE}/events/{name}",
        "secret": SECRETS.get(name, "whsec_unknown"),
    }
    if types is not None:
        fields["types"] = types
    return EventSubscriber.model_validate(fields | changes)


def booked_event(quote_id: str = "Q-1001") -> dict[str, Any]:
    """A quote.booked CloudEvent as workflows hand it to events.publish (relative schema)."""
    data = QuoteBooked(
        quote_id=quote_id,
        account_id="0015e00000AcmeUS1",
        amount=Decimal("12000.00"),
        currency="USD",
        erp_customer_id="C1",
        erp_order_id="SO1001",
        billing_customer_id="cus_1",
        subscription_id="sub_1",
    )
    event = event_for(
        data,
        workflow_id=f"q2c-{quote_id}",
        time=datetime(2026, 11, 2, 9, 30, tzinfo=UTC),
        schema_base="/v1/schemas",
    )
    return event.model_dump(mode="json", serialize_as_any=True)


@pytest.fixture
def state() -> SandboxState:
    return SandboxState(event_secrets=SECRETS)


@pytest.fixture
async def http(state: SandboxState) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(state))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client


async def inject(http: httpx.AsyncClient, **rule: Any) -> None:
    response = await http.post("/_sandbox/faults", json={"faults": [{"vendor": "events", **rule}]})
    response.raise_for_status()
