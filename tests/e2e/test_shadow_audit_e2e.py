"""Shadow mode on the real stack: every saga type runs with every vendor in shadow mode, and
the vendors' emulators receive no write request at all.

The stack is the one ``make dev`` runs (a Temporal dev server, every worker, the gateway over
HTTP, the sandbox over HTTP) with ``REVSYNC_<VENDOR>_MODE=shadow`` for all seven vendors. An
ASGI middleware in front of the sandbox counts every request each emulator receives and the
writes among them (tests/shadow/audit.py defines a write per vendor: POST, PUT, PATCH,
MERGE, DELETE and SOAP posts, less token calls and POSTs that only read). The test's own
seeding (quotes in the CRM, an estate an earlier integration left) carries the audit's
exemption header; everything revsync sends is counted.

Sagas: quote-to-cash (booked on a new customer; booked where an earlier integration already
made the ERP order and the subscription under revsync's keys; rejected), invoice-to-revenue
(posted, revenue recognised for closed months, paid), the customer master (a Stripe e-mail
change propagated), and reconciliation's three repairs (rewrite the CRM order, compensate a
live subscription of a rejected quote, re-propagate a customer field). Each ends as it would
live, never parked because of a synthetic id; the recordings say what each would have written.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters import registry
from adapters.shadow.build import store_of
from adapters.webhooks import cpq, stripe
from domain.customer_master import ChangeEvent, MasterField, SourceVersion
from domain.customer_master import System as MasterSystem
from domain.invoice_contracts import InvoiceStage, invoice_workflow_id
from domain.order import build_sales_order, build_subscription
from domain.quote import Quote
from domain.reconciliation import DriftKind, Outcome, Remediation
from domain.shadow import Effect, SagaShadow, ShadowReport, Verdict, is_synthetic
from domain.stages import OrderStage
from revsync.customer_master import customer_status, deliver_change
from revsync.demo import create_crm_quote
from revsync.schedules import run_now
from revsync.settings import VENDORS, Settings, secret_list
from sandbox.quotes import quote_payload
from tests.e2e.stack import Stack, running_stack
from tests.e2e.test_quote_to_cash_e2e import finished
from tests.invoice_to_revenue.test_e2e import month_start, stripe_event
from tests.shadow.audit import EXEMPT, WriteAudit
from tests.staff import token_of
from workflows.invoice_to_revenue import InvoiceToRevenueWorkflow

pytestmark = pytest.mark.e2e

ACME, NORD, THAM, MAPLE = (
    "0015e00000AcmeUS1",
    "0015e00000NordDE1",
    "0015e00000ThamGB1",
    "0015e00000MapleCA",
)
AUDIT = WriteAudit()


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    store = tmp_path_factory.mktemp("shadow") / "shadow.sqlite3"
    modes = {f"{vendor}_mode": "shadow" for vendor in VENDORS}
    async with running_stack(
        settings_update={**modes, "shadow_store": store, "shadow_compare_after_minutes": 0},
        sandbox_wrap=AUDIT.middleware,
    ) as running:
        yield running


def seeding(settings: Settings) -> httpx.AsyncClient:
    """The test's own client: what it sends is the estate, not revsync, and is not counted."""
    return httpx.AsyncClient(headers={EXEMPT: "1"}, timeout=30)


async def quote(stack: Stack, account_id: str) -> dict[str, Any]:
    async with seeding(stack.settings) as http:
        quote_id = await create_crm_quote(http, stack.settings, account_id)
    return quote_payload(quote_id, account_id=account_id)


