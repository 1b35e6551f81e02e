"""The pure comparison: one test per kind of drift and per repair the rules allow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from domain.reconciliation import (
    DriftItem,
    DriftKind,
    OrderRecord,
    Outcome,
    ReconciliationReport,
    Remediation,
    SagaState,
    System,
    compare_orders,
    order_key,
    quote_of_key,
    repair_failed,
)
from domain.stages import OrderStage

RUN = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BEFORE = RUN - timedelta(hours=1)
ACCOUNT = "0015e00000AcmeUS1"


def erp(
    quote: str, *, record_id: str = "7001", amount: str = "1200.00", **kw: object
) -> OrderRecord:
    fields: dict[str, object] = {
        "system": System.ERP,
        "record_id": record_id,
        "key": order_key(System.ERP, quote),
        "quote_ref": quote,
        "customer_id": "301",
        "amount": Decimal(amount),
        "currency": "USD",
        "status": "pending_fulfillment",
        "live": True,
    }
    fields.update(kw)
    return OrderRecord.model_validate(fields)


def sub(quote: str, *, record_id: str = "sub_1", **kw: object) -> OrderRecord:
    fields: dict[str, object] = {
        "system": System.BILLING,
        "record_id": record_id,
        "key": order_key(System.BILLING, quote),
        "quote_ref": quote,
        "account_id": ACCOUNT,
        "customer_id": "cus_1",
        "currency": "USD",
        "status": "active",
        "live": True,
    }
    fields.update(kw)
    return OrderRecord.model_validate(fields)


def crm(quote: str, *, record_id: str = "801A", amount: str = "1200", **kw: object) -> OrderRecord:
    fields: dict[str, object] = {
        "system": System.CRM,
        "record_id": record_id,
        "key": order_key(System.CRM, quote),
        "quote_ref": quote,
        "account_id": ACCOUNT,
        "amount": Decimal(amount),
        "currency": "USD",
        "status": "Activated",
        "live": True,
    }
    fields.update(kw)
    return OrderRecord.model_validate(fields)


def saga(
    quote: str, stage: OrderStage, *, running: bool = False, changed_at: datetime = BEFORE
) -> SagaState:
    return SagaState(
        workflow_id=f"q2c-{quote}",
        quote_id=quote,
        account_id=ACCOUNT,
        stage=stage,
        running=running,
        changed_at=changed_at,
    )


def only(records: list[OrderRecord], sagas: list[SagaState]) -> DriftItem:
    found = compare_orders(records, {s.quote_id: s for s in sagas}, as_of=RUN).items
    assert len(found) == 1, found
    return found[0]


def test_keys_name_their_quote_and_nothing_else_does():
    assert order_key(System.ERP, "Q1") == "q2c-Q1:erp-order"
    assert quote_of_key("q2c-Q1:subscription") == "Q1"
    assert quote_of_key("q2c-Q1:invoice") is None
    assert quote_of_key(None) is None
    assert erp("Q1", key=None).quote_id == "Q1"  # named by its reference only
    assert not erp("Q1", key="manual-1").keyed


def test_a_booked_quote_held_the_same_everywhere_is_no_drift():
    result = compare_orders(
        [erp("Q1"), sub("Q1"), crm("Q1")], {"Q1": saga("Q1", OrderStage.BOOKED)}, as_of=RUN
    )
    assert result.items == []
    assert result.quotes == 1


def test_records_naming_no_quote_are_not_revsyncs():
    stray = erp("Q1", key=None, quote_ref=None)
    assert compare_orders([stray], {}, as_of=RUN).quotes == 0


def test_a_booked_quote_missing_its_crm_order_gets_it_rewritten_from_erp_and_billing():
    item = only([erp("Q1"), sub("Q1")], [saga("Q1", OrderStage.BOOKED)])
    assert item.kind is DriftKind.MISSING_IN_CRM
    assert item.remediation is Remediation.REWRITE_CRM
    assert item.workflow_id == "q2c-Q1"
    assert item.repair is not None and item.repair.record_order is not None
    write = item.repair.record_order
    assert write.order_key == "q2c-Q1:crm-order"
    assert write.account_id == ACCOUNT
    assert write.sales_order.order_id == "7001"
    assert write.sales_order.total == Decimal("1200.00")
    assert write.subscription.subscription_id == "sub_1"


def test_a_missing_crm_order_without_a_live_subscription_is_for_review():
    found = compare_orders([erp("Q1")], {"Q1": saga("Q1", OrderStage.BOOKED)}, as_of=RUN).items
    kinds = {(i.kind, i.remediation) for i in found}
    assert kinds == {
        (DriftKind.MISSING_IN_BILLING, Remediation.REVIEW),
        (DriftKind.MISSING_IN_CRM, Remediation.REVIEW),
    }


def test_a_booked_quote_missing_in_erp_is_for_review():
    item = only([sub("Q1"), crm("Q1")], [saga("Q1", OrderStage.BOOKED)])
    assert (item.kind, item.system, item.remediation) == (
        DriftKind.MISSING_IN_ERP,
        System.ERP,
        Remediation.REVIEW,
    )


def test_a_second_live_erp_order_for_a_quote_is_a_duplicate_for_review():
    manual = erp("Q1", record_id="7002", key=None)
    item = only([erp("Q1"), manual, sub("Q1"), crm("Q1")], [saga("Q1", OrderStage.BOOKED)])
    assert item.kind is DriftKind.DUPLICATED_IN_ERP
    assert item.remediation is Remediation.REVIEW
    assert item.record_ids == ["7001", "7002"]
    assert "7001 (kept)" in item.detail


def test_duplicates_are_found_in_billing_and_crm_too():
    records = [erp("Q1"), sub("Q1"), sub("Q1", record_id="sub_2", key=None), crm("Q1")]
    records.append(crm("Q1", record_id="801B", key=None))
    found = compare_orders(records, {"Q1": saga("Q1", OrderStage.BOOKED)}, as_of=RUN).items
    assert sorted(i.kind for i in found) == [
        DriftKind.DUPLICATED_IN_BILLING,
        DriftKind.DUPLICATED_IN_CRM,
    ]


def test_a_cancelled_second_order_is_no_duplicate():
    old = erp("Q1", record_id="7000", key=None, status="cancelled", live=False)
    result = compare_orders(
        [old, erp("Q1"), sub("Q1"), crm("Q1")], {"Q1": saga("Q1", OrderStage.BOOKED)}, as_of=RUN
    )
    assert result.items == []


def test_different_amounts_in_erp_and_crm_are_for_review():
    item = only([erp("Q1"), sub("Q1"), crm("Q1", amount="1300")], [saga("Q1", OrderStage.BOOKED)])
    assert item.kind is DriftKind.AMOUNT_MISMATCH
    assert item.remediation is Remediation.REVIEW
    assert "1200.00 USD" in item.detail and "1300 USD" in item.detail


def test_a_different_currency_is_an_amount_mismatch():
    item = only([erp("Q1"), sub("Q1"), crm("Q1", currency="EUR")], [saga("Q1", OrderStage.BOOKED)])
    assert item.kind is DriftKind.AMOUNT_MISMATCH


def test_a_cancelled_erp_order_of_a_booked_quote_with_a_live_subscription_is_for_review():
    cancelled = erp("Q1", status="cancelled", live=False)
    item = only([cancelled, sub("Q1"), crm("Q1")], [saga("Q1", OrderStage.BOOKED)])
    assert (item.kind, item.system, item.remediation) == (
        DriftKind.STATUS_MISMATCH,
        System.ERP,
        Remediation.REVIEW,
    )


def test_a_live_subscription_of_a_compensated_quote_is_cancelled_by_compensation():
    cancelled = erp("Q1", status="cancelled", live=False)
    item = only([cancelled, sub("Q1")], [saga("Q1", OrderStage.COMPENSATED)])
    assert (item.kind, item.system, item.remediation) == (
        DriftKind.STATUS_MISMATCH,
        System.BILLING,
        Remediation.COMPENSATE,
    )
    assert item.repair is not None and item.repair.cancel_subscription is not None
    assert item.repair.cancel_subscription.subscription_id == "sub_1"


def test_a_live_erp_order_of_a_rejected_quote_is_cancelled_and_a_crm_order_is_for_review():
    found = compare_orders(
        [erp("Q1"), crm("Q1")], {"Q1": saga("Q1", OrderStage.REJECTED)}, as_of=RUN
    ).items
    by_system = {i.system: i for i in found}
    assert by_system[System.ERP].remediation is Remediation.COMPENSATE
    repair = by_system[System.ERP].repair
    assert repair is not None and repair.cancel_sales_order is not None
    assert repair.cancel_sales_order.order_id == "7001"
    assert by_system[System.CRM].remediation is Remediation.REVIEW
    assert len(found) == 2


def test_drift_of_a_parked_saga_points_at_the_saga():
    parked = saga("Q1", OrderStage.NEEDS_ATTENTION, running=True)
    item = only([erp("Q1"), sub("Q1")], [parked])
    assert item.kind is DriftKind.MISSING_IN_CRM
    assert item.remediation is Remediation.RESUME_SAGA
    assert item.outcome is Outcome.POINTED
    assert item.repair is None


def test_a_saga_still_booking_is_not_judged():
    booking = saga("Q1", OrderStage.PROVISIONING_BILLING, running=True)
    result = compare_orders([erp("Q1")], {"Q1": booking}, as_of=RUN)
    assert result.items == []
    assert result.in_flight == 1


def test_a_running_saga_in_a_final_stage_is_judged():
    # e.g. BOOKED and still publishing its business event
    publishing = saga("Q1", OrderStage.BOOKED, running=True)
    item = only([sub("Q1"), crm("Q1")], [publishing])
    assert item.kind is DriftKind.MISSING_IN_ERP


def test_a_saga_that_ended_after_the_run_started_is_not_judged():
    late = saga("Q1", OrderStage.BOOKED, changed_at=RUN + timedelta(seconds=1))
    result = compare_orders([erp("Q1")], {"Q1": late}, as_of=RUN)
    assert (result.items, result.in_flight) == ([], 1)


def test_records_without_a_known_saga_must_agree_with_each_other():
    found = compare_orders(
        [erp("Q1"), sub("Q1", status="canceled", live=False)], {}, as_of=RUN
    ).items
    kinds = {(i.kind, i.system, i.remediation) for i in found}
    assert kinds == {
        (DriftKind.STATUS_MISMATCH, System.BILLING, Remediation.REVIEW),
        (DriftKind.MISSING_IN_CRM, System.CRM, Remediation.REVIEW),
    }
    assert all(i.workflow_id == "q2c-Q1" and i.saga_stage is None for i in found)


def test_a_quote_unwound_everywhere_without_a_known_saga_is_no_drift():
    cancelled = [erp("Q1", live=False), sub("Q1", live=False)]
    assert compare_orders(cancelled, {}, as_of=RUN).items == []


def test_the_report_counts_everything_and_keeps_the_first_items_of_each_kind():
    records = [erp(f"Q{n}", record_id=str(7000 + n)) for n in range(5)]
    sagas = {f"Q{n}": saga(f"Q{n}", OrderStage.COMPENSATED) for n in range(5)}
    items = compare_orders(records, sagas, as_of=RUN).items
    report = ReconciliationReport(started_at=RUN)
    report.record([*items[:4], repair_failed(items[4], "ERP refused")], max_items_per_kind=2)
    assert report.counts == {DriftKind.STATUS_MISMATCH: 5}
    assert report.total == 5
    assert len(report.items) == 2 and report.omitted == 3
    assert report.remediations == {Remediation.COMPENSATE: 4, Remediation.REVIEW: 1}
    assert report.outcomes == {Outcome.FAILED: 1}


def test_a_failed_repair_leaves_the_item_for_review_saying_why():
    item = only([erp("Q1")], [saga("Q1", OrderStage.COMPENSATED)])
    failed = repair_failed(item, "NetSuite refused: fulfilled")
    assert failed.remediation is Remediation.REVIEW
    assert failed.outcome is Outcome.FAILED
    assert failed.outcome_detail == "compensate failed: NetSuite refused: fulfilled"
