"""PeerTube's links: which video a URL names, in every form an instance accepts.

A video is named by its UUID or by its *short UUID*: the same 128 bits written in base 58 with
the Flickr alphabet, always 22 characters (PeerTube's ``packages/node-utils/src/uuid.ts``,
through the ``short-uuid`` package with ``consistentLength``). Every video route accepts
either (``isValidVideoIdParam`` → ``toCompleteUUID``): the player's ``/videos/embed/{id}``,
the watch pages ``/videos/watch/{id}`` and ``/w/{id}``, the API ``/api/v1/videos/{id}``, and
the download routes ``/download/streaming-playlists/hls/videos/{uuid}-{height}-fragmented.mp4``,
``/download/web-videos/{uuid}-{height}.mp4`` (6.3 and later) and ``/download/videos/…``
(before 6.3).
"""

from __future__ import annotations

import re
import uuid as uuid_module

__all__ = ["SHORT_UUID_LENGTH", "height_in_link", "short_to_uuid", "uuid_to_short", "video_id"]

_ALPHABET = "123456789abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"  # flickrBase58
_VALUES = {c: i for i, c in enumerate(_ALPHABET)}
SHORT_UUID_LENGTH = 22  # ceil(log(2**128) / log(58))
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_SHORT = rf"[{_ALPHABET}]{{{SHORT_UUID_LENGTH}}}"
_ID = rf"(?P<id>{_UUID}|{_SHORT})"
# Each route that names one video, by the path it answers (a query string never matters).
_ROUTES = [
    re.compile(rf"^/videos/(?:embed|watch)/{_ID}/?$"),
    re.compile(rf"^/w/{_ID}/?$"),
    re.compile(rf"^/api/v1/videos/{_ID}/?$"),
    re.compile(rf"^/download/streaming-playlists/hls/videos/{_ID}-\d+-fragmented\.\w+$"),
    re.compile(rf"^/download/(?:web-videos|videos)/{_ID}-\d+\.\w+$"),
    re.compile(
        rf"^/static/(?:streaming-playlists/hls/(?:private/)?|web-videos/(?:private/)?){_ID}/"
    ),
]
_HEIGHT = re.compile(r"-(\d{3,4})(?:-fragmented)?\.(?:mp4|webm|mkv|m4v)$")


def uuid_to_short(value: str) -> str:
    """A UUID's short form, as PeerTube writes it.

    >>> uuid_to_short("9c9de5e8-0a1e-484a-b099-e80766180a6d")
    'kkGMgK9ZtnKfYAgnEtQxbv'
    """
    number = uuid_module.UUID(value).int
    digits = []
    while number:
        number, rest = divmod(number, 58)
        digits.append(_ALPHABET[rest])
    return "".join(reversed(digits)).rjust(SHORT_UUID_LENGTH, _ALPHABET[0])


def short_to_uuid(value: str) -> str | None:
    """The UUID a short UUID stands for; ``None`` when it is not one.

    >>> short_to_uuid("kkGMgK9ZtnKfYAgnEtQxbv")
    '9c9de5e8-0a1e-484a-b099-e80766180a6d'
    """
    if len(value) != SHORT_UUID_LENGTH or any(c not in _VALUES for c in value):
        return None
    number = 0
    for character in value:
        number = number * 58 + _VALUES[character]
    if number >= 1 << 128:
        return None
    return str(uuid_module.UUID(int=number))


def video_id(path: str) -> str | None:
    """The UUID of the video a PeerTube URL's path names (from either form), or ``None``.

    >>> video_id("/w/kkGMgK9ZtnKfYAgnEtQxbv")
    '9c9de5e8-0a1e-484a-b099-e80766180a6d'
    >>> video_id("/videos/embed/9C9DE5E8-0a1e-484a-b099-e80766180a6d")
    '9c9de5e8-0a1e-484a-b099-e80766180a6d'
    >>> video_id("/w/p/kkGMgK9ZtnKfYAgnEtQxbv") is None  # a playlist, not a video
    True
    """
    for route in _ROUTES:
        found = route.match(path)
        if found:
            name = found.group("id")
            return name.lower() if len(name) == 36 else short_to_uuid(name)
    return None


def height_in_link(path: str) -> int | None:
    """The height a download link's file name says (``…-720-fragmented.mp4`` → 720).

    >>> height_in_link("/download/videos/9c9de5e8-0a1e-484a-b099-e80766180a6d-480.mp4")
    480
    """
    found = _HEIGHT.search(path)
    return int(found.group(1)) if found else None
