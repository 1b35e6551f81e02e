"""The ``revsync`` command line."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Sequence
from typing import Annotated

import typer
from temporalio.service import RPCError, RPCStatusCode

from domain.contracts import TaskQueue
from domain.saga import QuoteToCashStatus
from revsync.logs import configure_logging
from revsync.settings import get_settings
from revsync.temporal import connect
from workflows import visibility
from workflows.quote_to_cash import QuoteToCashWorkflow

app = typer.Typer(
    help="revsync: durable quote-to-cash sagas across CRM, billing and ERP, on Temporal.",
    no_args_is_help=True,
    add_completion=False,
)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain fixed-width text table."""
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def parse_scale(value: str) -> dict[str, int]:
    """``erp=3,billing=2`` → ``{"erp": 3, "billing": 2}``."""
    scale: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in value.split(","))):
        queue, _, count = part.partition("=")
        if queue not in TaskQueue.ALL:
            raise typer.BadParameter(
                f"unknown queue {queue!r}; expected {', '.join(TaskQueue.ALL)}"
            )
        if not count.isdigit() or int(count) < 1:
            raise typer.BadParameter(f"replicas for {queue} must be a whole number >= 1")
        scale[queue] = int(count)
    return scale


@app.command()
def dev(
    scale: Annotated[
        str, typer.Option(help="Worker processes per queue, e.g. erp=3,billing=2")
    ] = "",
) -> None:
    """Run the whole local stack (Temporal dev server, sandbox, gateway, workers) until Ctrl-C."""
    from revsync.devstack import DevStackOptions, run_dev_stack

    raise typer.Exit(
        run_dev_stack(DevStackOptions(settings=get_settings(), scale=parse_scale(scale)))
    )


@app.command()
def worker(
    queue: Annotated[str, typer.Argument(help=f"One of: {', '.join(TaskQueue.ALL)}")],
) -> None:
    """Run the worker for one task queue until SIGTERM/Ctrl-C."""
    if queue not in TaskQueue.ALL:
        typer.echo(f"unknown queue {queue!r}; expected one of {', '.join(TaskQueue.ALL)}", err=True)
        raise typer.Exit(2)
    from workers.main import run_worker

    asyncio.run(run_worker(queue, get_settings()))


@app.command()
def demo(
    quotes: Annotated[int, typer.Option(min=1, max=1000, help="How many quotes to send")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
    seed: Annotated[int | None, typer.Option(help="Random seed for repeatable quotes")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the sagas")] = 120.0,
) -> None:
    """Send N signed quote-accepted webhooks to the gateway and show how each saga ended."""
    from revsync.demo import run_demo

    settings = get_settings()

    async def go() -> list[dict[str, object]]:
        client = await connect(settings)
        rows = await run_demo(settings, client, quotes, seed=seed, wait_seconds=timeout)
        return [dataclasses.asdict(r) | {"finished": r.finished} for r in rows]

    try:
        rows = asyncio.run(go())
    except (OSError, RuntimeError) as error:
        typer.echo(f"demo failed: {error}. Is `make dev` running?", err=True)
        raise typer.Exit(2) from error
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        headers = ["quote", "workflow id", "stage", "ERP order", "subscription", "CRM", "amount"]
        cells = [
            [
                str(r[k] or "-")
                for k in (
                    "quote_id",
                    "workflow_id",
                    "stage",
                    "erp_order_id",
                    "subscription_id",
                    "crm_status",
                    "amount",
                )
            ]
            for r in rows
        ]
        typer.echo(table(headers, cells))
        for r in rows:
            if r["reason"]:
                typer.echo(f"{r['quote_id']}: {r['reason']}")
    unfinished = [r for r in rows if not r["finished"]]
    if unfinished:
        typer.echo(f"{len(unfinished)} quote(s) did not reach a terminal stage", err=True)
        raise typer.Exit(1)


def render_status(status: QuoteToCashStatus) -> str:
    fields = [
        ("workflow", status.workflow_id),
        ("quote", status.quote_id),
        ("account", f"{status.customer_name or '?'} ({status.account_id})"),
        ("amount", f"{status.amount} {status.currency}"),
        ("stage", status.stage.value),
        ("reason", status.reason),
        ("ERP customer", status.erp_customer_id),
        ("ERP order", status.erp_order_id),
        ("billing customer", status.billing_customer_id),
        ("subscription", status.subscription_id),
        ("invoice", status.invoice_id),
        ("CRM order", status.crm_order_id),
        ("CRM quote status", status.crm_status),
    ]
    head = "\n".join(f"{k:>17}: {v}" for k, v in fields if v)
    steps = table(
        ["step", "state", "started", "finished", "detail"],
        [
            [
                r.step.value,
                r.state.value,
                f"{r.started_at:%H:%M:%S}",
                f"{r.finished_at:%H:%M:%S}" if r.finished_at else "-",
                r.detail or " ".join(f"{k}={v}" for k, v in r.external_ids.items()),
            ]
            for r in status.steps
        ],
    )
    return f"{head}\n\n{steps}"


@app.command()
def status(
    quote_id: Annotated[str, typer.Argument(help="The CPQ quote id")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Show the saga state of one quote (the workflow's ``status`` query)."""
    settings = get_settings()
    workflow_id = visibility.workflow_id_for_quote(quote_id)

    async def go() -> QuoteToCashStatus:
        client = await connect(settings)
        handle = client.get_workflow_handle_for(QuoteToCashWorkflow.run, workflow_id)
        return await handle.query(QuoteToCashWorkflow.status)

    try:
        result = asyncio.run(go())
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            typer.echo(f"no saga for quote {quote_id} (workflow {workflow_id})", err=True)
            raise typer.Exit(1) from error
        raise
    except RuntimeError as error:
        typer.echo(f"cannot reach Temporal at {settings.temporal_address}: {error}", err=True)
        raise typer.Exit(2) from error
    typer.echo(result.model_dump_json(indent=2) if as_json else render_status(result))


def main() -> None:
    configure_logging()
    app()


if __name__ == "__main__":
    main()
