"""Contract fuzzing of the live gateway with Schemathesis (issue 17).

Schemathesis generates requests, valid and invalid, for every operation of the gateway's
committed OpenAPI document (``schemas/openapi/gateway.v1.json``); this harness sends each one
to a gateway served over HTTP on a real Temporal dev server (:mod:`tests.e2e.stack`), after
authenticating it one of three ways:

- webhooks: signed with the stack's secret for their source (CPQ and ERP ``X-Revsync-Signature``,
  ``Stripe-Signature``, ``X-HubSpot-Signature-v3`` over the exact URL, Zuora's callout
  header), unsigned, or signed with a wrong secret;
- the ops API and the codec server: a staff token (any of the test staff, so each role is
  tried), no token, or an unknown one;
- everything else as generated.

Every answer is checked by Schemathesis (no 5xx; status code, content type, headers and body
as documented) and by the harness: the gateway's Temporal client records every workflow it
started, signalled or updated (:class:`EffectRecorder`), and a request answered 4xx must
have done none of that; one answered 202 ``started`` must have started exactly the workflow it
names. Failures are collected, not raised, so one run reports all of them with their counts.
"""

from __future__ import annotations

import json
import random
import secrets as secrets_module
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from temporalio import client as temporal

from adapters.webhooks import cpq, hubspot, salesforce, stripe, zuora_invoices
from revsync.gateway.app import create_app as create_gateway
from revsync.settings import Settings
from tests.e2e.stack import ThreadedServer, running_stack
from tests.staff import TOKENS

OPENAPI = Path(__file__).resolve().parents[2] / "schemas" / "openapi" / "gateway.v1.json"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# An organisation the stack's gateway allows (REVSYNC_SALESFORCE_ORG_IDS).
SALESFORCE_ORG = "00D5g000004FUZZEA4"
WEBHOOK_VARIANTS = ("signed", "signed", "unsigned", "wrong-secret")
OPS_VARIANTS = ("staff", "staff", "no-token", "unknown-token")
# Paths that take a staff bearer token: the ops API and the codec server.
STAFF_PATHS = ("/v1/ops/", "/codec/")


# -- what the gateway did in Temporal -------------------------------------------------------


class EffectRecorder(temporal.Interceptor):
    """A client interceptor that records each workflow start, signal and accepted update the
    gateway makes (``("start", workflow id)``...), only when Temporal accepted it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._effects: list[tuple[str, str]] = []

    def record(self, kind: str, workflow_id: str) -> None:
        with self._lock:
            self._effects.append((kind, workflow_id))

    def take(self) -> list[tuple[str, str]]:
        with self._lock:
            effects, self._effects = self._effects, []
        return effects

    def intercept_client(self, next: temporal.OutboundInterceptor) -> temporal.OutboundInterceptor:
        return _Recording(next, self)


class _Recording(temporal.OutboundInterceptor):
    def __init__(self, next: temporal.OutboundInterceptor, recorder: EffectRecorder) -> None:
        super().__init__(next)
        self.recorder = recorder

    async def start_workflow(self, input: temporal.StartWorkflowInput) -> Any:
        handle = await super().start_workflow(input)
        self.recorder.record("signal-with-start" if input.start_signal else "start", input.id)
        return handle

    async def signal_workflow(self, input: temporal.SignalWorkflowInput) -> None:
        await super().signal_workflow(input)
        self.recorder.record("signal", input.id)

    async def start_workflow_update(self, input: temporal.StartWorkflowUpdateInput) -> Any:
        handle = await super().start_workflow_update(input)
        self.recorder.record("update", input.id)
        return handle

    async def start_update_with_start_workflow(
        self, input: temporal.StartWorkflowUpdateWithStartInput
    ) -> Any:
        handle = await super().start_update_with_start_workflow(input)
        self.recorder.record("update-with-start", input.start_workflow_input.id)
        return handle


# -- authenticating a generated request -----------------------------------------------------


@dataclass(frozen=True)
class Secrets:
    """The stack's webhook secrets, as a sender holds them."""

    cpq: str
    erp: str
    stripe: str
    hubspot: str
    zuora: str

    @classmethod
    def of(cls, settings: Settings) -> Secrets:
        def value(name: str) -> str:
            secret = getattr(settings, name)
            assert secret is not None, f"the fuzz stack needs {name}"
            return str(secret.get_secret_value()).split(",")[0]

        return cls(
            cpq=value("cpq_webhook_secret"),
            erp=value("erp_webhook_secret"),
            stripe=value("stripe_webhook_secret"),
            hubspot=value("hubspot_client_secret"),
            zuora=value("zuora_callout_secret"),
        )


def webhook_source(path: str) -> str | None:
    """``cpq``, ``stripe``... for a webhook path (versioned or not), else None."""
    for prefix in ("/v1/webhooks/", "/webhooks/"):
        if path.startswith(prefix):
            return path.removeprefix(prefix).split("/")[0]
    return None


