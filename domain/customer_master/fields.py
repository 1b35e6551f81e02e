"""The customer master's vocabulary: systems, fields, their values, and who owns each field.

:data:`OWNERSHIP` is the one survivorship table: for every golden-record field, the system
whose value wins, and for every other system that holds a copy of the field, what happens
when that system changes its copy (:class:`NonOwnerPolicy`).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SkipValidation,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from domain.customer import Address, NonBlank
from domain.customer_master.normalise import normalise_domain, normalise_tax_id
from domain.money import Money

GoldenId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
"""A golden customer id: letters, digits, ``_``, ``.``, ``-`` (it is part of the workflow id
``customer-<golden id>`` and of idempotency keys, which use ``:`` as a separator)."""


class System(StrEnum):
    """A system of record that holds customer data."""

    CRM = "crm"
    BILLING = "billing"
    ERP = "erp"


class MasterField(StrEnum):
    """A field of the golden customer record."""

    NAME = "name"
    OWNER = "owner"  # the account owner (sales rep), as a user id or e-mail
    WEBSITE = "website"
    EMAIL = "email"  # where invoices go
    LEGAL_ENTITY = "legal_entity"
    TAX_ID = "tax_id"
    CREDIT_LIMIT = "credit_limit"
    BILLING_ADDRESS = "billing_address"
    PAYMENT_METHOD_STATE = "payment_method_state"


class PaymentMethodState(StrEnum):
    """The state of the customer's default payment method, as the billing system sees it."""

    VALID = "valid"
    MISSING = "missing"
    EXPIRED = "expired"
    FAILING = "failing"  # the last charge on it failed


FieldValue = Money | Address | PaymentMethodState | str | None
"""The value of one field; None when the system holds nothing (a cleared field)."""


def _not_negative(money: Money | None) -> Money | None:
    if money is not None and money.amount < Decimal(0):
        raise ValueError("a credit limit cannot be negative")
    return money


EmailAddress = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[^@\s]+@[^@\s]+$")
]

_FIELD_TYPES: Mapping[MasterField, TypeAdapter[Any]] = MappingProxyType(
    {
        MasterField.NAME: TypeAdapter(NonBlank),
        MasterField.OWNER: TypeAdapter(NonBlank | None),
        MasterField.WEBSITE: TypeAdapter(NonBlank | None),
        MasterField.EMAIL: TypeAdapter(EmailAddress | None),
        MasterField.LEGAL_ENTITY: TypeAdapter(NonBlank | None),
        MasterField.TAX_ID: TypeAdapter(NonBlank | None),
        MasterField.CREDIT_LIMIT: TypeAdapter(
            Annotated[Money | None, AfterValidator(_not_negative)]
        ),
        MasterField.BILLING_ADDRESS: TypeAdapter(Address | None),
        MasterField.PAYMENT_METHOD_STATE: TypeAdapter(PaymentMethodState | None),
    }
)


def field_value(field: MasterField, raw: object) -> FieldValue:
    """``raw`` validated as a value of ``field`` (a name is a non-blank string, a credit limit
    a non-negative :class:`Money`...). Raises ValueError naming the field."""
    try:
        value: FieldValue = _FIELD_TYPES[field].validate_python(raw)
    except ValidationError as exc:
        problems = "; ".join(str(error["msg"]) for error in exc.errors())
        raise ValueError(f"{field.value}: {problems}") from None
    return value


def _typed_changes(raw: object) -> dict[MasterField, FieldValue]:
    if not isinstance(raw, Mapping):
        raise ValueError("expected a mapping of field name to value")
    typed: dict[MasterField, FieldValue] = {}
    for key, value in raw.items():
        try:
            field = MasterField(key)
        except ValueError:
            known = ", ".join(f.value for f in MasterField)
            raise ValueError(f"unknown field {key!r}: expected one of {known}") from None
        typed[field] = field_value(field, value)
    return {field: typed[field] for field in MasterField if field in typed}


FieldChanges = Annotated[
    dict[MasterField, FieldValue], SkipValidation, BeforeValidator(_typed_changes)
]
"""Field name -> value, each value validated as its field's type, in :class:`MasterField`
order."""


def typed_value_input(data: Any) -> Any:
    """For a model with a ``field`` and a ``value``: the input with ``value`` validated as
    that field's type (used as a ``mode="before"`` model validator)."""
    if isinstance(data, Mapping) and "field" in data and "value" in data:
        field = MasterField(data["field"])
        return {**data, "field": field, "value": field_value(field, data["value"])}
    return data


def _words(text: str) -> str:
    return " ".join(text.split()).casefold()