async def deliver(stack: Stack, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    secret = secret_list(stack.settings.cpq_webhook_secret)[0]
    answer = await stack.gateway.post(
        "/v1/webhooks/cpq/quote-accepted",
        content=body,
        headers={"content-type": "application/json", cpq.SIGNATURE_HEADER: cpq.sign(secret, body)},
    )
    assert answer.status_code == 202, answer.text


async def stripe_webhook(stack: Stack, path: str, event: dict[str, Any]) -> httpx.Response:
    body = json.dumps(event).encode()
    secret = secret_list(stack.settings.stripe_webhook_secret)[0]
    return await stack.gateway.post(
        path,
        content=body,
        headers={
            "content-type": "application/json",
            stripe.SIGNATURE_HEADER: stripe.sign(secret, body),
        },
    )


async def stripe_api(stack: Stack, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    key = stack.settings.stripe_api_key.get_secret_value()
    async with seeding(stack.settings) as http:
        response = await http.request(
            method,
            f"{stack.settings.stripe_base_url}/v1/{path}",
            headers={"Authorization": f"Bearer {key}"},
            **kwargs,
        )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def until(check: Any, what: str, tries: int = 600) -> Any:
    """Polls ``check`` (bounded by the number of tries)."""
    for _ in range(tries):
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"never happened: {what}")


async def test_every_saga_type_in_shadow_mode_sends_no_write_to_any_vendor(
    stack: Stack,
) -> None:
    settings = stack.settings
    state = stack.sandbox.state
    store = store_of(settings)

    # -- the estate an earlier integration left (seeded live, not counted) -----------------
    booked_before = await quote(stack, ACME)
    rejected = await quote(stack, THAM)
    rejected["lines"][0]["unit_price"] = "1.00"  # the catalog refuses it: REJECTED
    async with seeding(settings) as http:
        erp = registry.ERP_VENDORS["netsuite"](settings, http)
        billing = registry.BILLING_VENDORS["stripe"](settings, http)
        crm = registry.CRM_VENDORS["salesforce"](settings, http)
        acme = await crm.get_account(ACME)
        erp_acme = await erp.upsert_customer(acme, f"acct-{ACME}")
        earlier = Quote.model_validate(booked_before)
        qid = earlier.quote_id
        await erp.create_sales_order(build_sales_order(earlier, f"q2c-{qid}:erp-order"), erp_acme)
        stripe_acme = await billing.upsert_customer(acme, "seed")
        await billing.create_subscription(
            build_subscription(earlier, f"q2c-{qid}:subscription"), stripe_acme
        )
        # A live subscription of the quote revsync will reject: reconciliation compensates it.
        tham = await crm.get_account(THAM)
        stripe_tham = await billing.upsert_customer(tham, "seed")
        await billing.create_subscription(
            build_subscription(
                Quote.model_validate(quote_payload(rejected["quote_id"], account_id=THAM)),
                f"q2c-{rejected['quote_id']}:subscription",
            ),
            stripe_tham,
        )
        # Nordlicht: linked in ERP and Stripe, its ERP name edited by hand (a typo).
        nord = await crm.get_account(NORD)
        erp_nord = await erp.upsert_customer(nord, f"acct-{NORD}")
        stripe_nord = await billing.upsert_customer(nord, "seed")
    state.netsuite.customers[erp_nord]["companyName"] = "Nordlicht Logistics (typo)"
    async with seeding(settings) as http:
        made = await http.post(
            f"{stack.sandbox.url}/_sandbox/stripe/invoices",
            json=last_month_invoice(NORD, month_start(2), month_start(1)),
        )
    assert made.status_code == 200, made.text
    invoice = made.json()
    fresh = await quote(stack, MAPLE)
    AUDIT.reset()

    # -- quote-to-cash --------------------------------------------------------------------
    for payload in (fresh, booked_before, rejected):
        await deliver(stack, payload)
    new_booking = await finished(stack, fresh["quote_id"])
    assert new_booking.stage is OrderStage.BOOKED, new_booking.reason
    assert is_synthetic(new_booking.erp_order_id) and is_synthetic(new_booking.subscription_id)
    assert is_synthetic(new_booking.crm_order_id)
    earlier_booking = await finished(stack, booked_before["quote_id"])
    assert earlier_booking.stage is OrderStage.BOOKED, earlier_booking.reason
    assert not is_synthetic(earlier_booking.erp_order_id)  # found under revsync's key
    assert (await finished(stack, rejected["quote_id"])).stage is OrderStage.REJECTED

    # -- invoice-to-revenue: posted, recognised, paid -------------------------------------
    started = await stripe_webhook(
        stack, "/v1/webhooks/stripe/invoices", stripe_event("invoice.finalized", invoice)
    )
    assert started.status_code == 202, started.text
    handle = stack.client.get_workflow_handle_for(
        InvoiceToRevenueWorkflow.run, invoice_workflow_id(invoice["id"])
    )

    async def awaiting() -> Any:
        status = await handle.query(InvoiceToRevenueWorkflow.status)
        recognised = status.recognised_revenue == status.scheduled_revenue  # a closed month
        return status if status.stage is InvoiceStage.AWAITING_PAYMENT and recognised else None

    posted = await until(awaiting, "the invoice awaits payment, its revenue recognised")
    assert is_synthetic(posted.receivable_id) and posted.erp_customer_id == erp_nord
    paid = await stripe_api(
        stack, "POST", f"invoices/{invoice['id']}/pay", data={"paid_out_of_band": "true"}
    )
    delivered = await stripe_webhook(
        stack, "/v1/webhooks/stripe/invoices", stripe_event("invoice.paid", paid)
    )
    assert delivered.status_code == 200, delivered.text
    closed = await handle.result()
    assert closed.stage is InvoiceStage.CLOSED and closed.amount_due == 0

    # -- the customer master: an e-mail changed in Stripe ---------------------------------
    changed = await stripe_api(
        stack, "POST", f"customers/{stripe_nord}", data={"email": "ap@nordlicht.example"}
    )
    event = {
        "id": f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "data": {"object": changed, "previous_attributes": {"email": nord.email}},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": "customer.updated",
    }
    answer = await stripe_webhook(stack, "/v1/webhooks/stripe/customers", event)
    assert answer.status_code == 200 and answer.json()["status"] == "applied", answer.text

    async def propagated() -> bool:
        status = await customer_status(stack.client, NORD)
        return not status.queued and {r.system for r in status.recent} >= {
            MasterSystem.CRM,
            MasterSystem.ERP,
        }

    await until(propagated, "the e-mail propagated to CRM and ERP")
    assert state.netsuite.customers[erp_nord]["email"] == nord.email  # recorded, not written

    # -- reconciliation and its repairs ---------------------------------------------------
    await deliver_change(
        stack.client,
        NORD,
        ChangeEvent(
            source=MasterSystem.CRM,
            event_id="shadow-audit-name",
            record_id=NORD,
            version=SourceVersion(modified_at=datetime.now(UTC)),
            changes={MasterField.NAME: nord.name},
        ),
    )
    # A full pass with no settling time, as the reconciliation e2e tests run it: what was
    # booked a moment ago is in it.
    _, report = await run_now(stack.client, settings, full=True, settle_seconds=0)
    items = {(i.kind, i.subject): i for i in report.items}
    rewrite = items[DriftKind.MISSING_IN_CRM, booked_before["quote_id"]]
    assert rewrite.remediation is Remediation.REWRITE_CRM
    assert rewrite.outcome is Outcome.REPAIRED, rewrite.outcome_detail
    compensate = next(
        i for i in report.items if i.subject == rejected["quote_id"] and i.repair is not None
    )
    assert compensate.remediation is Remediation.COMPENSATE
    assert compensate.outcome is Outcome.REPAIRED, compensate.outcome_detail
    repropagate = items[DriftKind.FIELD_MISMATCH, NORD]
    assert repropagate.outcome is Outcome.REPAIRED, repropagate.outcome_detail

    async def repropagated() -> bool:
        return any(
            w.why.workflow_type == "CustomerMaster" and "name" in [c.field for c in w.changes]
            for w in store.writes(vendor="netsuite")
        )

    await until(repropagated, "the golden name re-sent to the ERP (recorded)")

    # -- the audit ------------------------------------------------------------------------
    assert sum(AUDIT.writes.values()) == 0, AUDIT.seen
    for vendor in ("salesforce", "stripe", "netsuite"):
        assert AUDIT.requests[vendor] > 0, f"revsync never read {vendor}"
    writes = store.writes()
    kinds = {w.why.workflow_type for w in writes}
    assert kinds >= {"QuoteToCash", "InvoiceToRevenue", "CustomerMaster", "ReconcileWindow"}
    operations = {(w.vendor, w.operation) for w in writes}
    assert operations >= {
        ("netsuite", "upsert_customer"),
        ("netsuite", "create_sales_order"),
        ("stripe", "create_subscription"),
        ("salesforce", "record_order"),
        ("salesforce", "set_quote_status"),
        ("netsuite", "post_receivable"),
        ("netsuite", "post_revenue_journal"),
        ("netsuite", "apply_payment"),
        ("salesforce", "set_receivable_status"),
        ("salesforce", "update_account_fields"),
        ("netsuite", "update_customer_fields"),
        ("stripe", "cancel_subscription"),
    }
    by_saga = {w.why.workflow_id for w in writes if w.effect is Effect.NOOP}
    assert f"q2c-{booked_before['quote_id']}" in by_saga  # found what the estate held
    assert state.netsuite.customers[erp_nord]["companyName"] == "Nordlicht Logistics (typo)"


def last_month_invoice(account_id: str, start: date, end: date) -> dict[str, Any]:
    """A finalized invoice of a closed month's analytics for ``account_id``."""
    return {
        "account_id": account_id,
        "currency": "eur",
        "days_until_due": 30,
        "lines": [
            {
                "product": "PLAT-ANALYTICS",
                "quantity": 1,
                "unit_amount": 50000,
                "recurring": "month",
                "period_start": start.isoformat(),
                "period_end": end.isoformat(),
                "tax": 9500,
            }
        ],
    }


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_of(name)}"}


