"""Filesystem writes that never leave a half-written file under its final name; checksums."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["HASH_BLOCK", "atomic_write_bytes", "atomic_write_many", "file_sha256", "fsync_dir"]

HASH_BLOCK = 4 * 1024 * 1024


def file_sha256(path: Path, *, on_bytes: Callable[[int], None] | None = None) -> str:
    """The sha256 of a file, read in large blocks; ``on_bytes`` is told of each block."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(HASH_BLOCK):
            digest.update(block)
            if on_bytes:
                on_bytes(len(block))
    return digest.hexdigest()


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
            fd, temp = tempfile.mkstemp(
                dir=current.parent, prefix=f".{current.name}.", suffix=".tmp"
            )
            temps.append(temp)
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
