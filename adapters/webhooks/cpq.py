"""The CPQ quote-accepted webhook: revsync's own HMAC scheme for CPQ tools that can sign.

Header ``X-Revsync-Signature: t=<unix seconds>,v1=<hex>`` where ``v1`` is
HMAC-SHA256(secret, ``"<t>.<raw body>"``) in lowercase hex - the same construction Stripe
uses (see :mod:`adapters.webhooks.signatures`). Several ``v1`` values may be sent while a
secret is rotated; one match is enough. Deliveries older (or newer) than the tolerance are
refused, so a captured request cannot be replayed later.
"""

from __future__ import annotations

from adapters.webhooks.signatures import SignatureError, TimestampedHmacScheme

__all__ = ["SIGNATURE_HEADER", "SignatureError", "sign", "verify"]

SCHEME = TimestampedHmacScheme("X-Revsync-Signature")
SIGNATURE_HEADER = SCHEME.header
sign = SCHEME.sign
verify = SCHEME.verify
