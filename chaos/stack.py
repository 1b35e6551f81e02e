"""``revsync dev`` as the chaos run's subject: a real subprocess on free ports, its state in a
temporary folder that is also its working directory (so no ``.env`` or ``.revsync/`` of the
caller applies, nor any ``REVSYNC_*`` variable of the caller's environment).

The stack logs JSON lines (``REVSYNC_LOG_FORMAT=json``); the supervisor's own lines are bare
JSON objects, its children's are prefixed with their name. Vendor calls time out after
``http_timeout_seconds``, so an injected hang longer than that is a timeout after sending.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import IO, Any

from revsync.devsecrets import FILE_NAME, read_env_file, with_secrets
from revsync.settings import Settings
from sandbox.app import DEFAULT_TOKENS

UP = "revsync dev stack is up"
# `revsync dev` exits 2 when a port it was given is taken (another process got it first).
PORT_TAKEN = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class StackFailed(Exception):
    """``revsync dev`` did not come up, or exited during the run."""


class DevStack:
    """One ``revsync dev --scale ...`` subprocess and what it writes."""

    def __init__(self, workdir: Path, scale: str, http_timeout_seconds: float) -> None:
        self.workdir = workdir
        self.scale = scale
        self.http_timeout_seconds = http_timeout_seconds
        self.log_path = workdir / "revsync-dev.log"
        self.process: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None
        self._ports: dict[str, int] = {}

    @property
    def data_dir(self) -> Path:
        return self.workdir / "state"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def env(self) -> dict[str, str]:
        ports = self._ports
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("REVSYNC_")}
        return inherited | {
            "REVSYNC_TEMPORAL_ADDRESS": f"127.0.0.1:{ports['temporal']}",
            "REVSYNC_TEMPORAL_UI_PORT": str(ports["ui"]),
            "REVSYNC_GATEWAY_PORT": str(ports["gateway"]),
            "REVSYNC_SANDBOX_PORT": str(ports["sandbox"]),
            "REVSYNC_DATA_DIR": str(self.data_dir),
            "REVSYNC_LOG_FORMAT": "json",
            "REVSYNC_HTTP_TIMEOUT_SECONDS": str(self.http_timeout_seconds),
            # Stopping at the end need not wait long for in-flight activities.
            "REVSYNC_WORKER_SHUTDOWN_GRACE_SECONDS": "2",
        }

    async def start(self, up_within: float = 120.0, attempts: int = 3) -> None:
        """Start the stack and return once it says it is up."""
        for attempt in range(1, attempts + 1):
            self._ports = {name: free_port() for name in ("temporal", "ui", "gateway", "sandbox")}
            self._log = self.log_path.open("ab")
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", "revsync.cli", "dev", "--scale", self.scale),
                env=self.env(),
                cwd=self.workdir,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=self._log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
            deadline = time.monotonic() + up_within
            while UP not in self.output():
                code = self.process.returncode
                if code == PORT_TAKEN and attempt < attempts:
                    break  # a free port was taken meanwhile: new ports, new try
                if code is not None:
                    raise StackFailed(f"revsync dev exited with code {code} before it was up")
                if time.monotonic() > deadline:
                    raise StackFailed(f"revsync dev not up after {up_within:.0f} s")
                await asyncio.sleep(0.3)
            else:
                return
            self._log.close()

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def events(self) -> list[dict[str, Any]]:
        """The supervisor's own JSON log lines, in order."""
        found = []
        for line in self.output().splitlines():
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    found.append(json.loads(line))
        return found

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.returncode

    def check_alive(self) -> None:
        code = self.exit_code()
        if code is not None:
            raise StackFailed(f"revsync dev exited with code {code} during the run")

    def settings(self) -> Settings:
        """Settings that reach this stack, with the secrets it generated."""
        host = "127.0.0.1"
        sandbox = f"http://{host}:{self._ports['sandbox']}"
        base = Settings(
            _env_file=None,
            temporal_address=f"{host}:{self._ports['temporal']}",
            temporal_namespace="default",
            temporal_tls=False,
            temporal_api_key=None,
            temporal_tls_ca_cert=None,
            temporal_tls_client_cert=None,
            temporal_tls_client_key=None,
            temporal_tls_server_name=None,
            data_dir=self.data_dir,
            gateway_host=host,
            gateway_port=self._ports["gateway"],
            sandbox_host=host,
            sandbox_port=self._ports["sandbox"],
            salesforce_base_url=f"{sandbox}/salesforce",
            salesforce_access_token=DEFAULT_TOKENS["salesforce"],
            stripe_base_url=f"{sandbox}/stripe",
            netsuite_base_url=f"{sandbox}/netsuite",
            http_timeout_seconds=self.http_timeout_seconds,
        )
        return with_secrets(base, read_env_file(self.data_dir / FILE_NAME))

    async def stop(self, within: float = 60.0) -> int | None:
        """Ctrl-C the stack and wait; SIGKILL it (its children follow) if it hangs."""
        process = self.process
        if process is None:
            return None
        try:
            if process.returncode is None:
                process.send_signal(signal.SIGINT)
                try:
                    await asyncio.wait_for(process.wait(), within)
                except TimeoutError:
                    process.kill()
            return await process.wait()
        finally:
            if self._log is not None:
                self._log.close()
