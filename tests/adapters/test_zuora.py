"""The Zuora billing adapter against the Zuora emulator, in process."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest

from adapters.billing.zuora import (
    ZuoraBilling,
    classify_zuora_error,
    finalized_invoice,
    zuora_line_price,
)
from adapters.errors import NotFoundError, RejectedError, TransientError, UnknownOutcomeError
from adapters.ports import BillingPort
from adapters.registry import build_billing
from domain.customer_master import MasterField
from domain.invoice import OneOffLine, SubscriptionLine
from domain.order import (
    InvoiceStatus,
    OrderLine,
    SubscriptionDraft,
    SubscriptionStatus,
    build_subscription,
)
from domain.quote import BillingType, Quote, QuoteLine
from revsync.settings import Settings
from sandbox.app import SandboxState, create_app
from sandbox.faults import FaultRule, FaultsRequest, LatencyRule
from sandbox.zuora import revoke_credentials
from tests.adapters.lossy import LossyTransport
from tests.ports.contract import accepted_quote, seeded_customer

BASE_URL = "http://sandbox/zuora"


def settings() -> Settings:
    return Settings(sandbox_host="sandbox", sandbox_port=80, billing="zuora")


@pytest.fixture
def billing(http: httpx.AsyncClient) -> ZuoraBilling:
    adapter = build_billing(settings(), http)
    assert isinstance(adapter, ZuoraBilling)
    port: BillingPort = adapter  # mypy checks the adapter implements the port
    assert port.vendor == "zuora"
    return adapter


def fault(state: SandboxState, operation: str, **rule: Any) -> None:
    state.faults.configure(
        FaultsRequest(faults=[FaultRule(vendor="zuora", operation=operation, **rule)])
    )


def draft(quote_id: str = "0Q0ZUORA0000001", currency: str = "EUR") -> SubscriptionDraft:
    return build_subscription(accepted_quote(quote_id, currency), f"q2c-{quote_id}:subscription")


async def subscribed(billing: ZuoraBilling, quote_id: str = "0Q0ZUORA0000001") -> Any:
    customer_id = await billing.upsert_customer(seeded_customer(), f"q2c-{quote_id}:customer")
    return await billing.create_subscription(draft(quote_id), customer_id)


# --- customers ------------------------------------------------------------------------------


async def test_the_account_is_created_once_then_found(
    billing: ZuoraBilling, state: SandboxState
) -> None:
    customer = seeded_customer()
    assert await billing.find_customer(customer.account_id) is None
    first = await billing.upsert_customer(customer, "q2c-1:customer")
    second = await billing.upsert_customer(customer, "q2c-2:customer")
    assert first == second == await billing.find_customer(customer.account_id)
    (account,) = state.zuora.snapshot()["accounts"]
    assert account["accountNumber"] == first
    assert account["crmId"] == customer.account_id
    assert account["name"] == customer.legal_entity
    assert account["CrmAccountName__c"] == customer.name
    assert account["currency"] == "EUR"
    assert account["taxInfo"] == {"VATId": "DE811907980"}
    assert account["billTo"]["workEmail"] == customer.email
    assert account["billTo"]["country"] == "DE"


async def test_a_customer_without_a_currency_is_rejected_before_anything_is_sent(
    billing: ZuoraBilling, state: SandboxState
) -> None:
    customer = seeded_customer().model_copy(update={"currency": None})
    with pytest.raises(RejectedError) as caught:
        await billing.upsert_customer(customer, "q2c-1:customer")
    assert caught.value.code == "currency_required"
    assert state.zuora.snapshot()["accounts"] == []


async def test_golden_fields_are_written_and_a_repeat_changes_nothing(
    billing: ZuoraBilling, state: SandboxState
) -> None:
    customer_id = await billing.upsert_customer(seeded_customer(), "q2c-1:customer")
    changes: dict[MasterField, Any] = {
        MasterField.EMAIL: "ap@nordlicht.example",
        MasterField.NAME: "Nordlicht",
        MasterField.TAX_ID: None,
    }
    await billing.update_customer_fields(customer_id, changes, "customer-x:1")
    before = state.zuora.snapshot()["accounts"]
    await billing.update_customer_fields(customer_id, changes, "customer-x:1")
    assert state.zuora.snapshot()["accounts"] == before
    (account,) = before
    assert account["billTo"]["workEmail"] == "ap@nordlicht.example"
    assert account["CrmAccountName__c"] == "Nordlicht"
    assert account["taxInfo"] == {}

    page = await billing.list_customers(None, 10)
    (record,) = page.items
    assert record.record_id == customer_id
    assert record.account_id == seeded_customer().account_id
    assert {MasterField.EMAIL, MasterField.BILLING_ADDRESS} <= set(record.fields)

    with pytest.raises(RejectedError) as caught:
        await billing.update_customer_fields(customer_id, {MasterField.WEBSITE: "x.io"}, "k")
    assert caught.value.code == "not_writable"


# --- subscriptions --------------------------------------------------------------------------


async def test_the_subscription_is_created_once_for_its_key_at_the_exact_prices(
    billing: ZuoraBilling, state: SandboxState
) -> None:
    first = await subscribed(billing)
    second = await subscribed(billing)
    assert second == first
    assert first.status is SubscriptionStatus.ACTIVE
    assert first.currency == "EUR"
    assert first.latest_invoice_id is not None
    snapshot = state.zuora.snapshot()
    assert len(snapshot["subscriptions"]) == 1
    assert len(snapshot["orders"]) == 1
    (subscription,) = snapshot["subscriptions"]
    assert subscription["RevsyncKey__c"] == "q2c-0Q0ZUORA0000001:subscription"
    assert subscription["QuoteId__c"] == "0Q0ZUORA0000001"
    assert subscription["paymentTerm"] == "Net 30"

    # 20 seats at 42.00 less 10 % is 756.00; onboarding 2300.00: billed to the cent.
    invoice = await billing.get_invoice(first.latest_invoice_id)
    assert invoice.total == Decimal("3056.00")
    amounts = {line.sku: line.amount for line in invoice.lines}
    assert amounts == {"PLAT-CORE": Decimal("756.00"), "ONBOARD-STD": Decimal("2300.00")}
    assert invoice.account_id == seeded_customer().account_id
    found = await billing.find_subscription(draft().idempotency_key)
    assert found == first


async def test_a_repeat_after_zuora_dropped_the_idempotency_key_still_creates_nothing(
    billing: ZuoraBilling, state: SandboxState
) -> None:
    first = await subscribed(billing)
    state.zuora.keys.clear()  # Zuora forgets idempotency keys after 24 hours
    assert await subscribed(billing) == first
    assert len(state.zuora.snapshot()["subscriptions"]) == 1


async def test_a_lost_order_answer_is_an_unknown_outcome_the_retry_settles(
    state: SandboxState,
) -> None:
    lossy = LossyTransport(httpx.ASGITransport(app=create_app(state)))
    async with httpx.AsyncClient(transport=lossy, base_url="http://sandbox") as http:
        billing = build_billing(settings(), http)
        customer_id = await billing.upsert_customer(seeded_customer(), "q2c-1:customer")
        lossy.lose("POST", "/v1/orders")
        with pytest.raises(UnknownOutcomeError):
            await billing.create_subscription(draft(), customer_id)
        assert len(state.zuora.snapshot()["subscriptions"]) == 1
        again = await billing.create_subscription(draft(), customer_id)
        assert len(state.zuora.snapshot()["subscriptions"]) == 1
        assert (
            again.subscription_id
            == state.zuora.snapshot()["subscriptions"][0]["subscriptionNumber"]
        )
        assert again.latest_invoice_id is not None


async def test_a_fault_after_the_order_replays_the_first_answer_under_its_key(
    billing: ZuoraBilling, state: SandboxState
) -> None:
    customer_id = await billing.upsert_customer(seeded_customer(), "q2c-1:customer")
    fault(state, "create_order", phase="after", status=502)
    with pytest.raises(TransientError):
        await billing.create_subscription(draft(), customer_id)
    # The emulator stored the applied answer; a lookup would find it too.
    assert draft().idempotency_key in state.zuora.keys
    created = await billing.create_subscription(draft(), customer_id)
    assert len(state.zuora.snapshot()["subscriptions"]) == 1
    assert created.subscription_id == "A-S00000001"


async def test_the_same_key_with_another_body_is_rejected_and_in_flight_is_transient(
    http: httpx.AsyncClient, state: SandboxState, billing: ZuoraBilling
) -> None:
    customer_id = await billing.upsert_customer(seeded_customer(), "q2c-1:customer")
    token = (await billing.tokens.get()).value
    headers = {"Authorization": f"Bearer {token}", "idempotency-key": "k-1"}
    body = {"name": "Other", "currency": "EUR", "billToContact": {"firstName": "A"}}
    refused = await http.post(f"{BASE_URL}/v1/accounts", json=body, headers=headers)
    assert refused.json()["success"] is False  # a missing lastName, stored under k-1
    replay = await http.post(f"{BASE_URL}/v1/accounts", json=body, headers=headers)
    assert replay.headers["Idempotent-Replayed"] == "true"
    other = await http.post(f"{BASE_URL}/v1/accounts", json={**body, "name": "X"}, headers=headers)
    assert other.status_code == 422
    error = classify_zuora_error("create_account", other)
    assert isinstance(error, RejectedError) and not isinstance(error, TransientError)

    # The first order to arrive holds its key while it executes (the latency); the other,
    # sent meanwhile with the same key, is told so.
    state.faults.configure(
        FaultsRequest(latency=[LatencyRule(vendor="zuora", operation="create_order", ms=1000)])
    )
    results = await asyncio.gather(
        billing.create_subscription(draft(), customer_id),
        billing.create_subscription(draft(), customer_id),
        return_exceptions=True,
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1
    assert isinstance(errors[0], TransientError) and errors[0].status == 409
    assert len(state.zuora.snapshot()["subscriptions"]) == 1


async def test_an_unknown_sku_is_rejected_before_the_order(
    billing: ZuoraBilling, state: SandboxState
) -> None:
    customer_id = await billing.upsert_customer(seeded_customer(), "q2c-1:customer")
    lines = [
        OrderLine(
            line_id="L9",
            sku="NOT-IN-CATALOG",
            description="x",
            quantity=Decimal(1),
            unit_price=Decimal(1),
            discount_percent=Decimal(0),
            amount=Decimal(1),
            billing=BillingType.RECURRING,
        )
    ]
    bad = draft().model_copy(update={"recurring_lines": lines, "one_time_lines": []})
    with pytest.raises(RejectedError) as caught:
        await billing.create_subscription(bad, customer_id)
    assert caught.value.code == "unknown_sku"
    assert state.zuora.snapshot()["orders"] == []


async def test_a_quote_in_another_currency_than_the_account_is_rejected(
    billing: ZuoraBilling, state: SandboxState
) -> None:
    customer_id = await billing.upsert_customer(seeded_customer(), "q2c-1:customer")
    with pytest.raises(RejectedError) as caught:
        await billing.create_subscription(draft(currency="USD"), customer_id)
    assert caught.value.code == "currency_mismatch"
    assert state.zuora.snapshot()["orders"] == []


async def test_an_unknown_account_is_not_found(billing: ZuoraBilling) -> None:
    with pytest.raises(NotFoundError) as caught:
        await billing.create_subscription(draft(), "A99999999")
    assert caught.value.code == "50000040"
    assert caught.value.status == 200  # Zuora's HTTP 200 with "success": false


async def test_a_validation_error_is_rejected_with_zuoras_code(
    billing: ZuoraBilling, state: SandboxState
) -> None:
    customer_id = await billing.upsert_customer(seeded_customer(), "q2c-1:customer")
    fault(state, "create_order", status=400, code="53100320", message="bad termType")
    with pytest.raises(RejectedError) as caught:
        await billing.create_subscription(draft(), customer_id)
    assert caught.value.code == "53100320"
    assert "invalid format or value" in caught.value.message


async def test_throttling_is_transient_with_retry_after(
    billing: ZuoraBilling, state: SandboxState
) -> None:
    customer_id = await billing.upsert_customer(seeded_customer(), "q2c-1:customer")
    fault(state, "create_order", status=429, retry_after=5)
    with pytest.raises(TransientError) as caught:
        await billing.create_subscription(draft(), customer_id)
    assert (caught.value.status, caught.value.retry_after) == (429, 5.0)
    assert await billing.create_subscription(draft(), customer_id)


async def test_cancelling_twice_is_a_no_op_and_cancels_at_the_start(
    billing: ZuoraBilling, state: SandboxState
) -> None:
    created = await subscribed(billing)
    cancelled = await billing.cancel_subscription(created.subscription_id, "ERP refused")
    assert cancelled.status is SubscriptionStatus.CANCELED
    again = await billing.cancel_subscription(created.subscription_id, "ERP refused")
    assert again.status is SubscriptionStatus.CANCELED
    snapshot = state.zuora.snapshot()
    (subscription,) = snapshot["subscriptions"]
    assert subscription["cancelledDate"] == subscription["contractEffectiveDate"]
    assert [o["description"] for o in snapshot["orders"]][-1] == "ERP refused"
    assert len(snapshot["orders"]) == 2


async def test_a_lost_cancel_answer_is_settled_by_the_retry(state: SandboxState) -> None:
    lossy = LossyTransport(httpx.ASGITransport(app=create_app(state)))
    async with httpx.AsyncClient(transport=lossy, base_url="http://sandbox") as http:
        billing = build_billing(settings(), http)
        assert isinstance(billing, ZuoraBilling)
        created = await subscribed(billing)
        lossy.lose("POST", "/v1/orders")
        with pytest.raises(UnknownOutcomeError):
            await billing.cancel_subscription(created.subscription_id, "compensating")
        again = await billing.cancel_subscription(created.subscription_id, "compensating")
        assert again.status is SubscriptionStatus.CANCELED


async def test_a_second_cancel_with_another_reason_racing_the_first_is_done(
    billing: ZuoraBilling, state: SandboxState
) -> None:
    created = await subscribed(billing)
    state.faults.configure(
        FaultsRequest(latency=[LatencyRule(vendor="zuora", operation="cancel_order", ms=500)])
    )
    first, second = await asyncio.gather(
        billing.cancel_subscription(created.subscription_id, "ERP refused"),
        billing.cancel_subscription(created.subscription_id, "operator cancelled"),
    )
    assert first.status is second.status is SubscriptionStatus.CANCELED
    assert len(state.zuora.snapshot()["orders"]) == 2  # the create and one cancel


async def test_cancelling_an_unknown_subscription_is_not_found(billing: ZuoraBilling) -> None:
    with pytest.raises(NotFoundError):
        await billing.cancel_subscription("A-S99999999", "compensating")


async def test_listings_page_through_every_subscription(
    billing: ZuoraBilling, state: SandboxState
) -> None:
    numbers = [(await subscribed(billing, f"0Q0ZUORA000000{i}")).subscription_id for i in range(5)]
    await billing.cancel_subscription(numbers[0], "test")
    seen = []
    cursor = None
    pages = 0
    while True:
        page = await billing.list_subscriptions(cursor, 2)
        pages += 1
        seen += page.items
        cursor = page.cursor
        if cursor is None:
            break
    assert pages == 3
    assert sorted(r.record_id for r in seen) == sorted(numbers)
    by_number = {r.record_id: r for r in seen}
    assert by_number[numbers[0]].live is False
    assert by_number[numbers[1]].live is True
    assert by_number[numbers[1]].key == "q2c-0Q0ZUORA0000001:subscription"
    assert by_number[numbers[1]].quote_id == "0Q0ZUORA0000001"
    assert by_number[numbers[1]].account_id == seeded_customer().account_id
    assert by_number[numbers[1]].currency == "EUR"


# --- invoices -------------------------------------------------------------------------------


async def test_the_first_invoice_maps_service_periods_exclusively(billing: ZuoraBilling) -> None:
    created = await subscribed(billing)
    assert created.latest_invoice_id is not None
    invoice = await billing.get_invoice(created.latest_invoice_id)
    assert invoice.status is InvoiceStatus.OPEN
    assert invoice.issue_date == date(2025, 3, 1)
    assert invoice.due_date == date(2025, 3, 31)  # Net 30
    recurring = next(line for line in invoice.lines if isinstance(line, SubscriptionLine))
    # Zuora's serviceEndDate 2025-03-31 is the last day; the domain's end is exclusive.
    assert (recurring.service_start, recurring.service_end) == (date(2025, 3, 1), date(2025, 4, 1))
    one_off = next(line for line in invoice.lines if isinstance(line, OneOffLine))
    assert one_off.sku == "ONBOARD-STD"


async def test_voiding_an_open_invoice_then_again_is_a_no_op(
    billing: ZuoraBilling, state: SandboxState
) -> None:
    created = await subscribed(billing)
    assert created.latest_invoice_id is not None
    voided = await billing.void_invoice(created.latest_invoice_id)
    assert voided.status is InvoiceStatus.VOID
    assert voided.total == Decimal("3056.00")
    assert voided.subscription_id == created.subscription_id
    # the invoice names its account by id; the customer is its number, as everywhere else
    assert voided.customer_id == created.customer_id
    again = await billing.void_invoice(created.latest_invoice_id)
    assert again.status is InvoiceStatus.VOID
    (invoice,) = state.zuora.snapshot()["invoices"]
    assert invoice["status"] == "Canceled"
    (listed,) = (await billing.list_invoices(None, 10)).items
    assert (listed.invoice_id, listed.status) == (created.latest_invoice_id, "void")
    assert listed.amount == Decimal("3056.00")
    assert listed.amount_due == 0


async def _invoice(http: httpx.AsyncClient, **spec: Any) -> dict[str, Any]:
    body = {
        "account_id": "0015e00000AcmeUS1",
        "items": [
            {
                "sku": "PLAT-CORE",
                "amount": "100.10",
                "tax": "8.26",
                "start": "2026-01-01",
                "end": "2026-01-31",
            }
        ],
        **spec,
    }
    response = await http.post("/_sandbox/zuora/invoices", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_voiding_a_paid_or_partly_paid_invoice_is_rejected(
    billing: ZuoraBilling, http: httpx.AsyncClient
) -> None:
    paid = await _invoice(http)
    partly = await _invoice(http)
    for number, amount in ((paid["invoiceNumber"], "108.36"), (partly["invoiceNumber"], "8")):
        answer = await http.post(
            f"/_sandbox/zuora/invoices/{number}/payments", json={"amount": amount}
        )
        assert answer.status_code == 200, answer.text
    with pytest.raises(RejectedError) as caught:
        await billing.void_invoice(paid["invoiceNumber"])
    assert caught.value.code == "invoice_paid"
    with pytest.raises(RejectedError) as caught:
        await billing.void_invoice(partly["invoiceNumber"])
    assert caught.value.code == "invoice_partially_paid"
    statuses = {
        r.invoice_id: (r.status, r.amount_due)
        for r in (await billing.list_invoices(None, 10)).items
    }
    assert statuses == {
        paid["invoiceNumber"]: ("paid", Decimal("0.00")),
        partly["invoiceNumber"]: ("open", Decimal("100.36")),
    }


async def test_a_draft_invoice_is_cancelled_directly_and_never_read_for_revenue(
    billing: ZuoraBilling, http: httpx.AsyncClient
) -> None:
    draft_invoice = await _invoice(http, status="Draft")
    with pytest.raises(RejectedError) as caught:
        await billing.get_invoice(draft_invoice["invoiceNumber"])
    assert caught.value.code == "invoice_draft"
    voided = await billing.void_invoice(draft_invoice["invoiceNumber"])
    assert voided.status is InvoiceStatus.VOID


async def test_an_invoice_with_tax_and_many_items_is_read_page_by_page(
    http: httpx.AsyncClient, state: SandboxState
) -> None:
    paths: list[str] = []

    async def record(request: httpx.Request) -> None:
        paths.append(f"{request.url.path}?{request.url.query.decode()}")

    transport = httpx.ASGITransport(app=create_app(state))
    counting = httpx.AsyncClient(
        transport=transport, base_url="http://sandbox", event_hooks={"request": [record]}
    )
    billing = build_billing(settings(), counting)
    items = [
        {
            "sku": "PLAT-ANALYTICS",
            "amount": "0.10",
            "tax": "0.02",
            "start": "2026-01-01",
            "end": "2026-01-31",
        }
        for _ in range(230)
    ] + [
        {
            "sku": "TRAINING-DAY",
            "amount": "1200.00",
            "tax": "0",
            "start": "2026-01-15",
            "end": "2026-01-15",
            "charge_type": "OneTime",
        }
    ]
    made = await _invoice(http, items=items, currency="USD")
    invoice = await billing.get_invoice(made["invoiceNumber"])
    assert len(invoice.lines) == 231
    # 230 * 0.10 would be 23.000000000000004 in floats; exact here.
    assert invoice.subtotal == Decimal("1223.00")
    assert invoice.tax == Decimal("4.60")
    assert invoice.total == Decimal("1227.60")
    assert invoice.account_id == "0015e00000AcmeUS1"
    training = invoice.lines[-1]
    assert isinstance(training, OneOffLine) and training.delivery_date == date(2026, 1, 15)
    pages = [p for p in paths if p.split("?")[0].endswith("/items")]
    # Zuora serves at most 40 items a page (zuora-sdk: get_invoice_items pageSize <= 40).
    assert [p.split("?")[1] for p in pages] == [f"page={n}&pageSize=40" for n in range(1, 7)]
    await counting.aclose()


async def test_voiding_an_unknown_invoice_is_not_found(billing: ZuoraBilling) -> None:
    with pytest.raises(NotFoundError):
        await billing.void_invoice("INV99999999")


async def test_unposting_is_the_v1_unpost_operation_refused_once_anything_is_applied(
    billing: ZuoraBilling, http: httpx.AsyncClient, state: SandboxState
) -> None:
    made = await _invoice(http)
    paid = await _invoice(http)
    await http.post(
        f"/_sandbox/zuora/invoices/{paid['invoiceNumber']}/payments", json={"amount": "1"}
    )
    token = (await billing.tokens.get()).value
    auth = {"Authorization": f"Bearer {token}"}
    unknown = await http.put(f"{BASE_URL}/v1/invoices/INV99999999/unpost", headers=auth)
    assert isinstance(classify_zuora_error("unpost_invoice", unknown), NotFoundError)
    refused = await http.put(f"{BASE_URL}/v1/invoices/{paid['invoiceNumber']}/unpost", headers=auth)
    assert refused.status_code == 200
    assert isinstance(classify_zuora_error("unpost_invoice", refused), RejectedError)
    assert state.zuora.invoice(paid["id"])["status"] == "Posted"
    ok = await http.put(f"{BASE_URL}/v1/invoices/{made['invoiceNumber']}/unpost", headers=auth)
    assert ok.json() == {"success": True}
    assert state.zuora.invoice(made["id"])["status"] == "Draft"
    # the CRUD update of the invoice object is not how revsync unposts
    crud = await http.put(
        f"{BASE_URL}/v1/object/invoice/{made['id']}", json={"Status": "Posted"}, headers=auth
    )
    assert crud.status_code == 404


def test_an_invoice_whose_items_do_not_add_up_is_rejected() -> None:
    invoice = {
        "invoiceNumber": "INV1",
        "status": "Posted",
        "amount": "10.00",
        "balance": "10.00",
        "currency": "USD",
        "invoiceDate": "2026-01-01",
    }
    item = {
        "id": "i1",
        "sku": "PLAT-CORE",
        "chargeAmount": "9.00",
        "taxAmount": "0",
        "serviceStartDate": "2026-01-01",
        "serviceEndDate": "2026-01-31",
    }
    with pytest.raises(RejectedError) as caught:
        finalized_invoice(invoice, [item], {"crmId": "001"})
    assert caught.value.code == "amount_mismatch"
    with pytest.raises(RejectedError) as caught:
        finalized_invoice({**invoice, "amount": "9.00"}, [item], {"basicInfo": {}})
    assert caught.value.code == "no_account_id"
    with pytest.raises(RejectedError) as caught:
        finalized_invoice({**invoice, "amount": "9.005"}, [item], {"crmId": "001"})
    assert caught.value.code == "amount_precision"


# --- money ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "unit_price", "discount", "currency", "expected"),
    [
        ("20", "42.00", "10", "EUR", (Decimal(20), Decimal("37.8"))),
        ("3", "33.33", "0", "USD", (Decimal(3), Decimal("33.33"))),
        # 7 * 45 * 0.875 = 275.625 -> 275.63, not a whole price per seat within 9 places
        ("7", "45.00", "12.5", "USD", (Decimal(1), Decimal("275.63"))),
        ("18", "6500", "12.5", "JPY", (Decimal(18), Decimal("5687.5"))),
    ],
)
def test_line_prices_multiply_back_to_the_net_amount(
    quantity: str, unit_price: str, discount: str, currency: str, expected: tuple[Decimal, Decimal]
) -> None:
    line = QuoteLine(
        line_id="L1",
        sku="PLAT-CORE",
        quantity=Decimal(quantity),
        unit_price=Decimal(unit_price),
        discount_percent=Decimal(discount),
    )
    quote = Quote(
        **{**accepted_quote("Q1", currency).model_dump(), "lines": [line], "currency": currency}
    )
    (order_line,) = build_subscription(quote, "k").recurring_lines
    got = zuora_line_price(order_line, currency)
    assert got == expected
    assert got[0] * got[1] == order_line.amount


# --- classification -------------------------------------------------------------------------


def _response(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    request = httpx.Request("POST", f"{BASE_URL}/v1/orders")
    return httpx.Response(status, json=body, headers=headers, request=request)


def _reasons(code: int) -> dict[str, Any]:
    return {"success": False, "reasons": [{"code": code, "message": "m"}]}


def _crud(code: str) -> dict[str, Any]:
    return {"Success": False, "Errors": [{"Code": code, "Message": "m"}]}


@pytest.mark.parametrize(
    ("response", "kind", "code"),
    [
        (_response(200, _reasons(53100320)), RejectedError, "53100320"),
        (_response(200, _reasons(50000021)), RejectedError, "50000021"),
        (_response(200, _reasons(50000022)), RejectedError, "50000022"),
        (_response(200, _reasons(58730030)), RejectedError, "58730030"),
        (_response(200, _reasons(50000010)), RejectedError, "50000010"),
        (_response(200, _reasons(50000045)), RejectedError, "50000045"),
        (_response(200, _reasons(50000090)), RejectedError, "50000090"),
        (_response(200, _reasons(50000040)), NotFoundError, "50000040"),
        (_response(200, _reasons(58730050)), TransientError, "58730050"),
        (_response(200, _reasons(50000060)), TransientError, "50000060"),
        (_response(200, _reasons(50000061)), TransientError, "50000061"),
        (_response(200, _reasons(50000070)), TransientError, "50000070"),
        (_response(200, _reasons(90000011)), TransientError, "90000011"),
        (_response(401, {"message": "Authentication error"}), TransientError, None),
        (_response(409, {"message": "in progress"}), TransientError, None),
        (_response(422, {"message": "key reused"}), RejectedError, None),
        (_response(503, "<html>"), TransientError, None),
        (_response(404, _reasons(50000040)), NotFoundError, "50000040"),
        (_response(400, _reasons(50000060)), TransientError, "50000060"),
        (_response(200, _crud("LOCK_COMPETITION")), TransientError, "LOCK_COMPETITION"),
        (_response(200, _crud("REQUEST_EXCEEDED_RATE")), TransientError, "REQUEST_EXCEEDED_RATE"),
        (_response(200, _crud("INVALID_ID")), NotFoundError, "INVALID_ID"),
        (_response(200, _crud("INVALID_VALUE")), RejectedError, "INVALID_VALUE"),
    ],
)
def test_classifier(response: httpx.Response, kind: type[Exception], code: str | None) -> None:
    error = classify_zuora_error("create_order", response)
    assert type(error) is kind
    assert error.code == code


async def test_the_tenant_request_limit_answers_429_with_retry_after(
    billing: ZuoraBilling, state: SandboxState
) -> None:
    now = [1000.0]
    state.zuora.clock = lambda: now[0]
    state.zuora.requests_per_minute = 2
    await billing.find_customer("001")
    await billing.find_customer("001")
    now[0] += 45
    with pytest.raises(TransientError) as caught:
        await billing.find_customer("001")
    assert (caught.value.status, caught.value.code, caught.value.retry_after) == (
        429,
        "50000070",
        15.0,
    )
    now[0] += 15
    assert await billing.find_customer("001") is None


def test_429_carries_retry_after() -> None:
    error = classify_zuora_error("create_order", _response(429, {}, {"Retry-After": "12"}))
    assert isinstance(error, TransientError) and error.retry_after == 12.0


# --- auth -----------------------------------------------------------------------------------


async def test_one_token_serves_many_calls_and_an_expired_one_is_refreshed_once(
    billing: ZuoraBilling, state: SandboxState
) -> None:
    server = state.oauth["zuora"]
    await subscribed(billing)
    await billing.list_customers(None, 10)
    assert server.token_requests == 1
    server.expire_all()
    assert await billing.find_customer(seeded_customer().account_id) is not None
    assert server.token_requests == 2


async def test_revoked_credentials_are_transient_naming_the_settings(
    billing: ZuoraBilling, state: SandboxState
) -> None:
    await billing.find_customer("001")
    revoke_credentials(state)
    with pytest.raises(TransientError) as caught:
        await billing.find_customer("001")
    assert caught.value.status == 401
    assert "REVSYNC_ZUORA_CLIENT_SECRET" in caught.value.message


async def test_the_api_refuses_requests_without_a_token(http: httpx.AsyncClient) -> None:
    answer = await http.get(f"{BASE_URL}/object-query/accounts")
    assert answer.status_code == 401
    assert answer.json()["reasons"][0]["code"] == 90000011


def test_the_repr_leaves_the_secret_out(billing: ZuoraBilling) -> None:
    assert "sandbox-zuora-secret" not in repr(billing)


# --- the emulator ---------------------------------------------------------------------------


async def test_object_query_refuses_an_unknown_filter_field(
    billing: ZuoraBilling, http: httpx.AsyncClient
) -> None:
    token = (await billing.tokens.get()).value
    answer = await http.get(
        f"{BASE_URL}/object-query/accounts",
        params={"filter[]": "nope.EQ:1"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 400
    error = classify_zuora_error("query_accounts", answer)
    assert isinstance(error, RejectedError) and error.code == "50000020"


async def test_the_router_reads_the_store_again_after_a_reset(
    billing: ZuoraBilling, http: httpx.AsyncClient, state: SandboxState
) -> None:
    await billing.upsert_customer(seeded_customer(), "k")
    await http.post("/_sandbox/reset")
    assert await billing.find_customer(seeded_customer().account_id) is None
