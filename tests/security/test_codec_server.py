"""The codec server: the remote codec protocol, who may call it, CORS, and what it refuses."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from google.protobuf import json_format
from starlette.types import ASGIApp, Receive, Scope, Send
from structlog.testing import capture_logs
from temporalio.api.common.v1 import Payload

from revsync.auth import StaffRole, StaffToken, TokenRegistry, digest, new_token
from revsync.codec import KEY_ID_METADATA, AesGcmCodec, KeyRing, generate_key_entry
from revsync.gateway.codec_server import MAX_BODY_BYTES, create_codec_app

PII = "ada.lovelace@example.com"
UI = "http://localhost:8233"
READER = new_token()
OPERATOR = new_token()
CODEC = AesGcmCodec(KeyRing.parse(generate_key_entry("k1")))
REGISTRY = TokenRegistry(
    [
        StaffToken(
            name="Ada Reader",
            roles=frozenset({StaffRole.PAYLOAD_READER, StaffRole.FINANCE}),
            token_sha256=digest(READER),
        ),
        StaffToken(
            name="Otto Operator",
            roles=frozenset({StaffRole.OPERATOR}),
            token_sha256=digest(OPERATOR),
        ),
    ]
)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    app = create_codec_app(CODEC, REGISTRY, [UI, "http://127.0.0.1:8233"])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        yield client


def plain(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(text).encode())


def document(*payloads: Payload) -> dict[str, Any]:
    return {"payloads": [json_format.MessageToDict(p) for p in payloads]}


def payloads_of(response: httpx.Response) -> list[Payload]:
    body = response.json()
    return [json_format.ParseDict(item, Payload()) for item in body["payloads"]]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/decode", bearer(READER)),
        ("/default/decode", bearer(READER)),
        (f"/t/{READER}/decode", {}),
        (f"/t/{READER}/default/decode", {}),
        (f"/t/{READER}/decode", bearer("rvs_someone-elses-sso-token")),
    ],
)
async def test_decode_returns_the_plaintext_payloads(http, path, headers):
    sealed = await CODEC.encode([plain(PII), plain("second")])

    response = await http.post(path, json=document(*sealed), headers=headers)

    assert response.status_code == 200, response.text
    assert payloads_of(response) == [plain(PII), plain("second")]


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/encode", bearer(READER)),
        ("/default/encode", bearer(READER)),
        (f"/t/{READER}/encode", {}),
        (f"/t/{READER}/default/encode", {}),
    ],
)
async def test_encode_seals_payloads_the_codec_can_open(http, path, headers):
    response = await http.post(path, json=document(plain(PII)), headers=headers)

    assert response.status_code == 200, response.text
    [sealed] = payloads_of(response)
    assert sealed.metadata[KEY_ID_METADATA] == b"k1"
    assert PII not in response.text
    assert await CODEC.decode([sealed]) == [plain(PII)]


async def test_plaintext_payloads_pass_through_decode(http):
    response = await http.post("/decode", json=document(plain(PII)), headers=bearer(READER))
    assert response.status_code == 200
    assert payloads_of(response) == [plain(PII)]


async def test_an_empty_list_is_answered_in_kind(http):
    response = await http.post("/decode", json={"payloads": []}, headers=bearer(READER))
    assert response.status_code == 200
    assert response.json() == {"payloads": []}


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/decode", {}),
        ("/decode", {"Authorization": "Basic YWRhOnB3"}),
        ("/decode", bearer("rvs_not-a-configured-token")),
        ("/default/decode", bearer("rvs_not-a-configured-token")),
        ("/t/rvs_not-a-configured-token/decode", {}),
        ("/t/rvs_not-a-configured-token/decode", bearer(READER)),
    ],
)
async def test_missing_or_unknown_tokens_get_401(http, path, headers):
    sealed = await CODEC.encode([plain(PII)])
    response = await http.post(path, json=document(*sealed), headers=headers)

    assert response.status_code == 401
    assert "error" in response.json()
    assert response.headers["www-authenticate"] == "Bearer"
    assert PII not in response.text


@pytest.mark.parametrize("path", ["/decode", "/encode", f"/t/{OPERATOR}/decode"])
async def test_a_token_without_payload_reader_gets_403(http, path):
    sealed = await CODEC.encode([plain(PII)])
    headers = {} if path.startswith("/t/") else bearer(OPERATOR)

    response = await http.post(path, json=document(*sealed), headers=headers)

    assert response.status_code == 403
    assert "payload_reader" in response.json()["error"]
    assert PII not in response.text


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff\xfe",
        b"[]",
        b"{}",
        b'{"payloads": {}}',
        b'{"payloads": [42]}',
        b'{"payloads": [{"data": "%%% not base64 %%%"}]}',
        b'{"payloads": [{"metadata": {"encoding": "anNvbi9wbGFpbg=="}, "surprise": 1}]}',
    ],
)
async def test_a_body_that_is_not_payloads_gets_400(http, body):
    response = await http.post(
        "/decode",
        content=body,
        headers=bearer(READER) | {"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert "error" in response.json()
    assert "%%%" not in response.text


async def test_an_oversized_body_gets_413(http):
    huge = base64.b64encode(b"x" * MAX_BODY_BYTES).decode()
    response = await http.post(
        "/decode", json={"payloads": [{"data": huge}]}, headers=bearer(READER)
    )
    assert response.status_code == 413


async def test_an_undecryptable_payload_gets_422_naming_only_the_key_id(http):
    other = AesGcmCodec(KeyRing.parse(generate_key_entry("retired-2025")))
    sealed = await other.encode([plain(PII)])

    response = await http.post("/decode", json=document(*sealed), headers=bearer(READER))

    assert response.status_code == 422
    error = response.json()["error"]
    assert "'retired-2025'" in error
    assert PII not in response.text


async def test_only_post_is_served(http):
    response = await http.get("/decode", headers=bearer(READER))
    assert response.status_code == 405


PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
}


@pytest.mark.parametrize("path", ["/decode", "/default/encode", f"/t/{READER}/decode"])
async def test_preflight_from_the_ui_origin_is_allowed_without_a_token(http, path):
    response = await http.options(path, headers=PREFLIGHT | {"Origin": UI})

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == UI
    assert response.headers["access-control-allow-credentials"] == "true"
    allowed = {
        h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")
    }
    assert {"authorization", "content-type", "x-namespace"} <= allowed
    assert "POST" in response.headers["access-control-allow-methods"]


async def test_preflight_from_another_origin_is_not_allowed(http):
    response = await http.options("/decode", headers=PREFLIGHT | {"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in response.headers


async def test_responses_to_the_ui_origin_carry_cors_headers(http):
    sealed = await CODEC.encode([plain(PII)])
    ok = await http.post("/decode", json=document(*sealed), headers=bearer(READER) | {"Origin": UI})
    refused = await http.post("/decode", json=document(*sealed), headers={"Origin": UI})
    foreign = await http.post(
        "/decode",
        json=document(*sealed),
        headers=bearer(READER) | {"Origin": "https://evil.example"},
    )

    assert ok.headers["access-control-allow-origin"] == UI
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == UI
    assert "access-control-allow-origin" not in foreign.headers


async def test_logs_name_the_caller_but_never_the_token_or_payloads(http):
    sealed = await CODEC.encode([plain(PII)])
    with capture_logs() as logs:
        await http.post(f"/t/{READER}/decode", json=document(*sealed))
        await http.post("/decode", json=document(*sealed), headers=bearer(READER))
        other = AesGcmCodec(KeyRing.parse(generate_key_entry("gone")))
        await http.post(
            "/decode", json=document(*await other.encode([plain(PII)])), headers=bearer(READER)
        )

    assert [entry["event"] for entry in logs] == [
        "payloads decoded",
        "payloads decoded",
        "payload decryption failed",
    ]
    assert all(entry["staff"] == "Ada Reader" for entry in logs)
    text = repr(logs)
    assert READER not in text
    assert PII not in text


class ScopeRecorder:
    """Stands in for the HTTP server: keeps the scope it passed down, to read the path it
    would write to its access log after the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.scopes: list[Scope] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.scopes.append(scope)
        await self.app(scope, receive, send)


async def test_mounted_at_codec_the_path_token_works_and_is_redacted_from_the_path():
    gateway = FastAPI()
    gateway.mount("/codec", create_codec_app(CODEC, REGISTRY, [UI]))
    recorder = ScopeRecorder(gateway)
    sealed = await CODEC.encode([plain(PII)])

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=recorder), base_url="http://gw"
    ) as client:
        by_path = await client.post(f"/codec/t/{READER}/default/decode", json=document(*sealed))
        by_header = await client.post(
            "/codec/decode", json=document(*sealed), headers=bearer(READER)
        )

    assert by_path.status_code == 200, by_path.text
    assert by_header.status_code == 200, by_header.text
    assert payloads_of(by_path) == [plain(PII)]
    logged_path, header_path = (scope["path"] for scope in recorder.scopes)
    assert logged_path == "/codec/t/redacted/default/decode"
    assert READER.encode() not in recorder.scopes[0]["raw_path"]
    assert header_path == "/codec/decode"
