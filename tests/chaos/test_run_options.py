"""`python -m chaos.run`'s seed: fixed, or drawn at random and printed so a failure replays."""

from __future__ import annotations

import pytest

from chaos.invariants import Kind, Violation
from chaos.report import ChaosResult, render
from chaos.run import parse_args


def test_a_random_seed_is_drawn_per_run():
    seeds = {parse_args(["--quotes", "3", "--seed", "random"]).seed for _ in range(5)}
    assert len(seeds) > 1
    assert parse_args(["--quotes", "3"]).seed == 1
    assert parse_args(["--quotes", "3", "--seed", "4242"]).seed == 4242


def test_a_seed_that_is_neither_a_number_nor_random_is_refused(
    capsys: pytest.CaptureFixture[str],
):
    with pytest.raises(SystemExit):
        parse_args(["--quotes", "3", "--seed", "lucky"])
    assert "'lucky' is neither a number nor 'random'" in capsys.readouterr().err


def test_a_failed_run_says_how_to_replay_its_plan():
    result = ChaosResult(
        seed=977, quotes=300, scale="erp=3,billing=2", kills_wanted=4, server_restarts_wanted=2
    )
    assert "replay:" not in render(result)

    result.violations.append(Violation(Kind.LOST, "quote q1", "no saga"))
    summary = render(result)

    assert (
        "replay: python -m chaos.run --quotes 300 --seed 977 --kills 4 --server-restarts 2 "
        "--scale erp=3,billing=2 --keep-dir"
    ) in summary
    assert summary.endswith("FAILED")
    assert parse_args(summary.split("replay: python -m chaos.run ")[1].split()[:-1]).seed == 977
