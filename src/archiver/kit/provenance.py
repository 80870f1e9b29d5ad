"""Where each file of a kit came from: a :class:`KitProvenance` per video, shown on its page
(:mod:`.site`) and written, for machines, as ``data/provenance.json``.

A kit travels far from the archive that made it (a USB key handed on, a copy of a copy): the
catalog that records each file's origin stays behind. So the kit carries, for each video, the
fiche it was described by, the URL its bytes were fetched from and when, their sha256 and size
as archived, the archive's version number, the resolution and the licence; and when the kit
carries something made from those bytes (joined with its sound, re-encoded), that file's own
sha256 and how it was made, so both checksums can be followed back.

Pure: records in, records and bytes out. The JSON holds nothing of the packaging run itself
(no date, no archiver version, no ``checked_at``, which each sync moves on): an unchanged kit
packaged again gets byte-identical provenance, and a kit update writes it only when a video's
origin changed. URLs go through :func:`archiver.urls.redact`: a ``user:password@`` in a
manifest's URL is the archive's business, never a kit's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..archive import FileRecord
from ..catalog import parse_time
from ..entry import Entry, Licence, PeerTubeRef
from ..entry import Source as Fiche
from ..urls import redact

__all__ = [
    "FORMAT",
    "PROVENANCE_NAME",
    "FileProvenance",
    "KitFile",
    "KitProvenance",
    "Making",
    "date_fr",
    "provenance_json",
]

FORMAT = "archiver-provenance/1"
PROVENANCE_NAME = "provenance.json"  # in the payload: data/provenance.json

_MONTHS = (
    "janvier", "février", "mars", "avril", "mai", "juin",
    "juillet", "août", "septembre", "octobre", "novembre", "décembre",
)  # fmt: skip


@dataclass(frozen=True)
class Making:
    """One step that made the kit's video from the archived one."""

    kind: Literal["joined", "reencoded"]
    preset: str | None = None  # the re-encode's preset, "480p"

    @property
    def text(self) -> str:
        """In English, for the JSON: ``"joined with its sound"``, ``"re-encoded to 480p"``."""
        if self.kind == "joined":
            return "joined with its sound"
        return f"re-encoded to {self.preset}"

    @property
    def texte(self) -> str:
        """In French, for the page."""
        if self.kind == "joined":
            return "assemblée avec sa bande son"
        return f"réencodée en {self.preset}"


def _redacted(url: str) -> str:
    """:func:`~archiver.urls.redact`, which parses the URL, asked only of one with an ``@``
    (without one, nothing in it is a password): a kit plans two of them a video."""
    return redact(url) if "@" in url else url


@dataclass(frozen=True)
class FileProvenance:
    """A file of the archive as the catalog recorded it: where and when it was fetched, what
    its bytes are. ``path`` is where the kit carries it (a bag path, ``data/…``), ``None``
    for one carried only inside another file (a sound joined to its picture)."""

    role: str
    path: str | None
    url: str  # redacted
    final_url: str  # redacted
    fetched_at: str  # ISO 8601 UTC, as the catalog writes it
    sha256: str
    size: int
    version: int
    etag: str | None = None
    last_modified: str | None = None
    resolution: int | None = None  # the height the instance gave, when it gave one

    @classmethod
    def of(cls, record: FileRecord, path: str | None) -> FileProvenance:
        return cls(
            role=record.role,
            path=path,
            url=_redacted(record.url),
            # A redirect's URL is redacted when recorded, the manifest's own is not.
            final_url=_redacted(record.final_url),
            fetched_at=record.fetched_at,
            sha256=record.sha256,
            size=record.size,
            version=record.version,
            etag=record.etag,
            last_modified=record.last_modified,
            resolution=record.resolution,
        )

    @property
    def fetched_on(self) -> str:
        """The day it was fetched, in French (``26 novembre 2026``), UTC."""
        return date_fr(self.fetched_at)

    @property
    def fetched_date(self) -> str | None:
        """The day it was fetched as ``2026-11-26`` (for ``<time datetime>``), if readable."""
        moment = parse_time(self.fetched_at)
        return moment.date().isoformat() if moment else None

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "path": self.path,
            "url": self.url,
            "final_url": self.final_url,
            "fetched_at": self.fetched_at,
            "sha256": self.sha256,
            "size": self.size,
            "version": self.version,
            "etag": self.etag,
            "last_modified": self.last_modified,
            "resolution": self.resolution,
        }


@dataclass(frozen=True)
class KitFile:
    """The video file the kit carries: its bag path, its bytes, and how it was made from the
    archived video (nothing: the archived bytes themselves)."""

    path: str
    sha256: str
    size: int
    made: tuple[Making, ...] = ()

    @property
    def made_fr(self) -> str:
        """How it was made, in French: ``assemblée avec sa bande son, réencodée en 360p``."""
        return ", ".join(step.texte for step in self.made)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "sha256": self.sha256,
            "size": self.size,
            "made": [step.text for step in self.made],
        }


