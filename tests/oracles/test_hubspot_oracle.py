"""HubSpot's own Python library (``hubspot-api-client`` 12.0.0, a pinned test dependency) as
the judge of revsync's HubSpot adapter and emulator, so neither of them (written by the same
hands) decides what HubSpot's wire looks like:

- **webhook signatures**: the library's ``hubspot.utils.signature.Signature`` verifies the v3
  signatures the emulator renders (``X-HubSpot-Signature-v3`` over method, URL, body and
  ``X-HubSpot-Request-Timestamp``), and the gateway's HubSpot endpoint accepts a delivery
  signed by the library; the library's five-minute timestamp limit is the gateway's;
- **the adapter's requests**: every request the adapter sends the emulator (recorded on the
  wire while it books an order, reads a closed-won deal, writes golden fields and receivable
  status, lists records) names an operation of the library's generated API (method, path
  template, query parameters), and its body loads into that operation's request model
  (``BatchInputSimplePublicObjectBatchInputUpsert``, ``BatchReadInputSimplePublicObjectId``,
  ``SimplePublicObjectInput``) with no key the model does not know, at any depth (the
  generated models drop unknown keys silently, so keys are compared with each model's
  ``attribute_map`` and ``openapi_types``);
- **the emulator's answers**: every answer the adapter read deserialises into the operation's
  response model for its status (``SimplePublicObjectWithAssociations``,
  ``BatchResponseSimplePublicUpsertObject``, ``...WithErrors`` for a 207,
  ``CollectionResponse...ForwardPaging``, v4 ``BatchResponsePublicDefaultAssociation``; an
  error answer into ``Error``) through the library's own deserialiser (its required fields and
  enumerations checked), with no unknown key, and with the fields revsync reads present.

The adapter never calls HubSpot's search endpoint (``/crm/v3/objects/{type}/search``), so no
search body is checked. Two members of HubSpot's error answers are not in the library's
``Error`` model and are allowed by name, nothing else is: ``status`` (``"error"``, in every
error example of HubSpot's "API error responses" page) and, in a 429, ``errorType`` and
``policyName`` (HubSpot's API usage guidelines). Both pages are cited in
docs/vendor-fidelity.md, "HubSpot".
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from types import ModuleType, SimpleNamespace
from typing import Any

import httpx
import hubspot.crm.associations.v4.api as associations_api  # type: ignore[import-untyped]
import hubspot.crm.associations.v4.models as associations_models  # type: ignore[import-untyped]
import hubspot.crm.objects.api as objects_api  # type: ignore[import-untyped]
import hubspot.crm.objects.models as objects_models  # type: ignore[import-untyped]
import pytest
from hubspot.crm.associations.v4.api_client import ApiClient as AssociationsClient  # type: ignore[import-untyped]
from hubspot.crm.objects.api_client import ApiClient as ObjectsClient  # type: ignore[import-untyped]
from hubspot.exceptions import InvalidSignatureTimestampError  # type: ignore[import-untyped]
from hubspot.utils.signature import Signature  # type: ignore[import-untyped]

from adapters.crm.hubspot import HubSpotCrm
from adapters.errors import NotFoundError, TransientError
from adapters.webhooks import hubspot as webhooks
from domain.customer_master import MasterField
from domain.order import SalesOrder, SalesOrderStatus, Subscription, SubscriptionStatus
from domain.receivable import ReceivableStatus
from revsync.gateway.app import create_app
from revsync.settings import Settings
from sandbox.app import DEFAULT_TOKENS, SandboxState
from sandbox.app import create_app as create_sandbox
from sandbox.hubspot import COMPANY_IDS, create_deal
from tests.oracles.recording import Exchange, Recording
from tests.staff import secret_settings

BASE_URL = "http://sandbox/hubspot"
TOKEN = DEFAULT_TOKENS["hubspot"]
NORDLICHT = COMPANY_IDS["0015e00000NordDE1"]
ACME = COMPANY_IDS["0015e00000AcmeUS1"]
SECRET = "hubspot-app-secret"
GATEWAY_URL = "http://gw/v1/webhooks/hubspot"
# Documented members of HubSpot's error bodies the library's Error model does not have.
ERROR_MEMBERS = frozenset({"status"})
RATE_LIMIT_MEMBERS = ERROR_MEMBERS | {"errorType", "policyName"}
PRIMITIVES = frozenset({"str", "int", "float", "bool", "object", "datetime", "date"})


# -- the library's operations -------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    """One operation of the library's generated API."""

    name: str
    method: str
    template: str
    query: frozenset[str]
    body: str | None
    responses: dict[int, str]
    models: ModuleType
    client: type[Any]

    def matches(self, method: str, path: str) -> bool:
        pattern = re.sub(r"\{[^}]+\}", "[^/]+", self.template)
        return method == self.method and re.fullmatch(pattern, path) is not None

    @property
    def literal_segments(self) -> int:
        return sum(1 for part in self.template.split("/") if part and "{" not in part)


