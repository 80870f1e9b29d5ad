"""``archiver sync``: the whole pipeline for cron, under one lock.

Fiches → manifest → download (only what is new, changed or due for a refresh) → kit, in one
run holding the archive's lock. Items that left the collection leave the kit and are marked
retired in the archive (their files stay until ``archiver prune``). Every file's outcome can be
appended to a JSON-lines log for whoever watches the cron job.

A run costs what changed, not what the collection holds, wherever archiver can tell: a fiche
whose bytes are those of the last run comes from the archive's cache of parsed fiches
(:mod:`archiver.fiche_cache`), the last manifest is written again only when its entries
changed, and the kit makes again only the pages whose sources changed (:mod:`archiver.kit`).
A run that found nothing to do seals the archive, and the next run whose fiches, catalog,
files and clock still say so replays its report without doing the work (:mod:`archiver.settled`).

With a deadline (``--max-time``), a run cut short keeps its partial files for the next one,
and when the deadline has passed before packaging, leaves the previous kit as it was: a kit
half updated at the hour the school opens is worse than yesterday's whole one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from . import settled
from .archive import Archive, FileRecord
from .catalog import parse_time
from .collection import default_collection
from .errors import InputError, ManifestError, StorageError
from .fetch import (
    DEFAULT_SETTINGS,
    DownloadReport,
    DownloadSettings,
    Outcome,
    Status,
    deadline_of,
    jobs_for,
    record_report,
    video_failure,
)
from .fiche_cache import CACHE_FOLDER, CACHE_NAME, FicheCache, tidy_temporaries
from .kit import KitReport, KitSettings, build_kit, check_kit_folder
from .kit.sealed import Sealing, quiet, replayed
from .kit.site import recipe
from .manifest import Built, Manifest, build_manifest, build_valid, load_manifest, write_manifest
from .progress import Progress
from .sync_log import write_log

if TYPE_CHECKING:  # imported where a whole run needs them: a sealed run does without
    from .fetch import Preview
    from .zim import ZimReport

__all__ = [
    "DEFAULT_REFRESH_AFTER",
    "PlannedVideo",
    "SyncReport",
    "SyncSettings",
    "plan_sync",
    "sync",
]

logger = logging.getLogger(__name__)

DEFAULT_REFRESH_AFTER = 24 * 3600.0
LAST_MANIFEST = "manifest.json"
KIT_NOT_UPDATED = (
    "the kit is not updated: the run's --max-time was reached before packaging;"
    " the previous kit is left as it was"
)
NOT_IN_KIT = "not in the kit: the run's --max-time was reached before packaging"


@dataclass(frozen=True, kw_only=True)
class SyncSettings:
    """How to sync: download settings, kit settings, how often to ask upstream again."""

    download: DownloadSettings = DEFAULT_SETTINGS
    kit: KitSettings = KitSettings()  # noqa: RUF009 - frozen, so safe to share
    refresh_after: float | None = DEFAULT_REFRESH_AFTER
    offline: bool = False
    fit: int | None = None  # bytes the whole kit must fit in (--fit)
    # Seconds from the start of the run (--max-time); None: ``download.max_time``, if any.
    max_time: float | None = None
    zim: Path | None = None  # also write the kit as this Kiwix ZIM (--zim), after the kit

    @property
    def run_max_time(self) -> float | None:
        """The run's time limit: its own, else the download settings'."""
        return self.max_time if self.max_time is not None else self.download.max_time


@dataclass(frozen=True)
class SyncReport:
    """What one sync did."""

    manifest: Manifest
    download: DownloadReport
    kit: KitReport
    retired: tuple[tuple[str, str], ...]
    seconds: float
    # Why the kit was not updated (the deadline passed before packaging), or None.
    kit_skipped: str | None = None
    # The fiches that did not validate: each kept its last good entry, if any (exit 2).
    invalid: tuple[InputError, ...] = ()
    zim: ZimReport | None = None  # the ZIM written after the kit (--zim), if any

    def failures(self) -> list[Outcome]:
        """Every file that failed, and every video left out of the kit, each named once; with
        the kit not updated, every video this run fetched, which the kit lacks."""
        failed = list(self.download.failures)
        named = {o.job.entry.id for o in failed}
        failed.extend(
            video_failure(entry, reason)
            for entry, reason in self.kit.left_out
            if entry.id not in named
        )
        if self.kit_skipped is not None:
            named = {o.job.entry.id for o in failed}
            for outcome in self.download.outcomes:
                entry = outcome.job.entry
                if outcome.status in (Status.FETCHED, Status.CHANGED) and entry.id not in named:
                    failed.append(video_failure(entry, NOT_IN_KIT))
                    named.add(entry.id)
        return failed


def _offline_report(manifest: Manifest, archive: Archive) -> DownloadReport:
    """What is held, without a single request: the kit is rebuilt from it."""
    outcomes: list[Outcome] = []
    archive.record_items(manifest.entries)
    for entry in manifest.entries:
        jobs, problems = jobs_for(entry)
        outcomes.extend(video_failure(entry, problem) for problem in problems)
        for job in jobs:
            record = archive.for_kit(
                entry.id, job.role, sha256=job.sha256, size=job.size, url=job.url
            )
            with contextlib.suppress(StorageError):  # a link in its view's place: not shown
                if record is not None:
                    archive.shown(record)  # a view deleted by a person comes back
            if record is not None:
                outcomes.append(Outcome(job, Status.HELD, record=record))
            else:
                outcomes.append(Outcome(job, Status.FAILED, reason="not held, and --offline"))
    return DownloadReport(outcomes=tuple(outcomes), seconds=0.0)


def sync(
    paths: Sequence[Path],
    archive_root: Path,
    kit: Path,
    *,
    settings: SyncSettings = SyncSettings(),
    progress: Progress | None = None,
    kit_progress: Progress | None = None,
    log: IO[str] | None = None,
    zim_progress: Progress | None = None,
) -> SyncReport:
    """Build the manifest from ``paths`` (the bundled collection when empty), fetch, package.

    Within ``settings.run_max_time`` seconds of the call, if set: see :mod:`archiver.sync`.
    """
    start = time.monotonic()
    deadline = deadline_of(settings.run_max_time, start)
    fiches = list(paths) or [default_collection()]
    key = None
    found = None
    if settings.zim is None:  # a ZIM is checked as it is written: never sealed
        # Each fiche read and hashed once: its sha256 is in the seal's key and, when no seal
        # matches it, finds its entry in the fiche cache.
        found = settled.hash_fiches(fiches)
        key = settled.key_of(
            "sync",
            settled.inputs_of(found),
            fiches,
            archive_root,
            kit,
            _as_sealed(settings),
            recipe(),
        )
    seal = settled.read(archive_root, key) if key is not None else None
    cache = FicheCache(archive_root / CACHE_FOLDER / CACHE_NAME)
    # Parsed before the lock (a seal, if it holds, needs no parsing), written under it.
    built = build_valid(fiches, cache=cache, found=found) if seal is None else None
    # The fiches found and their sha256 (7 MB at 10,000) are held neither through a sealed
    # run's replay (its peak) nor through a whole run: a seal that matches but does not hold
    # under the lock (a kit file deleted) has its build read the fiches again.
    found = None
    check_kit_folder(kit, archive_root)  # before hours of downloading, not after
    if settings.zim is not None:
        from .zim import check_zim_path  # libzim: only for a ZIM

        check_zim_path(settings.zim, archive_root, kit)
    with Archive(archive_root) as archive, archive.locked():
        again = _replay(seal, archive, kit, start) if seal is not None else None
        failures: list[Outcome] = []
        if again is not None:
            report = again
        else:
            if built is None:
                built = build_valid(fiches, cache=cache)
            sealing = Sealing(key, archive, kit)
            with sealing.watching(archive_root / LAST_MANIFEST):
                report, failures, summary = _run(
                    built, archive, kit, cache, settings, deadline, start,
                    progress=progress, kit_progress=kit_progress, zim_progress=zim_progress,
                )  # fmt: skip
            sealing.close(
                report,
                _found_nothing_to_do(report, failures),
                until=_due(report, archive.root, settings.refresh_after),
                summary=summary,
            )
    if log is not None:
        write_log(log, report.download, report.retired, failures)
    return report


def _run(
    built: Built,
    archive: Archive,
    kit: Path,
    cache: FicheCache,
    settings: SyncSettings,
    deadline: float | None,
    start: float,
    *,
    progress: Progress | None,
    kit_progress: Progress | None,
    zim_progress: Progress | None,
) -> tuple[SyncReport, list[Outcome], dict[str, object]]:
    """The whole run, under the archive's lock: its report, failures and recorded summary."""
    from .fetch.run import fetch_into  # the HTTP client: a sealed run does without

    tidy_temporaries(archive.root)  # what a killed run left half written
    manifest = _with_last_good(built, archive.root / LAST_MANIFEST)
    run_id = archive.start_run("sync")
    retired = archive.retire_missing({entry.id for entry in manifest.entries})
    if settings.offline:
        fetched = _offline_report(manifest, archive)
    else:
        preset = settings.kit.transcode
        fetched = fetch_into(
            manifest,
            archive,
            settings=_download_settings(settings),
            progress=progress,
            refresh_after=settings.refresh_after,
            budget=settings.fit,
            reencode=preset.name if preset else None,
            deadline=deadline,
        )
    last = archive.root / LAST_MANIFEST
    if not built.errors and not cache.holds_manifest(last):
        # The last manifest built whole: what a broken fiche falls back on.
        write_manifest(manifest, last)
        cache.wrote_manifest(last)
    cache.save()  # read without the lock, written under it: the last writer's is whole
    skipped = None
    if deadline is not None and time.monotonic() >= deadline:
        skipped = KIT_NOT_UPDATED
        logger.warning("%s: %s", kit, skipped)
        kit_report = _untouched(kit, skipped)
    else:
        kit_report = build_kit(
            manifest,
            archive,
            kit,
            settings=_kit_settings(settings),
            progress=kit_progress,
            chosen=None if settings.offline else _chosen(fetched),
        )
    zim_report = None
    if settings.zim is not None and skipped is None:
        from .zim import write_zim

        zim_report = write_zim(
            manifest,
            archive,
            settings.zim,
            settings=_kit_settings(settings),
            progress=zim_progress,
            chosen=None if settings.offline else _chosen(fetched),
        )
    report = SyncReport(
        manifest=manifest,
        download=fetched,
        kit=kit_report,
        retired=tuple(retired),
        seconds=time.monotonic() - start,
        kit_skipped=skipped,
        invalid=built.errors,
        zim=zim_report,
    )
    failures = report.failures()
    record_report(archive, run_id, failures)
    summary = {
        **fetched.summary(),
        "retired": len(retired),
        "seconds": round(report.seconds, 3),
    }
    summary["failed"] = len(failures)
    summary["kit_files_written"] = kit_report.written
    archive.finish_run(run_id, "failed" if failures else "ok", summary)
    return report, failures, summary


