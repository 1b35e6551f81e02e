"""Metrics: the runtime every process runs on, the business metrics the saga, the activities
and the gateway record, and a Prometheus scrape after an end-to-end run on the real stack."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import socket
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.runtime import (
    BufferedMetricUpdate,
    MetricBuffer,
    MetricBufferDurationFormat,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
)
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Replayer

from activities.classify import vendor_call
from adapters.errors import (
    NotFoundError,
    RejectedError,
    Throttle,
    TransientError,
    UnknownOutcomeError,
    VendorError,
)
from adapters.webhooks import cpq
from domain.approval import ApprovalPolicy, Approver, ApproverRole
from domain.contracts import Activity
from domain.quote import Quote
from domain.saga import ApproveRequest, ResolveAction, ResolveRequest, SagaPolicy
from domain.stages import OrderStage
from revsync import metrics
from revsync.devstack import DevStackOptions, ProcessSpec, Supervised, stack_processes
from revsync.metrics import MetricsEndpointError, build_runtime, telemetry_config
from revsync.operations import decide
from revsync.settings import Settings
from sandbox.faults import FaultRule
from tests.conftest import installed_binary
from tests.e2e.stack import free_port, running_stack
from tests.e2e.test_failures_e2e import inject, parked_at_crm_write_back, stage_of
from tests.e2e.test_quote_to_cash_e2e import deliver, finished, new_quote
from tests.workflows.fakes import FakeSystems, rejected, running_workers
from tests.workflows.test_parking_and_approvals import discounted_quote, reach, start
from tests.workflows.test_parking_and_approvals import new_quote as fake_quote
from workers.build import WORKFLOWS
from workflows.quote_to_cash import QuoteToCashWorkflow

ROOT = Path(__file__).resolve().parents[2]


def business(updates: Sequence[BufferedMetricUpdate]) -> list[tuple[str, dict[str, Any], Any]]:
    """revsync's own metric updates, as (name, attributes, value)."""
    return [
        (u.metric.name, dict(u.attributes), u.value)
        for u in updates
        if u.metric.name.startswith("revsync_")
    ]


def buffered_runtime() -> tuple[Runtime, MetricBuffer]:
    buffer = MetricBuffer(100_000, MetricBufferDurationFormat.SECONDS)
    return Runtime(telemetry=TelemetryConfig(metrics=buffer)), buffer


# -- vendor call outcomes (activities/classify.py) ----------------------------------------


@activity.defn(name="probe_vendor")
async def probe_vendor(error: VendorError | None) -> None:
    with vendor_call("netsuite"):
        if error is not None:
            raise error


async def test_every_vendor_call_is_counted_by_vendor_and_failure_class():
    runtime, buffer = buffered_runtime()
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, activity_type="probe_vendor", task_queue="erp")
    env.metric_meter = runtime.metric_meter
    failures: list[VendorError] = [
        TransientError("netsuite", "get", "503", status=503),
        RejectedError("netsuite", "create", "closed period", status=400),
        NotFoundError("netsuite", "get", "no such order", status=404),
        UnknownOutcomeError("netsuite", "create", "read timed out after sending"),
        VendorError("netsuite", "get", "an error of no known class"),
    ]
    await env.run(probe_vendor, None)
    for failure in failures:
        with pytest.raises(Exception, match="netsuite"):
            await env.run(probe_vendor, failure)

    counted = business(buffer.retrieve_updates())
    assert {name for name, _, _ in counted} == {"revsync_vendor_calls"}
    outcomes = Counter((attrs["vendor"], attrs["outcome"]) for _, attrs, _ in counted)
    assert outcomes == {
        ("netsuite", "done"): 1,
        ("netsuite", "transient"): 2,  # a VendorError of no known class is retried as one
        ("netsuite", "rejected"): 2,  # not found is a rejection
        ("netsuite", "unknown"): 1,
    }
    # The SDK adds the activity's own labels.
    assert {(attrs["activity_type"], attrs["task_queue"]) for _, attrs, _ in counted} == {
        ("probe_vendor", "erp")
    }
    assert all(value == 1 for _, _, value in counted)


@activity.defn(name="probe_salesforce")
async def probe_salesforce(error: VendorError) -> None:
    with vendor_call("salesforce"):
        raise error


