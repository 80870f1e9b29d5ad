"""An item's history, read from the catalog: every version of every file, what replaced it and
why, what the audits found; and every event of the archive as JSON lines.

The catalog records the state (``files``: each version, which is current, when it was last
seen intact) and the story (``events``: each fetch, change, refresh, quarantine, audit,
restore, retire, prune). A librarian asks questions of both at once: *which version do kits
get, where did it come from, what replaced the one before and why, is it intact?* This module
answers them without SQL, as records (:func:`item_history`) and as a stable JSON document
(:meth:`ItemHistory.to_json`), and writes the whole story out (:func:`write_jsonl`) so that it
outlives the catalog and the tool. The PREMIS form of the same export is :mod:`archiver.premis`.

URLs go out with any ``user:password@`` hidden (:func:`~archiver.urls.redact`): an export or
a history is made to be shared.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .archive import Archive
from .catalog import Event, FileRecord
from .errors import ArchiveError, ArchiverError, UsageError, writing
from .files import FILE_MODE, fsync_dir, unsafe_target
from .urls import redact

__all__ = [
    "EVENT_KINDS",
    "HISTORY_FORMAT",
    "ItemHistory",
    "RoleHistory",
    "VersionHistory",
    "event_json",
    "event_sentence",
    "events_of",
    "item_history",
    "version_lookup",
    "write_export",
    "write_jsonl",
]

# The kinds of event the catalog records, in the order a file lives them.
EVENT_KINDS = (
    "fetch",
    "change",
    "refresh",
    "quarantine",
    "audit",
    "restore",
    "retire",
    "prune",
    "upgrade",
)
# The version of the JSON document ``archiver history --json`` prints: a key is added without
# changing it; one renamed, removed or given another meaning changes it.
HISTORY_FORMAT = 1
# The keys of an event's detail that hold URLs: redacted on the way out.
_URL_KEYS = ("url", "final_url")


def _redacted(detail: dict[str, Any]) -> dict[str, Any]:
    """An event's detail with the credentials of its URLs hidden."""
    return {
        key: redact(value) if key in _URL_KEYS and isinstance(value, str) else value
        for key, value in detail.items()
    }


def _event_summary(event: Event) -> dict[str, Any]:
    """An event as plain JSON values, in the catalog's words."""
    return {
        "id": event.id,
        "at": event.at,
        "kind": event.kind,
        "item": event.item_id,
        "role": _role_of(event),
        "version": event.version,
        "sha256": event.sha256,
        "run": event.run_id,
        "outcome": event.outcome,
        "detail": _redacted(event.detail),
    }


def _role_of(event: Event) -> str | None:
    """The role an event concerns: a quarantine names it in its detail, having no version."""
    if event.role is not None:
        return event.role
    role = event.detail.get("role")
    return role if isinstance(role, str) and role else None


# -- one item ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Replacement:
    """What made a version stop being current: the version that came after it, when, why."""

    version: int
    at: str
    reason: str  # "upstream change" (same URL, new bytes) or "new source URL"

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "at": self.at, "reason": self.reason}


@dataclass(frozen=True)
class VersionHistory:
    """One version of one file: its record, and what the events say of it."""

    record: FileRecord
    held: bool  # its bytes are in the archive at their recorded size
    restored: bool  # the version 'archiver restore' made the one kits get
    kits_get: bool  # the one a kit shows when its manifest pins none (see Archive.for_kit)
    replaced_by: Replacement | None
    events: tuple[Event, ...]

    @property
    def audit_failures(self) -> tuple[Event, ...]:
        return tuple(e for e in self.events if e.kind == "audit" and e.outcome == "failure")

    @property
    def last_audit_failed(self) -> bool:
        """Whether the last audit that read this version found it damaged or missing (an
        audit that found it intact since then sets its ``audited_at`` later)."""
        failures = self.audit_failures
        if not failures:
            return False
        seen = self.record.audited_at
        return seen is None or failures[-1].at > seen

    def to_json(self) -> dict[str, Any]:
        r = self.record
        return {
            "version": r.version,
            "rendition": r.rendition,
            "resolution": r.resolution,
            "fetched_at": r.fetched_at,
            "checked_at": r.checked_at or None,
            "sha256": r.sha256,
            "size": r.size,
            "url": redact(r.url),
            "final_url": redact(r.final_url),
            "content_type": r.content_type,
            "etag": r.etag,
            "last_modified": r.last_modified,
            "segments": r.segments,
            "path": r.path,
            "view": r.view,
            "current": r.current,
            "restored": self.restored,
            "kits_get": self.kits_get,
            "held": self.held,
            "last_seen_intact": r.audited_at,
            "last_audit_failed": self.last_audit_failed,
            "audit_failures": [
                {
                    "at": e.at,
                    "problem": e.detail.get("problem"),
                    "last_intact": e.detail.get("last_intact"),
                }
                for e in self.audit_failures
            ],
            "refreshed": [
                {
                    "at": e.at,
                    "url": redact(str(e.detail.get("url", ""))),
                    "final_url": redact(str(e.detail.get("final_url", ""))),
                }
                for e in self.events
                if e.kind == "refresh"
            ],
            "replaced_by": self.replaced_by.to_json() if self.replaced_by else None,
            "events": [e.id for e in self.events],
        }


