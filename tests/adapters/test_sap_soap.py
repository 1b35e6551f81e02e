"""The SOAP of SAP's Journal Entry - Post (Synchronous): the request envelope, reading
confirmations and faults, and the raw-body path of the HTTP layer it goes through."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from defusedxml import ElementTree as SafeET  # type: ignore[import-untyped]

from adapters.erp import sap_soap
from adapters.erp.sap import classify_sap
from adapters.erp.sap_soap import Amount, Confirmation, Fault, MalformedAnswer
from adapters.errors import RejectedError, TransientError
from adapters.http import VendorHttp, classify_by_status
from adapters.oauth import AuthorizedHttp, StaticToken

D = Decimal
SOAP = "{http://schemas.xmlsoap.org/soap/envelope/}"
SFIN = "{http://sap.com/xi/SAPSCORE/SFIN}"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
WHEN = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def entry() -> dict[str, Any]:
    # Built out of the schema's order on purpose: the envelope must reorder it.
    return {
        "DebtorItem": [
            {
                "DocumentItemText": "i2r-in_1:receivable",
                "CashDiscountTerms": {
                    "NetPaymentDays": "0",
                    "DueCalculationBaseDate": "2026-03-31",
                },
                "Debtor": "10100001",
                "AmountInTransactionCurrency": Amount(D("119.00"), "EUR"),
                "DebitCreditCode": "S",
            }
        ],
        "Item": [
            {
                "GLAccount": "22000000",
                "AmountInTransactionCurrency": Amount(D("-100.00"), "EUR"),
                "DebitCreditCode": "H",
                "DocumentItemText": "L:il_1 <seats> & more\x01",
            },
            {
                "GLAccount": "22010000",
                "AmountInTransactionCurrency": Amount(D("-19.00"), "EUR"),
                "DebitCreditCode": "H",
                "DocumentItemText": "T:il_1",
            },
        ],
        "PostingDate": "2026-03-01",
        "DocumentDate": "2026-03-01",
        "DocumentReferenceID": "#ABCDEFGHIJKLMNO",
        "AccountingDocumentType": "DR",
        "CompanyCode": "1010",
        "CreatedByUser": "REVSYNC",
        "BusinessTransactionType": "RFBU",
        "OriginalReferenceDocumentType": "BKPFF",
    }


def names(element: ET.Element) -> list[str]:
    return [child.tag for child in element]


def test_the_request_envelope_has_the_elements_the_service_requires() -> None:
    body = sap_soap.journal_entry_request(
        entry(), bulk_id="bulk-1", request_id="req-1", created_at=WHEN
    )
    root = SafeET.fromstring(body)
    assert root.tag == f"{SOAP}Envelope"
    soap_body = root.find(f"{SOAP}Body")
    assert soap_body is not None
    (bulk,) = soap_body
    assert bulk.tag == f"{SFIN}JournalEntryBulkCreateRequest"
    assert names(bulk) == ["MessageHeader", "JournalEntryCreateRequest"]
    assert bulk.findtext("MessageHeader/ID") == "bulk-1"
    assert bulk.findtext("MessageHeader/CreationDateTime") == "2026-03-01T09:30:00.000000Z"
    request = bulk.find("JournalEntryCreateRequest")
    assert request is not None and names(request) == ["MessageHeader", "JournalEntry"]
    assert request.findtext("MessageHeader/ID") == "req-1"
    assert request.findtext("MessageHeader/CreationDateTime") == "2026-03-01T09:30:00.000000Z"
    journal = request.find("JournalEntry")
    assert journal is not None
    header = [n for n in names(journal) if n not in ("Item", "DebtorItem")]
    assert header == [
        "OriginalReferenceDocumentType",
        "BusinessTransactionType",
        "AccountingDocumentType",
        "DocumentReferenceID",
        "CreatedByUser",
        "CompanyCode",
        "DocumentDate",
        "PostingDate",
    ]
    assert names(journal)[-3:] == ["Item", "Item", "DebtorItem"]
    assert journal.findtext("OriginalReferenceDocumentType") == "BKPFF"
    assert journal.findtext("BusinessTransactionType") == "RFBU"
    assert journal.findtext("DocumentReferenceID") == "#ABCDEFGHIJKLMNO"
    items = journal.findall("Item")
    debtor = journal.find("DebtorItem")
    assert debtor is not None
    assert [i.findtext("ReferenceDocumentItem") for i in [*items, debtor]] == ["1", "2", "3"]
    assert names(items[0]) == [
        "ReferenceDocumentItem",
        "GLAccount",
        "AmountInTransactionCurrency",
        "DebitCreditCode",
        "DocumentItemText",
    ]
    amount = items[0].find("AmountInTransactionCurrency")
    assert amount is not None
    assert (amount.get("currencyCode"), amount.text) == ("EUR", "-100.00")
    # Text is escaped, and a character XML cannot carry is replaced, not sent.
    assert items[0].findtext("DocumentItemText") == "L:il_1 <seats> & more\ufffd"
    assert names(debtor) == [
        "ReferenceDocumentItem",
        "Debtor",
        "AmountInTransactionCurrency",
        "DebitCreditCode",
        "DocumentItemText",
        "CashDiscountTerms",
    ]
    assert debtor.findtext("AmountInTransactionCurrency") == "119.00"
    assert debtor.findtext("CashDiscountTerms/DueCalculationBaseDate") == "2026-03-31"
    terms = debtor.find("CashDiscountTerms")
    assert terms is not None
    assert names(terms) == [
        "DueCalculationBaseDate",
        "NetPaymentDays",
    ]


def test_money_is_written_exactly() -> None:
    huge: dict[str, sap_soap.Node] = {
        "Item": [
            {"GLAccount": "1", "AmountInTransactionCurrency": Amount(D("12345678901234.10"), "JPY")}
        ]
    }
    body = sap_soap.journal_entry_request(huge, bulk_id="b", request_id="r", created_at=WHEN)
    assert b'currencyCode="JPY">12345678901234.10<' in body
    with pytest.raises(ValueError, match="not an amount"):
        sap_soap.journal_entry_request(
            {"Item": [{"AmountInTransactionCurrency": Amount(D("NaN"), "EUR")}]},
            bulk_id="b",
            request_id="r",
            created_at=WHEN,
        )


def test_an_element_the_schema_does_not_have_is_refused_before_sending() -> None:
    with pytest.raises(ValueError, match="Amount"):
        sap_soap.journal_entry_request(
            {**entry(), "Amount": "1"}, bulk_id="b", request_id="r", created_at=WHEN
        )
    with pytest.raises(ValueError, match="longer than 35"):
        sap_soap.journal_entry_request(entry(), bulk_id="x" * 36, request_id="r", created_at=WHEN)


# -- confirmations --------------------------------------------------------------------------


def confirmation(
    document: str, year: str, severity: str, items: str, ns: str = SOAP[1:-1]
) -> bytes:
    return (
        f'<soap-env:Envelope xmlns:soap-env="{ns}"><soap-env:Header/><soap-env:Body>'
        '<n0:JournalEntryBulkCreateConfirmation xmlns:n0="http://sap.com/xi/SAPSCORE/SFIN">'
        "<MessageHeader><UUID>u1</UUID><ReferenceID>bulk-1</ReferenceID></MessageHeader>"
        "<JournalEntryCreateConfirmation>"
        "<MessageHeader><UUID>u2</UUID><ReferenceID>req-1</ReferenceID></MessageHeader>"
        f"<JournalEntryCreateConfirmation><AccountingDocument>{document}</AccountingDocument>"
        f"<CompanyCode>1010</CompanyCode><FiscalYear>{year}</FiscalYear>"
        "</JournalEntryCreateConfirmation>"
        f"<Log><MaximumLogItemSeverityCode>{severity}</MaximumLogItemSeverityCode>{items}</Log>"
        "</JournalEntryCreateConfirmation><Log/>"
        "</n0:JournalEntryBulkCreateConfirmation></soap-env:Body></soap-env:Envelope>"
    ).encode()


def note(type_id: str, severity: str, text: str) -> str:
    return (
        f"<Item><TypeID>{type_id}</TypeID><SeverityCode>{severity}</SeverityCode>"
        f"<Note>{text}</Note><WebURI>http://x/?a=1&amp;b=2</WebURI></Item>"
    )


def test_a_posted_confirmation_gives_the_document() -> None:
    answer = sap_soap.parse_confirmation(
        confirmation(
            "0100000008", "2026", "1", note("605(RW)", "1", "Document posted successfully")
        )
    )
    assert isinstance(answer, Confirmation)
    assert answer.posted and not answer.refused
    assert (answer.accounting_document, answer.company_code, answer.fiscal_year) == (
        "0100000008",
        "1010",
        "2026",
    )
    assert answer.reference_id == "req-1"
    assert answer.notes[0].code == "RW/605"


def test_a_confirmation_with_severity_3_is_a_rejection_with_the_message() -> None:
    body = confirmation(
        "0000000000",
        "0000",
        "3",
        note("609(RW)", "3", "Error in document: BKPFF $ SBX")
        + note("201(F5)", "3", "Posting period 002 2026 is not open")
        + note("702(F5)", "3", "Balance in transaction currency"),
    )
    answer = sap_soap.parse_confirmation(body)
    assert isinstance(answer, Confirmation) and answer.refused and not answer.posted
    error = sap_soap.log_error("sap", "post_revenue_journal", answer.notes)
    assert isinstance(error, RejectedError)
    assert error.code == "F5/201"
    assert "Posting period 002 2026 is not open" in error.message
    assert "F5/702" in error.message and "RW/609" in error.message


def test_a_lock_in_the_log_is_transient() -> None:
    body = confirmation(
        "0000000000", "0000", "3", note("601(MC)", "3", "Object requested is currently locked")
    )
    answer = sap_soap.parse_confirmation(body)
    assert isinstance(answer, Confirmation)
    error = sap_soap.log_error("sap", "apply_payment", answer.notes)
    assert isinstance(error, TransientError) and error.code == "MC/601"


def test_a_soap_12_confirmation_reads_the_same() -> None:
    body = confirmation("0100000009", "2026", "2", note("100(F5)", "2", "warning"), SOAP12)
    answer = sap_soap.parse_confirmation(body)
    assert isinstance(answer, Confirmation) and answer.posted


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<html><body>502 Bad Gateway</body>",
        b'{"d": {}}',
        b"<a>not soap</a>",
        b'<soap-env:Envelope xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/">'
        b"<soap-env:Body><Other/></soap-env:Body></soap-env:Envelope>",
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>',
        confirmation("1", "2026", "high", ""),
    ],
)
def test_malformed_answers_are_refused_by_the_parser(body: bytes) -> None:
    with pytest.raises(MalformedAnswer):
        sap_soap.parse_confirmation(body)


# -- faults ---------------------------------------------------------------------------------


def fault11(code: str, text: str, detail_id: str | None = None) -> bytes:
    detail = ""
    if detail_id:
        detail = (
            '<detail><n0:StandardMessageFault xmlns:n0="http://sap.com/xi/SAPGlobal20/Global">'
            f"<standard><faultText>{text}</faultText><faultDetail><severity>error</severity>"
            f"<text>{text}</text><id>{detail_id}</id></faultDetail></standard>"
            "</n0:StandardMessageFault></detail>"
        )
    return (
        '<soap-env:Envelope xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/">'
        f"<soap-env:Body><soap-env:Fault><faultcode>soap-env:{code}</faultcode>"
        f'<faultstring xml:lang="en">{text}</faultstring>{detail}</soap-env:Fault>'
        "</soap-env:Body></soap-env:Envelope>"
    ).encode()


def fault12(code: str, text: str) -> bytes:
    return (
        f'<env:Envelope xmlns:env="{SOAP12}"><env:Body><env:Fault>'
        f"<env:Code><env:Value>env:{code}</env:Value></env:Code>"
        f'<env:Reason><env:Text xml:lang="en">{text}</env:Text></env:Reason>'
        "</env:Fault></env:Body></env:Envelope>"
    ).encode()


def answer(status: int, body: bytes, content_type: str = "text/xml") -> httpx.Response:
    return httpx.Response(
        status,
        content=body,
        headers={"content-type": content_type},
        request=httpx.Request("POST", "http://sap/x"),
    )


def test_a_server_fault_is_transient() -> None:
    error = classify_sap(
        "post_receivable", answer(500, fault11("Server", "Web service processing error"))
    )
    assert isinstance(error, TransientError)
    assert error.code == "SOAP_SERVER" and "Web service processing error" in error.message
    error = classify_sap("post_receivable", answer(500, fault12("Receiver", "dump")))
    assert isinstance(error, TransientError) and error.code == "SOAP_RECEIVER"


def test_a_server_fault_naming_a_business_error_is_a_rejection() -> None:
    body = fault11("Server", "Posting period 002 2026 is not open", "F5/201")
    error = classify_sap("post_revenue_journal", answer(500, body))
    assert isinstance(error, RejectedError) and error.code == "F5/201"
    assert "Posting period 002 2026 is not open" in error.message


def test_a_client_fault_is_a_rejection_unless_it_names_a_lock() -> None:
    error = classify_sap("post_receivable", answer(500, fault11("Client", "Deserialization")))
    assert isinstance(error, RejectedError) and error.code == "SOAP_CLIENT"
    error = classify_sap("post_receivable", answer(500, fault12("Sender", "schema")))
    assert isinstance(error, RejectedError) and error.code == "SOAP_SENDER"
    locked = classify_sap("post_receivable", answer(500, fault11("Client", "locked", "MC/601")))
    assert isinstance(locked, TransientError) and locked.code == "MC/601"


def test_a_throttled_fault_is_transient_with_its_wait() -> None:
    response = answer(429, fault11("Client", "too many requests"))
    response.headers["Retry-After"] = "7"
    error = classify_sap("post_receivable", response)
    assert isinstance(error, TransientError) and error.retry_after == 7


@pytest.mark.parametrize(
    "body",
    [b"<html>Service Unavailable</html>", b"<broken", b"Internal Server Error", b""],
)
def test_an_unreadable_error_answer_is_classified_by_its_status(body: bytes) -> None:
    error = classify_sap("post_receivable", answer(503, body, "text/html"))
    assert isinstance(error, TransientError) and error.status == 503
    refused = classify_sap("post_receivable", answer(400, body, "text/html"))
    assert isinstance(refused, RejectedError)


def test_odata_errors_are_classified_as_before() -> None:
    body = json.dumps({"error": {"code": "V1/390", "message": {"value": "bad"}}}).encode()
    error = classify_sap("create_sales_order", answer(400, body, "application/json"))
    assert isinstance(error, RejectedError) and error.code == "V1/390"


def test_a_fault_with_no_fault_code_reads_as_a_server_fault() -> None:
    body = (
        b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault/>'
        b"</s:Body></s:Envelope>"
    )
    parsed = sap_soap.parse_confirmation(body)
    assert isinstance(parsed, Fault) and parsed.code == "Server" and not parsed.client


# -- raw bodies through the HTTP layer ------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.headers.get("authorization") == "Bearer stale":
            return httpx.Response(401)
        return httpx.Response(200, content=b"<ok/>")


async def test_vendor_http_sends_a_raw_body_with_its_content_type() -> None:
    recorder = Recorder()
    async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as client:
        http = VendorHttp("sap", client, lambda op, r: classify_by_status("sap", op, r, "x", None))
        response = await http.request(
            "post", "POST", "http://sap/soap", content=b"<e/>", content_type="text/xml"
        )
        assert response.content == b"<ok/>"
        await http.request("post", "POST", "http://sap/soap", json_body={"a": D("1.10")})
        with pytest.raises(ValueError, match="not several"):
            await http.request("post", "POST", "http://sap/soap", json_body={}, content=b"x")
    raw, as_json = recorder.requests
    assert (raw.content, raw.headers["content-type"]) == (b"<e/>", "text/xml")
    assert (as_json.content, as_json.headers["content-type"]) == (
        b'{"a":1.10}',
        "application/json",
    )


async def test_authorized_http_passes_a_raw_body_on() -> None:
    recorder = Recorder()
    async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as client:
        http = VendorHttp("sap", client, lambda op, r: classify_by_status("sap", op, r, "x", None))
        authorized = AuthorizedHttp(
            http,
            StaticToken("t0k"),
            classify=lambda op, r: classify_by_status("sap", op, r, "x", None),
        )
        await authorized.request(
            "post",
            "POST",
            "http://sap/soap",
            content=b"<e/>",
            content_type="application/soap+xml",
        )
    (sent,) = recorder.requests
    assert sent.content == b"<e/>"
    assert sent.headers["content-type"] == "application/soap+xml"
    assert sent.headers["authorization"] == "Bearer t0k"
