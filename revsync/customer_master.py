"""Delivering customer change events to their golden customer, and the steward's decisions.

:func:`deliver_change` sends one :class:`~domain.customer_master.ChangeEvent` with
update-with-start: it starts ``customer-<golden id>`` if it is not running
(``WorkflowIDConflictPolicy.USE_EXISTING``), so concurrent deliveries for one customer meet
in one workflow. Each delivery is its own update: a redelivered event is answered
``duplicate`` by the golden record, which remembers event ids (``record.seen``).

A golden record merged into another ends (completed, MERGED); its id cannot start again
(``ALLOW_DUPLICATE_FAILED_ONLY``: only a failed or terminated run may be restarted), and a
change for it is sent on to the survivor, following at most :data:`MAX_MERGE_HOPS` merges.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
from pydantic import ValidationError
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowUpdateFailedError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from domain.contracts import TaskQueue
from domain.customer_master import (
    ChangeEvent,
    MasterState,
    ReviewDecision,
    StewardDecision,
    master_workflow_id,
)
from domain.master_contracts import (
    ChangeResult,
    CustomerMasterInput,
    CustomerMasterStatus,
    MasterDecision,
    MasterPolicy,
    RepropagateRequest,
    RepropagateResult,
    ResolvePropagation,
)
from revsync.operations import (
    DecisionRefused,
    decision_update_id,
    new_idempotency_key,
    post_decision,
    refusal,
)
from workflows import visibility
from workflows.customer_master import MERGED_ERROR, CustomerMasterWorkflow

MAX_MERGE_HOPS = 5


def _survivor_named_by(error: WorkflowUpdateFailedError) -> str | None:
    """The survivor's golden id when the update was refused because the record was merged
    into another one (the workflow names it in the refusal's details), else None."""
    cause = error.cause
    if isinstance(cause, ApplicationError) and cause.type == MERGED_ERROR and cause.details:
        survivor = cause.details[0]
        return survivor if isinstance(survivor, str) else None
    return None


class ChangeRefused(Exception):
    """The golden customer refused the change (its validator said why)."""


def start_attributes(golden_id: str) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(visibility.CUSTOMER_ID, golden_id),
            SearchAttributePair(visibility.MASTER_STATE, MasterState.ACTIVE.value),
        ]
    )


def _start(
    golden_id: str, policy: MasterPolicy, indexed: bool
) -> WithStartWorkflowOperation[CustomerMasterWorkflow, CustomerMasterStatus]:
    return WithStartWorkflowOperation(
        CustomerMasterWorkflow.run,
        CustomerMasterInput(golden_id=golden_id, policy=policy),
        id=master_workflow_id(golden_id),
        task_queue=TaskQueue.ORCHESTRATION,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
        search_attributes=start_attributes(golden_id) if indexed else None,
        static_summary=f"Golden customer {golden_id}",
    )


async def merged_into(client: Client, golden_id: str) -> str | None:
    """The survivor a closed golden record was merged into (from its result), or None."""
    handle = client.get_workflow_handle_for(
        CustomerMasterWorkflow.run, master_workflow_id(golden_id)
    )
    status = await handle.result()
    return status.record.merged_into


async def deliver_change(
    client: Client,
    golden_id: str,
    event: ChangeEvent,
    policy: MasterPolicy | None = None,
    *,
    indexed: bool = True,
) -> ChangeResult:
    """Apply ``event`` to ``golden_id`` (or to the record it was merged into), starting the
    entity workflow when needed. Raises :class:`ChangeRefused` when the workflow refuses
    the event. ``indexed=False`` starts it without search attributes, on a namespace where
    revsync's are not registered (the time-skipping test server): nothing is then indexed,
    and duplicate detection finds nothing through visibility."""
    policy = policy or MasterPolicy()
    target = golden_id
    for _ in range(MAX_MERGE_HOPS):
        try:
            # By name: the handler is async, which the typed overloads do not take.
            result: ChangeResult = await client.execute_update_with_start_workflow(
                "apply_change",
                event,
                start_workflow_operation=_start(target, policy, indexed),
                result_type=ChangeResult,
            )
            return result
        except WorkflowUpdateFailedError as error:
            survivor = _survivor_named_by(error)
            if survivor is not None:
                target = survivor
                continue
            raise ChangeRefused(refusal(error)) from error
        except (WorkflowAlreadyStartedError, RPCError) as error:
            if isinstance(error, RPCError) and error.status is not RPCStatusCode.ALREADY_EXISTS:
                raise
            # Closed and not restartable: it was merged away.
            survivor = await merged_into(client, target)
            if survivor is None:
                raise ChangeRefused(f"{master_workflow_id(target)} has ended") from error
            target = survivor
    raise ChangeRefused(f"{golden_id} was merged more than {MAX_MERGE_HOPS} times over")


async def customer_status(client: Client, golden_id: str) -> CustomerMasterStatus:
    handle = client.get_workflow_handle_for(
        CustomerMasterWorkflow.run, master_workflow_id(golden_id)
    )
    status: CustomerMasterStatus = await handle.query(CustomerMasterWorkflow.status)
    return status


