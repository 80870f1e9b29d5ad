"""Check a ZIM: libzim's checksum, every entry read, every video against its record.

Two uses. Right after writing (:func:`check_written`), before the ZIM gets its name: the
file must read back as planned, entry for entry (:func:`_written_as_planned`). Later, on a
copy (``archiver verify FILE.zim``, :func:`verify_zim`): the MD5 checksum libzim wrote in it;
every entry read whole and hashed (a damaged cluster fails to decompress); each video and
companion file against the sha256 the ZIM's own ``provenance.json`` records; with
``--archive``, each video against the archive's catalog: the archived video it names must be
one the catalog recorded (same sha256, same size), and a video carried as archived must be
those very bytes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..archive import Archive
from ..errors import KitRefused
from ..kit.bag import PAYLOAD
from ..kit.provenance import PROVENANCE_NAME
from ..progress import NullProgress, Progress
from .content import MAIN_PAGE, ZimEntry, planned_counts
from .metadata import Metadata

if TYPE_CHECKING:
    from libzim.reader import Archive as ZimArchive

__all__ = ["ZimCheck", "check_written", "verify_zim"]

_PREFIX = f"{PAYLOAD}/"
# provenance.json is the ZIM's own record; it is read whole into memory, so it is bounded.
PROVENANCE_LIMIT = 64 * 1024 * 1024
# Right after writing, an entry libzim stored as it is, from a file, and at least this large
# (a video) is compared at its two ends with its file; any other entry is hashed whole.
WHOLE_BELOW = 1024 * 1024
END_BLOCK = 64 * 1024


@dataclass
class ZimCheck:
    """What verifying a ZIM found: its entries and bytes, and each problem, by entry path."""

    path: Path
    entries: int = 0
    size: int = 0
    videos: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)


def _open(path: Path) -> ZimArchive:
    from libzim.reader import Archive as ZimArchive

    if not path.is_file():
        raise KitRefused(path, "no such ZIM file")
    try:
        return ZimArchive(path)
    except RuntimeError as exc:
        raise KitRefused(path, f"is not a ZIM libzim can read ({exc})") from exc


def _sha256(archive: ZimArchive, path: str) -> tuple[str, int]:
    from .writer import sha256_of_view

    item = archive.get_entry_by_path(path).get_item()
    content = item.content
    return sha256_of_view(content), len(content)


def check_written(path: Path, entries: Sequence[ZimEntry], metadata: Metadata) -> list[str]:
    """Problems of a ZIM just written from ``entries``, read back with libzim's reader: its
    checksum, counts, main page, indexes, metadata, and every entry read.

    ``Archive.check()`` (libzim's MD5 of the whole file) is most of the time: 1.1 s of the
    1.15 s for 400 MiB of videos. It runs in this thread: python-libzim 3.13 holds the GIL
    through it (measured: a thread hashing beside it waits), so a thread of its own would
    run nothing beside it.
    """
    archive = _open(path)
    problems = []
    if not archive.has_checksum or not archive.check():
        problems.append("its checksum does not match its bytes")
    return problems + _check_entries(archive, entries, metadata)


def _check_entries(
    archive: ZimArchive, entries: Sequence[ZimEntry], metadata: Metadata
) -> list[str]:
    problems = []
    count, front = planned_counts(entries)
    if archive.entry_count != count:
        problems.append(f"{archive.entry_count} entries, {count} planned")
    if archive.article_count != front:
        problems.append(f"{archive.article_count} pages in its title index, {front} planned")
    if not archive.has_main_entry or archive.main_entry.get_item().path != MAIN_PAGE:
        problems.append(f"its main page is not {MAIN_PAGE}")
    if not archive.has_fulltext_index or not archive.has_title_index:
        problems.append("it has no full-text or no title index")
    for name, value in metadata.values:
        try:
            held = archive.get_metadata(name).decode("utf-8")
        except (RuntimeError, KeyError, UnicodeDecodeError):
            held = None
        if held != value:
            problems.append(f"metadata {name} reads {held!r}, not {value!r}")
    for entry in entries:
        try:
            problem = _written_as_planned(archive, entry)
        except (RuntimeError, KeyError) as exc:
            problem = f"cannot be read ({exc})"
        except OSError as exc:
            problem = f"its file cannot be read to compare ({exc.strerror or exc})"
        if problem is not None:
            problems.append(f"{entry.path}: {problem}")
    return problems


def _written_as_planned(archive: ZimArchive, entry: ZimEntry) -> str | None:
    """What is wrong with ``entry`` as the ZIM just written holds it, or None.

    Its path, MIME type and size, always. Its bytes: hashed whole and compared with the plan's
    sha256 when libzim transformed them (compressed: a cluster that does not decompress is
    the unreadable entry the check is for) or made them from Python bytes, or when they are
    small. A large file stored as it is (a video) is compared at its two ends with its file,
    not hashed: libzim copied it into an uncompressed cluster, whose entries are plain ranges
    of the ZIM; the range's two ends read, it is readable whole; its size and ends matching
    the file's, it is the file's range (not a neighbour's, not shifted); and the bytes between
    are the ones libzim wrote there, which the MD5 of :func:`check_written`'s
    ``Archive.check()`` proves, read from the file whose sha256 the archive proved when it
    stored it. Hashing them again cost a second pass over every video (0.4 s for 400 MiB,
    1.8 s for 1.6 GiB: ``bench/bench_zim.py``, docs/benchmarks.md) for a libzim that would
    copy a file wrong in its middle only.
    """
    item = archive.get_entry_by_path(entry.path).get_item()
    if item.mimetype != entry.mimetype:
        return f"its MIME type reads {item.mimetype!r}, not {entry.mimetype!r}"
    if item.size != entry.size:
        return f"{item.size} bytes, {entry.size} planned"
    source = entry.source.path
    if entry.compress or source is None or entry.size < WHOLE_BELOW:
        if _sha256_of(item.content) != entry.source.sha256:
            return "its bytes differ from what was planned"
        return None
    content = item.content  # format "c": compared as bytes, a block at a time
    with source.open("rb") as file:
        head = file.read(END_BLOCK)
        file.seek(entry.size - END_BLOCK)
        tail = file.read(END_BLOCK)
    if bytes(content[:END_BLOCK]) != head or bytes(content[entry.size - END_BLOCK :]) != tail:
        return "its bytes differ from its file's"
    return None


def _sha256_of(content: memoryview) -> str:
    from .writer import sha256_of_view

    return sha256_of_view(content)


def _provenance(archive: ZimArchive, found: ZimCheck) -> list[dict[str, Any]]:
    """The videos the ZIM's ``provenance.json`` records (none, named, when unreadable)."""
    try:
        item = archive.get_entry_by_path(PROVENANCE_NAME).get_item()
        if item.size > PROVENANCE_LIMIT:
            raise ValueError("too large")
        document = json.loads(bytes(item.content))
        videos = document["videos"]
        if not isinstance(videos, list):
            raise ValueError("no list of videos")
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        found.problems.append((PROVENANCE_NAME, f"missing or unreadable: {exc}"))
        return []
    return [video for video in videos if isinstance(video, dict)]


def _zim_path(kit_path: object) -> str | None:
    """A kit path (``data/videos/x/video.mp4``) as the ZIM's entry path."""
    if isinstance(kit_path, str) and kit_path.startswith(_PREFIX):
        return kit_path[len(_PREFIX) :]
    return None


def verify_zim(
    path: Path, *, archive_root: Path | None = None, progress: Progress | None = None
) -> ZimCheck:
    """Verify the ZIM at ``path`` (see the module's docstring); every problem is named.

    Raises :class:`KitRefused` (exit 2) for a file that is no ZIM.
    """
    meter = progress or NullProgress()
    archive = _open(path)
    found = ZimCheck(path=path, size=archive.filesize)
    if not archive.has_checksum:
        found.problems.append(("", "the ZIM has no checksum"))
    elif not archive.check():
        found.problems.append(("", "its checksum does not match its bytes: the file changed"))
    count = archive.entry_count
    found.entries = count
    meter.begin(count, None)
    digests: dict[str, tuple[str, int]] = {}
    for index in range(count):
        try:
            entry = archive._get_entry_by_id(index)
            where = entry.path
            meter.started(index, where, None, 0)
            if not entry.is_redirect:
                digests[where] = _sha256(archive, where)
        except (RuntimeError, KeyError) as exc:
            found.problems.append((f"#{index}", f"cannot be read ({exc})"))
        meter.finished(index, failed=False)
    meter.end()
    videos = _provenance(archive, found)
    found.videos = len(videos)
    for video in videos:
        _check_files(video, digests, found)
    if archive_root is not None:
        with Archive.existing(archive_root) as store:
            for video in videos:
                _check_catalog(video, digests, store, found)
    return found


def _check_files(
    video: dict[str, Any], digests: dict[str, tuple[str, int]], found: ZimCheck
) -> None:
    """Each file of a video the ZIM carries against the sha256 its provenance records."""
    listed = [video.get("kit_video")] + [
        c for c in video.get("companions") or [] if isinstance(c, dict)
    ]
    for record in listed:
        if not isinstance(record, dict):
            continue
        where = _zim_path(record.get("path"))
        if where is None:
            continue
        held = digests.get(where)
        if held is None:
            found.problems.append((where, "missing from the ZIM"))
        elif held != (record.get("sha256"), record.get("size")):
            found.problems.append((where, "its sha256 differs from the one its provenance records"))


def _check_catalog(
    video: dict[str, Any], digests: dict[str, tuple[str, int]], store: Archive, found: ZimCheck
) -> None:
    """A video against the archive's catalog: its archived version recorded there, and the
    ZIM's bytes that version's own when the ZIM carries it unchanged."""
    item = str(video.get("id"))
    archived = video.get("video") if isinstance(video.get("video"), dict) else {}
    carried = video.get("kit_video") if isinstance(video.get("kit_video"), dict) else {}
    assert isinstance(archived, dict)  # noqa: S101 - for mypy
    assert isinstance(carried, dict)  # noqa: S101 - for mypy
    where = _zim_path(carried.get("path")) or item
    recorded = {(record.sha256, record.size) for record in store.catalog.versions(item, "video")}
    if (archived.get("sha256"), archived.get("size")) not in recorded:
        found.problems.append((where, "its archived video is not in the archive's catalog"))
        return
    held = digests.get(where)
    if not carried.get("made") and held is not None and held not in recorded:
        found.problems.append((where, "its sha256 differs from the archive's catalog"))
