"""Local secrets for ``revsync dev``, generated on first run instead of living in code.

Production sets every secret explicitly (``.env``, the environment, a secret store). A fresh
laptop has none, so ``revsync dev`` makes random ones for whatever is not configured and keeps
them in ``<REVSYNC_DATA_DIR>/dev-secrets.env`` (mode 0600), which settings read with a lower
priority than ``.env`` and the environment. The same file then serves the CLI in a second
terminal: ``revsync demo`` signs with the generated CPQ secret and ``revsync approve`` acts
as the generated local staff member, who holds every role.

It also makes (once, kept beside the secrets) an RSA key pair with a self-signed certificate
for the OAuth modes that sign a JWT, and supplies the credentials those modes need when they
are not configured: ``REVSYNC_SALESFORCE_CLIENT_ID``, ``_CLIENT_SECRET``, ``_USERNAME`` and
``_PRIVATE_KEY_PATH``; ``REVSYNC_NETSUITE_CLIENT_ID``, ``_CERTIFICATE_ID`` and
``_PRIVATE_KEY_PATH``. ``revsync sandbox`` registers the certificate under those clients with
its Salesforce and NetSuite token endpoints (:func:`dev_oauth_clients`), so
``REVSYNC_SALESFORCE_AUTH=jwt`` (or ``client_credentials``) and
``REVSYNC_NETSUITE_AUTH=client_credentials`` work against ``revsync dev`` with no hand step.
The sandbox's Salesforce org is allowed to send Outbound Messages
(``REVSYNC_SALESFORCE_ORG_IDS``) unless that is configured.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from revsync.auth import StaffRole, StaffToken, digest, new_token
from revsync.codec import generate_key_entry
from revsync.settings import DEV_SECRETS_FILE, Settings

FILE_NAME = DEV_SECRETS_FILE.name  # the file settings read, under REVSYNC_DATA_DIR
DEV_STAFF_NAME = "Local Developer <dev@localhost>"
DEV_SUBSCRIBER = "sandbox"


def _whsec() -> str:
    return "whsec_" + secrets.token_urlsafe(24)


def _key() -> str:
    return generate_key_entry(f"dev-{datetime.now(UTC):%Y%m%d}")


# setting name -> generator of a fresh value
_SINGLE: dict[str, Callable[[], str]] = {
    "payload_keys": _key,
    "cpq_webhook_secret": _whsec,
    "stripe_webhook_secret": _whsec,
    "hubspot_client_secret": lambda: secrets.token_hex(16),
    "zuora_callout_secret": lambda: secrets.token_urlsafe(24),
}


# The dev key pair, under REVSYNC_DATA_DIR, and the clients it signs for.
DEV_KEY_FILE = "dev-oauth-key.pem"
DEV_CERT_FILE = "dev-oauth-cert.pem"
DEV_SALESFORCE_CLIENT_ID = "revsync-dev-connected-app"
DEV_SALESFORCE_USERNAME = "integration@revsync.dev"
DEV_NETSUITE_CLIENT_ID = "revsync-dev-integration"
DEV_NETSUITE_CERTIFICATE_ID = "revsync-dev-certificate"
CERT_DAYS = 730


def ensure_dev_key_pair(data_dir: Path) -> tuple[Path, Path]:
    """The dev private key (PKCS#8 PEM, mode 0600) and its self-signed certificate, made the
    first time and kept; returns their paths."""
    key_path, cert_path = data_dir / DEV_KEY_FILE, data_dir / DEV_CERT_FILE
    if key_path.exists() and cert_path.exists():
        return key_path, cert_path
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "revsync dev (local only)")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=CERT_DAYS))
        .sign(key, hashes.SHA256())
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def _dev_oauth(settings: Settings, stored: dict[str, str]) -> dict[str, str]:
    """The OAuth credentials ``settings`` lack, for the dev key pair and the sandbox."""
    key_path, _ = ensure_dev_key_pair(settings.data_dir)
    wanted: dict[str, Callable[[], str]] = {
        "salesforce_client_id": lambda: DEV_SALESFORCE_CLIENT_ID,
        "salesforce_client_secret": lambda: secrets.token_urlsafe(24),
        "salesforce_username": lambda: DEV_SALESFORCE_USERNAME,
        "salesforce_private_key_path": lambda: str(key_path),
        "netsuite_client_id": lambda: DEV_NETSUITE_CLIENT_ID,
        "netsuite_certificate_id": lambda: DEV_NETSUITE_CERTIFICATE_ID,
        "netsuite_private_key_path": lambda: str(key_path),
    }
    supplied: dict[str, str] = {}
    for setting, make in wanted.items():
        if getattr(settings, setting) is None:
            name = _env_name(setting)
            supplied[name] = stored.get(name) or make()
    if not settings.salesforce_org_ids:
        from sandbox.salesforce import ORG_ID  # dev tooling: the sandbox org's id

        supplied[_env_name("salesforce_org_ids")] = json.dumps([ORG_ID])
    return supplied


def dev_oauth_clients(settings: Settings) -> list[tuple[str, dict[str, str]]]:
    """``(vendor, client)`` registrations for the sandbox's OAuth servers
    (``sandbox.oauth.OAuthClient`` fields): the configured Salesforce and NetSuite clients
    with the dev certificate's public key, when their private key is the dev key (a key of
    your own has its own certificate, which you register yourself). Empty before
    ``revsync dev`` made the key pair."""
    key_path, cert_path = settings.data_dir / DEV_KEY_FILE, settings.data_dir / DEV_CERT_FILE
    if not cert_path.exists():
        return []
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    public_pem = (
        certificate.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )

    def is_dev_key(path: Path | None) -> bool:
        return path is not None and path.resolve() == key_path.resolve()

    clients: list[tuple[str, dict[str, str]]] = []
    if settings.salesforce_client_id and is_dev_key(settings.salesforce_private_key_path):
        client = {"client_id": settings.salesforce_client_id, "public_key_pem": public_pem}
        if settings.salesforce_username:
            client["username"] = settings.salesforce_username
        if settings.salesforce_client_secret is not None:
            client["client_secret"] = settings.salesforce_client_secret.get_secret_value()
        clients.append(("salesforce", client))
    if (
        settings.netsuite_client_id
        and settings.netsuite_certificate_id
        and is_dev_key(settings.netsuite_private_key_path)
    ):
        clients.append(
            (
                "netsuite",
                {
                    "client_id": settings.netsuite_client_id,
                    "certificate_id": settings.netsuite_certificate_id,
                    "public_key_pem": public_pem,
                },
            )
        )
    return clients


def _env_name(setting: str) -> str:
    return f"REVSYNC_{setting.upper()}"


def read_env_file(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, sep, value = line.partition("=")
        if sep and not name.lstrip().startswith("#"):
            values[name.strip()] = value.strip().strip("'")
    return values


def _write_env_file(path: Path, values: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Generated by `revsync dev` for the local stack only. Never use these in production.",
        *(f"{name}='{value}'" for name, value in sorted(values.items())),
    ]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")


def ensure_dev_secrets(settings: Settings) -> dict[str, str]:
    """Generate (once) the secrets ``settings`` lack, store them, and return the
    ``REVSYNC_*`` variables that supply them. Configured secrets are never replaced."""
    path = settings.data_dir / FILE_NAME
    stored = read_env_file(path)
    supplied: dict[str, str] = {}
    for setting, make in _SINGLE.items():
        if getattr(settings, setting) is not None:
            continue
        name = _env_name(setting)
        supplied[name] = stored.get(name) or make()
    if not settings.operator_tokens:
        token_name, tokens_name = _env_name("operator_token"), _env_name("operator_tokens")
        token = stored.get(token_name) or new_token()
        entry = StaffToken(
            name=DEV_STAFF_NAME, roles=frozenset(StaffRole), token_sha256=digest(token)
        )
        supplied[token_name] = token
        supplied[tokens_name] = json.dumps(
            [entry.model_dump(mode="json") | {"roles": sorted(entry.roles)}]
        )
    if not settings.event_subscribers:
        # The sandbox's subscriber receives every business event (GET /_sandbox/events).
        name = _env_name("event_subscribers")
        kept = json.loads(stored[name]) if name in stored else []
        secret = kept[0]["secret"] if kept else _whsec()
        supplied[name] = json.dumps(
            [
                {
                    "name": DEV_SUBSCRIBER,
                    "url": f"{settings.sandbox_url}/events/{DEV_SUBSCRIBER}",
                    "secret": secret,
                    "types": ["*"],
                }
            ]
        )
    supplied |= _dev_oauth(settings, stored)
    if any(stored.get(name) != value for name, value in supplied.items()):
        _write_env_file(path, stored | supplied)
    return supplied


def with_secrets(settings: Settings, supplied: dict[str, str]) -> Settings:
    """``settings`` with the generated values of :func:`ensure_dev_secrets` filled in."""
    fields: dict[str, object] = {
        name.removeprefix("REVSYNC_").lower(): value for name, value in supplied.items()
    }
    for listed in ("operator_tokens", "event_subscribers", "salesforce_org_ids"):
        if listed in fields:
            fields[listed] = json.loads(str(fields[listed]))
    fresh = Settings.model_validate(fields)
    return settings.model_copy(update={name: getattr(fresh, name) for name in fields})
