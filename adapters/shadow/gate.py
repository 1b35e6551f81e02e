"""The gate: one wrapper per port that every vendor write passes, built by the registry
around every adapter (``adapters/registry.py``).

Reads pass through. What a write does depends on the vendor's mode
(``REVSYNC_<VENDOR>_MODE``):

- **shadow**: nothing is sent. The gate reads the target through the adapter's own reads
  where the port has one (the account, the customer by its key, the sales order, receivable
  or subscription by its key, the invoice), computes the field-level difference, predicts the
  refusals it can (the port's rules, and the vendor's validate-only call where the adapter has
  one: :class:`ValidatesWrites`), and records the write with its idempotency key and why
  (the workflow and activity of the step running it). It returns a result shaped like the
  real one: a create gets a synthetic id, ``shadow:<vendor>:<hash of operation and key>``,
  stable for the key, so a retried step gets the same result; a keyed create whose record
  exists returns that record (the vendor would have too). Later writes to a synthetic record
  (a payment of a shadow receivable, the cancel of a shadow order) update its shadow state,
  and the keyed reads (``find_*``) see shadow records, so the saga runs on as it would live:
  it never parks or compensates because a record is synthetic.
- **live**: the write is made. When its arguments carry synthetic ids (a saga that began in
  shadow mode and continues live), each is resolved first: one already made live is replaced
  by the vendor's id; one of this vendor is made live now, by running its recorded write
  under its recorded idempotency key (a repeat finds what the first made); one of another
  vendor that is not live yet, or not made live yet, holds the write back: it is recorded,
  marked ``held_back``, and made when the saga is replayed (``revsync shadow replay``).

Nothing recorded is written twice: every recorded write is made at most once, under the key
it was recorded with, and marked made (``materialized``) in the store.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache, partial
from typing import Any, Protocol, TypeVar, get_type_hints

import structlog
from pydantic import TypeAdapter
from temporalio import activity

from adapters.errors import NotFoundError, RejectedError
from adapters.ports import BillingPort, CrmPort, CustomerLinks, ErpPort
from adapters.shadow.store import ShadowStore, off_loop
from domain.catalog import CatalogItem
from domain.customer import Customer
from domain.customer_master import FieldValue, MasterField, equivalent, field_value
from domain.invoice import Invoice as FinalizedInvoice
from domain.master_contracts import erp_external_id
from domain.order import (
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    OrderLine,
    SalesOrder,
    SalesOrderDraft,
    SalesOrderStatus,
    Subscription,
    SubscriptionDraft,
    SubscriptionStatus,
)
from domain.receivable import (
    CreditPosting,
    JournalPosting,
    PaymentApplication,
    PaymentPosting,
    Receivable,
    ReceivableCredit,
    ReceivableState,
    ReceivableStatus,
    RevenueJournal,
)
from domain.reconciliation import CustomerRecord, InvoiceRecord, OrderRecord, Page, Window
from domain.shadow import (
    ChangeState,
    Effect,
    Json,
    Mode,
    PredictedRefusal,
    RecordedWrite,
    RefusalSource,
    Target,
    Why,
    effect_of,
    field_changes,
    is_synthetic,
    substitute,
    synthetic_id,
    synthetic_ids,
    vendor_of,
)

log = structlog.get_logger("revsync.shadow")

T = TypeVar("T")

PORTS: Mapping[str, type] = {"crm": CrmPort, "erp": ErpPort, "billing": BillingPort}

# Every method of every port, as reads (passed through) or writes (gated). A port method in
# neither is refused by tests/shadow/test_classification.py until it is put in one.
WRITES: Mapping[str, frozenset[str]] = {
    "crm": frozenset(
        {"update_account_fields", "record_order", "set_quote_status", "set_receivable_status"}
    ),
    "erp": frozenset(
        {
            "update_customer_fields",
            "upsert_customer",
            "create_sales_order",
            "cancel_sales_order",
            "post_receivable",
            "post_revenue_journal",
            "apply_payment",
            "reverse_receivable",
            "credit_receivable",
        }
    ),
    "billing": frozenset(
        {
            "update_customer_fields",
            "upsert_customer",
            "create_subscription",
            "cancel_subscription",
            "void_invoice",
        }
    ),
}
READS: Mapping[str, frozenset[str]] = {
    "crm": frozenset(
        {"get_account", "list_orders", "list_accounts", "lookup_orders", "lookup_accounts"}
    ),
    "erp": frozenset(
        {
            "find_customer",
            "get_catalog_items",
            "find_sales_order",
            "list_sales_orders",
            "list_customers",
            "list_receivables",
            "find_receivable",
            "lookup_sales_orders",
            "lookup_customers",
            "lookup_receivables",
        }
    ),
    "billing": frozenset(
        {
            "find_customer",
            "find_subscription",
            "list_subscriptions",
            "list_customers",
            "list_invoices",
            "get_invoice",
            "lookup_subscriptions",
            "lookup_customers",
            "lookup_invoices",
        }
    ),
}

_ID_FIELDS = (
    "order_id",
    "subscription_id",
    "receivable_id",
    "journal_entry_id",
    "payment_record_id",
    "credit_memo_id",
    "invoice_id",
)


# Writes of the optional protocols some adapters implement beside their port.
OPTIONAL_WRITES: Mapping[str, type] = {"link_customer": CustomerLinks}


@cache
def _signature(port: str, operation: str) -> tuple[dict[str, TypeAdapter[Any]], TypeAdapter[Any]]:
    """TypeAdapters of a port method's parameters and of its result, from the port."""
    protocol = OPTIONAL_WRITES.get(operation, PORTS[port])
    hints = get_type_hints(getattr(protocol, operation))
    result = TypeAdapter(hints.pop("return"))
    return {name: TypeAdapter(hint) for name, hint in hints.items()}, result


def dump_arguments(port: str, operation: str, arguments: Mapping[str, Any]) -> dict[str, Json]:
    params, _ = _signature(port, operation)
    return {name: params[name].dump_python(value, mode="json") for name, value in arguments.items()}


def load_arguments(port: str, operation: str, arguments: Mapping[str, Json]) -> dict[str, Any]:
    params, _ = _signature(port, operation)
    return {name: params[name].validate_python(value) for name, value in arguments.items()}


def dump_result(port: str, operation: str, result: Any) -> Json:
    return _signature(port, operation)[1].dump_python(result, mode="json")


def load_result(port: str, operation: str, result: Json) -> Any:
    return _signature(port, operation)[1].validate_python(result)


