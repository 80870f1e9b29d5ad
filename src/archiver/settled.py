"""A sync that has nothing to do, known without doing it all again.

Most nights a cron job's sync finds the collection as the last run left it: the same fiches,
nothing due for a check upstream, every file where it was. Finding that out the long way costs
every fiche parsed or looked up, every held file planned, every kit page keyed and every kit
file compared: seconds at 10,000 videos. This module lets a run that changed nothing leave a
*seal* (``cache/sync-seal-<key>.pickle`` in the archive, one for each command, the last
:data:`MAX_SEALS` kept), and the next run of the same command, when the seal still holds,
give the same report without doing that work.

A seal holds when all of these are as the sealed run found them, each checked by the next run:

- the command (:class:`Key`): the settings that matter to a run with nothing to fetch, the
  fiches' and folders' paths, the working folder, archiver's code (every file of the package,
  by size and time of change, and the libraries that parse fiches: :func:`.code_key.parser`,
  which keys the fiche cache too) and the recipe of the kit's pages (templates, the libraries
  that render), Python's version; and a verbosity that asks no more than the sealed run's;
- the fiches: every ``*.md`` the run would read, found the same way, and the sha256 of each
  one's bytes (read again: an edit that keeps a file's size and time is seen, as the fiche
  cache sees it). Each is read once: when no seal matches, the fiche cache finds their
  entries by these sha256 (:func:`hash_fiches`);
- the catalog: its count of changes and the random token each change draws (triggers, so any
  writer moves them: a ``restore``, a ``download``, another tool; not an audit's own notes);
- every file and folder of the archive's own folders and of the kit (through the link, when
  the kit is named by one): type, size, times of modification and of change, inode
  (:func:`survey`). A file a person deleted, changed, or added (its folder's time moves) is
  seen;
- the clock: the seal ends when the first held file or cached API answer is due to be asked
  about upstream again (``--refresh-after``).

It is written only by a run that found nothing to do, and only when the archive, the kit and
the catalog were the same after the run as before it: whatever a person or another process
changed while the run worked makes the next run a whole one. Anything unexpected (a seal that
cannot be read, of another format, with a field of the wrong kind, a checksum that does not
match, a catalog whose count was tampered with) is no seal: the run does all its work, as
before this module.

Under the archive's and the kit's locks, a run that finds its seal holds records itself in the
catalog (its run, the items seen again), says again what the sealed run logged, and returns
the sealed run's report with its own time. ``--zim`` runs are never sealed: a ZIM is checked
as it is written.

The seal is a pickle, read by an unpickler that makes only archiver's own dataclasses and
enumerations and paths (:class:`_Unpickler`): a seal put in the archive by someone else can
make no other object and call nothing else. Its key is read first, and alone (a few hundred
bytes): a seal of another command costs nothing to pass over.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import io
import logging
import os
import pickle
import re
import stat
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path, PosixPath
from typing import IO, TYPE_CHECKING, Any, TypeVar

from . import code_key
from ._version import __version__
from .errors import FicheError
from .fiche_cache import CACHE_FOLDER, Found, cache_folder, hash_all
from .files import remove_temporaries, temporaries_of, temporary_file
from .survey import Survey, answers_saved, survey

if TYPE_CHECKING:
    pass

__all__ = [
    "MAX_SEALS",
    "Key",
    "Seal",
    "Survey",
    "answers_saved",
    "capture_log",
    "forget",
    "hash_fiches",
    "inputs_of",
    "key_in",
    "key_of",
    "read",
    "seal_path",
    "survey",
    "write",
]

log = logging.getLogger(__name__)

_R = TypeVar("_R")

FORMAT = 3
SEAL_PREFIX = "sync-seal-"  # in the archive's cache folder: sync-seal-<key digest>.pickle
# Seals kept, the most recently written: one for each command run against the archive (two
# kits fed from one archive, a daytime and a nightly sync), without gathering those of
# commands no longer run (10,000 videos seal in about 33 MB).
MAX_SEALS = 4
# A seal is written beside (files.temporary_file) and renamed: what a killed run leaves. The
# second form is what earlier builds wrote (``.sync-seal-XXXXXXXX.tmp``).
_SEAL_NAMES = rf"{SEAL_PREFIX}[0-9a-f]{{32}}\.pickle"
_TEMPORARIES = re.compile(
    rf"{temporaries_of(_SEAL_NAMES).pattern}|\.{SEAL_PREFIX}[a-z0-9_]{{8}}\.tmp"
)
# A seal larger than this is no seal; its key is read first, and alone.
MAX_SEAL_BYTES = 1 << 30
# The head holds every path the survey found (90,000 at 10,000 videos: 7.1 MB). Unpickled, a
# hostile pickle costs up to 230 bytes of memory a byte (an empty set a byte; a list, 80): a
# head of 64 MiB took 5.3 GB as lists. An archive of more than 20,000 videos or so is not
# sealed: each of its syncs is a whole one.
MAX_HEAD_BYTES = 16 << 20
# The opcodes that make a new object of one or two bytes (MARK, before a list, dict or set of
# the items after it; an empty list, dict, set), as bytes: a seal's head and key hold a few
# (11 in a 10,000-video head), and such bytes in its paths, which are tens of bytes each. More
# than one in every _MAKERS_SPAN bytes is no seal of archiver's, refused before it is
# unpickled (counted in 5 ms for 7 MB): a head of 16 MiB of them would take 1.4 to 4 GB;
# with this, the worst within the bound (a tuple of one item every two bytes) takes 0.6 GB.
_MAKERS = b"(]}\x8f"
_MAKERS_SPAN = 16
MAX_KEY_BYTES = 1 << 20
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
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class Key:
    """What a run is asked to do, with what code, and the fiches it reads: the same, and the
    run is the same."""

    format: int
    command: str  # sync, package
    version: str
    python: tuple[int, int]
    code: str  # every file of the package, by name, size and time; the parser's libraries
    recipe: str  # how the kit's pages are made (the caller's: templates, libraries)
    settings: str
    paths: tuple[str, ...]
    cwd: str
    archive: str
    kit: str
    inputs: str  # what the command reads: the fiches' paths and sha256, a manifest's sha256

    def digest(self) -> str:
        """What names this key's seal."""
        return hashlib.sha256(repr(self).encode("utf-8", "surrogatepass")).hexdigest()[:32]


