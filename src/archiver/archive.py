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

The :class:`Archive` class is built of parts, one concept a module:
:mod:`~archiver.archive_folder` (the folders, the catalog, the checked way to a file),
:mod:`~archiver.archive_versions` (which version is held, which one a kit shows, restores),
:mod:`~archiver.archive_store` (bytes stored once per sha256, shown in their item's folder),
:mod:`~archiver.archive_upgrade` (an earlier release's archive moved into the store) and
:mod:`~archiver.archive_records` (what a download hands over). This module holds the rest
(the lock, the entries, quarantine, pruning, runs) and is the one the rest of archiver
imports: :class:`Archive`, :class:`FetchedFile`, :class:`PartialState` and the catalog's
records are all importable from here, wherever they are defined.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .archive_lock import LOCK_NAME, take_lock
from .archive_paths import (
    CATALOG_LOST_HINT,
    CATALOG_NAME,
    LINK_HINT,
    LINK_REFUSED,
    NAME,
    lstat_inside,
    refuse_lost_catalog,
    segment,
)
from .archive_records import VIDEO as VIDEO
from .archive_records import FetchedFile, PartialState
from .archive_status import AUDIT_EVERY_DAYS, status_report
from .archive_upgrade import ArchiveUpgrade
from .archive_versions import ArchiveVersions
from .catalog import Derived, FileRecord, Pruned, utc_now
from .entry import Entry
from .errors import ArchiveError, StorageError, writing
from .files import atomic_write_many, unsafe_target

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


class Archive(ArchiveUpgrade, ArchiveVersions):
    """An archive folder: its catalog, its lock, and where each file goes.

    Its parts are mixins over :class:`~archiver.archive_folder.ArchiveFolder`, each in its
    own module (see this module's docstring); this class adds the lock, the entries kept
    beside the media, quarantine, pruning and the runs recorded.
    """

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
        super().__init__(root, read_only=read_only)
        self._lock_fd: int | None = None
        self._run_unrecorded = False  # warned already that the catalog cannot note this run

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

    # -- items and their entries ---------------------------------------------------------------

    def record_item(self, entry: Entry) -> None:
        """Note that ``entry`` is in the collection; keep its manifest entry beside its media."""
        self.record_items([entry])

    def record_items(self, entries: Sequence[Entry]) -> None:
        """:meth:`record_item` for a whole collection: one transaction, the files written
        together.

        The catalog notes what was written as each ``entry.json`` (:func:`_entry_note`: a
        digest of the entry, the file's size, times and inode); an entry whose note is
        unchanged, its file still there as it was left, is neither encoded for people
        (``indent=2`` takes Python's slow encoder) nor read again. A file a person edited or
        removed has another change time, or none: it is written again.
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

    # -- quarantine and pruning ----------------------------------------------------------------

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
    """What the catalog notes of an ``entry.json`` written from an entry of ``digest``: its
    size, modification and change times, inode. The change time and inode because an edit can
    keep the rest: written in place to the same size with its modification time put back
    (``touch -r``, ``os.utime``), or copied over with them (``cp -p``), the file would never be
    written again. No one can set a change time: any write, ``utime`` or rename moves it."""
    return f"{digest} {found.st_size} {found.st_mtime_ns} {found.st_ctime_ns} {found.st_ino}"


def _counted(item: Pruned, sizes: Iterable[int]) -> Pruned:
    """``item`` with the count and bytes of the files that were (or would be) deleted."""
    sizes = list(sizes)
    return dataclasses.replace(item, files=len(sizes), size=sum(sizes))


def archive_status(archive: Archive, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """Everything ``archiver status`` shows, as plain JSON values: the catalog's account of
    the archive (:func:`~archiver.archive_status.status_report`)."""
    return status_report(archive.root, archive.catalog, now=now)
