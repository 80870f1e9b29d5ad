"""One file over several connections: their requests, checks, retries, slots and sidecar.

On a poor line one TCP connection gets a fraction of the line (latency and loss hold its
window small; PeerTube's nginx caps each connection that serves a video file). A file whose
first answer gave its length and a validator that ``If-Range`` accepts (a strong ETag, or a
Last-Modified), with enough of it still to come, and whose one connection proves slow
(:class:`.segments.Gauge`), is fetched over up to ``--connections`` connections, each with a
part of it (:mod:`.segments`):

    Split       the connections of one file
    Line        what they need from the run: the client, the settings, the slots, the cap
    Changed, NoRanges    how a file's connections all stop

**Never a splice.** Every request of a part carries ``If-Range`` with the first answer's
validator, and its answer is checked: a ``206`` whose ``Content-Range`` starts where the part
stands, with the same total length, and the same ETag and Last-Modified. A changed file (a
``200`` with another validator, another length, a ``416``, a range elsewhere) stops every
connection of the file: its partial is thrown away and the file starts again from zero
(:class:`Changed`). A ``200`` of the same version means the server ignores ranges: the other
connections stop and the first goes on alone, or, when it cannot, the file starts again on
one connection (:class:`NoRanges`).

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
import random
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from ..errors import DownloadError
from ..progress import Progress
from .http import (
    CONTENT_RANGE,
    NOT_RETRIED,
    RETRIED,
    DownloadSettings,
    describe,
    not_worth_retrying,
    retry_after,
    unknown_host,
)
from .plan import Job
from .segments import RATE_WINDOW, Part, PartFile, Segments
from .throttle import RateLimiter
from .transfer import (
    FLUSH_INTERVAL,
    WRITE_BLOCK,
    Dropped,
    Retry,
    RetryBudget,
    Slots,
    StallWatch,
)

__all__ = ["CHECKPOINT_INTERVAL", "Changed", "Fetched", "Line", "NoRanges", "Split"]

log = logging.getLogger(__name__)

# How often the sidecar is brought up to date (after an fsync of the partial): a killed run
# fetches again at most this long of each connection's bytes.
CHECKPOINT_INTERVAL = 1.0


class Changed(Retry):
    """The file changed upstream while its parts were fetched: its partial cannot be kept."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"the file changed upstream while its parts were fetched ({what})",
            retry_after=0,
            restart=True,
        )
        self.what = what


class NoRanges(Retry):
    """The server answers a range with the whole file: one connection, from zero."""

    def __init__(self) -> None:
        super().__init__(
            "the server ignores ranges; starting again on one connection",
            retry_after=0,
            restart=True,
        )


