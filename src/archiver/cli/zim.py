"""The command line's ZIM: ``--zim FILE`` on package and sync, and ``verify FILE.zim``.

The core is :mod:`archiver.zim`; here are the option, the lines a person reads (each through
:func:`.output.for_terminal`) and the exit codes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..errors import EXIT_FAILED, EXIT_OK, UsageError
from ..units import format_bytes, format_duration
from .output import for_terminal

if TYPE_CHECKING:  # names of annotations: a download imports no kit, manifest or ZIM code
    from ..kit import KitSettings
    from ..manifest_reader import Manifest
    from ..progress import Progress
    from ..zim import ZimReport

__all__ = [
    "ZIM_SUFFIX",
    "is_zim_path",
    "package_zim_run",
    "verify_zim_run",
    "zim_option",
    "zim_summary",
]

F = TypeVar("F", bound=Callable[..., Any])
ZIM_SUFFIX = ".zim"


def zim_option(function: F) -> F:
    """``--zim FILE``: the collection as one Kiwix ZIM as well (package: instead of a kit)."""
    return click.option(
        "--zim",
        "zim",
        type=click.Path(path_type=Path),  # a folder is refused with its reason, on one line
        default=None,
        metavar="FILE.zim",
        help="Also write the collection as one Kiwix ZIM (for the Kiwix apps and kiwix-serve): "
        "the same videos and pages as the kit, written beside FILE.zim and renamed when checked.",
    )(function)


def is_zim_path(path: Path) -> bool:
    """Whether ``verify``'s argument names a ZIM (a file ending in .zim), not a kit folder."""
    return path.suffix.lower() == ZIM_SUFFIX and not path.is_dir()


def _echo(message: str) -> None:
    click.echo(for_terminal(message, one_line=True), err=True)


def zim_summary(report: ZimReport) -> str:
    """One line: the ZIM's videos, entries and size, and how long it took."""
    videos = "video" if report.items == 1 else "videos"
    reencoded = f", {report.reencoded} re-encoded" if report.reencoded else ""
    return (
        f"ZIM: {report.items} {videos} in {report.path}; {report.entries} entries,"
        f" {format_bytes(report.size)}{reencoded}; {len(report.left_out)} left out,"
        f" in {format_duration(report.seconds)}"
    )


def package_zim_run(
    manifest: Manifest,
    archive: Path,
    zim: Path,
    *,
    settings: KitSettings,
    quiet: bool,
    progress: Progress,
    name_left_out: bool = True,
) -> int:
    """``archiver package --zim``: write the ZIM, name each video left out; the exit code."""
    from ..zim import package_zim

    if zim.suffix.lower() != ZIM_SUFFIX:
        raise UsageError(f"--zim {zim}: a ZIM's name ends in .zim")
    report = package_zim(manifest, archive, zim, settings=settings, progress=progress)
    if name_left_out:  # else the kit, from the same plan, named them already
        for entry, reason in report.left_out:
            _echo(f"Error: {entry.title} ({entry.id}): {reason}")
        if not quiet:
            for warning in report.warnings:
                _echo(f"Warning: {warning}")
    if not quiet:
        _echo(zim_summary(report))
    return EXIT_FAILED if report.left_out else EXIT_OK


def verify_zim_run(
    zim: Path, *, archive: Path | None, sample: float | None, quiet: bool, progress: Progress
) -> int:
    """``archiver verify FILE.zim [--archive DIR]``: every problem named; the exit code."""
    from ..zim import verify_zim

    if sample is not None:
        raise UsageError("--sample goes with an archive audit, not with a ZIM")
    found = verify_zim(zim, archive_root=archive, progress=progress)
    for where, reason in found.problems:
        _echo(f"Error: {zim}{'!' + where if where else ''}: {reason}")
    if not quiet:
        verdict = f"{len(found.problems)} problem(s)" if found.problems else "all intact"
        against = f", videos checked against {archive}" if archive is not None else ""
        _echo(
            f"Verify: {found.entries} entries ({format_bytes(found.size)}) in {zim}"
            f"{against}: {verdict}"
        )
    return EXIT_FAILED if found.problems else EXIT_OK
