"""Fetch every file of a manifest into the archive: concurrent, resumable, verified, capped.

Planning (what to fetch, what is held) is plain synchronous code; :func:`download_all` is the
one ``async`` entry point and runs under ``asyncio.run()`` in :func:`download`.

Resume never splices two versions of a file. A partial file is resumed with ``Range`` *and*
``If-Range`` carrying the validator recorded when its first byte arrived: a server whose file
changed answers ``200`` with the whole new file, and archiver starts again from zero. A ``206``
whose ``Content-Range`` or ``ETag`` does not match the partial restarts too. ``wget -c`` and
``curl -C -`` send no ``If-Range`` and would append the new version to the old one's bytes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import email.utils
import enum
import hashlib
import logging
import os
import random
import re
import socket
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar
from urllib.parse import unquote, urlsplit

import httpcore
import httpx

from . import __version__
from .archive import Archive, FetchedFile, FileRecord, PartialState
from .entry import Entry
from .errors import ArchiverError, ChecksumMismatch, DownloadError
from .files import atomic_write_bytes
from .manifest import Manifest
from .names import safe_filename
from .throttle import RateLimiter

__all__ = [
    "DEFAULT_SETTINGS",
    "DownloadReport",
    "DownloadSettings",
    "Job",
    "NullProgress",
    "Outcome",
    "Progress",
    "Status",
    "download",
    "download_all",
    "plan",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

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
    user_agent: str = USER_AGENT


DEFAULT_SETTINGS = DownloadSettings()


class Status(enum.Enum):
    FETCHED = "fetched"
    HELD = "held"
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


@dataclass(frozen=True)
class DownloadReport:
    """The outcome of every job of a run, and how long it took."""

    outcomes: tuple[Outcome, ...]
    seconds: float

    def count(self, status: Status) -> int:
        return sum(1 for o in self.outcomes if o.status is status)

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status is Status.FAILED]

    @property
    def bytes_fetched(self) -> int:
        return sum(o.bytes_fetched for o in self.outcomes)


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


# -- planning ----------------------------------------------------------------------------------


def _file_name(url: str, *, role: str, default_suffix: str) -> str:
    last = unquote(urlsplit(url).path.rstrip("/").rpartition("/")[2])
    return safe_filename(last, default_stem=role.replace("_", "-"), default_suffix=default_suffix)


def jobs_for(entry: Entry) -> tuple[list[Job], list[str]]:
    """The files of one entry, and the reasons any cannot be fetched at all."""
    jobs: list[Job] = []
    problems: list[str] = []
    if entry.video.url:
        jobs.append(
            Job(
                entry=entry,
                role="video",
                url=entry.video.url,
                name=_file_name(entry.video.url, role="video", default_suffix=".mp4"),
                sha256=entry.video.sha256,
                size=entry.video.size,
            )
        )
    else:
        problems.append("no download URL in the manifest (only an embed URL)")
    for asset in entry.assets:
        name = _file_name(asset.url, role=asset.kind, default_suffix=".pdf")
        jobs.append(Job(entry=entry, role=asset.kind, url=asset.url, name=name))
    return jobs, problems


def plan(manifest: Manifest, archive: Archive) -> tuple[list[Job], list[Outcome]]:
    """Split the manifest's files into those to fetch and those already settled.

    A file is held when the catalog's current version came from the same URL, is on disk at
    its recorded size and matches any pinned checksum: a second run fetches nothing.
    """
    todo: list[Job] = []
    settled: list[Outcome] = []
    for entry in manifest.entries:
        archive.record_item(entry)
        jobs, problems = jobs_for(entry)
        for problem in problems:
            job = Job(entry=entry, role="video", url=entry.video.embed_url or "", name="")
            settled.append(Outcome(job, Status.FAILED, reason=problem))
        for job in jobs:
            record = archive.held(entry.id, job.role, job.url)
            pinned_ok = record is not None and (
                (job.sha256 is None or record.sha256 == job.sha256)
                and (job.size is None or record.size == job.size)
            )
            if record is not None and pinned_ok:
                settled.append(Outcome(job, Status.HELD, record=record))
            else:
                todo.append(job)
    return todo, settled


# -- one attempt at one file -------------------------------------------------------------------


class _Retry(Exception):
    """This attempt failed in a way another attempt may fix."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class _Sink:
    """Appends to a partial file and hashes it, in a worker thread, off the event loop."""

    def __init__(self, path: Path, offset: int) -> None:
        self.path = path
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
        self._hash.update(data)
        self._file.write(data)
        self.size += len(data)

    def flush(self) -> None:
        self._file.flush()

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


