"""Determinism: the committed reconciliation history replays against the current workflow
code (re-record with ``python -m tests.reconciliation.record``, see its docstring)."""

from __future__ import annotations

from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from revsync.codec import KeyRing, encrypted_data_converter, generate_key_entry
from tests.reconciliation.record import (
    CUSTOMERS_HISTORY,
    CUSTOMERS_WORKFLOW_ID,
    HISTORY,
    WORKFLOW_ID,
)
from tests.reconciliation.record_windows import RUN_HISTORY, RUN_ID, WINDOW_HISTORY
from workers.build import WORKFLOWS


async def test_the_committed_reconciliation_history_replays():
    text = HISTORY.read_text()
    assert '"Reconciliation"' in text and "crm.record_order" in text
    assert "billing.cancel_subscription" in text
    history = WorkflowHistory.from_json(WORKFLOW_ID, text)
    replayer = Replayer(
        workflows=list(WORKFLOWS),
        data_converter=encrypted_data_converter(KeyRing.parse(generate_key_entry("replay"))),
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


async def test_the_customers_and_invoices_history_replays():
    text = CUSTOMERS_HISTORY.read_text()
    assert '"markerName": "core_patch"' in text  # the customers-and-invoices patch
    for activity in ("crm.list_accounts", "billing.list_invoices", "temporal.repropagate_customer"):
        assert activity in text
    history = WorkflowHistory.from_json(CUSTOMERS_WORKFLOW_ID, text)
    replayer = Replayer(
        workflows=list(WORKFLOWS),
        data_converter=encrypted_data_converter(KeyRing.parse(generate_key_entry("replay"))),
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


async def test_the_reconcile_run_and_window_histories_replay():
    """ReconcileRun (windows as children, marks and progress saved) and the ReconcileWindow
    that repaired (listings, lookups, a compensation, rows written) replay against the
    current code (re-record: ``python -m tests.reconciliation.record_windows``)."""
    run_text = RUN_HISTORY.read_text()
    assert '"ReconcileRun"' in run_text and "reconcile.save_progress" in run_text
    assert "ReconcileWindow" in run_text
    window_text = WINDOW_HISTORY.read_text()
    for activity in ("erp.list_sales_orders_in", "billing.cancel_subscription"):
        assert activity in window_text
    assert "reconcile.write_rows" in window_text
    window_id = (WINDOW_HISTORY.parent / "reconcile_window.id").read_text().strip()
    replayer = Replayer(
        workflows=list(WORKFLOWS),
        data_converter=encrypted_data_converter(KeyRing.parse(generate_key_entry("replay"))),
    )
    for history in (
        WorkflowHistory.from_json(RUN_ID, run_text),
        WorkflowHistory.from_json(window_id, window_text),
    ):
        result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
        assert result.replay_failure is None
