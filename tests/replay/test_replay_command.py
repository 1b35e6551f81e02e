"""``revsync replay``: a namespace's recent histories replayed against the code at hand, on a
real dev server (its visibility lists them). A history that other code wrote is reported,
with its workflow and run; the ones this code wrote replay."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from domain.saga import QuoteToCashInput, QuoteToCashStatus
from revsync.replay import replay_recent
from tests.conftest import installed_binary
from tests.workflows.fakes import FakeSystems, running_workers
from tests.workflows.test_quote_to_cash import new_quote, start
from workers.build import WORKFLOWS


@workflow.defn(name="QuoteToCash", sandboxed=False)
class EarlierQuoteToCash:
    """A QuoteToCash that an earlier revsync might have run: it waited a minute first."""

    @workflow.run
    async def run(self, request: QuoteToCashInput) -> None:
        await workflow.sleep(timedelta(seconds=1))


async def test_recent_histories_replay_and_one_other_code_wrote_is_reported() -> None:
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=installed_binary("temporal"),
    )
    try:
        client = env.client
        async with running_workers(client, FakeSystems()):
            handle = await start(client, new_quote())
            status: QuoteToCashStatus = await handle.result()
        async with Worker(client, task_queue="earlier", workflows=[EarlierQuoteToCash]):
            earlier = await client.execute_workflow(
                "QuoteToCash",
                QuoteToCashInput(quote=new_quote()),
                id="q2c-earlier-code",
                task_queue="earlier",
            )
        assert earlier is None and status.stage.is_terminal
        for _ in range(100):  # visibility catches up
            listed = [e async for e in client.list_workflows('WorkflowType = "QuoteToCash"')]
            if len(listed) == 2:
                break
            await asyncio.sleep(0.1)

        report = await replay_recent(client, WORKFLOWS, only=["QuoteToCash"])
        everything = await replay_recent(client, WORKFLOWS, per_type=1)
    finally:
        await env.shutdown()

    (q2c,) = report.types
    assert q2c.replayed == 2
    ((workflow_id, _, why),) = q2c.failures
    assert workflow_id == "q2c-earlier-code" and "Nondeterminism" in why
    assert report.failed
    assert "1 FAILED" in report.lines()[0]
    # Every registered type is looked at; the types that never ran have nothing to replay.
    assert {t.workflow_type for t in everything.types} >= {"QuoteToCash", "CustomerMaster"}
    assert sum(t.replayed for t in everything.types) == 1
