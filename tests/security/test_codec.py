"""Payload encryption: round trips, rotation, tampering, and key-ring parsing."""

from __future__ import annotations

import base64
import os

import pytest
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError

from domain.quote import Quote
from revsync.codec import (
    ENCODING,
    KEY_ID_METADATA,
    AesGcmCodec,
    KeyRing,
    PayloadDecryptionError,
    encrypted_data_converter,
    generate_key_entry,
)
from revsync.settings import MissingSetting, Settings
from sandbox.quotes import quote_payload

PII = "ada.lovelace@example.com"
KEY_A = bytes(range(32))
KEY_B = bytes(range(100, 132))


def entry(key_id: str, key: bytes) -> str:
    return f"{key_id}:{base64.b64encode(key).decode()}"


def key_texts(*keys: bytes) -> list[str]:
    """The forms in which key material could leak into a message."""
    return [form for key in keys for form in (base64.b64encode(key).decode(), key.hex())]


def a_quote() -> Quote:
    return Quote.model_validate(quote_payload("0Q0SEC000000001") | {"owner": PII})


async def test_a_pydantic_model_round_trips_and_the_ciphertext_hides_it():
    converter = encrypted_data_converter(KeyRing.parse(entry("a", KEY_A)))
    quote = a_quote()

    [payload] = await converter.encode([quote])

    assert payload.metadata["encoding"] == ENCODING
    assert payload.metadata[KEY_ID_METADATA] == b"a"
    wire = payload.SerializeToString()
    assert PII.encode() not in wire
    assert b"0Q0SEC000000001" not in wire
    assert b"json/plain" not in wire  # the inner metadata is sealed too
    [back] = await converter.decode([payload], [Quote])
    assert back == quote


async def test_each_encryption_uses_a_fresh_nonce():
    converter = encrypted_data_converter(KeyRing.parse(entry("a", KEY_A)))
    first, second = await converter.encode([PII, PII])
    assert first.data[:12] != second.data[:12]
    assert first.data != second.data


async def test_failure_messages_are_encrypted_too():
    converter = encrypted_data_converter(KeyRing.parse(entry("a", KEY_A)))
    failure = Failure()

    await converter.encode_failure(ApplicationError(f"vendor rejected {PII}"), failure)

    assert PII.encode() not in failure.SerializeToString()
    assert failure.message == "Encoded failure"
    decoded = await converter.decode_failure(failure)
    assert PII in str(decoded)


async def test_rotation_new_ring_reads_old_payloads_and_writes_under_the_new_key():
    old = encrypted_data_converter(KeyRing.parse(entry("A", KEY_A)))
    [sealed_under_a] = await old.encode([PII])

    rotated = encrypted_data_converter(KeyRing.parse(f"{entry('B', KEY_B)},{entry('A', KEY_A)}"))

    assert await rotated.decode([sealed_under_a], [str]) == [PII]
    [fresh] = await rotated.encode([PII])
    assert fresh.metadata[KEY_ID_METADATA] == b"B"
    # ...which the old ring cannot read: roll the new ring out to every process first.
    with pytest.raises(PayloadDecryptionError, match="'B'"):
        await old.decode([fresh], [str])


async def test_unknown_key_names_the_key_id_and_no_key_material():
    [sealed] = await encrypted_data_converter(KeyRing.parse(entry("2026-01", KEY_A))).encode([PII])
    reader = AesGcmCodec(KeyRing.parse(entry("2026-02", KEY_B)))

    with pytest.raises(PayloadDecryptionError) as caught:
        await reader.decode([sealed])

    message = str(caught.value)
    assert caught.value.key_id == "2026-01"
    assert "'2026-01'" in message
    assert "REVSYNC_PAYLOAD_KEYS" in message
    for leaked in key_texts(KEY_A, KEY_B):
        assert leaked not in message


async def test_same_id_but_wrong_key_fails_authentication():
    [sealed] = await AesGcmCodec(KeyRing.parse(entry("k", KEY_A))).encode(
        [Payload(data=PII.encode())]
    )
    with pytest.raises(PayloadDecryptionError, match="authentication failed") as caught:
        await AesGcmCodec(KeyRing.parse(entry("k", KEY_B))).decode([sealed])
    for leaked in key_texts(KEY_A, KEY_B):
        assert leaked not in str(caught.value)


@pytest.mark.parametrize("where", ["nonce", "ciphertext", "tag"])
async def test_tampered_data_is_refused(where):
    codec = AesGcmCodec(KeyRing.parse(entry("k", KEY_A)))
    [sealed] = await codec.encode([Payload(data=PII.encode())])
    data = bytearray(sealed.data)
    index = {"nonce": 0, "ciphertext": 12, "tag": len(data) - 1}[where]
    data[index] ^= 0x01
    tampered = Payload(metadata=dict(sealed.metadata), data=bytes(data))

    with pytest.raises(PayloadDecryptionError, match="'k'"):
        await codec.decode([tampered])


