"""What each payload file of a kit was on disk when its last update finished: inode, size,
modification and change times, kept in the archive's note about the kit (:mod:`.page_cache`),
as git's index keeps what its work tree held.

An update trusts a payload file the kit's manifest lists at its size (it does not read 10,000
videos to find nothing to do): a file changed by hand at the same size, its time put back,
would pass, and the next update that finds nothing else to do would seal it. With this record,
the update reads again only the files whose identity moved since it was taken (rewriting a
file, even in place and with its time put back, changes its change time), and writes again
those whose bytes differ. A kit file hard-linked to the archive's shares its inode, whose
change time moves when the archive links or renames it: that file is read again, once, which
is right (it is the same file). Without a record (a kit made by an earlier release, a note
deleted or damaged) the update trusts the manifest as it always did, and records what it finds.

The record is the largest part of the note (four numbers for each of 40,000 files at 10,000
videos), so it is kept compact: the paths are those of the kit's manifest, named only by a
digest of their sorted list, and the identities 64-bit integers packed in that order, in
base64 (:class:`Record`). A record taken for other paths (the manifest changed by hand, or
lost) is not used.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter
from typing import Any, cast

__all__ = ["FILES_BYTES_PER_FILE", "Identity", "Record", "identity", "pack_files", "unpack_files"]

Identity = tuple[int, int, int, int]  # inode, size, mtime_ns, ctime_ns
# Four 64-bit integers, in base64: the most a file's record takes, and some.
FILES_BYTES_PER_FILE = 48
_FIELDS = 4
_WIDTH = 8  # bytes of each integer, packed

# What a file is on disk, as far as telling that it moved goes: of an ``lstat``, as one call
# in C (40,000 files a no-op update looks at: a third of the time a Python function takes).
identity: Callable[[os.stat_result], Identity] = attrgetter(
    "st_ino", "st_size", "st_mtime_ns", "st_ctime_ns"
)


@dataclass(frozen=True, eq=False)
class Record:
    """What each of ``paths`` (sorted) was on disk: their identities packed in that order, as
    machine integers, so that an update that finds the kit as it left it compares two byte
    strings rather than 40,000 tuples (and reads one JSON string, not 160,000 numbers)."""

    paths: tuple[str, ...] = ()
    packed: bytes = b""

    @classmethod
    def of(cls, files: Mapping[str, Identity]) -> Record:
        """``files`` (path → identity) packed; empty when one does not fit 64 bits (then the
        next update trusts the manifest, as without a record)."""
        listed = sorted(files)
        try:
            packed = array("q", chain.from_iterable(files[path] for path in listed))
        except OverflowError:
            return cls()
        return cls(tuple(listed), packed.tobytes())

    @classmethod
    def of_stats(cls, paths: tuple[str, ...], found: Sequence[os.stat_result | None]) -> Record:
        """The identities of ``found``, the ``lstat`` of each of ``paths`` (sorted; ``None``:
        not there, and not recorded), packed in one pass in C when every one is there."""
        if None in found:
            held = zip(paths, found, strict=True)
            return cls.of({path: identity(info) for path, info in held if info is not None})
        present = cast("Sequence[os.stat_result]", found)  # none is None: asked just above
        try:
            packed = array("q", chain.from_iterable(map(identity, present)))
        except OverflowError:
            return cls()
        return cls(paths, packed.tobytes())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        return self.packed == other.packed and self.paths == other.paths

    def __hash__(self) -> int:
        return hash(self.packed)

    def identities(self) -> dict[str, Identity]:
        """Path → identity, unpacked."""
        numbers = array("q")
        numbers.frombytes(self.packed)
        fields = (numbers[at::_FIELDS] for at in range(_FIELDS))
        return dict(zip(self.paths, zip(*fields, strict=True), strict=True))


def _digest(paths: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(paths).encode("utf-8", "surrogateescape")).hexdigest()


def pack_files(record: Record) -> dict[str, Any]:
    """``record`` as the note keeps it: its paths named by a digest, its identities in base64."""
    return {"paths": _digest(record.paths), "stat": base64.b64encode(record.packed).decode()}


def unpack_files(packed: object, paths: Iterable[str]) -> Record:
    """What :func:`pack_files` packed, for ``paths`` (the payload paths the kit's manifest
    lists); empty when it was packed for other paths, or is damaged."""
    listed = tuple(sorted(paths))
    if not isinstance(packed, dict) or packed.get("paths") != _digest(listed):
        return Record()
    text = packed.get("stat")
    if not isinstance(text, str):
        return Record()
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return Record()
    if len(data) != _FIELDS * _WIDTH * len(listed):
        return Record()
    return Record(listed, data)
