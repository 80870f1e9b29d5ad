"""Build or update an offline kit: a BagIt bag holding a static French site and the videos.

Kit layout::

    index.html                 the one file to double-click: a page of its own (the
                               collection, its count, a button to the catalogue)
    LISEZMOI.txt               how to open the kit and how to check a copy
    verifier-cle.ps1           checks a copy from Windows' PowerShell (Get-FileHash)
    bagit.txt  bag-info.txt  manifest-sha256.txt  tagmanifest-sha256.txt
    data/index.html            the catalogue (search, filter by area)
    data/search-index.js       the search index, loaded with <script src>
    data/provenance.json       where each file came from: URL, date, sha256, licence
    data/assets/               style.css, app.js, player.js
    data/videos/<Title>/       named from the title (pages.folder_names), FAT32-safe ASCII:
        index.html             the video's page
        <Title>-720p.mp4       the video, named from its title and height
        poster.jpg             a frame of it, or the instance's preview
        captions-fr.vtt        its caption tracks, and captions.js that carries their cues
        fiche.pdf  transcription.pdf   its companion PDFs

    plan.py       what goes in: each video's folder, its poster, captions and companion files
                  checked and named from their role, and where each came from
    videos.py     the video each item carries: its held version (--fit, --max-height, pinned,
                  restored), joined with its sound when PeerTube stores that apart, re-encoded
    derive.py     what is made from a video once and kept in the archive by sha256
    site.py       the French pages and text (templates/, static/)
    provenance.py where each video and its files came from, for its page and provenance.json
    bag.py        BagIt: manifests, bag-info, verification
    ownership.py  whose files a kit folder holds: archiver's mark and its list
    survey.py     what an update may write, replace and remove there: every path it will hold
                  checked before a byte is written, and the rest of the folder sorted
    tree.py       what a kit folder holds, listed once for all of an update's checks
    lock.py       one run at a time on a kit
    sealed.py     an update that found nothing to do, sealed; replayed while nothing moved
    pages.py      how the pages write sizes, counts and the catalogue's order; names from titles
    write.py      writing only what changed and only what is archiver's, staged, manifests
                  last; a file the kit holds under a name it drops is moved, not copied
    staging.py    the file steps of an update: staged durably, journaled, undone, errors said
    page_cache.py what the kit's pages were made from, noted in the archive's cache/
    identity.py   what each payload file was on disk after the last update (inode, size,
                  times), noted there too: a file moved since is read again, not trusted

A kit goes only where archiver may write it: an empty or missing folder, or a kit archiver
made; never the archive, a folder inside it or one holding it (:mod:`.ownership`). One run at
a time updates a kit (its lock, exit 3 for the next). Updating a kit (a USB key) writes only
new or changed files (the catalog's sha256 against the bag's manifest), removes the files
archiver wrote there and no longer plans, never any other, and leaves the previous kit intact
when a file cannot be written (:mod:`.write`). It makes again only the pages whose sources
changed: the archive's ``cache/kit-<digest>.json`` notes what each page of the kit was made
from (:func:`.site.site_sources`), and a page the kit holds, made from the same, is not made.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import logging
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from .. import collector, settled
from .._version import __version__
from ..archive import Archive, FileRecord
from ..entry import Entry
from ..errors import ArchiveError, KitError, KitRefused, describe_os_error
from ..fiche_cache import CACHE_FOLDER, cache_folder
from ..manifest_reader import Manifest, loads, read_manifest_bytes
from ..progress import NullProgress, Progress
from ..units import format_bytes
from .bag import BAG_INFO, BAGIT_DECLARATION, BAGIT_TXT, PAYLOAD, bag_info
from .lock import locked
from .ownership import MARK_AGENT, SUBFOLDER_HINT, Claim, claim, refuse_overlap
from .page_cache import Note, pages_path, read_note, write_note
from .plan import DEFAULT_SETTINGS, DEFAULT_TITLE, KitPlan, KitSettings, plan_kit
from .provenance import PROVENANCE_NAME, provenance_json
from .sealed import Sealing, quiet, replayed
from .site import (
    CHECK_SCRIPT,
    describe_kit,
    recipe,
    render_check_script,
    render_readme,
    render_root,
    site_sources,
)
from .tree import Tree
from .write import Written, write_kit

__all__ = [
    "DEFAULT_TITLE",
    "SUBFOLDER_HINT",
    "KitError",
    "KitRefused",
    "KitReport",
    "KitSettings",
    "build_kit",
    "check_kit_folder",
    "package",
    "package_file",
]

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
    changed: tuple[str, ...] = ()  # payload paths written, moved or removed by this update
    reencoded: int = 0  # videos carried re-encoded (--transcode)
    moved: int = 0  # files the kit held under a name it dropped, moved to their new name


def package(
    manifest: Manifest,
    archive_root: Path,
    kit: Path,
    *,
    settings: KitSettings = DEFAULT_SETTINGS,
    progress: Progress | None = None,
) -> KitReport:
    """Build the kit at ``kit`` from what the archive holds of ``manifest``, or update it.

    Raises :class:`~archiver.errors.ArchiveError` (exit 2) when ``archive_root`` holds no
    archive, :class:`KitRefused` (exit 2, nothing written) for a kit folder archiver may not
    write (:func:`check_kit_folder`), :class:`~archiver.errors.LockHeld` (exit 3) when another
    run holds the archive or the kit.
    """
    _check_targets(archive_root, kit)
    with Archive(archive_root) as archive, archive.locked():
        return build_kit(manifest, archive, kit, settings=settings, progress=progress)


def _check_targets(archive_root: Path, kit: Path) -> None:
    """An archive to package from, and a kit folder archiver may write: else exit 2, before
    anything is written."""
    if not archive_root.is_dir():
        raise ArchiveError(archive_root, "no archive here", hint="run 'archiver download' first")
    check_kit_folder(kit, archive_root)


def package_file(
    manifest_path: Path,
    archive_root: Path,
    kit: Path,
    *,
    settings: KitSettings = DEFAULT_SETTINGS,
    progress: Progress | None = None,
) -> KitReport:
    """:func:`package` of the manifest at ``manifest_path`` (``archiver package``), sealed when
    it finds nothing to do: the next update of the same kit from the same manifest's bytes,
    archive, templates and archiver, when no file of the archive or the kit moved, replays its
    report without reading the manifest or planning the kit (:mod:`archiver.settled`)."""
    start = time.monotonic()
    # Read once, a pipe included: the key is the sha256 of the very bytes a whole run parses.
    data = read_manifest_bytes(manifest_path)
    key = settled.key_of(
        "package",
        hashlib.sha256(data).hexdigest(),
        [manifest_path],
        archive_root,
        kit,
        settings,
        recipe(),
    )
    seal = settled.read(archive_root, key) if key is not None else None
    # A manifest that does not read is said before the archive or the kit is looked at.
    manifest = loads(data, path=manifest_path) if seal is None else None
    _check_targets(archive_root, kit)
    with Archive(archive_root) as archive, archive.locked():
        if seal is not None:
            report = replayed(seal, archive, kit, KitReport)
            if report is not None:
                return dataclasses.replace(report, seconds=time.monotonic() - start)
        if manifest is None:
            manifest = loads(data, path=manifest_path)
        sealing = Sealing(key, archive, kit)
        with sealing.watching(manifest_path):
            report = build_kit(manifest, archive, kit, settings=settings, progress=progress)
        sealing.close(report, quiet(report), until=float("inf"), summary={})
    return report


def check_kit_folder(kit: Path, archive_root: Path) -> None:
    """Raise :class:`KitRefused` when ``kit`` is no place for a kit: the archive's folder, one
    inside it or holding it, a file, a folder that is not empty and not a kit archiver made.
    Reads only: a command calls it before its first write (sync, before downloading)."""
    refuse_overlap(kit, archive_root)
    claim(kit, lists=False)


def build_kit(
    manifest: Manifest,
    archive: Archive,
    kit: Path,
    *,
    settings: KitSettings = DEFAULT_SETTINGS,
    progress: Progress | None = None,
    chosen: Mapping[str, FileRecord] | None = None,
) -> KitReport:
    """:func:`package`, for a caller that already holds the archive's lock (sync), which
    says the version of each video it ``chosen`` for this kit."""
    # Hundreds of thousands of records, paths and strings, no cycle (issue 14).
    with collector.paused():
        return _build_kit(manifest, archive, kit, settings, progress, chosen)


def _build_kit(
    manifest: Manifest,
    archive: Archive,
    kit: Path,
    settings: KitSettings,
    progress: Progress | None,
    chosen: Mapping[str, FileRecord] | None,
) -> KitReport:
    start = time.monotonic()
    refuse_overlap(kit, archive.root)
    made = _make_folder(kit)
    try:
        with locked(kit):
            # Examined under the lock: another run may have been writing it until now.
            owned = claim(kit)
            plan = plan_kit(manifest, archive, settings, chosen)
            tree = Tree(kit)  # what the kit holds, read once for all the update's checks
            cache = cache_folder(archive.root / CACHE_FOLDER)
            pages = _add_site(tree, plan, owned, settings.title, cache)
            tags = _tag_files(plan, settings.title)
            written = write_kit(
                kit,
                plan.payload,
                tags,
                known_tags=tags.known(pages.note.tags),
                claim=owned,
                archive_root=archive.root,
                copy=settings.copy,
                progress=progress or NullProgress(),
                tree=tree,
                noted=pages.note.files if pages.path is not None else None,
            )
            _note_pages(pages, plan, written, tags)
    except BaseException:
        if made:  # a folder made for a kit that was never written: not left behind
            with contextlib.suppress(OSError):
                kit.rmdir()
        raise
    warnings = (*plan.warnings, *written.warnings)
    for warning in warnings:
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
        warnings=warnings,
        seconds=time.monotonic() - start,
        changed=written.changed,
        reencoded=plan.reencoded,
        moved=written.moved,
    )


@dataclass(frozen=True)
class _Pages:
    """What a kit's generated files were made from, read from the archive's cache (``path``;
    ``None`` for no cache), and their keys in this update."""

    path: Path | None
    note: Note  # as read: the pages, the tag files, each payload file on disk
    keys: Mapping[str, str]


def _add_site(tree: Tree, plan: KitPlan, owned: Claim, title: str, cache: Path | None) -> _Pages:
    """Put the site's files and ``provenance.json`` in the plan's payload: made only when
    what they are made from changed since the kit's last update (as the archive's cache
    says), else known by the sha256 the kit's manifest lists (:func:`.site.site_sources`)."""
    path = pages_path(cache, tree.kit) if cache is not None else None
    note = Note()
    if path is not None and not owned.new:
        note = read_note(path, recipe=recipe(), files=2 * len(plan.items) + 8, paths=owned.recorded)
    held = note.pages

    def known(name: str, key: str) -> tuple[str, int] | None:
        found = held.get(name)
        bag_path = f"{PAYLOAD}/{name}"
        if found is None or found[0] != key or owned.recorded.get(bag_path) != found[1]:
            return None
        # The file itself still there at its size, as the update will check it.
        info = tree.lstat(bag_path)
        if info is None or not stat.S_ISREG(info.st_mode) or info.st_size != found[2]:
            return None
        return found[1], found[2]

    records = [item.provenance for item in plan.items if item.provenance is not None]
    sources, keys = site_sources(
        plan.items,
        collection_title=title,
        known=known,
        extra={PROVENANCE_NAME: lambda: provenance_json(records)},
    )
    for name, source in sources.items():
        plan.payload[f"{PAYLOAD}/{name}"] = source
    return _Pages(path, note, keys)


