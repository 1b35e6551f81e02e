"""HubSpot company events (fixtures as HubSpot sends them) as customer changes of the golden
customer ``customer-<company id>``, and the company read the mapping needs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.crm.hubspot import HubSpotCrm
from adapters.crm.hubspot_fields import GOLDEN_PROPERTIES
from adapters.errors import NotFoundError
from adapters.webhooks.customer_changes import RoutingError
from adapters.webhooks.hubspot import HubSpotEvent, parse_events
from adapters.webhooks.hubspot_companies import (
    CompanyEvent,
    change_from_event,
    company_events,
    event_id,
)
from domain.customer import Address
from domain.customer_master import MasterField, System
from domain.money import Money
from sandbox.app import DEFAULT_TOKENS, SandboxState
from sandbox.app import create_app as create_sandbox
from sandbox.hubspot import COMPANY_IDS

FIXTURES = Path(__file__).parent.parent / "fixtures" / "hubspot"
NORD = "31800000002"


def batch() -> tuple[list[HubSpotEvent], list[Any]]:
    body = (FIXTURES / "company_changes_batch.json").read_bytes()
    return parse_events(body), json.loads(body)


def company_read() -> dict[str, Any]:
    """The golden properties of the fixture company, as the adapter returns them."""
    record = json.loads((FIXTURES / "company_get.json").read_text())
    return {name: record["properties"].get(name) for name in GOLDEN_PROPERTIES}


def selected() -> dict[str, CompanyEvent]:
    """The batch's company events keyed by property name (or event type)."""
    events, raw = batch()
    return {
        ce.event.propertyName or ce.event.subscriptionType: ce for ce in company_events(events, raw)
    }


def test_only_company_events_of_golden_properties_creations_and_merges_are_selected() -> None:
    events, raw = batch()
    chosen = company_events(events, raw)
    assert [(c.event.subscriptionType, c.event.propertyName, c.company_id) for c in chosen] == [
        ("company.propertyChange", "name", NORD),
        ("company.propertyChange", "address", NORD),
        ("company.propertyChange", "zip", NORD),
        ("company.propertyChange", "revsync_billing_email", "31800000003"),
        ("company.propertyChange", "revsync_credit_limit", "31800000003"),
        ("company.creation", None, "31800000042"),
        ("company.merge", None, "31800000003"),
    ]  # numberofemployees (no golden field) and the deal event are left out
    merge = chosen[-1]
    assert merge.merged_ids == ("31800000042",)
    assert [c.needs_read for c in chosen] == [False, True, True, False, True, True, True]


def test_a_name_change_is_mapped_from_the_event_alone() -> None:
    name = selected()["name"]
    routed = change_from_event(name)
    assert routed is not None
    assert routed.golden_id == NORD
    change = routed.event
    assert (change.source, change.record_id) == (System.CRM, NORD)
    assert change.changes == {MasterField.NAME: "Nordlicht Logistik Gruppe"}
    # occurredAt (ms) is the version the golden record orders changes by
    assert change.version.modified_at == datetime(2025, 2, 20, 11, 30, 5, 118000, tzinfo=UTC)
    assert change.event_id == f"hubspot-62515-{NORD}-1740051005118-2114862079-name"


def test_an_address_part_takes_the_other_parts_from_the_read_and_its_own_from_the_event() -> None:
    read = company_read() | {"address": "Speicherstadt 12"}  # the read lags behind the event
    routed = change_from_event(selected()["address"], read)
    assert routed is not None
    assert routed.event.changes == {
        MasterField.BILLING_ADDRESS: Address(
            line1="Am Sandtorkai 50",
            line2=None,
            city="Hamburg",
            region=None,
            postal_code="20457",
            country="DE",
        )
    }


