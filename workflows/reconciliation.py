"""ReconciliationWorkflow: read every order record of CRM, ERP and billing and the state of
every quote-to-cash saga, report the drift, repair what the rules allow.

Run by the ``revsync-reconciliation`` Schedule (``revsync schedules apply``) or at once by
``revsync reconcile --now``; queue ``orchestration``. docs/reconciliation.md has the rules.

1. Read, one page per activity call, each on its vendor's queue: CRM orders, ERP sales orders,
   subscriptions, then the sagas (visibility). After ``pages_per_run`` pages (or when
   Temporal suggests it) the run continues as new, carrying what it has read.
2. Compare (``domain.reconciliation.compare_orders``, pure), judged as of the run's start.
3. Repair what is safe with the sagas' own keyed activities: cancel a live subscription or
   ERP order of an unwound quote, write a BOOKED quote's missing CRM order again. A repair
   that fails becomes an item for review, never a failed run; past ``max_repairs`` the rest
   wait for the next run.
4. Return the report (also the ``report`` query, from the first page on).

A listing that cannot be read (its retry budget spent, or a rejection) ends the run with
an ``incomplete`` report and the reason: comparing part of a system would report drift that
is not there.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from domain.contracts import Activity, CrmOrderRecord, TaskQueue
    from domain.order import SalesOrder, Subscription
    from domain.reconciliation import (
        PHASES,
        WORKFLOW_TYPE,
        DriftItem,
        ListPage,
        ListSagas,
        OrderPage,
        OrderRecord,
        Page,
        Phase,
        ReconcileActivity,
        ReconciliationInput,
        ReconciliationReport,
        Remediation,
        ReportStatus,
        SagaPage,
        SagaState,
        ScanState,
        compare_orders,
        deferred,
        repair_failed,
        repaired,
    )
    from domain.saga import FailureType

T = TypeVar("T")

ATTEMPT_TIMEOUT = timedelta(minutes=2)
# Vendor workers heartbeat for their activities (workers.heartbeat).
HEARTBEAT_TIMEOUT = timedelta(seconds=15)
# How long one listing call retries transient failures before the run gives up.
LISTING_BUDGET = timedelta(minutes=30)
# How long one repair retries before it is left for review.
REPAIR_BUDGET = timedelta(minutes=10)

_LISTINGS: dict[Phase, tuple[str, str]] = {
    Phase.CRM: (ReconcileActivity.CRM_LIST_ORDERS, TaskQueue.CRM),
    Phase.ERP: (ReconcileActivity.ERP_LIST_SALES_ORDERS, TaskQueue.ERP),
    Phase.BILLING: (ReconcileActivity.BILLING_LIST_SUBSCRIPTIONS, TaskQueue.BILLING),
}


def _retry() -> RetryPolicy:
    return RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(minutes=1),
        non_retryable_error_types=list(FailureType.NON_RETRYABLE),
    )


def _reason(error: ActivityError) -> str:
    cause: BaseException | None = error.cause
    messages: list[str] = []
    while cause is not None and len(messages) < 3:
        text = getattr(cause, "message", None) or str(cause)
        if text and text not in messages:
            messages.append(text)
        cause = cause.__cause__
    return "; ".join(messages) or "failed"


@workflow.defn(name=WORKFLOW_TYPE)
class ReconciliationWorkflow:
    @workflow.init
    def __init__(self, request: ReconciliationInput) -> None:
        self._scan = request.carry or ScanState(started_at=workflow.now())
        self._report = ReconciliationReport(
            started_at=self._scan.started_at,
            scanned=dict(self._scan.scanned),
            pages=self._scan.pages,
        )

    @workflow.query(name="report")
    def report(self) -> ReconciliationReport:
        return self._report

    @workflow.run
    async def run(self, request: ReconciliationInput) -> ReconciliationReport:
        try:
            await self._read_everything(request)
        except ActivityError as error:
            return self._finish(ReportStatus.INCOMPLETE, f"{self._scan.phase}: {_reason(error)}")
        scan = self._scan
        comparison = compare_orders(
            scan.records, {s.quote_id: s for s in scan.sagas}, as_of=scan.started_at
        )
        self._scan = ScanState(started_at=scan.started_at, phase=scan.phase, pages=scan.pages)
        self._report.quotes = comparison.quotes
        self._report.in_flight = comparison.in_flight
        self._report.status = ReportStatus.REPAIRING
        items = await self._repair_all(comparison.items, request.max_repairs)
        self._report.record(items, request.max_items_per_kind)
        return self._finish(ReportStatus.DONE, None)

    # -- reading ----------------------------------------------------------------------------

    async def _read_everything(self, request: ReconciliationInput) -> None:
        scan = self._scan
        pages_here = 0
        for phase in PHASES[PHASES.index(scan.phase) :]:
            scan.phase = phase
            while True:
                if pages_here >= request.pages_per_run or (
                    pages_here and workflow.info().is_continue_as_new_suggested()
                ):
                    self._report.status = ReportStatus.SCANNING
                    workflow.continue_as_new(request.model_copy(update={"carry": scan}))
                cursor = await self._read_page(phase, scan, request.page_size)
                pages_here += 1
                scan.pages += 1
                scan.cursor = cursor
                self._report.pages = scan.pages
                self._report.scanned = dict(scan.scanned)
                if cursor is None:
                    break

    async def _read_page(self, phase: Phase, scan: ScanState, page_size: int) -> str | None:
        if phase is Phase.SAGAS:
            sagas: Page[SagaState] = await workflow.execute_activity(
                ReconcileActivity.LIST_SAGAS,
                ListSagas(cursor=scan.cursor, page_size=page_size),
                result_type=SagaPage,
                task_queue=TaskQueue.ORCHESTRATION,
                start_to_close_timeout=ATTEMPT_TIMEOUT,
                schedule_to_close_timeout=LISTING_BUDGET,
                retry_policy=_retry(),
            )
            scan.sagas.extend(sagas.items)
            scan.scanned["sagas"] = scan.scanned.get("sagas", 0) + len(sagas.items)
            return sagas.cursor
        activity, queue = _LISTINGS[phase]
        page: Page[OrderRecord] = await workflow.execute_activity(
            activity,
            ListPage(cursor=scan.cursor, page_size=page_size),
            result_type=OrderPage,
            task_queue=queue,
            start_to_close_timeout=ATTEMPT_TIMEOUT,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            schedule_to_close_timeout=LISTING_BUDGET,
            retry_policy=_retry(),
        )
        # Only records that name a quote are revsync's; the rest are not kept.
        scan.records.extend(r for r in page.items if r.quote_id is not None)
        scan.scanned[phase.value] = scan.scanned.get(phase.value, 0) + len(page.items)
        return page.cursor

    # -- repairing --------------------------------------------------------------------------

    async def _repair_all(self, items: list[DriftItem], max_repairs: int) -> list[DriftItem]:
        done: list[DriftItem] = []
        attempts = 0
        for item in items:
            if item.repair is None or item.remediation not in (
                Remediation.COMPENSATE,
                Remediation.REWRITE_CRM,
            ):
                done.append(item)
            elif attempts >= max_repairs:
                done.append(deferred(item))
            else:
                attempts += 1
                done.append(await self._repair(item))
        return done

    async def _repair(self, item: DriftItem) -> DriftItem:
        repair = item.repair
        assert repair is not None
        try:
            if repair.cancel_subscription is not None:
                await self._call(
                    Activity.BILLING_CANCEL_SUBSCRIPTION,
                    repair.cancel_subscription,
                    Subscription,
                    TaskQueue.BILLING,
                )
            elif repair.cancel_sales_order is not None:
                await self._call(
                    Activity.ERP_CANCEL_SALES_ORDER,
                    repair.cancel_sales_order,
                    SalesOrder,
                    TaskQueue.ERP,
                )
            elif repair.record_order is not None:
                await self._call(
                    Activity.CRM_RECORD_ORDER, repair.record_order, CrmOrderRecord, TaskQueue.CRM
                )
            else:
                return repair_failed(item, "no repair to make")
        except ActivityError as error:
            reason = _reason(error)
            workflow.logger.warning(
                "repair failed",
                extra={"quote_id": item.quote_id, "kind": item.kind.value, "reason": reason},
            )
            return repair_failed(item, reason)
        workflow.logger.info(
            "repaired",
            extra={"quote_id": item.quote_id, "kind": item.kind.value},
        )
        return repaired(item)

    async def _call(self, activity: str, arg: Any, result_type: type[T], queue: str) -> T:
        result: T = await workflow.execute_activity(
            activity,
            arg,
            result_type=result_type,
            task_queue=queue,
            start_to_close_timeout=ATTEMPT_TIMEOUT,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            schedule_to_close_timeout=REPAIR_BUDGET,
            retry_policy=_retry(),
        )
        return result

    # -- the report -------------------------------------------------------------------------

    def _finish(self, status: ReportStatus, error: str | None) -> ReconciliationReport:
        report = self._report
        report.status = status
        report.error = error
        report.finished_at = workflow.now()
        lines = [f"**Reconciliation** {status.value}, started {report.started_at:%Y-%m-%d %H:%M}"]
        if error:
            lines.append(f"**Error:** {error}")
        lines.append(
            "**Read:** " + ", ".join(f"{k} {v}" for k, v in sorted(report.scanned.items()))
        )
        lines.append(f"**Drift:** {report.total}")
        lines.extend(f"- {kind.value}: {n}" for kind, n in sorted(report.counts.items()))
        if report.outcomes:
            lines.append(
                "**Outcomes:** "
                + ", ".join(f"{k.value} {v}" for k, v in sorted(report.outcomes.items()))
            )
        workflow.set_current_details("\n\n".join(lines))
        return report
