"""Customer master: what crosses the workflow boundary, and the few pure rules the entity
workflow adds to :mod:`domain.customer_master` (link syncs, superseded propagations, the
visibility keys of duplicate detection).

Step contracts (activity names and arguments), the update, signal and query models of
``CustomerMaster`` (workflow id ``customer-<golden id>``) and its continue-as-new input. No
I/O; safe inside the workflow sandbox.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, field_validator

from domain.contracts import TaskQueue
from domain.customer_master import (
    OWNERSHIP,
    CustomerProfile,
    DuplicateSuspicion,
    FieldVerdict,
    GoldenId,
    GoldenRecord,
    MasterField,
    MasterState,
    PropagationUpdate,
    ReviewItem,
    StewardAction,
    System,
    normalise_tax_id,
    propagation_key,
)
from domain.saga import NonBlank, ResolveAction

WORKFLOW_TYPE: Final = "CustomerMaster"


class MasterActivity:
    """Registered activity names of the customer master, by the queue that runs them."""

    CRM_UPDATE_ACCOUNT_FIELDS = "crm.update_account_fields"
    BILLING_UPDATE_CUSTOMER_FIELDS = "billing.update_customer_fields"
    ERP_UPDATE_CUSTOMER_FIELDS = "erp.update_customer_fields"
    BILLING_FIND_CUSTOMER = "billing.find_customer"
    ERP_FIND_CUSTOMER = "erp.find_customer"
    # Reads Temporal visibility (not a vendor): runs on the orchestration queue.
    FIND_DUPLICATES = "master.find_duplicates"
    # Reads Temporal itself: the record an earlier chain of the same customer ended with.
    FIND_PREVIOUS_RECORD = "master.find_previous_record"


UPDATE_STEPS: Final[dict[System, tuple[str, str]]] = {
    System.CRM: (MasterActivity.CRM_UPDATE_ACCOUNT_FIELDS, TaskQueue.CRM),
    System.BILLING: (MasterActivity.BILLING_UPDATE_CUSTOMER_FIELDS, TaskQueue.BILLING),
    System.ERP: (MasterActivity.ERP_UPDATE_CUSTOMER_FIELDS, TaskQueue.ERP),
}
"""The activity and task queue that write golden values to each system."""

LOOKUP_STEPS: Final[dict[System, tuple[str, str]]] = {
    System.BILLING: (MasterActivity.BILLING_FIND_CUSTOMER, TaskQueue.BILLING),
    System.ERP: (MasterActivity.ERP_FIND_CUSTOMER, TaskQueue.ERP),
}
"""Systems whose record of a customer is found by the golden id (the CRM's record *is* the
golden id): billing by ``metadata.revsync_account_id``, ERP by external id ``acct-<id>``."""


def erp_external_id(golden_id: str) -> str:
    """The ERP customer's external id quote-to-cash gives it: ``acct-<CRM account id>``."""
    return f"acct-{golden_id}"


def golden_id_from_erp(external_id: str) -> str | None:
    """The golden id an ERP customer's external id names, or None when it is not one of
    revsync's (``acct-<CRM account id>``)."""
    prefix = "acct-"
    if not external_id.startswith(prefix) or len(external_id) == len(prefix):
        return None
    return external_id[len(prefix) :]


def blocked_step(system: System) -> str:
    """The ``BlockedStep`` value of a parked propagation to ``system``."""
    return f"propagate_{system.value}"


# -- step contracts -----------------------------------------------------------------------


class _Contract(BaseModel):
    model_config = ConfigDict(frozen=True)


class FindCustomerLink(_Contract):
    golden_id: GoldenId


class CustomerLink(_Contract):
    record_id: str | None = Field(description="The system's id of the customer; None: none yet")


class FindDuplicates(_Contract):
    profile: CustomerProfile
    tax_id_hash: str | None
    domains: tuple[str, ...]


