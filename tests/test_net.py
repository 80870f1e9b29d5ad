"""The sockets under httpx (:mod:`archiver.fetch.net`): every transport archiver makes uses
them, plain and TLS; and they fail as httpcore's own streams do (a silent server is a read
time-out, a cut body is a short body, a refused or unknown host is a connection error that
keeps its cause, an idle connection the server closed is not reused). Against real servers
on 127.0.0.1: the suite's HTTP and HTTPS file server, and raw sockets where a server must
misbehave below HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import httpx
import pytest

from archiver.fetch import DownloadSettings
from archiver.fetch.http import make_client, unknown_host
from archiver.fetch.net import SocketBackend, SocketStream, TLSStream

from .server import FileServer

T = TypeVar("T")
MiB = 1024 * 1024
BODY = hashlib.shake_256(b"net").digest(3 * MiB + 12345)  # not a multiple of any read size
QUICK = DownloadSettings(retries=0, timeout=0.5)


def run_client(
    ask: Callable[[httpx.AsyncClient], Coroutine[Any, Any, T]],
    settings: DownloadSettings = QUICK,
) -> T:
    async def main() -> T:
        async with make_client(settings) as client:
            return await ask(client)

    return asyncio.run(main())


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
    causes = []
    seen: BaseException | None = caught.value
    while seen is not None:
        causes.append(seen)
        seen = seen.__cause__ or seen.__context__
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
