"""The HubSpot emulator's webhooks: every change to a company or deal is journalled as the
event HubSpot sends, saying who made it (an app's API write: ``INTEGRATION`` with the app's
id; a user's edit: ``CRM_UI`` with ``userId:<id>``), and a journal slice renders as one signed
delivery the gateway's verification and parsing take."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from adapters.crm.hubspot import HubSpotCrm
from adapters.webhooks import hubspot as webhooks
from domain.customer_master import MasterField
from sandbox.app import DEFAULT_TOKENS, SandboxState, create_app
from sandbox.hubspot import COMPANY_IDS, SANDBOX_APP_ID, SANDBOX_PORTAL_ID

ACME = COMPANY_IDS["0015e00000AcmeUS1"]
NORD = COMPANY_IDS["0015e00000NordDE1"]
URL = "https://revsync.example.com/v1/webhooks/hubspot?portal=62515%3Aeu"
SECRET = "hubspot-app-secret"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(SandboxState()))
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        yield client


@pytest.fixture
def crm(http: httpx.AsyncClient) -> HubSpotCrm:
    return HubSpotCrm(
        http, base_url="http://sandbox/hubspot", access_token=DEFAULT_TOKENS["hubspot"]
    )


async def journal(http: httpx.AsyncClient, after: int = 0) -> list[dict[str, Any]]:
    answer = await http.get("/_sandbox/hubspot/webhooks", params={"after": after})
    assert answer.status_code == 200, answer.text
    events: list[dict[str, Any]] = answer.json()["events"]
    return events


async def user_edit(http: httpx.AsyncClient, company_id: str, **properties: str) -> None:
    answer = await http.patch(
        f"/_sandbox/hubspot/objects/companies/{company_id}",
        json={"properties": properties, "userId": 73125491},
    )
    assert answer.status_code == 200, answer.text


async def test_revsyncs_api_write_is_an_integration_change_by_the_app(
    crm: HubSpotCrm, http: httpx.AsyncClient
) -> None:
    await crm.update_account_fields(
        ACME, {MasterField.NAME: "Acme Robotics Group", MasterField.WEBSITE: None}, "key-1"
    )

    (event,) = await journal(http)  # the website was empty already: no change, no event
    assert event == {
        "eventId": event["eventId"],
        "subscriptionId": event["subscriptionId"],
        "portalId": SANDBOX_PORTAL_ID,
        "appId": SANDBOX_APP_ID,
        "occurredAt": event["occurredAt"],
        "subscriptionType": "company.propertyChange",
        "attemptNumber": 0,
        "objectId": int(ACME),
        "propertyName": "name",
        "propertyValue": "Acme Robotics Group",
        "changeSource": "INTEGRATION",
        "sourceId": str(SANDBOX_APP_ID),
    }
    # the same values written again change nothing: HubSpot has nothing to report
    await crm.update_account_fields(ACME, {MasterField.NAME: "Acme Robotics Group"}, "key-2")
    assert len(await journal(http)) == 1


async def test_a_users_edit_is_a_crm_ui_change_by_the_user(http: httpx.AsyncClient) -> None:
    await user_edit(http, NORD, city="Bremen", zip="28195")

    events = await journal(http)
    assert [(e["propertyName"], e["propertyValue"]) for e in events] == [
        ("city", "Bremen"),
        ("zip", "28195"),
    ]
    assert {(e["changeSource"], e["sourceId"]) for e in events} == {("CRM_UI", "userId:73125491")}


async def test_a_user_edit_is_refused_as_the_api_refuses_it(http: httpx.AsyncClient) -> None:
    answer = await http.patch(
        f"/_sandbox/hubspot/objects/companies/{NORD}",
        json={"properties": {"no_such_property": "x"}},
    )
    assert answer.status_code == 400
    assert answer.json()["category"] == "VALIDATION_ERROR"
    assert await journal(http) == []


async def test_a_created_deal_is_a_creation_event(http: httpx.AsyncClient) -> None:
    answer = await http.post(
        "/hubspot/crm/v3/objects/deals",
        json={"properties": {"dealname": "New deal", "dealstage": "qualifiedtobuy"}},
        headers={"Authorization": f"Bearer {DEFAULT_TOKENS['hubspot']}"},
    )
    assert answer.status_code == 201, answer.text
    (event,) = await journal(http)
    assert event["subscriptionType"] == "deal.creation"
    assert event["changeFlag"] == "CREATED"
    assert event["objectId"] == int(answer.json()["id"])
    assert "propertyName" not in event


async def test_a_rendered_delivery_is_signed_as_hubspot_signs_it(
    crm: HubSpotCrm, http: httpx.AsyncClient
) -> None:
    await crm.update_account_fields(ACME, {MasterField.NAME: "Acme Robotics Group"}, "key-1")
    await user_edit(http, NORD, website="https://nordlicht.example")
    await user_edit(http, ACME, website="https://acme-robotics.example")

    answer = await http.post(
        "/_sandbox/hubspot/webhooks/render",
        json={"url": URL, "client_secret": SECRET, "object_id": ACME},
    )
    assert answer.status_code == 200, answer.text
    delivery = answer.json()
    assert (delivery["events"], delivery["next"]) == (2, 3)
    body = delivery["body"].encode()
    headers = delivery["headers"]
    webhooks.verify(
        [SECRET],
        method="POST",
        url=URL,
        body=body,
        signature=headers[webhooks.SIGNATURE_HEADER],
        timestamp=headers[webhooks.TIMESTAMP_HEADER],
    )
    with pytest.raises(webhooks.SignatureError):  # another URL: another signature
        webhooks.verify(
            [SECRET],
            method="POST",
            url=URL.replace("62515", "62516"),
            body=body,
            signature=headers[webhooks.SIGNATURE_HEADER],
            timestamp=headers[webhooks.TIMESTAMP_HEADER],
        )
    events = webhooks.parse_events(body)
    assert [e.objectId for e in events] == [int(ACME), int(ACME)]
    assert [webhooks.is_own_write(e, SANDBOX_APP_ID) for e in events] == [True, False]
    assert json.loads(body)[1]["sourceId"] == "userId:73125491"

    rest = await http.post(
        "/_sandbox/hubspot/webhooks/render",
        json={"url": URL, "client_secret": SECRET, "after": delivery["next"]},
    )
    assert rest.json() == {"events": 0, "next": 3}
