"""Webhook intake: quote-accepted deliveries per second the gateway sustains, with latency.

The gateway runs as its own process (``revsync gateway``, as in production) against a real
dev server; concurrent httpx clients POST signed quote-accepted webhooks, about 10% of them
re-deliveries of a quote already sent (the gateway answers those 200 ``duplicate``). Each
request is the whole intake path: size check, HMAC signature check, JSON and quote
validation, and the saga's start on Temporal (search attributes, encrypted payload).

The same sequence is then sent as raw ``client.start_workflow`` calls from this process
(same arguments as the gateway's, same count, same concurrency, duplicates raising
``WorkflowAlreadyStartedError``), so the ratio gateway/raw is the price of the HTTP intake.
No workers run: only intake is measured, the sagas wait on their queue.

    python -m bench.intake --requests 1000 --concurrency 32
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import psutil
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

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
from bench.stack import BenchStack, bench_stack
from domain.contracts import TaskQueue
from domain.quote import Quote
from domain.saga import QuoteToCashInput
from revsync.settings import secret_list
from sandbox.quotes import quote_payload
from sandbox.seed import BOOKABLE_ACCOUNT_IDS
from workflows import visibility
from workflows.quote_to_cash import QuoteToCashWorkflow

NAME = "intake"
GATEWAY, RAW = "gateway", "raw start_workflow"


@dataclass
class Run:
    variant: str
    round: int
    requests: int
    concurrency: int
    seconds: float
    started: int
    duplicates: int
    errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    gateway_cpu_ms_per_request: float | None
    sender_cpu_ms_per_request: float  # this process: httpx senders, or the SDK client
    server_cpu_ms_per_request: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def deliveries(count: int, duplicate_share: float, rng: random.Random) -> list[dict[str, Any]]:
    """``count`` quote payloads, ``duplicate_share`` of them re-deliveries of an earlier one."""
    tag = secrets.token_hex(3)
    duplicates = round(count * duplicate_share)
    unique = [
        quote_payload(f"a0qB{tag}{i:06d}", account_id=rng.choice(BOOKABLE_ACCOUNT_IDS))
        for i in range(count - duplicates)
    ]
    sequence = list(unique)
    for _ in range(duplicates):  # each re-delivery lands after its original
        original = rng.randrange(len(unique))
        sequence.insert(rng.randint(original + 1, len(sequence)), unique[original])
    return sequence


async def pool(
    concurrency: int, jobs: int, one: Callable[[int, int], Awaitable[None]]
) -> tuple[float, list[float]]:
    """Run ``one(lane, i)`` for i in range(jobs) on ``concurrency`` lanes (tasks), each
    taking the next job when it is done; returns (seconds, latency of each job)."""
    latencies: list[float] = [0.0] * jobs
    next_job = iter(range(jobs))

    async def lane(number: int) -> None:
        for i in next_job:
            began = time.perf_counter()
            await one(number, i)
            latencies[i] = time.perf_counter() - began

    began = time.monotonic()
    await asyncio.gather(*(lane(n) for n in range(concurrency)))
    return time.monotonic() - began, latencies


async def via_gateway(
    stack: BenchStack,
    payloads: list[dict[str, Any]],
    concurrency: int,
    senders: list[httpx.AsyncClient],
) -> tuple[float, list[float], list[int]]:
    """POST each payload, signed at sending time as a CPQ signs, one sender per lane."""
    secret = secret_list(stack.settings.cpq_webhook_secret)[0]
    bodies = [json.dumps(p).encode() for p in payloads]
    statuses: list[int] = [0] * len(bodies)

    async def one(lane: int, i: int) -> None:
        body = bodies[i]
        headers = {"content-type": "application/json", cpq.SIGNATURE_HEADER: cpq.sign(secret, body)}
        response = await senders[lane].post(
            "/v1/webhooks/cpq/quote-accepted", content=body, headers=headers
        )
        statuses[i] = response.status_code

    seconds, latencies = await pool(concurrency, len(bodies), one)
    return seconds, latencies, statuses


async def via_client(
    stack: BenchStack,
    payloads: list[dict[str, Any]],
    concurrency: int,
    _senders: list[httpx.AsyncClient],
) -> tuple[float, list[float], list[int]]:
    statuses: list[int] = [0] * len(payloads)
    policy = stack.settings.saga_policy

    async def one(_lane: int, i: int) -> None:
        quote = Quote.model_validate(payloads[i])
        try:
            await stack.client.start_workflow(
                QuoteToCashWorkflow.run,
                QuoteToCashInput(quote=quote, policy=policy),
                id=visibility.workflow_id_for_quote(quote.quote_id),
                task_queue=TaskQueue.ORCHESTRATION,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=visibility.start_attributes(quote, datetime.now(UTC)),
                static_summary=visibility.static_summary(quote),
                static_details=visibility.static_details(quote),
            )
            statuses[i] = 202
        except WorkflowAlreadyStartedError:
            statuses[i] = 200

    seconds, latencies = await pool(concurrency, len(payloads), one)
    return seconds, latencies, statuses


async def measure(
    stack: BenchStack,
    gateway: psutil.Process | None,
    variant: str,
    round_no: int,
    payloads: list[dict[str, Any]],
    concurrency: int,
    senders: list[httpx.AsyncClient],
) -> Run:
    server = stack.server
    me = psutil.Process()
    me_before = cpu_seconds(me)
    gateway_before = cpu_seconds(gateway) if gateway else 0.0
    server_before = cpu_seconds(server) if server else 0.0
    send = via_gateway if variant == GATEWAY else via_client
    seconds, latencies, statuses = await send(stack, payloads, concurrency, senders)
    n = len(payloads)
    return Run(
        variant=variant,
        round=round_no,
        requests=n,
        concurrency=concurrency,
        seconds=seconds,
        started=statuses.count(202),
        duplicates=statuses.count(200),
        errors=n - statuses.count(202) - statuses.count(200),
        p50_ms=1000 * percentile(latencies, 50),
        p99_ms=1000 * percentile(latencies, 99),
        max_ms=1000 * max(latencies),
        gateway_cpu_ms_per_request=(
            1000 * (cpu_seconds(gateway) - gateway_before) / n if gateway else None
        ),
        sender_cpu_ms_per_request=1000 * (cpu_seconds(me) - me_before) / n,
        server_cpu_ms_per_request=(
            1000 * (cpu_seconds(server) - server_before) / n if server else 0.0
        ),
    )


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    runs: list[Run] = []
    async with (
        bench_stack(sandbox="thread") as stack,
        stack.gateway() as gateway,
        contextlib.AsyncExitStack() as clients,
    ):
        # One keep-alive connection per sender, made (and warmed) before anything is measured.
        senders = [
            await clients.enter_async_context(
                httpx.AsyncClient(base_url=stack.settings.gateway_url, timeout=60)
            )
            for _ in range(args.concurrency)
        ]
        # Warm-up (not counted): connections, the gateway's first requests, the server.
        for variant in (GATEWAY, RAW):
            payloads = deliveries(4 * args.concurrency, 0.1, rng)
            await measure(stack, None, variant, 0, payloads, args.concurrency, senders)
        for round_no in range(1, args.rounds + 1):
            order = (GATEWAY, RAW) if round_no % 2 else (RAW, GATEWAY)
            for variant in order:
                payloads = deliveries(args.requests, args.duplicates, rng)
                watched = gateway.process if variant == GATEWAY else None
                run = await measure(
                    stack, watched, variant, round_no, payloads, args.concurrency, senders
                )
                runs.append(run)
                print(
                    f"  round {round_no} {variant:18} {run.requests} in {run.seconds:.2f}s "
                    f"= {run.rate:.0f}/s",
                    flush=True,
                )
    print_table(
        f"Intake: {args.requests} quote-accepted deliveries (~{args.duplicates:.0%} duplicates), "
        f"{args.concurrency} concurrent senders",
        [
            "round",
            "variant",
            "req/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "started",
            "dup",
            "errors",
            "gateway CPU ms/req",
            "sender CPU ms/req",
            "server CPU ms/req",
        ],
        [
            [
                r.round,
                r.variant,
                f"{r.rate:.0f}",
                f"{r.p50_ms:.1f}",
                f"{r.p99_ms:.1f}",
                f"{r.max_ms:.1f}",
                r.started,
                r.duplicates,
                r.errors,
                _ms(r.gateway_cpu_ms_per_request),
                _ms(r.sender_cpu_ms_per_request),
                _ms(r.server_cpu_ms_per_request),
            ]
            for r in runs
        ],
    )
    summary: dict[str, Any] = {}
    for variant in (GATEWAY, RAW):
        mine = [r for r in runs if r.variant == variant]
        summary[variant] = {
            "requests_per_s": rnd(statistics.median(r.rate for r in mine), 1),
            "p50_ms": rnd(statistics.median(r.p50_ms for r in mine)),
            "p99_ms": rnd(statistics.median(r.p99_ms for r in mine)),
        }
    ratio = summary[GATEWAY]["requests_per_s"] / summary[RAW]["requests_per_s"]
    print(
        f"\ngateway {summary[GATEWAY]['requests_per_s']:.0f} req/s "
        f"(p50 {summary[GATEWAY]['p50_ms']:.1f} ms, p99 {summary[GATEWAY]['p99_ms']:.1f} ms); "
        f"raw start_workflow {summary[RAW]['requests_per_s']:.0f} req/s "
        f"(p50 {summary[RAW]['p50_ms']:.1f} ms, p99 {summary[RAW]['p99_ms']:.1f} ms); "
        f"ratio gateway/raw = {ratio:.2f} (medians over {args.rounds} rounds)"
    )
    return {
        "summary": summary,
        "ratio_gateway_over_raw": rnd(ratio, 3),
        "runs": [
            {k: rnd(v, 2) if isinstance(v, float) else v for k, v in asdict(r).items()}
            | {"requests_per_s": rnd(r.rate, 1)}
            for r in runs
        ],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.intake",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--requests", type=int, default=1000, help="deliveries per run")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent senders")
    parser.add_argument("--duplicates", type=float, default=0.1, help="share re-delivered")
    parser.add_argument("--rounds", type=int, default=2, help="gateway+raw pairs, alternating")
    parser.add_argument("--seed", type=int, default=8)
    args = parser.parse_args(argv)
    quiet_logging()
    banner(NAME, "webhook intake through the gateway vs raw start_workflow")
    figures = asyncio.run(main_async(args))
    write_results(NAME, vars(args), figures)
    return figures


if __name__ == "__main__":
    main()