async def test_a_spent_daily_quota_is_counted_per_vendor_and_backs_off_by_attempt():
    runtime, buffer = buffered_runtime()
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info, activity_type="probe_salesforce", task_queue="crm", attempt=2
    )
    env.metric_meter = runtime.metric_meter
    quota = TransientError(
        "salesforce",
        "get_account",
        "TotalRequests Limit exceeded.",
        status=403,
        code="REQUEST_LIMIT_EXCEEDED",
        throttle=Throttle.quota("Salesforce daily API request limit"),
    )
    burst = TransientError(
        "salesforce", "get_account", "too many", status=429, throttle=Throttle.rate("burst")
    )
    with pytest.raises(ApplicationError) as caught:
        await env.run(probe_salesforce, quota)
    # The second attempt: 10 minutes, said where the Web UI shows the pending activity.
    assert caught.value.next_retry_delay == timedelta(minutes=10)
    assert caught.value.message.startswith(
        "Salesforce daily API request limit exhausted; next attempt in 10 minutes"
    )
    with pytest.raises(ApplicationError):
        await env.run(probe_salesforce, burst)

    counted = Counter(
        (name, attrs["vendor"], attrs.get("outcome"))
        for name, attrs, _ in business(buffer.retrieve_updates())
    )
    assert counted == {
        ("revsync_vendor_calls", "salesforce", "transient"): 2,
        ("revsync_vendor_quota_exhausted", "salesforce", None): 1,  # a rate limit is not one
    }


def test_a_metric_takes_exactly_its_declared_labels():
    runtime, buffer = buffered_runtime()
    meter = runtime.metric_meter
    with pytest.raises(ValueError, match="step"):
        metrics.count(meter, metrics.QUOTES_PARKED)
    with pytest.raises(ValueError, match="vendor"):
        metrics.count(meter, metrics.VENDOR_CALLS, vendor="stripe", outcome="done", op="x")
    metrics.observe(meter, metrics.APPROVAL_WAIT, timedelta(minutes=-1), decision="approve")
    ((name, attrs, value),) = business(buffer.retrieve_updates())
    assert (name, attrs["decision"], value) == ("revsync_approval_wait_seconds", "approve", 0)


# -- the runtime ----------------------------------------------------------------------------


def test_without_a_port_no_endpoint_but_core_logs_go_to_python_logging():
    config = telemetry_config(Settings(metrics_port=None))
    assert config.metrics is None
    assert config.logging is not None and config.logging.forwarding is not None
    assert config.logging.forwarding.logger is logging.getLogger("temporalio.core")


def test_with_a_port_prometheus_in_seconds_with_buckets_for_days_long_waits():
    config = telemetry_config(Settings(metrics_port=9464, metrics_host="0.0.0.0"))
    prometheus = config.metrics
    assert isinstance(prometheus, PrometheusConfig)
    assert prometheus.bind_address == "0.0.0.0:9464"
    assert prometheus.durations_as_seconds and prometheus.counters_total_suffix
    buckets = prometheus.histogram_bucket_overrides or {}
    assert set(buckets) == {"revsync_approval_wait_seconds", "revsync_booking_latency_seconds"}
    assert max(buckets["revsync_approval_wait_seconds"]) == 7 * 86400
    assert min(buckets["revsync_booking_latency_seconds"]) == 0.5


class Collected(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_the_sdk_cores_own_warnings_reach_python_logging():
    collected = Collected()
    core = logging.getLogger("temporalio.core")
    core.addHandler(collected)
    try:
        runtime = build_runtime(Settings(metrics_port=None))
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=installed_binary("temporal"), runtime=runtime
        )
        # The server goes away: the core retries the next call and warns about it.
        await env.shutdown()
        call = asyncio.create_task(env.client.count_workflows())
        deadline = asyncio.get_running_loop().time() + 60
        while not collected.records:
            assert asyncio.get_running_loop().time() < deadline, "no core log line"
            await asyncio.sleep(0.1)
        call.cancel()
        with contextlib.suppress(asyncio.CancelledError, RPCError):
            await call
    finally:
        core.removeHandler(collected)
    record = collected.records[0]
    assert record.name == "temporalio.core"
    assert record.levelno == logging.WARNING
    assert "[sdk_core::" in record.getMessage()
    assert "count_workflow_executions" in record.getMessage()


def test_a_busy_metrics_port_is_refused_naming_the_settings():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(MetricsEndpointError, match="REVSYNC_METRICS_PORT") as caught:
            build_runtime(Settings(metrics_port=port))
    assert f"127.0.0.1:{port}" in str(caught.value)


def test_metrics_are_off_in_the_dev_stack_unless_a_base_port_is_set():
    specs = stack_processes(DevStackOptions(settings=Settings(metrics_port=None)))
    assert [s.metrics_port for s in specs] == [None] * len(specs)


