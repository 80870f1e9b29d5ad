"""The catalog's connection: opening (read-only for a glance, migrated for a run), the lock
every statement takes, the mapping of ``sqlite3.Error``, and the check of every row that
becomes a record.

How each ``sqlite3.Error`` becomes archiver's error (exit 2 or 1, a damaged catalog never
retried) is said in the package's docstring (:mod:`archiver.catalog`); it is done here.

:class:`_Database` is the base of :class:`~archiver.catalog.catalog.Catalog` and of each of its
parts (events, derived files, runs): they query through its :meth:`~_Database._one`,
:meth:`~_Database._all` and :meth:`~_Database._write`, and nowhere else.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

from ..errors import (
    ArchiveError,
    StorageError,
    catalog_access,
    describe_sqlite_error,
    disk_refused,
)
from .records import (
    ROW_HINT,
    Derived,
    FileRecord,
    _derived_record,
    _file_record,
    _Row,
    _row_fault,
    store_path,
)
from .schema import is_current, migrate

__all__ = ["DAMAGED_HINT", "WAL_CHECKPOINT_PAGES", "WAL_SIZE_LIMIT", "damaged"]


# The write-ahead log is folded into the catalog every this many pages (SQLite's default is
# 1000, 4 MiB), and cut back to this size after: the catalog's own writes stay small.
WAL_CHECKPOINT_PAGES = 256
WAL_SIZE_LIMIT = 1024 * 1024

DAMAGED_HINT = (
    "restore catalog.sqlite from a backup, or recover what it holds with"
    " 'sqlite3 catalog.sqlite .recover | sqlite3 recovered.sqlite'"
)


def damaged(exc: sqlite3.Error) -> bool:
    """Whether SQLite found the catalog's file damaged (``SQLITE_CORRUPT`` and its extended
    codes) or not a database at all (``SQLITE_NOTADB``)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return "malformed" in str(exc) or "not a database" in str(exc)
    return code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def _read_only(path: Path) -> sqlite3.Connection | None:
    """The catalog at ``path`` opened read-only, or ``None`` where that cannot be done: no
    catalog, a schema this release would migrate first, or SQLite unable to open it so.

    A catalog in WAL mode is read through its ``-shm`` index, which SQLite would create (and
    leave behind: a read-only connection does not clean up) when it is missing. With no
    ``-wal`` beside the catalog no run is writing it (a run keeps both while it works), so it
    is read as ``immutable``: no file is created, none is needed. With a ``-wal`` present, the
    plain read-only mode follows what the running sync writes. A run that starts during the
    glance is the one case read as it was a moment before.
    """
    if not path.is_file():
        return None
    uri = f"file:{urllib.parse.quote(str(path.absolute()))}?mode=ro"
    if not path.with_name(path.name + "-wal").exists():
        uri += "&immutable=1"
    db: sqlite3.Connection | None = None
    try:
        db = sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False)
        db.row_factory = sqlite3.Row
        if is_current(db):
            db.execute("PRAGMA query_only=ON")
            return db
    except sqlite3.Error:
        pass
    if db is not None:  # older: a run migrates it first; newer: the usual open says so
        db.close()
    return None


