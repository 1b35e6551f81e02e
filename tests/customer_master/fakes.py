"""In-memory CRM, billing and ERP for the customer-master workflow, under the real activity
names, plus a duplicate search over the profiles it has been asked about (a stand-in for
visibility, which the time-skipping server does not index). ``hold`` keeps one golden
customer's propagations to a system waiting until released, and ``SlowSignals`` makes every
signal one workflow sends another wait an hour of workflow time, so that what two records do
before they hear from each other is deterministic (``test_merge_races.py``)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    Interceptor,
    SignalExternalWorkflowInput,
    Worker,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from domain.contracts import Activity, TaskQueue
from domain.customer_master import (
    ChangeEvent,
    CustomerProfile,
    PropagationUpdate,
    SourceVersion,
    System,
    master_workflow_id,
    match,
)
from domain.event_contracts import PublishEvent, PublishResult
from domain.master_contracts import (
    ChangeResult,
    CustomerLink,
    CustomerMasterStatus,
    DuplicateCandidates,
    FindCustomerLink,
    FindDuplicates,
    FindPreviousRecord,
    MasterActivity,
    MasterPolicy,
    PreviousRecord,
)
from domain.policies import CURRENT_POLICIES, CurrentPolicies
from revsync.customer_master import deliver_change
from workflows.customer_master import CustomerMasterWorkflow

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SIGNAL_DELAY = timedelta(hours=1)


class _SlowSignalsOutbound(WorkflowOutboundInterceptor):
    async def signal_external_workflow(self, input: SignalExternalWorkflowInput) -> None:
        await workflow.sleep(SIGNAL_DELAY)
        await super().signal_external_workflow(input)


class _SlowSignalsInbound(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_SlowSignalsOutbound(outbound))


class SlowSignals(Interceptor):
    """Every signal a workflow sends another waits :data:`SIGNAL_DELAY` of workflow time
    first: on the time-skipping server, messages between two records cross only when the test
    moves time on, so each record's own steps before that are deterministic."""

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        return _SlowSignalsInbound


async def deliver(
    client: Client, golden: str, event: ChangeEvent, policy: MasterPolicy | None = None
) -> ChangeResult:
    """Deliver as the gateway does, on a namespace without revsync's search attributes."""
    return await deliver_change(client, golden, event, policy, indexed=False)


def golden_id() -> str:
    """A fresh Salesforce-shaped account id (each test its own customers)."""
    return "001" + uuid.uuid4().hex[:14]


def change(
    source: System,
    record_id: str,
    minutes: float,
    *,
    event_id: str | None = None,
    **changes: object,
) -> ChangeEvent:
    """A change event ``minutes`` after :data:`T0`."""
    return ChangeEvent.model_validate(
        {
            "source": source,
            "event_id": event_id or f"evt-{uuid.uuid4().hex[:12]}",
            "record_id": record_id,
            "version": SourceVersion(modified_at=T0 + timedelta(minutes=minutes)),
            "changes": changes,
        }
    )


