"""Docs that cannot go stale silently: every relative link (and heading anchor) in README.md
and docs/*.md resolves, and the finance-ops runbook follows the code and a real Temporal
server: its saved-view queries are accepted by the dev server's visibility and find what the
runbook says they find, its stage table covers every stage, and its parked-step table names
every step that can park with exactly the decisions the saga allows there."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from domain.customer_master import MasterState
from domain.invoice_contracts import InvoiceStage, InvoiceStep
from domain.saga import ResolveAction, Step, allowed_resolutions
from domain.stages import OrderStage
from tests.conftest import installed_binary
from workflows import visibility

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUNBOOK = ROOT / "docs" / "runbook-finance-ops.md"
WORKFLOW_SOURCE = ROOT / "workflows" / "quote_to_cash.py"

FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def prose(text: str) -> str:
    """``text`` without code blocks, and with each inline code span reduced to a word, so that
    only real links remain and ``[`x`](y)`` still reads as a link."""
    return INLINE_CODE.sub("code", FENCE.sub("", text))


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    for heading in HEADING.findall(FENCE.sub("", page.read_text())):
        base = slug(heading)
        name, n = base, 0
        while name in found:  # GitHub numbers repeated headings
            n += 1
            name = f"{base}-{n}"
        found.add(name)
    return found


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def broken_links(page: Path) -> list[str]:
    problems: list[str] = []
    for target in LINK.findall(prose(page.read_text())):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            problems.append(f"{target}: no file {shown(resolved)}")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            problems.append(f"{target}: no heading #{anchor} in {shown(resolved)}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    assert broken_links(page) == []


def test_the_link_check_catches_a_missing_file_and_a_missing_anchor(tmp_path: Path) -> None:
    (tmp_path / "there.md").write_text("# A heading, with `code`\n\n## Same\n\n## Same\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](there.md#a-heading-with-code) [ok](there.md#same-1) [ok](#local)\n"
        "[gone](missing.md) [bad anchor](there.md#nope) [web](https://example.com/x.md)\n"
        "`[not a link](in-code.md)`\n\n# Local\n"
    )
    assert [p.split(":")[0] for p in broken_links(page)] == ["missing.md", "there.md#nope"]


# --- the finance-ops runbook ----------------------------------------------------------------


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def table(header: tuple[str, ...]) -> list[list[str]]:
    """The rows of the runbook's table whose first header cells are ``header``."""
    lines = RUNBOOK.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|") and tuple(cells(line)[: len(header)]) == header:
            rows = []
            for row in lines[i + 2 :]:
                if not row.startswith("|"):
                    break
                rows.append(cells(row))
            return rows
    raise AssertionError(f"no table {' | '.join(header)} in {RUNBOOK.name}")


def unquote(cell: str) -> str:
    assert cell.startswith("`") and cell.endswith("`"), cell
    return cell[1:-1]


def views() -> dict[str, str]:
    """View name → query, from the runbook's table of saved views."""
    found = {row[0]: unquote(row[1]) for row in table(("view", "query"))}
    assert len(found) >= 10, "the saved-view table lost its rows"
    return found


def values(query: str, attribute: str) -> set[str]:
    """Every value ``query`` compares ``attribute`` with (``=``, ``!=`` or ``IN (...)``)."""
    single = re.findall(rf'\b{attribute}\s*!?=\s*"([^"]*)"', query)
    listed = re.findall(rf"\b{attribute}\s+IN\s*\(([^)]*)\)", query)
    return set(single) | {v for group in listed for v in re.findall(r'"([^"]*)"', group)}


def test_the_queries_use_only_real_stages_and_steps() -> None:
    stages = {s.value for s in OrderStage}
    steps = {s.value for s in Step} | {s.value for s in InvoiceStep}
    statuses = {"Running", "Completed", "Failed", "Canceled", "Terminated", "TimedOut"}
    for name, query in views().items():
        assert values(query, "OrderStage") <= stages, name
        assert values(query, "InvoiceStage") <= {s.value for s in InvoiceStage}, name
        assert values(query, "MasterState") <= {s.value for s in MasterState}, name
        assert values(query, "BlockedStep") <= steps, name
        assert values(query, "ExecutionStatus") <= statuses, name


def test_the_one_click_links_add_views_from_the_table() -> None:
    table_views = views()
    links = [u for u in LINK.findall(prose(RUNBOOK.read_text())) if "savedQuery=" in u]
    assert links, "the runbook lost its saved-view links"
    for url in links:
        params = parse_qs(urlsplit(url).query)
        (name,) = params["savedQuery"]
        (query,) = params["query"]
        assert table_views.get(name) == query, url


def test_the_stage_table_covers_every_stage() -> None:
    documented = [unquote(row[0]) for row in table(("stage", "in business terms", "usually lasts"))]
    assert sorted(documented) == sorted(s.value for s in OrderStage)


def test_the_invoice_stage_table_covers_every_invoice_stage() -> None:
    rows = table(("stage", "in business terms", "what to do"))
    documented = [v for row in rows for v in re.findall(r"`([A-Z_]+)`", row[0])]
    assert sorted(documented) == sorted(s.value for s in InvoiceStage)


def steps_that_can_park() -> set[Step]:
    """Every step the workflow runs through ``_step``/``_attempt``: each can park."""
    names = re.findall(r"self\._(?:step|attempt)\(\s*Step\.(\w+)", WORKFLOW_SOURCE.read_text())
    return {Step[name] for name in names}


