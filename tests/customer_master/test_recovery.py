"""A golden customer never restarts empty (issue 15, defect 2).

A chain the server ends without it handing on (terminated at Temporal's history limit, or by
an operator) used to be restarted by the next change with an empty golden record: every value
made golden before, every link and open review, gone. Now a run that starts from nothing
first takes the record of such an ended chain (``master.find_previous_record``), and changes
wait for it. Time-skipping server, fake systems."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from domain.customer_master import MasterField, System, master_workflow_id
from tests.customer_master.fakes import (
    FakeMasterSystems,
    change,
    deliver,
    golden_id,
    running_workers,
)
from tests.customer_master.test_workflow import settled, until


async def test_a_terminated_customer_restarts_from_its_record_not_empty(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client, fakes, golden = time_skipping_env.client, FakeMasterSystems(), golden_id()
    fakes.link(golden, billing="cus_R1", erp="601")
    async with running_workers(client, fakes):
        await deliver(client, golden, change(System.CRM, golden, 1, name="Acme Robotics"))
        before = await until(client, golden, lambda s: s.events_applied == 1 and settled(s))
        handle = client.get_workflow_handle(master_workflow_id(golden))
        ended_run = (await handle.describe()).run_id
        await handle.terminate("history size exceeds the limit")
        fakes.ended_runs[golden] = ended_run or ""

        await deliver(client, golden, change(System.CRM, golden, 2, website="acme.example"))
        after = await until(client, golden, lambda s: s.events_applied == 2 and settled(s))

    assert after.record.value(MasterField.NAME) == "Acme Robotics"  # not lost
    assert after.record.value(MasterField.WEBSITE) == "acme.example"
    assert after.record.xref == before.record.xref
    assert after.runs == before.runs + 1
    (recovered,) = [d for d in after.decisions if d.action == "recover"]
    assert recovered.subject == ended_run and "TERMINATED" in recovered.note


async def test_a_new_customer_starts_empty_and_a_completed_one_is_not_taken_up(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client, fakes, golden = time_skipping_env.client, FakeMasterSystems(), golden_id()
    async with running_workers(client, fakes):
        await deliver(client, golden, change(System.CRM, golden, 1, name="Beta GmbH"))
        status = await until(client, golden, lambda s: s.events_applied == 1 and settled(s))
    assert status.runs == 0
    assert [d for d in status.decisions if d.action == "recover"] == []
