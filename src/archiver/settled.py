"""A sync that has nothing to do, known without doing it all again.

Most nights a cron job's sync finds the collection as the last run left it: the same fiches,
nothing due for a check upstream, every file where it was. Finding that out the long way costs
every fiche parsed or looked up, every held file planned, every kit page keyed and every kit
file compared: seconds at 10,000 videos. This module lets a run that changed nothing leave a
*seal* (``cache/sync-seal.pickle`` in the archive), and the next run, when the seal still
holds, give the same report without doing that work.

A seal holds when all of these are as the sealed run found them, each checked by the next run:

- the command: its settings, fiches' and folders' paths, working folder, archiver's and
  Python's versions (:class:`Key`), and a verbosity that asks no more than the sealed run's;
- the fiches: every ``*.md`` the run would read, found the same way, and a sha256 of their
  bytes (read again: an edit that keeps a file's size and time is seen, as the fiche cache sees
  it);
- the catalog: its count of changes and the random token each change draws (triggers, so any
  writer moves them: a ``restore``, a ``download``, an ``audit`` of another process);
- every file and folder of the archive's own folders and of the kit: type, size, times of
  modification and of change, inode (:func:`survey`). A file a person deleted, changed, or
  added (its folder's time moves) is seen;
- the clock: the seal ends when the first held file or cached API answer is due to be asked
  about upstream again (``--refresh-after``).

It is written only by a run that found nothing to do, and only when the archive, the kit and
the catalog were the same after the run as before it: whatever a person or another process
changed while the run worked makes the next run a whole one. Anything unexpected (a seal that
cannot be read, of another format, with a checksum that does not match) is no seal: the run
does all its work, as before this module.

Under the archive's and the kit's locks, a run that finds its seal holds records itself in the
catalog (its run, the items seen again), says again what the sealed run logged, and returns
the sealed run's report with its own time. ``--zim`` runs are never sealed: a ZIM is checked
as it is written.

The seal is a pickle, read by an unpickler that makes only archiver's own dataclasses and
enumerations and paths (:class:`_Unpickler`): a seal put in the archive by someone else can
make no other object and call nothing else.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import io
import logging
import os
import pickle
import stat
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path, PosixPath
from typing import TYPE_CHECKING, Any, TypeVar

from ._version import __version__
from .archive_paths import FOLDERS
from .errors import FicheError
from .fiche_cache import CACHE_FOLDER, cache_folder
from .fiches import find_fiches, read_fiche

if TYPE_CHECKING:
    from .archive import Archive

__all__ = [
    "SEAL_NAME",
    "Key",
    "Seal",
    "Survey",
    "answers_saved",
    "capture_log",
    "forget",
    "key_of",
    "read",
    "write",
]

log = logging.getLogger(__name__)

_R = TypeVar("_R")

FORMAT = 1
SEAL_NAME = "sync-seal.pickle"  # in the archive's cache folder
# A seal larger than this is no seal: 10,000 videos seal in about 33 MB, its head 7 MB.
MAX_SEAL_BYTES = 1 << 30
MAX_HEAD_BYTES = 256 << 20
# What reading a seal that is not one (damaged, truncated, hostile) may raise.
_UNREADABLE = (
    OSError,
    pickle.UnpicklingError,
    ValueError,
    TypeError,
    EOFError,
    AttributeError,
    ImportError,
    IndexError,
    KeyError,
    MemoryError,
    RecursionError,
)


@dataclass(frozen=True)
class Key:
    """What a run is asked to do, and the fiches it reads: the same, and the run is the same."""

    format: int
    version: str
    python: tuple[int, int]
    settings: str
    paths: tuple[str, ...]
    cwd: str
    archive: str
    kit: str
    fiches: str  # sha256 over every fiche's path and bytes, in the order the run reads them


def key_of(paths: Sequence[Path], archive_root: Path, kit: Path, settings: object) -> Key | None:
    """The run's key; ``None`` when a fiche cannot be read (the whole run says why), or when
    the settings (a dataclass, as the run would use them) have no stable text: no seal
    could ever be matched against them."""
    shown = repr(settings)
    if " at 0x" in shown:  # an object without a dataclass's text: no two runs would match
        return None
    digest = hashlib.sha256()
    try:
        for fiche in find_fiches(paths):
            data = read_fiche(fiche)
            name = os.fsencode(fiche.path)
            digest.update(b"%d:%s%d:" % (len(name), name, len(data)))
            digest.update(data)
    except FicheError:
        return None
    return Key(
        format=FORMAT,
        version=__version__,
        python=(sys.version_info[0], sys.version_info[1]),
        settings=shown,
        paths=tuple(str(path) for path in paths),
        cwd=os.getcwd(),
        archive=str(archive_root.absolute()),
        kit=str(kit.absolute()),
        fiches=digest.hexdigest(),
    )


@dataclass(frozen=True)
class Survey:
    """The catalog's changes, every path of the archive's folders and of the kit, and a
    sha256 of what ``lstat`` said of each (:func:`_stats_digest`): a path's folder gaining a
    file moves the folder's time, so what was added is seen too."""

    changes: tuple[int, int]
    paths: tuple[str, ...]
    stats: str

    def holds(self, archive: Archive) -> bool:
        """Whether the catalog and every path are as surveyed."""
        return archive.catalog.changes() == self.changes and _stats_digest(self.paths) == self.stats


