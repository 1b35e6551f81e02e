"""An httpx transport that records every exchange an adapter has with an emulator, so the
oracle tests check the requests the adapter really sends and the answers it really reads
against a vendor's own library."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Exchange:
    method: str
    path: str
    query: str
    request: bytes
    status: int
    response: bytes
    headers: dict[str, str]

    def request_json(self) -> Any:
        return json.loads(self.request) if self.request else None

    def response_json(self) -> Any:
        return json.loads(self.response) if self.response else None

    def matches(self, method: str, pattern: str) -> bool:
        return self.method == method and re.fullmatch(pattern, self.path) is not None


class Recording(httpx.AsyncBaseTransport):
    """Passes each request to ``inner`` and keeps the request and the answer."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.exchanges: list[Exchange] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        sent = await request.aread()
        answer = await self.inner.handle_async_request(request)
        content = await answer.aread()
        self.exchanges.append(
            Exchange(
                request.method,
                request.url.path,
                request.url.query.decode(),
                sent,
                answer.status_code,
                content,
                {k.lower(): v for k, v in request.headers.items()},
            )
        )
        return httpx.Response(
            answer.status_code, headers=answer.headers, content=content, request=request
        )

    def of(self, method: str, pattern: str) -> list[Exchange]:
        """The exchanges of ``method`` on paths matching ``pattern`` (a full-match regex)."""
        return [e for e in self.exchanges if e.matches(method, pattern)]
