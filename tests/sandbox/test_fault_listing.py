"""`GET /_sandbox/faults`: what is still pending and what has fired, until a reset."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from sandbox.app import create_app

ACCOUNT = "/salesforce/services/data/v61.0/sobjects/Account/0015e00000AcmeUS1"
TOKEN = {"Authorization": "Bearer sandbox-salesforce-token"}


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        yield client


async def test_pending_rules_and_fired_faults_are_listed_until_a_reset(http: httpx.AsyncClient):
    rule = {"vendor": "salesforce", "operation": "get", "status": 503, "times": 2}
    assert (await http.post("/_sandbox/faults", json={"faults": [rule]})).status_code == 200
    assert (await http.get(ACCOUNT, headers=TOKEN)).status_code == 503

    listed = (await http.get("/_sandbox/faults")).json()
    assert [(r["operation"], r["times"]) for r in listed["pending"]] == [("get", 1)]
    assert listed["fired"] == [
        {"vendor": "salesforce", "operation": "get", "phase": "before", "status": 503}
    ]

    await http.post("/_sandbox/reset")
    assert (await http.get("/_sandbox/faults")).json() == {"pending": [], "fired": []}
    assert (await http.get(ACCOUNT, headers=TOKEN)).status_code == 200
