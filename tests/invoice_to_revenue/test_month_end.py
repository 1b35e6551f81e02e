"""A month-end close: every open invoice saga posts its revenue journal into an ERP that takes
five calls at a time. Waiting in that queue must not park anyone (workers/attempts.py), and
the sagas wake at their own moments of the policy's spread, not all at midnight.

Time-skipping server, the real workflow and activities over in-memory vendors whose ERP
calls take a little real time, the workers as production builds them (AttemptInterceptor)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, date, timedelta
from typing import Any

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    Worker,
)

from domain.contracts import TaskQueue
from domain.invoice_contracts import (
    InvoicePolicy,
    InvoiceStage,
    InvoiceToRevenueInput,
    InvoiceToRevenueStatus,
    invoice_workflow_id,
    start_of,
    wake_offset,
)
from domain.revenue import closes_on, period_of
from tests.invoice_to_revenue.fakes import FakeVendors, first_of_next_month, queues
from tests.invoice_to_revenue.test_lifecycle import make_invoice
from workers.attempts import AttemptInterceptor
from workflows.invoice_to_revenue import InvoiceToRevenueWorkflow

# 2,000 in the words; MONTH_END_SAGAS makes it smaller for a quick run.
SAGAS = int(os.environ.get("MONTH_END_SAGAS", "2000"))
ERP_SLOTS = 5
ERP_CALL_SECONDS = 0.02
# Far less than the time the last journal waits in the ERP queue (SAGAS * call / slots).
BUDGET = timedelta(seconds=2)


class SlowCalls(Interceptor):
    """Each activity call takes ERP_CALL_SECONDS of real time, as a vendor call does."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Slow(next)


