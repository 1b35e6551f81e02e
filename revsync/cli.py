"""The ``revsync`` command line."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Annotated, TypeVar

import httpx
import typer
from pydantic import ValidationError
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from adapters.registry import Port, available, unavailable
from domain.approval import ApproverRole
from domain.contracts import TaskQueue
from domain.invoice_contracts import invoice_workflow_id
from domain.saga import OperatorDecision, QuoteToCashStatus, ResolveAction
from revsync.adoption_cli import adopt_app
from revsync.auth import StaffRole, StaffToken, digest, new_token
from revsync.codec import generate_key_entry
from revsync.customer_cli import customer_app
from revsync.invoice_operations import ParkedInvoice, parked_invoices
from revsync.logs import configure_logging
from revsync.metrics import MetricsEndpointError
from revsync.operations import (
    DecisionRefused,
    SagaNotFound,
    Verb,
    decide_via_gateway,
    humanize,
    new_idempotency_key,
    stuck_orders,
)
from revsync.settings import MissingSetting, Settings, get_settings
from revsync.shadow_cli import shadow_app
from revsync.telemetry import GATEWAY_SERVICE, configure_tracing, shutdown_tracing, worker_service
from revsync.temporal import connect
from workflows import visibility
from workflows.quote_to_cash import QuoteToCashWorkflow

R = TypeVar("R")

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


def vendor_help(port: Port) -> str:
    return f"{port.label} vendor, instead of REVSYNC_{port.upper()}: {', '.join(available(port))}"


def vendor_option(port: str) -> Callable[[str | None], str | None]:
    """Checks a ``--crm``/``--billing``/``--erp`` value against the available vendors."""

    def check(value: str | None) -> str | None:
        if value is None:
            return None
        name = value.strip().lower()
        why = unavailable(Port(port), name)
        if why is not None:
            raise typer.BadParameter(f"{value!r}: {why}")
        return name

    return check


@app.command()
def dev(
    scale: Annotated[
        str, typer.Option(help="Worker processes per queue, e.g. erp=3,billing=2")
    ] = "",
    crm: Annotated[
        str | None,
        typer.Option(help=vendor_help(Port.CRM), callback=vendor_option("crm")),
    ] = None,
    billing: Annotated[
        str | None,
        typer.Option(help=vendor_help(Port.BILLING), callback=vendor_option("billing")),
    ] = None,
    erp: Annotated[
        str | None,
        typer.Option(help=vendor_help(Port.ERP), callback=vendor_option("erp")),
    ] = None,
) -> None:
    """Run the whole local stack (Temporal dev server, sandbox, gateway, workers, and Prometheus
    when metrics are on and it is installed) until Ctrl-C."""
    from revsync.devstack import DevStackOptions, find_prometheus, run_dev_stack

    chosen = {"crm": crm, "billing": billing, "erp": erp}
    vendors = {port: name for port, name in chosen.items() if name is not None}
    raise typer.Exit(
        run_dev_stack(
            DevStackOptions(
                settings=get_settings(),
                scale=parse_scale(scale),
                vendors=vendors,
                prometheus=find_prometheus(),
            )
        )
    )


@app.command()
def worker(
    queue: Annotated[str, typer.Argument(help=f"One of: {', '.join(TaskQueue.ALL)}")],
) -> None:
    """Run the worker for one task queue until SIGTERM/Ctrl-C."""
    if queue not in TaskQueue.ALL:
        typer.echo(f"unknown queue {queue!r}; expected one of {', '.join(TaskQueue.ALL)}", err=True)
        raise typer.Exit(2)
    from workers.build import check_settings
    from workers.main import run_worker

    settings = get_settings()
    check_settings(queue, settings)  # a misconfigured vendor stops it before it connects
    configure_tracing(worker_service(queue), console=settings.trace_console)
    asyncio.run(run_worker(queue, settings))


@app.command()
def gateway() -> None:
    """Run the HTTP gateway (webhook intake) on REVSYNC_GATEWAY_HOST:REVSYNC_GATEWAY_PORT."""
    import uvicorn

    from revsync.gateway.app import create_app
    from revsync.metrics import build_runtime

    settings = get_settings()
    configure_tracing(GATEWAY_SERVICE, console=settings.trace_console)
    uvicorn.run(
        create_app(settings, runtime=build_runtime(settings)),
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_level="warning",
        log_config=None,  # uvicorn's records go through revsync.logs like every other
    )


@app.command()
def sandbox() -> None:
    """Run the vendor sandbox (local emulators of every vendor API) on REVSYNC_SANDBOX_PORT.
    For development and tests only."""
    import uvicorn

    from revsync.devsecrets import dev_oauth_clients
    from sandbox.app import SandboxState, create_app
    from sandbox.oauth import OAuthClient

    settings = get_settings()
    # The sandbox subscriber verifies deliveries to every configured event subscriber's name.
    secrets = {s.name: s.secret.get_secret_value() for s in settings.event_subscribers}
    state = SandboxState(event_secrets=secrets)
    # The OAuth clients `revsync dev` made a key pair for (revsync.devsecrets).
    for vendor, client in dev_oauth_clients(settings):
        state.oauth[vendor].register(OAuthClient(**client))
    uvicorn.run(
        create_app(state),
        host=settings.sandbox_host,
        port=settings.sandbox_port,
        log_level="warning",
        log_config=None,
    )


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
    parts = [head]
    if status.parked is not None:
        allowed = ", ".join(a.value for a in status.parked.allowed)
        parts.append(
            f"PARKED at {status.parked.step.value} since {status.parked.since:%Y-%m-%d %H:%M} UTC"
            f": {status.parked.reason}\n  decide with: revsync resolve {status.quote_id} "
            f"--action {{{allowed}}} --note ..."
        )
    if status.approval is not None and status.approval.decided is None:
        reasons = "\n".join(f"  - {r.message}" for r in status.approval.reasons)
        escalated = " (ESCALATED)" if status.approval.escalated_at else ""
        parts.append(f"AWAITING APPROVAL by {status.approval.required_role}{escalated}:\n{reasons}")
    for breach in status.sla_breaches:
        parts.append(
            f"SLA breached ({breach.sla}) at {breach.at:%Y-%m-%d %H:%M} UTC: {breach.detail}"
        )
    if status.decisions:
        parts.append(
            table(
                ["decided at", "by", "action", "step", "note"],
                [
                    [
                        f"{d.at:%Y-%m-%d %H:%M:%S}",
                        d.actor + (f" ({d.role})" if d.role else ""),
                        d.action,
                        d.step.value,
                        d.note or "-",
                    ]
                    for d in status.decisions
                ],
            )
        )
    parts.append(steps)
    return "\n\n".join(parts)


@app.command()
def status(
    quote_id: Annotated[str, typer.Argument(help="The CPQ quote id")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Show the saga state of one quote (the workflow's ``status`` query)."""
    workflow_id = visibility.workflow_id_for_quote(quote_id)

    async def query(client: Client) -> QuoteToCashStatus:
        handle = client.get_workflow_handle_for(QuoteToCashWorkflow.run, workflow_id)
        return await handle.query(QuoteToCashWorkflow.status)

    result = _client_call(get_settings(), query, not_found=_no_saga(quote_id))
    typer.echo(result.model_dump_json(indent=2) if as_json else render_status(result))


