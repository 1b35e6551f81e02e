"""Build the worker for one task queue, with that queue's workflows or activities and limits."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.worker import Worker

from activities.adoption import (
    AdoptionStarter,
    BillingAdoptActivities,
    CrmAdoptActivities,
    ErpAdoptActivities,
)
from activities.billing import BillingActivities
from activities.crm import CrmActivities
from activities.customer_master import (
    BillingMasterActivities,
    CrmMasterActivities,
    DuplicateSearch,
    ErpMasterActivities,
    PreviousRecords,
)
from activities.erp import ErpActivities
from activities.events import EventActivities
from activities.invoices import (
    BillingInvoiceActivities,
    CrmInvoiceActivities,
    ErpInvoiceActivities,
)
from activities.policies import PolicyActivities
from activities.reconciliation import (
    ReconcileBillingActivities,
    ReconcileCrmActivities,
    ReconcileErpActivities,
    ReportActivities,
    SagaDirectory,
)
from activities.shadow import (
    BillingShadowActivities,
    CrmShadowActivities,
    ErpShadowActivities,
)
from adapters.events.webhooks import WebhookEvents
from adapters.registry import Port, build_billing, build_crm, build_erp
from adapters.registry import check as check_vendors
from adapters.reports import LocalReportStore
from domain.contracts import TaskQueue
from revsync.settings import Settings
from revsync.telemetry import instrument_http_client
from workers.attempts import MAX_HEARTBEAT_THROTTLE, AttemptInterceptor
from workflows.adoption import AdoptionWorkflow
from workflows.customer_master import CustomerMasterWorkflow
from workflows.invoice_adjustment import InvoiceAdjustmentWorkflow
from workflows.invoice_to_revenue import InvoiceToRevenueWorkflow
from workflows.quote_to_cash import QuoteToCashWorkflow
from workflows.reconcile_run import ReconcileRunWorkflow, ReconcileWindowWorkflow
from workflows.reconciliation import ReconciliationWorkflow
from workflows.shadow import ShadowComparisonWorkflow, ShadowReplayWorkflow

WORKFLOWS: Sequence[type] = (
    QuoteToCashWorkflow,
    ReconcileRunWorkflow,
    ReconcileWindowWorkflow,
    # Replaced by ReconcileRun; kept so that runs started before the upgrade finish.
    ReconciliationWorkflow,
    CustomerMasterWorkflow,
    InvoiceToRevenueWorkflow,
    InvoiceAdjustmentWorkflow,
    ShadowReplayWorkflow,
    ShadowComparisonWorkflow,
    AdoptionWorkflow,
)


def crm_activities(settings: Settings, http: httpx.AsyncClient) -> list[Callable[..., Any]]:
    # The vendor REVSYNC_CRM names; adapters/registry.py builds it (and checks its settings).
    acts = CrmActivities(build_crm(settings, http))
    listing = ReconcileCrmActivities(acts.crm)
    master = CrmMasterActivities(acts.crm)
    invoices = CrmInvoiceActivities(acts.crm)
    shadow = CrmShadowActivities(acts.crm)  # shadow mode (docs/shadow-mode.md)
    adopt = CrmAdoptActivities(acts.crm)  # adoption (docs/adoption.md)
    return [
        adopt.read_accounts,
        shadow.materialize,
        shadow.observe,
        acts.fetch_account,
        acts.record_order,
        acts.mark_quote_rejected,
        listing.list_orders,
        listing.list_accounts,
        listing.list_orders_in,
        listing.lookup_orders,
        listing.list_accounts_in,
        listing.lookup_accounts,
        master.update_account_fields,
        invoices.set_receivable_status,
    ]


def erp_activities(settings: Settings, http: httpx.AsyncClient) -> list[Callable[..., Any]]:
    acts = ErpActivities(build_erp(settings, http))  # REVSYNC_ERP, adapters/registry.py
    listing = ReconcileErpActivities(acts.erp)
    master = ErpMasterActivities(acts.erp)
    invoices = ErpInvoiceActivities(acts.erp)
    shadow = ErpShadowActivities(acts.erp)
    adopt = ErpAdoptActivities(acts.erp)
    return [
        adopt.link_customers,
        adopt.find_customers,
        shadow.materialize,
        shadow.observe,
        acts.check_catalog,
        acts.book_sales_order,
        acts.cancel_sales_order,
        acts.cancel_keyed_sales_order,
        listing.list_sales_orders,
        listing.list_customers,
        listing.list_receivables,
        listing.list_sales_orders_in,
        listing.lookup_sales_orders,
        listing.list_customers_in,
        listing.lookup_customers,
        listing.list_receivables_in,
        listing.lookup_receivables,
        master.update_customer_fields,
        master.find_customer,
        invoices.post_receivable,
        invoices.post_revenue_journal,
        invoices.apply_payment,
        invoices.reverse_receivable,
        invoices.credit_receivable,
    ]


def billing_activities(settings: Settings, http: httpx.AsyncClient) -> list[Callable[..., Any]]:
    acts = BillingActivities(build_billing(settings, http))  # REVSYNC_BILLING
    listing = ReconcileBillingActivities(acts.billing)
    master = BillingMasterActivities(acts.billing)
    invoices = BillingInvoiceActivities(acts.billing)
    shadow = BillingShadowActivities(acts.billing)
    adopt = BillingAdoptActivities(acts.billing)
    return [
        adopt.link_customers,
        adopt.read_invoices,
        shadow.materialize,
        shadow.observe,
        acts.provision_subscription,
        acts.cancel_subscription,
        acts.cancel_keyed_subscription,
        acts.void_invoice,
        listing.list_subscriptions,
        listing.list_customers,
        listing.list_invoices,
        listing.list_subscriptions_in,
        listing.lookup_subscriptions,
        listing.list_customers_in,
        listing.lookup_customers,
        listing.list_invoices_in,
        listing.lookup_invoices,
        master.update_customer_fields,
        master.find_customer,
        invoices.get_invoice,
    ]


def events_activities(settings: Settings, http: httpx.AsyncClient) -> list[Callable[..., Any]]:
    acts = EventActivities(
        WebhookEvents(http, settings.event_subscribers),
        public_base_url=settings.public_base_url or settings.gateway_url,
    )
    return [acts.publish]


def adoption_starts(client: Client, settings: Settings) -> list[Callable[..., Any]]:
    """Adoption's starts of golden records and invoice sagas (docs/adoption.md)."""
    starter = AdoptionStarter(client, settings.invoice_policy, settings.accounting_timezone)
    return [starter.existing, starter.start_golden_records, starter.start_invoice_sagas]


