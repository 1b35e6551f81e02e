"""Invoice-to-revenue on SAP S/4HANA Cloud: receivables, payments, credits and revenue
journals as journal entries (mixed into :class:`adapters.erp.sap.SapErp`).

S/4HANA Cloud has no "external invoice" object an API could create in Financial Accounting
other than a journal entry, so every posting goes through *Journal Entry - Post
(Synchronous)* (``/sap/bc/srt/scs_ext/sap/journalentrycreaterequestconfi``, communication
scenario ``SAP_COM_0002``) and is read back from the operational journal entry items
(``API_OPLACCTGDOCITEMCUBE_SRV/A_OperationalAcctgDocItemCube``).

==================  ========================================================================
revsync             S/4HANA journal entry (company code ``REVSYNC_SAP_COMPANY_CODE``)
==================  ========================================================================
receivable          type ``DR``: a debtor item debiting the customer the invoice total, due
                    on the invoice's due date (``DueCalculationBaseDate``, terms immediate),
                    its text the saga's key; one G/L item per invoice line crediting deferred
                    revenue (text ``L:<line id>``), one per taxed line crediting output tax
                    (``T:<line id>``). Receivable id ``<company>-<document>-<fiscal year>``.
payment             type ``DZ``: debit the bank clearing account, credit the customer with the
                    invoice as ``InvoiceReference`` (up to what is due) and the rest, if any,
                    on account (unapplied).
reversal / credit   type ``DG``: credit the customer with the invoice as ``InvoiceReference``,
                    debit deferred revenue and output tax per line credited.
revenue journal     type ``SA``: deferred revenue to revenue (a negative amount the other
                    way), posted on the last day of the period; its text is the entry id.
==================  ========================================================================

What is due is the invoice's total less the payments and credits referencing it (SAP shows
such partial payments and credit memos as open items linked to the invoice until they are
cleared together). A receivable is paid when nothing is due and payments exist, reversed when
nothing is due by credits alone.

Keys: each document carries its key in ``DocumentReferenceID`` (16 characters at most), the
key itself when it fits, else ``#`` and 15 characters of the base32 SHA-256 of the key (75
bits), and the full key in the text of its first item (50 characters) when it fits, which a
look-up checks. The service does not refuse a second document with the same reference, so
every posting is looked up first; a lost answer is settled by the retry's look-up.

Each posting is one SOAP envelope (:mod:`adapters.erp.sap_soap`: the request, reading the
confirmation, classifying faults). Items carry signed amounts (a credit is negative, its
``DebitCreditCode`` ``H``); a debtor item's due date is its ``CashDiscountTerms``
``DueCalculationBaseDate``. The service answers 200 even when it refuses: its ``Log`` with
``MaximumLogItemSeverityCode`` 3 carries the messages (``F5/201`` posting period not open,
``F5/702`` not balanced...), which the adapter raises as a rejection with the first specific
code; a lock message is transient. A closed period (``F5/201``) is a rejection, as the port
wants. A SOAP fault is classified by :func:`adapters.erp.sap.classify_sap`; an answer that
cannot be read, names another request or confirms no document leaves the outcome unknown,
and the retry's keyed look-up settles it.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol, cast

import httpx

from adapters.erp import sap_soap
from adapters.erp.sap_soap import Amount, Confirmation, MalformedAnswer
from adapters.errors import NotFoundError, RejectedError, UnknownOutcomeError, enforce
from domain import receivable_rules as rules
from domain.invoice import Invoice as FinalizedInvoice
from domain.receivable import (
    CreditLine,
    CreditPosting,
    JournalPosting,
    PaymentApplication,
    PaymentPosting,
    Receivable,
    ReceivableCredit,
    ReceivableState,
    RevenueJournal,
)
from domain.reconciliation import (
    InvoiceRecord,
    Page,
    System,
    Window,
    invoice_of_key,
    receivable_key,
)
from domain.revenue import closes_on, period_of

VENDOR = "sap"
ERP = "SAP"  # how messages name it
ITEMS_SERVICE = "API_OPLACCTGDOCITEMCUBE_SRV"
ITEMS = "A_OperationalAcctgDocItemCube"
POST_PATH = sap_soap.POST_PATH
MAX_REFERENCE = 16
MAX_ITEM_TEXT = 50
OUTPUT_TAX_ACCOUNT = "22010000"
# CreatedByUser of every posting (SAP records the communication user anyway).
CREATED_BY = "REVSYNC"


def document_reference(key: str) -> str:
    """The ``DocumentReferenceID`` (at most 16 characters) of a posting's key."""
    if len(key) <= MAX_REFERENCE and not key.startswith("#"):
        return key
    raw = hashlib.sha256(key.encode()).digest()
    return "#" + base64.b32encode(raw).decode("ascii").rstrip("=")[: MAX_REFERENCE - 1]


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _days_touched(window: Window) -> str:
    """Items entered on a day ``[start, end)`` touches (their entry date is only a day)."""
    first = window.start.astimezone(UTC).date()
    last = (window.end - timedelta(seconds=1)).astimezone(UTC).date()
    return (
        f"AccountingDocumentCreationDate ge datetime'{first.isoformat()}T00:00:00' and "
        f"AccountingDocumentCreationDate le datetime'{last.isoformat()}T00:00:00'"
    )