def authenticate(
    url: str, path: str, body: bytes, variant: str, secrets: Secrets, rng: random.Random
) -> tuple[dict[str, str], bytes]:
    """Headers (and, for Salesforce, the body) that authenticate a request to ``path`` as
    ``variant`` says: ``signed`` / ``staff`` authentic, the others not."""
    source = webhook_source(path)
    if source is None:
        if not path.startswith(STAFF_PATHS):
            return {}, body
        if variant == "staff":
            return {"Authorization": f"Bearer {rng.choice(sorted(TOKENS.values()))}"}, body
        if variant == "unknown-token":
            return {"Authorization": "Bearer rs_not-a-staff-token"}, body
        return {}, body
    if variant == "unsigned":
        return {}, body
    wrong = variant == "wrong-secret"
    now = int(time.time())
    if source in ("cpq", "erp"):
        secret = "not-the-secret" if wrong else getattr(secrets, source)
        return {cpq.SIGNATURE_HEADER: cpq.sign(secret, body, now)}, body
    if source == "stripe":
        secret = "not-the-secret" if wrong else secrets.stripe
        return {stripe.SIGNATURE_HEADER: stripe.sign(secret, body, now)}, body
    if source == "hubspot":
        secret = "not-the-secret" if wrong else secrets.hubspot
        signature = hubspot.sign(secret, method="POST", url=url, body=body, timestamp_ms=now * 1000)
        return {
            hubspot.SIGNATURE_HEADER: signature,
            hubspot.TIMESTAMP_HEADER: str(now * 1000),
        }, body
    if source == "zuora":
        return {zuora_invoices.SECRET_HEADER: "not-the-secret" if wrong else secrets.zuora}, body
    if source == "salesforce":
        # No signature: the organisation in the envelope is checked. A generated string is
        # no envelope at all; half the authentic variants send one from the allowed org.
        if rng.random() < 0.5:
            org = "00D5g000004WRONGEA4" if wrong else SALESFORCE_ORG
            return {}, salesforce.sample_outbound_message(org, [])
        return {}, body
    return {}, body


def body_bytes(kwargs: dict[str, Any]) -> bytes | None:
    """The body Schemathesis would send, as the exact bytes the harness signs and sends."""
    if "json" in kwargs:
        return json.dumps(kwargs["json"]).encode()
    data = kwargs.get("data")
    if data is None:
        return None
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode()
    return json.dumps(data).encode()


# -- the run ----------------------------------------------------------------------------------


@dataclass
class Tally:
    """What a run sent and what it found."""

    cases: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    variants: Counter[str] = field(default_factory=Counter)
    operations: Counter[str] = field(default_factory=Counter)
    effects: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def fail(self, kind: str, example: str) -> None:
        self.failures[kind] += 1
        self.examples.setdefault(kind, example)

    def summary(self) -> str:
        lines = [
            f"cases {self.cases}, operations {len(self.operations)}, "
            f"failures {sum(self.failures.values())}",
            "statuses: " + ", ".join(f"{s} {n}" for s, n in sorted(self.statuses.items())),
            "variants: " + ", ".join(f"{v} {n}" for v, n in sorted(self.variants.items())),
            "effects: " + ", ".join(f"{e} {n}" for e, n in sorted(self.effects.items())),
        ]
        for kind, count in self.failures.most_common():
            lines.append(f"FAIL {count} x {kind}\n    e.g. {self.examples[kind]}")
        return "\n".join(lines)


def announced(answer: Any) -> set[str]:
    """The workflow ids a 2xx answer names: its own ``workflow_id`` and those of the deals and
    customers of a HubSpot batch."""
    if not isinstance(answer, dict):
        return set()
    ids = {answer.get("workflow_id")}
    for part in ("deals", "customers"):
        for item in answer.get(part) or []:
            ids.add(item.get("workflow_id") if isinstance(item, dict) else None)
    return {i for i in ids if isinstance(i, str)}


def effect_failures(status: int, answer: Any, effects: list[tuple[str, str]]) -> list[str]:
    """What is wrong with the Temporal ``effects`` of a request answered ``status``: a
    refusal did something; a ``started`` answer did not start the one workflow it names (a
    202 naming a workflow without a status, e.g. a shadow replay, counts as started); a
    ``duplicate`` started something; a workflow was started that the answer does not name."""
    if 400 <= status < 500 and effects:
        return [f"{status} answer, yet {effects}"]
    if status >= 300:
        return []
    started = [wf for kind, wf in effects if kind == "start"]
    record = answer if isinstance(answer, dict) else {}
    says_started = record.get("status") == "started" or (
        status == 202 and "status" not in record and "workflow_id" in record
    )
    if says_started and "workflow_id" in record:
        wanted = record["workflow_id"]
        if started != [wanted]:
            return [f"{status} started {wanted}, but the gateway started {started}"]
    if record.get("status") == "duplicate" and started:
        return [f"duplicate answer, yet started {started}"]
    unnamed = [wf for wf in started if wf not in announced(answer)]
    if unnamed:
        return [f"{status} answer, started {unnamed} without naming it"]
    return []