def _no_saga(quote_id: str) -> str:
    return f"no saga for quote {quote_id} (workflow {visibility.workflow_id_for_quote(quote_id)})"


def _client_call(
    settings: Settings, call: Callable[[Client], Awaitable[R]], *, not_found: str = "not found"
) -> R:
    """Run ``call`` with a connected client. A missing workflow exits 1 saying ``not_found``;
    an unreachable Temporal exits 2 with a clear line."""

    async def go() -> R:
        return await call(await connect(settings))

    try:
        return asyncio.run(go())
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            typer.echo(not_found, err=True)
            raise typer.Exit(1) from error
        raise
    except RuntimeError as error:
        typer.echo(f"cannot reach Temporal at {settings.temporal_address}: {error}", err=True)
        raise typer.Exit(2) from error


@app.command()
def replay(
    limit: Annotated[
        int, typer.Option(min=1, help="The most recent histories replayed per workflow type")
    ] = 50,
    workflow_type: Annotated[
        list[str] | None,
        typer.Option("--type", help="Only this workflow type (repeatable), e.g. QuoteToCash"),
    ] = None,
) -> None:
    """Replay the namespace's recent histories against this code: the check before a deploy
    (docs/runbook-engineering.md). Exits 1 when any history does not replay."""
    from revsync.replay import ReplayReport, replay_recent, workflow_type_name
    from workers.build import WORKFLOWS

    known = {workflow_type_name(w) for w in WORKFLOWS}
    unknown = sorted(set(workflow_type or ()) - known)
    if unknown:
        raise typer.BadParameter(
            f"unknown workflow type {', '.join(unknown)}; "
            f"expected one of {', '.join(sorted(known))}",
            param_hint="--type",
        )

    async def go(client: Client) -> ReplayReport:
        return await replay_recent(client, WORKFLOWS, per_type=limit, only=workflow_type or ())

    report = _client_call(get_settings(), go)
    for line in report.lines():
        typer.echo(line)
    if report.failed:
        typer.echo("some histories do not replay: guard the change with workflow.patched", err=True)
        raise typer.Exit(1)


