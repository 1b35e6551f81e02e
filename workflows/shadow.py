"""Shadow mode's two workflows (docs/shadow-mode.md).

``ShadowReplay`` (id ``shadow-replay-<saga workflow id>``): an operator asked to make one
finished saga's recorded writes live. Each write is made, in recorded order, by its vendor's
queue (``<queue>.shadow_materialize``), under the idempotency key it was recorded with: one
made before (by the saga going on live, or an earlier replay) is not made again, one whose
vendor is still in shadow mode stays recorded. Synthetic ids of the writes made first are
replaced by the vendor's ids in those that follow.

``ShadowComparison`` (id ``shadow-compare-<time>``): each vendor queue reads its side
(``<queue>.shadow_observe``: what revsync would have written, recorded long enough ago, and
what the vendor's listings show for the same subjects), and the pure rules of
``domain.shadow.compare`` judge it: the same, differently, or nothing, with a match rate
per object and field. The result is the workflow's; the ops API reports the latest one.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.contracts import TaskQueue
    from domain.shadow import (
        COMPARISON_WORKFLOW,
        REPLAY_WORKFLOW,
        CompareInput,
        ComparisonReport,
        Materialized,
        MaterializeWrite,
        Observation,
        ObserveRequest,
        ReplayInput,
        ReplayResult,
        ShadowActivity,
        compare,
    )
    from workflows.kernel import ATTEMPT_TIMEOUT, HEARTBEAT_TIMEOUT, retry_policy

# A vendor that stays down this long fails the replay or comparison; run it again later.
BUDGET = timedelta(minutes=30)
VENDOR_QUEUES = (TaskQueue.CRM, TaskQueue.ERP, TaskQueue.BILLING)


@workflow.defn(name=REPLAY_WORKFLOW)
class ShadowReplayWorkflow:
    @workflow.run
    async def run(self, request: ReplayInput) -> ReplayResult:
        items: list[Materialized] = []
        workflow.set_current_details(
            f"Replaying {len(request.writes)} recorded writes of {request.saga_workflow_id} "
            f"for {request.requested_by}: {request.note}"
        )
        for write in request.writes:
            done = await workflow.execute_activity(
                ShadowActivity.materialize(write.port),
                MaterializeWrite(write_id=write.write_id),
                result_type=Materialized,
                task_queue=write.port,
                start_to_close_timeout=ATTEMPT_TIMEOUT,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                schedule_to_close_timeout=BUDGET,
                retry_policy=retry_policy(),
            )
            items.append(done)
        return ReplayResult(
            saga_workflow_id=request.saga_workflow_id,
            requested_by=request.requested_by,
            note=request.note,
            items=items,
        )


@workflow.defn(name=COMPARISON_WORKFLOW)
class ShadowComparisonWorkflow:
    @workflow.run
    async def run(self, request: CompareInput) -> ComparisonReport:
        now = workflow.now()
        settled_before = now - request.after
        sides: list[Observation] = []
        for queue in VENDOR_QUEUES:
            sides.append(
                await workflow.execute_activity(
                    ShadowActivity.observe(queue),
                    ObserveRequest(settled_before=settled_before),
                    result_type=Observation,
                    task_queue=queue,
                    start_to_close_timeout=timedelta(minutes=10),
                    heartbeat_timeout=timedelta(minutes=2),
                    schedule_to_close_timeout=BUDGET,
                    retry_policy=retry_policy(),
                )
            )
        seen = {tuple(s) for side in sides for s in side.subjects_seen}
        not_comparable: dict[str, int] = {}
        for side in sides:
            not_comparable.update(side.not_comparable)
        return compare(
            [e for side in sides for e in side.expected],
            [o for side in sides for o in side.observed],
            subjects_seen={(a, b) for a, b in seen},
            compared_at=now,
            settled_before=settled_before,
            not_comparable=not_comparable,
        )
