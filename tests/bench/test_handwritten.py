"""The hand-written baseline of ``bench.saga_overhead`` makes the vendor requests revsync makes.

On a real dev server with the sandbox served over HTTP, each account's saga runs twice per
variant from the same sandbox state (reset before each variant): the first on a cold worker
(reference data not cached yet) for a customer billing has never seen and products it does
not have, the second on the warm worker for the now existing customer and products. Every
request each makes is recorded at its HTTP client and compared, one by one and in order:
method, URL, the headers that matter (auth, idempotency keys, content types, the event's
CloudEvents headers and signature) and the body (JSON compared as numbers, forms as their
fields), with the ids each saga was given (its quote and workflow, what Stripe and
Salesforce made) put in place. So the baseline cannot drift from revsync unnoticed.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from temporalio.client import Client

from bench.handwritten import HandwrittenQuoteToCashWorkflow, workflow_id
from bench.handwritten_activities import VendorConfig, handwritten_workers
from bench.stack import BenchStack, bench_stack, create_crm_quotes
from domain.contracts import TaskQueue
from domain.stages import OrderStage
from sandbox.quotes import quote_payload
from sandbox.seed import BOOKABLE_ACCOUNT_IDS
from workers.build import build_worker, new_http_client
from workflows.quote_to_cash import QuoteToCashWorkflow

pytestmark = pytest.mark.e2e

REVSYNC, HANDWRITTEN = "revsync", "hand-written"
# Every quote accepted at the same moment: the order date is in the ERP body.
ACCEPTED_AT = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)
HEADERS_THAT_MATTER = (
    "accept",
    "authorization",
    "content-type",
    "prefer",
    "stripe-version",
    "idempotency-key",
    "ce-id",
    "ce-type",
    "ce-source",
    "ce-specversion",
    "x-revsync-signature",
)
# A saga that has not ended by then is stuck (a failing request retried for ever).
SAGA_SECONDS = 60
SIGNATURE = re.compile(r"^t=\d+,v1=[0-9a-f]{64}$")


@dataclass
class Saga:
    """One saga's requests and the ids that are its own (replaced before comparing)."""

    quote_id: str
    outcome: str
    ids: dict[str, str]
    requests: list[httpx.Request]


@dataclass
class Bench:
    stack: BenchStack
    handwritten_client: Client
    sent: list[httpx.Request] = field(default_factory=list)

    async def record(self, request: httpx.Request) -> None:
        self.sent.append(request)

    @asynccontextmanager
    async def revsync_workers(self) -> AsyncIterator[None]:
        """revsync's production workers, each recording what its HTTP client sends."""
        async with AsyncExitStack() as stack:
            for queue in TaskQueue.ALL:
                http = await stack.enter_async_context(new_http_client(self.stack.settings))
                http.event_hooks = {"request": [self.record], "response": []}
                await stack.enter_async_context(
                    build_worker(queue, self.stack.client, self.stack.settings, http)
                )
            yield

    def handwritten_workers(self) -> AbstractAsyncContextManager[None]:
        s = self.stack.settings
        return handwritten_workers(
            self.handwritten_client,
            VendorConfig.from_settings(s),
            {
                TaskQueue.CRM: s.crm_max_concurrent_activities,
                TaskQueue.ERP: s.erp_max_concurrent_activities,
                TaskQueue.BILLING: s.billing_max_concurrent_activities,
                TaskQueue.EVENTS: s.events_max_concurrent_activities,
            },
            max_concurrent_workflow_tasks=s.orchestration_max_concurrent_workflow_tasks,
            request_hooks=[self.record],
        )

    async def quote(self, account_id: str) -> dict[str, Any]:
        (quote_id,) = await create_crm_quotes(self.stack.settings, [account_id])
        payload = quote_payload(quote_id, account_id=account_id, today=ACCEPTED_AT.date())
        return payload | {"accepted_at": ACCEPTED_AT.isoformat()}

    async def revsync_saga(self, account_id: str) -> Saga:
        payload = await self.quote(account_id)
        first = len(self.sent)
        saga_id = await self.stack.start_saga(payload)
        handle = self.stack.client.get_workflow_handle_for(QuoteToCashWorkflow.run, saga_id)
        async with asyncio.timeout(SAGA_SECONDS):
            status = await handle.result()
        ids = {
            "billing customer": status.billing_customer_id,
            "subscription": status.subscription_id,
            "invoice": status.invoice_id,
            "crm order": status.crm_order_id,
        }
        return Saga(
            quote_id=payload["quote_id"],
            outcome=status.stage.value,
            ids={k: v for k, v in ids.items() if v},
            requests=self.sent[first:],
        )

    async def handwritten_saga(self, account_id: str) -> Saga:
        payload = await self.quote(account_id)
        first = len(self.sent)
        result = await self.handwritten_client.execute_workflow(
            HandwrittenQuoteToCashWorkflow.run,
            payload,
            id=workflow_id(payload["quote_id"]),
            task_queue=TaskQueue.ORCHESTRATION,
            execution_timeout=timedelta(seconds=SAGA_SECONDS),
        )
        ids = {
            "billing customer": result["billing_customer_id"],
            "subscription": result["subscription_id"],
            "invoice": result["invoice_id"],
            "crm order": result["crm_order_id"],
        }
        return Saga(
            quote_id=payload["quote_id"],
            outcome=result["stage"],
            ids={k: v for k, v in ids.items() if v},
            requests=self.sent[first:],
        )

    async def sagas(self, variant: str, account_id: str, count: int) -> list[Saga]:
        """``count`` sagas of ``variant`` for ``account_id``, one after the other, on fresh
        workers and a freshly reset sandbox."""
        assert self.stack.sandbox_state is not None
        self.stack.sandbox_state.reset()
        if variant == REVSYNC:
            async with self.revsync_workers():
                return [await self.revsync_saga(account_id) for _ in range(count)]
        async with self.handwritten_workers():
            return [await self.handwritten_saga(account_id) for _ in range(count)]


