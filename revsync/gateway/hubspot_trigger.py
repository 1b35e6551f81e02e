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

revsync's own writes come back too: a deal or company property revsync wrote is sent as a
change made by the app (``changeSource`` ``INTEGRATION``, ``sourceId`` the app's id).
:func:`without_own_writes` takes them out of the batch before anything else reads it, counts
each in ``revsync_webhook_events_ignored`` (``reason="own_write"``) and the batch is answered
as usual (200 when nothing else is in it): the customer master would otherwise take its own
propagation for a change from the CRM and could send it round again.

Company events of the same batches (``company.propertyChange`` of a golden property,
``company.creation``, ``company.merge``) go to the customer master: :func:`company_changes`
maps them (:mod:`adapters.webhooks.hubspot_companies`) and delivers them as the Salesforce
Account notifications are; :func:`batch_answer` answers a batch holding both, the company
outcomes listed under ``customers``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog
from fastapi.responses import JSONResponse, Response
from temporalio.client import Client
from temporalio.common import MetricMeter

from adapters.crm.hubspot import HubSpotCrm
from adapters.crm.hubspot_deals import DealMappingError
from adapters.errors import NotFoundError, VendorError
from adapters.webhooks import hubspot_companies
from adapters.webhooks.customer_changes import RoutedChange, RoutingError
from adapters.webhooks.hubspot import HubSpotEvent, is_own_write
from domain.master_contracts import MasterPolicy
from domain.quote import Quote
from revsync import metrics
from revsync.gateway.customer_changes import apply_customer_changes, change_body
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


def without_own_writes(
    events: list[HubSpotEvent], raw: list[Any], *, app_id: int | None, meter: MetricMeter
) -> tuple[list[HubSpotEvent], list[Any]]:
    """The batch's events, and their JSON (``raw``, in the same order), without the changes
    revsync itself made (:func:`~adapters.webhooks.hubspot.is_own_write` with the app id
    ``REVSYNC_HUBSPOT_APP_ID``); each one left out is logged and counted."""
    kept: list[HubSpotEvent] = []
    kept_raw: list[Any] = []
    for index, event in enumerate(events):
        if is_own_write(event, app_id):
            log.info(
                "hubspot own write ignored",
                event_id=event.eventId,
                subscription=event.subscriptionType,
                object_id=event.objectId,
                property=event.propertyName,
            )
            metrics.count(
                meter, metrics.WEBHOOK_EVENTS_IGNORED, source="hubspot", reason="own_write"
            )
            continue
        kept.append(event)
        kept_raw.append(raw[index] if index < len(raw) else None)
    return kept, kept_raw


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
    received: int | None = None,
) -> Response | None:
    """The answer to a verified batch with closed-won events; None when it has none (or the
    CRM is not HubSpot): the caller acknowledges it. ``received``: the number of events the
    batch held (default ``len(events)``)."""
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
        {
            "status": "started" if started else "received",
            "events": len(events) if received is None else received,
            "deals": outcomes,
        },
        status_code=202 if started else 200,
    )


def _count(meter: MetricMeter, outcome: str) -> None:
    """One deal's outcome in ``revsync_webhook_deliveries`` (starts and duplicates are
    counted by start_quote_to_cash, a 422 by the endpoint)."""
    metrics.count(meter, metrics.WEBHOOK_DELIVERIES, source="hubspot", outcome=outcome)


# -- company changes ------------------------------------------------------------------------


@dataclass
class CompanyChanges:
    """What the company events of a batch came to: one entry per event that reached (or
    could not reach) its golden customer, whether HubSpot should deliver again (a read
    failed transiently, or Temporal is unreachable) and the invalid values to answer 422."""

    customers: list[dict[str, Any]] = field(default_factory=list)
    retry: bool = False
    invalid: list[dict[str, str]] = field(default_factory=list)


