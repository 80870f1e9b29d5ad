"""Write the ZIM with libzim: beside its final name, checked with libzim's reader, renamed.

The ZIM is written as ``FILE.zim.partial`` in the same folder (libzim itself writes
``FILE.zim.partial.tmp`` and its index files beside it, and renames when it finishes), read
back with libzim's reader (its MD5 checksum, every entry read: pages against the plan's
sha256, videos at both ends against their files; the counts as planned, the main page, the
indexes; :func:`.verify.check_written`), and only then renamed to ``FILE.zim``: a
reader, a copy or kiwix-serve never finds half a ZIM under the final name, and a ZIM held
before stays whole until the new one replaces it. When the disk fills, libzim raises an
"Unknown exception": the free space, read at once, tells that it was the disk, and the
command says so on one line (exit 1) after removing every partial file.

Deterministic where libzim allows it: entries are added in path order by one worker, with
the same metadata and illustration; libzim draws a random UUID for each ZIM and Xapian one
for each of its two indexes (the binding cannot set them), so two ZIMs of one collection
differ in those 48 bytes and in the checksum only.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..entry import Entry
from ..errors import KitError, KitRefused, describe_os_error
from ..kit.plan import KitPlan
from ..progress import NullProgress, Progress
from ..units import format_bytes
from .content import MAIN_PAGE, ZimEntry, zim_entries
from .illustration import ILLUSTRATION_SIZE, illustration_png
from .metadata import LANGUAGE, Metadata, zim_metadata

__all__ = ["PARTIAL_SUFFIX", "ZIM_MAGIC", "ZimReport", "refuse_path", "write_plan"]

log = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".partial"
ZIM_MAGIC = b"ZIM\x04"  # a ZIM's first four bytes (72173914, little-endian)
CLUSTER_SIZE = 2 * 1024 * 1024  # libzim's default: small pages, compressed together
# One compression worker: clusters in the order entries are added. Two were no faster for
# 100 videos (1.93 s against 1.90: the pages are 1 MB to compress, the videos are copied).
WORKERS = 1
# Room a ZIM needs beyond its entries: dirents, title and full-text indexes (made in a
# temporary folder, then copied in), metadata; per entry, and in all.
OVERHEAD_PER_ENTRY = 2048
OVERHEAD = 4 * 1024 * 1024
# Free bytes under which a failed write is taken for a full disk: a write libzim could not
# finish leaves at most about a cluster or a block of a video free.
FULL_BELOW = 8 * 1024 * 1024
READ_BLOCK = 4 * 1024 * 1024


@dataclass(frozen=True)
class ZimReport:
    """What writing a ZIM did."""

    path: Path
    items: int  # videos in the ZIM
    left_out: tuple[tuple[Entry, str], ...]
    entries: int  # the ZIM's entries (pages, videos, posters, captions, scripts)
    size: int  # bytes of the ZIM file
    warnings: tuple[str, ...]
    seconds: float
    reencoded: int = 0


def write_plan(
    plan: KitPlan,
    path: Path,
    *,
    title: str,
    flavour: str,
    progress: Progress | None = None,
) -> ZimReport:
    """Write ``plan`` (the folder kit's plan) as the ZIM at ``path``, checked, atomically.

    Raises :class:`KitRefused` (exit 2) for a path that is a folder or a file that is not a
    ZIM; :class:`KitError` (exit 1) when the disk has no room or libzim cannot write; in both
    cases nothing is left under ``path`` but what was there before.
    """
    start = time.monotonic()
    meter = progress or NullProgress()
    refuse_path(path)
    entries = zim_entries(plan, title=title)
    metadata = zim_metadata(plan.items, title=title, flavour=flavour)
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KitError(folder, f"cannot create the folder: {describe_os_error(exc)}") from exc
    needed = sum(e.size for e in entries) + OVERHEAD_PER_ENTRY * len(entries) + OVERHEAD
    free = _free(folder)
    if free is not None and free < needed:
        raise KitError(
            path,
            f"not enough room for the ZIM: it needs about {format_bytes(needed)}, "
            f"{format_bytes(free)} free",
        )
    partial = path.with_name(path.name + PARTIAL_SUFFIX)
    _remove_partial(partial)
    try:
        _create(partial, entries, metadata, meter)
        _check(partial, entries, metadata)
        os.replace(partial, path)
    except BaseException:
        _remove_partial(partial)
        raise
    finally:
        meter.end()
    return ZimReport(
        path=path,
        items=len(plan.items),
        left_out=tuple(plan.left_out),
        entries=len(entries),
        size=path.stat().st_size,
        warnings=tuple(plan.warnings),
        seconds=time.monotonic() - start,
        reencoded=plan.reencoded,
    )


def refuse_path(path: Path) -> None:
    """Refuse a ZIM path that is a folder, or a file that is not a ZIM (never replaced)."""
    if path.is_dir():
        raise KitRefused(path, "is a folder; --zim names the ZIM file to write (FILE.zim)")
    if path.exists() or path.is_symlink():
        try:
            with path.open("rb") as held:
                head = held.read(len(ZIM_MAGIC))
        except OSError as exc:
            raise KitRefused(path, f"cannot read the file: {describe_os_error(exc)}") from exc
        if path.is_symlink() or head != ZIM_MAGIC:
            raise KitRefused(path, "is not a ZIM archiver may replace; give another name")


def _free(folder: Path) -> int | None:
    try:
        info = os.statvfs(folder)
    except OSError:
        return None
    return info.f_bavail * info.f_frsize


def _partials(partial: Path) -> list[Path]:
    """The partial ZIM and what libzim writes beside it (``.tmp``, ``_fulltext.idx``...)."""
    try:
        names = os.listdir(partial.parent)
    except OSError:
        return []
    return [partial.parent / name for name in names if name.startswith(partial.name)]


def _remove_partial(partial: Path) -> None:
    for leftover in _partials(partial):
        with contextlib.suppress(OSError):
            if leftover.is_dir() and not leftover.is_symlink():
                for inner in leftover.iterdir():
                    inner.unlink()
                leftover.rmdir()
            else:
                leftover.unlink()


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """libzim prints its steps to the process's standard output ("ZIM file is ready!")
    whatever its verbosity: they go to a temporary file and to the debug log, so that
    ``-q`` and a cron job's mail stay silent."""
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 1)
        try:
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            captured.seek(0)
            said = captured.read(64 * 1024).decode("utf-8", "replace").strip()
            if said:
                log.debug("libzim: %s", " / ".join(said.splitlines()))


