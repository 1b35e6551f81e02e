"""HubSpot company events at the gateway without the full stack: with another CRM they are
only acknowledged (a real dev server shows no golden customer started), and how one batch's
deal and company outcomes make one answer."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi.responses import JSONResponse
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from adapters.webhooks import hubspot as signatures
from domain.customer_master import master_workflow_id
from revsync.gateway.app import create_app
from revsync.gateway.hubspot_trigger import CompanyChanges, batch_answer
from revsync.gateway.refusals import Refused
from revsync.settings import Settings
from sandbox.app import SandboxState
from sandbox.app import create_app as create_sandbox
from sandbox.hubspot import COMPANY_IDS
from tests.conftest import installed_binary
from tests.staff import secret_settings
from workflows import visibility

SECRET = "hubspot-app-secret"
URL = "http://gw/v1/webhooks/hubspot"
ACME = COMPANY_IDS["0015e00000AcmeUS1"]


@pytest.fixture(scope="module")
async def temporal() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=installed_binary("temporal"),
        search_attributes=list(visibility.ALL_KEYS),
        dev_server_extra_args=["--headless"],
    )
    try:
        yield env
    finally:
        await env.shutdown()


def company_change(name: str, value: str) -> dict[str, Any]:
    return {
        "eventId": 2114862079,
        "subscriptionId": 2840520,
        "portalId": 62515,
        "appId": 1160452,
        "occurredAt": int(time.time() * 1000),
        "subscriptionType": "company.propertyChange",
        "attemptNumber": 0,
        "objectId": int(ACME),
        "propertyName": name,
        "propertyValue": value,
        "changeSource": "CRM_UI",
    }


async def test_with_another_crm_company_changes_are_only_acknowledged(
    temporal: WorkflowEnvironment,
) -> None:
    settings = Settings(**(secret_settings() | {"hubspot_client_secret": SECRET}))
    assert settings.crm == "salesforce"
    sandbox = httpx.ASGITransport(app=create_sandbox(SandboxState()))
    async with httpx.AsyncClient(transport=sandbox, base_url="http://sandbox") as vendors:
        app = create_app(settings, temporal.client, http=vendors)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as gateway:
                body = json.dumps([company_change("name", "Acme Robotics Group")]).encode()
                stamp = int(time.time() * 1000)
                answer = await gateway.post(
                    "/v1/webhooks/hubspot",
                    content=body,
                    headers={
                        "content-type": "application/json",
                        signatures.SIGNATURE_HEADER: signatures.sign(
                            SECRET, method="POST", url=URL, body=body, timestamp_ms=stamp
                        ),
                        signatures.TIMESTAMP_HEADER: str(stamp),
                    },
                )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": "received", "events": 1}
    handle = temporal.client.get_workflow_handle(master_workflow_id(ACME))
    with pytest.raises(RPCError) as missing:
        await handle.describe()
    assert missing.value.status == RPCStatusCode.NOT_FOUND


APPLIED = {"status": "applied", "golden_id": ACME, "event_id": "hubspot-1", "verdicts": {}}
DEALS = {
    "status": "started",
    "events": 2,
    "deals": [{"deal_id": "52000000001", "status": "started", "workflow_id": "q2c-52000000001"}],
}


def test_a_started_deal_and_an_applied_change_answer_202_with_both() -> None:
    answer = batch_answer(
        JSONResponse(DEALS, status_code=202), None, CompanyChanges(customers=[APPLIED]), 2
    )
    assert answer.status_code == 202
    assert json.loads(bytes(answer.body)) == {**DEALS, "customers": [APPLIED]}


def test_a_company_read_to_retry_makes_the_batch_503_whatever_the_deals_did() -> None:
    unavailable = {"golden_id": ACME, "event_id": "hubspot-2", "status": "unavailable"}
    answer = batch_answer(
        JSONResponse(DEALS, status_code=202),
        None,
        CompanyChanges(customers=[APPLIED, unavailable], retry=True),
        2,
    )
    assert answer.status_code == 503
    assert answer.headers["Retry-After"]
    body = json.loads(bytes(answer.body))
    assert (body["deals"], body["customers"]) == (DEALS["deals"], [APPLIED, unavailable])


def test_invalid_deal_and_company_fields_are_one_422() -> None:
    deal_field = {"field": "deals.1.line_items.0.properties.hs_sku", "message": "missing"}
    company_field = {"field": f"companies.{ACME}.changes", "message": "email: ..."}
    with pytest.raises(Refused) as refused:
        batch_answer(
            None,
            Refused(422, "invalid deal", fields=[deal_field]),
            CompanyChanges(invalid=[company_field]),
            2,
        )
    assert refused.value.status == 422
    assert refused.value.extra["fields"] == [deal_field, company_field]
    with pytest.raises(Refused) as companies_only:
        batch_answer(None, None, CompanyChanges(invalid=[company_field]), 1)
    assert companies_only.value.reason == "invalid company change"


def test_without_deals_the_answer_is_received_with_the_customers() -> None:
    answer = batch_answer(None, None, CompanyChanges(customers=[APPLIED]), 1)
    assert answer.status_code == 200
    assert json.loads(bytes(answer.body)) == {
        "status": "received",
        "events": 1,
        "customers": [APPLIED],
    }