@app.command()
def stuck(
    older_than: Annotated[
        int, typer.Option(min=1, help="Also list sagas in one stage for longer (minutes)")
    ] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    invoices: Annotated[
        bool, typer.Option("--invoices", help="List parked invoice sagas only")
    ] = False,
) -> None:
    """List parked, awaiting-approval, SLA-breached and long-waiting orders, then invoices
    parked for an operator (with --json: orders only, or invoices only with --invoices)."""
    settings = get_settings()
    if invoices:
        _print_invoices(_client_call(settings, parked_invoices), as_json)
        return
    orders = _client_call(
        settings, lambda c: stuck_orders(c, older_than=timedelta(minutes=older_than))
    )
    if as_json:
        rows = [
            dataclasses.asdict(o)
            | {
                "waiting_since": o.waiting_since.isoformat() if o.waiting_since else None,
                "waited_seconds": int(o.waited.total_seconds()) if o.waited else None,
                "waited": None,
            }
            for o in orders
        ]
        for row in rows:
            del row["waited"]
        typer.echo(json.dumps(rows, indent=2))
        return
    if not orders:
        typer.echo("no stuck orders")
    else:
        headers = ["quote", "stage", "blocked step", "waited", "SLA", "amount", "customer"]
        cells = [
            [
                o.quote_id,
                o.stage,
                o.blocked_step or "-",
                humanize(o.waited),
                "BREACHED" if o.sla_breached else "ok",
                o.amount,
                o.customer_id,
            ]
            for o in orders
        ]
        typer.echo(table(headers, cells))
    parked = _client_call(settings, parked_invoices)
    if parked:
        typer.echo("")
        _print_invoices(parked, as_json=False)


