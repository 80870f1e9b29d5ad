"""A fake PeerTube instance on the loopback test server, as strict as a real 7.x/8.x one.

Usage::

    from .peertube import FakeInstance

    def test_something(server: FileServer, tmp_path: Path) -> None:
        tube = FakeInstance(server)                      # PeerTube 7.1, real rate limits
        tube = FakeInstance(server, api_window=2.0)      # 50 calls per 2 s: tests stay fast
        video = tube.publish()                           # 1080/720/480/360 HLS files
        split = tube.publish(split_audio=True, heights=(720, 360))  # real video-only + audio-only
        private = tube.publish(privacy=5, password="s3cret")
        s3 = tube.publish(storage="object")              # /download answers 302 to a one-use URL

        video.uuid, video.short_uuid, video.id           # 9c9de5e8-..., kkGMgK9Ztn..., 1
        video.data[720], video.audio, video.file_ids     # served bytes; audio bytes; {res: id}
        video.files[720].download.drop_times = 1         # faults, as on any Served:
        video.files[720].download.drop_after = 1000      # ...the next answer stops at 1000 bytes
        video.download_url(1080)                         # {instance}/download/streaming-.../uuid-1080-fragmented.mp4
        tube.limited                                     # every 429 sent

A fiche pointing at it (``tube.url`` is ``http://127.0.0.1:<port>``)::

    videoEmbedSrc: {tube.url}/videos/embed/{video.uuid}      # or {video.short_uuid}
    videoEmbedSrc: {tube.url}/w/{video.short_uuid}           # the canonical watch link
    videoDLHref: {tube.url}/download/streaming-playlists/hls/videos/{video.uuid}-1080-fragmented.mp4

``video.fiche()`` writes that text. What the fake does, each behaviour with its source in
PeerTube (details in tests/fixtures/peertube/SOURCES.md, shapes in ``tests/peertube_api.py``):

- ``GET /api/v1/videos/{uuid|shortUUID|id}``, ``.../captions``, ``POST .../token``: VideoDetails
  and captions shaped per ``version`` ("4.3", "7.0", "7.1", "8.0"). Every ``/api/v1/videos*``
  request counts against express-rate-limit's window: 50 per 10 s, ``X-RateLimit-*`` on every
  answer, then ``429`` + ``Retry-After`` and a text/html body. ``/download`` is not limited.
- HLS files are stored under a random name (``fileUrl``) and downloaded under the video's
  UUID (``fileDownloadUrl``); ``segmentsSha256Url`` is keyed by the stored name and does not
  cover the init segment.
- ``/download/...`` answers as Express's ``res.download`` (weak ``W/"size-mtime"`` ETag,
  Last-Modified, Range, ``If-Range`` judged as ``send`` does); with ``storage="object"`` a 302
  to a presigned URL that works ``presigned_uses`` times (one by default), then 403 as S3 does
  for an expired URL: a client that resumes must go back to ``/download``.
- Errors are problem+json; private and password videos check ``Authorization: Bearer`` (see
  ``token()``) and ``x-peertube-video-password``; ``/download`` without credentials on them is
  a bare ``403 Forbidden``.
- The old web-video link ``/download/videos/{uuid}-{h}.mp4`` works on a 4.x video; on 7.x/8.x
  it falls to the web client: ``200 text/html`` for ``Accept: */*``, ``406`` otherwise.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import random
import re
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .conftest import content_of, tagged
from .media import hls_clip, make_jpeg, width_for
from .peertube_api import (
    UUID_RE,
    Version,
    content_disposition,
    download_filename,
    encode_uri,
    http_date,
    short_uuid,
    to_json,
)
from .peertube_http import (
    API_MAX,
    API_WINDOW,
    CLIENT_MAX,
    CLIENT_WINDOW,
    CORS,
    GENERATE_MAX,
    GENERATE_WINDOW,
    Answers,
    Limited,
    Presigned,
    RateLimiter,
    express_file,
)
from .server import FileServer, Served

__all__ = ["Caption", "FakeInstance", "Limited", "PeerTubeFile", "PublishedVideo"]

# Sizes of the plain (``content_of``) file of each height, when ``videos`` does not give one.
SIZES = {2160: 900_000, 1440: 600_000, 1080: 400_000, 720: 250_000, 480: 120_000,
         360: 80_000, 240: 60_000, 144: 40_000}  # fmt: skip
# Length of the checksummed ranges of a plain file: a real one follows its 4 s segments.
PLAIN_SEGMENT = 64_000
PRIVATE_PRIVACIES = (3, 4, 5)  # isVideoInPrivateDirectory: private, internal, password
ROLES = {"admin": 0, "moderator": 1, "user": 2}  # UserRole; 0 and 1 bypass the rate limit
NO_FILES_STATES = (2, 3, 7)  # to transcode, to import, transcoding failed


@dataclass
class PeerTubeFile:
    """One stored file: an HLS resolution (0 is the audio-only one) or a web video.

    ``download``, ``static``, ``object`` and ``presigned`` are what each route sends; put
    faults on them (``file.download.drop_after = 1000``) as on any ``Served``.
    """

    id: int
    resolution: int
    width: int | None
    height: int | None
    fps: int
    data: bytes
    stored_name: str
    has_audio: bool
    has_video: bool
    mtime_ms: int
    kind: Literal["hls", "web"]
    ranges: list[tuple[int, int]]  # (offset, length) of each checksummed segment
    playlist: str  # the resolution playlist, naming the file "clip.mp4"
    torrent_name: str | None
    info_hash: str
    download: Served = field(init=False)
    static: Served = field(init=False)
    object: Served = field(init=False)
    presigned: Served = field(init=False)

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def playlist_name(self) -> str:
        """``getHlsResolutionPlaylistFilename``: the stored name, -fragmented.mp4 → .m3u8."""
        return re.sub(r"(-fragmented)?\.mp4$", ".m3u8", self.stored_name)


@dataclass
class Caption:
    language: str
    filename: str  # generateCaptionName: {random uuid}-{language}.vtt
    m3u8_name: str
    text: str
    served: Served


@dataclass
class PublishedVideo:
    """A video on the fake instance: what its API says and what its routes serve."""

    instance: FakeInstance
    uuid: str
    id: int
    name: str
    version: Version
    privacy: int
    state: int
    is_live: bool
    wait_transcoding: bool
    password: str | None
    storage: Literal["local", "object"]
    duration: int
    split_audio: bool
    licence: int
    language: str
    description: str
    created_at: str
    playlist_id: int
    master_name: str
    segments_name: str
    preview_name: str
    thumbnail_name: str
    preview: bytes
    files: dict[int, PeerTubeFile] = field(default_factory=dict)  # HLS, by resolution
    web_files: dict[int, PeerTubeFile] = field(default_factory=dict)
    captions: list[Caption] = field(default_factory=list)
    segments: dict[str, dict[str, str]] = field(default_factory=dict)
    aspect_ratio: float = 1.7778

    @property
    def short_uuid(self) -> str:
        return short_uuid(self.uuid)

    @property
    def base(self) -> str:
        return self.instance.url

    @property
    def bucket_url(self) -> str:
        """Where the fake's object storage answers: path-style buckets on the same server."""
        return self.instance.url

    @property
    def private(self) -> bool:
        return self.privacy in PRIVATE_PRIVACIES

    @property
    def has_playlist(self) -> bool:
        return bool(self.files) or (self.is_live and self.state == 1)

    @property
    def data(self) -> dict[int, bytes]:
        """The bytes served for each height (video-only ones with split audio)."""
        return {h: f.data for h, f in self.files.items() if h != 0}

    @property
    def audio(self) -> bytes | None:
        """The audio-only file's bytes (split audio), else ``None``."""
        audio = self.files.get(0)
        return audio.data if audio is not None else None

    @property
    def file_ids(self) -> dict[int, int]:
        """The numeric id of each HLS file, by resolution (0: audio only)."""
        return {h: f.id for h, f in self.files.items()}

    def sorted_files(self, *, web: bool) -> list[PeerTubeFile]:
        """``sortByResolutionDesc``: highest resolution first."""
        files = self.web_files if web else self.files
        return sorted(files.values(), key=lambda f: -f.resolution)

    def hls_url(self, name: str) -> str:
        """The URL of a file in the video's HLS folder (``getFileUrl`` and friends,
        server/core/models/video/video-file.ts, commit e62834b5)."""
        if self.storage == "object":
            if self.private:  # proxify_private_files: true
                return f"{self.base}/object-storage-proxy/streaming-playlists/hls/private/{self.uuid}/{name}"
            return f"{self.bucket_url}/streaming-playlists/hls/{self.uuid}/{name}"
        private = "private/" if self.private else ""
        return f"{self.base}/static/streaming-playlists/hls/{private}{self.uuid}/{name}"

    def file_url(self, file: PeerTubeFile) -> str:
        """The file's ``fileUrl``: its stored (random) name."""
        if file.kind == "hls":
            return self.hls_url(file.stored_name)
        if self.storage == "object":
            if self.private:
                return f"{self.base}/object-storage-proxy/web-videos/private/{file.stored_name}"
            return f"{self.bucket_url}/web-videos/{file.stored_name}"
        folder = "webseed" if self.version.legacy else "web-videos"
        private = "private/" if self.private else ""
        return f"{self.base}/static/{folder}/{private}{file.stored_name}"

    def download_url(self, resolution: int, *, web: bool = False) -> str:
        """The ``fileDownloadUrl``: the video's UUID, not the stored name (``getFileDownloadUrl``).

        ``web`` gives a web video's: ``/download/videos/`` on 4.x, ``/download/web-videos/`` after.
        """
        if not web:
            return f"{self.base}/download/streaming-playlists/hls/videos/{self.uuid}-{resolution}-fragmented.mp4"
        folder = "videos" if self.version.legacy else "web-videos"
        return f"{self.base}/download/{folder}/{self.uuid}-{resolution}.mp4"

    def embed_url(self, *, short: bool = False) -> str:
        return f"{self.base}/videos/embed/{self.short_uuid if short else self.uuid}"

    def watch_url(self) -> str:
        """The canonical watch link, ``/w/{shortUUID}`` (``getWatchStaticPath``)."""
        return f"{self.base}/w/{self.short_uuid}"

    def api_url(self) -> str:
        return f"{self.base}/api/v1/videos/{self.uuid}"

    def fiche(self, *, short: bool = False, height: int = 1080, title: str | None = None) -> str:
        """A fiche's Markdown pointing at this video, as the producer writes them."""
        return (
            f"---\ntitle: {title or self.name}\narea: Domaine 1\n"
            f"videoEmbedSrc: {self.embed_url(short=short)}\n"
            f"videoDLHref: {self.download_url(height)}\n"
            "---\n\n## Script\n\nTexte.\n\n## Crédits\n\n"
            "- **Licence** : [CC BY-NC-ND 4.0](https://creativecommons.org/licenses/by-nc-nd/4.0/)\n"
        )


