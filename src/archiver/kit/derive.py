"""What the kit makes from a held video, once per sha256, kept in the archive: what FFmpeg
reads of it, its poster frame, its re-encoded copy (``--transcode``).

Each is cached in the catalog by the source's sha256 and the recipe's version (see
:class:`~archiver.catalog.Derived`): an unchanged video is never read or encoded twice, and a
changed recipe makes its outputs again.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from .. import media
from ..archive import Archive, Derived, FileRecord
from ..errors import describe_os_error
from ..files import file_sha256

__all__ = ["Source", "Unplayable", "facts", "poster", "transcoded"]

log = logging.getLogger(__name__)


class Unplayable(Exception):
    """FFmpeg finds no playable video in a held file: it stays out of the kit."""


@dataclass(frozen=True)
class Source:
    """Where a kit file's bytes come from: a file of the archive, or bytes in memory."""

    sha256: str
    size: int
    path: Path | None = None
    data: bytes | None = None

    @classmethod
    def of_bytes(cls, data: bytes) -> Source:
        return cls(sha256=hashlib.sha256(data).hexdigest(), size=len(data), data=data)

    @classmethod
    def held(cls, archive: Archive, record: FileRecord) -> Source:
        return cls(sha256=record.sha256, size=record.size, path=archive.root / record.path)


def facts(archive: Archive, record: FileRecord) -> Derived:
    """What FFmpeg read of the video: recorded when it was downloaded, else read now, once.

    Raises :class:`Unplayable` when FFmpeg finds no playable video in the file (one held
    from before downloads were checked).
    """
    found = archive.media_facts(record.sha256)
    if found is not None:
        return found
    try:
        info = media.confirm_playable(archive.root / record.path)
    except media.MediaError as exc:
        raise Unplayable(exc.reason) from exc
    return archive.record_media_facts(record.sha256, info.duration, info.width, info.height)


def poster(archive: Archive, record: FileRecord, known: Derived) -> Source:
    """A frame of the video as its poster: from the cache or made once with ffmpeg.

    Raises :class:`~archiver.media.MediaError` (``MediaUnavailable`` without ffmpeg).
    """
    cached = archive.derived(record.sha256, "poster", media.POSTER_VERSION)
    if cached is None:
        target = archive.derived_path(record.sha256, f"poster-v{media.POSTER_VERSION}.jpg")
        info = media.MediaInfo(known.duration, known.width, known.height)
        media.make_poster(archive.root / record.path, target, info)
        cached = _record_made(archive, record, "poster", media.POSTER_VERSION, target, info)
    made = _source(archive, cached)
    if made is None:
        raise media.MediaError(archive.root / record.path, "no poster was recorded")
    return made


def transcoded(
    archive: Archive, record: FileRecord, known: Derived, preset: media.Preset, label: str
) -> Source:
    """The video re-encoded with ``preset``: made once, kept in the archive by sha256."""
    kind = f"transcode-{preset.name}"
    cached = archive.derived(record.sha256, kind, preset.version)
    if cached is None or cached.path is None:
        log.info("%s: re-encoding to %s", label, preset.name)
        source = archive.root / record.path
        target = archive.derived_path(record.sha256, f"{kind}-v{preset.version}.mp4")
        info = media.MediaInfo(known.duration, known.width, known.height)
        media.transcode(source, target, info, preset)
        cached = _record_made(archive, record, kind, preset.version, target, media.probe(target))
    made = _source(archive, cached)
    if made is None:
        raise media.MediaError(archive.root / record.path, f"no {kind} was recorded")
    return made


def _record_made(
    archive: Archive,
    record: FileRecord,
    kind: str,
    version: int,
    made: Path,
    info: media.MediaInfo,
) -> Derived:
    """Note in the catalog what was made from ``record``'s bytes, so it is never made again."""
    try:
        checksum, size = file_sha256(made), made.stat().st_size
    except OSError as exc:
        raise media.MediaError(made, f"cannot read it: {describe_os_error(exc)}") from exc
    derived = Derived(
        sha256=record.sha256,
        kind=kind,
        version=version,
        path=made.relative_to(archive.root).as_posix(),
        file_sha256=checksum,
        file_size=size,
        duration=info.duration,
        width=info.width,
        height=info.height,
    )
    archive.record_derived(derived)
    return derived


def _source(archive: Archive, derived: Derived) -> Source | None:
    """The file a cached derivation made (a poster, a re-encode), as a kit file's source."""
    if derived.path is None or derived.file_sha256 is None or derived.file_size is None:
        return None
    return Source(
        sha256=derived.file_sha256, size=derived.file_size, path=archive.root / derived.path
    )
