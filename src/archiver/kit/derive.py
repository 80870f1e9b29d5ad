"""What the kit makes from a held video, once per sha256, kept in the archive: what FFmpeg
reads of it, its poster frame, its re-encoded copy (``--transcode``), and the video joined
with its sound when PeerTube stores that apart (role ``"audio"``).

Each is cached in the catalog by the source's sha256 and the recipe's version (see
:class:`~archiver.catalog.Derived`): an unchanged video is never read or encoded twice, and a
changed recipe makes its outputs again.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from pathlib import Path

from .. import media
from ..archive import Archive, Derived, FileRecord
from ..errors import describe_os_error
from ..files import file_sha256

__all__ = [
    "Silent",
    "Source",
    "Unjoinable",
    "Unplayable",
    "carried_size",
    "facts",
    "joined",
    "joined_kind",
    "poster",
    "silent",
    "transcoded",
]

log = logging.getLogger(__name__)


class Unplayable(Exception):
    """FFmpeg finds no playable video in a held file: it stays out of the kit."""


class Unjoinable(Exception):
    """A video and its sound, both readable, did not make one playable MP4 with picture and
    sound: the video stays out of the kit, named, rather than carried by a recipe gone wrong."""


class Silent(Exception):
    """A video's sound is not there to join (its file missing or unplayable, or no ffmpeg):
    the video goes into the kit without sound, with a warning."""


class Source:
    """Where a kit file's bytes come from: a file of the archive, or bytes in memory.

    Immutable, compared by value. A file's path may be given as text (:meth:`held`), made a
    :class:`~pathlib.Path` only when asked for: a kit of 10,000 videos plans 30,000 files of
    the archive, an update that writes none asks for no path, and pathlib's parsing was a
    fifth of the planning's time.
    """

    __slots__ = ("_path", "_where", "data", "sha256", "size")
    sha256: str
    size: int
    data: bytes | None
    _where: str | None
    _path: Path | None

    def __init__(
        self, sha256: str, size: int, path: Path | str | None = None, data: bytes | None = None
    ) -> None:
        object.__setattr__(self, "sha256", sha256)
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "_where", None if path is None else os.fspath(path))
        object.__setattr__(self, "_path", path if isinstance(path, Path) else None)

    @property
    def path(self) -> Path | None:
        """The file of the archive the bytes are read from (``None``: :attr:`data`)."""
        if self._path is None and self._where is not None:
            object.__setattr__(self, "_path", Path(self._where))
        return self._path

    @property
    def where(self) -> str | None:
        """:attr:`path` as text, no :class:`~pathlib.Path` made for it."""
        return self._where

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: cannot delete {name!r}")

    def _fields(self) -> tuple[str, int, str | None, bytes | None]:
        return self.sha256, self.size, self._where, self.data

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Source)  # noqa: S101 - for mypy: checked just above
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(sha256={self.sha256!r}, size={self.size!r},"
            f" path={self.path!r}, data={self.data!r})"
        )

    @classmethod
    def of_bytes(cls, data: bytes) -> Source:
        return cls(sha256=hashlib.sha256(data).hexdigest(), size=len(data), data=data)

    @classmethod
    def held(cls, archive: Archive, record: FileRecord) -> Source:
        # A catalog's path is checked (relative, no ``..``): joined as text, not parsed.
        return cls(record.sha256, record.size, f"{archive.root}/{record.path}")


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


def poster(archive: Archive, origin: Source, known: Derived) -> Source:
    """A frame of the video ``origin`` as its poster: from the cache or made once with ffmpeg.

    Raises :class:`~archiver.media.MediaError` (``MediaUnavailable`` without ffmpeg).
    """
    cached = archive.derived(origin.sha256, "poster", media.POSTER_VERSION)
    if cached is None:  # its path made a Path only now: see Source
        path = _path(origin)
        target = archive.derived_path(origin.sha256, f"poster-v{media.POSTER_VERSION}.jpg")
        info = media.MediaInfo(known.duration, known.width, known.height)
        media.make_poster(path, target, info)
        cached = _record_made(archive, origin.sha256, "poster", media.POSTER_VERSION, target, info)
    made = _source(archive, cached)
    if made is None:
        raise media.MediaError(_path(origin), "no poster was recorded")
    return made


def transcoded(
    archive: Archive, origin: Source, known: Derived, preset: media.Preset, label: str
) -> Source:
    """The video ``origin`` (held, or joined with its sound) re-encoded with ``preset``: made
    once, kept in the archive by ``origin``'s sha256."""
    kind = f"transcode-{preset.name}"
    cached = archive.derived(origin.sha256, kind, preset.version)
    if cached is None or cached.path is None:
        path = _path(origin)
        log.info("%s: re-encoding to %s", label, preset.name)
        target = archive.derived_path(origin.sha256, f"{kind}-v{preset.version}.mp4")
        info = media.MediaInfo(known.duration, known.width, known.height)
        media.transcode(path, target, info, preset)
        made_info = media.probe(target)
        cached = _record_made(archive, origin.sha256, kind, preset.version, target, made_info)
    made = _source(archive, cached)
    if made is None:
        raise media.MediaError(_path(origin), f"no {kind} was recorded")
    return made


# -- PeerTube's split sound ----------------------------------------------------------------------

# What a joined file may hold beyond its two inputs, a second of video, for --fit's estimate
# before it is made. Fragments index their samples in ``trun`` boxes; the joined MP4 indexes
# them again in its ``moov`` (stsz, stco, stsc, ctts): measured 225 B/s for 120 s of 25 fps
# H.264 with 44.1 kHz AAC, 491 B/s for 10 min of 720p at 30 fps with 48 kHz AAC (574.13 MB
# joined from 573.84 MB); at worst about 24 B a picture and 16 B a sound frame, 2.2 KB/s at
# 60 fps with 48 kHz AAC. Rounded up.
JOIN_INDEX_PER_SECOND = 2560


