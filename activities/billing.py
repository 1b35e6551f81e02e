"""Billing activities (task queue ``billing``)."""

from __future__ import annotations

from structlog.contextvars import bound_contextvars
from temporalio import activity

from activities.classify import vendor_call
from adapters.ports import BillingPort
from domain.contracts import (
    Activity,
    CancelSubscription,
    ProvisionedSubscription,
    ProvisionSubscription,
    VoidInvoice,
)
from domain.order import Invoice, Subscription


class BillingActivities:
    def __init__(self, billing: BillingPort) -> None:
        self.billing = billing

    @activity.defn(name=Activity.BILLING_PROVISION_SUBSCRIPTION)
    async def provision_subscription(
        self, request: ProvisionSubscription
    ) -> ProvisionedSubscription:
        """Find or create the billing customer, then create the subscription (keyed)."""
        with vendor_call(self.billing.vendor):
            customer_id = await self.billing.upsert_customer(request.customer, request.customer_key)
            subscription = await self.billing.create_subscription(request.subscription, customer_id)
        return ProvisionedSubscription(customer_id=customer_id, subscription=subscription)

    @activity.defn(name=Activity.BILLING_CANCEL_SUBSCRIPTION)
    async def cancel_subscription(self, request: CancelSubscription) -> Subscription:
        with vendor_call(self.billing.vendor):
            return await self.billing.cancel_subscription(request.subscription_id, request.reason)

    @activity.defn(name=Activity.BILLING_VOID_INVOICE)
    async def void_invoice(self, request: VoidInvoice) -> Invoice:
        with bound_contextvars(invoice_id=request.invoice_id), vendor_call(self.billing.vendor):
            return await self.billing.void_invoice(request.invoice_id)
