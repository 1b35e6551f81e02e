"""SOAP for SAP S/4HANA Cloud's *Journal Entry - Post (Synchronous)* service (communication
scenario ``SAP_COM_0002``, service ``JournalEntryCreateRequestConfirmation_In``).

**Request**: a SOAP 1.1 envelope (``text/xml``, ``SOAPAction`` :data:`SOAP_ACTION`) whose body
is ``sfin:JournalEntryBulkCreateRequest`` (namespace :data:`SFIN_NS`; its child elements are
unqualified) with a ``MessageHeader`` (``ID``, ``CreationDateTime``) and one
``JournalEntryCreateRequest`` (its own ``MessageHeader``, then ``JournalEntry``). The
journal entry's elements are written in the schema's order (:data:`ORDER`), whatever order
the caller built them in; ``Item``, ``CreditorItem`` and ``DebtorItem`` are numbered
(``ReferenceDocumentItem``) in the order they are written. Amounts are
``<AmountInTransactionCurrency currencyCode="EUR">-12.50</...>``: signed (a credit is
negative, as its ``DebitCreditCode`` ``H`` says), written from ``Decimal`` exactly.

**Confirmation**: ``JournalEntryBulkCreateConfirmation`` holding one
``JournalEntryCreateConfirmation`` per request: its ``MessageHeader`` (``ReferenceID``: the
request's message ``ID``), ``JournalEntryCreateConfirmation`` (``AccountingDocument``,
``CompanyCode``, ``FiscalYear``; ``0000000000``/blank when nothing was posted) and ``Log``
(``MaximumLogItemSeverityCode``; ``Item`` entries with ``TypeID`` such as ``201(F5)``,
``SeverityCode`` 1 information, 2 warning, 3 error, and ``Note``). The service answers HTTP
200 when it refuses a document: the log says so. :func:`log_error` turns an error log into
the failure it means: SAP's lock messages (:data:`LOCK_CODES`) are transient, anything else
(a closed period ``F5/201``, an unbalanced entry ``F5/702``, an unknown customer...) is a
rejection carrying the message code as ``F5/201``. ``RW/609`` ("Error in document") only
wraps the real messages, so the code is the first other error's.

**Faults**: the SOAP runtime answers a request it could not process with HTTP 500 and a
SOAP 1.1 ``Fault`` (``faultcode``, ``faultstring``, ``detail``) or a SOAP 1.2 one (``Code``,
``Reason``, ``Detail``); the detail may carry SAP's ``StandardMessageFault`` with
``faultDetail`` entries (``severity``, ``text``, ``id``). :func:`fault_error`: a server fault
(``Server``/``Receiver``) is transient unless its detail names an error message that is no
lock (then a rejection with that code); a client fault (``Client``/``Sender``: the envelope
does not fit the schema) is a rejection, again unless its detail names a lock.

Vendor XML is parsed with :mod:`defusedxml` (no DTDs, no entities), never the standard
library's parser.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TypeAlias
from xml.sax.saxutils import escape, quoteattr

import httpx
from defusedxml import ElementTree as SafeET  # type: ignore[import-untyped]

from adapters.errors import RejectedError, TransientError, VendorError
from adapters.http import vendor_error

SOAP11_NS = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_NS = "http://www.w3.org/2003/05/soap-envelope"
SFIN_NS = "http://sap.com/xi/SAPSCORE/SFIN"
POST_PATH = "/sap/bc/srt/scs_ext/sap/journalentrycreaterequestconfi"
SOAP_ACTION = (
    "http://sap.com/xi/SAPSCORE/SFIN/JournalEntryCreateRequestConfirmation_In/"
    "JournalEntryCreateRequestConfirmation_InRequest"
)
CONTENT_TYPE = "text/xml; charset=utf-8"
# A message ID is a BusinessDocumentMessageID: 35 characters at most.
MAX_MESSAGE_ID = 35
ERROR_SEVERITY = 3

# SAP messages saying the object is locked by someone else or the system is busy: a retry
# later goes through.
LOCK_CODES = frozenset({"MC/601", "F5/290", "V1/042", "M3/897", "FAGL_POSTING/003"})
# "Error in document: BKPFF ...": a wrapper around the messages that say what is wrong.
GENERIC_CODES = frozenset({"RW/609"})

# The schema's element order below each parent (the XSD declares sequences).
_PARTY_ITEM = (
    "ReferenceDocumentItem",
    "Debtor",
    "Creditor",
    "AmountInTransactionCurrency",
    "DebitCreditCode",
    "DocumentItemText",
    "AssignmentReference",
    "InvoiceReference",
    "CashDiscountTerms",
)
ORDER: dict[str, tuple[str, ...]] = {
    "JournalEntry": (
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
        "Item",
        "CreditorItem",
        "DebtorItem",
    ),
    "Item": (
        "ReferenceDocumentItem",
        "GLAccount",
        "AmountInTransactionCurrency",
        "DebitCreditCode",
        "DocumentItemText",
        "AssignmentReference",
    ),
    "DebtorItem": _PARTY_ITEM,
    "CreditorItem": _PARTY_ITEM,
    "InvoiceReference": ("AccountingDocument", "FiscalYear", "AccountingDocumentItem"),
    "CashDiscountTerms": ("DueCalculationBaseDate", "NetPaymentDays"),
}
_NUMBERED = ("Item", "CreditorItem", "DebtorItem")
# Characters XML 1.0 cannot carry at all.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_TYPE_ID = re.compile(r"^\s*(\w+)\((\w+)\)\s*$")


@dataclass(frozen=True)
class Amount:
    """A signed amount in a currency (``AmountInTransactionCurrency``)."""

    value: Decimal
    currency: str


Node: TypeAlias = "str | Amount | Mapping[str, Node] | Sequence[Mapping[str, Node]]"


# -- the request ----------------------------------------------------------------------------


def _text(value: str) -> str:
    return escape(_NOT_XML.sub("\ufffd", value))


def _element(name: str, value: Node, out: list[str]) -> None:
    if isinstance(value, Amount):
        if not value.value.is_finite():
            raise ValueError(f"{name}: {value.value} is not an amount")
        out.append(
            f"<{name} currencyCode={quoteattr(value.currency)}>{format(value.value, 'f')}</{name}>"
        )
    elif isinstance(value, str):
        out.append(f"<{name}>{_text(value)}</{name}>")
    elif isinstance(value, Mapping):
        out.append(f"<{name}>")
        _children(name, value, out)
        out.append(f"</{name}>")
    else:
        for repeated in value:
            _element(name, repeated, out)


def _children(parent: str, children: Mapping[str, Node], out: list[str]) -> None:
    order = ORDER.get(parent)
    names = list(children)
    if order is not None:
        unknown = [n for n in names if n not in order]
        if unknown:
            raise ValueError(f"{parent} has no element {', '.join(unknown)} in the schema")
        names.sort(key=order.index)
    for name in names:
        _element(name, children[name], out)


def _numbered(entry: Mapping[str, Node]) -> dict[str, Node]:
    """``entry`` with ``ReferenceDocumentItem`` 1, 2... on its items, in writing order."""
    numbered: dict[str, Node] = dict(entry)
    number = 0
    for kind in _NUMBERED:
        value = entry.get(kind)
        if value is None:
            continue
        items = [value] if isinstance(value, Mapping) else value
        if isinstance(items, (str, Amount)):
            raise ValueError(f"{kind} must be elements")
        renumbered: list[Mapping[str, Node]] = []
        for item in items:
            number += 1
            renumbered.append({**item, "ReferenceDocumentItem": str(number)})
        numbered[kind] = renumbered
    return numbered


def message_id(value: str) -> str:
    """A message ``ID`` as the schema takes it (35 characters at most)."""
    if not value or len(value) > MAX_MESSAGE_ID:
        raise ValueError(f"message ID {value!r} is empty or longer than {MAX_MESSAGE_ID}")
    return value


def _timestamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def journal_entry_request(
    entry: Mapping[str, Node], *, bulk_id: str, request_id: str, created_at: datetime
) -> bytes:
    """The SOAP envelope posting one journal entry (``entry``: the ``JournalEntry``'s
    elements; nested mappings are elements, sequences repeated elements)."""
    when = _timestamp(created_at)
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<soapenv:Envelope xmlns:soapenv="{SOAP11_NS}" xmlns:sfin="{SFIN_NS}">',
        "<soapenv:Header/><soapenv:Body><sfin:JournalEntryBulkCreateRequest>",
    ]
    _element("MessageHeader", {"ID": message_id(bulk_id), "CreationDateTime": when}, out)
    out.append("<JournalEntryCreateRequest>")
    _element("MessageHeader", {"ID": message_id(request_id), "CreationDateTime": when}, out)
    _element("JournalEntry", _numbered(entry), out)
    out.append(
        "</JournalEntryCreateRequest></sfin:JournalEntryBulkCreateRequest>"
        "</soapenv:Body></soapenv:Envelope>"
    )
    return "".join(out).encode("utf-8")


# -- answers --------------------------------------------------------------------------------


class MalformedAnswer(ValueError):
    """The answer is not the XML the service sends."""


@dataclass(frozen=True)
class LogNote:
    """One log message: ``code`` as ``F5/201`` (message class / number)."""

    code: str
    severity: int
    text: str


@dataclass(frozen=True)
class Confirmation:
    """What the service answered for one journal entry."""

    accounting_document: str
    company_code: str
    fiscal_year: str
    reference_id: str | None
    max_severity: int
    notes: tuple[LogNote, ...]

    @property
    def refused(self) -> bool:
        return self.max_severity >= ERROR_SEVERITY

    @property
    def posted(self) -> bool:
        """A document number came back and no error was logged."""
        return not self.refused and bool(self.accounting_document.strip("0 "))


@dataclass(frozen=True)
class Fault:
    """A SOAP fault: ``code`` the local name of its fault code (``Client``, ``Server``,
    ``Sender``, ``Receiver``), ``text`` its fault string, ``notes`` SAP's detail messages."""

    code: str
    text: str
    notes: tuple[LogNote, ...]

    @property
    def client(self) -> bool:
        return self.code in ("Client", "Sender")


