"""Invoice-to-revenue, unchanged, with Dynamics 365 as the ERP: the whole stack on a real
Temporal dev server (workers built from ``REVSYNC_ERP=dynamics``, the gateway over HTTP),
Stripe events in, the Dataverse emulator's records read back."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from domain.invoice_contracts import InvoiceStage
from domain.stages import OrderStage
from sandbox.faults import FaultRule
from tests.e2e.stack import Stack, running_stack
from tests.e2e.test_failures_e2e import inject
from tests.e2e.test_quote_to_cash_e2e import deliver, finished, new_quote
from tests.invoice_to_revenue.test_e2e import (
    book,
    finalize,
    make_invoice,
    month_start,
    period,
    send,
    stripe_call,
    stripe_event,
    until,
)

pytestmark = pytest.mark.e2e
D = Decimal


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    async with running_stack(vendors={"erp": "dynamics"}) as running:
        yield running


def dataverse(stack: Stack, table: str, invoice_id: str) -> list[dict[str, Any]]:
    """The Dataverse rows of ``table`` that name the invoice."""
    rows: list[dict[str, Any]] = stack.sandbox.state.dynamics.snapshot()[table]
    return [r for r in rows if invoice_id in json.dumps(r, default=str)]


async def test_an_invoice_is_posted_recognised_and_paid_once_in_dynamics(stack: Stack) -> None:
    account = "0015e00000NordDE1"
    await book(stack, account)
    first, current = month_start(2), month_start(1)
    invoice = await make_invoice(
        stack,
        {
            "account_id": account,
            "currency": "eur",
            "days_until_due": 30,
            "lines": [
                {
                    "product": "PLAT-CORE",
                    "quantity": 10,
                    "unit_amount": 4200,
                    "recurring": "month",
                    "period_start": first.isoformat(),
                    "period_end": current.isoformat(),
                    "tax": 7980,
                }
            ],
        },
    )
    invoice_id = invoice["id"]
    handle = await finalize(stack, invoice)
    status = await until(
        handle,
        lambda s: (
            s.stage is InvoiceStage.AWAITING_PAYMENT and s.recognised_through == period(first)
        ),
    )
    assert (status.total, status.amount_due) == (D("499.80"), D("499.80"))

    (receivable,) = dataverse(stack, "invoices", invoice_id)
    assert receivable["invoiceid"] == status.receivable_id
    assert receivable["revsync_externalkey"] == f"i2r-{invoice_id}:receivable"
    assert receivable["totalamount"] == D("499.80") and receivable["totaltax"] == D("79.80")
    (journal,) = dataverse(stack, "revenuejournals", invoice_id)
    assert (journal["revsync_period"], journal["revsync_amount"]) == (period(first), D("420.00"))
    assert (journal["revsync_debitaccount"], journal["revsync_creditaccount"]) == ("2400", "4000")

    paid = await stripe_call(
        stack, "POST", f"invoices/{invoice_id}/pay", data={"paid_out_of_band": "true"}
    )
    for kind in ("invoice.paid", "invoice.paid"):
        answer = await send(stack, stripe_event(kind, paid))
        assert answer.status_code == 200, answer.text
    final = await handle.result()
    assert final.stage is InvoiceStage.CLOSED and final.amount_paid == D("499.80")
    (payment,) = dataverse(stack, "payments", invoice_id)
    assert payment["revsync_applied"] == D("499.80") and payment["revsync_unapplied"] == 0
    (after,) = dataverse(stack, "invoices", invoice_id)
    assert (after["statecode"], after["revsync_amountdue"]) == (2, 0)


async def test_a_voided_invoice_is_credited_in_full_in_dynamics(stack: Stack) -> None:
    account = "0015e00000ThamGB1"
    await book(stack, account)
    invoice = await make_invoice(
        stack,
        {
            "account_id": account,
            "currency": "gbp",
            "lines": [
                {
                    "product": "PLAT-ANALYTICS",
                    "quantity": 2,
                    "unit_amount": 1200,
                    "recurring": "month",
                    "period_start": month_start(0).isoformat(),
                    "period_end": month_start(-1).isoformat(),
                    "tax": 480,
                }
            ],
        },
    )
    invoice_id = invoice["id"]
    handle = await finalize(stack, invoice)
    await until(handle, lambda s: s.stage is InvoiceStage.AWAITING_PAYMENT)
    voided = await stripe_call(stack, "POST", f"invoices/{invoice_id}/void")
    answer = await send(stack, stripe_event("invoice.voided", voided))
    assert answer.status_code == 200, answer.text
    final = await handle.result()
    assert final.stage is InvoiceStage.VOIDED and final.amount_due == 0
    (credit,) = dataverse(stack, "creditnotes", invoice_id)
    assert credit["revsync_key"] == f"i2r-{invoice_id}:void"
    assert credit["revsync_total"] == D("28.80")
    (after,) = dataverse(stack, "invoices", invoice_id)
    assert (after["statecode"], after["revsync_amountdue"]) == (3, 0)


async def test_a_lost_order_answer_books_once_and_a_billing_refusal_cancels_it(
    stack: Stack,
) -> None:
    account = "0015e00000AcmeUS1"
    # Dataverse applies the order and the answer is lost: the retry finds it by its key.
    inject(
        stack,
        FaultRule(vendor="dynamics", operation="create_sales_order", phase="after", status=502),
    )
    booked = await new_quote(stack, account)
    assert (await deliver(stack, booked)).status_code == 202
    status = await finished(stack, booked["quote_id"])
    assert status.stage is OrderStage.BOOKED, status
    key = f"q2c-{booked['quote_id']}:erp-order"
    orders = stack.sandbox.state.dynamics.snapshot()["salesorders"]
    (order,) = [o for o in orders if o["revsync_externalkey"] == key]
    assert order["salesorderid"] == status.erp_order_id
    assert order["totalamount"] == status.amount

    # Billing refuses the next quote: the saga cancels its sales order (CancelSalesOrder).
    inject(
        stack,
        FaultRule(
            vendor="stripe", operation="create_subscription", status=402, code="card_declined"
        ),
    )
    refused = await new_quote(stack, account)
    assert (await deliver(stack, refused)).status_code == 202
    unwound = await finished(stack, refused["quote_id"])
    assert unwound.stage is OrderStage.COMPENSATED, unwound
    key = f"q2c-{refused['quote_id']}:erp-order"
    orders = stack.sandbox.state.dynamics.snapshot()["salesorders"]
    (cancelled,) = [o for o in orders if o["revsync_externalkey"] == key]
    assert (cancelled["statecode"], cancelled["statuscode"]) == (2, 4)
