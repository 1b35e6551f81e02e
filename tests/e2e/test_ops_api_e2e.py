"""The ops API on the real stack: who decides is the token's holder, and only with the role;
and no secret ever enters a saga's payloads."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload

from domain.approval import ApproverRole
from domain.stages import OrderStage
from tests.e2e.stack import Stack
from tests.e2e.test_failures_e2e import parked_at_crm_write_back, stage_of
from tests.e2e.test_quote_to_cash_e2e import deliver, finished, new_quote
from tests.staff import TOKENS, token_of

pytestmark = pytest.mark.e2e


async def call(
    stack: Stack, quote_id: str, verb: str, body: dict[str, Any], token: str | None
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await stack.gateway.post(f"/v1/ops/quotes/{quote_id}/{verb}", json=body, headers=headers)


async def awaiting_approval(stack: Stack, discount: str, owner: str | None = None) -> str:
    payload = await new_quote(stack, "0015e00000AcmeUS1")
    payload["lines"][0]["discount_percent"] = discount
    if owner:
        payload["owner"] = owner
    assert (await deliver(stack, payload)).status_code == 202
    await stage_of(stack, payload["quote_id"], OrderStage.AWAITING_APPROVAL)
    return str(payload["quote_id"])


async def test_approval_needs_a_token_with_a_high_enough_role_and_records_its_holder(stack: Stack):
    quote_id = await awaiting_approval(stack, "45")  # above 40%: finance must approve

    assert (await call(stack, quote_id, "approve", {}, None)).status_code == 401
    unknown = await call(stack, quote_id, "approve", {}, "rvs_not-a-token")
    assert unknown.status_code == 401
    assert unknown.headers["www-authenticate"] == "Bearer"

    for holder in ("Oscar Ops", "Rita Reader"):  # valid tokens, no approver role
        refused = await call(stack, quote_id, "approve", {}, token_of(holder))
        assert refused.status_code == 403, refused.text
        assert "does not hold an approver role" in refused.json()["error"]
    asked = await call(stack, quote_id, "approve", {"role": "finance"}, token_of("Sam Manager"))
    assert asked.status_code == 403

    too_junior = await call(stack, quote_id, "approve", {}, token_of("Sam Manager"))
    assert too_junior.status_code == 409, too_junior.text

    # The body cannot name someone else.
    forged = await call(
        stack,
        quote_id,
        "approve",
        {"approver": {"name": "CFO", "role": "finance"}},
        token_of("Sam Manager"),
    )
    assert forged.status_code == 422

    approved = await call(stack, quote_id, "approve", {"note": "strategic"}, token_of("Fiona"))
    assert approved.status_code == 200, approved.text
    decision = approved.json()
    assert decision["actor"] == "Fiona Finance <fiona@example.com>"
    assert decision["role"] == ApproverRole.FINANCE.value
    status = await finished(stack, quote_id)
    assert status.stage is OrderStage.BOOKED
    (audited,) = status.decisions
    assert (audited.actor, audited.action, audited.note) == (
        "Fiona Finance <fiona@example.com>",
        "approve",
        "strategic",
    )


async def test_nobody_approves_or_rejects_their_own_quote(stack: Stack):
    quote_id = await awaiting_approval(stack, "30", owner="Fiona Finance <fiona@example.com>")
    own = await call(stack, quote_id, "approve", {}, token_of("Fiona"))
    assert own.status_code == 409
    assert "own" in own.json()["error"]
    rejected = await call(stack, quote_id, "reject", {"reason": "margin"}, token_of("Sam"))
    assert rejected.status_code == 200, rejected.text
    status = await finished(stack, quote_id)
    assert status.stage is OrderStage.REJECTED
    assert status.decisions[-1].actor == "Sam Manager <sam@example.com>"


async def test_resolving_a_parked_saga_needs_the_operator_role(stack: Stack):
    quote_id = await parked_at_crm_write_back(stack)

    body = {"action": "retry", "note": "contract signed"}
    assert (await call(stack, quote_id, "resolve", body, token_of("Fiona"))).status_code == 403
    missing_note = await call(stack, quote_id, "resolve", {"action": "retry"}, token_of("Oscar"))
    assert missing_note.status_code == 422
    resolved = await call(stack, quote_id, "resolve", body, token_of("Oscar"))
    assert resolved.status_code == 200, resolved.text
    status = await finished(stack, quote_id)
    assert status.stage is OrderStage.BOOKED
    assert status.decisions[-1].actor == "Oscar Ops <oscar@example.com>"
    assert status.decisions[-1].note == "contract signed"

    gone = await call(stack, "NO-SUCH-QUOTE", "resolve", body, token_of("Oscar"))
    assert gone.status_code == 404


async def test_no_configured_secret_is_in_any_payload_of_a_saga(stack: Stack):
    quote_id = await awaiting_approval(stack, "30")
    approved = await call(stack, quote_id, "approve", {}, token_of("Sam"))
    assert approved.status_code == 200, approved.text
    await finished(stack, quote_id)

    history = await stack.client.get_workflow_handle(f"q2c-{quote_id}").fetch_history()
    encrypted = [p for event in history.events for p in payloads_in(event)]
    assert encrypted, "found no payloads to check"
    codec = stack.client.data_converter.payload_codec
    assert codec is not None
    clear = b"".join(p.SerializeToString() for p in await codec.decode(encrypted))
    assert quote_id.encode() in clear  # decrypted for real
    secrets = stack.settings.secret_values() + list(TOKENS.values())
    assert [s for s in secrets if s.encode() in clear] == []


def payloads_in(message: Message) -> list[Payload]:
    """Every Payload anywhere inside a protobuf message (fields, lists and maps)."""
    found: list[Payload] = []
    for _field, value in message.ListFields():
        if isinstance(value, Message):
            items: list[Any] = [value]
        elif hasattr(value, "values"):
            items = list(value.values())
        elif isinstance(value, str | bytes | int | float | bool):
            items = []
        else:
            items = list(value)
        for item in items:
            if isinstance(item, Payload):
                found.append(item)
            elif isinstance(item, Message):
                found += payloads_in(item)
    return found


async def test_a_decision_retried_with_its_idempotency_key_answers_its_first_result(stack: Stack):
    """A lost answer: the operator (or the CLI) sends the same decision again with the same
    key and gets what was recorded, not a 409; the saga records it once."""
    quote_id = await parked_at_crm_write_back(stack)
    body = {"action": "retry", "note": "contract signed"}
    headers = {"Authorization": f"Bearer {token_of('Oscar')}", "Idempotency-Key": "op-7f3a"}
    path = f"/v1/ops/quotes/{quote_id}/resolve"

    first = await stack.gateway.post(path, json=body, headers=headers)
    again = await stack.gateway.post(path, json=body, headers=headers)

    assert first.status_code == again.status_code == 200, again.text
    assert again.json() == first.json()
    status = await finished(stack, quote_id)
    assert status.stage is OrderStage.BOOKED
    assert [d.action for d in status.decisions] == ["retry"]
    late = await stack.gateway.post(path, json=body, headers=headers)  # the saga has ended
    assert (late.status_code, late.json()) == (200, first.json())
    # Without the key the same request is a new decision, which the booked saga refuses.
    unkeyed = await call(stack, quote_id, "resolve", body, token_of("Oscar"))
    assert unkeyed.status_code == 409
    bad_key = await stack.gateway.post(
        path, json=body, headers={**headers, "Idempotency-Key": "has space"}
    )
    assert bad_key.status_code == 422
