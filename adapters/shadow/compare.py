"""Shadow mode against the integration already in place: what revsync would have written
(from its recordings) and what the existing integration did write (read through the ports'
listings), object by object.

**The same record.** A recorded write is about a business subject, and the existing
integration's record of that subject is found by it, not by revsync's key (which it does not
use):

================  ===========================  =============================================
object            subject                      the existing record (port listing)
================  ===========================  =============================================
``sales_order``   the quote (``create_sales_order``)  ERP ``list_sales_orders``: the order naming
                                                the quote (revsync's key or its quote reference)
``subscription``  the quote                    billing ``list_subscriptions``, likewise
``crm_order``     the quote (``record_order``)  CRM ``list_orders``, likewise
``receivable``    the billing invoice          ERP ``list_receivables``: the one mirroring it
``customer``      the CRM account (golden id)  ERP / billing ``list_customers``: the record
                                                linked to the account
``account``       the CRM account              CRM ``list_accounts``: the account itself
================  ===========================  =============================================

Fields compared: an order's total, currency and whether it is live; a subscription's currency
and liveness; a receivable's total, currency and amount due; a customer's golden fields by
fingerprint (no customer data leaves the vendor read). Statuses written to CRM, journals,
payments and credit memos are not listed by any port: they are counted as not comparable.

Only recordings older than ``REVSYNC_SHADOW_COMPARE_AFTER_MINUTES`` are judged (the existing
integration may write later than revsync would have), and only subjects revsync saw a
trigger for (a saga recorded a write about them): an existing record of another quote is not
a miss of revsync's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from decimal import Decimal
from typing import TypeVar

from domain.customer_master import MasterField, field_value
from domain.reconciliation import (
    CustomerRecord,
    InvoiceRecord,
    OrderRecord,
    Page,
    fingerprint,
    quote_of_key,
)
from domain.shadow import Expected, Json, ObservedRecord, RecordedWrite, is_synthetic

R = TypeVar("R")

PAGE_SIZE = 200


def _money(value: Json) -> str | None:
    if value is None:
        return None
    return format(Decimal(str(value)).normalize(), "f")


def _prints(fields: Mapping[str, Json]) -> dict[str, Json]:
    prints: dict[str, Json] = {}
    for name, value in fields.items():
        try:
            field = MasterField(name)
            prints[name] = fingerprint(field, field_value(field, value))
        except ValueError:
            continue
    return prints


def _subject_of_saga(workflow_id: str | None) -> tuple[str, str] | None:
    """(kind, subject) of a saga by its workflow id."""
    if workflow_id is None:
        return None
    for prefix, kind in (("q2c-", "quote"), ("i2r-", "invoice"), ("customer-", "customer")):
        if workflow_id.startswith(prefix):
            return kind, workflow_id.removeprefix(prefix)
    return None


OBJECTS_OF = {
    "quote": ("sales_order", "subscription", "crm_order"),
    "invoice": ("receivable",),
    "customer": ("customer", "account"),
}


def subjects_seen(writes: Iterable[RecordedWrite]) -> set[tuple[str, str]]:
    """Every (object, subject) a saga that recorded a write was about."""
    seen: set[tuple[str, str]] = set()
    for write in writes:
        found = _subject_of_saga(write.why.workflow_id)
        if found is None:
            continue
        kind, subject = found
        seen |= {(obj, subject) for obj in OBJECTS_OF[kind]}
        if write.operation in ("upsert_customer", "update_account_fields"):
            account = _account_of(write)
            if account:
                seen |= {("customer", account), ("account", account)}
    return seen


def _account_of(write: RecordedWrite) -> str | None:
    args = write.arguments
    if write.operation == "update_account_fields":
        return str(args["account_id"])
    customer = args.get("customer")
    if isinstance(customer, dict):
        return str(customer.get("account_id"))
    return None


def expected(
    writes: Iterable[RecordedWrite], states: Mapping[str, Json]
) -> tuple[list[Expected], Counter[str]]:
    """What one vendor's recorded writes would have left in it, object by subject; and the
    writes no listing can show (``<vendor>.<operation>`` -> count). ``states`` holds the
    shadow state of the records those writes touched (a receivable after shadow payments)."""
    found: dict[tuple[str, str], Expected] = {}
    subject_of: dict[str, tuple[str, str]] = {}  # record id -> (object, subject)
    not_comparable: Counter[str] = Counter()

    def put(write: RecordedWrite, obj: str, subject: str, fields: dict[str, Json]) -> None:
        key = (obj, subject)
        before = found.get(key)
        merged = (before.fields if before else {}) | fields
        found[key] = Expected(
            vendor=write.vendor,
            object=obj,
            subject=subject,
            workflow_id=write.why.workflow_id,
            write_id=before.write_id if before else write.write_id,
            fields=merged,
        )
        if write.result_id:
            subject_of[write.result_id] = key

    for write in writes:
        args, op = write.arguments, write.operation
        if op == "create_sales_order":
            draft = args["draft"]
            put(
                write,
                "sales_order",
                str(draft["quote_id"]),
                {"total": _money(draft["total"]), "currency": draft["currency"], "live": True},
            )
        elif op == "create_subscription":
            draft = args["draft"]
            put(
                write,
                "subscription",
                str(draft["quote_id"]),
                {"currency": draft["currency"], "live": True},
            )
        elif op in ("cancel_sales_order", "cancel_subscription"):
            record = args.get("order_id") or args.get("subscription_id")
            key = subject_of.get(str(record))
            if key is None:
                not_comparable[f"{write.vendor}.{op}"] += 1
                continue
            put(write, key[0], key[1], {"live": False})
        elif op == "record_order":
            order = args["sales_order"]
            put(
                write,
                "crm_order",
                str(args["quote_id"]),
                {"total": _money(order["total"]), "currency": order["currency"]},
            )
        elif op == "post_receivable":
            invoice = args["invoice"]
            result_id = write.result_id or ""
            state = states.get(result_id)
            due = state.get("amount_due") if isinstance(state, dict) else invoice["total"]
            put(
                write,
                "receivable",
                str(invoice["invoice_id"]),
                {
                    "total": _money(invoice["total"]),
                    "currency": invoice["currency"],
                    "amount_due": _money(due),
                },
            )
        elif op == "upsert_customer":
            customer = args["customer"]
            fields = {
                "name": customer.get("name"),
                "legal_entity": customer.get("legal_entity"),
                "tax_id": customer.get("tax_id"),
                "email": customer.get("email"),
                "billing_address": customer.get("billing_address"),
            }
            put(write, "customer", str(customer["account_id"]), _prints(fields))
        elif op == "update_customer_fields":
            record = str(args["customer_id"])
            key = subject_of.get(record)
            if key is None and not is_synthetic(record):
                key = ("customer", f"record:{record}")
            if key is None:
                not_comparable[f"{write.vendor}.{op}"] += 1
                continue
            put(write, key[0], key[1], _prints(args["changes"]))
        elif op == "update_account_fields":
            put(write, "account", str(args["account_id"]), _prints(args["changes"]))
        else:
            not_comparable[f"{write.vendor}.{op}"] += 1
    return list(found.values()), not_comparable


def observed_orders(
    vendor: str, obj: str, records: Iterable[OrderRecord], subjects: set[str]
) -> list[ObservedRecord]:
    out: list[ObservedRecord] = []
    for record in records:
        subject = quote_of_key(record.key) or record.quote_ref
        if subject is None or subject not in subjects:
            continue
        fields: dict[str, Json] = {"currency": record.currency, "live": record.live}
        if record.amount is not None:
            fields["total"] = _money(record.amount)
        out.append(
            ObservedRecord(
                vendor=vendor,
                object=obj,
                subject=subject,
                record_id=record.record_id,
                fields=fields,
            )
        )
    return out


def observed_receivables(
    vendor: str, records: Iterable[InvoiceRecord], subjects: set[str]
) -> list[ObservedRecord]:
    return [
        ObservedRecord(
            vendor=vendor,
            object="receivable",
            subject=record.invoice_id,
            record_id=record.record_id,
            fields={
                "total": _money(record.amount),
                "currency": record.currency,
                "amount_due": _money(record.amount_due),
            },
        )
        for record in records
        if record.invoice_id in subjects
    ]


def observed_customers(
    vendor: str, obj: str, records: Iterable[CustomerRecord], subjects: set[str]
) -> list[ObservedRecord]:
    """Customers by the account they are linked to (a CRM account is its own subject); a
    record also answers for ``record:<id>`` (an update of a customer by its vendor id)."""
    out: list[ObservedRecord] = []
    for record in records:
        account = record.record_id if obj == "account" else record.account_id
        fields: dict[str, Json] = {f.value: p for f, p in record.fields.items()}
        for subject in (account, f"record:{record.record_id}"):
            if subject is not None and subject in subjects:
                out.append(
                    ObservedRecord(
                        vendor=vendor,
                        object=obj,
                        subject=subject,
                        record_id=record.record_id,
                        fields=fields,
                    )
                )
    return out


async def every(listing: Callable[[str | None, int], Awaitable[Page[R]]]) -> list[R]:
    """Every record of a port listing, page by page."""
    items: list[R] = []
    cursor: str | None = None
    while True:
        page = await listing(cursor, PAGE_SIZE)
        items.extend(page.items)
        if page.cursor is None:
            return items
        cursor = page.cursor


def subjects_of(
    expected_items: Iterable[Expected], seen: set[tuple[str, str]], obj: str
) -> set[str]:
    return {e.subject for e in expected_items if e.object == obj} | {
        subject for kind, subject in seen if kind == obj
    }
