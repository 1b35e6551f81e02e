"""Record the histories of an acknowledged merge the replay test replays:
``python -m tests.customer_master.record_merge``.

Two golden customers sharing a tax id on the time-skipping server with the fake systems
(tests/customer_master/fakes.py); a steward merges the second into the first from the second
record: it asks the first to drive (``merge_request``), hands itself over, is confirmed and
ends MERGED. Both records' histories are written beside the others
(``tests/histories/customer_master_merge_absorbed.json``, ``..._survivor.json``). Re-record
only when a change is meant to alter the commands of a merge, behind ``workflow.patched``
for the runs still going.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from domain.customer_master import StewardAction, StewardDecision, System, master_workflow_id
from domain.master_contracts import CustomerMasterStatus
from revsync.customer_master import decide_customer
from tests.conftest import installed_binary
from tests.customer_master.fakes import FakeMasterSystems, change, deliver, running_workers
from tests.customer_master.test_workflow import until

HISTORIES = Path(__file__).parents[1] / "histories"
ABSORBED_HISTORY = HISTORIES / "customer_master_merge_absorbed.json"
SURVIVOR_HISTORY = HISTORIES / "customer_master_merge_survivor.json"
SURVIVOR = "0015e00000MrgeUS1"
ABSORBED = "0015e00000MrgeUS2"


async def record() -> None:
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=installed_binary("temporal-test-server"),
    )
    client = env.client
    try:
        fakes = FakeMasterSystems()
        fakes.link(SURVIVOR, erp="501")
        fakes.link(ABSORBED, erp="502")
        async with running_workers(client, fakes):
            await deliver(client, SURVIVOR, change(System.ERP, "501", 0, tax_id="94-1112223"))
            await deliver(client, ABSORBED, change(System.ERP, "502", 1, tax_id="94-1112223"))
            await deliver(client, ABSORBED, change(System.CRM, ABSORBED, 2, name="Merge Co"))
            await until(client, ABSORBED, lambda s: bool(s.suspicions) and not s.queued)
            await decide_customer(
                client,
                ABSORBED,
                StewardDecision(
                    action=StewardAction.MERGE,
                    candidate=SURVIVOR,
                    into=SURVIVOR,
                    steward="Dana Steward",
                    note="same EIN",
                ),
            )
            absorbed = client.get_workflow_handle(
                master_workflow_id(ABSORBED), result_type=CustomerMasterStatus
            )
            await absorbed.result()
            await until(client, SURVIVOR, lambda s: ABSORBED in s.record.absorbed and not s.queued)
            survivor = client.get_workflow_handle(master_workflow_id(SURVIVOR))
            ABSORBED_HISTORY.write_text((await absorbed.fetch_history()).to_json())
            SURVIVOR_HISTORY.write_text((await survivor.fetch_history()).to_json())
            await survivor.terminate("recorded")
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(record())
