"""``archiver verify``, ``archiver status`` and ``archiver prune``: the upkeep of what is
already held, checking a kit, a ZIM or the archive, saying what the archive holds, and
deleting what left the collection.

Wiring only: :mod:`archiver.kit.bag`, :mod:`archiver.audit` and
:class:`~archiver.archive.Archive` do the work, imported by the command that runs them
(issue 14's start-up). Imported by :mod:`archiver.cli` once its shared pieces
(``common_options``, ``_echo``) exist, and registered there.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import EXIT_FAILED, EXIT_OK, ArchiveError, StorageError, UsageError
from ..progress import Progress
from ..units import format_bytes
from . import _echo, _progress, _state, common_options
from .history import audit_lines
from .options import existing_archive_option
from .output import status_lines
from .zim import is_zim_path, verify_zim_run

if TYPE_CHECKING:  # a command's own, imported where it runs (issue 14's start-up)
    from ..archive import Archive
    from ..audit import AuditReport

__all__ = ["prune_command", "status_command", "verify_command"]


@click.command(name="verify")
@click.argument("kit", required=False, metavar="[KIT|FILE.zim]", type=click.Path(path_type=Path))
@click.option(
    "--archive",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Audit an archive instead of a kit: every held file against the catalog. With "
    "FILE.zim: check the ZIM's videos against this archive's catalog.",
)
@click.option(
    "--sample",
    type=click.FloatRange(0, 100, min_open=True),
    default=None,
    metavar="PERCENT",
    help="With --archive: audit only this share of the files, least recently audited first.",
)
@common_options
@click.pass_context
def verify_command(
    ctx: click.Context, kit: Path | None, archive: Path | None, sample: float | None
) -> None:
    """Check a kit or a ZIM, or audit an archive: recompute every file's sha256.

    For a KIT (say, a USB key after copying), every file is checked against the kit's BagIt
    manifests. With --archive, every held file (every version) is checked against the
    catalog, and the audit's date recorded. Every missing, corrupt or extra file is named.
    For a FILE.zim: libzim's checksum, every entry read, every video against the ZIM's
    provenance.json, and with --archive against the archive's catalog.

    \b
    Examples:
      archiver verify /media/usb/videos
      archiver verify --archive /srv/archive
      archiver verify --archive /srv/archive --sample 10    # a tenth each night
      archiver verify /srv/kiwix/videos.zim --archive /srv/archive

    \b
    Exit codes: 0 all intact; 1 something is missing, corrupt or extra (each named);
    2 bad usage, a folder that is no kit, or a .zim file that is no ZIM; 3 archive locked
    by another run.
    """
    state = _state(ctx)
    meter = _progress(state, "Verify", per_file=False)
    if kit is not None and is_zim_path(kit):
        ctx.exit(
            verify_zim_run(kit, archive=archive, sample=sample, quiet=state.quiet, progress=meter)
        )
    if kit is not None and kit.exists() and not kit.is_dir():
        raise UsageError(f"{kit}: give a KIT folder or a FILE.zim, not another file")
    if (kit is None) == (archive is None):
        raise UsageError("give a KIT folder, or --archive DIR, but not both")
    if sample is not None and archive is None:
        raise UsageError("--sample goes with --archive")
    if archive is not None:
        from ..archive import Archive

        with Archive.existing(archive) as store, store.locked():
            report = _recorded_audit(store, sample, meter)
        problems = [(archive / p.path, p.reason) for p in report.problems]
        files, size, where = report.files, report.size, archive
    else:
        assert kit is not None  # noqa: S101 - checked above
        from ..kit.bag import verify_bag  # verify's own: not imported by every command

        files, size, found = verify_bag(kit, progress=meter)
        problems = [(kit / p.path, p.reason) for p in found]
        where = kit
    for path, reason in problems:
        _echo(f"Error: {path}: {reason}", err=True)
    if not state.quiet:
        verdict = f"{len(problems)} problem(s)" if problems else "all intact"
        _echo(f"Verify: {files} files ({format_bytes(size)}) in {where}: {verdict}", err=True)
    ctx.exit(EXIT_FAILED if problems else EXIT_OK)


def _recorded_audit(store: Archive, sample: float | None, meter: Progress) -> AuditReport:
    """An audit, recorded as a run of its own so that its events say which run found what;
    a catalog that cannot note the run (a full disk, a damaged page) does not stop it."""
    from ..audit import audit  # verify's own: not imported by every command

    run_id = None
    with contextlib.suppress(StorageError, ArchiveError):  # full, or a damaged page: the
        run_id = store.start_run("verify")  # audit names what it finds all the same
    report = audit(store, sample_percent=sample, progress=meter)
    if run_id is not None:
        summary: dict[str, object] = {
            "files": report.files,
            "bytes": report.size,
            "problems": len(report.problems),
        }
        with contextlib.suppress(StorageError, ArchiveError):
            store.finish_run(run_id, "failed" if report.problems else "ok", summary)
    return report


@click.command(name="status")
@existing_archive_option
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON, for scripts.")
@common_options
def status_command(archive: Path, as_json: bool) -> None:
    """What the archive holds, its last sync, its failures, what is due for audit.

    \b
    Examples:
      archiver status --archive /srv/archive
      archiver status --archive /srv/archive --json | jq .failures
    """
    from ..archive import Archive, archive_status

    with Archive.existing(archive, read_only=True) as store:
        status = archive_status(store)
    if as_json:
        _echo(json.dumps(status, ensure_ascii=False, indent=2, sort_keys=True), lines=True)
    else:
        for line in [*status_lines(status), *audit_lines(status)]:
            _echo(line)


@click.command(name="prune")
@existing_archive_option
@click.option(
    "--retired-before",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    required=True,
    metavar="DATE",
    help="Delete the items retired before this day (YYYY-MM-DD).",
)
@click.option("--dry-run", is_flag=True, help="Say what would be deleted, delete nothing.")
@common_options
@click.pass_context
def prune_command(
    ctx: click.Context, archive: Path, retired_before: dt.datetime, dry_run: bool
) -> None:
    """Delete the files of items that left the collection before DATE.

    Sync never deletes: a video whose fiche left the collection is only marked retired, and
    its files (every version) stay in the archive until pruned.

    \b
    Examples:
      archiver prune --archive /srv/archive --retired-before 2026-01-01 --dry-run
    """
    from ..archive import Archive

    state = _state(ctx)
    with Archive.existing(archive) as store, store.locked():
        pruned = store.prune(retired_before.strftime("%Y-%m-%d"), dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    for item in pruned:
        _echo(
            f"{item.title} ({item.item_id}), retired {item.retired_at}: {verb} {item.files}"
            f" file(s), {format_bytes(item.size)}"
        )
    if not state.quiet:
        total = sum(item.size for item in pruned)
        _echo(f"Prune: {len(pruned)} item(s), {format_bytes(total)} {verb}", err=True)
