"""The sockets under httpx (:mod:`archiver.fetch.net`): every transport archiver makes uses
them, plain and TLS; and they fail as httpcore's own streams do (a silent server is a read
time-out, a cut body is a short body, a refused or unknown host is a connection error that
keeps its cause, an idle connection the server closed is not reused). Against real servers
on 127.0.0.1: the suite's HTTP and HTTPS file server, and raw sockets where a server must
misbehave below HTTP."""

from __future__ import annotations

import asyncio
import errno
import gc
import hashlib
import socket
import threading
import warnings
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import httpcore
import httpx
import pytest
from h11._receivebuffer import ReceiveBuffer
from hypothesis import given
from hypothesis import strategies as st

from archiver.fetch import DownloadSettings, bodies
from archiver.fetch.bodies import hand_over_bodies
from archiver.fetch.http import make_client, unknown_host
from archiver.fetch.net import SocketBackend, SocketStream, TLSStream

from . import test_network_manners as manners
from .server import FileServer

T = TypeVar("T")
MiB = 1024 * 1024
BODY = hashlib.shake_256(b"net").digest(3 * MiB + 12345)  # not a multiple of any read size
QUICK = DownloadSettings(retries=0, timeout=0.5)


def run_client(
    ask: Callable[[httpx.AsyncClient], Coroutine[Any, Any, T]],
    settings: DownloadSettings = QUICK,
) -> T:
    """test_network_manners' client runner, quick by default: no retries, 0.5 s time-out."""
    return manners.run_client(ask, settings)


def chain_of(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it, in turn, as :func:`.http.unknown_host` walks them."""
    chain = []
    seen: BaseException | None = exc
    while seen is not None:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    return chain


async def fetched(client: httpx.AsyncClient, url: str) -> tuple[bytes, object]:
    """The body at ``url``, streamed as a download reads it, and the stream it came by."""
    async with client.stream("GET", url) as response:
        response.raise_for_status()
        body = b"".join([chunk async for chunk in response.aiter_raw()])
        return body, response.extensions["network_stream"]


@pytest.fixture(params=["http", "https"])
def any_server(
    request: pytest.FixtureRequest, server: FileServer, tls_server: FileServer, trusted: None
) -> FileServer:
    """The plain server, then the TLS one (its certificate trusted)."""
    return server if request.param == "http" else tls_server


def test_every_transport_archiver_makes_opens_connections_through_sockets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The direct transport and each proxy's from the environment: httpx builds them, archiver
    sets their backend where httpcore keeps it. Fails if a release of httpx or httpcore
    moves it (archiver would then run on anyio's streams, slower, unnoticed)."""
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.school.example:3128")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.school.example:3128")

    async def transports() -> list[object]:
        async with make_client(DownloadSettings()) as client:
            return [client._transport, *client._mounts.values()]

    made = asyncio.run(transports())
    assert len(made) >= 3  # direct, http://, https://
    for transport in made:
        assert isinstance(transport._pool._network_backend, SocketBackend), transport  # type: ignore[attr-defined]


def test_a_body_arrives_whole_over_a_plain_socket_and_over_tls(any_server: FileServer) -> None:
    any_server.add("/v.mp4", BODY)
    body, stream = run_client(lambda client: fetched(client, any_server.url("/v.mp4")))
    assert hashlib.sha256(body).digest() == hashlib.sha256(BODY).digest()
    if any_server.url("/").startswith("https://"):
        assert isinstance(stream, TLSStream)
        assert stream.get_extra_info("ssl_object").version().startswith("TLS")
    else:
        assert isinstance(stream, SocketStream)


def test_several_requests_share_one_connection(any_server: FileServer) -> None:
    any_server.add("/v.mp4", BODY[:1000])

    async def three(client: httpx.AsyncClient) -> list[bytes]:
        return [(await fetched(client, any_server.url("/v.mp4")))[0] for _ in range(3)]

    assert run_client(three) == [BODY[:1000]] * 3
    assert any_server.connections == 1


def test_a_server_gone_silent_is_a_read_timeout(any_server: FileServer) -> None:
    any_server.add("/v.mp4", BODY, stall_after=100_000, stall_seconds=3.0, stall_times=1)
    with pytest.raises(httpx.ReadTimeout):
        run_client(lambda client: fetched(client, any_server.url("/v.mp4")))