def _replay(seal: settled.Seal, archive: Archive, kit: Path, start: float) -> SyncReport | None:
    """The sealed run's report, recorded in the catalog as this run's (its run, the items seen
    again), when the seal still holds (:func:`.kit.sealed.replayed`); else ``None``."""
    seconds: list[float] = []

    def record() -> None:
        run_id = archive.start_run("sync")
        archive.catalog.seen_again()
        seconds.append(time.monotonic() - start)
        archive.finish_run(run_id, "ok", {**seal.summary, "seconds": round(seconds[0], 3)})

    report = replayed(seal, archive, kit, SyncReport, record)
    return dataclasses.replace(report, seconds=seconds[0]) if report is not None else None


def _found_nothing_to_do(report: SyncReport, failures: list[Outcome]) -> bool:
    """Whether a sync fetched, changed, failed, retired and wrote nothing: a run to seal."""
    return (
        not failures
        and not report.invalid
        and not report.retired
        and report.kit_skipped is None
        and report.zim is None
        and all(o.status is Status.HELD for o in report.download.outcomes)
        and quiet(report.kit)
    )


def _as_sealed(settings: SyncSettings) -> SyncSettings:
    """The settings as a seal's key holds them: those of a run with nothing to fetch. How files
    would be fetched (jobs, connections, rate, retries, timeouts, whether bars ask sizes
    first, the deadline) changes nothing of such a run: a nightly sync and a daytime one at a
    lower rate share a seal. What a file is held as (the height, the mirrors, the media
    check) and everything about the kit stays in it."""
    download = settings.download
    kept = DownloadSettings(
        max_height=download.max_height, mirrors=download.mirrors, check_media=download.check_media
    )
    return dataclasses.replace(settings, download=kept, max_time=None)


