"""Zuora's own Python SDK (``zuora-sdk`` 3.21.0, a pinned test dependency; MIT licence, as its
installed package metadata says: ``License: MIT``) as the judge of revsync's Zuora adapter and
emulator, so neither of them (written by the same hands) decides what Zuora's wire looks like.

The adapter runs against the emulator (creating an account, subscribing it through an Order,
cancelling through an Order, writing golden fields, reading, voiding and paging invoices, and
listing through Object Query) and every exchange is recorded on the wire. Then, against the
SDK's generated API (``zuora_sdk.api``) and its pydantic models (``zuora_sdk.models``):

- each request is an operation of the SDK: its method and path template, query parameters the
  operation takes with values its annotations accept (types and bounds), and an
  ``idempotency-key`` header only where the operation takes ``Idempotency-Key``;
- each body (``CreateAccountRequest``, ``UpdateAccountRequest``, ``CreateOrderRequest`` for the
  create-subscription and the cancel-subscription orders) loads into the operation's request
  model with no key the model does not know, at any depth (the SDK's models keep unknown keys
  in ``additional_properties`` silently, so keys are compared with each model's fields by
  alias), and validates (``from_dict``: strict types, lengths, enumerations);
- each answer the adapter read loads into the operation's response model for its status
  (``CommonResponse`` for a failure) the same way, with the fields revsync reads present.

Two documented exceptions, both in docs/vendor-fidelity.md ("Zuora"): a key ``<name>__c`` is a
custom field, which Zuora puts at the top level of an object that has no ``customFields``
member (accounts, subscriptions, rate plan charges) and nowhere else; and Object Query takes a
``pageSize`` up to 99 (Zuora's "Pagination" guide and every Object Query operation's reference
page) where the SDK's generated annotation bounds it at 50, the v1 pagination limit.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import types
import typing
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date
from importlib import metadata
from typing import Any

import httpx
import pytest
import zuora_sdk.api as sdk_api
import zuora_sdk.models as sdk_models
from pydantic import BaseModel, TypeAdapter, ValidationError
from zuora_sdk.models.create_account_request import CreateAccountRequest
from zuora_sdk.models.create_order_request import CreateOrderRequest
from zuora_sdk.models.expanded_subscription import ExpandedSubscription

from adapters.billing.zuora import ZuoraBilling
from adapters.errors import NotFoundError, RejectedError
from adapters.registry import build_billing
from domain.customer import Address
from domain.customer_master import MasterField
from domain.order import SubscriptionStatus, build_subscription
from revsync.settings import Settings
from sandbox.app import SandboxState
from sandbox.app import create_app as create_sandbox
from tests.oracles.recording import Exchange, Recording
from tests.ports.contract import accepted_quote, seeded_customer

CUSTOM_FIELD = re.compile(r"^[A-Za-z][A-Za-z0-9_]*__c$")
# Object Query operations take pageSize 1..99 (Zuora's documentation; the SDK says 50).
OBJECT_QUERY_PAGE = 99
HEADER_PARAMETERS = {"idempotency-key": "Idempotency-Key"}


# -- the SDK's operations -----------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    name: str
    method: str
    template: str
    query: dict[str, Any]  # the wire name -> its annotation
    headers: frozenset[str]
    body: type[BaseModel] | None
    responses: dict[str, str]

    def matches(self, method: str, path: str) -> bool:
        pattern = re.sub(r"\{[^}]+\}", "[^/]+", self.template)
        return method == self.method and re.fullmatch(pattern, path) is not None

    @property
    def literal_segments(self) -> int:
        return sum(1 for part in self.template.split("/") if part and "{" not in part)


def _operations() -> Iterator[Operation]:
    for info in pkgutil.iter_modules(sdk_api.__path__):
        module = importlib.import_module(f"{sdk_api.__name__}.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__ or not cls.__name__.endswith("Api"):
                continue
            for name, function in inspect.getmembers(cls, inspect.isfunction):
                serialize = getattr(cls, f"_{name}_serialize", None)
                if name.startswith("_") or serialize is None:
                    continue
                if name.endswith(("_with_http_info", "_without_preload_content")):
                    continue
                source = inspect.getsource(serialize)
                call = re.search(r"method='(\w+)',\s*resource_path='([^']+)'", source)
                assert call is not None, name
                parameters = inspect.signature(function).parameters
                query: dict[str, Any] = {}
                for python, wire in re.findall(
                    r"if (\w+) is not None:\s*_query_params\.append\(\('([^']+)'", source
                ):
                    query[wire] = parameters[python].annotation
                bodies = [
                    p.annotation
                    for p in parameters.values()
                    if isinstance(p.annotation, type) and issubclass(p.annotation, BaseModel)
                ]
                responses = dict(re.findall(r"'(\d{3})': \"(\w+)\"", inspect.getsource(function)))
                yield Operation(
                    name=name,
                    method=call.group(1),
                    template=call.group(2),
                    query=query,
                    headers=frozenset(re.findall(r"_header_params\['([^']+)'\] =", source)),
                    body=bodies[0] if bodies else None,
                    responses=responses,
                )


OPERATIONS = list(_operations())


def operation_of(exchange: Exchange) -> Operation:
    """The SDK's operation for a recorded request (the most specific path template)."""
    path = exchange.path.removeprefix("/zuora")  # the sandbox's mount point
    found = [o for o in OPERATIONS if o.matches(exchange.method, path)]
    assert found, f"zuora-sdk has no operation {exchange.method} {path}"
    return max(found, key=lambda o: o.literal_segments)


