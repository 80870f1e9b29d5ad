"""Connections opened ahead (:mod:`archiver.fetch.ahead`): a download's first handshakes,
started while the command starts, and taken by the client (:mod:`archiver.fetch.net`).

What must hold: only the hosts and as many connections as the run's first wave will use
(none for an up-to-date archive, none through a proxy); a slow name holds no other host
back; the client uses them, and falls back to its own connection, with its own errors, when
one failed, was closed by the server or waited too long; nothing is left open. Against real
sockets on 127.0.0.1 and the suite's HTTP server.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpcore
import pytest

from archiver.entry import PeerTubeRef, Video
from archiver.fetch import DownloadSettings, ahead, net
from archiver.fetch.ahead import Ahead, first_hosts, open_ahead
from archiver.fetch.net import SocketBackend

from .conftest import content_of, make_entry, run_cli
from .server import FileServer
from .test_download_cli import wait_for, write

SETTINGS = DownloadSettings(jobs=4, per_host=2)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A listening socket on 127.0.0.1 that accepts nothing by itself."""
    sock = socket.create_server(("127.0.0.1", 0))
    sock.settimeout(5)
    with sock:
        yield sock


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# -- which hosts, how many ---------------------------------------------------------------------


def test_the_first_wave_within_jobs_and_per_host(tmp_path: Path) -> None:
    entries = [make_entry(f"a{i}", f"http://a.example/{i}.mp4") for i in range(3)]
    entries += [make_entry(f"b{i}", f"https://B.example:8443/{i}.mp4") for i in range(3)]
    assert first_hosts(entries, tmp_path, SETTINGS) == {
        ("a.example", 80): 2,
        ("b.example", 8443): 2,
    }
    one = DownloadSettings(jobs=1)
    assert first_hosts(entries, tmp_path, one) == {("a.example", 80): 1}
    assert first_hosts(entries[:1], tmp_path, SETTINGS) == {("a.example", 80): 1}


def test_nothing_ahead_for_what_the_archive_began_or_holds(tmp_path: Path) -> None:
    entries = [make_entry(f"a{i}", f"http://a.example/{i}.mp4") for i in range(3)]
    (tmp_path / "media" / "a0").mkdir(parents=True)
    (tmp_path / "media" / "a2").mkdir()
    assert first_hosts(entries, tmp_path, SETTINGS) == {("a.example", 80): 1}
    (tmp_path / "media" / "A1").mkdir()  # as a FAT key may spell it
    assert first_hosts(entries, tmp_path, SETTINGS) == {}


def test_the_instance_first_and_mirrors_applied(tmp_path: Path) -> None:
    described = make_entry(
        "p",
        "https://files.example/p.mp4",
        peertube=PeerTubeRef(instance="https://tube.example", uuid="u"),
    )
    plain = make_entry("q", "https://files.example/q.mp4")
    mirrored = DownloadSettings(mirrors=(("https://files.example/", "http://cache.lan:8080/"),))
    assert first_hosts([described, plain], tmp_path, mirrored) == {
        ("tube.example", 443): 1,
        ("cache.lan", 8080): 1,
    }


def test_nothing_ahead_for_a_name_or_scheme_not_surely_connected(tmp_path: Path) -> None:
    entries = [
        make_entry("idn", "https://vidéos.example/v.mp4"),
        make_entry("ftp", "ftp://files.example/v.mp4"),
        make_entry("bad", "http://[::1/v.mp4"),
        make_entry("ipv6", "http://[::FFFF:127.0.0.1]:8080/v.mp4"),  # httpx keeps the case
        make_entry("none", None, video=Video(url=None, embed_url=None)),
    ]
    assert first_hosts(entries, tmp_path, SETTINGS) == {}


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "http_proxy", "ALL_PROXY"])
def test_nothing_ahead_through_a_proxy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "http://proxy.lan:3128")
    assert first_hosts([make_entry("a", "http://a.example/a.mp4")], tmp_path, SETTINGS) == {}


def test_nothing_ahead_for_a_run_that_will_stop_before_asking(tmp_path: Path) -> None:
    entries = [make_entry("a", "http://a.example/a.mp4")]
    assert first_hosts(entries, tmp_path, DownloadSettings(max_time=5)) == {}
    assert first_hosts(entries, tmp_path, DownloadSettings(max_time=60)) == {("a.example", 80): 1}
    # Another run holds the archive's lock: this one will exit 3.
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from pathlib import Path\n"
         "from archiver.archive_lock import LOCK_NAME, take_lock\n"
         f"root = Path({str(tmp_path)!r}); take_lock(root / LOCK_NAME, root)\n"
         "print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        assert first_hosts(entries, tmp_path, SETTINGS) == {}
    finally:
        holder.communicate("")
    assert first_hosts(entries, tmp_path, SETTINGS) == {("a.example", 80): 1}