class DuplicateCandidates(_Contract):
    suspicions: tuple[DuplicateSuspicion, ...] = ()
    candidates_seen: int = Field(default=0, description="Running golden records compared")


# -- policy and state ---------------------------------------------------------------------


class MasterPolicy(BaseModel):
    """Rules one customer-master run works under, fixed in its input (so in its history)."""

    model_config = ConfigDict(frozen=True)

    propagation_retry_budget: timedelta = Field(
        default=timedelta(minutes=30),
        gt=timedelta(0),
        description="How long one propagation retries transient failures before it parks",
    )
    lookup_budget: timedelta = Field(
        default=timedelta(seconds=30),
        gt=timedelta(0),
        description="How long a link lookup or duplicate search may take (it never parks)",
    )
    relink_after: timedelta = Field(
        default=timedelta(hours=1),
        ge=timedelta(0),
        description="How long to wait before looking again for a system's missing record",
    )
    history_limit: int = Field(
        default=10_000,
        ge=20,
        description="Continue as new once the run's history has this many events",
    )


class PropagationStatus(StrEnum):
    DONE = "done"  # every record of the system was updated
    SUPERSEDED = "superseded"  # newer golden values replaced all its fields before it ran
    SKIPPED = "skipped"  # an operator chose to skip it


class PropagationRecord(BaseModel):
    """A finished propagation, as the status query lists the recent ones."""

    model_config = ConfigDict(frozen=True)

    system: System
    fields: tuple[MasterField, ...]
    idempotency_key: str
    status: PropagationStatus
    at: datetime
    detail: str | None = None


class ParkedPropagation(BaseModel):
    """A propagation that was rejected (or ran out of retries), waiting for an operator."""

    model_config = ConfigDict(frozen=True)

    update: PropagationUpdate
    step: str = Field(description="The BlockedStep value: propagate_<system>")
    reason: str
    since: datetime
    allowed: tuple[ResolveAction, ...] = (ResolveAction.RETRY, ResolveAction.SKIP)


class MasterDecision(BaseModel):
    """One human decision on the golden record, as the audit trail keeps it."""

    model_config = ConfigDict(frozen=True)

    at: datetime
    actor: str
    action: str = Field(description="merge, keep_separate, accept, dismiss, retry or skip")
    subject: str = Field(description="The candidate, field or propagation decided on")
    note: str


RECENT_KEPT: Final = 20
"""How many finished propagations and decisions the status keeps (the history has all)."""


class RepropagateRequest(BaseModel):
    """The ``repropagate`` update: send the golden values of ``fields`` (every field when
    None) again to every linked system holding a copy, e.g. after reconciliation found a
    copy drifted or an operator fixed a record by hand.

    A request is identified by :meth:`key`: ``request_id`` when given, else its reason and
    fields. The same request again schedules nothing (the workflow answers what it
    scheduled the first time); a new one sends, with idempotency keys of its own."""

    model_config = ConfigDict(frozen=True)

    fields: tuple[MasterField, ...] | None = Field(
        default=None, description="The fields to send again; None: every field"
    )
    reason: NonBlank = Field(description="Why: kept in the audit trail and part of the key")
    requested_by: NonBlank = Field(default="revsync", description="Who asked (or which process)")
    request_id: NonBlank | None = Field(
        default=None, description="Identifies the request instead of its reason and fields"
    )

    @field_validator("fields")
    @classmethod
    def _some_fields(cls, fields: tuple[MasterField, ...] | None) -> tuple[MasterField, ...] | None:
        if fields is None:
            return None
        if not fields:
            raise ValueError("name at least one field, or none at all for every field")
        return tuple(f for f in MasterField if f in set(fields))

    def key(self, golden_id: str) -> str:
        """``rp-<digest>``: the same for the same golden id and request, whatever the order
        the fields were named in."""
        if self.request_id is not None:
            material = f"{golden_id}|id|{self.request_id}"
        else:
            names = "*" if self.fields is None else ",".join(f.value for f in self.fields)
            material = f"{golden_id}|{names}|{self.reason}"
        return f"rp-{hashlib.sha256(material.encode()).hexdigest()[:24]}"


