"""Which vendor serves each port: the one place a vendor name becomes an adapter.

``REVSYNC_CRM``, ``REVSYNC_BILLING`` and ``REVSYNC_ERP`` name the vendor of each port
(:class:`Port`). For every port this module maps each vendor revsync has an adapter for to
a *factory*: a function building that adapter from the settings and the worker's shared HTTP
client. Everything vendor-specific about constructing an adapter (which settings it reads,
which credentials it needs) lives in its factory, so the workers (``workers/build.py``) and
the port contract suite (``tests/ports/``) never name a vendor.

A factory checks the credentials of its own vendor only and raises
:class:`~revsync.settings.MissingSetting` naming the first one missing; an unknown vendor is an
:class:`~revsync.settings.InvalidSetting` listing the available ones. Both reach the worker
at start, before it polls a task queue. Building an adapter sends nothing: no request leaves
before the first activity.

Registering a vendor (docs/adapters.md, "Settings and the worker"): write the factory below,
add it to the port's table, and add the vendor's emulator entry to ``tests/ports/emulators.py``
so the port's contract suite runs against it.

Every adapter the ``build_*`` functions return is behind the shadow-mode gate when its vendor
is in shadow mode (``REVSYNC_<VENDOR>_MODE``; docs/shadow-mode.md): the one place every write
to a vendor passes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import TypeVar

import httpx

from adapters.billing.stripe import StripeBilling
from adapters.billing.zuora import ZuoraBilling
from adapters.crm.hubspot import HubSpotCrm
from adapters.crm.salesforce import SalesforceCrm
from adapters.erp.dynamics import DynamicsErp
from adapters.erp.netsuite import NetSuiteErp
from adapters.erp.sap import SapErp
from adapters.ports import BillingPort, CrmPort, ErpPort
from adapters.shadow.build import gated_billing, gated_crm, gated_erp
from adapters.vendor_auth import (
    dynamics_tokens,
    hubspot_tokens,
    netsuite_tokens,
    salesforce_tokens,
    sap_tokens,
)
from revsync.settings import InvalidSetting, MissingSetting, Settings

A = TypeVar("A")

# Builds one port adapter from the settings and the worker's HTTP client.
Factory = Callable[[Settings, httpx.AsyncClient], A]


class Port(StrEnum):
    """A port chosen by configuration; its value is the setting's name (``REVSYNC_CRM``)."""

    CRM = "crm"
    BILLING = "billing"
    ERP = "erp"

    @property
    def label(self) -> str:
        """How messages name the port."""
        return "CRM" if self is Port.CRM else "ERP" if self is Port.ERP else "billing"


def _require_text(settings: Settings, name: str, why: str) -> str:
    value = getattr(settings, name)
    if not isinstance(value, str) or not value.strip():
        raise MissingSetting(name, why)
    return value


# -- factories, one per vendor ----------------------------------------------------------------


def salesforce_crm(settings: Settings, http: httpx.AsyncClient) -> CrmPort:
    return SalesforceCrm(
        http,
        base_url=_require_text(settings, "salesforce_base_url", "the Salesforce instance URL"),
        api_version=_require_text(settings, "salesforce_api_version", "e.g. v61.0"),
        tokens=salesforce_tokens(settings, http),
    )


def hubspot_crm(settings: Settings, http: httpx.AsyncClient) -> HubSpotCrm:
    """HubSpot as the CRM (also the gateway's reader of closed-won deals)."""
    try:
        return HubSpotCrm(
            http,
            base_url=_require_text(settings, "hubspot_base_url", "the HubSpot API base URL"),
            tokens=hubspot_tokens(settings, http),
            closed_won_stage=settings.hubspot_closed_won_stage,
            order_object=settings.hubspot_order_object,
            account_timezone=settings.hubspot_account_timezone,
        )
    except ValueError as error:  # an order object type HubSpot cannot have
        raise InvalidSetting(
            "hubspot_order_object", settings.hubspot_order_object, str(error)
        ) from None


def stripe_billing(settings: Settings, http: httpx.AsyncClient) -> BillingPort:
    return StripeBilling(
        http,
        base_url=_require_text(settings, "stripe_base_url", "the Stripe API base URL"),
        api_key=settings.require_secret(
            "stripe_api_key", "billing is Stripe (REVSYNC_BILLING)"
        ).get_secret_value(),
        accounting_timezone=settings.accounting_timezone,
    )


def dynamics_erp(settings: Settings, http: httpx.AsyncClient) -> ErpPort:
    return DynamicsErp(
        http,
        base_url=_require_text(settings, "dynamics_base_url", "the Dynamics environment URL"),
        tokens=dynamics_tokens(settings, http),
        price_list_prefix=settings.dynamics_price_list_prefix,
        deferred_revenue_account=settings.dynamics_deferred_revenue_account,
        revenue_account=settings.dynamics_revenue_account,
    )


