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
file is a symbolic link (:mod:`archiver.archive_paths` says what a link refuses where).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as dt
import filecmp
import hashlib
import json
import logging
import os
import shutil
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .archive_lock import LOCK_NAME, take_lock
from .archive_paths import (
    CATALOG_LOST_HINT,
    CATALOG_NAME,
    FOLDERS,
    LINK_HINT,
    LINK_REFUSED,
    NAME,
    ROLE,
    SHA256,
    inside,
    lstat_inside,
    refuse_lost_catalog,
    refuse_unsafe_catalog,
    refuse_unsafe_folder,
    segment,
)
from .archive_status import AUDIT_EVERY_DAYS, status_report
from .catalog import (
    MEDIA_FACTS,
    MEDIA_FACTS_VERSION,
    Catalog,
    Derived,
    FileRecord,
    Pruned,
    store_path,
    utc_now,
)
from .entry import Entry
from .errors import ArchiveError, StorageError, describe_os_error, writing
from .files import atomic_write_many, file_sha256, fsync_dir, unsafe_target

__all__ = [
    "AUDIT_EVERY_DAYS",
    "CATALOG_LOST_HINT",
    "CATALOG_NAME",
    "LINK_HINT",
    "LINK_REFUSED",
    "LOCK_NAME",
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

VIDEO = "video"  # the role whose files come in renditions, one per height

# The catalog's note of a move into the store whose clean-up is not done yet.
_MOVE_PENDING = "store_move_pending"

# What :meth:`Catalog.path_owner` says of a path that holds a version's bytes, not a view.
_BYTES = ("", "", -1)

# How many names a file tries (``fiche.pdf``, ``fiche-2.pdf``…) before the archive gives up.
_NAME_TRIES = 20


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


# ``json.dumps(value, ensure_ascii=False, sort_keys=True)``, with json's C encoder made once
# rather than once a call (10,000 entries' digests a sync: 0.27 s against 0.35 s, same run).
_ENTRY_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True)
_make_encoder: Callable[..., Callable[[object, int], list[str]]] | None = getattr(
    json.encoder, "c_make_encoder", None
)
_c_encoder = (
    _make_encoder(
        None,
        _ENTRY_ENCODER.default,
        json.encoder.encode_basestring,
        None,
        ": ",
        ", ",
        True,
        False,
        True,
    )
    if _make_encoder is not None
    else None
)


def _compact_json(value: object) -> str:
    """``value`` as ``json.dumps(value, ensure_ascii=False, sort_keys=True)`` writes it.

    >>> value = {"b": [1, 2.5, None, True], "a": "é\u2028"}
    >>> _compact_json(value) == json.dumps(value, ensure_ascii=False, sort_keys=True)
    True
    """
    if _c_encoder is None or isinstance(value, str):
        return _ENTRY_ENCODER.encode(value)
    return "".join(_c_encoder(value, 0))


