"""What a ZIM holds: the folder kit's site, file for file, under the same paths.

The folder kit's ``data/`` is a static site whose links are all relative, so it is a ZIM's
content as it is: ``data/index.html`` becomes the entry ``index.html`` (the main page),
``data/videos/<id>/video-720p.mp4`` the entry ``videos/<id>/video-720p.mp4``. The pages are
rendered by :mod:`archiver.kit.site` from the same plan (:func:`archiver.kit.plan.plan_kit`),
so the ZIM shows what the kit shows, escaped the same way; only the folder kit's own files
(its root page, LISEZMOI.txt, the BagIt manifests) stay out, a ZIM having its own checksum.

Each entry says how libzim stores it: videos, pictures and PDFs as they are (compressing
what is compressed already costs time and saves nothing), pages and scripts compressed; the
catalogue and each video's page are front articles, in the title index, and a video's page
is indexed for full-text search by its title, area, description and transcript rather than
by its HTML (which holds the provenance's hashes and every label of the page).
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass

from ..kit.bag import PAYLOAD
from ..kit.derive import Source
from ..kit.plan import KitPlan
from ..kit.provenance import PROVENANCE_NAME, provenance_json
from ..kit.site import CSP, KitItem, render_site

__all__ = ["MAIN_PAGE", "MIMETYPES", "ZIM_CSP", "ZimEntry", "zim_entries"]

MAIN_PAGE = "index.html"  # the catalogue
# The kit's policy, and the Kiwix reader's own search bar allowed: kiwix-serve puts it on top
# of every page, and it asks for suggestions (connect-src) and sends its form (form-action) to
# the server that serves the page. Still nothing from elsewhere, and no inline script.
ZIM_CSP = CSP.replace("form-action 'none'", "form-action 'self'") + "; connect-src 'self'"
_PREFIX = f"{PAYLOAD}/"
MIMETYPES = {
    ".html": "text/html",
    ".js": "application/javascript",
    ".css": "text/css",
    ".json": "application/json",
    ".txt": "text/plain",
    ".vtt": "text/vtt",
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".webm": "video/webm",
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".pdf": "application/pdf",
}
DEFAULT_MIMETYPE = "application/octet-stream"
# Stored as they are: compressed already (or nothing to gain).
UNCOMPRESSED = frozenset(
    {"video/mp4", "video/webm", "audio/mpeg", "audio/mp4", "image/jpeg", "image/png",
     "image/webp", "application/pdf", DEFAULT_MIMETYPE}
)  # fmt: skip


@dataclass(frozen=True)
class ZimEntry:
    """One entry of the ZIM: its path, its bytes' source, how libzim stores it and indexes it."""

    path: str
    source: Source
    mimetype: str
    title: str = ""
    front: bool = False  # a page a reader looks for: in the title index
    # The text full-text search finds it by (a video's page); None: libzim reads the HTML,
    # "" for an entry not to be found by full-text search (the catalogue lists every title).
    index_text: str | None = None
    keywords: str = ""

    @property
    def compress(self) -> bool:
        return self.mimetype not in UNCOMPRESSED

    @property
    def size(self) -> int:
        return self.source.size


def mimetype_of(path: str) -> str:
    """The MIME type of a kit file, from its extension (the kit names files itself).

    >>> mimetype_of("videos/a/video-720p.mp4"), mimetype_of("assets/app.js")
    ('video/mp4', 'application/javascript')
    """
    return MIMETYPES.get(posixpath.splitext(path)[1].lower(), DEFAULT_MIMETYPE)


def _index_text(item: KitItem) -> str:
    entry = item.entry
    parts = (entry.area, entry.description, entry.transcript)  # the title is indexed apart
    return "\n\n".join(part for part in parts if part)


def zim_entries(plan: KitPlan, *, title: str) -> list[ZimEntry]:
    """The ZIM's entries, sorted by path: the plan's payload and the site's files.

    The site is rendered whole here, with :data:`ZIM_CSP` in every page, and with
    ``provenance.json`` exactly as :func:`archiver.kit.build_kit` adds it. Nothing is taken
    from the folder kit's files, even when one run writes both: they are the same but for
    each page's policy, and a ZIM is written whole (no keys are computed: nothing is kept).
    """
    records = [item.provenance for item in plan.items if item.provenance is not None]
    site = render_site(plan.items, collection_title=title, csp=ZIM_CSP)
    site[PROVENANCE_NAME] = provenance_json(records)
    sources: dict[str, Source] = {}
    for path, source in plan.payload.items():
        if path.startswith(_PREFIX):
            sources[path[len(_PREFIX) :]] = source
    for name, data in site.items():
        sources[name] = Source.of_bytes(data)
    pages = {item.page_href: item for item in plan.items}
    entries = []
    for path in sorted(sources):
        source = sources[path]
        mimetype = mimetype_of(path)
        item = pages.get(path)
        if path == MAIN_PAGE:
            entries.append(ZimEntry(path, source, mimetype, title=title, front=True, index_text=""))
        elif item is not None:
            entries.append(
                ZimEntry(
                    path,
                    source,
                    mimetype,
                    title=item.entry.title,
                    front=True,
                    index_text=_index_text(item),
                    keywords=item.entry.area or "",
                )
            )
        else:
            entries.append(ZimEntry(path, source, mimetype))
    return entries


def planned_counts(entries: Sequence[ZimEntry]) -> tuple[int, int]:
    """How many entries and front articles the ZIM must hold once written."""
    return len(entries), sum(1 for entry in entries if entry.front)
