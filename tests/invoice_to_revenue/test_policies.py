"""A policy change reaches a running invoice saga at its next run (issue 15, defect 10).

Before, a saga carried the policy it started with into every run, for as long as it lived: a
36-month invoice kept its grace, budgets and run length for three years whatever the
deployment said. Now each run after the first takes the deployment's current policy from the
orchestration workers (``policy.current``); when none answers, the run keeps its own.
Time-skipping server, fake vendors."""

from __future__ import annotations

from datetime import timedelta

from temporalio.testing import WorkflowEnvironment

from domain.invoice_contracts import InvoicePolicy, InvoiceStage
from domain.master_contracts import MasterPolicy
from domain.policies import CurrentPolicies
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


async def run_a_year(env: WorkflowEnvironment, current: CurrentPolicies | None) -> int:
    """A 12-month invoice started with one period a run; the runs it took."""
    day = await today(env)
    invoice = make_invoice(day, first_of_next_month(day), 12, amount="12000.00")
    vendors = vendors_with(invoice)
    vendors.current_policies = current
    started_with = InvoicePolicy(periods_per_run=1, wake_spread=timedelta(0))
    async with running_workers(env.client, vendors):
        handle = await start(env.client, invoice, started_with)
        await reach(handle, InvoiceStage.AWAITING_PAYMENT)
        for _ in range(14):
            await env.sleep(timedelta(days=31))
        await handle.signal(
            InvoiceToRevenueWorkflow.payment_received,
            payment(invoice, await env.get_current_time()),
        )
        status = await handle.result()
    assert status.stage is InvoiceStage.CLOSED and status.periods_posted == 12
    return status.run


async def test_the_deployments_policy_reaches_the_saga_at_its_next_run(
    time_skipping_env: WorkflowEnvironment,
):
    deployment = CurrentPolicies(
        invoice=InvoicePolicy(periods_per_run=12, wake_spread=timedelta(0)),
        customer_master=MasterPolicy(),
    )
    # The first run posts one period (its own policy); the second takes the deployment's
    # twelve and posts the rest.
    assert await run_a_year(time_skipping_env, deployment) == 2


async def test_a_run_keeps_its_policy_when_no_worker_can_say_the_current_one(
    time_skipping_env: WorkflowEnvironment,
):
    # One period a run throughout, and a last run that takes the payment and closes.
    assert await run_a_year(time_skipping_env, None) == 13
