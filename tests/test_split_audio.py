"""PeerTube's split sound in a kit: a picture-only video and its sound file, joined by ffmpeg.

PeerTube 6.3 and later (``transcoding.hls.split_audio_and_video``) stores a video's sound in a
file of its own: every video file of the HLS playlist has ``hasAudio: false``, and one more,
``resolution.id`` 0 and ``hasVideo: false``, holds the sound. The archive keeps them under the
roles ``"video"`` and ``"audio"``; the kit carries them joined, under the video's name. The
files here are real ones made by ffmpeg, put into an archive as the downloader would.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import bagit
import pytest
from click.testing import CliRunner
from playwright.sync_api import Browser

from archiver import media
from archiver.archive import Archive, FetchedFile
from archiver.catalog import FileRecord
from archiver.choose import kit_overhead
from archiver.cli import cli
from archiver.fetch.plan import file_name
from archiver.kit import KitReport, KitSettings, derive, package
from archiver.manifest import Manifest, write_manifest

from .conftest import chromium, make_entry, sha256
from .media import (
    make_mp4,
    make_split_audio_mp4,
    make_split_video_mp4,
    probe_duration,
    probe_size,
    probe_streams,
)

SECONDS = 3
UUID = "8e2a3c10-5b4f-4d7e-9a61-3f0c2b1d4e5f"
DOWNLOADS = "https://tube.example.org/download/streaming-playlists/hls/videos/"
VIDEO_NAME = f"{UUID}-480-fragmented.mp4"
AUDIO_NAME = f"{UUID}-0-fragmented.mp4"  # PeerTube names the sound file as resolution 0
# The kit names a video for its title and height, whatever its name upstream or in the archive.
KIT_FOLDER = "Prendre-la-parole-en-classe"  # ENTRY's title, below
KIT_VIDEO = f"{KIT_FOLDER}-480p.mp4"


@dataclasses.dataclass(frozen=True)
class Split:
    """The files of one split video, as PeerTube serves them: fragmented MP4s."""

    video: bytes  # 640x480, no sound
    video_240: bytes  # the same at 320x240, an earlier version held
    audio: bytes  # 440 Hz
    other_audio: bytes  # 660 Hz: the sound changed upstream
    whole: bytes  # picture and sound in one file, as before split sound


@pytest.fixture(scope="session")
def split(tmp_path_factory: pytest.TempPathFactory) -> Split:
    folder = tmp_path_factory.mktemp("split")
    return Split(
        video=make_split_video_mp4(folder / "v480.mp4", seconds=SECONDS, width=640, height=480)
        .read_bytes(),
        video_240=make_split_video_mp4(folder / "v240.mp4", seconds=SECONDS).read_bytes(),
        audio=make_split_audio_mp4(folder / "a.mp4", seconds=SECONDS).read_bytes(),
        other_audio=make_split_audio_mp4(folder / "a2.mp4", seconds=SECONDS, frequency=660)
        .read_bytes(),
        whole=make_mp4(folder / "whole.mp4", seconds=SECONDS, width=640, height=480).read_bytes(),
    )  # fmt: skip


ENTRY = make_entry("parole", DOWNLOADS + VIDEO_NAME, title="Prendre la parole en classe")


def hold(
    root: Path,
    role: str,
    data: bytes,
    *,
    name: str | None = None,
    resolution: int | None = None,
    check: bool = True,
) -> FileRecord:
    """Put ``data`` in the archive as the current ``role`` file of :data:`ENTRY`, as the
    downloader does: named for its role, checked with FFmpeg (unless ``check`` is false), its
    facts recorded. ``name`` is the one upstream, in its URL."""
    name = name or (AUDIO_NAME if role == "audio" else VIDEO_NAME)
    with Archive(root) as archive:
        archive.record_item(ENTRY)
        part, _ = archive.partial_paths(ENTRY.id, role)
        part.parent.mkdir(parents=True, exist_ok=True)
        part.write_bytes(data)
        facts = None
        if check:
            confirm = media.confirm_audio if role == "audio" else media.confirm_playable
            info = confirm(part)
            facts = (info.duration, info.width, info.height)
        url = DOWNLOADS + name
        fetched = FetchedFile(
            url, url, sha256(data), len(data), None, None, "video/mp4", resolution, facts
        )
        stored = file_name(role, resolution=resolution)
        return archive.commit(ENTRY.id, role, stored, part, fetched)


def hold_split(root: Path, split: Split) -> tuple[FileRecord, FileRecord]:
    return hold(root, "video", split.video, resolution=480), hold(root, "audio", split.audio)


def run(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def package_cli(tmp_path: Path, *options: str) -> tuple[int, str, str]:
    """``archiver package`` of :data:`ENTRY` from ``tmp_path/archive`` into ``tmp_path/kit``."""
    manifest = tmp_path / "m.json"
    write_manifest(Manifest(entries=(ENTRY,)), manifest)
    archive, kit = tmp_path / "archive", tmp_path / "kit"
    return run("package", manifest, "--archive", archive, "-o", kit, *options)


def package_api(tmp_path: Path, **settings: object) -> KitReport:
    manifest = Manifest(entries=(ENTRY,))
    return package(
        manifest,
        tmp_path / "archive",
        tmp_path / "kit",
        settings=KitSettings(**settings),  # type: ignore[arg-type]
    )


def count_muxes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every target ``media.mux`` is asked to make, from now on."""
    made: list[Path] = []
    real = media.mux

    def counting(video: Path, audio: Path, target: Path) -> None:
        made.append(target)
        real(video, audio, target)

    monkeypatch.setattr(media, "mux", counting)
    return made