def key_of(
    command: str,
    inputs: str | None,
    paths: Sequence[Path],
    archive_root: Path,
    kit: Path,
    settings: object,
    recipe: str,
) -> Key | None:
    """``command``'s key, over ``inputs`` (a digest of what it reads: :func:`inputs_of`, a
    manifest's sha256; ``None`` when they cannot be read, and the whole run says why) named
    by ``paths``; ``None`` too when the working folder is gone, or when the settings (a
    dataclass, as they matter to a seal) have no stable text: no seal could ever be matched
    against them."""
    shown = repr(settings)
    if inputs is None or " at 0x" in shown:  # no two runs would match
        return None
    try:
        cwd = os.getcwd()
    except OSError:  # a working folder deleted under the run: relative paths mean nothing
        return None
    return Key(
        format=FORMAT,
        command=command,
        version=__version__,
        python=(sys.version_info[0], sys.version_info[1]),
        code=code_key.parser(),
        recipe=recipe,
        settings=shown,
        paths=tuple(str(path) for path in paths),
        cwd=cwd,
        archive=str(archive_root.absolute()),
        kit=str(kit.absolute()),
        inputs=inputs,
    )


def hash_fiches(paths: Sequence[Path]) -> Found | None:
    """Every fiche under ``paths``, found as a sync finds them, read and hashed once (read
    again on each run: an edit that keeps a file's size and time is seen); ``None`` when a
    path is missing (the run's build says so). A sync's build takes them as they are
    (:func:`.manifest.build_valid`): its fiche cache finds their entries by these sha256."""
    try:
        return hash_all(paths)
    except FicheError:
        return None


