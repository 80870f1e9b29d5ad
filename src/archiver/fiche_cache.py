"""A cache of parsed fiches, so that a sync parses again only the fiches that changed.

Parsing a fiche (its YAML, every check, its Markdown sections) takes about 150 µs: a
collection of 10,000 fiches spent over a second of every nightly sync, on two cores, to give
the same manifest again. The cache keeps the entry of each fiche that parsed, keyed by the
fiche's path in the collection and the sha256 of its bytes, in one JSON file of the archive
(``cache/fiches.json``), rewritten under the archive's lock only when an entry came or went.

**The key is the content, not the size and time.** Every fiche is read and hashed on every
run (9 µs a fiche, a tenth of a second for 10,000): a file's size and modification time do not
prove its bytes unchanged. An edit that keeps the size keeps them both once its time is put
back (``touch -r``, ``cp -p``, ``rsync -a``, an editor or a checkout that preserves it), and
two writes within one tick of the file system's clock share a time; the ctime and inode would
catch the first but not a file system without a real ctime (FAT, some network shares), nor an
edit in the same tick as the run's read of it (git's "racy clean" entries). The sha256 is also
the one the manifest records (``source.sha256``): a cached entry is one parsed from exactly
those bytes, or none. And parsed by this very code: the file names the build of archiver and
the parsing libraries that wrote it (:func:`.code_key.parser`, which keys a sync's seal too),
not only archiver's version, which another build of the same code (a fix applied by hand, a
checkout between releases) keeps.

**Never trusted blindly.** The file is the archive's, as trusted as its catalog, but what it
holds is checked before any of it is used, and a file that fails a check is ignored whole (and
rewritten by the run): :mod:`archiver.fiche_cache_reader` reads it back, at most
:func:`bound` bytes, field by field. A record is used only for a fiche found in this run whose
bytes have its sha256: the cache can add no entry, and stands for no fiche that changed or left
(those records are dropped when it is rewritten).

Kept apart from that reader: this module is the cache's use (which fiches are read and hashed,
what is looked up, kept and saved, when the manifest need not be made again); the reader is
what a record must be to become an :class:`~archiver.entry.Entry` again. ``FORMAT`` and
``_PLAIN_URL`` are defined there, and importable from here as they were.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import code_key
from ._version import __version__
from .entry import Entry
from .errors import FicheError
from .fiche_cache_reader import _PLAIN_URL as _PLAIN_URL
from .fiche_cache_reader import FORMAT, _check_containers, _read_bounded, _records, _Refused
from .fiches import FicheFile, find_fiches, read_fiche, warn_fiche
from .files import atomic_write_bytes, remove_temporaries, temporaries_of, unsafe_target

__all__ = [
    "CACHE_FOLDER",
    "CACHE_NAME",
    "FORMAT",
    "FicheCache",
    "Found",
    "Hashed",
    "bound",
    "cache_folder",
    "containers",
    "hash_all",
    "tidy_temporaries",
]

log = logging.getLogger(__name__)

# What archiver keeps in an archive to spare work, and nothing else: all of it may be deleted
# (the next run makes it again, more slowly).
CACHE_FOLDER = "cache"
CACHE_NAME = "fiches.json"  # in CACHE_FOLDER
# A record is a fiche's text with its field names: at most a few times the fiche's bytes
# (JSON escapes a tab as two bytes, a control character as six), and its path, which is not in
# those bytes (six bytes a character at most, escaped). A larger file is no cache archiver
# wrote for these fiches, and is not read: parsed, JSON takes up to twenty times its size in
# memory.
GROWTH = 8
PATH_GROWTH = 6
# What a record holds whatever its fiche: its field names, the fiche's sha256, its id (at most
# names.MAX_NAME_LENGTH characters, or a UUID). 350 bytes for a one-line fiche.
RECORD_BYTES = 512
# The objects and lists ({ and [) a record holds whatever its fiche: the entry, its source,
# video, PeerTube video, licence, assets, credits, credit notes and unknown fields (9), each
# companion file and credit (each a few bytes of the fiche at least).
RECORD_CONTAINERS = 16
SLACK = 64 * 1024
# What a run writes through a temporary file (files.temporary_file) at the top of an archive
# and in its cache folder, other than the seals (settled tidies its own): the last manifest
# (sync.LAST_MANIFEST), this cache, the notes of a kit's files (kit.page_cache.pages_path,
# ``kit-<digest>.json``, and any ``kit-<digest>.<part>.json`` beside it).
# A run killed while writing one leaves its temporary, the size of the file (tens of MB at
# 10,000 videos): the next run under the lock removes it, and nothing else.
_MANIFEST_NAME = "manifest.json"
_TOP_TEMPORARIES = temporaries_of(re.escape(_MANIFEST_NAME))
_CACHE_TEMPORARIES = temporaries_of(
    rf"{re.escape(CACHE_NAME)}|kit-[0-9a-f]{{32}}(?:\.[a-z]+)?\.json"
)


# A fiche's sha256 (hexadecimal) and size, from one read of its bytes.
Hashed = tuple[str, int]


@dataclass(frozen=True)
class Found:
    """The fiches under some paths, each read and hashed once: a sync's seal is keyed by their
    sha256 (:mod:`archiver.settled`), and when no seal matches them, the build looks them up
    in the cache (:meth:`FicheCache.lookup`) instead of reading every fiche again. Only their
    sha256 are kept, not their bytes: a collection's fiches need not fit in memory."""

    files: list[FicheFile]
    hashed: list[Hashed | None]  # of each file; None: it cannot be read (its parse says why)


