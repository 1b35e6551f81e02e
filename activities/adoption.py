"""Adoption's activities (docs/adoption.md): the vendor reads and the one vendor write it
adds (stamping revsync's cross-reference on a customer it did not create), each on its
vendor's queue behind the same gate as every other write; and the starts of the golden
records and invoice sagas, on the ``orchestration`` queue, whose worker holds a client.

Every one takes a batch and is idempotent: a retried batch (a worker killed in the middle)
repeats reads and keyed writes, never creates twice. Link batches heartbeat what they have
done, so a retry resumes after it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import structlog
from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

from activities.classify import vendor_call
from adapters.errors import RejectedError
from adapters.ports import BillingPort, CrmPort, ErpPort
from domain.adoption import (
    AccountsRead,
    AdoptActivity,
    CustomersFound,
    Existing,
    ExistingIds,
    FindCustomers,
    GoldenSeed,
    InvoiceSnapshot,
    InvoicesRead,
    InvoiceStart,
    Kind,
    LinkCustomers,
    LinksWritten,
    ReadAccounts,
    ReadInvoices,
    Started,
    StartGoldenRecords,
    StartInvoiceSagas,
    adopted_input,
    catch_up,
    catch_up_payment_id,
)
from domain.contracts import TaskQueue
from domain.customer_master import ChangeEvent, FieldValue, MasterField, SourceVersion
from domain.customer_master import System as MasterSystem
from domain.invoice_contracts import InvoicePolicy, PaymentReceived, invoice_workflow_id
from domain.master_contracts import WORKFLOW_TYPE as MASTER_TYPE
from domain.master_contracts import erp_external_id
from domain.reconciliation import INVOICE_TO_REVENUE_TYPE
from revsync.customer_master import ChangeRefused, deliver_change
from workflows.invoice_to_revenue import (
    InvoiceToRevenueWorkflow,
    start_attributes,
    static_summary,
)

log = structlog.get_logger("revsync.activities.adoption")

# Starts in Temporal one batch makes at once (golden records, invoice sagas).
CONCURRENT_STARTS = 16


def _refused(error: BaseException) -> str | None:
    """The vendor's reason when ``error`` is a refusal (not worth retrying), else None."""
    cause = error if isinstance(error, RejectedError) else error.__cause__
    if isinstance(cause, RejectedError):
        return f"{cause.code or 'REJECTED'}: {cause.message}"
    return None


async def _link(adapter: object, vendor: str, request: LinkCustomers) -> LinksWritten:
    done: set[str] = set()
    details = activity.info().heartbeat_details
    if details and isinstance(details[0], list):
        done = {str(d) for d in details[0]}
    written = LinksWritten(done=sorted(done))
    link = getattr(adapter, "link_customer", None)
    for item in request.links:
        if item.record_id in done:
            continue
        if link is None:
            written.refused[item.record_id] = (
                f"{vendor}: revsync cannot write its cross-reference; link it by hand"
            )
            continue
        try:
            with vendor_call(vendor):
                await link(item.record_id, item.golden_id, item.key)
        except ApplicationError as error:
            reason = _refused(error)
            if reason is None:
                raise
            written.refused[item.record_id] = reason
            continue
        written.done.append(item.record_id)
        activity.heartbeat(written.done)
    return written


class CrmAdoptActivities:
    def __init__(self, crm: CrmPort) -> None:
        self.crm = crm

    @activity.defn(name=AdoptActivity.CRM_READ_ACCOUNTS)
    async def read_accounts(self, request: ReadAccounts) -> AccountsRead:
        """The accounts as the CRM holds them now (the golden records' first state)."""
        read = AccountsRead(read_at=datetime.now(UTC))
        for account_id in request.account_ids:
            try:
                with vendor_call(self.crm.vendor):
                    read.customers.append(await self.crm.get_account(account_id))
            except ApplicationError as error:
                reason = _refused(error)
                if reason is None:
                    raise
                read.unreadable[account_id] = reason
            activity.heartbeat()
        return read


class ErpAdoptActivities:
    def __init__(self, erp: ErpPort) -> None:
        self.erp = erp

    @activity.defn(name=AdoptActivity.ERP_LINK_CUSTOMERS)
    async def link_customers(self, request: LinkCustomers) -> LinksWritten:
        return await _link(self.erp, self.erp.vendor, request)

    @activity.defn(name=AdoptActivity.ERP_FIND_CUSTOMERS)
    async def find_customers(self, request: FindCustomers) -> CustomersFound:
        found = CustomersFound()
        for golden_id in request.golden_ids:
            with vendor_call(self.erp.vendor):
                found.found[golden_id] = await self.erp.find_customer(erp_external_id(golden_id))
            activity.heartbeat()
        return found


