"""revsync's Temporal Schedules, and running and reading reconciliation by hand.

``revsync schedules apply`` creates the ``revsync-reconciliation`` Schedule, or updates it
to the current settings when it exists (describe, then update: running it twice leaves one
Schedule, and a Schedule an operator paused stays paused). Runs never overlap: a run still
going when the next is due makes the Schedule skip that one.

``revsync reconcile --now`` starts a run at once and waits for its report (``--full``: a
new full pass); ``revsync reconcile --report`` prints the latest run's report from the
report store (a running run's too: it is saved after every window), ``--csv`` every row of
it, ``--run`` another run's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
    WorkflowExecutionStatus,
)
from temporalio.service import RPCError, RPCStatusCode

from adapters.reports import LocalReportStore
from domain.contracts import TaskQueue
from domain.reconciliation import (
    SCHEDULE_ID,
    WORKFLOW_TYPE,
    DriftItem,
    ReconciliationReport,
    ReportStatus,
)
from domain.reconciliation_windows import RunInput, RunMode
from revsync.settings import Settings
from workflows.reconcile_run import ReconcileRunWorkflow
from workflows.reconciliation import ReconciliationWorkflow

# A run that has not finished by then is stopped; the next run starts from scratch.
RUN_TIMEOUT = timedelta(hours=6)
# A run missed while the cluster was down is still made if it is at most this late.
CATCHUP_WINDOW = timedelta(minutes=30)
NOTE = "managed by `revsync schedules apply`"


def reconciliation_input(
    settings: Settings, *, mode: RunMode = RunMode.AUTO, settle_seconds: int | None = None
) -> RunInput:
    return RunInput(
        mode=mode,
        page_size=settings.reconcile_page_size,
        max_items_per_kind=settings.reconcile_max_items_per_kind,
        max_repairs=settings.reconcile_max_repairs,
        window_records=settings.reconcile_window_records,
        settle_seconds=settings.reconcile_settle_seconds
        if settle_seconds is None
        else settle_seconds,
        full_every_hours=settings.reconcile_full_every_hours,
        full_since=settings.reconcile_full_since,
    )


def reconciliation_schedule(settings: Settings, *, paused: bool = False) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            ReconcileRunWorkflow.run,
            reconciliation_input(settings),
            id="reconciliation",  # the Schedule appends the time of each run
            task_queue=TaskQueue.ORCHESTRATION,
            execution_timeout=RUN_TIMEOUT,
            static_summary="Reconciliation of CRM, billing and ERP (scheduled)",
        ),
        spec=ScheduleSpec(cron_expressions=[settings.reconcile_cron]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=CATCHUP_WINDOW),
        state=ScheduleState(note=NOTE, paused=paused),
    )


@dataclass(frozen=True)
class Applied:
    schedule_id: str
    action: Literal["created", "updated"]


async def apply_schedules(client: Client, settings: Settings) -> list[Applied]:
    """Create or update every Schedule revsync runs (today: reconciliation)."""
    handle = client.get_schedule_handle(SCHEDULE_ID)
    try:
        await handle.describe()
    except RPCError as error:
        if error.status is not RPCStatusCode.NOT_FOUND:
            raise
        try:
            await client.create_schedule(SCHEDULE_ID, reconciliation_schedule(settings))
            return [Applied(SCHEDULE_ID, "created")]
        except ScheduleAlreadyRunningError:
            pass  # another apply created it in between: update it like an existing one

    def updated(current: ScheduleUpdateInput) -> ScheduleUpdate:
        paused = current.description.schedule.state.paused
        return ScheduleUpdate(schedule=reconciliation_schedule(settings, paused=paused))

    await handle.update(updated)
    return [Applied(SCHEDULE_ID, "updated")]


async def run_now(
    client: Client,
    settings: Settings,
    *,
    full: bool = False,
    settle_seconds: int | None = None,
) -> tuple[str, ReconciliationReport]:
    """Start a run at once and wait for its report (``full``: a new full pass, besides the
    incremental part). Returns the workflow id and the report."""
    workflow_id = f"reconciliation-now-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}"
    handle = await client.start_workflow(
        ReconcileRunWorkflow.run,
        reconciliation_input(
            settings,
            mode=RunMode.FULL if full else RunMode.AUTO,
            settle_seconds=settle_seconds,
        ),
        id=workflow_id,
        task_queue=TaskQueue.ORCHESTRATION,
        execution_timeout=RUN_TIMEOUT,
        static_summary="Reconciliation of CRM, billing and ERP (revsync reconcile --now)",
    )
    return workflow_id, await handle.result()


def report_store(settings: Settings) -> LocalReportStore:
    return LocalReportStore(settings.reconcile_store_dir)


async def stored_report(
    settings: Settings, run_id: str | None = None
) -> tuple[str, ReconciliationReport] | None:
    """A run's report from the report store: ``run_id``'s, else the newest run's."""
    store = report_store(settings)
    if run_id is None:
        runs = await store.runs(limit=1)
        if not runs:
            return None
        run_id = runs[0].run_id
    report = await store.report(run_id)
    return None if report is None else (run_id, report)


