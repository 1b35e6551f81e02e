"""Each queue's worker is built with that queue's limits from the settings: concurrency,
the server-enforced task-queue rate, the shutdown grace, and no eager activities."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.reconciliation import SagaDirectory
from domain.contracts import TaskQueue
from revsync.settings import Settings
from workers.build import build_worker

ACTIVITY_QUEUES = (TaskQueue.CRM, TaskQueue.BILLING, TaskQueue.ERP)


@pytest.fixture
async def own_client(time_skipping_env: WorkflowEnvironment) -> Client:
    """A connection of these tests' own: the workers built here are never run or shut down,
    and a worker stays registered on its client's connection, which would refuse the
    workflow tests' workers for the same queues on the shared one."""
    shared = time_skipping_env.client
    return await Client.connect(
        shared.service_client.config.target_host,
        namespace=shared.namespace,
        data_converter=shared.data_converter,
    )


def tuned() -> Settings:
    return Settings(
        orchestration_max_concurrent_workflow_tasks=7,
        crm_max_concurrent_activities=11,
        billing_max_concurrent_activities=12,
        erp_max_concurrent_activities=3,
        crm_max_task_queue_activities_per_second=1.5,
        billing_max_task_queue_activities_per_second=4,
        erp_max_task_queue_activities_per_second=None,
        worker_shutdown_grace_seconds=42,
    )


async def test_activity_workers_take_their_own_queues_limits(own_client: Client):
    settings = tuned()
    expected = {
        TaskQueue.CRM: (11, 1.5),
        TaskQueue.BILLING: (12, 4.0),
        TaskQueue.ERP: (3, None),
    }
    async with httpx.AsyncClient() as http:
        for queue in ACTIVITY_QUEUES:
            config = build_worker(queue, own_client, settings, http).config()
            assert config["task_queue"] == queue
            concurrency, rate = expected[queue]
            assert config.get("max_concurrent_activities") == concurrency, queue
            assert config.get("max_task_queue_activities_per_second") == rate, queue
            assert config.get("graceful_shutdown_timeout") == timedelta(seconds=42), queue


async def test_the_orchestration_worker_runs_workflows_only_and_never_eager_activities(
    own_client: Client,
):
    async with httpx.AsyncClient() as http:
        config = build_worker(TaskQueue.ORCHESTRATION, own_client, tuned(), http).config()
    assert config.get("max_concurrent_workflow_tasks") == 7
    assert config.get("disable_eager_activity_execution") is True
    # Activities of its own read Temporal only (e.g. reconciliation's saga directory): none
    # holds a vendor adapter, so none can bypass a vendor queue's limits.
    owners = [getattr(a, "__self__", None) for a in config.get("activities") or []]
    assert SagaDirectory in {type(o) for o in owners}
    assert not [o for o in owners if any(hasattr(v, "vendor") for v in vars(o).values())]
    assert config.get("graceful_shutdown_timeout") == timedelta(seconds=42)


def test_a_default_rate_limit_can_be_lifted_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    assert Settings(_env_file=None).billing_max_task_queue_activities_per_second == 10.0
    for spelling in ("none", "unlimited", ""):
        monkeypatch.setenv("REVSYNC_BILLING_MAX_TASK_QUEUE_ACTIVITIES_PER_SECOND", spelling)
        assert Settings(_env_file=None).billing_max_task_queue_activities_per_second is None
    monkeypatch.setenv("REVSYNC_BILLING_MAX_TASK_QUEUE_ACTIVITIES_PER_SECOND", "2.5")
    assert Settings(_env_file=None).billing_max_task_queue_activities_per_second == 2.5
    monkeypatch.setenv("REVSYNC_BILLING_MAX_TASK_QUEUE_ACTIVITIES_PER_SECOND", "0")
    with pytest.raises(ValueError, match="greater than 0"):
        Settings(_env_file=None)
