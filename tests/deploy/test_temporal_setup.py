"""`revsync temporal setup`, the compose stack's one-shot setup service, against a real dev
server: it creates a missing namespace, registers every search attribute, and a second run
changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.testing import WorkflowEnvironment

from tests.conftest import installed_binary
from workflows import visibility

REVSYNC = str(Path(sys.executable).parent / "revsync")
NAMESPACE = "revsync-production"


@pytest.fixture(scope="module")
async def server() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=installed_binary("temporal"),
        dev_server_extra_args=["--headless"],
    )
    try:
        yield env
    finally:
        await env.shutdown()


def setup_command(address: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVSYNC_")}
    env |= {"REVSYNC_TEMPORAL_ADDRESS": address, "REVSYNC_TEMPORAL_NAMESPACE": NAMESPACE}
    # No REVSYNC_PAYLOAD_KEYS: setting up the cluster carries no payloads and needs none.
    return subprocess.run(
        [REVSYNC, "temporal", "setup", "--retention-days", "7", "--wait", "60"],
        env=env,
        cwd=cwd,  # outside the repo: no developer's .env applies
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_setup_creates_the_namespace_and_search_attributes_once(
    server: WorkflowEnvironment, tmp_path: Path
):
    address = server.client.service_client.config.target_host
    first = setup_command(address, tmp_path)
    assert first.returncode == 0, first.stderr
    names = sorted(key.name for key in visibility.ALL_KEYS)
    assert f"namespace {NAMESPACE}: created" in first.stdout
    assert f"search attributes added: {', '.join(names)}" in first.stdout

    described = await server.client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=NAMESPACE)
    )
    retention = described.config.workflow_execution_retention_ttl.ToTimedelta()
    assert retention.days == 7
    listed = await server.client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=NAMESPACE)
    )
    for key in visibility.ALL_KEYS:
        assert listed.custom_attributes[key.name] == IndexedValueType.ValueType(
            key.indexed_value_type
        )

    again = setup_command(address, tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"namespace {NAMESPACE}: exists" in again.stdout
    assert "search attributes added: none" in again.stdout


def test_setup_fails_clearly_when_temporal_never_answers(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVSYNC_")}
    env["REVSYNC_TEMPORAL_ADDRESS"] = "127.0.0.1:9"  # discard port: nothing listens
    result = subprocess.run(
        [REVSYNC, "temporal", "setup", "--wait", "0"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "cannot set up Temporal at 127.0.0.1:9" in result.stderr
