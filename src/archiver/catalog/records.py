"""The catalog's rows as records: frozen dataclasses read by column name, never by position.

Also what a row may say: a path the catalog gives must name a file of its item's folder
(``media/<id>/…``), of ``store/`` or of ``derived/``, relative, without ``..``, and a checksum
must be one (:func:`_row_fault`). Pure code, no connection: the records are what the rest of
the archiver handles, and they, their readers and their checks change together.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = [
    "MEDIA_FACTS",
    "MEDIA_FACTS_VERSION",
    "ROW_HINT",
    "AuditRow",
    "Derived",
    "Event",
    "FailureRow",
    "FileRecord",
    "Pruned",
    "RunRow",
    "store_path",
]

# The derived row that holds what FFmpeg read of a video's bytes: no file, only facts.
MEDIA_FACTS = "probe"
MEDIA_FACTS_VERSION = 1

ROW_HINT = (
    "restore catalog.sqlite from a backup; a path the catalog gives that leads out of the"
    " archive is never used"
)
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class FileRecord:
    """One version of one file of an item, as the catalog records it."""

    item_id: str
    role: str
    version: int
    path: str
    url: str
    final_url: str
    sha256: str
    size: int
    etag: str | None
    last_modified: str | None
    fetched_at: str
    current: bool
    checked_at: str = ""
    resolution: int | None = None
    content_type: str | None = None
    audited_at: str | None = None
    segments: str | None = None  # what the source's segment checksums said of it
    # A video's height as a rendition of its item (0: unknown, and every other role): each
    # rendition has its own versions and its own current one.
    rendition: int = 0
    # Where a current version shows in the item's folder (``media/<id>/video-720p.mp4``, a
    # hard link to its bytes in ``store/``); ``None`` for earlier versions.
    view: str | None = None


def store_path(sha256: str) -> str:
    """Where the archive keeps the bytes of ``sha256``, once, whichever files have them.

    >>> store_path("ab" + "0" * 62)
    'store/ab/ab00000000000000000000000000000000000000000000000000000000000000'
    """
    return f"store/{sha256[:2]}/{sha256}"


@dataclass(frozen=True)
class Event:
    """One thing that happened to the archive, as the catalog recorded it."""

    id: int
    at: str
    kind: str  # fetch, change, refresh, quarantine, audit, restore, retire, prune, upgrade
    item_id: str | None
    role: str | None
    version: int | None
    sha256: str | None
    run_id: int | None
    outcome: str  # success, failure
    detail: dict[str, Any]


@dataclass(frozen=True)
class Derived:
    """What was made from a file's bytes (a poster, its duration), cached by their sha256.

    Keyed by the source's sha256 and the recipe's version, so an unchanged video is never
    probed twice and a changed recipe makes its outputs again.
    """

    sha256: str
    kind: str
    version: int
    path: str | None
    file_sha256: str | None
    file_size: int | None
    duration: float | None
    width: int | None
    height: int | None


@dataclass(frozen=True)
class Pruned:
    """An item deleted (or, in a dry run, to be deleted) by ``archiver prune``."""

    item_id: str
    title: str
    retired_at: str
    files: int
    size: int


@dataclass(frozen=True)
class RunRow:
    """One run of a command on the archive; ``outcome`` is None while it runs or if it died."""

    id: int
    command: str
    started_at: str
    finished_at: str | None
    outcome: str | None
    summary: dict[str, Any] | None


@dataclass(frozen=True)
class FailureRow:
    """A file that failed in a run."""

    item_id: str
    title: str | None
    role: str
    url: str | None
    reason: str
    at: str


@dataclass(frozen=True)
class AuditRow:
    """A held file as an audit reads it."""

    item_id: str
    role: str
    version: int
    path: str
    sha256: str
    size: int
    view: str | None = None


_Row = TypeVar("_Row", FileRecord, AuditRow)

_FILE_COLUMNS = (
    "item_id, role, version, path, url, final_url, sha256, size, etag, last_modified,"
    " fetched_at, current, checked_at, resolution, content_type, audited_at, segments,"
    " rendition, view"
)
_EVENT_COLUMNS = "id, at, kind, item_id, role, version, sha256, run_id, outcome, detail"
_DERIVED_COLUMNS = "sha256, kind, version, path, file_sha256, file_size, duration, width, height"


def _file_record(row: sqlite3.Row) -> FileRecord:
    return FileRecord(
        item_id=row["item_id"],
        role=row["role"],
        version=row["version"],
        path=row["path"],
        url=row["url"],
        final_url=row["final_url"],
        sha256=row["sha256"],
        size=row["size"],
        etag=row["etag"],
        last_modified=row["last_modified"],
        fetched_at=row["fetched_at"],
        current=bool(row["current"]),
        checked_at=row["checked_at"],
        resolution=row["resolution"],
        content_type=row["content_type"],
        audited_at=row["audited_at"],
        segments=row["segments"],
        rendition=row["rendition"],
        view=row["view"],
    )


def _json_object(text: str | None) -> dict[str, Any] | None:
    """A JSON object the catalog stored as text, or ``None`` for none or anything else."""
    found: object = None
    with contextlib.suppress(TypeError, ValueError):
        found = json.loads(text) if text else None
    return found if isinstance(found, dict) else None


def _event(row: sqlite3.Row) -> Event:
    return Event(
        id=row["id"],
        at=row["at"],
        kind=row["kind"],
        item_id=row["item_id"],
        role=row["role"],
        version=row["version"],
        sha256=row["sha256"],
        run_id=row["run_id"],
        outcome=row["outcome"],
        detail=_json_object(row["detail"]) or {},
    )


def _derived_record(row: sqlite3.Row) -> Derived:
    return Derived(**{key: row[key] for key in row.keys()})  # noqa: SIM118 - Row has no iter of keys


def _row_fault(path: object, sha256: object, under: tuple[str, ...]) -> str | None:
    """What is wrong with a row's ``path`` (``None`` for no file) and ``sha256``, or ``None``.

    A path must be relative, in ``/``-separated parts none of which is empty, ``.``, ``..`` or
    holds a NUL or a backslash, and start with the parts ``under``, plus at least one more.

    >>> _row_fault("media/a/v.mp4", "0" * 64, ("media", "a"))
    >>> _row_fault("../victim/fiche.pdf", "0" * 64, ("media", "a"))
    "path '../victim/fiche.pdf' is not a file of media/a/"
    """
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        return f"sha256 {sha256!r} is not a sha256"
    if path is None:
        return None
    parts = path.split("/") if isinstance(path, str) else []
    if (
        len(parts) <= len(under)
        or tuple(parts[: len(under)]) != under
        or any(p in ("", ".", "..") or "\x00" in p or "\\" in p for p in parts)
    ):
        return f"path {path!r} is not a file of {'/'.join(under)}/"
    return None


def _run(row: sqlite3.Row | None) -> RunRow | None:
    if row is None:
        return None
    return RunRow(
        id=row["id"],
        command=row["command"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        outcome=row["outcome"],
        summary=_json_object(row["summary"]),
    )
