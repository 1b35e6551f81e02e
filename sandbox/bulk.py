"""A company's worth of records in the sandbox at once, for reconciliation at volume (the
benchmark, ``bench/reconcile.py``, and the scale test): Salesforce, NetSuite and Stripe (the
default vendors), seeded in process straight into the emulators' stores, not through one
HTTP call per record, with a known share of drift; then changes made through the stores' own
write paths (so change times and Stripe's events are what the vendors would show).

Every quote is booked as quote-to-cash books it: a NetSuite sales order keyed
``q2c-<quote>:erp-order`` naming the quote in ``otherRefNum``, a Stripe subscription with
``metadata.revsync_key``/``quote_id``/``account_id``, a Salesforce Order generated from the
quote (``SBQQ__Quote__c``) stamped with ``Revsync_Key__c`` and the ERP total. Every account
has its NetSuite customer ``acct-<account>`` and its Stripe customer; every invoice a Stripe
invoice and the NetSuite receivable ``i2r-<invoice>:receivable``. No saga exists for any of
them (a two-year-old booking's saga is long past Temporal's retention): each subject is
judged by its records agreeing with each other. Records were made over ``days`` days before
the seed, their change time their creation time.

Drift (``drift_per_mille`` of each kind of subject, split over known kinds) is returned with
the subjects it concerns, so a run's report can be checked exactly. This is dev tooling, not
a vendor rule: it writes the stores' own record shapes and imports no adapter code.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from sandbox import salesforce, stripe

if TYPE_CHECKING:
    from sandbox.app import SandboxState

Drift = tuple[str, str]  # (kind, subject)

ORDER_DRIFT = ("amount_mismatch", "missing_in_crm", "status_mismatch", "missing_in_billing")
INVOICE_DRIFT = ("missing_in_erp", "amount_mismatch", "status_mismatch")
CUSTOMER_DRIFT = ("field_mismatch", "missing_in_erp")
CURRENCIES = ("USD", "EUR", "GBP")


class BulkSpec(BaseModel):
    """How much to seed."""

    quotes: int = Field(default=100_000, ge=0)
    invoices: int = Field(default=100_000, ge=0)
    customers: int = Field(default=20_000, ge=1)
    drift_per_mille: int = Field(default=10, ge=0, le=1000)
    days: int = Field(default=730, ge=1, description="Records were made over this many days")
    seed: int = 1


@dataclass
class Seeded:
    """What was seeded: the subjects, their records' ids, and the drift each carries."""

    quotes: list[str] = field(default_factory=list)
    accounts: list[str] = field(default_factory=list)
    invoices: list[str] = field(default_factory=list)
    drift: set[Drift] = field(default_factory=set)
    # quote -> (NetSuite order id, Stripe subscription id, Salesforce order id or None)
    orders: dict[str, tuple[str, str | None, str | None]] = field(default_factory=dict)
    # invoice -> NetSuite invoice id (None: not posted)
    receivables: dict[str, str | None] = field(default_factory=dict)
    # account -> NetSuite customer id (None: missing)
    erp_customers: dict[str, str | None] = field(default_factory=dict)

    def drift_of(self, subjects: set[str]) -> set[Drift]:
        return {d for d in self.drift if d[1] in subjects}


def _stamp_sf(moment: datetime) -> str:
    return salesforce.format_datetime(moment)


