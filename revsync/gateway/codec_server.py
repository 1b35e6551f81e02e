"""The codec server: decrypts (and encrypts) Temporal payloads for staff over HTTP.

The Temporal Web UI and the ``temporal`` CLI cannot read revsync's encrypted payloads on
their own; pointed at this app (the gateway mounts it at ``/codec``) they send the payloads
here and show what comes back. The protocol is Temporal's remote codec protocol:

- ``POST /decode`` and ``POST /encode`` (also ``/{namespace}/decode|encode`` for UIs that put
  the namespace in the endpoint URL), body and response ``{"payloads": [...]}``: the protobuf
  JSON form of ``temporal.api.common.v1.Payloads``.

Who may call it: holders of a staff token with the ``payload_reader`` role, presented either

- as ``Authorization: Bearer <token>`` (the CLI's ``--codec-auth``, a Web UI that forwards
  credentials), or
- in the URL, ``/t/<token>/decode`` (and ``/t/<token>/{namespace}/decode``), for UIs that
  cannot send headers, such as the local dev server's Web UI. **That URL is then a secret**
  as good as the token itself: keep it out of shared configuration, screenshots and chat.
  The token segment is cut out of the request path before anything downstream (routing,
  the server's access log) sees it, so it does not end up in logs.

When both are present, the token in the URL is the one checked.

Answers: 401 without a token or with an unknown one, 403 when the holder lacks
``payload_reader``, 400 when the body is not a ``Payloads`` document, 413 when it is too
large, 422 when a payload cannot be decrypted (the message names only the key id). CORS lets
exactly the configured Web UI origins call it, with credentials; preflight needs no token.
Payload contents and tokens are never logged; each call is logged with the caller's name,
the namespace and the number of payloads, as an audit trail of who decrypted what.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any, Literal
from urllib.parse import quote

import structlog
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from google.protobuf import json_format
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.converter import PayloadCodec

from revsync.auth import StaffRole, TokenRegistry, bearer_token
from revsync.codec import PayloadDecryptionError, valid_key_id
from revsync.gateway.refusals import Refused, problem, read_body, require_staff

MAX_BODY_BYTES = 8 * 1024 * 1024
PATH_TOKEN_SCOPE_KEY = "revsync.codec.path_token"
REDACTED = "redacted"
ALLOWED_HEADERS = ["Authorization", "Content-Type", "X-Namespace"]

Operation = Literal["encode", "decode"]
OPERATIONS: tuple[Operation, ...] = ("encode", "decode")

log = structlog.get_logger("revsync.codec")

_PATH_TOKEN = re.compile(r"^/t/([^/]+)(/.*)?$")


class _PathTokenMiddleware:
    """Moves a ``/t/<token>`` path prefix into the scope and redacts it from the path.

    The scope dict is edited in place on purpose: it is the same dict the HTTP server (and a
    mounting app) log the request path from once the response starts.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            root_path: str = scope.get("root_path", "")
            prefix = root_path if root_path and path.startswith(root_path) else ""
            match = _PATH_TOKEN.match(path[len(prefix) :])
            if match is not None:
                scope[PATH_TOKEN_SCOPE_KEY] = match.group(1)
                redacted = f"{prefix}/t/{REDACTED}{match.group(2) or ''}"
                scope["path"] = redacted
                scope["raw_path"] = quote(redacted).encode("ascii")
        await self.app(scope, receive, send)


