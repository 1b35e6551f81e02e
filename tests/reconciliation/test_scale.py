"""Reconciliation at a small scale on the whole stack (real dev server, the production
workers, the sandbox over HTTP): thousands of records seeded in bulk (sandbox/bulk.py) with
1% drift, a full pass in windows finds exactly that drift; changes after it, an incremental
run finds exactly the drift of the changed subjects; a system that cannot be read keeps its
entity's mark and repairs nothing, and the next run reads that window. The benchmark
(bench/reconcile.py) runs the same at 100,000 quotes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from adapters.reports import LocalReportStore
from domain.contracts import TaskQueue
from domain.reconciliation import ReconciliationReport, ReportStatus
from domain.reconciliation_windows import Entity, Marks, RunInput, RunMode
from sandbox.bulk import BulkSpec, Seeded, change_estate, seed_estate
from sandbox.faults import FaultRule, FaultsRequest
from tests.e2e.stack import Stack, running_stack
from workflows.reconcile_run import ReconcileRunWorkflow

pytestmark = pytest.mark.e2e

SPEC = BulkSpec(quotes=2_000, invoices=2_000, customers=400, drift_per_mille=10, days=60)


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    async with running_stack() as running:
        yield running


@pytest.fixture(scope="module")
def seeded(stack: Stack) -> Seeded:
    return seed_estate(stack.sandbox.state, SPEC)


async def reconcile(stack: Stack, mode: RunMode, run_id: str) -> ReconciliationReport:
    await asyncio.sleep(1.1)  # windows end at whole seconds: let this one pass
    request = RunInput(
        mode=mode,
        settle_seconds=0,
        window_records=600,  # the seed spans several windows
        page_size=500,
        max_repairs=20,
    )
    handle = await stack.client.start_workflow(
        ReconcileRunWorkflow.run,
        request,
        id=run_id,
        task_queue=TaskQueue.ORCHESTRATION,
        execution_timeout=timedelta(minutes=20),
    )
    return await handle.result()


def store(stack: Stack) -> LocalReportStore:
    return LocalReportStore(stack.settings.reconcile_store_dir)


def rows(stack: Stack, run_id: str) -> set[tuple[str, str]]:
    return {(r.kind.value, r.subject) for r in store(stack).rows(run_id)}


async def marks(stack: Stack) -> Marks:
    return await store(stack).load_marks()


async def test_a_full_pass_then_changes_then_an_unreadable_system(stack: Stack, seeded: Seeded):
    assert len(seeded.drift) == 20 + 20 + 4  # 1% of quotes, invoices and customers

    full = await reconcile(stack, RunMode.FULL, "scale-full")
    assert full.status is ReportStatus.DONE, full.problems
    assert rows(stack, "scale-full") == seeded.drift
    assert full.total == len(seeded.drift)
    assert full.quotes == SPEC.quotes and full.invoices == SPEC.invoices
    assert full.windows > 3
    after_full = await marks(stack)
    for entity in Entity:
        assert after_full.of(entity).changed is not None
        assert after_full.of(entity).full_done is not None

    changed = change_estate(stack.sandbox.state, seeded, count=100)
    incremental = await reconcile(stack, RunMode.INCREMENTAL, "scale-incremental")
    assert incremental.status is ReportStatus.DONE, incremental.problems
    assert rows(stack, "scale-incremental") == changed.drift
    assert len(changed.drift) >= 40  # the changes that drift, and drifted subjects touched
    after_incremental = await marks(stack)
    for entity in Entity:
        before, after = after_full.of(entity).changed, after_incremental.of(entity).changed
        assert before is not None and after is not None and after > before

    # NetSuite answers every SuiteQL query 400 (a page it cannot make): the ERP cannot be
    # read, so no window is compared, no mark moves and nothing is repaired.
    state = stack.sandbox.state
    again = change_estate(state, seeded, count=20, seed=3)
    state.faults.configure(
        FaultsRequest(
            faults=[FaultRule(vendor="netsuite", operation="suiteql", status=400, times=1000)]
        )
    )
    try:
        broken = await reconcile(stack, RunMode.INCREMENTAL, "scale-broken")
    finally:
        state.faults.configure(FaultsRequest(clear=True))
    assert broken.status is ReportStatus.INCOMPLETE
    assert broken.error is not None and "not compared" in broken.error
    assert broken.total == 0 and rows(stack, "scale-broken") == set()
    assert await marks(stack) == after_incremental

    fixed = await reconcile(stack, RunMode.INCREMENTAL, "scale-fixed")
    assert fixed.status is ReportStatus.DONE, fixed.problems
    assert rows(stack, "scale-fixed") == again.drift
    for entity in Entity:
        later = (await marks(stack)).of(entity).changed
        earlier = after_incremental.of(entity).changed
        assert later is not None and earlier is not None and later > earlier
