"""Stripe webhooks: the ``Stripe-Signature`` header and the event envelope.

Stripe signs each delivery with the endpoint's signing secret (``whsec_...``, used as is,
not base64-decoded): ``Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>]...`` where
``v1`` is HMAC-SHA256(secret, ``"<t>.<raw body>"``) in hex. While a secret is being rolled
Stripe sends one ``v1`` per active secret; ``v0`` (test-mode legacy) is ignored. The check
is the shared timestamped HMAC in :mod:`adapters.webhooks.signatures`, with the tolerance
applied in both directions.

Verify against the raw bytes exactly as received, before any JSON parsing; then
:func:`parse_event` reads the envelope. Amounts inside ``data.object`` are integers in the
smallest currency unit; any JSON fraction is read as :class:`~decimal.Decimal`, never float.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from adapters.webhooks.signatures import MalformedPayload, SignatureError, TimestampedHmacScheme

__all__ = [
    "SIGNATURE_HEADER",
    "MalformedPayload",
    "SignatureError",
    "StripeEvent",
    "StripeEventData",
    "parse_event",
    "sign",
    "verify",
]

# Stripe's check is the shared construction under Stripe's header name.
SCHEME = TimestampedHmacScheme("Stripe-Signature")
SIGNATURE_HEADER = SCHEME.header
sign = SCHEME.sign
verify = SCHEME.verify


class StripeEventData(BaseModel):
    """``data`` of an event: the API object the event is about, kept as parsed JSON."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)

    object: dict[str, Any]
    previous_attributes: dict[str, Any] | None = Field(
        default=None, description="On *.updated events: the changed attributes' old values"
    )


class StripeEvent(BaseModel):
    """The fields of a Stripe event envelope revsync relies on; the rest is ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)

    id: str = Field(pattern=r"^evt_[A-Za-z0-9_]+$", max_length=255)
    type: str = Field(min_length=1, max_length=255)
    created: int = Field(ge=0)
    livemode: bool = False
    data: StripeEventData


def parse_event(body: bytes) -> StripeEvent:
    """The event in ``body``. Raises :class:`MalformedPayload` when ``body`` is not JSON and
    :class:`pydantic.ValidationError` when it is JSON but not an event envelope."""
    try:
        document = json.loads(body, parse_float=Decimal)
    except (ValueError, RecursionError):
        # ValueError covers invalid JSON, invalid UTF-8 and over-long integer literals.
        raise MalformedPayload("body is not valid JSON") from None
    return StripeEvent.model_validate(document)
