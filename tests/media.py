"""Real MP4 files made with ffmpeg for the tests (``testsrc`` + ``sine``)."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import ffmpeg
import pytest


def require(tool: str) -> str:
    """The tool's path; skip the test without it, except in CI where its absence is a failure."""
    path = shutil.which(tool)
    if path is None:
        message = f"{tool} is not installed (Debian package: ffmpeg / chromium); run dev/setup"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def make_mp4(
    path: Path,
    *,
    seconds: float = 2.0,
    width: int = 320,
    height: int = 240,
    fragmented: bool = True,
) -> Path:
    """An H.264/AAC MP4; fragmented like the files PeerTube serves unless told otherwise."""
    program = require("ffmpeg")
    movflags = "frag_keyframe+empty_moov+default_base_moof" if fragmented else "+faststart"
    subprocess.run(
        [
            program, "-v", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc=duration={seconds}:size={width}x{height}:rate=25",
            "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "64k",
            "-movflags", movflags,
            str(path),
        ],
        check=True,
    )  # fmt: skip
    return path


def _ffprobe(path: Path) -> dict[str, Any]:
    """What the ``ffprobe`` program reads of ``path``: an independent check of what archiver
    reads with PyAV, and where ffmpeg-python earns its place."""
    require("ffprobe")
    info: dict[str, Any] = ffmpeg.probe(str(path))
    return info


def probe_duration(path: Path) -> float:
    """The duration (seconds) of ``path``'s container, as ffprobe reads it."""
    return float(_ffprobe(path)["format"]["duration"])


def probe_size(path: Path) -> tuple[int, int]:
    """The width and height of ``path``'s first video stream, as ffprobe reads them."""
    video = next(s for s in _ffprobe(path)["streams"] if s["codec_type"] == "video")
    return int(video["width"]), int(video["height"])


def make_jpeg(path: Path, *, colour: str = "red", width: int = 64, height: int = 36) -> Path:
    """A small JPEG of one colour, as a PeerTube instance's preview image."""
    program = require("ffmpeg")
    subprocess.run(
        [program, "-v", "error", "-y", "-f", "lavfi", "-i", f"color={colour}:s={width}x{height}",
         "-frames:v", "1", str(path)],
        check=True,
    )  # fmt: skip
    return path


def make_audio_only_mp4(path: Path, *, seconds: float = 1.0) -> Path:
    """An MP4 with sound and no picture: whole, but nothing for a video player to show."""
    program = require("ffmpeg")
    subprocess.run(
        [program, "-v", "error", "-y", "-f", "lavfi", "-i", f"sine=duration={seconds}",
         "-c:a", "aac", str(path)],
        check=True,
    )  # fmt: skip
    return path


# PeerTube's split sound (transcoding.hls.split_audio_and_video, PeerTube 6.3 and later): the
# HLS files of a video, as its /download/streaming-playlists/hls/videos/ URLs serve them.
SPLIT_MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"


def make_split_video_mp4(
    path: Path, *, seconds: float = 2.0, width: int = 320, height: int = 240
) -> Path:
    """A picture-only fragmented MP4 (H.264, no sound): a video file with ``hasAudio: false``."""
    program = require("ffmpeg")
    subprocess.run(
        [
            program, "-v", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc=duration={seconds}:size={width}x{height}:rate=25",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-an",
            "-movflags", SPLIT_MOVFLAGS,
            str(path),
        ],
        check=True,
    )  # fmt: skip
    return path


def make_split_audio_mp4(path: Path, *, seconds: float = 2.0, frequency: int = 440) -> Path:
    """A sound-only fragmented MP4 (AAC, no picture): the file of ``resolution.id`` 0 and
    ``hasVideo: false``."""
    program = require("ffmpeg")
    subprocess.run(
        [
            program, "-v", "error", "-y",
            "-f", "lavfi", "-i", f"sine=frequency={frequency}:duration={seconds}",
            "-c:a", "aac", "-b:a", "64k", "-vn",
            "-movflags", SPLIT_MOVFLAGS,
            str(path),
        ],
        check=True,
    )  # fmt: skip
    return path


