"""What ``archiver status`` shows of an archive: its items and files, its last runs and their
failures, and how far behind its fixity audits are."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from .catalog import Catalog, format_time

# A file not audited for this long is due for its next fixity audit.
AUDIT_EVERY_DAYS = 30


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

    def run(row: Any) -> dict[str, Any] | None:
        if row is None:
            return None
        return {**row.__dict__, "outcome": row.outcome or "interrupted"}

    return {
        "archive": str(root),
        "items": {"total": items, "active": items - retired, "retired": retired},
        "files": {
            "current": counts["current_files"],
            "current_bytes": counts["current_bytes"],
            "versions": counts["versions"],
            "all_bytes": counts["all_bytes"],
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
        },
    }
