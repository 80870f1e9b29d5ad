"""What ``archiver status`` shows of an archive: its items and files, its last runs and their
failures, how far behind its fixity audits are, what the last audits found, and every version
whose last audit failed, with the last date it was seen intact."""

from __future__ import annotations

import collections
import datetime as dt
from pathlib import Path
from typing import Any

from .archive_lock import LOCK_NAME, lock_holder
from .catalog import Catalog, Event, format_time

# A file not audited for this long is due for its next fixity audit.
AUDIT_EVERY_DAYS = 30
# How many of the last audits ``status`` shows.
RECENT_AUDITS = 5


def status_report(
    root: Path, catalog: Catalog, *, now: dt.datetime | None = None
) -> dict[str, Any]:
    """Everything ``archiver status`` shows of the archive at ``root``, as plain JSON values.

    Read from the catalog alone: counting the files on disk is ``verify``'s work, not a
    glance's. ``now`` decides which files are due for their audit.
    """
    now = now or dt.datetime.now(dt.UTC)
    counts = catalog.counts(format_time(now - dt.timedelta(days=AUDIT_EVERY_DAYS)))
    items, retired = int(counts["items"] or 0), int(counts["retired"] or 0)
    last_run = catalog.last_run()
    last_sync = catalog.last_run("sync")
    failures = catalog.failures(last_run.id) if last_run is not None else []

    holder = lock_holder(root / LOCK_NAME)

    def run(row: Any) -> dict[str, Any] | None:
        """A run as status shows it: an unfinished one is running when it is the last run
        and the archive's lock is held now (by the PID it names), else it was interrupted."""
        if row is None:
            return None
        shown = {**row.__dict__, "outcome": row.outcome or "interrupted"}
        last = last_run.id if last_run is not None else None
        if row.outcome is None and holder is not None and row.id == last:
            shown.update(outcome="running", pid=holder)
        return shown

    return {
        "archive": str(root),
        "items": {"total": items, "active": items - retired, "retired": retired},
        "files": {
            "current": counts["current_files"],
            "current_bytes": counts["current_bytes"],
            "versions": counts["versions"],
            "all_bytes": counts["all_bytes"],
            # Each sha256 once, as the store holds it: what the archive takes on disk.
            "stored_files": counts["stored_files"],
            "stored_bytes": counts["stored_bytes"],
        },
        "last_run": run(last_run),
        "last_sync": run(last_sync),
        "failures": [
            {
                "item": f.item_id,
                "title": f.title,
                "role": f.role,
                "url": f.url,
                "reason": f.reason,
                "at": f.at,
            }
            for f in failures
        ],
        "audit": {
            "never_audited": counts["never_audited"],
            "due": counts["due"],
            "due_after_days": AUDIT_EVERY_DAYS,
            "last_audit": counts["last_audit"],
            **audit_history(catalog),
        },
    }


def audit_history(catalog: Catalog, *, recent: int = RECENT_AUDITS) -> dict[str, Any]:
    """The last ``recent`` audits of the archive, newest first (``recent``: when, how many
    files of how many, bytes, problems), and every version whose last audit failed
    (``failing``), with the last date it was seen intact.

    Read from the ``audit`` events, in pages: each audit records one for the archive, and one
    for each version it found missing or damaged. A version an audit found intact since its
    failure (its ``audited_at`` is later), or that was pruned, is not failing any more.
    """
    last: collections.deque[Event] = collections.deque(maxlen=recent)
    failed: dict[tuple[str, str, int], Event] = {}
    for event in catalog.events(kind="audit"):
        if event.item_id is None:
            last.append(event)
        elif event.role is not None and event.version is not None and event.outcome == "failure":
            failed[(event.item_id, event.role, event.version)] = event
    failing = []
    for (item, role, version), event in sorted(failed.items()):
        record = catalog.file_version(item, role, version)
        if record is None or (record.audited_at is not None and record.audited_at > event.at):
            continue
        failing.append(
            {
                "item": item,
                "role": role,
                "version": version,
                "sha256": record.sha256,
                "path": record.path,
                "problem": event.detail.get("problem"),
                "failed_at": event.at,
                "last_intact": event.detail.get("last_intact")
                or record.audited_at
                or record.fetched_at,
            }
        )
    return {
        "recent": [
            {
                "at": event.at,
                "files": event.detail.get("files"),
                "of_files": event.detail.get("of_files"),
                "bytes": event.detail.get("bytes"),
                "problems": event.detail.get("problems"),
                "sample_percent": event.detail.get("sample_percent"),
                "outcome": event.outcome,
                "run": event.run_id,
            }
            for event in reversed(last)
        ],
        "failing": failing,
    }
