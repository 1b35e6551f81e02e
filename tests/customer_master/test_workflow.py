"""CustomerMasterWorkflow on the time-skipping test server, with fake systems: changes
delivered with update-with-start, survivorship verdicts, propagation with idempotency keys,
parking, continue-as-new, and duplicates held for a steward then merged or kept apart."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from domain.customer_master import (
    FieldVerdict,
    MasterField,
    MasterState,
    ReviewAction,
    ReviewDecision,
    StewardAction,
    StewardDecision,
    System,
    master_workflow_id,
    propagation_key,
)
from domain.master_contracts import (
    CustomerMasterStatus,
    MasterActivity,
    MasterPolicy,
    PropagationStatus,
    ResolvePropagation,
)
from domain.saga import ResolveAction
from revsync.customer_master import (
    customer_status,
    decide_customer,
)
from revsync.operations import DecisionRefused
from tests.customer_master.fakes import (
    FakeMasterSystems,
    change,
    deliver,
    golden_id,
    running_workers,
)
from tests.workflows.fakes import rejected

ACME_ADDRESS = {
    "line1": "500 Howard St",
    "city": "San Francisco",
    "region": "CA",
    "postal_code": "94105",
    "country": "US",
}


async def until(
    client: Client, golden: str, ready: Callable[[CustomerMasterStatus], bool]
) -> CustomerMasterStatus:
    """The customer's status once ``ready`` holds (polled; bounded by the number of tries)."""
    status = await customer_status(client, golden)
    for _ in range(400):
        if ready(status):
            return status
        await asyncio.sleep(0.05)
        status = await customer_status(client, golden)
    raise AssertionError(f"status never got ready: {status.model_dump_json(indent=1)}")


async def continued(client: Client, golden: str, first_run: str) -> None:
    """Return once the customer runs in a later run than ``first_run`` and its history has
    stopped growing (polled through describe; bounded by the number of tries)."""
    handle = client.get_workflow_handle(master_workflow_id(golden))
    last: tuple[str, int] | None = None
    for _ in range(400):
        described = await handle.describe()
        now = (described.run_id or "", described.history_length)
        if now[0] != first_run and now == last:
            return
        last = now
        await asyncio.sleep(0.1)
    raise AssertionError(f"{master_workflow_id(golden)} never continued as new")


def settled(status: CustomerMasterStatus) -> bool:
    return not status.queued


