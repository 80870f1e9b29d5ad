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
those bytes, or none.

**Never trusted blindly.** The file is the archive's, as trusted as its catalog, but what it
holds is checked before any of it is used, and a file that fails a check is ignored whole (and
rewritten by the run): one that is a link or not a regular file, larger than the fiches could
make (:func:`bound`), not JSON, from another version of archiver or of this format, holding an
escaped surrogate, a NaN, a record of the wrong shape or type, an id that is not a safe folder
name, a URL archiver would not fetch, a text past the bounds a fiche has. A record is used only
for a fiche found in this run whose bytes have its sha256: the cache can add no entry, and
stands for no fiche that changed or left (those records are dropped when it is rewritten).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._version import __version__
from .entry import (
    MAX_AREA_CHARS,
    MAX_DESCRIPTION_CHARS,
    MAX_NESTING,
    MAX_TITLE_CHARS,
    MAX_URL_CHARS,
    Asset,
    Credit,
    Entry,
    Licence,
    PeerTubeRef,
    Source,
    Video,
)
from .errors import FicheError
from .fiches import ASSET_FIELDS, FicheFile, find_fiches, read_fiche, warn_fiche
from .files import atomic_write_bytes, unsafe_target
from .names import is_safe_id
from .urls import url_problem

__all__ = [
    "CACHE_FOLDER",
    "CACHE_NAME",
    "FORMAT",
    "FicheCache",
    "Found",
    "Hashed",
    "bound",
    "cache_folder",
    "hash_all",
    "hashed",
]

log = logging.getLogger(__name__)

# What archiver keeps in an archive to spare work, and nothing else: all of it may be deleted
# (the next run makes it again, more slowly).
CACHE_FOLDER = "cache"
CACHE_NAME = "fiches.json"  # in CACHE_FOLDER
FORMAT = "archiver-fiche-cache/1"
# A record is a fiche's text with its field names: at most a few times the fiche's bytes
# (JSON escapes a tab as two bytes, a control character as six). A larger file is no cache
# archiver wrote for these fiches, and is not read: parsed, JSON takes up to twenty times its
# size in memory.
GROWTH = 8
SLACK = 64 * 1024

_ENTRY_KEYS = frozenset(
    ("id", "title", "area", "description", "source", "video", "peertube", "assets",
     "transcript", "credits", "credit_notes", "licence", "extra")
)  # fmt: skip
_VIDEO_KEYS = frozenset(("url", "embed_url", "sha256", "size"))
_ASSET_KINDS = frozenset(ASSET_FIELDS.values())
_HEX = frozenset("0123456789abcdef")
_INT_RANGE = range(-(2**63), 2**63)
# The URLs of most fiches, each one that :func:`archiver.urls.url_problem` accepts: http(s), a
# host name (no user, no brackets), a port that is one, then no blank or control character
# (``\s`` as url_problem has it). Any other is checked by url_problem itself.
_PORT = r"(?:6553[0-5]|655[0-2]\d|65[0-4]\d\d|6[0-4]\d{3}|[1-5]\d{4}|\d{1,4})"
_PLAIN_URL = re.compile(
    rf"(?i:https?)://[A-Za-z0-9.-]+(?::{_PORT})?(?:[/?#][^\s\x00-\x1f\x7f-\x9f]*)?"
)


# A fiche's sha256 (hexadecimal) and size, from one read of its bytes.
Hashed = tuple[str, int]


class _Refused(Exception):
    """What makes the cache file unusable, as the debug log says it."""


def hashed(fiche: FicheFile) -> Hashed:
    """``fiche``'s sha256 and size, from one read of its bytes (:func:`read_fiche`, whose
    :class:`FicheError` it raises): what keys its entry."""
    data = read_fiche(fiche)
    return hashlib.sha256(data).hexdigest(), len(data)


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
    """``fiche``'s sha256 and size; ``None`` when it cannot be read."""
    try:
        return hashed(fiche)
    except FicheError:
        return None


