"""Random vendor faults over the run, through the sandbox's ``POST /_sandbox/faults``.

Four kinds, each a :class:`sandbox.faults.FaultRule`:

- ``5xx``: a vendor answers 500/502/503 without applying the request (transient: retried);
- ``timeout``: a create or update is applied, then the answer is held back longer than the
  adapters' HTTP timeout (an unknown outcome: the keyed retry must find what was made);
- ``429``: throttled, with ``Retry-After`` (transient, retried after that delay);
- ``rejection``: a business refusal that no retry changes. At the ERP sales order the saga
  ends REJECTED, at the subscription it compensates (COMPENSATED), at the CRM write-back it
  parks (NEEDS_ATTENTION at ``update_crm``).

Rules are not aimed at a quote: each fails the next matching calls, whoever makes them.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx

from sandbox.faults import FaultRule

KINDS = ("5xx", "timeout", "429", "rejection")
VENDORS = ("salesforce", "stripe", "netsuite")

# Operations that change something, per vendor (sandbox operation names), forward steps and
# compensations alike. Salesforce's writes are PATCHes of records (``update``), the CRM
# write-back's inside one ``composite`` call.
WRITES: dict[str, tuple[str, ...]] = {
    "salesforce": ("composite", "update"),
    "stripe": ("create_customer", "create_subscription", "cancel_subscription", "void_invoice"),
    "netsuite": ("upsert_customer", "create_sales_order", "update_sales_order"),
}
# The writes every booking makes (a billing customer is created once per account): where a
# timeout after the change was applied is sure to be met.
BOOKING_WRITES: dict[str, tuple[str, ...]] = {
    "salesforce": ("update",),
    "stripe": ("create_subscription",),
    "netsuite": ("upsert_customer", "create_sales_order"),
}

# Business refusals and the outcome each leads to.
REJECTIONS: tuple[dict[str, Any], ...] = (
    {
        "vendor": "netsuite",
        "operation": "create_sales_order",
        "status": 400,
        "code": "USER_ERROR",
        "message": "chaos: the subsidiary is closed for new orders",
    },
    {
        "vendor": "stripe",
        "operation": "create_subscription",
        "status": 402,
        "code": "card_declined",
        "message": "chaos: the customer's card was declined",
    },
    {
        "vendor": "salesforce",
        "operation": "update",
        "status": 400,
        "code": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "message": "chaos: a validation rule refused the order",
    },
)


@dataclass(frozen=True)
class PlannedFault:
    at: float  # seconds after the run started
    kind: str
    rule: FaultRule


def _count(quotes: int, per: int) -> int:
    return max(1, round(quotes / per))


def fault_plan(
    rng: random.Random, quotes: int, window: float, http_timeout_seconds: float
) -> list[PlannedFault]:
    """Faults spread over ``window`` seconds, about one for every three quotes, every kind."""
    hang_ms = int((http_timeout_seconds + 1.5) * 1000)
    planned: list[tuple[str, FaultRule]] = []
    for _ in range(_count(quotes, 8)):
        vendor = rng.choice(VENDORS)
        operation = rng.choice(("*", *WRITES[vendor]))
        rule = FaultRule(
            vendor=vendor,
            operation=operation,
            status=rng.choice((500, 502, 503)),
            times=rng.randint(1, 3),
            message="chaos: vendor unavailable",
        )
        planned.append(("5xx", rule))
    for _ in range(_count(quotes, 20)):
        vendor = rng.choice(VENDORS)
        rule = FaultRule(
            vendor=vendor,
            operation=rng.choice(BOOKING_WRITES[vendor]),
            status=504,
            phase="after",
            hang_ms=hang_ms,
            message="chaos: applied, answer lost",
        )
        planned.append(("timeout", rule))
    for _ in range(_count(quotes, 15)):
        rule = FaultRule(
            vendor=rng.choice(VENDORS),
            status=429,
            times=rng.randint(1, 3),
            retry_after=rng.randint(1, 2),
            message="chaos: slow down",
        )
        planned.append(("429", rule))
    rejections = list(REJECTIONS) + [
        rng.choice(REJECTIONS) for _ in range(_count(quotes, 25) - len(REJECTIONS))
    ]
    planned += [("rejection", FaultRule.model_validate(body)) for body in rejections]
    # The first faults come a little after the first deliveries, the last well within the window.
    return sorted(
        (PlannedFault(rng.uniform(0.05, 0.8) * window, kind, rule) for kind, rule in planned),
        key=lambda p: p.at,
    )


@dataclass(frozen=True)
class Injected:
    rules: int
    expired: int  # rules (or what was left of them) that had not fired when the window ended


async def inject(
    http: httpx.AsyncClient, sandbox_url: str, plan: list[PlannedFault], window: float
) -> Injected:
    """Add each planned rule at its time; when the window ends, drop what has not fired (the
    vendors have recovered: a leftover rule would otherwise fail the circuit breakers' probes
    long after the chaos)."""
    started = time.monotonic()
    url = f"{sandbox_url}/_sandbox/faults"
    for fault in plan:
        await asyncio.sleep(max(0.0, started + fault.at - time.monotonic()))
        body = {"faults": [fault.rule.model_dump(exclude_none=True)]}
        (await http.post(url, json=body)).raise_for_status()
    await asyncio.sleep(max(0.0, started + window - time.monotonic()))
    pending = (await http.get(url)).json()["pending"]
    (await http.post(url, json={"clear": True})).raise_for_status()
    return Injected(rules=len(plan), expired=len(pending))


def fired_kind(fired: dict[str, Any]) -> str:
    """The kind of a fault the sandbox reports as fired (``GET /_sandbox/faults``)."""
    status = int(fired["status"])
    if fired.get("phase") == "after":
        return "timeout"
    if status == 429:
        return "429"
    if status >= 500:
        return "5xx"
    return "rejection"


def fired_by_kind(fired: list[dict[str, Any]]) -> Counter[str]:
    return Counter(fired_kind(f) for f in fired)