class _Database:
    """An open catalog's connection, under one lock: safe to share between the event loop and
    worker threads, every statement and transaction one at a time."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        """``read_only``: a glance (``status``, a dry run) that should work for a user who
        may read the archive but not write it (a monitoring account): the catalog is opened
        read-only when it can be (see :func:`_read_only`), and as every run opens it if not
        (an older schema to migrate first, or no way to read it without writing)."""
        self.path = path
        self._lock = threading.RLock()
        self.exclusive = False
        reader = _read_only(path) if read_only else None
        if reader is not None:
            self._db = reader
            return
        try:
            # The download commits from worker threads while the loop reads: the lock above
            # keeps them one at a time, so sharing the connection is safe.
            self._db = sqlite3.connect(path, timeout=30, check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            # A small write-ahead log, folded into the catalog often and cut back after: on a
            # disk nearly full, the catalog needs little room to record a file or a failure.
            self._db.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES:d}")
            self._db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT:d}")
            migrate(self._db)
        except sqlite3.Error as exc:
            with contextlib.suppress(Exception):
                self._db.close()
            if disk_refused(exc):  # the disk, not the catalog: exit 1, as for any full disk
                reason = f"cannot open the catalog: {describe_sqlite_error(exc)}"
                raise StorageError(path, reason) from exc
            hint = DAMAGED_HINT if damaged(exc) else None
            raise ArchiveError(path, f"cannot open the catalog: {exc}", hint=hint) from exc

    @property
    def version(self) -> int:
        row = self._one("PRAGMA user_version")
        return int(row[0]) if row is not None else 0

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def _access(self) -> Iterator[None]:
        """:func:`~archiver.errors.catalog_access`, but a damaged catalog is an
        :class:`ArchiveError` (exit 2) naming it: no run can trust it, and no retry mends it."""
        try:
            with catalog_access(self.path):
                yield
        except StorageError as exc:
            cause = exc.__cause__
            if isinstance(cause, sqlite3.Error) and damaged(cause):
                reason = f"the catalog is damaged: {cause}"
                raise ArchiveError(self.path, reason, hint=DAMAGED_HINT) from cause
            raise

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction, under the lock; a failure (a full disk) rolls it back whole."""
        with self._lock, self._access(), self._db:
            yield self._db

    def _one(self, sql: str, *params: object) -> sqlite3.Row | None:
        with self._lock, self._access():
            row: sqlite3.Row | None = self._db.execute(sql, params).fetchone()
            return row

    def _all(self, sql: str, *params: object) -> list[sqlite3.Row]:
        with self._lock, self._access():
            return self._db.execute(sql, params).fetchall()

    # -- rows become records: what they say is checked here, once -------------------------------

    def _bad_row(self, where: str, fault: str) -> ArchiveError:
        return ArchiveError(self.path, f"the catalog is damaged: {where}: {fault}", hint=ROW_HINT)

    def _file(self, row: sqlite3.Row) -> FileRecord:
        return self._checked(_file_record(row))

    def _checked(self, row: _Row) -> _Row:
        """``row`` once its path names its bytes in ``store/`` (or, in an archive not yet
        moved there, a file of its item's folder), its view a file of its item's folder, and
        its sha256 is one."""
        media = ("media", str(row.item_id))
        if isinstance(row.path, str) and row.path.startswith("store/"):
            fault = _row_fault(None, row.sha256, ())
            if fault is None and row.path != store_path(row.sha256):
                fault = f"path {row.path!r} is not where the store keeps its sha256"
        else:
            fault = _row_fault(row.path, row.sha256, media)
        view = getattr(row, "view", None)
        if fault is None and view is not None:
            fault = _row_fault(view, row.sha256, media)
        if fault is not None:
            raise self._bad_row(
                f"files ({row.item_id!r}, {row.role!r}, version {row.version})", fault
            )
        return row

    def _derived(self, row: sqlite3.Row) -> Derived:
        derived = _derived_record(row)
        fault = _row_fault(derived.path, derived.sha256, ("derived",))
        if fault is None and derived.file_sha256 is not None:
            fault = _row_fault(None, derived.file_sha256, ())
        if fault is not None:
            where = f"derived ({derived.sha256!r}, {derived.kind!r}, version {derived.version})"
            raise self._bad_row(where, fault)
        return derived

    def integrity_problems(self) -> list[str]:
        """What SQLite's own integrity check finds wrong with the catalog (nothing: ``[]``).

        A page so damaged that the check itself stops is one problem, SQLite's words for it.
        """
        try:
            rows = self._all("PRAGMA integrity_check")
        except ArchiveError as exc:
            cause = exc.__cause__
            return [str(cause) if cause is not None else exc.reason]
        found = [str(row[0]) for row in rows]
        return [] if found == ["ok"] else found
