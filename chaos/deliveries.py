"""Quotes and their quote-accepted webhooks, as a CPQ that retries and repeats itself would send
them: out of order, some twice at once, some again later.

Every quote is first created in the CRM (the sandbox's Salesforce), before any fault is
injected, as :func:`revsync.demo.create_crm_quote` does. A few (about one in twenty) are for
the account that cannot be invoiced (no tax id), which the saga refuses (REJECTED), and a few
(about one in thirty) carry a 30% discount, which waits for a manager (AWAITING_APPROVAL).

Each delivery is signed afresh (the signature carries a timestamp) and retried, with backoff,
on a 5xx or a connection error until the gateway accepts it: while the Temporal server
restarts, the gateway cannot start sagas.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from adapters.webhooks import cpq
from revsync.demo import create_crm_quote
from revsync.settings import Settings, secret_list
from sandbox.quotes import quote_payload, random_account
from sandbox.seed import ACCOUNTS, BOOKABLE_ACCOUNT_IDS

UNBOOKABLE_ACCOUNT_IDS = [a["Id"] for a in ACCOUNTS if a["Id"] not in BOOKABLE_ACCOUNT_IDS]
UNBOOKABLE_SHARE = 0.05
NEEDS_APPROVAL_SHARE = 0.03
DUPLICATE_SHARE = 0.25
# A repeat sent at the same moment as the first delivery (two gateway calls racing).
CONCURRENT_SHARE = 0.3
GIVE_UP_AFTER_SECONDS = 180.0


@dataclass(frozen=True)
class Delivery:
    at: float  # seconds after the run started
    quote_id: str
    repeat: bool


@dataclass
class DeliveryLog:
    verdicts: Counter[str] = field(default_factory=Counter)  # started / duplicate
    retries: int = 0
    failed: list[str] = field(default_factory=list)  # "quote: why", never accepted

    @property
    def sent(self) -> int:
        return sum(self.verdicts.values()) + len(self.failed)


async def create_quotes(
    http: httpx.AsyncClient, settings: Settings, rng: random.Random, count: int
) -> dict[str, dict[str, Any]]:
    """``count`` quotes created in the CRM; their webhook payloads by quote id, in order."""
    accounts = [
        rng.choice(UNBOOKABLE_ACCOUNT_IDS)
        if rng.random() < UNBOOKABLE_SHARE
        else random_account(rng)
        for _ in range(count)
    ]
    limit = asyncio.Semaphore(8)

    async def create(account_id: str) -> str:
        async with limit:
            return await create_crm_quote(http, settings, account_id)

    quote_ids = await asyncio.gather(*(create(a) for a in accounts))
    payloads = {}
    for quote_id, account_id in zip(quote_ids, accounts, strict=True):
        payload = quote_payload(quote_id, account_id=account_id, rng=rng)
        if rng.random() < NEEDS_APPROVAL_SHARE:
            payload["lines"][0]["discount_percent"] = "30"
        payloads[quote_id] = payload
    return payloads


def delivery_plan(rng: random.Random, quote_ids: list[str], window: float) -> list[Delivery]:
    """Every quote once, in shuffled order over most of ``window``; a quarter of them again,
    some at the same moment, the others later (up to the end of the window)."""
    order = list(quote_ids)
    rng.shuffle(order)
    times = sorted(rng.uniform(0, 0.7 * window) for _ in order)
    plan = [Delivery(at, quote_id, repeat=False) for at, quote_id in zip(times, order, strict=True)]
    for first in rng.sample(plan, round(len(plan) * DUPLICATE_SHARE)):
        at = first.at if rng.random() < CONCURRENT_SHARE else rng.uniform(first.at, window)
        plan.append(Delivery(at, first.quote_id, repeat=True))
    return sorted(plan, key=lambda d: d.at)


async def deliver_once(http: httpx.AsyncClient, settings: Settings, body: bytes) -> httpx.Response:
    secret = secret_list(settings.require_secret("cpq_webhook_secret", "chaos signs webhooks"))[0]
    return await http.post(
        f"{settings.gateway_url}/v1/webhooks/cpq/quote-accepted",
        content=body,
        headers={"content-type": "application/json", cpq.SIGNATURE_HEADER: cpq.sign(secret, body)},
    )


async def deliver(
    http: httpx.AsyncClient,
    settings: Settings,
    payload: dict[str, Any],
    log: DeliveryLog,
) -> None:
    """One delivery, retried on 5xx and connection errors until accepted or given up."""
    body = json.dumps(payload).encode()
    deadline = time.monotonic() + GIVE_UP_AFTER_SECONDS
    pause = 0.5
    while True:
        try:
            response = await deliver_once(http, settings, body)
        except httpx.HTTPError as error:
            why = f"{type(error).__name__}"
        else:
            if response.status_code in (200, 202):
                log.verdicts[str(response.json()["status"])] += 1
                return
            why = f"HTTP {response.status_code}: {response.text[:200]}"
            if response.status_code < 500:
                log.failed.append(f"{payload['quote_id']}: {why}")
                return
        if time.monotonic() > deadline:
            log.failed.append(f"{payload['quote_id']}: {why}")
            return
        log.retries += 1
        await asyncio.sleep(pause)
        pause = min(pause * 2, 5.0)


async def deliver_all(
    http: httpx.AsyncClient,
    settings: Settings,
    plan: list[Delivery],
    payloads: dict[str, dict[str, Any]],
) -> DeliveryLog:
    """Send every planned delivery at its time (each on its own, so a slow one holds up none)."""
    log = DeliveryLog()
    started = time.monotonic()
    sending: list[asyncio.Task[None]] = []
    for delivery in plan:
        await asyncio.sleep(max(0.0, started + delivery.at - time.monotonic()))
        payload = payloads[delivery.quote_id]
        sending.append(asyncio.create_task(deliver(http, settings, payload, log)))
    await asyncio.gather(*sending)
    return log
