"""Invoice-to-revenue started and fed by Zuora, end to end: ``REVSYNC_BILLING=zuora``, a real
Temporal dev server, the real workers and adapters, the gateway over HTTP, the sandbox's Zuora
and NetSuite. A quote booked through quote-to-cash makes the Zuora account and the NetSuite
customer; invoices are then made in the Zuora emulator, and the callouts it renders (as a
tenant configured with revsync's templates sends them, docs/api.md) are posted to
``/v1/webhooks/zuora/invoices`` with the shared secret, as Zuora posts them.

As in test_e2e.py, the invoices bill months that have already closed, so the saga recognises
them at once instead of waiting for a period close."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from adapters import registry
from adapters.webhooks import zuora_invoices
from domain.invoice_contracts import InvoiceStage, InvoiceStep, invoice_workflow_id
from domain.receivable import ReceivableStatus
from domain.stages import OrderStage
from revsync.demo import create_crm_quote
from sandbox.quotes import account_currency, quote_payload
from tests.e2e.stack import Stack, running_stack
from tests.e2e.test_quote_to_cash_e2e import deliver, finished
from tests.invoice_to_revenue.test_e2e import (
    Handle,
    business_events,
    crm_account,
    month_start,
    netsuite,
    period,
    search,
    until,
)
from workflows.invoice_to_revenue import InvoiceToRevenueWorkflow

pytestmark = pytest.mark.e2e

D = Decimal
SECRET = "zcs_e2e_" + "5c1e" * 8
PATH = "/v1/webhooks/zuora/invoices"


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    with pytest.MonkeyPatch.context() as env:
        # As production configures it: the environment (docs/configuration.md).
        env.setenv("REVSYNC_ZUORA_CALLOUT_SECRET", SECRET)
        async with running_stack(vendors={"billing": "zuora"}) as running:
            assert running.settings.billing == "zuora"
            yield running


# -- Zuora: the emulator's invoices and the callouts it renders ------------------------------


async def book(stack: Stack, account_id: str) -> None:
    """Book a quote through quote-to-cash (in the account's currency: Zuora bills an account
    in one): it makes the Zuora account (``crmId``) and the ERP customer ``acct-<account>``."""
    async with httpx.AsyncClient(timeout=30) as http:
        quote_id = await create_crm_quote(http, stack.settings, account_id)
    payload = quote_payload(quote_id, account_id=account_id, currency=account_currency(account_id))
    assert (await deliver(stack, payload)).status_code == 202
    assert (await finished(stack, payload["quote_id"])).stage is OrderStage.BOOKED


async def sandbox(stack: Stack, method: str, path: str, **kwargs: Any) -> Any:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.request(
            method, f"{stack.sandbox.url}/_sandbox/zuora/{path}", **kwargs
        )
    assert response.status_code == 200, response.text
    return response.json()


async def make_invoice(stack: Stack, account_id: str, items: list[dict[str, Any]]) -> Any:
    """A posted invoice issued today in the Zuora emulator (docs/sandbox.md), with its item
    ids."""
    spec = {
        "account_id": account_id,
        "invoice_date": datetime.now(UTC).date().isoformat(),  # due in 30 days
        "items": items,
    }
    invoice = await sandbox(stack, "POST", "invoices", json=spec)
    assert invoice["status"] == "Posted"
    items_of = stack.sandbox.state.zuora.items
    invoice["itemIds"] = [i["id"] for i in items_of if i["invoiceId"] == invoice["id"]]
    return invoice


async def callouts(stack: Stack, invoice_number: str, event: str) -> list[dict[str, Any]]:
    found = await sandbox(stack, "GET", "callouts", params={"invoice": invoice_number})
    return [c for c in found["callouts"] if c["event"] == event]


async def send(
    stack: Stack, callout: dict[str, Any], secret: str | None = SECRET
) -> httpx.Response:
    """POST the callout as Zuora does: the rendered body, the custom secret header, and
    ``Zuora-Notification-Id``."""
    headers = {
        "content-type": "application/json",
        zuora_invoices.NOTIFICATION_HEADER: callout["notificationId"],
    }
    if secret is not None:
        headers[zuora_invoices.SECRET_HEADER] = secret
    return await stack.gateway.post(PATH, content=json.dumps(callout["body"]), headers=headers)


async def post_invoice(stack: Stack, invoice: dict[str, Any]) -> Handle:
    """Send the invoice's ``invoice.posted`` callout: the saga starts."""
    (posted,) = await callouts(stack, invoice["invoiceNumber"], "invoice.posted")
    answer = await send(stack, posted)
    assert (answer.status_code, answer.json()["status"]) == (200, "started"), answer.text
    return stack.client.get_workflow_handle_for(
        InvoiceToRevenueWorkflow.run, invoice_workflow_id(invoice["invoiceNumber"])
    )


