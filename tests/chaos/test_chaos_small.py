"""A small chaos run in `make test`: 20 quotes through `revsync dev --scale erp=2` under vendor
faults and duplicate deliveries, two workers and the Temporal server SIGKILLed mid-run, and
every invariant of chaos.invariants checked at the end (docs/chaos.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chaos.report import render
from chaos.run import ChaosOptions, run_chaos

pytestmark = pytest.mark.e2e


async def test_a_small_chaos_run_keeps_every_invariant(tmp_path: Path):
    result = await run_chaos(
        ChaosOptions(
            quotes=20,
            seed=8,
            kills=2,
            server_restarts=1,
            scale="erp=2",
            # Generous for a loaded 2-core machine; a quiet one is done in about 20 s.
            window_seconds=10,
            wait_seconds=150,
            keep_dir=True,
            base_dir=tmp_path,
            quiet=True,
        )
    )
    summary = render(result)
    assert result.ok, summary

    # Every quote has a saga, and the chaos did happen.
    assert len(result.sagas) == 20, summary
    assert result.deliveries.verdicts["started"] + result.deliveries.verdicts["duplicate"] > 20
    assert sum(result.faults_fired.values()) > 0, summary
    assert result.kills.worker_kills_done == 2, summary
    assert result.kills.server_restarts_done == 1, summary
    for kill in [*result.kills.workers, *result.kills.servers]:
        assert kill.replaced_by not in (None, kill.pid), summary

    # The supervisor saw it the same way: two workers and the server died and came back.
    assert result.kept_dir is not None
    log = (result.kept_dir / "revsync-dev.log").read_text(errors="replace").splitlines()
    events = [json.loads(line) for line in log if line.startswith("{")]
    names = [e["event"] for e in events]
    assert names.count("exited; restarting") >= 2, summary
    assert names.count("exited; restarting on the same state") == 1, summary
    assert names.count("temporal ready again") == 1, summary
    assert names[-1] == "dev stack stopped", summary
    assert events[-1]["exit_code"] == 0, summary
