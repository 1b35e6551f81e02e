"""Merging two golden customers: the survivor drives, with an acknowledgement.

A steward's ``merge`` decision (on either record of a held pair) ends in one of two ways:
the absorbed record's data is in the survivor and the absorbed record has ended MERGED, or
both records are as they were, with the reason in both audit trails. The messages are
signals between the two ``CustomerMaster`` workflows (a workflow can signal another, not send
it an update, except through an activity):

1. the **survivor** (S) asks the absorbed record (X) to hand over: ``hand_over`` with a
   merge id. A decision taken on X asks S to drive first: ``merge_request``;
2. X, under its lock (the changes it is applying finish first), checks that it can be merged
   into S, marks itself *handing over* (other merges are refused, changes wait for the
   outcome, steward reviews are refused) and answers ``handed_over`` with its record, or
   ``hand_over_refused`` with the reason;
3. S merges that record under its own lock, into its record as it is then (never one
   computed before an await), and answers ``merge_confirmed``; or ``merge_cancelled`` when it
   cannot take it any more (it was merged away meanwhile, it gave up waiting);
4. X ends MERGED only on ``merge_confirmed``; on ``merge_cancelled`` it takes changes again.
   If no answer comes, X asks S (``merge_check``) every :data:`HANDOVER_CHECK`; S answers
   from what it did, and a survivor that is not running any more cancels it.

A record takes part in one merge at a time. **Both sides at once**: when two stewards merge a
pair from both sides (each record asking the other to absorb it, or each asking to absorb
the other), only one direction can win: the lower golden id survives, the other decision is
refused with that reason. Each side applies the rule on its own, so they agree whatever
order the messages cross in.

**Earlier protocol.** Runs that merged before this existed (patch
:data:`MERGE_PROTOCOL_PATCH`) replay as they ran: the absorbed record sent its whole record
with ``absorb`` and ended. An ``absorb`` still arriving is merged (under the survivor's
lock), and a ``hand_over`` without merge id, from a survivor that ran the earlier protocol,
is answered with a ``merge_request``: that survivor now drives an acknowledged merge.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from domain.customer_master import (
        GoldenRecord,
        MasterField,
        PropagationUpdate,
        StewardDecision,
        System,
        decision_problem,
        mark_merged,
        mark_merged_problem,
        master_workflow_id,
        merge,
        merge_problem,
    )
    from domain.master_contracts import (
        AbsorbRequest,
        HandedOver,
        HandOverRequest,
        MasterDecision,
        MergeAnswer,
        MergeInProgress,
        MergeRequest,
        MergeRole,
        sync_plan,
    )

REFUSED_ERROR = "DecisionRefused"
MERGE_PROTOCOL_PATCH = "merge-with-acknowledgement"
"""Merges decided before the acknowledged protocol replay the way they ran."""
HANDOVER_TIMEOUT = timedelta(days=1)
"""How long a survivor waits for the absorbed record's answer before it cancels the merge."""
HANDOVER_CHECK = timedelta(hours=6)
"""How long a record handing over waits before it asks the survivor how the merge went."""


@dataclass
class Merge:
    """A merge this record takes part in (workflow state, never carried across
    continue-as-new: the run continues only once every handler, so every merge, is done)."""

    merge_id: str
    role: MergeRole
    partner: str
    steward: str
    note: str
    since: datetime
    handed: GoldenRecord | None = None  # absorbing: the partner's record, handed over
    confirmed: bool = False  # handing over: the survivor took it
    outcome: str | None = None  # why the merge is off (refused, cancelled, lost a tie)
    request: Merge | None = None  # handing over: this record's own request it fulfils


def refused(reason: str) -> ApplicationError:
    return ApplicationError(reason, type=REFUSED_ERROR, non_retryable=True)


def tie_break(a: str, b: str) -> str:
    return (
        f"{a} and {b} were asked to merge into each other at once: the lower golden id, "
        f"{min(a, b)}, survives"
    )