def _side(amount: Decimal, currency: str, debit_credit: str) -> dict[str, Any]:
    """``AmountInTransactionCurrency`` and ``DebitCreditCode`` of an item moving ``amount``
    (positive) as a debit (``S``) or a credit (``H``, a negative amount)."""
    signed = amount if debit_credit == "S" else -amount
    return {
        "AmountInTransactionCurrency": Amount(signed, currency),
        "DebitCreditCode": debit_credit,
    }


class _Host(Protocol):
    """What the mixin needs from :class:`adapters.erp.sap.SapErp`."""

    company_code: str
    deferred_revenue_account: str
    revenue_account: str
    bank_account: str

    async def read_all(
        self, operation: str, service: str, entity_set: str, params: Mapping[str, str]
    ) -> list[dict[str, Any]]: ...

    async def read_page(
        self,
        operation: str,
        service: str,
        entity_set: str,
        params: Mapping[str, str],
        cursor: str | None,
        page_size: int,
    ) -> tuple[list[dict[str, Any]], str | None]: ...

    async def read_counted_page(
        self,
        operation: str,
        service: str,
        entity_set: str,
        params: Mapping[str, str],
        cursor: str | None,
        page_size: int,
    ) -> tuple[list[dict[str, Any]], str | None, int | None]: ...

    async def post_soap(
        self, operation: str, path: str, envelope: bytes, action: str
    ) -> httpx.Response: ...


class _Document:
    """One posted journal entry: its items as the item cube shows them."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = sorted(items, key=lambda i: str(i.get("AccountingDocumentItem")))
        first = self.items[0]
        self.company = str(first["CompanyCode"])
        self.number = str(first["AccountingDocument"])
        self.year = str(first["FiscalYear"])
        self.type = str(first.get("AccountingDocumentType"))
        self.currency = str(first.get("TransactionCurrency"))
        self.reference = str(first.get("DocumentReferenceID") or "")

    @property
    def id(self) -> str:
        return f"{self.company}-{self.number}-{self.year}"

    def debtor(self) -> list[dict[str, Any]]:
        return [i for i in self.items if i.get("FinancialAccountType") == "D"]

    def key_text(self) -> str:
        """The key the document's first customer item (else its first item) carries."""
        first = (self.debtor() or self.items)[0]
        return str(first.get("DocumentItemText") or "")

    def signed(self, item: Mapping[str, Any]) -> Decimal:
        return Decimal(str(item.get("AmountInTransactionCurrency") or "0"))

    def lines(self, prefix: str) -> dict[str, Decimal]:
        """Absolute G/L amounts by line id of the items whose text is ``<prefix>:<line>``."""
        found: dict[str, Decimal] = {}
        for item in self.items:
            text = str(item.get("DocumentItemText") or "")
            if item.get("FinancialAccountType") == "S" and text.startswith(prefix + ":"):
                line = text[len(prefix) + 1 :]
                found[line] = found.get(line, Decimal(0)) + abs(self.signed(item))
        return found

    def posting_date(self) -> date:
        value = self.items[0].get("PostingDate")
        from adapters.erp.sap import parse_date

        parsed = parse_date(value)
        if parsed is None:
            try:
                parsed = date.fromisoformat(str(value))
            except ValueError:
                raise RejectedError(
                    VENDOR, "read_journal_entry", f"document {self.id} has no posting date"
                ) from None
        return parsed


