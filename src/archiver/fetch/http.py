"""HTTP as the downloader speaks it: the client, the settings of a run, validators, and the
words that say what went wrong."""

from __future__ import annotations

import email.utils
import re
import socket
import ssl
import time
from dataclasses import dataclass, field

import httpcore
import httpx

from .. import urls
from .._version import __version__
from .tls import Certificates

__all__ = [
    "DEFAULT_CONNECTIONS",
    "DEFAULT_SETTINGS",
    "FAR_LATENCY",
    "MIN_PIECE",
    "NOT_RETRIED",
    "PASSWORD_HEADER",
    "PASSWORD_ORIGIN",
    "RETRIED",
    "SPLIT_AT",
    "SPLIT_BELOW",
    "USER_AGENT",
    "WARM_AFTER",
    "DownloadSettings",
    "InsecureRedirect",
    "describe",
    "make_client",
    "not_worth_retrying",
    "open_client",
    "retry_after",
    "strong_etag",
    "unknown_host",
]

USER_AGENT = f"archiver/{__version__} (offline video archiver)"
NOT_RETRIED = frozenset({400, 401, 403, 404, 405, 410, 451})
RETRIED = frozenset({408, 425, 429, 500, 502, 503, 504})
CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.I)
UNSATISFIED_RANGE = re.compile(r"^\s*bytes\s+\*/(\d+)\s*$", re.I)


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
    progress_resets_after: int = 1024 * 1024
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


def strong_etag(etag: str | None) -> str | None:
    """An ETag usable in If-Range: weak ones (``W/"…"``) are not allowed there (RFC 9110)."""
    return etag if etag and not etag.startswith("W/") else None


def retry_after(value: str | None, cap: float) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit() and len(value) <= 12:
        return min(float(value), cap)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(when.timestamp() - time.time(), 0.0), cap)


def unknown_host(exc: BaseException) -> bool:
    """Whether a connection failed because DNS answered that the host does not exist.

    That is an answer, not a time-out (``EAI_AGAIN``, which is retried): retrying it for
    minutes would only delay the report, so it fails the file at once.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, socket.gaierror) and seen.errno == socket.EAI_NONAME:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class InsecureRedirect(httpx.RequestError):
    """An https URL redirected to plain http, refused: the bytes would cross the network
    unauthenticated, open to whoever sits on the path (``--allow-http-redirects`` permits it).

    A :class:`httpx.RequestError`, so every handler of a failed request sees it; it is raised
    by the client's response hook before the redirect is followed.
    """


def _cause(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """The first exception of type ``kind`` in the chain of causes of ``exc``."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def not_worth_retrying(exc: BaseException) -> str | None:
    """Why a request that raised ``exc`` must fail at once, or ``None`` when a retry may help.

    A certificate the system refuses is refused again a minute later, and an https URL
    redirected to http would be redirected again: retrying them for minutes only delays the
    one line that tells the user what to fix.
    """
    if isinstance(exc, InsecureRedirect):
        return str(exc)
    refused = _cause(exc, ssl.SSLCertVerificationError)
    if isinstance(refused, ssl.SSLCertVerificationError):
        reason = refused.verify_message or refused.reason or str(refused)
        return f"the server's certificate was refused: {reason}"
    return None


def describe(exc: httpx.HTTPError, timeout: float) -> str:
    if (final := not_worth_retrying(exc)) is not None:
        return final
    if isinstance(exc, httpx.ConnectTimeout):
        return f"cannot connect: no answer within {timeout:g} s"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot reach the host: {exc}"
    if isinstance(exc, httpx.TimeoutException):
        return f"stalled: no data for {timeout:g} s"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"connection broken: {exc}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


# httpcore reads a socket 64 KiB at a time, and every read pays for a cancel scope and an h11
# event; for video files that per-read cost dominates. 256 KiB reads measured 1.6x faster on a
# 512 MiB file (bench/bench_download.py). httpcore offers this class constant as its only knob.
SOCKET_READ_SIZE = 256 * 1024


