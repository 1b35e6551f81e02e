"""SAP S/4HANA Cloud emulator, finance: journal entry posting and the operational journal
entry items revsync's invoice-to-revenue reads (mounted with :mod:`sandbox.sap`).

====== ==========================================================================  ===============
method path (below ``/sap``)                                                        operation
====== ==========================================================================  ===============
POST   ``/sap/bc/srt/scs_ext/sap/journalentrycreaterequestconfi``                  ``post_journal``
GET    ``/sap/opu/odata/sap/API_OPLACCTGDOCITEMCUBE_SRV/A_OperationalAcctgDocItemCube``
                                                                                    ``list_items``
====== ==========================================================================  ===============

The posting service is SAP's *Journal Entry - Post (Synchronous)* (communication scenario
``SAP_COM_0002``), spoken as the tenant speaks it: a SOAP 1.1 (``text/xml``) or SOAP 1.2
(``application/soap+xml``) envelope whose body is ``JournalEntryBulkCreateRequest`` in
namespace ``http://sap.com/xi/SAPSCORE/SFIN`` (its children unqualified): a ``MessageHeader``
with ``CreationDateTime``, then ``JournalEntryCreateRequest`` entries, each a
``MessageHeader`` (``ID``, ``CreationDateTime``) and a ``JournalEntry`` with
``OriginalReferenceDocumentType``, ``BusinessTransactionType``, ``AccountingDocumentType``
(``DR`` customer invoice, ``DG`` customer credit memo, ``DZ`` customer payment, ``SA`` G/L),
``DocumentReferenceID`` (16 characters), ``DocumentHeaderText`` (25), ``CreatedByUser``,
``CompanyCode``, ``DocumentDate``, ``PostingDate``, G/L ``Item`` and customer ``DebtorItem``
entries (``CreditorItem`` is refused: the books have no suppliers), each with
``ReferenceDocumentItem``, ``AmountInTransactionCurrency currencyCode="..."`` (signed: a
credit is negative), ``DebitCreditCode`` (``S`` debit, ``H`` credit; it must agree with the
sign) and ``DocumentItemText`` (50); a debtor item may carry ``InvoiceReference``
(``AccountingDocument``, ``FiscalYear``, ``AccountingDocumentItem``: the invoice it pays or
credits) and ``CashDiscountTerms`` (``DueCalculationBaseDate``, ``NetPaymentDays``).

An envelope that does not fit (not XML, a DTD, not SOAP, another body, an element the schema
does not have, a required one missing) is answered as the SOAP runtime does: HTTP 500 with a
``Client`` (SOAP 1.2: ``Sender``) fault. A fitting request is answered 200 with
``JournalEntryBulkCreateConfirmation``: per entry the ``ReferenceID`` of its message, the
document (``AccountingDocument``, ``CompanyCode``, ``FiscalYear``) and a ``Log``
(``MaximumLogItemSeverityCode``; ``Item`` entries with ``TypeID`` as ``201(F5)``,
``SeverityCode``, ``Note``). A refusal is severity ``3`` with ``AccountingDocument``
``0000000000``, the generic ``609(RW)`` "Error in document" first, then the causes:
unbalanced entry ``702(F5)``, closed period ``201(F5)``, unknown customer ``104(F5)``, unknown
account ``153(F5)``, reference longer than 16 ``809(F5)``, a sign contradicting
``DebitCreditCode`` ``014(F5)``... Nothing dedupes a second posting with the same reference.

Injected faults (``/_sandbox/faults``, operation ``post_journal``) are answered as SOAP
faults too (:func:`fault_response`): ``Server`` from 500 up, ``Client`` below, the rule's
``code`` as the ``faultDetail`` id of SAP's ``StandardMessageFault``.

Each item also answers ``AccountingDocumentCreationDate`` (the day the entry was made, as
``/Date(ms)/``; the posting date may be another day), as the item cube's entity type has it.

``POST /_sandbox/sap/periods`` (``{"period": "2026-03", "closed": true}``) closes or reopens
a posting period of every company code.
"""

from __future__ import annotations

import itertools
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from defusedxml import ElementTree as SafeET  # type: ignore[import-untyped]
from fastapi import Request, Response

