"""The closed vocabulary finance ops filter on (search attribute ``OrderStage``)."""

from __future__ import annotations

from enum import StrEnum


class OrderStage(StrEnum):
    RECEIVED = "RECEIVED"
    VALIDATING = "VALIDATING"
    AWAITING_APPROVAL = "AWAITING_APPROVAL"
    BOOKING_ERP = "BOOKING_ERP"
    PROVISIONING_BILLING = "PROVISIONING_BILLING"
    UPDATING_CRM = "UPDATING_CRM"
    BOOKED = "BOOKED"
    COMPENSATING = "COMPENSATING"
    COMPENSATED = "COMPENSATED"
    REJECTED = "REJECTED"
    NEEDS_ATTENTION = "NEEDS_ATTENTION"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STAGES


TERMINAL_STAGES = frozenset({OrderStage.BOOKED, OrderStage.COMPENSATED, OrderStage.REJECTED})
