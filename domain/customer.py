"""The customer (CRM account) as every system must agree on it."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from domain.money import CurrencyCode

NonBlank = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]


class Address(BaseModel):
    model_config = ConfigDict(frozen=True)

    line1: NonBlank
    line2: str | None = None
    city: NonBlank
    region: str | None = None
    postal_code: NonBlank
    country: CountryCode = Field(description="ISO 3166-1 alpha-2 country code")


class CreditCheck(StrEnum):
    APPROVED = "approved"
    PENDING = "pending"
    DECLINED = "declined"


class Customer(BaseModel):
    """A customer account. ``account_id`` is the CRM's id, the key every system shares."""

    model_config = ConfigDict(frozen=True)

    account_id: NonBlank
    name: NonBlank
    legal_entity: NonBlank = Field(description="Registered legal name used on invoices")
    tax_id: str | None = Field(default=None, description="VAT/GST/EIN; required outside the US")
    email: NonBlank
    billing_address: Address
    currency: CurrencyCode | None = Field(default=None, description="Preferred billing currency")
    existing_customer: bool = Field(
        default=False, description="Has bought before (a customer, not a prospect)"
    )
    credit_check: CreditCheck | None = Field(
        default=None, description="Outcome of the credit check, if one was run"
    )


class AccountProblem(BaseModel):
    field: str
    message: str


def account_problems(customer: Customer) -> list[AccountProblem]:
    """Business checks a CRM account must pass before revsync books anything for it."""
    problems: list[AccountProblem] = []
    country = customer.billing_address.country
    if country != "US" and not (customer.tax_id and customer.tax_id.strip()):
        problems.append(
            AccountProblem(
                field="tax_id",
                message=f"a tax id is required for customers billed in {country}",
            )
        )
    if "@" not in customer.email:
        problems.append(AccountProblem(field="email", message="billing email is not an address"))
    return problems
