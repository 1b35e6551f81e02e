"""The token source each vendor adapter gets, from the auth mode its settings choose.

``REVSYNC_SALESFORCE_AUTH`` and ``REVSYNC_NETSUITE_AUTH`` pick the mode; ``static`` (the
default, and what the sandbox uses) sends the configured access token as before. Every
credential the chosen mode needs is checked here, when the adapter is built (at worker
start), and a missing or unreadable one is a :class:`~revsync.settings.MissingSetting` naming
the setting. Nothing is sent until the first activity asks for a token.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from adapters.oauth import (
    ClientAssertionGrant,
    ClientSecretGrant,
    JwtBearerGrant,
    OAuthTokens,
    RefreshTokenGrant,
    StaticToken,
    TokenSource,
    load_private_key,
)
from revsync.settings import MissingSetting, Settings, secret_list

SALESFORCE_TOKEN_PATH = "/services/oauth2/token"
NETSUITE_TOKEN_PATH = "/services/rest/auth/oauth2/v1/token"
HUBSPOT_TOKEN_PATH = "/oauth/v1/token"


def _env(name: str) -> str:
    return f"REVSYNC_{name.upper()}"


def _text(settings: Settings, name: str, why: str) -> str:
    value = getattr(settings, name)
    if not isinstance(value, str) or not value.strip():
        raise MissingSetting(name, why)
    return value.strip()


def _private_key(settings: Settings, name: str, why: str) -> rsa.RSAPrivateKey:
    path = getattr(settings, name)
    if not isinstance(path, Path):
        raise MissingSetting(name, why)
    try:
        pem = path.read_bytes()
    except OSError as error:
        raise MissingSetting(name, f"cannot read {path}: {error.strerror}") from error
    try:
        return load_private_key(pem)
    except ValueError as error:
        raise MissingSetting(name, f"{path} is {error}") from None


def salesforce_tokens(settings: Settings, http: httpx.AsyncClient) -> TokenSource:
    """Salesforce's token source for ``REVSYNC_SALESFORCE_AUTH``."""
    mode = settings.salesforce_auth
    if mode == "static":
        token = settings.require_secret(
            "salesforce_access_token", "the CRM is Salesforce with REVSYNC_SALESFORCE_AUTH=static"
        )
        return StaticToken(token.get_secret_value(), fix=_env("salesforce_access_token"))
    why = f"REVSYNC_SALESFORCE_AUTH={mode} needs it"
    client_id = _text(settings, "salesforce_client_id", why)
    token_url = settings.salesforce_token_url or (
        settings.salesforce_base_url.rstrip("/") + SALESFORCE_TOKEN_PATH
    )
    if mode == "client_credentials":
        secret = settings.require_secret("salesforce_client_secret", why)
        grant: ClientSecretGrant | JwtBearerGrant = ClientSecretGrant(
            client_id, secret.get_secret_value()
        )
        fix = " and ".join(map(_env, ("salesforce_client_id", "salesforce_client_secret")))
    else:
        key = _private_key(settings, "salesforce_private_key_path", why)
        username = _text(settings, "salesforce_username", why)
        # The login server, never the token URL's host: the token request goes to the org's
        # My Domain, the JWT names https://login.salesforce.com (test. for a sandbox org).
        grant = JwtBearerGrant(client_id, username, settings.salesforce_jwt_audience, key)
        fix = ", ".join(
            map(
                _env,
                (
                    "salesforce_client_id",
                    "salesforce_username",
                    "salesforce_private_key_path",
                    "salesforce_jwt_audience",
                ),
            )
        )
        fix += " (and that the user is pre-authorized for the app)"
    return OAuthTokens(http, vendor="salesforce", token_url=token_url, grant=grant, fix=fix)


def netsuite_tokens(settings: Settings, http: httpx.AsyncClient) -> TokenSource:
    """NetSuite's token source for ``REVSYNC_NETSUITE_AUTH``."""
    if settings.netsuite_auth == "static":
        token = settings.require_secret(
            "netsuite_access_token", "the ERP is NetSuite with REVSYNC_NETSUITE_AUTH=static"
        )
        return StaticToken(token.get_secret_value(), fix=_env("netsuite_access_token"))
    why = "REVSYNC_NETSUITE_AUTH=client_credentials needs it"
    grant = ClientAssertionGrant(
        _text(settings, "netsuite_client_id", why),
        _text(settings, "netsuite_certificate_id", why),
        _private_key(settings, "netsuite_private_key_path", why),
    )
    token_url = settings.netsuite_token_url or (
        settings.netsuite_base_url.rstrip("/") + NETSUITE_TOKEN_PATH
    )
    fix = ", ".join(
        map(_env, ("netsuite_client_id", "netsuite_certificate_id", "netsuite_private_key_path"))
    )
    fix += " (and the certificate's mapping to the integration record and role)"
    return OAuthTokens(http, vendor="netsuite", token_url=token_url, grant=grant, fix=fix)


