"""Reconciliation on the whole stack (real dev server, workers, gateway, sandbox over HTTP):
quotes booked normally, a golden customer started by a CRM change, then one drift of each
kind seeded straight into the sandbox (orders, a customer field, an invoice); the report
finds exactly those, the safe ones are repaired in the sandbox, a second run finds only the
unsafe ones. Then the Schedule and the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import ScheduleActionStartWorkflow, ScheduleOverlapPolicy

from domain.customer_master import ChangeEvent, MasterField, SourceVersion
from domain.customer_master import System as MasterSystem
from domain.reconciliation import (
    SCHEDULE_ID,
    DriftKind,
    Outcome,
    ReconciliationReport,
    Remediation,
    ReportStatus,
)
from domain.reconciliation_windows import RUN_WORKFLOW_TYPE
from domain.stages import OrderStage
from revsync.customer_master import customer_status, deliver_change
from revsync.devstack import apply_dev_schedules
from revsync.schedules import run_now
from sandbox.faults import FaultRule, FaultsRequest
from sandbox.stripe import SandboxInvoice
from tests.e2e.stack import Stack, running_stack
from tests.e2e.test_quote_to_cash_e2e import deliver, finished, new_quote
from workflows import visibility

pytestmark = pytest.mark.e2e

REVSYNC = str(Path(sys.executable).parent / "revsync")


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    async with running_stack() as running:  # its own sandbox: reconciliation reads it all
        yield running


async def reconcile_now(stack: Stack) -> tuple[str, ReconciliationReport]:
    """A full reconciliation pass now, of everything written until now: windows end at whole
    seconds, so the second the run starts in is left to the next run."""
    await asyncio.sleep(1.1)
    return await run_now(stack.client, stack.settings, full=True, settle_seconds=0)


async def book(stack: Stack, account_id: str, *faults: FaultRule) -> str:
    payload = await new_quote(stack, account_id)
    if faults:
        stack.sandbox.state.faults.configure(FaultsRequest(faults=list(faults)))
    assert (await deliver(stack, payload)).status_code == 202
    quote_id = str(payload["quote_id"])
    await finished(stack, quote_id)
    return quote_id


async def visible(stack: Stack, stages: dict[str, OrderStage], seconds: float = 30) -> None:
    """Wait until visibility shows every saga in its final stage (it lags a little)."""
    deadline = time.monotonic() + seconds
    while True:
        seen: dict[str, str | None] = {}
        async for execution in stack.client.list_workflows('WorkflowType = "QuoteToCash"'):
            attrs = execution.typed_search_attributes
            seen[str(attrs.get(visibility.QUOTE_ID))] = attrs.get(visibility.ORDER_STAGE)
        if all(seen.get(q) == s.value for q, s in stages.items()):
            return
        assert time.monotonic() < deadline, f"visibility shows {seen}, wanted {stages}"
        await asyncio.sleep(0.3)


def crm_order(stack: Stack, quote_id: str) -> dict[str, Any] | None:
    orders = stack.sandbox.state.salesforce.records["Order"]
    key = f"q2c-{quote_id}:crm-order"
    return next((o for o in orders.values() if o.get("Revsync_Key__c") == key), None)


def erp_order(stack: Stack, quote_id: str) -> dict[str, Any]:
    orders = stack.sandbox.state.netsuite.sales_orders
    key = f"q2c-{quote_id}:erp-order"
    (order,) = [o for o in orders.values() if o.get("externalId") == key]
    return order


def subscription(stack: Stack, quote_id: str) -> dict[str, Any]:
    subs = stack.sandbox.state.stripe.subscriptions.values()
    (sub,) = [s for s in subs if s["metadata"].get("quote_id") == quote_id]
    return sub


def by_kind(report: ReconciliationReport) -> dict[tuple[DriftKind, str], Any]:
    return {(i.kind, i.subject): i for i in report.items}


NORD = "0015e00000NordDE1"


def erp_customer(stack: Stack, account_id: str) -> dict[str, Any]:
    customers = stack.sandbox.state.netsuite.customers.values()
    return next(c for c in customers if c["externalId"] == f"acct-{account_id}")


async def start_golden_customer(stack: Stack, account_id: str) -> str:
    """The account's golden customer, started by a CRM change naming it; its name."""
    name = str(stack.sandbox.state.salesforce.records["Account"][account_id]["Name"])
    event = ChangeEvent(
        source=MasterSystem.CRM,
        event_id=f"reconcile-e2e-{account_id}",
        record_id=account_id,
        version=SourceVersion(modified_at=datetime.now(UTC)),
        changes={MasterField.NAME: name},
    )
    await deliver_change(stack.client, account_id, event)
    for _ in range(300):  # until its propagation lanes have sent the name (bounded)
        status = await customer_status(stack.client, account_id)
        if not status.queued and {r.system for r in status.recent} >= {
            MasterSystem.ERP,
            MasterSystem.BILLING,
        }:
            return name
        await asyncio.sleep(0.1)
    raise AssertionError(f"the golden name of {account_id} never reached ERP and billing")


