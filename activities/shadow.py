"""Shadow mode's activities, on each vendor queue (``crm``, ``erp``, ``billing``): make a
recorded write live (an operator's replay of one saga), and read one vendor's side of the
comparison with the integration already in place. Both run the queue's adapter, so the
gate that recorded the writes makes them (adapters/shadow/gate.py).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from temporalio import activity

from activities.classify import vendor_call
from adapters.shadow.compare import (
    every,
    expected,
    observed_customers,
    observed_orders,
    observed_receivables,
    subjects_of,
    subjects_seen,
)
from adapters.shadow.gate import Gate, NotLiveYet
from adapters.shadow.store import off_loop
from domain.shadow import (
    Json,
    Materialized,
    MaterializeWrite,
    Mode,
    Observation,
    ObservedRecord,
    ObserveRequest,
    ReplayOutcome,
    ShadowActivity,
)


def _gate(adapter: object) -> Gate | None:
    gate = getattr(adapter, "gate", None)
    return gate if isinstance(gate, Gate) else None


class _ShadowActivities:
    def __init__(self, adapter: Any) -> None:
        self.adapter = adapter

    async def _materialize(self, request: MaterializeWrite) -> Materialized:
        gate = _gate(self.adapter)
        if gate is None:
            return Materialized(
                write_id=request.write_id,
                outcome=ReplayOutcome.MISSING,
                detail="this worker's vendor has no shadow store",
            )
        store = gate.open_store()
        write = await off_loop(partial(store.get, request.write_id))
        if write is None:
            return Materialized(write_id=request.write_id, outcome=ReplayOutcome.MISSING)
        if write.materialized_at is not None:
            return Materialized(
                write_id=write.write_id,
                outcome=ReplayOutcome.ALREADY,
                record_id=write.materialized_id,
            )
        if gate.mode is Mode.SHADOW:
            return Materialized(
                write_id=write.write_id,
                outcome=ReplayOutcome.STILL_SHADOW,
                detail=f"{gate.vendor} is in shadow mode (REVSYNC_{gate.vendor.upper()}_MODE)",
            )
        try:
            with vendor_call(gate.vendor):
                result = await gate.materialize(write)
        except NotLiveYet as waiting:
            return Materialized(
                write_id=write.write_id, outcome=ReplayOutcome.WAITING, detail=waiting.message
            )
        made = await off_loop(partial(store.get, write.write_id))
        return Materialized(
            write_id=write.write_id,
            outcome=ReplayOutcome.MADE,
            record_id=made.materialized_id if made else None,
            detail=None if result is None else f"{write.operation} made live",
        )

    async def _observe(self, request: ObserveRequest, port: str) -> Observation:
        gate = _gate(self.adapter)
        if gate is None or gate.mode is not Mode.SHADOW:
            return Observation(vendor=getattr(self.adapter, "vendor", None))
        store = gate.open_store()
        writes = await off_loop(partial(store.writes, recorded_before=request.settled_before))
        mine = [w for w in writes if w.vendor == gate.vendor]
        states: dict[str, Json] = {}
        for write in mine:
            if write.result_id is not None and write.operation == "post_receivable":
                state = await off_loop(partial(store.state, gate.vendor, write.result_id))
                if state is not None:
                    states[write.result_id] = state
        wanted, not_comparable = expected(mine, states)
        seen = subjects_seen(writes)
        inner: Any = gate.inner
        observed: list[ObservedRecord] = []
        vendor = gate.vendor

        async def orders(obj: str, lister: Any) -> None:
            subjects = subjects_of(wanted, seen, obj)
            if subjects:
                with vendor_call(vendor):
                    observed.extend(observed_orders(vendor, obj, await every(lister), subjects))

        async def customers(obj: str, lister: Any) -> None:
            subjects = subjects_of(wanted, seen, obj)
            if subjects:
                with vendor_call(vendor):
                    records = await every(lister)
                observed.extend(observed_customers(vendor, obj, records, subjects))

        if port == "crm":
            await orders("crm_order", inner.list_orders)
            await customers("account", inner.list_accounts)
        elif port == "erp":
            await orders("sales_order", inner.list_sales_orders)
            await customers("customer", inner.list_customers)
            subjects = subjects_of(wanted, seen, "receivable")
            if subjects:
                with vendor_call(vendor):
                    listed = await every(inner.list_receivables)
                observed.extend(observed_receivables(vendor, listed, subjects))
        else:
            await orders("subscription", inner.list_subscriptions)
            await customers("customer", inner.list_customers)
        return Observation(
            vendor=vendor,
            shadow=True,
            expected=wanted,
            observed=observed,
            subjects_seen=sorted(seen),
            not_comparable=dict(not_comparable),
        )


class CrmShadowActivities(_ShadowActivities):
    @activity.defn(name=ShadowActivity.materialize("crm"))
    async def materialize(self, request: MaterializeWrite) -> Materialized:
        return await self._materialize(request)

    @activity.defn(name=ShadowActivity.observe("crm"))
    async def observe(self, request: ObserveRequest) -> Observation:
        return await self._observe(request, "crm")


class ErpShadowActivities(_ShadowActivities):
    @activity.defn(name=ShadowActivity.materialize("erp"))
    async def materialize(self, request: MaterializeWrite) -> Materialized:
        return await self._materialize(request)

    @activity.defn(name=ShadowActivity.observe("erp"))
    async def observe(self, request: ObserveRequest) -> Observation:
        return await self._observe(request, "erp")


class BillingShadowActivities(_ShadowActivities):
    @activity.defn(name=ShadowActivity.materialize("billing"))
    async def materialize(self, request: MaterializeWrite) -> Materialized:
        return await self._materialize(request)

    @activity.defn(name=ShadowActivity.observe("billing"))
    async def observe(self, request: ObserveRequest) -> Observation:
        return await self._observe(request, "billing")
