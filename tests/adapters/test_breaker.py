"""The per-vendor circuit breaker, driven through a real VendorHttp over httpx.MockTransport."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from structlog.testing import capture_logs
from temporalio.exceptions import ApplicationError

from activities.classify import to_application_error, vendor_call
from adapters.breaker import BreakerMetrics, BreakerState, CircuitBreaker, is_throttled
from adapters.errors import (
    NotFoundError,
    RejectedError,
    Throttle,
    TransientError,
    UnknownOutcomeError,
    VendorError,
)
from adapters.http import VendorHttp, classify_by_status
from domain.saga import FailureType

VENDOR = "stripe"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


@dataclass
class Vendor:
    """A fake vendor API: answers with ``status`` (or raises ``raises``), counting calls."""

    status: int = 200
    retry_after: str | None = None
    raises: type[httpx.TransportError] | None = None
    calls: int = 0
    gate: asyncio.Event | None = None
    entered: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.raises is not None:
            raise self.raises("boom", request=request)
        headers = {} if self.retry_after is None else {"Retry-After": self.retry_after}
        return httpx.Response(self.status, json={"ok": self.status < 400}, headers=headers)


def classify(operation: str, response: httpx.Response) -> VendorError:
    return classify_by_status(VENDOR, operation, response, "failed", None)


@dataclass
class Rig:
    clock: FakeClock
    vendor: Vendor
    breaker: CircuitBreaker
    http: VendorHttp

    def state(self) -> BreakerState:
        # A call, not the property: mypy would otherwise narrow it across awaits.
        return self.breaker.state

    async def get(self) -> httpx.Response:
        return await self.http.request("get_customer", "GET", "https://vendor.test/customers/1")

    async def post(self) -> httpx.Response:
        return await self.http.request(
            "create_subscription", "POST", "https://vendor.test/subscriptions", json_body={}
        )

    async def fail(self, times: int) -> None:
        """``times`` calls that each end in a transient failure at the vendor."""
        for _ in range(times):
            with pytest.raises(TransientError) as caught:
                await self.get()
            assert caught.value.code != "CIRCUIT_OPEN"

    async def fail_fast(self) -> TransientError:
        before = self.vendor.calls
        with pytest.raises(TransientError) as caught:
            # Bounded: a call let through by mistake may block on the vendor's gate.
            await asyncio.wait_for(self.get(), timeout=1)
        assert caught.value.code == "CIRCUIT_OPEN"
        assert self.vendor.calls == before, "an open circuit must not touch the network"
        return caught.value


@pytest.fixture
def metrics() -> Iterator[BreakerMetrics]:
    # A local provider: the global one is never set in tests (it can be set only once).
    provider = MeterProvider()
    yield BreakerMetrics(provider.get_meter("test"))
    provider.shutdown()


def make_rig(metrics: BreakerMetrics, **options: Any) -> Rig:
    clock = FakeClock()
    vendor = Vendor(status=503)
    breaker = CircuitBreaker(VENDOR, clock=clock, metrics=metrics, **options)
    client = httpx.AsyncClient(transport=httpx.MockTransport(vendor.handle))
    return Rig(clock, vendor, breaker, VendorHttp(VENDOR, client, classify, breaker=breaker))


@pytest.fixture
async def rig(metrics: BreakerMetrics) -> AsyncIterator[Rig]:
    made = make_rig(metrics, failure_threshold=3, window_seconds=10, open_seconds=30)
    yield made
    await made.http.client.aclose()


async def test_vendor_http_gets_its_own_breaker_by_default() -> None:
    async with httpx.AsyncClient() as client:
        http = VendorHttp("netsuite", client, classify)
    assert http.breaker.vendor == "netsuite"
    assert http.breaker.state is BreakerState.CLOSED


async def test_opens_after_threshold_and_fails_fast(rig: Rig) -> None:
    await rig.fail(2)
    assert rig.state() is BreakerState.CLOSED
    await rig.fail(1)
    assert rig.state() is BreakerState.OPEN
    assert rig.vendor.calls == 3

    error = await rig.fail_fast()
    assert error.vendor == VENDOR
    assert error.operation == "get_customer"
    assert error.message == f"circuit open: {VENDOR} failed 3 times; next probe in 30.0s"
    assert rig.vendor.calls == 3


async def test_retry_after_is_the_remaining_open_time(rig: Rig) -> None:
    await rig.fail(3)
    assert (await rig.fail_fast()).retry_after == pytest.approx(30.0)
    rig.clock.advance(12.5)
    error = await rig.fail_fast()
    assert error.retry_after == pytest.approx(17.5)
    assert "next probe in 17.5s" in error.message


async def test_a_success_resets_the_consecutive_count(rig: Rig) -> None:
    await rig.fail(2)
    rig.vendor.status = 200
    await rig.get()
    rig.vendor.status = 503
    await rig.fail(2)
    assert rig.state() is BreakerState.CLOSED
    await rig.fail(1)
    assert rig.state() is BreakerState.OPEN


async def test_failures_older_than_the_window_do_not_count(rig: Rig) -> None:
    await rig.fail(2)
    rig.clock.advance(11)  # both fall out of the 10 s window
    await rig.fail(2)
    assert rig.state() is BreakerState.CLOSED
    await rig.fail(1)
    assert rig.state() is BreakerState.OPEN


async def test_rejected_and_not_found_responses_do_not_open_it(rig: Rig) -> None:
    for status, error in ((422, RejectedError), (404, NotFoundError), (400, RejectedError)):
        rig.vendor.status = status
        for _ in range(5):
            with pytest.raises(error):
                await rig.get()
    assert rig.state() is BreakerState.CLOSED
    assert rig.vendor.calls == 15

    # ...and they count as a success: they break a run of transient failures.
    rig.vendor.status = 503
    await rig.fail(2)
    rig.vendor.status = 422
    with pytest.raises(RejectedError):
        await rig.get()
    rig.vendor.status = 503
    await rig.fail(2)
    assert rig.state() is BreakerState.CLOSED


async def test_connect_errors_count(rig: Rig) -> None:
    rig.vendor.raises = httpx.ConnectError
    await rig.fail(3)
    assert rig.state() is BreakerState.OPEN


async def test_sustained_throttling_never_opens_the_circuit(rig: Rig) -> None:
    rig.vendor.status = 429
    rig.vendor.retry_after = "7"
    for _ in range(20):
        with pytest.raises(TransientError) as caught:
            await rig.get()
        assert caught.value.retry_after == 7.0  # the vendor's pace, not CIRCUIT_OPEN's
    rig.vendor.retry_after = None
    await rig.fail(5)  # 429 without Retry-After is throttling too
    assert rig.state() is BreakerState.CLOSED
    assert rig.vendor.calls == 25


async def test_throttling_neither_counts_nor_resets_failures(rig: Rig) -> None:
    await rig.fail(2)
    rig.vendor.status = 429
    await rig.fail(3)
    rig.vendor.status = 503
    await rig.fail(1)  # the third real failure in a row: throttled answers did not reset it
    assert rig.state() is BreakerState.OPEN


async def test_a_throttled_probe_leaves_the_circuit_half_open(rig: Rig) -> None:
    await rig.fail(3)
    rig.clock.advance(30)
    rig.vendor.status = 429
    await rig.fail(1)
    assert rig.state() is BreakerState.HALF_OPEN
    rig.vendor.status = 200
    await rig.get()  # the next caller probes at once
    assert rig.state() is BreakerState.CLOSED


def test_the_breaker_reads_the_adapters_throttle_decision_not_statuses_or_codes() -> None:
    # Salesforce's 403: throttling because the adapter's classifier says so.
    limit = TransientError(
        "salesforce",
        "query",
        "TotalRequests Limit exceeded.",
        status=403,
        code="REQUEST_LIMIT_EXCEEDED",
        throttle=Throttle.quota("Salesforce daily API request limit"),
    )
    # Zuora's request-limit category inside an HTTP 200: the status says nothing.
    in_body = TransientError(
        "zuora", "create_order", "limit", status=200, code="50000070", throttle=Throttle.rate("x")
    )
    # A code the breaker once listed, without the adapter's decision: no second guessing.
    unclassified = TransientError("netsuite", "get", "down", status=503, code="rate_limit")
    assert is_throttled(limit) and is_throttled(in_body)
    assert not is_throttled(unclassified)
    assert not is_throttled(RejectedError("stripe", "create", "no", status=429))
    # The HTTP layer's default reading: a transient 429 is a rate limit.
    response = httpx.Response(429, headers={"Retry-After": "3"})
    assert is_throttled(classify("get_customer", response))


async def test_unknown_outcome_counts_as_a_failure(rig: Rig) -> None:
    rig.vendor.raises = httpx.ReadTimeout
    for _ in range(3):
        with pytest.raises(UnknownOutcomeError):
            await rig.post()
    assert rig.state() is BreakerState.OPEN
    await rig.fail_fast()


async def test_half_open_lets_exactly_one_probe_through(rig: Rig) -> None:
    await rig.fail(3)
    rig.clock.advance(29.9)
    await rig.fail_fast()
    rig.clock.advance(0.1)
    assert rig.state() is BreakerState.HALF_OPEN

    rig.vendor.status = 200
    rig.vendor.gate = asyncio.Event()
    rig.vendor.entered.clear()
    probe = asyncio.create_task(rig.get())
    await asyncio.wait_for(rig.vendor.entered.wait(), timeout=1)
    assert rig.vendor.calls == 4

    # Concurrent callers while the probe is in flight fail fast, without a fixed wait.
    during = await rig.fail_fast()
    assert during.retry_after is None
    assert rig.state() is BreakerState.HALF_OPEN

    rig.vendor.gate.set()
    assert (await probe).status_code == 200
    assert rig.state() is BreakerState.CLOSED
    await rig.get()
    assert rig.vendor.calls == 5


async def test_probe_failure_reopens_with_doubled_period_capped(metrics: BreakerMetrics) -> None:
    rig = make_rig(
        metrics, failure_threshold=2, window_seconds=10, open_seconds=10, max_open_seconds=25
    )
    try:
        await rig.fail(2)
        assert (await rig.fail_fast()).retry_after == pytest.approx(10)
        rig.clock.advance(10)

        for expected in (20, 25, 25):
            await rig.fail(1)  # the probe
            assert rig.state() is BreakerState.OPEN
            error = await rig.fail_fast()
            assert error.retry_after == pytest.approx(expected)
            rig.clock.advance(expected - 0.5)
            assert (await rig.fail_fast()).retry_after == pytest.approx(0.5)
            rig.clock.advance(0.5)
            assert rig.state() is BreakerState.HALF_OPEN
        assert "failed 5 times" in error.message

        # A probe success closes it and resets the open period.
        rig.vendor.status = 200
        await rig.get()
        assert rig.state() is BreakerState.CLOSED
        rig.vendor.status = 503
        await rig.fail(2)
        assert (await rig.fail_fast()).retry_after == pytest.approx(10)
    finally:
        await rig.http.client.aclose()


async def test_a_cancelled_probe_frees_the_probe_slot(rig: Rig) -> None:
    await rig.fail(3)
    rig.clock.advance(30)
    rig.vendor.gate = asyncio.Event()
    rig.vendor.entered.clear()
    probe = asyncio.create_task(rig.get())
    await asyncio.wait_for(rig.vendor.entered.wait(), timeout=1)
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert rig.state() is BreakerState.HALF_OPEN

    rig.vendor.gate = None
    rig.vendor.status = 200
    await rig.get()
    assert rig.state() is BreakerState.CLOSED


async def test_a_stale_result_does_not_close_an_open_circuit(rig: Rig) -> None:
    rig.vendor.status = 200
    gate = rig.vendor.gate = asyncio.Event()
    slow = asyncio.create_task(rig.get())  # admitted while closed
    await asyncio.wait_for(rig.vendor.entered.wait(), timeout=1)
    rig.vendor.gate = None
    rig.vendor.status = 503
    await rig.fail(3)
    assert rig.state() is BreakerState.OPEN
    rig.vendor.status = 200
    gate.set()
    assert (await slow).status_code == 200
    assert rig.state() is BreakerState.OPEN
    assert "failed 3 times" in (await rig.fail_fast()).message


async def test_opening_logs_one_line(rig: Rig) -> None:
    with capture_logs() as logs:
        await rig.fail(3)
        await rig.fail_fast()
    assert logs == [
        {
            "event": "circuit breaker state changed",
            "log_level": "warning",
            "vendor": VENDOR,
            "from": "closed",
            "to": "open",
            "failures": 3,
            "open_seconds": 30,
        }
    ]


async def test_every_transition_logs(rig: Rig) -> None:
    with capture_logs() as logs:
        await rig.fail(3)
        rig.clock.advance(30)
        rig.vendor.status = 200
        await rig.get()
    assert [(line["from"], line["to"]) for line in logs] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]


def _points(reader: InMemoryMetricReader, name: str) -> dict[tuple[str, ...], float]:
    data = reader.get_metrics_data()
    assert data is not None
    found: dict[tuple[str, ...], float] = {}
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name != name:
                    continue
                for point in metric.data.data_points:
                    attributes = point.attributes or {}
                    key = tuple(str(attributes[k]) for k in sorted(attributes))
                    found[key] = point.value  # type: ignore[union-attr]
    return found


async def test_metrics_report_state_and_transitions() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    metrics = BreakerMetrics(provider.get_meter("revsync"))
    rig = make_rig(metrics, failure_threshold=2, open_seconds=30)
    other = CircuitBreaker("netsuite", metrics=metrics)
    try:
        gauge = "revsync_circuit_breaker_state"
        counter = "revsync_circuit_breaker_transitions"
        assert _points(reader, gauge) == {(VENDOR,): 0, ("netsuite",): 0}

        await rig.fail(2)
        assert _points(reader, gauge) == {(VENDOR,): 2, ("netsuite",): 0}
        assert _points(reader, counter) == {("open", VENDOR): 1}

        rig.clock.advance(30)
        assert _points(reader, gauge)[(VENDOR,)] == 1  # half-open: a probe may go

        await rig.fail(1)  # the probe fails: open again
        assert _points(reader, gauge)[(VENDOR,)] == 2
        assert _points(reader, counter) == {("open", VENDOR): 2, ("half_open", VENDOR): 1}

        rig.clock.advance(60)
        rig.vendor.status = 200
        await rig.get()
        assert _points(reader, gauge) == {(VENDOR,): 0, ("netsuite",): 0}
        assert _points(reader, counter) == {
            ("open", VENDOR): 2,
            ("half_open", VENDOR): 2,
            ("closed", VENDOR): 1,
        }
        assert other.state is BreakerState.CLOSED
    finally:
        await rig.http.client.aclose()
        provider.shutdown()


async def test_open_circuit_becomes_a_delayed_temporal_retry(rig: Rig) -> None:
    await rig.fail(3)
    rig.clock.advance(8)
    error = await rig.fail_fast()

    converted = to_application_error(error)
    assert converted.type == FailureType.VENDOR_TRANSIENT == "VendorTransient"
    assert not converted.non_retryable
    assert converted.next_retry_delay == timedelta(seconds=22)

    with pytest.raises(ApplicationError) as caught, vendor_call(VENDOR):
        await rig.get()
    assert caught.value.type == "VendorTransient"
    assert caught.value.next_retry_delay == timedelta(seconds=22)
    assert caught.value.details[0]["code"] == "CIRCUIT_OPEN"
