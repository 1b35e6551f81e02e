"""The CPQ webhook signature scheme: vectors, rotation, tolerance edges, tampering."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from adapters.webhooks import cpq

BODY = b'{"quote_id":"Q-1"}'
NOW = 1_800_000_000


def test_sign_matches_an_independently_computed_vector():
    expected = hmac.new(b"s3cret", b"1800000000." + BODY, hashlib.sha256).hexdigest()
    assert cpq.sign("s3cret", BODY, NOW) == f"t={NOW},v1={expected}"


def test_a_valid_signature_verifies():
    cpq.verify(["s3cret"], cpq.sign("s3cret", BODY, NOW), BODY, now=NOW)


def test_any_of_several_secrets_or_signatures_is_enough_during_rotation():
    old = cpq.sign("old", BODY, NOW)
    new_sig = cpq.sign("new", BODY, NOW).split("v1=")[1]
    cpq.verify(["new"], f"{old},v1={new_sig}", BODY, now=NOW)
    cpq.verify(["old", "new"], old, BODY, now=NOW)


@pytest.mark.parametrize(
    ("header", "body", "now", "reason"),
    [
        (None, BODY, NOW, "missing"),
        ("", BODY, NOW, "missing"),
        ("v1=abc", BODY, NOW, "malformed signature header"),
        ("t=abc,v1=abc", BODY, NOW, "malformed signature timestamp"),
        (cpq.sign("s3cret", BODY, NOW), BODY + b" ", NOW, "does not match"),
        (cpq.sign("other", BODY, NOW), BODY, NOW, "does not match"),
        (cpq.sign("s3cret", BODY, NOW), BODY, NOW + 301, "outside the tolerance"),
        (cpq.sign("s3cret", BODY, NOW), BODY, NOW - 301, "outside the tolerance"),
    ],
)
def test_bad_deliveries_are_refused(header, body, now, reason):
    with pytest.raises(cpq.SignatureError, match=reason):
        cpq.verify(["s3cret"], header, body, now=now)


def test_tolerance_edge_is_inclusive():
    cpq.verify(["s3cret"], cpq.sign("s3cret", BODY, NOW), BODY, now=NOW + 300)
