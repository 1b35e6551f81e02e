"""Publishing business events from a saga: at least once, never blocking on a subscriber.

Inside a workflow::

    from workflows.publishing import business_event, publish

    await publish(business_event(QuoteBooked.from_status(self._status)))

:func:`publish` runs the ``events.publish`` activity on the ``events`` task queue, which
delivers the CloudEvent to every subscriber whose types match (``activities/events.py``).
Its retry policy never gives up (backoff from 1 s to :data:`MAXIMUM_INTERVAL`), so an event is
not lost while a subscriber is down: the saga's business stage is already final (BOOKED,
REJECTED...), and the workflow stays Running until the delivery succeeds. A subscriber that
refuses an event (4xx) does not hold it up: that delivery is dropped with an error log and
the ``revsync_event_deliveries{outcome="rejected"}`` metric. :class:`Outbox` keeps a run's
publications and carries the undelivered ones across continue-as-new.

The event id is stable per fact (``domain.events.event_id``): a retried or replayed publication
carries the same id, and subscribers deduplicate on ``(source, id)``.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any, Final

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from domain.contracts import Activity, TaskQueue
    from domain.event_contracts import PublishEvent, PublishResult
    from domain.events import CloudEvent, EventData, event_for

# Where the event schemas are served, relative to the deployment's public URL. The publisher
# resolves it against REVSYNC_PUBLIC_BASE_URL (else the gateway URL) when it delivers, so the
# workflow history does not depend on where revsync runs.
SCHEMA_BASE: Final = "/v1/schemas"

# One delivery attempt to every matching subscriber, each request bounded by the HTTP timeout.
ATTEMPT_TIMEOUT: Final = timedelta(minutes=2)
# The activity heartbeats the subscribers already done; a dead worker is noticed this fast.
HEARTBEAT_TIMEOUT: Final = timedelta(seconds=30)
# Retries back off to this and go on forever: nothing is lost while a subscriber is down.
MAXIMUM_INTERVAL: Final = timedelta(minutes=10)

RETRY_POLICY: Final = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=MAXIMUM_INTERVAL,
    maximum_attempts=0,
)


def business_event(data: EventData, *, time: datetime | None = None) -> CloudEvent:
    """The CloudEvent stating ``data`` for the running workflow: its id derives from the
    workflow id and the fact, ``time`` defaults to now (workflow time)."""
    return event_for(
        data,
        workflow_id=workflow.info().workflow_id,
        time=workflow.now() if time is None else time,
        schema_base=SCHEMA_BASE,
    )


async def publish(event: CloudEvent) -> None:
    """Deliver ``event`` to its subscribers, at least once; returns when every matching
    subscriber has it (or refused it for good)."""
    await deliver(event.model_dump(mode="json", serialize_as_any=True))


async def deliver(event: dict[str, Any]) -> None:
    """:func:`publish` of an event already rendered (one carried over from an earlier run)."""
    await workflow.execute_activity(
        Activity.EVENTS_PUBLISH,
        PublishEvent(event=event),
        result_type=PublishResult,
        task_queue=TaskQueue.EVENTS,
        start_to_close_timeout=ATTEMPT_TIMEOUT,
        heartbeat_timeout=HEARTBEAT_TIMEOUT,
        retry_policy=RETRY_POLICY,
        summary=f"publish {event.get('type')} {event.get('subject')}",
    )


class Outbox:
    """A run's publications, in the background: the saga never waits for a subscriber.

    A run that continues as new does not wait for them either (a subscriber down for a day
    would hold the run open while changes and payments keep growing its history towards
    Temporal's limit): :meth:`hand_over` stops the deliveries still on their way and returns
    their events, which the next run gives :meth:`resend` with their ids unchanged
    (subscribers deduplicate on them; delivery stays at least once). A run that ends for good
    waits for :meth:`drain`."""

    def __init__(self) -> None:
        self._sending: list[tuple[dict[str, Any], asyncio.Task[None]]] = []

    def send(self, event: CloudEvent) -> None:
        # Forget what is delivered (an entity lives long); a failed one stays for drain.
        self._sending = [
            (rendered, task)
            for rendered, task in self._sending
            if not task.done() or task.cancelled() or task.exception() is not None
        ]
        rendered = event.model_dump(mode="json", serialize_as_any=True)
        self._sending.append((rendered, asyncio.create_task(deliver(rendered))))

    def resend(self, events: list[dict[str, Any]]) -> None:
        for rendered in events:
            self._sending.append((rendered, asyncio.create_task(deliver(rendered))))

    def undelivered(self) -> list[dict[str, Any]]:
        return [rendered for rendered, task in self._sending if not task.done()]

    def pending(self) -> int:
        return sum(not task.done() for _, task in self._sending)

    async def hand_over(self) -> list[dict[str, Any]]:
        """For a run about to continue as new: stop its deliveries still on their way (their
        activities are cancelled, so no attempt of a closed run goes on) and return their
        events, for the next run to :meth:`resend`."""
        undelivered = self.undelivered()
        pending = [task for _, task in self._sending if not task.done()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return undelivered

    async def drain(self) -> None:
        """Until every publication so far is delivered (or refused for good)."""
        await asyncio.gather(*(task for _, task in self._sending))
