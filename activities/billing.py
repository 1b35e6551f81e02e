"""Billing activities (task queue ``billing``)."""

from __future__ import annotations

from structlog.contextvars import bound_contextvars
from temporalio import activity

from activities.classify import vendor_call
from adapters.ports import BillingPort
from domain.contracts import (
    Activity,
    CancelKeyedSubscription,
    CancelSubscription,
    KeyedCancellation,
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

    @activity.defn(name=Activity.BILLING_CANCEL_KEYED_SUBSCRIPTION)
    async def cancel_keyed_subscription(
        self, request: CancelKeyedSubscription
    ) -> KeyedCancellation:
        """Void the first invoice of the subscription keyed by ``request.idempotency_key`` and
        cancel the subscription, if billing made one: the undo of a provisioning whose outcome
        is unknown. Each call is idempotent; nothing found is nothing to undo."""
        with vendor_call(self.billing.vendor):
            subscription = await self.billing.find_subscription(request.idempotency_key)
            if subscription is None:
                return KeyedCancellation(found=False)
            voided = subscription.latest_invoice_id
            if voided is not None:
                await self.billing.void_invoice(voided)
            cancelled = await self.billing.cancel_subscription(
                subscription.subscription_id, request.reason
            )
        return KeyedCancellation(
            found=True,
            record_id=cancelled.subscription_id,
            status=cancelled.status.value,
            voided_invoice_id=voided,
        )
