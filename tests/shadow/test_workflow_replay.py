"""Determinism: the committed shadow-mode histories replay against the current workflow
code (re-record with ``python -m tests.shadow.record``)."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from revsync.codec import KeyRing, encrypted_data_converter, generate_key_entry
from tests.shadow.record import COMPARISON_HISTORY, COMPARISON_ID, REPLAY_HISTORY, REPLAY_ID
from workers.build import WORKFLOWS


@pytest.mark.parametrize(
    ("path", "workflow_id", "activity"),
    [
        (REPLAY_HISTORY, REPLAY_ID, "crm.shadow_materialize"),
        (COMPARISON_HISTORY, COMPARISON_ID, "erp.shadow_observe"),
    ],
)
async def test_the_committed_shadow_history_replays(
    path: object, workflow_id: str, activity: str
) -> None:
    text = path.read_text()  # type: ignore[attr-defined]
    assert activity in text
    history = WorkflowHistory.from_json(workflow_id, text)
    replayer = Replayer(
        workflows=list(WORKFLOWS),
        data_converter=encrypted_data_converter(KeyRing.parse(generate_key_entry("replay"))),
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
