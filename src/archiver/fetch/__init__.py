"""Fetch every file of a manifest into the archive: ask PeerTube, choose, plan, then run.

One run is one event loop (``asyncio.run``) and one HTTP client: the instance's API is asked
about every video, each video's rendition is chosen (:mod:`archiver.choose`), the files to
fetch are planned (:mod:`.plan`, pure), then fetched concurrently (:mod:`.fetcher`) in a task
group. Blocking work (hashing, fsync, the catalog's transactions) runs in worker threads, so
that no callback holds the loop for long.

A run may have a deadline (``--max-time``, for cron): once it passes, no file starts and the
transfers in flight are cancelled, their partial files kept for the next run to resume; each
file not done fails with :data:`MAX_TIME_REACHED`.

    plan.py       what to fetch: jobs, the held, the due; the choice among renditions
    fetcher.py    one file: resume, checks, retries
    split.py      one file over several connections: ranged parts, checks, work stealing
    segments.py   the parts of such a file, its partial file and its sidecar
    transfer.py   what one transfer leans on: retry budget, sink, minimum rate, room, slots
    http.py       the client, the run's settings, validators, error words
    hosts.py      hosts given up on for the run: connection failures in a row, said once
    describe.py   the first phase: each instance asked, each video's file chosen
    sizes.py      sizes before any byte: HEAD, for what no API sizes
    preview.py    a dry run: what a run would fetch and check, asking only APIs and HEAD
    peertube.py   the PeerTube API client: what an instance says of a video
    api.py        asking the API: rate limit, pace, capped answers, the answers' cache
    throttle.py   the bandwidth cap shared by every download
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from .. import media
from ..archive import Archive
from ..manifest_reader import Manifest
from ..progress import NullProgress, Progress
from ..urls import redact
from .describe import PEERTUBE_CACHE, choose_for
from .fetcher import Fetcher
from .hosts import Down, Hosts, track
from .http import DEFAULT_SETTINGS, DownloadSettings, open_client
from .plan import Choices, Job, Outcome, Status, jobs_for, plan, planned_sizes, video_failure
from .preview import Action, PlannedFile, Preview, preview
from .sizes import head_sizes

__all__ = [
    "DEFAULT_SETTINGS",
    "MAX_TIME_REACHED",
    "Action",
    "Choices",
    "Down",
    "DownloadReport",
    "DownloadSettings",
    "Job",
    "Outcome",
    "PlannedFile",
    "Preview",
    "Status",
    "deadline_of",
    "download",
    "download_all",
    "fetch_into",
    "jobs_for",
    "preview",
    "record_report",
    "video_failure",
]

T = TypeVar("T")
MAX_TIME_REACHED = "not fetched: the run's --max-time was reached"


def deadline_of(max_time: float | None, start: float | None = None) -> float | None:
    """The :func:`time.monotonic` instant ``max_time`` seconds after ``start`` (now by
    default): the run's deadline, or ``None`` when it has none."""
    if max_time is None:
        return None
    return (time.monotonic() if start is None else start) + max_time


def _out_of_time(job: Job, progress: Progress) -> Outcome:
    """A job the run's deadline stopped, or never let start."""
    progress.finished(job.key, failed=True)
    return Outcome(job, Status.FAILED, reason=MAX_TIME_REACHED)