def last_day(next_start: date) -> str:
    """Zuora's (inclusive) service end date of a period ending before ``next_start``."""
    return (next_start - timedelta(days=1)).isoformat()


# -- the tests ------------------------------------------------------------------------------


async def test_a_posted_zuora_invoice_is_posted_in_the_erp_and_its_payment_applied_once(
    stack: Stack,
) -> None:
    account = "0015e00000NordDE1"
    await book(stack, account)
    first, second, current = month_start(3), month_start(2), month_start(1)
    invoice = await make_invoice(
        stack,
        account,
        [
            # two months of platform seats, billed in arrears
            {
                "sku": "PLAT-CORE",
                "amount": "756.00",
                "tax": "143.64",
                "start": first.isoformat(),
                "end": last_day(current),
            },
            # one month of analytics
            {
                "sku": "PLAT-ANALYTICS",
                "amount": "500.00",
                "tax": "95.00",
                "start": second.isoformat(),
                "end": last_day(current),
            },
        ],
    )
    number = invoice["invoiceNumber"]
    seats_item, analytics_item = invoice["itemIds"]
    (posted,) = await callouts(stack, number, "invoice.posted")

    # Without the secret, or with another one, nothing is read and nothing starts.
    for secret in (None, "zcs_guessed", SECRET[:-1]):
        refused = await send(stack, posted, secret=secret)
        assert refused.status_code == 401, refused.text
    assert await search(stack, f'InvoiceId="{number}"', wanted=1, seconds=1) == []

    handle = await post_invoice(stack, invoice)
    # Zuora's next attempt, or a second notification about the invoice, starts nothing.
    for again in (posted, posted | {"notificationId": "0" * 32}):
        answer = await send(stack, again)
        assert (answer.status_code, answer.json()["status"]) == (200, "duplicate"), answer.text
    status = await until(
        handle,
        lambda s: (
            s.stage is InvoiceStage.AWAITING_PAYMENT and s.recognised_through == period(second)
        ),
    )
    assert await search(stack, f'InvoiceId="{number}"') == [invoice_workflow_id(number)]
    assert (status.total, status.amount_due) == (D("1494.64"), D("1494.64"))
    assert status.recognised_revenue == status.scheduled_revenue == D("1256.00")
    assert status.receivable_status is ReceivableStatus.CURRENT

    # The receivable: once, on the account's ERP customer, line by line with Zuora's items.
    (receivable,) = netsuite(stack, "invoices", number)
    assert receivable["id"] == status.receivable_id
    assert receivable["externalId"] == f"i2r-{number}:receivable"
    assert receivable["otherRefNum"] == number
    assert (receivable["currency"], receivable["total"]) == ("EUR", D("1494.64"))
    assert [
        (x["itemId"], x["amount"], x["taxAmount"], x["custcol_revsync_line"])
        for x in receivable["item"]
    ] == [
        ("PLAT-CORE", D("756.00"), D("143.64"), seats_item),
        ("PLAT-ANALYTICS", D("500.00"), D("95.00"), analytics_item),
    ]
    journals = {j["externalId"] for j in netsuite(stack, "journalEntries", number)}
    assert journals == {
        f"{number}~{seats_item}~{period(first)}",
        f"{number}~{seats_item}~{period(second)}",
        f"{number}~{analytics_item}~{period(second)}",
    }
    assert crm_account(stack, account)["Revsync_AR_Status__c"] == "Current"

    # Paid in Zuora: its callout, sent twice at once and once more (Zuora retries), applies
    # one payment in the ERP.
    await sandbox(stack, "POST", f"invoices/{number}/payments", json={"amount": "1494.64"})
    (applied,) = await callouts(stack, number, "payment.applied")
    payment_number = applied["body"]["paymentNumber"]
    answers = await asyncio.gather(send(stack, applied), send(stack, applied))
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] in ("delivered", "duplicate"), answer.text
    final = await handle.result()
    assert final.stage is InvoiceStage.CLOSED
    assert (final.amount_paid, final.amount_due) == (D("1494.64"), D(0))
    assert [p.payment_id for p in final.payments] == [f"{payment_number}@{number}"]
    # Sent again after the saga closed: it applied that payment, so nothing starts.
    late = await send(stack, applied)
    assert (late.status_code, late.json()["status"]) == (200, "duplicate"), late.text

    (payment,) = netsuite(stack, "customerPayments", number)
    assert payment["externalId"] == f"{payment_number}@{number}"
    assert payment["apply"] == [{"doc": receivable["id"], "amount": D("1494.64")}]
    assert crm_account(stack, account)["Revsync_AR_Status__c"] == "Paid"
    assert business_events(stack, number) == sorted(
        ["invoice.posted", "revenue.recognized", "revenue.recognized", "payment.applied"]
    )


