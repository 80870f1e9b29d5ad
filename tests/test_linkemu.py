"""The poor-line emulator of the benchmarks (bench/linkemu.py): does it emulate what it says?

Each check measures the line through the proxy, in front of the test suite's HTTP server: a
connection's cap over two seconds, the line's cap shared by four connections, the round trip
added to a request's first byte (twice on a new connection: the handshake), bytes unchanged,
a connection reset after ``drop_after`` bytes, and the command line. The whole file takes
about six seconds.
"""

from __future__ import annotations

import hashlib
import http.client
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from bench.linkemu import MIB, Link, LinkEmulator, parse_size

from tests.server import FileServer

ROOT = Path(__file__).resolve().parent.parent


def _body(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def _upstream(server: FileServer) -> tuple[str, int]:
    return "127.0.0.1", server.port


def _get(connection: http.client.HTTPConnection, path: str) -> tuple[float, float, float, bytes]:
    """(sent, head received, body received, body): times from ``time.monotonic``."""
    sent = time.monotonic()
    connection.request("GET", path)
    response = connection.getresponse()
    head = time.monotonic()
    body = response.read()
    assert response.status == 200
    return sent, head, time.monotonic(), body


def test_per_connection_cap_holds_within_ten_percent_despite_the_round_trip(
    server: FileServer,
) -> None:
    # 2 MiB at 1 MiB/s: two seconds. The 0.2 s round trip must not cut the rate: a proxy that
    # paused 0.1 s per 16 KiB chunk instead of pipelining would carry 160 KiB/s.
    server.add("/a.bin", _body(2 * MIB))
    link = Link(rtt=0.2, per_connection=1 * MIB)
    with LinkEmulator(_upstream(server), link) as line:
        connection = http.client.HTTPConnection("127.0.0.1", line.port, timeout=10)
        _sent, head, done, body = _get(connection, "/a.bin")
        connection.close()
    assert len(body) == 2 * MIB
    rate = len(body) / (done - head)
    assert 0.9 * MIB <= rate <= 1.1 * MIB, f"{rate / MIB:.3f} MiB/s through a 1 MiB/s cap"


def test_line_cap_is_shared_evenly_by_four_connections(server: FileServer) -> None:
    # Each connection may carry 1 MiB/s, the line 2 MiB/s: four connections of 1 MiB each take
    # two seconds together (not one, as four uncapped connections would), in even shares.
    for i in range(4):
        server.add(f"/{i}.bin", _body(MIB, seed=i))
    link = Link(per_connection=1 * MIB, line=2 * MIB)
    timings: dict[int, tuple[float, float, int]] = {}
    start = threading.Barrier(4)

    def fetch(i: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", line.port, timeout=10)
        start.wait()
        sent, _head, done, body = _get(connection, f"/{i}.bin")
        connection.close()
        timings[i] = (sent, done, len(body))

    with LinkEmulator(_upstream(server), link) as line:
        threads = [threading.Thread(target=fetch, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        carried = line.stats.bytes_down
    assert sorted(timings) == [0, 1, 2, 3]
    first = min(t[0] for t in timings.values())
    last = max(t[1] for t in timings.values())
    rate = carried / (last - first)
    assert 1.8 * MIB <= rate <= 2.2 * MIB, f"{rate / MIB:.3f} MiB/s through a 2 MiB/s line"
    for i, (sent, done, size) in timings.items():
        assert size == MIB
        share = size / (done - sent)
        # An even share is 0.5 MiB/s; one connection's own cap (1 MiB/s) would be twice that.
        assert 0.4 * MIB <= share <= 0.6 * MIB, f"connection {i}: {share / MIB:.3f} MiB/s"


def test_round_trip_is_added_to_a_request_s_first_byte(server: FileServer) -> None:
    server.add("/small", b"x" * 100)
    direct = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    sent, head, _done, _body = _get(direct, "/small")
    direct.close()
    assert head - sent < 0.05  # the server itself answers at once
    with LinkEmulator(_upstream(server), Link(rtt=0.3)) as line:
        connection = http.client.HTTPConnection("127.0.0.1", line.port, timeout=10)
        # A new connection: the handshake's round trip, then the request's.
        sent, head, _done, _body = _get(connection, "/small")
        assert 0.6 <= head - sent < 0.75, f"first byte after {head - sent:.3f} s"
        # The same connection, kept alive: one round trip.
        sent, head, _done, _body = _get(connection, "/small")
        assert 0.3 <= head - sent < 0.45, f"first byte after {head - sent:.3f} s"
        connection.close()
        assert line.stats.connections == 1


def test_bytes_pass_unchanged(server: FileServer) -> None:
    content = _body(5 * MIB, seed=5)
    server.add("/five.bin", content)
    with LinkEmulator(_upstream(server), Link(rtt=0.02)) as line:
        connection = http.client.HTTPConnection("127.0.0.1", line.port, timeout=10)
        _sent, _head, _done, body = _get(connection, "/five.bin")
        connection.close()
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(content).hexdigest()


def test_dropping_line_resets_each_connection_after_its_bytes(server: FileServer) -> None:
    server.add("/three.bin", _body(3 * MIB, seed=3))
    with LinkEmulator(_upstream(server), Link(drop_after=MIB)) as line:
        received = []
        for _ in range(2):  # every connection, not only the first
            with socket.create_connection(("127.0.0.1", line.port), timeout=10) as sock:
                sock.sendall(b"GET /three.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                got = 0
                with pytest.raises(ConnectionResetError):  # noqa: PT012
                    while chunk := sock.recv(65536):
                        got += len(chunk)
                received.append(got)
        drops = line.stats.drops
    assert received == [MIB, MIB]  # response head included
    assert drops == 2


def test_command_line_serves_through_the_line(server: FileServer) -> None:
    content = _body(256 * 1024, seed=9)
    server.add("/cli.bin", content)
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "linkemu.py"), "--upstream",
         f"127.0.0.1:{server.port}", "--rtt", "0.1", "--per-conn", "2M", "--line", "8M"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        match = re.match(r"linkemu: 127\.0\.0\.1:(\d+) -> ", banner)
        assert match, banner
        assert "rtt 0.10 s, 2.0 MiB/s a connection, 8.0 MiB/s in all" in banner
        connection = http.client.HTTPConnection("127.0.0.1", int(match[1]), timeout=10)
        sent, head, _done, body = _get(connection, "/cli.bin")
        connection.close()
        assert body == content
        assert head - sent >= 0.2  # handshake and request: two round trips of 0.1 s
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "linkemu: 1 connections," in err


def test_sizes_and_rates_read_as_archiver_reads_them() -> None:
    assert parse_size("2M") == 2 * MIB
    assert parse_size("500k") == 500 * 1024
    assert parse_size("1.5MiB") == 3 * MIB // 2
    assert parse_size("100") == 100
    with pytest.raises(ValueError, match="not a size or rate: '2 furlongs'"):
        parse_size("2 furlongs")
