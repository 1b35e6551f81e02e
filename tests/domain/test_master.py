"""Customer master survivorship: ownership, event ordering and dedupe, propagation, reviews,
merges and steward decisions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from temporalio.contrib.pydantic import pydantic_data_converter

from domain.customer import Address
from domain.customer_master import (
    OWNERSHIP,
    SEEN_EVENTS_KEPT,
    ChangeEvent,
    DuplicateSuspicion,
    FieldRule,
    FieldState,
    FieldValue,
    FieldVerdict,
    GoldenRecord,
    MasterField,
    MasterState,
    MatchReason,
    MatchSignal,
    NonOwnerPolicy,
    Outcome,
    PaymentMethodState,
    ReviewAction,
    ReviewDecision,
    ReviewStatus,
    SourceVersion,
    StewardAction,
    StewardDecision,
    SuspicionStrength,
    System,
    allowed_decisions,
    apply,
    decision_problem,
    equivalent,
    hold,
    mark_merged,
    merge,
    merge_problem,
    propagation_key,
    review_problem,
    settle,
    settle_review,
)
from domain.money import Money

CRM, BILLING, ERP = System.CRM, System.BILLING, System.ERP
F = MasterField
V = FieldVerdict
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
RECORD_IDS = {CRM: "001CRM", BILLING: "cus_BILL", ERP: "4711"}
BERLIN = Address(line1="Hauptstr. 1", city="Berlin", postal_code="10115", country="DE")
MUNICH = Address(line1="Marienplatz 8", city="München", postal_code="80331", country="DE")


def version(minute: int, sequence: int = 0) -> SourceVersion:
    return SourceVersion(modified_at=T0 + timedelta(minutes=minute), sequence=sequence)


def event(
    source: System,
    event_id: str,
    minute: int,
    changes: Mapping[MasterField, object],
    *,
    record_id: str | None = None,
    sequence: int = 0,
) -> ChangeEvent:
    return ChangeEvent.model_validate(
        {
            "source": source,
            "event_id": event_id,
            "record_id": record_id or RECORD_IDS[source],
            "version": version(minute, sequence),
            "changes": dict(changes),
        }
    )


def linked(golden_id: str = "G1", *systems: System) -> GoldenRecord:
    """A record already linked to a record in each of ``systems`` (all by default)."""
    return GoldenRecord(
        golden_id=golden_id,
        xref={s: (RECORD_IDS[s],) for s in (systems or tuple(System))},
    )


def replay(record: GoldenRecord, events: Iterable[ChangeEvent]) -> GoldenRecord:
    for e in events:
        record = apply(record, e).record
    return record


# --- the ownership table ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "owner"),
    [
        (F.NAME, CRM),
        (F.OWNER, CRM),
        (F.WEBSITE, CRM),
        (F.LEGAL_ENTITY, ERP),
        (F.TAX_ID, ERP),
        (F.CREDIT_LIMIT, ERP),
        (F.BILLING_ADDRESS, ERP),
        (F.PAYMENT_METHOD_STATE, BILLING),
        (F.EMAIL, BILLING),
    ],
)
def test_each_field_has_the_owner_the_issue_names(field: MasterField, owner: System):
    assert OWNERSHIP[field].owner is owner


def test_the_table_covers_every_field_and_never_lists_the_owner_as_a_copy():
    assert set(OWNERSHIP) == set(MasterField)
    for rule in OWNERSHIP.values():
        assert rule.owner not in rule.copies
        assert rule.why.strip()


def test_a_rule_cannot_make_the_owner_hold_a_copy():
    with pytest.raises(ValidationError, match="crm owns the field; it cannot also hold a copy"):
        FieldRule(owner=CRM, copies={CRM: NonOwnerPolicy.IGNORE}, why="x")


def test_a_system_holding_no_copy_is_ignored():
    assert OWNERSHIP[F.CREDIT_LIMIT].policy(BILLING) is NonOwnerPolicy.IGNORE
    assert OWNERSHIP[F.TAX_ID].policy(CRM) is NonOwnerPolicy.REVIEW


# --- change events ---------------------------------------------------------------------


def test_event_values_are_typed_per_field():
    e = event(
        ERP,
        "e1",
        0,
        {
            F.CREDIT_LIMIT: {"amount": "50000.00", "currency": "EUR"},
            F.BILLING_ADDRESS: BERLIN.model_dump(),
            F.NAME: "valid",
        },
    )
    assert e.changes[F.CREDIT_LIMIT] == Money(amount=Decimal("50000.00"), currency="EUR")
    assert e.changes[F.BILLING_ADDRESS] == BERLIN
    assert e.changes[F.NAME] == "valid"
    state = event(BILLING, "e2", 0, {F.PAYMENT_METHOD_STATE: "expired"})
    assert state.changes[F.PAYMENT_METHOD_STATE] is PaymentMethodState.EXPIRED


def test_event_changes_keep_the_field_order_whatever_the_input_order():
    e = event(CRM, "e1", 0, {F.WEBSITE: "acme.example", F.NAME: "Acme", F.OWNER: "maya@x.ex"})
    assert list(e.changes) == [F.NAME, F.OWNER, F.WEBSITE]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"colour": "red"}, "unknown field 'colour': expected one of name, owner,"),
        ({"credit_limit": {"amount": "-1", "currency": "EUR"}}, "a credit limit cannot be"),
        ({"credit_limit": {"amount": "1", "currency": "XXX"}}, "credit_limit: "),
        ({"name": "   "}, "name: String should have at least 1 character"),
        ({"name": None}, "name: "),
        ({"email": "not an address"}, "email: String should match pattern"),
        ({"payment_method_state": "lost"}, "payment_method_state: Input should be"),
        ({}, "a change event changes at least one field"),
    ],
)
def test_invalid_event_values_are_refused_naming_the_field(
    changes: dict[str, object], message: str
):
    with pytest.raises(ValidationError, match=message):
        ChangeEvent.model_validate(
            {
                "source": "crm",
                "event_id": "e1",
                "record_id": "001",
                "version": {"modified_at": T0},
                "changes": changes,
            }
        )


def test_a_source_version_needs_a_time_zone_and_is_kept_in_utc():
    with pytest.raises(ValidationError, match="timezone"):
        SourceVersion(modified_at=datetime(2026, 3, 1, 9, 0))
    cet = SourceVersion(
        modified_at=datetime(2026, 3, 1, 10, 0, tzinfo=timezone(timedelta(hours=1)))
    )
    assert cet == SourceVersion(modified_at=T0)
    assert cet.token() == "2026-03-01T09:00:00+00:00#0"


# --- owner changes ---------------------------------------------------------------------


def test_an_owner_change_is_applied_and_planned_for_the_systems_holding_a_copy():
    outcome = apply(linked(), event(CRM, "e1", 0, {F.NAME: "Acme", F.OWNER: "maya@seller.ex"}))
    assert outcome.verdicts == {F.NAME: V.APPLIED, F.OWNER: V.APPLIED}
    assert outcome.applied == [F.NAME, F.OWNER]
    record = outcome.record
    assert record.value(F.NAME) == "Acme"
    assert record.fields[F.NAME] == FieldState(
        field=F.NAME,
        value="Acme",
        source=CRM,
        record_id="001CRM",
        event_id="e1",
        version=version(0),
    )
    plan = {u.system: u for u in outcome.propagation}
    assert set(plan) == {BILLING, ERP}  # never back to the source
    assert plan[BILLING].fields == {F.NAME: "Acme"}  # billing holds no owner
    assert plan[ERP].fields == {F.NAME: "Acme", F.OWNER: "maya@seller.ex"}
    assert plan[ERP].record_ids == ("4711",)
    assert (plan[ERP].source, plan[ERP].source_record_id, plan[ERP].version) == (
        CRM,
        "001CRM",
        version(0),
    )
    assert record.state is MasterState.ACTIVE


def test_a_system_with_no_linked_record_gets_no_update():
    outcome = apply(linked("G1", CRM, ERP), event(CRM, "e1", 0, {F.NAME: "Acme"}))
    assert [u.system for u in outcome.propagation] == [ERP]


def test_the_source_record_is_linked_whatever_the_verdict():
    record = GoldenRecord(golden_id="G1")
    record = apply(record, event(BILLING, "e1", 0, {F.NAME: "card holder"})).record
    record = apply(record, event(CRM, "e2", 0, {F.NAME: "Acme"}, record_id="001B")).record
    record = apply(record, event(CRM, "e3", 0, {F.NAME: "Acme"}, record_id="001A")).record
    assert record.xref == {CRM: ("001A", "001B"), BILLING: ("cus_BILL",)}


def test_an_older_owner_change_is_stale_and_changes_nothing():
    newer = apply(linked(), event(ERP, "e2", 5, {F.TAX_ID: "DE999999999"})).record
    outcome = apply(newer, event(ERP, "e1", 1, {F.TAX_ID: "DE123456789"}))
    assert outcome.verdicts == {F.TAX_ID: V.STALE}
    assert outcome.propagation == ()
    assert outcome.record.fields == newer.fields
    assert outcome.record.value(F.TAX_ID) == "DE999999999"


def test_an_out_of_order_pair_ends_the_same_in_both_orders():
    old = event(CRM, "e1", 1, {F.NAME: "Acme Old"})
    new = event(CRM, "e2", 2, {F.NAME: "Acme New"})
    in_order = replay(linked(), [old, new])
    reversed_ = replay(linked(), [new, old])
    assert in_order == reversed_
    assert in_order.value(F.NAME) == "Acme New"


def test_equal_versions_are_ordered_by_event_id_whatever_the_arrival():
    a = event(CRM, "evt-a", 1, {F.NAME: "Acme A"})
    b = event(CRM, "evt-b", 1, {F.NAME: "Acme B"})
    assert replay(linked(), [a, b]).value(F.NAME) == "Acme B"
    assert replay(linked(), [b, a]).value(F.NAME) == "Acme B"
    assert apply(replay(linked(), [b]), a).verdicts == {F.NAME: V.STALE}


def test_a_sequence_orders_changes_within_one_instant():
    first = event(ERP, "z-first", 1, {F.LEGAL_ENTITY: "Acme AG"}, sequence=1)
    second = event(ERP, "a-second", 1, {F.LEGAL_ENTITY: "Acme SE"}, sequence=2)
    assert replay(linked(), [second, first]).value(F.LEGAL_ENTITY) == "Acme SE"


def test_the_same_value_in_a_newer_version_is_unchanged_but_recorded():
    record = apply(linked(), event(CRM, "e1", 1, {F.NAME: "Acme"})).record
    outcome = apply(record, event(CRM, "e2", 2, {F.NAME: "Acme"}))
    assert outcome.verdicts == {F.NAME: V.UNCHANGED}
    assert outcome.propagation == ()
    assert outcome.record.fields[F.NAME].version == version(2)
    # so that a change between the two, arriving late, is stale
    late = apply(outcome.record, event(CRM, "e3", 1, {F.NAME: "Acme Old"}, sequence=1))
    assert late.verdicts == {F.NAME: V.STALE}


def test_an_owner_may_clear_a_field_and_the_clear_is_propagated():
    record = apply(
        linked(), event(ERP, "e1", 1, {F.CREDIT_LIMIT: Money(amount=Decimal(5000), currency="EUR")})
    ).record
    outcome = apply(record, event(ERP, "e2", 2, {F.CREDIT_LIMIT: None}))
    assert outcome.verdicts == {F.CREDIT_LIMIT: V.APPLIED}
    assert [(u.system, u.fields) for u in outcome.propagation] == [(CRM, {F.CREDIT_LIMIT: None})]
    assert outcome.record.value(F.CREDIT_LIMIT) is None


def test_money_is_compared_by_amount_not_by_how_it_is_written():
    record = apply(
        linked(), event(ERP, "e1", 1, {F.CREDIT_LIMIT: {"amount": "1000", "currency": "EUR"}})
    ).record
    outcome = apply(
        record, event(ERP, "e2", 2, {F.CREDIT_LIMIT: {"amount": "1000.00", "currency": "EUR"}})
    )
    assert outcome.verdicts == {F.CREDIT_LIMIT: V.UNCHANGED}
    other = apply(
        record, event(ERP, "e3", 2, {F.CREDIT_LIMIT: {"amount": "1000", "currency": "USD"}})
    )
    assert other.verdicts == {F.CREDIT_LIMIT: V.APPLIED}


# --- non-owner changes -----------------------------------------------------------------


def test_a_non_owner_change_under_ignore_changes_nothing():
    record = apply(linked(), event(CRM, "e1", 1, {F.NAME: "Acme"})).record
    outcome = apply(record, event(BILLING, "e2", 2, {F.NAME: "Jane Doe", F.CREDIT_LIMIT: None}))
    assert outcome.verdicts == {F.NAME: V.NOT_OWNER_IGNORED, F.CREDIT_LIMIT: V.UNCHANGED}
    assert outcome.reviews == ()
    assert outcome.propagation == ()
    assert outcome.record.fields == record.fields
    assert outcome.record.proposals == {}
    assert outcome.record.state is MasterState.ACTIVE


def test_a_non_owner_change_under_review_is_queued_for_a_steward():
    record = apply(linked(), event(ERP, "e1", 1, {F.TAX_ID: "DE123456789"})).record
    outcome = apply(record, event(CRM, "e2", 2, {F.TAX_ID: "DE 987 654 321", F.NAME: "Acme"}))
    assert outcome.verdicts == {F.NAME: V.APPLIED, F.TAX_ID: V.NOT_OWNER_REVIEW}
    assert outcome.record.value(F.TAX_ID) == "DE123456789"
    [item] = outcome.reviews
    assert (item.field, item.system, item.owner) == (F.TAX_ID, CRM, ERP)
    assert (item.proposed, item.current) == ("DE 987 654 321", "DE123456789")
    assert (item.record_id, item.event_id, item.version) == ("001CRM", "e2", version(2))
    assert outcome.record.open_reviews() == (item,)
    assert outcome.record.state is MasterState.NEEDS_REVIEW
    assert [u.fields for u in outcome.propagation] == [{F.NAME: "Acme"}, {F.NAME: "Acme"}]


def test_a_non_owner_echo_of_the_golden_value_is_unchanged_and_raises_no_review():
    record = apply(linked(), event(ERP, "e1", 1, {F.TAX_ID: "DE123456789"})).record
    outcome = apply(record, event(CRM, "e2", 2, {F.TAX_ID: "de 123.456.789"}))
    assert outcome.verdicts == {F.TAX_ID: V.UNCHANGED}
    assert outcome.reviews == ()
    assert outcome.record.state is MasterState.ACTIVE


def test_a_non_owner_change_older_than_the_owners_value_is_stale():
    record = apply(linked(), event(ERP, "e1", 5, {F.BILLING_ADDRESS: MUNICH})).record
    outcome = apply(record, event(BILLING, "e2", 3, {F.BILLING_ADDRESS: BERLIN}))
    assert outcome.verdicts == {F.BILLING_ADDRESS: V.STALE}
    assert outcome.record.open_reviews() == ()


def test_an_owner_change_after_a_proposal_closes_it():
    record = apply(linked(), event(CRM, "e1", 3, {F.TAX_ID: "DE987654321"})).record
    assert record.state is MasterState.NEEDS_REVIEW
    record = apply(record, event(ERP, "e2", 5, {F.TAX_ID: "DE123456789"})).record
    assert record.open_reviews() == ()
    assert record.state is MasterState.ACTIVE


def test_an_older_proposal_than_the_systems_last_is_stale():
    record = apply(linked(), event(CRM, "e2", 5, {F.EMAIL: "ap@acme.example"})).record
    outcome = apply(record, event(CRM, "e1", 4, {F.EMAIL: "old@acme.example"}))
    assert outcome.verdicts == {F.EMAIL: V.STALE}
    [item] = outcome.record.open_reviews()
    assert item.proposed == "ap@acme.example"


def test_a_newer_proposal_replaces_the_systems_earlier_one():
    record = apply(linked(), event(CRM, "e1", 4, {F.EMAIL: "old@acme.example"})).record
    record = apply(record, event(CRM, "e2", 5, {F.EMAIL: "ap@acme.example"})).record
    assert [r.proposed for r in record.open_reviews()] == ["ap@acme.example"]


@pytest.mark.parametrize(
    ("field", "a", "b", "same"),
    [
        (F.TAX_ID, "DE 123.456.789", "de123456789", True),
        (F.TAX_ID, "DE123456789", "DE123456780", False),
        (F.WEBSITE, "https://www.acme.example/", "acme.example", True),
        (F.EMAIL, "AP@Acme.example", "ap@acme.example", True),
        (F.NAME, "Acme  Corp", "acme corp", True),
        (F.NAME, "Acme Corp", "Acme Inc", False),
        (F.CREDIT_LIMIT, Money(amount=Decimal(1), currency="EUR"), None, False),
        (F.BILLING_ADDRESS, BERLIN, BERLIN.model_copy(), True),
        (F.TAX_ID, None, None, True),
    ],
)
def test_equivalent_values(field: MasterField, a: FieldValue, b: FieldValue, same: bool):
    assert equivalent(field, a, b) is same


# --- dedupe ----------------------------------------------------------------------------


def test_a_duplicate_event_id_is_a_whole_event_verdict_and_changes_nothing():
    e = event(CRM, "e1", 1, {F.NAME: "Acme"})
    first = apply(linked(), e)
    again = apply(first.record, e.model_copy(update={"changes": {F.NAME: "Other"}}))
    assert again == Outcome(record=first.record, duplicate=True, verdicts={})


def test_event_ids_are_deduplicated_per_system():
    record = apply(linked(), event(CRM, "1", 1, {F.NAME: "Acme"})).record
    outcome = apply(record, event(ERP, "1", 1, {F.TAX_ID: "DE123456789"}))
    assert not outcome.duplicate
    assert outcome.verdicts == {F.TAX_ID: V.APPLIED}


def test_the_seen_set_keeps_the_newest_events_up_to_its_bound():
    assert GoldenRecord(golden_id="G1").seen_limit == SEEN_EVENTS_KEPT == 500
    record = GoldenRecord(golden_id="G1", seen_limit=3)
    events = [event(CRM, f"e{m}", m, {F.NAME: f"Acme {m}"}) for m in (4, 1, 5, 2, 3)]
    record = replay(record, events)
    assert [s.event_id for s in record.seen] == ["e3", "e4", "e5"]


def test_an_event_redelivered_after_its_id_was_forgotten_is_still_harmless():
    record = GoldenRecord(golden_id="G1", seen_limit=1, xref={ERP: ("4711",)})
    old = event(CRM, "e1", 1, {F.NAME: "Acme", F.TAX_ID: "DE987654321"})
    record = replay(record, [old, event(CRM, "e2", 2, {F.OWNER: "li@seller.ex"})])
    assert not record.has_seen(CRM, "e1")
    again = apply(record, old)
    assert not again.duplicate
    assert again.verdicts == {F.NAME: V.UNCHANGED, F.TAX_ID: V.UNCHANGED}
    assert again.propagation == ()
    assert again.reviews == ()
    assert again.record.fields == record.fields
    assert again.record.proposals == record.proposals


# --- idempotency keys ------------------------------------------------------------------


def test_propagation_keys_are_stable_for_the_same_change():
    changes = {F.NAME: "Acme", F.OWNER: "maya@seller.ex"}
    one = apply(linked(), event(CRM, "e1", 1, changes)).propagation
    # the same source change, delivered under another event id, fields in another order
    two = apply(linked(), event(CRM, "e9", 1, dict(reversed(changes.items())))).propagation
    assert [u.idempotency_key for u in one] == [u.idempotency_key for u in two]
    key = propagation_key("G1", ERP, [F.OWNER, F.NAME], CRM, "001CRM", version(1))
    assert [u.idempotency_key for u in one if u.system is ERP] == [key]
    assert key.startswith("cm-G1:erp:")
    assert len(key) == len("cm-G1:erp:") + 32


@pytest.mark.parametrize(
    "other",
    [
        ("G2", ERP, [F.NAME], CRM, "001CRM", version(1)),
        ("G1", BILLING, [F.NAME], CRM, "001CRM", version(1)),
        ("G1", ERP, [F.NAME, F.OWNER], CRM, "001CRM", version(1)),
        ("G1", ERP, [F.NAME], CRM, "001OTHER", version(1)),
        ("G1", ERP, [F.NAME], CRM, "001CRM", version(2)),
        ("G1", ERP, [F.NAME], CRM, "001CRM", version(1, 1)),
    ],
)
def test_propagation_keys_differ_for_a_different_update(
    other: tuple[str, System, list[MasterField], System, str, SourceVersion],
):
    assert propagation_key("G1", ERP, [F.NAME], CRM, "001CRM", version(1)) != propagation_key(
        *other
    )


# --- order independence (property) -----------------------------------------------------

VALUES: dict[MasterField, list[FieldValue]] = {
    F.NAME: ["Acme", "Acme Corp", "Globex"],
    F.OWNER: ["maya@seller.ex", "li@seller.ex", None],
    F.WEBSITE: ["https://acme.example", "acme.example", None],
    F.EMAIL: ["ap@acme.example", "AP@acme.example", "billing@globex.example", None],
    F.LEGAL_ENTITY: ["Acme GmbH", "Acme Holdings GmbH", None],
    F.TAX_ID: ["DE123456789", "DE 123.456.789", "DE999999999", None],
    F.CREDIT_LIMIT: [
        Money(amount=Decimal("1000"), currency="EUR"),
        Money(amount=Decimal("1000.00"), currency="EUR"),
        Money(amount=Decimal("5000"), currency="EUR"),
        None,
    ],
    F.BILLING_ADDRESS: [BERLIN, MUNICH, None],
    F.PAYMENT_METHOD_STATE: [*PaymentMethodState, None],
}
SOURCE_RECORDS = {CRM: ["001A", "001B"], BILLING: ["cus_A"], ERP: ["4711", "4712"]}


@st.composite
def change_events(draw: st.DrawFn, max_size: int = 10) -> list[ChangeEvent]:
    count = draw(st.integers(min_value=1, max_value=max_size))
    events = []
    for i in range(count):
        source = draw(st.sampled_from(list(System)))
        fields = draw(
            st.lists(st.sampled_from(list(MasterField)), min_size=1, max_size=4, unique=True)
        )
        events.append(
            ChangeEvent(
                source=source,
                event_id=f"evt-{i}",
                record_id=draw(st.sampled_from(SOURCE_RECORDS[source])),
                # few distinct instants, so that ties and cross-system order both occur
                version=version(draw(st.integers(0, 4)), draw(st.integers(0, 1))),
                changes={f: draw(st.sampled_from(VALUES[f])) for f in fields},
            )
        )
    return events


@settings(deadline=None, max_examples=150)
@given(data=st.data())
def test_the_final_record_does_not_depend_on_arrival_order(data: st.DataObject):
    events = data.draw(change_events())
    redelivered = data.draw(st.lists(st.sampled_from(events), max_size=3))
    arrival = data.draw(st.permutations([*events, *redelivered]))
    start = GoldenRecord(golden_id="G1", seen_limit=data.draw(st.sampled_from([2, 500])))
    expected = replay(start, events)
    final = replay(start, arrival)
    assert final == expected
    assert final.model_dump_json() == expected.model_dump_json()
    # and delivering everything again changes nothing
    assert replay(final, events) == final


@settings(deadline=None, max_examples=100)
@given(data=st.data())
def test_merging_two_records_equals_applying_all_their_events_to_one(data: st.DataObject):
    events = data.draw(change_events())
    to_survivor = data.draw(st.lists(st.booleans(), min_size=len(events), max_size=len(events)))
    survivor = replay(
        GoldenRecord(golden_id="G1"), [e for e, s in zip(events, to_survivor, strict=True) if s]
    )
    absorbed = replay(
        GoldenRecord(golden_id="G2"), [e for e, s in zip(events, to_survivor, strict=True) if not s]
    )
    merged = merge(survivor, absorbed)
    assert merged.model_copy(update={"absorbed": ()}) == replay(
        GoldenRecord(golden_id="G1"), events
    )
    assert merged.absorbed == ("G2",)
    mirrored = merge(absorbed, survivor)
    assert (mirrored.fields, mirrored.proposals, mirrored.xref, mirrored.seen) == (
        merged.fields,
        merged.proposals,
        merged.xref,
        merged.seen,
    )


# --- serialisation (workflow state) ----------------------------------------------------


def full_record() -> GoldenRecord:
    crm = {F.NAME: "Acme", F.OWNER: "maya@seller.ex", F.WEBSITE: "acme.example"}
    erp = {
        F.TAX_ID: "DE123456789",
        F.BILLING_ADDRESS: BERLIN,
        F.CREDIT_LIMIT: Money(amount=Decimal("50000.00"), currency="EUR"),
        F.LEGAL_ENTITY: "Acme GmbH",
    }
    billing = {
        F.PAYMENT_METHOD_STATE: "failing",
        F.EMAIL: "ap@acme.example",
        F.BILLING_ADDRESS: MUNICH,
    }
    record = replay(
        linked(),
        [
            event(CRM, "e1", 1, crm),
            event(ERP, "e2", 2, erp),
            event(BILLING, "e3", 3, billing),
            event(CRM, "e4", 4, {F.TAX_ID: "DE987654321"}),
        ],
    )
    suspicion = DuplicateSuspicion(
        golden_id="G1",
        candidate="G7",
        strength=SuspicionStrength.STRONG,
        reasons=(MatchReason(signal=MatchSignal.SAME_TAX_ID, detail="tax id DE123456789"),),
    )
    return hold(record, [suspicion]).model_copy(update={"kept_separate": ("G3",)})


def test_a_record_survives_json_and_the_temporal_converter_unchanged():
    record = full_record()
    assert len(record.open_reviews()) == 2
    assert GoldenRecord.model_validate_json(record.model_dump_json()) == record
    converter = pydantic_data_converter.payload_converter
    [back] = converter.from_payloads(converter.to_payloads([record]), [GoldenRecord])
    assert back == record
    assert isinstance(back.value(F.CREDIT_LIMIT), Money)
    assert isinstance(back.value(F.BILLING_ADDRESS), Address)
    assert back.value(F.PAYMENT_METHOD_STATE) is PaymentMethodState.FAILING
    assert back.proposals[F.BILLING_ADDRESS][BILLING].value == MUNICH
    assert back.open_reviews() == record.open_reviews()


def test_an_outcome_survives_the_temporal_converter():
    outcome = apply(full_record(), event(CRM, "e5", 5, {F.NAME: "Acme Corp"}))
    converter = pydantic_data_converter.payload_converter
    [back] = converter.from_payloads(converter.to_payloads([outcome]), [Outcome])
    assert back == outcome


def test_a_record_refuses_a_golden_value_from_a_non_owner():
    state = FieldState(
        field=F.NAME, value="x", source=BILLING, record_id="c", event_id="e", version=version(0)
    )
    with pytest.raises(ValidationError, match="name is owned by crm; a value from billing"):
        GoldenRecord(golden_id="G1", fields={F.NAME: state})


def test_golden_ids_are_safe_in_workflow_ids_and_keys():
    assert GoldenRecord(golden_id="cust_42.eu-1").workflow_id == "customer-cust_42.eu-1"
    for bad in ("", "G:1", "G 1", "-G1", "x" * 65):
        with pytest.raises(ValidationError):
            GoldenRecord(golden_id=bad)


# --- steward: proposals ----------------------------------------------------------------


def proposed_tax_id() -> GoldenRecord:
    record = apply(linked(), event(ERP, "e1", 1, {F.TAX_ID: "DE123456789"})).record
    return apply(record, event(CRM, "e2", 2, {F.TAX_ID: "DE987654321"})).record


def review(
    action: ReviewAction, field: MasterField = F.TAX_ID, system: System = CRM
) -> ReviewDecision:
    return ReviewDecision(
        field=field, system=system, action=action, steward="sam@ops.ex", note="checked VIES"
    )


def test_a_dismissed_proposal_stays_dismissed_until_the_system_proposes_something_else():
    settled = settle_review(proposed_tax_id(), review(ReviewAction.DISMISS))
    assert settled.update is None
    record = settled.record
    assert record.state is MasterState.ACTIVE
    assert record.proposals[F.TAX_ID][CRM].status is ReviewStatus.DISMISSED
    assert record.proposals[F.TAX_ID][CRM].steward == "sam@ops.ex"
    # CRM re-sends its whole record: the same value, a newer version
    outcome = apply(record, event(CRM, "e3", 3, {F.TAX_ID: "DE 987 654 321"}))
    assert outcome.verdicts == {F.TAX_ID: V.UNCHANGED}
    assert outcome.reviews == ()
    resent = outcome.record
    assert resent.state is MasterState.ACTIVE
    assert resent.proposals[F.TAX_ID][CRM].status is ReviewStatus.DISMISSED
    changed = apply(resent, event(CRM, "e4", 4, {F.TAX_ID: "DE111111111"})).record
    assert [r.proposed for r in changed.open_reviews()] == ["DE111111111"]


def test_an_accepted_proposal_is_written_to_the_owner_with_a_stable_key():
    settled = settle_review(proposed_tax_id(), review(ReviewAction.ACCEPT))
    assert settled.record.state is MasterState.ACTIVE
    assert settled.record.value(F.TAX_ID) == "DE123456789"  # until ERP reports the change
    update = settled.update
    assert update is not None
    assert (update.system, update.record_ids, update.fields) == (
        ERP,
        ("4711",),
        {F.TAX_ID: "DE987654321"},
    )
    assert update.idempotency_key == propagation_key(
        "G1", ERP, [F.TAX_ID], CRM, "001CRM", version(2)
    )
    assert settle_review(proposed_tax_id(), review(ReviewAction.ACCEPT)).update == update


def test_review_decisions_are_refused_with_a_precise_message():
    record = proposed_tax_id()
    assert review_problem(record, review(ReviewAction.DISMISS, F.EMAIL)) == (
        "no open review of email from crm; open: tax_id from crm"
    )
    closed = settle_review(record, review(ReviewAction.DISMISS)).record
    assert review_problem(closed, review(ReviewAction.ACCEPT)) == (
        "no open review of tax_id from crm; open: none"
    )
    unlinked = apply(
        apply(
            linked("G1", CRM), event(ERP, "e1", 1, {F.TAX_ID: "DE1"}, record_id="4711")
        ).record.model_copy(update={"xref": {CRM: ("001CRM",)}}),
        event(CRM, "e2", 2, {F.TAX_ID: "DE2"}),
    ).record
    assert review_problem(unlinked, review(ReviewAction.ACCEPT)) == (
        "cannot accept: no erp record is linked to receive tax_id; dismiss it or wait for the "
        "erp record"
    )
    assert review_problem(unlinked, review(ReviewAction.DISMISS)) is None
    with pytest.raises(ValueError, match="no open review of email"):
        settle_review(record, review(ReviewAction.DISMISS, F.EMAIL))


# --- steward: duplicates ---------------------------------------------------------------


def suspicion(golden_id: str, candidate: str) -> DuplicateSuspicion:
    return DuplicateSuspicion(
        golden_id=golden_id,
        candidate=candidate,
        strength=SuspicionStrength.SUSPECTED,
        reasons=(MatchReason(signal=MatchSignal.SAME_DOMAIN, detail="domain acme.example"),),
    )


def decision(
    action: StewardAction, candidate: str = "G2", into: str | None = None
) -> StewardDecision:
    return StewardDecision(
        action=action, candidate=candidate, into=into, steward="sam@ops.ex", note="same VAT"
    )


def held(*candidates: str) -> GoldenRecord:
    return hold(linked(), [suspicion("G1", c) for c in candidates])


def test_holding_a_suspicion_needs_review():
    record = held("G3", "G2")
    assert record.state is MasterState.NEEDS_REVIEW
    assert [s.candidate for s in record.suspicions] == ["G2", "G3"]
    assert allowed_decisions(record) == [StewardAction.MERGE, StewardAction.KEEP_SEPARATE]
    assert allowed_decisions(linked()) == []


def test_a_pair_kept_separate_is_not_held_again():
    record = settle(held("G2"), decision(StewardAction.KEEP_SEPARATE))
    assert record.state is MasterState.ACTIVE
    assert record.kept_separate == ("G2",)
    assert hold(record, [suspicion("G1", "G2")]).state is MasterState.ACTIVE


def test_a_suspicion_about_another_record_is_refused():
    with pytest.raises(ValueError, match="a suspicion about G9 cannot be held by G1"):
        hold(linked(), [suspicion("G9", "G2")])


@pytest.mark.parametrize(
    ("record", "chosen", "message"),
    [
        (linked(), decision(StewardAction.MERGE, into="G2"),
         "no duplicate suspicion is held for G1: nothing to merge or keep separate"),
        (linked(), decision(StewardAction.KEEP_SEPARATE),
         "no duplicate suspicion is held for G1: nothing to merge or keep separate"),
        (held("G2", "G3"), decision(StewardAction.KEEP_SEPARATE, candidate="G4"),
         "G1 is not held as a possible duplicate of G4; held: G2, G3"),
        (held("G2"), decision(StewardAction.MERGE, into="G3"),
         "merging G1 and G2 keeps one of them: into must be G1 or G2, not G3"),
        (linked().model_copy(update={"merged_into": "G2"}), decision(StewardAction.KEEP_SEPARATE),
         "G1 was merged into G2; decide on G2"),
    ],
)  # fmt: skip
def test_steward_decisions_are_refused_in_the_wrong_state(
    record: GoldenRecord, chosen: StewardDecision, message: str
):
    assert decision_problem(record, chosen) == message
    with pytest.raises(ValueError, match=message):
        settle(record, chosen)


def test_a_record_waiting_only_on_a_proposal_has_no_duplicate_to_decide():
    record = proposed_tax_id()
    assert record.state is MasterState.NEEDS_REVIEW
    assert decision_problem(record, decision(StewardAction.KEEP_SEPARATE)) == (
        "no duplicate suspicion is held for G1: nothing to merge or keep separate"
    )


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"action": "merge", "candidate": "G2"}, "a merge names the surviving golden id in `into`"),
        (
            {"action": "keep_separate", "candidate": "G2", "into": "G2"},
            "keep_separate keeps both records",
        ),
        ({"action": "merge", "candidate": "G2", "into": "G2", "note": "  "}, "note"),
        ({"action": "split", "candidate": "G2"}, "action"),
    ],
)
def test_a_malformed_decision_is_refused(payload: dict[str, str], message: str):
    with pytest.raises(ValidationError, match=message):
        StewardDecision.model_validate({"steward": "sam@ops.ex", "note": "why", **payload})


def test_merging_into_the_candidate_marks_this_record_merged():
    record = settle(held("G2", "G3"), decision(StewardAction.MERGE, into="G2"))
    assert record.state is MasterState.MERGED
    assert record.merged_into == "G2"
    # the survivor inherits the suspicion about G3 when it merges this record in
    assert [s.candidate for s in record.suspicions] == ["G3"]
    assert allowed_decisions(record) == []
    assert decision_problem(record, decision(StewardAction.KEEP_SEPARATE, candidate="G3")) == (
        "G1 was merged into G2; decide on G2"
    )
    with pytest.raises(ValueError, match="G1 was merged into G2"):
        hold(record, [suspicion("G1", "G4")])
    with pytest.raises(ValueError, match="G1 was merged into G2: apply the event to G2"):
        apply(record, event(CRM, "e9", 9, {F.NAME: "Acme"}))


def test_merging_into_this_record_absorbs_the_candidate():
    survivor = replay(
        held("G2", "G3"),
        [event(CRM, "e1", 1, {F.NAME: "Acme"}), event(ERP, "e2", 1, {F.TAX_ID: "DE1"})],
    )
    survivor = settle(survivor, decision(StewardAction.MERGE, into="G1"))
    assert [s.candidate for s in survivor.suspicions] == ["G3"]
    candidate = replay(
        hold(GoldenRecord(golden_id="G2"), [suspicion("G2", "G1"), suspicion("G2", "G5")]),
        [
            event(CRM, "c1", 5, {F.NAME: "ACME Corp"}, record_id="001DUP"),
            event(ERP, "c2", 0, {F.TAX_ID: "DE0"}, record_id="4799"),
            event(BILLING, "c3", 3, {F.PAYMENT_METHOD_STATE: "valid"}, record_id="cus_DUP"),
        ],
    )
    absorbed = mark_merged(candidate, "G1")
    assert absorbed.state is MasterState.MERGED
    merged = merge(survivor, absorbed)
    assert merged.golden_id == "G1"
    assert merged.merged_into is None
    assert merged.value(F.NAME) == "ACME Corp"  # the newer CRM value
    assert merged.value(F.TAX_ID) == "DE1"  # the newer ERP value
    assert merged.value(F.PAYMENT_METHOD_STATE) is PaymentMethodState.VALID
    assert merged.xref == {
        CRM: ("001CRM", "001DUP"),
        BILLING: ("cus_BILL", "cus_DUP"),
        ERP: ("4711", "4799"),
    }
    assert merged.absorbed == ("G2",)
    assert [(s.golden_id, s.candidate) for s in merged.suspicions] == [("G1", "G3"), ("G1", "G5")]
    assert merged.state is MasterState.NEEDS_REVIEW


def test_merge_refusals_are_precise():
    a, b = linked("G1"), linked("G2")
    assert merge_problem(a, a) == "G1 cannot be merged into itself"
    gone = mark_merged(a, "G9")
    assert merge_problem(gone, b) == "G1 was itself merged into G9: merge into G9"
    assert merge_problem(b, gone) == "G1 was already merged into G9"
    assert merge_problem(linked("G9"), gone) is None
    with pytest.raises(ValueError, match="G1 was already merged into G9"):
        mark_merged(gone, "G2")
    with pytest.raises(ValueError, match="G1 cannot be merged into itself"):
        mark_merged(a, "G1")