def hash_all(paths: Iterable[Path]) -> Found:
    """Every fiche under ``paths`` (:func:`find_fiches`, whose :class:`FicheError` it raises),
    read and hashed."""
    files = find_fiches(paths)
    return Found(files, [_hashed_or_none(fiche) for fiche in files])


def _hashed_or_none(fiche: FicheFile) -> Hashed | None:
    """``fiche``'s sha256 and size, from one read of its bytes (what keys its entry); ``None``
    when it cannot be read (its parse says why)."""
    try:
        data = read_fiche(fiche)
    except FicheError:
        return None
    return hashlib.sha256(data).hexdigest(), len(data)


def containers(fiche_bytes: int, count: int) -> int:
    """The most objects and lists (``{`` and ``[``) a cache of ``count`` fiches holding
    ``fiche_bytes`` in all may hold: what its records hold whatever their fiches, and one for
    every two bytes of the fiches (a container in a fiche's YAML takes two at least; a
    fiche whose texts are half brackets has its cache ignored, and is parsed on each run).
    Parsed, each costs 80 bytes or more: the bound on bytes alone let a file of ``[],[],…``
    take 4 GB at 10,000 fiches, this one 0.8 GB."""
    return RECORD_CONTAINERS * count + fiche_bytes // 2 + 16


def bound(fiche_bytes: int, path_chars: int = 0, count: int = 0) -> int:
    """The most bytes a cache of ``count`` fiches holding ``fiche_bytes`` in all, whose paths
    in the collection have ``path_chars`` characters in all, may take. The paths count: 2,000
    one-line fiches under a folder of 400 characters hold 1 MB, their records 1.5 MB."""
    return GROWTH * fiche_bytes + PATH_GROWTH * path_chars + RECORD_BYTES * count + SLACK


