"""Wire helpers every emulator shares: exact JSON both ways, bearer-token checks.

FastAPI's default encoder turns ``Decimal`` into float; the emulators answer with
:func:`json_response` instead, so money keeps every digit, as the real vendors send it.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from fastapi import Request, Response

from adapters.http import dumps_json


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response with ``Decimal`` written as an exact number."""
    return Response(
        content=dumps_json(body),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


async def read_json(request: Request) -> Any:
    """The request's JSON body with non-integer numbers as ``Decimal``; ``None`` when empty.
    Raises ``ValueError`` for a body that is not JSON."""
    raw = await request.body()
    if not raw:
        return None
    return json.loads(raw, parse_float=Decimal)


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if any."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
