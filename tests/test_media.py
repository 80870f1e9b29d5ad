"""ffmpeg: arguments built by a pure function, and the real tools on real MP4s."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from archiver import media
from archiver.media import MediaError, MediaInfo, poster_command

from .media import make_mp4, require


def test_poster_command_seeks_to_a_tenth_and_scales_down_to_640() -> None:
    command = poster_command(Path("in.mp4"), Path("out.jpg"), MediaInfo(300.0, 1920, 1080))
    assert command[:5] == ["ffmpeg", "-ss", "30.0", "-i", "in.mp4"]
    assert "scale=640:-2" in command[command.index("-filter_complex") + 1]
    assert command.index("out.jpg") > command.index("-vframes")
    assert {"-nostdin", "-y"} <= set(command)
    assert command[command.index("-vframes") : command.index("-vframes") + 2] == ["-vframes", "1"]


def test_poster_command_keeps_a_small_video_at_its_size() -> None:
    command = poster_command(Path("in.mp4"), Path("out.jpg"), MediaInfo(2.0, 321, 240))
    assert "scale=320:-2" in command[command.index("-filter_complex") + 1]


def test_probe_and_poster_on_a_real_fragmented_mp4(tmp_path: Path) -> None:
    video = make_mp4(tmp_path / "v.mp4", seconds=2, width=1280, height=720)
    info = media.probe(video)
    assert info.duration == pytest.approx(2.0, abs=0.1)
    assert (info.width, info.height) == (1280, 720)
    assert media.confirm_playable(video) == info
    poster = tmp_path / "poster.jpg"
    media.make_poster(video, poster, info)
    assert poster.read_bytes()[:2] == b"\xff\xd8"  # JPEG
    ffprobe = require("ffprobe")
    size = subprocess.run(
        [ffprobe, "-v", "error", "-show_entries", "stream=width,height", "-of", "csv=p=0", str(poster)],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert size == "640,360"
    assert not list(tmp_path.glob(".*tmp*"))


def test_probe_of_a_non_video_names_the_file_and_ffmpegs_reason(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.mp4"
    bogus.write_bytes(b"not a video at all")
    with pytest.raises(MediaError) as caught:
        media.probe(bogus)
    assert caught.value.message == (
        f"{bogus}: FFmpeg cannot read it: Invalid data found when processing input"
    )


def test_transcode_command_scales_to_the_preset_and_keeps_sound_optional() -> None:
    command = media.transcode_command(
        Path("in.mp4"), Path("out.mp4"), MediaInfo(60.0, 1920, 1080), media.PRESETS["480p"]
    )
    graph = command[command.index("-filter_complex") + 1]
    assert "scale=-2:480" in graph
    assert command[command.index("-crf") + 1] == "28"
    assert command[command.index("-b:a") + 1] == "96k"
    assert command[command.index("-movflags") + 1] == "+faststart"
    assert "0:a?" in command
    assert command[command.index("-vcodec") + 1] == "libx264"


def test_transcode_never_upscales() -> None:
    command = media.transcode_command(
        Path("in.mp4"), Path("out.mp4"), MediaInfo(5.0, 640, 360), media.PRESETS["480p"]
    )
    assert "scale=-2:360" in command[command.index("-filter_complex") + 1]


def test_transcode_makes_a_playable_smaller_mp4(tmp_path: Path) -> None:
    source = make_mp4(tmp_path / "hd.mp4", seconds=1, width=1280, height=720)
    target = tmp_path / "sd.mp4"
    media.transcode(source, target, media.probe(source), media.PRESETS["360p"])
    made = media.probe(target)
    assert (made.width, made.height) == (640, 360)
    assert made.duration == pytest.approx(1.0, abs=0.15)
    assert media.mp4_problem(target) is None
    assert target.read_bytes()[4:8] == b"ftyp"


# A worker that reads like the real one, except that it dies on a path with "/ffmpeg-dies" and
# hangs over one with "/ffmpeg-stalls": how a file that crashes or hangs FFmpeg looks from
# archiver's side.
_FRAGILE = """
import json, os, sys, time
sys.path.insert(0, {folder!r})
from _probe_worker import read
for line in sys.stdin:
    path = json.loads(line)
    if "/ffmpeg-dies" in path:
        os.abort()
    if "/ffmpeg-stalls" in path:
        time.sleep(60)
    sys.stdout.write(json.dumps(read(path)) + "\\n")
    sys.stdout.flush()
"""


def fragile_prober(timeout: float = 30.0) -> media.Prober:
    worker = Path(media.__file__).parent
    code = _FRAGILE.format(folder=str(worker))
    return media.Prober([sys.executable, "-c", code], timeout=timeout)


def test_a_file_that_crashes_ffmpeg_costs_that_file_not_the_reader(tmp_path: Path) -> None:
    good = make_mp4(tmp_path / "good.mp4", seconds=1)
    bad = tmp_path / "ffmpeg-dies.mp4"
    bad.write_bytes(good.read_bytes())
    prober = fragile_prober()
    try:
        assert prober.probe(good).height == 240
        with pytest.raises(MediaError) as caught:
            prober.probe(bad)
        assert caught.value.message == f"{bad}: FFmpeg crashed reading it (SIGABRT)"
        assert prober.probe(good).height == 240  # a new worker, for the next file
    finally:
        prober.close()


def test_a_file_that_keeps_ffmpeg_busy_is_given_up_after_the_timeout(tmp_path: Path) -> None:
    good = make_mp4(tmp_path / "good.mp4", seconds=1)
    stuck = tmp_path / "ffmpeg-stalls.mp4"
    stuck.write_bytes(good.read_bytes())
    prober = fragile_prober(timeout=1.0)
    try:
        with pytest.raises(MediaError) as caught:
            prober.probe(stuck)
        assert caught.value.message == f"{stuck}: FFmpeg took more than 1 s to read it"
        assert prober.probe(good).duration == pytest.approx(1.0, abs=0.1)
    finally:
        prober.close()


def test_the_reader_ends_with_its_input(tmp_path: Path) -> None:
    prober = media.Prober()
    prober.start()
    worker = prober._process
    assert worker is not None
    prober.close()
    assert worker.returncode == 0
