"""The ``archiver`` command line: parse options, call one core function, print a summary.

This module owns click, logging and the terminal. Errors are handled in exactly one place,
:meth:`_Group.invoke`: an :class:`ArchiverError` becomes ``Error: ...`` lines (and a ``Hint:``)
on stderr with its exit code; a traceback is shown only with ``--verbose``.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import click

from . import __version__
from .bag import verify_bag
from .collection import default_collection
from .config import load_config
from .console import download_summary, failure_line, package_summary
from .download import DEFAULT_SETTINGS, DownloadSettings, NullProgress, Progress, download
from .errors import EXIT_FAILED, EXIT_OK, ArchiverError, ConfigError
from .manifest import build_manifest, dumps, load_manifest, write_manifest
from .package import DEFAULT_TITLE, PackageProgress, PackageSettings, package
from .units import format_bytes, parse_size

__all__ = ["EXIT_INTERNAL", "cli", "main"]

# sysexits' EX_SOFTWARE: a bug in archiver itself, not in the user's input or the network.
EXIT_INTERNAL = 70
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

F = TypeVar("F", bound=Callable[..., Any])


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
        click.echo(f"{prefix}{record.getMessage()}", err=True)


def _configure_logging(state: _State) -> None:
    logger = logging.getLogger("archiver")
    logger.handlers[:] = [_EchoHandler()]
    logger.propagate = False
    if state.quiet:
        logger.setLevel(logging.ERROR)
    elif state.verbose:
        logger.setLevel(logging.DEBUG)
    else:
        logger.setLevel(logging.INFO)


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
        name: frozenset(p.name for p in command.params if p.name)
        for name, command in getattr(root.command, "commands", {}).items()
    }
    try:
        default_map = load_config(value, commands)
    except ConfigError as exc:
        raise click.BadParameter(exc.message, ctx=ctx, param=_param) from exc
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
            help="Say more; with an error, show its traceback.",
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


class SizeType(click.ParamType[int, Any]):
    """A byte size or rate as curl writes it: ``500k``, ``2M`` (1k = 1024)."""

    name = "RATE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def archive_option(function: F) -> F:
    return click.option(
        "--archive",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("archive"),
        show_default=True,
        help="The archive folder (created if missing).",
    )(function)


def download_options(function: F) -> F:
    """--jobs, --per-host, --rate-limit, --retries, --timeout."""
    decorators = [
        click.option(
            "-j",
            "--jobs",
            type=click.IntRange(1, 64),
            default=DEFAULT_SETTINGS.jobs,
            show_default=True,
            help="Files downloaded at once.",
        ),
        click.option(
            "--per-host",
            type=click.IntRange(1, 64),
            default=DEFAULT_SETTINGS.per_host,
            show_default=True,
            help="Connections to any one host at once.",
        ),
        click.option(
            "--rate-limit",
            type=SizeType(),
            default=None,
            help="Bandwidth cap for the whole process, in bytes per second: 500k, 2M (1k = 1024).",
        ),
        click.option(
            "--retries",
            type=click.IntRange(0, 1000),
            default=DEFAULT_SETTINGS.retries,
            show_default=True,
            help="Retries per file after a network error, a stall, 408, 429 or 5xx.",
        ),
        click.option(
            "--timeout",
            type=click.FloatRange(0.1, 3600),
            default=DEFAULT_SETTINGS.timeout,
            show_default=True,
            help="Seconds without a byte before a connection counts as stalled.",
        ),
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


def _progress(state: _State) -> Progress:
    # Bars only for a person watching: not under cron, not in a pipe, not with -q.
    if state.quiet or not sys.stderr.isatty():
        return NullProgress()
    from .progress import TqdmProgress  # tqdm is only imported when bars are drawn

    return TqdmProgress()


def _bytes_progress(state: _State, description: str) -> PackageProgress:
    if state.quiet or not sys.stderr.isatty():
        return PackageProgress()
    from .progress import TqdmBytes

    return TqdmBytes(description)


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
            click.echo("Interrupted.", err=True)
            raise click.exceptions.Exit(130) from None
        except Exception as exc:
            if _state(ctx).verbose:
                traceback.print_exc()
            click.echo(f"Error: internal error: {type(exc).__name__}: {exc}", err=True)
            hint = "this is a bug in archiver; rerun with --verbose to report it"
            click.echo(f"Hint: {hint}", err=True)
            raise click.exceptions.Exit(EXIT_INTERNAL) from exc


def _report(exc: ArchiverError, state: _State) -> None:
    if state.verbose:
        traceback.print_exception(exc)
    for line in exc.lines():
        click.echo(f"Error: {line}", err=True)
    if exc.hint:
        click.echo(f"Hint: {exc.hint}", err=True)


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
      0  everything done
      1  the run finished but some items failed (each named on stderr)
      2  bad usage or bad input (file, field and reason on stderr)
      3  another run holds the archive lock
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
    result = build_manifest(paths or (default_collection(),))
    count = len(result.entries)
    noun = "entry" if count == 1 else "entries"
    if str(output) == "-":
        sys.stdout.write(dumps(result))
        return
    changed = write_manifest(result, output)
    if not state.quiet:
        status = "written to" if changed else "unchanged in"
        click.echo(f"Manifest: {count} {noun} {status} {output}", err=True)


@cli.command(name="download")
@click.argument(
    "manifest_path", metavar="MANIFEST", type=click.Path(dir_okay=False, path_type=Path)
)
@archive_option
@download_options
@common_options
@click.pass_context
def download_command(
    ctx: click.Context,
    manifest_path: Path,
    archive: Path,
    jobs: int,
    per_host: int,
    rate_limit: int | None,
    retries: int,
    timeout: float,
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
    Exit codes: 0 all held; 1 some failed; 2 bad manifest; 3 archive locked by another run.
    """
    state = _state(ctx)
    settings = DownloadSettings(
        jobs=jobs, per_host=per_host, rate_limit=rate_limit, retries=retries, timeout=timeout
    )
    report = download(
        load_manifest(manifest_path), archive, settings=settings, progress=_progress(state)
    )
    for failure in report.failures:
        click.echo(f"Error: {failure_line(failure)}", err=True)
    if not state.quiet:
        click.echo(download_summary(report), err=True)
    ctx.exit(EXIT_FAILED if report.failures else EXIT_OK)


