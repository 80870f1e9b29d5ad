"""The kit's French text: a catalog and one page per video rendered from the manifest, the
root page to double-click, LISEZMOI.txt, the script that checks a key from Windows and the
bag's description, from ``templates/``. The catalogue lists the videos by area, each area's in
French order by title (:func:`.pages.collation_key`); French sizes, lengths and counts are
template filters (``taille``, ``duree``, ``pluriel``: :mod:`.pages`).

Every string from a fiche is untrusted: jinja2 escapes it (autoescape), and the transcript's
Markdown is rendered with raw HTML disabled, images disabled (they would reach the network) and
only http, https and mailto links kept. Pages load nothing but files beside them: no CDN, no
``fetch()`` (browsers refuse it on ``file://``); the search index is a ``<script src>``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from markupsafe import Markup

from .._version import __version__
from ..entry import Entry
from .derive import Source
from .pages import (
    collation_key,
    duree,
    file_stem,
    fold,
    french_sorted,
    licence_summary,
    pluriel,
    taille,
)
from .provenance import KitProvenance

if TYPE_CHECKING:  # imported when a page is rendered: 80 ms a run that renders none spares
    import jinja2
    from markdown_it import MarkdownIt

__all__ = [
    "CSP",
    "Deferred",
    "KitAsset",
    "KitCaptions",
    "KitItem",
    "describe_kit",
    "duree",
    "licence_summary",
    "parse_vtt",
    "pluriel",
    "recipe",
    "render_check_script",
    "render_markdown",
    "render_readme",
    "render_root",
    "render_site",
    "site_sources",
    "static_files",
    "taille",
]

# No inline script or style, nothing from elsewhere; images may be data: URLs (none today).
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self'; base-uri 'none'; form-action 'none'"
)
STATIC = ("style.css", "app.js", "player.js")
CHECK_SCRIPT = "verifier-cle.ps1"  # at the kit's root: checks a copy from Windows' PowerShell
NO_AREA = "Autres vidéos"  # the catalogue's last group: videos whose fiche names no area
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
    """One video as the pages show it; paths are relative to the video's folder.

    ``folder_name``: the video's folder under ``videos/``, named from its title and unique in
    the kit (:func:`.pages.folder_names`); its id when not given.
    """

    entry: Entry
    video_name: str
    video_size: int | None = None  # bytes
    poster_name: str | None = None
    duration: float | None = None  # seconds
    resolution: str | None = None
    assets: tuple[KitAsset, ...] = ()
    captions: tuple[KitCaptions, ...] = ()
    provenance: KitProvenance | None = None  # its "Provenance" section, when known
    folder_name: str | None = None

    @property
    def folder(self) -> str:
        """The video's folder, relative to ``data/``."""
        return f"videos/{self.folder_name or self.entry.id}"

    @property
    def page_href(self) -> str:
        return f"{self.folder}/index.html"

    @property
    def page_from_sibling(self) -> str:
        return f"../{self.folder_name or self.entry.id}/index.html"

    @property
    def download_stem(self) -> str:
        """What a downloaded file's name starts with: the video's folder name, or its title
        made a file name (``Differencier-ses-pratiques``), so a teacher's downloads folder
        (or VLC's playlist) says which video each file is."""
        return self.folder_name or file_stem(self.entry.title)

    def download_name(self, name: str) -> str:
        """The name a file of this video's folder is saved under: ``fiche.pdf`` becomes
        ``Differencier-ses-pratiques-fiche.pdf``; a name that has the stem already stays."""
        stem = self.download_stem
        return (
            name if name.startswith(f"{stem}-") or name.startswith(f"{stem}.") else f"{stem}-{name}"
        )

    @property
    def poster_href(self) -> str | None:
        return f"{self.folder}/{self.poster_name}" if self.poster_name else None


@functools.cache
def _markdown() -> MarkdownIt:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "breaks": True, "linkify": False})
    md.disable("image")
    md.validateLink = lambda url: bool(SAFE_LINK.match(url.strip()))  # type: ignore[method-assign]
    return md


