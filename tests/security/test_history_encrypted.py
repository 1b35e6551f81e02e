"""On a real dev server: what reaches Temporal's history is ciphertext.

A workflow and an activity handle an e-mail address (input, activity input and result,
workflow result, memo, static summary and details, a failure message). A client without the
codec then reads the raw history and must not find the address anywhere; the codec recovers
it.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    import pytest
    from pydantic import BaseModel
    from temporalio.client import Client, WorkflowFailureError, WorkflowHistory
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import WorkflowEnvironment
    from temporalio.worker import Worker

    from revsync.codec import KeyRing, encrypted_data_converter, generate_key_entry
    from tests.conftest import installed_binary

PII = "ada.lovelace@example.com"
QUEUE = "security-history"


class Contact(BaseModel):
    name: str
    email: str


@activity.defn
async def greet(contact: Contact) -> str:
    return f"Dear {contact.name} <{contact.email}>"


@activity.defn
async def reject(contact: Contact) -> None:
    # Vendors quote customer data back in their errors.
    raise ApplicationError(f"CRM refused contact {contact.email}", non_retryable=True)


@workflow.defn
class EchoContact:
    @workflow.run
    async def run(self, contact: Contact) -> Contact:
        greeting = await workflow.execute_activity(
            greet, contact, start_to_close_timeout=timedelta(seconds=10)
        )
        return Contact(name=greeting, email=contact.email)


@workflow.defn
class RejectContact:
    @workflow.run
    async def run(self, contact: Contact) -> None:
        await workflow.execute_activity(
            reject,
            contact,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(maximum_attempts=1),
        )


@dataclass
class Server:
    env: WorkflowEnvironment
    ring: KeyRing

    @property
    def client(self) -> Client:
        return self.env.client

    async def codecless_client(self) -> Client:
        """A client that knows nothing of the keys, like the server's own tools."""
        return await Client.connect(
            self.env.client.service_client.config.target_host,
            namespace=self.env.client.namespace,
            data_converter=pydantic_data_converter,
        )


@pytest.fixture(scope="module")
async def server() -> AsyncIterator[Server]:
    ring = KeyRing.parse(generate_key_entry("test-key"))
    env = await WorkflowEnvironment.start_local(
        data_converter=encrypted_data_converter(ring),
        dev_server_existing_path=installed_binary("temporal"),
    )
    try:
        async with Worker(
            env.client,
            task_queue=QUEUE,
            workflows=[EchoContact, RejectContact],
            activities=[greet, reject],
        ):
            yield Server(env=env, ring=ring)
    finally:
        await env.shutdown()


async def raw_history(server: Server, workflow_id: str) -> tuple[WorkflowHistory, str]:
    plain_client = await server.codecless_client()
    history = await plain_client.get_workflow_handle(workflow_id).fetch_history()
    return history, history.to_json()


async def test_inputs_results_memo_and_summaries_are_ciphertext_in_history(server):
    workflow_id = f"echo-{uuid.uuid4()}"
    contact = Contact(name="Ada Lovelace", email=PII)

    result = await server.client.execute_workflow(
        EchoContact.run,
        contact,
        id=workflow_id,
        task_queue=QUEUE,
        memo={"contact": PII},
        static_summary=f"welcome {PII}",
        static_details=f"details for {PII}",
    )

    assert result == Contact(name=f"Dear Ada Lovelace <{PII}>", email=PII)
    history, as_json = await raw_history(server, workflow_id)
    assert PII not in as_json
    assert "Ada Lovelace" not in as_json
    assert base64.b64encode(b"binary/encrypted").decode() in as_json  # bytes are base64 in JSON
    # Workflow ids are not payloads: they stay readable (keep PII out of them).
    assert workflow_id in as_json

    # ...while the codec opens every payload the plain client could not read.
    started = history.events[0].workflow_execution_started_event_attributes
    converter = server.client.data_converter
    [started_with] = await converter.decode(started.input.payloads, [Contact])
    assert started_with == contact
    [memo] = await converter.decode([started.memo.fields["contact"]], [str])
    assert memo == PII
    metadata = history.events[0].user_metadata
    [summary, details] = await converter.decode([metadata.summary, metadata.details], [str, str])
    assert (summary, details) == (f"welcome {PII}", f"details for {PII}")
    completed = [
        e for e in history.events if e.HasField("activity_task_completed_event_attributes")
    ]
    [greeting] = await converter.decode(
        completed[0].activity_task_completed_event_attributes.result.payloads, [str]
    )
    assert PII in greeting


async def test_a_client_without_the_codec_cannot_read_the_result(server):
    workflow_id = f"echo-{uuid.uuid4()}"
    await server.client.execute_workflow(
        EchoContact.run, Contact(name="Ada", email=PII), id=workflow_id, task_queue=QUEUE
    )
    plain_client = await server.codecless_client()

    with pytest.raises(Exception) as caught:  # noqa: PT011
        await plain_client.get_workflow_handle(workflow_id, result_type=Contact).result()

    assert PII not in str(caught.value)


async def test_failure_messages_are_ciphertext_in_history(server):
    workflow_id = f"reject-{uuid.uuid4()}"

    with pytest.raises(WorkflowFailureError) as caught:
        await server.client.execute_workflow(
            RejectContact.run, Contact(name="Ada", email=PII), id=workflow_id, task_queue=QUEUE
        )

    # Through the codec the message is intact...
    activity_error = caught.value.cause
    assert isinstance(activity_error, ActivityError)
    assert isinstance(activity_error.cause, ApplicationError)
    assert activity_error.cause.message == f"CRM refused contact {PII}"
    # ...in the history it is not.
    _, as_json = await raw_history(server, workflow_id)
    assert PII not in as_json
    assert "CRM refused" not in as_json
    assert "Encoded failure" in as_json
