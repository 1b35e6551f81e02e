"""QuoteToCashWorkflow on the time-skipping test server, with fake activities."""

from __future__ import annotations

import uuid

from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from domain.contracts import Activity, BookSalesOrder, ProvisionSubscription
from domain.order import SalesOrderStatus, SubscriptionStatus
from domain.quote import Quote
from domain.saga import FailureType, QuoteToCashInput, QuoteToCashStatus, Step, StepState
from domain.stages import OrderStage
from sandbox.quotes import quote_payload
from tests.workflows.fakes import FakeSystems, rejected, running_workers, transient
from workflows import visibility
from workflows.quote_to_cash import QuoteToCashWorkflow


def new_quote(**changes: object) -> Quote:
    payload = quote_payload(f"Q-{uuid.uuid4().hex[:12]}")
    payload.update(changes)
    return Quote.model_validate(payload)


async def start(
    client: Client, quote: Quote
) -> WorkflowHandle[QuoteToCashWorkflow, QuoteToCashStatus]:
    return await client.start_workflow(
        QuoteToCashWorkflow.run,
        QuoteToCashInput(quote=quote),
        id=visibility.workflow_id_for_quote(quote.quote_id),
        task_queue="orchestration",
    )


async def run_saga(env: WorkflowEnvironment, fakes: FakeSystems, quote: Quote) -> QuoteToCashStatus:
    async with running_workers(env.client, fakes):
        handle = await start(env.client, quote)
        return await handle.result()


async def test_happy_path_books_order_subscription_and_crm(time_skipping_env: WorkflowEnvironment):
    fakes = FakeSystems()
    quote = new_quote()
    status = await run_saga(time_skipping_env, fakes, quote)

    assert status.stage is OrderStage.BOOKED
    assert status.reason is None
    assert status.erp_order_id == "SO1001"
    assert status.subscription_id is not None and status.subscription_id.startswith("sub_")
    assert status.crm_status == "Ordered"
    assert status.customer_name == "Acme Robotics"
    assert [r.step for r in status.steps] == [
        Step.FETCH_ACCOUNT,
        Step.CHECK_CATALOG,
        Step.BOOK_ERP_ORDER,
        Step.PROVISION_BILLING,
        Step.UPDATE_CRM,
    ]
    assert all(r.state is StepState.DONE for r in status.steps)
    assert status.amount == quote.total

    # Idempotency keys are derived from the workflow id and the step.
    wf_id = f"q2c-{quote.quote_id}"
    (book,) = fakes.called(Activity.ERP_BOOK_SALES_ORDER)
    assert isinstance(book, BookSalesOrder)
    assert book.order.external_id == f"{wf_id}:erp-order"
    assert book.order.total == quote.total
    (prov,) = fakes.called(Activity.BILLING_PROVISION_SUBSCRIPTION)
    assert isinstance(prov, ProvisionSubscription)
    assert prov.subscription.idempotency_key == f"{wf_id}:subscription"
    assert fakes.quote_status[quote.quote_id] == "Ordered"


async def test_status_query_answers_after_completion(time_skipping_env: WorkflowEnvironment):
    fakes = FakeSystems()
    quote = new_quote()
    async with running_workers(time_skipping_env.client, fakes):
        handle = await start(time_skipping_env.client, quote)
        result = await handle.result()
        status = await handle.query(QuoteToCashWorkflow.status)
    assert status == result
    assert status.workflow_id == f"q2c-{quote.quote_id}"


async def test_catalog_mismatch_rejects_before_any_side_effect(
    time_skipping_env: WorkflowEnvironment,
):
    fakes = FakeSystems()
    payload_quote = new_quote()
    lines = [
        line.model_copy(update={"unit_price": line.unit_price + 1}) for line in payload_quote.lines
    ]
    quote = payload_quote.model_copy(update={"lines": lines})
    status = await run_saga(time_skipping_env, fakes, Quote.model_validate(quote.model_dump()))

    assert status.stage is OrderStage.REJECTED
    assert status.reason is not None and "differs from ERP list price" in status.reason
    assert fakes.called(Activity.ERP_BOOK_SALES_ORDER) == []
    assert fakes.called(Activity.BILLING_PROVISION_SUBSCRIPTION) == []
    assert fakes.quote_status[quote.quote_id] == "Rejected"
    check = status.step(Step.CHECK_CATALOG)
    assert check is not None and check.state is StepState.FAILED


async def test_unknown_sku_rejects(time_skipping_env: WorkflowEnvironment):
    fakes = FakeSystems()
    base = new_quote()
    lines = [*base.lines, base.lines[0].model_copy(update={"line_id": "LX", "sku": "NOPE-1"})]
    quote = Quote.model_validate(
        {**base.model_dump(), "lines": [line.model_dump() for line in lines]}
    )
    status = await run_saga(time_skipping_env, fakes, quote)
    assert status.stage is OrderStage.REJECTED
    assert status.reason is not None and "LX (NOPE-1): unknown item" in status.reason


async def test_invalid_account_rejects_without_side_effects(time_skipping_env: WorkflowEnvironment):
    fakes = FakeSystems()
    fakes.fail_with(
        Activity.CRM_FETCH_ACCOUNT,
        rejected(
            "tax_id: a tax id is required for customers billed in FR", FailureType.ACCOUNT_INVALID
        ),
    )
    status = await run_saga(time_skipping_env, fakes, new_quote())
    assert status.stage is OrderStage.REJECTED
    assert status.reason is not None and "tax id is required" in status.reason
    assert fakes.called(Activity.ERP_CHECK_CATALOG) == []
    assert fakes.called(Activity.ERP_BOOK_SALES_ORDER) == []


async def test_billing_rejection_cancels_the_erp_order(time_skipping_env: WorkflowEnvironment):
    fakes = FakeSystems()
    fakes.fail_with(Activity.BILLING_PROVISION_SUBSCRIPTION, rejected("card_declined"))
    quote = new_quote()
    status = await run_saga(time_skipping_env, fakes, quote)

    assert status.stage is OrderStage.COMPENSATED
    assert status.reason is not None and "card_declined" in status.reason
    (order,) = fakes.orders.values()
    assert order.status is SalesOrderStatus.CANCELLED
    assert fakes.called(Activity.BILLING_CANCEL_SUBSCRIPTION) == []
    assert fakes.quote_status[quote.quote_id] == "Rejected"
    book = status.step(Step.BOOK_ERP_ORDER)
    assert book is not None and book.state is StepState.COMPENSATED


async def test_transient_failures_are_retried_until_they_recover(
    time_skipping_env: WorkflowEnvironment,
):
    fakes = FakeSystems()
    fakes.fail_with(Activity.BILLING_PROVISION_SUBSCRIPTION, transient(), transient(), transient())
    status = await run_saga(time_skipping_env, fakes, new_quote())
    assert status.stage is OrderStage.BOOKED
    assert len(fakes.called(Activity.BILLING_PROVISION_SUBSCRIPTION)) == 4
    (sub,) = fakes.subscriptions.values()
    assert sub.status is SubscriptionStatus.ACTIVE
