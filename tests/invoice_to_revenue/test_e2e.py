"""Invoice-to-revenue end to end: a quote booked through quote-to-cash, then the account's
Stripe invoices (made in the Stripe emulator) reach the gateway as signed Stripe events and
run on a real Temporal dev server through the real workers and adapters to the emulated
NetSuite and Salesforce.

The dev server does not skip time, so the invoices bill service periods that have already
closed (an invoice finalized today for past months, as a usage or catch-up invoice is): the
saga must recognise those periods at once, in order, before it waits for anything."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import WorkflowHandle

from adapters.webhooks import stripe
from domain.invoice_adjustment import AdjustmentStage
from domain.invoice_contracts import (
    InvoiceDecision,
    InvoiceStage,
    InvoiceStep,
    InvoiceToRevenueStatus,
    invoice_workflow_id,
)
from domain.receivable import ReceivableStatus
from domain.stages import OrderStage
from revsync.invoice_operations import parked_invoices
from revsync.settings import secret_list
from tests.e2e.stack import Stack, running_stack
from tests.e2e.test_quote_to_cash_e2e import deliver, finished, new_quote
from tests.staff import token_of
from workflows import visibility
from workflows.invoice_adjustment import InvoiceAdjustmentWorkflow
from workflows.invoice_to_revenue import InvoiceToRevenueWorkflow

pytestmark = pytest.mark.e2e

Handle = WorkflowHandle[InvoiceToRevenueWorkflow, InvoiceToRevenueStatus]
D = Decimal
REVSYNC = str(Path(sys.executable).parent / "revsync")
CREDIT_NOTE_FIXTURE = (
    Path(__file__).parents[1] / "gateway" / "fixtures" / "stripe_credit_note_created.json"
)


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    async with running_stack() as running:
        yield running


# -- the calendar: service periods that have already closed ---------------------------------


def month_start(months_ago: int, today: date | None = None) -> date:
    """The first day of the month ``months_ago`` months before the current one (UTC, the
    stack's accounting time zone)."""
    today = today or datetime.now(UTC).date()
    index = today.year * 12 + today.month - 1 - months_ago
    return date(index // 12, index % 12 + 1, 1)


def period(day: date) -> str:
    return f"{day:%Y-%m}"


def netsuite_period(day: date) -> str:
    return f"{day:%b %Y}"


# -- billing: the invoice in the Stripe emulator, its events signed as Stripe signs them ----


async def book(stack: Stack, account_id: str) -> None:
    """Book a quote for ``account_id`` through quote-to-cash: it creates the Stripe customer
    (``metadata.revsync_account_id``) and the ERP customer ``acct-<account>`` an invoice of
    the account is posted on."""
    payload = await new_quote(stack, account_id)
    assert (await deliver(stack, payload)).status_code == 202
    assert (await finished(stack, payload["quote_id"])).stage is OrderStage.BOOKED


async def stripe_call(stack: Stack, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    key = stack.settings.stripe_api_key.get_secret_value()
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.request(
            method,
            f"{stack.settings.stripe_base_url}/v1/{path}",
            headers={"Authorization": f"Bearer {key}"},
            **kwargs,
        )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def make_invoice(stack: Stack, spec: dict[str, Any]) -> dict[str, Any]:
    """A finalized invoice in the Stripe emulator (docs/sandbox.md)."""
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(f"{stack.sandbox.url}/_sandbox/stripe/invoices", json=spec)
    assert response.status_code == 200, response.text
    invoice: dict[str, Any] = response.json()
    assert invoice["status"] == "open"
    return invoice


def stripe_event(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    """An event as Stripe delivers it, carrying the object as the API shows it."""
    return {
        "id": f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": kind,
    }


async def ops(stack: Stack, who: str, path: str, body: dict[str, Any]) -> httpx.Response:
    """POST to the gateway's ops API as the staff member whose name starts with ``who``."""
    return await stack.gateway.post(
        path, json=body, headers={"Authorization": f"Bearer {token_of(who)}"}
    )


async def send(stack: Stack, event: dict[str, Any]) -> httpx.Response:
    body = json.dumps(event).encode()
    secret = secret_list(stack.settings.stripe_webhook_secret)[0]
    return await stack.gateway.post(
        "/v1/webhooks/stripe/invoices",
        content=body,
        headers={
            "content-type": "application/json",
            stripe.SIGNATURE_HEADER: stripe.sign(secret, body),
        },
    )


async def finalize(stack: Stack, invoice: dict[str, Any]) -> Handle:
    """Deliver ``invoice.finalized``: the saga starts."""
    answer = await send(stack, stripe_event("invoice.finalized", invoice))
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "started"
    return stack.client.get_workflow_handle_for(
        InvoiceToRevenueWorkflow.run, invoice_workflow_id(invoice["id"])
    )


# -- what the saga and the systems show -----------------------------------------------------


async def until(
    handle: Handle, condition: Callable[[InvoiceToRevenueStatus], bool], seconds: float = 60
) -> InvoiceToRevenueStatus:
    """Poll the saga's status query until ``condition`` holds (bounded, never timed)."""
    deadline = time.monotonic() + seconds
    while True:
        status = await handle.query(InvoiceToRevenueWorkflow.status)
        if condition(status):
            return status
        if time.monotonic() > deadline:
            pytest.fail(f"condition never held: {status.model_dump_json(indent=1)}")
        await asyncio.sleep(0.2)


def netsuite(stack: Stack, kind: str, invoice_id: str) -> list[dict[str, Any]]:
    """The NetSuite records of ``kind`` that belong to the invoice."""
    records: list[dict[str, Any]] = stack.sandbox.state.netsuite.snapshot()[kind]
    return [r for r in records if invoice_id in json.dumps(r, default=str)]


def crm_account(stack: Stack, account_id: str) -> dict[str, Any]:
    accounts = stack.sandbox.state.salesforce.snapshot()["accounts"]
    (account,) = [a for a in accounts if a["Id"] == account_id]
    found: dict[str, Any] = account
    return found


def business_events(stack: Stack, invoice_id: str) -> list[str]:
    """The business event types the sandbox subscriber received for the invoice (once each
    by id; a redelivery is not a new event)."""
    seen: dict[str, str] = {}
    for delivery in stack.sandbox.state.events.received():
        event = delivery["event"]
        if event.get("data", {}).get("invoice_id") == invoice_id:
            kind = event["type"].removeprefix("com.revsync.").rsplit(".v", 1)[0]
            seen[event["id"]] = kind
    return sorted(seen.values())


async def search(stack: Stack, query: str, wanted: int = 1, seconds: float = 20) -> list[str]:
    """Workflow ids visibility finds for ``query`` (eventually consistent: polled)."""
    deadline = time.monotonic() + seconds
    while True:
        found = [wf.id async for wf in stack.client.list_workflows(query)]
        if len(found) >= wanted or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.2)


async def revsync(stack: Stack, *args: str) -> tuple[int, str, str]:
    """Run the ``revsync`` CLI against the stack's dev server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVSYNC_")}
    keys = stack.settings.payload_keys
    assert keys is not None
    env |= {
        "REVSYNC_TEMPORAL_ADDRESS": stack.settings.temporal_address,
        "REVSYNC_PAYLOAD_KEYS": keys.get_secret_value(),
    }
    process = await asyncio.create_subprocess_exec(
        REVSYNC,
        *args,
        env=env,
        cwd="/",  # no developer's .env applies
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


# -- the tests ------------------------------------------------------------------------------


async def test_a_catch_up_invoice_is_posted_recognised_and_paid_once(stack: Stack) -> None:
    account = "0015e00000NordDE1"
    await book(stack, account)
    first, second, current = month_start(3), month_start(2), month_start(1)
    invoice = await make_invoice(
        stack,
        {
            "account_id": account,
            "currency": "eur",
            "days_until_due": 30,
            "lines": [
                # two months of platform seats, billed in arrears
                {
                    "product": "PLAT-CORE",
                    "quantity": 20,
                    "unit_amount": 4200,
                    "recurring": "month",
                    "period_start": first.isoformat(),
                    "period_end": current.isoformat(),
                    "discount": 8400,
                    "tax": 14364,
                },
                # one month of analytics
                {
                    "product": "PLAT-ANALYTICS",
                    "quantity": 1,
                    "unit_amount": 50000,
                    "recurring": "month",
                    "period_start": second.isoformat(),
                    "period_end": current.isoformat(),
                    "tax": 9500,
                },
            ],
        },
    )
    invoice_id = invoice["id"]
    seats_line, analytics_line = (line["id"] for line in invoice["lines"]["data"])
    due = datetime.fromtimestamp(invoice["due_date"], UTC).date()
    handle = await finalize(stack, invoice)

    # Both closed months are recognised at once, and the invoice waits for its payment.
    status = await until(
        handle,
        lambda s: (
            s.stage is InvoiceStage.AWAITING_PAYMENT and s.recognised_through == period(second)
        ),
    )
    assert status.receivable_status is ReceivableStatus.CURRENT
    assert (status.total, status.amount_due) == (D("1494.64"), D("1494.64"))
    assert status.recognised_revenue == status.scheduled_revenue == D("1256.00")
    assert status.next_close is None  # nothing left to recognise

    # Revenue journals queue behind bookings and receivables (task priority 4).
    history = await handle.fetch_history()
    priorities = {
        (a.activity_type.name, a.priority.priority_key)
        for e in history.events
        if (a := e.activity_task_scheduled_event_attributes).HasField("activity_type")
    }
    assert ("erp.post_revenue_journal", 4) in priorities
    assert ("erp.post_receivable", 0) in priorities  # Temporal's default (3)

    # A redelivery of invoice.finalized (same event or a new one) starts nothing.
    again = await send(stack, stripe_event("invoice.finalized", invoice))
    assert (again.status_code, again.json()["status"]) == (200, "duplicate")
    other = await send(stack, stripe_event("invoice.finalized", invoice) | {"id": "evt_other"})
    assert (other.status_code, other.json()["status"]) == (200, "duplicate")
    assert await search(stack, f'InvoiceId="{invoice_id}"') == [invoice_workflow_id(invoice_id)]

    # The receivable: once, on the account's ERP customer, with the invoice's lines.
    (receivable,) = netsuite(stack, "invoices", invoice_id)
    assert receivable["id"] == status.receivable_id
    assert receivable["externalId"] == f"i2r-{invoice_id}:receivable"
    assert receivable["otherRefNum"] == invoice_id
    assert receivable["currency"] == "EUR"
    assert receivable["dueDate"] == due.isoformat()
    assert (receivable["subtotal"], receivable["taxTotal"], receivable["total"]) == (
        D("1256.00"),
        D("238.64"),
        D("1494.64"),
    )
    seats, analytics = receivable["item"]
    assert (seats["itemId"], seats["amount"], seats["taxAmount"]) == (
        "PLAT-CORE",
        D("756.00"),
        D("143.64"),
    )
    assert seats["custcol_revsync_line"] == seats_line
    assert (analytics["itemId"], analytics["amount"], analytics["taxAmount"]) == (
        "PLAT-ANALYTICS",
        D("500.00"),
        D("95.00"),
    )
    assert analytics["custcol_revsync_line"] == analytics_line
    customers = stack.sandbox.state.netsuite.snapshot()["customers"]
    (erp_customer,) = [c for c in customers if c.get("externalId") == f"acct-{account}"]
    assert str(erp_customer["id"]) == status.erp_customer_id

    # The revenue journals: one per line and closed month, in that month's period.
    journals = {j["externalId"]: j for j in netsuite(stack, "journalEntries", invoice_id)}
    assert sorted(journals) == sorted(
        [
            f"{invoice_id}~{seats_line}~{period(first)}",
            f"{invoice_id}~{seats_line}~{period(second)}",
            f"{invoice_id}~{analytics_line}~{period(second)}",
        ]
    )
    amounts: dict[str, Decimal] = {}
    for external_id, journal in journals.items():
        assert journal["currency"] == "EUR"
        month = external_id.rsplit("~", 1)[1]
        assert journal["postingPeriod"] == netsuite_period(date.fromisoformat(f"{month}-01"))
        deferred, revenue = journal["line"]
        assert (deferred["account"], revenue["account"]) == ("2400", "4000")
        assert deferred["debit"] == revenue["credit"]
        amounts[external_id] = deferred["debit"]
    seats_first = amounts[f"{invoice_id}~{seats_line}~{period(first)}"]
    seats_second = amounts[f"{invoice_id}~{seats_line}~{period(second)}"]
    assert seats_first + seats_second == D("756.00")
    days_first, days_total = (second - first).days, (current - first).days
    assert abs(seats_first - D("756.00") * days_first / days_total) < D("0.01")
    assert amounts[f"{invoice_id}~{analytics_line}~{period(second)}"] == D("500.00")

    account_record = crm_account(stack, account)
    assert account_record["Revsync_AR_Status__c"] == "Current"
    assert account_record["Revsync_AR_Invoice__c"] == invoice_id
    assert D(str(account_record["Revsync_AR_Amount_Due__c"])) == D("1494.64")

    # Paid out of band in Stripe: invoice.paid and invoice.payment_succeeded both arrive.
    paid = await stripe_call(
        stack, "POST", f"invoices/{invoice_id}/pay", data={"paid_out_of_band": "true"}
    )
    kinds = ("invoice.paid", "invoice.payment_succeeded", "invoice.paid")
    answers = await asyncio.gather(*(send(stack, stripe_event(k, paid)) for k in kinds))
    for answer in answers:
        assert answer.status_code == 200, answer.text
        # the saga may have ended before the last of them: it applied the payment, so the
        # event is a duplicate (no adjustment starts)
        assert answer.json()["status"] in ("delivered", "duplicate"), answer.text
    assert answers[0].json()["status"] == "delivered" or answers[1].json()["status"] == "delivered"
    final = await handle.result()
    assert final.stage is InvoiceStage.CLOSED
    assert final.amount_due == 0 and final.amount_paid == D("1494.64")
    assert [p.payment_id for p in final.payments] == [invoice_id]  # out of band: the invoice

    (payment,) = netsuite(stack, "customerPayments", invoice_id)
    assert payment["externalId"] == invoice_id
    assert payment["apply"] == [{"doc": receivable["id"], "amount": D("1494.64")}]
    assert crm_account(stack, account)["Revsync_AR_Status__c"] == "Paid"
    assert business_events(stack, invoice_id) == sorted(
        ["invoice.posted", "revenue.recognized", "revenue.recognized", "payment.applied"]
    )
    # A payment event after the saga ended, for the payment it applied: a duplicate.
    late = await send(stack, stripe_event("invoice.paid", paid))
    assert (late.status_code, late.json()["status"]) == (200, "duplicate"), late.text
    assert late.json()["workflow_id"] == invoice_workflow_id(invoice_id)
    assert len(netsuite(stack, "customerPayments", invoice_id)) == 1


async def test_a_voided_invoice_reverses_its_receivable_and_recognised_revenue(
    stack: Stack,
) -> None:
    account = "0015e00000ThamGB1"
    await book(stack, account)
    closed_month = month_start(2)
    invoice = await make_invoice(
        stack,
        {
            "account_id": account,
            "currency": "gbp",
            "lines": [
                # a month already closed: recognised at once
                {
                    "product": "PLAT-CORE",
                    "quantity": 10,
                    "unit_amount": 3600,
                    "recurring": "month",
                    "period_start": closed_month.isoformat(),
                    "tax": 7200,
                },
                # this month and next: not recognised yet
                {
                    "product": "PLAT-ANALYTICS",
                    "quantity": 1,
                    "unit_amount": 24000,
                    "recurring": "month",
                    "period_start": month_start(0).isoformat(),
                    "period_end": month_start(-2).isoformat(),
                },
            ],
        },
    )
    invoice_id = invoice["id"]
    seats_line = invoice["lines"]["data"][0]["id"]
    handle = await finalize(stack, invoice)
    status = await until(
        handle,
        lambda s: (
            s.stage is InvoiceStage.AWAITING_PAYMENT
            and s.recognised_through == period(closed_month)
        ),
    )
    assert (status.recognised_revenue, status.scheduled_revenue) == (D("360.00"), D("600.00"))
    assert status.next_close == month_start(-1)
    (receivable,) = netsuite(stack, "invoices", invoice_id)
    assert receivable["total"] == D("672.00")

    voided = await stripe_call(stack, "POST", f"invoices/{invoice_id}/void")
    answer = await send(stack, stripe_event("invoice.voided", voided))
    assert (answer.status_code, answer.json()["status"]) == (200, "delivered"), answer.text
    final = await handle.result()

    assert final.stage is InvoiceStage.VOIDED
    assert final.amount_due == 0
    assert final.recognised_revenue == 0  # what was recognised is reversed
    # The receivable is cancelled by one credit memo for all of it.
    (credit,) = netsuite(stack, "creditMemos", invoice_id)
    assert credit["createdFrom"] == receivable["id"]
    assert credit["externalId"] == f"i2r-{invoice_id}:void"
    assert credit["total"] == D("672.00")
    assert receivable["id"] in {r["id"] for r in netsuite(stack, "invoices", invoice_id)}
    # The recognised month is reversed by one journal in the current period (revenue
    # debited, deferred revenue credited); the months not recognised are never posted.
    journals = {j["externalId"]: j for j in netsuite(stack, "journalEntries", invoice_id)}
    recognised_id = f"{invoice_id}~{seats_line}~{period(closed_month)}"
    reversal_id = f"{invoice_id}~{seats_line}~{period(month_start(0))}~void"
    assert sorted(journals) == sorted([recognised_id, reversal_id])
    reversal = journals[reversal_id]
    assert reversal["postingPeriod"] == netsuite_period(month_start(0))
    lines = {line["account"]: line for line in reversal["line"]}
    assert (lines["4000"]["debit"], lines["2400"]["credit"]) == (D("360.00"), D("360.00"))
    assert crm_account(stack, account)["Revsync_AR_Status__c"] == "Void"
    assert business_events(stack, invoice_id) == sorted(
        ["invoice.posted", "revenue.recognized", "invoice.voided"]
    )


async def test_a_closed_erp_period_parks_the_saga_until_reopened_and_retried(
    stack: Stack,
) -> None:
    account = "0015e00000AcmeUS1"
    await book(stack, account)
    month = month_start(5)  # a month no other test bills
    invoice = await make_invoice(
        stack,
        {
            "account_id": account,
            "currency": "usd",
            "lines": [
                {
                    "product": "PLAT-CORE",
                    "quantity": 5,
                    "unit_amount": 6000,
                    "recurring": "month",
                    "period_start": month.isoformat(),
                }
            ],
        },
    )
    invoice_id = invoice["id"]
    async with httpx.AsyncClient(timeout=10) as http:
        closed = await http.post(
            f"{stack.sandbox.url}/_sandbox/netsuite/periods",
            json={"period": period(month), "closed": True},
        )
        assert closed.status_code == 200, closed.text
        handle = await finalize(stack, invoice)
        parked = await until(handle, lambda s: s.stage is InvoiceStage.NEEDS_ATTENTION)
        assert parked.parked is not None
        assert parked.parked.step is InvoiceStep.POST_JOURNAL
        assert (
            parked.parked.key == f"{invoice_id}/{invoice['lines']['data'][0]['id']}/{period(month)}"
        )
        assert "closed" in parked.parked.reason.lower()
        assert parked.receivable_id is not None  # the receivable posts in an open period
        assert netsuite(stack, "journalEntries", invoice_id) == []

        # Finance ops find it through visibility.
        query = (
            f'InvoiceStage="NEEDS_ATTENTION" AND BlockedStep="post_journal" '
            f'AND InvoiceId="{invoice_id}"'
        )
        assert await search(stack, query) == [invoice_workflow_id(invoice_id)]
        (listed,) = [i for i in await parked_invoices(stack.client) if i.invoice_id == invoice_id]
        assert (listed.blocked_step, listed.customer_id) == ("post_journal", account)
        assert listed.amount_due == "300.00 USD"
        code, out, err = await revsync(stack, "stuck", "--invoices", "--json")
        assert code == 0, err
        rows = [row for row in json.loads(out) if row["invoice_id"] == invoice_id]
        assert [(r["workflow_id"], r["blocked_step"]) for r in rows] == [
            (invoice_workflow_id(invoice_id), "post_journal")
        ]
        code, out, err = await revsync(stack, "stuck")
        assert code == 0, err
        (row,) = [line for line in out.splitlines() if invoice_id in line]
        assert "post_journal" in row and account in row

        # Deciding takes an operator's staff token at the ops API.
        retry = {"action": "retry", "note": "too early"}
        refused = await stack.gateway.post(f"/v1/ops/invoices/{invoice_id}/resolve", json=retry)
        assert refused.status_code == 401
        not_operator = await ops(stack, "Fiona", f"/v1/ops/invoices/{invoice_id}/resolve", retry)
        assert not_operator.status_code == 403
        unknown = await ops(stack, "Oscar", "/v1/ops/invoices/in_nothing/resolve", retry)
        assert unknown.status_code == 404
        compensate = {"action": "compensate", "note": "undo it"}
        wrong = await ops(stack, "Oscar", f"/v1/ops/invoices/{invoice_id}/resolve", compensate)
        assert wrong.status_code == 409, wrong.text

        # Retried while the period is still closed: refused again, parked again.
        answer = await ops(stack, "Oscar", f"/v1/ops/invoices/{invoice_id}/resolve", retry)
        assert answer.status_code == 200, answer.text
        assert answer.json()["actor"] == "Oscar Ops <oscar@example.com>"
        again = await until(
            handle,
            lambda s: (
                s.stage is InvoiceStage.NEEDS_ATTENTION
                and [r.state for r in s.steps if r.step is InvoiceStep.POST_JOURNAL]
                == ["failed", "failed"]
            ),
        )
        assert [d.note for d in again.decisions] == ["too early"]
        assert again.parked is not None and again.parked.step is InvoiceStep.POST_JOURNAL
        assert netsuite(stack, "journalEntries", invoice_id) == []

        # Finance reopens the period; an operator retries.
        reopened = await http.post(
            f"{stack.sandbox.url}/_sandbox/netsuite/periods",
            json={"period": period(month), "closed": False},
        )
        assert reopened.status_code == 200, reopened.text
    answer = await ops(
        stack,
        "Oscar",
        f"/v1/ops/invoices/{invoice_id}/resolve",
        {"action": "retry", "note": "period reopened"},
    )
    assert answer.status_code == 200, answer.text
    decision = InvoiceDecision.model_validate(answer.json())
    assert decision.step is InvoiceStep.POST_JOURNAL
    assert decision.actor == "Oscar Ops <oscar@example.com>"
    assert decision.note == "period reopened"
    status = await until(
        handle,
        lambda s: (
            s.stage is InvoiceStage.AWAITING_PAYMENT and s.recognised_through == period(month)
        ),
    )
    assert status.parked is None
    assert status.recognised_revenue == D("300.00")
    (journal,) = netsuite(stack, "journalEntries", invoice_id)
    assert journal["postingPeriod"] == netsuite_period(month)
    found = await search(stack, f'InvoiceStage="AWAITING_PAYMENT" AND InvoiceId="{invoice_id}"')
    assert found == [invoice_workflow_id(invoice_id)]
    description = await handle.describe()
    assert description.typed_search_attributes.get(visibility.BLOCKED_STEP) is None
    for _ in range(100):  # visibility is eventually consistent
        if invoice_id not in {i.invoice_id for i in await parked_invoices(stack.client)}:
            break
        await asyncio.sleep(0.2)
    assert invoice_id not in {i.invoice_id for i in await parked_invoices(stack.client)}


def credit_note_event(
    invoice: dict[str, Any], line_id: str, amount: int, tax: int, memo: str
) -> dict[str, Any]:
    """``credit_note.created`` as Stripe sends it (tests/gateway/fixtures), crediting
    ``amount`` plus ``tax`` (in minor units) of one invoice line."""
    event: dict[str, Any] = json.loads(CREDIT_NOTE_FIXTURE.read_text())
    note_id = f"cn_{uuid.uuid4().hex[:20]}"
    note = event["data"]["object"]
    (line,) = note["lines"]["data"]
    line |= {
        "id": f"cnli_{uuid.uuid4().hex[:20]}",
        "amount": amount,
        "description": memo,
        "invoice_line_item": line_id,
        "quantity": 1,
        "unit_amount": amount,
    }
    line["tax_amounts"][0]["amount"] = tax
    note |= {
        "id": note_id,
        "amount": amount + tax,
        "subtotal": amount,
        "total": amount + tax,
        "currency": invoice["currency"],
        "customer": invoice["customer"],
        "invoice": invoice["id"],
        "memo": memo,
        "created": int(time.time()),
    }
    note["lines"]["url"] = f"/v1/credit_notes/{note_id}/lines"
    return stripe_event("credit_note.created", note)


async def test_a_partial_credit_note_credits_the_erp_receivable_for_its_line_only(
    stack: Stack,
) -> None:
    account = "0015e00000NordDE1"
    await book(stack, account)
    recognised_month = month_start(4)  # a month no other test bills
    invoice = await make_invoice(
        stack,
        {
            "account_id": account,
            "currency": "eur",
            "lines": [
                # this month: not recognised yet
                {
                    "product": "PLAT-CORE",
                    "quantity": 20,
                    "unit_amount": 4200,
                    "recurring": "month",
                    "period_start": month_start(0).isoformat(),
                    "tax": 15960,
                },
                # a closed month: recognised at once
                {
                    "product": "PLAT-ANALYTICS",
                    "quantity": 1,
                    "unit_amount": 50000,
                    "recurring": "month",
                    "period_start": recognised_month.isoformat(),
                    "tax": 9500,
                },
            ],
        },
    )
    invoice_id = invoice["id"]
    seats_line, analytics_line = (line["id"] for line in invoice["lines"]["data"])
    handle = await finalize(stack, invoice)
    status = await until(
        handle,
        lambda s: (
            s.stage is InvoiceStage.AWAITING_PAYMENT
            and s.recognised_through == period(recognised_month)
        ),
    )
    assert (status.total, status.scheduled_revenue) == (D("1594.60"), D("1340.00"))
    (receivable,) = netsuite(stack, "invoices", invoice_id)

    # Stripe credits 5 of the 20 seats: 210.00 EUR plus 39.90 EUR VAT.
    event = credit_note_event(invoice, seats_line, 21000, 3990, "5 seats removed")
    note_id = event["data"]["object"]["id"]
    answer = await send(stack, event)
    assert (answer.status_code, answer.json()["status"]) == (200, "delivered"), answer.text
    status = await until(
        handle,
        lambda s: (
            (r := s.step(InvoiceStep.CREDIT_RECEIVABLE, note_id)) is not None
            and r.state == "done"
            and s.receivable_status is ReceivableStatus.CURRENT
            and s.amount_due == D("1344.70")
        ),
    )
    assert status.credit_notes == [note_id]
    assert status.amount_credited == D("249.90")
    assert status.scheduled_revenue == D("1130.00")  # the seats' month shrank by 210.00
    # What is due is current in visibility at once, not at the next stage change.
    described = await handle.describe()
    assert described.typed_search_attributes.get(visibility.INVOICE_AMOUNT_DUE) == 1344.70
    redelivered = await send(stack, event)
    assert redelivered.status_code == 200, redelivered.text

    # One NetSuite credit memo, from the receivable, for the seats line and those amounts only.
    (memo,) = netsuite(stack, "creditMemos", invoice_id)
    assert (memo["externalId"], memo["createdFrom"]) == (note_id, receivable["id"])
    assert memo["currency"] == "EUR"
    assert [
        (x["itemId"], x["amount"], x["taxAmount"], x["custcol_revsync_line"]) for x in memo["item"]
    ] == [("PLAT-CORE", D("210.00"), D("39.90"), seats_line)]
    assert (memo["total"], memo["applied"], memo["unapplied"]) == (
        D("249.90"),
        D("249.90"),
        D("0.00"),
    )
    assert memo["apply"] == [{"doc": receivable["id"], "amount": D("249.90")}]
    (after,) = netsuite(stack, "invoices", invoice_id)
    assert (after["total"], after["amountRemaining"]) == (D("1594.60"), D("1344.70"))
    record = status.step(InvoiceStep.CREDIT_RECEIVABLE, note_id)
    assert record is not None and record.detail == f"credit memo {memo['id']}: 249.90 EUR"
    assert D(str(crm_account(stack, account)["Revsync_AR_Amount_Due__c"])) == D("1344.70")

    # A void then reverses only what the credit note left: no credit owed to the customer.
    voided = await stripe_call(stack, "POST", f"invoices/{invoice_id}/void")
    answer = await send(stack, stripe_event("invoice.voided", voided))
    assert (answer.status_code, answer.json()["status"]) == (200, "delivered"), answer.text
    final = await handle.result()
    assert final.stage is InvoiceStage.VOIDED
    assert final.recognised_revenue == 0
    first, reversal = netsuite(stack, "creditMemos", invoice_id)
    assert first == memo
    assert reversal["externalId"] == f"i2r-{invoice_id}:void"
    assert sorted(
        (x["custcol_revsync_line"], x["amount"], x["taxAmount"]) for x in reversal["item"]
    ) == sorted([(seats_line, D("630.00"), D("119.70")), (analytics_line, D("500.00"), D("95.00"))])
    assert (reversal["total"], reversal["unapplied"]) == (D("1344.70"), D("0.00"))
    (reversed_receivable,) = netsuite(stack, "invoices", invoice_id)
    assert reversed_receivable["amountRemaining"] == D("0.00")


async def test_a_credit_note_after_the_saga_closed_is_booked_by_an_adjustment(
    stack: Stack,
) -> None:
    account = "0015e00000AcmeUS1"
    await book(stack, account)
    month = month_start(6)  # a month no other test bills
    invoice = await make_invoice(
        stack,
        {
            "account_id": account,
            "currency": "usd",
            "lines": [
                {
                    "product": "PLAT-CORE",
                    "quantity": 2,
                    "unit_amount": 10000,
                    "recurring": "month",
                    "period_start": month.isoformat(),
                    "tax": 1600,
                }
            ],
        },
    )
    invoice_id = invoice["id"]
    line_id = invoice["lines"]["data"][0]["id"]
    handle = await finalize(stack, invoice)
    await until(handle, lambda s: s.recognised_through == period(month))
    paid = await stripe_call(
        stack, "POST", f"invoices/{invoice_id}/pay", data={"paid_out_of_band": "true"}
    )
    answer = await send(stack, stripe_event("invoice.paid", paid))
    assert answer.status_code == 200, answer.text
    ended = await handle.result()
    assert ended.stage is InvoiceStage.CLOSED and ended.amount_due == 0

    # Stripe credits 50.00 USD plus 4.00 tax of the paid invoice (a goodwill credit).
    event = credit_note_event(invoice, line_id, 5000, 400, "goodwill")
    note_id = event["data"]["object"]["id"]
    answer = await send(stack, event)
    assert answer.status_code == 200, answer.text
    started = answer.json()
    adjustment_id = f"i2r-adj-{invoice_id}-credit_note-{note_id}"
    assert (started["status"], started["adjustment"], started["workflow_id"]) == (
        "started",
        "credit_note",
        adjustment_id,
    )
    adjustment = stack.client.get_workflow_handle_for(InvoiceAdjustmentWorkflow.run, adjustment_id)

    # The revenue comes back at once: one journal in the current period, keyed by the note.
    # The credit memo is refused (the invoice owes nothing: a refund is finance's call), and
    # the adjustment parks where finance ops look.
    deadline = time.monotonic() + 60
    while True:
        status = await adjustment.query(InvoiceAdjustmentWorkflow.status)
        if status.stage is AdjustmentStage.NEEDS_ATTENTION or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert status.parked is not None, status
    assert (status.parked.step, status.parked.key) == (InvoiceStep.CREDIT_RECEIVABLE, note_id)
    assert "CREDIT_EXCEEDS_DUE" in status.parked.reason
    current = month_start(0)
    taken_id = f"{invoice_id}~{line_id}~{period(current)}~credit~{note_id}"
    journals = {j["externalId"]: j for j in netsuite(stack, "journalEntries", invoice_id)}
    assert sorted(journals) == sorted([f"{invoice_id}~{line_id}~{period(month)}", taken_id])
    assert journals[taken_id]["postingPeriod"] == netsuite_period(current)
    lines = {line["account"]: line for line in journals[taken_id]["line"]}
    assert (lines["4000"]["debit"], lines["2400"]["credit"]) == (D("50.00"), D("50.00"))
    assert netsuite(stack, "creditMemos", invoice_id) == []

    query = (
        f'InvoiceStage="NEEDS_ATTENTION" AND BlockedStep="credit_receivable" '
        f'AND InvoiceId="{invoice_id}"'
    )
    assert await search(stack, query) == [adjustment_id]
    code, out, err = await revsync(stack, "stuck", "--invoices", "--json")
    assert code == 0, err
    rows = [row for row in json.loads(out) if row["invoice_id"] == invoice_id]
    assert [(r["workflow_id"], r["blocked_step"]) for r in rows] == [
        (adjustment_id, "credit_receivable")
    ]
    code, out, err = await revsync(stack, "stuck")
    assert code == 0, err
    (row,) = [line for line in out.splitlines() if invoice_id in line]
    assert adjustment_id in row and "credit_receivable" in row

    # Stripe delivers the credit note again: nothing starts twice.
    again = await send(stack, event)
    assert (again.status_code, again.json()["status"]) == (200, "duplicate"), again.text

    # An operator settles the refund in NetSuite by hand and skips the step, through the
    # invoice's resolve (its saga has ended: the parked adjustment is the one decided on).
    answer = await ops(
        stack,
        "Oscar",
        f"/v1/ops/invoices/{invoice_id}/resolve",
        {"action": "skip", "note": "refunded by hand in NetSuite"},
    )
    assert answer.status_code == 200, answer.text
    assert InvoiceDecision.model_validate(answer.json()).step is InvoiceStep.CREDIT_RECEIVABLE
    final = await adjustment.result()
    assert final.stage is AdjustmentStage.ADJUSTED
    assert (final.amount_credited, final.revenue_taken_back) == (D("54.00"), D("50.00"))
    record = crm_account(stack, account)
    assert record["Revsync_AR_Invoice__c"] == invoice_id
    assert record["Revsync_AR_Status__c"] == "Paid"
    assert business_events(stack, invoice_id) == sorted(
        ["invoice.posted", "revenue.recognized", "payment.applied", "revenue.recognized"]
    )