def survey(archive: Archive, kit: Path, last_manifest: Path) -> Survey:
    """The catalog's changes, and every file and folder under the archive's own folders
    (``media/``, ``store/``…), the last manifest and the kit, without following links.

    The catalog itself, its lock and the cache folder (this seal's, the fiche cache's) are
    left out: a run writes them whatever it finds.
    """
    paths: list[str] = []
    digest = hashlib.sha256()
    roots = [archive.root / folder for folder in FOLDERS]
    for root in (*roots, last_manifest, kit):
        for path, found in _walk(str(root)):
            paths.append(path)
            digest.update(_line(found))
    return Survey(archive.catalog.changes(), tuple(paths), digest.hexdigest())


def _walk(root: str) -> Iterator[tuple[str, os.stat_result | None]]:
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


@dataclass(frozen=True)
class Seal:
    """A sealed run: what it was asked (:class:`Key`), until when it holds, what it found,
    what it logged and recorded, and its report (read only when the rest holds)."""

    key: Key
    until: float  # a time.time(): when the first file or API answer is due upstream
    survey: Survey
    logged: tuple[tuple[str, int, str], ...]  # (logger, level, message) of the sealed run
    summary: dict[str, Any]
    body_sha256: str
    path: Path
    body_size: int  # the report's pickle: the seal's first bytes

    def report(self, kind: type[_R]) -> _R | None:
        """The sealed run's report, or ``None`` when its bytes are not those sealed or it is
        not a ``kind``."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
            with open(fd, "rb") as stream:
                body = stream.read(self.body_size)
            if hashlib.sha256(body).hexdigest() != self.body_sha256:
                return None
            report = _loads(body)
        except _UNREADABLE:
            return None
        return report if isinstance(report, kind) else None

    def replay_log(self) -> None:
        """Say again what the sealed run logged (a fiche's warning, a kit's note)."""
        for name, level, message in self.logged:
            logging.getLogger(name).log(level, "%s", message)


def _log_level() -> int:
    return logging.getLogger("archiver").getEffectiveLevel()


def seal_path(archive_root: Path) -> Path:
    """Where the archive keeps its seal."""
    return archive_root / CACHE_FOLDER / SEAL_NAME


def _in_real_folder(path: Path) -> bool:
    """Whether ``path``'s folder is a real one, not a link: nothing is read, written or
    removed through a link in the archive."""
    try:
        return stat.S_ISDIR(path.parent.lstat().st_mode)
    except OSError:
        return False


def read(archive_root: Path, key: Key, *, now: float | None = None) -> Seal | None:
    """The archive's seal when it was made for ``key`` and has not yet ended; else ``None``.
    Reads its head only: its survey is checked under the locks, its report read after."""
    path = seal_path(archive_root)
    found = read_head(path)
    if found is None:
        return None
    head, head_at = found
    if not isinstance(head, dict) or head.get("format") != FORMAT or head.get("key") != key:
        return None
    try:
        seal = Seal(
            key=key,
            until=float(head["until"]),
            survey=head["survey"],
            logged=tuple(head["logged"]),
            summary=dict(head["summary"]),
            body_sha256=str(head["body_sha256"]),
            path=path,
            body_size=head_at,
        )
    except (KeyError, TypeError, ValueError):
        return None
    if not isinstance(seal.survey, Survey):
        return None
    # What the sealed run logged is said again as far as this run's verbosity asks: a seal
    # made at -v serves a run at -q, not the other way round.
    if not isinstance(head.get("log_level"), int) or _log_level() < head["log_level"]:
        return None
    return seal if (time.time() if now is None else now) < seal.until else None


def read_head(path: Path) -> tuple[object, int] | None:
    """A seal's head (what :func:`write` put after the report) and where it starts, which is
    the report's size; ``None`` for a file that is no seal."""
    if not _in_real_folder(path):
        return None
    try:
        # Not through a link at its name, and not a pipe someone put there (which would block).
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        with open(fd, "rb") as stream:
            found = os.fstat(fd)
            size = found.st_size
            if not stat.S_ISREG(found.st_mode) or not 8 <= size <= MAX_SEAL_BYTES:
                return None
            stream.seek(size - 8)
            head_at = int.from_bytes(stream.read(8), "big")
            if not size - 8 - MAX_HEAD_BYTES <= head_at <= size - 8:
                return None
            stream.seek(head_at)
            return _loads(stream.read(size - 8 - head_at)), head_at
    except _UNREADABLE:
        return None


