"""Customer-master activities: write golden fields to each system, find a customer's records,
and search visibility for suspected duplicates.

Each vendor call goes through :func:`activities.classify.vendor_call`, so a failure carries
the same retry semantics as quote-to-cash's (transient, unknown outcome, rejected).
"""

from __future__ import annotations

import structlog
from structlog.contextvars import bound_contextvars
from temporalio import activity
from temporalio.client import Client, WorkflowQueryFailedError, WorkflowQueryRejectedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from activities.classify import vendor_call
from adapters.ports import BillingPort, CrmPort, ErpPort
from domain.customer_master import (
    CustomerProfile,
    DuplicateSuspicion,
    PropagationUpdate,
    master_workflow_id,
    match,
)
from domain.master_contracts import (
    ABNORMAL_ENDS,
    WORKFLOW_TYPE,
    CustomerLink,
    CustomerMasterStatus,
    DuplicateCandidates,
    FindCustomerLink,
    FindDuplicates,
    FindPreviousRecord,
    MasterActivity,
    PreviousRecord,
    erp_external_id,
)
from domain.saga import FailureType

log = structlog.get_logger("revsync.activities.customer_master")

# Compared at most this many candidates per search: a tax id or domain shared by more
# golden records than this is no identifying signal any more.
MAX_CANDIDATES = 50
PROFILE_QUERY = "profile"
TAX_ID_HASH_ATTRIBUTE = "MasterTaxIdHash"
DOMAINS_ATTRIBUTE = "MasterDomains"


def record_key(update: PropagationUpdate, record_id: str) -> str:
    """The idempotency key of ``update`` for one of its records: the plan's key when it
    updates one record (the usual case), else the key with the record id appended (a
    golden record merged from two holds two records in one system)."""
    if len(update.record_ids) == 1:
        return update.idempotency_key
    return f"{update.idempotency_key}:{record_id}"


class CrmMasterActivities:
    def __init__(self, crm: CrmPort) -> None:
        self.crm = crm

    @activity.defn(name=MasterActivity.CRM_UPDATE_ACCOUNT_FIELDS)
    async def update_account_fields(self, update: PropagationUpdate) -> None:
        for account_id in update.record_ids:
            with bound_contextvars(customer_id=account_id), vendor_call(self.crm.vendor):
                await self.crm.update_account_fields(
                    account_id, update.fields, record_key(update, account_id)
                )


class BillingMasterActivities:
    def __init__(self, billing: BillingPort) -> None:
        self.billing = billing

    @activity.defn(name=MasterActivity.BILLING_UPDATE_CUSTOMER_FIELDS)
    async def update_customer_fields(self, update: PropagationUpdate) -> None:
        for customer_id in update.record_ids:
            with vendor_call(self.billing.vendor):
                await self.billing.update_customer_fields(
                    customer_id, update.fields, record_key(update, customer_id)
                )

    @activity.defn(name=MasterActivity.BILLING_FIND_CUSTOMER)
    async def find_customer(self, request: FindCustomerLink) -> CustomerLink:
        with bound_contextvars(customer_id=request.golden_id), vendor_call(self.billing.vendor):
            return CustomerLink(record_id=await self.billing.find_customer(request.golden_id))


class ErpMasterActivities:
    def __init__(self, erp: ErpPort) -> None:
        self.erp = erp

    @activity.defn(name=MasterActivity.ERP_UPDATE_CUSTOMER_FIELDS)
    async def update_customer_fields(self, update: PropagationUpdate) -> None:
        for customer_id in update.record_ids:
            with vendor_call(self.erp.vendor):
                await self.erp.update_customer_fields(
                    customer_id, update.fields, record_key(update, customer_id)
                )

    @activity.defn(name=MasterActivity.ERP_FIND_CUSTOMER)
    async def find_customer(self, request: FindCustomerLink) -> CustomerLink:
        external_id = erp_external_id(request.golden_id)
        with bound_contextvars(customer_id=request.golden_id), vendor_call(self.erp.vendor):
            return CustomerLink(record_id=await self.erp.find_customer(external_id))


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def candidates_query(tax_id_hash: str | None, domains: tuple[str, ...]) -> str | None:
    """The visibility query for running golden records sharing the tax id hash or a domain;
    None when the record has neither (nothing identifies it yet)."""
    clauses: list[str] = []
    if tax_id_hash:
        clauses.append(f"{TAX_ID_HASH_ATTRIBUTE} = {_quoted(tax_id_hash)}")
    if domains:
        clauses.append(f"{DOMAINS_ATTRIBUTE} IN ({', '.join(_quoted(d) for d in domains)})")
    if not clauses:
        return None
    return (
        f"WorkflowType = {_quoted(WORKFLOW_TYPE)} AND ExecutionStatus = 'Running' AND "
        f"({' OR '.join(clauses)})"
    )


