"""What a PeerTube instance writes: its JSON answers, error documents and header values.

Pure functions used by the fake instance in ``tests/peertube.py``; each names the PeerTube (or
library) source its shape comes from. "Chocobozzz/PeerTube" is implied when only a path is
given; the commits are those of the copies read for tests/fixtures/peertube/SOURCES.md.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from email.utils import formatdate
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from .peertube import Caption, PeerTubeFile, PublishedVideo

# oculus42/short-uuid index.js (commit 571ec733), used by packages/node-utils/src/uuid.ts:
# the flickr base-58 alphabet, and every short UUID padded with "1" to 22 characters.
FLICKR_BASE58 = "123456789abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"
SHORT_UUID_LENGTH = 22

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)

DOCS = "https://docs.joinpeertube.org/api-rest-reference.html"

# server/core/initializers/constants.ts (commit cd417dde) and the enums it labels.
PRIVACIES = {1: "Public", 2: "Unlisted", 3: "Private", 4: "Internal", 5: "Password protected"}
STATES = {
    1: "Published", 2: "To transcode", 3: "To import", 4: "Waiting for livestream",
    5: "Livestream ended", 6: "To move to an external storage", 7: "Transcoding failed",
    8: "External storage move failed", 9: "To edit", 10: "To move to file system",
    11: "Move to file system failed",
}  # fmt: skip
LICENCES = {
    1: "Attribution", 2: "Attribution - Share Alike", 3: "Attribution - No Derivatives",
    4: "Attribution - Non Commercial", 5: "Attribution - Non Commercial - Share Alike",
    6: "Attribution - Non Commercial - No Derivatives", 7: "Public Domain Dedication",
}  # fmt: skip
CATEGORIES = {13: "Education", 15: "Science & Technology", 12: "How To"}
COMMENTS_POLICIES = {1: "Enabled", 2: "Disabled", 3: "Requires approval"}
# buildLanguages() in constants.ts: ISO 639-1 ids, some ISO 639-3 ids, and exactly these
# region or script forms. There is no "pt-BR" (Brazilian Portuguese is "pt"), and ids are
# case-sensitive. Labels of other two-letter ids are not copied here (see languages()).
LANGUAGES = {
    "ar": "Arabic", "br": "Breton", "ca": "Catalan", "co": "Corsican", "de": "German",
    "el": "Greek", "en": "English", "eo": "Esperanto", "es": "Spanish (Spain)",
    "es-419": "Spanish (Latin America)", "eu": "Basque", "fr": "French", "it": "Italian",
    "ja": "Japanese", "nl": "Dutch", "oc": "Occitan", "pt": "Portuguese (Brazilian)",
    "pt-PT": "Portuguese (Portugal)", "ru": "Russian", "tok": "Toki Pona", "uk": "Ukrainian",
    "zh-Hans": "Simplified Chinese", "zh-Hant": "Traditional Chinese", "ca-valencia": "Valencian",
    "kab": "Kabyle", "gcf": "Guadeloupean Creole French", "lat": "Latin", "fsl": "French Sign Language",
    "zxx": "No linguistic content",
}  # fmt: skip

# PDMLab/http-problem-details: a document without a type is "about:blank", titled with the
# status's reason phrase.
REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           406: "Not Acceptable", 429: "Too Many Requests"}  # fmt: skip


# -- short UUIDs ---------------------------------------------------------------------------------


def short_uuid(uuid: str) -> str:
    """PeerTube's ``uuidToShort``: the UUID's 128 bits in flickr base 58, padded to 22.

    >>> short_uuid("9c9de5e8-0a1e-484a-b099-e80766180a6d")
    'kkGMgK9ZtnKfYAgnEtQxbv'
    """
    number = int(uuid.replace("-", "").lower(), 16)
    digits = ""
    while number:
        number, digit = divmod(number, 58)
        digits = FLICKR_BASE58[digit] + digits
    return digits.rjust(SHORT_UUID_LENGTH, FLICKR_BASE58[0])


def long_uuid(short: str) -> str | None:
    """PeerTube's ``shortToUUID``; ``None`` for what is not a short UUID of a 128-bit value.

    >>> long_uuid("kkGMgK9ZtnKfYAgnEtQxbv")
    '9c9de5e8-0a1e-484a-b099-e80766180a6d'
    """
    if len(short) != SHORT_UUID_LENGTH or any(c not in FLICKR_BASE58 for c in short):
        return None
    number = 0
    for char in short:
        number = number * 58 + FLICKR_BASE58.index(char)
    if number >= 1 << 128:
        return None
    text = f"{number:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def language_label(language: str) -> str:
    """The label PeerTube gives a caption or video language id; refuses what it refuses."""
    if language in LANGUAGES:
        return LANGUAGES[language]
    if re.fullmatch(r"[a-z]{2}", language):
        return language  # a valid ISO 639-1 id whose English name is not copied here
    raise ValueError(f"{language!r} is not a PeerTube language id (no pt-BR, fr-FR, EN...)")


# -- versions ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Version:
    """Which shapes a PeerTube release writes; "4.3", "7.0", "7.1", "8.0"..."""

    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> Version:
        major, _, minor = text.partition(".")
        version = cls(int(major), int(minor or 0))
        if version.major in (5, 6) or not 3 <= version.major <= 8:
            raise ValueError(f"PeerTube {text}: only 3.x/4.x and 7.x/8.x shapes are emulated")
        return version

    @property
    def legacy(self) -> bool:
        """3.x/4.x: web videos under /download/videos/, VideoFile without id/width/streams."""
        return self.major <= 4

    @property
    def at_least_7_1(self) -> bool:
        return (self.major, self.minor) >= (7, 1)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


# -- HTTP values ---------------------------------------------------------------------------------


def http_date(seconds: float) -> str:
    return formatdate(seconds, usegmt=True)


def stat_etag(size: int, mtime_ms: int) -> str:
    """The ETag Express's ``send`` gives a file: jshttp/etag ``stattag``, weak for a stat:
    ``W/"<size hex>-<mtime in milliseconds hex>"``."""
    return f'W/"{size:x}-{mtime_ms:x}"'


def content_disposition(filename: str) -> str:
    """``Content-Disposition`` as Express's ``res.download`` writes it (jshttp/content-disposition).

    A name of printable Latin-1 goes out as is in ``filename="..."`` (Node writes header
    strings as Latin-1, so "é" is the single byte 0xE9); other characters become "?" there,
    with the real name in ``filename*=UTF-8''...``.
    """
    name = filename.rsplit("/", 1)[-1]
    quoted_ok = re.fullmatch(r"[\x20-\x7e\x80-\xff]+", name) is not None
    fallback = re.sub(r"[^\x20-\x7e\xa0-\xff]", "?", name)
    has_fallback = fallback != name
    params: dict[str, str] = {}
    if has_fallback or not quoted_ok or re.search(r"%[0-9A-Fa-f]{2}", name):
        encoded = quote(name, safe="!#$&+^_`|~-.")  # attr-char, as the library's ustring
        params["filename*"] = "UTF-8''" + encoded
    if quoted_ok or has_fallback:
        value = fallback if has_fallback else name
        params["filename"] = '"' + re.sub(r'([\\"])', r"\\\1", value) + '"'
    return "attachment" + "".join(f"; {key}={params[key]}" for key in sorted(params))


def encode_uri(text: str) -> str:
    """JavaScript's ``encodeURI``."""
    return quote(text, safe=";,/?:@&=+$-_.!~*'()#")


