"""Reconciliation in windows: which records a window reads, which subjects it judges, and
what a run remembers between runs. Pure: no I/O, safe inside the workflow sandbox.

A *subject* is what drift is about: a quote (orders), a CRM account (customers) or a billing
invoice (invoices). A *window* is a time range ``[start, end)`` on one basis:

- ``changed``: the records each system changed in the window (an incremental run: from the
  last run's mark to now, less a settling lag);
- ``created``: the records each system created in the window (a full pass walks every record
  this way, window after window by creation date).

One window is read, compared and forgotten (:class:`WindowRecords`):

1. *listing*: each *source* system of the entity lists its records of the window, page by
   page (``SOURCES``); only records naming a subject are kept (the rest are not revsync's);
2. *ownership* (``created`` windows): each subject is judged once per full pass, in the
   window of its *owner*: the first system of the walk order (``SOURCES``) holding a record
   of it, at that record's creation. A subject listed first by a later system is looked up in
   the earlier ones; found there, it belongs to that system's window and is skipped here.
   ``changed`` windows judge every listed subject, except one with a record changed at or
   after the window's end: a later window (or the next run) judges it with that change;
3. *completion*: each judged subject is looked up by key in the systems that did not list it
   (batched keyed reads), and its saga by workflow id;
4. the pure rules of :mod:`domain.reconciliation` compare the judged subjects.

Customers are walked from the ERP and billing only in a ``created`` window: a customer only
the CRM holds cannot drift (nothing copies it), so a CRM account is judged from the window of
its ERP or billing customer. A ``changed`` window lists the CRM accounts too (a renamed
account is drift in the copies).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from domain.contracts import TaskQueue
from domain.reconciliation import (
    Basis,
    CustomerRecord,
    DriftItem,
    InvoiceRecord,
    InvoiceSagaState,
    OrderRecord,
    Outcome,
    ReconciliationReport,
    Remediation,
    SagaState,
    System,
    Window,
    compare_customers,
    compare_invoices,
    compare_orders,
)

RUN_WORKFLOW_TYPE = "ReconcileRun"
WINDOW_WORKFLOW_TYPE = "ReconcileWindow"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Record = OrderRecord | CustomerRecord | InvoiceRecord


class Entity(StrEnum):
    ORDERS = "orders"
    CUSTOMERS = "customers"
    INVOICES = "invoices"


ENTITIES = (Entity.ORDERS, Entity.CUSTOMERS, Entity.INVOICES)

# Systems holding each entity's records, in walk (ownership) order: the system holding a
# record of nearly every subject first, so the others rarely need a lookup to know a subject
# belongs elsewhere. Quote-to-cash books the ERP order first, then the subscription, then
# the CRM order; invoices start in billing.
SYSTEMS_OF: dict[Entity, tuple[System, ...]] = {
    Entity.ORDERS: (System.ERP, System.BILLING, System.CRM),
    Entity.CUSTOMERS: (System.ERP, System.BILLING, System.CRM),
    Entity.INVOICES: (System.BILLING, System.ERP),
}


def sources(entity: Entity, basis: Basis) -> tuple[System, ...]:
    """The systems whose window listing a window reads, in walk order."""
    if entity is Entity.CUSTOMERS and basis is Basis.CREATED:
        return (System.ERP, System.BILLING)
    return SYSTEMS_OF[entity]


# The order a window reads its sources in (ownership still follows the walk order): the
# ERP and the CRM first, as their listings say how many records the window holds on the
# first page (SuiteQL totalResults, SOQL totalSize, HubSpot total, OData counts) while
# Stripe's and Zuora's do not, so a window too big is found before billing is read at all.
_READ_FIRST = {System.ERP: 0, System.CRM: 1, System.BILLING: 2}


def read_order(entity: Entity, basis: Basis) -> tuple[System, ...]:
    return tuple(sorted(sources(entity, basis), key=_READ_FIRST.__getitem__))


def subject_of(entity: Entity, record: Record) -> str | None:
    """The quote, CRM account or invoice ``record`` is about; None: not revsync's."""
    if isinstance(record, OrderRecord):
        return record.quote_id
    if isinstance(record, CustomerRecord):
        return record.account_id or None
    return record.invoice_id or None


