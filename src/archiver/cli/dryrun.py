"""What ``--dry-run`` prints: each video's files, what a run would do with them, and totals.

Videos are listed by title as a French reader looks for them, in the kit catalogue's order
("Créer" before "Différencier" before "Évaluer"), then by id. Sizes a run would fetch come
from the PeerTube API or from ``HEAD``; one no server said is "size unknown", never 0.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..units import format_bytes
from .output import fit_plan_lines, planned_lines

if TYPE_CHECKING:  # names of annotations: the command line imports no sync, no HTTP client
    from ..fetch import PlannedFile, Preview
    from ..sync import PlannedVideo

__all__ = ["dry_run_lines"]


def _sized(file: PlannedFile) -> str:
    size = "size unknown" if file.size is None else format_bytes(file.size)
    return f"{_name(file)} ({size})"


def _name(file: PlannedFile) -> str:
    return file.job.name or file.job.role


def _video_line(files: Sequence[PlannedFile]) -> str:
    entry = files[0].job.entry
    parts = []
    from ..fetch.preview import Action  # a dry run's: it asked the network already

    by = {action: [f for f in files if f.action is action] for action in Action}
    if by[Action.FETCH]:
        parts.append("fetch " + ", ".join(_sized(f) for f in by[Action.FETCH]))
    if by[Action.CHECK]:
        parts.append("check for a change " + ", ".join(_name(f) for f in by[Action.CHECK]))
    if by[Action.HELD]:
        parts.append("held " + ", ".join(_name(f) for f in by[Action.HELD]))
    parts.extend(f"fails {_name(f)}: {f.reason}" for f in by[Action.FAILED])
    return f"{entry.title} ({entry.id}): {'; '.join(parts)}"


def _count(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def dry_run_lines(
    found: Preview,
    planned: Sequence[PlannedVideo] = (),
    *,
    renditions: bool = False,
    kit: Path | None = None,
    retired: Sequence[tuple[str, str]] = (),
) -> list[str]:
    """Every line of a dry run: with ``renditions`` (``--fit``, ``--max-height``,
    ``--transcode``), each video's planned rendition first; then each video's files; the
    hosts a run would not reach; the totals; and, for a sync, what the ``kit`` would show."""
    from ..fetch.preview import Action  # a dry run's: it asked the network already
    from ..kit.pages import collation_key  # the kit's order of titles; the kit only here

    titles = {video.entry_id: video.title for video in planned}
    lines: list[str] = []
    if renditions:
        fit = found.choices.fit
        if fit is not None:
            order = sorted(fit.choices, key=lambda c: (collation_key(titles.get(c[0], c[0])), c[0]))
            lines += fit_plan_lines(dataclasses.replace(fit, choices=tuple(order)), titles)
        else:
            lines += planned_lines(
                sorted(planned, key=lambda v: (collation_key(v.title), v.entry_id))
            )
    videos: dict[str, list[PlannedFile]] = {}
    for file in found.files:
        videos.setdefault(file.job.entry.id, []).append(file)
    for files in sorted(
        videos.values(), key=lambda f: (collation_key(f[0].job.entry.title), f[0].job.entry.id)
    ):
        lines.append(_video_line(files))
    for item, title in sorted(retired, key=lambda pair: (collation_key(pair[1]), pair[0])):
        lines.append(
            f"{title} ({item}): no longer in the collection, would"
            " be retired (it leaves the kit; its files stay in the archive until prune)"
        )
    for down in found.hosts_down.values():
        lines.append(f"{down.reason}: its files' sizes are unknown, and a run would not reach it")
    fetch, unsized = found.of(Action.FETCH), found.unsized(Action.FETCH)
    unknown = f", {unsized} of unknown size" if unsized else ""
    lines.append(
        f"Dry run: {_count(found.videos, 'video')}; fetch {_count(len(fetch), 'file')}"
        f" ({format_bytes(found.bytes(Action.FETCH))}{unknown}),"
        f" check {len(found.of(Action.CHECK))} for a change, {len(found.of(Action.HELD))} held,"
        f" {len(found.of(Action.FAILED))} failing; nothing fetched, nothing written"
    )
    if kit is not None:
        shown = {
            f.job.entry.id
            for f in found.files
            if f.job.role == "video" and f.action is not Action.FAILED
        }
        gone = f", {len(retired)} retired" if retired else ""
        lines.append(f"Kit {kit}: would show {len(shown)} of {_count(found.videos, 'video')}{gone}")
    return lines
