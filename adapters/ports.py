"""Ports: what the sagas need from each kind of system. One adapter per vendor implements
each port; activities depend only on these protocols.

Reconciliation's reads (docs/reconciliation.md): every ``list_*`` pages through one kind of
record. With a ``window`` it answers only the records whose last-modified time
(``Basis.CHANGED``) or creation time (``Basis.CREATED``) is in ``[window.start,
window.end)``, each with its ``created_at`` and ``changed_at``, in the vendor's own query
shape (a filter, never a client-side scan of everything); ``Page.total`` carries the count
when the vendor gives one. Every ``lookup_*`` is a keyed batch read: every record naming one
of the given subjects (quote, CRM account or invoice ids), in as few calls as the vendor's
query limits allow; a subject it holds nothing of is simply absent. Both only read."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from domain.catalog import CatalogItem
from domain.customer import Customer
from domain.customer_master import FieldValue, MasterField
from domain.invoice import Invoice as FinalizedInvoice
from domain.order import Invoice, SalesOrder, SalesOrderDraft, Subscription, SubscriptionDraft
from domain.receivable import (
    CreditPosting,
    JournalPosting,
    PaymentApplication,
    PaymentPosting,
    Receivable,
    ReceivableCredit,
    ReceivableStatus,
    RevenueJournal,
)
from domain.reconciliation import CustomerRecord, InvoiceRecord, OrderRecord, Page, Window


class CrmPort(Protocol):
    vendor: str

    async def update_account_fields(
        self, account_id: str, changes: Mapping[MasterField, FieldValue], idempotency_key: str
    ) -> None:
        """Write golden customer fields (None clears one) onto the account. Idempotent: the
        same changes again change nothing. A field the CRM does not take is rejected."""
        ...

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

    async def list_orders(
        self, cursor: str | None, page_size: int, *, window: Window | None = None
    ) -> Page[OrderRecord]:
        """One page of the CRM's order records naming a quote (about ``page_size``; the
        vendor may page otherwise), from ``cursor`` (None: the first page), in ``window``
        when given. Reads only."""
        ...

    async def lookup_orders(self, quote_ids: list[str]) -> list[OrderRecord]:
        """Every order record naming one of these quotes (by revsync's key or the quote)."""
        ...

    async def list_accounts(
        self, cursor: str | None, page_size: int, *, window: Window | None = None
    ) -> Page[CustomerRecord]:
        """One page of the CRM's accounts with the golden fields they hold. Reads only."""
        ...

    async def lookup_accounts(self, account_ids: list[str]) -> list[CustomerRecord]:
        """These accounts (golden ids), with their golden fields."""
        ...

    async def set_receivable_status(
        self,
        account_id: str,
        status: ReceivableStatus,
        invoice_id: str,
        amount_due: Decimal,
        currency: str,
        *,
        as_of: datetime,
    ) -> None:
        """Show the receivable status of ``invoice_id`` on the account. Idempotent.

        ``as_of`` (timezone-aware) is when the saga decided the status. A status older than
        the one the account shows is not written (the call is a no-op): a late retry of an
        earlier step never overwrites a newer status."""
        ...


class ErpPort(Protocol):
    vendor: str

    async def find_customer(self, external_id: str) -> str | None:
        """The ERP id of the customer keyed by ``external_id``; None when there is none."""
        ...

    async def update_customer_fields(
        self, customer_id: str, changes: Mapping[MasterField, FieldValue], idempotency_key: str
    ) -> None:
        """Write golden customer fields onto the ERP customer. Idempotent."""
        ...

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

    async def list_sales_orders(
        self, cursor: str | None, page_size: int, *, window: Window | None = None
    ) -> Page[OrderRecord]:
        """One page of every sales order, cancelled ones included. Reads only."""
        ...

    async def lookup_sales_orders(self, quote_ids: list[str]) -> list[OrderRecord]:
        """Every sales order naming one of these quotes (external id or quote reference)."""
        ...

    async def list_customers(
        self, cursor: str | None, page_size: int, *, window: Window | None = None
    ) -> Page[CustomerRecord]:
        """One page of every ERP customer with the golden fields it holds. Reads only."""
        ...

    async def lookup_customers(self, account_ids: list[str]) -> list[CustomerRecord]:
        """The ERP customers of these CRM accounts."""
        ...

    async def list_receivables(
        self, cursor: str | None, page_size: int, *, window: Window | None = None
    ) -> Page[InvoiceRecord]:
        """One page of the receivables that mirror billing invoices. Reads only."""
        ...

    async def lookup_receivables(self, invoice_ids: list[str]) -> list[InvoiceRecord]:
        """The receivables mirroring these billing invoices."""
        ...

    async def post_receivable(
        self, invoice: FinalizedInvoice, customer_id: str, external_id: str
    ) -> Receivable:
        """Post the invoice as a receivable of ERP customer ``customer_id`` (lines, tax,
        currency, due date), keyed by ``external_id``: a repeat returns the first one."""
        ...

    async def find_receivable(self, external_id: str) -> Receivable | None: ...

    async def post_revenue_journal(self, journal: RevenueJournal) -> JournalPosting:
        """Post one revenue journal in ``journal.period``, keyed by ``journal.journal_id``; a
        repeat returns the first posting. A closed period is rejected."""
        ...

    async def apply_payment(self, payment: PaymentApplication) -> PaymentPosting:
        """Apply the billing payment to the receivable, keyed by ``payment.payment_id``; a
        repeat returns the first posting. A receivable with nothing due is rejected."""
        ...

    async def reverse_receivable(
        self, receivable_id: str, external_id: str, reason: str
    ) -> Receivable:
        """Cancel what is due on the receivable with a credit keyed by ``external_id``.
        Reversing a reversed receivable is a no-op; one with payments applied is rejected."""
        ...

    async def credit_receivable(self, credit: ReceivableCredit) -> CreditPosting:
        """Credit the receivable for ``credit.lines`` only (pre-tax amount and tax per
        invoice line) with a credit memo applied to it, keyed by ``credit.external_id`` (the
        billing credit note id): a repeat returns the first one. A credit larger than what the
        receivable still owes, or than what is left of a line, is rejected."""
        ...


class BillingPort(Protocol):
    vendor: str

    async def find_customer(self, account_id: str) -> str | None:
        """The billing id of the CRM account's customer; None when there is none (yet)."""
        ...

    async def update_customer_fields(
        self, customer_id: str, changes: Mapping[MasterField, FieldValue], idempotency_key: str
    ) -> None:
        """Write golden customer fields onto the billing customer, keyed by
        ``idempotency_key`` (a retry replays the first write)."""
        ...

    async def upsert_customer(self, customer: Customer, idempotency_key: str) -> str:
        """Create (or find) the billing customer for the account; returns its billing id."""
        ...

    async def create_subscription(self, draft: SubscriptionDraft, customer_id: str) -> Subscription:
        """Create the subscription keyed by ``draft.idempotency_key``; a repeat with the same
        key returns the first subscription."""
        ...

    async def find_subscription(self, idempotency_key: str) -> Subscription | None: ...

    async def list_subscriptions(
        self, cursor: str | None, page_size: int, *, window: Window | None = None
    ) -> Page[OrderRecord]:
        """One page of every subscription, canceled ones included. Reads only."""
        ...

    async def lookup_subscriptions(self, quote_ids: list[str]) -> list[OrderRecord]:
        """Every subscription naming one of these quotes."""
        ...

    async def list_customers(
        self, cursor: str | None, page_size: int, *, window: Window | None = None
    ) -> Page[CustomerRecord]:
        """One page of every billing customer with the golden fields it holds. Reads only."""
        ...

    async def lookup_customers(self, account_ids: list[str]) -> list[CustomerRecord]:
        """The billing customers of these CRM accounts."""
        ...

    async def list_invoices(
        self, cursor: str | None, page_size: int, *, window: Window | None = None
    ) -> Page[InvoiceRecord]:
        """One page of every finalized invoice (drafts left out). Reads only."""
        ...

    async def lookup_invoices(self, invoice_ids: list[str]) -> list[InvoiceRecord]:
        """These finalized invoices."""
        ...

    async def cancel_subscription(self, subscription_id: str, reason: str) -> Subscription:
        """Cancel at once, without proration. Cancelling a cancelled one is a no-op."""
        ...

    async def void_invoice(self, invoice_id: str) -> Invoice:
        """Void an open invoice. Voiding a void invoice is a no-op; a paid one is rejected."""
        ...

    async def get_invoice(self, invoice_id: str) -> FinalizedInvoice:
        """The finalized invoice in canonical form, every line included. A draft invoice, or
        one revsync cannot map (currency, customer without a CRM account), is rejected."""
        ...


class CustomerLinks(Protocol):
    """What adoption needs of a vendor that holds customers revsync did not create
    (docs/adoption.md): stamp revsync's cross-reference on one of them, so the keyed reads
    (``find_customer``) find it from then on. Optional: a vendor without it has its customers
    linked by hand."""

    async def link_customer(self, customer_id: str, golden_id: str, idempotency_key: str) -> None:
        """Mark customer ``customer_id`` as the customer of CRM account ``golden_id`` (the
        vendor's own cross-reference: the ERP external id ``acct-<id>``, Stripe's
        ``metadata.revsync_account_id``). Idempotent; a key another customer holds is
        rejected."""
        ...
