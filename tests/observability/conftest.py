"""Fixtures for the observability tests: finished spans in memory, log lines as JSON."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
import temporalio.activity
import temporalio.workflow
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from revsync.logs import configure_logging
from revsync.telemetry import configure_tracing


@pytest.fixture(scope="package")
def spans() -> Iterator[InMemorySpanExporter]:
    """Every span this test process finishes while these tests run (the process's tracer
    provider is the one production sets up, with an in-memory exporter added)."""
    exporter = InMemorySpanExporter()
    processor = SimpleSpanProcessor(exporter)
    configure_tracing("revsync-tests", processors=[processor])
    yield exporter
    processor.shutdown()  # the provider stays (it cannot be replaced); spans are dropped


class LogSink(io.StringIO):
    """The stream the log handler writes to (under the handler's lock); its lines parsed
    back as JSON."""

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.getvalue().splitlines() if line.strip()]


@pytest.fixture
def log_lines() -> Iterator[LogSink]:
    """Every log line of the process, as revsync.logs writes it in production (JSON), while
    the test runs; the logging set-up from before is restored afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    sink = LogSink()
    configure_logging(level=logging.INFO, log_format="json", stream=sink)
    try:
        yield sink
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        structlog.reset_defaults()
        temporalio.workflow.logger.workflow_info_on_message = True
        temporalio.activity.logger.activity_info_on_message = True
