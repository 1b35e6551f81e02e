"""SIGTERM to a real `revsync worker erp` process while NetSuite is still answering: the
in-flight activity finishes on that worker within the grace period, the process stops polling
and exits, and nothing is lost or done twice once the next worker takes over.

A real dev server; the orchestration, CRM and billing workers run in this process, the ERP
worker as its own process (the one signalled); the sandbox holds NetSuite's sales-order create
for a few seconds, so the signal lands while that request is in flight.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Request, Response
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from domain.contracts import Activity, TaskQueue
from domain.quote import Quote
from domain.saga import QuoteToCashInput
from domain.stages import OrderStage
from revsync.codec import KeyRing, encrypted_data_converter
from revsync.demo import create_crm_quote, wait_for_saga
from revsync.settings import Settings
from sandbox.app import SandboxState
from sandbox.app import create_app as create_sandbox
from sandbox.faults import FaultsRequest, LatencyRule
from sandbox.quotes import quote_payload
from tests.conftest import installed_binary
from tests.e2e.stack import ThreadedServer, stack_settings
from workers.build import build_worker, new_http_client
from workflows import visibility
from workflows.quote_to_cash import QuoteToCashWorkflow

REVSYNC = str(Path(sys.executable).parent / "revsync")
GRACE_SECONDS = 20.0
# Long enough that the SIGTERM surely lands mid-request, well inside the grace period.
NETSUITE_CREATE_MS = 4000
SALES_ORDER_PATH = "/netsuite/services/rest/record/v1/salesOrder"
ACCOUNT = "0015e00000AcmeUS1"


class RecordingSandbox(ThreadedServer):
    """The vendor sandbox, noting every request as it arrives (before any injected delay)."""

    def __init__(self) -> None:
        self.state = SandboxState()
        self.requests: list[tuple[str, str]] = []
        app = create_sandbox(self.state)

        @app.middleware("http")
        async def record(request: Request, call_next: Callable[..., Any]) -> Response:
            self.requests.append((request.method, request.url.path))
            response: Response = await call_next(request)
            return response

        super().__init__(app)

    def sales_order_creates(self) -> int:
        return self.requests.count(("POST", SALES_ORDER_PATH))


@dataclass
class Harness:
    client: Client
    settings: Settings
    sandbox: RecordingSandbox
    tmp: Path


@pytest.fixture(scope="module")
async def harness(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    sandbox = RecordingSandbox()
    settings = stack_settings(sandbox.url, "pending").model_copy(
        update={"worker_shutdown_grace_seconds": GRACE_SECONDS, "http_timeout_seconds": 30.0}
    )
    env = await WorkflowEnvironment.start_local(
        data_converter=encrypted_data_converter(KeyRing.from_settings(settings)),
        dev_server_existing_path=installed_binary("temporal"),
        search_attributes=list(visibility.ALL_KEYS),
        dev_server_extra_args=["--headless"],
    )
    settings = settings.model_copy(
        update={"temporal_address": env.client.service_client.config.target_host}
    )
    sandbox.start()
    async with AsyncExitStack() as stack:
        stack.push_async_callback(env.shutdown)
        stack.callback(sandbox.stop)
        http = await stack.enter_async_context(new_http_client(settings))
        # Everything but ERP runs here; the ERP worker is the process under test.
        for queue in (TaskQueue.ORCHESTRATION, TaskQueue.CRM, TaskQueue.BILLING, TaskQueue.EVENTS):
            await stack.enter_async_context(build_worker(queue, env.client, settings, http))
        yield Harness(env.client, settings, sandbox, tmp_path_factory.mktemp("erp-workers"))


class WorkerProcess:
    """`revsync worker erp` as production runs it: configured by environment only."""

    def __init__(self, harness: Harness, name: str) -> None:
        s = harness.settings
        assert s.payload_keys is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("REVSYNC_")}
        env |= {
            "REVSYNC_TEMPORAL_ADDRESS": s.temporal_address,
            "REVSYNC_PAYLOAD_KEYS": s.payload_keys.get_secret_value(),
            "REVSYNC_NETSUITE_BASE_URL": s.netsuite_base_url,
            "REVSYNC_WORKER_SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS),
            "REVSYNC_HTTP_TIMEOUT_SECONDS": "30",
            "REVSYNC_LOG_FORMAT": "json",
        }
        self.log = harness.tmp / f"{name}.log"
        self._out = self.log.open("wb")
        self.process = subprocess.Popen(
            [REVSYNC, "worker", TaskQueue.ERP],
            env=env,
            cwd=harness.tmp,  # no developer's .env applies
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )
        # The SDK's default worker identity, as the server records it on each activity.
        self.identity = f"{self.process.pid}@{socket.gethostname()}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._out.close()


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.stop()


async def start_saga(harness: Harness) -> str:
    async with httpx.AsyncClient(timeout=30) as http:
        quote_id = await create_crm_quote(http, harness.settings, ACCOUNT)
    quote = Quote.model_validate(quote_payload(quote_id, account_id=ACCOUNT))
    await harness.client.start_workflow(
        QuoteToCashWorkflow.run,
        QuoteToCashInput(quote=quote, policy=harness.settings.saga_policy),
        id=visibility.workflow_id_for_quote(quote_id),
        task_queue=TaskQueue.ORCHESTRATION,
        search_attributes=visibility.start_attributes(quote, datetime.now(UTC)),
    )
    return quote_id


async def until(condition: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


@dataclass(frozen=True)
class ActivityRun:
    activity: str
    attempt: int
    started_by: str
    completed_by: str | None


async def erp_activities(client: Client, quote_id: str) -> list[ActivityRun]:
    """Every ERP activity of the saga: the attempt it ended on, who started and completed it."""
    history = await client.get_workflow_handle(
        visibility.workflow_id_for_quote(quote_id)
    ).fetch_history()
    scheduled: dict[int, str] = {}
    started: dict[int, tuple[int, str]] = {}
    completed: dict[int, str] = {}
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            if attrs.task_queue.name == TaskQueue.ERP:
                scheduled[event.event_id] = attrs.activity_type.name
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            s = event.activity_task_started_event_attributes
            started[s.scheduled_event_id] = (s.attempt, s.identity)
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            c = event.activity_task_completed_event_attributes
            completed[c.scheduled_event_id] = c.identity
    return [
        ActivityRun(name, *started.get(event_id, (0, "")), completed.get(event_id))
        for event_id, name in scheduled.items()
    ]


def sales_orders(harness: Harness, quote_id: str) -> list[dict[str, Any]]:
    key = f"{visibility.workflow_id_for_quote(quote_id)}:erp-order"
    orders = harness.sandbox.state.snapshot()["netsuite"]["salesOrders"]
    return [o for o in orders if o.get("externalId") == key]


async def test_sigterm_mid_activity_lets_it_finish_then_the_next_worker_takes_over(
    harness: Harness, workers: list[WorkerProcess]
):
    harness.sandbox.state.faults.configure(
        FaultsRequest(
            latency=[
                LatencyRule(
                    vendor="netsuite", operation="create_sales_order", ms=NETSUITE_CREATE_MS
                )
            ]
        )
    )
    first = WorkerProcess(harness, "erp-1")
    workers.append(first)
    before = harness.sandbox.sales_order_creates()
    q1 = await start_saga(harness)
    await until(
        lambda: harness.sandbox.sales_order_creates() == before + 1,
        f"the sales-order create of {q1} to reach NetSuite",
    )
    assert first.process.poll() is None, first.output()

    first.process.send_signal(signal.SIGTERM)
    # A saga started while the worker drains must wait for the next worker: the signalled
    # one no longer polls.
    q2 = await start_saga(harness)
    try:
        code = await asyncio.to_thread(first.process.wait, GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker did not exit within the grace period:\n{first.output()}")
    assert code == 0, first.output()
    assert "worker stopped" in first.output()

    # The in-flight booking finished on the signalled worker, on its first attempt.
    q1_erp = {run.activity: run for run in await erp_activities(harness.client, q1)}
    booked = q1_erp[Activity.ERP_BOOK_SALES_ORDER]
    assert booked.attempt == 1
    assert booked.started_by == first.identity
    assert booked.completed_by == first.identity
    assert len(sales_orders(harness, q1)) == 1
    # ...and nothing of the second saga did.
    assert all(run.started_by != first.identity for run in await erp_activities(harness.client, q2))

    second = WorkerProcess(harness, "erp-2")
    workers.append(second)
    for quote_id in (q1, q2):
        status = await wait_for_saga(
            harness.client, visibility.workflow_id_for_quote(quote_id), time.monotonic() + 90
        )
        assert status is not None
        assert status.stage is OrderStage.BOOKED, (status, second.output())

    # One request and one record per saga: nothing lost, nothing sent or booked twice.
    assert harness.sandbox.sales_order_creates() == before + 2
    for quote_id in (q1, q2):
        (order,) = sales_orders(harness, quote_id)
        status = await harness.client.get_workflow_handle_for(
            QuoteToCashWorkflow.run, visibility.workflow_id_for_quote(quote_id)
        ).query(QuoteToCashWorkflow.status)
        assert str(order["id"]) == status.erp_order_id
    runs = await erp_activities(harness.client, q1) + await erp_activities(harness.client, q2)
    assert all(run.attempt == 1 and run.completed_by == run.started_by for run in runs), runs
    q2_runs = await erp_activities(harness.client, q2)
    assert {run.activity for run in q2_runs} >= {Activity.ERP_BOOK_SALES_ORDER}
    assert all(run.started_by == second.identity for run in q2_runs), q2_runs
