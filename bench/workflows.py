"""The bare baseline of ``bench.saga_overhead``: a workflow with quote-to-cash's happy-path
shape (six activities: the five steps and the business event, in the same order, on the same
task queues) and nothing else: no-op activities, no search attributes, no status, no SLA
timer, no adapters, the plain pydantic converter.

Workflow-sandbox safe: imports are passed through, nothing runs at import but definitions.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from domain.contracts import TaskQueue
    from domain.quote import Quote

BARE_WORKFLOW = "BareQuoteToCash"

# (activity name, task queue): quote-to-cash's happy path, step for step.
STEPS: tuple[tuple[str, str], ...] = (
    ("bare.fetch_account", TaskQueue.CRM),
    ("bare.check_catalog", TaskQueue.ERP),
    ("bare.book_erp_order", TaskQueue.ERP),
    ("bare.provision_billing", TaskQueue.BILLING),
    ("bare.update_crm", TaskQueue.CRM),
    ("bare.publish_event", TaskQueue.EVENTS),
)


@workflow.defn(name=BARE_WORKFLOW)
class BareQuoteToCashWorkflow:
    @workflow.run
    async def run(self, quote: Quote) -> str:
        for name, queue in STEPS:
            await workflow.execute_activity(
                name,
                quote.quote_id,
                result_type=str,
                task_queue=queue,
                start_to_close_timeout=timedelta(minutes=2),
            )
        return "BOOKED"


@activity.defn(name="bare.fetch_account")
async def fetch_account(key: str) -> str:
    return key


@activity.defn(name="bare.check_catalog")
async def check_catalog(key: str) -> str:
    return key


@activity.defn(name="bare.book_erp_order")
async def book_erp_order(key: str) -> str:
    return key


@activity.defn(name="bare.provision_billing")
async def provision_billing(key: str) -> str:
    return key


@activity.defn(name="bare.update_crm")
async def update_crm(key: str) -> str:
    return key


@activity.defn(name="bare.publish_event")
async def publish_event(key: str) -> str:
    return key


# The no-op activities each queue's bare worker registers.
ACTIVITIES_BY_QUEUE = {
    TaskQueue.CRM: [fetch_account, update_crm],
    TaskQueue.ERP: [check_catalog, book_erp_order],
    TaskQueue.BILLING: [provision_billing],
    TaskQueue.EVENTS: [publish_event],
}