class BillingAdoptActivities:
    def __init__(self, billing: BillingPort) -> None:
        self.billing = billing

    @activity.defn(name=AdoptActivity.BILLING_LINK_CUSTOMERS)
    async def link_customers(self, request: LinkCustomers) -> LinksWritten:
        return await _link(self.billing, self.billing.vendor, request)

    @activity.defn(name=AdoptActivity.BILLING_READ_INVOICES)
    async def read_invoices(self, request: ReadInvoices) -> InvoicesRead:
        """Each invoice in canonical form, or why it cannot be read; with ``amounts``, also
        what is due now, read from the listing, with the watermark taken just before the
        page that holds it was read (a payment made before the watermark is in it)."""
        wanted = set(request.invoice_ids)
        read = InvoicesRead(items={i: InvoiceSnapshot() for i in request.invoice_ids})
        if request.amounts:
            cursor: str | None = None
            while wanted - {i for i, s in read.items.items() if s.amount_due is not None}:
                watermark = datetime.now(UTC)
                with vendor_call(self.billing.vendor):
                    page = await self.billing.list_invoices(cursor, request.page_size)
                for record in page.items:
                    if record.invoice_id in wanted:
                        snapshot = read.items[record.invoice_id]
                        snapshot.amount_due = record.amount_due
                        snapshot.watermark = watermark
                activity.heartbeat()
                if page.cursor is None:
                    break
                cursor = page.cursor
        for invoice_id in request.invoice_ids:
            snapshot = read.items[invoice_id]
            try:
                with vendor_call(self.billing.vendor):
                    snapshot.invoice = await self.billing.get_invoice(invoice_id)
            except ApplicationError as error:
                reason = _refused(error)
                if reason is None:
                    raise
                snapshot.unreadable = reason
            if request.amounts and snapshot.amount_due is None and snapshot.unreadable is None:
                snapshot.unreadable = "not in billing's listing any more"
            activity.heartbeat()
        return read


class AdoptionStarter:
    """The starts adoption makes in Temporal itself (queue ``orchestration``)."""

    def __init__(self, client: Client, policy: InvoicePolicy, zone: str) -> None:
        self.client = client
        self.policy = policy
        self.zone = zone

    @activity.defn(name=AdoptActivity.EXISTING)
    async def existing(self, request: Existing) -> ExistingIds:
        """Golden customers (or invoices) revsync already runs: by workflow id, through
        visibility (running or ended: a saga that ran is not started again)."""
        kind = MASTER_TYPE if request.kind is Kind.CUSTOMERS else INVOICE_TO_REVENUE_TYPE
        prefix = "customer-" if request.kind is Kind.CUSTOMERS else "i2r-"
        ids: set[str] = set()
        async for execution in self.client.list_workflows(f'WorkflowType = "{kind}"'):
            if execution.id.startswith(prefix):
                ids.add(execution.id.removeprefix(prefix))
            if len(ids) % 500 == 0:
                activity.heartbeat(len(ids))
        return ExistingIds(ids=sorted(ids))

    @activity.defn(name=AdoptActivity.START_GOLDEN_RECORDS)
    async def start_golden_records(self, request: StartGoldenRecords) -> Started:
        """One golden record per account, started (or found) with the account's fields as
        the CRM holds them, as a CRM change of the adoption's read time. The event id makes a
        retry a duplicate; a later live change wins by its own, newer version."""
        started = Started()
        gate = asyncio.Semaphore(CONCURRENT_STARTS)

        async def one(seed: GoldenSeed) -> None:
            customer = seed.customer
            changes: dict[MasterField, FieldValue] = {
                MasterField.NAME: customer.name,
                MasterField.LEGAL_ENTITY: customer.legal_entity,
                MasterField.EMAIL: customer.email,
                MasterField.BILLING_ADDRESS: customer.billing_address,
            }
            if customer.tax_id:
                changes[MasterField.TAX_ID] = customer.tax_id
            event = ChangeEvent(
                source=MasterSystem.CRM,
                event_id=seed.event_id,
                record_id=customer.account_id,
                version=SourceVersion(modified_at=seed.read_at),
                changes=changes,
            )
            async with gate:
                try:
                    result = await deliver_change(self.client, customer.account_id, event)
                except ChangeRefused as refused:
                    started.outcomes[customer.account_id] = f"refused: {refused}"
                    return
            verdict = "already had it" if result.duplicate else "started from the CRM"
            started.outcomes[customer.account_id] = f"golden record {verdict}"
            activity.heartbeat()

        await asyncio.gather(*(one(seed) for seed in request.seeds))
        return started

    @activity.defn(name=AdoptActivity.START_INVOICE_SAGAS)
    async def start_invoice_sagas(self, request: StartInvoiceSagas) -> Started:
        """Invoice-to-revenue for each in-flight invoice, with the state it really has
        (:func:`domain.adoption.adopted_input`); an invoice whose saga the live path started
        meanwhile (its ``invoice.finalized`` arrived) is left to it: one saga per invoice."""
        started = Started()
        gate = asyncio.Semaphore(CONCURRENT_STARTS)

        async def one(start: InvoiceStart) -> None:
            invoice = start.invoice
            workflow_id = invoice_workflow_id(invoice.invoice_id)
            paid = catch_up(start)
            signal_name: str | None = None
            signal_args: list[PaymentReceived] = []
            if paid > 0:
                signal_name = "payment_received"
                signal_args = [
                    PaymentReceived(
                        payment_id=catch_up_payment_id(invoice.invoice_id),
                        amount=paid,
                        currency=invoice.currency,
                        paid_at=start.watermark,
                    )
                ]
            async with gate:
                try:
                    await self.client.start_workflow(
                        InvoiceToRevenueWorkflow.run,
                        adopted_input(start, request.accounting_timezone or self.zone, self.policy),
                        id=workflow_id,
                        task_queue=TaskQueue.ORCHESTRATION,
                        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                        search_attributes=start_attributes(invoice.invoice_id, datetime.now(UTC)),
                        static_summary=static_summary(invoice.invoice_id),
                        start_signal=signal_name,
                        start_signal_args=signal_args,
                    )
                except WorkflowAlreadyStartedError:
                    started.outcomes[invoice.invoice_id] = "already running (the live path)"
                    return
            what = "from the ERP's receivable" if start.receivable_id else "posting its receivable"
            caught = f", {paid} {invoice.currency} paid before adoption" if paid > 0 else ""
            started.outcomes[invoice.invoice_id] = f"saga started {what}{caught}"
            activity.heartbeat()

        await asyncio.gather(*(one(start) for start in request.starts))
        return started
