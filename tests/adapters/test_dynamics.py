"""The Dynamics 365 ERP adapter against the Dataverse emulator, in process: keyed creates,
lost answers, errors, tokens, paging, customers, and invoice-to-revenue."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest

from adapters import registry
from adapters.erp.dynamics import DynamicsErp, classify_dynamics, key_segment
from adapters.errors import NotFoundError, RejectedError, TransientError, UnknownOutcomeError
from adapters.http import decode_json
from adapters.oauth import ClientSecretGrant, OAuthTokens
from adapters.ports import ErpPort
from adapters.vendor_auth import dynamics_token_url, dynamics_tokens
from domain.customer_master import MasterField
from domain.order import SalesOrderStatus, build_sales_order
from domain.receivable import (
    CreditLine,
    PaymentApplication,
    ReceivableCredit,
    ReceivableState,
    RevenueJournal,
)
from revsync.settings import Settings
from sandbox import dynamics as emulator
from sandbox.app import SandboxState, create_app
from sandbox.faults import FaultRule, FaultsRequest
from tests.adapters.lossy import LossyTransport
from tests.adapters.test_invoices_netsuite import invoice
from tests.ports.contract import accepted_quote, seeded_customer

BASE_URL = "http://sandbox/dynamics"
ACCOUNT_KEY = "acct-0015e00000NordDE1"
D = Decimal


@dataclass
class Rig:
    erp: DynamicsErp
    tokens: OAuthTokens
    lossy: LossyTransport
    state: SandboxState
    customer_id: str
    http: httpx.AsyncClient

    def sent(self) -> list[httpx.Request]:
        """Every request the adapter sends from now on."""
        sent: list[httpx.Request] = []

        async def record(request: httpx.Request) -> None:
            sent.append(request)

        self.http.event_hooks["request"].append(record)
        return sent

    def inject(self, **rule: Any) -> None:
        self.state.faults.configure(FaultsRequest(faults=[FaultRule(vendor="dynamics", **rule)]))

    def rows(self, table: str) -> list[dict[str, Any]]:
        return list(self.state.dynamics.snapshot()[table])


@pytest.fixture
async def rig(state: SandboxState) -> AsyncIterator[Rig]:
    lossy = LossyTransport(httpx.ASGITransport(app=create_app(state)))
    async with httpx.AsyncClient(transport=lossy, base_url="http://sandbox") as http:
        settings = Settings(sandbox_host="sandbox", sandbox_port=80)
        tokens = dynamics_tokens(settings, http)
        assert isinstance(tokens, OAuthTokens)
        erp = DynamicsErp(http, base_url=BASE_URL, tokens=tokens)
        port: ErpPort = erp  # mypy checks the adapter implements the port
        assert port.vendor == "dynamics"
        customer_id = await erp.upsert_customer(seeded_customer(), ACCOUNT_KEY)
        yield Rig(erp, tokens, lossy, state, customer_id, http)


def draft(quote_id: str = "0Q0DYN0000001", currency: str = "EUR") -> Any:
    return build_sales_order(accepted_quote(quote_id, currency), f"q2c-{quote_id}:erp-order")


# -- customers and catalog ----------------------------------------------------------------------


async def test_the_account_is_upserted_once_by_its_alternate_key(rig: Rig) -> None:
    again = await rig.erp.upsert_customer(seeded_customer(), ACCOUNT_KEY)
    assert again == rig.customer_id
    (account,) = rig.rows("accounts")
    assert account["revsync_externalkey"] == ACCOUNT_KEY
    assert account["name"] == "Nordlicht Logistik"
    assert account["address1_country"] == "DE"
    assert await rig.erp.find_customer(ACCOUNT_KEY) == rig.customer_id
    assert await rig.erp.find_customer("acct-nobody") is None


async def test_golden_fields_are_patched_update_only(rig: Rig) -> None:
    await rig.erp.update_customer_fields(
        rig.customer_id,
        {MasterField.WEBSITE: "https://nordlicht.example", MasterField.OWNER: None},
        "key-1",
    )
    (account,) = rig.rows("accounts")
    assert account["websiteurl"] == "https://nordlicht.example"
    with pytest.raises(RejectedError) as refused:
        await rig.erp.update_customer_fields(
            rig.customer_id, {MasterField.CREDIT_LIMIT: None}, "key-2"
        )
    assert refused.value.code == "NOT_WRITABLE"
    with pytest.raises(NotFoundError):
        await rig.erp.update_customer_fields(
            "00000000-0000-0000-0000-000000000000", {MasterField.NAME: "X"}, "key-3"
        )
    assert len(rig.rows("accounts")) == 1  # If-Match: * never creates


async def test_catalog_items_carry_list_prices_per_currency_exactly(rig: Rig) -> None:
    items = await rig.erp.get_catalog_items(["PLAT-CORE", "LEGACY-SEAT", "NOPE"])
    assert set(items) == {"PLAT-CORE", "LEGACY-SEAT"}
    core = items["PLAT-CORE"]
    assert core.prices["EUR"] == D("42.00") and core.prices["JPY"] == D("6500")
    assert core.billing.value == "recurring" and core.active
    assert not items["LEGACY-SEAT"].active


# -- sales orders -------------------------------------------------------------------------------


async def test_a_sales_order_is_created_once_with_exact_money(rig: Rig) -> None:
    order_draft = draft()
    first = await rig.erp.create_sales_order(order_draft, rig.customer_id)
    second = await rig.erp.create_sales_order(order_draft, rig.customer_id)
    assert second.order_id == first.order_id
    assert first.total == order_draft.total and isinstance(first.total, Decimal)
    assert first.status is SalesOrderStatus.PENDING_FULFILLMENT
    (order,) = rig.rows("salesorders")
    assert order["totalamount"] == order_draft.total
    lines = rig.rows("salesorderdetails")
    assert sorted(line["extendedamount"] for line in lines) == sorted(
        line.amount for line in order_draft.lines
    )
    discounted = next(line for line in lines if line["manualdiscountamount"])
    assert discounted["priceperunit"] == D("42.00")  # the list price, not a derived rate


async def test_a_lost_answer_is_recovered_by_the_key(rig: Rig) -> None:
    order_draft = draft()
    rig.lossy.lose("POST", "/api/data/v9.2/salesorders")
    with pytest.raises(UnknownOutcomeError):
        await rig.erp.create_sales_order(order_draft, rig.customer_id)
    again = await rig.erp.create_sales_order(order_draft, rig.customer_id)
    assert len(rig.rows("salesorders")) == 1
    assert again.external_id == order_draft.external_id


async def test_the_order_is_looked_up_by_its_key_then_created_by_a_deep_insert_post(
    rig: Rig,
) -> None:
    """Dataverse documents deep insert for POST only: the lines go with a POST, after a
    look-up by the alternate key; no PATCH carries them."""
    sent = rig.sent()
    order_draft = draft()
    await rig.erp.create_sales_order(order_draft, rig.customer_id)
    writes = [r for r in sent if r.method in ("POST", "PATCH")]
    assert [(r.method, r.url.path.rsplit("/", 1)[-1]) for r in writes] == [("POST", "salesorders")]
    (post,) = writes
    assert "if-none-match" not in post.headers
    body = decode_json(httpx.Response(200, content=post.content))
    assert body["revsync_externalkey"] == order_draft.external_id
    assert len(body["order_details"]) == len(order_draft.lines)
    lookups = [r for r in sent if r.method == "GET" and "salesorders(" in r.url.path]
    assert lookups and sent.index(lookups[0]) < sent.index(post)


async def test_a_duplicate_key_on_the_post_returns_the_existing_order(rig: Rig) -> None:
    """The look-up missed it (a concurrent create, or a lost answer read too early): the
    POST's duplicate key answer is the "already exists" signal."""
    first = await rig.erp.create_sales_order(draft(), rig.customer_id)
    rig.inject(operation="get_sales_order", status=404, code="0x80040217", times=1)
    again = await rig.erp.create_sales_order(draft(), rig.customer_id)
    assert again.order_id == first.order_id
    assert len(rig.rows("salesorders")) == 1


