"""One file over several connections, against the real loopback server with faults on demand.

A first answer that took ``far_latency`` seconds or more to come is split at once: the tests
set it to 0, as if every server were across a poor line, so that the loopback server's files
are split without waiting for a rate to be measured.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Hashable
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from archiver.archive import Archive
from archiver.cli import cli
from archiver.fetch import DownloadReport, DownloadSettings, Status, download, download_all
from archiver.fetch.http import make_client
from archiver.fetch.plan import Job
from archiver.fetch.segments import Origin, Part, Segments
from archiver.manifest import Manifest, write_manifest

from .conftest import content_of, make_entry, sha256
from .server import Call, FileServer, Reply, Request, Served

MiB = 1024 * 1024
SIZE = 24 * MiB
# Split at once (see the module's docstring), retried quickly.
SPLIT = DownloadSettings(
    far_latency=0.0, retries=4, backoff_base=0.01, backoff_max=0.05, timeout=5.0
)
KEY = ("item-a", "video")


def single(server: FileServer, path: str = "/v/a.mp4") -> Manifest:
    return Manifest(entries=(make_entry("item-a", server.url(path)),))


def held(root: Path) -> Path:
    return root / "media" / "item-a" / "video.mp4"


def partial(root: Path) -> tuple[Path, Path]:
    with Archive(root) as archive:
        return archive.partial_paths("item-a", "video")


def answered(server: FileServer, path: str = "/v/a.mp4") -> list[Request]:
    """The requests to ``path``, once the server has answered them all: it logs each as it
    ends, and one the client stopped reading ends when the server sees it gone."""
    wait_for(lambda: server.active.get(server.generation, 0) == 0)
    return server.requests(path)


def ranges(requests: list[Request]) -> list[tuple[int, int]]:
    """The byte ranges asked for, ``(first, last)``, of the requests that asked for one."""
    found = []
    for request in requests:
        if "Range" in request.headers:
            first, _, last = request.headers["Range"].removeprefix("bytes=").partition("-")
            found.append((int(first), int(last) if last else -1))
    return found


def connections(report: DownloadReport) -> int:
    (outcome,) = report.outcomes
    return report.connections_of(outcome)


def last_summary(root: Path) -> dict[str, object]:
    db = sqlite3.connect(root / "catalog.sqlite")
    try:
        (summary,) = db.execute("SELECT summary FROM runs ORDER BY id DESC LIMIT 1").fetchone()
    finally:
        db.close()
    found: dict[str, object] = json.loads(summary)
    return found


def test_a_slow_large_file_is_fetched_over_several_connections_each_range_checked(
    server: FileServer, tmp_path: Path
) -> None:
    data = content_of(SIZE, 1)
    served = server.add("/v/a.mp4", data)
    report = download(single(server), tmp_path, settings=SPLIT)

    assert report.outcomes[0].status is Status.FETCHED
    assert held(tmp_path).read_bytes() == data
    assert connections(report) == 4
    # (The server logs a request once it has answered it.)
    requests = answered(server)
    whole = [r for r in requests if r.method == "GET" and "Range" not in r.headers]
    assert len(whole) == 1  # the first answer: the whole file asked for, split after
    ranged = [r for r in requests if "Range" in r.headers]
    assert len(ranged) >= 3
    assert all(r.headers["If-Range"] == served.etag and r.status == 206 for r in ranged)
    # Each part asked for once: no two ranges start at the same byte.
    starts = [first for first, _ in ranges(ranged)]
    assert len(starts) == len(set(starts))
    assert report.bytes_fetched < SIZE + MiB  # what arrived past a part's end, at most
    summary = last_summary(tmp_path)
    assert (summary["connections"], summary["split"]) == (4, 1)
    assert not list((tmp_path / "partial").rglob("video.*"))


def test_parts_of_a_file_that_changes_upstream_never_splice_it(
    server: FileServer, tmp_path: Path
) -> None:
    old, new = content_of(SIZE, 1), content_of(SIZE, 2)
    # The first answer and the first range are of the old version; every answer after, new.
    served = server.add("/v/a.mp4", old, change_to=new, change_after=2)
    old_etag = f'"{sha256(old)[:16]}"'
    report = download(single(server), tmp_path, settings=SPLIT)

    assert report.outcomes[0].status is Status.FETCHED
    assert held(tmp_path).read_bytes() == new  # one version, whole: never a splice
    assert served.etag != old_etag
    requests = answered(server)
    old_ranges = [r for r in requests if r.headers.get("If-Range") == old_etag]
    # A part of the old version came (206); the next ones met the new version (200): the
    # file was stopped and started again from zero, once, then split again.
    assert 206 in [r.status for r in old_ranges]
    assert 200 in [r.status for r in old_ranges]
    assert len([r for r in requests if r.method == "GET" and "Range" not in r.headers]) == 2
    after = [r for r in requests if r.headers.get("If-Range") == served.etag]
    assert len(after) >= 3
    assert all(r.status == 206 for r in after)
    with Archive(tmp_path) as archive:
        record = archive.current("item-a", "video")
    assert record is not None
    assert (record.sha256, record.etag) == (sha256(new), served.etag)


def test_a_file_whose_parts_disagree_again_after_starting_over_is_fetched_whole_over_one(
    server: FileServer, tmp_path: Path
) -> None:
    versions = [Served(content=content_of(SIZE, seed)) for seed in (1, 2, 3, 4)]
    fresh_starts = [0]

    def changing(call: Call) -> Served:
        """Each fresh start gets a version; every range after it, the next one."""
        if call.headers.get("Range") is None:
            fresh_starts[0] += 1
            return versions[fresh_starts[0] - 1]
        return versions[fresh_starts[0]]

    server.route("/v/a.mp4", changing)
    report = download(single(server), tmp_path, settings=SPLIT)

    (outcome,) = report.outcomes
    assert outcome.status is Status.FETCHED
    # Twice its parts met another version; the third start took one version whole, over
    # one connection: no range asked after it, nothing spliced.
    assert fresh_starts == [3]
    assert held(tmp_path).read_bytes() == versions[2].content
    asked = {r.headers.get("If-Range") for r in answered(server) if "Range" in r.headers}
    assert asked == {versions[0].etag, versions[1].etag}  # none of the third start's
    assert connections(report) == 1
    assert not list((tmp_path / "partial").rglob("video.*"))


def test_servers_behind_one_name_with_validators_of_their_own_get_the_file_over_one(
    server: FileServer, tmp_path: Path
) -> None:
    """Two backends with the same bytes, each with its own ETag and Last-Modified (nginx's
    ETag is the file's time and size), answering in turns: every split meets the other's
    validator; the file comes whole over one connection."""
    data = content_of(SIZE, 5)
    backends = [Served(content=data, etag=f'"backend-{n}"') for n in (1, 2)]
    asked = [0]

    def alternating(call: Call) -> Served:
        asked[0] += 1
        return backends[asked[0] % 2]

    server.route("/v/a.mp4", alternating)
    report = download(single(server), tmp_path, settings=SPLIT)

    assert report.outcomes[0].status is Status.FETCHED
    assert held(tmp_path).read_bytes() == data


@pytest.mark.parametrize("close_delimited", [False, True], ids=["with-length", "no-length"])
def test_a_range_whose_body_runs_past_its_content_range_is_never_written(
    server: FileServer, tmp_path: Path, close_delimited: bool
) -> None:
    """A 206 says bytes a-m but its body runs on to the end asked for, with filler: with a
    Content-Length that says so, the headers disagree and nothing of it is taken; without one
    (the body ends when the server closes), the bytes past the range's end are never written
    and the rest of the part is asked again. The file is whole and right."""
    data = content_of(SIZE, 6)
    server.add("/v/a.mp4", data, long_range_times=2, close_delimited_ranges=close_delimited)
    report = download(single(server), tmp_path, settings=SPLIT)

    assert report.outcomes[0].status is Status.FETCHED
    assert held(tmp_path).read_bytes() == data
    with Archive(tmp_path) as archive:
        record = archive.current("item-a", "video")
    assert record is not None and record.sha256 == sha256(data)


def test_a_range_sent_encoded_is_not_taken_for_the_files_bytes(
    server: FileServer, tmp_path: Path
) -> None:
    data = content_of(SIZE, 8)
    server.add("/v/a.mp4", data, range_headers={"Content-Encoding": "gzip"})
    report = download(single(server), tmp_path, settings=SPLIT)

    assert report.outcomes[0].status is Status.FETCHED
    assert held(tmp_path).read_bytes() == data
    assert connections(report) == 1  # every range refused: the file came whole


def test_a_range_without_the_etag_it_was_asked_to_match_is_not_trusted(
    server: FileServer, tmp_path: Path
) -> None:
    """A server that ignores If-Range and drops validators from its 206s, whose file changed
    after its first answer: the ranges cannot be told apart from the first version's, so
    none is taken (RFC 9110 has a 206 repeat the ETag its 200 carries)."""
    old, new = content_of(SIZE, 9), content_of(SIZE, 10)
    server.add(
        "/v/a.mp4",
        old,
        change_to=new,
        change_after=1,
        ignore_if_range=True,
        range_without_validators=True,
    )
    report = download(single(server), tmp_path, settings=SPLIT)

    assert report.outcomes[0].status is Status.FETCHED
    assert held(tmp_path).read_bytes() == new  # one version whole, never a splice


def test_a_server_that_ignores_ranges_gets_one_connection(
    server: FileServer, tmp_path: Path
) -> None:
    data = content_of(SIZE, 3)
    server.add("/v/a.mp4", data, ignore_range=True)
    report = download(single(server), tmp_path, settings=SPLIT)

    assert report.outcomes[0].status is Status.FETCHED
    assert held(tmp_path).read_bytes() == data
    assert connections(report) == 1
    requests = answered(server)
    (whole,) = [r for r in requests if r.method == "GET" and "Range" not in r.headers]
    assert whole.sent == SIZE  # the first answer brought it all
    asked = [r for r in requests if "Range" in r.headers]  # answered whole: closed unread
    assert 1 <= len(asked) <= 3
    assert all(r.status == 200 for r in asked)
    assert report.bytes_fetched == SIZE
    assert last_summary(tmp_path)["split"] == 0


def test_a_file_with_a_last_modified_and_no_etag_is_split_and_each_range_taken(
    server: FileServer, tmp_path: Path
) -> None:
    """nginx with ``etag off``, Apache with ``FileETag None``: If-Range carries the date, and
    a 206 need not repeat it (RFC 9110 has a 206 repeat an ETag, not a date)."""
    data = content_of(SIZE, 16)
    server.add("/v/a.mp4", data, etag="")
    report = download(single(server), tmp_path, settings=dataclasses.replace(SPLIT, retries=1))

    assert report.outcomes[0].status is Status.FETCHED, report.outcomes[0].reason
    assert held(tmp_path).read_bytes() == data
    assert connections(report) == 4
    requests = answered(server)
    assert len([r for r in requests if "Range" not in r.headers]) == 1  # never from zero again
    assert report.bytes_fetched < SIZE + MiB


@pytest.mark.parametrize(
    "headers",
    [
        {"weak_etag": True, "last_modified": ""},  # W/"…" cannot go in If-Range
        {"etag": "", "last_modified": ""},  # nothing to send in If-Range
    ],
    ids=["weak-etag-no-last-modified", "no-validator"],
)
def test_a_file_without_a_validator_for_if_range_gets_one_connection(
    server: FileServer, tmp_path: Path, headers: dict[str, object]
) -> None:
    data = content_of(SIZE, 4)
    server.add("/v/a.mp4", data, **headers)
    report = download(single(server), tmp_path, settings=SPLIT)

    assert held(tmp_path).read_bytes() == data
    (request,) = answered(server)
    assert "Range" not in request.headers
    assert connections(report) == 1


def test_a_file_of_unknown_length_gets_one_connection(server: FileServer, tmp_path: Path) -> None:
    data = content_of(SIZE, 5)
    server.route(
        "/v/a.mp4",
        lambda call: Reply(200, data, [("Content-Type", "video/mp4"), ("ETag", '"e"')], True),
    )
    report = download(single(server), tmp_path, settings=SPLIT)
    assert held(tmp_path).read_bytes() == data
    assert len(answered(server)) == 1
    assert connections(report) == 1


def test_a_file_under_the_split_size_gets_one_connection(
    server: FileServer, tmp_path: Path
) -> None:
    data = content_of(4 * MiB - 1, 6)
    server.add("/v/a.mp4", data)
    report = download(single(server), tmp_path, settings=SPLIT)
    assert held(tmp_path).read_bytes() == data
    assert len(answered(server)) == 1
    assert connections(report) == 1


def test_a_fast_server_near_by_is_not_split(server: FileServer, tmp_path: Path) -> None:
    """A first answer that came at once, and brings more than ``split_below``: one connection
    fills this line, and splitting would only add a pass over the file to hash it."""
    data = content_of(64 * MiB, 7)
    server.add("/v/a.mp4", data)
    settings = DownloadSettings(split_below=1024)  # 1 KiB/s: any loopback is faster
    report = download(single(server), tmp_path, settings=settings)
    assert held(tmp_path).read_bytes() == data
    assert len(answered(server)) == 1
    assert connections(report) == 1


def test_a_slow_server_near_by_is_split_once_measured(server: FileServer, tmp_path: Path) -> None:
    # 4 MiB/s: its average over the first quarter of a second says it is slow.
    data = content_of(8 * MiB, 8)
    server.add("/v/a.mp4", data, trickle=(64 * 1024, 1 / 64))
    report = download(single(server), tmp_path, settings=DownloadSettings())
    assert held(tmp_path).read_bytes() == data
    assert connections(report) > 1
    requests = answered(server)
    assert len([r for r in requests if r.method == "GET" and "Range" not in r.headers]) == 1
    assert len(requests) > 1


def test_a_partial_of_one_connection_resumes_and_the_rest_is_split(
    server: FileServer, tmp_path: Path
) -> None:
    """A partial an earlier release left (its sidecar has no parts) resumes where it ends."""
    data = content_of(SIZE, 9)
    served = server.add("/v/a.mp4", data)
    part, side = partial(tmp_path)
    part.parent.mkdir(parents=True)
    part.write_bytes(data[: 8 * MiB])
    state = {"url": server.url("/v/a.mp4"), "etag": served.etag, "last_modified": None}
    side.write_text(json.dumps({**state, "length": SIZE}))
    report = download(single(server), tmp_path, settings=SPLIT)

    assert held(tmp_path).read_bytes() == data
    requests = answered(server)
    assert f"bytes={8 * MiB}-" in [r.headers["Range"] for r in requests]
    assert all(first >= 8 * MiB for first, _ in ranges(requests))
    assert len(requests) == len(ranges(requests))  # none from zero
    assert connections(report) > 1
    assert 16 * MiB <= report.bytes_fetched < 17 * MiB


def write_sidecar(side: Path, url: str, etag: str | None, parts: list[list[int]]) -> bytes:
    record = {
        "segments": {
            "version": 1,
            "url": url,
            "etag": etag,
            "last_modified": None,
            "length": SIZE,
            "content_type": "video/mp4",
            "final_url": url,
            "parts": parts,
        }
    }
    data = json.dumps(record).encode()
    side.write_bytes(data)
    return data


def test_parts_the_partial_is_too_short_to_hold_are_fetched_again(
    server: FileServer, tmp_path: Path
) -> None:
    """A sidecar is trusted no further than the partial's size: it never claims bytes the
    disk does not have (a partial cut short, a copy of the archive that lost its end)."""
    data = content_of(SIZE, 10)
    served = server.add("/v/a.mp4", data)
    part, side = partial(tmp_path)
    part.parent.mkdir(parents=True)
    part.write_bytes(data[: 5 * MiB])
    half = SIZE // 2
    write_sidecar(side, server.url("/v/a.mp4"), served.etag, [[0, half, half], [half, SIZE, SIZE]])
    download(single(server), tmp_path, settings=SPLIT)

    assert held(tmp_path).read_bytes() == data
    asked = ranges(answered(server))
    assert (5 * MiB, half - 1) in asked  # the first part, from where the partial ends
    assert min(first for first, _ in asked if first >= half) == half  # the second, whole


def test_a_torn_sidecar_of_parts_is_not_trusted_at_all(server: FileServer, tmp_path: Path) -> None:
    data = content_of(SIZE, 11)
    served = server.add("/v/a.mp4", data)
    part, side = partial(tmp_path)
    part.parent.mkdir(parents=True)
    part.write_bytes(bytes(SIZE))  # zeros, which the sidecar would claim
    record = write_sidecar(side, server.url("/v/a.mp4"), served.etag, [[0, SIZE, SIZE]])
    side.write_bytes(record[: len(record) // 2])
    download(single(server), tmp_path, settings=SPLIT)

    assert held(tmp_path).read_bytes() == data
    assert len([r for r in answered(server) if r.method == "GET" and "Range" not in r.headers]) == 1


@pytest.mark.parametrize(
    "sidecar",
    [
        b"[" * 70_000,  # nested past the JSON parser's stack
        json.dumps({"url": "u", "etag": '"e"', "last_modified": None, "length": 10**400}).encode(),
        json.dumps(
            {
                "segments": {
                    "version": 1,
                    "url": "u",
                    "etag": '"e"',
                    "last_modified": None,
                    "length": 10**400,
                    "content_type": "video/mp4",
                    "final_url": "u",
                    "parts": [[0, 10**400, 10]],
                }
            }
        ).encode(),
    ],
    ids=["deep", "one-connection-length-past-a-float", "parts-length-past-a-float"],
)
def test_a_hostile_sidecar_is_no_sidecar(
    server: FileServer, tmp_path: Path, sidecar: bytes
) -> None:
    data = content_of(SIZE, 12)
    url = server.url("/v/a.mp4")
    server.add("/v/a.mp4", data)
    part, side = partial(tmp_path)
    part.parent.mkdir(parents=True)
    part.write_bytes(bytes(1000))
    side.write_bytes(sidecar.replace(b'"u"', json.dumps(url).encode()))
    report = download(single(server), tmp_path, settings=SPLIT)

    assert report.outcomes[0].status is Status.FETCHED, report.outcomes[0].reason
    assert held(tmp_path).read_bytes() == data
    # Nothing of the partial trusted: the file asked whole from its first byte, once.
    whole = [r for r in answered(server) if r.method == "GET" and "Range" not in r.headers]
    assert len(whole) == 1


def test_a_partial_of_parts_resumes_even_over_one_connection(
    server: FileServer, tmp_path: Path
) -> None:
    data = content_of(SIZE, 12)
    served = server.add("/v/a.mp4", data)
    part, side = partial(tmp_path)
    part.parent.mkdir(parents=True)
    third = SIZE // 3
    with part.open("wb") as stream:  # the parts' first MiB each, holes between
        for start in (0, third, 2 * third):
            stream.seek(start)
            stream.write(data[start : start + MiB])
    parts = [[0, third, MiB], [third, 2 * third, third + MiB], [2 * third, SIZE, 2 * third + MiB]]
    write_sidecar(side, server.url("/v/a.mp4"), served.etag, parts)
    settings = DownloadSettings(connections=1, retries=2)
    report = download(single(server), tmp_path, settings=settings)

    assert held(tmp_path).read_bytes() == data
    assert sorted(ranges(answered(server))) == [
        (MiB, third - 1),
        (third + MiB, 2 * third - 1),
        (2 * third + MiB, SIZE - 1),
    ]
    assert report.bytes_fetched == SIZE - 3 * MiB
    assert connections(report) == 1


# -- a crash -----------------------------------------------------------------------------------


def claimed(side: Path) -> list[list[int]]:
    """The parts a sidecar of parts says hold bytes, ``[start, end, written up to]``."""
    try:
        parts: list[list[int]] = json.loads(side.read_bytes())["segments"]["parts"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [p for p in parts if p[2] > p[0]]


def wait_for(condition: Callable[[], object], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        time.sleep(0.02)


@pytest.mark.slow
def test_sigkill_while_parts_are_in_flight_then_the_rerun_continues_each_part(
    server: FileServer, tmp_path: Path
) -> None:
    data = content_of(16 * MiB, 13)
    # About 1.2 MiB/s a connection (a far server): split, and some seconds to be killed in.
    served = server.add("/v/a.mp4", data, trickle=(64 * 1024, 0.05))
    manifest = tmp_path / "m.json"
    write_manifest(single(server), manifest)
    archive = tmp_path / "arch"
    part, side = partial(archive)
    command = [sys.executable, "-m", "archiver", "download", str(manifest), "--archive",
               str(archive), "--connections", "4", "-q"]  # fmt: skip
    first = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    try:
        # Several parts under way, each with bytes the sidecar claims.
        wait_for(lambda: len(claimed(side)) >= 3)
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    parts = json.loads(side.read_bytes())["segments"]["parts"]
    todo = [(start, end, pos) for start, end, pos in parts if pos < end]
    assert len(todo) >= 3
    wait_for(lambda: server.active.get(server.generation, 0) == 0)  # its answers ended
    before = len(answered(server))

    result = CliRunner().invoke(cli, ["download", str(manifest), "--archive", str(archive), "-q"])
    assert (result.exit_code, result.stderr) == (0, "")
    assert sha256(held(archive).read_bytes()) == sha256(data)
    rerun = answered(server)[before:]
    assert all(r.headers.get("If-Range") == served.etag for r in rerun)  # no fresh start
    asked = ranges(rerun)
    assert len(asked) == len(rerun)
    # Each part the killed run left goes on from where its sidecar says its bytes end, and
    # no byte the sidecar claims is asked for again.
    for start, end, pos in todo:
        assert any(first == pos for first, _ in asked), (start, end, pos, asked)
    for first, _ in asked:
        assert not any(start <= first < pos for start, _, pos in parts), first
    left = sum(end - pos for _, end, pos in parts)
    fetched = last_summary(archive)["bytes"]
    assert isinstance(fetched, int)
    assert left <= fetched <= left + MiB  # and a read past a part's end, when one was cut
    assert not part.exists() and not side.exists()


def test_a_deadline_keeps_every_part_for_the_next_run(server: FileServer, tmp_path: Path) -> None:
    """A run stopped by ``--max-time`` records each part as far as its bytes are written."""
    data = content_of(SIZE, 20)
    # About 1.2 MiB/s a connection: several parts under way when the deadline comes.
    served = server.add("/v/a.mp4", data, trickle=(64 * 1024, 0.05))
    settings = DownloadSettings(far_latency=0.0, max_time=1.5)
    first = download(single(server), tmp_path, settings=settings)
    served.trickle = None
    assert first.outcomes[0].reason == "not fetched: the run's --max-time was reached"
    _, side = partial(tmp_path)
    parts = json.loads(side.read_bytes())["segments"]["parts"]
    assert len([p for p in parts if p[0] < p[2] < p[1]]) >= 3  # several parts under way
    before = len(answered(server))

    report = download(single(server), tmp_path, settings=SPLIT)
    assert held(tmp_path).read_bytes() == data
    rerun = answered(server)[before:]
    assert all(r.headers.get("If-Range") == served.etag for r in rerun)
    starts = [first for first, _ in ranges(rerun)]
    assert all(pos in starts for _, end, pos in parts if pos < end)
    assert report.bytes_fetched < sum(end - pos for _, end, pos in parts) + MiB


# -- one budget --------------------------------------------------------------------------------


@pytest.mark.slow
def test_rate_limit_holds_within_ten_percent_with_several_connections_a_file(
    server: FileServer, tmp_path: Path
) -> None:
    rate = 2 * MiB
    data = content_of(20 * MiB, 14)  # 10 s at 2 MiB/s
    # Each connection carries about 0.8 MiB/s (a far server, or its nginx's limit_rate): one
    # is under the cap, and the file is split to reach it.
    server.add("/v/a.mp4", data, trickle=(64 * 1024, 0.08))
    settings = DownloadSettings(far_latency=0.0, rate_limit=rate)
    start = time.monotonic()
    report = download(single(server), tmp_path, settings=settings)
    elapsed = time.monotonic() - start

    assert held(tmp_path).read_bytes() == data
    assert connections(report) == 4
    achieved = len(data) / elapsed
    assert 0.9 * rate <= achieved <= 1.1 * rate, f"{achieved / MiB:.2f} MiB/s over 2 MiB/s"


def test_a_file_whose_one_connection_already_meets_the_cap_is_not_split(
    server: FileServer, tmp_path: Path
) -> None:
    """Under --rate-limit lower than what one connection brings, more connections cannot
    gain: they would share the same cap, and each cut throws away what the kernel holds."""
    data = content_of(8 * MiB, 15)
    server.add("/v/a.mp4", data)
    settings = dataclasses.replace(SPLIT, rate_limit=8 * MiB)
    report = download(single(server), tmp_path, settings=settings)

    assert held(tmp_path).read_bytes() == data
    assert connections(report) == 1
    assert report.bytes_fetched == len(data)  # nothing read past a part's end


def fetching(rate: float) -> tuple[Segments, Part]:
    """A file of 100 MiB whose one part is being fetched from byte 20 MiB at ``rate``."""
    segments = Segments.fresh(Origin("u", '"e"', None, 100 * MiB, "video/mp4", "u"), 20 * MiB)
    victim = segments.parts[0]
    victim.busy, victim.rate = True, rate
    return segments, victim


def test_a_piece_taken_from_a_part_leaves_it_what_its_connection_brings_meanwhile() -> None:
    """A new request's first byte comes ``wait`` seconds after it is sent, and the part's own
    connection goes on meanwhile: the thief takes half of what is left after that, so both
    end together. (Halves left the thief idle at the end of a poor line for ``wait``.)"""
    wait, rate = 0.6, 2.0 * MiB
    segments, victim = fetching(rate)
    stolen = segments.steal(256 * 1024, wait)
    assert stolen is not None
    assert (stolen.end, victim.end) == (100 * MiB, stolen.start)
    kept, taken = victim.end - victim.received, stolen.end - stolen.start
    assert kept + taken == 80 * MiB
    assert abs(kept / rate - (wait + taken / rate)) < 0.001  # they end together

    # A part its connection ends before a new request's first byte comes is left alone.
    segments, victim = fetching(200.0 * MiB)
    assert segments.steal(256 * 1024, wait) is None

    # A balanced piece under the minimum: the minimum, while it still ends the part sooner.
    segments, victim = fetching(rate)
    floor = (80 * MiB - int(rate * wait)) // 2 + MiB // 2  # and under half
    least = segments.steal(floor, wait)
    assert least is not None
    assert (least.start, least.end, victim.end) == (100 * MiB - floor, 100 * MiB, least.start)

    # A part whose rate is not measured yet is halved.
    segments, victim = fetching(0.0)
    halved = segments.steal(256 * 1024, wait)
    assert halved is not None
    assert victim.end - victim.received == halved.end - halved.start == 40 * MiB


def test_a_dropping_line_fetches_at_most_two_percent_twice(
    server: FileServer, tmp_path: Path
) -> None:
    data = content_of(40 * MiB, 15)
    server.add("/v/a.mp4", data, drop_after=8 * MiB, drop_times=1000)
    report = download(single(server), tmp_path, settings=SPLIT)

    assert held(tmp_path).read_bytes() == data
    assert connections(report) == 4
    assert any(r.sent == 8 * MiB for r in answered(server))  # the line dropped
    # Bytes archiver received. (What the server wrote includes what waited in loopback's
    # socket buffers, megabytes, when a part was cut short; over a real line that is what is
    # in flight: bench/bench_poorline.py --scenario drop counts it through the emulator.)
    assert report.bytes_fetched <= 1.02 * len(data)


def test_retry_after_applies_to_the_part_that_was_told_to_wait(
    server: FileServer, tmp_path: Path
) -> None:
    data = content_of(SIZE, 16)
    served = Served(content=data)
    told = [0]

    def busy_once(call: Call) -> Reply | Served:
        if call.headers.get("Range") and not told[0]:
            told[0] += 1
            return Reply(503, b"busy", [("Retry-After", "1")])
        return served

    server.route("/v/a.mp4", busy_once)
    start = time.monotonic()
    report = download(single(server), tmp_path, settings=SPLIT)
    elapsed = time.monotonic() - start

    assert held(tmp_path).read_bytes() == data
    requests = answered(server)
    (refused,) = [r for r in requests if r.status == 503]
    ((start, _),) = ranges([refused])
    # The same part asked for again from the same byte (another connection may have taken
    # its far half meanwhile, so not always to the same end).
    assert [r.status for r in requests if [s for s, _ in ranges([r])] == [start]] == [503, 206]
    assert elapsed >= 1.0  # after Retry-After: 1, not the backoff's 10 ms
    assert (
        len([r for r in requests if r.method == "GET" and "Range" not in r.headers]) == 1
    )  # no other restarted
    assert report.outcomes[0].status is Status.FETCHED


def test_a_stalled_part_is_retried_from_where_it_stopped(
    server: FileServer, tmp_path: Path
) -> None:
    data = content_of(SIZE, 17)
    served = Served(content=data)
    stalling = Served(
        content=data, stall_after=100_000, stall_seconds=3.0, stall_times=1, etag=served.etag
    )
    asked = [0]

    def stall_the_second_range(call: Call) -> Served:
        if call.headers.get("Range"):
            asked[0] += 1
            if asked[0] == 2:
                return stalling
        return served

    server.route("/v/a.mp4", stall_the_second_range)
    settings = DownloadSettings(
        far_latency=0.0, retries=2, backoff_base=0.01, backoff_max=0.01, timeout=0.5
    )
    report = download(single(server), tmp_path, settings=settings)

    assert held(tmp_path).read_bytes() == data
    requests = answered(server)
    (stalled,) = [r for r in requests if r.sent == 100_000]
    first, _ = ranges([stalled])[0]
    assert any(start == first + 100_000 for start, _ in ranges(requests))
    assert connections(report) > 1


# -- slots, progress, the command line ---------------------------------------------------------


class Counting(httpx.AsyncBaseTransport):
    """A real transport that counts the answers open at once (their bodies not closed)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=64))
        self.open = 0
        self.peak = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.open += 1
        self.peak = max(self.peak, self.open)
        try:
            response = await self.inner.handle_async_request(request)
        except BaseException:
            self.open -= 1
            raise
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_Closing(response.stream, self),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


