"""The ERP item catalog and the rule that every quoted line must match it."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from domain.money import CurrencyCode
from domain.quote import BillingType, Quote


class CatalogItem(BaseModel):
    """A sellable item as the ERP knows it, with its list price per currency."""

    model_config = ConfigDict(frozen=True)

    sku: str
    item_id: str
    name: str
    billing: BillingType
    prices: dict[CurrencyCode, Decimal]
    active: bool = True


class CatalogMismatch(BaseModel):
    line_id: str
    sku: str
    reason: str


def catalog_mismatches(quote: Quote, items: dict[str, CatalogItem]) -> list[CatalogMismatch]:
    """Every line whose product or list price disagrees with the ERP catalog.

    A quote may discount a line, but its unit price must be the catalog list price in the
    quote currency: a different unit price means the CPQ price book and the ERP drifted.
    """
    problems: list[CatalogMismatch] = []
    for line in quote.lines:
        item = items.get(line.sku)

        def problem(reason: str, line_id: str = line.line_id, sku: str = line.sku) -> None:
            problems.append(CatalogMismatch(line_id=line_id, sku=sku, reason=reason))

        if item is None:
            problem("unknown item: not in the ERP catalog")
            continue
        if not item.active:
            problem("item is inactive in the ERP catalog")
            continue
        if item.billing is not line.billing:
            problem(f"billed {line.billing.value} on the quote, {item.billing.value} in the ERP")
        price = item.prices.get(quote.currency)
        if price is None:
            problem(f"no ERP list price in {quote.currency}")
        elif price != line.unit_price:
            problem(
                f"unit price {line.unit_price} {quote.currency} differs from ERP list price "
                f"{price} {quote.currency}"
            )
    return problems
