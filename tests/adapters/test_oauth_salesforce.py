"""Salesforce OAuth (client credentials and JWT bearer) against the emulator's token
endpoint: the adapter built from settings exactly as a crm worker builds it."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from pydantic import ValidationError
from temporalio.exceptions import ApplicationError

from activities.classify import vendor_call
from adapters.errors import TransientError
from adapters.oauth import sign_jwt
from adapters.registry import build_crm
from revsync.logs import configure_logging
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

BASE_URL = "http://sandbox/salesforce"
TOKEN_PATH = "/services/oauth2/token"
CLIENT_ID = "3MVG9revsync.test.consumer.key"
CLIENT_SECRET = "client-secret-under-test-9f8e7d"
USERNAME = "integration@revsync.example"
ACCOUNT = "0015e00000NordDE1"
MODES = ["client_credentials", "jwt"]


@pytest.fixture
def keys(tmp_path: Path) -> KeyPair:
    return new_key_pair(tmp_path)


@pytest.fixture
def server_clock() -> Clock:
    return Clock()


@pytest.fixture
def state(keys: KeyPair, server_clock: Clock) -> SandboxState:
    state = SandboxState()
    server = state.oauth["salesforce"]
    server.clock = server_clock
    server.register(
        OAuthClient(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            public_key_pem=keys.public_pem,
            username=USERNAME,
        )
    )
    return state


@pytest.fixture
async def client(state: SandboxState) -> AsyncIterator[tuple[httpx.AsyncClient, Recorder]]:
    async with recording_client(state) as pair:
        yield pair


def settings_for(mode: str, keys: KeyPair, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "salesforce_base_url": BASE_URL,
        "salesforce_auth": mode,
        "salesforce_client_id": CLIENT_ID,
    }
    if mode == "client_credentials":
        values["salesforce_client_secret"] = CLIENT_SECRET
    else:
        values["salesforce_private_key_path"] = keys.path
        values["salesforce_username"] = USERNAME
    values.update(overrides)
    return Settings(**values)


def token_requests(state: SandboxState) -> int:
    return state.oauth["salesforce"].token_requests


async def slow_token_endpoint(http: httpx.AsyncClient) -> None:
    """The emulator answers token requests after a pause, so concurrent callers really
    overlap (in process, an unpaused answer finishes before the next caller starts)."""
    response = await http.post(
        "/_sandbox/faults",
        json={"latency": [{"vendor": "salesforce", "operation": "oauth_token", "ms": 30}]},
    )
    assert response.status_code == 200, response.text


async def inject(http: httpx.AsyncClient, **rule: Any) -> None:
    response = await http.post(
        "/_sandbox/faults", json={"faults": [{"vendor": "salesforce", **rule}]}
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("mode", MODES)
async def test_one_token_serves_every_call(
    mode: str, keys: KeyPair, state: SandboxState, client: tuple[httpx.AsyncClient, Recorder]
) -> None:
    http, _ = client
    crm = build_crm(settings_for(mode, keys), http)
    for _ in range(3):
        assert (await crm.get_account(ACCOUNT)).account_id == ACCOUNT
    assert token_requests(state) == 1


@pytest.mark.parametrize("mode", MODES)
async def test_twenty_concurrent_calls_cause_one_token_request(
    mode: str, keys: KeyPair, state: SandboxState, client: tuple[httpx.AsyncClient, Recorder]
) -> None:
    http, _ = client
    crm = build_crm(settings_for(mode, keys), http)
    await slow_token_endpoint(http)
    accounts = await asyncio.gather(*(crm.get_account(ACCOUNT) for _ in range(20)))
    assert {a.account_id for a in accounts} == {ACCOUNT}
    assert token_requests(state) == 1


@pytest.mark.parametrize("mode", MODES)
async def test_an_expired_session_is_refreshed_once_and_the_call_succeeds(
    mode: str,
    keys: KeyPair,
    state: SandboxState,
    server_clock: Clock,
    client: tuple[httpx.AsyncClient, Recorder],
) -> None:
    """Salesforce answers no expires_in: the session times out by policy and the API says
    401 INVALID_SESSION_ID; the adapter fetches a new token and sends the call again."""
    http, recorder = client
    crm = build_crm(settings_for(mode, keys), http)
    await crm.get_account(ACCOUNT)
    server_clock.now += state.oauth["salesforce"].token_lifetime + 1
    assert (await crm.get_account(ACCOUNT)).account_id == ACCOUNT
    assert token_requests(state) == 2
    assert recorder.statuses.count(401) == 1


@pytest.mark.parametrize("mode", MODES)
async def test_tokens_revoked_mid_life_cost_one_refresh_for_concurrent_calls(
    mode: str, keys: KeyPair, state: SandboxState, client: tuple[httpx.AsyncClient, Recorder]
) -> None:
    http, _ = client
    crm = build_crm(settings_for(mode, keys), http)
    await crm.get_account(ACCOUNT)
    expired = await http.post("/_sandbox/oauth/salesforce/expire")
    assert expired.json() == {"expired": 1}
    await slow_token_endpoint(http)
    accounts = await asyncio.gather(*(crm.get_account(ACCOUNT) for _ in range(10)))
    assert len(accounts) == 10
    assert token_requests(state) == 2


@pytest.mark.parametrize("mode", MODES)
async def test_a_second_401_after_a_refresh_is_a_transient_auth_failure(
    mode: str, keys: KeyPair, state: SandboxState, client: tuple[httpx.AsyncClient, Recorder]
) -> None:
    http, _ = client
    crm = build_crm(settings_for(mode, keys), http)
    await inject(http, operation="query", status=401, times=2, code="INVALID_SESSION_ID")
    with pytest.raises(TransientError) as caught:
        await crm.get_account(ACCOUNT)
    assert (caught.value.status, caught.value.code) == (401, "INVALID_SESSION_ID")
    assert "REVSYNC_SALESFORCE_CLIENT_ID" in caught.value.message
    assert token_requests(state) == 2
    # Nothing is stuck: with the fault gone, the next call works.
    assert (await crm.get_account(ACCOUNT)).account_id == ACCOUNT


async def test_a_wrong_client_secret_is_a_transient_failure_naming_the_settings(
    keys: KeyPair, state: SandboxState, client: tuple[httpx.AsyncClient, Recorder]
) -> None:
    http, _ = client
    settings = settings_for("client_credentials", keys, salesforce_client_secret="not-it-123")
    crm = build_crm(settings, http)
    with pytest.raises(TransientError) as caught:
        await crm.get_account(ACCOUNT)
    error = caught.value
    assert (error.operation, error.status, error.code) == ("oauth_token", 400, "invalid_client")
    assert "REVSYNC_SALESFORCE_CLIENT_SECRET" in error.message
    assert "not-it-123" not in error.describe()


async def test_a_jwt_signed_by_another_key_is_refused_naming_the_key_setting(
    tmp_path: Path, state: SandboxState, client: tuple[httpx.AsyncClient, Recorder]
) -> None:
    http, _ = client
    other = new_key_pair(tmp_path, "other.pem")
    crm = build_crm(settings_for("jwt", other), http)
    with pytest.raises(TransientError) as caught:
        await crm.get_account(ACCOUNT)
    assert caught.value.code == "invalid_grant"
    assert "REVSYNC_SALESFORCE_PRIVATE_KEY_PATH" in caught.value.message


async def test_an_unavailable_token_endpoint_is_transient_and_one_failure_for_all_waiters(
    keys: KeyPair, state: SandboxState, client: tuple[httpx.AsyncClient, Recorder]
) -> None:
    http, _ = client
    crm = build_crm(settings_for("client_credentials", keys), http)
    await slow_token_endpoint(http)
    await inject(http, operation="oauth_token", status=503)
    results = await asyncio.gather(
        *(crm.get_account(ACCOUNT) for _ in range(20)), return_exceptions=True
    )
    assert all(isinstance(r, TransientError) and r.status == 503 for r in results)
    assert token_requests(state) == 1
    assert (await crm.get_account(ACCOUNT)).account_id == ACCOUNT
    assert token_requests(state) == 2


async def test_the_jwt_sent_is_rs256_signed_with_the_claims_salesforce_wants(
    keys: KeyPair, state: SandboxState, client: tuple[httpx.AsyncClient, Recorder]
) -> None:
    http, recorder = client
    crm = build_crm(settings_for("jwt", keys), http)
    await crm.get_account(ACCOUNT)
    (form,) = recorder.forms(TOKEN_PATH)
    assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    header, claims = verified_jwt(form["assertion"], keys.key.public_key())
    assert header["alg"] == "RS256"
    assert claims["iss"] == CLIENT_ID
    assert claims["sub"] == USERNAME
    # The login server, not the host the token request went to (the org's My Domain).
    assert claims["aud"] == "https://login.salesforce.com"
    sent_at = state.oauth["salesforce"].wall_clock()
    assert sent_at < claims["exp"] <= sent_at + 300


async def test_the_token_endpoint_refuses_an_assertion_addressed_to_the_orgs_own_host(
    keys: KeyPair, state: SandboxState, client: tuple[httpx.AsyncClient, Recorder]
) -> None:
    http, _ = client
    now = int(state.oauth["salesforce"].wall_clock())
    for audience in ("http://sandbox", BASE_URL, "https://test.salesforce.com"):
        assertion = sign_jwt(
            {"iss": CLIENT_ID, "sub": USERNAME, "aud": audience, "exp": now + 180}, keys.key
        )
        refused = await http.post(
            BASE_URL + TOKEN_PATH,
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": assertion,
            },
        )
        assert refused.status_code == 400
        assert refused.json() == {
            "error": "invalid_grant",
            "error_description": "audience is invalid",
        }
    assert state.oauth["salesforce"].issued() == []


async def test_a_sandbox_org_takes_the_test_login_server_as_audience(
    keys: KeyPair, state: SandboxState, client: tuple[httpx.AsyncClient, Recorder]
) -> None:
    http, _ = client
    state.oauth["salesforce"].audience = "https://test.salesforce.com"  # a sandbox org
    production = build_crm(settings_for("jwt", keys), http)
    with pytest.raises(TransientError) as caught:
        await production.get_account(ACCOUNT)
    assert caught.value.code == "invalid_grant"
    assert "audience is invalid" in caught.value.message
    assert "REVSYNC_SALESFORCE_JWT_AUDIENCE" in caught.value.message

    sandbox_org = build_crm(
        settings_for("jwt", keys, salesforce_jwt_audience="https://test.salesforce.com/"), http
    )
    assert (await sandbox_org.get_account(ACCOUNT)).account_id == ACCOUNT


@pytest.mark.parametrize(
    "audience",
    [
        "https://acme.my.salesforce.com",  # the org's My Domain
        "https://acme--uat.sandbox.my.salesforce.com",
        "https://na34.salesforce.com",  # an instance URL
        "https://acme.lightning.force.com",
        "http://login.salesforce.com",
        "login.salesforce.com",
    ],
)
def test_the_audience_setting_refuses_the_orgs_own_hosts(audience: str) -> None:
    with pytest.raises(ValidationError, match="Salesforce JWT audience"):
        Settings(salesforce_jwt_audience=audience)


def test_the_audience_defaults_to_the_login_server() -> None:
    assert Settings().salesforce_jwt_audience == "https://login.salesforce.com"
    site = Settings(salesforce_jwt_audience="https://acme.my.site.com/customers")
    assert site.salesforce_jwt_audience == "https://acme.my.site.com/customers"  # Experience Cloud


async def test_client_credentials_send_the_client_id_and_secret(
    keys: KeyPair, client: tuple[httpx.AsyncClient, Recorder]
) -> None:
    http, recorder = client
    crm = build_crm(settings_for("client_credentials", keys), http)
    await crm.get_account(ACCOUNT)
    assert recorder.forms(TOKEN_PATH) == [
        {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    ]


@pytest.mark.parametrize("mode", MODES)
async def test_calls_go_to_the_instance_url_the_token_answer_names(
    mode: str, keys: KeyPair, state: SandboxState, client: tuple[httpx.AsyncClient, Recorder]
) -> None:
    """The login host is not the org's instance: the configured base URL locates the token
    endpoint only, and every API call goes where the token answer says."""
    http, recorder = client
    state.oauth["salesforce"].instance_url = BASE_URL
    settings = settings_for(
        mode,
        keys,
        salesforce_base_url="http://sandbox/login-host",
        salesforce_token_url=f"{BASE_URL}{TOKEN_PATH}",
    )
    crm = build_crm(settings, http)
    assert (await crm.get_account(ACCOUNT)).account_id == ACCOUNT
    api = recorder.api_urls("/services/data/")
    assert api and all(url.startswith(f"{BASE_URL}/services/data/v61.0/") for url in api)


async def test_static_tokens_keep_working_and_a_refusal_names_the_token_setting(
    keys: KeyPair, state: SandboxState, client: tuple[httpx.AsyncClient, Recorder]
) -> None:
    http, _ = client
    crm = build_crm(Settings(salesforce_base_url=BASE_URL), http)
    assert (await crm.get_account(ACCOUNT)).account_id == ACCOUNT
    revoked = build_crm(
        Settings(salesforce_base_url=BASE_URL, salesforce_access_token="revoked-token"), http
    )
    with pytest.raises(TransientError) as caught:
        await revoked.get_account(ACCOUNT)
    assert caught.value.status == 401
    assert "REVSYNC_SALESFORCE_ACCESS_TOKEN" in caught.value.message
    assert token_requests(state) == 0


@pytest.mark.parametrize(
    ("mode", "unset", "setting"),
    [
        ("client_credentials", "salesforce_client_secret", "REVSYNC_SALESFORCE_CLIENT_SECRET"),
        ("client_credentials", "salesforce_client_id", "REVSYNC_SALESFORCE_CLIENT_ID"),
        ("jwt", "salesforce_private_key_path", "REVSYNC_SALESFORCE_PRIVATE_KEY_PATH"),
        ("jwt", "salesforce_username", "REVSYNC_SALESFORCE_USERNAME"),
    ],
)
def test_a_missing_credential_of_the_chosen_mode_fails_at_build_naming_it(
    mode: str, unset: str, setting: str, keys: KeyPair
) -> None:
    settings = settings_for(mode, keys, **{unset: None})
    with pytest.raises(MissingSetting) as caught:
        build_crm(settings, httpx.AsyncClient())
    assert caught.value.setting == setting


def test_an_unreadable_or_wrong_private_key_fails_at_build(tmp_path: Path, keys: KeyPair) -> None:
    missing = settings_for("jwt", keys, salesforce_private_key_path=tmp_path / "absent.pem")
    with pytest.raises(MissingSetting, match=r"REVSYNC_SALESFORCE_PRIVATE_KEY_PATH.*cannot read"):
        build_crm(missing, httpx.AsyncClient())
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    with pytest.raises(MissingSetting, match="not an unencrypted PEM private key"):
        build_crm(
            settings_for("jwt", keys, salesforce_private_key_path=garbage), httpx.AsyncClient()
        )


async def test_nothing_secret_reaches_the_logs(
    keys: KeyPair, state: SandboxState, client: tuple[httpx.AsyncClient, Recorder]
) -> None:
    """Successful and failing calls, logged as activities log them (HTTP client at DEBUG):
    neither the client secret, the issued tokens, the JWT assertion nor the private key
    appear."""
    http, recorder = client
    settings = settings_for("client_credentials", keys)
    assert CLIENT_SECRET in settings.secret_values()
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    structlog.reset_defaults()
    configure_logging(
        logging.DEBUG, log_format="json", secrets=settings.secret_values(), stream=stream
    )
    logging.getLogger("httpx").setLevel(logging.DEBUG)
    try:
        crm = build_crm(settings, http)
        jwt_crm = build_crm(settings_for("jwt", keys), http)
        with vendor_call("salesforce"):
            await crm.get_account(ACCOUNT)
            await jwt_crm.get_account(ACCOUNT)
        await inject(http, operation="query", status=401, times=2)
        with pytest.raises(ApplicationError), vendor_call("salesforce"):
            await crm.get_account(ACCOUNT)
        wrong = build_crm(
            settings_for("client_credentials", keys, salesforce_client_secret="x" * 12), http
        )
        with pytest.raises(ApplicationError), vendor_call("salesforce"):
            await wrong.get_account(ACCOUNT)
    finally:
        structlog.reset_defaults()
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
        root.setLevel(level)
    output = stream.getvalue()
    assert output.count("vendor call failed") == 2
    leaks = [CLIENT_SECRET, *state.oauth["salesforce"].issued()]
    leaks += [form["assertion"] for form in recorder.forms(TOKEN_PATH) if "assertion" in form]
    leaks += [line for line in keys.private_pem.decode().splitlines() if "KEY" not in line][:3]
    assert len(leaks) >= 7  # the secret, three live tokens, one assertion, key lines
    assert [leak for leak in leaks if leak in output] == []
    for line in output.splitlines():
        json.loads(line)
