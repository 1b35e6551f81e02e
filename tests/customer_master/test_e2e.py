"""Customer master end to end: signed webhooks → gateway → real Temporal dev server → the
real workers and adapters → the vendor sandbox, and duplicate detection through the dev
server's visibility."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from adapters import registry
from adapters.webhooks import cpq, stripe
from domain.customer_master import MasterField, MasterState, System, master_workflow_id
from domain.master_contracts import CustomerMasterStatus, erp_external_id
from revsync.customer_master import customer_status, deliver_change
from revsync.settings import secret_list
from tests.customer_master.fakes import change, golden_id
from tests.e2e.stack import Stack, running_stack
from tests.staff import token_of

pytestmark = pytest.mark.e2e

ACME = "0015e00000AcmeUS1"


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    async with running_stack() as running:
        yield running


async def link_customer(stack: Stack, account_id: str) -> tuple[str, str]:
    """The account's billing and ERP customers, created as quote-to-cash creates them, on the
    stack's vendors (the CRM's account read through the CRM the stack runs)."""
    settings = stack.settings
    async with httpx.AsyncClient() as http:
        customer = await registry.build_crm(settings, http).get_account(account_id)
        billing = registry.build_billing(settings, http)
        erp = registry.build_erp(settings, http)
        billing_id = await billing.upsert_customer(customer, f"q2c-Q-{account_id}:billing-customer")
        erp_id = await erp.upsert_customer(customer, erp_external_id(account_id))
    return billing_id, erp_id


def customer_updated(customer: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
    """A ``customer.updated`` event as Stripe sends it (API version 2024-06-20)."""
    return {
        "id": f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "data": {"object": customer, "previous_attributes": previous},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": f"req_{uuid.uuid4().hex[:14]}", "idempotency_key": None},
        "type": "customer.updated",
    }


async def until(
    check: Any, what: str, tries: int = 300
) -> None:  # polled; bounded by the number of tries
    for _ in range(tries):
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never happened: {what}")


async def test_a_stripe_email_change_reaches_crm_and_erp(stack: Stack) -> None:
    billing_id, erp_id = await link_customer(stack, ACME)
    # the customer changes the invoice e-mail in the billing portal
    stripe_key = stack.settings.stripe_api_key.get_secret_value()
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{stack.settings.stripe_base_url}/v1/customers/{billing_id}",
            data={"email": "invoices@acme-robotics.example"},
            headers={"Authorization": f"Bearer {stripe_key}"},
        )
    customer = response.json()
    event = customer_updated(customer, {"email": "ap@acme-robotics.example"})
    body = json.dumps(event).encode()
    secret = secret_list(stack.settings.stripe_webhook_secret)[0]
    answer = await stack.gateway.post(
        "/v1/webhooks/stripe/customers",
        content=body,
        headers={
            "content-type": "application/json",
            stripe.SIGNATURE_HEADER: stripe.sign(secret, body),
        },
    )

    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "status": "applied",
        "golden_id": ACME,
        "workflow_id": master_workflow_id(ACME),
        "event_id": event["id"],
        "verdicts": {"email": "applied"},
        "reviews": 0,
        "propagating_to": ["crm", "erp"],
        "state": "ACTIVE",
    }
    state = stack.sandbox.state
    await until(
        lambda: (
            state.salesforce.records["Account"][ACME]["Billing_Email__c"]
            == "invoices@acme-robotics.example"
            and state.netsuite.customers[erp_id]["email"] == "invoices@acme-robotics.example"
        ),
        "the e-mail in CRM and ERP",
    )
    status = await customer_status(stack.client, ACME)
    assert status.record.xref == {"crm": (ACME,), "billing": (billing_id,), "erp": (erp_id,)}
    assert all(r.status == "done" for r in status.recent)

    # Stripe redelivers the same event: a duplicate, nothing written again
    again = await stack.gateway.post(
        "/v1/webhooks/stripe/customers",
        content=body,
        headers={
            "content-type": "application/json",
            stripe.SIGNATURE_HEADER: stripe.sign(secret, body),
        },
    )
    assert again.json()["status"] == "duplicate"
    # a customer revsync never linked to a CRM account cannot be routed
    stray = customer_updated({**customer, "metadata": {}}, {"email": "x@y.example"})
    stray_body = json.dumps(stray).encode()
    refused = await stack.gateway.post(
        "/v1/webhooks/stripe/customers",
        content=stray_body,
        headers={
            "content-type": "application/json",
            stripe.SIGNATURE_HEADER: stripe.sign(secret, stray_body),
        },
    )
    assert refused.status_code == 422
    assert "metadata.revsync_account_id" in refused.json()["error"]


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_of(name)}"}


async def erp_change(
    stack: Stack, account_id: str, internal_id: str, **fields: Any
) -> httpx.Response:
    """The signed ERP customer-changed webhook a NetSuite SuiteScript posts."""
    payload = {
        "eventId": f"ns-{uuid.uuid4()}",
        "recordType": "customer",
        "id": internal_id,
        "externalId": erp_external_id(account_id),
        "lastModifiedDate": "2026-03-02T10:00:00Z",
        "fields": fields,
    }
    body = json.dumps(payload).encode()
    secret = secret_list(stack.settings.erp_webhook_secret)[0]
    return await stack.gateway.post(
        "/v1/webhooks/erp/customer-changed",
        content=body,
        headers={"content-type": "application/json", cpq.SIGNATURE_HEADER: cpq.sign(secret, body)},
    )


async def test_a_shared_tax_id_is_held_for_a_steward_through_visibility(stack: Stack) -> None:
    nord, tham = "0015e00000NordDE1", "0015e00000ThamGB1"
    _, nord_erp = await link_customer(stack, nord)
    _, tham_erp = await link_customer(stack, tham)
    first = await erp_change(
        stack, nord, nord_erp, vatRegNumber="DE811907980", legalName="Nordlicht Logistik GmbH"
    )
    assert first.status_code == 200, first.text
    second = await erp_change(stack, tham, tham_erp, vatRegNumber="DE 811 907 980")
    assert second.status_code == 200, second.text

    async def held() -> CustomerMasterStatus:
        for _ in range(300):
            status = await customer_status(stack.client, tham)
            if status.suspicions:
                return status
            await asyncio.sleep(0.1)
        raise AssertionError("the duplicate was never held")

    status = await held()
    (suspicion,) = status.suspicions
    assert suspicion.candidate == nord and suspicion.strength == "strong"
    assert status.state is MasterState.NEEDS_REVIEW
    query = 'WorkflowType = "CustomerMaster" AND MasterState = "NEEDS_REVIEW"'
    for _ in range(100):  # visibility catches up within moments; bounded by the tries
        found = [execution.id async for execution in stack.client.list_workflows(query)]
        if master_workflow_id(tham) in found:
            break
        await asyncio.sleep(0.1)
    assert master_workflow_id(tham) in found

    # the steward merges through the ops API; an operator may not
    merge = {"candidate": nord, "into": nord, "note": "one legal entity, one VAT id"}
    path = f"/v1/ops/customers/{tham}/merge"
    forbidden = await stack.gateway.post(path, json=merge, headers=bearer("Oscar Ops"))
    assert forbidden.status_code == 403
    decided = await stack.gateway.post(path, json=merge, headers=bearer("Dana Steward"))
    assert decided.status_code == 200, decided.text
    assert decided.json()["actor"] == "Dana Steward <dana@example.com>"
    assert decided.json()["action"] == f"merge into {nord}"
    merged = await stack.client.get_workflow_handle(
        master_workflow_id(tham), result_type=CustomerMasterStatus
    ).result()
    assert merged.state is MasterState.MERGED
    survivor = await stack.gateway.get(f"/v1/ops/customers/{nord}/status", headers=bearer("Rita"))
    assert survivor.status_code == 200
    assert tham in survivor.json()["record"]["absorbed"]
    assert sorted(survivor.json()["record"]["xref"]["erp"]) == sorted([nord_erp, tham_erp])
    # a later change of the absorbed customer reaches the survivor
    later = await erp_change(stack, tham, tham_erp, legalName="Thames Freight Ltd")
    assert later.status_code == 200, later.text
    assert later.json()["golden_id"] == nord


async def test_a_terminated_customer_restarts_from_its_record_on_a_real_server(
    stack: Stack,
) -> None:
    """``master.find_previous_record`` as it runs in production: the dev server's visibility
    lists the customer's runs, the ended run's status query is answered from its history."""
    golden = golden_id()
    await deliver_change(stack.client, golden, change(System.CRM, golden, 1, name="Gamma AG"))
    handle = stack.client.get_workflow_handle(master_workflow_id(golden))
    for _ in range(200):
        if (await customer_status(stack.client, golden)).record.value(MasterField.NAME):
            break
        await asyncio.sleep(0.05)
    ended = (await handle.describe()).run_id
    await handle.terminate("history size exceeds the limit")

    await deliver_change(
        stack.client, golden, change(System.CRM, golden, 2, website="gamma.example")
    )
    status = await customer_status(stack.client, golden)
    assert status.record.value(MasterField.NAME) == "Gamma AG"
    assert status.record.value(MasterField.WEBSITE) == "gamma.example"
    (recovered,) = [d for d in status.decisions if d.action == "recover"]
    assert recovered.subject == ended and "TERMINATED" in recovered.note