def render_markdown(text: str) -> Markup:
    """Markdown to HTML with no raw HTML and only http/https/mailto links: safe to embed."""
    return Markup(_markdown().render(text))  # noqa: S704 - markdown-it with html disabled escapes all


@functools.cache
def _environment() -> jinja2.Environment:
    import jinja2

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
    environment.filters["pluriel"] = pluriel
    # A URL from a fiche or the catalog is a link only when it is http(s) or mailto.
    environment.tests["lien"] = lambda url: isinstance(url, str) and bool(SAFE_LINK.match(url))
    return environment


def render_site(
    items: Sequence[KitItem], *, collection_title: str, csp: str = CSP
) -> dict[str, bytes]:
    """Every generated file of the site, by path relative to ``data/``; each page carries
    ``csp`` as its Content-Security-Policy (the ZIM's lets Kiwix's search bar reach its server).

    A page depends only on its video, its neighbours and the collection's title (no date, no
    count in the footer), so updating a kit after one video changed rewrites that video's page.
    Items are shown by area, then in French order by title, whatever order they come in.
    A video's file is named from its title (``Differencier-ses-pratiques-720p.mp4``, see
    :mod:`.plan`); its companions for their role (``fiche.pdf``), the same in every folder:
    a download link suggests the name prefixed with the video's (:meth:`KitItem.download_name`),
    so that a teacher's downloads folder tells them apart.
    """
    site = _Site(items, collection_title, csp=csp)
    return {name: make() for name, make in site.files().items()}


# -- made once, kept: the files a kit already holds are not made again -------------------------

Known = Callable[[str, str], "tuple[str, int] | None"]


class Deferred(Source):
    """A generated file the kit holds already, known by its sha256 and size: its bytes are
    made (:attr:`make`) only if it must be written after all (removed from the kit since).
    ``make`` is not compared."""

    __slots__ = ("make",)
    make: Callable[[], bytes] | None

    def __init__(self, sha256: str, size: int, make: Callable[[], bytes] | None = None) -> None:
        super().__init__(sha256, size)
        object.__setattr__(self, "make", make)


def site_sources(
    items: Sequence[KitItem],
    *,
    collection_title: str,
    known: Known,
    extra: Mapping[str, Callable[[], bytes]] | None = None,
    csp: str = CSP,
) -> tuple[dict[str, Source], dict[str, str]]:
    """:func:`render_site`'s files as sources, and the key of each generated one: a digest
    of everything its bytes are made from (the video, its neighbours' titles, the title, the
    templates, this code and its libraries' versions). ``known(name, key)`` gives the sha256
    and size of the file the kit holds under ``name`` made from ``key``, if it does: that file
    is not made again (a :class:`Deferred`). ``extra`` files are made from the whole
    collection (``provenance.json``), keyed as the catalog page is.

    Rendering is most of a kit update's time (0.3 ms a page: 3 s for 10,000 videos); a key is
    20 µs of it, so an update after one change renders that video's page, its neighbours'
    and the collection's files, not the others.
    """
    site = _Site(items, collection_title, csp=csp)
    makers = site.files()
    keys = site.keys()
    for name, make in (extra or {}).items():
        makers[name] = make
        keys[name] = site.collection_key(name)
    sources: dict[str, Source] = {}
    for name, make in makers.items():
        key = keys.get(name)
        held = known(name, key) if key is not None else None
        if held is not None:
            sources[name] = Deferred(sha256=held[0], size=held[1], make=make)
        else:
            sources[name] = Source.of_bytes(make())
    return sources, keys


