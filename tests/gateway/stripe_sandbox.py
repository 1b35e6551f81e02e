"""The Stripe emulator behind a gateway under test: accepted quotes made there, their
``quote.accepted`` events as Stripe renders them (no lines), and the Stripe client the
gateway reads the lines with."""

from __future__ import annotations

from typing import Any

import httpx

from adapters.billing.stripe import StripeBilling
from sandbox.app import DEFAULT_TOKENS, SandboxState, create_app
from sandbox.stripe import SandboxQuote

ACCOUNT = "0015e00000AcmeUS1"
# 20 Platform Core seats at 45.00 a month, Premium Support at 499.00 a month, one onboarding.
LINES: list[dict[str, Any]] = [
    {"sku": "PLAT-CORE", "quantity": 20, "unit_amount": 4500, "recurring": "month"},
    {"sku": "SUPPORT-PREMIUM", "unit_amount": 49900, "recurring": "month"},
    {"sku": "ONBOARD-STD", "unit_amount": 250000},
]


def reader(state: SandboxState, api_key: str = DEFAULT_TOKENS["stripe"]) -> StripeBilling:
    """The gateway's Stripe client, on an in-process client to the emulator."""
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(state)), base_url="http://sandbox"
    )
    return StripeBilling(http, base_url="http://sandbox/stripe", api_key=api_key)


def accepted_quote(state: SandboxState, quote_id: str, **spec: Any) -> dict[str, Any]:
    """An accepted quote made in the emulator (the default lines, for the Acme account)."""
    body = {"id": quote_id, "account_id": ACCOUNT, "lines": LINES, **spec}
    return state.stripe.create_sandbox_quote(SandboxQuote.model_validate(body))


def quote_event(state: SandboxState, quote_id: str, type: str = "quote.accepted") -> dict[str, Any]:
    """The event Stripe sends about the quote (its ``data.object`` without the lines)."""
    return state.stripe.quote_event(quote_id, type)
