"""The webhook source tests' fixtures (settings with every secret, a recording client)."""

from tests.gateway.test_webhook_sources import client, settings  # noqa: F401