def test_the_dev_stack_gives_the_gateway_and_each_worker_its_own_port():
    options = DevStackOptions(settings=Settings(metrics_port=9100), scale={"erp": 2})
    ports = {s.name: s.metrics_port for s in stack_processes(options)}
    assert ports == {
        "temporal": None,
        "sandbox": None,
        "gateway": 9100,
        "worker-orchestration": 9101,
        "worker-crm": 9102,
        "worker-billing": 9103,
        "worker-erp-1": 9104,
        "worker-erp-2": 9105,
        "worker-events": 9106,
    }
    with pytest.raises(ValueError, match="no room"):
        stack_processes(DevStackOptions(settings=Settings(metrics_port=65533)))


async def test_a_supervised_process_is_started_with_its_own_metrics_port(
    capsys: pytest.CaptureFixture[str],
):
    argv = [sys.executable, "-c", "import os; print('port', os.environ['REVSYNC_METRICS_PORT'])"]
    child = Supervised(ProcessSpec("probe", argv, metrics_port=9107), {"PATH": "/usr/bin"})
    await child.start()
    assert await child.wait() == 0
    assert "probe           | port 9107" in capsys.readouterr().out


def test_every_metric_is_documented_with_its_labels():
    text = (ROOT / "docs/observability.md").read_text()
    section = text[text.index("## Metrics") :]
    for metric in metrics.ALL_METRICS:
        rows = [line for line in section.splitlines() if f"`{metric.exposed}`" in line]
        assert rows, f"{metric.exposed} is not in docs/observability.md"
        for label in metric.labels:
            assert f"`{label}`" in rows[0], f"{metric.exposed}: label {label} undocumented"


# -- the saga's business metrics: recorded live, never on replay ---------------------------


@dataclass
class Buffered:
    env: WorkflowEnvironment
    buffer: MetricBuffer


@pytest.fixture(scope="module")
async def buffered_env() -> AsyncIterator[Buffered]:
    runtime, buffer = buffered_runtime()
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=installed_binary("temporal-test-server"),
        runtime=runtime,
    )
    try:
        yield Buffered(env, buffer)
    finally:
        await env.shutdown()


def sam() -> ApproveRequest:
    return ApproveRequest(approver=Approver(name="sam.manager", role=ApproverRole.SALES_MANAGER))


