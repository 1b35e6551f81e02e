"""The sandbox's bulk seed: one call seeds the stores with the asked counts and answers the
drift it seeded; changes answer the drift of the subjects they touched."""

from __future__ import annotations

import httpx

from sandbox.app import SandboxState, create_app


async def test_one_call_seeds_the_estate_and_answers_its_drift():
    state = SandboxState()
    transport = httpx.ASGITransport(app=create_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as http:
        refused = await http.post("/_sandbox/bulk/changes", json={"count": 10})
        assert refused.status_code == 409
        answer = await http.post(
            "/_sandbox/bulk",
            json={"quotes": 300, "invoices": 200, "customers": 100, "drift_per_mille": 20},
        )
        assert answer.status_code == 200
        body = answer.json()
        assert (body["quotes"], body["invoices"], body["customers"]) == (300, 200, 100)
        kinds = [d["kind"] for d in body["drift"]]
        assert len(kinds) == 6 + 4 + 2
        assert len(state.netsuite.sales_orders) == 300
        assert len(state.stripe.invoices) == 200
        unbilled = kinds.count("missing_in_billing")
        assert unbilled >= 1 and len(state.stripe.subscriptions) == 300 - unbilled
        changed = (await http.post("/_sandbox/bulk/changes", json={"count": 50})).json()
        assert len(changed["subjects"]) == 50
        assert {d["subject"] for d in changed["drift"]} <= set(changed["subjects"])
        assert state.stripe.events, "subscription updates made Stripe events"
