"""Money: ``Decimal`` amounts in an ISO 4217 currency. Never floats."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

# ISO 4217 codes accepted by revsync, with their minor-unit exponent.
MINOR_UNITS: dict[str, int] = {
    "AED": 2,
    "AUD": 2,
    "BRL": 2,
    "CAD": 2,
    "CHF": 2,
    "CLP": 0,
    "CNY": 2,
    "CZK": 2,
    "DKK": 2,
    "EUR": 2,
    "GBP": 2,
    "HKD": 2,
    "HUF": 2,
    "IDR": 2,
    "ILS": 2,
    "INR": 2,
    "ISK": 0,
    "JPY": 0,
    "KRW": 0,
    "KWD": 3,
    "MXN": 2,
    "MYR": 2,
    "NOK": 2,
    "NZD": 2,
    "PHP": 2,
    "PLN": 2,
    "SAR": 2,
    "SEK": 2,
    "SGD": 2,
    "THB": 2,
    "TRY": 2,
    "TWD": 2,
    "USD": 2,
    "ZAR": 2,
    "BHD": 3,
    "JOD": 3,
    "OMR": 3,
}


def _check_currency(code: str) -> str:
    if code not in MINOR_UNITS:
        raise ValueError(
            f"unsupported currency {code!r}: expected an ISO 4217 code such as USD, EUR or JPY"
        )
    return code


CurrencyCode = Annotated[str, AfterValidator(_check_currency)]


def minor_units(currency: str) -> int:
    """Number of decimal places the currency uses (USD 2, JPY 0, KWD 3)."""
    return MINOR_UNITS[_check_currency(currency)]


def quantize(amount: Decimal, currency: str) -> Decimal:
    """Round half-up to the currency's smallest unit."""
    exponent = Decimal(1).scaleb(-minor_units(currency))
    return amount.quantize(exponent, rounding=ROUND_HALF_UP)


def to_minor(amount: Decimal, currency: str) -> int:
    """Amount in the smallest currency unit (cents), as vendors such as Stripe expect."""
    return int(quantize(amount, currency).scaleb(minor_units(currency)))


def from_minor(value: int, currency: str) -> Decimal:
    return Decimal(value).scaleb(-minor_units(currency))


class Money(BaseModel):
    """An exact amount in one currency."""

    model_config = ConfigDict(frozen=True)

    amount: Decimal
    currency: CurrencyCode

    def __str__(self) -> str:
        return f"{quantize(self.amount, self.currency):,} {self.currency}"
