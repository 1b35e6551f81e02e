"""The pure comparison of customers (field copies against their owner, missing and
duplicated records) and of invoices (billing against ERP receivables, judged by their saga)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from domain.customer import Address
from domain.customer_master import FieldValue, MasterField, equivalent
from domain.invoice_contracts import InvoiceStage
from domain.money import Money
from domain.reconciliation import (
    CustomerRecord,
    DriftItem,
    DriftKind,
    InvoiceSagaState,
    Outcome,
    ReconciliationInput,
    Remediation,
    ScanState,
    System,
    compare_customers,
    compare_invoices,
    fingerprint,
    fingerprints,
    invoice_of_key,
    receivable_key,
)
from tests.reconciliation.fakes import customer, invoice

RUN = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BEFORE = RUN - timedelta(hours=1)


def kinds(items: list[DriftItem]) -> list[tuple[DriftKind, str, System]]:
    return sorted((i.kind, i.subject, i.system) for i in items)


# -- fingerprints ---------------------------------------------------------------------------


ADDRESS = Address(line1="1 Main St", city="Berlin", postal_code="10115", country="DE")
SAME_MEANING: list[tuple[MasterField, FieldValue, FieldValue]] = [
    (MasterField.TAX_ID, "DE 123.456.789", "de123456789"),
    (MasterField.WEBSITE, "https://www.acme.example/", "acme.example"),
    (MasterField.NAME, "Acme  GmbH", "acme gmbh"),
    (MasterField.EMAIL, "AP@Acme.example", "ap@acme.example"),
    (
        MasterField.CREDIT_LIMIT,
        Money(amount=Decimal("1000.00"), currency="EUR"),
        Money(amount=Decimal("1000"), currency="EUR"),
    ),
    (MasterField.BILLING_ADDRESS, ADDRESS, ADDRESS.model_copy()),
]
DIFFERENT: list[tuple[MasterField, FieldValue, FieldValue]] = [
    (MasterField.TAX_ID, "DE123456789", "DE123456780"),
    (MasterField.NAME, "Acme GmbH", "Acme AG"),
    (
        MasterField.CREDIT_LIMIT,
        Money(amount=Decimal("1000"), currency="EUR"),
        Money(amount=Decimal("1000"), currency="USD"),
    ),
    (MasterField.BILLING_ADDRESS, ADDRESS, ADDRESS.model_copy(update={"city": "Munich"})),
    (MasterField.EMAIL, "ap@acme.example", None),
]


@pytest.mark.parametrize(("field", "a", "b"), SAME_MEANING)
def test_equivalent_values_have_one_fingerprint(field: MasterField, a: FieldValue, b: FieldValue):
    assert equivalent(field, a, b) or field is MasterField.CREDIT_LIMIT
    assert fingerprint(field, a) == fingerprint(field, b)


@pytest.mark.parametrize(("field", "a", "b"), DIFFERENT)
def test_different_values_have_different_fingerprints(
    field: MasterField, a: FieldValue, b: FieldValue
):
    assert not equivalent(field, a, b)
    assert fingerprint(field, a) != fingerprint(field, b)


def test_fingerprints_validate_raw_values_and_keep_no_data():
    prints = fingerprints(
        {"email": "ap@acme.example", "credit_limit": {"amount": "5", "currency": "EUR"}}
    )
    assert prints[MasterField.EMAIL] == fingerprint(MasterField.EMAIL, "AP@acme.example")
    assert prints[MasterField.CREDIT_LIMIT] == fingerprint(
        MasterField.CREDIT_LIMIT, Money(amount=Decimal(5), currency="EUR")
    )
    assert "acme" not in str(prints)
    # An invalid value differs from every valid one; unknown names are not fields.
    bad = fingerprints({"email": "not an address", "colour": "red"})
    assert set(bad) == {MasterField.EMAIL} and bad[MasterField.EMAIL].startswith("invalid:")


# -- customers ------------------------------------------------------------------------------


def test_consistent_customers_are_no_drift_and_unlinked_records_are_ignored():
    records = [
        customer(System.CRM, "A", "A", name="Acme GmbH", tax_id="DE 123 456 789"),
        customer(System.ERP, "A", "11", name="ACME GMBH", tax_id="DE123456789"),
        customer(System.BILLING, "A", "cus_1", tax_id="de123456789"),
        customer(System.ERP, None, "12", name="Walk-in"),
        customer(System.CRM, "P", "P", name="Prospect, CRM only"),
    ]
    assert compare_customers(records) == []


def test_a_copy_differing_from_its_owner_is_repropagated_per_system():
    records = [
        customer(System.CRM, "A", "A", name="Acme GmbH", tax_id="DE999"),
        customer(System.ERP, "A", "11", name="Acme Holding", tax_id="DE123"),
        customer(System.BILLING, "A", "cus_1", tax_id="DE777"),
    ]
    items = compare_customers(records)
    # name: CRM owns it, ERP's copy differs; tax id: ERP owns it, CRM's and billing's differ.
    assert kinds(items) == sorted(
        [
            (DriftKind.FIELD_MISMATCH, "A", System.CRM),
            (DriftKind.FIELD_MISMATCH, "A", System.ERP),
            (DriftKind.FIELD_MISMATCH, "A", System.BILLING),
        ]
    )
    by_system = {i.system: i for i in items}
    assert by_system[System.ERP].fields == [MasterField.NAME]
    assert by_system[System.CRM].fields == [MasterField.TAX_ID]
    for item in items:
        assert item.remediation is Remediation.REPROPAGATE_CUSTOMER
        assert item.workflow_id == "customer-A"
        assert item.repair is not None and item.repair.repropagate is not None
        assert item.repair.repropagate.golden_id == "A"
        assert item.repair.repropagate.fields == item.fields
    assert "tax_id (owned by erp)" in by_system[System.CRM].detail


def test_an_empty_copy_is_not_propagated_yet_but_a_cleared_owner_is_drift():
    records = [
        customer(System.CRM, "A", "A", website="acme.example", email=None),
        customer(System.ERP, "A", "11", website=None, email="old@acme.example"),
        customer(System.BILLING, "A", "cus_1", email=None),
    ]
    (item,) = compare_customers(records)
    assert item.system is System.ERP and item.fields == [MasterField.EMAIL]


def test_missing_and_duplicated_customers_are_for_review():
    records = [
        # B: billing and ERP hold it, CRM does not.
        customer(System.ERP, "B", "21"),
        customer(System.BILLING, "B", "cus_B"),
        # C: billing has it, the ERP does not (quote-to-cash makes the ERP one first).
        customer(System.CRM, "C", "C"),
        customer(System.BILLING, "C", "cus_C"),
        # D: two billing customers; only ERP without billing is no drift.
        customer(System.CRM, "D", "D"),
        customer(System.ERP, "D", "41"),
        customer(System.BILLING, "D", "cus_D1"),
        customer(System.BILLING, "D", "cus_D2"),
        customer(System.CRM, "E", "E"),
        customer(System.ERP, "E", "51"),
    ]
    items = compare_customers(records)
    assert kinds(items) == sorted(
        [
            (DriftKind.MISSING_IN_CRM, "B", System.CRM),
            (DriftKind.MISSING_IN_ERP, "C", System.ERP),
            (DriftKind.DUPLICATED_IN_BILLING, "D", System.BILLING),
        ]
    )
    assert all(i.remediation is Remediation.REVIEW and i.repair is None for i in items)
    (duplicate,) = [i for i in items if i.kind is DriftKind.DUPLICATED_IN_BILLING]
    assert duplicate.record_ids == ["cus_D1", "cus_D2"]


def test_field_drift_is_not_judged_against_duplicates():
    records = [
        customer(System.CRM, "D", "D", name="Delta"),
        customer(System.ERP, "D", "41", name="Delta Old"),
        customer(System.ERP, "D", "42", name="Delta"),
    ]
    assert kinds(compare_customers(records)) == [(DriftKind.DUPLICATED_IN_ERP, "D", System.ERP)]


def test_a_customer_record_carries_fingerprints_only():
    record = CustomerRecord(
        system=System.CRM,
        record_id="A",
        account_id="A",
        fields=fingerprints({"name": "Acme GmbH", "email": "ap@acme.example"}),
    )
    assert "Acme" not in record.model_dump_json()


# -- invoices -------------------------------------------------------------------------------


def saga(invoice_id: str, stage: InvoiceStage, *, running: bool, at: datetime = BEFORE):
    return InvoiceSagaState(
        workflow_id=f"i2r-{invoice_id}", invoice_id=invoice_id, stage=stage, running=running,
        changed_at=at,
    )  # fmt: skip


def test_receivable_keys_name_their_invoice():
    assert receivable_key("in_1") == "i2r-in_1:receivable"
    assert invoice_of_key("i2r-in_1:receivable") == "in_1"
    assert invoice_of_key("i2r-in_1:void") is None and invoice_of_key(None) is None


def test_agreeing_invoices_are_no_drift():
    records = [
        invoice(System.BILLING, "in_1", "in_1", "open", due="120.00", amount=Decimal("120.00")),
        invoice(System.ERP, "in_1", "901", "open", due="120.00", amount=Decimal("120.0")),
        invoice(System.BILLING, "in_2", "in_2", "paid"),
        invoice(System.ERP, "in_2", "902", "closed"),
        invoice(System.BILLING, "in_3", "in_3", "void"),
        invoice(System.ERP, "in_3", "903", "closed"),
    ]
    result = compare_invoices(records, {}, as_of=RUN)
    assert result.items == [] and result.invoices == 3 and result.in_flight == 0


def test_each_invoice_drift_and_who_acts_on_it():
    records = [
        # missing receivable, saga parked -> resume it
        invoice(System.BILLING, "in_m", "in_m", "open", due="120.00"),
        # amounts differ, saga closed -> review
        invoice(System.BILLING, "in_a", "in_a", "paid"),
        invoice(System.ERP, "in_a", "9a", "closed", amount=Decimal("100.00")),
        # paid in billing, open in ERP, saga still waiting for payment -> resume it
        invoice(System.BILLING, "in_p", "in_p", "paid"),
        invoice(System.ERP, "in_p", "9p", "open", due="120.00"),
        # void in billing, not reversed in ERP, no saga -> review
        invoice(System.BILLING, "in_v", "in_v", "void"),
        invoice(System.ERP, "in_v", "9v", "open", due="120.00"),
        # open in billing, nothing due in ERP -> review
        invoice(System.BILLING, "in_o", "in_o", "open", due="120.00"),
        invoice(System.ERP, "in_o", "9o", "closed"),
        # a receivable for an invoice billing does not have, and a duplicate
        invoice(System.ERP, "in_x", "9x", "open", due="120.00"),
        invoice(System.BILLING, "in_d", "in_d", "paid"),
        invoice(System.ERP, "in_d", "9d", "closed"),
        invoice(System.ERP, "in_d", "9d2", "closed", key=None),
    ]
    sagas = {
        "in_m": saga("in_m", InvoiceStage.NEEDS_ATTENTION, running=True),
        "in_a": saga("in_a", InvoiceStage.CLOSED, running=False),
        "in_p": saga("in_p", InvoiceStage.AWAITING_PAYMENT, running=True),
    }
    result = compare_invoices(records, sagas, as_of=RUN)
    assert kinds(result.items) == sorted(
        [
            (DriftKind.MISSING_IN_BILLING, "in_x", System.BILLING),
            (DriftKind.MISSING_IN_ERP, "in_m", System.ERP),
            (DriftKind.DUPLICATED_IN_ERP, "in_d", System.ERP),
            (DriftKind.AMOUNT_MISMATCH, "in_a", System.ERP),
            (DriftKind.STATUS_MISMATCH, "in_o", System.ERP),
            (DriftKind.STATUS_MISMATCH, "in_p", System.ERP),
            (DriftKind.STATUS_MISMATCH, "in_v", System.ERP),
        ]
    )
    by_invoice = {i.subject: i for i in result.items}
    for pointed in ("in_m", "in_p"):
        item = by_invoice[pointed]
        assert item.remediation is Remediation.RESUME_SAGA and item.outcome is Outcome.POINTED
        assert item.workflow_id == f"i2r-{pointed}"
    assert by_invoice["in_m"].invoice_stage is InvoiceStage.NEEDS_ATTENTION
    for review in ("in_a", "in_v", "in_o", "in_x", "in_d"):
        assert by_invoice[review].remediation is Remediation.REVIEW
    assert "not reversed" in by_invoice["in_v"].detail
    assert "100.00 EUR" in by_invoice["in_a"].detail


def test_an_invoice_whose_saga_moved_after_the_run_started_is_in_flight():
    records = [invoice(System.BILLING, "in_1", "in_1", "paid")]
    sagas = {"in_1": saga("in_1", InvoiceStage.PAID, running=True, at=RUN + timedelta(minutes=1))}
    result = compare_invoices(records, sagas, as_of=RUN)
    assert result.items == [] and result.in_flight == 1


def test_a_run_at_its_carry_limit_still_fits_in_one_temporal_payload():
    """Temporal refuses a payload over 2 MB; the continue-as-new input carries the scan."""
    largest = customer(
        System.BILLING,
        "0015e00000AcmeUS1",
        "cus_0123456789abcdef",
        **{f.value: None for f in MasterField},
    )
    request = ReconciliationInput()
    carry = ScanState(started_at=RUN, customers=[largest] * request.max_carried)
    assert carry.carried == request.max_carried
    assert len(request.model_copy(update={"carry": carry}).model_dump_json()) < 2_000_000
