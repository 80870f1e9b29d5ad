"""``archiver download``: a manifest's videos fetched into the archive, or with ``--dry-run``
what would be, and the lines that report the run.

Wiring only: :mod:`archiver.fetch` fetches, :mod:`.output` and :mod:`.unreachable` word what
it did. A module of its own so that the command line's shared pieces (the group, the global
options, the error handling) stay apart from each stage's commands. Imported by
:mod:`archiver.cli` once those pieces (``common_options``, ``_echo``) exist, and registered
there.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from ..errors import EXIT_FAILED, EXIT_OK
from ..fetch import DownloadSettings
from ..fetch.ahead import AHEAD, open_ahead
from ..manifest_reader import load_manifest
from . import _draws_bars, _echo, _progress, _state, common_options
from .dryrun import dry_run_lines
from .options import archive_option, download_options
from .output import download_summary, item_lines, optional_failure_lines
from .unreachable import failure_lines, reachable

__all__ = ["download_command"]


@click.command(name="download")
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
    state = _state(ctx)
    manifest = load_manifest(manifest_path)
    if dry_run:
        from ..fetch.preview import preview

        found = preview(manifest, archive, settings=download_settings)
        for line in dry_run_lines(found):
            _echo(line)
        return
    try:
        # The first connections' handshakes, during the imports and the planning below.
        open_ahead(manifest.entries, archive, download_settings)
        from ..fetch.run import download

        report = download(
            manifest,
            archive,
            # With a bar drawn, each file's size is asked first (HEAD) so the bar's total holds.
            settings=dataclasses.replace(download_settings, sizes_first=_draws_bars(state)),
            progress=_progress(state),
        )
    finally:
        AHEAD.close()
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
