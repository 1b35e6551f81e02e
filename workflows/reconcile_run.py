"""Reconciliation at volume: a run walks windows, each window a child workflow that reads,
compares, repairs and forgets. docs/reconciliation.md has the design and its bounds.

``ReconcileRun`` (the Schedule's workflow, queue ``orchestration``) carries only a cursor per
entity and basis, the marks, counters and the first items of each kind:

1. it loads the marks from the report store (``reconcile.load_marks``);
2. per entity (orders, customers, invoices, walked side by side): an incremental walk of
   ``changed`` windows from the entity's mark to the run's start less ``settle_seconds``, or,
   when one is due or in progress, a full pass of ``created`` windows from ``full_since`` (or
   where the pass stopped) instead, which sets the mark when it completes;
3. each window runs as a ``ReconcileWindow`` child; a window that listed more than
   ``window_records`` in one system comes back ``too_big`` and is split; the next window's
   span aims at half of that;
4. after each compared window the mark moves to its end and is saved with the report so far
   (``reconcile.save_progress``). A window that could not be read stops that walk: its mark
   stays, the run ends ``incomplete`` naming it, and the next run reads it again;
5. past ``continue_after_events`` events (or when Temporal suggests it) the run continues as
   new with what it carries.

``ReconcileWindow`` reads the window's listing pages from each source system, looks the
subjects' records up by key in the other systems and their sagas by workflow id, compares
with :mod:`domain.reconciliation`'s rules, makes the safe repairs (within the run's repair
budget), writes every item to the report store (``reconcile.write_rows``) and returns counts
and the first items. If a system cannot be read (a rejected or unparseable page, or one
still failing after ``read_budget_seconds``) it compares nothing and repairs nothing.

Every activity and child runs at task priority 5 (bookings run at the default, 3), so on a
backlogged vendor queue a saga's step goes first.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import Priority
from temporalio.exceptions import ActivityError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from domain.contracts import Activity, CrmOrderRecord, TaskQueue
    from domain.order import SalesOrder, Subscription
    from domain.reconciliation import (
        Basis,
        CustomerPage,
        DriftItem,
        InvoicePage,
        InvoiceSagaPage,
        InvoiceSagaState,
        OrderPage,
        Outcome,
        Page,
        ReconcileActivity,
        ReconciliationReport,
        Remediation,
        ReportStatus,
        RepropagateCustomer,
        RepropagateOutcome,
        SagaPage,
        SagaState,
        System,
        Window,
        deferred,
        repair_failed,
        repaired,
    )
    from domain.reconciliation_windows import (
        RUN_WORKFLOW_TYPE,
        WINDOW_WORKFLOW_TYPE,
        Entity,
        ListWindow,
        Lookup,
        Marks,
        Progress,
        RunCarry,
        RunInput,
        RunMode,
        SaveProgress,
        WindowActivity,
        WindowInput,
        WindowOutcome,
        WindowRecords,
        WindowResult,
        WriteRows,
        full_due,
        judge,
        latest_invoice_saga,
        latest_saga,
        merge,
        next_span,
        progress_key,
        read_order,
        reads,
        scanned_name,
        split_span,
    )
    from workflows.kernel import (
        ATTEMPT_TIMEOUT,
        HEARTBEAT_TIMEOUT,
        failure_summary,
        retry_policy,
    )
    from workflows.visibility import md

T = TypeVar("T")

# Reconciliation's task priority: below the default (3) every booking runs at.
PRIORITY = Priority(priority_key=5)
# Repairs retry for this long before they are left for review.
REPAIR_BUDGET = timedelta(minutes=10)
# Writing to the report store.
STORE_BUDGET = timedelta(minutes=10)
# Report rows per write_rows call (each item is a few hundred bytes of its input).
ROWS_PER_WRITE = 500
_RESULT_TYPES: dict[Entity, type[Any]] = {
    Entity.ORDERS: OrderPage,
    Entity.CUSTOMERS: CustomerPage,
    Entity.INVOICES: InvoicePage,
}


async def _call(
    activity: str,
    arg: Any,
    result_type: type[T],
    queue: str,
    budget: timedelta,
) -> T:
    """One activity at reconciliation's priority, its transient failures retried for
    ``budget``."""
    result: T = await workflow.execute_activity(
        activity,
        arg,
        result_type=result_type,
        task_queue=queue,
        start_to_close_timeout=ATTEMPT_TIMEOUT,
        heartbeat_timeout=None if queue == TaskQueue.ORCHESTRATION else HEARTBEAT_TIMEOUT,
        schedule_to_close_timeout=budget,
        retry_policy=retry_policy(),
        priority=PRIORITY,
    )
    return result


def _seconds(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


class _Pause(Exception):
    """The run continues as new: every walk stops at its next window."""


@workflow.defn(name=RUN_WORKFLOW_TYPE)
class ReconcileRunWorkflow:
    @workflow.init
    def __init__(self, request: RunInput) -> None:
        carry = request.carry
        self._carry: RunCarry | None = carry
        self._report = carry.report if carry else ReconciliationReport(started_at=workflow.now())
        self._pausing = False

    @workflow.query(name="report")
    def report(self) -> ReconciliationReport:
        return self._report

    @workflow.run
    async def run(self, request: RunInput) -> ReconciliationReport:
        carry = self._carry or await self._begin(request)
        self._carry = carry
        walks = [
            self._walk(request, carry, key)
            for key, progress in carry.progress.items()
            if not progress.done
        ]
        await asyncio.gather(*walks)
        if self._pausing:
            workflow.continue_as_new(request.model_copy(update={"carry": carry}))
        return await self._finish(carry)

    async def _begin(self, request: RunInput) -> RunCarry:
        as_of = _seconds(workflow.now())
        marks: Marks = await _call(
            WindowActivity.LOAD_MARKS,
            workflow.info().workflow_id,
            Marks,
            TaskQueue.ORCHESTRATION,
            STORE_BUDGET,
        )
        end = as_of - timedelta(seconds=request.settle_seconds)
        every = timedelta(hours=request.full_every_hours)
        progress: dict[str, Progress] = {}
        full: list[Entity] = []
        notes: list[str] = []
        for entity in request.entities:
            mark = marks.of(entity).model_copy()
            wants_full = request.mode is RunMode.FULL or (
                request.mode is RunMode.AUTO and full_due(mark, as_of, every)
            )
            # A full pass compares every record as of its start and then sets the mark to
            # it: walking the changes as well would judge a changed record twice.
            if not wants_full and mark.changed is not None and mark.changed < end:
                progress[progress_key(entity, Basis.CHANGED)] = Progress(
                    basis=Basis.CHANGED,
                    cursor=mark.changed,
                    end=end,
                    span_seconds=max(1, int((end - mark.changed).total_seconds())),
                )
            if wants_full:
                if request.mode is RunMode.FULL or mark.full_started is None:
                    mark.full_started = as_of
                    mark.full_cursor = request.full_since
                cursor = mark.full_cursor or request.full_since
                full.append(entity)
                progress[progress_key(entity, Basis.CREATED)] = Progress(
                    basis=Basis.CREATED,
                    cursor=cursor,
                    end=end,
                    span_seconds=request.first_span_seconds,
                )
            elif mark.changed is None:
                notes.append(f"{entity.value}: no mark yet; a full pass sets one (--full)")
            marks.entities[entity] = mark
        modes = {p.basis for p in progress.values()}
        mode = (
            "incremental and full"
            if modes == {Basis.CHANGED, Basis.CREATED}
            else "full"
            if modes == {Basis.CREATED}
            else "incremental"
        )
        report = self._report
        report.run_id = workflow.info().workflow_id
        report.mode = mode
        report.notes.extend(notes)
        return RunCarry(
            run_id=workflow.info().workflow_id,
            as_of=as_of,
            full=full,
            marks=marks,
            progress=progress,
            report=report,
        )

    # -- walking ----------------------------------------------------------------------------

    def _should_pause(self, request: RunInput) -> bool:
        info = workflow.info()
        return self._pausing or (
            info.get_current_history_length() > request.continue_after_events
            or info.is_continue_as_new_suggested()
        )

    async def _walk(self, request: RunInput, carry: RunCarry, key: str) -> None:
        progress = carry.progress[key]
        entity = Entity(key.split(":")[0])
        target = max(1, request.window_records // 2)
        while progress.cursor < progress.end:
            if self._should_pause(request):
                self._pausing = True
                return
            span = timedelta(seconds=progress.span_seconds)
            window = Window(
                basis=progress.basis,
                start=progress.cursor,
                end=min(progress.cursor + span, progress.end),
            )
            result = await self._window(request, carry, entity, window, progress.span_seconds)
            if result.outcome is WindowOutcome.TOO_BIG:
                progress.span_seconds = split_span(progress.span_seconds, result.listed, target)
                continue
            if result.outcome is WindowOutcome.INCOMPLETE:
                self._report.problems.append(
                    f"{entity.value} {window.basis.value} window {window.start:%Y-%m-%d %H:%M:%S}"
                    f" to {window.end:%Y-%m-%d %H:%M:%S} UTC not compared: {result.error}"
                )
                merge(self._report, result.report, request.max_items_per_kind)
                progress.done = True
                return
            merge(self._report, result.report, request.max_items_per_kind)
            self._report.windows += 1
            self._report.rows += result.rows
            carry.repairs += result.repairs
            carry.windows += 1
            progress.cursor = window.end
            progress.span_seconds = next_span(progress.span_seconds, result.listed, target)
            mark = carry.marks.of(entity)
            if progress.basis is Basis.CHANGED:
                mark.changed = window.end
            else:
                mark.full_cursor = window.end
            carry.marks.entities[entity] = mark
            await self._save(carry)
        progress.done = True
        if progress.basis is Basis.CREATED and carry.marks.of(entity).full_started is not None:
            # Nothing (more) to read up to the end: the pass is complete.
            self._pass_done(request, carry, entity)
            await self._save(carry)

    def _pass_done(self, request: RunInput, carry: RunCarry, entity: Entity) -> None:
        """A full pass compared every record: it sets the incremental mark (to the pass's
        start less the settling lag) when that is later than the mark."""
        mark = carry.marks.of(entity)
        started = mark.full_started or carry.as_of
        since = started - timedelta(seconds=request.settle_seconds)
        if mark.changed is None or mark.changed < since:
            mark.changed = since
        mark.full_done = started
        mark.full_started = None
        mark.full_cursor = None
        carry.marks.entities[entity] = mark

    async def _window(
        self,
        request: RunInput,
        carry: RunCarry,
        entity: Entity,
        window: Window,
        span_seconds: int,
    ) -> WindowResult:
        child = WindowInput(
            run_id=carry.run_id,
            entity=entity,
            window=window,
            as_of=carry.as_of,
            page_size=request.page_size,
            lookup_batch=request.lookup_batch,
            max_records=request.window_records,
            read_whole=span_seconds <= 1,
            max_items_per_kind=request.max_items_per_kind,
            item_room=self._item_room(request),
            max_repairs=max(0, request.max_repairs - carry.repairs),
            read_budget_seconds=request.read_budget_seconds,
        )
        workflow.set_current_details(
            f"**Reconciliation** reading {entity.value} {window.basis.value} "
            f"{window.start:%Y-%m-%d %H:%M:%S} to {window.end:%Y-%m-%d %H:%M:%S} UTC; "
            f"{carry.windows} windows compared, drift {self._report.total}"
        )
        try:
            result: WindowResult = await workflow.execute_child_workflow(
                WINDOW_WORKFLOW_TYPE,
                child,
                result_type=WindowResult,
                id=f"{carry.run_id}/{entity.value}/{window.label}",
                task_queue=TaskQueue.ORCHESTRATION,
                priority=PRIORITY,
                static_summary=f"Reconciliation window: {entity.value} {window.label}",
            )
        except ChildWorkflowError as error:
            reason = str(getattr(error.cause, "message", None) or error.cause or error)
            return WindowResult(
                entity=entity,
                window=window,
                outcome=WindowOutcome.INCOMPLETE,
                error=f"the window failed: {reason}",
                report=ReconciliationReport(started_at=workflow.now()),
            )
        return result

    def _item_room(self, request: RunInput) -> dict[str, int]:
        kept: dict[str, int] = {}
        for item in self._report.items:
            kept[item.kind.value] = kept.get(item.kind.value, 0) + 1
        return {kind: max(0, request.max_items_per_kind - n) for kind, n in kept.items()}

    async def _save(self, carry: RunCarry, *, final: bool = False) -> None:
        self._report.marks = _marks_view(carry.marks)
        report = self._report if final else self._report.model_copy(update={"items": []})
        await _call(
            WindowActivity.SAVE_PROGRESS,
            SaveProgress(run_id=carry.run_id, marks=carry.marks, report=report),
            int,
            TaskQueue.ORCHESTRATION,
            STORE_BUDGET,
        )

    async def _finish(self, carry: RunCarry) -> ReconciliationReport:
        report = self._report
        report.status = ReportStatus.INCOMPLETE if report.problems else ReportStatus.DONE
        report.error = "; ".join(report.problems) or None
        report.finished_at = workflow.now()
        report.marks = _marks_view(carry.marks)
        await self._save(carry, final=True)
        lines = [
            f"**Reconciliation** {report.status.value} ({report.mode}), "
            f"started {report.started_at:%Y-%m-%d %H:%M}",
        ]
        if report.error:
            lines.append(f"**Not compared:** {md(report.error)}")
        lines.append(
            "**Read:** " + ", ".join(f"{k} {v}" for k, v in sorted(report.scanned.items()))
        )
        lines.append(f"**Windows:** {report.windows}; **drift:** {report.total}")
        lines.extend(f"- {kind.value}: {n}" for kind, n in sorted(report.counts.items()))
        if report.outcomes:
            lines.append(
                "**Outcomes:** "
                + ", ".join(f"{k.value} {v}" for k, v in sorted(report.outcomes.items()))
            )
        lines.append(f"**Report:** `revsync reconcile --report --run {report.run_id}`")
        workflow.set_current_details("\n\n".join(lines))
        return report


def _marks_view(marks: Marks) -> dict[str, datetime | None]:
    view: dict[str, datetime | None] = {}
    for entity, mark in sorted(marks.entities.items()):
        view[f"{entity.value}.changed"] = mark.changed
        if mark.full_started is not None:
            view[f"{entity.value}.full_cursor"] = mark.full_cursor
        view[f"{entity.value}.full_done"] = mark.full_done
    return view


# -- one window -------------------------------------------------------------------------------


class _Unreadable(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@workflow.defn(name=WINDOW_WORKFLOW_TYPE)
class ReconcileWindowWorkflow:
    @workflow.run
    async def run(self, request: WindowInput) -> WindowResult:
        entity, window = request.entity, request.window
        report = ReconciliationReport(started_at=workflow.now())
        records = WindowRecords(entity, window)
        budget = timedelta(seconds=request.read_budget_seconds)
        quote_sagas: dict[str, SagaState] = {}
        invoice_sagas: dict[str, InvoiceSagaState] = {}
        listed_most = 0
        try:
            for system in read_order(entity, window.basis):
                held = await self._list(request, records, system, report, budget)
                listed_most = max(listed_most, held)
                if held > request.max_records and not request.read_whole:
                    return WindowResult(
                        entity=entity,
                        window=window,
                        outcome=WindowOutcome.TOO_BIG,
                        listed=held,
                        report=report,
                    )
            if window.basis is Basis.CHANGED and entity is not Entity.CUSTOMERS:
                await self._changed_sagas(request, records, report, budget)
            while asks := records.owner_lookups():
                for system, keys in asks.items():
                    await self._lookup(request, records, system, keys, budget)
            judged = records.judged()
            for system, keys in records.completion_lookups(judged).items():
                await self._lookup(request, records, system, keys, budget)
            if entity is Entity.ORDERS:
                quote_sagas = await self._quote_sagas(request, judged, budget)
            elif entity is Entity.INVOICES:
                invoice_sagas = await self._invoice_sagas(request, judged, budget)
            if window.basis is Basis.CHANGED:
                changes = [
                    *((q, s.changed_at) for q, s in quote_sagas.items()),
                    *((i, s.changed_at) for i, s in invoice_sagas.items()),
                ]
                for subject, changed_at in changes:
                    if changed_at is not None and changed_at >= window.end:
                        records.note_late_saga(subject)
                judged = records.judged()
        except _Unreadable as unreadable:
            report.status = ReportStatus.INCOMPLETE
            report.error = unreadable.reason
            return WindowResult(
                entity=entity,
                window=window,
                outcome=WindowOutcome.INCOMPLETE,
                error=unreadable.reason,
                listed=listed_most,
                report=report,
            )
        judgement = judge(
            entity, records.records_of(judged), quote_sagas, invoice_sagas, as_of=request.as_of
        )
        if entity is Entity.ORDERS:
            report.quotes, report.in_flight = judgement.subjects, judgement.in_flight
        elif entity is Entity.CUSTOMERS:
            report.customers = judgement.subjects
        else:
            report.invoices = judgement.subjects
            report.invoices_in_flight = judgement.in_flight
        items, repairs = await self._repair_all(request, judgement.items)
        rows = await self._write_rows(request, items)
        report.record(items, request.max_items_per_kind)
        # Only as many items of each kind as the run still keeps travel back to it.
        room = dict(request.item_room)
        kept: list[DriftItem] = []
        for item in report.items:
            left = room.get(item.kind.value, request.max_items_per_kind)
            if left > 0:
                kept.append(item)
                room[item.kind.value] = left - 1
        report.items = kept
        report.omitted = report.total - len(kept)
        report.status = ReportStatus.DONE
        report.finished_at = workflow.now()
        return WindowResult(
            entity=entity,
            window=window,
            outcome=WindowOutcome.DONE,
            listed=listed_most,
            repairs=repairs,
            rows=rows,
            report=report,
        )

    # -- reading ----------------------------------------------------------------------------

    async def _read(
        self,
        what: str,
        activity: str,
        arg: Any,
        result_type: type[T],
        queue: str,
        budget: timedelta,
    ) -> T:
        try:
            return await _call(activity, arg, result_type, queue, budget)
        except ActivityError as error:
            raise _Unreadable(f"{what}: {failure_summary(error)}") from None

    async def _list(
        self,
        request: WindowInput,
        records: WindowRecords,
        system: System,
        report: ReconciliationReport,
        budget: timedelta,
    ) -> int:
        """Every page of ``system``'s window listing; how many records it holds (stops as
        soon as that is more than the window may hold)."""
        entity = request.entity
        names = reads(entity, system)
        name = scanned_name(entity, system)
        cursor: str | None = None
        while True:
            page: Page[Any] = await self._read(
                f"{name} listing",
                names.listing,
                ListWindow(window=request.window, cursor=cursor, page_size=request.page_size),
                _RESULT_TYPES[entity],
                names.queue,
                budget,
            )
            records.add_listed(system, page.items)
            report.pages += 1
            report.scanned[name] = report.scanned.get(name, 0) + len(page.items)
            held = max(records.listed_count(system), page.total or 0)
            if held > request.max_records and not request.read_whole:
                return held
            if page.cursor is None:
                return records.listed_count(system)
            cursor = page.cursor

    async def _lookup(
        self,
        request: WindowInput,
        records: WindowRecords,
        system: System,
        keys: list[str],
        budget: timedelta,
    ) -> None:
        names = reads(request.entity, system)
        for start in range(0, len(keys), request.lookup_batch):
            batch = keys[start : start + request.lookup_batch]
            page: Page[Any] = await self._read(
                f"{scanned_name(request.entity, system)} lookup",
                names.lookup,
                Lookup(keys=batch),
                _RESULT_TYPES[request.entity],
                names.queue,
                budget,
            )
            records.add_found(system, batch, page.items)

    async def _changed_sagas(
        self,
        request: WindowInput,
        records: WindowRecords,
        report: ReconciliationReport,
        budget: timedelta,
    ) -> None:
        quotes = request.entity is Entity.ORDERS
        activity = WindowActivity.LIST_QUOTE_SAGAS if quotes else WindowActivity.LIST_INVOICE_SAGAS
        name = "sagas" if quotes else "invoice_sagas"
        cursor: str | None = None
        while True:
            listing = ListWindow(window=request.window, cursor=cursor, page_size=request.page_size)
            if quotes:
                sagas: Page[SagaState] = await self._read(
                    "saga listing", activity, listing, SagaPage, TaskQueue.ORCHESTRATION, budget
                )
                records.add_changed_sagas(s.quote_id for s in sagas.items)
                count, cursor = len(sagas.items), sagas.cursor
            else:
                invoice: Page[InvoiceSagaState] = await self._read(
                    "saga listing",
                    activity,
                    listing,
                    InvoiceSagaPage,
                    TaskQueue.ORCHESTRATION,
                    budget,
                )
                records.add_changed_sagas(s.invoice_id for s in invoice.items)
                count, cursor = len(invoice.items), invoice.cursor
            report.scanned[name] = report.scanned.get(name, 0) + count
            if cursor is None:
                return

    async def _quote_sagas(
        self, request: WindowInput, judged: list[str], budget: timedelta
    ) -> dict[str, SagaState]:
        found: list[SagaState] = []
        for start in range(0, len(judged), request.lookup_batch):
            page: Page[SagaState] = await self._read(
                "saga lookup",
                WindowActivity.LOOKUP_QUOTE_SAGAS,
                Lookup(keys=judged[start : start + request.lookup_batch]),
                SagaPage,
                TaskQueue.ORCHESTRATION,
                budget,
            )
            found.extend(page.items)
        return latest_saga(found)

    async def _invoice_sagas(
        self, request: WindowInput, judged: list[str], budget: timedelta
    ) -> dict[str, InvoiceSagaState]:
        found: list[InvoiceSagaState] = []
        for start in range(0, len(judged), request.lookup_batch):
            page: Page[InvoiceSagaState] = await self._read(
                "saga lookup",
                WindowActivity.LOOKUP_INVOICE_SAGAS,
                Lookup(keys=judged[start : start + request.lookup_batch]),
                InvoiceSagaPage,
                TaskQueue.ORCHESTRATION,
                budget,
            )
            found.extend(page.items)
        return latest_invoice_saga(found)

    # -- the report store -------------------------------------------------------------------

    async def _write_rows(self, request: WindowInput, items: list[DriftItem]) -> int:
        part = f"{request.entity.value}-{request.window.label}"
        for n, start in enumerate(range(0, len(items), ROWS_PER_WRITE)):
            await _call(
                WindowActivity.WRITE_ROWS,
                WriteRows(
                    run_id=request.run_id,
                    part=f"{part}-{n:04d}",
                    items=items[start : start + ROWS_PER_WRITE],
                ),
                int,
                TaskQueue.ORCHESTRATION,
                STORE_BUDGET,
            )
        return len(items)

    # -- repairing --------------------------------------------------------------------------

    async def _repair_all(
        self, request: WindowInput, items: list[DriftItem]
    ) -> tuple[list[DriftItem], int]:
        """The safe repairs, at most ``max_repairs``; the items with their outcomes, and how
        many repairs were made or attempted."""
        done: list[DriftItem] = []
        attempts = 0
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
                    if attempts >= request.max_repairs:
                        done.append(deferred(item))
                        continue
                    attempts += 1
                    asked[golden_id] = await self._repropagate(
                        request, item.repair.repropagate, customer_fields[golden_id]
                    )
                done.append(_repropagated(item, asked[golden_id]))
            elif attempts >= request.max_repairs:
                done.append(deferred(item))
            else:
                attempts += 1
                done.append(await self._repair(item))
        return done, attempts

    async def _repropagate(
        self, request: WindowInput, ask: RepropagateCustomer, fields: list[Any]
    ) -> RepropagateOutcome | str:
        # The run's id, not the window's: one ask per customer per run; a retried activity
        # asks once, the next run asks anew.
        ask = ask.model_copy(
            update={"fields": fields, "request_id": f"{request.run_id}:{ask.golden_id}"}
        )
        try:
            return await _call(
                ReconcileActivity.REPROPAGATE_CUSTOMER,
                ask,
                RepropagateOutcome,
                TaskQueue.ORCHESTRATION,
                REPAIR_BUDGET,
            )
        except ActivityError as error:
            return failure_summary(error)

    async def _repair(self, item: DriftItem) -> DriftItem:
        repair = item.repair
        assert repair is not None
        try:
            if repair.cancel_subscription is not None:
                await _call(
                    Activity.BILLING_CANCEL_SUBSCRIPTION,
                    repair.cancel_subscription,
                    Subscription,
                    TaskQueue.BILLING,
                    REPAIR_BUDGET,
                )
            elif repair.cancel_sales_order is not None:
                await _call(
                    Activity.ERP_CANCEL_SALES_ORDER,
                    repair.cancel_sales_order,
                    SalesOrder,
                    TaskQueue.ERP,
                    REPAIR_BUDGET,
                )
            elif repair.record_order is not None:
                await _call(
                    Activity.CRM_RECORD_ORDER,
                    repair.record_order,
                    CrmOrderRecord,
                    TaskQueue.CRM,
                    REPAIR_BUDGET,
                )
            else:
                return repair_failed(item, "no repair to make")
        except ActivityError as error:
            return repair_failed(item, failure_summary(error))
        return repaired(item)


def _repropagated(item: DriftItem, outcome: RepropagateOutcome | str) -> DriftItem:
    if isinstance(outcome, str):
        return repair_failed(item, outcome)
    if outcome.repeated:
        # The customer master had this request: nothing was sent now, nothing repaired.
        return item.model_copy(
            update={"outcome": Outcome.REPEATED, "outcome_detail": outcome.detail}
        )
    if not outcome.scheduled:
        return repair_failed(item, outcome.detail)
    return repaired(item).model_copy(update={"outcome_detail": outcome.detail})


__all__ = ["PRIORITY", "ReconcileRunWorkflow", "ReconcileWindowWorkflow"]