def parse_xml(body: bytes) -> ET.Element:
    """``body`` parsed safely. Raises :class:`MalformedAnswer`."""
    try:
        root: ET.Element = SafeET.fromstring(body, forbid_dtd=True)
    except (ET.ParseError, ValueError, LookupError):
        # defusedxml's DTD/entity refusals are ValueErrors; syntax errors ParseErrors; an
        # unknown encoding in the XML declaration a LookupError.
        raise MalformedAnswer("not well-formed XML (or a DTD, or entities)") from None
    return root


def local(tag: str) -> str:
    """An element's name without its namespace."""
    return tag.rpartition("}")[2]


def _child(element: ET.Element, name: str) -> ET.Element | None:
    for child in element:
        if local(child.tag) == name:
            return child
    return None


def _all(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element if local(child.tag) == name]


def _value(element: ET.Element | None, name: str) -> str:
    found = None if element is None else _child(element, name)
    return "" if found is None else "".join(found.itertext()).strip()


def _severity(text: str, what: str) -> int:
    if not text:
        return 0
    if not text.isdigit():
        raise MalformedAnswer(f"{what} {text!r} is not a severity code")
    return int(text)


def message_code(type_id: str) -> str:
    """``201(F5)`` (how the log writes a message) as ``F5/201``; other text as it is."""
    match = _TYPE_ID.match(type_id)
    return f"{match.group(2)}/{match.group(1)}" if match else type_id.strip()


