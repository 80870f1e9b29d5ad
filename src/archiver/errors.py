"""The one exception tree of archiver.

Every error a user can cause or meet is an ``ArchiverError``. The CLI catches them in exactly
one place, prints ``Error: <message>`` (and ``Hint: <hint>``) as one line each, and exits with
the class's ``exit_code``. Foreign exceptions (``OSError``, ``yaml.YAMLError``, ``httpx``'s,
``sqlite3``'s) are translated where they enter, with ``raise ... from exc``: where archiver
touches the disk, :func:`writing` and :func:`catalog_access` do it, as context managers, so no
``OSError`` or ``sqlite3.Error`` reaches the command line as "an internal error".

    ArchiverError                 exit 1 unless a subclass says otherwise
    ├── UsageError                exit 2: options that do not make sense together
    ├── InputError                exit 2: input that does not validate
    │   ├── FicheError(path, field)
    │   ├── ManifestError(path, field)
    │   └── ConfigError(path, field)
    ├── InvalidInputs             exit 2: several InputErrors, each printed on its own line
    ├── ArchiveError(path)        exit 2: an archive folder or catalog that cannot be used
    ├── DownloadError(url)        one item could not be fetched (reported, the run goes on)
    │   └── ChecksumMismatch(path, expected, actual)
    ├── StorageError(path)        a write the disk refused: full (exit 1); read-only, no
    │                             permission, not a folder (exit 2: an unusable target)
    ├── KitError(path)            a kit that cannot be written: no room on the key (exit 1);
    │   │                         read-only, no permission, not a folder (exit 2)
    │   └── KitRefused(path)      exit 2: a folder that is not archiver's kit, or overlaps
    │                             the archive
    ├── MediaError(path)          ffmpeg or ffprobe failed on a file
    │   └── MediaUnavailable(path)    they are not installed
    └── LockHeld(path, pid)       exit 3: another run holds the archive (or the kit)
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where a catalog is: not by every command line's start
    import sqlite3

__all__ = [
    "EXIT_FAILED",
    "EXIT_LOCKED",
    "EXIT_OK",
    "EXIT_USAGE",
    "ArchiveError",
    "ArchiverError",
    "ChecksumMismatch",
    "ConfigError",
    "DownloadError",
    "FicheError",
    "InputError",
    "InvalidInputs",
    "KitError",
    "KitRefused",
    "LockHeld",
    "ManifestError",
    "MediaError",
    "MediaUnavailable",
    "StorageError",
    "UsageError",
    "catalog_access",
    "describe_os_error",
    "describe_sqlite_error",
    "disk_refused",
    "unusable_target",
    "writing",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_LOCKED = 3


class ArchiverError(Exception):
    """Base of every error archiver reports to its user."""

    exit_code: int = EXIT_FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def lines(self) -> list[str]:
        """The message lines, one per problem, without the ``Error:`` prefix."""
        return [self.message]


class UsageError(ArchiverError):
    """Options or arguments that do not make sense."""

    exit_code = EXIT_USAGE


class InputError(ArchiverError):
    """An input file (fiche, manifest, config) that does not validate.

    The message always names the file, then the field when there is one, then the reason:
    ``fiches/a.md: title: missing required field``.
    """

    exit_code = EXIT_USAGE

    def __init__(
        self, path: Path | str, field: str | None, reason: str, *, hint: str | None = None
    ) -> None:
        self.path = str(path)
        self.field = field
        self.reason = reason
        where = f"{self.path}: {field}" if field else self.path
        super().__init__(f"{where}: {reason}", hint=hint)

    def __reduce__(self) -> tuple[object, ...]:
        # Fiches are parsed in worker processes; their errors travel back pickled.
        return (type(self), (self.path, self.field, self.reason), {"hint": self.hint})


class FicheError(InputError):
    """A fiche that cannot become a manifest entry."""


class ManifestError(InputError):
    """A manifest that does not validate."""


class ConfigError(InputError):
    """A ``--config`` file that does not validate."""


class InvalidInputs(ArchiverError):
    """Several input errors found in one pass, so the user can fix them all at once."""

    exit_code = EXIT_USAGE

    def __init__(self, errors: Sequence[InputError]) -> None:
        self.errors = list(errors)
        count = len(self.errors)
        super().__init__(
            f"{count} invalid input{'s' if count != 1 else ''}",
            hint=self.errors[0].hint if count == 1 else None,
        )

    def lines(self) -> list[str]:
        """One line an error. A single error's hint is printed after it, as every error's is;
        with several, each error's own hint goes on its line: fifteen fiches with a colon in
        their title each need their own quoted fix."""
        if len(self.errors) == 1:
            return [self.errors[0].message]
        return [
            f"{error.message}; {error.hint}" if error.hint else error.message
            for error in self.errors
        ]


class ArchiveError(ArchiverError):
    """An archive that cannot be used: a folder that cannot be created, a broken catalog."""

    exit_code = EXIT_USAGE

    def __init__(self, path: Path | str, reason: str, *, hint: str | None = None) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}", hint=hint)


class DownloadError(ArchiverError):
    """One file could not be fetched; the run reports it and goes on with the others."""

    def __init__(self, url: str, reason: str, *, retryable: bool = False) -> None:
        self.url = url
        self.reason = reason
        self.retryable = retryable
        super().__init__(f"{url}: {reason}")


class ChecksumMismatch(DownloadError):
    """Downloaded bytes whose sha256 or size is not the one pinned in the manifest."""

    def __init__(self, url: str, what: str, expected: str, actual: str) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(url, f"{what} mismatch: expected {expected}, got {actual}")


# What an OSError says when the folder itself cannot be used, whatever a run does: a file where
# a folder should be, a read-only file system, a place the user may not write. No later run
# does better until a person changes something, so it is bad input (exit 2), not items that
# failed (exit 1). A full disk, a quota or a failing key are not among them: the run failed,
# and the next one works once there is room.
_UNUSABLE = frozenset(
    {
        errno.ENOTDIR,
        errno.EISDIR,
        errno.ENOENT,
        errno.EACCES,
        errno.EPERM,
        errno.EROFS,
        errno.ELOOP,
        errno.ENAMETOOLONG,
    }
)


def unusable_target(exc: BaseException | None) -> bool:
    """Whether ``exc`` (an error's cause) says the folder written to cannot be used at all.

    >>> unusable_target(OSError(errno.EROFS, "Read-only file system"))
    True
    >>> unusable_target(OSError(errno.ENOSPC, "No space left on device"))
    False
    """
    return isinstance(exc, OSError) and exc.errno in _UNUSABLE


class _TargetError(ArchiverError):
    """An error writing to a target folder; its exit code follows its cause (see
    :func:`unusable_target`): 2 for a folder that cannot be used, 1 for a run that failed."""

    @property
    def exit_code(self) -> int:  # type: ignore[override]  # a class's, computed for this one
        return EXIT_USAGE if unusable_target(self.__cause__) else EXIT_FAILED


class StorageError(_TargetError):
    """A write to the archive that the disk refused: full, read-only, not permitted.

    Exit 1 for a full disk: the run went as far as it could, and what was held before is
    intact (every write goes through a temporary name or a transaction); the next run works
    once space is freed. Exit 2 when the archive cannot be written at all (read-only, not
    permitted, a file where a folder should be).
    """

    def __init__(self, path: Path | str, reason: str, *, hint: str | None = None) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}", hint=hint)


class KitError(_TargetError):
    """A kit that cannot be written: no room on the key (exit 1), an unusable folder (exit 2:
    read-only, not permitted, a file where a folder should be)."""

    def __init__(self, path: Path | str, reason: str, *, hint: str | None = None) -> None:
        self.path = str(path)
        super().__init__(f"{path}: {reason}", hint=hint)


class KitRefused(KitError):
    """A kit folder archiver will not write: not empty and not a kit of archiver's, inside
    the archive or holding it. Nothing was written."""

    exit_code = EXIT_USAGE


class MediaError(ArchiverError):
    """ffmpeg or ffprobe failed on a file."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class MediaUnavailable(MediaError):
    """ffmpeg/ffprobe are not installed."""


class LockHeld(ArchiverError):
    """Another archiver run holds the archive's lock."""

    exit_code = EXIT_LOCKED

    def __init__(self, path: Path | str, pid: int | None, *, what: str = "archive") -> None:
        self.path = str(path)
        self.pid = pid
        holder = f"process {pid}" if pid else "another process"
        super().__init__(
            f"{self.path} is locked by {holder}",
            hint=f"another archiver run is using this {what}; wait for it to finish",
        )


_OS_REASONS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENAMETOOLONG: "file name too long",
    errno.EIO: "input/output error (a failing disk or a removed key?)",
}


