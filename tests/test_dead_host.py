"""A dead line costs seconds, and is said once: hosts given up on for the run (fetch/hosts.py).

Real sockets only: a closed port on 127.0.0.1 refuses connections; a listener that resets
each connection after reading the request stands for a host whose firewall or load balancer
drops what it accepted. Every sync here runs with the real retry settings (10 retries,
back-off up to a minute), which the old code spent in full on every file.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import bagit
import httpx
import pytest

from archiver.fetch.hosts import FAILURES_BEFORE_DOWN, HostDown, Hosts, track

from .conftest import run_cli, sha256, tagged
from .peertube import FakeInstance
from .server import FileServer

UUIDS = [f"{i:08x}-1111-4222-8333-444444444444" for i in range(1, 11)]
UPSTREAM = "http://tube.example.org"  # what the fiches say; --mirror says where it is today


@pytest.fixture
def clip(half_second_clip: bytes) -> bytes:
    return half_second_clip


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on: a connection to it is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def listening(answer: Callable[[socket.socket], None]) -> Iterator[int]:
    """A port on 127.0.0.1 whose every connection ``answer`` deals with, in a thread."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.2)
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            held.append(connection)
            answer(connection)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        listener.close()


def _reset(connection: socket.socket) -> None:
    with contextlib.suppress(OSError):
        connection.recv(65536)
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    connection.close()


def resetting_host() -> contextlib.AbstractContextManager[int]:
    """A port that accepts each connection, reads the request, and resets it (RST) with no
    byte of an answer."""
    return listening(_reset)


def silent_host() -> contextlib.AbstractContextManager[int]:
    """A port that accepts each connection and never answers: a proxy in front of a dead
    line, a hung server."""
    return listening(lambda connection: None)


run = run_cli


def fiche(folder: Path, number: int, base: str = UPSTREAM) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"fiche-{number:02d}.md").write_text(
        f"---\ntitle: Vidéo {number}\narea: Domaine 1\n"
        f"videoDLHref: {base}/videos/{UUIDS[number - 1]}-480.mp4\n---\n\n## Script\n\nTexte.\n\n## Crédits\n\n"
        "- **Licence** : [CC BY 4.0](https://creativecommons.org/licenses/by/4.0/)\n",
        encoding="utf-8",
    )


def serve_videos(server: FileServer, clip: bytes, numbers: range) -> None:
    for number in numbers:
        path = f"/videos/{UUIDS[number - 1]}-480.mp4"
        server.add(path, tagged(clip, number.to_bytes(2, "big")))


def sync(tmp_path: Path, *extra: str) -> tuple[int, str, str, float]:
    """A sync with the real retry settings; how long it took."""
    start = time.monotonic()
    code, out, err = run(
        "sync", tmp_path / "fiches", "--archive", tmp_path / "archive", "--kit",
        tmp_path / "kit", *extra,
    )  # fmt: skip
    return code, out, err, time.monotonic() - start


def kit_videos(tmp_path: Path) -> set[str]:
    """The sha256 of every video in the kit, wherever the kit names it."""
    return {sha256(p.read_bytes()) for p in (tmp_path / "kit").rglob("*.mp4")}


def served(clip: bytes, numbers: range) -> set[str]:
    return {sha256(tagged(clip, number.to_bytes(2, "big"))) for number in numbers}


def two_held_then_ten_on_a_dead_host(server: FileServer, clip: bytes, tmp_path: Path) -> str:
    """Two videos held from yesterday, when the line was up; today ten fiches, and a host
    that refuses every connection (its ``host:port``, returned)."""
    serve_videos(server, clip, range(1, 3))
    for number in (1, 2):
        fiche(tmp_path / "fiches", number)
    first = sync(tmp_path, "-q", "--mirror", f"{UPSTREAM}={server.url('')}")
    assert first[:3] == (0, "", ""), first[2]
    for number in range(3, 11):
        fiche(tmp_path / "fiches", number)
    return f"127.0.0.1:{closed_port()}"


