"""What finance ops see: the Temporal Web UI, in headless Chromium, lists a parked order under
the saved-view query ``OrderStage="NEEDS_ATTENTION"`` and leaves booked ones out, shows
encrypted payloads in clear through the gateway's codec server, and renders a parked order's
summary and details (User Metadata) with vendor text as it is and the quote's lines legible.

Needs Debian's ``chromium`` (`.ci/run` installs it; locally: ``apt-get install chromium``).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from urllib.parse import quote as urlquote

import pytest

from domain.stages import OrderStage
from sandbox.faults import FaultRule
from tests.e2e.browser import Chromium
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


# The Web UI renders each of summary, details and current details as Markdown in an iframe.
_METADATA = """[...document.querySelectorAll('iframe[id^="user-metadata-"]')]
  .map(f => [f.id, f.contentDocument && f.contentDocument.body
                   ? f.contentDocument.body.innerHTML : ''])"""
_OPEN_TAB = """(() => {
  const tab = [...document.querySelectorAll('a,button,[role=tab]')]
    .find(e => e.textContent.trim() === 'User Metadata');
  if (tab) { tab.click(); }
  return !!tab;
})()"""


def user_metadata(url: str, wanted: str) -> dict[str, str]:
    """The rendered HTML of a workflow's summary, details and current details, read once
    the current details contain ``wanted``."""
    assert CHROMIUM is not None
    with Chromium(CHROMIUM) as browser:
        browser.open(url)
        browser.wait_for(_OPEN_TAB)
        rendered = browser.wait_for(
            f"(() => {{ const m = {_METADATA}; "
            f"return m.some(([id, html]) => id.endsWith('current-details') "
            f"&& html.includes({wanted!r})) ? m : null; }})()",
            seconds=60,
        )
    return {ident.removeprefix("user-metadata-"): html for ident, html in rendered}


async def test_a_parked_orders_page_renders_vendor_text_literally_and_lists_the_lines(
    stack: Stack,
):
    parked = await new_quote(stack, "0015e00000ThamGB1")
    reason = "invalid cross reference id: SBQQ__Quote__c = a0x5e0AyQxAtbBnAKJ"
    inject(
        stack,
        FaultRule(
            vendor="salesforce",
            operation="update",
            status=400,
            code="INVALID_CROSS_REFERENCE_KEY",
            message=reason,
        ),
    )
    assert (await deliver(stack, parked)).status_code == 202
    await stage_of(stack, parked["quote_id"], OrderStage.NEEDS_ATTENTION)

    url = f"{stack.ui_url}/namespaces/default/workflows/q2c-{parked['quote_id']}"
    html = await asyncio.to_thread(user_metadata, url, "SBQQ")

    assert reason in html["current-details"]  # not SBQQ<strong>Quote</strong>c
    assert "<strong>Reason:</strong>" in html["current-details"]
    assert "<em>" not in html["current-details"]
    lines = re.findall(r"<li>(.*?)</li>", html["details"])
    assert [line.split(":")[0] for line in lines] == [line["line_id"] for line in parked["lines"]]
    assert all(" at " in line and " = " in line for line in lines)
    assert parked["quote_id"] in html["summary"]
