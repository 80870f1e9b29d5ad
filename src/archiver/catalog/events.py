"""The catalog's events: every fetch, change, quarantine, audit, restore, retire and prune,
with its run, in the order they happened.

A part of :class:`~archiver.catalog.catalog.Catalog` of its own because the events are a log
that every other part writes into (:meth:`_EventLog._put_event`, inside its own transaction)
and that only history, status and the exports read back.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator

from .database import _Database
from .records import _EVENT_COLUMNS, AuditRow, Event, FileRecord, _event
from .times import utc_now


class _EventLog(_Database):
    """Writes and reads the ``events`` table."""

    @staticmethod
    def _put_event(
        db: sqlite3.Connection,
        kind: str,
        record: FileRecord | AuditRow | None = None,
        *,
        item_id: str | None = None,
        run_id: int | None = None,
        outcome: str = "success",
        detail: dict[str, object] | None = None,
    ) -> None:
        db.execute(
            "INSERT INTO events (at, kind, item_id, role, version, sha256, run_id, outcome,"
            " detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                utc_now(),
                kind,
                record.item_id if record is not None else item_id,
                record.role if record is not None else None,
                record.version if record is not None else None,
                record.sha256 if record is not None else None,
                run_id,
                outcome,
                json.dumps(detail or {}, sort_keys=True, ensure_ascii=False),
            ),
        )

    def record_event(
        self,
        kind: str,
        record: FileRecord | AuditRow | None = None,
        *,
        item_id: str | None = None,
        sha256: str | None = None,
        run_id: int | None = None,
        outcome: str = "success",
        detail: dict[str, object] | None = None,
    ) -> None:
        """Note an event: of a version (``record``), of an item, or of the whole archive."""
        with self._write() as db:
            self._put_event(
                db, kind, record, item_id=item_id, run_id=run_id, outcome=outcome, detail=detail
            )
            if sha256 is not None and record is None:
                db.execute("UPDATE events SET sha256=? WHERE id=last_insert_rowid()", (sha256,))

    def events(self, item_id: str | None = None, kind: str | None = None) -> Iterator[Event]:
        """Every event (of one item, of one kind), in the order they happened; read in pages,
        so an archive's whole history never sits in memory at once."""
        after = 0
        while True:
            rows = self._all(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE id > ?"  # noqa: S608
                " AND (? IS NULL OR item_id = ?) AND (? IS NULL OR kind = ?)"
                " ORDER BY id LIMIT 1000",
                after,
                item_id,
                item_id,
                kind,
                kind,
            )
            if not rows:
                return
            for row in rows:
                yield _event(row)
            after = rows[-1]["id"]
