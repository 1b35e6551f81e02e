"""Which HTTP requests to a vendor's emulator are writes: the audit that proves shadow mode
sends none.

A request is a *write* when it can change the vendor system. Every ``POST``, ``PUT``,
``PATCH``, ``MERGE`` and ``DELETE`` (SOAP posts included: SAP's journal entry service) is
one, except the requests that only read, per vendor:

- every vendor: the OAuth token endpoints (Salesforce ``/services/oauth2/token``, NetSuite
  ``/services/rest/auth/oauth2/v1/token``, HubSpot ``/oauth/v1/token``, Zuora
  ``/oauth/token``, SAP ``/sap/bc/sec/oauth2/token``, Entra ID ``/oauth2/v2.0/token``):
  they mint a token, they change no record;
- Salesforce: a ``/composite`` whose subrequests are all ``GET`` (the CPQ trigger's read of
  quotes and lines);
- HubSpot: ``.../batch/read`` and ``.../search`` (reads HubSpot exposes as POST);
- NetSuite: ``/services/rest/query/v1/suiteql`` (SuiteQL queries);
- SAP: ``/API_SALES_ORDER_SIMULATION_SRV/A_SalesOrderSimulation`` (the validate-only Sales
  Order Simulation: nothing is saved);

``GET``, ``HEAD`` and ``OPTIONS`` never are. Paths under ``/_sandbox`` (the tests' controls)
and ``/events`` (the business-event subscriber, not a vendor) are not vendor requests at all.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import httpx

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TOKEN_PATHS = (
    "/services/oauth2/token",
    "/services/rest/auth/oauth2/v1/token",
    "/oauth/v1/token",
    "/oauth/token",
    "/sap/bc/sec/oauth2/token",
    "/oauth2/v2.0/token",
)
VENDORS = ("salesforce", "hubspot", "stripe", "zuora", "netsuite", "sap", "dynamics")
# A request carrying this header was made by the test itself (seeding), not by revsync.
EXEMPT = "x-audit-exempt"


def vendor_of(path: str) -> str | None:
    """The emulated vendor a sandbox path belongs to (None: a sandbox control, the event
    subscriber)."""
    first = path.lstrip("/").partition("/")[0]
    return first if first in VENDORS else None


def _all_gets(body: bytes) -> bool:
    try:
        parsed = json.loads(body or b"{}")
    except ValueError:
        return False
    subrequests = parsed.get("compositeRequest") if isinstance(parsed, dict) else None
    if not isinstance(subrequests, list) or not subrequests:
        return False
    return all(str(s.get("method", "")).upper() == "GET" for s in subrequests)


def is_write(method: str, path: str, body: bytes) -> bool:
    """Whether a request to a vendor's emulator can change the vendor system (see the
    module doc)."""
    method = method.upper()
    if method in READ_METHODS or vendor_of(path) is None:
        return False
    if path.endswith(TOKEN_PATHS):
        return False
    vendor = vendor_of(path)
    if vendor == "salesforce" and path.endswith("/composite"):
        return not _all_gets(body)
    if vendor == "hubspot" and (path.endswith("/batch/read") or path.endswith("/search")):
        return False
    if vendor == "sap" and path.endswith("/API_SALES_ORDER_SIMULATION_SRV/A_SalesOrderSimulation"):
        return False
    return not (vendor == "netsuite" and path.endswith("/suiteql"))


@dataclass
class WriteAudit:
    """Counts every request to the emulators, and the writes among them, per vendor."""

    requests: Counter[str] = field(default_factory=Counter)
    writes: Counter[str] = field(default_factory=Counter)
    seen: list[str] = field(default_factory=list)

    def note(self, method: str, path: str, body: bytes) -> None:
        vendor = vendor_of(path)
        if vendor is None:
            return
        self.requests[vendor] += 1
        if is_write(method, path, body):
            self.writes[vendor] += 1
            self.seen.append(f"{method} {path}")

    def reset(self) -> None:
        self.requests.clear()
        self.writes.clear()
        self.seen.clear()

    async def hook(self, request: httpx.Request) -> None:
        """An httpx request hook (in-process clients)."""
        if request.headers.get(EXEMPT):
            return
        self.note(request.method, request.url.path, await request.aread())

    def middleware(self, app: Any) -> Any:
        """An ASGI middleware around the sandbox app (the stack's HTTP server)."""
        audit = self

        async def wrapped(
            scope: MutableMapping[str, Any],
            receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
            send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
        ) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            headers = {k.decode().lower(): v for k, v in scope.get("headers", [])}
            chunks: list[bytes] = []
            more = True
            messages: list[MutableMapping[str, Any]] = []
            while more:
                message = await receive()
                messages.append(message)
                chunks.append(message.get("body", b""))
                more = bool(message.get("more_body"))
            if EXEMPT not in headers:
                audit.note(scope["method"], scope["path"], b"".join(chunks))

            async def replay() -> MutableMapping[str, Any]:
                if messages:
                    return messages.pop(0)
                return await receive()

            await app(scope, replay, send)

        return wrapped
