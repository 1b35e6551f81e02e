"""A transport that delivers a request to the sandbox and then loses the answer.

That is the unknown outcome at its purest: the vendor applied the change, the caller sees a
read timeout after sending. ``VendorHttp`` turns it into ``UnknownOutcomeError`` for writes
(and a transient error for reads); the keyed retry must then find what the first attempt made.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx


@dataclass
class _Loss:
    method: str
    path_suffix: str
    times: int


@dataclass
class LossyTransport(httpx.AsyncBaseTransport):
    inner: httpx.AsyncBaseTransport
    _losses: list[_Loss] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)

    def lose(self, method: str, path_suffix: str, times: int = 1) -> None:
        """Lose the answer of the next ``times`` requests ``method`` to a path ending in
        ``path_suffix`` (after the request was applied)."""
        self._losses.append(_Loss(method.upper(), path_suffix, times))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        for loss in self._losses:
            if request.method == loss.method and request.url.path.endswith(loss.path_suffix):
                await response.aread()
                loss.times -= 1
                if loss.times == 0:
                    self._losses.remove(loss)
                self.lost.append(f"{request.method} {request.url.path}")
                raise httpx.ReadTimeout(
                    "answer lost after the request was applied", request=request
                )
        return response