def _print_invoices(parked: list[ParkedInvoice], as_json: bool) -> None:
    if as_json:
        rows = [
            {
                "invoice_id": i.invoice_id,
                "workflow_id": i.workflow_id,
                "customer_id": i.customer_id,
                "blocked_step": i.blocked_step,
                "amount_due": i.amount_due,
                "waiting_since": i.waiting_since.isoformat() if i.waiting_since else None,
                "waited_seconds": int(i.waited.total_seconds()) if i.waited else None,
            }
            for i in parked
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    if not parked:
        typer.echo("no parked invoices")
        return
    headers = ["invoice (parked)", "blocked step", "waited", "amount due", "customer"]
    cells = [
        [
            # An adjustment of an ended saga (a late event) is decided on by its own id.
            i.invoice_id
            if i.workflow_id == invoice_workflow_id(i.invoice_id)
            else f"{i.invoice_id} ({i.workflow_id})",
            i.blocked_step or "-",
            humanize(i.waited),
            i.amount_due,
            i.customer_id,
        ]
        for i in parked
    ]
    typer.echo(table(headers, cells))
    typer.echo(
        "decide with the saga's resolve update (docs/invoice-to-revenue.md), e.g. "
        "temporal workflow update execute --workflow-id i2r-<invoice> --name resolve "
        '--input \'{"action": "retry", "operator": "<you>", "note": "<why>"}\''
    )


IdempotencyKeyOption = Annotated[
    str | None,
    typer.Option(
        help="Send the decision under this key (a new one each command otherwise); running "
        "the command again with the same key answers the first result"
    ),
]


def _send_decision(
    quote_id: str, verb: Verb, body: dict[str, object], idempotency_key: str | None
) -> None:
    """Send a decision through the gateway's ops API with the configured staff token: the
    gateway, not this command, says who you are. The command's key makes a retry (of a
    lost answer) return the first result instead of a refusal."""
    settings = get_settings()
    token = settings.require_secret(
        "operator_token",
        "approve, reject and resolve act as the holder of a staff token "
        "(`revsync tokens new` makes one)",
    ).get_secret_value()

    async def go() -> OperatorDecision:
        async with httpx.AsyncClient(base_url=settings.gateway_url, timeout=30) as http:
            return await decide_via_gateway(
                http, token, quote_id, verb, body, idempotency_key or new_idempotency_key()
            )

    try:
        decision = asyncio.run(go())
    except DecisionRefused as refused:
        typer.echo(f"refused: {refused}", err=True)
        raise typer.Exit(1) from refused
    except SagaNotFound as missing:
        typer.echo(str(missing), err=True)
        raise typer.Exit(1) from missing
    except httpx.TransportError as error:
        typer.echo(f"cannot reach the gateway at {settings.gateway_url}: {error}", err=True)
        raise typer.Exit(2) from error
    role = f" ({decision.role})" if decision.role else ""
    typer.echo(
        f"{decision.action} recorded for quote {quote_id} by {decision.actor}{role} "
        f"at {decision.at:%Y-%m-%d %H:%M:%S} UTC"
    )


@app.command()
def resolve(
    quote_id: Annotated[str, typer.Argument(help="The CPQ quote id")],
    action: Annotated[ResolveAction, typer.Option(help="What to do with the parked step")],
    note: Annotated[str, typer.Option(help="Why (kept in the audit trail)")],
    idempotency_key: IdempotencyKeyOption = None,
) -> None:
    """Decide on a parked saga: retry the blocked step, compensate, or skip it.
    Needs a staff token with the operator role (REVSYNC_OPERATOR_TOKEN)."""
    _send_decision(quote_id, "resolve", {"action": action.value, "note": note}, idempotency_key)


@app.command()
def approve(
    quote_id: Annotated[str, typer.Argument(help="The CPQ quote id")],
    role: Annotated[
        ApproverRole | None, typer.Option(help="Approver role to act in; your highest if unset")
    ] = None,
    note: Annotated[str | None, typer.Option(help="Optional note")] = None,
    idempotency_key: IdempotencyKeyOption = None,
) -> None:
    """Approve a quote that awaits approval; booking goes on at once.
    Needs a staff token with an approver role (REVSYNC_OPERATOR_TOKEN)."""
    _send_decision(
        quote_id, "approve", {"role": role.value if role else None, "note": note}, idempotency_key
    )


@app.command()
def reject(
    quote_id: Annotated[str, typer.Argument(help="The CPQ quote id")],
    reason: Annotated[str, typer.Option(help="Why (shown in CRM and kept in the audit trail)")],
    role: Annotated[
        ApproverRole | None, typer.Option(help="Approver role to act in; your highest if unset")
    ] = None,
    idempotency_key: IdempotencyKeyOption = None,
) -> None:
    """Reject a quote that awaits approval: nothing is booked, the CRM quote is Rejected.
    Needs a staff token with an approver role (REVSYNC_OPERATOR_TOKEN)."""
    _send_decision(
        quote_id,
        "reject",
        {"role": role.value if role else None, "reason": reason},
        idempotency_key,
    )


@app.command()
def schemas(
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; fail when schemas/ is not current")
    ] = False,
) -> None:
    """Regenerate the committed contracts under schemas/ (event and webhook JSON Schemas, the
    gateway's OpenAPI document) from the models. A breaking change is refused: bump the
    contract's version (docs/api.md)."""
    from revsync.schemas import run

    raise typer.Exit(run(check_only=check))


