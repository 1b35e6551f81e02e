"""ReconciliationWorkflow on the time-skipping server, with fake listings and repairs:
it reads every page across continue-as-new, repairs what is safe, turns a failed repair into
review, keeps the report bounded, and ends incomplete (not failed) when a system cannot be read."""

from __future__ import annotations

import uuid
from datetime import timedelta

from temporalio.testing import WorkflowEnvironment

from domain.contracts import Activity, TaskQueue
from domain.reconciliation import (
    DriftKind,
    Outcome,
    ReconcileActivity,
    ReconciliationInput,
    ReconciliationReport,
    Remediation,
    ReportStatus,
)
from tests.reconciliation.fakes import Fakes, many_quotes, workers
from workflows.reconciliation import ReconciliationWorkflow


async def run(
    env: WorkflowEnvironment, fakes: Fakes, request: ReconciliationInput
) -> tuple[ReconciliationReport, str]:
    """The report and the workflow id."""
    async with workers(env.client, fakes):
        handle = await env.client.start_workflow(
            ReconciliationWorkflow.run,
            request,
            id=f"reconciliation-{uuid.uuid4().hex[:8]}",
            task_queue=TaskQueue.ORCHESTRATION,
            execution_timeout=timedelta(hours=2),
        )
        report = await handle.result()
    return report, handle.id


async def test_it_reads_every_page_across_runs_and_repairs_what_is_safe(
    time_skipping_env: WorkflowEnvironment,
):
    records, sagas = many_quotes()
    fakes = Fakes(records, sagas)
    fakes.refuse.add("sub_L")
    request = ReconciliationInput(page_size=2, pages_per_run=3, max_items_per_kind=1)
    report, workflow_id = await run(time_skipping_env, fakes, request)

    assert report.status is ReportStatus.DONE and report.error is None
    assert report.scanned == {"crm": 7, "erp": 11, "billing": 10, "sagas": 10}
    assert report.pages == 4 + 6 + 5 + 5
    assert report.counts == {
        DriftKind.MISSING_IN_CRM: 1,
        DriftKind.STATUS_MISMATCH: 2,
        DriftKind.DUPLICATED_IN_ERP: 1,
    }
    assert report.outcomes == {Outcome.REPAIRED: 2, Outcome.FAILED: 1}
    assert report.remediations == {
        Remediation.REWRITE_CRM: 1,
        Remediation.COMPENSATE: 1,
        Remediation.REVIEW: 2,
    }
    # One item of each kind kept, the rest counted.
    assert sorted(i.kind for i in report.items) == sorted(report.counts)
    assert report.omitted == 1

    (written,) = fakes.repairs(Activity.CRM_RECORD_ORDER)
    assert written.order_key == "q2c-QM:crm-order"
    assert written.sales_order.order_id == "7M" and written.subscription.subscription_id == "sub_M"
    cancelled = [c.subscription_id for c in fakes.repairs(Activity.BILLING_CANCEL_SUBSCRIPTION)]
    assert sorted(cancelled) == ["sub_C", "sub_L"]
    assert fakes.repairs(Activity.ERP_CANCEL_SALES_ORDER) == []

    # Every page was read once, in order, though the run continued as new six times.
    crm_cursors = [c for name, c in fakes.calls if name == ReconcileActivity.CRM_LIST_ORDERS]
    assert crm_cursors == [None, "2", "4", "6"]
    runs, run_id = 0, None
    while runs == 0 or run_id:  # walk the chain of runs back from the latest one
        runs += 1
        history = await time_skipping_env.client.get_workflow_handle(
            workflow_id, run_id=run_id
        ).fetch_history()
        started = history.events[0].workflow_execution_started_event_attributes
        run_id = started.continued_execution_run_id
    assert runs == 7  # 20 pages, 3 a run


async def test_a_failed_repair_is_left_for_review_saying_why(
    time_skipping_env: WorkflowEnvironment,
):
    records, sagas = many_quotes()
    fakes = Fakes(records, sagas)
    fakes.refuse.add("sub_L")
    report, _ = await run(time_skipping_env, fakes, ReconciliationInput())
    (failed,) = [i for i in report.items if i.outcome is Outcome.FAILED]
    assert failed.quote_id == "QL" and failed.remediation is Remediation.REVIEW
    assert failed.outcome_detail is not None and "locked" in failed.outcome_detail
    assert report.pages == 4  # one page per system at the default page size


async def test_repairs_beyond_the_runs_budget_wait_for_the_next_run(
    time_skipping_env: WorkflowEnvironment,
):
    records, sagas = many_quotes()
    fakes = Fakes(records, sagas)
    report, _ = await run(time_skipping_env, fakes, ReconciliationInput(max_repairs=1))
    assert report.outcomes == {Outcome.REPAIRED: 1, Outcome.DEFERRED: 2}
    assert (
        len(fakes.repairs(Activity.CRM_RECORD_ORDER))
        + len(fakes.repairs(Activity.BILLING_CANCEL_SUBSCRIPTION))
        == 1
    )


async def test_a_system_that_cannot_be_read_ends_the_run_incomplete_comparing_nothing(
    time_skipping_env: WorkflowEnvironment,
):
    records, sagas = many_quotes()
    fakes = Fakes(records, sagas)
    fakes.broken.add(ReconcileActivity.ERP_LIST_SALES_ORDERS)
    report, _ = await run(time_skipping_env, fakes, ReconciliationInput())
    assert report.status is ReportStatus.INCOMPLETE
    assert report.error is not None and "erp" in report.error
    assert "INVALID_QUERY_LOCATOR" in report.error
    assert report.counts == {} and report.items == []
    assert not fakes.repairs(Activity.CRM_RECORD_ORDER)
    assert report.scanned == {"crm": 7}
