"""Dynamics 365 (Dataverse) tokens: Microsoft Entra ID client credentials with a client secret.

``POST https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token`` with the form
``client_id``, ``client_secret``, ``grant_type=client_credentials`` and ``scope`` =
``<environment URL>/.default`` answers ``access_token`` and ``expires_in`` (about an hour).
:class:`adapters.oauth.OAuthTokens` caches the token until a minute before it expires and
:class:`adapters.oauth.AuthorizedHttp` refreshes it once when Dataverse answers 401.

Settings: ``REVSYNC_DYNAMICS_TENANT_ID``, ``REVSYNC_DYNAMICS_CLIENT_ID``,
``REVSYNC_DYNAMICS_CLIENT_SECRET``, ``REVSYNC_DYNAMICS_TOKEN_URL`` (unset: Entra ID's endpoint
for the tenant when the environment is on ``dynamics.com``, else the sandbox's, under the base
URL, so local development needs nothing). Every one is checked when the adapter is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from adapters.oauth import OAuthTokens, TokenSource
from revsync.settings import MissingSetting, Settings

ENTRA_LOGIN = "https://login.microsoftonline.com"


@dataclass(frozen=True)
class EntraClientSecretGrant:
    """Client credentials with the secret in the body and the resource's ``.default``
    scope, as Microsoft Entra ID's v2.0 endpoint wants them."""

    client_id: str
    client_secret: str
    scope: str

    def form(self, token_url: str, now: float) -> dict[str, str]:
        return {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "scope": self.scope,
        }


def scope_for(environment_url: str) -> str:
    """The scope of a token for the Dataverse environment: ``https://<org>.crm.dynamics.com
    /.default``."""
    return environment_url.rstrip("/") + "/.default"


def default_token_url(environment_url: str, tenant: str) -> str:
    """Entra ID's token endpoint for ``tenant`` when the environment is a real one, the
    sandbox's (under the environment URL) otherwise."""
    host = urlsplit(environment_url).hostname or ""
    if host == "dynamics.com" or host.endswith(".dynamics.com"):
        return f"{ENTRA_LOGIN}/{tenant}/oauth2/v2.0/token"
    return f"{environment_url.rstrip('/')}/{tenant}/oauth2/v2.0/token"


def _text(settings: Settings, name: str, why: str) -> str:
    value = getattr(settings, name)
    if not isinstance(value, str) or not value.strip():
        raise MissingSetting(name, why)
    return value.strip()


def dynamics_tokens(settings: Settings, http: httpx.AsyncClient) -> TokenSource:
    """The token source of the Dynamics adapter, from the settings."""
    why = "the ERP is Dynamics 365 (REVSYNC_ERP=dynamics)"
    environment = _text(settings, "dynamics_base_url", why)
    tenant = _text(settings, "dynamics_tenant_id", why)
    grant = EntraClientSecretGrant(
        _text(settings, "dynamics_client_id", why),
        settings.require_secret("dynamics_client_secret", why).get_secret_value(),
        scope_for(environment),
    )
    token_url = settings.dynamics_token_url or default_token_url(environment, tenant)
    fix = (
        "REVSYNC_DYNAMICS_TENANT_ID, REVSYNC_DYNAMICS_CLIENT_ID and "
        "REVSYNC_DYNAMICS_CLIENT_SECRET (and the application user's security role in the "
        "environment)"
    )
    return OAuthTokens(http, vendor="dynamics", token_url=token_url, grant=grant, fix=fix)
