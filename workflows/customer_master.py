"""CustomerMasterWorkflow: one long-lived entity per golden customer (``customer-<golden id>``,
queue ``orchestration``), keeping CRM, billing and ERP agreeing on the customer's fields.

- **Changes** arrive as the ``apply_change`` update, delivered with update-with-start (never
  two workflows for one customer, see :mod:`revsync.customer_master`). Updates run one at a
  time, in arrival order (a lock). Each is judged by the survivorship rules of
  :mod:`domain.customer_master` (owner changes become golden, non-owner ones are ignored or
  held for review, stale and duplicate events change nothing) and the update answers the
  verdict per field.
- **Propagation**: an owner change is written to every other linked system holding a copy,
  one activity per system with the plan's idempotency key, in order per system (one lane
  each, so a slow ERP does not hold up CRM). Before a propagation runs, fields that a newer
  change replaced since are dropped. A rejected propagation, or one out of retries, parks
  for an operator (``BlockedStep=propagate_<system>``, ``resolve`` update: retry or skip)
  while newer changes and the other systems go on.
- **Links**: the CRM account is the golden id itself; the billing and ERP records are looked
  up (``metadata.revsync_account_id``, external id ``acct-<golden id>``) before a change is
  applied while missing, at most once per ``relink_after``. A system linked late receives
  the golden values it holds a copy of.
- **Duplicates**: when the record is created or an identifying field changes, a search of
  visibility (``MasterTaxIdHash``, ``MasterDomains``) compares candidates with
  :func:`domain.customer_master.match`; a suspicion holds the record (``MasterState=
  NEEDS_REVIEW``) until a steward's ``decide`` update: keep separate, or merge. The survivor
  drives a merge with an acknowledgement (``workflows/customer_merge.py``): the absorbed
  record hands itself over and ends MERGED only once the survivor has taken it.
- **Continue-as-new** when Temporal suggests it or the history passes the policy's
  ``history_limit``, after every handler finished, carrying the golden record, queued and
  parked propagations and the recent audit trail.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any, Literal

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.customer_merge import (
    MERGE_PROTOCOL_PATCH,
    REFUSED_ERROR,
    Merge,
    MergeHandlers,
)
from workflows.kernel import (
    ATTEMPT_TIMEOUT,
    HEARTBEAT_TIMEOUT,
    current_policies,
    failure_summary,
    retry_policy,
    step_failure,
)

with workflow.unsafe.imports_passed_through():
    from domain.contracts import TaskQueue
    from domain.customer_master import (
        OWNERSHIP,
        ChangeEvent,
        CustomerProfile,
        GoldenRecord,
        MasterField,
        PropagationUpdate,
        ReviewDecision,
        StewardAction,
        StewardDecision,
        System,
        allowed_decisions,
        apply,
        decision_problem,
        hold,
        master_workflow_id,
        profile_of,
        review_problem,
        settle,
        settle_review,
    )
    from domain.events import CustomerUpdated, GoldenFieldChange
    from domain.master_contracts import (
        IDENTITY_FIELDS,
        LOOKUP_STEPS,
        RECENT_KEPT,
        REPROPAGATIONS_KEPT,
        UPDATE_STEPS,
        WORKFLOW_TYPE,
        AbsorbRequest,
        ChangeResult,
        CustomerLink,
        CustomerMasterInput,
        CustomerMasterStatus,
        DuplicateCandidates,
        FindCustomerLink,
        FindDuplicates,
        FindPreviousRecord,
        HandOverRequest,
        MasterActivity,
        MasterDecision,
        ParkedPropagation,
        PreviousRecord,
        PropagationRecord,
        PropagationStatus,
        RepropagateRequest,
        RepropagateResult,
        ResolvePropagation,
        ScheduledPropagation,
        blocked_step,
        current_part,
        link,
        profile_domains,
        sync_plan,
        tax_id_hash,
    )
    from domain.saga import ResolveAction
    from domain.shadow import shadow_note
    from workflows import visibility
    from workflows.publishing import Outbox, business_event
    from workflows.visibility import md

MERGED_ERROR = "CustomerMerged"
"""``ApplicationError.type`` of a change refused because the record was merged away; its
first detail is the survivor's golden id (the gateway sends the change there)."""
PUBLISH_EVENTS_PATCH = "publish-customer-events"
CARRY_EVENTS_PATCH = "carry-undelivered-events"
# Each run after the first takes the deployment's current policy (domain/policies.py).
CURRENT_POLICY_PATCH = "policies-reach-next-run"
# A chain that starts from nothing first takes the record of an earlier chain for the same
# customer that ended without handing on (terminated at the history limit, say).
RECOVER_RECORD_PATCH = "recover-record-of-ended-chain"


