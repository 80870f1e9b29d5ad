"""A manifest read back: the :class:`Manifest` record, and the strict reading of an untrusted one.

Loading a manifest validates every field, because a manifest may be edited by hand or come from
elsewhere, and its ids become folder names: a bad one must not reach the filesystem. A manifest
holds nothing a fiche could not have produced: bounded numbers, no NaN, no duplicate keys, valid
Unicode, bounded nesting. The record is defined here, below :mod:`archiver.manifest` that builds
and writes it, as what a manifest may hold is what this reader accepts.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from . import collector
from .entry import (
    MAX_AREA_CHARS,
    MAX_DESCRIPTION_CHARS,
    MAX_NESTING,
    MAX_TITLE_CHARS,
    MAX_URL_CHARS,
    Asset,
    Credit,
    Entry,
    JSONValue,
    Licence,
    PeerTubeRef,
    Source,
    Video,
)
from .errors import ManifestError
from .names import is_safe_id, shown_name
from .urls import url_problem

__all__ = [
    "MAX_MANIFEST_BYTES",
    "SCHEMA_VERSION",
    "Manifest",
    "load_manifest",
    "loads",
    "read_manifest_bytes",
]

SCHEMA_VERSION = 1
ASSET_KINDS = frozenset({"fiche_pdf", "transcript_pdf"})
# A 10,000-fiche collection makes a manifest of about 55 MB; parsed, JSON takes up to ~20 times
# its size in memory, so the bound is also one on memory.
MAX_MANIFEST_BYTES = 256 * 1024 * 1024
# Integers a manifest may hold: what SQLite stores (sizes go to the catalog) and fiches produce.
_INT_RANGE = range(-(2**63), 2**63)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

T = TypeVar("T")


@dataclass(frozen=True)
class Manifest:
    """A collection's entries, in manifest order."""

    entries: tuple[Entry, ...]
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "schema_version": self.schema_version,
            "entries": [entry.to_json() for entry in self.entries],
        }


def load_manifest(path: Path) -> Manifest:
    """Read and validate a manifest file; raise :class:`ManifestError` on any problem."""
    return loads(read_manifest_bytes(path), path=path)


def read_manifest_bytes(path: Path) -> bytes:
    """A manifest file's bytes, read once (a pipe included), at most
    :data:`MAX_MANIFEST_BYTES`; raise :class:`ManifestError` when it cannot be read or is
    larger."""
    too_large = f"larger than {MAX_MANIFEST_BYTES // 2**20} MiB; not a manifest"
    try:
        with path.open("rb") as stream:
            # A file's size is known before reading it; a pipe's is not, hence the read's bound.
            if os.fstat(stream.fileno()).st_size > MAX_MANIFEST_BYTES:
                raise ManifestError(path, None, too_large)
            data = stream.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise ManifestError(path, None, f"cannot read: {exc.strerror or exc}") from exc
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(path, None, too_large)
    return data


