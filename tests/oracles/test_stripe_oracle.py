"""Stripe's own Python library as the judge of revsync's Stripe adapter and emulator.

The adapter and the emulator were written by the same hands; here neither is the judge. A
representative run of every Stripe operation revsync makes (customers, products,
subscriptions, invoices, listings, a quote's lines) goes through the real adapter against
the emulator, and:

- every request is checked against the typed request parameters of ``stripe`` 10.12.0 (API
  version 2024-06-20, revsync's ``STRIPE_API_VERSION``) for its endpoint: the names and
  nesting, the enums and scalar formats, and the form encoding, which must be exactly what
  the library's own encoder makes of the same parameters; and the headers (Bearer key,
  ``Stripe-Version``, ``Idempotency-Key`` on every create);
- every answer the adapter decoded loads as the library's resource class
  (``stripe.convert_to_stripe_object``), every field the adapter read exists on that typed
  class, and every field the emulator answered does too;
- the ``Stripe-Signature`` scheme is cross-checked both ways: the emulator's signed delivery
  passes ``stripe.Webhook.construct_event``, and a header computed with the library's own
  signature function is accepted by the gateway.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
import stripe

from adapters.billing import stripe as stripe_adapter
from adapters.billing.stripe import STRIPE_API_VERSION, StripeBilling
from adapters.http import decode_json
from adapters.webhooks import stripe as stripe_webhooks
from adapters.webhooks.stripe_quotes import API_VERSION as EVENT_API_VERSION
from adapters.webhooks.stripe_quotes import quote_from_stripe, with_line_items
from domain.customer import Address
from domain.customer_master import MasterField
from revsync.gateway.app import create_app as create_gateway
from revsync.settings import Settings
from sandbox.app import DEFAULT_TOKENS, SandboxState, create_app
from sandbox.stripe import SandboxInvoice, SandboxQuote, sign_event
from tests.adapters.test_stripe import EUR_DRAFT_LINES, draft_for, seed_customer
from tests.gateway import stripe_sandbox
from tests.gateway.test_intake import RecordingClient
from tests.oracles.stripe_library import (
    Reads,
    compute_signature,
    construct_event,
    field_known,
    library_encoding,
    nest,
    param_problems,
    resource_class,
    track,
    unknown_fields,
    verify_header,
)
from tests.staff import secret_settings

BASE_URL = "http://sandbox/stripe"
API_KEY = DEFAULT_TOKENS["stripe"]
ACCOUNT = "0015e00000NordDE1"

# Each endpoint revsync calls, and the library's parameters for it.
ENDPOINTS: list[tuple[str, str, Any]] = [
    ("GET", r"/v1/customers/search", stripe.Customer.SearchParams),
    ("GET", r"/v1/customers", stripe.Customer.ListParams),
    ("POST", r"/v1/customers", stripe.Customer.CreateParams),
    ("GET", r"/v1/customers/[^/]+", stripe.Customer.RetrieveParams),
    ("POST", r"/v1/customers/[^/]+", stripe.Customer.ModifyParams),
    ("GET", r"/v1/products/[^/]+", stripe.Product.RetrieveParams),
    ("POST", r"/v1/products", stripe.Product.CreateParams),
    ("GET", r"/v1/subscriptions/search", stripe.Subscription.SearchParams),
    ("GET", r"/v1/subscriptions", stripe.Subscription.ListParams),
    ("POST", r"/v1/subscriptions", stripe.Subscription.CreateParams),
    ("GET", r"/v1/subscriptions/[^/]+", stripe.Subscription.RetrieveParams),
    ("DELETE", r"/v1/subscriptions/[^/]+", stripe.Subscription.CancelParams),
    ("GET", r"/v1/invoices", stripe.Invoice.ListParams),
    ("GET", r"/v1/invoices/[^/]+", stripe.Invoice.RetrieveParams),
    ("GET", r"/v1/invoices/[^/]+/lines", stripe.Invoice.ListLinesParams),
    ("POST", r"/v1/invoices/[^/]+/finalize", stripe.Invoice.FinalizeInvoiceParams),
    ("POST", r"/v1/invoices/[^/]+/void", stripe.Invoice.VoidInvoiceParams),
    ("GET", r"/v1/quotes/[^/]+/line_items", stripe.Quote.ListLineItemsParams),
]
# Called only when Stripe did not expand the invoice's customer (the emulator always does).
NOT_IN_THE_RUN = frozenset({"GET /v1/customers/[^/]+"})
# Creates: each must carry an Idempotency-Key.
CREATES = frozenset({"/v1/customers", "/v1/products", "/v1/subscriptions"})

# Fields the adapter reads only as a fallback for API versions after 2024-06-20, when the
# 2024-06-20 field is empty (the Basil versions moved them). They must NOT be on the pinned
# version's resources; the day the pin moves, this list is reviewed with it.
LATER_API_FALLBACKS = frozenset(
    {
        ("invoice", "total_taxes"),  # 2024-06-20: tax
        ("invoice", "parent"),  # 2024-06-20: subscription
        ("invoice", "parent.subscription_details"),
        ("invoice", "parent.subscription_details.subscription"),
        ("line_item", "taxes"),  # 2024-06-20: tax_amounts
        # Read on every tax entry; only the later versions' ``taxes`` entries have it
        # (2024-06-20's tax_amounts say ``inclusive``).
        ("line_item", "tax_amounts[].tax_behavior"),
        ("line_item", "pricing"),  # 2024-06-20: price
        ("line_item", "parent"),  # 2024-06-20: type
    }
)


@dataclass
class Sent:
    method: str
    path: str  # without the /stripe prefix of the sandbox
    pairs: list[tuple[str, str]]
    headers: httpx.Headers


@dataclass
class Run:
    requests: list[Sent]
    reads: Reads


@pytest.fixture
def state() -> SandboxState:
    return SandboxState()


@pytest.fixture
async def http(state: SandboxState) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        yield client


async def representative_run(
    state: SandboxState, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> Run:
    """Every Stripe operation of revsync's adapter, once or more, against the emulator."""
    sent: list[Sent] = []
    reads = Reads()

    async def capture(request: httpx.Request) -> None:
        body = (await request.aread()).decode()
        pairs = parse_qsl(request.url.query.decode(), keep_blank_values=True)
        pairs += parse_qsl(body, keep_blank_values=True)
        path = request.url.path.removeprefix("/stripe")
        sent.append(Sent(request.method, path, pairs, request.headers))

    http.event_hooks["request"].append(capture)
    decode = decode_json

    def reading(response: httpx.Response) -> Any:
        body = decode(response)
        if response.is_success and isinstance(body, dict):
            reads.bodies.append(body)
            return track(body, reads, "", "")
        return body

    monkeypatch.setattr(stripe_adapter, "decode_json", reading)
    billing = StripeBilling(http, base_url=BASE_URL, api_key=API_KEY)

    # Customers: created, found again, updated.
    customer = seed_customer(ACCOUNT)
    customer_id = await billing.upsert_customer(customer, "q2c-O1:billing-customer")
    await billing.upsert_customer(customer, "q2c-O2:billing-customer")
    await billing.find_customer(ACCOUNT)
    moved = Address(line1="Am Sandtorkai 1", city="Hamburg", postal_code="20457", country="DE")
    await billing.update_customer_fields(
        customer_id,
        {MasterField.EMAIL: "ap@nordlicht.example", MasterField.BILLING_ADDRESS: moved},
        "master-1:billing",
    )
    # Subscriptions (products made on the way), found again, its invoice voided, cancelled.
    draft = draft_for("EUR", EUR_DRAFT_LINES)
    subscription = await billing.create_subscription(draft, customer_id)
    await billing.create_subscription(draft, customer_id)
    await billing.find_subscription(draft.idempotency_key)
    assert subscription.latest_invoice_id is not None
    await billing.void_invoice(subscription.latest_invoice_id)
    await billing.cancel_subscription(subscription.subscription_id, "quote withdrawn")
    await billing.cancel_subscription(subscription.subscription_id, "again")
    # An invoice for revenue: more lines than Stripe embeds, discounts, taxes both ways.
    lines = [
        {"product": "PLAT-CORE", "quantity": n, "unit_amount": 4200, "recurring": "month"}
        for n in range(1, 12)
    ]
    lines.append({"product": "ONBOARD-STD", "unit_amount": 230000, "tax": 43700})
    lines[0] |= {"discount": 420, "tax": 760, "tax_inclusive": True}
    made = state.stripe.create_sandbox_invoice(
        SandboxInvoice.model_validate(
            {
                "account_id": ACCOUNT,
                "currency": "eur",
                "lines": lines,
                "effective_at": 1_772_280_000,
            }
        )
    )
    await billing.get_invoice(str(made["id"]))
    # A draft is finalized quietly, then voided.
    draft_invoice = state.stripe.create_sandbox_invoice(
        SandboxInvoice.model_validate(
            {"account_id": ACCOUNT, "currency": "eur", "status": "draft", "lines": lines[-1:]}
        )
    )
    await billing.void_invoice(str(draft_invoice["id"]))
    # Reconciliation's listings, two pages each.
    for listing in (billing.list_subscriptions, billing.list_customers, billing.list_invoices):
        page = await listing(None, 1)
        await listing(page.cursor, 1)
    # A quote's lines, as the gateway reads them (two pages).
    quote = state.stripe.create_sandbox_quote(
        SandboxQuote.model_validate(
            {
                "account_id": ACCOUNT,
                "currency": "eur",
                "lines": [
                    {"sku": "PLAT-CORE", "quantity": 3, "unit_amount": 4200, "recurring": "month"}
                ]
                * 101,
            }
        )
    )
    assert len(await billing.quote_line_items(str(quote["id"]))) == 101
    return Run(sent, reads)


