"""One event loop per run, and nothing on it that blocks: hashing, writing, fsync, the
catalog's transactions, the TLS context and FFmpeg's reader all run in worker threads.

The run's loop is made by an event loop policy that turns asyncio's debug mode on, with
``slow_callback_duration`` set to the issue's bound: the loop then logs ``Executing <Task …>
took 0.123 seconds`` for every callback that held it longer. While one callback holds the
loop, every other download, the progress bar and the time-outs wait.

The loopback server runs in a thread of this process, so its work competes for the GIL with
the loop's: the tests ask it only for answers it sends without copying the file (a whole
file, or a short range), lest its copies be counted against the loop.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from archiver.archive import Archive, PartialState
from archiver.entry import Entry, PeerTubeRef
from archiver.fetch import DownloadReport, DownloadSettings, Status, download
from archiver.fetch.transfer import Sink
from archiver.manifest import Manifest

from .conftest import content_of, make_entry, sha256
from .server import FileServer, Served

MIB = 1024 * 1024
BIG = 512 * MIB
# The bound: no callback holds the loop longer than this. On the loop, measured
# here: a resume's hashing 550 ms, the segments' checksums 540 ms, the final fsync 260 ms.
SLOW_CALLBACK = 0.05
# A USB key: every write, rename, unlink and fsync takes this long.
SLOW_DISK = 2 * SLOW_CALLBACK
# PeerTube publishes one sha256 per HLS segment, a few MiB each.
SEGMENT = 4 * MIB
FILLER_BLOCK = 16 * MIB
SETTINGS = DownloadSettings(retries=2, backoff_base=0.01, backoff_max=0.05, timeout=30.0)
UUID = "0e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b"
NAME = f"{UUID}-480-fragmented.mp4"
VIDEO_PATH = f"/download/streaming-playlists/hls/videos/{NAME}"


class DebugLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """Every new event loop in debug mode, logging callbacks slower than ``threshold``; and a
    count of the loops made."""

    def __init__(self, threshold: float) -> None:
        super().__init__()
        self.threshold = threshold
        self.loops: list[asyncio.AbstractEventLoop] = []

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        loop = super().new_event_loop()
        loop.set_debug(True)
        loop.slow_callback_duration = self.threshold
        self.loops.append(loop)
        return loop


@pytest.fixture
def debug_loops(caplog: pytest.LogCaptureFixture) -> Iterator[DebugLoopPolicy]:
    """The policy, installed for the test and taken away after it."""
    caplog.set_level(logging.WARNING, logger="asyncio")
    before = asyncio.get_event_loop_policy()
    policy = DebugLoopPolicy(SLOW_CALLBACK)
    asyncio.set_event_loop_policy(policy)
    try:
        yield policy
    finally:
        asyncio.set_event_loop_policy(before)


def playable(size: int) -> bytes:
    """A whole MP4 of ``size`` bytes: a small one, then a ``free`` box to fill it up.

    The filler repeats 16 MiB of random bytes (``randbytes`` takes 2 s for 512 MiB), and the
    file is made in one allocation: no second copy of it, even briefly.
    """
    head = content_of(MIB, seed=7)
    filler = size - len(head) - 8
    block = random.Random(7).randbytes(FILLER_BLOCK)
    whole, rest = divmod(filler, FILLER_BLOCK)
    box = [(filler + 8).to_bytes(4, "big"), b"free", *[block] * whole, block[:rest]]
    return b"".join([head, *box])


@pytest.fixture(scope="module")
def big_video() -> bytes:
    """512 MiB of playable MP4, made once for the module (under a second)."""
    return playable(BIG)


def publish(server: FileServer, data: bytes, **faults: Any) -> tuple[Entry, Served]:
    """A video on a fake PeerTube instance, with the sha256 of each of its segments; the
    manifest entry of a fiche that links to it.

    PeerTube's ``segmentsSha256Url`` maps each fragmented file's name to ``{"start-end":
    sha256}`` (server/lib/hls.ts, ``updateSha256VODSegments``).
    """
    view = memoryview(data)
    ranges = {
        f"{start}-{min(start + SEGMENT, len(data)) - 1}": hashlib.sha256(
            view[start : start + SEGMENT]
        ).hexdigest()
        for start in range(0, len(data), SEGMENT)
    }
    segments_path = f"/static/streaming-playlists/hls/{UUID}/segments-sha256.json"
    video = {
        "uuid": UUID,
        "name": "Une vidéo",
        "duration": 1,
        "files": [],
        "streamingPlaylists": [
            {
                "segmentsSha256Url": server.url(segments_path),
                "files": [
                    {
                        "resolution": {"id": 480, "label": "480p"},
                        "size": len(data),
                        "fileDownloadUrl": server.url(VIDEO_PATH),
                    }
                ],
            }
        ],
    }
    captions = {"total": 0, "data": []}
    served = server.add(VIDEO_PATH, data, **faults)
    for path, document in [
        (segments_path, {NAME: ranges}),
        (f"/api/v1/videos/{UUID}", video),
        (f"/api/v1/videos/{UUID}/captions", captions),
    ]:
        server.add(path, json.dumps(document).encode(), content_type="application/json")
    peertube = PeerTubeRef(instance=server.url(""), uuid=UUID)
    return make_entry("item-a", server.url(VIDEO_PATH), peertube=peertube), served


def leave_partial(root: Path, entry: Entry, data: bytes | memoryview, served: Served) -> None:
    """The partial file and its sidecar, as a run killed after ``len(data)`` bytes leaves."""
    with Archive(root) as archive:
        part, side = archive.partial_paths(entry.id, "video")
    side.parent.mkdir(parents=True)
    part.write_bytes(data)
    url = entry.video.url or ""
    state = PartialState(url, served.etag, served.last_modified, len(served.content))
    side.write_bytes(state.to_json())


def slow_callbacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What asyncio's debug mode said of the loop: callbacks that held it too long, and
    whatever else it warns of (a coroutine never awaited, a transport never closed)."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "asyncio" and record.levelno >= logging.WARNING
    ]


class Runs:
    """Runs a download on a debug loop, in a fresh archive, and checks what the loop said."""

    def __init__(
        self,
        server: FileServer,
        root: Path,
        policy: DebugLoopPolicy,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        self.server = server
        self.root = root
        self.policy = policy
        self.caplog = caplog

    def fetch(self, prepare: Callable[[Path], Entry]) -> DownloadReport:
        """Serve and fetch the video ``prepare`` publishes: fetched, in one event loop, and
        no callback held it longer than the bound.

        A shared machine sometimes leaves this process unscheduled for 50 ms (another job,
        the hypervisor), and the pause lands in whatever callback was running: when that
        happens the run is made again, once. Blocking work on the loop comes back every time.
        """
        for _ in range(2):
            self.reset()
            entry = prepare(self.root)
            report = download(Manifest(entries=(entry,)), self.root, settings=SETTINGS)
            assert [(o.job.role, o.status, o.reason) for o in report.outcomes] == [
                ("video", Status.FETCHED, None)
            ]
            assert len(self.policy.loops) == 1, "one run, one event loop"
            assert self.policy.loops[0].is_closed()
            if not slow_callbacks(self.caplog):
                break
        assert slow_callbacks(self.caplog) == []
        return report

    def reset(self) -> None:
        assert self.server.errors == [], "the test server's handlers raised"
        self.server.reset()
        shutil.rmtree(self.root, ignore_errors=True)
        self.policy.loops.clear()
        self.caplog.clear()


@pytest.fixture
def runs(
    server: FileServer,
    tmp_path: Path,
    debug_loops: DebugLoopPolicy,
    caplog: pytest.LogCaptureFixture,
) -> Iterator[Runs]:
    """The 512 MiB in the archive and in the server's table are let go after the test, not
    kept for the tests that follow."""
    runs = Runs(server, tmp_path / "archive", debug_loops, caplog)
    yield runs
    runs.reset()


@pytest.mark.slow
def test_a_512_mib_video_and_its_segment_checksums_never_hold_the_loop(
    server: FileServer, runs: Runs, big_video: bytes
) -> None:
    report = runs.fetch(lambda root: publish(server, big_video)[0])
    assert report.bytes_fetched == BIG
    asked = [r.path for r in server.requests() if r.path.endswith("segments-sha256.json")]
    assert len(asked) == 1, "the segments' checksums were not checked"
    assert (runs.root / "media/item-a" / "video-480p.mp4").stat().st_size == BIG


@pytest.mark.slow
def test_resuming_a_511_mib_partial_never_holds_the_loop(
    server: FileServer, runs: Runs, big_video: bytes
) -> None:
    """The resume hashes the bytes a killed run left before it appends to them."""
    held = BIG - MIB

    def prepare(root: Path) -> Entry:
        served = server.add("/v/big.mp4", big_video)
        entry = make_entry("item-a", server.url("/v/big.mp4"))
        leave_partial(root, entry, memoryview(big_video)[:held], served)
        return entry

    report = runs.fetch(prepare)
    assert server.requests("/v/big.mp4")[0].headers["Range"] == f"bytes={held}-"
    assert report.bytes_fetched == MIB
    assert report.outcomes[0].record is not None
    assert report.outcomes[0].record.sha256 == sha256(big_video)


def slowly(action: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(action)
    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(SLOW_DISK)
        return action(*args, **kwargs)

    return slow


def test_a_slow_disk_never_holds_the_loop(
    server: FileServer, runs: Runs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A USB key, or a school's network share: each write, rename, unlink and fsync waits
    for the device (SQLite's own fsyncs are not slowed here). Any of them on the loop would
    hold every download: the API's answer cached, a partial that cannot be resumed thrown
    away, a new one started, written, made durable, moved into place."""
    data = playable(4 * MIB)

    def prepare(root: Path) -> Entry:
        # The resumed range does not match the partial: it is thrown away, fetched anew.
        entry, served = publish(server, data, bad_content_range_times=1)
        leave_partial(root, entry, data[:MIB], served)
        return entry

    for name in ("fsync", "replace", "unlink"):
        monkeypatch.setattr(os, name, slowly(getattr(os, name)))
    monkeypatch.setattr(Sink, "write", slowly(Sink.write))
    runs.fetch(prepare)
    monkeypatch.undo()
    assert [r.status for r in server.requests(VIDEO_PATH)] == [206, 200]
    assert (runs.root / "media/item-a" / "video-480p.mp4").read_bytes() == data
    assert (runs.root / "peertube" / f"{UUID}.json").is_file()  # the API's answer, cached


def test_a_runs_result_is_handed_back_without_being_formatted() -> None:
    # asyncio.run on Python 3.11 formats its main task's result when it restores the Ctrl-C
    # handler; a download report's text at 10,000 videos cost 0.3-0.5 s of CPU, for nothing.
    from archiver.fetch import _run

    formatted: list[str] = []

    class Report:
        def __repr__(self) -> str:
            formatted.append("repr")
            return "Report()"

    async def run() -> Report:
        return Report()

    assert isinstance(_run(run()), Report)
    assert formatted == []
