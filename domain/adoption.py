"""Adoption: what already exists in the CRM, billing and ERP, sorted into a ledger before
revsync takes it over (docs/adoption.md). Pure rules, no I/O: safe inside the workflow
sandbox; the adoption workflow (``workflows/adoption.py``) feeds them what the ports list.

**Customers.** The golden id is the CRM account id. Every ERP and billing customer is linked
to an account by, in this order:

1. an existing cross-reference (the ERP external id ``acct-<account>``, Stripe's
   ``metadata.revsync_account_id``...: what the port's listing reports as the record's
   account): *matched*;
2. a strong key, tried in this order, the first one that finds anything deciding: the tax id
   (normalised), the domain (of the website), the billing e-mail, the exact normalised legal
   name. One account: *matched by strong key* (the key is named); several: *ambiguous* (never
   linked automatically); a record whose one account is already linked to another record of
   the same system is a duplicate: *ambiguous* too;
3. nothing: *orphan* (it exists in that system only).

Keys are compared by fingerprint (``domain.reconciliation.fingerprint``): equal for equal
normalised values, so no customer data is kept in the ledger. An account with links is
*conflicting* when a field both hold disagrees (the fields are named), else *matched* or
*matched by strong key*; an account with no record elsewhere is *to create* (its golden
record is created on approval). Entries are sorted by system and record id, candidates by
account id: the same estate gives the same ledger.

**Invoices.** Each open billing invoice (in flight: something is due) is *matched* with the
ERP receivable mirroring it, *conflicting* when their currency, total or amount due disagree,
*ambiguous* when several receivables mirror it, *to create* when none does (its receivable is
posted on approval), *unreadable* when billing's invoice cannot be read (the reason is kept).
An open ERP receivable mirroring no billing invoice is an *orphan*. Paid and void invoices
are history: counted, not adopted. Open amounts are tied out per customer and currency
across billing and the ERP; every difference is listed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from domain.customer import Customer
from domain.customer_master import MasterField
from domain.invoice import Invoice as FinalizedInvoice
from domain.invoice_contracts import (
    InvoiceCarry,
    InvoicePolicy,
    InvoiceStage,
    InvoiceToRevenueInput,
    InvoiceToRevenueStatus,
    invoice_workflow_id,
    local_date,
    overdue_on,
)
from domain.receivable import Receivable, ReceivableState
from domain.reconciliation import CustomerRecord, InvoiceRecord, fingerprint, receivable_key
from domain.revenue import build_schedule, next_close, period_of

ADOPTION_WORKFLOW = "Adoption"


class Kind(StrEnum):
    CUSTOMERS = "customers"
    INVOICES = "invoices"


class Bucket(StrEnum):
    MATCHED = "matched"
    MATCHED_BY_KEY = "matched_by_key"
    AMBIGUOUS = "ambiguous"
    CONFLICTING = "conflicting"
    ORPHAN = "orphan"
    TO_CREATE = "to_create"
    UNREADABLE = "unreadable"

    @property
    def approvable(self) -> bool:
        """Whether a person's approval can act on it: a link to write, a saga to start.
        Ambiguous, orphan and unreadable entries need a person in the systems first."""
        return self in APPROVABLE


APPROVABLE = frozenset(
    {Bucket.MATCHED, Bucket.MATCHED_BY_KEY, Bucket.CONFLICTING, Bucket.TO_CREATE}
)

# The strong keys, in the order they are tried, and the golden field each one reads.
STRONG_KEYS: tuple[tuple[str, MasterField], ...] = (
    ("tax_id", MasterField.TAX_ID),
    ("domain", MasterField.WEBSITE),
    ("email", MasterField.EMAIL),
    ("legal_name", MasterField.LEGAL_ENTITY),
)
_ABSENT = {field: fingerprint(field, None) for field in MasterField}


def adoption_workflow_id(kind: Kind, window: str) -> str:
    return f"adopt-{kind.value}-{window}"


def entry_id(kind: Kind, subject: str) -> str:
    return f"{kind.value}:{subject}"


class Link(BaseModel):
    model_config = ConfigDict(frozen=True)

    system: str = Field(description="erp or billing (customers); erp (invoices)")
    record_id: str
    how: str = Field(description="xref, or key:<tax_id|domain|email|legal_name>")

    @property
    def by_key(self) -> bool:
        return self.how.startswith("key:")


class Approval(BaseModel):
    model_config = ConfigDict(frozen=True)

    by: str
    at: datetime
    note: str


class LedgerEntry(BaseModel):
    """One record (or golden subject) and what adoption makes of it."""

    entry_id: str
    kind: Kind
    subject: str = Field(description="CRM account, billing invoice, or <system>:<record id>")
    bucket: Bucket
    reason: str
    links: list[Link] = Field(default_factory=list)
    candidates: list[str] = Field(default_factory=list, description="Ambiguous: the accounts")
    differing: list[str] = Field(default_factory=list, description="Conflicting: the fields")
    in_revsync: bool = Field(
        default=False, description="revsync already runs it (golden record, invoice saga)"
    )
    account_id: str | None = None
    currency: str | None = None
    total: Decimal | None = None
    amount_due: Decimal | None = Field(default=None, description="Billing's (invoices)")
    erp_amount_due: Decimal | None = None
    approval: Approval | None = None
    outcome: str | None = Field(default=None, description="What approving it did")


class TieOut(BaseModel):
    """Open amounts of one customer in one currency, in billing and in the ERP."""

    model_config = ConfigDict(frozen=True)

    account_id: str = Field(description="The CRM account; '?' for ERP receivables of no invoice")
    currency: str
    billing_open: Decimal
    erp_open: Decimal

    @property
    def difference(self) -> Decimal:
        return self.billing_open - self.erp_open


class Ledger(BaseModel):
    kind: Kind
    window: str
    read_at: datetime | None = Field(default=None, description="The watermark: when listed")
    ready: bool = Field(default=False, description="Read and sorted: approvals are taken")
    entries: list[LedgerEntry] = Field(default_factory=list)
    scanned: dict[str, int] = Field(default_factory=dict, description="Records read per listing")
    settled: int = Field(default=0, description="Invoices paid or void: history, not adopted")
    tie_out: list[TieOut] = Field(
        default_factory=list, description="Per customer and currency, differences only"
    )
    tied: int = Field(default=0, description="Customer-currency pairs that tie out")

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(e.bucket.value for e in self.entries).items()))

    def entry(self, entry_id: str) -> LedgerEntry | None:
        return next((e for e in self.entries if e.entry_id == entry_id), None)

    def page(self, query: LedgerQuery) -> LedgerPage:
        """A page of the entries (of one bucket, or all) and the ledger's counts: a ledger
        of thousands is read page by page (a query's answer has a size limit)."""
        chosen = [
            e
            for e in self.entries
            if (query.bucket is None or e.bucket is query.bucket)
            and (not query.approved_only or e.approval is not None)
        ]
        approved = [e for e in self.entries if e.approval is not None]
        acted = [e for e in approved if e.outcome and not e.outcome.startswith("approved")]
        return LedgerPage(
            kind=self.kind,
            window=self.window,
            read_at=self.read_at,
            ready=self.ready,
            counts=self.counts(),
            scanned=self.scanned,
            settled=self.settled,
            tie_out=self.tie_out[: query.limit],
            tie_out_differences=len(self.tie_out),
            tied=self.tied,
            approved=len(approved),
            acted=len(acted),
            refused=sum(1 for e in acted if (e.outcome or "").startswith("refused")),
            total=len(chosen),
            offset=query.offset,
            entries=chosen[query.offset : query.offset + query.limit],
        )


class LedgerQuery(BaseModel):
    model_config = ConfigDict(frozen=True)

    bucket: Bucket | None = None
    approved_only: bool = False
    offset: int = Field(default=0, ge=0)
    limit: int = Field(default=200, ge=0, le=1000)


class LedgerPage(BaseModel):
    """What the ``ledger`` query answers: the counts, and one page of entries."""

    kind: Kind
    window: str
    read_at: datetime | None = None
    ready: bool = False
    counts: dict[str, int] = Field(default_factory=dict)
    scanned: dict[str, int] = Field(default_factory=dict)
    settled: int = 0
    tie_out: list[TieOut] = Field(default_factory=list)
    tie_out_differences: int = 0
    tied: int = 0
    approved: int = 0
    acted: int = Field(default=0, description="Approved entries acted on (an outcome)")
    refused: int = Field(default=0, description="Of those, refused")
    total: int = Field(default=0, description="Entries the query selects")
    offset: int = 0
    entries: list[LedgerEntry] = Field(default_factory=list)


# -- customers --------------------------------------------------------------------------------


_FIELDS = tuple(MasterField)


def _print(record: CustomerRecord, field: MasterField) -> str | None:
    value = record.fields.get(field)
    if value is None or value == _ABSENT[field] or value.startswith("invalid:"):
        return None
    return value


def _prints(record: CustomerRecord) -> dict[MasterField, str]:
    """The fields ``record`` holds a real value of, by fingerprint."""
    found: dict[MasterField, str] = {}
    for field, value in record.fields.items():
        if value != _ABSENT[field] and not value.startswith("invalid:"):
            found[field] = value
    return found


def customer_ledger(
    crm: Iterable[CustomerRecord],
    others: Mapping[str, Iterable[CustomerRecord]],
    *,
    golden: set[str],
    unreadable: Mapping[str, str] | None = None,
) -> list[LedgerEntry]:
    """Sort every customer record into the ledger (see the module doc). ``others`` maps a
    system (``erp``, ``billing``) to its records; ``golden`` holds the accounts that have a
    golden record already; ``unreadable`` maps ``<system>:<what>`` to why it was not read."""
    accounts = {r.record_id: r for r in sorted(crm, key=lambda r: r.record_id)}
    index: dict[str, dict[str, list[str]]] = {name: defaultdict(list) for name, _ in STRONG_KEYS}
    for account_id, record in accounts.items():
        for name, field in STRONG_KEYS:
            value = _print(record, field)
            if value is not None:
                index[name][value].append(account_id)
    links: dict[str, list[Link]] = defaultdict(list)
    strays: list[LedgerEntry] = []

    def stray(system: str, record_id: str, bucket: Bucket, reason: str, **extra: object) -> None:
        subject = f"{system}:{record_id}"
        strays.append(
            LedgerEntry(
                entry_id=entry_id(Kind.CUSTOMERS, subject),
                kind=Kind.CUSTOMERS,
                subject=subject,
                bucket=bucket,
                reason=reason,
                **extra,
            )
        )

    for system in sorted(others):
        records = sorted(others[system], key=lambda r: r.record_id)
        linked_here: dict[str, str] = {}
        for record in records:
            if record.account_id is None:
                continue
            if record.account_id in accounts:
                if record.account_id in linked_here:
                    stray(
                        system,
                        record.record_id,
                        Bucket.AMBIGUOUS,
                        f"a second {system} record linked to account {record.account_id} "
                        f"(the first: {linked_here[record.account_id]})",
                        candidates=[record.account_id],
                    )
                    continue
                linked_here[record.account_id] = record.record_id
                links[record.account_id].append(
                    Link(system=system, record_id=record.record_id, how="xref")
                )
            else:
                stray(
                    system,
                    record.record_id,
                    Bucket.ORPHAN,
                    f"linked to CRM account {record.account_id}, which the CRM does not have",
                    account_id=record.account_id,
                )
        by_key: dict[str, list[tuple[CustomerRecord, str]]] = defaultdict(list)
        for record in records:
            if record.account_id is not None:
                continue
            decided = False
            for name, field in STRONG_KEYS:
                value = _print(record, field)
                if value is None:
                    continue
                candidates = index[name].get(value, [])
                if len(candidates) > 1:
                    stray(
                        system,
                        record.record_id,
                        Bucket.AMBIGUOUS,
                        f"its {name} is that of {len(candidates)} CRM accounts",
                        candidates=list(candidates),
                    )
                    decided = True
                elif len(candidates) == 1:
                    account_id = candidates[0]
                    if account_id in linked_here:
                        stray(
                            system,
                            record.record_id,
                            Bucket.AMBIGUOUS,
                            f"its {name} is account {account_id}'s, already linked to "
                            f"{system} record {linked_here[account_id]}: a duplicate?",
                            candidates=[account_id],
                        )
                    else:
                        by_key[account_id].append((record, name))
                    decided = True
                if decided:
                    break
            if not decided:
                stray(system, record.record_id, Bucket.ORPHAN, f"in {system} only: no key matches")
        for account_id, found in sorted(by_key.items()):
            if len(found) > 1:
                for record, _ in found:
                    others_ids = sorted(r.record_id for r, _ in found if r is not record)
                    stray(
                        system,
                        record.record_id,
                        Bucket.AMBIGUOUS,
                        f"{len(found)} {system} records match account {account_id} "
                        f"(also {', '.join(others_ids)})",
                        candidates=[account_id],
                    )
                continue
            record, name = found[0]
            links[account_id].append(
                Link(system=system, record_id=record.record_id, how=f"key:{name}")
            )

    entries: list[LedgerEntry] = []
    everything = {s: {r.record_id: r for r in rs} for s, rs in others.items()}
    for account_id, account in accounts.items():
        mine = sorted(links.get(account_id, []), key=lambda link: (link.system, link.record_id))
        subject_entry = entry_id(Kind.CUSTOMERS, account_id)
        in_revsync = account_id in golden and all(not link.by_key for link in mine)
        if not mine:
            entries.append(
                LedgerEntry(
                    entry_id=subject_entry,
                    kind=Kind.CUSTOMERS,
                    subject=account_id,
                    account_id=account_id,
                    bucket=Bucket.MATCHED if account_id in golden else Bucket.TO_CREATE,
                    reason="in the CRM only"
                    + ("; its golden record exists" if account_id in golden else ""),
                    in_revsync=account_id in golden,
                )
            )
            continue
        differing: list[str] = []
        ours_all = _prints(account)
        for link in mine:
            theirs_all = _prints(everything[link.system][link.record_id])
            for field in _FIELDS:
                theirs, ours = theirs_all.get(field), ours_all.get(field)
                if theirs is not None and ours is not None and theirs != ours:
                    differing.append(f"{link.system}.{field.value}")
        keyed = [link for link in mine if link.by_key]
        if differing:
            bucket, reason = Bucket.CONFLICTING, "linked, but fields disagree"
        elif keyed:
            keys = ", ".join(f"{k.system} by {k.how.removeprefix('key:')}" for k in keyed)
            bucket, reason = Bucket.MATCHED_BY_KEY, f"linked by strong key ({keys})"
        else:
            bucket, reason = Bucket.MATCHED, "linked by cross-reference"
        entries.append(
            LedgerEntry(
                entry_id=subject_entry,
                kind=Kind.CUSTOMERS,
                subject=account_id,
                account_id=account_id,
                bucket=bucket,
                reason=reason,
                links=mine,
                differing=sorted(differing),
                in_revsync=in_revsync,
            )
        )
    for what, why in sorted((unreadable or {}).items()):
        entries.append(
            LedgerEntry(
                entry_id=entry_id(Kind.CUSTOMERS, what),
                kind=Kind.CUSTOMERS,
                subject=what,
                bucket=Bucket.UNREADABLE,
                reason=why,
            )
        )
    return entries + sorted(strays, key=lambda e: e.subject)


# -- invoices ---------------------------------------------------------------------------------

OPEN = "open"


def invoice_ledger(
    billing: Iterable[InvoiceRecord],
    erp: Iterable[InvoiceRecord],
    *,
    accounts: Mapping[str, str],
    unreadable: Mapping[str, str],
    sagas: set[str],
) -> tuple[list[LedgerEntry], int, list[TieOut], int]:
    """The invoice ledger (see the module doc): the entries, how many invoices are settled
    history, the tie-out differences per customer and currency, and how many pairs tie out.
    ``accounts`` maps each readable open invoice to its CRM account, ``unreadable`` each
    unreadable one to why, ``sagas`` holds the invoices revsync already runs a saga for."""
    receivables: dict[str, list[InvoiceRecord]] = defaultdict(list)
    for record in erp:
        receivables[record.invoice_id].append(record)
    entries: list[LedgerEntry] = []
    settled = 0
    billing_open: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    erp_open: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    seen: set[str] = set()
    for invoice in sorted(billing, key=lambda r: r.invoice_id):
        seen.add(invoice.invoice_id)
        mirrored = sorted(receivables.get(invoice.invoice_id, []), key=lambda r: r.record_id)
        if invoice.status != OPEN or invoice.amount_due <= 0:
            settled += 1
            continue
        base = {
            "entry_id": entry_id(Kind.INVOICES, invoice.invoice_id),
            "kind": Kind.INVOICES,
            "subject": invoice.invoice_id,
            "currency": invoice.currency,
            "total": invoice.amount,
            "amount_due": invoice.amount_due,
            "in_revsync": invoice.invoice_id in sagas,
        }
        if invoice.invoice_id in unreadable:
            entries.append(
                LedgerEntry(**base, bucket=Bucket.UNREADABLE, reason=unreadable[invoice.invoice_id])
            )
            continue
        account = accounts.get(invoice.invoice_id, "?")
        billing_open[(account, invoice.currency)] += invoice.amount_due
        for record in mirrored:
            erp_open[(account, record.currency)] += record.amount_due
        links = [
            Link(
                system="erp",
                record_id=r.record_id,
                how="xref" if r.key == receivable_key(invoice.invoice_id) else "reference",
            )
            for r in mirrored
        ]
        if len(mirrored) > 1:
            entries.append(
                LedgerEntry(
                    **base,
                    account_id=account,
                    bucket=Bucket.AMBIGUOUS,
                    reason=f"{len(mirrored)} ERP receivables mirror it",
                    links=links,
                )
            )
            continue
        if not mirrored:
            entries.append(
                LedgerEntry(
                    **base,
                    account_id=account,
                    bucket=Bucket.TO_CREATE,
                    reason="no ERP receivable: posted on approval",
                )
            )
            continue
        (record,) = mirrored
        differing = [
            name
            for name, ours, theirs in (
                ("currency", invoice.currency, record.currency),
                ("total", invoice.amount, record.amount),
                ("amount_due", invoice.amount_due, record.amount_due),
            )
            if ours != theirs
        ]
        entries.append(
            LedgerEntry(
                **base,
                account_id=account,
                bucket=Bucket.CONFLICTING if differing else Bucket.MATCHED,
                reason="the ERP receivable disagrees" if differing else "mirrored in the ERP",
                links=links,
                differing=differing,
                erp_amount_due=record.amount_due,
            )
        )
    for invoice_id, records in sorted(receivables.items()):
        if invoice_id in seen:
            continue
        for record in sorted(records, key=lambda r: r.record_id):
            if record.amount_due <= 0:
                continue
            erp_open[("?", record.currency)] += record.amount_due
            subject = f"erp:{record.record_id}"
            entries.append(
                LedgerEntry(
                    entry_id=entry_id(Kind.INVOICES, subject),
                    kind=Kind.INVOICES,
                    subject=subject,
                    bucket=Bucket.ORPHAN,
                    reason=f"open in the ERP for invoice {invoice_id}, which billing does not have",
                    currency=record.currency,
                    total=record.amount,
                    erp_amount_due=record.amount_due,
                )
            )
    pairs = sorted(set(billing_open) | set(erp_open))
    differences = [
        TieOut(
            account_id=account,
            currency=currency,
            billing_open=billing_open.get((account, currency), Decimal(0)),
            erp_open=erp_open.get((account, currency), Decimal(0)),
        )
        for account, currency in pairs
    ]
    off = [t for t in differences if t.difference != 0]
    return entries, settled, off, len(differences) - len(off)


# -- the workflow's contracts (workflows/adoption.py, activities/adoption.py) ---------------


class AdoptActivity:
    """Registered names of adoption's activities (the prefix is the queue)."""

    CRM_READ_ACCOUNTS = "crm.adopt_read_accounts"
    ERP_LINK_CUSTOMERS = "erp.adopt_link_customers"
    BILLING_LINK_CUSTOMERS = "billing.adopt_link_customers"
    ERP_FIND_CUSTOMERS = "erp.adopt_find_customers"
    BILLING_READ_INVOICES = "billing.adopt_read_invoices"
    EXISTING = "temporal.adopt_existing"
    START_GOLDEN_RECORDS = "temporal.adopt_start_golden_records"
    START_INVOICE_SAGAS = "temporal.adopt_start_invoice_sagas"


class AdoptionInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Kind
    window: str = Field(default="all", pattern=r"^[A-Za-z0-9_.-]{1,40}$")
    page_size: int = Field(default=100, ge=1, le=1000)
    batch_size: int = Field(default=100, ge=1, le=1000, description="Records per activity")
    requested_by: str = "revsync"


class ApproveEntries(BaseModel):
    """A person's approval: some entries by id, or every approvable entry of a bucket."""

    model_config = ConfigDict(frozen=True)

    entries: list[str] = Field(default_factory=list)
    bucket: Bucket | None = None
    by: str
    note: str = Field(min_length=1, max_length=2000)


class ApprovalAnswer(BaseModel):
    accepted: list[str] = Field(default_factory=list)
    refused: dict[str, str] = Field(default_factory=dict)


class Existing(BaseModel):
    """Which golden records (customers) or invoice sagas (invoices) already run."""

    model_config = ConfigDict(frozen=True)

    kind: Kind


class ExistingIds(BaseModel):
    ids: list[str] = Field(default_factory=list)


class ReadAccounts(BaseModel):
    model_config = ConfigDict(frozen=True)

    account_ids: list[str]


class AccountsRead(BaseModel):
    customers: list[Customer] = Field(default_factory=list)
    unreadable: dict[str, str] = Field(default_factory=dict)
    read_at: datetime | None = None


class LinkRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    record_id: str
    golden_id: str
    key: str = Field(description="The write's idempotency key")


class LinkCustomers(BaseModel):
    model_config = ConfigDict(frozen=True)

    links: list[LinkRequest]


class LinksWritten(BaseModel):
    done: list[str] = Field(default_factory=list, description="Record ids linked")
    refused: dict[str, str] = Field(default_factory=dict)


class FindCustomers(BaseModel):
    model_config = ConfigDict(frozen=True)

    golden_ids: list[str]


class CustomersFound(BaseModel):
    found: dict[str, str | None] = Field(default_factory=dict)


class ReadInvoices(BaseModel):
    model_config = ConfigDict(frozen=True)

    invoice_ids: list[str]
    amounts: bool = Field(
        default=False, description="Also read what is due now, and the watermark of that read"
    )
    page_size: int = 100


class InvoiceSnapshot(BaseModel):
    invoice: FinalizedInvoice | None = None
    unreadable: str | None = None
    amount_due: Decimal | None = None
    watermark: datetime | None = Field(
        default=None, description="Taken just before the read that gave amount_due"
    )


class InvoicesRead(BaseModel):
    items: dict[str, InvoiceSnapshot] = Field(default_factory=dict)


class GoldenSeed(BaseModel):
    model_config = ConfigDict(frozen=True)

    customer: Customer
    event_id: str
    read_at: datetime


class StartGoldenRecords(BaseModel):
    model_config = ConfigDict(frozen=True)

    seeds: list[GoldenSeed]


class InvoiceStart(BaseModel):
    """One in-flight invoice to hand to invoice-to-revenue, with the state it really has."""

    model_config = ConfigDict(frozen=True)

    invoice: FinalizedInvoice
    amount_due: Decimal
    watermark: datetime
    receivable_id: str | None = Field(default=None, description="The ERP's, when it exists")
    receivable_key: str | None = None
    erp_customer_id: str | None = None
    erp_amount_due: Decimal | None = None


class StartInvoiceSagas(BaseModel):
    model_config = ConfigDict(frozen=True)

    starts: list[InvoiceStart]
    accounting_timezone: str = "UTC"


class Started(BaseModel):
    outcomes: dict[str, str] = Field(default_factory=dict)


# -- invoices handed to invoice-to-revenue with the state they really have --------------------


def catch_up(start: InvoiceStart) -> Decimal:
    """What billing has been paid that the ERP has not applied: the ERP's amount due (the
    total when no receivable exists yet) less billing's, never negative."""
    erp_due = start.invoice.total if start.erp_amount_due is None else start.erp_amount_due
    return max(erp_due - start.amount_due, Decimal(0))


def catch_up_payment_id(invoice_id: str) -> str:
    return f"adopt:{invoice_id}"


def adopted_input(start: InvoiceStart, zone: str, policy: InvoicePolicy) -> InvoiceToRevenueInput:
    """The invoice-to-revenue start of an adopted invoice.

    No ERP receivable yet: the saga starts as it does for a new invoice and posts it. The
    receivable exists: the saga starts from it (carried, as a continue-as-new would carry it),
    with the ERP's amounts, and with the periods closed before the watermark counted as
    recognised by the integration that posted it. Either way billing's payments the ERP lacks
    come as one catch-up payment (:func:`catch_up`, sent with the start), and payments made
    before the watermark are not applied again (``adopted_at``)."""
    invoice = start.invoice
    if start.receivable_id is None:
        return InvoiceToRevenueInput(
            invoice_id=invoice.invoice_id,
            accounting_timezone=zone,
            policy=policy,
            adopted_at=start.watermark,
        )
    assert start.erp_customer_id is not None, "a receivable belongs to an ERP customer"
    schedule = build_schedule(invoice)
    today = local_date(start.watermark, zone)
    current = period_of(today)
    closed = sorted({e.period for e in schedule.entries if e.period < current})
    through = closed[-1] if closed else None
    recognised = sum(
        (e.amount for e in schedule.entries if through is not None and e.period <= through),
        Decimal(0),
    )
    due = invoice.total if start.erp_amount_due is None else start.erp_amount_due
    paid = invoice.total - due
    receivable = Receivable(
        receivable_id=start.receivable_id,
        external_id=start.receivable_key or "",
        invoice_id=invoice.invoice_id,
        customer_id=start.erp_customer_id,
        currency=invoice.currency,
        total=invoice.total,
        tax=invoice.tax,
        amount_paid=paid,
        amount_due=due,
        issue_date=invoice.issue_date,
        due_date=invoice.due_date,
        state=ReceivableState.of(due, paid, Decimal(0)),
    )
    status = InvoiceToRevenueStatus(
        workflow_id=invoice_workflow_id(invoice.invoice_id),
        invoice_id=invoice.invoice_id,
        stage=InvoiceStage.AWAITING_PAYMENT,
        stage_since=start.watermark,
        account_id=invoice.account_id,
        currency=invoice.currency,
        total=invoice.total,
        amount_paid=paid,
        amount_due=due,
        issue_date=invoice.issue_date,
        due_date=invoice.due_date,
        overdue_on=overdue_on(invoice.due_date, policy.grace),
        erp_customer_id=start.erp_customer_id,
        receivable_id=start.receivable_id,
        scheduled_revenue=sum((e.amount for e in schedule.entries), Decimal(0)),
        recognised_revenue=recognised,
        recognised_through=through,
        next_close=next_close(schedule, through),
        adopted_at=start.watermark,
    )
    return InvoiceToRevenueInput(
        invoice_id=invoice.invoice_id,
        accounting_timezone=zone,
        policy=policy,
        adopted_at=start.watermark,
        carry=InvoiceCarry(
            invoice=invoice, schedule=schedule, receivable=receivable, status=status
        ),
    )