def _log(element: ET.Element | None) -> tuple[int, list[LogNote]]:
    if element is None:
        return 0, []
    notes = [
        LogNote(
            code=message_code(_value(item, "TypeID")),
            severity=_severity(_value(item, "SeverityCode"), "SeverityCode"),
            text=_value(item, "Note"),
        )
        for item in _all(element, "Item")
    ]
    highest = _value(element, "MaximumLogItemSeverityCode") or _value(
        element, "MaximumSeverityCode"
    )
    severity = _severity(highest, "MaximumLogItemSeverityCode")
    return max([severity, *(n.severity for n in notes)]), notes


def _body(root: ET.Element) -> ET.Element:
    if root.tag not in (f"{{{SOAP11_NS}}}Envelope", f"{{{SOAP12_NS}}}Envelope"):
        raise MalformedAnswer("not a SOAP envelope")
    body = _child(root, "Body")
    if body is None or len(body) != 1:
        raise MalformedAnswer("the SOAP body does not hold one element")
    return body[0]


def fault_of(root: ET.Element) -> Fault | None:
    """The fault a parsed envelope carries, if it is one."""
    try:
        content = _body(root)
    except MalformedAnswer:
        return None
    if content.tag == f"{{{SOAP11_NS}}}Fault":
        code = _value(content, "faultcode")
        text = _value(content, "faultstring")
        detail = _child(content, "detail")
    elif content.tag == f"{{{SOAP12_NS}}}Fault":
        code = _value(_child(content, "Code"), "Value")
        text = _value(_child(content, "Reason"), "Text")
        detail = _child(content, "Detail")
    else:
        return None
    notes: list[LogNote] = []
    if detail is not None:
        for found in detail.iter():
            if local(found.tag) != "faultDetail":
                continue
            severity = _value(found, "severity").lower()
            notes.append(
                LogNote(
                    code=message_code(_value(found, "id")),
                    severity=ERROR_SEVERITY if severity in ("error", "fatal", "") else 2,
                    text=_value(found, "text"),
                )
            )
    return Fault(code=code.rpartition(":")[2] or "Server", text=text, notes=tuple(notes))


