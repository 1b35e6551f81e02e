"""What finance ops see: the Temporal Web UI, in headless Chromium, lists a parked order under
the saved-view query ``OrderStage="NEEDS_ATTENTION"`` and leaves booked ones out, and shows
encrypted payloads in clear through the gateway's codec server.

Needs Debian's ``chromium`` (`.ci/run` installs it; locally: ``apt-get install chromium``).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from urllib.parse import quote as urlquote

import pytest

from domain.stages import OrderStage
from sandbox.faults import FaultRule
from tests.e2e.stack import Stack
from tests.e2e.test_failures_e2e import inject, stage_of
from tests.e2e.test_quote_to_cash_e2e import deliver, finished, new_quote

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)"
    ),
]


def rendered_dom(url: str) -> str:
    """The page's DOM after its scripts ran (the Web UI is a single-page app)."""
    assert CHROMIUM is not None
    result = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--virtual-time-budget=15000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


async def test_the_web_ui_lists_the_parked_order_under_needs_attention(stack: Stack):
    booked = await new_quote(stack, "0015e00000AcmeUS1")
    assert (await deliver(stack, booked)).status_code == 202
    assert (await finished(stack, booked["quote_id"])).stage is OrderStage.BOOKED

    parked = await new_quote(stack, "0015e00000ThamGB1")
    inject(
        stack,
        FaultRule(
            vendor="salesforce", operation="update", status=400, code="FIELD_INTEGRITY_EXCEPTION"
        ),
    )
    assert (await deliver(stack, parked)).status_code == 202
    await stage_of(stack, parked["quote_id"], OrderStage.NEEDS_ATTENTION)

    query = urlquote('OrderStage="NEEDS_ATTENTION"')
    url = f"{stack.ui_url}/namespaces/default/workflows?query={query}"
    deadline = time.monotonic() + 30  # visibility is eventually consistent
    while True:
        dom = await asyncio.to_thread(rendered_dom, url)
        if f"q2c-{parked['quote_id']}" in dom or time.monotonic() > deadline:
            break
    assert f"q2c-{parked['quote_id']}" in dom
    assert f"q2c-{booked['quote_id']}" not in dom


async def test_the_web_ui_shows_decrypted_payloads_through_the_codec_server(stack: Stack):
    """History holds ciphertext only; the UI, configured with the gateway's codec endpoint
    for a payload reader, shows the quote in the workflow's input in clear."""
    booked = await new_quote(stack, "0015e00000AcmeUS1")
    assert (await deliver(stack, booked)).status_code == 202
    assert (await finished(stack, booked["quote_id"])).stage is OrderStage.BOOKED
    workflow_id = f"q2c-{booked['quote_id']}"

    # Without the codec, the server has no plaintext of the owner (a person's name).
    raw = await stack.env.client.get_workflow_handle(workflow_id).fetch_history()
    assert booked["owner"] not in raw.to_json()

    url = f"{stack.ui_url}/namespaces/default/workflows/{workflow_id}"
    deadline = time.monotonic() + 30
    while True:
        dom = await asyncio.to_thread(rendered_dom, url)
        if booked["owner"] in dom or time.monotonic() > deadline:
            break
    assert booked["owner"] in dom  # from the decrypted workflow input
    assert '"quote_id"' in dom