def joined_kind(audio_sha256: str) -> str:
    """The derived kind of a video joined with the sound file of sha256 ``audio_sha256``: the
    sound's in it, so a changed sound makes a new joined file (kept under the video's sha256).

    >>> joined_kind("0123456789abcdef" + "f" * 48)
    'joined-0123456789abcdef'
    """
    return f"joined-{audio_sha256[:16]}"


def silent(archive: Archive, video: FileRecord) -> bool:
    """Whether FFmpeg finds no sound stream in the held ``video`` (PeerTube's picture-only
    files); :class:`Unplayable` when it cannot read it.

    Read each time it is asked (the catalog keeps duration and size, not streams): about a
    millisecond, and only for items that hold a sound file.
    """
    return _read(archive, video).audio is False


def joined(
    archive: Archive, video: FileRecord, audio: FileRecord, label: str = ""
) -> tuple[Source, Derived] | None:
    """The held ``video`` joined with the held sound file ``audio`` (:func:`media.mux`) and what
    FFmpeg read of it; ``None`` when the video has sound of its own (nothing to join).

    Made once, kept in the archive's derived store under the video's sha256 (the kind names the
    sound's, :func:`joined_kind`), checked before it is recorded: picture, sound and duration.
    Raises :class:`Silent` when the sound cannot be joined (not a playable sound file, no
    ffmpeg), :class:`Unjoinable` when ffmpeg fails or makes a file without both streams, and
    :class:`Unplayable` when the video itself cannot be read.
    """
    kind = joined_kind(audio.sha256)
    cached = archive.derived(video.sha256, kind, media.MUX_VERSION)
    if cached is None or cached.path is None:
        if not silent(archive, video):
            return None
        cached = _join(archive, video, audio, kind, label)
    made = _source(archive, cached)
    if made is None:  # a bug if ever: _record_made records the path, sha256 and size
        raise Unjoinable(f"no {kind} was recorded")
    known = archive.media_facts(made.sha256) or archive.record_media_facts(
        made.sha256, cached.duration, cached.width, cached.height
    )
    return made, known


def _join(archive: Archive, video: FileRecord, audio: FileRecord, kind: str, label: str) -> Derived:
    """Make, check and record the joined file (see :func:`joined`)."""
    sound = archive.root / audio.path
    try:
        media.confirm_audio(sound)
    except media.MediaError as exc:
        raise Silent(
            f"its sound file {audio.view or audio.path} is not playable: {exc.reason}"
        ) from exc
    log.info("%s: joining its picture and its sound", label)
    target = archive.derived_path(video.sha256, f"{kind}-v{media.MUX_VERSION}.mp4")
    try:
        media.mux(archive.root / video.path, sound, target)
    except media.MediaUnavailable as exc:
        raise Silent(f"{exc.reason}: cannot join its sound") from exc
    except media.MediaError as exc:
        raise Unjoinable(exc.reason) from exc
    try:
        info = media.confirm_playable(target, require_audio=True)
        made = _record_made(archive, video.sha256, kind, media.MUX_VERSION, target, info)
    except media.MediaError as exc:
        target.unlink(missing_ok=True)  # never recorded, never carried: made again next run
        raise Unjoinable(f"the joined file: {exc.reason}") from exc
    if made.file_sha256 is not None:
        archive.record_media_facts(made.file_sha256, info.duration, info.width, info.height)
    return made


def carried_size(archive: Archive, video: FileRecord, audio: FileRecord | None) -> int:
    """For ``--fit``, before anything is made: the bytes ``video`` takes in the kit.

    With a sound file to join to a picture-only video, the joined file's size once made, and
    until then the two files' sizes and room for the index the joined file adds
    (:data:`JOIN_INDEX_PER_SECOND`); else the video's own size.
    """
    if audio is None:
        return video.size
    cached = archive.derived(video.sha256, joined_kind(audio.sha256), media.MUX_VERSION)
    if cached is not None and cached.file_size is not None:
        return cached.file_size
    try:
        info = _read(archive, video)
    except Unplayable:
        return video.size  # left out when chosen, said then
    if info.audio is not False:
        return video.size
    seconds = info.duration if info.duration and math.isfinite(info.duration) else 0.0
    return video.size + audio.size + math.ceil(seconds * JOIN_INDEX_PER_SECOND)


def _read(archive: Archive, record: FileRecord) -> media.MediaInfo:
    try:
        return media.probe(archive.root / record.path)
    except media.MediaError as exc:
        raise Unplayable(exc.reason) from exc


def _record_made(
    archive: Archive,
    sha256: str,
    kind: str,
    version: int,
    made: Path,
    info: media.MediaInfo,
) -> Derived:
    """Note in the catalog what was made from the bytes of ``sha256``, so it is never made
    again."""
    try:
        checksum, size = file_sha256(made), made.stat().st_size
    except OSError as exc:
        raise media.MediaError(made, f"cannot read it: {describe_os_error(exc)}") from exc
    derived = Derived(
        sha256=sha256,
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
    return Source(derived.file_sha256, derived.file_size, f"{archive.root}/{derived.path}")


def _path(origin: Source) -> Path:
    """The file a derived file is made from: a held video, or one made from it."""
    if origin.path is None:  # a bug if ever: derived files are made from files
        raise ValueError("a derived file is made from a file, not from bytes in memory")
    return origin.path
