"""The deployment's policies as they stand now, for sagas that live across many runs.

A saga takes its policy in its input and keeps it for its run (it is in the history, so a
replay decides as the run did). A saga that lives for months (an invoice through its revenue
schedule, a golden customer forever) asks for the deployment's current policies each time it
continues as new: a change of ``REVSYNC_INVOICE_POLICY`` or ``REVSYNC_CUSTOMER_MASTER_POLICY``
reaches every running saga at its next run, not never (docs/configuration.md, "Which
settings reach running sagas").
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from domain.invoice_contracts import InvoicePolicy
from domain.master_contracts import MasterPolicy

# The orchestration worker's activity that reads them from its settings.
CURRENT_POLICIES = "policy.current"


class CurrentPolicies(BaseModel):
    """The long-lived sagas' policies from the settings of the worker that answered."""

    model_config = ConfigDict(frozen=True)

    invoice: InvoicePolicy
    customer_master: MasterPolicy