def test_ten_videos_on_a_refusing_host_fail_in_seconds_named_once_kit_from_the_archive(
    server: FileServer, clip: bytes, tmp_path: Path
) -> None:
    dead = two_held_then_ten_on_a_dead_host(server, clip, tmp_path)
    code, out, err, seconds = sync(
        tmp_path, "-q", "--mirror", f"{UPSTREAM}=http://{dead}", "--refresh-after", "0"
    )
    assert seconds < 30, f"a refusing host took {seconds:.1f} s"
    assert code == 1
    assert out == ""
    assert err.count(dead) == 1, err
    assert err == (
        f"Error: {dead} unreachable (connection refused, {FAILURES_BEFORE_DOWN} connections in"
        " a row): 10 videos not checked; the kit is built from what the archive holds\n"
    )
    assert kit_videos(tmp_path) == served(clip, range(1, 3))
    bagit.Bag(str(tmp_path / "kit")).validate()
    # Each file stays named in the archive's record of the run, for `archiver status`.
    status = run("status", "--archive", tmp_path / "archive")[1]
    assert status.count("not tried again this run") == 10


def test_fit_on_a_dead_line_is_no_bad_input_the_kit_is_built_from_the_archive(
    server: FileServer, clip: bytes, tmp_path: Path
) -> None:
    dead = two_held_then_ten_on_a_dead_host(server, clip, tmp_path)
    # No size from anywhere for the eight new videos: their host is down, not the input bad.
    code, _, err, seconds = sync(
        tmp_path, "-q", "--mirror", f"{UPSTREAM}=http://{dead}", "--fit", "100M"
    )
    assert seconds < 30
    assert code == 1
    assert err == (
        f"Error: {dead} unreachable (connection refused, {FAILURES_BEFORE_DOWN} connections in"
        " a row): 8 videos not checked; the kit is built from what the archive holds\n"
    )
    assert kit_videos(tmp_path) == served(clip, range(1, 3))


def test_a_host_that_resets_each_connection_is_given_up_on_in_seconds(
    server: FileServer, clip: bytes, tmp_path: Path
) -> None:
    for number in range(1, 6):
        fiche(tmp_path / "fiches", number)
    with resetting_host() as port:
        code, _, err, seconds = sync(
            tmp_path, "-q", "--mirror", f"{UPSTREAM}=http://127.0.0.1:{port}"
        )
    assert seconds < 30, f"a resetting host took {seconds:.1f} s"
    assert code == 1
    assert err.count(f"127.0.0.1:{port}") == 1, err
    assert err.startswith(f"Error: 127.0.0.1:{port} unreachable (connection ")
    assert err.endswith(": 5 videos not checked; the kit is built from what the archive holds\n")
    bagit.Bag(str(tmp_path / "kit")).validate()


def test_a_working_host_keeps_working_while_another_is_dead(
    server: FileServer, clip: bytes, tmp_path: Path
) -> None:
    serve_videos(server, clip, range(1, 4))
    for number in range(1, 4):
        fiche(tmp_path / "fiches", number, base=server.url("").rstrip("/"))
    dead = f"127.0.0.1:{closed_port()}"
    for number in range(4, 10):
        fiche(tmp_path / "fiches", number, base=f"http://{dead}")
    code, _, err, seconds = sync(tmp_path, "-q")
    assert seconds < 30
    assert code == 1
    assert err.count(dead) == 1, err
    assert ": 6 videos not checked;" in err
    assert kit_videos(tmp_path) == served(clip, range(1, 4))


def test_only_failures_in_a_row_count_and_a_down_host_is_not_asked_again() -> None:
    """Two refusals, an answer, two refusals: not down (not in a row); a third in a row is."""
    hosts = Hosts()
    refused = httpx.ConnectError("All connection attempts failed")
    refused.__cause__ = ConnectionRefusedError(111, "Connection refused")
    for _ in range(FAILURES_BEFORE_DOWN - 1):
        assert hosts.failed("tube.example.org", refused) is None
    hosts.answered("tube.example.org")
    for _ in range(FAILURES_BEFORE_DOWN - 1):
        assert hosts.failed("tube.example.org", refused) is None
    down = hosts.failed("tube.example.org", refused)
    assert down is not None
    assert down.reason == (
        f"tube.example.org unreachable (connection refused, {FAILURES_BEFORE_DOWN}"
        " connections in a row)"
    )
    assert hosts.down("https://tube.example.org/w/x") == down
    assert hosts.down("https://tube.example.org:8443/w/x") is None  # another server