def _due(report: SyncReport, archive_root: Path, refresh_after: float | None) -> float:
    """When the first held file, or the first cached answer of the PeerTube API, is due to be
    asked about upstream again (a :func:`time.time`): a seal ends then."""
    if refresh_after is None:
        return float("inf")
    checked = [
        moment.timestamp()
        for outcome in report.download.outcomes
        if outcome.record is not None
        and (moment := parse_time(outcome.record.checked_at)) is not None
    ]
    checked.extend(settled.answers_saved(archive_root))
    return min(checked, default=float("inf")) + refresh_after


def _chosen(fetched: DownloadReport) -> dict[str, FileRecord]:
    """The version of each video this run fetched or found held: the rendition its kit asked
    for (``--fit``, ``--max-height``), which the kit shows."""
    return {
        outcome.job.entry.id: outcome.record
        for outcome in fetched.outcomes
        if outcome.job.role == "video" and outcome.record is not None
    }


def _with_last_good(built: Built, last: Path) -> Manifest:
    """The collection's manifest, where each fiche that no longer validates keeps its entry
    from the last sync that read it whole: a typo in one fiche must neither take its video
    out of the kit nor retire it from the archive, and the other videos go on."""
    if not built.invalid:
        return built.manifest
    try:
        previous = load_manifest(last)
    except (ManifestError, OSError) as exc:
        if not isinstance(exc, FileNotFoundError):
            logger.warning("%s: cannot read the last sync's manifest: %s", last, exc)
        previous = Manifest(entries=())
    held = {entry.id for entry in built.manifest.entries}
    kept = [
        entry
        for entry in previous.entries
        if entry.source.path in built.invalid and entry.id not in held
    ]
    for entry in kept:
        logger.warning(
            "%s: the fiche does not validate; its video is kept as the last sync read it",
            entry.source.path,
        )
    entries = sorted((*built.manifest.entries, *kept), key=lambda e: (e.source.path, e.id))
    return Manifest(entries=tuple(entries))


