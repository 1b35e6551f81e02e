"""The controller that SIGKILLs worker processes and the Temporal dev server mid-run.

It finds the children of the ``revsync dev`` process in ``/proc`` (never the gateway or the
sandbox), kills one at each planned moment, and waits until the supervisor has replaced it:
a worker by a new process of the same role, the server by a new process that answers again
(the supervisor logs ``temporal ready again``). A kill counts once its replacement runs.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field

from chaos import procs
from chaos.stack import DevStack

# How long the supervisor may take to replace a killed process (its backoff, a slow start on
# a loaded machine, a server restart in between).
REPLACED_WITHIN_SECONDS = 90.0
# Kill one role at most this often: the supervisor stops the stack after 5 restarts a minute.
MAX_KILLS_PER_ROLE_PER_MINUTE = 3


@dataclass(frozen=True)
class Kill:
    role: str  # the supervisor's name for the process: temporal, worker-erp-2, ...
    pid: int
    replaced_by: int | None
    replaced_after: float | None  # seconds, None when not replaced in time


@dataclass
class KillLog:
    workers: list[Kill] = field(default_factory=list)
    servers: list[Kill] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def worker_kills_done(self) -> int:
        return sum(1 for k in self.workers if k.replaced_by is not None)

    @property
    def server_restarts_done(self) -> int:
        return sum(1 for k in self.servers if k.replaced_by is not None)


def kill_plan(
    rng: random.Random, worker_kills: int, server_kills: int, window: float
) -> list[tuple[float, str]]:
    """(seconds after the start, ``worker`` or ``server``), sorted: spread over the window,
    after the first sagas started, so that kills land mid-saga."""
    events = ["worker"] * worker_kills + ["server"] * server_kills
    return sorted((rng.uniform(0.15, 0.9) * window, what) for what in events)


class Killer:
    def __init__(self, stack: DevStack, rng: random.Random) -> None:
        self.stack = stack
        self.rng = rng
        self.log = KillLog()
        self._recent: list[tuple[float, str]] = []

    def _children(self) -> list[procs.Child]:
        return procs.children(self.stack.pid)

    async def run(self, plan: list[tuple[float, str]]) -> KillLog:
        started = time.monotonic()
        for at, what in plan:
            await asyncio.sleep(max(0.0, started + at - time.monotonic()))
            self.stack.check_alive()
            if what == "server":
                await self.kill_server()
            else:
                await self.kill_worker()
        return self.log

    def _pick_worker(self) -> procs.Child | None:
        now = time.monotonic()
        self._recent = [(t, role) for t, role in self._recent if now - t < 60]
        recent = Counter(role for _, role in self._recent)
        workers = [
            c
            for c in self._children()
            if c.is_worker and recent[c.role] < MAX_KILLS_PER_ROLE_PER_MINUTE
        ]
        return self.rng.choice(workers) if workers else None

    async def kill_worker(self) -> None:
        victim = self._pick_worker()
        deadline = time.monotonic() + 60
        while victim is None and time.monotonic() < deadline:
            await asyncio.sleep(1.0)  # every worker was killed recently: let one recover
            victim = self._pick_worker()
        if victim is None:
            self.log.problems.append("no worker to kill")
            return
        killed_at = time.monotonic()
        if not procs.kill(victim.pid):
            self.log.problems.append(f"{victim.role} (pid {victim.pid}) was gone before the kill")
            return
        self._recent.append((killed_at, victim.role))
        before = {c.pid for c in self._children()} | {victim.pid}
        replacement = await self._replacement(victim.role, before)
        self.log.workers.append(self._kill(victim, replacement, killed_at))

    async def kill_server(self) -> None:
        servers = [c for c in self._children() if c.role == "temporal"]
        if not servers:
            self.log.problems.append("no Temporal server process to kill")
            return
        victim = servers[0]
        ready_before = self._ready_again()
        killed_at = time.monotonic()
        procs.kill(victim.pid)
        replacement = await self._replacement("temporal", {victim.pid})
        deadline = killed_at + REPLACED_WITHIN_SECONDS
        while replacement is not None and self._ready_again() <= ready_before:
            self.stack.check_alive()
            if time.monotonic() > deadline:
                replacement = None
                break
            await asyncio.sleep(0.2)
        self.log.servers.append(self._kill(victim, replacement, killed_at))

    def _ready_again(self) -> int:
        return sum(1 for e in self.stack.events() if e.get("event") == "temporal ready again")

    async def _replacement(self, role: str, old: set[int]) -> int | None:
        deadline = time.monotonic() + REPLACED_WITHIN_SECONDS
        while time.monotonic() < deadline:
            self.stack.check_alive()
            for child in self._children():
                if child.role == role and child.pid not in old:
                    return child.pid
            await asyncio.sleep(0.2)
        return None

    def _name(self, pid: int, role: str) -> str:
        """The supervisor's name for ``pid`` (``worker-erp-2``), from its ``started`` line."""
        for event in reversed(self.stack.events()):
            if event.get("event") == "started" and event.get("pid") == pid:
                return str(event.get("process", role))
        return role

    def _kill(self, victim: procs.Child, replacement: int | None, killed_at: float) -> Kill:
        name = self._name(victim.pid, victim.role)
        if replacement is None:
            self.log.problems.append(
                f"{name} (pid {victim.pid}) not replaced within {REPLACED_WITHIN_SECONDS:.0f} s"
            )
            return Kill(name, victim.pid, None, None)
        return Kill(name, victim.pid, replacement, time.monotonic() - killed_at)