async def test_dataverse_refuses_related_rows_in_a_patch(
    http: httpx.AsyncClient, state: SandboxState
) -> None:
    """What revsync used to send: an upsert PATCH with the lines nested in it."""
    token = (await _token(http)).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    for entity_set, nav in (("salesorders", "order_details"), ("invoices", "invoice_details")):
        url = f"{BASE_URL}/api/data/v9.2/{entity_set}(revsync_externalkey='k-1')"
        answer = await http.patch(
            url, json={"name": "X", nav: [{"quantity": 1}]}, headers={**auth, "If-None-Match": "*"}
        )
        assert answer.status_code == 400
        error = answer.json()["error"]
        assert error["code"] == "0x80048d19"
        assert f"Entity :'{entity_set}'" in error["message"] and nav in error["message"]
    snapshot = state.dynamics.snapshot()
    assert snapshot["salesorders"] == [] and snapshot["invoices"] == []


async def test_an_applied_create_whose_answer_failed_returns_the_first(rig: Rig) -> None:
    rig.inject(operation="create_sales_order", phase="after", status=502)
    with pytest.raises(TransientError):
        await rig.erp.create_sales_order(draft(), rig.customer_id)
    found = await rig.erp.create_sales_order(draft(), rig.customer_id)
    assert [o["salesorderid"] for o in rig.rows("salesorders")] == [found.order_id]


