"""What a kit's generated files were made from, noted in the archive's cache folder: read
before an update, so a page made from the same sources is not made again, and written once the
update is in place. The same note says what its tag files were made from (so that an update
knows, without rendering them, whether a new release changes them) and what each payload file
was on disk after the update (:mod:`.identity`: a file that moved since is read again).

Kept apart from :mod:`.write` because it is not the kit's: a note in the archive
(``cache/kit-<digest>.json``) that only spares work, with its own format, its own limits and
its own rule (a doubtful note is ignored whole), read by the caller before the plan and written
after the update, never by the update itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..files import atomic_write_bytes, unsafe_target
from .identity import FILES_BYTES_PER_FILE, Record, pack_files, unpack_files

__all__ = [
    "PAGES_FORMAT",
    "Note",
    "pages_path",
    "read_note",
    "read_pages",
    "write_note",
    "write_pages",
]

log = logging.getLogger(__name__)

# Kept in the archive (``cache/kit-<digest of the kit's path>.json``), not in the kit: a kit
# holds no file a teacher did not ask for, and a kit copied elsewhere is whole without it (its
# next update makes every page once, and writes none that did not change).
PAGES_FORMAT = "archiver-pages/1"
# An entry is a key, a sha256, a size and a path: a few hundred bytes for each file.
PAGES_BYTES_PER_FILE = 512
PAGES_SLACK = 64 * 1024
# Lists and objects a note may hold beyond two a file: its own, the tag files', a few more.
CONTAINERS_SLACK = 64
_HEX = frozenset("0123456789abcdef")


def pages_path(cache: Path, kit: Path) -> Path:
    """Where an archive's cache folder keeps what ``kit``'s generated files were made from."""
    try:
        where = str(kit.resolve())
    except (OSError, RuntimeError):
        where = str(kit.absolute())
    digest = hashlib.sha256(where.encode("utf-8", "surrogateescape")).hexdigest()
    return cache / f"kit-{digest[:32]}.json"


def read_pages(path: Path, *, recipe: str, files: int) -> dict[str, tuple[str, str, int]]:
    """What a kit's generated files were made from: ``{name: (key, sha256, size)}``, names
    relative to ``data/``. Empty when there is no such regular file (a link is not followed),
    or it is larger than ``files`` files make, damaged, or made by another recipe (another
    version of archiver, of its templates or of the libraries that render): it only spares
    work, so a doubtful one is ignored whole, and written anew by the update."""
    return dict(read_note(path, recipe=recipe, files=files).pages)


@dataclass(frozen=True)
class Note:
    """The archive's note about a kit (:func:`read_note`)."""

    # What each generated file was made from: name relative to data/ → key, sha256, size.
    pages: Mapping[str, tuple[str, str, int]] = field(default_factory=dict)
    # What each tag file but bag-info.txt was made from: name → key, sha256 (what this recipe
    # makes from that key, known without rendering: an update that changes nothing imports
    # no jinja2 to find that a new release did not change them).
    tags: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    # What each payload file was on disk after the update (:mod:`.identity`).
    files: Record = field(default_factory=Record)


def read_note(path: Path, *, recipe: str, files: int, paths: Iterable[str] = ()) -> Note:
    """The archive's note about a kit: :func:`read_pages`, what its tag files were made from
    (both empty when made by another recipe), and what each of ``paths`` (the payload paths
    its manifest lists) was on disk after its last update (kept across recipes: it says what
    the kit held, not how it was made). Empty whole when doubtful, as :func:`read_pages`."""
    listed = sorted(paths)
    limit = PAGES_SLACK + PAGES_BYTES_PER_FILE * files + FILES_BYTES_PER_FILE * len(listed)
    try:
        if path.parent.is_symlink():
            return Note()
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        with open(fd, "rb") as stream:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return Note()
            data = stream.read(limit + 1)
        if len(data) > limit:
            return Note()
        # A list or an object a page, a tag file, and a few: counted before the bytes are
        # parsed, since a note of ``[],[],…`` within the bound on bytes took 458 MB.
        if data.count(b"[") + data.count(b"{") > CONTAINERS_SLACK + 2 * files:
            return Note()
        document = json.loads(data.decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return Note()
    if not isinstance(document, dict) or document.get("format") != PAGES_FORMAT:
        return Note()
    identities = unpack_files(document.get("disk"), listed)
    if document.get("recipe") != recipe:
        return Note(files=identities)
    found = document.get("files")
    tags = document.get("tags", {})  # not in a note of an earlier release
    if not isinstance(found, dict) or not isinstance(tags, dict):
        return Note()
    pages: dict[str, tuple[str, str, int]] = {}
    for name, held in found.items():
        if not (
            isinstance(held, list)
            and len(held) == 3
            and all(isinstance(text, str) and _is_sha256(text) for text in held[:2])
            and type(held[2]) is int
            and held[2] >= 0
        ):
            return Note()
        pages[name] = (held[0], held[1], held[2])
    made: dict[str, tuple[str, str]] = {}
    for name, held in tags.items():
        if not (
            isinstance(held, list)
            and len(held) == 2
            and all(isinstance(text, str) and _is_sha256(text) for text in held)
        ):
            return Note()
        made[name] = (held[0], held[1])
    return Note(pages=pages, tags=made, files=identities)


def write_pages(path: Path, files: Mapping[str, tuple[str, str, int]], *, recipe: str) -> None:
    """Write what a kit's generated files were made from, once its update is in place
    (atomically; never through a link: the caller holds the archive's lock and checked the
    folder). Only a note that spares work: one that cannot be written is left, said in the
    log (the next update makes the pages again and writes those that differ)."""
    write_note(path, Note(pages=files), recipe=recipe)


def write_note(path: Path, note: Note, *, recipe: str) -> None:
    """:func:`write_pages`, with the rest of the note (:class:`Note`)."""
    if unsafe_target(path) is not None:
        return
    document = {
        "format": PAGES_FORMAT,
        "recipe": recipe,
        "files": {name: list(held) for name, held in sorted(note.pages.items())},
        "tags": {name: list(held) for name, held in sorted(note.tags.items())},
        "disk": pack_files(note.files),
    }
    try:
        atomic_write_bytes(path, json.dumps(document, separators=(",", ":")).encode("ascii"))
    except OSError as exc:
        log.info("%s: not written: %s", path, exc.strerror or exc)


def _is_sha256(text: str) -> bool:
    return len(text) == 64 and _HEX.issuperset(text)