async def test_owner_change_is_propagated_once_to_each_linked_system(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client, fakes, golden = time_skipping_env.client, FakeMasterSystems(), golden_id()
    fakes.link(golden, billing="cus_A1", erp="301")
    rename = change(System.CRM, golden, 1, name="Acme Robotics")
    async with running_workers(client, fakes):
        first = await deliver(client, golden, rename)
        again = await deliver(client, golden, rename)
        status = await until(client, golden, lambda s: len(s.recent) == 2)

    assert first.verdicts == {MasterField.NAME: FieldVerdict.APPLIED}
    assert set(first.propagating_to) == {System.BILLING, System.ERP}
    assert again.duplicate and again.verdicts == {}
    # the name goes to billing and ERP (their copies), once each, keyed by the change
    for system, record_id in ((System.BILLING, "cus_A1"), (System.ERP, "301")):
        (sent,) = fakes.sent_to(system)
        assert sent.record_ids == (record_id,)
        assert sent.fields == {MasterField.NAME: "Acme Robotics"}
        assert sent.idempotency_key == propagation_key(
            golden, system, [MasterField.NAME], System.CRM, golden, rename.version
        )
    assert fakes.sent_to(System.CRM) == []
    assert status.record.value(MasterField.NAME) == "Acme Robotics"
    assert status.record.xref == {
        System.CRM: (golden,),
        System.BILLING: ("cus_A1",),
        System.ERP: ("301",),
    }
    assert {r.status for r in status.recent} == {PropagationStatus.DONE}
    assert status.state is MasterState.ACTIVE
    assert status.events_applied == 1


async def test_non_owner_change_is_held_for_review_and_accepted_into_the_owner(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client, fakes, golden = time_skipping_env.client, FakeMasterSystems(), golden_id()
    fakes.link(golden, erp="302")
    async with running_workers(client, fakes):
        # ERP owns the tax id; a rep typing one into CRM is a proposal
        result = await deliver(client, golden, change(System.CRM, golden, 1, tax_id="94-1234567"))
        held = await customer_status(client, golden)
        decision = await decide_customer(
            client,
            golden,
            ReviewDecision(
                field=MasterField.TAX_ID,
                system=System.CRM,
                action=ReviewAction.ACCEPT,
                steward="Dana Steward",
                note="checked against the W-9",
            ),
        )
        status = await until(client, golden, lambda s: len(s.recent) == 1)

    assert result.verdicts == {MasterField.TAX_ID: FieldVerdict.NOT_OWNER_REVIEW}
    assert result.propagating_to == ()
    assert held.state is MasterState.NEEDS_REVIEW
    assert [(r.field, r.system, r.proposed) for r in held.open_reviews] == [
        (MasterField.TAX_ID, System.CRM, "94-1234567")
    ]
    assert held.record.value(MasterField.TAX_ID) is None  # nothing golden changed
    assert decision.action == "accept" and decision.actor == "Dana Steward"
    # accepted: written to the owner (ERP); golden once the ERP reports it back
    (sent,) = fakes.updates
    assert (sent.system, sent.record_ids, sent.fields) == (
        System.ERP,
        ("302",),
        {MasterField.TAX_ID: "94-1234567"},
    )
    assert status.state is MasterState.ACTIVE


async def test_an_older_event_after_a_newer_one_changes_nothing(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client, fakes, golden = time_skipping_env.client, FakeMasterSystems(), golden_id()
    fakes.link(golden, billing="cus_B1", erp="303")
    newer = change(System.ERP, "303", 10, legal_entity="Acme Robotics, Inc.")
    older = change(System.ERP, "303", 5, legal_entity="Acme Robotics LLC")
    async with running_workers(client, fakes):
        applied = await deliver(client, golden, newer)
        stale = await deliver(client, golden, older)
        status = await until(client, golden, lambda s: settled(s) and len(s.recent) == 2)

    assert applied.verdicts == {MasterField.LEGAL_ENTITY: FieldVerdict.APPLIED}
    assert stale.verdicts == {MasterField.LEGAL_ENTITY: FieldVerdict.STALE}
    assert stale.propagating_to == ()
    assert status.record.value(MasterField.LEGAL_ENTITY) == "Acme Robotics, Inc."
    sent = {(u.system, u.fields[MasterField.LEGAL_ENTITY]) for u in fakes.updates}
    assert sent == {(System.CRM, "Acme Robotics, Inc."), (System.BILLING, "Acme Robotics, Inc.")}


async def test_twenty_concurrent_changes_meet_in_one_workflow_in_one_order(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client, fakes, golden = time_skipping_env.client, FakeMasterSystems(), golden_id()
    fakes.link(golden, billing="cus_C1")
    events = [change(System.CRM, golden, n, name=f"Acme {n:02d}") for n in range(20)]
    shuffled = random.Random(7).sample(events, len(events))
    async with running_workers(client, fakes):
        results = await asyncio.gather(*(deliver(client, golden, e) for e in shuffled))
        status = await until(client, golden, settled)

    # one workflow for the customer, however many arrived at once: one record saw them all
    assert {r.golden_id for r in results} == {golden}
    assert status.events_applied == 20
    assert {s.event_id for s in status.record.seen} == {e.event_id for e in events}
    assert status.record.value(MasterField.NAME) == "Acme 19"  # the newest, whatever the order
    verdicts = [r.verdicts[MasterField.NAME] for r in results]
    assert set(verdicts) <= {FieldVerdict.APPLIED, FieldVerdict.STALE}
    assert FieldVerdict.APPLIED in verdicts
    # billing got names in increasing version order: never an older one after a newer one
    names = [str(u.fields[MasterField.NAME]) for u in fakes.sent_to(System.BILLING)]
    assert names == sorted(names) and names[-1] == "Acme 19"
    assert len(names) == len(set(names))


async def test_a_rejected_propagation_parks_without_blocking_newer_changes(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client, fakes, golden = time_skipping_env.client, FakeMasterSystems(), golden_id()
    fakes.link(golden, billing="cus_D1", erp="304")
    fakes.fail_with(
        MasterActivity.ERP_UPDATE_CUSTOMER_FIELDS, rejected("netsuite: INVALID_FLD_VALUE")
    )
    async with running_workers(client, fakes):
        await deliver(client, golden, change(System.BILLING, "cus_D1", 1, email="ap@acme.example"))
        parked = await until(client, golden, lambda s: bool(s.parked) and settled(s))
        later = await deliver(
            client, golden, change(System.BILLING, "cus_D1", 2, email="billing@acme.example")
        )
        after = await until(client, golden, lambda s: settled(s) and len(s.recent) >= 2)
        decision = await decide_customer(
            client,
            golden,
            ResolvePropagation(action=ResolveAction.RETRY, operator="Oscar Ops", note="fixed"),
        )
        resolved = await until(client, golden, lambda s: not s.parked and len(s.recent) >= 3)
        try:
            await decide_customer(
                client,
                golden,
                ResolvePropagation(action=ResolveAction.SKIP, operator="Oscar Ops", note="again"),
            )
            raise AssertionError("a resolve with nothing parked was accepted")
        except DecisionRefused as refused:
            nothing_parked = str(refused)

    (blocked,) = parked.parked
    assert blocked.step == "propagate_erp"
    assert "INVALID_FLD_VALUE" in blocked.reason
    assert later.verdicts == {MasterField.EMAIL: FieldVerdict.APPLIED}
    # the newer e-mail reached CRM and ERP while the first ERP write stayed parked
    assert [u.fields[MasterField.EMAIL] for u in fakes.sent_to(System.CRM)] == [
        "ap@acme.example",
        "billing@acme.example",
    ]
    assert after.parked == parked.parked
    assert decision.action == "retry"
    # the retried write carried nothing newer values had replaced: superseded, not re-sent
    assert [u.fields[MasterField.EMAIL] for u in fakes.sent_to(System.ERP)] == [
        "billing@acme.example"
    ]
    assert resolved.recent[-1].status is PropagationStatus.SUPERSEDED
    assert "no propagation" in nothing_parked


async def test_continue_as_new_carries_the_record_and_the_parked_propagation(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client, fakes, golden = time_skipping_env.client, FakeMasterSystems(), golden_id()
    fakes.link(golden, billing="cus_E1", erp="305")
    fakes.fail_with(MasterActivity.ERP_UPDATE_CUSTOMER_FIELDS, rejected("erp refuses"))
    policy = MasterPolicy(history_limit=40)
    async with running_workers(client, fakes):
        await deliver(client, golden, change(System.CRM, golden, 0, website="acme.example"), policy)
        await until(client, golden, lambda s: bool(s.parked))
        first_run = (await client.get_workflow_handle(master_workflow_id(golden)).describe()).run_id
        # a proposal for a steward, then enough changes to pass the history limit
        await deliver(
            client, golden, change(System.BILLING, "cus_E1", 1, tax_id="DE811907980"), policy
        )
        for n in range(2, 14):
            await deliver(
                client, golden, change(System.CRM, golden, n, website=f"acme{n}.example"), policy
            )
        # The time-skipping server leaves a query hanging when it lands on a run that just
        # continued as new: wait on describe (no query) for the new run to settle first.
        await continued(client, golden, first_run)
        status = await until(client, golden, lambda s: s.runs >= 1 and settled(s))

    assert status.events_applied == 14
    assert status.record.value(MasterField.WEBSITE) == "acme13.example"
    (parked,) = status.parked  # carried over, still waiting for an operator
    assert parked.update.fields == {MasterField.WEBSITE: "acme.example"}
    assert [(r.field, r.system) for r in status.open_reviews] == [
        (MasterField.TAX_ID, System.BILLING)
    ]
    assert len(status.record.seen) == 14


async def test_suspected_duplicate_is_held_then_merged(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client, fakes = time_skipping_env.client, FakeMasterSystems()
    first, second = golden_id(), golden_id()
    fakes.link(first, erp="306")
    fakes.link(second, erp="307")
    async with running_workers(client, fakes):
        await deliver(
            client,
            first,
            change(System.ERP, "306", 1, tax_id="94-1234567", legal_entity="Acme Robotics, Inc."),
        )
        await deliver(client, second, change(System.CRM, second, 2, name="Acme"))  # created
        await deliver(client, second, change(System.ERP, "307", 3, tax_id="94 1234567"))
        held = await until(client, second, lambda s: bool(s.suspicions))
        decision = await decide_customer(
            client,
            second,
            StewardDecision(
                action=StewardAction.MERGE,
                candidate=first,
                into=first,
                steward="Dana Steward",
                note="same EIN: one company",
            ),
        )
        merged = await client.get_workflow_handle(
            master_workflow_id(second), result_type=CustomerMasterStatus
        ).result()
        survivor = await until(client, first, lambda s: second in s.record.absorbed)
        # a change for the absorbed record now reaches the survivor
        forwarded = await deliver(
            client, second, change(System.ERP, "307", 4, legal_entity="Acme Robotics Holdings")
        )
        after = await customer_status(client, first)

    assert held.state is MasterState.NEEDS_REVIEW
    (suspicion,) = held.suspicions
    assert suspicion.candidate == first and suspicion.strength == "strong"
    assert decision.action == f"merge into {first}"
    assert merged.state is MasterState.MERGED and merged.record.merged_into == first
    assert survivor.state is MasterState.ACTIVE
    assert survivor.record.xref[System.ERP] == ("306", "307")
    assert survivor.record.xref[System.CRM] == tuple(sorted((first, second)))
    assert forwarded.golden_id == first
    assert forwarded.verdicts == {MasterField.LEGAL_ENTITY: FieldVerdict.APPLIED}
    assert after.record.value(MasterField.LEGAL_ENTITY) == "Acme Robotics Holdings"


async def test_keep_separate_drops_the_suspicion_for_good(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client, fakes = time_skipping_env.client, FakeMasterSystems()
    first, second = golden_id(), golden_id()
    async with running_workers(client, fakes):
        for golden, minute in ((first, 1), (second, 2)):
            await deliver(
                client,
                golden,
                change(
                    System.CRM,
                    golden,
                    minute,
                    name="Acme Robotics",
                    website="acme-robotics.example",
                ),
            )
        held = await until(client, second, lambda s: bool(s.suspicions))
        await decide_customer(
            client,
            second,
            StewardDecision(
                action=StewardAction.KEEP_SEPARATE,
                candidate=first,
                steward="Dana Steward",
                note="US and EU subsidiaries, two contracts",
            ),
        )
        # the same signals again (a website change re-checks): not held again
        await deliver(
            client, second, change(System.CRM, second, 3, website="www.acme-robotics.example")
        )
        status = await until(client, second, lambda s: not s.suspicions and settled(s))

    assert held.suspicions[0].strength == "suspected"
    assert status.state is MasterState.ACTIVE
    assert status.record.kept_separate == (first,)
    assert [d.action for d in status.decisions] == ["keep_separate"]
