"""The bounded contract fuzz of ``make test`` (``make fuzz`` runs the long one): a fixed
seed, a few hundred Schemathesis cases against the live gateway on real Temporal
(tests/fuzz/harness.py); and the harness's own checks."""

from __future__ import annotations

import asyncio
import random

import pytest

from adapters.webhooks import cpq, hubspot, stripe, zuora_invoices
from adapters.webhooks.signatures import SignatureError
from tests.fuzz.harness import Secrets, authenticate, effect_failures, fuzz, fuzz_target

CASES = 300
SEED = 17
SECRETS = Secrets(cpq="c" * 8, erp="e" * 8, stripe="s" * 8, hubspot="h" * 8, zuora="z" * 8)


@pytest.mark.e2e
async def test_the_gateway_keeps_its_contract_under_fuzzing() -> None:
    async with fuzz_target() as target:
        tally = await asyncio.to_thread(
            fuzz, target.url, target.secrets, target.recorder, cases=CASES, run_seed=SEED
        )
    assert not tally.failures, tally.summary()
    assert tally.cases == CASES, tally.summary()
    # Authentic requests got past the signature and token checks, not only the refusals.
    assert tally.variants["signed:2xx"] > 0, tally.summary()
    assert tally.variants["staff:2xx"] > 0, tally.summary()
    assert len(tally.operations) >= 30, tally.summary()


def test_a_refusal_that_started_a_workflow_is_a_failure() -> None:
    assert effect_failures(401, {"error": "x"}, [("start", "q2c-1")])
    assert effect_failures(422, None, [("signal", "i2r-1")])
    assert not effect_failures(401, {"error": "x"}, [])


def test_a_started_answer_must_name_the_one_workflow_started() -> None:
    started = {"status": "started", "workflow_id": "q2c-1"}
    assert not effect_failures(202, started, [("start", "q2c-1")])
    assert effect_failures(202, started, [])
    assert effect_failures(202, started, [("start", "q2c-2")])
    assert effect_failures(202, started, [("start", "q2c-1"), ("start", "q2c-1")])
    assert effect_failures(200, {"status": "duplicate"}, [("start", "q2c-1")])
    # Zuora's started callout is a 200; a shadow replay a 202 {"workflow_id"} without status.
    assert not effect_failures(200, started, [("start", "q2c-1")])
    assert not effect_failures(202, {"workflow_id": "shadow-1"}, [("start", "shadow-1")])
    assert effect_failures(202, {"workflow_id": "shadow-1"}, [])


def test_a_start_the_answer_does_not_name_is_a_failure() -> None:
    batch = {"status": "started", "events": 2, "deals": [{"deal_id": "7", "workflow_id": "q2c-7"}]}
    assert not effect_failures(202, batch, [("start", "q2c-7")])
    received = {"status": "received", "events": 1, "deals": [{"workflow_id": "q2c-7"}]}
    assert not effect_failures(200, received, [("start", "q2c-7")])
    assert effect_failures(200, {"status": "received", "events": 1}, [("start", "q2c-8")])
    assert effect_failures(200, {"status": "ignored"}, [("start", "q2c-8")])


SOURCES = {
    "cpq": "/cpq/quote-accepted",
    "erp": "/erp/customer-changed",
    "stripe": "/stripe",
    "zuora": "/zuora/invoices",
    "hubspot": "/hubspot",
}


def verify(source: str, headers: dict[str, str], url: str, body: bytes) -> None:
    """The gateway's own check of ``source``; raises SignatureError."""
    if source in ("cpq", "erp"):
        secret = SECRETS.cpq if source == "cpq" else SECRETS.erp
        cpq.verify([secret], headers.get(cpq.SIGNATURE_HEADER), body)
    elif source == "stripe":
        stripe.verify([SECRETS.stripe], headers.get(stripe.SIGNATURE_HEADER), body)
    elif source == "zuora":
        zuora_invoices.verify([SECRETS.zuora], headers.get(zuora_invoices.SECRET_HEADER))
    else:
        hubspot.verify(
            [SECRETS.hubspot],
            method="POST",
            url=url,
            body=body,
            signature=headers.get(hubspot.SIGNATURE_HEADER),
            timestamp=headers.get(hubspot.TIMESTAMP_HEADER),
        )


@pytest.mark.parametrize("prefix", ["/v1/webhooks", "/webhooks"])
@pytest.mark.parametrize("source", sorted(SOURCES))
def test_signed_variants_verify_and_wrong_ones_do_not(prefix: str, source: str) -> None:
    """The harness's signatures are the ones the gateway's verifiers accept, so the fuzz
    reaches the paths behind them; the wrong-secret and unsigned variants are refused."""
    body = b'{"id": 1}'
    path = prefix + SOURCES[source]
    url = f"http://gw{path}"
    for variant in ("signed", "wrong-secret", "unsigned"):
        headers, sent = authenticate(url, path, body, variant, SECRETS, random.Random(1))
        assert sent == body
        if variant == "signed":
            verify(source, headers, url, body)
        else:
            with pytest.raises(SignatureError):
                verify(source, headers, url, body)
