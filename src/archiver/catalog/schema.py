"""The catalog's schema, and the ordered migrations that bring a catalog of any earlier
version up to this release's.

A catalog's version is its ``PRAGMA user_version``: each migration of :data:`MIGRATIONS`, in
order, is applied in one transaction with the version it reaches (:func:`migrate`), so a
catalog is always at one version or the next, never between. Kept apart from the queries:
the schema's history is read once per open, and changes only by a new migration appended
here.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable

__all__ = ["CHANGES_TRIGGERS", "MIGRATIONS", "SCHEMA_VERSION", "is_current", "migrate"]

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
      the bytes, then the rows, see :meth:`~archiver.catalog.Catalog.move_to_store`).
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
    its entry, the file's size, times and inode), so that a run whose entry is unchanged, and whose
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


def migrate(db: sqlite3.Connection) -> None:
    """Bring the catalog open on ``db`` to :data:`SCHEMA_VERSION`: each migration it lacks, in
    order, each in one transaction with the version it reaches. A catalog made by a newer
    archiver is refused rather than guessed at."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(
            f"made by a newer archiver (catalog version {version}, this one knows"
            f" {SCHEMA_VERSION}); upgrade archiver"
        )
    for number in range(version + 1, SCHEMA_VERSION + 1):
        with db:  # the migration and the version it reaches: one transaction
            db.execute("BEGIN IMMEDIATE")  # DDL too: Python begins only before DML
            MIGRATIONS[number - 1](db)
            db.execute(f"PRAGMA user_version = {number:d}")


def is_current(db: sqlite3.Connection) -> bool:
    """Whether the catalog open on ``db`` is at this release's version: nothing to migrate."""
    return bool(db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION)