def endpoint(request: Sent) -> tuple[str, Any]:
    """The endpoint (its pattern) a request went to, and the library's parameters for it."""
    matches = [
        (f"{method} {pattern}", params)
        for method, pattern, params in ENDPOINTS
        if method == request.method and re.fullmatch(pattern, request.path)
    ]
    assert matches, f"{request.method} {request.path}: an endpoint the oracle does not know"
    return matches[0]


# --- requests ------------------------------------------------------------------------------


async def test_every_request_fits_the_library_parameters_and_encoding(
    state: SandboxState, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = await representative_run(state, http, monkeypatch)
    called = {endpoint(request)[0] for request in run.requests}
    assert called == {f"{method} {pattern}" for method, pattern, _ in ENDPOINTS} - NOT_IN_THE_RUN

    problems: list[str] = []
    for request in run.requests:
        _, params = endpoint(request)
        nested = nest(request.pairs)
        where = f"{request.method} {request.path}"
        problems += [f"{where}: {p}" for p in param_problems(nested, params, "", params)]
        if sorted(library_encoding(nested)) != sorted(request.pairs):
            problems.append(
                f"{where}: encoded {sorted(request.pairs)}, the library encodes "
                f"{sorted(library_encoding(nested))}"
            )
    assert problems == []


async def test_every_request_carries_the_key_the_pinned_version_and_its_idempotency_key(
    state: SandboxState, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = await representative_run(state, http, monkeypatch)
    # The library release pins the API version whose shapes it types: revsync pins the same.
    assert stripe.api_version == STRIPE_API_VERSION == EVENT_API_VERSION == "2024-06-20"
    for request in run.requests:
        assert request.headers["authorization"] == f"Bearer {API_KEY}"
        assert request.headers["stripe-version"] == stripe.api_version
        if request.method == "POST" and request.pairs:
            assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        if request.method == "POST" and request.path in CREATES:
            assert request.headers.get("idempotency-key"), request.path


# --- answers -------------------------------------------------------------------------------


async def test_every_answer_loads_as_the_library_resource_and_every_read_field_exists(
    state: SandboxState, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = await representative_run(state, http, monkeypatch)
    kinds = set()
    for body in run.reads.bodies:
        loaded = stripe.convert_to_stripe_object(body, api_key=API_KEY)
        assert type(loaded) is resource_class(body["object"]), body["object"]
        kinds.add(body["object"])
        if body["object"] == "invoice":
            assert isinstance(loaded["lines"]["data"][0], stripe.InvoiceLineItem)
    assert kinds >= {"customer", "subscription", "invoice", "product", "list", "search_result"}

    read_by_adapter = sorted(
        f"{kind}: {path}"
        for kind, path in run.reads.fields
        if kind
        and (kind, path) not in LATER_API_FALLBACKS
        and not field_known(resource_class(kind), path)
    )
    assert read_by_adapter == []
    # The fallbacks really are absent from the pinned version (else they are not fallbacks).
    assert [f for f in LATER_API_FALLBACKS if field_known(resource_class(f[0]), f[1])] == []
    answered_by_emulator = sorted({p for body in run.reads.bodies for p in unknown_fields(body)})
    assert answered_by_emulator == []


async def test_a_quote_event_and_its_lines_load_as_the_library_quote_and_line_items(
    state: SandboxState, http: httpx.AsyncClient
) -> None:
    stripe_sandbox.accepted_quote(state, "qt_1Oracle")
    event = stripe.convert_to_stripe_object(stripe_sandbox.quote_event(state, "qt_1Oracle"))
    assert isinstance(event, stripe.Event)
    assert isinstance(event.data.object, stripe.Quote)
    assert "line_items" not in event.data.object
    assert unknown_fields(stripe_sandbox.quote_event(state, "qt_1Oracle")) == []
    answer = await http.get(
        "/stripe/v1/quotes/qt_1Oracle/line_items",
        params=[("expand[0]", "data.discounts"), ("expand[1]", "data.taxes")],
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    items = stripe.convert_to_stripe_object(answer.json())
    assert isinstance(items, stripe.ListObject)
    assert all(isinstance(item, stripe.LineItem) for item in items.data)
    assert unknown_fields(answer.json()) == []
    expanded = await http.get(
        "/stripe/v1/quotes/qt_1Oracle",
        params={"expand[0]": "line_items"},
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    assert unknown_fields(expanded.json()) == []

    # What the gateway's mapping reads of the event's quote and the lines it read.
    reads = Reads()
    lines = await stripe_sandbox.reader(state).quote_line_items("qt_1Oracle")
    quote = with_line_items(
        stripe_sandbox.quote_event(state, "qt_1Oracle")["data"]["object"], lines
    )
    mapped = quote_from_stripe(track(quote, reads, "", ""))
    assert [line.sku for line in mapped.lines] == ["PLAT-CORE", "SUPPORT-PREMIUM", "ONBOARD-STD"]
    assert {kind for kind, _ in reads.fields} == {"quote", "list", "item", "price"}
    assert (
        sorted(
            f"{kind}: {path}"
            for kind, path in reads.fields
            if not field_known(resource_class(kind), path)
        )
        == []
    )


# --- Stripe-Signature, both ways -----------------------------------------------------------


async def test_the_emulator_signs_a_delivery_the_library_accepts(
    state: SandboxState, http: httpx.AsyncClient
) -> None:
    secret = "whsec_oracle_0123456789"
    stripe_sandbox.accepted_quote(state, "qt_1SignedByEmulator")
    delivery = (
        await http.post(
            "/_sandbox/stripe/quotes/qt_1SignedByEmulator/events", json={"secret": secret}
        )
    ).json()
    payload, header = delivery["payload"], delivery["headers"]["Stripe-Signature"]

    event = construct_event(payload, header, secret)
    assert event.type == "quote.accepted"
    assert isinstance(event.data.object, stripe.Quote)
    assert verify_header(payload, header, secret, tolerance=300)
    with pytest.raises(stripe.SignatureVerificationError):
        construct_event(payload, header, "whsec_another")
    with pytest.raises(stripe.SignatureVerificationError):
        construct_event(payload + " ", header, secret)
    # revsync's own signer (what the tests and the CPQ scheme use) signs the same way.
    ours = stripe_webhooks.sign(secret, payload.encode(), 1_800_000_000)
    assert verify_header(payload, ours, secret, tolerance=None)
    assert sign_event(secret, payload.encode(), 1_800_000_000) == ours


def library_header(secret: str, payload: str, timestamp: int, *more: str) -> str:
    """A ``Stripe-Signature`` computed with the library's own signature function over
    ``"<t>.<payload>"`` (stripe-python has no header builder), with other schemes after."""
    signature = compute_signature(f"{timestamp}.{payload}", secret)
    return ",".join([f"t={timestamp}", f"v1={signature}", *more])


async def test_the_gateway_accepts_a_delivery_signed_the_library_way(
    state: SandboxState,
) -> None:
    settings = Settings(**secret_settings())
    secret = settings.stripe_webhook_secret.get_secret_value()  # type: ignore[union-attr]
    client = RecordingClient()
    stripe_sandbox.accepted_quote(state, "qt_1SignedByLibrary")
    payload = json.dumps(stripe_sandbox.quote_event(state, "qt_1SignedByLibrary"))
    now = int(time.time())
    rolling = library_header("whsec_retired", payload, now).split(",")[1]  # another v1
    app = create_gateway(settings, client)  # type: ignore[arg-type]
    app.state.client = client
    app.state.stripe_quotes = stripe_sandbox.reader(state)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as gateway:

        async def deliver(header: str) -> httpx.Response:
            return await gateway.post(
                "/v1/webhooks/stripe",
                content=payload.encode(),
                headers={"content-type": "application/json", "Stripe-Signature": header},
            )

        stale = library_header(secret, payload, now - 301)
        refused_stale = await deliver(stale)
        with pytest.raises(stripe.SignatureVerificationError):
            verify_header(payload, stale, secret, tolerance=300)
        refused_other = await deliver(library_header("whsec_other", payload, now))
        accepted = await deliver(library_header(secret, payload, now, rolling, "v0=ignored"))

    assert (refused_stale.status_code, refused_other.status_code) == (401, 401)
    assert accepted.status_code == 202, accepted.text
    assert list(client.started) == ["q2c-qt_1SignedByLibrary"]
    assert client.started["q2c-qt_1SignedByLibrary"]["arg"].quote.total == Decimal("3899.00")


# --- the oracle can fail ---------------------------------------------------------------------


def test_the_oracle_refuses_what_the_library_does_not_have() -> None:
    """The checks are not vacuous: a misspelt parameter, a bad enum, a non-integer, an
    encoding the library would not make, and a field the resource lacks are all caught."""
    create = stripe.Subscription.CreateParams
    good = nest([("customer", "cus_1"), ("items[0][price]", "price_1")])
    assert param_problems(good, create, "", create) == []
    assert param_problems(
        nest([("customer", "cus_1"), ("colection_method", "x")]), create, "", create
    )
    assert param_problems(
        nest([("customer", "cus_1"), ("collection_method", "send_invoices")]), create, "", create
    )
    assert param_problems(
        nest([("customer", "cus_1"), ("days_until_due", "30d")]), create, "", create
    )
    assert param_problems(nest([("items[0][price]", "price_1")]), create, "", create)  # customer
    assert library_encoding(nest([("expand[]", "customer")])) == [("expand[0]", "customer")]
    assert not field_known(stripe.Invoice, "effective_date")
    assert field_known(stripe.Invoice, "effective_at")
    assert field_known(stripe.Customer, "metadata.anything")
    assert field_known(stripe.InvoiceLineItem, "discount_amounts[].amount")
    assert not field_known(stripe.InvoiceLineItem, "discount_amounts[].amout")
    assert unknown_fields({"object": "invoice", "id": "in_1", "effective_date": 1}) == [
        "invoice: effective_date"
    ]