class Archive:
    """An archive folder: its catalog, its lock, and where each file goes."""

    @classmethod
    def existing(cls, root: Path, *, read_only: bool = False) -> Archive:
        """Open an archive that must already exist (for reports: never create one);
        ``read_only``: for a glance, by a user who may not write it (:class:`Catalog`)."""
        catalog = root / CATALOG_NAME
        if not catalog.is_file():
            refuse_lost_catalog(catalog, root / "media")
            raise ArchiveError(root, "no archive here (no catalog.sqlite)")
        return cls(root, read_only=read_only)

    def __init__(self, root: Path, *, read_only: bool = False) -> None:
        self.root = root
        self.media = root / "media"
        self.partials = root / "partial"
        self.quarantine_dir = root / "quarantine"
        for name in FOLDERS:
            refuse_unsafe_folder(root / name)
        self.store = root / "store"
        refuse_lost_catalog(root / CATALOG_NAME, self.media)
        refuse_lost_catalog(root / CATALOG_NAME, self.store)
        try:
            for folder in () if read_only else (self.media, self.partials, self.quarantine_dir):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            reason = f"cannot create the archive: {describe_os_error(exc)}"
            raise ArchiveError(exc.filename or root, reason) from exc
        refuse_unsafe_catalog(root)
        self.catalog = Catalog(root / CATALOG_NAME, read_only=read_only)
        self._lock_fd: int | None = None
        self._run_unrecorded = False  # warned already that the catalog cannot note this run
        self._links_named: set[str] = set()  # links said once, however often they are met
        # Folders found real (no link) by :meth:`inside`: each checked once while open.
        self._folders: set[str] = set()
        self._root_text = os.fspath(root)  # paths as strings: a run asks of every file
        self.run_id: int | None = None  # the run this process records, for its events

    def close(self) -> None:
        self.unlock()
        self.catalog.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- lock ----------------------------------------------------------------------------------

    def lock(self) -> None:
        """Take the archive's lock for this process, or raise :class:`LockHeld` at once
        (:func:`~archiver.archive_lock.take_lock`, which the kernel releases if the process
        dies). A link or a special file in the lock's place is refused before it is opened."""
        path = self.root / LOCK_NAME
        refused = unsafe_target(path)
        if refused is not None:
            raise ArchiveError(path, f"not usable as the archive's lock: {refused}")
        self._lock_fd = take_lock(path, self.root)
        # The only writer now: the catalog may answer a run's many questions from one read.
        self.catalog.exclusive = True
        self._move_to_store()  # an archive of an earlier release: under the lock, once

    def unlock(self) -> None:
        if self._lock_fd is not None:
            self.catalog.exclusive = False
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
        return self.inside(self.media / segment(item_id, "item id"))

    def inside(self, path: Path) -> Path:
        """``path``, a file or folder below the archive's root, once nothing on the way to it
        from the root is a symbolic link, and nothing but its last part is other than a
        folder; its last part, if it exists, must be a folder or a regular file.

        Raises :class:`StorageError` naming the link (or the file in a folder's place):
        archiver never writes, replaces, removes or reads anything through a link, so that
        nothing outside the archive is touched. What does not exist yet is archiver's to make.
        Checked just before the disk is touched; whoever can swap folders for links in the
        archive while a run works is not among what this guards against: each folder is
        checked once while the archive is open (:func:`~archiver.archive_paths.inside`), not
        once per file in it.
        """
        return inside(self.root, path, self._folders)

    def _inside_or_warn(self, path: Path) -> bool:
        """Whether :meth:`inside` accepts ``path``; a link it refuses is a warning, said once
        (the item's files then count as not held: they fail, named, if they are fetched)."""
        try:
            self.inside(path)
        except StorageError as exc:
            self._warn_link(exc)
            return False
        return True

    def _warn_link(self, exc: StorageError) -> None:
        if exc.path not in self._links_named:
            self._links_named.add(exc.path)
            log.warning("%s", exc.message)

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
        together.

        The catalog notes what was written as each ``entry.json`` (:func:`_entry_note`: a
        digest of the entry, the file's size and time); an entry whose note is unchanged, its
        file still there as it was left, is neither encoded for people (``indent=2`` takes
        Python's slow encoder) nor read again. A file a person edited or removed has another
        time, or none: it is written again.
        """
        known = self.catalog.entry_notes()
        changed: list[tuple[str, str, Path, bytes]] = []  # item, digest, file, its bytes
        notes: dict[str, str] = {}
        for entry in entries:
            shape = entry.to_json()
            digest = hashlib.sha256(_compact_json(shape).encode("utf-8")).hexdigest()
            folder = os.path.join(self._root_text, "media", segment(entry.id, "item id"))
            where = os.path.join(folder, "entry.json")  # a string: no Path made for most
            try:
                found = lstat_inside(self.root, where, self._folders)
            except StorageError as exc:
                self._warn_link(exc)
                continue  # its files fail, each named, when the run comes to them
            if found is not None and known.get(entry.id) == _entry_note(digest, found):
                continue
            data = json.dumps(shape, ensure_ascii=False, indent=2, sort_keys=True)
            encoded = (data + "\n").encode("utf-8")
            path = Path(where)
            with writing(path, "cannot read"):
                if (
                    found is not None
                    and stat.S_ISREG(found.st_mode)
                    and path.read_bytes() == encoded
                ):
                    notes[entry.id] = _entry_note(digest, found)
                else:
                    changed.append((entry.id, digest, path, encoded))
        with writing(self.media, "cannot write"):
            atomic_write_many([(path, encoded) for _, _, path, encoded in changed])
            for item_id, digest, path, _ in changed:  # noted as written: their time now
                notes[item_id] = _entry_note(digest, os.lstat(path))
        self.catalog.record_items([(entry.id, entry.title) for entry in entries], notes)

    def current(self, item_id: str, role: str, rendition: int = 0) -> FileRecord | None:
        """The current version of a file (of one rendition of a video), as recorded, whether
        or not it is still on disk."""
        return self.catalog.current(item_id, role, rendition)

    def current_roles(self, item_id: str, prefix: str) -> list[FileRecord]:
        """The current files of an item whose role starts with ``prefix`` (``caption_``)."""
        records = self.catalog.current_with_prefix(item_id, prefix)
        return [r for r in records if self._on_disk(r)]

    def held_versions(self, item_id: str, role: str) -> list[FileRecord]:
        """Every version, of every rendition, of a file whose bytes are held at their size."""
        return [r for r in self.versions(item_id, role) if self._on_disk(r)]

    def versions(self, item_id: str, role: str) -> list[FileRecord]:
        return self.catalog.versions(item_id, role)

    def _on_disk(self, record: FileRecord) -> bool:
        return self._size_held(self._under_root(record.path)) == record.size

    def is_held(self, record: FileRecord) -> bool:
        """Whether a version's bytes are on disk at their recorded size."""
        return self._on_disk(record)

    def _under_root(self, relative: str) -> str:
        """A catalog's path (checked: relative, no ``..``) as a string below the root, as
        :func:`~archiver.archive_paths.inside` notes folders: no Path made for it."""
        return os.path.join(self._root_text, relative)

    def _size_held(self, path: Path | str) -> int | None:
        """The size of ``path`` when it is a regular file of the archive, not reached through
        a link (one is named once, and what is behind it counts as not held); else ``None``."""
        try:
            found = lstat_inside(self.root, path, self._folders)
        except StorageError as exc:
            self._warn_link(exc)
            return None
        return found.st_size if found is not None and stat.S_ISREG(found.st_mode) else None

    def held(
        self,
        item_id: str,
        role: str,
        url: str | None = None,
        *,
        rendition: int | None = None,
    ) -> FileRecord | None:
        """A current version on disk at its recorded size: of ``rendition`` (a video's height)
        when given, from ``url`` when given; the tallest rendition that qualifies.

        A version of unknown height (0) from the same URL counts for any rendition: the file
        an earlier run fetched without asking its instance is the same file. This is the
        catalog-trusting check that makes a second run fetch nothing: the full sha256 is the
        job of ``archiver verify``, not of every run.
        """
        found = []
        for record in self.catalog.renditions(item_id, role):
            if rendition is not None and record.rendition not in (rendition, 0):
                continue
            if rendition and record.rendition == 0 and url is None:
                continue
            if (url is None or record.url == url) and self._on_disk(record):
                found.append(record)
        if len(found) > 1 and found[-1].rendition == 0:
            return max(found, key=self._height)  # one of unknown height: as FFmpeg read it
        return found[0] if found else None

    def _height(self, record: FileRecord) -> int:
        """A version's height: its rendition's, else as FFmpeg read it, else 0."""
        if record.rendition:
            return record.rendition
        facts = self.media_facts(record.sha256)
        return facts.height if facts is not None and facts.height else 0

    def held_sha256(
        self, item_id: str, role: str, sha256: str, size: int | None = None
    ) -> FileRecord | None:
        """The latest held version of a file (any rendition) whose bytes have ``sha256``."""
        for record in reversed(self.versions(item_id, role)):
            if record.sha256 == sha256 and size in (None, record.size) and self._on_disk(record):
                return record
        return None

    def restored(self, item_id: str, role: str = VIDEO) -> FileRecord | None:
        """The version ``archiver restore`` made the one kits get, if any (held or not)."""
        return self.catalog.restored(item_id, role)

    def for_kit(
        self,
        item_id: str,
        role: str = VIDEO,
        *,
        sha256: str | None = None,
        size: int | None = None,
        url: str | None = None,
        chosen: FileRecord | None = None,
    ) -> FileRecord | None:
        """The held version a kit shows, in this order: the one ``archiver restore`` made the
        one kits get; the one a manifest pins (``sha256``: ``None`` if it is not held); the
        one this run chose (``chosen``: a rendition for ``--fit``, ``--max-height``); the
        current rendition from ``url`` (the fiche's link); the tallest current one."""
        restored = self.catalog.restored(item_id, role)
        if restored is not None and self._on_disk(restored):
            return restored
        if restored is not None:
            log.warning(
                "%s (%s): version %d, restored for kits, is not held; the kit shows another",
                item_id,
                role,
                restored.version,
            )
        if sha256 is not None:
            return self.held_sha256(item_id, role, sha256, size)
        if chosen is not None and self._on_disk(chosen):
            return chosen
        return (url is not None and self.held(item_id, role, url)) or self.held(item_id, role)

    def restore(
        self,
        item_id: str,
        role: str = VIDEO,
        *,
        version: int | None = None,
        sha256: str | None = None,
    ) -> FileRecord:
        """Make a held version the one kits get, until its rendition changes upstream or
        :meth:`restore_latest`; recorded as an event. Raises :class:`ArchiveError` naming
        what is not held."""
        if version is not None:
            record = self.catalog.file_version(item_id, role, version)
            wanted = f"version {version}"
        else:
            record = next(
                (r for r in reversed(self.versions(item_id, role)) if r.sha256 == sha256), None
            )
            wanted = f"sha256 {sha256}"
        if record is None:
            known = [str(r.version) for r in self.versions(item_id, role)]
            said = f"its versions are {', '.join(known)}" if known else "it has none"
            raise ArchiveError(self.root, f"{item_id} ({role}): no {wanted}; {said}")
        path = self.root / record.path
        if not self._on_disk(record) or file_sha256(path) != record.sha256:
            raise ArchiveError(
                path,
                f"{item_id} ({role}): version {record.version} is not held (missing or"
                " damaged); 'archiver verify --archive' says more",
            )
        current = self.catalog.current(item_id, role, record.rendition)
        detail: dict[str, object] = {"version": record.version, "sha256": record.sha256}
        if current is not None:
            detail["current_version"] = current.version
        self.catalog.restore(record, run_id=self.run_id, detail=detail)
        return record

    def restore_latest(self, item_id: str, role: str = VIDEO) -> FileRecord | None:
        """Kits show the current version again; the version that was restored, if any."""
        return self.catalog.restore_latest(item_id, role, run_id=self.run_id)

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
        folder = self.partials / segment(item_id, "item id")
        role = segment(role, "role", ROLE)
        part, side = folder / f"{role}.part", folder / f"{role}.json"
        return self.inside(part), self.inside(side)

    def commit(
        self, item_id: str, role: str, name: str, partial: Path, fetched: FetchedFile
    ) -> FileRecord:
        """Move a complete, checked partial file into the store and record it.

        Bytes are stored once per sha256 (``store/<aa>/<sha256>``): a version whose bytes the
        archive holds already (an earlier version come back, the same file of another item)
        takes no more room. A video's renditions (its 720p, its 240p) each have their own
        versions: a new version of one supersedes its rendition's current one, which stays,
        recorded and in the store, and leaves the others as they are. The current version of
        each rendition shows in the item's folder under ``name`` (a hard link). Blocking
        (renames, fsyncs, a catalog transaction): the downloader calls it off its event loop.
        """
        rendition = self.rendition_of(item_id, role, fetched.url, fetched.resolution)
        folder = self.item_dir(item_id)
        name = segment(name, "file name", NAME)
        self.inside(partial)
        old = self.catalog.current(item_id, role, rendition)
        facts = _media_facts(fetched.sha256, *fetched.media) if fetched.media else None
        stored = self._store(partial, fetched.sha256, fetched.size)
        try:
            if old is not None and old.sha256 == fetched.sha256:
                self.catalog.refresh_provenance(
                    old,
                    url=fetched.url,
                    final_url=fetched.final_url,
                    etag=fetched.etag,
                    last_modified=fetched.last_modified,
                    facts=facts,
                    run_id=self.run_id,
                )
                record = self.catalog.current(item_id, role, rendition) or old
            else:
                now = utc_now()
                view = self._free_name(folder, name, (item_id, role, rendition))
                record = FileRecord(
                    item_id=item_id,
                    role=role,
                    version=self.catalog.next_version(item_id, role),
                    path=store_path(fetched.sha256),
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
                    rendition=rendition,
                    view=view.relative_to(self.root).as_posix(),
                )
                self.catalog.add_version(record, superseded=old, facts=facts, run_id=self.run_id)
        except StorageError:
            # Not recorded: the new bytes go back to the partial, where the next run finds
            # them and records them; the store keeps only what the catalog knows.
            if stored:
                with contextlib.suppress(OSError):
                    os.replace(self.root / store_path(fetched.sha256), partial)
            raise
        if old is not None and old.view is not None and old.view != record.view:
            self._hide(old)
        self._show(record)
        return record

    def rendition_of(self, item_id: str, role: str, url: str, resolution: int | None) -> int:
        """Which rendition a file fetched from ``url`` is: a video's height as its instance
        gave it; for a video fetched without asking its instance, the rendition that came
        from the same URL before (the same file), else 0 (unknown); 0 for every other role."""
        if role != VIDEO:
            return 0
        renditions = self.catalog.renditions(item_id, role)
        if resolution and any(r.rendition == resolution for r in renditions):
            return resolution
        same = [r.rendition for r in renditions if r.url == url]
        if resolution and 0 not in same:
            return resolution
        # Fetched once without its height (its instance did not answer): the same file from
        # the same URL goes on in that rendition, so a change is a change, not a new rendition.
        return same[0] if same else (resolution or 0)

    def _store(self, partial: Path, sha256: str, size: int) -> bool:
        """Put a checked partial's bytes in the store: False when it held them already (the
        partial is then dropped), True when they were moved there.

        Bytes that came again while the store holds their sha256 are rare (a full answer to
        a conditional request, the same file for two items): the store's copy is read once
        to be sure of it, and a copy that rotted is replaced by the fresh, checked bytes.
        """
        target = self.inside(self.root / store_path(segment(sha256, "sha256", SHA256)))
        with writing(target, "cannot store the file"):
            if self._size_held(target) == size:
                if file_sha256(target) == sha256:
                    partial.unlink()
                    return False
                log.warning(
                    "%s: damaged (its sha256 is not its name); replaced by the bytes just"
                    " fetched, which are",
                    target,
                )
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(partial, target)
            fsync_dir(target.parent)
        return True

    def _show(self, record: FileRecord) -> None:
        """Make a current version's ``view`` in its item's folder a hard link to its bytes.

        The view is for a person browsing ``media/``: the store and the catalog are what is
        held. A file system that has no hard links (or refuses one) leaves the version shown
        nowhere, with a warning said once; nothing is copied, so no bytes are held twice.
        """
        if record.view is None:
            return
        view = self.inside(self.root / record.view)
        stored = self.root / record.path
        with contextlib.suppress(OSError):
            if os.path.samefile(view, stored) and not os.path.islink(view):
                return
        temporary = view.with_name(f".{view.name}.{os.getpid()}.link")
        try:
            view.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            os.link(stored, temporary)
            os.replace(temporary, view)
        except OSError as exc:
            with contextlib.suppress(OSError):
                temporary.unlink()
            if "views" not in self._links_named:
                self._links_named.add("views")
                log.warning(
                    "%s: cannot show the archive's files in media/ (%s); they are held in"
                    " store/, and 'archiver history' says which is which",
                    view,
                    describe_os_error(exc),
                )
            self.catalog.set_view(record, None)

    def shown(self, record: FileRecord) -> None:
        """Show a held current version in its item's folder again if its view is gone (a
        person deleted it, or moved the folder): one ``lstat`` when it is there. Raises
        :class:`StorageError` for a link on the way: nothing is written through one."""
        if record.view is None:
            return
        view = self._under_root(record.view)
        if lstat_inside(self.root, view, self._folders) is None:
            self._show(record)

    def _hide(self, record: FileRecord) -> None:
        """Remove a superseded version's view, if it still shows that version's bytes from
        the store (the bytes stay there). A view that is itself a version's only copy (an
        archive not yet moved into the store) is never removed."""
        if record.view is None or not record.path.startswith("store/"):
            return
        view = self.inside(self.root / record.view)
        if self.catalog.path_owner(record.view) == _BYTES:
            return
        with contextlib.suppress(OSError):
            if os.path.samefile(view, self.root / record.path) and not os.path.islink(view):
                view.unlink()

    def _shows_ours(self, candidate: Path, owner: tuple[str, str, int]) -> bool:
        """Whether ``candidate`` is missing, or a hard link to the store's bytes of a version
        of ``owner``'s rendition: a file a person put there instead is not ours to replace."""
        if not os.path.lexists(candidate):
            return True
        if os.path.islink(candidate):
            return False
        item_id, role, rendition = owner
        for record in self.catalog.versions(item_id, role):
            if record.rendition == rendition and record.path.startswith("store/"):
                with contextlib.suppress(OSError):
                    if os.path.samefile(candidate, self.root / record.path):
                        return True
        return False

    def _free_name(self, folder: Path, name: str, owner: tuple[str, str, int]) -> Path:
        """``folder/name``, unless another file holds that name: then ``stem-2.ext``, and so on.

        A name another file of the item shows under (an archive of an earlier release, which
        named files after their URL), a version's bytes not yet in the store, or a file
        archiver did not put there (a person's own, in the view's place), is never written
        over. The rendition's own view is: it shows the new version instead.
        """
        stem, dot, extension = name.partition(".")
        for number in range(1, _NAME_TRIES + 1):
            candidate = folder / (name if number == 1 else f"{stem}-{number}{dot}{extension}")
            found = self.catalog.path_owner(candidate.relative_to(self.root).as_posix())
            if found == owner and self._shows_ours(self.inside(candidate), owner):
                return candidate
            if found is None and not os.path.lexists(candidate):
                return candidate
        raise StorageError(folder / name, f"taken, and so are {_NAME_TRIES - 1} names like it")

    # -- the store, for an archive of an earlier release ------------------------------------------

    def _move_to_store(self) -> None:
        """Bring an archive of an earlier release to the store, in place, once: each
        version's bytes linked into ``store/`` (a second copy, byte for byte the same,
        dropped), the catalog's rows moved in one transaction, then the old ``versions/``
        copies removed and each current version shown. Nothing is lost at any step: a run
        killed before the transaction starts again, one killed after it finishes the
        clean-up (the transaction notes what is left to do), and a copy whose bytes differ
        from the store's is left where it is, named.
        """
        rows = self.catalog.not_in_store()
        if not rows:
            if self.catalog.meta(_MOVE_PENDING) is not None:
                self._finish_move()
            return
        moved: list[FileRecord] = []
        spare: list[tuple[str, str]] = []  # an old copy, and the store file it duplicates
        unseen: list[tuple[str, str, int, str]] = []  # current, kept in versions/ till now
        trusted: set[str] = set()  # store files this pass checked, or made from one copy
        copies = collections.Counter(row.sha256 for row in rows)
        for row in rows:
            source = self.root / row.path
            stored = self.root / store_path(row.sha256)
            try:
                self.inside(source)
                self.inside(stored)
                view = self._link_into_store(row, source, stored, copies[row.sha256], trusted)
            except StorageError as exc:
                log.warning("%s: %s; left where it is", row.path, exc.reason)
                continue
            except _Differs:
                continue
            moved.append(dataclasses.replace(row, path=store_path(row.sha256), view=view))
            if view is None and os.path.lexists(source):
                spare.append((row.path, moved[-1].path))
            if row.current and view is None:
                unseen.append((row.item_id, row.role, row.version, row.path.rpartition("/")[2]))
        if moved:
            pending = json.dumps({"spare": spare, "unseen": unseen})
            detail: dict[str, object] = {
                "versions": len(moved),
                "bytes": sum(r.size for r in moved),
            }
            self.catalog.move_to_store(moved, detail=detail, pending=(_MOVE_PENDING, pending))
            self._finish_move()

    def _finish_move(self) -> None:
        """The clean-up after the catalog moved its rows into the store: the old copies the
        store duplicates removed (only if the same file, or equal byte for byte), each
        current version that had no view shown; then the note of it cleared."""
        try:
            pending = json.loads(self.catalog.meta(_MOVE_PENDING) or "{}")
            spare = [(str(a), str(b)) for a, b in pending.get("spare", [])]
            unseen = [(str(i), str(r), int(v), str(n)) for i, r, v, n in pending.get("unseen", [])]
        except (TypeError, ValueError):
            spare, unseen = [], []  # a note damaged: the copies stay, as hard links mostly
        for old, new in spare:
            if _row_fault(old) or not new.startswith("store/"):
                continue  # a note that names something else is not acted on
            with contextlib.suppress(OSError, StorageError):
                source = self.inside(self.root / old)
                if _same_bytes(source, self.root / new):
                    source.unlink()
        for item in sorted({old.split("/")[1] for old, _ in spare if old.count("/") >= 2}):
            with contextlib.suppress(StorageError, ArchiveError):
                _remove_empty_folders(self.item_dir(item) / "versions")
        for item_id, role, version, name in unseen:
            row = self.catalog.file_version(item_id, role, version)
            if row is None or not row.current or row.view is not None:
                continue
            if not NAME.fullmatch(name):
                name = f"video-{row.rendition}p.mp4" if row.rendition else "file"
            owner = (row.item_id, row.role, row.rendition)
            shown_at = self._free_name(self.item_dir(row.item_id), name, owner)
            shown = dataclasses.replace(row, view=shown_at.relative_to(self.root).as_posix())
            self.catalog.set_view(shown, shown.view)
            self._show(shown)
        self.catalog.set_meta(_MOVE_PENDING, None)
        log.info("the archive's files are in its store")

    def _link_into_store(
        self, row: FileRecord, source: Path, stored: Path, copies: int, trusted: set[str]
    ) -> str | None:
        """Link ``row``'s bytes into the store; the view it keeps (its old path, for a
        current version at the top of its item's folder), or ``None``.

        Bytes held in one copy are trusted at their recorded size, as the release before
        trusted them. Bytes held in several copies (a version come back) are read: the
        store takes a copy whose sha256 is right, and a copy that differs from it is left
        where it is, named (:class:`_Differs`), for ``verify --archive`` to judge.
        """
        held = self._size_held(source) == row.size
        key = store_path(row.sha256)
        parts = row.path.split("/")
        view = row.path if row.current and len(parts) == 3 else None
        with writing(stored, "cannot move into the store"):
            in_store = self._size_held(stored) == row.size
            if in_store and key not in trusted and copies > 1:
                in_store = file_sha256(stored) == row.sha256
            if not in_store:
                if not held:
                    return None  # lost already: verify says so; another copy may turn up
                if copies > 1 and file_sha256(source) != row.sha256:
                    log.warning(
                        "%s: its sha256 is not the catalog's; left where it is"
                        " ('archiver verify --archive' names it)",
                        source,
                    )
                    raise _Differs
                stored.parent.mkdir(parents=True, exist_ok=True)
                with contextlib.suppress(FileNotFoundError):
                    stored.unlink()  # a store file that is not these bytes, made by no row
                try:
                    os.link(source, stored)
                except OSError:
                    os.replace(source, stored)  # no hard links here: the store takes them
                    view = None
                fsync_dir(stored.parent)
                trusted.add(key)
                return view
            trusted.add(key)
            if not held or os.path.samefile(source, stored):
                return view if held else None
            if not _same_bytes(source, stored):
                log.warning(
                    "%s: its bytes differ from the store's copy of sha256 %s; left where it is"
                    " ('archiver verify --archive' names it)",
                    source,
                    row.sha256,
                )
                raise _Differs
            if view is None:
                return None  # an old copy: removed once the catalog has moved
            temporary = source.with_name(f".{source.name}.{os.getpid()}.link")
            try:
                os.link(stored, temporary)
            except OSError:
                source.unlink()  # no hard links here: the store's equal copy is the one
                return None
            os.replace(temporary, source)  # the view shows the store's copy: one copy
            return view

    def quarantine(
        self, item_id: str, name: str, partial: Path, *, role: str = "", reason: str = ""
    ) -> Path:
        """Keep bytes that failed a check out of ``media/``, for a person to inspect; the
        event says where, and why."""
        stamp = utc_now().replace(":", "")
        item_id = segment(item_id, "item id")
        target = self.quarantine_dir / item_id / f"{stamp}-{segment(name, 'file name', NAME)}"
        self.inside(partial)
        self.inside(target)
        with writing(target, "cannot quarantine"):
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(partial, target)
        with contextlib.suppress(StorageError):  # a full disk: the failure is named all the same
            self.catalog.record_event(
                "quarantine",
                item_id=item_id,
                run_id=self.run_id,
                outcome="failure",
                detail={
                    "role": role,
                    "reason": reason,
                    "path": target.relative_to(self.root).as_posix(),
                },
            )
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
        items = self.catalog.retired_before(retired_before)
        going = {item.item_id for item in items}
        counted: set[Path] = set()  # bytes two pruned items share: counted with the first
        for item in items:
            folder = self.item_dir(item.item_id)
            held = self._held_files(item.item_id, going if dry_run else set())
            if dry_run:
                pruned.append(_counted(item, [s for p, s in held.items() if p not in counted]))
                counted.update(held)
                continue
            removed = []
            for path, size in held.items():
                with writing(path, "cannot delete"), contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed.append(size)
            partials = self.inside(self.partials / segment(item.item_id, "item id"))
            for gone in (folder, partials):
                # Not ignore_errors: an item whose files stay must stay in the catalog too.
                # rmtree removes a link below it, never what the link points at.
                with writing(gone, "cannot delete"), contextlib.suppress(FileNotFoundError):
                    shutil.rmtree(gone)
            self._folders.clear()  # those checked may be gone: looked at again if made again
            self.catalog.forget_item(
                item.item_id,
                run_id=self.run_id,
                detail={"title": item.title, "files": len(removed), "bytes": sum(removed)},
            )
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

    def _held_files(self, item_id: str, going: set[str]) -> dict[Path, int]:
        """The bytes of an item's recorded versions that are in the archive and no other
        item's (but those ``going`` with it), with their sizes: regular files, not reached
        through a link. (Its views in ``media/<id>/`` are links to these: they go with its
        folder.)"""
        held = {}
        for record in self.catalog.item_files(item_id):
            path = self.root / record.path
            holders = {r.item_id for r in self.catalog.with_sha256(record.sha256)}
            shared = bool(holders - going - {item_id})
            size = None if shared else self._size_held(path)
            if size is not None:
                held[path] = size
        return held

    # -- derived files -------------------------------------------------------------------------

    def derived_path(self, sha256: str, name: str) -> Path:
        """Where a file made from the bytes of ``sha256`` is kept; none of it a link."""
        sha256 = segment(sha256, "sha256", SHA256)
        name = segment(name, "file name", NAME)
        return self.inside(self.root / "derived" / sha256[:2] / f"{sha256}-{name}")

    def derived(self, sha256: str, kind: str, version: int) -> Derived | None:
        derived = self.catalog.derived(sha256, kind, version)
        if derived is None or not derived.path:
            return derived
        if self._size_held(self._under_root(derived.path)) is None:
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
        self.run_id = self.catalog.start_run(command)
        return self.run_id

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


def _entry_note(digest: str, found: os.stat_result) -> str:
    """What the catalog notes of an ``entry.json`` written from an entry of ``digest``."""
    return f"{digest} {found.st_size} {found.st_mtime_ns}"


class _Differs(Exception):
    """A copy whose bytes are not those the store holds, or the catalog says: left alone."""


def _row_fault(path: str) -> bool:
    """Whether a path from the catalog's note is no file below ``media/`` (never acted on)."""
    parts = path.split("/")
    return len(parts) < 3 or parts[0] != "media" or any(p in ("", ".", "..") for p in parts)


def _same_bytes(one: Path, other: Path) -> bool:
    """Whether two files hold the same bytes (the same file, or equal byte for byte)."""
    try:
        return os.path.samefile(one, other) or filecmp.cmp(one, other, shallow=False)
    except OSError:
        return False


def _remove_empty_folders(top: Path) -> None:
    """Remove ``top`` and the folders below it that hold nothing (never a file, nor a link)."""
    if not os.path.isdir(top) or os.path.islink(top):
        return
    for folder, _subfolders, _files in sorted(os.walk(top), key=lambda w: -len(w[0])):
        with contextlib.suppress(OSError):
            os.rmdir(folder)  # refused while anything is in it


def _counted(item: Pruned, sizes: Iterable[int]) -> Pruned:
    """``item`` with the count and bytes of the files that were (or would be) deleted."""
    sizes = list(sizes)
    return dataclasses.replace(item, files=len(sizes), size=sum(sizes))


def archive_status(archive: Archive, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """Everything ``archiver status`` shows, as plain JSON values: the catalog's account of
    the archive (:func:`~archiver.archive_status.status_report`)."""
    return status_report(archive.root, archive.catalog, now=now)
