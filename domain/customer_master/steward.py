"""A data steward's decisions: suspected duplicates (merge or keep separate) and non-owner
proposals (accept or dismiss), with which decisions apply in which state.

Like the saga's operator decisions (:mod:`domain.saga`), each decision has a ``*_problem``
function saying why it does not apply (None when it does), for an update validator to refuse
it with that message, and a function applying it.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from domain.customer import Address, NonBlank
from domain.customer_master.duplicates import CustomerProfile, DuplicateSuspicion
from domain.customer_master.fields import OWNERSHIP, GoldenId, MasterField, System
from domain.customer_master.record import GoldenRecord, ReviewStatus
from domain.customer_master.survivorship import PropagationUpdate, propagation_key


def profile_of(record: GoldenRecord) -> CustomerProfile:
    """The fields duplicate detection compares, from the golden values."""

    def text(field: MasterField) -> str | None:
        value = record.value(field)
        return value if isinstance(value, str) else None

    address = record.value(MasterField.BILLING_ADDRESS)
    return CustomerProfile(
        golden_id=record.golden_id,
        name=text(MasterField.NAME),
        legal_entity=text(MasterField.LEGAL_ENTITY),
        website=text(MasterField.WEBSITE),
        email=text(MasterField.EMAIL),
        tax_id=text(MasterField.TAX_ID),
        country=address.country if isinstance(address, Address) else None,
    )


def hold(record: GoldenRecord, suspicions: Iterable[DuplicateSuspicion]) -> GoldenRecord:
    """``record`` holding the given suspicions for a steward (a newer suspicion about the
    same candidate replaces the held one). Candidates a steward already kept separate or
    that were merged into this record are not held again. Raises ValueError for a
    suspicion about another record, or when the record was merged away."""
    found = list(suspicions)
    for suspicion in found:
        if suspicion.golden_id != record.golden_id:
            raise ValueError(
                f"a suspicion about {suspicion.golden_id} cannot be held by {record.golden_id}"
            )
    if found and record.merged_into is not None:
        raise ValueError(f"{record.golden_id} was merged into {record.merged_into}")
    skip = {record.golden_id, *record.kept_separate, *record.absorbed}
    held = {s.candidate: s for s in record.suspicions}
    held.update({s.candidate: s for s in found if s.candidate not in skip})
    return record.model_copy(update={"suspicions": tuple(held[c] for c in sorted(held))})


class StewardAction(StrEnum):
    MERGE = "merge"  # the two golden records are one customer: keep ``into``
    KEEP_SEPARATE = "keep_separate"  # two customers: never suspect this pair again


class StewardDecision(BaseModel):
    """The ``decide`` update: a steward settles one held duplicate suspicion."""

    model_config = ConfigDict(frozen=True)

    action: StewardAction
    candidate: GoldenId = Field(description="The suspected duplicate this decision settles")
    into: GoldenId | None = Field(
        default=None,
        description="merge only: the surviving golden id, this record's or the candidate's",
    )
    steward: NonBlank = Field(description="Who decides (name or e-mail)")
    note: NonBlank = Field(description="Why: kept in the audit trail")

    @model_validator(mode="after")
    def _into_only_for_merge(self) -> Self:
        if self.action is StewardAction.MERGE and self.into is None:
            raise ValueError("a merge names the surviving golden id in `into`")
        if self.action is StewardAction.KEEP_SEPARATE and self.into is not None:
            raise ValueError("keep_separate keeps both records: it takes no `into`")
        return self


def decision_problem(record: GoldenRecord, decision: StewardDecision) -> str | None:
    """Why ``decision`` does not apply to ``record``, or None when it does.

    A merged record takes no decisions (its survivor does). A decision settles a suspicion
    the record holds, about the candidate it names. A merge keeps one of the pair: ``into``
    is this record or the candidate.
    """
    golden_id = record.golden_id
    if record.merged_into is not None:
        return f"{golden_id} was merged into {record.merged_into}; decide on {record.merged_into}"
    if not record.suspicions:
        return f"no duplicate suspicion is held for {golden_id}: nothing to merge or keep separate"
    held = [s.candidate for s in record.suspicions]
    if decision.candidate not in held:
        return (
            f"{golden_id} is not held as a possible duplicate of {decision.candidate}; "
            f"held: {', '.join(held)}"
        )
    if decision.action is StewardAction.MERGE and decision.into not in (
        golden_id,
        decision.candidate,
    ):
        return (
            f"merging {golden_id} and {decision.candidate} keeps one of them: into must be "
            f"{golden_id} or {decision.candidate}, not {decision.into}"
        )
    return None


def allowed_decisions(record: GoldenRecord) -> list[StewardAction]:
    """The actions a steward may take on ``record`` now (for the status query)."""
    if record.merged_into is not None or not record.suspicions:
        return []
    return list(StewardAction)


def mark_merged_problem(record: GoldenRecord, into: str) -> str | None:
    if into == record.golden_id:
        return f"{record.golden_id} cannot be merged into itself"
    if record.merged_into not in (None, into):
        return f"{record.golden_id} was already merged into {record.merged_into}"
    return None


def mark_merged(record: GoldenRecord, into: str) -> GoldenRecord:
    """``record`` absorbed into ``into``: state MERGED. Its survivor merges its data, with
    its suspicions about other records (:func:`~domain.customer_master.survivorship.merge`),
    and receives its events from now on. Raises ValueError when :func:`mark_merged_problem`
    objects."""
    if problem := mark_merged_problem(record, into):
        raise ValueError(problem)
    remaining = tuple(s for s in record.suspicions if s.candidate != into)
    return record.model_copy(update={"merged_into": into, "suspicions": remaining})


def settle(record: GoldenRecord, decision: StewardDecision) -> GoldenRecord:
    """``record`` after ``decision``. Keep separate: the suspicion is dropped and the pair
    never held again. Merge into the candidate: this record is MERGED. Merge into this
    record: the suspicion is dropped; the caller then merges the candidate's record in.
    Raises ValueError when :func:`decision_problem` objects."""
    if problem := decision_problem(record, decision):
        raise ValueError(problem)
    remaining = tuple(s for s in record.suspicions if s.candidate != decision.candidate)
    if decision.action is StewardAction.KEEP_SEPARATE:
        kept = tuple(sorted({*record.kept_separate, decision.candidate}))
        return record.model_copy(update={"suspicions": remaining, "kept_separate": kept})
    if decision.into == decision.candidate:
        return mark_merged(record, decision.candidate)
    return record.model_copy(update={"suspicions": remaining})


class ReviewAction(StrEnum):
    ACCEPT = "accept"  # the proposal is right: push it to the owner system
    DISMISS = "dismiss"  # the owner's value stands


class ReviewDecision(BaseModel):
    """The ``review`` update: a steward settles one open proposal."""

    model_config = ConfigDict(frozen=True)

    field: MasterField
    system: System = Field(description="The system that proposed the value")
    action: ReviewAction
    steward: NonBlank
    note: NonBlank


class ReviewSettlement(BaseModel):
    model_config = ConfigDict(frozen=True)

    record: GoldenRecord
    update: PropagationUpdate | None = Field(
        default=None, description="On accept: the proposed value, to write to the owner"
    )


def review_problem(record: GoldenRecord, decision: ReviewDecision) -> str | None:
    """Why ``decision`` does not apply to ``record``, or None when it does: the record is
    not merged away, the proposal is open, and to accept it the owner system has a linked
    record to write to."""
    if record.merged_into is not None:
        return (
            f"{record.golden_id} was merged into {record.merged_into}; review on "
            f"{record.merged_into}"
        )
    proposal = record.proposals.get(decision.field, {}).get(decision.system)
    if proposal is None or not record.is_open(proposal):
        open_ones = [f"{r.field.value} from {r.system.value}" for r in record.open_reviews()]
        return (
            f"no open review of {decision.field.value} from {decision.system.value}; open: "
            f"{', '.join(open_ones) or 'none'}"
        )
    owner = OWNERSHIP[decision.field].owner
    if decision.action is ReviewAction.ACCEPT and not record.xref.get(owner):
        return (
            f"cannot accept: no {owner.value} record is linked to receive "
            f"{decision.field.value}; dismiss it or wait for the {owner.value} record"
        )
    return None


def settle_review(record: GoldenRecord, decision: ReviewDecision) -> ReviewSettlement:
    """``record`` with the proposal decided. Dismiss: the owner's value stands; the same value
    proposed again stays dismissed, a different one opens a new review. Accept: the
    proposed value is written to the owner system (the returned update, keyed by the
    proposal's source change); the golden value changes when the owner reports the change,
    as for any owner change. Raises ValueError when :func:`review_problem` objects."""
    if problem := review_problem(record, decision):
        raise ValueError(problem)
    proposal = record.proposals[decision.field][decision.system]
    status = (
        ReviewStatus.ACCEPTED if decision.action is ReviewAction.ACCEPT else ReviewStatus.DISMISSED
    )
    decided = proposal.model_copy(
        update={"status": status, "steward": decision.steward, "note": decision.note}
    )
    proposals = {field: dict(by_system) for field, by_system in record.proposals.items()}
    proposals[decision.field][decision.system] = decided
    updated = record.model_copy(update={"proposals": proposals})
    if decision.action is ReviewAction.DISMISS:
        return ReviewSettlement(record=updated)
    owner = OWNERSHIP[decision.field].owner
    fields = {decision.field: proposal.value}
    update = PropagationUpdate(
        system=owner,
        record_ids=record.xref[owner],
        fields=fields,
        source=proposal.system,
        source_record_id=proposal.record_id,
        version=proposal.version,
        idempotency_key=propagation_key(
            record.golden_id,
            owner,
            fields,
            proposal.system,
            proposal.record_id,
            proposal.version,
        ),
    )
    return ReviewSettlement(record=updated, update=update)
