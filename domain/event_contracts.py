"""The ``events.publish`` step contract and the subscriber configuration it delivers to.

Workflows (``workflows/publishing.py``) and the activity (``activities/events.py``) both import
this module; it holds no logic and no I/O.

The activity receives the event as its JSON document, not as a :class:`~domain.events.CloudEvent`
model: ``CloudEvent.data`` is typed as the base :class:`~domain.events.EventData`, so a model
argument would lose every field of the fact on the way through the data converter. The JSON
document is exactly what subscribers receive.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, JsonValue, SecretStr, field_validator

# A subscriber's name is a path segment, a metric label and a log field.
SUBSCRIBER_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class EventSubscriber(BaseModel):
    """One webhook subscriber (``REVSYNC_EVENT_SUBSCRIBERS`` holds a JSON list of these)."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="Short stable name: metric label, log field (a-z0-9_-)")
    url: str = Field(description="Where events are POSTed (https in production)")
    secret: SecretStr = Field(description="HMAC secret shared with the subscriber")
    types: list[str] = Field(
        default_factory=lambda: ["*"],
        description='Event types delivered: exact types, prefixes ending in "*" '
        '(e.g. "com.revsync.quote.*"), or "*" for all',
    )

    @field_validator("name")
    @classmethod
    def _name_is_a_label(cls, value: str) -> str:
        if not SUBSCRIBER_NAME.match(value):
            raise ValueError("subscriber name must match [a-z0-9][a-z0-9_-]{0,62}")
        return value

    @field_validator("url")
    @classmethod
    def _url_is_http(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("subscriber url must be an http(s) URL")
        return value

    def wants(self, event_type: str) -> bool:
        """Whether this subscriber receives events of ``event_type``."""
        for pattern in self.types:
            if pattern.endswith("*"):
                if event_type.startswith(pattern[:-1]):
                    return True
            elif pattern == event_type:
                return True
        return False


class PublishEvent(BaseModel):
    """The ``events.publish`` argument: one CloudEvent as its JSON document."""

    model_config = ConfigDict(frozen=True)

    event: dict[str, JsonValue]


class DeliveryOutcome(StrEnum):
    """What became of one event at one subscriber."""

    DELIVERED = "delivered"  # 2xx, in this attempt or an earlier one
    REJECTED = "rejected"  # 4xx other than 408/429: dropped for this subscriber, loudly


class SubscriberDelivery(BaseModel):
    model_config = ConfigDict(frozen=True)

    subscriber: str
    outcome: DeliveryOutcome
    detail: str | None = None


class PublishResult(BaseModel):
    """Per subscriber whose types matched, how delivery ended (history shows it)."""

    model_config = ConfigDict(frozen=True)

    event_id: str
    event_type: str
    deliveries: list[SubscriberDelivery]
