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
import email.utils
import enum
import hashlib
import logging
import os
import random
import re
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol
from urllib.parse import unquote, urlsplit

import httpcore
import httpx

from . import __version__, media
from .archive import Archive, FetchedFile, FileRecord, PartialState
from .entry import Entry
from .errors import ArchiverError, ChecksumMismatch, DownloadError
from .files import atomic_write_bytes
from .peertube import check_segments
from .throttle import RateLimiter

__all__ = [
    "DEFAULT_SETTINGS",
    "DownloadSettings",
    "Fetcher",
    "Job",
    "NullProgress",
    "Outcome",
    "Progress",
    "Status",
    "make_client",
]

log = logging.getLogger(__name__)

USER_AGENT = f"archiver/{__version__} (offline video archiver)"
# Large blocks handed to the writer thread: hashing and writing overlap the network, and the
# per-block thread hand-off costs nothing next to 1 MiB of sha256.
WRITE_BLOCK = 1024 * 1024
# On a slow line, hand bytes to disk at least this often, so a killed run loses little.
FLUSH_INTERVAL = 1.0
NOT_RETRIED = frozenset({400, 401, 403, 404, 405, 410, 451})
RETRIED = frozenset({408, 425, 429, 500, 502, 503, 504})
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.I)
_UNSATISFIED_RANGE = re.compile(r"^\s*bytes\s+\*/(\d+)\s*$", re.I)


@dataclass(frozen=True, kw_only=True)
class DownloadSettings:
    """How to download: concurrency, retries, timeouts, bandwidth.

    >>> DownloadSettings(jobs=8, rate_limit=512 * 1024).retries
    10
    """

    jobs: int = 4
    per_host: int = 4
    rate_limit: int | None = None
    retries: int = 10
    timeout: float = 60.0
    max_redirects: int = 10
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    retry_after_max: float = 300.0
    # A failed attempt that grew the partial file past its best by this much made progress:
    # the retry budget starts again, so a line that drops every few minutes still finishes.
    progress_resets_after: int = 1024 * 1024
    # Check that each video is a whole MP4 (its boxes tile the file) before keeping it.
    check_media: bool = True
    # The tallest video wanted (--max-height): the largest resolution the instance offers
    # at most this tall, instead of the fiche's link.
    max_height: int | None = None
    # (from, to) URL prefixes: fetch from a regional mirror or a LAN cache; provenance keeps
    # the original URL.
    mirrors: tuple[tuple[str, str], ...] = ()
    user_agent: str = USER_AGENT

    def request_url(self, url: str) -> str:
        """The URL to ask for ``url``: rewritten by the first mirror whose prefix matches."""
        for prefix, replacement in self.mirrors:
            if url.startswith(prefix):
                return replacement + url[len(prefix) :]
        return url


DEFAULT_SETTINGS = DownloadSettings()


class Status(enum.Enum):
    """What a run did with one file."""

    FETCHED = "fetched"  # its first version
    CHANGED = "changed"  # a new version, the old one kept
    HELD = "held"  # already held (and, if it was due, upstream confirmed unchanged)
    FAILED = "failed"


@dataclass(frozen=True)
class Job:
    """One file to fetch: an entry's video or one of its companion files."""

    entry: Entry
    role: str
    url: str
    name: str
    sha256: str | None = None
    size: int | None = None
    revalidate: FileRecord | None = None  # held, but due for a check that upstream is the same
    resolution: int | None = None  # the height chosen among those the PeerTube instance offers
    optional: bool = False  # a preview or captions: missing them fails nothing
    segments_url: str | None = None  # the instance's sha256 of each byte range of the file

    @property
    def name_upstream(self) -> str:
        """The file's name as its source knows it: the key of its segments' checksums."""
        return unquote(urlsplit(self.url).path.rpartition("/")[2])

    @property
    def label(self) -> str:
        return f"{self.entry.title} ({self.entry.id}, {self.role})"


@dataclass(frozen=True)
class Outcome:
    """What happened to one job."""

    job: Job
    status: Status
    record: FileRecord | None = None
    reason: str | None = None
    bytes_fetched: int = 0
    seconds: float = 0.0