def test_a_credit_limit_takes_its_currency_from_the_read() -> None:
    routed = change_from_event(selected()["revsync_credit_limit"], company_read())
    assert routed is not None
    assert routed.golden_id == "31800000003"
    assert routed.event.changes == {
        MasterField.CREDIT_LIMIT: Money(amount=Decimal(50000), currency="EUR")
    }


def test_a_creation_or_a_merge_starts_the_record_with_the_fields_the_crm_owns() -> None:
    read = company_read()
    for kind in ("company.creation", "company.merge"):
        routed = change_from_event(selected()[kind], read)
        assert routed is not None
        # the e-mail, tax id, address... a rep typed are other systems' fields: not sent
        assert routed.event.changes == {
            MasterField.NAME: "Nordlicht Logistik Gruppe",
            MasterField.OWNER: "73125491",
            MasterField.WEBSITE: "https://nordlicht.example",
        }
    assert selected()["company.merge"].company_id == "31800000003"


def test_a_redelivery_has_the_same_event_id_and_another_change_another() -> None:
    name = selected()["name"].event
    again = name.model_copy(update={"attemptNumber": 3})
    assert event_id(again) == event_id(name)
    # HubSpot does not promise eventId is unique: the object and property tell changes apart
    other = name.model_copy(update={"objectId": 31800000003})
    assert event_id(other) != event_id(name)
    later = name.model_copy(update={"occurredAt": name.occurredAt + 1})
    assert event_id(later) != event_id(name)


def test_a_cleared_property_clears_the_field_but_a_blank_name_is_refused() -> None:
    name = selected()["name"]
    website = CompanyEvent(
        event=name.event.model_copy(update={"propertyName": "website", "propertyValue": ""}),
        company_id=NORD,
    )
    routed = change_from_event(website)
    assert routed is not None
    assert routed.event.changes == {MasterField.WEBSITE: None}

    blank = CompanyEvent(
        event=name.event.model_copy(update={"propertyValue": "  "}), company_id=NORD
    )
    with pytest.raises(RoutingError) as refused:
        change_from_event(blank)
    assert refused.value.fields
    assert "name" in refused.value.fields[0]["message"]


def test_an_invalid_email_is_refused_with_the_field_named() -> None:
    email = selected()["revsync_billing_email"]
    bad = CompanyEvent(
        event=email.event.model_copy(update={"propertyValue": "not an e-mail"}),
        company_id=email.company_id,
    )
    with pytest.raises(RoutingError) as refused:
        change_from_event(bad)
    assert "email" in refused.value.fields[0]["message"]


def test_a_merge_without_merge_fields_keeps_the_event_object() -> None:
    events, raw = batch()
    merge_index = next(i for i, e in enumerate(events) if e.subscriptionType == "company.merge")
    stripped = [dict(r) for r in raw]
    for key in ("primaryObjectId", "mergedObjectIds", "newObjectId"):
        stripped[merge_index].pop(key)
    (merge,) = [
        c for c in company_events(events, stripped) if c.event.subscriptionType == "company.merge"
    ]
    assert (merge.company_id, merge.merged_ids) == ("31800000003", ())


@pytest.fixture
async def crm() -> AsyncIterator[HubSpotCrm]:
    transport = httpx.ASGITransport(app=create_sandbox(SandboxState()))
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as http:
        yield HubSpotCrm(
            http, base_url="http://sandbox/hubspot", access_token=DEFAULT_TOKENS["hubspot"]
        )


async def test_the_company_read_answers_every_golden_property(crm: HubSpotCrm) -> None:
    nord = COMPANY_IDS["0015e00000NordDE1"]
    properties = await crm.company_properties(nord)
    assert set(properties) == set(GOLDEN_PROPERTIES)
    assert properties["name"] == "Nordlicht Logistik"
    assert (properties["address"], properties["city"], properties["country"]) == (
        "Speicherstadt 12",
        "Hamburg",
        "DE",
    )
    assert properties["website"] is None  # unset: HubSpot answers null
    with pytest.raises(NotFoundError):
        await crm.company_properties("31899999999")
