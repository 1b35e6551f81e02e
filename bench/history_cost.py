"""Events and billable Temporal actions per quote-to-cash saga, counted from real histories.

Runs a few happy-path sagas (and, for comparison, one that waits for an approval) on a real
dev server with revsync's workers and the sandbox, fetches each history and counts:

- events by type;
- actions as Temporal Cloud bills them (``bench.history.billable_actions``);
- search-attribute upserts that changed no attribute value (compared with the values held
  before each upsert; there should be none).

    python -m bench.history_cost --sagas 5
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections import Counter
from typing import Any

from bench import history as h
from bench.common import banner, print_table, quiet_logging, write_results
from bench.stack import BenchStack, bench_stack, create_crm_quotes
from domain.approval import Approver, ApproverRole
from domain.saga import ApproveRequest, QuoteToCashStatus
from domain.stages import OrderStage
from revsync.operations import decide
from sandbox.quotes import quote_payload
from sandbox.seed import BOOKABLE_ACCOUNT_IDS
from workflows import visibility
from workflows.quote_to_cash import QuoteToCashWorkflow

NAME = "history_cost"


async def wait_stage(
    stack: BenchStack, workflow_id: str, stage: OrderStage, seconds: float
) -> None:
    """Wait (reading the search attribute: describe is no action, a query would be one)."""
    handle = stack.client.get_workflow_handle(workflow_id)
    deadline = time.monotonic() + seconds
    while True:
        attrs = (await handle.describe()).typed_search_attributes
        if attrs.get(visibility.ORDER_STAGE) == stage.value:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{workflow_id} did not reach {stage} in {seconds}s")
        await asyncio.sleep(0.2)


async def run_sagas(stack: BenchStack, count: int, *, approval: bool) -> list[str]:
    accounts = [BOOKABLE_ACCOUNT_IDS[i % len(BOOKABLE_ACCOUNT_IDS)] for i in range(count)]
    quote_ids = await create_crm_quotes(stack.settings, accounts)
    ids = []
    for quote_id, account in zip(quote_ids, accounts, strict=True):
        payload = quote_payload(quote_id, account_id=account)
        if approval:  # above the 20% sales-manager threshold, below finance's 40%
            payload["lines"][0]["discount_percent"] = "30"
        ids.append(await stack.start_saga(payload))
    if approval:
        for quote_id, workflow_id in zip(quote_ids, ids, strict=True):
            await wait_stage(stack, workflow_id, OrderStage.AWAITING_APPROVAL, 60)
            approver = Approver(name="Bench Manager", role=ApproverRole.SALES_MANAGER)
            await decide(stack.client, quote_id, ApproveRequest(approver=approver, note="bench"))
    for workflow_id in ids:
        handle = stack.client.get_workflow_handle_for(QuoteToCashWorkflow.run, workflow_id)
        status: QuoteToCashStatus = await asyncio.wait_for(handle.result(), 120)
        if status.stage is not OrderStage.BOOKED:
            raise RuntimeError(f"{workflow_id} ended {status.stage}: {status.reason}")
    return ids


async def analyse(stack: BenchStack, workflow_ids: list[str]) -> dict[str, Any]:
    events: list[Counter[str]] = []
    actions: list[Counter[str]] = []
    unchanged: list[dict[str, Any]] = []
    upserts = same_stage = 0
    tasks: list[int] = []
    sizes: list[int] = []
    for workflow_id in workflow_ids:
        history = await stack.client.get_workflow_handle(workflow_id).fetch_history()
        evs = list(history.events)
        events.append(h.events_by_type(evs))
        actions.append(h.billable_actions(evs))
        check = h.check_upserts(evs)
        upserts += check.upserts
        same_stage += check.same_stage
        unchanged += [{"workflow_id": workflow_id, **u} for u in check.unchanged]
        tasks.append(h.workflow_tasks(evs))
        sizes.append(h.history_bytes(history))
    n = len(workflow_ids)
    event_types = sorted(set().union(*events))
    return {
        "sagas": n,
        "events_total": statistics.mean(sum(c.values()) for c in events),
        "events_by_type": {t: statistics.mean(c[t] for c in events) for t in event_types},
        "actions_total": statistics.mean(sum(c.values()) for c in actions),
        "actions_by_category": {
            c: statistics.mean(a[c] for a in actions) for c in h.ACTION_CATEGORIES
        },
        "workflow_tasks": statistics.mean(tasks),
        "history_bytes": statistics.mean(sizes),
        "upserts_total": upserts,
        "upserts_unchanged": len(unchanged),
        "upserts_unchanged_detail": unchanged,
        "upserts_same_stage": same_stage,
    }


async def settled_actions(stack: BenchStack) -> Counter[str]:
    """The server's action counters once they stop moving (its metrics report every ~second)."""
    previous = await stack.server_actions()
    while True:
        await asyncio.sleep(1.5)
        current = await stack.server_actions()
        if current == previous:
            return current
        previous = current


