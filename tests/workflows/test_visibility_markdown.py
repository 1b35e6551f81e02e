"""What the Web UI renders as Markdown (summaries and details) shows vendor text as it is.

The Web UI renders a workflow's summary and details as Markdown: a reason naming
``SBQQ__Quote__c`` showed as SBQQ**Quote**c, and the quote's lines, laid out as a table the UI
does not render, ran together. These tests render with a CommonMark parser (markdown-it-py);
tests/e2e/test_web_ui.py checks the same page in Chromium."""

from __future__ import annotations

import re
import uuid
from html import unescape

import pytest
from markdown_it import MarkdownIt
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.testing import WorkflowEnvironment

from domain.contracts import Activity
from domain.quote import Quote
from domain.saga import QuoteToCashInput, SagaPolicy
from domain.stages import OrderStage
from sandbox.quotes import quote_payload
from tests.workflows.fakes import FakeSystems, rejected, running_workers
from tests.workflows.test_parking_and_approvals import reach
from workflows.quote_to_cash import QuoteToCashWorkflow
from workflows.visibility import md, static_details, static_summary, workflow_id_for_quote

RENDER = MarkdownIt("commonmark").enable("table").enable("strikethrough")


def text_of(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", "", html)).strip()


@pytest.mark.parametrize(
    "vendor_text",
    [
        "invalid cross reference id: SBQQ__Quote__c = a0x5e0AyQxAtbBnAKJ",
        "field *Amount* must be > 0 | see [docs](http://x) `now`",
        "<script>alert(1)</script> & ~~gone~~ #1",
        "line one\n# not a heading\n- not a list",
        "C:\\path\\to\\file_name",
    ],
)
def test_vendor_text_renders_as_itself_with_no_markup(vendor_text: str):
    html = RENDER.render(f"**Reason:** {md(vendor_text)}")

    assert html.count("<strong>") == 1  # ours, and only ours
    for tag in ("<em>", "<code>", "<a ", "<s>", "<del>", "<script", "<h1", "<li", "<table"):
        assert tag not in html
    assert text_of(html) == "Reason: " + " ".join(vendor_text.splitlines())


def test_the_quote_details_list_every_line_legibly():
    quote = Quote.model_validate({**quote_payload("a0x5e0AyQxAtbBnAKJ"), "owner": "Ana_Lopez"})

    html = RENDER.render(static_details(quote))

    items = [text_of(item) for item in re.findall(r"<li>(.*?)</li>", html, re.S)]
    assert len(items) == len(quote.lines)
    for item, line in zip(items, quote.lines, strict=True):
        assert item.startswith(f"{line.line_id}: {line.sku}, {line.quantity} at {line.unit_price}")
        assert item.endswith(f"= {line.net_amount(quote.currency)}")
    assert "<table" not in html
    assert "Ana_Lopez" in text_of(html)
    assert "<em>" not in html


def test_the_summary_keeps_vendor_ids_literal():
    quote = Quote.model_validate({**quote_payload("qt_1Q2c__x"), "account_id": "cus__9Z"})
    assert text_of(RENDER.render(static_summary(quote))).startswith("Quote qt_1Q2c__x · ")
    assert "cus__9Z" in text_of(RENDER.render(static_summary(quote)))


async def test_a_parked_orders_details_show_the_vendor_reason_literally(
    time_skipping_env: WorkflowEnvironment,
):
    reason = "invalid cross reference id: SBQQ__Quote__c = a0x5e0AyQxAtbBnAKJ"
    fakes = FakeSystems()
    fakes.fail_with(Activity.CRM_RECORD_ORDER, rejected(reason))
    quote = Quote.model_validate(quote_payload(f"Q-{uuid.uuid4().hex[:12]}"))
    async with running_workers(time_skipping_env.client, fakes):
        handle = await time_skipping_env.client.start_workflow(
            QuoteToCashWorkflow.run,
            QuoteToCashInput(quote=quote, policy=SagaPolicy()),
            id=workflow_id_for_quote(quote.quote_id),
            task_queue="orchestration",
        )
        await reach(handle, OrderStage.NEEDS_ATTENTION)
        metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
        await handle.terminate("test over")

    html = RENDER.render(metadata.current_details)
    assert reason in text_of(html)
    assert "<em>" not in html
    assert (
        html.count("<strong>")
        == html.count("</strong>")
        == metadata.current_details.count("**") // 2
    )