def _operations(package: ModuleType, models: ModuleType, client: type[Any]) -> Iterator[Operation]:
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__:
                continue
            for name, function in inspect.getmembers(cls, inspect.isfunction):
                if not name.endswith("_with_http_info"):
                    continue
                source = inspect.getsource(function)
                call = re.search(r'call_api\(\s*"([^"]+)",\s*"(\w+)"', source)
                if call is None:
                    continue
                query = re.findall(r'query_params\.append\(\("(\w+)"', source)
                body_name = re.search(r'body_params = local_var_params\["(\w+)"\]', source)
                body = None
                if body_name is not None:
                    documented = re.search(
                        r":type " + body_name.group(1) + r": (\w+)", inspect.getdoc(function) or ""
                    )
                    body = documented.group(1) if documented else None
                responses = {
                    int(status): model
                    for status, model in re.findall(
                        r'(\d{3}): "(\w+)"', source.split("call_api")[0]
                    )
                }
                yield Operation(
                    name.removesuffix("_with_http_info"),
                    call.group(2),
                    call.group(1),
                    frozenset(query),
                    body,
                    responses,
                    models,
                    client,
                )


OPERATIONS = [
    *_operations(objects_api, objects_models, ObjectsClient),
    *_operations(associations_api, associations_models, AssociationsClient),
]


def operation_of(exchange: Exchange) -> Operation:
    """The library's operation for a recorded request (the most specific path template)."""
    path = exchange.path.removeprefix("/hubspot")  # the sandbox's mount point
    found = [o for o in OPERATIONS if o.matches(exchange.method, path)]
    assert found, f"hubspot-api-client has no operation {exchange.method} {exchange.path}"
    return max(found, key=lambda o: o.literal_segments)


def unknown_keys(value: Any, kind: str, models: ModuleType, path: str = "$") -> list[str]:
    """Keys of ``value`` that the library's type ``kind`` does not know, at any depth."""
    if value is None or kind in PRIMITIVES:
        return []
    if kind.startswith("list["):
        inner = kind[5:-1]
        if not isinstance(value, list):
            return [f"{path}: not a list"]
        return [
            p for i, v in enumerate(value) for p in unknown_keys(v, inner, models, f"{path}[{i}]")
        ]
    if kind.startswith("dict["):
        inner = kind[kind.index(",") + 1 : -1].strip()
        if not isinstance(value, dict):
            return [f"{path}: not an object"]
        return [p for k, v in value.items() for p in unknown_keys(v, inner, models, f"{path}.{k}")]
    model = getattr(models, kind)
    if not isinstance(value, dict):
        return [f"{path}: not an object ({kind})"]
    known = {model.attribute_map[attr]: model.openapi_types[attr] for attr in model.attribute_map}
    problems: list[str] = []
    for key, item in value.items():
        if key not in known:
            problems.append(f"{path}.{key} (not in {kind})")
        else:
            problems.extend(unknown_keys(item, known[key], models, f"{path}.{key}"))
    return problems


def deserialised(operation: Operation, kind: str, body: bytes) -> Any:
    """``body`` through the library's own deserialiser (required fields, enumerations)."""
    return operation.client().deserialize(SimpleNamespace(data=body), kind)