class _Closing(httpx.AsyncByteStream):
    def __init__(self, stream: httpx.AsyncByteStream, counting: Counting) -> None:
        self.stream = stream
        self.counting = counting
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.stream:
            yield chunk

    async def aclose(self) -> None:
        if not self.closed:
            self.closed = True
            self.counting.open -= 1
        await self.stream.aclose()


def test_a_part_answered_a_few_bytes_at_a_time_is_a_stall(
    server: FileServer, tmp_path: Path
) -> None:
    """Every range answered honestly, with 100 bytes, after 0.2 s: no answer stalls, but
    each part averages 500 B/s, under --min-rate. The parts' retries are spent on stalls and
    the file fails, named, long before the run's deadline."""
    data = content_of(SIZE, 13)
    server.add("/v/a.mp4", data, range_cap=100, range_delay=0.2, trickle=(64 * 1024, 0.05))
    settings = dataclasses.replace(SPLIT, min_rate=1024, timeout=1.0, retries=2, max_time=30)
    started = time.monotonic()
    report = download(single(server), tmp_path, settings=settings)

    (outcome,) = report.outcomes
    assert outcome.status is Status.FAILED
    assert outcome.reason is not None and "stalled: under 1.0 KiB/s for 1 s" in outcome.reason
    assert time.monotonic() - started < 20


