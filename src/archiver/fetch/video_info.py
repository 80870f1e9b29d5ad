"""What a PeerTube instance says of a video, read: :class:`VideoInfo`, its files and captions.

``GET /api/v1/videos/{uuid}`` describes a video (``VideoDetails`` in PeerTube's
``support/doc/api/openapi.yaml``): its state, whether it is a live, its privacy, and its files:
``files[]`` (web videos) and ``streamingPlaylists[].files[]`` (the fragmented MP4s of HLS),
each with ``resolution.id`` (the height; 0 for a sound-only file), ``size``, ``fileUrl`` (where
the instance stores it: ``{random uuid}-{height}-fragmented.mp4``) and ``fileDownloadUrl``
(``/download/streaming-playlists/hls/videos/{video uuid}-{height}-fragmented.mp4``), and from
6.2 ``hasAudio``/``hasVideo``: with ``transcoding.hls.split_audio_and_video`` (6.3 and
later) every video file is silent and one more file holds the sound.
``GET /api/v1/videos/{uuid}/captions`` lists its captions.

None of it is trusted: a file whose height, size or address is out of bounds is left out, a
caption whose language is no language id too; an answer of no usable shape is a
``ValueError``. An instance that described no video gives an :class:`Unavailable` instead.

Apart from :mod:`.peertube`, the client that asks the instance, because this is what an answer
means however it came (the API, the answers' cache, a test's fixture): pure code, with no
network and no httpx. The modules that only name these records (:mod:`.plan`,
:mod:`.renditions`) import them from here, not with the client.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from ..choose import Rendition

__all__ = [
    "Caption",
    "Unavailable",
    "VideoFile",
    "VideoInfo",
    "parse_captions",
    "parse_video",
]

# Bounds on what an answer may claim: no video is taller, no file larger.
MAX_HEIGHT = 8640
MAX_SIZE = 1 << 50

# Caption language ids: ISO 639 codes, and es-419, pt-PT, zh-Hans, zh-Hant, ca-valencia
# (server/core/initializers/constants.ts, buildLanguages). They become part of file names.
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})?")

# packages/models/src/videos/video-state.enum.ts
_STATES = {
    2: "waiting to be transcoded",
    3: "being imported",
    4: "a live waiting for its stream",
    5: "a live that has ended",
    6: "being moved to another storage",
    7: "its transcoding failed",
    8: "its move to another storage failed",
    9: "being edited",
    10: "being moved to another storage",
    11: "its move to another storage failed",
}


@dataclass(frozen=True)
class VideoFile:
    """One file of a video: its height (0 for sound only), size and download URL."""

    resolution: int
    size: int
    url: str  # fileDownloadUrl: what archiver asks for
    segments_url: str | None = None  # only for fragmented files of a streaming playlist
    stored_name: str | None = None  # fileUrl's last segment: the key of its segments' sha256
    has_audio: bool | None = None  # None: an instance older than 6.2 does not say
    has_video: bool | None = None

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
    files: tuple[VideoFile, ...]  # the files with a picture, by height
    preview_url: str | None
    captions: tuple[Caption, ...] = ()
    audio: VideoFile | None = None  # the sound, when the instance stores it apart
    is_live: bool = False
    state: int | None = None
    protected: bool = False  # password-protected: its files are asked for with the password

    def sound_for(self, chosen: VideoFile) -> VideoFile | None:
        """The sound-only file to join to ``chosen``, when ``chosen`` has no sound of its own."""
        return self.audio if chosen.has_audio is False else None

    @property
    def problem(self) -> str | None:
        """Why nothing of this video can be downloaded, or ``None``."""
        if self.is_live:
            return "a live stream on the instance: there is no file to download"
        if not self.files:
            if self.state is not None and self.state != 1:
                state = _STATES.get(self.state, f"state {self.state}")
                return f"not published yet on the instance ({state})"
            return "the instance lists no file for it"
        return None


@dataclass(frozen=True)
class Unavailable:
    """Why an instance did not describe a video, for a person; ``refused`` when the instance
    answered that it will not give it (private, password, unknown): its download link would
    be refused too, so none is tried."""

    reason: str
    refused: bool
    instance: bool = True  # False: the host answered as no PeerTube instance does
    # True: its host was given up on for the run (fetch.hosts); the run says so once, for the
    # host, not again for each of its videos.
    unreachable: bool = False


def parse_captions(document: Mapping[str, Any], instance: str) -> tuple[Caption, ...]:
    """Read ``GET /api/v1/videos/{uuid}/captions``: ``fileUrl`` (7.1 and later, absolute) or
    ``captionPath`` (relative; null in 8.x when the file is on object storage)."""
    captions: dict[str, Caption] = {}
    listed = document.get("data") if isinstance(document, Mapping) else None
    for raw in listed if isinstance(listed, list) else []:
        if not isinstance(raw, Mapping):
            continue
        language = raw.get("language") or {}
        path = raw.get("fileUrl") or raw.get("captionPath")
        code = language.get("id") if isinstance(language, Mapping) else None
        if isinstance(path, str) and isinstance(code, str) and _LANGUAGE.fullmatch(code):
            # One track a language, whatever its case: fr and FR would be one file on FAT32.
            captions.setdefault(
                code.lower(),
                Caption(
                    language=code,
                    label=str(language.get("label") or code),
                    url=urljoin(instance + "/", path),
                ),
            )
    return tuple(sorted(captions.values(), key=lambda c: c.language))


def _preview(document: Mapping[str, Any], instance: str) -> str | None:
    """The largest thumbnail (``thumbnails[]``, 8.x), else ``previewUrl``, else ``previewPath``."""
    best: tuple[int, str] | None = None
    for raw in document.get("thumbnails") or []:
        if isinstance(raw, Mapping) and isinstance(raw.get("fileUrl"), str):
            width: int = raw["width"] if isinstance(raw.get("width"), int) else 0
            if best is None or width > best[0]:
                best = (width, str(raw["fileUrl"]))
    for candidate in (
        best[1] if best else None,
        document.get("previewUrl"),
        document.get("previewPath"),
    ):
        if isinstance(candidate, str) and candidate:
            address = urljoin(instance + "/", candidate)
            if urlsplit(address).scheme in ("http", "https"):
                return address
    return None


def parse_video(
    document: Mapping[str, Any], instance: str, captions: Mapping[str, Any] | None = None
) -> VideoInfo:
    """Read ``GET /api/v1/videos/{uuid}``; raises ``ValueError`` on a shape it cannot use."""
    files: dict[int, VideoFile] = {}
    audio: VideoFile | None = None
    for playlist in document.get("streamingPlaylists") or []:
        segments = playlist.get("segmentsSha256Url")
        for raw in playlist.get("files") or []:
            parsed = _file(raw, instance, segments)
            if parsed is None:
                continue
            if parsed.resolution == 0 or parsed.has_video is False:
                audio = audio or (parsed if parsed.has_audio is not False else None)
            else:
                files.setdefault(parsed.resolution, parsed)
    for raw in document.get("files") or []:  # web videos: used when no playlist has the height
        parsed = _file(raw, instance, None)
        if parsed is not None and parsed.resolution > 0 and parsed.has_video is not False:
            files.setdefault(parsed.resolution, parsed)
    duration = document.get("duration")
    if not isinstance(duration, int | float) or not 0 < duration < 10**7:
        duration = None
    state = document.get("state")
    state_id = state.get("id") if isinstance(state, Mapping) else None
    return VideoInfo(
        uuid=str(document["uuid"]),
        name=str(document.get("name") or ""),
        duration=float(duration) if isinstance(duration, int | float) else None,
        files=tuple(sorted(files.values(), key=lambda f: f.resolution)),
        preview_url=_preview(document, instance),
        captions=parse_captions(captions, instance) if captions else (),
        audio=audio if any(f.has_audio is False for f in files.values()) else None,
        is_live=document.get("isLive") is True,
        state=state_id if isinstance(state_id, int) else None,
    )


def _file(raw: Any, instance: str, segments: Any) -> VideoFile | None:
    if not isinstance(raw, Mapping):
        return None
    resolution = (raw.get("resolution") or {}).get("id")
    size = raw.get("size")
    url = raw.get("fileDownloadUrl") or raw.get("fileUrl")
    if not isinstance(resolution, int) or not 0 <= resolution <= MAX_HEIGHT:
        return None
    if not isinstance(size, int) or not 0 <= size < MAX_SIZE:
        return None
    if not isinstance(url, str) or not url.startswith(("http://", "https://", "/")):
        return None
    stored = raw.get("fileUrl")
    return VideoFile(
        resolution=resolution,
        size=size,
        url=urljoin(instance + "/", url),
        segments_url=urljoin(instance + "/", segments) if isinstance(segments, str) else None,
        stored_name=(
            unquote(urlsplit(stored).path.rpartition("/")[2]) if isinstance(stored, str) else None
        ),
        has_audio=raw["hasAudio"] if isinstance(raw.get("hasAudio"), bool) else None,
        has_video=raw["hasVideo"] if isinstance(raw.get("hasVideo"), bool) else None,
    )
