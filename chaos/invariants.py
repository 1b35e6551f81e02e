"""What must hold after a chaos run, as pure functions of what the run saw.

Inputs: the quote ids the run sent, each one's saga as its ``status`` query answered (or None
when there is no workflow for it), and the sandbox's ``GET /_sandbox/state`` snapshot. Output:
every violation found; an empty list is a clean run.

The rules, per sent quote:

- it has a saga (``lost`` otherwise), which ended BOOKED, COMPENSATED or REJECTED, or is
  visibly parked: NEEDS_ATTENTION with its blocked step and reason, or AWAITING_APPROVAL
  (``unsettled``, ``parked-without-reason``);
- no system holds two records of one kind for it (``duplicate``): ERP sales orders,
  subscriptions, CRM orders; nor two billing or ERP customers for one CRM account;
- BOOKED: exactly one live ERP sales order, one live subscription and one CRM order
  (``incomplete-booking``), agreeing with each other and with the saga: the CRM order (the
  one Salesforce CPQ generated from the quote) carries the ERP order and subscription ids
  and is Activated, and the CRM quote is Ordered, its status and CPQ's ``SBQQ__Ordered__c``
  (``mismatch``);
- COMPENSATED, REJECTED, AWAITING_APPROVAL: no live ERP order, no live subscription, no CRM
  order (``live-records``); COMPENSATED and REJECTED leave the CRM quote Rejected
  (``mismatch``);

and every ERP order, subscription and CRM order belongs to a sent quote (``orphan``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

Record = dict[str, Any]

# NetSuite ``orderStatus`` of an undone sales order: Cancelled (one Pending Approval) or Closed
# (every line closed: how an approved order is undone); Stripe statuses of an ended
# subscription.
ERP_ENDED = frozenset({"C", "H"})
SUBSCRIPTION_ENDED = frozenset({"canceled", "incomplete_expired"})
CRM_ORDERED = "Ordered"
CRM_REJECTED = "Rejected"
CRM_ORDER_ACTIVATED = "Activated"

TERMINAL = frozenset({"BOOKED", "COMPENSATED", "REJECTED"})
PARKED = frozenset({"NEEDS_ATTENTION", "AWAITING_APPROVAL"})
SETTLED = TERMINAL | PARKED


class Kind(StrEnum):
    LOST = "lost"
    UNSETTLED = "unsettled"
    PARKED_WITHOUT_REASON = "parked-without-reason"
    DUPLICATE = "duplicate"
    INCOMPLETE_BOOKING = "incomplete-booking"
    MISMATCH = "mismatch"
    LIVE_RECORDS = "live-records"
    ORPHAN = "orphan"


@dataclass(frozen=True)
class Violation:
    kind: Kind
    subject: str  # "quote <id>", "account <id>" or the orphan record
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.subject}: {self.detail}"


@dataclass(frozen=True)
class SagaView:
    """The part of a saga's ``status`` the invariants read."""

    quote_id: str
    stage: str
    reason: str | None = None
    parked_step: str | None = None
    erp_order_id: str | None = None
    subscription_id: str | None = None
    crm_order_id: str | None = None

    @property
    def settled(self) -> bool:
        return self.stage in SETTLED


@dataclass
class QuoteRecords:
    """What the vendor systems hold for one quote."""

    erp_orders: list[Record] = field(default_factory=list)
    subscriptions: list[Record] = field(default_factory=list)
    crm_orders: list[Record] = field(default_factory=list)
    crm_quote: Record | None = None

    @property
    def live_erp_orders(self) -> list[Record]:
        return [o for o in self.erp_orders if o.get("orderStatus") not in ERP_ENDED]

    @property
    def live_subscriptions(self) -> list[Record]:
        return [s for s in self.subscriptions if s.get("status") not in SUBSCRIPTION_ENDED]


def _quote_of(key: object, suffix: str, fallback: object) -> str | None:
    """The quote id in an idempotency key ``q2c-<quote>:<suffix>``, else ``fallback``."""
    if isinstance(key, str) and key.startswith("q2c-") and key.endswith(f":{suffix}"):
        return key.removeprefix("q2c-").removesuffix(f":{suffix}")
    return str(fallback) if fallback else None


def index_records(snapshot: Mapping[str, Any]) -> tuple[dict[str, QuoteRecords], list[str]]:
    """Every record of the snapshot grouped by the quote it belongs to, and a line for each
    record that belongs to no quote at all."""
    by_quote: dict[str, QuoteRecords] = defaultdict(QuoteRecords)
    unowned: list[str] = []
    for order in snapshot["netsuite"]["salesOrders"]:
        quote = _quote_of(order.get("externalId"), "erp-order", order.get("otherRefNum"))
        if quote is None:
            unowned.append(f"ERP sales order {order.get('id')}")
        else:
            by_quote[quote].erp_orders.append(order)
    for sub in snapshot["stripe"]["subscriptions"]:
        metadata = sub.get("metadata") or {}
        quote = _quote_of(metadata.get("revsync_key"), "subscription", metadata.get("quote_id"))
        if quote is None:
            unowned.append(f"subscription {sub.get('id')}")
        else:
            by_quote[quote].subscriptions.append(sub)
    for order in snapshot["salesforce"]["orders"]:
        quote = _quote_of(order.get("Revsync_Key__c"), "crm-order", order.get("SBQQ__Quote__c"))
        if quote is None:
            unowned.append(f"CRM order {order.get('Id')}")
        else:
            by_quote[quote].crm_orders.append(order)
    for crm_quote in snapshot["salesforce"]["quotes"]:
        by_quote[str(crm_quote["Id"])].crm_quote = crm_quote
    return dict(by_quote), unowned


