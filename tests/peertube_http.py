"""How the fake PeerTube instance answers: its routes, access checks and rate limits.

The HTTP half of :class:`tests.peertube.FakeInstance`, kept apart from the publishing half: a
mixin whose one entry point, ``_handle``, the instance registers on the loopback server for
every path. Each behaviour names its PeerTube (or library) source; the JSON it writes comes
from ``tests/peertube_api.py``.
"""

from __future__ import annotations

import functools
import math
import random
import re
import subprocess
import tempfile
import threading
import time
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

from .media import require
from .peertube_api import (
    UUID_RE,
    Version,
    caption_m3u8,
    captions_json,
    download_filename,
    encode_uri,
    http_date,
    invalid_param,
    long_uuid,
    master_m3u8,
    problem,
    stat_etag,
    to_json,
    video_details,
)
from .server import Call, Reply, Served

if TYPE_CHECKING:
    from .peertube import PeerTubeFile, PublishedVideo

# config/default.yaml (commit f83674c1), rates_limit: api 50 per 10 s, the generate download
# route 5 per 5 s, the web client 500 per 10 s.
API_WINDOW, API_MAX = 10.0, 50
GENERATE_WINDOW, GENERATE_MAX = 5.0, 5
CLIENT_WINDOW, CLIENT_MAX = 10.0, 500
# express-rate-limit source/rate-limit.ts (commit c45ecb91): the default message, sent with
# res.send(string), hence text/html.
TOO_MANY = b"Too many requests, please try again later."
# server/core/controllers/api/index.ts (commit 381f8e3b): cors({origin: '*', exposedHeaders:
# 'Retry-After', credentials: true}) on /api; download.ts and static.ts: cors() (origin *).
API_CORS = [("Access-Control-Allow-Origin", "*"), ("Access-Control-Allow-Credentials", "true"),
            ("Access-Control-Expose-Headers", "Retry-After")]  # fmt: skip
CORS = {"Access-Control-Allow-Origin": "*"}
JSON_TYPE = ("Content-Type", "application/json; charset=utf-8")
PROBLEM_TYPE = ("Content-Type", "application/problem+json; charset=utf-8")


@dataclass
class Limited:
    """A 429 the fake sent."""

    path: str
    at: float
    retry_after: int


@dataclass
class Presigned:
    path: str
    uses: int


class RateLimiter:
    """express-rate-limit with its MemoryStore (source/memory-store.ts, commit 04d2fd06): a
    client's window opens at its first hit and lasts ``window`` seconds; every hit counts."""

    def __init__(self, window: float, limit: int) -> None:
        self.window = window
        self.limit = limit
        self.clients: dict[str, list[float]] = {}  # key → [hits, reset time]
        self.lock = threading.Lock()

    def hit(self, key: str) -> tuple[int, float]:
        """Count a hit; the client's hits so far and when its window ends (epoch seconds)."""
        with self.lock:
            now = time.time()
            client = self.clients.get(key)
            if client is None or client[1] <= now:
                client = self.clients[key] = [0, now + self.window]
            client[0] += 1
            return int(client[0]), client[1]

    def decrement(self, key: str) -> None:
        """``skipFailedRequests``: a failed answer gives its hit back."""
        with self.lock:
            client = self.clients.get(key)
            if client is not None and client[0] > 1:
                client[0] -= 1


Route = Callable[[Call, "re.Match[str]"], "Reply | Served | None"]