# -- keys against the SDK's models ----------------------------------------------------------


def _members(annotation: Any) -> list[Any]:
    """The alternatives of a (possibly Annotated, Optional, Union) annotation."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [m for a in typing.get_args(annotation) for m in _members(a) if m is not type(None)]
    return [annotation]


def unknown_keys(value: Any, annotation: Any, path: str = "$") -> list[str]:
    """Keys of ``value`` the SDK's ``annotation`` does not know, at any depth."""
    found: list[list[str]] = []
    for member in _members(annotation):
        origin = typing.get_origin(member)
        if isinstance(member, type) and issubclass(member, BaseModel):
            if not isinstance(value, dict):
                continue
            found.append(_model_keys(value, member, path))
        elif origin in (list, tuple, set) and isinstance(value, list):
            (inner, *_) = typing.get_args(member) or (Any,)
            found.append(
                [p for i, v in enumerate(value) for p in unknown_keys(v, inner, f"{path}[{i}]")]
            )
        elif origin is dict and isinstance(value, dict):
            inner = typing.get_args(member)[1] if typing.get_args(member) else Any
            found.append(
                [p for k, v in value.items() for p in unknown_keys(v, inner, f"{path}.{k}")]
            )
        else:
            found.append([])
    return min(found, key=len) if found else []


def _model_keys(value: dict[str, Any], model: type[BaseModel], path: str) -> list[str]:
    fields = {
        (info.alias or name): info.annotation
        for name, info in model.model_fields.items()
        if name != "additional_properties"
    }
    custom_fields_at_top = "customFields" not in fields
    # Object Query (the Expanded* models) names every field with a lower-case first letter,
    # custom fields too: the SDK's cpqBundleJsonId__QT where GetSubscriptionResponse has
    # CpqBundleJsonId__QT, vATId where taxInfo has VATId.
    object_query = model.__name__.startswith("Expanded")
    problems: list[str] = []
    for key, item in value.items():
        if key in fields:
            problems.extend(unknown_keys(item, fields[key], f"{path}.{key}"))
        elif not (custom_fields_at_top and CUSTOM_FIELD.match(key)):
            problems.append(f"{path}.{key} (not in {model.__name__})")
        elif object_query and not key[0].islower():
            problems.append(f"{path}.{key} (Object Query names it {key[:1].lower() + key[1:]})")
    return problems


