"""Option types and shared options of the command line (``--rate-limit 500k``, ``--mirror``)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .. import media
from ..fetch import DEFAULT_SETTINGS, DownloadSettings
from ..kit import DEFAULT_TITLE, KitSettings
from ..units import parse_duration, parse_size

__all__ = [
    "DurationType",
    "MirrorType",
    "SizeType",
    "archive_option",
    "download_options",
    "kit_options",
]

F = TypeVar("F", bound=Callable[..., Any])


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
        if isinstance(value, int | float):
            return float(value)
        try:
            return parse_duration(str(value))
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


_DOWNLOAD_PARAMS = (
    "jobs",
    "per_host",
    "rate_limit",
    "retries",
    "timeout",
    "max_height",
    "mirrors",
    "video_password",
)
_KIT_PARAMS = ("title", "copy", "transcode")


def download_options(function: F) -> F:
    """--jobs, --per-host, --rate-limit, --retries, --timeout, --max-height, --mirror,
    --video-password.

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


def kit_options(function: F) -> F:
    """--title, --copy, --transcode: received as one ``kit_settings`` (:class:`KitSettings`)."""

    @functools.wraps(function)
    def command(*args: Any, **kwargs: Any) -> Any:
        title, copy, transcode = (kwargs.pop(name) for name in _KIT_PARAMS)
        preset = media.PRESETS[transcode] if transcode else None
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
            type=click.Choice(sorted(media.PRESETS)),
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
