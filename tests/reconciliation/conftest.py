"""Listings run unchanged against the vendor sandbox, in process: one fresh sandbox a test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

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