def loaded(model: type[BaseModel], document: Any) -> Any:
    """``document`` through the SDK's own loading (``from_dict``: strict validation)."""
    return model.from_dict(document)  # type: ignore[attr-defined]


def check_request(exchange: Exchange) -> Operation:
    operation = operation_of(exchange)
    for name, raw in httpx.QueryParams(exchange.query).multi_items():
        assert name in operation.query, f"{operation.name} takes no query parameter {name}"
        annotation = operation.query[name]
        value: Any = int(raw) if raw.isdigit() else raw
        if name == "pageSize" and exchange.path.startswith("/zuora/object-query/"):
            assert 1 <= value <= OBJECT_QUERY_PAGE, f"{operation.name}: pageSize {value}"
            continue
        if typing.get_origin(_members(annotation)[0]) is list:
            value = [value]
        try:
            TypeAdapter(annotation).validate_python(value)
        except ValidationError as error:
            raise AssertionError(f"{operation.name}: {name}={raw}: {error}") from None
    for header, sdk_name in HEADER_PARAMETERS.items():
        if header in exchange.headers:
            assert sdk_name in operation.headers, f"{operation.name} takes no {sdk_name}"
    body = exchange.request_json()
    if operation.body is None:
        assert body is None, f"{operation.name} takes no body"
    else:
        assert isinstance(body, dict), f"{operation.name} takes a {operation.body.__name__}"
        assert unknown_keys(body, operation.body) == [], operation.name
        loaded(operation.body, body)
    return operation


def check_answer(exchange: Exchange) -> Any:
    """The answer in the operation's model for its status (``CommonResponse`` for a
    failure: HTTP 200 with ``success: false``, or an error status)."""
    operation = operation_of(exchange)
    document = exchange.response_json()
    failed = isinstance(document, dict) and document.get("success") is False
    kind = "CommonResponse" if failed else operation.responses.get(str(exchange.status))
    assert kind is not None, f"{operation.name} answers no {exchange.status}"
    model = getattr(sdk_models, kind)
    assert unknown_keys(document, model) == [], f"{operation.name} {exchange.status}"
    return loaded(model, document)


# -- the adapter on the wire ----------------------------------------------------------------


# The calls the adapter makes (method, path on the sandbox) by the SDK operation each is.
CALLS: dict[str, tuple[str, str]] = {
    "create_account": ("POST", r"/zuora/v1/accounts"),
    "get_account": ("GET", r"/zuora/v1/accounts/[^/]+"),
    "update_account": ("PUT", r"/zuora/v1/accounts/[^/]+"),
    "get_product": ("GET", r"/zuora/v1/catalog/products?/[^/]+"),
    "create_order": ("POST", r"/zuora/v1/orders"),
    "get_subscription_by_key": ("GET", r"/zuora/v1/subscriptions/[^/]+"),
    "get_invoice": ("GET", r"/zuora/v1/invoices/[^/]+"),
    "get_invoice_items": ("GET", r"/zuora/v1/invoices/[^/]+/items"),
    "unpost_invoice": ("PUT", r"/zuora/v1/(invoices/[^/]+/unpost|object/invoice/[^/]+)"),
    "cancel_invoice": ("PUT", r"/zuora/v1/invoices/[^/]+/cancel"),
    "query_accounts": ("GET", r"/zuora/object-query/accounts"),
    "query_subscriptions": ("GET", r"/zuora/object-query/subscriptions"),
    "query_invoices": ("GET", r"/zuora/object-query/invoices"),
    "query_invoice_items": ("GET", r"/zuora/object-query/invoice-items"),
}


@pytest.fixture
def state() -> SandboxState:
    return SandboxState()


@pytest.fixture
def wire(state: SandboxState) -> Recording:
    return Recording(httpx.ASGITransport(app=create_sandbox(state)))


