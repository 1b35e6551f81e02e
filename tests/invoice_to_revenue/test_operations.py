"""Deciding on a parked invoice (``revsync.invoice_operations.resolve_invoice``, behind the ops
API): the invoice's saga while it runs; once it has ended, its parked adjustment (the one
parked, or the one named)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio.service import RPCError, RPCStatusCode

from domain.invoice_contracts import InvoiceDecision, InvoiceStep
from domain.saga import ResolveAction, ResolveRequest
from revsync.invoice_operations import parked_invoice_query, resolve_invoice
from revsync.operations import DecisionRefused

INVOICE = "in_1QbCdE2eZvKYlo2C"
SAGA = f"i2r-{INVOICE}"
CREDIT = f"i2r-adj-{INVOICE}-credit_note-cn_1"
PAYMENT = f"i2r-adj-{INVOICE}-payment-pi_2"
SKIP = ResolveRequest(action=ResolveAction.SKIP, operator="ops.lena", note="by hand")


class FakeClient:
    """Running workflows answer ``resolve``; ``parked`` is what visibility lists."""

    def __init__(self, running: set[str], parked: list[str]) -> None:
        self.running = running
        self.parked = parked
        self.updates: list[str] = []
        self.queries: list[str] = []

    def get_workflow_handle(self, workflow_id: str) -> Any:
        client = self

        class Handle:
            async def execute_update(self, name: str, arg: Any, **kwargs: Any) -> Any:
                if workflow_id not in client.running:
                    raise RPCError("workflow not found", RPCStatusCode.NOT_FOUND, b"")
                client.updates.append(workflow_id)
                return InvoiceDecision(
                    at=datetime(2026, 3, 1, tzinfo=UTC),
                    actor=arg.operator,
                    action=arg.action.value,
                    step=InvoiceStep.CREDIT_RECEIVABLE,
                    note=arg.note,
                )

        return Handle()

    def list_workflows(self, query: str) -> AsyncIterator[Any]:
        self.queries.append(query)

        async def listing() -> AsyncIterator[Any]:
            for workflow_id in self.parked:
                yield type("Execution", (), {"id": workflow_id})()

        return listing()


async def test_a_running_saga_is_decided_on_itself():
    client = FakeClient({SAGA, CREDIT}, [CREDIT])
    await resolve_invoice(client, INVOICE, SKIP)  # type: ignore[arg-type]
    assert client.updates == [SAGA] and client.queries == []


async def test_once_the_saga_ended_its_one_parked_adjustment_is_decided_on():
    client = FakeClient({CREDIT}, [CREDIT])
    decision = await resolve_invoice(client, INVOICE, SKIP)  # type: ignore[arg-type]
    assert decision.action == "skip" and client.updates == [CREDIT]
    (query,) = client.queries
    assert 'WorkflowType = "InvoiceAdjustment"' in query and f'InvoiceId = "{INVOICE}"' in query
    assert 'InvoiceStage = "NEEDS_ATTENTION"' in query


async def test_several_parked_adjustments_must_be_named():
    client = FakeClient({CREDIT, PAYMENT}, [PAYMENT, CREDIT])
    with pytest.raises(DecisionRefused, match="several of its adjustments are parked"):
        await resolve_invoice(client, INVOICE, SKIP)  # type: ignore[arg-type]
    await resolve_invoice(client, INVOICE, SKIP, workflow_id=PAYMENT)  # type: ignore[arg-type]
    assert client.updates == [PAYMENT]
    with pytest.raises(DecisionRefused, match="is no adjustment of invoice"):
        await resolve_invoice(
            client,  # type: ignore[arg-type]
            INVOICE,
            SKIP,
            workflow_id="i2r-adj-in_other-payment-pi_2",
        )


async def test_an_ended_saga_with_nothing_parked_is_not_found():
    client = FakeClient(set(), [])
    with pytest.raises(RPCError):
        await resolve_invoice(client, INVOICE, SKIP)  # type: ignore[arg-type]


def test_the_parked_view_lists_sagas_and_adjustments():
    query = parked_invoice_query()
    assert 'WorkflowType = "InvoiceToRevenue"' in query
    assert 'WorkflowType = "InvoiceAdjustment"' in query
    assert 'InvoiceStage = "NEEDS_ATTENTION"' in query
