"""``revsync demo``: play the CPQ. Creates quotes in the configured CRM's sandbox emulator
(a Salesforce CPQ quote, or a HubSpot deal), sends their signed quote-accepted webhooks to the
gateway, and waits for each saga to end."""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass

import httpx
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from adapters.http import dumps_json
from adapters.webhooks import cpq
from domain.saga import QuoteToCashStatus
from domain.stages import OrderStage
from revsync.settings import Settings, secret_list
from sandbox import hubspot
from sandbox import salesforce as salesforce_sandbox
from sandbox.quotes import account_currency, quote_payload, random_account
from workflows import visibility
from workflows.quote_to_cash import QuoteToCashWorkflow


@dataclass
class DemoRow:
    quote_id: str
    workflow_id: str
    delivery: str
    stage: str
    erp_order_id: str | None = None
    subscription_id: str | None = None
    crm_status: str | None = None
    amount: str | None = None
    reason: str | None = None

    @property
    def finished(self) -> bool:
        return self.stage in {s.value for s in OrderStage if s.is_terminal}


async def create_crm_quote(http: httpx.AsyncClient, settings: Settings, account_id: str) -> str:
    """Create an accepted primary Salesforce CPQ quote with its priced lines for the seeded
    account ``account_id``, as a seller's CPQ session leaves it (one all-or-none composite
    call, :func:`sandbox.salesforce.cpq_quote_composite`); returns its id. Ordering it later
    makes CPQ generate the Order from those lines."""
    api = f"/services/data/{settings.salesforce_api_version}"
    body = salesforce_sandbox.cpq_quote_composite(
        api, account_id=account_id, currency=account_currency(account_id)
    )
    token = settings.salesforce_access_token.get_secret_value()
    response = await http.post(
        f"{settings.salesforce_base_url}{api}/composite",
        content=dumps_json(body),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    response.raise_for_status()
    answers = response.json()["compositeResponse"]
    refused = [a for a in answers if a["httpStatusCode"] >= 300]
    if refused:
        raise RuntimeError(f"Salesforce refused the quote: {refused[0]['body']}")
    return str(answers[0]["body"]["id"])


async def accepted_quote(
    http: httpx.AsyncClient, settings: Settings, seed_account_id: str
) -> tuple[str, str]:
    """A quote accepted in the CRM ``REVSYNC_CRM`` names, for the seeded account
    ``seed_account_id`` (as the sandbox's Salesforce knows it): the quote's id and the
    account's id in that CRM."""
    if settings.crm == "hubspot":
        company_id = hubspot.COMPANY_IDS[seed_account_id]
        deal_id = await hubspot.create_deal(
            http,
            settings.hubspot_base_url,
            settings.hubspot_access_token.get_secret_value(),
            company_id,
            currency=account_currency(seed_account_id),
            lines=[("PLAT-CORE", "20", "10"), ("ONBOARD-STD", "1", "0")],
        )
        return deal_id, company_id
    return await create_crm_quote(http, settings, seed_account_id), seed_account_id


async def deliver(http: httpx.AsyncClient, settings: Settings, payload: dict[str, object]) -> str:
    """POST one signed webhook; returns the gateway's verdict (started / duplicate)."""
    body = json.dumps(payload).encode()
    # The newest secret signs (the first of a comma-separated list during rotation).
    secret = secret_list(
        settings.require_secret("cpq_webhook_secret", "the demo signs webhooks like a CPQ")
    )[0]
    response = await http.post(
        f"{settings.gateway_url}/v1/webhooks/cpq/quote-accepted",
        content=body,
        headers={"content-type": "application/json", cpq.SIGNATURE_HEADER: cpq.sign(secret, body)},
    )
    if response.status_code not in (200, 202):
        raise RuntimeError(f"gateway answered {response.status_code}: {response.text}")
    return str(response.json()["status"])


async def wait_for_saga(
    client: Client, workflow_id: str, deadline: float
) -> QuoteToCashStatus | None:
    """Poll the saga's ``status`` query until it ends or the deadline passes."""
    handle = client.get_workflow_handle_for(QuoteToCashWorkflow.run, workflow_id)
    status: QuoteToCashStatus | None = None
    while True:
        try:
            status = await handle.query(QuoteToCashWorkflow.status)
        except RPCError as error:
            if error.status is not RPCStatusCode.NOT_FOUND:
                raise
        if status is not None and status.stage.is_terminal:
            return status
        if time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.5)


async def run_demo(
    settings: Settings, client: Client, quotes: int, *, seed: int | None, wait_seconds: float
) -> list[DemoRow]:
    rng = random.Random(seed)
    rows: list[DemoRow] = []
    async with httpx.AsyncClient(timeout=30) as http:
        for _ in range(quotes):
            seed_account = random_account(rng)
            quote_id, account_id = await accepted_quote(http, settings, seed_account)
            payload = quote_payload(
                quote_id,
                account_id=account_id,
                rng=rng,
                currency=account_currency(seed_account),
            )
            verdict = await deliver(http, settings, payload)
            rows.append(
                DemoRow(
                    quote_id=quote_id,
                    workflow_id=visibility.workflow_id_for_quote(quote_id),
                    delivery=verdict,
                    stage=OrderStage.RECEIVED.value,
                )
            )
    deadline = time.monotonic() + wait_seconds
    statuses = await asyncio.gather(*(wait_for_saga(client, r.workflow_id, deadline) for r in rows))
    for row, status in zip(rows, statuses, strict=True):
        if status is None:
            continue
        row.stage = status.stage.value
        row.erp_order_id = status.erp_order_id
        row.subscription_id = status.subscription_id
        row.crm_status = status.crm_status
        row.amount = f"{status.amount} {status.currency}"
        row.reason = status.reason
    return rows
