"""``python -m chaos.run --quotes N``: the whole stack under faults and kills, then the checks.

1. start ``revsync dev --scale ...`` in a temporary folder (free ports, vendor HTTP timeout
   ``--http-timeout``, JSON logs);
2. create N quotes in the sandbox CRM;
3. for ``--window`` seconds at once: deliver their webhooks (shuffled, a quarter repeated),
   inject random vendor faults, SIGKILL ``--kills`` workers and ``--server-restarts`` times
   the Temporal server;
4. wait (at most ``--wait`` seconds) until every saga is terminal or parked; resolve nothing;
5. check the invariants (:mod:`chaos.invariants`) on the sandbox state and the sagas, print
   the summary, exit 1 on any violation or problem.

docs/chaos.md explains the output.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import typer

from chaos import sagas
from chaos.deliveries import create_quotes, deliver_all, delivery_plan
from chaos.faults import fault_plan, fired_by_kind, inject
from chaos.invariants import check
from chaos.killer import Killer, kill_plan
from chaos.report import ChaosResult, render
from chaos.stack import DevStack, StackFailed
from revsync.cli import parse_scale
from revsync.temporal import connect


@dataclass(frozen=True)
class ChaosOptions:
    quotes: int
    seed: int = 1
    kills: int = 10
    server_restarts: int = 1
    scale: str = "erp=3,billing=2"
    window_seconds: float | None = None  # default: see `window`
    wait_seconds: float | None = None  # default: see `wait`
    http_timeout_seconds: float = 2.0
    keep_dir: bool = False
    base_dir: Path | None = None  # where the temporary folder goes (default: the system's)
    quiet: bool = False

    @property
    def window(self) -> float:
        """How long deliveries, faults and kills go on."""
        return self.window_seconds or max(10.0, self.quotes * 0.15)

    @property
    def wait(self) -> float:
        """How long to wait, after the window, for every saga to settle."""
        return self.wait_seconds or max(120.0, float(self.quotes))


class Progress:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.started = time.monotonic()

    def __call__(self, message: str) -> None:
        if not self.quiet:
            sys.stderr.write(f"[chaos {time.monotonic() - self.started:6.1f}s] {message}\n")
            sys.stderr.flush()


async def run_chaos(options: ChaosOptions) -> ChaosResult:
    parse_scale(options.scale)  # refuses a bad --scale before anything starts
    rng = random.Random(options.seed)
    say = Progress(options.quiet)
    workdir = Path(tempfile.mkdtemp(prefix="revsync-chaos-", dir=options.base_dir))
    stack = DevStack(workdir, options.scale, options.http_timeout_seconds)
    result = ChaosResult(
        seed=options.seed,
        quotes=options.quotes,
        scale=options.scale,
        kills_wanted=options.kills,
        server_restarts_wanted=options.server_restarts,
    )
    killer = Killer(stack, random.Random(rng.random()))
    try:
        say(f"seed {options.seed}; replay this plan with: {result.replay_command()}")
        say(f"starting revsync dev --scale {options.scale} in {workdir}")
        await stack.start()
        settings = stack.settings()
        client = await connect(settings)
        async with httpx.AsyncClient(timeout=30) as http:
            payloads = await create_quotes(http, settings, rng, options.quotes)
            window = options.window
            plan = delivery_plan(rng, list(payloads), window)
            faults = fault_plan(rng, options.quotes, window, options.http_timeout_seconds)
            kills = kill_plan(rng, options.kills, options.server_restarts, window)
            say(
                f"{len(payloads)} quotes created; for {window:.0f} s: {len(plan)} deliveries, "
                f"{len(faults)} fault rules, {options.kills} worker kills, "
                f"{options.server_restarts} server kills"
            )
            async with asyncio.TaskGroup() as group:
                sending = group.create_task(deliver_all(http, settings, plan, payloads))
                injecting = group.create_task(inject(http, settings.sandbox_url, faults, window))
                group.create_task(killer.run(kills))
            result.deliveries = sending.result()
            result.faults = injecting.result()
            say(
                f"window over: worker kills {killer.log.worker_kills_done}, server kills "
                f"{killer.log.server_restarts_done} (each replaced); waiting for every saga "
                "to settle"
            )
            deadline = time.monotonic() + options.wait
            unsettled = await sagas.wait_settled(client, payloads, deadline, stack.check_alive)
            say(f"{len(unsettled)} sagas not settled; reading every saga and the sandbox state")
            result.sagas = await sagas.saga_views(client, payloads)
            snapshot = (await http.get(f"{settings.sandbox_url}/_sandbox/state")).json()
            faults_seen = await http.get(f"{settings.sandbox_url}/_sandbox/faults")
            result.faults_fired = fired_by_kind(faults_seen.json()["fired"])
            result.violations = check(payloads, result.sagas, snapshot)
            stack.check_alive()
    except* StackFailed as failed:
        result.problems += [str(error) for error in failed.exceptions]
    finally:
        result.kills = killer.log
        result.problems += killer.log.problems
        result.problems += [f"delivery never accepted: {f}" for f in result.deliveries.failed]
        code = await stack.stop()
        say(f"revsync dev stopped (exit code {code})")
        if code not in (0, None) and not result.problems:
            result.problems.append(f"revsync dev exited with code {code} when stopped")
        if options.keep_dir:
            result.kept_dir = workdir
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        result.elapsed_seconds = time.monotonic() - say.started
    return result


def _seed(value: str) -> int:
    """``--seed``: a number, or ``random`` for one drawn now (the summary prints it)."""
    if value == "random":
        return secrets.randbelow(2**31)
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is neither a number nor 'random'") from None


def parse_args(argv: Sequence[str] | None) -> ChaosOptions:
    parser = argparse.ArgumentParser(
        prog="python -m chaos.run",
        description="revsync under vendor faults, duplicate deliveries, killed workers and a "
        "killed Temporal server; checks that every quote ends consistently (docs/chaos.md).",
    )
    parser.add_argument("--quotes", type=int, required=True, help="quotes to send")
    parser.add_argument(
        "--seed",
        type=_seed,
        default=1,
        help="seed of every random choice, or 'random' to draw one (printed, to replay it)",
    )
    parser.add_argument("--kills", type=int, default=10, help="worker processes to SIGKILL")
    parser.add_argument(
        "--server-restarts", type=int, default=1, help="times to SIGKILL the Temporal server"
    )
    parser.add_argument("--scale", default="erp=3,billing=2", help="revsync dev --scale")
    parser.add_argument(
        "--window",
        type=float,
        help="seconds of deliveries, faults and kills (default: 0.15 s per quote, at least 10)",
    )
    parser.add_argument(
        "--wait",
        type=float,
        help="seconds to wait for every saga to settle afterwards "
        "(default: 1 s per quote, at least 120)",
    )
    parser.add_argument(
        "--http-timeout", type=float, default=2.0, help="vendor HTTP timeout of the stack (s)"
    )
    parser.add_argument("--keep-dir", action="store_true", help="keep state and logs")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    if args.quotes < 1 or args.kills < 0 or args.server_restarts < 0:
        parser.error("--quotes must be at least 1; --kills and --server-restarts at least 0")
    try:
        parse_scale(args.scale)
    except typer.BadParameter as error:
        parser.error(f"--scale: {error.message}")
    return ChaosOptions(
        quotes=args.quotes,
        seed=args.seed,
        kills=args.kills,
        server_restarts=args.server_restarts,
        scale=args.scale,
        window_seconds=args.window,
        wait_seconds=args.wait,
        http_timeout_seconds=args.http_timeout,
        keep_dir=args.keep_dir,
        quiet=args.quiet,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    result = asyncio.run(run_chaos(options))
    sys.stdout.write(render(result) + "\n")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
