"""ReconciliationWorkflow on the time-skipping server, with fake listings and repairs:
it reads every page across continue-as-new, repairs what is safe, turns a failed repair into
review, keeps the report bounded, and ends incomplete (not failed) when a system cannot be read."""

from __future__ import annotations

import uuid
from datetime import timedelta

from temporalio.testing import WorkflowEnvironment

from domain.contracts import Activity, TaskQueue
from domain.customer_master import MasterField
from domain.invoice_contracts import InvoiceStage
from domain.reconciliation import (
    DriftKind,
    Outcome,
    ReconcileActivity,
    ReconciliationInput,
    ReconciliationReport,
    Remediation,
    ReportStatus,
    System,
)
from tests.reconciliation.fakes import (
    Fakes,
    customer,
    invoice,
    invoice_saga,
    many_quotes,
    workers,
)
from workflows.reconciliation import ReconciliationWorkflow


async def run(
    env: WorkflowEnvironment, fakes: Fakes, request: ReconciliationInput
) -> tuple[ReconciliationReport, str]:
    """The report and the workflow id."""
    async with workers(env.client, fakes):
        handle = await env.client.start_workflow(
            ReconciliationWorkflow.run,
            request,
            id=f"reconciliation-{uuid.uuid4().hex[:8]}",
            task_queue=TaskQueue.ORCHESTRATION,
            execution_timeout=timedelta(hours=2),
        )
        report = await handle.result()
    return report, handle.id


async def test_it_reads_every_page_across_runs_and_repairs_what_is_safe(
    time_skipping_env: WorkflowEnvironment,
):
    records, sagas = many_quotes()
    fakes = Fakes(records, sagas)
    fakes.refuse.add("sub_L")
    request = ReconciliationInput(page_size=2, pages_per_run=3, max_items_per_kind=1)
    report, workflow_id = await run(time_skipping_env, fakes, request)

    assert report.status is ReportStatus.DONE and report.error is None
    nothing = ("erp_customers", "billing_customers", "crm_accounts", "billing_invoices")
    assert report.scanned == {
        "crm": 7,
        "erp": 11,
        "billing": 10,
        "sagas": 10,
        **dict.fromkeys(nothing, 0),
        "erp_receivables": 0,
        "invoice_sagas": 0,
    }
    # Orders, then one (empty) page of each customer and invoice listing.
    assert report.pages == 4 + 6 + 5 + 5 + 6
    assert report.counts == {
        DriftKind.MISSING_IN_CRM: 1,
        DriftKind.STATUS_MISMATCH: 2,
        DriftKind.DUPLICATED_IN_ERP: 1,
    }
    assert report.outcomes == {Outcome.REPAIRED: 2, Outcome.FAILED: 1}
    assert report.remediations == {
        Remediation.REWRITE_CRM: 1,
        Remediation.COMPENSATE: 1,
        Remediation.REVIEW: 2,
    }
    # One item of each kind kept, the rest counted.
    assert sorted(i.kind for i in report.items) == sorted(report.counts)
    assert report.omitted == 1

    (written,) = fakes.repairs(Activity.CRM_RECORD_ORDER)
    assert written.order_key == "q2c-QM:crm-order"
    assert written.sales_order.order_id == "7M" and written.subscription.subscription_id == "sub_M"
    cancelled = [c.subscription_id for c in fakes.repairs(Activity.BILLING_CANCEL_SUBSCRIPTION)]
    assert sorted(cancelled) == ["sub_C", "sub_L"]
    assert fakes.repairs(Activity.ERP_CANCEL_SALES_ORDER) == []

    # Every page was read once, in order, though the run continued as new six times.
    crm_cursors = [c for name, c in fakes.calls if name == ReconcileActivity.CRM_LIST_ORDERS]
    assert crm_cursors == [None, "2", "4", "6"]
    runs, run_id = 0, None
    while runs == 0 or run_id:  # walk the chain of runs back from the latest one
        runs += 1
        history = await time_skipping_env.client.get_workflow_handle(
            workflow_id, run_id=run_id
        ).fetch_history()
        started = history.events[0].workflow_execution_started_event_attributes
        run_id = started.continued_execution_run_id
    assert runs == 9  # 26 pages, 3 a run


async def test_a_failed_repair_is_left_for_review_saying_why(
    time_skipping_env: WorkflowEnvironment,
):
    records, sagas = many_quotes()
    fakes = Fakes(records, sagas)
    fakes.refuse.add("sub_L")
    report, _ = await run(time_skipping_env, fakes, ReconciliationInput())
    (failed,) = [i for i in report.items if i.outcome is Outcome.FAILED]
    assert failed.quote_id == "QL" and failed.remediation is Remediation.REVIEW
    assert failed.outcome_detail is not None and "locked" in failed.outcome_detail
    assert report.pages == 10  # one page per listing at the default page size


async def test_repairs_beyond_the_runs_budget_wait_for_the_next_run(
    time_skipping_env: WorkflowEnvironment,
):
    records, sagas = many_quotes()
    fakes = Fakes(records, sagas)
    report, _ = await run(time_skipping_env, fakes, ReconciliationInput(max_repairs=1))
    assert report.outcomes == {Outcome.REPAIRED: 1, Outcome.DEFERRED: 2}
    assert (
        len(fakes.repairs(Activity.CRM_RECORD_ORDER))
        + len(fakes.repairs(Activity.BILLING_CANCEL_SUBSCRIPTION))
        == 1
    )


