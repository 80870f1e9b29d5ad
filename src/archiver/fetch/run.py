"""A download's run: one event loop, one HTTP client, every file of a manifest fetched
concurrently into the archive (see the package's docstring)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from collections.abc import Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx

from .. import media
from ..archive import Archive
from ..manifest_reader import Manifest
from ..progress import NullProgress, Progress
from . import MAX_TIME_REACHED, DownloadReport, deadline_of, record_report
from .describe import PEERTUBE_CACHE, choose_for
from .fetcher import Fetcher
from .hosts import Hosts, track
from .http import open_client
from .plan import Choices, Job, Outcome, Status, plan
from .renditions import planned_sizes
from .settings import DEFAULT_SETTINGS, DownloadSettings
from .sizes import head_sizes

__all__ = ["download", "download_all", "fetch_into"]

T = TypeVar("T")


def _out_of_time(job: Job, progress: Progress, received: int = 0) -> Outcome:
    """A job the run's deadline stopped (``received``: the bytes it had received, kept in its
    partial for the next run), or never let start."""
    progress.finished(job.key, failed=True)
    return Outcome(job, Status.FAILED, reason=MAX_TIME_REACHED, bytes_fetched=received)


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
            outcomes.append(_out_of_time(job, progress, fetcher.received(job)))
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
