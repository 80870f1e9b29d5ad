"""The ``archiver`` command line: parse options, call one core function, print a summary.

``cli/`` owns click, tqdm, logging and the terminal: nothing outside it imports them.
:mod:`.options` declares the shared options, :mod:`.config` reads ``--config``,
:mod:`.output` writes every line a person reads, :mod:`.progress` draws the bars. The
commands live by stage: ``manifest`` here, :mod:`.download`, :mod:`.kit` (package, sync),
:mod:`.upkeep` (verify, status, prune), :mod:`.history` (history, restore, export); this
module keeps the group, the global options and the state they share. Errors
are handled in exactly one place, :meth:`_Group.invoke`: an :class:`ArchiverError` becomes
``Error: ...`` lines (and a ``Hint:``) on stderr with its exit code; a traceback is shown only
with ``--verbose``.
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

from .._version import __version__
from ..collection import default_collection
from ..errors import ArchiverError, ConfigError, UsageError
from ..progress import NullProgress, Progress
from .config import load_config
from .output import for_terminal, interrupted_line

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


def _refuse_inside(path: Path, folders: dict[str, Path]) -> None:
    """A file of the user's may not be put inside a folder archiver owns: appended to the
    kit's page or to the catalog, a log would damage what it reports on."""
    where = path.resolve().parent
    for what, folder in folders.items():
        if where.is_relative_to(folder.resolve()):
            raise UsageError(f"{path}: inside the {what} {folder}; put the log file elsewhere")


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


# Each stage's commands, in modules of their own: they draw on the pieces above
# (common_options, _echo), so they are imported once those exist. Registered in the order
# the commands were written; `archiver --help` lists them by name.
from .download import download_command  # noqa: E402
from .history import export_command, history_command, restore_command  # noqa: E402
from .kit import package_command, sync_command  # noqa: E402
from .upkeep import prune_command, status_command, verify_command  # noqa: E402

for _command in (
    download_command,
    package_command,
    verify_command,
    sync_command,
    status_command,
    prune_command,
    history_command,
    restore_command,
    export_command,
):
    cli.add_command(_command)
