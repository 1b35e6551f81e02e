"""What a chaos run did and found, and its summary table."""

from __future__ import annotations

import shlex
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from chaos.deliveries import DeliveryLog
from chaos.faults import KINDS, Injected
from chaos.invariants import SagaView, Violation
from chaos.killer import Kill, KillLog

OUTCOMES = ("BOOKED", "COMPENSATED", "REJECTED", "NEEDS_ATTENTION", "AWAITING_APPROVAL")


@dataclass
class ChaosResult:
    seed: int
    quotes: int
    scale: str
    kills_wanted: int
    server_restarts_wanted: int
    sagas: dict[str, SagaView | None] = field(default_factory=dict)
    deliveries: DeliveryLog = field(default_factory=DeliveryLog)
    kills: KillLog = field(default_factory=KillLog)
    faults: Injected = field(default_factory=lambda: Injected(0, 0))
    faults_fired: Counter[str] = field(default_factory=Counter)
    violations: list[Violation] = field(default_factory=list)
    # What went wrong around the invariants: the stack died, a killed process was not
    # replaced, a delivery was never accepted, a kill could not be done.
    problems: list[str] = field(default_factory=list)
    elapsed_seconds: float = 0.0
    kept_dir: Path | None = None

    def replay_command(self) -> str:
        """The command that runs this run's plan again: the same quotes, accounts, faults and
        kill moments (the stack's own timing still varies from run to run)."""
        return (
            f"python -m chaos.run --quotes {self.quotes} --seed {self.seed} "
            f"--kills {self.kills_wanted} --server-restarts {self.server_restarts_wanted} "
            f"--scale {shlex.quote(self.scale)}"
        )

    @property
    def ok(self) -> bool:
        return not self.violations and not self.problems

    def outcomes(self) -> Counter[str]:
        return Counter("(no saga)" if s is None else s.stage for s in self.sagas.values())

    def parked_steps(self) -> Counter[str]:
        return Counter(
            s.parked_step or "?"
            for s in self.sagas.values()
            if s is not None and s.stage == "NEEDS_ATTENTION"
        )


def _kills(kills: list[Kill]) -> str:
    names = Counter(k.role for k in kills)
    listing = ", ".join(f"{name} x{n}" if n > 1 else name for name, n in sorted(names.items()))
    times = sorted(k.replaced_after for k in kills if k.replaced_after is not None)
    if times:
        low, high = f"{times[0]:.1f}", f"{times[-1]:.1f}"
        spread = low if low == high else f"{low}-{high}"
        listing += f"; back in {spread} s"
    return f"({listing})" if listing else ""


def render(result: ChaosResult) -> str:
    lines = [
        f"chaos run: {result.quotes} quotes, seed {result.seed}, scale "
        f"{result.scale or '(one worker per queue)'}, {result.elapsed_seconds:.0f} s",
        "",
        f"{'outcome':<20}{'quotes':>7}",
    ]
    outcomes = result.outcomes()
    parked = result.parked_steps()
    for stage in [*OUTCOMES, *sorted(set(outcomes) - set(OUTCOMES))]:
        note = ""
        if stage == "NEEDS_ATTENTION" and parked:
            note = "  (" + ", ".join(f"{s} {n}" for s, n in sorted(parked.items())) + ")"
        lines.append(f"{stage:<20}{outcomes.get(stage, 0):>7}{note}")
    lines.append(f"{'total':<20}{sum(outcomes.values()):>7}")
    d, k = result.deliveries, result.kills
    fired = result.faults_fired
    lines += [
        "",
        f"{'deliveries':<20}{d.sent:>7}  ({d.verdicts['started']} started, "
        f"{d.verdicts['duplicate']} duplicate; {d.retries} retries after a gateway error; "
        f"{len(d.failed)} never accepted)",
        f"{'worker kills':<20}{k.worker_kills_done:>7}  of {result.kills_wanted} "
        + _kills(k.workers),
        f"{'server restarts':<20}{k.server_restarts_done:>7}  of {result.server_restarts_wanted} "
        + _kills(k.servers),
        f"{'faults fired':<20}{sum(fired.values()):>7}  ("
        + ", ".join(f"{kind} {fired.get(kind, 0)}" for kind in KINDS)
        + f"; {result.faults.rules} rules, {result.faults.expired} left unfired)",
        f"{'violations':<20}{len(result.violations):>7}",
    ]
    if result.violations:
        lines += ["", "violations:"] + [f"  {v}" for v in result.violations]
    if result.problems:
        lines += ["", "problems:"] + [f"  {p}" for p in result.problems]
    if result.kept_dir is not None:
        lines += ["", f"state and logs kept in {result.kept_dir}"]
    if not result.ok:
        lines += ["", f"replay: {result.replay_command()} --keep-dir"]
    lines += ["", "OK" if result.ok else "FAILED"]
    return "\n".join(lines)
