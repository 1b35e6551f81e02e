"""Workflow log lines are replay-safe: each is written once, however often the workflow's
history is replayed. Time-skipping server, fake activities."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from domain.contracts import TaskQueue
from domain.quote import Quote
from domain.saga import QuoteToCashInput, QuoteToCashStatus, SagaPolicy
from domain.stages import OrderStage
from sandbox.quotes import quote_payload
from tests.observability.conftest import LogSink
from tests.workflows.fakes import FakeSystems
from workflows import visibility
from workflows.quote_to_cash import QuoteToCashWorkflow

BOOKING_STAGES = ["VALIDATING", "BOOKING_ERP", "PROVISIONING_BILLING", "UPDATING_CRM", "BOOKED"]


def workflow_lines(sink: LogSink, workflow_id: str) -> list[dict[str, Any]]:
    return [
        line
        for line in sink.lines()
        if line.get("logger") == "temporalio.workflow" and line.get("workflow_id") == workflow_id
    ]


async def run_uncached(env: WorkflowEnvironment, quote: Quote) -> tuple[str, QuoteToCashStatus]:
    """Run the saga on an orchestration worker that keeps no workflow in its cache: every
    workflow task replays the history from the start before it goes on."""
    fakes = FakeSystems()
    workers = [
        Worker(
            env.client,
            task_queue=TaskQueue.ORCHESTRATION,
            workflows=[QuoteToCashWorkflow],
            max_cached_workflows=0,
        ),
        *(
            Worker(env.client, task_queue=queue, activities=acts)
            for queue, acts in fakes.activities().items()
        ),
    ]
    workflow_id = visibility.workflow_id_for_quote(quote.quote_id)
    async with workers[0], workers[1], workers[2], workers[3], workers[4]:
        status = await env.client.execute_workflow(
            QuoteToCashWorkflow.run,
            QuoteToCashInput(quote=quote, policy=SagaPolicy()),
            id=workflow_id,
            task_queue=TaskQueue.ORCHESTRATION,
        )
    return workflow_id, status


async def test_each_workflow_line_is_written_once_though_every_task_replays(
    time_skipping_env: WorkflowEnvironment, log_lines: LogSink
):
    quote = Quote.model_validate(quote_payload(f"Q-{uuid.uuid4().hex[:12]}"))
    workflow_id, status = await run_uncached(time_skipping_env, quote)
    assert status.stage is OrderStage.BOOKED

    handle = time_skipping_env.client.get_workflow_handle(workflow_id)
    history = await handle.fetch_history()
    tasks = sum(
        1 for event in history.events if event.HasField("workflow_task_completed_event_attributes")
    )
    # One task per step at least: without the cache, the later ones replayed the earlier ones.
    assert tasks >= len(BOOKING_STAGES)

    lines = workflow_lines(log_lines, workflow_id)
    stages = [line["stage"] for line in lines if line["event"] == "stage changed"]
    assert stages == BOOKING_STAGES
    counted = Counter((line["event"], line.get("stage")) for line in lines)
    assert all(n == 1 for n in counted.values()), counted
    for line in lines:
        assert line["quote_id"] == quote.quote_id
        assert line["customer_id"] == quote.account_id
        assert line["run_id"] == history.run_id
        assert line["workflow_type"] == "QuoteToCash"
        assert line["level"] == "info"


async def test_replaying_a_whole_history_writes_no_workflow_line(
    time_skipping_env: WorkflowEnvironment, log_lines: LogSink
):
    quote = Quote.model_validate(quote_payload(f"Q-{uuid.uuid4().hex[:12]}"))
    workflow_id, _ = await run_uncached(time_skipping_env, quote)
    written = len(workflow_lines(log_lines, workflow_id))
    assert written == len(BOOKING_STAGES)

    history: WorkflowHistory = await time_skipping_env.client.get_workflow_handle(
        workflow_id
    ).fetch_history()
    replayer = Replayer(workflows=[QuoteToCashWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)

    assert result.replay_failure is None
    assert len(workflow_lines(log_lines, workflow_id)) == written
