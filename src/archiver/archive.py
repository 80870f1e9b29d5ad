"""The archive: media in a folder tree a person can browse, state in an embedded SQLite catalog.

Layout of an archive folder::

    catalog.sqlite               what is held: every version of every file, with provenance
    archiver.lock                held (flock) by the run using the archive; names its PID
    media/<id>/entry.json        the manifest entry: title, transcript, credits, licence
    media/<id>/<name>            the current version of each file (video, PDFs)
    media/<id>/versions/<n>/<name>   earlier versions, kept when upstream changed
    partial/<id>/<role>.part     bytes of a download in progress (same filesystem: atomic rename)
    partial/<id>/<role>.json     its sidecar: URL, validators, expected length
    quarantine/<id>/<stamp>-<name>   bytes that failed a check, kept for inspection
    derived/<sha256[:2]>/<sha256>-<name>   made from a file once: posters, re-encodes

A file reaches ``media/`` only by an atomic rename of a complete, checked, fsync'ed file; the
catalog row that records it is written right after, in one transaction.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import shutil
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .entry import Entry
from .errors import ArchiveError, LockHeld
from .files import atomic_write_many, fsync_dir

__all__ = [
    "TIME_FORMAT",
    "Archive",
    "Derived",
    "FetchedFile",
    "FileRecord",
    "PartialState",
    "Pruned",
    "utc_now",
]

CATALOG_NAME = "catalog.sqlite"
LOCK_NAME = "archiver.lock"
CATALOG_SCHEMA = 1
# The derived row that holds what FFmpeg read of a video's bytes: no file, only facts.
MEDIA_FACTS = "probe"
MEDIA_FACTS_VERSION = 1

_SCHEMA = """
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
    resolution INTEGER,
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


# How the catalog writes times: ISO 8601, UTC, to the second; such strings sort as times do.
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def utc_now() -> str:
    """The current time as the catalog stores it."""
    return dt.datetime.now(dt.UTC).strftime(TIME_FORMAT)


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


def _media_facts(
    sha256: str, duration: float | None, width: int | None, height: int | None
) -> Derived:
    """The derived row of what FFmpeg read of a file: facts, no file."""
    return Derived(
        sha256, MEDIA_FACTS, MEDIA_FACTS_VERSION, None, None, None, duration, width, height
    )


@dataclass(frozen=True)
class FetchedFile:
    """What a finished download knows of the bytes it wrote, for the catalog."""

    url: str
    final_url: str
    sha256: str
    size: int
    etag: str | None
    last_modified: str | None
    content_type: str | None
    resolution: int | None = None
    # What FFmpeg read of a video when the download confirmed it plays: (duration, width,
    # height). Recorded with the file, so the kit never reads it again.
    media: tuple[float | None, int | None, int | None] | None = None


@dataclass(frozen=True)
class PartialState:
    """The sidecar of a partial download: which bytes the partial file holds.

    A partial is resumed only if the URL is the same and a validator (ETag or Last-Modified)
    was recorded, so that ``If-Range`` can refuse to splice two versions.
    """

    url: str
    etag: str | None
    last_modified: str | None
    length: int | None

    def to_json(self) -> bytes:
        return json.dumps(self.__dict__, sort_keys=True).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> PartialState | None:
        try:
            raw = json.loads(data)
            state = cls(
                url=raw["url"],
                etag=raw.get("etag"),
                last_modified=raw.get("last_modified"),
                length=raw.get("length"),
            )
        except (ValueError, KeyError, TypeError):
            return None
        valid = (
            isinstance(state.url, str)
            and isinstance(state.etag, str | None)
            and isinstance(state.last_modified, str | None)
            and (state.length is None or (isinstance(state.length, int) and state.length >= 0))
        )
        return state if valid else None


@dataclass(frozen=True)
class Pruned:
    """An item deleted (or, in a dry run, to be deleted) by ``archiver prune``."""

    item_id: str
    title: str
    retired_at: str
    files: int
    size: int


