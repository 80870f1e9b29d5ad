"""ffmpeg: arguments built by a pure function, and the real tools on real MP4s."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from archiver import media
from archiver.media import MediaError, MediaInfo, poster_command

from .media import (
    make_audio_only_mp4,
    make_mp4,
    make_split_audio_mp4,
    make_split_video_mp4,
    probe_duration,
    probe_size,
    probe_streams,
    require,
)


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
    # So the command is the full-HD one, asserted flag by flag above.
    full_hd = poster_command(Path("in.mp4"), Path("out.jpg"), MediaInfo(100.0, 1920, 1080))
    assert command == full_hd
    assert command[command.index("-filter_complex") + 1] == "[0]scale=640:-2[s0]"


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
    full_hd = media.transcode_command(
        Path("in.mp4"), Path("out.mp4"), MediaInfo(100.0, 1920, 1080), media.PRESETS["480p"]
    )
    # 479 rows become 478; "-2" makes the width that keeps the proportions, even as well.
    assert command[command.index("-filter_complex") + 1] == "[0:v]scale=-2:478[s0]"
    assert [a for a in command if "scale" not in a] == [a for a in full_hd if "scale" not in a]


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


# -- PeerTube's split sound: reading whether there is sound, and joining it -------------------


def test_mux_command_copies_the_first_picture_then_the_first_sound() -> None:
    command = media.mux_command(Path("v.mp4"), Path("a.mp4"), Path("out.mp4"))
    assert command == [
        "ffmpeg",
        "-i", "v.mp4",
        "-i", "a.mp4",
        "-map", "0:v:0",
        "-map", "1:a:0",
        "-c", "copy",
        "-f", "mp4",
        "-movflags", "+faststart",
        "out.mp4",
        "-v", "error",
        "-nostdin",
        "-y",
    ]  # fmt: skip


def test_mux_command_never_re_encodes_and_never_reads_the_terminal() -> None:
    command = media.mux_command(Path("-v.mp4"), Path("a b.mp4"), Path("out.mp4"))
    assert [command[i + 1] for i, flag in enumerate(command) if flag == "-i"] == [
        "-v.mp4",  # a path, never taken for a flag: it follows -i
        "a b.mp4",  # one argument, no shell
    ]
    assert _value(command, "-c") == "copy"
    assert not {"-vcodec", "-acodec", "-c:v", "-c:a", "-filter_complex"} & set(command)
    assert "-nostdin" in command


def test_probe_says_whether_a_file_has_sound(tmp_path: Path) -> None:
    both = media.probe(make_mp4(tmp_path / "both.mp4", seconds=1))
    picture = media.probe(make_split_video_mp4(tmp_path / "v.mp4", seconds=1))
    sound = media.probe(make_split_audio_mp4(tmp_path / "a.mp4", seconds=1))
    assert (both.audio, picture.audio, sound.audio) == (True, False, True)
    assert (picture.width, picture.height) == (320, 240)
    assert (sound.width, sound.height) == (None, None)
    assert sound.duration == pytest.approx(1.0, abs=0.1)


def test_confirm_audio_takes_a_sound_only_mp4_and_names_what_is_wrong(tmp_path: Path) -> None:
    sound = make_split_audio_mp4(tmp_path / "a.mp4", seconds=1)
    info = media.confirm_audio(sound)
    assert info.audio is True
    assert info.duration == pytest.approx(probe_duration(sound), abs=0.05)
    assert media.confirm_audio(make_audio_only_mp4(tmp_path / "plain.mp4")).audio is True
    picture = make_split_video_mp4(tmp_path / "v.mp4", seconds=1)
    with pytest.raises(MediaError) as caught:
        media.confirm_audio(picture)
    assert caught.value.message == f"{picture}: no audio stream"
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(sound.read_bytes()[:-100])
    with pytest.raises(MediaError) as caught:
        media.confirm_audio(cut)
    assert caught.value.reason.startswith("truncated: the last 'mdat' box ends ")
    with pytest.raises(MediaError) as caught:
        media.confirm_audio(tmp_path / "absent.mp4")
    assert caught.value.reason.startswith("cannot read it: ")


def test_confirm_playable_requires_sound_only_when_asked(tmp_path: Path) -> None:
    picture = make_split_video_mp4(tmp_path / "v.mp4", seconds=1)
    assert media.confirm_playable(picture).audio is False  # a video file of a split video
    with pytest.raises(MediaError) as caught:
        media.confirm_playable(picture, require_audio=True)
    assert caught.value.message == f"{picture}: no audio stream"
    both = make_mp4(tmp_path / "both.mp4", seconds=1)
    assert media.confirm_playable(both, require_audio=True).audio is True


def test_an_answer_without_audio_from_an_older_reader_reads_as_unknown() -> None:
    answer = '{"duration": 2.0, "width": 320, "height": 240}'
    code = f"import sys\nfor line in sys.stdin:\n    print({answer!r}, flush=True)"
    prober = media.Prober([sys.executable, "-c", code])
    try:
        assert prober.probe(Path("any.mp4")) == MediaInfo(2.0, 320, 240, None)
    finally:
        prober.close()


def _stream_hash(path: Path, stream: str) -> str:
    """The md5 of every packet of ``path``'s first ``stream`` ("v" or "a"), as ffmpeg reads them."""
    done = subprocess.run(
        [require("ffmpeg"), "-v", "error", "-i", str(path), "-map", f"0:{stream}:0",
         "-c", "copy", "-f", "streamhash", "-hash", "md5", "-"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return done.stdout.strip().rsplit("=", 1)[1]


def test_mux_joins_fragmented_picture_and_sound_copied_bit_for_bit(tmp_path: Path) -> None:
    picture = make_split_video_mp4(tmp_path / "v.mp4", seconds=2, width=640, height=360)
    sound = make_split_audio_mp4(tmp_path / "a.mp4", seconds=2)
    target = tmp_path / "joined" / "j.mp4"
    media.mux(picture, sound, target)
    assert probe_streams(target) == ["video", "audio"]
    assert probe_size(target) == (640, 360)
    assert probe_duration(target) == pytest.approx(2.0, abs=0.1)
    info = media.confirm_playable(target, require_audio=True)
    assert info.duration == pytest.approx(probe_duration(target), abs=0.05)
    # Copied, not re-encoded: the same packets as in the two files it was made from.
    assert _stream_hash(target, "v") == _stream_hash(picture, "v")
    assert _stream_hash(target, "a") == _stream_hash(sound, "a")
    # +faststart: the index (moov) before the samples (mdat), no fragments left.
    boxes = []
    data = target.read_bytes()
    position = 0
    while position < len(data):
        boxes.append(data[position + 4 : position + 8].decode())
        position += int.from_bytes(data[position : position + 4], "big")
    assert boxes.index("moov") < boxes.index("mdat")
    assert "moof" not in boxes
    assert sorted(p.name for p in target.parent.iterdir()) == ["j.mp4"]  # no temporary file


def test_mux_of_two_silent_files_fails_and_leaves_nothing(tmp_path: Path) -> None:
    picture = make_split_video_mp4(tmp_path / "v.mp4", seconds=1)
    target = tmp_path / "out" / "j.mp4"
    with pytest.raises(MediaError) as caught:
        media.mux(picture, picture, target)  # no sound in the second file to map
    assert caught.value.message.startswith(f"{picture}: ffmpeg could not join the sound: ")
    assert list(target.parent.iterdir()) == []
