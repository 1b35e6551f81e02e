"""Where shadow mode keeps what it recorded: a small port and its SQLite implementation.

The gate of every worker process records into the store, the gateway reads reports from it,
and a replay or a switch to live marks what was made live since, so every process of one
deployment must reach the same store. The default is one SQLite file under
``REVSYNC_DATA_DIR`` (``shadow.sqlite3``; ``REVSYNC_SHADOW_STORE`` names another path): right
for ``make dev`` and for one host; several hosts need a shared volume or another
implementation of :class:`ShadowStore`.

The file is opened lazily, on the first shadow write or read of a report: a deployment with
every vendor live never creates it. SQLite runs in WAL mode with a busy timeout, so several
worker processes record at once. A write is recorded once per ``write_id`` (vendor, operation
and idempotency key): a retried step finds the first recording and gets the same result.

The store holds what revsync would have written, customer data included; keep it where the
Temporal server's own data is kept, and delete it after the cut-over (docs/shadow-mode.md).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Protocol, TypeVar

from domain.shadow import Json, RecordedWrite

T = TypeVar("T")

STORE_FILE = "shadow.sqlite3"


class ShadowStore(Protocol):
    """What the gate, the reports and the replay need from the store (all synchronous; the
    gate calls them off the event loop)."""

    def record(self, write: RecordedWrite) -> RecordedWrite:
        """Keep ``write`` unless one with its ``write_id`` is kept already; return the kept
        one (the first)."""
        ...

    def get(self, write_id: str) -> RecordedWrite | None: ...

    def by_target(self, vendor: str, operation: str, target_key: str) -> RecordedWrite | None:
        """The first write of ``operation`` to the target keyed ``target_key``."""
        ...

    def by_result(self, vendor: str, record_id: str) -> RecordedWrite | None:
        """The write whose result names ``record_id`` (the create that minted a synthetic
        id, or the first write that returned a real record)."""
        ...

    def writes(
        self,
        *,
        workflow_id: str | None = None,
        vendor: str | None = None,
        recorded_before: datetime | None = None,
    ) -> list[RecordedWrite]:
        """Recorded writes in the order they were recorded."""
        ...

    def mark_materialized(
        self, write_id: str, record_id: str | None, at: datetime
    ) -> RecordedWrite:
        """The write was made live (replayed, or carried over by a live saga)."""
        ...

    def state(self, vendor: str, record_id: str) -> Json | None:
        """The state a record is in after the shadow writes to it (a receivable's amount
        due after shadow payments), or None when no shadow write changed it."""
        ...

    def set_state(self, vendor: str, record_id: str, state: Json) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS writes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    write_id TEXT NOT NULL UNIQUE,
    vendor TEXT NOT NULL,
    operation TEXT NOT NULL,
    target_key TEXT,
    result_id TEXT,
    workflow_id TEXT,
    recorded_at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS writes_target ON writes (vendor, operation, target_key);
CREATE INDEX IF NOT EXISTS writes_result ON writes (vendor, result_id);
CREATE INDEX IF NOT EXISTS writes_saga ON writes (workflow_id);
CREATE TABLE IF NOT EXISTS states (
    vendor TEXT NOT NULL,
    record_id TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (vendor, record_id)
);
"""