async def company_changes(
    events: list[HubSpotEvent],
    raw: list[Any],
    *,
    reader: HubSpotCrm | None,
    client: Client,
    policy: MasterPolicy,
    meter: MetricMeter,
) -> CompanyChanges | None:
    """Deliver the batch's company changes to their golden customers (``customer-<company
    id>``) through :func:`~revsync.gateway.customer_changes.apply_customer_changes`, the
    Salesforce Account path: the same verdicts, deduplication by event id, ordering and
    metrics. None when the batch has no company event that may change a golden field, or
    the CRM is not HubSpot (acknowledged: the golden id would be another CRM's).

    A company is read at most once per batch. An unmappable value is 422 until the event's
    ``attemptNumber`` reaches :data:`MAX_MAPPING_ATTEMPTS`, then acknowledged as
    ``unmappable`` (HubSpot would send the same value again); a company deleted since is
    ``gone``. Raises :class:`Refused` (422) when a golden customer refuses a change."""
    selected = hubspot_companies.company_events(events, raw)
    if not selected:
        return None
    if reader is None:
        log.info("hubspot company changes ignored: the CRM is not hubspot", events=len(selected))
        return None
    outcome = CompanyChanges()
    reads: dict[str, dict[str, Any] | str] = {}
    changes: list[RoutedChange] = []
    for company_event in selected:
        company_id, event_key = company_event.company_id, company_event.event_id
        company: dict[str, Any] | None = None
        if company_event.needs_read:
            if company_id not in reads:
                reads[company_id] = await _company(reader, company_id)
            read = reads[company_id]
            if isinstance(read, str):
                outcome.retry = outcome.retry or read == "unavailable"
                outcome.customers.append(
                    {"golden_id": company_id, "event_id": event_key, "status": read}
                )
                continue
            company = read
        try:
            change = hubspot_companies.change_from_event(company_event, company)
        except RoutingError as error:
            fields = [
                {**f, "field": f"companies.{company_id}.{f['field']}"}
                for f in error.fields or [{"field": "(event)", "message": error.reason}]
            ]
            if company_event.event.attemptNumber + 1 >= MAX_MAPPING_ATTEMPTS:
                log.error("hubspot company change unmappable, acknowledged", fields=fields)
                outcome.customers.append(
                    {
                        "golden_id": company_id,
                        "event_id": event_key,
                        "status": "unmappable",
                        "fields": fields,
                    }
                )
            else:
                log.warning("hubspot company change unmappable", fields=fields)
                outcome.invalid.extend(fields)
            continue
        if company_event.merged_ids:
            log.info(
                "hubspot companies merged: their golden customers wait for a steward",
                survivor=company_id,
                merged=list(company_event.merged_ids),
            )
        if change is not None:
            changes.append(change)
    if not changes:
        if not outcome.invalid:  # a 422 is counted as refused by the endpoint
            _count(meter, "unavailable" if outcome.retry else "acknowledged")
        return outcome
    applied = await apply_customer_changes(client, changes, policy, source="hubspot", meter=meter)
    if isinstance(applied, Response):
        outcome.retry = True
        outcome.customers.extend(
            {"golden_id": c.golden_id, "event_id": c.event.event_id, "status": "unavailable"}
            for c in changes
        )
        return outcome
    outcome.customers.extend(change_body(result) for result in applied)
    return outcome


def batch_answer(
    deals: Response | None,
    refused: Refused | None,
    companies: CompanyChanges,
    events: int,
) -> Response:
    """One answer for a batch with company changes and maybe closed-won deals: 503 when
    either asks HubSpot to deliver again, 422 with every invalid field when either has one,
    else the deals' answer (or ``received``) with the ``customers`` listed."""
    deal_body: dict[str, Any] = {}
    if deals is not None and isinstance(deals, JSONResponse):
        deal_body = json.loads(bytes(deals.body))
    if companies.retry or (deals is not None and deals.status_code >= 500):
        return JSONResponse(
            {
                "error": "temporarily unavailable, retry later",
                **({"deals": deal_body["deals"]} if "deals" in deal_body else {}),
                "customers": companies.customers,
            },
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    if refused is not None or companies.invalid:
        deal_fields = refused.extra.get("fields", []) if refused is not None else []
        fields = [*deal_fields, *companies.invalid]
        reason = "invalid deal" if refused is not None else "invalid company change"
        raise Refused(422, reason, fields=fields)
    if deals is None:
        return JSONResponse(
            {"status": "received", "events": events, "customers": companies.customers}
        )
    return JSONResponse({**deal_body, "customers": companies.customers}, deals.status_code)


async def _company(reader: HubSpotCrm, company_id: str) -> dict[str, Any] | str:
    """The company's golden properties; ``"gone"`` when HubSpot no longer has it;
    ``"unavailable"`` when the read failed in a way a redelivery may not."""
    try:
        return await reader.company_properties(company_id)
    except NotFoundError as error:
        log.warning("hubspot company not found", company_id=company_id, error=str(error))
        return "gone"
    except VendorError as error:
        log.warning("hubspot company read failed", company_id=company_id, error=str(error))
        return "unavailable"


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