def inputs_of(found: Found | None) -> str | None:
    """The digest a sync's key holds of its fiches: a sha256 over each one's path and sha256;
    ``None`` when one cannot be read (no run is sealed over it)."""
    if found is None:
        return None
    digest = hashlib.sha256()
    for fiche, seen in zip(found.files, found.hashed, strict=True):
        if seen is None:
            return None
        name = os.fsencode(fiche.path)
        digest.update(b"%d:%s%s" % (len(name), name, seen[0].encode("ascii")))
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
            fd = os.open(self.path, _OPEN_FLAGS)
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


def seal_path(archive_root: Path, key: Key) -> Path:
    """Where the archive keeps the seal of ``key``'s command."""
    return archive_root / CACHE_FOLDER / f"{SEAL_PREFIX}{key.digest()}.pickle"


def _in_real_folder(path: Path) -> bool:
    """Whether ``path``'s folder is a real one, not a link: nothing is read, written or
    removed through a link in the archive."""
    try:
        return stat.S_ISDIR(path.parent.lstat().st_mode)
    except OSError:
        return False


def read(archive_root: Path, key: Key, *, now: float | None = None) -> Seal | None:
    """The archive's seal of ``key`` when it has not yet ended, and its head is sound; else
    ``None``. Reads its key first, then its head: its survey is checked under the locks, its
    report read after."""
    path = seal_path(archive_root, key)
    found = read_head(path, key)
    if found is None:
        return None
    head, body_size = found
    try:
        seal = Seal(
            key=key,
            until=float(head["until"]),
            survey=head["survey"],
            logged=tuple(head["logged"]),
            summary=dict(head["summary"]),
            body_sha256=str(head["body_sha256"]),
            path=path,
            body_size=body_size,
        )
        level = head["log_level"]
    except (KeyError, TypeError, ValueError):
        return None
    sound = (
        isinstance(seal.survey, Survey)
        and seal.survey.sound()
        and all(
            isinstance(one, tuple)
            and len(one) == 3
            and isinstance(one[0], str)
            and type(one[1]) is int
            and isinstance(one[2], str)
            for one in seal.logged
        )
        and all(isinstance(name, str) for name in seal.summary)
        and type(level) is int
    )
    # What the sealed run logged is said again as far as this run's verbosity asks: a seal
    # made at -v serves a run at -q, not the other way round.
    if not sound or _log_level() < level:
        return None
    return seal if (time.time() if now is None else now) < seal.until else None


@contextmanager
def _opened(path: Path) -> Iterator[tuple[IO[bytes], int, int, object] | None]:
    """The seal's file at ``path``, open, with where its head and its key start and its key
    (read first, and alone: a few hundred bytes); ``None`` for a file that is no seal. Never
    through a link (at its name or its folder's), never a pipe someone put there (which would
    block), never larger than its bounds."""
    if not _in_real_folder(path):
        yield None
        return
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError:
        yield None
        return
    with open(fd, "rb") as stream:
        opened: tuple[IO[bytes], int, int, object] | None = None
        try:
            found = os.fstat(fd)
            size = found.st_size
            if stat.S_ISREG(found.st_mode) and 16 <= size <= MAX_SEAL_BYTES:
                stream.seek(size - 16)
                trailer = stream.read(16)
                head_at = int.from_bytes(trailer[:8], "big")
                key_at = int.from_bytes(trailer[8:], "big")
                if (
                    0 <= head_at <= key_at <= size - 16
                    and size - 16 - key_at <= MAX_KEY_BYTES
                    and key_at - head_at <= MAX_HEAD_BYTES
                ):
                    stream.seek(key_at)
                    key = _loads_bounded(stream.read(size - 16 - key_at))
                    opened = (stream, head_at, key_at, key)
        except _UNREADABLE:
            opened = None
        yield opened


