"""The fiche cache's file read back (``cache/fiches.json``): its bytes, at most as many as the
fiches could make, then each record wanted checked field by field into an
:class:`~archiver.entry.Entry`, or the whole file refused (:class:`_Refused`, why in a few words).

What is refused: a link or not a regular file, a file larger than the limit it is given or
holding more objects and lists than the count it is given (:func:`_check_containers`), not
JSON, from another version or build of archiver (:func:`.code_key.parser`, the libraries that
parse fiches with it) or of this format (:data:`FORMAT`), holding an escaped surrogate, a NaN,
a record of the wrong shape or type, an id that is not a safe folder name, a URL archiver would
not fetch, a text past the bounds a fiche has.

Kept apart from :mod:`archiver.fiche_cache`, which decides what the cache is used for (which
fiches are looked up, what is kept and written, when the manifest need not be made again): this
is the one place where the cache's bytes are not trusted, and every check on them is here, each
bounded as a fiche's own field is. It is below the cache and imports nothing of it.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from collections.abc import Mapping
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
from .fiches import ASSET_FIELDS
from .names import is_safe_id
from .urls import url_problem

__all__ = ["FORMAT"]

FORMAT = "archiver-fiche-cache/2"

_ENTRY_KEYS = frozenset(
    ("id", "title", "area", "description", "source", "video", "peertube", "assets",
     "transcript", "credits", "credit_notes", "licence", "extra")
)  # fmt: skip
_VIDEO_KEYS = frozenset(("url", "embed_url", "sha256", "size"))
_ASSET_KINDS = frozenset(ASSET_FIELDS.values())
_HEX = frozenset("0123456789abcdef")
_INT_RANGE = range(-(2**63), 2**63)
# What the cache notes of the manifest it was last written with (fiche_cache._identity): its
# size, modification time, change time and inode.
IDENTITY_FIELDS = 4
# The URLs of most fiches, each one that :func:`archiver.urls.url_problem` accepts: http(s), a
# host name (no user, no brackets), a port that is one, then no blank or control character
# (``\s`` as url_problem has it). Any other is checked by url_problem itself.
_PORT = r"(?:6553[0-5]|655[0-2]\d|65[0-4]\d\d|6[0-4]\d{3}|[1-5]\d{4}|\d{1,4})"
_PLAIN_URL = re.compile(
    rf"(?i:https?)://[A-Za-z0-9.-]+(?::{_PORT})?(?:[/?#][^\s\x00-\x1f\x7f-\x9f]*)?"
)


class _Refused(Exception):
    """What makes the cache file unusable, as the debug log says it."""


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


def _check_containers(data: bytes, limit: int) -> None:
    """Refuse a file that would parse into more objects and lists than ``limit``, counted
    before it is parsed (every ``{`` and ``[``, in a string or not: 20 ms for the 23 MB of
    10,000 fiches, against 130 ms to parse them). Parsed, an empty list costs 80 bytes of
    memory for its 3 bytes of JSON: a file of ``[],[],…`` within the bytes' bound
    (:func:`.fiche_cache.bound`, 160 MB at 10,000 fiches) would take 4 GB. What archiver
    writes has a few of them a record (10 at most but for credits and companion files), and
    one for each container of a fiche's unknown fields, which its YAML spends two bytes on at
    the least; a ``{`` or ``[`` in a text is one a byte of it."""
    found = data.count(b"{") + data.count(b"[")
    if found > limit:
        raise _Refused(f"{found} objects and lists, more than these fiches make ({limit})")


def _no_constant(name: str) -> object:
    raise _Refused(f"{name} is not JSON")


def _records(
    data: bytes, wanted: set[tuple[str, str]], code: str
) -> tuple[dict[tuple[str, str], Entry], int, tuple[int, ...] | None]:
    """The checked entries of a cache file's bytes that are ``wanted``, by key; how many
    records it holds; the manifest file it notes as made from them. ``code``: this build's
    :func:`.code_key.parser`, which the file must name."""
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
    # Another build under the same version number (or another PyYAML, python-frontmatter,
    # Python) may parse otherwise: its parses are not this one's.
    if document.get("code") != code:
        raise _Refused("made by another build of archiver, or with other parsing libraries")
    raw = document.get("entries")
    if not isinstance(raw, list):
        raise _Refused("no list of entries")
    manifest = document.get("manifest")
    if manifest is not None and not (
        isinstance(manifest, list)
        and len(manifest) == IDENTITY_FIELDS
        and all(type(n) is int and n in _INT_RANGE for n in manifest)
    ):
        raise _Refused("manifest: not a file's size, times and inode")
    checker = _Checker()
    found: dict[tuple[str, str], Entry] = {}
    for record in raw:
        source = _mapping(_mapping(record, "entry").get("source"), "source")
        key = (_text(source.get("path"), "path"), _text(source.get("sha256"), "sha256"))
        if key in wanted:  # the others are for fiches gone or changed: dropped unread
            found[key] = checker.entry(record)
    noted = tuple(manifest) if manifest is not None else None
    return found, len(raw), noted


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
