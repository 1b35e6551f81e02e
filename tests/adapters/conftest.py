"""Adapters run unchanged against the vendor sandbox, in process: one fresh sandbox a test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from sandbox.app import SandboxState, create_app


@pytest.fixture
def state() -> SandboxState:
    return SandboxState()


@pytest.fixture
async def http(state: SandboxState) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        yield client
