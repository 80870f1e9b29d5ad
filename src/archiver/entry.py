"""What archiver knows of one video: the records a fiche becomes and a manifest holds.

They are frozen dataclasses so that a parsed fiche, a loaded manifest and a rebuilt one compare
equal field by field: :meth:`Entry.to_json` writes an entry, and the manifest's strict loader
(:func:`archiver.manifest.loads`) reads it back to an equal one (the manifest's round trip).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MAX_AREA_CHARS",
    "MAX_DESCRIPTION_CHARS",
    "MAX_NESTING",
    "MAX_TITLE_CHARS",
    "MAX_URL_CHARS",
    "Asset",
    "Credit",
    "Entry",
    "Licence",
    "PeerTubeRef",
    "Source",
    "Video",
]

JSONValue = Any  # what json.loads returns; mypy has no recursive alias for it worth the noise

# Bounds on what an entry holds, the same whether it comes from a fiche or a manifest. A title
# is one line of a page, a browser tab and a terminal: real ones are under 150 characters, and
# a megabyte-long one would be repeated in every page of a kit and every line naming the video.
MAX_TITLE_CHARS = 1_000
MAX_AREA_CHARS = 1_000
# A paragraph; the transcript, long by nature, is bounded only by the fiche's size.
MAX_DESCRIPTION_CHARS = 20_000
# Servers refuse longer request lines (8 KiB is nginx's and Apache's default).
MAX_URL_CHARS = 8_192
# How deep a value kept under ``extra`` may nest: real fiches have flat fields, and every later
# reader (JSON, templates, comparisons) recurses that deep.
MAX_NESTING = 20


@dataclass(frozen=True)
class Source:
    """Where an entry came from: the fiche's path (relative to the folder given) and its sha256."""

    path: str
    sha256: str


@dataclass(frozen=True)
class Video:
    """The video file to fetch, with an optional pinned checksum and size."""

    url: str | None
    embed_url: str | None
    sha256: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class Asset:
    """A companion file: ``kind`` is ``fiche_pdf`` or ``transcript_pdf``."""

    kind: str
    url: str


@dataclass(frozen=True)
class Credit:
    """One ``**Role** : name, name`` line of a fiche's credits, names as written."""

    role: str
    names: tuple[str, ...]


@dataclass(frozen=True)
class Licence:
    """The licence a fiche's credits name, with its link when it has one."""

    name: str
    url: str | None


@dataclass(frozen=True)
class PeerTubeRef:
    """The PeerTube instance (``https://host``) and video UUID a fiche's URLs point at."""

    instance: str
    uuid: str


@dataclass(frozen=True)
class Entry:
    """One video of a collection, as the manifest records it."""

    id: str
    title: str
    area: str | None
    description: str | None
    source: Source
    video: Video
    peertube: PeerTubeRef | None = None
    assets: tuple[Asset, ...] = ()
    transcript: str = ""
    credits: tuple[Credit, ...] = ()
    credit_notes: tuple[str, ...] = ()
    licence: Licence | None = None
    extra: Mapping[str, JSONValue] = field(default_factory=dict)

    def to_json(self) -> dict[str, JSONValue]:
        """The entry as plain JSON values, every key present (null when unknown)."""
        return {
            "id": self.id,
            "title": self.title,
            "area": self.area,
            "description": self.description,
            "source": {"path": self.source.path, "sha256": self.source.sha256},
            "video": {
                "url": self.video.url,
                "embed_url": self.video.embed_url,
                "sha256": self.video.sha256,
                "size": self.video.size,
            },
            "peertube": (
                {"instance": self.peertube.instance, "uuid": self.peertube.uuid}
                if self.peertube
                else None
            ),
            "assets": [{"kind": a.kind, "url": a.url} for a in self.assets],
            "transcript": self.transcript,
            "credits": [{"role": c.role, "names": list(c.names)} for c in self.credits],
            "credit_notes": list(self.credit_notes),
            "licence": (
                {"name": self.licence.name, "url": self.licence.url} if self.licence else None
            ),
            "extra": dict(self.extra),
        }
