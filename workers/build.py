"""Build the worker for one task queue, with that queue's workflows or activities and limits."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.worker import Worker

from activities.billing import BillingActivities
from activities.crm import CrmActivities
from activities.erp import ErpActivities
from adapters.billing.stripe import StripeBilling
from adapters.crm.salesforce import SalesforceCrm
from adapters.erp.netsuite import NetSuiteErp
from domain.contracts import TaskQueue
from revsync.settings import Settings
from revsync.telemetry import instrument_http_client
from workers.heartbeat import MAX_HEARTBEAT_THROTTLE, HeartbeatInterceptor
from workflows.quote_to_cash import QuoteToCashWorkflow

WORKFLOWS: Sequence[type] = (QuoteToCashWorkflow,)


def crm_activities(settings: Settings, http: httpx.AsyncClient) -> list[Callable[..., Any]]:
    acts = CrmActivities(
        SalesforceCrm(
            http,
            base_url=settings.salesforce_base_url,
            api_version=settings.salesforce_api_version,
            access_token=settings.salesforce_access_token.get_secret_value(),
        )
    )
    return [acts.fetch_account, acts.record_order, acts.mark_quote_rejected]


def erp_activities(settings: Settings, http: httpx.AsyncClient) -> list[Callable[..., Any]]:
    acts = ErpActivities(
        NetSuiteErp(
            http,
            base_url=settings.netsuite_base_url,
            access_token=settings.netsuite_access_token.get_secret_value(),
        )
    )
    return [acts.check_catalog, acts.book_sales_order, acts.cancel_sales_order]


def billing_activities(settings: Settings, http: httpx.AsyncClient) -> list[Callable[..., Any]]:
    acts = BillingActivities(
        StripeBilling(
            http,
            base_url=settings.stripe_base_url,
            api_key=settings.stripe_api_key.get_secret_value(),
        )
    )
    return [acts.provision_subscription, acts.cancel_subscription, acts.void_invoice]


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
        return Worker(
            client,
            task_queue=queue,
            workflows=list(WORKFLOWS),
            max_concurrent_workflow_tasks=settings.orchestration_max_concurrent_workflow_tasks,
            graceful_shutdown_timeout=grace,
            # An eagerly executed activity skips the task queue, so its rate limit too. Core
            # only does it for activities on the workflow's own queue, which ours never are;
            # off all the same, so a rate limit always holds (docs/scaling.md).
            disable_eager_activity_execution=True,
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
        interceptors=[HeartbeatInterceptor()],
        max_heartbeat_throttle_interval=MAX_HEARTBEAT_THROTTLE,
    )