class WindowRecords:
    """What one window has read so far, by system and subject (in workflow memory only)."""

    def __init__(self, entity: Entity, window: Window) -> None:
        self.entity = entity
        self.window = window
        self.listed: dict[System, dict[str, list[Record]]] = {
            s: defaultdict(list) for s in SYSTEMS_OF[entity]
        }
        self.found: dict[System, dict[str, list[Record]]] = {
            s: defaultdict(list) for s in SYSTEMS_OF[entity]
        }
        self.looked: dict[System, set[str]] = {s: set() for s in SYSTEMS_OF[entity]}
        # Subjects whose saga changed in the window (``changed`` windows of orders and
        # invoices): judged like those a system listed.
        self.saga_subjects: set[str] = set()
        self.late: set[str] = set()  # subjects with a change at or after the window's end

    # -- reading --------------------------------------------------------------------------

    def add_listed(self, system: System, records: Iterable[Record]) -> int:
        """Keep the records naming a subject; how many were kept. A record listed twice
        (a vendor listing changes may list an object once per change) is kept once, as its
        latest change shows it."""
        kept = 0
        for record in records:
            subject = subject_of(self.entity, record)
            if subject is None:
                continue
            held = self.listed[system][subject]
            twin = next((i for i, r in enumerate(held) if r.record_id == record.record_id), None)
            if twin is None:
                held.append(record)
                kept += 1
            elif (record.changed_at or _EPOCH) > (held[twin].changed_at or _EPOCH):
                held[twin] = record
        return kept

    def add_found(self, system: System, asked: Iterable[str], records: Iterable[Record]) -> None:
        """What a keyed lookup in ``system`` answered for the subjects ``asked``."""
        asked = set(asked)
        self.looked[system] |= asked
        seen_ids = {r.record_id for rs in self.listed[system].values() for r in rs}
        for record in records:
            subject = subject_of(self.entity, record)
            if subject is None or subject not in asked or record.record_id in seen_ids:
                continue
            self.found[system][subject].append(record)

    def add_changed_sagas(self, subjects: Iterable[str]) -> None:
        self.saga_subjects |= set(subjects)

    def listed_count(self, system: System) -> int:
        return sum(len(v) for v in self.listed[system].values())

    def subjects(self) -> set[str]:
        found: set[str] = set(self.saga_subjects)
        for by_subject in self.listed.values():
            found |= set(by_subject)
        return found

    def held(self, system: System, subject: str) -> list[Record]:
        return [*self.listed[system].get(subject, ()), *self.found[system].get(subject, ())]

    def _known_in(self, system: System, subject: str) -> bool:
        """``system``'s records of ``subject`` are known: it listed or was asked for it."""
        return subject in self.listed[system] or subject in self.looked[system]

    # -- lookups --------------------------------------------------------------------------

    def owner_lookups(self) -> dict[System, list[str]]:
        """``created`` windows: for each subject first listed by a later system of the walk,
        the next earlier system to ask whether it holds it (if it does, the subject belongs
        to that system's window). Call again after each answer until it asks nothing.
        Nothing for ``changed`` windows."""
        if self.window.basis is not Basis.CREATED:
            return {}
        walk = sources(self.entity, self.window.basis)
        wanted: dict[System, list[str]] = {s: [] for s in walk}
        for subject in sorted(self.subjects()):
            first = next(i for i, s in enumerate(walk) if subject in self.listed[s])
            for earlier in walk[:first]:
                if self.held(earlier, subject):
                    break  # an earlier system holds it: its window judges it
                if not self._known_in(earlier, subject):
                    wanted[earlier].append(subject)
                    break
        return {s: keys for s, keys in wanted.items() if keys}

    def judged(self) -> list[str]:
        """The subjects this window judges, sorted (call after :meth:`owner_lookups` was
        answered)."""
        subjects = sorted(self.subjects())
        if self.window.basis is Basis.CHANGED:
            return [s for s in subjects if s not in self.late and not self._changed_late(s)]
        walk = sources(self.entity, self.window.basis)
        judged: list[str] = []
        for subject in subjects:
            owner = next((s for s in walk if self.held(s, subject)), None)
            if owner is None:
                continue
            created = [r.created_at for r in self.held(owner, subject)]
            first = min((c for c in created if c is not None), default=None)
            # Owned here when the owner's first record of it was created in the window.
            if (first is None or self.window.contains(first)) and subject in self.listed[owner]:
                judged.append(subject)
        return judged

    def _changed_late(self, subject: str) -> bool:
        end = self.window.end
        return any(
            r.changed_at is not None and r.changed_at >= end
            for system in self.listed
            for r in self.held(system, subject)
        )

    def completion_lookups(self, judged: Iterable[str]) -> dict[System, list[str]]:
        """For the judged subjects, the systems to read them from by key: every system of
        the entity that neither listed them nor was asked yet."""
        wanted: dict[System, list[str]] = {s: [] for s in SYSTEMS_OF[self.entity]}
        for subject in judged:
            for system in SYSTEMS_OF[self.entity]:
                if not self._known_in(system, subject):
                    wanted[system].append(subject)
        return {s: keys for s, keys in wanted.items() if keys}

    def records_of(self, subjects: Iterable[str]) -> list[Record]:
        return [
            r
            for subject in subjects
            for s in SYSTEMS_OF[self.entity]
            for r in self.held(s, subject)
        ]

    def note_late_saga(self, subject: str) -> None:
        """The subject's saga changed at or after the window's end (``changed`` windows)."""
        self.late.add(subject)


