"""Connections opened ahead: a download's first TCP handshakes, started while the run starts.

Why: between the command's start and its first request, Python imports httpx and the
archive's code, opens the catalog and plans (about 0.2 s); on a far line, the first request
then waits one more round trip for TCP's handshake (0.3 s on the emulated school line,
bench/linkemu.py). Started as soon as the manifest is read, the handshakes happen during
that start-up, and the first requests go out on connections already open.

Only what the run's first wave asks for, as far as can be told before the catalog is read:
new entries (no folder in the archive's ``media/`` yet: nothing of them held, nothing to
refresh), in the manifest's order, up to ``--jobs`` connections in all and ``--per-host`` a
host, one an entry, to the host each entry is first asked (its PeerTube instance, whose API
describes it, else its link's host, mirrors applied). An instance whose answer is cached (a
day) is not asked: the file's host is then the one used, mostly the instance itself (PeerTube
serves its files there), but a connection to an instance that keeps its files elsewhere
(object storage) goes unused. None at all when a proxy is set in the
environment (the connections go through it, not to the hosts), for a name that is not ASCII
(httpx spells it otherwise), when another run holds the archive's lock (this one will exit 3;
read without touching the lock), or when ``--max-time`` is under :data:`FRESH_FOR`. An
up-to-date archive opens none. A run that stops before its first request all the same (a
catalog it cannot open, a disk it cannot write) closes them unused.

Each host's name is resolved in a thread of its own (a slow resolver holds no other host
back), then its connections are started, non-blocking, to its first IPv4 address if it has
one: the kernel does the handshake. The client takes one when it connects to that host and
port (:mod:`.net`) and waits for it alone until :data:`ALONE_FOR` after it started (or half
its connect time-out); then, or at once if it failed, the client's own connection starts
beside it, and the first connected wins: a name whose first IPv4 address gets no answer while
another works is reached after that second, not after Happy Eyeballs' 250 ms. When there
is none (the name not yet resolved: no more are then opened for that host; or all taken),
the client connects as it would have. A connection that failed, that the server closed, or
that waited longer than :data:`FRESH_FOR`, is never used, and the client's own errors are
the ones said. What is not taken is closed when the command ends.
"""

from __future__ import annotations

import errno
import os
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ..archive_lock import LOCK_NAME, lock_holder
from ..entry import Entry
from ..urls import DEFAULT_PORTS
from .settings import DownloadSettings

__all__ = ["AHEAD", "ALONE_FOR", "FRESH_FOR", "Ahead", "Early", "first_hosts", "open_ahead"]

# A connection opened ahead and not used within this long is not used at all: a server drops
# a connection that sends no request (nginx after ``client_header_timeout``, 60 s by default).
# A run that may end sooner (``--max-time``) opens none.
FRESH_FOR = 10.0
# How long a connection opened ahead is waited for alone, from its start, before the client's
# own starts beside it: TCP's first retransmission of a SYN that got no answer (RFC 6298: 1 s).
# Its round trip is the line's, whichever starts it: starting another sooner would only open
# a second connection to the same address on a line slower than that (a server seeing one it
# will not use), and win nothing.
ALONE_FOR = 1.0
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy")

Origin = tuple[str, int]  # (host, port), as httpcore asks the backend to connect


@dataclass
class Early:
    """A socket whose connect was started ahead, and when."""

    sock: socket.socket
    started: float = field(default_factory=time.monotonic)


