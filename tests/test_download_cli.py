"""``archiver download`` as users and cron run it: exit codes, lines, locks, kills, the cap."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from archiver.archive import Archive
from archiver.cli import cli
from archiver.errors import ArchiveError
from archiver.fetch import DownloadSettings, Status, download
from archiver.manifest import Manifest, write_manifest

from .conftest import content_of, make_entry, sha256
from .media import make_mp4, probe_duration
from .server import FileServer


def run(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def write(tmp_path: Path, *entries: object) -> Path:
    path = tmp_path / "m.json"
    write_manifest(Manifest(entries=tuple(entries)), path)  # type: ignore[arg-type]
    return path


def start_download(manifest: Path, archive: Path, *extra: str) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "archiver",
        "download",
        str(manifest),
        "--archive",
        str(archive),
    ]
    return subprocess.Popen([*command, "-q", *extra], stderr=subprocess.DEVNULL)


def wait_for(condition: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        time.sleep(0.02)


def test_success_prints_a_summary_and_exits_0(server: FileServer, tmp_path: Path) -> None:
    server.add("/a.mp4", content_of(100_000))
    manifest = write(tmp_path, make_entry("item-a", server.url("/a.mp4")))
    code, stdout, stderr = run("download", manifest, "--archive", tmp_path / "arch")
    assert (code, stdout) == (0, "")
    assert re.fullmatch(
        r"Download: 1 video, 1 file: 1 downloaded, 0 changed, 0 already held, 0 failed;"
        r" 97\.7 KiB at \S+ \S+/s in \d+\.\d s\n",
        stderr,
    )
    code, _, stderr = run("download", manifest, "--archive", tmp_path / "arch")
    assert code == 0
    assert stderr.startswith(
        "Download: 1 video, 1 file: 0 downloaded, 0 changed, 1 already held, 0 failed; 0 B at 0 B/s"
    )


def test_quiet_success_prints_nothing(server: FileServer, tmp_path: Path) -> None:
    server.add("/a.mp4", content_of(10_000))
    manifest = write(tmp_path, make_entry("item-a", server.url("/a.mp4")))
    assert run("download", manifest, "--archive", tmp_path / "arch", "-q") == (0, "", "")


def test_failed_items_are_named_and_exit_1(server: FileServer, tmp_path: Path) -> None:
    server.add("/a.mp4", content_of(10_000))
    manifest = write(
        tmp_path,
        make_entry("item-a", server.url("/a.mp4")),
        make_entry("item-b", server.url("/missing.mp4")),
    )
    code, _, stderr = run("download", manifest, "--archive", tmp_path / "arch", "-q")
    assert code == 1
    assert stderr == (
        f"Error: Vidéo item-b (item-b, video): {server.url('/missing.mp4')}: HTTP 404 Not Found\n"
    )
    assert (tmp_path / "arch/media/item-a/video.mp4").exists()


def test_bad_manifest_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "m.json"
    bad.write_text('{"schema_version": 1, "entries": [{"id": "../x"}]}', encoding="utf-8")
    code, _, stderr = run("download", bad, "--archive", tmp_path / "arch")
    assert code == 2
    assert stderr.startswith(f"Error: {bad}: entries[0].id: '../x' is not a safe id")
    assert not (tmp_path / "x").exists()
    code, _, stderr = run("download", tmp_path / "none.json", "--archive", tmp_path / "arch")
    assert code == 2
    assert stderr.startswith(f"Error: {tmp_path / 'none.json'}: cannot read: ")


def test_bad_rate_limit_is_a_usage_error(tmp_path: Path) -> None:
    code, _, stderr = run("download", "m.json", "--rate-limit", "fast")
    assert code == 2
    assert "'fast' is not a size (examples: 500k, 2M, 1.5G, 4Go, 65536)" in stderr


def test_zero_is_no_cap_and_no_floor_as_the_help_says(server: FileServer, tmp_path: Path) -> None:
    """``--rate-limit 0`` (no cap: how wget and aria2c read it, to undo a config file's) and
    ``--min-rate 0`` (no floor, as its help says) are values, not sizes under one byte."""
    data = content_of(2_000_000)
    server.add("/a.mp4", data)
    manifest = write(tmp_path, make_entry("item-a", server.url("/a.mp4")))
    config = tmp_path / "archiver.toml"
    config.write_text('rate_limit = "1k"\n', encoding="utf-8")
    started = time.monotonic()
    code, _, stderr = run(
        "download", manifest, "--archive", tmp_path / "arch", "--config", config,
        "--rate-limit", "0", "--min-rate", "0",
    )  # fmt: skip
    assert (code, stderr.startswith("Download: 1 video, 1 file: 1 downloaded")) == (0, True)
    assert time.monotonic() - started < 20  # not 2 MB at the config's 1 KiB/s
    with Archive(tmp_path / "arch") as archive:
        record = archive.current("item-a", "video")
    assert record is not None and record.sha256 == sha256(data)


def test_second_run_on_a_locked_archive_exits_3_naming_the_holder(
    server: FileServer, tmp_path: Path
) -> None:
    server.add("/a.mp4", content_of(2_000_000))
    manifest = write(tmp_path, make_entry("item-a", server.url("/a.mp4")))
    archive = tmp_path / "arch"
    first = start_download(manifest, archive, "--rate-limit", "100k")
    try:
        lock = archive / "archiver.lock"
        wait_for(lambda: lock.exists() and lock.read_text().strip() == str(first.pid))
        start = time.monotonic()
        code, _, stderr = run("download", manifest, "--archive", archive)
        assert time.monotonic() - start < 5  # at once, not after waiting
        assert code == 3
        assert stderr == (
            f"Error: {archive} is locked by process {first.pid}\n"
            "Hint: another archiver run is using this archive; wait for it to finish\n"
        )
    finally:
        first.kill()
        first.wait()


@pytest.mark.slow
def test_sigkill_midway_then_the_next_run_resumes(server: FileServer, tmp_path: Path) -> None:
    data = content_of(3 * 1024 * 1024)
    server.add("/big.mp4", data)
    manifest = write(tmp_path, make_entry("item-a", server.url("/big.mp4")))
    archive = tmp_path / "arch"
    part = archive / "partial" / "item-a" / "video.part"
    first = start_download(manifest, archive, "--rate-limit", "512k")
    wait_for(lambda: part.exists() and part.stat().st_size >= 400_000)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    held = part.stat().st_size
    assert 0 < held < len(data)

    code, _, stderr = run("download", manifest, "--archive", archive, "-q")
    assert (code, stderr) == (0, "")
    resumed = server.requests("/big.mp4")[-1]
    assert resumed.status == 206
    assert resumed.headers["Range"] == f"bytes={held}-"
    assert resumed.sent == len(data) - held
    final = archive / "media" / "item-a" / "video.mp4"
    assert sha256(final.read_bytes()) == sha256(data)
    with Archive(archive) as store:
        record = store.current("item-a", "video")
    assert record is not None
    assert record.sha256 == sha256(data)


@pytest.mark.slow
def test_rate_limit_caps_the_whole_process_within_ten_percent(
    server: FileServer, tmp_path: Path
) -> None:
    rate = 512 * 1024
    sizes = [2 * 1024 * 1024, 2 * 1024 * 1024, 1024 * 1024]  # 5 MiB: 10 s at 512k
    entries = []
    for i, size in enumerate(sizes):
        server.add(f"/r/{i}.mp4", content_of(size, i))
        entries.append(make_entry(f"item-{i}", server.url(f"/r/{i}.mp4")))
    start = time.monotonic()
    report = download(
        Manifest(entries=tuple(entries)),
        tmp_path,
        settings=DownloadSettings(jobs=3, rate_limit=rate),
    )
    elapsed = time.monotonic() - start
    assert report.count(Status.FETCHED) == 3
    achieved = sum(sizes) / elapsed
    assert achieved <= 1.10 * rate, f"{achieved / 1024:.0f} KiB/s over a 512 KiB/s cap"
    assert achieved >= 0.85 * rate, (
        f"{achieved / 1024:.0f} KiB/s: the cap slows more than it should"
    )


def test_real_fragmented_mp4_is_archived_playable(server: FileServer, tmp_path: Path) -> None:
    video = make_mp4(tmp_path / "source.mp4", seconds=2)
    server.add("/v/uuid-480-fragmented.mp4", video.read_bytes())
    manifest = write(tmp_path, make_entry("item-a", server.url("/v/uuid-480-fragmented.mp4")))
    code, _, _ = run("download", manifest, "--archive", tmp_path / "arch", "-q")
    assert code == 0
    archived = tmp_path / "arch" / "media" / "item-a" / "video.mp4"
    assert archived.read_bytes() == video.read_bytes()
    assert probe_duration(archived) == pytest.approx(2.0, abs=0.1)


def _without_moov(video: bytes) -> bytes:
    """The same boxes, the movie header renamed: whole to a box walk, unreadable to FFmpeg."""
    at = video.index(b"moov")
    return video[:at] + b"moox" + video[at + 4 :]


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        pytest.param("audio", "no video stream", id="sound-only"),
        pytest.param("no-moov", "FFmpeg cannot read it: Invalid data found when processing input",
                     id="no-movie-header"),
    ],
)  # fmt: skip
def test_a_download_ffmpeg_cannot_play_is_an_error_and_quarantined(
    server: FileServer, tmp_path: Path, make: str, reason: str
) -> None:
    from .media import make_audio_only_mp4

    if make == "audio":
        data = make_audio_only_mp4(tmp_path / "sound.mp4").read_bytes()
    else:
        data = _without_moov(make_mp4(tmp_path / "v.mp4", seconds=1).read_bytes())
    server.add("/bad.mp4", data)
    manifest = write(tmp_path, make_entry("item-a", server.url("/bad.mp4"), title="Mauvaise"))
    code, _, stderr = run("download", manifest, "--archive", tmp_path / "arch", "-q")
    assert code == 1
    assert stderr == (
        f"Error: Mauvaise (item-a, video): {server.url('/bad.mp4')}: not a playable MP4: {reason}\n"
    )
    with Archive(tmp_path / "arch") as archive:
        assert archive.held("item-a", "video") is None
    quarantined = list((tmp_path / "arch" / "quarantine" / "item-a").iterdir())
    assert [q.read_bytes() for q in quarantined] == [data]


def test_what_ffmpeg_read_at_download_is_kept_for_the_kit(
    server: FileServer, tmp_path: Path
) -> None:
    video = make_mp4(tmp_path / "source.mp4", seconds=2, width=320, height=240).read_bytes()
    server.add("/v.mp4", video)
    download(Manifest(entries=(make_entry("item-a", server.url("/v.mp4")),)), tmp_path / "arch")
    with Archive(tmp_path / "arch") as archive:
        facts = archive.media_facts(sha256(video))
    assert facts is not None
    assert (facts.width, facts.height) == (320, 240)
    assert facts.duration == pytest.approx(2.0, abs=0.1)


def test_a_video_that_crashes_ffmpeg_fails_alone_and_the_run_goes_on(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from archiver import media

    from .test_media import fragile_prober

    prober = fragile_prober()
    monkeypatch.setattr(media, "PROBER", prober)
    items = []
    for number, item in enumerate(("ffmpeg-dies", "item-b", "item-c")):
        server.add(f"/{item}.mp4", content_of(120_000, number))
        items.append(make_entry(item, server.url(f"/{item}.mp4"), title=item))
    try:
        report = download(Manifest(entries=tuple(items)), tmp_path / "arch")
    finally:
        prober.close()
    assert [(f.job.entry.id, f.reason) for f in report.failures] == [
        ("ffmpeg-dies", "not a playable MP4: FFmpeg crashed reading it (SIGABRT)")
    ]
    assert report.count(Status.FETCHED) == 2
    with Archive(tmp_path / "arch") as archive:
        assert archive.held("ffmpeg-dies", "video") is None
        assert archive.held("item-c", "video") is not None


def test_a_server_trickling_bytes_cannot_hold_the_archive_for_ever(
    server: FileServer, tmp_path: Path
) -> None:
    # A byte every 0.2 s: the read timeout never fires, the minimum rate (1 KiB/s) does.
    server.add("/a.mp4", content_of(100_000), trickle=(1, 0.2))
    manifest = write(tmp_path, make_entry("item-a", server.url("/a.mp4")))
    archive = tmp_path / "arch"
    start = time.monotonic()
    code, _, stderr = run(
        "download", manifest, "--archive", archive, "--timeout", "1", "--retries", "1", "-q"
    )
    assert time.monotonic() - start < 10
    assert (code, stderr) == (
        1,
        f"Error: Vidéo item-a (item-a, video): {server.url('/a.mp4')}:"
        " stalled: under 1.0 KiB/s for 1 s (gave up after 2 attempts)\n",
    )
    with Archive(archive) as store:
        store.lock()  # free: the next cron run is not told another holds it


@pytest.mark.parametrize("kind", ["symlink", "fifo", "folder"])
def test_a_lock_that_is_not_a_regular_file_is_refused_and_never_written_through(
    server: FileServer, tmp_path: Path, kind: str
) -> None:
    server.add("/a.mp4", content_of(10_000))
    manifest = write(tmp_path, make_entry("item-a", server.url("/a.mp4")))
    archive = tmp_path / "arch"
    archive.mkdir()
    lock = archive / "archiver.lock"
    victim = tmp_path / "precious.txt"
    victim.write_text("not archiver's\n")
    if kind == "symlink":
        lock.symlink_to(victim)
        why = "a symbolic link; archiver does not write through links"
    elif kind == "fifo":
        os.mkfifo(lock)
        why = "a device or other special file, not a regular file"
    else:
        lock.mkdir()
        why = "a folder, not a file"
    code, _, stderr = run("download", manifest, "--archive", archive, "-q")
    assert (code, stderr) == (2, f"Error: {lock}: not usable as the archive's lock: {why}\n")
    assert victim.read_text() == "not archiver's\n"  # not truncated, no PID written in it
    assert not (archive / "media" / "item-a" / "video.mp4").exists()


def test_a_lock_swapped_for_a_link_after_the_check_is_still_not_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import archiver.archive as archive_module

    root = tmp_path / "arch"
    victim = tmp_path / "precious.txt"
    victim.write_text("not archiver's\n")
    store = Archive(root)
    lock = root / "archiver.lock"

    def swapped(path: Path) -> None:  # the check passes; a link appears before the open
        lock.symlink_to(victim)

    monkeypatch.setattr(archive_module, "unsafe_target", swapped)
    with pytest.raises(ArchiveError, match=r"not usable as the archive's lock: a symbolic link"):
        store.lock()
    store.close()
    assert victim.read_text() == "not archiver's\n"