class MergeHandlers:
    """The merge protocol's handlers, mixed into ``CustomerMasterWorkflow``."""

    _golden_id: str
    _record: GoldenRecord
    _lock: asyncio.Lock
    _merge: Merge | None
    _duplicates_due: bool

    # Provided by the workflow.
    def _decide(self, actor: str, action: str, subject: str, note: str) -> MasterDecision:
        raise NotImplementedError

    def _changed(self) -> None:
        raise NotImplementedError

    def _log(self, **fields: Any) -> dict[str, Any]:
        raise NotImplementedError

    def _enqueue(self, updates: list[PropagationUpdate]) -> None:
        raise NotImplementedError

    def _sync_new_links(self, before: GoldenRecord) -> list[PropagationUpdate]:
        raise NotImplementedError

    # -- state ----------------------------------------------------------------------------

    def _merging(self) -> MergeInProgress | None:
        m = self._merge
        if m is None:
            return None
        return MergeInProgress(merge_id=m.merge_id, role=m.role, partner=m.partner, since=m.since)

    def _handing_over(self) -> bool:
        return self._merge is not None and self._merge.role is MergeRole.HANDING_OVER

    def _merge_busy(self) -> str | None:
        """Why this record cannot start another merge now, or None."""
        m = self._merge
        if m is None:
            return None
        return (
            f"{self._golden_id} is already merging with {m.partner} ({m.role.value}): "
            "decide again once that is settled"
        )

    def _off(self, merge: Merge, reason: str, action: str = "merge refused") -> None:
        """``merge`` is off: forget it (if still current) and say why in the audit trail."""
        if self._merge is merge:
            self._merge = None
        workflow.logger.warning(
            "merge off", extra=self._log(partner=merge.partner, merge_id=merge.merge_id, why=reason)
        )
        self._decide("revsync", action, merge.partner, reason)
        self._changed()

    # -- a steward's merge decision (the decide update) -----------------------------------

    async def _decide_merge(self, decision: StewardDecision) -> MasterDecision:
        """Merge the pair as the steward decided: drive it when this record survives, ask the
        candidate to drive it otherwise. Returns once the merge is done; raises a refusal
        (both records as they were) with the reason."""
        async with self._lock:
            problem = decision_problem(self._record, decision) or self._merge_busy()
            if problem:
                raise refused(problem)
            survivor = decision.into == self._golden_id
            merge_ = Merge(
                merge_id=f"merge-{workflow.uuid4()}",
                role=MergeRole.ABSORBING if survivor else MergeRole.REQUESTED,
                partner=decision.candidate,
                steward=decision.steward,
                note=decision.note,
                since=workflow.now(),
            )
            self._merge = merge_
            self._changed()
        if survivor:
            await self._drive(merge_)
        else:
            await self._request(merge_)
        action = f"merge into {decision.into}"
        recorded = self._decide(decision.steward, action, decision.candidate, decision.note)
        self._changed()
        return recorded

    async def _request(self, merge_: Merge) -> None:
        """Ask the partner to absorb this record, and wait until it has (this record is
        MERGED) or the merge is off (raises the refusal)."""
        try:
            await self._signal(
                merge_.partner,
                "merge_request",
                MergeRequest(
                    merge_id=merge_.merge_id,
                    candidate=self._golden_id,
                    steward=merge_.steward,
                    note=merge_.note,
                ),
            )
        except ApplicationError as error:
            self._off(merge_, error.message)
            raise refused(error.message) from error
        await workflow.wait_condition(
            lambda: self._record.merged_into is not None or merge_.outcome is not None
        )
        if self._record.merged_into is None:
            reason = merge_.outcome or "the merge was cancelled"
            self._off(merge_, reason)
            raise refused(reason)

    async def _drive(self, merge_: Merge) -> None:
        """Absorb the partner: ask it to hand over, merge what it hands over, confirm.
        Raises the refusal when the merge is off (the partner as it was)."""
        partner = merge_.partner
        try:
            await self._signal(
                partner,
                "hand_over",
                HandOverRequest(
                    into=self._golden_id,
                    steward=merge_.steward,
                    note=merge_.note,
                    merge_id=merge_.merge_id,
                ),
            )
        except ApplicationError as error:
            self._off(merge_, error.message)
            raise refused(error.message) from error
        try:
            await workflow.wait_condition(
                lambda: merge_.handed is not None or merge_.outcome is not None,
                timeout=HANDOVER_TIMEOUT,
                timeout_summary=f"hand-over of {partner}",
            )
        except TimeoutError:
            merge_.outcome = f"{partner} did not answer within {HANDOVER_TIMEOUT}"
            await self._tell(partner, "merge_cancelled", merge_.merge_id, merge_.outcome)
        handed = merge_.handed
        if merge_.outcome is not None or handed is None:
            reason = merge_.outcome or "nothing was handed over"
            self._off(merge_, reason)
            raise refused(reason)
        async with self._lock:
            # This record as it is now: changes applied while waiting stay.
            problem = merge_problem(self._record, handed)
            if problem is not None:
                await self._tell(partner, "merge_cancelled", merge_.merge_id, problem)
                self._off(merge_, problem)
                raise refused(problem)
            self._absorb(handed, merge_.steward, merge_.note)
            if self._merge is merge_:
                self._merge = None
            self._changed()
        await self._tell(partner, "merge_confirmed", merge_.merge_id)

    def _absorb(self, absorbed: GoldenRecord, steward: str, note: str) -> None:
        """Merge ``absorbed`` into this record as it stands (the caller holds the lock or
        runs without awaiting) and propagate the fields that changed."""
        before = self._record
        self._record = merge(before, absorbed)
        changed = [f for f in MasterField if before.fields.get(f) != self._record.fields.get(f)]
        self._enqueue(sync_plan(self._record, list(System), changed))
        self._sync_new_links(before)
        self._duplicates_due = True
        self._decide(steward, "absorbed", absorbed.golden_id, note)

    # -- the survivor's side ----------------------------------------------------------------

    @workflow.signal(name="merge_request")
    async def merge_request(self, request: MergeRequest) -> None:
        """A steward merged ``request.candidate`` into this record: drive the merge."""
        candidate, reason = request.candidate, None
        m = self._merge
        if self._record.merged_into is not None:
            into = self._record.merged_into
            reason = f"{self._golden_id} was merged into {into}: merge into {into}"
        elif candidate == self._golden_id:
            reason = f"{candidate} cannot be merged into itself"
        elif m is not None and m.partner == candidate and m.role is MergeRole.ABSORBING:
            return  # absorbing it already: that merge answers the candidate
        elif m is not None and m.partner == candidate and m.role is MergeRole.REQUESTED:
            # Each asked to be merged into the other: the lower golden id survives.
            if self._golden_id < candidate:
                m.outcome = tie_break(self._golden_id, candidate)
                self._merge = None
            else:
                reason = tie_break(self._golden_id, candidate)
        elif m is not None:
            reason = self._merge_busy()
        if reason is not None:
            self._decide("revsync", "merge refused", candidate, reason)
            self._changed()
            await self._tell(candidate, "merge_cancelled", request.merge_id, reason)
            return
        merge_ = Merge(
            merge_id=request.merge_id,
            role=MergeRole.ABSORBING,
            partner=candidate,
            steward=request.steward,
            note=request.note,
            since=workflow.now(),
        )
        self._merge = merge_
        self._changed()
        try:
            await self._drive(merge_)
        except ApplicationError:
            return  # refused: both audit trails say why

    @workflow.signal(name="handed_over")
    async def handed_over(self, answer: HandedOver) -> None:
        m = self._merge
        if (
            m is not None
            and m.merge_id == answer.merge_id
            and m.role is MergeRole.ABSORBING
            and m.handed is None
            and m.outcome is None
        ):
            m.handed = answer.record
            return
        # A merge this record gave up (or never had): the other record takes changes again.
        workflow.logger.warning("stale hand-over", extra=self._log(merge_id=answer.merge_id))
        await self._tell(
            answer.record.golden_id,
            "merge_cancelled",
            answer.merge_id,
            f"{self._golden_id} is not absorbing {answer.record.golden_id} any more",
        )

    @workflow.signal(name="hand_over_refused")
    def hand_over_refused(self, answer: MergeAnswer) -> None:
        m = self._merge
        if m is not None and m.merge_id == answer.merge_id and m.role is MergeRole.ABSORBING:
            m.outcome = answer.reason or f"{answer.sender} refused to hand over"

    @workflow.signal(name="merge_check")
    async def merge_check(self, answer: MergeAnswer) -> None:
        """The absorbed record asks how its hand-over went."""
        m = self._merge
        if m is not None and m.merge_id == answer.merge_id:
            return  # still at it: the answer comes
        if answer.sender in self._record.absorbed:
            await self._tell(answer.sender, "merge_confirmed", answer.merge_id)
        else:
            await self._tell(
                answer.sender,
                "merge_cancelled",
                answer.merge_id,
                f"{self._golden_id} has no merge {answer.merge_id} under way",
            )

    @workflow.signal(name="absorb")
    def absorb(self, request: AbsorbRequest) -> None:
        """Earlier protocol: another golden record, handed over whole, merged into this one
        (it has ended already). Refused, and said why, when it cannot be merged: its record is
        in its workflow's result."""
        absorbed = request.record
        problem = merge_problem(self._record, absorbed)
        if problem is None and self._handing_over():
            problem = f"{self._golden_id} is being merged into {self._merge_partner()}"
        if problem:
            workflow.logger.warning("absorb refused", extra=self._log(reason=problem))
            self._decide("revsync", "absorb refused", absorbed.golden_id, problem)
            return
        self._absorb(absorbed, request.steward, request.note)
        self._changed()

    def _merge_partner(self) -> str:
        return self._merge.partner if self._merge is not None else "-"

    # -- the absorbed record's side -------------------------------------------------------

    @workflow.signal(name="hand_over")
    async def hand_over(self, request: HandOverRequest) -> None:
        """A survivor asks this record to hand itself over (see the module doc)."""
        if request.merge_id is None:
            if not workflow.patched(MERGE_PROTOCOL_PATCH):
                await self._legacy_hand_over(request)
            else:
                await self._answer_legacy_hand_over(request)
            return
        survivor, merge_id = request.into, request.merge_id
        async with self._lock:
            reason, request_ = None, None
            m = self._merge
            if self._record.merged_into is not None:
                reason = f"{self._golden_id} was merged into {self._record.merged_into}"
            elif m is not None and m.partner == survivor and m.role is MergeRole.REQUESTED:
                request_ = m  # what this record asked for
            elif m is not None and m.partner == survivor and m.role is MergeRole.ABSORBING:
                # Each asked to absorb the other: the lower golden id survives.
                if self._golden_id < survivor:
                    reason = tie_break(self._golden_id, survivor)
                else:
                    m.outcome = tie_break(self._golden_id, survivor)
                    self._merge = None
            elif m is not None:
                reason = self._merge_busy()
            if reason is None:
                reason = mark_merged_problem(self._record, survivor)
            if reason is not None:
                self._decide("revsync", "hand over refused", survivor, reason)
                self._changed()
                await self._tell(survivor, "hand_over_refused", merge_id, reason)
                return
            handing = Merge(
                merge_id=merge_id,
                role=MergeRole.HANDING_OVER,
                partner=survivor,
                steward=request.steward,
                note=request.note,
                since=workflow.now(),
                request=request_,
            )
            self._merge = handing
            self._changed()
            try:
                await self._signal(
                    survivor, "handed_over", HandedOver(merge_id=merge_id, record=self._record)
                )
            except ApplicationError as error:
                handing.outcome = error.message
            while not handing.confirmed and handing.outcome is None:
                try:
                    await workflow.wait_condition(
                        lambda: handing.confirmed or handing.outcome is not None,
                        timeout=HANDOVER_CHECK,
                        timeout_summary=f"confirmation from {survivor}",
                    )
                except TimeoutError:
                    try:
                        await self._signal(
                            survivor,
                            "merge_check",
                            MergeAnswer(merge_id=merge_id, sender=self._golden_id),
                        )
                    except ApplicationError as error:
                        handing.outcome = error.message
            if self._merge is handing:
                self._merge = None
            if handing.outcome is not None:
                if request_ is not None:
                    request_.outcome = handing.outcome
                self._off(handing, handing.outcome, "merge cancelled")
                return
            # The survivor took it: this record ends MERGED, as it is now.
            self._record = mark_merged(self._record, survivor)
            self._decide(request.steward, f"merged into {survivor}", survivor, request.note)
            self._changed()

    @workflow.signal(name="merge_confirmed")
    def merge_confirmed(self, answer: MergeAnswer) -> None:
        m = self._merge
        if m is not None and m.merge_id == answer.merge_id and m.role is MergeRole.HANDING_OVER:
            m.confirmed = True

    @workflow.signal(name="merge_cancelled")
    def merge_cancelled(self, answer: MergeAnswer) -> None:
        m = self._merge
        if m is None or m.merge_id != answer.merge_id or m.outcome is not None:
            return
        if m.role in (MergeRole.HANDING_OVER, MergeRole.REQUESTED) and not m.confirmed:
            m.outcome = answer.reason or f"{answer.sender} cancelled the merge"

    async def _answer_legacy_hand_over(self, request: HandOverRequest) -> None:
        """A survivor that ran the earlier protocol asks this record to hand over (and would
        wait for ``absorb``): ask it to drive an acknowledged merge instead."""
        survivor = request.into
        reason = self._merge_busy() or mark_merged_problem(self._record, survivor)
        if reason is not None:
            self._decide("revsync", "hand over refused", survivor, reason)
            self._changed()
            return
        merge_ = Merge(
            merge_id=f"merge-{workflow.uuid4()}",
            role=MergeRole.REQUESTED,
            partner=survivor,
            steward=request.steward,
            note=request.note,
            since=workflow.now(),
        )
        self._merge = merge_
        self._changed()
        try:
            await self._request(merge_)
        except ApplicationError:
            return  # refused: the audit trail says why

    async def _legacy_hand_over(self, request: HandOverRequest) -> None:
        """Earlier protocol, kept for the runs that used it (their histories replay)."""
        async with self._lock:
            if problem := mark_merged_problem(self._record, request.into):
                workflow.logger.warning("hand over refused", extra=self._log(reason=problem))
                self._decide("revsync", "hand over refused", request.into, problem)
                return
            absorbed = mark_merged(self._record, request.into)
            try:
                await self._signal(
                    request.into,
                    "absorb",
                    AbsorbRequest(record=absorbed, steward=request.steward, note=request.note),
                )
            except ApplicationError as error:
                self._decide("revsync", "hand over failed", request.into, error.message)
                return
            self._record = absorbed
            self._decide(request.steward, f"merged into {request.into}", request.into, request.note)
            self._changed()

    # -- signals to the other record ------------------------------------------------------

    async def _signal(self, golden_id: str, signal: str, arg: Any) -> None:
        """Signal ``customer-<golden_id>``; a refusal when it is not running."""
        handle = workflow.get_external_workflow_handle(master_workflow_id(golden_id))
        try:
            await handle.signal(signal, arg)
        except FailureError as error:
            raise refused(
                f"{master_workflow_id(golden_id)} did not take the {signal} ({error}): it is "
                "not running (merged or never started); nothing was merged"
            ) from error

    async def _tell(
        self, golden_id: str, signal: str, merge_id: str, reason: str | None = None
    ) -> None:
        """Send a merge answer; one the other record cannot take any more is only logged."""
        answer = MergeAnswer(merge_id=merge_id, sender=self._golden_id, reason=reason)
        try:
            await self._signal(golden_id, signal, answer)
        except ApplicationError as error:
            workflow.logger.warning(
                "merge answer not delivered", extra=self._log(why=error.message)
            )
