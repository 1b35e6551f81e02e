"""A finished saga's recorded writes are made live only when an operator asks, in recorded
order, under their recorded keys, once: the ShadowReplay workflow on a Temporal test server,
the saga's own activities recording in shadow mode first, then the vendors switched live."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from activities.billing import BillingActivities
from activities.crm import CrmActivities
from activities.erp import ErpActivities
from activities.shadow import BillingShadowActivities, CrmShadowActivities, ErpShadowActivities
from adapters import registry
from adapters.shadow.build import store_of
from domain.contracts import BookSalesOrder, ProvisionSubscription, RecordOrderInCrm
from domain.order import build_sales_order, build_subscription
from domain.shadow import ReplayInput, ReplayItem, ReplayOutcome, is_synthetic
from revsync.settings import Settings
from sandbox.app import SandboxState
from tests.ports.contract import accepted_quote, seeded_customer
from tests.ports.emulators import BILLING_EMULATORS, CRM_EMULATORS, ERP_EMULATORS
from workflows.shadow import ShadowReplayWorkflow

SHADOW = {"salesforce_mode": "shadow", "stripe_mode": "shadow", "netsuite_mode": "shadow"}


def in_saga(workflow_id: str, step: str) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info, workflow_id=workflow_id, workflow_type="QuoteToCash", activity_type=step
    )
    return env


async def run(env: ActivityEnvironment, call: Callable[..., Any], arg: Any) -> Any:
    return await env.run(call, arg)


async def test_a_finished_sagas_writes_are_made_live_on_request_once_in_order(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    http: httpx.AsyncClient,
    state: SandboxState,
    tmp_path: Path,
) -> None:
    shadow = settings.model_copy(update={**SHADOW, "shadow_store": tmp_path / "s.sqlite3"})
    crm = CRM_EMULATORS["salesforce"]
    quote_id = await crm.new_quote(http, shadow, crm.account_id)
    quote = accepted_quote(quote_id)
    saga = f"q2c-{quote_id}"
    customer = seeded_customer()

    # The saga runs in shadow mode: its activities record, nothing is written.
    erp = ErpActivities(registry.build_erp(shadow, http))
    booked = await run(
        in_saga(saga, "erp.book_sales_order"),
        erp.book_sales_order,
        BookSalesOrder(
            customer=customer,
            customer_key="acct-SHADOWONLY1",
            order=build_sales_order(quote, f"{saga}:erp-order"),
        ),
    )
    billing = BillingActivities(registry.build_billing(shadow, http))
    provisioned = await run(
        in_saga(saga, "billing.provision_subscription"),
        billing.provision_subscription,
        ProvisionSubscription(
            customer=customer.model_copy(update={"account_id": "0015e00000SHADOW9"}),
            customer_key=f"{saga}:billing-customer",
            subscription=build_subscription(quote, f"{saga}:subscription"),
        ),
    )
    record = await run(
        in_saga(saga, "crm.record_order"),
        CrmActivities(registry.build_crm(shadow, http)).record_order,
        RecordOrderInCrm(
            quote_id=quote_id,
            account_id=crm.account_id,
            order_key=f"{saga}:crm-order",
            sales_order=booked.order,
            subscription=provisioned.subscription,
        ),
    )
    assert is_synthetic(booked.order.order_id) and is_synthetic(record.crm_order_id)
    assert ERP_EMULATORS["netsuite"].records(state) == 0
    assert BILLING_EMULATORS["stripe"].records(state) == 0
    assert crm.records(state) == 0
    store = store_of(shadow)
    writes = store.writes(workflow_id=saga)
    assert [w.operation for w in writes] == [
        "upsert_customer",
        "create_sales_order",
        "upsert_customer",
        "create_subscription",
        "record_order",
    ]
    assert {w.why.step for w in writes} == {
        "erp.book_sales_order",
        "billing.provision_subscription",
        "crm.record_order",
    }

    # The vendors go live. The saga is finished: nothing of it is written until asked.
    live = shadow.model_copy(update=dict.fromkeys(SHADOW, "live"))
    workers = [
        Worker(
            time_skipping_env.client,
            task_queue="crm",
            activities=[CrmShadowActivities(registry.build_crm(live, http)).materialize],
        ),
        Worker(
            time_skipping_env.client,
            task_queue="erp",
            activities=[ErpShadowActivities(registry.build_erp(live, http)).materialize],
        ),
        Worker(
            time_skipping_env.client,
            task_queue="billing",
            activities=[BillingShadowActivities(registry.build_billing(live, http)).materialize],
        ),
    ]
    queue = f"orchestration-{uuid.uuid4()}"
    request = ReplayInput(
        saga_workflow_id=saga,
        writes=[
            ReplayItem(write_id=w.write_id, port=w.port, operation=w.operation) for w in writes
        ],
        requested_by="Olga Operator",
        note="cut-over: replay the last order booked in shadow",
    )
    async with (
        workers[0],
        workers[1],
        workers[2],
        Worker(time_skipping_env.client, task_queue=queue, workflows=[ShadowReplayWorkflow]),
    ):
        first = await time_skipping_env.client.execute_workflow(
            ShadowReplayWorkflow.run, request, id=f"shadow-replay-{uuid.uuid4()}", task_queue=queue
        )
        again = await time_skipping_env.client.execute_workflow(
            ShadowReplayWorkflow.run, request, id=f"shadow-replay-{uuid.uuid4()}", task_queue=queue
        )

    assert [i.outcome for i in first.items] == [ReplayOutcome.MADE] * 5
    assert [i.outcome for i in again.items] == [ReplayOutcome.ALREADY] * 5
    assert ERP_EMULATORS["netsuite"].records(state) == 1
    assert BILLING_EMULATORS["stripe"].records(state) == 1
    assert crm.records(state) == 1
    made = {w.operation: w.materialized_id for w in store.writes(workflow_id=saga)}
    assert not any(is_synthetic(v) for v in made.values())
    (order,) = state.salesforce.snapshot()["orders"]
    # The CRM write-back carries the vendors' ids, never a synthetic one.
    assert order["ERP_Order_Id__c"] == made["create_sales_order"]
    assert order["Billing_Subscription_Id__c"] == made["create_subscription"]


async def test_a_replay_leaves_the_writes_of_a_vendor_still_in_shadow(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    http: httpx.AsyncClient,
    state: SandboxState,
    tmp_path: Path,
) -> None:
    shadow = settings.model_copy(update={**SHADOW, "shadow_store": tmp_path / "s.sqlite3"})
    saga = "q2c-0Q0REPLAY2"
    erp = ErpActivities(registry.build_erp(shadow, http))
    await run(
        in_saga(saga, "erp.book_sales_order"),
        erp.book_sales_order,
        BookSalesOrder(
            customer=seeded_customer(),
            customer_key="acct-SHADOWONLY2",
            order=build_sales_order(accepted_quote("0Q0REPLAY2"), f"{saga}:erp-order"),
        ),
    )
    writes = store_of(shadow).writes(workflow_id=saga)
    queue = f"orchestration-{uuid.uuid4()}"
    still = ErpShadowActivities(registry.build_erp(shadow, http))
    async with (
        Worker(time_skipping_env.client, task_queue="erp", activities=[still.materialize]),
        Worker(time_skipping_env.client, task_queue=queue, workflows=[ShadowReplayWorkflow]),
    ):
        result = await time_skipping_env.client.execute_workflow(
            ShadowReplayWorkflow.run,
            ReplayInput(
                saga_workflow_id=saga,
                writes=[
                    ReplayItem(write_id=w.write_id, port=w.port, operation=w.operation)
                    for w in writes
                ],
                requested_by="Olga Operator",
                note="too early",
            ),
            id=f"shadow-replay-{uuid.uuid4()}",
            task_queue=queue,
        )
    assert {i.outcome for i in result.items} == {ReplayOutcome.STILL_SHADOW}
    assert ERP_EMULATORS["netsuite"].records(state) == 0
