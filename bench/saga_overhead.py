"""Quote-to-cash throughput against a bare Temporal workflow of the same shape.

Both run on the same dev server in the same run, one after the other (alternating which goes
first each round), with N workflows started at once and the time measured from the first
start to the last completion:

- revsync: ``QuoteToCash`` started as the gateway starts it (search attributes, summary,
  encrypted payloads), revsync's production workers for the five task queues, the adapters
  calling the vendor sandbox over HTTP at zero latency (the sandbox runs as its own process
  by default, as a vendor would be elsewhere);
- bare: ``bench.workflows.BareQuoteToCash``, the same six activities in the same order on
  the same five task queues, but no-op, the plain pydantic converter, no search attributes,
  no adapters; workers with the same slot limits.

Prints sagas/s for each, the ratio revsync/bare (target >= 0.9), and per-saga costs measured
from real histories and process CPU, which say where the difference goes.

    python -m bench.saga_overhead --quotes 200 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import math
import statistics
import threading
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

import psutil
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from bench import history as h
from bench import profiling
from bench.common import (
    banner,
    cpu_seconds,
    print_table,
    quiet_logging,
    rnd,
    thread_cpu_seconds,
    write_results,
)
from bench.stack import BenchStack, SandboxMode, bench_stack, create_crm_quotes
from bench.workflows import ACTIVITIES_BY_QUEUE, BareQuoteToCashWorkflow
from domain.contracts import TaskQueue
from domain.quote import Quote
from domain.stages import OrderStage
from revsync.settings import Settings
from sandbox.quotes import quote_payload
from sandbox.seed import BOOKABLE_ACCOUNT_IDS
from workflows.quote_to_cash import QuoteToCashWorkflow

NAME = "saga_overhead"
REVSYNC, BARE = "revsync", "bare"

CPU_PARTS = (
    "worker process: Python thread",
    "worker process: SDK core threads",
    "sandbox (vendor emulator)",
    "Temporal server",
)


@dataclass
class Phase:
    variant: str
    round: int
    sagas: int
    seconds: float
    start_seconds: float
    finished_ok: int
    cpu: dict[str, float]  # seconds, by CPU_PARTS
    vendor_requests: int
    per_saga: dict[str, float] = field(default_factory=dict)  # from sampled histories

    @property
    def rate(self) -> float:
        return self.sagas / self.seconds


class CpuMeter:
    """CPU seconds of every process involved, split where they can be told apart."""

    def __init__(self, stack: BenchStack) -> None:
        self.stack = stack
        self.me = psutil.Process()
        self.main_thread = threading.main_thread().native_id

    def read(self) -> dict[str, float]:
        threads = thread_cpu_seconds()
        total = cpu_seconds(self.me)
        python = threads.get(self.main_thread or -1, 0.0)
        if self.stack.sandbox_process is not None:
            sandbox = cpu_seconds(self.stack.sandbox_process)
            in_process_sandbox = 0.0
        else:
            sandbox = in_process_sandbox = threads.get(self.stack.sandbox_thread_id or -1, 0.0)
        server = cpu_seconds(self.stack.server) if self.stack.server else 0.0
        return dict(
            zip(
                CPU_PARTS,
                (python, total - python - in_process_sandbox, sandbox, server),
                strict=True,
            )
        )


@asynccontextmanager
async def bare_workers(client: Client, stack: BenchStack) -> Any:
    """Workers for the bare workflow on the same four queues, with revsync's slot limits."""
    s = stack.settings
    limits = slots(s)
    grace = timedelta(seconds=s.worker_shutdown_grace_seconds)
    async with AsyncExitStack() as workers:
        await workers.enter_async_context(
            Worker(
                client,
                task_queue=TaskQueue.ORCHESTRATION,
                workflows=[BareQuoteToCashWorkflow],
                max_concurrent_workflow_tasks=s.orchestration_max_concurrent_workflow_tasks,
                graceful_shutdown_timeout=grace,
            )
        )
        for queue, activities in ACTIVITIES_BY_QUEUE.items():
            await workers.enter_async_context(
                Worker(
                    client,
                    task_queue=queue,
                    activities=activities,
                    max_concurrent_activities=limits[queue],
                    graceful_shutdown_timeout=grace,
                )
            )
        yield


