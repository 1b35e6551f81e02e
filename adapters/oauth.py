"""Access tokens for vendor APIs: fetched from the vendor's OAuth 2.0 token endpoint, cached
until shortly before they expire, refreshed once when the API refuses one.

Three pieces:

- a **grant** says what goes to the token endpoint: :class:`ClientSecretGrant` (client
  credentials with a client secret, Salesforce), :class:`JwtBearerGrant` (an RS256 JWT
  assertion naming a user, Salesforce's JWT bearer flow) and :class:`ClientAssertionGrant`
  (client credentials authenticated by a signed JWT client assertion with the certificate's
  key id, NetSuite's machine-to-machine flow);
- a **token source** hands out the current token: :class:`StaticToken` (a configured token,
  never refreshed) or :class:`OAuthTokens` (fetches with a grant, one fetch at a time under
  an ``asyncio.Lock``: twenty activities asking at once cause one token request);
- :class:`AuthorizedHttp` sends an adapter's requests with the bearer token. A 401 answer
  invalidates that token and the request goes again, once, with a fresh one; a second 401 is
  a :class:`~adapters.errors.TransientError` (a revoked credential parks sagas, it never
  rejects them). A request the API refused with 401 was not processed, so sending it again
  is safe whatever its method.

Token endpoint failures are classified like any vendor call: 5xx, 429 and timeouts are
transient; a refused grant (``invalid_client``, ``invalid_grant``, any other 4xx) is a
transient auth failure whose message names the settings to fix. Neither tokens, secrets nor
assertions ever appear in an error message: those are logged.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from adapters.breaker import CircuitBreaker
from adapters.errors import TransientError, UnknownOutcomeError, VendorError
from adapters.http import AnswerCheck, Classifier, VendorHttp, decode_json, vendor_error

TOKEN_OPERATION = "oauth_token"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
JWT_CLIENT_ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# A token is replaced this long before the expiry its endpoint announced, so a request never
# leaves with a token about to lapse on the way.
REFRESH_MARGIN_SECONDS = 60.0
# Lifetime of the JWTs revsync signs: long enough for clock skew, short enough to be useless
# if intercepted (Salesforce allows 3 minutes of skew; NetSuite wants under 60 minutes).
ASSERTION_LIFETIME_SECONDS = 180

JwtAlgorithm = Literal["RS256", "PS256"]


# -- JWT ------------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    """Base64url without padding, as JWTs write it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jwt_padding(algorithm: JwtAlgorithm) -> padding.AsymmetricPadding:
    """The RSA padding of a JWS algorithm: PKCS#1 v1.5 for RS256; PSS with MGF1-SHA256 and a
    salt as long as the digest for PS256 (RFC 7518, 3.5)."""
    if algorithm == "RS256":
        return padding.PKCS1v15()
    return padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)