def kit_video(tmp_path: Path, name: str = KIT_VIDEO) -> Path:
    return tmp_path / "kit" / "data" / "videos" / KIT_FOLDER / name


# -- the kit carries the picture with its sound ----------------------------------------------


def test_the_kit_carries_the_video_joined_with_its_sound(split: Split, tmp_path: Path) -> None:
    video, audio = hold_split(tmp_path / "archive", split)
    code, _, stderr = package_cli(tmp_path)
    assert code == 0, stderr
    assert "Warning" not in stderr
    joined = kit_video(tmp_path)  # the video's own name: kits stay stable
    assert probe_streams(joined) == ["video", "audio"]
    assert probe_size(joined) == (640, 480)
    assert probe_duration(joined) == pytest.approx(SECONDS, abs=0.1)
    folder = joined.parent
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["index.html", "poster.jpg", KIT_VIDEO]
    )
    assert probe_size(folder / "poster.jpg") == (640, 480)
    page = (folder / "index.html").read_text()
    assert f'<source src="{KIT_VIDEO}" type="video/mp4">' in page
    assert 'poster="poster.jpg"' in page
    assert "3 s · 480p" in page
    # Made once, kept in the archive's derived store under the video's sha256, with what
    # FFmpeg read of it; the kit hard-links it from there.
    with Archive(tmp_path / "archive") as archive:
        made = archive.derived(video.sha256, f"joined-{audio.sha256[:16]}", media.MUX_VERSION)
        assert made is not None and made.path is not None and made.file_sha256 is not None
        assert os.stat(archive.root / made.path).st_ino == os.stat(joined).st_ino
        facts = archive.media_facts(made.file_sha256)
        assert facts is not None and (facts.width, facts.height) == (640, 480)
        assert facts.duration == pytest.approx(probe_duration(joined), abs=0.05)
    code, _, stderr = run("verify", tmp_path / "kit")
    assert code == 0, stderr
    bagit.Bag(str(tmp_path / "kit")).validate()


