"""Payload encryption: every payload revsync hands Temporal is AES-256-GCM ciphertext.

Workflow and activity inputs and results carry customer data (names, e-mail addresses,
billing details echoed back by vendors). Temporal stores them in its history, so anyone who
can read the history database, a backup or the Web UI would read them too. The
:class:`AesGcmCodec` encrypts each payload before it leaves the process and decrypts it on the
way back in; the server only ever sees ciphertext.

Keys come from ``REVSYNC_PAYLOAD_KEYS`` as ``KEY_ID:BASE64[,KEY_ID:BASE64...]``. The first key
encrypts; every listed key decrypts, which is what makes rotation possible: put the new key
first, keep the old ones until no retained history was written under them. Each encrypted
payload names the key it was sealed with, and that id is bound to the ciphertext as
associated data, so relabelling a payload with another key id makes it fail authentication.

Payloads that were never encrypted (history written before encryption was switched on) pass
through :meth:`AesGcmCodec.decode` untouched.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)

if TYPE_CHECKING:
    from revsync.settings import Settings

SETTING = "REVSYNC_PAYLOAD_KEYS"
ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
KEY_BYTES = 32
NONCE_BYTES = 12
_TAG_BYTES = 16
_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,32}")


def valid_key_id(key_id: str) -> bool:
    return _KEY_ID.fullmatch(key_id) is not None


def _printable_key_id(key_id: str) -> str:
    """The id as it may appear in a message: ids that break the rules are not echoed (they
    arrive from payload metadata or a mistyped setting and could be anything)."""
    return repr(key_id) if valid_key_id(key_id) else "<malformed key id>"


class PayloadDecryptionError(ValueError):
    """An encrypted payload could not be decrypted. The message names the key id only."""

    def __init__(self, key_id: str, reason: str) -> None:
        self.key_id = key_id
        super().__init__(
            f"cannot decrypt payload sealed with key {_printable_key_id(key_id)}: {reason}"
        )


class KeyRing:
    """The payload keys: the active one encrypts, all of them decrypt.

    Key bytes never appear in ``repr`` or in any error message.
    """

    __slots__ = ("_ciphers", "_ids")

    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise ValueError(f"{SETTING} holds no keys; `revsync keys new` prints one")
        ciphers: dict[str, AESGCM] = {}
        for key_id, key in keys:
            if not valid_key_id(key_id):
                raise ValueError(
                    f"{SETTING}: key id {_printable_key_id(key_id)} must be 1-32 characters "
                    "of A-Z a-z 0-9 _ . -"
                )
            if key_id in ciphers:
                raise ValueError(f"{SETTING}: key id {key_id!r} is listed twice")
            if len(key) != KEY_BYTES:
                raise ValueError(
                    f"{SETTING}: key {key_id!r} is {len(key)} bytes; AES-256 needs {KEY_BYTES}"
                )
            ciphers[key_id] = AESGCM(key)
        self._ids = tuple(ciphers)
        self._ciphers = ciphers

    @classmethod
    def parse(cls, text: str) -> KeyRing:
        """Parse ``KEY_ID:BASE64[,KEY_ID:BASE64...]`` (standard base64, 32-byte keys)."""
        entries = [entry.strip() for entry in text.split(",") if entry.strip()]
        if not entries:
            raise ValueError(f"{SETTING} holds no keys; `revsync keys new` prints one")
        keys: list[tuple[str, bytes]] = []
        for position, entry in enumerate(entries, start=1):
            key_id, colon, encoded = entry.partition(":")
            key_id = key_id.strip()
            if not colon or not key_id:
                # Without a separator the entry may be a bare key: never echo it.
                raise ValueError(f"{SETTING}: entry {position} is not KEY_ID:BASE64")
            if not valid_key_id(key_id):
                raise ValueError(
                    f"{SETTING}: entry {position} has a malformed key id (1-32 characters of "
                    "A-Z a-z 0-9 _ . -)"
                )
            try:
                key = base64.b64decode(encoded.strip(), validate=True)
            except (binascii.Error, ValueError):
                raise ValueError(f"{SETTING}: key {key_id!r} is not valid base64") from None
            keys.append((key_id, key))
        return cls(keys)

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        """The ring configured in ``settings``; :class:`MissingSetting` when there is none."""
        secret = settings.require_secret(
            "payload_keys",
            "every Temporal payload is encrypted with these keys; `revsync keys new` prints one",
        )
        return cls.parse(secret.get_secret_value())

    @property
    def active_key_id(self) -> str:
        return self._ids[0]

    @property
    def key_ids(self) -> tuple[str, ...]:
        return self._ids

    def cipher(self, key_id: str) -> AESGCM | None:
        return self._ciphers.get(key_id)

    def __repr__(self) -> str:
        return f"KeyRing(active={self.active_key_id!r}, key_ids={list(self._ids)!r})"


def generate_key_entry(key_id: str) -> str:
    """A fresh ``KEY_ID:BASE64`` entry for ``REVSYNC_PAYLOAD_KEYS`` (random 256-bit key)."""
    if not valid_key_id(key_id):
        raise ValueError(f"key id {key_id!r} must be 1-32 characters of A-Z a-z 0-9 _ . -")
    key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
    return f"{key_id}:{base64.b64encode(key).decode('ascii')}"


class AesGcmCodec(PayloadCodec):
    """Seals each whole payload (metadata included) with AES-256-GCM under the active key.

    The encrypted payload's data is the 96-bit random nonce followed by the ciphertext and
    tag; the key id is authenticated as associated data.
    """

    def __init__(self, keys: KeyRing) -> None:
        self._keys = keys

    @property
    def keys(self) -> KeyRing:
        return self._keys

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        key_id = self._keys.active_key_id
        cipher = self._keys.cipher(key_id)
        assert cipher is not None
        associated = key_id.encode("ascii")
        sealed: list[Payload] = []
        for payload in payloads:
            nonce = os.urandom(NONCE_BYTES)
            ciphertext = cipher.encrypt(nonce, payload.SerializeToString(), associated)
            sealed.append(
                Payload(
                    metadata={"encoding": ENCODING, KEY_ID_METADATA: associated},
                    data=nonce + ciphertext,
                )
            )
        return sealed

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._open(payload) for payload in payloads]

    def _open(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        raw_id = payload.metadata.get(KEY_ID_METADATA, b"")
        key_id = raw_id.decode("utf-8", errors="replace")
        if not key_id:
            raise PayloadDecryptionError("", "the payload does not name its key")
        cipher = self._keys.cipher(key_id)
        if cipher is None:
            raise PayloadDecryptionError(key_id, f"no such key in {SETTING}")
        data = payload.data
        if len(data) < NONCE_BYTES + _TAG_BYTES:
            raise PayloadDecryptionError(key_id, "the ciphertext is truncated")
        try:
            plaintext = cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], raw_id)
        except InvalidTag:
            raise PayloadDecryptionError(
                key_id, "authentication failed (tampered, or sealed with a different key)"
            ) from None
        try:
            return Payload.FromString(plaintext)
        except DecodeError:
            raise PayloadDecryptionError(key_id, "the plaintext is not a payload") from None


def encrypted_data_converter(keys: KeyRing) -> DataConverter:
    """The pydantic data converter, encrypting every payload and failure message.

    Failures are converted with encoded attributes: the message and stack trace move into an
    encrypted payload (the server shows "Encoded failure"), because vendor error messages can
    quote customer data back at us.
    """
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=AesGcmCodec(keys),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
