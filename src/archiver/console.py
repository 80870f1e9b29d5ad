"""Lines the CLI prints: closing summaries and failure lines."""

from __future__ import annotations

from .download import DownloadReport, Outcome, Status
from .units import format_bytes, format_duration

__all__ = ["download_summary", "failure_line"]


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
