"""What every benchmark shares: the machine's description, the results file, tables,
percentiles, and logging that stays out of the printed figures."""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from revsync.logs import configure_logging

REPO = Path(__file__).resolve().parent.parent
# The record lives in bench/results/; BENCH_RESULTS_DIR sends a run's files elsewhere (what
# `run_all --quick` does, so that a smoke run never overwrites the record).
RESULTS_DIR = Path(
    os.environ.get("BENCH_RESULTS_DIR") or Path(__file__).resolve().parent / "results"
)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() == "model name":
                return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _run(*argv: str) -> str | None:
    try:
        done = subprocess.run(
            argv, cwd=REPO, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def temporal_cli_version() -> str | None:
    binary = Path(sys.executable).parent / "temporal"
    found = _run(str(binary), "--version") if binary.exists() else None
    return found.splitlines()[0] if found else None


def other_dev_servers() -> int:
    """Temporal dev servers running on this machine that this process did not start: another
    benchmark, a test run or someone's `make dev` competing for the same cores."""
    mine = {p.pid for p in psutil.Process().children(recursive=True)}
    count = 0
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info.get("cmdline") or []
        if "start-dev" in cmdline and process.pid not in mine:
            count += 1
    return count


_AT_START: dict[str, Any] = {}


def machine_info() -> dict[str, Any]:
    """Where and on what a figure was measured."""
    memory = psutil.virtual_memory()
    status = _run("git", "status", "--porcelain")
    return _AT_START | {
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "memory_total_mb": round(memory.total / 2**20),
        "memory_available_mb": round(memory.available / 2**20),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "temporalio": metadata.version("temporalio"),
        "temporal_cli": temporal_cli_version(),
        "timestamp_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": _run("git", "rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),
    }


def write_results(name: str, params: dict[str, Any], figures: dict[str, Any]) -> Path:
    """``bench/results/<name>.json``: the figures, the parameters and the machine."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    record = {"benchmark": name, "params": params, "figures": figures, "machine": machine_info()}
    path.write_text(json.dumps(record, indent=2, sort_keys=False, default=str) + "\n")
    shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path
    print(f"\nwrote {shown}")
    return path


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile (0-100) by linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A fixed-width text table; numbers right-aligned."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    numeric = [all(_is_number(row[i]) for row in rows) and bool(rows) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    try:
        float(str(value).rstrip("%x"))
    except ValueError:
        return False
    return True


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    print(f"\n{title}\n{table(headers, rows)}")


def rnd(value: float, digits: int = 2) -> float:
    """Rounded for printing and the results file (NaN stays NaN)."""
    return value if math.isnan(value) else round(value, digits)


def quiet_logging() -> None:
    """revsync's own log set-up (JSON, INFO, redaction, every standard-library record through
    structlog: the same cost as production) written to /dev/null, so that only the figures
    reach the terminal."""
    devnull = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    configure_logging(level=logging.INFO, log_format="json", stream=devnull)


def cpu_seconds(process: psutil.Process) -> float:
    """User plus system CPU seconds ``process`` has used so far (0 once it is gone)."""
    try:
        times = process.cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


def banner(name: str, what: str) -> None:
    """Print what runs where, and note how busy the machine was at the start."""
    _AT_START.update(
        load_average_1m_at_start=round(os.getloadavg()[0], 2),
        other_temporal_dev_servers_at_start=other_dev_servers(),
    )
    info = machine_info()
    print(
        f"== {name}: {what}\n"
        f"   {info['cpu_count']} x {info['cpu_model']}, {info['memory_total_mb']} MB, "
        f"load {info['load_average_1m_at_start']}, {info['python']}, "
        f"temporalio {info['temporalio']}, "
        f"commit {(info['git_commit'] or '?')[:10]}{' (dirty)' if info['git_dirty'] else ''}",
        flush=True,
    )
    if info["other_temporal_dev_servers_at_start"]:
        print(
            f"   note: {info['other_temporal_dev_servers_at_start']} other Temporal dev server(s) "
            "running on this machine: figures will be lower and noisier",
            flush=True,
        )


def thread_cpu_seconds() -> dict[int, float]:
    """CPU seconds so far of each thread of this process, by native thread id."""
    return {t.id: t.user_time + t.system_time for t in psutil.Process().threads()}
