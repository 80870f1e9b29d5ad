"""Lines the CLI prints: closing summaries and failure lines."""

from __future__ import annotations

from .download import DownloadReport, Outcome, Status
from .package import PackageReport
from .sync import SyncReport
from .units import format_bytes, format_duration

__all__ = ["download_summary", "failure_line", "package_summary", "sync_summary"]


def failure_line(outcome: Outcome) -> str:
    """``"Title" (id, role): URL: reason`` for an item that failed."""
    job = outcome.job
    where = f"{job.url}: " if job.url else ""
    return f"{job.entry.title} ({job.entry.id}, {job.role}): {where}{outcome.reason}"


def download_summary(report: DownloadReport) -> str:
    """One line: what was fetched, held and failed, with bytes and time."""
    fetched = report.count(Status.FETCHED)
    seconds = max(report.seconds, 1e-3)
    parts = [
        f"{fetched} downloaded ({format_bytes(report.bytes_fetched)}"
        f" at {format_bytes(report.bytes_fetched / seconds)}/s)",
        f"{report.count(Status.HELD)} already held",
        f"{report.count(Status.FAILED)} failed",
    ]
    return f"Download: {', '.join(parts)} in {format_duration(report.seconds)}"


def package_summary(report: PackageReport) -> str:
    """One line: how many videos the kit holds and what the update wrote."""
    changes = [f"{report.written} files written ({format_bytes(report.bytes_written)})"]
    if report.linked:
        changes.append(f"{report.linked} hard-linked")
    changes.append(f"{report.removed} removed")
    changes.append(f"{report.unchanged} unchanged")
    if report.reencoded:
        changes.append(f"{report.reencoded} video{'s' if report.reencoded != 1 else ''} re-encoded")
    videos = "video" if report.items == 1 else "videos"
    return (
        f"Kit: {report.items} {videos} in {report.kit}; {', '.join(changes)};"
        f" {len(report.left_out)} left out, in {format_duration(report.seconds)}"
    )


def sync_summary(report: SyncReport) -> str:
    """One line for a sync: what was fetched, changed, held, failed, retired; the kit."""
    counts = report.download
    failed = len(report.failures())
    count = len(report.manifest.entries)
    return (
        f"Sync: {count} video{'s' if count != 1 else ''}; {counts.count(Status.FETCHED)} fetched,"
        f" {counts.count(Status.CHANGED)} changed, {counts.count(Status.HELD)} held,"
        f" {failed} failed, {len(report.retired)} retired"
        f" ({format_bytes(counts.bytes_fetched)}); kit: {report.kit.items} video"
        f"{'s' if report.kit.items != 1 else ''},"
        f" {report.kit.written} files written; in {format_duration(report.seconds)}"
    )
