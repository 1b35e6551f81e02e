"""The gate around each adapter the registry builds (``adapters/registry.py``).

A vendor in shadow mode always gets the gate. A live vendor gets it once a shadow store
exists (revsync ran in shadow mode here before): sagas opened in shadow mode carry synthetic
ids that their live writes must resolve first (:mod:`adapters.shadow.gate`). A deployment
that never shadowed keeps the adapter itself, untouched.
"""

from __future__ import annotations

from adapters.ports import BillingPort, CrmPort, ErpPort
from adapters.shadow.gate import Gate, GatedBilling, GatedCrm, GatedErp
from adapters.shadow.store import ShadowStore, sqlite_store
from domain.shadow import Mode
from revsync.settings import Settings


def store_of(settings: Settings) -> ShadowStore:
    """The shadow store every process of this deployment shares."""
    return sqlite_store(settings.shadow_store_path)


def _gate(port: str, vendor: str, inner: object, settings: Settings) -> Gate | None:
    mode = Mode(settings.vendor_mode(vendor))
    path = settings.shadow_store_path
    if mode is Mode.LIVE and not path.exists():
        return None
    return Gate(port, vendor, mode, inner, lambda: store_of(settings), path.exists)


def gated_crm(inner: CrmPort, settings: Settings) -> CrmPort:
    gate = _gate("crm", inner.vendor, inner, settings)
    return inner if gate is None else GatedCrm(inner, gate)


def gated_erp(inner: ErpPort, settings: Settings) -> ErpPort:
    gate = _gate("erp", inner.vendor, inner, settings)
    return inner if gate is None else GatedErp(inner, gate)


def gated_billing(inner: BillingPort, settings: Settings) -> BillingPort:
    gate = _gate("billing", inner.vendor, inner, settings)
    return inner if gate is None else GatedBilling(inner, gate)
