"""How the gateway says no: one error shape, one exception, one body-size check and one
token check, shared by the webhooks, the ops API and the codec server.

Every refusal is ``{"error": "<short reason>", ...}`` with its status code; a 401 for a
bearer token carries ``WWW-Authenticate: Bearer``. Reasons are short and never echo what the
caller sent.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from revsync.auth import Staff, TokenRegistry

BEARER_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def problem(
    status: int, reason: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse({"error": reason, **extra}, status_code=status, headers=headers)


class Refused(Exception):
    """A request refused before it was acted on; answered as :func:`problem`."""

    def __init__(
        self, status: int, reason: str, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(reason)
        self.status, self.reason, self.headers, self.extra = status, reason, headers, extra

    def response(self) -> JSONResponse:
        return problem(self.status, self.reason, self.headers, **self.extra)


async def refused_handler(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, Refused)
    return error.response()


async def read_body(request: Request, limit: int) -> bytes:
    """The body, or 413 when it (or its declared length) is over ``limit`` bytes. Read in
    chunks, so an oversized body without a declared length is refused once it passes the
    limit, not after all of it is in memory."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Refused(413, f"body larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise Refused(413, f"body larger than {limit} bytes")
    return bytes(body)


def require_staff(registry: TokenRegistry, token: str | None, *, missing: str) -> Staff:
    """The holder of ``token``; 401 saying ``missing`` without one, or for an unknown one."""
    if not token:
        raise Refused(401, missing, BEARER_CHALLENGE)
    staff = registry.authenticate(token)
    if staff is None:
        raise Refused(401, "unknown token", BEARER_CHALLENGE)
    return staff


# -- what the OpenAPI document says about refusals ------------------------------------------


class Problem(BaseModel):
    """A refusal: a short reason; a 422 of a webhook adds ``fields`` (field, message)."""

    model_config = ConfigDict(extra="allow")

    error: str


class BodyNotParsed(BaseModel):
    """FastAPI's answer to a body it cannot read as the declared media type (400)."""

    detail: str


_REFUSAL_TEXT: dict[int, str] = {
    400: "The body could not be parsed",
    401: "No bearer token, or an unknown one",
    403: "The token's holder lacks the role this action needs",
    404: "Nothing of that id",
    409: "Refused by the saga, or the saga has ended (the reason is in `error`)",
}


def staff_refusals(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of an ops route for ``statuses`` (400, 401, 403, 404, 409): each a
    :class:`Problem` (a 400 FastAPI's :class:`BodyNotParsed`); 401 with its challenge."""
    documented: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {
            "model": BodyNotParsed if status == 400 else Problem,
            "description": _REFUSAL_TEXT[status],
        }
        if status == 401:
            entry["headers"] = {
                "WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}
            }
        documented[status] = entry
    return documented
