"""events.publish: each subscriber of the event's type gets it; retries skip those done.

The activity runs on a real worker (time-skipping test server) under a small workflow that
calls the workflow-side helper, so the retries, backoff and heartbeat details are Temporal's
own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from temporalio import workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.events import EventActivities, done_before, resolve_dataschema
from adapters.events.webhooks import WebhookEvents
from domain.contracts import TaskQueue
from domain.event_contracts import DeliveryOutcome, EventSubscriber, SubscriberDelivery
from domain.events import CloudEvent, QuoteBookedEvent
from revsync.settings import Settings
from sandbox.app import SandboxState
from tests.events.conftest import SECRETS, booked_event, inject, subscriber
from workflows.publishing import publish

PUBLIC = "https://revsync.example.com"


@workflow.defn(name="PublishOne", sandboxed=False)
class PublishOne:
    @workflow.run
    async def run(self, event: QuoteBookedEvent) -> None:
        await publish(event)


@asynccontextmanager
async def publishing(
    env: WorkflowEnvironment, http: httpx.AsyncClient, subscribers: list[EventSubscriber]
) -> AsyncIterator[str]:
    """Workers for the test workflow and the real events activity; yields the queue the
    workflow runs on."""
    queue = f"publish-{uuid.uuid4().hex[:8]}"
    acts = EventActivities(WebhookEvents(http, subscribers), public_base_url=PUBLIC)
    async with (
        Worker(
            env.client,
            task_queue=queue,
            workflows=[PublishOne],
            workflow_runner=UnsandboxedWorkflowRunner(),
        ),
        Worker(env.client, task_queue=TaskQueue.EVENTS, activities=[acts.publish]),
    ):
        yield queue


async def run_publish(env: WorkflowEnvironment, queue: str, event: dict[str, Any]) -> None:
    await env.client.execute_workflow(
        PublishOne.run,
        QuoteBookedEvent.model_validate(event),
        id=f"publish-{uuid.uuid4().hex}",
        task_queue=queue,
    )


def ids(state: SandboxState, name: str) -> list[str]:
    return [d["event"]["id"] for d in state.events.received(name)]


async def test_a_flapping_subscriber_is_retried_without_repeats_to_the_healthy_one(
    time_skipping_env: WorkflowEnvironment, http: httpx.AsyncClient, state: SandboxState
):
    await inject(http, operation="data", status=503, times=3)
    event = booked_event(f"Q-{uuid.uuid4().hex[:8]}")
    subscribers = [subscriber("finance"), subscriber("data")]
    async with publishing(time_skipping_env, http, subscribers) as queue:
        await run_publish(time_skipping_env, queue, event)

    assert ids(state, "finance") == [event["id"]]
    assert ids(state, "data") == [event["id"]]
    fired = (await http.get("/_sandbox/faults")).json()["fired"]
    assert [f["operation"] for f in fired] == ["data", "data", "data"]
    # Delivered with the schema URL of this deployment.
    (received,) = state.events.received("data")
    assert received["event"]["dataschema"] == (f"{PUBLIC}/v1/schemas/events/quote.booked.v1.json")


async def test_a_refusing_subscriber_is_dropped_and_does_not_hold_up_the_others(
    time_skipping_env: WorkflowEnvironment, http: httpx.AsyncClient, state: SandboxState
):
    await inject(http, operation="data", status=410, times=5)
    event = booked_event(f"Q-{uuid.uuid4().hex[:8]}")
    async with publishing(
        time_skipping_env, http, [subscriber("finance"), subscriber("data")]
    ) as queue:
        await run_publish(time_skipping_env, queue, event)

    assert ids(state, "finance") == [event["id"]]
    assert ids(state, "data") == []
    # Refused once, never retried.
    assert len((await http.get("/_sandbox/faults")).json()["fired"]) == 1


async def test_only_subscribers_of_the_type_receive_it(
    time_skipping_env: WorkflowEnvironment, http: httpx.AsyncClient, state: SandboxState
):
    event = booked_event(f"Q-{uuid.uuid4().hex[:8]}")
    subscribers = [
        subscriber("finance", ["com.revsync.order.*"]),
        subscriber("data", ["com.revsync.quote.booked.v1"]),
    ]
    async with publishing(time_skipping_env, http, subscribers) as queue:
        await run_publish(time_skipping_env, queue, event)
    assert ids(state, "finance") == []
    assert ids(state, "data") == [event["id"]]


def test_earlier_attempts_details_name_the_subscribers_done():
    details = [
        [
            {"subscriber": "finance", "outcome": "delivered"},
            {"subscriber": "data", "outcome": "rejected", "detail": "HTTP 410"},
            {"not": "a delivery"},
        ]
    ]
    assert done_before(details) == {
        "finance": SubscriberDelivery(subscriber="finance", outcome=DeliveryOutcome.DELIVERED),
        "data": SubscriberDelivery(
            subscriber="data", outcome=DeliveryOutcome.REJECTED, detail="HTTP 410"
        ),
    }
    assert done_before([]) == {}
    assert done_before(["something else"]) == {}


def test_a_relative_schema_is_resolved_against_the_public_url_and_an_absolute_one_kept():
    event = booked_event()
    assert event["dataschema"] == "/v1/schemas/events/quote.booked.v1.json"
    resolved = resolve_dataschema(event, "https://hooks.example.com/")
    assert (
        resolved["dataschema"] == "https://hooks.example.com/v1/schemas/events/quote.booked.v1.json"
    )
    assert resolved["id"] == event["id"]
    absolute = resolve_dataschema(resolved, "https://elsewhere.example.com")
    assert absolute["dataschema"] == resolved["dataschema"]
    CloudEvent.model_validate(resolved)


def test_subscriber_secrets_are_redacted_secrets():
    settings = Settings(
        event_subscribers=[
            EventSubscriber(
                name="finance", url="https://f.example.com/e", secret=SecretStr(SECRETS["finance"])
            )
        ]
    )
    assert SECRETS["finance"] in settings.secret_values()
    assert SECRETS["finance"] not in repr(settings)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"name": "Finance Team"}, "name"),
        ({"url": "ftp://f.example.com"}, "url"),
    ],
)
def test_a_subscriber_must_have_a_label_name_and_an_http_url(fields: dict[str, str], problem: str):
    with pytest.raises(ValueError, match=problem):
        EventSubscriber.model_validate(
            {"name": "finance", "url": "https://f.example.com/e", "secret": "s"} | fields
        )