# -- opened ahead, and taken -------------------------------------------------------------------


def _held_resolving(monkeypatch: pytest.MonkeyPatch, host: str | None = None) -> threading.Event:
    """Names resolved by the threads that open ahead (only ``host``, if given) wait until the
    event returned is set; then ``host`` resolves as 127.0.0.1."""
    released = threading.Event()
    resolve = socket.getaddrinfo

    def held(name: str, *args: object, **kwargs: object) -> object:
        ahead_thread = threading.current_thread().name.startswith("ahead:")
        if ahead_thread and (host is None or name == host):
            released.wait(10)
            name = "127.0.0.1"
        return resolve(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ahead.socket, "getaddrinfo", held)
    return released


def _resolving_to(monkeypatch: pytest.MonkeyPatch, **names: tuple[str, int]) -> None:
    """Names resolved to the given addresses, for the threads that open ahead only (the
    client resolves as ever)."""
    resolve = socket.getaddrinfo

    def fake(host: str, port: object, *args: object, **kwargs: object) -> object:
        if threading.current_thread().name.startswith("ahead:") and host in names:
            host, port = names[host]
        return resolve(host, port, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ahead.socket, "getaddrinfo", fake)


@pytest.fixture
def no_answer() -> Iterator[tuple[str, int]]:
    """An address whose SYNs get no answer, as a dead or filtered host's: a listener whose
    backlog is full (Linux drops the SYNs it has no room for)."""
    with socket.create_server(("127.0.0.1", 0), backlog=0) as full:
        address = full.getsockname()
        fillers = []
        try:
            for _ in range(8):
                sock = socket.socket()
                sock.setblocking(False)
                sock.connect_ex(address)
                fillers.append(sock)
            time.sleep(0.2)
            with socket.socket() as probe:
                probe.settimeout(0.5)
                try:
                    probe.connect(address)
                except TimeoutError:
                    pass  # the backlog is full: no answer
                except OSError as exc:
                    pytest.skip(f"this kernel refuses beyond a full backlog ({exc})")
                else:
                    pytest.skip("this kernel answers beyond a full backlog")
            yield address
        finally:
            for sock in fillers:
                sock.close()


