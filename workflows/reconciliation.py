"""ReconciliationWorkflow: read every order record of CRM, ERP and billing and the state of
every quote-to-cash saga, report the drift, repair what the rules allow.

Run by the ``revsync-reconciliation`` Schedule (``revsync schedules apply``) or at once by
``revsync reconcile --now``; queue ``orchestration``. docs/reconciliation.md has the rules.

1. Read, one page per activity call, each on its vendor's queue: CRM orders, ERP sales orders,
   subscriptions, then the quote sagas (visibility); ERP and billing customers, the CRM
   accounts linked there; billing invoices, ERP receivables, then the invoice sagas. After
   ``pages_per_run`` pages (or when Temporal suggests it) the run continues as new, carrying
   what it has read (only revsync's records, customers as field fingerprints); past
   ``max_carried`` records it stops with an ``incomplete`` report.
2. Compare (``domain.reconciliation``, pure), judged as of the run's start.
3. Repair what is safe: with the sagas' own keyed activities, cancel a live subscription or
   ERP order of an unwound quote, write a BOOKED quote's missing CRM order again; ask the
   customer master to re-propagate a customer whose copies drifted (once per customer per
   run). A repair that fails becomes an item for review, never a failed run; past
   ``max_repairs`` the rest wait for the next run.
4. Return the report (also the ``report`` query, from the first page on).

A listing that cannot be read (its retry budget spent, or a rejection) ends the run with
an ``incomplete`` report and the reason: comparing part of a system would report drift that
is not there.

Runs recorded before customers and invoices were compared replay without those phases (the
``reconcile-customers-and-invoices`` patch).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from domain.contracts import Activity, CrmOrderRecord, TaskQueue
    from domain.order import SalesOrder, Subscription
    from domain.reconciliation import (
        CUSTOMERS_AND_INVOICES_PATCH,
        ORDER_PHASES,
        PHASES,
        WORKFLOW_TYPE,
        CustomerPage,
        CustomerRecord,
        DriftItem,
        InvoicePage,
        InvoiceRecord,
        InvoiceSagaPage,
        InvoiceSagaState,
        ListPage,
        ListSagas,
        OrderPage,
        OrderRecord,
        Outcome,
        Page,
        Phase,
        ReconcileActivity,
        ReconciliationInput,
        ReconciliationReport,
        Remediation,
        ReportStatus,
        RepropagateCustomer,
        RepropagateOutcome,
        SagaPage,
        SagaState,
        ScanState,
        compare_customers,
        compare_invoices,
        compare_orders,
        deferred,
        repair_failed,
        repaired,
    )
    from workflows.kernel import (
        ATTEMPT_TIMEOUT,
        HEARTBEAT_TIMEOUT,
        failure_summary,
        retry_policy,
    )
    from workflows.visibility import md

T = TypeVar("T")

# How long one listing call retries transient failures before the run gives up.
LISTING_BUDGET = timedelta(minutes=30)
# How long one repair retries before it is left for review.
REPAIR_BUDGET = timedelta(minutes=10)

_LISTINGS: dict[Phase, tuple[str, str]] = {
    Phase.CRM: (ReconcileActivity.CRM_LIST_ORDERS, TaskQueue.CRM),
    Phase.ERP: (ReconcileActivity.ERP_LIST_SALES_ORDERS, TaskQueue.ERP),
    Phase.BILLING: (ReconcileActivity.BILLING_LIST_SUBSCRIPTIONS, TaskQueue.BILLING),
}
_CUSTOMER_LISTINGS: dict[Phase, tuple[str, str]] = {
    Phase.ERP_CUSTOMERS: (ReconcileActivity.ERP_LIST_CUSTOMERS, TaskQueue.ERP),
    Phase.BILLING_CUSTOMERS: (ReconcileActivity.BILLING_LIST_CUSTOMERS, TaskQueue.BILLING),
    Phase.CRM_ACCOUNTS: (ReconcileActivity.CRM_LIST_ACCOUNTS, TaskQueue.CRM),
}
_INVOICE_LISTINGS: dict[Phase, tuple[str, str]] = {
    Phase.BILLING_INVOICES: (ReconcileActivity.BILLING_LIST_INVOICES, TaskQueue.BILLING),
    Phase.ERP_RECEIVABLES: (ReconcileActivity.ERP_LIST_RECEIVABLES, TaskQueue.ERP),
}


class _TooMuchToCarry(Exception):
    """The run holds more records than ``max_carried``."""


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
        full = workflow.patched(CUSTOMERS_AND_INVOICES_PATCH)
        try:
            await self._read_everything(request, PHASES if full else ORDER_PHASES)
        except ActivityError as error:
            return self._finish(
                ReportStatus.INCOMPLETE, f"{self._scan.phase}: {failure_summary(error)}"
            )
        except _TooMuchToCarry:
            return self._finish(
                ReportStatus.INCOMPLETE,
                f"{self._scan.phase}: more than {request.max_carried} records to hold; "
                "raise max_carried (each record is a few hundred bytes of the run's "
                "continue-as-new input, limited to about 2 MB)",
            )
        scan = self._scan
        comparison = compare_orders(
            scan.records, {s.quote_id: s for s in scan.sagas}, as_of=scan.started_at
        )
        items = list(comparison.items)
        if full:
            items.extend(compare_customers(scan.customers))
            invoices = compare_invoices(
                scan.invoices,
                {s.invoice_id: s for s in scan.invoice_sagas},
                as_of=scan.started_at,
            )
            items.extend(invoices.items)
            self._report.customers = len(scan.linked_accounts())
            self._report.invoices = invoices.invoices
            self._report.invoices_in_flight = invoices.in_flight
        self._scan = ScanState(started_at=scan.started_at, phase=scan.phase, pages=scan.pages)
        self._report.quotes = comparison.quotes
        self._report.in_flight = comparison.in_flight
        self._report.status = ReportStatus.REPAIRING
        items = await self._repair_all(items, request.max_repairs)
        self._report.record(items, request.max_items_per_kind)
        return self._finish(ReportStatus.DONE, None)

    # -- reading ----------------------------------------------------------------------------

    async def _read_everything(
        self, request: ReconciliationInput, phases: tuple[Phase, ...]
    ) -> None:
        scan = self._scan
        pages_here = 0
        for phase in phases[phases.index(scan.phase) :]:
            scan.phase = phase
            while True:
                if pages_here >= request.pages_per_run or (
                    pages_here and workflow.info().is_continue_as_new_suggested()
                ):
                    self._report.status = ReportStatus.SCANNING
                    workflow.continue_as_new(request.model_copy(update={"carry": scan}))
                cursor = await self._read_page(phase, scan, request.page_size)
                if scan.carried > request.max_carried:
                    raise _TooMuchToCarry
                pages_here += 1
                scan.pages += 1
                scan.cursor = cursor
                self._report.pages = scan.pages
                self._report.scanned = dict(scan.scanned)
                if cursor is None:
                    break

    async def _read_page(self, phase: Phase, scan: ScanState, page_size: int) -> str | None:
        if phase in _CUSTOMER_LISTINGS:
            return await self._read_customers(phase, scan, page_size)
        if phase in _INVOICE_LISTINGS:
            activity, queue = _INVOICE_LISTINGS[phase]
            invoices: Page[InvoiceRecord] = await self._list(
                activity, queue, InvoicePage, ListPage(cursor=scan.cursor, page_size=page_size)
            )
            scan.invoices.extend(invoices.items)
            scan.scanned[phase.value] = scan.scanned.get(phase.value, 0) + len(invoices.items)
            return invoices.cursor
        if phase is Phase.INVOICE_SAGAS:
            invoice_sagas: Page[InvoiceSagaState] = await self._list(
                ReconcileActivity.LIST_INVOICE_SAGAS,
                TaskQueue.ORCHESTRATION,
                InvoiceSagaPage,
                ListSagas(cursor=scan.cursor, page_size=page_size),
            )
            scan.invoice_sagas.extend(invoice_sagas.items)
            scan.scanned[phase.value] = scan.scanned.get(phase.value, 0) + len(invoice_sagas.items)
            return invoice_sagas.cursor
        if phase is Phase.SAGAS:
            sagas: Page[SagaState] = await self._list(
                ReconcileActivity.LIST_SAGAS,
                TaskQueue.ORCHESTRATION,
                SagaPage,
                ListSagas(cursor=scan.cursor, page_size=page_size),
            )
            scan.sagas.extend(sagas.items)
            scan.scanned["sagas"] = scan.scanned.get("sagas", 0) + len(sagas.items)
            return sagas.cursor
        activity, queue = _LISTINGS[phase]
        page: Page[OrderRecord] = await self._list(
            activity, queue, OrderPage, ListPage(cursor=scan.cursor, page_size=page_size)
        )
        # Only records that name a quote are revsync's; the rest are not kept.
        scan.records.extend(r for r in page.items if r.quote_id is not None)
        scan.scanned[phase.value] = scan.scanned.get(phase.value, 0) + len(page.items)
        return page.cursor

    async def _read_customers(self, phase: Phase, scan: ScanState, page_size: int) -> str | None:
        activity, queue = _CUSTOMER_LISTINGS[phase]
        page: Page[CustomerRecord] = await self._list(
            activity, queue, CustomerPage, ListPage(cursor=scan.cursor, page_size=page_size)
        )
        # Only customers linked to a CRM account are revsync's; of the CRM's accounts, only
        # those billing or the ERP hold (the rest are prospects: nothing to compare).
        linked = scan.linked_accounts() if phase is Phase.CRM_ACCOUNTS else None
        scan.customers.extend(
            c
            for c in page.items
            if c.account_id is not None and (linked is None or c.account_id in linked)
        )
        scan.scanned[phase.value] = scan.scanned.get(phase.value, 0) + len(page.items)
        return page.cursor

    async def _list(self, activity: str, queue: str, result_type: type[T], arg: Any) -> T:
        """One page of a listing, retried for the listing budget."""
        return await self._call(activity, arg, result_type, queue, LISTING_BUDGET)

    # -- repairing --------------------------------------------------------------------------

    async def _repair_all(self, items: list[DriftItem], max_repairs: int) -> list[DriftItem]:
        done: list[DriftItem] = []
        attempts = 0
        # One re-propagation per customer, of every field any system holds wrong.
        customer_fields: dict[str, list[Any]] = {}
        for item in items:
            if item.repair is not None and item.repair.repropagate is not None:
                fields = customer_fields.setdefault(item.repair.repropagate.golden_id, [])
                fields.extend(f for f in item.repair.repropagate.fields if f not in fields)
        asked: dict[str, RepropagateOutcome | str] = {}
        for item in items:
            if item.repair is None or item.remediation not in (
                Remediation.COMPENSATE,
                Remediation.REWRITE_CRM,
                Remediation.REPROPAGATE_CUSTOMER,
            ):
                done.append(item)
            elif item.repair.repropagate is not None:
                golden_id = item.repair.repropagate.golden_id
                if golden_id not in asked:
                    if attempts >= max_repairs:
                        done.append(deferred(item))
                        continue
                    attempts += 1
                    asked[golden_id] = await self._repropagate(
                        item.repair.repropagate, customer_fields[golden_id]
                    )
                outcome = asked[golden_id]
                if isinstance(outcome, str):
                    done.append(repair_failed(item, outcome))
                elif outcome.repeated:
                    # Asked before: nothing was sent now, so nothing was repaired.
                    done.append(
                        item.model_copy(
                            update={"outcome": Outcome.REPEATED, "outcome_detail": outcome.detail}
                        )
                    )
                elif not outcome.scheduled:
                    done.append(repair_failed(item, outcome.detail))
                else:
                    done.append(
                        repaired(item).model_copy(update={"outcome_detail": outcome.detail})
                    )
            elif attempts >= max_repairs:
                done.append(deferred(item))
            else:
                attempts += 1
                done.append(await self._repair(item))
        return done

    async def _repropagate(
        self, request: RepropagateCustomer, fields: list[Any]
    ) -> RepropagateOutcome | str:
        """Ask the customer master; the reason of a failure as text."""
        ask = request.model_copy(
            update={
                "fields": fields,
                "request_id": f"{workflow.info().workflow_id}:{request.golden_id}",
            }
        )
        try:
            return await self._call(
                ReconcileActivity.REPROPAGATE_CUSTOMER,
                ask,
                RepropagateOutcome,
                TaskQueue.ORCHESTRATION,
            )
        except ActivityError as error:
            return failure_summary(error)

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
            reason = failure_summary(error)
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

    async def _call(
        self,
        activity: str,
        arg: Any,
        result_type: type[T],
        queue: str,
        budget: timedelta = REPAIR_BUDGET,
    ) -> T:
        """One activity, its transient failures retried for ``budget`` (a repair's, unless
        given)."""
        result: T = await workflow.execute_activity(
            activity,
            arg,
            result_type=result_type,
            task_queue=queue,
            start_to_close_timeout=ATTEMPT_TIMEOUT,
            # The orchestration worker's activities (Temporal only) do not heartbeat.
            heartbeat_timeout=None if queue == TaskQueue.ORCHESTRATION else HEARTBEAT_TIMEOUT,
            schedule_to_close_timeout=budget,
            retry_policy=retry_policy(),
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
            lines.append(f"**Error:** {md(error)}")
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
