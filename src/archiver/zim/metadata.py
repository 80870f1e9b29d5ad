"""The ZIM's metadata, as openZIM's conventions ask (https://wiki.openzim.org/wiki/Metadata).

The Kiwix apps and kiwix-serve's catalogue show them: the title and description under the
illustration, the language to filter by, the creator and the licence. Each value is bounded as
the conventions say (a Title of 30 characters, a Description of 80, a LongDescription of 4000)
and made only from the collection, so that the same collection gives the same metadata; the
Date is the day the ZIM is made, or ``SOURCE_DATE_EPOCH``'s (the reproducible-builds
convention) when that is set.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from .._version import __version__
from ..kit.site import KitItem
from ..names import slugify

__all__ = [
    "DESCRIPTION_LIMIT",
    "LANGUAGE",
    "LONG_DESCRIPTION_LIMIT",
    "TITLE_LIMIT",
    "Metadata",
    "bounded",
    "zim_metadata",
]

LANGUAGE = "fra"  # ISO 639-3, as openZIM asks; also the full-text index's language
TITLE_LIMIT = 30
DESCRIPTION_LIMIT = 80
LONG_DESCRIPTION_LIMIT = 4000
PRODUCTION = "Production"  # the credits' role naming who made the videos
DEFAULT_CREATOR = "archiver"
# The openZIM tags Kiwix reads (videos inside, a full-text index, pictures, details), then
# words a librarian searches for.
TAGS = ("_category:other", "_videos:yes", "_ftindex:yes", "_pictures:yes", "_details:yes")
TOPICS = ("formation", "enseignants", "vidéos")


@dataclass(frozen=True)
class Metadata:
    """The ZIM's metadata: each openZIM name and its text, in the order they are written."""

    values: tuple[tuple[str, str], ...]

    def as_dict(self) -> dict[str, str]:
        return dict(self.values)


def bounded(text: str, limit: int) -> str:
    """``text`` on one line, cut at a word to ``limit`` characters with an ellipsis.

    >>> bounded("Former avec le numérique en classe", 20)
    'Former avec le…'
    >>> bounded("Court", 20)
    'Court'
    """
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:.") + "…"


def _creators(items: Sequence[KitItem]) -> list[str]:
    """Who made the videos, as their credits name them (role "Production")."""
    return sorted(
        {
            name
            for item in items
            for credit in item.entry.credits
            if credit.role == PRODUCTION
            for name in credit.names
        }
    )


def _licences(items: Sequence[KitItem]) -> list[str]:
    return sorted({item.entry.licence.name for item in items if item.entry.licence})


def _sources(items: Sequence[KitItem]) -> list[str]:
    """The sites the videos were fetched from: a PeerTube instance, a web server."""
    found = set()
    for item in items:
        url = item.entry.peertube.instance if item.entry.peertube else item.entry.video.url
        if url:
            parts = urlsplit(url)
            if parts.scheme in ("http", "https") and parts.hostname:
                found.add(f"{parts.scheme}://{parts.hostname}")
    return sorted(found)


def zim_date(environ: dict[str, str] | None = None) -> str:
    """Today as ``YYYY-MM-DD`` (UTC), or ``SOURCE_DATE_EPOCH``'s day when set."""
    epoch = (environ if environ is not None else dict(os.environ)).get("SOURCE_DATE_EPOCH")
    if epoch and epoch.isdigit():
        moment = dt.datetime.fromtimestamp(int(epoch), dt.UTC)
    else:
        moment = dt.datetime.now(dt.UTC)
    return moment.date().isoformat()


def zim_metadata(
    items: Sequence[KitItem], *, title: str, flavour: str, date: str | None = None
) -> Metadata:
    """Every openZIM metadata of the collection's ZIM but the illustration."""
    count = len(items)
    videos = f"{count} vidéo{'s' if count != 1 else ''}"
    creators = _creators(items) or [DEFAULT_CREATOR]
    licences = _licences(items)
    description = bounded(
        f"{videos} de formation, avec transcription, crédits et licence", DESCRIPTION_LIMIT
    )
    areas = sorted({item.entry.area for item in items if item.entry.area})
    long_description = bounded(
        f"{title} : {videos} hors ligne, chacune avec son lecteur, ses sous-titres, sa "
        "transcription, ses crédits et sa licence ; un catalogue pour chercher et filtrer"
        + (f" par domaine ({', '.join(areas)})" if areas else "")
        + ". Fait par archiver à partir de ce que l'archive détient.",
        LONG_DESCRIPTION_LIMIT,
    )
    values: list[tuple[str, str]] = [
        ("Name", f"archiver_fr_{slugify(title) or 'videos'}"),
        ("Title", bounded(title, TITLE_LIMIT)),
        ("Description", description),
    ]
    if len(long_description) > len(description):
        values.append(("LongDescription", long_description))
    values += [
        ("Language", LANGUAGE),
        ("Creator", ", ".join(creators)),
        ("Publisher", ", ".join(creators)),
        ("Date", date or zim_date()),
        ("Tags", ";".join((*TAGS, *TOPICS))),
        ("Flavour", flavour),
        ("Scraper", f"archiver {__version__}"),
    ]
    sources = _sources(items)
    if sources:
        values.append(("Source", ", ".join(sources)))
    if licences:
        values.append(("License", "; ".join(licences)))
    return Metadata(tuple(values))
