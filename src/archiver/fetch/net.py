"""The sockets under httpx: plain asyncio sockets, in place of httpcore's anyio streams.

Why: on a fast line the event loop's thread is what limits a download, and most of its time
went to the stream under httpcore, not to HTTP. anyio's stream, on every read, resumes the
transport's reading (an ``epoll_ctl``), waits for an event, pauses the reading again (another
``epoll_ctl``) and opens a cancel scope. Here a read is one ``recv()`` when the kernel already
holds bytes, and waits on the event loop only when it holds none. Measured with httpx alone
(800 MiB from nginx on loopback, 8 connections, one process, bytes only counted): 1.95 s of
CPU through anyio's streams, 1.08 s through these.

What stays as it was: httpcore speaks HTTP over these streams (h11), its pool and its proxies
(``HTTP_PROXY``: the CONNECT tunnel, SOCKS) open their connections through
:class:`SocketBackend`; a host's addresses are raced as anyio and browsers do (Happy
Eyeballs, RFC 8305); errors are httpcore's (``ConnectError``, ``ReadTimeout``...), each raised
from the :class:`OSError` it comes from (a DNS answer that the name does not exist stays
readable by :func:`.http.unknown_host`), a time-out being httpcore's time-out only when its
deadline passed (the kernel's ``ETIMEDOUT`` is a broken connection, as with anyio). A stream
that reads without waiting lets the event loop run once a mebibyte, so that a reader with no
await of its own never holds the loop (timers, other connections, cancellation) for a whole
download. TLS is the standard library's, over memory buffers
(:class:`ssl.SSLObject`), as anyio's ``TLSStream`` does it; an end of the connection without
TLS's closing message ends the body like a plain close does (anyio's
``standard_compatible=False``, which httpcore asks for), and h11 then tells a short body.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
import socket
import ssl
import time
from asyncio import staggered
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import httpcore

from .ahead import AHEAD, ALONE_FOR, FRESH_FOR, Ahead, Early

T = TypeVar("T")

# Bytes asked of the kernel under TLS: the record layer's reads are not httpcore's.
TLS_READ_SIZE = 256 * 1024
# How long IPv6 is tried alone before IPv4 joins (RFC 8305's recommendation).
HAPPY_EYEBALLS_DELAY = 0.25
# Bytes a stream reads without waiting before it lets the event loop run (1 MiB: 4 reads of
# httpcore's 256 KiB; a fast line then holds the loop for a few ms at most).
YIELD_EVERY = 1024 * 1024

_AddrInfo = tuple[socket.AddressFamily, socket.SocketKind, int, str, Any]  # getaddrinfo's
_SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


def _interleaved(infos: Sequence[_AddrInfo]) -> list[_AddrInfo]:
    """The addresses in the order RFC 8305 tries them: the families alternating, in the
    order the resolver gave (IPv6 first where it is preferred)."""
    by_family: dict[int, list[_AddrInfo]] = {}
    for info in infos:
        by_family.setdefault(info[0], []).append(info)
    rounds = itertools.zip_longest(*by_family.values())
    return [info for one_round in rounds for info in one_round if info is not None]


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _established(early: Early) -> socket.socket:
    """``early``'s socket once its handshake is done (:mod:`.ahead`), with ``TCP_NODELAY``.

    OSError if it failed, if the server closed it since, or if it is older than
    :data:`.ahead.FRESH_FOR`; the socket is closed then, and when the wait is cancelled.
    """
    sock = early.sock
    try:
        if time.monotonic() - early.started > FRESH_FOR:
            raise OSError(f"a connection opened ahead waited over {FRESH_FOR:g} s")
        loop = asyncio.get_running_loop()
        writable = loop.create_future()
        loop.add_writer(sock, _settle, writable)
        try:
            await writable
        finally:
            loop.remove_writer(sock)
        failed = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if failed:
            raise OSError(failed, os.strerror(failed))
        if _readable(sock):  # a server that closed it, or spoke first: not for us
            raise OSError("a connection opened ahead was closed by the server")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except BaseException:
        sock.close()
        raise
    return sock


async def _connect(
    host: str,
    port: int,
    local_address: str | None,
    early: Early | None = None,
    timeout: float | None = None,
) -> socket.socket:
    """A connected, non-blocking TCP socket with ``TCP_NODELAY``.

    With ``early`` (a connection opened ahead to this host and port, :mod:`.ahead`): that
    one, waited for alone until :data:`ALONE_FOR` after it started (or half the connect
    ``timeout``, if shorter: the client's own must have time to connect); the client's own
    connection (:func:`_connect_fresh`) starts beside it then, or at once if it failed. The
    first to connect wins, the other is closed; the client's own failing is the error,
    at once: the one a run with no connection opened ahead would have met.
    """
    if early is None:
        return await _connect_fresh(host, port, local_address)
    adopted = asyncio.ensure_future(_established(early))
    fresh: asyncio.Future[socket.socket] | None = None
    winner: socket.socket | None = None
    try:
        alone = ALONE_FOR - (time.monotonic() - early.started)
        if timeout is not None:
            alone = min(alone, timeout / 2)
        await asyncio.wait([adopted], timeout=max(alone, 0.0))
        while True:
            if _connected(adopted):
                winner = adopted.result()
                return winner
            if fresh is None:
                fresh = asyncio.ensure_future(_connect_fresh(host, port, local_address))
            elif fresh.done():
                winner = fresh.result()  # or its error
                return winner
            running = [task for task in (adopted, fresh) if not task.done()]
            await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
    finally:
        tasks = [task for task in (adopted, fresh) if task is not None]
        for task in tasks:
            task.cancel()
        # Each closes its own socket when it fails or is cancelled, and takes it off the
        # event loop first: waited for, so that no descriptor number is reused while the
        # loop still watches it.
        try:
            await asyncio.wait(tasks)
        except BaseException:  # cancelled again meanwhile: the winner is no one's now
            winner = None
            raise
        finally:
            for task in tasks:
                if _connected(task) and task.result() is not winner:
                    task.result().close()


def _connected(task: asyncio.Future[socket.socket]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is None


async def _connect_fresh(host: str, port: int, local_address: str | None) -> socket.socket:
    """A connected, non-blocking TCP socket with ``TCP_NODELAY``: the name resolved in a
    thread, its addresses raced as Happy Eyeballs does (RFC 8305: the next one tried after
    250 ms or the previous one's failure; asyncio's own race, the one its
    ``create_connection`` runs). One descriptor an attempt, closed when the attempt fails or
    loses. When all fail, the error is the first attempt's if all failed alike (its errno:
    "connection refused"), else one naming each, caused by the first."""
    loop = asyncio.get_running_loop()
    infos = _interleaved(await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM))
    if not infos:
        raise OSError(f"no address for {host}")
    made: list[socket.socket] = []
    errors: list[OSError] = []

    async def attempt(info: _AddrInfo) -> socket.socket:
        family, kind, proto, _, address = info
        sock = socket.socket(family, kind, proto)
        made.append(sock)
        try:
            sock.setblocking(False)
            if local_address:
                sock.bind((local_address, 0))
            await loop.sock_connect(sock, address)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except BaseException as exc:
            sock.close()
            if isinstance(exc, OSError):
                errors.append(exc)
            raise
        return sock

    winner: socket.socket | None = None
    try:
        if len(infos) == 1:
            winner = await attempt(infos[0])
        else:
            attempts = [functools.partial(attempt, info) for info in infos]
            winner, _, _ = await staggered.staggered_race(attempts, HAPPY_EYEBALLS_DELAY)
    finally:
        for sock in made:  # a second attempt may have connected as the first won
            if sock is not winner:
                sock.close()
    if winner is not None:
        return winner
    if not errors:  # every attempt failed otherwise (the race keeps those to itself)
        raise OSError(f"cannot connect to {host} port {port}")
    if len({error.errno for error in errors}) == 1:
        raise errors[0]
    raise OSError("; ".join(dict.fromkeys(str(error) for error in errors))) from errors[0]


def _deadline_passed(exc: BaseException) -> bool:
    """Whether ``exc`` is an ``asyncio.timeout`` that expired (no errno), not the kernel's
    ``ETIMEDOUT`` (a :class:`TimeoutError` too, with its errno: a connection given up)."""
    return isinstance(exc, TimeoutError) and exc.errno is None


def _readable(sock: socket.socket) -> bool:
    """Whether a ``recv`` would return at once: bytes waiting, or the peer's close. An idle
    keep-alive connection that is readable was closed by the server (httpcore asks before it
    reuses one). A socket already closed reads as readable: its next read ends."""
    try:  # one system call: httpcore asks it of every idle connection at every request
        sock.recv(1, socket.MSG_PEEK)
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:  # closed, reset: the next read ends
        return True
    return True


class _Stream(httpcore.AsyncNetworkStream):
    """What both streams share: TLS started over either (over a plain connection, or over a
    TLS connection to a proxy)."""

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = TLSStream(self, ssl_context, server_hostname)
        try:
            async with asyncio.timeout(timeout):
                await stream.handshake()
        except BaseException as exc:  # a cancelled handshake too: its socket closed now
            await self.aclose()
            if _deadline_passed(exc):
                raise httpcore.ConnectTimeout(str(exc)) from exc
            if isinstance(exc, (ssl.SSLError, OSError, httpcore.NetworkError)):
                raise httpcore.ConnectError(str(exc)) from exc
            raise
        return stream


class SocketStream(_Stream):
    """A connection as httpcore reads and writes it, on a non-blocking socket."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._loop = asyncio.get_running_loop()
        self._unwaited = 0  # bytes read since the event loop last ran

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            data = self._sock.recv(max_bytes)
        except (BlockingIOError, InterruptedError):
            pass  # nothing held yet: wait for it below
        except OSError as exc:
            raise httpcore.ReadError(str(exc)) from exc
        else:
            self._unwaited += len(data)
            if self._unwaited >= YIELD_EVERY:
                self._unwaited = 0
                await asyncio.sleep(0)
            return data
        self._unwaited = 0
        try:
            async with asyncio.timeout(timeout):
                return await self._loop.sock_recv(self._sock, max_bytes)
        except OSError as exc:
            if _deadline_passed(exc):
                raise httpcore.ReadTimeout(str(exc)) from exc
            raise httpcore.ReadError(str(exc)) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            async with asyncio.timeout(timeout):
                await self._loop.sock_sendall(self._sock, buffer)
        except OSError as exc:
            if _deadline_passed(exc):
                raise httpcore.WriteTimeout(str(exc)) from exc
            raise httpcore.WriteError(str(exc)) from exc

    async def aclose(self) -> None:
        self._sock.close()

    def get_extra_info(self, info: str) -> Any:
        if info == "socket":
            return self._sock
        if info == "is_readable":
            return _readable(self._sock)
        try:
            if info == "client_addr":
                return self._sock.getsockname()
            if info == "server_addr":
                return self._sock.getpeername()
        except OSError:  # closed, or no longer connected
            return None
        return None