def probe_streams(path: Path) -> list[str]:
    """The kinds of ``path``'s streams in their order (``["video", "audio"]``), as ffprobe
    reads them."""
    return [str(s["codec_type"]) for s in _ffprobe(path)["streams"]]


@dataclass(frozen=True)
class HlsClip:
    """A file as PeerTube's HLS transcoding stores it, with ffmpeg's resolution playlist."""

    data: bytes
    playlist: str  # the resolution playlist ffmpeg wrote, naming the file ``clip.mp4``
    width: int
    height: int
    fps: int
    seconds: float

    @property
    def ranges(self) -> list[tuple[int, int]]:
        """The ``(offset, length)`` of each media segment, from ``#EXT-X-BYTERANGE`` lines.

        The init segment (``ftyp`` + ``moov``) is not among them: ffmpeg names it in
        ``#EXT-X-MAP:...,BYTERANGE=`` instead, a line PeerTube's segment hashing skips.
        """
        found = []
        for line in self.playlist.split("\n"):
            match = re.match(r"^#EXT-X-BYTERANGE:(\d+)@(\d+)$", line)
            if match:
                found.append((int(match[2]), int(match[1])))
        return found


def width_for(height: int) -> int:
    """The even width of a 16:9 picture ``height`` pixels high (480 → 854)."""
    return round(height * 16 / 9 / 2) * 2


@functools.cache
def hls_clip(
    height: int, *, streams: Literal["video", "audio", "both"] = "video", seconds: float = 5.0
) -> HlsClip:
    """A fragmented MP4 made the way PeerTube's HLS transcoding makes it, cached per session.

    PeerTube runs ffmpeg's HLS muxer with ``-hls_time 4 -hls_list_size 0 -hls_playlist_type vod
    -hls_segment_type fmp4 -hls_flags single_file`` (``addCommonHLSVODCommandOptions`` in
    Chocobozzz/PeerTube ``packages/ffmpeg/src/ffmpeg-vod.ts``, commit d7562e0b), so the stored
    file is ``ftyp``+``moov``, then one ``sidx``+``moof``+``mdat`` per ~4 s segment. With
    split audio (``buildHLSVODCommand`` there: ``withAudio: !separatedAudio || !resolution``)
    each resolution file has no audio stream and the resolution-0 file has no video stream:
    ``streams="video"`` and ``streams="audio"`` (``height`` is then ignored: give 0).
    Keyframes every second (``-g 25``) let the muxer cut at 4 s: 5 s make two segments.
    """
    program = require("ffmpeg")
    width = width_for(height) if streams != "audio" else 0
    with tempfile.TemporaryDirectory() as folder:
        picture = [
            "-f", "lavfi", "-i", f"color=c=0x204080:duration={seconds}:size={width}x{height}:rate=25",
            "-f", "lavfi", "-i", "testsrc=size=160x90:rate=25",
        ]  # fmt: skip
        sound = ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"]
        encode_picture = [
            "-filter_complex", "[0][1]overlay=x=(W-w)/2:y=(H-h)/2:shortest=1[v]", "-map", "[v]",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "25",
        ]  # fmt: skip
        encode_sound = ["-c:a", "aac", "-b:a", "64k"]
        if streams == "video":
            args = [*picture, *encode_picture, "-an"]
        elif streams == "audio":
            args = [*sound, "-map", "0:a", *encode_sound, "-vn"]
        else:
            args = [*picture, *sound, *encode_picture, "-map", "2:a", *encode_sound]
        clip = Path(folder, "clip.mp4")
        subprocess.run(
            [program, "-v", "error", "-y", *args,
             "-hls_time", "4", "-hls_list_size", "0", "-hls_playlist_type", "vod",
             "-hls_segment_filename", str(clip), "-hls_segment_type", "fmp4",
             "-f", "hls", "-hls_flags", "single_file", str(Path(folder, "clip.m3u8"))],
            check=True,
            cwd=folder,
        )  # fmt: skip
        playlist = Path(folder, "clip.m3u8").read_text().replace(str(clip), "clip.mp4")
        return HlsClip(clip.read_bytes(), playlist, width, height, 25 if width else 0, seconds)
