"""ffmpeg: arguments built by a pure function, and the real tools on real MP4s."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from archiver import media
from archiver.media import MediaError, MediaInfo, poster_command

from .media import make_mp4, probe_duration, probe_size


def test_poster_command_for_a_full_hd_video() -> None:
    command = poster_command(Path("in.mp4"), Path("out.jpg"), MediaInfo(100.0, 1920, 1080))
    assert command == [
        "ffmpeg",
        "-ss", "10.0",
        "-i", "in.mp4",
        "-filter_complex", "[0]scale=640:-2[s0]",
        "-map", "[s0]",
        "-f", "image2",
        "-q:v", "4",
        "-vcodec", "mjpeg",
        "-vframes", "1",
        "out.jpg",
        "-v", "error",
        "-nostdin",
        "-y",
    ]  # fmt: skip


def test_poster_command_for_an_odd_sized_video_makes_even_sizes() -> None:
    command = poster_command(Path("in.mp4"), Path("out.jpg"), MediaInfo(100.0, 853, 479))
    # 640 wide; "-2" makes the height that keeps the proportions (359.4), rounded to even: 360.
    assert command == [
        "ffmpeg",
        "-ss", "10.0",
        "-i", "in.mp4",
        "-filter_complex", "[0]scale=640:-2[s0]",
        "-map", "[s0]",
        "-f", "image2",
        "-q:v", "4",
        "-vcodec", "mjpeg",
        "-vframes", "1",
        "out.jpg",
        "-v", "error",
        "-nostdin",
        "-y",
    ]  # fmt: skip


def _value(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


@pytest.mark.parametrize(
    ("duration", "position"),
    [(100.0, "10.0"), (300.0, "30.0"), (7.3333, "0.733"), (None, "0.0")],
)
def test_poster_is_the_frame_at_a_tenth_of_the_video(duration: float | None, position: str) -> None:
    command = poster_command(Path("in.mp4"), Path("out.jpg"), MediaInfo(duration, 1920, 1080))
    assert _value(command, "-ss") == position
    assert command.index("-ss") < command.index("-i")  # an input seek: fast


@pytest.mark.parametrize(
    ("width", "scale"),
    [(1920, "640:-2"), (853, "640:-2"), (640, "640:-2"), (321, "320:-2"), (480, "480:-2")],
)
def test_poster_is_at_most_640_wide_and_of_even_width(width: int, scale: str) -> None:
    command = poster_command(Path("in.mp4"), Path("out.jpg"), MediaInfo(2.0, width, 479))
    assert _value(command, "-filter_complex") == f"[0]scale={scale}[s0]"


def test_poster_of_a_video_of_unknown_size_is_640_wide() -> None:
    command = poster_command(Path("in.mp4"), Path("out.jpg"), MediaInfo(None, None, None))
    assert _value(command, "-filter_complex") == "[0]scale=640:-2[s0]"


def test_probe_and_poster_on_a_real_fragmented_mp4(tmp_path: Path) -> None:
    video = make_mp4(tmp_path / "v.mp4", seconds=2, width=1280, height=720)
    info = media.probe(video)
    assert info.duration == pytest.approx(2.0, abs=0.1)
    assert (info.width, info.height) == (1280, 720)
    # What archiver reads with PyAV is what ffprobe, another reader, reads.
    assert info.duration == pytest.approx(probe_duration(video), abs=0.05)
    assert (info.width, info.height) == probe_size(video)
    assert media.confirm_playable(video) == info
    poster = tmp_path / "poster.jpg"
    media.make_poster(video, poster, info)
    assert poster.read_bytes()[:2] == b"\xff\xd8"  # JPEG
    assert probe_size(poster) == (640, 360)  # as ffprobe reads it
    assert not list(tmp_path.glob(".*tmp*"))


def test_probe_of_a_non_video_names_the_file_and_ffmpegs_reason(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.mp4"
    bogus.write_bytes(b"not a video at all")
    with pytest.raises(MediaError) as caught:
        media.probe(bogus)
    assert caught.value.message == (
        f"{bogus}: FFmpeg cannot read it: Invalid data found when processing input"
    )


def test_transcode_command_for_a_full_hd_video() -> None:
    command = media.transcode_command(
        Path("in.mp4"), Path("out.mp4"), MediaInfo(100.0, 1920, 1080), media.PRESETS["480p"]
    )
    assert command == [
        "ffmpeg",
        "-i", "in.mp4",
        "-filter_complex", "[0:v]scale=-2:480[s0]",
        "-map", "[s0]",
        "-f", "mp4",
        "-acodec", "aac",
        "-b:a", "96k",
        "-crf", "28",
        "-map", "0:a?",
        "-movflags", "+faststart",
        "-pix_fmt", "yuv420p",
        "-preset", "medium",
        "-vcodec", "libx264",
        "out.mp4",
        "-v", "error",
        "-nostdin",
        "-y",
    ]  # fmt: skip


def test_transcode_command_for_an_odd_sized_video_makes_even_sizes() -> None:
    command = media.transcode_command(
        Path("in.mp4"), Path("out.mp4"), MediaInfo(100.0, 853, 479), media.PRESETS["480p"]
    )
    # 479 rows become 478; "-2" makes the width that keeps the proportions, even as well.
    assert command == [
        "ffmpeg",
        "-i", "in.mp4",
        "-filter_complex", "[0:v]scale=-2:478[s0]",
        "-map", "[s0]",
        "-f", "mp4",
        "-acodec", "aac",
        "-b:a", "96k",
        "-crf", "28",
        "-map", "0:a?",
        "-movflags", "+faststart",
        "-pix_fmt", "yuv420p",
        "-preset", "medium",
        "-vcodec", "libx264",
        "out.mp4",
        "-v", "error",
        "-nostdin",
        "-y",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("height", "preset", "scaled"),
    [
        (1080, "480p", 480),
        (1080, "360p", 360),
        (479, "360p", 360),
        (360, "480p", 360),  # never upscaled
        (240, "360p", 240),  # never upscaled
        (None, "480p", 480),
    ],
)
def test_transcode_height_is_capped_by_the_preset_and_never_upscaled(
    height: int | None, preset: str, scaled: int
) -> None:
    command = media.transcode_command(
        Path("in.mp4"), Path("out.mp4"), MediaInfo(5.0, None, height), media.PRESETS[preset]
    )
    assert _value(command, "-filter_complex") == f"[0:v]scale=-2:{scaled}[s0]"


def test_transcode_command_is_driven_by_the_preset() -> None:
    preset = media.Preset(
        name="test", max_height=720, crf=31, audio_bitrate="48k", x264_preset="veryfast"
    )
    command = media.transcode_command(
        Path("in.mp4"), Path("out.mp4"), MediaInfo(5.0, 1920, 1080), preset
    )
    assert _value(command, "-filter_complex") == "[0:v]scale=-2:720[s0]"
    assert _value(command, "-crf") == "31"
    assert _value(command, "-b:a") == "48k"
    assert _value(command, "-preset") == "veryfast"


def test_transcode_keeps_sound_optional_and_starts_fast() -> None:
    command = media.transcode_command(
        Path("in.mp4"), Path("out.mp4"), MediaInfo(60.0, 1920, 1080), media.PRESETS["360p"]
    )
    maps = [command[i + 1] for i, flag in enumerate(command) if flag == "-map"]
    assert maps == ["[s0]", "0:a?"]  # the picture, then the sound if there is any
    assert _value(command, "-movflags") == "+faststart"


def test_transcode_makes_a_playable_smaller_mp4(tmp_path: Path) -> None:
    source = make_mp4(tmp_path / "hd.mp4", seconds=1, width=1280, height=720)
    target = tmp_path / "sd.mp4"
    media.transcode(source, target, media.probe(source), media.PRESETS["360p"])
    made = media.probe(target)
    assert (made.width, made.height) == (640, 360) == probe_size(target)
    assert made.duration == pytest.approx(1.0, abs=0.15)
    assert made.duration == pytest.approx(probe_duration(target), abs=0.05)
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