async def until(check: Any, what: str, tries: int = 300) -> None:
    """Polls ``check`` (bounded by the number of tries)."""
    for _ in range(tries):
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never happened: {what}")


async def test_seeded_drift_is_found_exactly_and_the_safe_ones_are_repaired(stack: Stack):
    missing, duplicated, amount, status, fine = [
        await book(stack, account)
        for account in (
            "0015e00000AcmeUS1",
            "0015e00000NordDE1",
            "0015e00000ThamGB1",
            "0015e00000AcmeUS1",
            "0015e00000NordDE1",
        )
    ]
    # Stripe makes the subscription but the answer is a card decline: the saga compensates
    # the ERP order and, by the subscription's key, the subscription it never heard of.
    compensated = await book(
        stack,
        "0015e00000ThamGB1",
        FaultRule(
            vendor="stripe",
            operation="create_subscription",
            status=402,
            code="card_declined",
            phase="after",
        ),
    )
    assert subscription(stack, compensated)["status"] == "canceled"
    # Seeded drift: the subscription live again (as a saga before the undo by key left it).
    subscription(stack, compensated)["status"] = "active"
    stages = dict.fromkeys([missing, duplicated, amount, status, fine], OrderStage.BOOKED)
    await visible(stack, {**stages, compensated: OrderStage.COMPENSATED})

    # Seed the rest of the drift straight into the systems' state.
    sf = stack.sandbox.state.salesforce
    lost = crm_order(stack, missing)
    assert lost is not None
    # The CRM write-back never landed: no Order (nor its order products), the quote not
    # ordered. Salesforce CPQ generates an order only when the quote becomes Ordered.
    del sf.records["Order"][lost["Id"]]
    for item in [i for i in sf.records["OrderItem"].values() if i["OrderId"] == lost["Id"]]:
        del sf.records["OrderItem"][item["Id"]]
    sf.records["SBQQ__Quote__c"][missing].update(
        {"SBQQ__Ordered__c": False, "SBQQ__Status__c": "Accepted"}
    )
    original = erp_order(stack, duplicated)
    netsuite = stack.sandbox.state.netsuite
    netsuite.sales_orders["9901"] = {**original, "id": "9901", "externalId": None}
    changed = crm_order(stack, amount)
    assert changed is not None
    # The ERP total revsync wrote on the CRM order (its TotalAmount is CPQ's roll-up).
    changed["ERP_Order_Total__c"] = Decimal(str(changed["ERP_Order_Total__c"])) + 100
    netsuite.set_order_status(erp_order(stack, status)["id"], "C")
    # A customer's ERP copy of the name (CRM owns it) edited by hand in NetSuite.
    golden_name = await start_golden_customer(stack, NORD)
    erp_customer(stack, NORD)["companyName"] = "Nordlicht Logistics (typo)"
    # A finalized invoice whose invoice.finalized never reached revsync: no receivable.
    stripe = stack.sandbox.state.stripe
    lost_invoice = stripe.create_sandbox_invoice(
        SandboxInvoice.model_validate(
            {
                "account_id": "0015e00000ThamGB1",
                "currency": "gbp",
                "lines": [{"product": "ONBOARD-STD", "unit_amount": 50000, "tax": 10000}],
            }
        )
    )["id"]
    # The sandbox sends no Stripe webhooks: the first invoice of every subscription
    # quote-to-cash made has no invoice-to-revenue saga and no receivable either.
    unsent = {str(sub["latest_invoice"]) for sub in stripe.subscriptions.values()}
    assert len(unsent) == 6

    _, report = await reconcile_now(stack)
    assert report.status is ReportStatus.DONE, report.error
    assert report.counts == {
        DriftKind.MISSING_IN_CRM: 1,
        DriftKind.DUPLICATED_IN_ERP: 1,
        DriftKind.AMOUNT_MISMATCH: 1,
        DriftKind.STATUS_MISMATCH: 2,
        DriftKind.FIELD_MISMATCH: 1,
        DriftKind.MISSING_IN_ERP: 7,
    }
    items = by_kind(report)
    drifted = items[DriftKind.FIELD_MISMATCH, NORD]
    assert drifted.system.value == "erp" and drifted.fields == [MasterField.NAME]
    assert drifted.remediation is Remediation.REPROPAGATE_CUSTOMER
    assert drifted.outcome is Outcome.REPAIRED, drifted.outcome_detail
    missing_invoices = {i.invoice_id for i in report.items if i.kind is DriftKind.MISSING_IN_ERP}
    assert missing_invoices == unsent | {lost_invoice}
    lost = items[DriftKind.MISSING_IN_ERP, lost_invoice]
    assert lost.remediation is Remediation.REVIEW and lost.workflow_id == f"i2r-{lost_invoice}"
    assert report.customers == 3 and report.invoices == 7
    assert items[DriftKind.MISSING_IN_CRM, missing].remediation is Remediation.REWRITE_CRM
    assert items[DriftKind.MISSING_IN_CRM, missing].outcome is Outcome.REPAIRED
    assert items[DriftKind.STATUS_MISMATCH, compensated].remediation is Remediation.COMPENSATE
    assert items[DriftKind.STATUS_MISMATCH, compensated].outcome is Outcome.REPAIRED
    for key in (
        (DriftKind.DUPLICATED_IN_ERP, duplicated),
        (DriftKind.AMOUNT_MISMATCH, amount),
        (DriftKind.STATUS_MISMATCH, status),
    ):
        assert items[key].remediation is Remediation.REVIEW, items[key]
        assert items[key].outcome is None
        assert items[key].workflow_id == f"q2c-{key[1]}"
    assert report.outcomes == {Outcome.REPAIRED: 3}
    assert report.quotes == 6

    # The safe ones are repaired in the systems themselves.
    rewritten = crm_order(stack, missing)
    assert rewritten is not None and rewritten["Status"] == "Activated"
    assert rewritten["ERP_Order_Id__c"] == erp_order(stack, missing)["id"]
    assert subscription(stack, compensated)["status"] == "canceled"
    # The customer master sent the golden name to the ERP again (its lanes run on).
    await until(
        lambda: erp_customer(stack, NORD)["companyName"] == golden_name,
        "the ERP customer's name is the golden one again",
    )
    recent = (await customer_status(stack.client, NORD)).model_dump_json()
    assert "reconciliation" in recent

    _, again = await reconcile_now(stack)
    assert again.counts == {
        DriftKind.DUPLICATED_IN_ERP: 1,
        DriftKind.AMOUNT_MISMATCH: 1,
        DriftKind.STATUS_MISMATCH: 1,
        DriftKind.MISSING_IN_ERP: 7,
    }
    assert {i.subject for i in again.items} == {duplicated, amount, status} | missing_invoices
    assert {i.remediation for i in again.items} == {Remediation.REVIEW}
    assert again.outcomes == {}


