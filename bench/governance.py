"""ERP governance: does the erp worker use NetSuite's concurrency limit fully, and never
exceed it?

The sandbox's NetSuite gets an account concurrency limit (default 5: a request arriving while
5 are in flight is refused 429 ``CONCURRENCY_LIMIT_EXCEEDED``) and a fixed latency on every
call (default 200 ms); the other vendors answer at zero latency. A backlog of N orders is
started at once; one erp worker with ``erp_max_concurrent_activities`` (default 5) works
through it. Printed: ERP calls/s achieved against the limit's capacity (limit / latency),
utilisation, peak concurrency, and limit violations (sandbox refusals; target 0).

    python -m bench.governance --orders 500
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from bench.common import banner, print_table, quiet_logging, rnd, write_results
from bench.stack import bench_stack, create_crm_quotes
from domain.stages import OrderStage
from sandbox.faults import FaultsRequest, LatencyRule
from sandbox.quotes import quote_payload
from sandbox.seed import BOOKABLE_ACCOUNT_IDS
from workflows.quote_to_cash import QuoteToCashWorkflow

NAME = "governance"


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    async with bench_stack(sandbox="thread") as stack:
        assert stack.sandbox_state is not None and stack.calls is not None
        if args.erp_slots:
            stack.settings = stack.settings.model_copy(
                update={"erp_max_concurrent_activities": args.erp_slots}
            )
        accounts = [BOOKABLE_ACCOUNT_IDS[i % len(BOOKABLE_ACCOUNT_IDS)] for i in range(args.orders)]
        quote_ids = await create_crm_quotes(stack.settings, accounts)
        payloads = [
            quote_payload(q, account_id=a) for q, a in zip(quote_ids, accounts, strict=True)
        ]
        netsuite = stack.sandbox_state.netsuite
        netsuite.concurrency_limit = args.limit
        stack.sandbox_state.faults.configure(
            FaultsRequest(latency=[LatencyRule(vendor="netsuite", ms=args.latency_ms)])
        )
        stack.calls.clear()
        async with stack.workers():
            began = time.monotonic()
            ids = await asyncio.gather(*(stack.start_saga(p) for p in payloads))
            handles = [
                stack.client.get_workflow_handle_for(QuoteToCashWorkflow.run, i) for i in ids
            ]
            statuses = await asyncio.gather(*(h.result() for h in handles))
            seconds = time.monotonic() - began
        governance = netsuite.snapshot()["governance"]
        calls = stack.calls.of("netsuite")
    booked = sum(1 for s in statuses if s.stage is OrderStage.BOOKED)
    first = min(c.start for c in calls)
    last = max(c.end for c in calls)
    window = last - first
    rate = len(calls) / window
    capacity = args.limit / (args.latency_ms / 1000)
    busy = sum(c.end - c.start for c in calls) / window  # mean ERP calls in flight
    refused_429 = sum(1 for c in calls if c.status == 429)
    figures = {
        "orders": args.orders,
        "booked": booked,
        "seconds_to_all_booked": rnd(seconds),
        "orders_per_s": rnd(args.orders / seconds),
        "erp_calls": len(calls),
        "erp_calls_per_order": rnd(len(calls) / args.orders),
        "erp_window_s": rnd(window),
        "erp_calls_per_s": rnd(rate),
        "capacity_calls_per_s": rnd(capacity),
        "utilisation_pct": rnd(100 * rate / capacity, 1),
        "mean_calls_in_flight": rnd(busy),
        "in_flight_utilisation_pct": rnd(100 * busy / args.limit, 1),
        "mean_erp_call_ms": rnd(1000 * sum(c.end - c.start for c in calls) / len(calls), 1),
        "peak_in_flight": governance["peak_in_flight"],
        "limit_violations_refused": governance["rejected"],
        "responses_429": refused_429,
        "other_vendor_requests": {v: len(stack.calls.of(v)) for v in ("salesforce", "stripe")},
    }
    print_table(
        f"NetSuite: limit {args.limit} concurrent, {args.latency_ms} ms per call; "
        f"{args.orders} orders; erp worker slots "
        f"{stack.settings.erp_max_concurrent_activities}",
        ["figure", "value"],
        [
            ["orders booked", f"{booked}/{args.orders}"],
            ["time to all booked s", f"{seconds:.1f}"],
            ["orders/s", f"{args.orders / seconds:.2f}"],
            ["ERP calls (per order)", f"{len(calls)} ({len(calls) / args.orders:.2f})"],
            ["ERP calls/s achieved (first to last call)", f"{rate:.2f}"],
            ["capacity: limit / latency, calls/s", f"{capacity:.2f}"],
            ["utilisation %", f"{100 * rate / capacity:.1f}"],
            [
                "mean ERP calls in flight (of the limit)",
                f"{busy:.2f} ({100 * busy / args.limit:.0f}%)",
            ],
            ["mean ERP call ms (sandbox side)", f"{figures['mean_erp_call_ms']}"],
            ["peak ERP calls in flight", governance["peak_in_flight"]],
            ["limit violations (sandbox refusals, target 0)", governance["rejected"]],
        ],
    )
    print(
        "note: Salesforce and Stripe answer at zero latency "
        f"({figures['other_vendor_requests']['salesforce']} and "
        f"{figures['other_vendor_requests']['stripe']} requests); only NetSuite is slow."
    )
    return figures


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.governance",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--orders", type=int, default=500, help="backlog of orders")
    parser.add_argument("--limit", type=int, default=5, help="NetSuite concurrency limit")
    parser.add_argument("--latency-ms", type=int, default=200, help="NetSuite latency per call")
    parser.add_argument(
        "--erp-slots", type=int, default=None, help="erp worker activity slots (default 5)"
    )
    args = parser.parse_args(argv)
    quiet_logging()
    banner(NAME, "NetSuite concurrency limit: use it fully, never exceed it")
    figures = asyncio.run(main_async(args))
    write_results(NAME, vars(args), figures)
    return figures


if __name__ == "__main__":
    main()
