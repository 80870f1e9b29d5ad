"""A full disk, for real: a small tmpfs mounted by the test (as root; skipped where mounting is
refused), driven end to end through the command line.

A full disk is a failure of the item being written, named, exit 1, never "an internal error":
a file whose size is known is refused before a connection is opened, one whose size is not is
dropped when the disk fills, so the catalog, on the same disk, stays writable and whole; and
the next run works as soon as space is freed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from archiver.archive import Archive
from archiver.cli import cli
from archiver.entry import Video
from archiver.fetch import DownloadSettings, Status, download_all
from archiver.fetch.plan import Job
from archiver.manifest import Manifest, write_manifest

from .conftest import content_of, make_entry
from .server import Call, FileServer, Reply
from .test_disk_errors import grow, small_disk

__all__ = ["small_disk"]  # the fixture, used by name

MiB = 1024 * 1024
FULL = "no space left on the device"


def run(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.stderr


def intact(catalog: Path) -> bool:
    """Whether SQLite's own integrity check finds the catalog whole."""
    db = sqlite3.connect(catalog)
    try:
        return db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        db.close()


def last_failures(archive: Path) -> list[tuple[str, str]]:
    """``(item, reason)`` of the failures the catalog recorded for the last run."""
    db = sqlite3.connect(archive / "catalog.sqlite")
    try:
        return db.execute(
            "SELECT item_id, reason FROM failures WHERE run_id=(SELECT MAX(id) FROM runs)"
        ).fetchall()
    finally:
        db.close()


def test_a_file_of_known_size_the_disk_cannot_hold_fails_before_a_connection(
    server: FileServer, tmp_path: Path, small_disk: Callable[..., Path]
) -> None:
    disk = small_disk("8m")
    archive, manifest = disk / "archive", tmp_path / "m.json"
    small, big = content_of(200_000, 1), content_of(6 * MiB, 2)
    server.add("/small.mp4", small)
    server.add("/big.mp4", big)
    pinned = Video(url=server.url("/big.mp4"), embed_url=None, size=len(big))
    entries = (
        make_entry("small", server.url("/small.mp4")),
        make_entry("big", server.url("/big.mp4"), video=pinned),
    )
    write_manifest(Manifest(entries=entries), manifest)
    code, stderr = run("download", manifest, "--archive", archive, "-q")
    assert code == 1
    line = (
        rf"Error: Vidéo big \(big, video\): {re.escape(server.url('/big.mp4'))}:"
        r" not enough space: needs 10\.0 MiB, \d+\.\d MiB free"
    )
    assert re.fullmatch(line + r"\n", stderr), stderr
    assert server.requests("/big.mp4") == []  # not a byte asked for
    assert intact(archive / "catalog.sqlite")
    assert [item for item, _ in last_failures(archive)] == ["big"]  # the catalog could write
    assert (archive / "media" / "small" / "video.mp4").read_bytes() == small
    grow(disk, "64m")
    assert run("download", manifest, "--archive", archive, "-q") == (0, "")
    assert (archive / "media" / "big" / "video.mp4").read_bytes() == big
    assert run("verify", "--archive", archive, "-q") == (0, "")


