"""Fetch every file of a manifest into the archive: ask PeerTube, choose, plan, then run.

One run is one event loop (``asyncio.run``) and one HTTP client: the instance's API is asked
about every video, each video's rendition is chosen (:mod:`archiver.choose`), the files to
fetch are planned (:mod:`.plan`, pure), then fetched concurrently (:mod:`.fetcher`) in a task
group. Blocking work (hashing, fsync, the catalog's transactions) runs in worker threads, so
that no callback holds the loop for long.

A run may have a deadline (``--max-time``, for cron): once it passes, no file starts and the
transfers in flight are cancelled, their partial files kept for the next run to resume; each
file not done fails with :data:`MAX_TIME_REACHED`.

    run.py        a run: one event loop, one client; download, fetch_into
    settings.py   a run's settings and the measurements behind their defaults
    plan.py       what to fetch: jobs, the held, the due; the records of a run
    renditions.py each video's file among those its instance offers: --max-height, --fit
    fetcher.py    one file: resume, answers, retries
    answers.py    where a request resumes; what its answer's status and headers decide
    finish.py     a whole file checked (pins, sniffing, MP4, segment checksums), then committed
    warm.py       a far file's other connections opened while its first answer comes
    tls.py        the CA certificates, loaded only for https
    split.py      one file over several connections: how many, which part each, work stealing
    ranged.py     a part of such a file: its If-Range requests, their answers checked, retries
    segments.py   the parts of such a file, its partial file and its sidecar
    transfer.py   what one transfer leans on: retry budget, sink, minimum rate, room, slots
    http.py       the client, validators, error words
    net.py        the sockets under httpx: one recv a read, TLS over memory buffers
    ahead.py      a download's first connections, opened while the command starts
    bodies.py     h11's body bytes handed on, not copied
    hosts.py      hosts given up on for the run: connection failures in a row, said once
    describe.py   the first phase: each instance asked, each video's file chosen
    sizes.py      sizes before any byte: HEAD, for what no API sizes
    preview.py    a dry run: what a run would fetch and check, asking only APIs and HEAD
    peertube.py   the PeerTube API client: a video asked of its instance, its segment checksums
    api.py        asking the API: rate limit, pace, capped answers, the answers' cache
    video_info.py what an instance says of a video, read: files, captions, states (no httpx)
    throttle.py   the bandwidth cap shared by every download
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..lazy import lazy_dir, lazy_names
from ..urls import redact
from .plan import Choices, Job, Outcome, Status, jobs_for, video_failure
from .settings import DEFAULT_SETTINGS, DownloadSettings

if TYPE_CHECKING:
    from ..archive import Archive
    from .hosts import Down
    from .preview import Action, PlannedFile, Preview
    from .run import _run as _run
    from .run import download, download_all, fetch_into

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
    "record_report",
    "video_failure",
]

MAX_TIME_REACHED = "not fetched: the run's --max-time was reached"

# What runs a download, and what asks a server, needs httpx and asyncio (0.15-0.2 s at every
# start): imported when first asked for (PEP 562), so that a command that only reads a
# report, or its settings, does without them (a sync replaying its seal, ``status``,
# ``manifest``). tests/test_startup.py checks it. A dry run's ``preview`` is not among them:
# its name is its module's, which an import of that module would put in the package's place.
_LAZY = {
    "Action": "preview",
    "Down": "hosts",
    "PlannedFile": "preview",
    "Preview": "preview",
    "_run": "run",
    "download": "run",
    "download_all": "run",
    "fetch_into": "run",
}


__getattr__ = lazy_names(__name__, _LAZY, globals())
__dir__ = lazy_dir(_LAZY, globals())


def deadline_of(max_time: float | None, start: float | None = None) -> float | None:
    """The :func:`time.monotonic` instant ``max_time`` seconds after ``start`` (now by
    default): the run's deadline, or ``None`` when it has none."""
    if max_time is None:
        return None
    return (time.monotonic() if start is None else start) + max_time


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


def record_report(archive: Archive, run_id: int, failures: Sequence[Outcome]) -> None:
    """Note a run's failures in the catalog, for ``archiver status``: URLs without the
    passwords they may carry."""
    archive.record_failures(
        run_id,
        [(o.job.entry.id, o.job.role, redact(o.job.url), o.reason or "") for o in failures],
    )
