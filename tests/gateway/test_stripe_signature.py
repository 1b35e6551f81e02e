"""Stripe webhooks: ``Stripe-Signature`` verification and the event envelope."""

from __future__ import annotations

import hashlib
import hmac
import json
from decimal import Decimal

import pytest
from pydantic import ValidationError

from adapters.webhooks import stripe
from adapters.webhooks.signatures import MalformedPayload, SignatureError

SECRET = "whsec_test_5Wq2v8aLkD0pZ"
OLD_SECRET = "whsec_test_previous_Nx71"
NOW = 1_800_000_000
EVENT = {
    "id": "evt_1PqRsT2eZvKYlo2C0a1b2c3d",
    "object": "event",
    "api_version": "2024-06-20",
    "type": "invoice.paid",
    "created": NOW,
    "livemode": False,
    "pending_webhooks": 1,
    "request": {"id": None, "idempotency_key": None},
    "data": {
        "object": {
            "id": "in_1PqRsT2eZvKYlo2C",
            "object": "invoice",
            "amount_paid": 129900,
            "tax_percent": 19.5,
            "metadata": {"revsync_quote_id": "Q-1001"},
        }
    },
}
BODY = json.dumps(EVENT, separators=(",", ":")).encode()


def hex_mac(secret: str, timestamp: int, body: bytes) -> str:
    """The v1 signature, computed here without the module under test."""
    return hmac.new(
        secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256
    ).hexdigest()


def header(timestamp: int, *signatures: str) -> str:
    return ",".join([f"t={timestamp}", *(f"v1={s}" for s in signatures)])


# -- signatures ---------------------------------------------------------------------------


def test_header_name():
    assert stripe.SIGNATURE_HEADER == "Stripe-Signature"


def test_sign_matches_an_independently_computed_vector():
    assert stripe.sign(SECRET, BODY, NOW) == f"t={NOW},v1={hex_mac(SECRET, NOW, BODY)}"


def test_pinned_vector():
    # printf '1700000000.{}' | openssl dgst -sha256 -hmac whsec_test
    pinned = "35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"
    assert stripe.sign("whsec_test", b"{}", 1_700_000_000) == f"t=1700000000,v1={pinned}"
    stripe.verify(["whsec_test"], f"t=1700000000,v1={pinned}", b"{}", now=1_700_000_000)


def test_an_independently_signed_delivery_verifies():
    stripe.verify([SECRET], header(NOW, hex_mac(SECRET, NOW, BODY)), BODY, now=NOW)


def test_v0_and_unknown_schemes_are_ignored():
    good = hex_mac(SECRET, NOW, BODY)
    value = f"t={NOW},v0={'0' * 64},v1={good},v9=whatever"
    stripe.verify([SECRET], value, BODY, now=NOW)


def test_only_a_v0_signature_is_not_enough():
    legacy = hex_mac(SECRET, NOW, BODY)
    with pytest.raises(SignatureError, match="malformed signature header"):
        stripe.verify([SECRET], f"t={NOW},v0={legacy}", BODY, now=NOW)


def test_spaces_around_parts_are_tolerated():
    value = f"t={NOW}, v1={hex_mac(SECRET, NOW, BODY)}"
    stripe.verify([SECRET], value, BODY, now=NOW)


def test_rotation_several_v1_values_one_secret():
    # Stripe sends one v1 per active secret while an endpoint secret is being rolled.
    value = header(NOW, hex_mac(OLD_SECRET, NOW, BODY), hex_mac(SECRET, NOW, BODY))
    stripe.verify([SECRET], value, BODY, now=NOW)
    stripe.verify([OLD_SECRET], value, BODY, now=NOW)


def test_rotation_several_secrets_one_v1():
    value = header(NOW, hex_mac(OLD_SECRET, NOW, BODY))
    stripe.verify([SECRET, OLD_SECRET], value, BODY, now=NOW)
    with pytest.raises(SignatureError, match="does not match"):
        stripe.verify([SECRET], value, BODY, now=NOW)


def test_empty_secrets_never_verify():
    unkeyed = hmac.new(b"", str(NOW).encode() + b"." + BODY, hashlib.sha256).hexdigest()
    with pytest.raises(SignatureError, match="does not match"):
        stripe.verify([""], header(NOW, unkeyed), BODY, now=NOW)
    with pytest.raises(SignatureError, match="does not match"):
        stripe.verify([], header(NOW, unkeyed), BODY, now=NOW)


@pytest.mark.parametrize("offset", [-300, -1, 0, 1, 300])
def test_within_the_tolerance_is_accepted(offset):
    stripe.verify([SECRET], header(NOW, hex_mac(SECRET, NOW, BODY)), BODY, now=NOW + offset)


@pytest.mark.parametrize("offset", [301, -301, 3600, -86_400])
def test_beyond_the_tolerance_is_refused(offset):
    # A positive offset is an old delivery (replay); a negative one is stamped in the future.
    with pytest.raises(SignatureError, match="outside the tolerance"):
        stripe.verify([SECRET], header(NOW, hex_mac(SECRET, NOW, BODY)), BODY, now=NOW + offset)


def test_custom_tolerance():
    value = header(NOW, hex_mac(SECRET, NOW, BODY))
    stripe.verify([SECRET], value, BODY, tolerance_seconds=10, now=NOW + 10)
    with pytest.raises(SignatureError, match="outside the tolerance"):
        stripe.verify([SECRET], value, BODY, tolerance_seconds=10, now=NOW + 11)


