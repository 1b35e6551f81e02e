"""Reconciliation rules: what each system holds for a quote, what drift is, and which repair
the rules allow. Pure: no I/O, safe inside the workflow sandbox.

Every system keeps revsync's records under revsync's keys (docs/architecture.md,
"Idempotency"): the ERP sales order ``q2c-<quote>:erp-order`` (NetSuite ``externalId``), the
subscription ``q2c-<quote>:subscription`` (Stripe ``metadata.revsync_key``), the CRM order
``q2c-<quote>:crm-order`` (Salesforce ``Revsync_Key__c``). Each record also names its quote
(``otherRefNum``, ``metadata.quote_id``, ``SBQQ__Quote__c``), so a record made by hand for a
quote (a duplicate) is found too. Records naming no quote are not revsync's and are ignored.

:func:`compare_orders` groups the records by quote and judges each group against the state
of the quote's saga (``q2c-<quote>``), as visibility shows it when the run started:

============================  ===============================================================
saga                          what is drift
============================  ===============================================================
running, not parked, not in   nothing: the saga is still booking (counted as in flight)
a final stage
BOOKED                        anything but one live record in each of ERP, billing and CRM
                              with the same amount in ERP and CRM
COMPENSATED, REJECTED         any live ERP order or subscription, any CRM order
parked (NEEDS_ATTENTION),     systems that disagree with each other: a live record in one and
closed otherwise, or unknown  none (or only a cancelled one) in another, different amounts
============================  ===============================================================

Repairs the rules allow (everything else is ``review``, for a person):

- ``resume_saga``: the owning saga is parked; it already waits for an operator, nothing is
  started, the item points at it.
- ``compensate``: a live ERP order or subscription of a COMPENSATED or REJECTED quote is
  cancelled with the saga's own idempotent compensation activity.
- ``rewrite_crm``: a BOOKED quote whose CRM order is missing gets it written again by the
  saga's idempotent ``crm.record_order``, with the same key, from the ERP order and the
  subscription.

Duplicates and amount mismatches are always ``review``: which record is right is a finance
decision, not a rule.

Customers (:func:`compare_customers`) are keyed by the CRM account id, the golden id of the
customer master: the Salesforce Account, the Stripe customer naming it in
``metadata.revsync_account_id``, the NetSuite customer ``acct-<account id>``. Each copy of a
field is compared with its owner's value (``domain.customer_master.OWNERSHIP``), values that
say the same thing written differently being equal (``equivalent``: records carry one
fingerprint per field, equal for equivalent values, so no customer data is kept in the run's
history). A differing copy is ``field_mismatch``, repaired by ``repropagate_customer`` (the
customer master sends its golden values again). A record linked to an account another
system lacks is ``missing_in_<system>``; two for one account in one system
``duplicated_in_<system>``: both for review.

Invoices (:func:`compare_invoices`) are the billing invoices (finalized: open, paid, void,
uncollectible) against the ERP receivables invoice-to-revenue posts
(``i2r-<invoice>:receivable``), judged against the ``i2r-<invoice>`` saga: a missing
receivable, different totals, a paid or void invoice still open in ERP, an open one with
nothing due in ERP. Drift of an invoice whose saga still runs or is parked points at it
(``resume_saga``); the rest is review. An invoice whose saga moved after the run started
is in flight and not judged.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from domain.contracts import CancelSalesOrder, CancelSubscription, RecordOrderInCrm
from domain.customer_master import OWNERSHIP, FieldValue, MasterField, field_value
from domain.customer_master import System as MasterSystem
from domain.customer_master.normalise import normalise_domain, normalise_tax_id
from domain.invoice_contracts import InvoiceStage
from domain.order import SalesOrder, SalesOrderStatus, Subscription, SubscriptionStatus
from domain.stages import OrderStage

T = TypeVar("T")

WORKFLOW_TYPE = "Reconciliation"
SCHEDULE_ID = "revsync-reconciliation"
QUOTE_TO_CASH_TYPE = "QuoteToCash"
INVOICE_TO_REVENUE_TYPE = "InvoiceToRevenue"
# Guards the customer and invoice phases in the workflow (histories made before replay).
CUSTOMERS_AND_INVOICES_PATCH = "reconcile-customers-and-invoices"


class ReconcileActivity:
    """Registered names of the activities reconciliation adds (reads only). Its repairs run
    the sagas' own activities (``domain.contracts.Activity``)."""

    CRM_LIST_ORDERS = "crm.list_orders"
    ERP_LIST_SALES_ORDERS = "erp.list_sales_orders"
    BILLING_LIST_SUBSCRIPTIONS = "billing.list_subscriptions"
    LIST_SAGAS = "temporal.list_quote_sagas"
    CRM_LIST_ACCOUNTS = "crm.list_accounts"
    ERP_LIST_CUSTOMERS = "erp.list_customers"
    BILLING_LIST_CUSTOMERS = "billing.list_customers"
    BILLING_LIST_INVOICES = "billing.list_invoices"
    ERP_LIST_RECEIVABLES = "erp.list_receivables"
    LIST_INVOICE_SAGAS = "temporal.list_invoice_sagas"
    REPROPAGATE_CUSTOMER = "temporal.repropagate_customer"


class System(StrEnum):
    CRM = "crm"
    ERP = "erp"
    BILLING = "billing"


