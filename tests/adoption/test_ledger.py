"""The adoption ledger's rules: links by cross-reference, then strong key in order, never
a guess; what is ambiguous, conflicting, an orphan or to create; open invoices tied out."""

from __future__ import annotations

import random
from decimal import Decimal as D

from domain.adoption import Bucket, Kind, LedgerEntry, customer_ledger, invoice_ledger
from domain.reconciliation import CustomerRecord, InvoiceRecord, System, fingerprints


def record(
    system: System, record_id: str, account: str | None = None, **fields: str
) -> CustomerRecord:
    return CustomerRecord(
        system=system, record_id=record_id, account_id=account, fields=fingerprints(fields)
    )


def crm(account: str, **fields: str) -> CustomerRecord:
    return record(System.CRM, account, account, **fields)


ACCOUNTS = [
    crm(
        "A",
        name="Acme",
        tax_id="DE 123 456 789",
        website="https://acme.example",
        email="ap@acme.example",
        legal_entity="Acme GmbH",
    ),
    crm("B", name="Beta", tax_id="GB999", email="ap@beta.example", legal_entity="Beta Ltd"),
    crm("C", name="Gamma", website="gamma.example", legal_entity="Gamma AG"),
    crm("D", name="Delta", legal_entity="Delta Inc"),
    crm("E", name="Epsilon", legal_entity="Delta Inc"),  # shares D's legal name
    crm("F", name="Zeta"),  # in the CRM only
]


def ledger(
    erp: list[CustomerRecord], billing: list[CustomerRecord], golden: frozenset[str] = frozenset()
) -> dict[str, LedgerEntry]:
    entries = customer_ledger(ACCOUNTS, {"erp": erp, "billing": billing}, golden=set(golden))
    return {e.subject: e for e in entries}


def test_links_by_cross_reference_then_by_strong_key_in_order() -> None:
    found = ledger(
        erp=[
            record(System.ERP, "11", "A", name="Acme"),  # xref
            record(System.ERP, "12", None, tax_id="GB 999"),  # tax id, normalised
            record(System.ERP, "13", None, website="www.gamma.example"),  # domain
        ],
        billing=[
            record(System.BILLING, "cus_b", None, email="AP@beta.example"),  # e-mail, any case
        ],
    )
    assert found["A"].bucket is Bucket.MATCHED and [link.how for link in found["A"].links] == [
        "xref"
    ]
    beta = found["B"]
    assert beta.bucket is Bucket.MATCHED_BY_KEY
    assert [(link.system, link.record_id, link.how) for link in beta.links] == [
        ("billing", "cus_b", "key:email"),
        ("erp", "12", "key:tax_id"),
    ]
    assert [link.how for link in found["C"].links] == ["key:domain"]
    assert found["F"].bucket is Bucket.TO_CREATE


def test_the_first_key_that_finds_anything_decides_and_several_accounts_are_ambiguous() -> None:
    found = ledger(
        erp=[
            # legal name "Delta Inc" is D's and E's: ambiguous, never a guess
            record(System.ERP, "21", None, legal_entity="delta  inc"),
            # tax id finds nobody, e-mail finds B: the e-mail decides
            record(System.ERP, "22", None, tax_id="XX000", email="ap@beta.example"),
            # nothing matches: an orphan
            record(System.ERP, "23", None, name="Unknown", email="x@nowhere.example"),
        ],
        billing=[],
    )
    ambiguous = found["erp:21"]
    assert ambiguous.bucket is Bucket.AMBIGUOUS and ambiguous.candidates == ["D", "E"]
    assert found["D"].bucket is Bucket.TO_CREATE  # not linked on a guess
    assert [link.how for link in found["B"].links] == ["key:email"]
    assert found["erp:23"].bucket is Bucket.ORPHAN


def test_duplicates_and_disagreeing_fields_are_held_for_a_person() -> None:
    found = ledger(
        erp=[
            record(System.ERP, "31", "A", name="Acme"),
            record(System.ERP, "32", None, tax_id="DE123456789"),  # A's again: a duplicate
            record(System.ERP, "33", None, website="gamma.example"),
            record(System.ERP, "34", None, legal_entity="Gamma AG"),  # C twice by key
            record(System.ERP, "35", "NOPE"),  # linked to an account the CRM lacks
        ],
        billing=[record(System.BILLING, "cus_a", "A", name="Acme Corp")],  # name differs
    )
    assert found["erp:32"].bucket is Bucket.AMBIGUOUS and "duplicate" in found["erp:32"].reason
    assert found["erp:33"].bucket is found["erp:34"].bucket is Bucket.AMBIGUOUS
    assert found["C"].bucket is Bucket.TO_CREATE
    assert found["A"].bucket is Bucket.CONFLICTING and found["A"].differing == ["billing.name"]
    assert found["erp:35"].bucket is Bucket.ORPHAN


