"""The CPQ quote-accepted webhook: revsync's own HMAC scheme for CPQ tools that can sign.

Header ``X-Revsync-Signature: t=<unix seconds>,v1=<hex>`` where ``v1`` is
HMAC-SHA256(secret, ``"<t>.<raw body>"``) in lowercase hex - the same construction Stripe
uses (see :mod:`adapters.webhooks.signatures`). Several ``v1`` values may be sent while a
secret is rotated; one match is enough. Deliveries older (or newer) than the tolerance are
refused, so a captured request cannot be replayed later.
"""

from __future__ import annotations

from adapters.webhooks.signatures import SignatureError, sign_timestamped, verify_timestamped

__all__ = ["SIGNATURE_HEADER", "SignatureError", "sign", "verify"]

SIGNATURE_HEADER = "X-Revsync-Signature"


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The header value a CPQ sends with ``body`` (``timestamp`` defaults to now)."""
    return sign_timestamped(secret, body, timestamp)


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
    verify_timestamped(
        secrets,
        header,
        body,
        header_name=SIGNATURE_HEADER,
        tolerance_seconds=tolerance_seconds,
        now=now,
    )
