"""The gateway: HTTP intake for vendor webhooks, the ops API and the codec server.

Everything that crosses revsync's trust boundary over HTTP comes through here:

- ``/webhooks/...``: deliveries are verified before they are parsed, and start each saga at
  most once (:mod:`revsync.gateway.webhooks`);
- ``/v1/ops/...``: operator decisions, carrying the identity of a staff token
  (:mod:`revsync.gateway.ops`);
- ``/codec``: the codec server that decrypts payloads for the Web UI, only for staff holding
  a token (:mod:`revsync.gateway.codec_server`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI
from temporalio.client import Client

from revsync.auth import TokenRegistry
from revsync.codec import AesGcmCodec, KeyRing
from revsync.gateway.codec_server import create_codec_app
from revsync.gateway.ops import ops_router
from revsync.gateway.refusals import Refused, refused_handler
from revsync.gateway.webhooks import webhooks_router
from revsync.settings import Settings, get_settings
from revsync.temporal import connect

log = structlog.get_logger("revsync.gateway")


def create_app(settings: Settings | None = None, client: Client | None = None) -> FastAPI:
    """The gateway app. Raises :class:`~revsync.settings.MissingSetting` when a secret it
    needs (payload keys, the CPQ webhook secret) is not configured."""
    settings = settings or get_settings()
    keys = KeyRing.from_settings(settings)
    settings.require_secret("cpq_webhook_secret", "the CPQ webhook cannot be verified")
    tokens = TokenRegistry(settings.operator_tokens)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.client = client or await connect(settings, keys)
        log.info("gateway ready", temporal=settings.temporal_address, staff=len(tokens))
        yield

    app = FastAPI(title="revsync gateway", version="1", lifespan=lifespan)
    app.state.tokens = tokens
    app.add_exception_handler(Refused, refused_handler)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(webhooks_router(settings))
    app.include_router(ops_router())
    app.mount("/codec", create_codec_app(AesGcmCodec(keys), tokens, settings.temporal_ui_origins))
    return app