def test_default_now_is_the_clock():
    stripe.verify([SECRET], stripe.sign(SECRET, BODY), BODY)


def test_tampered_body_is_refused():
    value = header(NOW, hex_mac(SECRET, NOW, BODY))
    tampered = BODY.replace(b"129900", b"129901")
    with pytest.raises(SignatureError, match="does not match"):
        stripe.verify([SECRET], value, tampered, now=NOW)


def test_changed_timestamp_is_refused():
    # Moving t forward to dodge the tolerance invalidates the signature.
    value = header(NOW + 60, hex_mac(SECRET, NOW, BODY))
    with pytest.raises(SignatureError, match="does not match"):
        stripe.verify([SECRET], value, BODY, now=NOW + 60)


def test_wrong_secret_is_refused():
    value = header(NOW, hex_mac("whsec_someone_else", NOW, BODY))
    with pytest.raises(SignatureError, match="does not match"):
        stripe.verify([SECRET], value, BODY, now=NOW)


def test_uppercase_hex_is_not_the_signature():
    value = header(NOW, hex_mac(SECRET, NOW, BODY).upper())
    with pytest.raises(SignatureError, match="does not match"):
        stripe.verify([SECRET], value, BODY, now=NOW)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "missing Stripe-Signature header"),
        ("", "missing Stripe-Signature header"),
        ("garbage", "malformed signature header"),
        ("v1=abc", "malformed signature header"),
        (f"t={NOW}", "malformed signature header"),
        (f"t={NOW},v1=", "malformed signature header"),
        (f"t={NOW},t={NOW},v1=abc", "malformed signature header"),
        ("t=abc,v1=abc", "malformed signature timestamp"),
        ("t=,v1=abc", "malformed signature timestamp"),
        ("t=-5,v1=abc", "malformed signature timestamp"),
        ("t=1_800_000_000,v1=abc", "malformed signature timestamp"),
        ("t=\u0661\u0662,v1=abc", "malformed signature timestamp"),
        ("t=" + "9" * 400 + ",v1=abc", "malformed signature timestamp"),
    ],
)
def test_missing_or_malformed_headers_are_refused(value, reason):
    with pytest.raises(SignatureError, match=reason):
        stripe.verify([SECRET], value, BODY, now=NOW)


def test_non_ascii_signature_is_a_mismatch_not_a_crash():
    with pytest.raises(SignatureError, match="does not match"):
        stripe.verify([SECRET], f"t={NOW},v1=\u00e9\u00e9\ud800", BODY, now=NOW)


def test_reasons_never_leak_the_secret_or_the_signature():
    expected = hex_mac(SECRET, NOW, BODY)
    attempts = [
        header(NOW, hex_mac("wrong", NOW, BODY)),
        header(NOW, expected),  # right signature, wrong body below
        header(NOW - 1000, expected),
    ]
    for value in attempts:
        with pytest.raises(SignatureError) as caught:
            stripe.verify([SECRET], value, BODY + b" ", now=NOW)
        for text in (caught.value.reason, str(caught.value)):
            assert SECRET not in text
            assert expected not in text
            assert hex_mac(SECRET, NOW, BODY + b" ") not in text
            assert "129900" not in text
            assert len(text) < 80


# -- the event envelope -------------------------------------------------------------------


def test_parse_event_reads_the_envelope():
    event = stripe.parse_event(BODY)
    assert event.id == "evt_1PqRsT2eZvKYlo2C0a1b2c3d"
    assert event.type == "invoice.paid"
    assert event.created == NOW
    assert event.livemode is False
    assert event.data.object["amount_paid"] == 129900
    assert event.data.object["metadata"] == {"revsync_quote_id": "Q-1001"}


def test_fractions_are_decimals_not_floats():
    value = stripe.parse_event(BODY).data.object["tax_percent"]
    assert isinstance(value, Decimal)
    assert value == Decimal("19.5")


def test_livemode_defaults_to_false_and_extras_are_ignored():
    document = {k: v for k, v in EVENT.items() if k != "livemode"}
    document["brand_new_field"] = {"x": 1}
    event = stripe.parse_event(json.dumps(document).encode())
    assert event.livemode is False
    assert not hasattr(event, "brand_new_field")


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"{", b"\xff\xfe\x00", b"[" * 100_000, b'{"n": 1' + b"0" * 5000 + b"}"],
)
def test_non_json_is_malformed(body):
    with pytest.raises(MalformedPayload) as caught:
        stripe.parse_event(body)
    assert caught.value.reason == "body is not valid JSON"


@pytest.mark.parametrize(
    "change",
    [
        {"id": "in_123"},
        {"id": "evt_"},
        {"id": "evt_abc def"},
        {"id": 123},
        {"type": None},
        {"created": "1800000000"},
        {"created": 1.5},
        {"livemode": "yes"},
        {"data": {}},
        {"data": {"object": []}},
        {"data": None},
    ],
)
def test_wrong_shape_is_a_validation_error(change):
    with pytest.raises(ValidationError):
        stripe.parse_event(json.dumps({**EVENT, **change}).encode())


@pytest.mark.parametrize("document", [[], [EVENT], "evt_1", 42, None])
def test_json_that_is_not_an_object_is_a_validation_error(document):
    with pytest.raises(ValidationError):
        stripe.parse_event(json.dumps(document).encode())


def test_missing_required_fields_is_a_validation_error():
    for field in ("id", "type", "created", "data"):
        document = {k: v for k, v in EVENT.items() if k != field}
        with pytest.raises(ValidationError):
            stripe.parse_event(json.dumps(document).encode())
