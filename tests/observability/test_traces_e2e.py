"""One trace per order, on a real dev server: a signed webhook POSTed to the gateway over
HTTP, the workers and their vendor calls to the sandbox, all wired as in production
(``revsync.temporal.connect``, ``workers.build``, the gateway app), spans kept in memory.
And the log lines of the same order carry its ids and its trace id."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode, format_span_id, format_trace_id
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from adapters.webhooks import cpq
from domain.contracts import Activity, TaskQueue
from domain.saga import QuoteToCashStatus
from domain.stages import OrderStage
from revsync.codec import KeyRing, encrypted_data_converter
from revsync.demo import create_crm_quote, wait_for_saga
from revsync.gateway.app import create_app as create_gateway
from revsync.settings import Settings, secret_list
from revsync.temporal import connect
from sandbox.faults import FaultRule, FaultsRequest
from sandbox.quotes import quote_payload
from tests.conftest import installed_binary
from tests.e2e.stack import SandboxServer, ThreadedServer, free_port, stack_settings
from tests.observability.conftest import LogSink
from tests.staff import token_of
from workers.build import build_worker, new_http_client
from workflows import visibility

pytestmark = pytest.mark.e2e

WEBHOOK = "/v1/webhooks/cpq/quote-accepted"
# The happy path's activities and the vendor each one calls.
VENDOR_OF = {
    Activity.CRM_FETCH_ACCOUNT: "salesforce",
    Activity.ERP_CHECK_CATALOG: "netsuite",
    Activity.ERP_BOOK_SALES_ORDER: "netsuite",
    Activity.BILLING_PROVISION_SUBSCRIPTION: "stripe",
    Activity.CRM_RECORD_ORDER: "salesforce",
}


@dataclass
class TracedStack:
    settings: Settings
    sandbox: SandboxServer
    gateway: httpx.AsyncClient
    observer: Client  # no tracing: polling the saga adds no spans
    spans: InMemorySpanExporter


@pytest.fixture(scope="module")
async def traced(spans: InMemorySpanExporter) -> AsyncIterator[TracedStack]:
    sandbox = SandboxServer()
    gateway_port = free_port()
    settings = stack_settings(sandbox.url, "pending").model_copy(
        update={"gateway_port": gateway_port}
    )
    env = await WorkflowEnvironment.start_local(
        data_converter=encrypted_data_converter(KeyRing.from_settings(settings)),
        dev_server_existing_path=installed_binary("temporal"),
        search_attributes=list(visibility.ALL_KEYS),
    )
    sandbox.start()
    settings = settings.model_copy(
        update={"temporal_address": env.client.service_client.config.target_host}
    )
    async with AsyncExitStack() as stack:
        stack.push_async_callback(env.shutdown)
        stack.callback(sandbox.stop)
        workers_client = await connect(settings)
        http = await stack.enter_async_context(new_http_client(settings))
        for queue in TaskQueue.ALL:
            await stack.enter_async_context(build_worker(queue, workers_client, settings, http))
        gateway_server = ThreadedServer(create_gateway(settings), gateway_port)
        gateway_server.start()
        stack.callback(gateway_server.stop)
        gateway = await stack.enter_async_context(
            httpx.AsyncClient(base_url=settings.gateway_url, timeout=30)
        )
        yield TracedStack(settings, sandbox, gateway, env.client, spans)


async def book_one(traced: TracedStack) -> tuple[dict[str, Any], QuoteToCashStatus]:
    """Deliver a signed quote-accepted webhook for a new quote; wait for its saga to end.
    Returns the gateway's answer and the saga's final status."""
    async with httpx.AsyncClient() as http:
        quote_id = await create_crm_quote(http, traced.settings, "0015e00000AcmeUS1")
    body = json.dumps(quote_payload(quote_id)).encode()
    secret = secret_list(traced.settings.cpq_webhook_secret)[0]
    response = await traced.gateway.post(
        WEBHOOK,
        content=body,
        headers={"content-type": "application/json", cpq.SIGNATURE_HEADER: cpq.sign(secret, body)},
    )
    assert response.status_code == 202, response.text
    answer: dict[str, Any] = response.json()
    status = await wait_for_saga(traced.observer, answer["workflow_id"], time.monotonic() + 60)
    assert status is not None
    assert status.stage is OrderStage.BOOKED, status
    return answer, status


async def eventually(found: Callable[[], bool], seconds: float = 15) -> None:
    """Spans end in other threads (the gateway's server): wait until ``found()``."""
    deadline = time.monotonic() + seconds
    while not found():
        assert time.monotonic() < deadline, "the expected spans never finished"
        await asyncio.sleep(0.05)


class Trace:
    """The finished spans of one trace, navigable by parent."""

    def __init__(self, spans: Sequence[ReadableSpan], trace_id: int) -> None:
        self.spans = [s for s in spans if s.context is not None and s.context.trace_id == trace_id]
        self.by_id = {s.context.span_id: s for s in self.spans if s.context is not None}

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans if s.name == name]

    def parent(self, span: ReadableSpan) -> ReadableSpan | None:
        return None if span.parent is None else self.by_id.get(span.parent.span_id)

    def ancestors(self, span: ReadableSpan) -> list[ReadableSpan]:
        chain: list[ReadableSpan] = []
        current = self.parent(span)
        while current is not None:
            chain.append(current)
            current = self.parent(current)
        return chain