class RecordLock(asyncio.Lock):
    """The customer's lock, which every handler that changes the record takes: closed to
    them until the run knows the record it starts from."""

    def __init__(self, known: Callable[[], Awaitable[None]]) -> None:
        super().__init__()
        self._known = known

    async def acquire(self) -> Literal[True]:
        await self._known()
        return await super().acquire()


"""A run continues as new without waiting for its publications; the next run sends them."""
"""Runs started before ``customer.updated`` existed publish nothing (their histories replay)."""


def _merged(record: GoldenRecord) -> ApplicationError:
    survivor = record.merged_into
    return ApplicationError(
        f"{record.golden_id} was merged into {survivor}: send its changes to "
        f"{master_workflow_id(survivor or '?')}",
        survivor,
        type=MERGED_ERROR,
        non_retryable=True,
    )


@workflow.defn(name=WORKFLOW_TYPE)
class CustomerMasterWorkflow(MergeHandlers):
    @workflow.init
    def __init__(self, request: CustomerMasterInput) -> None:
        golden_id = request.golden_id
        self._golden_id = golden_id
        # The golden id is the CRM account id: that record is linked from the start.
        self._record = request.record or GoldenRecord(
            golden_id=golden_id, xref={System.CRM: (golden_id,)}
        )
        self._queue: list[PropagationUpdate] = list(request.queue)
        self._parked: list[ParkedPropagation] = list(request.parked)
        self._recent: list[PropagationRecord] = list(request.recent)
        self._decisions: list[MasterDecision] = list(request.decisions)
        self._repropagations: list[RepropagateResult] = list(request.repropagations)
        self._links_checked_at: datetime | None = request.links_checked_at
        self._duplicates_due = request.duplicates_due
        self._events_applied = request.events_applied
        self._runs = request.runs
        self._policy = request.policy
        self._lock = RecordLock(self._record_known)
        # A first run with no record: it may have to take an ended chain's record first.
        self._fresh = request.record is None and request.runs == 0
        self._recovered = False
        self._stopping = False
        self._indexed_values: dict[str, Any] = {}
        # customer.updated publications under way; a run continuing as new hands on the rest.
        self._outbox = Outbox()
        # The merge with another golden customer under way (workflows/customer_merge.py).
        self._merge: Merge | None = None

    # -- queries --------------------------------------------------------------------------

    @workflow.query(name="status")
    def status(self) -> CustomerMasterStatus:
        record = self._record
        return CustomerMasterStatus(
            golden_id=self._golden_id,
            workflow_id=workflow.info().workflow_id,
            state=record.state,
            record=record,
            open_reviews=record.open_reviews(),
            suspicions=record.suspicions,
            allowed_decisions=[] if self._merge is not None else allowed_decisions(record),
            queued=list(self._queue),
            parked=list(self._parked),
            recent=list(self._recent),
            decisions=list(self._decisions),
            events_applied=self._events_applied,
            runs=self._runs,
            publishing=self._outbox.pending(),
            repropagations=list(self._repropagations),
            merging=self._merging(),
        )

    @workflow.query(name="profile")
    def profile(self) -> CustomerProfile:
        """What duplicate detection compares (another record's search reads it)."""
        return profile_of(self._record)

    # -- change events --------------------------------------------------------------------

    @workflow.update(name="apply_change")
    async def apply_change(self, event: ChangeEvent) -> ChangeResult:
        """Apply one change event; answers the verdict per field."""
        async with self._lock:
            if self._record.merged_into is not None:
                raise _merged(self._record)
            before = self._record
            await self._refresh_links(skip=event.source)
            outcome = apply(self._record, event)
            self._record = outcome.record
            self._enqueue(outcome.propagation)
            self._sync_new_links(before)
            if not outcome.duplicate:
                self._events_applied += 1
            if outcome.applied:
                self._publish_update(event, outcome.applied)
            if any(field in IDENTITY_FIELDS for field in outcome.applied):
                self._duplicates_due = True
            workflow.logger.info(
                "change applied",
                extra=self._log(
                    source=event.source.value,
                    event_id=event.event_id,
                    duplicate=outcome.duplicate,
                    verdicts={f.value: v.value for f, v in outcome.verdicts.items()},
                ),
            )
            self._changed()
            return ChangeResult(
                golden_id=self._golden_id,
                event_id=event.event_id,
                source=event.source,
                duplicate=outcome.duplicate,
                verdicts=outcome.verdicts,
                reviews=outcome.reviews,
                propagating_to=tuple(u.system for u in outcome.propagation),
                state=self._record.state,
            )

    @apply_change.validator
    def _validate_change(self, event: ChangeEvent) -> None:
        if self._record.merged_into is not None:
            raise _merged(self._record)
        crm_ids = {self._golden_id, *self._record.absorbed, *self._record.xref.get(System.CRM, ())}
        if event.source is System.CRM and event.record_id not in crm_ids:
            raise ValueError(
                f"CRM account {event.record_id} is not golden customer {self._golden_id}: "
                f"send its changes to {master_workflow_id(event.record_id)}"
            )

    # -- steward decisions ----------------------------------------------------------------

    @workflow.update(name="decide")
    async def decide(self, decision: StewardDecision) -> MasterDecision:
        """Settle a held duplicate suspicion: keep separate, or merge (into either; the
        survivor drives the merge, workflows/customer_merge.py)."""
        if decision.action is StewardAction.MERGE and workflow.patched(MERGE_PROTOCOL_PATCH):
            return await self._decide_merge(decision)
        async with self._lock:
            if problem := decision_problem(self._record, decision):
                raise ApplicationError(problem, type=REFUSED_ERROR, non_retryable=True)
            if decision.action is StewardAction.KEEP_SEPARATE:
                self._record = settle(self._record, decision)
            # Earlier protocol: replays of merges decided before the acknowledged one.
            elif decision.into == decision.candidate:
                absorbed = settle(self._record, decision)
                await self._signal(
                    decision.candidate,
                    "absorb",
                    AbsorbRequest(record=absorbed, steward=decision.steward, note=decision.note),
                )
                self._record = absorbed
            else:
                await self._signal(
                    decision.candidate,
                    "hand_over",
                    HandOverRequest(
                        into=self._golden_id, steward=decision.steward, note=decision.note
                    ),
                )
                self._record = settle(self._record, decision)
            action = decision.action.value
            if decision.action is StewardAction.MERGE:
                action = f"merge into {decision.into}"
            recorded = self._decide(decision.steward, action, decision.candidate, decision.note)
            self._changed()
            return recorded

    @decide.validator
    def _validate_decide(self, decision: StewardDecision) -> None:
        if problem := decision_problem(self._record, decision):
            raise ValueError(problem)
        if decision.action is StewardAction.MERGE and (problem := self._merge_busy()):
            raise ValueError(problem)

    @workflow.update(name="review")
    def review(self, decision: ReviewDecision) -> MasterDecision:
        """Settle a non-owner proposal: accept (write it to the owner) or dismiss."""
        settlement = settle_review(self._record, decision)
        self._record = settlement.record
        if settlement.update is not None:
            self._enqueue([settlement.update])
        subject = f"{decision.field.value} from {decision.system.value}"
        recorded = self._decide(decision.steward, decision.action.value, subject, decision.note)
        self._changed()
        return recorded

    @review.validator
    def _validate_review(self, decision: ReviewDecision) -> None:
        if problem := review_problem(self._record, decision):
            raise ValueError(problem)
        if self._handing_over():
            partner = self._merging()
            raise ValueError(
                f"{self._golden_id} is being merged into "
                f"{partner.partner if partner else '?'}: review there once it is done"
            )

    @workflow.update(name="resolve")
    def resolve(self, request: ResolvePropagation) -> MasterDecision:
        """An operator's decision on a parked propagation: retry it or skip it."""
        parked = self._parked_one(request.key)
        self._parked.remove(parked)
        update = parked.update
        note = f"{request.action.value} by {request.operator}: {request.note}"
        if request.action is ResolveAction.RETRY:
            self._queue.insert(0, update)  # first of its system's lane
        else:
            self._finish(update, PropagationStatus.SKIPPED, note)
        subject = f"{parked.step} {update.idempotency_key}"
        recorded = self._decide(request.operator, request.action.value, subject, request.note)
        self._changed()
        return recorded

    @resolve.validator
    def _validate_resolve(self, request: ResolvePropagation) -> None:
        if request.action is ResolveAction.COMPENSATE:
            raise ValueError("a propagation has nothing to compensate: retry or skip it")
        self._parked_one(request.key)

    @workflow.update(name="repropagate")
    async def repropagate(self, request: RepropagateRequest) -> RepropagateResult:
        """Send the golden values of ``request.fields`` (all when None) again to every linked
        system holding a copy, with idempotency keys of this request; a repeated request
        answers what it scheduled the first time and schedules nothing."""
        async with self._lock:
            if self._record.merged_into is not None:
                raise _merged(self._record)
            key = request.key(self._golden_id)
            for earlier in self._repropagations:
                if earlier.request_key == key:
                    return earlier.model_copy(update={"repeated": True})
            before = self._record
            await self._refresh_links(skip=None)
            # A system linked just now receives every golden value it holds a copy of.
            synced = self._sync_new_links(before)
            record = self._record
            fields = request.fields or tuple(MasterField)
            systems = [s for s in System if s not in {u.system for u in synced}]
            plan = [
                *(u for u in synced if set(u.fields) & set(fields)),
                *sync_plan(record, systems, fields, request=key),
            ]
            self._enqueue(plan)
            unset = tuple(f for f in fields if record.fields.get(f) is None)
            wanted = {s for f in fields if f not in unset for s in OWNERSHIP[f].copies}
            result = RepropagateResult(
                golden_id=self._golden_id,
                request_key=key,
                repeated=False,
                at=workflow.now(),
                reason=request.reason,
                requested_by=request.requested_by,
                scheduled=tuple(
                    ScheduledPropagation(
                        system=u.system,
                        record_ids=u.record_ids,
                        fields=tuple(u.fields),
                        idempotency_key=u.idempotency_key,
                    )
                    for u in plan
                ),
                unset=unset,
                unlinked=tuple(s for s in System if s in wanted and not record.xref.get(s)),
            )
            self._repropagations.append(result)
            del self._repropagations[:-REPROPAGATIONS_KEPT]
            names = ", ".join(f.value for f in fields) if request.fields else "all fields"
            self._decide(request.requested_by, "repropagate", names, request.reason)
            self._changed()
            return result

    @repropagate.validator
    def _validate_repropagate(self, request: RepropagateRequest) -> None:
        if self._record.merged_into is not None:
            raise _merged(self._record)

    def _parked_one(self, key: str | None) -> ParkedPropagation:
        if not self._parked:
            raise ValueError(f"no propagation of {self._golden_id} is parked")
        keys = ", ".join(p.update.idempotency_key for p in self._parked)
        if key is None:
            if len(self._parked) > 1:
                raise ValueError(f"several propagations are parked; name one by key: {keys}")
            return self._parked[0]
        for parked in self._parked:
            if parked.update.idempotency_key == key:
                return parked
        raise ValueError(f"no parked propagation has key {key}; parked: {keys}")

    # -- the entity's life ----------------------------------------------------------------

    @workflow.run
    async def run(self, request: CustomerMasterInput) -> CustomerMasterStatus:
        if self._fresh and workflow.patched(RECOVER_RECORD_PATCH):
            await self._recover()
        self._recovered = True
        self._outbox.resend(request.undelivered_events)
        self._changed()
        lanes = [asyncio.create_task(self._lane(system)) for system in System]
        while True:
            await workflow.wait_condition(
                lambda: self._merged_away() or self._duplicates_ready() or self._history_full()
            )
            if self._merged_away() or self._history_full():
                break
            await self._check_duplicates()
        if not self._merged_away() and workflow.patched(CURRENT_POLICY_PATCH):
            # Asked while the lanes still run; the next run takes it (domain/policies.py).
            policies = await current_policies()
            if policies is not None:
                self._policy = policies.customer_master
        self._stopping = True
        await asyncio.gather(*lanes)
        carry_events = not self._merged_away() and workflow.patched(CARRY_EVENTS_PATCH)
        if carry_events:
            # Never held open by a subscriber that is down: the next run sends them again.
            await workflow.wait_condition(workflow.all_handlers_finished)
        else:
            await self._delivered()
        if self._merged_away():
            self._changed()
            return self.status()
        undelivered = await self._outbox.hand_over() if carry_events else []
        workflow.logger.info(
            "continuing as new",
            extra=self._log(
                history=workflow.info().get_current_history_length(),
                queued=len(self._queue),
                undelivered=len(undelivered),
            ),
        )
        workflow.continue_as_new(self._carry_over(undelivered))

    async def _delivered(self) -> None:
        """Return once no handler runs and every publication is delivered (a handler that
        applies a change publishes, so wait for both until neither has anything left)."""
        while True:
            await self._outbox.drain()
            await workflow.wait_condition(workflow.all_handlers_finished)
            if not self._outbox.pending():
                return

    async def _record_known(self) -> None:
        """Return once the run knows the record it starts from (at once, but in a first run
        still asking for an ended chain's record)."""
        if self._fresh and workflow.patched(RECOVER_RECORD_PATCH):
            await workflow.wait_condition(lambda: self._recovered)

    async def _recover(self) -> None:
        """Start from the record of an earlier chain for this customer that ended without
        handing on, if there is one (``master.find_previous_record``). A chain the server
        terminated (its history grown to the limit) would otherwise be restarted by the next
        change with an empty golden record. Until its status can be read this waits, retrying,
        and changes wait with it (their senders retry): never an empty restart."""
        found: PreviousRecord = await workflow.execute_activity(
            MasterActivity.FIND_PREVIOUS_RECORD,
            FindPreviousRecord(golden_id=self._golden_id, run_id=workflow.info().run_id),
            result_type=PreviousRecord,
            task_queue=TaskQueue.ORCHESTRATION,
            start_to_close_timeout=ATTEMPT_TIMEOUT,
            retry_policy=retry_policy(),
        )
        status = found.status
        if status is None:
            return
        self._record = status.record
        self._parked = list(status.parked)
        self._enqueue(status.queued)
        self._recent = list(status.recent)
        self._repropagations = list(status.repropagations)
        self._events_applied = status.events_applied
        self._runs = status.runs + 1
        self._decisions = [
            *status.decisions,
            MasterDecision(
                at=workflow.now(),
                actor="revsync",
                action="recover",
                subject=found.run_id or "",
                note=f"run {found.run_id} ended {found.ended} without handing on; this run "
                "starts from its record",
            ),
        ][-RECENT_KEPT:]
        workflow.logger.warning(
            "started from an ended chain's record",
            extra=self._log(previous_run=found.run_id, ended=found.ended),
        )

    def _merged_away(self) -> bool:
        return self._record.merged_into is not None

    def _duplicates_ready(self) -> bool:
        return self._duplicates_due and not self._merged_away()

    def _history_full(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= self._policy.history_limit
        )

    def _carry_over(self, undelivered: list[dict[str, Any]]) -> CustomerMasterInput:
        return CustomerMasterInput(
            golden_id=self._golden_id,
            record=self._record,
            queue=self._queue,
            parked=self._parked,
            recent=self._recent,
            decisions=self._decisions,
            links_checked_at=self._links_checked_at,
            duplicates_due=self._duplicates_due,
            events_applied=self._events_applied,
            runs=self._runs + 1,
            policy=self._policy,
            repropagations=self._repropagations,
            undelivered_events=undelivered,
        )

    # -- propagation ----------------------------------------------------------------------

    def _enqueue(self, updates: Iterable[PropagationUpdate]) -> None:
        """Queue ``updates``, except those already queued (the same key is the same write)."""
        for update in updates:
            if all(q.idempotency_key != update.idempotency_key for q in self._queue):
                self._queue.append(update)

    def _next(self, system: System) -> int | None:
        for index, update in enumerate(self._queue):
            if update.system is system:
                return index
        return None

    async def _lane(self, system: System) -> None:
        """Propagate to ``system``, oldest planned first, until the run stops."""
        while True:
            await workflow.wait_condition(lambda: self._stopping or self._next(system) is not None)
            index = self._next(system)
            if self._stopping or index is None:
                return
            update = self._queue.pop(index)
            current = current_part(self._record, update)
            if current is None:
                self._finish(update, PropagationStatus.SUPERSEDED, "newer values replaced it")
                continue
            await self._propagate(current)

    async def _propagate(self, update: PropagationUpdate) -> None:
        activity, queue = UPDATE_STEPS[update.system]
        budget = self._policy.propagation_retry_budget
        names = ", ".join(f.value for f in update.fields)
        try:
            await workflow.execute_activity(
                activity,
                update,
                task_queue=queue,
                start_to_close_timeout=ATTEMPT_TIMEOUT,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                schedule_to_close_timeout=budget,
                retry_policy=retry_policy(),
                summary=f"{update.system.value}: {names}",
            )
        except ActivityError as error:
            _, reason = step_failure(error, budget)
            step = blocked_step(update.system)
            self._parked.append(
                ParkedPropagation(update=update, step=step, reason=reason, since=workflow.now())
            )
            workflow.logger.warning(
                "propagation parked",
                extra=self._log(step=step, reason=reason, key=update.idempotency_key),
            )
            self._changed()
            return
        self._finish(update, PropagationStatus.DONE)

    def _finish(
        self, update: PropagationUpdate, status: PropagationStatus, detail: str | None = None
    ) -> None:
        self._recent.append(
            PropagationRecord(
                system=update.system,
                fields=tuple(update.fields),
                idempotency_key=update.idempotency_key,
                status=status,
                at=workflow.now(),
                detail=detail,
            )
        )
        del self._recent[:-RECENT_KEPT]

    # -- links ----------------------------------------------------------------------------

    async def _refresh_links(self, skip: System | None) -> None:
        """Look up the billing and ERP records still missing (not ``skip``, the event's own
        system: applying the event links it), at most once per ``relink_after``."""
        missing = [s for s in LOOKUP_STEPS if s is not skip and not self._record.xref.get(s)]
        checked = self._links_checked_at
        now = workflow.now()
        if not missing or (checked is not None and now - checked < self._policy.relink_after):
            return
        self._links_checked_at = now
        found = await asyncio.gather(*(self._lookup(system) for system in missing))
        for system, record_id in zip(missing, found, strict=True):
            if record_id is not None:
                self._record = link(self._record, system, record_id)

    async def _lookup(self, system: System) -> str | None:
        activity, queue = LOOKUP_STEPS[system]
        budget = self._policy.lookup_budget
        try:
            result: CustomerLink = await workflow.execute_activity(
                activity,
                FindCustomerLink(golden_id=self._golden_id),
                result_type=CustomerLink,
                task_queue=queue,
                start_to_close_timeout=budget,
                schedule_to_close_timeout=budget,
                retry_policy=retry_policy(),
                summary=f"find the {system.value} record",
            )
        except ActivityError as error:
            workflow.logger.warning(
                "link lookup failed",
                extra=self._log(system=system.value, reason=failure_summary(error)),
            )
            return None
        return result.record_id

    def _sync_new_links(self, before: GoldenRecord) -> list[PropagationUpdate]:
        """Plan the golden values for every system linked since ``before``; the updates."""
        new = [s for s in System if set(self._record.xref.get(s, ())) - set(before.xref.get(s, ()))]
        if not new:
            return []
        plan = sync_plan(self._record, new)
        self._enqueue(plan)
        return plan

    # -- duplicates -----------------------------------------------------------------------

    async def _check_duplicates(self) -> None:
        self._duplicates_due = False
        profile = profile_of(self._record)
        tax_hash, domains = tax_id_hash(profile), profile_domains(profile)
        if tax_hash is None and not domains:
            return
        budget = self._policy.lookup_budget
        try:
            found = await workflow.execute_activity(
                MasterActivity.FIND_DUPLICATES,
                FindDuplicates(profile=profile, tax_id_hash=tax_hash, domains=domains),
                result_type=DuplicateCandidates,
                task_queue=TaskQueue.ORCHESTRATION,
                start_to_close_timeout=budget,
                schedule_to_close_timeout=budget,
                retry_policy=retry_policy(),
                summary="search for duplicates",
            )
        except ActivityError as error:
            workflow.logger.warning(
                "duplicate search failed", extra=self._log(reason=failure_summary(error))
            )
            return
        if self._merged_away() or self._handing_over() or not found.suspicions:
            return  # a record handing over changes no more: its survivor searches again
        self._record = hold(self._record, found.suspicions)
        workflow.logger.info(
            "suspected duplicates held",
            extra=self._log(candidates=[s.candidate for s in found.suspicions]),
        )
        self._changed()

    # -- business events ------------------------------------------------------------------

    def _publish_update(self, event: ChangeEvent, applied: list[MasterField]) -> None:
        """Publish ``customer.updated`` for the fields ``event`` made golden, in the
        background: the update answers without waiting for subscribers; a run that ends
        waits for it, one that continues as new hands it to the next (workflows/publishing.py)."""
        if not workflow.patched(PUBLISH_EVENTS_PATCH):
            return
        record = self._record
        fact = CustomerUpdated(
            golden_id=self._golden_id,
            changes=[
                GoldenFieldChange(field=field, value=record.value(field), owner=event.source)
                for field in applied
            ],
            source_system=event.source,
            source_record_id=event.record_id,
            source_event_id=event.event_id,
            source_version=event.version,
            state=record.state,
            records={system: list(ids) for system, ids in record.xref.items()},
        )
        self._outbox.send(business_event(fact))

    # -- audit, search attributes, Web UI -------------------------------------------------

    def _decide(self, actor: str, action: str, subject: str, note: str) -> MasterDecision:
        decision = MasterDecision(
            at=workflow.now(), actor=actor, action=action, subject=subject, note=note
        )
        self._decisions.append(decision)
        del self._decisions[:-RECENT_KEPT]
        workflow.logger.info(
            "decision recorded", extra=self._log(action=action, actor=actor, subject=subject)
        )
        return decision

    def _log(self, **fields: Any) -> dict[str, Any]:
        return {"customer_id": self._golden_id, **fields}

    def _changed(self) -> None:
        """Search attributes (only the ones whose value changed) and the Web UI details."""
        if workflow.info().typed_search_attributes.get(visibility.CUSTOMER_ID) is not None:
            profile = profile_of(self._record)
            wanted: dict[str, Any] = {
                visibility.MASTER_STATE.name: self._record.state.value,
                visibility.MASTER_TAX_ID_HASH.name: tax_id_hash(profile),
                visibility.MASTER_DOMAINS.name: list(profile_domains(profile)) or None,
                visibility.BLOCKED_STEP.name: self._parked[0].step if self._parked else None,
            }
            keys = {
                key.name: key
                for key in (
                    visibility.MASTER_STATE,
                    visibility.MASTER_TAX_ID_HASH,
                    visibility.MASTER_DOMAINS,
                    visibility.BLOCKED_STEP,
                )
            }
            updates: list[SearchAttributeUpdate[Any]] = []
            for name, value in wanted.items():
                if name in self._indexed_values and self._indexed_values[name] == value:
                    continue
                self._indexed_values[name] = value
                key = keys[name]
                updates.append(key.value_unset() if value is None else key.value_set(value))
            if updates:
                workflow.upsert_search_attributes(updates)
        workflow.set_current_details(self._details())

    def _details(self) -> str:
        record = self._record
        name = record.value(MasterField.NAME)
        lines = [
            f"**Customer:** {md(name) if name else '(no name yet)'} ({md(self._golden_id)})",
            f"**State:** {record.state.value}",
            "**Linked:** "
            + (
                ", ".join(
                    f"{s.value} {', '.join(md(i) for i in ids)}" for s, ids in record.xref.items()
                )
                or "-"
            ),
        ]
        if record.merged_into:
            lines.append(f"**Merged into:** {md(record.merged_into)}")
        if (merging := self._merging()) is not None:
            lines.append(
                f"**Merging:** {merging.role.value.replace('_', ' ')} "
                f"{md(merging.partner)} since {merging.since:%Y-%m-%d %H:%M} UTC"
            )
        for suspicion in record.suspicions:
            reasons = "; ".join(md(r.detail) for r in suspicion.reasons)
            lines.append(
                f"**Possible duplicate:** {md(suspicion.candidate)} "
                f"({suspicion.strength}): {reasons}"
            )
        for item in record.open_reviews():
            lines.append(
                f"**Review:** {item.field.value} from {item.system.value}: "
                f"{md(item.proposed)} (golden: {md(item.current)})"
            )
        for parked in self._parked:
            lines.append(f"**Blocked step:** {md(parked.step)}: {md(parked.reason)}")
        if self._queue:
            lines.append(f"**Propagations queued:** {len(self._queue)}")
        linked = [i for ids in record.xref.values() for i in ids]
        if note := shadow_note(master_workflow_id(self._golden_id), linked):
            lines.append(note)
        return "\n\n".join(lines)


__all__ = ["MERGED_ERROR", "REFUSED_ERROR", "CustomerMasterWorkflow"]