def test_a_body_of_unknown_length_that_fills_the_disk_fails_its_item_and_frees_the_disk(
    server: FileServer, tmp_path: Path, small_disk: Callable[..., Path]
) -> None:
    disk = small_disk("8m")
    archive, manifest = disk / "archive", tmp_path / "m.json"
    small, big = content_of(200_000, 1), content_of(12 * MiB, 2)
    served = {"big": big}

    def chunked(call: Call) -> Reply:  # no Content-Length: the size is known at the end only
        return Reply(200, served["big"], [("Content-Type", "video/mp4")], chunked=True)

    server.route("/big.mp4", chunked)
    server.add("/small.mp4", small)
    entries = (
        make_entry("small", server.url("/small.mp4")),
        make_entry("big", server.url("/big.mp4")),
    )
    write_manifest(Manifest(entries=entries), manifest)
    part = archive / "partial" / "big" / "video.part"
    error = (
        f"Error: Vidéo big (big, video): {server.url('/big.mp4')}: cannot write {part}: {FULL}\n"
    )
    for _ in range(2):  # and again, before any room is made: the same line, never exit 70
        assert run("download", manifest, "--archive", archive, "-q") == (1, error)
        # The partial went with the failure: the disk has its room back, the catalog its
        # write, and it is whole.
        assert not part.exists()
        assert shutil.disk_usage(disk).free > 6 * MiB
        assert intact(archive / "catalog.sqlite")
        assert last_failures(archive) == [("big", f"cannot write {part}: {FULL}")]
    assert run("verify", "--archive", archive, "-q") == (0, "")
    grow(disk, "64m")
    assert run("download", manifest, "--archive", archive, "-q") == (0, "")
    assert (archive / "media" / "big" / "video.mp4").read_bytes() == big
    assert (archive / "media" / "small" / "video.mp4").read_bytes() == small
    assert run("verify", "--archive", archive, "-q") == (0, "")


def test_the_size_its_instance_gave_is_checked_against_the_room_too(
    server: FileServer, tmp_path: Path, small_disk: Callable[..., Path]
) -> None:
    disk = small_disk("8m")
    server.add("/v.mp4", content_of(6 * MiB, 3))
    entry = make_entry("item-a", server.url("/v.mp4"))
    job = Job(entry, "video", server.url("/v.mp4"), "video.mp4", expected_size=6 * MiB)
    with Archive(disk / "archive") as archive:
        archive.record_item(entry)
        (outcome,) = asyncio.run(download_all([job], archive, settings=DownloadSettings()))
    assert outcome.status is Status.FAILED
    assert outcome.reason is not None
    assert outcome.reason.startswith("not enough space: needs 10.0 MiB, ")
    assert server.requests() == []


def test_two_files_that_fit_one_at_a_time_are_not_both_started(
    server: FileServer, tmp_path: Path, small_disk: Callable[..., Path]
) -> None:
    """Room is claimed by each transfer as it starts: the second sees what the first needs."""
    disk = small_disk("12m")
    entries, jobs = [], []
    for item in ("item-a", "item-b"):
        server.add(f"/{item}.mp4", content_of(4 * MiB, len(jobs)), trickle=(256 * 1024, 0.05))
        entry = make_entry(item, server.url(f"/{item}.mp4"))
        entries.append(entry)
        jobs.append(Job(entry, "video", entry.video.url or "", "video.mp4"))
    with Archive(disk / "archive") as archive:
        archive.record_items(entries)
        outcomes = asyncio.run(download_all(jobs, archive, settings=DownloadSettings(jobs=2)))
    statuses = sorted((o.status.value, (o.reason or "")[:22]) for o in outcomes)
    assert statuses == [("failed", "not enough space: need"), ("fetched", "")]


def test_a_refresh_on_a_nearly_full_disk_still_asks_and_not_modified_needs_no_room(
    server: FileServer, tmp_path: Path, small_disk: Callable[..., Path]
) -> None:
    disk = small_disk("8m")
    data = content_of(200_000, 4)
    server.add("/v.mp4", data)
    entry = make_entry("item-a", server.url("/v.mp4"))
    job = Job(entry, "video", server.url("/v.mp4"), "video.mp4", expected_size=len(data))
    with Archive(disk / "archive") as archive:
        archive.record_item(entry)
        (fetched,) = asyncio.run(download_all([job], archive, settings=DownloadSettings()))
        assert fetched.record is not None
        ballast = disk / "ballast"
        ballast.write_bytes(bytes(shutil.disk_usage(disk).free - MiB))  # 1 MiB left
        due = dataclasses.replace(job, revalidate=fetched.record)
        (refreshed,) = asyncio.run(download_all([due], archive, settings=DownloadSettings()))
    assert (refreshed.status, refreshed.reason) == (Status.HELD, None)
    assert server.requests()[-1].status == 304
