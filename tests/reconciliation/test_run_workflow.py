"""ReconcileRun on the time-skipping server against a fake estate: a full pass in windows
finds exactly the seeded drift and sets the marks; an incremental run reads only what changed
since the mark; a window that cannot be read keeps its mark and repairs nothing, and the next
run reads it again; windows too big are split; the run continues as new and carries only
its cursors; a repeated re-propagation is not a repair; reads run at priority 5."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from domain.contracts import Activity, TaskQueue
from domain.reconciliation import (
    DriftKind,
    Outcome,
    ReconciliationReport,
    Remediation,
    ReportStatus,
    System,
)
from domain.reconciliation_windows import Entity, RunInput, RunMode, WindowActivity
from domain.stages import OrderStage
from tests.reconciliation.window_fakes import (
    T0,
    Estate,
    booked_quote,
    customer,
    invoice,
    order,
    saga,
    subjects,
    workers,
)
from workflows.reconcile_run import ReconcileRunWorkflow

DAY = timedelta(days=1)


def seeded() -> Estate:
    estate = Estate()
    for n in range(30):
        estate.put(*booked_quote(f"Q{n:02d}", T0 + n * DAY))
    at = T0 + 40 * DAY
    erp, billing, _ = booked_quote("QM", at)
    estate.put(erp, billing)  # no CRM order
    estate.put(*booked_quote("QA", at + DAY))
    estate.change(Entity.ORDERS, System.CRM, "801-QA", at + DAY, amount=Decimal("600.00"))
    estate.put(order(System.CRM, "QX", "801-QX", at + 2 * DAY))  # only the CRM has it
    estate.put(*booked_quote("QC", at + 3 * DAY))  # compensated, subscription still live
    estate.change(Entity.ORDERS, System.ERP, "so-QC", at + 3 * DAY, status="cancelled", live=False)
    estate.drop(Entity.ORDERS, System.CRM, "801-QC")
    estate.sagas.append(saga("QC", OrderStage.COMPENSATED, at + 3 * DAY))
    acme = {"name": "Acme GmbH", "email": "ap@acme.example"}
    estate.put(
        customer(System.CRM, "A", "A", T0, **acme),
        customer(System.ERP, "A", "acctA", T0 + DAY, **{**acme, "name": "Acme Old"}),
        customer(System.BILLING, "A", "cus_A", T0 + DAY, **acme),
        customer(System.CRM, "B", "B", T0, name="Beta"),
        customer(System.BILLING, "B", "cus_B", T0 + 2 * DAY, name="Beta"),  # no ERP customer
        customer(System.CRM, "P", "P", T0, name="Prospect"),  # only the CRM: not compared
    )
    for n in range(12):
        estate.put(
            invoice(System.BILLING, f"in_{n}", T0 + n * DAY),
            invoice(System.ERP, f"in_{n}", T0 + n * DAY + timedelta(minutes=5)),
        )
    estate.put(
        invoice(System.BILLING, "in_lost", T0 + 20 * DAY, status="open", amount_due=Decimal("120"))
    )
    estate.put(invoice(System.BILLING, "in_paid", T0 + 21 * DAY))
    estate.put(
        invoice(
            System.ERP,
            "in_paid",
            T0 + 21 * DAY + timedelta(minutes=5),
            status="open",
            amount_due=Decimal("120"),
        )
    )
    return estate


EXPECTED = {
    ("missing_in_crm", "QM"),
    ("amount_mismatch", "QA"),
    ("missing_in_erp", "QX"),
    ("missing_in_billing", "QX"),
    ("status_mismatch", "QC"),
    ("field_mismatch", "A"),
    ("missing_in_erp", "B"),
    ("missing_in_erp", "in_lost"),
    ("status_mismatch", "in_paid"),
}


def run_input(**kw: object) -> RunInput:
    fields: dict[str, object] = {
        "window_records": 10,
        "page_size": 4,
        "lookup_batch": 3,
        "settle_seconds": 0,
        "first_span_seconds": 86_400,
    }
    fields.update(kw)
    return RunInput.model_validate(fields)


async def start(env: WorkflowEnvironment, request: RunInput) -> WorkflowHandle[Any, Any]:
    return await env.client.start_workflow(
        ReconcileRunWorkflow.run,
        request,
        id=f"reconcile-{uuid.uuid4().hex[:8]}",
        task_queue=TaskQueue.ORCHESTRATION,
        execution_timeout=timedelta(hours=6),
    )


async def run(
    env: WorkflowEnvironment, estate: Estate, folder: Path, request: RunInput
) -> tuple[ReconciliationReport, str]:
    async with workers(env.client, estate, folder):
        handle = await start(env, request)
        return await handle.result(), handle.id


async def test_a_full_pass_in_windows_finds_exactly_the_seeded_drift_and_sets_the_marks(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
):
    estate = seeded()
    report, run_id = await run(time_skipping_env, estate, tmp_path, run_input())

    assert report.status is ReportStatus.DONE, report.problems
    assert report.mode == "full"
    assert subjects(report.items) == EXPECTED
    assert report.total == len(EXPECTED) and report.omitted == 0
    assert report.quotes == 34 and report.customers == 2 and report.invoices == 14
    assert report.windows > 3  # ten records a window: the pass was split
    # Each subject was judged once: every drift item once, in the rows too.
    async with workers(time_skipping_env.client, estate, tmp_path) as store:
        rows = list(store.rows(run_id))
        marks = await store.load_marks()
        stored = await store.report(run_id)
    assert sorted((r.kind.value, r.subject) for r in rows) == sorted(EXPECTED)
    assert stored is not None and stored.status is ReportStatus.DONE
    for entity in Entity:
        mark = marks.of(entity)
        assert mark.changed is not None and mark.full_done is not None
        assert mark.full_started is None and mark.full_cursor is None
    # Safe repairs: the compensated quote's live subscription is cancelled; a re-propagation
    # of A's name; the rest is review.
    (cancelled,) = estate.called(Activity.BILLING_CANCEL_SUBSCRIPTION)
    assert cancelled.subscription_id == "sub-QC"
    (asked,) = estate.called("temporal.repropagate_customer")
    assert asked.golden_id == "A" and asked.request_id == f"{run_id}:A"
    items = {(i.kind.value, i.subject): i for i in report.items}
    assert items[("status_mismatch", "QC")].outcome is Outcome.REPAIRED
    assert items[("missing_in_crm", "QM")].remediation is Remediation.REVIEW


async def test_an_incremental_run_reads_only_the_changes_since_the_mark(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
):
    env = time_skipping_env
    estate = seeded()
    await run(env, estate, tmp_path, run_input())
    estate.calls.clear()
    now = await env.get_current_time()
    # Q03's CRM amount changed (drift); Q04's subscription changed harmlessly; A's ERP
    # copy was corrected.
    estate.change(Entity.ORDERS, System.CRM, "801-Q03", now, amount=Decimal("999.00"))
    estate.change(Entity.ORDERS, System.BILLING, "sub-Q04", now)
    estate.change(Entity.CUSTOMERS, System.ERP, "acctA", now)
    await env.sleep(timedelta(seconds=5))
    report, _ = await run(env, estate, tmp_path, run_input(mode=RunMode.INCREMENTAL))

    assert report.status is ReportStatus.DONE and report.mode == "incremental"
    assert subjects(report.items) == {("amount_mismatch", "Q03"), ("field_mismatch", "A")}
    assert report.quotes == 2 and report.customers == 1 and report.invoices == 0
    assert report.windows == 3  # one window per entity
    listed = [r for name, r in estate.calls if name.endswith("_in") and "sagas" not in name]
    assert {r.window.basis.value for r in listed} == {"changed"}
    looked = {k for name, r in estate.calls if "lookup" in name for k in r.keys}
    assert looked <= {"Q03", "Q04", "A"}


async def test_a_window_that_cannot_be_read_keeps_its_mark_and_repairs_nothing(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
):
    env = time_skipping_env
    estate = seeded()
    await run(env, estate, tmp_path, run_input())
    now = await env.get_current_time()
    estate.change(Entity.ORDERS, System.ERP, "so-Q07", now, status="cancelled", live=False)
    estate.sagas.append(saga("Q07", OrderStage.COMPENSATED, now - timedelta(days=30)))
    await env.sleep(timedelta(seconds=5))
    async with workers(env.client, estate, tmp_path) as store:
        before = (await store.load_marks()).of(Entity.ORDERS).changed
    estate.calls.clear()
    # A billing page that cannot be parsed: rejected at once.
    estate.broken[WindowActivity.BILLING_LOOKUP_SUBSCRIPTIONS] = "rejected"
    report, _ = await run(env, estate, tmp_path, run_input(mode=RunMode.INCREMENTAL))

    assert report.status is ReportStatus.INCOMPLETE
    assert report.error is not None and "billing lookup" in report.error
    assert "cannot be read" in report.error
    assert not estate.called(Activity.BILLING_CANCEL_SUBSCRIPTION)
    assert ("status_mismatch", "Q07") not in subjects(report.items)
    async with workers(env.client, estate, tmp_path) as store:
        marks = await store.load_marks()
    assert marks.of(Entity.ORDERS).changed == before  # kept where it was
    assert marks.of(Entity.CUSTOMERS).changed != before  # the other entities moved on

    # A system that stays unreadable (transient until the read budget is spent): the same.
    estate.broken[WindowActivity.BILLING_LOOKUP_SUBSCRIPTIONS] = "transient"
    report, _ = await run(
        env, estate, tmp_path, run_input(mode=RunMode.INCREMENTAL, read_budget_seconds=120)
    )
    assert report.status is ReportStatus.INCOMPLETE and "503" in (report.error or "")
    assert not estate.called(Activity.BILLING_CANCEL_SUBSCRIPTION)

    # Readable again: the next run reads that window and repairs.
    estate.broken.clear()
    report, _ = await run(env, estate, tmp_path, run_input(mode=RunMode.INCREMENTAL))
    assert report.status is ReportStatus.DONE
    assert ("status_mismatch", "Q07") in subjects(report.items)
    (cancelled,) = estate.called(Activity.BILLING_CANCEL_SUBSCRIPTION)
    assert cancelled.subscription_id == "sub-Q07"
    async with workers(env.client, estate, tmp_path) as store:
        assert (await store.load_marks()).of(Entity.ORDERS).changed != before


async def test_a_run_continues_as_new_carrying_only_its_cursors(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
):
    estate = seeded()
    request = run_input(continue_after_events=120, window_records=6)
    async with workers(time_skipping_env.client, estate, tmp_path):
        handle = await start(time_skipping_env, request)
        report = await handle.result()
        runs = 0
        async for event in handle.fetch_history_events():
            runs += event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    assert runs == 0  # the last run's history holds no continue-as-new
    first = time_skipping_env.client.get_workflow_handle(
        handle.id, run_id=handle.first_execution_run_id
    )
    first_events = [e async for e in first.fetch_history_events()]
    assert first_events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    assert report.status is ReportStatus.DONE
    assert subjects(report.items) == EXPECTED
    assert report.run_id == handle.id


async def test_a_repropagation_asked_before_is_not_a_repair(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
):
    estate = seeded()
    estate.repeated.add("A")
    report, _ = await run(time_skipping_env, estate, tmp_path, run_input())
    (item,) = [i for i in report.items if i.kind is DriftKind.FIELD_MISMATCH]
    assert item.outcome is Outcome.REPEATED
    assert Outcome.REPAIRED not in report.outcomes or report.outcomes[Outcome.REPAIRED] == 1


async def test_every_read_runs_below_the_bookings_priority(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
):
    estate = seeded()
    async with workers(time_skipping_env.client, estate, tmp_path):
        handle = await start(time_skipping_env, run_input(entities=[Entity.INVOICES]))
        await handle.result()
        events = [e async for e in handle.fetch_history_events()]
    children = [
        e.start_child_workflow_execution_initiated_event_attributes
        for e in events
        if e.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
    ]
    activities = [
        e.activity_task_scheduled_event_attributes
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert children and activities
    assert {c.priority.priority_key for c in children} == {5}
    assert {a.priority.priority_key for a in activities} == {5}


async def test_the_run_keeps_the_first_items_of_each_kind_and_the_store_every_row(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
):
    estate = seeded()
    report, run_id = await run(time_skipping_env, estate, tmp_path, run_input(max_items_per_kind=1))
    kinds = [i.kind for i in report.items]
    assert len(kinds) == len(set(kinds)) == len(report.counts)
    assert report.counts[DriftKind.MISSING_IN_ERP] == 3
    assert report.total == len(EXPECTED) and report.omitted == len(EXPECTED) - len(kinds)
    async with workers(time_skipping_env.client, estate, tmp_path) as store:
        rows = {(r.kind.value, r.subject) for r in store.rows(run_id)}
    assert rows == EXPECTED
