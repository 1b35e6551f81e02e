"""An event subscriber that is down never holds an invoice saga up: the business goes on, a
run continues as new without waiting for it (carrying what is undelivered, ids unchanged),
nothing is lost, and every event arrives once the subscriber is back.

Before: an invoice saga waited for every publication before continuing as new, so while the
subscriber was down its run stayed open, taking payments and period closes into one history
that grows towards Temporal's limit. Time-skipping server."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from temporalio.testing import WorkflowEnvironment

from domain.invoice_contracts import InvoicePolicy, InvoiceStage, PaymentReceived, start_of
from tests.invoice_to_revenue.fakes import first_of_next_month, running_workers
from tests.invoice_to_revenue.test_lifecycle import (
    make_invoice,
    reach,
    start,
    today,
    until,
    vendors_with,
)
from workflows.invoice_to_revenue import InvoiceToRevenueWorkflow

OUTAGE = timedelta(days=30)


async def skip_to(env: WorkflowEnvironment, moment: datetime) -> None:
    """Skip time to ``moment`` a day at a time: each day holds retries of every pending
    delivery, and a month in one skip would outlast the test server's call timeout."""
    while (left := moment - await env.get_current_time()) > timedelta(0):
        await env.sleep(min(left, timedelta(days=1)))


async def test_thirty_days_without_the_subscriber_halt_nothing_and_lose_nothing(
    own_time_skipping_env: WorkflowEnvironment,
):
    """The subscriber answers 503, asking to be called again in 12 hours, for 30 days; a
    payment and a period close happen meanwhile."""
    env = own_time_skipping_env
    day = await today(env)
    invoice = make_invoice(day, day.replace(day=1), 12, amount="12000.00")
    vendors = vendors_with(invoice)
    now = await env.get_current_time()
    # At least 30 days, and past the close of the first period whatever day the session is at.
    close = start_of(first_of_next_month(day), "UTC")
    down_until = max(now + OUTAGE, close + timedelta(days=1))
    vendors.subscriber_down_until = down_until
    policy = InvoicePolicy(grace=timedelta(days=365), wake_spread=timedelta(0))
    async with running_workers(env.client, vendors):
        handle = await start(env.client, invoice, policy)
        await reach(handle, InvoiceStage.AWAITING_PAYMENT)
        half = (invoice.total / 2).quantize(Decimal("0.01"))
        await handle.signal(
            InvoiceToRevenueWorkflow.payment_received,
            PaymentReceived(
                payment_id="pi_half", amount=half, currency=invoice.currency, paid_at=now
            ),
        )
        await skip_to(env, down_until - timedelta(hours=1))
        during = await handle.query(InvoiceToRevenueWorkflow.status)
        assert vendors.published == []  # still down
        await skip_to(env, down_until + timedelta(days=1))
        after = await until(handle, lambda s: len(vendors.published) >= 2 + s.periods_posted)
        history = await handle.fetch_history()
        await handle.terminate("test over")

    # The business went on through the outage: the payment, the period close.
    assert during.amount_paid == half and during.periods_posted >= 1
    types = [e["type"] for e in vendors.published]
    ids = [e["id"] for e in vendors.published]
    assert len(ids) == len(set(ids))  # each event once
    assert types.count("com.revsync.invoice.posted.v1") == 1
    assert types.count("com.revsync.payment.applied.v1") == 1
    assert types.count("com.revsync.revenue.recognized.v1") == after.periods_posted
    assert vendors.delivery_attempts >= 2 * len(ids)  # down, and retried
    # Retrying adds no history: a month of it fits in a few hundred events.
    assert len(history.events) < 300


async def test_a_run_continues_as_new_without_waiting_and_the_next_run_delivers(
    own_time_skipping_env: WorkflowEnvironment,
):
    """The close that ends a run meets the subscriber down: the run continues as new at once,
    and the next run delivers its events (with their ids), once."""
    env = own_time_skipping_env
    day = await today(env)
    service_start = first_of_next_month(day)
    invoice = make_invoice(day, service_start, 12, amount="12000.00")
    vendors = vendors_with(invoice)
    policy = InvoicePolicy(periods_per_run=1, grace=timedelta(days=365), wake_spread=timedelta(0))
    close = start_of(first_of_next_month(service_start), "UTC")
    async with running_workers(env.client, vendors):
        handle = await start(env.client, invoice, policy)
        first_run = (await handle.describe()).run_id
        await reach(handle, InvoiceStage.AWAITING_PAYMENT)
        await until(handle, lambda s: len(vendors.published) == 1)  # invoice.posted
        vendors.subscriber_failures = 3  # down at the close
        await skip_to(env, close)
        after = await until(
            handle, lambda s: s.run >= 2 and len(vendors.published) == 1 + s.periods_posted
        )
        await handle.terminate("test over")

    recognised = [e for e in vendors.published if e["type"].endswith("revenue.recognized.v1")]
    assert len(recognised) == after.periods_posted >= 1
    assert len(vendors.failed_in) == 3  # the subscriber was down at the close
    # The first run's revenue event was not waited for: a later run delivered it.
    assert vendors.delivered_by[1] != first_run
    assert len({e["id"] for e in vendors.published}) == len(vendors.published)
