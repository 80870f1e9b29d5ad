"""Fetch every file of a manifest into the archive: plan what is missing or due, then run.

Planning (what to fetch, what is held, what is due for a refresh) is plain synchronous code;
:func:`download_all` is the one ``async`` entry point, run under ``asyncio.run()`` by
:func:`download`. How one file is fetched (resume, checks, retries) is :mod:`archiver.fetch`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import datetime as dt
import time
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import httpx

from . import media, peertube
from .archive import TIME_FORMAT, Archive
from .entry import Entry, PeerTubeRef
from .errors import UsageError
from .fetch import (
    DEFAULT_SETTINGS,
    DownloadSettings,
    Fetcher,
    Job,
    NullProgress,
    Outcome,
    Progress,
    Status,
    make_client,
)
from .manifest import Manifest
from .names import safe_filename
from .peertube import (
    FitPlan,
    VideoFile,
    VideoInfo,
    fetch_info,
)

__all__ = [
    "DEFAULT_SETTINGS",
    "Choices",
    "DownloadReport",
    "DownloadSettings",
    "Job",
    "NullProgress",
    "Outcome",
    "Progress",
    "Status",
    "choose_files",
    "download",
    "download_all",
    "fetch_into",
    "plan",
    "record_report",
    "video_failure",
]

T = TypeVar("T")
PEERTUBE_CACHE = "peertube"


@dataclass(frozen=True)
class DownloadReport:
    """The outcome of every job of a run, and how long it took."""

    outcomes: tuple[Outcome, ...]
    seconds: float

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
        """Counts for the catalog's record of the run."""
        return {
            "fetched": self.count(Status.FETCHED),
            "changed": self.count(Status.CHANGED),
            "held": self.count(Status.HELD),
            "failed": self.count(Status.FAILED),
            "bytes": self.bytes_fetched,
            "seconds": round(self.seconds, 3),
        }


# -- planning ----------------------------------------------------------------------------------


def _file_name(url: str, *, role: str, default_suffix: str) -> str:
    last = unquote(urlsplit(url).path.rstrip("/").rpartition("/")[2])
    return safe_filename(last, default_stem=role.replace("_", "-"), default_suffix=default_suffix)


def jobs_for(
    entry: Entry, choice: VideoFile | None = None, info: VideoInfo | None = None
) -> tuple[list[Job], list[str]]:
    """The files of one entry, and the reasons any cannot be fetched at all.

    ``choice`` is the file picked among those the PeerTube instance offers (``--max-height``,
    ``--fit``); the fiche's own link otherwise. A checksum pinned for the fiche's file does not
    apply to another resolution. ``info``, when the instance described the video, adds its
    preview image and its captions, as optional files.
    """
    jobs: list[Job] = []
    problems: list[str] = []
    if choice is None and info is not None and entry.video.url:
        # The fiche's own file, when the instance describes it: its height and checksums.
        choice = next((f for f in info.files if f.url == entry.video.url), None)
    url = choice.url if choice is not None else entry.video.url
    if url:
        own = url == entry.video.url
        jobs.append(
            Job(
                entry=entry,
                role="video",
                url=url,
                name=_file_name(url, role="video", default_suffix=".mp4"),
                sha256=entry.video.sha256 if own else None,
                size=entry.video.size if own else None,
                resolution=choice.resolution if choice is not None else None,
                segments_url=choice.segments_url if choice is not None else None,
            )
        )
    else:
        problems.append("no download URL in the manifest (only an embed URL)")
    for asset in entry.assets:
        name = _file_name(asset.url, role=asset.kind, default_suffix=".pdf")
        jobs.append(Job(entry=entry, role=asset.kind, url=asset.url, name=name))
    if info is not None and info.preview_url:
        jobs.append(
            Job(
                entry=entry, role="preview", url=info.preview_url, name="preview.jpg", optional=True
            )
        )
    for caption in info.captions if info is not None else ():
        jobs.append(
            Job(
                entry=entry,
                role=f"caption_{caption.language}",
                url=caption.url,
                name=f"captions-{caption.language}.vtt",
                optional=True,
            )
        )
    return jobs, problems