@asynccontextmanager
async def adapter_on(wire: Recording) -> AsyncIterator[ZuoraBilling]:
    settings = Settings(sandbox_host="sandbox", sandbox_port=80, billing="zuora")
    async with httpx.AsyncClient(transport=wire, base_url="http://sandbox") as http:
        adapter = build_billing(settings, http)
        assert isinstance(adapter, ZuoraBilling)
        yield adapter


@pytest.fixture
async def billing(wire: Recording) -> AsyncIterator[ZuoraBilling]:
    async with adapter_on(wire) as adapter:
        yield adapter


def api(wire: Recording) -> list[Exchange]:
    """The API calls (the OAuth token exchange is not part of the SDK's API)."""
    return [e for e in wire.exchanges if e.path != "/zuora/oauth/token"]


async def everything(billing: ZuoraBilling) -> None:
    """Everything the adapter does."""
    customer = seeded_customer()
    account = await billing.upsert_customer(customer, "q2c-Q1:billing-customer")
    assert await billing.upsert_customer(customer, "q2c-Q1:billing-customer") == account
    await billing.update_customer_fields(
        account,
        {
            MasterField.NAME: "Acme Robotics Group",
            MasterField.EMAIL: "invoices@acme-robotics.example",
            MasterField.BILLING_ADDRESS: Address(
                line1="1 Market St", city="San Francisco", postal_code="94105", country="US"
            ),
        },
        "k",
    )
    draft = build_subscription(accepted_quote("0Q0ORACLE000001", "EUR"), "q2c-Q1:subscription")
    created = await billing.create_subscription(draft, account)
    assert await billing.create_subscription(draft, account) == created
    assert created.latest_invoice_id is not None
    await billing.get_invoice(created.latest_invoice_id)
    await billing.void_invoice(created.latest_invoice_id)
    cancelled = await billing.cancel_subscription(created.subscription_id, "customer churned")
    assert cancelled.status is SubscriptionStatus.CANCELED
    await billing.list_subscriptions(None, 10)
    await billing.list_customers(None, 10)
    await billing.list_invoices(None, 10)


@pytest.fixture(scope="module")
async def session() -> Recording:
    """Everything the adapter does, on the wire (once for the module)."""
    wire = Recording(httpx.ASGITransport(app=create_sandbox(SandboxState())))
    async with adapter_on(wire) as billing:
        await everything(billing)
    return wire


def calls(session: Recording, operation: str) -> list[Exchange]:
    method, path = CALLS[operation]
    found = session.of(method, path)
    assert found, f"the adapter made no {operation} call"
    return found


def test_the_licence_is_mit_as_the_package_says() -> None:
    assert metadata.metadata("zuora_sdk")["License"] == "MIT"
    assert metadata.version("zuora_sdk") == "3.21.0"


async def test_every_call_the_adapter_makes_is_one_of_these(session: Recording) -> None:
    known = [e for e in api(session) if any(e.matches(*call) for call in CALLS.values())]
    assert known == api(session)


@pytest.mark.parametrize("operation", sorted(CALLS))
async def test_the_request_is_the_sdks_operation(session: Recording, operation: str) -> None:
    for exchange in calls(session, operation):
        assert check_request(exchange).name == operation


@pytest.mark.parametrize("operation", sorted(CALLS))
async def test_the_answer_is_the_sdks_model(session: Recording, operation: str) -> None:
    for exchange in calls(session, operation):
        check_answer(exchange)


