"""Reconciliation reports through the ops API: listed newest first, one read whole
(``latest`` is the newest), its rows downloaded as CSV or JSON lines; a staff token is
needed; an unknown run is 404."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from adapters.reports import CSV_COLUMNS, LocalReportStore
from domain.reconciliation import (
    DriftItem,
    DriftKind,
    ReconciliationReport,
    Remediation,
    ReportStatus,
    System,
)
from revsync.gateway.app import create_app
from revsync.settings import Settings
from tests.staff import secret_settings, token_of


def item(n: int) -> DriftItem:
    return DriftItem(
        kind=DriftKind.AMOUNT_MISMATCH,
        quote_id=f"Q{n}",
        workflow_id=f"q2c-Q{n}",
        system=System.CRM,
        record_ids=[f"so-{n}", f"801-{n}"],
        detail=f'ERP order so-{n} is 500 USD, CRM order says "600, USD"',
        remediation=Remediation.REVIEW,
    )


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, LocalReportStore]]:
    settings = Settings(**secret_settings(), reconcile_report_dir=tmp_path)
    store = LocalReportStore(tmp_path)
    for name, day, rows in (("run-old", 1, 1), ("run-new", 2, 3)):
        report = ReconciliationReport(
            started_at=datetime(2026, 3, day, tzinfo=UTC),
            status=ReportStatus.DONE,
            run_id=name,
            mode="incremental",
        )
        report.record([item(n) for n in range(rows)], max_items_per_kind=2)
        report.rows = rows
        await store.write_report(name, report)
        await store.write_rows(name, "orders-w1-0000", [item(n) for n in range(rows)])
    app = create_app(settings, client=object())  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        yield http, store


def auth(name: str = "Oscar") -> dict[str, str]:
    return {"Authorization": f"Bearer {token_of(name)}"}


async def test_runs_are_listed_newest_first_and_read_whole(gateway):
    http, _ = gateway
    assert (await http.get("/v1/ops/reconciliation/runs")).status_code == 401
    listed = await http.get("/v1/ops/reconciliation/runs", headers=auth("Rita"))
    assert listed.status_code == 200
    assert [r["run_id"] for r in listed.json()] == ["run-new", "run-old"]
    assert listed.json()[0]["drift"] == 3 and listed.json()[0]["rows"] == 3
    latest = await http.get("/v1/ops/reconciliation/runs/latest", headers=auth())
    assert latest.status_code == 200
    body = latest.json()
    assert body["run_id"] == "run-new"
    assert body["counts"] == {"amount_mismatch": 3} and body["omitted"] == 1
    assert len(body["items"]) == 2
    missing = await http.get("/v1/ops/reconciliation/runs/nope", headers=auth())
    assert missing.status_code == 404


async def test_every_row_downloads_as_csv_or_json_lines(gateway):
    http, _ = gateway
    answer = await http.get("/v1/ops/reconciliation/runs/run-new/rows", headers=auth())
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert 'filename="run-new.csv"' in answer.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert [r["subject"] for r in rows] == ["Q0", "Q1", "Q2"]
    assert rows[1]["detail"] == 'ERP order so-1 is 500 USD, CRM order says "600, USD"'
    lines = await http.get(
        "/v1/ops/reconciliation/runs/latest/rows", params={"format": "jsonl"}, headers=auth()
    )
    assert lines.headers["content-type"].startswith("application/x-ndjson")
    parsed = [json.loads(line) for line in lines.text.splitlines()]
    assert [p["quote_id"] for p in parsed] == ["Q0", "Q1", "Q2"]
    assert "repair" not in parsed[0]
    gone = await http.get("/v1/ops/reconciliation/runs/nope/rows", headers=auth())
    assert gone.status_code == 404
