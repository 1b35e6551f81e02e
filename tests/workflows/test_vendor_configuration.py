"""A vendor refusing revsync's own credentials (Stripe 401: a wrong or revoked key; 403: a
restricted key without the permission) parks the saga at once, with that reason: it is not
retried for the step's whole budget, and it is not a rejection that would cancel the ERP
order and mark the quote rejected. Time-skipping server; the real billing activity and
Stripe adapter against the Stripe emulator, fakes for CRM and ERP."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from temporalio import activity
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.billing import BillingActivities
from adapters.billing.stripe import StripeBilling
from domain.contracts import (
    Activity,
    ProvisionedSubscription,
    ProvisionSubscription,
    TaskQueue,
)
from domain.quote import Quote
from domain.saga import ResolveAction, ResolveRequest, Step, StepState
from domain.stages import OrderStage
from sandbox.app import DEFAULT_TOKENS, SandboxState, create_app
from sandbox.faults import FaultRule, FaultsRequest
from sandbox.quotes import quote_payload
from tests.workflows.fakes import FakeSystems
from tests.workflows.test_parking_and_approvals import reach, start
from workflows.quote_to_cash import QuoteToCashWorkflow


@asynccontextmanager
async def workers_with_stripe(
    client: Client, fakes: FakeSystems, state: SandboxState, api_key: str
) -> AsyncIterator[list[str]]:
    """Workers for every queue; billing runs the real activities on the Stripe adapter.
    Yields the billing activities' calls, in order (one entry per attempt)."""
    attempts: list[str] = []
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(state)), base_url="http://sandbox"
    )
    billing = BillingActivities(
        StripeBilling(http, base_url="http://sandbox/stripe", api_key=api_key)
    )

    @activity.defn(name=Activity.BILLING_PROVISION_SUBSCRIPTION)
    async def provision(request: ProvisionSubscription) -> ProvisionedSubscription:
        attempts.append(Activity.BILLING_PROVISION_SUBSCRIPTION)
        return await billing.provision_subscription(request)

    fake_queues = fakes.activities()
    fake_queues.pop(TaskQueue.BILLING)
    workers = [Worker(client, task_queue=TaskQueue.ORCHESTRATION, workflows=[QuoteToCashWorkflow])]
    workers += [Worker(client, task_queue=q, activities=acts) for q, acts in fake_queues.items()]
    workers.append(
        Worker(
            client,
            task_queue=TaskQueue.BILLING,
            activities=[provision, billing.cancel_subscription, billing.void_invoice],
        )
    )
    async with http, AsyncExitStack() as stack:
        for worker in workers:
            await stack.enter_async_context(worker)
        yield attempts


def new_quote() -> Quote:
    return Quote.model_validate(quote_payload(f"Q-{uuid.uuid4().hex[:12]}"))


async def test_a_refused_stripe_key_parks_at_once_and_unwinds_nothing(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = FakeSystems()
    state = SandboxState()
    client = time_skipping_env.client
    async with workers_with_stripe(client, fakes, state, "sk_test_revoked_key_0001") as attempts:
        handle = await start(client, new_quote())
        parked = await reach(handle, OrderStage.NEEDS_ATTENTION)

    assert parked.parked is not None
    assert parked.parked.step is Step.PROVISION_BILLING
    reason = parked.parked.reason
    assert "refused revsync's credentials or configuration" in reason
    assert "HTTP 401" in reason and "Invalid API Key" in reason
    assert "REVSYNC_STRIPE_API_KEY" in reason
    assert "gave up after retrying" not in reason
    # Once, not retried for the step's 30-minute budget.
    assert attempts == [Activity.BILLING_PROVISION_SUBSCRIPTION]
    # Not a rejection: the ERP order stands, the CRM quote is not marked rejected.
    assert fakes.called(Activity.ERP_CANCEL_SALES_ORDER) == []
    assert fakes.called(Activity.CRM_MARK_QUOTE_REJECTED) == []
    (order,) = fakes.orders.values()
    assert order.status.value != "Cancelled"
    assert parked.parked.allowed == [
        ResolveAction.RETRY,
        ResolveAction.COMPENSATE,
    ]
    assert state.stripe.snapshot()["customers"] == []


async def test_a_key_without_the_permission_parks_and_retry_books_once_it_is_granted(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = FakeSystems()
    state = SandboxState()
    # Stripe's 403: a restricted key lacking the permission for this call (once: then an
    # administrator grants it).
    state.faults.configure(
        FaultsRequest(
            faults=[
                FaultRule(
                    vendor="stripe",
                    operation="create_subscription",
                    status=403,
                    message="The provided key does not have the required permissions",
                )
            ]
        )
    )
    client = time_skipping_env.client
    async with workers_with_stripe(client, fakes, state, DEFAULT_TOKENS["stripe"]) as attempts:
        handle = await start(client, new_quote())
        parked = await reach(handle, OrderStage.NEEDS_ATTENTION)
        assert parked.parked is not None
        assert parked.parked.step is Step.PROVISION_BILLING
        assert "HTTP 403" in parked.parked.reason
        assert attempts == [Activity.BILLING_PROVISION_SUBSCRIPTION]

        await handle.execute_update(
            QuoteToCashWorkflow.resolve,
            ResolveRequest(
                action=ResolveAction.RETRY,
                operator="ops.lena",
                note="granted Subscriptions write to the restricted key",
            ),
        )
        status = await handle.result()

    assert status.stage is OrderStage.BOOKED
    assert len(attempts) == 2
    billing_steps = [r.state for r in status.steps if r.step is Step.PROVISION_BILLING]
    assert billing_steps == [StepState.FAILED, StepState.DONE]
    (subscription,) = state.stripe.snapshot()["subscriptions"]
    assert subscription["id"] == status.subscription_id
    assert fakes.called(Activity.ERP_CANCEL_SALES_ORDER) == []
