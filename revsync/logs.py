"""structlog set-up shared by every revsync process: JSON lines, or a readable console
renderer when attached to a terminal (``REVSYNC_LOG_FORMAT`` decides).

Secrets never reach a log line. Settings hold them as ``SecretStr`` (which prints as
``**********``), and as a second line of defence every event, from structlog and from the
standard library loggers (temporalio, uvicorn, httpx) alike, passes :func:`redact`: values
of keys that name a secret, any configured secret value, bearer tokens and card numbers
are masked before anything is written.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, Literal

import structlog

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


def configure_logging(
    level: int = logging.INFO, log_format: LogFormat = "auto", secrets: Iterable[str] = ()
) -> None:
    register_secrets(secrets)
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    # One line per HTTP request is noise in every process (and URLs can carry ids).
    logging.getLogger("httpx").setLevel(max(level, logging.WARNING))
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
    console = sys.stderr.isatty() if log_format == "auto" else log_format == "console"
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer() if console else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