def start_span(spans: Sequence[ReadableSpan], workflow_id: str) -> ReadableSpan:
    [start] = [
        s
        for s in spans
        if s.name == "StartWorkflow:QuoteToCash"
        and (s.attributes or {}).get("temporalWorkflowID") == workflow_id
    ]
    return start


def order_trace(traced: TracedStack, workflow_id: str) -> Trace:
    start = start_span(traced.spans.get_finished_spans(), workflow_id)
    assert start.context is not None
    return Trace(traced.spans.get_finished_spans(), start.context.trace_id)


def complete(traced: TracedStack, workflow_id: str) -> Callable[[], bool]:
    """The order's trace holds the gateway's span and every step's vendor calls."""

    def check() -> bool:
        spans = traced.spans.get_finished_spans()
        starts = [
            s
            for s in spans
            if s.name == "StartWorkflow:QuoteToCash"
            and (s.attributes or {}).get("temporalWorkflowID") == workflow_id
        ]
        if len(starts) != 1 or starts[0].parent is None:
            return False
        trace = order_trace(traced, workflow_id)
        return trace.parent(starts[0]) is not None and all(
            trace.named(f"RunActivity:{activity}") for activity in VENDOR_OF
        )

    return check


async def test_one_order_is_one_trace_from_the_webhook_to_each_vendor_call(
    traced: TracedStack,
):
    answer, _ = await book_one(traced)
    workflow_id = answer["workflow_id"]
    await eventually(complete(traced, workflow_id))
    trace = order_trace(traced, workflow_id)

    # gateway server span → StartWorkflow
    start = start_span(trace.spans, workflow_id)
    gateway = trace.parent(start)
    assert gateway is not None
    assert gateway.kind is SpanKind.SERVER
    assert gateway.parent is None, "the gateway's span is the root of the order's trace"
    assert (gateway.attributes or {})["http.route"] == WEBHOOK
    assert gateway.name == f"POST {WEBHOOK}"
    assert (gateway.attributes or {})["http.response.status_code"] == 202
    assert start.kind is SpanKind.CLIENT

    # StartWorkflow → RunWorkflow (the worker's side of the start)
    [run] = trace.named("RunWorkflow:QuoteToCash")
    assert trace.parent(run) is start
    assert (run.attributes or {})["temporalRunID"] == answer["run_id"]

    # StartWorkflow → … → StartActivity → RunActivity → HTTP client span(s) to the vendor
    for activity, vendor in VENDOR_OF.items():
        scheduled = trace.named(f"StartActivity:{activity}")
        assert scheduled, activity
        for span in scheduled:
            assert start in trace.ancestors(span), activity
        runs = trace.named(f"RunActivity:{activity}")
        assert runs, activity
        for span in runs:
            assert span.kind is SpanKind.SERVER
            parent = trace.parent(span)
            assert parent is not None and parent.name == f"StartActivity:{activity}"
            assert (span.attributes or {})["temporalWorkflowID"] == workflow_id
        calls = [
            s
            for s in trace.spans
            if s.kind is SpanKind.CLIENT and any(a in runs for a in trace.ancestors(s))
        ]
        assert calls, f"{activity} made no traced HTTP call"
        for call in calls:
            attributes = call.attributes or {}
            assert attributes["revsync.vendor"] == vendor
            assert call.name.split()[1:2] == [vendor]
            url = str(attributes.get("url.full") or attributes.get("http.url"))
            assert url.startswith(traced.sandbox.url)
            assert "?" not in url

    # Every span Temporal made for this saga is in this one trace.
    spans_of_saga = [
        s
        for s in traced.spans.get_finished_spans()
        if (s.attributes or {}).get("temporalWorkflowID") == workflow_id
    ]
    assert {s.context.trace_id for s in spans_of_saga if s.context} == {start.context.trace_id}