class _Slow(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        await asyncio.sleep(ERP_CALL_SECONDS)
        return await self.next.execute_activity(input)


@asynccontextmanager
async def month_end_workers(client: Client, vendors: FakeVendors) -> AsyncIterator[None]:
    interceptors = [AttemptInterceptor()]
    workers = [
        Worker(
            client,
            task_queue=TaskQueue.ORCHESTRATION,
            workflows=[InvoiceToRevenueWorkflow],
            interceptors=interceptors,
            max_concurrent_workflow_tasks=50,
            max_cached_workflows=SAGAS + 100,
        )
    ]
    for queue, acts in queues(vendors).items():
        erp = queue == TaskQueue.ERP
        workers.append(
            Worker(
                client,
                task_queue=queue,
                activities=acts,
                max_concurrent_activities=ERP_SLOTS if erp else 100,
                interceptors=[*interceptors, SlowCalls()] if erp else interceptors,
            )
        )
    async with AsyncExitStack() as stack:
        for worker in workers:
            await stack.enter_async_context(worker)
        yield


async def statuses(client: Client, ids: list[str]) -> list[InvoiceToRevenueStatus]:
    async def one(workflow_id: str) -> InvoiceToRevenueStatus:
        handle = client.get_workflow_handle_for(InvoiceToRevenueWorkflow.run, workflow_id)
        return await handle.query(InvoiceToRevenueWorkflow.status)

    found: list[InvoiceToRevenueStatus] = []
    for start in range(0, len(ids), 50):
        found += await asyncio.gather(*(one(i) for i in ids[start : start + 50]))
    return found


async def until_called(vendors: FakeVendors, method: str, times: int) -> None:
    """Until the fake vendors saw ``method`` ``times`` times (cheap to poll, unlike 2,000
    status queries); a saga that parked never gets there."""
    deadline = asyncio.get_running_loop().time() + 600
    while len(vendors.called(method)) < times:
        assert asyncio.get_running_loop().time() < deadline, (
            f"{method}: {len(vendors.called(method))} of {times} calls"
        )
        await asyncio.sleep(0.5)


async def test_two_thousand_invoices_through_a_five_slot_erp_at_one_close_none_parks(
    own_time_skipping_env: WorkflowEnvironment,
):
    env = own_time_skipping_env
    day = (await env.get_current_time()).astimezone(UTC).date()
    service_start = first_of_next_month(day)
    vendors = FakeVendors()
    invoices = []
    closes = closes_on(period_of(service_start))
    for _ in range(SAGAS):
        invoice = make_invoice(day, service_start, 3)
        # Due after the close: only the close wakes them (not an overdue day before it).
        invoice = invoice.model_copy(
            update={
                "invoice_id": f"in_{uuid.uuid4().hex[:14]}",
                "due_date": closes + timedelta(days=30),
            }
        )
        vendors.invoices[invoice.invoice_id] = invoice
        invoices.append(invoice)
    vendors.erp_customers[f"acct-{invoices[0].account_id}"] = "C77"
    # Every saga wakes at the same moment: the backlog at its worst.
    policy = InvoicePolicy(step_retry_budget=BUDGET, wake_spread=timedelta(0))
    ids = [invoice_workflow_id(i.invoice_id) for i in invoices]
    async with month_end_workers(env.client, vendors):
        for invoice in invoices:
            await env.client.start_workflow(
                InvoiceToRevenueWorkflow.run,
                InvoiceToRevenueInput(invoice_id=invoice.invoice_id, policy=policy),
                id=invoice_workflow_id(invoice.invoice_id),
                task_queue=TaskQueue.ORCHESTRATION,
            )
        # The month's invoices all opened at once: 2,000 receivables through five slots.
        await until_called(vendors, "set_receivable_status", SAGAS)
        # Skip to the close: every saga wakes at that instant (no spread), and the test
        # server's clock stays there while the journals drain through the five slots.
        close = start_of(closes, "UTC")
        await env.sleep(close - await env.get_current_time())
        # One period close: every saga's first journal through the same five slots.
        await until_called(vendors, "post_revenue_journal", SAGAS)
        found = await statuses(env.client, ids)

    parked = [s for s in found if s.stage is InvoiceStage.NEEDS_ATTENTION]
    assert parked == []
    assert all(s.periods_posted == 1 for s in found)
    assert len(vendors.called("post_revenue_journal")) == SAGAS
    assert len(vendors.called("post_receivable")) == SAGAS


def test_wake_ups_are_fixed_per_saga_and_spread_over_the_window():
    spread = timedelta(hours=4)
    offsets = [wake_offset(f"i2r-in_{n}", spread) for n in range(4000)]
    assert offsets == [wake_offset(f"i2r-in_{n}", spread) for n in range(4000)]
    assert all(timedelta(0) <= o < spread for o in offsets)
    hours = [sum(1 for o in offsets if o // timedelta(hours=1) == h) for h in range(4)]
    assert all(800 <= n <= 1200 for n in hours), hours
    assert wake_offset("i2r-in_1", timedelta(0)) == timedelta(0)


async def test_a_saga_wakes_for_its_close_at_its_own_moment_of_the_spread(
    time_skipping_env: WorkflowEnvironment,
):
    env = time_skipping_env
    day: date = (await env.get_current_time()).astimezone(UTC).date()
    service_start = first_of_next_month(day)
    vendors = FakeVendors()
    invoice = make_invoice(day, service_start, 3)
    vendors.invoices[invoice.invoice_id] = invoice
    vendors.erp_customers[f"acct-{invoice.account_id}"] = "C77"
    policy = InvoicePolicy(wake_spread=timedelta(hours=4))
    workflow_id = invoice_workflow_id(invoice.invoice_id)
    async with month_end_workers(env.client, vendors):
        handle = await env.client.start_workflow(
            InvoiceToRevenueWorkflow.run,
            InvoiceToRevenueInput(invoice_id=invoice.invoice_id, policy=policy),
            id=workflow_id,
            task_queue=TaskQueue.ORCHESTRATION,
        )
        close = start_of(closes_on(period_of(service_start)), "UTC")
        await until_called(vendors, "set_receivable_status", 1)
        await env.sleep(close - await env.get_current_time() + timedelta(hours=5))
        await until_called(vendors, "post_revenue_journal", 1)
        await handle.terminate("test over")

    (journal,) = vendors.called("post_revenue_journal")
    offset = wake_offset(workflow_id, policy.wake_spread)
    assert close + offset <= journal.at < close + offset + timedelta(minutes=1)
