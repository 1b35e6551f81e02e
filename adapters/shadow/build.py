"""The gate around each adapter the registry builds (``adapters/registry.py``).

A vendor in shadow mode always gets the gate. A live vendor gets it too when another vendor
of the deployment is in shadow mode, or once a shadow store exists (revsync ran in shadow
mode here before): sagas opened in shadow mode carry synthetic ids that a live write must
resolve first, or hold back (:mod:`adapters.shadow.gate`). A deployment that never shadowed
keeps the adapters themselves, untouched.
"""

from __future__ import annotations

from adapters.erp.sap import SapErp
from adapters.erp.sap_simulation import SapOrderSimulation
from adapters.ports import BillingPort, CrmPort, ErpPort
from adapters.shadow.gate import Gate, GatedBilling, GatedCrm, GatedErp, ValidatesWrites
from adapters.shadow.store import ShadowStore, sqlite_store
from domain.shadow import Mode
from revsync.settings import VENDORS, Settings


def store_of(settings: Settings) -> ShadowStore:
    """The shadow store every process of this deployment shares."""
    return sqlite_store(settings.shadow_store_path)


def _gate(port: str, vendor: str, inner: object, settings: Settings) -> Gate | None:
    mode = Mode(settings.vendor_mode(vendor))
    path = settings.shadow_store_path
    shadowing = any(settings.vendor_mode(other) == "shadow" for other in VENDORS)
    if not shadowing and not path.exists():
        return None
    return Gate(
        port,
        vendor,
        mode,
        inner,
        lambda: store_of(settings),
        path.exists,
        validator=validator_of(inner),
    )


def validator_of(inner: object) -> ValidatesWrites | None:
    """The vendor's validate-only call, where it has one the adapter speaks: SAP's sales
    order simulation. Zuora's order preview (``POST /v1/orders/preview``) exists but is not
    wired yet; Salesforce, HubSpot, Stripe, NetSuite and Dynamics offer none for the writes
    revsync makes (docs/shadow-mode.md)."""
    if isinstance(inner, SapErp):
        return SapOrderSimulation(inner)
    return None


def gated_crm(inner: CrmPort, settings: Settings) -> CrmPort:
    gate = _gate("crm", inner.vendor, inner, settings)
    return inner if gate is None else GatedCrm(inner, gate)


def gated_erp(inner: ErpPort, settings: Settings) -> ErpPort:
    gate = _gate("erp", inner.vendor, inner, settings)
    return inner if gate is None else GatedErp(inner, gate)


def gated_billing(inner: BillingPort, settings: Settings) -> BillingPort:
    gate = _gate("billing", inner.vendor, inner, settings)
    return inner if gate is None else GatedBilling(inner, gate)