async def _read_payloads(request: Request) -> Payloads:
    body = await read_body(request, MAX_BODY_BYTES)
    try:
        document: Any = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise Refused(400, "body is not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("payloads"), list):
        raise Refused(400, 'body must be {"payloads": [...]}')
    try:
        return json_format.ParseDict(document, Payloads())
    except json_format.ParseError:
        # The parser's message can quote the offending value: do not echo it.
        raise Refused(400, "payloads are not protobuf-JSON Payload objects") from None


def _payloads_document(payloads: list[Payload]) -> dict[str, Any]:
    return {"payloads": [json_format.MessageToDict(payload) for payload in payloads]}


def create_codec_app(
    codec: PayloadCodec, registry: TokenRegistry, allowed_origins: list[str]
) -> FastAPI:
    """The codec server as an ASGI app, to mount (the gateway mounts it at ``/codec``)."""
    app = FastAPI(
        title="revsync codec server",
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )

    async def serve(request: Request, operation: Operation) -> Response:
        token = request.scope.get(PATH_TOKEN_SCOPE_KEY) or bearer_token(
            request.headers.get("authorization")
        )
        try:
            staff = require_staff(registry, token, missing="a payload_reader token is required")
            if not staff.has(StaffRole.PAYLOAD_READER):
                raise Refused(403, f"the {StaffRole.PAYLOAD_READER} role is required")
            payloads = await _read_payloads(request)
        except Refused as refused:
            return refused.response()
        namespace = request.path_params.get("namespace") or request.headers.get("x-namespace")
        try:
            if operation == "decode":
                result = await codec.decode(payloads.payloads)
            else:
                result = await codec.encode(payloads.payloads)
        except PayloadDecryptionError as error:
            log.warning(
                "payload decryption failed",
                staff=staff.name,
                namespace=namespace,
                key_id=error.key_id if valid_key_id(error.key_id) else "<malformed>",
            )
            return problem(422, str(error))
        log.info(
            f"payloads {operation}d",
            staff=staff.name,
            namespace=namespace,
            count=len(result),
        )
        return JSONResponse(_payloads_document(result))

    def endpoint(operation: Operation) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            return await serve(request, operation)

        return handle

    for prefix in ("", "/{namespace}", f"/t/{REDACTED}", f"/t/{REDACTED}/{{namespace}}"):
        for operation in OPERATIONS:
            app.add_route(f"{prefix}/{operation}", endpoint(operation), methods=["POST"])

    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(allowed_origins),
        allow_methods=["POST", "OPTIONS"],
        allow_headers=ALLOWED_HEADERS,
        allow_credentials=True,
    )
    # Added last, so outermost: the token leaves the path before anything else looks at it.
    app.add_middleware(_PathTokenMiddleware)
    return app


# -- what the OpenAPI document says about the codec server ----------------------------------

_PAYLOADS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["payloads"],
    "properties": {
        "payloads": {
            "type": "array",
            "items": {
                "type": "object",
                "description": "temporal.api.common.v1.Payload in protobuf JSON: metadata "
                "values and data are base64",
                "properties": {
                    "metadata": {
                        "type": "object",
                        "additionalProperties": {"type": "string", "contentEncoding": "base64"},
                    },
                    "data": {"type": "string", "contentEncoding": "base64"},
                },
            },
        }
    },
}


# Starlette's own 404: {"detail": "Not Found"}.
_NOT_FOUND_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["detail"],
    "properties": {"detail": {"type": "string"}},
}


def openapi_paths(mounted_at: str) -> dict[str, Any]:
    """The codec server's operations as OpenAPI path items, for the gateway's document (the
    mounted app has no document of its own). The ``/t/<token>`` forms are left out: a token
    belongs in the Authorization header wherever the caller can send one."""

    def refusal(text: str) -> dict[str, Any]:
        return {
            "description": text,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }

    paths: dict[str, Any] = {}
    for prefix in ("", "/{namespace}"):
        for operation in OPERATIONS:
            parameters = (
                [
                    {
                        "name": "namespace",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ]
                if prefix
                else []
            )
            paths[f"{mounted_at}{prefix}/{operation}"] = {
                "post": {
                    "tags": ["codec"],
                    "summary": f"{operation.capitalize()} Temporal payloads (remote codec "
                    "protocol), for a payload_reader",
                    "operationId": f"codec_{operation}{'_in_namespace' if prefix else ''}",
                    "parameters": parameters,
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _PAYLOADS_SCHEMA}},
                    },
                    "responses": {
                        "200": {
                            "description": f"The {operation}d payloads, in the same order",
                            "content": {"application/json": {"schema": _PAYLOADS_SCHEMA}},
                        },
                        "400": refusal('Not JSON, or not {"payloads": [...]} of Payloads'),
                        "401": {
                            **refusal("No bearer token, or an unknown one"),
                            "headers": {
                                "WWW-Authenticate": {
                                    "description": "Bearer",
                                    "schema": {"type": "string"},
                                }
                            },
                        },
                        "403": refusal("The token's holder lacks payload_reader"),
                        "413": refusal("Body over 8 MiB"),
                        "422": refusal("A payload could not be decrypted (names only its key)"),
                        **(
                            {
                                "404": {
                                    "description": "The namespace is no path segment the "
                                    "codec server routes (it holds a line break)",
                                    "content": {"application/json": {"schema": _NOT_FOUND_SCHEMA}},
                                }
                            }
                            if prefix
                            else {}
                        ),
                    },
                }
            }
    return paths
