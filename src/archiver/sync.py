"""``archiver sync``: the whole pipeline for cron, under one lock.

Fiches → manifest → download (only what is new, changed or due for a refresh) → kit, in one
run holding the archive's lock. Items that left the collection leave the kit and are marked
retired in the archive (their files stay until ``archiver prune``). Every file's outcome can be
appended to a JSON-lines log for whoever watches the cron job.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .archive import Archive, utc_now
from .collection import default_collection
from .download import (
    DEFAULT_SETTINGS,
    Choices,
    DownloadReport,
    DownloadSettings,
    Outcome,
    Progress,
    Status,
    choose_files,
    fetch_into,
    jobs_for,
    record_report,
    video_failure,
)
from .errors import ArchiveError
from .manifest import Manifest, build_manifest, write_manifest
from .meter import ByteMeter
from .package import PackageReport, PackageSettings, build_kit
from .units import format_bytes

__all__ = ["DEFAULT_REFRESH_AFTER", "SyncReport", "SyncSettings", "plan_sync", "sync"]

DEFAULT_REFRESH_AFTER = 24 * 3600.0
LAST_MANIFEST = "manifest.json"


@dataclass(frozen=True, kw_only=True)
class SyncSettings:
    """How to sync: download settings, kit settings, how often to ask upstream again."""

    download: DownloadSettings = DEFAULT_SETTINGS
    package: PackageSettings = PackageSettings()  # noqa: RUF009 - frozen, so safe to share
    refresh_after: float | None = DEFAULT_REFRESH_AFTER
    offline: bool = False
    fit: int | None = None  # bytes the whole kit must fit in (--fit)


@dataclass(frozen=True)
class SyncReport:
    """What one sync did."""

    manifest: Manifest
    download: DownloadReport
    kit: PackageReport
    retired: tuple[tuple[str, str], ...]
    seconds: float

    def failures(self) -> list[Outcome]:
        """Every file that failed, and every video left out of the kit, each named once."""
        failed = list(self.download.failures)
        named = {o.job.entry.id for o in failed}
        failed.extend(
            video_failure(entry, reason)
            for entry, reason in self.kit.left_out
            if entry.id not in named
        )
        return failed


def _offline_report(manifest: Manifest, archive: Archive) -> DownloadReport:
    """What is held, without a single request: the kit is rebuilt from it."""
    outcomes: list[Outcome] = []
    archive.record_items(manifest.entries)
    for entry in manifest.entries:
        jobs, problems = jobs_for(entry)
        outcomes.extend(video_failure(entry, problem) for problem in problems)
        for job in jobs:
            record = archive.held(entry.id, job.role)
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
    kit_progress: ByteMeter | None = None,
    log: IO[str] | None = None,
) -> SyncReport:
    """Build the manifest from ``paths`` (the bundled collection when empty), fetch, package."""
    start = time.monotonic()
    manifest = build_manifest(paths or [default_collection()])
    with Archive(archive_root) as archive, archive.locked():
        run_id = archive.start_run("sync")
        retired = archive.retire_missing({entry.id for entry in manifest.entries})
        if settings.offline:
            fetched = _offline_report(manifest, archive)
        else:
            choices = _choose(manifest, archive, settings)
            fetched = fetch_into(
                manifest,
                archive,
                settings=settings.download,
                progress=progress,
                refresh_after=settings.refresh_after,
                choices=choices,
            )
        try:
            write_manifest(manifest, archive_root / LAST_MANIFEST)
        except OSError as exc:
            raise ArchiveError(archive_root / LAST_MANIFEST, f"cannot write: {exc}") from exc
        kit_report = build_kit(
            manifest, archive, kit, settings=_kit_settings(settings), progress=kit_progress
        )
        report = SyncReport(
            manifest=manifest,
            download=fetched,
            kit=kit_report,
            retired=tuple(retired),
            seconds=time.monotonic() - start,
        )
        failures = report.failures()
        record_report(archive, run_id, DownloadReport(tuple(failures), 0.0))
        summary = {
            **fetched.summary(),
            "retired": len(retired),
            "seconds": round(report.seconds, 3),
        }
        summary["failed"] = len(failures)
        summary["kit_files_written"] = kit_report.written
        archive.finish_run(run_id, "failed" if failures else "ok", summary)
    if log is not None:
        _log(log, report, failures)
    return report


def _choose(manifest: Manifest, archive: Archive, settings: SyncSettings) -> Choices:
    download = settings.download
    preset = settings.package.transcode
    if preset is not None:
        # Re-encoding is the last resort: first the instance's own resolution under its cap.
        download = dataclasses.replace(download, max_height=_kit_settings(settings).reencode_cap)
    return choose_files(
        manifest,
        archive,
        settings=download,
        refresh_after=settings.refresh_after,
        budget=settings.fit,
        reencode=preset.name if preset else None,
    )


def _kit_settings(settings: SyncSettings) -> PackageSettings:
    """The kit re-encodes (with ``--transcode``) past the same cap and budget the download
    chose under; the versions it shows are the current ones, which that choice fetched."""
    return dataclasses.replace(
        settings.package,
        max_height=settings.download.max_height,
        fit=settings.fit if settings.package.transcode else None,
        fit_versions=False,
    )


def plan_sync(
    paths: Sequence[Path],
    archive_root: Path,
    *,
    settings: SyncSettings = SyncSettings(),
) -> list[str]:
    """What ``--fit``/``--max-height`` would fetch: one line per video and the total.

    Asks the PeerTube API (at most once per refresh period); downloads nothing.
    """
    manifest = build_manifest(paths or [default_collection()])
    with Archive(archive_root) as archive, archive.locked():
        choices = _choose(manifest, archive, settings)
    titles = {entry.id: entry.title for entry in manifest.entries}
    if choices.fit is not None:
        return choices.fit.lines(titles)
    kit = _kit_settings(settings)
    cap = kit.reencode_cap
    lines = []
    for entry in manifest.entries:
        choice = choices.files.get(entry.id)
        if choice is None:
            line = f"{entry.title} ({entry.id}): the fiche's link (no size known)"
            if kit.transcode is not None:
                line += f"; re-encoded to {kit.transcode.name} for the kit if taller than {cap}p"
        else:
            line = f"{entry.title} ({entry.id}): {choice.resolution}p, {format_bytes(choice.size)}"
            if kit.transcode is not None and cap is not None and choice.resolution > cap:
                line += f"; none offered at most {cap}p: re-encoded to {kit.transcode.name}"
        lines.append(line)
    return lines


def _log(stream: IO[str], report: SyncReport, failures: list[Outcome]) -> None:
    """One JSON line per file (held, fetched, changed, failed) and per retired item."""
    at = utc_now()
    failed = {(o.job.entry.id, o.job.role): o for o in failures}
    for outcome in report.download.outcomes:
        key = (outcome.job.entry.id, outcome.job.role)
        outcome = failed.pop(key, outcome)
        _event(stream, at, outcome.status.value, outcome)
    for outcome in failed.values():  # left out of the kit for a reason of its own
        _event(stream, at, "failed", outcome)
    for item_id, title in report.retired:
        stream.write(
            json.dumps(
                {"at": at, "event": "retired", "item": item_id, "title": title}, ensure_ascii=False
            )
            + "\n"
        )
    stream.flush()


def _event(stream: IO[str], at: str, event: str, outcome: Outcome) -> None:
    record = {
        "at": at,
        "event": event,
        "item": outcome.job.entry.id,
        "title": outcome.job.entry.title,
        "role": outcome.job.role,
        "url": outcome.job.url,
        "bytes": outcome.bytes_fetched,
        "seconds": round(outcome.seconds, 3),
    }
    if outcome.reason:
        record["reason"] = outcome.reason
    stream.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
