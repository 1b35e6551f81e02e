"""Determinism: the committed invoice-to-revenue and invoice-adjustment histories replay against
the current workflow code with the production converter (re-record with
``python -m tests.invoice_to_revenue.record`` / ``.record_adjustment``, see their docstrings)."""

from __future__ import annotations

from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from revsync.codec import KeyRing, encrypted_data_converter, generate_key_entry
from tests.invoice_to_revenue.record import HISTORY, WORKFLOW_ID
from tests.invoice_to_revenue.record_adjustment import HISTORY as ADJUSTMENT_HISTORY
from tests.invoice_to_revenue.record_adjustment import WORKFLOW_ID as ADJUSTMENT_WORKFLOW_ID
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


async def test_the_committed_invoice_adjustment_history_replays():
    text = ADJUSTMENT_HISTORY.read_text()
    assert '"InvoiceAdjustment"' in text
    for activity in ("erp.post_revenue_journal", "erp.credit_receivable", '"resolve"'):
        assert activity in text
    history = WorkflowHistory.from_json(ADJUSTMENT_WORKFLOW_ID, text)
    replayer = Replayer(
        workflows=list(WORKFLOWS),
        data_converter=encrypted_data_converter(KeyRing.parse(generate_key_entry("replay"))),
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
