"""A vendor's spent daily quota (Salesforce's 403 ``REQUEST_LIMIT_EXCEEDED``, TotalRequests)
through the real classifier: the step backs off for minutes, the pending activity says why,
and when the step's retry budget runs out the saga parks with the quota as its reason; it is
never rejected or compensated over it. Time-skipping server, fake activities."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import activity
from temporalio.testing import WorkflowEnvironment

from activities.classify import vendor_call
from adapters.errors import Throttle, TransientError
from domain.contracts import Activity, CrmOrderRecord, FetchAccount, RecordOrderInCrm, TaskQueue
from domain.customer import Customer
from domain.saga import ResolveAction, ResolveRequest, SagaPolicy, Step, StepState
from domain.stages import OrderStage
from tests.workflows.fakes import CUSTOMER, FakeSystems, running_workers
from tests.workflows.test_parking_and_approvals import new_quote, reach, start
from workflows.quote_to_cash import QuoteToCashWorkflow

LIMIT = "Salesforce daily API request limit"


def spent(operation: str) -> TransientError:
    return TransientError(
        "salesforce",
        operation,
        "TotalRequests Limit exceeded.",
        status=403,
        code="REQUEST_LIMIT_EXCEEDED",
        throttle=Throttle.quota(LIMIT),
    )


class QuotaSpentCrm(FakeSystems):
    """The fakes, with a Salesforce whose org quota refuses the first ``refusals`` calls of
    ``target`` (the real classifier turns the refusal into the activity's failure)."""

    def __init__(self, target: str, refusals: int) -> None:
        super().__init__()
        self.target = target
        self.refusals = refusals
        self.attempts: list[tuple[int, datetime]] = []

    def _refuse(self, operation: str) -> None:
        info = activity.info()
        self.attempts.append((info.attempt, info.started_time))
        with vendor_call("salesforce"):
            if len(self.attempts) <= self.refusals:
                raise spent(operation)

    def activities(self) -> dict[str, list[Callable[..., Any]]]:
        acts = super().activities()

        @activity.defn(name=Activity.CRM_FETCH_ACCOUNT)
        async def fetch_account(req: FetchAccount) -> Customer:
            if self.target == Activity.CRM_FETCH_ACCOUNT:
                self._refuse("get_account")
            self.calls.append((Activity.CRM_FETCH_ACCOUNT, req))
            return CUSTOMER.model_copy(update={"account_id": req.account_id})

        @activity.defn(name=Activity.CRM_RECORD_ORDER)
        async def record_order(req: RecordOrderInCrm) -> CrmOrderRecord:
            if self.target == Activity.CRM_RECORD_ORDER:
                self._refuse("record_order")
            self.calls.append((Activity.CRM_RECORD_ORDER, req))
            return CrmOrderRecord(crm_order_id="801000000000000001", quote_status="Ordered")

        replaced: dict[str, Callable[..., Any]] = {
            "fetch_account": fetch_account,
            "record_order": record_order,
        }
        acts[TaskQueue.CRM] = [replaced.get(a.__name__, a) for a in acts[TaskQueue.CRM]]
        return acts


def resolve_retry() -> ResolveRequest:
    return ResolveRequest(
        action=ResolveAction.RETRY, operator="ops.lena", note="Salesforce quota recovered"
    )


async def test_a_spent_quota_backs_off_for_minutes_says_so_and_parks_past_the_budget(
    time_skipping_env: WorkflowEnvironment,
):
    env = time_skipping_env
    fakes = QuotaSpentCrm(Activity.CRM_FETCH_ACCOUNT, refusals=3)
    policy = SagaPolicy(step_retry_budget=timedelta(minutes=30))
    async with running_workers(env.client, fakes):
        handle = await start(env.client, new_quote(), policy)
        # The first refusal: the pending activity (what the Web UI shows) says why it waits.
        description = None
        for _ in range(200):
            description = await handle.describe()
            pending = description.raw_description.pending_activities
            if pending and pending[0].HasField("last_failure"):
                break
            await env.sleep(timedelta(milliseconds=50))
        assert description is not None
        (pending_activity,) = description.raw_description.pending_activities
        assert pending_activity.last_failure.message.startswith(
            "Salesforce daily API request limit exhausted; next attempt in 5 minutes"
        )

        await env.sleep(timedelta(minutes=20))
        parked = await reach(handle, OrderStage.NEEDS_ATTENTION)
        assert parked.parked is not None and parked.parked.step is Step.FETCH_ACCOUNT
        reason = parked.parked.reason
        assert reason.startswith(f"{LIMIT} exhausted")
        assert "gave up after retrying for 0:30:00" in reason
        assert "REQUEST_LIMIT_EXCEEDED" in reason and "recovered" in reason
        assert "next attempt" not in reason  # there is none: an operator decides
        assert parked.reason == f"fetch_account: {reason}"

        # Attempts 5 then 10 minutes apart; the next (20 minutes on) would pass the budget.
        times = [when for _, when in fakes.attempts]
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        assert [attempt for attempt, _ in fakes.attempts] == [1, 2, 3]
        # (to the second: the attempt itself takes a few milliseconds)
        assert [round(gap.total_seconds()) for gap in gaps] == [5 * 60, 10 * 60]

        # The quota recovered: the operator retries and the order books.
        await handle.execute_update(QuoteToCashWorkflow.resolve, resolve_retry())
        status = await handle.result()
    assert status.stage is OrderStage.BOOKED


async def test_a_spent_quota_at_the_crm_write_back_parks_it_and_unwinds_nothing(
    time_skipping_env: WorkflowEnvironment,
):
    env = time_skipping_env
    fakes = QuotaSpentCrm(Activity.CRM_RECORD_ORDER, refusals=100)
    policy = SagaPolicy(step_retry_budget=timedelta(hours=1))
    async with running_workers(env.client, fakes):
        handle = await start(env.client, new_quote(), policy)
        await reach(handle, OrderStage.UPDATING_CRM)
        await env.sleep(timedelta(hours=2))
        parked = await reach(handle, OrderStage.NEEDS_ATTENTION)
    assert parked.parked is not None and parked.parked.step is Step.UPDATE_CRM
    assert parked.parked.reason.startswith(f"{LIMIT} exhausted")
    assert "gave up after retrying for 1:00:00" in parked.parked.reason
    # 5 + 10 + 20 minutes, then 40: the fourth retry would pass the hour.
    assert len(fakes.attempts) == 4
    # Nothing booked was unwound over a quota.
    assert fakes.called(Activity.ERP_CANCEL_SALES_ORDER) == []
    assert fakes.called(Activity.BILLING_CANCEL_SUBSCRIPTION) == []
    assert parked.step(Step.BOOK_ERP_ORDER).state is StepState.DONE  # type: ignore[union-attr]
