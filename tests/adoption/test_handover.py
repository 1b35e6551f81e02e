"""The hand-over by watermark, on the invoice saga itself (time-skipping server, fake
vendors behind the real activities): an adopted invoice starts with the state it really has,
a payment made before the adoption's watermark (billing's amounts include it) is not applied
again when its event arrives late, a later payment is applied once."""

from __future__ import annotations

import uuid
from datetime import UTC, date, timedelta
from decimal import Decimal as D

from temporalio.testing import WorkflowEnvironment

from domain.adoption import InvoiceStart, adopted_input, catch_up, catch_up_payment_id
from domain.invoice_contracts import InvoicePolicy, InvoiceStage, PaymentReceived
from tests.invoice_to_revenue.fakes import FakeVendors, running_workers
from tests.invoice_to_revenue.test_lifecycle import make_invoice, until, vendors_with
from workflows.invoice_to_revenue import InvoiceToRevenueWorkflow


async def test_an_adopted_half_paid_invoice_counts_each_payment_once_across_the_watermark(
    own_time_skipping_env: WorkflowEnvironment,
) -> None:
    client = own_time_skipping_env.client
    now = await own_time_skipping_env.get_current_time()
    today = now.astimezone(UTC).date()
    invoice = make_invoice(today - timedelta(days=3), today.replace(day=1), 12)
    vendors: FakeVendors = vendors_with(invoice)
    half = invoice.total / 2
    start = InvoiceStart(invoice=invoice, amount_due=invoice.total - half, watermark=now)
    assert catch_up(start) == half  # the ERP has nothing yet: billing's payment comes along
    request = adopted_input(start, "UTC", InvoicePolicy())
    async with running_workers(client, vendors):
        handle = await client.start_workflow(
            InvoiceToRevenueWorkflow.run,
            request,
            id=f"i2r-{invoice.invoice_id}",
            task_queue="orchestration",
            start_signal="payment_received",
            start_signal_args=[
                PaymentReceived(
                    payment_id=catch_up_payment_id(invoice.invoice_id),
                    amount=half,
                    currency=invoice.currency,
                    paid_at=now,
                )
            ],
        )
        status = await until(handle, lambda s: s.amount_paid == half)
        assert status.stage is InvoiceStage.AWAITING_PAYMENT and status.amount_due == half
        # The payment that made it half paid, its event delivered late: counted already.
        await handle.signal(
            InvoiceToRevenueWorkflow.payment_received,
            PaymentReceived(
                payment_id="ch_before",
                amount=half,
                currency=invoice.currency,
                paid_at=now - timedelta(hours=2),
            ),
        )
        # The rest, paid after the watermark: applied.
        await handle.signal(
            InvoiceToRevenueWorkflow.payment_received,
            PaymentReceived(
                payment_id="ch_after",
                amount=half,
                currency=invoice.currency,
                paid_at=now + timedelta(minutes=5),
            ),
        )
        paid = await until(handle, lambda s: s.amount_due == 0)
    assert [p.payment_id for p in paid.payments] == [
        catch_up_payment_id(invoice.invoice_id),
        "ch_after",
    ]
    applied = [c.arg.payment_id for c in vendors.called("apply_payment")]
    assert sorted(set(applied)) == sorted([catch_up_payment_id(invoice.invoice_id), "ch_after"])
    assert len(vendors.receivables) == 1


async def test_an_invoice_posted_before_starts_from_the_erps_receivable(
    own_time_skipping_env: WorkflowEnvironment,
) -> None:
    client = own_time_skipping_env.client
    now = await own_time_skipping_env.get_current_time()
    today = now.astimezone(UTC).date()
    invoice = make_invoice(today - timedelta(days=40), date(today.year, today.month, 1), 12)
    invoice = invoice.model_copy(update={"invoice_id": f"in_{uuid.uuid4().hex[:12]}"})
    vendors = vendors_with(invoice)
    start = InvoiceStart(
        invoice=invoice,
        amount_due=invoice.total,
        watermark=now,
        receivable_id="R-LEGACY-1",
        erp_customer_id="C77",
        erp_amount_due=invoice.total,
    )
    assert catch_up(start) == D(0)
    async with running_workers(client, vendors):
        handle = await client.start_workflow(
            InvoiceToRevenueWorkflow.run,
            adopted_input(start, "UTC", InvoicePolicy()),
            id=f"i2r-{invoice.invoice_id}",
            task_queue="orchestration",
        )
        status = await until(
            handle, lambda s: s.stage in (InvoiceStage.AWAITING_PAYMENT, InvoiceStage.OVERDUE)
        )
    assert status.receivable_id == "R-LEGACY-1" and status.amount_due == invoice.total
    assert vendors.called("post_receivable") == []  # the earlier integration's is adopted
    assert status.adopted_at == now
