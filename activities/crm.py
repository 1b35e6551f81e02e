"""CRM activities (task queue ``crm``)."""

from __future__ import annotations

from structlog.contextvars import bound_contextvars
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.classify import vendor_call
from adapters.errors import NotFoundError
from adapters.ports import CrmPort
from domain.contracts import (
    Activity,
    CrmOrderRecord,
    FetchAccount,
    MarkQuoteRejected,
    RecordOrderInCrm,
)
from domain.customer import Customer, account_problems
from domain.saga import FailureType

QUOTE_ORDERED = "Ordered"
QUOTE_REJECTED = "Rejected"


class CrmActivities:
    def __init__(self, crm: CrmPort) -> None:
        self.crm = crm

    @activity.defn(name=Activity.CRM_FETCH_ACCOUNT)
    async def fetch_account(self, request: FetchAccount) -> Customer:
        """Read the account and check it can be booked (tax id, billing email...)."""
        try:
            with bound_contextvars(customer_id=request.account_id), vendor_call(self.crm.vendor):
                customer = await self.crm.get_account(request.account_id)
        except ApplicationError as error:
            if isinstance(error.__cause__, NotFoundError):
                raise ApplicationError(
                    f"CRM account {request.account_id} does not exist",
                    type=FailureType.ACCOUNT_NOT_FOUND,
                    non_retryable=True,
                ) from error
            raise
        problems = account_problems(customer)
        if problems:
            listing = "; ".join(f"{p.field}: {p.message}" for p in problems)
            raise ApplicationError(
                f"CRM account {customer.account_id} cannot be booked: {listing}",
                [p.model_dump() for p in problems],
                type=FailureType.ACCOUNT_INVALID,
                non_retryable=True,
            )
        return customer

    @activity.defn(name=Activity.CRM_RECORD_ORDER)
    async def record_order(self, request: RecordOrderInCrm) -> CrmOrderRecord:
        with vendor_call(self.crm.vendor):
            crm_order_id = await self.crm.record_order(
                quote_id=request.quote_id,
                account_id=request.account_id,
                order_key=request.order_key,
                sales_order=request.sales_order,
                subscription=request.subscription,
            )
        return CrmOrderRecord(crm_order_id=crm_order_id, quote_status=QUOTE_ORDERED)

    @activity.defn(name=Activity.CRM_MARK_QUOTE_REJECTED)
    async def mark_quote_rejected(self, request: MarkQuoteRejected) -> str:
        with vendor_call(self.crm.vendor):
            await self.crm.set_quote_status(request.quote_id, QUOTE_REJECTED, request.reason)
        return QUOTE_REJECTED
