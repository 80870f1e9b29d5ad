"""A sync's JSON-lines log (``--log-file``), for whoever watches the cron job: one line per
file (held, fetched, changed, failed, with its bytes, seconds and connections) and one per
retired item."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING

from .catalog import utc_now
from .errors import StorageError, describe_os_error
from .urls import redact

if TYPE_CHECKING:
    from .fetch import DownloadReport, Outcome

__all__ = ["write_log"]


def write_log(
    stream: IO[str],
    download: DownloadReport,
    retired: Sequence[tuple[str, str]],
    failures: Sequence[Outcome],
) -> None:
    """One JSON line per file (held, fetched, changed, failed) and per retired item.

    A log that cannot be written (its disk is full) is a :class:`StorageError` naming it: the
    run is done and recorded, but whoever watches the log would never hear of it.
    """
    try:
        _write(stream, download, retired, failures)
    except OSError as exc:
        # Closed now, dropping what it could not take: the caller's close would flush it
        # again and raise the same error where nothing maps it.
        with contextlib.suppress(OSError):
            stream.close()
        name = getattr(stream, "name", None)
        # A stream opened from a descriptor is named by its number, which names nothing.
        shown = name if isinstance(name, str) else "the log file"
        raise StorageError(shown, f"cannot write the log: {describe_os_error(exc)}") from exc


def _write(
    stream: IO[str],
    download: DownloadReport,
    retired: Sequence[tuple[str, str]],
    failures: Sequence[Outcome],
) -> None:
    at = utc_now()
    failed = {(o.job.entry.id, o.job.role): o for o in failures}
    for outcome in download.outcomes:
        key = (outcome.job.entry.id, outcome.job.role)
        outcome = failed.pop(key, outcome)
        connections = download.connections_of(outcome)
        _event(stream, at, outcome.status.value, outcome, connections)
    for outcome in failed.values():  # left out of the kit for a reason of its own
        _event(stream, at, "failed", outcome, 0)
    for item_id, title in retired:
        stream.write(
            json.dumps(
                {"at": at, "event": "retired", "item": item_id, "title": title}, ensure_ascii=False
            )
            + "\n"
        )
    stream.flush()


def _event(stream: IO[str], at: str, event: str, outcome: Outcome, connections: int) -> None:
    """One file's line; ``connections``: the most it was fetched over at once (0: none)."""
    record = {
        "at": at,
        "event": event,
        "item": outcome.job.entry.id,
        "title": outcome.job.entry.title,
        "role": outcome.job.role,
        "url": redact(outcome.job.url),
        "bytes": outcome.bytes_fetched,
        "seconds": round(outcome.seconds, 3),
        "connections": connections,
    }
    if outcome.reason:
        record["reason"] = outcome.reason
    stream.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