def video_failure(entry: Entry, reason: str) -> Outcome:
    """An entry's video failed before any file could be named: a video with no usable link,
    a video left out of the kit. Named by the URL the manifest gives for it."""
    url = entry.video.url or entry.video.embed_url or ""
    return Outcome(Job(entry=entry, role="video", url=url, name=""), Status.FAILED, reason=reason)


def _due(checked_at: str, refresh_after: float, now: float) -> bool:
    try:
        checked = dt.datetime.strptime(checked_at, TIME_FORMAT).replace(tzinfo=dt.UTC)
    except ValueError:
        return True
    return now - checked.timestamp() >= refresh_after


def plan(
    manifest: Manifest,
    archive: Archive,
    *,
    refresh_after: float | None = None,
    choices: Mapping[str, VideoFile] | None = None,
    infos: Mapping[str, VideoInfo] | None = None,
) -> tuple[list[Job], list[Outcome]]:
    """Split the manifest's files into those to fetch and those already settled.

    A file is held when the catalog's current version came from the same URL, is on disk at
    its recorded size and matches any pinned checksum: a second run fetches nothing. With
    ``refresh_after`` (seconds), a held file last checked longer ago than that is asked for
    again, conditionally, to learn whether upstream changed.
    """
    todo: list[Job] = []
    settled: list[Outcome] = []
    now = time.time()
    archive.record_items(manifest.entries)
    for entry in manifest.entries:
        jobs, problems = jobs_for(entry, (choices or {}).get(entry.id), (infos or {}).get(entry.id))
        settled.extend(video_failure(entry, problem) for problem in problems)
        for job in jobs:
            record = archive.held(entry.id, job.role, job.url)
            pinned_ok = record is not None and (
                (job.sha256 is None or record.sha256 == job.sha256)
                and (job.size is None or record.size == job.size)
            )
            if record is None or not pinned_ok:
                todo.append(job)
            elif refresh_after is not None and _due(record.checked_at, refresh_after, now):
                todo.append(dataclasses.replace(job, revalidate=record))
            else:
                settled.append(Outcome(job, Status.HELD, record=record))
    return todo, settled


# -- running -----------------------------------------------------------------------------------


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
    if settings.check_media and any(j.role == "video" and not j.revalidate for j in jobs):
        # It loads FFmpeg's libraries while the first video arrives. Not for refreshes alone:
        # most are answered "not modified", and one that is not starts the reader when needed.
        media.PROBER.start()
    async with contextlib.AsyncExitStack() as stack:
        if client is None:
            client = await stack.enter_async_context(make_client(settings))
        fetcher = Fetcher(client, archive, settings, progress)
        return list(await asyncio.gather(*(fetcher.run(job) for job in jobs)))


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


@dataclass(frozen=True)
class Choices:
    """What the PeerTube instances said: each video's chosen file, its description, the plan."""

    files: dict[str, VideoFile]
    infos: dict[str, VideoInfo]
    fit: FitPlan | None = None


async def _describe_all(
    manifest: Manifest, archive: Archive, settings: DownloadSettings, refresh_after: float | None
) -> dict[str, VideoInfo]:
    """Each video's description by its instance: several asked at once, as many as
    ``--per-host`` allows (a collection's videos are usually on one instance)."""
    cache = archive.root / PEERTUBE_CACHE
    wanted = [(entry.id, entry.peertube) for entry in manifest.entries if entry.peertube]
    if not wanted:
        return {}
    at_once = asyncio.Semaphore(max(settings.per_host, 1))

    async def describe(client: httpx.AsyncClient, ref: PeerTubeRef) -> VideoInfo | None:
        cached = cache / f"{ref.uuid}.json"
        fresh = cached.is_file() and (
            refresh_after is None or time.time() - cached.stat().st_mtime < refresh_after
        )
        async with at_once:
            return await fetch_info(
                client, ref, cache, fresh=fresh, api_base=settings.request_url(ref.instance)
            )

    async with make_client(settings) as client:
        answers = await asyncio.gather(*(describe(client, ref) for _, ref in wanted))
    return {item: info for (item, _), info in zip(wanted, answers, strict=True) if info is not None}


