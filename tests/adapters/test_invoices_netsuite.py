"""Invoice-to-revenue, ERP side: receivables, revenue journals, payments and reversals of the
NetSuite adapter against the NetSuite emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest

from adapters.erp.netsuite import NetSuiteErp, journal_external_id, period_from_name, period_name
from adapters.errors import NotFoundError, RejectedError, TransientError, UnknownOutcomeError
from adapters.http import decode_json, dumps_json
from adapters.ports import ErpPort
from domain.invoice import Invoice, InvoiceStatus, OneOffLine, SubscriptionLine
from domain.receivable import (
    CreditLine,
    PaymentApplication,
    Receivable,
    ReceivableCredit,
    ReceivableState,
    RevenueJournal,
)
from domain.revenue import build_schedule, reverse
from sandbox.app import DEFAULT_TOKENS, SandboxState, create_app
from sandbox.faults import FaultRule, FaultsRequest
from tests.adapters.lossy import LossyTransport
from tests.adapters.test_netsuite import customer

BASE_URL = "http://sandbox/netsuite"
RECORDS = f"{BASE_URL}/services/rest/record/v1"
TOKEN = DEFAULT_TOKENS["netsuite"]
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RECEIVABLE_KEY = "i2r-in_1Nord:erp-receivable"
D = Decimal


@dataclass
class Rig:
    erp: NetSuiteErp
    http: httpx.AsyncClient
    lossy: LossyTransport
    state: SandboxState
    customer_id: str

    def inject(self, **rule: Any) -> None:
        self.state.faults.configure(FaultsRequest(faults=[FaultRule(vendor="netsuite", **rule)]))

    def snapshot(self, kind: str) -> list[dict[str, Any]]:
        return list(self.state.netsuite.snapshot()[kind])

    def sent(self) -> list[httpx.Request]:
        sent: list[httpx.Request] = []

        async def record(request: httpx.Request) -> None:
            sent.append(request)

        self.http.event_hooks["request"].append(record)
        return sent


@pytest.fixture
async def rig(state: SandboxState) -> AsyncIterator[Rig]:
    lossy = LossyTransport(httpx.ASGITransport(app=create_app(state)))
    async with httpx.AsyncClient(transport=lossy, base_url="http://sandbox") as http:
        erp = NetSuiteErp(http, base_url=BASE_URL, access_token=TOKEN)
        port: ErpPort = erp  # mypy checks the adapter implements the port
        assert port.vendor == "netsuite"
        customer_id = await erp.upsert_customer(customer(), "acct-0015e00000NordDE1")
        yield Rig(erp, http, lossy, state, customer_id)


def invoice(
    invoice_id: str = "in_1Nord",
    currency: str = "EUR",
    issued: date = date(2026, 1, 15),
    due: date = date(2026, 2, 14),
) -> Invoice:
    """20 seats for a month from 15 January and the onboarding, both with 19 % VAT."""
    seats = SubscriptionLine(
        line_id="il_seats",
        sku="PLAT-CORE",
        description="Platform Core, 20 seats",
        amount=Decimal("756.00"),
        tax_amount=Decimal("143.64"),
        service_start=date(2026, 1, 15),
        service_end=date(2026, 2, 15),
    )
    onboarding = OneOffLine(
        line_id="il_onboard",
        sku="ONBOARD-STD",
        amount=Decimal("2300.00"),
        tax_amount=Decimal("437.00"),
    )
    return Invoice(
        invoice_id=invoice_id,
        account_id="0015e00000NordDE1",
        currency=currency,
        issue_date=issued,
        due_date=due,
        status=InvoiceStatus.OPEN,
        lines=[seats, onboarding],
        subtotal=Decimal("3056.00"),
        tax=Decimal("580.64"),
        total=Decimal("3636.64"),
    )


async def posted(rig: Rig, key: str = RECEIVABLE_KEY) -> Receivable:
    return await rig.erp.post_receivable(invoice(), rig.customer_id, key)


def payment(
    receivable: Receivable, amount: str | None = None, payment_id: str = "ch_3Pay"
) -> PaymentApplication:
    return PaymentApplication(
        payment_id=payment_id,
        invoice_id="in_1Nord",
        receivable_id=receivable.receivable_id,
        amount=Decimal(amount) if amount is not None else receivable.total,
        currency=receivable.currency,
        paid_on=date(2026, 2, 3),
    )


def journals(customer_id: str | None = None) -> list[RevenueJournal]:
    schedule = build_schedule(invoice())
    return [
        RevenueJournal.for_entry(e, invoice_id="in_1Nord", currency="EUR", customer_id=customer_id)
        for e in schedule.entries
    ]


async def close(rig: Rig, period: str, closed: bool = True) -> None:
    response = await rig.http.post(
        "/_sandbox/netsuite/periods", json={"period": period, "closed": closed}
    )
    assert response.status_code == 200, response.text


# --- receivables ----------------------------------------------------------------------------


async def test_the_receivable_is_posted_once_with_lines_tax_currency_and_due_date(
    rig: Rig,
) -> None:
    first = await posted(rig)
    again = await posted(rig)

    assert again == first
    assert first.external_id == RECEIVABLE_KEY
    assert first.invoice_id == "in_1Nord"
    assert first.customer_id == rig.customer_id
    assert first.currency == "EUR"
    assert (first.total, first.tax, first.amount_due) == (
        Decimal("3636.64"),
        Decimal("580.64"),
        Decimal("3636.64"),
    )
    assert first.amount_paid == first.amount_credited == 0
    assert (first.issue_date, first.due_date) == (date(2026, 1, 15), date(2026, 2, 14))
    assert first.state is ReceivableState.OPEN
    (record,) = rig.snapshot("invoices")
    assert record["id"] == first.receivable_id
    assert record["externalId"] == RECEIVABLE_KEY
    assert record["currency"] == "EUR"
    assert record["terms"] == "Net 30"  # 30 days from issue to due
    assert (record["tranDate"], record["dueDate"]) == ("2026-01-15", "2026-02-14")
    assert record["postingPeriod"] == "Jan 2026"
    assert record["otherRefNum"] == "in_1Nord"
    assert (record["subtotal"], record["taxTotal"], record["total"]) == (
        Decimal("3056.00"),
        Decimal("580.64"),
        Decimal("3636.64"),
    )
    seats, onboarding = record["item"]
    assert (seats["itemId"], seats["quantity"], seats["rate"], seats["amount"]) == (
        "PLAT-CORE",
        Decimal(1),
        Decimal("756.00"),
        Decimal("756.00"),
    )
    assert seats["custcol_revsync_line"] == "il_seats"
    # SuiteTax: billing's tax is recorded as is, in the tax details override, one detail per
    # taxed line, linked to it by the billing line id.
    assert seats["taxDetailsReference"] == "il_seats"
    assert (seats["taxAmount"], onboarding["taxAmount"]) == (D("143.64"), D("437.00"))
    assert record["taxDetailsOverride"] is True
    assert [
        (d["taxDetailsReference"], d["taxCode"], d["taxType"], d["taxBasis"], d["taxAmount"])
        for d in record["taxDetails"]
    ] == [
        ("il_seats", "BILLED-TAX", "VAT", D("756.00"), D("143.64")),
        ("il_onboard", "BILLED-TAX", "VAT", D("2300.00"), D("437.00")),
    ]
    assert [d["taxRate"] for d in record["taxDetails"]] == [D("19.0000"), D("19.0000")]
    # The service period, end inclusive as NetSuite counts it.
    assert (seats["revRecStartDate"], seats["revRecEndDate"]) == ("2026-01-15", "2026-02-14")
    assert onboarding["itemId"] == "ONBOARD-STD"
    assert onboarding["description"] == "ONBOARD-STD"
    assert onboarding["revRecStartDate"] is None
    assert await rig.erp.find_receivable(RECEIVABLE_KEY) == first


async def test_a_due_date_off_the_standard_terms_is_sent_without_terms(rig: Rig) -> None:
    await rig.erp.post_receivable(
        invoice(due=date(2026, 2, 4)), rig.customer_id, "i2r-in_1Nord:erp-20-days"
    )
    (record,) = rig.snapshot("invoices")
    assert record["terms"] is None
    assert record["dueDate"] == "2026-02-04"


async def test_a_yen_receivable_keeps_whole_yen(rig: Rig) -> None:
    customer_id = await rig.erp.upsert_customer(customer(currency="JPY"), "acct-jp")
    yen = Invoice(
        invoice_id="in_JP1",
        account_id="0015e00000SakuJP1",
        currency="JPY",
        issue_date=date(2026, 3, 1),
        due_date=date(2026, 3, 1),
        status=InvoiceStatus.OPEN,
        lines=[OneOffLine(line_id="il_1", sku="PLAT-CORE", amount=Decimal("45423"))],
        subtotal=Decimal("45423"),
        total=Decimal("45423"),
    )
    receivable = await rig.erp.post_receivable(yen, customer_id, "i2r-in_JP1:erp-receivable")
    assert str(receivable.total) == "45423"
    (record,) = rig.snapshot("invoices")
    assert record["currency"] == "JPY"
    assert record["terms"] == "Due on receipt"
    assert record["item"][0]["taxAmount"] == 0  # no tax on the line, none recorded
    # The override is set all the same: NetSuite's tax engine must not add a tax billing did
    # not charge.
    assert (record["taxDetailsOverride"], record["taxDetails"]) == (True, [])


async def test_an_unknown_receivable_is_none(rig: Rig) -> None:
    assert await rig.erp.find_receivable("i2r-nothing:erp-receivable") is None


async def test_legacy_tax_is_refused_and_the_tax_details_override_is_checked(rig: Rig) -> None:
    """NetSuite's REST web services support SuiteTax only: a line's legacy ``tax1Amt`` is a
    field that does not exist; tax details are taken with the override only, each naming a
    line, a tax type and a tax code of that type, every column given."""

    def body(line: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {
            "externalId": "i2r-raw",
            "entity": {"id": rig.customer_id},
            "tranDate": "2026-01-15",
            "item": {
                "items": [
                    {"item": {"id": "1101"}, "quantity": 1, "rate": 100, "amount": 100, **line}
                ]
            },
            **extra,
        }

    def detail(**changes: Any) -> dict[str, Any]:
        return {
            "taxDetailsReference": "l1",
            "taxType": {"id": "1"},
            "taxCode": {"id": "11"},
            "taxBasis": 100,
            "taxRate": 19,
            "taxAmount": D("19.00"),
            **changes,
        }

    async def refused(payload: dict[str, Any]) -> dict[str, Any]:
        response = await rig.http.post(
            f"{RECORDS}/invoice", content=dumps_json(payload), headers=AUTH
        )
        assert response.status_code == 400, response.text
        error = decode_json(response)
        assert error["status"] == 400 and error["title"] == "Bad Request"
        (first,) = error["o:errorDetails"]
        return dict(first)

    legacy = await refused(body({"tax1Amt": D("19.00")}))
    assert (legacy["o:errorCode"], legacy["o:errorPath"]) == (
        "NONEXISTENT_FIELD",
        "item.items[0].tax1Amt",
    )
    assert "legacy tax" in legacy["detail"]
    unlinked = body({"taxDetailsReference": "l1"}, taxDetails={"items": [detail()]})
    assert (await refused(unlinked))["o:errorPath"] == "taxDetails"  # no override
    override = {"taxDetailsOverride": True}
    other_type = body(
        {"taxDetailsReference": "l1"},
        **override,
        taxDetails={"items": [detail(taxType={"id": "2"})]},
    )
    assert (await refused(other_type))["o:errorPath"] == "taxDetails.items[0].taxCode"
    elsewhere = body(
        {"taxDetailsReference": "l1"},
        **override,
        taxDetails={"items": [detail(taxDetailsReference="l9")]},
    )
    assert (await refused(elsewhere))["o:errorPath"] == "taxDetails.items[0].taxDetailsReference"
    partial = body(
        {"taxDetailsReference": "l1"},
        **override,
        taxDetails={"items": [detail(taxRate=None)]},
    )
    assert (await refused(partial))["detail"] == "Please enter value(s) for: Tax Rate"
    assert rig.snapshot("invoices") == []

    taken = await rig.http.post(
        f"{RECORDS}/invoice",
        content=dumps_json(
            body({"taxDetailsReference": "l1"}, **override, taxDetails={"items": [detail()]})
        ),
        headers=AUTH,
    )
    assert taken.status_code == 204, taken.text
    (record,) = rig.snapshot("invoices")
    assert (record["subtotal"], record["taxTotal"], record["total"]) == (
        D(100),
        D("19.00"),
        D("119.00"),
    )


async def test_the_receivable_request_carries_no_legacy_tax(rig: Rig) -> None:
    sent = rig.sent()
    await posted(rig)
    (create,) = [r for r in sent if r.method == "POST" and r.url.path.endswith("/invoice")]
    payload = decode_json(httpx.Response(200, content=create.content))
    assert all("tax1Amt" not in line for line in payload["item"]["items"])
    assert payload["taxDetailsOverride"] is True
    assert payload["taxDetails"]["items"][0] == {
        "taxDetailsReference": "il_seats",
        "taxType": {"id": "1"},
        "taxCode": {"id": "11"},
        "taxBasis": D("756.00"),
        "taxRate": D("19.0000"),
        "taxAmount": D("143.64"),
    }


async def test_a_sku_missing_from_the_catalog_is_rejected_before_posting(rig: Rig) -> None:
    odd = invoice().model_copy(
        update={
            "lines": [
                OneOffLine(line_id="il_x", sku="NOT-IN-NETSUITE", amount=Decimal("3056.00")),
                OneOffLine(line_id="il_tax", sku="ONBOARD-STD", amount=Decimal(0)),
            ]
        }
    )
    sent = rig.sent()
    with pytest.raises(RejectedError) as caught:
        await rig.erp.post_receivable(odd, rig.customer_id, RECEIVABLE_KEY)
    assert caught.value.code == "UNKNOWN_ITEM"
    assert "NOT-IN-NETSUITE" in caught.value.message
    assert not [r for r in sent if r.url.path.endswith("/record/v1/invoice")]
    assert rig.snapshot("invoices") == []


async def test_a_key_already_used_by_another_invoice_is_rejected(rig: Rig) -> None:
    await posted(rig)
    other = invoice(invoice_id="in_2Other").model_copy(
        update={
            "lines": [OneOffLine(line_id="il_1", sku="ONBOARD-STD", amount=Decimal("10.00"))],
            "subtotal": Decimal("10.00"),
            "tax": Decimal(0),
            "total": Decimal("10.00"),
        }
    )
    with pytest.raises(RejectedError) as caught:
        await rig.erp.post_receivable(other, rig.customer_id, RECEIVABLE_KEY)
    assert caught.value.code == "EXTERNAL_ID_REUSED"
    assert len(rig.snapshot("invoices")) == 1


async def test_a_lost_answer_to_the_receivable_is_an_unknown_outcome_and_the_retry_finds_it(
    rig: Rig,
) -> None:
    rig.lossy.lose("POST", "/record/v1/invoice")

    with pytest.raises(UnknownOutcomeError):
        await posted(rig)
    (made,) = rig.snapshot("invoices")  # applied, though the caller never heard

    retried = await posted(rig)
    assert retried.receivable_id == made["id"]
    assert len(rig.snapshot("invoices")) == 1


async def test_a_duplicate_key_on_create_returns_the_existing_receivable(rig: Rig) -> None:
    first = await posted(rig)
    # The look-up misses (as if the first create had not landed yet): the POST meets DUP_RCRD.
    rig.inject(operation="get_invoice", status=404, code="NONEXISTENT_ID")

    again = await posted(rig)

    assert again == first
    assert len(rig.snapshot("invoices")) == 1
    assert rig.state.faults.pending() == []


async def test_netsuite_answers_a_duplicate_receivable_key_with_dup_rcrd(rig: Rig) -> None:
    await posted(rig)
    body = {
        "externalId": RECEIVABLE_KEY,
        "entity": {"id": rig.customer_id},
        "item": {"items": [{"item": {"id": "1101"}, "quantity": 1, "rate": 1}]},
    }
    response = await rig.http.post(f"{RECORDS}/invoice", json=body, headers=AUTH)
    assert response.status_code == 400
    (detail,) = response.json()["o:errorDetails"]
    assert (detail["o:errorCode"], detail["o:errorPath"]) == ("DUP_RCRD", "externalId")


async def test_server_errors_and_governance_are_transient(rig: Rig) -> None:
    rig.inject(operation="create_invoice", status=503)
    with pytest.raises(TransientError) as caught:
        await posted(rig)
    assert caught.value.status == 503
    assert rig.snapshot("invoices") == []

    rig.inject(operation="create_invoice", status=429, retry_after=3)
    with pytest.raises(TransientError) as throttled:
        await posted(rig)
    assert throttled.value.code == "CONCURRENCY_LIMIT_EXCEEDED"
    assert throttled.value.retry_after == 3

    rig.inject(operation="create_invoice", status=502, phase="after")
    with pytest.raises(TransientError):
        await posted(rig)
    (made,) = rig.snapshot("invoices")  # applied before the 502
    assert (await posted(rig)).receivable_id == made["id"]


async def test_an_invalid_receivable_is_rejected_with_netsuites_error(rig: Rig) -> None:
    with pytest.raises(RejectedError) as caught:
        await rig.erp.post_receivable(invoice(), "999999", RECEIVABLE_KEY)
    assert caught.value.status == 400
    assert caught.value.code == "INVALID_KEY_OR_REF"
    assert "entity" in caught.value.message


# --- revenue journals -----------------------------------------------------------------------


async def test_each_schedule_entry_posts_one_journal_once(rig: Rig) -> None:
    entries = journals(rig.customer_id)
    postings = [await rig.erp.post_revenue_journal(j) for j in entries]
    again = [await rig.erp.post_revenue_journal(j) for j in entries]

    assert again == postings
    assert [(p.journal_id, p.period, p.amount) for p in postings] == [
        ("in_1Nord/il_onboard/2026-01", "2026-01", Decimal("2300.00")),
        ("in_1Nord/il_seats/2026-01", "2026-01", Decimal("414.58")),
        ("in_1Nord/il_seats/2026-02", "2026-02", Decimal("341.42")),
    ]
    stored = rig.snapshot("journalEntries")
    assert len(stored) == 3
    seats_feb = stored[2]
    assert seats_feb["externalId"] == "in_1Nord~il_seats~2026-02"
    assert seats_feb["postingPeriod"] == "Feb 2026"
    assert seats_feb["tranDate"] == "2026-02-28"  # the period's last day
    assert seats_feb["currency"] == "EUR"
    deferred, revenue = seats_feb["line"]
    assert (deferred["account"], deferred["debit"], deferred["credit"]) == (
        "2400",
        Decimal("341.42"),
        None,
    )
    assert (revenue["account"], revenue["debit"], revenue["credit"]) == (
        "4000",
        None,
        Decimal("341.42"),
    )
    assert deferred["entity"] == rig.customer_id


async def test_a_negative_journal_moves_revenue_back_to_deferred(rig: Rig) -> None:
    schedule = build_schedule(invoice())
    voided = reverse(schedule, recognised_through="2026-01", current_period="2026-02")
    seats = next(j for j in voided.journals if j.line_id == "il_seats")
    journal = RevenueJournal.for_entry(seats, invoice_id="in_1Nord", currency="EUR")

    posting = await rig.erp.post_revenue_journal(journal)

    assert posting.amount == Decimal("-414.58")
    assert posting.journal_id == "in_1Nord/il_seats/2026-02/void"
    (stored,) = rig.snapshot("journalEntries")
    assert stored["externalId"] == journal_external_id(journal.journal_id)
    deferred, revenue = stored["line"]
    assert (deferred["account"], deferred["credit"]) == ("2400", Decimal("414.58"))
    assert (revenue["account"], revenue["debit"]) == ("4000", Decimal("414.58"))
    assert "entity" not in deferred or deferred["entity"] is None


async def test_a_journal_into_a_closed_period_is_rejected_before_sending(rig: Rig) -> None:
    await close(rig, "2026-01")
    sent = rig.sent()

    with pytest.raises(RejectedError) as caught:
        await rig.erp.post_revenue_journal(journals()[0])

    assert caught.value.code == "PERIOD_CLOSED"
    assert "Jan 2026" in caught.value.message
    assert "in_1Nord/il_onboard/2026-01" in caught.value.message
    assert not [r for r in sent if r.method == "POST" and "journalEntry" in r.url.path]
    assert rig.snapshot("journalEntries") == []
    # February is open: its entry posts.
    assert (await rig.erp.post_revenue_journal(journals()[2])).period == "2026-02"


async def test_netsuite_itself_refuses_a_period_closed_after_the_check(rig: Rig) -> None:
    async def close_january(request: httpx.Request) -> None:
        if request.method == "POST" and request.url.path.endswith("/journalEntry"):
            rig.state.netsuite.set_period_closed("Jan 2026", True)

    rig.http.event_hooks["request"].append(close_january)

    with pytest.raises(RejectedError) as caught:
        await rig.erp.post_revenue_journal(journals()[0])

    assert caught.value.status == 400
    assert caught.value.code == "USER_ERROR"
    assert "Jan 2026 is closed" in caught.value.message
    assert rig.snapshot("journalEntries") == []
    assert rig.state.netsuite.snapshot()["closedPeriods"] == ["Jan 2026"]


async def test_a_journal_key_posted_with_other_figures_is_rejected(rig: Rig) -> None:
    first = journals()[0]
    await rig.erp.post_revenue_journal(first)
    changed = first.model_copy(update={"amount": Decimal("2299.99")})

    with pytest.raises(RejectedError) as caught:
        await rig.erp.post_revenue_journal(changed)

    assert caught.value.code == "JOURNAL_MISMATCH"
    assert "2300.00" in caught.value.message and "2299.99" in caught.value.message
    assert len(rig.snapshot("journalEntries")) == 1


async def test_a_lost_journal_answer_is_found_by_the_retry(rig: Rig) -> None:
    journal = journals()[1]
    rig.lossy.lose("POST", "/journalEntry")

    with pytest.raises(UnknownOutcomeError):
        await rig.erp.post_revenue_journal(journal)
    (made,) = rig.snapshot("journalEntries")

    posting = await rig.erp.post_revenue_journal(journal)
    assert posting.journal_entry_id == made["id"]
    assert len(rig.snapshot("journalEntries")) == 1


async def test_journal_server_errors_are_transient(rig: Rig) -> None:
    rig.inject(operation="create_journal_entry", status=500)
    with pytest.raises(TransientError):
        await rig.erp.post_revenue_journal(journals()[0])
    assert rig.snapshot("journalEntries") == []


async def test_a_revenue_account_missing_from_netsuite_is_rejected(rig: Rig) -> None:
    erp = NetSuiteErp(rig.http, base_url=BASE_URL, access_token=TOKEN, revenue_account="4999")
    with pytest.raises(RejectedError) as caught:
        await erp.post_revenue_journal(journals()[0])
    assert caught.value.code == "UNKNOWN_ACCOUNT"
    assert "4999" in caught.value.message


async def test_a_period_outside_the_fiscal_calendar_is_rejected(rig: Rig) -> None:
    journal = journals()[0].model_copy(update={"period": "2040-01"})
    with pytest.raises(RejectedError) as caught:
        await rig.erp.post_revenue_journal(journal)
    assert caught.value.code == "NO_PERIOD"


def test_a_zero_journal_cannot_be_built() -> None:
    with pytest.raises(ValueError, match="zero"):
        RevenueJournal(
            journal_id="in_1/L1/2026-01",
            invoice_id="in_1",
            line_id="L1",
            period="2026-01",
            amount=Decimal("0.00"),
            currency="EUR",
        )


def test_period_names_round_trip() -> None:
    assert period_name("2026-03") == "Mar 2026"
    assert period_from_name("Dec 2025") == "2025-12"
    assert period_from_name("Q1 2026") is None


async def test_the_emulator_refuses_an_unbalanced_journal(rig: Rig) -> None:
    body = {
        "currency": {"id": "4"},
        "line": {
            "items": [
                {"account": {"id": "4"}, "debit": Decimal("10.00")},
                {"account": {"id": "5"}, "credit": Decimal("9.99")},
            ]
        },
    }
    response = await rig.http.post(
        f"{RECORDS}/journalEntry",
        content=dumps_json(body),
        headers={**AUTH, "content-type": "application/json"},
    )
    assert response.status_code == 400
    (detail,) = response.json()["o:errorDetails"]
    assert detail["o:errorCode"] == "USER_ERROR"
    assert "not in balance" in detail["detail"]


async def test_suiteql_reads_the_fiscal_calendar(rig: Rig) -> None:
    await close(rig, "Feb 2026")
    rows = await rig.erp.suiteql(
        "test",
        "SELECT id, periodname, closed FROM accountingperiod "
        "WHERE periodname IN ('Jan 2026', 'Feb 2026', 'Q1 2026') ORDER BY id",
    )
    assert [(r["periodname"], r["closed"]) for r in rows] == [
        ("Q1 2026", "F"),
        ("Jan 2026", "F"),
        ("Feb 2026", "T"),
    ]
    reopened = await rig.http.post(
        "/_sandbox/netsuite/periods", json={"period": "2026-02", "closed": False}
    )
    assert reopened.json()["closed"] is False
    missing = await rig.http.post("/_sandbox/netsuite/periods", json={"period": "2099-01"})
    assert missing.status_code == 404


# --- payments -------------------------------------------------------------------------------


async def test_a_payment_is_applied_once(rig: Rig) -> None:
    receivable = await posted(rig)

    first = await rig.erp.apply_payment(payment(receivable))
    again = await rig.erp.apply_payment(payment(receivable))

    assert again == first
    assert first.payment_id == "ch_3Pay"
    assert first.receivable_id == receivable.receivable_id
    assert (first.amount, first.applied, first.unapplied) == (
        Decimal("3636.64"),
        Decimal("3636.64"),
        Decimal("0.00"),
    )
    assert (first.currency, first.paid_on) == ("EUR", date(2026, 2, 3))
    (stored,) = rig.snapshot("customerPayments")
    assert stored["externalId"] == "ch_3Pay"
    assert stored["postingPeriod"] == "Feb 2026"
    assert stored["apply"] == [{"doc": receivable.receivable_id, "amount": Decimal("3636.64")}]
    paid = await rig.erp.find_receivable(RECEIVABLE_KEY)
    assert paid is not None
    assert paid.state is ReceivableState.PAID
    assert (paid.amount_paid, paid.amount_due) == (Decimal("3636.64"), Decimal("0.00"))


async def test_part_payments_then_an_overpayment(rig: Rig) -> None:
    receivable = await posted(rig)
    part = await rig.erp.apply_payment(payment(receivable, "1000.00", "ch_part"))
    assert (part.applied, part.unapplied) == (Decimal("1000.00"), Decimal("0.00"))
    still_open = await rig.erp.find_receivable(RECEIVABLE_KEY)
    assert still_open is not None
    assert still_open.state is ReceivableState.OPEN
    assert still_open.amount_due == Decimal("2636.64")

    rest = await rig.erp.apply_payment(payment(receivable, "3000.00", "ch_rest"))
    assert (rest.applied, rest.unapplied) == (Decimal("2636.64"), Decimal("363.36"))


async def test_a_payment_on_a_receivable_with_nothing_due_is_rejected(rig: Rig) -> None:
    receivable = await posted(rig)
    await rig.erp.apply_payment(payment(receivable))

    with pytest.raises(RejectedError) as caught:
        await rig.erp.apply_payment(payment(receivable, payment_id="ch_second"))

    assert caught.value.code == "RECEIVABLE_CLOSED"
    assert "ch_second" in caught.value.message and "paid" in caught.value.message
    assert len(rig.snapshot("customerPayments")) == 1


async def test_netsuite_refuses_a_payment_for_a_settled_invoice(rig: Rig) -> None:
    receivable = await posted(rig)
    await rig.erp.apply_payment(payment(receivable))
    response = await rig.http.post(
        f"{RECORDS}/invoice/{receivable.receivable_id}/!transform/customerPayment",
        json={"externalId": "ch_direct"},
        headers=AUTH,
    )
    assert response.status_code == 400
    (detail,) = response.json()["o:errorDetails"]
    assert detail["o:errorCode"] == "USER_ERROR"
    assert "no amount due" in detail["detail"]


async def test_a_payment_in_another_currency_is_rejected(rig: Rig) -> None:
    receivable = await posted(rig)
    dollars = payment(receivable).model_copy(update={"currency": "USD"})
    with pytest.raises(RejectedError) as caught:
        await rig.erp.apply_payment(dollars)
    assert caught.value.code == "CURRENCY_MISMATCH"
    assert rig.snapshot("customerPayments") == []


async def test_a_lost_payment_answer_is_found_by_the_retry(rig: Rig) -> None:
    receivable = await posted(rig)
    rig.lossy.lose("POST", "/!transform/customerPayment")

    with pytest.raises(UnknownOutcomeError):
        await rig.erp.apply_payment(payment(receivable))
    (made,) = rig.snapshot("customerPayments")

    posting = await rig.erp.apply_payment(payment(receivable))
    assert posting.payment_record_id == made["id"]
    assert len(rig.snapshot("customerPayments")) == 1


async def test_payment_server_errors_are_transient(rig: Rig) -> None:
    receivable = await posted(rig)
    rig.inject(operation="create_customer_payment", status=503, retry_after=2)
    with pytest.raises(TransientError) as caught:
        await rig.erp.apply_payment(payment(receivable))
    assert caught.value.retry_after == 2
    assert rig.snapshot("customerPayments") == []


async def test_a_payment_dated_in_a_closed_period_posts_in_the_first_open_one(rig: Rig) -> None:
    receivable = await posted(rig)
    await close(rig, "2026-02")
    await rig.erp.apply_payment(payment(receivable))
    (stored,) = rig.snapshot("customerPayments")
    assert stored["tranDate"] == "2026-02-03"
    assert stored["postingPeriod"] == "Mar 2026"


async def test_a_payment_for_an_unknown_receivable_is_not_found(rig: Rig) -> None:
    receivable = await posted(rig)
    with pytest.raises(NotFoundError):
        await rig.erp.apply_payment(payment(receivable).model_copy(update={"receivable_id": "1"}))
    with pytest.raises(NotFoundError):
        await rig.erp.apply_payment(
            payment(receivable).model_copy(update={"receivable_id": "eid:x"})
        )


# --- reversal -------------------------------------------------------------------------------


async def test_reversing_credits_what_is_due_once(rig: Rig) -> None:
    receivable = await posted(rig)

    reversed_ = await rig.erp.reverse_receivable(
        receivable.receivable_id, "i2r-in_1Nord:erp-reversal", "invoice.voided in Stripe"
    )
    again = await rig.erp.reverse_receivable(
        receivable.receivable_id, "i2r-in_1Nord:erp-reversal", "invoice.voided in Stripe"
    )

    assert again == reversed_
    assert reversed_.state is ReceivableState.REVERSED
    assert (reversed_.amount_credited, reversed_.amount_due, reversed_.amount_paid) == (
        Decimal("3636.64"),
        Decimal("0.00"),
        Decimal("0.00"),
    )
    (credit,) = rig.snapshot("creditMemos")
    assert reversed_.reversal_ids == (credit["id"],)
    assert credit["externalId"] == "i2r-in_1Nord:erp-reversal"
    assert credit["createdFrom"] == receivable.receivable_id
    assert credit["memo"] == "Reversed by revsync: invoice.voided in Stripe"
    assert [line["itemId"] for line in credit["item"]] == ["PLAT-CORE", "ONBOARD-STD"]
    assert (credit["applied"], credit["unapplied"]) == (Decimal("3636.64"), Decimal("0.00"))
    assert await rig.erp.find_receivable(RECEIVABLE_KEY) == reversed_
    # Another key on a reversed receivable changes nothing either.
    assert await rig.erp.reverse_receivable(receivable.receivable_id, "other", "x") == reversed_
    assert len(rig.snapshot("creditMemos")) == 1


@pytest.mark.parametrize("paid", ["3636.64", "0.01"])
async def test_reversing_a_receivable_with_payments_is_rejected(rig: Rig, paid: str) -> None:
    receivable = await posted(rig)
    await rig.erp.apply_payment(payment(receivable, paid))

    with pytest.raises(RejectedError) as caught:
        await rig.erp.reverse_receivable(receivable.receivable_id, "i2r-rev", "voided")

    assert caught.value.code == "RECEIVABLE_PAID"
    assert f"{Decimal(paid)} EUR of payments applied" in caught.value.message
    assert rig.snapshot("creditMemos") == []


async def test_a_lost_reversal_answer_is_found_by_the_retry(rig: Rig) -> None:
    receivable = await posted(rig)
    rig.lossy.lose("POST", "/!transform/creditMemo")

    with pytest.raises(UnknownOutcomeError):
        await rig.erp.reverse_receivable(receivable.receivable_id, "i2r-rev", "voided")
    assert len(rig.snapshot("creditMemos")) == 1

    reversed_ = await rig.erp.reverse_receivable(receivable.receivable_id, "i2r-rev", "voided")
    assert reversed_.state is ReceivableState.REVERSED
    assert len(rig.snapshot("creditMemos")) == 1


async def test_reversal_server_errors_are_transient(rig: Rig) -> None:
    receivable = await posted(rig)
    rig.inject(operation="create_credit_memo", status=503)
    with pytest.raises(TransientError):
        await rig.erp.reverse_receivable(receivable.receivable_id, "i2r-rev", "voided")
    assert rig.snapshot("creditMemos") == []


async def test_a_reversal_key_of_another_receivable_is_rejected(rig: Rig) -> None:
    first = await posted(rig)
    second = await rig.erp.post_receivable(invoice("in_2"), rig.customer_id, "i2r-in_2:erp")
    await rig.erp.reverse_receivable(first.receivable_id, "i2r-rev", "voided")
    with pytest.raises(RejectedError) as caught:
        await rig.erp.reverse_receivable(second.receivable_id, "i2r-rev", "voided")
    assert caught.value.code == "EXTERNAL_ID_REUSED"


async def test_reversing_an_unknown_receivable_is_not_found(rig: Rig) -> None:
    with pytest.raises(NotFoundError):
        await rig.erp.reverse_receivable("424242", "i2r-rev", "voided")
    with pytest.raises(NotFoundError):
        await rig.erp.reverse_receivable("../salesOrder/7001", "i2r-rev", "voided")


async def test_the_sandbox_state_shows_every_record(rig: Rig) -> None:
    first = await posted(rig)
    second = await rig.erp.post_receivable(invoice("in_2"), rig.customer_id, "i2r-in_2:erp")
    await rig.erp.post_revenue_journal(journals()[0])
    await rig.erp.apply_payment(payment(first))
    await rig.erp.reverse_receivable(second.receivable_id, "i2r-in_2:reversal", "voided")
    await close(rig, "2025-12")

    response = await rig.http.get("/_sandbox/state")

    assert response.status_code == 200
    netsuite = decode_json(response)["netsuite"]
    assert [r["externalId"] for r in netsuite["invoices"]] == [RECEIVABLE_KEY, "i2r-in_2:erp"]
    assert [r["externalId"] for r in netsuite["journalEntries"]] == ["in_1Nord~il_onboard~2026-01"]
    assert netsuite["customerPayments"][0]["payment"] == Decimal("3636.64")
    assert netsuite["creditMemos"][0]["createdFrom"] == second.receivable_id
    assert netsuite["closedPeriods"] == ["Dec 2025"]


async def test_netsuites_refusal_of_a_payment_is_a_rejection(rig: Rig) -> None:
    receivable = await posted(rig)
    # Dated past the fiscal calendar: NetSuite has no period to post it in.
    late = payment(receivable).model_copy(update={"paid_on": date(2040, 1, 2)})
    with pytest.raises(RejectedError) as caught:
        await rig.erp.apply_payment(late)
    assert (caught.value.status, caught.value.code) == (400, "USER_ERROR")
    assert "No open accounting period" in caught.value.message
    assert rig.snapshot("customerPayments") == []


async def test_netsuites_refusal_of_a_reversal_is_a_rejection(rig: Rig) -> None:
    receivable = await posted(rig)
    rig.inject(
        operation="create_credit_memo",
        status=403,
        code="INSUFFICIENT_PERMISSION",
        message="Permission Violation: you need the 'Credit Memo' permission.",
    )
    with pytest.raises(RejectedError) as caught:
        await rig.erp.reverse_receivable(receivable.receivable_id, "i2r-rev", "voided")
    assert (caught.value.status, caught.value.code) == (403, "INSUFFICIENT_PERMISSION")
    assert "Credit Memo" in caught.value.message
    assert rig.snapshot("creditMemos") == []


# --- partial credit (a billing credit note) -------------------------------------------------


def credit_note(
    receivable: Receivable,
    *lines: tuple[str, str, str],
    key: str = "cn_1Seats",
    currency: str = "EUR",
) -> ReceivableCredit:
    """A credit note crediting (line id, pre-tax amount, tax) of each line given."""
    return ReceivableCredit(
        external_id=key,
        invoice_id="in_1Nord",
        receivable_id=receivable.receivable_id,
        currency=currency,
        lines=tuple(
            CreditLine(line_id=line_id, amount=Decimal(amount), tax=Decimal(tax))
            for line_id, amount, tax in lines
        ),
        reason="5 seats removed",
    )


SEATS_5 = ("il_seats", "189.00", "35.91")


async def test_a_credit_note_credits_only_its_lines_once(rig: Rig) -> None:
    receivable = await posted(rig)
    credit = credit_note(receivable, SEATS_5)

    posting = await rig.erp.credit_receivable(credit)
    again = await rig.erp.credit_receivable(credit)

    assert again == posting
    assert posting.external_id == "cn_1Seats"
    assert posting.receivable_id == receivable.receivable_id
    assert posting.lines == (CreditLine(line_id="il_seats", amount=D("189.00"), tax=D("35.91")),)
    assert (posting.total, posting.applied, posting.unapplied) == (D("224.91"), D("224.91"), D(0))
    (memo,) = rig.snapshot("creditMemos")
    assert memo["id"] == posting.credit_memo_id
    assert (memo["externalId"], memo["createdFrom"]) == ("cn_1Seats", receivable.receivable_id)
    assert [
        (x["itemId"], x["amount"], x["taxAmount"], x["custcol_revsync_line"]) for x in memo["item"]
    ] == [("PLAT-CORE", D("189.00"), D("35.91"), "il_seats")]
    assert memo["taxDetailsOverride"] is True
    assert [(d["taxDetailsReference"], d["taxAmount"]) for d in memo["taxDetails"]] == [
        ("il_seats", D("35.91"))
    ]
    assert memo["memo"] == "revsync credit note cn_1Seats: 5 seats removed"
    (ns_invoice,) = rig.snapshot("invoices")
    assert ns_invoice["amountRemaining"] == D("3636.64") - D("224.91")
    after = await rig.erp.find_receivable(RECEIVABLE_KEY)
    assert after is not None
    assert after.state is ReceivableState.OPEN
    assert (after.amount_due, after.amount_credited, after.amount_paid) == (
        D("3411.73"),
        D("224.91"),
        D("0.00"),
    )
    assert after.reversal_ids == (posting.credit_memo_id,)


async def test_a_credit_larger_than_what_is_still_due_is_rejected(rig: Rig) -> None:
    receivable = await posted(rig)
    await rig.erp.apply_payment(payment(receivable, "3500.00"))

    with pytest.raises(RejectedError) as caught:
        await rig.erp.credit_receivable(credit_note(receivable, SEATS_5))

    assert caught.value.code == "CREDIT_EXCEEDS_DUE"
    assert caught.value.message.startswith(
        "credit note cn_1Seats of invoice in_1Nord (NetSuite invoice "
        f"{receivable.receivable_id}) credits 224.91 EUR, more than the 136.64 EUR the invoice "
        "still owes (paid 3500.00, credited 0)"
    )
    assert rig.snapshot("creditMemos") == []


async def test_more_than_is_left_of_a_line_is_rejected(rig: Rig) -> None:
    receivable = await posted(rig)
    await rig.erp.credit_receivable(credit_note(receivable, ("il_seats", "600.00", "114.00")))

    with pytest.raises(RejectedError) as caught:
        await rig.erp.credit_receivable(credit_note(receivable, SEATS_5, key="cn_2"))
    assert caught.value.code == "LINE_OVER_CREDITED"
    assert (
        "line il_seats would be credited 189.00 + tax 35.91 EUR, but only 156.00 + tax 29.64 "
        "EUR of it is left to credit"
    ) in caught.value.message

    with pytest.raises(RejectedError) as unknown:
        await rig.erp.credit_receivable(
            credit_note(receivable, ("il_gone", "1.00", "0"), key="cn_3")
        )
    assert unknown.value.code == "UNKNOWN_LINE"
    assert "has no line il_gone (its lines: il_onboard, il_seats)" in unknown.value.message
    assert len(rig.snapshot("creditMemos")) == 1


async def test_a_credit_in_another_currency_is_rejected(rig: Rig) -> None:
    receivable = await posted(rig)
    with pytest.raises(RejectedError) as caught:
        await rig.erp.credit_receivable(credit_note(receivable, SEATS_5, currency="USD"))
    assert caught.value.code == "CURRENCY_MISMATCH"


async def test_a_lost_credit_answer_is_an_unknown_outcome_and_the_retry_finds_it(rig: Rig) -> None:
    receivable = await posted(rig)
    rig.lossy.lose("POST", "/!transform/creditMemo")

    with pytest.raises(UnknownOutcomeError):
        await rig.erp.credit_receivable(credit_note(receivable, SEATS_5))
    assert len(rig.snapshot("creditMemos")) == 1

    posting = await rig.erp.credit_receivable(credit_note(receivable, SEATS_5))
    assert posting.total == D("224.91")
    assert len(rig.snapshot("creditMemos")) == 1
    (ns_invoice,) = rig.snapshot("invoices")
    assert ns_invoice["amountRemaining"] == D("3411.73")


async def test_a_credit_key_posted_with_other_figures_or_for_another_receivable_is_rejected(
    rig: Rig,
) -> None:
    first = await posted(rig)
    second = await rig.erp.post_receivable(invoice("in_2"), rig.customer_id, "i2r-in_2:erp")
    await rig.erp.credit_receivable(credit_note(first, SEATS_5))

    with pytest.raises(RejectedError) as other_figures:
        await rig.erp.credit_receivable(credit_note(first, ("il_seats", "100.00", "19.00")))
    assert other_figures.value.code == "CREDIT_MISMATCH"
    assert "credits il_seats 189.00 + tax 35.91, not il_seats 100.00 + tax 19.00" in (
        other_figures.value.message
    )
    with pytest.raises(RejectedError) as other_receivable:
        await rig.erp.credit_receivable(credit_note(second, SEATS_5))
    assert other_receivable.value.code == "EXTERNAL_ID_REUSED"
    assert len(rig.snapshot("creditMemos")) == 1


async def test_credit_server_errors_are_transient(rig: Rig) -> None:
    receivable = await posted(rig)
    rig.inject(operation="create_credit_memo", status=503)
    with pytest.raises(TransientError):
        await rig.erp.credit_receivable(credit_note(receivable, SEATS_5))
    assert rig.snapshot("creditMemos") == []


async def test_a_void_after_a_credit_note_reverses_only_what_is_left(rig: Rig) -> None:
    receivable = await posted(rig)
    await rig.erp.credit_receivable(credit_note(receivable, SEATS_5))

    reversed_ = await rig.erp.reverse_receivable(receivable.receivable_id, "i2r-rev", "voided")

    assert reversed_.state is ReceivableState.REVERSED
    assert (reversed_.amount_due, reversed_.amount_credited) == (D("0.00"), D("3636.64"))
    partial, reversal = rig.snapshot("creditMemos")
    assert [(x["custcol_revsync_line"], x["amount"], x["taxAmount"]) for x in reversal["item"]] == [
        ("il_seats", D("567.00"), D("107.73")),
        ("il_onboard", D("2300.00"), D("437.00")),
    ]
    # Nothing is left unapplied on the customer: the two memos add up to the invoice.
    assert (reversal["total"], reversal["unapplied"]) == (D("3411.73"), D("0.00"))
    assert partial["total"] + reversal["total"] == D("3636.64")
