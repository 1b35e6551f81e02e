"""All configuration, from ``REVSYNC_*`` environment variables (or a ``.env`` file).

Defaults run the local stack: the dev server on 7233, the sandbox emulating every vendor on
8100. Pointing revsync at real vendors is configuration only: base URLs and credentials.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.event_contracts import EventSubscriber
from domain.invoice_contracts import InvoicePolicy, TimeZoneName
from domain.master_contracts import MasterPolicy
from domain.saga import SagaPolicy
from revsync.auth import StaffToken

DEV_SECRETS_FILE = Path(".revsync") / "dev-secrets.env"

# Every vendor with an adapter; each has a `<vendor>_base_url` that follows the sandbox unless set.
VENDORS = ("salesforce", "hubspot", "stripe", "zuora", "netsuite", "sap", "dynamics")

VendorMode = Literal["live", "shadow"]
_MODE = "live (writes) or shadow (records what it would write; docs/shadow-mode.md)"


# The audiences Salesforce's JWT bearer flow takes: the login server of production orgs, that
# of sandbox orgs (an Experience Cloud site's URL is the other one).
SALESFORCE_LOGIN = "https://login.salesforce.com"
SALESFORCE_TEST_LOGIN = "https://test.salesforce.com"


def salesforce_audience_problem(audience: str) -> str | None:
    """Why ``audience`` cannot be a Salesforce JWT's ``aud``, or None. The token endpoint
    refuses an org's own hosts (its My Domain, ``*.my.salesforce.com``, or an instance such
    as ``na34.salesforce.com``) with ``invalid_grant`` "audience is invalid", even though the
    token request itself goes to the My Domain."""
    parts = urlsplit(audience.strip())
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or not host:
        return "must be an https URL, e.g. https://login.salesforce.com"
    login_servers = {urlsplit(u).hostname for u in (SALESFORCE_LOGIN, SALESFORCE_TEST_LOGIN)}
    if host in login_servers:
        return None if parts.path in ("", "/") else "names a login server with a path"
    if host.endswith((".salesforce.com", ".lightning.force.com")):
        return (
            f"names the org's own host {host}: use https://login.salesforce.com "
            "(https://test.salesforce.com for a sandbox org)"
        )
    return None  # an Experience Cloud site's URL


class MissingSetting(Exception):
    """A setting this process needs is not configured. The message names it."""

    def __init__(self, setting: str, why: str) -> None:
        self.setting = f"REVSYNC_{setting.upper()}"
        super().__init__(f"{self.setting} is not set: {why}")


class InvalidSetting(MissingSetting):
    """A setting holds a value this process cannot use. The message names it and says why."""

    def __init__(self, setting: str, value: str, why: str) -> None:
        self.setting = f"REVSYNC_{setting.upper()}"
        self.value = value
        Exception.__init__(self, f"{self.setting}={value!r}: {why}")


def secret_list(value: SecretStr | None) -> list[str]:
    """A comma-separated secret setting (several values while one is rotated) as a list."""
    if value is None:
        return []
    return [part.strip() for part in value.get_secret_value().split(",") if part.strip()]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="REVSYNC_",
        # `revsync dev` writes generated local secrets to the first; `.env` overrides them.
        env_file=(DEV_SECRETS_FILE, ".env"),
        env_file_encoding="utf-8",
        extra="ignore",
    )

    # Temporal
    temporal_address: str = Field(
        default="localhost:7233", description="Temporal frontend host:port"
    )
    temporal_namespace: str = "default"
    temporal_ui_port: int = Field(default=8233, description="Web UI port of the local dev server")
    data_dir: Path = Field(default=Path(".revsync"), description="Local state (dev server SQLite)")
    temporal_tls: bool = Field(
        default=False, description="Connect with TLS (implied by the certificate settings)"
    )
    temporal_tls_ca_cert: Path | None = Field(
        default=None, description="PEM CA bundle to verify the server (system roots if unset)"
    )
    temporal_tls_client_cert: Path | None = Field(
        default=None, description="PEM client certificate for mTLS"
    )
    temporal_tls_client_key: Path | None = Field(
        default=None, description="PEM private key of the client certificate"
    )
    temporal_tls_server_name: str | None = Field(
        default=None, description="Override the TLS server name (SNI)"
    )
    temporal_api_key: SecretStr | None = Field(
        default=None, description="Temporal Cloud API key (implies TLS)"
    )

    # Payload encryption (every workflow/activity payload, AES-256-GCM)
    payload_keys: SecretStr | None = Field(
        default=None,
        description="Comma-separated KEY_ID:BASE64 (32-byte keys); the first encrypts, all "
        "decrypt. `revsync keys new` makes one",
    )

    # Local processes
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000
    sandbox_host: str = "127.0.0.1"
    sandbox_port: int = 8100

    # Inbound webhooks
    cpq_webhook_secret: SecretStr | None = Field(
        default=None,
        description="HMAC secret(s) the CPQ signs quote-accepted webhooks with; "
        "comma-separated during rotation",
    )
    stripe_webhook_secret: SecretStr | None = Field(
        default=None, description="Stripe endpoint signing secret(s) (whsec_...), comma-separated"
    )
    erp_webhook_secret: SecretStr | None = Field(
        default=None,
        description="HMAC secret(s) the ERP signs customer-changed webhooks with (revsync's "
        "scheme, X-Revsync-Signature); comma-separated during rotation",
    )
    hubspot_client_secret: SecretStr | None = Field(
        default=None, description="HubSpot app client secret (X-HubSpot-Signature-v3)"
    )
    zuora_callout_secret: SecretStr | None = Field(
        default=None,
        description="Shared secret(s) Zuora's callout templates send in the "
        "X-Revsync-Callout-Secret header; comma-separated during rotation",
    )
    salesforce_org_ids: list[str] = Field(
        default_factory=list,
        description="Salesforce organisation ids allowed to send Outbound Messages (JSON list)",
    )
    webhook_tolerance_seconds: int = Field(
        default=300, ge=1, description="How old a signed webhook timestamp may be"
    )
    webhook_max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="Larger webhook bodies are refused (413)"
    )
    public_base_url: str | None = Field(
        default=None,
        description="The gateway's URL as senders see it behind a proxy (HubSpot signs it)",
    )

    # Operator actions through the gateway's ops API
    operator_tokens: list[StaffToken] = Field(
        default_factory=list,
        description='JSON list of {"name", "roles", "token_sha256"}; `revsync tokens new` '
        "prints one",
    )
    operator_token: SecretStr | None = Field(
        default=None, description="The CLI user's own token for approve/reject/resolve"
    )
    codec_cors_origins: list[str] = Field(
        default_factory=list,
        description="Web UI origins allowed to call the codec server (JSON list); "
        "the local Web UI when unset",
    )

    # Business rules every new saga runs under (approval policy, SLAs, retry budgets)
    saga_policy: SagaPolicy = Field(
        default_factory=SagaPolicy,
        description='JSON, e.g. {"approval": {"max_discount_percent": 25}}',
    )
    customer_master_policy: MasterPolicy = Field(
        default_factory=MasterPolicy,
        description='JSON, e.g. {"history_limit": 5000, "relink_after": "PT30M"}',
    )
    invoice_policy: InvoicePolicy = Field(
        default_factory=InvoicePolicy,
        description='JSON, e.g. {"grace": "P10D", "periods_per_run": 12}',
    )
    accounting_timezone: TimeZoneName = Field(
        default="UTC",
        description="IANA zone of the books: invoice dates, period closes and due dates",
    )

    # Which vendor serves each port (adapters/registry.py lists them; a worker refuses others)
    crm: str = Field(default="salesforce", description="CRM vendor: salesforce or hubspot")
    billing: str = Field(default="stripe", description="Billing vendor: stripe or zuora")
    erp: str = Field(default="netsuite", description="ERP vendor: netsuite, sap or dynamics")

    # Shadow mode (docs/shadow-mode.md): per vendor, `live` writes; `shadow` reads as usual
    # and records every write revsync would make instead of making it
    salesforce_mode: VendorMode = Field(default="live", description=_MODE)
    hubspot_mode: VendorMode = Field(default="live", description=_MODE)
    stripe_mode: VendorMode = Field(default="live", description=_MODE)
    zuora_mode: VendorMode = Field(default="live", description=_MODE)
    netsuite_mode: VendorMode = Field(default="live", description=_MODE)
    sap_mode: VendorMode = Field(default="live", description=_MODE)
    dynamics_mode: VendorMode = Field(default="live", description=_MODE)
    shadow_store: Path | None = Field(
        default=None,
        description="SQLite file of shadow recordings, shared by every process; unset: "
        "shadow.sqlite3 under REVSYNC_DATA_DIR",
    )
    shadow_compare_after_minutes: int = Field(
        default=60,
        ge=0,
        description="How old a recording must be before it is compared with what the existing "
        "integration wrote (it may write later than revsync would have)",
    )

    # Vendors (defaults point at the local sandbox)
    salesforce_base_url: str = "http://127.0.0.1:8100/salesforce"
    salesforce_api_version: str = "v61.0"
    salesforce_access_token: SecretStr = SecretStr("sandbox-salesforce-token")
    stripe_base_url: str = "http://127.0.0.1:8100/stripe"
    stripe_api_key: SecretStr = SecretStr("sk_test_sandbox")
    netsuite_base_url: str = "http://127.0.0.1:8100/netsuite"
    hubspot_base_url: str = Field(
        default="http://127.0.0.1:8100/hubspot", description="https://api.hubapi.com"
    )
    zuora_base_url: str = Field(
        default="http://127.0.0.1:8100/zuora", description="e.g. https://rest.zuora.com"
    )
    # Zuora: an OAuth client of an API user (client credentials; docs/adapters.md, "Zuora")
    zuora_client_id: str = Field(
        default="sandbox-zuora-client", description="Client ID of the Zuora OAuth client"
    )
    zuora_client_secret: SecretStr = Field(
        default=SecretStr("sandbox-zuora-secret"), description="Its client secret"
    )
    sap_base_url: str = Field(
        default="http://127.0.0.1:8100/sap",
        description="https://<tenant>-api.s4hana.cloud.sap (OData services under /sap/opu/odata)",
    )
    dynamics_base_url: str = Field(
        default="http://127.0.0.1:8100/dynamics",
        description="the environment URL, e.g. https://<org>.crm.dynamics.com",
    )
    netsuite_access_token: SecretStr = SecretStr("sandbox-netsuite-token")
    netsuite_deferred_revenue_account: str = Field(
        default="2400", min_length=1, description="Account number revenue journals debit"
    )
    netsuite_revenue_account: str = Field(
        default="4000", min_length=1, description="Account number revenue journals credit"
    )
    netsuite_tax_code: str = Field(
        default="BILLED-TAX",
        min_length=1,
        description="Name of the SuiteTax tax code billing's tax is recorded under",
    )
    # How the Salesforce and NetSuite adapters get their tokens (docs/adapters.md, "Auth"):
    # `static` sends the access token above; the OAuth modes fetch, cache and refresh tokens.
    salesforce_auth: Literal["static", "client_credentials", "jwt"] = Field(
        default="static", description="static, client_credentials or jwt (JWT bearer)"
    )
    salesforce_client_id: str | None = Field(
        default=None, description="Consumer key of the connected or external client app"
    )
    salesforce_client_secret: SecretStr | None = Field(
        default=None, description="Consumer secret (client_credentials)"
    )
    salesforce_private_key_path: Path | None = Field(
        default=None, description="PEM RSA key whose certificate the app holds (jwt)"
    )
    salesforce_username: str | None = Field(
        default=None, description="Integration user the JWT names as sub (jwt)"
    )
    salesforce_token_url: str | None = Field(
        default=None, description="Token endpoint; unset: the base URL's /services/oauth2/token"
    )
    salesforce_jwt_audience: str = Field(
        default=SALESFORCE_LOGIN,
        description="JWT aud (jwt): https://login.salesforce.com, https://test.salesforce.com "
        "for a sandbox org; never the My Domain or instance URL",
    )
    netsuite_auth: Literal["static", "client_credentials"] = Field(
        default="static", description="static, or client_credentials (OAuth 2.0 M2M)"
    )
    netsuite_client_id: str | None = Field(
        default=None, description="Client id of the integration record (client_credentials)"
    )
    netsuite_certificate_id: str | None = Field(
        default=None, description="Certificate id of the M2M mapping, the JWT kid"
    )
    netsuite_private_key_path: Path | None = Field(
        default=None, description="PEM RSA key of the mapped certificate (client_credentials)"
    )
    netsuite_token_url: str | None = Field(
        default=None,
        description="Token endpoint; unset: the base URL's /services/rest/auth/oauth2/v1/token",
    )
    # SAP S/4HANA Cloud (docs/adapters.md, "SAP"): the communication user (basic) or OAuth
    # 2.0 client credentials of the communication arrangement
    sap_auth: Literal["basic", "client_credentials"] = Field(
        default="basic", description="basic (communication user) or client_credentials"
    )
    sap_username: str = Field(
        default="COMM_REVSYNC", description="Communication user of the arrangement (basic)"
    )
    sap_password: SecretStr = Field(
        default=SecretStr("sandbox-sap-password"), description="Its password (basic)"
    )
    sap_client_id: str | None = Field(
        default=None, description="OAuth client id of the arrangement (client_credentials)"
    )
    sap_client_secret: SecretStr | None = Field(
        default=None, description="OAuth client secret (client_credentials)"
    )
    sap_token_url: str | None = Field(
        default=None, description="Token endpoint; unset: the base URL's /sap/bc/sec/oauth2/token"
    )
    sap_sales_organization: str = Field(
        default="1010", min_length=1, description="Sales organization of orders and customers"
    )
    sap_company_code: str = Field(
        default="1010", min_length=1, description="Company code receivables and journals post in"
    )
    # Dynamics 365 (Dataverse): Microsoft Entra ID client credentials (docs/adapters.md, "Auth")
    dynamics_tenant_id: str = Field(
        default="sandbox-tenant", description="Entra ID tenant (directory) id or domain"
    )
    dynamics_client_id: str = Field(
        default="sandbox-dynamics-client", description="Application (client) id of the app"
    )
    dynamics_client_secret: SecretStr = Field(
        default=SecretStr("sandbox-dynamics-secret"), description="The app's client secret"
    )
    dynamics_token_url: str | None = Field(
        default=None,
        description="Token endpoint; unset: login.microsoftonline.com for a dynamics.com "
        "environment, else the sandbox's",
    )
    dynamics_price_list_prefix: str = Field(
        default="List Price",
        min_length=1,
        description="Orders are priced with the active price list named '<prefix> <ISO code>'",
    )
    dynamics_deferred_revenue_account: str = Field(
        default="2400", min_length=1, description="Ledger account revenue journals debit"
    )
    dynamics_revenue_account: str = Field(
        default="4000", min_length=1, description="Ledger account revenue journals credit"
    )
    # HubSpot (docs/adapters.md, "HubSpot"): a private app's token, or OAuth with a refresh
    # token (the app's client secret is REVSYNC_HUBSPOT_CLIENT_SECRET, which signs webhooks)
    hubspot_auth: Literal["static", "oauth"] = Field(
        default="static", description="static (private app token) or oauth (refresh token)"
    )
    hubspot_access_token: SecretStr = Field(
        default=SecretStr("sandbox-hubspot-token"), description="Private app access token"
    )
    hubspot_client_id: str | None = Field(default=None, description="The app's client id (oauth)")
    hubspot_app_id: int | None = Field(
        default=None,
        gt=0,
        description="The app's id (the webhooks' appId): HubSpot sends revsync's own writes "
        "back as changes with changeSource INTEGRATION and sourceId this id; the gateway "
        "ignores those. Unset: none is recognised",
    )
    hubspot_refresh_token: SecretStr | None = Field(
        default=None, description="Refresh token of the app's install in the account (oauth)"
    )
    hubspot_token_url: str | None = Field(
        default=None, description="Token endpoint; unset: the base URL's /oauth/v1/token"
    )
    hubspot_closed_won_stage: str = Field(
        default="closedwon",
        min_length=1,
        description="Deal stage id whose reaching starts quote-to-cash (pipelines may use another)",
    )
    hubspot_order_object: str = Field(
        default="orders",
        min_length=1,
        description="Object type of booked orders: orders, or a custom object's 2-<n> id",
    )
    hubspot_account_timezone: TimeZoneName = Field(
        default="UTC",
        description="The HubSpot account's time zone: its daily API limit resets at midnight there",
    )

    # Business events out (docs/api.md, "Receiving events")
    event_subscribers: list[EventSubscriber] = Field(
        default_factory=list,
        description='JSON list of {"name", "url", "secret", "types"} webhook subscribers of '
        'business events; "types" lists event types or prefixes ending in "*" (default all)',
    )

    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", description="console when attached to a terminal, else JSON lines"
    )
    # Traces (docs/observability.md); OTLP export follows the standard OTEL_* variables
    trace_console: bool = Field(
        default=False, description="Also print every finished trace span to stdout"
    )

    # Metrics (docs/observability.md): the Temporal SDK's and revsync's business metrics
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Serve Prometheus metrics on this port at /metrics; unset serves none. "
        "`revsync dev` gives each process its own port from this one up",
    )
    metrics_host: str = Field(
        default="127.0.0.1", description="Bind address of the metrics endpoint (0.0.0.0 in pods)"
    )
    prometheus_port: int = Field(
        default=9090,
        ge=1,
        le=65535,
        description="`revsync dev` only: the port of the Prometheus it runs (when a `prometheus` "
        "binary is on the PATH and REVSYNC_METRICS_PORT is set)",
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
    events_max_concurrent_activities: int = Field(
        default=50, ge=1, description="Events delivered at once by one events worker"
    )
    # Task-queue-wide activity dispatch rates, enforced by the Temporal server across every
    # worker of the queue (docs/scaling.md says where each default comes from); unset or
    # `none`: unlimited. Every worker of a queue must be given the same value.
    crm_max_task_queue_activities_per_second: float | None = Field(
        default=None, gt=0, description="Salesforce meters a daily allocation, not a rate"
    )
    billing_max_task_queue_activities_per_second: float | None = Field(
        default=10.0,
        gt=0,
        description="Stripe's Search API allows 20 reads/s; a provisioning makes two searches",
    )
    erp_max_task_queue_activities_per_second: float | None = Field(
        default=None, gt=0, description="NetSuite governs concurrency, not rate"
    )
    worker_shutdown_grace_seconds: float = Field(
        default=30.0, ge=0, description="Time in-flight activities get to finish on SIGTERM"
    )

    # Reconciliation (docs/reconciliation.md): the revsync-reconciliation Schedule
    reconcile_cron: str = Field(
        default="15 * * * *",
        min_length=1,
        description="When the Schedule runs reconciliation (cron, UTC); `revsync schedules "
        "apply` to change it",
    )
    reconcile_page_size: int = Field(
        default=100, ge=1, le=1000, description="Records per listing call (vendors cap it)"
    )
    reconcile_max_items_per_kind: int = Field(
        default=50, ge=1, description="Drift items of each kind a report lists; counts are exact"
    )
    reconcile_max_repairs: int = Field(
        default=100, ge=0, description="Repairs one run makes; the rest wait for the next run"
    )
    reconcile_window_records: int = Field(
        default=5_000,
        ge=2,
        description="Records one system may list in one reconciliation window (the worker "
        "holds a window's records); windows are sized to half of it",
    )
    reconcile_settle_seconds: int = Field(
        default=300,
        ge=0,
        description="Windows end this long before a run starts (records still being written "
        "and search indexes settle)",
    )
    reconcile_full_every_hours: float = Field(
        default=168, gt=0, description="A full pass starts when the last one is this old"
    )
    reconcile_full_since: datetime = Field(
        default=datetime(2000, 1, 1, tzinfo=UTC),
        description="A full pass walks every record created from then on",
    )
    reconcile_report_dir: Path | None = Field(
        default=None,
        description="The reconciliation report store (marks, reports, rows); default "
        "<data dir>/reconciliation. The orchestration worker and the gateway must share it",
    )

    @property
    def reconcile_store_dir(self) -> Path:
        return self.reconcile_report_dir or self.data_dir / "reconciliation"

    @field_validator(
        "crm_max_task_queue_activities_per_second",
        "billing_max_task_queue_activities_per_second",
        "erp_max_task_queue_activities_per_second",
        mode="before",
    )
    @classmethod
    def _unlimited_is_none(cls, value: object) -> object:
        """``none``, ``unlimited`` or an empty value lifts a rate limit that has a default."""
        if isinstance(value, str) and value.strip().lower() in ("", "none", "unlimited"):
            return None
        return value

    @field_validator("salesforce_jwt_audience")
    @classmethod
    def _salesforce_audience(cls, value: str) -> str:
        problem = salesforce_audience_problem(value)
        if problem is not None:
            raise ValueError(f"the Salesforce JWT audience {problem}")
        return value.strip().rstrip("/")

    @field_validator("crm", "billing", "erp", mode="before")
    @classmethod
    def _vendor_name(cls, value: object) -> object:
        """Vendor names are matched without regard to case or surrounding blanks."""
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _vendors_follow_the_sandbox(self) -> Self:
        """A vendor base URL left unset points at the sandbox, wherever the sandbox listens."""
        for vendor in VENDORS:
            name = f"{vendor}_base_url"
            if name not in self.model_fields_set:
                setattr(self, name, f"{self.sandbox_url}/{vendor}")
        return self

    @property
    def temporal_ui_origins(self) -> list[str]:
        """Origins the codec server answers (CORS): the configured ones, else the local UI."""
        if self.codec_cors_origins:
            return self.codec_cors_origins
        port = self.temporal_ui_port
        return [f"http://localhost:{port}", f"http://127.0.0.1:{port}"]

    def secret_values(self) -> list[str]:
        """Every configured secret value (each part of a comma-separated list, and each key
        of ``payload_keys``), for log redaction and for tests that look for leaks."""
        values: list[str] = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                for part in secret_list(value):
                    values += [part, part.partition(":")[2]]
        values += [s.secret.get_secret_value() for s in self.event_subscribers]
        return [v for v in values if v]

    def require_secret(self, name: str, why: str) -> SecretStr:
        """The secret setting ``name``, or :class:`MissingSetting` naming it."""
        value = getattr(self, name)
        if value is None or not value.get_secret_value().strip():
            raise MissingSetting(name, why)
        assert isinstance(value, SecretStr)
        return value

    def vendor_mode(self, vendor: str) -> VendorMode:
        """``live`` or ``shadow``: the ``REVSYNC_<VENDOR>_MODE`` of ``vendor``."""
        mode: VendorMode = getattr(self, f"{vendor}_mode")
        return mode

    @property
    def shadow_store_path(self) -> Path:
        """Where shadow recordings are kept (``REVSYNC_SHADOW_STORE`` or the data dir)."""
        return self.shadow_store or self.data_dir / "shadow.sqlite3"

    @property
    def gateway_url(self) -> str:
        return f"http://{self.gateway_host}:{self.gateway_port}"

    @property
    def sandbox_url(self) -> str:
        return f"http://{self.sandbox_host}:{self.sandbox_port}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
