"""The archive: media in a folder tree a person can browse, state in an embedded SQLite catalog.

Layout of an archive folder::

    catalog.sqlite               what is held: every version of every file, with provenance
                                 (see :mod:`archiver.catalog`, the only module that speaks SQL)
    archiver.lock                held (flock) by the run using the archive; names its PID
    manifest.json                the manifest of the last sync
    media/<id>/entry.json        the manifest entry: title, transcript, credits, licence
    media/<id>/<name>            the current version of each file, named for its role
                                 (video-720p.mp4, audio.mp4, fiche.pdf, captions-fr.vtt)
    media/<id>/versions/<n>/<name>   earlier versions, kept when upstream changed
    partial/<id>/<role>.part     bytes of a download in progress (same filesystem: atomic rename)
    partial/<id>/<role>.json     its sidecar: URL, validators, expected length
    quarantine/<id>/<stamp>-<name>   bytes that failed a check, kept for inspection
    derived/<sha256[:2]>/<sha256>-<name>   made from a file once: posters, re-encodes
    peertube/<uuid>.json         the PeerTube API's last answer about a video

A file reaches ``media/`` only by an atomic rename of a complete, checked, fsync'ed file; the
catalog row that records it is written right after, in one transaction. Every ``OSError`` on
the way is mapped to :class:`~archiver.errors.StorageError` naming the file. An id, a role or
a name becomes a path only once it is known to be one safe path segment, and no name another
file holds is written over.

Nothing outside the archive is touched through it: before archiver writes, replaces, removes
or reads a file below the root, it checks that no part of the path between the root and the
file is a symbolic link (a link at ``media/<id>`` would have a download replace the files of
the folder it points to). A link among the archive's own folders (``media/``, ``partial/``…)
or at its catalog refuses the archive as a whole (:class:`~archiver.errors.ArchiveError`,
exit 2); one deeper down fails the item whose path it is on (:class:`StorageError`, exit 1),
and ``verify`` names it as a problem. The root itself may be a link: the user named it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import errno
import fcntl
import json
import logging
import os
import re
import shutil
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .catalog import (
    MEDIA_FACTS,
    MEDIA_FACTS_VERSION,
    Catalog,
    Derived,
    FileRecord,
    Pruned,
    format_time,
    utc_now,
)
from .entry import Entry
from .errors import ArchiveError, LockHeld, StorageError, describe_os_error, writing
from .files import atomic_write_many, fsync_dir, unsafe_target
from .names import is_safe_id

__all__ = [
    "AUDIT_EVERY_DAYS",
    "Archive",
    "Derived",
    "FetchedFile",
    "FileRecord",
    "PartialState",
    "Pruned",
    "archive_status",
    "utc_now",
]

log = logging.getLogger(__name__)

CATALOG_NAME = "catalog.sqlite"
LOCK_NAME = "archiver.lock"
# The catalog and the files SQLite keeps beside it: none may be a link or a special file.
_CATALOG_FILES = ("", "-wal", "-shm", "-journal")
# The archive's own folders: a link in their place would take every item's files elsewhere.
_FOLDERS = ("media", "partial", "quarantine", "derived", "peertube")
LINK_REFUSED = "a symbolic link; links inside the archive are never followed"
LINK_HINT = (
    "an archive keeps its files inside its folder: move what the link points to into its"
    " place, or remove the link"
)
CATALOG_LOST_HINT = (
    "restore catalog.sqlite from a backup (the files in media/ stay as they are); a new"
    " catalog starts only in an archive folder whose media/ is empty"
)
# A role as it names a partial file: ``video``, ``fiche_pdf``, ``caption_pt-BR``.
_ROLE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
# A file name in an item's folder: archiver's own (``video-720p.mp4``, ``captions-fr.vtt``) or
# one an earlier release made from a URL with :func:`~archiver.names.safe_filename`.
_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,90}(?:\.[a-z0-9]{1,8})?")
_SHA256 = re.compile(r"[0-9a-f]{64}")
# How many names a file tries (``fiche.pdf``, ``fiche-2.pdf``…) before the archive gives up.
_NAME_TRIES = 20
# A file not audited for this long is due for its next fixity audit.
AUDIT_EVERY_DAYS = 30


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
    # What the source's segment checksums said: "verified", "not published", or
    # "not verified: <why>"; None for files that have none (PDFs, images).
    segments: str | None = None


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


class Archive:
    """An archive folder: its catalog, its lock, and where each file goes."""

    @classmethod
    def existing(cls, root: Path) -> Archive:
        """Open an archive that must already exist (for reports: never create one)."""
        catalog = root / CATALOG_NAME
        if not catalog.is_file():
            _refuse_lost_catalog(catalog, root / "media")
            raise ArchiveError(root, "no archive here (no catalog.sqlite)")
        return cls(root)

    def __init__(self, root: Path) -> None:
        self.root = root
        self.media = root / "media"
        self.partials = root / "partial"
        self.quarantine_dir = root / "quarantine"
        for name in _FOLDERS:
            _refuse_unsafe_folder(root / name)
        _refuse_lost_catalog(root / CATALOG_NAME, self.media)
        try:
            for folder in (self.media, self.partials, self.quarantine_dir):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            reason = f"cannot create the archive: {describe_os_error(exc)}"
            raise ArchiveError(exc.filename or root, reason) from exc
        for suffix in _CATALOG_FILES:
            path = root / f"{CATALOG_NAME}{suffix}"
            refused = unsafe_target(path)
            if refused is not None:  # SQLite would follow a link, and write where it points
                reason = f"not usable as the archive's catalog: {refused}"
                raise ArchiveError(path, reason, hint=LINK_HINT)
        self.catalog = Catalog(root / CATALOG_NAME)
        self._lock_fd: int | None = None
        self._run_unrecorded = False  # warned already that the catalog cannot note this run
        self._links_named: set[str] = set()  # links said once, however often they are met

    def close(self) -> None:
        self.unlock()
        self.catalog.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- lock ----------------------------------------------------------------------------------

    def lock(self) -> None:
        """Take the archive's lock for this process, or raise :class:`LockHeld` at once.

        ``flock`` is released by the kernel when the process dies, SIGKILL included, so a
        crashed run never leaves a stale lock behind. The lock file is opened without following
        a link, and must be a regular file: the PID written into it would otherwise truncate
        whatever a link points at, and a device or a pipe is no lock.
        """
        path = self.root / LOCK_NAME
        refused = unsafe_target(path)
        if refused is not None:
            raise ArchiveError(path, f"not usable as the archive's lock: {refused}")
        # O_NONBLOCK: a FIFO put there in the meantime must not hang the open.
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(path, flags, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # made a link between the check and the open
                reason = "not usable as the archive's lock: a symbolic link"
                raise ArchiveError(path, reason) from exc
            reason = f"cannot take the archive's lock: {describe_os_error(exc)}"
            raise StorageError(path, reason) from exc
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            reason = "not usable as the archive's lock: not a regular file"
            raise ArchiveError(path, reason)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_holder(fd)
            os.close(fd)
            raise LockHeld(self.root, holder) from None
        except OSError as exc:  # a file system without locks (some network shares)
            os.close(fd)
            reason = f"cannot take the archive's lock: {describe_os_error(exc)}"
            raise StorageError(path, reason) from exc
        # The PID is a courtesy to whoever meets the lock held; the flock is the lock. A full
        # disk, which may refuse even these few bytes, must not stop a run that frees space
        # (prune) or only reads (verify).
        with contextlib.suppress(OSError):
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
        """The folder of an item's files. Its id must be one safe path segment: the manifest's
        loader checks ids, and this checks again, as the last step before the disk; and the
        folder must be no link (:meth:`inside`)."""
        return self.inside(self.media / _segment(item_id, "item id"))

    def inside(self, path: Path) -> Path:
        """``path``, a file or folder below the archive's root, once nothing on the way to it
        from the root is a symbolic link, and nothing but its last part is other than a
        folder; its last part, if it exists, must be a folder or a regular file.

        Raises :class:`StorageError` naming the link (or the file in a folder's place):
        archiver never writes, replaces, removes or reads anything through a link, so that
        nothing outside the archive is touched. What does not exist yet is archiver's to make.
        Checked just before the disk is touched; whoever can swap folders for links in the
        archive while a run works is not among what this guards against.
        """
        parts, base = path.parts, self.root.parts
        if parts[: len(base)] != base:
            raise ArchiveError(path, f"not inside the archive {self.root}")
        parts = parts[len(base) :]
        here = os.fspath(self.root)  # strings, not Paths: a download checks each file often
        for number, part in enumerate(parts, start=1):
            here = os.path.join(here, part)
            try:
                mode = os.lstat(here).st_mode
            except FileNotFoundError:
                break  # the rest is archiver's to make
            except OSError:
                break  # the operation that follows will say why it fails
            if stat.S_ISLNK(mode):
                raise StorageError(here, LINK_REFUSED)
            if stat.S_ISDIR(mode):
                continue
            if number < len(parts):
                raise StorageError(here, "not a folder, where the archive keeps a folder")
            if not stat.S_ISREG(mode):
                raise StorageError(here, "a device or other special file, not a regular file")
        return path

    def _inside_or_warn(self, path: Path) -> bool:
        """Whether :meth:`inside` accepts ``path``; a link it refuses is a warning, said once
        (the item's files then count as not held: they fail, named, if they are fetched)."""
        try:
            self.inside(path)
        except StorageError as exc:
            if exc.path not in self._links_named:
                self._links_named.add(exc.path)
                log.warning("%s", exc.message)
            return False
        return True

    def open_held(self, path: Path) -> IO[bytes]:
        """A file of the archive opened for reading: never through a link (:meth:`inside`,
        then ``O_NOFOLLOW``), never a FIFO that would block the read. Raises
        :class:`StorageError` for a link or a special file, ``OSError`` as ``open`` does."""
        self.inside(path)
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        fd = os.open(path, flags)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise StorageError(path, "not a regular file")
        return os.fdopen(fd, "rb")

    def record_item(self, entry: Entry) -> None:
        """Note that ``entry`` is in the collection; keep its manifest entry beside its media."""
        self.record_items([entry])

    def record_items(self, entries: Sequence[Entry]) -> None:
        """:meth:`record_item` for a whole collection: one transaction, the files written
        together."""
        changed = []
        for entry in entries:
            data = json.dumps(entry.to_json(), ensure_ascii=False, indent=2, sort_keys=True)
            path = self.media / _segment(entry.id, "item id") / "entry.json"
            if not self._inside_or_warn(path):
                continue  # its files fail, each named, when the run comes to them
            encoded = (data + "\n").encode("utf-8")
            with writing(path, "cannot read"):
                if not path.is_file() or path.read_bytes() != encoded:
                    changed.append((path, encoded))
        with writing(self.media, "cannot write"):
            atomic_write_many(changed)
        self.catalog.record_items([(entry.id, entry.title) for entry in entries])

    def current(self, item_id: str, role: str) -> FileRecord | None:
        """The current version of a file, as recorded (whether or not it is still on disk)."""
        return self.catalog.current(item_id, role)

    def current_roles(self, item_id: str, prefix: str) -> list[FileRecord]:
        """The current files of an item whose role starts with ``prefix`` (``caption_``)."""
        records = self.catalog.current_with_prefix(item_id, prefix)
        return [r for r in records if self.held(item_id, r.role) is not None]

    def held_versions(self, item_id: str, role: str) -> list[FileRecord]:
        """Every version of a file that is on disk at its recorded size."""
        return [r for r in self.versions(item_id, role) if self._on_disk(r)]

    def versions(self, item_id: str, role: str) -> list[FileRecord]:
        return self.catalog.versions(item_id, role)

    def _on_disk(self, record: FileRecord) -> bool:
        return self._size_held(self.root / record.path) == record.size

    def _size_held(self, path: Path) -> int | None:
        """The size of ``path`` when it is a regular file of the archive, not reached through
        a link (one is named once, and what is behind it counts as not held); else ``None``."""
        if not self._inside_or_warn(path):
            return None
        try:
            found = os.lstat(path)
        except OSError:
            return None
        return found.st_size if stat.S_ISREG(found.st_mode) else None

    def held(self, item_id: str, role: str, url: str | None = None) -> FileRecord | None:
        """The current version, if it is on disk at its recorded size (and came from ``url``).

        This is the catalog-trusting check that makes a second run fetch nothing: the full
        sha256 is the job of ``archiver verify``, not of every run.
        """
        record = self.current(item_id, role)
        if record is None or (url is not None and record.url != url):
            return None
        return record if self._on_disk(record) else None

    def mark_checked(self, record: FileRecord) -> None:
        """Note that upstream confirmed this version unchanged just now."""
        self.catalog.mark_checked(record)

    def partial_paths(self, item_id: str, role: str) -> tuple[Path, Path]:
        """Where a download in progress keeps its bytes and its sidecar (role-named files).

        Neither may be reached through a link, nor may the item's folder in ``media/``, where
        the bytes go once checked: a :class:`StorageError` names the link before a byte is
        asked for, and no partial there is resumed, written or removed.
        """
        self.item_dir(item_id)
        folder = self.partials / _segment(item_id, "item id")
        role = _segment(role, "role", _ROLE)
        part, side = folder / f"{role}.part", folder / f"{role}.json"
        return self.inside(part), self.inside(side)

    def commit(
        self, item_id: str, role: str, name: str, partial: Path, fetched: FetchedFile
    ) -> FileRecord:
        """Move a complete, checked partial file into place and record it.

        If the current version has other bytes, it is moved to ``versions/<n>/`` first and
        stays in the catalog: a changed upstream file never replaces the one held. Blocking
        (renames, fsyncs, a catalog transaction): the downloader calls it off its event loop.
        """
        folder = self.item_dir(item_id)
        name = _segment(name, "file name", _NAME)
        self.inside(partial)
        old = self.current(item_id, role)
        facts = _media_facts(fetched.sha256, *fetched.media) if fetched.media else None
        if old is not None and old.sha256 == fetched.sha256:
            held = self.inside(self.root / old.path)
            with writing(held, "cannot store the file"):
                os.replace(partial, held)
                fsync_dir(held.parent)
            self.catalog.refresh_provenance(
                old,
                url=fetched.url,
                final_url=fetched.final_url,
                etag=fetched.etag,
                last_modified=fetched.last_modified,
                facts=facts,
            )
            return self.current(item_id, role) or old
        superseded = None
        dest = self._free_name(folder, name, item_id, role)
        with writing(dest, "cannot store the file"):
            folder.mkdir(parents=True, exist_ok=True)
            if old is not None:
                superseded = self._retire_version(old)
            os.replace(partial, dest)
            fsync_dir(folder)
        now = utc_now()
        record = FileRecord(
            item_id=item_id,
            role=role,
            version=(old.version + 1) if old else 1,
            path=dest.relative_to(self.root).as_posix(),
            url=fetched.url,
            final_url=fetched.final_url,
            sha256=fetched.sha256,
            size=fetched.size,
            etag=fetched.etag,
            last_modified=fetched.last_modified,
            fetched_at=now,
            current=True,
            checked_at=now,
            resolution=fetched.resolution,
            content_type=fetched.content_type,
            segments=fetched.segments,
        )
        try:
            self.catalog.add_version(record, superseded=superseded, facts=facts)
        except StorageError:
            # Not recorded: put the old version back where the catalog says it is, and the
            # new bytes back in the partial, so the next run finds them and records them.
            with contextlib.suppress(OSError):
                os.replace(dest, partial)
                if old is not None and superseded is not None:
                    os.replace(self.root / superseded.path, self.root / old.path)
            raise
        return self.current(item_id, role) or record

    def _free_name(self, folder: Path, name: str, item_id: str, role: str) -> Path:
        """``folder/name``, unless another file holds that name: then ``stem-2.ext``, and so on.

        A name another role of the item has (an archive of an earlier release, which named
        files after their URL), or a file archiver did not record, is never written over. The
        role's own current file is: it is moved to ``versions/`` first.
        """
        stem, dot, extension = name.partition(".")
        for number in range(1, _NAME_TRIES + 1):
            candidate = folder / (name if number == 1 else f"{stem}-{number}{dot}{extension}")
            owner = self.catalog.path_owner(candidate.relative_to(self.root).as_posix())
            if owner == (item_id, role):
                return self.inside(candidate)
            if owner is None and not os.path.lexists(candidate):
                return candidate
        raise StorageError(folder / name, f"taken, and so are {_NAME_TRIES - 1} names like it")

    def _retire_version(self, old: FileRecord) -> FileRecord:
        """Move the file of a version being superseded to ``versions/<n>/``; the record it
        will have."""
        source = self.inside(self.root / old.path)
        target = self.item_dir(old.item_id) / "versions" / str(old.version) / source.name
        self.inside(target).parent.mkdir(parents=True, exist_ok=True)
        try:
            if source.stat().st_size == old.size:
                os.replace(source, target)
                fsync_dir(target.parent)
        except FileNotFoundError:
            pass  # moved already by a run that died before recording it, or lost: verify says
        return FileRecord(
            **{**old.__dict__, "path": target.relative_to(self.root).as_posix(), "current": False}
        )

    def quarantine(self, item_id: str, name: str, partial: Path) -> Path:
        """Keep bytes that failed a check out of ``media/``, for a person to inspect."""
        stamp = utc_now().replace(":", "")
        item_id = _segment(item_id, "item id")
        target = self.quarantine_dir / item_id / f"{stamp}-{_segment(name, 'file name', _NAME)}"
        self.inside(partial)
        self.inside(target)
        with writing(target, "cannot quarantine"):
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(partial, target)
        return target

    def retire_missing(self, present: set[str]) -> list[tuple[str, str]]:
        """Mark as retired (today) the items no longer in the collection: ``[(id, title)]``.

        Their files stay in the archive; only ``archiver prune`` deletes them.
        """
        return self.catalog.retire_missing(present)

    def prune(self, retired_before: str, *, dry_run: bool = False) -> list[Pruned]:
        """Delete every file of the items retired before ``retired_before`` (ISO date).

        Each item says how many of its recorded files were deleted, and their bytes: those
        found in the archive, not those the catalog lists (a version lost from the disk is
        not counted). A dry run counts those it would delete.
        """
        pruned = []
        for item in self.catalog.retired_before(retired_before):
            folder = self.item_dir(item.item_id)
            held = self._held_files(item.item_id)
            if dry_run:
                pruned.append(_counted(item, held.values()))
                continue
            removed = []
            for path, size in held.items():
                with writing(path, "cannot delete"), contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed.append(size)
            partials = self.inside(self.partials / _segment(item.item_id, "item id"))
            for gone in (folder, partials):
                # Not ignore_errors: an item whose files stay must stay in the catalog too.
                # rmtree removes a link below it, never what the link points at.
                with writing(gone, "cannot delete"), contextlib.suppress(FileNotFoundError):
                    shutil.rmtree(gone)
            self.catalog.forget_item(item.item_id)
            pruned.append(_counted(item, removed))
        if dry_run:
            return pruned
        for derived in self.catalog.orphan_derived():
            if derived.path:
                made = self.inside(self.root / derived.path)
                with writing(made, "cannot delete"), contextlib.suppress(FileNotFoundError):
                    made.unlink()
            self.catalog.forget_derived(derived)
        return pruned

    def _held_files(self, item_id: str) -> dict[Path, int]:
        """The files of an item's recorded versions that are in the archive, with their
        sizes: regular files, not reached through a link."""
        held = {}
        for record in self.catalog.item_files(item_id):
            path = self.root / record.path
            size = self._size_held(path)
            if size is not None:
                held[path] = size
        return held

    # -- derived files -------------------------------------------------------------------------

    def derived_path(self, sha256: str, name: str) -> Path:
        """Where a file made from the bytes of ``sha256`` is kept; none of it a link."""
        sha256 = _segment(sha256, "sha256", _SHA256)
        name = _segment(name, "file name", _NAME)
        return self.inside(self.root / "derived" / sha256[:2] / f"{sha256}-{name}")

    def derived(self, sha256: str, kind: str, version: int) -> Derived | None:
        derived = self.catalog.derived(sha256, kind, version)
        made = self.root / derived.path if derived is not None and derived.path else None
        if made is not None and self._size_held(made) is None:
            return None  # its file was removed (or is behind a link, named): make it again
        return derived

    def media_facts(self, sha256: str) -> Derived | None:
        """What FFmpeg read of these bytes (duration, size) when they were confirmed playable."""
        return self.derived(sha256, MEDIA_FACTS, MEDIA_FACTS_VERSION)

    def record_media_facts(
        self, sha256: str, duration: float | None, width: int | None, height: int | None
    ) -> Derived:
        facts = _media_facts(sha256, duration, width, height)
        self.record_derived(facts)
        return facts

    def record_derived(self, derived: Derived) -> None:
        self.catalog.record_derived(derived)

    # -- runs ----------------------------------------------------------------------------------

    def start_run(self, command: str) -> int:
        return self.catalog.start_run(command)

    def record_failures(
        self, run_id: int, failures: Sequence[tuple[str, str, str | None, str]]
    ) -> None:
        """``(item, role, url, reason)`` of each file that failed in the run.

        A catalog that cannot note them (the disk that failed them is full) is a warning, not
        an error: the caller names every failure all the same, and the run exits 1 for them.
        """
        if failures:
            with self._noting_failed_run():
                self.catalog.record_failures(run_id, failures)

    def finish_run(self, run_id: int, outcome: str, summary: dict[str, object]) -> None:
        """Note how the run ended: a :class:`StorageError` if the catalog cannot, unless the
        run failed items, which are named all the same (see :meth:`record_failures`)."""
        if outcome == "ok":
            self.catalog.finish_run(run_id, outcome, summary)
            return
        with self._noting_failed_run():
            self.catalog.finish_run(run_id, outcome, summary)

    @contextlib.contextmanager
    def _noting_failed_run(self) -> Iterator[None]:
        try:
            yield
        except StorageError as exc:
            if not self._run_unrecorded:
                log.warning("%s; this run and its failures are not recorded in it", exc.message)
            self._run_unrecorded = True


def _segment(text: str, what: str, pattern: re.Pattern[str] | None = None) -> str:
    """``text`` when it is one safe path segment (an id by :func:`~archiver.names.is_safe_id`,
    else by ``pattern``), or :class:`ArchiveError`: an id, a role or a name from a manifest or
    an instance's answer never makes a path of its own (``..``, a slash, a leading dot)."""
    safe = is_safe_id(text) if pattern is None else bool(pattern.fullmatch(text))
    if not safe:
        raise ArchiveError(
            repr(text), f"not usable as an archive {what}: not one safe path segment"
        )
    return text


def _counted(item: Pruned, sizes: Iterable[int]) -> Pruned:
    """``item`` with the count and bytes of the files that were (or would be) deleted."""
    sizes = list(sizes)
    return dataclasses.replace(item, files=len(sizes), size=sum(sizes))


def _refuse_unsafe_folder(folder: Path) -> None:
    """Refuse an archive whose own folder (``media/``…) is a link or not a folder (exit 2):
    every item's files would go through it."""
    try:
        mode = os.lstat(folder).st_mode
    except OSError:
        return  # missing (made next), or mkdir will say why not
    if stat.S_ISLNK(mode):
        raise ArchiveError(folder, LINK_REFUSED, hint=LINK_HINT)
    if not stat.S_ISDIR(mode):
        raise ArchiveError(folder, "not a folder, where the archive keeps a folder")


def _refuse_lost_catalog(catalog: Path, media: Path) -> None:
    """Refuse to start a new catalog (exit 2) when it is missing or empty (0 bytes: a copy
    or a disk that failed) but ``media/`` holds files: a new one would show an empty archive,
    fetch everything again, and the versions held and their provenance would be forgotten."""
    try:
        lost = "empty (0 bytes)" if os.lstat(catalog).st_size == 0 else None
    except FileNotFoundError:
        lost = "missing"
    except OSError:
        return  # opening it will say why it cannot be read
    if lost is not None and _holds_files(media):
        raise ArchiveError(
            catalog,
            f"{lost}, but media/ holds the files of an archive: a new catalog would forget"
            " every version and where it came from",
            hint=CATALOG_LOST_HINT,
        )


def _holds_files(folder: Path) -> bool:
    """Whether a regular file is below ``folder`` (links not followed, nor counted); stops
    at the first, so a large archive costs a few reads."""
    try:
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            return False
    except OSError:
        return False
    pending = [folder]
    while pending:
        try:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    if entry.is_file(follow_symlinks=False):
                        return True
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(Path(entry.path))
        except OSError:
            continue
    return False


def _lock_holder(fd: int) -> int | None:
    """The PID the lock file names, if it names one."""
    try:
        holder = os.read(fd, 32).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(holder) if holder.isdigit() else None


def archive_status(archive: Archive, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """Everything ``archiver status`` shows, as plain JSON values."""
    now = now or dt.datetime.now(dt.UTC)
    counts = archive.catalog.counts(format_time(now - dt.timedelta(days=AUDIT_EVERY_DAYS)))
    items, retired = int(counts["items"] or 0), int(counts["retired"] or 0)
    last_run = archive.catalog.last_run()
    last_sync = archive.catalog.last_run("sync")
    failures = archive.catalog.failures(last_run.id) if last_run is not None else []

    def run(row: Any) -> dict[str, Any] | None:
        if row is None:
            return None
        return {**row.__dict__, "outcome": row.outcome or "interrupted"}

    return {
        "archive": str(archive.root),
        "items": {"total": items, "active": items - retired, "retired": retired},
        "files": {
            "current": counts["current_files"],
            "current_bytes": counts["current_bytes"],
            "versions": counts["versions"],
            "all_bytes": counts["all_bytes"],
        },
        "last_run": run(last_run),
        "last_sync": run(last_sync),
        "failures": [
            {
                "item": f.item_id,
                "title": f.title,
                "role": f.role,
                "url": f.url,
                "reason": f.reason,
                "at": f.at,
            }
            for f in failures
        ],
        "audit": {
            "never_audited": counts["never_audited"],
            "due": counts["due"],
            "due_after_days": AUDIT_EVERY_DAYS,
            "last_audit": counts["last_audit"],
        },
    }
