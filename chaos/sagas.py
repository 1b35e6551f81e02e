"""Watching the sagas of a run through Temporal: wait until every one is settled (terminal or
parked), then read each one's ``status`` query.

The wait polls visibility (the ``OrderStage`` search attribute, one list call for all sagas);
the final read queries each saga, retrying queries that fail while a worker restarts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from chaos.invariants import SETTLED, SagaView
from domain.saga import QuoteToCashStatus
from workflows import visibility
from workflows.quote_to_cash import QuoteToCashWorkflow

POLL_SECONDS = 2.0
QUERY_ATTEMPTS = 5


async def stages(client: Client) -> dict[str, str]:
    """The ``OrderStage`` of every quote-to-cash saga, by quote id."""
    found: dict[str, str] = {}
    async for execution in client.list_workflows('WorkflowType = "QuoteToCash"'):
        attrs = execution.typed_search_attributes
        quote_id, stage = attrs.get(visibility.QUOTE_ID), attrs.get(visibility.ORDER_STAGE)
        if quote_id is not None and stage is not None:
            found[quote_id] = stage
    return found


async def wait_settled(
    client: Client,
    quote_ids: Iterable[str],
    deadline: float,
    check_alive: Callable[[], None] = lambda: None,
) -> set[str]:
    """Wait until every quote's saga is settled, or the deadline; returns those that are not.
    ``check_alive`` raises when the stack is gone, which ends the wait early."""
    waiting = set(quote_ids)
    while True:
        check_alive()
        try:
            seen = await stages(client)
        except RPCError:
            seen = {}  # the server is restarting: ask again
        waiting = {q for q in waiting if seen.get(q) not in SETTLED}
        if not waiting or time.monotonic() > deadline:
            return waiting
        await asyncio.sleep(POLL_SECONDS)


def view(status: QuoteToCashStatus) -> SagaView:
    return SagaView(
        quote_id=status.quote_id,
        stage=status.stage.value,
        reason=status.reason,
        parked_step=None if status.parked is None else status.parked.step.value,
        erp_order_id=status.erp_order_id,
        subscription_id=status.subscription_id,
        crm_order_id=status.crm_order_id,
    )


async def saga_view(client: Client, quote_id: str) -> SagaView | None:
    """The saga of ``quote_id`` as its ``status`` query answers; None when there is none, and
    stage ``UNREADABLE`` when the query keeps failing."""
    handle = client.get_workflow_handle_for(
        QuoteToCashWorkflow.run, visibility.workflow_id_for_quote(quote_id)
    )
    attempt = 0
    while True:
        attempt += 1
        try:
            return view(await handle.query(QuoteToCashWorkflow.status))
        except RPCError as error:
            if error.status is RPCStatusCode.NOT_FOUND:
                return None
            if attempt == QUERY_ATTEMPTS:
                return SagaView(quote_id, "UNREADABLE", reason=f"status query failed: {error}")
        await asyncio.sleep(attempt)


async def saga_views(client: Client, quote_ids: Iterable[str]) -> dict[str, SagaView | None]:
    limit = asyncio.Semaphore(16)

    async def one(quote_id: str) -> tuple[str, SagaView | None]:
        async with limit:
            return quote_id, await saga_view(client, quote_id)

    return dict(await asyncio.gather(*(one(q) for q in quote_ids)))
