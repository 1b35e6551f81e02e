"""The Salesforce org's API request allocation, as the emulator meters it.

What Salesforce documents, and the emulator does:

- Every call to the REST API (``/services/data/...``) counts against the org's total API
  request allocation, counted over a **rolling 24 hours** for the whole org (every user and
  integration shares it); a composite call counts once, whatever its subrequests. Salesforce,
  *API Request Limits and Allocations*
  (https://developer.salesforce.com/docs/platform/salesforce-app-limits-cheatsheet/guide/salesforce-app-limits-platform-api.html);
  *Send Multiple Requests Using Composite*
  (https://developer.salesforce.com/docs/platform/api-rest/guide/resources-composite-composite-post.html).
- Once the last 24 hours' calls reach the allocation, **every** call is refused until usage
  over the preceding 24 hours drops back under it (Salesforce Help, *System Overview: API
  Usage*, https://help.salesforce.com/s/articleView?id=xcloud.setup_system_overview_api.htm).
  The refusal is HTTP 403 (*Status Codes and Error Responses*,
  https://developer.salesforce.com/docs/platform/api-rest/guide/errorcodes.md: 403 is a
  refused request) with ``errorCode`` ``REQUEST_LIMIT_EXCEEDED`` and the message
  ``TotalRequests Limit exceeded.`` (as orgs report it, e.g.
  https://github.com/SalesforceLabs/OrgCheck/issues/181), and **no** ``Retry-After``: nothing
  tells the client when enough usage will have aged out. A refused call is not counted.
- Each REST answer carries ``Sforce-Limit-Info: api-usage=<used>/<allocation>`` (*Limit Info
  Header*,
  https://developer.salesforce.com/docs/atlas.en-us.218.0.api_rest.meta/api_rest/headers_api_usage.htm).

The allocation is off (unlimited, no header) until set: ``POST
/_sandbox/salesforce/api-allocation`` with ``{"max": <calls or null>, "used": <calls>}`` sets
the org's allocation and the calls already made in the last 24 hours (as if made now), so a
test or a developer can spend the quota and, with ``"used": 0``, let it recover. The store's
``clock`` lets tests age calls out of the window.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from fastapi import Response

from sandbox.wire import json_response

WINDOW_SECONDS = 24 * 3600.0
LIMIT_CODE = "REQUEST_LIMIT_EXCEEDED"
LIMIT_MESSAGE = "TotalRequests Limit exceeded."
USAGE_HEADER = "Sforce-Limit-Info"


class ApiAllocation:
    """The org's total API request allocation over a rolling 24 hours (None: unlimited)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.max: int | None = None
        # (second, calls counted in it), oldest first: at most one entry per second.
        self._calls: deque[list[float]] = deque()
        self.refused = 0

    def set(self, maximum: int | None, used: int = 0) -> None:
        """The allocation, and ``used`` calls made just now (the rest of the window cleared)."""
        self.max = maximum
        self._calls.clear()
        if used > 0:
            self._calls.append([float(int(self.clock())), float(used)])

    def used(self) -> int:
        """Calls counted in the last 24 hours."""
        horizon = self.clock() - WINDOW_SECONDS
        while self._calls and self._calls[0][0] <= horizon:
            self._calls.popleft()
        return int(sum(count for _, count in self._calls))

    def spend(self) -> bool:
        """Count one API call; False (nothing counted) when the allocation is used up."""
        if self.max is None:
            return True
        if self.used() >= self.max:
            self.refused += 1
            return False
        second = float(int(self.clock()))
        if self._calls and self._calls[-1][0] == second:
            self._calls[-1][1] += 1
        else:
            self._calls.append([second, 1.0])
        return True

    def usage_header(self) -> dict[str, str]:
        """``Sforce-Limit-Info`` for an answer (nothing while the allocation is off)."""
        if self.max is None:
            return {}
        return {USAGE_HEADER: f"api-usage={self.used()}/{self.max}"}

    def refusal(self) -> Response:
        """The answer to a call past the allocation: 403 ``REQUEST_LIMIT_EXCEEDED``, no
        ``Retry-After``."""
        body = [{"message": LIMIT_MESSAGE, "errorCode": LIMIT_CODE, "fields": []}]
        return json_response(body, 403, self.usage_header())

    def snapshot(self) -> dict[str, int | None]:
        return {"max": self.max, "used": self.used(), "refused": self.refused}
