"""Every benchmark in sequence (``make bench``), each in its own process with modest defaults,
then a summary read back from ``bench/results/``.

    python -m bench.run_all            # the record: what bench/README.md reports
    python -m bench.run_all --quick    # small numbers, to check the benchmarks still run
                                       # (results to a temporary folder, not the record)
    python -m bench.run_all --only intake,governance
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import RESULTS_DIR, banner, machine_info

# name -> (arguments for the record, arguments for --quick)
BENCHMARKS: dict[str, tuple[list[str], list[str]]] = {
    "history_cost": (["--sagas", "5"], ["--sagas", "2"]),
    "saga_overhead": (
        ["--quotes", "200", "--rounds", "2", "--profile"],
        ["--quotes", "40", "--rounds", "1", "--warmup", "5"],
    ),
    "intake": (["--requests", "1000", "--rounds", "2"], ["--requests", "200", "--rounds", "1"]),
    "governance": (["--orders", "500"], ["--orders", "40"]),
    "burst": (["--quotes", "1000"], ["--quotes", "100", "--parked", "50"]),
    "reconcile": (
        [],  # 100,000 quotes and invoices, 20,000 customers, 1,000 changes
        [
            *("--quotes", "2000", "--invoices", "2000", "--customers", "400"),
            *("--sagas", "3", "--changes", "100"),
        ],
    ),
    "adoption": (
        ["--accounts", "2000", "--rules", "50000"],
        ["--accounts", "200", "--rules", "5000"],
    ),
}


def load_from(name: str, results: Path) -> dict[str, Any]:
    path = results / f"{name}.json"
    return dict(json.loads(path.read_text())["figures"]) if path.exists() else {}


def summary(names: list[str], quick: bool, results: Path) -> list[str]:
    lines: list[str] = []

    def load(name: str) -> dict[str, Any]:
        return load_from(name, results)

    if "saga_overhead" in names and (f := load("saga_overhead")):
        rates = f["sagas_per_s"]
        lines.append(
            f"saga_overhead  revsync {rates['revsync']} sagas/s, bare {rates['bare']} sagas/s: "
            f"ratio {f['ratio_revsync_over_bare']} (target >= 0.9); CPU/saga revsync "
            f"{f['per_saga']['revsync']['CPU ms: total']:.0f} ms vs bare "
            f"{f['per_saga']['bare']['CPU ms: total']:.0f} ms"
        )
        if "ratio_revsync_over_handwritten" in f:
            lines.append(
                f"               hand-written {rates['hand-written']} sagas/s (the same vendor "
                f"calls, no revsync): ratio {f['ratio_revsync_over_handwritten']}"
            )
    if "history_cost" in names and (f := load("history_cost")):
        happy = f["happy_path"]
        lines.append(
            f"history_cost   happy path: {happy['events_total']:g} events, "
            f"{happy['actions_total']:g} billable actions, {happy['workflow_tasks']:g} workflow "
            f"tasks; upserts changing nothing: {happy['upserts_unchanged']}"
        )
        if f.get("with_approval"):
            approval = f["with_approval"]
            lines.append(
                f"               with approval: {approval['events_total']:g} events, "
                f"{approval['actions_total']:g} actions"
            )
    if "intake" in names and (f := load("intake")):
        gw, raw = f["summary"]["gateway"], f["summary"]["raw start_workflow"]
        lines.append(
            f"intake         gateway {gw['requests_per_s']:.0f} req/s (p50 {gw['p50_ms']} ms, "
            f"p99 {gw['p99_ms']} ms), raw start_workflow {raw['requests_per_s']:.0f}/s: "
            f"ratio {f['ratio_gateway_over_raw']}"
        )
    if "governance" in names and (f := load("governance")):
        lines.append(
            f"governance     {f['erp_calls_per_s']} ERP calls/s of {f['capacity_calls_per_s']} "
            f"capacity ({f['utilisation_pct']}%), peak {f['peak_in_flight']} in flight, "
            f"{f['limit_violations_refused']} limit violations; {f['orders']} orders in "
            f"{f['seconds_to_all_booked']} s"
        )
    if "burst" in names:
        quotes = BENCHMARKS["burst"][1 if quick else 0][1]
        f = load("burst" if quotes == "1000" else f"burst_{quotes}")
        if f:
            burst, parked = f["burst"], f["parked"]
            workers = {k: v for k, v in burst["peak_rss_mb"].items() if k.startswith("worker")}
            lines.append(
                f"burst          {burst['booked']} booked in {burst['seconds_to_all_booked']} s "
                f"({burst['sagas_per_s']}/s), Temporal server "
                f"{burst['cpu_seconds'].get('temporal server')} CPU s; peak worker RSS MB "
                + ", ".join(f"{k.removeprefix('worker ')} {v}" for k, v in workers.items())
            )
            parked_workers = {
                k: v for k, v in parked["rss_while_parked_mb"].items() if k.startswith("worker")
            }
            lines.append(
                f"               {parked['parked']} parked: worker RSS MB "
                + ", ".join(f"{k.removeprefix('worker ')} {v}" for k, v in parked_workers.items())
                + f"; approve call p50/p99 {parked['approve_call_ms']['p50']}/"
                f"{parked['approve_call_ms']['p99']} ms, response -> stage left "
                f"{parked['response_to_stage_left_ms']['p50']}/"
                f"{parked['response_to_stage_left_ms']['p99']} ms"
            )
    if "reconcile" in names and (f := load("reconcile")):
        full, inc = f["full"], f["incremental"]

        def drift(part: dict[str, Any]) -> str:
            d = part["drift"]
            return "exact" if d["exact"] else f"missed {d['missed']}, unexpected {d['unexpected']}"

        lines.append(
            f"reconcile      full run {full['seconds']} s ({drift(full)}), incremental after "
            f"{inc['changed_subjects']} changes {inc['seconds']} s ({drift(inc)}); peak worker "
            f"RSS {max(f['worker_peak_rss_mb'].values())} MB; most events a run "
            f"{max(v['max_events'] for v in f['history'].values())}; saga p95 during/idle "
            f"{f['sagas']['ratio_p95_during_over_idle']}x"
        )
    if "adoption" in names and (f := load("adoption")):
        rules, stack = f["rules"], f["stack"]
        lines.append(
            f"adoption       ledger rules {rules['records_per_s']:.0f} records/s "
            f"({rules['records']} records, peak {rules['peak_alloc_mb']} MB); on the stack "
            f"{stack['records_read']} records read in {stack['seconds_to_ledger']} s "
            f"({stack['records_read_per_s']:.0f}/s), {stack['approved']} approvals in "
            f"{stack['seconds_to_approved']} s, RSS {stack['rss_mb_after_approvals']:.0f} MB"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run_all",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="small numbers (a smoke run)")
    parser.add_argument("--only", default="", help="comma-separated benchmark names")
    args = parser.parse_args(argv)
    names = [n for n in BENCHMARKS if not args.only or n in args.only.split(",")]
    banner("run_all", ", ".join(names) + (" (quick)" if args.quick else ""))
    failed: list[str] = []
    took: dict[str, float] = {}
    env = dict(os.environ)
    results = RESULTS_DIR
    if args.quick:  # a smoke run: its files go to a temporary folder, never over the record
        results = Path(tempfile.mkdtemp(prefix="revsync-bench-quick-"))
        env["BENCH_RESULTS_DIR"] = str(results)
    for name in names:
        extra = BENCHMARKS[name][1 if args.quick else 0]
        command = [sys.executable, "-m", f"bench.{name}", *extra]
        print(f"\n$ python -m bench.{name} {' '.join(extra)}", flush=True)
        began = time.monotonic()
        if subprocess.run(command, check=False, env=env).returncode != 0:
            failed.append(name)
        took[name] = time.monotonic() - began
    info = machine_info()
    print(
        f"\n== summary ({info['timestamp_utc']}, {info['cpu_count']} x {info['cpu_model']}, "
        f"{info['memory_total_mb']} MB, commit {(info['git_commit'] or '?')[:10]})"
    )
    for line in summary([n for n in names if n not in failed], args.quick, results):
        print(line)
    print("took: " + ", ".join(f"{n} {s:.0f}s" for n, s in took.items()))
    print(f"results: {results}")
    if failed:
        print(f"FAILED: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
