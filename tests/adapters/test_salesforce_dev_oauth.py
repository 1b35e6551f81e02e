"""`revsync dev`'s key pair for the signed OAuth modes: made once and kept, its certificate
registered with the sandbox's Salesforce and NetSuite token endpoints, so the JWT modes work
against the dev stack with nothing set by hand."""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters import registry
from adapters.errors import VendorError
from revsync.devsecrets import (
    DEV_CERT_FILE,
    DEV_KEY_FILE,
    dev_oauth_clients,
    ensure_dev_secrets,
    with_secrets,
)
from revsync.settings import Settings
from sandbox.app import SandboxState, create_app
from sandbox.oauth import OAuthClient
from sandbox.salesforce import ORG_ID


def dev_settings(data_dir: Path, **overrides: Any) -> Settings:
    return Settings.model_validate(
        {
            "data_dir": data_dir,
            "salesforce_base_url": "http://sandbox/salesforce",
            "netsuite_base_url": "http://sandbox/netsuite",
            **overrides,
        }
    )


def sandbox_for(settings: Settings) -> SandboxState:
    """The sandbox as ``revsync sandbox`` starts it with these settings."""
    state = SandboxState()
    for vendor, client in dev_oauth_clients(settings):
        state.oauth[vendor].register(OAuthClient(**client))
    return state


@pytest.fixture
async def wired(tmp_path: Path) -> AsyncIterator[tuple[Settings, SandboxState, httpx.AsyncClient]]:
    base = dev_settings(tmp_path, salesforce_auth="jwt", netsuite_auth="client_credentials")
    settings = with_secrets(base, ensure_dev_secrets(base))
    state = sandbox_for(settings)
    transport = httpx.ASGITransport(app=create_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as http:
        yield settings, state, http


def test_the_key_pair_is_made_once_and_kept(tmp_path: Path):
    settings = dev_settings(tmp_path)
    first = ensure_dev_secrets(settings)
    key = (tmp_path / DEV_KEY_FILE).read_bytes()
    cert = (tmp_path / DEV_CERT_FILE).read_bytes()

    assert ensure_dev_secrets(settings) == first
    assert (tmp_path / DEV_KEY_FILE).read_bytes() == key
    assert (tmp_path / DEV_CERT_FILE).read_bytes() == cert
    assert stat.S_IMODE((tmp_path / DEV_KEY_FILE).stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in key and b"BEGIN CERTIFICATE" in cert
    assert first["REVSYNC_SALESFORCE_PRIVATE_KEY_PATH"] == str(tmp_path / DEV_KEY_FILE)
    assert first["REVSYNC_NETSUITE_PRIVATE_KEY_PATH"] == str(tmp_path / DEV_KEY_FILE)
    assert first["REVSYNC_SALESFORCE_ORG_IDS"] == f'["{ORG_ID}"]'


def test_configured_credentials_are_never_replaced(tmp_path: Path):
    own_key = tmp_path / "own.pem"
    settings = dev_settings(
        tmp_path,
        salesforce_client_id="3MVG9-mine",
        salesforce_private_key_path=own_key,
        salesforce_org_ids=["00D5g000004Jx9QEAS"],
    )
    supplied = ensure_dev_secrets(settings)
    assert "REVSYNC_SALESFORCE_CLIENT_ID" not in supplied
    assert "REVSYNC_SALESFORCE_PRIVATE_KEY_PATH" not in supplied
    assert "REVSYNC_SALESFORCE_ORG_IDS" not in supplied
    # A key of one's own has its own certificate: the sandbox is not told the dev one.
    registered = dict(dev_oauth_clients(with_secrets(settings, supplied)))
    assert "salesforce" not in registered
    assert registered["netsuite"]["certificate_id"] == supplied["REVSYNC_NETSUITE_CERTIFICATE_ID"]


async def test_salesforce_jwt_bearer_works_against_the_dev_sandbox(wired):
    settings, state, http = wired
    crm = registry.salesforce_crm(settings, http)
    customer = await crm.get_account("0015e00000AcmeUS1")
    assert customer.name == "Acme Robotics"
    assert state.oauth["salesforce"].token_requests == 1


async def test_salesforce_client_credentials_works_too(wired):
    settings, state, http = wired
    crm = registry.salesforce_crm(
        settings.model_copy(update={"salesforce_auth": "client_credentials"}), http
    )
    assert (await crm.get_account("0015e00000NordDE1")).currency == "EUR"
    assert state.oauth["salesforce"].token_requests == 1


async def test_netsuite_m2m_client_credentials_works_against_the_dev_sandbox(wired):
    settings, state, http = wired
    erp = registry.netsuite_erp(settings, http)
    page = await erp.list_customers(None, 10)
    assert page.items is not None
    assert state.oauth["netsuite"].token_requests == 1


async def test_without_the_registration_the_token_endpoint_refuses(tmp_path: Path):
    base = dev_settings(tmp_path, salesforce_auth="jwt")
    settings = with_secrets(base, ensure_dev_secrets(base))
    transport = httpx.ASGITransport(app=create_app(SandboxState()))  # not told the certificate
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as http:
        crm = registry.salesforce_crm(settings, http)
        with pytest.raises(VendorError, match="invalid_client_id"):
            await crm.get_account("0015e00000AcmeUS1")
