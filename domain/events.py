"""Canonical business events: the facts revsync tells the rest of the company about.

Each event is a CloudEvents 1.0 document in structured JSON mode: the envelope
(:class:`CloudEvent`) carries routing and identity, ``data`` carries one business fact
(:class:`EventData`). The quote-to-cash facts:

- ``quote.booked``: the ERP order and the subscription exist (stage BOOKED);
- ``quote.rejected``: refused before anything was booked;
- ``order.compensated``: refused after booking began; what was booked is undone;
- ``order.parked``: a step waits for an operator.

Each is ``com.revsync.<fact>.v<version>`` as CloudEvents ``type``.

Identity: the event ``id`` is derived from the workflow id and the fact (:func:`event_id`),
never random, so a retried or replayed publication of one fact carries the same id and
consumers deduplicate on ``(source, id)``.

Versioning: a fact's schema version is part of its ``type`` and of its schema file
(``schemas/events/<fact>.v<version>.json``, generated from these models). A change a consumer
could trip on is a new version: a new data class with ``version = 2``, published next to the
old one while consumers move (docs/api.md). A new fact (as ``invoice.posted`` or
``customer.updated`` were) is a data class, an envelope class and an entry in
:data:`ENVELOPES`.

Pure: no I/O and no clock (times are arguments), so safe inside the workflow sandbox.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Final, Literal, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SkipValidation,
    StringConstraints,
    model_validator,
)

from domain.customer_master import FieldValue, MasterField, MasterState, SourceVersion, System
from domain.customer_master.fields import typed_value_input
from domain.money import CurrencyCode
from domain.saga import COMPENSATION_STEPS, QuoteToCashStatus, Step, StepRecord, StepState
from domain.stages import OrderStage

SPEC_VERSION: Final = "1.0"
DATA_CONTENT_TYPE: Final = "application/json"
TYPE_PREFIX: Final = "com.revsync."
QUOTE_TO_CASH_SOURCE: Final = "/revsync/quote-to-cash"
# Fixed forever: changing it changes every event id, and consumers would see duplicates.
EVENT_ID_NAMESPACE: Final = uuid.UUID("a6f48fca-5583-4e5d-bac3-7f16ae80cee7")

# Step names in events are an open vocabulary: the saga may gain steps within a version, so
# consumers must tolerate names they do not know.
StepName = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9_]*$"),
    Field(description="A saga step name, e.g. book_erp_order (open vocabulary)"),
]
Currency = Annotated[
    CurrencyCode,
    Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 currency code"),
]
Amount = Annotated[
    Decimal,
    Field(description="Exact decimal amount in major units (JSON string, never a float)"),
]


def event_id(workflow_id: str, fact: str, *occurrence: str) -> str:
    """The id of one business fact: a UUIDv5 of the workflow id, the fact name and whatever
    tells repeats of that fact within one workflow apart (``occurrence``).

    The same fact of the same saga always gets the same id, whichever worker, attempt or
    replay publishes it. The schema version is not part of it: a v1 and a v2 event of one
    fact share their id, so a consumer moving from v1 to v2 can deduplicate across both."""
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, "|".join((workflow_id, fact, *occurrence))))


class EventData(BaseModel):
    """The ``data`` of an event: one business fact, named :attr:`fact` at :attr:`version`."""

    model_config = ConfigDict(frozen=True)

    fact: ClassVar[str]
    version: ClassVar[int]
    source: ClassVar[str]

    def subject(self) -> str:
        """What the fact is about (the CloudEvents ``subject``), e.g. the quote id."""
        raise NotImplementedError

    def occurrence(self) -> tuple[str, ...]:
        """What tells two occurrences of this fact in one workflow apart; empty for a fact
        that happens at most once per workflow."""
        return ()

    @classmethod
    def event_type(cls) -> str:
        """``com.revsync.<fact>.v<version>``."""
        return f"{TYPE_PREFIX}{cls.fact}.v{cls.version}"

    @classmethod
    def schema_file(cls) -> str:
        """The file name of this version's JSON Schema under ``schemas/events/``."""
        return f"{cls.fact}.v{cls.version}.json"


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 envelope (structured JSON mode). Build one with :func:`event_for`."""

    model_config = ConfigDict(frozen=True)

    specversion: Literal["1.0"] = Field(description="CloudEvents version")
    id: str = Field(
        min_length=1,
        description="Stable per business fact: deduplicate on (source, id)",
    )
    source: str = Field(min_length=1, description="The revsync process that states the fact")
    type: str = Field(description="com.revsync.<fact>.v<version>")
    subject: str = Field(min_length=1, description="What the fact is about, e.g. the quote id")
    time: AwareDatetime = Field(description="When the fact happened")
    datacontenttype: Literal["application/json"]
    dataschema: str = Field(
        json_schema_extra={"format": "uri"},
        description="URL of the JSON Schema of this event (.../events/<fact>.v<version>.json)",
    )
    data: EventData


# -- quote-to-cash facts ----------------------------------------------------------------------


class QuoteToCashFact(EventData):
    """What every quote-to-cash fact says: which quote, whose, how much."""

    source: ClassVar[str] = QUOTE_TO_CASH_SOURCE

    quote_id: str = Field(min_length=1, description="CPQ/CRM quote id")
    account_id: str = Field(min_length=1, description="CRM account id: the customer")
    amount: Amount
    currency: Currency

    def subject(self) -> str:
        return self.quote_id

    @staticmethod
    def _common(status: QuoteToCashStatus) -> dict[str, object]:
        return {
            "quote_id": status.quote_id,
            "account_id": status.account_id,
            "amount": status.amount,
            "currency": status.currency,
        }


def _expect(status: QuoteToCashStatus, *stages: OrderStage) -> None:
    if status.stage not in stages:
        wanted = " or ".join(s.value for s in stages)
        raise ValueError(f"saga {status.workflow_id} is {status.stage.value}, not {wanted}")


def _failed_step(status: QuoteToCashStatus) -> str | None:
    """The forward step whose failure or refusal ended the saga, if one did."""
    for record in reversed(status.steps):
        if record.state is StepState.FAILED and record.step not in COMPENSATION_STEPS:
            return record.step.value
    return None


class QuoteBooked(QuoteToCashFact):
    """The quote is booked: an ERP sales order and a billing subscription exist for it."""

    fact: ClassVar[str] = "quote.booked"
    version: ClassVar[int] = 1

    erp_customer_id: str = Field(min_length=1)
    erp_order_id: str = Field(min_length=1)
    billing_customer_id: str = Field(min_length=1)
    subscription_id: str = Field(min_length=1)
    invoice_id: str | None = Field(
        default=None, description="The subscription's first invoice, when billing made one"
    )
    crm_order_id: str | None = Field(
        default=None,
        description="The order in CRM; null when an operator skipped the CRM write-back",
    )

    @classmethod
    def from_status(cls, status: QuoteToCashStatus) -> Self:
        _expect(status, OrderStage.BOOKED)
        return cls.model_validate(
            cls._common(status)
            | {
                "erp_customer_id": status.erp_customer_id,
                "erp_order_id": status.erp_order_id,
                "billing_customer_id": status.billing_customer_id,
                "subscription_id": status.subscription_id,
                "invoice_id": status.invoice_id,
                "crm_order_id": status.crm_order_id,
            }
        )


class QuoteRejected(QuoteToCashFact):
    """The quote was refused before anything was booked: nothing exists to undo."""

    fact: ClassVar[str] = "quote.rejected"
    version: ClassVar[int] = 1

    reason: str = Field(min_length=1, description="Why, as shown in CRM")
    failed_step: StepName | None = Field(
        default=None, description="The step that refused it (await_approval: a person did)"
    )

    @classmethod
    def from_status(cls, status: QuoteToCashStatus) -> Self:
        _expect(status, OrderStage.REJECTED)
        return cls.model_validate(
            cls._common(status)
            | {"reason": status.reason or "rejected", "failed_step": _failed_step(status)}
        )


class Reversal(BaseModel):
    """One booked record undone by a compensation."""

    model_config = ConfigDict(frozen=True)

    step: StepName = Field(description="The compensation, e.g. cancel_erp_order")
    reverses: StepName = Field(description="The step whose work it undid, e.g. book_erp_order")
    record_id: str | None = Field(
        default=None, description="The record undone: ERP order, invoice or subscription id"
    )
    by_hand: bool = Field(
        description="An operator undid it outside revsync and told the saga to skip the step"
    )


# compensation step -> (the forward step it reverses, the status field naming the record)
_REVERSES: Final[dict[Step, tuple[Step, str]]] = {
    Step.CANCEL_ERP_ORDER: (Step.BOOK_ERP_ORDER, "erp_order_id"),
    Step.VOID_INVOICE: (Step.PROVISION_BILLING, "invoice_id"),
    Step.CANCEL_SUBSCRIPTION: (Step.PROVISION_BILLING, "subscription_id"),
}


def _reversals(status: QuoteToCashStatus) -> list[Reversal]:
    latest: dict[Step, StepRecord] = {}
    for record in status.steps:
        if record.step in _REVERSES:
            latest.pop(record.step, None)  # keep execution order of the final attempts
            latest[record.step] = record
    reversals = []
    for step, record in latest.items():
        if record.state not in (StepState.DONE, StepState.SKIPPED):
            continue
        reverses, field = _REVERSES[step]
        reversals.append(
            Reversal(
                step=step.value,
                reverses=reverses.value,
                record_id=getattr(status, field),
                by_hand=record.state is StepState.SKIPPED,
            )
        )
    return reversals


class OrderCompensated(QuoteToCashFact):
    """The quote was refused after booking began; what was booked has been undone."""

    fact: ClassVar[str] = "order.compensated"
    version: ClassVar[int] = 1

    reason: str = Field(min_length=1, description="Why the order was unwound")
    failed_step: StepName | None = Field(
        default=None, description="The step whose refusal (or an operator) unwound it"
    )
    undone: list[Reversal] = Field(description="What was undone, in the order it was undone")

    @classmethod
    def from_status(cls, status: QuoteToCashStatus) -> Self:
        _expect(status, OrderStage.COMPENSATED)
        return cls.model_validate(
            cls._common(status)
            | {
                "reason": status.reason or "compensated",
                "failed_step": _failed_step(status),
                "undone": _reversals(status),
            }
        )


class OrderParked(QuoteToCashFact):
    """A step ran out of retries (or was refused where refusing cannot unwind the order):
    the saga waits for an operator to retry, compensate or skip it."""

    fact: ClassVar[str] = "order.parked"
    version: ClassVar[int] = 1

    blocked_step: StepName
    reason: str = Field(min_length=1, description="Why the step could not finish")
    parked_at: AwareDatetime = Field(description="When the saga parked")
    allowed: list[str] = Field(
        description="Decisions the operator may take (retry, compensate, skip; open vocabulary)"
    )

    def occurrence(self) -> tuple[str, ...]:
        # A saga can park more than once, even at one step; when it parked tells them apart.
        return (self.blocked_step, self.parked_at.isoformat())

    @classmethod
    def from_status(cls, status: QuoteToCashStatus) -> Self:
        _expect(status, OrderStage.NEEDS_ATTENTION)
        parked = status.parked
        if parked is None:
            raise ValueError(f"saga {status.workflow_id} needs attention but is not parked")
        return cls.model_validate(
            cls._common(status)
            | {
                "blocked_step": parked.step.value,
                "reason": parked.reason,
                "parked_at": parked.since,
                "allowed": [action.value for action in parked.allowed],
            }
        )


# -- invoice-to-revenue facts -----------------------------------------------------------------

INVOICE_TO_REVENUE_SOURCE: Final = "/revsync/invoice-to-revenue"


class InvoiceFact(EventData):
    """What every invoice-to-revenue fact says: which invoice, whose, in which currency."""

    source: ClassVar[str] = INVOICE_TO_REVENUE_SOURCE

    invoice_id: str = Field(min_length=1, description="Billing invoice id")
    account_id: str = Field(min_length=1, description="CRM account id: the customer")
    currency: Currency

    def subject(self) -> str:
        return self.invoice_id


class InvoicePosted(InvoiceFact):
    """The finalized invoice is a receivable in the ERP."""

    fact: ClassVar[str] = "invoice.posted"
    version: ClassVar[int] = 1

    total: Amount = Field(description="Lines plus tax")
    tax: Amount
    issue_date: date
    due_date: date
    erp_customer_id: str = Field(min_length=1)
    receivable_id: str = Field(min_length=1, description="ERP id of the receivable")


class RevenueRecognized(InvoiceFact):
    """A period closed and its revenue journals are posted (one event per period)."""

    fact: ClassVar[str] = "revenue.recognized"
    version: ClassVar[int] = 1

    period: str = Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="Accounting period YYYY-MM")
    amount: Amount = Field(description="Revenue recognised in the period (negative: taken back)")
    journal_ids: list[str] = Field(description="Keys of the journals posted for the period")
    recognised_to_date: Amount = Field(description="Revenue of the invoice recognised so far")

    def occurrence(self) -> tuple[str, ...]:
        return (self.period,)


class PaymentApplied(InvoiceFact):
    """A billing payment is applied to the ERP receivable (one event per payment)."""

    fact: ClassVar[str] = "payment.applied"
    version: ClassVar[int] = 1

    payment_id: str = Field(min_length=1, description="Billing payment id")
    amount: Amount
    applied: Amount = Field(description="What the ERP applied to the receivable")
    paid_on: date
    amount_due: Amount = Field(description="What is still owed after it")

    def occurrence(self) -> tuple[str, ...]:
        return (self.payment_id,)


class InvoiceVoided(InvoiceFact):
    """The invoice was voided: its receivable and its revenue are reversed."""

    fact: ClassVar[str] = "invoice.voided"
    version: ClassVar[int] = 1

    period: str = Field(
        pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="Period of the reversal journals"
    )
    reversed_revenue: Amount = Field(description="Recognised revenue reversed (negative)")
    cancelled_revenue: Amount = Field(description="Scheduled revenue never recognised")
    receivable_id: str | None = Field(default=None, description="The ERP receivable reversed")


# -- customer-master facts ------------------------------------------------------------------

CUSTOMER_MASTER_SOURCE: Final = "/revsync/customer-master"


def _untitled_value(schema: dict[str, Any]) -> None:
    # The union of values untitled, so each alternative keeps its own title (Money,
    # Address...) and the schema compatibility guard tells them apart.
    schema["properties"]["value"].pop("title", None)


class GoldenFieldChange(BaseModel):
    """One golden field's new value and the system that owns the field (where it came
    from: only an owner's change becomes golden)."""

    model_config = ConfigDict(frozen=True, json_schema_extra=_untitled_value)

    field: MasterField = Field(description="The golden-record field")
    value: Annotated[FieldValue, SkipValidation] = Field(
        description="Its new value: a string, a money object (credit_limit), an address "
        "object (billing_address); null when the owner cleared it",
    )
    owner: System = Field(description="The system that owns the field and changed it")

    @model_validator(mode="before")
    @classmethod
    def _typed(cls, data: Any) -> Any:
        return typed_value_input(data)


