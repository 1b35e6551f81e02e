"""The ops API of adoption (docs/adoption.md), ``Authorization: Bearer <staff token>``:

- ``POST /v1/ops/adoptions`` ``{"kind": "customers"|"invoices", "window"?}``: start one
  (``operator``); 202 with its workflow id (the running one when it runs already);
- ``GET /v1/ops/adoptions/{workflow_id}?bucket=&approved=&offset=&limit=``: its ledger's
  counts and one page of its entries, each with its bucket, links, reasons, approval and
  outcome, and for invoices the tie-out (any staff token); 404 none;
- ``POST /v1/ops/adoptions/{workflow_id}/approve`` ``{"entries": [...]}`` or
  ``{"bucket": "matched_by_key"}``, with ``"note"`` (``operator``): 200 which entries were
  accepted and why the others were refused; 409 the ledger is not ready or closed;
- ``POST /v1/ops/adoptions/{workflow_id}/close`` (``operator``).

Who approves comes from the token, never from the body.
"""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from temporalio.service import RPCError, RPCStatusCode

from domain.adoption import (
    AdoptionInput,
    ApprovalAnswer,
    ApproveEntries,
    Bucket,
    Kind,
    LedgerPage,
    LedgerQuery,
)
from revsync.adoption_ops import approve, close, ledger, start_adoption
from revsync.auth import StaffRole
from revsync.gateway.ops import OPS_PREFIX, StaffDep, require_role
from revsync.gateway.refusals import problem, staff_refusals
from revsync.operations import DecisionRefused

log = structlog.get_logger("revsync.gateway.adoption_ops")


class StartBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Kind
    window: str = Field(default="all", pattern=r"^[A-Za-z0-9_.-]{1,40}$")


class ApproveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entries: list[str] = Field(default_factory=list, max_length=10000)
    bucket: Bucket | None = None
    note: str = Field(min_length=1, max_length=2000, description="Why: kept on each entry")


class StartedBody(BaseModel):
    workflow_id: str


def adoption_router() -> APIRouter:
    router = APIRouter(
        prefix=f"{OPS_PREFIX}/adoptions", tags=["adoption"], responses=staff_refusals(401)
    )

    @router.post(
        "", status_code=202, response_model=StartedBody, responses=staff_refusals(400, 403)
    )
    async def start(body: StartBody, staff: StaffDep, request: Request) -> JSONResponse:
        require_role(staff, StaffRole.OPERATOR)
        workflow_id = await start_adoption(
            request.app.state.client,
            AdoptionInput(kind=body.kind, window=body.window, requested_by=staff.name),
        )
        log.info("adoption started", workflow_id=workflow_id, actor=staff.name)
        return JSONResponse({"workflow_id": workflow_id}, status_code=202)

    @router.get("/{workflow_id}", response_model=LedgerPage, responses=staff_refusals(404))
    async def read(
        workflow_id: str,
        staff: StaffDep,
        request: Request,
        bucket: Bucket | None = None,
        approved: bool = False,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=0, le=1000)] = 200,
    ) -> JSONResponse:
        query = LedgerQuery(bucket=bucket, approved_only=approved, offset=offset, limit=limit)
        try:
            found = await ledger(request.app.state.client, workflow_id, query)
        except RPCError as error:
            if error.status is not RPCStatusCode.NOT_FOUND:
                raise
            return problem(404, f"no adoption {workflow_id}")
        return JSONResponse(found.model_dump(mode="json"))

    @router.post(
        "/{workflow_id}/approve",
        response_model=ApprovalAnswer,
        responses=staff_refusals(400, 403, 404, 409),
    )
    async def approve_entries(
        workflow_id: str, body: ApproveBody, staff: StaffDep, request: Request
    ) -> JSONResponse:
        require_role(staff, StaffRole.OPERATOR)
        decision = ApproveEntries(
            entries=body.entries, bucket=body.bucket, by=staff.name, note=body.note
        )
        try:
            answer = await approve(request.app.state.client, workflow_id, decision)
        except DecisionRefused as refused:
            return problem(409, str(refused))
        except RPCError as error:
            if error.status is not RPCStatusCode.NOT_FOUND:
                raise
            return problem(404, f"no running adoption {workflow_id}")
        log.info(
            "adoption approved",
            workflow_id=workflow_id,
            actor=staff.name,
            accepted=len(answer.accepted),
            refused=len(answer.refused),
        )
        return JSONResponse(answer.model_dump(mode="json"))

    @router.post("/{workflow_id}/close", responses=staff_refusals(403, 404, 409))
    async def close_adoption(workflow_id: str, staff: StaffDep, request: Request) -> JSONResponse:
        require_role(staff, StaffRole.OPERATOR)
        try:
            said = await close(request.app.state.client, workflow_id, staff.name)
        except DecisionRefused as refused:
            return problem(409, str(refused))
        except RPCError as error:
            if error.status is not RPCStatusCode.NOT_FOUND:
                raise
            return problem(404, f"no running adoption {workflow_id}")
        return JSONResponse({"status": said})

    return router