def result_id(result: Json) -> str | None:
    """The record id a result names: the string itself, or its id field."""
    if isinstance(result, str):
        return result
    if isinstance(result, Mapping):
        for name in _ID_FIELDS:
            value = result.get(name)
            if isinstance(value, str):
                return value
    return None


def why() -> Why:
    """The saga and step running this call (nothing outside an activity)."""
    if not activity.in_activity():
        return Why()
    info = activity.info()
    return Why(
        workflow_id=info.workflow_id,
        workflow_type=info.workflow_type,
        step=info.activity_type,
        attempt=info.attempt,
    )


class ValidatesWrites(Protocol):
    """An adapter whose vendor offers a validate-only call for some writes (SAP's sales order
    simulation, Zuora's order preview). Returns the refusals the vendor's own validation
    raises ([] when it accepts), or None when it has no such call for ``operation``."""

    async def validate_write(
        self, operation: str, arguments: Mapping[str, Any]
    ) -> list[tuple[str, str]] | None: ...


@dataclass
class Plan:
    """What a shadow write would do: its target, the values it sets (``after``) against the
    target as read (``before``; None: no record), and the result the saga gets."""

    target: Target
    after: dict[str, Json]
    result: Any
    before: dict[str, Json] | None = None
    exists: bool = True
    effect: Effect | None = None
    unread: frozenset[str] = frozenset()
    equal: dict[str, bool] | None = None
    refusals: list[PredictedRefusal] = field(default_factory=list)
    states: dict[str, Json] = field(default_factory=dict)


def rule(code: str, message: str) -> PredictedRefusal:
    return PredictedRefusal(source=RefusalSource.RULE, code=code, message=message)


def customer_fields(customer: Customer) -> dict[str, Json]:
    """The golden fields a :class:`Customer` carries, as JSON."""
    data = customer.model_dump(mode="json")
    return {
        MasterField.NAME.value: data["name"],
        MasterField.LEGAL_ENTITY.value: data["legal_entity"],
        MasterField.TAX_ID.value: data["tax_id"],
        MasterField.EMAIL.value: data["email"],
        MasterField.BILLING_ADDRESS.value: data["billing_address"],
    }


def changes_json(changes: Mapping[MasterField, FieldValue]) -> dict[str, Json]:
    adapter: TypeAdapter[FieldValue] = TypeAdapter(FieldValue)
    return {f.value: adapter.dump_python(v, mode="json") for f, v in changes.items()}


def equivalence(
    changes: Mapping[MasterField, FieldValue], before: Mapping[str, Json] | None
) -> dict[str, bool]:
    """Whether each changed field's value says what the target holds (the customer
    master's rules: tax ids normalised, e-mails and names ignoring case and spacing)."""
    equal: dict[str, bool] = {}
    for name, value in changes.items():
        if before is None or name.value not in before:
            continue
        try:
            held = field_value(name, before[name.value])
        except ValueError:
            continue
        equal[name.value] = equivalent(name, held, value)
    return equal


