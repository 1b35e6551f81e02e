"""The ops API for golden customers: a data steward's and an operator's decisions.

``/v1/ops/customers/{golden_id}/...`` with ``Authorization: Bearer <staff token>``; *who*
decides comes from the token, never from the body:

- ``GET status``: the golden record, open reviews, held duplicates, queued and parked
  propagations, the audit trail (any staff token);
- ``POST merge`` ``{"candidate", "into", "note"}`` and ``POST keep-separate``
  ``{"candidate", "note"}``: settle a held duplicate suspicion (``data_steward``);
- ``POST review`` ``{"field", "system", "action": "accept" | "dismiss", "note"}``: settle a
  non-owner proposal (``data_steward``);
- ``POST resolve`` ``{"action": "retry" | "skip", "note", "key"?}``: a parked propagation
  (``operator``).

200 the decision as recorded; 401/403 token or role; 404 no such golden customer; 409 the
workflow refused (its reason in ``error``); 422 invalid body.
"""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from temporalio.service import RPCError, RPCStatusCode

from domain.customer_master import (
    GoldenId,
    MasterField,
    ReviewAction,
    ReviewDecision,
    StewardAction,
    StewardDecision,
    System,
    master_workflow_id,
)
from domain.master_contracts import ResolvePropagation
from domain.saga import ResolveAction
from revsync.auth import Staff, StaffRole
from revsync.customer_master import customer_status, decide_customer
from revsync.gateway.ops import (
    OPS_PREFIX,
    IdempotencyKey,
    StaffDep,
    domain_request,
    require_role,
)
from revsync.gateway.refusals import problem, staff_refusals
from revsync.operations import DecisionRefused

log = structlog.get_logger("revsync.gateway.customer_ops")

Note = Field(min_length=1, max_length=2000, description="Why: kept in the audit trail")


class MergeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    candidate: GoldenId = Field(description="The held suspected duplicate")
    into: GoldenId = Field(description="The survivor: this golden id or the candidate")
    note: str = Note


class KeepSeparateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    candidate: GoldenId
    note: str = Note


class ReviewBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: MasterField
    system: System = Field(description="The system that proposed the value")
    action: ReviewAction
    note: str = Note


class ResolveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: ResolveAction = Field(description="retry or skip")
    note: str = Note
    key: str | None = Field(
        default=None, description="The parked propagation's key; optional when one is parked"
    )


async def _send(
    request: Request,
    golden_id: str,
    decision: StewardDecision | ReviewDecision | ResolvePropagation,
    staff: Staff,
    idempotency_key: str | None,
) -> JSONResponse:
    try:
        recorded = await decide_customer(
            request.app.state.client, golden_id, decision, idempotency_key=idempotency_key
        )
    except DecisionRefused as refused:
        log.info("decision refused", customer_id=golden_id, actor=staff.name, reason=str(refused))
        return problem(409, str(refused))
    except RPCError as error:
        if error.status is not RPCStatusCode.NOT_FOUND:
            raise
        return problem(
            404, f"no running golden customer {golden_id} ({master_workflow_id(golden_id)})"
        )
    log.info("decision recorded", customer_id=golden_id, actor=staff.name, action=recorded.action)
    return JSONResponse(recorded.model_dump(mode="json"))


def customer_ops_router() -> APIRouter:
    router = APIRouter(
        prefix=f"{OPS_PREFIX}/customers", tags=["ops"], responses=staff_refusals(401)
    )

    @router.get("/{golden_id}/status", responses=staff_refusals(404))
    async def status(golden_id: str, staff: StaffDep, request: Request) -> JSONResponse:
        try:
            found = await customer_status(request.app.state.client, golden_id)
        except RPCError as error:
            if error.status is not RPCStatusCode.NOT_FOUND:
                raise
            return problem(404, f"no golden customer {golden_id}")
        return JSONResponse(found.model_dump(mode="json"))

    @router.post("/{golden_id}/merge", responses=staff_refusals(400, 403, 404, 409))
    async def merge(
        golden_id: str,
        body: MergeBody,
        staff: StaffDep,
        request: Request,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        require_role(staff, StaffRole.DATA_STEWARD)
        decision = domain_request(
            lambda: StewardDecision(
                action=StewardAction.MERGE,
                candidate=body.candidate,
                into=body.into,
                steward=staff.name,
                note=body.note,
            )
        )
        return await _send(request, golden_id, decision, staff, idempotency_key)

    @router.post("/{golden_id}/keep-separate", responses=staff_refusals(400, 403, 404, 409))
    async def keep_separate(
        golden_id: str,
        body: KeepSeparateBody,
        staff: StaffDep,
        request: Request,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        require_role(staff, StaffRole.DATA_STEWARD)
        decision = domain_request(
            lambda: StewardDecision(
                action=StewardAction.KEEP_SEPARATE,
                candidate=body.candidate,
                steward=staff.name,
                note=body.note,
            )
        )
        return await _send(request, golden_id, decision, staff, idempotency_key)

    @router.post("/{golden_id}/review", responses=staff_refusals(400, 403, 404, 409))
    async def review(
        golden_id: str,
        body: ReviewBody,
        staff: StaffDep,
        request: Request,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        require_role(staff, StaffRole.DATA_STEWARD)
        decision = domain_request(
            lambda: ReviewDecision(
                field=body.field,
                system=body.system,
                action=body.action,
                steward=staff.name,
                note=body.note,
            )
        )
        return await _send(request, golden_id, decision, staff, idempotency_key)

    @router.post("/{golden_id}/resolve", responses=staff_refusals(400, 403, 404, 409))
    async def resolve(
        golden_id: str,
        body: ResolveBody,
        staff: StaffDep,
        request: Request,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        require_role(staff, StaffRole.OPERATOR)
        decision = domain_request(
            lambda: ResolvePropagation(
                action=body.action, operator=staff.name, note=body.note, key=body.key
            )
        )
        return await _send(request, golden_id, decision, staff, idempotency_key)

    return router
