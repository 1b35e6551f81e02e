from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.e2e.stack import Stack, running_stack


@pytest.fixture(scope="session")
async def stack() -> AsyncIterator[Stack]:
    async with running_stack() as running:
        yield running
