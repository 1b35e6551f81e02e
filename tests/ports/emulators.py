"""What the port contract suites need to know about each registered vendor's emulator.

The suites (``test_crm_contract.py``, ``test_billing_contract.py``, ``test_erp_contract.py``)
express every expectation in port terms; the entries below are the only vendor-specific
glue: how many of the port's records the emulator holds, which fault-injection operation and
request a keyed create is, the vendor's own validation error, how its credentials expire,
and (CRM) how a quote comes to exist. Registering a vendor in ``adapters/registry.py`` means
adding its entry here; ``test_every_registered_vendor_has_an_emulator`` fails until then.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from revsync.demo import create_crm_quote
from revsync.settings import Settings
from sandbox import dynamics, hubspot, zuora
from sandbox.app import SandboxState


@dataclass(frozen=True)
class ThrottleAnswer:
    """How the vendor answers when it throttles revsync (its emulator's fault rule renders
    it in the vendor's error shape), and how revsync must read it: ``kind`` of
    :class:`adapters.errors.Throttle`, ``rate`` or ``quota``."""

    status: int
    code: str | None
    message: str
    kind: str
    retry_after: int | None = None


@dataclass(frozen=True)
class Emulator:
    vendor: str
    # How many of the records the port's keyed create makes the emulator holds.
    records: Callable[[SandboxState], int]
    # The fault-injection operation of the keyed create (sandbox/faults.py).
    create_operation: str
    # Method and path suffix of the request that applies the create, given its external key
    # (to lose its answer with tests/adapters/lossy.py).
    create_request: Callable[[str], tuple[str, str]]
    # Status and vendor code of one of the vendor's validation errors.
    validation_error: tuple[int, str]
    # Make the credentials revsync holds stop working (an expired or revoked token).
    expire_credentials: Callable[[SandboxState], None]
    # The vendor's own throttle answer (docs/vendor-fidelity.md, "Throttling and failure
    # classes").
    throttle: ThrottleAnswer


@dataclass(frozen=True)
class CrmEmulator(Emulator):
    # The seeded account (Nordlicht Logistik) as this CRM identifies it.
    account_id: str
    # A quote accepted in the CRM for the account: its id.
    new_quote: Callable[[httpx.AsyncClient, Settings, str], Awaitable[str]]
    # The status the CRM shows for a quote.
    quote_status: Callable[[SandboxState, str], str]


def _rotate(vendor: str) -> Callable[[SandboxState], None]:
    def expire(state: SandboxState) -> None:
        state.tokens[vendor] = f"{vendor}-rotated-elsewhere"

    return expire


def _salesforce_quote_status(state: SandboxState, quote_id: str) -> str:
    (quote,) = [q for q in state.salesforce.snapshot()["quotes"] if q["Id"] == quote_id]
    return str(quote["SBQQ__Status__c"])


async def _hubspot_deal(http: httpx.AsyncClient, settings: Settings, account_id: str) -> str:
    return await hubspot.create_deal(
        http,
        settings.hubspot_base_url,
        settings.hubspot_access_token.get_secret_value(),
        account_id,
        currency="EUR",
        lines=[("PLAT-CORE", "20", "10"), ("ONBOARD-STD", "1", "0")],
    )


def _hubspot_quote_status(state: SandboxState, quote_id: str) -> str:
    return str(state.hubspot.records["deals"][quote_id]["properties"].get("revsync_status"))


CRM_EMULATORS: dict[str, CrmEmulator] = {
    "salesforce": CrmEmulator(
        vendor="salesforce",
        records=lambda state: len(state.salesforce.snapshot()["orders"]),
        # One all-or-none composite orders the quote (CPQ generates the Order) and stamps
        # and activates the Order (adapters/crm/salesforce.py).
        create_operation="composite",
        create_request=lambda key: ("POST", "/composite"),
        validation_error=(400, "FIELD_CUSTOM_VALIDATION_EXCEPTION"),
        expire_credentials=_rotate("salesforce"),
        throttle=ThrottleAnswer(
            403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.", "quota"
        ),
        new_quote=create_crm_quote,
        quote_status=_salesforce_quote_status,
        account_id="0015e00000NordDE1",
    ),
    "hubspot": CrmEmulator(
        vendor="hubspot",
        records=lambda state: len(state.hubspot.snapshot()["orders"]),
        create_operation="batch_upsert",
        create_request=lambda key: ("POST", "/batch/upsert"),
        validation_error=(400, "VALIDATION_ERROR"),
        expire_credentials=_rotate("hubspot"),
        throttle=ThrottleAnswer(
            429,
            "TEN_SECONDLY_ROLLING",
            "You have reached your ten_secondly_rolling limit.",
            "rate",
            retry_after=1,
        ),
        new_quote=_hubspot_deal,
        quote_status=_hubspot_quote_status,
        account_id=hubspot.COMPANY_IDS["0015e00000NordDE1"],
    ),
}

BILLING_EMULATORS: dict[str, Emulator] = {
    "stripe": Emulator(
        vendor="stripe",
        records=lambda state: len(state.stripe.snapshot()["subscriptions"]),
        create_operation="create_subscription",
        create_request=lambda key: ("POST", "/v1/subscriptions"),
        validation_error=(400, "parameter_invalid_integer"),
        expire_credentials=_rotate("stripe"),
        throttle=ThrottleAnswer(
            429, "rate_limit", "Too many requests hit the API too quickly.", "rate"
        ),
    ),
    "zuora": Emulator(
        vendor="zuora",
        records=lambda state: len(state.zuora.snapshot()["subscriptions"]),
        create_operation="create_order",
        create_request=lambda key: ("POST", "/v1/orders"),
        # 531003 is the subscription's termType field, 20 the invalid-value category.
        validation_error=(400, "53100320"),
        expire_credentials=zuora.revoke_credentials,
        throttle=ThrottleAnswer(429, "50000070", "Too many requests", "rate", retry_after=4),
    ),
}

ERP_EMULATORS: dict[str, Emulator] = {
    "netsuite": Emulator(
        vendor="netsuite",
        records=lambda state: len(state.netsuite.snapshot()["salesOrders"]),
        create_operation="create_sales_order",
        create_request=lambda key: ("POST", "/salesOrder"),
        validation_error=(400, "INVALID_FLD_VALUE"),
        expire_credentials=_rotate("netsuite"),
        throttle=ThrottleAnswer(
            429,
            "CONCURRENCY_LIMIT_EXCEEDED",
            "Concurrent request limit exceeded. Request blocked.",
            "rate",
        ),
    ),
    "sap": Emulator(
        vendor="sap",
        records=lambda state: len(state.sap.snapshot()["salesOrders"]),
        create_operation="create_sales_order",
        create_request=lambda key: ("POST", "/API_SALES_ORDER_SRV/A_SalesOrder"),
        validation_error=(400, "V1/390"),
        expire_credentials=_rotate("sap"),
        throttle=ThrottleAnswer(429, None, "Rate limit exceeded", "rate", retry_after=2),
    ),
    "dynamics": Emulator(
        vendor="dynamics",
        records=lambda state: len(state.dynamics.snapshot()["salesorders"]),
        create_operation="create_sales_order",
        # Deep insert is POST only: looked up by the key first, then created.
        create_request=lambda key: ("POST", "/api/data/v9.2/salesorders"),
        # InvalidArgument, Dataverse's validation error.
        validation_error=(400, "0x80040203"),
        expire_credentials=dynamics.revoke_credentials,
        throttle=ThrottleAnswer(
            429,
            "0x80072322",
            "Number of requests exceeded the limit of 6000 over time window of 300 seconds.",
            "rate",
            retry_after=5,
        ),
    ),
}
