"""Where a worker's Python thread spends its CPU: cProfile's cumulative time at a few entry
points that name revsync's costs (cProfile inflates absolute times; shares are what count)."""

from __future__ import annotations

import cProfile
import pstats
from typing import Any

# (indent, label, file path suffix, function name): nested rows are part of the row above.
ENTRY_POINTS: tuple[tuple[int, str, str, str], ...] = (
    (0, "activities (adapters, vendor HTTP)", "temporalio/worker/_activity.py", "execute_activity"),
    (1, "httpx send (client, pool, h11, sockets)", "httpx/_client.py", "send"),
    (
        2,
        "httpcore pool scan on every request",
        "httpcore/_async/connection_pool.py",
        "_assign_requests_to_connections",
    ),
    (
        2,
        "httpcore current_async_library (sniffio lookup)",
        "httpcore/_synchronization.py",
        "current_async_library",
    ),
    (0, "workflow activations", "temporalio/worker/_workflow.py", "_handle_activation"),
    (
        1,
        "new workflow instance (sandbox re-imports)",
        "temporalio/worker/_workflow.py",
        "_create_workflow_instance",
    ),
    (0, "payload codec: encrypt", "revsync/codec.py", "encode"),
    (0, "payload codec: decrypt", "revsync/codec.py", "decode"),
    (0, "client: starting sagas", "revsync/gateway/webhooks.py", "start_quote_to_cash"),
)


def breakdown(profile: cProfile.Profile) -> list[dict[str, Any]]:
    stats = pstats.Stats(profile)
    raw: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    total = float(stats.total_tt)  # type: ignore[attr-defined]
    rows = []
    for indent, label, suffix, function in ENTRY_POINTS:
        seconds = sum(
            float(value[3])
            for (path, _, name), value in raw.items()
            if name == function and path.endswith(suffix)
        )
        rows.append(
            {
                "what": ("  " * indent) + label,
                "cpu_s_profiled": round(seconds, 3),
                "share_pct": round(100 * seconds / total, 1) if total else 0.0,
            }
        )
    rows.append({"what": "TOTAL (Python thread, profiled)", "cpu_s_profiled": round(total, 3)})
    rows[-1]["share_pct"] = 100.0
    return rows
