"""The archive's lock: one run at a time, held by ``flock`` on ``archiver.lock``.

``flock`` is released by the kernel when the process dies, SIGKILL included, so a crashed run
never leaves a stale lock behind; closing the descriptor releases it too.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from pathlib import Path

from .errors import ArchiveError, LockHeld, StorageError, describe_os_error

LOCK_NAME = "archiver.lock"


def take_lock(path: Path, root: Path) -> int:
    """Open the lock file ``path`` of the archive at ``root`` and take its ``flock``: the
    descriptor that holds it, or :class:`LockHeld` at once.

    The file is opened without following a link, and must be a regular file: the PID written
    into it would otherwise truncate whatever a link points at, and a device or a pipe is no
    lock. The caller has checked it is neither already; this holds for what appears between.
    """
    # O_NONBLOCK: a FIFO put there in the meantime must not hang the open.
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # made a link between the check and the open
            reason = "not usable as the archive's lock: a symbolic link"
            raise ArchiveError(path, reason) from exc
        reason = f"cannot take the archive's lock: {describe_os_error(exc)}"
        raise StorageError(path, reason) from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        reason = "not usable as the archive's lock: not a regular file"
        raise ArchiveError(path, reason)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _lock_holder(fd)
        os.close(fd)
        raise LockHeld(root, holder) from None
    except OSError as exc:  # a file system without locks (some network shares)
        os.close(fd)
        reason = f"cannot take the archive's lock: {describe_os_error(exc)}"
        raise StorageError(path, reason) from exc
    # The PID is a courtesy to whoever meets the lock held; the flock is the lock. A full
    # disk, which may refuse even these few bytes, must not stop a run that frees space
    # (prune) or only reads (verify).
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
    return fd


def _lock_holder(fd: int) -> int | None:
    """The PID the lock file names, if it names one."""
    try:
        holder = os.read(fd, 32).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(holder) if holder.isdigit() else None


def lock_holder(path: Path) -> int | None:
    """The PID of the run that holds the lock file ``path`` now, as far as can be told
    without touching the lock: the PID it names, if that process is alive and is an archiver
    (or a Python running one). ``None`` otherwise.

    A glance (``archiver status``) never tries the ``flock`` itself: even a shared lock taken
    for an instant could make a run starting at that instant exit 3. The PID in the file is
    left there when a run ends; a run that ended has finished its row in the catalog, which
    is what the caller asks about.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        pid = _lock_holder(fd)
    finally:
        os.close(fd)
    if pid is None or pid <= 0 or pid == os.getpid() or not _alive(pid):
        return None  # (this process asks: whatever run it made has ended)
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()[:4096]
    except OSError:
        return pid  # no /proc here: alive is what can be told
    return pid if b"archiver" in command or b"python" in command else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    return True
