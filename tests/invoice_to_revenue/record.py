"""Record the invoice-to-revenue history the replay test replays:
``python -m tests.invoice_to_revenue.record``.

One saga on the time-skipping server with the fake vendors (``fakes.py``): a three-month
invoice whose first journal is refused (closed period) and parks until ``resolve retry``, a
credit note, a payment, every period posted at its close, CLOSED. Written beside the other
histories as ``tests/histories/invoice_to_revenue_lifecycle.json``. Re-record only when a
change is meant to alter the commands of an existing saga, and only once no saga of the old
code is running (an invoice saga lives for months: guard changes with ``workflow.patched``).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from domain.invoice_contracts import CreditNoteReceived, InvoicePolicy, InvoiceStage
from domain.revenue import closes_on, period_of
from domain.saga import ResolveAction, ResolveRequest
from tests.conftest import installed_binary
from tests.invoice_to_revenue.fakes import first_of_next_month, running_workers
from tests.invoice_to_revenue.test_lifecycle import (
    make_invoice,
    payment,
    reach,
    start,
    today,
    vendors_with,
)
from workflows.invoice_to_revenue import InvoiceToRevenueWorkflow

HISTORY = Path(__file__).parents[1] / "histories" / "invoice_to_revenue_lifecycle.json"
WORKFLOW_ID = "i2r-replay"


async def record() -> None:
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=installed_binary("temporal-test-server"),
    )
    try:
        day = await today(env)
        first = first_of_next_month(day)
        invoice = make_invoice(day, first, 3, amount="3000.00")
        vendors = vendors_with(invoice)
        vendors.closed_periods.add(period_of(first))
        async with running_workers(env.client, vendors):
            handle = await start(env.client, invoice, InvoicePolicy(grace=timedelta(days=120)))
            await reach(handle, InvoiceStage.AWAITING_PAYMENT)
            await env.sleep(closes_on(period_of(first)) - day + timedelta(days=1))
            await reach(handle, InvoiceStage.NEEDS_ATTENTION)
            vendors.closed_periods.clear()
            await handle.execute_update(
                InvoiceToRevenueWorkflow.resolve,
                ResolveRequest(action=ResolveAction.RETRY, operator="ops.lena", note="reopened"),
            )
            await handle.signal(
                InvoiceToRevenueWorkflow.credit_note,
                CreditNoteReceived(
                    credit_note_id="cn_1",
                    currency="USD",
                    lines={"il_platform": Decimal("300.00")},
                    total=Decimal("324.00"),
                ),
            )
            await handle.signal(
                InvoiceToRevenueWorkflow.payment_received,
                payment(invoice, await env.get_current_time()).model_copy(
                    update={"amount": invoice.total - Decimal("324.00")}
                ),
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
