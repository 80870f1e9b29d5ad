"""An archive folder opened: its folders made, its catalog opened, and the one checked way to
every file below its root.

:class:`ArchiveFolder` is the base of :class:`~archiver.archive.Archive`: what every other
part of it (the versions it holds, the store, the lock, pruning) draws on. It holds the
archive's state (root, folders, catalog, the folders found real, the run it records) and the
path checks that come before the disk is touched: an id, a role or a name becomes a path only
once it is one safe segment, and nothing below the root is reached through a symbolic link
(:mod:`archiver.archive_paths`). Apart from the rest so that the Archive class, past 1,000
lines, reads as its concepts, each in its own module.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import IO

from .archive_paths import (
    CATALOG_NAME,
    FOLDERS,
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
from .catalog import Catalog, FileRecord
from .errors import ArchiveError, StorageError, describe_os_error

__all__ = ["ArchiveFolder"]

# The archive's one logger, whichever of its modules speaks: its records keep their name.
log = logging.getLogger("archiver.archive")


class ArchiveFolder:
    """An archive folder: its root, its folders, its catalog, and where each file goes."""

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
        self._links_named: set[str] = set()  # links said once, however often they are met
        # Folders found real (no link) by :meth:`inside`: each checked once while open.
        self._folders: set[str] = set()
        self._root_text = os.fspath(root)  # paths as strings: a run asks of every file
        self.run_id: int | None = None  # the run this process records, for its events

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

    def derived_path(self, sha256: str, name: str) -> Path:
        """Where a file made from the bytes of ``sha256`` is kept; none of it a link."""
        sha256 = segment(sha256, "sha256", SHA256)
        name = segment(name, "file name", NAME)
        return self.inside(self.root / "derived" / sha256[:2] / f"{sha256}-{name}")
