"""The file operations of a kit update: a new file made durably in the staging folder (its
bytes written, or hard-linked from the archive), the journal noted, the kit's folders made for
new files and removed once emptied, a failed update undone, and its error said in one line.

Kept apart from :mod:`.write`, which decides what an update writes, moves and removes and in
what order: these are the steps it takes on each file, each never through a link, never over
an existing file, and each leaving the previous kit as it was when it fails.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from ..errors import KitError, describe_os_error
from ..files import fsync_dir
from ..progress import Progress
from .bag import JOURNAL, PAYLOAD
from .derive import Source

COPY_BLOCK = 4 * 1024 * 1024


def _make_folders(kit: Path, folder: Path) -> list[Path]:
    """Make ``folder`` (in ``kit``) and the folders above it that are missing; those made,
    the topmost first."""
    missing: list[Path] = []
    while folder != kit and not folder.is_dir():
        missing.append(folder)
        folder = folder.parent
    for each in reversed(missing):
        each.mkdir()
    return list(reversed(missing))


def _unstage(staging: Path, made: list[Path]) -> None:
    """Remove the staging folder of an update that failed, and the kit's folders made for its
    files: the kit is left exactly as it was."""
    shutil.rmtree(staging, ignore_errors=True)
    for folder in reversed(made):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only when empty


def _kit_error(exc: OSError, kit: Path, writing_to: Path) -> KitError:
    """A failed update as one line: the file concerned (by its final name, not its temporary
    one; a full disk's error names none) and the reason."""
    named = Path(exc.filename) if isinstance(exc.filename, str) else None
    if named is not None and not named.is_relative_to(kit):  # a file of the archive
        reason = f"cannot read it ({describe_os_error(exc)}); the kit was left as it was"
        return KitError(named, reason)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return KitError(writing_to, "the key is full; the kit was left as it was")
    reason = f"cannot write the kit ({describe_os_error(exc)}); it was left as it was"
    return KitError(writing_to, reason)


def _create(path: Path) -> BinaryIO:
    """A new file at ``path``, open for writing: never an existing one, never through a link.
    Its mode follows the umask (0644 under 022), as any file the user makes."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.fdopen(os.open(path, flags, 0o666), "wb")


def _write_new(temp: Path, data: bytes) -> None:
    """Write ``data`` durably to the new file ``temp`` (a staged name: none of it is seen)."""
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()
    with _create(temp) as writer:
        writer.write(data)
        writer.flush()
        os.fsync(writer.fileno())


def _stage(temp: Path, source: Source, *, link: bool, progress: Progress, key: str) -> bool:
    """Put one file's bytes at ``temp``, durably; True when hard-linked."""
    temp.parent.mkdir(parents=True, exist_ok=True)
    if source.data is not None:
        _write_new(temp, source.data)
        progress.advance(key, source.size)
        return False
    assert source.path is not None  # noqa: S101 - one of the two is always set
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()
    if link:
        try:
            os.link(source.path, temp)
            return True  # no bytes written: none counted
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                raise
    with source.path.open("rb") as reader, _create(temp) as writer:
        while block := reader.read(COPY_BLOCK):
            writer.write(block)
            progress.advance(key, len(block))
        writer.flush()
        os.fsync(writer.fileno())
    return False


def _note_journal(kit: Path, staging: Path, journal: bytes) -> None:
    """Note, durably, the paths this update is about to put in place (``journal``): were it
    interrupted before its manifests name them, they are still provably archiver's."""
    temp = staging / JOURNAL
    try:
        staging.mkdir(exist_ok=True)
        _write_new(temp, journal)
        os.replace(temp, kit / JOURNAL)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    fsync_dir(kit)


def _remove_emptied_folders(kit: Path, removed: Iterable[Path]) -> None:
    """Remove the folders that held only files this update removed, up to ``data/``: not
    an empty folder someone else made."""
    root = kit / PAYLOAD
    for path in sorted(removed, key=lambda p: len(p.parts), reverse=True):
        folder = path.parent
        while folder != root and folder.is_relative_to(root):
            try:
                folder.rmdir()  # only when empty
            except OSError:
                break
            folder = folder.parent