class SqliteShadowStore:
    """:class:`ShadowStore` in one SQLite file (created with its folder on first use)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"SqliteShadowStore({str(self.path)!r})"

    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA busy_timeout=30000")
            connection.executescript(_SCHEMA)
            self._connection = connection
        return self._connection

    def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            db = self._db()
            with db:
                return work(db)

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    @staticmethod
    def _write(row: tuple[str] | None) -> RecordedWrite | None:
        return None if row is None else RecordedWrite.model_validate_json(row[0])

    def record(self, write: RecordedWrite) -> RecordedWrite:
        def work(db: sqlite3.Connection) -> RecordedWrite:
            db.execute(
                "INSERT OR IGNORE INTO writes (write_id, vendor, operation, target_key, "
                "result_id, workflow_id, recorded_at, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    write.write_id,
                    write.vendor,
                    write.operation,
                    write.target.key,
                    write.result_id,
                    write.why.workflow_id,
                    write.recorded_at.isoformat(),
                    write.model_dump_json(),
                ),
            )
            row = db.execute("SELECT body FROM writes WHERE write_id = ?", (write.write_id,))
            kept = self._write(row.fetchone())
            assert kept is not None
            return kept

        return self._run(work)

    def get(self, write_id: str) -> RecordedWrite | None:
        return self._run(
            lambda db: self._write(
                db.execute("SELECT body FROM writes WHERE write_id = ?", (write_id,)).fetchone()
            )
        )

    def by_target(self, vendor: str, operation: str, target_key: str) -> RecordedWrite | None:
        return self._run(
            lambda db: self._write(
                db.execute(
                    "SELECT body FROM writes WHERE vendor = ? AND operation = ? "
                    "AND target_key = ? ORDER BY seq LIMIT 1",
                    (vendor, operation, target_key),
                ).fetchone()
            )
        )

    def by_result(self, vendor: str, record_id: str) -> RecordedWrite | None:
        return self._run(
            lambda db: self._write(
                db.execute(
                    "SELECT body FROM writes WHERE vendor = ? AND result_id = ? "
                    "ORDER BY seq LIMIT 1",
                    (vendor, record_id),
                ).fetchone()
            )
        )

    def writes(
        self,
        *,
        workflow_id: str | None = None,
        vendor: str | None = None,
        recorded_before: datetime | None = None,
    ) -> list[RecordedWrite]:
        clauses: list[str] = []
        values: list[str] = []
        if workflow_id is not None:
            clauses.append("workflow_id = ?")
            values.append(workflow_id)
        if vendor is not None:
            clauses.append("vendor = ?")
            values.append(vendor)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        query = f"SELECT body FROM writes{where} ORDER BY seq"  # fixed clauses, values bound

        def work(db: sqlite3.Connection) -> list[RecordedWrite]:
            found = [RecordedWrite.model_validate_json(r[0]) for r in db.execute(query, values)]
            if recorded_before is not None:
                found = [w for w in found if w.recorded_at < recorded_before]
            return found

        return self._run(work)

    def mark_materialized(
        self, write_id: str, record_id: str | None, at: datetime
    ) -> RecordedWrite:
        def work(db: sqlite3.Connection) -> RecordedWrite:
            row = db.execute("SELECT body FROM writes WHERE write_id = ?", (write_id,))
            write = self._write(row.fetchone())
            if write is None:
                raise KeyError(write_id)
            if write.materialized_at is not None:
                return write
            done = write.model_copy(update={"materialized_id": record_id, "materialized_at": at})
            db.execute(
                "UPDATE writes SET body = ? WHERE write_id = ?",
                (done.model_dump_json(), write_id),
            )
            return done

        return self._run(work)

    def state(self, vendor: str, record_id: str) -> Json | None:
        def work(db: sqlite3.Connection) -> Json | None:
            row = db.execute(
                "SELECT body FROM states WHERE vendor = ? AND record_id = ?", (vendor, record_id)
            ).fetchone()
            return None if row is None else json.loads(row[0])

        return self._run(work)

    def set_state(self, vendor: str, record_id: str, state: Json) -> None:
        self._run(
            lambda db: db.execute(
                "INSERT INTO states (vendor, record_id, body) VALUES (?, ?, ?) "
                "ON CONFLICT (vendor, record_id) DO UPDATE SET body = excluded.body",
                (vendor, record_id, json.dumps(state)),
            )
        )


_STORES: dict[Path, SqliteShadowStore] = {}
_STORES_LOCK = threading.Lock()


def sqlite_store(path: Path) -> SqliteShadowStore:
    """One store object per file in a process (the gates of one worker share it)."""
    resolved = path.resolve()
    with _STORES_LOCK:
        store = _STORES.get(resolved)
        if store is None:
            store = _STORES[resolved] = SqliteShadowStore(resolved)
        return store


async def off_loop(call: Callable[[], T]) -> T:
    """Run a store call in a thread: SQLite blocks."""
    return await asyncio.to_thread(call)