class Archive:
    """An archive folder: its catalog, its lock, and where each file goes."""

    @classmethod
    def existing(cls, root: Path) -> Archive:
        """Open an archive that must already exist (for reports: never create one)."""
        if not (root / CATALOG_NAME).is_file():
            raise ArchiveError(root, "no archive here (no catalog.sqlite)")
        return cls(root)

    def __init__(self, root: Path) -> None:
        self.root = root
        self.media = root / "media"
        self.partials = root / "partial"
        self.quarantine_dir = root / "quarantine"
        try:
            for folder in (self.media, self.partials, self.quarantine_dir):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ArchiveError(root, f"cannot create the archive: {exc.strerror or exc}") from exc
        self._db = self._open_catalog(root / CATALOG_NAME)
        self._lock_fd: int | None = None

    # -- catalog -------------------------------------------------------------------------------

    @staticmethod
    def _open_catalog(path: Path) -> sqlite3.Connection:
        try:
            # The download may run in a worker thread (see download._run) while the opening
            # thread waits for it: one user at a time, so sharing the connection is safe.
            db = sqlite3.connect(path, timeout=30, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            with db:
                db.executescript(_SCHEMA)
                columns = {r[1] for r in db.execute("PRAGMA table_info(files)")}
                if "resolution" not in columns:  # archives made before resolutions were chosen
                    db.execute("ALTER TABLE files ADD COLUMN resolution INTEGER")
                row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
                if row is None:
                    db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(CATALOG_SCHEMA),))
                elif row[0] != str(CATALOG_SCHEMA):
                    raise ArchiveError(
                        path, f"catalog schema {row[0]} is not {CATALOG_SCHEMA}; upgrade archiver"
                    )
        except sqlite3.Error as exc:
            raise ArchiveError(path, f"cannot open the catalog: {exc}") from exc
        return db

    def close(self) -> None:
        self.unlock()
        self._db.close()

    @property
    def db(self) -> sqlite3.Connection:
        """The catalog, for the archive's own reports (status, audits)."""
        return self._db

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- lock ----------------------------------------------------------------------------------

    def lock(self) -> None:
        """Take the archive's lock for this process, or raise :class:`LockHeld` at once.

        ``flock`` is released by the kernel when the process dies, SIGKILL included, so a
        crashed run never leaves a stale lock behind.
        """
        path = self.root / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip()
            os.close(fd)
            raise LockHeld(self.root, int(holder) if holder.isdigit() else None) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    @contextlib.contextmanager
    def locked(self) -> Iterator[Archive]:
        self.lock()
        try:
            yield self
        finally:
            self.unlock()

    # -- items and files -----------------------------------------------------------------------

    def item_dir(self, item_id: str) -> Path:
        return self.media / item_id

    def record_item(self, entry: Entry) -> None:
        """Note that ``entry`` is in the collection; keep its manifest entry beside its media."""
        self.record_items([entry])

    def record_items(self, entries: Sequence[Entry]) -> None:
        """:meth:`record_item` for a whole collection: one transaction, the files written
        together."""
        now = utc_now()
        changed = []
        for entry in entries:
            data = json.dumps(entry.to_json(), ensure_ascii=False, indent=2, sort_keys=True)
            path = self.item_dir(entry.id) / "entry.json"
            encoded = (data + "\n").encode("utf-8")
            try:
                if not path.is_file() or path.read_bytes() != encoded:
                    changed.append((path, encoded))
            except OSError as exc:
                raise ArchiveError(path, f"cannot read: {exc.strerror or exc}") from exc
        try:
            atomic_write_many(changed)
        except OSError as exc:
            where = Path(exc.filename) if exc.filename else self.root / "media"
            raise ArchiveError(where, f"cannot write: {exc.strerror or exc}") from exc
        with self._db:
            self._db.executemany(
                "INSERT INTO items (id, title, first_seen, last_seen) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(id) DO UPDATE SET title=excluded.title, last_seen=excluded.last_seen,"
                " retired_at=NULL",
                [(entry.id, entry.title, now, now) for entry in entries],
            )

    def current(self, item_id: str, role: str) -> FileRecord | None:
        """The current version of a file, as recorded (whether or not it is still on disk)."""
        row = self._db.execute(
            f"{_SELECT_FILES} WHERE item_id=? AND role=? AND current=1",
            (item_id, role),
        ).fetchone()
        return _record(row) if row else None

    def current_roles(self, item_id: str, prefix: str) -> list[FileRecord]:
        """The current files of an item whose role starts with ``prefix`` (``caption_``)."""
        rows = self._db.execute(
            f"{_SELECT_FILES} WHERE item_id=? AND current=1 AND substr(role, 1, ?)=? ORDER BY role",
            (item_id, len(prefix), prefix),
        ).fetchall()
        records = [_record(row) for row in rows]
        return [r for r in records if self.held(item_id, r.role) is not None]

    def held_versions(self, item_id: str, role: str) -> list[FileRecord]:
        """Every version of a file that is on disk at its recorded size."""
        held = []
        for record in self.versions(item_id, role):
            try:
                if (self.root / record.path).stat().st_size == record.size:
                    held.append(record)
            except OSError:
                continue
        return held

    def versions(self, item_id: str, role: str) -> list[FileRecord]:
        rows = self._db.execute(
            f"{_SELECT_FILES} WHERE item_id=? AND role=? ORDER BY version",
            (item_id, role),
        ).fetchall()
        return [_record(row) for row in rows]

    def held(self, item_id: str, role: str, url: str | None = None) -> FileRecord | None:
        """The current version, if it is on disk at its recorded size (and came from ``url``).

        This is the catalog-trusting check that makes a second run fetch nothing: the full
        sha256 is the job of ``archiver verify``, not of every run.
        """
        record = self.current(item_id, role)
        if record is None or (url is not None and record.url != url):
            return None
        try:
            size = (self.root / record.path).stat().st_size
        except OSError:
            return None
        return record if size == record.size else None

    def mark_checked(self, record: FileRecord) -> None:
        """Note that upstream confirmed this version unchanged just now."""
        with self._db:
            self._db.execute(
                "UPDATE files SET checked_at=? WHERE item_id=? AND role=? AND version=?",
                (utc_now(), record.item_id, record.role, record.version),
            )

    def partial_paths(self, item_id: str, role: str) -> tuple[Path, Path]:
        folder = self.partials / item_id
        return folder / f"{role}.part", folder / f"{role}.json"

    def commit(
        self, item_id: str, role: str, name: str, partial: Path, fetched: FetchedFile
    ) -> FileRecord:
        """Move a complete, checked partial file into place and record it.

        If the current version has other bytes, it is moved to ``versions/<n>/`` first and
        stays in the catalog: a changed upstream file never replaces the one held.
        """
        folder = self.item_dir(item_id)
        dest = folder / name
        now = utc_now()
        old = self.current(item_id, role)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if old is not None and old.sha256 == fetched.sha256:
                os.replace(partial, self.root / old.path)
                fsync_dir((self.root / old.path).parent)
                # The same bytes again (maybe from a new URL): the version stays, its
                # provenance is brought up to date.
                values = (fetched.url, fetched.etag, fetched.last_modified, fetched.final_url, now)
                with self._db:
                    self._db.execute(
                        "UPDATE files SET url=?, etag=?, last_modified=?, final_url=?,"
                        " checked_at=? WHERE item_id=? AND role=? AND version=?",
                        (*values, item_id, role, old.version),
                    )
                    self._insert_media_facts(fetched)
                return self.current(item_id, role) or old
            old_path: str | None = None
            if old is not None:
                old_path = self._retire_version(old)
            os.replace(partial, dest)
            fsync_dir(folder)
        except OSError as exc:
            raise ArchiveError(dest, f"cannot store the file: {exc.strerror or exc}") from exc
        version = (old.version + 1) if old else 1
        with self._db:
            if old is not None:
                self._db.execute(
                    "UPDATE files SET current=0, path=? WHERE item_id=? AND role=? AND version=?",
                    (old_path, item_id, role, old.version),
                )
            self._db.execute(
                "INSERT INTO files (item_id, role, version, current, path, url, final_url, sha256,"
                " size, etag, last_modified, content_type, fetched_at, checked_at, resolution)"
                " VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    item_id,
                    role,
                    version,
                    dest.relative_to(self.root).as_posix(),
                    fetched.url,
                    fetched.final_url,
                    fetched.sha256,
                    fetched.size,
                    fetched.etag,
                    fetched.last_modified,
                    fetched.content_type,
                    now,
                    now,
                    fetched.resolution,
                ),
            )
            self._insert_media_facts(fetched)
        record = self.current(item_id, role)
        assert record is not None  # noqa: S101 - inserted just above, in this process
        return record

    def _retire_version(self, old: FileRecord) -> str:
        """Move the file of a version being superseded to ``versions/<n>/``; return its path."""
        source = self.root / old.path
        target = self.item_dir(old.item_id) / "versions" / str(old.version) / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            if source.stat().st_size == old.size:
                os.replace(source, target)
                fsync_dir(target.parent)
        except FileNotFoundError:
            pass  # moved already by a run that died before recording it, or lost: verify says
        return target.relative_to(self.root).as_posix()

    def quarantine(self, item_id: str, name: str, partial: Path) -> Path:
        """Keep bytes that failed a check out of ``media/``, for a person to inspect."""
        stamp = utc_now().replace(":", "")
        target = self.quarantine_dir / item_id / f"{stamp}-{name}"
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(partial, target)
        except OSError as exc:
            raise ArchiveError(target, f"cannot quarantine: {exc.strerror or exc}") from exc
        return target

    def retire_missing(self, present: set[str]) -> list[tuple[str, str]]:
        """Mark as retired (today) the items no longer in the collection: ``[(id, title)]``.

        Their files stay in the archive; only ``archiver prune`` deletes them.
        """
        rows = self._db.execute("SELECT id, title FROM items WHERE retired_at IS NULL").fetchall()
        gone = [(str(item), str(title)) for item, title in rows if item not in present]
        if gone:
            now = utc_now()
            with self._db:
                self._db.executemany(
                    "UPDATE items SET retired_at=? WHERE id=?", [(now, item) for item, _ in gone]
                )
        return gone

    def prune(self, retired_before: str, *, dry_run: bool = False) -> list[Pruned]:
        """Delete every file of the items retired before ``retired_before`` (ISO date)."""
        rows = self._db.execute(
            "SELECT i.id, i.title, i.retired_at, COUNT(f.version), COALESCE(SUM(f.size), 0)"
            " FROM items i LEFT JOIN files f ON f.item_id = i.id"
            " WHERE i.retired_at IS NOT NULL AND i.retired_at < ? GROUP BY i.id ORDER BY i.id",
            (retired_before,),
        ).fetchall()
        pruned = [Pruned(str(r[0]), str(r[1]), str(r[2]), int(r[3]), int(r[4])) for r in rows]
        if dry_run:
            return pruned
        for item in pruned:
            for folder in (self.item_dir(item.item_id), self.partials / item.item_id):
                shutil.rmtree(folder, ignore_errors=True)
            with self._db:
                self._db.execute("DELETE FROM files WHERE item_id=?", (item.item_id,))
                self._db.execute("DELETE FROM items WHERE id=?", (item.item_id,))
        self._drop_orphan_derived()
        return pruned

    def _drop_orphan_derived(self) -> None:
        rows = self._db.execute(
            "SELECT sha256, kind, version, path FROM derived"
            " WHERE sha256 NOT IN (SELECT sha256 FROM files)"
        ).fetchall()
        for sha256, kind, version, path in rows:
            if path:
                with contextlib.suppress(FileNotFoundError):
                    (self.root / path).unlink()
            with self._db:
                self._db.execute(
                    "DELETE FROM derived WHERE sha256=? AND kind=? AND version=?",
                    (sha256, kind, version),
                )

    # -- derived files -------------------------------------------------------------------------

    def derived_path(self, sha256: str, name: str) -> Path:
        return self.root / "derived" / sha256[:2] / f"{sha256}-{name}"

    def derived(self, sha256: str, kind: str, version: int) -> Derived | None:
        row = self._db.execute(
            "SELECT sha256, kind, version, path, file_sha256, file_size, duration, width, height"
            " FROM derived WHERE sha256=? AND kind=? AND version=?",
            (sha256, kind, version),
        ).fetchone()
        if row is None:
            return None
        derived = Derived(*row)
        if derived.path and not (self.root / derived.path).is_file():
            return None  # its file was removed: make it again
        return derived

    def media_facts(self, sha256: str) -> Derived | None:
        """What FFmpeg read of these bytes (duration, size) when they were confirmed playable."""
        return self.derived(sha256, MEDIA_FACTS, MEDIA_FACTS_VERSION)

    def _insert_media_facts(self, fetched: FetchedFile) -> None:
        if fetched.media is not None:
            self._insert_derived(_media_facts(fetched.sha256, *fetched.media))

    def record_media_facts(
        self, sha256: str, duration: float | None, width: int | None, height: int | None
    ) -> Derived:
        facts = _media_facts(sha256, duration, width, height)
        self.record_derived(facts)
        return facts

    def record_derived(self, derived: Derived) -> None:
        with self._db:
            self._insert_derived(derived)

    def _insert_derived(self, derived: Derived) -> None:
        """Within the caller's transaction."""
        self._db.execute(
            "INSERT OR REPLACE INTO derived VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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

    # -- runs ----------------------------------------------------------------------------------

    def start_run(self, command: str) -> int:
        with self._db:
            cursor = self._db.execute(
                "INSERT INTO runs (command, started_at) VALUES (?, ?)", (command, utc_now())
            )
        return int(cursor.lastrowid or 0)

    def record_failure(
        self, run_id: int, item_id: str, role: str, url: str | None, reason: str
    ) -> None:
        with self._db:
            self._db.execute(
                "INSERT INTO failures VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, item_id, role, url, reason, utc_now()),
            )

    def finish_run(self, run_id: int, outcome: str, summary: dict[str, object]) -> None:
        with self._db:
            self._db.execute(
                "UPDATE runs SET finished_at=?, outcome=?, summary=? WHERE id=?",
                (utc_now(), outcome, json.dumps(summary, sort_keys=True), run_id),
            )


_SELECT_FILES = (
    "SELECT item_id, role, version, path, url, final_url, sha256, size, etag, last_modified,"
    " fetched_at, current, checked_at, resolution FROM files"
)


def _record(row: tuple[object, ...]) -> FileRecord:
    (
        item_id,
        role,
        version,
        path,
        url,
        final_url,
        sha256,
        size,
        etag,
        modified,
        at,
        cur,
        chk,
        res,
    ) = row
    return FileRecord(
        item_id=str(item_id),
        role=str(role),
        version=int(version),  # type: ignore[call-overload]
        path=str(path),
        url=str(url),
        final_url=str(final_url),
        sha256=str(sha256),
        size=int(size),  # type: ignore[call-overload]
        etag=etag if isinstance(etag, str) else None,
        last_modified=modified if isinstance(modified, str) else None,
        fetched_at=str(at),
        current=bool(cur),
        checked_at=str(chk),
        resolution=int(res) if isinstance(res, int) else None,
    )