class _Downloader:
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
        host = urlsplit(url).netloc.lower()
        return self.hosts.setdefault(host, asyncio.Semaphore(self.settings.per_host))

    async def run(self, job: Job) -> Outcome:
        async with self.jobs, self._host_slot(job.url):
            outcome = await self._with_retries(job)
        self.progress.finished(outcome)
        return outcome

    async def _with_retries(self, job: Job) -> Outcome:
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
            except DownloadError as exc:
                fetched += counter[0]
                return Outcome(job, Status.FAILED, reason=exc.reason, bytes_fetched=fetched)
            except ArchiverError as exc:
                fetched += counter[0]
                return Outcome(job, Status.FAILED, reason=exc.message, bytes_fetched=fetched)
            else:
                total = fetched + counter[0]
                return Outcome(job, Status.FETCHED, record=record, bytes_fetched=total)

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

    def _discard_partial(self, job: Job) -> None:
        for path in self.archive.partial_paths(job.entry.id, job.role):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    async def _attempt(self, job: Job, counter: list[int]) -> FileRecord:
        host = urlsplit(job.url).hostname or ""
        if host in self.unknown_hosts:
            raise DownloadError(job.url, self.unknown_hosts[host])
        have, state, headers = self._resume_point(job)
        part, side = self.archive.partial_paths(job.entry.id, job.role)
        sink: _Sink | None = None
        try:
            async with self.client.stream("GET", job.url, headers=headers) as response:
                offset, expected, state = self._check_response(job, response, have, state)
                if offset is not None:
                    if offset == 0:
                        self._discard_partial(job)
                        part.parent.mkdir(parents=True, exist_ok=True)
                        # The sidecar is written before the first byte, so that whatever the
                        # partial holds is always described by the validators it came with.
                        atomic_write_bytes(side, state.to_json())
                    self.progress.started(job, expected, offset)
                    sink = await asyncio.to_thread(_Sink, part, offset)
                    await self._receive(job, response, sink, counter)
                else:  # 416: the partial already holds the whole file
                    sink = await asyncio.to_thread(_Sink, part, have)
                await asyncio.to_thread(sink.close, durable=True)
                return self._finish(job, response, state, expected, sink)
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
                    pending = asyncio.ensure_future(asyncio.to_thread(self._write, sink, block))
                    flushed_at = now
        finally:
            # Bytes already received are good bytes of this version: keep them for the resume.
            if pending:
                await pending
            if buffer:
                await asyncio.to_thread(self._write, sink, buffer)

    @staticmethod
    def _write(sink: _Sink, block: bytes | bytearray) -> None:
        sink.write(block)
        sink.flush()

    def _finish(
        self,
        job: Job,
        response: httpx.Response,
        state: PartialState,
        expected: int | None,
        sink: _Sink,
    ) -> FileRecord:
        """Check a complete partial file against every expectation, then commit it."""
        part, side = self.archive.partial_paths(job.entry.id, job.role)
        size, digest = sink.size, sink.hexdigest()
        if expected is not None and size != expected:
            self._discard_partial(job)
            raise _Retry(f"received {size} bytes but the server announced {expected}")
        if job.size is not None and size != job.size:
            self.archive.quarantine(job.entry.id, job.name, part)
            self._discard_partial(job)
            raise ChecksumMismatch(job.url, "size", str(job.size), str(size))
        if job.sha256 is not None and digest != job.sha256:
            kept = self.archive.quarantine(job.entry.id, job.name, part)
            self._discard_partial(job)
            log.warning("%s: bytes failing the pinned sha256 kept in %s", job.label, kept)
            raise ChecksumMismatch(job.url, "sha256", job.sha256, digest)
        fetched = FetchedFile(
            url=job.url,
            final_url=str(response.url),
            sha256=digest,
            size=size,
            etag=state.etag,
            last_modified=state.last_modified,
            content_type=response.headers.get("Content-Type"),
        )
        record = self.archive.commit(job.entry.id, job.role, job.name, part, fetched)
        with contextlib.suppress(FileNotFoundError):
            side.unlink()
        return record


# -- running -----------------------------------------------------------------------------------


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


async def download_all(
    jobs: Sequence[Job],
    archive: Archive,
    *,
    settings: DownloadSettings = DEFAULT_SETTINGS,
    progress: Progress | None = None,
    client: httpx.AsyncClient | None = None,
) -> list[Outcome]:
    """Fetch ``jobs`` concurrently into ``archive``; one outcome per job, in order."""
    progress = progress or NullProgress()
    async with contextlib.AsyncExitStack() as stack:
        if client is None:
            client = await stack.enter_async_context(make_client(settings))
        downloader = _Downloader(client, archive, settings, progress)
        return list(await asyncio.gather(*(downloader.run(job) for job in jobs)))


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run``, also from a thread whose event loop is already running.

    Jupyter, and Playwright's sync API, keep a loop running in the calling thread, where
    ``asyncio.run`` refuses to start: there the download gets a thread and a loop of its own.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


@dataclass
class _Clock:
    start: float = field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        return time.monotonic() - self.start


def download(
    manifest: Manifest,
    archive_root: Path,
    *,
    settings: DownloadSettings = DEFAULT_SETTINGS,
    progress: Progress | None = None,
) -> DownloadReport:
    """Fetch every file of ``manifest`` into the archive at ``archive_root``, under its lock."""
    progress = progress or NullProgress()
    clock = _Clock()
    with Archive(archive_root) as archive, archive.locked():
        run_id = archive.start_run("download")
        todo, settled = plan(manifest, archive)
        progress.begin(todo)
        try:
            fetched = _run(download_all(todo, archive, settings=settings, progress=progress))
        finally:
            progress.end()
        outcomes = tuple(
            sorted(
                (*settled, *fetched),
                key=lambda o: (o.job.entry.source.path, o.job.entry.id, o.job.role),
            )
        )
        report = DownloadReport(outcomes=outcomes, seconds=clock.elapsed())
        for failure in report.failures:
            archive.record_failure(
                run_id,
                failure.job.entry.id,
                failure.job.role,
                failure.job.url,
                failure.reason or "",
            )
        archive.finish_run(
            run_id,
            "failed" if report.failures else "ok",
            {
                "fetched": report.count(Status.FETCHED),
                "held": report.count(Status.HELD),
                "failed": report.count(Status.FAILED),
                "bytes": report.bytes_fetched,
                "seconds": round(report.seconds, 3),
            },
        )
    return report
