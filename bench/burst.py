"""Month-end burst on the real processes of ``revsync dev``.

Runs ``revsync dev`` (free ports, a temporary ``REVSYNC_DATA_DIR``, started in a temporary
folder so no developer ``.env`` applies; it generates its own secrets, read back from
``<data dir>/dev-secrets.env``), then:

1. burst: N quotes posted at once through the gateway (signed, ``--send-concurrency``
   connections); time until every saga is BOOKED, peak RSS of each worker process, CPU
   seconds of the Temporal server and of each worker (psutil on the children of
   ``revsync dev``);
2. parked: N more quotes with a 30% line discount (above the 20% sales-manager threshold),
   which park in AWAITING_APPROVAL; worker RSS while they wait; then each is approved
   through the gateway's ops API (``POST /v1/ops/quotes/{id}/approve`` with the generated
   local staff token): the approve call's latency, the time from its response until the
   ``status`` query shows the saga past AWAITING_APPROVAL, and (from a sample of histories)
   until its next step, the ERP booking activity, started.

    python -m bench.burst --quotes 1000
    python -m bench.burst --quotes 5000      # the month-end figure
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from pydantic import SecretStr
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from adapters.webhooks import cpq
from bench.common import (
    banner,
    cpu_seconds,
    percentile,
    print_table,
    quiet_logging,
    rnd,
    write_results,
)
from bench.stack import create_crm_quotes
from domain.contracts import Activity
from domain.stages import OrderStage
from revsync.devsecrets import FILE_NAME, read_env_file
from revsync.settings import Settings
from revsync.temporal import connect
from sandbox.quotes import quote_payload
from sandbox.seed import BOOKABLE_ACCOUNT_IDS
from tests.e2e.stack import free_port
from workflows import visibility
from workflows.quote_to_cash import QuoteToCashWorkflow

NAME = "burst"
REVSYNC = str(Path(sys.executable).parent / "revsync")
UP = "revsync dev stack is up"
MB = 2**20


@contextlib.contextmanager
def dev_stack(
    workdir: Path, scale: str
) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, str]]]:
    """``revsync dev`` on free ports with its state in ``workdir``; stopped with Ctrl-C."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVSYNC_")} | {
        "REVSYNC_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "REVSYNC_TEMPORAL_UI_PORT": str(free_port()),
        "REVSYNC_GATEWAY_PORT": str(free_port()),
        "REVSYNC_SANDBOX_PORT": str(free_port()),
        "REVSYNC_DATA_DIR": str(workdir / "state"),
        "REVSYNC_LOG_FORMAT": "json",
    }
    log_path = workdir / "dev.log"
    argv = [REVSYNC, "dev", *(["--scale", scale] if scale else [])]
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 180
            while UP not in log_path.read_text(errors="replace"):
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = log_path.read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"revsync dev did not come up:\n{tail}")
                time.sleep(0.3)
            env |= read_env_file(workdir / "state" / FILE_NAME)
            yield process, env
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(90)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def role_of(process: psutil.Process) -> str | None:
    """What a child of ``revsync dev`` is, from its command line."""
    try:
        argv = process.cmdline()
    except psutil.Error:
        return None
    if "start-dev" in argv:
        return "temporal server"
    if "revsync.cli" in argv:
        rest = argv[argv.index("revsync.cli") + 1 :]
        return " ".join(rest) if rest else None
    return None


@dataclass
class Watcher:
    """Samples RSS of every child of ``revsync dev`` while a phase runs."""

    root: psutil.Process
    peaks: dict[str, float] = field(default_factory=dict)  # name -> MB
    last: dict[str, float] = field(default_factory=dict)

    def children(self) -> dict[str, psutil.Process]:
        found: dict[str, psutil.Process] = {}
        for child in self.root.children(recursive=True):
            role = role_of(child)
            if role is None:
                continue
            name, n = role, 2
            while name in found:
                name, n = f"{role} #{n}", n + 1
            found[name] = child
        return found

    def sample(self) -> None:
        for name, child in self.children().items():
            with contextlib.suppress(psutil.Error):
                mb = child.memory_info().rss / MB
                self.last[name] = mb
                self.peaks[name] = max(self.peaks.get(name, 0.0), mb)

    def cpu(self) -> dict[str, float]:
        return {name: cpu_seconds(child) for name, child in self.children().items()}

    async def run(self, stop: asyncio.Event, every: float = 0.5) -> None:
        while not stop.is_set():
            self.sample()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)


@contextlib.asynccontextmanager
async def watching(watcher: Watcher) -> Any:
    watcher.peaks.clear()
    stop = asyncio.Event()
    task = asyncio.create_task(watcher.run(stop))
    try:
        yield watcher
    finally:
        stop.set()
        await task


