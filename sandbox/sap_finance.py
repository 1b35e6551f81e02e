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
``SAP_COM_0002``), ``JournalEntryBulkCreateRequest`` with one ``JournalEntryCreateRequest``
whose ``JournalEntry`` carries ``CompanyCode``, ``AccountingDocumentType`` (``DR`` customer
invoice, ``DG`` customer credit memo, ``DZ`` customer payment, ``SA`` G/L),
``DocumentReferenceID`` (16 characters), ``DocumentHeaderText`` (25), ``DocumentDate``,
``PostingDate``, G/L ``Item`` entries and customer ``DebtorItem`` entries, each with
``AmountInTransactionCurrency`` (``{"currencyCode", "content"}``), ``DebitCreditCode`` (``S``
debit, ``H`` credit) and ``DocumentItemText`` (50); a debtor item may carry
``InvoiceReference`` (the invoice it pays or credits) and ``DueCalculationBaseDate``. The
emulator takes the request's structure as JSON rather than inside a SOAP envelope (see
docs/adapters.md, "SAP"). As the real service, it answers 200 with a confirmation whose
``Log`` says whether it posted: ``MaximumSeverityCode`` ``3`` and ``AccountingDocument``
``0000000000`` for a refusal (unbalanced entry ``F5/702``, closed period ``F5/201``, unknown
customer ``F5/104``, unknown account ``F5/153``, reference longer than 16 ``F5/809``).
Nothing dedupes a second posting with the same reference.

``POST /_sandbox/sap/periods`` (``{"period": "2026-03", "closed": true}``) closes or reopens
a posting period of every company code.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from fastapi import Request, Response

from domain.money import MINOR_UNITS, quantize
from sandbox.wire import json_response, read_json

if TYPE_CHECKING:
    from sandbox.app import SandboxState
    from sandbox.sap import Match

POST_PATH = "/sap/bc/srt/scs_ext/sap/journalentrycreaterequestconfi"
ACCOUNTS = frozenset({"11001020", "12100000", "22000000", "22010000", "41000000", "41100000"})
_FIRST_NUMBERS = {"DR": 1800000001, "DG": 1700000001, "DZ": 1400000001, "SA": 100000001}


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
        """Post ``entry``; the confirmation and the log's error notes (empty when posted)."""
        errors: list[str] = []
        company = str(entry.get("CompanyCode") or "")
        document_type = str(entry.get("AccountingDocumentType") or "")
        reference = str(entry.get("DocumentReferenceID") or "")
        posting = _date(entry.get("PostingDate"))
        if company != "1010":
            errors.append(f"F5/165 Company code {company} does not exist")
        if document_type not in _FIRST_NUMBERS:
            errors.append(f"F5/814 Document type {document_type} is not defined")
        if len(reference) > 16:
            errors.append("F5/809 Reference DocumentReferenceID is longer than 16 characters")
        if posting is None:
            errors.append("F5/012 Enter a valid posting date")
        elif f"{posting.year:04d}-{posting.month:02d}" in self.closed:
            errors.append(f"F5/201 Posting period {posting.month:03d} {posting.year} is not open")
        lines: list[tuple[str, dict[str, Any]]] = [
            ("S", raw) for raw in _list(entry.get("Item"))
        ] + [("D", raw) for raw in _list(entry.get("DebtorItem"))]
        if not lines:
            errors.append("F5/702 Enter at least one line item")
        balance = Decimal(0)
        currency = None
        rows: list[dict[str, Any]] = []
        for number, (kind, raw) in enumerate(lines, start=1):
            money = raw.get("AmountInTransactionCurrency") or {}
            try:
                amount = Decimal(str(money.get("content")))
            except (InvalidOperation, ValueError):
                errors.append(f"F5/013 Item {number}: amount is not a number")
                continue
            currency = currency or str(money.get("currencyCode") or "")
            if money.get("currencyCode") != currency or currency not in MINOR_UNITS:
                errors.append(f"F5/076 Item {number}: currency {money.get('currencyCode')}")
                continue
            if amount <= 0 or amount != quantize(amount, currency):
                errors.append(f"F5/013 Item {number}: amount {amount} is not postable")
                continue
            sign = raw.get("DebitCreditCode")
            if sign not in ("S", "H"):
                errors.append(f"F5/014 Item {number}: DebitCreditCode must be S or H")
                continue
            signed = amount if sign == "S" else -amount
            balance += signed
            row: dict[str, Any] = {
                "CompanyCode": company,
                "AccountingDocumentItem": f"{number:03d}",
                "AccountingDocumentType": document_type,
                "FinancialAccountType": kind,
                "DebitCreditCode": sign,
                "AmountInTransactionCurrency": format(signed, "f"),
                "TransactionCurrency": currency,
                "DocumentReferenceID": reference,
                "DocumentItemText": str(raw.get("DocumentItemText") or "")[:50],
                "PostingDate": entry.get("PostingDate"),
                "DocumentDate": entry.get("DocumentDate") or entry.get("PostingDate"),
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
                    errors.append(f"F5/153 G/L account {account} does not exist in 1010")
                row["GLAccount"] = account
            else:
                debtor = str(raw.get("Debtor") or "")
                if not self.customer_known(state, debtor):
                    errors.append(f"F5/104 Customer {debtor} is not defined in 1010")
                row["Customer"] = debtor
                row["GLAccount"] = "12100000"
                row["NetDueDate"] = raw.get("DueCalculationBaseDate") or entry.get("PostingDate")
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
                            f"F5/260 Invoice reference {invoice.get('AccountingDocument')} "
                            "does not exist"
                        )
                    row["InvoiceReference"] = str(invoice.get("AccountingDocument") or "")
                    row["InvoiceReferenceFiscalYear"] = str(invoice.get("FiscalYear") or "")
            rows.append(row)
        if lines and balance != 0 and not errors:
            errors.append(f"F5/702 Balance in transaction currency: {balance}")
        if errors or posting is None:
            return {
                "AccountingDocument": "0000000000",
                "CompanyCode": company,
                "FiscalYear": "0000",
            }, errors
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


def _list(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        value = [value]
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _date(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        return None


async def post_journal(state: SandboxState, request: Request) -> Response:
    books: FinanceBooks = state.sap.finance
    try:
        body = await read_json(request)
    except ValueError:
        body = None
    requests = (
        ((body or {}).get("JournalEntryBulkCreateRequest") or {}).get("JournalEntryCreateRequest")
        if isinstance(body, dict)
        else None
    )
    entries = _list(requests)
    if not entries:
        return Response(
            content=b"<soap-env:Fault>Unknown request structure</soap-env:Fault>",
            status_code=500,
            media_type="text/xml",
        )
    confirmations = []
    for wrapper in entries:
        confirmation, errors = books.post(state, wrapper.get("JournalEntry") or {})
        log_items = [
            {"TypeID": e.split(" ", 1)[0], "SeverityCode": "3", "Note": e.split(" ", 1)[1]}
            for e in errors
        ] or [
            {
                "TypeID": "RW/614",
                "SeverityCode": "1",
                "Note": f"Document posted successfully: BKPFF {confirmation['AccountingDocument']}"
                f"{confirmation['CompanyCode']}{confirmation['FiscalYear']}",
            }
        ]
        confirmations.append(
            {
                "JournalEntryCreateConfirmation": confirmation,
                "Log": {"MaximumSeverityCode": "3" if errors else "1", "Item": log_items},
            }
        )
    return json_response(
        {"JournalEntryBulkCreateConfirmation": {"JournalEntryCreateConfirmation": confirmations}}
    )


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
