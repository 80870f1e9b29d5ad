"""Filesystem writes that never leave a half-written file under its final name; checksums."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import stat
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

__all__ = [
    "FILE_MODE",
    "HASH_BLOCK",
    "atomic_write_bytes",
    "atomic_write_many",
    "file_sha256",
    "fsync_dir",
    "open_regular",
    "remove_temporaries",
    "temporaries_of",
    "temporary_file",
    "unsafe_target",
]

HASH_BLOCK = 4 * 1024 * 1024


def _umask() -> int:
    """The process's umask, read without changing it where Linux tells it (``os.umask`` sets
    it to read it, a race with any thread creating a file meanwhile)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# The mode a file made with open() gets (0644 under umask 022): a temporary file from mkstemp
# is 0600, and a kit on a LAN share would be unreadable by the server's account.
FILE_MODE = 0o666 & ~_umask()


# What a file is written as before it is renamed to its name: ``.NAME.XXXXXXXX.tmp`` beside
# it, XXXXXXXX from :func:`tempfile.mkstemp` (eight of ``[a-z0-9_]``). A run killed meanwhile
# leaves it: :func:`remove_temporaries` finds exactly these names, and no other.
_TEMPORARY_RANDOM = r"[a-z0-9_]{8}"


def temporary_file(path: Path) -> tuple[int, str]:
    """A new temporary file beside ``path`` to write it through (its descriptor, its name):
    named as :func:`temporaries_of` finds it."""
    return tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")


def temporaries_of(names: str) -> re.Pattern[str]:
    """The names of the temporary files :func:`temporary_file` makes for files whose names
    match the regular expression ``names``.

    >>> bool(temporaries_of("fiches[.]json").fullmatch(".fiches.json.k2_9xqa1.tmp"))
    True
    >>> bool(temporaries_of("fiches[.]json").fullmatch(".fiches.json.old.tmp"))
    False
    """
    return re.compile(rf"\.(?:{names})\.{_TEMPORARY_RANDOM}\.tmp")


def remove_temporaries(folder: Path, names: re.Pattern[str]) -> int:
    """Remove the files of ``folder`` whose names ``names`` matches whole (a run's
    temporaries, left by a kill): regular files, and links unlinked, never followed; nothing
    else, and nowhere else. How many were removed. The caller holds the lock under which they
    were written: none is being written now."""
    removed = 0
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            if names.fullmatch(entry.name) is None:
                continue
            with contextlib.suppress(OSError):
                mode = entry.stat(follow_symlinks=False).st_mode
                if stat.S_ISREG(mode) or stat.S_ISLNK(mode):
                    os.unlink(entry.path)
                    removed += 1
    return removed


def unsafe_target(path: Path) -> str | None:
    """Why archiver must not write to ``path`` (a symbolic link, a device, a pipe, a folder),
    or ``None`` when it is a regular file or nothing yet. Replacing a link by a file, or a
    device node by a regular one, is never what the user asked for.

    >>> unsafe_target(Path("/dev/null"))
    'a device or other special file, not a regular file'
    """
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return None
    except OSError:
        return None  # the write that follows will say why it failed
    if stat.S_ISLNK(mode):
        return "a symbolic link; archiver does not write through links"
    if stat.S_ISDIR(mode):
        return "a folder, not a file"
    if not stat.S_ISREG(mode):
        return "a device or other special file, not a regular file"
    return None


def file_sha256(path: Path, *, on_bytes: Callable[[int], None] | None = None) -> str:
    """The sha256 of a file, read in large blocks; ``on_bytes`` is told of each block."""
    digest = hashlib.sha256()
    with open_regular(path) as stream:
        while block := stream.read(HASH_BLOCK):
            digest.update(block)
            if on_bytes:
                on_bytes(len(block))
    return digest.hexdigest()


def open_regular(path: Path) -> IO[bytes]:
    """``path`` opened to read, if it is a regular file: a FIFO put in its place would block
    the reader for ever, and a device (``/dev/zero``) never ends. Raises ``OSError`` naming
    the path otherwise.

    >>> open_regular(Path("/dev/zero"))
    Traceback (most recent call last):
    OSError: [Errno 22] not a regular file: '/dev/zero'
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opens at once, unread
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename.

    Readers see the old content or the new one, never a mix, even if the process is killed.
    """
    atomic_write_many([(path, data)])


def atomic_write_many(files: Sequence[tuple[Path, bytes]]) -> None:
    """:func:`atomic_write_bytes` for many files at once.

    Every file is written before the first fsync, so the filesystem makes them durable in one
    journal commit rather than one a file (100 small files: 0.19 s one by one). An ``OSError``
    names the file it concerns by its final name: a full disk raises one that names no file,
    and a temporary name means nothing to whoever reads the message.
    """
    temps: list[str] = []
    current: Path | None = None
    try:
        for current, data in files:
            current.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = temporary_file(current)
            temps.append(temp)
            os.fchmod(fd, FILE_MODE)
            with os.fdopen(fd, "wb") as stream:
                stream.write(data)
        for (path, _), temp in zip(files, temps, strict=True):
            current = path
            fd = os.open(temp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        for (path, _), temp in zip(files, temps, strict=True):
            current = path
            os.replace(temp, path)
    except BaseException as exc:
        for temp in temps:
            with contextlib.suppress(OSError):
                os.unlink(temp)
        if isinstance(exc, OSError) and current is not None:
            raise _named(exc, current) from exc
        raise
    for folder in dict.fromkeys(path.parent for path, _ in files):
        fsync_dir(folder)


def _named(exc: OSError, path: Path) -> OSError:
    """``exc``, naming ``path`` as the file it concerns (unless it names it already).

    >>> _named(OSError(28, "No space left on device"), Path("a/v.mp4")).filename
    'a/v.mp4'
    """
    if exc.filename == str(path):
        return exc
    # OSError(errno, strerror, filename) comes back as the errno's own subclass.
    return OSError(exc.errno, exc.strerror or str(exc), str(path))