def loads(data: bytes | str, *, path: Path | str = "<manifest>") -> Manifest:
    """Parse and validate a manifest's text.

    >>> loads('{"entries": [], "schema_version": 1}')
    Manifest(entries=(), schema_version=1)
    >>> loads('{"entries": [], "entries": [], "schema_version": 1}')
    Traceback (most recent call last):
    archiver.errors.ManifestError: <manifest>: manifest: key 'entries' given twice
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        text = text.removeprefix("\ufeff")  # a byte-order mark, as Windows editors save UTF-8
        if not isinstance(data, bytes) and not text.isascii():
            text.encode("utf-8")  # a str from a caller may hold lone surrogates
        with collector.paused():  # a dict and strings an entry, no cycle (issue 14)
            document = json.loads(
                text,
                object_pairs_hook=_json_object,
                parse_int=_json_int,
                parse_float=_json_float,
                parse_constant=_json_constant,
            )
    except UnicodeDecodeError as exc:
        raise ManifestError(path, None, f"not UTF-8 (invalid byte at offset {exc.start})") from exc
    except UnicodeEncodeError as exc:
        raise ManifestError(
            path, None, f"not UTF-8 (a lone surrogate at offset {exc.start})"
        ) from exc
    except json.JSONDecodeError as exc:
        raise ManifestError(
            path, None, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc
    except RecursionError as exc:
        # json's C parser counts its depth against the interpreter's recursion limit and
        # raises cleanly: a bound of about a thousand levels that costs nothing.
        raise ManifestError(path, None, "invalid JSON: nested too deeply") from exc
    # `\ud800` written as an escape decodes to a lone surrogate, which no UTF-8 file (the
    # catalog, a kit page, the manifest written again) can hold: the strings are then checked.
    # Looking for `\ud`/`\uD` is a memchr-speed scan (a regex took 40 ms on 50 MB); it also
    # finds escapes below the surrogates, which only costs the check.
    suspect = "\\ud" in text or "\\uD" in text
    with collector.paused():
        return _Reader(path, check_surrogates=suspect).manifest(document)


@dataclass(frozen=True)
class _Refused:
    """A JSON value a manifest may not hold, kept with why so that its field can be named."""

    reason: str

    def __repr__(self) -> str:
        return f"<{self.reason}>"


class _Duplicated(dict[str, JSONValue]):
    """A JSON object that gave a key twice (``key``): refused where the reader meets it.

    ``json.loads`` keeps the last value silently, other readers the first: what a reviewer
    reads in a diff would not be what archiver uses.
    """

    key: str = ""


def _json_object(pairs: list[tuple[str, JSONValue]]) -> dict[str, JSONValue]:
    found = dict(pairs)
    if len(found) == len(pairs):
        return found
    duplicated = _Duplicated(found)
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            duplicated.key = key
            break
        seen.add(key)
    return duplicated


def _json_int(text: str) -> int | _Refused:
    # int() refuses more than 4,300 digits with a ValueError; 19 digits hold 63 bits.
    value = int(text) if len(text.lstrip("-")) <= 19 else None
    if value is None or value not in _INT_RANGE:
        return _Refused("number too large (at most 64 bits)")
    return value


def _json_float(text: str) -> float | _Refused:
    value = float(text)
    return value if math.isfinite(value) else _Refused("number too large for a 64-bit float")


def _json_constant(name: str) -> _Refused:
    return _Refused(f"{name} is not JSON (no NaN or Infinity in a manifest)")


# What a manifest's ``source.path`` may be: the path of a fiche inside the folder given, as
# find_fiches records it (relative, '/'-separated, no '.' or '..' segment).
def _source_path_problem(text: str) -> str | None:
    if not text:
        return "must not be empty"
    if "\x00" in text:
        return "holds a NUL character"
    if text.startswith("/"):
        return "must be relative to the collection's folder, not absolute"
    if any(part in ("", ".", "..") for part in text.split("/")):
        return "must not have empty, '.' or '..' segments"
    return None


class _Reader:
    """Turns a parsed JSON document into a :class:`Manifest`, naming the field at fault."""

    def __init__(self, path: Path | str, *, check_surrogates: bool = False) -> None:
        self.path = path
        self.check_surrogates = check_surrogates

    def fail(self, where: str, reason: str) -> ManifestError:
        return ManifestError(self.path, where, reason)

    def manifest(self, doc: JSONValue) -> Manifest:
        doc = self.mapping(doc, "manifest")
        version = doc.get("schema_version")
        if isinstance(version, _Refused):
            raise self.fail("schema_version", version.reason)
        if type(version) is not int or version != SCHEMA_VERSION:
            raise self.fail(
                "schema_version",
                f"unsupported version {version!r}; this archiver reads version {SCHEMA_VERSION}",
            )
        raw_entries = self.sequence(doc.get("entries"), "entries")
        entries = tuple(self.entry(item, f"entries[{i}]") for i, item in enumerate(raw_entries))
        seen: set[str] = set()
        for i, entry in enumerate(entries):
            if entry.id in seen:
                raise self.fail(f"entries[{i}].id", f"duplicate id {entry.id!r}")
            seen.add(entry.id)
        return Manifest(entries=entries, schema_version=version)

    def entry(self, raw: JSONValue, at: str) -> Entry:
        raw = self.mapping(raw, at)
        entry_id = self.string(raw.get("id"), f"{at}.id")
        if not is_safe_id(entry_id):
            shown = entry_id if len(entry_id) <= 120 else f"{entry_id[:120]}…"
            raise self.fail(
                f"{at}.id",
                f"{shown!r} is not a safe id (lowercase ASCII letters, digits and dashes, "
                "at most 100 characters)",
            )
        title = self.string(raw.get("title"), f"{at}.title", limit=MAX_TITLE_CHARS)
        if not title.strip():
            raise self.fail(f"{at}.title", "must not be empty")
        source = self.mapping(raw.get("source"), f"{at}.source")
        video = self.mapping(raw.get("video"), f"{at}.video")
        peertube = self.optional(raw.get("peertube"), f"{at}.peertube", self.mapping)
        licence = self.optional(raw.get("licence"), f"{at}.licence", self.mapping)
        entry = Entry(
            id=entry_id,
            title=title,
            area=self.optional(raw.get("area"), f"{at}.area", self.area),
            description=self.optional(
                raw.get("description"), f"{at}.description", self.description
            ),
            source=Source(
                path=self.source_path(source.get("path"), f"{at}.source.path"),
                sha256=self.string(source.get("sha256"), f"{at}.source.sha256"),
            ),
            video=Video(
                url=self.optional(video.get("url"), f"{at}.video.url", self.url),
                embed_url=self.optional(video.get("embed_url"), f"{at}.video.embed_url", self.url),
                sha256=self.optional(video.get("sha256"), f"{at}.video.sha256", self.sha256),
                size=self.optional(video.get("size"), f"{at}.video.size", self.size),
            ),
            peertube=(
                PeerTubeRef(
                    instance=self.instance(peertube.get("instance"), f"{at}.peertube.instance"),
                    uuid=self.uuid(peertube.get("uuid"), f"{at}.peertube.uuid"),
                )
                if peertube is not None
                else None
            ),
            assets=self.assets(raw.get("assets", []), f"{at}.assets"),
            transcript=self.string(raw.get("transcript", ""), f"{at}.transcript"),
            credits=tuple(
                self.credit(c, f"{at}.credits[{i}]")
                for i, c in enumerate(self.sequence(raw.get("credits", []), f"{at}.credits"))
            ),
            credit_notes=tuple(
                self.string(n, f"{at}.credit_notes[{i}]")
                for i, n in enumerate(
                    self.sequence(raw.get("credit_notes", []), f"{at}.credit_notes")
                )
            ),
            licence=(
                Licence(
                    name=self.string(licence.get("name"), f"{at}.licence.name"),
                    url=self.optional(licence.get("url"), f"{at}.licence.url", self.url),
                )
                if licence is not None
                else None
            ),
            extra=self.extra_fields(raw.get("extra", {}), f"{at}.extra"),
        )
        if entry.video.url is None and entry.video.embed_url is None:
            raise self.fail(f"{at}.video", "needs url or embed_url")
        return entry

    def assets(self, raw: JSONValue, at: str) -> tuple[Asset, ...]:
        """The companion files; one of each kind, as each kind names one file of the item."""
        assets = tuple(self.asset(a, f"{at}[{i}]") for i, a in enumerate(self.sequence(raw, at)))
        kinds: set[str] = set()
        for i, asset in enumerate(assets):
            if asset.kind in kinds:
                raise self.fail(f"{at}[{i}].kind", f"{asset.kind!r} given twice")
            kinds.add(asset.kind)
        return assets

    def extra_fields(self, raw: JSONValue, at: str) -> Mapping[str, JSONValue]:
        """Fields archiver does not know, kept as they are once checked like the rest."""
        extra = self.mapping(raw, at)
        self.check_value(extra, at, 0)
        return extra

    def check_value(self, value: JSONValue, at: str, depth: int) -> None:
        if isinstance(value, str):
            self.string(value, at)
        elif isinstance(value, _Refused):
            raise self.fail(at, value.reason)
        elif isinstance(value, dict | list):
            if depth >= MAX_NESTING:
                raise self.fail(at, f"nested more than {MAX_NESTING} levels deep")
            if isinstance(value, dict):
                self.mapping(value, at)
                for key, item in value.items():
                    self.string(key, f"{at} (a key)")
                    self.check_value(item, f"{at}.{shown_name(key)}", depth + 1)
            else:
                for index, item in enumerate(value):
                    self.check_value(item, f"{at}[{index}]", depth + 1)

    def asset(self, raw: JSONValue, at: str) -> Asset:
        raw = self.mapping(raw, at)
        kind = self.string(raw.get("kind"), f"{at}.kind")
        if kind not in ASSET_KINDS:
            raise self.fail(f"{at}.kind", f"unknown kind {kind!r}")
        return Asset(kind=kind, url=self.url(raw.get("url"), f"{at}.url"))

    def credit(self, raw: JSONValue, at: str) -> Credit:
        raw = self.mapping(raw, at)
        names = self.sequence(raw.get("names", []), f"{at}.names")
        return Credit(
            role=self.string(raw.get("role"), f"{at}.role"),
            names=tuple(self.string(n, f"{at}.names[{i}]") for i, n in enumerate(names)),
        )

    # -- scalar and container checks ---------------------------------------------------------

    def optional(self, value: JSONValue, at: str, check: Callable[[Any, str], T]) -> T | None:
        return None if value is None else check(value, at)

    def mapping(self, value: JSONValue, at: str) -> Mapping[str, JSONValue]:
        if not isinstance(value, dict):
            raise self.fail(at, f"expected an object, got {_json_kind(value)}")
        if isinstance(value, _Duplicated):
            raise self.fail(at, f"key {value.key!r} given twice")
        return value

    def sequence(self, value: JSONValue, at: str) -> Sequence[JSONValue]:
        if not isinstance(value, list):
            raise self.fail(at, f"expected a list, got {_json_kind(value)}")
        return value

    def string(self, value: JSONValue, at: str, *, limit: int | None = None) -> str:
        if not isinstance(value, str):
            raise self.fail(at, f"expected a string, got {_json_kind(value)}")
        if limit is not None and len(value) > limit:
            raise self.fail(at, f"{len(value):,} characters long; at most {limit:,} are allowed")
        if self.check_surrogates and not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise self.fail(
                    at, f"holds a lone surrogate (\\u{ord(value[exc.start]):04x}), not text"
                ) from exc
        return value

    def area(self, value: JSONValue, at: str) -> str:
        return self.string(value, at, limit=MAX_AREA_CHARS)

    def description(self, value: JSONValue, at: str) -> str:
        return self.string(value, at, limit=MAX_DESCRIPTION_CHARS)

    def source_path(self, value: JSONValue, at: str) -> str:
        text = self.string(value, at)
        problem = _source_path_problem(text)
        if problem:
            raise self.fail(at, f"{text[:120]!r} {problem}")
        return text

    def url(self, value: JSONValue, at: str) -> str:
        text = self.string(value, at, limit=MAX_URL_CHARS)
        problem = url_problem(text)
        if problem:
            raise self.fail(at, problem)
        return text

    def instance(self, value: JSONValue, at: str) -> str:
        """A PeerTube instance, ``https://host``: API paths are appended to it as it is."""
        text = self.url(value, at)
        parts = urlsplit(text)
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise self.fail(at, "expected the instance's address alone (https://host)")
        return text

    def sha256(self, value: JSONValue, at: str) -> str:
        text = self.string(value, at)
        if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
            raise self.fail(at, "expected 64 lowercase hexadecimal digits")
        return text

    def uuid(self, value: JSONValue, at: str) -> str:
        """A video's UUID, lowercase: it names files in the archive, so nothing else passes."""
        text = self.string(value, at)
        if not _UUID.fullmatch(text):
            raise self.fail(at, "expected a UUID (8-4-4-4-12 lowercase hexadecimal digits)")
        return text

    def size(self, value: JSONValue, at: str) -> int:
        if isinstance(value, _Refused):
            raise self.fail(at, value.reason)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail(at, f"expected a size in bytes, got {_json_kind(value)}")
        return value


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float | _Refused):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"