async def test_relabelling_the_key_id_is_detected():
    """The key id is associated data: moving a payload under another id breaks it."""
    ring = KeyRing.parse(f"{entry('one', KEY_A)},{entry('two', KEY_A)}")
    codec = AesGcmCodec(ring)
    [sealed] = await codec.encode([Payload(data=PII.encode())])
    relabelled = Payload(metadata=dict(sealed.metadata), data=sealed.data)
    relabelled.metadata[KEY_ID_METADATA] = b"two"

    with pytest.raises(PayloadDecryptionError, match="authentication failed"):
        await codec.decode([relabelled])


async def test_truncated_and_unlabelled_payloads_are_refused():
    codec = AesGcmCodec(KeyRing.parse(entry("k", KEY_A)))
    truncated = Payload(metadata={"encoding": ENCODING, KEY_ID_METADATA: b"k"}, data=b"short")
    unlabelled = Payload(metadata={"encoding": ENCODING}, data=os.urandom(64))
    with pytest.raises(PayloadDecryptionError, match="truncated"):
        await codec.decode([truncated])
    with pytest.raises(PayloadDecryptionError, match="does not name its key"):
        await codec.decode([unlabelled])


async def test_plaintext_payloads_written_before_encryption_pass_through():
    quote = a_quote()
    [plain] = await pydantic_data_converter.encode([quote])
    codec = AesGcmCodec(KeyRing.parse(entry("k", KEY_A)))

    assert await codec.decode([plain]) == [plain]
    converter = encrypted_data_converter(KeyRing.parse(entry("k", KEY_A)))
    assert await converter.decode([plain], [Quote]) == [quote]


def test_the_ring_repr_shows_ids_only():
    ring = KeyRing.parse(f"{entry('new', KEY_B)},{entry('old', KEY_A)}")
    assert ring.active_key_id == "new"
    assert ring.key_ids == ("new", "old")
    text = repr(ring)
    assert "new" in text
    for leaked in key_texts(KEY_A, KEY_B):
        assert leaked not in text


def test_whitespace_around_entries_is_tolerated():
    ring = KeyRing.parse(f" {entry('a', KEY_A)} , {entry('b', KEY_B)},")
    assert ring.key_ids == ("a", "b")


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("", "holds no keys"),
        (" , ", "holds no keys"),
        ("k1:not*base64!", "'k1'"),
        (entry("short", os.urandom(16)), "'short'"),
        (entry("long", os.urandom(33)), "'long'"),
        (f"{entry('dup', KEY_A)},{entry('dup', KEY_B)}", "'dup'"),
        (base64.b64encode(KEY_A).decode(), "entry 1"),
        (f"{entry('ok', KEY_A)},:{base64.b64encode(KEY_B).decode()}", "entry 2"),
        (f"has space:{base64.b64encode(KEY_A).decode()}", "entry 1"),
        (f"{'x' * 33}:{base64.b64encode(KEY_A).decode()}", "entry 1"),
    ],
)
def test_bad_key_settings_name_the_setting_and_never_the_key(text, names):
    with pytest.raises(ValueError, match="REVSYNC_PAYLOAD_KEYS") as caught:
        KeyRing.parse(text)
    message = str(caught.value)
    assert names in message
    for leaked in key_texts(KEY_A, KEY_B):
        assert leaked not in message


def test_from_settings_requires_the_setting():
    with pytest.raises(MissingSetting) as caught:
        KeyRing.from_settings(Settings(_env_file=None, payload_keys=None))
    assert caught.value.setting == "REVSYNC_PAYLOAD_KEYS"


def test_from_settings_parses_the_configured_keys():
    settings = Settings(_env_file=None, payload_keys=SecretStr(entry("live", KEY_A)))
    assert KeyRing.from_settings(settings).active_key_id == "live"


async def test_generated_entries_parse_and_are_distinct():
    first, second = generate_key_entry("2026-11"), generate_key_entry("2026-11")
    assert first.startswith("2026-11:")
    assert first != second
    codec = AesGcmCodec(KeyRing.parse(first))
    [sealed] = await codec.encode([Payload(data=b"x")])
    assert await codec.decode([sealed]) == [Payload(data=b"x")]


def test_generating_under_a_bad_id_is_refused():
    with pytest.raises(ValueError, match="1-32"):
        generate_key_entry("no spaces")