async def decide_customer(
    client: Client,
    golden_id: str,
    request: StewardDecision | ReviewDecision | ResolvePropagation,
    *,
    idempotency_key: str | None = None,
) -> MasterDecision:
    """Send a steward's or operator's decision to the golden customer; what it recorded.
    Sent again with the same ``idempotency_key``, it returns the first answer."""
    workflow_id = master_workflow_id(golden_id)
    handle = client.get_workflow_handle_for(CustomerMasterWorkflow.run, workflow_id)
    try:
        if isinstance(request, StewardDecision):
            update_id = decision_update_id(workflow_id, "decide", request, idempotency_key)
            decision: MasterDecision = await handle.execute_update(
                "decide", request, result_type=MasterDecision, id=update_id
            )
            return decision
        if isinstance(request, ReviewDecision):
            update_id = decision_update_id(workflow_id, "review", request, idempotency_key)
            return await handle.execute_update(CustomerMasterWorkflow.review, request, id=update_id)
        update_id = decision_update_id(workflow_id, "resolve", request, idempotency_key)
        return await handle.execute_update(CustomerMasterWorkflow.resolve, request, id=update_id)
    except WorkflowUpdateFailedError as error:
        raise DecisionRefused(refusal(error)) from error


class CustomerNotFound(Exception):
    """No golden customer has that id (no workflow ``customer-<id>`` ever ran, or it ended
    without being merged into another one)."""


async def _survivor_of_closed(client: Client, golden_id: str) -> str:
    """The golden id a customer that no longer takes updates was merged into; raises
    :class:`CustomerNotFound` when it never existed or ended some other way."""
    workflow_id = master_workflow_id(golden_id)
    handle = client.get_workflow_handle(workflow_id)
    try:
        description = await handle.describe()
    except RPCError as error:
        if error.status is not RPCStatusCode.NOT_FOUND:
            raise
        raise CustomerNotFound(f"no golden customer {golden_id} ({workflow_id})") from error
    if description.status is WorkflowExecutionStatus.RUNNING:
        # It closed and a new run started between the two calls: try it again.
        return golden_id
    survivor = None
    if description.status is WorkflowExecutionStatus.COMPLETED:
        survivor = await merged_into(client, golden_id)
    if survivor is None:
        status = description.status.name.lower() if description.status else "closed"
        raise CustomerNotFound(f"golden customer {golden_id} ({workflow_id}) is {status}")
    return survivor


def repropagate_request(
    fields: Sequence[str] | None,
    reason: str,
    *,
    requested_by: str = "revsync",
    request_id: str | None = None,
) -> RepropagateRequest:
    """The ``repropagate`` request, validated; :class:`DecisionRefused` says what is wrong
    (an unknown field, a blank reason)."""
    try:
        return RepropagateRequest.model_validate(
            {
                "fields": None if fields is None else list(fields),
                "reason": reason,
                "requested_by": requested_by,
                "request_id": request_id,
            }
        )
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise DecisionRefused(problems) from None


async def repropagate(
    client: Client,
    golden_id: str,
    fields: Sequence[str] | None,
    reason: str,
    *,
    requested_by: str = "revsync",
    request_id: str | None = None,
) -> RepropagateResult:
    """Ask ``customer-<golden id>`` to send the golden values of ``fields`` (every field when
    None) again to every linked system holding a copy; answers what it scheduled.

    A request is identified by ``request_id`` when given, else by its reason and fields:
    the same request again schedules nothing and answers the first answer with
    ``repeated=True``; a new request sends, under idempotency keys of its own. Never starts
    a workflow: raises :class:`CustomerNotFound` for a golden id that has none running (one
    merged away is followed to its survivor), :class:`DecisionRefused` for an invalid
    request (unknown field, blank reason) or one the workflow refused."""
    request = repropagate_request(fields, reason, requested_by=requested_by, request_id=request_id)
    target = golden_id
    for _ in range(MAX_MERGE_HOPS):
        handle = client.get_workflow_handle(master_workflow_id(target))
        try:
            result: RepropagateResult = await handle.execute_update(
                "repropagate", request, result_type=RepropagateResult
            )
            return result
        except WorkflowUpdateFailedError as error:
            survivor = _survivor_named_by(error)
            if survivor is not None:
                target = survivor
                continue
            raise DecisionRefused(refusal(error)) from error
        except RPCError as error:
            if error.status is not RPCStatusCode.NOT_FOUND:
                raise
            target = await _survivor_of_closed(client, target)
    raise DecisionRefused(f"{golden_id} was merged more than {MAX_MERGE_HOPS} times over")


async def decide_customer_via_gateway(
    http: httpx.AsyncClient,
    token: str,
    golden_id: str,
    verb: str,
    body: dict[str, Any],
    idempotency_key: str | None = None,
) -> MasterDecision:
    """Send a decision through the gateway's ops API as the holder of ``token``
    (``verb``: merge, keep-separate, review or resolve). Raises :class:`DecisionRefused`
    with the gateway's reason, :class:`CustomerNotFound` on 404."""
    response = await post_decision(
        http,
        f"/v1/ops/customers/{golden_id}/{verb}",
        token,
        body,
        idempotency_key or new_idempotency_key(),
    )
    if response.status_code == 200:
        return MasterDecision.model_validate(response.json())
    try:
        reason = response.json().get("error") or response.json().get("detail")
    except ValueError:
        reason = None
    if response.status_code == 404:
        raise CustomerNotFound(str(reason or f"no golden customer {golden_id}"))
    raise DecisionRefused(f"{response.status_code}: {reason or response.reason_phrase}")