async def post_all(
    http: httpx.AsyncClient, gateway: str, secret: str, payloads: list[dict[str, Any]], lanes: int
) -> dict[str, int]:
    """POST every payload (signed, as a CPQ does), ``lanes`` at a time; a delivery the
    gateway did not accept is retried like a webhook sender would (1 s apart, 5 times)."""
    gate = asyncio.Semaphore(lanes)
    outcome = {"started": 0, "duplicate": 0, "retried": 0, "failed": 0}

    async def one(payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        for attempt in range(6):
            async with gate:
                try:
                    response = await http.post(
                        f"{gateway}/v1/webhooks/cpq/quote-accepted",
                        content=body,
                        headers={
                            "content-type": "application/json",
                            cpq.SIGNATURE_HEADER: cpq.sign(secret, body),
                        },
                    )
                    status = response.status_code
                except httpx.HTTPError:
                    status = 0
            if status in (200, 202):
                outcome["started" if status == 202 else "duplicate"] += 1
                return
            outcome["retried"] += 1
            if attempt < 5:
                await asyncio.sleep(1)
        outcome["failed"] += 1

    await asyncio.gather(*(one(p) for p in payloads))
    return outcome


async def wait_count(client: Client, query: str, target: int, seconds: float) -> int:
    """Poll a visibility count until it reaches ``target``; give up after ``seconds``, or
    after two minutes without progress (a saga stuck on something else)."""
    deadline = time.monotonic() + seconds
    last, changed = -1, time.monotonic()
    while True:
        count = (await client.count_workflows(query)).count
        now = time.monotonic()
        if count != last:
            last, changed = count, now
        if count >= target or now > deadline or now - changed > 120:
            return count
        await asyncio.sleep(0.5)


async def new_quotes(settings: Settings, n: int, *, discount: str | None) -> list[dict[str, Any]]:
    accounts = [BOOKABLE_ACCOUNT_IDS[i % len(BOOKABLE_ACCOUNT_IDS)] for i in range(n)]
    quote_ids = await create_crm_quotes(settings, accounts, concurrency=32)
    payloads = []
    for quote_id, account in zip(quote_ids, accounts, strict=True):
        payload = quote_payload(quote_id, account_id=account)
        if discount is not None:
            payload["lines"][0]["discount_percent"] = discount
        payloads.append(payload)
    return payloads


def mb(values: dict[str, float]) -> dict[str, float]:
    return {k: rnd(v, 1) for k, v in sorted(values.items())}


async def burst_phase(
    client: Client, settings: Settings, secret: str, watcher: Watcher, args: argparse.Namespace
) -> dict[str, Any]:
    payloads = await new_quotes(settings, args.quotes, discount=None)
    booked_before = (await client.count_workflows('OrderStage="BOOKED"')).count
    cpu_before = watcher.cpu()
    async with (
        watching(watcher),
        httpx.AsyncClient(
            timeout=60, limits=httpx.Limits(max_connections=args.send_concurrency)
        ) as http,
    ):
        began_wall = datetime.now(UTC)
        began = time.monotonic()
        outcome = await post_all(
            http, settings.gateway_url, secret, payloads, args.send_concurrency
        )
        posted = time.monotonic() - began
        target = booked_before + outcome["started"]
        booked = await wait_count(client, 'OrderStage="BOOKED"', target, args.timeout)
        seen = time.monotonic() - began
    cpu_after = watcher.cpu()
    # Exact: the latest close time among the booked sagas of this batch.
    last_close = began_wall
    async for wf in client.list_workflows(
        f'OrderStage="BOOKED" AND StartTime >= "{began_wall.isoformat()}"'
    ):
        if wf.close_time is not None and wf.close_time > last_close:
            last_close = wf.close_time
    seconds = (last_close - began_wall).total_seconds() if booked >= target else seen
    cpu = {k: cpu_after.get(k, 0.0) - cpu_before.get(k, 0.0) for k in cpu_after}
    return {
        "quotes": args.quotes,
        "delivery": outcome,
        "seconds_to_post_all": rnd(posted),
        "booked": booked - booked_before,
        "seconds_to_all_booked": rnd(seconds),
        "sagas_per_s": rnd(args.quotes / seconds),
        "peak_rss_mb": mb(watcher.peaks),
        "cpu_seconds": {k: rnd(v) for k, v in sorted(cpu.items())},
        "temporal_server_cpu_ms_per_saga": rnd(
            1000 * cpu.get("temporal server", 0.0) / args.quotes
        ),
    }


async def approve_one(
    http: httpx.AsyncClient, client: Client, gateway: str, token: str, quote_id: str
) -> tuple[float, float, float]:
    """(approve call seconds, response-to-stage-left seconds, response wall time)."""
    began = time.monotonic()
    response = await http.post(
        f"{gateway}/v1/ops/quotes/{quote_id}/approve",
        json={"note": "bench: month-end approval"},
        headers={"Authorization": f"Bearer {token}"},
    )
    answered = time.monotonic()
    answered_wall = time.time()
    if response.status_code != 200:
        raise RuntimeError(f"approve {quote_id}: {response.status_code} {response.text}")
    handle = client.get_workflow_handle_for(
        QuoteToCashWorkflow.run, visibility.workflow_id_for_quote(quote_id)
    )
    while True:
        status = await handle.query(QuoteToCashWorkflow.status)
        if status.stage is not OrderStage.AWAITING_APPROVAL:
            break
        await asyncio.sleep(0.02)
    return answered - began, time.monotonic() - answered, answered_wall


async def next_step_started(client: Client, quote_id: str) -> float | None:
    """Wall time the ERP booking activity (the step after approval) started, from history."""
    history = await client.get_workflow_handle(
        visibility.workflow_id_for_quote(quote_id)
    ).fetch_history()
    book: set[int] = set()
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            if attrs.activity_type.name == Activity.ERP_BOOK_SALES_ORDER:
                book.add(event.event_id)
        elif (
            event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
            and event.activity_task_started_event_attributes.scheduled_event_id in book
        ):
            return event.event_time.ToDatetime().replace(tzinfo=UTC).timestamp()
    return None


async def parked_phase(
    client: Client,
    settings: Settings,
    secret: str,
    token: str,
    watcher: Watcher,
    args: argparse.Namespace,
) -> dict[str, Any]:
    n = args.parked if args.parked is not None else args.quotes
    payloads = await new_quotes(settings, n, discount="30")
    booked_before = (await client.count_workflows('OrderStage="BOOKED"')).count
    async with (
        watching(watcher),
        httpx.AsyncClient(
            timeout=60, limits=httpx.Limits(max_connections=args.send_concurrency)
        ) as http,
    ):
        outcome = await post_all(
            http, settings.gateway_url, secret, payloads, args.send_concurrency
        )
        parked = await wait_count(
            client, 'OrderStage="AWAITING_APPROVAL"', outcome["started"], args.timeout
        )
        # Let the parked sagas sit a moment, then read the workers' memory while they wait.
        samples: list[dict[str, float]] = []
        for _ in range(6):
            await asyncio.sleep(0.5)
            watcher.sample()
            samples.append(dict(watcher.last))
        rss_parked = {k: statistics.median(s.get(k, 0.0) for s in samples) for k in samples[-1]}

        quote_ids = [str(p["quote_id"]) for p in payloads]
        gate = asyncio.Semaphore(args.approve_concurrency)

        async def approve(quote_id: str) -> tuple[float, float, float]:
            async with gate:
                return await approve_one(http, client, settings.gateway_url, token, quote_id)

        began = time.monotonic()
        results = await asyncio.gather(*(approve(q) for q in quote_ids))
        approving = time.monotonic() - began
        booked = await wait_count(
            client, 'OrderStage="BOOKED"', booked_before + len(quote_ids), args.timeout
        )
        all_booked = time.monotonic() - began
    calls = [r[0] for r in results]
    left = [r[1] for r in results]
    step = quote_ids[:: max(1, len(quote_ids) // args.history_sample)]
    starts = await asyncio.gather(*(next_step_started(client, q) for q in step))
    answered = {q: r[2] for q, r in zip(quote_ids, results, strict=True)}
    to_next = [s - answered[q] for q, s in zip(step, starts, strict=True) if s is not None]
    return {
        "parked": parked,
        "delivery": outcome,
        "rss_while_parked_mb": mb(rss_parked),
        "peak_rss_mb": mb(watcher.peaks),
        "approve_concurrency": args.approve_concurrency,
        "approve_call_ms": {
            "p50": rnd(1000 * percentile(calls, 50), 1),
            "p99": rnd(1000 * percentile(calls, 99), 1),
        },
        "response_to_stage_left_ms": {
            "p50": rnd(1000 * percentile(left, 50), 1),
            "p99": rnd(1000 * percentile(left, 99), 1),
        },
        "response_to_next_step_started_ms": {
            "sampled": len(to_next),
            "p50": rnd(1000 * percentile(to_next, 50), 1),
            "p99": rnd(1000 * percentile(to_next, 99), 1),
        },
        "seconds_to_approve_all": rnd(approving),
        "approvals_per_s": rnd(len(quote_ids) / approving, 1),
        "approved_booked": booked - booked_before,
        "seconds_from_first_approval_to_all_booked": rnd(all_booked),
    }


def report(burst: dict[str, Any], parked: dict[str, Any]) -> None:
    sampled = parked["response_to_next_step_started_ms"]["sampled"]
    names = sorted(set(burst["peak_rss_mb"]) | set(parked["rss_while_parked_mb"]))
    print_table(
        f"Burst: {burst['quotes']} quotes posted at once through the gateway",
        ["figure", "value"],
        [
            [
                "deliveries (started/duplicate/retried/failed)",
                "/".join(str(v) for v in burst["delivery"].values()),
            ],
            ["all posted s", burst["seconds_to_post_all"]],
            ["booked", f"{burst['booked']}/{burst['quotes']}"],
            ["time to all BOOKED s", burst["seconds_to_all_booked"]],
            ["sagas/s", burst["sagas_per_s"]],
            ["Temporal server CPU s", burst["cpu_seconds"].get("temporal server", "?")],
            ["Temporal server CPU ms per saga", burst["temporal_server_cpu_ms_per_saga"]],
        ],
    )
    print_table(
        "Processes of revsync dev (RSS MB; CPU s during the burst)",
        ["process", "peak RSS burst", "RSS parked", "peak RSS parked+approve", "CPU s burst"],
        [
            [
                name,
                burst["peak_rss_mb"].get(name, "-"),
                parked["rss_while_parked_mb"].get(name, "-"),
                parked["peak_rss_mb"].get(name, "-"),
                burst["cpu_seconds"].get(name, "-"),
            ]
            for name in names
        ],
    )
    print_table(
        f"Parked: {parked['parked']} sagas awaiting approval, approved through the ops API "
        f"({parked['approve_concurrency']} at a time)",
        ["figure", "p50 ms", "p99 ms"],
        [
            [
                "approve call (POST .../approve)",
                parked["approve_call_ms"]["p50"],
                parked["approve_call_ms"]["p99"],
            ],
            [
                "approve response -> status past AWAITING_APPROVAL",
                parked["response_to_stage_left_ms"]["p50"],
                parked["response_to_stage_left_ms"]["p99"],
            ],
            [
                f"approve response -> ERP booking started ({sampled} sampled)",
                parked["response_to_next_step_started_ms"]["p50"],
                parked["response_to_next_step_started_ms"]["p99"],
            ],
        ],
    )
    print(
        f"approved all in {parked['seconds_to_approve_all']} s ({parked['approvals_per_s']}/s); "
        f"{parked['approved_booked']} "
        f"booked {parked['seconds_from_first_approval_to_all_booked']} s after the first approval"
    )


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="revsync-burst-") as tmp,
        dev_stack(Path(tmp), args.scale) as (process, env),
    ):
        settings = Settings(
            temporal_address=env["REVSYNC_TEMPORAL_ADDRESS"],
            gateway_port=int(env["REVSYNC_GATEWAY_PORT"]),
            sandbox_port=int(env["REVSYNC_SANDBOX_PORT"]),
            payload_keys=SecretStr(env["REVSYNC_PAYLOAD_KEYS"]),
        )
        secret = env["REVSYNC_CPQ_WEBHOOK_SECRET"].split(",")[0]
        token = env["REVSYNC_OPERATOR_TOKEN"]
        client = await connect(settings)
        watcher = Watcher(psutil.Process(process.pid))
        burst = await burst_phase(client, settings, secret, watcher, args)
        print(
            f"  burst: {burst['booked']} booked in {burst['seconds_to_all_booked']} s", flush=True
        )
        parked = await parked_phase(client, settings, secret, token, watcher, args)
    report(burst, parked)
    return {"burst": burst, "parked": parked}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.burst",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quotes", type=int, default=1000, help="quotes posted at once")
    parser.add_argument(
        "--parked", type=int, default=None, help="sagas parked for approval (default: --quotes)"
    )
    parser.add_argument("--send-concurrency", type=int, default=64, help="open connections")
    parser.add_argument("--approve-concurrency", type=int, default=10, help="approvals at once")
    parser.add_argument("--history-sample", type=int, default=200, help="histories to read")
    parser.add_argument("--scale", default="", help="passed to revsync dev, e.g. erp=2")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait per phase")
    args = parser.parse_args(argv)
    quiet_logging()
    banner(NAME, "month-end burst on the real processes of `revsync dev`")
    figures = asyncio.run(main_async(args))
    name = NAME if args.quotes == 1000 else f"{NAME}_{args.quotes}"
    write_results(name, vars(args), figures)
    return figures


if __name__ == "__main__":
    main()