def check_request(exchange: Exchange) -> Operation:
    operation = operation_of(exchange)
    sent = {k for k, _ in httpx.QueryParams(exchange.query).multi_items()}
    assert sent <= operation.query, (
        f"{exchange.method} {exchange.path}: query {sorted(sent - operation.query)} is not a "
        f"parameter of {operation.name}"
    )
    body = exchange.request_json()
    if operation.body is None:
        assert body is None, f"{operation.name} takes no body"
    else:
        assert body is not None, f"{operation.name} takes a {operation.body}"
        assert unknown_keys(body, operation.body, operation.models) == []
        deserialised(operation, operation.body, exchange.request)
    return operation


def check_answer(exchange: Exchange, allowed: frozenset[str] = ERROR_MEMBERS) -> Any:
    """The answer in the library's model for its status (``Error`` for one it lists none
    for); ``allowed``: top-level members of an error documented elsewhere than in the model."""
    operation = operation_of(exchange)
    kind = operation.responses.get(exchange.status, "Error")
    if kind != "Error":
        allowed = frozenset()
    document = exchange.response_json()
    problems = unknown_keys(document, kind, operation.models)
    problems = [p for p in problems if not any(f"$.{a} " in p for a in allowed)]
    assert problems == [], f"{operation.name} {exchange.status}: {problems}"
    return deserialised(operation, kind, exchange.response)


# -- the adapter on the wire --------------------------------------------------------------


@pytest.fixture
def state() -> SandboxState:
    return SandboxState()


@pytest.fixture
def wire(state: SandboxState) -> Recording:
    return Recording(httpx.ASGITransport(app=create_sandbox(state)))


@pytest.fixture
async def crm(wire: Recording) -> AsyncIterator[HubSpotCrm]:
    async with httpx.AsyncClient(transport=wire, base_url="http://sandbox") as http:
        yield HubSpotCrm(http, base_url=BASE_URL, access_token=TOKEN)


