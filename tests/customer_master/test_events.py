"""The customer master publishes ``customer.updated`` (time-skipping server, fake systems and
a fake ``events.publish``): one event per applied change, with a stable id; nothing for a
duplicate, stale, unchanged or non-owner change; a run continues as new only once its
events are delivered."""

from __future__ import annotations

from typing import Any

from temporalio.testing import WorkflowEnvironment

from domain.contracts import Activity
from domain.customer_master import MasterField, MasterState, System, master_workflow_id
from domain.events import CustomerUpdatedEvent, event_id
from domain.master_contracts import MasterPolicy
from tests.customer_master.fakes import (
    FakeMasterSystems,
    change,
    deliver,
    golden_id,
    running_workers,
)
from tests.customer_master.test_workflow import settled, until
from tests.workflows.fakes import transient


def customer_events(fakes: FakeMasterSystems) -> list[dict[str, Any]]:
    return [e for e in fakes.published if e["type"] == "com.revsync.customer.updated.v1"]


async def test_an_applied_change_publishes_one_customer_updated_with_a_stable_id(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client, fakes, golden = time_skipping_env.client, FakeMasterSystems(), golden_id()
    fakes.link(golden, billing="cus_P1", erp="401")
    rename = change(System.CRM, golden, 10, name="Acme Robotics")
    async with running_workers(client, fakes):
        await deliver(client, golden, rename)
        # none of these makes anything golden, so none publishes:
        await deliver(client, golden, rename)  # duplicate (the same event redelivered)
        await deliver(client, golden, change(System.CRM, golden, 5, name="Acme"))  # stale
        await deliver(client, golden, change(System.CRM, golden, 11, name="Acme Robotics"))
        await deliver(client, golden, change(System.BILLING, "cus_P1", 12, name="J. Doe"))
        await deliver(client, golden, change(System.ERP, "401", 13, name="ACME Robotics Inc"))
        status = await until(client, golden, lambda s: settled(s) and s.publishing == 0)

    (published,) = customer_events(fakes)
    event = CustomerUpdatedEvent.model_validate(published)
    workflow_id = master_workflow_id(golden)
    # derived from the workflow and the source event: a redelivery or a replay says the same
    assert event.id == event_id(workflow_id, "customer.updated", "crm", rename.event_id)
    assert event.source == "/revsync/customer-master"
    assert event.subject == golden
    assert event.dataschema.endswith("/events/customer.updated.v1.json")
    assert published["data"]["changes"] == [
        {"field": "name", "value": "Acme Robotics", "owner": "crm"}
    ]
    data = event.data
    assert (data.source_system, data.source_record_id, data.source_event_id) == (
        System.CRM,
        golden,
        rename.event_id,
    )
    assert data.source_version == rename.version
    assert data.records == {System.CRM: [golden], System.BILLING: ["cus_P1"], System.ERP: ["401"]}
    # the ERP rename is held for a steward: the state the change left is ACTIVE, now it is not
    assert data.state is MasterState.ACTIVE
    assert status.state is MasterState.NEEDS_REVIEW
    assert status.record.value(MasterField.NAME) == "Acme Robotics"


async def test_an_event_carries_only_the_fields_made_golden_with_typed_values(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client, fakes, golden = time_skipping_env.client, FakeMasterSystems(), golden_id()
    fakes.link(golden, billing="cus_P2", erp="402")
    first = change(
        System.ERP,
        "402",
        1,
        legal_entity="Acme Robotics, Inc.",
        credit_limit={"amount": "25000.00", "currency": "EUR"},
    )
    # the same legal entity (unchanged) and a new credit limit: only the limit is news
    second = change(
        System.ERP,
        "402",
        2,
        legal_entity="Acme Robotics, Inc.",
        credit_limit={"amount": "30000.00", "currency": "EUR"},
    )
    async with running_workers(client, fakes):
        await deliver(client, golden, first)
        await deliver(client, golden, second)
        await until(client, golden, lambda s: settled(s) and s.publishing == 0)

    events = customer_events(fakes)
    assert [e["data"]["source_event_id"] for e in events] == [first.event_id, second.event_id]
    assert len({e["id"] for e in events}) == 2
    assert [c["field"] for c in events[0]["data"]["changes"]] == ["legal_entity", "credit_limit"]
    limit = {"amount": "30000.00", "currency": "EUR"}
    assert events[1]["data"]["changes"] == [
        {"field": "credit_limit", "value": limit, "owner": "erp"}
    ]


async def test_continue_as_new_does_not_wait_for_a_subscriber_and_the_next_run_delivers(
    own_time_skipping_env: WorkflowEnvironment,
) -> None:
    """A subscriber that is down never holds a run open (issue: a day's outage grew the
    history towards Temporal's limit): the run continues as new at once, carrying the
    undelivered event, and the next run delivers it, once, with the same id."""
    client, fakes, golden = own_time_skipping_env.client, FakeMasterSystems(), golden_id()
    fakes.link(golden, billing="cus_P3")
    # the subscriber is down for three attempts, and the history is full at once
    fakes.fail_with(Activity.EVENTS_PUBLISH, *(transient("subscriber 503") for _ in range(3)))
    policy = MasterPolicy(history_limit=20)
    rename = change(System.CRM, golden, 1, name="Acme Robotics")
    async with running_workers(client, fakes):
        await deliver(client, golden, rename, policy)
        status = await until(
            client, golden, lambda s: s.runs >= 1 and settled(s) and s.publishing == 0
        )

    assert fakes.failures[Activity.EVENTS_PUBLISH] == []  # every failing attempt was made
    (published,) = customer_events(fakes)  # delivered once, not dropped nor sent twice
    assert published["data"]["source_event_id"] == rename.event_id
    # The run that failed to deliver it continued as new without waiting; a later run
    # (carrying it, same id) delivered it.
    first_run, first_ok = fakes.publish_attempts[0]
    (delivered_in,) = [run for run, ok in fakes.publish_attempts if ok]
    assert not first_ok and delivered_in != first_run
    assert status.record.value(MasterField.NAME) == "Acme Robotics"
    assert status.publishing == 0
