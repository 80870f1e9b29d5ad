"""What a sealed run found on disk and in the catalog (:mod:`archiver.settled`): the catalog's
count of changes, and every path under the archive's own folders and the kit, with a sha256 of
what ``lstat`` said of each. Equal again, nothing a run depends on moved: a file deleted,
changed (its change time moves, even with its modification time put back) or added (its
folder's time moves) is seen."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .archive_paths import FOLDERS

if TYPE_CHECKING:
    from .archive import Archive

__all__ = ["Survey", "answers_saved", "survey", "walk"]


@dataclass(frozen=True)
class Survey:
    """The catalog's changes (``None``: they cannot be told), every path of the archive's
    folders and of the kit, and a sha256 of what ``lstat`` said of each (:func:`_line`): a
    path's folder gaining a file moves the folder's time, so what was added is seen too."""

    changes: tuple[int, int] | None
    paths: tuple[str, ...]
    stats: str

    def holds(self, archive: Archive) -> bool:
        """Whether the catalog and every path are as surveyed."""
        if self.changes is None or archive.catalog.changes() != self.changes:
            return False
        return _stats_digest(self.paths) == self.stats

    def sound(self) -> bool:
        """Whether its fields are of their kinds (a seal's head is not trusted)."""
        changes = self.changes
        return (
            (changes is None or (isinstance(changes, tuple) and _ints(changes, 2)))
            and isinstance(self.paths, tuple)
            and all(isinstance(path, str) for path in self.paths)
            and isinstance(self.stats, str)
        )


def survey(archive: Archive, kit: Path, last_manifest: Path) -> Survey:
    """The catalog's changes, and every file and folder under the archive's own folders
    (``media/``, ``store/``…), the last manifest and the kit, without following links but
    the kit's own name (a kit named by a link is looked at where it is, and the link too).

    The catalog itself, its lock and the cache folder (the seals, the fiche cache) are left
    out: a run writes them whatever it finds.
    """
    paths: list[str] = []
    digest = hashlib.sha256()
    roots = [str(archive.root / folder) for folder in FOLDERS]
    roots += [str(last_manifest), str(kit)]
    if kit.is_symlink():
        roots.append(os.path.realpath(kit))
    for root in roots:
        for path, found in walk(root):
            paths.append(path)
            digest.update(_line(found))
    return Survey(archive.catalog.changes(), tuple(paths), digest.hexdigest())


def walk(root: str) -> Iterator[tuple[str, os.stat_result | None]]:
    """``root`` and, for a folder, everything below it, with what ``lstat`` said of each
    (``None``: not there); links not followed."""
    try:
        found: os.stat_result | None = os.lstat(root)
    except OSError:
        found = None
    yield root, found
    pending = [root] if found is not None and stat.S_ISDIR(found.st_mode) else []
    while pending:
        folder = pending.pop()
        try:
            # In the order the disk gives: :meth:`Survey.holds` looks at the paths as listed.
            entries = list(os.scandir(folder))
        except OSError:  # gone meanwhile, or unreadable: the digest of its path differs
            continue
        for entry in entries:
            try:
                info: os.stat_result | None = entry.stat(follow_symlinks=False)
            except OSError:
                info = None
            yield entry.path, info
            if info is not None and stat.S_ISDIR(info.st_mode):
                pending.append(entry.path)


def _line(found: os.stat_result | None) -> bytes:
    """What the digest takes of one path's ``lstat``: type and permissions, size, times of
    modification and of change, inode; or that it is not there."""
    if found is None:
        return b"-\n"
    return b"%d %d %d %d %d\n" % (
        found.st_mode,
        found.st_size,
        found.st_mtime_ns,
        found.st_ctime_ns,
        found.st_ino,
    )


def _stats_digest(paths: Sequence[str]) -> str:
    """The digest :func:`survey` makes, of ``paths`` as they are now."""
    digest = hashlib.sha256()
    update, lstat = digest.update, os.lstat
    for path in paths:
        try:
            found: os.stat_result | None = lstat(path)
        except OSError:
            found = None
        update(_line(found))
    return digest.hexdigest()


def _ints(values: tuple[object, ...], count: int) -> bool:
    return len(values) == count and all(type(value) is int for value in values)


def answers_saved(archive_root: Path) -> list[float]:
    """When each cached answer of the PeerTube API (``peertube/``) was saved: each is asked
    again ``--refresh-after`` later."""
    return [
        found.st_mtime
        for _, found in walk(str(archive_root / "peertube"))
        if found is not None and stat.S_ISREG(found.st_mode)
    ]
