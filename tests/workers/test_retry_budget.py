"""A step's retry budget counts retrying, not waiting in a task queue (workers/attempts.py).

At a month-end close every open invoice saga wakes at once and queues for an ERP that takes a
few calls at a time; with Temporal's schedule-to-close timeout as the budget, a step that only
waited in line ran out and parked. Here eight steps share a worker that runs one at a time:
the last waits several times the budget in the queue."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Interceptor, Worker

from domain.saga import FailureType
from tests.conftest import installed_binary
from workers.attempts import AttemptInterceptor, AttemptLog
from workflows.kernel import step_failure

BUDGET = timedelta(seconds=2)


@activity.defn(name="slow_erp_call")
async def slow_erp_call(n: int) -> int:
    await asyncio.sleep(0.6)
    return n


@activity.defn(name="failing_erp_call")
async def failing_erp_call(n: int) -> int:
    raise ApplicationError(f"503 from vendor (attempt {activity.info().attempt})")


@activity.defn(name="quota_spent_call")
async def quota_spent_call(n: int) -> int:
    raise ApplicationError(
        "Salesforce daily API request limit exhausted; next attempt in 5 minutes",
        {
            "throttle": "quota",
            "limit": "Salesforce daily API request limit",
            "vendor": "salesforce",
            "operation": "get_account",
            "status": 403,
            "code": "REQUEST_LIMIT_EXCEEDED",
        },
        type=FailureType.VENDOR_TRANSIENT,
    )


@workflow.defn(name="BudgetedSteps", sandboxed=False)
class BudgetedSteps:
    @workflow.run
    async def run(self, spec: tuple[str, int]) -> list[str]:
        name, count = spec

        async def step(n: int) -> str:
            try:
                await workflow.execute_activity(
                    name,
                    n,
                    task_queue="erp-budget",
                    start_to_close_timeout=timedelta(seconds=10),
                    heartbeat_timeout=timedelta(seconds=5),
                    schedule_to_close_timeout=BUDGET,
                    retry_policy=RetryPolicy(
                        initial_interval=timedelta(milliseconds=500), backoff_coefficient=1.0
                    ),
                )
            except ActivityError as error:
                cause = error.cause
                if isinstance(cause, ApplicationError):
                    # What the saga parks with, after the type of the last failure.
                    return f"{cause.type}: {step_failure(error, BUDGET)[1]}"
                return type(cause).__name__
            return "done"

        return list(await asyncio.gather(*(step(n) for n in range(count))))


@pytest.fixture(scope="module")
async def client() -> AsyncIterator[Client]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=installed_binary("temporal"), ui=False
    )
    try:
        yield env.client
    finally:
        await env.shutdown()


async def run_steps(client: Client, interceptors: list[Interceptor], spec: tuple[str, int]):
    orchestration = f"orchestration-{uuid.uuid4().hex[:6]}"
    async with (
        Worker(
            client, task_queue=orchestration, workflows=[BudgetedSteps], interceptors=interceptors
        ),
        Worker(
            client,
            task_queue="erp-budget",
            activities=[slow_erp_call, failing_erp_call, quota_spent_call],
            max_concurrent_activities=1,
            interceptors=interceptors,
        ),
    ):
        return await client.execute_workflow(
            BudgetedSteps.run, spec, id=f"budget-{uuid.uuid4()}", task_queue=orchestration
        )


async def test_waiting_in_the_queue_does_not_spend_a_steps_budget(client: Client):
    # With Temporal's schedule-to-close as the budget, the steps at the back of the queue
    # time out without a single failure...
    plain = await run_steps(client, [], ("slow_erp_call", 8))
    assert "TimeoutError" in plain
    # ...with revsync's budget, every step runs.
    assert await run_steps(client, [AttemptInterceptor()], ("slow_erp_call", 8)) == ["done"] * 8


async def test_retrying_still_spends_it_and_the_step_says_what_failed_last(client: Client):
    (outcome,) = await run_steps(client, [AttemptInterceptor()], ("failing_erp_call", 1))
    kind, _, message = outcome.partition(": ")
    assert kind == FailureType.RETRY_BUDGET_EXHAUSTED
    assert message.startswith("gave up after retrying for 0:00:02: 503 from vendor (attempt ")


async def test_a_budget_spent_on_a_daily_quota_still_parks_saying_so(client: Client):
    (outcome,) = await run_steps(client, [AttemptInterceptor()], ("quota_spent_call", 1))
    kind, _, reason = outcome.partition(": ")
    assert kind == FailureType.RETRY_BUDGET_EXHAUSTED
    assert reason.startswith(
        "Salesforce daily API request limit exhausted (quota, not an outage: salesforce "
        "get_account HTTP 403 REQUEST_LIMIT_EXCEEDED); gave up after retrying for 0:00:02"
    )


def test_the_attempt_log_reads_only_its_own_heartbeat_details():
    assert AttemptLog.of([]) == AttemptLog()
    assert AttemptLog.of([["subscriber-a"]]) == AttemptLog()
    log = AttemptLog(queued_seconds=4.5, last_failure="503", last_details={"status": 503})
    assert AttemptLog.of([log.detail()]) == log