def bound(fiche_bytes: int) -> int:
    """The most bytes a cache of fiches holding ``fiche_bytes`` in all may take."""
    return GROWTH * fiche_bytes + SLACK


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
        # (size, mtime, inode): while it is still so, it need not be made again (40 µs an entry).
        self._manifest: tuple[int, int, int] | None = None
        self._manifest_read: tuple[int, int, int] | None = None
        self._manifest_noted = False  # by this run, for its entries

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
        total = 0
        for fiche, seen in zip(files, hashed_as, strict=True):
            if seen is None:
                keys.append(None)  # parsing it says why, as without a cache
                continue
            total += seen[1]
            keys.append((fiche.relpath, seen[0]))
        wanted = {key for key in keys if key is not None}
        cached = self._load(wanted, bound(total))
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
        """Whether ``path`` is, as far as its size, time and inode tell, the manifest that
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

    def _load(self, wanted: set[tuple[str, str]], limit: int) -> dict[tuple[str, str], Entry]:
        """The usable records of the cache file for the fiches ``wanted``; none when the file
        is missing or fails any check (said in the debug log)."""
        assert self.path is not None  # noqa: S101 - lookup() checked it
        try:
            if self.path.parent.is_symlink():
                raise _Refused(f"{self.path.parent} is a symbolic link")
            data = _read_bounded(self.path, limit)
            found, held, manifest = _records(data, wanted)
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


def _read_bounded(path: Path, limit: int) -> bytes:
    """The cache file's bytes: a regular file, not reached through a link at its name, and
    at most ``limit`` bytes (a larger one is not read)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags)
    with open(fd, "rb") as stream:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _Refused("not a regular file")
        if info.st_size > limit:
            raise _Refused(f"{info.st_size} bytes, more than these fiches make ({limit})")
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise _Refused(f"more than these fiches make ({limit} bytes)")
    return data


def _no_constant(name: str) -> object:
    raise _Refused(f"{name} is not JSON")


def _records(
    data: bytes, wanted: set[tuple[str, str]]
) -> tuple[dict[tuple[str, str], Entry], int, tuple[int, int, int] | None]:
    """The checked entries of a cache file's bytes that are ``wanted``, by key; how many
    records it holds; the manifest file it notes as made from them."""
    # An escaped surrogate (`\ud800`) decodes to a string no UTF-8 file can hold: archiver's
    # own files never have one (nor any escape but a control character's), so a file that
    # does is not one of them.
    if b"\\ud" in data or b"\\uD" in data:
        raise _Refused("an escaped surrogate")
    document = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    if not isinstance(document, dict):
        raise _Refused("not a JSON object")
    if document.get("format") != FORMAT or document.get("archiver") != __version__:
        raise _Refused(
            f"made by {document.get('archiver')!r} in format {document.get('format')!r};"
            f" this is archiver {__version__}, format {FORMAT}"
        )
    raw = document.get("entries")
    if not isinstance(raw, list):
        raise _Refused("no list of entries")
    manifest = document.get("manifest")
    if manifest is not None and not (
        isinstance(manifest, list)
        and len(manifest) == 3
        and all(type(n) is int and n in _INT_RANGE for n in manifest)
    ):
        raise _Refused("manifest: not a file's size, time and inode")
    checker = _Checker()
    found: dict[tuple[str, str], Entry] = {}
    for record in raw:
        source = _mapping(_mapping(record, "entry").get("source"), "source")
        key = (_text(source.get("path"), "path"), _text(source.get("sha256"), "sha256"))
        if key in wanted:  # the others are for fiches gone or changed: dropped unread
            found[key] = checker.entry(record)
    noted = (manifest[0], manifest[1], manifest[2]) if manifest is not None else None
    return found, len(raw), noted


def _identity(path: Path) -> tuple[int, int, int] | None:
    """A file's size, modification time and inode (``None``: no regular file there)."""
    try:
        found = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(found.st_mode):
        return None
    return found.st_size, found.st_mtime_ns, found.st_ino


