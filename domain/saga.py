"""The state of one quote-to-cash saga, as the ``status`` query returns it."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, Field

from domain.quote import Quote
from domain.stages import OrderStage


class Step(StrEnum):
    """The saga's steps, in order. Also the values of the ``BlockedStep`` search attribute."""

    VALIDATE_QUOTE = "validate_quote"
    FETCH_ACCOUNT = "fetch_account"
    CHECK_CATALOG = "check_catalog"
    BOOK_ERP_ORDER = "book_erp_order"
    PROVISION_BILLING = "provision_billing"
    UPDATE_CRM = "update_crm"
    # Compensations
    CANCEL_SUBSCRIPTION = "cancel_subscription"
    VOID_INVOICE = "void_invoice"
    CANCEL_ERP_ORDER = "cancel_erp_order"
    MARK_CRM_REJECTED = "mark_crm_rejected"


class StepState(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    COMPENSATED = "compensated"


class StepRecord(BaseModel):
    step: Step
    state: StepState
    started_at: datetime
    finished_at: datetime | None = None
    detail: str | None = None
    external_ids: dict[str, str] = Field(default_factory=dict)


class FailureType:
    """Stable ``ApplicationError.type`` names; workflows branch on these, never on messages."""

    VENDOR_TRANSIENT = "VendorTransient"
    VENDOR_UNKNOWN_OUTCOME = "VendorUnknownOutcome"
    VENDOR_REJECTED = "VendorRejected"
    ACCOUNT_NOT_FOUND = "AccountNotFound"
    ACCOUNT_INVALID = "AccountInvalid"
    CATALOG_MISMATCH = "CatalogMismatch"

    NON_RETRYABLE = (VENDOR_REJECTED, ACCOUNT_NOT_FOUND, ACCOUNT_INVALID, CATALOG_MISMATCH)


class QuoteToCashInput(BaseModel):
    quote: Quote


class QuoteToCashStatus(BaseModel):
    """Everything an operator needs to know about one order, in one place."""

    workflow_id: str
    quote_id: str
    account_id: str
    customer_name: str | None = None
    amount: Decimal
    currency: str
    stage: OrderStage
    reason: str | None = Field(default=None, description="Why it was rejected or compensated")
    erp_customer_id: str | None = None
    erp_order_id: str | None = None
    billing_customer_id: str | None = None
    subscription_id: str | None = None
    invoice_id: str | None = None
    crm_order_id: str | None = None
    crm_status: str | None = None
    steps: list[StepRecord] = Field(default_factory=list)

    def step(self, step: Step) -> StepRecord | None:
        """The latest record of ``step``, if it ran."""
        for record in reversed(self.steps):
            if record.step is step:
                return record
        return None
