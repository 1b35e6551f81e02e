"""Shadow mode: what revsync would have written, recorded instead of written.

A vendor in shadow mode (``REVSYNC_<VENDOR>_MODE=shadow``) is read as usual, but every call
that would change it is recorded by the gate (``adapters/shadow/gate.py``) as a
:class:`RecordedWrite`: the operation, its target, the field-level difference against the
target as read at that moment, the idempotency key and why (the saga and its step). The saga
gets a result shaped like the real one, carrying a synthetic id (:func:`synthetic_id`), and
runs on.

This module holds the models and the pure rules: synthetic ids, field differences, the report
(per saga and in aggregate) and the comparison with the integration already in place. No I/O:
safe inside the workflow sandbox.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SHADOW_PREFIX = "shadow:"

Json = Any
"""A JSON value (what ``model_dump(mode="json")`` makes)."""


class Mode(StrEnum):
    """Whether revsync writes to a vendor (``live``) or records what it would write."""

    LIVE = "live"
    SHADOW = "shadow"


def synthetic_id(vendor: str, operation: str, key: str) -> str:
    """The id a shadow write returns in place of the vendor's: stable for one vendor,
    operation and idempotency key (a retried step gets the same one), and marked as shadow so
    no one takes it for a vendor's id: ``shadow:<vendor>:<16 hex digits>``."""
    digest = hashlib.sha256(f"{vendor}\0{operation}\0{key}".encode()).hexdigest()[:16]
    return f"{SHADOW_PREFIX}{vendor}:{digest}"


def is_synthetic(value: object) -> bool:
    return isinstance(value, str) and value.startswith(SHADOW_PREFIX)


def vendor_of(synthetic: str) -> str:
    """The vendor a synthetic id was made for."""
    return synthetic.removeprefix(SHADOW_PREFIX).partition(":")[0]


def synthetic_ids(value: Json) -> list[str]:
    """Every synthetic id in a JSON value, in order of appearance, once each."""
    found: list[str] = []

    def walk(node: Json) -> None:
        if is_synthetic(node):
            if node not in found:
                found.append(node)
        elif isinstance(node, Mapping):
            for item in node.values():
                walk(item)
        elif isinstance(node, list | tuple):
            for item in node:
                walk(item)

    walk(value)
    return found


