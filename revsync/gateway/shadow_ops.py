"""The ops API of shadow mode (docs/shadow-mode.md), ``Authorization: Bearer <staff token>``:

- ``GET /v1/ops/shadow/report``: every recorded write counted per vendor, operation and saga
  (creates, updates, no-ops, refusals), with the latest comparison with the integration
  already in place; ``?format=csv`` lists every write instead (any staff token);
- ``GET /v1/ops/shadow/sagas/{workflow_id}``: one saga's recorded writes, in order, with
  their target, field-level difference, key and refusals; ``?format=csv`` (any staff token);
- ``POST /v1/ops/shadow/sagas/{workflow_id}/replay`` ``{"note"}``: make a finished saga's
  recorded writes live, in order, under their recorded keys (``operator``); 202 with the
  replay's workflow id, 404 nothing recorded, 409 the saga still runs;
- ``POST /v1/ops/shadow/compare``: compare what revsync would have written with what the
  existing integration wrote (``operator``); 202 with the comparison's workflow id.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal
from urllib.parse import quote

import structlog
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from adapters.shadow.build import store_of
from adapters.shadow.store import off_loop
from domain.shadow import SagaShadow, ShadowReport
from revsync.auth import StaffRole
from revsync.gateway.ops import OPS_PREFIX, StaffDep, require_role
from revsync.gateway.refusals import problem, staff_refusals
from revsync.settings import Settings
from revsync.shadow_ops import (
    ReplayRefused,
    aggregate,
    for_saga,
    start_comparison,
    start_replay,
    to_csv,
)

log = structlog.get_logger("revsync.gateway.shadow_ops")

# ?format=csv answers text/csv instead of the JSON model.
CSV_TOO: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}}
}
Format = Annotated[Literal["json", "csv"], Query(description="json (default) or csv")]


class ReplayBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field(min_length=1, max_length=2000, description="Why: kept with the replay")


class Started(BaseModel):
    workflow_id: str


_UNSAFE_IN_FILENAME = re.compile(r"[^A-Za-z0-9._-]")


def attachment(name: str) -> str:
    """A ``Content-Disposition`` naming the file ``name``, whatever it holds: a workflow id
    comes from the URL, and a quote, a line break or a character outside Latin-1 in a header
    would break the answer (a 500, a reset connection). The plain ``filename`` keeps only
    ``[A-Za-z0-9._-]``; ``filename*`` carries the exact name, percent-encoded UTF-8 (RFC 6266,
    RFC 8187)."""
    plain = _UNSAFE_IN_FILENAME.sub("_", name)
    exact = quote(name, safe="")
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{exact}"


def _csv(text: str, name: str) -> PlainTextResponse:
    return PlainTextResponse(
        text,
        media_type="text/csv",
        headers={"Content-Disposition": attachment(f"{name}.csv")},
    )


def shadow_router(settings: Settings) -> APIRouter:
    router = APIRouter(
        prefix=f"{OPS_PREFIX}/shadow", tags=["shadow"], responses=staff_refusals(401)
    )

    @router.get("/report", response_model=ShadowReport, responses=CSV_TOO)
    async def shadow_report(staff: StaffDep, request: Request, format: Format = "json") -> Response:
        store = store_of(settings)
        if format == "csv":
            return _csv(to_csv(await off_loop(store.writes)), "shadow-writes")
        found = await aggregate(store, request.app.state.client)
        return JSONResponse(found.model_dump(mode="json"))

    @router.get("/sagas/{workflow_id}", response_model=SagaShadow, responses=CSV_TOO)
    async def saga_report(workflow_id: str, staff: StaffDep, format: Format = "json") -> Response:
        found = await for_saga(store_of(settings), workflow_id)
        if format == "csv":
            return _csv(to_csv(found.writes), f"shadow-{workflow_id}")
        return JSONResponse(found.model_dump(mode="json"))

    @router.post(
        "/sagas/{workflow_id}/replay",
        status_code=202,
        response_model=Started,
        responses=staff_refusals(400, 403, 404, 409),
    )
    async def replay(
        workflow_id: str, body: ReplayBody, staff: StaffDep, request: Request
    ) -> JSONResponse:
        require_role(staff, StaffRole.OPERATOR)
        store = store_of(settings)
        try:
            replay_id = await start_replay(
                request.app.state.client, store, workflow_id, staff.name, body.note
            )
        except ReplayRefused as refused:
            writes = await off_loop(lambda: store.writes(workflow_id=workflow_id))
            return problem(409 if writes else 404, str(refused))
        log.info("shadow replay started", saga=workflow_id, actor=staff.name, replay=replay_id)
        return JSONResponse({"workflow_id": replay_id}, status_code=202)

    @router.post("/compare", status_code=202, response_model=Started, responses=staff_refusals(403))
    async def compare(staff: StaffDep, request: Request) -> JSONResponse:
        require_role(staff, StaffRole.OPERATOR)
        after = timedelta(minutes=settings.shadow_compare_after_minutes)
        workflow_id = await start_comparison(request.app.state.client, after)
        log.info("shadow comparison started", actor=staff.name, workflow_id=workflow_id)
        return JSONResponse({"workflow_id": workflow_id}, status_code=202)

    return router