class Answers:
    """The routes of a PeerTube instance, answering from what :class:`FakeInstance` published."""

    url: str
    version: Version
    videos: dict[str, PublishedVideo]
    tokens: dict[str, int]
    file_tokens: dict[str, str]
    presigned: dict[str, Presigned]
    objects: dict[str, tuple[PublishedVideo, Served, Served | None]]
    limited: list[Limited]
    presigned_uses: int
    api_limiter: RateLimiter
    generate_limiter: RateLimiter
    client_limiter: RateLimiter
    _lock: threading.Lock
    _random: random.Random

    def _route_table(self) -> list[tuple[re.Pattern[str], Route]]:
        """The instance's routes after the API, in Express's order."""
        return [
            (re.compile(pattern, re.I), route)
            for pattern, route in [
                # download.ts (commit 01808d9e) mounts these with .use(): a prefix match,
                # case-insensitive; the extension is not checked.
                (r"^/download/streaming-playlists/hls/videos/(?P<id>[^/]+?)-(?P<res>[0-9]+)-fragmented\.(?P<ext>[^/]+?)(?:/.*)?$", self._download_hls),
                (r"^/download/web-videos/(?P<id>[^/]+?)-(?P<res>[0-9]+)\.(?P<ext>[^/]+?)(?:/.*)?$", self._download_web_new),
                (r"^/download/videos/generate/(?P<id>[^/]+?)(?P<ext>\.mp4|\.m4a)?/?$", self._generate),
                (r"^/download/videos/(?P<id>[^/]+?)-(?P<res>[0-9]+)\.(?P<ext>[^/]+?)(?:/.*)?$", self._download_web_old),
                (r"^/static/streaming-playlists/hls/(?P<private>private/)?(?P<uuid>[^/]+)/(?P<name>[^/]+)$", self._static_hls),
                (r"^/static/(?P<dir>web-videos|webseed)/(?P<private>private/)?(?P<name>[^/]+)$", self._static_web),
                (r"^/object-storage-proxy/(?:streaming-playlists/hls/private/[^/]+|web-videos/private)/(?P<name>[^/]+)$", self._proxy),
                (r"^/lazy-static/(?P<kind>previews|thumbnails|video-captions)/(?P<name>[^/]+)$", self._lazy),
                (r"^/(?:streaming-playlists|web-videos|captions)/", self._bucket),
                (r"^/(?:w|videos/watch|videos/embed)/(?P<id>[^/]+)/?$", self._page),
            ]
        ]  # fmt: skip

    def _uuid4(self) -> uuidlib.UUID:
        return uuidlib.UUID(int=self._random.getrandbits(128), version=4)

    def _playlists(self, video: PublishedVideo) -> dict[str, str]:
        """The master and resolution playlists, and (8.x) one per caption."""
        if not video.files:
            return {}
        out = {video.master_name: master_m3u8(video)}
        for file in video.files.values():
            out[file.playlist_name] = file.playlist.replace("clip.mp4", file.stored_name)
        if video.version.major >= 8:
            for caption in video.captions:
                out[caption.m3u8_name] = caption_m3u8(video, caption, self.url)
        return out

    # -- dispatch ----------------------------------------------------------------------------

    def _handle(self, call: Call) -> Reply | Served | None:
        if re.match(r"^/api/v1/videos(?:/|$)", call.path, re.I):
            return self._api(call)
        for pattern, route in self._routes:
            match = pattern.match(call.path)
            if match:
                return route(call, match)
        return None

    def _find(
        self, call: Call, raw: str, param: str, *, docs: str | None = None
    ) -> PublishedVideo | Reply:
        """``isValidVideoIdParam`` then ``doesVideoExist``: an id, a UUID or a short UUID."""
        value = unquote(raw)
        if len(value) == 22:  # toCompleteUUID: a failed conversion becomes ''
            value = long_uuid(value) or ""
        with self._lock:
            if value.isdigit():
                found = next((v for v in self.videos.values() if v.id == int(value)), None)
            elif UUID_RE.match(value):
                found = self.videos.get(value.lower())
            else:
                original = call.path + (("?" + _raw_query(call)) if call.query else "")
                return _problem_reply(invalid_param(
                    param, value, "Should have a valid video id (id, short UUID or UUID)", "params", original
                ))  # fmt: skip
        if found is None:
            return _problem_reply(problem(404, "Video not found", docs=docs))
        return found

    # -- authentication and visibility -------------------------------------------------------

    def _user(self, call: Call) -> int | Reply | None:
        """``optionalAuthenticate``: no header, no user; a bad token is a 401 (auth.ts)."""
        header = call.headers.get("Authorization")
        if header is None:
            return None
        match = re.match(r"^Bearer\s(\S+)$", header, re.I)
        if not match or match[1] not in self.tokens:
            return _problem_reply(problem(401, "Token is invalid", code="invalid_token"))
        return self.tokens[match[1]]

    def _can_see(
        self, call: Call, video: PublishedVideo, role: int | None, *, tried: bool
    ) -> Reply | None:
        """``checkCanSeeVideo`` (server/core/middlewares/validators/shared/videos.ts, commit
        29329d6c). ``tried``: optionalAuthenticate ran first, so a missing token is "Not
        authenticated"; otherwise authenticate() itself fails (captions route)."""
        if video.privacy in (3, 4):
            if role is None:
                if tried:
                    return _problem_reply(problem(401, "Not authenticated"))
                # oauth2-server's UnauthorizedRequestError (name unauthorized_request), turned
                # into res.fail by authenticate(): inferred, not observed.
                return _problem_reply(problem(401, "Token is invalid", code="unauthorized_request"))
            if video.privacy == 3 and role not in (0, 1):
                return _problem_reply(
                    problem(403, "Cannot fetch information of private/internal/blocked video")
                )
            return None
        if video.privacy == 5 and role not in (0, 1):
            given = call.headers.get("x-peertube-video-password")
            if given is None:
                return _problem_reply(problem(
                    403, "Please provide a password to access this password protected video",
                    code="video_requires_password",
                ))  # fmt: skip
            if given != video.password:
                return _problem_reply(problem(
                    403, "Incorrect video password. Access to the video is denied.",
                    code="incorrect_video_password",
                ))  # fmt: skip
        return None

    def _static_access(self, call: Call, video: PublishedVideo) -> Reply | None:
        """``checkCanAccessVideoStaticFiles``: with a token or a password header, the full
        check and its problem+json; with a valid ``videoFileToken``, or on a public or unlisted
        video, nothing; otherwise a bare ``res.sendStatus(403)``."""
        role = self._user(call)
        if isinstance(role, Reply):
            return role
        if role is not None or call.headers.get("x-peertube-video-password") is not None:
            return self._can_see(call, video, role, tried=True)
        token = call.query.get("videoFileToken", [""])[0]
        if self.file_tokens.get(token) == video.uuid or not video.private:
            return None
        return _text(403, "Forbidden")

    # -- the API -----------------------------------------------------------------------------

    def _api(self, call: Call) -> Reply:
        """Every /api/v1/videos* request: ``videosRouter.use(apiRateLimiter)`` first (videos/
        index.ts, commit 3842a527), then the route, or the API's ``badRequest`` fallback."""
        hits, reset = self.api_limiter.hit(call.client)
        limit = self.api_limiter.limit
        # headers.ts (commit f2cb7001) setLegacyHeaders; standardHeaders is off in PeerTube.
        headers = [
            ("X-RateLimit-Limit", str(limit)),
            ("X-RateLimit-Remaining", str(max(limit - hits, 0))),
            ("X-RateLimit-Reset", str(math.ceil(reset))),
            *API_CORS,
        ]
        if hits > limit:
            retry_after = max(math.ceil(reset - time.time()), 0)
            headers.append(("Retry-After", str(retry_after)))
            # middlewares/rate-limiter.ts: the handler lets admins and moderators through.
            role = self._user(call)
            if isinstance(role, Reply):
                role.headers[:0] = headers
                return role
            if role not in (0, 1):
                with self._lock:
                    self.limited.append(Limited(call.path, time.time(), retry_after))
                return Reply(
                    429, TOO_MANY, [*headers, ("Content-Type", "text/html; charset=utf-8")]
                )
        reply = self._api_route(call)
        reply.headers[:0] = headers
        return reply

    def _api_route(self, call: Call) -> Reply:
        path = call.path
        reads = call.method in ("GET", "HEAD")
        if (match := re.match(r"^/api/v1/videos/([^/]+?)/?$", path, re.I)) and reads:
            return self._get_video(call, match[1])
        if (match := re.match(r"^/api/v1/videos/([^/]+)/captions/?$", path, re.I)) and reads:
            return self._get_captions(call, match[1])
        if (
            match := re.match(r"^/api/v1/videos/([^/]+)/token/?$", path, re.I)
        ) and call.method == "POST":
            return self._post_token(call, match[1])
        # api/index.ts (commit 381f8e3b): apiRouter.use('/*', badRequest), an empty JSON 400
        return Reply(400, b"", [JSON_TYPE])

    def _get_video(self, call: Call, raw: str) -> Reply:
        role = self._user(call)
        if isinstance(role, Reply):
            return role
        video = self._find(call, raw, "id", docs="getVideo")
        if isinstance(video, Reply):
            return video
        refused = self._can_see(call, video, role, tried=True)
        if refused is not None:
            return refused
        return Reply(200, to_json(video_details(video, self.url)), [JSON_TYPE])

    def _get_captions(self, call: Call, raw: str) -> Reply:
        video = self._find(call, raw, "videoId")
        if isinstance(video, Reply):
            return video
        role = self._user(call) if call.headers.get("Authorization") else None
        if isinstance(role, Reply):
            return role
        refused = self._can_see(call, video, role, tried=False)
        if refused is not None:
            return refused
        return Reply(200, captions_json(video, self.url), [JSON_TYPE])

    def _post_token(self, call: Call, raw: str) -> Reply:
        """``POST /api/v1/videos/{id}/token`` (controllers/api/videos/token.ts, commit
        afb28272): a ``videoFileToken`` for the static and download routes."""
        role = self._user(call)
        if isinstance(role, Reply):
            return role
        video = self._find(call, raw, "id")
        if isinstance(video, Reply):
            return video
        refused = self._can_see(call, video, role, tried=True)
        if refused is not None:
            return refused
        token = str(self._uuid4())
        self.file_tokens[token] = video.uuid
        expires = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() + 3600))
        return Reply(200, to_json({"files": {"token": token, "expires": expires}}), [JSON_TYPE])

    # -- downloads ---------------------------------------------------------------------------

    def _download_hls(self, call: Call, match: re.Match[str]) -> Reply | Served:
        video = self._download_video(call, match["id"])
        if isinstance(video, Reply):
            return video
        if not video.has_playlist:
            return _text(404, "Not Found")  # res.sendStatus(404): no HLS playlist at all
        file = video.files.get(int(match["res"]))
        if file is None:
            return _problem_reply(problem(404, "Video file not found"))
        return self._send_file(video, file)

    def _download_web(self, call: Call, match: re.Match[str]) -> Reply | Served:
        video = self._download_video(call, match["id"])
        if isinstance(video, Reply):
            return video
        file = video.web_files.get(int(match["res"]))
        if file is None:
            return _problem_reply(problem(404, "Video file not found"))
        return self._send_file(video, file)

    def _download_web_new(self, call: Call, match: re.Match[str]) -> Reply | Served:
        """``/download/web-videos/`` exists from 6.3; a 4.x instance sends it to its client."""
        if self._legacy_for(match["id"]):
            return self._client(call)
        return self._download_web(call, match)

    def _download_web_old(self, call: Call, match: re.Match[str]) -> Reply | Served:
        """``/download/videos/{id}-{res}.{ext}``: the web-video route up to 6.2 (download.ts,
        variant id 12021156854). From 6.3 no route matches it: it falls to the web client's
        catch-all (server/server.ts router order, commit c88cb216)."""
        if not self._legacy_for(match["id"]):
            return self._client(call)
        return self._download_web(call, match)

    def _legacy_for(self, raw: str) -> bool:
        found = self._find(_QUIET, raw, "id")
        release = found.version if not isinstance(found, Reply) else self.version
        return release.legacy

    def _download_video(self, call: Call, raw: str) -> PublishedVideo | Reply:
        """``optionalAuthenticate`` then ``videosDownloadValidator``."""
        role = self._user(call)
        if isinstance(role, Reply):
            return role
        video = self._find(call, raw, "id")
        if isinstance(video, Reply):
            return video
        refused = self._static_access(call, video)
        return refused if refused is not None else video

    def _send_file(self, video: PublishedVideo, file: PeerTubeFile) -> Reply | Served:
        """``res.download`` of a local file, or a 302 to a presigned URL (``getSignedUrl``
        with ``expiresIn: 3600 * 24``, lib/object-storage/pre-signed-urls.ts, id 2176256623)."""
        if video.storage != "object":
            return file.download
        signature = self._random.randbytes(32).hex()
        key = (
            f"/streaming-playlists/hls/{video.uuid}/{file.stored_name}"
            if file.kind == "hls"
            else f"/web-videos/{file.stored_name}"
        )
        with self._lock:
            self.presigned[signature] = Presigned(key, self.presigned_uses)
        day = time.strftime("%Y%m%d", time.gmtime())
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        disposition = file.presigned.headers["Content-Disposition"]
        query = (
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Content-Sha256=UNSIGNED-PAYLOAD"
            f"&X-Amz-Credential=PEERTUBEFAKEKEY%2F{day}%2Fus-east-1%2Fs3%2Faws4_request"
            f"&X-Amz-Date={stamp}&X-Amz-Expires=86400&X-Amz-Signature={signature}"
            f"&X-Amz-SignedHeaders=host&response-content-disposition={quote(disposition, safe='-_.~')}"
            "&x-id=GetObject"
        )
        location = f"{video.bucket_url}{key}?{query}"
        # Express 4 res.redirect: 302, and for Accept */* the text form of the body.
        return Reply(
            302,
            f"Found. Redirecting to {location}".encode(),
            [("Location", location), ("Vary", "Accept"), ("Content-Type", "text/plain; charset=utf-8"),
             *CORS.items()],
        )  # fmt: skip

    def _generate(self, call: Call, match: re.Match[str]) -> Reply:
        """``/download/videos/generate/{id}``: 1 or 2 file ids muxed on the fly (download.ts,
        commit 01808d9e), limited to 5 per 5 s with skipFailedRequests."""
        hits, reset = self.generate_limiter.hit(call.client)
        limit = self.generate_limiter.limit
        headers = [("X-RateLimit-Limit", str(limit)), ("X-RateLimit-Remaining", str(max(limit - hits, 0))),
                   ("X-RateLimit-Reset", str(math.ceil(reset))), *CORS.items()]  # fmt: skip
        if hits > limit:
            retry_after = max(math.ceil(reset - time.time()), 0)
            with self._lock:
                self.limited.append(Limited(call.path, time.time(), retry_after))
            reply = Reply(429, TOO_MANY, [*headers, ("Retry-After", str(retry_after)),
                                          ("Content-Type", "text/html; charset=utf-8")])  # fmt: skip
        else:
            reply = self._generated(call, match)
            reply.headers[:0] = headers
        if reply.status >= 400:
            self.generate_limiter.decrement(call.client)
        return reply

    def _generated(self, call: Call, match: re.Match[str]) -> Reply:
        if self._legacy_for(match["id"]):
            return self._client(call)
        video = self._download_video(call, match["id"])
        if isinstance(video, Reply):
            return video
        # videosGenerateDownloadValidator: toIntArray, isNotEmptyIntArray, at most 2
        raw = call.query.get("videoFileIds", []) + call.query.get("videoFileIds[]", [])
        original = call.path + "?" + _raw_query(call) if call.query else call.path
        if not raw or not all(re.fullmatch(r"[+-]?\d+", v) for v in raw) or len(raw) > 2:
            return _problem_reply(
                invalid_param("videoFileIds", raw, "Invalid value", "query", original)
            )
        wanted = [int(v) for v in raw]
        files = [f for f in [*video.files.values(), *video.web_files.values()] if f.id in wanted]
        if not files:
            url = f"{self.url}/videos/watch/{video.uuid}"
            return _problem_reply(
                problem(404, f"No files found ({', '.join(raw)}) to download video {url}")
            )
        if sum(f.has_video for f in files) > 1 or sum(f.has_audio for f in files) > 1:
            return _problem_reply(problem(
                400, "Cannot generate a container with multiple video/audio files. "
                "PeerTube supports a maximum of 1 audio and 1 video file",
            ))  # fmt: skip
        top = max(files, key=lambda f: f.resolution)
        extname = ".m4a" if top.resolution == 0 else ".mp4"
        headers = [("Content-Type", "audio/mp4" if extname == ".m4a" else "video/mp4")]
        if not match["ext"]:
            # sic: the source leaves the closing quote out
            name = download_filename(video, None, extname, hls=False)
            headers.insert(0, ("Content-disposition", f'attachment; filename="{encode_uri(name)}'))
        return Reply(200, _merged(tuple(f.data for f in files)), headers, chunked=True)

    # -- static files ------------------------------------------------------------------------

    def _static_hls(self, call: Call, match: re.Match[str]) -> Reply | Served | None:
        """``/static/streaming-playlists/hls/[private/]{uuid}/{name}``: express.static."""
        video = self.videos.get(match["uuid"].lower())
        if video is None or video.storage == "object" or bool(match["private"]) != video.private:
            return _text(404, "Not Found")
        if video.private:
            refused = self._static_access(call, video)
            if refused is not None:
                return refused
        name = match["name"]
        for file in video.files.values():
            if file.stored_name == name:
                return file.static
        if name == video.segments_name and video.files:
            # fs-extra outputJSON (jsonfile): compact JSON and a newline at the end
            body = to_json(video.segments) + b"\n"
            return express_file(body, video.files[max(video.files)].mtime_ms, "application/json; charset=UTF-8",
                         {"Cache-Control": "public, max-age=0", **CORS})  # fmt: skip
        playlists = self._playlists(video)
        if name in playlists:
            return express_file(playlists[name].encode(), video.sorted_files(web=False)[0].mtime_ms,
                         "application/vnd.apple.mpegurl", {"Cache-Control": "public, max-age=0", **CORS})  # fmt: skip
        return _text(404, "Not Found")

    def _static_web(self, call: Call, match: re.Match[str]) -> Reply | Served | None:
        """``/static/web-videos/`` (``/static/webseed/`` up to 5.x)."""
        with self._lock:
            candidates = list(self.videos.values())
        for video in candidates:
            for file in video.web_files.values():
                if file.stored_name != match["name"] or video.storage == "object":
                    continue
                folder_ok = (match["dir"].lower() == "webseed") == video.version.legacy
                if not folder_ok or bool(match["private"]) != video.private:
                    return _text(404, "Not Found")
                refused = self._static_access(call, video) if video.private else None
                return refused or file.static
        return _text(404, "Not Found")

    def _proxy(self, call: Call, match: re.Match[str]) -> Reply | Served | None:
        """``/object-storage-proxy/...``: a private object streamed through after the checks."""
        path = call.path.removeprefix("/object-storage-proxy").replace("/private", "", 1)
        with self._lock:
            entry = self.objects.get(path)
        if entry is None:
            return _text(404, "Not Found")
        refused = self._static_access(call, entry[0])
        return refused or entry[1]

    def _lazy(self, call: Call, match: re.Match[str]) -> Reply | Served | None:
        """``/lazy-static/...``: ``res.sendFile`` with ``maxAge: '2d'`` (lazy-static.ts)."""
        name, kind = match["name"], match["kind"].lower()
        with self._lock:
            candidates = list(self.videos.values())
        for video in candidates:
            if kind == "video-captions":
                for caption in video.captions:
                    if caption.filename == name:
                        return caption.served
            elif name in (video.preview_name, video.thumbnail_name):
                return express_file(video.preview, 1_700_000_000_000, "image/jpeg",
                             {"Cache-Control": "public, max-age=172800", **CORS})  # fmt: skip
        return Reply(404, b"")  # res.status(404).end(), as far as could be read: a guess

    def _bucket(self, call: Call, match: re.Match[str]) -> Reply | Served | None:
        """The object storage (S3, path-style): public objects for anyone, private ones only
        with a presigned URL; a presigned URL serves ``presigned_uses`` requests, then answers
        as S3 does once ``X-Amz-Expires`` has passed."""
        with self._lock:
            entry = self.objects.get(call.path)
        if entry is None:
            return _s3_error(404, "NoSuchKey", "The specified key does not exist.")
        video, public, presigned = entry
        signature = call.query.get("X-Amz-Signature", [None])[0]
        if signature is None:
            if video.private:
                return _s3_error(403, "AccessDenied", "Access Denied")
            return public
        with self._lock:
            grant = self.presigned.get(signature)
            if grant is None or grant.path != call.path:
                return _s3_error(403, "SignatureDoesNotMatch", "The request signature we calculated "
                                 "does not match the signature you provided.")  # fmt: skip
            if grant.uses <= 0:
                return _s3_error(403, "AccessDenied", "Request has expired",
                                 "<X-Amz-Expires>86400</X-Amz-Expires>")  # fmt: skip
            grant.uses -= 1
        return presigned or public

    # -- the web client ----------------------------------------------------------------------

    def _page(self, call: Call, match: re.Match[str]) -> Reply:
        """``/w/:id``, ``/videos/watch/:id``, ``/videos/embed/:id`` (controllers/client.ts)."""
        found = self._find(_QUIET, match["id"], "id")
        return self._client(call, None if isinstance(found, Reply) else found, page=True)

    def _client(
        self, call: Call, video: PublishedVideo | None = None, *, page: bool = False
    ) -> Reply:
        """``serveIndexHTML`` behind the client rate limiter: the web app's index page when
        the client accepts HTML (or sends no Accept), else an empty 406.

        A watch or embed page of an unknown video is the same page with status 404: a guess.
        """
        hits, reset = self.client_limiter.hit(call.client)
        limit = self.client_limiter.limit
        headers = [("X-RateLimit-Limit", str(limit)), ("X-RateLimit-Remaining", str(max(limit - hits, 0))),
                   ("X-RateLimit-Reset", str(math.ceil(reset)))]  # fmt: skip
        if hits > limit:
            return Reply(429, TOO_MANY, [*headers, ("Content-Type", "text/html; charset=utf-8")])
        accept = call.headers.get("Accept")
        if accept is not None and _accepts(accept, ["html", "application/json"]) != "html":
            return Reply(406, b"", headers)
        title = f"{video.name} - PeerTube" if video is not None else "PeerTube"
        body = (
            '<!doctype html>\n<html lang="en-US"><head><meta charset="utf-8">'
            f'<title>{title}</title><meta property="og:title" content="{title}">'
            '</head><body><div id="incompatible-browser">We are sorry but it seems that PeerTube '
            "is not compatible with your web browser.</div><my-app></my-app></body></html>\n"
        ).encode()
        status = 404 if page and video is None else 200
        return Reply(status, body, [*headers, ("Content-Type", "text/html; charset=utf-8")])