class Gate:
    """The machinery one gated adapter shares: mode, store, recording and carry-over."""

    def __init__(
        self,
        port: str,
        vendor: str,
        mode: Mode,
        inner: object,
        store: Callable[[], ShadowStore],
        store_exists: Callable[[], bool],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        validator: ValidatesWrites | None = None,
    ) -> None:
        self.port = port
        self.vendor = vendor
        self.mode = mode
        self.inner = inner
        self._store = store
        self._store_exists = store_exists
        self.clock = clock
        self.validator = validator

    def open_store(self) -> ShadowStore:
        """The store, opened (created) if it is not yet."""
        return self._store()

    def store(self) -> ShadowStore | None:
        """The store, when there can be anything in it: always in shadow mode; in live mode
        only once a file exists (a deployment that never shadowed never opens one)."""
        if self.mode is Mode.SHADOW or self._store_exists():
            return self._store()
        return None

    # -- shadow state of records ----------------------------------------------------------

    async def recorded_for(self, operation: str, target_key: str) -> RecordedWrite | None:
        """The shadow write of ``operation`` keyed ``target_key`` not made live yet."""
        store = self.store()
        if store is None:
            return None
        found = await off_loop(lambda: store.by_target(self.vendor, operation, target_key))
        if found is None or found.materialized_at is not None:
            return None
        return found

    async def shadow_state(self, record_id: str) -> Json | None:
        """The state shadow writes left a record in; None when none changed it."""
        store = self.store()
        if store is None:
            return None
        return await off_loop(lambda: store.state(self.vendor, record_id))

    async def origin(self, record_id: str) -> RecordedWrite | None:
        """The shadow write whose result named ``record_id`` first."""
        store = self.store()
        if store is None:
            return None
        return await off_loop(lambda: store.by_result(self.vendor, record_id))

    async def current(self, record_id: str) -> Json | None:
        """A record as the shadow writes left it: its shadow state, else what the write that
        returned it returned; None when no shadow write touched it."""
        store = self.store()
        if store is None:
            return None
        state = await off_loop(lambda: store.state(self.vendor, record_id))
        if state is not None:
            return state
        write = await off_loop(lambda: store.by_result(self.vendor, record_id))
        return None if write is None else write.result

    # -- writes ---------------------------------------------------------------------------

    async def write(
        self,
        operation: str,
        arguments: dict[str, Any],
        key: str,
        planner: Callable[[dict[str, Any]], Awaitable[Plan]],
    ) -> Any:
        dumped = dump_arguments(self.port, operation, arguments)
        refs = synthetic_ids(dumped)
        write_id = synthetic_id(self.vendor, operation, key)
        if self.mode is Mode.LIVE:
            live = await self._live(operation, write_id, arguments, dumped, refs)
            if live is not _HELD_BACK:
                return live
        store = self._store()
        kept = await off_loop(lambda: store.get(write_id))
        if kept is not None:
            return load_result(self.port, operation, kept.result)
        plan = await planner(arguments)
        refusals = list(plan.refusals)
        if self.mode is Mode.SHADOW and self.validator is not None:
            vendor_says = await self.validator.validate_write(operation, arguments)
            refusals += [
                PredictedRefusal(source=RefusalSource.VENDOR, code=code, message=message)
                for code, message in vendor_says or []
            ]
        changes = field_changes(
            plan.after, plan.before, read=plan.target.read, equal=plan.equal, unread=plan.unread
        )
        result = dump_result(self.port, operation, plan.result)
        recorded = RecordedWrite(
            write_id=write_id,
            vendor=self.vendor,
            port=self.port,
            operation=operation,
            idempotency_key=key,
            target=plan.target,
            effect=plan.effect or effect_of(changes, exists=plan.exists),
            changes=changes,
            refusals=refusals,
            why=why(),
            recorded_at=self.clock(),
            arguments=dumped,
            result=result,
            result_id=result_id(result),
            depends_on=refs,
            held_back=self.mode is Mode.LIVE,
        )
        kept = await off_loop(lambda: store.record(recorded))
        if kept == recorded:
            for record_id, state in plan.states.items():
                await off_loop(partial(store.set_state, self.vendor, record_id, state))
            log.info(
                "shadow write recorded",
                vendor=self.vendor,
                operation=operation,
                effect=kept.effect.value,
                write_id=write_id,
                held_back=kept.held_back,
                workflow_id=kept.why.workflow_id,
            )
        return load_result(self.port, operation, kept.result)

    async def _live(
        self,
        operation: str,
        write_id: str,
        arguments: dict[str, Any],
        dumped: dict[str, Json],
        refs: list[str],
    ) -> Any:
        """A write to a live vendor: made, with every synthetic id in it resolved first; a
        recording of the same write (the step ran in shadow mode before) is marked made, so
        a replay never makes it again. ``_HELD_BACK`` when a synthetic id cannot be resolved
        here: the caller records the write instead."""
        store = self.store()
        if store is None and not refs:
            return await getattr(self.inner, operation)(**arguments)
        store = self._store()
        kept = await off_loop(lambda: store.get(write_id))
        if kept is not None and kept.materialized_at is not None:
            return load_result(self.port, operation, await self._made(kept))
        resolved = await self._resolve(refs) if refs else {}
        if resolved is None:
            return _HELD_BACK
        live_arguments = load_arguments(self.port, operation, substitute(dumped, resolved))
        result = await getattr(self.inner, operation)(**live_arguments)
        if kept is not None:
            made = result_id(dump_result(self.port, operation, result))
            await off_loop(partial(store.mark_materialized, write_id, made, self.clock()))
        return result

    async def _made(self, write: RecordedWrite) -> Json:
        """The result of a write made live: the vendor's, read again by re-running the keyed
        write (a repeat returns the first)."""
        arguments = await self._live_arguments(write)
        result = await getattr(self.inner, write.operation)(**arguments)
        return dump_result(self.port, write.operation, result)

    async def _resolve(self, refs: list[str]) -> dict[str, str] | None:
        """The vendor's id for each synthetic id, making this vendor's ones live as needed;
        None when one cannot be resolved here (another vendor's, not made live yet)."""
        store = self._store()
        resolved: dict[str, str] = {}
        for ref in refs:
            origin = await off_loop(partial(store.by_result, vendor_of(ref), ref))
            if origin is None:
                return None
            if origin.materialized_at is None:
                if origin.vendor != self.vendor or self.mode is not Mode.LIVE:
                    return None
                await self.materialize(origin)
                origin = await off_loop(partial(store.get, origin.write_id)) or origin
            if origin.materialized_id is None:
                return None
            resolved[ref] = origin.materialized_id
        return resolved

    async def _live_arguments(self, write: RecordedWrite) -> dict[str, Any]:
        resolved = await self._resolve(write.depends_on)
        if resolved is None:
            raise NotLiveYet(
                f"{write.operation} {write.write_id} depends on a shadow write of a vendor "
                "that is not live yet (or not made live yet): replay in recorded order"
            )
        return load_arguments(self.port, write.operation, substitute(write.arguments, resolved))

    async def materialize(self, write: RecordedWrite) -> Json:
        """Make a recorded write of this vendor live, under its recorded idempotency key, and
        mark it made. Returns the vendor's result (as JSON)."""
        if self.mode is not Mode.LIVE:
            raise NotLiveYet(f"{self.vendor} is in shadow mode: {write.write_id} stays recorded")
        arguments = await self._live_arguments(write)
        result = await getattr(self.inner, write.operation)(**arguments)
        dumped = dump_result(self.port, write.operation, result)
        made_id = result_id(dumped)
        store = self._store()
        await off_loop(lambda: store.mark_materialized(write.write_id, made_id, self.clock()))
        log.info(
            "shadow write made live",
            vendor=self.vendor,
            operation=write.operation,
            write_id=write.write_id,
            record_id=made_id,
        )
        return dumped


class NotLiveYet(RejectedError):
    """A recorded write cannot be made live (yet): its vendor is in shadow mode, or it
    depends on a write of another vendor that is not live yet."""

    def __init__(self, message: str) -> None:
        super().__init__("shadow", "materialize", message, code="NOT_LIVE_YET")


class Unshaped(RejectedError):
    """Shadow mode cannot shape the result of a write to a record it never saw (one booked
    live before the vendor was switched to shadow)."""

    def __init__(self, vendor: str, operation: str, record_id: str) -> None:
        super().__init__(
            vendor,
            operation,
            f"shadow mode: {record_id} was never read through the gate, so the result of "
            f"{operation} cannot be shaped; decide by hand (skip) or switch {vendor} live",
            code="SHADOW_UNSHAPED",
        )


_HELD_BACK = object()
SCAN_PAGE = 200


async def scan(
    listing: Callable[[str | None, int], Awaitable[Page[OrderRecord]]], record_id: str
) -> OrderRecord | None:
    """A record the gate never saw, found through the port's listing (a reconciliation
    repair cancels records found by listing): slow, and only for such a record."""
    cursor: str | None = None
    while True:
        page = await listing(cursor, SCAN_PAGE)
        for record in page.items:
            if record.record_id == record_id:
                return record
        if page.cursor is None:
            return None
        cursor = page.cursor


def _money(value: Decimal) -> str:
    return format(value, "f")


def _line(line: OrderLine) -> dict[str, Json]:
    return {"sku": line.sku, "quantity": _money(line.quantity), "amount": _money(line.amount)}


# -- the gated ports ---------------------------------------------------------------------------