def equivalent(field: MasterField, a: FieldValue, b: FieldValue) -> bool:
    """Whether two values of ``field`` say the same thing, though written differently:
    tax ids compare normalised (``DE 123.456.789`` is ``DE123456789``), websites by domain,
    e-mails, names, owners and legal entities ignoring case and spacing. Used to tell a
    system's echo of the golden value from a real change; owner changes compare exactly."""
    if a == b:
        return True
    if not isinstance(a, str) or not isinstance(b, str):
        return False
    if field is MasterField.TAX_ID:
        return normalise_tax_id(a) == normalise_tax_id(b)
    if field is MasterField.WEBSITE:
        domain = normalise_domain(a)
        return domain is not None and domain == normalise_domain(b)
    if field in (
        MasterField.NAME,
        MasterField.OWNER,
        MasterField.EMAIL,
        MasterField.LEGAL_ENTITY,
    ):
        return _words(a) == _words(b)
    return False


class NonOwnerPolicy(StrEnum):
    """What happens when a system that is not a field's owner changes its copy."""

    IGNORE = "ignore"  # the copy is overwritten by the next propagation; nothing is kept
    REVIEW = "review"  # kept as a proposal for a data steward, who may push it to the owner


class FieldRule(BaseModel):
    """Who owns one field, and which other systems hold a copy of it."""

    model_config = ConfigDict(frozen=True)

    owner: System
    copies: dict[System, NonOwnerPolicy] = Field(
        description="Systems that receive the owner's value, and what their own change means"
    )
    why: NonBlank

    @model_validator(mode="after")
    def _owner_holds_no_copy(self) -> FieldRule:
        if self.owner in self.copies:
            raise ValueError(f"{self.owner.value} owns the field; it cannot also hold a copy")
        return self

    def policy(self, system: System) -> NonOwnerPolicy:
        """What a change by ``system`` (not the owner) means. A system that holds no copy
        of the field has no business changing it: ignored."""
        return self.copies.get(system, NonOwnerPolicy.IGNORE)


_C, _B, _E = System.CRM, System.BILLING, System.ERP
_IGNORE, _REVIEW = NonOwnerPolicy.IGNORE, NonOwnerPolicy.REVIEW

OWNERSHIP: Mapping[MasterField, FieldRule] = MappingProxyType(
    {
        MasterField.NAME: FieldRule(
            owner=_C,
            copies={_B: _IGNORE, _E: _REVIEW},
            why="Sales maintains the account name in CRM. Billing's customer name is often "
            "a contact or card holder typed at checkout (ignored); a rename in ERP is "
            "usually finance correcting it, worth a steward's look.",
        ),
        MasterField.OWNER: FieldRule(
            owner=_C,
            copies={_E: _IGNORE},
            why="Account ownership is a sales territory decision made in CRM; ERP keeps a "
            "copy for commissions.",
        ),
        MasterField.WEBSITE: FieldRule(
            owner=_C,
            copies={_E: _IGNORE},
            why="Marketing and sales keep the website in CRM; it is informational in ERP.",
        ),
        MasterField.EMAIL: FieldRule(
            owner=_B,
            copies={_C: _REVIEW, _E: _IGNORE},
            why="The invoice recipient is maintained where invoices and dunning are sent "
            "from, including the customer's own portal; a rep entering a new billing "
            "contact in CRM may know better.",
        ),
        MasterField.LEGAL_ENTITY: FieldRule(
            owner=_E,
            copies={_C: _REVIEW, _B: _IGNORE},
            why="Finance verifies the registered legal name the ledger and invoices carry.",
        ),
        MasterField.TAX_ID: FieldRule(
            owner=_E,
            copies={_C: _REVIEW, _B: _REVIEW},
            why="Finance validates tax ids (VIES, TIN checks) before they reach the ledger; "
            "ids entered by reps or by customers in the billing portal are proposals.",
        ),
        MasterField.CREDIT_LIMIT: FieldRule(
            owner=_E,
            copies={_C: _IGNORE},
            why="Credit control sets credit limits in ERP; CRM shows a read-only copy.",
        ),
        MasterField.BILLING_ADDRESS: FieldRule(
            owner=_E,
            copies={_C: _REVIEW, _B: _REVIEW},
            why="The bill-to address decides tax and sits on the ERP receivable; customers "
            "and reps report moves through billing and CRM.",
        ),
        MasterField.PAYMENT_METHOD_STATE: FieldRule(
            owner=_B,
            copies={_C: _IGNORE, _E: _IGNORE},
            why="Only the billing system sees cards, mandates and failed charges.",
        ),
    }
)
"""The survivorship table: field -> its owner and the systems holding a copy."""

if set(OWNERSHIP) != set(MasterField):  # pragma: no cover - guards edits of the table
    raise RuntimeError("OWNERSHIP must have exactly one rule per MasterField")
