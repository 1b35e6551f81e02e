"""Metrics: the Temporal runtime every revsync process runs on, and revsync's business
metrics, named here once.

Every process that talks to Temporal (a worker, the gateway) builds one
:class:`~temporalio.runtime.Runtime` with :func:`build_runtime` and connects with it. With
``REVSYNC_METRICS_PORT`` set, the runtime serves Prometheus text at
``http://REVSYNC_METRICS_HOST:PORT/metrics``: the SDK's own metrics (``temporal_*``: task
latencies, poller and slot use, request failures) and the business metrics below, which
revsync records through the same runtime: workflows through ``workflow.metric_meter()`` (the
SDK drops what a replay records, so a saga replayed on another worker counts nothing twice),
activities through ``activity.metric_meter()``, the gateway through the runtime's meter.

The runtime also forwards the SDK core's own log lines (connection trouble, worker
warnings) to the ``temporalio.core`` Python logger, so they go through revsync's logging
set-up instead of being printed by the Rust core.

Counters are exposed with the OpenMetrics ``_total`` suffix and durations in seconds (the
SDK's latency histograms too). docs/observability.md lists every metric and the question it
answers.

This module imports nothing of revsync at run time: workflows (through the sandbox's
pass-through) and activities import it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Literal

from temporalio import activity
from temporalio.common import MetricMeter
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)

if TYPE_CHECKING:
    from revsync.settings import Settings

CORE_LOGGER = "temporalio.core"

MetricKind = Literal["counter", "histogram"]
VendorOutcome = Literal["done", "transient", "rejected", "unknown", "configuration"]
VENDOR_OUTCOMES: tuple[VendorOutcome, ...] = (
    "done",
    "transient",
    "rejected",
    "unknown",
    "configuration",
)


@dataclass(frozen=True)
class Metric:
    """One business metric: its name as recorded (Prometheus adds ``_total`` to counters),
    its kind, the labels every recording carries (besides the SDK's own ``namespace``,
    ``task_queue`` and ``workflow_type``/``activity_type``) and, for histograms, the bucket
    bounds in seconds."""

    name: str
    kind: MetricKind
    description: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()

    @property
    def exposed(self) -> str:
        """The name a Prometheus scrape shows (counters get ``_total``)."""
        return f"{self.name}_total" if self.kind == "counter" else self.name


_MINUTE, _HOUR, _DAY = 60.0, 3600.0, 86400.0

QUOTES_RECEIVED = Metric(
    "revsync_quotes_received", "counter", "Quote-to-cash sagas started (one per quote)"
)
QUOTES_BOOKED = Metric(
    "revsync_quotes_booked", "counter", "Quotes booked in ERP and billing (saga BOOKED)"
)
QUOTES_REJECTED = Metric(
    "revsync_quotes_rejected",
    "counter",
    "Quotes refused before anything was booked (saga REJECTED), by the refusing step",
    ("step",),
)
QUOTES_COMPENSATED = Metric(
    "revsync_quotes_compensated",
    "counter",
    "Quotes unwound after a partial booking (saga COMPENSATED), by the failing step",
    ("step",),
)
QUOTES_PARKED = Metric(
    "revsync_quotes_parked",
    "counter",
    "Times a saga parked for an operator (NEEDS_ATTENTION), by the blocked step",
    ("step",),
)
APPROVAL_WAIT = Metric(
    "revsync_approval_wait_seconds",
    "histogram",
    "From AWAITING_APPROVAL to the decision (approve, reject, expire)",
    ("decision",),
    (
        _MINUTE,
        5 * _MINUTE,
        15 * _MINUTE,
        30 * _MINUTE,
        _HOUR,
        2 * _HOUR,
        4 * _HOUR,
        8 * _HOUR,
        _DAY,
        2 * _DAY,
        4 * _DAY,
        7 * _DAY,
    ),
)
BOOKING_LATENCY = Metric(
    "revsync_booking_latency_seconds",
    "histogram",
    "From the saga's start (the accepted quote) to BOOKED",
    ("approval", "parked"),
    (
        0.5,
        1.0,
        2.0,
        5.0,
        10.0,
        30.0,
        _MINUTE,
        5 * _MINUTE,
        15 * _MINUTE,
        _HOUR,
        4 * _HOUR,
        _DAY,
        3 * _DAY,
        7 * _DAY,
    ),
)
VENDOR_CALLS = Metric(
    "revsync_vendor_calls",
    "counter",
    "Vendor calls made by an activity attempt, by vendor and failure-taxonomy outcome",
    ("vendor", "outcome"),
)
VENDOR_QUOTA_EXHAUSTED = Metric(
    "revsync_vendor_quota_exhausted",
    "counter",
    "Vendor calls refused because a daily API request quota is spent (Salesforce "
    "REQUEST_LIMIT_EXCEEDED, HubSpot DAILY), by vendor",
    ("vendor",),
)
WEBHOOK_DELIVERIES = Metric(
    "revsync_webhook_deliveries",
    "counter",
    "Webhook deliveries at the gateway, by source and outcome",
    ("source", "outcome"),
)

WEBHOOK_EVENTS_IGNORED = Metric(
    "revsync_webhook_events_ignored",
    "counter",
    "Verified webhook events acknowledged and handed on to nothing, by source and reason "
    "(own_write: revsync's own write, echoed back by the vendor)",
    ("source", "reason"),
)

EVENT_DELIVERIES = Metric(
    "revsync_event_deliveries",
    "counter",
    "Business-event deliveries to subscribers, by subscriber and failure-taxonomy outcome",
    ("subscriber", "outcome"),
)

INVOICES = Metric(
    "revsync_invoices",
    "counter",
    "Invoice-to-revenue transitions: receivable posted, paid, overdue, voided, parked",
    ("event",),
)

SLA_BREACHES = Metric(
    "revsync_sla_breaches",
    "counter",
    "Business SLAs missed (booking, approval), one per saga and SLA",
    ("sla",),
)

ALL_METRICS: tuple[Metric, ...] = (
    QUOTES_RECEIVED,
    QUOTES_BOOKED,
    QUOTES_REJECTED,
    QUOTES_COMPENSATED,
    QUOTES_PARKED,
    APPROVAL_WAIT,
    BOOKING_LATENCY,
    VENDOR_CALLS,
    VENDOR_QUOTA_EXHAUSTED,
    WEBHOOK_DELIVERIES,
    WEBHOOK_EVENTS_IGNORED,
    EVENT_DELIVERIES,
    INVOICES,
    SLA_BREACHES,
)


def _attributes(metric: Metric, labels: Mapping[str, str]) -> dict[str, str]:
    if tuple(sorted(labels)) != tuple(sorted(metric.labels)):
        raise ValueError(
            f"{metric.name} takes labels {list(metric.labels)}, was given {sorted(labels)}"
        )
    return dict(labels)


def count(meter: MetricMeter, metric: Metric, **labels: str) -> None:
    """Add one to the counter ``metric``, with exactly its labels."""
    assert metric.kind == "counter", metric.name
    attributes = _attributes(metric, labels)
    meter.create_counter(metric.name, metric.description).add(1, attributes or None)


def observe(meter: MetricMeter, metric: Metric, value: timedelta, **labels: str) -> None:
    """Record a duration (never negative) in the histogram ``metric``."""
    assert metric.kind == "histogram", metric.name
    attributes = _attributes(metric, labels)
    meter.create_histogram_timedelta(metric.name, metric.description).record(
        max(value, timedelta(0)), attributes or None
    )


def record_vendor_call(vendor: str, outcome: VendorOutcome) -> None:
    """Count one vendor call of the running activity (nothing outside an activity)."""
    if activity.in_activity():
        count(activity.metric_meter(), VENDOR_CALLS, vendor=vendor, outcome=outcome)


def record_quota_exhausted(vendor: str) -> None:
    """Count one call of the running activity that a spent daily quota refused."""
    if activity.in_activity():
        count(activity.metric_meter(), VENDOR_QUOTA_EXHAUSTED, vendor=vendor)


def telemetry_config(settings: Settings) -> TelemetryConfig:
    """Core logs forwarded to Python logging; Prometheus on the configured port, if any."""
    logging_config = LoggingConfig(
        filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
        forwarding=LogForwardingConfig(
            logger=logging.getLogger(CORE_LOGGER), append_target_to_name=False
        ),
    )
    if settings.metrics_port is None:
        return TelemetryConfig(logging=logging_config)
    return TelemetryConfig(
        logging=logging_config,
        metrics=PrometheusConfig(
            bind_address=metrics_address(settings),
            counters_total_suffix=True,
            durations_as_seconds=True,
            histogram_bucket_overrides={
                m.name: list(m.buckets) for m in ALL_METRICS if m.kind == "histogram"
            },
        ),
    )


def metrics_address(settings: Settings) -> str:
    return f"{settings.metrics_host}:{settings.metrics_port}"


class MetricsEndpointError(RuntimeError):
    """The metrics endpoint cannot be served (port in use, bad address)."""


def build_runtime(settings: Settings) -> Runtime:
    """The runtime for one process: pass it to :func:`revsync.temporal.connect`. Build one
    per process (each runtime has its own thread pool and, with metrics, its own port)."""
    try:
        return Runtime(telemetry=telemetry_config(settings))
    except ValueError as error:
        raise MetricsEndpointError(
            f"cannot serve metrics on {metrics_address(settings)} "
            f"(REVSYNC_METRICS_HOST, REVSYNC_METRICS_PORT): {error}"
        ) from error
