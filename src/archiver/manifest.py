"""The manifest: a deterministic JSON description of a collection, made to be committed.

Two builds of the same fiches give the same bytes: keys sorted, entries ordered by source path,
UTF-8, two-space indent, a trailing newline, and no timestamp. Here a manifest is built and
written; reading one back, strictly, is :mod:`archiver.manifest_reader`'s, whose names are
re-exported so that everything about manifests is imported from this module.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import AnyStr, TypeVar, cast

from . import collector
from .entry import Entry, JSONValue
from .errors import (
    FicheError,
    InputError,
    InvalidInputs,
    ManifestError,
    StorageError,
    describe_os_error,
)
from .fiche_cache import FicheCache, Found, Hashed
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
    "manifest_bytes",
    "write_manifest",
    "write_manifest_bytes",
]

# Below this many fiches, starting worker processes costs more than it saves.
PARALLEL_THRESHOLD = 500
# Fiches a worker's task: a worker that draws the last one finishes at most one task (20 ms)
# after the others; a task costs a message each way, and each is only a range of indices.
PARALLEL_CHUNK = 100


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


def build_valid(
    paths: Iterable[Path], *, cache: FicheCache | None = None, found: Found | None = None
) -> Built:
    """The manifest of the valid fiches under ``paths``, and what is wrong with the others:
    for a nightly sync, one broken fiche must not hold back the collection. Raises
    :class:`FicheError` when no fiche is found at all.

    With a ``cache`` (:mod:`archiver.fiche_cache`), a fiche whose bytes it holds is not parsed
    again, and the cache notes this build's entries (its caller saves it). ``found``: the
    fiches under ``paths`` as the caller found them and hashed them (a sync, for its seal):
    not looked for nor read again to be looked up.
    """
    with collector.paused():
        return _build(list(paths), cache or FicheCache(None), found)


def _build(paths: list[Path], cache: FicheCache, found: Found | None) -> Built:
    invalid: set[str] = set()
    errors: list[InputError] = []
    entries: list[Entry] = []
    files = find_fiches(paths) if found is None else found.files
    if not files:
        shown = ", ".join(shown_path(p) for p in paths) or "."
        raise FicheError(shown, None, "no fiche (*.md) found")
    seen: dict[str, Path] = {}
    parsed_all = _parse_all(files, cache, None if found is None else found.hashed)
    cache.keep(parsed for parsed in parsed_all if not isinstance(parsed, FicheError))
    for fiche, parsed in zip(files, parsed_all, strict=True):
        if isinstance(parsed, FicheError):
            errors.append(parsed)
            invalid.add(fiche.relpath)
            continue
        duplicate = _duplicate(fiche, parsed.id, seen)
        if duplicate:
            errors.append(duplicate)
            invalid.add(fiche.relpath)
            continue
        entries.append(parsed)
    entries.sort(key=lambda e: (e.source.path, e.id))
    return Built(Manifest(entries=tuple(entries)), tuple(errors), frozenset(invalid))


def _duplicate(fiche: FicheFile, entry_id: str, seen: dict[str, Path]) -> FicheError | None:
    """The error of a fiche whose id an earlier one gave (``seen``: id → path), else None,
    and the id noted as seen."""
    if entry_id in seen:
        also = shown_path(seen[entry_id])
        return FicheError(
            shown_path(fiche.path), "id", f"duplicate id {entry_id!r}, also given by {also}"
        )
    seen[entry_id] = fiche.path
    return None


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


def _parse_all(
    files: list[FicheFile], cache: FicheCache, hashed: Sequence[Hashed | None] | None
) -> list[Entry | FicheError]:
    """Every fiche's entry, from the cache when its bytes are there (``hashed``: their sha256
    and size, when known), else parsed: on every core when many are, results in input order."""
    found: list[Entry | FicheError | None] = list(cache.lookup(files, hashed))
    missing = [index for index, entry in enumerate(found) if entry is None]
    parsed = _map(_parse_or_error, [files[index] for index in missing])
    for index, result in zip(missing, parsed, strict=True):
        found[index] = result
    return [result for result in found if result is not None]


_T = TypeVar("_T")


def _map(function: Callable[[FicheFile], _T], files: list[FicheFile]) -> list[_T]:
    """``function`` of every fiche, in input order: on every core when there are many.

    The workers are handed ``function`` and the fiches once, when they start (for free when
    they are forked), and each task is only a range of indices: pickling the fiches' paths to
    the workers took 0.1 s of CPU at 10,000 fiches.
    """
    workers = min(os.cpu_count() or 1, 4)
    if len(files) < PARALLEL_THRESHOLD or workers < 2:
        return [function(fiche) for fiche in files]
    # Imported here: 20 ms of start-up that a sync from the cache never needs.
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # Forked on Linux, as Python 3.11 does by default there: workers start with archiver
    # imported. Python 3.14 makes forkserver the default, whose workers would import it again
    # (0.1 to 0.3 s each). Elsewhere, the system's default (macOS's fork is unsafe).
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else None)
    ranges = [(start, start + PARALLEL_CHUNK) for start in range(0, len(files), PARALLEL_CHUNK)]
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_start_worker, initargs=(function, files)
    ) as pool:
        chunks = pool.map(_work, ranges)
        return [cast(_T, result) for chunk in chunks for result in chunk]


# A worker's function and fiches, set when it starts (_start_worker); its tasks are ranges.
_worker_task: list[tuple[Callable[[FicheFile], object], list[FicheFile]]] = []


def _start_worker(function: Callable[[FicheFile], object], files: list[FicheFile]) -> None:
    _worker_task[:] = [(function, files)]


def _work(bounds: tuple[int, int]) -> list[object]:
    function, files = _worker_task[0]
    return [function(fiche) for fiche in files[bounds[0] : bounds[1]]]


def manifest_bytes(paths: Iterable[Path]) -> tuple[bytes, int]:
    """The manifest of the fiches under ``paths`` as :func:`write_manifest` writes it (the
    bytes of ``dumps(build_manifest(paths))``), and how many entries it holds.

    What ``archiver manifest`` writes, by a leaner route than a :class:`Manifest`: each fiche
    becomes its entry's UTF-8 text where it is parsed (in a worker process for a large
    collection), so that the parent neither unpickles 10,000 entries nor encodes them, and
    only joins their bytes in manifest order. Errors are those of :func:`build_manifest`.
    """
    with collector.paused():
        return _build_bytes(list(paths))


def _build_bytes(paths: list[Path]) -> tuple[bytes, int]:
    files = find_fiches(paths)
    if not files:
        shown = ", ".join(shown_path(p) for p in paths) or "."
        raise FicheError(shown, None, "no fiche (*.md) found")
    errors: list[InputError] = []
    seen: dict[str, Path] = {}
    blocks: list[tuple[str, str, bytes]] = []
    for fiche, parsed in zip(files, _map(_encode_or_error, files), strict=True):
        if isinstance(parsed, FicheError):
            errors.append(parsed)
            continue
        entry_id, block = parsed
        duplicate = _duplicate(fiche, entry_id, seen)
        if duplicate:
            errors.append(duplicate)
            continue
        blocks.append((fiche.relpath, entry_id, block))
    if errors:
        raise InvalidInputs(tuple(errors))
    blocks.sort(key=lambda found: (found[0], found[1]))  # as _build: source path, then id
    head, tail = _frame(SCHEMA_VERSION, empty=not blocks)
    texts = [block for _, _, block in blocks]
    return _document(head.encode(), texts, b",\n", tail.encode()), len(texts)


def _encode_or_error(fiche: FicheFile) -> tuple[str, bytes] | FicheError:
    """A fiche's id and its entry's text in the manifest (UTF-8), or why it is invalid."""
    try:
        entry = parse_fiche(fiche)
    except FicheError as exc:
        return exc
    return entry.id, _entry_text(entry).encode("utf-8")


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
    with collector.paused():
        head, tail = _frame(manifest.schema_version, empty=not manifest.entries)
        texts = [_entry_text(entry) for entry in manifest.entries]
        return _document(head, texts, ",\n", tail)


def _frame(schema_version: int, *, empty: bool) -> tuple[str, str]:
    """The document's text before its entries and after them, keys sorted (``entries``, then
    ``schema_version``); between them go the entries' texts, each from its opening to its
    closing brace (:func:`_document`)."""
    version = f"  {_encode_text('schema_version')}: {_encode_value(schema_version)}\n}}\n"
    entries = _encode_text("entries")
    if empty:
        return f"{{\n  {entries}: [", f"],\n{version}"
    return f"{{\n  {entries}: [\n", f"\n  ],\n{version}"


def _document(head: AnyStr, texts: list[AnyStr], comma: AnyStr, tail: AnyStr) -> AnyStr:
    """``head``, the entries' ``texts`` separated by ``comma`` (``",\\n"``), and ``tail``, joined
    once: 50 MB of text is copied once, not once for the entries and again for the document."""
    pieces = [comma] * (2 * len(texts) + 1)
    pieces[0], pieces[-1] = head, tail
    pieces[1::2] = texts
    return head[:0].join(pieces) if texts else head + tail


def _text(value: str | None) -> str:
    return "null" if value is None else _encode_text(value)


def _entry_text(entry: Entry) -> str:
    """One entry's object in the manifest, from its opening to its closing brace: one line per
    field of :meth:`Entry.to_json`, keys sorted everywhere, each value as ``json.dumps`` with
    ``", "`` and ``": "`` writes it (UTF-8 as is).

    Written field by field from the entry, not through ``to_json`` and a value-by-value
    encoding: one json C call a string (two fifths of what the generic layout took, which was
    more than a third of a 10,000-fiche manifest's time). ``tests/test_manifest.py`` compares
    it with ``json.dumps`` of each field of ``to_json`` on random entries.
    """
    enc = _encode_text
    video, source, peertube, licence = entry.video, entry.source, entry.peertube, entry.licence
    assets = ", ".join(
        f'{{"kind": {enc(asset.kind)}, "url": {enc(asset.url)}}}' for asset in entry.assets
    )
    credits = ", ".join(
        f'{{"names": [{", ".join(map(enc, credit.names))}], "role": {enc(credit.role)}}}'
        for credit in entry.credits
    )
    size = video.size
    return "".join(
        (
            '    {\n      "area": ',
            _text(entry.area),
            ',\n      "assets": [',
            assets,
            '],\n      "credit_notes": [',
            ", ".join(map(enc, entry.credit_notes)),
            '],\n      "credits": [',
            credits,
            '],\n      "description": ',
            _text(entry.description),
            ',\n      "extra": ',
            _encode_value(dict(entry.extra)) if entry.extra else "{}",
            ',\n      "id": ',
            enc(entry.id),
            ',\n      "licence": ',
            f'{{"name": {enc(licence.name)}, "url": {_text(licence.url)}}}' if licence else "null",
            ',\n      "peertube": ',
            (
                f'{{"instance": {enc(peertube.instance)}, "uuid": {enc(peertube.uuid)}}}'
                if peertube
                else "null"
            ),
            ',\n      "source": {"path": ',
            enc(source.path),
            ', "sha256": ',
            enc(source.sha256),
            '},\n      "title": ',
            enc(entry.title),
            ',\n      "transcript": ',
            enc(entry.transcript),
            ',\n      "video": {"embed_url": ',
            _text(video.embed_url),
            ', "sha256": ',
            _text(video.sha256),
            ', "size": ',
            "null"
            if size is None
            else int.__repr__(size)
            if type(size) is int
            else _encode_value(size),
            ', "url": ',
            _text(video.url),
            "}\n    }",
        )
    )


# Errors of the disk itself rather than of the path a user gave.
DISK_REFUSED = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS})


def write_manifest(manifest: Manifest, path: Path) -> bool:
    """Write the manifest atomically; return whether the file changed."""
    return write_manifest_bytes(dumps(manifest).encode("utf-8"), path)


def write_manifest_bytes(data: bytes, path: Path) -> bool:
    """Write a manifest's bytes (:func:`manifest_bytes`) atomically; return whether the file
    changed.

    A symbolic link, a device or a pipe at ``path`` is refused and left as it is: the rename
    would replace it by a regular file, and reading it to compare could block or never end.
    """
    unsafe = unsafe_target(path)
    if unsafe:
        raise ManifestError(path, None, f"will not write the manifest there: {unsafe}")
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
