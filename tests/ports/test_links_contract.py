"""Adoption's one vendor write (``adapters.ports.CustomerLinks``): revsync's cross-reference
stamped on a customer an earlier integration made, so the port's keyed lookup finds it. For
every vendor that offers it, against its emulator; in shadow mode it is recorded, and the
lookup sees the shadow link; a vendor without it refuses, naming the setting by hand."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from adapters import registry
from adapters.errors import RejectedError
from adapters.registry import Port
from adapters.shadow.build import store_of
from adapters.shadow.gate import GatedErp, LinkUnsupported
from revsync.settings import Settings
from sandbox.app import SandboxState

GOLDEN = "0015e0LINKED00001"
LINKABLE_ERP = ("netsuite",)
LINKABLE_BILLING = ("stripe",)


def legacy_erp_customer(state: SandboxState, vendor: str, name: str) -> str:
    assert vendor == "netsuite"
    made = state.netsuite.upsert_customer(f"LEGACY-{name}", {"companyName": name}, set())
    return str(made["id"])


def legacy_billing_customer(state: SandboxState, vendor: str, name: str) -> str:
    assert vendor == "stripe"
    state.stripe.search_lag_seconds = 0
    return str(state.stripe.create_customer({"name": name})["id"])


@pytest.mark.parametrize("vendor", LINKABLE_ERP)
async def test_an_erp_customer_is_linked_once_and_found_by_revsyncs_key(
    vendor: str, settings: Settings, http: httpx.AsyncClient, state: SandboxState
) -> None:
    erp = registry.ERP_VENDORS[vendor](settings, http)
    legacy = legacy_erp_customer(state, vendor, "Legacy One")
    assert await erp.find_customer(f"acct-{GOLDEN}") is None
    await erp.link_customer(legacy, GOLDEN, "adopt:1")  # type: ignore[attr-defined]
    await erp.link_customer(legacy, GOLDEN, "adopt:1")  # type: ignore[attr-defined]
    assert await erp.find_customer(f"acct-{GOLDEN}") == legacy
    other = legacy_erp_customer(state, vendor, "Legacy Two")
    with pytest.raises(RejectedError) as taken:
        await erp.link_customer(other, GOLDEN, "adopt:2")  # type: ignore[attr-defined]
    assert taken.value.code == "DUP_RCRD"


@pytest.mark.parametrize("vendor", LINKABLE_BILLING)
async def test_a_billing_customer_is_linked_and_found_by_the_account(
    vendor: str, settings: Settings, http: httpx.AsyncClient, state: SandboxState
) -> None:
    billing = registry.BILLING_VENDORS[vendor](settings, http)
    legacy = legacy_billing_customer(state, vendor, "Legacy One")
    assert await billing.find_customer(GOLDEN) is None
    await billing.link_customer(legacy, GOLDEN, "adopt:1")  # type: ignore[attr-defined]
    await billing.link_customer(legacy, GOLDEN, "adopt:1")  # type: ignore[attr-defined]
    assert await billing.find_customer(GOLDEN) == legacy


async def test_in_shadow_mode_a_link_is_recorded_and_the_lookup_sees_it(
    settings: Settings, http: httpx.AsyncClient, state: SandboxState, tmp_path: Path
) -> None:
    shadow = settings.model_copy(
        update={"netsuite_mode": "shadow", "shadow_store": tmp_path / "s.sqlite3"}
    )
    erp = registry.build_erp(shadow, http)
    assert isinstance(erp, GatedErp)
    legacy = legacy_erp_customer(state, "netsuite", "Legacy Shadow")
    await erp.link_customer(legacy, GOLDEN, "adopt:1")
    assert await erp.find_customer(f"acct-{GOLDEN}") == legacy  # the saga reads it back
    assert state.netsuite.customers[legacy]["externalId"] == "LEGACY-Legacy Shadow"
    (recorded,) = store_of(shadow).writes(vendor="netsuite")
    assert (recorded.operation, recorded.target.key) == ("link_customer", f"acct-{GOLDEN}")


@pytest.mark.parametrize(
    "vendor", [v for v in registry.available(Port.ERP) if v not in LINKABLE_ERP]
)
async def test_an_erp_without_links_refuses_behind_the_gate(
    vendor: str, settings: Settings, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    gated = settings.model_copy(
        update={"erp": vendor, f"{vendor}_mode": "shadow", "shadow_store": tmp_path / "s.db"}
    )
    erp = registry.build_erp(gated, http)
    assert isinstance(erp, GatedErp)
    with pytest.raises(LinkUnsupported) as refused:
        await erp.link_customer("1", GOLDEN, "adopt:1")
    assert refused.value.code == "LINK_UNSUPPORTED"
