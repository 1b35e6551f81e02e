"""``revsync customer status|merge|keep-separate``: golden customers from the command line.

``status`` queries the workflow directly (like ``revsync status``); the decisions go through
the gateway's ops API with the configured staff token (``REVSYNC_OPERATOR_TOKEN``, role
``data_steward``), so the gateway, not this command, says who decides.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import httpx
import typer
from temporalio.service import RPCError, RPCStatusCode

from domain.customer_master import master_workflow_id
from domain.master_contracts import CustomerMasterStatus, MasterDecision
from revsync.customer_master import (
    CustomerNotFound,
    customer_status,
    decide_customer_via_gateway,
)
from revsync.operations import DecisionRefused
from revsync.settings import get_settings
from revsync.temporal import connect

customer_app = typer.Typer(help="Golden customers: status and a data steward's decisions.")


def render(status: CustomerMasterStatus) -> str:
    record = status.record
    lines = [
        f"golden customer {status.golden_id} ({status.workflow_id}): {status.state.value}",
        *(
            f"  {field.value}: {state.value!s}  (from {state.source.value} {state.record_id})"
            for field, state in record.fields.items()
        ),
        "  linked: " + ", ".join(f"{s.value} {' '.join(ids)}" for s, ids in record.xref.items()),
    ]
    if record.merged_into:
        lines.append(f"  merged into {record.merged_into}")
    for suspicion in status.suspicions:
        reasons = "; ".join(r.detail for r in suspicion.reasons)
        lines.append(
            f"  possible duplicate {suspicion.candidate} ({suspicion.strength}): {reasons}"
        )
    for item in status.open_reviews:
        lines.append(
            f"  review {item.field.value} from {item.system.value}: {item.proposed!s} "
            f"(golden {item.current!s})"
        )
    for parked in status.parked:
        lines.append(f"  parked {parked.step} [{parked.update.idempotency_key}]: {parked.reason}")
    if status.queued:
        lines.append(f"  propagations queued: {len(status.queued)}")
    for decision in status.decisions[-5:]:
        lines.append(
            f"  {decision.at:%Y-%m-%d %H:%M} {decision.action} {decision.subject} by "
            f"{decision.actor}: {decision.note}"
        )
    return "\n".join(lines)


@customer_app.command("status")
def status(
    golden_id: Annotated[str, typer.Argument(help="The golden id (the CRM account id)")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Show a golden customer: fields and their sources, reviews, duplicates, parked steps."""
    settings = get_settings()

    async def go() -> CustomerMasterStatus:
        return await customer_status(await connect(settings), golden_id)

    try:
        found = asyncio.run(go())
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            typer.echo(
                f"no golden customer {golden_id} ({master_workflow_id(golden_id)})", err=True
            )
            raise typer.Exit(1) from error
        raise
    except RuntimeError as error:
        typer.echo(f"cannot reach Temporal at {settings.temporal_address}: {error}", err=True)
        raise typer.Exit(2) from error
    typer.echo(found.model_dump_json(indent=2) if as_json else render(found))


def _decide(golden_id: str, verb: str, body: dict[str, Any]) -> None:
    settings = get_settings()
    token = settings.require_secret(
        "operator_token",
        "merge and keep-separate act as the holder of a staff token with the data_steward "
        "role (`revsync tokens new --role data_steward`)",
    ).get_secret_value()

    async def go() -> MasterDecision:
        async with httpx.AsyncClient(base_url=settings.gateway_url, timeout=30) as http:
            return await decide_customer_via_gateway(http, token, golden_id, verb, body)

    try:
        decision = asyncio.run(go())
    except (DecisionRefused, CustomerNotFound) as refused:
        typer.echo(f"refused: {refused}", err=True)
        raise typer.Exit(1) from refused
    except httpx.TransportError as error:
        typer.echo(f"cannot reach the gateway at {settings.gateway_url}: {error}", err=True)
        raise typer.Exit(2) from error
    typer.echo(
        f"{decision.action} ({decision.subject}) recorded for {golden_id} by {decision.actor} "
        f"at {decision.at:%Y-%m-%d %H:%M:%S} UTC"
    )


@customer_app.command("merge")
def merge(
    golden_id: Annotated[str, typer.Argument(help="The golden customer holding the suspicion")],
    candidate: Annotated[str, typer.Option(help="The suspected duplicate")],
    into: Annotated[str, typer.Option(help="The survivor: GOLDEN_ID or the candidate")],
    note: Annotated[str, typer.Option(help="Why (kept in the audit trail)")],
) -> None:
    """Merge a held duplicate: the other record hands itself to the survivor and ends."""
    _decide(golden_id, "merge", {"candidate": candidate, "into": into, "note": note})


@customer_app.command("keep-separate")
def keep_separate(
    golden_id: Annotated[str, typer.Argument(help="The golden customer holding the suspicion")],
    candidate: Annotated[str, typer.Option(help="The suspected duplicate")],
    note: Annotated[str, typer.Option(help="Why (kept in the audit trail)")],
) -> None:
    """Two customers after all: the pair is never held again."""
    _decide(golden_id, "keep-separate", {"candidate": candidate, "note": note})
