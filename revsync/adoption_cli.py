"""``revsync adopt start|ledger|approve|close``: adoption from the command line
(docs/adoption.md), through the gateway's ops API with the configured staff token
(``REVSYNC_OPERATOR_TOKEN``; ``start``, ``approve`` and ``close`` need the ``operator``
role)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from domain.adoption import ApprovalAnswer, Bucket, Kind, LedgerPage, adoption_workflow_id
from revsync.shadow_cli import gateway_call

adopt_app = typer.Typer(help="Adopt what already exists: ledger, approvals, hand-over.")


def _id(kind: Kind, window: str) -> str:
    return adoption_workflow_id(kind, window)


def render(ledger: LedgerPage) -> str:
    counts = ", ".join(f"{b} {n}" for b, n in ledger.counts.items()) or "nothing"
    lines = [f"adoption of {ledger.kind.value} ({ledger.window}): {counts}"]
    if ledger.kind is Kind.INVOICES:
        lines.append(
            f"tie-out: {ledger.tied} customer-currency pairs tie out, "
            f"{ledger.tie_out_differences} differ; {ledger.settled} invoices settled (history)"
        )
        for tie in ledger.tie_out:
            lines.append(
                f"  {tie.account_id} {tie.currency}: billing {tie.billing_open}, "
                f"ERP {tie.erp_open} (difference {tie.difference})"
            )
    lines.append(f"approved {ledger.approved}, acted on {ledger.acted} ({ledger.refused} refused)")
    for entry in ledger.entries:
        links = ", ".join(f"{x.system} {x.record_id} ({x.how})" for x in entry.links)
        extra = []
        if entry.candidates:
            extra.append("candidates " + ", ".join(entry.candidates))
        if entry.differing:
            extra.append("differs: " + ", ".join(entry.differing))
        if entry.outcome:
            extra.append(entry.outcome)
        tail = f" [{'; '.join(extra)}]" if extra else ""
        lines.append(
            f"- {entry.entry_id}: {entry.bucket.value}: {entry.reason}"
            + (f"; {links}" if links else "")
            + (" (revsync runs it)" if entry.in_revsync else "")
            + tail
        )
    shown = ledger.offset + len(ledger.entries)
    if shown < ledger.total:
        lines.append(f"... {ledger.total - shown} more (--offset {shown})")
    return "\n".join(lines)


@adopt_app.command("start")
def start(
    kind: Annotated[Kind, typer.Option(help="customers or invoices")],
    window: Annotated[str, typer.Option(help="A name for this batch (default all)")] = "all",
) -> None:
    """Read what already exists in every system and sort it into a ledger. Writes nothing."""
    response = gateway_call(
        "POST", "/v1/ops/adoptions", json={"kind": kind.value, "window": window}
    )
    typer.echo(f"adoption started: {response.json()['workflow_id']}")


@adopt_app.command("ledger")
def show(
    kind: Annotated[Kind, typer.Option(help="customers or invoices")],
    window: Annotated[str, typer.Option(help="The batch's name")] = "all",
    bucket: Annotated[Bucket | None, typer.Option(help="Only this bucket")] = None,
    limit: Annotated[int, typer.Option(min=0, max=1000, help="Entries shown")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="From this entry on")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """The ledger: its counts, then each record's bucket, links, reasons and outcome."""
    params: dict[str, str | int] = {"limit": limit, "offset": offset}
    if bucket is not None:
        params["bucket"] = bucket.value
    response = gateway_call("GET", f"/v1/ops/adoptions/{_id(kind, window)}", params=params)
    if as_json:
        typer.echo(json.dumps(response.json(), indent=2))
        return
    typer.echo(render(LedgerPage.model_validate(response.json())))


@adopt_app.command("approve")
def approve(
    kind: Annotated[Kind, typer.Option(help="customers or invoices")],
    note: Annotated[str, typer.Option(help="Why (kept on each entry)")],
    window: Annotated[str, typer.Option(help="The batch's name")] = "all",
    entry: Annotated[list[str] | None, typer.Option(help="An entry id; repeat")] = None,
    bucket: Annotated[Bucket | None, typer.Option(help="Every approvable entry of it")] = None,
) -> None:
    """Approve entries (or a whole bucket): links are written and sagas started."""
    if not entry and bucket is None:
        typer.echo("give --entry (repeatable) or --bucket", err=True)
        raise typer.Exit(2)
    body = {"entries": entry or [], "bucket": bucket.value if bucket else None, "note": note}
    response = gateway_call("POST", f"/v1/ops/adoptions/{_id(kind, window)}/approve", json=body)
    answer = ApprovalAnswer.model_validate(response.json())
    typer.echo(f"approved: {len(answer.accepted)}; refused: {len(answer.refused)}")
    for entry_id, why in sorted(answer.refused.items()):
        typer.echo(f"  {entry_id}: {why}")


@adopt_app.command("close")
def close(
    kind: Annotated[Kind, typer.Option(help="customers or invoices")],
    window: Annotated[str, typer.Option(help="The batch's name")] = "all",
) -> None:
    """Close the adoption (approvals waiting are done first)."""
    response = gateway_call("POST", f"/v1/ops/adoptions/{_id(kind, window)}/close")
    typer.echo(response.json()["status"])