async def test_no_secret_and_no_codec_token_in_any_span(traced: TracedStack):
    answer, _ = await book_one(traced)
    await eventually(complete(traced, answer["workflow_id"]))
    # The Web UI's way to the codec server: the staff token in the path.
    token = token_of("Rita Reader")
    decoded = await traced.gateway.post(f"/codec/t/{token}/default/decode", json={"payloads": []})
    assert decoded.status_code == 200

    def codec_span() -> list[ReadableSpan]:
        return [
            s
            for s in traced.spans.get_finished_spans()
            if s.kind is SpanKind.SERVER and s.name.startswith("POST /codec")
        ]

    await eventually(lambda: bool(codec_span()))
    secrets = [*traced.settings.secret_values(), token]
    for span in traced.spans.get_finished_spans():
        text = json.dumps({"name": span.name, **dict(span.attributes or {})}, default=str)
        assert not any(secret in text for secret in secrets), span.name


async def test_a_log_line_inside_an_activity_carries_the_order_ids_and_trace_id(
    traced: TracedStack, log_lines: LogSink
):
    # The next Stripe call fails once: the activity logs it, Temporal retries it.
    traced.sandbox.state.faults.configure(
        FaultsRequest(faults=[FaultRule(vendor="stripe", status=503, times=1)])
    )
    answer, _ = await book_one(traced)
    workflow_id, quote_id = answer["workflow_id"], answer["quote_id"]
    await eventually(complete(traced, workflow_id))
    trace = order_trace(traced, workflow_id)

    [line] = [
        line
        for line in log_lines.lines()
        if line["event"] == "vendor call failed" and line.get("workflow_id") == workflow_id
    ]
    assert line["vendor"] == "stripe"
    assert line["status"] == 503
    assert line["outcome"] == "transient"
    assert line["activity"] == Activity.BILLING_PROVISION_SUBSCRIPTION
    assert line["attempt"] == 1
    assert line["run_id"] == answer["run_id"]
    assert line["quote_id"] == quote_id
    assert line["task_queue"] == TaskQueue.BILLING
    assert line["level"] == "warning"
    start = start_span(trace.spans, workflow_id)
    assert start.context is not None
    assert line["trace_id"] == format_trace_id(start.context.trace_id)
    # The span current when it was written: the failed attempt's RunActivity.
    [failed_attempt] = [
        s
        for s in trace.named(f"RunActivity:{Activity.BILLING_PROVISION_SUBSCRIPTION}")
        if s.context is not None and format_span_id(s.context.span_id) == line["span_id"]
    ]
    assert failed_attempt.status.status_code is StatusCode.ERROR
    # The SDK's own line for the failed attempt, written after its span ended, too.
    [sdk_line] = [
        other
        for other in log_lines.lines()
        if other["logger"] == "temporalio.activity" and other.get("workflow_id") == workflow_id
    ]
    assert sdk_line["event"] == "Completing activity as failed"
    assert "injected fault" in sdk_line["exception"]
    assert (sdk_line["attempt"], sdk_line["trace_id"]) == (1, line["trace_id"])

    # The workflow's own lines (replay-safe) carry the order's trace id too.
    stages = [
        line
        for line in log_lines.lines()
        if line["event"] == "stage changed" and line.get("workflow_id") == workflow_id
    ]
    assert [s["stage"] for s in stages][-1] == "BOOKED"
    assert {s["trace_id"] for s in stages} == {line["trace_id"]}
    assert {s["quote_id"] for s in stages} == {quote_id}
