"""A run's first phase: what each video's instance says of it, and the file chosen for it.

Each PeerTube instance is asked about its videos (several at once, within its API rate limit),
then each video's rendition is chosen (:func:`.renditions.choose`: ``--max-height``, ``--fit``).
For ``--fit``, a video its instance does not describe (a fiche with no PeerTube UUID, an API
that cannot answer) is sized by its fiche's link: what its server answers to ``HEAD``
(:mod:`.sizes`), else the version of that link the archive holds. A dry run asks the same
questions and keeps no answer (``keep=False``): the archive is not touched.
"""

from __future__ import annotations

import asyncio
import dataclasses
import stat
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from ..archive import Archive
from ..choose import Rendition
from ..entry import PeerTubeRef
from ..links import height_in_link
from ..manifest_reader import Manifest
from .api import ApiBudget, Pace, cache_path
from .hosts import Down, Hosts
from .http import DownloadSettings
from .peertube import fetch_info
from .plan import Choices
from .renditions import choose
from .sizes import head_sizes
from .video_info import Unavailable, VideoInfo

__all__ = ["PEERTUBE_CACHE", "choose_for", "describe_all", "link_sizes"]

PEERTUBE_CACHE = "peertube"


def _fresh(cached: Path, refresh_after: float | None) -> bool:
    """Whether a cached API answer is recent enough to use without asking (a disk's metadata:
    slow on a USB key, so asked from a worker thread)."""
    try:
        found = cached.stat()
    except OSError:
        return False
    age = time.time() - found.st_mtime
    return stat.S_ISREG(found.st_mode) and (refresh_after is None or age < refresh_after)


async def describe_all(
    client: httpx.AsyncClient,
    manifest: Manifest,
    cache: Path,
    settings: DownloadSettings,
    refresh_after: float | None,
    deadline: float | None = None,
    *,
    keep: bool = True,
) -> dict[str, VideoInfo | Unavailable]:
    """Each video's description by its instance: several asked at once, as many as
    ``--per-host`` allows (a collection's videos are usually on one instance), within each
    instance's API rate limit (one :class:`ApiBudget` per instance). Answers are kept in
    ``cache`` unless ``keep`` is false."""
    wanted = [(entry.id, entry.peertube) for entry in manifest.entries if entry.peertube]
    if not wanted:
        return {}
    at_once = asyncio.Semaphore(max(settings.per_host, 1))
    budgets: dict[str, ApiBudget] = {}

    async def describe(ref: PeerTubeRef) -> VideoInfo | Unavailable:
        budget = budgets.setdefault(ref.instance, ApiBudget(reserve=settings.per_host + 1))
        async with at_once:
            try:
                return await _ask(ref, budget)
            except (httpx.HTTPError, ValueError, TypeError, AttributeError, OverflowError) as exc:
                # An answer no check foresaw: this video goes without, the others go on.
                return Unavailable(f"the instance's answer is not understood ({exc})", False)

    async def _ask(ref: PeerTubeRef, budget: ApiBudget) -> VideoInfo | Unavailable:
        cached = cache_path(cache, ref.uuid)
        fresh = cached is not None and await asyncio.to_thread(_fresh, cached, refresh_after)
        return await fetch_info(
            client,
            ref,
            cache,
            budget=budget,
            fresh=fresh,
            api_base=settings.request_url(ref.instance),
            password=settings.video_password,
            deadline=deadline,
            pace=Pace(min_rate=settings.min_rate, window=settings.timeout),
            keep=keep,
        )

    answers = await asyncio.gather(*(describe(ref) for _, ref in wanted))
    return dict(zip((item for item, _ in wanted), answers, strict=True))


async def link_sizes(
    client: httpx.AsyncClient,
    manifest: Manifest,
    described: Mapping[str, VideoInfo | Unavailable],
    archive: Archive | None,
    settings: DownloadSettings,
) -> dict[str, Rendition]:
    """For ``--fit``: the fiche's own link of each video its instance did not describe, as a
    rendition: its size by ``HEAD``, else the archive's version of it; its height by the
    link's name (``…-720.mp4``), else the archive's, else 0 (unknown)."""
    wanted = [
        entry
        for entry in manifest.entries
        if entry.video.url
        and not isinstance(described.get(entry.id), VideoInfo)
        and not getattr(described.get(entry.id), "refused", False)
    ]
    if not wanted:
        return {}
    sizes = await head_sizes(client, [e.video.url for e in wanted if e.video.url], settings)
    found: dict[str, Rendition] = {}
    for entry in wanted:
        url = entry.video.url
        assert url is not None  # noqa: S101 - filtered above
        height = height_in_link(urlsplit(url).path) or 0
        size = sizes.get(url)
        if size is None and archive is not None:
            record = await asyncio.to_thread(archive.held, entry.id, "video", url)
            if record is not None:
                size, height = record.size, height or (record.resolution or 0)
        if size is not None:
            found[entry.id] = Rendition(height=height, size=size, key=url)
    return found


async def choose_for(
    client: httpx.AsyncClient,
    manifest: Manifest,
    archive: Archive | None,
    cache: Path,
    settings: DownloadSettings,
    *,
    refresh_after: float | None,
    budget: int | None,
    reencode: str | None,
    deadline: float | None = None,
    keep: bool = True,
    hosts: Hosts | None = None,
) -> Choices:
    """Ask the instances, size the links ``--fit`` needs, choose each video's file.

    Under ``--fit``, a video with no size whose host is given up on (``hosts``) fails as the
    host's other files do, rather than stopping the plan: a dead line is no bad input.
    """
    described = await describe_all(
        client, manifest, cache, settings, refresh_after, deadline, keep=keep
    )
    if hosts is not None:
        described = _said_for_the_host(manifest, described, hosts, settings)
    sized: dict[str, Rendition] = {}
    down: dict[str, Down] = {}
    if budget is not None:
        sized = await link_sizes(client, manifest, described, archive, settings)
        if hosts is not None:
            down = _down(manifest, described, sized, hosts, settings)
    return choose(
        manifest,
        described,
        max_height=settings.max_height,
        budget=budget,
        reencode=reencode,
        link_sizes=sized,
        unreachable=down,
    )


def _said_for_the_host(
    manifest: Manifest,
    described: Mapping[str, VideoInfo | Unavailable],
    hosts: Hosts,
    settings: DownloadSettings,
) -> dict[str, VideoInfo | Unavailable]:
    """``described``, each video whose instance is given up on marked so: the run names a
    dead host once (``cli.unreachable``), not once more a video in a warning."""
    marked = dict(described)
    for entry in manifest.entries:
        answer, ref = described.get(entry.id), entry.peertube
        if not isinstance(answer, Unavailable) or ref is None:
            continue
        if hosts.down(settings.request_url(ref.instance)) is not None:
            marked[entry.id] = dataclasses.replace(answer, unreachable=True)
    return marked


def _down(
    manifest: Manifest,
    described: Mapping[str, VideoInfo | Unavailable],
    sized: Mapping[str, Rendition],
    hosts: Hosts,
    settings: DownloadSettings,
) -> dict[str, Down]:
    """The videos with no size whose link's host, or whose instance, is given up on."""
    found: dict[str, Down] = {}
    for entry in manifest.entries:
        if entry.id in sized or isinstance(described.get(entry.id), VideoInfo):
            continue
        urls = [entry.video.url, entry.peertube.instance if entry.peertube else None]
        for url in filter(None, urls):
            gone = hosts.down(settings.request_url(url))
            if gone is not None:
                found[entry.id] = gone
                break
    return found