class Judgement(BaseModel):
    """What comparing one window's judged subjects found."""

    items: list[DriftItem]
    subjects: int = Field(description="Quotes, linked customers or invoices judged")
    in_flight: int = 0


def judge(
    entity: Entity,
    records: Iterable[Record],
    sagas: Mapping[str, SagaState],
    invoice_sagas: Mapping[str, InvoiceSagaState],
    *,
    as_of: datetime,
) -> Judgement:
    """The rules of :mod:`domain.reconciliation` on one window's judged subjects."""
    if entity is Entity.ORDERS:
        orders = compare_orders(
            [r for r in records if isinstance(r, OrderRecord)], sagas, as_of=as_of
        )
        return Judgement(items=orders.items, subjects=orders.quotes, in_flight=orders.in_flight)
    if entity is Entity.CUSTOMERS:
        customers = [r for r in records if isinstance(r, CustomerRecord)]
        linked = {c.account_id for c in customers if c.account_id and c.system is not System.CRM}
        return Judgement(items=compare_customers(customers), subjects=len(linked))
    invoices = compare_invoices(
        [r for r in records if isinstance(r, InvoiceRecord)], invoice_sagas, as_of=as_of
    )
    return Judgement(items=invoices.items, subjects=invoices.invoices, in_flight=invoices.in_flight)


def latest_saga(found: Iterable[SagaState]) -> dict[str, SagaState]:
    """One saga per quote: the running one, else the one that changed last."""
    best: dict[str, SagaState] = {}
    for saga in found:
        held = best.get(saga.quote_id)
        if held is None or _newer(saga.running, saga.changed_at, held.running, held.changed_at):
            best[saga.quote_id] = saga
    return best


def latest_invoice_saga(found: Iterable[InvoiceSagaState]) -> dict[str, InvoiceSagaState]:
    best: dict[str, InvoiceSagaState] = {}
    for saga in found:
        held = best.get(saga.invoice_id)
        if held is None or _newer(saga.running, saga.changed_at, held.running, held.changed_at):
            best[saga.invoice_id] = saga
    return best


def _newer(
    running: bool, changed: datetime | None, held_running: bool, held_changed: datetime | None
) -> bool:
    if running != held_running:
        return running
    return changed is not None and (held_changed is None or changed > held_changed)


# -- what a window and a run carry ------------------------------------------------------


class WindowOutcome(StrEnum):
    DONE = "done"
    TOO_BIG = "too_big"  # a system listed more than the window may hold: split it
    INCOMPLETE = "incomplete"  # a system could not be read: nothing compared or repaired


