"""A circuit breaker per vendor, on the single HTTP path (:class:`adapters.http.VendorHttp`).

When a vendor keeps failing, the worker stops sending it requests for a while instead of
spending every activity's retry budget on a dead API. Calls made while the circuit is open
fail fast with a :class:`~adapters.errors.TransientError` (code ``CIRCUIT_OPEN``) whose
``retry_after`` is the time until the breaker lets a probe through, so
:mod:`activities.classify` schedules the activity's next retry after that point.

States:

- **closed** — calls go through. ``failure_threshold`` *consecutive* failures (no success in
  between), the oldest of them at most ``window_seconds`` old, open the circuit. A success
  resets the count; failures older than the window fall out of it.
- **open** — calls fail fast without touching the network, for the open period
  (``open_seconds`` at first).
- **half-open** — once the open period has passed, exactly one call at a time goes through
  as a probe; other callers fail fast while it is in flight. A probe success closes the
  circuit (and resets the open period to ``open_seconds``); a probe failure re-opens it with
  the open period doubled, capped at ``max_open_seconds``.

What counts:

- failure: :class:`TransientError` (5xx, connect errors), :class:`UnknownOutcomeError`
  (a timeout after the request was sent) and a bare :class:`VendorError` of no known kind
  (retried as transient by :mod:`activities.classify`, so counted like one);
- success: no error, or :class:`RejectedError` / :class:`NotFoundError` — the vendor is up and
  answered;
- neither: a throttled answer, and anything else (cancellation, programming errors). It
  frees a probe slot so the next caller can probe, but changes no state. Throttling is the
  vendor asking to slow down, not being down: its ``Retry-After`` (or, for a spent daily
  quota, a long backoff) already sets the activity's next retry (:mod:`activities.classify`),
  and counting it would let sustained throttling open the circuit and freeze a queue for up
  to ``max_open_seconds``.

Whether an answer is throttling is decided once, by the vendor's adapter, and carried on the
error as :attr:`TransientError.throttle <adapters.errors.TransientError>` (a 429; Salesforce's
403 ``REQUEST_LIMIT_EXCEEDED``; NetSuite's ``CONCURRENCY_LIMIT_EXCEEDED`` /
``SSS_REQUEST_LIMIT_EXCEEDED``; HubSpot's ``TEN_SECONDLY_ROLLING`` and ``DAILY``; Dataverse's
service protection codes; Zuora's request-limit category 70 and ``REQUEST_EXCEEDED_*``;
Stripe's ``rate_limit``): the breaker reads it (:func:`is_throttled`) and keeps no list of
statuses or codes of its own. A failure a vendor reports inside an HTTP 200 (Zuora's
``"success": false``, a Salesforce composite's subrequest) is read inside the guarded call
(``VendorHttp.request(check=...)``), so it counts as what it is, like any error status.

An outcome of a call admitted before the last state change (e.g. a slow request started while
closed that finishes after the circuit opened) is ignored: it says nothing about the vendor
as the breaker sees it now.

The API is one async context manager::

    async with breaker.call("create_order"):
        response = await client.post(...)

Entering raises the fail-fast error when the circuit is open; leaving reports the outcome
(the exception that escapes the block, or none).

Every state change logs one ``revsync.breaker`` line and counts
``revsync_circuit_breaker_transitions``; the observable gauge
``revsync_circuit_breaker_state`` reports every live breaker (0 closed, 1 half-open, 2 open).
The open → half-open change happens when the first call after the open period arrives.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType

import structlog
from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Meter, Observation

from adapters.errors import RejectedError, TransientError, UnknownOutcomeError, VendorError

CIRCUIT_OPEN = "CIRCUIT_OPEN"


class BreakerState(StrEnum):
    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"


# Values of the state gauge.
STATE_VALUES: dict[BreakerState, int] = {
    BreakerState.CLOSED: 0,
    BreakerState.HALF_OPEN: 1,
    BreakerState.OPEN: 2,
}

# Every live breaker, for the state gauge. Weak: a breaker disappears with its adapter.
_registry: weakref.WeakSet[CircuitBreaker] = weakref.WeakSet()
_registry_lock = threading.Lock()


class BreakerMetrics:
    """The breaker instruments on one OpenTelemetry meter.

    The module-level default uses ``metrics.get_meter("revsync")``, a no-op until a
    MeterProvider is configured. Tests pass their own, built from a local provider.
    """

    def __init__(self, meter: Meter) -> None:
        self.transitions = meter.create_counter(
            "revsync_circuit_breaker_transitions",
            unit="1",
            description="Circuit breaker state changes, by vendor and new state.",
        )
        self.state = meter.create_observable_gauge(
            "revsync_circuit_breaker_state",
            callbacks=[self._observe],
            unit="1",
            description="Circuit breaker state per vendor: 0 closed, 1 half-open, 2 open.",
        )

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        with _registry_lock:
            breakers = [breaker for breaker in _registry if breaker.metrics is self]
        return [
            Observation(STATE_VALUES[breaker.state], {"vendor": breaker.vendor})
            for breaker in breakers
        ]


_default_metrics: BreakerMetrics | None = None


def default_metrics() -> BreakerMetrics:
    """The process-wide instruments on the global meter ``revsync`` (created once)."""
    global _default_metrics
    if _default_metrics is None:
        _default_metrics = BreakerMetrics(metrics.get_meter("revsync"))
    return _default_metrics


@dataclass(frozen=True)
class _Permit:
    """Leave to make one call, issued in one generation (between two state changes)."""

    generation: int
    probe: bool


class CircuitBreaker:
    """The circuit breaker for one vendor (see the module docstring for the rules)."""

    def __init__(
        self,
        vendor: str,
        *,
        failure_threshold: int = 5,
        window_seconds: float = 30.0,
        open_seconds: float = 30.0,
        max_open_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        metrics: BreakerMetrics | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if window_seconds <= 0 or open_seconds <= 0:
            raise ValueError("window_seconds and open_seconds must be positive")
        if max_open_seconds < open_seconds:
            raise ValueError("max_open_seconds must be at least open_seconds")
        self.vendor = vendor
        self.failure_threshold = failure_threshold
        self.window_seconds = window_seconds
        self.open_seconds = open_seconds
        self.max_open_seconds = max_open_seconds
        self.metrics = metrics if metrics is not None else default_metrics()
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._generation = 0
        # Times of the current run of consecutive failures that are still inside the window.
        self._recent_failures: deque[float] = deque()
        # Consecutive failures since the last success, probe failures included (for humans).
        self._failures = 0
        self._open_period = open_seconds
        self._opened_at = 0.0
        self._probe_in_flight = False
        with _registry_lock:
            _registry.add(self)

    @property
    def state(self) -> BreakerState:
        """The state as callers see it now: open turns half-open once its period is over."""
        with self._lock:
            if self._state is BreakerState.OPEN and self._probe_due():
                return BreakerState.HALF_OPEN
            return self._state

    @property
    def open_period(self) -> float:
        """How long the circuit stays open the next (or current) time it opens, in seconds."""
        return self._open_period

    def call(self, operation: str) -> _BreakerCall:
        """Guard one vendor call: ``async with breaker.call("get_account"): ...``."""
        return _BreakerCall(self, operation)

    # -- state machine ------------------------------------------------------------------

    def _probe_due(self) -> bool:
        return self._clock() >= self._opened_at + self._open_period

    def _admit(self, operation: str) -> _Permit:
        """Leave to call the vendor, or the fail-fast error when the circuit is open."""
        with self._lock:
            if self._state is BreakerState.CLOSED:
                return _Permit(self._generation, probe=False)
            if self._state is BreakerState.OPEN:
                remaining = self._opened_at + self._open_period - self._clock()
                if remaining > 0:
                    raise self._open_error(
                        operation, f"next probe in {remaining:.1f}s", retry_after=remaining
                    )
                self._transition(BreakerState.HALF_OPEN)
            if self._probe_in_flight:
                # No retry_after: the probe answers within one request timeout, so the
                # activity's own backoff is the right wait.
                raise self._open_error(operation, "a probe is in flight", retry_after=None)
            self._probe_in_flight = True
            return _Permit(self._generation, probe=True)

    def _record(self, permit: _Permit, error: BaseException | None) -> None:
        """Report how the call admitted by ``permit`` ended."""
        outcome = _outcome(error)
        with self._lock:
            if permit.generation != self._generation:
                return  # admitted before the last state change: stale news
            if permit.probe:
                self._probe_in_flight = False
                if outcome is True:
                    self._failures = 0
                    self._open_period = self.open_seconds
                    self._transition(BreakerState.CLOSED)
                elif outcome is False:
                    self._failures += 1
                    self._open_period = min(self._open_period * 2, self.max_open_seconds)
                    self._open()
                return
            if outcome is True:
                self._failures = 0
                self._recent_failures.clear()
            elif outcome is False:
                now = self._clock()
                self._failures += 1
                self._recent_failures.append(now)
                while self._recent_failures[0] < now - self.window_seconds:
                    self._recent_failures.popleft()
                if len(self._recent_failures) >= self.failure_threshold:
                    self._open()

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._recent_failures.clear()
        self._transition(BreakerState.OPEN)

    def _transition(self, to: BreakerState) -> None:
        previous, self._state = self._state, to
        self._generation += 1
        # Looked up on every use, so structlog configuration (and capture) made later applies.
        logger = structlog.get_logger("revsync.breaker")
        log = logger.warning if to is BreakerState.OPEN else logger.info
        log(
            "circuit breaker state changed",
            vendor=self.vendor,
            **{"from": previous.value, "to": to.value},
            failures=self._failures,
            open_seconds=self._open_period,
        )
        self.metrics.transitions.add(1, {"vendor": self.vendor, "to_state": to.value})

    def _open_error(self, operation: str, detail: str, retry_after: float | None) -> TransientError:
        return TransientError(
            self.vendor,
            operation,
            f"circuit open: {self.vendor} failed {self._failures} times; {detail}",
            code=CIRCUIT_OPEN,
            retry_after=retry_after,
        )


def is_throttled(error: BaseException | None) -> bool:
    """Whether ``error`` is the vendor throttling revsync, as its adapter classified it
    (:class:`~adapters.errors.Throttle`): a transient error carrying a throttle."""
    return isinstance(error, TransientError) and error.throttle is not None


def _outcome(error: BaseException | None) -> bool | None:
    """True: the vendor is up; False: it failed; None: the call says nothing about it."""
    if error is None or isinstance(error, RejectedError):
        return True
    if is_throttled(error):
        return None  # asked to slow down: Retry-After paces the retry, the breaker stays out
    if isinstance(error, TransientError | UnknownOutcomeError):
        return False
    if isinstance(error, VendorError):
        return False  # of no known kind: retried as transient, so counted as one
    return None


class _BreakerCall:
    """``async with breaker.call(operation)``: admit on entry, record the outcome on exit."""

    def __init__(self, breaker: CircuitBreaker, operation: str) -> None:
        self._breaker = breaker
        self._operation = operation
        self._permit: _Permit | None = None

    async def __aenter__(self) -> None:
        self._permit = self._breaker._admit(self._operation)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._permit is not None:
            self._breaker._record(self._permit, exc)
            self._permit = None
