"""Realistic accepted quotes built from the seed price book: what a CPQ would send."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sandbox.seed import ACCOUNTS, BOOKABLE_ACCOUNT_IDS, CATALOG

_ACCOUNTS = {a["Id"]: a for a in ACCOUNTS}
_SELLABLE = [item for item in CATALOG if not item.get("isInactive")]
_OWNERS = ["maya.chen@seller.example", "tom.okafor@seller.example", "ines.garcia@seller.example"]


def price(sku: str, currency: str) -> Decimal:
    for item in CATALOG:
        if item["itemId"] == sku:
            return Decimal(item["prices"][currency])
    raise KeyError(sku)


def account_currency(account_id: str) -> str:
    return str(_ACCOUNTS[account_id]["CurrencyIsoCode"])


def quote_payload(
    quote_id: str,
    *,
    account_id: str = "0015e00000AcmeUS1",
    rng: random.Random | None = None,
    today: date | None = None,
    currency: str | None = None,
) -> dict[str, Any]:
    """A quote-accepted payload (JSON-ready) for ``account_id``, priced from the catalog in
    the seed account's currency (``currency`` for an account of another CRM's ids).

    With ``rng`` the lines, quantities and discounts vary; without it the quote is fixed:
    20 seats of Platform Core at 10% off, Premium Support and one onboarding.
    """
    currency = currency or account_currency(account_id)
    today = today or datetime.now(UTC).date()
    if rng is None:
        picks = [
            ("PLAT-CORE", Decimal(20), Decimal(10)),
            ("SUPPORT-PREMIUM", Decimal(1), Decimal(0)),
            ("ONBOARD-STD", Decimal(1), Decimal(0)),
        ]
    else:
        recurring = [i for i in _SELLABLE if i["billing"] == "recurring"]
        one_time = [i for i in _SELLABLE if i["billing"] == "one_time"]
        chosen = rng.sample(recurring, rng.randint(1, len(recurring)))
        chosen += rng.sample(one_time, rng.randint(0, len(one_time)))
        picks = [
            (
                item["itemId"],
                Decimal(rng.choice([1, 5, 10, 25, 50, 120]))
                if "seat" in item["displayName"]
                else Decimal(1),
                Decimal(rng.choice([0, 0, 5, 10, 12.5, 15])),
            )
            for item in chosen
        ]
    lines = [
        {
            "line_id": f"L{n}",
            "sku": sku,
            "quantity": str(quantity),
            "unit_price": str(price(sku, currency)),
            "discount_percent": str(discount),
            "billing": next(i["billing"] for i in CATALOG if i["itemId"] == sku),
        }
        for n, (sku, quantity, discount) in enumerate(picks, start=1)
    ]
    return {
        "quote_id": quote_id,
        "account_id": account_id,
        "opportunity_id": f"006{quote_id[-12:]}",
        "owner": (rng.choice(_OWNERS) if rng else _OWNERS[0]),
        "currency": currency,
        "payment_terms": (rng.choice(["NET30", "NET15", "DUE_ON_RECEIPT"]) if rng else "NET30"),
        "term_months": (rng.choice([12, 24, 36]) if rng else 12),
        "start_date": (today + timedelta(days=1)).isoformat(),
        "accepted_at": datetime.now(UTC).isoformat(),
        "lines": lines,
    }


def random_account(rng: random.Random) -> str:
    return str(rng.choice(BOOKABLE_ACCOUNT_IDS))