class GatedCrm:
    """:class:`CrmPort` behind the gate (see the module doc)."""

    def __init__(self, inner: CrmPort, gate: Gate) -> None:
        self.inner = inner
        self.gate = gate
        self.vendor = inner.vendor

    def __repr__(self) -> str:
        return f"GatedCrm({self.inner!r}, mode={self.gate.mode.value})"

    # reads
    async def get_account(self, account_id: str) -> Customer:
        return await self.inner.get_account(account_id)

    async def list_orders(
        self, cursor: str | None, page_size: int, *, window: Window | None = None
    ) -> Page[OrderRecord]:
        return await self.inner.list_orders(cursor, page_size, window=window)

    async def lookup_orders(self, quote_ids: list[str]) -> list[OrderRecord]:
        return await self.inner.lookup_orders(quote_ids)

    async def list_accounts(
        self, cursor: str | None, page_size: int, *, window: Window | None = None
    ) -> Page[CustomerRecord]:
        return await self.inner.list_accounts(cursor, page_size, window=window)

    async def lookup_accounts(self, account_ids: list[str]) -> list[CustomerRecord]:
        return await self.inner.lookup_accounts(account_ids)

    # writes
    async def _account(self, account_id: str) -> tuple[dict[str, Json] | None, str | None]:
        try:
            return customer_fields(await self.inner.get_account(account_id)), None
        except NotFoundError as error:
            return None, error.message

    async def update_account_fields(
        self, account_id: str, changes: Mapping[MasterField, FieldValue], idempotency_key: str
    ) -> None:
        async def plan(_: dict[str, Any]) -> Plan:
            before, missing = await self._account(account_id)
            after = changes_json(changes)
            return Plan(
                target=Target(kind="account", record_id=account_id, read=True),
                after=after,
                before=before,
                result=None,
                unread=frozenset(after) - frozenset(before or {}) if before else frozenset(),
                equal=equivalence(changes, before),
                refusals=[rule("NOT_FOUND", missing)] if missing else [],
            )

        await self.gate.write(
            "update_account_fields",
            {"account_id": account_id, "changes": changes, "idempotency_key": idempotency_key},
            idempotency_key,
            plan,
        )

    async def record_order(
        self,
        *,
        quote_id: str,
        account_id: str,
        order_key: str,
        sales_order: SalesOrder,
        subscription: Subscription,
    ) -> str:
        write_id = synthetic_id(self.vendor, "record_order", order_key)

        async def plan(_: dict[str, Any]) -> Plan:
            return Plan(
                target=Target(kind="order", key=order_key),
                after={
                    "quote_id": quote_id,
                    "account_id": account_id,
                    "erp_order_id": sales_order.order_id,
                    "erp_customer_id": sales_order.customer_id,
                    "erp_order_total": _money(sales_order.total),
                    "currency": sales_order.currency,
                    "billing_subscription_id": subscription.subscription_id,
                    "billing_customer_id": subscription.customer_id,
                    "quote_status": "Ordered",
                },
                result=write_id,
                exists=False,
            )

        result: str = await self.gate.write(
            "record_order",
            {
                "quote_id": quote_id,
                "account_id": account_id,
                "order_key": order_key,
                "sales_order": sales_order,
                "subscription": subscription,
            },
            order_key,
            plan,
        )
        return result

    async def set_quote_status(self, quote_id: str, status: str, reason: str | None) -> None:
        async def plan(_: dict[str, Any]) -> Plan:
            return Plan(
                target=Target(kind="quote", record_id=quote_id),
                after={"status": status, "reason": reason},
                result=None,
            )

        await self.gate.write(
            "set_quote_status",
            {"quote_id": quote_id, "status": status, "reason": reason},
            f"quote-status:{quote_id}:{status}",
            plan,
        )

    async def set_receivable_status(
        self,
        account_id: str,
        status: ReceivableStatus,
        invoice_id: str,
        amount_due: Decimal,
        currency: str,
        *,
        as_of: datetime,
    ) -> None:
        async def plan(_: dict[str, Any]) -> Plan:
            return Plan(
                target=Target(kind="account", record_id=account_id),
                after={
                    "ar_status": status.value,
                    "ar_invoice": invoice_id,
                    "ar_amount_due": _money(amount_due),
                    "ar_currency": currency,
                    "ar_as_of": as_of.isoformat(),
                },
                result=None,
            )

        await self.gate.write(
            "set_receivable_status",
            {
                "account_id": account_id,
                "status": status,
                "invoice_id": invoice_id,
                "amount_due": amount_due,
                "currency": currency,
                "as_of": as_of,
            },
            f"receivable-status:{account_id}:{invoice_id}:{status.value}:{as_of.isoformat()}",
            plan,
        )


def _receivable_after(invoice: FinalizedInvoice, customer_id: str) -> dict[str, Json]:
    return {
        "invoice_id": invoice.invoice_id,
        "customer_id": customer_id,
        "currency": invoice.currency,
        "total": _money(invoice.total),
        "tax": _money(invoice.tax),
        "issue_date": invoice.issue_date.isoformat(),
        "due_date": invoice.due_date.isoformat(),
        "lines": len(invoice.lines),
    }


