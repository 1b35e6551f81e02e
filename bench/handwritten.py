"""The hand-written baseline of ``bench.saga_overhead``: quote-to-cash as a team would write it
directly on Temporal, making the same vendor calls as revsync and nothing more.

Six activities in revsync's order on revsync's task queues (``crm``, ``erp``, ``erp``,
``billing``, ``crm``, ``events``), each making exactly the HTTP requests revsync's adapters
make for Salesforce, NetSuite and Stripe on the happy path and POSTing the same signed
CloudEvent (``bench/handwritten_activities.py``). Left out on purpose, because that is what
revsync adds: error classification, circuit breakers, retry budgets and parking, approvals,
compensation, status and search attributes, the SLA timer, payload encryption, tracing and
structured logs. The workflow takes the quote as the webhook's JSON (a plain dict) and
passes plain dicts between activities, through the SDK's default data converter.

Workflow-sandbox safe: no httpx here, nothing runs at import but definitions.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.contracts import TaskQueue

HANDWRITTEN_WORKFLOW = "HandwrittenQuoteToCash"

FETCH_ACCOUNT = "handwritten.fetch_account"
CHECK_CATALOG = "handwritten.check_catalog"
BOOK_ERP_ORDER = "handwritten.book_erp_order"
PROVISION_BILLING = "handwritten.provision_billing"
UPDATE_CRM = "handwritten.update_crm"
PUBLISH_EVENT = "handwritten.publish_event"

# (activity name, task queue): quote-to-cash's happy path, step for step.
STEPS: tuple[tuple[str, str], ...] = (
    (FETCH_ACCOUNT, TaskQueue.CRM),
    (CHECK_CATALOG, TaskQueue.ERP),
    (BOOK_ERP_ORDER, TaskQueue.ERP),
    (PROVISION_BILLING, TaskQueue.BILLING),
    (UPDATE_CRM, TaskQueue.CRM),
    (PUBLISH_EVENT, TaskQueue.EVENTS),
)
QUEUE_OF = dict(STEPS)

TIMEOUT = timedelta(minutes=2)


def workflow_id(quote_id: str) -> str:
    """The id the benchmark starts a hand-written saga under: revsync's format
    (``q2c-<quote id>``), so the keys derived from it (idempotency keys, external ids) are
    the same strings as revsync's, byte for byte."""
    return f"q2c-{quote_id}"


@workflow.defn(name=HANDWRITTEN_WORKFLOW)
class HandwrittenQuoteToCashWorkflow:
    @workflow.run
    async def run(self, quote: dict[str, Any]) -> dict[str, Any]:
        key = workflow.info().workflow_id

        async def call(name: str, *args: Any) -> Any:
            return await workflow.execute_activity(
                name, args=list(args), task_queue=QUEUE_OF[name], start_to_close_timeout=TIMEOUT
            )

        account = await call(FETCH_ACCOUNT, quote)
        await call(CHECK_CATALOG, quote)
        erp = await call(BOOK_ERP_ORDER, quote, account, key)
        billing = await call(PROVISION_BILLING, quote, account, key)
        crm_order_id = await call(UPDATE_CRM, quote, key, erp, billing)
        booked = {
            "erp_customer_id": erp["customer_id"],
            "erp_order_id": erp["order_id"],
            "billing_customer_id": billing["customer_id"],
            "subscription_id": billing["subscription_id"],
            "invoice_id": billing["invoice_id"],
            "crm_order_id": crm_order_id,
        }
        await call(PUBLISH_EVENT, quote, key, booked)
        return {"stage": "BOOKED", **booked}