tokens_app = typer.Typer(help="Staff tokens for the ops API and the codec server.")
keys_app = typer.Typer(help="Payload encryption keys.")
app.add_typer(tokens_app, name="tokens")
app.add_typer(keys_app, name="keys")


@tokens_app.command("new")
def tokens_new(
    name: Annotated[str, typer.Option(help="Who holds it, as the audit trail shows them")],
    role: Annotated[list[StaffRole], typer.Option(help="A role; repeat for several")],
) -> None:
    """Make a token for a person. Prints the token (give it to them; it is shown once) and
    the entry to add to REVSYNC_OPERATOR_TOKENS (it holds only the token's digest)."""
    try:
        entry = StaffToken(name=name, roles=frozenset(role), token_sha256=digest("x"))
    except ValidationError as error:
        raise typer.BadParameter(str(error)) from error
    token = new_token()
    entry = entry.model_copy(update={"token_sha256": digest(token)})
    typer.echo(f"token (give to {entry.name}, shown once): {token}")
    typer.echo("add to REVSYNC_OPERATOR_TOKENS:")
    typer.echo(json.dumps(entry.model_dump(mode="json") | {"roles": sorted(entry.roles)}))


@keys_app.command("new")
def keys_new(
    key_id: Annotated[str, typer.Option("--id", help="Key id, e.g. the month: 2026-11")],
) -> None:
    """Print a fresh AES-256 key entry. Put it FIRST in REVSYNC_PAYLOAD_KEYS (it encrypts new
    payloads) and keep the older entries after it (they still decrypt old history)."""
    try:
        typer.echo(generate_key_entry(key_id))
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error


temporal_app = typer.Typer(help="Self-hosted Temporal cluster operations.")
app.add_typer(temporal_app, name="temporal")
app.add_typer(customer_app, name="customer")
app.add_typer(shadow_app, name="shadow")
app.add_typer(adopt_app, name="adopt")


@temporal_app.command("setup")
def temporal_setup(
    retention_days: Annotated[
        int, typer.Option(min=1, help="Retention of the namespace, when this creates it")
    ] = 30,
    wait: Annotated[
        float, typer.Option(min=0, help="Seconds to wait for the cluster to answer")
    ] = 120.0,
    schedules: Annotated[
        bool, typer.Option(help="Also create or update revsync's Schedules (reconciliation)")
    ] = True,
) -> None:
    """Create REVSYNC_TEMPORAL_NAMESPACE if missing, register revsync's search attributes on
    it and apply its Schedules (as ``revsync schedules apply``). Idempotent: the compose
    stack runs it on every start. Not for Temporal Cloud."""
    from revsync.cluster import setup_cluster
    from revsync.schedules import apply_schedules

    settings = get_settings()
    try:
        result = asyncio.run(
            setup_cluster(settings, retention=timedelta(days=retention_days), wait_seconds=wait)
        )
    except (RPCError, RuntimeError) as error:
        typer.echo(f"cannot set up Temporal at {settings.temporal_address}: {error}", err=True)
        raise typer.Exit(2) from error
    created = "created" if result.namespace_created else "exists"
    added = ", ".join(result.attributes_added) or "none (all registered already)"
    typer.echo(f"namespace {result.namespace}: {created}; search attributes added: {added}")
    if schedules and settings.payload_keys is None:
        # A Schedule's action holds the run's input, encrypted like every payload.
        typer.echo(
            "schedules: not applied (REVSYNC_PAYLOAD_KEYS is not set; "
            "run `revsync schedules apply` where it is)"
        )
    elif schedules:
        for applied in _client_call(settings, lambda c: apply_schedules(c, settings)):
            typer.echo(f"schedule {applied.schedule_id}: {applied.action}")