def key_in(path: Path) -> Key | None:
    """The key a seal's file was written for (``None``: no seal): which command sealed it."""
    with _opened(path) as found:
        return found[3] if found is not None and isinstance(found[3], Key) else None


def read_head(path: Path, key: Key) -> tuple[dict[str, Any], int] | None:
    """A seal's head (what :func:`write` put after the report) and where it starts, which is
    the report's size; ``None`` for a file that is no seal, or the seal of another key (its
    key read before its head)."""
    with _opened(path) as found:
        if found is None or found[3] != key:
            return None
        stream, head_at, key_at, _ = found
        try:
            stream.seek(head_at)
            head = _loads_bounded(stream.read(key_at - head_at))
        except _UNREADABLE:
            return None
    if not isinstance(head, dict) or head.get("format") != FORMAT:
        return None
    return head, head_at


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
    taken now); whether it was sealed. Written beside and renamed: a seal is whole or absent.
    The caller holds the archive's lock: the temporaries a killed run left are removed here,
    and the seals beyond the :data:`MAX_SEALS` most recent."""
    folder = cache_folder(archive_root / CACHE_FOLDER)  # a real folder, made if missing
    if folder is None:
        return False
    _tidy(folder)
    path = seal_path(archive_root, key)
    temporary: Path | None = None
    try:
        fd, name = temporary_file(path)
        temporary = Path(name)
        with open(fd, "wb") as stream:
            # The report first, through a hash (its bytes are never held whole), then the
            # head with the report's checksum, then the key, then where those two start.
            body = _Hashing(stream)
            pickle.dump(report, body, protocol=pickle.HIGHEST_PROTOCOL)
            head_at = stream.tell()
            head = {
                "format": FORMAT,
                "until": until,
                "survey": before,
                "logged": tuple(logged),
                "log_level": _log_level(),
                "summary": summary,
                "body_sha256": body.hexdigest(),
            }
            pickle.dump(head, stream, protocol=pickle.HIGHEST_PROTOCOL)
            key_at = stream.tell()
            pickle.dump(key, stream, protocol=pickle.HIGHEST_PROTOCOL)
            stream.write(head_at.to_bytes(8, "big") + key_at.to_bytes(8, "big"))
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


def _tidy(folder: Path) -> None:
    """Remove what a killed run's seal left half written, and the seals past the
    :data:`MAX_SEALS` - 1 most recent (the one about to be written makes the last)."""
    remove_temporaries(folder, _TEMPORARIES)
    seals: list[tuple[int, Path]] = []
    with suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            if not entry.is_file(follow_symlinks=False):
                continue
            if entry.name.startswith(SEAL_PREFIX) and entry.name.endswith(".pickle"):
                with suppress(OSError):
                    seals.append((entry.stat(follow_symlinks=False).st_mtime_ns, Path(entry.path)))
    for _, old in sorted(seals, reverse=True)[MAX_SEALS - 1 :]:
        with suppress(OSError):
            old.unlink()


def forget(archive_root: Path, key: Key) -> None:
    """Remove the seal of ``key``'s command: a run that changed something, or could not tell."""
    path = seal_path(archive_root, key)
    if _in_real_folder(path):
        with suppress(OSError):
            path.unlink()


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


def _loads_bounded(data: bytes) -> object:
    """:func:`_loads`, for a pickle whose size says little of the memory it takes: refused
    (``ValueError``) when it holds more of :data:`_MAKERS` than archiver's own would."""
    makers = len(data) - len(data.translate(None, _MAKERS))
    if makers > len(data) // _MAKERS_SPAN + 64:
        raise ValueError(f"{makers} objects made in {len(data)} bytes: not a seal")
    return _loads(data)
