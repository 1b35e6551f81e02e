"""Shared by the OAuth tests: an RSA key pair on disk, a hand-driven clock, a client that
records what it sends, and an independent JWT check (``cryptography`` only)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from sandbox.app import SandboxState, create_app


@dataclass
class KeyPair:
    key: rsa.RSAPrivateKey
    path: Path

    @property
    def private_pem(self) -> bytes:
        return self.path.read_bytes()

    @property
    def public_pem(self) -> str:
        return (
            self.key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )


def new_key_pair(directory: Path, name: str = "key.pem") -> KeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = directory / name
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return KeyPair(key, path)


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Recorder:
    """Every request the client sent: method, URL, form fields (token requests), status."""

    sent: list[httpx.Request] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)

    async def on_request(self, request: httpx.Request) -> None:
        self.sent.append(request)

    async def on_response(self, response: httpx.Response) -> None:
        self.statuses.append(response.status_code)

    def forms(self, path_suffix: str) -> list[dict[str, str]]:
        return [
            {k: v[0] for k, v in parse_qs(r.content.decode()).items()}
            for r in self.sent
            if r.url.path.endswith(path_suffix)
        ]

    def api_urls(self, marker: str) -> list[str]:
        return [str(r.url) for r in self.sent if marker in r.url.path]


@asynccontextmanager
async def recording_client(
    state: SandboxState,
) -> AsyncIterator[tuple[httpx.AsyncClient, Recorder]]:
    recorder = Recorder()
    transport = httpx.ASGITransport(app=create_app(state))
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://sandbox",
        event_hooks={"request": [recorder.on_request], "response": [recorder.on_response]},
    ) as client:
        yield client, recorder


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verified_jwt(token: str, public_key: rsa.RSAPublicKey) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of ``token`` after checking its signature with ``public_key``
    (raises ``InvalidSignature`` otherwise)."""
    head, body, signature = token.split(".")
    header = json.loads(_b64url_decode(head))
    claims = json.loads(_b64url_decode(body))
    pad: padding.AsymmetricPadding
    if header["alg"] == "RS256":
        pad = padding.PKCS1v15()
    elif header["alg"] == "PS256":
        pad = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    else:
        raise AssertionError(f"unexpected alg {header['alg']}")
    public_key.verify(_b64url_decode(signature), f"{head}.{body}".encode(), pad, hashes.SHA256())
    return header, claims