async def revsync(stack: Stack, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVSYNC_")}
    keys = stack.settings.payload_keys
    assert keys is not None
    env |= {
        "REVSYNC_TEMPORAL_ADDRESS": stack.settings.temporal_address,
        "REVSYNC_PAYLOAD_KEYS": keys.get_secret_value(),
        "REVSYNC_RECONCILE_CRON": "0 3 * * *",
        "REVSYNC_RECONCILE_REPORT_DIR": str(stack.settings.reconcile_store_dir),
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


async def test_reconcile_report_json_prints_the_latest_run(stack: Stack):
    workflow_id, report = await reconcile_now(stack)
    deadline = time.monotonic() + 30
    while True:  # visibility lists the run a moment after it completes
        code, out, err = await revsync(stack, "reconcile", "--report", "--json")
        assert code == 0, err
        printed = json.loads(out)
        if printed["workflow_id"] == workflow_id or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert printed["workflow_id"] == workflow_id
    assert ReconciliationReport.model_validate(printed) == report
    code, text, err = await revsync(stack, "reconcile", "--report")
    assert code == 0, err
    assert f"run: {workflow_id}" in text and "status: done" in text
    code, _, err = await revsync(stack, "reconcile", "--now", "--report")
    assert code == 2 and "exactly one" in err


async def test_schedules_apply_twice_makes_one_schedule_that_stays_paused(stack: Stack):
    code, out, err = await revsync(stack, "schedules", "apply")
    assert code == 0, err
    assert out.strip() == f"schedule {SCHEDULE_ID}: created"
    handle = stack.client.get_schedule_handle(SCHEDULE_ID)
    try:
        await handle.pause(note="maintenance")
        code, out, err = await revsync(stack, "schedules", "apply")
        assert code == 0, err
        assert out.strip() == f"schedule {SCHEDULE_ID}: updated"

        ids = [s.id async for s in await stack.client.list_schedules()]
        assert ids.count(SCHEDULE_ID) == 1
        described = await handle.describe()
        schedule = described.schedule
        assert schedule.state.paused
        assert schedule.policy.overlap is ScheduleOverlapPolicy.SKIP
        action = schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        assert action.workflow == RUN_WORKFLOW_TYPE and action.task_queue == "orchestration"
        spec = schedule.spec
        assert spec.cron_expressions == ["0 3 * * *"] or [
            (c.hour[0].start, c.minute[0].start) for c in spec.calendars
        ] == [(3, 0)]
    finally:
        await handle.delete()


async def test_temporal_setup_and_the_dev_stack_apply_the_schedule_idempotently(stack: Stack):
    handle = stack.client.get_schedule_handle(SCHEDULE_ID)
    code, out, err = await revsync(stack, "temporal", "setup", "--wait", "30")
    assert code == 0, err
    assert f"schedule {SCHEDULE_ID}: created" in out
    try:
        await handle.pause(note="maintenance")
        # revsync dev applies it at every start, as the compose setup service does.
        await apply_dev_schedules(stack.settings)
        code, out, err = await revsync(stack, "temporal", "setup", "--wait", "30")
        assert code == 0, err
        assert f"schedule {SCHEDULE_ID}: updated" in out
        ids = [s.id async for s in await stack.client.list_schedules()]
        assert ids.count(SCHEDULE_ID) == 1
        described = await handle.describe()
        assert described.schedule.state.paused  # an operator's pause survives
        action = described.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        assert action.workflow == RUN_WORKFLOW_TYPE
    finally:
        await handle.delete()
    await apply_dev_schedules(stack.settings)  # and makes it again when it is gone
    try:
        assert (await handle.describe()).schedule.action is not None
    finally:
        await handle.delete()
