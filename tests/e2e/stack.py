"""The whole stack in one test process, on a real Temporal dev server: the sandbox served
over HTTP on a free port, the real workers for every queue, the gateway app."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import httpx
import uvicorn
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from domain.contracts import TaskQueue
from revsync.gateway.app import create_app as create_gateway
from revsync.settings import Settings
from sandbox.app import SandboxState
from sandbox.app import create_app as create_sandbox
from tests.conftest import installed_binary
from workers.build import build_worker, new_http_client
from workflows import visibility


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SandboxServer:
    """The sandbox ASGI app served by uvicorn in a background thread."""

    def __init__(self) -> None:
        self.state = SandboxState()
        self.port = free_port()
        config = uvicorn.Config(
            create_sandbox(self.state), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("sandbox did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@dataclass
class Stack:
    env: WorkflowEnvironment
    client: Client
    settings: Settings
    sandbox: SandboxServer
    gateway: httpx.AsyncClient
    ui_url: str


def stack_settings(sandbox_url: str, temporal_address: str) -> Settings:
    return Settings(
        temporal_address=temporal_address,
        salesforce_base_url=f"{sandbox_url}/salesforce",
        stripe_base_url=f"{sandbox_url}/stripe",
        netsuite_base_url=f"{sandbox_url}/netsuite",
        cpq_webhook_secret="whsec_e2e",
        http_timeout_seconds=5,
    )


@asynccontextmanager
async def running_stack() -> AsyncIterator[Stack]:
    ui_port = free_port()
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=installed_binary("temporal"),
        search_attributes=list(visibility.ALL_KEYS),
        ui=True,
        ui_port=ui_port,
        dev_server_extra_args=["--ui-disable-news-fetch"],
    )
    sandbox = SandboxServer()
    sandbox.start()
    address = env.client.service_client.config.target_host
    settings = stack_settings(sandbox.url, address)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(env.shutdown)
        stack.callback(sandbox.stop)
        http = await stack.enter_async_context(new_http_client(settings))
        for queue in TaskQueue.ALL:
            worker = build_worker(queue, env.client, settings, http)
            await stack.enter_async_context(worker)
        gateway_app = create_gateway(settings, env.client)
        await stack.enter_async_context(gateway_app.router.lifespan_context(gateway_app))
        gateway = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway_app), base_url="http://gw")
        )
        yield Stack(
            env=env,
            client=env.client,
            settings=settings,
            sandbox=sandbox,
            gateway=gateway,
            ui_url=f"http://127.0.0.1:{ui_port}",
        )
        await asyncio.sleep(0)
