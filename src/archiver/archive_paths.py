"""Where an archive may touch the disk: one safe path segment per id, role or name, and no
symbolic link between the archive's root and a file it writes, replaces, removes or reads.

A link among the archive's own folders (``media/``, ``partial/``…) or at its catalog refuses
the archive as a whole (:class:`~archiver.errors.ArchiveError`, exit 2); one deeper down fails
the item whose path it is on (:class:`~archiver.errors.StorageError`, exit 1), and ``verify``
names it as a problem. The root itself may be a link: the user named it.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from .errors import ArchiveError, StorageError
from .files import unsafe_target
from .names import is_safe_id

CATALOG_NAME = "catalog.sqlite"
# The catalog and the files SQLite keeps beside it: none may be a link or a special file.
CATALOG_FILES = ("", "-wal", "-shm", "-journal")
# The archive's own folders: a link in their place would take every item's files elsewhere.
FOLDERS = ("media", "store", "partial", "quarantine", "derived", "peertube")
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
ROLE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
# A file name in an item's folder: archiver's own (``video-720p.mp4``, ``captions-fr.vtt``) or
# one an earlier release made from a URL with :func:`~archiver.names.safe_filename`.
NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,90}(?:\.[a-z0-9]{1,8})?")
SHA256 = re.compile(r"[0-9a-f]{64}")


def segment(text: str, what: str, pattern: re.Pattern[str] | None = None) -> str:
    """``text`` when it is one safe path segment (an id by :func:`~archiver.names.is_safe_id`,
    else by ``pattern``), or :class:`ArchiveError`: an id, a role or a name from a manifest or
    an instance's answer never makes a path of its own (``..``, a slash, a leading dot).

    >>> segment("video-720p.mp4", "file name", NAME)
    'video-720p.mp4'
    >>> segment("a/b", "role", ROLE)
    Traceback (most recent call last):
    ...
    archiver.errors.ArchiveError: 'a/b': not usable as an archive role: not one safe path segment
    """
    safe = is_safe_id(text) if pattern is None else bool(pattern.fullmatch(text))
    if not safe:
        raise ArchiveError(
            repr(text), f"not usable as an archive {what}: not one safe path segment"
        )
    return text


def inside(root: Path, path: Path, folders: set[str] | None = None) -> Path:
    """``path``, a file or folder below ``root``, once nothing on the way to it from the root
    is a symbolic link, and nothing but its last part is other than a folder; its last part,
    if it exists, must be a folder or a regular file.

    Raises :class:`StorageError` naming the link (or the file in a folder's place): archiver
    never writes, replaces, removes or reads anything through a link, so that nothing outside
    the archive is touched. What does not exist yet is archiver's to make. Checked just before
    the disk is touched; whoever can swap folders for links in the archive while a run works
    is not among what this guards against. So ``folders``, if given, holds the folders found
    real (neither a link nor a file) so far, added to here and not looked at again: an
    archive's run checks each folder once, not once per file in it.
    """
    lstat_inside(root, path, folders)
    return path


def lstat_inside(
    root: Path, path: Path | str, folders: set[str] | None = None
) -> os.stat_result | None:
    """:func:`inside`'s checks, and what ``lstat`` found at ``path`` itself (``None``: nothing
    there, or it cannot be looked at): a file's size is known with no second look. ``path``
    may be a string (``os.path.join(root, relative)``): a run asks of thousands of files."""
    text, top = os.fspath(path), os.fspath(root)
    if folders is not None and os.path.dirname(text) in folders:
        # Its folder was checked (the common case: one lstat a file); ``folders`` holds
        # only paths below ``root``.
        return _last(text)
    below = _below(text, top)
    if below is None:  # not plainly below it as a string: as paths
        parts, base = Path(path).parts, root.parts
        if parts[: len(base)] != base:
            raise ArchiveError(path, f"not inside the archive {root}")
        below = list(parts[len(base) :])
    here = top  # strings, not Paths: a download checks each file often
    for part in below[:-1]:
        here = os.path.join(here, part)
        if folders is not None and here in folders:
            continue
        try:
            mode = os.lstat(here).st_mode
        except OSError:
            # Missing, the rest is archiver's to make; else what follows will say why not.
            return None
        if stat.S_ISLNK(mode):
            raise StorageError(here, LINK_REFUSED)
        if not stat.S_ISDIR(mode):
            raise StorageError(here, "not a folder, where the archive keeps a folder")
        if folders is not None:
            folders.add(here)
    return _last(text) if below else None


def _below(text: str, top: str) -> list[str] | None:
    """The parts of ``text`` below ``top``, when it is plainly so as a string (no empty part,
    no ``.``); ``None`` to ask :mod:`pathlib`, whose parsing costs ten times as much."""
    prefix = top if top.endswith(os.sep) else top + os.sep
    if not text.startswith(prefix):
        return None
    parts = text[len(prefix) :].split(os.sep)
    return None if "" in parts or "." in parts else parts


def _last(text: str) -> os.stat_result | None:
    """What ``lstat`` finds at the last part of a path whose folders were checked."""
    try:
        found = os.lstat(text)
    except OSError:
        return None
    if stat.S_ISLNK(found.st_mode):
        raise StorageError(text, LINK_REFUSED)
    if not (stat.S_ISDIR(found.st_mode) or stat.S_ISREG(found.st_mode)):
        raise StorageError(text, "a device or other special file, not a regular file")
    return found


def refuse_unsafe_folder(folder: Path) -> None:
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


def refuse_unsafe_catalog(root: Path) -> None:
    """Refuse an archive whose catalog, or a file SQLite keeps beside it, is a link or a
    special file (exit 2): SQLite would follow a link, and write where it points."""
    for suffix in CATALOG_FILES:
        path = root / f"{CATALOG_NAME}{suffix}"
        refused = unsafe_target(path)
        if refused is not None:
            reason = f"not usable as the archive's catalog: {refused}"
            raise ArchiveError(path, reason, hint=LINK_HINT)


def refuse_lost_catalog(catalog: Path, media: Path) -> None:
    """Refuse to start a new catalog (exit 2) when it is missing or empty (0 bytes: a copy
    or a disk that failed) but ``media/`` holds files: a new one would show an empty archive,
    fetch everything again, and the versions held and their provenance would be forgotten."""
    try:
        lost = "empty (0 bytes)" if os.lstat(catalog).st_size == 0 else None
    except FileNotFoundError:
        lost = "missing"
    except OSError:
        return  # opening it will say why it cannot be read
    if lost is not None and holds_files(media):
        raise ArchiveError(
            catalog,
            f"{lost}, but media/ holds the files of an archive: a new catalog would forget"
            " every version and where it came from",
            hint=CATALOG_LOST_HINT,
        )


def holds_files(folder: Path) -> bool:
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
