"""OpenTelemetry tracing: one trace per order, from the webhook to each vendor HTTP call.

Every long-running process calls :func:`configure_tracing` once at start with its service
name (``revsync-gateway``, ``revsync-worker-erp``...). That installs an SDK tracer provider,
so span and trace ids exist (and reach every log line, :mod:`revsync.logs`) even when spans
are exported nowhere, which is the default. Spans are exported

- with OTLP over HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
  ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set; the exporter reads the standard ``OTEL_*``
  variables (headers, timeout, compression) itself;
- to stdout when ``REVSYNC_TRACE_CONSOLE=true``.

The pieces that make the spans of one order one trace:

- :class:`ServerSpanMiddleware`: a server span per gateway request. The webhook handler starts
  the saga inside it, so the start is its child;
- :func:`client_interceptors`: Temporal's ``TracingInterceptor``, passed to every client by
  :func:`revsync.temporal.connect`. Being a worker interceptor too, it applies to every worker
  built from that client: it carries the trace context in workflow and activity headers and
  records ``StartWorkflow``/``RunWorkflow``/``StartActivity``/``RunActivity`` spans;
- :func:`instrument_http_client`: a client span per vendor HTTP call, named after the vendor
  and operation.

No span attribute holds a secret, a body, a query string or a raw request path (the codec
server's path carries a staff token): the gateway span names its route template, vendor
spans their URL without the query.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import structlog
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor, RequestInfo
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.trace import Link, Span, SpanKind, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.client import Interceptor
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput
from temporalio.worker import Interceptor as WorkerInterceptor

from adapters.http import OPERATION_EXTENSION, VENDOR_EXTENSION

GATEWAY_SERVICE = "revsync-gateway"
TRACER_NAME = "revsync"
# FastAPI's native telemetry skips a request whose scope holds this key.
FASTAPI_TELEMETRY_SCOPE_KEY = "fastapi.telemetry"
OTLP_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def worker_service(queue: str) -> str:
    """The service name of the worker process for ``queue``."""
    return f"revsync-worker-{queue}"


def otlp_configured() -> bool:
    return any(os.environ.get(name, "").strip() for name in OTLP_ENDPOINT_VARIABLES)


def configure_tracing(
    service_name: str, *, console: bool = False, processors: Sequence[SpanProcessor] = ()
) -> TracerProvider:
    """Install the process's tracer provider (once; a second call adds ``processors`` to the
    installed one and returns it). ``OTEL_SERVICE_NAME`` overrides ``service_name``."""
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        for processor in processors:
            current.add_span_processor(processor)
        return current
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service_name}
    provider = TracerProvider(resource=Resource.create(attributes))
    if otlp_configured():
        # Imported only when used: it brings protobuf encoders and an HTTP stack.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if console:
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    for processor in processors:
        provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    return provider


def shutdown_tracing() -> None:
    """Export what is still buffered. The CLI leaves with ``os._exit`` (no atexit hooks), so
    it calls this first."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()


def client_interceptors() -> list[Interceptor]:
    """The interceptors every Temporal client gets (they also apply to its workers)."""
    return [TracingInterceptor(), ActivityTraceIdsForLogs()]


class ActivityTraceIdsForLogs(Interceptor, WorkerInterceptor):
    """Keep an activity's trace ids for the log lines written after its span ends.

    The SDK logs a failed attempt ("Completing activity as failed", with the traceback) once
    the ``RunActivity`` span has ended; binding the ids in the activity's context (each
    activity runs in a task of its own) gives that line the attempt's trace id too. Lines
    written while a span is current keep that span's ids (:func:`revsync.logs.add_trace_ids`
    runs first)."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _BindTraceIds(next)


class _BindTraceIds(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            structlog.contextvars.bind_contextvars(
                trace_id=trace.format_trace_id(context.trace_id),
                span_id=trace.format_span_id(context.span_id),
            )
        return await self.next.execute_activity(input)


def url_without_query(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


_URL_ATTRIBUTES = ("url.full", "http.url")


async def _name_vendor_span(span: Span, request: RequestInfo) -> None:
    """Name a vendor call's client span after the vendor and operation (set on the request
    by :class:`adapters.http.VendorHttp`), and drop the query string from its URL."""
    if not span.is_recording():
        return
    extensions = request.extensions or {}
    vendor = extensions.get(VENDOR_EXTENSION)
    operation = extensions.get(OPERATION_EXTENSION)
    method = request.method.decode() if isinstance(request.method, bytes) else request.method
    if isinstance(vendor, str):
        span.set_attribute("peer.service", vendor)
        span.set_attribute("revsync.vendor", vendor)
        if isinstance(operation, str):
            span.set_attribute("revsync.operation", operation)
            span.update_name(f"{method} {vendor} {operation}")
        else:
            span.update_name(f"{method} {vendor}")
    recorded: Any = getattr(span, "attributes", None) or {}
    for key in _URL_ATTRIBUTES:
        if key in recorded:
            span.set_attribute(key, url_without_query(str(request.url)))


def instrument_http_client(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """``client``, with a client span per request (and the trace context sent along)."""
    HTTPXClientInstrumentor.instrument_client(client, request_hook=_name_vendor_span)
    return client


class ServerSpanMiddleware:
    """A server span per HTTP request, named ``METHOD /route/{template}`` once routing has
    matched (``METHOD /mount`` for a mounted app without templates, only the method when
    nothing matched), with the response status.

    Each request starts a new trace: a gateway faces senders it does not control, and one
    order is one trace however its senders trace themselves. An incoming ``traceparent`` is
    kept as a link, not as the parent. Paths never become attributes (they can carry ids, or
    the codec server's token), whatever the path layout is.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.tracer = trace.get_tracer(TRACER_NAME)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Mounted FastAPI apps (the codec server) then add no server span of their own: it
        # would record the raw path, token included.
        scope.setdefault(FASTAPI_TELEMETRY_SCOPE_KEY, None)
        method = str(scope.get("method", "GET"))
        outer_root = str(scope.get("root_path", ""))
        carrier = {
            key.decode("latin-1"): value.decode("latin-1")
            for key, value in scope.get("headers", ())
        }
        sender = trace.get_current_span(propagate.extract(carrier)).get_span_context()
        links = [Link(sender)] if sender.is_valid else None
        status: list[int] = []

        async def send_and_note(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        with self.tracer.start_as_current_span(
            method,
            context=Context(),
            kind=SpanKind.SERVER,
            links=links,
            attributes={"http.request.method": method, "url.scheme": str(scope.get("scheme"))},
        ) as span:
            try:
                await self.app(scope, receive, send_and_note)
            finally:
                mount, template = _route(scope, outer_root)
                if template is not None:
                    span.set_attribute("http.route", f"{mount}{template}")
                if template is not None or mount:
                    span.update_name(f"{method} {mount}{template or ''}")
                if status:
                    span.set_attribute("http.response.status_code", status[0])
                    if status[0] >= 500:
                        span.set_status(StatusCode.ERROR)


def _route(scope: Scope, outer_root: str) -> tuple[str, str | None]:
    """The path of the app the request was routed into (``""`` for the gateway itself,
    ``/codec`` for the codec server) and the matched route's template, when the router
    says which (FastAPI's routes do; plain Starlette routes do not)."""
    root = str(scope.get("root_path", ""))
    mount = root[len(outer_root) :] if root.startswith(outer_root) else ""
    template = getattr(scope.get("route"), "path", None)
    return mount, template if isinstance(template, str) else None