async def test_cancelling_twice_is_a_no_op_through_cancel_sales_order(rig: Rig) -> None:
    order = await rig.erp.create_sales_order(draft(), rig.customer_id)
    cancelled = await rig.erp.cancel_sales_order(order.order_id, "billing refused")
    assert cancelled.status is SalesOrderStatus.CANCELLED
    rig.inject(operation="cancel_sales_order", status=500, times=5)
    again = await rig.erp.cancel_sales_order(order.order_id, "billing refused")
    assert again.status is SalesOrderStatus.CANCELLED  # read first: no second action
    (row,) = rig.rows("salesorders")
    assert (row["statecode"], row["statuscode"]) == (2, 4)


async def test_a_retired_product_is_rejected_with_the_dataverse_code(rig: Rig) -> None:
    quote = accepted_quote("0Q0DYN0000002", "USD")
    line = quote.lines[0].model_copy(
        update={"sku": "LEGACY-SEAT", "unit_price": D("30.00"), "discount_percent": D(0)}
    )
    order_draft = build_sales_order(
        quote.model_copy(update={"lines": [line]}), "q2c-0Q0DYN0000002:erp-order"
    )
    with pytest.raises(RejectedError) as refused:
        await rig.erp.create_sales_order(order_draft, rig.customer_id)
    assert refused.value.code == "0x80043b1d"
    assert rig.rows("salesorders") == []


async def test_not_found_and_throttling(rig: Rig) -> None:
    with pytest.raises(NotFoundError):
        await rig.erp.cancel_sales_order("00000000-0000-0000-0000-000000000001", "x")
    rig.state.dynamics.request_limit = rig.state.dynamics.requests
    rig.state.dynamics.retry_after = 9
    with pytest.raises(TransientError) as throttled:
        await rig.erp.find_sales_order("q2c-x:erp-order")
    assert (throttled.value.status, throttled.value.code) == (429, "0x80072322")
    assert throttled.value.retry_after == 9.0


# -- listings -----------------------------------------------------------------------------------


async def test_listings_page_with_next_links(rig: Rig) -> None:
    for n in range(5):
        await rig.erp.create_sales_order(draft(f"0Q0DYNPAGE{n:03d}"), rig.customer_id)
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await rig.erp.list_sales_orders(cursor, 2)
        pages += 1
        seen += [record.record_id for record in page.items]
        cursor = page.cursor
        if cursor is None:
            break
    assert pages == 3
    assert sorted(seen) == sorted(o["salesorderid"] for o in rig.rows("salesorders"))
    record = (await rig.erp.list_sales_orders(None, 10)).items[0]
    assert record.quote_id is not None and record.currency == "EUR" and record.live
    customers = await rig.erp.list_customers(None, 10)
    (account,) = customers.items
    assert account.account_id == "0015e00000NordDE1"
    assert MasterField.BILLING_ADDRESS in account.fields
    with pytest.raises(RejectedError):
        await rig.erp.list_customers("https://elsewhere.example/x", 10)


# -- errors and tokens --------------------------------------------------------------------------