ACTIVITY_QUEUES = (TaskQueue.CRM, TaskQueue.ERP, TaskQueue.BILLING)


async def sample_histories(client: Client, workflow_ids: Sequence[str]) -> dict[str, float]:
    rows: list[dict[str, float]] = []
    for workflow_id in workflow_ids:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        events = list(history.events)
        by_queue = h.activity_seconds(events)
        row = {
            "events": len(events),
            "workflow tasks": h.workflow_tasks(events),
            "billable actions": sum(h.billable_actions(events).values()),
            "history bytes": h.history_bytes(history),
            "activity queue wait s": sum(q for q, _ in by_queue.values()),
            "activity run s": sum(r for _, r in by_queue.values()),
        }
        for queue in ACTIVITY_QUEUES:
            row[f"{queue} activity run s"] = by_queue.get(queue, (0.0, 0.0))[1]
        rows.append(row)
    return {k: statistics.mean(r[k] for r in rows) for k in rows[0]}


def slots(settings: Settings) -> dict[str, int]:
    return {
        TaskQueue.CRM: settings.crm_max_concurrent_activities,
        TaskQueue.ERP: settings.erp_max_concurrent_activities,
        TaskQueue.BILLING: settings.billing_max_concurrent_activities,
        TaskQueue.EVENTS: settings.events_max_concurrent_activities,
    }


async def run_phase(
    stack: BenchStack,
    bare_client: Client,
    variant: str,
    n: int,
    round_no: int,
    sample: int,
    profile: cProfile.Profile | None = None,
) -> Phase:
    accounts = [BOOKABLE_ACCOUNT_IDS[i % len(BOOKABLE_ACCOUNT_IDS)] for i in range(n)]
    quote_ids = await create_crm_quotes(stack.settings, accounts)
    # The fixed quote (no approval needed), for every bookable account.
    payloads = [quote_payload(q, account_id=a) for q, a in zip(quote_ids, accounts, strict=True)]
    meter = CpuMeter(stack)
    workers = stack.workers() if variant == REVSYNC else bare_workers(bare_client, stack)
    async with workers:
        requests_before = sum(stack.vendor_requests.values())
        cpu_before = meter.read()
        if profile is not None:
            profile.enable()
        began = time.monotonic()
        if variant == REVSYNC:
            ids = list(await asyncio.gather(*(stack.start_saga(p) for p in payloads)))
            started = time.monotonic()
            handles = [
                stack.client.get_workflow_handle_for(QuoteToCashWorkflow.run, i) for i in ids
            ]
            statuses = await asyncio.gather(*(handle.result() for handle in handles))
            ok = sum(1 for s in statuses if s.stage is OrderStage.BOOKED)
        else:
            bare_handles = await asyncio.gather(
                *(
                    bare_client.start_workflow(
                        BareQuoteToCashWorkflow.run,
                        Quote.model_validate(p),
                        id=f"bare-{p['quote_id']}",
                        task_queue=TaskQueue.ORCHESTRATION,
                    )
                    for p in payloads
                )
            )
            started = time.monotonic()
            results = await asyncio.gather(*(handle.result() for handle in bare_handles))
            ok = sum(1 for r in results if r == "BOOKED")
            ids = [handle.id for handle in bare_handles]
        ended = time.monotonic()
        if profile is not None:
            profile.disable()
        cpu_after = meter.read()
        requests = sum(stack.vendor_requests.values()) - requests_before
    client = stack.client if variant == REVSYNC else bare_client
    return Phase(
        variant=variant,
        round=round_no,
        sagas=n,
        seconds=ended - began,
        start_seconds=started - began,
        finished_ok=ok,
        cpu={k: cpu_after[k] - cpu_before[k] for k in CPU_PARTS},
        vendor_requests=requests,
        per_saga=await sample_histories(client, ids[:sample]),
    )


def _num(value: float, *, sign: bool = False) -> str:
    """Three significant digits, without an exponent for the large ones (history bytes)."""
    text = f"{value:+,.0f}" if abs(value) >= 1000 else f"{value:+.3g}"
    return text if sign else text.lstrip("+")


