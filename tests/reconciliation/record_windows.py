"""Record the histories the replay test replays for ReconcileRun and ReconcileWindow:
``python -m tests.reconciliation.record_windows``.

One full pass on the time-skipping server over the fake estate of
tests/reconciliation/window_fakes.py (windows split, a compensation, a re-propagation, rows
written): the run's history (``tests/histories/reconcile_run.json``) and the history of its
window that repaired (``tests/histories/reconcile_window.json``). Re-record only when a
change is meant to alter the commands of a run, and only once no run of the old code is
going (a run lasts minutes: deploy between runs).
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from domain.contracts import TaskQueue
from tests.conftest import installed_binary
from tests.reconciliation.test_run_workflow import run_input, seeded
from tests.reconciliation.window_fakes import workers
from workflows.reconcile_run import ReconcileRunWorkflow

HISTORIES = Path(__file__).parents[1] / "histories"
RUN_HISTORY = HISTORIES / "reconcile_run.json"
WINDOW_HISTORY = HISTORIES / "reconcile_window.json"
RUN_ID = "reconcile-replay"


async def record() -> tuple[str, str, str]:
    """The run's history, the repairing window's id and its history, as JSON."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=installed_binary("temporal-test-server"),
    )
    try:
        estate = seeded()
        folder = Path(tempfile.mkdtemp(prefix=f"reconcile-{uuid.uuid4().hex[:6]}-"))
        async with workers(env.client, estate, folder):
            handle = await env.client.start_workflow(
                ReconcileRunWorkflow.run,
                run_input(
                    window_records=60,
                    full_since=datetime(2024, 12, 1, tzinfo=UTC),
                    first_span_seconds=60 * 86_400,
                ),
                id=RUN_ID,
                task_queue=TaskQueue.ORCHESTRATION,
            )
            await handle.result()
            run = await handle.fetch_history()
            window_id = ""
            for event in run.events:
                started = event.start_child_workflow_execution_initiated_event_attributes
                if "/orders/" not in started.workflow_id:
                    continue
                events = await env.client.get_workflow_handle(started.workflow_id).fetch_history()
                if "billing.cancel_subscription" in events.to_json():
                    window_id, window = started.workflow_id, events
            assert window_id, "no window repaired"
    finally:
        await env.shutdown()
    return run.to_json(), window_id, window.to_json()


if __name__ == "__main__":
    run_json, window_id, window_json = asyncio.run(record())
    RUN_HISTORY.write_text(run_json)
    WINDOW_HISTORY.write_text(window_json)
    (HISTORIES / "reconcile_window.id").write_text(window_id + "\n")
