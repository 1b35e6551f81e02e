"""The whole stack in one test process, on a real Temporal dev server: the sandbox served
over HTTP on a free port, the real workers for every queue, the gateway app."""

from __future__ import annotations

import asyncio
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import uvicorn
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.testing import WorkflowEnvironment

from domain.contracts import TaskQueue
from domain.event_contracts import EventSubscriber
from revsync.codec import KeyRing, encrypted_data_converter
from revsync.gateway.app import create_app as create_gateway
from revsync.settings import Settings
from sandbox.app import SandboxState
from sandbox.app import create_app as create_sandbox
from tests.conftest import installed_binary
from tests.staff import secret_settings, token_of
from workers.build import build_worker, new_http_client
from workflows import visibility

# Business events go to the sandbox's subscriber, as `revsync dev` configures them.
EVENT_SUBSCRIBER = "sandbox"
EVENT_SECRET = "whsec_" + secrets.token_hex(16)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ThreadedServer:
    """An ASGI app served by uvicorn on a free port in a background thread (its own loop)."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.port = port or free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class SandboxServer(ThreadedServer):
    """The vendor sandbox, with its state reachable from the test; ``wrap`` puts an ASGI
    middleware around it (tests/shadow/audit.py counts the requests it receives)."""

    def __init__(self, wrap: Callable[[Any], Any] | None = None) -> None:
        self.state = SandboxState(event_secrets={EVENT_SUBSCRIBER: EVENT_SECRET})
        app = create_sandbox(self.state)
        super().__init__(app if wrap is None else wrap(app))


@dataclass
class Stack:
    env: WorkflowEnvironment
    client: Client
    settings: Settings
    sandbox: SandboxServer
    gateway: httpx.AsyncClient
    ui_url: str
    gateway_url: str


def stack_settings(sandbox_url: str, temporal_address: str) -> Settings:
    return Settings(
        temporal_address=temporal_address,
        # Every vendor's base URL follows the sandbox (Settings does it for unset ones).
        sandbox_host=urlsplit(sandbox_url).hostname or "127.0.0.1",
        sandbox_port=urlsplit(sandbox_url).port or 80,
        http_timeout_seconds=5,
        # Each stack its own reconciliation report store (marks included).
        reconcile_report_dir=Path(tempfile.mkdtemp(prefix="revsync-reports-")),
        event_subscribers=[
            EventSubscriber(
                name=EVENT_SUBSCRIBER,
                url=f"{sandbox_url}/events/{EVENT_SUBSCRIBER}",
                secret=SecretStr(EVENT_SECRET),
            )
        ],
        **secret_settings(),
    )


@asynccontextmanager
async def running_stack(
    runtime: Runtime | None = None,
    vendors: Mapping[str, object] | None = None,
    *,
    settings_update: Mapping[str, Any] | None = None,
    sandbox_wrap: Callable[[Any], Any] | None = None,
    queues: Sequence[str] = TaskQueue.ALL,
) -> AsyncIterator[Stack]:
    """The stack; with ``runtime`` (metrics), every worker and the gateway connect through
    it, as each process does in production through its own. ``vendors`` chooses the vendor
    of some ports (``{"crm": "hubspot"}``), as ``REVSYNC_CRM`` and the others do (and may set
    a vendor's other settings, e.g. ``hubspot_app_id``); ``settings_update`` sets other
    settings (``{"stripe_mode": "shadow"}``); ``queues`` names the queues whose workers it
    runs (a test may run others itself, to kill them)."""
    ui_port, gateway_port = free_port(), free_port()
    sandbox = SandboxServer(sandbox_wrap)
    settings = stack_settings(sandbox.url, "pending").model_copy(
        update={
            "gateway_port": gateway_port,
            "temporal_ui_port": ui_port,
            **(vendors or {}),
            **(settings_update or {}),
        }
    )
    # The Web UI decrypts payloads through the gateway's codec server, as a payload reader.
    codec = f"{settings.gateway_url}/codec/t/{token_of('Rita Reader')}"
    env = await WorkflowEnvironment.start_local(
        data_converter=encrypted_data_converter(KeyRing.from_settings(settings)),
        dev_server_existing_path=installed_binary("temporal"),
        search_attributes=list(visibility.ALL_KEYS),
        ui=True,
        ui_port=ui_port,
        dev_server_extra_args=["--ui-disable-news-fetch", "--ui-codec-endpoint", codec],
        runtime=runtime,
    )
    sandbox.start()
    settings = settings.model_copy(
        update={"temporal_address": env.client.service_client.config.target_host}
    )
    async with AsyncExitStack() as stack:
        stack.push_async_callback(env.shutdown)
        stack.callback(sandbox.stop)
        http = await stack.enter_async_context(new_http_client(settings))
        for queue in queues:
            worker = build_worker(queue, env.client, settings, http)
            await stack.enter_async_context(worker)
        # The gateway runs as it does in production: its own server, its own client.
        gateway_server = ThreadedServer(create_gateway(settings, runtime=runtime), gateway_port)
        gateway_server.start()
        stack.callback(gateway_server.stop)
        gateway = await stack.enter_async_context(
            httpx.AsyncClient(base_url=settings.gateway_url, timeout=30)
        )
        yield Stack(
            env=env,
            client=env.client,
            settings=settings,
            sandbox=sandbox,
            gateway=gateway,
            ui_url=f"http://127.0.0.1:{ui_port}",
            gateway_url=settings.gateway_url,
        )
        await asyncio.sleep(0)