def sign_jwt(
    claims: Mapping[str, Any],
    key: rsa.RSAPrivateKey,
    *,
    algorithm: JwtAlgorithm = "RS256",
    key_id: str | None = None,
) -> str:
    """A compact JWS of ``claims`` signed with ``key`` (SHA-256)."""
    header: dict[str, str] = {"alg": algorithm, "typ": "JWT"}
    if key_id is not None:
        header["kid"] = key_id
    signing_input = ".".join(
        b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    signature = key.sign(signing_input.encode("ascii"), jwt_padding(algorithm), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


def load_private_key(pem: bytes) -> rsa.RSAPrivateKey:
    """An unencrypted PEM RSA private key. Raises ``ValueError`` for anything else."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (TypeError, ValueError) as error:
        raise ValueError(f"not an unencrypted PEM private key ({error})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"not an RSA private key ({type(key).__name__})")
    if key.key_size < 2048:
        raise ValueError(f"an RSA key of {key.key_size} bits is too short (2048 at least)")
    return key


# -- grants ---------------------------------------------------------------------------------


class Grant(Protocol):
    """The form a token request sends; ``now`` is the wall-clock time in seconds."""

    def form(self, token_url: str, now: float) -> dict[str, str]: ...


@dataclass(frozen=True)
class ClientSecretGrant:
    """OAuth 2.0 client credentials with the client secret in the body, and the ``scope``
    where the server wants one (Microsoft Entra ID: the resource's ``.default``)."""

    client_id: str
    client_secret: str
    scope: str | None = None

    def form(self, token_url: str, now: float) -> dict[str, str]:
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
        }
        if self.scope is not None:
            form["scope"] = self.scope
        return form


@dataclass(frozen=True)
class RefreshTokenGrant:
    """The refresh token grant (RFC 6749, 6) with the client's id and secret in the body, as
    HubSpot's ``/oauth/v1/token`` wants it. The refresh token stays the same across uses."""

    client_id: str
    client_secret: str
    refresh_token: str

    def form(self, token_url: str, now: float) -> dict[str, str]:
        return {
            "grant_type": "refresh_token",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "refresh_token": self.refresh_token,
        }


@dataclass(frozen=True)
class JwtBearerGrant:
    """The JWT bearer grant (RFC 7523, 2.1): an RS256 assertion issued by the client id for
    ``username``, addressed to ``audience`` (Salesforce: the login URL)."""

    client_id: str
    username: str
    audience: str
    key: rsa.RSAPrivateKey

    def form(self, token_url: str, now: float) -> dict[str, str]:
        claims = {
            "iss": self.client_id,
            "sub": self.username,
            "aud": self.audience,
            "exp": int(now) + ASSERTION_LIFETIME_SECONDS,
        }
        return {"grant_type": JWT_BEARER_GRANT, "assertion": sign_jwt(claims, self.key)}


@dataclass(frozen=True)
class ClientAssertionGrant:
    """Client credentials authenticated by a JWT client assertion (RFC 7523, 2.2), as
    NetSuite's machine-to-machine flow wants it: ``kid`` the certificate id, ``iss`` the
    client id, ``aud`` the token endpoint, a ``scope`` claim, PS256 by default."""

    client_id: str
    certificate_id: str
    key: rsa.RSAPrivateKey
    scope: str = "rest_webservices"
    algorithm: JwtAlgorithm = "PS256"

    def form(self, token_url: str, now: float) -> dict[str, str]:
        issued = int(now)
        claims = {
            "iss": self.client_id,
            "scope": self.scope,
            "aud": token_url,
            "iat": issued,
            "exp": issued + ASSERTION_LIFETIME_SECONDS,
            "jti": str(uuid.uuid4()),
        }
        assertion = sign_jwt(claims, self.key, algorithm=self.algorithm, key_id=self.certificate_id)
        return {
            "grant_type": "client_credentials",
            "client_assertion_type": JWT_CLIENT_ASSERTION,
            "client_assertion": assertion,
        }


# -- token sources --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class AccessToken:
    """A bearer token; ``expires_at`` on the source's monotonic clock (None: until refused).
    ``instance_url`` is where the API lives when the token endpoint says so (Salesforce)."""

    value: str
    expires_at: float | None = None
    instance_url: str | None = None

    def __repr__(self) -> str:  # never show the token itself
        return f"AccessToken(expires_at={self.expires_at!r}, instance_url={self.instance_url!r})"


class TokenSource(Protocol):
    #: False when a refused token cannot be replaced (a static one): no retry then.
    refreshable: bool
    #: What an operator fixes when tokens keep being refused (names settings, never values).
    fix: str

    async def get(self) -> AccessToken: ...

    def invalidate(self, token: AccessToken) -> None: ...


class StaticToken:
    """A configured token, used until it stops working."""

    refreshable = False

    def __init__(self, value: str, *, fix: str = "the configured access token") -> None:
        self._token = AccessToken(value)
        self.fix = fix

    async def get(self) -> AccessToken:
        return self._token

    def invalidate(self, token: AccessToken) -> None:
        pass


def token_endpoint_classifier(vendor: str, fix: str) -> Classifier:
    """How a token endpoint's refusal reads: throttling and 5xx transient; any other refusal
    a transient auth failure naming ``fix`` (the settings an operator corrects)."""

    def classify(operation: str, response: httpx.Response) -> VendorError:
        status = response.status_code
        try:
            body = decode_json(response)
        except ValueError:
            body = None
        code = description = None
        if isinstance(body, dict):
            code = body.get("error") if isinstance(body.get("error"), str) else None
            described = body.get("error_description")
            description = described if isinstance(described, str) else None
        if status >= 500 or status in (408, 429):
            message = f"token endpoint unavailable: {description or response.reason_phrase}"
            return vendor_error(vendor, operation, response, message, code, transient=True)
        refusal = f"{code}: {description}" if code and description else code or description
        message = (
            f"the token endpoint refused the credentials ({refusal or f'HTTP {status}'}); "
            f"check {fix}"
        )
        return TransientError(vendor, operation, message, status=status, code=code or "AUTH")

    return classify


class OAuthTokens:
    """Tokens from an OAuth 2.0 token endpoint, cached until ``margin`` seconds before the
    ``expires_in`` they came with (a token without one, like Salesforce's, lives until the
    API refuses it). One fetch at a time: callers arriving while a fetch is under way wait
    for its token, or its failure, rather than sending their own."""

    refreshable = True

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        vendor: str,
        token_url: str,
        grant: Grant,
        fix: str,
        margin: float = REFRESH_MARGIN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.vendor = vendor
        self.token_url = token_url
        self.fix = fix
        # The token endpoint is its own host (the login server): its own breaker.
        self._http = VendorHttp(
            vendor,
            client,
            token_endpoint_classifier(vendor, fix),
            breaker=CircuitBreaker(f"{vendor}_oauth"),
        )
        self._grant = grant
        self._margin = margin
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = asyncio.Lock()
        self._current: AccessToken | None = None
        # Fetches finished (either way): a caller that saw this change while it waited
        # for the lock takes the outcome of the fetch it waited for.
        self._fetches_done = 0
        self._failure: VendorError | None = None
        #: Token requests sent so far (for metrics and tests).
        self.requests = 0

    def _valid(self, token: AccessToken | None) -> bool:
        return token is not None and (token.expires_at is None or self._clock() < token.expires_at)

    async def get(self) -> AccessToken:
        current = self._current
        if current is not None and self._valid(current):
            return current
        seen = self._fetches_done
        async with self._lock:
            current = self._current
            if current is not None and self._valid(current):
                return current
            if self._fetches_done != seen and self._failure is not None:
                # A fetch failed while this caller waited: share its failure, do not repeat it.
                failed = self._failure
                raise TransientError(
                    failed.vendor,
                    failed.operation,
                    failed.message,
                    status=failed.status,
                    code=failed.code,
                    retry_after=getattr(failed, "retry_after", None),
                    throttle=getattr(failed, "throttle", None),
                )
            try:
                self._current = await self._fetch()
            except VendorError as error:
                self._failure = error
                raise
            finally:
                self._fetches_done += 1
            self._failure = None
            return self._current

    def invalidate(self, token: AccessToken) -> None:
        """Forget ``token`` (the API refused it). A token fetched since stays: twenty calls
        refused with the same stale token cause one new fetch, not twenty."""
        if self._current is token:
            self._current = None

    async def _fetch(self) -> AccessToken:
        form = self._grant.form(self.token_url, self._wall_clock())
        self.requests += 1
        try:
            response = await self._http.request(
                TOKEN_OPERATION,
                "POST",
                self.token_url,
                ok=(200,),
                form=form,
                headers={"Accept": "application/json"},
            )
        except UnknownOutcomeError as error:
            # Asking for a token twice is harmless: an unanswered request is just transient.
            raise TransientError(self.vendor, TOKEN_OPERATION, error.message) from error
        return self._parse(response)

    def _parse(self, response: httpx.Response) -> AccessToken:
        try:
            body = decode_json(response)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise self._unexpected("not a JSON object")
        value = body.get("access_token")
        if not isinstance(value, str) or not value.strip():
            raise self._unexpected("no access_token")
        instance_url = body.get("instance_url")
        if instance_url is not None:
            if not isinstance(instance_url, str) or urlsplit(instance_url).scheme not in (
                "http",
                "https",
            ):
                raise self._unexpected("instance_url is not an http(s) URL")
            instance_url = instance_url.rstrip("/")
        expires_at = None
        lifetime = body.get("expires_in")
        if lifetime is not None:
            try:
                seconds = float(str(lifetime))
            except ValueError:
                raise self._unexpected("expires_in is not a number") from None
            if not seconds > 0:
                raise self._unexpected("expires_in is not positive")
            # A short-lived token is replaced halfway through rather than never used.
            expires_at = self._clock() + seconds - min(self._margin, seconds / 2)
        return AccessToken(value.strip(), expires_at, instance_url)

    def _unexpected(self, what: str) -> TransientError:
        return TransientError(self.vendor, TOKEN_OPERATION, f"unexpected token answer: {what}")


# -- authorized requests --------------------------------------------------------------------


class AuthorizedHttp:
    """An adapter's HTTP path with a bearer token from ``tokens``.

    ``url`` may be a path (``/services/...``): it is resolved against the token's
    ``instance_url`` when the token endpoint gave one, else against ``base_url``."""

    def __init__(
        self,
        http: VendorHttp,
        tokens: TokenSource,
        *,
        classify: Classifier,
        base_url: str = "",
    ) -> None:
        self.http = http
        self.tokens = tokens
        self.vendor = http.vendor
        self._classify = classify
        self._base_url = base_url.rstrip("/")

    @property
    def breaker(self) -> CircuitBreaker:
        return self.http.breaker

    async def base_url(self) -> str:
        """Where the API lives for the current token."""
        token = await self.tokens.get()
        return token.instance_url or self._base_url

    async def request(
        self,
        operation: str,
        method: str,
        url: str,
        *,
        ok: tuple[int, ...] = (200, 201, 204),
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        content_type: str | None = None,
        check: AnswerCheck | None = None,
    ) -> httpx.Response:
        """:meth:`VendorHttp.request` with the token; one retry with a fresh token after a
        401. A 401 reaches the circuit breaker as an answer (the vendor is up), not as a
        failure: an expired token under load must not open the circuit. ``check`` reads the
        answers in ``ok`` (never the 401) inside the breaker's guard."""
        if 401 in ok:
            raise ValueError("401 is the token's refusal, never a success")
        answer_check = None if check is None else _except_401(check)
        for attempt in (1, 2):
            token = await self.tokens.get()
            response = await self.http.request(
                operation,
                method,
                self._resolve(token, url),
                ok=(*ok, 401),
                json_body=json_body,
                form=form,
                params=params,
                headers={**(headers or {}), "Authorization": f"Bearer {token.value}"},
                content=content,
                content_type=content_type,
                check=answer_check,
            )
            if response.status_code != 401:
                return response
            error = self._classify(operation, response)
            if not self.tokens.refreshable or attempt == 2:
                what = "the access token" if attempt == 1 else "a freshly issued token too"
                raise TransientError(
                    self.vendor,
                    operation,
                    f"{self.vendor} refused {what} ({error.message}); check {self.tokens.fix}",
                    status=401,
                    code=error.code,
                    retry_after=getattr(error, "retry_after", None),
                )
            self.tokens.invalidate(token)
        raise AssertionError("unreachable")  # pragma: no cover

    def _resolve(self, token: AccessToken, url: str) -> str:
        if not url.startswith("/"):
            return url
        return f"{token.instance_url or self._base_url}{url}"


def _except_401(check: AnswerCheck) -> AnswerCheck:
    """``check`` for every answer but the token's refusal (handled by the caller)."""

    def checked(response: httpx.Response) -> VendorError | None:
        return None if response.status_code == 401 else check(response)

    return checked
