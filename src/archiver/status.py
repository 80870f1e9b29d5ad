"""``archiver status``: what an archive holds, when it was last refreshed, what failed."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from .archive import TIME_FORMAT, Archive
from .units import format_bytes

__all__ = ["AUDIT_EVERY_DAYS", "archive_status", "format_status"]

# A file not audited for this long is due for its next fixity audit.
AUDIT_EVERY_DAYS = 30
_COUNTS = ("fetched", "changed", "held", "failed", "retired")


def _one(archive: Archive, sql: str, *params: object) -> Any:
    return archive.db.execute(sql, params).fetchone()


def _run(row: tuple[Any, ...] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    run_id, command, started, finished, outcome, summary = row
    return {
        "id": run_id,
        "command": command,
        "started_at": started,
        "finished_at": finished,
        "outcome": outcome or "interrupted",
        "summary": json.loads(summary) if summary else None,
    }


def archive_status(archive: Archive, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """Everything ``archiver status`` shows, as plain JSON values."""
    now = now or dt.datetime.now(dt.UTC)
    due_before = (now - dt.timedelta(days=AUDIT_EVERY_DAYS)).strftime(TIME_FORMAT)
    items, retired = _one(archive, "SELECT COUNT(*), COUNT(retired_at) FROM items")
    current_files, current_bytes = _one(
        archive, "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM files WHERE current=1"
    )
    versions, all_bytes = _one(archive, "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM files")
    never, due, last_audit = _one(
        archive,
        "SELECT COUNT(*) FILTER (WHERE audited_at IS NULL),"
        " COUNT(*) FILTER (WHERE audited_at IS NULL OR audited_at < ?), MAX(audited_at)"
        " FROM files",
        due_before,
    )
    columns = "id, command, started_at, finished_at, outcome, summary"
    last_run = _run(_one(archive, f"SELECT {columns} FROM runs ORDER BY id DESC LIMIT 1"))  # noqa: S608
    last_sync = _run(
        _one(archive, f"SELECT {columns} FROM runs WHERE command='sync' ORDER BY id DESC LIMIT 1")  # noqa: S608
    )
    failures = []
    if last_run is not None:
        rows = archive.db.execute(
            "SELECT f.item_id, i.title, f.role, f.url, f.reason, f.at FROM failures f"
            " LEFT JOIN items i ON i.id = f.item_id WHERE f.run_id=? ORDER BY f.item_id, f.role",
            (last_run["id"],),
        ).fetchall()
        failures = [
            {"item": r[0], "title": r[1], "role": r[2], "url": r[3], "reason": r[4], "at": r[5]}
            for r in rows
        ]
    return {
        "archive": str(archive.root),
        "items": {"total": items, "active": items - retired, "retired": retired},
        "files": {
            "current": current_files,
            "current_bytes": current_bytes,
            "versions": versions,
            "all_bytes": all_bytes,
        },
        "last_run": last_run,
        "last_sync": last_sync,
        "failures": failures,
        "audit": {
            "never_audited": never,
            "due": due,
            "due_after_days": AUDIT_EVERY_DAYS,
            "last_audit": last_audit,
        },
    }


def format_status(status: dict[str, Any]) -> str:
    """The status as lines for a person."""
    items, files, audit = status["items"], status["files"], status["audit"]
    lines = [
        f"Archive: {status['archive']}",
        f"Items: {items['active']} in the collection, {items['retired']} retired",
        f"Files: {files['current']} current ({format_bytes(files['current_bytes'])}),"
        f" {files['versions']} versions in all ({format_bytes(files['all_bytes'])})",
    ]
    for label, key in (("Last sync", "last_sync"), ("Last run", "last_run")):
        run = status[key]
        if run is None:
            lines.append(f"{label}: never")
            continue
        counts = run["summary"] or {}
        detail = ", ".join(f"{counts[k]} {k}" for k in _COUNTS if k in counts)
        lines.append(
            f"{label}: {run['command']} started {run['started_at']}, {run['outcome']}"
            + (f" ({detail})" if detail else "")
        )
    if status["failures"]:
        lines.append(f"Failures in the last run: {len(status['failures'])}")
        lines.extend(
            f"  {f['title'] or f['item']} ({f['item']}, {f['role']}): {f['reason']}"
            for f in status["failures"]
        )
    lines.append(
        f"Audit: {audit['due']} file(s) due (never audited: {audit['never_audited']};"
        f" every {audit['due_after_days']} days), last audit {audit['last_audit'] or 'never'}"
    )
    return "\n".join(lines)