class DuplicateSearch:
    """Finds golden records that may be the same company, through Temporal visibility."""

    def __init__(self, client: Client) -> None:
        self.client = client

    @activity.defn(name=MasterActivity.FIND_DUPLICATES)
    async def find_duplicates(self, request: FindDuplicates) -> DuplicateCandidates:
        """Candidates share the tax id hash or a domain (search attributes); each one's
        profile is read with its ``profile`` query and compared by
        :func:`domain.customer_master.match`."""
        query = candidates_query(request.tax_id_hash, request.domains)
        if query is None:
            return DuplicateCandidates()
        own = master_workflow_id(request.profile.golden_id)
        suspicions: list[DuplicateSuspicion] = []
        seen = 0
        async for execution in self.client.list_workflows(query, limit=MAX_CANDIDATES + 1):
            if execution.id == own:
                continue
            seen += 1
            if seen > MAX_CANDIDATES:
                log.warning("too many duplicate candidates", golden_id=request.profile.golden_id)
                break
            handle = self.client.get_workflow_handle(execution.id)
            try:
                profile = await handle.query(PROFILE_QUERY, result_type=CustomerProfile)
            except (RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError) as error:
                # Closed (merged) since the list was read, or not answering: not a candidate.
                log.info("candidate not queried", candidate=execution.id, error=str(error))
                continue
            suspicion = match(request.profile, profile)
            if suspicion is not None:
                suspicions.append(suspicion)
            activity.heartbeat(seen)
        suspicions.sort(key=lambda s: s.candidate)
        return DuplicateCandidates(suspicions=tuple(suspicions), candidates_seen=seen)


class PreviousRecords:
    """What an earlier chain of a customer master ended with, through Temporal itself."""

    def __init__(self, client: Client) -> None:
        self.client = client

    @activity.defn(name=MasterActivity.FIND_PREVIOUS_RECORD)
    async def find_previous_record(self, request: FindPreviousRecord) -> PreviousRecord:
        """The latest run of this customer's workflow id that ended without handing on
        (terminated, failed, timed out: the server's history limit ends a run so) and its
        ``status`` query, which Temporal answers for a closed run by replaying its history.
        Nothing when the id never ran, or its last end was a normal one. A status that
        cannot be read yet is an error, retried: the new run waits rather than start empty."""
        workflow_id = master_workflow_id(request.golden_id)
        previous = None
        async for execution in self.client.list_workflows(f'WorkflowId = "{workflow_id}"'):
            if execution.run_id == request.run_id:
                continue
            if previous is None or execution.start_time > previous.start_time:
                previous = execution
        if previous is None:
            return PreviousRecord()
        # Visibility may lag behind the end of the run: its own description does not.
        latest = await self.client.get_workflow_handle(
            workflow_id, run_id=previous.run_id
        ).describe()
        if latest.status is None or latest.status.name not in ABNORMAL_ENDS:
            return PreviousRecord()
        handle = self.client.get_workflow_handle(workflow_id, run_id=latest.run_id)
        try:
            status = await handle.query("status", result_type=CustomerMasterStatus)
        except (RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError) as error:
            raise ApplicationError(
                f"run {latest.run_id} ({latest.status.name}) holds this customer's record "
                f"and does not answer its status query yet: {error}",
                type=FailureType.VENDOR_TRANSIENT,
            ) from error
        log.warning(
            "customer master restarts from an earlier run's record",
            golden_id=request.golden_id,
            previous_run=latest.run_id,
            ended=latest.status.name,
        )
        return PreviousRecord(run_id=latest.run_id, ended=latest.status.name, status=status)
