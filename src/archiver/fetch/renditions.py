"""Each video's file, chosen among those its PeerTube instance offers: ``--max-height``, ``--fit``.

What the instances said of each video (:mod:`.describe`) is turned here into the file a run
fetches, or the reason it fetches none, and the sizes ``--fit`` planned each file at, by the
rules of :mod:`archiver.choose`. :mod:`.plan` then names each entry's files and says which the
archive holds.

Apart from :mod:`.plan` because it is the step before it, and because only a run uses it:
every command imports :mod:`.plan` (through :mod:`archiver.fetch`, for the records a report
is made of), and none of this need load with it (issue 14). :class:`.plan.Choices`, what
:func:`choose` returns, stays there with those records.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..entry import Entry
from ..errors import UsageError
from ..links import height_in_link
from ..manifest_reader import Manifest
from .plan import Choices

if TYPE_CHECKING:
    from ..choose import Rendition
    from .hosts import Down
    from .video_info import Unavailable, VideoFile, VideoInfo

log = logging.getLogger(__name__)

__all__ = ["choose", "planned_sizes"]


def choose(
    manifest: Manifest,
    described: Mapping[str, VideoInfo | Unavailable],
    *,
    max_height: int | None,
    budget: int | None,
    reencode: str | None,
    link_sizes: Mapping[str, Rendition] | None = None,
    unreachable: Mapping[str, Down] | None = None,
) -> Choices:
    """Each video's file among those its instance ``described`` (``--max-height``, ``--fit``).

    A video the instance refuses (private, password, unknown, a live, not published) is not
    fetched: it fails with the instance's reason. One it could not describe (its API down or
    rate limited past its retries) keeps its fiche's link, but under a cap only when the link's
    file name says a height within it, and under a budget never: a run is never over the cap
    nor over the key for want of an answer. A video whose sound is stored apart counts its
    sound file's size with each of its renditions.

    ``link_sizes``: for ``--fit``, the size of the fiche's own link of each video its instance
    did not describe (a HEAD request's, else the archive's): that video keeps its link, at
    that size, as its one rendition. A video with no size from anywhere is refused, named,
    but for one whose host is given up on for the run (``unreachable``): it fails as the
    host's other files do, and the kit is made of what the archive holds.
    """
    from ..choose import best_under, kit_margin, kit_overhead, plan_fit
    from .video_info import Unavailable, VideoInfo  # what the API said: only a run reads it

    link_sizes = link_sizes or {}
    infos: dict[str, VideoInfo] = {}
    failed: dict[str, str] = {}
    hosts: dict[str, str] = {}
    for entry in manifest.entries:
        answer = described.get(entry.id)
        down = (unreachable or {}).get(entry.id)
        if down is not None and not isinstance(answer, VideoInfo):
            failed[entry.id] = f"{down.reason}: not tried again this run"
            hosts[entry.id] = down.host
        elif isinstance(answer, VideoInfo):
            if answer.problem:
                failed[entry.id] = answer.problem
            else:
                infos[entry.id] = answer
        elif isinstance(answer, Unavailable):
            sized = not answer.refused and entry.id in link_sizes
            problem = _without_answer(entry, answer, max_height, None if sized else budget)
            if problem:
                failed[entry.id] = problem
    described_ok = dict(infos)
    if budget is None and max_height is None:
        return Choices(files={}, infos=described_ok, failed=failed, unreachable=hosts)
    by_url = {f.url: f for info in infos.values() for f in info.files}
    if budget is None:
        files = {}
        for item, info in infos.items():
            best = best_under([f.rendition for f in info.files], max_height)
            if best is not None:
                files[item] = by_url[best.key]
        return Choices(files=files, infos=described_ok, failed=failed, unreachable=hosts)
    options: dict[str, list[Rendition]] = {
        item: [
            dataclasses.replace(f.rendition, size=f.size + _sound_size(info, f))
            for f in info.files
            if max_height is None or f.resolution <= max_height
        ]
        for item, info in infos.items()
    }
    for entry in manifest.entries:
        if entry.id not in infos and entry.id not in failed and entry.id in link_sizes:
            options[entry.id] = [link_sizes[entry.id]]
    unknown = [e for e in manifest.entries if not options.get(e.id) and e.id not in failed]
    if unknown:
        names = ", ".join(f"{e.title} ({e.id})" for e in unknown)
        raise UsageError(
            "--fit needs each video's size (from its PeerTube instance, a HEAD request or"
            f" the archive); none for: {names}",
            hint="check the fiche's download link, or leave the video out of the collection",
        )
    overhead = kit_overhead(len(manifest.entries))
    margin = kit_margin(len(manifest.entries))  # the same share the kit's final check keeps
    fit = plan_fit(options, budget=budget, overhead=overhead, reencode=reencode, margin=margin)
    files = {item: by_url[rendition.key] for item, rendition in fit.choices if item in infos}
    return Choices(files=files, infos=described_ok, fit=fit, failed=failed, unreachable=hosts)


def planned_sizes(choices: Choices) -> dict[str, int]:
    """The size ``--fit`` planned each chosen file at, by URL (a fiche's link sized by HEAD
    or the archive included); empty without a budget."""
    fit = choices.fit
    return {r.key: r.size for _, r in fit.choices} if fit is not None else {}


def _sound_size(info: VideoInfo, chosen: VideoFile) -> int:
    sound = info.sound_for(chosen)
    return sound.size if sound is not None else 0


def _without_answer(
    entry: Entry, answer: Unavailable, max_height: int | None, budget: int | None
) -> str | None:
    """Why a video the instance did not describe is not fetched, or ``None`` to fetch its
    fiche's link."""
    if answer.refused:
        return answer.reason
    if budget is not None:
        return f"{answer.reason}; --fit needs its size, so it is left out"
    if max_height is None:
        # A host that is no PeerTube instance (a mirror, a plain web server) is no news.
        say = log.warning if answer.instance and not answer.unreachable else log.info
        say("%s (%s): %s; using the fiche's link", entry.title, entry.id, answer.reason)
        return None
    height = height_in_link(urlsplit(entry.video.url).path) if entry.video.url else None
    if height is not None and height <= max_height:
        log.warning(
            "%s (%s): %s; the fiche's link is %sp, within --max-height: using it",
            entry.title,
            entry.id,
            answer.reason,
            height,
        )
        return None
    said = f"{height}p" if height is not None else "of unknown height"
    return f"{answer.reason}; the fiche's link is {said}, not within --max-height {max_height}"
