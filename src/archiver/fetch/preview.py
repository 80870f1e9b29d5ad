"""A dry run (``--dry-run``): what a run would fetch, check and keep, changing nothing.

It asks what a run asks before its first byte of media (each instance's API, and ``HEAD``
for the sizes no API gives: :mod:`.sizes`), plans as a run plans (:func:`.plan.plan`), and
stops there: no file is fetched, the API's answers are not kept, the archive is read but
never written (no lock taken: its PID would change the lock file; no view made again; a
missing archive is not created). Reading needs no lock: the catalog is SQLite, whose readers
see whole transactions only.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..archive import Archive
from ..archive_paths import CATALOG_NAME
from ..manifest_reader import Manifest
from .describe import PEERTUBE_CACHE, choose_for
from .hosts import Down, Hosts, track
from .http import DEFAULT_SETTINGS, DownloadSettings, open_client
from .plan import Choices, Job, Outcome, Status, plan
from .renditions import planned_sizes
from .sizes import head_sizes

__all__ = ["NOT_HELD_OFFLINE", "Action", "PlannedFile", "Preview", "preview", "retiring"]

NOT_HELD_OFFLINE = "not held, and --offline"  # as an offline sync says it


class Action(enum.Enum):
    """What a run would do with one file."""

    FETCH = "fetch"  # not held (or not this rendition): fetched
    CHECK = "check"  # held, and due: upstream asked whether it changed (a new version if so)
    HELD = "held"  # held, not due: nothing asked
    FAILED = "failed"  # cannot be fetched (a video its instance refuses, no download link)


@dataclass(frozen=True)
class PlannedFile:
    """One file of a dry run: what would be done, its size (the bytes a fetch would bring,
    or the held version's; None: unknown), why it would fail."""

    job: Job
    action: Action
    size: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Preview:
    """What a run would do, file by file, and what the instances said (the ``--fit`` plan)."""

    files: tuple[PlannedFile, ...]
    choices: Choices
    hosts_down: Mapping[str, Down] = field(default_factory=dict)

    def of(self, action: Action) -> list[PlannedFile]:
        return [f for f in self.files if f.action is action]

    def bytes(self, action: Action) -> int:
        """The known bytes of the files with ``action``."""
        return sum(f.size or 0 for f in self.of(action))

    def unsized(self, action: Action) -> int:
        """How many files with ``action`` have no known size."""
        return sum(1 for f in self.of(action) if f.size is None)

    @property
    def videos(self) -> int:
        return len({f.job.entry.id for f in self.files})


def open_for_reading(root: Path) -> Archive | None:
    """The archive at ``root`` when there is one, else ``None`` (none is created); opened
    read-only, so that a dry run neither needs nor uses the right to write it."""
    return Archive.existing(root, read_only=True) if (root / CATALOG_NAME).is_file() else None


def retiring(archive_root: Path, present: set[str]) -> list[tuple[str, str]]:
    """The items a sync of a collection of ``present`` ids would retire: ``[(id, title)]``
    of those the archive holds as active and the collection no longer has (none without an
    archive). Reads only."""
    archive = open_for_reading(archive_root)
    if archive is None:
        return []
    with archive:
        return [(i, t) for i, t in archive.catalog.active_items() if i not in present]


def preview(
    manifest: Manifest,
    archive_root: Path,
    *,
    settings: DownloadSettings = DEFAULT_SETTINGS,
    refresh_after: float | None = None,
    budget: int | None = None,
    reencode: str | None = None,
    offline: bool = False,
) -> Preview:
    """What :func:`archiver.fetch.fetch_into` would do with ``manifest``, doing none of it;
    ``offline`` (``sync --offline``): with no request at all, what the archive holds."""
    from .run import _run  # the package's runner: one event loop, also under a running one

    archive = open_for_reading(archive_root)
    try:
        if offline:
            return _held_only(manifest, archive)
        return _run(
            _preview(manifest, archive, archive_root, settings, refresh_after, budget, reencode)
        )
    finally:
        if archive is not None:
            archive.close()


def _held_only(manifest: Manifest, archive: Archive | None) -> Preview:
    """An offline run's files: those held are used, the others fail (nothing is asked)."""
    todo, settled = plan(manifest, archive, show=False)
    files = [_settled(outcome) for outcome in settled]
    files.extend(PlannedFile(job, Action.FAILED, reason=NOT_HELD_OFFLINE) for job in todo)
    return Preview(files=tuple(files), choices=Choices(files={}, infos={}))


def _settled(outcome: Outcome) -> PlannedFile:
    if outcome.status is Status.FAILED:
        return PlannedFile(outcome.job, Action.FAILED, reason=outcome.reason)
    size = outcome.record.size if outcome.record is not None else None
    return PlannedFile(outcome.job, Action.HELD, size)


async def _preview(
    manifest: Manifest,
    archive: Archive | None,
    root: Path,
    settings: DownloadSettings,
    refresh_after: float | None,
    budget: int | None,
    reencode: str | None,
) -> Preview:
    hosts = Hosts()
    async with track(await open_client(settings), hosts) as client:
        choices = await choose_for(
            client,
            manifest,
            archive,
            root / PEERTUBE_CACHE,
            settings,
            refresh_after=refresh_after,
            budget=budget,
            reencode=reencode,
            keep=False,
            hosts=hosts,
        )
        todo, settled = plan(
            manifest,
            archive,
            refresh_after=refresh_after,
            choices=choices.files,
            infos=choices.infos,
            failed=choices.failed,
            show=False,
            unreachable=choices.unreachable,
        )
        sizes = planned_sizes(choices)  # --fit sized each video: not asked twice
        unsized = [
            j.url
            for j in todo
            if j.revalidate is None and j.known_size is None and j.url not in sizes
        ]
        sizes.update(await head_sizes(client, unsized, settings))
    files = [_settled(outcome) for outcome in settled]
    for job in todo:
        if job.revalidate is not None:
            files.append(PlannedFile(job, Action.CHECK, job.revalidate.size))
        else:
            size = job.known_size if job.known_size is not None else sizes.get(job.url)
            files.append(PlannedFile(job, Action.FETCH, size))
    return Preview(files=tuple(files), choices=choices, hosts_down=hosts.given_up)
