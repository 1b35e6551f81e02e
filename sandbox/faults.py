"""Fault injection shared by every vendor emulator.

A rule makes matching calls of one vendor (and optionally one operation) fail ``times``
times. ``phase="before"`` fails the call without applying it; ``phase="after"`` applies the
change first and then fails, which is how a client sees an unknown outcome (the request was
applied but the answer was lost). ``hang_ms`` holds the answer back, so a client with a
shorter timeout sees a timeout: with ``phase="after"``, "applied, but the caller never heard".
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from fastapi import Response
from pydantic import BaseModel, Field

Phase = Literal["before", "after"]
# Builds a vendor's own error response for an injected fault (status, code, message).
ErrorFactory = Callable[[int, str | None, str], Response]


@dataclass(frozen=True)
class Injection:
    """A fault decision: hold the answer back this long, then answer ``response`` (an
    injected error) or go on (None)."""

    hold_seconds: float
    response: Response | None


class FaultRule(BaseModel):
    vendor: str
    operation: str = Field(default="*", description="operation name, or * for every operation")
    status: int = Field(default=503, ge=400, le=599)
    times: int = Field(default=1, ge=1, le=1_000_000)
    phase: Phase = "before"
    code: str | None = Field(default=None, description="vendor error code to put in the body")
    message: str = "injected fault"
    retry_after: int | None = Field(default=None, ge=0)
    hang_ms: int = Field(default=0, ge=0, le=120_000)


class LatencyRule(BaseModel):
    vendor: str
    operation: str = "*"
    ms: int = Field(ge=0, le=60_000)


class FaultsRequest(BaseModel):
    """Body of ``POST /_sandbox/faults``: rules to add (and latencies to set)."""

    faults: list[FaultRule] = []
    latency: list[LatencyRule] = []
    clear: bool = Field(default=False, description="drop existing rules first")


class FaultInjector:
    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._latency: dict[tuple[str, str], int] = {}
        self.fired: list[dict[str, object]] = []

    def configure(self, request: FaultsRequest) -> None:
        if request.clear:
            self.clear()
        self._rules.extend(rule.model_copy() for rule in request.faults)
        for rule in request.latency:
            self._latency[(rule.vendor, rule.operation)] = rule.ms

    def clear(self) -> None:
        self._rules.clear()
        self._latency.clear()

    def pending(self) -> list[FaultRule]:
        return [rule.model_copy() for rule in self._rules]

    def _take(self, vendor: str, operation: str, phase: Phase) -> FaultRule | None:
        for rule in self._rules:
            if rule.vendor == vendor and rule.phase == phase and rule.operation in ("*", operation):
                rule.times -= 1
                if rule.times <= 0:
                    self._rules.remove(rule)
                self.fired.append(
                    {
                        "vendor": vendor,
                        "operation": operation,
                        "phase": phase,
                        "status": rule.status,
                    }
                )
                return rule
        return None

    def latency(self, vendor: str, operation: str) -> float:
        """The configured latency of this call, in seconds."""
        ms = self._latency.get((vendor, operation), self._latency.get((vendor, "*"), 0))
        return ms / 1000

    def decide(self, vendor: str, operation: str, phase: Phase, error: ErrorFactory) -> Injection:
        """What this call meets, without waiting: the seconds to hold its answer back
        (latency before the call, an injected fault's hang) and the injected error, if a
        rule fires. A caller that must not await mid-change (an all-or-none transaction)
        decides every step first and holds the answer once the change is over."""
        hold = self.latency(vendor, operation) if phase == "before" else 0.0
        rule = self._take(vendor, operation, phase)
        if rule is None:
            return Injection(hold, None)
        response = error(rule.status, rule.code, rule.message)
        if rule.retry_after is not None:
            response.headers["Retry-After"] = str(rule.retry_after)
        return Injection(hold + rule.hang_ms / 1000, response)

    async def check(
        self, vendor: str, operation: str, phase: Phase, error: ErrorFactory
    ) -> Response | None:
        """The injected error response for this call and phase, or None to go on."""
        injection = self.decide(vendor, operation, phase, error)
        if injection.hold_seconds:
            await asyncio.sleep(injection.hold_seconds)
        return injection.response


class VendorFaults:
    """The fault hooks one emulator calls around each operation::

    if (injected := await faults.before("create_customer")) is not None:
        return injected
    ...apply the change...
    if (injected := await faults.after("create_customer")) is not None:
        return injected
    """

    def __init__(self, injector: FaultInjector, vendor: str, error: ErrorFactory) -> None:
        self.injector = injector
        self.vendor = vendor
        self.error = error

    async def before(self, operation: str) -> Response | None:
        return await self.injector.check(self.vendor, operation, "before", self.error)

    async def after(self, operation: str) -> Response | None:
        return await self.injector.check(self.vendor, operation, "after", self.error)

    def decide_before(self, operation: str) -> Injection:
        return self.injector.decide(self.vendor, operation, "before", self.error)

    def decide_after(self, operation: str) -> Injection:
        return self.injector.decide(self.vendor, operation, "after", self.error)
