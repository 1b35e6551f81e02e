"""What operators do with shadow mode (docs/shadow-mode.md): read the report, compare with
the integration already in place, and replay one finished saga's recorded writes.

The gateway's ops API (``/v1/ops/shadow/...``) and the CLI (``revsync shadow ...``, through
the gateway) are thin shells over these functions.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from adapters.shadow.store import ShadowStore, off_loop
from domain.contracts import TaskQueue
from domain.shadow import (
    COMPARISON_WORKFLOW,
    CSV_COLUMNS,
    CompareInput,
    ComparisonReport,
    RecordedWrite,
    ReplayInput,
    ReplayItem,
    SagaShadow,
    ShadowReport,
    comparison_workflow_id,
    csv_row,
    replay_workflow_id,
    report,
    saga_shadow,
)
from workflows.shadow import ShadowComparisonWorkflow, ShadowReplayWorkflow


class ReplayRefused(Exception):
    """The saga's writes cannot be replayed (the message says why)."""


async def latest_comparison(client: Client) -> tuple[str, ComparisonReport] | None:
    """The newest completed comparison: its workflow id and report; None if none ran."""
    newest = None
    query = f'WorkflowType = "{COMPARISON_WORKFLOW}" AND ExecutionStatus = "Completed"'
    async for execution in client.list_workflows(query):
        if newest is None or (execution.start_time > newest.start_time):
            newest = execution
    if newest is None:
        return None
    handle = client.get_workflow_handle_for(
        ShadowComparisonWorkflow.run, newest.id, run_id=newest.run_id
    )
    return newest.id, await handle.result(follow_runs=False)


async def aggregate(store: ShadowStore, client: Client | None) -> ShadowReport:
    """Every recorded write, counted per vendor, operation and saga, with the latest
    comparison with the existing integration."""
    writes = await off_loop(store.writes)
    compared = None if client is None else await latest_comparison(client)
    return report(writes, None if compared is None else compared[1])


async def for_saga(store: ShadowStore, workflow_id: str) -> SagaShadow:
    writes = await off_loop(lambda: store.writes(workflow_id=workflow_id))
    return saga_shadow(workflow_id, writes)


def to_csv(writes: Iterable[RecordedWrite]) -> str:
    """One row per recorded write (``domain.shadow.CSV_COLUMNS``)."""
    out = io.StringIO()
    sheet = csv.writer(out, lineterminator="\n")
    sheet.writerow(CSV_COLUMNS)
    for write in writes:
        sheet.writerow(csv_row(write))
    return out.getvalue()


async def _running(client: Client, workflow_id: str) -> bool | None:
    """Whether the workflow runs; None when there is none."""
    try:
        described = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            return None
        raise
    return described.status is WorkflowExecutionStatus.RUNNING


async def start_replay(
    client: Client, store: ShadowStore, saga_workflow_id: str, requested_by: str, note: str
) -> str:
    """Start making the finished saga's recorded writes live, in recorded order; the
    replay's workflow id. A saga still running continues live by itself (its next write
    makes what it depends on live), so only a finished one is replayed."""
    writes = await off_loop(lambda: store.writes(workflow_id=saga_workflow_id))
    if not writes:
        raise ReplayRefused(f"no recorded writes for {saga_workflow_id}")
    if await _running(client, saga_workflow_id):
        raise ReplayRefused(
            f"{saga_workflow_id} is still running: once its vendors are live it makes its "
            "recorded writes itself, under the same keys"
        )
    replay_id = replay_workflow_id(saga_workflow_id)
    await client.start_workflow(
        ShadowReplayWorkflow.run,
        ReplayInput(
            saga_workflow_id=saga_workflow_id,
            writes=[
                ReplayItem(write_id=w.write_id, port=w.port, operation=w.operation) for w in writes
            ],
            requested_by=requested_by,
            note=note,
        ),
        id=replay_id,
        task_queue=TaskQueue.ORCHESTRATION,
        # Asked again: the same replay goes on, or a new one makes what is left (made
        # writes are not made twice).
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary=f"Replay of the shadow writes of {saga_workflow_id}",
    )
    return replay_id


async def start_comparison(client: Client, after: timedelta, now: datetime | None = None) -> str:
    """Start a comparison with the integration already in place; its workflow id."""
    workflow_id = comparison_workflow_id(now or datetime.now(UTC))
    await client.start_workflow(
        ShadowComparisonWorkflow.run,
        CompareInput(after=after),
        id=workflow_id,
        task_queue=TaskQueue.ORCHESTRATION,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary="Shadow mode compared with the integration already in place",
    )
    return workflow_id
