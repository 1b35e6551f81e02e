"""Adoption: how fast revsync reads and sorts an existing estate, and what it costs in memory.

Two figures (docs/adoption.md):

- **ledger rules**: ``domain.adoption.customer_ledger`` over N synthetic CRM accounts and as
  many ERP and billing customers (linked, matched by each strong key, ambiguous, orphans), in
  process: records sorted per second and the peak memory the sort allocates
  (``tracemalloc``);
- **end to end**: the planted estate of the tests (``tests/adoption/estate.py``: N accounts,
  about 0.9 N NetSuite and 0.3 N Stripe customers) adopted on a real stack (Temporal dev
  server, every worker, the gateway, the sandbox over HTTP): seconds from ``revsync adopt``
  to the ledger, records read per second through the ports, then an approval of the
  ``matched_by_key`` bucket (links written, golden records started) to every outcome; the
  test process's peak RSS (workers, gateway and sandbox run in it).

    python -m bench.adoption --accounts 2000 --rules 50000
"""

from __future__ import annotations

import argparse
import asyncio
import time
import tracemalloc
from typing import Any

import psutil

from bench.common import banner, print_table, quiet_logging, rnd, write_results
from domain.adoption import Bucket, Kind, LedgerPage, adoption_workflow_id, customer_ledger
from domain.reconciliation import CustomerRecord, System, fingerprints
from tests.adoption.estate import plant_customers
from tests.e2e.stack import running_stack
from tests.staff import token_of

NAME = "adoption"


def synthetic(n: int) -> tuple[list[CustomerRecord], dict[str, list[CustomerRecord]]]:
    """``n`` accounts and as many ERP and billing customers, in the estate's proportions."""
    crm, erp, billing = [], [], []
    for i in range(n):
        account = f"A{i:08d}"
        fields = {
            "name": f"Company {i}",
            "tax_id": f"DE{100000000 + i}",
            "website": f"company{i}.example",
            "email": f"ap@company{i}.example",
            "legal_entity": f"Company {i} GmbH" if i % 10 != 6 else f"Twin {i // 20} GmbH",
        }
        crm.append(
            CustomerRecord(
                system=System.CRM,
                record_id=account,
                account_id=account,
                fields=fingerprints(fields),
            )
        )
        pattern = i % 10
        linked = account if pattern in (0, 4) else None
        picked = {
            0: fields,
            1: {"website": fields["website"]},
            2: {"email": fields["email"]},
            3: {"legal_entity": fields["legal_entity"]},
            4: {**fields, "email": f"old@company{i}.example"},
            5: {"name": f"Lost {i}", "email": f"lost{i}@nowhere.example"},
            6: {"legal_entity": fields["legal_entity"]},
            7: {"email": fields["email"]},
        }.get(pattern)
        if picked is not None:
            erp.append(
                CustomerRecord(
                    system=System.ERP,
                    record_id=f"E{i}",
                    account_id=linked,
                    fields=fingerprints(picked),
                )
            )
        if pattern in (0, 1, 2):
            billing.append(
                CustomerRecord(
                    system=System.BILLING,
                    record_id=f"cus_{i}",
                    account_id=account if pattern == 0 else None,
                    fields=fingerprints({"email": fields["email"]} if pattern else fields),
                )
            )
    return crm, {"erp": erp, "billing": billing}


def rules(n: int) -> dict[str, Any]:
    crm, others = synthetic(n)
    records = len(crm) + sum(len(v) for v in others.values())
    began = time.perf_counter()
    entries = customer_ledger(crm, others, golden=set())
    seconds = time.perf_counter() - began
    tracemalloc.start()  # a second run, for memory: tracing slows allocation down
    customer_ledger(crm, others, golden=set())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    buckets: dict[str, int] = {}
    for entry in entries:
        buckets[entry.bucket.value] = buckets.get(entry.bucket.value, 0) + 1
    return {
        "accounts": n,
        "records": records,
        "seconds": rnd(seconds, 3),
        "records_per_s": rnd(records / seconds, 0),
        "peak_alloc_mb": rnd(peak / 2**20, 1),
        "buckets": buckets,
    }


async def end_to_end(accounts: int) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token_of('Oscar')}"}
    process = psutil.Process()
    async with running_stack() as stack:
        estate = plant_customers(stack.sandbox.state, accounts)
        read = (
            len(estate.customers)
            + len(stack.sandbox.state.netsuite.customers)
            + len(stack.sandbox.state.stripe.customers)
        )
        workflow_id = adoption_workflow_id(Kind.CUSTOMERS, "bench")
        began = time.monotonic()
        started = await stack.gateway.post(
            "/v1/ops/adoptions", json={"kind": "customers", "window": "bench"}, headers=headers
        )
        assert started.status_code == 202, started.text
        ledger = await _until(stack, workflow_id, headers, lambda x: x.ready)
        ledger_seconds = time.monotonic() - began
        rss_ledger = process.memory_info().rss
        approved = await stack.gateway.post(
            f"/v1/ops/adoptions/{workflow_id}/approve",
            json={"bucket": Bucket.MATCHED_BY_KEY.value, "note": "bench"},
            headers=headers,
        )
        count = len(approved.json()["accepted"])
        began = time.monotonic()
        await _until(stack, workflow_id, headers, lambda x: x.acted >= count)
        approve_seconds = time.monotonic() - began
        rss_end = process.memory_info().rss
    return {
        "accounts": accounts,
        "records_read": read,
        "ledger_entries": sum(ledger.counts.values()),
        "ledger": ledger.counts,
        "seconds_to_ledger": rnd(ledger_seconds, 1),
        "records_read_per_s": rnd(read / ledger_seconds, 0),
        "approved": count,
        "seconds_to_approved": rnd(approve_seconds, 1),
        "approvals_per_s": rnd(count / approve_seconds, 1),
        "rss_mb_after_ledger": rnd(rss_ledger / 2**20, 0),
        "rss_mb_after_approvals": rnd(rss_end / 2**20, 0),
    }


async def _until(stack: Any, workflow_id: str, headers: dict[str, str], done: Any) -> LedgerPage:
    while True:
        answer = await stack.gateway.get(
            f"/v1/ops/adoptions/{workflow_id}", params={"limit": 0}, headers=headers
        )
        if answer.status_code == 200:
            page = LedgerPage.model_validate(answer.json())
            if done(page):
                return page
        await asyncio.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=2000, help="planted CRM accounts")
    parser.add_argument("--rules", type=int, default=50000, help="accounts for the pure rules")
    args = parser.parse_args(argv)
    quiet_logging()
    banner(NAME, "reading and sorting an existing estate")
    pure = rules(args.rules)
    print_table(
        "ledger rules (in process)",
        ["accounts", "records", "seconds", "records/s", "peak alloc MB"],
        [
            [
                pure["accounts"],
                pure["records"],
                pure["seconds"],
                pure["records_per_s"],
                pure["peak_alloc_mb"],
            ]
        ],
    )
    stack = asyncio.run(end_to_end(args.accounts))
    print_table(
        "end to end (real stack)",
        [
            "accounts",
            "records read",
            "s to ledger",
            "records/s",
            "approved",
            "s",
            "approvals/s",
            "RSS MB",
        ],
        [
            [
                stack["accounts"],
                stack["records_read"],
                stack["seconds_to_ledger"],
                stack["records_read_per_s"],
                stack["approved"],
                stack["seconds_to_approved"],
                stack["approvals_per_s"],
                stack["rss_mb_after_approvals"],
            ]
        ],
    )
    write_results(
        NAME, {"accounts": args.accounts, "rules": args.rules}, {"rules": pure, "stack": stack}
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
