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
the ``revsync_event_deliveries{outcome="rejected"}`` metric.

The event id is stable per fact (``domain.events.event_id``): a retried or replayed publication
carries the same id, and subscribers deduplicate on ``(source, id)``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

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
    await workflow.execute_activity(
        Activity.EVENTS_PUBLISH,
        PublishEvent(event=event.model_dump(mode="json", serialize_as_any=True)),
        result_type=PublishResult,
        task_queue=TaskQueue.EVENTS,
        start_to_close_timeout=ATTEMPT_TIMEOUT,
        heartbeat_timeout=HEARTBEAT_TIMEOUT,
        retry_policy=RETRY_POLICY,
        summary=f"publish {event.type} {event.subject}",
    )
