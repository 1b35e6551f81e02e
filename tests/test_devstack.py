"""`revsync dev`'s restart policy, on stand-in processes: the Temporal server restarts like any
other child while the rest keeps running, and what keeps dying stops the stack. (The real
server restarting on its SQLite state, mid-saga, is tests/chaos/test_chaos_small.py.)"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
import structlog

from revsync import devstack
from revsync.devstack import ProcessSpec, Supervised
from revsync.settings import Settings

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]
QUITTER = [sys.executable, "-c", "raise SystemExit(3)"]


@pytest.fixture
def logged() -> Iterator[list[MutableMapping[str, Any]]]:
    """The supervisor's log events (captured, whatever another test configured)."""
    with structlog.testing.capture_logs() as events:
        yield events


@pytest.fixture
def ready_calls(
    monkeypatch: pytest.MonkeyPatch, logged: list[MutableMapping[str, Any]]
) -> list[int]:
    """Short backoffs, and a server that is 'ready' when it is still alive after a moment."""
    monkeypatch.setattr(devstack, "RESTART_BACKOFF_SECONDS", (0.05,) * 5)
    calls: list[int] = []

    async def ready(settings: Settings, child: Supervised, deadline: float) -> None:
        await asyncio.sleep(0.3)
        assert child.process is not None
        if child.process.returncode is not None:
            raise RuntimeError(f"exited with code {child.process.returncode}")
        calls.append(child.process.pid)

    monkeypatch.setattr(devstack, "wait_temporal_ready", ready)
    return calls


@pytest.fixture
async def children() -> AsyncIterator[list[Supervised]]:
    started: list[Supervised] = []
    yield started
    for child in started:
        await child.stop(5)


async def start(children: list[Supervised], name: str, argv: list[str]) -> Supervised:
    child = Supervised(ProcessSpec(name, argv), dict(os.environ))
    await child.start()
    children.append(child)
    return child


async def until(condition: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


Watch = Callable[[list[Supervised]], tuple[asyncio.Task[int], asyncio.Event]]


@pytest.fixture
async def watch(tmp_path: Path) -> AsyncIterator[Watch]:
    """Starts the supervisor's watch over children; cancels it after the test, whatever
    happened (a watch left running would restart the next test's processes)."""
    tasks: list[asyncio.Task[int]] = []

    def start_watch(children: list[Supervised]) -> tuple[asyncio.Task[int], asyncio.Event]:
        stopping = asyncio.Event()
        settings = Settings(_env_file=None, data_dir=tmp_path)
        tasks.append(asyncio.create_task(devstack._watch(children, settings, stopping)))
        return tasks[-1], stopping

    yield start_watch
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_killed_server_is_restarted_and_nothing_else_is(
    ready_calls: list[int],
    children: list[Supervised],
    watch: Watch,
    logged: list[MutableMapping[str, Any]],
):
    server = await start(children, "temporal", SLEEPER)
    worker = await start(children, "worker-erp", SLEEPER)
    first_server, first_worker = server.pid, worker.pid
    task, stopping = watch(children)

    assert first_server is not None
    os.kill(first_server, signal.SIGKILL)
    await until(lambda: len(ready_calls) == 1)
    assert ready_calls == [server.pid] != [first_server]
    assert worker.pid == first_worker and not task.done()
    events = [e["event"] for e in logged if e.get("process") == "temporal"]
    assert events == [
        "started",
        "exited; restarting on the same state",
        "started",
        "temporal ready again",
    ]

    stopping.set()
    assert await task == 0


async def test_a_worker_that_exits_while_the_server_is_down_restarts_once_it_is_back(
    ready_calls: list[int], children: list[Supervised], watch: Watch
):
    server = await start(children, "temporal", SLEEPER)
    worker = await start(children, "worker-erp", SLEEPER)
    first_worker = worker.pid
    task, stopping = watch(children)

    assert server.pid is not None and first_worker is not None
    os.kill(server.pid, signal.SIGKILL)
    await until(lambda: len(server.restarts) == 1)  # the supervisor saw the server go
    os.kill(first_worker, signal.SIGKILL)
    await until(lambda: worker.pid != first_worker)
    assert len(ready_calls) == 1, "the worker was started before the server was back"
    assert worker.restarts == [], "an exit caused by the outage counted against the worker"

    stopping.set()
    assert await task == 0


@pytest.mark.parametrize("dying", ["temporal", "worker-erp"])
async def test_a_process_that_keeps_dying_stops_the_stack(
    dying: str, ready_calls: list[int], children: list[Supervised], watch: Watch
):
    server = await start(children, "temporal", QUITTER if dying == "temporal" else SLEEPER)
    worker = await start(children, "worker-erp", QUITTER if dying != "temporal" else SLEEPER)
    task, _ = watch(children)

    assert await asyncio.wait_for(task, 30) == 1
    died = server if dying == "temporal" else worker
    assert len(died.restarts) == devstack.MAX_RESTARTS_PER_MINUTE + 1


# -- the port check at start -------------------------------------------------------------------


def _time_wait_port() -> int:
    """A loopback port whose last connection the server side closed first: it lingers in
    TIME_WAIT, as the ports of a stack stopped a moment ago do, with nothing listening."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = int(listener.getsockname()[1])
        client = socket.create_connection(("127.0.0.1", port))
        served, _ = listener.accept()
        served.close()  # the server side closes first: its end goes to TIME_WAIT
        client.recv(1)
        client.close()
    return port


def test_a_port_left_in_time_wait_by_a_stopped_stack_is_free():
    port = _time_wait_port()
    with socket.socket() as plain, pytest.raises(OSError, match="in use"):
        plain.bind(("127.0.0.1", port))  # what the check used to do: "Address already in use"
    assert devstack.busy_ports([("gateway", "127.0.0.1", port)]) == []


def test_a_port_something_listens_on_is_reported_by_name():
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = int(listener.getsockname()[1])
        (problem,) = devstack.busy_ports([("gateway", "localhost", port)])
    assert problem.startswith(f"gateway: localhost:{port} is not available")