def download_filename(
    video: PublishedVideo, resolution: int | None, extname: str, *, hls: bool
) -> str:
    """``buildDownloadFilename`` in server/core/controllers/download.ts (commit 01808d9e):
    the video's name with / and \\ made _, then ``-<res>p``, then ``-hls`` for HLS files."""
    name = re.sub(r"[/\\]", "_", video.name)
    return (
        name
        + (f"-{resolution}p" if resolution is not None else "")
        + ("-hls" if hls else "")
        + extname
    )


def to_json(document: object) -> bytes:
    """Express's ``res.json``: ``JSON.stringify`` with no spaces, non-ASCII left as is."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


# -- errors --------------------------------------------------------------------------------------


def problem(
    status: int,
    detail: str,
    *,
    code: str | None = None,
    docs: str | None = None,
    instance: str | None = None,
    data: dict[str, Any] | None = None,
) -> bytes:
    """A ``res.fail`` body (server/core/middlewares/error.ts, commit cd417dde, with
    PDMLab/http-problem-details commit 43bdb87a): keys type, title, detail, instance, status,
    then the extension (data, docs, code). A PeerTube ``code`` sets the type and leaves no title;
    without one the type is about:blank and the title the reason phrase."""
    document: dict[str, Any] = {}
    if code is not None:
        document["type"] = f"{DOCS}#section/Errors/{code}"
    else:
        document["type"] = "about:blank"
        document["title"] = REASONS.get(status, "Error")
    document["detail"] = detail
    if instance is not None:
        document["instance"] = instance
    document["status"] = status
    document.update(data or {})
    if docs is not None:
        document["docs"] = f"{DOCS}#operation/{docs}"
    if code is not None:
        document["code"] = code
    return to_json(document)


def invalid_param(name: str, value: object, message: str, location: str, path: str) -> bytes:
    """The 400 an express-validator check gives (``areValidationErrors``): detail and
    ``invalid-params`` name the field. Shape of each entry as express-validator 7 writes it."""
    entry = {"type": "field", "value": value, "msg": message, "path": name, "location": location}
    return problem(
        400,
        f"Incorrect request parameters: {name}",
        instance=path,
        data={"invalid-params": {name: entry}},
    )


# -- VideoDetails --------------------------------------------------------------------------------


def video_file_json(
    video: PublishedVideo, file: PeerTubeFile, base: str, *, hls: bool
) -> dict[str, Any]:
    """One VideoFile as ``videoFilesModelToFormattedJSON`` writes it.

    4.x (server/models/video/formatter/video-format-utils.ts, commit 0628157f): no id, no
    width/height, no stream flags. 7.x (server/core/models/video/formatter/video-api-format.ts,
    6.x commit 29329d6c + hasAudio/hasVideo from 6.2/6.3 and storage from 7.x per the 7.0.0
    openapi). 8.x (newest variant, id 66344019174): ``playlistUrl`` on HLS files.
    ``magnetUri`` is left out when undefined, as JSON.stringify does.
    """
    version = video.version
    out: dict[str, Any] = {}
    if not version.legacy:
        out["id"] = file.id
    out["resolution"] = {
        "id": file.resolution,
        "label": "Audio" if file.resolution == 0 else f"{file.resolution}p",
    }
    if not version.legacy:
        out["width"] = file.width
        out["height"] = file.height
    if file.torrent_name is not None:
        out["magnetUri"] = magnet_uri(video, file, base)
    out["size"] = file.size
    out["fps"] = file.fps
    out["torrentUrl"] = (
        base + "/lazy-static/torrents/" + file.torrent_name if file.torrent_name else None
    )
    out["torrentDownloadUrl"] = (
        base + "/download/torrents/" + file.torrent_name if file.torrent_name else None
    )
    out["fileUrl"] = video.file_url(file)
    out["fileDownloadUrl"] = video.download_url(file.resolution, web=not hls)
    out["metadataUrl"] = f"{base}/api/v1/videos/{video.uuid}/metadata/{file.id}"
    if not version.legacy:
        out["hasAudio"] = file.has_audio
        out["hasVideo"] = file.has_video
        if version.major >= 8 and hls:
            # getHLSResolutionPlaylistFilename(fileUrl): the file's URL, -fragmented.mp4 → .m3u8
            out["playlistUrl"] = re.sub(r"-fragmented\.mp4$", ".m3u8", out["fileUrl"])
        out["storage"] = 1 if video.storage == "object" else 0
    return out


def magnet_uri(video: PublishedVideo, file: PeerTubeFile, base: str) -> str:
    """A magnet link as ``generateMagnetUri`` builds it (xs, xt, dn, tr, ws); the order of its
    parameters is not verified."""
    trackers = [f"{base}/tracker/announce", base.replace("http", "ws", 1) + "/tracker/socket"]
    return (
        f"magnet:?xs={quote(base + '/lazy-static/torrents/' + (file.torrent_name or ''), safe='')}"
        f"&xt=urn:btih:{file.info_hash}&dn={quote(video.name, safe='')}"
        + "".join(f"&tr={quote(t, safe='')}" for t in trackers)
        + f"&ws={quote(video.file_url(file), safe='')}"
    )


def _actor(
    base: str, kind: str, name: str, display: str, number: int, *, full: bool
) -> dict[str, Any]:
    """An account or channel summary (``toFormattedSummaryJSON``) or, with ``full``, its
    ``toFormattedJSON``. Only name, displayName, url and host are relied on; the other keys are
    a plausible subset, not checked against the source."""
    path = "a" if kind == "account" else "c"
    out: dict[str, Any] = {
        "id": number,
        "name": name,
        "displayName": display,
        "url": f"{base}/{path}/{name}",
        "host": base.split("//", 1)[1],
        "avatars": [],
    }
    if full:
        out.update(
            {
                "followingCount": 0,
                "followersCount": 0,
                "createdAt": "2020-09-01T08:00:00.000Z",
                "updatedAt": "2020-09-01T08:00:00.000Z",
                "description": None,
                "support": None,
                "banners": [],
            }
        )
    return out


def video_details(video: PublishedVideo, base: str) -> dict[str, Any]:
    """``GET /api/v1/videos/{id}``: ``videoModelToFormattedDetailsJSON`` for the video's version.

    Key order follows the object literals: the Video part (id ... channel, then the additional
    attributes blacklisted, blacklistedReason, streamingPlaylists, files), then the details
    (support, [descriptionPath,] tags, [commentsEnabled,] ...). ``channel`` and ``account``
    are replaced in place by their full forms, as a spread then assignment does in JS.
    """
    v = video.version
    out: dict[str, Any] = {
        "id": video.id,
        "uuid": video.uuid,
        "shortUUID": video.short_uuid,
        "url": f"{base}/videos/watch/{video.uuid}",
        "name": video.name,
        "category": {"id": 13, "label": CATEGORIES[13]},
        "licence": {"id": video.licence, "label": LICENCES.get(video.licence, "Unknown")},
        "language": {"id": video.language, "label": language_label(video.language)},
        "privacy": {"id": video.privacy, "label": PRIVACIES.get(video.privacy, "Unknown")},
        "nsfw": False,
    }
    if v.major >= 8:
        out["nsfwFlags"] = 0
        out["nsfwSummary"] = None
    if not v.legacy:
        out["truncatedDescription"] = video.description
    out["description"] = video.description
    out["isLocal"] = True
    out["duration"] = video.duration
    if not v.legacy:
        out["aspectRatio"] = video.aspect_ratio
    out["views"] = 0
    if not v.legacy or video.is_live:
        out["viewers"] = 0
    out["likes"] = 0
    out["dislikes"] = 0
    out["thumbnailPath"] = f"/lazy-static/thumbnails/{video.thumbnail_name}"
    out["previewPath"] = f"/lazy-static/previews/{video.preview_name}"
    if v.major >= 8:
        # thumbnails[] (packages/models/src/videos/thumbnail/thumbnail.model.ts, commit
        # 8b5d4d9f): the two default sizes of config/default.yaml, 280×157 and 850×480.
        out["thumbnails"] = [
            {
                "height": 157,
                "width": 280,
                "aspectRatio": "16:9",
                "fileUrl": base + out["thumbnailPath"],
            },
            {
                "height": 480,
                "width": 850,
                "aspectRatio": "16:9",
                "fileUrl": base + out["previewPath"],
            },
        ]
    embed_id = video.short_uuid if v.major >= 8 else video.uuid
    out["embedPath"] = f"/videos/embed/{embed_id}"
    out["createdAt"] = video.created_at
    out["updatedAt"] = video.created_at
    out["publishedAt"] = video.created_at
    out["originallyPublishedAt"] = None
    out["isLive"] = video.is_live
    out["account"] = None  # placed here, filled below
    out["channel"] = None
    if v.major >= 8:
        out["comments"] = 0
    out["blacklisted"] = False
    out["blacklistedReason"] = None
    out["streamingPlaylists"] = streaming_playlists(video, base)
    out["files"] = [
        video_file_json(video, f, base, hls=False) for f in video.sorted_files(web=True)
    ]
    if v.major >= 8:
        out["liveSchedules"] = []
    out["support"] = None
    if v.major < 8:
        out["descriptionPath"] = f"/api/v1/videos/{video.uuid}/description"
    out["channel"] = _actor(base, "channel", "ressources_channel", "Ressources", 3, full=True)
    out["account"] = _actor(base, "account", "ressources", "Ressources pédagogiques", 5, full=True)
    out["tags"] = ["éducation"]
    if v.legacy or v.major == 7:
        out["commentsEnabled"] = True  # TODO in the source: removed after 6.2's deprecation
    if not v.legacy:
        out["commentsPolicy"] = {"id": 1, "label": COMMENTS_POLICIES[1]}
    out["downloadEnabled"] = True
    out["waitTranscoding"] = video.wait_transcoding
    if not v.legacy:
        out["inputFileUpdatedAt"] = None
    out["state"] = {"id": video.state, "label": STATES.get(video.state, "Unknown")}
    out["trackerUrls"] = [
        f"{base}/tracker/announce",
        base.replace("http", "ws", 1) + "/tracker/socket",
    ]
    if v.major >= 8:
        out["embedPrivacyPolicy"] = {"id": 1, "label": "All allowed"}
    return out


def streaming_playlists(video: PublishedVideo, base: str) -> list[dict[str, Any]]:
    """``streamingPlaylistsModelToFormattedJSON``: one HLS playlist (type 1), or none."""
    if not video.has_playlist:
        return []
    return [
        {
            "id": video.playlist_id,
            "type": 1,
            "playlistUrl": video.hls_url(video.master_name),
            "segmentsSha256Url": video.hls_url(video.segments_name),
            "redundancies": [],
            "files": [
                video_file_json(video, f, base, hls=True) for f in video.sorted_files(web=False)
            ],
        }
    ]


# -- captions ------------------------------------------------------------------------------------


def caption_json(video: PublishedVideo, caption: Caption, base: str) -> dict[str, Any]:
    """One item of ``GET /api/v1/videos/{id}/captions`` (``VideoCaptionModel.toFormattedJSON``).

    4.x: language and captionPath (guessed from the 4.x model). 7.0 (video-caption.ts, commit
    82246a0c): + automaticallyGenerated and updatedAt, captionPath relative. 7.1 (models
    package, commit 26044794): + absolute fileUrl, captionPath deprecated. 8.x (id
    10414926963): captionPath null when the caption is on object storage, + m3u8Url.
    """
    v = video.version
    path = f"/lazy-static/video-captions/{caption.filename}"
    out: dict[str, Any] = {
        "language": {"id": caption.language, "label": language_label(caption.language)}
    }
    if v.legacy:
        out["captionPath"] = path
        return out
    out["automaticallyGenerated"] = False
    on_object = video.storage == "object" and v.major >= 8
    out["captionPath"] = None if on_object else path
    if v.at_least_7_1:
        out["fileUrl"] = (
            f"{video.bucket_url}/captions/{caption.filename}" if on_object else base + path
        )
    if v.major >= 8:
        out["m3u8Url"] = video.hls_url(caption.m3u8_name) if video.has_playlist else None
    out["updatedAt"] = video.created_at
    return out


def captions_json(video: PublishedVideo, base: str) -> bytes:
    """``getFormattedObjects(data, data.length)``: ``{total, data}``, by language ascending."""
    items = [caption_json(video, c, base) for c in sorted(video.captions, key=lambda c: c.language)]
    return to_json({"total": len(items), "data": items})


def caption_m3u8(video: PublishedVideo, caption: Caption, base: str) -> str:
    """``buildCaptionM3U8Content`` (server/core/lib/hls.ts, id 10653119564)."""
    url = base + f"/lazy-static/video-captions/{caption.filename}"
    return (
        f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{video.duration}\n#EXT-X-MEDIA-SEQUENCE:0\n"
        f"#EXTINF:{video.duration},\n{url}\n#EXT-X-ENDLIST\n"
    )


def master_m3u8(video: PublishedVideo) -> str:
    """A master playlist in the form ``updateMasterHLSPlaylist`` writes (hls.ts, commit
    5615f71b): an audio-only file becomes an ``EXT-X-MEDIA`` rendition the variants point to.
    Bandwidth and codec values are made up."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", ""]
    audio = video.files.get(0) if video.split_audio else None
    if audio is not None:
        lines.append(
            '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="Audio",AUTOSELECT=YES,DEFAULT=YES,'
            f'URI="{audio.playlist_name}"'
        )
    for file in video.sorted_files(web=False):
        if file.resolution == 0 and audio is not None:
            continue
        group = ',AUDIO="audio"' if audio is not None else ""
        lines.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={file.size * 8 // max(video.duration, 1)},"
            f'RESOLUTION={file.width}x{file.height},FRAME-RATE={file.fps},CODECS="avc1.64001f,mp4a.40.2"{group}'
        )
        lines.append(file.playlist_name)
        lines.append("")
    return "\n".join(lines)
