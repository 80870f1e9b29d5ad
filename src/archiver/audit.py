"""Fixity audits of the archive: every held file's sha256 recomputed against the catalog.

A librarian's proof that nothing rotted: each audit records when each file was last checked,
so ``--sample`` can audit the least recently checked share of a large archive each night and
still cover all of it over a cycle. A file is read only inside the archive: one reached
through a symbolic link is a problem, named, never read (its bytes are not the archive's).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .archive import Archive
from .catalog import AuditRow
from .errors import ArchiveError, StorageError, describe_os_error
from .files import HASH_BLOCK
from .progress import NullProgress, Progress

__all__ = ["AuditProblem", "AuditReport", "audit"]

log = logging.getLogger(__name__)

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class AuditProblem:
    path: str
    reason: str


@dataclass(frozen=True)
class AuditReport:
    """What an audit checked and found."""

    files: int
    size: int
    problems: tuple[AuditProblem, ...]
    seconds: float
    total_files: int


def audit(
    archive: Archive, *, sample_percent: float | None = None, progress: Progress | None = None
) -> AuditReport:
    """Recompute the sha256 of held files (every version) and compare with the catalog.

    With ``sample_percent``, only that share of the files is read, least recently audited
    first. Each file read gets its ``audited_at``; each problem is named. A catalog that fails
    SQLite's own integrity check is a problem too, named first. A catalog that cannot note the
    dates (a full disk) is a warning: the audit still reads every file and says what it found.
    One too damaged to list its files is an :class:`~archiver.errors.ArchiveError` (exit 2).
    """
    start = time.monotonic()
    problems = [
        AuditProblem(archive.catalog.path.name, f"the catalog is damaged: {found}")
        for found in archive.catalog.integrity_problems()
    ]
    rows = archive.catalog.audit_order()
    total = len(rows)
    if sample_percent is not None:
        rows = rows[: math.ceil(total * sample_percent / 100)]
    progress = progress or NullProgress()
    progress.begin(len(rows), sum(row.size for row in rows))
    try:
        size = _check(archive, rows, problems, progress)
    finally:
        progress.end()
    report = AuditReport(
        files=len(rows),
        size=size,
        problems=tuple(problems),
        seconds=time.monotonic() - start,
        total_files=total,
    )
    with contextlib.suppress(StorageError, ArchiveError):  # said by _check already
        archive.catalog.record_event(
            "audit",
            run_id=archive.run_id,
            outcome="failure" if problems else "success",
            detail={
                "files": report.files,
                "bytes": report.size,
                "of_files": total,
                "problems": len(problems),
                "sample_percent": sample_percent,
            },
        )
    return report


def _check(
    archive: Archive, rows: list[AuditRow], problems: list[AuditProblem], progress: Progress
) -> int:
    """Read each version's bytes once (versions with the same bytes share one file of the
    store) and note what was found; returns the bytes read."""
    size = 0
    marking = True
    found: dict[str, str] = {}  # a store file read in this audit: its sha256, or the problem
    for row in rows:
        key = (row.item_id, row.role, row.version)
        progress.started(key, row.path, row.size, 0)
        if row.path not in found:
            found[row.path], read = _read(archive, row, functools.partial(progress.advance, key))
            size += read
        else:
            progress.advance(key, row.size)
        actual = found[row.path]
        problem = None
        if not _SHA256.fullmatch(actual):
            problem = actual
        elif actual != row.sha256:
            problem = f"corrupt: sha256 is {actual}, expected {row.sha256}"
        if problem is not None:
            which = f"{row.role} of {row.item_id}, version {row.version}"
            problems.append(AuditProblem(row.path, f"{problem} ({which})"))
        progress.finished(key, failed=problem is not None)
        if marking:
            try:
                _note(archive, row, problem)
            except (StorageError, ArchiveError) as exc:  # full, or a damaged page: said once
                log.warning("%s; the audit goes on, but its dates are not recorded", exc.message)
                marking = False
    return size


def _read(archive: Archive, row: AuditRow, on_bytes: Callable[[int], None]) -> tuple[str, int]:
    """The sha256 of a version's file and the bytes read, or why it could not be read."""
    try:
        with archive.open_held(archive.root / row.path) as stream:
            return _sha256(stream, on_bytes)
    except FileNotFoundError:
        return "missing", 0
    except StorageError as exc:  # a link on the way, or a special file: not read
        return f"not read: {_shown(archive, exc.path)} is {exc.reason}", 0
    except OSError as exc:
        return f"unreadable: {describe_os_error(exc)}", 0


def _note(archive: Archive, row: AuditRow, problem: str | None) -> None:
    """Record what the audit found of one version: intact (its date of last sight is now), or
    a failure naming the last date it was seen intact."""
    if problem is None:
        archive.catalog.mark_audited(row)
        return
    last = archive.catalog.last_intact(row)
    archive.catalog.record_event(
        "audit",
        row,
        run_id=archive.run_id,
        outcome="failure",
        detail={"path": row.path, "problem": problem, "last_intact": last},
    )


def _sha256(stream: IO[bytes], on_bytes: Callable[[int], None]) -> tuple[str, int]:
    """The sha256 of what ``stream`` holds, and its length; ``on_bytes`` told of each block."""
    digest, read = hashlib.sha256(), 0
    while block := stream.read(HASH_BLOCK):
        digest.update(block)
        read += len(block)
        on_bytes(len(block))
    return digest.hexdigest(), read


def _shown(archive: Archive, path: str) -> str:
    """``path`` as the archive names it (``media/item-a``), for a problem's reason."""
    try:
        return Path(path).relative_to(archive.root).as_posix()
    except ValueError:
        return path
