"""The bare baseline of ``bench.saga_overhead``: a workflow with quote-to-cash's happy-path
shape (six activities: the five steps and the business event, in the same order, on the same
task queues) and nothing else: no-op activities, no search attributes, no status, no SLA
timer, no adapters, the plain pydantic converter.

Workflow-sandbox safe: imports are passed through, nothing runs at import but definitions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
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


def _no_op(name: str) -> Callable[[str], Awaitable[str]]:
    """The bare activity registered as ``name``: it returns its argument."""

    async def run(key: str) -> str:
        return key

    return activity.defn(name=name)(run)


# The no-op activities each queue's bare worker registers, one per step of STEPS.
ACTIVITIES_BY_QUEUE: dict[str, list[Callable[[str], Awaitable[str]]]] = {}
for _name, _queue in STEPS:
    ACTIVITIES_BY_QUEUE.setdefault(_queue, []).append(_no_op(_name))
