"""The archive's catalog: an embedded SQLite database, and the only module that speaks SQL.

It records every version of every file with its provenance, what was made from a file's bytes
(posters, re-encodes, what FFmpeg read), and every run with its failures. Rows come out as
frozen dataclasses, read by column name; times are ISO 8601 UTC strings to the microsecond,
which sort as the times they write.

The schema is versioned by ``PRAGMA user_version`` and brought up to date when the catalog is
opened: each migration of :data:`MIGRATIONS`, in order, in one transaction with the version it
reaches, so a catalog is always at one version or the next, never between. A catalog made by a
newer archiver is refused rather than guessed at.

Every ``sqlite3.Error`` is mapped where it arises (:func:`archiver.errors.catalog_access`): one
that keeps the catalog from opening is an :class:`~archiver.errors.ArchiveError` (exit 2),
unless the disk refused a write; that one, like any while writing (a full disk), is a
:class:`~archiver.errors.StorageError` naming the catalog (exit 1). A damaged catalog (a page
SQLite finds malformed) is an :class:`~archiver.errors.ArchiveError` whenever it shows: no run
can trust it, and no retry mends it.

The catalog is a file on disk, and what it says is checked where rows become records: a path
it gives must name a file of the item's folder (``media/<id>/…``) or of ``derived/``, relative,
without ``..``, and a checksum must be one (it names files in ``derived/``). A row that does
not is a damaged catalog, named (exit 2): its path is never used, so that no command replaces,
links, hashes or deletes a file outside the archive because a row said so.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import sqlite3
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from .errors import (
    ArchiveError,
    StorageError,
    catalog_access,
    describe_sqlite_error,
    disk_refused,
)

__all__ = [
    "DAMAGED_HINT",
    "MEDIA_FACTS",
    "MEDIA_FACTS_VERSION",
    "MIGRATIONS",
    "ROW_HINT",
    "SCHEMA_VERSION",
    "WAL_CHECKPOINT_PAGES",
    "WAL_SIZE_LIMIT",
    "AuditRow",
    "Catalog",
    "Derived",
    "Event",
    "FailureRow",
    "FileRecord",
    "Pruned",
    "RunRow",
    "damaged",
    "format_time",
    "parse_time",
    "store_path",
    "utc_now",
]

# The derived row that holds what FFmpeg read of a video's bytes: no file, only facts.
MEDIA_FACTS = "probe"
MEDIA_FACTS_VERSION = 1

# How the catalog writes times: ISO 8601, UTC, to the microsecond; such strings sort as times.
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
# Catalogs made before version 2 wrote times to the second; :func:`parse_time` reads both.
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{6})?Z")


def format_time(moment: dt.datetime) -> str:
    """A time as the catalog stores it.

    >>> format_time(dt.datetime(2026, 11, 26, 3, 0, tzinfo=dt.UTC))
    '2026-11-26T03:00:00.000000Z'
    """
    return moment.astimezone(dt.UTC).strftime(TIME_FORMAT)


def utc_now() -> str:
    """The current time as the catalog stores it."""
    return format_time(dt.datetime.now(dt.UTC))


def parse_time(text: str) -> dt.datetime | None:
    """A time the catalog stored (either precision), or ``None`` for anything else.

    >>> parse_time("2026-11-26T03:00:00Z") == parse_time("2026-11-26T03:00:00.000000Z")
    True
    """
    # ``fromisoformat`` is about 4 times faster than ``strptime`` (a run reads a time a
    # held file), but takes forms the catalog never writes: the pattern keeps to its two.
    if not isinstance(text, str) or not _TIME.fullmatch(text):
        return None
    try:
        return dt.datetime.fromisoformat(text[:-1]).replace(tzinfo=dt.UTC)
    except ValueError:
        return None


# The write-ahead log is folded into the catalog every this many pages (SQLite's default is
# 1000, 4 MiB), and cut back to this size after: the catalog's own writes stay small.
WAL_CHECKPOINT_PAGES = 256
WAL_SIZE_LIMIT = 1024 * 1024

DAMAGED_HINT = (
    "restore catalog.sqlite from a backup, or recover what it holds with"
    " 'sqlite3 catalog.sqlite .recover | sqlite3 recovered.sqlite'"
)


ROW_HINT = (
    "restore catalog.sqlite from a backup; a path the catalog gives that leads out of the"
    " archive is never used"
)
_SHA256 = re.compile(r"[0-9a-f]{64}")


def damaged(exc: sqlite3.Error) -> bool:
    """Whether SQLite found the catalog's file damaged (``SQLITE_CORRUPT`` and its extended
    codes) or not a database at all (``SQLITE_NOTADB``)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return "malformed" in str(exc) or "not a database" in str(exc)
    return code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


