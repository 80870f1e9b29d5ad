"""The catalog's record of its own runs and audits: each run with its failures, when each
version's bytes were last found intact, and the counts ``status`` shows.

A part of :class:`~archiver.catalog.catalog.Catalog` of its own because none of it is what a
run's outcome depends on (the count of changes leaves out ``runs``, ``failures`` and
``audited_at``, see :mod:`.schema`): it is the bookkeeping that ``status`` and ``audit`` read.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from .database import _Database
from .records import AuditRow, FailureRow, RunRow, _run
from .times import utc_now


class _RunLog(_Database):
    """Writes and reads the ``runs`` and ``failures`` tables and the files' ``audited_at``."""

    # -- audits --------------------------------------------------------------------------------

    def audit_order(self) -> list[AuditRow]:
        """Every version of every file, the least recently audited first."""
        rows = self._all(
            "SELECT item_id, role, version, path, sha256, size, view FROM files"
            " ORDER BY audited_at IS NOT NULL, audited_at, item_id, role, version"
        )
        return [
            self._checked(AuditRow(**{key: row[key] for key in row.keys()}))  # noqa: SIM118
            for row in rows
        ]

    def last_intact(self, row: AuditRow) -> str | None:
        """When a version's bytes were last seen intact: its last passed audit, else when it
        was fetched."""
        found = self._one(
            "SELECT COALESCE(audited_at, fetched_at) FROM files WHERE item_id=? AND role=?"
            " AND version=?",
            row.item_id,
            row.role,
            row.version,
        )
        return str(found[0]) if found is not None and found[0] is not None else None

    def mark_audited(self, row: AuditRow) -> None:
        """Note that a version's bytes were read and found intact, now."""
        with self._write() as db:
            db.execute(
                "UPDATE files SET audited_at=? WHERE item_id=? AND role=? AND version=?",
                (utc_now(), row.item_id, row.role, row.version),
            )

    # -- runs ----------------------------------------------------------------------------------

    def start_run(self, command: str) -> int:
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO runs (command, started_at) VALUES (?, ?)", (command, utc_now())
            )
        return int(cursor.lastrowid or 0)

    def record_failures(
        self, run_id: int, failures: Sequence[tuple[str, str, str | None, str]]
    ) -> None:
        """``(item, role, url, reason)`` of each file that failed in the run."""
        now = utc_now()
        with self._write() as db:
            db.executemany(
                "INSERT INTO failures (run_id, item_id, role, url, reason, at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(run_id, item, role, url, reason, now) for item, role, url, reason in failures],
            )

    def finish_run(self, run_id: int, outcome: str, summary: dict[str, object]) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE runs SET finished_at=?, outcome=?, summary=? WHERE id=?",
                (utc_now(), outcome, json.dumps(summary, sort_keys=True), run_id),
            )

    def last_run(self, command: str | None = None) -> RunRow | None:
        columns = "id, command, started_at, finished_at, outcome, summary"
        if command is None:
            return _run(self._one(f"SELECT {columns} FROM runs ORDER BY id DESC LIMIT 1"))  # noqa: S608
        return _run(
            self._one(
                f"SELECT {columns} FROM runs WHERE command=? ORDER BY id DESC LIMIT 1",  # noqa: S608
                command,
            )
        )

    def failures(self, run_id: int) -> list[FailureRow]:
        rows = self._all(
            "SELECT f.item_id, i.title, f.role, f.url, f.reason, f.at FROM failures f"
            " LEFT JOIN items i ON i.id = f.item_id WHERE f.run_id=? ORDER BY f.item_id, f.role",
            run_id,
        )
        return [
            FailureRow(
                row["item_id"], row["title"], row["role"], row["url"], row["reason"], row["at"]
            )
            for row in rows
        ]

    # -- counts for status ---------------------------------------------------------------------

    def counts(self, audit_due_before: str) -> dict[str, int | str | None]:
        """Items, files, bytes and audit counts, in one read."""
        items = self._one("SELECT COUNT(*) AS total, COUNT(retired_at) AS retired FROM items")
        files = self._one(
            "SELECT COUNT(*) FILTER (WHERE current=1) AS current_files,"
            " COALESCE(SUM(size) FILTER (WHERE current=1), 0) AS current_bytes,"
            " COUNT(*) AS versions, COALESCE(SUM(size), 0) AS all_bytes,"
            " COUNT(*) FILTER (WHERE audited_at IS NULL) AS never_audited,"
            " COUNT(*) FILTER (WHERE audited_at IS NULL OR audited_at < ?) AS due,"
            " MAX(audited_at) AS last_audit FROM files",
            audit_due_before,
        )
        stored = self._one(
            "SELECT COUNT(*) AS stored_files, COALESCE(SUM(size), 0) AS stored_bytes"
            " FROM (SELECT MAX(size) AS size FROM files GROUP BY sha256)"
        )
        assert items is not None  # noqa: S101 - an aggregate always returns a row
        assert files is not None  # noqa: S101
        assert stored is not None  # noqa: S101
        return {
            "items": items["total"],
            "retired": items["retired"],
            **{key: files[key] for key in files.keys()},  # noqa: SIM118
            # Each sha256 once: what the store holds (all_bytes counts a version come back
            # twice, and bytes two items share, as often as they are recorded).
            "stored_files": stored["stored_files"],
            "stored_bytes": stored["stored_bytes"],
        }
