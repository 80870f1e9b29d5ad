"""Fetch one file over HTTP into the archive: resume, verify, retry, within a bandwidth cap.

Resume never splices two versions of a file. A partial file is resumed with ``Range`` *and*
``If-Range`` carrying the validator recorded when its first byte arrived: a server whose file
changed answers ``200`` with the whole new file, and archiver starts again from zero. A ``206``
whose ``Content-Range`` or ``ETag`` does not match the partial restarts too. ``wget -c`` and
``curl -C -`` send no ``If-Range`` and would append the new version to the old one's bytes.

A file held and due for a refresh is asked for with ``If-None-Match``/``If-Modified-Since``:
``304`` means it did not change; ``200`` brings its new version, kept beside the old one.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import functools
import hashlib
import logging
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import httpx

from .. import media, sniff
from ..archive import Archive, FetchedFile, FileRecord, PartialState
from ..errors import ArchiverError, ChecksumMismatch, DownloadError, describe_os_error
from ..files import atomic_write_bytes
from ..progress import Progress
from ..units import format_bytes
from .http import (
    CONTENT_RANGE,
    NOT_RETRIED,
    PASSWORD_HEADER,
    PASSWORD_ORIGIN,
    RETRIED,
    UNSATISFIED_RANGE,
    DownloadSettings,
    describe,
    not_worth_retrying,
    retry_after,
    strong_etag,
    unknown_host,
)
from .http import (
    origin as _origin,
)
from .peertube import check_segments
from .plan import Job, Outcome, Status
from .throttle import RateLimiter

__all__ = ["Fetcher", "RetryBudget"]

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
# The errors of a disk that has no room left: the partial is dropped, so that the catalog,
# on the same disk, can still write, and the next run starts on a disk with room.
_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


@dataclass
class RetryBudget:
    """How many more attempts a file gets, and how long to wait before the next. Pure.

    A failed attempt that grew the partial file past its best by ``resets_after`` bytes made
    progress: the count starts again, so a line that drops every few minutes still finishes.
    An attempt that ended in a stall (under the minimum rate) never counts as progress: a
    server trickling bytes gets its retries and no more, however many bytes it trickled.

    >>> budget = RetryBudget(retries=2, resets_after=100, backoff_base=1, backoff_max=60)
    >>> budget.failed(held=0), budget.failed(held=10), budget.failed(held=20)
    (True, True, False)
    >>> budget.failed(held=500), budget.attempt  # 480 more bytes than ever: progress
    (True, 1)
    >>> budget.failed(held=5000, stalled=True), budget.attempt  # a trickle: no progress
    (True, 2)
    """

    retries: int
    resets_after: int
    backoff_base: float
    backoff_max: float
    attempt: int = 0
    best: int = 0  # the most bytes the partial file held after a failed attempt

    def failed(self, *, held: int, stalled: bool = False) -> bool:
        """An attempt failed with ``held`` bytes in the partial: may another one start?"""
        if held >= self.best + self.resets_after and not stalled:
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
        backoff: float = self.backoff_base * 2 ** (self.attempt - 1)
        return min(self.backoff_max, backoff) * jitter


# -- one attempt at one file -------------------------------------------------------------------


class _NotModified(Exception):
    """The server confirmed that a held file did not change (304)."""


class _Retry(Exception):
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


class _Dropped(DownloadError):
    """A failure after which the partial file must not be kept: a disk with no room left, a
    body over its cap."""


@dataclass
class _Window:
    """The bytes a transfer received since ``start``, less the time it spent waiting on
    archiver itself (the bandwidth cap, the disk): what the server's speed is judged on."""

    start: float
    received: int = 0
    waited: float = 0.0

    def elapsed(self, now: float) -> float:
        return now - self.start - self.waited


@dataclass
class _InFlight:
    """A transfer under way, for the room check of the others: how many more bytes it needs.

    Counted from what its sink has written, not from what the network brought: bytes in the
    buffer still need their room on the disk.
    """

    total: int
    offset: int
    sink: _Sink | None = None

    @property
    def remaining(self) -> int:
        written = self.sink.size if self.sink is not None else self.offset
        return max(self.total - written, 0)