class Progress(Protocol):
    """What the downloader tells whoever shows progress (the CLI's tqdm bars)."""

    def begin(self, jobs: Sequence[Job]) -> None: ...
    def started(self, job: Job, total: int | None, offset: int) -> None: ...
    def advance(self, job: Job, count: int) -> None: ...
    def retrying(self, job: Job, attempt: int, delay: float, reason: str) -> None: ...
    def finished(self, outcome: Outcome) -> None: ...
    def end(self) -> None: ...


class NullProgress:
    """Shows nothing: the default, for cron and for library use."""

    def begin(self, jobs: Sequence[Job]) -> None:
        pass

    def started(self, job: Job, total: int | None, offset: int) -> None:
        pass

    def advance(self, job: Job, count: int) -> None:
        pass

    def retrying(self, job: Job, attempt: int, delay: float, reason: str) -> None:
        pass

    def finished(self, outcome: Outcome) -> None:
        pass

    def end(self) -> None:
        pass


# -- one attempt at one file -------------------------------------------------------------------


class _NotModified(Exception):
    """The server confirmed that a held file did not change (304)."""


class _Retry(Exception):
    """This attempt failed in a way another attempt may fix."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


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


def _strong_etag(etag: str | None) -> str | None:
    """An ETag usable in If-Range: weak ones (``W/"…"``) are not allowed there (RFC 9110)."""
    return etag if etag and not etag.startswith("W/") else None


def _retry_after(value: str | None, cap: float) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), cap)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(when.timestamp() - time.time(), 0.0), cap)


def _unknown_host(exc: BaseException) -> bool:
    """Whether a connection failed because DNS answered that the host does not exist.

    That is an answer, not a time-out (``EAI_AGAIN``, which is retried): retrying it for
    minutes would only delay the report, so it fails the file at once.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, socket.gaierror) and seen.errno == socket.EAI_NONAME:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _describe(exc: httpx.HTTPError, timeout: float) -> str:
    if isinstance(exc, httpx.ConnectTimeout):
        return f"cannot connect: no answer within {timeout:g} s"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot reach the host: {exc}"
    if isinstance(exc, httpx.TimeoutException):
        return f"stalled: no data for {timeout:g} s"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"connection broken: {exc}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


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

    def _host_slot(self, url: str) -> asyncio.Semaphore:
        host = urlsplit(self.settings.request_url(url)).netloc.lower()
        return self.hosts.setdefault(host, asyncio.Semaphore(self.settings.per_host))

    async def run(self, job: Job) -> Outcome:
        async with self.jobs, self._host_slot(job.url):
            start = time.monotonic()
            outcome = await self._with_retries(job)
            outcome = dataclasses.replace(outcome, seconds=time.monotonic() - start)
        self.progress.finished(outcome)
        return outcome

    def _status(self, job: Job, before: FileRecord | None, after: FileRecord) -> Status:
        if before is not None and after.version != before.version:
            return Status.CHANGED
        # A refresh that brought the same bytes again changed nothing held.
        return Status.HELD if job.revalidate is not None else Status.FETCHED

    async def _with_retries(self, job: Job) -> Outcome:
        before = self.archive.current(job.entry.id, job.role)
        fetched = 0
        attempt = 0
        best = 0  # the largest the partial file has been after a failed attempt
        part, _ = self.archive.partial_paths(job.entry.id, job.role)
        while True:
            counter = [0]
            try:
                record = await self._attempt(job, counter)
            except _Retry as exc:
                fetched += counter[0]
                held = part.stat().st_size if part.exists() else 0
                if held >= best + self.settings.progress_resets_after:
                    attempt = 0
                best = max(best, held)
                attempt += 1
                if attempt > self.settings.retries:
                    reason = f"{exc.reason} (gave up after {attempt} attempts)"
                    return Outcome(job, Status.FAILED, reason=reason, bytes_fetched=fetched)
                delay = exc.retry_after
                if delay is None:
                    ceiling = min(
                        self.settings.backoff_max, self.settings.backoff_base * 2 ** (attempt - 1)
                    )
                    delay = ceiling * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not crypto
                log.info("%s: %s; retry %d in %.1f s", job.label, exc.reason, attempt, delay)
                self.progress.retrying(job, attempt, delay, exc.reason)
                await asyncio.sleep(delay)
            except _NotModified:
                assert job.revalidate is not None  # noqa: S101 - only conditional requests get 304
                self.archive.mark_checked(job.revalidate)
                return Outcome(job, Status.HELD, record=job.revalidate)
            except DownloadError as exc:
                fetched += counter[0]
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
        validator = (_strong_etag(state.etag) or state.last_modified) if state else None
        if state is None or state.url != job.url or validator is None or have == 0:
            return 0, None, {}
        return have, state, {"Range": f"bytes={have}-", "If-Range": validator}

    def _start_partial(self, job: Job, side: Path, state: PartialState) -> None:
        """A partial from zero. Its sidecar is written before the first byte, so that whatever
        the partial holds is always described by the validators it came with."""
        self._discard_partial(job)
        atomic_write_bytes(side, state.to_json())  # makes the folder too

    def _discard_partial(self, job: Job) -> None:
        for path in self.archive.partial_paths(job.entry.id, job.role):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    async def _attempt(self, job: Job, counter: list[int]) -> FileRecord:
        url = self.settings.request_url(job.url)
        host = urlsplit(url).hostname or ""
        if host in self.unknown_hosts:
            raise DownloadError(job.url, self.unknown_hosts[host])
        have, state, headers = self._resume_point(job)
        if not headers and job.revalidate is not None:
            # A refresh: ask for the file only if it changed since the version held.
            if job.revalidate.etag:
                headers["If-None-Match"] = job.revalidate.etag
            if job.revalidate.last_modified:
                headers["If-Modified-Since"] = job.revalidate.last_modified
        part, side = self.archive.partial_paths(job.entry.id, job.role)
        sink: _Sink | None = None
        try:
            async with self.client.stream("GET", url, headers=headers) as response:
                offset, expected, state = self._check_response(job, response, have, state)
                if offset is not None:
                    if offset == 0:
                        # Off the event loop: its fsyncs would hold up every other download.
                        await asyncio.to_thread(self._start_partial, job, side, state)
                    self.progress.started(job, expected, offset)
                    sink = await asyncio.to_thread(_Sink, part, offset)
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
            if _unknown_host(exc):
                reason = f"cannot reach {host}: no such host (DNS)"
                self.unknown_hosts[host] = reason
                raise DownloadError(job.url, reason) from exc
            raise _Retry(_describe(exc, self.settings.timeout)) from exc
        except httpx.HTTPError as exc:
            raise _Retry(_describe(exc, self.settings.timeout)) from exc
        except OSError as exc:
            reason = f"cannot write to the archive: {exc.strerror or exc}"
            raise DownloadError(job.url, reason) from exc
        finally:
            if sink is not None and not sink.closed:
                with contextlib.suppress(OSError):
                    await asyncio.to_thread(sink.close, durable=False)

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
            match = _UNSATISFIED_RANGE.match(response.headers.get("Content-Range", ""))
            if match and int(match.group(1)) == have and state.length in (None, have):
                return None, have, state
            self._discard_partial(job)
            raise _Retry(
                "the partial file does not match the server's; starting again", retry_after=0
            )
        if status in RETRIED:
            after = _retry_after(response.headers.get("Retry-After"), self.settings.retry_after_max)
            raise _Retry(f"HTTP {status} {response.reason_phrase}".rstrip(), retry_after=after)
        if status == 206 and state is not None:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            total = int(match.group(3)) if match and match.group(3) != "*" else None
            same_version = (
                match is not None
                and int(match.group(1)) == have
                and (state.length is None or total == state.length)
                and (etag is None or state.etag is None or etag == state.etag)
            )
            if not same_version:
                self._discard_partial(job)
                raise _Retry(
                    "the resumed range does not match the partial file; starting again",
                    retry_after=0,
                )
            return have, total, state
        if status == 200:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if job.size is not None and total is not None and total != job.size:
                raise ChecksumMismatch(job.url, "size", str(job.size), str(total))
            return (
                0,
                total,
                PartialState(url=job.url, etag=etag, last_modified=modified, length=total),
            )
        if status in NOT_RETRIED:
            raise DownloadError(job.url, f"HTTP {status} {response.reason_phrase}".rstrip())
        raise DownloadError(job.url, f"unexpected HTTP {status} {response.reason_phrase}".rstrip())

    async def _receive(
        self, job: Job, response: httpx.Response, sink: _Sink, counter: list[int]
    ) -> None:
        buffer = bytearray()
        pending: asyncio.Future[None] | None = None
        flushed_at = time.monotonic()
        try:
            async for chunk in response.aiter_raw():
                buffer += chunk
                counter[0] += len(chunk)
                self.progress.advance(job, len(chunk))
                if self.limiter:
                    await self.limiter.consume(len(chunk))
                now = time.monotonic()
                if len(buffer) >= WRITE_BLOCK or now - flushed_at >= FLUSH_INTERVAL:
                    if pending:
                        await pending
                    block, buffer = buffer, bytearray()
                    pending = asyncio.ensure_future(asyncio.to_thread(sink.write, block))
                    flushed_at = now
        finally:
            # Bytes already received are good bytes of this version: keep them for the resume.
            if pending:
                await pending
            if buffer:
                await asyncio.to_thread(sink.write, buffer)

    async def _check_video(self, job: Job, part: Path) -> media.MediaInfo:
        """A video must be a whole MP4 that FFmpeg reads (a video stream, a duration) and whose
        bytes match what its source publishes."""
        try:
            info = await asyncio.to_thread(media.confirm_playable, part)
        except media.MediaError as exc:
            self._reject(job, part)
            raise DownloadError(job.url, f"not a playable MP4: {exc.reason}") from exc
        if job.segments_url:
            mismatch = await check_segments(self.client, job.segments_url, part, job.name_upstream)
            if mismatch:
                self._reject(job, part)
                raise ChecksumMismatch(job.url, "segment sha256", mismatch[0], mismatch[1])
        return info

    def _reject(self, job: Job, part: Path) -> None:
        """Bad bytes go to quarantine, for a person to look at; the partial starts over."""
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
        whole but wrong (a pin, the MP4's structure, the source's segment checksums) are
        quarantined.
        """
        part, side = self.archive.partial_paths(job.entry.id, job.role)
        size, digest = sink.size, sink.hexdigest()
        if expected is not None and size != expected:
            self._discard_partial(job)
            raise _Retry(f"received {size} bytes but the server announced {expected}")
        if job.size is not None and size != job.size:
            self._reject(job, part)
            raise ChecksumMismatch(job.url, "size", str(job.size), str(size))
        if job.sha256 is not None and digest != job.sha256:
            self._reject(job, part)
            raise ChecksumMismatch(job.url, "sha256", job.sha256, digest)
        info = None
        if job.role == "video" and self.settings.check_media:
            info = await self._check_video(job, part)
        fetched = FetchedFile(
            url=job.url,
            final_url=str(response.url),
            sha256=digest,
            size=size,
            etag=state.etag,
            last_modified=state.last_modified,
            content_type=response.headers.get("Content-Type"),
            resolution=job.resolution,
            media=(info.duration, info.width, info.height) if info else None,
        )
        record = self.archive.commit(job.entry.id, job.role, job.name, part, fetched)
        with contextlib.suppress(FileNotFoundError):
            side.unlink()
        return record


# httpcore reads a socket 64 KiB at a time, and every read pays for a cancel scope and an h11
# event; for video files that per-read cost dominates. 256 KiB reads measured 1.6x faster on a
# 512 MiB file (bench/bench_download.py). httpcore offers this class constant as its only knob.
SOCKET_READ_SIZE = 256 * 1024


def make_client(settings: DownloadSettings, **overrides: object) -> httpx.AsyncClient:
    """The HTTP client: keep-alive, redirects, proxies from the environment, no compression."""
    if httpcore.AsyncHTTP11Connection.READ_NUM_BYTES < SOCKET_READ_SIZE:
        httpcore.AsyncHTTP11Connection.READ_NUM_BYTES = SOCKET_READ_SIZE
    limits = httpx.Limits(
        max_connections=max(settings.jobs, 1) + 2,
        max_keepalive_connections=max(settings.jobs, 1),
    )
    options: dict[str, object] = {
        "follow_redirects": True,
        "max_redirects": settings.max_redirects,
        "timeout": httpx.Timeout(settings.timeout),
        "limits": limits,
        "trust_env": True,  # HTTP_PROXY, HTTPS_PROXY, NO_PROXY: school networks need them
        # Byte ranges count bytes of the file as stored, so ask for it as stored.
        "headers": {"User-Agent": settings.user_agent, "Accept-Encoding": "identity"},
    }
    options.update(overrides)
    return httpx.AsyncClient(**options)  # type: ignore[arg-type]