class FicheCache:
    """The parsed fiches of the last run, by (path in the collection, sha256 of the bytes).

    :meth:`lookup` reads every fiche (or takes its sha256 from a :class:`Found`) and gives the
    cached entry of each one unchanged; :meth:`keep` notes the entries of this run;
    :meth:`save` writes them when they differ from what was read. ``path`` is the cache file
    (``None``: nothing is read or written).
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._kept: dict[tuple[str, str], Entry] = {}
        # The keys of the records the file holds, and whether it holds anything else (records
        # of fiches gone or changed; or it was ignored): either way it is rewritten.
        self._read: frozenset[tuple[str, str]] = frozenset()
        self._stale = False
        self.hits = 0
        # The file the manifest of exactly these entries was last written to, as it was then
        # (:func:`_identity`): while it is still so, it need not be made again (40 µs an entry).
        self._manifest: tuple[int, ...] | None = None
        self._manifest_read: tuple[int, ...] | None = None
        self._manifest_noted = False  # by this run, for its entries
        self._code: str | None = None  # code_key.parser(), asked once

    @property
    def code(self) -> str:
        """This build's :func:`.code_key.parser`: what the file must name to be read, and
        names when written."""
        if self._code is None:
            self._code = code_key.parser()
        return self._code

    def lookup(
        self, files: Sequence[FicheFile], hashed_as: Sequence[Hashed | None] | None = None
    ) -> list[Entry | None]:
        """The cached entry of each fiche whose bytes are unchanged, else ``None`` (to parse:
        a new or changed fiche, one that cannot be read, all of them without a cache).
        ``hashed_as``: each file's sha256 and size, when the run read them already
        (:attr:`Found.hashed`): not read again, a fiche's entry is the one of the bytes hashed
        then."""
        if self.path is None or not os.path.lexists(self.path):
            return [None] * len(files)  # nothing to find: no fiche read twice
        if hashed_as is None:
            hashed_as = [_hashed_or_none(fiche) for fiche in files]
        keys: list[tuple[str, str] | None] = []
        total = chars = 0
        for fiche, seen in zip(files, hashed_as, strict=True):
            if seen is None:
                keys.append(None)  # parsing it says why, as without a cache
                continue
            total += seen[1]
            chars += len(fiche.relpath)
            keys.append((fiche.relpath, seen[0]))
        wanted = {key for key in keys if key is not None}
        limits = bound(total, chars, len(wanted)), containers(total, len(wanted))
        cached = self._load(wanted, *limits)
        found: list[Entry | None] = []
        for fiche, key in zip(files, keys, strict=True):
            entry = cached.get(key) if key is not None else None
            if entry is not None:
                # Said again, as the parse said it: both make the lines from the entry.
                warn_fiche(fiche, entry)
                self.hits += 1
            found.append(entry)
        return found

    def keep(self, entries: Iterable[Entry]) -> None:
        """Note the entries of this run's fiches (cached or parsed): what :meth:`save` writes."""
        for entry in entries:
            self._kept[(entry.source.path, entry.source.sha256)] = entry

    @property
    def changed(self) -> bool:
        """Whether the file would now hold other entries than it held when read."""
        return self.path is not None and (self._stale or set(self._kept) != self._read)

    def holds_manifest(self, path: Path) -> bool:
        """Whether ``path`` is, as far as its size, times and inode tell, the manifest that
        this run's entries make: the same entries as when it was last written (noted by
        :meth:`wrote_manifest`), and the file untouched since."""
        if self.path is None or self.changed or self._manifest is None:
            return False
        return _identity(path) == self._manifest

    def wrote_manifest(self, path: Path) -> None:
        """Note that ``path`` now holds the manifest of this run's entries (:meth:`save`
        keeps the note)."""
        self._manifest = _identity(path)
        self._manifest_noted = True

    def save(self) -> bool:
        """Write the entries kept, when they changed; whether the file was written. The caller
        holds the archive's lock. A cache that cannot be written is a note in the log: the
        next run parses the fiches again, nothing worse."""
        changed = self.changed
        # A note made for other entries says nothing of these.
        manifest = self._manifest if self._manifest_noted or not changed else None
        if self.path is None or not (changed or manifest != self._manifest_read):
            return False
        if cache_folder(self.path.parent) is None:
            return False
        unsafe = unsafe_target(self.path)
        if unsafe is not None:
            log.warning("%s: the fiche cache is not written: %s", self.path, unsafe)
            return False
        document = {
            "format": FORMAT,
            "archiver": __version__,
            "code": self.code,
            "manifest": list(manifest) if manifest is not None else None,
            "entries": [self._kept[key].to_json() for key in sorted(self._kept)],
        }
        data = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
        try:
            atomic_write_bytes(self.path, data.encode("utf-8"))
        except OSError as exc:
            log.info("%s: the fiche cache is not written: %s", self.path, exc.strerror or exc)
            return False
        self._read, self._stale = frozenset(self._kept), False
        self._manifest = self._manifest_read = manifest
        return True

    def _load(
        self, wanted: set[tuple[str, str]], limit: int, most_containers: int
    ) -> dict[tuple[str, str], Entry]:
        """The usable records of the cache file for the fiches ``wanted``; none when the file
        is missing, larger than ``limit`` bytes, holds more than ``most_containers`` objects
        and lists, or fails any other check (said in the debug log)."""
        assert self.path is not None  # noqa: S101 - lookup() checked it
        try:
            if self.path.parent.is_symlink():
                raise _Refused(f"{self.path.parent} is a symbolic link")
            data = _read_bounded(self.path, limit)
            _check_containers(data, most_containers)
            found, held, manifest = _records(data, wanted, self.code)
        except FileNotFoundError:
            return {}
        except (OSError, _Refused, ValueError, RecursionError) as exc:
            # Not worth a warning: the fiches are parsed again and the file rewritten.
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            log.info("%s: the fiche cache is ignored (%s); it is made again", self.path, why)
            self._stale = True
            return {}
        self._read, self._stale = frozenset(found), held != len(found)
        self._manifest = self._manifest_read = manifest
        return found