class _Quiet:
    """A stand-in call for lookups that must not answer (no path, no query)."""

    path = ""
    query: dict[str, list[str]] = {}  # noqa: RUF012


_QUIET: Call = _Quiet()  # type: ignore[assignment]


def _raw_query(call: Call) -> str:
    return "&".join(f"{k}={v}" for k, values in call.query.items() for v in values)


def _problem_reply(body: bytes) -> Reply:
    import json

    return Reply(json.loads(body)["status"], body, [PROBLEM_TYPE])


def _text(status: int, text: str) -> Reply:
    """``res.sendStatus``: the reason phrase as text/plain."""
    return Reply(
        status, text.encode(), [("Content-Type", "text/plain; charset=utf-8"), *CORS.items()]
    )


def _s3_error(status: int, code: str, message: str, extra: str = "") -> Reply:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>{extra}"
        f"<ServerTime>{now}</ServerTime><RequestId>FAKE0000000000</RequestId></Error>"
    )
    return Reply(status, body.encode(), [("Content-Type", "application/xml")])


def _accepts(header: str, types: list[str]) -> str | None:
    """Express's ``req.accepts(types)`` (jshttp/accepts, negotiator): the type with the best
    quality, ties going to the earlier one; ``None`` when none is acceptable."""
    full = {"html": "text/html", "json": "application/json"}
    ranges = []
    for part in header.split(","):
        media, *params = [p.strip() for p in part.split(";")]
        quality = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    quality = float(param[2:])
                except ValueError:
                    quality = 0.0
        ranges.append((media.lower(), quality))
    best, best_q = None, 0.0
    for name in types:
        wanted = full.get(name, name)
        kind = wanted.partition("/")[0]
        q = max(
            (quality for media, quality in ranges
             if media in (wanted, f"{kind}/*", "*/*")),
            default=0.0,
        )  # fmt: skip
        if q > best_q:
            best, best_q = name, q
    return best


