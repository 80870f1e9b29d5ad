"""What a download hands the archive: the records of a file fetched, or being fetched.

A download ends in a :class:`FetchedFile` (what it knows of the bytes it wrote, for the
catalog); a download in progress keeps a :class:`PartialState` beside its partial file. Both
are plain records the fetcher builds and the archive reads, kept apart from the
:class:`~archiver.archive.Archive` class so that every part of it, and the fetcher, can name
them without importing the whole archive. :func:`media_facts_row` is the catalog's row of what
FFmpeg read of a file, made both when a download records a video and when a kit measures one;
:data:`VIDEO` the one role whose files come in renditions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .catalog import MEDIA_FACTS, MEDIA_FACTS_VERSION, Derived

__all__ = ["VIDEO", "FetchedFile", "PartialState", "media_facts_row"]

# The largest length a sidecar may record: past any file (a record's number is not trusted).
MAX_LENGTH = 10**18
VIDEO = "video"  # the role whose files come in renditions, one per height


def media_facts_row(
    sha256: str, duration: float | None, width: int | None, height: int | None
) -> Derived:
    """The derived row of what FFmpeg read of a file: facts, no file."""
    return Derived(
        sha256, MEDIA_FACTS, MEDIA_FACTS_VERSION, None, None, None, duration, width, height
    )


@dataclass(frozen=True)
class FetchedFile:
    """What a finished download knows of the bytes it wrote, for the catalog."""

    url: str
    final_url: str
    sha256: str
    size: int
    etag: str | None
    last_modified: str | None
    content_type: str | None
    resolution: int | None = None
    # What FFmpeg read of a video when the download confirmed it plays: (duration, width,
    # height). Recorded with the file, so the kit never reads it again.
    media: tuple[float | None, int | None, int | None] | None = None
    # What the source's segment checksums said: "verified", "not published", or
    # "not verified: <why>"; None for files that have none (PDFs, images).
    segments: str | None = None


@dataclass(frozen=True)
class PartialState:
    """The sidecar of a partial download: which bytes the partial file holds.

    A partial is resumed only if the URL is the same and a validator (ETag or Last-Modified)
    was recorded, so that ``If-Range`` can refuse to splice two versions.
    """

    url: str
    etag: str | None
    last_modified: str | None
    length: int | None

    def to_json(self) -> bytes:
        return json.dumps(self.__dict__, sort_keys=True).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> PartialState | None:
        try:
            raw = json.loads(data)
            state = cls(
                url=raw["url"],
                etag=raw.get("etag"),
                last_modified=raw.get("last_modified"),
                length=raw.get("length"),
            )
        except (ValueError, KeyError, TypeError, RecursionError):  # nested past the stack
            return None
        valid = (
            isinstance(state.url, str)
            and isinstance(state.etag, str | None)
            and isinstance(state.last_modified, str | None)
            and (
                state.length is None
                or (isinstance(state.length, int) and 0 <= state.length < MAX_LENGTH)
            )
        )
        return state if valid else None