class Ahead:
    """The connections opened ahead, by host and port, until the client takes them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[Origin, list[Early]] = {}
        self._asked: set[Origin] = set()  # taken with none left: open no more for it
        self._closed = False
        # Bumped by close() and reopen(): a name resolved after its run ended opens nothing
        # in the next one (several downloads in one process).
        self._generation = 0

    def open(self, host: str, port: int, count: int) -> threading.Thread:
        """Resolve ``host`` and start ``count`` connections to it, in a thread of its own (a
        daemon: a name still resolving when the command ends holds nothing up)."""
        with self._lock:
            generation = self._generation
        thread = threading.Thread(
            target=self._open,
            args=(host, port, count, generation),
            name=f"ahead:{host}",
            daemon=True,
        )
        thread.start()
        return thread

    def _open(self, host: str, port: int, count: int, generation: int) -> None:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            return  # the client's own connection will say why
        if not infos:
            return
        # IPv4 where the name has it: a network whose IPv6 is broken (no answer at all) would
        # otherwise hold the first connections ALONE_FOR before the client's own, raced as
        # Happy Eyeballs races a name's addresses, reaches the host.
        ipv4 = [info for info in infos if info[0] == socket.AF_INET]
        family, kind, proto, _, address = (ipv4 or infos)[0]
        with self._lock:
            if self._closed or generation != self._generation or (host, port) in self._asked:
                return
            for _ in range(count):
                try:
                    sock = socket.socket(family, kind, proto)
                except OSError:  # out of descriptors: the client will say so, if it is
                    return
                try:
                    sock.setblocking(False)
                    started = sock.connect_ex(address) in (0, errno.EINPROGRESS)
                except OSError:
                    started = False
                if not started:
                    sock.close()
                    return
                self._waiting.setdefault((host, port), []).append(Early(sock))

    def take(self, host: str, port: int) -> Early | None:
        """A connection started ahead to ``host`` and ``port``, or None: then none will be."""
        with self._lock:
            waiting = self._waiting.get((host, port))
            if waiting:
                return waiting.pop(0)
            self._asked.add((host, port))
            return None

    def close(self) -> None:
        """Close every connection not taken, and open no more."""
        with self._lock:
            self._closed = True
            self._generation += 1
            for waiting in self._waiting.values():
                for early in waiting:
                    early.sock.close()
            self._waiting.clear()

    def reopen(self) -> None:
        """Accept connections again (a second run in the same process)."""
        with self._lock:
            self._closed = False
            self._generation += 1
            self._asked.clear()


# The process's connections opened ahead: set by the download command, taken by :mod:`.net`.
AHEAD = Ahead()


def _proxied() -> bool:
    return any(os.environ.get(name) or os.environ.get(name.upper()) for name in _PROXY_VARIABLES)


def _origin(url: str) -> Origin | None:
    """The host and port httpcore connects to for ``url``, or None if not surely that (an
    IPv6 literal: httpx keeps its case, urlsplit does not)."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not host or not host.isascii() or ":" in host:
        return None
    return host, port if port is not None else DEFAULT_PORTS[parts.scheme]


def _first_url(entry: Entry, settings: DownloadSettings) -> str | None:
    first = entry.peertube.instance if entry.peertube is not None else entry.video.url
    return settings.request_url(first) if first else None


def first_hosts(
    entries: Iterable[Entry], archive_root: Path, settings: DownloadSettings
) -> dict[Origin, int]:
    """How many connections the run's first wave opens to each host, as far as the manifest
    and the archive's folders tell before anything is asked (see the module's docstring)."""
    if _proxied() or (settings.max_time is not None and settings.max_time < FRESH_FOR):
        return {}
    if lock_holder(archive_root / LOCK_NAME) is not None:
        return {}  # the run will exit 3 (a glance: the lock itself is not touched)
    # The item folders, read once (an up-to-date archive of 10,000 videos: 5 ms, against
    # 95 ms for a stat and a URL each); their names compared without case, as on a FAT key
    # (a name that only differs by case counts as begun: nothing opened for it).
    try:
        begun = {name.casefold() for name in os.listdir(archive_root / "media")}
    except OSError:  # no archive yet, or no media: every entry is new
        begun = set()
    counts: dict[Origin, int] = {}
    total = 0
    for entry in entries:
        if total >= settings.jobs:
            break
        if entry.id.casefold() in begun:
            continue  # held, or begun: the plan decides, after the catalog
        url = _first_url(entry, settings)
        origin = _origin(url) if url else None
        if origin is None or counts.get(origin, 0) >= settings.per_host:
            continue
        counts[origin] = counts.get(origin, 0) + 1
        total += 1
    return counts


def open_ahead(
    entries: Iterable[Entry],
    archive_root: Path,
    settings: DownloadSettings,
    ahead: Ahead = AHEAD,
) -> Mapping[Origin, int]:
    """Start the first wave's connections (:func:`first_hosts`); what was asked for."""
    wanted = first_hosts(entries, archive_root, settings)
    ahead.reopen()
    for (host, port), count in wanted.items():
        ahead.open(host, port, count)
    return wanted
