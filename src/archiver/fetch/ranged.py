"""A part of a split file fetched: its ranged requests, their answers checked, its retries.

:mod:`.split` decides how many connections a file gets and which part each takes; this is
what one connection does with its part, apart because it is the other half of the concept:
what an answer must be, whatever the connections are doing. :class:`RangedFetch` is
:class:`.split.Split`'s base, so a part's requests read and update the file's state (its
partial, its validator, its proof of ranges, its waits) without a layer between them.

    Line        what the connections need from the run: the client, the settings, the slots, the cap
    Changed, NoRanges    how a file's connections all stop

**Never a splice.** Every request of a part carries ``If-Range`` with the first answer's
validator, and its answer is checked: a ``206`` whose ``Content-Range`` starts where the part
stands, with the same total length, and the same ETag and Last-Modified. A changed file (a
``200`` with another validator, another length, a ``416``, a range elsewhere) stops every
connection of the file: its partial is thrown away and the file starts again from zero
(:class:`Changed`). A ``200`` of the same version means the server ignores ranges: the other
connections stop and the first goes on alone, or, when it cannot, the file starts again on
one connection (:class:`NoRanges`).

**Retries.** A part is retried as a whole file's transfer is (:class:`.transfer.RetryBudget`,
stalls, ``Retry-After``), with a budget of its own; a failure no retry mends fails the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from ..errors import DownloadError
from ..progress import Progress
from .http import (
    NOT_RETRIED,
    RETRIED,
    DownloadSettings,
    describe,
    encoded,
    not_worth_retrying,
    repeats_etag,
    retry_after,
    sent_range,
    unknown_host,
)
from .plan import Job
from .segments import RATE_WINDOW, Part, PartFile, Segments
from .throttle import RateLimiter
from .transfer import (
    FLUSH_INTERVAL,
    WRITE_BLOCK,
    Retry,
    RetryBudget,
    Slots,
    StallWatch,
)

__all__ = ["Changed", "Line", "NoRanges", "RangedFetch"]

# The split's logger: a part's requests are its file's split, and log under its name.
log = logging.getLogger("archiver.fetch.split")


class Changed(Retry):
    """A part's answer is not of the version the file's first answer brought (the file
    changed upstream), or not the range asked for as it is: its partial cannot be kept."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"a part's answer does not match the file's first answer ({what}); from zero again",
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


class RangedFetch:
    """The requests of a split file's parts: what :class:`.split.Split` runs on each of its
    connections. The attributes are the file's, set by :class:`.split.Split`."""

    line: Line
    settings: DownloadSettings
    job: Job
    segments: Segments
    counter: list[int]  # bytes received off the network, for the outcome
    file: PartFile | None
    writes: set[asyncio.Task[None]]
    first: Part | None  # the part the first answer streams, while it does
    proven: bool  # a 206 of this version came back: the server serves ranges
    wake: asyncio.Event
    carrying: int  # answers under way that bring bytes of this version
    peak: int  # the most of those at once
    wait: float  # the longest a request on a new connection waited for its first byte
    again: float  # the same on a connection kept from the answer before
    measured: bool  # self.again is a measure, not a guess

    # -- one part's requests -----------------------------------------------------------------

    @contextlib.contextmanager
    def _carrying(self) -> Iterator[None]:
        """An answer of this version is bringing bytes (counted in :attr:`peak`)."""
        self.carrying += 1
        self.peak = max(self.peak, self.carrying)
        try:
            yield
        finally:
            self.carrying -= 1

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
        # The part's rate, judged over its answers together (a server may answer each range
        # honestly with a few bytes, quickly, and never stall one answer), from its first
        # request after the last retry.
        watch: StallWatch | None = None
        while part.received < part.end and not part.dropped:
            try:
                if response is not None:
                    kept = await self._first(part, *response)
                else:
                    asked = time.monotonic()
                    if watch is None:
                        watch = StallWatch(settings.min_rate, settings.timeout, asked)
                    async with self._ranged(part) as (answer, body_end):
                        chunks = answer.aiter_raw()
                        kept = await self._receive(part, chunks, body_end, (asked, kept), watch)
                    stall = watch.stalled(time.monotonic())
                    if stall is not None and part.received < part.end and not part.dropped:
                        raise _Again(stall, stalled=True)
            except _Again as exc:
                kept = False
                watch = None
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
            sent = sent_range(response)
            if isinstance(sent, str):
                raise Changed(sent)
            first, last, total = sent
            difference = origin.difference(etag, modified, total)
            if difference is None and not repeats_etag(origin.etag, etag):
                difference = f"a 206 without the ETag {origin.etag} it was asked to match"
            if difference is None and first != part.received:
                difference = f"asked from byte {part.received}, sent from byte {first}"
            if difference is not None:
                raise Changed(difference)
            if not self.proven:
                self.proven = True
                self.wake.set()
            return last + 1
        if status == 200:
            coding = encoded(response)
            if coding is not None:
                raise DownloadError(self.job.url, f"the server's answer is {coding}")
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
        watch: StallWatch | None = None,
    ) -> bool:
        """Stream an answer into ``part`` until the part's end, within the bandwidth cap and
        the minimum rate; the bytes past the end (another connection's now) are let go.

        An answer read to its last byte (``body_end``) is read to its end, so that its
        connection serves the next request; one cut short is closed: returns which.
        ``asked``: when its request was sent, and whether on a kept connection, to learn
        how long a request waits for its first byte. ``watch``: the part's minimum rate, kept
        across its answers (one of this answer's own by default).
        """
        began = part.received
        since: float | None = None  # the first byte's arrival: the part's rate from then on
        position = began  # where the answer's next byte belongs in the file
        buffer = bytearray()
        pending: asyncio.Task[None] | None = None
        flushed = time.monotonic()
        if watch is None:
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
                # Up to the part's end, and never past the range the answer said it sends.
                room = min(part.end, body_end) - part.received
                used = chunk if len(chunk) <= room else chunk[: max(room, 0)]
                if used:
                    buffer += used
                    part.received += len(used)
                    self.line.progress.advance(self.job.key, len(used))
                if limiter:
                    waiting = time.monotonic()
                    await limiter.consume(len(chunk))
                    watch.waited += time.monotonic() - waiting
                if position > body_end:  # more than the range announced: not the file's
                    raise _Again("the server sent more than the range it announced")
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
