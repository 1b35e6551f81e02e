"""How a vendor call can end when it does not succeed (see ARCHITECTURE.md, failure taxonomy).

Adapters raise exactly these; :mod:`activities.classify` turns them into Temporal retry
semantics in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from domain.refusal import Refusal

ThrottleKind = Literal["rate", "quota"]


@dataclass(frozen=True)
class Throttle:
    """The vendor is throttling revsync: flow control, not a failure.

    The adapter's classifier decides it, once, from the vendor's own signal (a 429, a
    request/concurrency-limit code, a spent daily allowance); the circuit breaker
    (:mod:`adapters.breaker`) and :mod:`activities.classify` read this decision and never
    re-derive it from statuses or codes.

    - ``rate``: a short-window rate or concurrency limit. The vendor is up and asks to slow
      down for seconds: its ``Retry-After`` (or the activity's usual backoff) paces the retry.
    - ``quota``: a daily request allowance is spent (Salesforce's rolling 24-hour org limit,
      HubSpot's daily limit). Retrying in seconds only burns what little of it recovers:
      :mod:`activities.classify` backs off for minutes to hours.

    ``limit`` names the limit for an operator ("Salesforce daily API request limit").
    """

    kind: ThrottleKind
    limit: str

    @classmethod
    def rate(cls, limit: str) -> Throttle:
        return cls("rate", limit)

    @classmethod
    def quota(cls, limit: str) -> Throttle:
        return cls("quota", limit)

    @property
    def is_quota(self) -> bool:
        return self.kind == "quota"


class VendorError(Exception):
    """A vendor call that did not succeed. ``code`` is the vendor's own error code."""

    outcome = "error"

    def __init__(
        self,
        vendor: str,
        operation: str,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        self.vendor = vendor
        self.operation = operation
        self.message = message
        self.status = status
        self.code = code
        super().__init__(self.describe())

    def describe(self) -> str:
        parts = [f"{self.vendor} {self.operation}"]
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.code:
            parts.append(self.code)
        return f"{' '.join(parts)}: {self.message}"


class TransientError(VendorError):
    """Worth retrying: timeouts before sending, 5xx, throttling. ``retry_after`` in seconds;
    ``throttle`` set when the vendor is throttling revsync rather than failing (see
    :class:`Throttle`)."""

    outcome = "transient"

    def __init__(
        self,
        vendor: str,
        operation: str,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        throttle: Throttle | None = None,
    ) -> None:
        self.retry_after = retry_after
        self.throttle = throttle
        super().__init__(vendor, operation, message, status=status, code=code)


class RejectedError(VendorError):
    """The vendor refused the request for a business or validation reason. Never retried."""

    outcome = "rejected"


class UnknownOutcomeError(VendorError):
    """The request may or may not have been applied (e.g. a timeout after sending).

    Safe to retry only because every side effect is keyed: the retry looks the record up by
    its external/idempotency key before creating anything.
    """

    outcome = "unknown"


class ConfigurationError(VendorError):
    """The vendor refused revsync's own credentials or configuration, not the request's
    content: a wrong, revoked or expired API key, a key without the permission the call
    needs (Stripe's 401 and 403). Retrying the same call cannot help, and neither can
    unwinding the customer's order, which nobody refused: the step is not retried and the
    saga parks at once with this reason, for a person to fix the configuration and then
    ``retry`` the step."""

    outcome = "configuration"


class NotFoundError(RejectedError):
    """The record asked for does not exist."""


def enforce(vendor: str, operation: str, refusal: Refusal | None) -> None:
    """Raise the :class:`RejectedError` a domain rule's ``refusal`` means (nothing for None)."""
    if refusal is not None:
        raise RejectedError(vendor, operation, refusal.message, code=refusal.code)
