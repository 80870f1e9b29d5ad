"""What was made from a file's bytes (posters, re-encodes, what FFmpeg read), cached by their
sha256 and the recipe's version.

A part of :class:`~archiver.catalog.catalog.Catalog` of its own because derived rows are keyed
by bytes, not by item: they outlive the files that made them (:meth:`orphan_derived`) and are
read whole, apart from the files, when a kit asks of many (:class:`~.at_once._AtOnce`).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from .at_once import _AtOnce
from .database import _Database
from .records import _DERIVED_COLUMNS, Derived
from .times import utc_now


class _DerivedFiles(_Database):
    """Writes and reads the ``derived`` table."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self._every_derived = _AtOnce(self._read_derived, len)
        super().__init__(path, read_only=read_only)

    def _derived_at_once(self) -> dict[tuple[str, str, int], Derived] | None:
        """Every derived row read at once, by its key; as :meth:`Catalog._files_at_once
        <.catalog.Catalog._files_at_once>`."""
        if not self.exclusive:
            return None
        with self._lock:
            return self._every_derived.get(self._db.total_changes)

    def _read_derived(self) -> dict[tuple[str, str, int], Derived]:
        return {(d.sha256, d.kind, d.version): d for d in self.every_derived()}

    def every_derived(self) -> list[Derived]:
        """Every derived row: what was made from each file's bytes, what FFmpeg read of them."""
        rows = self._all(f"SELECT {_DERIVED_COLUMNS} FROM derived ORDER BY sha256, kind, version")  # noqa: S608
        return [self._derived(row) for row in rows]

    def derived(self, sha256: str, kind: str, version: int) -> Derived | None:
        """What was made from the bytes of ``sha256`` by recipe ``kind`` at ``version``."""
        at_once = self._derived_at_once()
        if at_once is not None:
            return at_once.get((sha256, kind, version))
        row = self._one(
            f"SELECT {_DERIVED_COLUMNS} FROM derived WHERE sha256=? AND kind=? AND version=?",  # noqa: S608
            sha256,
            kind,
            version,
        )
        return self._derived(row) if row else None

    def record_derived(self, derived: Derived) -> None:
        with self._write() as db:
            self._put_derived(db, derived)

    @staticmethod
    def _put_derived(db: sqlite3.Connection, derived: Derived) -> None:
        db.execute(
            f"INSERT OR REPLACE INTO derived ({_DERIVED_COLUMNS}, made_at)"  # noqa: S608
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                derived.sha256,
                derived.kind,
                derived.version,
                derived.path,
                derived.file_sha256,
                derived.file_size,
                derived.duration,
                derived.width,
                derived.height,
                utc_now(),
            ),
        )

    def orphan_derived(self) -> list[Derived]:
        """What was made from bytes no file of the archive has any more."""
        rows = self._all(
            f"SELECT {_DERIVED_COLUMNS} FROM derived"  # noqa: S608
            " WHERE sha256 NOT IN (SELECT sha256 FROM files)"
        )
        return [self._derived(row) for row in rows]

    def forget_derived(self, derived: Derived) -> None:
        with self._write() as db:
            db.execute(
                "DELETE FROM derived WHERE sha256=? AND kind=? AND version=?",
                (derived.sha256, derived.kind, derived.version),
            )
