"""AdoptionWorkflow: take over what already exists, one object kind and window at a time
(docs/adoption.md). Workflow id ``adopt-<kind>-<window>``, queue ``orchestration``.

1. **Read** every system's existing records through the ports' listings, page by page on
   each vendor's queue (reconciliation's listing activities), the open invoices one by one
   (``billing.adopt_read_invoices``: an unreadable one is kept with its reason, nothing
   stops), and which golden records and invoice sagas already run.
2. **Sort** them into the ledger (``domain.adoption``): matched, matched by strong key,
   ambiguous, conflicting, orphan, to create, unreadable; deterministic. Nothing is written.
3. **Wait for approvals** (update ``approve``: entries by id, or a bucket), and act on each
   approved entry: customers get revsync's cross-reference written where the link came from
   a strong key (``<queue>.adopt_link_customers``, through the shadow-mode gate like every
   write) and their golden record started from the account as the CRM holds it; in-flight
   invoices get their invoice-to-revenue saga started with the state they really have
   (``domain.adoption.adopted_input``), amounts read again at approval, at a watermark.
4. Ends on ``close``, or after 30 days without an approval.

Resumable: every step is an activity; a worker killed mid-batch is retried by Temporal, and
every write is keyed (links by record and account, golden records by the adoption's event
id, invoice sagas by their workflow id), so a retry duplicates nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from domain.adoption import (
        ADOPTION_WORKFLOW,
        APPROVABLE,
        AccountsRead,
        AdoptActivity,
        AdoptionInput,
        Approval,
        ApprovalAnswer,
        ApproveEntries,
        Bucket,
        CustomersFound,
        Existing,
        ExistingIds,
        FindCustomers,
        GoldenSeed,
        InvoicesRead,
        InvoiceStart,
        Kind,
        Ledger,
        LedgerEntry,
        LedgerPage,
        LedgerQuery,
        LinkCustomers,
        LinkRequest,
        LinksWritten,
        ReadAccounts,
        ReadInvoices,
        Started,
        StartGoldenRecords,
        StartInvoiceSagas,
        customer_ledger,
        invoice_ledger,
    )
    from domain.contracts import TaskQueue
    from domain.reconciliation import (
        CustomerPage,
        InvoicePage,
        ListPage,
        ReconcileActivity,
        receivable_key,
    )
    from workflows.kernel import rejection_reason, retry_policy

T = TypeVar("T")

IDLE = timedelta(days=30)
ATTEMPT = timedelta(minutes=10)
HEARTBEAT = timedelta(minutes=2)
BUDGET = timedelta(hours=2)


def _chunks(items: Sequence[T], size: int) -> list[list[T]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


@workflow.defn(name=ADOPTION_WORKFLOW)
class AdoptionWorkflow:
    @workflow.init
    def __init__(self, request: AdoptionInput) -> None:
        self._input = request
        self._ledger = Ledger(kind=request.kind, window=request.window)
        self._ready = False
        self._closed = False
        self._queue: list[list[str]] = []
        self._busy = False

    # -- what operators see and do --------------------------------------------------------

    @workflow.query(name="ledger")
    def ledger(self, query: LedgerQuery) -> LedgerPage:
        """The ledger's counts and one page of its entries."""
        return self._ledger.page(query)

    @workflow.update(name="approve")
    def approve(self, request: ApproveEntries) -> ApprovalAnswer:
        """Approve entries (by id) or every approvable entry of a bucket; they are acted on
        in the order approved. Ambiguous, orphan and unreadable entries are refused: a person
        settles them in the systems, then adoption runs again."""
        answer = ApprovalAnswer()
        if request.bucket is not None:
            ids = [
                e.entry_id
                for e in self._ledger.entries
                if e.bucket is request.bucket and e.approval is None and not e.in_revsync
            ]
        else:
            ids = list(dict.fromkeys(request.entries))
        approval = Approval(by=request.by, at=workflow.now(), note=request.note)
        for entry_id in ids:
            entry = self._ledger.entry(entry_id)
            if entry is None:
                answer.refused[entry_id] = "no such entry"
            elif entry.bucket not in APPROVABLE:
                answer.refused[entry_id] = (
                    f"{entry.bucket.value}: settle it in the systems, then adopt again"
                )
            elif entry.in_revsync:
                answer.refused[entry_id] = "revsync runs it already: nothing to do"
            elif entry.approval is not None and not (entry.outcome or "").startswith("refused"):
                answer.refused[entry_id] = f"approved already by {entry.approval.by}"
            else:
                entry.approval = approval
                entry.outcome = "approved: waiting"
                answer.accepted.append(entry_id)
        if answer.accepted:
            self._queue.append(answer.accepted)
        workflow.set_current_details(self._details())
        return answer

    @approve.validator
    def _validate_approve(self, request: ApproveEntries) -> None:
        if not self._ready:
            raise ValueError("the ledger is still being read: approve once it is ready")
        if self._closed:
            raise ValueError("this adoption is closed: start another")
        if not request.entries and request.bucket is None:
            raise ValueError("name entries or a bucket")

    @workflow.update(name="close")
    def close(self, by: str) -> str:
        self._closed = True
        return f"closed by {by}"

    # -- the run --------------------------------------------------------------------------

    @workflow.run
    async def run(self, request: AdoptionInput) -> LedgerPage:
        self._ledger.read_at = workflow.now()
        workflow.set_current_details(f"Reading every system's {request.kind.value}...")
        if request.kind is Kind.CUSTOMERS:
            await self._read_customers()
        else:
            await self._read_invoices()
        self._ready = True
        self._ledger.ready = True
        workflow.set_current_details(self._details())
        while True:
            try:
                await workflow.wait_condition(
                    lambda: bool(self._queue) or self._closed, timeout=IDLE
                )
            except TimeoutError:
                self._closed = True
            if self._queue:
                batch = self._queue.pop(0)
                if request.kind is Kind.CUSTOMERS:
                    await self._adopt_customers(batch)
                else:
                    await self._adopt_invoices(batch)
                workflow.set_current_details(self._details())
                continue
            if self._closed:
                break
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._ledger.page(LedgerQuery(limit=0))  # the counts: the entries are many

    async def _call(self, activity: str, arg: Any, result: type[T], queue: str) -> T:
        done: T = await workflow.execute_activity(
            activity,
            arg,
            result_type=result,
            task_queue=queue,
            start_to_close_timeout=ATTEMPT,
            heartbeat_timeout=HEARTBEAT,
            schedule_to_close_timeout=BUDGET,
            retry_policy=retry_policy(),
        )
        return done

    async def _list(
        self, activity: str, queue: str, page: type[Any]
    ) -> tuple[list[Any], str | None]:
        """Every record of a listing; a refusal stops that listing (kept as unreadable)."""
        items: list[Any] = []
        cursor: str | None = None
        while True:
            try:
                found = await self._call(
                    activity, ListPage(cursor=cursor, page_size=self._input.page_size), page, queue
                )
            except ActivityError as error:
                reason = rejection_reason(error)
                if reason is None:
                    raise
                return items, reason
            items.extend(found.items)
            self._ledger.scanned[activity] = len(items)
            if found.cursor is None:
                return items, None
            cursor = found.cursor

    async def _existing(self, kind: Kind) -> set[str]:
        found = await self._call(
            AdoptActivity.EXISTING, Existing(kind=kind), ExistingIds, TaskQueue.ORCHESTRATION
        )
        return set(found.ids)

    async def _read_customers(self) -> None:
        unreadable: dict[str, str] = {}
        listed: dict[str, list[Any]] = {}
        for system, activity, queue in (
            ("crm", ReconcileActivity.CRM_LIST_ACCOUNTS, TaskQueue.CRM),
            ("erp", ReconcileActivity.ERP_LIST_CUSTOMERS, TaskQueue.ERP),
            ("billing", ReconcileActivity.BILLING_LIST_CUSTOMERS, TaskQueue.BILLING),
        ):
            listed[system], failure = await self._list(activity, queue, CustomerPage)
            if failure is not None:
                unreadable[f"{system}:listing"] = f"the {system} listing stopped: {failure}"
        golden = await self._existing(Kind.CUSTOMERS)
        self._ledger.entries = customer_ledger(
            listed["crm"],
            {"erp": listed["erp"], "billing": listed["billing"]},
            golden=golden,
            unreadable=unreadable,
        )

    async def _read_invoices(self) -> None:
        billing, billing_failure = await self._list(
            ReconcileActivity.BILLING_LIST_INVOICES, TaskQueue.BILLING, InvoicePage
        )
        erp, erp_failure = await self._list(
            ReconcileActivity.ERP_LIST_RECEIVABLES, TaskQueue.ERP, InvoicePage
        )
        open_ids = sorted(i.invoice_id for i in billing if i.status == "open" and i.amount_due > 0)
        accounts: dict[str, str] = {}
        unreadable: dict[str, str] = {}
        for batch in _chunks(open_ids, self._input.batch_size):
            read = await self._call(
                AdoptActivity.BILLING_READ_INVOICES,
                ReadInvoices(invoice_ids=batch),
                InvoicesRead,
                TaskQueue.BILLING,
            )
            for invoice_id, snapshot in read.items.items():
                if snapshot.invoice is not None:
                    accounts[invoice_id] = snapshot.invoice.account_id
                else:
                    unreadable[invoice_id] = snapshot.unreadable or "unreadable"
        sagas = await self._existing(Kind.INVOICES)
        entries, settled, off, tied = invoice_ledger(
            billing, erp, accounts=accounts, unreadable=unreadable, sagas=sagas
        )
        for system, failure in (("billing", billing_failure), ("erp", erp_failure)):
            if failure is not None:
                entries.append(
                    LedgerEntry(
                        entry_id=f"invoices:{system}:listing",
                        kind=Kind.INVOICES,
                        subject=f"{system}:listing",
                        bucket=Bucket.UNREADABLE,
                        reason=f"the {system} listing stopped: {failure}",
                    )
                )
        self._ledger.entries = entries
        self._ledger.settled = settled
        self._ledger.tie_out = off
        self._ledger.tied = tied

    # -- acting on approvals --------------------------------------------------------------

    def _entries(self, ids: list[str]) -> list[LedgerEntry]:
        found = (self._ledger.entry(i) for i in ids)
        return [e for e in found if e is not None]

    async def _adopt_customers(self, ids: list[str]) -> None:
        entries = self._entries(ids)
        size = self._input.batch_size
        refused: dict[str, str] = {}
        for system, activity, queue in (
            ("erp", AdoptActivity.ERP_LINK_CUSTOMERS, TaskQueue.ERP),
            ("billing", AdoptActivity.BILLING_LINK_CUSTOMERS, TaskQueue.BILLING),
        ):
            requests = [
                LinkRequest(
                    record_id=link.record_id,
                    golden_id=entry.subject,
                    key=f"adopt:{system}:{link.record_id}:{entry.subject}",
                )
                for entry in entries
                for link in entry.links
                if link.system == system and link.by_key
            ]
            for batch in _chunks(requests, size):
                written = await self._call(
                    activity, LinkCustomers(links=batch), LinksWritten, queue
                )
                for request in batch:
                    if request.record_id in written.refused:
                        refused[request.golden_id] = (
                            f"{system} {request.record_id}: {written.refused[request.record_id]}"
                        )
        accounts = [e.subject for e in entries if e.subject not in refused]
        outcomes: dict[str, str] = {}
        for batch_ids in _chunks(accounts, size):
            read = await self._call(
                AdoptActivity.CRM_READ_ACCOUNTS,
                ReadAccounts(account_ids=batch_ids),
                AccountsRead,
                TaskQueue.CRM,
            )
            for account_id, reason in read.unreadable.items():
                refused[account_id] = f"the CRM account cannot be read: {reason}"
            assert read.read_at is not None
            seeds = [
                GoldenSeed(
                    customer=customer,
                    event_id=f"adopt:{workflow.info().workflow_id}:{customer.account_id}",
                    read_at=read.read_at,
                )
                for customer in read.customers
            ]
            if seeds:
                started = await self._call(
                    AdoptActivity.START_GOLDEN_RECORDS,
                    StartGoldenRecords(seeds=seeds),
                    Started,
                    TaskQueue.ORCHESTRATION,
                )
                outcomes.update(started.outcomes)
        for entry in entries:
            if entry.subject in refused:
                entry.outcome = f"refused: {refused[entry.subject]}"
                continue
            linked = [f"{link.system} {link.record_id}" for link in entry.links if link.by_key]
            wrote = f"cross-reference written ({', '.join(linked)}); " if linked else ""
            entry.outcome = wrote + outcomes.get(entry.subject, "golden record started")

    async def _adopt_invoices(self, ids: list[str]) -> None:
        entries = self._entries(ids)
        size = self._input.batch_size
        # What the ERP holds now, for the receivables the entries name.
        erp_due: dict[str, Any] = {}
        if any(e.links for e in entries):
            receivables, failure = await self._list(
                ReconcileActivity.ERP_LIST_RECEIVABLES, TaskQueue.ERP, InvoicePage
            )
            if failure is not None:
                for entry in entries:
                    entry.outcome = f"refused: the ERP listing stopped: {failure}"
                return
            erp_due = {r.record_id: r.amount_due for r in receivables}
        customers: dict[str, str | None] = {}
        accounts = sorted({e.account_id for e in entries if e.account_id and e.links})
        for batch in _chunks(accounts, size):
            found = await self._call(
                AdoptActivity.ERP_FIND_CUSTOMERS,
                FindCustomers(golden_ids=batch),
                CustomersFound,
                TaskQueue.ERP,
            )
            customers.update(found.found)
        outcomes: dict[str, str] = {}
        for batch_entries in _chunks(entries, size):
            read = await self._call(
                AdoptActivity.BILLING_READ_INVOICES,
                ReadInvoices(
                    invoice_ids=[e.subject for e in batch_entries],
                    amounts=True,
                    page_size=self._input.page_size,
                ),
                InvoicesRead,
                TaskQueue.BILLING,
            )
            starts: list[InvoiceStart] = []
            for entry in batch_entries:
                snapshot = read.items[entry.subject]
                if snapshot.invoice is None or snapshot.amount_due is None:
                    outcomes[entry.subject] = f"refused: {snapshot.unreadable or 'unreadable'}"
                    continue
                if snapshot.amount_due <= 0:
                    outcomes[entry.subject] = "refused: paid or credited since it was read"
                    continue
                assert snapshot.watermark is not None
                link = entry.links[0] if entry.links else None
                customer = customers.get(entry.account_id or "") if link else None
                if link is not None and customer is None:
                    outcomes[entry.subject] = (
                        f"refused: the ERP has no customer for account {entry.account_id}: "
                        "adopt the customers first"
                    )
                    continue
                starts.append(
                    InvoiceStart(
                        invoice=snapshot.invoice,
                        amount_due=snapshot.amount_due,
                        watermark=snapshot.watermark,
                        receivable_id=link.record_id if link else None,
                        receivable_key=receivable_key(entry.subject)
                        if link and link.how == "xref"
                        else None,
                        erp_customer_id=customer,
                        erp_amount_due=erp_due.get(link.record_id) if link else None,
                    )
                )
            if starts:
                started = await self._call(
                    AdoptActivity.START_INVOICE_SAGAS,
                    StartInvoiceSagas(starts=starts),
                    Started,
                    TaskQueue.ORCHESTRATION,
                )
                outcomes.update(started.outcomes)
        for entry in entries:
            entry.outcome = outcomes.get(entry.subject, "refused: not handled")

    # -- the Web UI -----------------------------------------------------------------------

    def _details(self) -> str:
        ledger = self._ledger
        counts = ", ".join(f"{bucket} {n}" for bucket, n in ledger.counts().items()) or "-"
        approved = sum(1 for e in ledger.entries if e.approval is not None)
        lines = [
            f"**Adoption:** {ledger.kind.value}, window {ledger.window}",
            f"**Ledger:** {counts}",
            f"**Approved:** {approved}; waiting: {sum(len(b) for b in self._queue)}",
        ]
        if ledger.kind is Kind.INVOICES:
            lines.append(
                f"**Tie-out:** {ledger.tied} customer-currency pairs tie out, "
                f"{len(ledger.tie_out)} differ; {ledger.settled} invoices settled (history)"
            )
        return "\n\n".join(lines)
