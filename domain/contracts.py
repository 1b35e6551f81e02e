"""Step contracts: the activity names and the models that cross the workflow/activity
boundary. Workflows and activities both import this module; it holds no logic and no I/O.

One model argument per activity, so fields can be added without breaking running sagas.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from domain.catalog import CatalogMismatch
from domain.customer import Customer
from domain.order import SalesOrder, SalesOrderDraft, Subscription, SubscriptionDraft
from domain.quote import Quote


class TaskQueue:
    ORCHESTRATION = "orchestration"
    CRM = "crm"
    BILLING = "billing"
    ERP = "erp"
    EVENTS = "events"

    ALL = (ORCHESTRATION, CRM, BILLING, ERP, EVENTS)


class Activity:
    """Registered activity names, grouped by the task queue that runs them."""

    CRM_FETCH_ACCOUNT = "crm.fetch_account"
    CRM_RECORD_ORDER = "crm.record_order"
    CRM_MARK_QUOTE_REJECTED = "crm.mark_quote_rejected"
    ERP_CHECK_CATALOG = "erp.check_catalog"
    ERP_BOOK_SALES_ORDER = "erp.book_sales_order"
    ERP_CANCEL_SALES_ORDER = "erp.cancel_sales_order"
    ERP_CANCEL_KEYED_SALES_ORDER = "erp.cancel_keyed_sales_order"
    BILLING_PROVISION_SUBSCRIPTION = "billing.provision_subscription"
    BILLING_CANCEL_SUBSCRIPTION = "billing.cancel_subscription"
    BILLING_CANCEL_KEYED_SUBSCRIPTION = "billing.cancel_keyed_subscription"
    BILLING_VOID_INVOICE = "billing.void_invoice"
    EVENTS_PUBLISH = "events.publish"


class _Contract(BaseModel):
    model_config = ConfigDict(frozen=True)


class FetchAccount(_Contract):
    account_id: str


class CheckCatalog(_Contract):
    quote: Quote


class CatalogCheckResult(_Contract):
    mismatches: list[CatalogMismatch]


class CancelSalesOrder(_Contract):
    order_id: str
    reason: str


class CancelKeyedSalesOrder(_Contract):
    """Undo a booking whose answer may never have come: cancel the sales order keyed by
    ``external_id`` if the ERP has one."""

    external_id: str
    reason: str


class CancelKeyedSubscription(_Contract):
    """Undo a provisioning whose answer may never have come: void the first invoice of the
    subscription keyed by ``idempotency_key`` and cancel it, if billing has one."""

    idempotency_key: str
    reason: str


class KeyedCancellation(_Contract):
    """What an undo by key found: nothing (``found`` false) when the vendor never made the
    record; else the record, its status after the undo, and the invoice voided with it."""

    found: bool
    record_id: str | None = None
    status: str | None = None
    voided_invoice_id: str | None = None


class CancelSubscription(_Contract):
    subscription_id: str
    reason: str


class VoidInvoice(_Contract):
    invoice_id: str


class BookSalesOrder(_Contract):
    customer: Customer
    customer_key: str
    order: SalesOrderDraft


class ProvisionSubscription(_Contract):
    customer: Customer
    customer_key: str
    subscription: SubscriptionDraft


class RecordOrderInCrm(_Contract):
    quote_id: str
    account_id: str
    order_key: str
    sales_order: SalesOrder
    subscription: Subscription


class CrmOrderRecord(_Contract):
    crm_order_id: str
    quote_status: str


class BookedSalesOrder(_Contract):
    customer_id: str
    order: SalesOrder


class ProvisionedSubscription(_Contract):
    customer_id: str
    subscription: Subscription


class MarkQuoteRejected(_Contract):
    quote_id: str
    reason: str
