"""``make fuzz``: a long contract-fuzzing run of the live gateway; prints the counts and exits
1 on any failure. ``python -m tests.fuzz.run --cases 10000 --seed 1``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time

import structlog

from tests.fuzz.harness import Tally, fuzz, fuzz_target


async def main_async(cases: int, run_seed: int) -> Tally:
    async with fuzz_target() as target:

        def progress(tally: Tally) -> None:
            print(
                f"... {tally.cases} cases, {sum(tally.failures.values())} failures", file=sys.stderr
            )

        return await asyncio.to_thread(
            fuzz,
            target.url,
            target.secrets,
            target.recorder,
            cases=cases,
            run_seed=run_seed,
            progress=progress,
        )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.run")
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    # The gateway's and the workers' log lines would bury the counts: errors only.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    logging.getLogger().setLevel(logging.ERROR)
    started = time.monotonic()
    tally = asyncio.run(main_async(args.cases, args.seed))
    print(f"gateway contract fuzz: seed {args.seed}, {time.monotonic() - started:.0f} s")
    print(tally.summary())
    return 1 if tally.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
