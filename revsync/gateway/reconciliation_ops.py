"""The ops API for reconciliation reports, read from the report store (any staff token).

- ``GET /v1/ops/reconciliation/runs?limit=20``: the newest runs, newest first (id, status,
  mode, start and finish, drift, rows);
- ``GET /v1/ops/reconciliation/runs/{run_id}``: a run's report (counts, the first items of
  each kind, what was not compared and why); ``latest`` names the newest run;
- ``GET /v1/ops/reconciliation/runs/{run_id}/rows?format=csv|jsonl``: every row of the run,
  streamed as a download (CSV by default; JSON lines with ``format=jsonl``).

401 no or unknown token; 404 no such run. A running run's report is the one saved after its
last compared window.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from adapters.reports import LocalReportStore, StoredRun, csv_lines
from domain.reconciliation import DriftItem
from revsync.gateway.ops import OPS_PREFIX, StaffDep
from revsync.gateway.refusals import problem, staff_refusals


def _store(request: Request) -> LocalReportStore:
    store: LocalReportStore = request.app.state.reports
    return store


async def _run_id(store: LocalReportStore, run_id: str) -> str | None:
    if run_id != "latest":
        return run_id
    runs = await store.runs(limit=1)
    return runs[0].run_id if runs else None


def _jsonl(items: Iterator[DriftItem]) -> Iterator[str]:
    for item in items:
        yield json.dumps(item.model_dump(mode="json", exclude={"repair"})) + "\n"


def reconciliation_router() -> APIRouter:
    router = APIRouter(
        prefix=f"{OPS_PREFIX}/reconciliation", tags=["ops"], responses=staff_refusals(401)
    )

    @router.get("/runs")
    async def runs(
        staff: StaffDep,
        request: Request,
        limit: Annotated[int, Query(ge=1, le=500)] = 20,
    ) -> list[StoredRun]:
        return await _store(request).runs(limit=limit)

    @router.get("/runs/{run_id}", responses=staff_refusals(404))
    async def report(run_id: str, staff: StaffDep, request: Request) -> JSONResponse:
        store = _store(request)
        found_id = await _run_id(store, run_id)
        found = None if found_id is None else await store.report(found_id)
        if found is None:
            return problem(404, f"no reconciliation report {run_id}")
        return JSONResponse({"run_id": found_id, **found.model_dump(mode="json")})

    @router.get(
        "/runs/{run_id}/rows",
        response_model=None,
        responses={
            200: {
                "description": "The report's rows: CSV (the default) or JSON lines",
                "content": {
                    "text/csv": {"schema": {"type": "string"}},
                    "application/x-ndjson": {"schema": {"type": "string"}},
                },
            },
            **staff_refusals(404),
        },
    )
    async def rows(
        run_id: str,
        staff: StaffDep,
        request: Request,
        format: Annotated[Literal["csv", "jsonl"], Query()] = "csv",
    ) -> StreamingResponse | JSONResponse:
        store = _store(request)
        found_id = await _run_id(store, run_id)
        if found_id is None or await store.report(found_id) is None:
            return problem(404, f"no reconciliation report {run_id}")
        name = found_id.replace('"', "")
        if format == "jsonl":
            return StreamingResponse(
                _jsonl(store.rows(found_id)),
                media_type="application/x-ndjson",
                headers={"Content-Disposition": f'attachment; filename="{name}.jsonl"'},
            )
        return StreamingResponse(
            csv_lines(store.rows(found_id)),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )

    return router


__all__ = ["reconciliation_router"]
