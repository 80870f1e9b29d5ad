"""The parts of one file's transfer that are not the decision to retry it.

:mod:`.fetcher` runs the attempts and reads the server's answers; what it leans on is here:

    Retry, Dropped, NotModified    how an attempt ends short of a file
    RetryBudget   how many more attempts a file gets, and the wait before the next (pure)
    Sink          the partial file, appended to and hashed in a worker thread
    StallWatch    the minimum rate a server must keep up (curl's --speed-limit)
    Room          the disk's room that the transfers under way still need
    Slots         --jobs and --per-host: the connections a run may hold at once
    Turn          a file's slot among them, held only while it uses the network
    start_partial, discard_partial, held_after    the partial file and its sidecar on disk
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import urlsplit

from ..archive import Archive, PartialState
from ..errors import DownloadError, describe_os_error
from ..files import atomic_write_bytes
from ..units import format_bytes
from .plan import Job

__all__ = [
    "FLUSH_INTERVAL",
    "ROOM_MARGIN",
    "WRITE_BLOCK",
    "Dropped",
    "NotModified",
    "Retry",
    "RetryBudget",
    "Room",
    "Sink",
    "Slots",
    "StallWatch",
    "Turn",
    "discard_partial",
    "held_after",
    "start_partial",
]

log = logging.getLogger(__name__)

# Large blocks handed to the writer thread: hashing and writing overlap the network, and the
# per-block thread hand-off costs nothing next to 1 MiB of sha256.
WRITE_BLOCK = 1024 * 1024
# On a slow line, hand bytes to disk at least this often, so a killed run loses little.
FLUSH_INTERVAL = 1.0
# Room kept free beyond a file's own size before it is fetched: the catalog's write-ahead log
# (at most catalog.WAL_SIZE_LIMIT, 1 MiB, past a checkpoint), the sidecars, the entry files.
# A disk that cannot hold both fails the file before a byte is asked for, and the catalog can
# still record the failure.
ROOM_MARGIN = 4 * 1024 * 1024


class NotModified(Exception):
    """The server confirmed that a held file did not change (304)."""


class Retry(Exception):
    """This attempt failed in a way another attempt may fix; with ``restart``, its partial
    file cannot be resumed and is thrown away first."""

    def __init__(
        self,
        reason: str,
        *,
        retry_after: float | None = None,
        restart: bool = False,
        stalled: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.restart = restart
        self.stalled = stalled


class Dropped(DownloadError):
    """A failure after which the partial file must not be kept: a disk with no room left, a
    body over its cap."""


@dataclass
class RetryBudget:
    """How many more attempts a file gets, and how long to wait before the next. Pure.

    A failed attempt that grew the partial file past its best by ``resets_after`` bytes made
    progress: the count starts again, so a line that drops every few minutes still finishes,
    and the next attempt starts at once: a connection cut after it brought that much says
    nothing against the server (a dropping line, a proxy's limit), and waiting would leave
    the line idle. An attempt that ended in a stall (under the minimum rate) never counts as
    progress: a server trickling bytes gets its retries and no more, however many it sent.

    >>> budget = RetryBudget(retries=2, resets_after=100, backoff_base=1, backoff_max=60)
    >>> budget.failed(held=0), budget.failed(held=10), budget.failed(held=20)
    (True, True, False)
    >>> budget.failed(held=500), budget.attempt, budget.delay(None, 1.0)  # progress
    (True, 1, 0.0)
    >>> budget.failed(held=5000, stalled=True), budget.attempt  # a trickle: no progress
    (True, 2)
    """

    retries: int
    resets_after: int
    backoff_base: float
    backoff_max: float
    attempt: int = 0
    best: int = 0  # the most bytes the partial file held after a failed attempt
    progressed: bool = False  # the last failed attempt made progress

    def failed(self, *, held: int, stalled: bool = False) -> bool:
        """An attempt failed with ``held`` bytes in the partial: may another one start?"""
        self.progressed = held >= self.best + self.resets_after and not stalled
        if self.progressed:
            self.attempt = 0
        self.best = max(self.best, held)
        self.attempt += 1
        return self.attempt <= self.retries

    def delay(self, asked: float | None, jitter: float) -> float:
        """Seconds before the next attempt: what the server asked (``Retry-After``), else an
        exponential backoff scaled by ``jitter`` (0.5 to 1).

        >>> RetryBudget(10, 1, 1.0, 60.0, attempt=3).delay(None, 1.0)
        4.0
        >>> RetryBudget(10, 1, 1.0, 60.0, attempt=3).delay(7.0, 1.0)
        7.0
        """
        if asked is not None:
            return asked
        if self.progressed:
            return 0.0
        backoff: float = self.backoff_base * 2 ** (self.attempt - 1)
        return min(self.backoff_max, backoff) * jitter


class Sink:
    """Appends to a partial file and hashes it, in a worker thread, off the event loop."""

    def __init__(self, path: Path, offset: int) -> None:
        self._hash = hashlib.sha256()
        self.size = 0
        self.closed = False
        # Never through a link swapped in since the archive checked the path.
        flags = os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_RDWR if offset else os.O_WRONLY)
        fd = os.open(path, flags if offset else flags | os.O_TRUNC, 0o666)
        self._file: IO[bytes] = os.fdopen(fd, "r+b" if offset else "wb")
        if offset:
            self._hash_existing(offset)

    def _hash_existing(self, offset: int) -> None:
        # On resume the hash state of the earlier attempt is gone: rebuild it from disk.
        while self.size < offset:
            block = self._file.read(min(WRITE_BLOCK * 4, offset - self.size))
            if not block:
                break
            self._hash.update(block)
            self.size += len(block)
        self._file.seek(self.size)
        self._file.truncate()

    def write(self, blocks: Sequence[bytes | bytearray]) -> None:
        """Hash and append blocks, and hand them to the OS: a killed process keeps them."""
        for block in blocks:
            self._hash.update(block)
            self._file.write(block)
            self._file.flush()  # no system call when the block went past the buffer
            self.size += len(block)

    def close(self, *, durable: bool) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self._file.flush()
            if durable:
                os.fsync(self._file.fileno())
        finally:
            self._file.close()

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def handover(self) -> tuple[Any, int]:
        """Close the partial for a writer of several connections, and give it the sha256
        of what was appended (an object of :mod:`hashlib`) and its size. Blocking."""
        self.close(durable=False)
        return self._hash, self.size


@dataclass
class StallWatch:
    """The slowest a server may send a file (curl's ``--speed-limit``/``--speed-time``): a
    server that sends a byte every few seconds never trips the read timeout, and would hold
    the archive's lock for ever.

    At the end of each window of ``span`` seconds, a transfer that averaged under ``floor``
    bytes a second is a stall; else the next window starts where this one ended. The time
    spent waiting on archiver itself (the bandwidth cap, the disk) goes in ``waited``: the
    server's speed is judged without it. A ``floor`` of 0 sets none.

    >>> watch = StallWatch(floor=100, span=10.0, start=0.0)
    >>> watch.received = 2_000
    >>> watch.stalled(5.0), watch.stalled(10.0)  # 200 B/s over the window: a new one starts
    (None, None)
    >>> watch.start, watch.received, watch.waited
    (10.0, 0, 0.0)
    >>> watch.received, watch.waited = 500, 5.0  # 500 bytes in 10 s of the server's time
    >>> watch.stalled(25.0)
    'stalled: under 100 B/s for 10 s'
    """

    floor: int
    span: float
    start: float
    received: int = 0
    waited: float = 0.0

    def elapsed(self, now: float) -> float:
        return now - self.start - self.waited

    def stalled(self, now: float) -> str | None:
        """Why the transfer is a stall at ``now``, or ``None``."""
        if self.floor <= 0 or self.elapsed(now) < self.span:
            return None
        if self.received < self.floor * self.elapsed(now):
            return f"stalled: under {format_bytes(self.floor)}/s for {self.span:g} s"
        self.start, self.received, self.waited = now, 0, 0.0
        return None


class Written(Protocol):
    """What a transfer has written to its partial file so far: a :class:`Sink`, or the
    segments of a file fetched over several connections."""

    @property
    def size(self) -> int: ...


@dataclass
class _InFlight:
    """A transfer under way, for the room check of the others: how many more bytes it needs.

    Counted from what its sink has written, not from what the network brought: bytes in the
    buffer still need their room on the disk.
    """

    total: int
    offset: int
    sink: Written | None = None

    @property
    def remaining(self) -> int:
        written = self.sink.size if self.sink is not None else self.offset
        return max(self.total - written, 0)


class Room:
    """The room on the disk of ``folder`` (the archive's partial files) that the transfers
    under way, whose size is known, still need: it is not free for the next one."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.in_flight: dict[tuple[str, str], _InFlight] = {}

    async def claim(self, job: Job, total: int, offset: int) -> None:
        """Fail ``job`` before its bytes come when the disk cannot hold the ``total - offset``
        it still needs, what the other transfers under way still need, and a margin; else
        count its need against the room the next transfer sees.

        The check and the claim happen with no ``await`` between them: two transfers that
        each fit but not together never both pass. A disk that cannot say how much room it
        has is taken at its word when it refuses a write.
        """
        try:
            free = (await asyncio.to_thread(shutil.disk_usage, self.folder)).free
        except OSError:
            return
        others = sum(f.remaining for key, f in self.in_flight.items() if key != job.key)
        wanted = max(total - offset, 0) + ROOM_MARGIN
        if wanted + others > free:
            room = format_bytes(max(free - others, 0))
            raise DownloadError(
                job.url, f"not enough space: needs {format_bytes(wanted)}, {room} free"
            )
        self.in_flight[job.key] = _InFlight(total, offset)

    def writing(self, job: Job, sink: Written) -> None:
        """From now on, ``job``'s need is counted from what ``sink`` has written."""
        if job.key in self.in_flight:
            self.in_flight[job.key].sink = sink

    def release(self, job: Job) -> None:
        """``job``'s transfer ended: the room it claimed is the disk's again."""
        self.in_flight.pop(job.key, None)


class Slots:
    """The connections a run may hold at once: ``--jobs`` in all, ``--per-host`` to one host.

    A file takes a slot of each for its first connection, waiting its turn
    (:meth:`file`); a file fetched over several connections takes more for its other
    connections only when they are free and no file waits for them (:meth:`try_take`), so
    that splitting a file never holds back another file. Whoever waits for a slot to come
    back (a file that could use another connection) is told when one does (:meth:`watch`).
    """

    def __init__(self, jobs: int, per_host: int) -> None:
        self.jobs = asyncio.Semaphore(jobs)
        self.per_host = per_host
        self.hosts: dict[str, asyncio.Semaphore] = {}
        self.watchers: set[asyncio.Event] = set()

    def _host(self, url: str) -> asyncio.Semaphore:
        host = urlsplit(url).netloc.lower()
        return self.hosts.setdefault(host, asyncio.Semaphore(self.per_host))

    @contextlib.asynccontextmanager
    async def file(self, url: str) -> AsyncIterator[None]:
        """A file's first connection to ``url`` (the URL asked for, after any mirror).

        The host's slot first: a file waiting for a busy host holds no slot of the run that a
        file of another host could use.
        """
        async with self._host(url), self.jobs:
            try:
                yield
            finally:
                self._freed()

    def free(self, url: str) -> bool:
        """Whether :meth:`try_take` would take a slot for ``url`` now."""
        return not (self._host(url).locked() or self.jobs.locked())

    async def try_take(self, url: str) -> bool:
        """A slot of the run and of ``url``'s host, if both are free now and no file waits
        for either: whether it was taken (then :meth:`give` it back)."""
        if not self.free(url):
            return False
        # Neither is locked, so neither acquire suspends: no other task runs in between.
        await self._host(url).acquire()
        await self.jobs.acquire()
        return True

    def give(self, url: str) -> None:
        """Give back a slot :meth:`try_take` took."""
        self._host(url).release()
        self.jobs.release()
        self._freed()

    def watch(self, event: asyncio.Event) -> None:
        """Set ``event`` each time a slot comes back, until :meth:`unwatch`."""
        self.watchers.add(event)

    def unwatch(self, event: asyncio.Event) -> None:
        self.watchers.discard(event)

    def _freed(self) -> None:
        for event in self.watchers:
            event.set()


# -- the partial file and its sidecar, on disk (blocking: called in worker threads) ----------


def start_partial(archive: Archive, job: Job, side: Path, state: PartialState) -> None:
    """A partial from zero. Its sidecar is written before the first byte, so that whatever
    the partial holds is always described by the validators it came with."""
    discard_partial(archive, job)
    atomic_write_bytes(side, state.to_json())  # makes the folder too


def discard_partial(archive: Archive, job: Job) -> None:
    """Blocking: unlinking a large file frees its blocks, tens of ms on a slow disk. One
    that cannot be removed (a read-only disk) is left: a new partial truncates it."""
    for path in archive.partial_paths(job.entry.id, job.role):
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.debug("%s: cannot remove %s: %s", job.label, path, describe_os_error(exc))


def held_after(archive: Archive, job: Job, *, restart: bool) -> int:
    """The bytes a failed attempt left in the partial file, once it is thrown away if it
    cannot be resumed. Blocking (an unlink, a stat)."""
    if restart:
        discard_partial(archive, job)
    part, _ = archive.partial_paths(job.entry.id, job.role)
    try:
        return part.stat().st_size
    except FileNotFoundError:
        return 0


class Turn:
    """A file's slot of ``--jobs`` and ``--per-host`` (:meth:`.Slots.file`), held only while
    the file uses the network: taken once its catalog record and sidecar are read, given back
    with its last byte, before its checks and commit.

    Neither end needs a connection (a catalog read, a sidecar; an fsync, FFmpeg reading the
    MP4, a catalog transaction: 10-20 ms a file, more on a slow disk), and holding the slot
    through them left each connection idle between files while the next file waited (issue
    14: 40 files of 1.6 MB, 0.07 s a file more than aria2c). A file prepares only in its
    host's queue (``ahead``: as many files as the host may have transfers), so that thousands
    of queued files do not all read the catalog at once, ahead of the transfers' writes.
    """

    def __init__(self, slots: Slots, url: str, ahead: asyncio.Semaphore) -> None:
        self._slots = slots
        self._url = url
        self._ahead: asyncio.Semaphore | None = ahead
        self._queued = False
        self._held: contextlib.AsyncExitStack | None = None
        self.since: float | None = None  # when the slot was first taken

    async def queue(self) -> None:
        """Wait for a place among the files of this host that prepare for their slot."""
        if self._ahead is not None and not self._queued:
            await self._ahead.acquire()
            self._queued = True

    async def take(self) -> None:
        """Wait for the slot, unless it is held already (a retry keeps its place); then the
        next file of the host may prepare."""
        if self._held is None:
            held = contextlib.AsyncExitStack()
            await held.enter_async_context(self._slots.file(self._url))
            self._held = held
            if self.since is None:
                self.since = time.monotonic()
        self._leave_queue()

    async def give(self) -> None:
        """Give the slot back, if held: the next file's request goes out now."""
        self._leave_queue()
        if self._held is not None:
            held, self._held = self._held, None
            await held.aclose()

    def _leave_queue(self) -> None:
        if self._queued and self._ahead is not None:
            self._queued = False
            self._ahead.release()
        self._ahead = None  # once out of the queue, a file never waits in it again
