"""An archive of an earlier release brought to the store, in place, once.

Earlier releases kept a file's bytes in its item's folder (``media/<id>/<name>``, earlier
versions in ``media/<id>/versions/<n>/``); this one keeps them once per sha256 in ``store/``
and shows the current versions in the item's folder (:mod:`archiver.archive_store`).
:class:`ArchiveUpgrade` is the part of :class:`~archiver.archive.Archive` that moves an old
archive over when a run first takes its lock: a one-time migration, apart from the store's
everyday work, with the helpers only it needs. A mixin over
:class:`~archiver.archive_store.ArchiveStore`, whose views it shows.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import filecmp
import json
import os
from pathlib import Path

from .archive_folder import log
from .archive_paths import NAME
from .archive_store import ArchiveStore
from .catalog import FileRecord, store_path
from .errors import ArchiveError, StorageError, writing
from .files import file_sha256, fsync_dir

__all__ = ["ArchiveUpgrade"]

# The catalog's note of a move into the store whose clean-up is not done yet.
_MOVE_PENDING = "store_move_pending"


class ArchiveUpgrade(ArchiveStore):
    """The move of an earlier release's archive into the store (:meth:`_move_to_store`)."""

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