async def test_the_report_the_comparison_with_the_existing_integration_and_a_replay(
    stack: Stack,
) -> None:
    """Through the ops API: the report (JSON and CSV, per saga and in aggregate), the
    comparison with what an earlier integration wrote for the same quote (the same, or a
    different total), and an operator's replay that leaves vendors still in shadow alone."""
    settings = stack.settings
    state = stack.sandbox.state
    # The earlier integration booked quote L in NetSuite itself: its own external id, the
    # quote named in otherRefNum, another discount (so another total). Quote M it booked as
    # revsync would have.
    legacy = await quote(stack, THAM)
    matching = await quote(stack, THAM)
    async with seeding(settings) as http:
        erp = registry.ERP_VENDORS["netsuite"](settings, http)
        tham = await registry.CRM_VENDORS["salesforce"](settings, http).get_account(THAM)
        customer = await erp.upsert_customer(tham, f"acct-{THAM}")
        cheaper = Quote.model_validate(legacy)
        cheaper = cheaper.model_copy(
            update={
                "lines": [
                    cheaper.lines[0].model_copy(update={"discount_percent": 25}),
                    *cheaper.lines[1:],
                ]
            }
        )
        await erp.create_sales_order(build_sales_order(cheaper, "LEGACY-L-1"), customer)
        same = Quote.model_validate(matching)
        await erp.create_sales_order(build_sales_order(same, "LEGACY-M-1"), customer)
    orders_before = len(state.netsuite.sales_orders)
    for payload in (legacy, matching):
        await deliver(stack, payload)
        assert (await finished(stack, payload["quote_id"])).stage is OrderStage.BOOKED
    saga = f"q2c-{legacy['quote_id']}"

    assert (await stack.gateway.get("/v1/ops/shadow/report")).status_code == 401
    refused = await stack.gateway.post("/v1/ops/shadow/compare", headers=bearer("Fiona"), json={})
    assert refused.status_code == 403
    started = await stack.gateway.post("/v1/ops/shadow/compare", headers=bearer("Oscar"))
    assert started.status_code == 202, started.text
    await stack.client.get_workflow_handle(started.json()["workflow_id"]).result()

    answer = await stack.gateway.get("/v1/ops/shadow/report", headers=bearer("Fiona"))
    assert answer.status_code == 200, answer.text
    found = ShadowReport.model_validate(answer.json())
    assert found.total.writes == sum(t.writes for t in found.by_vendor.values()) > 0
    assert found.sagas[saga].creates >= 1
    comparison = found.comparison
    assert comparison is not None
    items = {(i.object, i.subject): i for i in comparison.items}
    different = items["sales_order", legacy["quote_id"]]
    assert different.verdict is Verdict.DIFFERENT and different.differing == ["total"]
    assert items["sales_order", matching["quote_id"]].verdict is Verdict.SAME
    # Neither quote got a subscription from the earlier integration: only revsync's.
    assert items["subscription", legacy["quote_id"]].verdict is Verdict.REVSYNC_ONLY
    rate = comparison.objects["netsuite.sales_order"]
    assert rate.fields["total"].compared >= 2 and rate.fields["currency"].rate == 1.0

    one = await stack.gateway.get(f"/v1/ops/shadow/sagas/{saga}", headers=bearer("Fiona"))
    writes = SagaShadow.model_validate(one.json()).writes
    order = next(w for w in writes if w.operation == "create_sales_order")
    assert order.effect is Effect.CREATE and order.target.key == f"{saga}:erp-order"
    assert order.why.step == "erp.book_sales_order" and order.why.workflow_type == "QuoteToCash"
    sheet = await stack.gateway.get(
        f"/v1/ops/shadow/sagas/{saga}", params={"format": "csv"}, headers=bearer("Fiona")
    )
    rows = sheet.text.splitlines()
    assert rows[0].startswith("recorded_at,workflow_id") and len(rows) == len(writes) + 1

    # The same through the CLI, as the holder of a staff token.
    code, out, err = await cli(stack, "shadow", "report", "--saga", saga)
    assert code == 0, err
    assert f"create_sales_order sales_order {saga}:erp-order -> create" in out.replace(
        "netsuite ", ""
    )
    code, out, err = await cli(stack, "shadow", "report")
    assert code == 0 and "match" in out and "netsuite.sales_order" in out, err
    code, out, _ = await cli(stack, "shadow", "report", "--csv")
    assert out.splitlines()[0].startswith("recorded_at,workflow_id") and code == 0

    # Replay: only an operator, only what was recorded, and vendors in shadow stay so.
    missing = await stack.gateway.post(
        "/v1/ops/shadow/sagas/q2c-nothing/replay", json={"note": "x"}, headers=bearer("Oscar")
    )
    assert missing.status_code == 404
    replayed = await stack.gateway.post(
        f"/v1/ops/shadow/sagas/{saga}/replay",
        json={"note": "see what a replay would do"},
        headers=bearer("Oscar"),
    )
    assert replayed.status_code == 202, replayed.text
    result = await stack.client.get_workflow_handle(replayed.json()["workflow_id"]).result()
    outcomes = {item["outcome"] for item in result["items"]}
    assert outcomes == {"still_shadow"}
    assert len(state.netsuite.sales_orders) == orders_before


async def cli(stack: Stack, *args: str) -> tuple[int, str, str]:
    """Run ``revsync`` against the stack's gateway as Oscar (operator)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVSYNC_")}
    env |= {
        "REVSYNC_GATEWAY_HOST": stack.settings.gateway_host,
        "REVSYNC_GATEWAY_PORT": str(stack.settings.gateway_port),
        "REVSYNC_OPERATOR_TOKEN": token_of("Oscar"),
    }
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "revsync"),
        *args,
        env=env,
        cwd="/",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()