class FakeInstance(Answers):
    """A PeerTube instance on ``server``: publish videos, then let a client at it.

    ``api_window``/``api_max`` default to the real limits; ``presigned_uses`` is how many
    requests a presigned object-storage URL serves before S3 says it expired.
    """

    def __init__(
        self,
        server: FileServer,
        *,
        version: str = "7.1",
        api_window: float = API_WINDOW,
        api_max: int = API_MAX,
        generate_window: float = GENERATE_WINDOW,
        generate_max: int = GENERATE_MAX,
        presigned_uses: int = 1,
        seed: int = 0,
    ) -> None:
        self.server = server
        self.url = server.url("")
        self.version = Version.parse(version)
        self.api_limiter = RateLimiter(api_window, api_max)
        self.generate_limiter = RateLimiter(generate_window, generate_max)
        self.client_limiter = RateLimiter(CLIENT_WINDOW, CLIENT_MAX)
        self.presigned_uses = presigned_uses
        self.limited: list[Limited] = []
        self.videos: dict[str, PublishedVideo] = {}
        self.tokens: dict[str, int] = {}  # OAuth access token → user role
        self.file_tokens: dict[str, str] = {}  # videoFileToken → video UUID
        self.presigned: dict[str, Presigned] = {}
        self.objects: dict[str, tuple[PublishedVideo, Served, Served | None]] = {}
        self._random = random.Random(seed)
        self._ids = itertools.count(1)
        self._file_ids = itertools.count(101)
        self._playlist_ids = itertools.count(1)
        self._lock = threading.Lock()
        self._routes = self._route_table()
        server.route("/", self._handle)

    # -- publishing --------------------------------------------------------------------------

    def publish(
        self,
        uuid: str | None = None,
        *,
        heights: tuple[int, ...] = (1080, 720, 480, 360),
        split_audio: bool = False,
        privacy: int = 1,
        state: int = 1,
        is_live: bool = False,
        password: str | None = None,
        storage: Literal["local", "object"] = "local",
        captions: dict[str, str] | None = None,
        preview: bytes | None = None,
        videos: dict[int, bytes] | None = None,
        tamper_segment_of: int | None = None,
        version: str | None = None,
        name: str | None = None,
        duration: int | None = None,
        wait_transcoding: bool = True,
        web_videos: bool | None = None,
        licence: int = 6,
        language: str = "fr",
    ) -> PublishedVideo:
        """Put a video on the instance, with its files, checksums, captions and preview.

        ``split_audio`` makes real video-only files and a real audio-only one (resolution 0)
        with ffmpeg (``tests/media.py hls_clip``); otherwise each height is ``videos[h]`` or a
        ``content_of`` MP4. ``web_videos`` adds web-video files to ``files[]`` (the default on
        a 4.x version). A live, or a video still to transcode (``state`` 2), has no file yet.
        """
        release = Version.parse(version) if version else self.version
        if (privacy == 5) != (password is not None):
            raise ValueError("a password goes with privacy 5 (password protected), and only there")
        if split_audio and release.legacy:
            raise ValueError("split audio came with PeerTube 6.3")
        if storage == "object" and release.legacy:
            raise ValueError("presigned downloads came with PeerTube 6.0")
        uuid = (uuid or str(self._uuid4())).lower()
        if not UUID_RE.match(uuid) or uuid in self.videos:
            raise ValueError(f"bad or duplicate UUID {uuid!r}")
        if preview is None:
            preview = _default_preview()
        now = time.time()
        video = PublishedVideo(
            instance=self,
            uuid=uuid,
            id=next(self._ids),
            name=name or f"Vidéo {uuid[:8]}",
            version=release,
            privacy=privacy,
            state=state,
            is_live=is_live,
            wait_transcoding=wait_transcoding,
            password=password,
            storage=storage,
            duration=duration if duration is not None else (5 if split_audio else 12),
            split_audio=split_audio,
            licence=licence,
            language=language,
            description="Une vidéo pour la classe.",
            created_at=time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now)),
            playlist_id=next(self._playlist_ids),
            # paths.ts (commit 3b87de09): random names, fixed ones for a live
            master_name="master.m3u8" if is_live else f"{self._uuid4()}-master.m3u8",
            segments_name="segments-sha256.json"
            if is_live
            else f"{self._uuid4()}-segments-sha256.json",
            preview_name=f"{self._uuid4()}.jpg",
            thumbnail_name=f"{self._uuid4()}.jpg",
            preview=preview,
        )
        mtime_ms = int(now * 1000)
        if not is_live and state not in NO_FILES_STATES:
            self._make_files(video, heights, videos or {}, mtime_ms, web_videos)
        if tamper_segment_of is not None:
            name_of = video.files[tamper_segment_of].stored_name
            first = next(iter(video.segments[name_of]))
            video.segments[name_of][first] = hashlib.sha256(b"not these bytes").hexdigest()
        for language_id, text in (captions or {}).items():
            self._add_caption(video, language_id, text, mtime_ms)
        self._register_objects(video, mtime_ms)
        with self._lock:
            self.videos[uuid] = video
        return video

    def token(self, role: Literal["admin", "moderator", "user"] = "user") -> str:
        """An OAuth access token for ``Authorization: Bearer <token>``.

        An admin or moderator sees every video and is not rate limited; a user sees internal
        videos, not private ones (none of them owns a video here)."""
        token = hashlib.sha1(self._random.randbytes(16)).hexdigest()  # noqa: S324
        self.tokens[token] = ROLES[role]
        return token

    def remove(self, video: PublishedVideo) -> None:
        """Delete the video: its id and files answer 404 from now on."""
        with self._lock:
            self.videos.pop(video.uuid, None)
            for path in [p for p, (v, _, _) in self.objects.items() if v is video]:
                del self.objects[path]

    def replace(self, video: PublishedVideo, height: int, data: bytes) -> PeerTubeFile:
        """Re-transcode one resolution: new bytes under a new stored name, id and mtime, and
        new checksums; the download URL stays the same."""
        old = video.files[height]
        mtime_ms = old.mtime_ms + 60_000
        new = self._hls_file(
            video, height, data, None, mtime_ms, audio=old.has_audio, picture=old.has_video
        )
        video.files[height] = new
        video.segments.pop(old.stored_name, None)
        video.segments[new.stored_name] = _segment_hashes(new)
        self._register_objects(video, mtime_ms)
        return new

    def _make_files(
        self,
        video: PublishedVideo,
        heights: tuple[int, ...],
        given: dict[int, bytes],
        mtime_ms: int,
        web_videos: bool | None,
    ) -> None:
        if video.split_audio:
            _warm_clips(heights)
        seed = int(video.uuid[:8], 16)
        for height in heights:
            if video.split_audio:
                clip = hls_clip(height, streams="video")
                file = self._hls_file(
                    video, height, clip.data, clip.playlist, mtime_ms, audio=False, picture=True
                )
            else:
                data = given.get(height) or content_of(
                    SIZES.get(height, 50_000 + height * 300), seed + height
                )
                file = self._hls_file(video, height, data, None, mtime_ms, audio=True, picture=True)
            video.files[height] = file
        if video.split_audio:
            clip = hls_clip(0, streams="audio")
            video.files[0] = self._hls_file(
                video, 0, clip.data, clip.playlist, mtime_ms, audio=True, picture=False
            )
        # hls.ts (commit 5615f71b) updateSha256VODSegments: one key per stored file name.
        video.segments = {f.stored_name: _segment_hashes(f) for f in video.files.values()}
        if web_videos if web_videos is not None else video.version.legacy:
            for height in heights:
                data = tagged(video.files[height].data, b"web-video")
                video.web_files[height] = self._file(
                    video, height, data, f"{self._uuid4()}-{height}.mp4", "web", [], "", mtime_ms,
                    audio=True, picture=True,
                )  # fmt: skip

    def _hls_file(
        self,
        video: PublishedVideo,
        height: int,
        data: bytes,
        playlist: str | None,
        mtime_ms: int,
        *,
        audio: bool,
        picture: bool,
    ) -> PeerTubeFile:
        if playlist is None:
            playlist = _playlist_for(data, video.duration)
        ranges = [
            (int(m[2]), int(m[1]))
            for m in re.finditer(r"^#EXT-X-BYTERANGE:(\d+)@(\d+)$", playlist, re.M)
        ]
        name = f"{self._uuid4()}-{height}-fragmented.mp4"  # generateHLSVideoFilename
        return self._file(
            video,
            height,
            data,
            name,
            "hls",
            ranges,
            playlist,
            mtime_ms,
            audio=audio,
            picture=picture,
        )

    def _file(
        self,
        video: PublishedVideo,
        height: int,
        data: bytes,
        name: str,
        kind: Literal["hls", "web"],
        ranges: list[tuple[int, int]],
        playlist: str,
        mtime_ms: int,
        *,
        audio: bool,
        picture: bool,
    ) -> PeerTubeFile:
        suffix = "-hls" if kind == "hls" else ""
        file = PeerTubeFile(
            id=next(self._file_ids),
            resolution=height,
            width=width_for(height) if picture else None,
            height=height if picture else None,
            fps=25 if picture else 0,
            data=data,
            stored_name=name,
            has_audio=audio,
            has_video=picture,
            mtime_ms=mtime_ms,
            kind=kind,
            ranges=ranges,
            playlist=playlist,
            torrent_name=f"{self._uuid4()}-{height}{suffix}.torrent",
            info_hash=hashlib.sha1(name.encode() + data).hexdigest(),  # noqa: S324
        )
        filename = download_filename(video, height, ".mp4", hls=kind == "hls")
        file.static = express_file(
            data, mtime_ms, "video/mp4", {"Cache-Control": "public, max-age=0", **CORS}
        )
        file.download = express_file(
            data, mtime_ms, "video/mp4",
            {"Cache-Control": "public, max-age=0", "Content-Disposition": content_disposition(filename), **CORS},
        )  # fmt: skip
        file.object = _s3_object(data, mtime_ms, "video/mp4")
        file.presigned = _s3_object(
            data, mtime_ms, "video/mp4", f'attachment; filename="{encode_uri(filename)}"'
        )
        return file

    def _add_caption(self, video: PublishedVideo, language: str, text: str, mtime_ms: int) -> None:
        from .peertube_api import language_label

        language_label(language)  # refuses what PeerTube refuses (pt-BR, fr-FR...)
        served = express_file(
            text.encode(),
            mtime_ms,
            "text/vtt; charset=UTF-8",
            {"Cache-Control": "public, max-age=172800", **CORS},
        )
        video.captions.append(
            Caption(
                language,
                f"{self._uuid4()}-{language}.vtt",
                f"{self._uuid4()}-{language}.m3u8",
                text,
                served,
            )
        )

    def _register_objects(self, video: PublishedVideo, mtime_ms: int) -> None:
        """What the video's bucket paths serve when its files are on object storage."""
        if video.storage != "object":
            return
        entries: dict[str, tuple[PublishedVideo, Served, Served | None]] = {}
        hls = f"/streaming-playlists/hls/{video.uuid}/"  # keys.ts: hls/{video uuid}/{filename}
        for file in video.files.values():
            entries[hls + file.stored_name] = (video, file.object, file.presigned)
        for file in video.web_files.values():
            entries["/web-videos/" + file.stored_name] = (video, file.object, file.presigned)
        # storeHLSFileFromContent(..., JSON.stringify(json)): no newline, unlike outputJSON
        segments = to_json(video.segments)
        entries[hls + video.segments_name] = (
            video,
            _s3_object(segments, mtime_ms, "application/json"),
            None,
        )
        for name, text in self._playlists(video).items():
            entries[hls + name] = (
                video,
                _s3_object(text.encode(), mtime_ms, "application/vnd.apple.mpegurl"),
                None,
            )
        for caption in video.captions:
            entries["/captions/" + caption.filename] = (
                video, _s3_object(caption.text.encode(), mtime_ms, "text/vtt"), None,
            )  # fmt: skip
        with self._lock:
            self.objects.update(entries)


