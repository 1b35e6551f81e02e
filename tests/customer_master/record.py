"""Record the customer-master history the replay test replays:
``python -m tests.customer_master.record``.

One golden customer on the time-skipping server with the fake systems
(tests/customer_master/fakes.py): changes from CRM, billing and ERP (applied, held for
review, stale), a lookup of the billing and ERP records, propagation with one rejected and
parked then resolved, a review accepted, a duplicate found and merged into the other record,
which ends the run. Written beside the quote-to-cash histories as
``tests/histories/customer_master_merged.json``. Re-record only when a change is meant to
alter the commands of an existing run, behind ``workflow.patched`` for the runs still going.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from domain.customer_master import (
    MasterField,
    ReviewAction,
    ReviewDecision,
    StewardAction,
    StewardDecision,
    System,
    master_workflow_id,
)
from domain.master_contracts import CustomerMasterStatus, MasterActivity, ResolvePropagation
from domain.saga import ResolveAction
from revsync.customer_master import customer_status, decide_customer
from tests.conftest import installed_binary
from tests.customer_master.fakes import FakeMasterSystems, change, deliver, running_workers
from tests.workflows.fakes import rejected

HISTORY = Path(__file__).parents[1] / "histories" / "customer_master_merged.json"
GOLDEN = "0015e00000RplyUS1"
SURVIVOR = "0015e00000RplyUS2"


async def wait(env: WorkflowEnvironment, golden: str, ready: object) -> CustomerMasterStatus:
    for _ in range(400):
        status = await customer_status(env.client, golden)
        if callable(ready) and ready(status):
            return status
        await asyncio.sleep(0.05)
    raise RuntimeError("never ready")


async def record() -> None:
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=installed_binary("temporal-test-server"),
    )
    client = env.client
    try:
        fakes = FakeMasterSystems()
        fakes.link(GOLDEN, billing="cus_R1", erp="401")
        fakes.fail_with(MasterActivity.ERP_UPDATE_CUSTOMER_FIELDS, rejected("INVALID_FLD_VALUE"))
        async with running_workers(client, fakes):
            await deliver(client, SURVIVOR, change(System.ERP, "402", 0, tax_id="94-7654321"))
            await deliver(client, GOLDEN, change(System.CRM, GOLDEN, 1, name="Replay Robotics"))
            await wait(env, GOLDEN, lambda s: bool(s.parked))
            await deliver(client, GOLDEN, change(System.CRM, GOLDEN, 2, tax_id="94-7654321"))
            await deliver(client, GOLDEN, change(System.BILLING, "cus_R1", 3, email="ap@r.example"))
            await deliver(client, GOLDEN, change(System.CRM, GOLDEN, 0, name="Old Name"))
            await decide_customer(
                client,
                GOLDEN,
                ResolvePropagation(action=ResolveAction.RETRY, operator="Oscar Ops", note="fixed"),
            )
            await decide_customer(
                client,
                GOLDEN,
                ReviewDecision(
                    field=MasterField.TAX_ID,
                    system=System.CRM,
                    action=ReviewAction.ACCEPT,
                    steward="Dana Steward",
                    note="W-9 on file",
                ),
            )
            await deliver(client, GOLDEN, change(System.ERP, "401", 4, tax_id="94-7654321"))
            await wait(env, GOLDEN, lambda s: bool(s.suspicions) and not s.queued)
            await decide_customer(
                client,
                GOLDEN,
                StewardDecision(
                    action=StewardAction.MERGE,
                    candidate=SURVIVOR,
                    into=SURVIVOR,
                    steward="Dana Steward",
                    note="same EIN",
                ),
            )
            handle = client.get_workflow_handle(master_workflow_id(GOLDEN))
            await handle.result()
            history = await handle.fetch_history()
        HISTORY.write_text(history.to_json())
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(record())