# The header PeerTube reads a video's password from (server/core/middlewares/validators/
# shared/videos.ts, checkCanSeeVideo / checkCanAccessVideoStaticFiles).
PASSWORD_HEADER = "x-peertube-video-password"  # noqa: S105 - a header's name, no secret
# A request's extension naming the one origin its password header may go to.
PASSWORD_ORIGIN = "archiver.password_origin"  # noqa: S105 - an extension's name
_PORTS = {"http": 80, "https": 443}


def origin(url: str | httpx.URL) -> str:
    """``scheme://host:port`` of a URL, as a browser compares origins.

    >>> origin("https://tube.example.org/w/x") == origin("https://tube.example.org:443/")
    True
    """
    parts = httpx.URL(str(url))
    return f"{parts.scheme}://{parts.host}:{parts.port or _PORTS.get(parts.scheme)}"


async def _keep_password_home(request: httpx.Request) -> None:
    """httpx keeps custom headers across a redirect (it strips only Authorization): a video's
    password must not follow a 302 to object storage or anywhere else."""
    home = request.extensions.get(PASSWORD_ORIGIN)
    if PASSWORD_HEADER in request.headers and origin(request.url) != home:
        del request.headers[PASSWORD_HEADER]


async def _refuse_http_redirect(response: httpx.Response) -> None:
    """Refuse a redirect from https to http before it is followed (curl and browsers downgrade
    silently; an archive's provenance and its users' passwords deserve better)."""
    if not response.has_redirect_location or response.request.url.scheme != "https":
        return
    try:
        target = response.request.url.join(response.headers["location"])
    except (httpx.InvalidURL, ValueError, UnicodeError):
        return  # httpx refuses a Location it cannot parse, with its own words
    if target.scheme == "http":
        source = urls.redact(str(response.request.url))
        raise InsecureRedirect(
            f"redirect from https to plain http refused: {source} → {urls.redact(str(target))}"
            " (--allow-http-redirects permits it)",
            request=response.request,
        )


def make_client(settings: DownloadSettings, **overrides: object) -> httpx.AsyncClient:
    """The HTTP client: keep-alive, redirects, proxies from the environment, no compression;
    https never redirected to http unless ``settings.allow_http_redirects``; its CA
    certificates loaded before the first request that needs them (:mod:`.tls`)."""
    if httpcore.AsyncHTTP11Connection.READ_NUM_BYTES < SOCKET_READ_SIZE:
        httpcore.AsyncHTTP11Connection.READ_NUM_BYTES = SOCKET_READ_SIZE
    limits = httpx.Limits(
        max_connections=max(settings.jobs, 1) + 2,
        max_keepalive_connections=max(settings.jobs, 1),
    )
    certificates = Certificates(trust_env=True)
    options: dict[str, object] = {
        "verify": certificates.context,
        "follow_redirects": True,
        "max_redirects": settings.max_redirects,
        "timeout": httpx.Timeout(settings.timeout),
        "limits": limits,
        "trust_env": True,  # HTTP_PROXY, HTTPS_PROXY, NO_PROXY: school networks need them
        # Byte ranges count bytes of the file as stored, so ask for it as stored.
        "headers": {"User-Agent": settings.user_agent, "Accept-Encoding": "identity"},
        "event_hooks": {
            "request": [certificates.ready, _keep_password_home],
            "response": [] if settings.allow_http_redirects else [_refuse_http_redirect],
        },
    }
    options.update(overrides)
    return httpx.AsyncClient(**options)  # type: ignore[arg-type]


async def open_client(settings: DownloadSettings) -> httpx.AsyncClient:
    """:func:`make_client`, on the event loop: it loads no certificates (:mod:`.tls` does,
    in a worker thread, when a request needs them), so it costs a few ms, and a thread's
    round trip would add to the time before the first request."""
    return make_client(settings)