def parse_confirmation(body: bytes) -> Confirmation | Fault:
    """The confirmation of the one journal entry a request posted (or the fault answered in
    its place). Raises :class:`MalformedAnswer` when the answer is neither."""
    root = parse_xml(body)
    fault = fault_of(root)
    if fault is not None:
        return fault
    bulk = _body(root)
    if local(bulk.tag) != "JournalEntryBulkCreateConfirmation":
        raise MalformedAnswer(f"{local(bulk.tag)} is not a journal entry confirmation")
    bulk_severity, bulk_notes = _log(_child(bulk, "Log"))
    entries = _all(bulk, "JournalEntryCreateConfirmation")
    if len(entries) > 1:
        raise MalformedAnswer(f"{len(entries)} confirmations for one journal entry")
    if not entries:
        if bulk_severity < ERROR_SEVERITY:
            raise MalformedAnswer("no JournalEntryCreateConfirmation")
        return Confirmation("", "", "", None, bulk_severity, tuple(bulk_notes))
    (entry,) = entries
    document = _child(entry, "JournalEntryCreateConfirmation")
    severity, notes = _log(_child(entry, "Log"))
    reference = _value(_child(entry, "MessageHeader"), "ReferenceID") or None
    return Confirmation(
        accounting_document=_value(document, "AccountingDocument"),
        company_code=_value(document, "CompanyCode"),
        fiscal_year=_value(document, "FiscalYear"),
        reference_id=reference,
        max_severity=max(severity, bulk_severity),
        notes=tuple(notes + bulk_notes),
    )


# -- classification -------------------------------------------------------------------------


def _errors(notes: Sequence[LogNote]) -> list[LogNote]:
    return [n for n in notes if n.severity >= ERROR_SEVERITY]


def _summary(notes: Sequence[LogNote]) -> str:
    seen: list[str] = []
    for note in notes:
        text = f"{note.code} {note.text}".strip()
        if text and text not in seen:
            seen.append(text)
    return "; ".join(seen)


def _cause(errors: Sequence[LogNote]) -> LogNote | None:
    specific = [n for n in errors if n.code not in GENERIC_CODES] or list(errors)
    return specific[0] if specific else None


def log_error(vendor: str, operation: str, notes: Sequence[LogNote]) -> VendorError:
    """The failure an error log means: transient when SAP names a lock, else a rejection
    with the code of its first specific error."""
    errors = _errors(notes)
    cause = _cause(errors)
    code = cause.code if cause is not None and cause.code else "JOURNAL_REFUSED"
    message = f"SAP did not post the journal entry: {_summary(errors) or 'refused'}"
    if any(n.code in LOCK_CODES for n in errors):
        lock = next(n.code for n in errors if n.code in LOCK_CODES)
        return TransientError(vendor, operation, message, code=lock)
    return RejectedError(vendor, operation, message, code=code)


def _looks_like_xml(response: httpx.Response) -> bool:
    head = response.content[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"<")


def fault_error(vendor: str, operation: str, response: httpx.Response) -> VendorError | None:
    """The failure a SOAP fault answer means (see the module docstring); None when the
    answer is no SOAP fault."""
    if not _looks_like_xml(response):
        return None
    try:
        fault = fault_of(parse_xml(response.content))
    except MalformedAnswer:
        return None
    if fault is None:
        return None
    return classify_fault(vendor, operation, response, fault)


def classify_fault(
    vendor: str, operation: str, response: httpx.Response, fault: Fault
) -> VendorError:
    errors = _errors(fault.notes)
    cause = _cause(errors)
    code = cause.code if cause is not None and cause.code else f"SOAP_{fault.code.upper()}"
    detail = _summary(errors)
    message = f"SOAP fault ({fault.code}): {fault.text or 'no fault string'}"
    if detail:
        message = f"{message} [{detail}]"
    status = response.status_code
    if any(n.code in LOCK_CODES for n in errors) or status in (401, 403, 408, 429):
        transient = True
    elif fault.client:
        transient = False
    else:
        # A server fault is the runtime failing; only an error message in its detail says
        # the document itself was refused.
        transient = cause is None
    return vendor_error(vendor, operation, response, message, code, transient=transient)
