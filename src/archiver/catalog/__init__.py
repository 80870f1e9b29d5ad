"""The archive's catalog: an embedded SQLite database, and the only package that speaks SQL.

It records every version of every file with its provenance, what was made from a file's bytes
(posters, re-encodes, what FFmpeg read), and every run with its failures. Rows come out as
frozen dataclasses, read by column name; times are ISO 8601 UTC strings to the microsecond,
which sort as the times they write.

The schema is versioned by ``PRAGMA user_version`` and brought up to date when the catalog is
opened: each migration of :data:`MIGRATIONS`, in order, in one transaction with the version it
reaches, so a catalog is always at one version or the next, never between. A catalog made by a
newer archiver is refused rather than guessed at.

Every ``sqlite3.Error`` is mapped where it arises (:func:`archiver.errors.catalog_access`): one
that keeps the catalog from opening is an :class:`~archiver.errors.ArchiveError` (exit 2),
unless the disk refused a write; that one, like any while writing (a full disk), is a
:class:`~archiver.errors.StorageError` naming the catalog (exit 1). A damaged catalog (a page
SQLite finds malformed) is an :class:`~archiver.errors.ArchiveError` whenever it shows: no run
can trust it, and no retry mends it.

The catalog is a file on disk, and what it says is checked where rows become records: a path
it gives must name a file of the item's folder (``media/<id>/…``) or of ``derived/``, relative,
without ``..``, and a checksum must be one (it names files in ``derived/``). A row that does
not is a damaged catalog, named (exit 2): its path is never used, so that no command replaces,
links, hashes or deletes a file outside the archive because a row said so.

This module is the package's public face, and the only one the rest of the archiver imports
from. Behind it, one concept a module:

- :mod:`.times`: how times are written and read back;
- :mod:`.schema`: the tables, their migrations and the triggers that count changes;
- :mod:`.records`: the rows as records, and what a row may say;
- :mod:`.at_once`: when a table is read whole instead of row by row;
- :mod:`.database`: opening, the lock, error mapping, every row's check;
- :mod:`.catalog`: the :class:`Catalog` itself (items, files, restores), built on
  :mod:`.events`, :mod:`.derived` and :mod:`.runs` (runs, failures, audits, counts).

A setting read as the catalog works (:data:`MIGRATIONS`, :data:`SCHEMA_VERSION`,
``READ_AT_ONCE_AFTER``) is read in its own module (:mod:`.schema`, :mod:`.at_once`): the
name here is a copy, and setting it here changes nothing.
"""

from __future__ import annotations

from .at_once import READ_AT_ONCE_AFTER as READ_AT_ONCE_AFTER
from .at_once import READ_AT_ONCE_SHARE as READ_AT_ONCE_SHARE
from .catalog import Catalog
from .database import DAMAGED_HINT, WAL_CHECKPOINT_PAGES, WAL_SIZE_LIMIT, damaged
from .records import (
    MEDIA_FACTS,
    MEDIA_FACTS_VERSION,
    ROW_HINT,
    AuditRow,
    Derived,
    Event,
    FailureRow,
    FileRecord,
    Pruned,
    RunRow,
    store_path,
)
from .schema import _CHANGES_TABLES as _CHANGES_TABLES
from .schema import CHANGES_TRIGGERS as CHANGES_TRIGGERS
from .schema import MIGRATIONS, SCHEMA_VERSION
from .times import TIME_FORMAT as TIME_FORMAT
from .times import format_time, parse_time, utc_now

__all__ = [
    "DAMAGED_HINT",
    "MEDIA_FACTS",
    "MEDIA_FACTS_VERSION",
    "MIGRATIONS",
    "ROW_HINT",
    "SCHEMA_VERSION",
    "WAL_CHECKPOINT_PAGES",
    "WAL_SIZE_LIMIT",
    "AuditRow",
    "Catalog",
    "Derived",
    "Event",
    "FailureRow",
    "FileRecord",
    "Pruned",
    "RunRow",
    "damaged",
    "format_time",
    "parse_time",
    "store_path",
    "utc_now",
]