@pytest.mark.parametrize(("jobs", "per_host"), [(8, 3), (3, 8), (1, 8)])
def test_connections_count_within_jobs_and_per_host(
    server: FileServer, tmp_path: Path, jobs: int, per_host: int
) -> None:
    settings = DownloadSettings(
        far_latency=0.0, jobs=jobs, per_host=per_host, retries=2, backoff_base=0.01
    )
    jobs_ = []
    for name in ("a", "b"):
        server.add(f"/v/{name}.mp4", content_of(SIZE, ord(name)))
        entry = make_entry(f"item-{name}", server.url(f"/v/{name}.mp4"))
        jobs_.append(Job(entry, "video", entry.video.url or "", "video.mp4"))
    transport = Counting()
    used: dict[tuple[str, str], int] = {}

    async def run() -> None:
        async with make_client(settings, transport=transport) as client:
            with Archive(tmp_path) as archive:
                for job in jobs_:
                    archive.record_item(job.entry)
                outcomes = await download_all(
                    jobs_, archive, settings=settings, client=client, connections=used
                )
        assert [o.status for o in outcomes] == [Status.FETCHED] * 2

    asyncio.run(run())
    most = min(jobs, per_host)
    # Never more than the limits; and a file takes the slot the other one leaves free (all of
    # them, if the other is done while it still has parts worth a connection).
    assert transport.peak == most
    assert max(most - 1, 1) <= max(used.values(), default=1) <= most


