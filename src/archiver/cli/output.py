"""Every line the CLI prints: closing summaries, failure lines, status, plans and dry runs.

The core returns data; this module alone turns it into words for a terminal or a log.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..fetch import Status
from ..units import format_bytes, format_duration

if TYPE_CHECKING:  # types only: a download's lines need not import the kit or sync
    from ..choose import FitPlan
    from ..fetch import DownloadReport, Outcome
    from ..kit import KitReport
    from ..sync import PlannedVideo, SyncReport

__all__ = [
    "download_summary",
    "failure_line",
    "fit_plan_lines",
    "for_terminal",
    "interrupted_line",
    "item_lines",
    "kit_summary",
    "optional_failure_lines",
    "planned_lines",
    "status_lines",
    "sync_item_lines",
    "sync_summary",
]


# C0 and C1 control characters but the line feed and the tab: an ESC in a fiche's title or a
# file name would otherwise drive the terminal (clear it, retitle it, hide text).
# Also the line and paragraph separators, and the marks that reverse the direction of text
# (U+202E shows "fdp.exe" as "exe.pdf"): no printed line may read otherwise than it is.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u2028-\u202e\u2066-\u2069]")
# ``scheme://user:password@host``: credentials a user put in a URL are never printed.
_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]*@")


def for_terminal(text: str, *, one_line: bool = False) -> str:
    r"""``text`` safe to print: control characters shown escaped, credentials in URLs hidden.

    Every line the CLI prints goes through here, whatever it comes from (a title, a file
    name, a server's reason phrase, an exception's message); ``one_line`` escapes line feeds
    too, for a message that must stay one line (an error).

    >>> print(for_terminal("Vid\x1b[2Jéo https://ann:s3cret@tube.example/v.mp4"))
    Vid\x1b[2Jéo https://***@tube.example/v.mp4
    """
    text = _CREDENTIALS.sub(r"\1***@", text)
    text = _CONTROL.sub(_escape, text)
    return text.replace("\n", "\\n") if one_line else text


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def failure_line(outcome: Outcome) -> str:
    """``"Title" (id, role): URL: reason`` for an item that failed."""
    job = outcome.job
    where = f"{job.url}: " if job.url else ""
    return f"{job.entry.title} ({job.entry.id}, {job.role}): {where}{outcome.reason}"


def optional_failure_lines(report: DownloadReport) -> list[str]:
    """The optional files (a preview, captions) that failed: not a failure of the run, but
    each is named, since its bytes may be waiting in ``quarantine/`` for a person to look."""
    return [
        f"{failure_line(o)} (optional: the kit goes without it)"
        for o in report.outcomes
        if o.status is Status.FAILED and o.job.optional
    ]


def _count(number: int, noun: str) -> str:
    """``1 video``, ``17 videos``: a count a person reads without a "(s)"."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _videos(outcomes: Iterable[Outcome]) -> str:
    """``17 videos (2 failed)``: the videos the files belong to, and those that failed (a
    video fails when any of its files but an optional one does)."""
    videos: set[str] = set()
    failed: set[str] = set()
    for outcome in outcomes:
        videos.add(outcome.job.entry.id)
        if outcome.status is Status.FAILED and not outcome.job.optional:
            failed.add(outcome.job.entry.id)
    return _count(len(videos), "video") + (f" ({len(failed)} failed)" if failed else "")


def download_summary(report: DownloadReport) -> str:
    """One line: the videos, then their files: fetched, changed, held and failed, with bytes
    and time. Videos and files are counted apart (a video is a video file and its companions:
    "17 videos; 40 held" would leave the reader to guess)."""
    seconds = max(report.seconds, 1e-3)
    return (
        f"Download: {_videos(report.outcomes)}, {_count(len(report.outcomes), 'file')}:"
        f" {report.count(Status.FETCHED)} downloaded, {report.count(Status.CHANGED)} changed,"
        f" {report.count(Status.HELD)} already held, {report.count(Status.FAILED)} failed;"
        f" {format_bytes(report.bytes_fetched)} at {format_bytes(report.bytes_fetched / seconds)}/s"
        f" in {format_duration(report.seconds)}"
    )


def kit_summary(report: KitReport) -> str:
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
    """One line for a sync: the collection's videos (failed, retired), then their files
    (fetched, changed, held, failed), then the kit; videos and files never share a count."""
    counts = report.download
    failed = {o.job.entry.id for o in report.failures() if not o.job.optional}
    videos = _count(len(report.manifest.entries), "video")
    if failed:
        videos += f" ({len(failed)} failed)"
    if report.retired:
        videos += f", {len(report.retired)} retired"
    kit = (
        "kit not updated (--max-time)"
        if report.kit_skipped
        else f"kit: {_count(report.kit.items, 'video')}, {report.kit.written} files written"
    )
    return (
        f"Sync: {videos}; {_count(len(counts.outcomes), 'file')}:"
        f" {counts.count(Status.FETCHED)} fetched, {counts.count(Status.CHANGED)} changed,"
        f" {counts.count(Status.HELD)} held, {counts.count(Status.FAILED)} failed"
        f" ({format_bytes(counts.bytes_fetched)}); {kit}; in {format_duration(report.seconds)}"
    )


# The width of the outcome column of ``-v``, as ``rsync --itemize-changes`` keeps its codes
# in one column so that a person (or ``grep ^failed``) reads down it.
_OUTCOME_WIDTH = len("unchanged")


def item_lines(report: DownloadReport) -> list[str]:
    """``-v``: one line a file, its outcome first (``fetched``, ``changed``, ``unchanged``,
    ``kept``, ``failed``), then the file, then the detail; what ``rsync --itemize-changes``
    does for a tree. ``unchanged``: upstream was asked and said so; ``kept``: held, and not
    due for a check (``--refresh-after``), nothing asked."""
    return [_item_line(outcome) for outcome in report.outcomes]


def _item_line(outcome: Outcome) -> str:
    job = outcome.job
    if outcome.status is Status.FETCHED:
        word, detail = "fetched", format_bytes(outcome.bytes_fetched)
    elif outcome.status is Status.CHANGED:
        word = "changed"
        detail = f"{format_bytes(outcome.bytes_fetched)}, a new version (the old one is kept)"
    elif outcome.status is Status.HELD and job.revalidate is not None:
        word, detail = "unchanged", "upstream says it has not changed"
    elif outcome.status is Status.HELD:
        word, detail = "kept", "held, not due for a check upstream"
    else:
        word = "failed"
        where = f"{job.url}: " if job.url else ""
        detail = f"{where}{outcome.reason}"
        if job.revalidate is not None:
            detail += "; the version held is kept"
        if job.optional:
            detail += " (optional: the kit goes without it)"
    return f"{word:<{_OUTCOME_WIDTH}} {job.entry.title} ({job.entry.id}, {job.role}): {detail}"


def sync_item_lines(report: SyncReport) -> list[str]:
    """``sync -v``: every file's line (:func:`item_lines`), then each video the kit left
    out though its files were fetched, and each video retired from the collection."""
    lines = item_lines(report.download)
    failed = {o.job.entry.id for o in report.download.outcomes if o.status is Status.FAILED}
    lines.extend(
        f"{'failed':<{_OUTCOME_WIDTH}} {entry.title} ({entry.id}): not in the kit: {reason}"
        for entry, reason in report.kit.left_out
        if entry.id not in failed
    )
    lines.extend(
        f"{'retired':<{_OUTCOME_WIDTH}} {title} ({item}): its fiche left the collection;"
        " the archive keeps its files"
        for item, title in report.retired
    )
    return lines


def fit_plan_lines(plan: FitPlan, titles: Mapping[str, str]) -> list[str]:
    """``--fit --dry-run``: each video's resolution and size, the total, what is over."""
    rows = [
        f"{titles.get(item, item)} ({item}): {r.height}p, {format_bytes(r.size)}"
        for item, r in plan.choices
    ]
    rows.append(
        f"Total: {format_bytes(plan.total)} of {format_bytes(plan.budget)},"
        f" {format_bytes(plan.margin)} kept for the file system"
        f" (pages, posters and checksums: {format_bytes(plan.overhead - plan.margin)})"
    )
    if not plan.fits:
        rows.append(
            f"Over by {format_bytes(plan.total - plan.budget)} at the lowest resolutions:"
            f" the largest videos will be re-encoded to {plan.reencode}, one at a time, until"
            " the kit fits (a re-encoded size is known only once it is made)"
        )
    return rows


def planned_lines(planned: list[PlannedVideo]) -> list[str]:
    """``--max-height``/``--transcode --dry-run``: one line a video."""
    lines = []
    for video in planned:
        head = f"{video.title} ({video.entry_id}): "
        if video.resolution is None or video.size is None:
            line = head + "the fiche's link (no size known)"
            if video.reencode is not None:
                line += f"; re-encoded to {video.reencode} for the kit if taller than {video.cap}p"
        else:
            line = head + f"{video.resolution}p, {format_bytes(video.size)}"
            if video.reencode is not None:
                line += f"; none offered at most {video.cap}p: re-encoded to {video.reencode}"
        lines.append(line)
    return lines


_COUNTS = ("fetched", "changed", "held", "failed", "retired")


def status_lines(status: Mapping[str, Any]) -> list[str]:
    """``archiver status`` for a person."""
    items, files, audit = status["items"], status["files"], status["audit"]
    lines = [
        f"Archive: {status['archive']}",
        f"Items: {items['active']} in the collection, {items['retired']} retired",
        f"Files: {files['current']} current ({format_bytes(files['current_bytes'])}),"
        f" {files['versions']} versions in all ({format_bytes(files['all_bytes'])}),"
        f" stored once each: {format_bytes(files['stored_bytes'])}",
    ]
    for label, key in (("Last sync", "last_sync"), ("Last run", "last_run")):
        run = status[key]
        if run is None:
            lines.append(f"{label}: never")
            continue
        counts = run["summary"] or {}
        detail = ", ".join(f"{counts[k]} {k}" for k in _COUNTS if k in counts)
        outcome = run["outcome"]
        if outcome == "running" and run.get("pid"):
            outcome = f"running now (PID {run['pid']})"
        lines.append(
            f"{label}: {run['command']} started {run['started_at']}, {outcome}"
            + (f" ({detail})" if detail else "")
        )
    if status["failures"]:
        lines.append(f"Failures in the last run: {len(status['failures'])}")
        lines.extend(
            f"  {f['title'] or f['item']} ({f['item']}, {f['role']}): {f['reason']}"
            for f in status["failures"]
        )
    lines.append(
        f"Audit: {audit['due']} file(s) due (never audited: {audit['never_audited']};"
        f" every {audit['due_after_days']} days), last audit {audit['last_audit'] or 'never'}"
    )
    return lines


# What Ctrl-C leaves, said per command: every write goes through a temporary name, a
# transaction or a kit's staging, so what a person needs to know is what the next run does.
_INTERRUPTED = {
    "download": "the download stopped; files under way keep their partial, and the next run"
    " resumes them",
    "sync": "the sync stopped; files under way keep their partial, and the next run resumes them",
    "package": "the kit was not finished; the same command completes it",
    "verify": "the check stopped before the end; nothing was changed",
}


def interrupted_line(command: str | None) -> str:
    """The one line after Ctrl-C: which command stopped, and what it leaves."""
    what = _INTERRUPTED.get(command or "")
    return f"Interrupted: {what}" if what else f"Interrupted: archiver {command or ''} stopped"