# -- helpers ---------------------------------------------------------------------------------


def _s3_object(
    data: bytes, mtime_ms: int, content_type: str, disposition: str | None = None
) -> Served:
    """An S3 object: a strong ETag (the MD5 of a single-part upload), RFC If-Range; a
    presigned GET echoes ``response-content-disposition``."""
    headers = {"x-amz-request-id": "FAKE0000000000"}
    if disposition is not None:
        headers["Content-Disposition"] = disposition
    return Served(
        content=data,
        etag=f'"{hashlib.md5(data).hexdigest()}"',  # noqa: S324
        last_modified=http_date(mtime_ms / 1000),
        content_type=content_type,
        headers=headers,
    )


def _segment_hashes(file: PeerTubeFile) -> dict[str, str]:
    """``updateSha256VODSegments`` (server/core/lib/hls.ts, commit 5615f71b): for each
    ``#EXT-X-BYTERANGE:<length>@<offset>`` line, ``"start-endInclusive": sha256``."""
    return {
        f"{offset}-{offset + length - 1}": hashlib.sha256(
            file.data[offset : offset + length]
        ).hexdigest()
        for offset, length in file.ranges
    }


def _playlist_for(data: bytes, duration: int) -> str:
    """A resolution playlist for bytes that were not cut by ffmpeg (a ``content_of`` file): the
    init segment is what comes before the first ``moof`` (or ``sidx``), and the rest is cut in
    ``PLAIN_SEGMENT`` ranges, as ffmpeg lists 4 s segments. Not real segment boundaries."""
    init = _init_end(data)
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-TARGETDURATION:4", "#EXT-X-MEDIA-SEQUENCE:0",
             "#EXT-X-PLAYLIST-TYPE:VOD", f'#EXT-X-MAP:URI="clip.mp4",BYTERANGE="{init}@0"']  # fmt: skip
    starts = list(range(init, len(data), PLAIN_SEGMENT))
    for start in starts:
        length = min(PLAIN_SEGMENT, len(data) - start)
        lines += [
            f"#EXTINF:{duration / max(len(starts), 1):.6f},",
            f"#EXT-X-BYTERANGE:{length}@{start}",
            "clip.mp4",
        ]
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def _init_end(data: bytes) -> int:
    position = 0
    while position + 8 <= len(data):
        size = int.from_bytes(data[position : position + 4], "big")
        if data[position + 4 : position + 8] in (b"moof", b"sidx"):
            return position
        if size < 8:
            break
        position += size
    return 0


def _warm_clips(heights: tuple[int, ...]) -> None:
    """Make the split-audio clips two at a time: the first publish of a session waits less."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2) as pool:
        jobs = [pool.submit(hls_clip, h, streams="video") for h in sorted(heights, reverse=True)]
        jobs.append(pool.submit(hls_clip, 0, streams="audio"))
        for job in jobs:
            job.result()


@functools.cache
def _default_preview() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        return make_jpeg(
            Path(folder, "preview.jpg"), colour="navy", width=85, height=48
        ).read_bytes()
