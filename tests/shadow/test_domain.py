"""The pure rules of shadow mode: synthetic ids, field differences, the report and the
comparison with the integration already in place."""

from __future__ import annotations

from datetime import UTC, datetime

from domain.shadow import (
    ChangeState,
    Effect,
    Expected,
    ObservedRecord,
    PredictedRefusal,
    RecordedWrite,
    RefusalSource,
    Target,
    Verdict,
    Why,
    compare,
    csv_row,
    effect_of,
    field_changes,
    is_synthetic,
    report,
    saga_shadow,
    substitute,
    synthetic_id,
    synthetic_ids,
    vendor_of,
)

AT = datetime(2026, 3, 1, 12, tzinfo=UTC)


def test_a_synthetic_id_is_stable_per_key_marked_and_names_its_vendor() -> None:
    one = synthetic_id("netsuite", "create_sales_order", "q2c-Q1:erp-order")
    assert one == synthetic_id("netsuite", "create_sales_order", "q2c-Q1:erp-order")
    assert one != synthetic_id("netsuite", "create_sales_order", "q2c-Q2:erp-order")
    assert one != synthetic_id("sap", "create_sales_order", "q2c-Q1:erp-order")
    assert is_synthetic(one) and vendor_of(one) == "netsuite" and not is_synthetic("5501")


def test_synthetic_ids_are_found_and_replaced_anywhere_in_a_call() -> None:
    a, b = synthetic_id("netsuite", "x", "1"), synthetic_id("stripe", "y", "2")
    call = {"order": {"order_id": a, "lines": [{"sku": "P"}]}, "ids": [b, a], "n": 3}
    assert synthetic_ids(call) == [a, b]
    assert substitute(call, {a: "5501"}) == {
        "order": {"order_id": "5501", "lines": [{"sku": "P"}]},
        "ids": [b, "5501"],
        "n": 3,
    }


def test_field_changes_say_added_changed_unchanged_or_unread() -> None:
    after = {"email": "b@x.example", "total": "100.00", "name": "Acme", "tax_id": "DE1"}
    before = {"email": "a@x.example", "total": 100, "name": "Acme  "}
    changes = {c.field: c.state for c in field_changes(after, before, read=True)}
    assert changes == {
        "email": ChangeState.CHANGED,
        "total": ChangeState.UNCHANGED,  # 100.00 is 100
        "name": ChangeState.UNCHANGED,  # blanks ignored
        "tax_id": ChangeState.ADDED,
    }
    assert {c.state for c in field_changes(after, None, read=False)} == {ChangeState.UNREAD}
    assert {c.state for c in field_changes(after, None, read=True)} == {ChangeState.ADDED}
    unread = field_changes(after, before, read=True, unread={"tax_id"})
    assert next(c for c in unread if c.field == "tax_id").state is ChangeState.UNREAD
    equal = field_changes({"tax_id": "DE 1"}, {"tax_id": "DE1"}, read=True, equal={"tax_id": True})
    assert equal[0].state is ChangeState.UNCHANGED


def test_the_effect_is_create_without_a_record_and_noop_when_nothing_changes() -> None:
    same = field_changes({"a": "1"}, {"a": "1"}, read=True)
    assert effect_of(same, exists=True) is Effect.NOOP
    assert effect_of(same, exists=False) is Effect.CREATE
    assert effect_of(field_changes({"a": "2"}, {"a": "1"}, read=True), exists=True) is Effect.UPDATE
    assert effect_of([], exists=True) is Effect.UPDATE  # nothing read: not a no-op


def write(
    n: int, workflow: str, effect: Effect, vendor: str = "netsuite", **extra: object
) -> RecordedWrite:
    return RecordedWrite(
        write_id=synthetic_id(vendor, "op", str(n)),
        vendor=vendor,
        port="erp",
        operation="create_sales_order" if n % 2 else "upsert_customer",
        idempotency_key=str(n),
        target=Target(kind="sales_order", key=str(n)),
        effect=effect,
        why=Why(workflow_id=workflow, workflow_type="QuoteToCash", step="erp.book_sales_order"),
        recorded_at=AT.replace(minute=n),
        arguments={},
        **extra,
    )


def test_the_report_counts_per_vendor_operation_and_saga() -> None:
    refused = [PredictedRefusal(source=RefusalSource.VENDOR, code="V1/390", message="no")]
    writes = [
        write(1, "q2c-A", Effect.CREATE),
        write(2, "q2c-A", Effect.NOOP),
        write(3, "q2c-B", Effect.UPDATE, refusals=refused),
        write(4, "q2c-B", Effect.CREATE, vendor="stripe", held_back=True),
    ]
    found = report(writes)
    assert (found.total.writes, found.total.creates, found.total.updates, found.total.noops) == (
        4,
        2,
        1,
        1,
    )
    assert found.total.refusals == found.total.vendor_refusals == 1
    assert found.total.held_back == 1
    assert found.by_vendor["netsuite"].writes == 3 and found.by_vendor["stripe"].writes == 1
    assert found.sagas["q2c-A"].writes == 2
    saga = saga_shadow("q2c-B", reversed(writes))
    assert [w.idempotency_key for w in saga.writes] == ["3", "4"]
    row = csv_row(writes[2])
    assert "V1/390" in row[12] and row[1] == "q2c-B"


def test_the_comparison_says_same_different_or_nothing_per_object_and_field() -> None:
    def want(subject: str, total: str) -> Expected:
        return Expected(
            vendor="netsuite",
            object="sales_order",
            subject=subject,
            workflow_id=f"q2c-{subject}",
            write_id=f"w-{subject}",
            fields={"total": total, "currency": "EUR", "live": True},
        )

    def found(subject: str, total: str) -> ObservedRecord:
        return ObservedRecord(
            vendor="netsuite",
            object="sales_order",
            subject=subject,
            record_id=f"r-{subject}",
            fields={"total": total, "currency": "EUR", "live": True},
        )

    result = compare(
        [want("Q1", "100.00"), want("Q2", "100.00"), want("Q3", "5")],
        [found("Q1", "100"), found("Q2", "90"), found("Q4", "7"), found("Q9", "1")],
        subjects_seen={("sales_order", s) for s in ("Q1", "Q2", "Q3", "Q4")},
        compared_at=AT,
        settled_before=AT,
        not_comparable={"salesforce.set_quote_status": 2},
    )
    verdicts = {i.subject: i.verdict for i in result.items}
    assert verdicts == {
        "Q1": Verdict.SAME,
        "Q2": Verdict.DIFFERENT,
        "Q3": Verdict.REVSYNC_ONLY,
        "Q4": Verdict.EXISTING_ONLY,  # Q9: a trigger revsync never saw, left out
    }
    rate = result.objects["netsuite.sales_order"]
    assert (rate.compared, rate.same, rate.different) == (4, 1, 1)
    assert rate.match_rate == 0.25
    assert rate.fields["total"].rate == 0.5 and rate.fields["currency"].rate == 1.0
    assert next(i for i in result.items if i.subject == "Q2").differing == ["total"]
    assert result.not_comparable == {"salesforce.set_quote_status": 2}
