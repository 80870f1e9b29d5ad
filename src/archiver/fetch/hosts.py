"""Hosts that cannot be reached, said once: each host's connection failures in a row, in a run.

A dead line (the upstream host refuses connections, resets them before answering, lets them
time out) used to cost every file its whole retry budget: ten retries backing off up to a
minute each, half an hour for a collection, the archive's lock held all along. Once a host
has failed :data:`FAILURES_BEFORE_DOWN` connections in a row with no byte of an answer between
them, it is *down* for the rest of the run: every request to it fails at once with
:class:`HostDown`, whose one reason names it, and every retry waiting for it wakes up to fail.
Three, not one: a single refusal is a server restarting, and files are fetched several at
once, so a dead host's first round of connections already makes the three. A name DNS says
does not exist is down at once: that is an answer, which a retry would only repeat.

What counts is what :class:`Tracked`, the transport every request of a run passes through (the
API's, the sizes asked with HEAD, each download, each part of a split file, each hop of a
redirect), sees raised before a response's first byte: a refused or unreachable address, a
time-out or a TLS failure while connecting, a connection reset or closed before any answer.
Any answer, a 503 included, proves the host alive and starts its count again. A host that
accepts connections and then says nothing (a proxy in front of a dead line, a hung server)
counts too: a read time-out before the first byte of an answer is one more failure in a row,
so three of them in a row, ``--timeout`` seconds each, take it down; a time-out once an answer
has begun (a slow body) is the fetcher's stall, retried as before. Hosts are ``host:port``, as
the URL asked names them: two servers on one machine are two hosts.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from dataclasses import dataclass

import httpx

from ..errors import DownloadError
from .http import not_worth_retrying, unknown_host

__all__ = [
    "FAILURES_BEFORE_DOWN",
    "Down",
    "HostDown",
    "HostUnreachable",
    "Hosts",
    "Tracked",
    "host_of",
    "track",
]

# Connection failures in a row, with no answer between them, after which a host is down for
# the rest of the run (see the module's docstring for why three).
FAILURES_BEFORE_DOWN = 3

# What a request raises when its connection fails before any byte of an answer came.
_CONNECTION_FAILURES = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    # Raised by the transport only before the response's head: the body is read later.
    httpx.ReadTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
)

_ERRNO_WORDS = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.ECONNABORTED: "connection aborted",
    errno.ENETUNREACH: "network unreachable",
    errno.EHOSTUNREACH: "no route to host",
    errno.ETIMEDOUT: "connection timed out",
    errno.EPIPE: "connection closed",
}


def host_of(url: str | httpx.URL) -> str:
    """``host:port`` of a URL (the port only when the URL names one), lower-case.

    >>> host_of("https://Tube.Example.org/w/x"), host_of("http://127.0.0.1:9/v.mp4")
    ('tube.example.org', '127.0.0.1:9')
    """
    parts = httpx.URL(str(url))
    return f"{parts.host}:{parts.port}" if parts.port else parts.host


@dataclass(frozen=True)
class Down:
    """A host given up on for the run: why (its last failure), after how many in a row."""

    host: str
    why: str
    failures: int

    @property
    def reason(self) -> str:
        """``127.0.0.1:9 unreachable (connection refused, 3 connections in a row)``."""
        times = f", {self.failures} connections in a row" if self.failures > 1 else ""
        return f"{self.host} unreachable ({self.why}{times})"


class HostDown(httpx.ConnectError):
    """A request not sent: its host is down for the rest of the run. A
    :class:`httpx.ConnectError`, so every handler of a failed connection sees it."""

    def __init__(self, down: Down, *, request: httpx.Request | None = None) -> None:
        super().__init__(down.reason, request=request)
        self.down = down


class HostUnreachable(DownloadError):
    """A file not fetched because its host is down: each one fails with the host's reason,
    which a person is told once, for the host (:attr:`down`)."""

    def __init__(self, url: str, down: Down) -> None:
        super().__init__(url, f"{down.reason}: not tried again this run")
        self.down = down


def _words(exc: BaseException) -> str:
    """A connection failure in a few words: ``connection refused``, ``no such host (DNS)``."""
    if isinstance(exc, httpx.ConnectTimeout):
        return "connection timed out"
    if isinstance(exc, httpx.ReadTimeout):
        return "no answer within --timeout"
    refused = not_worth_retrying(exc)
    if refused is not None:
        return refused
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return "connection closed before any answer"
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, socket.gaierror):
            return "no such host (DNS)" if seen.errno == socket.EAI_NONAME else "DNS failed"
        if isinstance(seen, OSError) and seen.errno in _ERRNO_WORDS:
            return _ERRNO_WORDS[seen.errno]
        seen = seen.__cause__ or seen.__context__
    return str(exc) or type(exc).__name__


class Hosts:
    """Each host's connection failures in a row in one run, and the hosts given up on.

    Lives in one event loop, as the run's client does; not shared between threads.
    """

    def __init__(self, *, limit: int = FAILURES_BEFORE_DOWN) -> None:
        self.limit = max(limit, 1)
        self._failures: dict[str, int] = {}
        self._down: dict[str, Down] = {}
        self._wake: dict[str, asyncio.Event] = {}

    @property
    def given_up(self) -> dict[str, Down]:
        """The hosts down, by ``host:port``."""
        return dict(self._down)

    def down(self, url: str | httpx.URL) -> Down | None:
        """Whether the host of ``url`` is down for the rest of the run."""
        return self._down.get(host_of(url))

    def failed(self, host: str, exc: BaseException, *, final: bool = False) -> Down | None:
        """Count a connection to ``host`` that failed before any answer; the host once it is
        down with this failure, else ``None``. A ``final`` failure (DNS answered that the
        name does not exist: an answer, not a time-out) puts it down at once."""
        count = self._failures.get(host, 0) + 1
        self._failures[host] = count
        if host in self._down or (count < self.limit and not final):
            return self._down.get(host)
        self._down[host] = down = Down(host=host, why=_words(exc), failures=count)
        event = self._wake.get(host)
        if event is not None:
            event.set()
        return down

    def answered(self, host: str) -> None:
        """Any answer from ``host``: it is alive, its count starts again."""
        self._failures.pop(host, None)

    async def pause(self, url: str, seconds: float) -> None:
        """Sleep ``seconds`` before a retry to ``url``, cut short when its host goes down
        meanwhile: the retry then fails at once, not after the back-off."""
        host = host_of(url)
        if host in self._down:
            return
        event = self._wake.setdefault(host, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout=max(seconds, 0.0))


class Tracked(httpx.AsyncBaseTransport):
    """A transport that counts, for :class:`Hosts`, each connection that fails before an
    answer, and sends nothing to a host that is down."""

    def __init__(self, inner: httpx.AsyncBaseTransport, hosts: Hosts) -> None:
        self.inner = inner
        self.hosts = hosts

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = host_of(request.url)
        down = self.hosts.down(request.url)
        if down is not None:
            raise HostDown(down, request=request)
        try:
            response = await self.inner.handle_async_request(request)
        except _CONNECTION_FAILURES as exc:
            if isinstance(exc, HostDown):
                raise
            down = self.hosts.failed(host, exc, final=unknown_host(exc))
            if down is not None:
                raise HostDown(down, request=request) from exc
            raise
        self.hosts.answered(host)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def track(client: httpx.AsyncClient, hosts: Hosts) -> httpx.AsyncClient:
    """``client``, its transports (the direct one, and each proxy's from the environment)
    wrapped in :class:`Tracked`; returned for chaining.

    httpx makes the proxies' transports itself from ``HTTP_PROXY`` and the like, and offers
    no hook to wrap them: they are wrapped where it keeps them (``_transport``, ``_mounts``;
    a test of this module fails if a release of httpx moves them).
    """
    client._transport = Tracked(client._transport, hosts)
    client._mounts = {
        pattern: transport if transport is None else Tracked(transport, hosts)
        for pattern, transport in client._mounts.items()
    }
    return client
