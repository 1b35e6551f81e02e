"""What operators do with adoption (docs/adoption.md): start one (per object kind and
window), read its ledger, approve entries or a bucket, close it. The gateway's ops API
(``/v1/ops/adoptions/...``) and ``revsync adopt ...`` (through the gateway) are thin shells
over these functions."""

from __future__ import annotations

from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy

from domain.adoption import (
    AdoptionInput,
    ApprovalAnswer,
    ApproveEntries,
    LedgerPage,
    LedgerQuery,
    adoption_workflow_id,
)
from domain.contracts import TaskQueue
from revsync.operations import DecisionRefused, refusal
from workflows.adoption import AdoptionWorkflow


async def start_adoption(client: Client, request: AdoptionInput) -> str:
    """Start the adoption of ``request.kind`` in ``request.window``, or find the running
    one (the same id: one at a time per kind and window); its workflow id. A closed one
    can be run again: a second run reads everything again (and finds it adopted)."""
    workflow_id = adoption_workflow_id(request.kind, request.window)
    await client.start_workflow(
        AdoptionWorkflow.run,
        request,
        id=workflow_id,
        task_queue=TaskQueue.ORCHESTRATION,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary=f"Adoption of {request.kind.value} ({request.window})",
    )
    return workflow_id


async def ledger(client: Client, workflow_id: str, query: LedgerQuery) -> LedgerPage:
    handle = client.get_workflow_handle_for(AdoptionWorkflow.run, workflow_id)
    return await handle.query(AdoptionWorkflow.ledger, query)


async def approve(client: Client, workflow_id: str, request: ApproveEntries) -> ApprovalAnswer:
    handle = client.get_workflow_handle_for(AdoptionWorkflow.run, workflow_id)
    try:
        return await handle.execute_update(AdoptionWorkflow.approve, request)
    except WorkflowUpdateFailedError as error:
        raise DecisionRefused(refusal(error)) from error


async def close(client: Client, workflow_id: str, by: str) -> str:
    handle = client.get_workflow_handle_for(AdoptionWorkflow.run, workflow_id)
    try:
        return await handle.execute_update(AdoptionWorkflow.close, by)
    except WorkflowUpdateFailedError as error:
        raise DecisionRefused(refusal(error)) from error