class Recorder:
    """A progress that records what the downloader reports."""

    def __init__(self) -> None:
        self.starts: list[tuple[Hashable, int | None]] = []
        self.advanced: dict[Hashable, int] = {}

    def begin(self, tasks: int, total: int | None) -> None:
        pass

    def started(self, key: Hashable, label: str, total: int | None, done: int) -> None:
        self.starts.append((key, total))
        self.advanced[key] = done  # an attempt resumes at ``done``

    def advance(self, key: Hashable, count: int) -> None:
        self.advanced[key] = self.advanced.get(key, 0) + count

    def retrying(self, key: Hashable, label: str, attempt: int, delay: float, why: str) -> None:
        pass

    def finished(self, key: Hashable, *, failed: bool) -> None:
        pass

    def end(self) -> None:
        pass


def test_progress_shows_the_file_not_its_parts(server: FileServer, tmp_path: Path) -> None:
    data = content_of(SIZE, 18)
    server.add("/v/a.mp4", data)
    progress = Recorder()
    report = download(single(server), tmp_path, settings=SPLIT, progress=progress)

    assert connections(report) == 4
    assert {key for key, _ in progress.starts} == {KEY}  # one bar: the file's
    assert {total for _, total in progress.starts} == {SIZE}
    assert progress.advanced == {KEY: SIZE}  # each byte once: the file's true rate


