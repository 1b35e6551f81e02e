"""The ``repropagate`` update through :func:`revsync.customer_master.repropagate` (time-skipping
server, fake systems): golden values sent again under keys of the request, once per request;
validated; never starting a workflow for an unknown customer."""

from __future__ import annotations

import pytest
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from domain.customer_master import MasterField, System, master_workflow_id
from domain.master_contracts import PropagationStatus
from revsync.customer_master import CustomerNotFound, repropagate
from revsync.operations import DecisionRefused
from tests.customer_master.fakes import (
    FakeMasterSystems,
    change,
    deliver,
    golden_id,
    running_workers,
)
from tests.customer_master.test_workflow import settled, until


async def test_repropagate_sends_once_per_request_under_keys_of_its_own(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client, fakes, golden = time_skipping_env.client, FakeMasterSystems(), golden_id()
    fakes.link(golden, billing="cus_R1", erp="501")
    async with running_workers(client, fakes):
        await deliver(client, golden, change(System.BILLING, "cus_R1", 1, email="ap@acme.example"))
        await until(client, golden, lambda s: settled(s) and len(s.recent) == 2)
        original = {u.idempotency_key for u in fakes.updates}
        before = len(fakes.updates)

        reason = "reconciliation 2026-03-03: CRM e-mail differs"
        first = await repropagate(client, golden, ["email"], reason, requested_by="reconcile")
        await until(client, golden, lambda s: settled(s) and len(s.recent) == 4)
        after_first = len(fakes.updates)
        again = await repropagate(client, golden, ["email"], reason, requested_by="reconcile")
        other = await repropagate(client, golden, ["email"], "a steward fixed CRM by hand")
        status = await until(client, golden, lambda s: settled(s) and len(s.recent) == 6)

    # the first request: the golden e-mail to CRM and ERP (its copies), under new keys
    assert not first.repeated
    assert {(s.system, s.record_ids, s.fields) for s in first.scheduled} == {
        (System.CRM, (golden,), (MasterField.EMAIL,)),
        (System.ERP, ("501",), (MasterField.EMAIL,)),
    }
    first_keys = {s.idempotency_key for s in first.scheduled}
    assert not first_keys & original
    resent = fakes.updates[before:after_first]
    assert {u.idempotency_key for u in resent} == first_keys
    assert {u.system: u.fields for u in resent} == {
        System.CRM: {MasterField.EMAIL: "ap@acme.example"},
        System.ERP: {MasterField.EMAIL: "ap@acme.example"},
    }
    # the same request again: its first answer, and nothing sent
    assert again.repeated
    assert again.model_copy(update={"repeated": False}) == first
    # a new request sends again, under keys of its own
    assert not other.repeated and other.request_key != first.request_key
    other_keys = {s.idempotency_key for s in other.scheduled}
    assert other_keys.isdisjoint(first_keys | original)
    assert {u.idempotency_key for u in fakes.updates[after_first:]} == other_keys
    assert len(fakes.updates) == before + 4
    assert {r.status for r in status.recent} == {PropagationStatus.DONE}
    assert [(d.actor, d.action, d.note) for d in status.decisions] == [
        ("reconcile", "repropagate", reason),
        ("revsync", "repropagate", "a steward fixed CRM by hand"),
    ]
    assert [r.request_key for r in status.repropagations] == [
        first.request_key,
        other.request_key,
    ]


async def test_repropagate_of_every_field_sends_each_system_its_copies(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client, fakes, golden = time_skipping_env.client, FakeMasterSystems(), golden_id()
    fakes.link(golden, erp="502")  # no billing customer yet
    async with running_workers(client, fakes):
        await deliver(client, golden, change(System.CRM, golden, 1, website="acme.example"))
        await deliver(client, golden, change(System.ERP, "502", 2, legal_entity="Acme, Inc."))
        await until(client, golden, lambda s: settled(s) and len(s.recent) == 2)
        before = len(fakes.updates)
        result = await repropagate(client, golden, None, "drift found", request_id="run-7/1")
        await until(client, golden, lambda s: settled(s) and len(s.recent) == 4)

    sent = {(u.system, tuple(u.fields.items())) for u in fakes.updates[before:]}
    assert sent == {
        (System.ERP, ((MasterField.WEBSITE, "acme.example"),)),
        (System.CRM, ((MasterField.LEGAL_ENTITY, "Acme, Inc."),)),
    }
    assert {s.idempotency_key for s in result.scheduled} == {
        u.idempotency_key for u in fakes.updates[before:]
    }
    assert MasterField.NAME in result.unset and MasterField.WEBSITE not in result.unset
    # billing holds a copy of the legal entity but has no record linked
    assert result.unlinked == (System.BILLING,)


async def test_repropagate_refuses_unknown_fields_and_blank_reasons(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client, fakes, golden = time_skipping_env.client, FakeMasterSystems(), golden_id()
    async with running_workers(client, fakes):
        await deliver(client, golden, change(System.CRM, golden, 1, name="Acme"))
        with pytest.raises(DecisionRefused, match=r"fields\.0: Input should be"):
            await repropagate(client, golden, ["nmae"], "typo")
        with pytest.raises(DecisionRefused, match="reason"):
            await repropagate(client, golden, ["name"], "  ")
        with pytest.raises(DecisionRefused, match="at least one field"):
            await repropagate(client, golden, [], "nothing")
        status = await until(client, golden, settled)

    assert status.repropagations == [] and status.decisions == []


async def test_repropagate_on_an_unknown_customer_raises_and_starts_nothing(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client, fakes, golden = time_skipping_env.client, FakeMasterSystems(), golden_id()
    async with running_workers(client, fakes):
        with pytest.raises(CustomerNotFound, match=golden):
            await repropagate(client, golden, ["name"], "drift found")
        with pytest.raises(RPCError) as described:
            await client.get_workflow_handle(master_workflow_id(golden)).describe()

    assert described.value.status is RPCStatusCode.NOT_FOUND
    assert fakes.updates == []