@functools.cache
def recipe() -> str:
    """A digest of how files are made here: archiver's version, Python's, the templates, the
    static files, this module's, :mod:`.provenance`'s, :mod:`.pages`' and :mod:`.bag`'s code
    (the BagIt declaration), the libraries that render. A
    new one makes every file again (a fixed escaping bug in an upgraded markdown-it included)."""
    from importlib.metadata import PackageNotFoundError, version

    digest = hashlib.sha256(f"{__version__} {sys.version_info[:2]}".encode())
    for package in ("jinja2", "markdown-it-py", "markupsafe"):
        try:
            digest.update(f" {package} {version(package)}".encode())
        except PackageNotFoundError:
            digest.update(f" {package} ?".encode())
    here = resources.files("archiver.kit")
    for folder in ("templates", "static"):
        for item in sorted((here / folder).iterdir(), key=lambda each: each.name):
            if item.is_file():
                digest.update(f"\0{folder}/{item.name}\0".encode())
                digest.update(item.read_bytes())
    for module in ("site.py", "provenance.py", "pages.py", "bag.py"):  # bag.py: bagit.txt
        digest.update(Path(__file__).with_name(module).read_bytes())
    return digest.hexdigest()


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


class _Site:
    """The site of one kit: its files, each made on demand, and the key of each."""

    def __init__(self, items: Sequence[KitItem], collection_title: str, *, csp: str = CSP) -> None:
        self.items = _catalogue_order(items)  # the pager's order too
        self.title = collection_title
        self.csp = csp
        self.common = {"collection_title": collection_title, "csp": csp}

    def files(self) -> dict[str, Callable[[], bytes]]:
        """Each file's maker, by path relative to ``data/``, in a stable order."""
        files: dict[str, Callable[[], bytes]] = {"index.html": self.index}
        for position, item in enumerate(self.items):
            if item.captions:
                files[f"{item.folder}/captions.js"] = functools.partial(_captions_js, item)
            files[f"{item.folder}/index.html"] = functools.partial(self.page, position)
        files["search-index.js"] = self.search_index
        for name, data in static_files().items():
            files[name] = functools.partial(bytes, data)
        return files

    @functools.cached_property
    def digests(self) -> list[str]:
        """A digest of each item: its ``repr`` holds every field of it, the entry, captions
        and provenance included, so no field a page shows can change unseen (and a field added
        to a record tomorrow is in it too)."""
        return [_digest(repr(item)) for item in self.items]

    @functools.cached_property
    def _base(self) -> str:
        return _digest(recipe(), repr(self.title), self.csp)  # every page carries both

    def collection_key(self, name: str) -> str:
        """The key of a file made from everything of every video (``provenance.json``)."""
        return _digest(self._base, name, *self.digests)

    def _index_key(self) -> str:
        """The catalog's key: what ``templates/index.html`` shows of each video (a field added
        there is added here; ``tests/test_kit_pages.py`` checks that no field it shows is
        missed). A new version of a video leaves the catalog as it was."""
        cards = [
            repr((i.entry.id, i.entry.title, i.entry.area, i.duration, i.poster_name, i.folder))
            for i in self.items
        ]
        return _digest(self._base, "index.html", *cards)

    def _search_key(self) -> str:
        """The search index's key: the texts it holds of each video, each one after its
        length (no two lists of texts give the same bytes), hashed as they are: 4 µs a video
        where their ``repr`` took 15."""
        digest = hashlib.sha256(self._base.encode())
        for item in self.items:  # one update a video: each text after its length
            entry = item.entry
            texts = (entry.id, entry.area, entry.title, entry.description, entry.transcript)
            line = "".join(f"{len(text or '')}:{text or ''}" for text in texts)
            digest.update(line.encode("utf-8", "surrogatepass"))
        return digest.hexdigest()

    def keys(self) -> dict[str, str]:
        """The key of every generated file (the static files are read, not made: none)."""
        keys = {"index.html": self._index_key()}
        digests = self.digests
        # What a page shows of the videos before and after it, made once a video.
        shown = ["None", *(repr((i.entry.title, i.folder)) for i in self.items), "None"]
        for position, item in enumerate(self.items):
            folder = item.folder
            if item.captions:
                keys[f"{folder}/captions.js"] = _digest(self._base, "captions", digests[position])
            keys[f"{folder}/index.html"] = _digest(
                self._base, "page", digests[position], shown[position], shown[position + 2]
            )
        keys["search-index.js"] = self._search_key()
        return keys

    def index(self) -> bytes:
        groups: dict[str, list[KitItem]] = {}
        for item in self.items:  # in catalogue order: areas in order, titles in each
            groups.setdefault(item.entry.area or NO_AREA, []).append(item)
        return _render(
            "index.html",
            root="",
            groups=list(groups.items()),
            areas=[area for area in groups if area != NO_AREA],
            count=len(self.items),
            **self.common,
        )

    def page(self, position: int) -> bytes:
        items = self.items
        item = items[position]
        return _render(
            "video.html",
            root="../../",
            item=item,
            transcript=render_markdown(item.entry.transcript) if item.entry.transcript else "",
            licence_summary=licence_summary(item.entry.licence),
            previous=items[position - 1] if position > 0 else None,
            next=items[position + 1] if position + 1 < len(items) else None,
            **self.common,
        )

    def search_index(self) -> bytes:
        index = [
            {
                "id": item.entry.id,
                "area": item.entry.area or "",
                "text": fold(
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
            for item in self.items
        ]
        # A script, not JSON: browsers refuse fetch() of local files from file:// pages.
        return _script("ARCHIVER_INDEX", index)


def _captions_js(item: KitItem) -> bytes:
    # A script, not <track src>: browsers refuse track files on file:// pages.
    tracks = [
        {"language": c.language, "label": c.label, "cues": [list(cue) for cue in c.cues]}
        for c in item.captions
    ]
    return _script("ARCHIVER_CAPTIONS", tracks)


def _script(name: str, value: object) -> bytes:
    """``window.NAME = <value as JSON>;``: data a page on ``file://`` can load (ASCII, keys
    sorted, so the same data is the same bytes)."""
    data = json.dumps(value, ensure_ascii=True, sort_keys=True)
    return f"window.{name} = {data};\n".encode("ascii")


def _catalogue_order(items: Sequence[KitItem]) -> list[KitItem]:
    """Areas in French order, the videos with none last; titles in French order in each
    (:func:`.pages.french_sorted`: each area's key made once, not once a video)."""
    areas = {area: collation_key(area) for area in {i.entry.area or "" for i in items}}

    def area(item: KitItem) -> tuple[bool, tuple[str, str, str, str]]:
        return item.entry.area is None, areas[item.entry.area or ""]

    # Two videos of one title: by id, so that the pager's order never depends on the input's.
    by_id = sorted(items, key=lambda item: item.entry.id)
    return french_sorted(by_id, lambda item: item.entry.title, area)


def render_root(*, collection_title: str, count: int) -> bytes:
    """The kit's root ``index.html``: the one obvious file to double-click, a page of its own
    (the collection, its count, a button to the catalogue) rather than a redirect, which some
    browsers block from ``file://`` and which shows nothing while it waits."""
    return _render("root.html", collection_title=collection_title, count=count)


def render_check_script() -> bytes:
    """``verifier-cle.ps1``: checks every file of a copy against ``manifest-sha256.txt`` from
    Windows' PowerShell (``Get-FileHash``), for the school PCs that have no ``sha256sum``.

    UTF-8 with a byte order mark and CRLF line ends: Windows PowerShell 5.1 reads a script
    with no mark as the ANSI code page, which would garble its French messages.
    """
    # Read as it is, not rendered: PowerShell's braces are not jinja's business.
    text = (resources.files("archiver.kit") / "templates" / CHECK_SCRIPT).read_text("utf-8")
    return b"\xef\xbb\xbf" + text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def render_readme(*, collection_title: str, count: int) -> bytes:
    """``LISEZMOI.txt``: how to open the kit, how to check a copy, the licences."""
    return _render(
        "LISEZMOI.txt", collection_title=collection_title, count=count, check_script=CHECK_SCRIPT
    )


def describe_kit(collection_title: str, count: int) -> str:
    """The bag's ``External-Description``: one French line."""
    return (
        f"{collection_title}: kit hors ligne de {pluriel(count, 'vidéo')}, à ouvrir par"
        " index.html, sans connexion."
    )


def static_files() -> dict[str, bytes]:
    folder = resources.files("archiver.kit") / "static"
    return {f"assets/{name}": (folder / name).read_bytes() for name in STATIC}


def _render(template: str, **context: object) -> bytes:
    return _environment().get_template(template).render(**context).encode("utf-8")
