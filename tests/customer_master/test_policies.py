"""A golden customer takes the deployment's policy at its next run (issue 15, defect 10).

Before, a customer master carried the policy it started with forever: a raised history limit
(or a new propagation budget) never reached a customer created before the change. Now each
run after the first asks the orchestration workers for the current one (``policy.current``).
Time-skipping server, fake systems."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from domain.customer_master import System, master_workflow_id
from domain.invoice_contracts import InvoicePolicy
from domain.master_contracts import MasterPolicy
from domain.policies import CurrentPolicies
from tests.customer_master.fakes import (
    FakeMasterSystems,
    change,
    deliver,
    golden_id,
    running_workers,
)
from tests.customer_master.test_workflow import continued, settled, until


async def runs_after_28_changes(env: WorkflowEnvironment, current: CurrentPolicies | None) -> int:
    """A customer started with a history limit of 40 events takes 28 changes: the first 14
    fill one run; the runs it has had after the other 14."""
    client, fakes, golden = env.client, FakeMasterSystems(), golden_id()
    fakes.link(golden, billing="cus_P1", erp="501")
    fakes.current_policies = current
    policy = MasterPolicy(history_limit=40)
    async with running_workers(client, fakes):
        await deliver(client, golden, change(System.CRM, golden, 0, website="a.example"), policy)
        first_run = (await client.get_workflow_handle(master_workflow_id(golden)).describe()).run_id
        for n in range(1, 14):
            await deliver(client, golden, change(System.CRM, golden, n, website=f"{n}.example"))
        await continued(client, golden, first_run or "")
        for n in range(14, 28):
            await deliver(client, golden, change(System.CRM, golden, n, website=f"{n}.example"))
        status = await until(client, golden, lambda s: s.events_applied == 28 and settled(s))
    return status.runs


async def test_a_raised_history_limit_reaches_the_customer_at_its_next_run(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    deployment = CurrentPolicies(
        invoice=InvoicePolicy(), customer_master=MasterPolicy(history_limit=5000)
    )
    assert await runs_after_28_changes(time_skipping_env, deployment) == 1


async def test_a_customer_keeps_its_policy_when_no_worker_can_say_the_current_one(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    assert await runs_after_28_changes(time_skipping_env, None) >= 2
