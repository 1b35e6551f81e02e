"""Stripe quotes in the emulator and the adapter's read of their lines: a quote's
``line_items`` are includable, so neither an event nor a plain retrieval carries them;
``GET /v1/quotes/<id>/line_items`` pages through them."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from adapters.billing.stripe import StripeBilling
from adapters.errors import ConfigurationError, NotFoundError, TransientError
from adapters.webhooks import stripe as stripe_webhooks
from sandbox.app import DEFAULT_TOKENS, SandboxState
from sandbox.stripe import SandboxQuote

BASE_URL = "http://sandbox/stripe"
API_KEY = DEFAULT_TOKENS["stripe"]
AUTH = {"Authorization": f"Bearer {API_KEY}"}
SECRET = "whsec_sandbox_quotes"


def make_quote(state: SandboxState, quote_id: str, count: int = 3, **spec: Any) -> dict[str, Any]:
    lines = [
        {
            "sku": f"SKU-{n:03d}",
            "quantity": 2,
            "unit_amount": 1000 + n,
            "recurring": "month" if n % 2 else None,
            "discount": 100 if n == 1 else 0,
            "tax": 50 if n == 2 else 0,
        }
        for n in range(1, count + 1)
    ]
    body = {"id": quote_id, "account_id": "0015e00000AcmeUS1", "lines": lines, **spec}
    return state.stripe.create_sandbox_quote(SandboxQuote.model_validate(body))


@pytest.fixture
def billing(http: httpx.AsyncClient) -> StripeBilling:
    return StripeBilling(http, base_url=BASE_URL, api_key=API_KEY)


# --- the emulator: what Stripe sends and answers ------------------------------------------


def test_an_event_carries_the_quote_without_its_includable_lines(state: SandboxState) -> None:
    made = make_quote(state, "qt_1Event", count=2)
    event = state.stripe.quote_event("qt_1Event")
    quote = event["data"]["object"]
    assert (event["type"], event["api_version"], event["object"]) == (
        "quote.accepted",
        "2024-06-20",
        "event",
    )
    assert quote == made
    assert "line_items" not in quote
    assert "line_items" not in quote["computed"]["upfront"]
    assert quote["status"] == "accepted"
    assert quote["metadata"]["crm_account_id"] == "0015e00000AcmeUS1"
    assert quote["amount_total"] == 2 * 1001 - 100 + 2 * 1002 + 50


async def test_a_retrieved_quote_includes_its_lines_only_when_asked(
    http: httpx.AsyncClient, state: SandboxState
) -> None:
    make_quote(state, "qt_1Retrieve", count=12)
    plain = (await http.get("/stripe/v1/quotes/qt_1Retrieve", headers=AUTH)).json()
    assert "line_items" not in plain
    assert "line_items" not in plain["computed"]["upfront"]

    expanded = await http.get(
        "/stripe/v1/quotes/qt_1Retrieve",
        params=[("expand[]", "line_items"), ("expand[]", "computed.upfront.line_items")],
        headers=AUTH,
    )
    body = expanded.json()
    assert body["line_items"]["object"] == "list"
    assert len(body["line_items"]["data"]) == 10  # the first handful
    assert body["line_items"]["has_more"] is True
    assert body["line_items"]["url"] == "/v1/quotes/qt_1Retrieve/line_items"
    assert body["computed"]["upfront"]["line_items"]["url"] == (
        "/v1/quotes/qt_1Retrieve/computed_upfront_line_items"
    )
    refused = await http.get(
        "/stripe/v1/quotes/qt_1Retrieve", params={"expand[]": "lines"}, headers=AUTH
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["type"] == "invalid_request_error"


async def test_line_items_are_a_paged_list(http: httpx.AsyncClient, state: SandboxState) -> None:
    make_quote(state, "qt_1Paged", count=5)
    url = "/stripe/v1/quotes/qt_1Paged/line_items"
    first = (await http.get(url, params={"limit": "2"}, headers=AUTH)).json()
    assert set(first) == {"object", "data", "has_more", "url"}
    assert (first["object"], first["has_more"], first["url"]) == (
        "list",
        True,
        "/v1/quotes/qt_1Paged/line_items",
    )
    ids = [item["id"] for item in first["data"]]
    after = (
        await http.get(url, params={"limit": "10", "starting_after": ids[-1]}, headers=AUTH)
    ).json()
    assert after["has_more"] is False
    ids += [item["id"] for item in after["data"]]
    assert len(ids) == len(set(ids)) == 5
    assert [i["price"]["lookup_key"] for i in first["data"] + after["data"]] == [
        f"sku-{n:03d}" for n in range(1, 6)
    ]
    before = (await http.get(url, params={"ending_before": ids[3]}, headers=AUTH)).json()
    assert [item["id"] for item in before["data"]] == ids[:3]
    assert before["has_more"] is False
    # Each item's discounts and taxes are includable too.
    item = first["data"][0]
    assert item["object"] == "item"
    assert (item["amount_subtotal"], item["amount_discount"], item["amount_total"]) == (
        2002,
        100,
        1902,
    )
    assert "discounts" not in item and "taxes" not in item
    included = (
        await http.get(
            url,
            params=[("expand[]", "data.discounts"), ("expand[]", "data.taxes")],
            headers=AUTH,
        )
    ).json()
    assert included["data"][0]["discounts"][0]["amount"] == 100
    assert included["data"][1]["taxes"][0]["amount"] == 50
    too_many = await http.get(url, params={"limit": "101"}, headers=AUTH)
    assert too_many.status_code == 400
    missing = await http.get("/stripe/v1/quotes/qt_1Nothing/line_items", headers=AUTH)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "resource_missing")


async def test_the_sandbox_signs_a_quote_event_as_stripe_signs_a_delivery(
    http: httpx.AsyncClient, state: SandboxState
) -> None:
    make_quote(state, "qt_1Signed")
    answer = await http.post("/_sandbox/stripe/quotes/qt_1Signed/events", json={"secret": SECRET})
    assert answer.status_code == 200, answer.text
    delivery = answer.json()
    payload = delivery["payload"].encode()
    header = delivery["headers"]["Stripe-Signature"]
    stripe_webhooks.verify([SECRET], header, payload)
    assert json.loads(payload) == delivery["event"]
    assert "line_items" not in delivery["event"]["data"]["object"]
    with pytest.raises(stripe_webhooks.SignatureError):
        stripe_webhooks.verify(["whsec_other"], header, payload)


async def test_a_sandbox_quote_can_be_made_over_http(
    http: httpx.AsyncClient, state: SandboxState
) -> None:
    answer = await http.post(
        "/_sandbox/stripe/quotes",
        json={
            "account_id": "0015e00000AcmeUS1",
            "currency": "jpy",
            "lines": [{"sku": "PLAT-CORE", "quantity": 3, "unit_amount": 6500}],
        },
    )
    assert answer.status_code == 200, answer.text
    quote = answer.json()
    assert quote["id"].startswith("qt_")
    assert quote["currency"] == "jpy"
    assert quote["amount_total"] == 19500
    assert quote["id"] in state.stripe.quotes


# --- the adapter reads every line ----------------------------------------------------------


async def test_the_adapter_reads_every_line_page_by_page(
    billing: StripeBilling, http: httpx.AsyncClient, state: SandboxState
) -> None:
    make_quote(state, "qt_1Long", count=120)
    sent: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        sent.append(request)

    http.event_hooks["request"].append(record)
    items = await billing.quote_line_items("qt_1Long")
    assert [item["id"] for item in items] == [
        line["id"] for line in state.stripe.quote_lines["qt_1Long"]
    ]
    assert [(r.url.path, dict(r.url.params)) for r in sent] == [
        ("/stripe/v1/quotes/qt_1Long/line_items", {"limit": "100"}),
        (
            "/stripe/v1/quotes/qt_1Long/line_items",
            {"limit": "100", "starting_after": items[99]["id"]},
        ),
    ]
    assert all(r.headers["stripe-version"] == "2024-06-20" for r in sent)


async def test_a_failed_line_read_keeps_its_class(
    billing: StripeBilling, http: httpx.AsyncClient, state: SandboxState
) -> None:
    make_quote(state, "qt_1Faulty")
    faults = {"vendor": "stripe", "operation": "list_quote_line_items", "status": 503}
    assert (await http.post("/_sandbox/faults", json={"faults": [faults]})).status_code == 200
    with pytest.raises(TransientError):
        await billing.quote_line_items("qt_1Faulty")
    with pytest.raises(NotFoundError):
        await billing.quote_line_items("qt_1Unknown")
    wrong = StripeBilling(http, base_url=BASE_URL, api_key="rk_test_wrong")
    with pytest.raises(ConfigurationError):
        await wrong.quote_line_items("qt_1Faulty")
    assert len(await billing.quote_line_items("qt_1Faulty")) == 3