class CustomerUpdated(EventData):
    """An owner's change became golden: the fields whose golden value changed (stale,
    unchanged, duplicate and non-owner changes publish nothing). One event per applied change
    event; its id derives from the source system and event id, so a redelivered change
    publishes nothing new."""

    fact: ClassVar[str] = "customer.updated"
    version: ClassVar[int] = 1
    source: ClassVar[str] = CUSTOMER_MASTER_SOURCE

    golden_id: str = Field(min_length=1, description="Golden customer id (the CRM account id)")
    changes: list[GoldenFieldChange] = Field(
        min_length=1, description="The fields whose golden value changed, with their new values"
    )
    source_system: System = Field(description="The system whose change event it was")
    source_record_id: str = Field(min_length=1, description="That system's id of the customer")
    source_event_id: str = Field(min_length=1, description="That system's event id")
    source_version: SourceVersion = Field(
        description="When the source modified its record (and its revision within that instant)"
    )
    state: MasterState = Field(description="The golden record's state after the change")
    records: dict[System, list[str]] = Field(
        description="The customer's record ids in each linked system"
    )

    def subject(self) -> str:
        return self.golden_id

    def occurrence(self) -> tuple[str, ...]:
        return (self.source_system.value, self.source_event_id)


# -- envelopes: one per event type, so each schema pins its ``type`` and ``data`` -----------