def _note_pages(pages: _Pages, plan: KitPlan, written: Written, tags: _Tags) -> None:
    """Note what each generated file of the kit, as it now is, was made from, its tag files
    too, and what each payload file is on disk (written only when any of it changed)."""
    if pages.path is None:
        return
    made = {path: (sha256, size) for path, sha256, size in written.made}
    files = {}
    for name, key in pages.keys.items():
        path = f"{PAYLOAD}/{name}"
        source = plan.payload[path]
        sha256, size = made.get(path, (source.sha256, source.size))
        files[name] = (key, sha256, size)
    note = Note(pages=files, tags=tags.noted(pages.note.tags), files=written.identities)
    if note != pages.note:
        write_note(pages.path, note, recipe=recipe())


def _make_folder(kit: Path) -> bool:
    """Make the kit's folder when it is missing, to lock it; whether it was made."""
    if kit.is_dir():
        return False
    try:
        kit.mkdir(parents=True)
    except FileExistsError:
        return False  # a file (refused when locked) or a folder made meanwhile
    except OSError as exc:
        raise KitError(kit, f"cannot create the kit: {describe_os_error(exc)}") from exc
    return True


class _Tags(Mapping[str, bytes]):
    """Tag files by name, each made when first read: an update that changes nothing reads
    none of them (it compares the kit's tag manifest with what the archive's note says this
    recipe makes from the same key, then the kit's tag files with its tag manifest), and the
    root page and LISEZMOI.txt are rendered with jinja2, whose import and templates cost a
    no-op run 40 to 80 ms. ``keys``: what each tag file but ``bag-info.txt`` (which dates the
    bag) is made from, besides the recipe."""

    def __init__(self, makers: Mapping[str, Callable[[], bytes]], keys: Mapping[str, str]) -> None:
        self._makers = makers
        self._keys = keys
        self._made: dict[str, bytes] = {}

    def known(self, noted: Mapping[str, tuple[str, str]]) -> dict[str, str]:
        """The sha256 of the tag files ``noted`` (name → key, sha256) says this recipe makes
        from their key: known without making them."""
        return {
            name: held[1]
            for name, held in noted.items()
            if name in self._keys and self._keys[name] == held[0]
        }

    def noted(self, noted: Mapping[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
        """What to note of each tag file: its key and the sha256 of what it is made into,
        known from ``noted`` or made now."""
        known = self.known(noted)
        return {
            name: (key, known.get(name) or hashlib.sha256(self[name]).hexdigest())
            for name, key in self._keys.items()
        }

    def __getitem__(self, name: str) -> bytes:
        if name not in self._made:
            self._made[name] = self._makers[name]()
        return self._made[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._makers)

    def __len__(self) -> int:
        return len(self._makers)


def _tag_files(plan: KitPlan, title: str) -> _Tags:
    """The bag's tag files but its manifests: the declaration, bag-info, the root page,
    LISEZMOI.txt and the PowerShell script that checks a copy from Windows (made when read:
    see :class:`_Tags`)."""
    size = sum(s.size for s in plan.payload.values())
    organisations = sorted(
        {name for item in plan.items for c in item.entry.credits if c.role == "Production"
         for name in c.names}
    ) or ["archiver"]  # fmt: skip
    info = bag_info(
        [
            ("Bagging-Date", dt.date.today().isoformat()),
            ("Bag-Software-Agent", f"{MARK_AGENT}{__version__}"),
            ("Payload-Oxum", f"{size}.{len(plan.payload)}"),
            ("Bag-Size", format_bytes(size)),
            ("Source-Organization", ", ".join(organisations)),
            ("External-Description", describe_kit(title, len(plan.items))),
        ]
    )
    count = len(plan.items)
    makers: dict[str, Callable[[], bytes]] = {
        BAGIT_TXT: lambda: BAGIT_DECLARATION,
        BAG_INFO: lambda: info,
        "index.html": lambda: render_root(collection_title=title, count=count),
        "LISEZMOI.txt": lambda: render_readme(collection_title=title, count=count),
        CHECK_SCRIPT: render_check_script,
    }
    made_from = f"{title}\0{count}".encode("utf-8", "surrogatepass")
    keys = {
        name: hashlib.sha256(name.encode("ascii") + b"\0" + made_from).hexdigest()
        for name in makers
        if name != BAG_INFO
    }
    return _Tags(makers, keys)
