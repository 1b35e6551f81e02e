"""HubSpot's closed-won trigger: a deal moved to the closed-won stage starts quote-to-cash.

HubSpot delivers ``deal.propertyChange`` events (a batch of 1 to 100, already verified by
:mod:`revsync.gateway.webhooks`) carrying only ids. For each event whose ``propertyName`` is
``dealstage`` and ``propertyValue`` the closed-won stage (``REVSYNC_HUBSPOT_CLOSED_WON_STAGE``,
``closedwon`` by default), the deal is read back from HubSpot with its company and line items
(:meth:`adapters.crm.hubspot.HubSpotCrm.closed_won_quote`), mapped to the canonical quote and
handed to :func:`~revsync.gateway.webhooks.start_quote_to_cash` under the workflow id of its
quote (``q2c-<deal id>``): a redelivery, or the same deal in two events, starts nothing new
and is answered ``duplicate``. Only a gateway whose CRM is HubSpot (``REVSYNC_CRM=hubspot``)
starts sagas: with another CRM the events are acknowledged, since the saga would write the
order to that CRM under a HubSpot deal id.

Answers (HubSpot retries a delivery that is not 2xx, with backoff, about ten times over a
day; every event of the batch comes back, which is harmless: starts are keyed):

- every closed-won deal started or a duplicate, or no closed-won event: 2xx (202 when a saga
  started) with one entry per deal;
- a read that failed transiently (HubSpot 5xx, throttled, unreachable, a token refused) or
  Temporal unavailable: 503 with ``Retry-After``, so HubSpot delivers the batch again; the
  deals that could start did;
- a deal that cannot be booked as it stands (a missing SKU, an unsupported billing frequency,
  no company, deleted): 422 with each field named (``deals.<id>.line_items.0.properties.
  hs_sku``), so HubSpot redelivers and a seller who fixes the deal meanwhile gets it booked
  by a redelivery. Not forever: from the event's ``attemptNumber``
  :data:`MAX_MAPPING_ATTEMPTS` on, the deal is acknowledged as ``unmappable`` (200, logged
  with its fields) and HubSpot stops; moving the deal out of closed-won and back in sends a
  new event.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import structlog
from fastapi.responses import JSONResponse, Response
from temporalio.client import Client
from temporalio.common import MetricMeter

from adapters.crm.hubspot import HubSpotCrm
from adapters.crm.hubspot_deals import DealMappingError
from adapters.errors import NotFoundError, VendorError
from adapters.webhooks.hubspot import HubSpotEvent
from domain.quote import Quote
from revsync import metrics
from revsync.gateway.refusals import Refused
from revsync.settings import Settings

log = structlog.get_logger("revsync.gateway.hubspot")

DEAL_STAGE_CHANGE = "deal.propertyChange"
DEAL_STAGE = "dealstage"
# Deliveries of an unmappable deal answered 422 before it is acknowledged as unmappable
# (attemptNumber counts from 0: the first delivery and four retries).
MAX_MAPPING_ATTEMPTS = 5
RETRY_AFTER_SECONDS = 30


def build_reader(settings: Settings, http: httpx.AsyncClient) -> HubSpotCrm | None:
    """The HubSpot client the trigger reads deals with; None unless the CRM is HubSpot.
    Raises :class:`~revsync.settings.MissingSetting` for a missing HubSpot credential."""
    if settings.crm != "hubspot":
        return None
    from adapters import registry  # the registry imports every adapter: only when needed

    return registry.hubspot_crm(settings, http)


def closed_won_deals(events: list[HubSpotEvent], stage: str) -> dict[str, int]:
    """Deal id -> the highest ``attemptNumber`` of its closed-won events, in batch order."""
    deals: dict[str, int] = {}
    for event in events:
        if (
            event.subscriptionType == DEAL_STAGE_CHANGE
            and event.propertyName == DEAL_STAGE
            and event.propertyValue == stage
        ):
            deal_id = str(event.objectId)
            deals[deal_id] = max(deals.get(deal_id, 0), event.attemptNumber)
    return deals


# revsync.gateway.webhooks.start_quote_to_cash (passed in: that module imports this one).
StartSaga = Callable[..., Awaitable[JSONResponse]]


async def closed_won(
    events: list[HubSpotEvent],
    *,
    settings: Settings,
    reader: HubSpotCrm | None,
    client: Client,
    start: StartSaga,
    meter: MetricMeter,
) -> Response | None:
    """The answer to a verified batch with closed-won events; None when it has none (or the
    CRM is not HubSpot): the caller acknowledges it."""
    deals = closed_won_deals(events, settings.hubspot_closed_won_stage)
    if not deals:
        return None
    if reader is None:
        log.info("hubspot closed-won ignored: the CRM is not hubspot", deals=len(deals))
        return None
    outcomes: list[dict[str, Any]] = []
    retry = False
    invalid: list[dict[str, str]] = []
    for deal_id, attempt in deals.items():
        quote_or_outcome = await _quote(reader, deal_id)
        if isinstance(quote_or_outcome, Quote):
            answer: JSONResponse = await start(
                client, quote_or_outcome, settings.saga_policy, source="hubspot", meter=meter
            )
            body = json.loads(bytes(answer.body))
            if answer.status_code >= 500:
                retry = True
                outcomes.append({"deal_id": deal_id, "status": "unavailable"})
            else:
                outcomes.append(
                    {
                        "deal_id": deal_id,
                        "status": body["status"],
                        "workflow_id": body["workflow_id"],
                    }
                )
            continue
        if isinstance(quote_or_outcome, str):
            retry = True
            outcomes.append({"deal_id": deal_id, "status": "unavailable"})
            _count(meter, "unavailable")
            continue
        fields = [{**f, "field": f"deals.{deal_id}.{f['field']}"} for f in quote_or_outcome]
        if attempt + 1 >= MAX_MAPPING_ATTEMPTS:
            log.error("hubspot deal unmappable, acknowledged", deal_id=deal_id, fields=fields)
            _count(meter, "refused")
            outcomes.append({"deal_id": deal_id, "status": "unmappable", "fields": fields})
        else:
            log.warning("hubspot deal unmappable", deal_id=deal_id, fields=fields)
            invalid.extend(fields)
    if retry:
        return JSONResponse(
            {"error": "temporarily unavailable, retry later", "deals": outcomes},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    if invalid:
        raise Refused(422, "invalid deal", fields=invalid)
    # The answers' shapes are published (revsync.gateway.versioning): DealsAccepted (202)
    # when a saga started, else EventsReceived with the deals listed.
    started = any(o["status"] == "started" for o in outcomes)
    return JSONResponse(
        {"status": "started" if started else "received", "events": len(events), "deals": outcomes},
        status_code=202 if started else 200,
    )


def _count(meter: MetricMeter, outcome: str) -> None:
    """One deal's outcome in ``revsync_webhook_deliveries`` (starts and duplicates are
    counted by start_quote_to_cash, a 422 by the endpoint)."""
    metrics.count(meter, metrics.WEBHOOK_DELIVERIES, source="hubspot", outcome=outcome)


async def _quote(reader: HubSpotCrm, deal_id: str) -> Quote | list[dict[str, str]] | str:
    """The deal's quote; its field errors when it cannot be booked; ``"retry"`` when the
    read failed in a way a redelivery may not."""
    try:
        return await reader.closed_won_quote(deal_id)
    except DealMappingError as error:
        return error.fields
    except NotFoundError as error:
        log.warning("hubspot deal not found", deal_id=deal_id, error=str(error))
        return [{"field": "objectId", "message": "the deal (or one of its line items) is gone"}]
    except VendorError as error:
        # Transient, an unknown outcome of a read, or a refusal of revsync's own access (a
        # missing scope): none is the deal's fault, so HubSpot delivers again.
        log.warning("hubspot deal read failed", deal_id=deal_id, error=str(error))
        return "retry"
