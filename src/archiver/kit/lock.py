"""The kit's lock: one run at a time updates a kit, as one run at a time uses an archive.

The lock is an ``flock`` of the kit folder itself: nothing is written on the key for it, there
is no lock file a link could redirect, and the kernel releases it when the process dies,
SIGKILL included, so a crashed run never blocks the next. Two runs from two archives on one
kit would otherwise interleave their files and manifests into a kit that fails verify.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import KitError, KitRefused, LockHeld, describe_os_error

__all__ = ["locked"]


@contextlib.contextmanager
def locked(kit: Path) -> Iterator[None]:
    """Hold the kit's lock, or raise :class:`LockHeld` (exit 3) at once.

    The lock is an ``flock`` of the kit folder itself: nothing to write on the key, no lock
    file a link could redirect, and the kernel releases it when the process dies.
    """
    try:
        fd = os.open(kit, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ENOTDIR:
            raise KitRefused(kit, "not a folder; nothing was written") from exc
        reason = f"cannot take the kit's lock: {describe_os_error(exc)}"
        raise KitError(kit, reason) from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockHeld(kit, _holder(fd), what="kit") from None
        except OSError as exc:  # a file system without locks (some network shares)
            reason = f"cannot take the kit's lock: {describe_os_error(exc)}"
            raise KitError(kit, reason) from exc
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def _holder(fd: int) -> int | None:
    """The process holding the flock on ``fd``'s folder, as ``/proc/locks`` tells it."""
    info = os.fstat(fd)
    key = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    try:
        text = Path("/proc/locks").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        # "1: FLOCK  ADVISORY  WRITE 1234 00:2d:5678 0 EOF"; a waiter's line has "->" in it.
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == key:
            return int(fields[4]) if fields[4].isdigit() else None
    return None
