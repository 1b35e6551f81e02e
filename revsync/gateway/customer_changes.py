"""The gateway's side of customer change webhooks: a verified, mapped change goes to its
golden customer with update-with-start (:func:`revsync.customer_master.deliver_change`) and
the sender gets the verdict per field.

- 200 ``{"status": "applied" | "duplicate" | "ignored", "golden_id", "workflow_id",
  "verdicts": {field: applied | unchanged | stale | not_owner_ignored | not_owner_review},
  "propagating_to": [...], "state"}``;
- 422 the change cannot be routed or its values are invalid (:class:`RoutingError`), or
  the golden customer refused it (its validator's reason);
- 503 with ``Retry-After`` while Temporal is unreachable (the sender delivers again; the
  event id makes the repeat harmless).
"""

from __future__ import annotations

from typing import Literal

import structlog
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from temporalio.client import Client
from temporalio.common import MetricMeter
from temporalio.service import RPCError, RPCStatusCode

from adapters.webhooks.customer_changes import RoutedChange
from domain.customer_master import master_workflow_id
from domain.master_contracts import ChangeResult, MasterPolicy
from revsync import metrics
from revsync.customer_master import ChangeRefused, deliver_change
from revsync.gateway.refusals import Refused

log = structlog.get_logger("revsync.gateway.customer_changes")

RETRY_AFTER_SECONDS = 5


class CustomerChangeApplied(BaseModel):
    """A customer change its golden customer took: the verdict per field."""

    status: Literal["applied", "duplicate"]
    golden_id: str = Field(description="The CRM account id the change was routed to")
    workflow_id: str = Field(description="customer-<golden id>")
    event_id: str
    verdicts: dict[str, str] = Field(
        description="field -> applied, unchanged, stale, not_owner_ignored or not_owner_review"
    )
    reviews: int = Field(description="Proposals this change raised for a data steward")
    propagating_to: list[str] = Field(description="Systems the applied fields are written to")
    state: str = Field(description="ACTIVE, NEEDS_REVIEW or MERGED")


class CustomerChangeIgnored(BaseModel):
    """A verified customer change that changes no golden field."""

    status: Literal["ignored"]
    event_id: str
    reason: str


def change_body(result: ChangeResult) -> dict[str, object]:
    return CustomerChangeApplied(
        status="duplicate" if result.duplicate else "applied",
        golden_id=result.golden_id,
        workflow_id=master_workflow_id(result.golden_id),
        event_id=result.event_id,
        verdicts={field.value: verdict.value for field, verdict in result.verdicts.items()},
        reviews=len(result.reviews),
        propagating_to=[system.value for system in result.propagating_to],
        state=result.state.value,
    ).model_dump(mode="json")


async def apply_customer_changes(
    client: Client,
    changes: list[RoutedChange],
    policy: MasterPolicy,
    *,
    source: str,
    meter: MetricMeter = MetricMeter.noop,
) -> JSONResponse | list[ChangeResult]:
    """Deliver each change in order. Returns the results, or the 503 response to send when
    Temporal is unreachable. Raises :class:`Refused` (422) when a customer refuses one."""
    results: list[ChangeResult] = []
    for change in changes:
        try:
            results.append(await deliver_change(client, change.golden_id, change.event, policy))
        except ChangeRefused as refused:
            log.warning(
                "customer change refused",
                source=source,
                customer_id=change.golden_id,
                event_id=change.event.event_id,
                reason=str(refused),
            )
            raise Refused(422, str(refused)) from None
        except RPCError as error:
            if error.status not in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
                raise
            log.warning("temporal unavailable", source=source, customer_id=change.golden_id)
            metrics.count(meter, metrics.WEBHOOK_DELIVERIES, source=source, outcome="unavailable")
            return JSONResponse(
                {"error": "temporarily unavailable, retry later"},
                status_code=503,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        log.info(
            "customer change applied",
            source=source,
            customer_id=change.golden_id,
            event_id=change.event.event_id,
            verdicts={f.value: v.value for f, v in results[-1].verdicts.items()},
        )
    outcome = "duplicate" if results and all(r.duplicate for r in results) else "applied"
    metrics.count(meter, metrics.WEBHOOK_DELIVERIES, source=source, outcome=outcome)
    return results


async def customer_change_response(
    client: Client,
    change: RoutedChange | None,
    policy: MasterPolicy,
    *,
    source: str,
    event_id: str,
    meter: MetricMeter = MetricMeter.noop,
) -> JSONResponse:
    """The answer to one customer change webhook (see the module)."""
    if change is None:
        metrics.count(meter, metrics.WEBHOOK_DELIVERIES, source=source, outcome="acknowledged")
        ignored = CustomerChangeIgnored(
            status="ignored", event_id=event_id, reason="no golden field changed"
        )
        return JSONResponse(ignored.model_dump(mode="json"))
    applied = await apply_customer_changes(client, [change], policy, source=source, meter=meter)
    if isinstance(applied, JSONResponse):
        return applied
    return JSONResponse(change_body(applied[0]))
