"""The bounded contract fuzz of ``make test`` (``make fuzz`` runs the long one): a fixed
seed, a few hundred Schemathesis cases against the live gateway on real Temporal
(tests/fuzz/harness.py); and the harness's own checks."""

from __future__ import annotations

import asyncio

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


@pytest.mark.parametrize("prefix", ["/v1/webhooks", "/webhooks"])
def test_signed_variants_verify_and_wrong_ones_do_not(prefix: str) -> None:
    """The harness's signatures are the ones the gateway's verifiers accept, so the fuzz
    reaches the paths behind them; the wrong-secret variant is refused by the same check."""
    import random

    body = b'{"id": 1}'
    rng = random.Random(1)
    url = f"http://gw{prefix}/hubspot"
    for variant, accepted in (("signed", True), ("wrong-secret", False), ("unsigned", False)):
        checks = {
            "cpq": lambda h: cpq.verify([SECRETS.cpq], h.get(cpq.SIGNATURE_HEADER), body),
            "erp": lambda h: cpq.verify([SECRETS.erp], h.get(cpq.SIGNATURE_HEADER), body),
            "stripe": lambda h: stripe.verify(
                [SECRETS.stripe], h.get(stripe.SIGNATURE_HEADER), body
            ),
            "zuora/invoices": lambda h: zuora_invoices.verify(
                [SECRETS.zuora], h.get(zuora_invoices.SECRET_HEADER)
            ),
            "hubspot": lambda h: hubspot.verify(
                [SECRETS.hubspot],
                method="POST",
                url=url,
                body=body,
                signature=h.get(hubspot.SIGNATURE_HEADER),
                timestamp=h.get(hubspot.TIMESTAMP_HEADER),
            ),
        }
        for source, check in checks.items():
            path = f"{prefix}/{source}" if source != "cpq" else f"{prefix}/cpq/quote-accepted"
            path = f"{prefix}/erp/customer-changed" if source == "erp" else path
            headers, sent = authenticate(url, path, body, variant, SECRETS, rng)
            assert sent == body
            if accepted:
                check(headers)
            else:
                with pytest.raises(SignatureError):
                    check(headers)
