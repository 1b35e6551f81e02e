"""`revsync dev` subscribes the sandbox to every business event, with a generated secret."""

from __future__ import annotations

from pathlib import Path

from domain.event_contracts import EventSubscriber
from revsync.devsecrets import DEV_SUBSCRIBER, ensure_dev_secrets, with_secrets
from revsync.settings import Settings


def test_the_sandbox_subscriber_is_generated_once_and_its_secret_redacted(tmp_path: Path):
    settings = Settings(_env_file=None, data_dir=tmp_path, sandbox_port=8123)
    first = ensure_dev_secrets(settings)
    assert ensure_dev_secrets(settings) == first  # the same secret on every start

    ready = with_secrets(settings, first)
    (sandbox,) = ready.event_subscribers
    assert sandbox.name == DEV_SUBSCRIBER
    assert sandbox.url == f"http://127.0.0.1:8123/events/{DEV_SUBSCRIBER}"
    assert sandbox.wants("com.revsync.quote.booked.v1")
    secret = sandbox.secret.get_secret_value()
    assert len(secret) > 20
    assert secret in ready.secret_values()


def test_configured_subscribers_are_never_replaced(tmp_path: Path):
    mine = EventSubscriber.model_validate(
        {"name": "finance", "url": "https://f.example.com/e", "secret": "whsec_mine"}
    )
    settings = Settings(_env_file=None, data_dir=tmp_path, event_subscribers=[mine])
    assert "REVSYNC_EVENT_SUBSCRIBERS" not in ensure_dev_secrets(settings)
