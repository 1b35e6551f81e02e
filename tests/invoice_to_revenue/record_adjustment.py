"""Record the invoice-adjustment history the replay test replays:
``python -m tests.invoice_to_revenue.record_adjustment``.

On the time-skipping server with the fake vendors (``fakes.py``): an invoice saga runs to
CLOSED, then a late credit note starts its adjustment, which takes the revenue back, parks at
``credit_receivable`` (the paid receivable owes nothing) and is skipped by an operator.
Written beside the other histories as ``tests/histories/invoice_adjustment_credit_note.json``.
Re-record only when a change is meant to alter the commands of an existing adjustment, and
only once none of the old code is running (guard changes with ``workflow.patched``).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from domain.invoice_adjustment import AdjustmentStage
from domain.invoice_contracts import CreditNoteReceived
from domain.saga import ResolveAction, ResolveRequest
from tests.conftest import installed_binary
from tests.invoice_to_revenue.fakes import running_workers
from tests.invoice_to_revenue.test_late_events import (
    adjustment_until,
    closed_saga,
    last_months_invoice,
    late,
)
from tests.invoice_to_revenue.test_lifecycle import today, vendors_with
from workflows.invoice_adjustment import InvoiceAdjustmentWorkflow

HISTORY = Path(__file__).parents[1] / "histories" / "invoice_adjustment_credit_note.json"
WORKFLOW_ID = "i2r-adj-replay"


async def record() -> None:
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=installed_binary("temporal-test-server"),
    )
    try:
        invoice = last_months_invoice(await today(env))
        vendors = vendors_with(invoice)
        note = CreditNoteReceived(
            credit_note_id="cn_replay",
            currency="USD",
            lines={"il_platform": Decimal("300.00")},
            tax={"il_platform": Decimal("24.00")},
            total=Decimal("324.00"),
        )
        async with running_workers(env.client, vendors):
            await closed_saga(env.client, invoice, env)
            outcome = await late(env.client, invoice, note)
            handle = env.client.get_workflow_handle_for(
                InvoiceAdjustmentWorkflow.run, outcome.workflow_id
            )
            await adjustment_until(handle, lambda s: s.stage is AdjustmentStage.NEEDS_ATTENTION)
            await handle.execute_update(
                InvoiceAdjustmentWorkflow.resolve,
                ResolveRequest(action=ResolveAction.SKIP, operator="ops.lena", note="by hand"),
            )
            status = await handle.result()
            history = await handle.fetch_history()
        HISTORY.write_text(history.to_json() + "\n")
        print(f"{status.stage.value}, {len(history.events)} events")
    finally:
        await env.shutdown()


if __name__ == "__main__":
    import os
    import sys

    asyncio.run(record())
    sys.stdout.flush()
    os._exit(0)  # skip finalization: the SDK's native threads can abort it