class GatedErp:
    """:class:`ErpPort` behind the gate (see the module doc)."""

    def __init__(self, inner: ErpPort, gate: Gate) -> None:
        self.inner = inner
        self.gate = gate
        self.vendor = inner.vendor

    def __repr__(self) -> str:
        return f"GatedErp({self.inner!r}, mode={self.gate.mode.value})"

    # reads (the keyed ones also see shadow records)
    async def find_customer(self, external_id: str) -> str | None:
        found = await self.inner.find_customer(external_id)
        if found is not None:
            return found
        linked = await self.gate.recorded_for("link_customer", external_id)
        if linked is not None:
            return linked.target.record_id
        recorded = await self.gate.recorded_for("upsert_customer", external_id)
        return None if recorded is None else recorded.result_id

    async def link_customer(self, customer_id: str, golden_id: str, idempotency_key: str) -> None:
        """Adoption's cross-reference (:class:`adapters.ports.CustomerLinks`), gated."""
        key = erp_external_id(golden_id)
        await _link(self.gate, key, customer_id, golden_id, idempotency_key)

    async def get_catalog_items(self, skus: list[str]) -> dict[str, CatalogItem]:
        return await self.inner.get_catalog_items(skus)

    async def find_sales_order(self, external_id: str) -> SalesOrder | None:
        found = await self.inner.find_sales_order(external_id)
        if found is not None:
            return found
        recorded = await self.gate.recorded_for("create_sales_order", external_id)
        if recorded is None or recorded.result_id is None:
            return None
        return SalesOrder.model_validate(await self.gate.current(recorded.result_id))

    async def list_sales_orders(
        self, cursor: str | None, page_size: int, *, window: Window | None = None
    ) -> Page[OrderRecord]:
        return await self.inner.list_sales_orders(cursor, page_size, window=window)

    async def lookup_sales_orders(self, quote_ids: list[str]) -> list[OrderRecord]:
        return await self.inner.lookup_sales_orders(quote_ids)

    async def list_customers(
        self, cursor: str | None, page_size: int, *, window: Window | None = None
    ) -> Page[CustomerRecord]:
        return await self.inner.list_customers(cursor, page_size, window=window)

    async def lookup_customers(self, account_ids: list[str]) -> list[CustomerRecord]:
        return await self.inner.lookup_customers(account_ids)

    async def list_receivables(
        self, cursor: str | None, page_size: int, *, window: Window | None = None
    ) -> Page[InvoiceRecord]:
        return await self.inner.list_receivables(cursor, page_size, window=window)

    async def lookup_receivables(self, invoice_ids: list[str]) -> list[InvoiceRecord]:
        return await self.inner.lookup_receivables(invoice_ids)

    async def find_receivable(self, external_id: str) -> Receivable | None:
        found = await self.inner.find_receivable(external_id)
        if found is not None:
            shadowed = await self.gate.current(found.receivable_id)
            return found if shadowed is None else Receivable.model_validate(shadowed)
        recorded = await self.gate.recorded_for("post_receivable", external_id)
        if recorded is None or recorded.result_id is None:
            return None
        return Receivable.model_validate(await self.gate.current(recorded.result_id))

    # writes
    async def update_customer_fields(
        self, customer_id: str, changes: Mapping[MasterField, FieldValue], idempotency_key: str
    ) -> None:
        await _update_fields(self.gate, customer_id, changes, idempotency_key)

    async def upsert_customer(self, customer: Customer, external_id: str) -> str:
        write_id = synthetic_id(self.vendor, "upsert_customer", external_id)

        async def plan(_: dict[str, Any]) -> Plan:
            found = await self.inner.find_customer(external_id)
            after = customer_fields(customer) | {"currency": customer.currency}
            if found is not None:  # the upsert updates it; the port has no read of its fields
                return Plan(
                    target=Target(kind="customer", key=external_id, record_id=found),
                    after=after,
                    result=found,
                    effect=Effect.UPDATE,
                )
            return Plan(
                target=Target(kind="customer", key=external_id, read=True),
                after=after,
                result=write_id,
                exists=False,
                states={write_id: after},
            )

        result: str = await self.gate.write(
            "upsert_customer",
            {"customer": customer, "external_id": external_id},
            external_id,
            plan,
        )
        return result

    async def create_sales_order(self, draft: SalesOrderDraft, customer_id: str) -> SalesOrder:
        write_id = synthetic_id(self.vendor, "create_sales_order", draft.external_id)

        async def plan(_: dict[str, Any]) -> Plan:
            after = {
                "quote_id": draft.quote_id,
                "account_id": draft.account_id,
                "customer_id": customer_id,
                "currency": draft.currency,
                "total": _money(draft.total),
                "payment_terms": draft.payment_terms.value,
                "order_date": draft.order_date.isoformat(),
                "lines": [
                    {
                        "sku": line.sku,
                        "quantity": _money(line.quantity),
                        "unit_price": _money(line.unit_price),
                        "discount_percent": _money(line.discount_percent),
                        "amount": _money(line.amount),
                    }
                    for line in draft.lines
                ],
            }
            refusals = []
            if (refused := draft.unbookable()) is not None:
                refusals.append(rule(refused.code, refused.message))
            found = await self.inner.find_sales_order(draft.external_id)
            target = Target(kind="sales_order", key=draft.external_id, read=True)
            if found is not None:  # the keyed create returns it as it is
                return Plan(
                    target=target.model_copy(update={"record_id": found.order_id}),
                    after=after,
                    before={
                        "customer_id": found.customer_id,
                        "currency": found.currency,
                        "total": _money(found.total),
                    },
                    unread=frozenset(after) - {"customer_id", "currency", "total"},
                    result=found,
                    effect=Effect.NOOP,
                    refusals=refusals,
                )
            return Plan(
                target=target,
                after=after,
                result=SalesOrder(
                    order_id=write_id,
                    external_id=draft.external_id,
                    customer_id=customer_id,
                    currency=draft.currency,
                    total=draft.total,
                    status=SalesOrderStatus.PENDING_FULFILLMENT,
                ),
                exists=False,
                refusals=refusals,
            )

        result: SalesOrder = await self.gate.write(
            "create_sales_order",
            {"draft": draft, "customer_id": customer_id},
            draft.external_id,
            plan,
        )
        return result

    async def cancel_sales_order(self, order_id: str, reason: str) -> SalesOrder:
        async def plan(_: dict[str, Any]) -> Plan:
            current = await self.gate.current(order_id)
            if current is None:
                listed = await scan(self.inner.list_sales_orders, order_id)
                if listed is None or listed.currency is None or listed.amount is None:
                    raise Unshaped(self.vendor, "cancel_sales_order", order_id)
                current = SalesOrder(
                    order_id=order_id,
                    external_id=listed.key or "",
                    customer_id=listed.customer_id or "",
                    currency=listed.currency,
                    total=listed.amount,
                    status=SalesOrderStatus.PENDING_FULFILLMENT
                    if listed.live
                    else SalesOrderStatus.CANCELLED,
                ).model_dump(mode="json")
            order = SalesOrder.model_validate(current)
            cancelled = order.model_copy(update={"status": SalesOrderStatus.CANCELLED})
            return Plan(
                target=Target(
                    kind="sales_order", key=order.external_id, record_id=order_id, read=True
                ),
                after={"status": SalesOrderStatus.CANCELLED.value, "memo": reason},
                before={"status": order.status.value},
                unread=frozenset({"memo"}),
                result=cancelled,
                effect=Effect.NOOP if order.status is SalesOrderStatus.CANCELLED else None,
                states={order_id: cancelled.model_dump(mode="json")},
            )

        result: SalesOrder = await self.gate.write(
            "cancel_sales_order",
            {"order_id": order_id, "reason": reason},
            f"cancel:{order_id}",
            plan,
        )
        return result

    async def post_receivable(
        self, invoice: FinalizedInvoice, customer_id: str, external_id: str
    ) -> Receivable:
        write_id = synthetic_id(self.vendor, "post_receivable", external_id)

        async def plan(_: dict[str, Any]) -> Plan:
            after = _receivable_after(invoice, customer_id)
            found = await self.inner.find_receivable(external_id)
            target = Target(kind="receivable", key=external_id, read=True)
            if found is not None:
                return Plan(
                    target=target.model_copy(update={"record_id": found.receivable_id}),
                    after=after,
                    before={
                        "invoice_id": found.invoice_id,
                        "customer_id": found.customer_id,
                        "currency": found.currency,
                        "total": _money(found.total),
                        "tax": _money(found.tax),
                        "issue_date": found.issue_date.isoformat(),
                        "due_date": found.due_date.isoformat(),
                    },
                    unread=frozenset({"lines"}),
                    result=found,
                    effect=Effect.NOOP,
                )
            return Plan(
                target=target,
                after=after,
                result=Receivable(
                    receivable_id=write_id,
                    external_id=external_id,
                    invoice_id=invoice.invoice_id,
                    customer_id=customer_id,
                    currency=invoice.currency,
                    total=invoice.total,
                    tax=invoice.tax,
                    amount_due=invoice.total,
                    issue_date=invoice.issue_date,
                    due_date=invoice.due_date,
                    state=ReceivableState.OPEN,
                ),
                exists=False,
            )

        result: Receivable = await self.gate.write(
            "post_receivable",
            {"invoice": invoice, "customer_id": customer_id, "external_id": external_id},
            external_id,
            plan,
        )
        return result

    async def post_revenue_journal(self, journal: RevenueJournal) -> JournalPosting:
        write_id = synthetic_id(self.vendor, "post_revenue_journal", journal.journal_id)

        async def plan(_: dict[str, Any]) -> Plan:
            return Plan(
                target=Target(kind="revenue_journal", key=journal.journal_id),
                after={
                    "invoice_id": journal.invoice_id,
                    "line_id": journal.line_id,
                    "period": journal.period,
                    "amount": _money(journal.amount),
                    "currency": journal.currency,
                },
                result=JournalPosting(
                    journal_entry_id=write_id,
                    journal_id=journal.journal_id,
                    period=journal.period,
                    amount=journal.amount,
                    currency=journal.currency,
                ),
                exists=False,
            )

        result: JournalPosting = await self.gate.write(
            "post_revenue_journal", {"journal": journal}, journal.journal_id, plan
        )
        return result

    async def _receivable(self, receivable_id: str, invoice_id: str | None) -> Receivable | None:
        """The receivable as the shadow writes left it; one no shadow write changed as the
        ERP holds it now (found by the key it was returned under, or invoice-to-revenue's
        key of the invoice); None when neither knows it."""
        state = await self.gate.shadow_state(receivable_id)
        if state is not None:
            return Receivable.model_validate(state)
        origin = await self.gate.origin(receivable_id)
        if origin is not None and is_synthetic(receivable_id):
            return Receivable.model_validate(origin.result)
        keys = [origin.target.key] if origin is not None and origin.target.key else []
        if invoice_id is not None:
            keys.append(f"i2r-{invoice_id}:receivable")
        for key in keys:
            found = await self.inner.find_receivable(key)
            if found is not None and found.receivable_id == receivable_id:
                return found
        return None

    async def apply_payment(self, payment: PaymentApplication) -> PaymentPosting:
        write_id = synthetic_id(self.vendor, "apply_payment", payment.payment_id)

        async def plan(_: dict[str, Any]) -> Plan:
            receivable = await self._receivable(payment.receivable_id, payment.invoice_id)
            if receivable is None:
                raise Unshaped(self.vendor, "apply_payment", payment.receivable_id)
            applied = max(min(payment.amount, receivable.amount_due), Decimal(0))
            refusals = []
            if receivable.amount_due <= 0:
                refusals.append(rule("NOTHING_DUE", f"{receivable.receivable_id} has nothing due"))
            paid = receivable.amount_paid + applied
            due = receivable.amount_due - applied
            after_state = receivable.model_copy(
                update={
                    "amount_paid": paid,
                    "amount_due": due,
                    "state": ReceivableState.of(due, paid, receivable.amount_credited),
                }
            )
            return Plan(
                target=Target(
                    kind="payment",
                    key=payment.payment_id,
                    record_id=payment.receivable_id,
                    read=True,
                ),
                after={
                    "receivable_id": payment.receivable_id,
                    "amount": _money(payment.amount),
                    "applied": _money(applied),
                    "currency": payment.currency,
                    "paid_on": payment.paid_on.isoformat(),
                },
                result=PaymentPosting(
                    payment_record_id=write_id,
                    payment_id=payment.payment_id,
                    receivable_id=payment.receivable_id,
                    amount=payment.amount,
                    applied=applied,
                    unapplied=payment.amount - applied,
                    currency=payment.currency,
                    paid_on=payment.paid_on,
                ),
                exists=False,
                refusals=refusals,
                states={payment.receivable_id: after_state.model_dump(mode="json")},
            )

        result: PaymentPosting = await self.gate.write(
            "apply_payment", {"payment": payment}, payment.payment_id, plan
        )
        return result

    async def reverse_receivable(
        self, receivable_id: str, external_id: str, reason: str
    ) -> Receivable:
        write_id = synthetic_id(self.vendor, "reverse_receivable", external_id)

        async def plan(_: dict[str, Any]) -> Plan:
            receivable = await self._receivable(receivable_id, None)
            if receivable is None:
                raise Unshaped(self.vendor, "reverse_receivable", receivable_id)
            refusals = []
            if receivable.amount_paid > 0 and receivable.amount_due > 0:
                refusals.append(rule("PAYMENTS_APPLIED", f"{receivable_id} has payments applied"))
            done = receivable.state is ReceivableState.REVERSED
            reversed_ = receivable.model_copy(
                update={
                    "amount_credited": receivable.amount_credited + receivable.amount_due,
                    "amount_due": Decimal(0),
                    "state": ReceivableState.REVERSED,
                    "reversal_ids": (*receivable.reversal_ids, write_id),
                }
            )
            return Plan(
                target=Target(
                    kind="receivable",
                    key=receivable.external_id,
                    record_id=receivable_id,
                    read=True,
                ),
                after={"state": ReceivableState.REVERSED.value, "amount_due": "0"},
                before={
                    "state": receivable.state.value,
                    "amount_due": _money(receivable.amount_due),
                },
                result=receivable if done else reversed_,
                effect=Effect.NOOP if done else None,
                refusals=refusals,
                states={} if done else {receivable_id: reversed_.model_dump(mode="json")},
            )

        result: Receivable = await self.gate.write(
            "reverse_receivable",
            {"receivable_id": receivable_id, "external_id": external_id, "reason": reason},
            external_id,
            plan,
        )
        return result

    async def credit_receivable(self, credit: ReceivableCredit) -> CreditPosting:
        write_id = synthetic_id(self.vendor, "credit_receivable", credit.external_id)

        async def plan(_: dict[str, Any]) -> Plan:
            receivable = await self._receivable(credit.receivable_id, credit.invoice_id)
            if receivable is None:
                raise Unshaped(self.vendor, "credit_receivable", credit.receivable_id)
            applied = max(min(credit.total, receivable.amount_due), Decimal(0))
            refusals = []
            if credit.total > receivable.amount_due:
                refusals.append(
                    rule(
                        "CREDIT_EXCEEDS_DUE",
                        f"credit {credit.total} is more than the {receivable.amount_due} due",
                    )
                )
            credited = receivable.amount_credited + applied
            due = receivable.amount_due - applied
            after_state = receivable.model_copy(
                update={
                    "amount_credited": credited,
                    "amount_due": due,
                    "state": ReceivableState.of(due, receivable.amount_paid, credited),
                }
            )
            return Plan(
                target=Target(
                    kind="credit_memo",
                    key=credit.external_id,
                    record_id=credit.receivable_id,
                    read=True,
                ),
                after={
                    "receivable_id": credit.receivable_id,
                    "total": _money(credit.total),
                    "applied": _money(applied),
                    "currency": credit.currency,
                    "lines": [line.line_id for line in credit.lines],
                },
                result=CreditPosting(
                    credit_memo_id=write_id,
                    external_id=credit.external_id,
                    receivable_id=credit.receivable_id,
                    currency=credit.currency,
                    lines=credit.lines,
                    total=credit.total,
                    applied=applied,
                    unapplied=credit.total - applied,
                ),
                exists=False,
                refusals=refusals,
                states={credit.receivable_id: after_state.model_dump(mode="json")},
            )

        result: CreditPosting = await self.gate.write(
            "credit_receivable", {"credit": credit}, credit.external_id, plan
        )
        return result


