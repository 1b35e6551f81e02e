"""The ``events.publish`` activity (task queue ``events``): one CloudEvent to every subscriber
whose types match, at least once.

Each attempt delivers to the subscribers that do not have the event yet, all at once. Which
subscribers are done is kept in the attempt's heartbeat details, so the next attempt of the
same activity (after a transient failure, a timeout, a dead worker) skips them: a flapping
subscriber does not make the healthy ones receive the event again. (A subscriber may still
see an event twice, e.g. when the worker dies between its answer and the next heartbeat;
the stable event id makes that harmless.)

How one delivery ends, by the failure taxonomy (docs/architecture.md):

- done (2xx): recorded, never sent again by this activity;
- transient (connect error, 408, 429 with ``Retry-After``, 5xx, open circuit) and unknown
  outcome (no answer after sending): the attempt fails retryably once every other subscriber
  has been tried; the next retry honours the longest ``Retry-After`` asked for;
- rejected (any other status, e.g. 400, 401 a wrong secret, 404, 410): the subscriber refuses
  this event and retrying will not change that. The delivery is dropped for that subscriber
  with an error log line and ``revsync_event_deliveries{outcome="rejected"}``, and the
  activity does not fail on it: a misconfigured subscriber must not hold up the saga nor the
  other subscribers.

Every delivery counts in ``revsync_event_deliveries`` by subscriber and outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, Final
from urllib.parse import urljoin

import structlog
from pydantic import JsonValue, ValidationError
from structlog.contextvars import bound_contextvars
from temporalio import activity
from temporalio.exceptions import ApplicationError

from adapters.errors import RejectedError, TransientError, UnknownOutcomeError, VendorError
from adapters.events.port import EventsPort
from domain.contracts import Activity
from domain.event_contracts import (
    DeliveryOutcome,
    PublishEvent,
    PublishResult,
    SubscriberDelivery,
)
from domain.saga import FailureType
from revsync import metrics

log = structlog.get_logger("revsync.activities.events")

# Heartbeat this often when the workflow set no heartbeat timeout.
DEFAULT_HEARTBEAT_EVERY: Final = 10.0


def resolve_dataschema(event: Mapping[str, JsonValue], public_base_url: str) -> dict[str, Any]:
    """``event`` with a relative ``dataschema`` (as workflows write it, ``/v1/schemas/...``)
    resolved against the deployment's public URL; an absolute one is kept."""
    document = dict(event)
    schema = document.get("dataschema")
    if isinstance(schema, str) and schema.startswith("/"):
        document["dataschema"] = urljoin(public_base_url.rstrip("/") + "/", schema.lstrip("/"))
    return document


def done_before(details: list[Any]) -> dict[str, SubscriberDelivery]:
    """The subscribers an earlier attempt finished with, from its last heartbeat details."""
    if not details or not isinstance(details[0], list):
        return {}
    finished: dict[str, SubscriberDelivery] = {}
    for item in details[0]:
        try:
            delivery = SubscriberDelivery.model_validate(item)
        except ValidationError:
            continue
        finished[delivery.subscriber] = delivery
    return finished


class EventActivities:
    def __init__(self, events: EventsPort, *, public_base_url: str) -> None:
        self.events = events
        self.public_base_url = public_base_url

    @activity.defn(name=Activity.EVENTS_PUBLISH)
    async def publish(self, request: PublishEvent) -> PublishResult:
        """Deliver the event to every subscriber of its type that does not have it yet."""
        event = resolve_dataschema(request.event, self.public_base_url)
        event_id = str(event.get("id", ""))
        event_type = str(event.get("type", ""))
        wanted = self.events.subscribers_for(event_type)
        earlier = done_before(list(activity.info().heartbeat_details))
        finished = {name: earlier[name] for name in wanted if name in earlier}
        pending = [name for name in wanted if name not in finished]
        failures: list[VendorError] = []

        def heartbeat() -> None:
            activity.heartbeat([d.model_dump(mode="json") for d in finished.values()])

        async def deliver(subscriber: str) -> None:
            with bound_contextvars(subscriber=subscriber):
                try:
                    await self.events.deliver(subscriber, event)
                except RejectedError as error:
                    _count(subscriber, "rejected")
                    log.error(
                        "event rejected by subscriber, dropped for it",
                        error=error.describe(),
                        status=error.status,
                    )
                    finished[subscriber] = SubscriberDelivery(
                        subscriber=subscriber,
                        outcome=DeliveryOutcome.REJECTED,
                        detail=error.describe(),
                    )
                except VendorError as error:
                    outcome = "unknown" if isinstance(error, UnknownOutcomeError) else "transient"
                    _count(subscriber, outcome)
                    log.warning(
                        "event delivery failed, will retry",
                        error=error.describe(),
                        outcome=outcome,
                        retry_after=getattr(error, "retry_after", None),
                    )
                    failures.append(error)
                    return
                else:
                    _count(subscriber, "delivered")
                    finished[subscriber] = SubscriberDelivery(
                        subscriber=subscriber, outcome=DeliveryOutcome.DELIVERED
                    )
                heartbeat()

        with bound_contextvars(event_id=event_id, event_type=event_type):
            beating = asyncio.create_task(_keep_beating(heartbeat))
            try:
                await asyncio.gather(*(deliver(name) for name in pending))
            finally:
                beating.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beating
            if failures:
                heartbeat()
                raise _retry_error(failures)
        return PublishResult(
            event_id=event_id,
            event_type=event_type,
            deliveries=[finished[name] for name in wanted if name in finished],
        )


def _count(subscriber: str, outcome: str) -> None:
    metrics.count(
        activity.metric_meter(), metrics.EVENT_DELIVERIES, subscriber=subscriber, outcome=outcome
    )


async def _keep_beating(heartbeat: Callable[[], None]) -> None:
    """Heartbeat the current delivery state while deliveries run (a worker that dies is
    noticed after the heartbeat timeout, and the retry knows who is done)."""
    timeout = activity.info().heartbeat_timeout
    every = timeout.total_seconds() / 3 if timeout else DEFAULT_HEARTBEAT_EVERY
    while True:
        heartbeat()
        await asyncio.sleep(every)


def _retry_error(failures: list[VendorError]) -> ApplicationError:
    """One retryable error for the subscribers still owed the event: the next retry waits
    for the longest ``Retry-After`` any of them asked for."""
    delays = [
        e.retry_after
        for e in failures
        if isinstance(e, TransientError) and e.retry_after is not None
    ]
    unknown = all(isinstance(e, UnknownOutcomeError) for e in failures)
    return ApplicationError(
        "; ".join(e.describe() for e in failures),
        [{"subscriber": e.vendor, "outcome": e.outcome, "status": e.status} for e in failures],
        type=FailureType.VENDOR_UNKNOWN_OUTCOME if unknown else FailureType.VENDOR_TRANSIENT,
        next_retry_delay=timedelta(seconds=max(delays)) if delays else None,
    )
