"""The emulators' OAuth 2.0 authorization server: registered clients, issued tokens and their
expiry, JWT assertion checks. Each vendor's token endpoint (``sandbox/salesforce.py``,
``sandbox/netsuite.py``) speaks its vendor's grant on top of one :class:`OAuthServer`.

Tokens issued here are accepted by that vendor's API until they expire (``token_lifetime``
seconds, on the server's clock) or until ``expire_all`` (``POST /_sandbox/oauth/<vendor>/
expire``); the static sandbox token stays accepted, so clients that use it keep working.

Control routes, mounted at ``/_sandbox/oauth`` (no auth; not part of any vendor's API):

- ``POST /<vendor>/clients`` registers a client: ``client_id`` and, depending on the grant,
  ``client_secret``, ``public_key_pem`` (the certificate's public key, PEM), ``username``
  (Salesforce JWT ``sub``), ``certificate_id`` (NetSuite ``kid``);
- ``POST /<vendor>/lifetime`` sets ``seconds`` tokens issued from now on live;
- ``POST /<vendor>/expire`` expires every token issued so far;
- ``GET /<vendor>`` counts token requests and live tokens.

JWTs are checked with ``cryptography`` alone (RS256: PKCS#1 v1.5; PS256: PSS, MGF1-SHA256,
32-byte salt), independently of the client code in ``adapters/oauth.py``.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from sandbox.wire import json_response

if TYPE_CHECKING:
    from sandbox.app import SandboxState

# Salesforce sessions time out by org policy (two hours by default); NetSuite M2M tokens last
# an hour; HubSpot OAuth access tokens 30 minutes. The emulators default to the same.
DEFAULT_LIFETIMES = {"salesforce": 7200.0, "netsuite": 3600.0, "hubspot": 1800.0}
# What the sandbox knows out of the box: a Salesforce client for the client credentials flow.
# JWT clients need a public key: register one (POST /_sandbox/oauth/<vendor>/clients).
SANDBOX_CLIENTS = {
    "salesforce": {"client_id": "sandbox-salesforce-client", "client_secret": "sandbox-secret"},
    # HubSpot's refresh token grant (sandbox/hubspot.py holds the client's refresh token).
    "hubspot": {"client_id": "sandbox-hubspot-client", "client_secret": "sandbox-hubspot-secret"},
}


class OAuthClient(BaseModel):
    client_id: str = Field(min_length=1)
    client_secret: str | None = None
    public_key_pem: str | None = None
    username: str | None = None
    certificate_id: str | None = None


class OAuthFailure(Exception):
    """A refused token request: the OAuth ``error`` code and its description."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status

    def response(self) -> Response:
        return json_response(
            {"error": self.error, "error_description": self.description}, self.status
        )


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Jwt:
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


