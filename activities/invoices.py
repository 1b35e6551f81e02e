"""Invoice-to-revenue activities, one class per task queue (``billing``, ``erp``, ``crm``).

Every side effect is keyed by the saga (``domain.invoice_contracts``): the receivable by
``i2r-<invoice>:receivable``, a journal by its schedule entry id, a payment by the billing
payment id, the reversal by ``i2r-<invoice>:void``, a partial credit by the billing credit
note id. Every vendor failure goes through
:func:`activities.classify.vendor_call`, the one classifier.
"""

from __future__ import annotations

from structlog.contextvars import bound_contextvars
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.classify import vendor_call
from adapters.ports import BillingPort, CrmPort, ErpPort
from domain.invoice import Invoice
from domain.invoice_contracts import (
    GetInvoice,
    InvoiceActivity,
    PostReceivable,
    ReverseReceivable,
    SetReceivableStatus,
)
from domain.receivable import (
    CreditPosting,
    JournalPosting,
    PaymentApplication,
    PaymentPosting,
    Receivable,
    ReceivableCredit,
    RevenueJournal,
)
from domain.saga import FailureType

__all__ = ["BillingInvoiceActivities", "CrmInvoiceActivities", "ErpInvoiceActivities"]


class BillingInvoiceActivities:
    def __init__(self, billing: BillingPort) -> None:
        self.billing = billing

    @activity.defn(name=InvoiceActivity.BILLING_GET_INVOICE)
    async def get_invoice(self, request: GetInvoice) -> Invoice:
        """The finalized invoice in canonical form. Reads only."""
        with bound_contextvars(invoice_id=request.invoice_id), vendor_call(self.billing.vendor):
            return await self.billing.get_invoice(request.invoice_id)


class ErpInvoiceActivities:
    def __init__(self, erp: ErpPort) -> None:
        self.erp = erp

    @activity.defn(name=InvoiceActivity.ERP_POST_RECEIVABLE)
    async def post_receivable(self, request: PostReceivable) -> Receivable:
        """Post the invoice as a receivable of the ERP customer quote-to-cash booked
        (``acct-<CRM account id>``). A customer the ERP does not have is refused: the saga
        parks until someone books the customer, then retries."""
        invoice = request.invoice
        with bound_contextvars(invoice_id=invoice.invoice_id, customer_id=invoice.account_id):
            with vendor_call(self.erp.vendor):
                customer_id = await self.erp.find_customer(request.customer_key)
            if customer_id is None:
                raise ApplicationError(
                    f"the ERP has no customer {request.customer_key!r} for CRM account "
                    f"{invoice.account_id}: book the customer (quote-to-cash or customer "
                    "master), then retry",
                    type=FailureType.ACCOUNT_NOT_FOUND,
                    non_retryable=True,
                )
            with vendor_call(self.erp.vendor):
                return await self.erp.post_receivable(invoice, customer_id, request.external_id)

    @activity.defn(name=InvoiceActivity.ERP_POST_REVENUE_JOURNAL)
    async def post_revenue_journal(self, journal: RevenueJournal) -> JournalPosting:
        """Post one period's revenue of one line; keyed by the schedule entry id."""
        with bound_contextvars(invoice_id=journal.invoice_id), vendor_call(self.erp.vendor):
            return await self.erp.post_revenue_journal(journal)

    @activity.defn(name=InvoiceActivity.ERP_APPLY_PAYMENT)
    async def apply_payment(self, payment: PaymentApplication) -> PaymentPosting:
        """Apply a billing payment to the receivable; keyed by the billing payment id."""
        with bound_contextvars(invoice_id=payment.invoice_id), vendor_call(self.erp.vendor):
            return await self.erp.apply_payment(payment)

    @activity.defn(name=InvoiceActivity.ERP_CREDIT_RECEIVABLE)
    async def credit_receivable(self, credit: ReceivableCredit) -> CreditPosting:
        """Credit the receivable for a billing credit note's lines only; keyed by the credit
        note id."""
        with bound_contextvars(invoice_id=credit.invoice_id), vendor_call(self.erp.vendor):
            return await self.erp.credit_receivable(credit)

    @activity.defn(name=InvoiceActivity.ERP_REVERSE_RECEIVABLE)
    async def reverse_receivable(self, request: ReverseReceivable) -> Receivable:
        """Cancel what is due with a credit keyed by the saga."""
        with vendor_call(self.erp.vendor):
            return await self.erp.reverse_receivable(
                request.receivable_id, request.external_id, request.reason
            )


class CrmInvoiceActivities:
    def __init__(self, crm: CrmPort) -> None:
        self.crm = crm

    @activity.defn(name=InvoiceActivity.CRM_SET_RECEIVABLE_STATUS)
    async def set_receivable_status(self, request: SetReceivableStatus) -> str:
        """Show the receivable status on the CRM account; an older status never overwrites
        a newer one (``as_of``)."""
        with (
            bound_contextvars(invoice_id=request.invoice_id, customer_id=request.account_id),
            vendor_call(self.crm.vendor),
        ):
            await self.crm.set_receivable_status(
                request.account_id,
                request.status,
                request.invoice_id,
                request.amount_due,
                request.currency,
                as_of=request.as_of,
            )
        return request.status.value
