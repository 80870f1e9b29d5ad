"""How a run downloads (:class:`DownloadSettings`), and the measurements its defaults come
from: a module of its own, without the HTTP client, so that every command can parse its
options, and a sync can read its seal, without importing httpx (issue 14's start-up)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .._version import __version__

__all__ = [
    "DEFAULT_CONNECTIONS",
    "DEFAULT_SETTINGS",
    "FAR_LATENCY",
    "MIN_PIECE",
    "SPLIT_AT",
    "SPLIT_BELOW",
    "USER_AGENT",
    "WARM_AFTER",
    "DownloadSettings",
]

USER_AGENT = f"archiver/{__version__} (offline video archiver)"

# Measured on an emulated poor line (bench/linkemu.py: 0.3 s round trip, 2 MiB/s a
# connection, 8 MiB/s in all), one 40 MB file: 19.8 s over 1 connection, 10.8 s over 2,
# 8.2 s over 3, 6.1 s over 4, 6.3 s over 6, 6.0 s over 8. Four fill that line; more gain
# only where a server caps each connection harder (PeerTube's nginx: 800k), and cost its
# connections: PeerTube's template counts on 4 a client. See docs/archive.md.
DEFAULT_CONNECTIONS = 4
# A file is split only while this much of it is still to come. Over 4 connections on that
# line: 3 MB took 1.97 s instead of 2.08 s (no gain at all on a line of 0.1 s, 4 MiB/s a
# connection), 4 MB 2.21 s instead of 2.57 s, 6 MB 1.99 s instead of 3.52 s.
SPLIT_AT = 4 * 1024 * 1024
# The least a connection that finished its part takes of another (segments.Segments.piece).
# On that line, alternating in one run (5 runs each, medians): --connections 3, one 40 MB
# file 8.82 s with 256 KiB against 9.01 s with 1 MiB (the last steal, refused at 1 MiB, ends
# the parts together); --connections 4, 6.96 s against 7.00 s (no steal happens).
MIN_PIECE = 256 * 1024
# Hashing the parts not hashed as they came costs about 3/4 of the file at sha256's speed
# (830 MiB/s measured here); one connection faster than this would lose more to it than
# further connections could win on a line it may already fill.
SPLIT_BELOW = 32 * 1024 * 1024
# Not a LAN's latency, nor this machine's: on a busy machine even loopback's first answer
# took 88 ms.
FAR_LATENCY = 0.25
# A file alone in its run whose first answer has not come after this opens the connections
# a split would add (fetcher.Fetcher._warm), so that they are open when the answer says how
# to split it. Over that 88 ms of a busy machine's loopback; on the emulated poor line
# (0.3 s round trip), one 40 MB file from the first connection to the last byte: 5.79 s
# after 0.1 s, 5.83 s after 0.15 s, 6.01 s without (medians of 4 and 5, in turns).
WARM_AFTER = 0.15


@dataclass(frozen=True, kw_only=True)
class DownloadSettings:
    """How to download: concurrency, retries, timeouts, bandwidth.

    >>> DownloadSettings(jobs=8, rate_limit=512 * 1024).retries
    10
    """

    jobs: int = 4
    per_host: int = 4
    rate_limit: int | None = None
    retries: int = 10
    timeout: float = 60.0
    max_redirects: int = 10
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    retry_after_max: float = 300.0
    # A failed attempt that grew the partial file past its best by this much made progress:
    # the retry budget starts again, so a line that drops every few minutes still finishes.
    # 64 KiB: a school's line of 24 KiB/s that drops every 30 s brings ~700 KiB a connection
    # (1 MiB made such a file fail); a server that restarts from zero still runs out of retries,
    # and one that cuts each answer short ends the file in at most its size / 64 KiB attempts.
    progress_resets_after: int = 64 * 1024
    # Check that each video is a whole MP4 (its boxes tile the file) before keeping it.
    check_media: bool = True
    # The tallest video wanted (--max-height): the largest resolution the instance offers
    # at most this tall, instead of the fiche's link.
    max_height: int | None = None
    # (from, to) URL prefixes: fetch from a regional mirror or a LAN cache; provenance keeps
    # the original URL.
    mirrors: tuple[tuple[str, str], ...] = ()
    user_agent: str = USER_AGENT
    # A password-protected video's password (--video-password), sent to its instance only in
    # PeerTube's header; never shown (repr=False keeps it out of logs and tracebacks).
    video_password: str | None = field(default=None, repr=False)
    # A transfer slower than this (bytes per second), averaged over ``timeout`` seconds, is a
    # stall (curl's --speed-limit/--speed-time): a server trickling a byte every few seconds
    # never trips the read timeout, and would hold the archive's lock for ever. 0: no floor.
    min_rate: int = 1024
    # Seconds from the start of the run after which no new attempt starts and transfers in
    # flight stop (their partials kept for the next run): a cron job's deadline (--max-time).
    max_time: float | None = None
    # An https URL redirected to http is refused unless this is set (--allow-http-redirects).
    allow_http_redirects: bool = False
    # The most connections one file is fetched over (--connections), in ranged segments; they
    # count within --jobs and --per-host. See DEFAULT_CONNECTIONS for the measurement.
    connections: int = DEFAULT_CONNECTIONS
    # A file is split only when this much of it is still to come: under it, opening another
    # connection costs more than it gains (SPLIT_AT).
    split_at: int = SPLIT_AT
    # A connection that finished its part takes the far piece of the largest part left that
    # makes both end together (segments.Segments.piece), while that piece is at least this
    # large (MIN_PIECE).
    min_piece: int = MIN_PIECE
    # A file is split once its one connection proves to bring less than this, in bytes per
    # second (SPLIT_BELOW), or at once when its first answer took far_latency seconds or
    # more to come: it crossed a long line (a satellite link, a school's saturated one).
    split_below: int = SPLIT_BELOW
    far_latency: float = FAR_LATENCY
    # Ask each new file no API or pin sizes for its size with HEAD before the first byte of
    # media, so that a run's total is known from the start (the CLI sets it when it draws a
    # progress bar; otherwise the requests would buy nothing).
    sizes_first: bool = False

    def request_url(self, url: str) -> str:
        """The URL to ask for ``url``: rewritten by the first mirror whose prefix matches."""
        for prefix, replacement in self.mirrors:
            if url.startswith(prefix):
                return replacement + url[len(prefix) :]
        return url


DEFAULT_SETTINGS = DownloadSettings()