@cli.command(name="package")
@click.argument(
    "manifest_path", metavar="MANIFEST", type=click.Path(dir_okay=False, path_type=Path)
)
@archive_option
@click.option(
    "-o",
    "--output",
    "kit",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="The kit folder to build or update (a USB key, a LAN share).",
)
@click.option(
    "--title",
    default=DEFAULT_TITLE,
    show_default=True,
    help="The collection's title, shown on every page of the kit.",
)
@click.option(
    "--copy",
    is_flag=True,
    help="Copy the videos even when the kit is on the archive's filesystem "
    "(by default they are hard-linked there, taking no space).",
)
@common_options
@click.pass_context
def package_command(
    ctx: click.Context, manifest_path: Path, archive: Path, kit: Path, title: str, copy: bool
) -> None:
    """Build or update an offline kit from the archive.

    The kit is a folder that opens by double-clicking its index.html, with no internet and no
    server: a catalog with search, and a page per video with its player, transcript, credits
    and licence. It is a BagIt bag, so a copy can be checked with 'archiver verify KIT'.
    Updating a kit (say, on a USB key) writes only what changed, and its checksums last.

    \b
    Examples:
      archiver package manifests/default.json --archive archive/ -o /media/usb/videos
      archiver package m.json -o kit/ --title "Former avec le numérique"

    \b
    Exit codes: 0 every video is in the kit; 1 some are not (each named) or the kit does
    not fit; 2 bad manifest; 3 archive locked by another run.
    """
    state = _state(ctx)
    report = package(
        load_manifest(manifest_path),
        archive,
        kit,
        settings=PackageSettings(title=title, copy=copy),
        progress=_bytes_progress(state, "Kit"),
    )
    for entry, reason in report.left_out:
        click.echo(f"Error: {entry.title} ({entry.id}): {reason}", err=True)
    if not state.quiet:
        click.echo(package_summary(report), err=True)
    ctx.exit(EXIT_FAILED if report.left_out else EXIT_OK)


@cli.command(name="verify")
@click.argument("kit", type=click.Path(file_okay=False, path_type=Path))
@common_options
@click.pass_context
def verify_command(ctx: click.Context, kit: Path) -> None:
    """Check a kit: every file's sha256 against its BagIt manifest.

    Names every missing, corrupt or extra file. Use it on a USB key after copying a kit, or
    before handing one over.

    \b
    Examples:
      archiver verify /media/usb/videos

    \b
    Exit codes: 0 the kit is whole; 1 something is missing, corrupt or extra (each named).
    """
    state = _state(ctx)
    progress = _bytes_progress(state, "Verify")
    total = sum(p.stat().st_size for p in kit.rglob("*") if p.is_file()) if kit.is_dir() else 0
    progress.begin(total)
    try:
        files, size, problems = verify_bag(kit, on_bytes=progress.advance)
    finally:
        progress.end()
    for problem in problems:
        click.echo(f"Error: {kit / problem.path}: {problem.reason}", err=True)
    if not state.quiet:
        verdict = f"{len(problems)} problem(s)" if problems else "all intact"
        click.echo(f"Verify: {files} files ({format_bytes(size)}) in {kit}: {verdict}", err=True)
    ctx.exit(EXIT_FAILED if problems else EXIT_OK)


def main() -> None:
    """Console-script entry point."""
    cli.main(prog_name="archiver")
