"""The Salesforce emulator's all-or-none composite is a transaction of its own: a rollback
undoes what that composite wrote and nothing another request wrote meanwhile.

The bug these tests hold: a rollback used to restore a copy of the whole org taken when the
composite started, while an injected fault held the composite between two subrequests; every
write other requests made in that time (another saga's order, a quote marked Rejected, a
quote just created) was erased, and the chaos run saw BOOKED sagas without a CRM order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from sandbox.app import DEFAULT_TOKENS, SandboxState, create_app
from sandbox.salesforce import Transaction, seed_cpq_quote

API = "/services/data/v61.0"
AUTH = {"Authorization": f"Bearer {DEFAULT_TOKENS['salesforce']}"}
ACCOUNT = "0015e00000NordDE1"


@pytest.fixture
def state() -> SandboxState:
    return SandboxState()


@pytest.fixture
async def http(state: SandboxState) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        yield client


def new_quote(state: SandboxState) -> str:
    return str(seed_cpq_quote(state.salesforce, account_id=ACCOUNT)["quote_id"])


def booking(quote_id: str) -> dict[str, Any]:
    """What a CRM write-back sends: the order upserted by its key, then the quote marked
    Ordered, all or none."""
    return {
        "allOrNone": True,
        "compositeRequest": [
            {
                "method": "PATCH",
                "url": f"{API}/sobjects/Order/Revsync_Key__c/q2c-{quote_id}",
                "referenceId": "order",
                "body": {"AccountId": ACCOUNT, "Status": "Draft", "EffectiveDate": "2026-12-01"},
            },
            {
                "method": "PATCH",
                "url": f"{API}/sobjects/SBQQ__Quote__c/{quote_id}",
                "referenceId": "quote",
                "body": {"SBQQ__Status__c": "Ordered"},
            },
        ],
    }


async def composite(http: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    return await http.post(f"/salesforce{API}/composite", json=body, headers=AUTH)


async def inject(http: httpx.AsyncClient, **rule: Any) -> None:
    response = await http.post(
        "/_sandbox/faults", json={"faults": [{"vendor": "salesforce", **rule}]}
    )
    assert response.status_code == 200, response.text


def order_keys(state: SandboxState) -> set[str]:
    return {o["Revsync_Key__c"] for o in state.salesforce.snapshot()["orders"]}


def status(state: SandboxState, quote_id: str) -> str:
    return str(state.salesforce.get("SBQQ__Quote__c", quote_id)["SBQQ__Status__c"])


async def test_a_rolled_back_composite_keeps_what_other_requests_wrote_while_it_was_held(
    http: httpx.AsyncClient, state: SandboxState
):
    failing, other = new_quote(state), new_quote(state)
    # The failing composite's quote update meets a 503 held back for 0.3 s.
    await inject(http, operation="update", status=503, hang_ms=300)

    async def meanwhile() -> tuple[httpx.Response, httpx.Response, str]:
        await asyncio.sleep(0.05)  # while the failing composite is held
        booked = await composite(http, booking(other))
        rejected = await http.patch(
            f"/salesforce{API}/sobjects/SBQQ__Quote__c/{failing}",
            json={"SBQQ__Status__c": "Rejected"},
            headers=AUTH,
        )
        return booked, rejected, new_quote(state)

    held, (booked, rejected, created) = await asyncio.gather(
        composite(http, booking(failing)), meanwhile()
    )

    halted = held.json()["compositeResponse"]
    assert [a["httpStatusCode"] for a in halted] == [400, 503]
    assert [a["httpStatusCode"] for a in booked.json()["compositeResponse"]] == [201, 204]
    assert rejected.status_code == 204
    # Only the failing composite's own order is gone; the other booking, the other
    # request's status change and a quote created meanwhile all stand.
    assert order_keys(state) == {f"q2c-{other}"}
    assert status(state, other) == "Ordered"
    assert status(state, failing) == "Rejected"
    assert state.salesforce.get("SBQQ__Quote__c", created)["Id"] == created


async def test_concurrent_composites_one_failing_leave_the_others_whole(
    http: httpx.AsyncClient, state: SandboxState
):
    quotes = [new_quote(state) for _ in range(6)]
    # Two of the six meet a refusal of their quote update, held back a little.
    await inject(
        http,
        operation="update",
        status=400,
        code="FIELD_CUSTOM_VALIDATION_EXCEPTION",
        times=2,
        hang_ms=100,
    )
    answers = await asyncio.gather(*(composite(http, booking(q)) for q in quotes))

    booked = [
        q
        for q, answer in zip(quotes, answers, strict=True)
        if all(a["httpStatusCode"] < 400 for a in answer.json()["compositeResponse"])
    ]
    assert len(booked) == 4
    assert order_keys(state) == {f"q2c-{q}" for q in booked}
    assert [status(state, q) for q in quotes] == [
        "Ordered" if q in booked else "Accepted" for q in quotes
    ]


async def test_an_answer_lost_after_a_subrequest_commits_the_composite(
    http: httpx.AsyncClient, state: SandboxState
):
    """``after`` means applied, the answer lost: for the whole call, not half a transaction."""
    quote_id = new_quote(state)
    await inject(http, operation="update", status=504, phase="after")

    lost = await composite(http, booking(quote_id))

    assert lost.status_code == 504
    assert order_keys(state) == {f"q2c-{quote_id}"}
    assert status(state, quote_id) == "Ordered"
    retried = await composite(http, booking(quote_id))  # the keyed retry finds it
    assert [a["httpStatusCode"] for a in retried.json()["compositeResponse"]] == [200, 204]
    assert order_keys(state) == {f"q2c-{quote_id}"}


def test_a_rollback_restores_only_the_fields_it_wrote_unless_written_since(state: SandboxState):
    store = state.salesforce
    first, second = new_quote(state), new_quote(state)
    transaction = Transaction()
    with store.writing_for(transaction):
        store.update("SBQQ__Quote__c", first, {"SBQQ__Status__c": "Ordered"})
        store.update("SBQQ__Quote__c", second, {"SBQQ__Status__c": "Ordered"})
        store.update("SBQQ__Quote__c", second, {"SBQQ__Status__c": "Denied"})
        made = store.create(
            "Order", {"AccountId": ACCOUNT, "Status": "Draft", "EffectiveDate": "2026-12-01"}
        )
    # Another request, outside the transaction, writes the second quote after it.
    store.update("SBQQ__Quote__c", second, {"SBQQ__Status__c": "Rejected"})
    outside = store.create(
        "Order", {"AccountId": ACCOUNT, "Status": "Draft", "EffectiveDate": "2026-12-02"}
    )

    store.rollback(transaction)

    assert status(state, first) == "Accepted"  # back to before the transaction
    assert status(state, second) == "Rejected"  # the later write stands
    orders = {o["Id"] for o in store.snapshot()["orders"]}
    assert orders == {outside}
    assert made not in orders
