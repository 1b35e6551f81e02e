"""The events port: what the ``events.publish`` activity needs from an event transport."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from pydantic import JsonValue


class EventsPort(Protocol):
    """Delivers CloudEvents to named subscribers, one subscriber at a time, so the activity
    can keep track of who has an event and retry only the others."""

    def subscribers_for(self, event_type: str) -> list[str]:
        """Names of the subscribers that receive events of ``event_type``, in a stable order."""
        ...

    async def deliver(self, subscriber: str, event: Mapping[str, JsonValue]) -> None:
        """Deliver ``event`` (a CloudEvent JSON document) to ``subscriber``.

        Returns when the subscriber acknowledged it. Raises the failure taxonomy of
        :mod:`adapters.errors`: ``TransientError`` (worth retrying, with ``retry_after``),
        ``RejectedError`` (the subscriber refuses it; retrying will not help) or
        ``UnknownOutcomeError`` (sent, no answer; redelivery is harmless because the event id
        is stable). Raises ``KeyError`` for a subscriber it does not know."""
        ...