def test_a_down_host_gets_no_connection_and_its_retries_wake_up() -> None:
    async def scenario() -> tuple[float, float]:
        hosts = Hosts()
        dead = f"http://127.0.0.1:{closed_port()}/x"
        async with track(httpx.AsyncClient(), hosts) as client:
            start = time.monotonic()
            waiting = asyncio.create_task(hosts.pause(dead, 60.0))  # a retry's back-off
            for _ in range(FAILURES_BEFORE_DOWN - 1):
                with pytest.raises(httpx.ConnectError) as caught:
                    await client.get(dead)
                assert not isinstance(caught.value, HostDown)
            with pytest.raises(HostDown):  # the third in a row: down now
                await client.get(dead)
            await waiting
            woke = time.monotonic() - start
            start = time.monotonic()
            with pytest.raises(HostDown):  # refused by archiver, no socket opened
                await client.get(dead)
        return woke, time.monotonic() - start

    woke, refused = asyncio.run(scenario())
    assert woke < 5  # not the 60 s back-off
    assert refused < 0.5


def test_proxies_from_the_environment_are_tracked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx makes a proxy's transport itself: it is wrapped all the same (this fails if a
    release of httpx keeps them elsewhere)."""
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)

    async def scenario() -> Hosts:
        hosts = Hosts()
        async with track(httpx.AsyncClient(trust_env=True), hosts) as client:
            for _ in range(FAILURES_BEFORE_DOWN):
                with contextlib.suppress(httpx.ConnectError, httpx.ProxyError):
                    await client.get("http://tube.example.org/v.mp4")
        return hosts

    hosts = asyncio.run(scenario())
    assert hosts.down("http://tube.example.org/v.mp4") is not None


def test_a_dead_peertube_instance_is_named_once_with_its_previews_and_captions(
    server: FileServer, tmp_path: Path
) -> None:
    tube = FakeInstance(server, api_window=2.0)
    videos = [tube.publish(heights=(360,)) for _ in range(3)]
    folder = tmp_path / "fiches"
    folder.mkdir()
    for video in videos:
        (folder / f"{video.uuid}.md").write_text(video.fiche(height=360), encoding="utf-8")
    assert sync(tmp_path, "-q")[0] == 0  # held, with previews; the API's answers kept
    dead = f"127.0.0.1:{closed_port()}"
    # Everything due: the API, the videos, their previews and captions, all on a dead host.
    code, _, err, seconds = sync(
        tmp_path, "--mirror", f"{tube.url}=http://{dead}", "--refresh-after", "0"
    )
    assert seconds < 30
    assert code == 1
    assert err.count(dead) == 1, err
    assert err.startswith(
        f"Error: {dead} unreachable (connection refused, {FAILURES_BEFORE_DOWN} connections in"
        " a row): 3 videos not checked; the kit is built from what the archive holds\n"
    )
    assert "Warning" not in err
    assert len(kit_videos(tmp_path)) == 3


def test_a_dead_instance_asked_for_the_first_time_is_named_once_with_no_warning_per_video(
    server: FileServer, tmp_path: Path
) -> None:
    # A first sync on a dead line (the bundled collection offline): nothing cached, so every
    # video's API question fails too. The host is said once, not once more per video in a
    # warning "the instance's API cannot be reached".
    tube = FakeInstance(server)
    videos = [tube.publish(heights=(360,)) for _ in range(3)]
    dead = f"http://127.0.0.1:{closed_port()}"
    folder = tmp_path / "fiches"
    folder.mkdir()
    for video in videos:
        fiche = video.fiche(height=360).replace(tube.url, dead)
        (folder / f"{video.uuid}.md").write_text(fiche, encoding="utf-8")
    code, _, err, seconds = sync(tmp_path)
    assert (code, seconds < 30) == (1, True)
    assert "Warning" not in err, err
    assert err.count(dead.removeprefix("http://")) == 1, err
    assert "3 videos not checked" in err


def test_a_host_that_accepts_and_never_answers_is_given_up_after_three_timeouts(
    server: FileServer, clip: bytes, tmp_path: Path
) -> None:
    # Before, each file spent its whole retry budget on it ("stalled: no data"), tens of
    # minutes with the lock held and nothing printed.
    for number in range(1, 11):
        fiche(tmp_path / "fiches", number)
    with silent_host() as port:
        code, _, err, seconds = sync(
            tmp_path, "-q", "--timeout", "2", "--mirror", f"{UPSTREAM}=http://127.0.0.1:{port}"
        )
    assert seconds < 30, f"a silent host took {seconds:.1f} s"
    assert code == 1
    assert err.startswith(f"Error: 127.0.0.1:{port} unreachable (no answer within --timeout, ")
    assert err.count(f"127.0.0.1:{port}") == 1, err
    assert err.endswith(": 10 videos not checked; the kit is built from what the archive holds\n")