class ScheduledPropagation(BaseModel):
    """One update a re-propagation queued."""

    model_config = ConfigDict(frozen=True)

    system: System
    record_ids: tuple[str, ...]
    fields: tuple[MasterField, ...]
    idempotency_key: str


class RepropagateResult(BaseModel):
    """What the ``repropagate`` update answers: what it scheduled (the propagation lanes
    send it; the status query shows the outcome under ``recent`` and ``parked``)."""

    model_config = ConfigDict(frozen=True)

    golden_id: str
    request_key: str
    repeated: bool = Field(
        description="The same request was made before: this is its answer, nothing new is sent"
    )
    at: datetime = Field(description="When the request was first scheduled")
    reason: str
    requested_by: str
    scheduled: tuple[ScheduledPropagation, ...] = ()
    unset: tuple[MasterField, ...] = Field(
        default=(), description="Fields asked for that hold no golden value (nothing to send)"
    )
    unlinked: tuple[System, ...] = Field(
        default=(), description="Systems holding a copy of an asked field with no record linked"
    )


REPROPAGATIONS_KEPT: Final = 100
"""How many re-propagation answers the workflow remembers to answer repeats (older repeats
schedule again, and the vendors' idempotency keys still dedupe them for their window)."""


class CustomerMasterInput(BaseModel):
    """Start (or continue-as-new) input: everything a run needs to go on where the last
    stopped."""

    golden_id: GoldenId
    record: GoldenRecord | None = None
    queue: list[PropagationUpdate] = Field(default_factory=list)
    parked: list[ParkedPropagation] = Field(default_factory=list)
    recent: list[PropagationRecord] = Field(default_factory=list)
    decisions: list[MasterDecision] = Field(default_factory=list)
    links_checked_at: datetime | None = None
    duplicates_due: bool = True
    events_applied: int = 0
    runs: int = Field(default=0, description="How many times the entity continued as new")
    policy: MasterPolicy = Field(default_factory=MasterPolicy)
    repropagations: list[RepropagateResult] = Field(
        default_factory=list, description="Recent re-propagation answers, oldest first"
    )
    undelivered_events: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Business events still on their way when the run continued as new "
        "(CloudEvents, ids unchanged): the next run sends them again",
    )


class ChangeResult(BaseModel):
    """What the ``apply_change`` update answers: a verdict per field of the event."""

    golden_id: str
    event_id: str
    source: System
    duplicate: bool
    verdicts: dict[MasterField, FieldVerdict]
    reviews: tuple[ReviewItem, ...] = ()
    propagating_to: tuple[System, ...] = ()
    state: MasterState


class ResolvePropagation(BaseModel):
    """The ``resolve`` update: an operator's decision on a parked propagation."""

    model_config = ConfigDict(frozen=True)

    action: ResolveAction
    operator: NonBlank
    note: NonBlank
    key: str | None = Field(
        default=None,
        description="The parked propagation's idempotency key; optional when one is parked",
    )


class AbsorbRequest(BaseModel):
    """Signal ``absorb`` to the survivor: the absorbed record, handed over whole."""

    model_config = ConfigDict(frozen=True)

    record: GoldenRecord
    steward: str
    note: str


class HandOverRequest(BaseModel):
    """Signal ``hand_over`` to the absorbed record: hand yourself over to ``into``.

    With ``merge_id`` (the acknowledged merge): answer ``handed_over`` with the record, or
    ``hand_over_refused``, and end MERGED only once ``into`` confirms. Without it, the request
    of a survivor that ran the earlier protocol (which expects an ``absorb`` signal): the
    record asks it to drive an acknowledged merge instead (``merge_request``)."""

    model_config = ConfigDict(frozen=True)

    into: GoldenId
    steward: str
    note: str
    merge_id: str | None = None


