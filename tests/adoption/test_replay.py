"""Determinism: the committed adoption history replays against the current workflow code
(re-record with ``python -m tests.adoption.record``)."""

from __future__ import annotations

from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from revsync.codec import KeyRing, encrypted_data_converter, generate_key_entry
from tests.adoption.record import HISTORY, WORKFLOW_ID
from workers.build import WORKFLOWS


async def test_the_committed_adoption_history_replays() -> None:
    text = HISTORY.read_text()
    for activity in ("erp.adopt_link_customers", "temporal.adopt_start_golden_records"):
        assert activity in text
    history = WorkflowHistory.from_json(WORKFLOW_ID, text)
    replayer = Replayer(
        workflows=list(WORKFLOWS),
        data_converter=encrypted_data_converter(KeyRing.parse(generate_key_entry("replay"))),
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
