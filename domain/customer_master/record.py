"""The golden customer record and the change events that build it.

A :class:`GoldenRecord` is the whole state of one customer-master entity workflow: field
values with where each came from, non-owner proposals waiting for a steward, the record ids
per system, recently seen event ids and duplicate suspicions. It is JSON-serialisable and
carried over whole when the workflow continues as new.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SkipValidation,
    field_validator,
    model_validator,
)

from domain.customer import NonBlank
from domain.customer_master.duplicates import DuplicateSuspicion
from domain.customer_master.fields import (
    OWNERSHIP,
    FieldChanges,
    FieldValue,
    GoldenId,
    MasterField,
    System,
    equivalent,
    field_value,
    typed_value_input,
)

SEEN_EVENTS_KEPT = 500
"""How many event ids a golden record remembers for deduplication.

Dedupe by id is a first line only: every field change also carries its source version, and a
change not newer than what the record holds changes nothing (``stale``/``unchanged``), so an
event redelivered after its id was forgotten is still harmless; it only loses the precise
``duplicate`` verdict. Webhook senders redeliver within days (Stripe retries for up to three
days, Salesforce and HubSpot for hours), and one customer sees a few changes a day, so 500
covers months of a busy account; as workflow state it costs about 50 KB.

Kept are the ids of the events with the newest source versions (not the last arrived), so
the set, like the rest of the record, does not depend on the order events arrive in; an
event older than all 500 kept is at once forgotten, and its redelivery is stale anyway.
"""


class SourceVersion(BaseModel):
    """When the source system last modified its record: Salesforce ``SystemModstamp``,
    HubSpot ``updatedAt``, NetSuite ``lastModifiedDate``, Stripe's event ``created``.
    ``sequence`` orders changes within one instant when the vendor gives a revision counter
    (or an adapter numbers several changes sharing one timestamp); 0 otherwise."""

    model_config = ConfigDict(frozen=True)

    modified_at: AwareDatetime
    sequence: int = Field(default=0, ge=0)

    @field_validator("modified_at")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    def token(self) -> str:
        """A canonical text form, for idempotency keys."""
        return f"{self.modified_at.isoformat()}#{self.sequence}"


OrderKey = tuple[datetime, int, str]
"""How changes to one field are ordered: source version, then the event id, so that two
changes with the same version still resolve the same way whatever order they arrive in."""


def order_key(version: SourceVersion, event_id: str) -> OrderKey:
    return (version.modified_at, version.sequence, event_id)


class ChangeEvent(BaseModel):
    """One change to one source record, as a webhook reported it."""

    model_config = ConfigDict(frozen=True)

    source: System
    event_id: NonBlank = Field(description="The source's event id (deduplication key)")
    record_id: NonBlank = Field(description="The source's id of the customer record")
    version: SourceVersion
    changes: FieldChanges

    @field_validator("changes")
    @classmethod
    def _not_empty(cls, changes: dict[MasterField, FieldValue]) -> dict[MasterField, FieldValue]:
        if not changes:
            raise ValueError("a change event changes at least one field")
        return changes

    @property
    def key(self) -> OrderKey:
        return order_key(self.version, self.event_id)


class FieldState(BaseModel):
    """A golden field's value and the owner change it came from."""

    model_config = ConfigDict(frozen=True)

    field: MasterField
    value: Annotated[FieldValue, SkipValidation]
    source: System
    record_id: str
    event_id: str
    version: SourceVersion

    @model_validator(mode="before")
    @classmethod
    def _typed(cls, data: Any) -> Any:
        return typed_value_input(data)

    @property
    def key(self) -> OrderKey:
        return order_key(self.version, self.event_id)


class ReviewStatus(StrEnum):
    OPEN = "open"
    ACCEPTED = "accepted"  # a steward pushed the value to the owner system
    DISMISSED = "dismissed"  # a steward kept the owner's value


class Proposal(BaseModel):
    """The newest value a non-owner system holds for a field whose policy is ``review``."""

    model_config = ConfigDict(frozen=True)

    field: MasterField
    value: Annotated[FieldValue, SkipValidation]
    system: System
    record_id: str
    event_id: str
    version: SourceVersion
    status: ReviewStatus = ReviewStatus.OPEN
    steward: str | None = None
    note: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _typed(cls, data: Any) -> Any:
        return typed_value_input(data)

    @property
    def key(self) -> OrderKey:
        return order_key(self.version, self.event_id)


class ReviewItem(BaseModel):
    """A non-owner change a data steward should look at: ``system`` holds ``proposed`` where
    the golden record (from ``owner``) holds ``current``."""

    model_config = ConfigDict(frozen=True)

    field: MasterField
    proposed: Annotated[FieldValue, SkipValidation]
    current: Annotated[FieldValue, SkipValidation] = Field(
        description="The golden value (None while the owner has not set the field)"
    )
    owner: System
    system: System
    record_id: str
    event_id: str
    version: SourceVersion

    @model_validator(mode="before")
    @classmethod
    def _typed(cls, data: Any) -> Any:
        if isinstance(data, dict) and {"field", "proposed", "current"} <= data.keys():
            field = MasterField(data["field"])
            proposed = field_value(field, data["proposed"])
            current = data["current"]  # None while no owner has set the field
            return {
                **data,
                "field": field,
                "proposed": proposed,
                "current": None if current is None else field_value(field, current),
            }
        return data


class SeenEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    system: System
    event_id: str
    version: SourceVersion

    @property
    def key(self) -> tuple[datetime, int, str, str]:
        return (self.version.modified_at, self.version.sequence, self.system.value, self.event_id)


class MasterState(StrEnum):
    """The closed vocabulary of the ``MasterState`` search attribute."""

    ACTIVE = "ACTIVE"
    NEEDS_REVIEW = "NEEDS_REVIEW"  # a duplicate suspicion or a field proposal awaits a steward
    MERGED = "MERGED"  # absorbed into another golden record, which now receives its events


def master_workflow_id(golden_id: str) -> str:
    return f"customer-{golden_id}"


class GoldenRecord(BaseModel):
    """One golden customer: everything its entity workflow keeps.

    Collections are kept in a canonical order (fields in :class:`MasterField` order, ids
    sorted), so two records holding the same facts are equal and serialise the same.
    """

    model_config = ConfigDict(frozen=True)

    golden_id: GoldenId
    fields: dict[MasterField, FieldState] = Field(default_factory=dict)
    proposals: dict[MasterField, dict[System, Proposal]] = Field(default_factory=dict)
    xref: dict[System, tuple[str, ...]] = Field(
        default_factory=dict, description="The record ids of this customer in each system"
    )
    seen: tuple[SeenEvent, ...] = Field(
        default=(), description="Recently processed events, oldest source version first"
    )
    seen_limit: int = Field(default=SEEN_EVENTS_KEPT, ge=1)
    suspicions: tuple[DuplicateSuspicion, ...] = ()
    kept_separate: tuple[str, ...] = Field(
        default=(), description="Golden ids a steward decided are other companies"
    )
    absorbed: tuple[str, ...] = Field(default=(), description="Golden ids merged into this one")
    merged_into: GoldenId | None = None

    @model_validator(mode="after")
    def _consistent(self) -> GoldenRecord:
        for field, state in self.fields.items():
            if state.field is not field:
                raise ValueError(f"fields[{field.value}] holds a {state.field.value} value")
            if state.source is not OWNERSHIP[field].owner:
                raise ValueError(
                    f"{field.value} is owned by {OWNERSHIP[field].owner.value}; a value from "
                    f"{state.source.value} cannot be golden"
                )
        for field, by_system in self.proposals.items():
            for system, proposal in by_system.items():
                if proposal.field is not field or proposal.system is not system:
                    raise ValueError(f"proposals[{field.value}][{system.value}] is misfiled")
        for suspicion in self.suspicions:
            if suspicion.golden_id != self.golden_id:
                raise ValueError(f"a suspicion about {suspicion.golden_id} is not this record's")
        return self

    @property
    def workflow_id(self) -> str:
        return master_workflow_id(self.golden_id)

    @property
    def state(self) -> MasterState:
        if self.merged_into is not None:
            return MasterState.MERGED
        if self.suspicions or self.open_reviews():
            return MasterState.NEEDS_REVIEW
        return MasterState.ACTIVE

    def value(self, field: MasterField) -> FieldValue:
        """The golden value of ``field`` (None when no owner has set it)."""
        state = self.fields.get(field)
        return None if state is None else state.value

    def has_seen(self, system: System, event_id: str) -> bool:
        return any(s.system is system and s.event_id == event_id for s in self.seen)

    def is_open(self, proposal: Proposal) -> bool:
        """A proposal awaits a steward while it is undecided, differs from the golden value,
        and is newer than the owner's value (a non-owner value older than the owner's last
        change is out of date, such as the echo of an earlier propagation). Source times
        of different systems are compared here: clock skew between vendors only shifts which
        proposals are shown."""
        if proposal.status is not ReviewStatus.OPEN:
            return False
        golden = self.fields.get(proposal.field)
        if equivalent(proposal.field, proposal.value, None if golden is None else golden.value):
            return False
        return golden is None or proposal.version.modified_at > golden.version.modified_at

    def open_reviews(self) -> tuple[ReviewItem, ...]:
        """Every proposal awaiting a steward, in field then system order."""
        return tuple(
            review_item(self, proposal)
            for by_system in self.proposals.values()
            for proposal in by_system.values()
            if self.is_open(proposal)
        )


def review_item(record: GoldenRecord, proposal: Proposal) -> ReviewItem:
    return ReviewItem(
        field=proposal.field,
        proposed=proposal.value,
        current=record.value(proposal.field),
        owner=OWNERSHIP[proposal.field].owner,
        system=proposal.system,
        record_id=proposal.record_id,
        event_id=proposal.event_id,
        version=proposal.version,
    )