class WindowInput(BaseModel):
    """One window to read, compare and repair (the input of ``ReconcileWindow``)."""

    model_config = ConfigDict(frozen=True)

    run_id: str = Field(description="The run's id: the report's name, the repairs' request ids")
    entity: Entity
    window: Window
    as_of: datetime = Field(description="When the run started: sagas are judged as of then")
    page_size: int = Field(default=200, ge=1, le=2000)
    lookup_batch: int = Field(default=200, ge=1, le=1000, description="Keys per keyed read")
    max_records: int = Field(
        default=5_000, ge=1, description="Records one system may list in the window"
    )
    read_whole: bool = Field(
        default=False, description="Read past max_records (a window that cannot be split)"
    )
    max_items_per_kind: int = Field(default=50, ge=1)
    item_room: dict[str, int] = Field(
        default_factory=dict,
        description="Items of each kind the run still keeps (absent: max_items_per_kind): a "
        "window returns no more, so the run's history stays small whatever the drift",
    )
    max_repairs: int = Field(default=100, ge=0, description="Repairs left to the run")
    read_budget_seconds: float = Field(
        default=1800, gt=0, description="How long one read retries before the window gives up"
    )


class WindowResult(BaseModel):
    """What a window found: its counts and first items, never its records."""

    entity: Entity
    window: Window
    outcome: WindowOutcome
    error: str | None = None
    listed: int = Field(
        default=0, description="Most records one system listed (or held, when too big)"
    )
    repairs: int = Field(default=0, description="Repairs made or attempted")
    rows: int = Field(default=0, description="Report rows written to the report store")
    report: ReconciliationReport


class EntityMarks(BaseModel):
    """How far reconciliation has compared one entity, kept between runs."""

    changed: datetime | None = Field(
        default=None, description="Every change before this was compared (the high-water mark)"
    )
    full_started: datetime | None = Field(
        default=None, description="When the full pass in progress started (None: none is)"
    )
    full_cursor: datetime | None = Field(
        default=None, description="The pass in progress compared every record created before"
    )
    full_done: datetime | None = Field(
        default=None, description="When the last completed full pass started"
    )


class Marks(BaseModel):
    """Every entity's marks: what ``reconcile.load_marks`` answers."""

    entities: dict[Entity, EntityMarks] = Field(default_factory=dict)

    def of(self, entity: Entity) -> EntityMarks:
        return self.entities.get(entity) or EntityMarks()


class RunMode(StrEnum):
    AUTO = "auto"  # incremental, and a full pass when one is due or in progress
    INCREMENTAL = "incremental"
    FULL = "full"  # a new full pass now (and the incremental part)


class RunInput(BaseModel):
    """What a ``ReconcileRun`` is started with (the Schedule's action holds one)."""

    model_config = ConfigDict(frozen=True)

    mode: RunMode = RunMode.AUTO
    page_size: int = Field(default=200, ge=1, le=2000, description="Records per listing call")
    lookup_batch: int = Field(default=200, ge=1, le=1000, description="Keys per keyed read")
    max_items_per_kind: int = Field(
        default=50, ge=1, description="Items of each kind kept in the run's result"
    )
    max_repairs: int = Field(default=100, ge=0, description="Repairs one run makes")
    window_records: int = Field(
        default=5_000,
        ge=2,
        description="Records one system may list in one window; windows are sized to half",
    )
    settle_seconds: int = Field(
        default=300,
        ge=0,
        description="Windows end this long before the run started: records still being "
        "written, and search indexes (Stripe's lags up to a minute), settle first",
    )
    full_every_hours: float = Field(
        default=168, gt=0, description="A full pass starts when the last one is this old"
    )
    full_since: datetime = Field(
        default=datetime(2000, 1, 1, tzinfo=UTC),
        description="A full pass walks records created from then on",
    )
    first_span_seconds: int = Field(
        default=7 * 86_400, ge=1, description="The first created window of a full pass"
    )
    read_budget_seconds: float = Field(
        default=1800, gt=0, description="How long one read retries before its window gives up"
    )
    continue_after_events: int = Field(
        default=4_000, ge=50, description="The run continues as new past this many events"
    )
    entities: tuple[Entity, ...] = ENTITIES
    carry: RunCarry | None = Field(default=None, description="Set on continue-as-new only")


class Progress(BaseModel):
    """Where one entity's walk is in a run."""

    basis: Basis
    cursor: datetime
    end: datetime
    span_seconds: int
    done: bool = False


class RunCarry(BaseModel):
    """What a run carries into its next run on continue-as-new: bounded, whatever the
    number of records."""

    run_id: str
    as_of: datetime
    full: list[Entity] = Field(default_factory=list, description="Entities with a full pass")
    marks: Marks
    progress: dict[str, Progress] = Field(default_factory=dict)
    repairs: int = 0
    windows: int = 0
    report: ReconciliationReport


