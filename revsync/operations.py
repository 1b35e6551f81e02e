"""What finance ops and engineers do with running sagas: find the stuck ones, decide on them.

The CLI (``revsync stuck|resolve|approve|reject``) is a thin shell over these functions; the
same decisions can be sent with ``temporal workflow update execute`` (see
docs/runbook-engineering.md).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import httpx
from pydantic import BaseModel
from temporalio.client import Client, WorkflowUpdateFailedError

from domain.saga import ApproveRequest, OperatorDecision, RejectRequest, ResolveRequest
from domain.stages import OrderStage
from workflows import visibility
from workflows.quote_to_cash import QuoteToCashWorkflow

WORKFLOW_TYPE = "QuoteToCash"


def stuck_query(now: datetime, older_than: timedelta) -> str:
    """The visibility query for sagas that need a person: parked, awaiting approval, past an
    SLA, or in one stage longer than ``older_than``. Also a Web UI saved view."""
    cutoff = (now - older_than).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    waiting = f'"{OrderStage.NEEDS_ATTENTION.value}", "{OrderStage.AWAITING_APPROVAL.value}"'
    return (
        f'WorkflowType = "{WORKFLOW_TYPE}" AND ExecutionStatus = "Running" AND '
        f"({visibility.ORDER_STAGE.name} IN ({waiting}) OR {visibility.SLA_BREACHED.name} = true "
        f'OR {visibility.STAGE_SINCE.name} < "{cutoff}")'
    )


@dataclass(frozen=True)
class StuckOrder:
    quote_id: str
    workflow_id: str
    customer_id: str
    stage: str
    blocked_step: str | None
    amount: str
    waiting_since: datetime | None
    waited: timedelta | None
    sla_breached: bool


async def stuck_orders(
    client: Client, *, older_than: timedelta, now: datetime | None = None
) -> list[StuckOrder]:
    """Every saga :func:`stuck_query` finds, longest wait first."""
    now = now or datetime.now(UTC)
    found: list[StuckOrder] = []
    async for execution in client.list_workflows(stuck_query(now, older_than)):
        attrs = execution.typed_search_attributes
        since = attrs.get(visibility.STAGE_SINCE)
        amount = attrs.get(visibility.ORDER_AMOUNT)
        found.append(
            StuckOrder(
                quote_id=attrs.get(visibility.QUOTE_ID) or execution.id,
                workflow_id=execution.id,
                customer_id=attrs.get(visibility.CUSTOMER_ID) or "",
                stage=attrs.get(visibility.ORDER_STAGE) or "",
                blocked_step=attrs.get(visibility.BLOCKED_STEP),
                # Display only: the exact amount is in the saga's status, never a float.
                amount=f"{Decimal(str(amount or 0)):,} {attrs.get(visibility.CURRENCY) or ''}",
                waiting_since=since,
                waited=None if since is None else now - since,
                sla_breached=bool(attrs.get(visibility.SLA_BREACHED)),
            )
        )
    return sorted(found, key=lambda o: o.waited or timedelta(0), reverse=True)


def decision_update_id(
    workflow_id: str, verb: str, request: BaseModel, idempotency_key: str | None
) -> str | None:
    """The Temporal update id of a decision sent with ``idempotency_key`` (None without one).

    Temporal answers an update whose id it has already run with that first run's result, so
    a decision retried with the same key (a lost HTTP answer, the CLI trying again) gets its
    first answer instead of a refusal. The id also covers the decision itself: the same key
    with another decision is another update, judged on its own."""
    if idempotency_key is None:
        return None
    material = "\n".join((workflow_id, verb, idempotency_key, request.model_dump_json()))
    return f"{verb}-{hashlib.sha256(material.encode()).hexdigest()[:40]}"


def new_idempotency_key() -> str:
    """A fresh key for one decision a person makes (the CLI sends one per command)."""
    return uuid.uuid4().hex


class DecisionRefused(Exception):
    """A saga refused an operator's or steward's decision (its update validator said why)."""


def refusal(error: WorkflowUpdateFailedError) -> str:
    """Why a workflow refused an update: its validator's message."""
    cause = error.cause
    return getattr(cause, "message", None) or str(cause)


async def decide(
    client: Client,
    quote_id: str,
    request: ResolveRequest | ApproveRequest | RejectRequest,
    *,
    idempotency_key: str | None = None,
) -> OperatorDecision:
    """Send an operator decision to the quote's saga and return what it recorded; sent again
    with the same ``idempotency_key``, it returns the first answer (:func:`decision_update_id`)."""
    workflow_id = visibility.workflow_id_for_quote(quote_id)
    handle = client.get_workflow_handle_for(QuoteToCashWorkflow.run, workflow_id)
    try:
        if isinstance(request, ResolveRequest):
            update_id = decision_update_id(workflow_id, "resolve", request, idempotency_key)
            return await handle.execute_update(QuoteToCashWorkflow.resolve, request, id=update_id)
        if isinstance(request, ApproveRequest):
            update_id = decision_update_id(workflow_id, "approve", request, idempotency_key)
            return await handle.execute_update(QuoteToCashWorkflow.approve, request, id=update_id)
        update_id = decision_update_id(workflow_id, "reject", request, idempotency_key)
        return await handle.execute_update(QuoteToCashWorkflow.reject, request, id=update_id)
    except WorkflowUpdateFailedError as error:
        raise DecisionRefused(refusal(error)) from error


class SagaNotFound(Exception):
    """No saga exists for the quote."""


Verb = Literal["approve", "reject", "resolve"]


async def post_decision(
    http: httpx.AsyncClient, path: str, token: str, body: dict[str, Any], idempotency_key: str
) -> httpx.Response:
    """POST one decision to the ops API with its ``Idempotency-Key``; a transport failure or a
    5xx is tried once more with the same key, so a decision whose answer was lost is not
    refused as already made (nor made twice)."""
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": idempotency_key}
    try:
        response = await http.post(path, json=body, headers=headers)
    except httpx.TransportError:
        return await http.post(path, json=body, headers=headers)
    if response.status_code >= 500:
        return await http.post(path, json=body, headers=headers)
    return response


async def decide_via_gateway(
    http: httpx.AsyncClient,
    token: str,
    quote_id: str,
    verb: Verb,
    body: dict[str, Any],
    idempotency_key: str | None = None,
) -> OperatorDecision:
    """Send a decision through the gateway's ops API, as the holder of ``token``, with an
    ``Idempotency-Key`` (a fresh one unless given).

    Raises :class:`DecisionRefused` with the gateway's reason (401, 403, 409, 422) and
    :class:`SagaNotFound` on 404."""
    response = await post_decision(
        http,
        f"/v1/ops/quotes/{quote_id}/{verb}",
        token,
        body,
        idempotency_key or new_idempotency_key(),
    )
    if response.status_code == 200:
        return OperatorDecision.model_validate(response.json())
    try:
        reason = response.json().get("error") or response.json().get("detail")
    except ValueError:
        reason = None
    if response.status_code == 404:
        raise SagaNotFound(str(reason or f"no saga for quote {quote_id}"))
    raise DecisionRefused(f"{response.status_code}: {reason or response.reason_phrase}")


def humanize(delta: timedelta | None) -> str:
    if delta is None:
        return "-"
    seconds = int(delta.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {seconds % 60}s"