def per_saga(phases: list[Phase]) -> dict[str, float]:
    """Mean per-saga costs over the phases of one variant."""
    keys = list(phases[0].per_saga)
    costs = {k: statistics.mean(p.per_saga[k] for p in phases) for k in keys}
    costs["vendor HTTP requests"] = statistics.mean(p.vendor_requests / p.sagas for p in phases)
    for part in CPU_PARTS:
        costs[f"CPU ms: {part}"] = statistics.mean(1000 * p.cpu[part] / p.sagas for p in phases)
    costs["CPU ms: total"] = sum(costs[f"CPU ms: {part}"] for part in CPU_PARTS)
    return costs


def report(phases: list[Phase], cores: int, settings: Settings) -> dict[str, Any]:
    print_table(
        "Throughput (N started at once; first start to last completion)",
        ["round", "variant", "sagas", "ok", "seconds", "all started s", "sagas/s", "CPU busy %"],
        [
            [
                p.round,
                p.variant,
                p.sagas,
                p.finished_ok,
                f"{p.seconds:.2f}",
                f"{p.start_seconds:.2f}",
                f"{p.rate:.1f}",
                f"{100 * sum(p.cpu.values()) / (p.seconds * cores):.0f}",
            ]
            for p in phases
        ],
    )
    mine = [p for p in phases if p.variant == REVSYNC]
    bare = [p for p in phases if p.variant == BARE]
    rate_r = statistics.median(p.rate for p in mine)
    rate_b = statistics.median(p.rate for p in bare)
    ratio = rate_r / rate_b
    costs_r, costs_b = per_saga(mine), per_saga(bare)
    print_table(
        "Per saga (history figures from a sample of each phase; CPU over the whole phase)",
        ["", REVSYNC, BARE, "difference"],
        [
            [k, _num(costs_r[k]), _num(costs_b[k]), _num(costs_r[k] - costs_b[k], sign=True)]
            for k in costs_r
        ],
    )
    limits = slots(settings)
    bounds = {
        variant: {
            q: limits[q] / costs[f"{q} activity run s"]
            for q in ACTIVITY_QUEUES
            if costs[f"{q} activity run s"] > 0
        }
        for variant, costs in ((REVSYNC, costs_r), (BARE, costs_b))
    }
    print_table(
        "Activity slots: what each queue's worker allows at the measured activity run time",
        ["queue", "slots", "revsync run s/saga", "revsync max sagas/s", "bare max sagas/s"],
        [
            [
                q,
                limits[q],
                f"{costs_r[f'{q} activity run s']:.3f}",
                f"{bounds[REVSYNC].get(q, math.inf):.1f}",
                f"{bounds[BARE].get(q, math.inf):.1f}",
            ]
            for q in ACTIVITY_QUEUES
        ],
    )
    print(
        f"\nrevsync {rate_r:.1f} sagas/s, bare {rate_b:.1f} sagas/s (medians): "
        f"ratio revsync/bare = {ratio:.2f} (target >= 0.9)"
    )
    model = costs_b["CPU ms: total"] / costs_r["CPU ms: total"]
    without_emulator = costs_b["CPU ms: total"] / (
        costs_r["CPU ms: total"] - costs_r[f"CPU ms: {CPU_PARTS[2]}"]
    )
    print(
        f"CPU-bound model: bare CPU/saga / revsync CPU/saga = {model:.2f}; the same without "
        f"the vendor emulator's CPU (vendors run elsewhere in production) = {without_emulator:.2f}"
    )
    extra = {part: costs_r[f"CPU ms: {part}"] - costs_b[f"CPU ms: {part}"] for part in CPU_PARTS}
    extra_total = sum(extra.values())
    reasons = []
    if ratio < 0.9:
        print("below target; where the extra cost per saga goes, largest first:")
        for part, ms in sorted(extra.items(), key=lambda item: -item[1]):
            share = 100 * ms / extra_total if extra_total > 0 else 0.0
            line = f"  {ms:+.1f} ms CPU in {part} ({share:.0f}% of the extra CPU)"
            reasons.append(line.strip())
            print(line)
        for key in ("events", "workflow tasks", "billable actions", "history bytes"):
            r, b = costs_r[key], costs_b[key]
            line = f"  {_num(r - b, sign=True)} {key} ({_num(r)} vs {_num(b)})"
            reasons.append(line.strip())
            print(line)
    return {
        "sagas_per_s": {REVSYNC: rnd(rate_r), BARE: rnd(rate_b)},
        "ratio_revsync_over_bare": rnd(ratio, 3),
        "per_saga": {
            REVSYNC: {k: rnd(v, 4) for k, v in costs_r.items()},
            BARE: {k: rnd(v, 4) for k, v in costs_b.items()},
        },
        "cpu_model_ratio": rnd(model, 3),
        "cpu_model_ratio_without_emulator": rnd(without_emulator, 3),
        "extra_cpu_ms_per_saga": {k: rnd(v, 2) for k, v in extra.items()},
        "activity_slots": limits,
        "max_sagas_per_s_allowed_by_slots": {
            v: {q: rnd(x, 1) for q, x in b.items()} for v, b in bounds.items()
        },
        "reasons": reasons,
        "phases": [
            asdict(p)
            | {
                "seconds": rnd(p.seconds),
                "start_seconds": rnd(p.start_seconds),
                "cpu": {k: rnd(v) for k, v in p.cpu.items()},
                "per_saga": {k: rnd(v, 4) for k, v in p.per_saga.items()},
                "sagas_per_s": rnd(p.rate),
            }
            for p in phases
        ],
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    sandbox: SandboxMode = args.sandbox
    phases: list[Phase] = []
    async with bench_stack(sandbox=sandbox) as stack:
        if args.erp_slots:
            stack.settings = stack.settings.model_copy(
                update={"erp_max_concurrent_activities": args.erp_slots}
            )
        bare_client = Client(
            stack.client.service_client,
            namespace=stack.client.namespace,
            data_converter=pydantic_data_converter,
        )
        # Warm-up (not counted): first imports, connections, the sandbox's first requests.
        for variant in (REVSYNC, BARE):
            await run_phase(stack, bare_client, variant, args.warmup, 0, 1)
        for round_no in range(1, args.rounds + 1):
            order = (REVSYNC, BARE) if round_no % 2 else (BARE, REVSYNC)
            for variant in order:
                phase = await run_phase(
                    stack, bare_client, variant, args.quotes, round_no, args.sample
                )
                phases.append(phase)
                print(
                    f"  round {round_no} {variant:8} {phase.sagas} in {phase.seconds:.2f}s "
                    f"= {phase.rate:.1f}/s",
                    flush=True,
                )
        profiled = None
        if args.profile:
            profile = cProfile.Profile()
            await run_phase(stack, bare_client, REVSYNC, args.quotes, 0, 1, profile)
            profiled = profiling.breakdown(profile)
    figures = report(phases, psutil.cpu_count() or 1, stack.settings)
    if profiled is not None:
        print_table(
            f"Where the worker's Python thread goes (revsync, {args.quotes} sagas under cProfile, "
            "cumulative; nested rows are part of the row above)",
            ["", "CPU s (profiled)", "share %"],
            [[r["what"], f"{r['cpu_s_profiled']:.2f}", f"{r['share_pct']:.1f}"] for r in profiled],
        )
        figures["python_thread_profile"] = profiled
    return figures


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.saga_overhead",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quotes", type=int, default=200, help="sagas started at once, per phase")
    parser.add_argument("--rounds", type=int, default=2, help="revsync+bare pairs, alternating")
    parser.add_argument("--warmup", type=int, default=20, help="sagas per variant, not counted")
    parser.add_argument("--sample", type=int, default=10, help="histories read per phase")
    parser.add_argument(
        "--sandbox",
        choices=["process", "thread"],
        default="process",
        help="vendor sandbox as its own process (default) or a thread of the workers' process",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="then one more revsync phase under cProfile: where the worker's Python thread goes",
    )
    parser.add_argument(
        "--erp-slots",
        type=int,
        default=None,
        help="erp worker activity slots for both variants (default: the setting, 5)",
    )
    args = parser.parse_args(argv)
    quiet_logging()
    banner(NAME, "quote-to-cash throughput vs a bare workflow of the same shape")
    figures = asyncio.run(main_async(args))
    write_results(NAME, vars(args), figures)
    return figures


if __name__ == "__main__":
    main()