def progress_key(entity: Entity, basis: Basis) -> str:
    return f"{entity.value}:{basis.value}"


RunInput.model_rebuild()

# -- sizing windows ---------------------------------------------------------------------


def next_span(span_seconds: int, listed: int, target: int) -> int:
    """The next window's span after one that listed ``listed`` records: aimed at ``target``
    records, at most four times longer, at least a quarter (at least a second)."""
    if listed <= 0:
        return span_seconds * 4
    wanted = int(span_seconds * target / listed)
    return max(1, min(span_seconds * 4, max(span_seconds // 4, wanted)))


def split_span(span_seconds: int, held: int, target: int) -> int:
    """A span for retrying a window that held ``held`` records (more than allowed)."""
    wanted = int(span_seconds * target / max(held, 1))
    return max(1, min(span_seconds // 2, wanted))


def full_due(marks: EntityMarks, as_of: datetime, every: timedelta) -> bool:
    """A full pass is due: none ever completed (so no mark to be incremental from), one is
    in progress, or the last one is ``every`` old."""
    if marks.full_started is not None:
        return True
    return marks.full_done is None or as_of - marks.full_done >= every


# -- merging a window's report into the run's -------------------------------------------


def merge(run: ReconciliationReport, window: ReconciliationReport, max_items_per_kind: int) -> None:
    """Add ``window``'s counts to ``run`` and keep its items up to ``max_items_per_kind``
    of each kind (the rest counted in ``omitted``)."""
    for name, n in window.scanned.items():
        run.scanned[name] = run.scanned.get(name, 0) + n
    run.pages += window.pages
    run.quotes += window.quotes
    run.in_flight += window.in_flight
    run.customers += window.customers
    run.invoices += window.invoices
    run.invoices_in_flight += window.invoices_in_flight
    for kind, n in window.counts.items():
        run.counts[kind] = run.counts.get(kind, 0) + n
    for remediation, n in window.remediations.items():
        run.remediations[remediation] = run.remediations.get(remediation, 0) + n
    for outcome, n in window.outcomes.items():
        run.outcomes[outcome] = run.outcomes.get(outcome, 0) + n
    kept: dict[object, int] = defaultdict(int)
    for item in run.items:
        kept[item.kind] += 1
    for item in window.items:
        if kept[item.kind] < max_items_per_kind:
            kept[item.kind] += 1
            run.items.append(item)
    run.omitted = sum(run.counts.values()) - len(run.items)


__all__ = [
    "ENTITIES",
    "RUN_WORKFLOW_TYPE",
    "WINDOW_WORKFLOW_TYPE",
    "Entity",
    "EntityMarks",
    "Judgement",
    "Marks",
    "Outcome",
    "Progress",
    "Record",
    "Remediation",
    "RunCarry",
    "RunInput",
    "RunMode",
    "WindowInput",
    "WindowOutcome",
    "WindowRecords",
    "WindowResult",
    "judge",
    "latest_invoice_saga",
    "latest_saga",
    "merge",
    "next_span",
    "read_order",
    "sources",
    "split_span",
    "subject_of",
]


# -- what the window workflow calls ------------------------------------------------------


class ListWindow(BaseModel):
    """One page of a window listing: ``cursor`` from the previous page (None: the first)."""

    model_config = ConfigDict(frozen=True)

    window: Window
    cursor: str | None = None
    page_size: int = Field(default=200, ge=1, le=2000)


class Lookup(BaseModel):
    """A keyed read: every record of these subjects (quote, account or invoice ids)."""

    model_config = ConfigDict(frozen=True)

    keys: list[str] = Field(max_length=1000)


class WindowActivity:
    """Registered names of the window reads, and the report store's activities."""

    CRM_LIST_ORDERS = "crm.list_orders_in"
    CRM_LOOKUP_ORDERS = "crm.lookup_orders"
    CRM_LIST_ACCOUNTS = "crm.list_accounts_in"
    CRM_LOOKUP_ACCOUNTS = "crm.lookup_accounts"
    ERP_LIST_SALES_ORDERS = "erp.list_sales_orders_in"
    ERP_LOOKUP_SALES_ORDERS = "erp.lookup_sales_orders"
    ERP_LIST_CUSTOMERS = "erp.list_customers_in"
    ERP_LOOKUP_CUSTOMERS = "erp.lookup_customers"
    ERP_LIST_RECEIVABLES = "erp.list_receivables_in"
    ERP_LOOKUP_RECEIVABLES = "erp.lookup_receivables"
    BILLING_LIST_SUBSCRIPTIONS = "billing.list_subscriptions_in"
    BILLING_LOOKUP_SUBSCRIPTIONS = "billing.lookup_subscriptions"
    BILLING_LIST_CUSTOMERS = "billing.list_customers_in"
    BILLING_LOOKUP_CUSTOMERS = "billing.lookup_customers"
    BILLING_LIST_INVOICES = "billing.list_invoices_in"
    BILLING_LOOKUP_INVOICES = "billing.lookup_invoices"
    LIST_QUOTE_SAGAS = "temporal.list_quote_sagas_in"
    LOOKUP_QUOTE_SAGAS = "temporal.lookup_quote_sagas"
    LIST_INVOICE_SAGAS = "temporal.list_invoice_sagas_in"
    LOOKUP_INVOICE_SAGAS = "temporal.lookup_invoice_sagas"
    LOAD_MARKS = "reconcile.load_marks"
    SAVE_PROGRESS = "reconcile.save_progress"
    WRITE_ROWS = "reconcile.write_rows"


class Reads(BaseModel):
    """The window listing and the keyed lookup of one entity in one system."""

    model_config = ConfigDict(frozen=True)

    listing: str
    lookup: str
    queue: str


def reads(entity: Entity, system: System) -> Reads:
    name = {
        (Entity.ORDERS, System.CRM): ("CRM_LIST_ORDERS", "CRM_LOOKUP_ORDERS"),
        (Entity.ORDERS, System.ERP): ("ERP_LIST_SALES_ORDERS", "ERP_LOOKUP_SALES_ORDERS"),
        (Entity.ORDERS, System.BILLING): (
            "BILLING_LIST_SUBSCRIPTIONS",
            "BILLING_LOOKUP_SUBSCRIPTIONS",
        ),
        (Entity.CUSTOMERS, System.CRM): ("CRM_LIST_ACCOUNTS", "CRM_LOOKUP_ACCOUNTS"),
        (Entity.CUSTOMERS, System.ERP): ("ERP_LIST_CUSTOMERS", "ERP_LOOKUP_CUSTOMERS"),
        (Entity.CUSTOMERS, System.BILLING): ("BILLING_LIST_CUSTOMERS", "BILLING_LOOKUP_CUSTOMERS"),
        (Entity.INVOICES, System.ERP): ("ERP_LIST_RECEIVABLES", "ERP_LOOKUP_RECEIVABLES"),
        (Entity.INVOICES, System.BILLING): ("BILLING_LIST_INVOICES", "BILLING_LOOKUP_INVOICES"),
    }[(entity, system)]
    queue = {
        System.CRM: TaskQueue.CRM,
        System.ERP: TaskQueue.ERP,
        System.BILLING: TaskQueue.BILLING,
    }
    return Reads(
        listing=getattr(WindowActivity, name[0]),
        lookup=getattr(WindowActivity, name[1]),
        queue=queue[system],
    )


def scanned_name(entity: Entity, system: System) -> str:
    """The report's ``scanned`` key of a listing (the names of the old report's phases)."""
    return {
        (Entity.ORDERS, System.CRM): "crm",
        (Entity.ORDERS, System.ERP): "erp",
        (Entity.ORDERS, System.BILLING): "billing",
        (Entity.CUSTOMERS, System.CRM): "crm_accounts",
        (Entity.CUSTOMERS, System.ERP): "erp_customers",
        (Entity.CUSTOMERS, System.BILLING): "billing_customers",
        (Entity.INVOICES, System.BILLING): "billing_invoices",
        (Entity.INVOICES, System.ERP): "erp_receivables",
    }[(entity, system)]


class SaveProgress(BaseModel):
    """The run's marks and its report so far, written after every window (its items only
    at the end: the rows are in the store already, and the run's history stays small)."""

    run_id: str
    marks: Marks
    report: ReconciliationReport


class WriteRows(BaseModel):
    """Report rows of one window (a chunk of them): written again, they replace themselves."""

    run_id: str
    part: str
    items: list[DriftItem]