@pytest.fixture(scope="module")
async def bench() -> AsyncIterator[Bench]:
    async with bench_stack(sandbox="thread") as stack:
        # The hand-written variant uses the SDK's default data converter.
        client = Client(stack.client.service_client, namespace=stack.client.namespace)
        yield Bench(stack=stack, handwritten_client=client)


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def vendor(request: httpx.Request) -> str:
    return request.url.path.strip("/").split("/")[0]


def normalized(saga: Saga, days: set[str]) -> list[dict[str, Any]]:
    """What each request says, with the saga's own ids as placeholders."""
    event_ids = {r.headers["ce-id"] for r in saga.requests if "ce-id" in r.headers}
    replacements = [
        (f"q2c-{saga.quote_id}", "<workflow>"),
        (saga.quote_id, "<quote>"),
        *((value, f"<{name}>") for name, value in saga.ids.items()),
        *((value, "<event id>") for value in event_ids),
        *((day, "<today>") for day in days),
    ]

    def text(value: str) -> str:
        for old, new in replacements:
            value = value.replace(old, new)
        return value

    def body(request: httpx.Request) -> Any:
        if not request.content:
            return None
        content = request.content.decode()
        kind = request.headers.get("content-type", "")
        if kind == "application/x-www-form-urlencoded":
            return sorted(parse_qsl(text(content), keep_blank_values=True))
        if kind == "application/cloudevents+json":
            event = json.loads(content)
            assert datetime.fromisoformat(event.pop("time"))  # when it was sent: differs
            content = json.dumps(event)
        return json.loads(text(content), parse_float=Decimal)

    def headers(request: httpx.Request) -> dict[str, str]:
        found = {k: text(request.headers[k]) for k in HEADERS_THAT_MATTER if k in request.headers}
        if "x-revsync-signature" in found:
            assert SIGNATURE.match(found["x-revsync-signature"])
            found["x-revsync-signature"] = "<signature>"
        return found

    return [
        {
            "method": r.method,
            "url": text(str(r.url)),
            "headers": headers(r),
            "body": body(r),
        }
        for r in saga.requests
    ]


def per_vendor(saga: Saga) -> Counter[str]:
    return Counter(vendor(r) for r in saga.requests)


async def test_handwritten_saga_books_the_quote_everywhere(bench: Bench) -> None:
    (saga,) = await bench.sagas(HANDWRITTEN, BOOKABLE_ACCOUNT_IDS[0], 1)
    assert saga.outcome == "BOOKED"
    assert bench.stack.sandbox_state is not None
    state = bench.stack.sandbox_state.snapshot()
    key = workflow_id(saga.quote_id)

    (order,) = state["netsuite"]["salesOrders"]
    assert order["externalId"] == f"{key}:erp-order"
    assert order["otherRefNum"] == saga.quote_id
    assert len(order["item"]) == 3

    (subscription,) = state["stripe"]["subscriptions"]
    assert subscription["id"] == saga.ids["subscription"]
    assert subscription["customer"] == saga.ids["billing customer"]
    assert subscription["metadata"]["quote_id"] == saga.quote_id

    (crm_order,) = state["salesforce"]["orders"]
    assert crm_order["Id"] == saga.ids["crm order"]
    assert crm_order["SBQQ__Quote__c"] == saga.quote_id
    assert crm_order["ERP_Order_Id__c"] == order["id"]
    assert crm_order["Billing_Subscription_Id__c"] == saga.ids["subscription"]
    (quote,) = [q for q in state["salesforce"]["quotes"] if q["Id"] == saga.quote_id]
    assert quote["SBQQ__Status__c"] == "Ordered"

    assert state["events"]["refused"] == 0
    (delivery,) = state["events"]["deliveries"]
    assert delivery["event"]["type"] == "com.revsync.quote.booked.v1"
    assert delivery["event"]["data"]["subscription_id"] == saga.ids["subscription"]
    assert delivery["event"]["data"]["erp_order_id"] == order["id"]


@pytest.mark.parametrize("account_id", BOOKABLE_ACCOUNT_IDS)
async def test_handwritten_makes_the_requests_revsync_makes(bench: Bench, account_id: str) -> None:
    days = {today()}  # the CRM order takes effect the day it is recorded
    theirs = await bench.sagas(REVSYNC, account_id, 2)
    ours = await bench.sagas(HANDWRITTEN, account_id, 2)
    days.add(today())
    for revsync, handwritten in zip(theirs, ours, strict=True):
        assert revsync.outcome == OrderStage.BOOKED.value
        assert handwritten.outcome == "BOOKED"
        assert per_vendor(handwritten) == per_vendor(revsync)
        assert normalized(handwritten, days) == normalized(revsync, days)
    # The first saga creates the billing customer and the products, the second finds them.
    cold, warm = (per_vendor(s) for s in theirs)
    assert cold["stripe"] > warm["stripe"]
    assert cold["netsuite"] > warm["netsuite"]  # currencies and terms, cached once read
