"""Vendor selection by configuration: adapters/registry.py, the workers, ``revsync dev``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from adapters import registry
from adapters.registry import Port
from revsync.cli import app
from revsync.settings import InvalidSetting, MissingSetting, Settings
from workers.build import billing_activities, check_settings, crm_activities, erp_activities


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


async def test_the_defaults_build_the_configured_vendor_of_every_port(http: httpx.AsyncClient):
    settings = Settings()
    assert (settings.crm, settings.billing, settings.erp) == ("salesforce", "stripe", "netsuite")
    assert registry.build_crm(settings, http).vendor == "salesforce"
    assert registry.build_billing(settings, http).vendor == "stripe"
    assert registry.build_erp(settings, http).vendor == "netsuite"


def test_every_port_offers_its_vendors():
    assert registry.available(Port.CRM) == ["salesforce", "hubspot"]
    assert registry.available(Port.BILLING) == ["stripe", "zuora"]
    assert registry.available(Port.ERP) == ["netsuite", "sap", "dynamics"]


@pytest.mark.parametrize(
    ("crm", "billing", "erp"),
    [("hubspot", "zuora", "sap"), ("salesforce", "stripe", "dynamics")],
)
async def test_every_vendor_builds_from_the_sandbox_defaults(
    http: httpx.AsyncClient, crm: str, billing: str, erp: str
):
    settings = Settings(crm=crm, billing=billing, erp=erp)
    assert registry.build_crm(settings, http).vendor == crm
    assert registry.build_billing(settings, http).vendor == billing
    assert registry.build_erp(settings, http).vendor == erp
    registry.check(settings)


async def test_vendor_names_ignore_case_and_blanks(http: httpx.AsyncClient):
    settings = Settings(crm=" Salesforce ", billing="STRIPE", erp="NetSuite\n")
    assert registry.build_crm(settings, http).vendor == "salesforce"
    assert registry.build_billing(settings, http).vendor == "stripe"
    assert registry.build_erp(settings, http).vendor == "netsuite"


@pytest.mark.parametrize(
    ("port", "name", "says"),
    [
        (Port.CRM, "pipedrive", "unknown CRM vendor; available: salesforce, hubspot"),
        (Port.BILLING, "", "unknown billing vendor; available: stripe, zuora"),
        (Port.ERP, "oracle", "unknown ERP vendor; available: netsuite, sap, dynamics"),
    ],
)
async def test_an_unavailable_vendor_is_refused_naming_the_setting(
    http: httpx.AsyncClient, port: Port, name: str, says: str
):
    choice: dict[str, Any] = {port.value: name}
    settings = Settings(**choice)
    with pytest.raises(InvalidSetting) as caught:
        registry.BUILDERS[port](settings, http)
    assert caught.value.setting == f"REVSYNC_{port.value.upper()}"
    assert str(caught.value).startswith(f"REVSYNC_{port.value.upper()}={name!r}: ")
    assert str(caught.value).endswith(says)
    # A worker's start refuses it the same way, before it connects.
    with pytest.raises(MissingSetting, match=f"REVSYNC_{port.value.upper()}="):
        check_settings(port.value, settings)


@pytest.mark.parametrize(
    ("port", "missing", "blank"),
    [
        (Port.CRM, "REVSYNC_SALESFORCE_ACCESS_TOKEN", {"salesforce_access_token": SecretStr(" ")}),
        (Port.CRM, "REVSYNC_SALESFORCE_BASE_URL", {"salesforce_base_url": ""}),
        (Port.BILLING, "REVSYNC_STRIPE_API_KEY", {"stripe_api_key": SecretStr("")}),
        (Port.ERP, "REVSYNC_NETSUITE_ACCESS_TOKEN", {"netsuite_access_token": SecretStr("")}),
        (
            Port.CRM,
            "REVSYNC_HUBSPOT_ACCESS_TOKEN",
            {"crm": "hubspot", "hubspot_access_token": SecretStr("")},
        ),
        (
            Port.BILLING,
            "REVSYNC_ZUORA_CLIENT_SECRET",
            {"billing": "zuora", "zuora_client_secret": SecretStr(" ")},
        ),
        (Port.ERP, "REVSYNC_SAP_PASSWORD", {"erp": "sap", "sap_password": SecretStr("")}),
        (
            Port.ERP,
            "REVSYNC_DYNAMICS_CLIENT_SECRET",
            {"erp": "dynamics", "dynamics_client_secret": SecretStr("")},
        ),
    ],
)
async def test_a_missing_credential_of_the_chosen_vendor_is_named(
    http: httpx.AsyncClient, port: Port, missing: str, blank: dict[str, Any]
):
    settings = Settings(**blank)
    with pytest.raises(MissingSetting) as caught:
        registry.BUILDERS[port](settings, http)
    assert caught.value.setting == missing
    assert not isinstance(caught.value, InvalidSetting)
    with pytest.raises(MissingSetting, match=missing):
        check_settings(port.value, settings)
    # The other ports do not need that vendor's credentials.
    for other in Port:
        if other is not port:
            registry.BUILDERS[other](settings, http)
            check_settings(other.value, settings)


def test_queues_without_a_vendor_check_nothing():
    broken = Settings(crm="pipedrive", billing="chargebee", erp="oracle")
    check_settings("orchestration", broken)
    check_settings("events", broken)


async def test_the_workers_build_their_port_through_the_registry(http: httpx.AsyncClient):
    settings = Settings(crm="pipedrive")
    with pytest.raises(InvalidSetting, match="REVSYNC_CRM"):
        crm_activities(settings, http)
    assert billing_activities(settings, http)
    assert erp_activities(settings, http)


def test_the_whole_check_names_the_first_misconfigured_port():
    registry.check(Settings())
    with pytest.raises(InvalidSetting, match="REVSYNC_ERP"):
        registry.check(Settings(erp="oracle"))
    registry.check(Settings(erp="oracle"), (Port.CRM, Port.BILLING))


def test_revsync_dev_passes_the_chosen_vendors_on(monkeypatch: pytest.MonkeyPatch):
    import revsync.devstack

    seen: list[Any] = []

    def fake_run(options: Any) -> int:
        seen.append(options)
        return 0

    monkeypatch.setattr(revsync.devstack, "run_dev_stack", fake_run)
    result = CliRunner().invoke(
        app, ["dev", "--crm", "HubSpot", "--billing", "zuora", "--erp", "sap"]
    )
    assert result.exit_code == 0, result.output
    (options,) = seen
    assert options.vendors == {"crm": "hubspot", "billing": "zuora", "erp": "sap"}


@pytest.mark.parametrize(
    ("option", "name", "says"),
    [("--crm", "pipedrive", "unknown CRM"), ("--billing", "paddle", "unknown billing")],
)
def test_revsync_dev_refuses_an_unavailable_vendor(
    monkeypatch: pytest.MonkeyPatch, option: str, name: str, says: str
):
    import revsync.devstack

    def fake_run(options: Any) -> int:
        raise AssertionError("the stack must not start")

    monkeypatch.setattr(revsync.devstack, "run_dev_stack", fake_run)
    result = CliRunner().invoke(app, ["dev", option, name])
    assert result.exit_code == 2
    assert says in " ".join(result.output.replace("│", " ").split())


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_the_dev_stack_checks_the_vendors_before_starting_anything(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
):
    from revsync.devstack import DevStackOptions, supervise

    data_dir = tmp_path / "state"
    settings = Settings(
        temporal_address=f"127.0.0.1:{_free_port()}",
        temporal_ui_port=_free_port(),
        sandbox_port=_free_port(),
        gateway_port=_free_port(),
        data_dir=data_dir,
    )
    options = DevStackOptions(settings=settings, vendors={"crm": "pipedrive"})
    assert await supervise(options) == 2
    err = capsys.readouterr().err
    assert "revsync dev cannot start: REVSYNC_CRM='pipedrive'" in err
    assert "unknown CRM vendor" in err
    assert not data_dir.exists()  # nothing started, nothing written