def _create(
    partial: Path, entries: Sequence[ZimEntry], metadata: Metadata, meter: Progress
) -> None:
    """Write every entry with libzim; a failure becomes one :class:`KitError`."""
    from libzim.writer import Creator  # 60 ms of import a run without --zim spares

    from .items import item_of

    meter.begin(len(entries), sum(e.size for e in entries))
    try:
        with _quiet_stdout():
            creator = (
                Creator(partial)
                .config_indexing(True, LANGUAGE)
                .config_clustersize(CLUSTER_SIZE)
                .config_nbworkers(WORKERS)
                .config_verbose(False)
            )
            with creator:
                creator.set_mainpath(MAIN_PAGE)
                for name, value in metadata.values:
                    creator.add_metadata(name, value)
                creator.add_illustration(ILLUSTRATION_SIZE, illustration_png(ILLUSTRATION_SIZE))
                for entry in entries:
                    meter.started(entry.path, entry.path, entry.size, 0)
                    creator.add_item(item_of(entry))
                    meter.advance(entry.path, entry.size)
                    meter.finished(entry.path, failed=False)
    except (RuntimeError, OSError) as exc:
        free = _free(partial.parent)  # before the partial files go: they fill the disk now
        if isinstance(exc, OSError) and exc.errno is not None:
            reason = describe_os_error(exc)
        elif free is not None and free < FULL_BELOW:
            reason = "no space left on the device"
        else:
            reason = f"libzim could not write it: {exc}"
        raise KitError(partial.with_suffix(""), f"cannot write the ZIM: {reason}") from exc


def _check(partial: Path, entries: Sequence[ZimEntry], metadata: Metadata) -> None:
    """Read the ZIM back with libzim's reader before it gets its name: its checksum, its
    counts, its main page, its metadata and indexes, and every entry."""
    from .verify import check_written

    problems = check_written(partial, entries, metadata)
    if problems:
        raise KitError(
            partial.with_suffix(""),
            f"the ZIM written does not read back as planned: {problems[0]}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
        )


def sha256_of_view(view: memoryview) -> str:
    """The sha256 of an entry's bytes, read in blocks (a video may be gigabytes, mapped)."""
    digest = hashlib.sha256()
    for start in range(0, len(view), READ_BLOCK):
        digest.update(view[start : start + READ_BLOCK])
    return digest.hexdigest()
