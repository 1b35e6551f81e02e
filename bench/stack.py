"""The stack the in-process benchmarks run on: a real Temporal dev server, the vendor sandbox
served over HTTP, revsync's real workers (started and stopped by the benchmark, so phases
can use the same task queues one after the other) and, when asked, the real gateway as its
own process.

Built from the end-to-end tests' pieces (``tests/e2e/stack.py``, ``tests/staff.py``) with
two differences a benchmark needs: it counts every request the sandbox answers, per vendor,
and it can run the sandbox and the gateway as separate processes, so that what they cost is
not charged to the workers' (or the load generator's) interpreter.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    MutableMapping,
    Sequence,
)
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import psutil
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from domain.contracts import TaskQueue
from domain.quote import Quote
from revsync.codec import KeyRing, encrypted_data_converter
from revsync.demo import create_crm_quote
from revsync.gateway.webhooks import start_quote_to_cash
from revsync.settings import Settings
from sandbox.app import SandboxState
from sandbox.app import create_app as create_sandbox
from tests.conftest import installed_binary
from tests.e2e.stack import ThreadedServer, free_port, stack_settings
from workers.build import build_worker, new_http_client
from workflows import visibility

SandboxMode = Literal["thread", "process"]
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


_ACTION_METRIC = re.compile(
    r'^action\{action_type="(?P<type>[^"]+)",namespace="(?P<namespace>[^"]+)"[^}]*\} '
    r"(?P<value>[0-9.e+]+)$",
    re.MULTILINE,
)


@dataclass
class VendorCall:
    start: float  # time.monotonic()
    end: float
    status: int


@dataclass
class VendorCalls:
    """Every request the sandbox answered, by vendor (the first path segment)."""

    by_vendor: dict[str, list[VendorCall]] = field(default_factory=lambda: defaultdict(list))

    def of(self, vendor: str) -> list[VendorCall]:
        return self.by_vendor.get(vendor, [])

    def clear(self) -> None:
        self.by_vendor.clear()


class CountingApp:
    """ASGI middleware recording each request's vendor, arrival, end and status."""

    def __init__(self, app: ASGIApp, calls: VendorCalls) -> None:
        self.app = app
        self.calls = calls

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        vendor = str(scope["path"]).strip("/").split("/")[0]
        start = time.monotonic()
        status = 0

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.calls.by_vendor[vendor].append(VendorCall(start, time.monotonic(), status))


class ChildProcess:
    """A revsync command run as its own process, outside the repo (no developer `.env`)."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> None:
        self._log = log.open("wb")
        self.popen = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT
        )
        self.process = psutil.Process(self.popen.pid)
        self.log = log

    async def wait_healthy(self, url: str, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        async with httpx.AsyncClient(timeout=2) as http:
            while True:
                if self.popen.poll() is not None:
                    raise RuntimeError(
                        f"{self.popen.args!r} exited {self.popen.returncode}:\n"
                        + self.log.read_text(errors="replace")[-3000:]
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{url}/healthz")).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{url} not healthy after {seconds}s")
                await asyncio.sleep(0.2)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()


def child_env(settings: Settings, data_dir: Path) -> dict[str, str]:
    """The environment a revsync process needs to join this stack (no other REVSYNC_*)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVSYNC_")}
    assert settings.payload_keys is not None and settings.cpq_webhook_secret is not None
    return env | {
        "REVSYNC_TEMPORAL_ADDRESS": settings.temporal_address,
        "REVSYNC_GATEWAY_HOST": settings.gateway_host,
        "REVSYNC_GATEWAY_PORT": str(settings.gateway_port),
        "REVSYNC_SANDBOX_HOST": settings.sandbox_host,
        "REVSYNC_SANDBOX_PORT": str(settings.sandbox_port),
        "REVSYNC_PAYLOAD_KEYS": settings.payload_keys.get_secret_value(),
        "REVSYNC_CPQ_WEBHOOK_SECRET": settings.cpq_webhook_secret.get_secret_value(),
        "REVSYNC_OPERATOR_TOKENS": json.dumps(
            [t.model_dump(mode="json") for t in settings.operator_tokens]
        ),
        # The sandbox's event subscriber verifies what the events worker signs.
        "REVSYNC_EVENT_SUBSCRIBERS": json.dumps(
            [
                s.model_dump(mode="json") | {"secret": s.secret.get_secret_value()}
                for s in settings.event_subscribers
            ]
        ),
        "REVSYNC_DATA_DIR": str(data_dir),
        "REVSYNC_LOG_FORMAT": "json",
    }


def revsync_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "revsync.cli", *args]


