"""The gateway: HTTP intake for vendor webhooks.

``POST /webhooks/cpq/quote-accepted`` checks the signature, validates the quote against the
canonical model and starts ``QuoteToCashWorkflow`` (id ``q2c-<quote id>``) at most once:

- 202 ``{"status": "started", ...}``    a new saga was started
- 200 ``{"status": "duplicate", ...}``  a saga for this quote exists already; nothing started
- 401 bad or missing signature; 413 body too large; 400 not JSON; 422 invalid quote
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from adapters.webhooks import cpq
from domain.contracts import TaskQueue
from domain.quote import Quote
from domain.saga import QuoteToCashInput, SagaPolicy
from revsync.settings import Settings, get_settings
from revsync.temporal import connect
from workflows import visibility
from workflows.quote_to_cash import QuoteToCashWorkflow

MAX_BODY_BYTES = 1024 * 1024

log = structlog.get_logger("revsync.gateway")


def _problem(status: int, reason: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": reason, **extra}, status_code=status)


def field_errors(error: ValidationError) -> list[dict[str, str]]:
    """Pydantic errors as ``{"field": "lines.0.sku", "message": ...}``, without echoing input."""
    return [
        {"field": ".".join(str(p) for p in item["loc"]) or "(body)", "message": item["msg"]}
        for item in error.errors(include_url=False, include_input=False)
    ]


def create_app(settings: Settings | None = None, client: Client | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.client = client or await connect(settings)
        log.info("gateway ready", temporal=settings.temporal_address)
        yield

    app = FastAPI(title="revsync gateway", version="1", lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/webhooks/cpq/quote-accepted")
    async def quote_accepted(request: Request) -> JSONResponse:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return _problem(413, f"body larger than {MAX_BODY_BYTES} bytes")
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return _problem(413, f"body larger than {MAX_BODY_BYTES} bytes")
        try:
            cpq.verify(
                [settings.cpq_webhook_secret.get_secret_value()],
                request.headers.get(cpq.SIGNATURE_HEADER),
                body,
                tolerance_seconds=settings.webhook_tolerance_seconds,
            )
        except cpq.SignatureError as error:
            log.warning("webhook refused", source="cpq", reason=error.reason)
            return _problem(401, error.reason)
        try:
            # Non-integer JSON numbers become Decimal, never float: money stays exact.
            payload = json.loads(body, parse_float=Decimal)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return _problem(400, "body is not valid JSON")
        try:
            quote = Quote.model_validate(payload)
        except ValidationError as error:
            return _problem(422, "invalid quote", fields=field_errors(error))
        return await start_quote_to_cash(request.app.state.client, quote, settings.saga_policy)

    return app


async def start_quote_to_cash(client: Client, quote: Quote, policy: SagaPolicy) -> JSONResponse:
    """Start the saga for ``quote`` unless one exists for its quote id (running or ended)."""
    workflow_id = visibility.workflow_id_for_quote(quote.quote_id)
    try:
        handle = await client.start_workflow(
            QuoteToCashWorkflow.run,
            QuoteToCashInput(quote=quote, policy=policy),
            id=workflow_id,
            task_queue=TaskQueue.ORCHESTRATION,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=visibility.start_attributes(quote, datetime.now(UTC)),
            static_summary=visibility.static_summary(quote),
            static_details=visibility.static_details(quote),
        )
    except WorkflowAlreadyStartedError:
        log.info("duplicate quote delivery", quote_id=quote.quote_id, workflow_id=workflow_id)
        return JSONResponse(
            {"status": "duplicate", "workflow_id": workflow_id, "quote_id": quote.quote_id},
            status_code=200,
        )
    log.info("saga started", quote_id=quote.quote_id, workflow_id=workflow_id)
    return JSONResponse(
        {
            "status": "started",
            "workflow_id": workflow_id,
            "run_id": handle.result_run_id,
            "quote_id": quote.quote_id,
        },
        status_code=202,
    )
