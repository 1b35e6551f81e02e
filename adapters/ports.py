"""Ports: what the sagas need from each kind of system. One adapter per vendor implements
each port; activities depend only on these protocols."""

from __future__ import annotations

from typing import Protocol

from domain.catalog import CatalogItem
from domain.customer import Customer
from domain.order import Invoice, SalesOrder, SalesOrderDraft, Subscription, SubscriptionDraft


class CrmPort(Protocol):
    vendor: str

    async def get_account(self, account_id: str) -> Customer:
        """The account as the CRM holds it. Raises ``NotFoundError`` when it is missing."""
        ...

    async def record_order(
        self,
        *,
        quote_id: str,
        account_id: str,
        order_key: str,
        sales_order: SalesOrder,
        subscription: Subscription,
    ) -> str:
        """Upsert the booked order by ``order_key`` and mark the quote ordered.
        Returns the CRM's id of the order record. Idempotent."""
        ...

    async def set_quote_status(self, quote_id: str, status: str, reason: str | None) -> None:
        """Set the quote's status (e.g. ``Rejected`` with the reason). Idempotent."""
        ...


class ErpPort(Protocol):
    vendor: str

    async def get_catalog_items(self, skus: list[str]) -> dict[str, CatalogItem]:
        """Catalog items by SKU; SKUs the ERP does not know are absent from the result."""
        ...

    async def upsert_customer(self, customer: Customer, external_id: str) -> str:
        """Create or update the ERP customer keyed by ``external_id``; returns its ERP id."""
        ...

    async def create_sales_order(self, draft: SalesOrderDraft, customer_id: str) -> SalesOrder:
        """Create the sales order keyed by ``draft.external_id``; if one with that key already
        exists, return it instead of creating a second one."""
        ...

    async def find_sales_order(self, external_id: str) -> SalesOrder | None: ...

    async def cancel_sales_order(self, order_id: str, reason: str) -> SalesOrder:
        """Cancel (or close) the sales order. Cancelling a cancelled order is a no-op."""
        ...


class BillingPort(Protocol):
    vendor: str

    async def upsert_customer(self, customer: Customer, idempotency_key: str) -> str:
        """Create (or find) the billing customer for the account; returns its billing id."""
        ...

    async def create_subscription(self, draft: SubscriptionDraft, customer_id: str) -> Subscription:
        """Create the subscription keyed by ``draft.idempotency_key``; a repeat with the same
        key returns the first subscription."""
        ...

    async def find_subscription(self, idempotency_key: str) -> Subscription | None: ...

    async def cancel_subscription(self, subscription_id: str, reason: str) -> Subscription:
        """Cancel at once, without proration. Cancelling a cancelled one is a no-op."""
        ...

    async def void_invoice(self, invoice_id: str) -> Invoice:
        """Void an open invoice. Voiding a void invoice is a no-op; a paid one is rejected."""
        ...
