"""The manifest: a deterministic JSON description of a collection, made to be committed.

Two builds of the same fiches give the same bytes: keys sorted, entries ordered by source path,
UTF-8, two-space indent, a trailing newline, and no timestamp. Here a manifest is built and
written; reading one back, strictly, is :mod:`archiver.manifest_reader`'s, whose names are
re-exported so that everything about manifests is imported from this module.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from .entry import Entry, JSONValue
from .errors import (
    FicheError,
    InputError,
    InvalidInputs,
    ManifestError,
    StorageError,
    describe_os_error,
)
from .fiche_cache import FicheCache
from .fiches import FicheFile, find_fiches, parse_fiche
from .files import atomic_write_bytes, unsafe_target
from .manifest_reader import MAX_MANIFEST_BYTES as MAX_MANIFEST_BYTES
from .manifest_reader import SCHEMA_VERSION, Manifest, load_manifest, loads
from .names import shown_path

__all__ = [
    "SCHEMA_VERSION",
    "Built",
    "Manifest",
    "build_manifest",
    "build_valid",
    "dumps",
    "load_manifest",
    "loads",
    "write_manifest",
]

# Below this many fiches, starting worker processes costs more than it saves.
PARALLEL_THRESHOLD = 500
PARALLEL_CHUNK = 250


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector around work that allocates many acyclic objects.

    Parsing a large collection allocates hundreds of thousands of dicts and strings that form
    no cycles; the collector rescans all of them again and again as the heap grows, which
    measured as two thirds of the time of a 10,000-fiche build. Reference counting still frees
    everything as usual.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def build_manifest(paths: Iterable[Path]) -> Manifest:
    """Parse every fiche found under ``paths`` into a manifest.

    Every invalid fiche is reported, not only the first: the raised :class:`InvalidInputs`
    holds one :class:`FicheError` per problem.
    """
    built = build_valid(paths)
    if built.errors:
        raise InvalidInputs(built.errors)
    return built.manifest


@dataclass(frozen=True)
class Built:
    """The manifest of a collection's valid fiches, the error of each invalid one, and the
    paths (as the manifest records them) of the invalid ones."""

    manifest: Manifest
    errors: tuple[InputError, ...]
    invalid: frozenset[str]


def build_valid(paths: Iterable[Path], *, cache: FicheCache | None = None) -> Built:
    """The manifest of the valid fiches under ``paths``, and what is wrong with the others:
    for a nightly sync, one broken fiche must not hold back the collection. Raises
    :class:`FicheError` when no fiche is found at all.

    With a ``cache`` (:mod:`archiver.fiche_cache`), a fiche whose bytes it holds is not parsed
    again, and the cache notes this build's entries (its caller saves it).
    """
    with _cyclic_gc_paused():
        return _build(list(paths), cache or FicheCache(None))


def _build(paths: list[Path], cache: FicheCache) -> Built:
    invalid: set[str] = set()
    errors: list[InputError] = []
    entries: list[Entry] = []
    files = find_fiches(paths)
    if not files:
        shown = ", ".join(shown_path(p) for p in paths) or "."
        raise FicheError(shown, None, "no fiche (*.md) found")
    seen: dict[str, Path] = {}
    parsed_all = _parse_all(files, cache)
    cache.keep(parsed for parsed in parsed_all if not isinstance(parsed, FicheError))
    for fiche, parsed in zip(files, parsed_all, strict=True):
        if isinstance(parsed, FicheError):
            errors.append(parsed)
            invalid.add(fiche.relpath)
            continue
        if parsed.id in seen:
            errors.append(
                FicheError(
                    shown_path(fiche.path),
                    "id",
                    f"duplicate id {parsed.id!r}, also given by {shown_path(seen[parsed.id])}",
                )
            )
            invalid.add(fiche.relpath)
            continue
        seen[parsed.id] = fiche.path
        entries.append(parsed)
    entries.sort(key=lambda e: (e.source.path, e.id))
    return Built(Manifest(entries=tuple(entries)), tuple(errors), frozenset(invalid))


# Values are encoded by json's C encoder, which only runs without ``indent``; the layout around
# them (one line per entry field) is ours. That keeps diffs to the field that changed and is
# several times faster than ``json.dumps(indent=2)`` on large collections. The C encoder is
# made once, not once a value as ``JSONEncoder.encode`` does (130,000 values at 10,000 fiches);
# no circular check, as a manifest's values are trees made by ``to_json``.
_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(", ", ": "))
_encode_text = json.encoder.encode_basestring
_make_encoder: Callable[..., Callable[[object, int], list[str]]] | None = getattr(
    json.encoder, "c_make_encoder", None
)
_c_encoder = (
    _make_encoder(None, _ENCODER.default, _encode_text, None, ": ", ", ", True, False, True)
    if _make_encoder is not None
    else None
)


def _encode_value(value: JSONValue) -> str:
    """One value as the manifest writes it: ``json.dumps`` with sorted keys, UTF-8 as is."""
    if type(value) is str:
        return _encode_text(value)
    if _c_encoder is None:  # a Python built without json's C accelerator
        return _ENCODER.encode(value)
    return "".join(_c_encoder(value, 0))


def _parse_or_error(fiche: FicheFile) -> Entry | FicheError:
    try:
        return parse_fiche(fiche)
    except FicheError as exc:
        return exc


def _parse_all(files: list[FicheFile], cache: FicheCache) -> list[Entry | FicheError]:
    """Every fiche's entry, from the cache when its bytes are there, else parsed: on every
    core when many are, results in input order."""
    found: list[Entry | FicheError | None] = list(cache.lookup(files))
    missing = [index for index, entry in enumerate(found) if entry is None]
    todo = [files[index] for index in missing]
    workers = min(os.cpu_count() or 1, 4)
    if len(todo) < PARALLEL_THRESHOLD or workers < 2:
        parsed = [_parse_or_error(fiche) for fiche in todo]
    else:
        # Imported here: 20 ms of start-up that a sync from the cache never needs.
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=workers) as pool:
            parsed = list(pool.map(_parse_or_error, todo, chunksize=PARALLEL_CHUNK))
    for index, result in zip(missing, parsed, strict=True):
        found[index] = result
    return [result for result in found if result is not None]


def dumps(manifest: Manifest) -> str:
    """The manifest's canonical text: same manifest, same bytes.

    An object per line for each entry, one line per entry field, keys sorted everywhere::

        {
          "entries": [
            {
              "area": "Domaine 4",
              ...
            }
          ],
          "schema_version": 1
        }

    >>> print(dumps(Manifest(entries=())), end="")
    {
      "entries": [],
      "schema_version": 1
    }
    """
    with _cyclic_gc_paused():
        return _layout(manifest.to_json())


def _layout(document: dict[str, JSONValue]) -> str:
    # Pieces joined once at the end: a transcript's few kilobytes are copied when encoded and
    # when joined, not once more for its line and once more for its entry.
    pieces = ["{\n"]
    keys = sorted(document)
    # An entry's field names are a handful, met 10,000 times: encoded once each.
    names: dict[str, str] = {}
    for index, key in enumerate(keys):
        comma = ",\n" if index < len(keys) - 1 else "\n"
        value = document[key]
        if key != "entries" or not value or not isinstance(value, list):
            pieces += ("  ", _encode_value(key), ": ", _encode_value(value), comma)
            continue
        pieces += ("  ", _encode_value(key), ": [\n")
        for number, entry in enumerate(value):
            fields = cast(dict[str, JSONValue], entry)  # each entry's to_json()
            pieces.append("    {\n")
            for position, name in enumerate(sorted(fields)):
                shown = names.get(name)
                if shown is None:
                    shown = names[name] = f"      {_encode_value(name)}: "
                pieces += (",\n" if position else "", shown, _encode_value(fields[name]))
            pieces.append("\n    },\n" if number < len(value) - 1 else "\n    }\n")
        pieces += ("  ]", comma)
    pieces.append("}\n")
    return "".join(pieces)


# Errors of the disk itself rather than of the path a user gave.
DISK_REFUSED = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS})


def write_manifest(manifest: Manifest, path: Path) -> bool:
    """Write the manifest atomically; return whether the file changed.

    A symbolic link, a device or a pipe at ``path`` is refused and left as it is: the rename
    would replace it by a regular file, and reading it to compare could block or never end.
    """
    unsafe = unsafe_target(path)
    if unsafe:
        raise ManifestError(path, None, f"will not write the manifest there: {unsafe}")
    data = dumps(manifest).encode("utf-8")
    try:
        if path.read_bytes() == data:
            return False
    except OSError:
        pass
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        if exc.errno in DISK_REFUSED:  # the disk, not the path given: exit 1, not 2
            raise StorageError(path, f"cannot write: {describe_os_error(exc)}") from exc
        raise ManifestError(path, None, f"cannot write: {describe_os_error(exc)}") from exc
    return True
