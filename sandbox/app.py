"""The vendor sandbox: one ASGI app emulating every vendor API on one port (8100 by default).

Each vendor lives under its own path prefix, so an adapter's base URL is the only thing
that differs between the sandbox and the real vendor:

- Salesforce: ``/salesforce``   (e.g. ``/salesforce/services/data/v61.0/sobjects/Account/...``)
- Stripe:     ``/stripe``       (e.g. ``/stripe/v1/customers``)
- NetSuite:   ``/netsuite``     (e.g. ``/netsuite/services/rest/record/v1/salesOrder``)
- SAP:        ``/sap``          (e.g. ``/sap/sap/opu/odata/sap/API_SALES_ORDER_SRV/...``)
- HubSpot:    ``/hubspot``      (e.g. ``/hubspot/crm/v3/objects/deals/...``)
- Dynamics:   ``/dynamics``     (e.g. ``/dynamics/api/data/v9.2/salesorders``)
- Zuora:      ``/zuora``        (e.g. ``/zuora/v1/orders``, ``/zuora/object-query/accounts``)

``GET /_sandbox/state`` returns every record per system; ``POST /_sandbox/faults`` injects
failures and latency, ``GET /_sandbox/faults`` lists the rules still pending and every fault
fired so far; ``/_sandbox/oauth/<vendor>`` registers OAuth clients and expires issued tokens
(``sandbox/oauth.py``); ``POST /_sandbox/reset`` clears state and rules.
``POST /_sandbox/stripe/invoices`` makes a finalized invoice with given lines and
``POST /_sandbox/netsuite/periods`` closes or reopens an accounting period.
``PATCH /_sandbox/hubspot/objects/<type>/<id>`` edits a record as a HubSpot user and
``POST /_sandbox/hubspot/webhooks/render`` renders the webhooks HubSpot would send.
``POST /events/<subscriber>`` receives business events (``sandbox/subscriber.py``);
``GET /_sandbox/events`` shows what arrived. ``POST /_sandbox/bulk`` seeds a company's worth
of Salesforce, NetSuite and Stripe records at once with known drift (``sandbox/bulk.py``,
body :class:`~sandbox.bulk.BulkSpec`, answers the drift), ``POST /_sandbox/bulk/changes``
``{"count": 1000}`` changes some of them (answers the drift of the changed subjects).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Response
from pydantic import BaseModel, Field

from sandbox import (
    bulk,
    dynamics,
    hubspot,
    netsuite,
    oauth,
    salesforce,
    sap,
    stripe,
    subscriber,
    zuora,
)
from sandbox.faults import FaultInjector, FaultsRequest
from sandbox.wire import json_response

# The credentials the emulators accept; settings default to the same values for local dev.
DEFAULT_TOKENS = {
    "salesforce": "sandbox-salesforce-token",
    "stripe": "sk_test_sandbox",
    "netsuite": "sandbox-netsuite-token",
    # SAP: the password of the communication user COMM_REVSYNC (Basic auth).
    "sap": "sandbox-sap-password",
    "hubspot": "sandbox-hubspot-token",
    "dynamics": "sandbox-dynamics-token",
    # Zuora: the client secret of the OAuth client sandbox-zuora-client.
    "zuora": "sandbox-zuora-secret",
}


class SandboxState:
    """Everything the emulators hold, in memory."""

    def __init__(
        self, tokens: dict[str, str] | None = None, event_secrets: dict[str, str] | None = None
    ) -> None:
        self.tokens = {**DEFAULT_TOKENS, **(tokens or {})}
        # Business-event subscribers: name -> the secret revsync signs their deliveries with.
        self.events = subscriber.EventSubscriberStore(event_secrets)
        self.faults = FaultInjector()
        # OAuth clients and issued tokens per vendor (sandbox/oauth.py); kept across resets.
        self.oauth = oauth.new_servers()
        self.oauth["dynamics"] = dynamics.oauth_server()
        self.salesforce = salesforce.SalesforceStore()
        self.stripe = stripe.StripeStore()
        self.netsuite = netsuite.NetSuiteStore()
        self.dynamics = dynamics.DynamicsStore()
        self.hubspot = hubspot.HubSpotStore()
        self.oauth["sap"] = sap.oauth_server()
        self.sap = sap.SapStore()
        self.oauth["zuora"] = zuora.oauth_server()
        self.zuora = zuora.ZuoraStore()
        self.bulk: bulk.Seeded | None = None  # what POST /_sandbox/bulk seeded last

    def snapshot(self) -> dict[str, Any]:
        return {
            "salesforce": self.salesforce.snapshot(),
            "stripe": self.stripe.snapshot(),
            "netsuite": self.netsuite.snapshot(),
            "sap": self.sap.snapshot(),
            "hubspot": self.hubspot.snapshot(),
            "dynamics": self.dynamics.snapshot(),
            "zuora": self.zuora.snapshot(),
            "events": self.events.snapshot(),
        }

    def reset(self) -> None:
        self.faults = FaultInjector()
        self.salesforce = salesforce.SalesforceStore()
        self.stripe = stripe.StripeStore()
        self.netsuite = netsuite.NetSuiteStore()
        self.dynamics = dynamics.DynamicsStore()
        self.hubspot = hubspot.HubSpotStore()
        self.sap = sap.SapStore()
        self.zuora = zuora.ZuoraStore()
        self.events = subscriber.EventSubscriberStore(self.events.secrets)
        self.bulk = None


class BulkChanges(BaseModel):
    count: int = Field(default=1000, ge=1, le=100_000)
    seed: int = 2


def _drift(found: set[bulk.Drift]) -> list[dict[str, str]]:
    return [{"kind": kind, "subject": subject} for kind, subject in sorted(found)]


def create_app(state: SandboxState | None = None) -> FastAPI:
    state = state or SandboxState()
    app = FastAPI(title="revsync vendor sandbox", version="1")
    app.state.sandbox = state

    # Token endpoints first: NetSuite's API router answers every other /services/rest/ path.
    app.include_router(salesforce.build_oauth_router(state), prefix="/salesforce")
    app.include_router(netsuite.build_oauth_router(state), prefix="/netsuite")
    app.include_router(dynamics.build_oauth_router(state), prefix="/dynamics")
    app.include_router(hubspot.build_oauth_router(state), prefix="/hubspot")
    app.include_router(salesforce.build_router(state), prefix="/salesforce")
    app.include_router(stripe.build_router(state), prefix="/stripe")
    app.include_router(netsuite.build_router(state), prefix="/netsuite")
    app.include_router(sap.build_router(state), prefix="/sap")
    app.include_router(dynamics.build_router(state), prefix="/dynamics")
    app.include_router(hubspot.build_router(state), prefix="/hubspot")
    app.include_router(zuora.build_oauth_router(state), prefix="/zuora")
    app.include_router(zuora.build_router(state), prefix="/zuora")
    app.include_router(oauth.build_control_router(state), prefix="/_sandbox/oauth")
    # Sandbox-only controls of one vendor's state (make an invoice, close a period).
    app.include_router(stripe.build_control_router(state), prefix="/_sandbox/stripe")
    app.include_router(salesforce.build_control_router(state), prefix="/_sandbox/salesforce")
    app.include_router(netsuite.build_control_router(state), prefix="/_sandbox/netsuite")
    app.include_router(sap.build_control_router(state), prefix="/_sandbox/sap")
    app.include_router(dynamics.build_control_router(state), prefix="/_sandbox/dynamics")
    app.include_router(zuora.build_control_router(state), prefix="/_sandbox/zuora")
    app.include_router(hubspot.build_control_router(state), prefix="/_sandbox/hubspot")
    # A business-event subscriber (revsync's signed CloudEvents webhooks) and what it received.
    app.include_router(subscriber.build_router(state), prefix="/events")
    app.include_router(subscriber.build_control_router(state), prefix="/_sandbox/events")

    @app.get("/_sandbox/state")
    async def get_state() -> Response:
        return json_response(state.snapshot())

    @app.post("/_sandbox/faults")
    async def add_faults(request: FaultsRequest) -> dict[str, Any]:
        state.faults.configure(request)
        return {"pending": [rule.model_dump() for rule in state.faults.pending()]}

    @app.get("/_sandbox/faults")
    async def list_faults() -> dict[str, Any]:
        return {
            "pending": [rule.model_dump() for rule in state.faults.pending()],
            "fired": list(state.faults.fired),
        }

    @app.post("/_sandbox/bulk")
    async def bulk_seed(spec: bulk.BulkSpec) -> dict[str, Any]:
        state.bulk = bulk.seed_estate(state, spec)
        return {
            "quotes": len(state.bulk.quotes),
            "invoices": len(state.bulk.invoices),
            "customers": len(state.bulk.accounts),
            "drift": _drift(state.bulk.drift),
        }

    @app.post("/_sandbox/bulk/changes")
    async def bulk_changes(request: BulkChanges) -> Response:
        if state.bulk is None:
            return json_response({"error": "seed first: POST /_sandbox/bulk"}, status=409)
        changed = bulk.change_estate(state, state.bulk, request.count, request.seed)
        return json_response({"subjects": sorted(changed.subjects), "drift": _drift(changed.drift)})

    @app.post("/_sandbox/reset")
    async def reset() -> dict[str, str]:
        state.reset()
        return {"status": "reset"}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