def test_a_slow_name_holds_no_other_host_back(
    listener: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = listener.getsockname()[1]
    # Then it resolves as 127.0.0.1: it would connect to the listener too.
    released = _held_resolving(monkeypatch, "slow.example")
    early = Ahead()
    try:
        slow = early.open("slow.example", port, 2)
        early.open("127.0.0.1", port, 1).join(5)
        accepted, _ = listener.accept()  # the healthy host's, while the slow name resolves
        accepted.close()
        # The client asks for the slow host before its name came: it connects by itself,
        # and no connection is opened ahead for that host afterwards.
        assert early.take("slow.example", port) is None
        released.set()
        slow.join(5)
        assert not slow.is_alive()
        assert early.take("slow.example", port) is None
        listener.settimeout(0.3)
        with pytest.raises(TimeoutError):
            listener.accept()
    finally:
        released.set()
        early.close()


def test_the_client_uses_the_connection_opened_ahead(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    early = Ahead()
    early.open("127.0.0.1", port, 1).join(5)
    first, _ = listener.accept()

    async def connect() -> None:
        stream = await SocketBackend(early).connect_tcp("127.0.0.1", port, timeout=5)
        await stream.write(b"over the connection opened ahead")
        await stream.aclose()

    with first:
        asyncio.run(connect())
        first.settimeout(5)
        assert first.recv(100) == b"over the connection opened ahead"
    listener.settimeout(0.3)
    with pytest.raises(TimeoutError):  # and no other connection was opened
        listener.accept()
    assert early.take("127.0.0.1", port) is None


def _own_connection_used(
    listener: socket.socket, early: Ahead, port: int, timeout: float = 5
) -> None:
    """The client's connection is a new one, that works."""

    async def connect() -> None:
        stream = await SocketBackend(early).connect_tcp("127.0.0.1", port, timeout=timeout)
        await stream.write(b"over its own connection")
        await stream.aclose()

    asyncio.run(connect())
    second, _ = listener.accept()
    with second:
        second.settimeout(5)
        assert second.recv(100) == b"over its own connection"


def test_a_connection_the_server_closed_is_not_used(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    early = Ahead()
    early.open("127.0.0.1", port, 1).join(5)
    first, _ = listener.accept()
    first.close()  # as a server does with a connection that sends nothing for long
    time.sleep(0.05)
    _own_connection_used(listener, early, port)


def test_a_connection_that_waited_too_long_is_not_used(
    listener: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = listener.getsockname()[1]
    monkeypatch.setattr(net, "FRESH_FOR", 0.0)
    early = Ahead()
    early.open("127.0.0.1", port, 1).join(5)
    first, _ = listener.accept()
    with first:
        time.sleep(0.01)
        _own_connection_used(listener, early, port)
        first.settimeout(5)
        assert first.recv(10) == b""  # closed by the client, unused


def test_a_refused_connection_ahead_leaves_the_clients_own() -> None:
    port = _free_port()
    early = Ahead()
    early.open("127.0.0.1", port, 1).join(5)  # refused: nothing listens yet
    time.sleep(0.05)
    with socket.create_server(("127.0.0.1", port)) as listener:
        listener.settimeout(5)
        _own_connection_used(listener, early, port)


def test_when_both_fail_the_error_is_the_clients_own() -> None:
    port = _free_port()
    before = _fds()

    async def error(backend: SocketBackend) -> str:
        with pytest.raises(httpcore.ConnectError) as caught:
            await backend.connect_tcp("127.0.0.1", port, timeout=5)
        return str(caught.value)

    alone = asyncio.run(error(SocketBackend(Ahead())))
    early = Ahead()
    early.open("127.0.0.1", port, 1).join(5)
    assert asyncio.run(error(SocketBackend(early))) == alone
    assert f"[Errno {errno.ECONNREFUSED}]" in alone  # refused, as a run without any says
    assert _fds() == before


def test_what_is_not_taken_is_closed(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    early = Ahead()
    early.open("127.0.0.1", port, 2).join(5)
    one, _ = listener.accept()
    two, _ = listener.accept()
    taken = early.take("127.0.0.1", port)
    assert taken is not None
    taken.sock.close()
    early.close()
    assert early.take("127.0.0.1", port) is None
    with one, two:
        for sock in (one, two):
            sock.settimeout(5)
            assert sock.recv(10) == b""
    # Closed: a host resolved afterwards gets none.
    early.open("127.0.0.1", port, 1).join(5)
    listener.settimeout(0.3)
    with pytest.raises(TimeoutError):
        listener.accept()


# -- a download --------------------------------------------------------------------------------


def test_a_download_opens_ahead_what_it_uses_and_nothing_when_up_to_date(
    server: FileServer, tmp_path: Path
) -> None:
    for i in range(4):
        server.add(f"/v{i}.mp4", content_of(50_000, seed=i))
    manifest = write(tmp_path, *(make_entry(f"v{i}", server.url(f"/v{i}.mp4")) for i in range(4)))
    archive = tmp_path / "archive"
    probe = Ahead()
    wanted = open_ahead(
        [make_entry(f"v{i}", server.url(f"/v{i}.mp4")) for i in range(4)],
        archive,
        DownloadSettings(jobs=2),
        probe,
    )
    assert wanted == {("127.0.0.1", server.port): 2}
    wait_for(lambda: server.connections == 2)  # opened before any request
    probe.close()
    server.reset()
    for i in range(4):
        server.add(f"/v{i}.mp4", content_of(50_000, seed=i))

    code, _, stderr = run_cli("download", manifest, "--archive", archive, "--jobs", "2")
    assert code == 0, stderr
    assert len(server.requests()) == 4
    # The two opened ahead carried every request: none opened beside them.
    assert server.connections == 2
    assert ahead.AHEAD.take("127.0.0.1", server.port) is None  # nothing left behind

    server.reset()
    code, _, stderr = run_cli("download", manifest, "--archive", archive, "--jobs", "2")
    assert code == 0, stderr
    assert (server.requests(), server.connections) == ([], 0)


def test_a_name_resolved_after_its_run_ended_opens_nothing_in_the_next(
    listener: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = listener.getsockname()[1]
    released = _held_resolving(monkeypatch)
    early = Ahead()
    thread = early.open("127.0.0.1", port, 1)
    early.close()  # the run ends while the name resolves
    early.reopen()  # the next run, in the same process
    released.set()
    thread.join(5)
    assert early.take("127.0.0.1", port) is None
    listener.settimeout(0.3)
    with pytest.raises(TimeoutError):
        listener.accept()


def test_ipv4_first_where_the_name_has_it(
    listener: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name of both families: its IPv4 address, which a network with a broken IPv6 still
    reaches (the resolver lists IPv6 first)."""
    port = listener.getsockname()[1]

    def both(host: str, port: int, *args: object, **kwargs: object) -> object:
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", _free_port(), 0, 0)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
        ]

    monkeypatch.setattr(ahead.socket, "getaddrinfo", both)
    early = Ahead()
    try:
        early.open("dual.example", port, 1).join(5)
        accepted, _ = listener.accept()
        accepted.close()
    finally:
        early.close()


def test_the_clients_own_failure_is_said_at_once_while_one_ahead_waits(
    no_answer: tuple[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name's answer changed between the two lookups: the connection opened ahead gets no
    answer, the client's own is refused. The refusal is the error, at once, not after the
    connection opened ahead gives up (nor at the time-out)."""
    refused = _free_port()
    _resolving_to(monkeypatch, **{"127.0.0.1": no_answer})
    early = Ahead()
    early.open("127.0.0.1", refused, 1).join(5)

    async def error() -> tuple[str, float]:
        start = time.monotonic()
        with pytest.raises(httpcore.ConnectError) as caught:
            await SocketBackend(early).connect_tcp("127.0.0.1", refused, timeout=5)
        return str(caught.value), time.monotonic() - start

    before = _fds()
    message, seconds = asyncio.run(error())
    assert f"[Errno {errno.ECONNREFUSED}]" in message
    assert seconds < ahead.ALONE_FOR + 1.0  # not the 5 s time-out
    assert _fds() == before - 1  # the one opened ahead is closed too


def test_one_ahead_that_gets_no_answer_gives_way_to_the_clients_own(
    no_answer: tuple[str, int], listener: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = listener.getsockname()[1]
    _resolving_to(monkeypatch, **{"127.0.0.1": no_answer})
    monkeypatch.setattr(net, "ALONE_FOR", 0.2)
    early = Ahead()
    early.open("127.0.0.1", port, 1).join(5)
    _own_connection_used(listener, early, port)


def test_a_time_out_leaves_nothing_on_the_event_loop(
    no_answer: tuple[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both connections get no answer: a connect time-out, the sockets closed and off the
    event loop before the error is raised (a descriptor number reused by the next connection
    must not be one the loop still watches)."""
    _resolving_to(monkeypatch, **{"127.0.0.1": no_answer, "silent.test": no_answer})
    monkeypatch.setattr(net, "ALONE_FOR", 0.1)
    port = no_answer[1]
    early = Ahead()
    early.open("127.0.0.1", port, 1).join(5)

    async def timed_out() -> int:
        with pytest.raises(httpcore.ConnectTimeout):
            await SocketBackend(early).connect_tcp("127.0.0.1", port, timeout=0.4)
        loop = asyncio.get_running_loop()
        selector = loop._selector  # type: ignore[attr-defined]
        return len(selector.get_map())

    before = _fds()
    watched = asyncio.run(timed_out())
    assert watched == 1  # the loop's own self-pipe only
    assert _fds() == before - 1


def test_a_short_connect_timeout_leaves_the_clients_own_its_time(
    no_answer: tuple[str, int], listener: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``--timeout`` under twice :data:`ahead.ALONE_FOR`, a connection opened ahead that
    gets no answer is waited for alone half the time-out: the client's own still connects."""
    port = listener.getsockname()[1]
    _resolving_to(monkeypatch, **{"127.0.0.1": no_answer})
    early = Ahead()
    early.open("127.0.0.1", port, 1).join(5)
    _own_connection_used(listener, early, port, timeout=0.6)


def test_out_of_descriptors_while_opening_ahead_is_no_error(
    listener: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No room for a socket in the resolver's thread: nothing opened, nothing said (the
    client's own connection says it, if it meets the same)."""
    port = listener.getsockname()[1]
    errors: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))

    def no_room(*args: object, **kwargs: object) -> socket.socket:
        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))

    early = Ahead()
    with monkeypatch.context() as patched:
        patched.setattr(ahead.socket, "socket", no_room)
        early.open("127.0.0.1", port, 2).join(5)
    assert errors == []
    assert early.take("127.0.0.1", port) is None


def test_cancelled_again_while_winding_down_leaves_no_socket_open(
    listener: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second cancellation (Ctrl-C, a deadline) while the connection attempts are being
    wound down: the connection that had won is closed, not left to the collector (a
    ResourceWarning: an error in this suite)."""
    port = listener.getsockname()[1]
    early = Ahead()
    early.open("127.0.0.1", port, 1).join(5)
    wait = asyncio.wait

    async def cancelled_in_wind_down(tasks: object, **kwargs: object) -> object:
        if not kwargs:  # the wind-down's wait: for all, without a time-out
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
        return await wait(tasks, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(net.asyncio, "wait", cancelled_in_wind_down)

    async def connect() -> None:
        with pytest.raises(asyncio.CancelledError):
            await SocketBackend(early).connect_tcp("127.0.0.1", port, timeout=5)

    before = _fds()
    asyncio.run(connect())
    gc.collect()
    assert _fds() == before - 1
    accepted, _ = listener.accept()
    with accepted:
        accepted.settimeout(5)
        assert accepted.recv(10) == b""  # closed by the client