from domain.money import MINOR_UNITS, quantize

if TYPE_CHECKING:
    from sandbox.app import SandboxState
    from sandbox.sap import Match

POST_PATH = "/sap/bc/srt/scs_ext/sap/journalentrycreaterequestconfi"
SOAP11_NS = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_NS = "http://www.w3.org/2003/05/soap-envelope"
SFIN_NS = "http://sap.com/xi/SAPSCORE/SFIN"
SYSTEM_ID = "SBX"
ACCOUNTS = frozenset({"11001020", "12100000", "22000000", "22010000", "41000000", "41100000"})
_FIRST_NUMBERS = {"DR": 1800000001, "DG": 1700000001, "DZ": 1400000001, "SA": 100000001}

# What the schema lets each element hold (``*``: repeatable) and what it requires.
_HEADER = {"ID", "UUID", "ReferenceID", "CreationDateTime", "TestDataIndicator"}
_ENTRY = {
    "OriginalReferenceDocumentType",
    "OriginalReferenceDocument",
    "OriginalReferenceDocumentLogicalSystem",
    "BusinessTransactionType",
    "AccountingDocumentType",
    "DocumentReferenceID",
    "DocumentHeaderText",
    "CreatedByUser",
    "CompanyCode",
    "DocumentDate",
    "PostingDate",
    "TaxDeterminationDate",
    "ExchangeRateDate",
    "Item*",
    "CreditorItem*",
    "DebtorItem*",
}
_ENTRY_REQUIRED = (
    "OriginalReferenceDocumentType",
    "BusinessTransactionType",
    "AccountingDocumentType",
    "CreatedByUser",
    "CompanyCode",
    "DocumentDate",
    "PostingDate",
)
_ITEM = {
    "ReferenceDocumentItem",
    "GLAccount",
    "AmountInTransactionCurrency",
    "DebitCreditCode",
    "DocumentItemText",
    "AssignmentReference",
}
_PARTY = {
    "ReferenceDocumentItem",
    "Debtor",
    "Creditor",
    "AmountInTransactionCurrency",
    "DebitCreditCode",
    "DocumentItemText",
    "AssignmentReference",
    "InvoiceReference",
    "CashDiscountTerms",
}
_NESTED = {
    "InvoiceReference": {"AccountingDocument", "FiscalYear", "AccountingDocumentItem"},
    "CashDiscountTerms": {"DueCalculationBaseDate", "NetPaymentDays"},
}


class SoapFault(Exception):
    """A request the SOAP runtime refuses (HTTP 500): ``client`` when the envelope is at
    fault, else the server."""

    def __init__(self, text: str, *, client: bool = True, status: int = 500) -> None:
        super().__init__(text)
        self.text = text
        self.client = client
        self.status = status
        # The SOAP version to answer in, once the envelope said which.
        self.namespace = SOAP11_NS