SYSTEMS = (System.ERP, System.BILLING, System.CRM)
_KEY_SUFFIX = {System.CRM: "crm-order", System.ERP: "erp-order", System.BILLING: "subscription"}
_KEY = re.compile(r"^q2c-(?P<quote>.+):(?P<suffix>crm-order|erp-order|subscription)$")


def saga_id(quote_id: str) -> str:
    return f"q2c-{quote_id}"


def order_key(system: System, quote_id: str) -> str:
    """revsync's key of the record quote-to-cash makes for ``quote_id`` in ``system``."""
    return f"{saga_id(quote_id)}:{_KEY_SUFFIX[system]}"


def quote_of_key(key: str | None) -> str | None:
    """The quote id in a revsync key, or None for anything else."""
    match = _KEY.match(key or "")
    return None if match is None else match.group("quote")


# -- what the systems hold ----------------------------------------------------------------


class Page(BaseModel, Generic[T]):
    """One page of a listing. ``cursor`` is opaque (only the adapter that made it reads
    it); None means this was the last page. ``total``: how many records the whole listing
    holds, when the vendor says so on the page (SuiteQL ``totalResults``, SOQL
    ``totalSize``, HubSpot search ``total``, OData counts); None when it does not."""

    model_config = ConfigDict(frozen=True)

    items: list[T]
    cursor: str | None = None
    total: int | None = None


class Basis(StrEnum):
    """What a listing window filters on: the vendor's last-modified time (``changed``:
    Salesforce ``SystemModstamp``, HubSpot ``hs_lastmodifieddate``, NetSuite
    ``lastModifiedDate``, SAP ``LastChangeDateTime``, Dataverse ``modifiedon``, Zuora
    ``updatedDate``, Stripe's events) or its creation time (``created``)."""

    CHANGED = "changed"
    CREATED = "created"


class Window(BaseModel):
    """Records whose ``basis`` time is in ``[start, end)``: whole seconds, UTC."""

    model_config = ConfigDict(frozen=True)

    basis: Basis
    start: datetime
    end: datetime

    def contains(self, moment: datetime | None) -> bool:
        return moment is not None and self.start <= moment < self.end

    @property
    def label(self) -> str:
        return f"{self.basis.value}-{self.start:%Y%m%dT%H%M%SZ}-{self.end:%Y%m%dT%H%M%SZ}"


class ListPage(BaseModel):
    """Which page to read: ``cursor`` from the previous page (None: the first)."""

    model_config = ConfigDict(frozen=True)

    cursor: str | None = None
    page_size: int = Field(default=100, ge=1, le=1000)


class OrderRecord(BaseModel):
    """One order-like record in one system, in the terms reconciliation compares."""

    model_config = ConfigDict(frozen=True)

    system: System
    record_id: str = Field(description="The system's own id of the record")
    key: str | None = Field(default=None, description="revsync's key on the record, if any")
    quote_ref: str | None = Field(default=None, description="The quote the record names")
    account_id: str | None = Field(default=None, description="CRM account, where recorded")
    customer_id: str | None = Field(default=None, description="The system's customer id")
    amount: Decimal | None = Field(default=None, description="Order total (ERP, CRM)")
    currency: str | None = None
    status: str = Field(description="The status as revsync reads it")
    live: bool = Field(description="Not cancelled")
    created_at: datetime | None = Field(
        default=None, description="When the vendor created it (None: not read)"
    )
    changed_at: datetime | None = Field(
        default=None, description="When the vendor last changed it (None: not read)"
    )

    @property
    def quote_id(self) -> str | None:
        return quote_of_key(self.key) or self.quote_ref

    @property
    def keyed(self) -> bool:
        quote = self.quote_id
        return quote is not None and self.key == order_key(self.system, quote)


class ListSagas(BaseModel):
    model_config = ConfigDict(frozen=True)

    cursor: str | None = None
    page_size: int = Field(default=100, ge=1, le=1000)


class SagaState(BaseModel):
    """A quote-to-cash saga as visibility shows it."""

    model_config = ConfigDict(frozen=True)

    workflow_id: str
    quote_id: str
    account_id: str | None = None
    stage: OrderStage | None = Field(
        default=None, description="None for a saga that ended without completing"
    )
    running: bool
    changed_at: datetime | None = Field(
        default=None, description="When it closed, or entered its current stage if running"
    )

    def settled(self, as_of: datetime) -> bool:
        """Ended, parked, or in a final business stage (a saga may still be publishing its
        event) before ``as_of``: its records no longer move on their own."""
        if self.changed_at is None or self.changed_at >= as_of:
            return False
        if not self.running or self.stage is OrderStage.NEEDS_ATTENTION:
            return True
        return self.stage is not None and self.stage.is_terminal


# -- drift ----------------------------------------------------------------------------------


class DriftKind(StrEnum):
    MISSING_IN_CRM = "missing_in_crm"
    MISSING_IN_ERP = "missing_in_erp"
    MISSING_IN_BILLING = "missing_in_billing"
    DUPLICATED_IN_CRM = "duplicated_in_crm"
    DUPLICATED_IN_ERP = "duplicated_in_erp"
    DUPLICATED_IN_BILLING = "duplicated_in_billing"
    AMOUNT_MISMATCH = "amount_mismatch"
    STATUS_MISMATCH = "status_mismatch"
    FIELD_MISMATCH = "field_mismatch"

    @staticmethod
    def missing_in(system: System) -> DriftKind:
        return DriftKind(f"missing_in_{system.value}")

    @staticmethod
    def duplicated_in(system: System) -> DriftKind:
        return DriftKind(f"duplicated_in_{system.value}")


