"""The one place where a vendor failure becomes a Temporal retry decision.

- transient        → retryable ``VendorTransient``, with the vendor's ``Retry-After`` as the
                     next retry delay
- transient, a spent daily quota (:class:`~adapters.errors.Throttle` ``quota``: Salesforce's
                     403 ``REQUEST_LIMIT_EXCEEDED`` TotalRequests, HubSpot's ``DAILY`` 429)
                   → retryable ``VendorTransient`` backing off for long: 5, 10, 20, then
                     every 40 minutes (:func:`quota_backoff`; or the vendor's own reset time
                     when it is later), its message saying so for the operator reading the
                     pending activity ("Salesforce daily API request limit exhausted; next
                     attempt in 5 minutes"), counted in ``revsync_vendor_quota_exhausted``
- unknown outcome  → retryable ``VendorUnknownOutcome``; the retried activity looks the record
                     up by its key before creating anything, so retrying is safe
- rejected         → non-retryable ``VendorRejected`` (the saga compensates)
- configuration    → non-retryable ``VendorMisconfigured``: the vendor refused revsync's
                     credentials (e.g. Stripe 401/403); the saga parks at once, compensating
                     nothing

The error's details carry ``vendor``, ``operation``, ``outcome``, ``status``, ``code`` and,
for a throttled call, ``throttle`` (``rate`` or ``quota``) and ``limit`` (its name): the
workflows read them to say why a step parked (:func:`workflows.kernel.step_failure`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from adapters.errors import (
    ConfigurationError,
    RejectedError,
    TransientError,
    UnknownOutcomeError,
    VendorError,
)
from domain.saga import FailureType
from revsync.metrics import VendorOutcome, record_quota_exhausted, record_vendor_call

# A spent daily quota: the first retry after this long, doubling up to QUOTA_BACKOFF_CAP.
QUOTA_BACKOFF = timedelta(minutes=5)
QUOTA_BACKOFF_CAP = timedelta(minutes=40)


def quota_backoff(attempt: int) -> timedelta:
    """How long attempt ``attempt`` (1 for the first) waits before the next one when a daily
    quota refused it: 5, 10, 20, then 40 minutes for every later attempt. Minutes, not the
    seconds of the usual backoff: a rolling 24-hour quota recovers slowly, and every refused
    call is another call counted against what little recovers."""
    doublings = min(max(attempt, 1) - 1, 8)
    backoff: timedelta = QUOTA_BACKOFF * (2**doublings)
    return min(backoff, QUOTA_BACKOFF_CAP)


def _details(error: VendorError) -> dict[str, Any]:
    details: dict[str, Any] = {
        "vendor": error.vendor,
        "operation": error.operation,
        "outcome": error.outcome,
        "status": error.status,
        "code": error.code,
    }
    throttle = getattr(error, "throttle", None)
    if throttle is not None:
        details["throttle"] = throttle.kind
        details["limit"] = throttle.limit
    return details


def _minutes(delay: timedelta) -> int:
    return max(1, round(delay.total_seconds() / 60))


def to_application_error(error: VendorError, attempt: int = 1) -> ApplicationError:
    """The Temporal error that carries ``error``'s retry semantics; ``attempt`` is the
    activity attempt that met it (it sets how long a spent daily quota waits)."""
    message = error.describe()
    if isinstance(error, TransientError):
        delay = None if error.retry_after is None else timedelta(seconds=error.retry_after)
        if error.throttle is not None and error.throttle.is_quota:
            delay = max(delay or timedelta(0), quota_backoff(attempt))
            message = (
                f"{error.throttle.limit} exhausted; next attempt in {_minutes(delay)} minutes "
                f"({message})"
            )
        return ApplicationError(
            message,
            _details(error),
            type=FailureType.VENDOR_TRANSIENT,
            next_retry_delay=delay,
        )
    if isinstance(error, UnknownOutcomeError):
        return ApplicationError(message, _details(error), type=FailureType.VENDOR_UNKNOWN_OUTCOME)
    if isinstance(error, RejectedError):
        return ApplicationError(
            message, _details(error), type=FailureType.VENDOR_REJECTED, non_retryable=True
        )
    if isinstance(error, ConfigurationError):
        return ApplicationError(
            message, _details(error), type=FailureType.VENDOR_MISCONFIGURED, non_retryable=True
        )
    # A VendorError of no known class: retry, as for a transient one, but say so.
    return ApplicationError(message, _details(error), type=FailureType.VENDOR_TRANSIENT)


def vendor_outcome(error: VendorError) -> VendorOutcome:
    """The failure-taxonomy class of ``error`` (one of no known class counts as transient,
    as it is retried like one)."""
    if isinstance(error, UnknownOutcomeError):
        return "unknown"
    if isinstance(error, RejectedError):
        return "rejected"
    if isinstance(error, ConfigurationError):
        return "configuration"
    return "transient"


@contextmanager
def vendor_call(vendor: str) -> Iterator[None]:
    """Run adapter calls to ``vendor``; re-raise any vendor failure with its retry semantics.
    Each call's outcome (done, transient, rejected, unknown) is counted by vendor
    (``revsync_vendor_calls``), and a spent daily quota once more
    (``revsync_vendor_quota_exhausted``)."""
    try:
        yield
    except VendorError as error:
        record_vendor_call(vendor, vendor_outcome(error))
        throttle = getattr(error, "throttle", None)
        if throttle is not None and throttle.is_quota:
            record_quota_exhausted(vendor)
        attempt = activity.info().attempt if activity.in_activity() else 1
        # Inside the activity: the line carries its workflow, attempt and trace ids.
        structlog.get_logger("revsync.activities").warning(
            "vendor call failed",
            **_details(error),
            retry_after=getattr(error, "retry_after", None),
            error=error.describe(),
        )
        raise to_application_error(error, attempt) from error
    record_vendor_call(vendor, "done")