class TLSStream(_Stream):
    """TLS over another stream: the standard library's TLS, fed through memory buffers."""

    def __init__(
        self, raw: httpcore.AsyncNetworkStream, context: ssl.SSLContext, hostname: str | None
    ) -> None:
        self._raw = raw
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._ssl = context.wrap_bio(
            self._incoming, self._outgoing, server_side=False, server_hostname=hostname
        )

    async def _call(self, action: Callable[[], T]) -> T:
        """Run ``action`` on the TLS object until it completes: send what it wrote, and feed
        it what the connection reads while it wants more."""
        while True:
            try:
                result = action()
            except ssl.SSLWantReadError:
                await self._flush()
                data = await self._raw.read(TLS_READ_SIZE)
                if data:
                    self._incoming.write(data)
                else:
                    self._incoming.write_eof()
            else:
                await self._flush()
                return result

    async def _flush(self) -> None:
        pending = self._outgoing.read()
        if pending:
            await self._raw.write(pending)

    async def handshake(self) -> None:
        await self._call(self._ssl.do_handshake)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            async with asyncio.timeout(timeout):
                return await self._call(functools.partial(self._ssl.read, max_bytes))
        except TimeoutError as exc:
            raise httpcore.ReadTimeout(str(exc)) from exc
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            return b""  # the end, with or without TLS's closing message: h11 judges the body
        except ssl.SSLError as exc:
            raise httpcore.ReadError(str(exc)) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        view = memoryview(buffer)
        try:
            async with asyncio.timeout(timeout):
                while view:
                    written = await self._call(functools.partial(self._ssl.write, view))
                    view = view[written:]
        except TimeoutError as exc:
            raise httpcore.WriteTimeout(str(exc)) from exc
        except ssl.SSLError as exc:
            raise httpcore.WriteError(str(exc)) from exc

    async def aclose(self) -> None:
        await self._raw.aclose()  # no closing message: as anyio's non-standard TLS does

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._ssl
        if info == "is_readable":  # bytes decrypted and not yet read, or the socket's
            return self._ssl.pending() > 0 or bool(self._raw.get_extra_info("is_readable"))
        return self._raw.get_extra_info(info)


class SocketBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend for :class:`SocketStream` connections; a connection to a
    host and port that one was opened ahead for (``ahead``, :mod:`.ahead`) starts from it."""

    def __init__(self, ahead: Ahead = AHEAD) -> None:
        self.ahead = ahead

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[_SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                early = self.ahead.take(host, port) if local_address is None else None
                sock = await _connect(host, port, local_address, early, timeout)
        except OSError as exc:
            if _deadline_passed(exc):
                raise httpcore.ConnectTimeout(str(exc)) from exc
            raise httpcore.ConnectError(str(exc)) from exc
        try:
            for option in socket_options or ():
                sock.setsockopt(*option)
        except OSError as exc:
            sock.close()
            raise httpcore.ConnectError(str(exc)) from exc
        return SocketStream(sock)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[_SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return await httpcore.AnyIOBackend().connect_unix_socket(path, timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def use_sockets(transport: object) -> None:
    """Make a transport of httpx open its connections through :class:`SocketBackend`.

    httpx builds its transports (the direct one, each proxy's from the environment) with
    httpcore's default backend and offers no option to choose another: the backend is set
    where httpcore keeps it (``_pool._network_backend``, read each time a connection opens).
    A test fails if a release of httpx or httpcore moves it (tests/test_net.py); a transport
    of another kind is left as it is.
    """
    pool = getattr(transport, "_pool", None)
    if isinstance(pool, httpcore.AsyncConnectionPool):
        pool._network_backend = SocketBackend()
