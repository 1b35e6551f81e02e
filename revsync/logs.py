"""structlog set-up shared by every revsync process: JSON lines, or a readable console
renderer when attached to a terminal (``REVSYNC_LOG_FORMAT`` decides).

One handler on the root logger writes every line, whether it comes from structlog or from a
standard-library logger (temporalio's ``workflow.logger``/``activity.logger``, uvicorn,
httpx): standard-library records go through structlog's ``ProcessorFormatter``, so both come
out as the same lines with the same fields. Each line carries, where they apply, the
correlation ids:

- ``trace_id``/``span_id`` of the current OpenTelemetry span (:mod:`revsync.telemetry`);
- ``workflow_id``, ``run_id``, ``workflow_type``, ``task_queue`` inside a workflow or an
  activity, plus ``activity``, ``activity_id`` and ``attempt`` inside an activity;
- ``quote_id`` (read from a quote-to-cash workflow id where not given), and whatever the
  code binds or passes: ``vendor``/``operation`` around a vendor call, ``customer_id``,
  ``invoice_id``...

Workflow code logs through ``workflow.logger``, which is silent while the workflow replays,
so a line is written once however often its workflow task is replayed.

Secrets never reach a log line. Settings hold them as ``SecretStr`` (which prints as
``**********``), and as a second line of defence every event, from structlog and from the
standard library loggers alike, passes :func:`redact`: values of keys that name a secret, any
configured secret value, bearer tokens and card numbers are masked before anything is
written.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, Literal, TextIO

import structlog
import temporalio.activity
import temporalio.workflow
from opentelemetry import trace
from structlog.stdlib import ExtraAdder, ProcessorFormatter

from workflows.visibility import workflow_id_for_quote

LogFormat = Literal["auto", "json", "console"]

REDACTED = "[redacted]"
_SECRET_KEY = re.compile(
    r"(authorization|token|secret|signature|password|passwd|api[_-]?key|cookie|private[_-]?key)",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+")
_CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
_known_secrets: list[str] = []


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _mask_card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    if 13 <= len(digits) <= 19 and _luhn(digits):
        return f"[card ****{digits[-4:]}]"
    return match.group(0)


def redact_text(text: str) -> str:
    """``text`` with every configured secret, bearer token and card number masked."""
    for secret in _known_secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = _BEARER.sub(rf"\1 {REDACTED}", text)
    return _CARD.sub(_mask_card, text)


def _redact_value(key: str, value: Any) -> Any:
    if _SECRET_KEY.search(key) and value not in (None, "", 0, False):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(key, v) for v in value]
    return value


def redact(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: mask secrets in every key and value of the event."""
    for key in list(event_dict):
        if key == "event":
            event_dict[key] = redact_text(str(event_dict[key]))
        else:
            event_dict[key] = _redact_value(key, event_dict[key])
    return event_dict


class RedactingFilter(logging.Filter):
    """The same masking for standard-library log records."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_info, record.exc_text = None, redact_text(text)
        return True


def register_secrets(values: Iterable[str]) -> None:
    """Mask these exact values wherever they appear (short values are ignored: masking
    every "1" would ruin the logs and protect nothing)."""
    for value in values:
        if len(value) >= 8 and value not in _known_secrets:
            _known_secrets.append(value)
    _known_secrets.sort(key=len, reverse=True)


def add_trace_ids(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: the current span's ``trace_id`` and ``span_id`` (hex, as trace
    backends show them), when there is one."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", trace.format_trace_id(context.trace_id))
        event_dict.setdefault("span_id", trace.format_span_id(context.span_id))
    return event_dict


_QUOTE_WORKFLOW_PREFIX = workflow_id_for_quote("")
# temporalio's logger details -> our field names.
_WORKFLOW_FIELDS = {
    "workflow_id": "workflow_id",
    "run_id": "run_id",
    "workflow_type": "workflow_type",
    "task_queue": "task_queue",
}
_ACTIVITY_FIELDS = {
    "workflow_id": "workflow_id",
    "workflow_run_id": "run_id",
    "workflow_type": "workflow_type",
    "task_queue": "task_queue",
    "activity_type": "activity",
    "activity_id": "activity_id",
    "attempt": "attempt",
}


def _activity_details() -> dict[str, Any] | None:
    if not temporalio.activity.in_activity():
        return None
    info = temporalio.activity.info()
    return {
        "workflow_id": info.workflow_id,
        "workflow_run_id": info.workflow_run_id,
        "workflow_type": info.workflow_type,
        "task_queue": info.task_queue,
        "activity_type": info.activity_type,
        "activity_id": info.activity_id,
        "attempt": info.attempt,
    }


def add_temporal_ids(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: flat workflow/activity correlation ids.

    From the ``temporal_workflow``/``temporal_activity`` dicts temporalio's loggers attach to
    their records, else from the running activity; ``quote_id`` from a quote-to-cash
    workflow id. Values given explicitly are kept."""
    sources = (
        (event_dict.pop("temporal_workflow", None), _WORKFLOW_FIELDS),
        (event_dict.pop("temporal_activity", None) or _activity_details(), _ACTIVITY_FIELDS),
    )
    for details, fields in sources:
        if isinstance(details, dict):
            for theirs, ours in fields.items():
                if details.get(theirs) is not None:
                    event_dict.setdefault(ours, details[theirs])
    workflow_id = event_dict.get("workflow_id")
    if isinstance(workflow_id, str) and workflow_id.startswith(_QUOTE_WORKFLOW_PREFIX):
        event_dict.setdefault("quote_id", workflow_id[len(_QUOTE_WORKFLOW_PREFIX) :])
    return event_dict


def drop_internal_extras(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Remove extras libraries attach for their own formatters (uvicorn's coloured copy of
    the message, temporalio's ``__temporal_*`` markers)."""
    for key in [k for k in event_dict if k.startswith("__") or k == "color_message"]:
        del event_dict[key]
    return event_dict


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a line is written (as the standard
    library's last-resort handler does), so redirected or captured stderr gets the lines."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._fixed = stream
        super().__init__(stream)

    @property
    def stream(self) -> TextIO:
        return self._fixed or sys.stderr

    @stream.setter
    def stream(self, value: TextIO | None) -> None:
        pass


def configure_logging(
    level: int = logging.INFO,
    log_format: LogFormat = "auto",
    secrets: Iterable[str] = (),
    *,
    stream: TextIO | None = None,
) -> None:
    """Send every log line of this process, structlog's and the standard library's, to
    ``stream`` (stderr by default) as JSON or console lines with the correlation ids.

    Calling it again replaces the previous set-up."""
    register_secrets(secrets)
    target = stream or sys.stderr
    console = target.isatty() if log_format == "auto" else log_format == "console"
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer() if console else structlog.processors.JSONRenderer()
    )
    shared: list[structlog.typing.Processor] = [
        # Before the bound context vars: the current span's ids win over bound ones.
        add_trace_ids,
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_temporal_ids,
    ]
    structlog.configure(
        processors=[*shared, ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    handler = _StderrHandler(stream)
    handler.setFormatter(
        ProcessorFormatter(
            foreign_pre_chain=[ExtraAdder(), drop_internal_extras, *shared],
            processors=[
                ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                redact,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for previous in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(previous)
    root.addHandler(handler)
    root.setLevel(level)
    # One line per HTTP request is noise in every process (and URLs can carry ids).
    logging.getLogger("httpx").setLevel(max(level, logging.WARNING))
    # The ids are fields of every line: do not also append them to the message text.
    temporalio.workflow.logger.workflow_info_on_message = False
    temporalio.activity.logger.activity_info_on_message = False