async def test_the_saga_records_each_ending_and_its_latencies_once(buffered_env: Buffered):
    env, buffer = buffered_env.env, buffered_env.buffer
    client = env.client
    buffer.retrieve_updates()
    fakes = FakeSystems()
    async with running_workers(client, fakes):
        # Approved after two hours, then booked.
        approved = await start(client, discounted_quote("30"))
        await reach(approved, OrderStage.AWAITING_APPROVAL)
        await env.sleep(timedelta(hours=2))
        await approved.execute_update(QuoteToCashWorkflow.approve, sam())
        assert (await approved.result()).stage is OrderStage.BOOKED

        # A catalog mismatch: rejected before anything is booked.
        quote = fake_quote()
        line = quote.lines[0].model_copy(update={"unit_price": quote.lines[0].unit_price + 1})
        mismatch = Quote.model_validate(
            quote.model_copy(update={"lines": [line, *quote.lines[1:]]}).model_dump()
        )
        assert (await (await start(client, mismatch)).result()).stage is OrderStage.REJECTED

        # Billing refuses: the ERP order is cancelled.
        fakes.fail_with(Activity.BILLING_PROVISION_SUBSCRIPTION, rejected("card_declined"))
        unwound = await (await start(client, fake_quote())).result()
        assert unwound.stage is OrderStage.COMPENSATED

        # CRM refuses the write-back: parked, skipped by an operator, booked.
        fakes.fail_with(Activity.CRM_RECORD_ORDER, rejected("FIELD_CUSTOM_VALIDATION"))
        parked = await start(client, fake_quote())
        await reach(parked, OrderStage.NEEDS_ATTENTION)
        skip = ResolveRequest(action=ResolveAction.SKIP, operator="ops.lena", note="by hand")
        await parked.execute_update(QuoteToCashWorkflow.resolve, skip)
        assert (await parked.result()).stage is OrderStage.BOOKED

    recorded = business(buffer.retrieve_updates())
    counts = Counter(
        (name, tuple(sorted((k, v) for k, v in attrs.items() if k in labels_of(name))))
        for name, attrs, _ in recorded
    )
    assert counts == {
        ("revsync_quotes_received", ()): 4,
        ("revsync_quotes_booked", ()): 2,
        ("revsync_quotes_rejected", (("step", "check_catalog"),)): 1,
        ("revsync_quotes_compensated", (("step", "provision_billing"),)): 1,
        ("revsync_quotes_parked", (("step", "update_crm"),)): 1,
        ("revsync_approval_wait_seconds", (("decision", "approve"),)): 1,
        ("revsync_booking_latency_seconds", (("approval", "required"), ("parked", "false"))): 1,
        ("revsync_booking_latency_seconds", (("approval", "none"), ("parked", "true"))): 1,
    }
    (wait,) = [v for n, _, v in recorded if n == "revsync_approval_wait_seconds"]
    assert timedelta(hours=2) <= timedelta(seconds=wait) < timedelta(hours=2, minutes=1)
    (latency,) = [
        v
        for n, attrs, v in recorded
        if n == "revsync_booking_latency_seconds" and attrs["approval"] == "required"
    ]
    assert latency >= wait
    workflow_labels = {attrs.get("workflow_type") for _, attrs, _ in recorded}
    assert workflow_labels == {"QuoteToCash"}

    # Replaying the approved saga's history (as a worker does after a restart) records none.
    history = await approved.fetch_history()
    assert any(
        e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED for e in history.events
    )
    replayer = Replayer(
        workflows=list(WORKFLOWS),
        data_converter=pydantic_data_converter,
        runtime=env.client.service_client.config.runtime,
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
    assert business(buffer.retrieve_updates()) == []


async def test_a_missed_sla_is_counted_once_per_saga_and_sla(buffered_env: Buffered):
    env, buffer = buffered_env.env, buffered_env.buffer
    buffer.retrieve_updates()
    policy = SagaPolicy(
        approval=ApprovalPolicy(escalate_after=timedelta(hours=1), expire_after=timedelta(days=2))
    )
    async with running_workers(env.client, FakeSystems()):
        late = await start(env.client, discounted_quote("30"), policy)
        await reach(late, OrderStage.AWAITING_APPROVAL)
        await env.sleep(timedelta(hours=4))
        await late.execute_update(QuoteToCashWorkflow.approve, sam())
        status = await late.result()
    assert status.stage is OrderStage.BOOKED
    assert [b.sla for b in status.sla_breaches] == ["approval"]
    breaches = [
        (attrs["sla"], attrs["workflow_type"], value)
        for name, attrs, value in business(buffer.retrieve_updates())
        if name == "revsync_sla_breaches"
    ]
    assert breaches == [("approval", "QuoteToCash", 1)]


def labels_of(name: str) -> tuple[str, ...]:
    (metric,) = [m for m in metrics.ALL_METRICS if m.name == name]
    return metric.labels


# -- the end-to-end scrape ------------------------------------------------------------------

_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass
class Scrape:
    samples: list[tuple[str, dict[str, str], float]]

    @classmethod
    def parse(cls, text: str) -> Scrape:
        samples = []
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            match = _SAMPLE.match(line)
            assert match is not None, f"not a Prometheus sample: {line!r}"
            name, labels, value = match.groups()
            samples.append((name, dict(_LABEL.findall(labels or "")), float(value)))
        return cls(samples)

    def value(self, name: str, **labels: str) -> float:
        """The sum over every series of ``name`` carrying ``labels`` (0 when there is none)."""
        return sum(
            value
            for sample, attrs, value in self.samples
            if sample == name and all(attrs.get(k) == v for k, v in labels.items())
        )

    def names(self) -> set[str]:
        return {name for name, _, _ in self.samples}


@contextmanager
def metrics_runtime() -> Iterator[tuple[Runtime, str]]:
    port = free_port()
    yield build_runtime(Settings(metrics_port=port)), f"http://127.0.0.1:{port}/metrics"


@pytest.mark.e2e
async def test_a_scrape_after_an_end_to_end_run_counts_every_outcome():
    with metrics_runtime() as (runtime, endpoint):
        async with running_stack(runtime) as stack:
            # Booked, after one Stripe 503 (a transient outcome); delivered twice.
            booked = await new_quote(stack, "0015e00000AcmeUS1")
            inject(stack, FaultRule(vendor="stripe", operation="*", status=503, times=1))
            assert (await deliver(stack, booked)).status_code == 202
            assert (await finished(stack, booked["quote_id"])).stage is OrderStage.BOOKED
            assert (await deliver(stack, booked)).json()["status"] == "duplicate"

            # Rejected: the quoted price is not the ERP list price.
            mismatch = await new_quote(stack, "0015e00000NordDE1")
            mismatch["lines"][0]["unit_price"] = "1.00"
            assert (await deliver(stack, mismatch)).status_code == 202
            assert (await finished(stack, mismatch["quote_id"])).stage is OrderStage.REJECTED

            # Compensated: Stripe declines the card after the ERP order was booked.
            declined = await new_quote(stack, "0015e00000ThamGB1")
            inject(
                stack,
                FaultRule(
                    vendor="stripe",
                    operation="create_subscription",
                    status=402,
                    code="card_declined",
                ),
            )
            assert (await deliver(stack, declined)).status_code == 202
            assert (await finished(stack, declined["quote_id"])).stage is OrderStage.COMPENSATED

            # Approved by a sales manager, then booked.
            discounted = await new_quote(stack, "0015e00000AcmeUS1")
            discounted["lines"][0]["discount_percent"] = "30"
            assert (await deliver(stack, discounted)).status_code == 202
            await stage_of(stack, discounted["quote_id"], OrderStage.AWAITING_APPROVAL)
            await decide(stack.client, discounted["quote_id"], sam())
            assert (await finished(stack, discounted["quote_id"])).stage is OrderStage.BOOKED

            # Parked: Salesforce refuses the CRM write-back.
            await parked_at_crm_write_back(stack)

            # Refused: a forged signature.
            forged = await stack.gateway.post(
                "/webhooks/cpq/quote-accepted",
                content=b'{"quote_id": "forged"}',
                headers={cpq.SIGNATURE_HEADER: f"t=1,v1={uuid.uuid4().hex}"},
            )
            assert forged.status_code == 401

            async with httpx.AsyncClient() as http:
                response = await http.get(endpoint)
            assert response.status_code == 200
            scrape = Scrape.parse(response.text)

    assert scrape.value("revsync_quotes_received_total", workflow_type="QuoteToCash") == 5
    assert scrape.value("revsync_quotes_booked_total") == 2
    assert scrape.value("revsync_quotes_rejected_total") == 1
    assert scrape.value("revsync_quotes_rejected_total", step="check_catalog") == 1
    assert scrape.value("revsync_quotes_compensated_total") == 1
    assert scrape.value("revsync_quotes_compensated_total", step="provision_billing") == 1
    assert scrape.value("revsync_quotes_parked_total") == 1
    assert scrape.value("revsync_quotes_parked_total", step="update_crm") == 1

    assert scrape.value("revsync_approval_wait_seconds_count") == 1
    assert scrape.value("revsync_approval_wait_seconds_count", decision="approve") == 1
    latency = "revsync_booking_latency_seconds_count"
    assert scrape.value(latency) == 2
    assert scrape.value(latency, approval="none", parked="false") == 1
    assert scrape.value(latency, approval="required", parked="false") == 1
    assert scrape.value("revsync_booking_latency_seconds_sum") > 0

    calls = "revsync_vendor_calls_total"
    assert scrape.value(calls, vendor="stripe", outcome="transient") == 1
    assert scrape.value(calls, vendor="stripe", outcome="rejected") == 1
    assert scrape.value(calls, vendor="salesforce", outcome="rejected") == 1
    assert scrape.value(calls, vendor="netsuite", outcome="rejected") == 0
    assert scrape.value(calls, outcome="unknown") == 0
    # Five catalog checks, four sales orders, one cancellation (at least: a slow attempt
    # may be retried).
    assert scrape.value(calls, vendor="netsuite", outcome="done") >= 10
    assert scrape.value(calls, vendor="stripe", outcome="done") >= 3
    assert scrape.value(calls, vendor="salesforce", outcome="done", task_queue="crm") >= 5

    deliveries = "revsync_webhook_deliveries_total"
    assert scrape.value(deliveries, source="cpq", outcome="started") == 5
    assert scrape.value(deliveries, source="cpq", outcome="duplicate") == 1
    assert scrape.value(deliveries, source="cpq", outcome="refused") == 1

    # The SDK's own metrics are on the same endpoint.
    assert scrape.value("temporal_workflow_completed_total", workflow_type="QuoteToCash") == 4
    assert scrape.value("temporal_activity_schedule_to_start_latency_count", task_queue="erp") > 0
    assert "temporal_workflow_task_schedule_to_start_latency_bucket" in scrape.names()