# -- the schema and its migrations -------------------------------------------------------------

_SCHEMA_1 = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    retired_at TEXT
);
CREATE TABLE IF NOT EXISTS files (
    item_id TEXT NOT NULL REFERENCES items(id),
    role TEXT NOT NULL,
    version INTEGER NOT NULL,
    current INTEGER NOT NULL,
    path TEXT NOT NULL,
    url TEXT NOT NULL,
    final_url TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT,
    last_modified TEXT,
    content_type TEXT,
    fetched_at TEXT NOT NULL,
    checked_at TEXT NOT NULL,
    audited_at TEXT,
    PRIMARY KEY (item_id, role, version)
);
CREATE INDEX IF NOT EXISTS files_current ON files (item_id, role) WHERE current = 1;
CREATE TABLE IF NOT EXISTS derived (
    sha256 TEXT NOT NULL,
    kind TEXT NOT NULL,
    version INTEGER NOT NULL,
    path TEXT,
    file_sha256 TEXT,
    file_size INTEGER,
    duration REAL,
    width INTEGER,
    height INTEGER,
    made_at TEXT NOT NULL,
    PRIMARY KEY (sha256, kind, version)
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    command TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    outcome TEXT,
    summary TEXT
);
CREATE TABLE IF NOT EXISTS failures (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    item_id TEXT NOT NULL,
    role TEXT NOT NULL,
    url TEXT,
    reason TEXT NOT NULL,
    at TEXT NOT NULL
);
"""


def _migrate_1(db: sqlite3.Connection) -> None:
    """The first schema, and what the first releases added to it without a version: the
    ``resolution`` of a file (archives made before resolutions were chosen lack it)."""
    row = None
    with contextlib.suppress(sqlite3.OperationalError):  # no meta table yet: a new catalog
        row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
    if row is not None and row[0] != "1":
        raise sqlite3.DatabaseError(f"catalog schema {row[0]} is not one archiver knows")
    for statement in _SCHEMA_1.split(";"):
        if statement.strip():
            db.execute(statement)
    columns = {r["name"] for r in db.execute("PRAGMA table_info(files)")}
    if "resolution" not in columns:
        db.execute("ALTER TABLE files ADD COLUMN resolution INTEGER")
    db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', '1')")


_TIME_COLUMNS = {
    "items": ("first_seen", "last_seen", "retired_at"),
    "files": ("fetched_at", "checked_at", "audited_at"),
    "derived": ("made_at",),
    "runs": ("started_at", "finished_at"),
    "failures": ("at",),
}


def _migrate_2(db: sqlite3.Connection) -> None:
    """Times to the microsecond: two events of one second keep their order. Times written to
    the second gain ``.000000`` so that old and new sort together."""
    for table, columns in _TIME_COLUMNS.items():
        for column in columns:
            db.execute(
                f"UPDATE {table} SET {column} = substr({column}, 1, 19) || '.000000Z'"  # noqa: S608 - names from the table above
                f" WHERE length({column}) = 20 AND {column} LIKE '%Z'"
            )


def _migrate_3(db: sqlite3.Connection) -> None:
    """What the instance's segment checksums said of a file: ``verified``, ``not published``
    or ``not verified: <why>`` (NULL for files before this version, and for those with none)."""
    db.execute("ALTER TABLE files ADD COLUMN segments TEXT")


_EVENTS = """
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    item_id TEXT,
    role TEXT,
    version INTEGER,
    sha256 TEXT,
    run_id INTEGER,
    outcome TEXT NOT NULL DEFAULT 'success',
    detail TEXT
);
CREATE INDEX events_item ON events (item_id, id);
CREATE INDEX events_kind ON events (kind, id);
CREATE TABLE restores (
    item_id TEXT NOT NULL,
    role TEXT NOT NULL,
    version INTEGER NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (item_id, role)
);
"""


def _migrate_4(db: sqlite3.Connection) -> None:
    """Renditions, a store by content, events.

    - ``rendition``: a video's height (0 when unknown, and for every other role). Each
      rendition of a file has its own history and its own current version: a 240p fetched
      for a USB key never demotes the 720p a LAN kit shows. Each rendition's latest version
      becomes its current one.
    - ``view``: where a current version shows in ``media/<id>/`` (a hard link to its bytes in
      ``store/``); ``path`` moves to ``store/`` when the archive next opens (the archive moves
      the bytes, then the rows, see :meth:`Catalog.move_to_store`).
    - ``events``: every fetch, change, quarantine, audit, restore, retire and prune, with its
      run; those before this version are rebuilt from the rows (``detail`` says so).
    - ``restores``: the version an ``archiver restore`` made the one kits get.
    """
    db.execute("ALTER TABLE files ADD COLUMN rendition INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE files ADD COLUMN view TEXT")
    db.execute("UPDATE files SET rendition = COALESCE(resolution, 0) WHERE role = 'video'")
    db.execute("UPDATE files SET view = path WHERE current = 1")
    db.execute("DROP INDEX IF EXISTS files_current")
    db.execute(
        "UPDATE files SET current = (version = (SELECT MAX(o.version) FROM files o"
        " WHERE o.item_id = files.item_id AND o.role = files.role"
        " AND o.rendition = files.rendition))"
    )
    db.execute(
        "CREATE UNIQUE INDEX files_current ON files (item_id, role, rendition) WHERE current = 1"
    )
    db.execute("CREATE INDEX files_sha256 ON files (sha256)")
    for statement in _EVENTS.split(";"):
        if statement.strip():
            db.execute(statement)
    rebuilt = json.dumps({"rebuilt": "from the catalog when it was upgraded"})
    db.execute(
        "INSERT INTO events (at, kind, item_id, role, version, sha256, detail)"
        " SELECT fetched_at, CASE WHEN EXISTS (SELECT 1 FROM files o WHERE o.item_id = f.item_id"
        " AND o.role = f.role AND o.rendition = f.rendition AND o.version < f.version)"
        " THEN 'change' ELSE 'fetch' END, item_id, role, version, sha256, ?"
        " FROM files f ORDER BY fetched_at, item_id, role, version",
        (rebuilt,),
    )
    db.execute(
        "INSERT INTO events (at, kind, item_id, detail) SELECT retired_at, 'retire', id, ?"
        " FROM items WHERE retired_at IS NOT NULL ORDER BY retired_at, id",
        (rebuilt,),
    )


def _migrate_5(db: sqlite3.Connection) -> None:
    """``entry_note``: what the archive last wrote as an item's ``entry.json`` (a digest of
    its entry, the file's size and time), so that a run whose entry is unchanged, and whose
    file is as it was left, neither encodes nor reads it again. NULL until the next run
    writes or confirms it."""
    db.execute("ALTER TABLE items ADD COLUMN entry_note TEXT")


# What a run's outcome depends on: every table but a run's own record of itself (``runs``,
# ``failures``). Left out too: what only history and ``status`` read, which every sync or
# audit writes: an item's ``last_seen``, a file's ``audited_at`` and an audit's own events
# (a kit shows none of them). The triggers' columns are read from the tables when they are
# made: a migration that adds a column makes them again (:func:`_changes_triggers`).
_CHANGES_TABLES = ("meta", "items", "files", "derived", "events", "restores")
_CHANGES_IGNORED = {"items": ("last_seen",), "files": ("audited_at",)}
CHANGES_TRIGGERS = len(_CHANGES_TABLES) * 3


def _changes_triggers(db: sqlite3.Connection) -> None:
    """(Re)make the triggers that move ``changes`` on every change a run depends on."""
    bump = "UPDATE changes SET n = n + 1, token = random();"
    for table in _CHANGES_TABLES:
        for event in ("INSERT", "DELETE", "UPDATE"):
            name = f"changes_{table}_{event.lower()}"
            when = ""
            if event == "UPDATE" and table in _CHANGES_IGNORED:
                columns = [
                    row[1]
                    for row in db.execute(f"PRAGMA table_info({table})")
                    if row[1] not in _CHANGES_IGNORED[table]
                ]
                when = "WHEN " + " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in columns)
            elif event == "INSERT" and table == "events":
                when = "WHEN NEW.kind IS NOT 'audit'"
            db.execute(f"DROP TRIGGER IF EXISTS {name}")
            db.execute(f"CREATE TRIGGER {name} AFTER {event} ON {table} {when} BEGIN {bump} END")


def _migrate_6(db: sqlite3.Connection) -> None:
    """``changes``: one row that every change to what a run depends on moves on (its count
    up, its token to a new random value), by triggers, whoever writes: a sync that finds it
    as the last sync left it knows the catalog is as that sync saw it (:mod:`archiver.settled`).
    The random token tells a catalog put back from a backup, whose count may come round to
    the same number, from the one the count was read from."""
    db.execute("CREATE TABLE changes (n INTEGER NOT NULL, token INTEGER NOT NULL)")
    db.execute("INSERT INTO changes (n, token) VALUES (0, random())")
    _changes_triggers(db)


# Each migration brings the catalog from the version before it to its own (its index + 1).
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _migrate_1,
    _migrate_2,
    _migrate_3,
    _migrate_4,
    _migrate_5,
    _migrate_6,
)
SCHEMA_VERSION = len(MIGRATIONS)


# -- rows --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileRecord:
    """One version of one file of an item, as the catalog records it."""

    item_id: str
    role: str
    version: int
    path: str
    url: str
    final_url: str
    sha256: str
    size: int
    etag: str | None
    last_modified: str | None
    fetched_at: str
    current: bool
    checked_at: str = ""
    resolution: int | None = None
    content_type: str | None = None
    audited_at: str | None = None
    segments: str | None = None  # what the source's segment checksums said of it
    # A video's height as a rendition of its item (0: unknown, and every other role): each
    # rendition has its own versions and its own current one.
    rendition: int = 0
    # Where a current version shows in the item's folder (``media/<id>/video-720p.mp4``, a
    # hard link to its bytes in ``store/``); ``None`` for earlier versions.
    view: str | None = None


def store_path(sha256: str) -> str:
    """Where the archive keeps the bytes of ``sha256``, once, whichever files have them.

    >>> store_path("ab" + "0" * 62)
    'store/ab/ab00000000000000000000000000000000000000000000000000000000000000'
    """
    return f"store/{sha256[:2]}/{sha256}"


@dataclass(frozen=True)
class Event:
    """One thing that happened to the archive, as the catalog recorded it."""

    id: int
    at: str
    kind: str  # fetch, change, refresh, quarantine, audit, restore, retire, prune, upgrade
    item_id: str | None
    role: str | None
    version: int | None
    sha256: str | None
    run_id: int | None
    outcome: str  # success, failure
    detail: dict[str, Any]


@dataclass(frozen=True)
class Derived:
    """What was made from a file's bytes (a poster, its duration), cached by their sha256.

    Keyed by the source's sha256 and the recipe's version, so an unchanged video is never
    probed twice and a changed recipe makes its outputs again.
    """

    sha256: str
    kind: str
    version: int
    path: str | None
    file_sha256: str | None
    file_size: int | None
    duration: float | None
    width: int | None
    height: int | None


@dataclass(frozen=True)
class Pruned:
    """An item deleted (or, in a dry run, to be deleted) by ``archiver prune``."""

    item_id: str
    title: str
    retired_at: str
    files: int
    size: int


@dataclass(frozen=True)
class RunRow:
    """One run of a command on the archive; ``outcome`` is None while it runs or if it died."""

    id: int
    command: str
    started_at: str
    finished_at: str | None
    outcome: str | None
    summary: dict[str, Any] | None


@dataclass(frozen=True)
class FailureRow:
    """A file that failed in a run."""

    item_id: str
    title: str | None
    role: str
    url: str | None
    reason: str
    at: str


@dataclass(frozen=True)
class AuditRow:
    """A held file as an audit reads it."""

    item_id: str
    role: str
    version: int
    path: str
    sha256: str
    size: int
    view: str | None = None


_Row = TypeVar("_Row", FileRecord, AuditRow)

_FILE_COLUMNS = (
    "item_id, role, version, path, url, final_url, sha256, size, etag, last_modified,"
    " fetched_at, current, checked_at, resolution, content_type, audited_at, segments,"
    " rendition, view"
)
_EVENT_COLUMNS = "id, at, kind, item_id, role, version, sha256, run_id, outcome, detail"
_DERIVED_COLUMNS = "sha256, kind, version, path, file_sha256, file_size, duration, width, height"


def _file_record(row: sqlite3.Row) -> FileRecord:
    return FileRecord(
        item_id=row["item_id"],
        role=row["role"],
        version=row["version"],
        path=row["path"],
        url=row["url"],
        final_url=row["final_url"],
        sha256=row["sha256"],
        size=row["size"],
        etag=row["etag"],
        last_modified=row["last_modified"],
        fetched_at=row["fetched_at"],
        current=bool(row["current"]),
        checked_at=row["checked_at"],
        resolution=row["resolution"],
        content_type=row["content_type"],
        audited_at=row["audited_at"],
        segments=row["segments"],
        rendition=row["rendition"],
        view=row["view"],
    )


def _json_object(text: str | None) -> dict[str, Any] | None:
    """A JSON object the catalog stored as text, or ``None`` for none or anything else."""
    found: object = None
    with contextlib.suppress(TypeError, ValueError):
        found = json.loads(text) if text else None
    return found if isinstance(found, dict) else None


def _event(row: sqlite3.Row) -> Event:
    return Event(
        id=row["id"],
        at=row["at"],
        kind=row["kind"],
        item_id=row["item_id"],
        role=row["role"],
        version=row["version"],
        sha256=row["sha256"],
        run_id=row["run_id"],
        outcome=row["outcome"],
        detail=_json_object(row["detail"]) or {},
    )


def _derived_record(row: sqlite3.Row) -> Derived:
    return Derived(**{key: row[key] for key in row.keys()})  # noqa: SIM118 - Row has no iter of keys


def _row_fault(path: object, sha256: object, under: tuple[str, ...]) -> str | None:
    """What is wrong with a row's ``path`` (``None`` for no file) and ``sha256``, or ``None``.

    A path must be relative, in ``/``-separated parts none of which is empty, ``.``, ``..`` or
    holds a NUL or a backslash, and start with the parts ``under``, plus at least one more.

    >>> _row_fault("media/a/v.mp4", "0" * 64, ("media", "a"))
    >>> _row_fault("../victim/fiche.pdf", "0" * 64, ("media", "a"))
    "path '../victim/fiche.pdf' is not a file of media/a/"
    """
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        return f"sha256 {sha256!r} is not a sha256"
    if path is None:
        return None
    parts = path.split("/") if isinstance(path, str) else []
    if (
        len(parts) <= len(under)
        or tuple(parts[: len(under)]) != under
        or any(p in ("", ".", "..") or "\x00" in p or "\\" in p for p in parts)
    ):
        return f"path {path!r} is not a file of {'/'.join(under)}/"
    return None


def _run(row: sqlite3.Row | None) -> RunRow | None:
    if row is None:
        return None
    return RunRow(
        id=row["id"],
        command=row["command"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        outcome=row["outcome"],
        summary=_json_object(row["summary"]),
    )


# A run asks a question of every file (is it held? its poster? restored?): after this many
# asked one at a time since the catalog last changed, and at least one for every
# READ_AT_ONCE_SHARE rows the last read at once held, the next is answered from one read of
# them all. Reading them all costs about as much as that many questions: a run that asks few
# between writes (a download, which records each file as it comes) never pays for it.
READ_AT_ONCE_AFTER = 64
READ_AT_ONCE_SHARE = 16

_T = TypeVar("_T")


class _AtOnce(Generic[_T]):
    """One table read whole, when enough of its questions have been asked since this
    connection last changed anything (``changes``: its ``total_changes``), and kept until it
    does: a ski rental, so that reading it whole never costs more than a share of the
    questions it answers."""

    def __init__(self, read: Callable[[], _T], size: Callable[[_T], int]) -> None:
        self._read, self._size = read, size
        self._held: tuple[int, _T] | None = None
        self._asked = 0  # questions asked one at a time since ``_since`` changes
        self._since = -1
        self._last_size = 0  # rows the last read held
        self._unreadable_at = -1  # changes when a read met a damaged row

    def get(self, changes: int) -> _T | None:
        """The table as of ``changes``, or ``None``: ask this question of the catalog.

        A table that cannot be read whole (a damaged row of some item) is asked question by
        question until it changes: only the items asked about meet the damage.
        """
        if self._held is not None:
            if self._held[0] == changes:
                return self._held[1]
            self._last_size, self._held = self._size(self._held[1]), None
        if self._since != changes:
            self._since, self._asked = changes, 0
        self._asked += 1
        wanted = max(READ_AT_ONCE_AFTER, self._last_size // READ_AT_ONCE_SHARE)
        if self._asked < wanted or self._unreadable_at == changes:
            return None
        try:
            self._held = (changes, self._read())
        except ArchiveError:
            self._unreadable_at = changes
            return None
        return self._held[1]


@dataclass(frozen=True)
class _Files:
    """Every version of every file by item (in role and version order), and the restores."""

    by_item: dict[str, list[FileRecord]]
    restores: dict[tuple[str, str], int]
    size: int

    def current(self, item_id: str) -> Iterator[FileRecord]:
        return (r for r in self.by_item.get(item_id, ()) if r.current)

    def restored(self, item_id: str, role: str) -> FileRecord | None:
        version = self.restores.get((item_id, role))
        found = (r for r in self.by_item.get(item_id, ()) if r.role == role)
        return next((r for r in found if r.version == version), None)


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
        if db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
            db.execute("PRAGMA query_only=ON")
            return db
    except sqlite3.Error:
        pass
    if db is not None:  # older: a run migrates it first; newer: the usual open says so
        db.close()
    return None


class Catalog:
    """An open catalog. Safe to share between the event loop and worker threads: one lock
    serialises every statement and transaction.

    While :attr:`exclusive` (its archive's lock is held: no other process writes it), a run
    of many questions about files is answered from one read of them all
    (:data:`READ_AT_ONCE_AFTER`), kept until this connection next changes anything: its
    answers are those of the queries, without a query each.
    """

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        """``read_only``: a glance (``status``, a dry run) that should work for a user who
        may read the archive but not write it (a monitoring account): the catalog is opened
        read-only when it can be (see :func:`_read_only`), and as every run opens it if not
        (an older schema to migrate first, or no way to read it without writing)."""
        self.path = path
        self._lock = threading.RLock()
        self.exclusive = False
        self._files = _AtOnce(self._read_files, lambda files: files.size)
        self._every_derived = _AtOnce(self._read_derived, len)
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
            self._migrate()
        except sqlite3.Error as exc:
            with contextlib.suppress(Exception):
                self._db.close()
            if disk_refused(exc):  # the disk, not the catalog: exit 1, as for any full disk
                reason = f"cannot open the catalog: {describe_sqlite_error(exc)}"
                raise StorageError(path, reason) from exc
            hint = DAMAGED_HINT if damaged(exc) else None
            raise ArchiveError(path, f"cannot open the catalog: {exc}", hint=hint) from exc

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"made by a newer archiver (catalog version {version}, this one knows"
                f" {SCHEMA_VERSION}); upgrade archiver"
            )
        for number in range(version + 1, SCHEMA_VERSION + 1):
            with self._db:  # the migration and the version it reaches: one transaction
                self._db.execute("BEGIN IMMEDIATE")  # DDL too: Python begins only before DML
                MIGRATIONS[number - 1](self._db)
                self._db.execute(f"PRAGMA user_version = {number:d}")

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

    # -- many questions, one read ----------------------------------------------------------------

    def _files_at_once(self) -> _Files | None:
        """Every file read at once, if this process is the only writer and has asked enough
        of them since the catalog last changed (:class:`_AtOnce`); else ``None``."""
        if not self.exclusive:
            return None
        with self._lock:
            return self._files.get(self._db.total_changes)

    def _derived_at_once(self) -> dict[tuple[str, str, int], Derived] | None:
        """Every derived row read at once, by its key; as :meth:`_files_at_once`."""
        if not self.exclusive:
            return None
        with self._lock:
            return self._every_derived.get(self._db.total_changes)

    def _read_files(self) -> _Files:
        by_item: dict[str, list[FileRecord]] = {}
        files = self.every_file()
        for record in files:
            by_item.setdefault(record.item_id, []).append(record)
        return _Files(by_item, self.restores(), len(files))

    def _read_derived(self) -> dict[tuple[str, str, int], Derived]:
        return {(d.sha256, d.kind, d.version): d for d in self.every_derived()}

    def restores(self) -> dict[tuple[str, str], int]:
        """The version ``archiver restore`` made the one kits get, by ``(item, role)``."""
        rows = self._all("SELECT item_id, role, version FROM restores")
        return {(row["item_id"], row["role"]): row["version"] for row in rows}

    def every_derived(self) -> list[Derived]:
        """Every derived row: what was made from each file's bytes, what FFmpeg read of them."""
        rows = self._all(f"SELECT {_DERIVED_COLUMNS} FROM derived ORDER BY sha256, kind, version")  # noqa: S608
        return [self._derived(row) for row in rows]

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
        """Where the catalog's count of changes stands, with its token (see :func:`_migrate_6`):
        equal twice, nothing a run depends on changed between. ``None`` when it cannot be
        told: its row or one of its triggers gone (a person's edit), nothing to compare."""
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

    # -- events --------------------------------------------------------------------------------

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

    def every_file(self) -> list[FileRecord]:
        """Every version of every file of the archive (an export's objects)."""
        rows = self._all(
            f"SELECT {_FILE_COLUMNS} FROM files ORDER BY item_id, role, version"  # noqa: S608
        )
        return [self._file(row) for row in rows]

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

    # -- derived files -------------------------------------------------------------------------

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