async def measured_batch(stack: BenchStack, count: int, *, approval: bool) -> dict[str, Any]:
    before = await settled_actions(stack)
    workflow_ids = await run_sagas(stack, count, approval=approval)
    after = await settled_actions(stack)
    figures = await analyse(stack, workflow_ids)
    figures["server_action_metric"] = {
        kind: (after[kind] - before[kind]) / count
        for kind in sorted(after)
        if after[kind] != before[kind]
    }
    return figures


def fmt(value: float) -> str:
    return f"{value:g}" if value == int(value) else f"{value:.2f}"


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    async with bench_stack(sandbox="thread") as stack, stack.workers():
        happy = await measured_batch(stack, args.sagas, approval=False)
        approval = (
            await measured_batch(stack, args.approval_sagas, approval=True)
            if args.approval_sagas
            else None
        )
    columns = [("happy path", happy)] + ([("with approval", approval)] if approval else [])
    headers = ["", *(name for name, _ in columns)]
    types = sorted(set().union(*(set(c["events_by_type"]) for _, c in columns)))
    print_table(
        f"Events per saga, by type (mean of {args.sagas} happy-path"
        + (f", {args.approval_sagas} approved" if approval else "")
        + " sagas)",
        headers,
        [[t, *(fmt(c["events_by_type"].get(t, 0)) for _, c in columns)] for t in types]
        + [["TOTAL", *(fmt(c["events_total"]) for _, c in columns)]],
    )
    print_table(
        "Billable actions per saga (Temporal Cloud's rules; queries not counted)",
        headers,
        [[a, *(fmt(c["actions_by_category"][a]) for _, c in columns)] for a in h.ACTION_CATEGORIES]
        + [["TOTAL", *(fmt(c["actions_total"]) for _, c in columns)]],
    )
    kinds = sorted(set().union(*(set(c["server_action_metric"]) for _, c in columns)))
    print_table(
        "Cross-check: the dev server's own `action` metric per saga (every action the server "
        "counted in the namespace while the batch ran, heartbeats included)",
        headers,
        [[k, *(fmt(c["server_action_metric"].get(k, 0)) for _, c in columns)] for k in kinds]
        + [
            [
                "TOTAL",
                *(fmt(sum(c["server_action_metric"].values())) for _, c in columns),
            ]
        ],
    )
    print_table(
        "Other costs per saga",
        headers,
        [
            ["workflow tasks", *(fmt(c["workflow_tasks"]) for _, c in columns)],
            ["history bytes", *(fmt(c["history_bytes"]) for _, c in columns)],
            ["upserts (all sagas)", *(c["upserts_total"] for _, c in columns)],
            ["upserts changing nothing", *(c["upserts_unchanged"] for _, c in columns)],
            ["upserts keeping OrderStage", *(c["upserts_same_stage"] for _, c in columns)],
        ],
    )
    for name, c in columns:
        for item in c["upserts_unchanged_detail"]:
            print(f"  ! {name}: upsert changing nothing: {item}")
    return {"happy_path": happy, "with_approval": approval}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.history_cost",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sagas", type=int, default=5, help="happy-path sagas to run")
    parser.add_argument(
        "--approval-sagas", type=int, default=1, help="sagas that wait for an approval (0: none)"
    )
    args = parser.parse_args(argv)
    quiet_logging()
    banner(NAME, "events and billable actions per quote-to-cash saga")
    figures = asyncio.run(main_async(args))
    write_results(NAME, vars(args), figures)
    return figures


if __name__ == "__main__":
    main()
