"""Determinism: the committed customer-master histories replay against the current workflow
code (re-record with ``python -m tests.customer_master.record`` and ``.record_merge``, see
their docstrings): a merge of the earlier protocol, and both sides of an acknowledged one."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from domain.customer_master import master_workflow_id
from revsync.codec import KeyRing, encrypted_data_converter, generate_key_entry
from tests.customer_master.record import GOLDEN, HISTORY
from tests.customer_master.record_merge import (
    ABSORBED,
    ABSORBED_HISTORY,
    SURVIVOR,
    SURVIVOR_HISTORY,
)
from workers.build import WORKFLOWS


async def test_the_committed_customer_master_history_replays() -> None:
    text = HISTORY.read_text()
    for expected in ('"CustomerMaster"', "apply_change", "erp.update_customer_fields", "absorb"):
        assert expected in text, expected
    history = WorkflowHistory.from_json(master_workflow_id(GOLDEN), text)
    replayer = Replayer(
        workflows=list(WORKFLOWS),
        data_converter=encrypted_data_converter(KeyRing.parse(generate_key_entry("replay"))),
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


MERGE_HISTORIES = {ABSORBED: ABSORBED_HISTORY, SURVIVOR: SURVIVOR_HISTORY}


@pytest.mark.parametrize("golden", sorted(MERGE_HISTORIES))
async def test_the_committed_acknowledged_merge_histories_replay(golden: str) -> None:
    text = MERGE_HISTORIES[golden].read_text()
    for expected in ("merge_request", "hand_over", "handed_over", "merge_confirmed"):
        assert expected in text, expected
    history = WorkflowHistory.from_json(master_workflow_id(golden), text)
    replayer = Replayer(
        workflows=list(WORKFLOWS),
        data_converter=encrypted_data_converter(KeyRing.parse(generate_key_entry("replay"))),
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
