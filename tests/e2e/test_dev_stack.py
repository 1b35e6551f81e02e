"""`revsync dev` as a user runs it: the real processes, the README's demo, Ctrl-C, restart.

Every port is a free one and the state lives in a temporary folder, so this runs beside a
developer's own `make dev`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.stack import free_port

pytestmark = pytest.mark.e2e

REVSYNC = str(Path(sys.executable).parent / "revsync")
UP = "revsync dev stack is up"
QUEUES = ("orchestration", "crm", "billing", "erp")


@pytest.fixture
def dev_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVSYNC_")}
    return env | {
        "REVSYNC_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "REVSYNC_TEMPORAL_UI_PORT": str(free_port()),
        "REVSYNC_GATEWAY_PORT": str(free_port()),
        "REVSYNC_SANDBOX_PORT": str(free_port()),
        "REVSYNC_DATA_DIR": str(tmp_path / "state"),
        "REVSYNC_LOG_FORMAT": "json",
    }


class DevStack:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = log.open("wb")
        self.process = subprocess.Popen(
            [REVSYNC, "dev"], env=env, stdout=self._out, stderr=subprocess.STDOUT
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_up(self, seconds: float = 120) -> None:
        deadline = time.monotonic() + seconds
        while UP not in self.output():
            if self.process.poll() is not None:
                pytest.fail(f"revsync dev exited {self.process.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                pytest.fail(f"revsync dev not up after {seconds}s:\n{self.output()}")
            time.sleep(0.3)

    def interrupt(self, seconds: float = 60) -> int:
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(seconds)
        finally:
            self._out.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._out.close()


@pytest.fixture
def started() -> Iterator[list[DevStack]]:
    stacks: list[DevStack] = []
    yield stacks
    for stack in stacks:
        stack.kill()


def revsync(
    env: dict[str, str], *args: str, seconds: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [REVSYNC, *args], env=env, capture_output=True, text=True, timeout=seconds, check=False
    )


def test_make_dev_runs_the_demo_books_quotes_and_keeps_state_across_a_restart(
    dev_env: dict[str, str], tmp_path: Path, started: list[DevStack]
):
    first = DevStack(dev_env, tmp_path / "dev-1.log")
    started.append(first)
    first.wait_up()
    for name in ("temporal", "sandbox", "gateway", *(f"worker-{q}" for q in QUEUES)):
        assert f'"process": "{name}"' in first.output(), f"{name} not started"

    demo = revsync(dev_env, "demo", "--quotes", "3", "--seed", "11", "--json", "--timeout", "90")
    assert demo.returncode == 0, demo.stdout + demo.stderr
    rows = json.loads(demo.stdout)
    assert len(rows) == 3
    for row in rows:
        assert row["stage"] == "BOOKED", row
        assert row["workflow_id"] == f"q2c-{row['quote_id']}"
        assert row["erp_order_id"] and row["subscription_id"]
        assert row["crm_status"] == "Ordered"

    # A second stack on the same ports says which port is taken and exits at once.
    clash = revsync(dev_env, "dev", seconds=30)
    assert clash.returncode == 2
    assert "REVSYNC_TEMPORAL_ADDRESS" in clash.stderr
    assert "REVSYNC_GATEWAY_PORT" in clash.stderr

    assert first.interrupt() == 0
    assert "dev stack stopped" in first.output()

    # The saga outlives the stack: after a restart on the same state, status still answers.
    second = DevStack(dev_env, tmp_path / "dev-2.log")
    started.append(second)
    second.wait_up()
    status = revsync(dev_env, "status", rows[0]["quote_id"], "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["stage"] == "BOOKED"
    unknown = revsync(dev_env, "status", "NO-SUCH-QUOTE")
    assert unknown.returncode == 1
    assert "no saga for quote NO-SUCH-QUOTE" in unknown.stderr
    assert second.interrupt() == 0


def test_status_without_a_server_says_it_cannot_reach_temporal(dev_env: dict[str, str]):
    result = revsync(dev_env, "status", "Q-1", seconds=60)
    assert result.returncode == 2
    assert f"cannot reach Temporal at {dev_env['REVSYNC_TEMPORAL_ADDRESS']}" in result.stderr