def _references(document: _Document, invoice: _Document, *, on_account: bool = False) -> str:
    """The invoice documents ``document``'s customer items clear, as one text. With
    ``on_account`` a payment whose items clear nothing (all on account) counts as the
    invoice's."""
    references = {str(i.get("InvoiceReference") or "") for i in document.debtor()}
    if on_account:
        references -= {""}
    return ", ".join(sorted(references)) or (invoice.number if on_account else "nothing")


class SapFinanceMixin:
    """The invoice-to-revenue methods of the ERP port, on journal entries."""

    # -- plumbing ---------------------------------------------------------------------------

    def _host(self) -> _Host:
        return cast(_Host, self)

    async def _documents(self, operation: str, filters: list[str]) -> list[_Document]:
        host = self._host()
        rows = await host.read_all(
            operation,
            ITEMS_SERVICE,
            ITEMS,
            {"$filter": " and ".join([f"CompanyCode eq {_literal(host.company_code)}", *filters])},
        )
        grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for row in rows:
            grouped.setdefault(
                (str(row.get("AccountingDocument")), str(row.get("FiscalYear"))), []
            ).append(row)
        return [_Document(items) for _, items in sorted(grouped.items())]

    async def _keyed(self, key: str, document_type: str, operation: str) -> _Document | None:
        """The document of ``document_type`` posted under ``key``, if any."""
        documents = await self._documents(
            operation,
            [
                f"DocumentReferenceID eq {_literal(document_reference(key))}",
                f"AccountingDocumentType eq {_literal(document_type)}",
            ],
        )
        for document in documents:
            text = document.key_text()
            if len(key) > MAX_ITEM_TEXT or not text or text == key:
                return document
        return None

    async def _document(self, receivable_id: str, operation: str) -> _Document:
        parts = receivable_id.split("-")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            raise NotFoundError(VENDOR, operation, f"{receivable_id!r} is not an SAP receivable id")
        company, number, year = parts
        documents = await self._documents(
            operation,
            [f"AccountingDocument eq {_literal(number)}", f"FiscalYear eq {_literal(year)}"],
        )
        if not documents or documents[0].company != company or documents[0].type != "DR":
            raise NotFoundError(
                VENDOR, operation, f"no customer invoice {receivable_id} in SAP", code="NOT_FOUND"
            )
        return documents[0]

    async def _followers(self, invoice: _Document, operation: str) -> list[_Document]:
        """The payments and credit memos referencing the invoice."""
        references = await self._documents(
            operation,
            [
                f"InvoiceReference eq {_literal(invoice.number)}",
                f"InvoiceReferenceFiscalYear eq {_literal(invoice.year)}",
            ],
        )
        numbers = {(d.number, d.year) for d in references}
        if not numbers:
            return []
        # Read each whole (its G/L items and its unapplied part too).
        whole: list[_Document] = []
        for number, year in sorted(numbers):
            whole.extend(
                await self._documents(
                    operation,
                    [
                        f"AccountingDocument eq {_literal(number)}",
                        f"FiscalYear eq {_literal(year)}",
                    ],
                )
            )
        return whole

    async def _post(self, operation: str, entry: dict[str, Any]) -> tuple[str, str]:
        """Post one journal entry over SOAP; ``(document, fiscal year)``. An error log is a
        rejection with SAP's message code (a lock: transient); an answer that confirms no
        document, or cannot be read, leaves the outcome unknown (the retry's keyed look-up
        settles it)."""
        host = self._host()
        request_id = uuid.uuid4().hex
        envelope = sap_soap.journal_entry_request(
            {
                "OriginalReferenceDocumentType": "BKPFF",
                "BusinessTransactionType": "RFBU",
                "CreatedByUser": CREATED_BY,
                "CompanyCode": host.company_code,
                **entry,
            },
            bulk_id=uuid.uuid4().hex,
            request_id=request_id,
            created_at=datetime.now(UTC),
        )
        response = await host.post_soap(operation, POST_PATH, envelope, sap_soap.SOAP_ACTION)
        try:
            answer = sap_soap.parse_confirmation(response.content)
        except MalformedAnswer as error:
            raise UnknownOutcomeError(
                VENDOR, operation, f"unreadable journal entry answer: {error}"
            ) from None
        if not isinstance(answer, Confirmation):
            raise sap_soap.classify_fault(VENDOR, operation, response, answer)
        if answer.reference_id is not None and answer.reference_id != request_id:
            raise UnknownOutcomeError(
                VENDOR,
                operation,
                f"the confirmation answers message {answer.reference_id}, not {request_id}",
            )
        if answer.refused:
            raise sap_soap.log_error(VENDOR, operation, answer.notes)
        if not answer.posted or not answer.fiscal_year.strip("0"):
            raise UnknownOutcomeError(VENDOR, operation, "journal entry answer without a number")
        return answer.accounting_document, answer.fiscal_year

    # -- receivables ------------------------------------------------------------------------

    async def _receivable(self, invoice: _Document, operation: str) -> Receivable:
        followers = await self._followers(invoice, operation)
        debtor = invoice.debtor()
        if not debtor:
            raise RejectedError(VENDOR, operation, f"document {invoice.id} has no customer item")
        total = sum((invoice.signed(i) for i in debtor), Decimal(0))
        tax = sum(invoice.lines("T").values(), Decimal(0))
        paid = credited = Decimal(0)
        reversal_ids: list[str] = []
        for document in followers:
            applied = -sum(
                (
                    document.signed(i)
                    for i in document.debtor()
                    if i.get("InvoiceReference") == invoice.number
                ),
                Decimal(0),
            )
            if document.type == "DZ":
                paid += applied
            elif document.type == "DG":
                credited += applied
                reversal_ids.append(document.id)
        due = total - paid - credited
        state = ReceivableState.of(due, paid, credited)
        key = invoice.key_text()
        due_date = debtor[0].get("NetDueDate")
        from adapters.erp.sap import parse_date

        parsed_due = parse_date(due_date)
        if parsed_due is None:
            try:
                parsed_due = date.fromisoformat(str(due_date))
            except ValueError:
                parsed_due = invoice.posting_date()
        return Receivable(
            receivable_id=invoice.id,
            external_id=key,
            invoice_id=invoice_of_key(key),
            customer_id=str(debtor[0].get("Customer")),
            currency=invoice.currency,
            total=total,
            tax=tax,
            amount_paid=paid,
            amount_credited=credited,
            amount_due=due,
            issue_date=invoice.posting_date(),
            due_date=parsed_due,
            state=state,
            reversal_ids=tuple(reversal_ids),
        )

    async def find_receivable(self, external_id: str) -> Receivable | None:
        operation = "find_receivable"
        document = await self._keyed(external_id, "DR", operation)
        return None if document is None else await self._receivable(document, operation)

    async def post_receivable(
        self, invoice: FinalizedInvoice, customer_id: str, external_id: str
    ) -> Receivable:
        operation = "post_receivable"
        host = self._host()
        document = await self._keyed(external_id, "DR", operation)
        if document is None:
            enforce(VENDOR, operation, rules.unpostable(invoice, ERP))
            if invoice.total == 0:  # SAP posts no document without an amount
                raise RejectedError(
                    VENDOR,
                    operation,
                    f"invoice {invoice.invoice_id} totals 0 {invoice.currency}: a customer "
                    "invoice document must be positive",
                    code="NEGATIVE_TOTAL",
                )
            currency = invoice.currency
            items: list[dict[str, Any]] = []
            for line in invoice.lines:
                if line.amount:
                    items.append(
                        {
                            "GLAccount": host.deferred_revenue_account,
                            **_side(abs(line.amount), currency, "H" if line.amount > 0 else "S"),
                            "DocumentItemText": f"L:{line.line_id}"[:MAX_ITEM_TEXT],
                        }
                    )
                if line.tax_amount:
                    items.append(
                        {
                            "GLAccount": OUTPUT_TAX_ACCOUNT,
                            **_side(
                                abs(line.tax_amount), currency, "H" if line.tax_amount > 0 else "S"
                            ),
                            "DocumentItemText": f"T:{line.line_id}"[:MAX_ITEM_TEXT],
                        }
                    )
            entry = {
                "AccountingDocumentType": "DR",
                "DocumentReferenceID": document_reference(external_id),
                "DocumentHeaderText": f"revsync {invoice.invoice_id}"[:25],
                "DocumentDate": invoice.issue_date.isoformat(),
                "PostingDate": invoice.issue_date.isoformat(),
                "DebtorItem": [
                    {
                        "Debtor": customer_id,
                        **_side(invoice.total, currency, "S"),
                        "DocumentItemText": external_id[:MAX_ITEM_TEXT],
                        "CashDiscountTerms": {
                            "DueCalculationBaseDate": invoice.due_date.isoformat(),
                            "NetPaymentDays": "0",
                        },
                    }
                ],
                "Item": items,
            }
            await self._post(operation, entry)
            document = await self._keyed(external_id, "DR", operation)
            if document is None:
                raise UnknownOutcomeError(
                    VENDOR, operation, f"posted receivable {external_id!r} is not readable yet"
                )
        receivable = await self._receivable(document, operation)
        enforce(VENDOR, operation, rules.other_invoice(receivable, invoice, external_id))
        return receivable

    async def list_receivables(
        self, cursor: str | None, page_size: int, *, window: Window | None = None
    ) -> Page[InvoiceRecord]:
        """One page of the customer items of customer invoice documents (type ``DR``), named
        by their billing invoice (the key in the item text); others are read past.

        Windows read ``AccountingDocumentCreationDate``, a date (the day the entry was
        made): a ``created`` window holds the invoices entered on a day whose midnight is in
        it; a ``changed`` one the invoices entered, paid or credited (``DZ``/``DG`` items
        naming them) on any day the window touches, without a change time (a receivable's
        change is a document posted against it; SAP keeps no change time on the item)."""
        from adapters.erp.sap import created_filter

        operation = "list_receivables"
        host = self._host()
        scope = f"CompanyCode eq {_literal(host.company_code)} and FinancialAccountType eq 'D'"
        changed = window is not None and window.basis.value == "changed"
        if window is None:
            scope += " and AccountingDocumentType eq 'DR'"
        elif not changed:
            created = created_filter(window, "AccountingDocumentCreationDate")
            if created is None:
                return Page(items=[], total=0)
            scope += f" and AccountingDocumentType eq 'DR' and {created}"
        else:
            assert window is not None
            scope += (
                " and (AccountingDocumentType eq 'DR' or AccountingDocumentType eq 'DZ' or "
                "AccountingDocumentType eq 'DG') and " + _days_touched(window)
            )
        rows, after, total = await host.read_counted_page(
            operation, ITEMS_SERVICE, ITEMS, {"$filter": scope}, cursor, page_size
        )
        numbers: list[str] = []
        for row in rows:
            if row.get("AccountingDocumentType") == "DR":
                number = f"{row['CompanyCode']}-{row['AccountingDocument']}-{row['FiscalYear']}"
            elif row.get("InvoiceReference"):
                number = (
                    f"{row['CompanyCode']}-{row['InvoiceReference']}-"
                    f"{row.get('InvoiceReferenceFiscalYear') or row['FiscalYear']}"
                )
            else:
                continue
            if number not in numbers:
                numbers.append(number)
        items: list[InvoiceRecord] = []
        for number in numbers:
            record = await self._receivable_record(number, operation, changed=changed)
            if record is not None:
                items.append(record)
        return Page(items=items, cursor=after, total=None if changed else total)

    async def lookup_receivables(self, invoice_ids: list[str]) -> list[InvoiceRecord]:
        """The receivables of these billing invoices: customer invoice documents whose
        customer item carries the key ``i2r-<invoice>:receivable``."""
        operation = "lookup_receivables"
        host = self._host()
        found: list[InvoiceRecord] = []
        for start in range(0, len(invoice_ids), 20):
            batch = invoice_ids[start : start + 20]
            either = " or ".join(
                f"DocumentItemText eq {_literal(receivable_key(i))}" for i in batch
            )
            rows = await host.read_all(
                operation,
                ITEMS_SERVICE,
                ITEMS,
                {
                    "$filter": f"CompanyCode eq {_literal(host.company_code)} and "
                    f"AccountingDocumentType eq 'DR' and FinancialAccountType eq 'D' and ({either})"
                },
            )
            numbers = sorted(
                {f"{r['CompanyCode']}-{r['AccountingDocument']}-{r['FiscalYear']}" for r in rows}
            )
            for number in numbers:
                record = await self._receivable_record(number, operation, changed=False)
                if record is not None:
                    found.append(record)
        return found

    async def _receivable_record(
        self, number: str, operation: str, *, changed: bool
    ) -> InvoiceRecord | None:
        from adapters.erp.sap import parse_timestamp

        try:
            document = await self._document(number, operation)
        except NotFoundError:
            return None
        key = document.key_text()
        invoice_id = invoice_of_key(key)
        if invoice_id is None:
            return None
        receivable = await self._receivable(document, operation)
        created = parse_timestamp(document.items[0].get("AccountingDocumentCreationDate"))
        return InvoiceRecord(
            system=System.ERP,
            record_id=receivable.receivable_id,
            invoice_id=invoice_id,
            key=key,
            amount=receivable.total,
            currency=receivable.currency,
            amount_due=receivable.amount_due,
            status="open" if receivable.amount_due > 0 else "closed",
            created_at=created,
            changed_at=None,
        )

    # -- revenue journals -------------------------------------------------------------------

    def _journal_posting(self, document: _Document, journal_id: str) -> JournalPosting:
        host = self._host()
        amount = -sum(
            (
                document.signed(i)
                for i in document.items
                if i.get("GLAccount") == host.revenue_account
            ),
            Decimal(0),
        )
        return JournalPosting(
            journal_entry_id=document.id,
            journal_id=journal_id,
            period=period_of(document.posting_date()),
            amount=amount,
            currency=document.currency,
        )

    async def post_revenue_journal(self, journal: RevenueJournal) -> JournalPosting:
        operation = "post_revenue_journal"
        host = self._host()
        key = journal.journal_id
        document = await self._keyed(key, "SA", operation)
        if document is None:
            amount = abs(journal.amount)
            recognise = journal.amount > 0
            text = key[:MAX_ITEM_TEXT]
            when = (closes_on(journal.period) - timedelta(days=1)).isoformat()
            await self._post(
                operation,
                {
                    "AccountingDocumentType": "SA",
                    "DocumentReferenceID": document_reference(key),
                    "DocumentHeaderText": "revsync revenue",
                    "DocumentDate": when,
                    "PostingDate": when,
                    "Item": [
                        {
                            "GLAccount": host.deferred_revenue_account,
                            **_side(amount, journal.currency, "S" if recognise else "H"),
                            "DocumentItemText": text,
                        },
                        {
                            "GLAccount": host.revenue_account,
                            **_side(amount, journal.currency, "H" if recognise else "S"),
                            "DocumentItemText": text,
                        },
                    ],
                },
            )
            document = await self._keyed(key, "SA", operation)
            if document is None:
                raise UnknownOutcomeError(VENDOR, operation, f"journal {key!r} not readable yet")
        posting = self._journal_posting(document, key)
        enforce(VENDOR, operation, rules.other_journal(posting, journal, key))
        return posting

    # -- payments ---------------------------------------------------------------------------

    @staticmethod
    def _payment_posting(
        document: _Document, payment_id: str, invoice: _Document
    ) -> PaymentPosting:
        applied = unapplied = Decimal(0)
        for item in document.debtor():
            if item.get("InvoiceReference") == invoice.number:
                applied -= document.signed(item)
            else:
                unapplied -= document.signed(item)
        return PaymentPosting(
            payment_record_id=document.id,
            payment_id=payment_id,
            receivable_id=invoice.id,
            amount=applied + unapplied,
            applied=applied,
            unapplied=unapplied,
            currency=document.currency,
            paid_on=document.posting_date(),
        )

    async def apply_payment(self, payment: PaymentApplication) -> PaymentPosting:
        operation = "apply_payment"
        host = self._host()
        invoice = await self._document(payment.receivable_id, operation)
        document = await self._keyed(payment.payment_id, "DZ", operation)
        if document is None:
            receivable = await self._receivable(invoice, operation)
            enforce(VENDOR, operation, rules.unpayable(receivable, payment, invoice.id))
            applied = min(payment.amount, receivable.amount_due)
            customer = receivable.customer_id
            debtor: list[dict[str, Any]] = [
                {
                    "Debtor": customer,
                    **_side(applied, payment.currency, "H"),
                    "DocumentItemText": payment.payment_id[:MAX_ITEM_TEXT],
                    "InvoiceReference": {
                        "AccountingDocument": invoice.number,
                        "FiscalYear": invoice.year,
                        "AccountingDocumentItem": "001",
                    },
                }
            ]
            if payment.amount > applied:
                debtor.append(
                    {
                        "Debtor": customer,
                        **_side(payment.amount - applied, payment.currency, "H"),
                        "DocumentItemText": f"on account: {payment.payment_id}"[:MAX_ITEM_TEXT],
                    }
                )
            await self._post(
                operation,
                {
                    "AccountingDocumentType": "DZ",
                    "DocumentReferenceID": document_reference(payment.payment_id),
                    "DocumentHeaderText": "revsync payment",
                    "DocumentDate": payment.paid_on.isoformat(),
                    "PostingDate": payment.paid_on.isoformat(),
                    "Item": [
                        {
                            "GLAccount": host.bank_account,
                            **_side(payment.amount, payment.currency, "S"),
                            "DocumentItemText": payment.payment_id[:MAX_ITEM_TEXT],
                        }
                    ],
                    "DebtorItem": debtor,
                },
            )
            document = await self._keyed(payment.payment_id, "DZ", operation)
            if document is None:
                raise UnknownOutcomeError(VENDOR, operation, "posted payment not readable yet")
        what = f"payment document {document.id}"
        applies_to = _references(document, invoice, on_account=True)
        enforce(
            VENDOR,
            operation,
            rules.other_receivable(what, payment.payment_id, applies_to, str(invoice.number)),
        )
        return self._payment_posting(document, payment.payment_id, invoice)

    # -- credits ----------------------------------------------------------------------------

    async def _left(
        self, invoice: _Document, operation: str
    ) -> tuple[Receivable, dict[str, tuple[Decimal, Decimal]]]:
        """The receivable and, per invoice line, the amount and tax not credited yet."""
        receivable = await self._receivable(invoice, operation)
        amounts, taxes = invoice.lines("L"), invoice.lines("T")
        for document in await self._followers(invoice, operation):
            if document.type != "DG":
                continue
            for line, value in document.lines("L").items():
                amounts[line] = amounts.get(line, Decimal(0)) - value
            for line, value in document.lines("T").items():
                taxes[line] = taxes.get(line, Decimal(0)) - value
        lines = {
            line: (amounts.get(line, Decimal(0)), taxes.get(line, Decimal(0)))
            for line in sorted(set(amounts) | set(taxes))
        }
        return receivable, lines

    async def _post_credit(
        self,
        operation: str,
        invoice: _Document,
        receivable: Receivable,
        key: str,
        lines: list[CreditLine],
        header: str,
    ) -> None:
        host = self._host()
        currency = receivable.currency
        items: list[dict[str, Any]] = []
        for line in lines:
            if line.amount:
                items.append(
                    {
                        "GLAccount": host.deferred_revenue_account,
                        **_side(line.amount, currency, "S"),
                        "DocumentItemText": f"L:{line.line_id}"[:MAX_ITEM_TEXT],
                    }
                )
            if line.tax:
                items.append(
                    {
                        "GLAccount": OUTPUT_TAX_ACCOUNT,
                        **_side(line.tax, currency, "S"),
                        "DocumentItemText": f"T:{line.line_id}"[:MAX_ITEM_TEXT],
                    }
                )
        total = sum((line.total for line in lines), Decimal(0))
        today = date.today().isoformat()
        await self._post(
            operation,
            {
                "AccountingDocumentType": "DG",
                "DocumentReferenceID": document_reference(key),
                "DocumentHeaderText": header[:25],
                "DocumentDate": today,
                "PostingDate": today,
                "DebtorItem": [
                    {
                        "Debtor": receivable.customer_id,
                        **_side(total, currency, "H"),
                        "DocumentItemText": key[:MAX_ITEM_TEXT],
                        "InvoiceReference": {
                            "AccountingDocument": invoice.number,
                            "FiscalYear": invoice.year,
                            "AccountingDocumentItem": "001",
                        },
                    }
                ],
                "Item": items,
            },
        )

    async def reverse_receivable(
        self, receivable_id: str, external_id: str, reason: str
    ) -> Receivable:
        operation = "reverse_receivable"
        invoice = await self._document(receivable_id, operation)
        existing = await self._keyed(external_id, "DG", operation)
        if existing is not None:
            what, applies_to = f"credit memo {existing.id}", _references(existing, invoice)
            enforce(
                VENDOR,
                operation,
                rules.other_receivable(what, external_id, applies_to, str(invoice.number)),
            )
            return await self._receivable(invoice, operation)
        receivable, left = await self._left(invoice, operation)
        if receivable.state is ReceivableState.REVERSED:
            return receivable
        enforce(VENDOR, operation, rules.irreversible(receivable, invoice.id, ERP))
        lines = [
            CreditLine(line_id=line, amount=max(amount, Decimal(0)), tax=max(tax, Decimal(0)))
            for line, (amount, tax) in left.items()
            if amount > 0 or tax > 0
        ]
        await self._post_credit(
            operation, invoice, receivable, external_id, lines, f"revsync reversal: {reason}"
        )
        return await self._receivable(invoice, operation)

    async def credit_receivable(self, credit: ReceivableCredit) -> CreditPosting:
        operation = "credit_receivable"
        key = credit.external_id
        invoice = await self._document(credit.receivable_id, operation)
        document = await self._keyed(key, "DG", operation)
        if document is None:
            receivable, left = await self._left(invoice, operation)
            what = f"credit note {key} of invoice {credit.invoice_id} (SAP {invoice.id})"
            enforce(VENDOR, operation, rules.uncreditable(receivable, credit, left, what, ERP))
            await self._post_credit(
                operation,
                invoice,
                receivable,
                key,
                [line for line in credit.lines if line.total],
                f"revsync credit {credit.invoice_id}",
            )
            document = await self._keyed(key, "DG", operation)
            if document is None:
                raise UnknownOutcomeError(VENDOR, operation, "posted credit not readable yet")
        what, applies_to = f"credit memo {document.id}", _references(document, invoice)
        enforce(
            VENDOR, operation, rules.other_receivable(what, key, applies_to, str(invoice.number))
        )
        amounts, taxes = document.lines("L"), document.lines("T")
        lines = tuple(
            CreditLine(
                line_id=line, amount=amounts.get(line, Decimal(0)), tax=taxes.get(line, Decimal(0))
            )
            for line in sorted(set(amounts) | set(taxes))
        )
        total = -sum((document.signed(i) for i in document.debtor()), Decimal(0))
        posting = CreditPosting(
            credit_memo_id=document.id,
            external_id=key,
            receivable_id=invoice.id,
            currency=document.currency,
            lines=lines,
            total=total,
            applied=total,
            unapplied=Decimal(0),
        )
        enforce(VENDOR, operation, rules.other_credit(posting, credit, key))
        return posting