def parse_jwt(token: str) -> Jwt:
    """The parts of a compact JWS. Raises :class:`OAuthFailure` (``invalid_grant``)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise OAuthFailure("invalid_grant", "invalid assertion: not a JWT")
    try:
        header = json.loads(_b64url_decode(parts[0]))
        claims = json.loads(_b64url_decode(parts[1]))
        signature = _b64url_decode(parts[2])
    except (ValueError, binascii.Error):
        raise OAuthFailure("invalid_grant", "invalid assertion: not a JWT") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise OAuthFailure("invalid_grant", "invalid assertion: not a JWT")
    return Jwt(header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), signature)


def verify_signature(jwt: Jwt, public_key_pem: str | None, algorithms: tuple[str, ...]) -> None:
    """Check ``jwt``'s signature with the client's public key (RS256 or PS256 over SHA-256)."""
    algorithm = jwt.header.get("alg")
    if algorithm not in algorithms:
        raise OAuthFailure("invalid_grant", f"invalid assertion: algorithm {algorithm!r}")
    if public_key_pem is None:
        raise OAuthFailure("invalid_client", "no certificate registered for this client")
    key = serialization.load_pem_public_key(public_key_pem.encode())
    if not isinstance(key, rsa.RSAPublicKey):
        raise OAuthFailure("invalid_client", "the registered key is not an RSA key")
    pad: padding.AsymmetricPadding = (
        padding.PKCS1v15()
        if algorithm == "RS256"
        else padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    )
    try:
        key.verify(jwt.signature, jwt.signing_input, pad, hashes.SHA256())
    except InvalidSignature:
        raise OAuthFailure("invalid_grant", "invalid assertion: signature mismatch") from None


def check_times(claims: dict[str, Any], now: float, *, max_lifetime: float | None) -> None:
    """``exp`` in the future (3 minutes of skew allowed), and, with ``max_lifetime``, an
    ``iat`` no longer than that before it."""
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise OAuthFailure("invalid_grant", "invalid assertion: no exp")
    if exp + 180 < now:
        raise OAuthFailure("invalid_grant", "invalid assertion: expired")
    if max_lifetime is not None:
        iat = claims.get("iat")
        if not isinstance(iat, int | float) or isinstance(iat, bool):
            raise OAuthFailure("invalid_grant", "invalid assertion: no iat")
        if exp - iat > max_lifetime:
            raise OAuthFailure("invalid_grant", "invalid assertion: lives too long")


@dataclass
class OAuthServer:
    """One vendor's clients and the tokens issued to them."""

    vendor: str
    token_lifetime: float
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    clients: dict[str, OAuthClient] = field(default_factory=dict)
    # Where the Salesforce token endpoint says the API is (None: where the emulator is).
    instance_url: str | None = None
    # The ``aud`` a Salesforce JWT must name (None: https://login.salesforce.com, a production
    # org's; https://test.salesforce.com plays a sandbox org).
    audience: str | None = None
    token_requests: int = 0
    _issued: dict[str, float] = field(default_factory=dict)

    def register(self, client: OAuthClient) -> None:
        self.clients[client.client_id] = client

    def client(self, client_id: object) -> OAuthClient:
        found = self.clients.get(client_id) if isinstance(client_id, str) else None
        if found is None:
            raise OAuthFailure("invalid_client_id", "client identifier invalid")
        return found

    def issue(self) -> str:
        token = f"{self.vendor}-{secrets.token_urlsafe(24)}"
        self._issued[token] = self.clock() + self.token_lifetime
        return token

    def accepts(self, token: str | None, static: str) -> bool:
        """Whether the API takes ``token``: the static sandbox token, or an issued one that
        has not expired."""
        if token is None:
            return False
        if secrets.compare_digest(token, static):
            return True
        expires = self._issued.get(token)
        if expires is None:
            return False
        if self.clock() >= expires:
            del self._issued[token]
            return False
        return True

    def issued(self) -> list[str]:
        """Every token issued and not yet expired or dropped (for tests' leak checks)."""
        return list(self._issued)

    def expire_all(self) -> int:
        count = len(self._issued)
        self._issued.clear()
        return count

    def live(self) -> int:
        now = self.clock()
        return sum(1 for expires in self._issued.values() if expires > now)


def new_servers() -> dict[str, OAuthServer]:
    servers = {
        vendor: OAuthServer(vendor, token_lifetime=lifetime)
        for vendor, lifetime in DEFAULT_LIFETIMES.items()
    }
    for vendor, client in SANDBOX_CLIENTS.items():
        servers[vendor].register(OAuthClient(**client))
    return servers


async def read_form(request: Request) -> dict[str, str]:
    """A token request's form fields (``application/x-www-form-urlencoded``; the first value
    of a repeated field). Raises :class:`OAuthFailure` for another body."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise OAuthFailure("invalid_request", "expected a form-encoded body")
    try:
        fields = parse_qs((await request.body()).decode(), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        raise OAuthFailure("invalid_request", "unreadable form body") from None
    return {key: values[0] for key, values in fields.items()}


class Lifetime(BaseModel):
    seconds: float = Field(gt=0)


def request_url(request: Request) -> str:
    """The URL a request was sent to, without its query."""
    url = request.url
    return f"{url.scheme}://{url.netloc}{url.path}"


def build_control_router(state: SandboxState) -> APIRouter:
    router = APIRouter()

    def server(vendor: str) -> OAuthServer | None:
        return state.oauth.get(vendor)

    def unknown(vendor: str) -> Response:
        return json_response({"detail": f"no OAuth server for {vendor!r}"}, 404)

    @router.post("/{vendor}/clients")
    async def register(vendor: str, client: OAuthClient) -> Response:
        if (found := server(vendor)) is None:
            return unknown(vendor)
        found.register(client)
        return json_response({"client_id": client.client_id})

    @router.post("/{vendor}/lifetime")
    async def lifetime(vendor: str, body: Lifetime) -> Response:
        if (found := server(vendor)) is None:
            return unknown(vendor)
        found.token_lifetime = body.seconds
        return json_response({"seconds": body.seconds})

    @router.post("/{vendor}/expire")
    async def expire(vendor: str) -> Response:
        if (found := server(vendor)) is None:
            return unknown(vendor)
        return json_response({"expired": found.expire_all()})

    @router.get("/{vendor}")
    async def describe(vendor: str) -> Response:
        if (found := server(vendor)) is None:
            return unknown(vendor)
        return json_response(
            {
                "token_requests": found.token_requests,
                "live_tokens": found.live(),
                "token_lifetime": found.token_lifetime,
                "clients": sorted(found.clients),
            }
        )

    return router
