"""All configuration, from ``REVSYNC_*`` environment variables (or a ``.env`` file).

Defaults run the local stack: the dev server on 7233, the sandbox emulating every vendor on
8100. Pointing revsync at real vendors is configuration only: base URLs and credentials.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.saga import SagaPolicy


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="REVSYNC_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # Temporal
    temporal_address: str = Field(
        default="localhost:7233", description="Temporal frontend host:port"
    )
    temporal_namespace: str = "default"
    temporal_ui_port: int = Field(default=8233, description="Web UI port of the local dev server")
    data_dir: Path = Field(default=Path(".revsync"), description="Local state (dev server SQLite)")

    # Local processes
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000
    sandbox_host: str = "127.0.0.1"
    sandbox_port: int = 8100

    # Inbound webhooks
    cpq_webhook_secret: SecretStr = Field(
        default=SecretStr("whsec_dev_only_change_me"),
        description="HMAC secret the CPQ signs quote-accepted webhooks with",
    )
    webhook_tolerance_seconds: int = Field(default=300, ge=1)

    # Business rules every new saga runs under (approval policy, SLAs, retry budgets)
    saga_policy: SagaPolicy = Field(
        default_factory=SagaPolicy,
        description='JSON, e.g. {"approval": {"max_discount_percent": 25}}',
    )

    # Vendors (defaults point at the local sandbox)
    salesforce_base_url: str = "http://127.0.0.1:8100/salesforce"
    salesforce_api_version: str = "v61.0"
    salesforce_access_token: SecretStr = SecretStr("sandbox-salesforce-token")
    stripe_base_url: str = "http://127.0.0.1:8100/stripe"
    stripe_api_key: SecretStr = SecretStr("sk_test_sandbox")
    netsuite_base_url: str = "http://127.0.0.1:8100/netsuite"
    netsuite_access_token: SecretStr = SecretStr("sandbox-netsuite-token")

    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", description="console when attached to a terminal, else JSON lines"
    )

    http_timeout_seconds: float = Field(default=20.0, gt=0, description="Per vendor request")

    # Workers: one process per task queue, each tuned to its downstream's limits
    orchestration_max_concurrent_workflow_tasks: int = Field(default=100, ge=1)
    crm_max_concurrent_activities: int = Field(
        default=20, ge=1, description="Salesforce allows 25 concurrent long-running requests"
    )
    billing_max_concurrent_activities: int = Field(default=25, ge=1)
    erp_max_concurrent_activities: int = Field(
        default=5, ge=1, description="NetSuite's base account concurrency limit is 5"
    )
    worker_shutdown_grace_seconds: float = Field(
        default=30.0, ge=0, description="Time in-flight activities get to finish on SIGTERM"
    )

    @model_validator(mode="after")
    def _vendors_follow_the_sandbox(self) -> Self:
        """A vendor base URL left unset points at the sandbox, wherever the sandbox listens."""
        for vendor in ("salesforce", "stripe", "netsuite"):
            name = f"{vendor}_base_url"
            if name not in self.model_fields_set:
                setattr(self, name, f"{self.sandbox_url}/{vendor}")
        return self

    @property
    def gateway_url(self) -> str:
        return f"http://{self.gateway_host}:{self.gateway_port}"

    @property
    def sandbox_url(self) -> str:
        return f"http://{self.sandbox_host}:{self.sandbox_port}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
