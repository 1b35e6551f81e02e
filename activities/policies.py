"""The deployment's current policies (task queue ``orchestration``): read from the worker's
settings, no vendor call."""

from __future__ import annotations

from temporalio import activity

from domain.policies import CURRENT_POLICIES, CurrentPolicies
from revsync.settings import Settings


class PolicyActivities:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @activity.defn(name=CURRENT_POLICIES)
    async def current(self) -> CurrentPolicies:
        """The policies a saga continuing as new runs its next run under."""
        return CurrentPolicies(
            invoice=self.settings.invoice_policy,
            customer_master=self.settings.customer_master_policy,
        )
