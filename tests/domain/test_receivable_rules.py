"""The refusals every ERP adapter applies to invoice-to-revenue postings."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from domain import receivable_rules as rules
from domain.invoice import Invoice, InvoiceStatus, OneOffLine
from domain.receivable import (
    CreditLine,
    CreditPosting,
    JournalPosting,
    PaymentApplication,
    Receivable,
    ReceivableCredit,
    ReceivableState,
    RevenueJournal,
)

D = Decimal


def receivable(**changes: object) -> Receivable:
    base: dict[str, object] = {
        "receivable_id": "77",
        "external_id": "i2r-in_1:receivable",
        "invoice_id": "in_1",
        "customer_id": "301",
        "currency": "EUR",
        "total": D("119.00"),
        "tax": D("19.00"),
        "amount_due": D("119.00"),
        "issue_date": date(2025, 3, 1),
        "due_date": date(2025, 3, 31),
        "state": ReceivableState.OPEN,
    }
    return Receivable.model_validate({**base, **changes})


def invoice(status: InvoiceStatus = InvoiceStatus.OPEN, amount: str = "100.00") -> Invoice:
    line = OneOffLine(line_id="L1", sku="ONBOARD-STD", amount=D(amount), tax_amount=D("19.00"))
    return Invoice(
        invoice_id="in_1",
        account_id="0015e00000NordDE1",
        currency="EUR",
        issue_date=date(2025, 3, 1),
        due_date=date(2025, 3, 31),
        status=status,
        lines=[line],
        subtotal=D(amount),
        tax=D("19.00"),
        total=D(amount) + D("19.00"),
    )


def credit(*lines: tuple[str, str, str], currency: str = "EUR") -> ReceivableCredit:
    return ReceivableCredit(
        external_id="cn_1",
        invoice_id="in_1",
        receivable_id="77",
        currency=currency,
        lines=tuple(CreditLine(line_id=i, amount=D(a), tax=D(t)) for i, a, t in lines),
    )


@pytest.mark.parametrize(
    ("status", "code"),
    [(InvoiceStatus.DRAFT, "INVOICE_NOT_FINALIZED"), (InvoiceStatus.VOID, "INVOICE_NOT_FINALIZED")],
)
def test_only_a_finalized_invoice_is_posted(status: InvoiceStatus, code: str) -> None:
    refusal = rules.unpostable(invoice(status), "SAP")
    assert refusal is not None and refusal.code == code
    assert rules.unpostable(invoice(), "SAP") is None


def test_a_negative_invoice_is_refused_naming_the_erp() -> None:
    refusal = rules.unpostable(invoice(amount="-200.00"), "Dynamics")
    assert refusal is not None
    assert refusal.code == "NEGATIVE_TOTAL"
    assert "a Dynamics invoice cannot be negative" in refusal.message


def test_a_key_found_with_another_invoices_figures_is_refused() -> None:
    assert rules.other_invoice(receivable(), invoice(), "k") is None
    refusal = rules.other_invoice(receivable(total=D("120.00")), invoice(), "k")
    assert refusal is not None and refusal.code == "EXTERNAL_ID_REUSED"
    refusal = rules.other_invoice(receivable(currency="USD"), invoice(), "k")
    assert refusal is not None and refusal.code == "EXTERNAL_ID_REUSED"


def test_a_journal_key_posted_with_other_figures_is_refused() -> None:
    journal = RevenueJournal(
        journal_id="i2r-in_1:rev:2025-03",
        invoice_id="in_1",
        line_id="L1",
        period="2025-03",
        amount=D("10.00"),
        currency="EUR",
    )
    posting = JournalPosting(
        journal_entry_id="9", journal_id=journal.journal_id, period="2025-03",
        amount=D("10.00"), currency="EUR",
    )  # fmt: skip
    assert rules.other_journal(posting, journal, journal.journal_id) is None
    moved = posting.model_copy(update={"period": "2025-04"})
    refusal = rules.other_journal(moved, journal, journal.journal_id)
    assert refusal is not None and refusal.code == "JOURNAL_MISMATCH"


def test_a_payment_needs_the_same_currency_and_something_due() -> None:
    payment = PaymentApplication(
        payment_id="py_1", invoice_id="in_1", receivable_id="77", amount=D("50.00"),
        currency="EUR", paid_on=date(2025, 3, 9),
    )  # fmt: skip
    assert rules.unpayable(receivable(), payment, "77") is None
    wrong = payment.model_copy(update={"currency": "USD"})
    assert getattr(rules.unpayable(receivable(), wrong, "77"), "code", None) == "CURRENCY_MISMATCH"
    paid = receivable(amount_due=D(0), amount_paid=D("119.00"), state=ReceivableState.PAID)
    assert getattr(rules.unpayable(paid, payment, "77"), "code", None) == "RECEIVABLE_CLOSED"


def test_a_record_of_another_receivable_under_the_key_is_refused() -> None:
    assert rules.other_receivable("payment 5", "py_1", "77", "77") is None
    refusal = rules.other_receivable("payment 5", "py_1", "78", "77")
    assert refusal is not None and refusal.code == "EXTERNAL_ID_REUSED"
    assert "applies to 78, not 77" in refusal.message


def test_a_receivable_with_payments_is_not_reversed() -> None:
    assert rules.irreversible(receivable(), "77", "NetSuite") is None
    refusal = rules.irreversible(receivable(amount_paid=D("0.01")), "77", "NetSuite")
    assert refusal is not None and refusal.code == "RECEIVABLE_PAID"
    assert "settle it in NetSuite by hand" in refusal.message


@pytest.mark.parametrize(
    ("lines", "currency", "code"),
    [
        ((("L1", "100.00", "19.00"),), "EUR", None),
        ((("L1", "40.00", "0.00"),), "USD", "CURRENCY_MISMATCH"),
        ((("L9", "1.00", "0.00"),), "EUR", "UNKNOWN_LINE"),
        ((("L1", "100.01", "0.00"),), "EUR", "LINE_OVER_CREDITED"),
        ((("L1", "0.00", "19.01"),), "EUR", "LINE_OVER_CREDITED"),
    ],
)
def test_a_credit_takes_only_what_is_left_of_each_line(
    lines: tuple[tuple[str, str, str], ...], currency: str, code: str | None
) -> None:
    left = {"L1": (D("100.00"), D("19.00"))}
    refusal = rules.uncreditable(receivable(), credit(*lines, currency=currency), left, "cn", "SAP")
    assert (refusal.code if refusal else None) == code


def test_a_credit_never_exceeds_what_is_still_owed() -> None:
    left = {"L1": (D("100.00"), D("19.00"))}
    partly_paid = receivable(amount_paid=D("100.00"), amount_due=D("19.00"))
    refusal = rules.uncreditable(partly_paid, credit(("L1", "20.00", "0.00")), left, "cn", "SAP")
    assert refusal is not None and refusal.code == "CREDIT_EXCEEDS_DUE"
    exact = credit(("L1", "0.00", "19.00"))
    assert rules.uncreditable(partly_paid, exact, left, "cn", "SAP") is None


def test_a_credit_key_posted_with_other_lines_is_refused() -> None:
    wanted = credit(("L1", "10.00", "1.90"), ("L2", "0.00", "0.00"))
    posting = CreditPosting(
        credit_memo_id="12", external_id="cn_1", receivable_id="77", currency="EUR",
        lines=(CreditLine(line_id="L1", amount=D("10.00"), tax=D("1.90")),),
        total=D("11.90"), applied=D("11.90"),
    )  # fmt: skip
    assert rules.other_credit(posting, wanted, "cn_1") is None  # zero lines are not posted
    other = posting.model_copy(
        update={"lines": (CreditLine(line_id="L1", amount=D("9.00"), tax=D("1.90")),)}
    )
    refusal = rules.other_credit(other, wanted, "cn_1")
    assert refusal is not None and refusal.code == "CREDIT_MISMATCH"
    assert "L1 9.00 + tax 1.90, not L1 10.00 + tax 1.90" in refusal.message


@pytest.mark.parametrize(
    ("due", "paid", "credited", "state"),
    [
        ("0.01", "0", "0", ReceivableState.OPEN),
        ("50.00", "50.00", "19.00", ReceivableState.OPEN),
        ("0", "119.00", "0", ReceivableState.PAID),
        ("0", "100.00", "19.00", ReceivableState.PAID),
        ("0", "0", "119.00", ReceivableState.REVERSED),
    ],
)
def test_a_receivables_state_follows_from_its_amounts(
    due: str, paid: str, credited: str, state: ReceivableState
) -> None:
    assert ReceivableState.of(D(due), D(paid), D(credited)) is state
