"""Invoice-to-revenue on SAP S/4HANA Cloud: receivables, journals, payments, reversals and
credits as journal entries, against the SAP emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest

from adapters.erp.sap import SapErp
from adapters.erp.sap_finance import document_reference
from adapters.errors import RejectedError, UnknownOutcomeError
from adapters.ports import ErpPort
from domain.receivable import (
    CreditLine,
    PaymentApplication,
    Receivable,
    ReceivableCredit,
    ReceivableState,
    RevenueJournal,
)
from sandbox.app import DEFAULT_TOKENS, SandboxState, create_app
from tests.adapters.lossy import LossyTransport
from tests.adapters.test_invoices_netsuite import invoice
from tests.ports.contract import seeded_customer

BASE_URL = "http://sandbox/sap"
RECEIVABLE_KEY = "i2r-in_1NordLongInvoiceIdentifier:receivable"
POST = "/sap/bc/srt/scs_ext/sap/journalentrycreaterequestconfi"
D = Decimal


@dataclass
class Rig:
    erp: SapErp
    lossy: LossyTransport
    state: SandboxState
    customer_id: str

    def documents(self, kind: str | None = None) -> list[dict[str, Any]]:
        entries = self.state.sap.snapshot()["journalEntries"]
        return [e for e in entries if kind is None or e["type"] == kind]


@pytest.fixture
async def rig(state: SandboxState) -> AsyncIterator[Rig]:
    lossy = LossyTransport(httpx.ASGITransport(app=create_app(state)))
    async with httpx.AsyncClient(transport=lossy, base_url="http://sandbox") as http:
        erp = SapErp(
            http, base_url=BASE_URL, username="COMM_REVSYNC", password=DEFAULT_TOKENS["sap"]
        )
        port: ErpPort = erp
        customer_id = await port.upsert_customer(seeded_customer(), "acct-0015e00000NordDE1")
        yield Rig(erp, lossy, state, customer_id)


async def posted(rig: Rig) -> Receivable:
    return await rig.erp.post_receivable(invoice(), rig.customer_id, RECEIVABLE_KEY)


def payment(
    receivable: Receivable, amount: str, payment_id: str = "ch_3PayLongPaymentId"
) -> PaymentApplication:
    return PaymentApplication(
        payment_id=payment_id,
        invoice_id="in_1Nord",
        receivable_id=receivable.receivable_id,
        amount=D(amount),
        currency="EUR",
        paid_on=date(2026, 2, 1),
    )


def test_document_references_fit_16_characters() -> None:
    assert document_reference("ch_3Pay") == "ch_3Pay"
    long_ref = document_reference(RECEIVABLE_KEY)
    assert len(long_ref) == 16 and long_ref.startswith("#")
    assert document_reference(RECEIVABLE_KEY + "x") != long_ref


async def test_the_receivable_is_posted_once_with_exact_money(rig: Rig) -> None:
    first = await posted(rig)
    again = await posted(rig)
    assert again.receivable_id == first.receivable_id
    assert len(rig.documents("DR")) == 1
    assert (first.total, first.tax, first.amount_due) == (D("3636.64"), D("580.64"), D("3636.64"))
    assert first.state is ReceivableState.OPEN
    assert first.invoice_id == "in_1NordLongInvoiceIdentifier"
    assert first.due_date == date(2026, 2, 14)
    assert first.customer_id == rig.customer_id
    found = await rig.erp.find_receivable(RECEIVABLE_KEY)
    assert found is not None and found.receivable_id == first.receivable_id
    assert await rig.erp.find_receivable("i2r-other:receivable") is None


async def test_a_lost_posting_answer_is_settled_by_the_keyed_retry(rig: Rig) -> None:
    rig.lossy.lose("POST", POST)
    with pytest.raises(UnknownOutcomeError):
        await posted(rig)
    assert len(rig.documents("DR")) == 1
    await posted(rig)
    assert len(rig.documents("DR")) == 1


async def test_payments_apply_once_and_an_overpayment_stays_unapplied(rig: Rig) -> None:
    receivable = await posted(rig)
    part = await rig.erp.apply_payment(payment(receivable, "1000.00", "ch_first"))
    assert (part.applied, part.unapplied) == (D("1000.00"), D("0"))
    assert (await rig.erp.apply_payment(payment(receivable, "1000.00", "ch_first"))) == part
    rest = await rig.erp.apply_payment(payment(receivable, "3000.00"))
    assert (rest.amount, rest.applied, rest.unapplied) == (D("3000.00"), D("2636.64"), D("363.36"))
    paid = await rig.erp.find_receivable(RECEIVABLE_KEY)
    assert paid is not None and paid.state is ReceivableState.PAID and paid.amount_due == 0
    assert len(rig.documents("DZ")) == 2
    with pytest.raises(RejectedError) as caught:
        await rig.erp.apply_payment(payment(receivable, "1.00", "ch_late"))
    assert caught.value.code == "RECEIVABLE_CLOSED"


async def test_reversal_credits_what_is_due_and_twice_is_a_no_op(rig: Rig) -> None:
    receivable = await posted(rig)
    reversed_ = await rig.erp.reverse_receivable(receivable.receivable_id, "i2r-x:void", "voided")
    assert reversed_.state is ReceivableState.REVERSED
    assert reversed_.amount_credited == D("3636.64") and reversed_.amount_due == 0
    again = await rig.erp.reverse_receivable(receivable.receivable_id, "i2r-x:void", "voided")
    assert again.state is ReceivableState.REVERSED
    assert len(rig.documents("DG")) == 1
    other = await rig.erp.post_receivable(
        invoice("in_2Other"), rig.customer_id, "i2r-in_2Other:receivable"
    )
    with pytest.raises(RejectedError) as caught:
        await rig.erp.reverse_receivable(other.receivable_id, "i2r-x:void", "voided")
    assert caught.value.code == "EXTERNAL_ID_REUSED"


async def test_a_paid_receivable_is_not_reversed(rig: Rig) -> None:
    receivable = await posted(rig)
    await rig.erp.apply_payment(payment(receivable, "10.00"))
    with pytest.raises(RejectedError) as caught:
        await rig.erp.reverse_receivable(receivable.receivable_id, "i2r-x:void", "voided")
    assert caught.value.code == "RECEIVABLE_PAID"


async def test_a_partial_credit_then_the_reversal_credits_only_what_is_left(rig: Rig) -> None:
    receivable = await posted(rig)
    credit = ReceivableCredit(
        external_id="cn_1NordCreditNoteLong",
        invoice_id="in_1Nord",
        receivable_id=receivable.receivable_id,
        currency="EUR",
        lines=(CreditLine(line_id="il_seats", amount=D("100.00"), tax=D("19.00")),),
    )
    posting = await rig.erp.credit_receivable(credit)
    assert (posting.total, posting.applied) == (D("119.00"), D("119.00"))
    assert await rig.erp.credit_receivable(credit) == posting
    over = credit.model_copy(
        update={
            "external_id": "cn_2",
            "lines": (CreditLine(line_id="il_seats", amount=D("700.00"), tax=D("0")),),
        }
    )
    with pytest.raises(RejectedError) as caught:
        await rig.erp.credit_receivable(over)
    assert caught.value.code == "LINE_OVER_CREDITED"
    unknown = credit.model_copy(
        update={"external_id": "cn_3", "lines": (CreditLine(line_id="il_nope", amount=D("1")),)}
    )
    with pytest.raises(RejectedError) as caught:
        await rig.erp.credit_receivable(unknown)
    assert caught.value.code == "UNKNOWN_LINE"
    reversed_ = await rig.erp.reverse_receivable(receivable.receivable_id, "i2r-x:void", "voided")
    assert reversed_.amount_credited == D("3636.64")
    assert reversed_.state is ReceivableState.REVERSED


async def test_revenue_journals_post_once_and_a_closed_period_is_rejected(rig: Rig) -> None:
    journal = RevenueJournal(
        journal_id="in_1Nord/il_seats/2026-01",
        invoice_id="in_1Nord",
        line_id="il_seats",
        period="2026-01",
        amount=D("414.58"),
        currency="EUR",
    )
    posting = await rig.erp.post_revenue_journal(journal)
    assert (posting.amount, posting.period, posting.journal_id) == (
        D("414.58"),
        "2026-01",
        journal.journal_id,
    )
    assert await rig.erp.post_revenue_journal(journal) == posting
    assert len(rig.documents("SA")) == 1
    back = journal.model_copy(
        update={"journal_id": "in_1Nord/il_seats/2026-01/void", "amount": D("-414.58")}
    )
    assert (await rig.erp.post_revenue_journal(back)).amount == D("-414.58")
    rig.state.sap.finance.closed.add("2026-02")
    closed = journal.model_copy(
        update={"journal_id": "in_1Nord/il_seats/2026-02", "period": "2026-02"}
    )
    with pytest.raises(RejectedError) as caught:
        await rig.erp.post_revenue_journal(closed)
    assert caught.value.code == "F5/201"
    assert len(rig.documents("SA")) == 2


async def test_receivables_are_listed_by_their_invoice(rig: Rig) -> None:
    receivable = await posted(rig)
    await rig.erp.apply_payment(payment(receivable, "636.64"))
    page = await rig.erp.list_receivables(None, 10)
    (record,) = page.items
    assert record.invoice_id == "in_1NordLongInvoiceIdentifier"
    assert (record.amount, record.amount_due, record.status) == (D("3636.64"), D("3000.00"), "open")
    assert page.cursor is None
