"""Customer change webhooks as :class:`~domain.customer_master.ChangeEvent`, each routed to
its golden customer (the CRM account id).

* **Stripe** ``customer.updated``: the attributes named in ``data.previous_attributes``
  (:mod:`adapters.billing.stripe_fields`); ordered by the event's ``created``; routed by
  ``metadata.revsync_account_id``.
* **Salesforce** Outbound Message notifications of ``Account``: the fields the outbound
  message definition selects (:mod:`adapters.crm.salesforce_fields`); ordered by
  ``SystemModstamp`` (else ``LastModifiedDate``), which the definition must select; the
  account id *is* the golden id.
* **ERP** ``POST /v1/webhooks/erp/customer-changed`` (:class:`ErpCustomerChanged`, signed
  with revsync's HMAC scheme by a NetSuite SuiteScript): NetSuite field names
  (:mod:`adapters.erp.netsuite_fields`); ordered by ``lastModifiedDate``; routed by the
  external id ``acct-<CRM account id>`` quote-to-cash gives the ERP customer.
* **HubSpot** company events (``company.propertyChange``, ``company.creation``,
  ``company.merge``): :mod:`adapters.webhooks.hubspot_companies`; the company id *is* the
  golden id.

An event that cannot be routed, or whose values are not valid for their fields, raises
:class:`RoutingError` (the gateway answers 422 with its reason). An event that changes no
golden field maps to None (acknowledged, nothing to do).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from adapters.billing import stripe_fields
from adapters.crm import salesforce_fields
from adapters.erp import netsuite_fields
from adapters.webhooks.salesforce import Notification
from adapters.webhooks.stripe import StripeEvent
from domain.customer_master import ChangeEvent, System
from domain.master_contracts import golden_id_from_erp

STRIPE_TYPES = frozenset({"customer.updated"})
SALESFORCE_SOBJECT = "Account"


class RoutingError(Exception):
    """The change cannot reach a golden customer. ``reason`` is safe to send back;
    ``fields`` lists field errors (``{"field", "message"}``) when values were invalid."""

    def __init__(self, reason: str, fields: list[dict[str, str]] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fields = fields or []


class RoutedChange(BaseModel):
    """A change event and the golden customer it belongs to."""

    model_config = ConfigDict(frozen=True)

    golden_id: str
    event: ChangeEvent


def _event(
    golden_id: str,
    source: System,
    event_id: str,
    record_id: str,
    modified_at: datetime,
    raw: dict[str, object],
) -> RoutedChange | None:
    if not raw:
        return None
    try:
        event = ChangeEvent.model_validate(
            {
                "source": source,
                "event_id": event_id,
                "record_id": record_id,
                "version": {"modified_at": modified_at},
                "changes": raw,
            }
        )
        return RoutedChange.model_validate({"golden_id": golden_id, "event": event})
    except ValidationError as error:
        fields = [
            {
                "field": ".".join(str(p) for p in item["loc"]) or "(event)",
                "message": item["msg"],
            }
            for item in error.errors(include_url=False, include_input=False)
        ]
        raise RoutingError("invalid customer change", fields) from None


def routed_change(
    golden_id: str,
    source: System,
    event_id: str,
    record_id: str,
    modified_at: datetime,
    raw: dict[str, object],
) -> RoutedChange | None:
    """The change of ``raw`` golden fields (raw values, validated here) for ``golden_id``;
    None when ``raw`` is empty. Raises :class:`RoutingError` naming invalid values. For
    mappings kept in their own module (:mod:`adapters.webhooks.hubspot_companies`)."""
    return _event(golden_id, source, event_id, record_id, modified_at, raw)


# -- Stripe ---------------------------------------------------------------------------------


def from_stripe(event: StripeEvent) -> RoutedChange | None:
    """The golden-field changes of a ``customer.updated`` event; None when none changed."""
    customer = event.data.object
    metadata = customer.get("metadata")
    golden_id = (
        metadata.get(stripe_fields.ACCOUNT_METADATA_KEY) if isinstance(metadata, dict) else None
    )
    if not isinstance(golden_id, str) or not golden_id.strip():
        raise RoutingError(
            f"customer {customer.get('id')} has no metadata.{stripe_fields.ACCOUNT_METADATA_KEY}:"
            " billing changes are routed by the CRM account id quote-to-cash sets on the "
            "customer; set it to link the customer"
        )
    customer_id = customer.get("id")
    if not isinstance(customer_id, str) or not customer_id:
        raise RoutingError("customer.updated event without a customer id")
    raw = stripe_fields.changes_from_customer(customer, event.data.previous_attributes)
    created = datetime.fromtimestamp(event.created, tz=UTC)
    return _event(golden_id.strip(), System.BILLING, event.id, customer_id, created, raw)


# -- Salesforce -----------------------------------------------------------------------------


def _salesforce_time(value: str | None) -> datetime | None:
    if not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    if len(text) >= 5 and text[-5] in "+-" and text[-3] != ":":  # +0000 -> +00:00
        text = f"{text[:-2]}:{text[-2:]}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def from_salesforce(note: Notification) -> RoutedChange | None:
    """The golden-field changes of an ``Account`` notification; None when it selects no
    golden field. Raises :class:`RoutingError` without an id or a modification stamp."""
    account_id = (note.fields.get("Id") or "").strip()
    if not account_id:
        raise RoutingError(f"Account notification {note.id} has no Id field selected")
    stamp = next(
        (
            moment
            for name in salesforce_fields.VERSION_FIELDS
            if (moment := _salesforce_time(note.fields.get(name))) is not None
        ),
        None,
    )
    if stamp is None:
        raise RoutingError(
            f"Account notification {note.id} has no SystemModstamp or LastModifiedDate: select "
            "one in the outbound message, changes are ordered by it"
        )
    raw = salesforce_fields.changes_from_account(note.fields)
    return _event(account_id, System.CRM, note.id, account_id, stamp, raw)


# -- ERP (revsync's own webhook) ------------------------------------------------------------


class ErpCustomerChanged(BaseModel):
    """``POST /v1/webhooks/erp/customer-changed``: one ERP customer changed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    eventId: str = Field(min_length=1, max_length=255, description="Unique per change")
    recordType: Literal["customer"]
    id: str = Field(pattern=r"^[0-9]{1,18}$", description="The customer's internal id")
    externalId: str | None = Field(
        default=None, description="acct-<CRM account id>: routes the change"
    )
    lastModifiedDate: AwareDatetime
    fields: dict[str, Any] = Field(
        description="The changed fields, NetSuite names (companyName, legalName, email, url, "
        "vatRegNumber, creditLimit with currency, defaultBillingAddress...); null clears"
    )


def from_erp(change: ErpCustomerChanged) -> RoutedChange | None:
    """The golden-field changes of an ERP customer change; None when none is a golden one."""
    golden_id = golden_id_from_erp(change.externalId or "")
    if golden_id is None:
        raise RoutingError(
            f"ERP customer {change.id} has no revsync external id (acct-<CRM account id>): "
            "ERP changes are routed by it; quote-to-cash sets it when it books the customer"
        )
    raw = netsuite_fields.changes_from_customer(change.fields)
    return _event(golden_id, System.ERP, change.eventId, change.id, change.lastModifiedDate, raw)
