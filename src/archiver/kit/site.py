"""The kit's French text: a catalog and one page per video rendered from the manifest, the
root page to double-click, LISEZMOI.txt and the bag's description, from ``templates/``, with
French number and duration formats as template filters (``taille``, ``duree``).

Every string from a fiche is untrusted: jinja2 escapes it (autoescape), and the transcript's
Markdown is rendered with raw HTML disabled, images disabled (they would reach the network) and
only http, https and mailto links kept. Pages load nothing but files beside them: no CDN, no
``fetch()`` (browsers refuse it on ``file://``); the search index is a ``<script src>``.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

import jinja2
from markdown_it import MarkdownIt
from markupsafe import Markup

from ..entry import Entry, Licence
from ..units import format_bytes
from .provenance import KitProvenance

__all__ = [
    "CSP",
    "KitAsset",
    "KitCaptions",
    "KitItem",
    "describe_kit",
    "duree",
    "licence_summary",
    "parse_vtt",
    "render_markdown",
    "render_readme",
    "render_root",
    "render_site",
    "static_files",
    "taille",
]

# No inline script or style, nothing from elsewhere; images may be data: URLs (none today).
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self'; base-uri 'none'; form-action 'none'"
)
STATIC = ("style.css", "app.js", "player.js")
ASSET_LABELS = {"fiche_pdf": "La fiche (PDF)", "transcript_pdf": "La transcription (PDF)"}
SAFE_LINK = re.compile(r"^(https?:|mailto:)", re.I)


@dataclass(frozen=True)
class KitAsset:
    label: str
    href: str


@dataclass(frozen=True)
class KitCaptions:
    """One language of captions, as cues the page builds tracks from."""

    language: str
    label: str
    href: str  # the VTT file, for download
    cues: tuple[tuple[float, float, str], ...]


_TIMING = re.compile(
    r"^\s*((?:\d+:)?\d{1,2}:\d{2}[.,]\d{3})\s+-->\s+((?:\d+:)?\d{1,2}:\d{2}[.,]\d{3})"
)


def _seconds(stamp: str) -> float:
    parts = stamp.replace(",", ".").split(":")
    value = 0.0
    for part in parts:
        value = value * 60 + float(part)
    return value


def parse_vtt(text: str) -> tuple[tuple[float, float, str], ...]:
    """The cues of a WebVTT file: ``(start, end, text)``; anything unreadable is skipped.

    >>> parse_vtt("WEBVTT\\n\\n00:01.000 --> 00:02.500\\nBonjour")
    ((1.0, 2.5, 'Bonjour'),)
    """
    cues = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n")):
        lines = block.strip("\n").split("\n")
        for index, line in enumerate(lines):
            match = _TIMING.match(line)
            if match:
                body = "\n".join(lines[index + 1 :]).strip()
                start, end = _seconds(match.group(1)), _seconds(match.group(2))
                if body and end > start:
                    cues.append((start, end, body))
                break
    return tuple(cues)


@dataclass(frozen=True)
class KitItem:
    """One video as the pages show it; paths are relative to the video's folder."""

    entry: Entry
    video_name: str
    video_size: int | None = None  # bytes
    poster_name: str | None = None
    duration: float | None = None  # seconds
    resolution: str | None = None
    assets: tuple[KitAsset, ...] = ()
    captions: tuple[KitCaptions, ...] = ()
    provenance: KitProvenance | None = None  # its "Provenance" section, when known

    @property
    def folder(self) -> str:
        """The video's folder, relative to ``data/``."""
        return f"videos/{self.entry.id}"

    @property
    def page_href(self) -> str:
        return f"{self.folder}/index.html"

    @property
    def page_from_sibling(self) -> str:
        return f"../{self.entry.id}/index.html"

    @property
    def poster_href(self) -> str | None:
        return f"{self.folder}/{self.poster_name}" if self.poster_name else None


def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "breaks": True, "linkify": False})
    md.disable("image")
    md.validateLink = lambda url: bool(SAFE_LINK.match(url.strip()))  # type: ignore[method-assign]
    return md


_MD = _markdown()


def render_markdown(text: str) -> Markup:
    """Markdown to HTML with no raw HTML and only http/https/mailto links: safe to embed."""
    return Markup(_MD.render(text))  # noqa: S704 - markdown-it with html disabled escapes all


_LICENCES = (
    ("by-nc-nd", "Vous pouvez la partager telle quelle, sans usage commercial, en citant ses "
                 "auteurs ; sa modification n’est pas permise."),
    ("by-nc-sa", "Vous pouvez la partager et l’adapter, sans usage commercial, en citant ses "
                 "auteurs et en diffusant vos adaptations sous la même licence."),
    ("by-nc", "Vous pouvez la partager et l’adapter, sans usage commercial, en citant ses "
              "auteurs."),
    ("by-nd", "Vous pouvez la partager telle quelle, même à des fins commerciales, en citant "
              "ses auteurs ; sa modification n’est pas permise."),
    ("by-sa", "Vous pouvez la partager et l’adapter, même à des fins commerciales, en citant "
              "ses auteurs et en diffusant vos adaptations sous la même licence."),
    ("by", "Vous pouvez la partager et l’adapter, même à des fins commerciales, en citant ses "
           "auteurs."),
    ("cc0", "Elle est dans le domaine public : vous pouvez la réutiliser librement."),
    ("zero", "Elle est dans le domaine public : vous pouvez la réutiliser librement."),
)  # fmt: skip


