"""What a PeerTube instance says of a video: its files at every resolution, with their sizes,
and the sha256 of every byte range of its fragmented MP4s.

``GET /api/v1/videos/{uuid}`` describes a video: ``files`` (web videos) and
``streamingPlaylists[].files`` (fragmented MP4s, which PeerTube serves for HLS), each with a
``resolution.id`` (the height), a ``size`` and a ``fileDownloadUrl``; a playlist may carry a
``segmentsSha256Url``: a JSON ``{file name: {"start-end": sha256}}``. Answers are cached in the
archive. The API is a help, never a requirement: when it is down, the video private (401,
403) or unknown (404), archiver falls back to the fiche's own link.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx

from .entry import PeerTubeRef
from .errors import UsageError
from .files import atomic_write_bytes
from .units import format_bytes

__all__ = [
    "API_TIMEOUT",
    "FitPlan",
    "VideoFile",
    "VideoInfo",
    "check_segments",
    "choose",
    "fetch_info",
    "parse_video",
    "plan_fit",
]

log = logging.getLogger(__name__)

API_TIMEOUT = 10.0
_RANGE = re.compile(r"^(\d+)-(\d+)$")


@dataclass(frozen=True)
class VideoFile:
    """One file of a video: its height (0 for audio only), size and download URL."""

    resolution: int
    size: int
    url: str
    segments_url: str | None = None  # only for fragmented files of a streaming playlist


@dataclass(frozen=True)
class VideoInfo:
    """The parts of PeerTube's video description archiver uses."""

    uuid: str
    name: str
    duration: float | None
    files: tuple[VideoFile, ...]
    preview_url: str | None


def parse_video(document: Mapping[str, Any], instance: str) -> VideoInfo:
    """Read ``GET /api/v1/videos/{uuid}``; raises ``ValueError`` on a shape it cannot use."""
    files: dict[int, VideoFile] = {}
    for playlist in document.get("streamingPlaylists") or []:
        segments = playlist.get("segmentsSha256Url")
        for raw in playlist.get("files") or []:
            parsed = _file(raw, instance, segments)
            if parsed is not None:
                files.setdefault(parsed.resolution, parsed)
    for raw in document.get("files") or []:  # web videos: used when no playlist has the height
        parsed = _file(raw, instance, None)
        if parsed is not None:
            files.setdefault(parsed.resolution, parsed)
    preview = document.get("previewPath")
    duration = document.get("duration")
    return VideoInfo(
        uuid=str(document["uuid"]),
        name=str(document.get("name") or ""),
        duration=float(duration) if isinstance(duration, int | float) else None,
        files=tuple(sorted(files.values(), key=lambda f: f.resolution)),
        preview_url=urljoin(instance + "/", preview) if isinstance(preview, str) else None,
    )


def _file(raw: Mapping[str, Any], instance: str, segments: Any) -> VideoFile | None:
    resolution = (raw.get("resolution") or {}).get("id")
    size = raw.get("size")
    url = raw.get("fileDownloadUrl") or raw.get("fileUrl")
    if not isinstance(resolution, int) or resolution <= 0 or not isinstance(size, int):
        return None  # audio-only files (resolution 0) make no video page
    if not isinstance(url, str) or not url.startswith(("http://", "https://", "/")):
        return None
    return VideoFile(
        resolution=resolution,
        size=size,
        url=urljoin(instance + "/", url),
        segments_url=urljoin(instance + "/", segments) if isinstance(segments, str) else None,
    )


def choose(info: VideoInfo, max_height: int | None) -> VideoFile | None:
    """The largest resolution at most ``max_height`` (any, when ``None``)."""
    fitting = [f for f in info.files if max_height is None or f.resolution <= max_height]
    return fitting[-1] if fitting else None


