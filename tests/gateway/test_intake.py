"""The quote-accepted endpoint: what starts a saga and what is refused before that."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from adapters.webhooks import cpq
from domain.saga import QuoteToCashInput
from revsync.gateway.app import create_app
from revsync.settings import Settings
from sandbox.quotes import quote_payload
from tests.staff import secret_settings

SECRET = "whsec_test"


class RecordingClient:
    """Stands in for temporalio's Client: records starts, refuses a second one per id."""

    def __init__(self) -> None:
        self.started: dict[str, dict[str, Any]] = {}

    async def start_workflow(self, _run: Any, arg: Any, **kwargs: Any) -> Any:
        if kwargs["id"] in self.started:
            raise WorkflowAlreadyStartedError(kwargs["id"], "QuoteToCash")
        self.started[kwargs["id"]] = {"arg": arg, **kwargs}
        return type("Handle", (), {"result_run_id": "run-1"})()


@pytest.fixture
def client() -> RecordingClient:
    return RecordingClient()


@pytest.fixture
async def gateway(client: RecordingClient):
    settings = Settings(**(secret_settings() | {"cpq_webhook_secret": SECRET}))
    app = create_app(settings, client)  # type: ignore[arg-type]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
            yield http


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"content-type": "application/json", cpq.SIGNATURE_HEADER: cpq.sign(secret, body)}


async def post(http: httpx.AsyncClient, payload: Any, secret: str = SECRET) -> httpx.Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return await http.post(
        "/webhooks/cpq/quote-accepted", content=body, headers=signed(body, secret)
    )


async def test_valid_quote_starts_one_saga_with_search_attributes(gateway, client):
    quote_id = f"Q-{uuid.uuid4().hex[:8]}"
    response = await post(gateway, quote_payload(quote_id))
    assert response.status_code == 202
    assert response.json() == {
        "status": "started",
        "workflow_id": f"q2c-{quote_id}",
        "run_id": "run-1",
        "quote_id": quote_id,
    }
    started = client.started[f"q2c-{quote_id}"]
    assert isinstance(started["arg"], QuoteToCashInput)
    assert started["task_queue"] == "orchestration"
    names = {pair.key.name: pair.value for pair in started["search_attributes"]}
    assert names["QuoteId"] == quote_id
    assert names["OrderStage"] == "RECEIVED"
    assert names["Currency"] == "USD"
    assert quote_id in started["static_summary"]


async def test_the_same_quote_delivered_three_times_starts_one_saga(gateway, client):
    payload = quote_payload(f"Q-{uuid.uuid4().hex[:8]}")
    verdicts = [(await post(gateway, payload)).json()["status"] for _ in range(3)]
    assert verdicts == ["started", "duplicate", "duplicate"]
    assert len(client.started) == 1


async def test_bad_signature_is_401_and_starts_nothing(gateway, client):
    response = await post(gateway, quote_payload("Q-bad-sig"), secret="wrong")
    assert response.status_code == 401
    assert response.json() == {"error": "signature does not match"}
    assert client.started == {}


async def test_unsigned_is_401(gateway, client):
    response = await gateway.post("/webhooks/cpq/quote-accepted", json=quote_payload("Q-x"))
    assert response.status_code == 401
    assert client.started == {}


async def test_malformed_json_is_400(gateway, client):
    response = await post(gateway, b"{not json")
    assert response.status_code == 400
    assert client.started == {}


async def test_oversized_body_is_413(gateway, client):
    response = await post(gateway, b"x" * (1024 * 1024 + 1))
    assert response.status_code == 413
    assert client.started == {}


async def test_invalid_quote_is_422_with_field_errors(gateway, client):
    payload = quote_payload("Q-invalid")
    payload["currency"] = "XXX"
    payload["lines"][0]["quantity"] = "-1"
    response = await post(gateway, payload)
    assert response.status_code == 422
    fields = {e["field"]: e["message"] for e in response.json()["fields"]}
    assert "currency" in fields
    assert "unsupported currency 'XXX'" in fields["currency"]
    assert "lines.0.quantity" in fields
    assert client.started == {}


async def test_healthz(gateway):
    assert (await gateway.get("/healthz")).json() == {"status": "ok"}


async def test_json_numbers_reach_the_quote_as_exact_decimals(gateway, client):
    quote_id = f"Q-{uuid.uuid4().hex[:8]}"
    body = json.dumps(quote_payload(quote_id)).replace('"45.00"', "45.00").encode()
    assert b": 45.00," in body
    response = await post(gateway, body)
    assert response.status_code == 202
    quote = client.started[f"q2c-{quote_id}"]["arg"].quote
    assert str(quote.lines[0].unit_price) == "45.00"


async def test_temporal_unavailable_is_503_with_retry_after(gateway, client, monkeypatch):
    async def unavailable(*_args: Any, **_kwargs: Any) -> Any:
        raise RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")

    monkeypatch.setattr(client, "start_workflow", unavailable)
    response = await post(gateway, quote_payload("Q-away"))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert client.started == {}
