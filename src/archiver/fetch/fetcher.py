"""Fetch one file over HTTP into the archive: resume, verify, retry, within a bandwidth cap.

Resume never splices two versions of a file. A partial file is resumed with ``Range`` *and*
``If-Range`` carrying the validator recorded when its first byte arrived: a server whose file
changed answers ``200`` with the whole new file, and archiver starts again from zero. A ``206``
whose ``Content-Range`` or ``ETag`` does not match the partial restarts too. ``wget -c`` and
``curl -C -`` send no ``If-Range`` and would append the new version to the old one's bytes.

A file held and due for a refresh is asked for with ``If-None-Match``/``If-Modified-Since``:
``304`` means it did not change; ``200`` brings its new version, kept beside the old one.

A large file whose one connection proves slow is fetched on over several connections, in
ranged parts (:mod:`.split`); the rest, and any file whose server does not answer ranges
with a validator ``If-Range`` accepts, over one, as here.

Here are the attempts and the answers read; what one transfer leans on (its retry budget,
the sink, the minimum rate, the room on disk, the partial file) is in :mod:`.transfer`, and
the checks of a whole file and its commit in :mod:`.finish`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import logging
import random
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..archive import Archive, FileRecord, PartialState
from ..errors import ArchiverError, DownloadError, describe_os_error
from ..progress import Progress
from .answers import (
    cap_words,
    check_response,
    described,
    final_url_of,
    resume_point,
    within_cap,
)
from .finish import Answer, finish
from .hosts import HostDown, Hosts, HostUnreachable
from .http import (
    PASSWORD_HEADER,
    PASSWORD_ORIGIN,
    DownloadSettings,
    describe,
    not_worth_retrying,
    strong_etag,
    unknown_host,
)
from .http import (
    origin as _origin,
)
from .plan import Job, Outcome, Status
from .segments import Gauge, Segments
from .split import Changed, Line, NoRanges, Split
from .throttle import RateLimiter
from .transfer import (
    FLUSH_INTERVAL,
    WRITE_BLOCK,
    Dropped,
    NotModified,
    Retry,
    RetryBudget,
    Room,
    Sink,
    Slots,
    StallWatch,
    Turn,
    discard_partial,
    held_after,
    start_partial,
)
from .warm import warm_up

__all__ = ["Fetcher", "RetryBudget"]  # RetryBudget: from .transfer, still named here

log = logging.getLogger(__name__)

# The errors of a disk that has no room left: the partial is dropped, so that the catalog,
# on the same disk, can still write, and the next run starts on a disk with room.
_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


# -- one attempt at one file -------------------------------------------------------------------


class Fetcher:
    """Runs jobs against one HTTP client, one archive and one rate limiter."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        archive: Archive,
        settings: DownloadSettings,
        progress: Progress,
        *,
        hosts: Hosts | None = None,
    ) -> None:
        self.client = client
        self.archive = archive
        self.settings = settings
        self.progress = progress
        self.limiter = RateLimiter(settings.rate_limit) if settings.rate_limit else None
        self.slots = Slots(settings.jobs, settings.per_host)
        self.unknown_hosts: dict[str, str] = {}  # host → reason, for the rest of the run
        # Hosts given up on for the run (the client's transport counts their failures): a
        # retry waiting for one wakes up when it goes down, to fail at once.
        self.hosts = hosts or Hosts()
        # Transfers under way whose size is known: the room they still need is not free.
        self.room = Room(archive.partials)
        # The most connections each file was fetched over at once (1 when not split).
        self.connections: dict[tuple[str, str], int] = {}
        # Files whose server answered a range with the whole file: one connection from now.
        self.unsplit: set[tuple[str, str]] = set()
        # Each file's attempts' byte counters: what a file received over all its attempts,
        # for its outcome (one the run's deadline cancelled too: that one is made outside).
        self.counters: dict[tuple[str, str], list[list[int]]] = {}
        # Per host, the files preparing for a slot (Turn): as many as the host may fetch.
        self.ahead: dict[str, asyncio.Semaphore] = {}
        self.pending = 0  # files of the run not yet done: one alone may warm connections

    def _turn(self, url: str) -> Turn:
        """A file's turn at a slot for ``url``, in its host's queue."""
        host = urlsplit(url).netloc.lower()
        places = max(min(self.settings.jobs, self.settings.per_host), 1)
        ahead = self.ahead.setdefault(host, asyncio.Semaphore(places))
        return Turn(self.slots, url, ahead)

    async def run(self, job: Job) -> Outcome:
        turn = self._turn(self.settings.request_url(job.url))
        self.pending += 1
        try:
            await turn.queue()
            outcome = await self._with_retries(job, turn)
        except Exception as exc:  # a bug, or an answer no check foresaw: this file only
            log.debug("%s", job.label, exc_info=True)
            reason = f"internal error: {type(exc).__name__}: {exc} (a bug: please report it)"
            outcome = Outcome(job, Status.FAILED, reason=reason)
        finally:
            self.pending -= 1
            await turn.give()
            self.room.release(job)
        start = turn.since if turn.since is not None else time.monotonic()
        outcome = dataclasses.replace(outcome, seconds=time.monotonic() - start)
        self.progress.finished(job.key, failed=outcome.status is Status.FAILED)
        return outcome

    def received(self, job: Job) -> int:
        """The bytes ``job``'s attempts received so far, cut short or not."""
        return sum(counter[0] for counter in self.counters.get(job.key, ()))

    def _status(self, job: Job, before: FileRecord | None, after: FileRecord) -> Status:
        if before is not None and after.version != before.version:
            return Status.CHANGED
        # A refresh that brought the same bytes again changed nothing held.
        return Status.HELD if job.revalidate is not None else Status.FETCHED

    def _before(self, job: Job) -> FileRecord | None:
        """The current version of the rendition ``job`` fetches, before it does."""
        item, role = job.entry.id, job.role
        rendition = self.archive.rendition_of(item, role, job.url, job.resolution)
        return self.archive.current(item, role, rendition)

    async def _with_retries(self, job: Job, turn: Turn) -> Outcome:
        try:
            before = await asyncio.to_thread(self._before, job)
        except ArchiverError as exc:  # a catalog that cannot say (a damaged page): this file
            return Outcome(job, Status.FAILED, reason=exc.message)
        budget = RetryBudget(
            retries=self.settings.retries,
            resets_after=self.settings.progress_resets_after,
            backoff_base=self.settings.backoff_base,
            backoff_max=self.settings.backoff_max,
        )
        changed = False  # the file changed once while its parts were fetched
        while True:
            counter = [0]
            self.counters.setdefault(job.key, []).append(counter)
            try:
                record = await self._attempt(job, counter, turn)
            except Retry as exc:
                if isinstance(exc, NoRanges):
                    self.unsplit.add(job.key)
                if isinstance(exc, Changed):
                    # Started again from zero; the second time, over one connection, which
                    # cannot splice: its parts' answers keep disagreeing with the first (a
                    # file still changing, servers behind one name each with validators of
                    # their own, a server whose ranges are broken).
                    if changed:
                        self.unsplit.add(job.key)
                    changed = True
                held = await asyncio.to_thread(held_after, self.archive, job, restart=exc.restart)
                if not budget.failed(held=held, stalled=exc.stalled):
                    reason = f"{exc.reason} (gave up after {budget.attempt} attempts)"
                    return Outcome(
                        job, Status.FAILED, reason=reason, bytes_fetched=self.received(job)
                    )
                delay = budget.delay(exc.retry_after, random.uniform(0.5, 1.0))  # noqa: S311 - jitter
                log.info("%s: %s; retry %d in %.1f s", job.label, exc.reason, budget.attempt, delay)
                self.progress.retrying(job.key, job.label, budget.attempt, delay, exc.reason)
                await self.hosts.pause(self.settings.request_url(job.url), delay)
            except NotModified:
                assert job.revalidate is not None  # noqa: S101 - only conditional requests get 304
                await turn.give()  # the answer is read: the catalog's write needs no connection
                try:
                    await asyncio.to_thread(self.archive.mark_checked, job.revalidate)
                except ArchiverError as exc:
                    return Outcome(job, Status.FAILED, reason=exc.message)
                return Outcome(job, Status.HELD, record=job.revalidate)
            except DownloadError as exc:
                if isinstance(exc, Dropped):
                    await asyncio.to_thread(discard_partial, self.archive, job)
                host = exc.down.host if isinstance(exc, HostUnreachable) else None
                return Outcome(
                    job,
                    Status.FAILED,
                    reason=exc.reason,
                    bytes_fetched=self.received(job),
                    unreachable=host,
                )
            except ArchiverError as exc:
                return Outcome(
                    job, Status.FAILED, reason=exc.message, bytes_fetched=self.received(job)
                )
            else:
                status = self._status(job, before, record)
                return Outcome(job, status, record=record, bytes_fetched=self.received(job))

    def _password_for(self, job: Job, url: str) -> str | None:
        """``--video-password``, for a video its instance said is protected, to that instance
        only (a redirect elsewhere drops it: :func:`.http.make_client`)."""
        ref = job.entry.peertube
        if not self.settings.video_password or ref is None or not job.protected:
            return None
        instance = urlsplit(self.settings.request_url(ref.instance)).netloc.lower()
        return self.settings.video_password if urlsplit(url).netloc.lower() == instance else None

    async def _attempt(self, job: Job, counter: list[int], turn: Turn) -> FileRecord:
        url = self.settings.request_url(job.url)
        host = urlsplit(url).hostname or ""
        if host in self.unknown_hosts:
            raise DownloadError(job.url, self.unknown_hosts[host])
        # The sidecar's bytes and the partial's size: the disk's, so from a worker thread.
        have, state, headers, segments = await asyncio.to_thread(resume_point, self.archive, job)
        # The file's connection (its first, or again after a retry that had given it back),
        # before its room is claimed: files waiting for a slot claim none.
        await turn.take()
        if job.known_size is not None and job.revalidate is None:
            # No room for it: not a byte asked for. (A refresh asks all the same: most are
            # answered "not modified", and a new version announces its length.)
            await self.room.claim(job, job.known_size, have)
        if segments is None and not headers and job.revalidate is not None:
            # A refresh: ask for the file only if it changed since the version held.
            if job.revalidate.etag:
                headers["If-None-Match"] = job.revalidate.etag
            if job.revalidate.last_modified:
                headers["If-Modified-Since"] = job.revalidate.last_modified
        part, side = self.archive.partial_paths(job.entry.id, job.role)
        sink: Sink | None = None
        warm: asyncio.Task[None] | None = None
        password = self._password_for(job, url)
        if password:
            headers[PASSWORD_HEADER] = password
        origin = {PASSWORD_ORIGIN: _origin(url)} if password else None
        line = Line(
            client=self.client,
            settings=self.settings,
            slots=self.slots,
            limiter=self.limiter,
            progress=self.progress,
            url=url,
            headers={PASSWORD_HEADER: password} if password else {},
            extensions=origin,
        )
        try:
            if segments is not None:  # fetched in parts: each part resumes where it stopped
                return await self._split(job, line, segments, None, counter, turn)
            asked = time.monotonic()
            answered = asyncio.Event()
            if self._may_warm(job, have):
                more = self.settings.connections - 1
                warm = asyncio.create_task(warm_up(line, more, answered))
            async with self.client.stream(
                "GET", url, headers=headers, extensions=origin
            ) as response:
                answered.set()
                latency = time.monotonic() - asked
                offset, expected, state = check_response(
                    job, response, have, state, self.settings.retry_after_max
                )
                if offset is not None:
                    if offset == 0:
                        # Off the event loop: its fsyncs would hold up every other download.
                        await asyncio.to_thread(start_partial, self.archive, job, side, state)
                    if expected is not None:  # the room it needs, now that the server said
                        await self.room.claim(job, expected, offset)
                    self.progress.started(job.key, job.label, expected, offset)
                    sink = await asyncio.to_thread(Sink, part, offset)
                    self.room.writing(job, sink)
                    split = None
                    if self._splittable(job, response, offset, expected, state):
                        assert expected is not None  # noqa: S101 - splittable: a known size
                        split = Gauge(
                            floor=self.settings.split_below,
                            latency=latency,
                            far=self.settings.far_latency,
                            left=expected - offset,
                            at_least=max(self.settings.split_at, 1),
                            capped=self.limiter is not None,
                        )
                    rest = await self._receive(job, response, sink, counter, split, url)
                    if rest is not None:
                        # Slow, and a slot free: the rest goes over several connections.
                        assert expected is not None  # noqa: S101 - splittable: a known size
                        hashed = await asyncio.to_thread(sink.handover)
                        version = described(job, response, state, expected)
                        parts = Segments.fresh(version, sink.size)
                        first = (response, rest)
                        return await self._split(
                            job, line, parts, first, counter, turn, hashed, latency
                        )
                else:  # 416: the partial already holds the whole file
                    sink = await asyncio.to_thread(Sink, part, have)
                answer = Answer(
                    response.headers.get("Content-Type", ""), final_url_of(job, response)
                )
            # The body is read and the answer closed: the next file may have the connection.
            await turn.give()
            await asyncio.to_thread(sink.close, durable=True)
            return await self._finish(job, answer, state, expected, sink.size, sink.hexdigest())
        except httpx.TooManyRedirects as exc:
            reason = f"too many redirects (more than {self.settings.max_redirects})"
            raise DownloadError(job.url, reason) from exc
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise DownloadError(job.url, f"cannot follow: {exc}") from exc
        except HostDown as exc:  # down for the run: no retry, the one reason for the host
            raise HostUnreachable(job.url, exc.down) from exc
        except httpx.ConnectError as exc:
            if unknown_host(exc):
                reason = f"cannot reach {host}: no such host (DNS)"
                self.unknown_hosts[host] = reason
                raise DownloadError(job.url, reason) from exc
            self._fail_at_once(job, exc)
            raise Retry(describe(exc, self.settings.timeout)) from exc
        except httpx.HTTPError as exc:
            self._fail_at_once(job, exc)
            raise Retry(describe(exc, self.settings.timeout)) from exc
        except OSError as exc:
            where = exc.filename or part
            reason = f"cannot write {where}: {describe_os_error(exc)}"
            if exc.errno in _DISK_FULL:  # its bytes go, so the catalog can still write
                raise Dropped(job.url, reason) from exc
            raise DownloadError(job.url, reason) from exc
        finally:
            if warm is not None:
                warm.cancel()  # done long since, but for a file that failed at once
            self.room.release(job)
            if sink is not None and not sink.closed:
                with contextlib.suppress(OSError):
                    await asyncio.to_thread(sink.close, durable=False)

    def _may_warm(self, job: Job, have: int) -> bool:
        """Whether to open the connections a split would add while the first request waits
        for its answer (:mod:`.warm`): only for a new file that may be split (its size not
        known, or known to be large enough), alone in the run (no other file waits for a
        slot, or would find one taken), from its first byte."""
        settings = self.settings
        if settings.connections < 2 or have or job.revalidate is not None:
            return False
        if job.key in self.unsplit or self.pending != 1:
            return False
        return job.known_size is None or job.known_size >= max(settings.split_at, 1)

    def _splittable(
        self,
        job: Job,
        response: httpx.Response,
        offset: int,
        total: int | None,
        state: PartialState,
    ) -> bool:
        """Whether the rest of a file is worth several connections, and safe over them: its
        length known, enough of it still to come, a validator for ``If-Range``, a server
        that does not say it refuses ranges, and one that did not ignore them before."""
        if self.settings.connections < 2 or job.key in self.unsplit:
            return False
        if total is None or total - offset < max(self.settings.split_at, 1):
            return False
        if (strong_etag(state.etag) or state.last_modified) is None:
            return False
        return "none" not in response.headers.get("Accept-Ranges", "").lower()

    async def _split(
        self,
        job: Job,
        line: Line,
        segments: Segments,
        first: tuple[httpx.Response, AsyncIterator[bytes]] | None,
        counter: list[int],
        turn: Turn,
        hashed: tuple[Any, int] | None = None,
        latency: float = 0.0,
    ) -> FileRecord:
        """Fetch a file in parts over several connections (:mod:`.split`), then check it
        and commit it as any file. ``first``: the answer one connection was streaming, and
        the rest of its body (``hashed``: the sha256 of what it brought, and its size;
        ``latency``: how long it took to come)."""
        origin = segments.origin
        within_cap(job, origin.length)
        await self.room.claim(job, origin.length, segments.size)
        self.progress.started(job.key, job.label, origin.length, segments.size)
        self.room.writing(job, segments)
        paths = self.archive.partial_paths(job.entry.id, job.role)
        split = Split(line, job, paths, segments, counter, latency=latency)
        try:
            fetched = await split.run(first, hashed)
        finally:
            self.connections[job.key] = max(self.connections.get(job.key, 1), split.peak)
        await turn.give()  # every part is in: the checks and the commit need no connection
        state = PartialState(
            url=job.url, etag=origin.etag, last_modified=origin.last_modified, length=origin.length
        )
        answer = Answer(fetched.content_type, fetched.final_url)
        return await self._finish(job, answer, state, origin.length, fetched.size, fetched.sha256)

    @staticmethod
    def _fail_at_once(job: Job, exc: httpx.HTTPError) -> None:
        """A failure no retry mends (a certificate refused, https redirected to http): the
        file fails now, with the one line that says what to fix."""
        reason = not_worth_retrying(exc)
        if reason is not None:
            raise DownloadError(job.url, reason) from exc

    async def _receive(
        self,
        job: Job,
        response: httpx.Response,
        sink: Sink,
        counter: list[int],
        split: Gauge | None = None,
        url: str = "",
    ) -> AsyncIterator[bytes] | None:
        """Stream the body into ``sink``, within the bandwidth cap, the file's size cap and
        the minimum rate. With a ``split`` gauge, stop once the connection proves slow while
        another connection to ``url`` is free: then the rest of the body, to be read on
        (every byte received before is written)."""
        # The chunks as received, handed to the writer's thread as they are: joining them
        # here would copy every byte on the event loop's thread, which is what limits a fast
        # line (bench/bench_download.py, 100 files).
        blocks: list[bytes] = []
        held = 0
        pending: asyncio.Future[None] | None = None
        flushed_at = time.monotonic()
        watch = StallWatch(self.settings.min_rate, self.settings.timeout, flushed_at)
        allowed = job.cap - sink.size  # the bytes the partial may still take
        limited = 0.0  # the seconds waited on the bandwidth cap, for the split's gauge
        chunks = response.aiter_raw()
        try:
            async for chunk in chunks:
                blocks.append(chunk)
                held += len(chunk)
                counter[0] += len(chunk)
                watch.received += len(chunk)
                if counter[0] > allowed:
                    raise Dropped(job.url, f"too large: over {cap_words(job)}")
                self.progress.advance(job.key, len(chunk))
                if self.limiter:
                    waiting = time.monotonic()
                    await self.limiter.consume(len(chunk))
                    waited = time.monotonic() - waiting
                    watch.waited += waited
                    limited += waited
                now = time.monotonic()
                if held >= WRITE_BLOCK or now - flushed_at >= FLUSH_INTERVAL:
                    if pending:
                        await pending
                    written, blocks, held = blocks, [], 0
                    pending = asyncio.ensure_future(asyncio.to_thread(sink.write, written))
                    flushed_at = now
                    watch.waited += time.monotonic() - now  # the disk's time, not the server's
                    now = time.monotonic()
                stall = watch.stalled(now)
                if stall is not None:
                    raise Retry(stall, stalled=True)
                if (
                    split
                    and split.slow(len(chunk), now=now, waited=limited)
                    and self.slots.free(url)
                ):
                    return chunks
        finally:
            # Bytes already received are good bytes of this version: keep them for the resume.
            if pending:
                await pending
            if blocks:
                await asyncio.to_thread(sink.write, blocks)
        return None

    async def _finish(
        self,
        job: Job,
        answer: Answer,
        state: PartialState,
        expected: int | None,
        size: int,
        digest: str,
    ) -> FileRecord:
        """Check a complete partial file, then commit it (:mod:`.finish`)."""
        return await finish(
            self.archive,
            self.client,
            job,
            answer,
            state,
            expected,
            size,
            digest,
            check_media=self.settings.check_media,
        )
