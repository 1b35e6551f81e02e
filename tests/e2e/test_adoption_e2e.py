"""Adoption on the real stack, over an estate an earlier integration left
(tests/adoption/estate.py): thousands of customers across Salesforce, NetSuite and Stripe,
open invoices in four currencies, duplicates and conflicts planted.

- The ledger sorts every record as planted, and nothing is written until a person approves:
  no record with a candidate match is created, linked or touched before.
- Approved customers get revsync's cross-reference (NetSuite ``externalId``, Stripe
  ``metadata.revsync_account_id``) where a strong key linked them, and their golden record;
  approved invoices get their invoice-to-revenue saga with the state they really have (a
  half-paid one starts half paid), one receivable each.
- Open receivables tie out per customer and currency across billing and the ERP, or each
  difference is listed.
- A payment the adoption already counted, delivered late, is not applied again; a later one
  is: each event processed once, by the backfill or the live path.
- A second adoption run writes nothing.
- The ERP and billing workers are killed at random while adoption reads and writes: nothing
  is duplicated.

Every write request the emulators receive is counted (tests/shadow/audit.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from temporalio.worker import Worker

from domain.adoption import Bucket, Kind, Ledger, LedgerPage, adoption_workflow_id
from domain.contracts import TaskQueue
from domain.invoice_contracts import InvoiceStage, invoice_workflow_id
from tests.adoption.estate import Estate, PlantedInvoice, plant_customers, plant_invoices
from tests.e2e.stack import Stack, running_stack
from tests.e2e.test_shadow_audit_e2e import cli
from tests.invoice_to_revenue.test_e2e import stripe_event
from tests.shadow.audit import WriteAudit
from tests.staff import token_of
from workers.build import build_worker
from workflows.invoice_to_revenue import InvoiceToRevenueWorkflow

pytestmark = pytest.mark.e2e

ACCOUNTS = 1000
AUDIT = WriteAudit()
OSCAR = {"Authorization": f"Bearer {token_of('Oscar')}"}
KILLABLE = (TaskQueue.ERP, TaskQueue.BILLING)


@dataclass
class Killable:
    """The ERP and billing workers, run by the test so that it can kill them."""

    stack: Stack
    http: httpx.AsyncClient
    running: dict[str, tuple[Worker, asyncio.Task[None]]] = field(default_factory=dict)
    kills: int = 0

    def start(self, queue: str) -> None:
        worker = build_worker(queue, self.stack.client, self.stack.settings, self.http)
        self.running[queue] = (worker, asyncio.create_task(worker.run()))

    async def kill(self, queue: str) -> None:
        """Stop the worker with no grace: its activities in flight are abandoned mid-batch
        and run again by Temporal once their heartbeat times out."""
        _, task = self.running.pop(queue)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        self.kills += 1


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    async with running_stack(
        settings_update={"worker_shutdown_grace_seconds": 0},
        sandbox_wrap=AUDIT.middleware,
        queues=[q for q in TaskQueue.ALL if q not in KILLABLE],
    ) as running:
        yield running


@pytest.fixture(scope="module")
async def workers(stack: Stack) -> AsyncIterator[Killable]:
    async with AsyncExitStack() as exits:
        from workers.build import new_http_client

        http = await exits.enter_async_context(new_http_client(stack.settings))
        killable = Killable(stack, http)
        for queue in KILLABLE:
            killable.start(queue)
        yield killable
        for queue in list(killable.running):
            await killable.kill(queue)


async def until(check: Callable[[], Any], what: str, seconds: float = 300) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = await check()
        if found:
            return found
        assert time.monotonic() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.5)


async def read_ledger(stack: Stack, workflow_id: str, **params: Any) -> Ledger:
    """The whole ledger, page by page (a query's answer has a size limit)."""
    entries: list[Any] = []
    while True:
        answer = await stack.gateway.get(
            f"/v1/ops/adoptions/{workflow_id}",
            params={"offset": len(entries), "limit": 1000, **params},
            headers=OSCAR,
        )
        assert answer.status_code == 200, answer.text
        page = LedgerPage.model_validate(answer.json())
        entries.extend(page.entries)
        if len(entries) >= page.total:
            return Ledger(
                kind=page.kind,
                window=page.window,
                read_at=page.read_at,
                ready=page.ready,
                entries=entries,
                settled=page.settled,
                tie_out=page.tie_out,
                tied=page.tied,
            )


async def counts(stack: Stack, workflow_id: str) -> LedgerPage | None:
    answer = await stack.gateway.get(
        f"/v1/ops/adoptions/{workflow_id}", params={"limit": 0}, headers=OSCAR
    )
    return LedgerPage.model_validate(answer.json()) if answer.status_code == 200 else None


async def adopt(stack: Stack, kind: Kind, window: str) -> Ledger:
    started = await stack.gateway.post(
        "/v1/ops/adoptions", json={"kind": kind.value, "window": window}, headers=OSCAR
    )
    assert started.status_code == 202, started.text
    workflow_id = adoption_workflow_id(kind, window)
    assert started.json()["workflow_id"] == workflow_id

    async def ready() -> bool:
        page = await counts(stack, workflow_id)
        return page is not None and page.ready

    await until(ready, f"the {kind.value} ledger", seconds=600)
    return await read_ledger(stack, workflow_id)


async def approve(stack: Stack, kind: Kind, window: str, bucket: Bucket) -> dict[str, Any]:
    answer = await stack.gateway.post(
        f"/v1/ops/adoptions/{adoption_workflow_id(kind, window)}/approve",
        json={"bucket": bucket.value, "note": f"cut-over: adopt {bucket.value}"},
        headers=OSCAR,
    )
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def settled(stack: Stack, kind: Kind, window: str, wanted: int) -> Ledger:
    """The approved entries once every one has its outcome."""
    workflow_id = adoption_workflow_id(kind, window)

    async def done() -> bool:
        page = await counts(stack, workflow_id)
        return page is not None and page.acted >= wanted

    await until(done, "every approval acted on", seconds=900)
    return await read_ledger(stack, workflow_id, approved=True)


async def close(stack: Stack, kind: Kind, window: str) -> None:
    answer = await stack.gateway.post(
        f"/v1/ops/adoptions/{adoption_workflow_id(kind, window)}/close", headers=OSCAR
    )
    assert answer.status_code == 200, answer.text


async def chaos(workers: Killable, stop: asyncio.Event, seed: int) -> None:
    """Kill the ERP or billing worker at random moments, and start it again."""
    rng = random.Random(seed)
    while not stop.is_set():
        await asyncio.sleep(rng.uniform(0.5, 3.0))
        queue = rng.choice(KILLABLE)
        if queue in workers.running:
            await workers.kill(queue)
            await asyncio.sleep(rng.uniform(0.1, 1.0))
            workers.start(queue)


def netsuite_customers(stack: Stack) -> list[dict[str, Any]]:
    return list(stack.sandbox.state.netsuite.customers.values())


async def test_an_estate_is_adopted_as_planted_approved_by_a_person_and_written_once(
    stack: Stack, workers: Killable
) -> None:
    state = stack.sandbox.state
    estate: Estate = plant_customers(state, ACCOUNTS)
    customers_before = len(netsuite_customers(stack))
    stripe_before = len(state.stripe.customers)
    AUDIT.reset()
    stop = asyncio.Event()
    killing = asyncio.create_task(chaos(workers, stop, seed=22))

    # -- customers: the ledger ------------------------------------------------------------
    ledger = await adopt(stack, Kind.CUSTOMERS, "estate")
    mine = {e.subject: e for e in ledger.entries if e.subject.startswith("0015e0ADOPT")}
    assert {s: e.bucket for s, e in mine.items()} == estate.customers
    strays: Counter[tuple[str, Bucket]] = Counter(
        (e.subject.split(":")[0], e.bucket)
        for e in ledger.entries
        if ":" in e.subject and e.bucket in (Bucket.ORPHAN, Bucket.AMBIGUOUS)
    )
    for key, count in estate.strays.items():
        assert strays[key] >= count, key  # the sandbox's own seed adds its strays
    assert sum(AUDIT.writes.values()) == 0, AUDIT.seen  # nothing written before approval

    # -- customers: approvals -------------------------------------------------------------
    approved = 0
    for bucket in (Bucket.MATCHED, Bucket.MATCHED_BY_KEY, Bucket.CONFLICTING):
        answer = await approve(stack, Kind.CUSTOMERS, "estate", bucket)
        approved += len(answer["accepted"])
    refused = await approve(stack, Kind.CUSTOMERS, "estate", Bucket.AMBIGUOUS)
    assert refused["accepted"] == [] and refused["refused"]  # never linked on a guess
    assert {why.split(":")[0] for why in refused["refused"].values()} == {"ambiguous"}
    ledger = await settled(stack, Kind.CUSTOMERS, "estate", approved)
    outcomes = {e.subject: e.outcome for e in ledger.entries if e.approval is not None}
    assert not [o for o in outcomes.values() if o and o.startswith("refused")], outcomes
    # Links written where a strong key linked them; nothing created.
    linked = {
        str(c.get("externalId")): c["id"]
        for c in netsuite_customers(stack)
        if str(c.get("externalId", "")).startswith("acct-0015e0ADOPT")
    }
    for n, erp_id in estate.erp_ids.items():
        if n % 10 in (0, 1, 2, 3, 4):
            assert linked[f"acct-{estate_account(n)}"] == erp_id
    assert len(netsuite_customers(stack)) == customers_before
    assert len(state.stripe.customers) == stripe_before
    for n, stripe_id in estate.stripe_ids.items():
        assert state.stripe.customers[stripe_id]["metadata"]["revsync_account_id"] == (
            estate_account(n)
        )
    # The ambiguous and orphan records stay as they were: nobody approved a guess.
    for customer in netsuite_customers(stack):
        if str(customer.get("externalId", "")).startswith("LEGACY-") and (
            "Lost" in str(customer.get("companyName"))
            or str(customer["externalId"])[-2:] in ("-a", "-b")
        ):
            assert not str(customer["externalId"]).startswith("acct-")
    # The same ledger through the CLI, as a staff token holder.
    code, out, err = await cli(
        stack,
        "adopt",
        "ledger",
        "--kind",
        "customers",
        "--window",
        "estate",
        "--bucket",
        "ambiguous",
        "--limit",
        "3",
    )
    assert code == 0, err
    assert "ambiguous" in out and f"approved {approved}" in out and "more (--offset 3)" in out
    await close(stack, Kind.CUSTOMERS, "estate")

    # -- invoices ---------------------------------------------------------------------------
    invoices = plant_invoices(state, estate)
    await post_legacy_receivables(stack, invoices)
    AUDIT.reset()
    ledger = await adopt(stack, Kind.INVOICES, "estate")
    by_invoice = {e.subject: e for e in ledger.entries}
    expected = {
        "matched": Bucket.MATCHED,
        "conflicting": Bucket.CONFLICTING,
        "to_create": Bucket.TO_CREATE,
        "to_create_half": Bucket.TO_CREATE,
        "unreadable": Bucket.UNREADABLE,
    }
    for planted in invoices:
        if planted.kind == "settled":
            assert planted.invoice_id not in by_invoice
            continue
        entry = by_invoice[planted.invoice_id]
        assert entry.bucket is expected[planted.kind], (planted, entry)
        assert entry.amount_due == planted.due
    assert ledger.settled >= sum(1 for p in invoices if p.kind == "settled")
    # Tie-out: every customer-currency pair that differs is listed, with the difference.
    owed: dict[tuple[str, str], Decimal] = {}
    for planted in invoices:
        if planted.kind in ("conflicting",):
            owed[(planted.account, planted.currency)] = planted.due - planted.total
        if planted.kind in ("to_create", "to_create_half"):
            owed[(planted.account, planted.currency)] = planted.due
    listed = {(t.account_id, t.currency): t.difference for t in ledger.tie_out}
    for pair, difference in owed.items():
        assert listed[pair] == difference, pair
    assert sum(AUDIT.writes.values()) == 0, AUDIT.seen

    before = {p.invoice_id: receivables_of(stack, p.invoice_id) for p in invoices}
    approved = 0
    for bucket in (Bucket.MATCHED, Bucket.CONFLICTING, Bucket.TO_CREATE):
        approved += len((await approve(stack, Kind.INVOICES, "estate", bucket))["accepted"])
    ledger = await settled(stack, Kind.INVOICES, "estate", approved)
    stop.set()
    await killing
    for queue in KILLABLE:
        if queue not in workers.running:
            workers.start(queue)
    outcomes = {e.subject: e.outcome for e in ledger.entries if e.approval is not None}
    assert not [o for o in outcomes.values() if o and o.startswith("refused")], outcomes

    for planted in invoices:
        if planted.kind not in ("matched", "conflicting", "to_create", "to_create_half"):
            continue
        handle = stack.client.get_workflow_handle_for(
            InvoiceToRevenueWorkflow.run, invoice_workflow_id(planted.invoice_id)
        )

        async def posted(h: Any = handle, p: PlantedInvoice = planted) -> Any:
            status = await h.query(InvoiceToRevenueWorkflow.status)
            return (
                status
                if status.stage in (InvoiceStage.AWAITING_PAYMENT, InvoiceStage.OVERDUE)
                and status.amount_due == p.due
                else None
            )

        status = await until(posted, f"{planted.invoice_id} adopted with its state")
        assert status.total == planted.total and status.amount_paid == planted.total - planted.due
        receivables = receivables_of(stack, planted.invoice_id)
        assert len(receivables) == 1, (planted, receivables)  # one, whatever the retries
        if planted.kind in ("matched", "conflicting"):
            assert receivables == before[planted.invoice_id]  # the earlier one, adopted
    assert workers.kills >= 2, "the chaos never killed a worker"

    # -- the hand-over: a late event the backfill counted; a new payment -------------------
    half = next(p for p in invoices if p.kind == "to_create_half" and p.currency != "JPY")
    handle = stack.client.get_workflow_handle_for(
        InvoiceToRevenueWorkflow.run, invoice_workflow_id(half.invoice_id)
    )
    watermark = (await handle.query(InvoiceToRevenueWorkflow.status)).adopted_at
    assert watermark is not None
    stale = stripe_event(
        "invoice.payment_succeeded",
        stripe_payment(
            state, half.invoice_id, watermark - timedelta(hours=1), "ch_before", minor(half.paid)
        ),
    )
    assert (await send_stripe(stack, stale)).status_code == 200
    fresh = stripe_event(
        "invoice.paid",
        stripe_payment(
            state,
            half.invoice_id,
            datetime.now(UTC) + timedelta(seconds=1),
            "ch_after",
            minor(half.due),
        ),
    )
    assert (await send_stripe(stack, fresh)).status_code == 200

    async def paid_once() -> Any:
        status = await handle.query(InvoiceToRevenueWorkflow.status)
        return status if status.amount_due == 0 else None

    final = await until(paid_once, "the payment after the watermark applied")
    ids = [p.payment_id for p in final.payments]
    assert ids.count(f"adopt:{half.invoice_id}") == 1 and "ch_before" not in ids

    # -- a second run writes nothing --------------------------------------------------------
    await close(stack, Kind.INVOICES, "estate")
    await asyncio.sleep(2)  # visibility shows the sagas just started
    for kind in (Kind.CUSTOMERS, Kind.INVOICES):
        AUDIT.reset()
        again = await adopt(stack, kind, "estate-again")
        for bucket in (Bucket.MATCHED, Bucket.MATCHED_BY_KEY, Bucket.CONFLICTING):
            answer = await approve(stack, kind, "estate-again", bucket)
            adopted_before = [
                e for e in again.entries if e.bucket is bucket and e.subject in outcomes
            ]
            assert not set(answer["accepted"]) & {e.entry_id for e in adopted_before}
        await close(stack, kind, "estate-again")
        assert sum(AUDIT.writes.values()) == 0, (kind, AUDIT.seen)


def minor(amount: Decimal) -> int:
    return int(amount * 100)  # the half-paid invoice of the hand-over is not in yen


def estate_account(n: int) -> str:
    from tests.adoption.estate import account_id

    return account_id(n)


def receivables_of(stack: Stack, invoice_id: str) -> list[str]:
    invoices = stack.sandbox.state.netsuite.snapshot()["invoices"]
    return sorted(str(i["id"]) for i in invoices if i.get("otherRefNum") == invoice_id)


async def post_legacy_receivables(stack: Stack, invoices: list[PlantedInvoice]) -> None:
    """What the earlier integration posted in NetSuite: its own external ids, the billing
    invoice named in otherRefNum, the whole total due (it never saw the half payments)."""
    from adapters import registry
    from tests.shadow.audit import EXEMPT

    async with httpx.AsyncClient(headers={EXEMPT: "1"}, timeout=30) as http:
        billing = registry.BILLING_VENDORS["stripe"](stack.settings, http)
        erp = registry.ERP_VENDORS["netsuite"](stack.settings, http)
        for planted in invoices:
            if planted.kind not in ("matched", "conflicting"):
                continue
            invoice = await billing.get_invoice(planted.invoice_id)
            customer = await erp.find_customer(f"acct-{planted.account}")
            assert customer is not None
            await erp.post_receivable(invoice, customer, f"LEGACY-INV-{planted.invoice_id}")


def stripe_payment(
    state: Any, invoice_id: str, at: datetime, charge: str, amount: int
) -> dict[str, Any]:
    """The invoice as a payment event carries it: ``amount`` (minor units) paid by ``charge``
    at ``at``."""
    invoice = dict(state.stripe.get_invoice(invoice_id))
    invoice.update(
        {
            "status": "paid",
            "paid": True,
            "charge": charge,
            "amount_paid": amount,
            "amount_remaining": 0,
            "status_transitions": {
                **(invoice.get("status_transitions") or {}),
                "paid_at": int(at.timestamp()),
            },
        }
    )
    return invoice


async def send_stripe(stack: Stack, event: dict[str, Any]) -> httpx.Response:
    from tests.invoice_to_revenue.test_e2e import send

    return await send(stack, event)
