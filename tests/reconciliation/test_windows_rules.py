"""Which subjects a window judges (domain/reconciliation_windows.py, pure): a created window
judges a subject once, in the window of its owner's first record; a changed window leaves a
subject changed after its end to a later window; lookups ask only what is not known; window
spans adapt to what the last window held."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domain.reconciliation import Basis, System, Window
from domain.reconciliation_windows import (
    Entity,
    WindowRecords,
    next_span,
    read_order,
    sources,
    split_span,
)
from tests.reconciliation.window_fakes import order

T = datetime(2025, 6, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
CREATED = Window(basis=Basis.CREATED, start=T, end=T + HOUR)
CHANGED = Window(basis=Basis.CHANGED, start=T, end=T + HOUR)


def test_a_created_window_judges_a_subject_in_its_owners_window_only():
    window = WindowRecords(Entity.ORDERS, CREATED)
    # Q1: every record made in the window; Q2: billing made it here, the ERP an hour
    # before (the ERP's window owns it); Q3: only the CRM holds it, made here.
    window.add_listed(System.ERP, [order(System.ERP, "Q1", "so-1", T)])
    window.add_listed(
        System.BILLING,
        [order(System.BILLING, "Q1", "sub-1", T), order(System.BILLING, "Q2", "sub-2", T)],
    )
    window.add_listed(
        System.CRM, [order(System.CRM, "Q1", "801-1", T), order(System.CRM, "Q3", "801-3", T)]
    )
    asks = window.owner_lookups()
    assert asks == {System.ERP: ["Q2", "Q3"]}  # the earliest system first, once each
    window.add_found(System.ERP, ["Q2", "Q3"], [order(System.ERP, "Q2", "so-2", T - HOUR)])
    assert window.owner_lookups() == {System.BILLING: ["Q3"]}
    window.add_found(System.BILLING, ["Q3"], [])
    assert window.owner_lookups() == {}
    assert window.judged() == ["Q1", "Q3"]
    # Q1 was listed everywhere: nothing to complete; Q3 is missing only where it was asked.
    assert window.completion_lookups(["Q1", "Q3"]) == {}


def test_a_changed_window_leaves_a_later_change_to_a_later_window():
    window = WindowRecords(Entity.ORDERS, CHANGED)
    window.add_listed(
        System.CRM,
        [order(System.CRM, "Q1", "801-1", T), order(System.CRM, "Q2", "801-2", T + HOUR / 2)],
    )
    assert window.owner_lookups() == {}  # changed windows judge what they list
    assert window.completion_lookups(window.judged()) == {
        System.ERP: ["Q1", "Q2"],
        System.BILLING: ["Q1", "Q2"],
    }
    late = order(System.ERP, "Q2", "so-2", T, changed_at=T + 2 * HOUR)
    window.add_found(System.ERP, ["Q1", "Q2"], [order(System.ERP, "Q1", "so-1", T), late])
    window.add_found(System.BILLING, ["Q1", "Q2"], [])
    assert window.judged() == ["Q1"]
    window.note_late_saga("Q1")
    assert window.judged() == []


def test_a_record_listed_twice_is_kept_once_as_its_latest_change_shows_it():
    window = WindowRecords(Entity.ORDERS, CHANGED)
    newer = order(System.BILLING, "Q1", "sub-1", T, changed_at=T + HOUR / 2, status="past_due")
    older = order(System.BILLING, "Q1", "sub-1", T, changed_at=T + HOUR / 4)
    assert window.add_listed(System.BILLING, [newer]) == 1
    assert window.add_listed(System.BILLING, [older]) == 0
    assert window.held(System.BILLING, "Q1") == [newer]


def test_customers_are_walked_from_the_erp_and_billing_and_counted_sources_read_first():
    assert sources(Entity.CUSTOMERS, Basis.CREATED) == (System.ERP, System.BILLING)
    assert sources(Entity.CUSTOMERS, Basis.CHANGED) == (System.ERP, System.BILLING, System.CRM)
    assert read_order(Entity.INVOICES, Basis.CREATED) == (System.ERP, System.BILLING)
    assert read_order(Entity.ORDERS, Basis.CHANGED) == (System.ERP, System.CRM, System.BILLING)


def test_window_spans_aim_at_the_target_within_bounds():
    assert next_span(3600, 0, 2500) == 4 * 3600  # empty: four times longer
    assert next_span(3600, 5000, 2500) == 1800
    assert next_span(3600, 100_000, 2500) == 900  # at most a quarter shorter
    assert next_span(1, 10_000, 2500) == 1  # never below a second
    assert split_span(86_400, 10_000, 2500) == 21_600
    assert split_span(86_400, 5_001, 2500) == 43_191
    assert split_span(1, 10**6, 2500) == 1
