"""HubSpot company events as customer changes of the golden customer ``customer-<company
id>`` (with HubSpot as the CRM the company id *is* the golden id, as the Salesforce account
id is with Salesforce).

HubSpot's webhook events carry ids, not records (field names as HubSpot sends them):

* ``company.propertyChange``: one property of one company, ``propertyName`` and its new
  ``propertyValue`` (``""`` when cleared). Only properties a golden field lives in
  (:mod:`adapters.crm.hubspot_fields`) matter; the others are acknowledged. A field kept in
  one property (name, owner, website, billing e-mail, legal entity, tax id, payment method
  state) is mapped from the event alone. A field kept in several (the billing address:
  ``address``, ``address2``, ``city``, ``state``, ``zip``, ``country``; the credit limit:
  ``revsync_credit_limit`` and its currency) needs the other parts: they are read from the
  company (:meth:`adapters.crm.hubspot.HubSpotCrm.company_properties`), the changed part
  taken from the event.
* ``company.creation``: the company is read and the fields HubSpot (the CRM) owns by the
  survivorship table (:data:`~domain.customer_master.OWNERSHIP`: name, owner, website)
  start its golden customer, which searches for duplicates. What a rep typed into fields
  another system owns is not forwarded at creation (it would hold every new company for a
  steward); a later change of such a property is a proposal, as the table says.
* ``company.merge``: companies merged into one (``primaryObjectId``, ``mergedObjectIds``,
  ``newObjectId`` when HubSpot made a new record). The surviving company is read and its
  CRM-owned fields delivered, like a creation. The golden customers of the merged-away
  companies are **not** merged automatically: nothing is, in the customer master; the
  survivor's duplicate search finds them when they share a tax id or a domain, and a data
  steward merges.

Ordering: ``occurredAt`` (milliseconds) is the change's version; HubSpot delivers events in
any order and retries a failed batch, so an older event arriving late is ``stale``.

Deduplication: HubSpot documents ``eventId`` as *not guaranteed to be unique*, so the event
id revsync keys on is ``hubspot-<portalId>-<objectId>-<occurredAt>-<eventId>-<property or
event type>``: the same for every redelivery (``attemptNumber`` is not part of it), distinct
for two changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adapters.crm import hubspot_fields
from adapters.webhooks.customer_changes import RoutedChange, routed_change
from adapters.webhooks.hubspot import HubSpotEvent
from domain.customer_master import OWNERSHIP, System

COMPANY_PROPERTY_CHANGE = "company.propertyChange"
COMPANY_CREATION = "company.creation"
COMPANY_MERGE = "company.merge"
HANDLED = frozenset({COMPANY_PROPERTY_CHANGE, COMPANY_CREATION, COMPANY_MERGE})

# A property that is one part of a golden field -> every part of that field.
GROUPS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(hubspot_fields.ADDRESS_PROPERTIES, hubspot_fields.ADDRESS_PROPERTIES),
    **dict.fromkeys(hubspot_fields.CREDIT_LIMIT_PROPERTIES, hubspot_fields.CREDIT_LIMIT_PROPERTIES),
}
# The properties of the golden fields the CRM owns, each kept in one property.
CRM_OWNED_PROPERTIES: tuple[str, ...] = tuple(
    name
    for field, name in hubspot_fields.SIMPLE_PROPERTIES.items()
    if OWNERSHIP[field].owner is System.CRM
)


class _MergeIds(BaseModel):
    """The merge-specific fields of a ``company.merge`` event (HubSpotEvent drops them)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    primaryObjectId: int | None = None
    newObjectId: int | None = None
    mergedObjectIds: list[int] = Field(default_factory=list)