async def fetch_info(
    client: httpx.AsyncClient, ref: PeerTubeRef, cache: Path, *, fresh: bool = False
) -> VideoInfo | None:
    """The instance's description of a video, from the cache or the API; ``None`` if neither.

    With ``fresh`` a cached answer is used without asking. Otherwise the API is asked; when it
    cannot answer, the cached answer (if any) serves, and failing that the fiche's link will.
    """
    cached = cache / f"{ref.uuid}.json"
    if fresh and cached.is_file():
        return _read_cached(cached, ref)
    url = f"{ref.instance}/api/v1/videos/{ref.uuid}"
    try:
        response = await client.get(url, timeout=API_TIMEOUT)
    except httpx.HTTPError as exc:
        log.info("%s: PeerTube API not reachable (%s); using the fiche's link", ref.uuid, exc)
        return _read_cached(cached, ref)
    if response.status_code in (401, 403):
        log.warning(
            "%s: the video is private on %s; using the fiche's link", ref.uuid, ref.instance
        )
        return None
    if response.status_code != 200:
        log.info(
            "%s: PeerTube API answered %s; using the fiche's link", ref.uuid, response.status_code
        )
        return _read_cached(cached, ref)
    try:
        info = parse_video(response.json(), ref.instance)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning(
            "%s: PeerTube API answer not understood (%s); using the fiche's link", ref.uuid, exc
        )
        return None
    cache.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(cached, response.content)
    return info


def _read_cached(path: Path, ref: PeerTubeRef) -> VideoInfo | None:
    try:
        return parse_video(json.loads(path.read_bytes()), ref.instance)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


async def check_segments(
    client: httpx.AsyncClient, url: str, path: Path, name: str
) -> tuple[str, str] | None:
    """Check ``path`` against the sha256 PeerTube publishes for each of its byte ranges.

    Returns ``(expected, actual)`` for the first range that does not match, ``None`` when all
    match or when the instance publishes nothing for this file (its checksums are a bonus:
    a failing lookup never fails the download).
    """
    try:
        response = await client.get(url, timeout=API_TIMEOUT)
        response.raise_for_status()
        ranges = response.json().get(name)
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        log.info("%s: segment checksums not available (%s)", name, exc)
        return None
    if not isinstance(ranges, dict):
        return None
    with path.open("rb") as stream:
        for span, expected in sorted(ranges.items(), key=lambda kv: _start(kv[0])):
            match = _RANGE.match(span)
            if not match or not isinstance(expected, str):
                continue
            start, end = int(match.group(1)), int(match.group(2))
            stream.seek(start)
            actual = hashlib.sha256(stream.read(end - start + 1)).hexdigest()
            if actual != expected.lower():
                return f"{expected} for bytes {span}", actual
    return None


def _start(span: str) -> int:
    match = _RANGE.match(span)
    return int(match.group(1)) if match else 0


@dataclass(frozen=True)
class FitPlan:
    """The resolution chosen for each video so that the kit fits a budget."""

    choices: tuple[tuple[str, VideoFile], ...]  # (entry id, file)
    overhead: int
    budget: int

    @property
    def total(self) -> int:
        return self.overhead + sum(f.size for _, f in self.choices)

    def lines(self, titles: Mapping[str, str]) -> list[str]:
        rows = [
            f"{titles.get(item, item)} ({item}): {f.resolution}p, {format_bytes(f.size)}"
            for item, f in self.choices
        ]
        rows.append(
            f"Total: {format_bytes(self.total)} of {format_bytes(self.budget)}"
            f" (pages, posters and checksums: {format_bytes(self.overhead)})"
        )
        return rows


def plan_fit(options: Mapping[str, Sequence[VideoFile]], *, budget: int, overhead: int) -> FitPlan:
    """Each video's resolution, as high and as even as the budget allows.

    Every video starts at its highest resolution; while the kit is over budget, the video at
    the highest resolution (the largest file among equals) steps down one resolution. When
    even the lowest resolutions do not fit, :class:`UsageError` gives the smallest size reachable.
    """
    ladders = {item: sorted(files, key=lambda f: f.resolution) for item, files in options.items()}
    level = {item: len(files) - 1 for item, files in ladders.items() if files}
    if not level:
        return FitPlan(choices=(), overhead=overhead, budget=budget)

    def total() -> int:
        return overhead + sum(ladders[item][i].size for item, i in level.items())

    while total() > budget:
        candidates = [item for item, i in level.items() if i > 0]
        if not candidates:
            raise UsageError(
                f"the kit cannot fit in {format_bytes(budget)}: even at the lowest resolutions"
                f" it needs {format_bytes(total())}",
                hint="use a larger key, fewer videos, or --transcode",
            )
        item = max(
            candidates, key=lambda c: (ladders[c][level[c]].resolution, ladders[c][level[c]].size)
        )
        level[item] -= 1
    return FitPlan(
        choices=tuple((item, ladders[item][i]) for item, i in sorted(level.items())),
        overhead=overhead,
        budget=budget,
    )
