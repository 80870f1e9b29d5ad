"""A poor line between a client and an HTTP server on 127.0.0.1: a TCP proxy that delays and caps.

``tc netem`` is not available on the project's machines, and a benchmark on loopback, where one
connection fills any line, cannot show what a school's line does to a download. This proxy
stands between the tools and a local server and makes the line slow in the ways that can be
emulated honestly above TCP:

- **Round-trip time.** Every byte, in each direction, reaches the other side ``rtt / 2`` after
  it left, through a delay queue: data already in flight keeps flowing while later data waits,
  so the delay costs latency (a request's first byte comes one RTT later), not throughput.
- **TCP's handshake.** A new connection's first bytes towards the server wait one more RTT, as
  a client's request waits for the SYN/SYN-ACK exchange: a new connection's first answer byte
  comes 2 × RTT after the connect, a request on a kept-alive connection's 1 × RTT after it.
- **A window.** At most ``window`` bytes of one direction of one connection are in flight; a
  byte's room is given back ``rtt / 2`` after it is delivered (the acknowledgement's way back).
  An uncapped connection thus carries at most ``window / rtt`` bytes a second, as TCP does.
- **A cap per connection** (a token bucket on what the server sends down one connection): what
  PeerTube's nginx template does with ``limit_rate`` on ``/download``, and what a lossy,
  long line leaves a single TCP connection.
- **A cap for the whole line**, shared by every connection (a second token bucket, taken after
  the connection's own): the school's line. Connections get the line in turns of one chunk
  (16 KiB), so several connections share it evenly.
- **A dropping line.** With ``drop_after``, a connection is reset (RST, both sides) once it has
  carried that many bytes from the server, response heads included: every connection, each
  time, as the test suite's fault server does with ``drop_after``.

What it does **not** emulate, so numbers measured through it are not those of a real line:
no packet loss, retransmission, reordering or jitter; no TCP congestion control (no slow start,
no window collapse after a loss; the per-connection cap stands in for what loss leaves one
connection, as a fixed number); no bufferbloat beyond the delay queue; the caps apply to the
server-to-client direction only (requests are delayed, not capped); the kernel's loopback
buffers on either side of the proxy add a little buffering of their own. A connection's rate
is exact over a second or more; over a few milliseconds it comes in 16 KiB chunks.

From Python, as a context manager (the proxy runs in a thread of its own)::

    with LinkEmulator(("127.0.0.1", 8000), Link(rtt=0.3, per_connection=2 * MIB,
                                                line=8 * MIB)) as line:
        fetch(line.url("/video.mp4"))
        print(line.stats.bytes_down, line.stats.connections)

or inside a running event loop with ``await emulator.start()`` and ``await emulator.aclose()``.
From the command line (rates and sizes as archiver's ``--rate-limit``: ``2M`` is 2 MiB)::

    python bench/linkemu.py --upstream 127.0.0.1:8000 --rtt 0.3 --per-conn 2M --line 8M

This module uses the standard library only, so that the tests can import it as ``bench.linkemu``
and a benchmark can copy it anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import math
import re
import signal
import socket
import struct
import sys
import termios
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType

KIB = 1024
MIB = 1024 * KIB
CHUNK = 16 * KIB  # read and shaped at most this much at a time: the line's granularity
DEFAULT_WINDOW = 4 * MIB  # Linux's default tcp_rmem maximum is 6 MiB; 4 MiB / 0.3 s = 13 MiB/s


@dataclass(frozen=True)
class Link:
    """What the line does. Rates are bytes a second, ``None`` for no cap.

    ``per_connection`` and ``line`` cap what the server sends (down); ``drop_after`` resets a
    connection after that many bytes down; ``handshake`` charges a new connection one RTT.
    """

    rtt: float = 0.0
    per_connection: float | None = None
    line: float | None = None
    drop_after: int | None = None
    window: int = DEFAULT_WINDOW
    handshake: bool = True

    def __post_init__(self) -> None:
        if self.rtt < 0:
            raise ValueError(f"rtt must be 0 or more seconds, got {self.rtt}")
        for name in ("per_connection", "line"):
            rate = getattr(self, name)
            if rate is not None and rate <= 0:
                raise ValueError(f"{name} must be a positive rate in bytes/s, got {rate}")
        if self.drop_after is not None and self.drop_after <= 0:
            raise ValueError(f"drop_after must be a positive byte count, got {self.drop_after}")
        if self.window < CHUNK:
            raise ValueError(f"window must be at least {CHUNK} bytes, got {self.window}")

    def describe(self) -> str:
        """One line for a report: ``rtt 0.30 s, 2.0 MiB/s a connection, 8.0 MiB/s in all``."""
        parts = [f"rtt {self.rtt:.2f} s"]
        if self.per_connection:
            parts.append(f"{self.per_connection / MIB:.1f} MiB/s a connection")
        if self.line:
            parts.append(f"{self.line / MIB:.1f} MiB/s in all")
        if self.drop_after:
            parts.append(f"reset every {self.drop_after / MIB:g} MiB")
        return ", ".join(parts)


@dataclass
class Stats:
    """What crossed the line since the emulator started (or since :meth:`LinkEmulator.reset`).

    Updated in the emulator's thread; plain integers, safe to read from another thread.
    """

    connections: int = 0
    bytes_down: int = 0  # delivered to clients, response heads included
    bytes_up: int = 0  # delivered to the server
    drops: int = 0  # connections reset by ``drop_after``
    per_connection_down: list[int] = field(default_factory=list)
    # The timeline, on ``time.monotonic()``'s clock (the event loop's): when each connection
    # was accepted, and when the last byte was delivered to a client (0.0: none yet). With
    # the time a command started and ended, they say how long its start-up and exit took.
    opened: list[float] = field(default_factory=list)
    last_down: float = 0.0


class TokenBucket:
    """A rate cap shared by whoever calls :meth:`take`, by reservation on a timeline.

    Each ``take(n)`` books the next ``n / rate`` seconds of the bucket and sleeps until they
    end, so callers are served in the order they asked, the total never exceeds ``rate``
    (plus ``burst`` after an idle spell), and no caller can starve another.
    """

    def __init__(self, rate: float, burst: int = CHUNK) -> None:
        self.rate = rate
        self.burst = burst
        self._booked_until = -math.inf

    async def take(self, n: int) -> None:
        now = asyncio.get_running_loop().time()
        start = max(self._booked_until, now - self.burst / self.rate)
        self._booked_until = start + n / self.rate
        wait = self._booked_until - now
        if wait > 0:
            await asyncio.sleep(wait)


class _Dropped(Exception):
    """The line dropped this connection (``drop_after``): reset both sides."""


class _Direction:
    """One direction of one connection: read, shape, hold ``delay`` seconds, deliver.

    :meth:`pump` reads chunks as the window and the buckets allow and queues each with the time
    it is due; :meth:`deliver` writes each when it is due. The two run at once, so the delay
    is a pipeline (latency), not a pause between chunks (which would cut throughput).
    """

    def __init__(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        *,
        delay: float,
        hold_until: float,
        buckets: tuple[TokenBucket, ...],
        window: int,
        drop_after: int | None,
        count: _Counter,
    ) -> None:
        self.source = source
        self.sink = sink
        self.delay = delay
        self.hold_until = hold_until
        self.buckets = buckets
        self.window = window
        self.drop_after = drop_after
        self.count = count
        self.queue: deque[tuple[float, bytes | None]] = deque()
        self.queued = asyncio.Event()
        self.in_flight = 0
        self.room = asyncio.Event()
        self.room.set()
        self.delivered = 0

    async def pump(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while self.in_flight + CHUNK > self.window:
                self.room.clear()
                await self.room.wait()
            data = await self.source.read(CHUNK)
            for bucket in self.buckets:
                await bucket.take(len(data))
            due = max(loop.time() + self.delay, self.hold_until)
            self.queue.append((due, data or None))
            self.queued.set()
            if not data:
                return
            self.in_flight += len(data)

    async def deliver(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self.queue:
                self.queued.clear()
                await self.queued.wait()
            due, data = self.queue.popleft()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if data is None:
                if self.sink.can_write_eof():
                    self.sink.write_eof()
                return
            cut = self.drop_after is not None and self.delivered + len(data) >= self.drop_after
            if cut:
                assert self.drop_after is not None
                data = data[: self.drop_after - self.delivered]
            self.sink.write(data)
            await self.sink.drain()
            self.delivered += len(data)
            self.count(len(data))
            if cut:
                # An RST throws away what the kernel has not sent yet: let it go out first,
                # so that the client reads exactly ``drop_after`` bytes, then the reset.
                await _sent(self.sink)
                raise _Dropped
            # The room comes back when the acknowledgement would: half a round trip later.
            loop.call_later(self.delay, self._release, len(data))

    def _release(self, n: int) -> None:
        self.in_flight -= n
        self.room.set()


class _Counter:
    """Adds delivered bytes to the emulator's stats (and one connection's tally)."""

    def __init__(self, stats: Stats, *, down: bool, index: int) -> None:
        self.stats = stats
        self.down = down
        self.index = index

    def __call__(self, n: int) -> None:
        if self.down:
            self.stats.bytes_down += n
            self.stats.per_connection_down[self.index] += n
            self.stats.last_down = time.monotonic()
        else:
            self.stats.bytes_up += n


class LinkEmulator:
    """A TCP proxy on ``host``:``port`` (0: a free port) to ``upstream``, through ``link``."""

    def __init__(
        self,
        upstream: tuple[str, int],
        link: Link,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.upstream = upstream
        self.link = link
        self.host = host
        self.port = port
        self.stats = Stats()
        self._line = TokenBucket(link.line) if link.line else None
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def url(self, path: str = "/") -> str:
        """``http://127.0.0.1:PORT/path``: the server's address, seen through the line."""
        return f"http://{self.host}:{self.port}/{path.lstrip('/')}"

    def reset(self) -> Stats:
        """Start counting afresh; the counts so far."""
        before, self.stats = self.stats, Stats()
        return before

    # -- in a running event loop ---------------------------------------------------------------

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def aclose(self) -> None:
        """Stop listening and cut every connection still open."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        await asyncio.sleep(0)  # a connection accepted just now: let its handler start
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    # -- from synchronous code: the proxy in a thread of its own --------------------------------

    def __enter__(self) -> LinkEmulator:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="linkemu", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.start(), loop).result(timeout=10)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        loop, thread = self._loop, self._thread
        assert loop is not None
        assert thread is not None
        asyncio.run_coroutine_threadsafe(self.aclose(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())  # "localhost" was resolved there
        loop.close()

    # -- one connection --------------------------------------------------------------------------

    async def _accept(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._carry(client_in, client_out)
        except asyncio.CancelledError:
            # Only aclose() cancels a handler. End quietly: Python 3.11's stream callback
            # calls exception() on the task, which raises for a cancelled one.
            pass
        finally:
            self._handlers.discard(task)
            if not client_out.transport.is_closing():
                client_out.transport.abort()  # cancelled while reaching the server

    async def _carry(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        loop = asyncio.get_running_loop()
        accepted = loop.time()
        stats = self.stats
        index = len(stats.per_connection_down)
        stats.connections += 1
        stats.per_connection_down.append(0)
        stats.opened.append(accepted)
        try:
            server_in, server_out = await asyncio.open_connection(*self.upstream)
        except OSError:
            _reset(client_out)
            return
        link = self.link
        half = link.rtt / 2
        buckets: list[TokenBucket] = []
        if link.per_connection:
            buckets.append(TokenBucket(link.per_connection))
        if self._line is not None:
            buckets.append(self._line)
        up = _Direction(
            client_in,
            server_out,
            delay=half,
            hold_until=accepted + link.rtt + half if link.handshake else 0.0,
            buckets=(),
            window=link.window,
            drop_after=None,
            count=_Counter(stats, down=False, index=index),
        )
        down = _Direction(
            server_in,
            client_out,
            delay=half,
            hold_until=0.0,
            buckets=tuple(buckets),
            window=link.window,
            drop_after=link.drop_after,
            count=_Counter(stats, down=True, index=index),
        )
        tasks = [
            asyncio.create_task(step()) for step in (up.pump, up.deliver, down.pump, down.deliver)
        ]
        broken = True  # unless both directions end cleanly
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            errors = [t.exception() for t in done if not t.cancelled()]
            broken = any(e is not None for e in errors)
            if any(isinstance(e, _Dropped) for e in errors):
                stats.drops += 1
        finally:
            # Close both sides before any await: a cancellation during one must not leave
            # the other open.
            for task in tasks:
                task.cancel()
            for writer in (client_out, server_out):
                if broken:
                    _reset(writer)
                else:
                    writer.close()
            await asyncio.gather(*tasks, return_exceptions=True)
            for writer in (client_out, server_out):
                with contextlib.suppress(OSError):
                    await writer.wait_closed()


async def _sent(writer: asyncio.StreamWriter, *, patience: float = 10.0) -> None:
    """Wait until the kernel has sent (and the peer acknowledged) all written to ``writer``,
    or ``patience`` seconds (a client that stopped reading)."""
    sock = writer.get_extra_info("socket")
    if sock is None:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    while loop.time() < deadline:
        try:
            queued = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))
        except OSError:
            return
        if queued[0] == 0:
            return
        await asyncio.sleep(0.005)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST, as a line that drops does: the peer reads ECONNRESET, not an end."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


# -- command line --------------------------------------------------------------------------------

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)(?:i?B)?\s*$")


def parse_size(text: str) -> int:
    """``2M`` → 2097152, ``500k`` → 512000, ``1.5M``, ``100`` (1k = 1024, as ``--rate-limit``)."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"not a size or rate: {text!r} (examples: 500k, 2M, 1G)")
    number, unit = match.groups()
    return int(float(number) * 1024 ** " KMG".index(unit.upper() or " "))


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="A poor line in front of a local server: a TCP proxy that adds a round "
        "trip and caps each connection and the whole line (see this file's docstring)."
    )
    parser.add_argument("--upstream", type=_address, required=True, help="the server, HOST:PORT")
    parser.add_argument(
        "--listen",
        type=_address,
        default=("127.0.0.1", 0),
        help="where to listen (default 127.0.0.1:0, a free port)",
    )
    parser.add_argument("--rtt", type=float, default=0.0, help="added round trip, seconds")
    parser.add_argument("--per-conn", type=_size, help="cap of one connection, bytes/s (2M)")
    parser.add_argument("--line", type=_size, help="cap of all connections together (8M)")
    parser.add_argument("--drop-after", type=_size, help="reset each connection after this much")
    parser.add_argument(
        "--window",
        type=_size,
        default=DEFAULT_WINDOW,
        help="bytes in flight per connection and direction (default 4M)",
    )
    parser.add_argument(
        "--no-handshake", action="store_true", help="do not charge a new connection a round trip"
    )
    args = parser.parse_args(argv)
    try:
        link = Link(
            rtt=args.rtt,
            per_connection=args.per_conn,
            line=args.line,
            drop_after=args.drop_after,
            window=args.window,
            handshake=not args.no_handshake,
        )
    except ValueError as exc:
        parser.error(str(exc))
    asyncio.run(_serve(args.upstream, link, args.listen))


async def _serve(upstream: tuple[str, int], link: Link, listen: tuple[str, int]) -> None:
    emulator = LinkEmulator(upstream, link, host=listen[0], port=listen[1])
    await emulator.start()
    print(
        f"linkemu: {emulator.host}:{emulator.port} -> {upstream[0]}:{upstream[1]} "
        f"({link.describe()}); Ctrl-C to stop",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await emulator.aclose()
    s = emulator.stats
    print(
        f"linkemu: {s.connections} connections, {s.bytes_down} bytes down, {s.bytes_up} up, "
        f"{s.drops} dropped",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
