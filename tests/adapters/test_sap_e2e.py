"""Quote-to-cash and invoice-to-revenue, unchanged, with SAP S/4HANA Cloud as the ERP: the
whole stack on a real Temporal dev server (workers built from ``REVSYNC_ERP=sap``, the gateway
over HTTP), Stripe events in, the S/4HANA emulator's documents read back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from adapters.erp.sap import order_reference
from adapters.erp.sap_finance import document_reference
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
    async with running_stack(vendors={"erp": "sap"}) as running:
        yield running


def items(stack: Stack, key: str, kind: str) -> list[dict[str, Any]]:
    """The journal entry items of document type ``kind`` posted under ``key``."""
    rows: list[dict[str, Any]] = stack.sandbox.state.sap.finance.items
    reference = document_reference(key)
    return [
        r
        for r in rows
        if r["DocumentReferenceID"] == reference and r["AccountingDocumentType"] == kind
    ]


def documents(rows: list[dict[str, Any]]) -> set[str]:
    return {r["AccountingDocument"] for r in rows}


async def test_an_invoice_is_posted_recognised_and_paid_once_in_sap(stack: Stack) -> None:
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
    receivable = items(stack, f"i2r-{invoice_id}:receivable", "DR")
    assert len(documents(receivable)) == 1
    (debtor,) = [r for r in receivable if r["FinancialAccountType"] == "D"]
    assert D(debtor["AmountInTransactionCurrency"]) == D("499.80")
    assert status.receivable_id == f"1010-{debtor['AccountingDocument']}-{debtor['FiscalYear']}"
    journals = [
        r
        for r in stack.sandbox.state.sap.finance.items
        if r["AccountingDocumentType"] == "SA" and invoice_id in r["DocumentItemText"]
    ]
    assert len(documents(journals)) == 1
    revenue = [r for r in journals if r["GLAccount"] == "41000000"]
    assert [D(r["AmountInTransactionCurrency"]) for r in revenue] == [D("-420.00")]

    paid = await stripe_call(
        stack, "POST", f"invoices/{invoice_id}/pay", data={"paid_out_of_band": "true"}
    )
    for kind in ("invoice.paid", "invoice.paid"):
        answer = await send(stack, stripe_event(kind, paid))
        assert answer.status_code == 200, answer.text
    final = await handle.result()
    assert final.stage is InvoiceStage.CLOSED and final.amount_paid == D("499.80")
    payments = [
        r
        for r in stack.sandbox.state.sap.finance.items
        if r["AccountingDocumentType"] == "DZ"
        and r["InvoiceReference"] == debtor["AccountingDocument"]
    ]
    assert len(documents(payments)) == 1
    assert [D(r["AmountInTransactionCurrency"]) for r in payments] == [D("-499.80")]


async def test_a_voided_invoice_is_credited_in_full_in_sap(stack: Stack) -> None:
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
    credit = items(stack, f"i2r-{invoice_id}:void", "DG")
    assert len(documents(credit)) == 1
    (debtor,) = [r for r in credit if r["FinancialAccountType"] == "D"]
    assert D(debtor["AmountInTransactionCurrency"]) == D("-28.80")


async def test_a_lost_order_answer_books_once_and_a_billing_refusal_cancels_it(
    stack: Stack,
) -> None:
    account = "0015e00000AcmeUS1"
    # S/4HANA applies the order and the answer is lost: the retry finds it by its reference.
    inject(
        stack, FaultRule(vendor="sap", operation="create_sales_order", phase="after", status=502)
    )
    booked = await new_quote(stack, account)
    assert (await deliver(stack, booked)).status_code == 202
    status = await finished(stack, booked["quote_id"])
    assert status.stage is OrderStage.BOOKED, status
    reference = order_reference(f"q2c-{booked['quote_id']}:erp-order")
    orders = stack.sandbox.state.sap.snapshot()["salesOrders"]
    (order,) = [o for o in orders if o["PurchaseOrderByCustomer"] == reference]
    assert order["SalesOrder"] == status.erp_order_id
    assert D(order["TotalNetAmount"]) == status.amount

    # Billing refuses the next quote: the saga rejects every item of its sales order.
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
    reference = order_reference(f"q2c-{refused['quote_id']}:erp-order")
    orders = stack.sandbox.state.sap.snapshot()["salesOrders"]
    (cancelled,) = [o for o in orders if o["PurchaseOrderByCustomer"] == reference]
    assert cancelled["OverallSDDocumentRejectionSts"] == "C"