def _untouched(kit: Path, reason: str) -> KitReport:
    """The report of a kit left as it was."""
    return KitReport(
        kit=kit,
        items=0,
        left_out=(),
        written=0,
        bytes_written=0,
        linked=0,
        removed=0,
        unchanged=0,
        warnings=(reason,),
        seconds=0.0,
    )


def _download_settings(settings: SyncSettings) -> DownloadSettings:
    """The run's time limit, and re-encoding as the last resort: with ``--transcode``, first
    the instance's own resolution under the re-encoding cap."""
    download = dataclasses.replace(settings.download, max_time=settings.run_max_time)
    if settings.kit.transcode is None:
        return download
    return dataclasses.replace(download, max_height=_kit_settings(settings).reencode_cap)


def _kit_settings(settings: SyncSettings) -> KitSettings:
    """The kit re-encodes (with ``--transcode``) past the same cap and budget the download
    chose under; the versions it shows are those that choice fetched, checked against the
    budget again when a restore or a pin fixes some. Offline, nothing was chosen: the kit
    chooses among the versions held, within the same cap and budget."""
    return dataclasses.replace(
        settings.kit,
        max_height=settings.download.max_height,
        fit=settings.fit,
        fit_versions=settings.offline,
    )


@dataclass(frozen=True)
class PlannedVideo:
    """What a dry run says of one video: the file chosen (None: the fiche's link, size
    unknown), and the preset it will be re-encoded with for the kit, if any."""

    entry_id: str
    title: str
    resolution: int | None
    size: int | None
    reencode: str | None
    cap: int | None  # the height past which a video is re-encoded for the kit


def plan_sync(
    paths: Sequence[Path],
    archive_root: Path,
    *,
    settings: SyncSettings = SyncSettings(),
    kit: Path | None = None,
) -> tuple[Preview, list[PlannedVideo]]:
    """What a sync would fetch, check and keep (``--dry-run``), and the file and size
    ``--fit``/``--max-height``/``--transcode`` would choose for each video.

    Asks the PeerTube API and, for sizes no API gives, ``HEAD``; fetches no media and
    changes nothing: not the archive (no lock, no answer kept), not the kit. Refuses what the
    real run would refuse before its first request (a ``kit`` folder that is not archiver's,
    a ``--zim`` path it may not write), so a dry run never promises a run that exits 2.
    """
    from .fetch.preview import preview
    from .zim import check_zim_path

    manifest = build_manifest(paths or [default_collection()])
    if kit is not None:
        check_kit_folder(kit, archive_root)
    if settings.zim is not None:
        check_zim_path(settings.zim, archive_root, kit)
    preset = settings.kit.transcode
    found = preview(
        manifest,
        archive_root,
        settings=_download_settings(settings),
        refresh_after=settings.refresh_after,
        budget=settings.fit,
        reencode=preset.name if preset else None,
        offline=settings.offline,
    )
    choices = found.choices
    cap = _kit_settings(settings).reencode_cap
    planned = []
    for entry in manifest.entries:
        choice = choices.files.get(entry.id)
        taller = choice is not None and cap is not None and choice.resolution > cap
        planned.append(
            PlannedVideo(
                entry_id=entry.id,
                title=entry.title,
                resolution=choice.resolution if choice else None,
                size=choice.size if choice else None,
                reencode=preset.name if preset and (choice is None or taller) else None,
                cap=cap,
            )
        )
    return found, planned