async def test_callouts_out_of_order_a_credit_memo_and_a_cancellation(stack: Stack) -> None:
    account = "0015e00000ThamGB1"
    await book(stack, account)
    closed_month = month_start(5)  # a month no other test bills
    items = [
        # a closed month: recognised at once
        {
            "sku": "PLAT-CORE",
            "amount": "360.00",
            "tax": "72.00",
            "start": closed_month.isoformat(),
            "end": last_day(month_start(4)),
        },
        # this month and next: not recognised yet
        {
            "sku": "PLAT-ANALYTICS",
            "amount": "240.00",
            "tax": "48.00",
            "start": month_start(0).isoformat(),
            "end": last_day(month_start(-2)),
        },
    ]
    invoice = await make_invoice(stack, account, items)
    number = invoice["invoiceNumber"]
    analytics_item = invoice["itemIds"][1]

    # A partial payment whose callout overtakes the invoice's: refused, so Zuora sends it
    # again; once the saga exists it lands.
    await sandbox(stack, "POST", f"invoices/{number}/payments", json={"amount": "100.00"})
    (applied,) = await callouts(stack, number, "payment.applied")
    early = await send(stack, applied)
    assert (early.status_code, early.json()["status"]) == (409, "unknown invoice"), early.text
    handle = await post_invoice(stack, invoice)
    retried = await send(stack, applied)
    assert (retried.status_code, retried.json()["status"]) == (200, "delivered"), retried.text
    status = await until(
        handle,
        lambda s: (
            s.stage is InvoiceStage.AWAITING_PAYMENT
            and s.recognised_through == period(closed_month)
            and s.amount_due == D("620.00")
        ),
    )
    (receivable,) = netsuite(stack, "invoices", number)
    assert len(netsuite(stack, "customerPayments", number)) == 1

    # A credit memo for 100.00 of the analytics item, plus 20 % VAT.
    memo = await sandbox(
        stack,
        "POST",
        f"invoices/{number}/credit-memos",
        json={"items": [{"item_id": analytics_item, "amount": "100.00", "tax": "20.00"}]},
    )
    (posted_memo,) = await callouts(stack, number, "creditmemo.posted")
    answer = await send(stack, posted_memo)
    assert (answer.status_code, answer.json()["status"]) == (200, "delivered"), answer.text
    status = await until(
        handle,
        lambda s: (
            (r := s.step(InvoiceStep.CREDIT_RECEIVABLE, memo["number"])) is not None
            and r.state == "done"
            and s.amount_due == D("500.00")
        ),
    )
    assert status.credit_notes == [memo["number"]]
    assert status.scheduled_revenue == D("500.00")  # analytics shrank by 100.00
    (credit,) = netsuite(stack, "creditMemos", number)
    assert (credit["externalId"], credit["createdFrom"]) == (memo["number"], receivable["id"])
    assert [
        (x["itemId"], x["amount"], x["taxAmount"], x["custcol_revsync_line"])
        for x in credit["item"]
    ] == [("PLAT-ANALYTICS", D("100.00"), D("20.00"), analytics_item)]
    assert D(str(crm_account(stack, account)["Revsync_AR_Amount_Due__c"])) == D("500.00")

    # Another invoice, cancelled in Zuora through the billing adapter (unposted, then
    # cancelled): its callout voids the saga.
    other = await make_invoice(stack, account, items[:1])
    other_number = other["invoiceNumber"]
    other_handle = await post_invoice(stack, other)
    await until(other_handle, lambda s: s.stage is InvoiceStage.AWAITING_PAYMENT)
    async with httpx.AsyncClient(timeout=30) as http:
        billing = registry.BILLING_VENDORS["zuora"](stack.settings, http)
        cancelled = await billing.void_invoice(other_number)
    assert cancelled.status == "void"
    (canceled,) = await callouts(stack, other_number, "invoice.canceled")
    answer = await send(stack, canceled)
    assert (answer.status_code, answer.json()["status"]) == (200, "delivered"), answer.text
    final = await other_handle.result()
    assert final.stage is InvoiceStage.VOIDED
    assert final.recognised_revenue == 0
    (reversal,) = netsuite(stack, "creditMemos", other_number)
    assert reversal["externalId"] == f"i2r-{other_number}:void"
    assert reversal["total"] == D("432.00")
    assert netsuite(stack, "customerPayments", other_number) == []