@dataclass(frozen=True)
class KitProvenance:
    """Where one video of a kit, and each file beside it, came from."""

    id: str
    title: str
    fiche: Fiche
    video: FileProvenance  # the archived video the kit's is (or was made from)
    kit_video: KitFile
    width: int | None = None  # of the archived video, as FFmpeg read it
    height: int | None = None
    sound: FileProvenance | None = None  # joined into kit_video, when stored apart
    companions: tuple[FileProvenance, ...] = ()  # PDFs, captions, the instance's preview
    peertube: PeerTubeRef | None = None
    licence: Licence | None = None

    @classmethod
    def of(
        cls,
        entry: Entry,
        record: FileRecord,
        kit_video: KitFile,
        *,
        width: int | None = None,
        height: int | None = None,
        sound: FileRecord | None = None,
        companions: Sequence[tuple[FileRecord, str]] = (),
    ) -> KitProvenance:
        """The provenance of ``entry``'s video, held as ``record`` and carried as
        ``kit_video``; ``companions`` are the held files carried beside it, with their bag
        paths."""
        return cls(
            id=entry.id,
            title=entry.title,
            fiche=entry.source,
            video=FileProvenance.of(record, kit_video.path if not kit_video.made else None),
            kit_video=kit_video,
            width=width,
            height=height,
            sound=FileProvenance.of(sound, None) if sound is not None else None,
            companions=tuple(FileProvenance.of(held, path) for held, path in companions),
            peertube=entry.peertube,
            licence=entry.licence,
        )

    @property
    def made(self) -> bool:
        """Whether the kit's video is other bytes than the archived one."""
        return bool(self.kit_video.made)

    @property
    def resolution(self) -> str | None:
        """The archived video's resolution as a page shows it: ``720p``, from the instance,
        else from what FFmpeg read (``1280 × 720`` would say more, but not what teachers
        call a resolution)."""
        height = self.video.resolution or self.height
        return f"{height}p" if height else None

    def to_json(self) -> dict[str, Any]:
        video = self.video.to_json()
        video.update(width=self.width, height=self.height)
        return {
            "id": self.id,
            "title": self.title,
            "fiche": {"path": self.fiche.path, "sha256": self.fiche.sha256},
            "video": video,
            "kit_video": self.kit_video.to_json(),
            "sound": self.sound.to_json() if self.sound else None,
            "companions": [c.to_json() for c in self.companions],
            "peertube": (
                {"instance": redact(self.peertube.instance), "uuid": self.peertube.uuid}
                if self.peertube
                else None
            ),
            "licence": (
                {"name": self.licence.name, "url": self.licence.url} if self.licence else None
            ),
        }


def provenance_json(videos: Sequence[KitProvenance]) -> bytes:
    """``data/provenance.json``: every video's provenance, in the kit's order; sorted keys,
    UTF-8, nothing of the run that wrote it, so the same kit always gives the same bytes."""
    document = {"format": FORMAT, "videos": [video.to_json() for video in videos]}
    pieces: list[str] = []
    _indented(document, "\n", pieces)
    pieces.append("\n")
    return "".join(pieces).encode("utf-8")


# ``json.dumps(indent=2)`` runs Python's own encoder, a generator a value: 0.65 s for 10,000
# videos. The same text is written here with the layout in a loop and each value by json's C
# encoder (made once; no circular check: these are trees made by ``to_json``): 0.40 s, same run.
_encode_text = json.encoder.encode_basestring
_make_encoder: Callable[..., Callable[[object, int], list[str]]] | None = getattr(
    json.encoder, "c_make_encoder", None
)
_c_encoder = (
    _make_encoder(
        None, json.JSONEncoder().default, _encode_text, None, ": ", ", ", True, False, True
    )
    if _make_encoder is not None
    else None
)


def _indented(value: object, indent: str, pieces: list[str]) -> None:
    """``value`` as ``json.dumps(value, ensure_ascii=False, sort_keys=True, indent=2)`` writes
    it, in ``pieces``; ``indent`` is the line break and blanks its lines start with.

    >>> pieces = []; _indented({"b": [1, {}], "a": "é", "c": []}, "\\n", pieces)
    >>> "".join(pieces) == json.dumps(
    ...     {"b": [1, {}], "a": "é", "c": []}, ensure_ascii=False, sort_keys=True, indent=2
    ... )
    True
    """
    kind = type(value)
    if kind is str:
        pieces.append(_encode_text(value))  # type: ignore[arg-type]
    elif kind is dict or kind is list:
        if not value:
            pieces.append("{}" if kind is dict else "[]")
            return
        inner = indent + "  "
        separator = ("{" if kind is dict else "[") + inner
        if isinstance(value, dict):
            for key in sorted(value):
                pieces += (separator, _encode_text(key), ": ")
                _indented(value[key], inner, pieces)
                separator = "," + inner
        else:
            for item in value:  # type: ignore[attr-defined]
                pieces.append(separator)
                _indented(item, inner, pieces)
                separator = "," + inner
        pieces.append(indent + ("}" if kind is dict else "]"))
    elif _c_encoder is None:  # a Python built without json's C accelerator
        pieces.append(json.dumps(value))
    else:
        pieces.append("".join(_c_encoder(value, 0)))


def date_fr(stamp: str) -> str:
    """A catalog time's day as a French page writes it (UTC); the text as is if unreadable.

    >>> date_fr("2026-11-26T03:00:00.000000Z"), date_fr("2026-03-01T23:59:59Z")
    ('26 novembre 2026', '1er mars 2026')
    """
    moment = parse_time(stamp)
    if moment is None:
        return stamp
    day = "1er" if moment.day == 1 else str(moment.day)
    return f"{day} {_MONTHS[moment.month - 1]} {moment.year}"
