"""Build or update an offline kit: a BagIt bag holding a static French site and the videos.

Kit layout::

    index.html                 the one file to double-click; opens data/index.html
    LISEZMOI.txt               how to open the kit and how to check a copy
    bagit.txt  bag-info.txt  manifest-sha256.txt  tagmanifest-sha256.txt
    data/index.html            the catalog (search, filter by area)
    data/search-index.js       the search index, loaded with <script src>
    data/assets/               style.css, app.js, player.js
    data/videos/<id>/          index.html, the MP4, poster.jpg, captions, companion PDFs

    plan.py     what goes in: each video's held version (joined with its sound when PeerTube
                stores that apart), re-encodes, posters, captions
    derive.py   what is made from a video once and kept in the archive by sha256
    site.py     the French pages and text (templates/, static/)
    bag.py      BagIt: manifests, bag-info, verification
    write.py    writing only what changed, staged, the manifests last

Updating a kit (a USB key) writes only new or changed files (the catalog's sha256 against the
bag's manifest), removes files no longer listed, and leaves the previous kit intact when a
file cannot be written (:mod:`.write`).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from .._version import __version__
from ..archive import Archive
from ..entry import Entry
from ..errors import KitError
from ..manifest import Manifest
from ..progress import NullProgress, Progress
from ..units import format_bytes
from .bag import BAG_INFO, BAGIT_DECLARATION, BAGIT_TXT, PAYLOAD, bag_info
from .derive import Source
from .plan import DEFAULT_SETTINGS, DEFAULT_TITLE, KitPlan, KitSettings, plan_kit
from .site import describe_kit, render_readme, render_root, render_site
from .write import write_kit

__all__ = ["DEFAULT_TITLE", "KitError", "KitReport", "KitSettings", "build_kit", "package"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KitReport:
    """What an update of a kit did."""

    kit: Path
    items: int
    left_out: tuple[tuple[Entry, str], ...]
    written: int
    bytes_written: int
    linked: int
    removed: int
    unchanged: int
    warnings: tuple[str, ...]
    seconds: float
    changed: tuple[str, ...] = ()  # payload paths written or removed by this update
    reencoded: int = 0  # videos carried re-encoded (--transcode)


def package(
    manifest: Manifest,
    archive_root: Path,
    kit: Path,
    *,
    settings: KitSettings = DEFAULT_SETTINGS,
    progress: Progress | None = None,
) -> KitReport:
    """Build the kit at ``kit`` from what the archive holds of ``manifest``, or update it."""
    if not archive_root.is_dir():
        raise KitError(archive_root, "no archive here", hint="run 'archiver download' first")
    with Archive(archive_root) as archive, archive.locked():
        return build_kit(manifest, archive, kit, settings=settings, progress=progress)


def build_kit(
    manifest: Manifest,
    archive: Archive,
    kit: Path,
    *,
    settings: KitSettings = DEFAULT_SETTINGS,
    progress: Progress | None = None,
) -> KitReport:
    """:func:`package`, for a caller that already holds the archive's lock (sync)."""
    start = time.monotonic()
    plan = plan_kit(manifest, archive, settings)
    for name, data in render_site(plan.items, collection_title=settings.title).items():
        plan.payload[f"{PAYLOAD}/{name}"] = Source.of_bytes(data)
    written = write_kit(
        kit,
        plan.payload,
        _tag_files(plan, settings.title),
        archive_root=archive.root,
        copy=settings.copy,
        progress=progress or NullProgress(),
    )
    for warning in plan.warnings:
        log.warning("%s", warning)
    return KitReport(
        kit=kit,
        items=len(plan.items),
        left_out=tuple(plan.left_out),
        written=written.written,
        bytes_written=written.bytes_written,
        linked=written.linked,
        removed=written.removed,
        unchanged=written.unchanged,
        warnings=tuple(plan.warnings),
        seconds=time.monotonic() - start,
        changed=written.changed,
        reencoded=plan.reencoded,
    )


def _tag_files(plan: KitPlan, title: str) -> dict[str, bytes]:
    """The bag's tag files but its manifests: the declaration, bag-info, the root page and
    LISEZMOI.txt."""
    size = sum(s.size for s in plan.payload.values())
    organisations = sorted(
        {name for item in plan.items for c in item.entry.credits if c.role == "Production"
         for name in c.names}
    ) or ["archiver"]  # fmt: skip
    info = bag_info(
        [
            ("Bagging-Date", dt.date.today().isoformat()),
            ("Bag-Software-Agent", f"archiver {__version__}"),
            ("Payload-Oxum", f"{size}.{len(plan.payload)}"),
            ("Bag-Size", format_bytes(size)),
            ("Source-Organization", ", ".join(organisations)),
            ("External-Description", describe_kit(title, len(plan.items))),
        ]
    )
    count = len(plan.items)
    return {
        BAGIT_TXT: BAGIT_DECLARATION,
        BAG_INFO: info,
        "index.html": render_root(collection_title=title, count=count),
        "LISEZMOI.txt": render_readme(collection_title=title, count=count),
    }