def test_the_ledger_is_the_same_whatever_order_the_records_come_in() -> None:
    erp = [record(System.ERP, str(n), None, legal_entity="Delta Inc") for n in range(5)] + [
        record(System.ERP, "x1", "A"),
        record(System.ERP, "x2", None, tax_id="GB999"),
    ]
    first = customer_ledger(ACCOUNTS, {"erp": erp, "billing": []}, golden={"A"})
    shuffled = list(erp)
    random.Random(3).shuffle(shuffled)
    again = customer_ledger(
        list(reversed(ACCOUNTS)), {"erp": shuffled, "billing": []}, golden={"A"}
    )
    assert first == again
    assert {e.subject: e.in_revsync for e in first}["A"] is True


def invoice(
    system: System,
    record_id: str,
    invoice_id: str,
    amount: str,
    due: str,
    status: str = "open",
    currency: str = "EUR",
    key: str | None = None,
) -> InvoiceRecord:
    return InvoiceRecord(
        system=system,
        record_id=record_id,
        invoice_id=invoice_id,
        key=key,
        amount=D(amount),
        currency=currency,
        amount_due=D(due),
        status=status,
    )


def test_open_invoices_are_matched_created_or_held_and_tied_out_per_customer_and_currency() -> None:
    billing = [
        invoice(System.BILLING, "in_1", "in_1", "100.00", "100.00"),  # mirrored, equal
        invoice(System.BILLING, "in_2", "in_2", "200.00", "100.00"),  # half paid, ERP unpaid
        invoice(System.BILLING, "in_3", "in_3", "50.00", "50.00", currency="GBP"),  # none in ERP
        invoice(System.BILLING, "in_4", "in_4", "10.00", "0.00", status="paid"),  # history
        invoice(System.BILLING, "in_5", "in_5", "10.00", "10.00"),  # unreadable
        invoice(System.BILLING, "in_6", "in_6", "30.00", "30.00"),  # two receivables
    ]
    erp = [
        invoice(System.ERP, "901", "in_1", "100.00", "100.00", key="i2r-in_1:receivable"),
        invoice(System.ERP, "902", "in_2", "200.00", "200.00"),
        invoice(System.ERP, "906", "in_6", "30.00", "30.00"),
        invoice(System.ERP, "907", "in_6", "30.00", "30.00"),
        invoice(System.ERP, "999", "in_gone", "70.00", "70.00"),
    ]
    entries, settled, off, tied = invoice_ledger(
        billing,
        erp,
        accounts={"in_1": "A", "in_2": "A", "in_3": "B", "in_6": "B"},
        unreadable={"in_5": "currency XTS is not one revsync books"},
        sagas={"in_1"},
    )
    found = {e.subject: e for e in entries}
    assert settled == 1 and "in_4" not in found
    assert found["in_1"].bucket is Bucket.MATCHED and found["in_1"].in_revsync
    assert found["in_1"].links[0].how == "xref"
    assert found["in_2"].bucket is Bucket.CONFLICTING and found["in_2"].differing == ["amount_due"]
    assert found["in_3"].bucket is Bucket.TO_CREATE
    assert found["in_5"].bucket is Bucket.UNREADABLE and "XTS" in found["in_5"].reason
    assert found["in_6"].bucket is Bucket.AMBIGUOUS
    assert found["erp:999"].bucket is Bucket.ORPHAN
    assert all(e.kind is Kind.INVOICES for e in entries)
    differences = {(t.account_id, t.currency): t.difference for t in off}
    assert differences == {
        ("A", "EUR"): D("-100.00"),  # billing 200 due, ERP 300
        ("B", "GBP"): D("50.00"),
        ("B", "EUR"): D("-30.00"),
        ("?", "EUR"): D("-70.00"),
    }
    assert tied == 0
