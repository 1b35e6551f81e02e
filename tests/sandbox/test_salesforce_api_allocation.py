"""The Salesforce emulator meters the org's API request allocation as Salesforce does
(sandbox/salesforce_limits.py): every REST call counts over a rolling 24 hours, a composite
once; past the allocation every call is a 403 ``REQUEST_LIMIT_EXCEEDED``
(``TotalRequests Limit exceeded.``) with no ``Retry-After`` until usage ages out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from sandbox.app import DEFAULT_TOKENS, SandboxState, create_app

API = "/salesforce/services/data/v61.0"
AUTH = {"Authorization": f"Bearer {DEFAULT_TOKENS['salesforce']}"}
ACCOUNT = "0015e00000NordDE1"


class Clock:
    def __init__(self) -> None:
        self.now = 50_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def state() -> SandboxState:
    return SandboxState()


@pytest.fixture
def clock(state: SandboxState) -> Clock:
    clock = Clock()
    state.salesforce.api_allocation.clock = clock
    return clock


@pytest.fixture
async def http(state: SandboxState) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        yield client


async def allocate(http: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    answer = await http.post("/_sandbox/salesforce/api-allocation", json=body)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def get_account(http: httpx.AsyncClient) -> httpx.Response:
    return await http.get(f"{API}/sobjects/Account/{ACCOUNT}", headers=AUTH)


async def composite(http: httpx.AsyncClient, subrequests: int) -> httpx.Response:
    body = {
        "allOrNone": False,
        "compositeRequest": [
            {
                "method": "GET",
                "url": f"/services/data/v61.0/sobjects/Account/{ACCOUNT}",
                "referenceId": f"r{n}",
            }
            for n in range(subrequests)
        ],
    }
    return await http.post(f"{API}/composite", json=body, headers=AUTH)


def assert_refused(answer: httpx.Response) -> None:
    assert answer.status_code == 403
    assert answer.json() == [
        {
            "message": "TotalRequests Limit exceeded.",
            "errorCode": "REQUEST_LIMIT_EXCEEDED",
            "fields": [],
        }
    ]
    assert "retry-after" not in answer.headers


async def test_calls_count_against_the_allocation_and_past_it_every_call_is_refused(
    http: httpx.AsyncClient, clock: Clock
) -> None:
    await allocate(http, max=3)
    first = await get_account(http)
    assert first.status_code == 200
    assert first.headers["Sforce-Limit-Info"] == "api-usage=1/3"
    # A composite of five subrequests is one call.
    assert (await composite(http, 5)).headers["Sforce-Limit-Info"] == "api-usage=2/3"
    assert (
        await http.get(f"{API}/query", params={"q": "SELECT Id FROM Account"}, headers=AUTH)
    ).status_code == 200

    for refused in (
        await get_account(http),
        await composite(http, 1),
        await http.get(f"{API}/query", params={"q": "SELECT Id FROM Account"}, headers=AUTH),
        await http.patch(f"{API}/sobjects/Account/{ACCOUNT}", json={"Name": "x"}, headers=AUTH),
    ):
        assert_refused(refused)
        assert refused.headers["Sforce-Limit-Info"] == "api-usage=3/3"  # refusals are free
    assert (await http.get("/_sandbox/salesforce/api-allocation")).json() == {
        "max": 3,
        "used": 3,
        "refused": 4,
    }


async def test_the_allocation_recovers_only_as_the_last_24_hours_usage_ages_out(
    http: httpx.AsyncClient, clock: Clock
) -> None:
    await allocate(http, max=2)
    assert (await get_account(http)).status_code == 200
    clock.now += 3600
    assert (await get_account(http)).status_code == 200
    clock.now += 22 * 3600
    assert_refused(await get_account(http))  # 23 hours on: both calls still count
    clock.now += 3600
    assert (await get_account(http)).status_code == 200  # the first one aged out
    assert_refused(await get_account(http))


async def test_a_refused_token_is_no_api_call_and_the_allocation_is_off_by_default(
    http: httpx.AsyncClient,
) -> None:
    assert "Sforce-Limit-Info" not in (await get_account(http)).headers
    await allocate(http, max=1)
    stale = await http.get(
        f"{API}/sobjects/Account/{ACCOUNT}", headers={"Authorization": "Bearer stale"}
    )
    assert stale.status_code == 401
    assert (await get_account(http)).status_code == 200
    # Spent, then handed back by an operator (or a test): calls go through again.
    await allocate(http, max=10, used=10)
    assert_refused(await get_account(http))
    assert (await allocate(http, max=10, used=0))["used"] == 0
    assert (await get_account(http)).status_code == 200


async def test_the_control_refuses_nonsense(http: httpx.AsyncClient) -> None:
    for body in ({"max": -1}, {"max": "lots"}, {"max": 5, "used": -2}, {"max": True}):
        answer = await http.post("/_sandbox/salesforce/api-allocation", json=body)
        assert answer.status_code == 400, body