@dataclass(frozen=True)
class RoleHistory:
    """Every version, of every rendition, of one file of an item."""

    role: str
    versions: tuple[VersionHistory, ...]
    quarantined: tuple[Event, ...]  # bytes that failed a check and replaced nothing

    @property
    def restored(self) -> VersionHistory | None:
        return next((v for v in self.versions if v.restored), None)

    @property
    def kits_get(self) -> VersionHistory | None:
        return next((v for v in self.versions if v.kits_get), None)

    def to_json(self) -> dict[str, Any]:
        restored, kits_get = self.restored, self.kits_get
        return {
            "role": self.role,
            "restored": restored.record.version if restored else None,
            "kits_get": kits_get.record.version if kits_get else None,
            "versions": [v.to_json() for v in self.versions],
            "quarantined": [
                {
                    "at": e.at,
                    "reason": e.detail.get("reason"),
                    "path": e.detail.get("path"),
                    "run": e.run_id,
                }
                for e in self.quarantined
            ],
        }


@dataclass(frozen=True)
class ItemHistory:
    """An item's files, version by version, and every event of the item in order."""

    archive: str
    item_id: str
    title: str | None
    roles: tuple[RoleHistory, ...]
    events: tuple[Event, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        """The document ``archiver history --json`` prints: see docs/history.md."""
        return {
            "format": HISTORY_FORMAT,
            "archive": self.archive,
            "item": self.item_id,
            "title": self.title,
            "roles": [role.to_json() for role in self.roles],
            "events": [_event_summary(e) for e in self.events],
        }


def item_history(archive: Archive, item_id: str, *, role: str | None = None) -> ItemHistory:
    """The history of ``item_id`` (of its ``role`` only, when given), from the catalog.

    Raises :class:`ArchiveError` (exit 2) when the archive knows nothing of the item (of that
    role): no version and no event.
    """
    events = [e for e in archive.catalog.events(item_id=item_id) if _wanted(e, role)]
    records = archive.catalog.item_files(item_id)
    roles = sorted({r.role for r in records if role in (None, r.role)})
    if not roles and not events:
        what = item_id if role is None else f"{item_id} ({role})"
        raise ArchiveError(
            archive.root,
            f"no item {what} in this archive (no file, no event); 'archiver status --archive"
            f" {archive.root}' says what it holds",
        )
    return ItemHistory(
        archive=str(archive.root),
        item_id=item_id,
        title=_title(archive, item_id),
        roles=tuple(_role_history(archive, item_id, name, events) for name in roles),
        events=tuple(events),
    )


def _wanted(event: Event, role: str | None) -> bool:
    return role is None or _role_of(event) in (None, role)


def _role_history(archive: Archive, item_id: str, role: str, events: list[Event]) -> RoleHistory:
    records = archive.versions(item_id, role)
    held = {r.version for r in archive.held_versions(item_id, role)}
    restored = archive.restored(item_id, role)
    shown = archive.for_kit(item_id, role) if held else None
    mine = [e for e in events if _role_of(e) == role]
    by_version: dict[int, list[Event]] = {}
    for event in mine:
        if event.version is not None:
            by_version.setdefault(event.version, []).append(event)
    replaced = _replacements(records, mine)
    versions = tuple(
        VersionHistory(
            record=record,
            held=record.version in held,
            restored=restored is not None and restored.version == record.version,
            kits_get=shown is not None and shown.version == record.version,
            replaced_by=replaced.get(record.version),
            events=tuple(by_version.get(record.version, ())),
        )
        for record in records
    )
    quarantined = tuple(e for e in mine if e.kind == "quarantine")
    return RoleHistory(role=role, versions=versions, quarantined=quarantined)


def _replacements(records: list[FileRecord], events: list[Event]) -> dict[int, Replacement]:
    """Which version replaced which, from the ``change`` events (``detail.replaces``)."""
    urls = {r.version: r.url for r in records}
    found: dict[int, Replacement] = {}
    for event in events:
        replaced = event.detail.get("replaces")
        if event.kind != "change" or not isinstance(replaced, int) or event.version is None:
            continue
        new_url = event.detail.get("url")
        same = new_url is None or urls.get(replaced) in (None, new_url)
        reason = "upstream change" if same else "new source URL"
        found[replaced] = Replacement(event.version, event.at, reason)
    return found


def _title(archive: Archive, item_id: str) -> str | None:
    """The item's title, from the manifest entry the archive keeps beside its files."""
    with contextlib.suppress(ArchiverError, OSError, ValueError):
        path = archive.item_dir(item_id) / "entry.json"
        with archive.open_held(path) as stream:
            title = json.loads(stream.read(1024 * 1024)).get("title")
        return title if isinstance(title, str) else None
    return None


# -- every event, as JSON lines ----------------------------------------------------------------


def event_json(event: Event, record: FileRecord | None) -> dict[str, Any]:
    """One line of the JSONL export: the event, and the version it concerns (its sha256,
    size, path in the store, where it shows), when it has one still recorded."""
    line = _event_summary(event)
    if record is not None:
        line["object"] = {
            "sha256": record.sha256,
            "size": record.size,
            "path": record.path,
            "view": record.view,
            "url": redact(record.url),
        }
    return line


def write_jsonl(archive: Archive, out: IO[str]) -> int:
    """Write every event of the archive to ``out``, one JSON object a line, in the order they
    happened; the number written. Read in pages: the history never sits in memory whole.

    ASCII only (``ensure_ascii``): a line is safe to print to any terminal, and any JSON
    reader gives back the text as it was.
    """
    lookup = version_lookup(archive)
    count = 0
    for event in archive.catalog.events():
        record = lookup(event.item_id, event.role, event.version)
        out.write(json.dumps(event_json(event, record), sort_keys=True) + "\n")
        count += 1
    return count


def version_lookup(
    archive: Archive,
) -> Callable[[str | None, str | None, int | None], FileRecord | None]:
    """A cached ``(item, role, version) -> FileRecord | None``: the events of one version
    come close together, so a small cache spares most of the catalog's reads."""

    @functools.lru_cache(maxsize=4096)
    def lookup(item: str | None, role: str | None, version: int | None) -> FileRecord | None:
        if item is None or role is None or version is None:
            return None
        return archive.catalog.file_version(item, role, version)

    return lookup


def event_sentence(event: Event) -> str:
    """An event in a few words, for a person: ``change: video version 2 from <URL>,
    replacing version 1``."""
    d = event.detail
    what = f"{_role_of(event)} version {event.version}" if event.version is not None else None
    url = redact(d["url"]) if isinstance(d.get("url"), str) else None
    if event.kind in ("fetch", "change"):
        text = f"{event.kind}: {what}" + (f" from {url}" if url else "")
        if isinstance(d.get("replaces"), int):
            text += f", replacing version {d['replaces']}"
        if d.get("rebuilt"):
            text += " (recorded when the catalog was upgraded)"
        return text
    if event.kind == "refresh":
        return f"refresh: {what}, the same bytes again" + (f" from {url}" if url else "")
    if event.kind == "quarantine":
        return (
            f"quarantine: {_role_of(event)}: {d.get('reason', '?')}; kept in {d.get('path', '?')}"
        )
    if event.kind == "audit" and what is not None:
        last = d.get("last_intact") or "never"
        return f"audit: {what}: {d.get('problem', 'failed')}; last seen intact {last}"
    if event.kind == "audit":
        read, of, problems = d.get("files"), d.get("of_files"), d.get("problems")
        return f"audit: {read} of {of} files read, {problems} problem(s)"
    if event.kind == "restore" and d.get("latest"):
        return f"restore --latest: kits get the current version again, not {what}"
    if event.kind == "restore":
        return f"restore: kits get {what}"
    if event.kind in ("retire", "prune") and isinstance(d.get("title"), str):
        return f"{event.kind}: {d['title']}"
    return event.kind + (f": {what}" if what else "")


# -- writing an export -------------------------------------------------------------------------


def write_export(path: Path, write: Callable[[IO[str]], int]) -> int:
    """Write an export to ``path`` as it is made, atomically: into a temporary file beside it,
    renamed over ``path`` only once whole and on disk. ``write`` gets the open file and says
    how many events it wrote.

    A symbolic link, a folder or a device at ``path`` is refused (:class:`UsageError`, exit 2):
    archiver replaces no file it was not asked to write, and writes through no link. A full
    disk is a :class:`~archiver.errors.StorageError` naming ``path`` (exit 1), and leaves
    ``path`` as it was.
    """
    refused = unsafe_target(path)
    if refused is not None:
        raise UsageError(f"{path}: not a file archiver will write: {refused}")
    folder = path.parent
    with writing(path, "cannot write the export"):
        fd, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, FILE_MODE)
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as stream:
                count = write(stream)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
    fsync_dir(folder)
    return count


def events_of(archive: Archive, *, upto: int | None = None) -> Iterator[Event]:
    """Every event of the archive in order, those after ``upto`` (an id) left out: an export
    made while a run adds events describes the archive as it was when it started."""
    for event in archive.catalog.events():
        if upto is not None and event.id > upto:
            return
        yield event
