"""The gateway: HTTP intake for vendor webhooks, the ops API and the codec server.

Everything that crosses revsync's trust boundary over HTTP comes through here:

- ``/v1/webhooks/...`` (and the deprecated unversioned ``/webhooks/...``): deliveries are
  verified before they are parsed, and start each saga at most once
  (:mod:`revsync.gateway.webhooks`, :mod:`revsync.gateway.versioning`);
- ``/v1/ops/...``: operator decisions, carrying the identity of a staff token
  (:mod:`revsync.gateway.ops`), and shadow mode's reports and replays
  (:mod:`revsync.gateway.shadow_ops`);
- ``/codec``: the codec server that decrypts payloads for the Web UI, only for staff holding
  a token (:mod:`revsync.gateway.codec_server`);
- ``/v1/openapi.json``, ``/v1/schemas/...``: the published contracts
  (:mod:`revsync.gateway.openapi`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import structlog
from fastapi import FastAPI
from temporalio.client import Client
from temporalio.common import MetricMeter
from temporalio.runtime import Runtime

from adapters.reports import LocalReportStore
from revsync.auth import TokenRegistry
from revsync.codec import AesGcmCodec, KeyRing
from revsync.gateway import openapi
from revsync.gateway.adoption_ops import adoption_router
from revsync.gateway.codec_server import create_codec_app
from revsync.gateway.customer_ops import customer_ops_router
from revsync.gateway.hubspot_trigger import build_reader
from revsync.gateway.ops import ops_router
from revsync.gateway.reconciliation_ops import reconciliation_router
from revsync.gateway.refusals import Refused, refused_handler
from revsync.gateway.salesforce_quotes import quote_reader
from revsync.gateway.shadow_ops import shadow_router
from revsync.gateway.stripe_quotes import quote_reader as stripe_quote_reader
from revsync.gateway.webhooks import webhooks_router
from revsync.settings import Settings, get_settings
from revsync.telemetry import ServerSpanMiddleware, instrument_http_client
from revsync.temporal import connect

log = structlog.get_logger("revsync.gateway")


def create_app(
    settings: Settings | None = None,
    client: Client | None = None,
    *,
    runtime: Runtime | None = None,
    http: httpx.AsyncClient | None = None,
) -> FastAPI:
    """The gateway app. Raises :class:`~revsync.settings.MissingSetting` when a secret it
    needs (payload keys, the CPQ webhook secret) is not configured. With a ``runtime``
    (:func:`revsync.metrics.build_runtime`) it connects through it and counts webhook
    deliveries on its metrics endpoint."""
    settings = settings or get_settings()
    keys = KeyRing.from_settings(settings)
    settings.require_secret("cpq_webhook_secret", "the CPQ webhook cannot be verified")
    tokens = TokenRegistry(settings.operator_tokens)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.client = client or await connect(settings, keys, runtime=runtime)
        # Vendor reads the gateway makes itself (HubSpot's closed-won deals, Salesforce CPQ
        # quotes, the lines of Stripe's accepted quotes): one client,
        # closed at shutdown unless the caller gave its own.
        own = http is None
        # Each vendor call a client span, as in the workers (revsync.telemetry).
        vendor_http = http or instrument_http_client(
            httpx.AsyncClient(timeout=httpx.Timeout(settings.http_timeout_seconds))
        )
        try:
            app.state.hubspot = build_reader(settings, vendor_http)
            app.state.salesforce_quotes = quote_reader(settings, vendor_http)
            app.state.stripe_quotes = stripe_quote_reader(settings, vendor_http)
            log.info("gateway ready", temporal=settings.temporal_address, staff=len(tokens))
            yield
        finally:
            if own:
                await vendor_http.aclose()

    app = FastAPI(
        **openapi.FASTAPI_OPTIONS,
        lifespan=lifespan,
        # FastAPI's own request spans would record raw paths (the codec server's carry a
        # token): the gateway's one server span is revsync.telemetry's, which records none.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.tokens = tokens
    # Reconciliation's reports, read from the store the orchestration worker writes.
    app.state.reports = LocalReportStore(settings.reconcile_store_dir)
    app.add_exception_handler(Refused, refused_handler)
    # A server span per request: a webhook's saga start is its child (revsync.telemetry).
    app.add_middleware(ServerSpanMiddleware)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    meter = MetricMeter.noop if runtime is None else runtime.metric_meter
    app.include_router(webhooks_router(settings, meter))
    app.include_router(ops_router())
    app.include_router(customer_ops_router())
    app.include_router(reconciliation_router())
    app.include_router(shadow_router(settings))
    app.include_router(adoption_router())
    openapi.install(app)
    app.mount(
        openapi.CODEC_MOUNT,
        create_codec_app(AesGcmCodec(keys), tokens, settings.temporal_ui_origins),
    )
    return app
