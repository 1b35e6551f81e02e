"""structlog set-up shared by every revsync process: JSON lines, or a readable console
renderer when attached to a terminal (``REVSYNC_LOG_FORMAT`` decides). Never log secrets:
settings hold them as SecretStr."""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog

LogFormat = Literal["auto", "json", "console"]


def configure_logging(level: int = logging.INFO, log_format: LogFormat = "auto") -> None:
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
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
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