class FakeMasterSystems:
    """Records every update per system; ``fail_with`` queues errors per activity name."""

    def __init__(self) -> None:
        self.updates: list[PropagationUpdate] = []
        # golden id -> the run of it the test terminated (find_previous_record answers it)
        self.ended_runs: dict[str, str] = {}
        # What policy.current answers (None: it fails, and a run keeps the policy it has).
        self.current_policies: CurrentPolicies | None = None
        self.failures: dict[str, list[Exception]] = {}
        # golden id -> record id in billing / ERP, as the lookups find them
        self.billing_ids: dict[str, str] = {}
        self.erp_ids: dict[str, str] = {}
        self.lookups: list[tuple[System, str]] = []
        self.profiles: dict[str, CustomerProfile] = {}
        # every events.publish call, as the CloudEvent document it carried
        self.published: list[dict[str, Any]] = []
        # (workflow run id, delivered) of every events.publish attempt
        self.publish_attempts: list[tuple[str, bool]] = []
        # (activity name, golden id) -> released when set; the calls waiting on it
        self.holds: dict[tuple[str, str], asyncio.Event] = {}
        self.held: list[PropagationUpdate] = []

    def hold(self, activity_name: str, golden: str) -> asyncio.Event:
        """Keep ``golden``'s updates through ``activity_name`` waiting until the returned
        event is set."""
        return self.holds.setdefault((activity_name, golden), asyncio.Event())

    def fail_with(self, activity_name: str, *errors: Exception) -> None:
        self.failures.setdefault(activity_name, []).extend(errors)

    def sent_to(self, system: System) -> list[PropagationUpdate]:
        return [u for u in self.updates if u.system is system]

    def link(self, golden: str, *, billing: str | None = None, erp: str | None = None) -> None:
        if billing:
            self.billing_ids[golden] = billing
        if erp:
            self.erp_ids[golden] = erp

    def _failure(self, name: str) -> None:
        queued = self.failures.get(name)
        if queued:
            raise queued.pop(0)

    def activities(self) -> dict[str, list[Callable[..., Any]]]:
        def updater(name: str) -> Callable[..., Any]:
            @activity.defn(name=name)
            async def update(request: PropagationUpdate) -> None:
                golden = request.idempotency_key.removeprefix("cm-").split(":", 1)[0]
                release = self.holds.get((name, golden))
                if release is not None and not release.is_set():
                    self.held.append(request)
                    await release.wait()
                self._failure(name)
                self.updates.append(request)

            return update

        @activity.defn(name=MasterActivity.BILLING_FIND_CUSTOMER)
        async def find_billing(request: FindCustomerLink) -> CustomerLink:
            self.lookups.append((System.BILLING, request.golden_id))
            self._failure(MasterActivity.BILLING_FIND_CUSTOMER)
            return CustomerLink(record_id=self.billing_ids.get(request.golden_id))

        @activity.defn(name=MasterActivity.ERP_FIND_CUSTOMER)
        async def find_erp(request: FindCustomerLink) -> CustomerLink:
            self.lookups.append((System.ERP, request.golden_id))
            self._failure(MasterActivity.ERP_FIND_CUSTOMER)
            return CustomerLink(record_id=self.erp_ids.get(request.golden_id))

        @activity.defn(name=MasterActivity.FIND_DUPLICATES)
        async def find_duplicates(request: FindDuplicates) -> DuplicateCandidates:
            profile = request.profile
            self.profiles[profile.golden_id] = profile
            found = [
                suspicion
                for other in self.profiles.values()
                if (suspicion := match(profile, other)) is not None
            ]
            return DuplicateCandidates(
                suspicions=tuple(sorted(found, key=lambda s: s.candidate)),
                candidates_seen=len(self.profiles) - 1,
            )

        @activity.defn(name=Activity.EVENTS_PUBLISH)
        async def publish_event(request: PublishEvent) -> PublishResult:
            run = activity.info().workflow_run_id or ""
            try:
                self._failure(Activity.EVENTS_PUBLISH)
            except Exception:
                self.publish_attempts.append((run, False))
                raise
            self.publish_attempts.append((run, True))
            self.published.append(dict(request.event))
            return PublishResult(
                event_id=str(request.event["id"]),
                event_type=str(request.event["type"]),
                deliveries=[],
            )

        @activity.defn(name=MasterActivity.FIND_PREVIOUS_RECORD)
        async def find_previous_record(request: FindPreviousRecord) -> PreviousRecord:
            # The time-skipping server lists no workflows: the test names the ended run
            # (the real activity's listing runs on a dev server in test_e2e.py).
            run_id = self.ended_runs.get(request.golden_id)
            if run_id is None:
                return PreviousRecord()
            handle = activity.client().get_workflow_handle(
                master_workflow_id(request.golden_id), run_id=run_id
            )
            status = await handle.query("status", result_type=CustomerMasterStatus)
            return PreviousRecord(run_id=run_id, ended="TERMINATED", status=status)

        @activity.defn(name=CURRENT_POLICIES)
        async def current_policies() -> CurrentPolicies:
            if self.current_policies is None:
                raise ApplicationError("no deployment policy in this test", non_retryable=True)
            return self.current_policies

        return {
            TaskQueue.EVENTS: [publish_event],
            TaskQueue.ORCHESTRATION: [find_duplicates, find_previous_record, current_policies],
            TaskQueue.CRM: [updater(MasterActivity.CRM_UPDATE_ACCOUNT_FIELDS)],
            TaskQueue.BILLING: [
                updater(MasterActivity.BILLING_UPDATE_CUSTOMER_FIELDS),
                find_billing,
            ],
            TaskQueue.ERP: [updater(MasterActivity.ERP_UPDATE_CUSTOMER_FIELDS), find_erp],
        }


@asynccontextmanager
async def running_workers(
    client: Client, fakes: FakeMasterSystems, *, slow_signals: bool = False
) -> AsyncIterator[None]:
    activities = fakes.activities()
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(
            Worker(
                client,
                task_queue=TaskQueue.ORCHESTRATION,
                workflows=[CustomerMasterWorkflow],
                activities=activities[TaskQueue.ORCHESTRATION],
                interceptors=[SlowSignals()] if slow_signals else [],
            )
        )
        for queue in (TaskQueue.CRM, TaskQueue.BILLING, TaskQueue.ERP, TaskQueue.EVENTS):
            await stack.enter_async_context(
                Worker(client, task_queue=queue, activities=activities[queue])
            )
        yield