def cache_folder(folder: Path) -> Path | None:
    """``folder`` (an archive's :data:`CACHE_FOLDER`), made if missing, when archiver may
    write in it: a real folder, not a link to one elsewhere (said in a warning: nothing is
    written through it, and runs only take longer). The caller holds the archive's lock."""
    with contextlib.suppress(OSError):
        folder.mkdir(exist_ok=True)
    try:
        mode = folder.lstat().st_mode
    except OSError as exc:
        log.info("%s: no cache is kept: %s", folder, exc.strerror or exc)
        return None
    if not stat.S_ISDIR(mode):
        why = "a symbolic link" if stat.S_ISLNK(mode) else "not a folder"
        log.warning("%s: %s; archiver keeps no cache there, and runs take longer", folder, why)
        return None
    return folder


def tidy_temporaries(archive_root: Path) -> int:
    """Remove what runs killed while writing left of the archive's last manifest, its fiche
    cache and its notes of kits' pages (the temporary files they are written through, by their
    exact names: a person's ``notes.tmp`` stays, a link is unlinked, never followed); how many.
    The caller holds the archive's lock: no run is writing them now. Nothing is removed from
    a cache folder that is a link (:func:`cache_folder`, which makes none)."""
    removed = remove_temporaries(archive_root, _TOP_TEMPORARIES)
    folder = archive_root / CACHE_FOLDER
    with contextlib.suppress(OSError):
        if stat.S_ISDIR(folder.lstat().st_mode):
            removed += remove_temporaries(folder, _CACHE_TEMPORARIES)
    return removed


def _identity(path: Path) -> tuple[int, int, int, int] | None:
    """A file's size, modification time, change time and inode (``None``: no regular file
    there). The change time because the others can all be kept by an edit: written in place
    (the same inode) to the same size, its modification time put back (``touch -r``,
    ``os.utime``), a manifest would otherwise never be made again, and what a fiche that stops
    validating falls back on would be what someone wrote there. No one can set a change time:
    any write, ``utime`` or rename moves it."""
    try:
        found = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(found.st_mode):
        return None
    return found.st_size, found.st_mtime_ns, found.st_ctime_ns, found.st_ino
