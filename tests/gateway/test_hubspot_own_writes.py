"""HubSpot sends revsync's own writes back as property changes: a company or deal property
revsync wrote (the customer master's propagation, the order write-back) comes back as a
``company.propertyChange`` with ``changeSource`` ``INTEGRATION`` and ``sourceId`` the app's
id. The gateway acknowledges those (200, HubSpot must not redeliver), counts them and hands
nothing on: the customer master would take its own propagation for a new change from the CRM
and could ping-pong. Everyone else's changes (a user in the CRM, another integration) go on
as before.

In process: the gateway app (httpx.ASGITransport), the sandbox as HubSpot, and a stand-in
for Temporal that records the changes the gateway delivers to golden customers."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from adapters.webhooks import hubspot as signatures
from domain.customer_master import ChangeEvent, FieldVerdict, MasterState
from domain.master_contracts import ChangeResult
from revsync import metrics
from revsync.gateway.app import create_app
from revsync.settings import Settings
from sandbox.app import SandboxState
from sandbox.app import create_app as create_sandbox
from sandbox.hubspot import COMPANY_IDS
from tests.staff import secret_settings

SECRET = "hubspot-app-secret"
URL = "http://gw/v1/webhooks/hubspot"
HUBSPOT = "http://sandbox/hubspot"
APP_ID = 1160452
OTHER_APP_ID = 2931120
_event_ids = itertools.count(3_816_279_340)


class GoldenCustomers:
    """Stands in for temporalio's Client: takes each change a golden customer is sent
    (``apply_change`` with update-with-start) and applies every field."""

    def __init__(self) -> None:
        self.changes: list[ChangeEvent] = []

    async def execute_update_with_start_workflow(
        self, _update: str, event: ChangeEvent, **_: Any
    ) -> ChangeResult:
        self.changes.append(event)
        return ChangeResult(
            golden_id=event.record_id,
            event_id=event.event_id,
            source=event.source,
            duplicate=False,
            verdicts=dict.fromkeys(event.changes, FieldVerdict.APPLIED),
            state=MasterState.ACTIVE,
        )


@pytest.fixture
def temporal() -> GoldenCustomers:
    return GoldenCustomers()


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, str]]]:
    """Every metric the gateway counts: (name, labels)."""
    seen: list[tuple[str, dict[str, str]]] = []
    real = metrics.count

    def count(meter: Any, metric: metrics.Metric, **labels: str) -> None:
        seen.append((metric.name, labels))
        real(meter, metric, **labels)

    monkeypatch.setattr(metrics, "count", count)
    return seen


async def gateway_for(
    temporal: GoldenCustomers, app_id: int | None
) -> AsyncIterator[httpx.AsyncClient]:
    sandbox = httpx.ASGITransport(app=create_sandbox(SandboxState()))
    async with httpx.AsyncClient(transport=sandbox, base_url="http://sandbox") as hubspot:
        settings = Settings(
            **(secret_settings() | {"hubspot_client_secret": SECRET}),
            crm="hubspot",
            hubspot_base_url=HUBSPOT,
            hubspot_app_id=app_id,
        )
        app = create_app(settings, temporal, http=hubspot)  # type: ignore[arg-type]
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
                yield http


@pytest.fixture
async def gateway(temporal: GoldenCustomers) -> AsyncIterator[httpx.AsyncClient]:
    async for http in gateway_for(temporal, APP_ID):
        yield http


def change(company_id: str, name: str, value: str, source: str, source_id: str) -> dict[str, Any]:
    """A ``company.propertyChange`` as HubSpot sends it, made by ``source``/``source_id``."""
    return {
        "eventId": next(_event_ids),
        "subscriptionId": 2840520,
        "portalId": 62515,
        "appId": APP_ID,
        "occurredAt": int(time.time() * 1000),
        "subscriptionType": "company.propertyChange",
        "attemptNumber": 0,
        "objectId": int(company_id),
        "propertyName": name,
        "propertyValue": value,
        "changeSource": source,
        "sourceId": source_id,
    }


def own_write(company_id: str, name: str, value: str) -> dict[str, Any]:
    return change(company_id, name, value, "INTEGRATION", str(APP_ID))


async def deliver(gateway: httpx.AsyncClient, events: list[dict[str, Any]]) -> httpx.Response:
    body = json.dumps(events).encode()
    stamp = int(time.time() * 1000)
    signature = signatures.sign(SECRET, method="POST", url=URL, body=body, timestamp_ms=stamp)
    return await gateway.post(
        "/v1/webhooks/hubspot",
        content=body,
        headers={
            "content-type": "application/json",
            signatures.SIGNATURE_HEADER: signature,
            signatures.TIMESTAMP_HEADER: str(stamp),
        },
    )


async def test_revsyncs_own_write_is_acknowledged_counted_and_goes_nowhere(
    gateway: httpx.AsyncClient,
    temporal: GoldenCustomers,
    counted: list[tuple[str, dict[str, str]]],
) -> None:
    company = COMPANY_IDS["0015e00000AcmeUS1"]
    answer = await deliver(gateway, [own_write(company, "name", "Acme Robotics Group")])

    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": "received", "events": 1}
    assert temporal.changes == []  # no golden customer hears of it
    assert ("revsync_webhook_events_ignored", {"source": "hubspot", "reason": "own_write"}) in (
        counted
    )
    assert (
        "revsync_webhook_deliveries",
        {"source": "hubspot", "outcome": "acknowledged"},
    ) in counted


async def test_a_users_edit_and_another_integrations_write_are_changes(
    gateway: httpx.AsyncClient, temporal: GoldenCustomers
) -> None:
    company = COMPANY_IDS["0015e00000NordDE1"]
    user = change(company, "website", "https://nordlicht.example", "CRM_UI", "userId:73125491")
    other = change(company, "name", "Nordlicht Gruppe", "INTEGRATION", str(OTHER_APP_ID))
    echo = own_write(company, "revsync_billing_email", "ap@nordlicht.example")

    answer = await deliver(gateway, [user, echo, other])

    assert answer.status_code == 200, answer.text
    customers = answer.json()["customers"]
    assert [(c["status"], c["verdicts"]) for c in customers] == [
        ("applied", {"website": "applied"}),
        ("applied", {"name": "applied"}),
    ]
    assert all(str(echo["eventId"]) not in c["event_id"] for c in customers)
    assert [list(c.changes) for c in temporal.changes] == [["website"], ["name"]]


async def test_without_the_app_id_configured_nothing_is_taken_for_an_own_write(
    temporal: GoldenCustomers,
) -> None:
    company = COMPANY_IDS["0015e00000ThamGB1"]
    async for gateway in gateway_for(temporal, None):
        answer = await deliver(gateway, [own_write(company, "name", "Thames Analytics plc")])
        assert answer.status_code == 200, answer.text
        (customer,) = answer.json()["customers"]
        assert customer["verdicts"] == {"name": "applied"}
