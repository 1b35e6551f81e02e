"""The one place where a vendor failure becomes a Temporal retry decision.

- transient        → retryable ``VendorTransient``, with the vendor's ``Retry-After`` as the
                     next retry delay
- unknown outcome  → retryable ``VendorUnknownOutcome``; the retried activity looks the record
                     up by its key before creating anything, so retrying is safe
- rejected         → non-retryable ``VendorRejected`` (the saga compensates)
- configuration    → non-retryable ``VendorMisconfigured``: the vendor refused revsync's
                     credentials (e.g. Stripe 401/403); the saga parks at once, compensating
                     nothing
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import structlog
from temporalio.exceptions import ApplicationError

from adapters.errors import (
    ConfigurationError,
    RejectedError,
    TransientError,
    UnknownOutcomeError,
    VendorError,
)
from domain.saga import FailureType
from revsync.metrics import VendorOutcome, record_vendor_call


def _details(error: VendorError) -> dict[str, Any]:
    return {
        "vendor": error.vendor,
        "operation": error.operation,
        "outcome": error.outcome,
        "status": error.status,
        "code": error.code,
    }


def to_application_error(error: VendorError) -> ApplicationError:
    """The Temporal error that carries ``error``'s retry semantics."""
    message = error.describe()
    if isinstance(error, TransientError):
        delay = None if error.retry_after is None else timedelta(seconds=error.retry_after)
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
    (``revsync_vendor_calls``)."""
    try:
        yield
    except VendorError as error:
        record_vendor_call(vendor, vendor_outcome(error))
        # Inside the activity: the line carries its workflow, attempt and trace ids.
        structlog.get_logger("revsync.activities").warning(
            "vendor call failed",
            **_details(error),
            retry_after=getattr(error, "retry_after", None),
            error=error.describe(),
        )
        raise to_application_error(error) from error
    record_vendor_call(vendor, "done")
