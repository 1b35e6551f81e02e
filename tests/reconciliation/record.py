"""Record the reconciliation history the replay test replays:
``python -m tests.reconciliation.record``.

One run on the time-skipping server with the fake systems (tests/reconciliation/fakes.py):
every listing, a CRM rewrite, a compensation, a repair that fails. Written beside the
quote-to-cash histories as ``tests/histories/reconciliation_repairs.json``. Re-record only
when a change is meant to alter the commands of an existing run, and only once no run of
the old code is going (a run lasts minutes, so usually: deploy between runs).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from domain.contracts import TaskQueue
from domain.reconciliation import ReconciliationInput
from tests.conftest import installed_binary
from tests.reconciliation.fakes import Fakes, many_quotes, workers
from workflows.reconciliation import ReconciliationWorkflow

HISTORY = Path(__file__).parents[1] / "histories" / "reconciliation_repairs.json"
WORKFLOW_ID = "reconciliation-replay"


async def record() -> None:
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=installed_binary("temporal-test-server"),
    )
    try:
        records, sagas = many_quotes()
        fakes = Fakes(records, sagas)
        fakes.refuse.add("sub_L")
        async with workers(env.client, fakes):
            handle = await env.client.start_workflow(
                ReconciliationWorkflow.run,
                ReconciliationInput(page_size=5),
                id=WORKFLOW_ID,
                task_queue=TaskQueue.ORCHESTRATION,
            )
            await handle.result()
            history = await handle.fetch_history()
        HISTORY.write_text(history.to_json())
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(record())
