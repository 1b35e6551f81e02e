"""Replay the recent histories of a namespace against the workflow code at hand.

A change to workflow code (or to a ``domain`` module a workflow imports) that would make a
running saga take other steps than its history says fails its next workflow task in
production. ``revsync replay`` finds that before the deploy: it fetches the most recent
histories of every registered workflow type (running and closed) and replays each with the
current code, through the deployment's own data converter (payloads are encrypted).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from temporalio.client import Client
from temporalio.worker import Replayer


@dataclass
class TypeReplay:
    """What replaying one workflow type's histories found."""

    workflow_type: str
    replayed: int = 0
    # (workflow id, run id, why) of every history the current code does not replay
    failures: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass
class ReplayReport:
    types: list[TypeReplay]

    @property
    def failed(self) -> bool:
        return any(t.failures for t in self.types)

    def lines(self) -> list[str]:
        out = []
        for t in self.types:
            verdict = "ok" if not t.failures else f"{len(t.failures)} FAILED"
            out.append(f"{t.workflow_type:<22} {t.replayed:>5} replayed  {verdict}")
            out += [f"  {wid} run {run}: {why}" for wid, run, why in t.failures]
        return out


def workflow_type_name(workflow: type) -> str:
    definition = getattr(workflow, "__temporal_workflow_definition")
    return str(definition.name)


async def replay_recent(
    client: Client,
    workflows: Sequence[type],
    *,
    per_type: int = 50,
    only: Sequence[str] = (),
) -> ReplayReport:
    """Replay up to ``per_type`` most recent histories of each of ``workflows``' types (or
    of those named in ``only``) in ``client``'s namespace."""
    replayer = Replayer(workflows=list(workflows), data_converter=client.data_converter)
    report = ReplayReport(types=[])
    for name in [workflow_type_name(w) for w in workflows]:
        if only and name not in only:
            continue
        found = TypeReplay(workflow_type=name)
        report.types.append(found)
        async for execution in client.list_workflows(f'WorkflowType = "{name}"', limit=per_type):
            handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
            history = await handle.fetch_history()
            result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
            found.replayed += 1
            if result.replay_failure is not None:
                why = f"{type(result.replay_failure).__name__}: {result.replay_failure}"
                found.failures.append((execution.id, execution.run_id, why))
    return report
