"""Invoice-to-revenue on SAP S/4HANA Cloud: receivables, journals, payments, reversals and
credits as journal entries posted over SOAP, against the SAP emulator."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest
from defusedxml import ElementTree as SafeET  # type: ignore[import-untyped]

from adapters.erp import sap_soap
from adapters.erp.sap import SapErp
from adapters.erp.sap_finance import document_reference
from adapters.errors import RejectedError, TransientError, UnknownOutcomeError
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
from sandbox.faults import FaultRule, FaultsRequest
from tests.adapters.lossy import LossyTransport
from tests.adapters.test_invoices_netsuite import invoice
from tests.ports.contract import seeded_customer

BASE_URL = "http://sandbox/sap"
RECEIVABLE_KEY = "i2r-in_1NordLongInvoiceIdentifier:receivable"
POST = "/sap/bc/srt/scs_ext/sap/journalentrycreaterequestconfi"
SOAP = "{http://schemas.xmlsoap.org/soap/envelope/}"
SFIN = "{http://sap.com/xi/SAPSCORE/SFIN}"
D = Decimal


@dataclass
class Wire(httpx.AsyncBaseTransport):
    """Records the posting requests and their answers; can garble the next answers."""

    inner: httpx.AsyncBaseTransport
    posts: list[httpx.Request] = field(default_factory=list)
    answers: list[httpx.Response] = field(default_factory=list)
    garble: list[bytes] = field(default_factory=list)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if not request.url.path.endswith(POST):
            return response
        self.posts.append(request)
        body = await response.aread()
        if self.garble:
            body = self.garble.pop(0)
        answer = httpx.Response(response.status_code, headers=response.headers, content=body)
        self.answers.append(answer)
        return answer


@dataclass
class Rig:
    erp: SapErp
    lossy: LossyTransport
    wire: Wire
    state: SandboxState
    customer_id: str

    def documents(self, kind: str | None = None) -> list[dict[str, Any]]:
        entries = self.state.sap.snapshot()["journalEntries"]
        return [e for e in entries if kind is None or e["type"] == kind]

    def fault(self, **rule: Any) -> None:
        self.state.faults.configure(
            FaultsRequest(faults=[FaultRule(vendor="sap", operation="post_journal", **rule)])
        )


@pytest.fixture
async def rig(state: SandboxState) -> AsyncIterator[Rig]:
    wire = Wire(httpx.ASGITransport(app=create_app(state)))
    lossy = LossyTransport(wire)
    async with httpx.AsyncClient(transport=lossy, base_url="http://sandbox") as http:
        erp = SapErp(
            http, base_url=BASE_URL, username="COMM_REVSYNC", password=DEFAULT_TOKENS["sap"]
        )
        port: ErpPort = erp
        customer_id = await port.upsert_customer(seeded_customer(), "acct-0015e00000NordDE1")
        yield Rig(erp, lossy, wire, state, customer_id)


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


# -- the SOAP wire --------------------------------------------------------------------------


def journal_entry(request: httpx.Request) -> ET.Element:
    root: ET.Element = SafeET.fromstring(request.content)
    assert root.tag == f"{SOAP}Envelope"
    found = root.find(f"{SOAP}Body/{SFIN}JournalEntryBulkCreateRequest")
    assert found is not None
    assert found.findtext("MessageHeader/CreationDateTime")
    entry = found.find("JournalEntryCreateRequest/JournalEntry")
    assert entry is not None
    return entry


def amounts(entry: ET.Element, kind: str) -> list[tuple[str | None, Decimal]]:
    found = []
    for item in entry.findall(kind):
        amount = item.find("AmountInTransactionCurrency")
        assert amount is not None
        found.append((amount.get("currencyCode"), D(amount.text or "x")))
    return found


async def test_the_receivable_goes_as_a_soap_envelope_and_its_confirmation_is_read(
    rig: Rig,
) -> None:
    receivable = await posted(rig)
    (request,) = rig.wire.posts
    assert request.headers["content-type"] == "text/xml; charset=utf-8"
    assert request.headers["soapaction"] == f'"{sap_soap.SOAP_ACTION}"'
    entry = journal_entry(request)
    assert entry.findtext("AccountingDocumentType") == "DR"
    assert entry.findtext("DocumentReferenceID") == document_reference(RECEIVABLE_KEY)
    assert entry.findtext("CompanyCode") == "1010"
    assert entry.findtext("OriginalReferenceDocumentType") == "BKPFF"
    assert entry.findtext("BusinessTransactionType") == "RFBU"
    assert entry.findtext("CreatedByUser") == "REVSYNC"
    assert entry.findtext("DebtorItem/Debtor") == rig.customer_id
    assert entry.findtext("DebtorItem/CashDiscountTerms/DueCalculationBaseDate") == "2026-02-14"
    assert amounts(entry, "DebtorItem") == [("EUR", D("3636.64"))]
    credits = amounts(entry, "Item")
    assert all(currency == "EUR" and value < 0 for currency, value in credits)
    assert sum(value for _, value in credits) == D("-3636.64")
    # The answer confirmed the document the receivable names.
    (answer,) = rig.wire.answers
    parsed = sap_soap.parse_confirmation(answer.content)
    assert isinstance(parsed, sap_soap.Confirmation)
    assert receivable.receivable_id == (f"1010-{parsed.accounting_document}-{parsed.fiscal_year}")
    request_id = SafeET.fromstring(request.content).findtext(
        f"{SOAP}Body/{SFIN}JournalEntryBulkCreateRequest/JournalEntryCreateRequest/MessageHeader/ID"
    )
    assert parsed.reference_id == request_id


async def test_payments_credit_the_customer_with_a_negative_amount(rig: Rig) -> None:
    receivable = await posted(rig)
    await rig.erp.apply_payment(payment(receivable, "100.00"))
    entry = journal_entry(rig.wire.posts[-1])
    assert entry.findtext("AccountingDocumentType") == "DZ"
    assert amounts(entry, "Item") == [("EUR", D("100.00"))]
    assert amounts(entry, "DebtorItem") == [("EUR", D("-100.00"))]
    assert entry.findtext("DebtorItem/DebitCreditCode") == "H"


async def test_a_refusal_in_the_log_is_a_rejection_with_sap_message(rig: Rig) -> None:
    with pytest.raises(RejectedError) as caught:
        await rig.erp.post_receivable(invoice(), "99999999", RECEIVABLE_KEY)
    assert caught.value.code == "F5/104"
    assert "Customer 99999999 is not defined" in caught.value.message
    assert rig.documents() == []


async def test_a_server_fault_is_transient_and_the_retry_posts_once(rig: Rig) -> None:
    rig.fault(status=500, message="Web service processing error")
    with pytest.raises(TransientError) as caught:
        await posted(rig)
    assert caught.value.code == "SOAP_SERVER" and caught.value.status == 500
    assert rig.documents("DR") == []
    await posted(rig)
    assert len(rig.documents("DR")) == 1


async def test_a_fault_after_posting_is_settled_by_the_keyed_retry(rig: Rig) -> None:
    rig.fault(status=500, phase="after")
    with pytest.raises(TransientError):
        await posted(rig)
    assert len(rig.documents("DR")) == 1
    again = await posted(rig)
    assert len(rig.documents("DR")) == 1
    assert again.total == D("3636.64")


async def test_a_fault_naming_a_business_error_is_a_rejection(rig: Rig) -> None:
    rig.fault(status=500, code="F5/201", message="Posting period 001 2026 is not open")
    with pytest.raises(RejectedError) as caught:
        await posted(rig)
    assert caught.value.code == "F5/201"
    assert "Posting period 001 2026 is not open" in caught.value.message


@pytest.mark.parametrize("garbage", [b"<soap-env:Envelope", b"", b"<html>Gateway</html>"])
async def test_an_unreadable_confirmation_leaves_the_outcome_unknown(
    rig: Rig, garbage: bytes
) -> None:
    rig.wire.garble.append(garbage)
    with pytest.raises(UnknownOutcomeError):
        await posted(rig)
    # The emulator posted it; the retry's look-up finds it instead of posting again.
    assert len(rig.documents("DR")) == 1
    await posted(rig)
    assert len(rig.documents("DR")) == 1


def envelope(journal: str, namespace: str = SOAP[1:-1]) -> bytes:
    return (
        f'<e:Envelope xmlns:e="{namespace}" xmlns:sfin="http://sap.com/xi/SAPSCORE/SFIN">'
        "<e:Body><sfin:JournalEntryBulkCreateRequest>"
        "<MessageHeader><ID>b1</ID><CreationDateTime>2026-01-01T00:00:00Z</CreationDateTime>"
        "</MessageHeader><JournalEntryCreateRequest><MessageHeader><ID>r1</ID>"
        "<CreationDateTime>2026-01-01T00:00:00Z</CreationDateTime></MessageHeader>"
        f"<JournalEntry>{journal}</JournalEntry></JournalEntryCreateRequest>"
        "</sfin:JournalEntryBulkCreateRequest></e:Body></e:Envelope>"
    ).encode()


HEADER = (
    "<OriginalReferenceDocumentType>BKPFF</OriginalReferenceDocumentType>"
    "<BusinessTransactionType>RFBU</BusinessTransactionType>"
    "<AccountingDocumentType>SA</AccountingDocumentType>"
    "<DocumentReferenceID>manual</DocumentReferenceID>"
    "<CreatedByUser>REVSYNC</CreatedByUser><CompanyCode>1010</CompanyCode>"
    "<DocumentDate>2026-01-31</DocumentDate><PostingDate>2026-01-31</PostingDate>"
)


def gl_item(number: int, account: str, amount: str, side: str) -> str:
    return (
        f"<Item><ReferenceDocumentItem>{number}</ReferenceDocumentItem>"
        f"<GLAccount>{account}</GLAccount>"
        f'<AmountInTransactionCurrency currencyCode="EUR">{amount}</AmountInTransactionCurrency>'
        f"<DebitCreditCode>{side}</DebitCreditCode></Item>"
    )


async def send(rig: Rig, body: bytes, content_type: str = "text/xml") -> httpx.Response:
    return await rig.erp.session.send(
        "post_journal", "POST", POST, content=body, content_type=content_type
    )


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b'{"JournalEntryBulkCreateRequest": {}}', "not well-formed XML"),
        (envelope(HEADER + "<Amount>1</Amount>"), "no element Amount"),
        (envelope(HEADER.replace("<CreatedByUser>REVSYNC</CreatedByUser>", "")), "CreatedByUser"),
        (
            envelope(HEADER + gl_item(1, "22000000", "1", "S").replace(' currencyCode="EUR"', "")),
            "currencyCode",
        ),
        (
            envelope(HEADER)
            .replace(b"<MessageHeader>", b"<sfin:MessageHeader>", 1)
            .replace(b"</MessageHeader>", b"</sfin:MessageHeader>", 1),
            "qualified",
        ),
    ],
)
async def test_the_emulator_answers_an_envelope_off_the_schema_with_a_client_fault(
    rig: Rig, body: bytes, why: str
) -> None:
    with pytest.raises(RejectedError) as caught:
        await send(rig, body)
    assert caught.value.status == 500 and caught.value.code == "SOAP_CLIENT"
    assert why in caught.value.message
    assert rig.documents() == []


async def test_the_emulator_checks_signs_and_speaks_soap_12(rig: Rig) -> None:
    contradicting = (
        HEADER + gl_item(1, "22000000", "10.00", "H") + gl_item(2, "41000000", "-10.00", "S")
    )
    answer = sap_soap.parse_confirmation((await send(rig, envelope(contradicting))).content)
    assert isinstance(answer, sap_soap.Confirmation) and answer.refused
    assert "F5/014" in {n.code for n in answer.notes}
    balanced = HEADER + gl_item(1, "22000000", "10.00", "S") + gl_item(2, "41000000", "-10.00", "H")
    response = await send(
        rig, envelope(balanced, "http://www.w3.org/2003/05/soap-envelope"), "application/soap+xml"
    )
    assert response.headers["content-type"].startswith("application/soap+xml")
    posted_entry = sap_soap.parse_confirmation(response.content)
    assert isinstance(posted_entry, sap_soap.Confirmation) and posted_entry.posted
    assert posted_entry.reference_id == "r1"
    assert len(rig.documents("SA")) == 1


async def test_a_soap_12_envelope_off_the_schema_gets_a_sender_fault(rig: Rig) -> None:
    body = envelope(HEADER + "<Amount>1</Amount>", "http://www.w3.org/2003/05/soap-envelope")
    with pytest.raises(RejectedError) as caught:
        await send(rig, body, "application/soap+xml")
    assert caught.value.code == "SOAP_SENDER" and "no element Amount" in caught.value.message
