"""A step whose outcome is never known is still compensated (issue 15, defect 5).

The vendor made the record and its answer was lost (a read timeout after the request was
sent); then the retry was refused, or the vendor stayed down until an operator chose to
compensate. Before, a step's undo was registered only once its answer came, so the record the
vendor made stayed, live, in a saga reported as unwound. Now the undo by the record's key is
registered before the step runs. Time-skipping server, fake activities."""

from __future__ import annotations

from datetime import timedelta

from temporalio.testing import WorkflowEnvironment

from domain.contracts import Activity
from domain.order import SalesOrderStatus, SubscriptionStatus
from domain.saga import ResolveAction, SagaPolicy, Step, StepState
from domain.stages import OrderStage
from tests.workflows.fakes import FakeSystems, rejected, running_workers, transient
from tests.workflows.test_parking_and_approvals import reach, resolve, start
from tests.workflows.test_quote_to_cash import new_quote, run_saga
from workflows.quote_to_cash import QuoteToCashWorkflow


async def test_an_erp_order_made_though_its_answer_was_lost_is_cancelled_when_the_saga_unwinds(
    time_skipping_env: WorkflowEnvironment,
):
    fakes = FakeSystems()
    # The order is made, the answer lost; the retry is refused (a credit hold set meanwhile).
    fakes.lose_answer(Activity.ERP_BOOK_SALES_ORDER, rejected("customer on credit hold"))
    status = await run_saga(time_skipping_env, fakes, new_quote())

    (order,) = fakes.orders.values()
    assert order.status is SalesOrderStatus.CANCELLED
    assert status.stage is OrderStage.COMPENSATED
    assert status.erp_order_id == order.order_id
    book = status.step(Step.BOOK_ERP_ORDER)
    assert book is not None and book.state is StepState.COMPENSATED
    cancel = status.step(Step.CANCEL_ERP_ORDER)
    assert cancel is not None and cancel.state is StepState.DONE
    assert cancel.detail is not None and order.order_id in cancel.detail
    assert fakes.called(Activity.BILLING_PROVISION_SUBSCRIPTION) == []


async def test_an_operators_compensate_on_a_parked_provisioning_undoes_what_billing_made(
    time_skipping_env: WorkflowEnvironment,
):
    """Billing made the subscription and its first invoice, then stayed down past the step's
    budget (parked). The operator compensates: the subscription found by its key is
    cancelled with its invoice voided, then the ERP order is cancelled."""
    fakes = FakeSystems()
    fakes.lose_answer(Activity.BILLING_PROVISION_SUBSCRIPTION, *[transient() for _ in range(200)])
    policy = SagaPolicy(step_retry_budget=timedelta(minutes=5))
    async with running_workers(time_skipping_env.client, fakes):
        handle = await start(time_skipping_env.client, new_quote(), policy)
        await reach(handle, OrderStage.PROVISIONING_BILLING)
        await time_skipping_env.sleep(timedelta(minutes=6))
        parked = await reach(handle, OrderStage.NEEDS_ATTENTION)
        assert parked.parked is not None and parked.parked.step is Step.PROVISION_BILLING
        await handle.execute_update(
            QuoteToCashWorkflow.resolve, resolve(ResolveAction.COMPENSATE, "customer withdrew")
        )
        status = await handle.result()

    (subscription,) = fakes.subscriptions.values()
    assert subscription.status is SubscriptionStatus.CANCELED
    (order,) = fakes.orders.values()
    assert order.status is SalesOrderStatus.CANCELLED
    assert status.stage is OrderStage.COMPENSATED
    assert status.subscription_id == subscription.subscription_id
    cancel = status.step(Step.CANCEL_SUBSCRIPTION)
    assert cancel is not None and cancel.detail is not None
    assert subscription.subscription_id in cancel.detail and "in_1" in cancel.detail
    # The subscription's undo ran before the ERP order's (last in, first out).
    names = [name for name, _ in fakes.calls]
    assert names.index(Activity.BILLING_CANCEL_KEYED_SUBSCRIPTION) < names.index(
        Activity.ERP_CANCEL_SALES_ORDER
    )


async def test_a_step_refused_outright_has_nothing_to_undo_and_the_saga_is_rejected(
    time_skipping_env: WorkflowEnvironment,
):
    """The undo by key finds nothing when the vendor made nothing: REJECTED, not
    COMPENSATED, and nothing cancelled."""
    fakes = FakeSystems()
    fakes.fail_with(Activity.ERP_BOOK_SALES_ORDER, rejected("customer on credit hold"))
    status = await run_saga(time_skipping_env, fakes, new_quote())

    assert status.stage is OrderStage.REJECTED
    assert fakes.orders == {}
    assert fakes.called(Activity.ERP_CANCEL_SALES_ORDER) == []
    (lookup,) = fakes.called(Activity.ERP_CANCEL_KEYED_SALES_ORDER)
    assert lookup.external_id == f"q2c-{status.quote_id}:erp-order"