async def _choose(
    manifest: Manifest,
    archive: Archive,
    settings: DownloadSettings,
    refresh_after: float | None,
    budget: int | None,
    reencode: str | None,
) -> Choices:
    described = await _describe_all(manifest, archive, settings, refresh_after)
    infos = {item: info for item, info in described.items() if info.files}
    if budget is None and settings.max_height is None:
        return Choices(files={}, infos=described)
    if budget is None:
        choices = {}
        for item, info in infos.items():
            choice = peertube.choose(info, settings.max_height)
            if choice is not None:
                choices[item] = choice
        return Choices(files=choices, infos=described)
    options = {
        item: [
            f
            for f in info.files
            if settings.max_height is None or f.resolution <= settings.max_height
        ]
        for item, info in infos.items()
    }
    unknown = [e for e in manifest.entries if e.id not in options or not options[e.id]]
    if unknown:
        names = ", ".join(f"{e.title} ({e.id})" for e in unknown)
        raise UsageError(
            f"--fit needs each video's sizes from its PeerTube instance; none for: {names}"
        )
    overhead = peertube.kit_overhead(len(manifest.entries))
    fit = peertube.plan_fit(options, budget=budget, overhead=overhead, reencode=reencode)
    return Choices(files=dict(fit.choices), infos=described, fit=fit)


def choose_files(
    manifest: Manifest,
    archive: Archive,
    *,
    settings: DownloadSettings = DEFAULT_SETTINGS,
    refresh_after: float | None = None,
    budget: int | None = None,
    reencode: str | None = None,
) -> Choices:
    """Ask each video's PeerTube instance about it; pick its file (``--max-height``, ``--fit``).

    Asks each instance's API at most once per ``refresh_after`` (answers, even "private", are
    cached in the archive); a video the API does not describe keeps its fiche's link. With a
    ``reencode`` preset, a budget that even the lowest resolutions exceed is left to it.
    """
    return _run(_choose(manifest, archive, settings, refresh_after, budget, reencode))


def fetch_into(
    manifest: Manifest,
    archive: Archive,
    *,
    settings: DownloadSettings = DEFAULT_SETTINGS,
    progress: Progress | None = None,
    refresh_after: float | None = None,
    choices: Choices | None = None,
) -> DownloadReport:
    """Fetch what the archive lacks of ``manifest`` (and what is due for a refresh).

    The caller holds the archive's lock: :func:`download` for one command, sync for a run.
    """
    progress = progress or NullProgress()
    start = time.monotonic()
    if choices is None:
        choices = choose_files(manifest, archive, settings=settings, refresh_after=refresh_after)
    todo, settled = plan(
        manifest,
        archive,
        refresh_after=refresh_after,
        choices=choices.files,
        infos=choices.infos,
    )
    progress.begin(todo)
    try:
        fetched = (
            _run(download_all(todo, archive, settings=settings, progress=progress)) if todo else []
        )
    finally:
        progress.end()
    outcomes = sorted(
        (*settled, *fetched), key=lambda o: (o.job.entry.source.path, o.job.entry.id, o.job.role)
    )
    return DownloadReport(outcomes=tuple(outcomes), seconds=time.monotonic() - start)


def record_report(archive: Archive, run_id: int, report: DownloadReport) -> None:
    """Note a run's failures in the catalog, for ``archiver status``."""
    for failure in report.failures:
        job = failure.job
        archive.record_failure(run_id, job.entry.id, job.role, job.url, failure.reason or "")


def download(
    manifest: Manifest,
    archive_root: Path,
    *,
    settings: DownloadSettings = DEFAULT_SETTINGS,
    progress: Progress | None = None,
    refresh_after: float | None = None,
) -> DownloadReport:
    """Fetch every file of ``manifest`` into the archive at ``archive_root``, under its lock."""
    with Archive(archive_root) as archive, archive.locked():
        run_id = archive.start_run("download")
        report = fetch_into(
            manifest, archive, settings=settings, progress=progress, refresh_after=refresh_after
        )
        record_report(archive, run_id, report)
        archive.finish_run(run_id, "failed" if report.failures else "ok", report.summary())
    return report
