"""Salesforce composite requests: fewer calls where the adapter made several, the same
idempotency and error classes, and the emulator's composite endpoint itself."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from adapters.crm.salesforce import SalesforceCrm, Subrequest
from adapters.errors import RejectedError, TransientError
from domain.order import SalesOrder, SalesOrderStatus, Subscription, SubscriptionStatus
from sandbox.app import DEFAULT_TOKENS, SandboxState
from sandbox.salesforce import PRODUCT_IDS, seed_cpq_quote

BASE_URL = "http://sandbox/salesforce"
API = "/services/data/v61.0"
TOKEN = DEFAULT_TOKENS["salesforce"]
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def calls(http: httpx.AsyncClient) -> list[str]:
    """Every request the adapter sends to the sandbox, as ``METHOD path``."""
    seen: list[str] = []

    async def record(request: httpx.Request) -> None:
        if not request.url.path.startswith("/_sandbox"):
            seen.append(f"{request.method} {request.url.path.removeprefix('/salesforce')}")

    http.event_hooks["request"].append(record)
    return seen


@pytest.fixture
def crm(http: httpx.AsyncClient, calls: list[str]) -> SalesforceCrm:
    return SalesforceCrm(http, base_url=BASE_URL, api_version="v61.0", access_token=TOKEN)


def quote_of(state: SandboxState) -> str:
    return str(seed_cpq_quote(state.salesforce, account_id="0015e00000NordDE1")["quote_id"])


async def record(crm: SalesforceCrm, quote_id: str, total: str = "1512.00") -> str:
    return await crm.record_order(
        quote_id=quote_id,
        account_id="0015e00000NordDE1",
        order_key=f"q2c-{quote_id}:crm-order",
        sales_order=SalesOrder(
            order_id="5501",
            external_id=f"q2c-{quote_id}:erp-order",
            customer_id="301",
            currency="EUR",
            total=Decimal(total),
            status=SalesOrderStatus.PENDING_FULFILLMENT,
        ),
        subscription=Subscription(
            subscription_id="sub_1Q2c",
            customer_id="cus_9Z",
            currency="EUR",
            status=SubscriptionStatus.ACTIVE,
        ),
    )


def orders(state: SandboxState) -> list[dict[str, Any]]:
    return list(state.salesforce.snapshot()["orders"])


def quote_status(state: SandboxState, quote_id: str) -> str:
    return str(state.salesforce.get("SBQQ__Quote__c", quote_id)["SBQQ__Status__c"])


async def inject(http: httpx.AsyncClient, **rule: Any) -> None:
    response = await http.post(
        "/_sandbox/faults", json={"faults": [{"vendor": "salesforce", **rule}]}
    )
    assert response.status_code == 200, response.text


# -- fewer calls ------------------------------------------------------------------------------


async def test_recording_an_order_reads_then_writes_in_one_all_or_none_call(
    crm: SalesforceCrm, state: SandboxState, calls: list[str]
):
    quote_id = quote_of(state)
    key = f"q2c-{quote_id}:crm-order"
    reads = [f"GET {API}/query", f"GET {API}/query"]  # the quote, then its orders

    # Ordering the quote (CPQ generates the order), reading the generated order, stamping
    # it and activating it: one composite call, all or none.
    order_id = await record(crm, quote_id)
    assert calls == [*reads, f"POST {API}/composite"]
    calls.clear()
    # A retry reads, finds the order stamped and activated, and writes nothing.
    assert await record(crm, quote_id) == order_id
    assert calls == reads
    mine = [o for o in orders(state) if o["Revsync_Key__c"] == key]
    assert [o["Id"] for o in mine] == [order_id]
    assert quote_status(state, quote_id) == "Ordered"


# -- all or none, and the error classes of subrequests ---------------------------------------------


async def test_a_failing_quote_update_rolls_the_order_back_and_is_transient(
    crm: SalesforceCrm, http: httpx.AsyncClient, state: SandboxState
):
    quote_id = quote_of(state)
    await inject(http, operation="update", status=503, code="SERVER_UNAVAILABLE")

    with pytest.raises(TransientError) as caught:
        await record(crm, quote_id)

    assert (caught.value.status, caught.value.code) == (503, "SERVER_UNAVAILABLE")
    assert orders(state) == []  # the quote was not ordered: CPQ generated nothing
    assert quote_status(state, quote_id) == "Accepted"
    assert await record(crm, quote_id)  # the retry books both
    assert quote_status(state, quote_id) == "Ordered"


async def test_a_refused_order_is_rejected_with_its_own_code_not_the_halt(
    crm: SalesforceCrm, state: SandboxState
):
    # CPQ orders only a primary quote: the first subrequest is refused, the others halted.
    quote_id = str(
        seed_cpq_quote(state.salesforce, account_id="0015e00000NordDE1", primary=False)["quote_id"]
    )
    with pytest.raises(RejectedError) as caught:
        await record(crm, quote_id)
    assert (caught.value.status, caught.value.code) == (400, "FIELD_CUSTOM_VALIDATION_EXCEPTION")
    assert "primary" in caught.value.message
    assert quote_status(state, quote_id) == "Accepted"  # never marked Ordered
    assert orders(state) == []


async def test_a_throttled_subrequest_carries_retry_after(
    crm: SalesforceCrm, http: httpx.AsyncClient, state: SandboxState
):
    quote_id = quote_of(state)
    await inject(http, operation="update", status=429, retry_after=9, code="REQUEST_LIMIT_EXCEEDED")
    with pytest.raises(TransientError) as caught:
        await record(crm, quote_id)
    assert (caught.value.status, caught.value.retry_after) == (429, 9)


async def test_a_lost_composite_answer_applied_everything_and_the_retry_finds_it(
    crm: SalesforceCrm, http: httpx.AsyncClient, state: SandboxState
):
    quote_id = quote_of(state)
    await inject(http, operation="composite", status=502, phase="after")
    with pytest.raises(TransientError):
        await record(crm, quote_id)
    (applied,) = orders(state)
    assert quote_status(state, quote_id) == "Ordered"
    assert await record(crm, quote_id) == applied["Id"]
    assert len(orders(state)) == 1


# -- the emulator's composite endpoint ------------------------------------------------------------


async def composite(http: httpx.AsyncClient, body: Any) -> httpx.Response:
    return await http.post(f"/salesforce{API}/composite", json=body, headers=AUTH)


async def test_a_later_subrequest_reads_an_earlier_answer_by_reference(
    http: httpx.AsyncClient, state: SandboxState
):
    response = await composite(
        http,
        {
            "allOrNone": True,
            "compositeRequest": [
                {
                    "method": "POST",
                    "url": f"{API}/sobjects/SBQQ__Quote__c",
                    "referenceId": "newQuote",
                    "body": {"SBQQ__Account__c": "0015e00000AcmeUS1", "SBQQ__Status__c": "Draft"},
                },
                {
                    "method": "POST",
                    "url": f"{API}/sobjects/SBQQ__QuoteLine__c",
                    "referenceId": "line",
                    "body": {
                        "SBQQ__Quote__c": "@{newQuote.id}",
                        "SBQQ__Product__c": PRODUCT_IDS["PLAT-CORE"],
                        "SBQQ__Quantity__c": 3,
                    },
                },
                {
                    "method": "GET",
                    "url": f"{API}/sobjects/SBQQ__Quote__c/@{{newQuote.id}}",
                    "referenceId": "readBack",
                },
            ],
        },
    )
    assert response.status_code == 200
    answers = response.json()["compositeResponse"]
    assert [(a["referenceId"], a["httpStatusCode"]) for a in answers] == [
        ("newQuote", 201),
        ("line", 201),
        ("readBack", 200),
    ]
    quote_id = answers[0]["body"]["id"]
    assert answers[2]["body"]["Id"] == quote_id
    (line,) = state.salesforce.snapshot()["quote_lines"]
    assert line["SBQQ__Quote__c"] == quote_id


async def test_without_all_or_none_only_what_failed_is_missing(
    http: httpx.AsyncClient, state: SandboxState
):
    response = await composite(
        http,
        {
            "compositeRequest": [
                {
                    "method": "POST",
                    "url": f"{API}/sobjects/SBQQ__Quote__c",
                    "referenceId": "bad",
                    "body": {"SBQQ__Account__c": "001000000000000AAA"},
                },
                {
                    "method": "POST",
                    "url": f"{API}/sobjects/SBQQ__Quote__c",
                    "referenceId": "good",
                    "body": {"SBQQ__Account__c": "0015e00000AcmeUS1"},
                },
                {
                    "method": "GET",
                    "url": f"{API}/sobjects/SBQQ__Quote__c/@{{bad.id}}",
                    "referenceId": "dependsOnBad",
                },
            ]
        },
    )
    answers = response.json()["compositeResponse"]
    assert [a["httpStatusCode"] for a in answers] == [400, 201, 400]
    assert answers[0]["body"][0]["errorCode"] == "INVALID_CROSS_REFERENCE_KEY"
    assert answers[2]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert [q["Id"] for q in state.salesforce.snapshot()["quotes"]] == [answers[1]["body"]["id"]]


async def test_all_or_none_rolls_back_and_halts_every_other_subrequest(
    http: httpx.AsyncClient, state: SandboxState
):
    response = await composite(
        http,
        {
            "allOrNone": True,
            "compositeRequest": [
                {
                    "method": "POST",
                    "url": f"{API}/sobjects/SBQQ__Quote__c",
                    "referenceId": "good",
                    "body": {"SBQQ__Account__c": "0015e00000AcmeUS1"},
                },
                {
                    "method": "POST",
                    "url": f"{API}/sobjects/SBQQ__Quote__c",
                    "referenceId": "bad",
                    "body": {"No_Such_Field__c": 1},
                },
                {
                    "method": "GET",
                    "url": f"{API}/query?q=SELECT+Id+FROM+Account",
                    "referenceId": "q",
                },
            ],
        },
    )
    answers = response.json()["compositeResponse"]
    assert [a["httpStatusCode"] for a in answers] == [400, 400, 400]
    codes = [a["body"][0]["errorCode"] for a in answers]
    assert codes == ["PROCESSING_HALTED", "INVALID_FIELD", "PROCESSING_HALTED"]
    assert state.salesforce.snapshot()["quotes"] == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"compositeRequest": []}, "INVALID_BATCH_REQUEST"),
        (
            {
                "compositeRequest": [
                    {"method": "GET", "url": f"{API}/sobjects/Account/x", "referenceId": "r"}
                ]
                * 2
            },
            "INVALID_BATCH_REQUEST",
        ),
        (
            {
                "compositeRequest": [
                    {"method": "GET", "url": f"{API}/sobjects/Account/x", "referenceId": f"r{n}"}
                    for n in range(26)
                ]
            },
            "INVALID_BATCH_REQUEST",
        ),
        (
            {
                "compositeRequest": [
                    {
                        "method": "GET",
                        "url": f"{API}/query?q=SELECT+Id+FROM+Account",
                        "referenceId": f"q{n}",
                    }
                    for n in range(6)
                ]
            },
            "INVALID_BATCH_REQUEST",
        ),
        ({"compositeRequest": [{"method": "GET", "url": f"{API}/query"}]}, "JSON_PARSER_ERROR"),
    ],
    ids=["empty", "repeated-reference", "26-subrequests", "6-queries", "no-reference"],
)
async def test_a_malformed_composite_is_refused_whole(
    http: httpx.AsyncClient, body: dict[str, Any], code: str
):
    response = await composite(http, body)
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == code


async def test_the_adapter_refuses_more_than_25_subrequests_before_sending(
    crm: SalesforceCrm, calls: list[str]
):
    subrequests = [Subrequest("GET", f"{API}/sobjects/Account/x", f"r{n}") for n in range(26)]
    with pytest.raises(ValueError, match="1 to 25"):
        await crm.composite("test", subrequests, all_or_none=False)
    assert calls == []


async def test_a_composite_answer_without_results_is_transient(
    http: httpx.AsyncClient, state: SandboxState
):
    def broken(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"compositeResponse": [{"referenceId": "order"}]})

    async with httpx.AsyncClient(transport=httpx.MockTransport(broken)) as mock:
        crm = SalesforceCrm(mock, base_url=BASE_URL, api_version="v61.0", access_token=TOKEN)
        with pytest.raises(TransientError, match="unexpected response"):
            await crm.composite(
                "test", [Subrequest("GET", f"{API}/sobjects/Account/x", "order")], all_or_none=True
            )