class Remediation(StrEnum):
    RESUME_SAGA = "resume_saga"
    COMPENSATE = "compensate"
    REWRITE_CRM = "rewrite_crm"
    REPROPAGATE_CUSTOMER = "repropagate_customer"
    REVIEW = "review"


class RepropagateCustomer(BaseModel):
    """Ask the customer master to send the golden values of ``fields`` again."""

    model_config = ConfigDict(frozen=True)

    golden_id: str
    fields: list[MasterField]
    reason: str
    request_id: str | None = Field(
        default=None,
        description="Set by the run: a retry in the run asks once, a later run asks again",
    )


class RepropagateOutcome(BaseModel):
    """What the customer master answered: ``scheduled`` False means nothing was sent now (no
    golden customer, the request was refused, or it was asked before), ``detail`` says why.
    ``repeated``: the customer master had this request id already and answered its first
    answer; nothing new was sent, so it is not a repair."""

    model_config = ConfigDict(frozen=True)

    scheduled: bool
    detail: str
    repeated: bool = False


class Repair(BaseModel):
    """The one keyed call that repairs an item: exactly one field is set."""

    model_config = ConfigDict(frozen=True)

    cancel_subscription: CancelSubscription | None = None
    cancel_sales_order: CancelSalesOrder | None = None
    record_order: RecordOrderInCrm | None = None
    repropagate: RepropagateCustomer | None = None


class Outcome(StrEnum):
    REPAIRED = "repaired"  # the repair ran and succeeded
    FAILED = "failed"  # the repair failed: the item is now for review
    DEFERRED = "deferred"  # more repairs than one run makes: the next run does it
    POINTED = "pointed"  # resume_saga: the parked saga is where to act
    REPEATED = "repeated"  # the customer master had this request already: nothing was sent


