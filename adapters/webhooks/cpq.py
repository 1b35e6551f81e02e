"""The CPQ quote-accepted webhook: revsync's own HMAC scheme for CPQ tools that can sign.

Header ``X-Revsync-Signature: t=<unix seconds>,v1=<hex>`` where ``v1`` is
HMAC-SHA256(secret, ``"<t>.<raw body>"``). Several ``v1`` values may be sent while a secret
is rotated; one match is enough. Deliveries older (or newer) than the tolerance are refused,
so a captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Revsync-Signature"


class SignatureError(Exception):
    """The delivery is not authentic. ``reason`` is short and safe to return to the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    signed = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The header value a CPQ sends with ``body``."""
    ts = int(time.time()) if timestamp is None else timestamp
    return f"t={ts},v1={_mac(secret, ts, body)}"


def verify(
    secrets: list[str],
    header: str | None,
    body: bytes,
    *,
    tolerance_seconds: int = 300,
    now: float | None = None,
) -> None:
    """Raise :class:`SignatureError` unless ``header`` signs ``body`` with one of ``secrets``
    within the tolerance."""
    if not header:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise SignatureError("malformed signature timestamp") from None
        elif key == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureError("malformed signature header")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        raise SignatureError("signature timestamp outside the tolerance")
    expected = [_mac(secret, timestamp, body) for secret in secrets if secret]
    if not any(hmac.compare_digest(e, c) for e in expected for c in candidates):
        raise SignatureError("signature does not match")
