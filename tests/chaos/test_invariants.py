"""The chaos run's invariants on hand-made snapshots: one clean run, then one per violation."""

from __future__ import annotations

from typing import Any

import pytest

from chaos.invariants import Kind, SagaView, Violation, check, index_records

ACCOUNT = "0015e00000AcmeUS1"


def erp_order(quote: str, order_id: str, status: str = "B") -> dict[str, Any]:
    return {
        "id": order_id,
        "externalId": f"q2c-{quote}:erp-order",
        "otherRefNum": quote,
        "orderStatus": status,
    }


def subscription(quote: str, sub_id: str, status: str = "active") -> dict[str, Any]:
    return {
        "id": sub_id,
        "status": status,
        "metadata": {"revsync_key": f"q2c-{quote}:subscription", "quote_id": quote},
    }


def crm_order(quote: str, crm_id: str, order_id: str, sub_id: str) -> dict[str, Any]:
    return {
        "Id": crm_id,
        "SBQQ__Quote__c": quote,
        "Revsync_Key__c": f"q2c-{quote}:crm-order",
        "ERP_Order_Id__c": order_id,
        "Billing_Subscription_Id__c": sub_id,
        "Status": "Activated",
    }


def crm_quote(quote: str, status: str) -> dict[str, Any]:
    return {"Id": quote, "SBQQ__Status__c": status, "SBQQ__Ordered__c": status == "Ordered"}


def snapshot(
    *,
    erp_orders: list[dict[str, Any]] | None = None,
    subscriptions: list[dict[str, Any]] | None = None,
    crm_orders: list[dict[str, Any]] | None = None,
    crm_quotes: list[dict[str, Any]] | None = None,
    billing_customers: int = 1,
    erp_customers: int = 1,
) -> dict[str, Any]:
    return {
        "netsuite": {
            "salesOrders": erp_orders or [],
            "customers": [
                {"id": str(n), "externalId": f"acct-{ACCOUNT}"} for n in range(erp_customers)
            ],
        },
        "stripe": {
            "subscriptions": subscriptions or [],
            "customers": [
                {"id": f"cus_{n}", "metadata": {"revsync_account_id": ACCOUNT}}
                for n in range(billing_customers)
            ],
        },
        "salesforce": {"orders": crm_orders or [], "quotes": crm_quotes or []},
    }


def booked(quote: str, order_id: str = "7001", sub_id: str = "sub_1", crm_id: str = "801X"):
    saga = SagaView(
        quote, "BOOKED", erp_order_id=order_id, subscription_id=sub_id, crm_order_id=crm_id
    )
    records = {
        "erp_orders": [erp_order(quote, order_id)],
        "subscriptions": [subscription(quote, sub_id)],
        "crm_orders": [crm_order(quote, crm_id, order_id, sub_id)],
        "crm_quotes": [crm_quote(quote, "Ordered")],
    }
    return saga, records


def clean_run() -> tuple[list[str], dict[str, SagaView | None], dict[str, Any]]:
    """Every outcome a chaos run may end in, each with the records it should leave."""
    saga, records = booked("Q-BOOKED")
    sagas: dict[str, SagaView | None] = {
        "Q-BOOKED": saga,
        "Q-COMP": SagaView("Q-COMP", "COMPENSATED", reason="card declined"),
        "Q-REJ": SagaView("Q-REJ", "REJECTED", reason="no tax id"),
        "Q-PARKED": SagaView(
            "Q-PARKED", "NEEDS_ATTENTION", reason="update_crm: refused", parked_step="update_crm"
        ),
        "Q-WAIT": SagaView("Q-WAIT", "AWAITING_APPROVAL"),
    }
    state = snapshot(
        erp_orders=[
            *records["erp_orders"],
            # Compensated: the approved order's lines were closed (NetSuite's Closed).
            erp_order("Q-COMP", "7002", status="H"),
            erp_order("Q-PARKED", "7003"),
        ],
        subscriptions=[
            *records["subscriptions"],
            subscription("Q-COMP", "sub_2", status="canceled"),
            subscription("Q-PARKED", "sub_3"),
        ],
        crm_orders=records["crm_orders"],
        crm_quotes=[
            *records["crm_quotes"],
            crm_quote("Q-COMP", "Rejected"),
            crm_quote("Q-REJ", "Rejected"),
            crm_quote("Q-PARKED", "Accepted"),
            crm_quote("Q-WAIT", "Accepted"),
        ],
    )
    return list(sagas), sagas, state