def test_the_connections_option_and_config_key(server: FileServer, tmp_path: Path) -> None:
    data = content_of(12 * MiB, 19)
    # About 5 MiB/s a connection: the first connection's rate says it is slow, so the file
    # is split.
    server.add("/v/a.mp4", data, trickle=(256 * 1024, 0.05))
    manifest = tmp_path / "m.json"
    write_manifest(single(server), manifest)
    config = tmp_path / "archiver.toml"
    config.write_text("connections = 2\n", encoding="utf-8")
    for archive, options in (
        (tmp_path / "one", ["--connections", "1"]),
        (tmp_path / "two", ["--config", str(config)]),
    ):
        args = ["download", str(manifest), "--archive", str(archive)]
        result = CliRunner().invoke(cli, [*args, *options, "-q"])
        assert (result.exit_code, result.stderr) == (0, "")
        assert held(archive).read_bytes() == data
    assert last_summary(tmp_path / "one")["connections"] == 1
    assert last_summary(tmp_path / "two")["connections"] == 2
    result = CliRunner().invoke(cli, ["download", str(manifest), "--connections", "0"])
    assert result.exit_code == 2
    assert "Invalid value for '--connections': 0 is not in the range 1<=x<=16." in result.stderr


def test_a_far_file_alone_opens_its_other_connections_while_its_first_answer_comes(
    server: FileServer, tmp_path: Path
) -> None:
    # Every answer takes 0.4 s to come (a far server), then 4 MiB/s. The first request has
    # no answer after WARM_AFTER: one HEAD on each connection a split would add, whose
    # connections then carry the ranges: four TCP connections in all, not seven.
    data = content_of(SIZE, 11)
    served = server.add("/v/a.mp4", data, delay=0.4, trickle=(64 * 1024, 1 / 64))
    report = download(single(server), tmp_path, settings=DownloadSettings(retries=2))

    assert held(tmp_path).read_bytes() == data
    assert connections(report) == 4
    requests = answered(server)
    assert [r.method for r in requests].count("HEAD") == 3
    ranged = [r for r in requests if "Range" in r.headers]
    assert len(ranged) >= 3
    assert all(r.headers["If-Range"] == served.etag and r.status == 206 for r in ranged)
    assert server.connections == 4


def test_files_that_are_not_alone_in_their_run_open_no_connection_ahead(
    server: FileServer, tmp_path: Path
) -> None:
    # Two far files: each may need its connections (slots) for itself; no HEAD is sent.
    names = ("a", "b")
    for number, name in enumerate(names):
        server.add(f"/v/{name}.mp4", content_of(SIZE, 20 + number), delay=0.4)
    manifest = Manifest(
        entries=tuple(make_entry(f"item-{n}", server.url(f"/v/{n}.mp4")) for n in names)
    )
    report = download(manifest, tmp_path, settings=DownloadSettings(retries=2))

    assert [o.status for o in report.outcomes] == [Status.FETCHED] * 2
    assert [r.method for r in server.requests() if r.method == "HEAD"] == []
