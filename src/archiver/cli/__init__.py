"""The ``archiver`` command line: parse options, call one core function, print a summary.

``cli/`` owns click, tqdm, logging and the terminal: nothing outside it imports them.
:mod:`.options` declares the shared options, :mod:`.config` reads ``--config``,
:mod:`.output` writes every line a person reads, :mod:`.progress` draws the bars. Errors
are handled in exactly one place, :meth:`_Group.invoke`: an :class:`ArchiverError` becomes
``Error: ...`` lines (and a ``Hint:``) on stderr with its exit code; a traceback is shown only
with ``--verbose``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import os
import stat
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar, TypeVar

import click

from .._version import __version__
from ..collection import default_collection
from ..errors import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    ArchiveError,
    ArchiverError,
    ConfigError,
    StorageError,
    UsageError,
    describe_os_error,
)
from ..fetch import DownloadSettings
from ..manifest_reader import load_manifest
from ..progress import NullProgress, Progress
from ..units import format_bytes
from .config import load_config
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
    download_summary,
    for_terminal,
    interrupted_line,
    item_lines,
    kit_summary,
    optional_failure_lines,
    status_lines,
    sync_item_lines,
    sync_summary,
)
from .unreachable import failure_lines, reachable
from .zim import is_zim_path, package_zim_run, verify_zim_run, zim_option, zim_summary

if TYPE_CHECKING:  # a command's own, imported where it runs (issue 14's start-up)
    from ..archive import Archive
    from ..audit import AuditReport
    from ..kit import KitSettings

__all__ = ["EXIT_INTERNAL", "EXIT_INTERRUPTED", "cli", "main"]

# sysexits' EX_SOFTWARE: a bug in archiver itself, not in the user's input or the network.
EXIT_INTERNAL = 70
# Ctrl-C: 128 + SIGINT, what a shell reports for a command a signal stopped.
EXIT_INTERRUPTED = 130
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

F = TypeVar("F", bound=Callable[..., Any])


def _echo(message: str, *, err: bool = False, lines: bool = False) -> None:
    """Print one line for a person: every byte of it through :func:`.output.for_terminal`, so
    no title, file name or server answer can drive the terminal, forge a line of its own (a
    cron mail reader would take it for archiver's) or show a password. ``lines``: a text of
    several lines (JSON), each made safe but kept."""
    click.echo(for_terminal(message, one_line=not lines), err=err)


@dataclass
class _State:
    """What the global options decided, shared by the group and its commands."""

    verbosity: int = 0  # -1 quiet, 0 normal, 1+ verbose

    @property
    def quiet(self) -> bool:
        return self.verbosity < 0

    @property
    def verbose(self) -> bool:
        return self.verbosity > 0


class _EchoHandler(logging.Handler):
    """Log records as one line each on the current stderr (which click's test runner swaps)."""

    PREFIXES: ClassVar[dict[int, str]] = {logging.WARNING: "Warning: ", logging.ERROR: "Error: "}

    def emit(self, record: logging.LogRecord) -> None:
        prefix = self.PREFIXES.get(record.levelno, "")
        line = f"{prefix}{record.getMessage()}"
        bars = sys.modules.get(f"{__name__}.progress")  # imported only once bars are drawn
        safe = for_terminal(line, one_line=True)
        if bars is not None and bars.write_above_bars(safe, sys.stderr):
            return  # above the bars, not at the end of one
        _echo(line, err=True)


def _configure_logging(state: _State) -> None:
    logger = logging.getLogger("archiver")
    logger.handlers[:] = [_EchoHandler()]
    logger.propagate = False
    if state.quiet:
        logger.setLevel(logging.ERROR)
    elif state.verbosity >= 2:
        logger.setLevel(logging.DEBUG)
    elif state.verbose:
        logger.setLevel(logging.INFO)  # retries, fallbacks: what -v is for
    else:
        logger.setLevel(logging.WARNING)


def _state(ctx: click.Context) -> _State:
    return ctx.ensure_object(_State)


def _set_verbosity(level: int) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        if value:
            state = _state(ctx)
            state.verbosity = level * value if level > 0 else -1
            _configure_logging(state)

    return callback


def _load_config(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    if value is None:
        return
    root = ctx.find_root()
    commands = {
        name: {p.name: p for p in command.params if p.name}
        for name, command in getattr(root.command, "commands", {}).items()
    }
    try:
        default_map = load_config(value, commands)
    except ConfigError as exc:
        message = for_terminal(exc.message, one_line=True)
        raise click.BadParameter(message, ctx=ctx, param=_param) from exc
    if ctx is root:
        ctx.default_map = default_map
    else:
        ctx.default_map = default_map.get(ctx.info_name or "", {})


def common_options(function: F) -> F:
    """-q, -v and --config, accepted before the command's name and after it alike."""
    decorators = [
        click.option(
            "-v",
            "--verbose",
            count=True,
            expose_value=False,
            callback=_set_verbosity(1),
            help="Say more: retries, fallbacks, and (download, sync) one line per file: fetched, "
            "changed, unchanged, kept or failed; -vv more still; with an error, its traceback.",
        ),
        click.option(
            "-q",
            "--quiet",
            is_flag=True,
            expose_value=False,
            callback=_set_verbosity(-1),
            help="Print nothing but errors.",
        ),
        click.option(
            "--config",
            type=click.Path(dir_okay=False, path_type=Path),
            is_eager=True,
            expose_value=False,
            callback=_load_config,
            help="TOML file of option defaults (see docs/cli.md).",
        ),
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


def _draws_bars(state: _State) -> bool:
    # Bars only for a person watching: not under cron, not in a pipe, not with -q.
    return not state.quiet and sys.stderr.isatty()


def _progress(state: _State, description: str = "", *, per_file: bool = True) -> Progress:
    if not _draws_bars(state):
        return NullProgress()
    from .progress import TqdmProgress  # tqdm is only imported when bars are drawn

    return TqdmProgress(description, per_file=per_file)


class _Group(click.Group):
    """The one place where errors become a line on stderr and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except ArchiverError as exc:
            _report(exc, _state(ctx))
            raise click.exceptions.Exit(exc.exit_code) from exc
        except KeyboardInterrupt:
            if sys.stderr.isatty():  # the terminal's "^C" echo, or a bar cut short: cleared
                sys.stderr.write("\r\x1b[K")
            _echo(interrupted_line(ctx.invoked_subcommand), err=True)
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        except Exception as exc:
            if _state(ctx).verbose:
                traceback.print_exc()
            _echo(f"Error: internal error: {type(exc).__name__}: {exc}", err=True)
            hint = "this is a bug in archiver; rerun with --verbose to report it"
            _echo(f"Hint: {hint}", err=True)
            raise click.exceptions.Exit(EXIT_INTERNAL) from exc


def _report(exc: ArchiverError, state: _State) -> None:
    if state.verbose:
        traceback.print_exception(exc)
    for line in exc.lines():
        _echo(f"Error: {line}", err=True)
    if exc.hint:
        _echo(f"Hint: {exc.hint}", err=True)


@click.group(cls=_Group, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "-V", "--version", prog_name="archiver")
@common_options
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Turn video fiches into a manifest, an archive and an offline kit.

    A fiche is a Markdown file with a YAML front matter describing one video (title, area,
    description, PeerTube URLs), its transcript (## Script) and credits (## Crédits).

    \b
    Exit codes:
      0    everything done
      1    the run finished but some items failed (each named on stderr)
      2    bad usage or bad input (file, field and reason on stderr), or an archive or
           kit folder that cannot be used (read-only, a file where a folder should be)
      3    another run holds the archive lock
      70   a bug in archiver (rerun with --verbose to report it)
      130  interrupted (Ctrl-C): one line says what stopped and what the next run does
    """
    _configure_logging(_state(ctx))


@cli.command()
@click.argument(
    "paths", nargs=-1, type=click.Path(exists=True, path_type=Path), metavar="[PATH]..."
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    default=Path("-"),
    show_default=True,
    help="Manifest file to write; '-' writes to standard output.",
)
@common_options
@click.pass_context
def manifest(ctx: click.Context, paths: tuple[Path, ...], output: Path) -> None:
    """Build a manifest from fiche files and folders.

    Every *.md file named, or found below a folder named, is read and validated. Every invalid
    fiche is reported (file, field, reason) and the command exits 2 without writing anything.
    With no PATH, the bundled default collection is used. The manifest is deterministic: the
    same fiches always give the same bytes, ready to commit.

    \b
    Examples:
      archiver manifest fiches/ -o manifests/canope.json
      archiver manifest a.md b.md -o - | less
      archiver manifest -o manifests/default.json     # the bundled collection
    """
    state = _state(ctx)
    from ..manifest import manifest_bytes, write_manifest_bytes  # the fiches: YAML

    data, count = manifest_bytes(paths or (default_collection(),))
    noun = "entry" if count == 1 else "entries"
    if str(output) == "-":
        sys.stdout.write(data.decode("utf-8"))
        return
    changed = write_manifest_bytes(data, output)
    if not state.quiet:
        status = "written to" if changed else "unchanged in"
        _echo(f"Manifest: {count} {noun} {status} {output}", err=True)


@cli.command(name="download")
@click.argument(
    "manifest_path", metavar="MANIFEST", type=click.Path(dir_okay=False, path_type=Path)
)
@archive_option
@download_options
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print what would be fetched and what is held, video by video (by title), with "
    "totals; ask only the PeerTube API and HEAD, change nothing.",
)
@common_options
@click.pass_context
def download_command(
    ctx: click.Context,
    manifest_path: Path,
    archive: Path,
    download_settings: DownloadSettings,
    dry_run: bool,
) -> None:
    """Fetch every video and companion file of a manifest into the archive.

    Files are fetched concurrently, resumed after a dropped connection or a killed run
    (never spliced: a changed upstream file starts again from zero), checked (size, sha256,
    and any checksum pinned in the manifest) and renamed into place only when whole. Files
    already held are not fetched again. Each failed file is named on stderr.

    \b
    Examples:
      archiver download manifests/default.json --archive archive/
      archiver download m.json --archive /srv/archive --rate-limit 500k -q   # nightly cron

    \b
    Exit codes: 0 all held; 1 some failed; 2 bad manifest, or an archive folder that cannot
    be used; 3 archive locked by another run.
    """
    from ..fetch.preview import preview
    from ..fetch.run import download

    state = _state(ctx)
    if dry_run:
        found = preview(load_manifest(manifest_path), archive, settings=download_settings)
        for line in dry_run_lines(found):
            _echo(line)
        return
    report = download(
        load_manifest(manifest_path),
        archive,
        # With a bar drawn, each file's size is asked first (HEAD) so the bar's total holds.
        settings=dataclasses.replace(download_settings, sizes_first=_draws_bars(state)),
        progress=_progress(state),
    )
    if state.verbose:
        for line in item_lines(report):
            _echo(line)
    for line in failure_lines(report.failures, report):
        _echo(f"Error: {line}", err=True)
    if not state.quiet:
        for line in optional_failure_lines(reachable(report)):
            _echo(f"Warning: {line}", err=True)
        _echo(download_summary(report), err=True)
    ctx.exit(EXIT_FAILED if report.failures else EXIT_OK)


@cli.command(name="package")
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


@cli.command(name="verify")
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


@cli.command(name="sync")
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


def _refuse_inside(path: Path, folders: dict[str, Path]) -> None:
    """A file of the user's may not be put inside a folder archiver owns: appended to the
    kit's page or to the catalog, a log would damage what it reports on."""
    where = path.resolve().parent
    for what, folder in folders.items():
        if where.is_relative_to(folder.resolve()):
            raise UsageError(f"{path}: inside the {what} {folder}; put the log file elsewhere")


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


@cli.command(name="status")
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


@cli.command(name="prune")
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


def main() -> None:
    """Console-script entry point.

    ``gc.freeze()`` first: the objects of every module imported so far live until the exit,
    so the collector need not walk them, during the run or at the exit (about 45 ms less
    between a download's last byte and the exit, issue 14). Nothing is skipped: files,
    the catalog and the atexit handlers close as before.
    """
    import gc  # a built-in module: free to import here

    gc.freeze()
    cli.main(prog_name="archiver")


# The commands of the archive's history, in a module of their own: it draws on the pieces
# above (common_options, _echo), so it is imported once they exist.
from .history import (  # noqa: E402
    audit_lines,
    export_command,
    history_command,
    restore_command,
)

cli.add_command(history_command)
cli.add_command(restore_command)
cli.add_command(export_command)
