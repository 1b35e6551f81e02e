"""Determinism: the committed invoice-to-revenue history replays against the current workflow
code with the production converter (re-record with ``python -m tests.invoice_to_revenue.record``,
see its docstring)."""

from __future__ import annotations

from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from revsync.codec import KeyRing, encrypted_data_converter, generate_key_entry
from tests.invoice_to_revenue.record import HISTORY, WORKFLOW_ID
from workers.build import WORKFLOWS


async def test_the_committed_invoice_to_revenue_history_replays():
    text = HISTORY.read_text()
    assert '"InvoiceToRevenue"' in text
    for activity in ("erp.post_receivable", "erp.post_revenue_journal", "erp.apply_payment"):
        assert activity in text
    assert '"resolve"' in text and '"credit_note"' in text
    history = WorkflowHistory.from_json(WORKFLOW_ID, text)
    replayer = Replayer(
        workflows=list(WORKFLOWS),
        data_converter=encrypted_data_converter(KeyRing.parse(generate_key_entry("replay"))),
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
