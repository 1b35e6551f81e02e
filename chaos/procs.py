"""The processes ``revsync dev`` supervises, read from ``/proc`` (Linux; no psutil).

A child is found by its parent pid and named by its command line: ``temporal`` for the dev
server, ``sandbox``, ``gateway``, ``worker-<queue>`` for a worker (several share a name when
a queue is scaled). Only workers and the server are ever killed.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class Child:
    pid: int
    role: str  # temporal, sandbox, gateway, worker-<queue>, or other

    @property
    def is_worker(self) -> bool:
        return self.role.startswith("worker-")


def parent_of(pid: int, proc: Path = PROC) -> int | None:
    """The parent pid from ``/proc/<pid>/stat``; None when the process is gone."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    fields = stat[stat.rfind(")") + 2 :].split()
    return int(fields[1]) if len(fields) > 1 else None


def role_of(argv: list[str]) -> str:
    """What a child of ``revsync dev`` is, from its command line."""
    if "start-dev" in argv:
        return "temporal"
    if "worker" in argv:
        at = argv.index("worker")
        return f"worker-{argv[at + 1]}" if at + 1 < len(argv) else "worker-?"
    for role in ("sandbox", "gateway"):
        if role in argv:
            return role
    return "other"


def children(parent: int, proc: Path = PROC) -> list[Child]:
    """The live child processes of ``parent`` (zombies excluded), by pid."""
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or parent_of(int(entry.name), proc) != parent:
            continue
        try:
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError):
            continue  # it just exited
        found.append(Child(int(entry.name), role_of([a.decode(errors="replace") for a in argv])))
    return sorted(found, key=lambda c: c.pid)


def kill(pid: int) -> bool:
    """SIGKILL ``pid``; False when it was already gone."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True