class MergeRequest(BaseModel):
    """Signal ``merge_request`` to the survivor: a steward merged ``candidate`` into you;
    drive the merge (ask it to hand over)."""

    model_config = ConfigDict(frozen=True)

    merge_id: str
    candidate: GoldenId
    steward: str
    note: str


class HandedOver(BaseModel):
    """Signal ``handed_over`` to the survivor: the absorbed record, whole, as it stands while
    it takes no other change."""

    model_config = ConfigDict(frozen=True)

    merge_id: str
    record: GoldenRecord


class MergeAnswer(BaseModel):
    """The other signals of a merge between two records: ``hand_over_refused`` and
    ``merge_cancelled`` (with the ``reason``), ``merge_confirmed``, and ``merge_check`` (an
    absorbed record asking how its hand-over went)."""

    model_config = ConfigDict(frozen=True)

    merge_id: str
    sender: GoldenId
    reason: str | None = None


class MergeRole(StrEnum):
    ABSORBING = "absorbing"  # the survivor, driving the merge
    REQUESTED = "requested"  # a steward merged this record into the partner, which drives
    HANDING_OVER = "handing_over"  # handed over, waiting for the survivor's confirmation


class MergeInProgress(BaseModel):
    """The merge a golden customer takes part in, for the status: it refuses other merges
    meanwhile, and while handing over it takes no change (they wait for the outcome)."""

    model_config = ConfigDict(frozen=True)

    merge_id: str
    role: MergeRole
    partner: str
    since: datetime


class CustomerMasterStatus(BaseModel):
    """Everything a data steward or operator needs about one golden customer."""

    golden_id: str
    workflow_id: str
    state: MasterState
    record: GoldenRecord
    open_reviews: tuple[ReviewItem, ...]
    suspicions: tuple[DuplicateSuspicion, ...]
    allowed_decisions: list[StewardAction]
    queued: list[PropagationUpdate]
    parked: list[ParkedPropagation]
    recent: list[PropagationRecord]
    decisions: list[MasterDecision]
    events_applied: int
    runs: int
    publishing: int = Field(default=0, description="customer.updated events not delivered yet")
    repropagations: list[RepropagateResult] = Field(
        default_factory=list, description="Recent re-propagation requests, oldest first"
    )
    merging: MergeInProgress | None = Field(
        default=None, description="A merge with another golden customer under way"
    )


# -- pure rules the workflow adds -----------------------------------------------------------


IDENTITY_FIELDS: Final = frozenset(
    {
        MasterField.NAME,
        MasterField.LEGAL_ENTITY,
        MasterField.WEBSITE,
        MasterField.EMAIL,
        MasterField.TAX_ID,
        MasterField.BILLING_ADDRESS,  # its country qualifies a bare tax id
    }
)
"""Fields duplicate detection compares: a change to one of them is checked again."""


def tax_id_hash(profile: CustomerProfile) -> str | None:
    """The ``MasterTaxIdHash`` search attribute: SHA-256 of the normalised tax id, so no raw
    tax id reaches visibility. Without the country (a bare id in one country may match the
    same digits with no country): :func:`~domain.customer_master.match` decides precisely."""
    normalised = normalise_tax_id(profile.tax_id, profile.country)
    if normalised is None:
        return None
    return hashlib.sha256(normalised.encode()).hexdigest()


def profile_domains(profile: CustomerProfile) -> tuple[str, ...]:
    """The ``MasterDomains`` search attribute: the record's non-free-mail domains."""
    return tuple(sorted(profile.domains()))


