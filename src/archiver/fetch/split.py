"""One file over several connections: how many, which part each takes, the file's sidecar.

On a poor line one TCP connection gets a fraction of the line (latency and loss hold its
window small; PeerTube's nginx caps each connection that serves a video file). A file whose
first answer gave its length and a validator that ``If-Range`` accepts (a strong ETag, or a
Last-Modified), with enough of it still to come, and whose one connection proves slow
(:class:`.segments.Gauge`), is fetched over up to ``--connections`` connections, each with a
part of it (:mod:`.segments`):

    Split       the connections of one file
    Fetched     what they brought: its size, sha256 and the connections it took

What each connection does with its part (the ranged requests, their answers checked so that
a part is never spliced from two versions of the file, its retries) is :mod:`.ranged`, the
base of :class:`Split`: apart, because what an answer must be holds whatever the connections
do. ``Line``, ``Changed`` and ``NoRanges`` are its, and still importable from here.

**Work stealing.** The first connection starts with the rest of the file; each other
connection takes the far piece of the largest part still to come, and so does any connection
that finishes its part, while that piece is worth a new request: half of what is left once
the part's own connection has brought what it brings while the new request waits for its
first byte (:meth:`.Segments.piece`; halves until its rate is measured). Parts end together.
That wait is two round trips on a new connection, one on a connection whose answer before
was read to its end (kept alive): measured, as the first answers come.

**A crash.** The sidecar is brought up to date about once a second (:meth:`.PartFile.checkpoint`);
the next run resumes every part where its bytes end.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from ..errors import DownloadError
from .plan import Job
from .ranged import Changed, Line, NoRanges, RangedFetch
from .segments import Part, PartFile, Segments
from .transfer import Dropped, Retry

__all__ = ["CHECKPOINT_INTERVAL", "Changed", "Fetched", "Line", "NoRanges", "Split"]

log = logging.getLogger(__name__)

# How often the sidecar is brought up to date (after an fsync of the partial): a killed run
# fetches again at most this long of each connection's bytes.
CHECKPOINT_INTERVAL = 1.0


@dataclass(frozen=True)
class Fetched:
    """A file whose parts are all in: its size and sha256, what its answers said of it, and
    the most connections it was fetched over at once."""

    size: int
    sha256: str
    content_type: str
    final_url: str
    connections: int


class Split(RangedFetch):
    """Fetch one file over up to ``settings.connections`` connections.

    The first connection is the one the file already has (a slot of ``--jobs`` and
    ``--per-host``, and maybe the first answer, still streaming); each other one takes a
    slot of its own when one is free and no file waits for it, and gives it back when no
    part is left to take.
    """

    def __init__(
        self,
        line: Line,
        job: Job,
        paths: tuple[Path, Path],
        segments: Segments,
        counter: list[int],
        *,
        latency: float = 0.0,
    ) -> None:
        self.line = line
        self.settings = line.settings
        self.job = job
        self.part_path, self.side = paths
        self.segments = segments
        self.counter = counter  # bytes received off the network, for the outcome
        self.limit = max(line.settings.connections, 1)
        self.workers = 0  # connections under way (asking, waiting to retry, receiving)
        self.carrying = 0  # answers under way that bring bytes of this version
        self.peak = 0  # the most of those at once: the connections the file was fetched over
        self.proven = False  # a 206 of this version came back: the server serves ranges
        self.announced = False  # the first answer said Accept-Ranges: bytes
        self.no_ranges = False
        self.first: Part | None = None  # the part the first answer streams, while it does
        self.wake = asyncio.Event()  # a slot came back, a connection ended, ranges proven
        self.over = asyncio.Event()  # no connection left
        self.writes: set[asyncio.Task[None]] = set()
        # The longest a request on a new connection waited for its first byte (the first
        # answer's, to begin with), and one on a connection kept from the answer before
        # (half of that until measured: a new TCP connection costs one more round trip): a
        # piece taken from a part is what its own connection would not bring sooner.
        self.wait = latency
        self.again = latency / 2
        self.measured = False  # self.again is a measure, not that guess
        self.file: PartFile | None = None
        self.group: asyncio.TaskGroup | None = None

    # -- the whole file ----------------------------------------------------------------------

    async def run(
        self,
        first: tuple[httpx.Response, AsyncIterator[bytes]] | None = None,
        hashed: tuple[Any, int] | None = None,
    ) -> Fetched:
        """Fetch every part not yet written, with ``first`` (an answer already checked, of
        the rest from where the partial ends, and what is left of its body) on the first
        connection; ``hashed``: the sha256 object of the partial's first bytes, and their
        count.
        """
        self.file = await asyncio.to_thread(PartFile, self.part_path, fresh=False, hashed=hashed)
        keep = True
        try:
            await self._checkpoint()  # before the first byte: this is what the partial holds
            if first is not None:
                self.first = self.segments.parts[0]
                self.first.busy = True
                self.proven = first[0].status_code == 206
                ranges = first[0].headers.get("Accept-Ranges", "")
                self.announced = "bytes" in ranges.lower()
            self.line.slots.watch(self.wake)
            try:
                async with asyncio.TaskGroup() as group:
                    self.group = group
                    self._start(self.first, first, extra=False)
                    group.create_task(self._grow())
                    group.create_task(self._checkpoints())
            except BaseExceptionGroup as failed:
                raise _worst(failed) from None
            finally:
                self.line.slots.unwatch(self.wake)
                await self._settle()
            if not self.segments.complete:  # every connection ended, some part not whole
                raise Retry("a part of the file did not arrive")
            await self._checkpoint()  # all of it claimed: a kill now loses nothing
            keep = False
            size, digest = await asyncio.to_thread(self.file.digest, self.segments.origin.length)
        except (Changed, NoRanges, Dropped):
            keep = False  # its partial is thrown away
            raise
        finally:
            if keep and self.segments.size:
                with contextlib.suppress(OSError):
                    await self._checkpoint()
            await asyncio.to_thread(self.file.close)
        origin = self.segments.origin
        return Fetched(size, digest, origin.content_type, origin.final_url, self.peak)

    async def _settle(self) -> None:
        """Wait for the writes still in flight (a cancelled connection's)."""
        if self.writes:
            await asyncio.gather(*self.writes, return_exceptions=True)

    async def _checkpoint(self) -> None:
        assert self.file is not None  # noqa: S101 - set by run()
        await asyncio.to_thread(self.file.checkpoint, self.side, self.segments.to_json())

    async def _checkpoints(self) -> None:
        """The sidecar, brought up to date about once a second while bytes come."""
        last = self.segments.to_json()
        while not self.over.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.over.wait(), CHECKPOINT_INTERVAL)
            record = self.segments.to_json()
            if record != last and not self.over.is_set():
                await self._checkpoint()
                last = record

    # -- adding connections ------------------------------------------------------------------

    def _start(
        self,
        part: Part | None,
        response: tuple[httpx.Response, AsyncIterator[bytes]] | None = None,
        *,
        extra: bool,
    ) -> None:
        """A connection, with ``part`` to fetch first; ``extra``: with a slot of its own.

        What it holds is given back when its task is done, by a callback: a task cancelled
        before its first step (the file stopped meanwhile) never runs its ``finally``.
        """
        assert self.group is not None  # noqa: S101 - inside run()'s task group
        self.workers += 1
        task = self.group.create_task(self._connection(part, response))
        task.add_done_callback(functools.partial(self._ended, extra))

    def _ended(self, extra: bool, _task: asyncio.Task[None]) -> None:
        self.workers -= 1
        if extra:
            self.line.slots.give(self.line.url)
        if self.workers == 0:
            self.over.set()
        self.wake.set()

    def _may_steal(self) -> bool:
        """Whether a new connection may take half of a part being fetched: the server must
        have answered a range (or said it would, then one connection asks first)."""
        if self.no_ranges:
            return False
        return self.proven or self.announced or self.workers < 2

    async def _grow(self) -> None:
        """Add connections while a slot is free and there is work for one."""
        min_piece = self.settings.min_piece
        while True:
            self.wake.clear()
            if self.over.is_set():
                return
            while self.workers < self.limit:
                waiting = any(not p.busy and p.pos < p.end for p in self.segments.parts)
                if not waiting and not (
                    self._may_steal() and self.segments.largest(min_piece, self.wait) is not None
                ):
                    break
                if not await self.line.slots.try_take(self.line.url):
                    break
                part = self.segments.take() or self.segments.steal(min_piece, self.wait)
                if part is None:  # taken meanwhile (try_take does not wait: never so)
                    self.line.slots.give(self.line.url)
                    break
                self._start(part, extra=True)
            await self.wake.wait()

    # -- one connection ----------------------------------------------------------------------

    async def _connection(
        self, part: Part | None, response: tuple[httpx.Response, AsyncIterator[bytes]] | None
    ) -> None:
        """One connection: its part, then any part left or a piece of the largest one."""
        kept = False  # the last answer was read to its end: its connection serves the next
        while True:
            if part is None:
                part = self.segments.take()
                if part is None and self._may_steal():
                    wait = self.again if kept else self.wait
                    part = self.segments.steal(self.settings.min_piece, wait)
                if part is None:
                    return
            log.debug("%s: bytes %d-%d on a connection (%d under way)", self.job.label,
                      part.received, part.end - 1, self.workers)  # fmt: skip
            try:
                kept = await self._fetch(part, response, kept=kept)
            except NoRanges:
                if not self._alone():
                    raise
                return  # the first answer goes on alone
            part.busy = False
            part, response = None, None

    def _alone(self) -> bool:
        """The server ignores ranges: may the first answer, still streaming, go on alone?
        Only while no other part holds a byte. Then it has the whole file again."""
        self.no_ranges = True
        first = self.first
        if first is None:
            return False
        others = [part for part in self.segments.parts if part is not first]
        if any(part.received > part.start for part in others if not part.dropped):
            return False
        for part in others:
            part.dropped = True
        first.end = self.segments.origin.length
        self.segments.parts = [first]
        return True


def _worst(failed: BaseExceptionGroup[BaseException]) -> BaseException:
    """The failure of a file's connections that says most about it: a changed file first,
    then a server that ignores ranges, a failure of the file, a disk's error, the rest."""
    found: list[BaseException] = []

    def flatten(group: BaseExceptionGroup[BaseException]) -> None:
        for exc in group.exceptions:
            if isinstance(exc, BaseExceptionGroup):
                flatten(exc)
            else:
                found.append(exc)

    flatten(failed)
    order: Sequence[type[BaseException]] = (Changed, NoRanges, DownloadError, OSError, Exception)
    for kind in order:
        for exc in found:
            if isinstance(exc, kind):
                return exc
    return found[0]