def test_a_second_package_joins_nothing_again(
    split: Split, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hold_split(tmp_path / "archive", split)
    muxes = count_muxes(monkeypatch)
    package_api(tmp_path)
    assert len(muxes) == 1
    made = muxes[0].stat().st_mtime_ns
    again = package_api(tmp_path)
    assert len(muxes) == 1  # from the archive's derived store
    assert (again.written, again.removed, again.changed) == (0, 0, ())
    assert muxes[0].stat().st_mtime_ns == made


def test_a_changed_sound_is_joined_again_under_the_same_name(
    split: Split, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    video, _ = hold_split(tmp_path / "archive", split)
    package_api(tmp_path)
    before = kit_video(tmp_path).read_bytes()
    hold(tmp_path / "archive", "audio", split.other_audio)  # a new version of the sound
    muxes = count_muxes(monkeypatch)
    report = package_api(tmp_path)
    assert len(muxes) == 1
    assert report.changed == (  # the poster is the same; the page shows the new file's sha256
        "data/provenance.json",
        f"data/videos/{KIT_FOLDER}/{KIT_VIDEO}",
        f"data/videos/{KIT_FOLDER}/index.html",
    )
    assert kit_video(tmp_path).read_bytes() != before
    assert probe_streams(kit_video(tmp_path)) == ["video", "audio"]
    made = sorted(p.name for p in (tmp_path / "archive" / "derived").rglob("*joined-*"))
    assert len(made) == 2  # both kept, each under the video's sha256
    assert all(name.startswith(video.sha256) for name in made)
    bagit.Bag(str(tmp_path / "kit")).validate()


def test_a_video_with_its_own_sound_is_carried_as_it_is(
    split: Split, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hold(tmp_path / "archive", "video", split.whole, resolution=480)
    hold(tmp_path / "archive", "audio", split.audio)  # left from when the video was split
    muxes = count_muxes(monkeypatch)
    report = package_api(tmp_path)
    assert muxes == []
    assert report.warnings == ()
    assert kit_video(tmp_path).read_bytes() == split.whole


def test_transcode_re_encodes_the_joined_video_and_keeps_its_sound(
    split: Split, tmp_path: Path
) -> None:
    hold_split(tmp_path / "archive", split)
    code, _, stderr = package_cli(tmp_path, "--transcode", "360p")
    assert code == 0, stderr
    small = kit_video(tmp_path, f"{KIT_FOLDER}-360p.mp4")
    assert probe_streams(small) == ["video", "audio"]
    assert probe_size(small) == (480, 360)
    assert probe_duration(small) == pytest.approx(SECONDS, abs=0.15)
    assert not kit_video(tmp_path).exists()
    assert "3 s · 360p" in (small.parent / "index.html").read_text()
    # Made from the joined file, kept under its sha256.
    with Archive(tmp_path / "archive") as archive:
        joined = next((archive.root / "derived").rglob("*joined-*.mp4"))
        assert archive.derived(sha256(joined.read_bytes()), "transcode-360p", 1) is not None
    bagit.Bag(str(tmp_path / "kit")).validate()


def test_fit_counts_the_sound_with_each_version_of_the_video(split: Split, tmp_path: Path) -> None:
    root = tmp_path / "archive"
    hold(root, "video", split.video_240, name=f"{UUID}-240-fragmented.mp4", resolution=240)
    tall, audio = hold_split(root, split)  # the current version: 480p
    with Archive(root) as archive:
        estimate = derive.carried_size(archive, tall, audio)
    assert estimate > tall.size + audio.size
    # Room for the 480p picture alone, not with its sound: the 240p one, with its sound.
    budget = kit_overhead(1) + tall.size + audio.size // 2
    report = package_api(tmp_path, fit=budget)
    assert report.left_out == ()
    carried = kit_video(tmp_path, f"{KIT_FOLDER}-240p.mp4")
    assert probe_streams(carried) == ["video", "audio"]
    assert probe_size(carried) == (320, 240)
    # With room for both, the 480p one, joined; the estimate was no less than what was made.
    report = package_api(tmp_path, fit=kit_overhead(1) + estimate)
    assert probe_size(kit_video(tmp_path)) == (640, 480)
    assert kit_video(tmp_path).stat().st_size <= estimate
    with Archive(root) as archive:
        assert derive.carried_size(archive, tall, audio) == kit_video(tmp_path).stat().st_size


# -- when the sound cannot be joined --------------------------------------------------------
#
# A missing or unplayable sound file, or no ffmpeg, leaves the video in the kit without sound,
# with a warning naming it: the page keeps its transcript and captions and the picture still
# serves a class; once the archive holds the sound again, the next update joins it, under the
# same name. A join that ffmpeg botches is an error: the video stays out, named, exit 1.


def test_a_missing_sound_file_leaves_the_video_silent_with_a_warning(
    split: Split, tmp_path: Path
) -> None:
    _, audio = hold_split(tmp_path / "archive", split)
    (tmp_path / "archive" / audio.path).unlink()
    code, _, stderr = package_cli(tmp_path)
    assert code == 0
    assert stderr.startswith(
        "Warning: Prendre la parole en classe (parole): carried without sound:"
        " its sound file is missing (run 'archiver download')\n"
    )
    assert kit_video(tmp_path).read_bytes() == split.video
    assert probe_streams(kit_video(tmp_path)) == ["video"]
    bagit.Bag(str(tmp_path / "kit")).validate()


def test_an_unplayable_sound_file_leaves_the_video_silent_with_a_warning(
    split: Split, tmp_path: Path
) -> None:
    hold(tmp_path / "archive", "video", split.video, resolution=480)
    hold(tmp_path / "archive", "audio", b"<html>503</html>", check=False)  # from before checks
    code, _, stderr = package_cli(tmp_path)
    assert code == 0
    assert stderr.startswith(
        "Warning: Prendre la parole en classe (parole): carried without sound: its sound file"
        " media/parole/audio.mp4 is not playable: not an MP4 (no ftyp box at the start)\n"
    )
    assert probe_streams(kit_video(tmp_path)) == ["video"]
    bagit.Bag(str(tmp_path / "kit")).validate()


def test_without_ffmpeg_the_video_is_carried_silent_and_that_is_said(
    split: Split,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    hold_split(tmp_path / "archive", split)
    monkeypatch.setattr(media, "available", lambda: False)
    with caplog.at_level(logging.WARNING, logger="archiver"):
        report = package_api(tmp_path)
    assert report.left_out == ()
    assert (
        "Prendre la parole en classe (parole): carried without sound:"
        " ffmpeg is not installed (Debian package: ffmpeg): cannot join its sound"
    ) in caplog.messages
    assert kit_video(tmp_path).read_bytes() == split.video


def test_a_join_without_sound_leaves_the_video_out_named(
    split: Split, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hold_split(tmp_path / "archive", split)

    def botched(video: Path, audio: Path, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(video.read_bytes())  # as if the sound had not been mapped

    monkeypatch.setattr(media, "mux", botched)
    code, _, stderr = package_cli(tmp_path, "-q")
    assert code == 1
    assert stderr == (
        "Error: Prendre la parole en classe (parole): cannot join its picture and its sound:"
        " the joined file: no audio stream\n"
    )
    assert not kit_video(tmp_path).parent.exists()
    assert not list((tmp_path / "archive" / "derived").rglob("*joined-*"))  # nothing kept
    bagit.Bag(str(tmp_path / "kit")).validate()


# -- in a real browser, from file:// -----------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium("--autoplay-policy=no-user-gesture-required") as launched:
        yield launched


def test_chromium_plays_the_joined_video_with_its_sound(
    split: Split, tmp_path: Path, browser: Browser
) -> None:
    hold_split(tmp_path / "archive", split)
    package_api(tmp_path)
    page = browser.new_page()
    try:
        page.goto((kit_video(tmp_path).parent / "index.html").as_uri())
        video = "document.querySelector('video')"
        page.evaluate(f"{video}.play()")
        # Polled from here: wait_for_function evaluates a string in the page, which the kit's
        # Content-Security-Policy (no 'unsafe-eval') rightly refuses.
        for _ in range(100):
            if page.evaluate(f"{video}.currentTime") > 0.5:
                break
            page.wait_for_timeout(50)
        assert page.evaluate(f"{video}.currentTime") > 0.5
        assert page.evaluate(f"{video}.duration") == pytest.approx(SECONDS, abs=0.1)
        assert page.evaluate(f"{video}.videoHeight") == 480
        assert page.evaluate(f"{video}.webkitAudioDecodedByteCount") > 0  # the sound, decoded
    finally:
        page.context.close()
