"""HubSpot webhooks: v3 request signatures and the event batch.

HubSpot (v3 signatures) sends two headers:

* ``X-HubSpot-Request-Timestamp`` - milliseconds since the Unix epoch;
* ``X-HubSpot-Signature-v3`` - base64 of HMAC-SHA256, keyed with the app's client secret, over
  the concatenation ``method + uri + body + timestamp`` (timestamp as the header's digits).

``uri`` is the complete URL HubSpot requested (scheme, host, path and query string) - behind
a proxy, pass the public URL, not the one the app server sees. Before signing, HubSpot
decodes these percent-escapes, and only these (hex digits in either case):

``%3A`` → ``:``, ``%2F`` → ``/``, ``%3F`` → ``?``, ``%40`` → ``@``, ``%21`` → ``!``,
``%24`` → ``$``, ``%27`` → ``'``, ``%28`` → ``(``, ``%29`` → ``)``, ``%2A`` → ``*``,
``%2C`` → ``,``, ``%3B`` → ``;``.

Anything else (``%20``, ``%25``...) stays encoded. Decoding is a single pass, so ``%253A``
is left as is. Requests whose timestamp is more than ``max_age_seconds`` (5 minutes) away
from now - in the past or the future - are refused. Several client secrets may be
configured while one is rotated.

The body is a JSON array of 1 to 100 events; :func:`parse_events` reads it. Events carry ids
only: :mod:`revsync.gateway.hubspot_trigger` reads the deal of a ``deal.propertyChange`` to
the closed-won stage back from HubSpot and starts quote-to-cash with it.

Who made a change: each event names its ``changeSource`` (``CRM_UI`` for a user in HubSpot,
``INTEGRATION`` for an app through the API, ``IMPORT``, ``WORKFLOWS``...) and its
``sourceId`` (``userId:<id>`` for a user; for an app's API write, the app's id, the same
number as the ``appId`` of the events that app receives). HubSpot sends every change of a
subscribed property, revsync's own writes included, so a property revsync wrote (a golden
field propagated to the company, the order written back to the deal) comes back as a change:
:func:`is_own_write` recognises it by ``changeSource`` ``INTEGRATION`` and ``sourceId`` the
configured app id (``REVSYNC_HUBSPOT_APP_ID``), and the gateway acknowledges it without
handing it on (docs/vendor-fidelity.md, "HubSpot").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from adapters.webhooks.signatures import (
    MalformedPayload,
    SignatureError,
    digests_match,
    parse_unsigned_int,
)

__all__ = [
    "INTEGRATION",
    "MAX_EVENTS",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "HubSpotEvent",
    "MalformedPayload",
    "SignatureError",
    "canonical_uri",
    "is_own_write",
    "parse_events",
    "sign",
    "verify",
]

SIGNATURE_HEADER = "X-HubSpot-Signature-v3"
# The changeSource of a change an app made through the API.
INTEGRATION = "INTEGRATION"
TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"
MAX_EVENTS = 100

_DECODED = {
    "3A": ":",
    "2F": "/",
    "3F": "?",
    "40": "@",
    "21": "!",
    "24": "$",
    "27": "'",
    "28": "(",
    "29": ")",
    "2A": "*",
    "2C": ",",
    "3B": ";",
}
_ESCAPE = re.compile("%(" + "|".join(_DECODED) + ")", re.IGNORECASE)


def canonical_uri(url: str) -> str:
    """``url`` with the percent-escapes HubSpot decodes before signing decoded."""
    return _ESCAPE.sub(lambda m: _DECODED[m.group(1).upper()], url)


def _mac(secret: str, method: str, url: str, body: bytes, timestamp: str) -> str:
    message = method.upper().encode() + canonical_uri(url).encode() + body + timestamp.encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def sign(secret: str, *, method: str, url: str, body: bytes, timestamp_ms: int) -> str:
    """The ``X-HubSpot-Signature-v3`` value HubSpot would send (for tests and the sandbox)."""
    return _mac(secret, method, url, body, str(timestamp_ms))


def verify(
    secrets: list[str],
    *,
    method: str,
    url: str,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    max_age_seconds: int = 300,
    now: float | None = None,
) -> None:
    """Raise :class:`SignatureError` unless ``signature`` (the v3 header) signs this request
    with one of ``secrets`` and ``timestamp`` (the timestamp header, in milliseconds) is
    within ``max_age_seconds`` of ``now`` (Unix seconds, default the current time).

    ``url`` is the full public URL HubSpot called; ``body`` the raw bytes received."""
    if not signature or not signature.strip():
        raise SignatureError(f"missing {SIGNATURE_HEADER} header")
    if not timestamp or not timestamp.strip():
        raise SignatureError(f"missing {TIMESTAMP_HEADER} header")
    stamp = timestamp.strip()
    timestamp_ms = parse_unsigned_int(stamp)
    if timestamp_ms is None:
        raise SignatureError("malformed request timestamp")
    current_ms = (time.time() if now is None else now) * 1000
    if abs(current_ms - timestamp_ms) > max_age_seconds * 1000:
        raise SignatureError("request timestamp outside the allowed window")
    expected = [_mac(secret, method, url, body, stamp) for secret in secrets if secret]
    if not digests_match(expected, [signature.strip()]):
        raise SignatureError("signature does not match")


class HubSpotEvent(BaseModel):
    """One event of a HubSpot webhook batch (field names as HubSpot sends them)."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)

    eventId: int
    subscriptionId: int
    portalId: int
    appId: int | None = None
    occurredAt: int
    subscriptionType: str
    attemptNumber: int = 0
    objectId: int
    propertyName: str | None = None
    propertyValue: str | None = None
    changeSource: str | None = None
    # "userId:<id>" for a user, the app's id for an app (a string; a number is taken too).
    sourceId: str | int | None = None


def is_own_write(event: HubSpotEvent, app_id: int | None) -> bool:
    """Whether ``event`` reports a change the app ``app_id`` made through the API (revsync's
    own write echoed back). Nothing is, without an app id."""
    if app_id is None or event.changeSource != INTEGRATION or event.sourceId is None:
        return False
    return str(event.sourceId).strip() == str(app_id)


_BATCH: TypeAdapter[list[HubSpotEvent]] = TypeAdapter(
    Annotated[list[HubSpotEvent], Field(min_length=1, max_length=MAX_EVENTS)]
)


def parse_events(body: bytes) -> list[HubSpotEvent]:
    """The events in ``body``. Raises :class:`MalformedPayload` when ``body`` is not JSON and
    :class:`pydantic.ValidationError` when it is JSON but not an array of 1 to 100 events."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise MalformedPayload("body is not valid JSON") from None
    return _BATCH.validate_python(document)
