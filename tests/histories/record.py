"""Record the workflow histories the replay tests replay: ``python -m tests.histories.record``.

One history per path a saga can take (happy path, compensation, parked then resolved,
approval), recorded on the time-skipping test server with the fake vendor systems, written as
JSON beside this file. Re-record them when a workflow change is *meant* to alter the
commands an existing history would produce, and only once no execution of the old code is
running; when running executions must carry on, keep the old histories and guard the change
with ``workflow.patched`` instead (docs/quote-to-cash.md, "Changing the workflow safely").
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from domain.approval import Approver, ApproverRole
from domain.contracts import Activity
from domain.quote import Quote
from domain.saga import (
    ApproveRequest,
    QuoteToCashInput,
    QuoteToCashStatus,
    ResolveAction,
    ResolveRequest,
)
from domain.stages import OrderStage
from sandbox.quotes import quote_payload
from tests.conftest import installed_binary
from tests.workflows.fakes import FakeSystems, rejected, running_workers
from workflows import visibility
from workflows.quote_to_cash import QuoteToCashWorkflow

HERE = Path(__file__).parent
Handle = WorkflowHandle[QuoteToCashWorkflow, QuoteToCashStatus]


def _quote(discount: str | None = None) -> Quote:
    payload = quote_payload(f"Q-{uuid.uuid4().hex[:12]}")
    if discount is not None:
        payload["lines"][0]["discount_percent"] = discount
    return Quote.model_validate(payload)


async def _start(client: Client, quote: Quote) -> Handle:
    return await client.start_workflow(
        QuoteToCashWorkflow.run,
        QuoteToCashInput(quote=quote),
        id=visibility.workflow_id_for_quote(quote.quote_id),
        task_queue="orchestration",
    )


async def _reach(handle: Handle, stage: OrderStage) -> None:
    for _ in range(400):
        if (await handle.query(QuoteToCashWorkflow.status)).stage is stage:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{handle.id} never reached {stage}")


async def happy_path(client: Client, fakes: FakeSystems) -> Handle:
    return await _start(client, _quote())


async def compensation(client: Client, fakes: FakeSystems) -> Handle:
    fakes.fail_with(Activity.BILLING_PROVISION_SUBSCRIPTION, rejected("card_declined"))
    return await _start(client, _quote())


async def parked_then_resolved(client: Client, fakes: FakeSystems) -> Handle:
    fakes.fail_with(Activity.CRM_RECORD_ORDER, rejected("FIELD_CUSTOM_VALIDATION_EXCEPTION"))
    handle = await _start(client, _quote())
    await _reach(handle, OrderStage.NEEDS_ATTENTION)
    await handle.execute_update(
        QuoteToCashWorkflow.resolve,
        ResolveRequest(action=ResolveAction.RETRY, operator="ops.lena", note="contract signed"),
    )
    return handle


async def approval(client: Client, fakes: FakeSystems) -> Handle:
    handle = await _start(client, _quote(discount="25"))
    await _reach(handle, OrderStage.AWAITING_APPROVAL)
    await handle.execute_update(
        QuoteToCashWorkflow.approve,
        ApproveRequest(approver=Approver(name="sam.manager", role=ApproverRole.SALES_MANAGER)),
    )
    return handle


SCENARIOS: dict[str, Callable[[Client, FakeSystems], Awaitable[Handle]]] = {
    "happy_path": happy_path,
    "compensation": compensation,
    "parked_then_resolved": parked_then_resolved,
    "approval": approval,
}


def history_path(scenario: str) -> Path:
    return HERE / f"quote_to_cash_{scenario}.json"


async def record() -> None:
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=installed_binary("temporal-test-server"),
    )
    try:
        for name, scenario in SCENARIOS.items():
            fakes = FakeSystems()
            async with running_workers(env.client, fakes):
                handle = await scenario(env.client, fakes)
                status = await handle.result()
            history = await handle.fetch_history()
            history_path(name).write_text(history.to_json() + "\n")
            print(f"{name}: {status.stage.value}, {len(history.events)} events")
    finally:
        await env.shutdown()


if __name__ == "__main__":
    import os
    import sys

    asyncio.run(record())
    sys.stdout.flush()
    os._exit(0)  # skip finalization: the SDK's native threads can abort it