def fuzz(
    gateway_url: str,
    secrets: Secrets,
    recorder: EffectRecorder,
    *,
    cases: int,
    run_seed: int,
    progress: Callable[[Tally], None] | None = None,
) -> Tally:
    """Send ``cases`` generated requests to the gateway at ``gateway_url``; the tally."""
    schema = schemathesis.openapi.from_path(OPENAPI)
    operations = []
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            raise AssertionError(f"the OpenAPI document has an invalid operation: {result}")
        operations.append(result.ok())
    strategies = {
        (operation.label, mode): operation.as_strategy(generation_mode=mode)
        for operation in operations
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    }
    labels = sorted({label for label, _ in strategies})
    tally = Tally()
    http = httpx.Client(timeout=30)

    @seed(run_seed)
    @settings(
        max_examples=cases,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def one(data: st.DataObject) -> None:
        label = data.draw(st.sampled_from(labels), label="operation")
        mode = data.draw(st.sampled_from(list(GenerationMode)), label="mode")
        case = data.draw(strategies[(label, mode)], label="case")
        rng = random.Random(data.draw(st.integers(0, 2**32), label="rng"))
        kwargs = case.as_transport_kwargs(base_url=gateway_url)
        url = str(httpx.URL(kwargs["url"]).copy_with(query=None))
        path = httpx.URL(url).path
        source = webhook_source(path)
        variants = (
            WEBHOOK_VARIANTS if source else OPS_VARIANTS if path.startswith(STAFF_PATHS) else ("",)
        )
        variant = rng.choice(variants)
        body = body_bytes(kwargs)
        auth, body = authenticate(url, path, body or b"", variant, secrets, rng)
        headers = {k: str(v) for k, v in kwargs.get("headers", {}).items()} | auth
        sends_body = kwargs.get("data") is not None or "json" in kwargs or bool(body)
        content = body if sends_body else None
        recorder.take()
        try:
            response = http.request(
                kwargs["method"],
                kwargs["url"],
                params=kwargs.get("params") or None,
                headers=headers,
                cookies=kwargs.get("cookies") or None,
                content=content,
            )
        except httpx.HTTPError as error:
            tally.fail(f"{label}: no answer ({type(error).__name__})", str(error))
            return
        effects = recorder.take()
        tally.cases += 1
        tally.statuses[response.status_code] += 1
        tally.variants[f"{variant or 'none'}:{response.status_code // 100}xx"] += 1
        tally.operations[label] += 1
        for kind, _ in effects:
            tally.effects[kind] += 1
        where = f"{kwargs['method']} {path} [{variant or mode.value}] -> {response.status_code}"
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except BaseExceptionGroup as group:
            for failure in group.exceptions:
                title = getattr(failure, "title", type(failure).__name__)
                kind = f"{label} {response.status_code}: {title}"
                tally.fail(kind, f"{where}: {response.text[:300]!r}")
        except AssertionError as error:
            kind = f"{label} {response.status_code}: {type(error).__name__}"
            tally.fail(kind, f"{where}: {response.text[:300]!r}")
        try:
            answer = response.json()
        except ValueError:
            answer = None
        for problem in effect_failures(response.status_code, answer, effects):
            tally.fail(f"{label} effect: {problem.split(',')[0]}", f"{where}: {problem}")
        if progress is not None and tally.cases % 500 == 0:
            progress(tally)

    try:
        one()
    finally:
        http.close()
    return tally


# -- the stack --------------------------------------------------------------------------------


@dataclass
class FuzzTarget:
    """A gateway on the stack whose Temporal calls are recorded."""

    url: str
    secrets: Secrets
    recorder: EffectRecorder


@asynccontextmanager
async def fuzz_target() -> AsyncIterator[FuzzTarget]:
    """The stack of :func:`tests.e2e.stack.running_stack` (real Temporal, every worker, the
    sandbox) with every webhook source configured, and a gateway of its own whose client
    records what it does in Temporal."""
    extra = {
        "zuora_callout_secret": SecretStr(secrets_module.token_hex(16)),
        "salesforce_org_ids": [SALESFORCE_ORG],
    }
    async with running_stack(settings_update=extra) as stack:
        recorder = EffectRecorder()
        config = stack.client.config()
        config["interceptors"] = [*config["interceptors"], recorder]
        client = temporal.Client(**config)
        server = ThreadedServer(create_gateway(stack.settings, client))
        server.start()
        try:
            yield FuzzTarget(server.url, Secrets.of(stack.settings), recorder)
        finally:
            server.stop()