async def test_a_system_that_cannot_be_read_ends_the_run_incomplete_comparing_nothing(
    time_skipping_env: WorkflowEnvironment,
):
    records, sagas = many_quotes()
    fakes = Fakes(records, sagas)
    fakes.broken.add(ReconcileActivity.ERP_LIST_SALES_ORDERS)
    report, _ = await run(time_skipping_env, fakes, ReconciliationInput())
    assert report.status is ReportStatus.INCOMPLETE
    assert report.error is not None and "erp" in report.error
    assert "INVALID_QUERY_LOCATOR" in report.error
    assert report.counts == {} and report.items == []
    assert not fakes.repairs(Activity.CRM_RECORD_ORDER)
    assert report.scanned == {"crm": 7}


async def test_customers_and_invoices_are_compared_and_drifted_customers_repropagated_once(
    time_skipping_env: WorkflowEnvironment,
):
    acme = {"name": "Acme GmbH", "email": "ap@acme.example", "legal_entity": "Acme GmbH"}
    customers = [
        # A: billing's e-mail (billing owns it) differs in CRM and ERP -> one re-propagation.
        customer(System.CRM, "A", "A", **{**acme, "email": "old@acme.example"}),
        customer(System.ERP, "A", "acctA", **{**acme, "email": "older@acme.example"}),
        customer(System.BILLING, "A", "cus_A", **acme),
        # B: CRM renamed, ERP copy stale, no customer-master workflow -> review.
        customer(System.CRM, "B", "B", name="Beta Ltd"),
        customer(System.ERP, "B", "acctB", name="Beta Limited"),
        # C: two billing customers -> review; equivalent spellings are no drift.
        customer(System.CRM, "C", "C", name="Gamma  AG"),
        customer(System.ERP, "C", "acctC", name="gamma ag"),
        customer(System.BILLING, "C", "cus_C1"),
        customer(System.BILLING, "C", "cus_C2"),
        # A prospect only CRM has, and an ERP customer that is not revsync's: not compared.
        customer(System.CRM, "P", "P", name="Prospect"),
        customer(System.ERP, None, "manual-1", name="Walk-in"),
    ]
    invoices = [
        invoice(System.BILLING, "in_ok", "in_ok", "paid"),
        invoice(System.ERP, "in_ok", "901", "closed"),
        invoice(System.BILLING, "in_paid", "in_paid", "paid"),
        invoice(System.ERP, "in_paid", "902", "open", due="120.00"),
        invoice(System.BILLING, "in_lost", "in_lost", "open", due="120.00"),
    ]
    sagas = [
        invoice_saga("in_paid", InvoiceStage.AWAITING_PAYMENT, running=True),
        invoice_saga("in_lost", InvoiceStage.NEEDS_ATTENTION, running=False),
    ]
    fakes = Fakes([], [], customers, invoices, sagas)
    fakes.no_master.add("B")
    report, _ = await run(
        time_skipping_env, fakes, ReconciliationInput(page_size=2, pages_per_run=4)
    )

    assert report.status is ReportStatus.DONE
    assert report.customers == 3 and report.invoices == 3
    assert report.counts == {
        DriftKind.FIELD_MISMATCH: 3,  # A in CRM and ERP, B in ERP
        DriftKind.DUPLICATED_IN_BILLING: 1,
        DriftKind.STATUS_MISMATCH: 1,
        DriftKind.MISSING_IN_ERP: 1,
    }
    (asked_a, asked_b) = fakes.repairs(ReconcileActivity.REPROPAGATE_CUSTOMER)
    assert asked_a.golden_id == "A" and asked_a.fields == [MasterField.EMAIL]
    assert asked_a.request_id is not None and asked_a.request_id.endswith(":A")
    assert asked_b.golden_id == "B" and asked_b.fields == [MasterField.NAME]
    by_subject = {(i.kind, i.subject, i.system): i for i in report.items}
    for system in (System.CRM, System.ERP):
        item = by_subject[(DriftKind.FIELD_MISMATCH, "A", system)]
        assert item.outcome is Outcome.REPAIRED
        assert item.remediation is Remediation.REPROPAGATE_CUSTOMER
    missing_master = by_subject[(DriftKind.FIELD_MISMATCH, "B", System.ERP)]
    assert missing_master.remediation is Remediation.REVIEW
    assert missing_master.outcome is Outcome.FAILED
    assert "no customer-master workflow" in (missing_master.outcome_detail or "")
    paid = by_subject[(DriftKind.STATUS_MISMATCH, "in_paid", System.ERP)]
    assert paid.remediation is Remediation.RESUME_SAGA and paid.workflow_id == "i2r-in_paid"
    lost = by_subject[(DriftKind.MISSING_IN_ERP, "in_lost", System.ERP)]
    assert lost.remediation is Remediation.REVIEW  # its saga ended: nothing to resume


async def test_a_repropagation_the_customer_master_saw_before_is_not_a_repair(
    time_skipping_env: WorkflowEnvironment,
):
    customers = [
        customer(System.CRM, "A", "A", name="Acme GmbH"),
        customer(System.ERP, "A", "acctA", name="Acme Old"),
    ]
    fakes = Fakes([], [], customers)
    fakes.repeated.add("A")
    report, _ = await run(time_skipping_env, fakes, ReconciliationInput())
    (item,) = report.items
    assert item.kind is DriftKind.FIELD_MISMATCH
    assert item.outcome is Outcome.REPEATED
    assert report.outcomes == {Outcome.REPEATED: 1}


async def test_a_run_holding_more_than_it_may_carry_ends_incomplete(
    time_skipping_env: WorkflowEnvironment,
):
    records, sagas = many_quotes()
    fakes = Fakes(records, sagas)
    report, _ = await run(time_skipping_env, fakes, ReconciliationInput(max_carried=5))
    assert report.status is ReportStatus.INCOMPLETE
    assert report.error is not None and "more than 5 records" in report.error
    assert report.counts == {} and not fakes.repairs(Activity.CRM_RECORD_ORDER)