def kinds(violations: list[Violation]) -> list[Kind]:
    return [v.kind for v in violations]


def test_a_clean_run_has_no_violation():
    sent, sagas, state = clean_run()
    assert check(sent, sagas, state) == []


@pytest.mark.parametrize(("status", "live"), [("C", False), ("H", False), ("B", True), ("G", True)])
def test_a_cancelled_or_closed_erp_order_is_not_live(status: str, live: bool):
    sent, sagas, state = clean_run()
    (order,) = [o for o in state["netsuite"]["salesOrders"] if o["otherRefNum"] == "Q-COMP"]
    order["orderStatus"] = status
    assert kinds(check(sent, sagas, state)) == ([Kind.LIVE_RECORDS] if live else [])


def test_a_repeated_quote_id_in_sent_counts_once():
    sent, sagas, state = clean_run()
    assert check(sent + sent[:2], sagas, state) == []


def test_a_sent_quote_without_a_saga_is_lost():
    sent, sagas, state = clean_run()
    sagas["Q-NEW"] = None
    (violation,) = check([*sent, "Q-NEW"], sagas, state)
    assert (violation.kind, violation.subject) == (Kind.LOST, "quote Q-NEW")


@pytest.mark.parametrize("stage", ["RECEIVED", "PROVISIONING_BILLING", "COMPENSATING"])
def test_a_saga_still_running_is_unsettled(stage: str):
    sent, sagas, state = clean_run()
    sagas["Q-REJ"] = SagaView("Q-REJ", stage)
    (violation,) = check(sent, sagas, state)
    assert violation.kind is Kind.UNSETTLED
    assert stage in violation.detail


def test_needs_attention_without_a_reason_is_not_visibly_parked():
    sent, sagas, state = clean_run()
    sagas["Q-PARKED"] = SagaView("Q-PARKED", "NEEDS_ATTENTION", parked_step="update_crm")
    assert kinds(check(sent, sagas, state)) == [Kind.PARKED_WITHOUT_REASON]


def test_two_erp_orders_for_one_quote_are_a_duplicate_even_if_one_is_cancelled():
    sent, sagas, state = clean_run()
    state["netsuite"]["salesOrders"].append(erp_order("Q-BOOKED", "7999", status="C"))
    (violation,) = check(sent, sagas, state)
    assert (violation.kind, violation.subject) == (Kind.DUPLICATE, "quote Q-BOOKED")
    assert "2 ERP sales orders" in violation.detail


@pytest.mark.parametrize(
    ("system", "record"),
    [
        ("subscriptions", subscription("Q-BOOKED", "sub_9", status="canceled")),
        ("crm_orders", crm_order("Q-BOOKED", "801Y", "7001", "sub_1")),
    ],
)
def test_a_second_subscription_or_crm_order_is_a_duplicate(system: str, record: dict[str, Any]):
    sent, sagas, state = clean_run()
    where = {"subscriptions": state["stripe"], "crm_orders": state["salesforce"]}[system]
    where["subscriptions" if system == "subscriptions" else "orders"].append(record)
    assert kinds(check(sent, sagas, state)) == [Kind.DUPLICATE]


@pytest.mark.parametrize(("vendor", "what"), [("stripe", "billing"), ("netsuite", "ERP")])
def test_two_customers_for_one_account_are_a_duplicate(vendor: str, what: str):
    sent, sagas, state = clean_run()
    state[vendor]["customers"] = snapshot(billing_customers=2, erp_customers=2)[vendor]["customers"]
    (violation,) = check(sent, sagas, state)
    assert (violation.kind, violation.subject) == (Kind.DUPLICATE, f"account {ACCOUNT}")
    assert violation.detail == f"2 {what} customers"


def test_booked_without_a_live_subscription_is_an_incomplete_booking():
    sent, sagas, state = clean_run()
    state["stripe"]["subscriptions"][0]["status"] = "canceled"
    (violation,) = check(sent, sagas, state)
    assert violation.kind is Kind.INCOMPLETE_BOOKING
    assert "a live subscription" in violation.detail