def write(
    archive_root: Path,
    key: Key,
    report: object,
    *,
    until: float,
    before: Survey,
    logged: Sequence[tuple[str, int, str]],
    summary: dict[str, Any],
) -> bool:
    """Seal a run that changed nothing (``before``: its survey as it began, equal to the one
    taken now); whether it was sealed. Written beside and renamed: a seal is whole or absent."""
    folder = cache_folder(archive_root / CACHE_FOLDER)  # a real folder, made if missing
    if folder is None:
        return False
    path = folder / SEAL_NAME
    temporary: Path | None = None
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=f".{SEAL_NAME}.", suffix=".tmp")
        temporary = Path(name)
        with open(fd, "wb") as stream:
            # The report first, through a hash (its bytes are never held whole), then the
            # head with the report's checksum, then where the head starts.
            body = _Hashing(stream)
            pickle.dump(report, body, protocol=pickle.HIGHEST_PROTOCOL)
            head_at = stream.tell()
            head = {
                "format": FORMAT,
                "key": key,
                "until": until,
                "survey": before,
                "logged": tuple(logged),
                "log_level": _log_level(),
                "summary": summary,
                "body_sha256": body.hexdigest(),
            }
            pickle.dump(head, stream, protocol=pickle.HIGHEST_PROTOCOL)
            stream.write(head_at.to_bytes(8, "big"))
        os.replace(temporary, path)
    # A full disk, or a report that cannot be pickled (a bug: said, never the run's failure):
    # the next run is a whole one, no harm done.
    except (OSError, pickle.PicklingError, TypeError, AttributeError, RecursionError) as exc:
        log.log(logging.DEBUG if isinstance(exc, OSError) else logging.WARNING,
                "%s: not sealed: %s", path, exc)  # fmt: skip
        if temporary is not None:
            with suppress(OSError):
                temporary.unlink()
        return False
    return True


def forget(archive_root: Path) -> None:
    """Remove the archive's seal: a run that changed something, or could not tell."""
    path = seal_path(archive_root)
    if _in_real_folder(path):
        with suppress(OSError):
            path.unlink()


def answers_saved(archive_root: Path) -> list[float]:
    """When each cached answer of the PeerTube API (``peertube/``) was saved: each is asked
    again ``--refresh-after`` later."""
    return [
        found.st_mtime
        for _, found in _walk(str(archive_root / "peertube"))
        if found is not None and stat.S_ISREG(found.st_mode)
    ]


@contextmanager
def capture_log() -> Iterator[list[tuple[str, int, str]]]:
    """Every record archiver's loggers pass on while the block runs: what a seal says again."""
    records: list[tuple[str, int, str]] = []
    handler = _Capture(records)
    root = logging.getLogger("archiver")
    root.addHandler(handler)
    try:
        yield records
    finally:
        root.removeHandler(handler)


class _Capture(logging.Handler):
    def __init__(self, records: list[tuple[str, int, str]]) -> None:
        super().__init__(logging.NOTSET)
        self._records = records

    def emit(self, record: logging.LogRecord) -> None:
        self._records.append((record.name, record.levelno, record.getMessage()))


class _Unpickler(pickle.Unpickler):
    """Makes archiver's own dataclasses and enumerations and paths, and nothing else: no
    function is found, so none is called."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("pathlib", "PosixPath"):
            return PosixPath
        if module == "archiver" or module.startswith("archiver."):
            found = super().find_class(module, name)
            if isinstance(found, type) and (
                dataclasses.is_dataclass(found) or issubclass(found, enum.Enum)
            ):
                return found
        raise pickle.UnpicklingError(f"{module}.{name}: not part of a seal")


class _Hashing(io.RawIOBase):
    """A file written through, its bytes hashed on the way."""

    def __init__(self, stream: io.BufferedWriter) -> None:
        super().__init__()
        self._stream, self._hash = stream, hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._hash.update(data)
        return self._stream.write(data)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def _loads(data: bytes) -> object:
    return _Unpickler(io.BytesIO(data)).load()