def substitute(value: Json, ids: Mapping[str, str]) -> Json:
    """``value`` with every string equal to a key of ``ids`` replaced by its value."""
    if isinstance(value, str):
        return ids.get(value, value)
    if isinstance(value, Mapping):
        return {k: substitute(v, ids) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [substitute(v, ids) for v in value]
    return value


def shadow_note(workflow_id: str, ids: Iterable[str | None]) -> str | None:
    """The line a saga's page in the Web UI shows when some of its records are synthetic
    (written in shadow mode: recorded, not made); None when none is."""
    vendors = sorted({vendor_of(i) for i in ids if i is not None and is_synthetic(i)})
    if not vendors:
        return None
    return (
        f"**Shadow mode:** the {', '.join(vendors)} writes of this saga were recorded, not "
        f"made (ids `shadow:...`); see `revsync shadow report --saga {workflow_id}` or "
        f"`GET /v1/ops/shadow/sagas/{workflow_id}`"
    )


class Effect(StrEnum):
    """What the write would have done to its target."""

    CREATE = "create"  # no record: the write makes one
    UPDATE = "update"  # the record exists (or cannot be read): the write changes it
    NOOP = "noop"  # the record already is what the write would make it


class ChangeState(StrEnum):
    ADDED = "added"  # the target has no value (or no record): the write sets it
    CHANGED = "changed"  # the target holds another value
    UNCHANGED = "unchanged"  # the target holds this value already
    UNREAD = "unread"  # the port has no read of the target: the value is what would be sent


class FieldChange(BaseModel):
    model_config = ConfigDict(frozen=True)

    field: str
    before: Json = None
    after: Json = None
    state: ChangeState


class RefusalSource(StrEnum):
    VENDOR = "vendor"  # the vendor's own validate-only call refused it
    RULE = "rule"  # a rule of the port's contract refuses it (e.g. paying a paid receivable)


class PredictedRefusal(BaseModel):
    model_config = ConfigDict(frozen=True)

    source: RefusalSource
    code: str
    message: str


class Target(BaseModel):
    """The record a write is about. ``read`` says whether its state was read before the
    write was planned (False where the port has no read of it)."""

    model_config = ConfigDict(frozen=True)

    kind: str = Field(description="account, quote, order, customer, sales_order, ...")
    key: str | None = Field(default=None, description="revsync's key of the record, if any")
    record_id: str | None = Field(default=None, description="The vendor's id, when known")
    read: bool = False


class Why(BaseModel):
    """The saga and step a write belongs to (from the activity running it)."""

    model_config = ConfigDict(frozen=True)

    workflow_id: str | None = None
    workflow_type: str | None = None
    step: str | None = Field(
        default=None, description="The activity type, e.g. erp.book_sales_order"
    )
    attempt: int | None = None


class RecordedWrite(BaseModel):
    """One write revsync would have made to a vendor in shadow mode."""

    model_config = ConfigDict(frozen=True)

    write_id: str = Field(description="synthetic_id(vendor, operation, idempotency key)")
    vendor: str
    port: str = Field(description="crm, billing or erp")
    operation: str = Field(description="The port method, e.g. create_sales_order")
    idempotency_key: str
    target: Target
    effect: Effect
    changes: list[FieldChange] = Field(default_factory=list)
    refusals: list[PredictedRefusal] = Field(default_factory=list)
    why: Why = Field(default_factory=Why)
    recorded_at: datetime
    arguments: dict[str, Json] = Field(description="The call, as JSON: replayed on request")
    result: Json = Field(default=None, description="What the saga was given, as JSON")
    result_id: str | None = Field(
        default=None, description="The record id in the result (synthetic for a create)"
    )
    depends_on: list[str] = Field(
        default_factory=list, description="Synthetic ids the call's arguments carry"
    )
    held_back: bool = Field(
        default=False,
        description="Recorded although the vendor is live: it depends on a shadow write of "
        "another vendor; replaying the saga writes it",
    )
    materialized_id: str | None = Field(
        default=None, description="The vendor's id once the write was made live"
    )
    materialized_at: datetime | None = None

    @property
    def refused(self) -> bool:
        return bool(self.refusals)


def _canonical(value: Json) -> str:
    if isinstance(value, str):
        try:
            return format(Decimal(value).normalize(), "f")
        except ArithmeticError:
            return " ".join(value.split())
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return format(Decimal(str(value)).normalize(), "f")
    if isinstance(value, Mapping):
        return json.dumps({k: _canonical(v) for k, v in value.items()}, sort_keys=True)
    if isinstance(value, list | tuple):
        return json.dumps([_canonical(v) for v in value])
    return json.dumps(value)


def same_value(a: Json, b: Json) -> bool:
    """Whether two JSON values say the same: numbers by value (``100.00`` is ``100``),
    strings ignoring repeated blanks, objects and lists member by member."""
    if a is None or b is None:
        return a is None and b is None
    return _canonical(a) == _canonical(b)


def field_changes(
    after: Mapping[str, Json],
    before: Mapping[str, Json] | None,
    *,
    read: bool,
    equal: Mapping[str, bool] | None = None,
    unread: Collection[str] = (),
) -> list[FieldChange]:
    """The difference between what a write sets (``after``) and the target as read
    (``before``; None: no record). ``read`` False: the target was not read, every value is
    ``unread``. ``equal`` overrides the comparison of some fields (equivalent values of a
    customer field, judged by the customer master's rules); ``unread`` names fields the read
    does not carry."""
    changes: list[FieldChange] = []
    for name in sorted(after):
        value = after[name]
        if not read or name in unread:
            changes.append(FieldChange(field=name, after=value, state=ChangeState.UNREAD))
            continue
        old = None if before is None else before.get(name)
        if before is None or (old is None and value is not None):
            state = ChangeState.ADDED if value is not None else ChangeState.UNCHANGED
        else:
            same = (equal or {}).get(name)
            if same is None:
                same = same_value(old, value)
            state = ChangeState.UNCHANGED if same else ChangeState.CHANGED
        changes.append(FieldChange(field=name, before=old, after=value, state=state))
    return changes


def effect_of(changes: Iterable[FieldChange], *, exists: bool) -> Effect:
    """Create when there is no record; no-op when every value is there already."""
    if not exists:
        return Effect.CREATE
    changes = list(changes)
    if changes and all(c.state is ChangeState.UNCHANGED for c in changes):
        return Effect.NOOP
    return Effect.UPDATE


# -- the report ---------------------------------------------------------------------------


class Tally(BaseModel):
    """Counts of recorded writes."""

    writes: int = 0
    creates: int = 0
    updates: int = 0
    noops: int = 0
    refusals: int = Field(default=0, description="Writes the vendor or a rule would refuse")
    vendor_refusals: int = Field(default=0, description="Of those, by a validate-only call")
    held_back: int = 0
    replayed: int = Field(default=0, description="Made live since (replayed or carried over)")

    def add(self, write: RecordedWrite) -> None:
        self.writes += 1
        if write.effect is Effect.CREATE:
            self.creates += 1
        elif write.effect is Effect.UPDATE:
            self.updates += 1
        else:
            self.noops += 1
        if write.refusals:
            self.refusals += 1
        if any(r.source is RefusalSource.VENDOR for r in write.refusals):
            self.vendor_refusals += 1
        if write.held_back:
            self.held_back += 1
        if write.materialized_id is not None or write.materialized_at is not None:
            self.replayed += 1


class SagaShadow(BaseModel):
    """Every write one saga would have made, in the order it would have made them."""

    workflow_id: str
    workflow_type: str | None = None
    tally: Tally
    writes: list[RecordedWrite]


class ShadowReport(BaseModel):
    """The aggregate: per vendor and operation, and per saga."""

    total: Tally
    by_vendor: dict[str, Tally]
    by_operation: dict[str, Tally] = Field(description="'<vendor>.<operation>' -> counts")
    sagas: dict[str, Tally] = Field(description="workflow id -> counts")
    comparison: ComparisonReport | None = None


def saga_shadow(workflow_id: str, writes: Iterable[RecordedWrite]) -> SagaShadow:
    mine = sorted(
        (w for w in writes if w.why.workflow_id == workflow_id), key=lambda w: w.recorded_at
    )
    tally = Tally()
    for write in mine:
        tally.add(write)
    kind = next((w.why.workflow_type for w in mine if w.why.workflow_type), None)
    return SagaShadow(workflow_id=workflow_id, workflow_type=kind, tally=tally, writes=mine)


def report(
    writes: Iterable[RecordedWrite], comparison: ComparisonReport | None = None
) -> ShadowReport:
    total = Tally()
    by_vendor: dict[str, Tally] = defaultdict(Tally)
    by_operation: dict[str, Tally] = defaultdict(Tally)
    sagas: dict[str, Tally] = defaultdict(Tally)
    for write in writes:
        total.add(write)
        by_vendor[write.vendor].add(write)
        by_operation[f"{write.vendor}.{write.operation}"].add(write)
        sagas[write.why.workflow_id or "(outside a saga)"].add(write)
    return ShadowReport(
        total=total,
        by_vendor=dict(sorted(by_vendor.items())),
        by_operation=dict(sorted(by_operation.items())),
        sagas=dict(sorted(sagas.items())),
        comparison=comparison,
    )


CSV_COLUMNS = (
    "recorded_at",
    "workflow_id",
    "workflow_type",
    "step",
    "vendor",
    "operation",
    "effect",
    "target_kind",
    "target_key",
    "target_id",
    "idempotency_key",
    "changed_fields",
    "refusals",
    "held_back",
    "materialized_id",
)


def csv_row(write: RecordedWrite) -> list[str]:
    """One write as a row of :data:`CSV_COLUMNS`."""
    changed = [
        f"{c.field}:{c.state.value}" for c in write.changes if c.state is not ChangeState.UNCHANGED
    ]
    return [
        write.recorded_at.isoformat(),
        write.why.workflow_id or "",
        write.why.workflow_type or "",
        write.why.step or "",
        write.vendor,
        write.operation,
        write.effect.value,
        write.target.kind,
        write.target.key or "",
        write.target.record_id or "",
        write.idempotency_key,
        " ".join(changed),
        " | ".join(f"{r.source.value} {r.code}: {r.message}" for r in write.refusals),
        "yes" if write.held_back else "",
        write.materialized_id or "",
    ]


# -- compared with the integration already in place -----------------------------------------


class Verdict(StrEnum):
    SAME = "same"  # the existing integration wrote what revsync would have
    DIFFERENT = "different"  # it wrote the record, with other values in some fields
    EXISTING_ONLY = "existing_only"  # it wrote a record where revsync would write nothing
    REVSYNC_ONLY = "revsync_only"  # revsync would write a record it did not write


class ObservedRecord(BaseModel):
    """A record the existing integration wrote, as the comparison reads it: which object,
    which business subject it is for (the quote, the invoice, the customer), and the
    fields revsync also writes, as JSON (customer fields as fingerprints)."""

    model_config = ConfigDict(frozen=True)

    vendor: str
    object: str = Field(description="sales_order, subscription, crm_order, receivable, customer")
    subject: str = Field(description="quote id, invoice id or CRM account id")
    record_id: str
    fields: dict[str, Json]


class Expected(BaseModel):
    """What revsync would have written to one object for one subject, from its recordings."""

    model_config = ConfigDict(frozen=True)

    vendor: str
    object: str
    subject: str
    workflow_id: str | None
    write_id: str
    fields: dict[str, Json]


class ComparedItem(BaseModel):
    model_config = ConfigDict(frozen=True)

    vendor: str
    object: str
    subject: str
    verdict: Verdict
    record_id: str | None = None
    write_id: str | None = None
    differing: list[str] = Field(default_factory=list)


class FieldRate(BaseModel):
    compared: int = 0
    equal: int = 0

    @property
    def rate(self) -> float | None:
        return None if self.compared == 0 else self.equal / self.compared


class ObjectRate(BaseModel):
    compared: int = 0
    same: int = 0
    different: int = 0
    existing_only: int = 0
    revsync_only: int = 0
    fields: dict[str, FieldRate] = Field(default_factory=dict)

    @property
    def match_rate(self) -> float | None:
        """Records where revsync would have written the same, of every record either wrote."""
        return None if self.compared == 0 else self.same / self.compared


class ComparisonReport(BaseModel):
    """One comparison run: match rate per object and per field, and every item."""

    compared_at: datetime
    settled_before: datetime = Field(
        description="Recordings newer than this were left for the next run (the existing "
        "integration may not have written yet)"
    )
    objects: dict[str, ObjectRate] = Field(description="'<vendor>.<object>' -> rates")
    items: list[ComparedItem]
    not_comparable: dict[str, int] = Field(
        default_factory=dict,
        description="'<vendor>.<operation>' -> recorded writes whose target no listing shows "
        "(statuses, journals, payments)",
    )


def compare(
    expected: Iterable[Expected],
    observed: Iterable[ObservedRecord],
    *,
    subjects_seen: set[tuple[str, str]],
    compared_at: datetime,
    settled_before: datetime,
    not_comparable: Mapping[str, int] | None = None,
) -> ComparisonReport:
    """Judge each object revsync would have written against the record the existing
    integration wrote for the same subject (same vendor, object and quote, invoice or
    customer). ``subjects_seen`` is every (object, subject) revsync saw a trigger for: an
    existing record of another subject was written for a trigger revsync never saw, and is
    left out."""
    mine: dict[tuple[str, str, str], Expected] = {}
    for item in expected:
        mine.setdefault((item.vendor, item.object, item.subject), item)
    theirs: dict[tuple[str, str, str], list[ObservedRecord]] = defaultdict(list)
    for record in observed:
        theirs[(record.vendor, record.object, record.subject)].append(record)
    rates: dict[str, ObjectRate] = defaultdict(ObjectRate)
    items: list[ComparedItem] = []
    for key in sorted(set(mine) | set(theirs)):
        vendor, obj, subject = key
        if key not in mine and (obj, subject) not in subjects_seen:
            continue
        rate = rates[f"{vendor}.{obj}"]
        rate.compared += 1
        want = mine.get(key)
        found = sorted(theirs.get(key, []), key=lambda r: r.record_id)
        if want is None:
            rate.existing_only += 1
            items.append(
                ComparedItem(
                    vendor=vendor,
                    object=obj,
                    subject=subject,
                    verdict=Verdict.EXISTING_ONLY,
                    record_id=found[0].record_id,
                )
            )
            continue
        if not found:
            rate.revsync_only += 1
            items.append(
                ComparedItem(
                    vendor=vendor,
                    object=obj,
                    subject=subject,
                    verdict=Verdict.REVSYNC_ONLY,
                    write_id=want.write_id,
                )
            )
            continue
        record = found[0]
        differing: list[str] = []
        for name, value in sorted(want.fields.items()):
            if name not in record.fields:
                continue
            field_rate = rate.fields.setdefault(name, FieldRate())
            field_rate.compared += 1
            if same_value(value, record.fields[name]):
                field_rate.equal += 1
            else:
                differing.append(name)
        verdict = Verdict.DIFFERENT if differing else Verdict.SAME
        if differing:
            rate.different += 1
        else:
            rate.same += 1
        items.append(
            ComparedItem(
                vendor=vendor,
                object=obj,
                subject=subject,
                verdict=verdict,
                record_id=record.record_id,
                write_id=want.write_id,
                differing=differing,
            )
        )
    return ComparisonReport(
        compared_at=compared_at,
        settled_before=settled_before,
        objects=dict(sorted(rates.items())),
        items=items,
        not_comparable=dict(sorted((not_comparable or {}).items())),
    )


def verdict_counts(report: ComparisonReport) -> Counter[Verdict]:
    return Counter(item.verdict for item in report.items)


# -- the workflows' contracts (workflows/shadow.py, activities/shadow.py) -------------------

REPLAY_WORKFLOW = "ShadowReplay"
COMPARISON_WORKFLOW = "ShadowComparison"


def replay_workflow_id(saga_workflow_id: str) -> str:
    """The replay of one saga's recorded writes: one at a time per saga."""
    return f"shadow-replay-{saga_workflow_id}"


def comparison_workflow_id(at: datetime) -> str:
    return f"shadow-compare-{at.strftime('%Y%m%dT%H%M%S')}"


class ShadowActivity:
    """Registered names of shadow mode's activities, one of each on every vendor queue
    (the name's prefix is the queue)."""

    @staticmethod
    def materialize(queue: str) -> str:
        return f"{queue}.shadow_materialize"

    @staticmethod
    def observe(queue: str) -> str:
        return f"{queue}.shadow_observe"


class ReplayItem(BaseModel):
    model_config = ConfigDict(frozen=True)

    write_id: str
    port: str = Field(description="crm, billing or erp: the queue that makes it live")
    operation: str


class ReplayInput(BaseModel):
    """An operator's request to make one saga's recorded writes live, in recorded order."""

    model_config = ConfigDict(frozen=True)

    saga_workflow_id: str
    writes: list[ReplayItem]
    requested_by: str
    note: str


class MaterializeWrite(BaseModel):
    model_config = ConfigDict(frozen=True)

    write_id: str


class ReplayOutcome(StrEnum):
    MADE = "made"  # written live now, under its recorded key
    ALREADY = "already"  # made live before (by the saga itself, or an earlier replay)
    STILL_SHADOW = "still_shadow"  # its vendor is still in shadow mode: left recorded
    WAITING = "waiting"  # depends on a write of a vendor not live yet: left recorded
    MISSING = "missing"  # not in this deployment's store


class Materialized(BaseModel):
    model_config = ConfigDict(frozen=True)

    write_id: str
    outcome: ReplayOutcome
    record_id: str | None = None
    detail: str | None = None


class ReplayResult(BaseModel):
    saga_workflow_id: str
    requested_by: str
    note: str
    items: list[Materialized]

    def counts(self) -> dict[str, int]:
        return dict(Counter(i.outcome.value for i in self.items))


class ObserveRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    settled_before: datetime


class Observation(BaseModel):
    """One vendor's side of a comparison: what revsync would have written to it (recorded
    before ``settled_before``) and what its listings show for the same subjects."""

    vendor: str | None = None
    shadow: bool = Field(default=False, description="The vendor is in shadow mode")
    expected: list[Expected] = Field(default_factory=list)
    observed: list[ObservedRecord] = Field(default_factory=list)
    subjects_seen: list[tuple[str, str]] = Field(default_factory=list)
    not_comparable: dict[str, int] = Field(default_factory=dict)


class CompareInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    after: timedelta = Field(description="How old a recording must be to be judged")


ShadowReport.model_rebuild()
