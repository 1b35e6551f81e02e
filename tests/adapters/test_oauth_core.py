"""The token source itself (adapters/oauth.py), on a scripted token endpoint."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from adapters.errors import TransientError
from adapters.oauth import AccessToken, ClientSecretGrant, OAuthTokens
from tests.adapters.oauth_support import Clock

TOKEN_URL = "https://login.example/services/oauth2/token"
Answer = Callable[[int], httpx.Response]


def tokens_on(answer: Answer, clock: Clock | None = None) -> tuple[OAuthTokens, list[int]]:
    """A token source whose endpoint gives ``answer(n)`` to the n-th request (from 1)."""
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(len(calls) + 1)
        return answer(calls[-1])

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    source = OAuthTokens(
        client,
        vendor="acme",
        token_url=TOKEN_URL,
        grant=ClientSecretGrant("id", "secret-value-123"),
        fix="REVSYNC_ACME_CLIENT_SECRET",
        clock=clock or Clock(),
    )
    return source, calls


def issued(n: int, **extra: Any) -> httpx.Response:
    return httpx.Response(200, json={"access_token": f"token-{n}", **extra})


async def test_late_refusals_of_a_replaced_token_do_not_fetch_again() -> None:
    """Twenty calls sent with the same token that all come back 401 invalidate that token;
    the first causes a fetch, the other nineteen find the new token."""
    source, calls = tokens_on(issued)
    stale = await source.get()
    fresh = []
    for _ in range(20):
        source.invalidate(stale)
        fresh.append(await source.get())
    assert calls == [1, 2]
    assert {t.value for t in fresh} == {"token-2"}


async def test_a_short_lifetime_is_renewed_halfway_and_a_long_one_a_minute_early() -> None:
    clock = Clock()
    source, calls = tokens_on(lambda n: issued(n, expires_in="90" if n == 1 else 600), clock)
    await source.get()
    clock.now += 44
    assert (await source.get()).value == "token-1"
    clock.now += 2  # past 45 s, half of 90
    assert (await source.get()).value == "token-2"
    clock.now += 539
    assert (await source.get()).value == "token-2"
    clock.now += 2  # past 600 - 60
    assert (await source.get()).value == "token-3"
    assert len(calls) == 3


@pytest.mark.parametrize(
    "body",
    [
        {"token_type": "bearer"},
        {"access_token": ""},
        {"access_token": "t", "expires_in": "soon"},
        {"access_token": "t", "expires_in": 0},
        {"access_token": "t", "instance_url": "javascript:alert(1)"},
        ["not", "an", "object"],
    ],
)
async def test_an_unusable_token_answer_is_transient(body: Any) -> None:
    source, _ = tokens_on(lambda n: httpx.Response(200, content=json.dumps(body)))
    with pytest.raises(TransientError, match="unexpected token answer"):
        await source.get()


async def test_a_token_request_without_an_answer_is_transient_not_unknown() -> None:
    def timeout(n: int) -> httpx.Response:
        raise httpx.ReadTimeout("no answer")

    source, _ = tokens_on(timeout)
    with pytest.raises(TransientError) as caught:
        await source.get()
    assert type(caught.value) is TransientError


async def test_a_refused_grant_names_the_fix_and_never_the_secret() -> None:
    source, _ = tokens_on(
        lambda n: httpx.Response(
            401, json={"error": "invalid_client", "error_description": "bad secret"}
        )
    )
    with pytest.raises(TransientError) as caught:
        await source.get()
    assert caught.value.code == "invalid_client"
    assert "REVSYNC_ACME_CLIENT_SECRET" in caught.value.message
    assert "secret-value-123" not in caught.value.describe()


def test_a_token_never_shows_in_its_repr() -> None:
    token = AccessToken("very-secret-token-value", 12.0, "https://na1.example")
    assert "very-secret-token-value" not in repr(token)
    assert "very-secret-token-value" not in str(token)