def licence_summary(licence: Licence | None) -> str:
    """One French sentence saying what the licence allows."""
    if licence is None:
        return ""
    text = f"{licence.name} {licence.url or ''}".lower()
    text = re.sub(r"[\s_]+", "-", text)
    if "creativecommons" in text or re.search(r"\bcc-", text) or "cc0" in text:
        for key, sentence in _LICENCES:
            if re.search(rf"(^|[-/]){key}([-/]|$)", text):
                return sentence
    return "Consultez la licence pour savoir ce qu’elle permet."


def _fold(text: str) -> str:
    """Lowercase without accents, the way app.js folds what is typed."""
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def taille(size: float) -> str:
    """A file's size as a French page writes it.

    >>> taille(1536)
    '1,5 KiB'
    """
    return format_bytes(size).replace(".", ",")


def duree(seconds: float) -> str:
    """A video's length as a French page writes it.

    >>> duree(42.4), duree(75.6)
    ('42 s', '1 min 16 s')
    """
    total = round(seconds)
    minutes, secs = divmod(total, 60)
    if minutes == 0:
        return f"{secs} s"
    return f"{minutes} min {secs:02d} s"


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("archiver.kit", "templates"),
        # HTML escapes every string from a fiche; LISEZMOI.txt is plain text.
        autoescape=jinja2.select_autoescape(["html"], default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
        keep_trailing_newline=True,
    )
    environment.filters["taille"] = taille
    environment.filters["duree"] = duree
    # A URL from a fiche or the catalog is a link only when it is http(s) or mailto.
    environment.tests["lien"] = lambda url: isinstance(url, str) and bool(SAFE_LINK.match(url))
    return environment


_ENV = _environment()


def render_site(items: Sequence[KitItem], *, collection_title: str) -> dict[str, bytes]:
    """Every generated file of the site, by path relative to ``data/``.

    A page depends only on its video, its neighbours and the collection's title (no date, no
    count in the footer), so updating a kit after one video changed rewrites that video's page.
    Files in a video's folder are named for their role (``video-720p.mp4``, ``fiche.pdf``), the
    same in every folder: a download link suggests the name prefixed with the video's id, so
    that a teacher's downloads folder tells them apart.
    """
    common = {"collection_title": collection_title, "csp": CSP}
    areas = sorted({item.entry.area for item in items if item.entry.area})
    files: dict[str, bytes] = {}
    files["index.html"] = _render(
        "index.html", root="", items=items, areas=areas, count=len(items), **common
    )
    for position, item in enumerate(items):
        if item.captions:
            # A script, not <track src>: browsers refuse track files on file:// pages.
            tracks = [
                {"language": c.language, "label": c.label, "cues": [list(cue) for cue in c.cues]}
                for c in item.captions
            ]
            files[f"{item.folder}/captions.js"] = (
                "window.ARCHIVER_CAPTIONS = "
                + json.dumps(tracks, ensure_ascii=True, sort_keys=True)
                + ";\n"
            ).encode("ascii")
        files[f"{item.folder}/index.html"] = _render(
            "video.html",
            root="../../",
            item=item,
            transcript=render_markdown(item.entry.transcript) if item.entry.transcript else "",
            licence_summary=licence_summary(item.entry.licence),
            previous=items[position - 1] if position > 0 else None,
            next=items[position + 1] if position + 1 < len(items) else None,
            **common,
        )
    index = [
        {
            "id": item.entry.id,
            "area": item.entry.area or "",
            "text": _fold(
                " ".join(
                    filter(
                        None,
                        (
                            item.entry.title,
                            item.entry.area,
                            item.entry.description,
                            item.entry.transcript,
                        ),
                    )
                )
            ),
        }
        for item in items
    ]
    # A script, not JSON: browsers refuse fetch() of local files from file:// pages.
    files["search-index.js"] = (
        "window.ARCHIVER_INDEX = " + json.dumps(index, ensure_ascii=True, sort_keys=True) + ";\n"
    ).encode("ascii")
    files.update(static_files())
    return files


def render_root(*, collection_title: str, count: int) -> bytes:
    """The kit's root ``index.html``: the one obvious file to double-click."""
    return _render("root.html", collection_title=collection_title, count=count)


def render_readme(*, collection_title: str, count: int) -> bytes:
    """``LISEZMOI.txt``: how to open the kit, how to check a copy, the licences."""
    return _render("LISEZMOI.txt", collection_title=collection_title, count=count)


def describe_kit(collection_title: str, count: int) -> str:
    """The bag's ``External-Description``: one French line."""
    videos = f"{count} vidéo{'s' if count != 1 else ''}"
    return (
        f"{collection_title}: kit hors ligne de {videos}, à ouvrir par index.html, sans connexion."
    )


def static_files() -> dict[str, bytes]:
    folder = resources.files("archiver.kit") / "static"
    return {f"assets/{name}": (folder / name).read_bytes() for name in STATIC}


def _render(template: str, **context: object) -> bytes:
    return _ENV.get_template(template).render(**context).encode("utf-8")
