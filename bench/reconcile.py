"""Reconciliation at the volume of a mid-market company (issue 16).

A real Temporal dev server; the vendor sandbox (Salesforce, NetSuite, Stripe) served over
HTTP from a thread of this process, seeded in bulk in process (``sandbox/bulk.py``: 100,000
booked quotes, 100,000 invoices, 20,000 customers by default, 1% of them drifted in known
ways, made over two years); revsync's production workers as their own processes
(``revsync worker <queue>``, one per queue, production settings: the billing queue's rate
limit included), so their memory is theirs alone.

1. **idle**: ``--sagas`` quote-to-cash sagas booked one after the other on the seeded
   stack, nothing else running: each one's time from start to completion;
2. **full**: a full reconciliation pass (``ReconcileRun``, mode full). While it runs, the
   same number of sagas are booked, spread over its first minutes; each worker's RSS is
   sampled every second. Then the run's report rows are compared with the seeded drift, and
   every run's history length is read (the ``ReconcileRun`` chain and each
   ``ReconcileWindow``);
3. **incremental**: ``--changes`` changes (``change_estate``: harmless ones and drifting
   ones, some on subjects that drifted already), then an incremental run: its time, and its
   rows against the drift of the changed subjects.

Targets (printed against the figures, never asserted): incremental < 60 s and exact; full
< 15 min and exact; worker RSS < 300 MB; each run's history < 10,000 events; saga p95
during the full run within 2x of idle.

    python -m bench.reconcile                      # the record (~15-25 min here)
    python -m bench.reconcile --quotes 5000 --invoices 5000 --customers 1000 --sagas 5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil

from adapters.reports import LocalReportStore
from bench.common import (
    banner,
    cpu_seconds,
    percentile,
    print_table,
    quiet_logging,
    rnd,
    thread_cpu_seconds,
    write_results,
)
from bench.stack import BenchStack, ChildProcess, bench_stack, child_env, create_crm_quotes
from bench.stack import revsync_command as command
from domain.contracts import TaskQueue
from domain.reconciliation import ReconciliationReport
from domain.reconciliation_windows import RunInput, RunMode
from sandbox.bulk import BulkSpec, Seeded, change_estate, seed_estate
from sandbox.quotes import quote_payload
from sandbox.seed import BOOKABLE_ACCOUNT_IDS
from workflows.reconcile_run import ReconcileRunWorkflow

NAME = "reconcile"
MB = 2**20
QUEUES = (
    TaskQueue.ORCHESTRATION,
    TaskQueue.CRM,
    TaskQueue.ERP,
    TaskQueue.BILLING,
    TaskQueue.EVENTS,
)


@contextlib.asynccontextmanager
async def worker_processes(
    stack: BenchStack, data_dir: Path
) -> AsyncIterator[dict[str, ChildProcess]]:
    """``revsync worker <queue>`` for every queue, as in production."""
    env = child_env(stack.settings, data_dir)
    workers: dict[str, ChildProcess] = {}
    try:
        for queue in QUEUES:
            log = stack.workdir / f"worker-{queue}.log"
            workers[queue] = ChildProcess(command("worker", queue), env, stack.workdir, log)
        deadline = time.monotonic() + 120
        for queue, child in workers.items():
            while "worker started" not in child.log.read_text(errors="replace"):
                if child.popen.poll() is not None or time.monotonic() > deadline:
                    tail = child.log.read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"worker {queue} did not start:\n{tail}")
                await asyncio.sleep(0.2)
        yield workers
    finally:
        for child in workers.values():
            child.stop()


class Rss:
    """Peak RSS of each worker, sampled every second while a phase runs."""

    def __init__(self, workers: dict[str, ChildProcess]) -> None:
        self.workers = workers
        self.peak: dict[str, float] = dict.fromkeys(workers, 0.0)

    def sample(self) -> None:
        for queue, child in self.workers.items():
            with contextlib.suppress(psutil.Error):
                self.peak[queue] = max(self.peak[queue], child.process.memory_info().rss / MB)

    async def watch(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.sample()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)


async def book(stack: BenchStack, count: int, spacing: float) -> tuple[list[float], list[str]]:
    """``count`` quote-to-cash sagas started ``spacing`` seconds apart; each one's seconds
    from its start to its completion (BOOKED and its event published), and the quotes."""
    accounts = [BOOKABLE_ACCOUNT_IDS[n % len(BOOKABLE_ACCOUNT_IDS)] for n in range(count)]
    quotes = await create_crm_quotes(stack.settings, accounts)

    async def one(n: int, quote_id: str) -> float:
        await asyncio.sleep(n * spacing)
        payload = quote_payload(quote_id, account_id=accounts[n])
        started = time.monotonic()
        workflow_id = await stack.start_saga(payload)
        await stack.client.get_workflow_handle(workflow_id).result()
        return time.monotonic() - started

    return list(await asyncio.gather(*(one(n, q) for n, q in enumerate(quotes)))), quotes


async def saga_waits(stack: BenchStack, quotes: list[str]) -> dict[str, float]:
    """Where the sagas' time went, in seconds per saga on average: waiting for a worker
    (activity tasks per queue, and workflow tasks) and running their activities."""
    totals: dict[str, float] = {}
    for quote in quotes:
        history = await stack.client.get_workflow_handle(f"q2c-{quote}").fetch_history()
        pending: dict[int, tuple[str, float]] = {}
        started: dict[int, float] = {}
        task_scheduled = 0.0
        for event in history.events:
            at = event.event_time.ToDatetime().timestamp()
            if event.HasField("activity_task_scheduled_event_attributes"):
                queue = event.activity_task_scheduled_event_attributes.task_queue.name
                pending[event.event_id] = (queue, at)
            elif event.HasField("activity_task_started_event_attributes"):
                queue, scheduled = pending[
                    event.activity_task_started_event_attributes.scheduled_event_id
                ]
                key = f"queue wait {queue}"
                totals[key] = totals.get(key, 0.0) + at - scheduled
                started[event.activity_task_started_event_attributes.scheduled_event_id] = at
            elif event.HasField("activity_task_completed_event_attributes"):
                scheduled_id = event.activity_task_completed_event_attributes.scheduled_event_id
                queue, _ = pending[scheduled_id]
                key = f"run {queue}"
                totals[key] = totals.get(key, 0.0) + at - started.get(scheduled_id, at)
            elif event.HasField("workflow_task_scheduled_event_attributes"):
                task_scheduled = at
            elif event.HasField("workflow_task_started_event_attributes"):
                totals["workflow task wait"] = (
                    totals.get("workflow task wait", 0.0) + at - task_scheduled
                )
    return {k: rnd(v / max(len(quotes), 1), 2) for k, v in sorted(totals.items())}


def unposted_invoices(stack: BenchStack, quotes: list[str]) -> set[tuple[str, str]]:
    """The sandbox sends no Stripe webhooks: the first invoice of each booked quote's
    subscription never reaches invoice-to-revenue, so it has no receivable, which is drift
    (``missing_in_erp``) reconciliation must report, as it would in production."""
    assert stack.sandbox_state is not None
    wanted = set(quotes)
    return {
        ("missing_in_erp", str(sub["latest_invoice"]))
        for sub in stack.sandbox_state.stripe.subscriptions.values()
        if sub["metadata"].get("quote_id") in wanted and sub.get("latest_invoice")
    }


async def reconcile(
    stack: BenchStack, mode: RunMode, run_id: str, args: argparse.Namespace
) -> tuple[ReconciliationReport, float]:
    await asyncio.sleep(1.1)  # windows end at whole seconds: everything made so far is in
    request = RunInput(
        mode=mode,
        settle_seconds=0,
        page_size=args.page_size,
        window_records=args.window_records,
        max_repairs=args.max_repairs,
    )
    started = time.monotonic()
    handle = await stack.client.start_workflow(
        ReconcileRunWorkflow.run,
        request,
        id=run_id,
        task_queue=TaskQueue.ORCHESTRATION,
        execution_timeout=timedelta(hours=2),
    )
    report = await handle.result()
    return report, time.monotonic() - started


async def window_time(stack: BenchStack) -> dict[str, Any]:
    """Where the windows' time goes: per activity, how many, and their seconds from being
    scheduled to completing (queue wait included), summed over every window."""
    spent: dict[str, list[float]] = {}
    windows = 0
    async for execution in stack.client.list_workflows('WorkflowType = "ReconcileWindow"'):
        windows += 1
        scheduled: dict[int, tuple[str, float]] = {}
        history = await stack.client.get_workflow_handle(
            execution.id, run_id=execution.run_id
        ).fetch_history()
        for event in history.events:
            at = event.event_time.ToDatetime().timestamp()
            if event.HasField("activity_task_scheduled_event_attributes"):
                name = event.activity_task_scheduled_event_attributes.activity_type.name
                scheduled[event.event_id] = (name, at)
            elif event.HasField("activity_task_completed_event_attributes"):
                name, began = scheduled[
                    event.activity_task_completed_event_attributes.scheduled_event_id
                ]
                spent.setdefault(name, []).append(at - began)
    return {
        "windows": windows,
        "activities": {
            name: {"calls": len(times), "seconds": rnd(sum(times), 1)}
            for name, times in sorted(spent.items(), key=lambda kv: -sum(kv[1]))
        },
    }


async def histories(stack: BenchStack) -> dict[str, Any]:
    """The longest history of any ReconcileRun run and of any ReconcileWindow."""
    found: dict[str, list[int]] = {"ReconcileRun": [], "ReconcileWindow": []}
    for kind in found:
        async for execution in stack.client.list_workflows(f'WorkflowType = "{kind}"'):
            found[kind].append(int(execution.history_length or 0))
    return {
        kind: {"runs": len(lengths), "max_events": max(lengths, default=0)}
        for kind, lengths in found.items()
    }


def cpu_now(stack: BenchStack, workers: dict[str, ChildProcess]) -> dict[str, float]:
    """CPU seconds so far: the Temporal server, each worker, the sandbox's thread."""
    found = {f"worker {q}": cpu_seconds(c.process) for q, c in workers.items()}
    if stack.server is not None:
        found["temporal server"] = cpu_seconds(stack.server)
    if stack.sandbox_thread_id is not None:
        found["sandbox"] = thread_cpu_seconds().get(stack.sandbox_thread_id, 0.0)
    return found