@dataclass
class BenchStack:
    env: WorkflowEnvironment
    client: Client  # revsync's own: the encrypting converter
    settings: Settings
    workdir: Path
    server: psutil.Process | None  # the Temporal dev server
    sandbox_state: SandboxState | None  # in-process sandbox only
    sandbox_process: psutil.Process | None  # sandbox run as its own process only
    calls: VendorCalls | None  # in-process sandbox only
    sandbox_thread_id: int | None = None  # in-process sandbox only: its server thread
    metrics_url: str | None = None  # the dev server's Prometheus endpoint
    # Requests the workers' HTTP client sent, by vendor (counted in either sandbox mode).
    vendor_requests: Counter[str] = field(default_factory=Counter)

    @asynccontextmanager
    async def workers(
        self,
        settings: Settings | None = None,
        queues: Sequence[str] = TaskQueue.ALL,
    ) -> AsyncIterator[None]:
        """revsync's production workers (``workers.build``), one per queue, in this process,
        each with its own HTTP client and connection pool as each ``revsync worker QUEUE``
        process has in production."""
        settings = settings or self.settings

        async def count(request: httpx.Request) -> None:
            self.vendor_requests[request.url.path.strip("/").split("/")[0]] += 1

        async with AsyncExitStack() as stack:
            for queue in queues:
                http = await stack.enter_async_context(new_http_client(settings))
                http.event_hooks = {"request": [count], "response": []}
                await stack.enter_async_context(build_worker(queue, self.client, settings, http))
            yield

    @asynccontextmanager
    async def gateway(self) -> AsyncIterator[ChildProcess]:
        """``revsync gateway`` as its own process, as in production."""
        data_dir = self.workdir / "gateway"
        data_dir.mkdir(exist_ok=True)
        child = ChildProcess(
            revsync_command("gateway"),
            child_env(self.settings, data_dir),
            self.workdir,
            self.workdir / "gateway.log",
        )
        try:
            await child.wait_healthy(self.settings.gateway_url)
            yield child
        finally:
            child.stop()

    async def server_actions(self) -> Counter[str]:
        """The dev server's own ``action`` metric (what Temporal counts as billable actions,
        heartbeats included), by action type, for the default namespace."""
        found: Counter[str] = Counter()
        if self.metrics_url is None:
            return found
        async with httpx.AsyncClient(timeout=10) as http:
            text = (await http.get(self.metrics_url)).text
        for match in _ACTION_METRIC.finditer(text):
            if match["namespace"] == self.client.namespace:
                found[match["type"]] += int(float(match["value"]))
        return found

    async def start_saga(self, payload: dict[str, Any]) -> str:
        """Start a quote-to-cash saga exactly as the gateway does (same function, same
        search attributes, summary and id policy); returns the workflow id."""
        quote = Quote.model_validate(payload)
        await start_quote_to_cash(self.client, quote, self.settings.saga_policy, source="bench")
        return visibility.workflow_id_for_quote(quote.quote_id)


@contextlib.contextmanager
def output_to(path: Path) -> Iterator[None]:
    """Point this process's stdout and stderr file descriptors at ``path`` for a while, so a
    child process started meanwhile (the dev server, spawned by the SDK) writes there."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.dup2(target, 1)
        os.dup2(target, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (target, *saved):
            os.close(fd)


def find_dev_server(port: int) -> psutil.Process | None:
    """The Temporal dev server child process listening on ``port``."""
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            cmdline = child.cmdline()
            if "start-dev" in cmdline and str(port) in cmdline:
                return child
    return None


@asynccontextmanager
async def bench_stack(sandbox: SandboxMode = "thread") -> AsyncIterator[BenchStack]:
    """A dev server (in-memory SQLite, revsync's search attributes registered, no Web UI)
    and the sandbox; workers and the gateway are up to the benchmark."""
    with tempfile.TemporaryDirectory(prefix="revsync-bench-") as tmp:
        workdir = Path(tmp)
        port, sandbox_port, gateway_port = free_port(), free_port(), free_port()
        metrics_port = free_port()
        sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        settings = stack_settings(sandbox_url, f"127.0.0.1:{port}").model_copy(
            update={
                "gateway_port": gateway_port,
                "sandbox_port": sandbox_port,
                # The sandbox's Stripe has no rate limit, and the task-queue rate that guards
                # the real one (10 provisionings/s by default, docs/scaling.md) would be the
                # figure measured instead of revsync's own cost; the bare workflow has none.
                "billing_max_task_queue_activities_per_second": None,
            }
        )
        with output_to(workdir / "temporal.log"):  # the server's banner and log lines
            env = await WorkflowEnvironment.start_local(
                data_converter=encrypted_data_converter(KeyRing.from_settings(settings)),
                dev_server_existing_path=installed_binary("temporal"),
                search_attributes=list(visibility.ALL_KEYS),
                port=port,
                ui=False,
                dev_server_extra_args=["--metrics-port", str(metrics_port)],
            )
        async with AsyncExitStack() as stack:
            stack.push_async_callback(env.shutdown)
            state: SandboxState | None = None
            calls: VendorCalls | None = None
            sandbox_process: psutil.Process | None = None
            sandbox_thread: int | None = None
            if sandbox == "thread":
                # The subscriber knows the secrets events are signed with (as `revsync
                # sandbox` learns them from REVSYNC_EVENT_SUBSCRIBERS in the process mode).
                secrets = {s.name: s.secret.get_secret_value() for s in settings.event_subscribers}
                state, calls = SandboxState(event_secrets=secrets), VendorCalls()
                server = ThreadedServer(CountingApp(create_sandbox(state), calls), sandbox_port)
                server.start()
                stack.callback(server.stop)
                sandbox_thread = server.thread.native_id
            else:
                child = ChildProcess(
                    revsync_command("sandbox"),
                    child_env(settings, workdir),
                    workdir,
                    workdir / "sandbox.log",
                )
                stack.callback(child.stop)
                await child.wait_healthy(sandbox_url)
                sandbox_process = child.process
            yield BenchStack(
                env=env,
                client=env.client,
                settings=settings,
                workdir=workdir,
                server=find_dev_server(port),
                sandbox_state=state,
                sandbox_process=sandbox_process,
                calls=calls,
                sandbox_thread_id=sandbox_thread,
                metrics_url=f"http://127.0.0.1:{metrics_port}/metrics",
            )


async def create_crm_quotes(
    settings: Settings, accounts: Sequence[str], concurrency: int = 16
) -> list[str]:
    """One accepted CPQ quote with its lines per account (as CPQ makes them before the
    webhook, :func:`revsync.demo.create_crm_quote`); their ids."""
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=30) as http:

        async def one(account_id: str) -> str:
            async with gate:
                return await create_crm_quote(http, settings, account_id)

        return list(await asyncio.gather(*(one(a) for a in accounts)))
