"""Merging two golden customers while other things happen (issue 15, defect 6), on the
time-skipping server with fake systems.

The survivor drives a merge: it asks the absorbed record to hand over, merges what it gets
under its lock, then confirms, and only then does the absorbed record end MERGED. These tests
hold each race the protocol closes:

1. a merge is recorded only once the absorbed record has handed over;
2. an absorbed record does not end when its survivor refuses it;
3. two stewards merging a pair from both sides leave one survivor (the lower golden id);
4. a change applied while a merge is under way is not lost.

Most of them send every signal between two records an hour late (``SlowSignals``) and move
time on an hour at a time: what each record does before it hears from the other is then
deterministic, whatever the machine's load.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowUpdateStage
from temporalio.testing import WorkflowEnvironment

from domain.customer_master import (
    MasterField,
    MasterState,
    ReviewAction,
    ReviewDecision,
    ReviewStatus,
    StewardAction,
    StewardDecision,
    System,
    master_workflow_id,
)
from domain.master_contracts import (
    CustomerMasterStatus,
    HandOverRequest,
    MasterActivity,
    MasterDecision,
    MergeRole,
)
from revsync.customer_master import customer_status, decide_customer
from revsync.operations import DecisionRefused
from tests.customer_master.fakes import (
    SIGNAL_DELAY,
    FakeMasterSystems,
    change,
    deliver,
    golden_id,
    running_workers,
)
from tests.customer_master.test_workflow import until

TAX_ID = "94-1234567"


def merge(candidate: str, into: str, steward: str = "Dana Steward") -> StewardDecision:
    return StewardDecision(
        action=StewardAction.MERGE,
        candidate=candidate,
        into=into,
        steward=steward,
        note="same EIN: one company",
    )


async def duplicates(client: Client, count: int) -> list[str]:
    """``count`` golden customers sharing a tax id, each holding every other one as a
    suspected duplicate (the first ones search again once the later ones exist)."""
    records = [golden_id() for _ in range(count)]
    for number, golden in enumerate(records):
        event = change(System.ERP, f"30{number}", number, tax_id=TAX_ID)
        await deliver(client, golden, event)
    for number, golden in enumerate(records):
        await deliver(client, golden, change(System.CRM, golden, 10 + number, name="Acme"))
    for golden in records:
        others = set(records) - {golden}

        def holds_the_others(status: CustomerMasterStatus, others: set[str] = others) -> bool:
            return {s.candidate for s in status.suspicions} == others

        await until(client, golden, holds_the_others)
    return records


async def quiet(client: Client, records: Iterable[str]) -> None:
    """Return once none of ``records`` has a workflow task to run (polled, bounded)."""
    for _ in range(400):
        pending = False
        for golden in records:
            described = await client.get_workflow_handle(master_workflow_id(golden)).describe()
            pending = pending or described.raw_description.HasField("pending_workflow_task")
        if not pending:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the records never went quiet")


async def settled(
    env: WorkflowEnvironment,
    records: Iterable[str],
    done: Callable[[], bool],
) -> None:
    """Move time on one signal delay at a time until ``done`` holds: each signal between two
    records crosses only then."""
    records = list(records)
    for _ in range(16):
        await quiet(env.client, records)
        for _ in range(40):  # the update's answer reaching the client
            if done():
                return
            await asyncio.sleep(0.05)
        await env.sleep(SIGNAL_DELAY)
    raise AssertionError("the merge never settled")


async def outcome(task: asyncio.Task[MasterDecision]) -> MasterDecision | DecisionRefused:
    try:
        return await task
    except DecisionRefused as refused:
        return refused


async def execution_status(client: Client, golden: str) -> WorkflowExecutionStatus | None:
    return (await client.get_workflow_handle(master_workflow_id(golden)).describe()).status


# -- 1. recorded only once handed over ----------------------------------------------------


async def test_a_merge_is_recorded_only_once_the_absorbed_record_has_handed_over(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env, fakes = time_skipping_env, FakeMasterSystems()
    client = env.client
    async with running_workers(client, fakes, slow_signals=True):
        survivor, absorbed = await duplicates(client, 2)
        task = asyncio.create_task(decide_customer(client, survivor, merge(absorbed, survivor)))
        await settled(env, [survivor, absorbed], task.done)
        decision = await task
        # The steward's answer says merged: the survivor holds the absorbed record now.
        at_answer = await customer_status(client, survivor)
        for _ in range(6):
            if await execution_status(client, absorbed) is not WorkflowExecutionStatus.RUNNING:
                break
            await env.sleep(SIGNAL_DELAY)
            await quiet(client, [survivor, absorbed])
        ended = await client.get_workflow_handle(
            master_workflow_id(absorbed), result_type=CustomerMasterStatus
        ).result()

    assert decision.action == f"merge into {survivor}"
    assert absorbed in at_answer.record.absorbed
    assert not at_answer.suspicions
    assert ended.state is MasterState.MERGED and ended.record.merged_into == survivor
    assert "merged into" in " ".join(d.action for d in ended.decisions)


# -- 2. the survivor refuses: the absorbed record stays ------------------------------------


async def test_an_absorbed_record_stays_when_its_survivor_refuses_it(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client, fakes = time_skipping_env.client, FakeMasterSystems()
    async with running_workers(client, fakes):
        first, survivor, absorbed = await duplicates(client, 3)
        # The survivor stays running after its own merge: its ERP update is held.
        release = fakes.hold(MasterActivity.ERP_UPDATE_CUSTOMER_FIELDS, survivor)
        await deliver(client, survivor, change(System.CRM, survivor, 20, name="Acme Corp"))
        for _ in range(400):
            if fakes.held:
                break
            await asyncio.sleep(0.05)
        assert fakes.held, "the survivor's ERP update never started"
        try:
            await decide_customer(client, survivor, merge(first, first))
            gone = await until(client, survivor, lambda s: s.state is MasterState.MERGED)
            assert gone.record.merged_into == first
            assert await execution_status(client, survivor) is WorkflowExecutionStatus.RUNNING

            # A steward merges the third record into the one that has just been merged away.
            with pytest.raises(DecisionRefused, match=f"merged into {first}"):
                await decide_customer(client, absorbed, merge(survivor, survivor))
            kept = await customer_status(client, absorbed)
        finally:
            release.set()
        closed = await client.get_workflow_handle(
            master_workflow_id(survivor), result_type=CustomerMasterStatus
        ).result()
        first_status = await customer_status(client, first)

    # Both records as they were, the reason in both audit trails.
    assert await execution_status(client, absorbed) is WorkflowExecutionStatus.RUNNING
    assert kept.record.merged_into is None
    assert survivor in {s.candidate for s in kept.suspicions}
    assert absorbed not in first_status.record.absorbed
    assert absorbed not in closed.record.absorbed
    refused = [d for d in kept.decisions if d.subject == survivor]
    assert refused and f"merged into {first}" in refused[-1].note
    assert any(d.subject == absorbed and "refused" in d.action for d in closed.decisions)


# -- 3. both sides at once ----------------------------------------------------------------


@pytest.mark.parametrize("into", ["the candidate", "itself"])
async def test_two_stewards_merging_a_pair_from_both_sides_leave_the_lower_id(
    time_skipping_env: WorkflowEnvironment, into: str
) -> None:
    env, fakes = time_skipping_env, FakeMasterSystems()
    client = env.client
    async with running_workers(client, fakes, slow_signals=True):
        a, b = await duplicates(client, 2)
        low, high = sorted((a, b))
        if into == "the candidate":
            asked = {low: merge(high, high, "Dana"), high: merge(low, low, "Eli")}
        else:
            asked = {low: merge(high, low, "Dana"), high: merge(low, high, "Eli")}
        tasks = {
            golden: asyncio.create_task(decide_customer(client, golden, decision))
            for golden, decision in asked.items()
        }
        await settled(env, [low, high], lambda: all(t.done() for t in tasks.values()))
        results = {golden: await outcome(task) for golden, task in tasks.items()}
        for _ in range(6):
            if await execution_status(client, high) is not WorkflowExecutionStatus.RUNNING:
                break
            await env.sleep(SIGNAL_DELAY)
            await quiet(client, [low, high])
        survivor = await customer_status(client, low)
        ended = await client.get_workflow_handle(
            master_workflow_id(high), result_type=CustomerMasterStatus
        ).result()

    assert await execution_status(client, low) is WorkflowExecutionStatus.RUNNING
    assert survivor.record.merged_into is None and high in survivor.record.absorbed
    assert ended.state is MasterState.MERGED and ended.record.merged_into == low
    # The decision that keeps the lower golden id was taken; the other one was refused.
    winner = low if into == "itself" else high
    loser = high if winner == low else low
    assert isinstance(results[winner], MasterDecision)
    assert isinstance(results[loser], DecisionRefused)
    assert "lower golden id" in str(results[loser])


# -- 4. a change made while the merge is under way ----------------------------------------


async def test_a_change_applied_while_a_merge_is_under_way_is_not_lost(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env, fakes = time_skipping_env, FakeMasterSystems()
    client = env.client
    async with running_workers(client, fakes, slow_signals=True):
        absorbed, survivor = await duplicates(client, 2)
        # A rep typed another tax id into CRM: held for a steward.
        await deliver(client, absorbed, change(System.CRM, absorbed, 30, tax_id="94-7654321"))
        await until(client, absorbed, lambda s: bool(s.open_reviews))
        handle = client.get_workflow_handle(master_workflow_id(absorbed))
        merging = await handle.start_update(
            "decide",
            merge(survivor, survivor),
            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
            result_type=MasterDecision,
        )
        # While the merge is under way, another steward accepts the proposal.
        await decide_customer(
            client,
            absorbed,
            ReviewDecision(
                field=MasterField.TAX_ID,
                system=System.CRM,
                action=ReviewAction.ACCEPT,
                steward="Eli Steward",
                note="the W-9 says so",
            ),
        )
        done: list[MasterDecision] = []

        async def collect() -> None:
            done.append(await merging.result())

        collecting = asyncio.create_task(collect())
        await settled(env, [absorbed, survivor], collecting.done)
        await collecting
        for _ in range(6):
            if await execution_status(client, absorbed) is not WorkflowExecutionStatus.RUNNING:
                break
            await env.sleep(SIGNAL_DELAY)
            await quiet(client, [absorbed, survivor])
        ended = await client.get_workflow_handle(
            master_workflow_id(absorbed), result_type=CustomerMasterStatus
        ).result()
        merged = await customer_status(client, survivor)

    assert ended.record.merged_into == survivor and absorbed in merged.record.absorbed
    for record in (ended.record, merged.record):
        proposal = record.proposals[MasterField.TAX_ID][System.CRM]
        assert proposal.status is ReviewStatus.ACCEPTED, record.golden_id
        assert proposal.steward == "Eli Steward"


# -- while handing over, and the earlier protocol -------------------------------------------


async def test_a_change_for_a_record_handing_over_waits_and_reaches_the_survivor(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env, fakes = time_skipping_env, FakeMasterSystems()
    client = env.client
    async with running_workers(client, fakes, slow_signals=True):
        survivor, absorbed = await duplicates(client, 2)
        deciding = asyncio.create_task(decide_customer(client, survivor, merge(absorbed, survivor)))

        def handing_over() -> bool:
            return bool(states) and states[-1] is MergeRole.HANDING_OVER

        states: list[MergeRole | None] = []

        async def watch() -> None:
            status = await customer_status(client, absorbed)
            states.append(status.merging.role if status.merging else None)

        for _ in range(8):
            await watch()
            if handing_over():
                break
            await quiet(client, [survivor, absorbed])
            await env.sleep(SIGNAL_DELAY)
        assert handing_over(), states
        # Handing over: no steward decision applies to it meanwhile.
        frozen = await customer_status(client, absorbed)
        assert frozen.allowed_decisions == []
        delivering = asyncio.create_task(
            deliver(client, absorbed, change(System.CRM, absorbed, 40, website="acme.example"))
        )
        await settled(env, [survivor, absorbed], lambda: deciding.done() and delivering.done())
        await deciding
        delivered = await delivering
        merged = await customer_status(client, survivor)

    # The change waited for the hand-over's outcome, then went to the survivor.
    assert delivered.golden_id == survivor
    assert merged.record.value(MasterField.WEBSITE) == "acme.example"
    assert absorbed in merged.record.absorbed


async def test_a_hand_over_from_a_survivor_on_the_earlier_protocol_still_merges(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client, fakes = time_skipping_env.client, FakeMasterSystems()
    async with running_workers(client, fakes):
        survivor, absorbed = await duplicates(client, 2)
        # What a survivor that decided before the acknowledged protocol sent: no merge id
        # (it waits for an absorb signal).
        await client.get_workflow_handle(master_workflow_id(absorbed)).signal(
            "hand_over", HandOverRequest(into=survivor, steward="Dana Steward", note="same EIN")
        )
        ended = await client.get_workflow_handle(
            master_workflow_id(absorbed), result_type=CustomerMasterStatus
        ).result()
        merged = await until(client, survivor, lambda s: absorbed in s.record.absorbed)

    assert ended.record.merged_into == survivor
    assert merged.record.merged_into is None and not merged.suspicions
    assert [d.action for d in merged.decisions][-1] == "absorbed"
