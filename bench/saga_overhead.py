"""Quote-to-cash throughput against a bare Temporal workflow of the same shape and against
hand-written Temporal code making the same vendor calls.

All three run on the same dev server in the same run, one after the other (the order reversed
every other round), with N workflows started at once and the time measured from the first
start to the last completion:

- revsync: ``QuoteToCash`` started as the gateway starts it (search attributes, summary,
  encrypted payloads), revsync's production workers for the five task queues, the adapters
  calling the vendor sandbox over HTTP at zero latency (the sandbox runs as its own process
  by default, as a vendor would be elsewhere);
- bare: ``bench.workflows.BareQuoteToCash``, the same six activities in the same order on
  the same five task queues, but no-op, the plain pydantic converter, no search attributes,
  no adapters; workers with the same slot limits;
- hand-written: ``bench.handwritten.HandwrittenQuoteToCashWorkflow``, the same six activities
  on the same queues making exactly the vendor HTTP requests revsync's adapters make
  (``bench/handwritten_activities.py``; ``tests/bench/test_handwritten.py`` checks it), with
  a plain httpx client per queue worker, the default data converter and nothing else.

Prints sagas/s for each, the ratios revsync/bare (the engine's ceiling, target >= 0.9) and
revsync/hand-written (what revsync's machinery costs on the same business work), and
per-saga costs measured from real histories and process CPU, which say where the
differences go.

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
from collections import Counter
from collections.abc import Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

import httpx
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
from bench.handwritten import HandwrittenQuoteToCashWorkflow
from bench.handwritten import workflow_id as handwritten_id
from bench.handwritten_activities import VendorConfig, handwritten_workers
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
REVSYNC, BARE, HANDWRITTEN = "revsync", "bare", "hand-written"
VARIANTS = (REVSYNC, BARE, HANDWRITTEN)

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
    vendor_requests_by_vendor: dict[str, int] = field(default_factory=dict)
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
    """Workers for the bare workflow on the same queues, with revsync's slot limits."""
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


@dataclass
class Clients:
    """The Temporal client of each baseline (revsync's own is ``stack.client``): the plain
    pydantic converter for bare, the SDK's default converter for hand-written."""

    bare: Client
    handwritten: Client


def hand_workers(client: Client, stack: BenchStack) -> Any:
    """The hand-written variant's workers, with revsync's slot limits; their requests are
    counted per vendor as revsync's are."""
    s = stack.settings

    async def count(request: httpx.Request) -> None:
        stack.vendor_requests[request.url.path.strip("/").split("/")[0]] += 1

    return handwritten_workers(
        client,
        VendorConfig.from_settings(s),
        slots(s),
        max_concurrent_workflow_tasks=s.orchestration_max_concurrent_workflow_tasks,
        graceful_shutdown=timedelta(seconds=s.worker_shutdown_grace_seconds),
        request_hooks=[count],
    )


