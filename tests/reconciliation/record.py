"""Record the reconciliation history the replay test replays:
``python -m tests.reconciliation.record``.

One run on the time-skipping server with the fake systems (tests/reconciliation/fakes.py):
every listing, a CRM rewrite, a compensation, a repair that fails. Written beside the
quote-to-cash histories as ``tests/histories/reconciliation_repairs.json`` (recorded before
customers and invoices were compared: it replays without those phases). A second run
compares customers and invoices too, re-propagating a customer:
``tests/histories/reconciliation_customers_invoices.json``. Re-record only
when a change is meant to alter the commands of an existing run, and only once no run of
the old code is going (a run lasts minutes, so usually: deploy between runs).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from domain.contracts import TaskQueue
from domain.invoice_contracts import InvoiceStage
from domain.reconciliation import ReconciliationInput, System
from tests.conftest import installed_binary
from tests.reconciliation.fakes import (
    Fakes,
    customer,
    invoice,
    invoice_saga,
    many_quotes,
    workers,
)
from workflows.reconciliation import ReconciliationWorkflow

HISTORY = Path(__file__).parents[1] / "histories" / "reconciliation_repairs.json"
WORKFLOW_ID = "reconciliation-replay"
CUSTOMERS_HISTORY = (
    Path(__file__).parents[1] / "histories" / "reconciliation_customers_invoices.json"
)
CUSTOMERS_WORKFLOW_ID = "reconciliation-customers-replay"


def customers_and_invoices() -> Fakes:
    """Quotes as in :func:`many_quotes`, a customer whose ERP name drifted, one without a
    customer-master workflow, and an invoice paid in billing but open in ERP."""
    records, sagas = many_quotes()
    customers = [
        customer(System.CRM, "A", "A", name="Acme GmbH"),
        customer(System.ERP, "A", "11", name="Acme Holding"),
        customer(System.CRM, "B", "B", email="old@beta.example"),
        customer(System.BILLING, "B", "cus_B", email="ap@beta.example"),
        customer(System.ERP, "B", "12"),
    ]
    invoices = [
        invoice(System.BILLING, "in_1", "in_1", "paid"),
        invoice(System.ERP, "in_1", "901", "open", due="120.00"),
    ]
    sagas_i2r = [invoice_saga("in_1", InvoiceStage.AWAITING_PAYMENT, running=True)]
    fakes = Fakes(records, sagas, customers, invoices, sagas_i2r)
    fakes.no_master.add("B")
    return fakes


async def record(fakes: Fakes, workflow_id: str) -> str:
    """The history of one run, as JSON."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=installed_binary("temporal-test-server"),
    )
    try:
        fakes.refuse.add("sub_L")
        async with workers(env.client, fakes):
            handle = await env.client.start_workflow(
                ReconciliationWorkflow.run,
                ReconciliationInput(page_size=5),
                id=workflow_id,
                task_queue=TaskQueue.ORCHESTRATION,
            )
            await handle.result()
            history = await handle.fetch_history()
    finally:
        await env.shutdown()
    return history.to_json()


if __name__ == "__main__":
    # Only the customers-and-invoices history: the first one is kept as recorded by the
    # code before the patch (re-record it with ``record(Fakes(*many_quotes()), ...)``).
    CUSTOMERS_HISTORY.write_text(
        asyncio.run(record(customers_and_invoices(), CUSTOMERS_WORKFLOW_ID))
    )
