"""The Salesforce CPQ trigger end to end in process: Outbound Messages on ``SBQQ__Quote__c``
posted to the gateway, the quotes read from the Salesforce emulator, quote-to-cash started on
a real Temporal dev server (no worker: the saga only has to exist)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from adapters.webhooks.salesforce import ack, parse_outbound_message, sample_outbound_message
from adapters.webhooks.salesforce_cpq import accepted_quote_id
from domain.saga import QuoteToCashInput
from revsync import metrics
from revsync.gateway.app import create_app
from revsync.settings import Settings
from sandbox.app import SandboxState
from sandbox.app import create_app as create_sandbox
from sandbox.salesforce import ORG_ID, CpqLine, seed_cpq_quote
from tests.conftest import installed_binary
from tests.staff import secret_settings
from workflows import visibility

PATH = "/v1/webhooks/salesforce/outbound-message"
ACK = ack()


@pytest.fixture(scope="module")
async def temporal() -> AsyncIterator[Client]:
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=installed_binary("temporal"),
        search_attributes=list(visibility.ALL_KEYS),
    )
    try:
        yield env.client
    finally:
        await env.shutdown()


@dataclass
class Gateway:
    http: httpx.AsyncClient
    sandbox: SandboxState
    # What the gateway counted in revsync_webhook_deliveries: (source, outcome).
    deliveries: list[tuple[str, str]]
    # The paths the gateway called at Salesforce.
    vendor_calls: list[str]

    async def deliver(self, body: bytes) -> httpx.Response:
        return await self.http.post(PATH, content=body, headers={"content-type": "text/xml"})

    def outcomes(self) -> list[str]:
        return [outcome for source, outcome in self.deliveries if source == "salesforce"]


@pytest.fixture
async def gateway(temporal: Client, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Gateway]:
    sandbox = SandboxState()
    counted: list[tuple[str, str]] = []

    def count(_meter: Any, metric: Any, **labels: str) -> None:
        if metric is metrics.WEBHOOK_DELIVERIES:
            counted.append((labels["source"], labels["outcome"]))

    monkeypatch.setattr(metrics, "count", count)
    settings = Settings(
        **secret_settings(),
        salesforce_org_ids=[ORG_ID],
        salesforce_base_url="http://sandbox/salesforce",
    )
    calls: list[str] = []

    async def called(request: httpx.Request) -> None:
        calls.append(request.url.path)

    transport = httpx.ASGITransport(app=create_sandbox(sandbox))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://sandbox", event_hooks={"request": [called]}
    ) as vendors:
        app = create_app(settings, temporal, http=vendors)
        async with app.router.lifespan_context(app):
            gateway_transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=gateway_transport, base_url="http://gw") as http:
                yield Gateway(http, sandbox, counted, calls)


def notification(
    quote_id: str, status: str = "Accepted", primary: str = "true"
) -> tuple[str, str, dict[str, str | None]]:
    fields: dict[str, str | None] = {
        "Id": quote_id,
        "SBQQ__Status__c": status,
        "SBQQ__Primary__c": primary,
    }
    return (f"04l5e{quote_id[5:15]}AAA", "SBQQ__Quote__c", fields)


async def saga_input(client: Client, quote_id: str) -> QuoteToCashInput:
    handle = client.get_workflow_handle(visibility.workflow_id_for_quote(quote_id))
    history = await handle.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    (payload,) = started.input.payloads
    decoded = pydantic_data_converter.payload_converter.from_payloads([payload], [QuoteToCashInput])
    result = decoded[0]
    assert isinstance(result, QuoteToCashInput)
    return result


async def saga_exists(client: Client, quote_id: str) -> bool:
    try:
        await client.get_workflow_handle(visibility.workflow_id_for_quote(quote_id)).describe()
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


async def test_an_accepted_quote_starts_one_saga_with_its_lines(gateway: Gateway, temporal):
    seeded = seed_cpq_quote(
        gateway.sandbox.salesforce,
        account_id="0015e00000NordDE1",
        lines=[CpqLine("PLAT-CORE", Decimal(20), Decimal(10)), CpqLine("ONBOARD-STD")],
    )
    response = await gateway.deliver(seeded["outbound_message"].encode())

    assert response.status_code == 200
    assert response.content == ACK
    quote = (await saga_input(temporal, seeded["quote_id"])).quote
    assert quote.quote_id == seeded["quote_id"]
    assert (quote.account_id, quote.currency) == ("0015e00000NordDE1", "EUR")
    assert [(line.sku, line.unit_price) for line in quote.lines] == [
        ("PLAT-CORE", Decimal("42.00")),
        ("ONBOARD-STD", Decimal("2300.00")),
    ]
    assert [line.line_id for line in quote.lines] == seeded["line_ids"]
    assert gateway.outcomes() == ["started"]


async def test_a_redelivery_starts_nothing_new(gateway: Gateway, temporal):
    seeded = seed_cpq_quote(gateway.sandbox.salesforce)
    body = seeded["outbound_message"].encode()
    answers = [await gateway.deliver(body) for _ in range(3)]
    assert [(a.status_code, a.content) for a in answers] == [(200, ACK)] * 3
    assert gateway.outcomes() == ["started", "duplicate", "duplicate"]
    handle = temporal.get_workflow_handle(visibility.workflow_id_for_quote(seeded["quote_id"]))
    assert (await handle.describe()).id == visibility.workflow_id_for_quote(seeded["quote_id"])


async def test_a_quote_that_is_not_accepted_is_acknowledged_and_ignored(gateway: Gateway, temporal):
    presented = seed_cpq_quote(gateway.sandbox.salesforce, status="Presented")["quote_id"]
    secondary = seed_cpq_quote(gateway.sandbox.salesforce, primary=False)["quote_id"]
    # Accepted when the rule fired, sent back to Draft before the (late) delivery arrived.
    reopened = seed_cpq_quote(gateway.sandbox.salesforce)["quote_id"]
    gateway.sandbox.salesforce.update("SBQQ__Quote__c", reopened, {"SBQQ__Status__c": "Draft"})
    body = sample_outbound_message(
        ORG_ID,
        [
            notification(presented, status="Presented"),
            notification(secondary, primary="false"),
            notification(reopened),
        ],
    )
    response = await gateway.deliver(body)
    assert (response.status_code, response.content) == (200, ACK)
    for quote_id in (presented, secondary, reopened):
        assert not await saga_exists(temporal, quote_id)
    assert gateway.outcomes() == ["acknowledged"] * 3


async def test_a_hundred_notifications_in_one_message_all_start(gateway: Gateway, temporal):
    store = gateway.sandbox.salesforce
    ids = [seed_cpq_quote(store, lines=[CpqLine("PLAT-CORE")])["quote_id"] for _ in range(99)]
    ids.append(ids[0])  # the same quote twice in one message (two field updates)

    response = await gateway.deliver(
        sample_outbound_message(ORG_ID, [notification(quote_id) for quote_id in ids])
    )

    assert (response.status_code, response.content) == (200, ACK)
    assert gateway.outcomes().count("started") == 99
    assert len(gateway.outcomes()) == 99
    # 99 quotes and their lines: one call to Salesforce.
    assert gateway.vendor_calls == ["/salesforce/services/data/v61.0/composite"]
    for quote_id in ids[::20]:
        assert await saga_exists(temporal, quote_id)


async def test_an_unknown_org_is_refused_before_anything_is_read(gateway: Gateway, temporal):
    seeded = seed_cpq_quote(gateway.sandbox.salesforce)
    stranger = seeded["outbound_message"].replace(ORG_ID, "00D5g000004Jx9QEAS").encode()
    response = await gateway.deliver(stranger)
    assert response.status_code == 401
    assert response.json() == {"error": "unknown organization"}
    assert not await saga_exists(temporal, seeded["quote_id"])
    assert gateway.outcomes() == ["refused"]


async def test_a_quote_that_cannot_be_mapped_is_acknowledged_and_counted_refused(
    gateway: Gateway, temporal
):
    store = gateway.sandbox.salesforce
    poison = seed_cpq_quote(store)
    good = seed_cpq_quote(store)
    (first_line, *_) = poison["line_ids"]
    store.update("SBQQ__QuoteLine__c", first_line, {"SBQQ__ChargeType__c": "Usage"})
    body = sample_outbound_message(
        ORG_ID, [notification(poison["quote_id"]), notification(good["quote_id"])]
    )

    response = await gateway.deliver(body)

    # Delivering it again could not change the answer: Ack, so Salesforce does not retry it.
    assert (response.status_code, response.content) == (200, ACK)
    assert not await saga_exists(temporal, poison["quote_id"])
    assert await saga_exists(temporal, good["quote_id"])
    assert sorted(gateway.outcomes()) == ["refused", "started"]


async def test_a_failed_read_answers_503_so_salesforce_delivers_again(gateway: Gateway, temporal):
    seeded = seed_cpq_quote(gateway.sandbox.salesforce)
    body = seeded["outbound_message"].encode()
    await gateway_fault(gateway, operation="composite", status=503)

    response = await gateway.deliver(body)

    assert response.status_code == 503
    assert response.headers["Retry-After"].isdigit()
    assert not await saga_exists(temporal, seeded["quote_id"])
    again = await gateway.deliver(body)  # Salesforce's retry, once it answers again
    assert (again.status_code, again.content) == (200, ACK)
    assert await saga_exists(temporal, seeded["quote_id"])
    assert gateway.outcomes() == ["unavailable", "started"]


async def test_temporal_unavailable_answers_503_without_an_ack(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
):
    seeded = seed_cpq_quote(gateway.sandbox.salesforce)

    async def unavailable(*_args: Any, **_kwargs: Any) -> Any:
        raise RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")

    monkeypatch.setattr(Client, "start_workflow", unavailable)
    response = await gateway.deliver(seeded["outbound_message"].encode())
    assert response.status_code == 503
    assert b"Ack" not in response.content
    assert gateway.outcomes() == ["unavailable"]


async def gateway_fault(gateway: Gateway, **rule: Any) -> None:
    from sandbox.faults import FaultRule, FaultsRequest

    fault = FaultRule(vendor="salesforce", **rule)
    gateway.sandbox.faults.configure(FaultsRequest(faults=[fault]))


def test_the_seeded_quote_comes_with_the_outbound_message_its_org_posts():
    state = SandboxState()
    seeded = seed_cpq_quote(state.salesforce)
    message = parse_outbound_message(seeded["outbound_message"].encode())
    assert message.organization_id == ORG_ID
    (note,) = message.notifications
    assert accepted_quote_id(note) == seeded["quote_id"]