def _stamp_ns(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def seed_estate(state: SandboxState, spec: BulkSpec, now: datetime | None = None) -> Seeded:
    """Seed ``spec``'s records into the sandbox's Salesforce, NetSuite and Stripe."""
    rng = random.Random(spec.seed)
    now = (now or datetime.now(UTC)).replace(microsecond=0) - timedelta(hours=1)
    oldest = now - timedelta(days=spec.days)
    span = (now - oldest).total_seconds()
    sf, ns, st = state.salesforce, state.netsuite, state.stripe
    ns_currency = {symbol: cid for cid, c in ns.currencies.items() for symbol in [c["symbol"]]}
    seeded = Seeded()

    def moments(n: int) -> list[datetime]:
        return sorted(oldest + timedelta(seconds=rng.random() * span) for _ in range(n))

    def drifted(n: int, kinds: tuple[str, ...]) -> list[str | None]:
        """Which of ``n`` subjects drift, and how (spread evenly over ``kinds``)."""
        count = n * spec.drift_per_mille // 1000
        picks = rng.sample(range(n), count) if count else []
        chosen: list[str | None] = [None] * n
        for i, index in enumerate(picks):
            chosen[index] = kinds[i % len(kinds)]
        return chosen

    # Customers: an account in Salesforce, its NetSuite and Stripe customers.
    account_drift = drifted(spec.customers, CUSTOMER_DRIFT)
    created_times = sorted(
        oldest + timedelta(seconds=rng.random() * span) for _ in range(spec.customers)
    )
    ns_customers: dict[str, str] = {}
    st_customers: dict[str, str] = {}
    stripe_objects: dict[str, list[dict[str, Any]]] = {
        "customers": [],
        "subscriptions": [],
        "invoices": [],
    }
    for n, made in enumerate(created_times):
        account_id = sf._new_id("Account")
        name = f"Bulk Customer {n:06d}"
        email = f"ap{n:06d}@bulk.example"
        legal = f"{name} Ltd"
        currency = CURRENCIES[n % len(CURRENCIES)]
        stamp = _stamp_sf(made)
        sf.records["Account"][account_id] = {
            **dict.fromkeys(salesforce.SCHEMA["Account"]),
            "Id": account_id,
            "Name": name,
            "Billing_Email__c": email,
            "Legal_Entity__c": legal,
            "CurrencyIsoCode": currency,
            "Type": "Customer - Direct",
            "CreatedDate": stamp,
            "LastModifiedDate": stamp,
            "SystemModstamp": stamp,
        }
        seeded.accounts.append(account_id)
        kind = account_drift[n]
        erp_made = made + timedelta(seconds=30)
        if kind == "missing_in_erp":
            seeded.erp_customers[account_id] = None
        else:
            customer_id = str(next(ns._customer_ids))
            ns.customers[customer_id] = {
                "id": customer_id,
                "externalId": f"acct-{account_id}",
                "companyName": f"{name} (typo)" if kind == "field_mismatch" else name,
                "legalName": legal,
                "email": email,
                "addressBook": [],
                "taxRegistration": [],
                "currency": ns_currency[currency],
                "dateCreated": _stamp_ns(erp_made),
                "lastModifiedDate": _stamp_ns(erp_made),
            }
            ns_customers[account_id] = customer_id
            seeded.erp_customers[account_id] = customer_id
        if kind is not None:
            seeded.drift.add((kind, account_id))
        customer_id = stripe.new_id("cus")
        stripe_objects["customers"].append(
            {
                "id": customer_id,
                "object": "customer",
                "created": int((made + timedelta(seconds=60)).timestamp()),
                "name": legal,
                "email": email,
                "description": name,
                "phone": None,
                "address": None,
                "metadata": {"revsync_account_id": account_id},
                "tax_ids": {"object": "list", "data": [], "has_more": False},
                "currency": currency.lower(),
                "deleted": False,
                "invoice_settings": {"default_payment_method": None},
                "livemode": False,
            }
        )
        st_customers[account_id] = customer_id

    # Quotes: each booked for an account made before it.
    order_drift = drifted(spec.quotes, ORDER_DRIFT)
    quote_times = sorted(
        oldest + timedelta(seconds=rng.random() * span) for _ in range(spec.quotes)
    )
    for n, made in enumerate(quote_times):
        index = rng.randrange(spec.customers)
        account_id = seeded.accounts[index]
        currency = CURRENCIES[index % len(CURRENCIES)]
        quote_id = sf._new_id("SBQQ__Quote__c")
        total = Decimal(rng.randrange(5_000, 500_000)) / 100
        kind = order_drift[n]
        order_id = str(next(ns._order_ids))
        ns.sales_orders[order_id] = {
            "id": order_id,
            "tranId": f"SO{order_id}",
            "externalId": f"q2c-{quote_id}:erp-order",
            "entity": ns_customers.get(account_id),
            "currency": ns_currency[currency],
            "terms": None,
            "tranDate": made.date().isoformat(),
            "orderStatus": "C" if kind == "status_mismatch" else "B",
            "memo": None,
            "otherRefNum": quote_id,
            "item": [],
            "subtotal": total,
            "total": total,
            "createdDate": _stamp_ns(made),
            "lastModifiedDate": _stamp_ns(made),
        }
        subscription_id: str | None = None
        if kind != "missing_in_billing":
            subscription_id = stripe.new_id("sub")
            stripe_objects["subscriptions"].append(
                {
                    "id": subscription_id,
                    "object": "subscription",
                    "created": int((made + timedelta(seconds=1)).timestamp()),
                    "customer": st_customers[account_id],
                    "currency": currency.lower(),
                    "status": "active",
                    "collection_method": "send_invoice",
                    "items": {"object": "list", "data": [], "has_more": False},
                    "metadata": {
                        "revsync_key": f"q2c-{quote_id}:subscription",
                        "quote_id": quote_id,
                        "account_id": account_id,
                    },
                    "cancellation_details": {"comment": None, "feedback": None, "reason": None},
                    "livemode": False,
                }
            )
        crm_order_id: str | None = None
        if kind != "missing_in_crm":
            crm_order_id = sf._new_id("Order")
            stamp = _stamp_sf(made + timedelta(seconds=2))
            sf.records["Order"][crm_order_id] = {
                **dict.fromkeys(salesforce.SCHEMA["Order"]),
                "Id": crm_order_id,
                "AccountId": account_id,
                "SBQQ__Quote__c": quote_id,
                "Revsync_Key__c": f"q2c-{quote_id}:crm-order",
                "ERP_Order_Id__c": order_id,
                "ERP_Order_Total__c": total + 1 if kind == "amount_mismatch" else total,
                "CurrencyIsoCode": currency,
                "Status": "Activated",
                "EffectiveDate": made.date().isoformat(),
                "CreatedDate": stamp,
                "LastModifiedDate": stamp,
                "SystemModstamp": stamp,
            }
        seeded.quotes.append(quote_id)
        seeded.orders[quote_id] = (order_id, subscription_id, crm_order_id)
        if kind is not None:
            seeded.drift.add((kind, quote_id))

    # Invoices: billed to an account, posted to the ERP a minute later.
    invoice_drift = drifted(spec.invoices, INVOICE_DRIFT)
    invoice_times = sorted(
        oldest + timedelta(seconds=rng.random() * span) for _ in range(spec.invoices)
    )
    for n, made in enumerate(invoice_times):
        index = rng.randrange(spec.customers)
        account_id = seeded.accounts[index]
        currency = CURRENCIES[index % len(CURRENCIES)]
        cents = rng.randrange(1_000, 1_000_000)
        kind = invoice_drift[n]
        paid = rng.random() < 0.7 or kind == "status_mismatch"
        invoice_id = stripe.new_id("in")
        created = int(made.timestamp())
        stripe_objects["invoices"].append(
            {
                "id": invoice_id,
                "object": "invoice",
                "created": created,
                "customer": st_customers[account_id],
                "currency": currency.lower(),
                "status": "paid" if paid else "open",
                "total": cents,
                "subtotal": cents,
                "tax": 0,
                "amount_due": cents,
                "amount_paid": cents if paid else 0,
                "amount_remaining": 0 if paid else cents,
                "collection_method": "send_invoice",
                "metadata": {},
                "status_transitions": {
                    "finalized_at": created,
                    "paid_at": created if paid else None,
                    "voided_at": None,
                    "marked_uncollectible_at": None,
                },
                "lines": {
                    "object": "list",
                    "data": [],
                    "has_more": False,
                    "total_count": 0,
                    "url": f"/v1/invoices/{invoice_id}/lines",
                },
                "livemode": False,
            }
        )
        seeded.invoices.append(invoice_id)
        if kind is not None:
            seeded.drift.add((kind, invoice_id))
        if kind == "missing_in_erp":
            seeded.receivables[invoice_id] = None
            continue
        total = Decimal(cents) / 100
        if kind == "amount_mismatch":
            total += 1
        remaining = total if (not paid or kind == "status_mismatch") else Decimal(0)
        posted = made + timedelta(seconds=60)
        receivable_id = str(next(ns._transaction_ids))
        ns.invoices[receivable_id] = {
            "id": receivable_id,
            "tranId": f"INV{receivable_id}",
            "externalId": f"i2r-{invoice_id}:receivable",
            "entity": ns_customers.get(account_id),
            "currency": ns_currency[currency],
            "tranDate": posted.date().isoformat(),
            "dueDate": posted.date().isoformat(),
            "postingPeriod": None,
            "memo": None,
            "otherRefNum": invoice_id,
            "item": [],
            "subtotal": total,
            "taxTotal": Decimal(0),
            "total": total,
            "amountRemaining": remaining,
            "status": "A" if remaining > 0 else "B",
            "createdDate": _stamp_ns(posted),
            "lastModifiedDate": _stamp_ns(posted),
        }
        seeded.receivables[invoice_id] = receivable_id
    for kind, objects in stripe_objects.items():
        st.bulk_add(kind, objects)
    return seeded


@dataclass
class Changed:
    """Changes made after a seed: the subjects they touched and the drift those now carry."""

    subjects: set[str] = field(default_factory=set)
    drift: set[Drift] = field(default_factory=set)


def change_estate(state: SandboxState, seeded: Seeded, count: int = 1000, seed: int = 2) -> Changed:
    """``count`` changes, each to one subject, through the stores' write paths (a change
    time of now; Stripe records its events): 40% of them a harmless subscription update,
    20% a CRM order total edited (amount drift), 20% a receivable memo edited (harmless),
    10% a receivable re-opened (status drift on a paid invoice), 10% an account renamed in
    the CRM (the ERP's copy of the name drifts). A few of the harmless ones touch subjects
    that drifted already: their drift is the changes' drift too."""
    rng = random.Random(seed)
    sf, ns, st = state.salesforce, state.netsuite, state.stripe
    quotes_clean = [q for q in seeded.quotes if not any(d[1] == q for d in seeded.drift)]
    quotes_drifted_billed = [
        q
        for q in seeded.quotes
        if any(d[1] == q for d in seeded.drift) and seeded.orders[q][1] is not None
    ]
    invoices_clean = [i for i in seeded.invoices if not any(d[1] == i for d in seeded.drift)]
    accounts_clean = [
        a
        for a in seeded.accounts
        if not any(d[1] == a for d in seeded.drift) and seeded.erp_customers[a] is not None
    ]
    changed = Changed()
    harmless_subscriptions = count * 4 // 10
    amounts = count * 2 // 10
    memos = count * 2 // 10
    reopened = count // 10
    renamed = count - harmless_subscriptions - amounts - memos - reopened
    already = min(len(quotes_drifted_billed), harmless_subscriptions // 10)
    picked_quotes = rng.sample(quotes_clean, harmless_subscriptions - already + amounts)
    for quote in [
        *picked_quotes[: harmless_subscriptions - already],
        *rng.sample(quotes_drifted_billed, already),
    ]:
        subscription_id = seeded.orders[quote][1]
        assert subscription_id is not None
        st.update_subscription(subscription_id, {"metadata": {"note": "seat count reviewed"}})
        changed.subjects.add(quote)
    for quote in picked_quotes[harmless_subscriptions - already :]:
        crm_order = seeded.orders[quote][2]
        assert crm_order is not None
        current = sf.records["Order"][crm_order]["ERP_Order_Total__c"]
        sf.update("Order", crm_order, {"ERP_Order_Total__c": Decimal(str(current)) + 10})
        changed.subjects.add(quote)
        seeded.drift.add(("amount_mismatch", quote))
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    posted = [i for i in invoices_clean if seeded.receivables[i] is not None]
    paid = [i for i in posted if ns.invoices[str(seeded.receivables[i])]["amountRemaining"] == 0]
    reopen = rng.sample(paid, reopened)
    memo_targets = rng.sample([i for i in posted if i not in set(reopen)], memos)
    for invoice in memo_targets:
        receivable = ns.invoices[str(seeded.receivables[invoice])]
        receivable.update(memo="checked by AR", lastModifiedDate=now)
        changed.subjects.add(invoice)
    for invoice in reopen:
        receivable = ns.invoices[str(seeded.receivables[invoice])]
        receivable.update(amountRemaining=receivable["total"], status="A", lastModifiedDate=now)
        changed.subjects.add(invoice)
        seeded.drift.add(("status_mismatch", invoice))
    for account in rng.sample(accounts_clean, renamed):
        name = sf.records["Account"][account]["Name"]
        sf.update("Account", account, {"Name": f"{name} Group"})
        changed.subjects.add(account)
        seeded.drift.add(("field_mismatch", account))
    changed.drift = seeded.drift_of(changed.subjects)
    return changed


__all__ = ["BulkSpec", "Changed", "Seeded", "change_estate", "seed_estate"]