def _mapping(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _Refused(f"{what}: not an object")
    return value


def _text(value: object, what: str, limit: int | None = None) -> str:
    if not isinstance(value, str):
        raise _Refused(f"{what}: not text")
    if limit is not None and len(value) > limit:
        raise _Refused(f"{what}: longer than {limit} characters")
    return value


def _optional_text(value: object, what: str, limit: int | None = None) -> str | None:
    return None if value is None else _text(value, what, limit)


def _texts(value: object, what: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _Refused(f"{what}: not a list")
    return tuple(_text(item, what) for item in value)


class _Checker:
    """Turns a record into an :class:`Entry` with the checks a manifest's reader makes where
    a wrong value could do harm: ids become folder names, URLs are fetched, texts are shown
    and bounded. URLs repeat across a collection (its licence, its instance): each is checked
    once."""

    def __init__(self) -> None:
        self._urls: dict[str, str | None] = {}

    def url(self, value: object, what: str) -> str:
        text = _text(value, what, MAX_URL_CHARS)
        if _PLAIN_URL.fullmatch(text) is not None:
            return text  # what url_problem accepts, and 10 times faster to see
        if text not in self._urls:
            self._urls[text] = url_problem(text)
        if self._urls[text] is not None:
            raise _Refused(f"{what}: {self._urls[text]}")
        return text

    def optional_url(self, value: object, what: str) -> str | None:
        return None if value is None else self.url(value, what)

    def entry(self, record: object) -> Entry:
        raw = _mapping(record, "entry")
        if raw.keys() != _ENTRY_KEYS:
            raise _Refused("entry: not the fields of an entry")
        entry_id = _text(raw["id"], "id")
        if not is_safe_id(entry_id):
            raise _Refused("id: not a safe id")
        title = _text(raw["title"], "title", MAX_TITLE_CHARS)
        if not title.strip():
            raise _Refused("title: empty")
        source = _mapping(raw["source"], "source")
        if source.keys() != {"path", "sha256"}:
            raise _Refused("source: not the fields of a source")
        video = _mapping(raw["video"], "video")
        if video.keys() != _VIDEO_KEYS:
            raise _Refused("video: not the fields of a video")
        entry = Entry(
            id=entry_id,
            title=title,
            area=_optional_text(raw["area"], "area", MAX_AREA_CHARS),
            description=_optional_text(raw["description"], "description", MAX_DESCRIPTION_CHARS),
            source=Source(path=_text(source["path"], "path"), sha256=_sha256(source["sha256"])),
            video=Video(
                url=self.optional_url(video["url"], "video.url"),
                embed_url=self.optional_url(video["embed_url"], "video.embed_url"),
                sha256=None if video["sha256"] is None else _sha256(video["sha256"]),
                size=_size(video["size"]),
            ),
            peertube=self.peertube(raw["peertube"]),
            assets=self.assets(raw["assets"]),
            transcript=_text(raw["transcript"], "transcript"),
            credits=tuple(self.credit(item) for item in _list(raw["credits"], "credits")),
            credit_notes=_texts(raw["credit_notes"], "credit_notes"),
            licence=self.licence(raw["licence"]),
            extra=_extra(raw["extra"]),
        )
        if entry.video.url is None and entry.video.embed_url is None:
            raise _Refused("video: no URL")
        return entry

    def peertube(self, value: object) -> PeerTubeRef | None:
        if value is None:
            return None
        raw = _mapping(value, "peertube")
        if raw.keys() != {"instance", "uuid"}:
            raise _Refused("peertube: not the fields of a PeerTube video")
        uuid = _text(raw["uuid"], "peertube.uuid")
        if not is_safe_id(uuid) or len(uuid) != 36:
            raise _Refused("peertube.uuid: not a UUID")
        return PeerTubeRef(instance=self.url(raw["instance"], "peertube.instance"), uuid=uuid)

    def assets(self, value: object) -> tuple[Asset, ...]:
        assets = []
        for item in _list(value, "assets"):
            raw = _mapping(item, "asset")
            if raw.keys() != {"kind", "url"} or raw["kind"] not in _ASSET_KINDS:
                raise _Refused("asset: not a companion file")
            assets.append(Asset(kind=raw["kind"], url=self.url(raw["url"], "asset.url")))
        if len({asset.kind for asset in assets}) != len(assets):
            raise _Refused("assets: a kind given twice")
        return tuple(assets)

    def credit(self, value: object) -> Credit:
        raw = _mapping(value, "credit")
        if raw.keys() != {"role", "names"}:
            raise _Refused("credit: not the fields of a credit")
        return Credit(role=_text(raw["role"], "credit.role"), names=_texts(raw["names"], "names"))

    def licence(self, value: object) -> Licence | None:
        if value is None:
            return None
        raw = _mapping(value, "licence")
        if raw.keys() != {"name", "url"}:
            raise _Refused("licence: not the fields of a licence")
        url = self.optional_url(raw["url"], "licence.url")
        return Licence(name=_text(raw["name"], "licence.name"), url=url)


def _list(value: object, what: str) -> list[object]:
    if not isinstance(value, list):
        raise _Refused(f"{what}: not a list")
    return value


def _sha256(value: object) -> str:
    text = _text(value, "sha256")
    if len(text) != 64 or not _HEX.issuperset(text):
        raise _Refused("sha256: not 64 lowercase hexadecimal digits")
    return text


def _size(value: object) -> int | None:
    if value is None:
        return None
    if type(value) is not int or value < 0 or value not in _INT_RANGE:
        raise _Refused("video.size: not a size in bytes")
    return value


def _extra(value: object) -> dict[str, Any]:
    """The fields archiver does not know: JSON values, text keys, nested at most as a fiche
    may nest them, integers as SQLite holds them."""
    extra = _mapping(value, "extra")
    pending: list[tuple[object, int]] = [(extra, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            if depth > MAX_NESTING:
                raise _Refused("extra: nested too deeply")
            if isinstance(item, dict):
                pending.extend((v, depth + 1) for v in item.values())
            else:
                pending.extend((v, depth + 1) for v in item)
        elif isinstance(item, int) and not isinstance(item, bool) and item not in _INT_RANGE:
            raise _Refused("extra: a number too large")
        elif isinstance(item, float) and not math.isfinite(item):
            raise _Refused("extra: a number too large")  # 1e999 reads as infinity
    return dict(extra)