class LinkUnsupported(RejectedError):
    """The vendor's adapter cannot stamp revsync's cross-reference on a customer."""

    def __init__(self, vendor: str) -> None:
        super().__init__(
            vendor,
            "link_customer",
            f"{vendor}: revsync cannot write its cross-reference on an existing customer; "
            "link it by hand (docs/adoption.md)",
            code="LINK_UNSUPPORTED",
        )


async def _link(
    gate: Gate, key: str, customer_id: str, golden_id: str, idempotency_key: str
) -> None:
    """ERP and billing ``link_customer`` (adoption), gated like every write. ``key`` is the
    vendor's cross-reference for the golden id, so the keyed reads see a shadow link."""
    if not hasattr(gate.inner, "link_customer"):
        raise LinkUnsupported(gate.vendor)

    async def plan(_: dict[str, Any]) -> Plan:
        return Plan(
            target=Target(kind="customer", key=key, record_id=customer_id),
            after={"golden_id": golden_id},
            result=None,
        )

    await gate.write(
        "link_customer",
        {"customer_id": customer_id, "golden_id": golden_id, "idempotency_key": idempotency_key},
        key,
        plan,
    )


async def _update_fields(
    gate: Gate,
    customer_id: str,
    changes: Mapping[MasterField, FieldValue],
    idempotency_key: str,
) -> None:
    """ERP and billing ``update_customer_fields``: the ports have no read of a customer's
    fields by id, so the values are compared only on a customer shadow mode made."""

    async def plan(_: dict[str, Any]) -> Plan:
        before = await gate.current(customer_id)
        known = before if isinstance(before, dict) else None
        after = changes_json(changes)
        return Plan(
            target=Target(kind="customer", record_id=customer_id, read=known is not None),
            after=after,
            before=known,
            result=None,
            equal=equivalence(changes, known),
            states={customer_id: (known or {}) | after} if known is not None else {},
        )

    await gate.write(
        "update_customer_fields",
        {"customer_id": customer_id, "changes": changes, "idempotency_key": idempotency_key},
        idempotency_key,
        plan,
    )


