"""``archiver package`` and ``archiver sync``: the commands that end in a kit (or a ZIM), the
one from an archive already filled, the other fetching first, for cron; and sync's
``--log-file``, opened here with the care a file of the user's needs.

Wiring only: :mod:`archiver.kit`, :mod:`archiver.zim` and :mod:`archiver.sync` do the work,
imported by the command that runs them (issue 14's start-up). Imported by
:mod:`archiver.cli` once its shared pieces (``common_options``, ``_echo``) exist, and
registered there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import stat
from pathlib import Path
from typing import IO, TYPE_CHECKING

import click

from ..errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError, describe_os_error
from ..fetch import DownloadSettings
from ..manifest_reader import load_manifest
from . import _draws_bars, _echo, _progress, _refuse_inside, _state, common_options
from .dryrun import dry_run_lines
from .options import (
    DurationType,
    SizeType,
    archive_option,
    download_options,
    existing_archive_option,
    kit_options,
    subfolder_option,
)
from .output import (
    for_terminal,
    kit_summary,
    optional_failure_lines,
    sync_item_lines,
    sync_summary,
)
from .unreachable import failure_lines, reachable
from .zim import package_zim_run, zim_option, zim_summary

if TYPE_CHECKING:  # a command's own, imported where it runs (issue 14's start-up)
    from ..kit import KitSettings

__all__ = ["package_command", "sync_command"]


@click.command(name="package")
@click.argument(
    "manifest_path", metavar="MANIFEST", type=click.Path(dir_okay=False, path_type=Path)
)
@existing_archive_option
@click.option(
    "-o",
    "--output",
    "kit",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The kit folder to build or update (a USB key, a LAN share): empty, missing, or "
    "a kit archiver made.",
)
@subfolder_option
@zim_option
@kit_options
@click.option(
    "--fit",
    type=SizeType(),
    default=None,
    metavar="SIZE",
    help="Choose, among the versions the archive holds of each video, those that make the "
    "kit fit in SIZE (tallest lowered first); exit 2 with the size needed when none do.",
)
@common_options
@click.pass_context
def package_command(
    ctx: click.Context,
    manifest_path: Path,
    archive: Path,
    kit: Path | None,
    subfolder: str | None,
    zim: Path | None,
    kit_settings: KitSettings,
    fit: int | None,
) -> None:
    """Build or update an offline kit from the archive, or write it as a Kiwix ZIM.

    The kit is a folder that opens by double-clicking its index.html, with no internet and no
    server: a catalog with search, and a page per video with its player, transcript, credits
    and licence. It is a BagIt bag, so a copy can be checked with 'archiver verify KIT'.
    Updating a kit (say, on a USB key) writes only what changed, and its checksums last.
    archiver writes only in a folder that is empty, missing, or a kit it made: a key that
    holds other files takes the kit in a folder of its own (--subfolder).

    \b
    Examples:
      archiver package manifests/default.json --archive archive/ -o /media/usb/videos
      archiver package m.json -o /media/usb --subfolder Videos-Canope
      archiver package m.json -o kit/ --title "Former avec le numérique"
      archiver package m.json --archive archive/ --zim /srv/kiwix/videos.zim

    \b
    Exit codes: 0 every video is in the kit; 1 some are not (each named), the kit does
    not fit, or the ZIM cannot be written (a full disk); 2 bad manifest, or a kit folder
    that cannot be used (read-only, a file where a folder should be, not archiver's), or a
    --zim path that is a folder, not a ZIM, or inside the archive; 3 archive or kit locked
    by another run.
    """
    from ..kit import package, package_file
    from ..zim import check_zim_path

    state = _state(ctx)
    if kit is None and zim is None:
        raise UsageError("give the kit folder (-o KIT), a ZIM file (--zim FILE.zim), or both")
    # A kit alone is updated from the manifest's file: sealed when it finds nothing to do,
    # replayed while nothing moved (archiver.settled). A ZIM reads the manifest anyway.
    manifest = load_manifest(manifest_path) if zim is not None else None
    if zim is not None:  # refused before the kit is written, not after
        check_zim_path(zim, archive, kit / subfolder if subfolder and kit else kit)
    code = EXIT_OK
    if kit is not None:
        target = kit / subfolder if subfolder else kit
        settings = dataclasses.replace(kit_settings, fit=fit)
        meter = _progress(state, "Kit", per_file=False)
        report = (
            package(manifest, archive, target, settings=settings, progress=meter)
            if manifest is not None
            else package_file(manifest_path, archive, target, settings=settings, progress=meter)
        )
        for entry, reason in report.left_out:
            _echo(f"Error: {entry.title} ({entry.id}): {reason}", err=True)
        if not state.quiet:
            _echo(kit_summary(report), err=True)
        code = EXIT_FAILED if report.left_out else EXIT_OK
    if zim is not None and manifest is not None:  # the same plan: the kit's left out named
        zim_code = package_zim_run(
            manifest,
            archive,
            zim,
            settings=dataclasses.replace(kit_settings, fit=fit),
            quiet=state.quiet,
            name_left_out=kit is None,
            progress=_progress(state, "ZIM", per_file=False),
        )
        code = max(code, zim_code)
    ctx.exit(code)


@click.command(name="sync")
@click.argument(
    "paths", nargs=-1, type=click.Path(exists=True, path_type=Path), metavar="[PATH]..."
)
@archive_option
@click.option(
    "--kit",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("kit"),
    show_default=True,
    help="The kit folder to build or update: empty, missing, or a kit archiver made.",
)
@subfolder_option
@zim_option
@download_options
@click.option(
    "--refresh-after",
    type=DurationType(),
    default="24h",
    show_default=True,
    help="Ask upstream whether a held video changed at most this often (24h, 7d; 0: every run).",
)
@click.option(
    "--offline",
    is_flag=True,
    help="No network at all: rebuild the kit from what the archive holds.",
)
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Append one JSON line per file (held, fetched, changed, failed, retired).",
)
@kit_options
@click.option(
    "--fit",
    type=SizeType(),
    default=None,
    metavar="SIZE",
    help="Choose each video's resolution so the whole kit fits in SIZE (e.g. 3.7G for a 4 GB "
    "key), as high and as even as possible; planned from the instance's sizes.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print what the sync would fetch, check and keep, video by video (by title), with "
    "totals and each video's planned resolution under --fit, --max-height or --transcode; "
    "ask only the PeerTube API and HEAD, change nothing.",
)
@common_options
@click.pass_context
def sync_command(
    ctx: click.Context,
    paths: tuple[Path, ...],
    archive: Path,
    kit: Path,
    subfolder: str | None,
    zim: Path | None,
    download_settings: DownloadSettings,
    refresh_after: float,
    offline: bool,
    log_file: Path | None,
    kit_settings: KitSettings,
    fit: int | None,
    dry_run: bool,
) -> None:
    """Manifest, download and kit in one run, for cron.

    Reads the fiches (the bundled collection when no PATH is given), fetches what is new,
    changed upstream (checked at most once per --refresh-after) or missing, and updates the
    kit, all under the archive's lock. --max-height and --fit pick among the resolutions the
    PeerTube instance offers; --fit 3.7G --dry-run shows how a collection fills a 4 GB key.
    A video whose fiche left the collection leaves the kit and is marked retired in the
    archive, which keeps it until 'archiver prune'.

    \b
    With -q it prints nothing when all went well, and only the failures otherwise:
      0 3 * * *  archiver sync /srv/fiches --archive /srv/archive --kit /srv/kit -q

    \b
    A fiche that does not validate is named (exit 2), and its video kept as the last sync
    read it: the rest of the collection is synced all the same.

    \b
    Exit codes: 0 all done; 1 some items failed (each named); 2 a bad fiche (the others
    synced), or an archive or kit folder that cannot be used (read-only, a file where a
    folder should be, not archiver's); 3 another run holds the archive or kit.
    """
    from ..sync import SyncSettings, plan_sync, sync

    state = _state(ctx)
    settings = SyncSettings(
        # With a bar drawn, each file's size is asked first (HEAD) so the bar's total holds.
        download=dataclasses.replace(download_settings, sizes_first=_draws_bars(state)),
        kit=kit_settings,
        refresh_after=refresh_after,
        offline=offline,
        fit=fit,
        zim=zim,
    )
    if dry_run:
        target = kit / subfolder if subfolder else kit
        found, planned = plan_sync(list(paths), archive, settings=settings, kit=target)
        chose = fit is not None or download_settings.max_height is not None
        renditions = chose or kit_settings.transcode is not None
        from ..fetch.preview import retiring  # a dry run's: it asked the network already

        gone = retiring(archive, {video.entry_id for video in planned})
        for line in dry_run_lines(found, planned, renditions=renditions, kit=target, retired=gone):
            _echo(line)
        if zim is not None:
            _echo(f"ZIM {for_terminal(str(zim))}: would be written from the same selection")
        return
    with contextlib.ExitStack() as stack:
        log = None
        if log_file is not None:
            _refuse_inside(log_file, {"archive": archive, "kit": kit / (subfolder or "")})
            log = stack.enter_context(_open_log(log_file))
        report = sync(
            list(paths),
            archive,
            kit / subfolder if subfolder else kit,
            settings=settings,
            progress=_progress(state),
            kit_progress=_progress(state, "Kit", per_file=False),
            log=log,
            zim_progress=_progress(state, "ZIM", per_file=False) if zim else None,
        )
    failures = report.failures()
    if state.verbose:
        for line in sync_item_lines(report):
            _echo(line)
    for error in report.invalid:
        for line in error.lines():
            _echo(f"Error: {line}", err=True)
    rebuilt = "" if report.kit_skipped else "; the kit is built from what the archive holds"
    for line in failure_lines(failures, report.download, then=rebuilt):
        _echo(f"Error: {line}", err=True)
    if not state.quiet:
        for line in optional_failure_lines(reachable(report.download)):
            _echo(f"Warning: {line}", err=True)
        _echo(sync_summary(report), err=True)
        if report.zim is not None:
            _echo(zim_summary(report.zim), err=True)
    # A fiche to fix says so first (exit 2), though the others were synced.
    ctx.exit(EXIT_USAGE if report.invalid else EXIT_FAILED if failures else EXIT_OK)


def _open_log(path: Path) -> IO[str]:
    """``--log-file``, opened to append: never through a symbolic link (the link's target is
    not the user's log), never a device or a pipe (a FIFO with no reader would block)."""
    from ..files import unsafe_target  # hashlib, tempfile: not at every start

    unsafe = unsafe_target(path)
    if unsafe:
        raise UsageError(f"{path}: not a log file archiver will write: {unsafe}")
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as exc:
        reason = describe_os_error(exc)
        raise UsageError(f"{path}: cannot open the log file: {reason}") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped in since the check above
        os.close(fd)
        raise UsageError(f"{path}: not a log file archiver will write: not a regular file")
    os.set_blocking(fd, True)
    stream = os.fdopen(fd, "a", encoding="utf-8")
    stream.buffer.raw.name = str(path)  # type: ignore[attr-defined]  # messages name the file
    return stream