class _Sink:
    """Appends to a partial file and hashes it, in a worker thread, off the event loop."""

    def __init__(self, path: Path, offset: int) -> None:
        self._hash = hashlib.sha256()
        self.size = 0
        self.closed = False
        self._file: IO[bytes] = path.open("r+b" if offset else "wb")
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

    def write(self, data: bytes | bytearray) -> None:
        """Hash and append a block, and hand it to the OS: a killed process keeps it."""
        self._hash.update(data)
        self._file.write(data)
        self._file.flush()
        self.size += len(data)

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


class Fetcher:
    """Runs jobs against one HTTP client, one archive and one rate limiter."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        archive: Archive,
        settings: DownloadSettings,
        progress: Progress,
    ) -> None:
        self.client = client
        self.archive = archive
        self.settings = settings
        self.progress = progress
        self.limiter = RateLimiter(settings.rate_limit) if settings.rate_limit else None
        self.jobs = asyncio.Semaphore(settings.jobs)
        self.hosts: dict[str, asyncio.Semaphore] = {}
        self.unknown_hosts: dict[str, str] = {}  # host → reason, for the rest of the run
        # Transfers under way whose size is known: the room they still need is not free.
        self.in_flight: dict[tuple[str, str], _InFlight] = {}

    def _host_slot(self, url: str) -> asyncio.Semaphore:
        host = urlsplit(self.settings.request_url(url)).netloc.lower()
        return self.hosts.setdefault(host, asyncio.Semaphore(self.settings.per_host))

    async def run(self, job: Job) -> Outcome:
        # The host's slot first: a job waiting for a busy host holds no global slot that a
        # job for another host could use.
        async with self._host_slot(job.url), self.jobs:
            start = time.monotonic()
            try:
                outcome = await self._with_retries(job)
            except Exception as exc:  # a bug, or an answer no check foresaw: this file only
                log.debug("%s", job.label, exc_info=True)
                reason = f"internal error: {type(exc).__name__}: {exc} (a bug: please report it)"
                outcome = Outcome(job, Status.FAILED, reason=reason)
            finally:
                self.in_flight.pop(job.key, None)
            outcome = dataclasses.replace(outcome, seconds=time.monotonic() - start)
        self.progress.finished(job.key, failed=outcome.status is Status.FAILED)
        return outcome

    def _status(self, job: Job, before: FileRecord | None, after: FileRecord) -> Status:
        if before is not None and after.version != before.version:
            return Status.CHANGED
        # A refresh that brought the same bytes again changed nothing held.
        return Status.HELD if job.revalidate is not None else Status.FETCHED

    async def _with_retries(self, job: Job) -> Outcome:
        try:
            before = await asyncio.to_thread(self.archive.current, job.entry.id, job.role)
        except ArchiverError as exc:  # a catalog that cannot say (a damaged page): this file
            return Outcome(job, Status.FAILED, reason=exc.message)
        fetched = 0
        budget = RetryBudget(
            retries=self.settings.retries,
            resets_after=self.settings.progress_resets_after,
            backoff_base=self.settings.backoff_base,
            backoff_max=self.settings.backoff_max,
        )
        while True:
            counter = [0]
            try:
                record = await self._attempt(job, counter)
            except _Retry as exc:
                fetched += counter[0]
                held = await asyncio.to_thread(self._held_after, job, restart=exc.restart)
                if not budget.failed(held=held, stalled=exc.stalled):
                    reason = f"{exc.reason} (gave up after {budget.attempt} attempts)"
                    return Outcome(job, Status.FAILED, reason=reason, bytes_fetched=fetched)
                delay = budget.delay(exc.retry_after, random.uniform(0.5, 1.0))  # noqa: S311 - jitter
                log.info("%s: %s; retry %d in %.1f s", job.label, exc.reason, budget.attempt, delay)
                self.progress.retrying(job.key, job.label, budget.attempt, delay, exc.reason)
                await asyncio.sleep(delay)
            except _NotModified:
                assert job.revalidate is not None  # noqa: S101 - only conditional requests get 304
                try:
                    await asyncio.to_thread(self.archive.mark_checked, job.revalidate)
                except ArchiverError as exc:
                    return Outcome(job, Status.FAILED, reason=exc.message)
                return Outcome(job, Status.HELD, record=job.revalidate)
            except DownloadError as exc:
                fetched += counter[0]
                if isinstance(exc, _Dropped):
                    await asyncio.to_thread(self._discard_partial, job)
                return Outcome(job, Status.FAILED, reason=exc.reason, bytes_fetched=fetched)
            except ArchiverError as exc:
                fetched += counter[0]
                return Outcome(job, Status.FAILED, reason=exc.message, bytes_fetched=fetched)
            else:
                total = fetched + counter[0]
                status = self._status(job, before, record)
                return Outcome(job, status, record=record, bytes_fetched=total)

    def _resume_point(self, job: Job) -> tuple[int, PartialState | None, dict[str, str]]:
        """How many bytes of a partial file can be resumed, its state, and the request headers."""
        part, side = self.archive.partial_paths(job.entry.id, job.role)
        try:
            state = PartialState.from_json(side.read_bytes())
            have = part.stat().st_size
        except OSError:
            return 0, None, {}
        validator = (strong_etag(state.etag) or state.last_modified) if state else None
        if state is None or state.url != job.url or validator is None or have == 0:
            return 0, None, {}
        return have, state, {"Range": f"bytes={have}-", "If-Range": validator}

    def _password_for(self, job: Job, url: str) -> str | None:
        """``--video-password``, for a video its instance said is protected, to that instance
        only (a redirect elsewhere drops it: :func:`.http.make_client`)."""
        ref = job.entry.peertube
        if not self.settings.video_password or ref is None or not job.protected:
            return None
        instance = urlsplit(self.settings.request_url(ref.instance)).netloc.lower()
        return self.settings.video_password if urlsplit(url).netloc.lower() == instance else None

    def _held_after(self, job: Job, *, restart: bool) -> int:
        """The bytes a failed attempt left in the partial file, once it is thrown away if it
        cannot be resumed. Blocking (an unlink, a stat)."""
        if restart:
            self._discard_partial(job)
        part, _ = self.archive.partial_paths(job.entry.id, job.role)
        try:
            return part.stat().st_size
        except FileNotFoundError:
            return 0

    def _start_partial(self, job: Job, side: Path, state: PartialState) -> None:
        """A partial from zero. Its sidecar is written before the first byte, so that whatever
        the partial holds is always described by the validators it came with."""
        self._discard_partial(job)
        atomic_write_bytes(side, state.to_json())  # makes the folder too

    def _discard_partial(self, job: Job) -> None:
        """Blocking: unlinking a large file frees its blocks, tens of ms on a slow disk. One
        that cannot be removed (a read-only disk) is left: a new partial truncates it."""
        for path in self.archive.partial_paths(job.entry.id, job.role):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.debug("%s: cannot remove %s: %s", job.label, path, describe_os_error(exc))

    async def _claim_room(self, job: Job, total: int, offset: int) -> None:
        """Fail ``job`` before its bytes come when the archive's disk cannot hold the
        ``total - offset`` it still needs, what the other transfers under way still need, and
        a margin; else count its need against the room the next transfer sees.

        The check and the claim happen with no ``await`` between them: two transfers that
        each fit but not together never both pass. A disk that cannot say how much room it
        has is taken at its word when it refuses a write.
        """
        try:
            free = (await asyncio.to_thread(shutil.disk_usage, self.archive.partials)).free
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

    async def _attempt(self, job: Job, counter: list[int]) -> FileRecord:
        url = self.settings.request_url(job.url)
        host = urlsplit(url).hostname or ""
        if host in self.unknown_hosts:
            raise DownloadError(job.url, self.unknown_hosts[host])
        # The sidecar's bytes and the partial's size: the disk's, so from a worker thread.
        have, state, headers = await asyncio.to_thread(self._resume_point, job)
        if job.known_size is not None and job.revalidate is None:
            # No room for it: not a byte asked for. (A refresh asks all the same: most are
            # answered "not modified", and a new version announces its length.)
            await self._claim_room(job, job.known_size, have)
        if not headers and job.revalidate is not None:
            # A refresh: ask for the file only if it changed since the version held.
            if job.revalidate.etag:
                headers["If-None-Match"] = job.revalidate.etag
            if job.revalidate.last_modified:
                headers["If-Modified-Since"] = job.revalidate.last_modified
        part, side = self.archive.partial_paths(job.entry.id, job.role)
        sink: _Sink | None = None
        password = self._password_for(job, url)
        if password:
            headers[PASSWORD_HEADER] = password
        origin = {PASSWORD_ORIGIN: _origin(url)} if password else None
        try:
            async with self.client.stream(
                "GET", url, headers=headers, extensions=origin
            ) as response:
                offset, expected, state = self._check_response(job, response, have, state)
                if offset is not None:
                    if offset == 0:
                        # Off the event loop: its fsyncs would hold up every other download.
                        await asyncio.to_thread(self._start_partial, job, side, state)
                    if expected is not None:  # the room it needs, now that the server said
                        await self._claim_room(job, expected, offset)
                    self.progress.started(job.key, job.label, expected, offset)
                    sink = await asyncio.to_thread(_Sink, part, offset)
                    if job.key in self.in_flight:
                        self.in_flight[job.key].sink = sink
                    await self._receive(job, response, sink, counter)
                else:  # 416: the partial already holds the whole file
                    sink = await asyncio.to_thread(_Sink, part, have)
                await asyncio.to_thread(sink.close, durable=True)
                return await self._finish(job, response, state, expected, sink)
        except httpx.TooManyRedirects as exc:
            reason = f"too many redirects (more than {self.settings.max_redirects})"
            raise DownloadError(job.url, reason) from exc
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise DownloadError(job.url, f"cannot follow: {exc}") from exc
        except httpx.ConnectError as exc:
            if unknown_host(exc):
                reason = f"cannot reach {host}: no such host (DNS)"
                self.unknown_hosts[host] = reason
                raise DownloadError(job.url, reason) from exc
            self._fail_at_once(job, exc)
            raise _Retry(describe(exc, self.settings.timeout)) from exc
        except httpx.HTTPError as exc:
            self._fail_at_once(job, exc)
            raise _Retry(describe(exc, self.settings.timeout)) from exc
        except OSError as exc:
            where = exc.filename or part
            reason = f"cannot write {where}: {describe_os_error(exc)}"
            if exc.errno in _DISK_FULL:  # its bytes go, so the catalog can still write
                raise _Dropped(job.url, reason) from exc
            raise DownloadError(job.url, reason) from exc
        finally:
            self.in_flight.pop(job.key, None)
            if sink is not None and not sink.closed:
                with contextlib.suppress(OSError):
                    await asyncio.to_thread(sink.close, durable=False)

    @staticmethod
    def _fail_at_once(job: Job, exc: httpx.HTTPError) -> None:
        """A failure no retry mends (a certificate refused, https redirected to http): the
        file fails now, with the one line that says what to fix."""
        reason = not_worth_retrying(exc)
        if reason is not None:
            raise DownloadError(job.url, reason) from exc

    def _check_response(
        self, job: Job, response: httpx.Response, have: int, state: PartialState | None
    ) -> tuple[int | None, int | None, PartialState]:
        """Decide from the status and headers where the bytes go: ``(offset, total, state)``."""
        status = response.status_code
        etag = response.headers.get("ETag")
        modified = response.headers.get("Last-Modified")
        if status == 304 and job.revalidate is not None:
            raise _NotModified
        if status == 416 and state is not None:
            match = UNSATISFIED_RANGE.match(response.headers.get("Content-Range", ""))
            if match and int(match.group(1)) == have and state.length in (None, have):
                return None, have, state
            raise _Retry(
                "the partial file does not match the server's; starting again",
                retry_after=0,
                restart=True,
            )
        if status in RETRIED:
            after = retry_after(response.headers.get("Retry-After"), self.settings.retry_after_max)
            raise _Retry(f"HTTP {status} {response.reason_phrase}".rstrip(), retry_after=after)
        if status == 206 and state is not None:
            match = CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            total = int(match.group(3)) if match and match.group(3) != "*" else None
            same_version = (
                match is not None
                and int(match.group(1)) == have
                and (state.length is None or total == state.length)
                and (etag is None or state.etag is None or etag == state.etag)
            )
            if not same_version:
                raise _Retry(
                    "the resumed range does not match the partial file; starting again",
                    retry_after=0,
                    restart=True,
                )
            self._within_cap(job, total)
            return have, total, state
        if status == 200:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isascii() and length.isdigit() else None
            if job.size is not None and total is not None and total != job.size:
                raise ChecksumMismatch(job.url, "size", str(job.size), str(total))
            self._within_cap(job, total)
            return (
                0,
                total,
                PartialState(url=job.url, etag=etag, last_modified=modified, length=total),
            )
        if status in NOT_RETRIED:
            raise DownloadError(job.url, f"HTTP {status} {response.reason_phrase}".rstrip())
        raise DownloadError(job.url, f"unexpected HTTP {status} {response.reason_phrase}".rstrip())

    @staticmethod
    def _within_cap(job: Job, size: int | None) -> None:
        """A length over the file's cap fails it before its body is read."""
        if size is not None and size > job.cap:
            reason = f"too large: {format_bytes(size)} announced, over {_cap_words(job)}"
            raise _Dropped(job.url, reason)

    async def _receive(
        self, job: Job, response: httpx.Response, sink: _Sink, counter: list[int]
    ) -> None:
        """Stream the body into ``sink``, within the bandwidth cap, the file's size cap and
        the minimum rate."""
        buffer = bytearray()
        pending: asyncio.Future[None] | None = None
        flushed_at = time.monotonic()
        window = _Window(flushed_at)
        room = job.cap - sink.size  # the bytes the partial may still take
        try:
            async for chunk in response.aiter_raw():
                buffer += chunk
                counter[0] += len(chunk)
                window.received += len(chunk)
                if counter[0] > room:
                    raise _Dropped(job.url, f"too large: over {_cap_words(job)}")
                self.progress.advance(job.key, len(chunk))
                if self.limiter:
                    waiting = time.monotonic()
                    await self.limiter.consume(len(chunk))
                    window.waited += time.monotonic() - waiting
                now = time.monotonic()
                if len(buffer) >= WRITE_BLOCK or now - flushed_at >= FLUSH_INTERVAL:
                    if pending:
                        await pending
                    block, buffer = buffer, bytearray()
                    pending = asyncio.ensure_future(asyncio.to_thread(sink.write, block))
                    flushed_at = now
                    window.waited += time.monotonic() - now  # the disk's time, not the server's
                    now = time.monotonic()
                window = self._judge(window, now)
        finally:
            # Bytes already received are good bytes of this version: keep them for the resume.
            if pending:
                await pending
            if buffer:
                await asyncio.to_thread(sink.write, buffer)

    def _judge(self, window: _Window, now: float) -> _Window:
        """At the end of each window of ``timeout`` seconds, a transfer that averaged under
        ``min_rate`` is a stall (curl's ``--speed-limit``/``--speed-time``): a server that
        sends a byte every few seconds never trips the read timeout, and would hold the
        archive's lock for ever. The next window starts where this one ended."""
        floor, span = self.settings.min_rate, self.settings.timeout
        if floor <= 0 or window.elapsed(now) < span:
            return window
        if window.received < floor * window.elapsed(now):
            raise _Retry(f"stalled: under {format_bytes(floor)}/s for {span:g} s", stalled=True)
        return _Window(now)

    async def _check_media(self, job: Job, part: Path) -> tuple[media.MediaInfo, str]:
        """A video must be a whole MP4 that FFmpeg reads (a video stream, a duration), a sound
        file stored apart a whole MP4 with a sound stream, and both must match the checksums
        their instance publishes for each byte range. Returns what FFmpeg read, and what the
        segment checksums said (``verified``, or why nothing was verified)."""
        try:
            if job.role == "audio":
                info = await asyncio.to_thread(media.confirm_audio, part)
            else:  # with sound when the instance says it has some (hasAudio, PeerTube 6.2)
                info = await asyncio.to_thread(
                    functools.partial(media.confirm_playable, require_audio=job.has_sound), part
                )
        except media.MediaError as exc:
            await self._reject(job, part)
            raise DownloadError(job.url, f"not a playable MP4: {exc.reason}") from exc
        segments = "not published"
        if job.segments_url:
            found = await check_segments(self.client, job.segments_url, part, job.name_upstream)
            if isinstance(found, tuple):
                await self._reject(job, part)
                raise ChecksumMismatch(job.url, "segment sha256", found[0], found[1])
            if found is None:
                segments = "verified"
            else:
                segments = f"not verified: {found}"
                log.warning("%s: segment checksums %s", job.label, segments)
        return info, segments

    async def _check_content(self, job: Job, part: Path, content_type: str | None) -> str:
        """The extension a companion file is kept with, once its bytes are what its role says
        (a PDF, WebVTT captions, an image); otherwise it is quarantined and fails."""
        claim = job.claim
        if claim is None:
            return ".mp4"
        try:
            return await asyncio.to_thread(sniff.check, part, claim, content_type)
        except sniff.Mismatch as exc:
            await self._reject(job, part)
            raise DownloadError(job.url, exc.reason) from exc

    async def _reject(self, job: Job, part: Path) -> None:
        """Bad bytes go to quarantine, for a person to look at; the partial starts over."""
        await asyncio.to_thread(self._quarantine, job, part)

    def _quarantine(self, job: Job, part: Path) -> None:
        self.archive.quarantine(job.entry.id, job.name, part)
        self._discard_partial(job)

    async def _finish(
        self,
        job: Job,
        response: httpx.Response,
        state: PartialState,
        expected: int | None,
        sink: _Sink,
    ) -> FileRecord:
        """Check a complete partial file against every expectation, in order, then commit it.

        A length that differs from the announced one is retried from zero; bytes that are
        whole but wrong (a pin, the MP4's structure, the source's segment checksums, a
        companion file that is not what its role says) are quarantined.
        """
        part, side = self.archive.partial_paths(job.entry.id, job.role)
        size, digest = sink.size, sink.hexdigest()
        if expected is not None and size != expected:
            raise _Retry(f"received {size} bytes but the server announced {expected}", restart=True)
        if job.size is not None and size != job.size:
            await self._reject(job, part)
            raise ChecksumMismatch(job.url, "size", str(job.size), str(size))
        if job.sha256 is not None and digest != job.sha256:
            await self._reject(job, part)
            raise ChecksumMismatch(job.url, "sha256", job.sha256, digest)
        content_type = response.headers.get("Content-Type", "")  # "": the server said none
        extension = await self._check_content(job, part, content_type)
        info, segments = None, None
        if job.role in ("video", "audio") and self.settings.check_media:
            info, segments = await self._check_media(job, part)
        fetched = FetchedFile(
            url=job.url,
            final_url=str(response.url),
            sha256=digest,
            size=size,
            etag=state.etag,
            last_modified=state.last_modified,
            content_type=content_type,
            resolution=job.resolution,
            media=(info.duration, info.width, info.height) if info else None,
            segments=segments,
        )
        # Renames, fsyncs and a catalog transaction: off the event loop.
        name = job.named(extension)
        return await asyncio.to_thread(self._commit, job, name, part, side, fetched)

    def _commit(
        self, job: Job, name: str, part: Path, side: Path, fetched: FetchedFile
    ) -> FileRecord:
        record = self.archive.commit(job.entry.id, job.role, name, part, fetched)
        with contextlib.suppress(FileNotFoundError):
            side.unlink()
        return record


def _cap_words(job: Job) -> str:
    """The cap a file went over, and why it has that one: ``10.0 MiB, the most for WebVTT
    captions``."""
    cap = format_bytes(job.cap)
    if job.known_size is not None:
        return f"{cap}, its known size ({format_bytes(job.known_size)}) and a margin"
    what = job.claim.label if job.claim is not None else "a video of unknown size"
    return f"{cap}, the most for {what}"
