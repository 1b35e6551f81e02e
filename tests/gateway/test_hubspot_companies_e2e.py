"""HubSpot company changes reach the customer master, end to end: signed HubSpot batches →
the gateway over real HTTP (REVSYNC_CRM=hubspot) → a real Temporal dev server and every
worker → the sandbox's HubSpot, Stripe and NetSuite.

A company rename in HubSpot becomes golden and is written to billing and ERP; a redelivered
batch is a duplicate; an address (ERP owns it) is held for a data steward, and written to
the ERP once accepted; an older rename arriving late changes nothing; a batch mixing a
closed-won deal and a company change answers both; a failed company read asks HubSpot to
deliver again; an invalid value is 422 until the last attempt, then acknowledged; a golden
value revsync propagates to HubSpot comes back from HubSpot (the emulator renders the webhook
as HubSpot does: made by the app) and is not taken for a change: no ping-pong."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from adapters.webhooks import hubspot as signatures
from adapters.webhooks import stripe
from domain.customer import Address
from domain.customer_master import MasterField, MasterState, System, master_workflow_id
from revsync.customer_master import customer_status
from revsync.gateway.hubspot_trigger import MAX_MAPPING_ATTEMPTS
from revsync.gateway.versioning import DealsAccepted, EventsReceived
from revsync.settings import secret_list
from sandbox.hubspot import COMPANY_IDS, SANDBOX_APP_ID, create_deal
from tests.customer_master.test_e2e import customer_updated, link_customer
from tests.e2e.stack import Stack, running_stack
from tests.staff import token_of
from workflows import visibility

pytestmark = pytest.mark.e2e

NORD = COMPANY_IDS["0015e00000NordDE1"]
THAM = COMPANY_IDS["0015e00000ThamGB1"]
SAKU = COMPANY_IDS["0015e00000SakuJP1"]
MAPLE = COMPANY_IDS["0015e00000MapleCA"]
ACME = COMPANY_IDS["0015e00000AcmeUS1"]
PORTAL = 62515

_event_ids = itertools.count(2_114_900_000)


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    # The gateway knows the app revsync writes to HubSpot through (the sandbox's app).
    async with running_stack(
        vendors={"crm": "hubspot", "hubspot_app_id": SANDBOX_APP_ID}
    ) as running:
        yield running


def company_change(
    company_id: str, name: str, value: str, *, occurred_at: int | None = None, **extra: Any
) -> dict[str, Any]:
    """A ``company.propertyChange`` event as HubSpot sends it."""
    return {
        "eventId": next(_event_ids),
        "subscriptionId": 2840520,
        "portalId": PORTAL,
        "appId": 1160452,
        "occurredAt": occurred_at or int(time.time() * 1000),
        "subscriptionType": "company.propertyChange",
        "attemptNumber": 0,
        "objectId": int(company_id),
        "propertyName": name,
        "propertyValue": value,
        "changeSource": "CRM_UI",
        "sourceId": "userId:73125491",
        **extra,
    }


async def deliver(stack: Stack, events: list[dict[str, Any]]) -> httpx.Response:
    body = json.dumps(events).encode()
    stamp = int(time.time() * 1000)
    secret = secret_list(stack.settings.hubspot_client_secret)[0]
    url = f"{stack.gateway_url}/v1/webhooks/hubspot"
    return await stack.gateway.post(
        "/v1/webhooks/hubspot",
        content=body,
        headers={
            "content-type": "application/json",
            signatures.SIGNATURE_HEADER: signatures.sign(
                secret, method="POST", url=url, body=body, timestamp_ms=stamp
            ),
            signatures.TIMESTAMP_HEADER: str(stamp),
        },
    )


async def edit_company(stack: Stack, company_id: str, **properties: str) -> None:
    """What a rep does in HubSpot before HubSpot sends the events (an edit in HubSpot's UI)."""
    async with httpx.AsyncClient() as http:
        answer = await http.patch(
            f"{stack.sandbox.url}/_sandbox/hubspot/objects/companies/{company_id}",
            json={"properties": properties, "userId": 73125491},
        )
    answer.raise_for_status()


async def hubspot_sends(stack: Stack, company_id: str, after: int) -> httpx.Response:
    """HubSpot's webhook delivery of the company's changes since ``after`` (the emulator's
    journal position), rendered and signed by the emulator and posted to the gateway."""
    url = f"{stack.gateway_url}/v1/webhooks/hubspot"
    secret = secret_list(stack.settings.hubspot_client_secret)[0]
    async with httpx.AsyncClient() as http:
        rendered = await http.post(
            f"{stack.sandbox.url}/_sandbox/hubspot/webhooks/render",
            json={"url": url, "client_secret": secret, "after": after, "object_id": company_id},
        )
    rendered.raise_for_status()
    delivery = rendered.json()
    assert delivery["events"] > 0, "HubSpot has nothing to send"
    return await stack.gateway.post(
        "/v1/webhooks/hubspot", content=delivery["body"].encode(), headers=delivery["headers"]
    )


async def propagated(stack: Stack, golden_id: str, systems: set[System]) -> Any:
    """The golden customer's status once its propagations to ``systems`` are done
    (polled; bounded by the number of tries)."""
    for _ in range(300):
        status = await customer_status(stack.client, golden_id)
        if {r.system for r in status.recent if r.status == "done"} >= systems:
            return status
        await asyncio.sleep(0.1)
    raise AssertionError(f"never propagated to {systems}")


async def journal_position(stack: Stack) -> int:
    async with httpx.AsyncClient() as http:
        answer = await http.get(f"{stack.sandbox.url}/_sandbox/hubspot/webhooks")
    position: int = answer.json()["next"]
    return position


async def until(check: Callable[[], bool], what: str, tries: int = 300) -> None:
    """Polled; bounded by the number of tries."""
    for _ in range(tries):
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never happened: {what}")


def billing_street(erp_customer: dict[str, Any]) -> str | None:
    """Line 1 of the NetSuite customer's default billing address."""
    return next((a["addr1"] for a in erp_customer["addressBook"] if a["defaultBilling"]), None)


def by_event(answer: httpx.Response) -> dict[str, dict[str, Any]]:
    customers: list[dict[str, Any]] = answer.json()["customers"]
    return {c["event_id"]: c for c in customers}


def key(event: dict[str, Any]) -> str:
    """The event id revsync dedupes a HubSpot event by."""
    what = event["propertyName"] or event["subscriptionType"]
    return (
        f"hubspot-{event['portalId']}-{event['objectId']}-{event['occurredAt']}-"
        f"{event['eventId']}-{what}"
    )


async def test_a_rename_reaches_billing_and_erp_and_an_address_waits_for_a_steward(
    stack: Stack,
) -> None:
    billing_id, erp_id = await link_customer(stack, NORD)
    await edit_company(stack, NORD, name="Nordlicht Logistik Gruppe", address="Am Sandtorkai 50")
    now = int(time.time() * 1000)
    rename = company_change(NORD, "name", "Nordlicht Logistik Gruppe", occurred_at=now)
    street = company_change(NORD, "address", "Am Sandtorkai 50", occurred_at=now)
    employees = company_change(NORD, "numberofemployees", "240", occurred_at=now)
    batch = [rename, street, employees]

    answer = await deliver(stack, batch)
    assert answer.status_code == 200, answer.text
    received = EventsReceived.model_validate(answer.json())  # the published 200 answer
    assert (received.status, received.events) == ("received", 3)
    assert received.customers is not None
    assert [c.status for c in received.customers] == ["applied", "applied"]
    outcomes = by_event(answer)
    assert set(outcomes) == {key(rename), key(street)}  # numberofemployees is no golden field
    assert outcomes[key(rename)] == {
        "status": "applied",
        "golden_id": NORD,
        "workflow_id": master_workflow_id(NORD),
        "event_id": key(rename),
        "verdicts": {"name": "applied"},
        "reviews": 0,
        "propagating_to": ["billing", "erp"],
        "state": "ACTIVE",
    }
    # the address is the ERP's: HubSpot's is a proposal for a data steward
    assert outcomes[key(street)]["verdicts"] == {"billing_address": "not_owner_review"}
    assert outcomes[key(street)]["reviews"] == 1
    assert outcomes[key(street)]["state"] == "NEEDS_REVIEW"

    state = stack.sandbox.state
    await until(
        lambda: (
            state.stripe.customers[billing_id].get("description") == "Nordlicht Logistik Gruppe"
            and state.netsuite.customers[erp_id]["companyName"] == "Nordlicht Logistik Gruppe"
        ),
        "the new name in billing and ERP",
    )
    status = await customer_status(stack.client, NORD)
    assert status.record.fields[MasterField.NAME].value == "Nordlicht Logistik Gruppe"
    assert status.record.fields[MasterField.NAME].source is System.CRM
    assert status.record.xref == {"crm": (NORD,), "billing": (billing_id,), "erp": (erp_id,)}
    (review,) = status.open_reviews
    assert (review.field, review.system) == (MasterField.BILLING_ADDRESS, System.CRM)
    assert isinstance(review.proposed, Address)
    assert (review.proposed.line1, review.proposed.city) == ("Am Sandtorkai 50", "Hamburg")
    assert billing_street(state.netsuite.customers[erp_id]) == "Speicherstadt 12"

    # HubSpot delivers the batch again (a retry): duplicates, nothing changes
    again = await deliver(stack, [{**e, "attemptNumber": 1} for e in batch])
    assert again.status_code == 200, again.text
    assert {e: o["status"] for e, o in by_event(again).items()} == {
        key(rename): "duplicate",
        key(street): "duplicate",
    }

    # an older rename delivered late does not overwrite the newer one
    older = company_change(NORD, "name", "Nordlicht Logistik", occurred_at=now - 60_000)
    late = await deliver(stack, [older])
    assert late.status_code == 200, late.text
    assert by_event(late)[key(older)]["verdicts"] == {"name": "stale"}
    status = await customer_status(stack.client, NORD)
    assert status.record.fields[MasterField.NAME].value == "Nordlicht Logistik Gruppe"

    # the steward accepts HubSpot's address: it is written to the ERP, its owner
    accepted = await stack.gateway.post(
        f"/v1/ops/customers/{NORD}/review",
        json={"field": "billing_address", "system": "crm", "action": "accept", "note": "moved"},
        headers={"Authorization": f"Bearer {token_of('Dana Steward')}"},
    )
    assert accepted.status_code == 200, accepted.text
    await until(
        lambda: billing_street(state.netsuite.customers[erp_id]) == "Am Sandtorkai 50",
        "the accepted address in the ERP",
    )


async def test_a_non_owner_field_the_table_ignores_is_not_sent_anywhere(stack: Stack) -> None:
    _, erp_id = await link_customer(stack, SAKU)
    erp_before = dict(stack.sandbox.state.netsuite.customers[erp_id])
    limit = company_change(SAKU, "revsync_credit_limit", "99000")
    await edit_company(
        stack, SAKU, revsync_credit_limit="99000", revsync_credit_limit_currency="JPY"
    )
    answer = await deliver(stack, [limit])
    assert answer.status_code == 200, answer.text
    (outcome,) = answer.json()["customers"]
    # credit control sets the limit in the ERP; HubSpot's copy is read only
    assert outcome["verdicts"] == {"credit_limit": "not_owner_ignored"}
    assert outcome["propagating_to"] == []
    status = await customer_status(stack.client, SAKU)
    assert MasterField.CREDIT_LIMIT not in status.record.fields
    assert status.state is MasterState.ACTIVE
    assert (status.queued, status.recent) == ([], [])
    assert stack.sandbox.state.netsuite.customers[erp_id] == erp_before


async def test_a_batch_with_a_closed_won_deal_and_a_company_change_answers_both(
    stack: Stack,
) -> None:
    settings = stack.settings
    async with httpx.AsyncClient() as http:
        deal_id = await create_deal(
            http,
            settings.hubspot_base_url,
            settings.hubspot_access_token.get_secret_value(),
            THAM,
            currency="GBP",
            lines=[("PLAT-CORE", "10", "0")],
        )
    closed_won = {
        **company_change(THAM, "dealstage", "closedwon"),
        "subscriptionType": "deal.propertyChange",
        "objectId": int(deal_id),
    }
    website = company_change(THAM, "website", "https://thames-analytics.example")
    answer = await deliver(stack, [closed_won, website])
    assert answer.status_code == 202, answer.text
    accepted = DealsAccepted.model_validate(answer.json())  # the published 202 answer
    assert accepted.customers is not None and accepted.customers[0].golden_id == THAM
    assert answer.json()["deals"] == [
        {
            "deal_id": deal_id,
            "status": "started",
            "workflow_id": visibility.workflow_id_for_quote(deal_id),
        }
    ]
    (customer,) = answer.json()["customers"]
    assert (customer["golden_id"], customer["verdicts"]) == (THAM, {"website": "applied"})


async def test_a_failed_company_read_asks_hubspot_to_deliver_again(stack: Stack) -> None:
    await edit_company(stack, MAPLE, city="Ottawa")
    city = company_change(MAPLE, "city", "Ottawa")
    rename = company_change(MAPLE, "name", "Maple Health Group")
    faults = {"faults": [{"vendor": "hubspot", "operation": "get", "status": 502}]}
    async with httpx.AsyncClient() as http:
        armed = await http.post(f"{stack.sandbox.url}/_sandbox/faults", json=faults)
    assert armed.status_code == 200, armed.text

    answer = await deliver(stack, [city, rename])
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"]
    outcomes = by_event(answer)
    assert outcomes[key(city)]["status"] == "unavailable"
    assert outcomes[key(rename)]["status"] == "applied"  # needs no read: delivered already

    retried = await deliver(stack, [{**e, "attemptNumber": 1} for e in (city, rename)])
    assert retried.status_code == 200, retried.text
    outcomes = by_event(retried)
    assert outcomes[key(city)]["verdicts"] == {"billing_address": "not_owner_review"}
    assert outcomes[key(rename)]["status"] == "duplicate"


async def test_an_invalid_value_is_422_until_the_last_attempt(stack: Stack) -> None:
    email = company_change(THAM, "revsync_billing_email", "not an e-mail")
    refused = await deliver(stack, [email])
    assert refused.status_code == 422, refused.text
    (field,) = refused.json()["fields"]
    assert field["field"].startswith(f"companies.{THAM}.")
    assert "email" in field["message"]

    last = await deliver(stack, [{**email, "attemptNumber": MAX_MAPPING_ATTEMPTS - 1}])
    assert last.status_code == 200, last.text
    (outcome,) = last.json()["customers"]
    assert outcome["status"] == "unmappable"
    assert outcome["fields"] == [field]


async def test_a_golden_value_propagated_to_hubspot_does_not_come_back_as_a_change(
    stack: Stack,
) -> None:
    billing_id, _ = await link_customer(stack, ACME)
    before = await journal_position(stack)
    # billing owns the invoice e-mail: the customer changes it in the billing portal
    stripe_key = stack.settings.stripe_api_key.get_secret_value()
    async with httpx.AsyncClient() as http:
        updated = await http.post(
            f"{stack.settings.stripe_base_url}/v1/customers/{billing_id}",
            data={"email": "invoices@acme-robotics.example"},
            headers={"Authorization": f"Bearer {stripe_key}"},
        )
    event = customer_updated(updated.json(), {"email": "ap@acme-robotics.example"})
    body = json.dumps(event).encode()
    stripe_secret = secret_list(stack.settings.stripe_webhook_secret)[0]
    applied = await stack.gateway.post(
        "/v1/webhooks/stripe/customers",
        content=body,
        headers={
            "content-type": "application/json",
            stripe.SIGNATURE_HEADER: stripe.sign(stripe_secret, body),
        },
    )
    assert applied.status_code == 200, applied.text
    assert applied.json()["propagating_to"] == ["crm", "erp"]
    companies = stack.sandbox.state.hubspot.records["companies"]
    await until(
        lambda: (
            companies[ACME]["properties"]["revsync_billing_email"]
            == "invoices@acme-robotics.example"
        ),
        "the e-mail propagated to the HubSpot company",
    )
    await until(
        lambda: bool(stack.sandbox.state.hubspot.webhook_events[before:]), "HubSpot's event"
    )
    settled = await propagated(stack, ACME, {System.CRM, System.ERP})

    # HubSpot sends the change revsync made, as made by the app: acknowledged, nothing more
    echo = await hubspot_sends(stack, ACME, before)
    assert echo.status_code == 200, echo.text
    assert echo.json() == {"status": "received", "events": 1}
    status = await customer_status(stack.client, ACME)
    assert status.events_applied == settled.events_applied
    assert (status.state, status.open_reviews) == (MasterState.ACTIVE, ())
    assert status.record.fields[MasterField.EMAIL].source is System.BILLING
    assert len(status.recent) == len(settled.recent)  # nothing propagated again

    # a rep's edit in HubSpot, sent the same way, is a change from the CRM
    after_echo = await journal_position(stack)
    await edit_company(stack, ACME, website="https://acme-robotics.example")
    edit = await hubspot_sends(stack, ACME, after_echo)
    assert edit.status_code == 200, edit.text
    (outcome,) = edit.json()["customers"]
    assert (outcome["status"], outcome["verdicts"]) == ("applied", {"website": "applied"})