class QuoteBookedEvent(CloudEvent):
    """A ``quote.booked`` fact in its CloudEvents envelope."""

    type: Literal["com.revsync.quote.booked.v1"]
    data: QuoteBooked


class QuoteRejectedEvent(CloudEvent):
    """A ``quote.rejected`` fact in its CloudEvents envelope."""

    type: Literal["com.revsync.quote.rejected.v1"]
    data: QuoteRejected


class OrderCompensatedEvent(CloudEvent):
    """A ``order.compensated`` fact in its CloudEvents envelope."""

    type: Literal["com.revsync.order.compensated.v1"]
    data: OrderCompensated


class OrderParkedEvent(CloudEvent):
    """A ``order.parked`` fact in its CloudEvents envelope."""

    type: Literal["com.revsync.order.parked.v1"]
    data: OrderParked


class InvoicePostedEvent(CloudEvent):
    """A ``invoice.posted`` fact in its CloudEvents envelope."""

    type: Literal["com.revsync.invoice.posted.v1"]
    data: InvoicePosted


class RevenueRecognizedEvent(CloudEvent):
    """A ``revenue.recognized`` fact in its CloudEvents envelope."""

    type: Literal["com.revsync.revenue.recognized.v1"]
    data: RevenueRecognized


class PaymentAppliedEvent(CloudEvent):
    """A ``payment.applied`` fact in its CloudEvents envelope."""

    type: Literal["com.revsync.payment.applied.v1"]
    data: PaymentApplied