def describe_os_error(exc: OSError) -> str:
    """The reason of an ``OSError`` in a few plain words: ``no space left on the device``."""
    return _OS_REASONS.get(exc.errno or 0) or exc.strerror or str(exc) or type(exc).__name__


@contextlib.contextmanager
def writing(
    path: Path | str,
    doing: str = "cannot write",
    error: type[StorageError] | type[KitError] = StorageError,
) -> Iterator[None]:
    """Map an ``OSError`` raised inside to ``error``, naming the file it concerns.

    >>> with writing("kit/", "cannot write the kit", KitError):
    ...     raise OSError(errno.ENOSPC, "No space left on device", "kit/data/v.mp4")
    Traceback (most recent call last):
    archiver.errors.KitError: kit/data/v.mp4: cannot write the kit: no space left on the device
    """
    try:
        yield
    except OSError as exc:
        where = exc.filename if isinstance(exc.filename, str | Path) else path
        raise error(where, f"{doing}: {describe_os_error(exc)}") from exc


def disk_refused(exc: sqlite3.Error) -> bool:
    """Whether SQLite failed because the disk refused a write: ``SQLITE_FULL`` ("database or
    disk is full"), or ``SQLITE_IOERR_SHMSIZE`` (the shared-memory index of a WAL catalog,
    ``catalog.sqlite-shm``, could not be written: a disk full to its last byte, mostly)."""
    import sqlite3

    code = getattr(exc, "sqlite_errorcode", None)
    return code in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR_SHMSIZE) or "disk is full" in str(exc)


def describe_sqlite_error(exc: sqlite3.Error) -> str:
    """The reason of a ``sqlite3.Error`` in a few plain words."""
    import sqlite3

    code = getattr(exc, "sqlite_errorcode", None)
    if code == sqlite3.SQLITE_IOERR_SHMSIZE:
        return "cannot write its index, catalog.sqlite-shm (is the disk full?)"
    if disk_refused(exc):
        return "no space left on the device (the catalog cannot grow)"
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return f"the catalog is damaged: {exc}"
    if code == sqlite3.SQLITE_READONLY:
        return "the catalog is read-only"
    return f"catalog error: {exc}"


@contextlib.contextmanager
def catalog_access(path: Path | str) -> Iterator[None]:
    """Map a ``sqlite3.Error`` raised inside to :class:`StorageError` naming the catalog."""
    import sqlite3

    try:
        yield
    except sqlite3.Error as exc:
        raise StorageError(path, describe_sqlite_error(exc)) from exc