def test_a_body_cut_short_is_a_broken_connection_not_a_short_file(any_server: FileServer) -> None:
    """Plain: the peer's close. TLS: the same close, without TLS's closing message (a
    "ragged" end, which h11 judges by the length announced)."""
    any_server.add("/v.mp4", BODY, drop_after=MiB, drop_times=1)
    with pytest.raises(
        httpx.RemoteProtocolError,
        match="peer closed connection without sending complete message body",
    ):
        run_client(lambda client: fetched(client, any_server.url("/v.mp4")))


@pytest.fixture
def one_answer_then_close() -> Iterator[str]:
    """A server that answers each connection's first request with keep-alive, then closes it
    (as a server does with idle connections after its keep-alive time-out)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    answered: list[int] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                answered.append(1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}/"
    listener.close()
    thread.join(timeout=5)


def test_an_idle_connection_the_server_closed_is_not_reused(one_answer_then_close: str) -> None:
    """httpcore asks a stream whether it is readable before reusing it: a closed one is."""

    async def twice(client: httpx.AsyncClient) -> list[bytes]:
        first = (await client.get(one_answer_then_close)).content
        await asyncio.sleep(0.2)  # the server's close has arrived
        return [first, (await client.get(one_answer_then_close)).content]

    assert run_client(twice) == [b"ok", b"ok"]


def test_a_refused_connection_is_a_connect_error_with_its_cause() -> None:
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        port = placeholder.getsockname()[1]
    with pytest.raises(httpx.ConnectError) as caught:
        run_client(lambda client: client.get(f"http://127.0.0.1:{port}/"))
    causes = chain_of(caught.value)
    assert any(isinstance(cause, ConnectionRefusedError) for cause in causes), causes


def test_an_unknown_host_stays_an_answer_not_a_time_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS's "no such name" reaches :func:`unknown_host` through the connection error (the
    resolver is the system's; this machine has no DNS, so its answer is given here)."""

    def no_such_name(*_args: object, **_kwargs: object) -> object:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)
    with pytest.raises(httpx.ConnectError) as caught:
        run_client(lambda client: client.get("http://tube.nowhere.example/"))
    assert unknown_host(caught.value)


def test_a_tls_handshake_cut_is_a_connect_error() -> None:
    """A server that accepts, then closes without a word: the TLS handshake ends unfinished."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def close_each() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        conn.recv(65536)
        conn.close()

    thread = threading.Thread(target=close_each, daemon=True)
    thread.start()
    try:
        with pytest.raises(httpx.ConnectError):
            run_client(lambda client: client.get(f"https://127.0.0.1:{port}/"))
    finally:
        listener.close()
        thread.join(timeout=5)


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A port that accepts connections and never says a word (a TLS handshake hangs)."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    listener.close()
    thread.join(timeout=5)
    for conn in accepted:
        conn.close()


def test_a_cancelled_tls_handshake_closes_its_socket_at_once(silent_listener: int) -> None:
    """A request cancelled mid-handshake (a run's deadline, a warm-up let go): its socket is
    closed then, not left to the garbage collector (which warns of it, and meanwhile the
    descriptor stays open)."""

    async def cancelled(client: httpx.AsyncClient) -> None:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await client.get(f"https://127.0.0.1:{silent_listener}/")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_client(cancelled, DownloadSettings(retries=0, timeout=10.0))
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)], caught


def test_a_host_of_two_addresses_is_reached_by_the_one_that_answers(
    server: FileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name of two addresses, the first refusing (the server listens on the second only):
    the other is tried at once and connects (Happy Eyeballs' race, one descriptor each)."""
    server.add("/v.mp4", BODY[:1000])
    port = int(server.url("/").rsplit(":", 1)[1].strip("/"))
    monkeypatch.setattr(socket, "getaddrinfo", lambda *_a, **_k: two_addresses(port))
    body, _stream = run_client(lambda client: fetched(client, f"http://tube.example:{port}/v.mp4"))
    assert body == BODY[:1000]


def two_addresses(
    port: int,
) -> list[tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[str, int]]]:
    """What a resolver answers for a name of two addresses: 127.0.0.2, then 127.0.0.1."""
    return [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.2", port)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
    ]


