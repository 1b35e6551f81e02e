"""Determinism: the committed histories of every path a saga can take replay against the
current workflow code. A change that would make a running saga take other steps fails here;
guard it with ``workflow.patched`` or re-record (see tests/histories/record.py)."""

from __future__ import annotations

import json

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from revsync.codec import KeyRing, encrypted_data_converter, generate_key_entry
from tests.histories.record import SCENARIOS, history_path
from workers.build import WORKFLOWS


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
async def test_the_committed_history_replays(scenario: str):
    path = history_path(scenario)
    assert path.exists(), f"{path.name} missing: run python -m tests.histories.record"
    history = WorkflowHistory.from_json(f"q2c-replay-{scenario}", path.read_text())
    # The production converter: these histories predate encryption, which it reads as is.
    replayer = Replayer(
        workflows=list(WORKFLOWS),
        data_converter=encrypted_data_converter(KeyRing.parse(generate_key_entry("replay"))),
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


def test_every_workflow_type_has_committed_histories():
    recorded = {history_path(name).read_text().count('"workflowType"') > 0 for name in SCENARIOS}
    assert recorded == {True}
    # Every registered workflow has a history in tests/histories (other workflows' histories
    # are replayed by their own tests, e.g. tests/reconciliation/test_replay.py).
    committed = {
        json.loads(path.read_text())["events"][0]["workflowExecutionStartedEventAttributes"][
            "workflowType"
        ]["name"]
        for path in history_path(next(iter(SCENARIOS))).parent.glob("*.json")
    }
    registered = {w.__temporal_workflow_definition.name for w in WORKFLOWS}  # type: ignore[attr-defined]
    assert registered - committed == set(), "record a history of each new workflow"
    assert "QuoteToCash" in committed