class _Again(Exception):
    """A part's request failed in a way another request may fix (its own retries)."""

    def __init__(
        self, reason: str, *, retry_after: float | None = None, stalled: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.stalled = stalled


@dataclass(frozen=True)
class Line:
    """What the connections of a file need from the run."""

    client: httpx.AsyncClient
    settings: DownloadSettings
    slots: Slots
    limiter: RateLimiter | None
    progress: Progress
    url: str  # the URL asked for (after any mirror)
    headers: Mapping[str, str]  # sent with every request (a video's password)
    extensions: Mapping[str, Any] | None


@dataclass(frozen=True)
class Fetched:
    """A file whose parts are all in: its size and sha256, what its answers said of it, and
    the most connections it was fetched over at once."""

    size: int
    sha256: str
    content_type: str
    final_url: str
    connections: int


class Split:
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

    @contextlib.contextmanager
    def _carrying(self) -> Iterator[None]:
        """An answer of this version is bringing bytes (counted in :attr:`peak`)."""
        self.carrying += 1
        self.peak = max(self.peak, self.carrying)
        try:
            yield
        finally:
            self.carrying -= 1

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

    async def _fetch(
        self,
        part: Part,
        response: tuple[httpx.Response, AsyncIterator[bytes]] | None,
        *,
        kept: bool = False,
    ) -> bool:
        """Fetch ``part`` to its end (which may move back meanwhile), retrying as a file's
        transfer is retried: per part, its own budget, stalls and ``Retry-After``.

        ``kept``: the connection's answer before was read to its end, so the first request
        goes on a kept connection. Returns whether the last answer was (for the next one).
        """
        settings = self.settings
        budget = RetryBudget(
            retries=settings.retries,
            resets_after=settings.progress_resets_after,
            backoff_base=settings.backoff_base,
            backoff_max=settings.backoff_max,
        )
        while part.received < part.end and not part.dropped:
            try:
                if response is not None:
                    kept = await self._first(part, *response)
                else:
                    asked = time.monotonic()
                    async with self._ranged(part) as (answer, body_end):
                        chunks = answer.aiter_raw()
                        kept = await self._receive(part, chunks, body_end, (asked, kept))
            except _Again as exc:
                kept = False
                if not budget.failed(held=part.pos - part.start, stalled=exc.stalled):
                    reason = f"{exc.reason} (gave up after {budget.attempt} attempts)"
                    raise DownloadError(self.job.url, reason) from None
                delay = budget.delay(exc.retry_after, random.uniform(0.5, 1.0))  # noqa: S311
                where = f"bytes {part.received}-{part.end - 1}"
                log.info("%s: %s: %s; retry %d in %.1f s", self.job.label, where, exc.reason,
                         budget.attempt, delay)  # fmt: skip
                self.line.progress.retrying(
                    self.job.key, self.job.label, budget.attempt, delay, f"{where}: {exc.reason}"
                )
                await asyncio.sleep(delay)
            finally:
                response = None
        return kept

    async def _first(
        self, part: Part, response: httpx.Response, chunks: AsyncIterator[bytes]
    ) -> bool:
        """The first answer, into the first part; closed once the part is whole (the rest
        of it is other connections' now) or the answer breaks off."""
        try:
            with self._carrying():
                return await self._receive(part, chunks, self.segments.origin.length)
        except httpx.HTTPError as exc:
            raise self._failure(exc) from exc
        finally:
            self.first = None
            await response.aclose()

    @contextlib.asynccontextmanager
    async def _ranged(self, part: Part) -> AsyncIterator[tuple[httpx.Response, int]]:
        """A request for the rest of ``part``, checked to be a range of the same version;
        with where its body ends in the file."""
        validator = self.segments.origin.validator
        assert validator is not None  # noqa: S101 - no file is split without one
        headers = {
            **self.line.headers,
            "Range": f"bytes={part.received}-{part.end - 1}",
            "If-Range": validator,
        }
        extensions = dict(self.line.extensions) if self.line.extensions else None
        try:
            async with self.line.client.stream(
                "GET", self.line.url, headers=headers, extensions=extensions
            ) as response:
                body_end = self._check(part, response)
                with self._carrying():
                    yield response, body_end
        except httpx.HTTPError as exc:
            raise self._failure(exc) from exc

    def _failure(self, exc: httpx.HTTPError) -> Exception:
        """A request's error as this part's retry, or as the file's failure."""
        url = self.job.url
        if isinstance(exc, httpx.TooManyRedirects):
            reason = f"too many redirects (more than {self.settings.max_redirects})"
            return DownloadError(url, reason)
        if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
            return DownloadError(url, f"cannot follow: {exc}")
        if isinstance(exc, httpx.ConnectError) and unknown_host(exc):
            host = httpx.URL(self.line.url).host
            return DownloadError(url, f"cannot reach {host}: no such host (DNS)")
        final = not_worth_retrying(exc)
        if final is not None:
            return DownloadError(url, final)
        return _Again(describe(exc, self.settings.timeout))

    def _check(self, part: Part, response: httpx.Response) -> int:
        """A part's answer must be the range asked for, of the version the file started
        with; anything else stops the file (:class:`Changed`, :class:`NoRanges`) or this
        request (:class:`_Again`). Returns where the range sent ends in the file."""
        origin = self.segments.origin
        status = response.status_code
        etag = response.headers.get("ETag")
        modified = response.headers.get("Last-Modified")
        if status == 206:
            match = CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if match is None:
                raise Changed("a 206 without a byte range")
            if match.group(3) == "*":
                raise Changed("a 206 without the file's length")
            difference = origin.difference(etag, modified, int(match.group(3)))
            first, last = int(match.group(1)), int(match.group(2))
            if difference is None and first != part.received:
                difference = f"asked from byte {part.received}, sent from byte {first}"
            if difference is not None:
                raise Changed(difference)
            if not self.proven:
                self.proven = True
                self.wake.set()
            return last + 1
        if status == 200:
            length = response.headers.get("Content-Length")
            size = int(length) if length and length.isascii() and length.isdigit() else None
            difference = origin.difference(etag, modified, size)
            if difference is not None:
                raise Changed(difference)
            raise NoRanges
        if status == 416:
            raise Changed(f"bytes {part.received}- are no longer there (416)")
        words = f"HTTP {status} {response.reason_phrase}".rstrip()
        if status in RETRIED:
            after = retry_after(response.headers.get("Retry-After"), self.settings.retry_after_max)
            raise _Again(words, retry_after=after)
        if status in NOT_RETRIED:
            raise DownloadError(self.job.url, words)
        raise DownloadError(self.job.url, f"unexpected {words}")

    async def _receive(
        self,
        part: Part,
        chunks: AsyncIterator[bytes],
        body_end: int,
        asked: tuple[float, bool] | None = None,
    ) -> bool:
        """Stream an answer into ``part`` until the part's end, within the bandwidth cap and
        the minimum rate; the bytes past the end (another connection's now) are let go.

        An answer read to its last byte (``body_end``) is read to its end, so that its
        connection serves the next request; one cut short is closed: returns which.
        ``asked``: when its request was sent, and whether on a kept connection, to learn
        how long a request waits for its first byte.
        """
        began = part.received
        since: float | None = None  # the first byte's arrival: the part's rate from then on
        position = began  # where the answer's next byte belongs in the file
        buffer = bytearray()
        pending: asyncio.Task[None] | None = None
        flushed = time.monotonic()
        watch = StallWatch(self.settings.min_rate, self.settings.timeout, flushed)
        limiter = self.line.limiter
        try:
            async for chunk in chunks:
                self.counter[0] += len(chunk)
                watch.received += len(chunk)
                position += len(chunk)
                if since is None:
                    since = time.monotonic()
                    if asked is not None:
                        self._waited(since - asked[0], kept=asked[1])
                elif (elapsed := time.monotonic() - since) >= RATE_WINDOW:
                    part.rate = (position - began) / elapsed
                if part.dropped:
                    return False
                room = part.end - part.received
                used = chunk if len(chunk) <= room else chunk[: max(room, 0)]
                if used:
                    buffer += used
                    part.received += len(used)
                    self.line.progress.advance(self.job.key, len(used))
                if limiter:
                    waiting = time.monotonic()
                    await limiter.consume(len(chunk))
                    watch.waited += time.monotonic() - waiting
                now = time.monotonic()
                done = part.received >= part.end
                if buffer and (
                    len(buffer) >= WRITE_BLOCK or now - flushed >= FLUSH_INTERVAL or done
                ):
                    if pending:
                        await pending
                    pending = self._write(part, buffer)
                    buffer = bytearray()
                    flushed = now
                    watch.waited += time.monotonic() - now  # the disk's time, not the server's
                    now = time.monotonic()
                if done:
                    if position >= body_end:
                        continue  # the answer's end: the connection can be used again
                    return False
                stall = watch.stalled(now)
                if stall is not None:
                    raise _Again(stall, stalled=True)
        finally:
            # Bytes already received are good bytes of this version: kept for the resume.
            if pending:
                await pending
            if buffer and not part.dropped:
                await self._write(part, buffer)
        if part.received == began:
            raise _Again("the server sent none of the range")
        return position >= body_end

    def _waited(self, seconds: float, *, kept: bool) -> None:
        """A request waited ``seconds`` for its first byte, on a kept connection or not."""
        if not kept:
            self.wait = max(self.wait, seconds)
        elif self.measured:
            self.again = max(self.again, seconds)
        else:  # the first measure replaces the guess
            self.again, self.measured = seconds, True

    def _write(self, part: Part, block: bytearray) -> asyncio.Task[None]:
        """Write ``block`` where ``part`` stands, in a worker thread; the part's written
        bytes count it once it is written (a cancelled write is never claimed)."""
        assert self.file is not None  # noqa: S101 - set by run()
        file = self.file
        offset = part.pos

        async def write() -> None:
            await asyncio.to_thread(file.write, offset, block)
            part.pos = offset + len(block)

        task = asyncio.ensure_future(write())
        self.writes.add(task)
        task.add_done_callback(self.writes.discard)
        return task


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