def compare(expected: set[tuple[str, str]], rows: set[tuple[str, str]]) -> dict[str, Any]:
    return {
        "expected": len(expected),
        "found": len(rows),
        "missed": len(expected - rows),
        "unexpected": len(rows - expected),
        "exact": expected == rows,
    }


def stats(seconds: list[float]) -> dict[str, float]:
    return {
        "n": len(seconds),
        "p50_s": rnd(percentile(seconds, 50), 2),
        "p95_s": rnd(percentile(seconds, 95), 2),
        "max_s": rnd(max(seconds, default=0.0), 2),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    quiet_logging()
    spec = BulkSpec(
        quotes=args.quotes, invoices=args.invoices, customers=args.customers, seed=args.seed
    )
    async with bench_stack("thread") as stack:
        assert stack.sandbox_state is not None
        started = time.monotonic()
        seeded: Seeded = seed_estate(stack.sandbox_state, spec)
        seed_seconds = time.monotonic() - started
        print(
            f"seeded {spec.quotes} quotes, {spec.invoices} invoices, {spec.customers} "
            f"customers ({len(seeded.drift)} drifted) in {seed_seconds:.1f} s",
            flush=True,
        )
        data_dir = stack.workdir / "data"
        data_dir.mkdir()
        store = LocalReportStore(data_dir / "reconciliation")
        async with worker_processes(stack, data_dir) as workers:
            rss = Rss(workers)
            idle, idle_quotes = await book(stack, args.sagas, spacing=0.5)
            print(f"idle bookings: p95 {stats(idle)['p95_s']} s", flush=True)

            cpu_before = cpu_now(stack, workers)
            stop = asyncio.Event()
            watcher = asyncio.create_task(rss.watch(stop))
            full_task = asyncio.create_task(reconcile(stack, RunMode.FULL, "bench-full", args))
            await asyncio.sleep(5)  # the run is reading
            during, during_quotes = await book(stack, args.sagas, spacing=args.saga_spacing)
            full_report, full_seconds = await full_task
            cpu_after = cpu_now(stack, workers)
            print(
                f"full run: {full_report.status.value} in {full_seconds:.0f} s, "
                f"{full_report.windows} windows",
                flush=True,
            )
            full_rows = {(r.kind.value, r.subject) for r in store.rows("bench-full")}
            full_expected = set(seeded.drift) | unposted_invoices(stack, idle_quotes)

            changed = change_estate(stack.sandbox_state, seeded, count=args.changes)
            inc_report, inc_seconds = await reconcile(
                stack, RunMode.INCREMENTAL, "bench-incremental", args
            )
            stop.set()
            await watcher
            inc_rows = {(r.kind.value, r.subject) for r in store.rows("bench-incremental")}
            history = await histories(stack)
            waits = {
                "idle": await saga_waits(stack, idle_quotes),
                "during_full_run": await saga_waits(stack, during_quotes),
            }
            time_spent = await window_time(stack)
        figures: dict[str, Any] = {
            "seed_seconds": rnd(seed_seconds, 1),
            "full": {
                "seconds": rnd(full_seconds, 1),
                "status": full_report.status.value,
                "windows": full_report.windows,
                "scanned": full_report.scanned,
                "drift": compare(full_expected, full_rows),
                "problems": full_report.problems,
            },
            "incremental": {
                "seconds": rnd(inc_seconds, 1),
                "status": inc_report.status.value,
                "windows": inc_report.windows,
                "changed_subjects": len(changed.subjects),
                "drift": compare(changed.drift | unposted_invoices(stack, during_quotes), inc_rows),
                "problems": inc_report.problems,
            },
            "worker_peak_rss_mb": {q: rnd(v, 1) for q, v in rss.peak.items()},
            "full_run_cpu_seconds": {
                k: rnd(cpu_after[k] - cpu_before.get(k, 0.0), 1) for k in cpu_after
            },
            "history": history,
            "window_activities": time_spent,
            "sagas": {"idle": stats(idle), "during_full_run": stats(during), "per_saga": waits},
        }
        idle_p95 = figures["sagas"]["idle"]["p95_s"]
        figures["sagas"]["ratio_p95_during_over_idle"] = rnd(
            figures["sagas"]["during_full_run"]["p95_s"] / idle_p95 if idle_p95 else 0.0, 2
        )
    return figures


def report(figures: dict[str, Any]) -> None:
    full, inc = figures["full"], figures["incremental"]
    rows = [
        [
            "incremental run",
            f"{inc['seconds']} s",
            "< 60 s",
            "exact"
            if inc["drift"]["exact"]
            else f"missed {inc['drift']['missed']}, unexpected {inc['drift']['unexpected']}",
        ],
        [
            "full run",
            f"{full['seconds']} s",
            "< 900 s",
            "exact"
            if full["drift"]["exact"]
            else f"missed {full['drift']['missed']}, unexpected {full['drift']['unexpected']}",
        ],
        [
            "worker RSS (peak)",
            ", ".join(f"{q} {v}" for q, v in figures["worker_peak_rss_mb"].items()),
            "< 300 MB each",
            "",
        ],
        [
            "history (most events)",
            ", ".join(f"{k} {v['max_events']}" for k, v in figures["history"].items()),
            "< 10,000 a run",
            "",
        ],
        [
            "saga p95 idle / during",
            f"{figures['sagas']['idle']['p95_s']} / "
            f"{figures['sagas']['during_full_run']['p95_s']} s",
            "<= 2x",
            f"{figures['sagas']['ratio_p95_during_over_idle']}x",
        ],
    ]
    print_table("reconciliation at volume", ["figure", "measured", "target", "drift / ratio"], rows)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.reconcile",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quotes", type=int, default=100_000)
    parser.add_argument("--invoices", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--changes", type=int, default=1_000)
    parser.add_argument("--sagas", type=int, default=20, help="bookings idle and during the run")
    parser.add_argument("--saga-spacing", type=float, default=3.0, help="seconds between them")
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--window-records", type=int, default=5000)
    parser.add_argument("--max-repairs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    banner(NAME, "reconciliation of a seeded company: full pass, incremental run, bookings")
    figures = asyncio.run(main_async(args))
    report(figures)
    write_results(NAME, vars(args), figures)
    return figures


if __name__ == "__main__":
    main()
