"""Option types and shared options of the command line (``--rate-limit 500k``, ``--mirror``)."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ..fetch import DEFAULT_SETTINGS, DownloadSettings
from ..units import parse_duration, parse_size

# The kit's default title (archiver.kit.DEFAULT_TITLE, which tests/test_startup.py ties
# this to): said here so that the command line does not import the kit, its templates and
# YAML (45-60 ms) at every start, before a download's first request (issue 14).
DEFAULT_TITLE = "Vidéos de formation"
# The names of archiver.media.PRESETS, sorted (--transcode's choices), without importing
# FFmpeg's module at every start: tests/test_startup.py ties the two.
PRESET_NAMES = ("360p", "480p")

__all__ = [
    "DurationType",
    "FiniteRange",
    "MirrorType",
    "SizeType",
    "archive_option",
    "download_options",
    "existing_archive_option",
    "kit_options",
    "subfolder_option",
]

F = TypeVar("F", bound=Callable[..., Any])


class SizeType(click.ParamType[int, Any]):
    """A byte size or rate as curl writes it: ``500k``, ``2M`` (1k = 1024). ``zero``: 0 is
    accepted, meaning none (``--rate-limit 0``: no cap, as wget and aria2c read it, to undo a
    config file's; ``--min-rate 0``: no floor)."""

    name = "RATE"

    def __init__(self, *, zero: bool = False) -> None:
        self.zero = zero

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value), zero=self.zero)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class FiniteRange(click.FloatRange):
    """click's FloatRange, which lets ``nan`` through (every comparison with it is false)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        return number


class MirrorType(click.ParamType[tuple[str, str], Any]):
    """``FROM=TO``: two URL prefixes."""

    name = "FROM=TO"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, str]:
        if isinstance(value, tuple):
            return value
        source, sep, target = str(value).partition("=")
        if (
            not sep
            or not source.startswith(("http://", "https://"))
            or not target.startswith(("http://", "https://"))
        ):
            self.fail(f"{value!r} is not FROM=TO with two http(s) URL prefixes", param, ctx)
        return source, target


class DurationType(click.ParamType[float, Any]):
    """``24h``, ``30m``, ``7d``, or seconds."""

    name = "DURATION"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if math.isfinite(value) and value >= 0:
                return float(value)
            self.fail(f"{value!r} is not a duration", param, ctx)
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def archive_option(function: F) -> F:
    """--archive, for the commands that make the archive when it is missing (download, sync)."""
    return click.option(
        "--archive",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("archive"),
        show_default=True,
        help="The archive folder (created if missing).",
    )(function)


def existing_archive_option(function: F) -> F:
    """--archive, for the commands that read an archive and never make one (package, status,
    prune): their help must not promise what only download and sync do."""
    return click.option(
        "--archive",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("archive"),
        show_default=True,
        help="The archive folder (it must exist: nothing is created).",
    )(function)


_DOWNLOAD_PARAMS = (
    "jobs",
    "per_host",
    "rate_limit",
    "retries",
    "timeout",
    "max_height",
    "mirrors",
    "video_password",
    "min_rate",
    "max_time",
    "allow_http_redirects",
    "connections",
)
_KIT_PARAMS = ("title", "copy", "transcode")


def download_options(function: F) -> F:
    """--jobs, --per-host, --connections, --rate-limit, --retries, --timeout, --max-height,
    --mirror, --video-password.

    The command receives them as one ``download_settings`` (:class:`DownloadSettings`).
    """

    @functools.wraps(function)
    def command(*args: Any, **kwargs: Any) -> Any:
        values = {name: kwargs.pop(name) for name in _DOWNLOAD_PARAMS}
        return function(*args, download_settings=DownloadSettings(**values), **kwargs)

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
            "--connections",
            type=click.IntRange(1, 16),
            default=DEFAULT_SETTINGS.connections,
            show_default=True,
            help="The most connections one large file is fetched over at once, in ranged "
            "parts, when its server allows (a poor line gives each connection a fraction of "
            "it); they count within --jobs and --per-host. 1: one connection a file.",
        ),
        click.option(
            "--rate-limit",
            type=SizeType(zero=True),
            default=None,
            help="Bandwidth cap for the whole process, in bytes per second: 500k, 2M (1k = 1024); "
            "0: none.",
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
            type=FiniteRange(0.1, 3600),
            default=DEFAULT_SETTINGS.timeout,
            show_default=True,
            help="Seconds to wait for a connection or a byte; also the window over which a "
            "transfer must average --min-rate.",
        ),
        click.option(
            "--min-rate",
            type=SizeType(zero=True),
            default=DEFAULT_SETTINGS.min_rate,
            show_default=True,
            help="A transfer slower than this, in bytes per second over --timeout seconds, "
            "counts as stalled and is retried (a server that trickles a byte at a time); 0: "
            "no floor.",
        ),
        click.option(
            "--max-time",
            type=DurationType(),
            default=None,
            metavar="DURATION",
            help="Stop fetching this long after the start (6h, 90m): files under way keep "
            "their partial for the next run, those not done fail. For cron: the run ends "
            "before the school day.",
        ),
        click.option(
            "--allow-http-redirects",
            is_flag=True,
            help="Follow a redirect from https to plain http (refused by default: the bytes "
            "would travel unprotected).",
        ),
        click.option(
            "--max-height",
            type=click.IntRange(144, 4320),
            default=None,
            metavar="PIXELS",
            help="Fetch the largest resolution the PeerTube instance offers at most this tall "
            "(e.g. 480) instead of the fiche's link.",
        ),
        click.option(
            "--mirror",
            "mirrors",
            type=MirrorType(),
            multiple=True,
            help="Fetch URLs starting with FROM from TO instead (a regional mirror, a LAN "
            "cache); the archive records the original URL. Repeatable.",
        ),
        click.option(
            "--video-password",
            envvar="ARCHIVER_VIDEO_PASSWORD",
            default=None,
            metavar="TEXT",
            help="The password of password-protected PeerTube videos, sent to their instance "
            "only, never shown. Better from the environment: ARCHIVER_VIDEO_PASSWORD.",
        ),
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return command  # type: ignore[return-value]


def subfolder_option(function: F) -> F:
    """--subfolder NAME: the kit goes in a folder of its own inside the folder given."""
    return click.option(
        "--subfolder",
        type=SubfolderType(),
        default=None,
        metavar="NAME",
        help="Make the kit in NAME inside the folder given, for a key or share that already "
        "holds other files (archiver never writes among files it did not make).",
    )(function)


class SubfolderType(click.ParamType[str, Any]):
    """One folder name, not a path: ``Videos-Canope``."""

    name = "NAME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).strip()
        if not text or text in (".", "..") or "/" in text or "\\" in text or "\0" in text:
            self.fail(f"{value!r} is not a folder name (one name, no '/')", param, ctx)
        return text


def kit_options(function: F) -> F:
    """--title, --copy, --transcode: received as one ``kit_settings`` (:class:`KitSettings`)."""

    @functools.wraps(function)
    def command(*args: Any, **kwargs: Any) -> Any:
        from ..kit import KitSettings  # the kit's commands only

        title, copy, transcode = (kwargs.pop(name) for name in _KIT_PARAMS)
        from ..media import PRESETS

        preset = PRESETS[transcode] if transcode else None
        settings = KitSettings(title=title, copy=copy, transcode=preset)
        return function(*args, kit_settings=settings, **kwargs)

    decorators = [
        click.option(
            "--title",
            default=DEFAULT_TITLE,
            show_default=True,
            help="The collection's title, shown on every page of the kit.",
        ),
        click.option(
            "--copy",
            is_flag=True,
            help="Copy the videos even when the kit is on the archive's filesystem "
            "(by default they are hard-linked there, taking no space).",
        ),
        click.option(
            "--transcode",
            type=click.Choice(PRESET_NAMES),
            default=None,
            help="A last resort, for the kit (H.264, AAC, faststart; made once per video and "
            "kept in the archive): re-encode the videos no resolution held or offered brings "
            "under the cap (--max-height, else the preset's height), or, with --fit, the "
            "largest ones while even the lowest resolutions do not fit.",
        ),
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return command  # type: ignore[return-value]
