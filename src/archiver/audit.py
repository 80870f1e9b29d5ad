"""Fixity audits of the archive: every held file's sha256 recomputed against the catalog.

A librarian's proof that nothing rotted: each audit records when each file was last checked,
so ``--sample`` can audit the least recently checked share of a large archive each night and
still cover all of it over a cycle.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from .archive import Archive, utc_now
from .bag import file_sha256
from .meter import ByteMeter

__all__ = ["AuditProblem", "AuditReport", "audit"]


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
    archive: Archive, *, sample_percent: float | None = None, meter: ByteMeter | None = None
) -> AuditReport:
    """Recompute the sha256 of held files (every version) and compare with the catalog.

    With ``sample_percent``, only that share of the files is read, least recently audited
    first. Each file read gets its ``audited_at``; each problem is named.
    """
    start = time.monotonic()
    rows = archive.db.execute(
        "SELECT item_id, role, version, path, sha256, size FROM files"
        " ORDER BY audited_at IS NOT NULL, audited_at, item_id, role, version"
    ).fetchall()
    total = len(rows)
    if sample_percent is not None:
        rows = rows[: math.ceil(total * sample_percent / 100)]
    meter = meter or ByteMeter()
    meter.begin(sum(row[5] for row in rows))
    try:
        problems, size = _check(archive, rows, meter)
    finally:
        meter.end()
    return AuditReport(
        files=len(rows),
        size=size,
        problems=tuple(problems),
        seconds=time.monotonic() - start,
        total_files=total,
    )


def _check(
    archive: Archive, rows: list[tuple[str, str, int, str, str, int]], meter: ByteMeter
) -> tuple[list[AuditProblem], int]:
    problems: list[AuditProblem] = []
    size = 0
    for item_id, role, version, path, expected, _ in rows:
        target = archive.root / path
        try:
            actual = file_sha256(target, on_bytes=meter.advance)
            size += target.stat().st_size
        except FileNotFoundError:
            problems.append(AuditProblem(str(path), "missing"))
        except OSError as exc:
            problems.append(AuditProblem(str(path), f"unreadable: {exc.strerror or exc}"))
        else:
            if actual != expected:
                problems.append(
                    AuditProblem(str(path), f"corrupt: sha256 is {actual}, expected {expected}")
                )
        with archive.db:
            archive.db.execute(
                "UPDATE files SET audited_at=? WHERE item_id=? AND role=? AND version=?",
                (utc_now(), item_id, role, version),
            )
    return problems, size