def _response(
    status: int, body: Any = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    request = httpx.Request("POST", f"{BASE_URL}/api/data/v9.2/salesorders")
    return httpx.Response(status, json=body, headers=headers, request=request)


@pytest.mark.parametrize(
    ("status", "body", "headers", "kind", "code", "retry_after"),
    [
        (
            429,
            {"error": {"code": "0x80072322", "message": "limit"}},
            {"Retry-After": "12"},
            TransientError,
            "0x80072322",
            12.0,
        ),
        (
            400,
            {"error": {"code": "0x80072321", "message": "time"}},
            None,
            TransientError,
            "0x80072321",
            None,
        ),
        (
            503,
            {"error": {"code": "0x80040216", "message": "down"}},
            None,
            TransientError,
            "0x80040216",
            None,
        ),
        (401, None, {"WWW-Authenticate": "Bearer authorization_uri=x"}, TransientError, None, None),
        (
            400,
            {"error": {"code": "0x80040203", "message": "bad"}},
            None,
            RejectedError,
            "0x80040203",
            None,
        ),
        (
            403,
            {"error": {"code": "0x80040220", "message": "privilege"}},
            None,
            RejectedError,
            "0x80040220",
            None,
        ),
        (
            412,
            {"error": {"code": "0x80040237", "message": "exists"}},
            None,
            RejectedError,
            "0x80040237",
            None,
        ),
        (
            404,
            {"error": {"code": "0x80040217", "message": "missing"}},
            None,
            NotFoundError,
            "0x80040217",
            None,
        ),
    ],
)
def test_the_classifier_reads_dataverse_errors(
    status: int,
    body: Any,
    headers: dict[str, str] | None,
    kind: type[Exception],
    code: str | None,
    retry_after: float | None,
) -> None:
    error = classify_dynamics("create_sales_order", _response(status, body, headers))
    assert type(error) is kind
    assert error.code == code
    assert getattr(error, "retry_after", None) == retry_after


async def test_one_token_cached_and_refreshed_once_when_refused(rig: Rig) -> None:
    assert rig.tokens.requests == 1  # the fixture's upsert
    await rig.erp.find_customer(ACCOUNT_KEY)
    await rig.erp.get_catalog_items(["PLAT-CORE"])
    assert rig.tokens.requests == 1
    rig.state.oauth["dynamics"].expire_all()
    assert await rig.erp.find_customer(ACCOUNT_KEY) == rig.customer_id
    assert rig.tokens.requests == 2
    emulator.revoke_credentials(rig.state)
    with pytest.raises(TransientError) as refused:
        await rig.erp.find_customer(ACCOUNT_KEY)
    assert refused.value.status == 401
    assert "REVSYNC_DYNAMICS_CLIENT_SECRET" in refused.value.message


def test_the_grant_asks_entra_for_the_environment_scope() -> None:
    grant = ClientSecretGrant("app", "secret", scope="https://org.crm.dynamics.com/.default")
    assert grant.form("u", 0.0) == {
        "grant_type": "client_credentials",
        "client_id": "app",
        "client_secret": "secret",
        "scope": "https://org.crm.dynamics.com/.default",
    }
    assert dynamics_token_url("https://org.crm4.dynamics.com", "t1") == (
        "https://login.microsoftonline.com/t1/oauth2/v2.0/token"
    )
    assert dynamics_token_url("http://127.0.0.1:8100/dynamics", "t1") == (
        "http://127.0.0.1:8100/dynamics/t1/oauth2/v2.0/token"
    )
    assert key_segment("k", "a'b:c") == "(k='a''b%3Ac')"


# -- invoice-to-revenue -------------------------------------------------------------------------


async def test_receivable_posted_once_and_paid(rig: Rig) -> None:
    key = "i2r-in_1Nord:receivable"
    first = await rig.erp.post_receivable(invoice(), rig.customer_id, key)
    again = await rig.erp.post_receivable(invoice(), rig.customer_id, key)
    assert again.receivable_id == first.receivable_id and len(rig.rows("invoices")) == 1
    assert (first.total, first.tax, first.amount_due) == (D("3636.64"), D("580.64"), D("3636.64"))
    assert await rig.erp.find_receivable(key) == first
    assert await rig.erp.find_receivable("i2r-other:receivable") is None
    payment = PaymentApplication(
        payment_id="ch_1",
        invoice_id="in_1Nord",
        receivable_id=first.receivable_id,
        amount=D("4000.00"),
        currency="EUR",
        paid_on=date(2026, 2, 1),
    )
    posted = await rig.erp.apply_payment(payment)
    assert (posted.applied, posted.unapplied) == (D("3636.64"), D("363.36"))
    assert (await rig.erp.apply_payment(payment)).payment_record_id == posted.payment_record_id
    assert len(rig.rows("payments")) == 1
    paid = await rig.erp.find_receivable(key)
    assert paid is not None and paid.state is ReceivableState.PAID
    with pytest.raises(RejectedError) as closed:
        await rig.erp.apply_payment(payment.model_copy(update={"payment_id": "ch_2"}))
    assert closed.value.code == "RECEIVABLE_CLOSED"
    with pytest.raises(RejectedError) as paid_refusal:
        await rig.erp.reverse_receivable(first.receivable_id, "i2r-in_1Nord:void", "void")
    assert paid_refusal.value.code == "RECEIVABLE_PAID"
    listed = await rig.erp.list_receivables(None, 10)
    assert [(r.invoice_id, r.amount_due, r.status) for r in listed.items] == [
        ("in_1Nord", D(0), "closed")
    ]


async def test_partial_credit_then_reversal_of_the_rest(rig: Rig) -> None:
    posted = await rig.erp.post_receivable(invoice(), rig.customer_id, "i2r-in_1Nord:receivable")
    credit = ReceivableCredit(
        external_id="cn_1",
        invoice_id="in_1Nord",
        receivable_id=posted.receivable_id,
        currency="EUR",
        lines=(CreditLine(line_id="il_seats", amount=D("100.00"), tax=D("19.00")),),
    )
    first = await rig.erp.credit_receivable(credit)
    assert (await rig.erp.credit_receivable(credit)).credit_memo_id == first.credit_memo_id
    assert first.total == D("119.00") and first.lines == credit.lines
    too_much = credit.model_copy(
        update={
            "external_id": "cn_2",
            "lines": (CreditLine(line_id="il_seats", amount=D("700.00"), tax=D("0")),),
        }
    )
    with pytest.raises(RejectedError) as over:
        await rig.erp.credit_receivable(too_much)
    assert over.value.code == "LINE_OVER_CREDITED"
    reversed_ = await rig.erp.reverse_receivable(posted.receivable_id, "i2r-in_1Nord:void", "void")
    assert reversed_.state is ReceivableState.REVERSED and reversed_.amount_due == 0
    assert reversed_.amount_credited == D("3636.64") and len(reversed_.reversal_ids) == 2
    again = await rig.erp.reverse_receivable(posted.receivable_id, "i2r-in_1Nord:void", "void")
    assert again == reversed_ and len(rig.rows("creditnotes")) == 2


async def test_revenue_journals_are_keyed_and_closed_periods_rejected(rig: Rig) -> None:
    journal = RevenueJournal(
        journal_id="in_1Nord/il_seats/2026-01",
        invoice_id="in_1Nord",
        line_id="il_seats",
        period="2026-01",
        amount=D("414.58"),
        currency="EUR",
        customer_id=rig.customer_id,
    )
    rig.lossy.lose("POST", "/revsync_revenuejournals")
    with pytest.raises(UnknownOutcomeError):
        await rig.erp.post_revenue_journal(journal)
    posted = await rig.erp.post_revenue_journal(journal)
    assert (posted.amount, posted.period, posted.journal_id) == (
        D("414.58"),
        "2026-01",
        journal.journal_id,
    )
    assert len(rig.rows("revenuejournals")) == 1
    back = await rig.erp.post_revenue_journal(
        journal.model_copy(
            update={"journal_id": "in_1Nord/il_seats/2026-01/void", "amount": D("-414.58")}
        )
    )
    assert back.amount == D("-414.58")
    (row,) = [r for r in rig.rows("revenuejournals") if r["revsync_key"].endswith("/void")]
    assert (row["revsync_debitaccount"], row["revsync_creditaccount"]) == ("4000", "2400")
    rig.state.dynamics.set_period("2026-02", closed=True)
    with pytest.raises(RejectedError) as closed:
        await rig.erp.post_revenue_journal(
            journal.model_copy(
                update={"journal_id": "in_1Nord/il_seats/2026-02", "period": "2026-02"}
            )
        )
    assert closed.value.code == "PERIOD_CLOSED"
    with pytest.raises(RejectedError) as mismatch:
        await rig.erp.post_revenue_journal(journal.model_copy(update={"amount": D("1.00")}))
    assert mismatch.value.code == "JOURNAL_MISMATCH"


async def test_the_registry_builds_it_and_pages_on_the_environment_it_names(
    state: SandboxState, http: httpx.AsyncClient
) -> None:
    settings = Settings(sandbox_host="sandbox", sandbox_port=80, erp="dynamics")
    erp = registry.build_erp(settings, http)
    assert erp.vendor == "dynamics"
    customer_id = await erp.upsert_customer(seeded_customer(), ACCOUNT_KEY)
    for n in range(3):
        await erp.create_sales_order(draft(f"0Q0DYNREG{n:03d}"), customer_id)
    first = await erp.list_sales_orders(None, 2)
    assert first.cursor is not None and len(first.items) == 2
    rest = await erp.list_sales_orders(first.cursor, 2)
    assert len(rest.items) == 1 and rest.cursor is None


# -- the emulator speaks Dataverse and Entra ID -----------------------------------------------


async def _token(http: httpx.AsyncClient, **form: str) -> httpx.Response:
    body = {
        "client_id": emulator.CLIENT_ID,
        "client_secret": emulator.CLIENT_SECRET,
        "grant_type": "client_credentials",
        "scope": f"{BASE_URL}/.default",
        **form,
    }
    return await http.post(f"{BASE_URL}/{emulator.TENANT}/oauth2/v2.0/token", data=body)


async def test_entra_refuses_a_wrong_secret_an_unknown_app_and_another_resource(
    http: httpx.AsyncClient,
) -> None:
    granted = await _token(http)
    assert granted.status_code == 200
    assert granted.json()["token_type"] == "Bearer" and granted.json()["expires_in"] > 0
    wrong = await _token(http, client_secret="nope")
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
    assert wrong.json()["error_description"].startswith("AADSTS7000215")
    unknown = await _token(http, client_id="someone-else")
    assert (unknown.status_code, unknown.json()["error"]) == (400, "unauthorized_client")
    elsewhere = await _token(http, scope="https://other.crm.dynamics.com/.default")
    assert (elsewhere.status_code, elsewhere.json()["error"]) == (400, "invalid_scope")


async def test_conditional_upserts_answer_412_and_404_and_a_bad_token_401(
    http: httpx.AsyncClient, state: SandboxState
) -> None:
    token = (await _token(http)).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    url = f"{BASE_URL}/api/data/v9.2/accounts(revsync_externalkey='acct-x')"
    created = await http.patch(url, json={"name": "X"}, headers={**auth, "If-None-Match": "*"})
    assert created.status_code == 204 and "accounts(" in created.headers["OData-EntityId"]
    again = await http.patch(url, json={"name": "X"}, headers={**auth, "If-None-Match": "*"})
    assert again.status_code == 412
    assert again.json()["error"]["code"] == "0x80040237"
    missing = f"{BASE_URL}/api/data/v9.2/accounts(revsync_externalkey='acct-y')"
    update_only = await http.patch(missing, json={"name": "Y"}, headers={**auth, "If-Match": "*"})
    assert update_only.status_code == 404
    assert update_only.json()["error"]["code"] == "0x80040217"
    assert len(state.dynamics.snapshot()["accounts"]) == 1
    refused = await http.get(url, headers={"Authorization": "Bearer stale"})
    assert refused.status_code == 401 and not refused.content
    assert refused.headers["WWW-Authenticate"].startswith("Bearer authorization_uri=")


async def test_a_cancel_that_lost_the_race_to_another_counts_as_done(rig: Rig) -> None:
    order = await rig.erp.create_sales_order(draft(), rig.customer_id)
    # The action is applied (another cancel got there first), then the answer is a refusal.
    rig.inject(operation="cancel_sales_order", phase="after", status=400, code="0x80040225")
    cancelled = await rig.erp.cancel_sales_order(order.order_id, "billing refused")
    assert cancelled.status is SalesOrderStatus.CANCELLED


async def test_the_price_lists_and_ledger_accounts_come_from_the_settings(
    state: SandboxState, http: httpx.AsyncClient
) -> None:
    settings = Settings(
        sandbox_host="sandbox",
        sandbox_port=80,
        dynamics_price_list_prefix="Tarif",
        dynamics_revenue_account="4100",
    )
    erp = registry.ERP_VENDORS["dynamics"](settings, http)
    customer_id = await erp.upsert_customer(seeded_customer(), ACCOUNT_KEY)
    with pytest.raises(RejectedError) as refused:
        await erp.create_sales_order(draft(), customer_id)
    assert refused.value.code == "NO_PRICE_LIST"  # no "Tarif EUR" in the environment
    journal = RevenueJournal(
        journal_id="in_9/il_1/2026-01",
        invoice_id="in_9",
        line_id="il_1",
        period="2026-01",
        amount=D("10.00"),
        currency="EUR",
    )
    assert (await erp.post_revenue_journal(journal)).amount == D("10.00")
    (row,) = state.dynamics.snapshot()["revenuejournals"]
    assert (row["revsync_debitaccount"], row["revsync_creditaccount"]) == ("2400", "4100")