async def latest_report(client: Client) -> tuple[str, ReconciliationReport] | None:
    """The workflow id and report of the newest run of the workflow ReconcileRun replaced
    (its report is in Temporal only), running or completed; None if none."""
    candidates = []
    async for execution in client.list_workflows(f'WorkflowType = "{WORKFLOW_TYPE}"'):
        if execution.status in (WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.COMPLETED):
            candidates.append(execution)
    if not candidates:
        return None
    newest = max(candidates, key=lambda e: e.start_time)
    handle = client.get_workflow_handle_for(
        ReconciliationWorkflow.run, newest.id, run_id=newest.run_id
    )
    if newest.status is WorkflowExecutionStatus.RUNNING:
        return newest.id, await handle.query(ReconciliationWorkflow.report)
    return newest.id, await handle.result(follow_runs=False)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def _item_row(item: DriftItem) -> list[str]:
    outcome = item.outcome.value if item.outcome else "-"
    detail = item.outcome_detail or item.detail
    return [item.kind.value, item.subject, item.remediation.value, outcome, detail]


def render_report(workflow_id: str, report: ReconciliationReport) -> str:
    finished = f"{report.finished_at:%Y-%m-%d %H:%M:%S} UTC" if report.finished_at else "-"
    head = [
        f"run: {workflow_id}" + (f" ({report.mode})" if report.mode else ""),
        f"status: {report.status.value}",
        f"started: {report.started_at:%Y-%m-%d %H:%M:%S} UTC, finished: {finished}",
        "read: " + ", ".join(f"{k} {v}" for k, v in sorted(report.scanned.items())),
        f"quotes: {report.quotes} ({report.in_flight} still booking, not judged)",
        f"customers: {report.customers}, invoices: {report.invoices} "
        f"({report.invoices_in_flight} moving, not judged)",
    ]
    if report.windows:
        head.append(f"windows compared: {report.windows}, report rows: {report.rows}")
    if report.error:
        head.append(f"ERROR: {report.error}")
    head.extend(f"note: {note}" for note in report.notes)
    parts = ["\n".join(head)]
    if report.counts:
        parts.append(
            _table(
                ["drift", "count"],
                [[kind.value, str(n)] for kind, n in sorted(report.counts.items())],
            )
        )
        parts.append(
            _table(
                ["kind", "subject", "remediation", "outcome", "detail"],
                [_item_row(i) for i in report.items],
            )
        )
        if report.omitted:
            parts.append(
                f"... and {report.omitted} more items (counted above, not listed; every row: "
                "revsync reconcile --report --csv)"
            )
    elif report.status is ReportStatus.DONE:
        parts.append("no drift")
    return "\n\n".join(parts)
