"""Survivorship: what one change event does to a golden record, and merging two records.

Per field of an event, in this order (:func:`apply`):

* from the field's **owner** (:data:`~domain.customer_master.fields.OWNERSHIP`):
  ``stale`` when an older change than the one held (source version, then event id), else
  ``unchanged`` when the value is the same (the newer version is still recorded), else
  ``applied``: the value becomes golden and is planned for every other system holding a copy;
* from a system whose policy for the field is ``review``: ``stale`` when older than that
  system's last proposal or than the owner's value, ``unchanged`` when it says what the
  golden record says or what a steward already decided on, else ``not_owner_review``:
  kept as the system's proposal and listed for a steward. Nothing golden changes;
* from any other system: ``unchanged`` when it says what the golden record says, else
  ``not_owner_ignored``.

An event whose id the record has seen is a ``duplicate`` as a whole and changes nothing.

Because each field keeps the newest owner change and each proposal the newest non-owner
change, the record after a set of events does not depend on the order they arrived in, and
applying an event again changes nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from domain.customer_master.fields import (
    OWNERSHIP,
    FieldChanges,
    FieldValue,
    MasterField,
    NonOwnerPolicy,
    System,
    equivalent,
)
from domain.customer_master.record import (
    ChangeEvent,
    FieldState,
    GoldenRecord,
    Proposal,
    ReviewItem,
    ReviewStatus,
    SeenEvent,
    SourceVersion,
    review_item,
)


class FieldVerdict(StrEnum):
    APPLIED = "applied"  # the owner's change became golden
    UNCHANGED = "unchanged"  # the same value as the golden one, or one a steward decided on
    STALE = "stale"  # older than what the record holds: nothing changed
    NOT_OWNER_IGNORED = "not_owner_ignored"
    NOT_OWNER_REVIEW = "not_owner_review"  # kept as a proposal for a data steward


class PropagationUpdate(BaseModel):
    """Fields one system must be updated with, after an owner change."""

    model_config = ConfigDict(frozen=True)

    system: System
    record_ids: tuple[str, ...]
    fields: FieldChanges
    source: System
    source_record_id: str
    version: SourceVersion
    idempotency_key: str
    request: str | None = Field(
        default=None,
        description="The re-propagation request that planned it (part of its key); None "
        "for an update planned by a change, a merge or a late link",
    )


class Outcome(BaseModel):
    """What :func:`apply` did: the new record, a verdict per field of the event, the review
    items the event raised and the updates to send."""

    model_config = ConfigDict(frozen=True)

    record: GoldenRecord
    duplicate: bool = False
    verdicts: dict[MasterField, FieldVerdict]
    reviews: tuple[ReviewItem, ...] = ()
    propagation: tuple[PropagationUpdate, ...] = ()

    @property
    def applied(self) -> list[MasterField]:
        return [f for f, v in self.verdicts.items() if v is FieldVerdict.APPLIED]


def propagation_key(
    golden_id: str,
    system: System,
    fields: Iterable[MasterField],
    source: System,
    source_record_id: str,
    version: SourceVersion,
    request: str | None = None,
) -> str:
    """The idempotency key of one update: the same for the same golden id, target system,
    field set and source change (system, record, version), whatever the field order, so a
    replayed plan updates nothing twice. Short and made of ``[a-z0-9:-]`` plus the golden
    id, as vendors accept (Stripe up to 255 characters, NetSuite external ids).

    ``request`` (a re-propagation request's key) makes a fresh key for re-sending values
    already sent once: vendors would answer the first key's cached result and write
    nothing."""
    names = ",".join(sorted(f.value for f in fields))
    parts = (golden_id, system.value, names, source.value, source_record_id, version.token())
    material = "|".join(parts if request is None else (*parts, request))
    digest = hashlib.sha256(material.encode()).hexdigest()[:32]
    return f"cm-{golden_id}:{system.value}:{digest}"


def _canonical_fields(states: Mapping[MasterField, FieldState]) -> dict[MasterField, FieldState]:
    return {field: states[field] for field in MasterField if field in states}


def _canonical_proposals(
    proposals: Mapping[MasterField, Mapping[System, Proposal]],
) -> dict[MasterField, dict[System, Proposal]]:
    return {
        field: {s: proposals[field][s] for s in System if s in proposals[field]}
        for field in MasterField
        if proposals.get(field)
    }


def _link(
    xref: Mapping[System, tuple[str, ...]], links: Iterable[tuple[System, str]]
) -> dict[System, tuple[str, ...]]:
    ids = {system: set(xref.get(system, ())) for system in System}
    for system, record_id in links:
        ids[system].add(record_id)
    return {system: tuple(sorted(ids[system])) for system in System if ids[system]}


def _remember(seen: Iterable[SeenEvent], limit: int) -> tuple[SeenEvent, ...]:
    unique = {(s.system, s.event_id): s for s in seen}
    newest = sorted(unique.values(), key=lambda s: s.key)[-limit:]
    return tuple(newest)


def _newer_proposal(held: Proposal | None, proposal: Proposal) -> Proposal:
    """The proposal to keep: the newer one; a newer proposal of the value a steward already
    decided on keeps that decision (a system re-sending its whole record re-sends it)."""
    if held is None:
        return proposal
    if proposal.key <= held.key:
        return held
    decided = held.status is not ReviewStatus.OPEN
    if decided and equivalent(proposal.field, proposal.value, held.value):
        return proposal.model_copy(
            update={"status": held.status, "steward": held.steward, "note": held.note}
        )
    return proposal


def _owner_verdict(held: FieldState | None, candidate: FieldState) -> FieldVerdict:
    if held is not None and candidate.key < held.key:
        return FieldVerdict.STALE
    if candidate.value == (None if held is None else held.value):
        return FieldVerdict.UNCHANGED
    if held is not None and candidate.key == held.key:
        return FieldVerdict.STALE  # the same event id and version saying otherwise: first wins
    return FieldVerdict.APPLIED


def _review_verdict(
    record: GoldenRecord, held: Proposal | None, proposal: Proposal
) -> FieldVerdict:
    if held is not None and proposal.key < held.key:
        return FieldVerdict.STALE
    if (
        held is not None
        and held.status is not ReviewStatus.OPEN
        and equivalent(proposal.field, proposal.value, held.value)
    ):
        return FieldVerdict.UNCHANGED  # a steward already decided on this value
    golden = record.fields.get(proposal.field)
    if equivalent(proposal.field, proposal.value, None if golden is None else golden.value):
        return FieldVerdict.UNCHANGED
    if held is not None and proposal.key == held.key:
        # the same event again (its id forgotten): nothing new; saying otherwise: first wins
        same = equivalent(proposal.field, proposal.value, held.value)
        return FieldVerdict.UNCHANGED if same else FieldVerdict.STALE
    if golden is not None and proposal.version.modified_at <= golden.version.modified_at:
        return FieldVerdict.STALE  # the owner has set the field since
    return FieldVerdict.NOT_OWNER_REVIEW


def _propagation(
    record: GoldenRecord, event: ChangeEvent, applied: Mapping[MasterField, FieldValue]
) -> tuple[PropagationUpdate, ...]:
    updates: list[PropagationUpdate] = []
    for system in System:
        fields = {f: v for f, v in applied.items() if system in OWNERSHIP[f].copies}
        record_ids = record.xref.get(system, ())
        if system is event.source or not fields or not record_ids:
            continue
        updates.append(
            PropagationUpdate(
                system=system,
                record_ids=record_ids,
                fields=fields,
                source=event.source,
                source_record_id=event.record_id,
                version=event.version,
                idempotency_key=propagation_key(
                    record.golden_id,
                    system,
                    fields,
                    event.source,
                    event.record_id,
                    event.version,
                ),
            )
        )
    return tuple(updates)


def apply(record: GoldenRecord, event: ChangeEvent) -> Outcome:
    """The golden record after ``event``, with a verdict per changed field (see the module).

    The event's source record is linked to the golden record whatever the verdicts. Updates
    are planned for the systems holding a copy of an applied field and a linked record; a
    system with no linked record yet gets nothing (it receives the golden record when its
    record is created). Raises ValueError for a record merged into another one: its events
    belong to the survivor.
    """
    if record.merged_into is not None:
        raise ValueError(
            f"{record.golden_id} was merged into {record.merged_into}: apply the event to "
            f"{record.merged_into}"
        )
    if record.has_seen(event.source, event.event_id):
        return Outcome(record=record, duplicate=True, verdicts={})

    fields = dict(record.fields)
    proposals = {field: dict(by_system) for field, by_system in record.proposals.items()}
    verdicts: dict[MasterField, FieldVerdict] = {}
    applied: dict[MasterField, FieldValue] = {}
    raised: list[Proposal] = []
    for field, value in event.changes.items():
        rule = OWNERSHIP[field]
        if event.source is rule.owner:
            candidate = FieldState(
                field=field,
                value=value,
                source=event.source,
                record_id=event.record_id,
                event_id=event.event_id,
                version=event.version,
            )
            held = fields.get(field)
            verdict = _owner_verdict(held, candidate)
            if held is None or candidate.key > held.key:
                fields[field] = candidate
            if verdict is FieldVerdict.APPLIED:
                applied[field] = value
        elif rule.policy(event.source) is NonOwnerPolicy.REVIEW:
            proposal = Proposal(
                field=field,
                value=value,
                system=event.source,
                record_id=event.record_id,
                event_id=event.event_id,
                version=event.version,
            )
            held_proposal = proposals.get(field, {}).get(event.source)
            verdict = _review_verdict(record, held_proposal, proposal)
            proposals.setdefault(field, {})[event.source] = _newer_proposal(held_proposal, proposal)
            if verdict is FieldVerdict.NOT_OWNER_REVIEW:
                raised.append(proposal)
        elif equivalent(field, value, record.value(field)):
            verdict = FieldVerdict.UNCHANGED
        else:
            verdict = FieldVerdict.NOT_OWNER_IGNORED
        verdicts[field] = verdict

    seen = SeenEvent(system=event.source, event_id=event.event_id, version=event.version)
    updated = record.model_copy(
        update={
            "fields": _canonical_fields(fields),
            "proposals": _canonical_proposals(proposals),
            "xref": _link(record.xref, [(event.source, event.record_id)]),
            "seen": _remember((*record.seen, seen), record.seen_limit),
        }
    )
    return Outcome(
        record=updated,
        verdicts=verdicts,
        reviews=tuple(review_item(updated, proposal) for proposal in raised),
        propagation=_propagation(updated, event, applied),
    )


def merge_problem(survivor: GoldenRecord, absorbed: GoldenRecord) -> str | None:
    """Why ``absorbed`` cannot be merged into ``survivor``, or None when it can."""
    if survivor.golden_id == absorbed.golden_id:
        return f"{survivor.golden_id} cannot be merged into itself"
    if survivor.merged_into is not None:
        return (
            f"{survivor.golden_id} was itself merged into {survivor.merged_into}: merge into "
            f"{survivor.merged_into}"
        )
    if absorbed.merged_into not in (None, survivor.golden_id):
        return f"{absorbed.golden_id} was already merged into {absorbed.merged_into}"
    return None


def _newest_field(a: FieldState | None, b: FieldState | None) -> FieldState | None:
    if a is None or b is None:
        return a or b
    return a if a.key >= b.key else b


def merge(survivor: GoldenRecord, absorbed: GoldenRecord) -> GoldenRecord:
    """``survivor`` with ``absorbed`` merged in, by the same survivorship as events: per
    field the newest owner value, per field and system the newest proposal, the record ids
    and seen events of both, the suspicions and kept-separate decisions of both (except those
    about each other). The result is the record that applying every event of both would
    have built. Raises ValueError when :func:`merge_problem` objects."""
    if problem := merge_problem(survivor, absorbed):
        raise ValueError(problem)
    fields: dict[MasterField, FieldState] = {}
    for field in MasterField:
        newest = _newest_field(survivor.fields.get(field), absorbed.fields.get(field))
        if newest is not None:
            fields[field] = newest
    proposals: dict[MasterField, dict[System, Proposal]] = {}
    for record in (survivor, absorbed):
        for field, by_system in record.proposals.items():
            for system, proposal in by_system.items():
                held = proposals.get(field, {}).get(system)
                proposals.setdefault(field, {})[system] = _newer_proposal(held, proposal)
    pair = {survivor.golden_id, absorbed.golden_id}
    suspicions = {s.candidate: s for s in absorbed.suspicions if s.candidate not in pair}
    suspicions = {
        candidate: s.model_copy(update={"golden_id": survivor.golden_id})
        for candidate, s in suspicions.items()
    }
    suspicions.update({s.candidate: s for s in survivor.suspicions if s.candidate not in pair})
    kept = (set(survivor.kept_separate) | set(absorbed.kept_separate)) - pair
    folded = set(survivor.absorbed) | set(absorbed.absorbed) | {absorbed.golden_id}
    for candidate in kept | folded:
        suspicions.pop(candidate, None)
    links = [(system, rid) for system, ids in absorbed.xref.items() for rid in ids]
    return survivor.model_copy(
        update={
            "fields": fields,
            "proposals": _canonical_proposals(proposals),
            "xref": _link(survivor.xref, links),
            "seen": _remember((*survivor.seen, *absorbed.seen), survivor.seen_limit),
            "suspicions": tuple(suspicions[c] for c in sorted(suspicions)),
            "kept_separate": tuple(sorted(kept)),
            "absorbed": tuple(sorted(folded - {survivor.golden_id})),
        }
    )