def netsuite_erp(settings: Settings, http: httpx.AsyncClient) -> ErpPort:
    return NetSuiteErp(
        http,
        base_url=_require_text(settings, "netsuite_base_url", "the NetSuite REST base URL"),
        tokens=netsuite_tokens(settings, http),
        deferred_revenue_account=settings.netsuite_deferred_revenue_account,
        revenue_account=settings.netsuite_revenue_account,
        tax_code=settings.netsuite_tax_code,
    )


def sap_erp(settings: Settings, http: httpx.AsyncClient) -> ErpPort:
    base_url = _require_text(settings, "sap_base_url", "the S/4HANA Cloud API host URL")
    organization, company = settings.sap_sales_organization, settings.sap_company_code
    if settings.sap_auth == "basic":
        why = "the ERP is SAP with REVSYNC_SAP_AUTH=basic"
        return SapErp(
            http,
            base_url=base_url,
            username=_require_text(settings, "sap_username", why),
            password=settings.require_secret("sap_password", why).get_secret_value(),
            sales_organization=organization,
            company_code=company,
        )
    return SapErp(
        http,
        base_url=base_url,
        tokens=sap_tokens(settings, http),
        fix="REVSYNC_SAP_CLIENT_ID and REVSYNC_SAP_CLIENT_SECRET",
        sales_organization=organization,
        company_code=company,
    )


def zuora_billing(settings: Settings, http: httpx.AsyncClient) -> BillingPort:
    why = "billing is Zuora (REVSYNC_BILLING)"
    return ZuoraBilling(
        http,
        base_url=_require_text(settings, "zuora_base_url", "the Zuora REST endpoint"),
        client_id=_require_text(settings, "zuora_client_id", why),
        client_secret=settings.require_secret("zuora_client_secret", why).get_secret_value(),
    )


# -- the tables -------------------------------------------------------------------------------

CRM_VENDORS: Mapping[str, Factory[CrmPort]] = {
    "salesforce": salesforce_crm,
    "hubspot": hubspot_crm,
}
BILLING_VENDORS: Mapping[str, Factory[BillingPort]] = {
    "stripe": stripe_billing,
    "zuora": zuora_billing,
}
ERP_VENDORS: Mapping[str, Factory[ErpPort]] = {
    "netsuite": netsuite_erp,
    "sap": sap_erp,
    "dynamics": dynamics_erp,
}

_TABLES: Mapping[Port, Mapping[str, object]] = {
    Port.CRM: CRM_VENDORS,
    Port.BILLING: BILLING_VENDORS,
    Port.ERP: ERP_VENDORS,
}


def available(port: Port) -> list[str]:
    """The vendors ``port`` can be configured with, in registration order."""
    return list(_TABLES[port])


def unavailable(port: Port, name: str) -> str | None:
    """Why vendor ``name`` cannot serve ``port`` (naming the available ones); None if it can."""
    if name in _TABLES[port]:
        return None
    return f"unknown {port.label} vendor; available: {', '.join(available(port))}"


def chosen(settings: Settings, port: Port) -> str:
    """The vendor configured for ``port``; :class:`InvalidSetting` unless it is available."""
    name: str = getattr(settings, port.value)
    why = unavailable(port, name)
    if why is not None:
        raise InvalidSetting(port.value, name, why)
    return name


def _build(
    port: Port, table: Mapping[str, Factory[A]], settings: Settings, http: httpx.AsyncClient
) -> A:
    return table[chosen(settings, port)](settings, http)


def build_crm(settings: Settings, http: httpx.AsyncClient) -> CrmPort:
    """The CRM adapter ``REVSYNC_CRM`` names, built from ``settings`` on ``http``, behind
    the shadow-mode gate when its vendor needs one (:mod:`adapters.shadow.build`)."""
    return gated_crm(_build(Port.CRM, CRM_VENDORS, settings, http), settings)


def build_billing(settings: Settings, http: httpx.AsyncClient) -> BillingPort:
    """The billing adapter ``REVSYNC_BILLING`` names (gated likewise)."""
    return gated_billing(_build(Port.BILLING, BILLING_VENDORS, settings, http), settings)


def build_erp(settings: Settings, http: httpx.AsyncClient) -> ErpPort:
    """The ERP adapter ``REVSYNC_ERP`` names (gated likewise)."""
    return gated_erp(_build(Port.ERP, ERP_VENDORS, settings, http), settings)


BUILDERS: Mapping[Port, Callable[[Settings, httpx.AsyncClient], object]] = {
    Port.CRM: build_crm,
    Port.BILLING: build_billing,
    Port.ERP: build_erp,
}


def check(settings: Settings, ports: tuple[Port, ...] = tuple(Port)) -> None:
    """Fail now, naming the setting, if any of ``ports`` is misconfigured: an unavailable
    vendor or a missing credential of the chosen one. Builds each adapter on a client that
    never sends anything (``revsync dev`` calls this before starting a process)."""
    http = httpx.AsyncClient()
    for port in ports:
        BUILDERS[port](settings, http)
