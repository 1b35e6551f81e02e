"""An estate an earlier integration (and people) left in the emulators, planted straight into
their state: thousands of customers across Salesforce, NetSuite and Stripe, some linked,
some not, with duplicates and conflicts; then open invoices in several currencies, some
already posted in NetSuite, some half paid.

Account ``n`` follows pattern ``n % 10`` (the buckets adoption must find):

=====  ==============================================  ================================
n%10   NetSuite / Stripe                               expected
=====  ==============================================  ================================
0      both linked (``acct-<id>``, metadata)            matched
1      NetSuite: same website domain; Stripe: e-mail    matched by key (domain, email)
2      NetSuite: same e-mail; Stripe: tax id            matched by key (email, tax_id)
3      NetSuite: same legal name                        matched by key (legal_name)
4      NetSuite linked, another e-mail                  conflicting
5      NetSuite: nothing matches                        to create; an ERP orphan
6      NetSuite: a legal name two accounts share        to create; an ERP ambiguous
7      NetSuite: two customers with its e-mail          to create; two ERP ambiguous
8      Stripe: linked to an account the CRM lacks       to create; a billing orphan
9      nothing                                          to create
=====  ==============================================  ================================
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from domain.adoption import Bucket
from sandbox.app import SandboxState
from sandbox.seed import ACCOUNTS
from sandbox.stripe import SandboxInvoice

PREFIX = "0015e0ADOPT"  # + 7 digits: an 18-character Salesforce id
TEMPLATE = next(a for a in ACCOUNTS if a["Id"] == "0015e00000NordDE1")
CURRENCIES = ("EUR", "USD", "GBP", "JPY")


def account_id(n: int) -> str:
    return f"{PREFIX}{n:07d}"


def legal(n: int) -> str:
    return f"Twin {n // 20} GmbH" if n % 10 == 6 else f"Planted {n} GmbH"


@dataclass
class Estate:
    accounts: int
    customers: dict[str, Bucket] = field(default_factory=dict)  # account -> bucket
    strays: Counter[tuple[str, Bucket]] = field(default_factory=Counter)  # (system, bucket)
    erp_ids: dict[int, str] = field(default_factory=dict)  # account n -> NetSuite id
    stripe_ids: dict[int, str] = field(default_factory=dict)  # account n -> Stripe id


def plant_customers(state: SandboxState, accounts: int) -> Estate:
    estate = Estate(accounts)
    sf = state.salesforce.records["Account"]
    netsuite, stripe = state.netsuite, state.stripe
    stripe.search_lag_seconds = 0
    for n in range(accounts):
        pattern, account = n % 10, account_id(n)
        record = copy.deepcopy(TEMPLATE)
        record.update(
            {
                "Id": account,
                "Name": f"Planted {n}",
                "Legal_Entity__c": legal(n),
                "Tax_Id__c": f"DE{900000000 + n}",
                "Billing_Email__c": f"ap@planted{n}.example",
                "Website": f"https://www.planted{n}.example",
            }
        )
        sf[account] = record

        def erp(external_id: str, n: int = n, **body: str) -> str:
            made = netsuite.upsert_customer(
                external_id, {"companyName": f"Planted {n}", **body}, set()
            )
            return str(made["id"])

        if pattern == 0:
            estate.erp_ids[n] = erp(
                f"acct-{account}", legalName=legal(n), email=f"ap@planted{n}.example"
            )
        elif pattern == 1:
            estate.erp_ids[n] = erp(f"LEGACY-{n}", url=f"planted{n}.example")
        elif pattern == 2:
            estate.erp_ids[n] = erp(f"LEGACY-{n}", email=f"AP@planted{n}.example")
        elif pattern == 3:
            estate.erp_ids[n] = erp(f"LEGACY-{n}", legalName=f"planted {n}  gmbh")
        elif pattern == 4:
            estate.erp_ids[n] = erp(f"acct-{account}", email=f"old@planted{n}.example")
        elif pattern == 5:
            erp(f"LEGACY-{n}", companyName=f"Lost {n}", email=f"lost{n}@nowhere.example")
            estate.strays[("erp", Bucket.ORPHAN)] += 1
        elif pattern == 6:
            erp(f"LEGACY-{n}", legalName=legal(n))
            estate.strays[("erp", Bucket.AMBIGUOUS)] += 1
        elif pattern == 7:
            erp(f"LEGACY-{n}-a", email=f"ap@planted{n}.example")
            erp(f"LEGACY-{n}-b", email=f"ap@planted{n}.example")
            estate.strays[("erp", Bucket.AMBIGUOUS)] += 2

        def customer(n: int = n, **params: Any) -> str:
            return str(stripe.create_customer({"name": legal(n), **params})["id"])

        if pattern == 0:
            estate.stripe_ids[n] = customer(
                email=f"ap@planted{n}.example", metadata={"revsync_account_id": account}
            )
        elif pattern == 1:
            estate.stripe_ids[n] = customer(email=f"ap@planted{n}.example")
        elif pattern == 2:
            estate.stripe_ids[n] = customer(metadata={"tax_id": f"DE {900000000 + n}"})
        elif pattern == 8:
            customer(metadata={"revsync_account_id": f"0015e0GHOST{n:07d}"})
            estate.strays[("billing", Bucket.ORPHAN)] += 1

        estate.customers[account] = {
            0: Bucket.MATCHED,
            1: Bucket.MATCHED_BY_KEY,
            2: Bucket.MATCHED_BY_KEY,
            3: Bucket.MATCHED_BY_KEY,
            4: Bucket.CONFLICTING,
        }.get(pattern, Bucket.TO_CREATE)
    return estate


# -- invoices -----------------------------------------------------------------------------------


@dataclass
class PlantedInvoice:
    invoice_id: str
    account: str
    currency: str
    total: Decimal
    due: Decimal  # what billing says is due
    kind: str  # matched | conflicting | to_create | to_create_half | settled | unreadable

    @property
    def paid(self) -> Decimal:
        return self.total - self.due


def _minor(currency: str) -> int:
    return 1 if currency == "JPY" else 100


def plant_invoices(state: SandboxState, estate: Estate) -> list[PlantedInvoice]:
    """One invoice of every linked (pattern 0) account, in a currency by account, and what
    the earlier integration did with it, by account: posted in NetSuite (matched), posted but
    half paid in Stripe since (conflicting), not posted (to create), not posted and half
    paid, paid (history). One more of a Stripe customer no account names: unreadable."""
    stripe = state.stripe
    kinds = ("matched", "conflicting", "to_create", "to_create_half", "settled")
    planted: list[PlantedInvoice] = []
    linked = sorted(n for n in estate.stripe_ids if n % 10 == 0)
    for index, n in enumerate(linked):
        currency = CURRENCIES[index % len(CURRENCIES)]
        kind = kinds[(index // len(CURRENCIES)) % len(kinds)]
        unit = 1200 * _minor(currency) + 7 * index  # a different total each
        made = stripe.create_sandbox_invoice(
            SandboxInvoice.model_validate(
                {
                    "customer": estate.stripe_ids[n],
                    "currency": currency.lower(),
                    "lines": [{"product": "ONBOARD-STD", "unit_amount": unit}],
                    "status": "paid" if kind == "settled" else "open",
                }
            )
        )
        invoice = stripe.invoices[made["id"]]
        total = Decimal(invoice["total"]) / _minor(currency)
        due = total
        if kind in ("conflicting", "to_create_half"):
            half = invoice["total"] // 2
            invoice["amount_paid"] = half
            invoice["amount_remaining"] = invoice["total"] - half
            due = Decimal(invoice["total"] - half) / _minor(currency)
        if kind == "settled":
            due = Decimal(0)
        planted.append(PlantedInvoice(made["id"], account_id(n), currency, total, due, kind))
    stray = stripe.create_customer({"name": "Nobody's customer"})
    made = stripe.create_sandbox_invoice(
        SandboxInvoice.model_validate(
            {
                "customer": stray["id"],
                "currency": "eur",
                "lines": [{"product": "ONBOARD-STD", "unit_amount": 9900}],
            }
        )
    )
    planted.append(PlantedInvoice(made["id"], "?", "EUR", Decimal(99), Decimal(99), "unreadable"))
    return planted