def hubspot_tokens(settings: Settings, http: httpx.AsyncClient) -> TokenSource:
    """HubSpot's token source for ``REVSYNC_HUBSPOT_AUTH``: the private app's token, or
    OAuth's refresh token grant with the app's client id and secret. The secret is the one
    that signs HubSpot's webhooks (``REVSYNC_HUBSPOT_CLIENT_SECRET``; the first value while
    a rotation lists two)."""
    if settings.hubspot_auth == "static":
        token = settings.require_secret(
            "hubspot_access_token", "the CRM is HubSpot with REVSYNC_HUBSPOT_AUTH=static"
        )
        return StaticToken(token.get_secret_value(), fix=_env("hubspot_access_token"))
    why = "REVSYNC_HUBSPOT_AUTH=oauth needs it"
    client_id = _text(settings, "hubspot_client_id", why)
    secrets = secret_list(settings.require_secret("hubspot_client_secret", why))
    if not secrets:
        raise MissingSetting("hubspot_client_secret", why)
    refresh = settings.require_secret("hubspot_refresh_token", why)
    grant = RefreshTokenGrant(client_id, secrets[0], refresh.get_secret_value())
    token_url = settings.hubspot_token_url or (
        settings.hubspot_base_url.rstrip("/") + HUBSPOT_TOKEN_PATH
    )
    fix = ", ".join(
        map(_env, ("hubspot_client_id", "hubspot_client_secret", "hubspot_refresh_token"))
    )
    fix += " (and that the app is still installed in the account)"
    return OAuthTokens(http, vendor="hubspot", token_url=token_url, grant=grant, fix=fix)


SAP_TOKEN_PATH = "/sap/bc/sec/oauth2/token"


def sap_tokens(settings: Settings, http: httpx.AsyncClient) -> TokenSource:
    """SAP S/4HANA Cloud's token source for ``REVSYNC_SAP_AUTH=client_credentials``: the
    communication arrangement's OAuth 2.0 client at the tenant's token endpoint."""
    why = "REVSYNC_SAP_AUTH=client_credentials needs it"
    grant = ClientSecretGrant(
        _text(settings, "sap_client_id", why),
        settings.require_secret("sap_client_secret", why).get_secret_value(),
    )
    token_url = settings.sap_token_url or (settings.sap_base_url.rstrip("/") + SAP_TOKEN_PATH)
    fix = " and ".join(map(_env, ("sap_client_id", "sap_client_secret")))
    return OAuthTokens(http, vendor="sap", token_url=token_url, grant=grant, fix=fix)


ENTRA_LOGIN = "https://login.microsoftonline.com"


def dynamics_scope(environment_url: str) -> str:
    """The scope of a token for the Dataverse environment: ``https://<org>.crm.dynamics.com
    /.default``."""
    return environment_url.rstrip("/") + "/.default"


def dynamics_token_url(environment_url: str, tenant: str) -> str:
    """Entra ID's token endpoint for ``tenant`` when the environment is a real one
    (``*.dynamics.com``), the sandbox's (under the environment URL) otherwise."""
    host = urlsplit(environment_url).hostname or ""
    if host == "dynamics.com" or host.endswith(".dynamics.com"):
        return f"{ENTRA_LOGIN}/{tenant}/oauth2/v2.0/token"
    return f"{environment_url.rstrip('/')}/{tenant}/oauth2/v2.0/token"


def dynamics_tokens(settings: Settings, http: httpx.AsyncClient) -> TokenSource:
    """Dynamics 365 (Dataverse): Microsoft Entra ID client credentials with a client secret
    and the environment's ``.default`` scope, always (Dataverse has no long-lived token).
    ``REVSYNC_DYNAMICS_TOKEN_URL`` unset: Entra ID's endpoint for the tenant when the
    environment is on ``dynamics.com``, else the sandbox's, so local development needs
    nothing."""
    why = "the ERP is Dynamics 365 (REVSYNC_ERP=dynamics)"
    environment = _text(settings, "dynamics_base_url", why)
    tenant = _text(settings, "dynamics_tenant_id", why)
    grant = ClientSecretGrant(
        _text(settings, "dynamics_client_id", why),
        settings.require_secret("dynamics_client_secret", why).get_secret_value(),
        scope=dynamics_scope(environment),
    )
    token_url = settings.dynamics_token_url or dynamics_token_url(environment, tenant)
    fix = (
        "REVSYNC_DYNAMICS_TENANT_ID, REVSYNC_DYNAMICS_CLIENT_ID and "
        "REVSYNC_DYNAMICS_CLIENT_SECRET (and the application user's security role in the "
        "environment)"
    )
    return OAuthTokens(http, vendor="dynamics", token_url=token_url, grant=grant, fix=fix)