@pytest.fixture
async def seller(state: SandboxState) -> AsyncIterator[httpx.AsyncClient]:
    """What a seller does in HubSpot (not the adapter: not recorded)."""
    transport = httpx.ASGITransport(app=create_sandbox(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as http:
        yield http


async def book(crm: HubSpotCrm, deal_id: str) -> str:
    return await crm.record_order(
        quote_id=deal_id,
        account_id=NORDLICHT,
        order_key=f"q2c-{deal_id}:crm-order",
        sales_order=SalesOrder(
            order_id="5501",
            external_id=f"q2c-{deal_id}:erp-order",
            customer_id="301",
            currency="EUR",
            total=Decimal("12345.67"),
            status=SalesOrderStatus.PENDING_FULFILLMENT,
        ),
        subscription=Subscription(
            subscription_id="sub_1Q2c",
            customer_id="cus_9Z",
            currency="EUR",
            status=SubscriptionStatus.ACTIVE,
        ),
    )


@pytest.fixture
async def session(crm: HubSpotCrm, wire: Recording, seller: httpx.AsyncClient) -> Recording:
    """Everything the adapter does, on the wire: read a closed-won deal, book its order
    twice, mark the deal, read and write a company, page through orders and companies."""
    deal_id = await create_deal(
        seller,
        BASE_URL,
        TOKEN,
        NORDLICHT,
        currency="EUR",
        lines=[("PLAT-CORE", "20", "10"), ("ONBOARD-STD", "1", "0")],
    )
    await crm.closed_won_quote(deal_id)
    assert await book(crm, deal_id) == await book(crm, deal_id)
    await crm.set_quote_status(deal_id, "Booked", "booked by revsync")
    await crm.get_account(NORDLICHT)
    await crm.company_properties(ACME)
    await crm.update_account_fields(
        ACME, {MasterField.NAME: "Acme Robotics Group", MasterField.EMAIL: "ap@acme.example"}, "k"
    )
    await crm.set_receivable_status(
        ACME,
        ReceivableStatus.OVERDUE,
        "INV-1",
        Decimal("120.50"),
        "USD",
        as_of=datetime(2025, 3, 1, tzinfo=UTC),
    )
    page = await crm.list_accounts(None, 2)
    await crm.list_accounts(page.cursor, 2)
    await crm.list_orders(None, 10)
    return wire


def test_the_library_names_every_operation_the_adapter_uses() -> None:
    names = {o.name for o in OPERATIONS}
    assert {"get_by_id", "get_page", "update", "read", "upsert", "create_default"} <= names


async def test_every_request_the_adapter_sends_is_an_operation_with_a_known_body(
    session: Recording,
) -> None:
    used = {check_request(exchange).name for exchange in session.exchanges}
    assert used == {"get_by_id", "get_page", "update", "read", "upsert", "create_default"}
    (upsert, _) = session.of("POST", r"/hubspot/crm/v3/objects/orders/batch/upsert")
    (item,) = upsert.request_json()["inputs"]
    assert (item["idProperty"], item["id"]) == ("revsync_order_key", item["id"])


async def test_every_answer_the_adapter_reads_is_the_librarys_model(session: Recording) -> None:
    for exchange in session.exchanges:
        assert exchange.status in (200, 201, 207), (exchange.path, exchange.status)
        check_answer(exchange)


async def test_the_fields_revsync_reads_are_in_the_answers(session: Recording) -> None:
    (deal_read,) = session.of("GET", r"/hubspot/crm/v3/objects/deals/\d+")
    deal = check_answer(deal_read)
    companies = deal.associations["companies"].results
    assert [(c.id, c.type) for c in companies] == [(NORDLICHT, "deal_to_company")]
    assert len(deal.associations["line items"].results) == 2
    assert deal.properties["dealstage"] == "closedwon"

    (items_read,) = session.of("POST", r"/hubspot/crm/v3/objects/line_items/batch/read")
    items = check_answer(items_read)
    assert {r.properties["hs_sku"] for r in items.results} == {"PLAT-CORE", "ONBOARD-STD"}

    first, again = (check_answer(e) for e in session.of("POST", r".*/orders/batch/upsert"))
    assert first.status == again.status == "COMPLETE"
    assert first.results[0].id == again.results[0].id
    assert (first.results[0].new, again.results[0].new) == (True, False)

    for association in session.of("PUT", r"/hubspot/crm/v4/objects/.*"):
        answer = check_answer(association)
        assert answer.results[0].association_spec.association_category == "HUBSPOT_DEFINED"

    first_page, second_page = (
        check_answer(e) for e in session.of("GET", r"/hubspot/crm/v3/objects/companies")
    )
    assert first_page.paging.next.after
    assert {r.id for r in first_page.results}.isdisjoint({r.id for r in second_page.results})


async def test_error_answers_are_the_librarys_error(
    crm: HubSpotCrm, wire: Recording, state: SandboxState, seller: httpx.AsyncClient
) -> None:
    with pytest.raises(NotFoundError):
        await crm.get_account("99999999999")
    (missing,) = wire.of("GET", r"/hubspot/crm/v3/objects/companies/99999999999")
    error = check_answer(missing)
    assert error.category == "OBJECT_NOT_FOUND"
    assert error.correlation_id
    assert error.message

    await create_deal(
        seller, BASE_URL, TOKEN, NORDLICHT, currency="EUR", lines=[("PLAT-CORE", "1", "0")]
    )
    (item_id,) = state.hubspot.records["line_items"]
    with pytest.raises(NotFoundError):  # one of two line items is gone: a 207 with errors
        await crm._batch_read("read_line_items", "line_items", [item_id, "99999999999"], ())
    (partial,) = wire.of("POST", r"/hubspot/crm/v3/objects/line_items/batch/read")
    assert partial.status == 207
    multi = check_answer(partial)
    assert multi.num_errors == 1
    assert multi.errors[0].category == "OBJECT_NOT_FOUND"

    state.hubspot.ten_secondly_limit = 0
    with pytest.raises(TransientError):
        await crm.get_account(NORDLICHT)
    throttled = wire.exchanges[-1]
    assert throttled.status == 429
    limited = check_answer(throttled, allowed=RATE_LIMIT_MEMBERS)
    assert limited.category == "RATE_LIMITS"
    assert throttled.response_json()["policyName"] == "TEN_SECONDLY_ROLLING"


# -- webhook signatures -------------------------------------------------------------------


async def rendered(seller: httpx.AsyncClient, url: str) -> dict[str, Any]:
    answer = await seller.post(
        "/_sandbox/hubspot/webhooks/render", json={"url": url, "client_secret": SECRET}
    )
    assert answer.status_code == 200, answer.text
    delivery: dict[str, Any] = answer.json()
    assert delivery["events"] > 0
    return delivery


async def test_the_library_verifies_the_emulators_v3_signatures(
    crm: HubSpotCrm, seller: httpx.AsyncClient
) -> None:
    await crm.update_account_fields(ACME, {MasterField.NAME: "Acme Robotics Group"}, "k")
    url = "https://revsync.example.com/v1/webhooks/hubspot?tenant=acme"
    delivery = await rendered(seller, url)
    headers = delivery["headers"]
    assert Signature.is_valid(
        signature=headers["X-HubSpot-Signature-v3"],
        client_secret=SECRET,
        request_body=delivery["body"],
        http_uri=url,
        http_method="POST",
        signature_version="v3",
        timestamp=headers["X-HubSpot-Request-Timestamp"],
    )
    assert not Signature.is_valid(
        signature=headers["X-HubSpot-Signature-v3"],
        client_secret="another-secret",
        request_body=delivery["body"],
        http_uri=url,
        signature_version="v3",
        timestamp=headers["X-HubSpot-Request-Timestamp"],
    )
    # HubSpot signs the URL with ':' and '@' decoded (its documented list); the library
    # signs what it is given, so it is given the decoded URL.
    escaped = "https://revsync.example.com/v1/webhooks/hubspot?who=ops%40acme%3Aeu"
    delivery = await rendered(seller, escaped)
    assert Signature.is_valid(
        signature=delivery["headers"]["X-HubSpot-Signature-v3"],
        client_secret=SECRET,
        request_body=delivery["body"],
        http_uri="https://revsync.example.com/v1/webhooks/hubspot?who=ops@acme:eu",
        signature_version="v3",
        timestamp=delivery["headers"]["X-HubSpot-Request-Timestamp"],
    )


@pytest.fixture
async def gateway() -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(**(secret_settings() | {"hubspot_client_secret": SECRET}))
    app = create_app(settings, SimpleNamespace())  # type: ignore[arg-type]  # never called
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
            yield http


def library_signed(body: str, timestamp_ms: int) -> dict[str, str]:
    return {
        "content-type": "application/json",
        webhooks.SIGNATURE_HEADER: Signature.get_signature(
            SECRET,
            body,
            "v3",
            http_uri=GATEWAY_URL,
            http_method="POST",
            timestamp=str(timestamp_ms),
        ),
        webhooks.TIMESTAMP_HEADER: str(timestamp_ms),
    }


EVENT = {
    "eventId": 1,
    "subscriptionId": 2840520,
    "portalId": 62515,
    "appId": 1160452,
    "occurredAt": 1,
    "subscriptionType": "contact.creation",
    "attemptNumber": 0,
    "objectId": 1,
}


async def test_the_gateway_accepts_what_the_library_signs_within_its_time_limit(
    gateway: httpx.AsyncClient,
) -> None:
    body = json.dumps([EVENT])
    now = int(time.time() * 1000)
    fresh = await gateway.post(
        "/v1/webhooks/hubspot", content=body, headers=library_signed(body, now)
    )
    assert fresh.status_code == 200, fresh.text
    assert fresh.json() == {"status": "received", "events": 1}

    tampered = await gateway.post(
        "/v1/webhooks/hubspot", content=body + " ", headers=library_signed(body, now)
    )
    assert tampered.status_code == 401

    # Older than the library's limit (HubSpot's five minutes): both refuse it.
    stale = now - (Signature.MAX_ALLOWED_TIMESTAMP + 30) * 1000
    headers = library_signed(body, stale)
    with pytest.raises(InvalidSignatureTimestampError):
        Signature.is_valid(
            signature=headers[webhooks.SIGNATURE_HEADER],
            client_secret=SECRET,
            request_body=body,
            http_uri=GATEWAY_URL,
            signature_version="v3",
            timestamp=str(stale),
        )
    refused = await gateway.post("/v1/webhooks/hubspot", content=body, headers=headers)
    assert refused.status_code == 401
    assert Settings().webhook_tolerance_seconds == Signature.MAX_ALLOWED_TIMESTAMP