def check_settings(queue: str, settings: Settings) -> None:
    """Raise :class:`~revsync.settings.MissingSetting` naming the setting when the vendor of
    ``queue``'s port is unavailable or lacks a credential: before the worker connects."""
    if queue in tuple(Port):
        check_vendors(settings, (Port(queue),))


def new_http_client(settings: Settings) -> httpx.AsyncClient:
    """The worker's one HTTP client; each vendor call is a trace span (revsync.telemetry)."""
    return instrument_http_client(
        httpx.AsyncClient(
            timeout=httpx.Timeout(settings.http_timeout_seconds),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )
    )


def build_worker(queue: str, client: Client, settings: Settings, http: httpx.AsyncClient) -> Worker:
    """The worker for ``queue``. Raises ValueError for a queue revsync does not have."""
    grace = timedelta(seconds=settings.worker_shutdown_grace_seconds)
    if queue == TaskQueue.ORCHESTRATION:
        directory = SagaDirectory(client)
        reports = ReportActivities(LocalReportStore(settings.reconcile_store_dir))
        return Worker(
            client,
            task_queue=queue,
            workflows=list(WORKFLOWS),
            # Reads of Temporal itself (reconciliation's saga directory), no vendor calls.
            activities=[
                directory.list_sagas,
                directory.list_invoice_sagas,
                directory.repropagate_customer,
                directory.list_sagas_in,
                directory.lookup_sagas,
                directory.list_invoice_sagas_in,
                directory.lookup_invoice_sagas,
                reports.load_marks,
                reports.save_progress,
                reports.write_rows,
                DuplicateSearch(client).find_duplicates,
                PreviousRecords(client).find_previous_record,
                PolicyActivities(settings).current,
                *adoption_starts(client, settings),
            ],
            max_concurrent_workflow_tasks=settings.orchestration_max_concurrent_workflow_tasks,
            graceful_shutdown_timeout=grace,
            # An eagerly executed activity skips the task queue, so its rate limit too. Core
            # only does it for activities on the workflow's own queue, which ours never are;
            # off all the same, so a rate limit always holds (docs/scaling.md).
            disable_eager_activity_execution=True,
            # Steps' retry budgets leave out queue waits (workers/attempts.py).
            interceptors=[AttemptInterceptor()],
        )
    if queue == TaskQueue.CRM:
        activities = crm_activities(settings, http)
        limit = settings.crm_max_concurrent_activities
        rate = settings.crm_max_task_queue_activities_per_second
    elif queue == TaskQueue.ERP:
        activities = erp_activities(settings, http)
        limit = settings.erp_max_concurrent_activities
        rate = settings.erp_max_task_queue_activities_per_second
    elif queue == TaskQueue.BILLING:
        activities = billing_activities(settings, http)
        limit = settings.billing_max_concurrent_activities
        rate = settings.billing_max_task_queue_activities_per_second
    elif queue == TaskQueue.EVENTS:
        # events.publish heartbeats its own details (the subscribers already done), so no
        # AttemptInterceptor here: its heartbeats would overwrite them (and it has no budget).
        return Worker(
            client,
            task_queue=queue,
            activities=events_activities(settings, http),
            max_concurrent_activities=settings.events_max_concurrent_activities,
            graceful_shutdown_timeout=grace,
            max_heartbeat_throttle_interval=MAX_HEARTBEAT_THROTTLE,
        )
    else:
        raise ValueError(
            f"unknown task queue {queue!r}; expected one of {', '.join(TaskQueue.ALL)}"
        )
    return Worker(
        client,
        task_queue=queue,
        activities=activities,
        max_concurrent_activities=limit,
        max_task_queue_activities_per_second=rate,
        graceful_shutdown_timeout=grace,
        interceptors=[AttemptInterceptor()],
        max_heartbeat_throttle_interval=MAX_HEARTBEAT_THROTTLE,
    )