def current_part(record: GoldenRecord, update: PropagationUpdate) -> PropagationUpdate | None:
    """``update`` restricted to the fields whose golden value still comes from the change it
    carries (the others were replaced by newer changes, planned after it), re-keyed when
    fields were dropped; None when nothing of it is current. Sending only this keeps a late
    or retried propagation from overwriting a newer value."""
    fields = {}
    for field, value in update.fields.items():
        state = record.fields.get(field)
        if update.source is not OWNERSHIP[field].owner:
            # An accepted proposal, written to the owner: current until the owner changes
            # the field after the proposal was made.
            if state is None or state.version.modified_at <= update.version.modified_at:
                fields[field] = value
        elif (
            state is not None
            and state.source is update.source
            and state.record_id == update.source_record_id
            and state.version == update.version
            and state.value == value
        ):
            fields[field] = value
    if not fields:
        return None
    if fields.keys() == update.fields.keys():
        return update
    return update.model_copy(
        update={
            "fields": fields,
            "idempotency_key": propagation_key(
                record.golden_id,
                update.system,
                fields,
                update.source,
                update.source_record_id,
                update.version,
                update.request,
            ),
        }
    )


def sync_plan(
    record: GoldenRecord,
    systems: Iterable[System],
    fields: Iterable[MasterField] | None = None,
    request: str | None = None,
) -> list[PropagationUpdate]:
    """Updates bringing ``systems`` up to the golden values of ``fields`` (all by default),
    for a system linked late or a record merged in: for each system, the fields it holds a
    copy of, grouped by the owner change each golden value came from (so each update has
    the same idempotency key as if that change had just been applied). With ``request``
    (a re-propagation request's key) the keys are that request's own, so values sent before
    are written again."""
    wanted = list(MasterField) if fields is None else [f for f in MasterField if f in set(fields)]
    updates: list[PropagationUpdate] = []
    for system in System:
        if system not in set(systems) or not record.xref.get(system):
            continue
        groups: dict[tuple[System, str, str], dict[MasterField, object]] = {}
        versions = {}
        for field in wanted:
            state = record.fields.get(field)
            if state is None or system not in OWNERSHIP[field].copies:
                continue
            origin = (state.source, state.record_id, state.version.token())
            groups.setdefault(origin, {})[field] = state.value
            versions[origin] = state.version
        for origin, changes in groups.items():
            source, record_id, _ = origin
            updates.append(
                PropagationUpdate(
                    system=system,
                    record_ids=record.xref[system],
                    fields=changes,
                    source=source,
                    source_record_id=record_id,
                    version=versions[origin],
                    idempotency_key=propagation_key(
                        record.golden_id,
                        system,
                        changes,
                        source,
                        record_id,
                        versions[origin],
                        request,
                    ),
                    request=request,
                )
            )
    return updates


def link(record: GoldenRecord, system: System, record_id: str) -> GoldenRecord:
    """``record`` with ``record_id`` linked as one of its records in ``system``."""
    ids = tuple(sorted({*record.xref.get(system, ()), record_id}))
    xref = {s: ids if s is system else record.xref[s] for s in System if s in record.xref}
    xref.setdefault(system, ids)
    return record.model_copy(update={"xref": {s: xref[s] for s in System if s in xref}})


class FindPreviousRecord(BaseModel):
    """``master.find_previous_record``: a customer master starting from nothing asks whether
    an earlier chain for its golden id ended without handing on (terminated, failed, timed
    out), and what that chain's last run knew."""

    golden_id: str
    run_id: str = Field(description="The asking run, which is not its own predecessor")


# Ends of a run that hand nothing on: the next start would otherwise begin empty.
ABNORMAL_ENDS: Final = ("TERMINATED", "FAILED", "TIMED_OUT")


class PreviousRecord(BaseModel):
    """What ``master.find_previous_record`` found: nothing (a new customer), or the last run
    of an earlier chain, how it ended, and its status (the golden record, what was queued,
    parked and decided) as its own ``status`` query answers it."""

    run_id: str | None = None
    ended: str | None = None
    status: CustomerMasterStatus | None = None