@dataclass
class FinanceBooks:
    """Posted journal entries (their items, as the item cube shows them) and closed periods."""

    items: list[dict[str, Any]] = field(default_factory=list)
    closed: set[str] = field(default_factory=set)
    _numbers: dict[str, itertools.count[int]] = field(default_factory=dict)

    def snapshot(self) -> dict[str, Any]:
        documents = sorted(
            {(i["AccountingDocumentType"], i["AccountingDocument"]) for i in self.items}
        )
        return {
            "journalEntries": [{"type": t, "document": d} for t, d in documents],
            "journalEntryItems": list(self.items),
            "closedPeriods": sorted(self.closed),
        }

    def number(self, document_type: str) -> str:
        counter = self._numbers.setdefault(
            document_type, itertools.count(_FIRST_NUMBERS.get(document_type, 900000001))
        )
        return f"{next(counter):010d}"

    def customer_known(self, state: SandboxState, customer: str) -> bool:
        return state.sap.customer_ok(customer)

    def post(self, state: SandboxState, entry: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
        """Post ``entry`` (a ``JournalEntry`` as :func:`parse_request` reads it); the
        confirmation and the log's error notes (``"201(F5) text"``; empty when posted)."""
        errors: list[str] = []
        company = str(entry.get("CompanyCode") or "")
        document_type = str(entry.get("AccountingDocumentType") or "")
        reference = str(entry.get("DocumentReferenceID") or "")
        posting = _date(entry.get("PostingDate"))
        if company != "1010":
            errors.append(f"165(F5) Company code {company} does not exist")
        if document_type not in _FIRST_NUMBERS:
            errors.append(f"814(F5) Document type {document_type} is not defined")
        if len(reference) > 16:
            errors.append("809(F5) Reference DocumentReferenceID is longer than 16 characters")
        if posting is None:
            errors.append("012(F5) Enter a valid posting date")
        elif f"{posting.year:04d}-{posting.month:02d}" in self.closed:
            errors.append(f"201(F5) Posting period {posting.month:03d} {posting.year} is not open")
        lines: list[tuple[str, dict[str, Any]]] = [("S", raw) for raw in entry["Item"]] + [
            ("D", raw) for raw in entry["DebtorItem"]
        ]
        if entry["CreditorItem"]:
            errors.append("105(F5) Supplier items cannot be posted in this company code")
        if not lines:
            errors.append("702(F5) Enter at least one line item")
        balance = Decimal(0)
        currency = None
        rows: list[dict[str, Any]] = []
        for number, (kind, raw) in enumerate(lines, start=1):
            amount, code = raw["AmountInTransactionCurrency"]
            currency = currency or code
            if code != currency or currency not in MINOR_UNITS:
                errors.append(f"076(F5) Item {number}: currency {code}")
                continue
            if amount == 0 or amount != quantize(amount, currency):
                errors.append(f"013(F5) Item {number}: amount {amount} is not postable")
                continue
            sign = raw.get("DebitCreditCode") or ("S" if amount > 0 else "H")
            if sign not in ("S", "H") or (sign == "S") != (amount > 0):
                errors.append(
                    f"014(F5) Item {number}: amount {amount} contradicts DebitCreditCode {sign}"
                )
                continue
            balance += amount
            row: dict[str, Any] = {
                "CompanyCode": company,
                "AccountingDocumentItem": f"{number:03d}",
                "AccountingDocumentType": document_type,
                "FinancialAccountType": kind,
                "DebitCreditCode": sign,
                "AmountInTransactionCurrency": format(amount, "f"),
                "TransactionCurrency": currency,
                "DocumentReferenceID": reference,
                "DocumentItemText": str(raw.get("DocumentItemText") or "")[:50],
                "PostingDate": entry.get("PostingDate"),
                "DocumentDate": entry.get("DocumentDate") or entry.get("PostingDate"),
                # The day it was entered (the system date, not the posting date).
                "AccountingDocumentCreationDate": _entry_date(),
                "Customer": "",
                "GLAccount": "",
                "NetDueDate": None,
                "InvoiceReference": "",
                "InvoiceReferenceFiscalYear": "",
                "ClearingAccountingDocument": "",
            }
            if kind == "S":
                account = str(raw.get("GLAccount") or "")
                if account not in ACCOUNTS:
                    errors.append(f"153(F5) G/L account {account} does not exist in 1010")
                row["GLAccount"] = account
            else:
                debtor = str(raw.get("Debtor") or "")
                if not self.customer_known(state, debtor):
                    errors.append(f"104(F5) Customer {debtor} is not defined in 1010")
                row["Customer"] = debtor
                row["GLAccount"] = "12100000"
                row["NetDueDate"] = _due(raw.get("CashDiscountTerms") or {}, posting)
                invoice = raw.get("InvoiceReference") or {}
                if invoice:
                    target = [
                        i
                        for i in self.items
                        if i["AccountingDocument"] == invoice.get("AccountingDocument")
                        and i["FiscalYear"] == invoice.get("FiscalYear")
                        and i["FinancialAccountType"] == "D"
                    ]
                    if not target:
                        errors.append(
                            f"260(F5) Invoice reference {invoice.get('AccountingDocument')} "
                            "does not exist"
                        )
                    row["InvoiceReference"] = str(invoice.get("AccountingDocument") or "")
                    row["InvoiceReferenceFiscalYear"] = str(invoice.get("FiscalYear") or "")
            rows.append(row)
        if lines and balance != 0 and not errors:
            errors.append(f"702(F5) Balance in transaction currency: {balance}")
        if errors or posting is None:
            return {"AccountingDocument": "0000000000", "CompanyCode": "", "FiscalYear": "0000"}, [
                f"609(RW) Error in document: BKPFF $ {SYSTEM_ID}",
                *errors,
            ]
        document = self.number(document_type)
        year = f"{posting.year:04d}"
        for row in rows:
            row.update(
                AccountingDocument=document,
                FiscalYear=year,
                FiscalPeriod=f"{posting.month:03d}",
            )
            self.items.append(row)
        return {"AccountingDocument": document, "CompanyCode": company, "FiscalYear": year}, []


def _entry_date() -> str:
    """Today (UTC) as ``/Date(ms)/`` of its midnight: the item's entry date."""
    today = datetime.now(UTC).date()
    midnight = datetime(today.year, today.month, today.day, tzinfo=UTC)
    return f"/Date({int(midnight.timestamp() * 1000)})/"


def _date(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        return None


def _due(terms: dict[str, Any], posting: date | None) -> str | None:
    base = _date(terms.get("DueCalculationBaseDate")) or posting
    if base is None:
        return None
    days = str(terms.get("NetPaymentDays") or "0")
    return (base + timedelta(days=int(days) if days.isdigit() else 0)).isoformat()


# -- the envelope ---------------------------------------------------------------------------


def _name(element: ET.Element) -> str:
    namespace, _, name = element.tag.rpartition("}")
    if namespace:
        raise SoapFault(f"element {name} must not be namespace-qualified")
    return name


def _text(element: ET.Element) -> str:
    if len(element):
        raise SoapFault(f"element {element.tag} must hold text, not elements")
    return (element.text or "").strip()


def _amount(element: ET.Element) -> tuple[Decimal, str]:
    currency = element.get("currencyCode")
    if not currency:
        raise SoapFault("AmountInTransactionCurrency needs its currencyCode attribute")
    try:
        amount = Decimal(_text(element))
    except InvalidOperation:
        raise SoapFault(f"AmountInTransactionCurrency {element.text!r} is no decimal") from None
    if not amount.is_finite():
        raise SoapFault(f"AmountInTransactionCurrency {element.text!r} is no decimal")
    return amount, currency


def _read(element: ET.Element, allowed: set[str], what: str) -> dict[str, Any]:
    """An element's children by name: text, an amount, nested elements, or (for names
    marked ``*``) a list of item elements."""
    repeated = {n.rstrip("*") for n in allowed if n.endswith("*")}
    found: dict[str, Any] = {name: [] for name in repeated}
    for child in element:
        name = _name(child)
        if name in repeated:
            schema = _ITEM if name == "Item" else _PARTY
            item = _read(child, schema, name)
            for required in ("ReferenceDocumentItem", "AmountInTransactionCurrency"):
                if required not in item:
                    raise SoapFault(f"{name} lacks its {required}")
            found[name].append(item)
            continue
        if name not in allowed:
            raise SoapFault(f"{what} has no element {name} in the schema")
        if name in found:
            raise SoapFault(f"{what} repeats {name}")
        if name == "AmountInTransactionCurrency":
            found[name] = _amount(child)
        elif name in _NESTED:
            found[name] = _read(child, _NESTED[name], name)
        else:
            found[name] = _text(child)
    return found


def _header(element: ET.Element | None, what: str) -> dict[str, Any]:
    if element is None or _name(element) != "MessageHeader":
        raise SoapFault(f"{what} lacks its MessageHeader")
    header = _read(element, _HEADER, "MessageHeader")
    if not header.get("CreationDateTime"):
        raise SoapFault(f"the MessageHeader of {what} lacks its CreationDateTime")
    return header


def parse_request(body: bytes) -> tuple[str, str | None, list[tuple[str | None, dict[str, Any]]]]:
    """``(SOAP namespace, bulk message ID, [(message ID, journal entry)])`` of a posting
    request. Raises :class:`SoapFault` for anything the schema does not take."""
    try:
        root = SafeET.fromstring(body, forbid_dtd=True)
    except (ET.ParseError, ValueError, LookupError):
        raise SoapFault("the request is not well-formed XML (or uses a DTD)") from None
    namespace = root.tag[1:].partition("}")[0] if root.tag.startswith("{") else ""
    if namespace not in (SOAP11_NS, SOAP12_NS) or not root.tag.endswith("}Envelope"):
        raise SoapFault("the request is not a SOAP envelope")
    try:
        return namespace, *_bulk(root, namespace)
    except SoapFault as fault:
        fault.namespace = namespace
        raise


def _bulk(
    root: ET.Element, namespace: str
) -> tuple[str | None, list[tuple[str | None, dict[str, Any]]]]:
    bodies = [c for c in root if c.tag == f"{{{namespace}}}Body"]
    if len(bodies) != 1 or len(bodies[0]) != 1:
        raise SoapFault("the SOAP body must hold one element")
    bulk = bodies[0][0]
    if bulk.tag != f"{{{SFIN_NS}}}JournalEntryBulkCreateRequest":
        raise SoapFault(f"{bulk.tag} is not a JournalEntryBulkCreateRequest")
    children = list(bulk)
    bulk_header = _header(children[0] if children else None, "JournalEntryBulkCreateRequest")
    entries: list[tuple[str | None, dict[str, Any]]] = []
    for wrapper in children[1:]:
        if _name(wrapper) != "JournalEntryCreateRequest":
            raise SoapFault(f"JournalEntryBulkCreateRequest has no element {_name(wrapper)}")
        parts = list(wrapper)
        header = _header(parts[0] if parts else None, "JournalEntryCreateRequest")
        if len(parts) != 2 or _name(parts[1]) != "JournalEntry":
            raise SoapFault("JournalEntryCreateRequest holds a MessageHeader and a JournalEntry")
        entry = _read(parts[1], _ENTRY, "JournalEntry")
        missing = [name for name in _ENTRY_REQUIRED if not entry.get(name)]
        if missing:
            raise SoapFault(f"JournalEntry lacks {', '.join(missing)}")
        entries.append((header.get("ID"), entry))
    if not entries:
        raise SoapFault("JournalEntryBulkCreateRequest holds no JournalEntryCreateRequest")
    return bulk_header.get("ID"), entries


# -- answers --------------------------------------------------------------------------------


def _media_type(namespace: str) -> str:
    return "application/soap+xml" if namespace == SOAP12_NS else "text/xml"


def _envelope(namespace: str, content: str) -> bytes:
    return (
        f'<soap-env:Envelope xmlns:soap-env="{namespace}"><soap-env:Header/>'
        f"<soap-env:Body>{content}</soap-env:Body></soap-env:Envelope>"
    ).encode()


def _tag(name: str, value: str | None) -> str:
    return f"<{name}/>" if value is None else f"<{name}>{escape(value)}</{name}>"


def soap_fault(
    text: str,
    *,
    client: bool,
    status: int = 500,
    namespace: str = SOAP11_NS,
    code: str | None = None,
) -> Response:
    """A SOAP fault answer; ``code`` (an SAP message id) goes into its detail."""
    detail = ""
    if code:
        detail = (
            '<n0:StandardMessageFault xmlns:n0="http://sap.com/xi/SAPGlobal20/Global">'
            f"<standard>{_tag('faultText', text)}<faultDetail>{_tag('severity', 'error')}"
            f"{_tag('text', text)}{_tag('id', code)}</faultDetail></standard>"
            "</n0:StandardMessageFault>"
        )
    if namespace == SOAP12_NS:
        value = "Sender" if client else "Receiver"
        fault = (
            f"<soap-env:Fault><soap-env:Code><soap-env:Value>soap-env:{value}</soap-env:Value>"
            f'</soap-env:Code><soap-env:Reason><soap-env:Text xml:lang="en">{escape(text)}'
            "</soap-env:Text></soap-env:Reason>"
            f"{f'<soap-env:Detail>{detail}</soap-env:Detail>' if detail else ''}</soap-env:Fault>"
        )
    else:
        value = "Client" if client else "Server"
        fault = (
            f"<soap-env:Fault><faultcode>soap-env:{value}</faultcode>"
            f'<faultstring xml:lang="en">{escape(text)}</faultstring>'
            f"{f'<detail>{detail}</detail>' if detail else ''}</soap-env:Fault>"
        )
    return Response(
        content=_envelope(namespace, fault),
        status_code=status,
        media_type=_media_type(namespace),
    )


def fault_response(status: int, code: str | None, message: str) -> Response:
    """An injected fault at ``post_journal``, as the SOAP runtime would answer it."""
    return soap_fault(message, client=status < 500, status=status, code=code)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _message_header(reference: str | None) -> str:
    return (
        f"<MessageHeader>{_tag('UUID', str(uuid.uuid4()))}"
        f"{_tag('ReferenceID', reference) if reference else ''}"
        f"{_tag('CreationDateTime', _now())}</MessageHeader>"
    )


def _confirmation(reference: str | None, document: dict[str, str], notes: list[str]) -> str:
    if notes:
        severity = "3"
        items = [(note.split(" ", 1)[0], "3", note.split(" ", 1)[1]) for note in notes]
    else:
        severity = "1"
        key = f"{document['AccountingDocument']}{document['CompanyCode']}{document['FiscalYear']}"
        items = [("605(RW)", "1", f"Document posted successfully: BKPFF {key} {SYSTEM_ID}")]
    log = "".join(
        f"<Item>{_tag('TypeID', type_id)}{_tag('SeverityCode', level)}{_tag('Note', note)}</Item>"
        for type_id, level, note in items
    )
    return (
        f"<JournalEntryCreateConfirmation>{_message_header(reference)}"
        "<JournalEntryCreateConfirmation>"
        f"{_tag('AccountingDocument', document['AccountingDocument'])}"
        f"{_tag('CompanyCode', document['CompanyCode'])}"
        f"{_tag('FiscalYear', document['FiscalYear'])}"
        "</JournalEntryCreateConfirmation>"
        f"<Log>{_tag('MaximumLogItemSeverityCode', severity)}{log}</Log>"
        "</JournalEntryCreateConfirmation>"
    )


async def post_journal(state: SandboxState, request: Request) -> Response:
    books: FinanceBooks = state.sap.finance
    try:
        namespace, bulk_id, entries = parse_request(await request.body())
    except SoapFault as fault:
        return soap_fault(
            fault.text, client=fault.client, status=fault.status, namespace=fault.namespace
        )
    confirmations = []
    for message_id, entry in entries:
        document, notes = books.post(state, entry)
        confirmations.append(_confirmation(message_id, document, notes))
    content = (
        f'<n0:JournalEntryBulkCreateConfirmation xmlns:n0="{SFIN_NS}">'
        f"{_message_header(bulk_id)}{''.join(confirmations)}<Log/>"
        "</n0:JournalEntryBulkCreateConfirmation>"
    )
    return Response(content=_envelope(namespace, content), media_type=_media_type(namespace))


async def list_items(state: SandboxState, request: Request, match: Match, root: str) -> Response:
    from sandbox.sap import _entity, collection

    books: FinanceBooks = state.sap.finance

    def render(row: dict[str, Any]) -> dict[str, Any]:
        uri = (
            "/API_OPLACCTGDOCITEMCUBE_SRV/A_OperationalAcctgDocItemCube("
            f"CompanyCode='{row['CompanyCode']}',FiscalYear='{row['FiscalYear']}',"
            f"AccountingDocument='{row['AccountingDocument']}',"
            f"AccountingDocumentItem='{row['AccountingDocumentItem']}')"
        )
        return _entity(
            root, "API_OPLACCTGDOCITEMCUBE_SRV.A_OperationalAcctgDocItemCubeType", uri, row
        )

    return collection(request, books.items, render, state.sap.max_page_size)


ROUTES: dict[tuple[str, str, str, bool], Any] = {
    ("GET", "API_OPLACCTGDOCITEMCUBE_SRV", "A_OperationalAcctgDocItemCube", False): (
        "list_items",
        list_items,
    ),
}