schedules_app = typer.Typer(help="Temporal Schedules revsync runs (reconciliation).")
app.add_typer(schedules_app, name="schedules")


@schedules_app.command("apply")
def schedules_apply() -> None:
    """Create or update revsync's Schedules from the settings (REVSYNC_RECONCILE_CRON...).
    Idempotent: run it on every deploy; a paused Schedule stays paused."""
    from revsync.schedules import apply_schedules

    settings = get_settings()
    for applied in _client_call(settings, lambda c: apply_schedules(c, settings)):
        typer.echo(f"schedule {applied.schedule_id}: {applied.action}")


@app.command()
def reconcile(
    now: Annotated[bool, typer.Option("--now", help="Run reconciliation now and wait")] = False,
    full: Annotated[
        bool, typer.Option("--full", help="With --now: a new full pass over every record")
    ] = False,
    report: Annotated[bool, typer.Option("--report", help="Print the latest run's report")] = False,
    run: Annotated[
        str | None, typer.Option("--run", help="With --report: this run's report")
    ] = None,
    as_csv: Annotated[
        bool, typer.Option("--csv", help="With --report: every row of the run, as CSV")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Compare CRM, billing and ERP and repair what is safe (docs/reconciliation.md).
    --now runs it at once (incremental, and a full pass when due; --full for one now);
    --report shows the latest run's report from the report store (--run for another,
    --csv for every row)."""
    from adapters.reports import csv_lines
    from revsync.schedules import (
        latest_report,
        render_report,
        report_store,
        run_now,
        stored_report,
    )

    if now == report:
        typer.echo("give exactly one of --now or --report", err=True)
        raise typer.Exit(2)
    if (full and not now) or ((as_csv or run) and not report):
        typer.echo("--full goes with --now; --csv and --run with --report", err=True)
        raise typer.Exit(2)
    settings = get_settings()
    if now:
        found = _client_call(settings, lambda c: run_now(c, settings, full=full))
    else:
        stored = asyncio.run(stored_report(settings, run))
        if stored is None and run is None:
            stored = _client_call(settings, latest_report)  # a run of the replaced workflow
        if stored is None:
            what = f"no report of run {run}" if run else "no reconciliation has run yet"
            typer.echo(f"{what} (`revsync reconcile --now`)", err=True)
            raise typer.Exit(1)
        found = stored
    workflow_id, result = found
    if as_csv:
        for line in csv_lines(report_store(settings).rows(workflow_id)):
            typer.echo(line, nl=False)
    elif as_json:
        body = {"workflow_id": workflow_id, **result.model_dump(mode="json")}
        typer.echo(json.dumps(body, indent=2))
    else:
        typer.echo(render_report(workflow_id, result))


def main() -> None:
    settings = get_settings()
    configure_logging(log_format=settings.log_format, secrets=settings.secret_values())
    code: int = 0
    try:
        app()
    except MissingSetting as missing:
        typer.echo(f"revsync: {missing}", err=True)
        code = 2
    except MetricsEndpointError as error:
        typer.echo(f"revsync: {error}", err=True)
        code = 2
    except SystemExit as exit_:
        if isinstance(exit_.code, str):
            typer.echo(exit_.code, err=True)
        code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    # The Temporal SDK's native threads can abort the interpreter while it finalizes
    # ("PyGILState_Release ... finalizing"), turning a finished command's exit code into 134.
    # Everything is done and written by now: flush and leave without finalizing.
    shutdown_tracing()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
