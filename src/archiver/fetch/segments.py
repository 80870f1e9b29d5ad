"""The parts of a file fetched over several connections: what they are, on disk and in the sidecar.

:mod:`.split` runs the connections; here is what they share, and what a crash leaves:

    Origin      the version being fetched, as its first answer described it
    Part        one part of the file: its bytes, what arrived, what is written
    Segments    the parts of the file; the part a connection takes, the piece of the
                largest one it steals; the sidecar that records them
    Gauge       whether one connection is too slow for the line, so that more would gain
    PartFile    the partial file: written at offsets from worker threads, hashed, durable

**On disk.** Bytes are written with ``os.pwrite`` where they belong in
``partial/<id>/<role>.part`` (a sparse file until every part is in). The sidecar
``<role>.json`` lists every part and how far its bytes are written; it is replaced atomically,
and only after the partial's data are fsync'ed: whatever it claims is on the disk. A run
killed at any moment (SIGKILL included) leaves a sidecar the next run trusts as far as it
claims, and no further than the partial's size; a torn or unreadable one is not trusted at
all. An archiver that does not know this format (no ``url`` at its top) reads no partial
state from it and starts from zero, never from a sparse file.

**The sha256.** A block written exactly where the hashed bytes end (the first connection's,
in order) is hashed as it comes; the rest is hashed in one pass at the end, read back.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..files import atomic_write_bytes
from .http import strong_etag

__all__ = ["Gauge", "Origin", "Part", "PartFile", "Segments"]

# The sidecar's key and version: a sidecar of one connection has ``url`` at its top instead.
SIDECAR_KEY = "segments"
SIDECAR_VERSION = 1
# Blocks read back to hash what was not hashed as it came.
HASH_BLOCK = 4 * 1024 * 1024
# A file is split once its first connection proves slower than
# ``DownloadSettings.split_below``: its average since its first bytes, from RATE_WINDOW
# seconds on, and for as long as it streams (a PeerTube instance's nginx sends the first
# 5 MB of a connection at full speed, ``limit_rate_after 5M``, then caps it). An average,
# not a window's rate: a busy machine holds a process back for tens of milliseconds at a
# time. (A first answer that took ``DownloadSettings.far_latency`` to come is split at once.)
RATE_WINDOW = 0.25
# A connection that waited on --rate-limit more than this share of its time is held back by
# the cap, not by the line: more connections would not gain.
CAPPED_SHARE = 0.2


@dataclass(frozen=True)
class Origin:
    """The version of a file being fetched, as its first answer described it."""

    url: str  # the manifest's URL
    etag: str | None
    last_modified: str | None
    length: int
    content_type: str
    final_url: str  # after redirects, credentials redacted

    @property
    def validator(self) -> str | None:
        """What ``If-Range`` carries: a strong ETag, else the Last-Modified (RFC 9110)."""
        return strong_etag(self.etag) or self.last_modified

    def difference(self, etag: str | None, modified: str | None, length: int | None) -> str | None:
        """What says an answer is of another version than this one, or ``None``.

        A header the answer does not repeat is no difference; one it gives must be equal.

        >>> origin = Origin("u", '"a"', None, 10, "video/mp4", "u")
        >>> origin.difference('"a"', None, 10) is None
        True
        >>> origin.difference('"b"', None, 10)
        'ETag "a" became "b"'
        >>> origin.difference(None, None, 12)
        'length 10 became 12'
        """
        if etag is not None and self.etag is not None and etag != self.etag:
            return f"ETag {self.etag} became {etag}"
        if None not in (modified, self.last_modified) and modified != self.last_modified:
            return f"Last-Modified {self.last_modified} became {modified}"
        if length is not None and length != self.length:
            return f"length {self.length} became {length}"
        return None


@dataclass(eq=False)
class Part:
    """A part of the file, ``[start, end)``: ``[start, pos)`` is written to the partial file,
    ``[start, received)`` has arrived (written, or waiting to be). ``end`` moves back when
    another connection takes its far piece."""

    start: int
    end: int
    pos: int
    received: int
    busy: bool = False  # a connection is fetching it
    dropped: bool = False  # no longer a part of the file (the server ignores ranges)
    rate: float = 0.0  # bytes a second its connection brings (0: not measured yet)

    @property
    def left(self) -> int:
        """Bytes of the part still to arrive."""
        return self.end - self.received


@dataclass(eq=False)
class Segments:
    """The parts of a file, in order, covering it from 0 to its length."""

    origin: Origin
    parts: list[Part]

    @classmethod
    def fresh(cls, origin: Origin, have: int = 0) -> Segments:
        """One part, the whole file, its first ``have`` bytes already written."""
        return cls(origin, [Part(0, origin.length, have, have)])

    @property
    def size(self) -> int:
        """Bytes written to the partial file (what it still needs from the disk's room is
        the rest)."""
        return sum(part.pos - part.start for part in self.parts)

    @property
    def complete(self) -> bool:
        return all(part.pos == part.end for part in self.parts)

    def take(self) -> Part | None:
        """A part no connection is fetching and that is not whole (after a resume)."""
        for part in self.parts:
            if not part.busy and part.pos < part.end:
                part.busy = True
                return part
        return None

    def largest(self, min_piece: int, wait: float = 0.0) -> Part | None:
        """The part being fetched with the most bytes still to come, if a piece of it is
        worth another request (:meth:`piece`).

        >>> segments = Segments.fresh(Origin("u", None, "d", 100, "", "u"))
        >>> segments.parts[0].busy, segments.parts[0].rate = True, 40.0
        >>> segments.largest(10) is segments.parts[0], segments.largest(10, wait=2.5)
        (True, None)
        """
        busy = [part for part in self.parts if part.busy and not part.dropped]
        victim = max(busy, key=lambda part: part.left, default=None)
        if victim is None or not self.piece(victim, min_piece, wait):
            return None
        return victim

    @staticmethod
    def piece(victim: Part, min_piece: int, wait: float) -> int:
        """The far piece of ``victim`` a new request takes, so that both end together; 0
        when no piece of at least ``min_piece`` makes the part end sooner.

        The new request's first byte comes ``wait`` seconds from now (a round trip on a
        kept connection, two on a new one), while the victim's connection goes on: it keeps
        what it brings meanwhile (``rate * wait``) and half of the rest. Halves, when its
        rate is not measured yet. On a line whose connections each get a capped share (the
        poor line of bench/bench_poorline.py), halves left the thief idle at the end for
        ``wait`` seconds. Never more than half: what the victim brings is only an estimate.

        >>> Segments.piece(Part(0, 100, 0, 0), 10, wait=1.0)  # rate unknown: halves
        50
        >>> Segments.piece(Part(0, 100, 0, 0, rate=20.0), 10, wait=1.0)  # it keeps 20 + 40
        40
        >>> Segments.piece(Part(0, 100, 0, 0, rate=20.0), 45, wait=1.0)  # the least worth it
        45
        >>> Segments.piece(Part(0, 100, 0, 0, rate=60.0), 45, wait=1.0)  # ends before 45 come
        0
        """
        left = victim.left
        ahead = int(victim.rate * wait)  # what its connection brings before the thief's first
        piece = max((left - ahead) // 2, min_piece, 1)
        if piece > left // 2 or piece >= left - ahead:
            return 0
        return piece

    def steal(self, min_piece: int, wait: float = 0.0) -> Part | None:
        """The far piece of the largest part still to come (:meth:`piece`), as a new part
        (:meth:`largest` says which part, if any).

        >>> segments = Segments.fresh(Origin("u", None, "d", 100, "", "u"))
        >>> segments.parts[0].busy = True
        >>> part = segments.steal(10)
        >>> (part.start, part.end), (segments.parts[0].start, segments.parts[0].end)
        ((50, 100), (0, 50))
        >>> segments.steal(30) is None  # no part has 60 bytes still to come
        True
        """
        victim = self.largest(min_piece, wait)
        if victim is None:
            return None
        middle = victim.end - self.piece(victim, min_piece, wait)
        part = Part(middle, victim.end, middle, middle, busy=True)
        victim.end = middle
        self.parts.insert(self.parts.index(victim) + 1, part)
        return part

    def to_json(self) -> bytes:
        """The sidecar: the origin and every part, ``[start, end, written up to]``; a whole
        part is merged into the one after it (what is written of both is contiguous)."""
        records: list[list[int]] = []
        for part in self.parts:
            if part.dropped:
                continue
            if records and records[-1][2] == records[-1][1]:
                records[-1] = [records[-1][0], part.end, part.pos]
            else:
                records.append([part.start, part.end, part.pos])
        origin = self.origin
        body = {
            "version": SIDECAR_VERSION,
            "url": origin.url,
            "etag": origin.etag,
            "last_modified": origin.last_modified,
            "length": origin.length,
            "content_type": origin.content_type,
            "final_url": origin.final_url,
            "parts": records,
        }
        return json.dumps({SIDECAR_KEY: body}, sort_keys=True).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes, on_disk: int) -> Segments | None:
        """The segments a sidecar describes, trusted no further than the partial's size
        (``on_disk`` bytes); ``None`` when it is not such a sidecar, or not a whole one.

        >>> record = Segments.fresh(Origin("u", '"e"', None, 100, "video/mp4", "u"), 60)
        >>> Segments.from_json(record.to_json(), 40).parts[0].pos  # the file is shorter
        40
        >>> Segments.from_json(record.to_json()[:-5], 100) is None  # torn
        True
        """
        try:
            body = json.loads(data)[SIDECAR_KEY]
            origin = Origin(
                url=body["url"],
                etag=body["etag"],
                last_modified=body["last_modified"],
                length=body["length"],
                content_type=body["content_type"],
                final_url=body["final_url"],
            )
            records = body["parts"]
            valid = (
                body["version"] == SIDECAR_VERSION
                and all(isinstance(v, str) for v in (origin.url, origin.content_type))
                and isinstance(origin.final_url, str)
                and all(isinstance(v, str | None) for v in (origin.etag, origin.last_modified))
                and _count(origin.length)
                and origin.length > 0
                and isinstance(records, list)
                and bool(records)
            )
            if not valid:
                return None
            parts = []
            expected = 0
            for record in records:
                start, end, pos = record
                if not (_count(start) and _count(end) and _count(pos)):
                    return None
                if start != expected or not start <= pos <= end or start == end:
                    return None
                # Claimed bytes past the partial's end are not on the disk: not trusted.
                pos = max(start, min(pos, on_disk))
                parts.append(Part(start, end, pos, pos))
                expected = end
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            return None  # RecursionError: JSON nested deeper than the parser's stack
        if expected != origin.length:
            return None
        return cls(origin, parts)


# A count of bytes a sidecar may claim: past any file (a record's number is not trusted).
MAX_COUNT = 10**18


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < MAX_COUNT


@dataclass
class Gauge:
    """Whether more connections would gain on a file one connection streams: ``at_least``
    bytes of it still to come (``left``), and a connection too slow for the line: its first
    answer took ``far`` seconds or more to come, or its average rate since its first bytes
    stays under ``floor`` bytes a second from ``RATE_WINDOW`` seconds on.

    >>> gauge = Gauge(floor=1000, latency=0.01, left=10**6, at_least=1000)
    >>> gauge.slow(500, now=10.0), gauge.slow(100, now=10.1)  # too soon to say
    (False, False)
    >>> gauge.slow(100, now=10.3)  # 200 bytes in 0.3 s
    True
    >>> Gauge(floor=1000, latency=0.6, left=10**6, at_least=1000).slow(10, now=0.0)  # afar
    True
    >>> Gauge(floor=1000, latency=0.6, left=1500, at_least=1000).slow(600, now=0.0)  # small
    False

    Under ``--rate-limit`` (``capped``) the connection is measured, afar too, and one that
    spent more than :data:`CAPPED_SHARE` of its time waiting on the cap is not slow: the cap
    sets its pace, and more connections would share the same cap (each cut only throws away
    what the kernel holds for it).

    Held back, it is measured afresh from then on: once the cap no longer binds (the other
    files done), its own rate decides.

    >>> capped = Gauge(floor=1000, latency=0.6, left=10**6, at_least=1000, capped=True)
    >>> capped.slow(10, now=0.0, waited=0.0)
    False
    >>> capped.slow(100, now=1.0, waited=0.5)  # half of its time waiting on the cap
    False
    >>> capped.slow(100, now=2.0, waited=0.5)  # from 1.0 on: 100 bytes in 1 s, no wait
    True
    """

    floor: float
    latency: float
    left: int
    at_least: int
    far: float = 0.25
    capped: bool = False
    since: float | None = None
    waited_before: float = 0.0  # the seconds waited on the cap before ``since``
    seen: int = 0

    def slow(self, count: int, *, now: float, waited: float = 0.0) -> bool:
        """``count`` more bytes arrived at ``now``: would more connections gain? ``waited``:
        the seconds this connection has waited on the bandwidth cap so far."""
        self.left -= count
        if self.left < self.at_least:
            return False
        if self.latency >= self.far and not self.capped:
            return True
        if self.since is None:  # these waited in the socket's buffer: not counted
            self.since, self.waited_before = now, waited
            return False
        self.seen += count
        elapsed = now - self.since
        if elapsed < RATE_WINDOW:
            return False
        if waited - self.waited_before > CAPPED_SHARE * elapsed:
            self.since, self.seen, self.waited_before = now, 0, waited  # measured afresh
            return False
        return self.seen < self.floor * elapsed


# -- the partial file (blocking: called in worker threads) -------------------------------------


class PartFile:
    """The partial file of a file fetched in parts: written at offsets from worker threads.

    A block written exactly where the hashed bytes end is hashed at once (the first
    connection's blocks, in order); :meth:`digest` hashes the rest from the disk. The file is
    closed only once no thread uses it: a write that outlived its task (a cancelled run)
    never lands in a file descriptor reused by another file.
    """

    def __init__(self, path: Path, *, fresh: bool, hashed: tuple[Any, int] | None = None) -> None:
        """Open ``path`` (emptied when ``fresh``); ``hashed``: the sha256 object of its
        first bytes and their count, from the connection that wrote them in order."""
        path.parent.mkdir(parents=True, exist_ok=True)
        # Never through a link swapped in since the archive checked the path.
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        self.fd = os.open(path, flags | (os.O_TRUNC if fresh else 0), 0o666)
        self.path = path
        self._state = threading.Condition()
        self._users = 0
        self._closed = False
        self._hashing = threading.Lock()
        self._hash: Any
        self._hash, self.hashed = hashed or (hashlib.sha256(), 0)  # bytes from 0 hashed

    @contextlib.contextmanager
    def _using(self) -> Iterator[None]:
        with self._state:
            if self._closed:
                raise OSError(errno.EBADF, "the partial file is closed", str(self.path))
            self._users += 1
        try:
            yield
        finally:
            with self._state:
                self._users -= 1
                self._state.notify_all()

    def write(self, offset: int, data: bytes | bytearray) -> None:
        """Write ``data`` at ``offset``, and hand it to the OS: a killed process keeps it."""
        with self._using():
            view = memoryview(data)
            done = 0
            while done < len(view):
                written = os.pwrite(self.fd, view[done:], offset + done)
                if written <= 0:  # a regular file takes every byte or says why not
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
                done += written
            with self._hashing:
                if offset == self.hashed:
                    self._hash.update(view)
                    self.hashed += len(view)

    def checkpoint(self, side: Path, record: bytes) -> None:
        """Make the written bytes durable, then the sidecar that claims them: never a claim
        on bytes a power cut could lose."""
        with self._using():
            os.fsync(self.fd)
            atomic_write_bytes(side, record)

    def digest(self, length: int) -> tuple[int, str]:
        """The file's size and sha256: what was hashed as it came, then the rest, read back."""
        with self._using():
            with self._hashing:
                hasher, offset = self._hash.copy(), self.hashed
            while offset < length:
                block = os.pread(self.fd, min(HASH_BLOCK, length - offset), offset)
                if not block:
                    break
                hasher.update(block)
                offset += len(block)
            size = offset if offset < length else os.fstat(self.fd).st_size
            return size, hasher.hexdigest()

    def close(self) -> None:
        with self._state:
            self._closed = True
            while self._users:
                self._state.wait()
        os.close(self.fd)
