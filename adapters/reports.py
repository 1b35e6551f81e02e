"""Where reconciliation's reports and marks live, out of workflow state.

:class:`ReportStore` is the port: the marks (how far each entity has been compared, read at a
run's start and written after every window), each run's report (counts, first items, status:
rewritten after every window, so a running run shows progress) and its rows (every drift
item, one file per window chunk). The workers' ``orchestration`` queue writes it; the
gateway's ops API and ``revsync reconcile --report`` read it.

:class:`LocalReportStore`, the only implementation, keeps it in a folder (by default
``$REVSYNC_DATA_DIR/reconciliation``)::

    marks.json
    runs/<run>/report.json
    runs/<run>/rows/<entity>-<window>-<chunk>.jsonl

Each file is written whole to a temporary name and renamed over the old one, so a reader
never sees half a file and a repeated write (a retried activity) replaces what it wrote. The
orchestration worker and the gateway must see the same folder (one host, or a shared
volume). An object store (S3 and the like) would implement the same five methods with a
key per file and a ``PUT`` per write (docs/reconciliation.md, "The report store").
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ValidationError

from domain.reconciliation import DriftItem, ReconciliationReport
from domain.reconciliation_windows import Marks

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class StoredRun(BaseModel):
    """One run as the store lists it."""

    run_id: str
    status: str
    mode: str | None = None
    started_at: str
    finished_at: str | None = None
    drift: int
    rows: int


class ReportStore(Protocol):
    async def load_marks(self) -> Marks: ...

    async def save_marks(self, marks: Marks) -> None: ...

    async def write_report(self, run_id: str, report: ReconciliationReport) -> None: ...

    async def write_rows(self, run_id: str, part: str, items: Sequence[DriftItem]) -> None: ...

    async def runs(self, limit: int = 20) -> list[StoredRun]:
        """The newest ``limit`` runs, newest first."""
        ...

    async def report(self, run_id: str) -> ReconciliationReport | None: ...

    def rows(self, run_id: str) -> Iterator[DriftItem]:
        """Every row of the run, window by window (read lazily: a run can hold many)."""
        ...


def _safe(name: str) -> str:
    return _UNSAFE.sub("_", name)[:200] or "_"


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class LocalReportStore:
    """The report store in a local folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / _safe(run_id)

    async def load_marks(self) -> Marks:
        path = self.root / "marks.json"
        try:
            text = await asyncio.to_thread(path.read_text)
        except FileNotFoundError:
            return Marks()
        return Marks.model_validate_json(text)

    async def save_marks(self, marks: Marks) -> None:
        data = marks.model_dump_json(indent=2).encode()
        await asyncio.to_thread(_write_atomically, self.root / "marks.json", data)

    async def write_report(self, run_id: str, report: ReconciliationReport) -> None:
        data = report.model_dump_json(indent=2).encode()
        await asyncio.to_thread(_write_atomically, self._run_dir(run_id) / "report.json", data)

    async def write_rows(self, run_id: str, part: str, items: Sequence[DriftItem]) -> None:
        data = b"".join(i.model_dump_json(exclude={"repair"}).encode() + b"\n" for i in items)
        path = self._run_dir(run_id) / "rows" / f"{_safe(part)}.jsonl"
        await asyncio.to_thread(_write_atomically, path, data)

    def _read_report(self, folder: Path) -> ReconciliationReport | None:
        try:
            return ReconciliationReport.model_validate_json((folder / "report.json").read_text())
        except (FileNotFoundError, ValidationError):
            return None

    async def runs(self, limit: int = 20) -> list[StoredRun]:
        def scan() -> list[StoredRun]:
            found: list[StoredRun] = []
            base = self.root / "runs"
            if not base.is_dir():
                return found
            for folder in base.iterdir():
                report = self._read_report(folder)
                if report is None:
                    continue
                found.append(
                    StoredRun(
                        run_id=report.run_id or folder.name,
                        status=report.status.value,
                        mode=report.mode,
                        started_at=report.started_at.isoformat(),
                        finished_at=report.finished_at.isoformat() if report.finished_at else None,
                        drift=report.total,
                        rows=report.rows,
                    )
                )
            found.sort(key=lambda r: r.started_at, reverse=True)
            return found[:limit]

        return await asyncio.to_thread(scan)

    async def report(self, run_id: str) -> ReconciliationReport | None:
        return await asyncio.to_thread(self._read_report, self._run_dir(run_id))

    def rows(self, run_id: str) -> Iterator[DriftItem]:
        folder = self._run_dir(run_id) / "rows"
        if not folder.is_dir():
            return
        for path in sorted(folder.glob("*.jsonl")):
            with path.open() as lines:
                for line in lines:
                    if line.strip():
                        yield DriftItem.model_validate_json(line)


def report_store(data_dir: Path) -> LocalReportStore:
    """The store of the settings' ``data_dir`` (``REVSYNC_DATA_DIR``)."""
    return LocalReportStore(data_dir / "reconciliation")


CSV_COLUMNS = (
    "kind",
    "subject",
    "quote_id",
    "customer_id",
    "invoice_id",
    "system",
    "record_ids",
    "remediation",
    "outcome",
    "workflow_id",
    "detail",
    "outcome_detail",
)


def csv_lines(items: Iterator[DriftItem]) -> Iterator[str]:
    """The rows as CSV (RFC 4180: quoted where needed, CRLF line ends), header first."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    yield buffer.getvalue()
    for item in items:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(
            [
                item.kind.value,
                item.subject,
                item.quote_id or "",
                item.customer_id or "",
                item.invoice_id or "",
                item.system.value,
                " ".join(item.record_ids),
                item.remediation.value,
                item.outcome.value if item.outcome else "",
                item.workflow_id,
                item.detail,
                item.outcome_detail or "",
            ]
        )
        yield buffer.getvalue()


__all__ = [
    "CSV_COLUMNS",
    "LocalReportStore",
    "ReportStore",
    "StoredRun",
    "csv_lines",
    "report_store",
]