def test_the_parked_table_names_every_step_with_its_allowed_decisions() -> None:
    documented = {
        Step(unquote(row[0])): [ResolveAction(a.strip()) for a in row[2].split(",")]
        for row in table(("`BlockedStep`", "what happened"))
    }
    assert set(documented) == steps_that_can_park()
    for step, decisions in documented.items():
        assert decisions == allowed_resolutions(step), step


# --- the queries against a real dev server --------------------------------------------------


@dataclass(frozen=True)
class Seeded:
    """Open executions carrying revsync's search attributes, one per situation."""

    ids: dict[str, str]

    def named(self, *keys: str) -> set[str]:
        return {self.ids[k] for k in keys}


SITUATIONS: dict[str, dict[str, Any]] = {
    "parked-billing": {"OrderStage": "NEEDS_ATTENTION", "BlockedStep": "provision_billing"},
    "parked-crm": {"OrderStage": "NEEDS_ATTENTION", "BlockedStep": "update_crm"},
    "escalated": {"OrderStage": "AWAITING_APPROVAL", "SlaBreached": True},
    "booking": {"OrderStage": "BOOKING_ERP"},
    "booked": {"OrderStage": "BOOKED"},
    "rejected": {"OrderStage": "REJECTED"},
    "invoice-overdue": {"InvoiceStage": "OVERDUE"},
    "invoice-closed-period": {"InvoiceStage": "NEEDS_ATTENTION", "BlockedStep": "post_journal"},
    "customer-review": {"MasterState": "NEEDS_REVIEW"},
}

KEYS = {key.name: key for key in visibility.ALL_KEYS}

# What the runbook says a view lists, among the seeded situations.
EXPECTED: dict[str, tuple[str, ...]] = {
    "Needs a person": ("parked-billing", "parked-crm", "escalated"),
    "Parked": ("parked-billing", "parked-crm"),
    "Parked at billing": ("parked-billing",),
    "Booked, CRM not updated": ("parked-crm",),
    "Awaiting approval": ("escalated",),
    "Escalated approvals": ("escalated",),
    "SLA breached": ("escalated",),
    "In flight": ("booking",),
    "Booked": ("booked",),
    "Not booked": ("rejected",),
    "Invoices overdue": ("invoice-overdue",),
    "Invoices parked": ("invoice-closed-period",),
    "Revenue held by a closed period": ("invoice-closed-period",),
    "Open invoices": ("invoice-overdue",),
    "Customers to review": ("customer-review",),
}


@pytest.fixture(scope="module")
async def server() -> AsyncIterator[Client]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=installed_binary("temporal"),
        search_attributes=list(visibility.ALL_KEYS),
        ui=False,
    )
    try:
        yield env.client
    finally:
        await env.shutdown()


@pytest.fixture(scope="module")
async def seeded(server: Client) -> Seeded:
    """Executions of the saga's workflow type that no worker will ever run, each started with
    the attributes of one situation (and a marker attribute to find them by)."""
    marker = f"docs-{uuid.uuid4().hex[:8]}"
    ids: dict[str, str] = {}
    for name, attrs in SITUATIONS.items():
        pairs: list[SearchAttributePair[Any]] = [
            SearchAttributePair(visibility.QUOTE_ID, f"{marker}-{name}"),
            SearchAttributePair(visibility.CUSTOMER_ID, marker),
            SearchAttributePair(visibility.STAGE_SINCE, datetime.now(UTC)),
        ]
        pairs += [SearchAttributePair(KEYS[key], value) for key, value in attrs.items()]
        handle = await server.start_workflow(
            "QuoteToCash",
            id=f"q2c-{marker}-{name}",
            task_queue=f"{marker}-nobody-polls",
            search_attributes=TypedSearchAttributes(pairs),
        )
        ids[name] = handle.id
    deadline = time.monotonic() + 30  # visibility is eventually consistent
    while (await server.count_workflows(f'CustomerId="{marker}"')).count < len(ids):
        assert time.monotonic() < deadline, "seeded executions never became visible"
        await asyncio.sleep(0.2)
    return Seeded(ids)


async def matching(client: Client, query: str, among: Seeded) -> set[str]:
    ours = set(among.ids.values())
    return {e.id async for e in client.list_workflows(query) if e.id in ours}


async def test_every_runbook_query_is_accepted_by_the_server(server: Client) -> None:
    refused: dict[str, str] = {}
    for name, query in views().items():
        try:
            await server.count_workflows(query)
        except RPCError as error:  # an unknown attribute, a wrong type, bad syntax
            refused[name] = error.message
    assert refused == {}


async def test_the_views_find_what_the_runbook_says(server: Client, seeded: Seeded) -> None:
    table_views = views()
    assert set(EXPECTED) <= set(table_views), "a view the runbook promised is gone"
    for name, situations in EXPECTED.items():
        assert await matching(server, table_views[name], seeded) == seeded.named(*situations), name


async def test_the_server_refuses_a_query_the_check_would_pass_wrongly(server: Client) -> None:
    """The acceptance test above can fail: an attribute revsync does not register is refused."""
    with pytest.raises(RPCError):
        await server.count_workflows('OrderStatus="NEEDS_ATTENTION"')