@dataclass(frozen=True)
class DownloadReport:
    """The outcome of every job of a run, how long it took, and how many connections each
    file fetched was fetched over at once (those not named: one)."""

    outcomes: tuple[Outcome, ...]
    seconds: float
    choices: Choices | None = None
    connections: Mapping[tuple[str, str], int] = field(default_factory=dict)
    # The hosts given up on for the run (:mod:`.hosts`), by ``host:port``.
    hosts_down: Mapping[str, Down] = field(default_factory=dict)
    # The bytes of the new files the run set out to fetch, known before the first byte of
    # media (what ``Progress.begin`` was told); None when some file's size was not known.
    expected_bytes: int | None = None

    def unreachable(self) -> dict[str, tuple[Down, list[Outcome]]]:
        """Each host given up on, with the files it failed (optional ones included): what a
        person is told once per host rather than once per file."""
        found: dict[str, tuple[Down, list[Outcome]]] = {}
        for outcome in self.outcomes:
            host = outcome.unreachable
            if host is not None and host in self.hosts_down:
                found.setdefault(host, (self.hosts_down[host], []))[1].append(outcome)
        return found

    def connections_of(self, outcome: Outcome) -> int:
        """The most connections ``outcome``'s file was fetched over at once; 0 when no byte
        of it was asked for (held, not modified)."""
        if outcome.bytes_fetched == 0 and outcome.job.key not in self.connections:
            return 0
        return self.connections.get(outcome.job.key, 1)

    def count(self, status: Status) -> int:
        return sum(1 for o in self.outcomes if o.status is status)

    @property
    def failures(self) -> list[Outcome]:
        """Files that failed, but for optional ones (previews, captions)."""
        return [o for o in self.outcomes if o.status is Status.FAILED and not o.job.optional]

    @property
    def bytes_fetched(self) -> int:
        return sum(o.bytes_fetched for o in self.outcomes)

    def summary(self) -> dict[str, object]:
        """Counts for the catalog's record of the run: ``connections`` is the most one file
        was fetched over at once, ``split`` how many files were fetched over more than one."""
        used = [self.connections_of(o) for o in self.outcomes]
        return {
            "fetched": self.count(Status.FETCHED),
            "changed": self.count(Status.CHANGED),
            "held": self.count(Status.HELD),
            "failed": self.count(Status.FAILED),
            "bytes": self.bytes_fetched,
            "seconds": round(self.seconds, 3),
            "connections": max(used, default=0),
            "split": sum(1 for n in used if n > 1),
        }


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run``, also from a thread whose event loop is already running.

    Jupyter, and Playwright's sync API, keep a loop running in the calling thread, where
    ``asyncio.run`` refuses to start: there the run gets a thread and a loop of its own.
    """
    box: list[T] = []

    async def kept() -> None:
        # The result goes out through a list, not as the task's result: on Python 3.11,
        # asyncio.run formats its main task's result when it puts back the Ctrl-C handler,
        # the text of a whole report (every entry, transcripts included): 0.3-0.5 s of CPU
        # for a sync of 10,000 videos, for a string nobody reads.
        box.append(await coroutine)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(kept())
    else:
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(asyncio.run, kept()).result()
    return box[0]


async def download_all(
    jobs: Sequence[Job],
    archive: Archive,
    *,
    settings: DownloadSettings = DEFAULT_SETTINGS,
    progress: Progress | None = None,
    client: httpx.AsyncClient | None = None,
    deadline: float | None = None,
    connections: dict[tuple[str, str], int] | None = None,
    hosts: Hosts | None = None,
) -> list[Outcome]:
    """Fetch ``jobs`` concurrently into ``archive``; one outcome per job, in order.

    ``deadline`` (a :func:`time.monotonic` instant; by default ``settings.max_time`` from
    now) stops the run: what is not done by then fails with :data:`MAX_TIME_REACHED`.
    ``connections``, if given, receives the most connections each file split over several
    was fetched over at once (``--connections``). ``hosts``: the run's hosts given up on
    (:mod:`.hosts`), which a ``client`` given must be :func:`.hosts.track`-ed with.
    """
    progress = progress or NullProgress()
    if deadline is None:
        deadline = deadline_of(settings.max_time)
    if deadline is not None and time.monotonic() >= deadline:
        return [_out_of_time(job, progress) for job in jobs]
    if settings.check_media and any(j.role == "video" and not j.revalidate for j in jobs):
        # It loads FFmpeg's libraries while the first video arrives. Not for refreshes alone:
        # most are answered "not modified", and one that is not starts the reader when needed.
        # In a thread: starting a process (and the reader's lock, held while it reads a file
        # for another caller) must not hold the loop.
        await asyncio.to_thread(media.PROBER.start)
    async with contextlib.AsyncExitStack() as stack:
        if client is None:
            hosts = hosts or Hosts()
            client = await stack.enter_async_context(track(await open_client(settings), hosts))
        fetcher = Fetcher(client, archive, settings, progress, hosts=hosts)
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(fetcher.run(job)) for job in jobs]
                if deadline is not None and tasks:
                    group.create_task(_stop_at(deadline, tasks))
        finally:
            if connections is not None:
                connections.update(fetcher.connections)
    outcomes = []
    for job, task in zip(jobs, tasks, strict=True):
        if task.cancelled():
            outcomes.append(_out_of_time(job, progress))
        else:
            outcomes.append(task.result())
    return outcomes


async def _stop_at(deadline: float, tasks: Sequence[asyncio.Task[Outcome]]) -> None:
    """Cancel the jobs still running (or waiting for a slot) at ``deadline``.

    A cancelled transfer keeps its partial file and the sidecar that says how to resume it,
    as a killed process would; the blocking work it had handed to a thread (a write, a
    commit) finishes there before the event loop closes.
    """
    _, late = await asyncio.wait(tasks, timeout=max(deadline - time.monotonic(), 0.0))
    for task in late:
        task.cancel()


async def _expected_bytes(
    client: httpx.AsyncClient,
    todo: Sequence[Job],
    settings: DownloadSettings,
    planned: Mapping[str, int],
) -> int | None:
    """The bytes of the new files in ``todo``, before any is asked for: each one's pinned or
    API size, else (with ``settings.sizes_first``) its server's answer to ``HEAD``; None when
    one stays unknown. Refreshes are not counted: most are answered "not modified"."""
    new = [job for job in todo if job.revalidate is None]
    unsized = [job.url for job in new if job.known_size is None and job.url not in planned]
    sizes = dict(planned)
    if unsized and settings.sizes_first:
        sizes.update(await head_sizes(client, unsized, settings))
    total = 0
    for job in new:
        size = job.known_size if job.known_size is not None else sizes.get(job.url)
        if size is None:
            return None
        total += size
    return total


async def _choose(
    client: httpx.AsyncClient,
    manifest: Manifest,
    archive: Archive,
    settings: DownloadSettings,
    refresh_after: float | None,
    budget: int | None,
    reencode: str | None,
    deadline: float | None = None,
    hosts: Hosts | None = None,
) -> Choices:
    return await choose_for(
        client,
        manifest,
        archive,
        archive.root / PEERTUBE_CACHE,
        settings,
        refresh_after=refresh_after,
        budget=budget,
        reencode=reencode,
        deadline=deadline,
        hosts=hosts,
    )


async def _fetch(
    manifest: Manifest,
    archive: Archive,
    settings: DownloadSettings,
    progress: Progress,
    refresh_after: float | None,
    budget: int | None,
    reencode: str | None,
    deadline: float | None,
) -> DownloadReport:
    start = time.monotonic()
    hosts = Hosts()
    async with track(await open_client(settings), hosts) as client:
        choices = await _choose(
            client, manifest, archive, settings, refresh_after, budget, reencode, deadline, hosts
        )
        # Files and a catalog transaction: off the loop, like every write of the run.
        await asyncio.to_thread(archive.record_items, manifest.entries)
        todo, settled = await asyncio.to_thread(
            plan,
            manifest,
            archive,
            refresh_after=refresh_after,
            choices=choices.files,
            infos=choices.infos,
            failed=choices.failed,
            unreachable=choices.unreachable,
        )
        expected = await _expected_bytes(client, todo, settings, planned_sizes(choices))
        progress.begin(len(todo), expected)
        connections: dict[tuple[str, str], int] = {}
        try:
            fetched = await download_all(
                todo,
                archive,
                settings=settings,
                progress=progress,
                client=client,
                deadline=deadline,
                connections=connections,
                hosts=hosts,
            )
        finally:
            progress.end()
    outcomes = sorted(
        (*settled, *fetched), key=lambda o: (o.job.entry.source.path, o.job.entry.id, o.job.role)
    )
    return DownloadReport(
        outcomes=tuple(outcomes),
        seconds=time.monotonic() - start,
        choices=choices,
        connections=connections,
        hosts_down=hosts.given_up,
        expected_bytes=expected,
    )


def fetch_into(
    manifest: Manifest,
    archive: Archive,
    *,
    settings: DownloadSettings = DEFAULT_SETTINGS,
    progress: Progress | None = None,
    refresh_after: float | None = None,
    budget: int | None = None,
    reencode: str | None = None,
    deadline: float | None = None,
) -> DownloadReport:
    """Fetch what the archive lacks of ``manifest`` (and what is due for a refresh), in one
    event loop with one HTTP client.

    ``budget`` (``--fit``) plans every video's rendition so the kit fits; with a ``reencode``
    preset, a budget the lowest renditions exceed is left to the kit's re-encoding. The
    caller holds the archive's lock: :func:`download` for one command, sync for a run.
    ``deadline`` (:func:`deadline_of`; by default ``settings.max_time`` from now) ends the
    run: the API is asked no more, no file starts, transfers in flight stop.
    """
    if deadline is None:
        deadline = deadline_of(settings.max_time)
    return _run(
        _fetch(
            manifest,
            archive,
            settings,
            progress or NullProgress(),
            refresh_after,
            budget,
            reencode,
            deadline,
        )
    )


def record_report(archive: Archive, run_id: int, failures: Sequence[Outcome]) -> None:
    """Note a run's failures in the catalog, for ``archiver status``: URLs without the
    passwords they may carry."""
    archive.record_failures(
        run_id,
        [(o.job.entry.id, o.job.role, redact(o.job.url), o.reason or "") for o in failures],
    )


def download(
    manifest: Manifest,
    archive_root: Path,
    *,
    settings: DownloadSettings = DEFAULT_SETTINGS,
    progress: Progress | None = None,
    refresh_after: float | None = None,
) -> DownloadReport:
    """Fetch every file of ``manifest`` into the archive at ``archive_root``, under its lock,
    within ``settings.max_time`` seconds of the call."""
    deadline = deadline_of(settings.max_time)
    with Archive(archive_root) as archive, archive.locked():
        run_id = archive.start_run("download")
        report = fetch_into(
            manifest,
            archive,
            settings=settings,
            progress=progress,
            refresh_after=refresh_after,
            deadline=deadline,
        )
        record_report(archive, run_id, report.failures)
        archive.finish_run(run_id, "failed" if report.failures else "ok", report.summary())
    return report
