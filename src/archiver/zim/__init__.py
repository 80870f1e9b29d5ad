"""The collection as one Kiwix ZIM: the folder kit's French site, for phones, tablets and
kiwix-serve on a school LAN.

A ZIM (openZIM's format) is one file the Kiwix apps read on Android, iOS and desktops, that
``kiwix-serve`` serves on a LAN (with Range requests, so videos seek), searchable in French.
The ZIM holds exactly the folder kit's site: the same plan (:func:`archiver.kit.plan.plan_kit`,
so ``--max-height``, ``--fit`` and ``--transcode`` choose the same files), the same pages
rendered by :mod:`archiver.kit.site`, under the same relative paths.

    content.py       the kit's files as ZIM entries: paths, MIME types, titles, index text
    items.py         libzim's writer items for them: files read by libzim, hints, index data
    metadata.py      openZIM's metadata: Title, Description (80 characters), Language fra...
    illustration.py  the 48×48 PNG illustration, drawn in code
    writer.py        written beside, read back with libzim's reader, renamed when whole
    verify.py        libzim's checksum, every entry, every video against provenance and catalog
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..archive import Archive, FileRecord
from ..errors import ArchiveError, KitRefused
from ..kit import KitSettings
from ..kit.plan import plan_kit
from ..manifest import Manifest
from ..progress import Progress
from .verify import ZimCheck, verify_zim
from .writer import ZimReport, refuse_path, write_plan

__all__ = [
    "ZimCheck",
    "ZimReport",
    "check_zim_path",
    "flavour_of",
    "package_zim",
    "verify_zim",
    "write_zim",
]


def flavour_of(settings: KitSettings) -> str:
    """openZIM's Flavour: which selection of the collection the ZIM holds.

    >>> flavour_of(KitSettings()), flavour_of(KitSettings(max_height=480))
    ('maxi', '480p')
    """
    if settings.transcode is not None:
        return settings.transcode.name
    if settings.max_height is not None:
        return f"{settings.max_height}p"
    return "maxi"


def write_zim(
    manifest: Manifest,
    archive: Archive,
    path: Path,
    *,
    settings: KitSettings,
    progress: Progress | None = None,
    chosen: Mapping[str, FileRecord] | None = None,
) -> ZimReport:
    """The ZIM of what ``archive`` holds of ``manifest`` at ``path``, for a caller that
    holds the archive's lock (sync, after the folder kit: ``chosen`` as it chose)."""
    plan = plan_kit(manifest, archive, settings, chosen)
    return write_plan(
        plan, path, title=settings.title, flavour=flavour_of(settings), progress=progress
    )


def package_zim(
    manifest: Manifest,
    archive_root: Path,
    path: Path,
    *,
    settings: KitSettings,
    progress: Progress | None = None,
) -> ZimReport:
    """``archiver package --zim``: the ZIM of what the archive holds, under its lock."""
    if not archive_root.is_dir():
        raise ArchiveError(archive_root, "no archive here", hint="run 'archiver download' first")
    check_zim_path(path, archive_root)
    with Archive(archive_root) as archive, archive.locked():
        return write_zim(manifest, archive, path, settings=settings, progress=progress)


def check_zim_path(path: Path, archive_root: Path, kit: Path | None = None) -> None:
    """Raise :class:`KitRefused` (exit 2) for no place for a ZIM: inside the archive (whose
    files are all archiver's), inside the folder kit (whose manifest would not list it, so
    every later ``verify`` of the kit would fail), a folder, a file that is not a ZIM. Reads
    only: sync and package call it before writing anything."""
    where = path.absolute().resolve()
    if where.is_relative_to(archive_root.absolute().resolve()):
        raise KitRefused(path, "is inside the archive; write the ZIM elsewhere")
    if kit is not None and where.is_relative_to(kit.absolute().resolve()):
        raise KitRefused(
            path,
            "is inside the kit folder, whose manifest would not list it; write the ZIM elsewhere",
        )
    refuse_path(path)
