"""Real MP4 files made with ffmpeg for the tests (``testsrc`` + ``sine``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

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