async def run_phase(
    stack: BenchStack,
    clients: Clients,
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
    bare_client, hand_client = clients.bare, clients.handwritten
    if variant == REVSYNC:
        workers = stack.workers()
    elif variant == BARE:
        workers = bare_workers(bare_client, stack)
    else:
        workers = hand_workers(hand_client, stack)
    async with workers:
        requests_before = Counter(stack.vendor_requests)
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
        elif variant == HANDWRITTEN:
            hand_handles = await asyncio.gather(
                *(
                    hand_client.start_workflow(
                        HandwrittenQuoteToCashWorkflow.run,
                        p,
                        id=handwritten_id(p["quote_id"]),
                        task_queue=TaskQueue.ORCHESTRATION,
                    )
                    for p in payloads
                )
            )
            started = time.monotonic()
            booked = await asyncio.gather(*(handle.result() for handle in hand_handles))
            ok = sum(1 for b in booked if b["stage"] == "BOOKED")
            ids = [handle.id for handle in hand_handles]
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
        by_vendor = Counter(stack.vendor_requests)
        by_vendor.subtract(requests_before)
    client = {REVSYNC: stack.client, BARE: bare_client, HANDWRITTEN: hand_client}[variant]
    return Phase(
        variant=variant,
        round=round_no,
        sagas=n,
        seconds=ended - began,
        start_seconds=started - began,
        finished_ok=ok,
        cpu={k: cpu_after[k] - cpu_before[k] for k in CPU_PARTS},
        vendor_requests=sum(by_vendor.values()),
        vendor_requests_by_vendor={v: c for v, c in sorted(by_vendor.items()) if c},
        per_saga=await sample_histories(client, ids[:sample]),
    )


def _num(value: float, *, sign: bool = False) -> str:
    """Three significant digits, without an exponent for the large ones (history bytes)."""
    text = f"{value:+,.0f}" if abs(value) >= 1000 else f"{value:+.3g}"
    return text if sign else text.lstrip("+")


def per_saga(phases: list[Phase], vendors: Sequence[str]) -> dict[str, float]:
    """Mean per-saga costs over the phases of one variant."""
    keys = list(phases[0].per_saga)
    costs = {k: statistics.mean(p.per_saga[k] for p in phases) for k in keys}
    costs["vendor HTTP requests"] = statistics.mean(p.vendor_requests / p.sagas for p in phases)
    for vendor in vendors:
        costs[f"vendor HTTP requests: {vendor}"] = statistics.mean(
            p.vendor_requests_by_vendor.get(vendor, 0) / p.sagas for p in phases
        )
    for part in CPU_PARTS:
        costs[f"CPU ms: {part}"] = statistics.mean(1000 * p.cpu[part] / p.sagas for p in phases)
    costs["CPU ms: total"] = sum(costs[f"CPU ms: {part}"] for part in CPU_PARTS)
    return costs


def _extra(costs_r: dict[str, float], costs_o: dict[str, float]) -> dict[str, float]:
    """revsync's CPU ms per saga above another variant's, by process part."""
    return {part: costs_r[f"CPU ms: {part}"] - costs_o[f"CPU ms: {part}"] for part in CPU_PARTS}


def explain(against: str, costs_r: dict[str, float], costs_o: dict[str, float]) -> list[str]:
    """Where revsync's extra cost per saga over ``against`` goes, largest first."""
    extra = _extra(costs_r, costs_o)
    extra_total = sum(extra.values())
    lines = []
    for part, ms in sorted(extra.items(), key=lambda item: -item[1]):
        share = 100 * ms / extra_total if extra_total > 0 else 0.0
        lines.append(f"{ms:+.1f} ms CPU in {part} ({share:.0f}% of the extra CPU)")
    for key in ("events", "workflow tasks", "billable actions", "history bytes"):
        r, o = costs_r[key], costs_o[key]
        lines.append(f"{_num(r - o, sign=True)} {key} ({_num(r)} vs {_num(o)} {against})")
    return lines


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
    by_variant = {v: [p for p in phases if p.variant == v] for v in VARIANTS}
    rates = {v: statistics.median(p.rate for p in ps) for v, ps in by_variant.items()}
    ratio = rates[REVSYNC] / rates[BARE]
    ratio_hand = rates[REVSYNC] / rates[HANDWRITTEN]
    vendors = sorted({v for p in phases for v in p.vendor_requests_by_vendor})
    costs = {v: per_saga(ps, vendors) for v, ps in by_variant.items()}
    costs_r, costs_b, costs_h = costs[REVSYNC], costs[BARE], costs[HANDWRITTEN]
    print_table(
        "Per saga (history figures from a sample of each phase; CPU over the whole phase)",
        ["", REVSYNC, BARE, HANDWRITTEN, "revsync - bare", "revsync - hand-written"],
        [
            [
                k,
                _num(costs_r[k]),
                _num(costs_b[k]),
                _num(costs_h[k]),
                _num(costs_r[k] - costs_b[k], sign=True),
                _num(costs_r[k] - costs_h[k], sign=True),
            ]
            for k in costs_r
        ],
    )
    limits = slots(settings)
    bounds = {
        variant: {
            q: limits[q] / c[f"{q} activity run s"]
            for q in ACTIVITY_QUEUES
            if c[f"{q} activity run s"] > 0
        }
        for variant, c in costs.items()
    }
    print_table(
        "Activity slots: what each queue's worker allows at the measured activity run time",
        [
            "queue",
            "slots",
            "revsync run s/saga",
            "revsync max sagas/s",
            "bare max sagas/s",
            "hand-written run s/saga",
            "hand-written max sagas/s",
        ],
        [
            [
                q,
                limits[q],
                f"{costs_r[f'{q} activity run s']:.3f}",
                f"{bounds[REVSYNC].get(q, math.inf):.1f}",
                f"{bounds[BARE].get(q, math.inf):.1f}",
                f"{costs_h[f'{q} activity run s']:.3f}",
                f"{bounds[HANDWRITTEN].get(q, math.inf):.1f}",
            ]
            for q in ACTIVITY_QUEUES
        ],
    )
    print(
        f"\nrevsync {rates[REVSYNC]:.1f} sagas/s, bare {rates[BARE]:.1f} sagas/s, "
        f"hand-written {rates[HANDWRITTEN]:.1f} sagas/s (medians):\n"
        f"  ratio revsync/bare = {ratio:.2f} (the engine's ceiling; target >= 0.9)\n"
        f"  ratio revsync/hand-written = {ratio_hand:.2f} (what revsync's machinery costs on "
        "the same vendor calls)"
    )
    emulator = f"CPU ms: {CPU_PARTS[2]}"
    total_r, total_b, total_h = (c["CPU ms: total"] for c in (costs_r, costs_b, costs_h))
    model = total_b / total_r
    without_emulator = total_b / (total_r - costs_r[emulator])
    model_hand = total_h / total_r
    hand_without_emulator = (total_h - costs_h[emulator]) / (total_r - costs_r[emulator])
    print(
        f"CPU-bound model: bare CPU/saga / revsync CPU/saga = {model:.2f}; the same without "
        f"the vendor emulator's CPU (vendors run elsewhere in production) = {without_emulator:.2f}"
        f"\n                 hand-written CPU/saga / revsync CPU/saga = {model_hand:.2f}; "
        f"without the emulator's CPU = {hand_without_emulator:.2f}"
    )
    reasons = []
    if ratio < 0.9:
        print("below target; where the extra cost per saga over bare goes, largest first:")
        reasons = explain(BARE, costs_r, costs_b)
        for line in reasons:
            print(f"  {line}")
    reasons_hand = explain(HANDWRITTEN, costs_r, costs_h)
    print("where revsync's extra cost per saga over hand-written goes, largest first:")
    for line in reasons_hand:
        print(f"  {line}")
    return {
        "sagas_per_s": {v: rnd(r) for v, r in rates.items()},
        "ratio_revsync_over_bare": rnd(ratio, 3),
        "ratio_revsync_over_handwritten": rnd(ratio_hand, 3),
        "per_saga": {v: {k: rnd(x, 4) for k, x in c.items()} for v, c in costs.items()},
        "cpu_model_ratio": rnd(model, 3),
        "cpu_model_ratio_without_emulator": rnd(without_emulator, 3),
        "cpu_model_ratio_handwritten": rnd(model_hand, 3),
        "cpu_model_ratio_handwritten_without_emulator": rnd(hand_without_emulator, 3),
        "extra_cpu_ms_per_saga": {k: rnd(v, 2) for k, v in _extra(costs_r, costs_b).items()},
        "extra_cpu_ms_per_saga_over_handwritten": {
            k: rnd(v, 2) for k, v in _extra(costs_r, costs_h).items()
        },
        "activity_slots": limits,
        "max_sagas_per_s_allowed_by_slots": {
            v: {q: rnd(x, 1) for q, x in b.items()} for v, b in bounds.items()
        },
        "reasons": reasons,
        "reasons_over_handwritten": reasons_hand,
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
        service, namespace = stack.client.service_client, stack.client.namespace
        clients = Clients(
            bare=Client(service, namespace=namespace, data_converter=pydantic_data_converter),
            handwritten=Client(service, namespace=namespace),
        )
        # Warm-up (not counted): first imports, connections, the sandbox's first requests,
        # the reference data the ERP adapters cache, the billing products.
        for variant in VARIANTS:
            await run_phase(stack, clients, variant, args.warmup, 0, 1)
        for round_no in range(1, args.rounds + 1):
            # Every pair of variants goes in both orders over two rounds.
            order = VARIANTS if round_no % 2 else VARIANTS[::-1]
            for variant in order:
                phase = await run_phase(stack, clients, variant, args.quotes, round_no, args.sample)
                phases.append(phase)
                print(
                    f"  round {round_no} {variant:12} {phase.sagas} in {phase.seconds:.2f}s "
                    f"= {phase.rate:.1f}/s",
                    flush=True,
                )
        profiled = None
        if args.profile:
            profile = cProfile.Profile()
            await run_phase(stack, clients, REVSYNC, args.quotes, 0, 1, profile)
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
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="rounds of the three variants, order reversed every other round",
    )
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
        help="erp worker activity slots for every variant (default: the setting, 5)",
    )
    args = parser.parse_args(argv)
    quiet_logging()
    banner(
        NAME,
        "quote-to-cash throughput vs a bare workflow of the same shape and vs hand-written "
        "code making the same vendor calls",
    )
    figures = asyncio.run(main_async(args))
    write_results(NAME, vars(args), figures)
    return figures


if __name__ == "__main__":
    main()
