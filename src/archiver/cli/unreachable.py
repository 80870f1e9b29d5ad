"""The failure lines of a run: each file once, but a host given up on once for all its files.

A dead line used to print one line per file, each naming the same host: with a collection of
seventeen videos, seventeen lines saying one thing. A host the run gave up on
(:mod:`archiver.fetch.hosts`) is said in one line, with how many videos it left unchecked; its
files stay named one by one in ``archiver status``, the catalog and ``--log-file``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ..fetch import DownloadReport, Outcome
from .output import failure_line

__all__ = ["failure_lines", "reachable"]


def failure_lines(
    failures: Sequence[Outcome], report: DownloadReport, *, then: str = ""
) -> list[str]:
    """One line per host given up on (``then``: what the run does about it, said after the
    count), then one per other failed file. A host's line reads ``127.0.0.1:9 unreachable
    (connection refused, 3 connections in a row): 10 videos not checked; the kit is built
    from what the archive holds``; its videos are those with any file on it, optional ones
    (a preview, captions) included.
    """
    down = report.unreachable()
    lines: list[str] = []
    for gone, outcomes in down.values():
        videos = len({o.job.entry.id for o in outcomes})
        noun = "video" if videos == 1 else "videos"
        lines.append(f"{gone.reason}: {videos} {noun} not checked{then}")
    lines.extend(failure_line(f) for f in failures if f.unreachable not in down)
    return lines


def reachable(report: DownloadReport) -> DownloadReport:
    """``report`` without the files of hosts given up on: those are said once, for the host,
    not again among the optional files that failed."""
    down = report.unreachable()
    kept = tuple(o for o in report.outcomes if o.unreachable not in down)
    return dataclasses.replace(report, outcomes=kept)
