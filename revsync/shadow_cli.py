"""``revsync shadow report|replay|compare``: shadow mode from the command line
(docs/shadow-mode.md), through the gateway's ops API with the configured staff token
(``REVSYNC_OPERATOR_TOKEN``; ``replay`` and ``compare`` need the ``operator`` role)."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import httpx
import typer

from domain.shadow import ChangeState, ComparisonReport, SagaShadow, ShadowReport, Tally
from revsync.settings import get_settings

shadow_app = typer.Typer(help="Shadow mode: what revsync would write, before it writes.")


def gateway_call(method: str, path: str, **kwargs: Any) -> httpx.Response:
    settings = get_settings()
    token = settings.require_secret(
        "operator_token",
        "shadow reports and replays go through the ops API as the holder of a staff token "
        "(`revsync tokens new` makes one)",
    ).get_secret_value()

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(base_url=settings.gateway_url, timeout=60) as http:
            return await http.request(
                method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs
            )

    try:
        response = asyncio.run(go())
    except httpx.TransportError as error:
        typer.echo(f"cannot reach the gateway at {settings.gateway_url}: {error}", err=True)
        raise typer.Exit(2) from error
    if response.status_code >= 400:
        try:
            reason = response.json().get("error") or response.text
        except ValueError:
            reason = response.text
        typer.echo(f"refused ({response.status_code}): {reason}", err=True)
        raise typer.Exit(1)
    return response


def _tally(name: str, t: Tally) -> str:
    extra = []
    if t.vendor_refusals:
        extra.append(f"{t.vendor_refusals} by the vendor's validation")
    if t.held_back:
        extra.append(f"{t.held_back} held back")
    if t.replayed:
        extra.append(f"{t.replayed} made live since")
    tail = f" ({'; '.join(extra)})" if extra else ""
    return (
        f"{name:<40} {t.writes:>6} writes: {t.creates} create, {t.updates} update, "
        f"{t.noops} no-op, {t.refusals} refused{tail}"
    )


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def render_comparison(report: ComparisonReport) -> str:
    lines = [
        f"compared with the existing integration at {report.compared_at:%Y-%m-%d %H:%M} UTC "
        f"(recordings before {report.settled_before:%Y-%m-%d %H:%M} UTC)"
    ]
    for name, rate in report.objects.items():
        lines.append(
            f"  {name:<28} match {_rate(rate.match_rate):>5}: {rate.same} same, "
            f"{rate.different} different, {rate.revsync_only} only revsync would write, "
            f"{rate.existing_only} only the existing integration wrote"
        )
        for field, field_rate in sorted(rate.fields.items()):
            lines.append(
                f"      {field:<24} {_rate(field_rate.rate):>5} "
                f"({field_rate.equal}/{field_rate.compared})"
            )
    for name, count in report.not_comparable.items():
        lines.append(f"  {name:<28} {count} not comparable (no listing shows them)")
    return "\n".join(lines)


def render_report(report: ShadowReport) -> str:
    lines = [_tally("all vendors", report.total), ""]
    lines += [_tally(vendor, tally) for vendor, tally in report.by_vendor.items()]
    lines.append("")
    lines += [_tally(op, tally) for op, tally in report.by_operation.items()]
    lines += ["", f"sagas: {len(report.sagas)} (revsync shadow report --saga <workflow id>)"]
    if report.comparison is not None:
        lines += ["", render_comparison(report.comparison)]
    else:
        lines += ["", "not compared with the existing integration yet (revsync shadow compare)"]
    return "\n".join(lines)


def render_saga(saga: SagaShadow) -> str:
    lines = [_tally(f"{saga.workflow_id} ({saga.workflow_type or '?'})", saga.tally)]
    for write in saga.writes:
        target = write.target.record_id or write.target.key or "-"
        lines.append(
            f"- {write.recorded_at:%H:%M:%S} {write.why.step or '-'}: {write.vendor} "
            f"{write.operation} {write.target.kind} {target} -> {write.effect.value}"
            + (" (held back)" if write.held_back else "")
            + (f" [made live: {write.materialized_id}]" if write.materialized_at else "")
        )
        for change in write.changes:
            if change.state is ChangeState.UNCHANGED:
                continue
            before = "" if change.state is ChangeState.UNREAD else f"{change.before!s} -> "
            lines.append(f"    {change.field}: {before}{change.after!s} ({change.state.value})")
        for refusal in write.refusals:
            lines.append(f"    REFUSED by {refusal.source.value}: {refusal.code} {refusal.message}")
    return "\n".join(lines)


@shadow_app.command("report")
def report(
    saga: Annotated[
        str | None, typer.Option(help="One saga's writes, by workflow id (q2c-..., i2r-...)")
    ] = None,
    as_csv: Annotated[bool, typer.Option("--csv", help="Every write as CSV")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """What revsync would have written: per vendor, operation and saga, and compared with
    the integration already in place."""
    path = "/v1/ops/shadow/report" if saga is None else f"/v1/ops/shadow/sagas/{saga}"
    response = gateway_call("GET", path, params={"format": "csv" if as_csv else "json"})
    if as_csv:
        typer.echo(response.text, nl=False)
        return
    if as_json:
        typer.echo(json.dumps(response.json(), indent=2))
        return
    if saga is None:
        typer.echo(render_report(ShadowReport.model_validate(response.json())))
    else:
        typer.echo(render_saga(SagaShadow.model_validate(response.json())))


@shadow_app.command("replay")
def replay(
    workflow_id: Annotated[str, typer.Argument(help="The finished saga (q2c-..., i2r-...)")],
    note: Annotated[str, typer.Option(help="Why (kept with the replay)")],
) -> None:
    """Make one finished saga's recorded writes live, in order, under their recorded keys
    (writes already made are not made again; vendors still in shadow mode are left)."""
    response = gateway_call(
        "POST", f"/v1/ops/shadow/sagas/{workflow_id}/replay", json={"note": note}
    )
    typer.echo(f"replay started: {response.json()['workflow_id']}")


@shadow_app.command("compare")
def compare() -> None:
    """Compare what revsync would have written with what the existing integration wrote
    (the result is in `revsync shadow report` once the comparison has run)."""
    response = gateway_call("POST", "/v1/ops/shadow/compare")
    typer.echo(f"comparison started: {response.json()['workflow_id']}")