def check(
    sent: Iterable[str], sagas: Mapping[str, SagaView | None], snapshot: Mapping[str, Any]
) -> list[Violation]:
    """Every violation of the rules above (see the module docstring)."""
    sent_ids = list(dict.fromkeys(sent))
    records, unowned = index_records(snapshot)
    found = [Violation(Kind.ORPHAN, line, "belongs to no quote") for line in unowned]
    for quote_id, held in records.items():
        if quote_id not in sent_ids and (held.erp_orders or held.subscriptions or held.crm_orders):
            found.append(Violation(Kind.ORPHAN, f"quote {quote_id}", "records of a quote not sent"))
    found += _customer_duplicates(snapshot)
    for quote_id in sent_ids:
        found += check_quote(quote_id, sagas.get(quote_id), records.get(quote_id, QuoteRecords()))
    return found


def _customer_duplicates(snapshot: Mapping[str, Any]) -> list[Violation]:
    billing = Counter(
        str((c.get("metadata") or {}).get("revsync_account_id"))
        for c in snapshot["stripe"]["customers"]
        if (c.get("metadata") or {}).get("revsync_account_id")
    )
    erp = Counter(
        str(c["externalId"]) for c in snapshot["netsuite"]["customers"] if c.get("externalId")
    )
    return [
        Violation(Kind.DUPLICATE, f"account {account}", f"{n} billing customers")
        for account, n in sorted(billing.items())
        if n > 1
    ] + [
        Violation(Kind.DUPLICATE, f"account {key.removeprefix('acct-')}", f"{n} ERP customers")
        for key, n in sorted(erp.items())
        if n > 1
    ]


def check_quote(quote_id: str, saga: SagaView | None, held: QuoteRecords) -> list[Violation]:
    """The violations of one sent quote, given its saga and its records."""
    subject = f"quote {quote_id}"
    if saga is None:
        return [Violation(Kind.LOST, subject, "sent, but no saga exists for it")]
    found = [
        Violation(Kind.DUPLICATE, subject, f"{len(items)} {what}")
        for what, items in (
            ("ERP sales orders", held.erp_orders),
            ("subscriptions", held.subscriptions),
            ("CRM orders", held.crm_orders),
        )
        if len(items) > 1
    ]
    if saga.stage == "BOOKED":
        found += _check_booked(subject, saga, held)
    elif saga.stage in ("COMPENSATED", "REJECTED", "AWAITING_APPROVAL"):
        found += _check_nothing_booked(subject, saga, held)
    elif saga.stage == "NEEDS_ATTENTION":
        if not saga.parked_step or not saga.reason:
            found.append(
                Violation(Kind.PARKED_WITHOUT_REASON, subject, "NEEDS_ATTENTION without a reason")
            )
    else:
        found.append(Violation(Kind.UNSETTLED, subject, f"still {saga.stage} when the wait ended"))
    return found


def _check_booked(subject: str, saga: SagaView, held: QuoteRecords) -> list[Violation]:
    orders, subs, crm = held.live_erp_orders, held.live_subscriptions, held.crm_orders
    missing = [
        what
        for what, items in (
            ("a live ERP sales order", orders),
            ("a live subscription", subs),
            ("a CRM order", crm),
        )
        if not items
    ]
    if missing:
        return [Violation(Kind.INCOMPLETE_BOOKING, subject, "BOOKED without " + ", ".join(missing))]
    order_id, sub_id, crm_order = str(orders[0]["id"]), str(subs[0]["id"]), crm[0]
    disagreements = [
        f"{what} {theirs!r} != {ours!r}"
        for what, theirs, ours in (
            ("saga's ERP order", saga.erp_order_id, order_id),
            ("saga's subscription", saga.subscription_id, sub_id),
            ("saga's CRM order", saga.crm_order_id, crm_order.get("Id")),
            ("CRM order's ERP order", crm_order.get("ERP_Order_Id__c"), order_id),
            ("CRM order's subscription", crm_order.get("Billing_Subscription_Id__c"), sub_id),
            ("CRM order's status", crm_order.get("Status"), CRM_ORDER_ACTIVATED),
            ("CRM quote status", _crm_status(held), CRM_ORDERED),
            ("CRM quote's Ordered", _crm_ordered(held), True),
        )
        if theirs != ours
    ]
    return [Violation(Kind.MISMATCH, subject, "; ".join(disagreements))] if disagreements else []


def _check_nothing_booked(subject: str, saga: SagaView, held: QuoteRecords) -> list[Violation]:
    found = []
    live = [
        f"{len(items)} {what}"
        for what, items in (
            ("live ERP sales order(s)", held.live_erp_orders),
            ("live subscription(s)", held.live_subscriptions),
            ("CRM order(s)", held.crm_orders),
        )
        if items
    ]
    if live:
        found.append(Violation(Kind.LIVE_RECORDS, subject, f"{saga.stage} but " + ", ".join(live)))
    if saga.stage in ("COMPENSATED", "REJECTED") and _crm_status(held) != CRM_REJECTED:
        found.append(
            Violation(
                Kind.MISMATCH,
                subject,
                f"{saga.stage} but the CRM quote is {_crm_status(held)!r}, not {CRM_REJECTED!r}",
            )
        )
    return found


def _crm_status(held: QuoteRecords) -> str | None:
    return None if held.crm_quote is None else held.crm_quote.get("SBQQ__Status__c")


def _crm_ordered(held: QuoteRecords) -> bool | None:
    return None if held.crm_quote is None else held.crm_quote.get("SBQQ__Ordered__c")