async def test_the_orders_load_into_create_order_request(session: Recording) -> None:
    create, cancel = (e.request_json() for e in session.of("POST", r"/zuora/v1/orders"))
    order: Any = loaded(CreateOrderRequest, create)
    (subscription,) = order.subscriptions
    (action,) = subscription.order_actions
    assert action.type == "CreateSubscription"
    assert action.create_subscription.terms.initial_term.term_type == "TERMED"
    assert subscription.custom_fields["RevsyncKey__c"] == "q2c-Q1:subscription"
    assert order.processing_options.run_billing is True
    cancelling: Any = loaded(CreateOrderRequest, cancel)
    (cancel_action,) = cancelling.subscriptions[0].order_actions
    assert cancel_action.type == "CancelSubscription"
    assert cancel_action.cancel_subscription.cancellation_policy == "SpecificDate"
    for exchange in session.of("POST", r"/zuora/v1/orders"):
        assert exchange.headers["idempotency-key"]


async def test_the_fields_revsync_reads_are_in_the_answers(session: Recording) -> None:
    (created,) = session.of("POST", r"/zuora/v1/accounts")
    assert check_answer(created).account_number
    order = check_answer(session.of("POST", r"/zuora/v1/orders")[0])
    assert order.subscription_numbers and order.invoice_numbers
    subscription = check_answer(session.of("GET", r"/zuora/v1/subscriptions/[^/]+")[0])
    assert (subscription.subscription_number, subscription.account_number) != (None, None)
    assert subscription.status is not None and subscription.contract_effective_date
    accounts = [check_answer(e) for e in session.of("GET", r"/zuora/v1/accounts/[^/]+")]
    assert all(a.billing_and_payment.currency for a in accounts)
    for exchange in session.of("GET", r"/zuora/v1/invoices/[^/]+"):
        invoice = check_answer(exchange)
        assert invoice.invoice_number and invoice.status and invoice.amount is not None
    items = check_answer(session.of("GET", r"/zuora/v1/invoices/[^/]+/items")[0])
    assert items.invoice_items and all(i.charge_amount is not None for i in items.invoice_items)
    listed = check_answer(session.of("GET", r"/zuora/object-query/subscriptions")[-1])
    assert listed.data and all(s.name and s.account.account_number for s in listed.data)
    accounts_listed = check_answer(session.of("GET", r"/zuora/object-query/accounts")[-1])
    assert all(a.account_number and a.bill_to.postal_code for a in accounts_listed.data)


async def test_failures_are_the_sdks_common_response(
    billing: ZuoraBilling, wire: Recording
) -> None:
    with pytest.raises(NotFoundError):
        await billing.cancel_subscription("A-S99999999", "gone")
    failure = check_answer(api(wire)[-1])
    assert failure.success is False
    (reason,) = failure.reasons
    assert str(reason.code)[-2:] == "40"
    with pytest.raises(RejectedError):
        await billing.update_customer_fields("A99999999", {MasterField.WEBSITE: "x.io"}, "k")
    draft = build_subscription(accepted_quote("0Q0ORACLE000002", "EUR"), "q2c-Q2:subscription")
    with pytest.raises((RejectedError, NotFoundError)):
        await billing.create_subscription(draft, "A99999999")
    assert check_answer(api(wire)[-1]).success is False


def test_the_oracle_refuses_an_unknown_key_at_depth() -> None:
    body = {
        "orderDate": str(date(2025, 3, 1)),
        "existingAccountNumber": "A00000001",
        "subscriptions": [
            {"orderActions": [{"type": "CreateSubscription", "triggerDate": "2025-03-01"}]}
        ],
    }
    assert unknown_keys(body, CreateOrderRequest) == [
        "$.subscriptions[0].orderActions[0].triggerDate (not in CreateOrderAction)"
    ]
    assert unknown_keys({"name": "x", "CrmAccountName__c": "y"}, CreateAccountRequest) == []
    assert unknown_keys(
        {"subscriptions": [{"RevsyncKey__c": "k"}], "orderDate": "2025-03-01"},
        CreateOrderRequest,
    ) == ["$.subscriptions[0].RevsyncKey__c (not in CreateOrderSubscription)"]
    assert unknown_keys({"RevsyncKey__c": "k"}, ExpandedSubscription) == [
        "$.RevsyncKey__c (Object Query names it revsyncKey__c)"
    ]
