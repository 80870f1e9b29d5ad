"""HTTP as the downloader speaks it: the client, the settings of a run, validators, and the
words that say what went wrong."""

from __future__ import annotations

import email.utils
import re
import socket
import ssl
import time

import httpcore
import httpx

from .. import urls
from .bodies import hand_over_bodies
from .net import use_sockets
from .settings import (
    DEFAULT_CONNECTIONS,
    DEFAULT_SETTINGS,
    FAR_LATENCY,
    MIN_PIECE,
    SPLIT_AT,
    SPLIT_BELOW,
    USER_AGENT,
    WARM_AFTER,
    DownloadSettings,
)
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
    "encoded",
    "make_client",
    "not_worth_retrying",
    "open_client",
    "repeats_etag",
    "retry_after",
    "sent_range",
    "strong_etag",
    "unknown_host",
]

NOT_RETRIED = frozenset({400, 401, 403, 404, 405, 410, 451})
RETRIED = frozenset({408, 425, 429, 500, 502, 503, 504})
# At most 18 digits a number (past any file, short of int()'s digit limit): a longer one is
# no range at all.
CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d{1,18})-(\d{1,18})/(\d{1,18}|\*)\s*$", re.I)
UNSATISFIED_RANGE = re.compile(r"^\s*bytes\s+\*/(\d{1,18})\s*$", re.I)


def sent_range(response: httpx.Response) -> tuple[int, int, int] | str:
    """The bytes a ``206`` answer carries, ``(first, last, total)``, or what is wrong with it.

    One range of a known length, inside it, and a body that is that range as it is: a
    ``Content-Length`` other than the range's would run the body past the range's end, into
    bytes that are not the file's there (or stop it short), and a content coding (gzip,
    though ``identity`` was asked for) makes bytes that are not the file's at all.

    >>> def answer(**headers):
    ...     return httpx.Response(206, headers={k.replace("_", "-"): v for k, v in headers.items()})
    >>> sent_range(answer(Content_Range="bytes 2-5/10", Content_Length="4"))
    (2, 5, 10)
    >>> sent_range(answer(Content_Range="bytes 2-5/10", Content_Length="9"))
    'a 206 of bytes 2-5 with a Content-Length of 9, not 4'
    >>> sent_range(answer(Content_Range="bytes 6-5/10"))
    'a 206 of bytes 6-5 of a file of 10'
    >>> sent_range(answer(Content_Range="bytes 2-5/10", Content_Encoding="gzip"))
    "a 206 encoded 'gzip' (identity was asked for)"
    """
    match = CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
    if match is None:
        return "a 206 without a byte range"
    if match.group(3) == "*":
        return "a 206 without the file's length"
    first, last, total = int(match.group(1)), int(match.group(2)), int(match.group(3))
    if not first <= last < total:
        return f"a 206 of bytes {first}-{last} of a file of {total}"
    coding = encoded(response)
    if coding is not None:
        return f"a 206 {coding}"
    length = response.headers.get("Content-Length")
    if length is not None and length.strip() != str(last - first + 1):
        return (
            f"a 206 of bytes {first}-{last} with a Content-Length of {length.strip()[:20]},"
            f" not {last - first + 1}"
        )
    return first, last, total


def encoded(response: httpx.Response) -> str | None:
    """What says an answer's body is not the file's bytes as they are (a content coding such
    as gzip, which ``Accept-Encoding: identity`` did not ask for), or ``None``."""
    coding = response.headers.get("Content-Encoding", "").strip().lower()
    if coding in ("", "identity"):
        return None
    return f"encoded {coding[:40]!r} (identity was asked for)"


def repeats_etag(etag: str | None, answered: str | None) -> bool:
    """Whether a ``206`` repeats an ETag, as RFC 9110 (15.3.7) has a server do when its ``200``
    would carry one: a range without it cannot be told to be of the version asked for (a
    server or cache that ignores If-Range and drops validators). ``etag``: the first answer's
    ETag, never the If-Range value (which may be a date: a Last-Modified need not be repeated).
    A weak ETag is not asked for: If-Range then carried the date.

    >>> repeats_etag('"a"', None), repeats_etag('"a"', '"a"'), repeats_etag(None, None)
    (False, True, True)
    >>> repeats_etag('W/"a"', None)
    True
    """
    return strong_etag(etag) is None or answered is not None


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


def origin(url: str | httpx.URL) -> str:
    """``scheme://host:port`` of a URL, as a browser compares origins.

    >>> origin("https://tube.example.org/w/x") == origin("https://tube.example.org:443/")
    True
    """
    parts = httpx.URL(str(url))
    return f"{parts.scheme}://{parts.host}:{parts.port or urls.DEFAULT_PORTS.get(parts.scheme)}"


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
    hand_over_bodies()
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
    client = httpx.AsyncClient(**options)  # type: ignore[arg-type]
    for transport in (client._transport, *client._mounts.values()):
        use_sockets(transport)
    return client


async def open_client(settings: DownloadSettings) -> httpx.AsyncClient:
    """:func:`make_client`, on the event loop: it loads no certificates (:mod:`.tls` does,
    in a worker thread, when a request needs them), so it costs a few ms, and a thread's
    round trip would add to the time before the first request."""
    return make_client(settings)