def test_booked_without_a_crm_order_is_an_incomplete_booking():
    sent, sagas, state = clean_run()
    state["salesforce"]["orders"] = []
    (violation,) = check(sent, sagas, state)
    assert violation.kind is Kind.INCOMPLETE_BOOKING
    assert "a CRM order" in violation.detail


def test_a_crm_order_pointing_at_another_erp_order_is_a_mismatch():
    sent, sagas, state = clean_run()
    state["salesforce"]["orders"][0]["ERP_Order_Id__c"] = "6999"
    (violation,) = check(sent, sagas, state)
    assert violation.kind is Kind.MISMATCH
    assert "CRM order's ERP order '6999' != '7001'" in violation.detail


def test_a_booked_quotes_crm_order_left_draft_is_a_mismatch():
    sent, sagas, state = clean_run()
    state["salesforce"]["orders"][0]["Status"] = "Draft"
    (violation,) = check(sent, sagas, state)
    assert (violation.kind, violation.subject) == (Kind.MISMATCH, "quote Q-BOOKED")
    assert "CRM order's status 'Draft' != 'Activated'" in violation.detail


def test_a_booked_quote_cpq_never_ordered_is_a_mismatch():
    sent, sagas, state = clean_run()
    state["salesforce"]["quotes"][0]["SBQQ__Ordered__c"] = False
    (violation,) = check(sent, sagas, state)
    assert (violation.kind, violation.subject) == (Kind.MISMATCH, "quote Q-BOOKED")
    assert "CRM quote's Ordered False != True" in violation.detail


def test_a_saga_whose_ids_differ_from_the_records_is_a_mismatch():
    sent, sagas, state = clean_run()
    sagas["Q-BOOKED"] = SagaView(
        "Q-BOOKED", "BOOKED", erp_order_id="7001", subscription_id="sub_OTHER", crm_order_id="801X"
    )
    assert kinds(check(sent, sagas, state)) == [Kind.MISMATCH]


def test_a_compensated_quote_left_ordered_in_crm_is_a_mismatch():
    sent, sagas, state = clean_run()
    state["salesforce"]["quotes"][1]["SBQQ__Status__c"] = "Ordered"
    (violation,) = check(sent, sagas, state)
    assert (violation.kind, violation.subject) == (Kind.MISMATCH, "quote Q-COMP")


def test_a_compensated_quote_with_a_live_subscription_kept_live_records():
    sent, sagas, state = clean_run()
    state["stripe"]["subscriptions"][1]["status"] = "active"
    (violation,) = check(sent, sagas, state)
    assert (violation.kind, violation.subject) == (Kind.LIVE_RECORDS, "quote Q-COMP")
    assert "1 live subscription(s)" in violation.detail


@pytest.mark.parametrize("quote", ["Q-REJ", "Q-WAIT"])
def test_a_live_erp_order_for_a_quote_not_booked_is_live_records(quote: str):
    sent, sagas, state = clean_run()
    state["netsuite"]["salesOrders"].append(erp_order(quote, "7100"))
    assert kinds(check(sent, sagas, state)) == [Kind.LIVE_RECORDS]


def test_records_of_a_quote_never_sent_are_orphans():
    sent, sagas, state = clean_run()
    state["netsuite"]["salesOrders"].append(erp_order("Q-GHOST", "7200"))
    state["stripe"]["subscriptions"].append({"id": "sub_nokey", "status": "active"})
    found = check(sent, sagas, state)
    assert kinds(found) == [Kind.ORPHAN, Kind.ORPHAN]
    assert {v.subject for v in found} == {"subscription sub_nokey", "quote Q-GHOST"}


def test_records_are_found_by_key_or_else_by_quote_field():
    state = snapshot(
        erp_orders=[{"id": "1", "externalId": None, "otherRefNum": "Q-1", "orderStatus": "B"}],
        subscriptions=[subscription("Q-1", "sub_1")],
    )
    by_quote, unowned = index_records(state)
    assert unowned == []
    assert [o["id"] for o in by_quote["Q-1"].erp_orders] == ["1"]
    assert [s["id"] for s in by_quote["Q-1"].subscriptions] == ["sub_1"]
