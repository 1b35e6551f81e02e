"""NetSuite OAuth 2.0 client credentials (M2M, JWT client assertion) against the emulator's
token endpoint: the adapter built from settings exactly as an erp worker builds it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.erp.netsuite import NetSuiteErp
from adapters.errors import TransientError
from adapters.oauth import ClientAssertionGrant, OAuthTokens, sign_jwt
from adapters.registry import build_erp
from revsync.settings import MissingSetting, Settings
from sandbox.app import SandboxState
from sandbox.oauth import OAuthClient
from tests.adapters.oauth_support import (
    Clock,
    KeyPair,
    Recorder,
    new_key_pair,
    recording_client,
    verified_jwt,
)

BASE_URL = "http://sandbox/netsuite"
TOKEN_URL = f"{BASE_URL}/services/rest/auth/oauth2/v1/token"
CLIENT_ID = "9d1f0c2e-netsuite-integration-client"
CERTIFICATE_ID = "Ab3dEfGh1jKlMn0pQrStUvWxYz"
QUERY = "SELECT id, symbol FROM currency ORDER BY id"


@pytest.fixture
def keys(tmp_path: Path) -> KeyPair:
    return new_key_pair(tmp_path)


@pytest.fixture
def state(keys: KeyPair) -> SandboxState:
    state = SandboxState()
    state.oauth["netsuite"].register(
        OAuthClient(
            client_id=CLIENT_ID, certificate_id=CERTIFICATE_ID, public_key_pem=keys.public_pem
        )
    )
    return state


@pytest.fixture
async def client(state: SandboxState) -> AsyncIterator[tuple[httpx.AsyncClient, Recorder]]:
    async with recording_client(state) as pair:
        yield pair


def settings_for(keys: KeyPair, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "netsuite_base_url": BASE_URL,
        "netsuite_auth": "client_credentials",
        "netsuite_client_id": CLIENT_ID,
        "netsuite_certificate_id": CERTIFICATE_ID,
        "netsuite_private_key_path": keys.path,
        **overrides,
    }
    return Settings(**values)


def erp_with_clock(http: httpx.AsyncClient, keys: KeyPair, clock: Clock) -> NetSuiteErp:
    """The adapter with a token source on a clock the test moves."""
    tokens = OAuthTokens(
        http,
        vendor="netsuite",
        token_url=TOKEN_URL,
        grant=ClientAssertionGrant(CLIENT_ID, CERTIFICATE_ID, keys.key),
        fix="the NetSuite client settings",
        clock=clock,
    )
    return NetSuiteErp(http, base_url=BASE_URL, tokens=tokens)


def token_requests(state: SandboxState) -> int:
    return state.oauth["netsuite"].token_requests


async def sandbox(http: httpx.AsyncClient, path: str, body: Any = None) -> Any:
    response = await http.post(path, json=body or {})
    assert response.status_code == 200, response.text
    return response.json()


async def slow_token_endpoint(http: httpx.AsyncClient) -> None:
    """Token answers after a pause, so concurrent callers really overlap in process."""
    await sandbox(
        http,
        "/_sandbox/faults",
        {"latency": [{"vendor": "netsuite", "operation": "oauth_token", "ms": 30}]},
    )


async def test_one_token_serves_every_call(
    keys: KeyPair, state: SandboxState, client: tuple[httpx.AsyncClient, Recorder]
) -> None:
    http, _ = client
    erp = build_erp(settings_for(keys), http)
    assert isinstance(erp, NetSuiteErp)
    for _ in range(3):
        assert await erp.suiteql("probe", QUERY)
    assert token_requests(state) == 1


async def test_twenty_concurrent_calls_cause_one_token_request(
    keys: KeyPair, state: SandboxState, client: tuple[httpx.AsyncClient, Recorder]
) -> None:
    http, _ = client
    erp = build_erp(settings_for(keys), http)
    assert isinstance(erp, NetSuiteErp)
    await slow_token_endpoint(http)
    rows = await asyncio.gather(*(erp.suiteql("probe", QUERY) for _ in range(20)))
    assert all(rows)
    assert token_requests(state) == 1


async def test_a_token_is_replaced_a_minute_before_its_expires_in(
    keys: KeyPair, state: SandboxState, client: tuple[httpx.AsyncClient, Recorder]
) -> None:
    """NetSuite says expires_in 3600: the token is used for 59 minutes, then replaced before
    the API ever refuses it."""
    http, recorder = client
    clock = Clock()
    erp = erp_with_clock(http, keys, clock)
    await erp.suiteql("probe", QUERY)
    clock.now += 3539
    await erp.suiteql("probe", QUERY)
    assert token_requests(state) == 1
    clock.now += 2
    await erp.suiteql("probe", QUERY)
    assert token_requests(state) == 2
    assert 401 not in recorder.statuses


async def test_a_token_refused_mid_life_is_refreshed_once_and_the_call_succeeds(
    keys: KeyPair, state: SandboxState, client: tuple[httpx.AsyncClient, Recorder]
) -> None:
    http, recorder = client
    erp = build_erp(settings_for(keys), http)
    assert isinstance(erp, NetSuiteErp)
    await erp.suiteql("probe", QUERY)
    assert await sandbox(http, "/_sandbox/oauth/netsuite/expire") == {"expired": 1}
    assert await erp.suiteql("probe", QUERY)
    assert token_requests(state) == 2
    assert recorder.statuses.count(401) == 1


async def test_a_second_401_after_a_refresh_is_a_transient_auth_failure(
    keys: KeyPair, state: SandboxState, client: tuple[httpx.AsyncClient, Recorder]
) -> None:
    http, _ = client
    erp = build_erp(settings_for(keys), http)
    assert isinstance(erp, NetSuiteErp)
    await sandbox(
        http,
        "/_sandbox/faults",
        {"faults": [{"vendor": "netsuite", "operation": "suiteql", "status": 401, "times": 2}]},
    )
    with pytest.raises(TransientError) as caught:
        await erp.suiteql("probe", QUERY)
    assert (caught.value.status, caught.value.code) == (401, "INVALID_LOGIN")
    assert "REVSYNC_NETSUITE_CERTIFICATE_ID" in caught.value.message
    assert token_requests(state) == 2


async def test_an_assertion_signed_by_an_unmapped_key_is_a_transient_failure_naming_settings(
    tmp_path: Path, state: SandboxState, client: tuple[httpx.AsyncClient, Recorder]
) -> None:
    http, _ = client
    erp = build_erp(settings_for(new_key_pair(tmp_path, "other.pem")), http)
    assert isinstance(erp, NetSuiteErp)
    with pytest.raises(TransientError) as caught:
        await erp.suiteql("probe", QUERY)
    error = caught.value
    assert (error.operation, error.status, error.code) == ("oauth_token", 400, "invalid_grant")
    assert "REVSYNC_NETSUITE_PRIVATE_KEY_PATH" in error.message


async def test_an_unknown_certificate_id_is_invalid_client(
    keys: KeyPair, client: tuple[httpx.AsyncClient, Recorder]
) -> None:
    http, _ = client
    erp = build_erp(settings_for(keys, netsuite_certificate_id="not-mapped"), http)
    assert isinstance(erp, NetSuiteErp)
    with pytest.raises(TransientError) as caught:
        await erp.suiteql("probe", QUERY)
    assert caught.value.code == "invalid_client"
    assert "REVSYNC_NETSUITE_CERTIFICATE_ID" in caught.value.message


async def test_the_client_assertion_is_ps256_with_kid_and_the_claims_netsuite_wants(
    keys: KeyPair, state: SandboxState, client: tuple[httpx.AsyncClient, Recorder]
) -> None:
    http, recorder = client
    erp = build_erp(settings_for(keys), http)
    assert isinstance(erp, NetSuiteErp)
    await erp.suiteql("probe", QUERY)
    (form,) = recorder.forms("/oauth2/v1/token")
    assert form["grant_type"] == "client_credentials"
    assert form["client_assertion_type"] == (
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    )
    header, claims = verified_jwt(form["client_assertion"], keys.key.public_key())
    assert header == {"alg": "PS256", "typ": "JWT", "kid": CERTIFICATE_ID}
    assert claims["iss"] == CLIENT_ID
    assert claims["aud"] == TOKEN_URL
    assert claims["scope"] == "rest_webservices"
    assert 0 < claims["exp"] - claims["iat"] <= 3600
    assert abs(claims["iat"] - state.oauth["netsuite"].wall_clock()) < 60


@pytest.mark.parametrize(
    ("claims", "algorithm", "error"),
    [
        ({"aud": "https://elsewhere.example/token"}, "PS256", "invalid_grant"),
        ({"scope": "restlets"}, "PS256", "invalid_scope"),
        ({"exp": 10_000}, "PS256", "invalid_grant"),  # expired long ago
        ({"exp_after_iat": 7200}, "PS256", "invalid_grant"),  # lives over an hour
        ({}, "RS256", "invalid_grant"),  # NetSuite takes PSS signatures
    ],
)
async def test_the_emulator_refuses_assertions_netsuite_would_refuse(
    keys: KeyPair,
    state: SandboxState,
    client: tuple[httpx.AsyncClient, Recorder],
    claims: dict[str, Any],
    algorithm: Any,
    error: str,
) -> None:
    http, _ = client
    now = int(state.oauth["netsuite"].wall_clock())
    body: dict[str, Any] = {
        "iss": CLIENT_ID,
        "scope": "rest_webservices",
        "aud": TOKEN_URL,
        "iat": now,
        "exp": now + 300,
    }
    if "exp_after_iat" in claims:
        body["exp"] = now + claims.pop("exp_after_iat")
    body.update(claims)
    assertion = sign_jwt(body, keys.key, algorithm=algorithm, key_id=CERTIFICATE_ID)
    response = await http.post(
        TOKEN_URL,
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
    )
    assert response.status_code == 400
    assert response.json()["error"] == error
    # The same assertion with the right claims passes: the refusal is about the claim.
    good = sign_jwt(
        {**body, "aud": TOKEN_URL, "scope": "rest_webservices", "iat": now, "exp": now + 300},
        keys.key,
        algorithm="PS256",
        key_id=CERTIFICATE_ID,
    )
    ok = await http.post(
        TOKEN_URL,
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": good,
        },
    )
    assert ok.status_code == 200
    assert ok.json()["expires_in"] == "3600"
    assert ok.json()["token_type"] == "bearer"


async def test_static_tokens_keep_working(
    state: SandboxState, client: tuple[httpx.AsyncClient, Recorder]
) -> None:
    http, _ = client
    erp = build_erp(Settings(netsuite_base_url=BASE_URL), http)
    assert isinstance(erp, NetSuiteErp)
    assert await erp.suiteql("probe", QUERY)
    assert token_requests(state) == 0


async def test_a_token_endpoint_outage_is_transient(
    keys: KeyPair, state: SandboxState, client: tuple[httpx.AsyncClient, Recorder]
) -> None:
    http, _ = client
    erp = build_erp(settings_for(keys), http)
    assert isinstance(erp, NetSuiteErp)
    await sandbox(
        http,
        "/_sandbox/faults",
        {"faults": [{"vendor": "netsuite", "operation": "oauth_token", "status": 502}]},
    )
    with pytest.raises(TransientError) as caught:
        await erp.suiteql("probe", QUERY)
    assert (caught.value.operation, caught.value.status) == ("oauth_token", 502)
    assert await erp.suiteql("probe", QUERY)


@pytest.mark.parametrize(
    ("unset", "setting"),
    [
        ("netsuite_client_id", "REVSYNC_NETSUITE_CLIENT_ID"),
        ("netsuite_certificate_id", "REVSYNC_NETSUITE_CERTIFICATE_ID"),
        ("netsuite_private_key_path", "REVSYNC_NETSUITE_PRIVATE_KEY_PATH"),
    ],
)
def test_a_missing_credential_fails_at_build_naming_it(
    unset: str, setting: str, keys: KeyPair
) -> None:
    with pytest.raises(MissingSetting) as caught:
        build_erp(settings_for(keys, **{unset: None}), httpx.AsyncClient())
    assert caught.value.setting == setting
