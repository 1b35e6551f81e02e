"""A fresh in-process sandbox per test, and settings whose vendors point at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from revsync.settings import Settings
from sandbox.app import SandboxState, create_app


@pytest.fixture
def state() -> SandboxState:
    return SandboxState()


@pytest.fixture
async def http(state: SandboxState) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        yield client


@pytest.fixture
def settings() -> Settings:
    return Settings(sandbox_host="sandbox", sandbox_port=80)
