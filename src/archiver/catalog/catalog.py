"""The :class:`Catalog`: the collection's items, every version of their files, and restores;
the rest of it (events, derived files, runs and audits, the connection) comes from its parts.

The class is the only one the archive holds; its parts are split by the tables they keep so
that each module stays one concept, and they share one connection and one lock
(:class:`~.database._Database`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from .at_once import _AtOnce, _Files
from .database import _Database
from .derived import _DerivedFiles
from .events import _EventLog
from .records import _FILE_COLUMNS, Derived, FileRecord, Pruned
from .runs import _RunLog
from .schema import CHANGES_TRIGGERS
from .times import utc_now

__all__ = ["Catalog"]


class Catalog(_RunLog, _DerivedFiles, _EventLog, _Database):
    """An open catalog. Safe to share between the event loop and worker threads: one lock
    serialises every statement and transaction.

    While :attr:`exclusive` (its archive's lock is held: no other process writes it), a run
    of many questions about files is answered from one read of them all
    (:data:`~.at_once.READ_AT_ONCE_AFTER`), kept until this connection next changes anything:
    its answers are those of the queries, without a query each.
    """

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        """``read_only``: a glance (``status``, a dry run) that should work for a user who
        may read the archive but not write it (a monitoring account): see
        :meth:`_Database.__init__ <.database._Database.__init__>`."""
        self._files = _AtOnce(self._read_files, lambda files: files.size)
        super().__init__(path, read_only=read_only)

    # -- many questions, one read ----------------------------------------------------------------

    def _files_at_once(self) -> _Files | None:
        """Every file read at once, if this process is the only writer and has asked enough
        of them since the catalog last changed (:class:`_AtOnce`); else ``None``."""
        if not self.exclusive:
            return None
        with self._lock:
            return self._files.get(self._db.total_changes)

    def _read_files(self) -> _Files:
        by_item: dict[str, list[FileRecord]] = {}
        files = self.every_file()
        for record in files:
            by_item.setdefault(record.item_id, []).append(record)
        return _Files(by_item, self.restores(), len(files))

    def restores(self) -> dict[tuple[str, str], int]:
        """The version ``archiver restore`` made the one kits get, by ``(item, role)``."""
        rows = self._all("SELECT item_id, role, version FROM restores")
        return {(row["item_id"], row["role"]): row["version"] for row in rows}

    # -- items ---------------------------------------------------------------------------------

    def record_items(
        self, items: Sequence[tuple[str, str]], notes: Mapping[str, str] | None = None
    ) -> None:
        """Note that these ``(id, title)`` are in the collection now (not retired); with
        ``notes``, what was written as each one's ``entry.json`` (:meth:`entry_notes`)."""
        now = utc_now()
        with self._write() as db:
            db.executemany(
                "INSERT INTO items (id, title, first_seen, last_seen) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(id) DO UPDATE SET title=excluded.title, last_seen=excluded.last_seen,"
                " retired_at=NULL",
                [(item, title, now, now) for item, title in items],
            )
            if notes:
                db.executemany(
                    "UPDATE items SET entry_note=? WHERE id=?",
                    [(note, item) for item, note in notes.items()],
                )

    def entry_notes(self) -> dict[str, str]:
        """What the archive last wrote as each item's ``entry.json``, by item (see
        :meth:`Archive.record_items <archiver.archive.Archive.record_items>`)."""
        rows = self._all("SELECT id, entry_note FROM items WHERE entry_note IS NOT NULL")
        return {row["id"]: row["entry_note"] for row in rows}

    def active_items(self) -> list[tuple[str, str]]:
        """Every item not retired: ``[(id, title)]``, by id (what a dry run would retire)."""
        rows = self._all("SELECT id, title FROM items WHERE retired_at IS NULL ORDER BY id")
        return [(row["id"], row["title"]) for row in rows]

    def seen_again(self) -> None:
        """Note that every item not retired is in the collection now: what
        :meth:`record_items` notes of a collection that did not change, in one statement."""
        with self._write() as db:
            db.execute("UPDATE items SET last_seen=? WHERE retired_at IS NULL", (utc_now(),))

    def changes(self) -> tuple[int, int] | None:
        """Where the catalog's count of changes stands, with its token (see
        :func:`~.schema._migrate_6`): equal twice, nothing a run depends on changed between.
        ``None`` when it cannot be told: its row or one of its triggers gone (a person's
        edit), nothing to compare."""
        row = self._one(
            "SELECT (SELECT COUNT(*) FROM changes), n, token,"
            " (SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger'"
            " AND name LIKE 'changes\\_%' ESCAPE '\\') FROM changes"
        )
        if row is None or row[0] != 1 or row[3] != CHANGES_TRIGGERS:
            return None
        return (int(row[1]), int(row[2]))

    def retire_missing(self, present: set[str]) -> list[tuple[str, str]]:
        """Mark retired, now, every active item not in ``present``: ``[(id, title)]``."""
        gone = [(item, title) for item, title in self.active_items() if item not in present]
        if gone:
            now = utc_now()
            with self._write() as db:
                db.executemany(
                    "UPDATE items SET retired_at=? WHERE id=?", [(now, item) for item, _ in gone]
                )
                for item, title in gone:
                    self._put_event(db, "retire", item_id=item, detail={"title": title})
        return gone

    def retired_before(self, before: str) -> list[Pruned]:
        """Items retired before ``before`` (a date or time), with their files' count and size."""
        rows = self._all(
            "SELECT i.id, i.title, i.retired_at, COUNT(f.version) AS files,"
            " COALESCE(SUM(f.size), 0) AS size"
            " FROM items i LEFT JOIN files f ON f.item_id = i.id"
            " WHERE i.retired_at IS NOT NULL AND i.retired_at < ? GROUP BY i.id ORDER BY i.id",
            before,
        )
        return [
            Pruned(row["id"], row["title"], row["retired_at"], row["files"], row["size"])
            for row in rows
        ]

    def forget_item(
        self, item_id: str, *, run_id: int | None = None, detail: dict[str, object] | None = None
    ) -> None:
        """Drop an item and every record of its files (prune, once its files are deleted);
        its events stay, with one more saying it was pruned."""
        with self._write() as db:
            db.execute("DELETE FROM files WHERE item_id=?", (item_id,))
            db.execute("DELETE FROM restores WHERE item_id=?", (item_id,))
            db.execute("DELETE FROM items WHERE id=?", (item_id,))
            self._put_event(db, "prune", item_id=item_id, run_id=run_id, detail=detail)

    # -- files ---------------------------------------------------------------------------------

    def current(self, item_id: str, role: str, rendition: int = 0) -> FileRecord | None:
        """The current version of one rendition of a file (0: a file that has one)."""
        at_once = self._files_at_once()
        if at_once is not None:
            found = at_once.current(item_id)
            return next((r for r in found if r.role == role and r.rendition == rendition), None)
        row = self._one(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE item_id=? AND role=? AND rendition=?"  # noqa: S608
            " AND current=1",
            item_id,
            role,
            rendition,
        )
        return self._file(row) if row else None

    def renditions(self, item_id: str, role: str) -> list[FileRecord]:
        """The current version of every rendition of a file, the tallest first."""
        at_once = self._files_at_once()
        if at_once is not None:
            found = [r for r in at_once.current(item_id) if r.role == role]
            return sorted(found, key=lambda record: record.rendition, reverse=True)
        rows = self._all(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE item_id=? AND role=? AND current=1"  # noqa: S608
            " ORDER BY rendition DESC",
            item_id,
            role,
        )
        return [self._file(row) for row in rows]

    def file_version(self, item_id: str, role: str, version: int) -> FileRecord | None:
        row = self._one(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE item_id=? AND role=? AND version=?",  # noqa: S608
            item_id,
            role,
            version,
        )
        return self._file(row) if row else None

    def with_sha256(self, sha256: str) -> list[FileRecord]:
        """Every version, of any item, whose bytes have this sha256 (the store holds them once)."""
        rows = self._all(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE sha256=? ORDER BY item_id, role, version",  # noqa: S608
            sha256,
        )
        return [self._file(row) for row in rows]

    def next_version(self, item_id: str, role: str) -> int:
        """The number the next version of a file gets: one more than any of its renditions'."""
        row = self._one(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM files WHERE item_id=? AND role=?",
            item_id,
            role,
        )
        return int(row[0]) if row is not None else 1

    def not_in_store(self) -> list[FileRecord]:
        """Versions whose bytes are not yet in ``store/`` (an archive of an earlier release)."""
        rows = self._all(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE substr(path, 1, 6) != 'store/'"  # noqa: S608
            " ORDER BY item_id, role, version"
        )
        return [self._file(row) for row in rows]

    def move_to_store(
        self,
        moved: Sequence[FileRecord],
        *,
        detail: dict[str, object],
        pending: tuple[str, str],
    ) -> None:
        """Record, in one transaction, that these versions' bytes are now at their ``path`` in
        ``store/``, shown at their ``view``; with one ``upgrade`` event, and the note
        ``pending`` (a meta key and its value) of the clean-up left to do."""
        with self._write() as db:
            db.executemany(
                "UPDATE files SET path=?, view=? WHERE item_id=? AND role=? AND version=?",
                [(r.path, r.view, r.item_id, r.role, r.version) for r in moved],
            )
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", pending)
            self._put_event(db, "upgrade", detail=detail)

    def meta(self, key: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key=?", key)
        return str(row[0]) if row is not None else None

    def set_meta(self, key: str, value: str | None) -> None:
        with self._write() as db:
            if value is None:
                db.execute("DELETE FROM meta WHERE key=?", (key,))
            else:
                db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def current_with_prefix(self, item_id: str, prefix: str) -> list[FileRecord]:
        """The current files of an item whose role starts with ``prefix``, by role."""
        at_once = self._files_at_once()
        if at_once is not None:
            found = [r for r in at_once.current(item_id) if r.role.startswith(prefix)]
            return sorted(found, key=lambda record: record.role)
        rows = self._all(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE item_id=? AND current=1"  # noqa: S608
            " AND substr(role, 1, ?)=? ORDER BY role",
            item_id,
            len(prefix),
            prefix,
        )
        return [self._file(row) for row in rows]

    def path_owner(self, path: str) -> tuple[str, str, int] | None:
        """The ``(item, role, rendition)`` whose current version shows at ``path``, if any.

        A path that is some version's ``path`` (its bytes, in an archive not yet moved into
        the store) is owned by no rendition's view: ``("", "", -1)``, never to be written
        over or removed as a view is."""
        row = self._one(
            "SELECT item_id, role, rendition, path = ? AS bytes FROM files"
            " WHERE view=? OR path=? ORDER BY bytes DESC LIMIT 1",
            path,
            path,
            path,
        )
        if row is None:
            return None
        return ("", "", -1) if row["bytes"] else (row["item_id"], row["role"], row["rendition"])

    def item_files(self, item_id: str) -> list[FileRecord]:
        """Every version of every file of an item (prune, to delete them)."""
        rows = self._all(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE item_id=? ORDER BY role, version",  # noqa: S608
            item_id,
        )
        return [self._file(row) for row in rows]

    def versions(self, item_id: str, role: str) -> list[FileRecord]:
        """Every version of every rendition of a file, in the order they came."""
        at_once = self._files_at_once()
        if at_once is not None:
            return [r for r in at_once.by_item.get(item_id, ()) if r.role == role]
        rows = self._all(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE item_id=? AND role=? ORDER BY version",  # noqa: S608
            item_id,
            role,
        )
        return [self._file(row) for row in rows]

    def every_file(self) -> list[FileRecord]:
        """Every version of every file of the archive (an export's objects)."""
        rows = self._all(
            f"SELECT {_FILE_COLUMNS} FROM files ORDER BY item_id, role, version"  # noqa: S608
        )
        return [self._file(row) for row in rows]

    def mark_checked(self, record: FileRecord) -> None:
        """Upstream confirmed this version unchanged, now."""
        with self._write() as db:
            db.execute(
                "UPDATE files SET checked_at=? WHERE item_id=? AND role=? AND version=?",
                (utc_now(), record.item_id, record.role, record.version),
            )

    def refresh_provenance(
        self,
        record: FileRecord,
        *,
        url: str,
        final_url: str,
        etag: str | None,
        last_modified: str | None,
        facts: Derived | None,
        run_id: int | None = None,
    ) -> None:
        """The same bytes came again (maybe from a new URL): the version stays, its
        provenance is brought up to date, with what FFmpeg read of it."""
        with self._write() as db:
            self._put_event(
                db,
                "refresh",
                record,
                run_id=run_id,
                detail={"url": url, "final_url": final_url, "same_bytes": True},
            )
            db.execute(
                "UPDATE files SET url=?, etag=?, last_modified=?, final_url=?, checked_at=?"
                " WHERE item_id=? AND role=? AND version=?",
                (
                    url,
                    etag,
                    last_modified,
                    final_url,
                    utc_now(),
                    record.item_id,
                    record.role,
                    record.version,
                ),
            )
            if facts is not None:
                self._put_derived(db, facts)

    def add_version(
        self,
        record: FileRecord,
        *,
        superseded: FileRecord | None,
        facts: Derived | None,
        run_id: int | None = None,
    ) -> None:
        """Record a new current version of its rendition; the one it supersedes stays, no
        longer current, no longer shown. A version ``archiver restore`` made the one kits get
        gives way to a change of its own rendition. One transaction, with its event."""
        with self._write() as db:
            detail: dict[str, object] = {"url": record.url, "final_url": record.final_url}
            if superseded is not None:
                db.execute(
                    "UPDATE files SET current=0, view=NULL WHERE item_id=? AND role=?"
                    " AND version=?",
                    (superseded.item_id, superseded.role, superseded.version),
                )
                detail["replaces"] = superseded.version
                lifted = db.execute(
                    "DELETE FROM restores WHERE item_id=? AND role=? AND version IN (SELECT"
                    " version FROM files WHERE item_id=? AND role=? AND rendition=?)",
                    (record.item_id, record.role, record.item_id, record.role, record.rendition),
                ).rowcount
                if lifted:
                    detail["restore_lifted"] = True
            if record.resolution is not None:
                detail["resolution"] = record.resolution
            self._put_event(
                db, "change" if superseded else "fetch", record, run_id=run_id, detail=detail
            )
            db.execute(
                "INSERT INTO files (item_id, role, version, current, path, url, final_url, sha256,"
                " size, etag, last_modified, content_type, fetched_at, checked_at, resolution,"
                " segments, rendition, view)"
                " VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.item_id,
                    record.role,
                    record.version,
                    record.path,
                    record.url,
                    record.final_url,
                    record.sha256,
                    record.size,
                    record.etag,
                    record.last_modified,
                    record.content_type,
                    record.fetched_at,
                    record.checked_at,
                    record.resolution,
                    record.segments,
                    record.rendition,
                    record.view,
                ),
            )
            if facts is not None:
                self._put_derived(db, facts)

    def set_view(self, record: FileRecord, view: str | None) -> None:
        """Where a current version shows in its item's folder (``None``: nowhere)."""
        with self._write() as db:
            db.execute(
                "UPDATE files SET view=? WHERE item_id=? AND role=? AND version=?",
                (view, record.item_id, record.role, record.version),
            )

    # -- restores ------------------------------------------------------------------------------

    def restored(self, item_id: str, role: str) -> FileRecord | None:
        """The version ``archiver restore`` made the one kits get, if any."""
        at_once = self._files_at_once()
        if at_once is not None:
            return at_once.restored(item_id, role)
        row = self._one(
            f"SELECT {', '.join('f.' + c.strip() for c in _FILE_COLUMNS.split(','))}"  # noqa: S608
            " FROM restores r JOIN files f ON f.item_id = r.item_id AND f.role = r.role"
            " AND f.version = r.version WHERE r.item_id=? AND r.role=?",
            item_id,
            role,
        )
        return self._file(row) if row else None

    def restored_items(self) -> set[str]:
        """Every item with a version ``archiver restore`` made the one kits get."""
        at_once = self._files_at_once()
        if at_once is not None:
            return {item for item, _ in at_once.restores}
        return {row["item_id"] for row in self._all("SELECT DISTINCT item_id FROM restores")}

    def restore(self, record: FileRecord, *, run_id: int | None, detail: dict[str, object]) -> None:
        """Make ``record`` the version kits get, with its event."""
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO restores (item_id, role, version, at) VALUES (?, ?, ?, ?)",
                (record.item_id, record.role, record.version, utc_now()),
            )
            self._put_event(db, "restore", record, run_id=run_id, detail=detail)

    def restore_latest(self, item_id: str, role: str, *, run_id: int | None) -> FileRecord | None:
        """Undo a restore: kits get the current version again. The version it lifted."""
        lifted = self.restored(item_id, role)
        if lifted is None:
            return None
        with self._write() as db:
            db.execute("DELETE FROM restores WHERE item_id=? AND role=?", (item_id, role))
            self._put_event(
                db,
                "restore",
                lifted,
                run_id=run_id,
                detail={"latest": True, "lifted_version": lifted.version},
            )
        return lifted