@functools.cache
def _merged(parts: tuple[bytes, ...]) -> bytes:
    """``muxToMergeVideoFiles``: the files' streams copied into one fragmented MP4
    (``-movflags frag_keyframe+empty_moov``, FFmpegContainer.mergeInputs, id 12838381834)."""
    program = require("ffmpeg")
    with tempfile.TemporaryDirectory() as folder:
        inputs: list[str] = []
        maps: list[str] = []
        for number, part in enumerate(parts):
            path = Path(folder, f"in{number}.mp4")
            path.write_bytes(part)
            inputs += ["-i", str(path)]
            maps += ["-map", str(number)]
        output = Path(folder, "out.mp4")
        subprocess.run(
            [program, "-v", "error", "-y", *inputs, *maps, "-c", "copy",
             "-movflags", "frag_keyframe+empty_moov", "-f", "mp4", str(output)],
            check=True,
        )  # fmt: skip
        return output.read_bytes()


def express_file(data: bytes, mtime_ms: int, content_type: str, headers: dict[str, str]) -> Served:
    """A file as Express's ``send`` serves it: weak stat ETag, Last-Modified, send's If-Range."""
    return Served(
        content=data,
        etag=stat_etag(len(data), mtime_ms),
        last_modified=http_date(mtime_ms / 1000),
        content_type=content_type,
        headers=dict(headers),
        validators="send",
    )
