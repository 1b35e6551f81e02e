"""Record the shadow workflows' histories the replay test replays:
``python -m tests.shadow.record``.

One run of each on the time-skipping server with fake vendor activities: a replay of three
writes (made, already made, still in shadow) and a comparison of one vendor's side. Written
beside the other histories as ``tests/histories/shadow_replay.json`` and
``tests/histories/shadow_comparison.json``. Re-record only when a change is meant to alter
the commands of an existing run.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio import activity
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from domain.contracts import TaskQueue
from domain.shadow import (
    CompareInput,
    Expected,
    Materialized,
    MaterializeWrite,
    Observation,
    ObservedRecord,
    ObserveRequest,
    ReplayInput,
    ReplayItem,
    ReplayOutcome,
    ShadowActivity,
)
from tests.conftest import installed_binary
from workflows.shadow import ShadowComparisonWorkflow, ShadowReplayWorkflow

HISTORIES = Path(__file__).parents[1] / "histories"
REPLAY_HISTORY = HISTORIES / "shadow_replay.json"
COMPARISON_HISTORY = HISTORIES / "shadow_comparison.json"
REPLAY_ID, COMPARISON_ID = "shadow-replay-q2c-RECORDED", "shadow-compare-RECORDED"

OUTCOMES = {"w1": ReplayOutcome.MADE, "w2": ReplayOutcome.ALREADY, "w3": ReplayOutcome.STILL_SHADOW}


def materializer(queue: str) -> object:
    @activity.defn(name=ShadowActivity.materialize(queue))
    async def materialize(request: MaterializeWrite) -> Materialized:
        return Materialized(write_id=request.write_id, outcome=OUTCOMES[request.write_id])

    return materialize


def observer(queue: str) -> object:
    @activity.defn(name=ShadowActivity.observe(queue))
    async def observe(request: ObserveRequest) -> Observation:
        if queue != TaskQueue.ERP:
            return Observation(vendor=None)
        return Observation(
            vendor="netsuite",
            shadow=True,
            expected=[
                Expected(
                    vendor="netsuite",
                    object="sales_order",
                    subject="Q1",
                    workflow_id="q2c-Q1",
                    write_id="w1",
                    fields={"total": "100", "currency": "EUR", "live": True},
                )
            ],
            observed=[
                ObservedRecord(
                    vendor="netsuite",
                    object="sales_order",
                    subject="Q1",
                    record_id="5501",
                    fields={"total": "90", "currency": "EUR", "live": True},
                )
            ],
            subjects_seen=[("sales_order", "Q1")],
            not_comparable={"netsuite.post_revenue_journal": 2},
        )

    return observe


REPLAY_INPUT = ReplayInput(
    saga_workflow_id="q2c-RECORDED",
    writes=[
        ReplayItem(write_id="w1", port="erp", operation="create_sales_order"),
        ReplayItem(write_id="w2", port="billing", operation="create_subscription"),
        ReplayItem(write_id="w3", port="crm", operation="record_order"),
    ],
    requested_by="Oscar Ops",
    note="recorded for the replay test",
)


async def record() -> tuple[str, str]:
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=installed_binary("temporal-test-server"),
    )
    try:
        queues = (TaskQueue.CRM, TaskQueue.ERP, TaskQueue.BILLING)
        workers = [
            Worker(env.client, task_queue=q, activities=[materializer(q), observer(q)])  # type: ignore[list-item]
            for q in queues
        ]
        orchestration = Worker(
            env.client,
            task_queue=TaskQueue.ORCHESTRATION,
            workflows=[ShadowReplayWorkflow, ShadowComparisonWorkflow],
        )
        async with workers[0], workers[1], workers[2], orchestration:
            replay = await env.client.start_workflow(
                ShadowReplayWorkflow.run,
                REPLAY_INPUT,
                id=REPLAY_ID,
                task_queue=TaskQueue.ORCHESTRATION,
            )
            await replay.result()
            comparison = await env.client.start_workflow(
                ShadowComparisonWorkflow.run,
                CompareInput(after=timedelta(minutes=60)),
                id=COMPARISON_ID,
                task_queue=TaskQueue.ORCHESTRATION,
            )
            await comparison.result()
            replay_json = (await replay.fetch_history()).to_json()
            comparison_json = (await comparison.fetch_history()).to_json()
    finally:
        await env.shutdown()
    return replay_json, comparison_json


def main() -> None:
    replay_json, comparison_json = asyncio.run(record())
    REPLAY_HISTORY.write_text(replay_json)
    COMPARISON_HISTORY.write_text(comparison_json)
    print(f"wrote {REPLAY_HISTORY} and {COMPARISON_HISTORY} at {datetime.now(UTC):%H:%M}")


if __name__ == "__main__":
    main()