class CompanyEvent(BaseModel):
    """A company event that may change golden fields, with the company it is about (for a
    merge, the surviving one)."""

    model_config = ConfigDict(frozen=True)

    event: HubSpotEvent
    company_id: str
    merged_ids: tuple[str, ...] = ()

    @property
    def needs_read(self) -> bool:
        """Whether the company must be read to map the event."""
        if self.event.subscriptionType != COMPANY_PROPERTY_CHANGE:
            return True
        return self.event.propertyName in GROUPS

    @property
    def event_id(self) -> str:
        return event_id(self.event)


def event_id(event: HubSpotEvent) -> str:
    """The deduplication key of ``event`` (see the module): stable across redeliveries."""
    what = event.propertyName or event.subscriptionType
    return f"hubspot-{event.portalId}-{event.objectId}-{event.occurredAt}-{event.eventId}-{what}"


def _survivor(event: HubSpotEvent, raw: object) -> tuple[str, tuple[str, ...]]:
    try:
        ids = _MergeIds.model_validate(raw if isinstance(raw, Mapping) else {})
    except ValidationError:
        ids = _MergeIds()
    survivor = ids.newObjectId or ids.primaryObjectId or event.objectId
    merged = tuple(str(i) for i in ids.mergedObjectIds if i != survivor)
    return str(survivor), merged


def company_events(events: Sequence[HubSpotEvent], raw: Sequence[object]) -> list[CompanyEvent]:
    """The events of a batch that may change a golden customer, in batch order: property
    changes of golden properties, creations and merges. ``raw`` is the batch as JSON (the
    same events, in the same order), for the merge fields."""
    selected: list[CompanyEvent] = []
    for index, event in enumerate(events):
        kind = event.subscriptionType
        if kind == COMPANY_PROPERTY_CHANGE:
            if event.propertyName in hubspot_fields.GOLDEN_PROPERTIES:
                selected.append(CompanyEvent(event=event, company_id=str(event.objectId)))
        elif kind == COMPANY_CREATION:
            selected.append(CompanyEvent(event=event, company_id=str(event.objectId)))
        elif kind == COMPANY_MERGE:
            survivor, merged = _survivor(event, raw[index] if index < len(raw) else None)
            selected.append(CompanyEvent(event=event, company_id=survivor, merged_ids=merged))
    return selected


def changed_properties(
    company_event: CompanyEvent, company: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The company properties the event changes, as :func:`hubspot_fields.changes_from_company`
    takes them. ``company`` is the company's read (:meth:`HubSpotCrm.company_properties`),
    needed when :attr:`CompanyEvent.needs_read`."""
    event = company_event.event
    if event.subscriptionType == COMPANY_PROPERTY_CHANGE and event.propertyName is not None:
        name = event.propertyName
        if name not in GROUPS:
            return {name: event.propertyValue}
        siblings = {part: (company or {}).get(part) for part in GROUPS[name]}
        return {**siblings, name: event.propertyValue}
    return {name: (company or {}).get(name) for name in CRM_OWNED_PROPERTIES}


def change_from_event(
    company_event: CompanyEvent, company: Mapping[str, Any] | None = None
) -> RoutedChange | None:
    """The customer change of one company event; None when it changes no golden field.
    Raises :class:`~adapters.webhooks.customer_changes.RoutingError` naming invalid values
    (a blank name, an e-mail that is not one, a credit limit that is not a number)."""
    event = company_event.event
    raw = hubspot_fields.changes_from_company(changed_properties(company_event, company))
    occurred = datetime.fromtimestamp(event.occurredAt / 1000, tz=UTC)
    return routed_change(
        company_event.company_id,
        System.CRM,
        company_event.event_id,
        company_event.company_id,
        occurred,
        raw,
    )


__all__ = [
    "COMPANY_CREATION",
    "COMPANY_MERGE",
    "COMPANY_PROPERTY_CHANGE",
    "CRM_OWNED_PROPERTIES",
    "GROUPS",
    "HANDLED",
    "CompanyEvent",
    "change_from_event",
    "changed_properties",
    "company_events",
    "event_id",
]