class GatedBilling:
    """:class:`BillingPort` behind the gate (see the module doc)."""

    def __init__(self, inner: BillingPort, gate: Gate) -> None:
        self.inner = inner
        self.gate = gate
        self.vendor = inner.vendor

    def __repr__(self) -> str:
        return f"GatedBilling({self.inner!r}, mode={self.gate.mode.value})"

    # reads
    async def find_customer(self, account_id: str) -> str | None:
        found = await self.inner.find_customer(account_id)
        if found is not None:
            return found
        linked = await self.gate.recorded_for("link_customer", account_id)
        if linked is not None:
            return linked.target.record_id
        recorded = await self.gate.recorded_for("upsert_customer", account_id)
        return None if recorded is None else recorded.result_id

    async def link_customer(self, customer_id: str, golden_id: str, idempotency_key: str) -> None:
        """Adoption's cross-reference (:class:`adapters.ports.CustomerLinks`), gated."""
        await _link(self.gate, golden_id, customer_id, golden_id, idempotency_key)

    async def find_subscription(self, idempotency_key: str) -> Subscription | None:
        found = await self.inner.find_subscription(idempotency_key)
        if found is not None:
            return found
        recorded = await self.gate.recorded_for("create_subscription", idempotency_key)
        if recorded is None or recorded.result_id is None:
            return None
        return Subscription.model_validate(await self.gate.current(recorded.result_id))

    async def list_subscriptions(
        self, cursor: str | None, page_size: int, *, window: Window | None = None
    ) -> Page[OrderRecord]:
        return await self.inner.list_subscriptions(cursor, page_size, window=window)

    async def lookup_subscriptions(self, quote_ids: list[str]) -> list[OrderRecord]:
        return await self.inner.lookup_subscriptions(quote_ids)

    async def list_customers(
        self, cursor: str | None, page_size: int, *, window: Window | None = None
    ) -> Page[CustomerRecord]:
        return await self.inner.list_customers(cursor, page_size, window=window)

    async def lookup_customers(self, account_ids: list[str]) -> list[CustomerRecord]:
        return await self.inner.lookup_customers(account_ids)

    async def list_invoices(
        self, cursor: str | None, page_size: int, *, window: Window | None = None
    ) -> Page[InvoiceRecord]:
        return await self.inner.list_invoices(cursor, page_size, window=window)

    async def lookup_invoices(self, invoice_ids: list[str]) -> list[InvoiceRecord]:
        return await self.inner.lookup_invoices(invoice_ids)

    async def get_invoice(self, invoice_id: str) -> FinalizedInvoice:
        return await self.inner.get_invoice(invoice_id)

    # writes
    async def update_customer_fields(
        self, customer_id: str, changes: Mapping[MasterField, FieldValue], idempotency_key: str
    ) -> None:
        await _update_fields(self.gate, customer_id, changes, idempotency_key)

    async def upsert_customer(self, customer: Customer, idempotency_key: str) -> str:
        # Keyed by the account: one billing customer per account, whichever saga asks.
        key = customer.account_id
        write_id = synthetic_id(self.vendor, "upsert_customer", key)

        async def plan(_: dict[str, Any]) -> Plan:
            found = await self.inner.find_customer(customer.account_id)
            after = customer_fields(customer) | {"currency": customer.currency}
            if found is not None:  # found by the account: returned as it is
                return Plan(
                    target=Target(kind="customer", key=key, record_id=found),
                    after=after,
                    result=found,
                    effect=Effect.NOOP,
                )
            return Plan(
                target=Target(kind="customer", key=key, read=True),
                after=after,
                result=write_id,
                exists=False,
                states={write_id: after},
            )

        result: str = await self.gate.write(
            "upsert_customer",
            {"customer": customer, "idempotency_key": idempotency_key},
            key,
            plan,
        )
        return result

    async def create_subscription(self, draft: SubscriptionDraft, customer_id: str) -> Subscription:
        write_id = synthetic_id(self.vendor, "create_subscription", draft.idempotency_key)

        async def plan(_: dict[str, Any]) -> Plan:
            after = {
                "quote_id": draft.quote_id,
                "account_id": draft.account_id,
                "customer_id": customer_id,
                "currency": draft.currency,
                "start_date": draft.start_date.isoformat(),
                "term_months": draft.term_months,
                "payment_terms": draft.payment_terms.value,
                "recurring_lines": [
                    {
                        "sku": line.sku,
                        "quantity": _money(line.quantity),
                        "amount": _money(line.amount),
                    }
                    for line in draft.recurring_lines
                ],
                "one_time_lines": [
                    {
                        "sku": line.sku,
                        "quantity": _money(line.quantity),
                        "amount": _money(line.amount),
                    }
                    for line in draft.one_time_lines
                ],
            }
            found = await self.inner.find_subscription(draft.idempotency_key)
            target = Target(kind="subscription", key=draft.idempotency_key, read=True)
            if found is not None:
                return Plan(
                    target=target.model_copy(update={"record_id": found.subscription_id}),
                    after=after,
                    before={"customer_id": found.customer_id, "currency": found.currency},
                    unread=frozenset(after) - {"customer_id", "currency"},
                    result=found,
                    effect=Effect.NOOP,
                )
            return Plan(
                target=target,
                after=after,
                result=Subscription(
                    subscription_id=write_id,
                    customer_id=customer_id,
                    currency=draft.currency,
                    status=SubscriptionStatus.ACTIVE,
                ),
                exists=False,
            )

        result: Subscription = await self.gate.write(
            "create_subscription",
            {"draft": draft, "customer_id": customer_id},
            draft.idempotency_key,
            plan,
        )
        return result

    async def cancel_subscription(self, subscription_id: str, reason: str) -> Subscription:
        async def plan(_: dict[str, Any]) -> Plan:
            current = await self.gate.current(subscription_id)
            if current is None:
                listed = await scan(self.inner.list_subscriptions, subscription_id)
                if listed is None or listed.currency is None:
                    raise Unshaped(self.vendor, "cancel_subscription", subscription_id)
                current = Subscription(
                    subscription_id=subscription_id,
                    customer_id=listed.customer_id or "",
                    currency=listed.currency,
                    status=SubscriptionStatus.ACTIVE
                    if listed.live
                    else SubscriptionStatus.CANCELED,
                ).model_dump(mode="json")
            subscription = Subscription.model_validate(current)
            done = subscription.status is SubscriptionStatus.CANCELED
            cancelled = subscription.model_copy(update={"status": SubscriptionStatus.CANCELED})
            return Plan(
                target=Target(kind="subscription", record_id=subscription_id, read=True),
                after={"status": SubscriptionStatus.CANCELED.value},
                before={"status": subscription.status.value},
                result=cancelled,
                effect=Effect.NOOP if done else None,
                states={subscription_id: cancelled.model_dump(mode="json")},
            )

        result: Subscription = await self.gate.write(
            "cancel_subscription",
            {"subscription_id": subscription_id, "reason": reason},
            f"cancel:{subscription_id}",
            plan,
        )
        return result

    async def void_invoice(self, invoice_id: str) -> Invoice:
        async def plan(_: dict[str, Any]) -> Plan:
            invoice = await self.inner.get_invoice(invoice_id)
            customer_id = await self.inner.find_customer(invoice.account_id)
            refusals = []
            if invoice.status.value == InvoiceStatus.PAID.value:
                refusals.append(rule("INVOICE_PAID", f"{invoice_id} is paid: credit or refund it"))
            done = invoice.status.value == InvoiceStatus.VOID.value
            shaped = Invoice(
                invoice_id=invoice.invoice_id,
                customer_id=customer_id or invoice.account_id,
                currency=invoice.currency,
                status=InvoiceStatus.VOID if not refusals else InvoiceStatus(invoice.status.value),
                lines=[
                    InvoiceLine(description=line.description or line.sku, amount=line.amount)
                    for line in invoice.lines
                ],
                subtotal=invoice.subtotal,
                tax=invoice.tax,
                total=invoice.total,
                due_date=invoice.due_date,
            )
            return Plan(
                target=Target(kind="invoice", record_id=invoice_id, read=True),
                after={"status": InvoiceStatus.VOID.value},
                before={"status": invoice.status.value},
                result=shaped,
                effect=Effect.NOOP if done else None,
                refusals=refusals,
            )

        result: Invoice = await self.gate.write(
            "void_invoice", {"invoice_id": invoice_id}, f"void:{invoice_id}", plan
        )
        return result


def changed_fields(write: RecordedWrite) -> list[str]:
    return [c.field for c in write.changes if c.state is not ChangeState.UNCHANGED]
