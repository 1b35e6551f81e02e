"""Every registered adapter against its vendor's emulator, in process: one fresh sandbox a
test, reached through a transport that can lose an answer after the request was applied."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from revsync.settings import Settings
from sandbox.app import SandboxState, create_app
from tests.adapters.lossy import LossyTransport


@pytest.fixture
def state() -> SandboxState:
    return SandboxState()


@pytest.fixture
def lossy(state: SandboxState) -> LossyTransport:
    return LossyTransport(httpx.ASGITransport(app=create_app(state)))


@pytest.fixture
async def http(lossy: LossyTransport) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=lossy, base_url="http://sandbox") as client:
        yield client


@pytest.fixture
def settings() -> Settings:
    """The settings a worker would run with, every vendor URL at the in-process sandbox."""
    return Settings(sandbox_host="sandbox", sandbox_port=80)
