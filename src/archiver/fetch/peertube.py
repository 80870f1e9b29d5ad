"""The PeerTube API client: what an instance says of a video, its files at every resolution with
their sizes, and the sha256 of every byte range of its fragmented MP4s.

``GET /api/v1/videos/{uuid}`` describes a video: ``files`` (web videos) and
``streamingPlaylists[].files`` (fragmented MP4s, which PeerTube serves for HLS), each with a
``resolution.id`` (the height), a ``size`` and a ``fileDownloadUrl``; a playlist may carry a
``segmentsSha256Url``: a JSON ``{file name: {"start-end": sha256}}``. Answers are cached in the
archive. The API is a help, never a requirement: when it is down, the video private (401,
403) or unknown (404), archiver falls back to the fiche's own link.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx

from ..choose import Rendition
from ..entry import PeerTubeRef
from ..errors import describe_os_error
from ..files import atomic_write_bytes

__all__ = [
    "API_TIMEOUT",
    "Caption",
    "VideoFile",
    "VideoInfo",
    "check_segments",
    "fetch_info",
    "parse_captions",
    "parse_video",
]

log = logging.getLogger(__name__)

API_TIMEOUT = 10.0


_RANGE = re.compile(r"^(\d+)-(\d+)$")
_LANGUAGE = re.compile(r"[a-zA-Z-]{2,12}")  # it becomes part of a file name: keep it plain


@dataclass(frozen=True)
class VideoFile:
    """One file of a video: its height (0 for audio only), size and download URL."""

    resolution: int
    size: int
    url: str
    segments_url: str | None = None  # only for fragmented files of a streaming playlist

    @property
    def rendition(self) -> Rendition:
        """The file as one choice among a video's renditions, found by its URL."""
        return Rendition(height=self.resolution, size=self.size, key=self.url)


@dataclass(frozen=True)
class Caption:
    """A caption file of a video: its language (``fr``), label (``French``) and VTT URL."""

    language: str
    label: str
    url: str


@dataclass(frozen=True)
class VideoInfo:
    """The parts of PeerTube's video description archiver uses."""

    uuid: str
    name: str
    duration: float | None
    files: tuple[VideoFile, ...]
    preview_url: str | None
    captions: tuple[Caption, ...] = ()


def parse_captions(document: Mapping[str, Any], instance: str) -> tuple[Caption, ...]:
    """Read ``GET /api/v1/videos/{uuid}/captions`` (``captionPath``, or ``fileUrl`` lately)."""
    captions = []
    for raw in document.get("data") or []:
        language = raw.get("language") or {}
        path = raw.get("fileUrl") or raw.get("captionPath")
        code = language.get("id")
        if (
            isinstance(path, str)
            and isinstance(code, str)
            and re.fullmatch(r"[a-zA-Z-]{2,12}", code)
        ):
            captions.append(
                Caption(
                    language=code.lower(),
                    label=str(language.get("label") or code),
                    url=urljoin(instance + "/", path),
                )
            )
    return tuple(sorted(captions, key=lambda c: c.language))


def parse_video(
    document: Mapping[str, Any], instance: str, captions: Mapping[str, Any] | None = None
) -> VideoInfo:
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
        captions=parse_captions(captions, instance) if captions else (),
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


async def fetch_info(
    client: httpx.AsyncClient,
    ref: PeerTubeRef,
    cache: Path,
    *,
    fresh: bool = False,
    api_base: str | None = None,
) -> VideoInfo | None:
    """The instance's description of a video, from the cache or the API; ``None`` if neither.

    With ``fresh`` a cached answer, even "this video is private", is used without asking.
    Otherwise the API is asked; when it cannot answer, the cached answer (if any) serves, and
    failing that the fiche's link will. ``api_base`` replaces the instance's address in the
    requests (a mirror).
    """
    cached = cache / f"{ref.uuid}.json"
    # The cache is on the archive's disk (a USB key, perhaps): read and written, with its
    # fsync, in worker threads.
    if fresh and await asyncio.to_thread(cached.is_file):
        return await asyncio.to_thread(_read_cached, cached, ref)
    url = f"{api_base or ref.instance}/api/v1/videos/{ref.uuid}"
    fallback = "using the fiche's link"
    try:
        response = await client.get(url, timeout=API_TIMEOUT)
    except httpx.HTTPError as exc:
        log.info("%s: PeerTube API not reachable (%s); %s", ref.uuid, exc, fallback)
        return await asyncio.to_thread(_read_cached, cached, ref)
    if response.status_code in (401, 403, 404, 410):
        if response.status_code in (401, 403):
            log.warning("%s: the video is private on %s; %s", ref.uuid, ref.instance, fallback)
        # Remembered, so that the next runs in the refresh period do not ask again.
        await asyncio.to_thread(_store, cache, cached, {"unavailable": response.status_code})
        return None
    if response.status_code != 200:
        log.info("%s: PeerTube API answered %s; %s", ref.uuid, response.status_code, fallback)
        return await asyncio.to_thread(_read_cached, cached, ref)
    try:
        video = response.json()
        info = parse_video(video, ref.instance)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("%s: PeerTube API answer not understood (%s); %s", ref.uuid, exc, fallback)
        return None
    captions: dict[str, Any] = {}
    try:
        answer = await client.get(f"{url}/captions", timeout=API_TIMEOUT)
        if answer.status_code == 200:
            captions = answer.json()
    except (httpx.HTTPError, ValueError) as exc:
        log.info("%s: captions not listed (%s)", ref.uuid, exc)
    await asyncio.to_thread(_store, cache, cached, {"video": video, "captions": captions})
    return dataclasses.replace(info, captions=parse_captions(captions, ref.instance))


def _store(cache: Path, path: Path, document: Mapping[str, Any]) -> None:
    """Keep an answer for the next runs. A cache: a disk that refuses it costs a question to
    the API next time, never this run."""
    try:
        cache.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, json.dumps(document, ensure_ascii=False, sort_keys=True).encode())
    except OSError as exc:
        log.warning("%s: cannot keep the PeerTube API's answer: %s", path, describe_os_error(exc))


def _read_cached(path: Path, ref: PeerTubeRef) -> VideoInfo | None:
    try:
        document = json.loads(path.read_bytes())
        if "video" not in document:
            return None  # "unavailable": private, unknown or gone when last asked
        return parse_video(document["video"], ref.instance, document.get("captions"))
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
    except httpx.HTTPError as exc:
        log.info("%s: segment checksums not available (%s)", name, exc)
        return None
    # Reading and hashing the whole file, and reading the instance's list (one line per
    # segment of every file of the video): in a worker thread, not on the event loop.
    return await asyncio.to_thread(_first_mismatch, path, response.content, name)


def _first_mismatch(path: Path, document: bytes, name: str) -> tuple[str, str] | None:
    try:
        ranges = json.loads(document).get(name)
    except (ValueError, AttributeError) as exc:
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
            digest = hashlib.sha256()
            left = end - start + 1
            while left > 0 and (block := stream.read(min(left, 4 * 1024 * 1024))):
                digest.update(block)
                left -= len(block)
            actual = digest.hexdigest()
            if actual != expected.lower():
                return f"{expected} for bytes {span}", actual
    return None


def _start(span: str) -> int:
    match = _RANGE.match(span)
    return int(match.group(1)) if match else 0
