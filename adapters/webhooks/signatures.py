"""Pieces shared by the inbound webhook modules.

* :class:`SignatureError` - the delivery is not authentic (bad, missing or stale signature,
  unknown sender). :class:`MalformedPayload` - the body could not be read at all. Both carry
  a short ``reason`` that is safe to send back to the caller: it never contains a secret, the
  signature we expected or the body.
* The *timestamped HMAC* scheme used by revsync's own CPQ webhook and by Stripe. The header
  looks like ``t=<unix seconds>,v1=<hex>[,v1=<hex>...]``; each ``v1`` is the lowercase hex
  HMAC-SHA256, keyed with the endpoint secret, of ``"<t>."`` followed by the raw request body.
  A delivery is accepted when any configured secret produces any of the ``v1`` values (so a
  secret can be rotated without downtime) and ``t`` is within the tolerance of the current
  time, in either direction, so a captured request cannot be replayed later. Other schemes
  in the header (Stripe's ``v0=`` test signatures, future versions) are ignored.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable
from dataclasses import dataclass

# Unix seconds stay well below this for the next few thousand years; the cap keeps absurd
# values out of the float arithmetic of the tolerance check.
_MAX_TIMESTAMP_DIGITS = 15


class SignatureError(Exception):
    """The delivery is not authentic. ``reason`` is short and safe to return to the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MalformedPayload(Exception):
    """The body is not the format the source sends (not JSON, not XML, wrong envelope).

    ``reason`` is short and safe to return to the caller; it never quotes the body."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_unsigned_int(value: str) -> int | None:
    """``value`` as a non-negative integer, or ``None`` unless it is plain ASCII digits.

    Stricter than :func:`int`, which also accepts signs, underscores, surrounding blanks and
    non-ASCII digits."""
    if not value or len(value) > _MAX_TIMESTAMP_DIGITS:
        return None
    if not (value.isascii() and value.isdigit()):
        return None
    return int(value)


def digests_match(expected: Iterable[str], candidates: Iterable[str]) -> bool:
    """Whether any candidate equals any expected digest, compared in constant time.

    Works on bytes so a candidate with non-ASCII characters (header values can carry them)
    is simply a mismatch rather than a :class:`TypeError`. Every pair is compared, without
    stopping at the first match."""
    wanted = [e.encode() for e in expected]
    matched = False
    for candidate in candidates:
        raw = candidate.encode("utf-8", "surrogatepass")
        for e in wanted:
            matched |= hmac.compare_digest(e, raw)
    return matched


def timestamped_hmac(secret: str, timestamp: int, body: bytes) -> str:
    """Lowercase hex HMAC-SHA256 of ``"<timestamp>." + body`` keyed with ``secret``."""
    signed = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign_timestamped(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """A ``t=...,v1=...`` header value for ``body`` (``timestamp`` defaults to now)."""
    ts = int(time.time()) if timestamp is None else timestamp
    return f"t={ts},v1={timestamped_hmac(secret, ts, body)}"


def verify_timestamped(
    secrets: list[str],
    header: str | None,
    body: bytes,
    *,
    header_name: str,
    tolerance_seconds: int = 300,
    now: float | None = None,
) -> None:
    """Raise :class:`SignatureError` unless ``header`` (a ``t=...,v1=...`` value) signs
    ``body`` with one of ``secrets`` within ``tolerance_seconds`` of ``now``.

    ``header_name`` is only used in the reason for a missing header. Empty secrets are
    skipped, so an unconfigured secret never verifies anything."""
    if not header:
        raise SignatureError(f"missing {header_name} header")
    timestamp: int | None = None
    seen_timestamp = False
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            if seen_timestamp:
                raise SignatureError("malformed signature header")
            seen_timestamp = True
            timestamp = parse_unsigned_int(value.strip())
            if timestamp is None:
                raise SignatureError("malformed signature timestamp")
        elif key == "v1" and value.strip():
            candidates.append(value.strip())
    if timestamp is None or not candidates:
        raise SignatureError("malformed signature header")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        raise SignatureError("signature timestamp outside the tolerance")
    expected = [timestamped_hmac(secret, timestamp, body) for secret in secrets if secret]
    if not digests_match(expected, candidates):
        raise SignatureError("signature does not match")


@dataclass(frozen=True)
class TimestampedHmacScheme:
    """The timestamped HMAC scheme as one sender uses it: only the header name differs."""

    header: str

    def sign(self, secret: str, body: bytes, timestamp: int | None = None) -> str:
        """The header value a sender puts on ``body`` (``timestamp`` defaults to now)."""
        return sign_timestamped(secret, body, timestamp)

    def verify(
        self,
        secrets: list[str],
        header: str | None,
        body: bytes,
        *,
        tolerance_seconds: int = 300,
        now: float | None = None,
    ) -> None:
        """Raise :class:`SignatureError` unless ``header`` signs ``body`` with one of
        ``secrets`` and its timestamp is within ``tolerance_seconds`` of ``now``."""
        verify_timestamped(
            secrets,
            header,
            body,
            header_name=self.header,
            tolerance_seconds=tolerance_seconds,
            now=now,
        )