class DriftItem(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: DriftKind
    quote_id: str | None = Field(default=None, description="The quote, for order drift")
    customer_id: str | None = Field(
        default=None, description="The golden id (CRM account), for customer drift"
    )
    invoice_id: str | None = Field(default=None, description="The invoice, for invoice drift")
    workflow_id: str = Field(description="The owning saga (or the golden customer)")
    saga_stage: OrderStage | None = Field(
        default=None, description="The quote saga's stage, None when visibility does not know it"
    )
    invoice_stage: InvoiceStage | None = Field(
        default=None, description="The invoice saga's stage, for invoice drift"
    )
    fields: list[MasterField] = Field(
        default_factory=list, description="The customer fields that differ (field_mismatch)"
    )
    system: System
    record_ids: list[str] = Field(default_factory=list)
    detail: str
    remediation: Remediation
    repair: Repair | None = None
    outcome: Outcome | None = None
    outcome_detail: str | None = None

    @property
    def subject(self) -> str:
        """What the item is about: the quote, the customer or the invoice id."""
        return self.quote_id or self.customer_id or self.invoice_id or self.workflow_id


def _live(records: list[OrderRecord]) -> list[OrderRecord]:
    return [r for r in records if r.live]


def _primary(records: list[OrderRecord]) -> OrderRecord | None:
    """The record that counts for the quote: the live keyed one, else the first live one."""
    live = sorted(_live(records), key=lambda r: (not r.keyed, r.record_id))
    return live[0] if live else None


def _ids(records: Iterable[OrderRecord]) -> list[str]:
    return sorted(r.record_id for r in records)


class _Group:
    """Every record of one quote, by system, and the quote's saga."""

    def __init__(self, quote_id: str, saga: SagaState | None) -> None:
        self.quote_id = quote_id
        self.saga = saga
        self.records: dict[System, list[OrderRecord]] = {s: [] for s in System}
        self.items: list[DriftItem] = []

    def add(
        self,
        kind: DriftKind,
        system: System,
        records: Iterable[OrderRecord],
        detail: str,
        remediation: Remediation,
        repair: Repair | None = None,
    ) -> None:
        saga = self.saga
        self.items.append(
            DriftItem(
                kind=kind,
                quote_id=self.quote_id,
                workflow_id=saga.workflow_id if saga else saga_id(self.quote_id),
                saga_stage=saga.stage if saga else None,
                system=system,
                record_ids=_ids(records),
                detail=detail,
                remediation=remediation,
                repair=repair,
                outcome=Outcome.POINTED if remediation is Remediation.RESUME_SAGA else None,
            )
        )


def _money(record: OrderRecord) -> str:
    return f"{record.amount} {record.currency}"


def _duplicates(group: _Group, remediation: Remediation) -> None:
    for system in System:
        live = _live(group.records[system])
        primary = _primary(group.records[system])
        if primary is None or len(live) < 2:
            continue
        extra = [r for r in live if r is not primary]
        group.add(
            DriftKind.duplicated_in(system),
            system,
            live,
            f"{len(live)} live {system.value} records for quote {group.quote_id}: "
            f"{primary.record_id} (kept) and {', '.join(_ids(extra))}",
            Remediation.REVIEW if remediation is not Remediation.RESUME_SAGA else remediation,
        )


def _amounts(group: _Group, remediation: Remediation) -> None:
    erp = _primary(group.records[System.ERP])
    crm = _primary(group.records[System.CRM])
    if erp is None or crm is None:
        return
    if erp.amount == crm.amount and erp.currency == crm.currency:
        return
    group.add(
        DriftKind.AMOUNT_MISMATCH,
        System.CRM,
        [erp, crm],
        f"ERP order {erp.record_id} is {_money(erp)}, CRM order {crm.record_id} is {_money(crm)}",
        remediation,
    )


def _absent(group: _Group, system: System, why: str, remediation: Remediation) -> None:
    """``system`` has no live record where one is expected."""
    cancelled = group.records[system]
    if cancelled:
        statuses = ", ".join(f"{r.record_id} {r.status}" for r in cancelled)
        group.add(
            DriftKind.STATUS_MISMATCH,
            system,
            cancelled,
            f"{why}, but the {system.value} record is not live ({statuses})",
            remediation,
        )
    else:
        group.add(
            DriftKind.missing_in(system),
            system,
            [],
            f"{why}, but {system.value} has no record for quote {group.quote_id}",
            remediation,
        )


def _rewrite_crm(group: _Group) -> Repair | None:
    """The saga's CRM write-back, rebuilt from the live ERP order and subscription."""
    erp = _primary(group.records[System.ERP])
    billing = _primary(group.records[System.BILLING])
    if erp is None or billing is None or group.saga is None:
        return None
    account_id = group.saga.account_id or billing.account_id
    if (
        account_id is None
        or erp.customer_id is None
        or erp.currency is None
        or erp.amount is None
        or billing.customer_id is None
        or billing.currency is None
    ):
        return None
    try:
        order_status = SalesOrderStatus(erp.status)
        subscription_status = SubscriptionStatus(billing.status)
    except ValueError:
        return None
    return Repair(
        record_order=RecordOrderInCrm(
            quote_id=group.quote_id,
            account_id=account_id,
            order_key=order_key(System.CRM, group.quote_id),
            sales_order=SalesOrder(
                order_id=erp.record_id,
                external_id=erp.key or order_key(System.ERP, group.quote_id),
                customer_id=erp.customer_id,
                currency=erp.currency,
                total=erp.amount,
                status=order_status,
            ),
            subscription=Subscription(
                subscription_id=billing.record_id,
                customer_id=billing.customer_id,
                currency=billing.currency,
                status=subscription_status,
            ),
        )
    )


def _booked(group: _Group) -> None:
    _duplicates(group, Remediation.REVIEW)
    why = f"quote {group.quote_id} is BOOKED"
    for system in (System.ERP, System.BILLING):
        if _primary(group.records[system]) is None:
            _absent(group, system, why, Remediation.REVIEW)
    if _primary(group.records[System.CRM]) is None:
        repair = _rewrite_crm(group)
        remediation = Remediation.REVIEW if repair is None else Remediation.REWRITE_CRM
        if group.records[System.CRM]:
            _absent(group, System.CRM, why, Remediation.REVIEW)
        else:
            group.add(
                DriftKind.MISSING_IN_CRM,
                System.CRM,
                [],
                f"{why} in ERP and billing, but CRM has no order for it",
                remediation,
                repair,
            )
    _amounts(group, Remediation.REVIEW)


def _unwound(group: _Group) -> None:
    """A COMPENSATED or REJECTED quote: nothing of it may stay live."""
    assert group.saga is not None and group.saga.stage is not None
    stage = group.saga.stage.value
    reason = f"reconciliation: quote {group.quote_id} was {stage}"
    for record in _live(group.records[System.ERP]):
        group.add(
            DriftKind.STATUS_MISMATCH,
            System.ERP,
            [record],
            f"ERP order {record.record_id} is {record.status} but quote {group.quote_id} "
            f"was {stage}",
            Remediation.COMPENSATE,
            Repair(cancel_sales_order=CancelSalesOrder(order_id=record.record_id, reason=reason)),
        )
    for record in _live(group.records[System.BILLING]):
        group.add(
            DriftKind.STATUS_MISMATCH,
            System.BILLING,
            [record],
            f"subscription {record.record_id} is {record.status} but quote {group.quote_id} "
            f"was {stage}",
            Remediation.COMPENSATE,
            Repair(
                cancel_subscription=CancelSubscription(
                    subscription_id=record.record_id, reason=reason
                )
            ),
        )
    crm = _live(group.records[System.CRM])
    if crm:
        group.add(
            DriftKind.STATUS_MISMATCH,
            System.CRM,
            crm,
            f"CRM has an order for quote {group.quote_id}, which was {stage}",
            Remediation.REVIEW,
        )


def _cross_check(group: _Group, remediation: Remediation) -> None:
    """No stage to judge by (or a parked saga): the systems must agree with each other."""
    _duplicates(group, remediation)
    present = [s for s in SYSTEMS if _primary(group.records[s]) is not None]
    if present:
        why = f"{' and '.join(s.value for s in present)} hold a live record"
        for system in SYSTEMS:
            if system not in present:
                _absent(group, system, why, remediation)
    _amounts(group, remediation)


class Comparison(BaseModel):
    items: list[DriftItem]
    quotes: int = Field(description="Quotes with at least one record")
    in_flight: int = Field(description="Quotes skipped because their saga is still booking")


def compare_orders(
    records: Iterable[OrderRecord], sagas: Mapping[str, SagaState], *, as_of: datetime
) -> Comparison:
    """Drift across the systems' records, judged against the sagas (by quote id) as they
    were at ``as_of`` (when the run started)."""
    by_quote: dict[str, list[OrderRecord]] = defaultdict(list)
    for record in records:
        quote_id = record.quote_id
        if quote_id is not None:
            by_quote[quote_id].append(record)
    items: list[DriftItem] = []
    in_flight = 0
    for quote_id in sorted(by_quote):
        saga = sagas.get(quote_id)
        if saga is not None and not saga.settled(as_of):
            in_flight += 1
            continue
        group = _Group(quote_id, saga)
        for record in by_quote[quote_id]:
            group.records[record.system].append(record)
        stage = None if saga is None else saga.stage
        if stage is OrderStage.BOOKED:
            _booked(group)
        elif stage in (OrderStage.COMPENSATED, OrderStage.REJECTED):
            _unwound(group)
        elif stage is OrderStage.NEEDS_ATTENTION:
            _cross_check(group, Remediation.RESUME_SAGA)
        else:
            _cross_check(group, Remediation.REVIEW)
        items.extend(group.items)
    return Comparison(items=items, quotes=len(by_quote), in_flight=in_flight)


# -- customers ------------------------------------------------------------------------------

_NONE_PRINT = "-"


def _canonical(field: MasterField, value: FieldValue) -> str:
    """One text per meaning: two values of ``field`` that are ``equivalent`` have the same
    canonical text (tax ids normalised, websites by domain, names, owners, e-mails and legal
    entities ignoring case and spacing, money by amount and currency)."""
    if value is None:
        return _NONE_PRINT
    if isinstance(value, BaseModel):
        data = value.model_dump(mode="json")
        if "amount" in data:  # Money: 1000.00 EUR is 1000 EUR
            data["amount"] = format(Decimal(str(data["amount"])).normalize(), "f")
        return json.dumps(data, sort_keys=True)
    text = str(value)
    if field is MasterField.TAX_ID:
        return normalise_tax_id(text) or text
    if field is MasterField.WEBSITE:
        return normalise_domain(text) or text
    if field in (MasterField.NAME, MasterField.OWNER, MasterField.EMAIL, MasterField.LEGAL_ENTITY):
        return " ".join(text.split()).casefold()
    return text


def fingerprint(field: MasterField, value: FieldValue) -> str:
    """A short digest of ``value``'s meaning: equal for equivalent values, so a run compares
    customers without keeping their data in its history."""
    digest = hashlib.sha256(f"{field.value}\\0{_canonical(field, value)}".encode())
    return digest.hexdigest()[:16]


def fingerprints(raw: Mapping[str, object]) -> dict[MasterField, str]:
    """Fingerprints of the golden fields in ``raw`` (field name -> raw value, as the
    adapters' field mappings read them). A value that is not valid for its field is
    fingerprinted as written: it differs from every valid value."""
    prints: dict[MasterField, str] = {}
    for name, raw_value in raw.items():
        try:
            field = MasterField(name)
        except ValueError:
            continue
        try:
            prints[field] = fingerprint(field, field_value(field, raw_value))
        except ValueError:
            prints[field] = "invalid:" + hashlib.sha256(repr(raw_value).encode()).hexdigest()[:8]
    return prints


class CustomerRecord(BaseModel):
    """One customer record in one system, as reconciliation compares it."""

    model_config = ConfigDict(frozen=True)

    system: System
    record_id: str = Field(description="The system's own id of the record")
    account_id: str | None = Field(
        default=None, description="The CRM account (golden id) it belongs to; None: not linked"
    )
    fields: dict[MasterField, str] = Field(
        default_factory=dict, description="Fingerprint of each golden field the system holds"
    )
    created_at: datetime | None = Field(
        default=None, description="When the vendor created it (None: not read)"
    )
    changed_at: datetime | None = Field(
        default=None, description="When the vendor last changed it (None: not read)"
    )


def _system(system: MasterSystem) -> System:
    return System(system.value)


def master_id(golden_id: str) -> str:
    return f"customer-{golden_id}"


def _customer_item(
    kind: DriftKind,
    account_id: str,
    system: System,
    records: Iterable[CustomerRecord],
    detail: str,
    remediation: Remediation = Remediation.REVIEW,
    fields: list[MasterField] | None = None,
    repair: Repair | None = None,
) -> DriftItem:
    return DriftItem(
        kind=kind,
        customer_id=account_id,
        workflow_id=master_id(account_id),
        system=system,
        record_ids=sorted(r.record_id for r in records),
        detail=detail,
        remediation=remediation,
        fields=fields or [],
        repair=repair,
    )


def compare_customers(records: Iterable[CustomerRecord]) -> list[DriftItem]:
    """Drift between the systems' customer records, by CRM account. Records linked to no
    account are not revsync's and are ignored."""
    by_account: dict[str, dict[System, list[CustomerRecord]]] = defaultdict(
        lambda: {s: [] for s in System}
    )
    for record in records:
        if record.account_id:
            by_account[record.account_id][record.system].append(record)
    items: list[DriftItem] = []
    for account_id in sorted(by_account):
        held = by_account[account_id]
        for system in SYSTEMS:
            if len(held[system]) > 1:
                items.append(
                    _customer_item(
                        DriftKind.duplicated_in(system),
                        account_id,
                        system,
                        held[system],
                        f"{len(held[system])} {system.value} customers for CRM account "
                        f"{account_id}",
                    )
                )
        linked = [s for s in SYSTEMS if held[s]]
        if not held[System.CRM]:
            items.append(
                _customer_item(
                    DriftKind.MISSING_IN_CRM,
                    account_id,
                    System.CRM,
                    [],
                    f"{' and '.join(s.value for s in linked)} hold a customer for CRM account "
                    f"{account_id}, which CRM does not have",
                )
            )
        # Quote-to-cash makes the ERP customer before the billing one: a billing customer
        # without an ERP one is drift; the other way round is a booking that stopped early.
        if held[System.BILLING] and not held[System.ERP]:
            items.append(
                _customer_item(
                    DriftKind.MISSING_IN_ERP,
                    account_id,
                    System.ERP,
                    [],
                    f"billing has a customer for CRM account {account_id}, but the ERP has no "
                    f"customer acct-{account_id}",
                )
            )
        items.extend(_field_drift(account_id, held))
    return items


def _field_drift(account_id: str, held: Mapping[System, list[CustomerRecord]]) -> list[DriftItem]:
    """Copies differing from their owner's value, one item per system holding a wrong copy.
    A field is judged only where exactly one record of the owner and of the copy exist, and
    only a copy that holds a value: an empty one is not propagated yet."""
    wrong: dict[System, list[MasterField]] = defaultdict(list)
    for field, rule in OWNERSHIP.items():
        owners = held[_system(rule.owner)]
        if len(owners) != 1 or field not in owners[0].fields:
            continue
        expected = owners[0].fields[field]
        empty = fingerprint(field, None)
        for copy in rule.copies:
            copies = held[_system(copy)]
            if len(copies) != 1:
                continue
            held_copy = copies[0].fields.get(field, expected)
            # An empty copy has not been propagated yet (the customer master sends a field
            # once it has a golden value); a copy holding something else is drift.
            if held_copy not in (expected, empty):
                wrong[_system(copy)].append(field)
    items: list[DriftItem] = []
    for system in SYSTEMS:
        fields = wrong.get(system)
        if not fields:
            continue
        names = ", ".join(f"{f.value} (owned by {OWNERSHIP[f].owner.value})" for f in fields)
        reason = f"reconciliation: {system.value} copy of {account_id} differs"
        items.append(
            _customer_item(
                DriftKind.FIELD_MISMATCH,
                account_id,
                system,
                held[system],
                f"{system.value} customer {held[system][0].record_id} differs from the "
                f"owner's value in {names}",
                Remediation.REPROPAGATE_CUSTOMER,
                fields,
                Repair(
                    repropagate=RepropagateCustomer(
                        golden_id=account_id, fields=fields, reason=reason
                    )
                ),
            )
        )
    return items


# -- invoices -------------------------------------------------------------------------------


class InvoiceRecord(BaseModel):
    """A billing invoice or an ERP receivable, in the terms reconciliation compares."""

    model_config = ConfigDict(frozen=True)

    system: System
    record_id: str = Field(description="The system's own id of the record")
    invoice_id: str = Field(description="The billing invoice it is (or mirrors)")
    key: str | None = Field(default=None, description="revsync's key on the record, if any")
    amount: Decimal = Field(description="Total, tax included, in major units")
    currency: str
    amount_due: Decimal = Field(description="What is still owed")
    status: str = Field(description="billing: open, paid, void, uncollectible; ERP: open, closed")
    created_at: datetime | None = Field(
        default=None, description="When the vendor created it (None: not read)"
    )
    changed_at: datetime | None = Field(
        default=None, description="When the vendor last changed it (None: not read)"
    )


_RECEIVABLE_KEY = re.compile(r"^i2r-(?P<invoice>.+):receivable$")


def invoice_saga_id(invoice_id: str) -> str:
    return f"i2r-{invoice_id}"


def receivable_key(invoice_id: str) -> str:
    """The ERP external id invoice-to-revenue posts the receivable under."""
    return f"{invoice_saga_id(invoice_id)}:receivable"


def invoice_of_key(key: str | None) -> str | None:
    match = _RECEIVABLE_KEY.match(key or "")
    return None if match is None else match.group("invoice")


class InvoiceSagaState(BaseModel):
    """An invoice-to-revenue saga as visibility shows it."""

    model_config = ConfigDict(frozen=True)

    workflow_id: str
    invoice_id: str
    stage: InvoiceStage | None = None
    running: bool
    changed_at: datetime | None = None

    def settled(self, as_of: datetime) -> bool:
        """It did not move since ``as_of`` (when the run started): its records are not
        being written right now."""
        return self.changed_at is not None and self.changed_at < as_of


class InvoiceComparison(BaseModel):
    items: list[DriftItem]
    invoices: int = Field(description="Invoices with at least one record")
    in_flight: int = Field(description="Invoices skipped because their saga just moved")


def _money_text(amount: Decimal, currency: str) -> str:
    return f"{amount} {currency}"


def compare_invoices(
    records: Iterable[InvoiceRecord],
    sagas: Mapping[str, InvoiceSagaState],
    *,
    as_of: datetime,
) -> InvoiceComparison:
    """Drift between billing invoices and ERP receivables, judged against the
    invoice-to-revenue sagas (by invoice id) as they were at ``as_of``."""
    by_invoice: dict[str, dict[System, list[InvoiceRecord]]] = defaultdict(
        lambda: {s: [] for s in System}
    )
    for record in records:
        by_invoice[record.invoice_id][record.system].append(record)
    items: list[DriftItem] = []
    in_flight = 0
    for invoice_id in sorted(by_invoice):
        saga = sagas.get(invoice_id)
        if saga is not None and not saga.settled(as_of):
            in_flight += 1
            continue
        remediation = (
            Remediation.RESUME_SAGA if saga is not None and saga.running else Remediation.REVIEW
        )

        def add(
            kind: DriftKind,
            system: System,
            found: Iterable[InvoiceRecord],
            detail: str,
            invoice_id: str = invoice_id,
            saga: InvoiceSagaState | None = saga,
            remediation: Remediation = remediation,
        ) -> None:
            items.append(
                DriftItem(
                    kind=kind,
                    invoice_id=invoice_id,
                    workflow_id=saga.workflow_id if saga else invoice_saga_id(invoice_id),
                    invoice_stage=saga.stage if saga else None,
                    system=system,
                    record_ids=sorted(r.record_id for r in found),
                    detail=detail,
                    remediation=remediation,
                    outcome=Outcome.POINTED if remediation is Remediation.RESUME_SAGA else None,
                )
            )

        held = by_invoice[invoice_id]
        billing, erp = held[System.BILLING], held[System.ERP]
        if len(erp) > 1:
            add(
                DriftKind.DUPLICATED_IN_ERP,
                System.ERP,
                erp,
                f"{len(erp)} ERP receivables for invoice {invoice_id}",
            )
        if not billing:
            add(
                DriftKind.MISSING_IN_BILLING,
                System.BILLING,
                [],
                f"the ERP holds receivable {erp[0].record_id} for invoice {invoice_id}, "
                "which billing does not have",
            )
            continue
        invoice = billing[0]
        if not erp:
            add(
                DriftKind.MISSING_IN_ERP,
                System.ERP,
                [],
                f"invoice {invoice_id} is {invoice.status} in billing, but the ERP has no "
                f"receivable {receivable_key(invoice_id)}",
            )
            continue
        receivable = sorted(erp, key=lambda r: (r.key != receivable_key(invoice_id), r.record_id))[
            0
        ]
        if invoice.amount != receivable.amount or invoice.currency != receivable.currency:
            add(
                DriftKind.AMOUNT_MISMATCH,
                System.ERP,
                [invoice, receivable],
                f"invoice {invoice_id} is {_money_text(invoice.amount, invoice.currency)} in "
                f"billing, receivable {receivable.record_id} is "
                f"{_money_text(receivable.amount, receivable.currency)}",
            )
        erp_due = receivable.amount_due > 0
        problem: str | None = None
        if invoice.status == "paid" and erp_due:
            problem = "paid in billing, but the ERP receivable is still open"
        elif invoice.status == "void" and erp_due:
            problem = "void in billing, but the ERP receivable is not reversed"
        elif invoice.status == "open" and invoice.amount_due > 0 and not erp_due:
            problem = "open in billing, but the ERP receivable has nothing due"
        if problem is not None:
            add(
                DriftKind.STATUS_MISMATCH,
                System.ERP,
                [invoice, receivable],
                f"invoice {invoice_id} is {problem} ({receivable.record_id}: "
                f"{_money_text(receivable.amount_due, receivable.currency)} due)",
            )
    return InvoiceComparison(items=items, invoices=len(by_invoice), in_flight=in_flight)


# -- the report ------------------------------------------------------------------------------


class ReportStatus(StrEnum):
    SCANNING = "scanning"
    REPAIRING = "repairing"
    DONE = "done"
    INCOMPLETE = "incomplete"  # a listing failed: (that window) was not compared


class ReconciliationReport(BaseModel):
    """What one reconciliation run found and did. Counts are exact; ``items`` holds at most
    ``max_items_per_kind`` items of each kind (``omitted`` says how many more there are)."""

    started_at: datetime
    finished_at: datetime | None = None
    status: ReportStatus = ReportStatus.SCANNING
    error: str | None = None
    scanned: dict[str, int] = Field(
        default_factory=dict, description="Records read per system, and sagas"
    )
    pages: int = 0
    quotes: int = 0
    in_flight: int = 0
    customers: int = Field(default=0, description="CRM accounts linked in billing or ERP")
    invoices: int = Field(default=0, description="Invoices with a record in billing or ERP")
    invoices_in_flight: int = 0
    counts: dict[DriftKind, int] = Field(default_factory=dict)
    remediations: dict[Remediation, int] = Field(default_factory=dict)
    outcomes: dict[Outcome, int] = Field(default_factory=dict)
    items: list[DriftItem] = Field(default_factory=list)
    omitted: int = 0
    run_id: str | None = Field(default=None, description="The run's name in the report store")
    mode: str | None = Field(default=None, description="incremental, full or both (a run)")
    windows: int = Field(default=0, description="Windows compared")
    rows: int = Field(default=0, description="Report rows written to the report store")
    problems: list[str] = Field(
        default_factory=list,
        description="Windows that could not be compared, and why (their marks stayed)",
    )
    notes: list[str] = Field(default_factory=list, description="What the run did not do, and why")
    marks: dict[str, datetime | None] = Field(
        default_factory=dict, description="Each entity's marks after the run"
    )

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def record(self, items: Iterable[DriftItem], max_items_per_kind: int) -> None:
        """Count ``items`` and keep the first ``max_items_per_kind`` of each kind."""
        kept: dict[DriftKind, int] = defaultdict(int)
        for item in self.items:
            kept[item.kind] += 1
        for item in items:
            self.counts[item.kind] = self.counts.get(item.kind, 0) + 1
            self.remediations[item.remediation] = self.remediations.get(item.remediation, 0) + 1
            if item.outcome is not None:
                self.outcomes[item.outcome] = self.outcomes.get(item.outcome, 0) + 1
            if kept[item.kind] < max_items_per_kind:
                kept[item.kind] += 1
                self.items.append(item)
            else:
                self.omitted += 1


def repaired(item: DriftItem) -> DriftItem:
    return item.model_copy(update={"outcome": Outcome.REPAIRED})


def repair_failed(item: DriftItem, reason: str) -> DriftItem:
    """A repair that failed leaves the drift to a person."""
    return item.model_copy(
        update={
            "remediation": Remediation.REVIEW,
            "outcome": Outcome.FAILED,
            "outcome_detail": f"{item.remediation.value} failed: {reason}",
        }
    )


def deferred(item: DriftItem) -> DriftItem:
    return item.model_copy(update={"outcome": Outcome.DEFERRED})


# -- a run ------------------------------------------------------------------------------------


class Phase(StrEnum):
    """What a run reads, in this order. Sagas after their records: a record made while the
    run reads the systems then has its saga listed too. Customers: ERP and billing first,
    so only the CRM accounts linked there are kept."""

    CRM = "crm"
    ERP = "erp"
    BILLING = "billing"
    SAGAS = "sagas"
    ERP_CUSTOMERS = "erp_customers"
    BILLING_CUSTOMERS = "billing_customers"
    CRM_ACCOUNTS = "crm_accounts"
    BILLING_INVOICES = "billing_invoices"
    ERP_RECEIVABLES = "erp_receivables"
    INVOICE_SAGAS = "invoice_sagas"


ORDER_PHASES = (Phase.CRM, Phase.ERP, Phase.BILLING, Phase.SAGAS)
PHASES = (
    *ORDER_PHASES,
    Phase.ERP_CUSTOMERS,
    Phase.BILLING_CUSTOMERS,
    Phase.CRM_ACCOUNTS,
    Phase.BILLING_INVOICES,
    Phase.ERP_RECEIVABLES,
    Phase.INVOICE_SAGAS,
)


class ScanState(BaseModel):
    """How far a run has read: carried into the next run on continue-as-new."""

    started_at: datetime
    phase: Phase = Phase.CRM
    cursor: str | None = None
    pages: int = 0
    records: list[OrderRecord] = Field(default_factory=list)
    sagas: list[SagaState] = Field(default_factory=list)
    customers: list[CustomerRecord] = Field(default_factory=list)
    invoices: list[InvoiceRecord] = Field(default_factory=list)
    invoice_sagas: list[InvoiceSagaState] = Field(default_factory=list)
    scanned: dict[str, int] = Field(default_factory=dict)

    @property
    def carried(self) -> int:
        """Records and sagas held (what continue-as-new carries)."""
        return (
            len(self.records)
            + len(self.sagas)
            + len(self.customers)
            + len(self.invoices)
            + len(self.invoice_sagas)
        )

    def linked_accounts(self) -> set[str]:
        """CRM accounts that billing or the ERP hold a customer for."""
        return {c.account_id for c in self.customers if c.account_id}


class ReconciliationInput(BaseModel):
    """What a run is started with (the Schedule's action holds one)."""

    model_config = ConfigDict(frozen=True)

    page_size: int = Field(default=100, ge=1, le=1000, description="Records per listing call")
    max_items_per_kind: int = Field(
        default=50, ge=1, description="Items of each kind kept in the report (counts are exact)"
    )
    max_repairs: int = Field(
        default=100, ge=0, description="Repairs one run makes; the rest wait for the next run"
    )
    pages_per_run: int = Field(
        default=100, ge=1, description="Listing calls before the run continues as new"
    )
    max_carried: int = Field(
        default=4_000,
        ge=1,
        description="Records a run may hold (180 to 380 bytes each as JSON); past it the run "
        "ends incomplete instead of carrying more than a Temporal payload takes (2 MB)",
    )
    carry: ScanState | None = Field(default=None, description="Set on continue-as-new only")


# Parametrised once, at import: workflows and activities name these.
OrderPage = Page[OrderRecord]
SagaPage = Page[SagaState]
CustomerPage = Page[CustomerRecord]
InvoicePage = Page[InvoiceRecord]
InvoiceSagaPage = Page[InvoiceSagaState]
