"""The log redactor: secrets, bearer tokens and card numbers never reach a log line."""

from __future__ import annotations

import io
import json
import logging
import sys

import structlog

from revsync.logs import (
    REDACTED,
    RedactingFilter,
    configure_logging,
    redact,
    redact_text,
    register_secrets,
)

SECRET = "whsec_unit_test_secret_value"


def test_values_under_secret_keys_are_masked_wherever_they_nest():
    register_secrets([])
    event = redact(
        None,
        "info",
        {
            "event": "calling vendor",
            "api_key": "sk_live_123",
            "headers": {"Authorization": "Basic abc", "Accept": "json"},
            "items": [{"token": "t"}],
            "count": 3,
        },
    )
    assert event["api_key"] == REDACTED
    assert event["headers"] == {"Authorization": REDACTED, "Accept": "json"}
    assert event["items"] == [{"token": REDACTED}]
    assert event["count"] == 3


def test_configured_secrets_and_bearer_tokens_are_masked_inside_text():
    register_secrets([SECRET, "short"])
    text = redact_text(f"retry with {SECRET} and Authorization: Bearer rvs_abc.def-123")
    assert SECRET not in text
    assert "rvs_abc" not in text
    assert redact_text("a short word") == "a short word"  # too short to register


def test_card_numbers_are_masked_only_when_they_are_card_numbers():
    assert redact_text("card 4242 4242 4242 4242 declined") == "card [card ****4242] declined"
    assert redact_text("pan=4000056655665556") == "pan=[card ****5556]"
    # Luhn fails, or too short: an order number, not a card.
    assert redact_text("order 4242424242424241") == "order 4242424242424241"
    assert redact_text("quote 123456789") == "quote 123456789"


def test_standard_library_records_are_redacted_message_and_traceback():
    register_secrets([SECRET])
    try:
        raise RuntimeError(f"vendor said {SECRET}")
    except RuntimeError:
        record = logging.getLogger("httpx").makeRecord(
            "httpx", logging.WARNING, __file__, 1, "POST with %s", (SECRET,), sys.exc_info()
        )
    assert RedactingFilter().filter(record)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.handle(record)
    assert SECRET not in stream.getvalue()
    assert stream.getvalue().count(REDACTED) == 2


def test_structlog_lines_are_redacted(capsys):
    structlog.reset_defaults()
    configure_logging(log_format="json", secrets=[SECRET])
    structlog.get_logger("t").warning("refused", signature="v1=abc", detail=f"key {SECRET}")
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["signature"] == REDACTED
    assert line["detail"] == f"key {REDACTED}"