def test_every_address_refused_is_one_refusal_not_a_list(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two addresses, both refused alike: the error is the refusal (its errno, the words a
    person reads on the dead-host line), not asyncio's "Multiple exceptions: ..."."""
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        port = placeholder.getsockname()[1]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *_a, **_k: two_addresses(port))
    with pytest.raises(httpx.ConnectError) as caught:
        run_client(lambda client: client.get(f"http://tube.example:{port}/"))
    chain = chain_of(caught.value)
    assert isinstance(chain[2], ConnectionRefusedError), chain
    assert "Multiple exceptions" not in str(caught.value)


class _Flowing:
    """A socket whose kernel always holds bytes: every ``recv`` returns at once."""

    def recv(self, size: int) -> bytes:
        return bytes(size)


def test_a_reader_that_never_waits_still_lets_the_event_loop_run() -> None:
    """A line fast enough that the kernel always holds bytes: 8 MiB read in 256 KiB reads,
    by a reader with no await of its own, lets another task run once a mebibyte."""

    async def main() -> int:
        stream = SocketStream(_Flowing())  # type: ignore[arg-type]
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        ticks = 0
        for _ in range(32):
            await stream.read(256 * 1024)
        task.cancel()
        return ticks

    assert asyncio.run(main()) >= 8


class _GivenUp:
    """A socket the kernel gave up on while a read waited (``ETIMEDOUT``)."""

    def recv(self, size: int) -> bytes:
        raise BlockingIOError

    def fileno(self) -> int:
        return -1


class _KernelTimeOut:
    async def sock_recv(self, sock: object, size: int) -> bytes:
        raise TimeoutError(errno.ETIMEDOUT, "Connection timed out")


def test_the_kernels_time_out_is_a_broken_connection_not_archivers_time_out() -> None:
    """``--timeout`` words ("no answer within...") are for archiver's own deadline; the
    kernel's ``ETIMEDOUT`` (a path dead for minutes) is a broken connection, as with anyio."""

    async def main() -> None:
        stream = SocketStream(_GivenUp())  # type: ignore[arg-type]
        stream._loop = _KernelTimeOut()  # type: ignore[assignment]
        await stream.read(1024, timeout=30.0)

    with pytest.raises(httpcore.ReadError, match="timed out"):
        asyncio.run(main())


# -- h11's body extraction without copies (fetch/bodies.py) ------------------------------------


def test_the_installed_h11_is_one_whose_extraction_is_handed_over() -> None:
    """Fails when a release of h11 not read against is installed: then bodies are copied as
    h11 copies them (slower, still right) until fetch/bodies.py is read against it again."""
    assert hand_over_bodies()
    assert ReceiveBuffer.maybe_extract_at_most is bodies._extract_at_most


@given(
    held=st.binary(max_size=64),
    then=st.binary(max_size=16),
    counts=st.lists(st.integers(min_value=0, max_value=80), max_size=6),
)
def test_extraction_hands_over_what_h11_would_copy(
    held: bytes, then: bytes, counts: list[int]
) -> None:
    """On any buffer, any series of counts, with bytes arriving between: the same bytes out,
    the same left, and lines found after it as h11 finds them."""
    ours, theirs = ReceiveBuffer(), ReceiveBuffer()
    for buffer in (ours, theirs):
        buffer += held
    for count in counts:
        got = bodies._extract_at_most(ours, count)
        expected = bodies._ORIGINAL(theirs, count)
        assert got == expected
        assert type(got) is type(expected)
        assert bytes(ours) == bytes(theirs)
        ours += then
        theirs += then
    assert ours.maybe_extract_next_line() == theirs.maybe_extract_next_line()
    assert ours.maybe_extract_lines() == theirs.maybe_extract_lines()
    assert bytes(ours) == bytes(theirs)


def test_addresses_that_fail_without_an_os_error_are_still_a_connection_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A resolver's answer no socket can use (an address of the wrong shape, twice): the
    race keeps what each attempt raised; the run sees a connection error, not a crash."""
    unusable = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1",))] * 2
    monkeypatch.setattr(socket, "getaddrinfo", lambda *_a, **_k: unusable)
    with pytest.raises(httpx.ConnectError, match=r"cannot connect to tube\.example port 80"):
        run_client(lambda client: client.get("http://tube.example/"))