class InvoiceVoidedEvent(CloudEvent):
    """A ``invoice.voided`` fact in its CloudEvents envelope."""

    type: Literal["com.revsync.invoice.voided.v1"]
    data: InvoiceVoided


class CustomerUpdatedEvent(CloudEvent):
    """A ``customer.updated`` fact in its CloudEvents envelope."""

    type: Literal["com.revsync.customer.updated.v1"]
    data: CustomerUpdated


ENVELOPES: Final[dict[type[EventData], type[CloudEvent]]] = {
    QuoteBooked: QuoteBookedEvent,
    QuoteRejected: QuoteRejectedEvent,
    OrderCompensated: OrderCompensatedEvent,
    OrderParked: OrderParkedEvent,
    InvoicePosted: InvoicePostedEvent,
    RevenueRecognized: RevenueRecognizedEvent,
    PaymentApplied: PaymentAppliedEvent,
    InvoiceVoided: InvoiceVoidedEvent,
    CustomerUpdated: CustomerUpdatedEvent,
}


def event_for(data: EventData, *, workflow_id: str, time: datetime, schema_base: str) -> CloudEvent:
    """The event stating ``data``, as the workflow ``workflow_id`` established it at ``time``.

    ``schema_base`` is where the schemas are published, e.g. the gateway's
    ``https://revsync.example.com/v1/schemas``; ``dataschema`` is
    ``<schema_base>/events/<fact>.v<version>.json``."""
    envelope = ENVELOPES.get(type(data))
    if envelope is None:
        raise ValueError(f"{type(data).__name__} has no envelope in domain.events.ENVELOPES")
    return envelope.model_validate(
        {
            "specversion": SPEC_VERSION,
            "id": event_id(workflow_id, data.fact, *data.occurrence()),
            "source": data.source,
            "type": data.event_type(),
            "subject": data.subject(),
            "time": time,
            "datacontenttype": DATA_CONTENT_TYPE,
            "dataschema": f"{schema_base.rstrip('/')}/events/{data.schema_file()}",
            "data": data,
        }
    )
