"""Reconciliation asks the customer master to re-propagate under the run's own request id:
the id reaches the customer master (whose dedupe then tells this run's retry from a later
run), and an answer the customer master gives to a request it had already seen (`repeated`)
is not reported as a repair."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from activities import reconciliation as acts
from domain.customer_master import MasterField, System
from domain.master_contracts import RepropagateResult, ScheduledPropagation
from domain.reconciliation import RepropagateCustomer


def _result(*, repeated: bool) -> RepropagateResult:
    return RepropagateResult(
        golden_id="0015e00000AcmeUS1",
        request_key="rp-1",
        repeated=repeated,
        at=datetime(2026, 3, 1, tzinfo=UTC),
        reason="reconciliation: erp copy differs",
        requested_by="reconciliation",
        scheduled=(
            ScheduledPropagation(
                system=System.ERP,
                record_ids=("301",),
                fields=(MasterField.NAME,),
                idempotency_key="k-1",
            ),
        ),
    )


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    async def repropagate(client: Any, golden_id: str, fields: Any, reason: str, **kw: Any):
        calls.append({"golden_id": golden_id, "fields": fields, "reason": reason, **kw})
        return _result(repeated=bool(kw.get("request_id", "").endswith("seen")))

    monkeypatch.setattr(acts, "repropagate", repropagate)
    return calls


def _ask(request_id: str) -> RepropagateCustomer:
    return RepropagateCustomer(
        golden_id="0015e00000AcmeUS1",
        fields=[MasterField.NAME],
        reason="reconciliation: erp copy differs",
        request_id=request_id,
    )


async def test_the_runs_request_id_reaches_the_customer_master(asked: list[dict[str, Any]]):
    directory = acts.SagaDirectory(client=None)  # type: ignore[arg-type]
    outcome = await ActivityEnvironment().run(
        directory.repropagate_customer, _ask("reconcile-run-1:0015e00000AcmeUS1")
    )
    assert asked[0]["request_id"] == "reconcile-run-1:0015e00000AcmeUS1"
    assert outcome.scheduled and not outcome.repeated


async def test_a_repeated_answer_is_not_a_repair(asked: list[dict[str, Any]]):
    directory = acts.SagaDirectory(client=None)  # type: ignore[arg-type]
    outcome = await ActivityEnvironment().run(
        directory.repropagate_customer, _ask("reconcile-run-1:seen")
    )
    assert outcome.repeated
    assert not outcome.scheduled
    assert "asked before" in outcome.detail
