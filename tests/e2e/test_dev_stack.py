"""`revsync dev` as a user runs it: the real processes, the README's demo, Ctrl-C, restart.

Every port is a free one and the state lives in a temporary folder, so this runs beside a
developer's own `make dev`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from adapters.webhooks import cpq
from domain.contracts import TaskQueue
from revsync.codec import generate_key_entry
from revsync.devsecrets import DEV_STAFF_NAME, read_env_file
from revsync.devstack import busy_ports
from sandbox.quotes import quote_payload
from tests.e2e.stack import free_port

pytestmark = pytest.mark.e2e

REVSYNC = str(Path(sys.executable).parent / "revsync")
UP = "revsync dev stack is up"
QUEUES = ("orchestration", "crm", "billing", "erp")


def workdir(env: dict[str, str]) -> Path:
    """Run every command outside the repo, so no developer's `.env` or `.revsync/` applies."""
    return Path(env["REVSYNC_DATA_DIR"]).parent


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
            [REVSYNC, "dev"],
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            cwd=workdir(env),
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
        [REVSYNC, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=seconds,
        check=False,
        cwd=workdir(env),
    )


def test_make_dev_runs_the_demo_books_quotes_and_keeps_state_across_a_restart(
    dev_env: dict[str, str], tmp_path: Path, started: list[DevStack]
):
    first = DevStack(dev_env, tmp_path / "dev-1.log")
    started.append(first)
    first.wait_up()
    for name in ("temporal", "sandbox", "gateway", *(f"worker-{q}" for q in QUEUES)):
        assert f'"process": "{name}"' in first.output(), f"{name} not started"

    # First run: the local secrets were generated, kept private, and serve the CLI too.
    secrets_file = Path(dev_env["REVSYNC_DATA_DIR"]) / "dev-secrets.env"
    assert secrets_file.stat().st_mode & 0o077 == 0, "dev secrets readable by others"
    generated = read_env_file(secrets_file)
    assert {"REVSYNC_PAYLOAD_KEYS", "REVSYNC_CPQ_WEBHOOK_SECRET", "REVSYNC_OPERATOR_TOKEN"} <= set(
        generated
    )
    dev_env = dev_env | generated
    cli_output: list[str] = []

    demo = revsync(dev_env, "demo", "--quotes", "3", "--seed", "11", "--json", "--timeout", "90")
    cli_output += [demo.stdout, demo.stderr]
    assert demo.returncode == 0, f"exit {demo.returncode}: {demo.stderr}\n{demo.stdout}"
    rows = json.loads(demo.stdout)
    assert len(rows) == 3
    for row in rows:
        assert row["stage"] == "BOOKED", row
        assert row["workflow_id"] == f"q2c-{row['quote_id']}"
        assert row["erp_order_id"] and row["subscription_id"]
        assert row["crm_status"] == "Ordered"

    # An approval through the gateway's ops API: the identity is the token's, not an option.
    waiting = send_quote_needing_approval(dev_env)
    approve = revsync(dev_env, "approve", waiting, "--note", "ok for the pilot")
    cli_output += [approve.stdout, approve.stderr]
    assert approve.returncode == 0, approve.stderr
    assert f"approve recorded for quote {waiting} by {DEV_STAFF_NAME}" in approve.stdout
    again = revsync(dev_env, "approve", waiting)
    assert again.returncode == 1
    assert "refused: 409" in again.stderr
    cli_output += [again.stdout, again.stderr]

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
    audited = json.loads(revsync(dev_env, "status", waiting, "--json").stdout)
    (decision,) = audited["decisions"]
    assert (decision["actor"], decision["action"]) == (DEV_STAFF_NAME, "approve")
    assert decision["note"] == "ok for the pilot"
    unknown = revsync(dev_env, "status", "NO-SUCH-QUOTE")
    assert unknown.returncode == 1
    assert "no saga for quote NO-SUCH-QUOTE" in unknown.stderr
    assert second.interrupt() == 0

    # No secret reached any log line of any process, nor any CLI output.
    logs = first.output() + second.output() + "".join(cli_output)
    leaked = [name for name, value in secret_values(generated) if value in logs]
    assert leaked == [], f"secrets in the logs: {leaked}"


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive free ports."""
    for _ in range(50):
        base = free_port()
        if base + count > 65535:
            continue
        if not busy_ports([("metrics", "127.0.0.1", base + n) for n in range(count)]):
            return base
    raise AssertionError(f"no {count} consecutive free ports")


def test_make_dev_runs_prometheus_on_the_stacks_metrics_with_the_alert_rules(
    dev_env: dict[str, str], tmp_path: Path, started: list[DevStack]
):
    assert shutil.which("prometheus"), "prometheus is not installed: `apt-get install prometheus`"
    prometheus_port = free_port()
    env = dev_env | {
        "REVSYNC_METRICS_PORT": str(free_ports(8)),
        "REVSYNC_PROMETHEUS_PORT": str(prometheus_port),
    }
    stack = DevStack(env, tmp_path / "dev.log")
    started.append(stack)
    stack.wait_up()
    base = f"http://127.0.0.1:{prometheus_port}"
    assert f"prometheus      {base}" in stack.output()
    env |= read_env_file(Path(env["REVSYNC_DATA_DIR"]) / "dev-secrets.env")
    demo = revsync(env, "demo", "--quotes", "1", "--seed", "3", "--json", "--timeout", "90")
    assert demo.returncode == 0, demo.stderr

    def get(path: str, **params: str) -> dict[str, object]:
        answer = httpx.get(f"{base}{path}", params=params, timeout=10).json()
        assert isinstance(answer, dict) and answer["status"] == "success", answer
        data = answer["data"]
        assert isinstance(data, dict)
        return data

    groups = get("/api/v1/rules")["groups"]
    assert isinstance(groups, list)
    loaded = {rule["name"] for group in groups for rule in group["rules"]}
    assert {"RevsyncSlaBreached", "RevsyncWorkerQueueWithoutPollers"} <= loaded
    deadline = time.monotonic() + 60
    while True:
        targets = get("/api/v1/targets")["activeTargets"]
        assert isinstance(targets, list)
        up = {t["labels"]["job"] for t in targets if t["health"] == "up"}
        booked = get("/api/v1/query", query="revsync_quotes_booked_total")["result"]
        if booked and len(up) == 6:
            break
        assert time.monotonic() < deadline, (targets, booked)
        time.sleep(1)
    assert up == {"revsync-gateway"} | {f"revsync-worker-{q}" for q in TaskQueue.ALL}
    assert stack.interrupt() == 0


def test_without_prometheus_on_the_path_make_dev_says_how_to_get_it(
    dev_env: dict[str, str], tmp_path: Path, started: list[DevStack]
):
    path = [p for p in dev_env.get("PATH", "").split(os.pathsep) if p]
    hidden = [p for p in path if not (Path(p) / "prometheus").exists()]
    env = dev_env | {"REVSYNC_METRICS_PORT": str(free_ports(8)), "PATH": os.pathsep.join(hidden)}
    stack = DevStack(env, tmp_path / "dev.log")
    started.append(stack)
    stack.wait_up()
    assert "prometheus      off: no `prometheus` on the PATH" in stack.output()
    assert "apt-get install prometheus" in stack.output()
    assert stack.interrupt() == 0


def secret_values(generated: dict[str, str]) -> list[tuple[str, str]]:
    """Each secret value of the generated settings (each key of the key ring too)."""
    found = []
    for name, value in generated.items():
        if name == "REVSYNC_OPERATOR_TOKENS":
            continue  # digests only: public by design
        if name == "REVSYNC_EVENT_SUBSCRIBERS":  # JSON: names and URLs are not secret
            found += [(name, entry["secret"]) for entry in json.loads(value)]
            continue
        for part in value.split(","):
            found += [(name, part), (name, part.partition(":")[2])]
    return [(name, value) for name, value in found if len(value) >= 8]


def send_quote_needing_approval(env: dict[str, str]) -> str:
    """POST a signed quote with a 30% discount (needs a sales manager); returns its id."""
    gateway = f"http://127.0.0.1:{env['REVSYNC_GATEWAY_PORT']}"
    sandbox = f"http://127.0.0.1:{env['REVSYNC_SANDBOX_PORT']}"
    with httpx.Client(timeout=30) as http:
        created = http.post(
            f"{sandbox}/salesforce/services/data/v61.0/sobjects/SBQQ__Quote__c",
            headers={"Authorization": "Bearer sandbox-salesforce-token"},
            json={"SBQQ__Account__c": "0015e00000AcmeUS1", "SBQQ__Status__c": "Accepted"},
        )
        created.raise_for_status()
        payload = quote_payload(created.json()["id"], account_id="0015e00000AcmeUS1")
        payload["lines"][0]["discount_percent"] = "30"
        body = json.dumps(payload).encode()
        secret = env["REVSYNC_CPQ_WEBHOOK_SECRET"].split(",")[0]
        answer = http.post(
            f"{gateway}/webhooks/cpq/quote-accepted",
            content=body,
            headers={
                "content-type": "application/json",
                cpq.SIGNATURE_HEADER: cpq.sign(secret, body),
            },
        )
        assert answer.status_code == 202, answer.text
    quote_id = str(payload["quote_id"])
    deadline = time.monotonic() + 60
    while True:
        status = revsync(env, "status", quote_id, "--json")
        if status.returncode == 0 and json.loads(status.stdout)["stage"] == "AWAITING_APPROVAL":
            return quote_id
        assert time.monotonic() < deadline, status.stdout + status.stderr
        time.sleep(0.5)


def test_a_process_without_payload_keys_refuses_to_start_naming_the_setting(
    dev_env: dict[str, str],
):
    for args in (("worker", "crm"), ("status", "Q-1")):
        result = revsync(dev_env, *args, seconds=60)
        assert result.returncode == 2, result.stderr
        assert "REVSYNC_PAYLOAD_KEYS is not set" in result.stderr


def test_status_without_a_server_says_it_cannot_reach_temporal(dev_env: dict[str, str]):
    env = dev_env | {"REVSYNC_PAYLOAD_KEYS": generate_key_entry("k1")}
    result = revsync(env, "status", "Q-1", seconds=60)
    assert result.returncode == 2
    assert f"cannot reach Temporal at {dev_env['REVSYNC_TEMPORAL_ADDRESS']}" in result.stderr
