"""HubSpot webhooks: v3 signature validation, the URL decoding rule, and the event batch."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from pydantic import ValidationError

from adapters.webhooks import hubspot
from adapters.webhooks.signatures import MalformedPayload, SignatureError

SECRET = "3c1f0e5a-hubspot-client-secret"
OLD_SECRET = "previous-client-secret-77"
URL = "https://hooks.example.com/webhooks/hubspot?portal=42"
NOW = 1_800_000_000  # seconds
NOW_MS = NOW * 1000
EVENTS = [
    {
        "eventId": 1001,
        "subscriptionId": 25_001,
        "portalId": 42,
        "appId": 1_160_452,
        "occurredAt": NOW_MS - 2000,
        "subscriptionType": "deal.propertyChange",
        "attemptNumber": 0,
        "objectId": 9_876_543_210,
        "propertyName": "dealstage",
        "propertyValue": "closedwon",
        "changeSource": "CRM_UI",
        "sourceId": "userId:123",
    },
    {
        "eventId": 1002,
        "subscriptionId": 25_002,
        "portalId": 42,
        "occurredAt": NOW_MS - 1000,
        "subscriptionType": "deal.creation",
        "objectId": 9_876_543_211,
    },
]
BODY = json.dumps(EVENTS).encode()


def b64_mac(secret: str, message: bytes) -> str:
    """The v3 signature, computed here without the module under test."""
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def signature_for(secret: str = SECRET, *, url: str = URL, body: bytes = BODY, ts: int = NOW_MS):
    return b64_mac(secret, b"POST" + url.encode() + body + str(ts).encode())


def check(
    signature: str | None,
    timestamp: str | None = str(NOW_MS),
    *,
    secrets: list[str] | None = None,
    url: str = URL,
    body: bytes = BODY,
    now: float = NOW,
    method: str = "POST",
) -> None:
    hubspot.verify(
        [SECRET] if secrets is None else secrets,
        method=method,
        url=url,
        body=body,
        signature=signature,
        timestamp=timestamp,
        now=now,
    )


# -- signatures ---------------------------------------------------------------------------


def test_header_names():
    assert hubspot.SIGNATURE_HEADER == "X-HubSpot-Signature-v3"
    assert hubspot.TIMESTAMP_HEADER == "X-HubSpot-Request-Timestamp"


def test_pinned_vector():
    # printf 'POSThttps://hooks.example.com/webhooks/hubspot?portal=42[]1700000000000' \
    #   | openssl dgst -sha256 -hmac hubspot_client_secret -binary | base64
    pinned = "86yoxK3IF/raBWyY/BzGZAzcvEwNuCYTKfLfefdQHW0="
    signed = hubspot.sign(
        "hubspot_client_secret", method="POST", url=URL, body=b"[]", timestamp_ms=1_700_000_000_000
    )
    assert signed == pinned


def test_sign_matches_an_independently_computed_vector():
    assert hubspot.sign(SECRET, method="POST", url=URL, body=BODY, timestamp_ms=NOW_MS) == (
        signature_for()
    )


def test_an_independently_signed_request_verifies():
    check(signature_for())


def test_header_values_may_carry_surrounding_blanks():
    check(f" {signature_for()} ", f" {NOW_MS} ")


def test_method_is_compared_upper_case():
    check(signature_for(), method="post")


def test_rotation_any_configured_secret():
    check(signature_for(OLD_SECRET), secrets=[SECRET, OLD_SECRET])
    check(signature_for(SECRET), secrets=[OLD_SECRET, SECRET])
    with pytest.raises(SignatureError, match="does not match"):
        check(signature_for(OLD_SECRET), secrets=[SECRET])


def test_empty_secrets_never_verify():
    with pytest.raises(SignatureError, match="does not match"):
        check(signature_for(""), secrets=[""])
    with pytest.raises(SignatureError, match="does not match"):
        check(signature_for(), secrets=[])


@pytest.mark.parametrize("offset_ms", [-300_000, -1, 0, 1, 300_000])
def test_within_five_minutes_is_accepted(offset_ms):
    ts = NOW_MS + offset_ms
    check(signature_for(ts=ts), str(ts))


@pytest.mark.parametrize("offset_ms", [-301_000, -300_001, 300_001, 301_000, -86_400_000])
def test_older_or_further_in_the_future_is_refused(offset_ms):
    # Negative: stamped before now (stale or replayed); positive: stamped in the future.
    ts = NOW_MS + offset_ms
    with pytest.raises(SignatureError, match="outside the allowed window"):
        check(signature_for(ts=ts), str(ts))


def test_custom_max_age():
    ts = NOW_MS - 30_000
    hubspot.verify(
        [SECRET],
        method="POST",
        url=URL,
        body=BODY,
        signature=signature_for(ts=ts),
        timestamp=str(ts),
        max_age_seconds=30,
        now=NOW,
    )
    with pytest.raises(SignatureError, match="outside the allowed window"):
        hubspot.verify(
            [SECRET],
            method="POST",
            url=URL,
            body=BODY,
            signature=signature_for(ts=ts),
            timestamp=str(ts),
            max_age_seconds=29,
            now=NOW,
        )


def test_timestamp_in_seconds_is_refused_as_stale():
    # A sender that confused seconds and milliseconds never passes the window.
    with pytest.raises(SignatureError, match="outside the allowed window"):
        check(signature_for(ts=NOW), str(NOW))


def test_default_now_is_the_clock():
    import time

    ts = int(time.time() * 1000)
    hubspot.verify(
        [SECRET],
        method="POST",
        url=URL,
        body=BODY,
        signature=signature_for(ts=ts),
        timestamp=str(ts),
    )


def test_tampered_body_is_refused():
    with pytest.raises(SignatureError, match="does not match"):
        check(signature_for(), body=BODY.replace(b"closedwon", b"closedlost"))


def test_changed_timestamp_is_refused():
    with pytest.raises(SignatureError, match="does not match"):
        check(signature_for(ts=NOW_MS), str(NOW_MS + 1))


def test_other_url_is_refused():
    with pytest.raises(SignatureError, match="does not match"):
        check(signature_for(), url=URL.replace("portal=42", "portal=43"))


def test_other_method_is_refused():
    with pytest.raises(SignatureError, match="does not match"):
        check(signature_for(), method="PUT")


def test_wrong_secret_is_refused():
    with pytest.raises(SignatureError, match="does not match"):
        check(signature_for("not-the-secret"))


@pytest.mark.parametrize(
    ("signature", "timestamp", "reason"),
    [
        (None, str(NOW_MS), "missing X-HubSpot-Signature-v3 header"),
        ("", str(NOW_MS), "missing X-HubSpot-Signature-v3 header"),
        ("   ", str(NOW_MS), "missing X-HubSpot-Signature-v3 header"),
        ("c2ln", None, "missing X-HubSpot-Request-Timestamp header"),
        ("c2ln", "", "missing X-HubSpot-Request-Timestamp header"),
        ("c2ln", "soon", "malformed request timestamp"),
        ("c2ln", "1800000000000.5", "malformed request timestamp"),
        ("c2ln", "-1800000000000", "malformed request timestamp"),
        ("c2ln", "1_800_000_000_000", "malformed request timestamp"),
        ("c2ln", "9" * 400, "malformed request timestamp"),
        ("c2ln", str(NOW_MS), "signature does not match"),
        ("\u00e9\ud800", str(NOW_MS), "signature does not match"),
    ],
)
def test_missing_or_malformed_headers_are_refused(signature, timestamp, reason):
    with pytest.raises(SignatureError, match=reason):
        check(signature, timestamp)


def test_reasons_never_leak_the_secret_or_the_signature():
    expected = signature_for()
    cases = [
        (signature_for("wrong"), str(NOW_MS)),
        (expected, str(NOW_MS - 600_000)),
        (expected[:-4] + "AAA=", str(NOW_MS)),
    ]
    for signature, timestamp in cases:
        with pytest.raises(SignatureError) as caught:
            check(signature, timestamp)
        for text in (caught.value.reason, str(caught.value)):
            assert SECRET not in text
            assert expected not in text
            assert signature not in text
            assert "closedwon" not in text


# -- the URL decoding rule ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        ("%3A", ":"),
        ("%2F", "/"),
        ("%3F", "?"),
        ("%40", "@"),
        ("%21", "!"),
        ("%24", "$"),
        ("%27", "'"),
        ("%28", "("),
        ("%29", ")"),
        ("%2A", "*"),
        ("%2C", ","),
        ("%3B", ";"),
    ],
)
def test_each_listed_escape_is_decoded(encoded, decoded):
    assert (
        hubspot.canonical_uri(f"https://h.example/a{encoded}b") == f"https://h.example/a{decoded}b"
    )
    assert hubspot.canonical_uri(f"x{encoded.lower()}y") == f"x{decoded}y"


@pytest.mark.parametrize("kept", ["%20", "%25", "%2B", "%3D", "%26", "%23", "%5B", "%7E", "%C3%A9"])
def test_other_escapes_stay_encoded(kept):
    assert hubspot.canonical_uri(f"https://h.example/p?q=a{kept}b") == (
        f"https://h.example/p?q=a{kept}b"
    )


def test_decoding_is_a_single_pass():
    assert hubspot.canonical_uri("/x?a=%253A") == "/x?a=%253A"
    assert hubspot.canonical_uri("/x?a=%3A%2F%2F") == "/x?a=://"


def test_signature_is_over_the_decoded_url():
    sent = (
        "https://hooks.example.com/webhooks/hubspot?next=%2Fdeals%3Fid%3D7&who=ops%40acme&sp=a%20b"
    )
    signed_url = (
        "https://hooks.example.com/webhooks/hubspot?next=/deals?id%3D7&who=ops@acme&sp=a%20b"
    )
    signature = b64_mac(SECRET, b"POST" + signed_url.encode() + BODY + str(NOW_MS).encode())
    check(signature, url=sent)
    # Signing the URL exactly as sent (without the decoding) does not verify.
    raw = b64_mac(SECRET, b"POST" + sent.encode() + BODY + str(NOW_MS).encode())
    with pytest.raises(SignatureError, match="does not match"):
        check(raw, url=sent)


# -- the event batch ----------------------------------------------------------------------


def test_parse_events_reads_the_batch():
    first, second = hubspot.parse_events(BODY)
    assert first.eventId == 1001
    assert first.subscriptionId == 25_001
    assert first.portalId == 42
    assert first.appId == 1_160_452
    assert first.occurredAt == NOW_MS - 2000
    assert first.subscriptionType == "deal.propertyChange"
    assert first.objectId == 9_876_543_210
    assert first.propertyName == "dealstage"
    assert first.propertyValue == "closedwon"
    assert first.changeSource == "CRM_UI"
    assert first.sourceId == "userId:123"  # who made the change (revsync's own writes)
    assert second.appId is None
    assert second.attemptNumber == 0
    assert second.propertyName is None
    assert second.propertyValue is None
    assert second.changeSource is None
    assert second.sourceId is None


def test_a_hundred_events_are_accepted():
    batch = [{**EVENTS[1], "eventId": n} for n in range(100)]
    assert len(hubspot.parse_events(json.dumps(batch).encode())) == 100


@pytest.mark.parametrize("count", [0, 101])
def test_batch_size_is_bounded(count):
    batch = [{**EVENTS[1], "eventId": n} for n in range(count)]
    with pytest.raises(ValidationError):
        hubspot.parse_events(json.dumps(batch).encode())


@pytest.mark.parametrize("body", [b"", b"nope", b"[{", b"\xff\xfe\x00", b"[" * 100_000])
def test_non_json_is_malformed(body):
    with pytest.raises(MalformedPayload) as caught:
        hubspot.parse_events(body)
    assert caught.value.reason == "body is not valid JSON"


@pytest.mark.parametrize(
    "document",
    [
        EVENTS[0],
        {"events": EVENTS},
        [{**EVENTS[0], "eventId": "1001"}],
        [{**EVENTS[0], "objectId": 1.5}],
        [{**EVENTS[0], "propertyValue": 5}],
        [{k: v for k, v in EVENTS[0].items() if k != "subscriptionType"}],
        [{k: v for k, v in EVENTS[0].items() if k != "objectId"}],
        [EVENTS[0], "not an event"],
    ],
)
def test_wrong_shape_is_a_validation_error(document):
    with pytest.raises(ValidationError):
        hubspot.parse_events(json.dumps(document).encode())
