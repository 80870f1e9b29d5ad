"""What FFmpeg reads and makes: whether a video plays (and has sound), its duration and size, a
poster frame, a re-encoded copy, and a video joined with the sound PeerTube stores apart.

Reading goes through FFmpeg's libraries (PyAV) in a worker process started once: fast enough
to confirm every download, and a file that crashes FFmpeg costs only that file. Making runs
the ``ffmpeg`` program with arguments built by pure functions (tested without ffmpeg); what
it writes goes to a temporary file, moved into place only when ffmpeg succeeded. Without the
program, callers get :class:`MediaUnavailable` and carry on without posters or re-encodes.

Commands are plain argument lists, written out flag by flag, so that each flag is visible,
commented and tested; ffmpeg-python earns its place in the tests only, where ``ffmpeg.probe``
(the ``ffprobe`` program) checks independently what archiver reads with PyAV.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import math
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import MediaError, MediaUnavailable, describe_os_error

__all__ = [
    "MUX_VERSION",
    "POSTER_VERSION",
    "PRESETS",
    "PROBER",
    "MediaError",
    "MediaInfo",
    "MediaUnavailable",
    "Preset",
    "Prober",
    "available",
    "confirm_audio",
    "confirm_playable",
    "make_poster",
    "mp4_problem",
    "mux",
    "mux_command",
    "poster_command",
    "probe",
    "transcode",
    "transcode_command",
]

# Bumped when the poster recipe changes, so cached posters are made again.
POSTER_VERSION = 1
POSTER_MAX_WIDTH = 640
POSTER_POSITION = 0.10  # a frame at 10% of the video: past any black opening frames
POSTER_QUALITY = 4  # mjpeg qscale: 2 (best) … 31 (worst)
# Bumped when the recipe that joins a video with its sound changes, so joined files are made again.
MUX_VERSION = 1


@dataclass(frozen=True)
class MediaInfo:
    """What FFmpeg reads of a video file.

    ``audio``: whether it has a sound stream; ``None`` when not read (facts rebuilt from the
    catalog, which keeps duration and size only, or a reader that does not say).
    """

    duration: float | None
    width: int | None
    height: int | None
    audio: bool | None = None


def available() -> bool:
    """Whether ffmpeg, which makes posters and re-encodes, is on PATH."""
    return shutil.which("ffmpeg") is not None


def _last_line(stderr: bytes | None) -> str:
    lines = (stderr or b"").decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else "no output"


PROBE_TIMEOUT = 60.0  # seconds FFmpeg may take to read one file's stream information
_WORKER = Path(__file__).with_name("_probe_worker.py")


class Prober:
    """Reads videos with FFmpeg's libraries (PyAV) in a worker process, one file at a time.

    Starting the ``ffprobe`` program costs 57 ms a file, before it reads a byte (215 shared
    libraries to load); the worker loads them once, then reads a file in about 0.4 ms. A file
    that crashes FFmpeg, or keeps it busy past ``timeout``, costs that file (a
    :class:`MediaError` naming it) and the worker, started again for the next: never the run.
    """

    def __init__(self, command: list[str] | None = None, timeout: float = PROBE_TIMEOUT) -> None:
        self.command = command or [sys.executable, "-I", str(_WORKER)]
        self.timeout = timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the worker now, so that it is ready when the first video is."""
        with self._lock:
            self._worker()

    def _worker(self) -> subprocess.Popen[bytes]:
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(  # noqa: S603 - our own worker, no shell
                self.command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
        return self._process

    def probe(self, path: Path) -> MediaInfo:
        """Duration (seconds) and size of the first video stream of ``path``, and whether it
        has sound."""
        with self._lock:
            worker = self._worker()
            stdin, stdout = worker.stdin, worker.stdout
            if stdin is None or stdout is None:  # a bug if ever: both are pipes
                raise MediaError(path, "the FFmpeg reader has no pipes")
            try:
                stdin.write(json.dumps(str(path.absolute())).encode() + b"\n")
                stdin.flush()
            except BrokenPipeError:
                pass  # it died: said below, when its answer does not come
            ready, _, _ = select.select([stdout], [], [], self.timeout)
            line = stdout.readline() if ready else b""
            if not line:
                self._stop()
                if not ready:
                    raise MediaError(path, f"FFmpeg took more than {self.timeout:g} s to read it")
                raise MediaError(path, f"FFmpeg crashed reading it ({_ending(worker.returncode)})")
        try:
            answer = json.loads(line)
            if "error" in answer:
                raise MediaError(path, f"FFmpeg cannot read it: {answer['error']}")
            audio = answer.get("audio")  # absent from a reader older than split sound: unknown
            return MediaInfo(
                answer["duration"],
                answer["width"],
                answer["height"],
                audio if isinstance(audio, bool) else None,
            )
        except (ValueError, TypeError, KeyError) as exc:  # a bug if ever: the reader is ours
            raise MediaError(path, f"the FFmpeg reader answered {line[:80]!r}") from exc

    def _stop(self) -> None:
        if self._process is not None:
            with contextlib.suppress(OSError):
                self._process.kill()
            self._end()

    def _end(self) -> None:
        """Wait for the worker (killed past 5 s) and close its pipes."""
        process, self._process = self._process, None
        if process is None:
            return
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()

    def let_go(self) -> None:
        """At the exit: close the worker's input and do not wait for it.

        It ends on its own when its input does (as it would when this process's pipes close),
        within milliseconds; nobody needs its exit status. Waiting for its interpreter's
        teardown (PyAV's libraries unloaded) cost about 30 ms between a download's last byte
        and its exit, measured (issue 14). A worker still busy for a thread of ours is left
        alone: the pipes close with this process all the same.
        """
        if not self._lock.acquire(blocking=False):
            return
        try:
            process, self._process = self._process, None
            if process is not None and process.stdin is not None:
                with contextlib.suppress(OSError):
                    process.stdin.close()
        finally:
            self._lock.release()

    def close(self) -> None:
        """Let the worker go: it ends when its input does (waited for, pipes closed)."""
        with self._lock:
            if self._process is not None and self._process.stdin is not None:
                with contextlib.suppress(OSError):
                    self._process.stdin.close()
            self._end()


def _ending(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return signal.Signals(-code).name
    return f"exit {code}"


PROBER = Prober()
atexit.register(PROBER.let_go)


def probe(path: Path) -> MediaInfo:
    """Duration (seconds) and size of the first video stream, and whether there is sound, as
    FFmpeg reads them (in the shared worker process); :class:`MediaError` when FFmpeg cannot
    read it."""
    return PROBER.probe(path)


def confirm_playable(path: Path, *, require_audio: bool = False) -> MediaInfo:
    """What FFmpeg reads of ``path`` once it is known to be a playable MP4.

    Its boxes must tile the file (nothing cut short, the last fragment complete) and FFmpeg
    must find a video stream with a size and a duration, and with ``require_audio`` a sound
    stream as well (a video joined with its sound); otherwise :class:`MediaError` with the
    reason (a file that cannot be read included).
    """
    info = _read_whole(path)
    if info.width is None or info.height is None:
        raise MediaError(path, "no video stream")
    if require_audio and not info.audio:
        raise MediaError(path, "no audio stream")
    _require_duration(path, info)
    return info


def confirm_audio(path: Path) -> MediaInfo:
    """What FFmpeg reads of ``path`` once it is known to be a playable sound-only MP4.

    PeerTube (6.3 and later, ``split_audio_and_video``) can store a video's sound in a file of
    its own, beside picture-only files: the downloader checks that file with this, as it checks
    a video with :func:`confirm_playable`. Its boxes must tile the file and FFmpeg must find a
    sound stream and a duration; a picture is not needed (``width`` and ``height`` are ``None``
    without one). Otherwise :class:`MediaError` with the reason.
    """
    info = _read_whole(path)
    if not info.audio:
        raise MediaError(path, "no audio stream")
    _require_duration(path, info)
    return info


def _read_whole(path: Path) -> MediaInfo:
    """What FFmpeg reads of ``path``, once its boxes are known to tile it (:func:`mp4_problem`)."""
    try:
        problem = mp4_problem(path)
    except OSError as exc:
        raise MediaError(path, f"cannot read it: {describe_os_error(exc)}") from exc
    if problem:
        raise MediaError(path, problem)
    return probe(path)


def _require_duration(path: Path, info: MediaInfo) -> None:
    if not info.duration or not math.isfinite(info.duration) or info.duration <= 0:
        raise MediaError(path, "no duration")


def poster_command(source: Path, target: Path, info: MediaInfo) -> list[str]:
    """The ffmpeg command that writes one JPEG frame of ``source`` to ``target``.

    >>> poster_command(Path("v.mp4"), Path("p.jpg"), MediaInfo(100.0, 1920, 1080))[:5]
    ['ffmpeg', '-ss', '10.0', '-i', 'v.mp4']
    """
    position = round((info.duration or 0) * POSTER_POSITION, 3)
    width = min(POSTER_MAX_WIDTH, info.width or POSTER_MAX_WIDTH)
    width -= width % 2  # even sizes, as every JPEG decoder likes
    # Output options may come in any order before the output file, global ones anywhere: this
    # is the order ffmpeg-python wrote them in, kept so that the recipe is byte for byte the same.
    # fmt: off
    return [
        "ffmpeg",
        "-ss", f"{position}",  # seek before opening the input: fast, and past black opening frames
        "-i", str(source),
        # Scale to that width; -2: the height that keeps the proportions, rounded to even.
        "-filter_complex", f"[0]scale={width}:-2[s0]",
        "-map", "[s0]",  # write the scaled picture only, no sound
        "-f", "image2",  # an image file, whatever the target's name
        "-q:v", f"{POSTER_QUALITY}",  # JPEG quality: 2 (best) … 31 (worst)
        "-vcodec", "mjpeg",  # JPEG
        "-vframes", "1",  # one frame, then stop
        str(target),
        "-v", "error",  # say nothing but errors: the last line is the reason we report
        "-nostdin",  # never read the terminal: ffmpeg runs unattended, maybe in the background
        "-y",  # overwrite the temporary file if a killed run left one
    ]
    # fmt: on


def _make(
    source: Path,
    target: Path,
    command: Callable[[Path], list[str]],
    *,
    what: str,
    check: Callable[[Path], str | None] | None = None,
    timeout: float | None = None,
) -> None:
    """Run the ffmpeg ``command`` (built for a temporary path) and move its output to
    ``target`` only when ffmpeg succeeded and ``check`` finds nothing wrong with it.

    Every failure is a :class:`MediaError`, a disk that refuses the output included: a poster
    or a re-encode that cannot be written is done without, never the end of the run.
    """
    if not available():
        raise MediaUnavailable(source, "ffmpeg is not installed (Debian package: ffmpeg)")
    temp = target.with_name(f".{target.name}.tmp{target.suffix}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            done = subprocess.run(  # noqa: S603 - arguments built by a pure function, no shell
                command(temp), capture_output=True, check=False, timeout=timeout
            )
        except OSError as exc:
            raise MediaError(source, f"cannot run ffmpeg: {describe_os_error(exc)}") from exc
        if done.returncode != 0 or not temp.exists() or temp.stat().st_size == 0:
            raise MediaError(source, f"ffmpeg could not {what}: {_last_line(done.stderr)}")
        problem = check(temp) if check else None
        if problem:
            raise MediaError(source, f"ffmpeg could not {what}: {problem}")
        os.replace(temp, target)
    except subprocess.TimeoutExpired as exc:
        raise MediaError(source, f"ffmpeg took more than {timeout:g} s to {what}") from exc
    except OSError as exc:  # the folder, the rename: a full or read-only archive
        raise MediaError(source, f"cannot write {target}: {describe_os_error(exc)}") from exc
    finally:
        with contextlib.suppress(OSError):
            temp.unlink()


def make_poster(source: Path, target: Path, info: MediaInfo) -> None:
    """Write the poster of ``source`` to ``target``, atomically."""
    _make(
        source,
        target,
        lambda temp: poster_command(source, temp, info),
        what="make a poster",
        timeout=120,
    )


def mp4_problem(path: Path) -> str | None:
    """Why ``path`` is not a whole MP4, or ``None``: its top-level boxes must tile the file.

    A fragmented MP4 cut short (a lying server, a bad disk) ends in a box whose announced size
    runs past the end of the file; a file that is not an MP4 has no ``ftyp`` first.
    """
    size = path.stat().st_size
    position = 0
    first = True
    with path.open("rb") as stream:
        while position < size:
            stream.seek(position)
            header = stream.read(16)
            if len(header) < 8:
                return f"truncated: {size - position} stray byte(s) at the end"
            length = int.from_bytes(header[:4], "big")
            kind = header[4:8]
            if first and kind != b"ftyp":
                return "not an MP4 (no ftyp box at the start)"
            first = False
            if length == 1:  # a 64-bit size follows the type
                if len(header) < 16:
                    return "truncated inside a box header"
                length = int.from_bytes(header[8:16], "big")
            elif length == 0:  # the box runs to the end of the file
                length = size - position
            if length < 8:
                return f"corrupt box at byte {position}"
            if position + length > size:
                name = kind.decode("ascii", "replace")
                missing = position + length - size
                return f"truncated: the last '{name}' box ends {missing} bytes past the end"
            position += length
    return None if not first else "empty file"


@dataclass(frozen=True)
class Preset:
    """A recipe to re-encode a video for a kit: H.264 and AAC in an MP4 that starts playing
    before it is all read (``+faststart``).

    ``version`` is part of the cache key of what it makes: change the recipe, bump it, and
    every video is encoded again.
    """

    name: str
    max_height: int  # never upscaled: a smaller video keeps its height
    crf: int  # x264's constant quality: 0 (lossless) … 51 (worst); 23 is its default
    audio_bitrate: str  # AAC, e.g. "96k"
    x264_preset: str = "medium"  # x264's speed for size trade-off: "ultrafast" … "veryslow"
    version: int = 1


PRESETS = {
    "480p": Preset(name="480p", max_height=480, crf=28, audio_bitrate="96k"),
    "360p": Preset(name="360p", max_height=360, crf=28, audio_bitrate="64k"),
}


def transcode_command(source: Path, target: Path, info: MediaInfo, preset: Preset) -> list[str]:
    """The ffmpeg command that re-encodes ``source`` to ``target`` with ``preset``.

    >>> info = MediaInfo(60.0, 1920, 1080)
    >>> command = transcode_command(Path("in.mp4"), Path("out.mp4"), info, PRESETS["480p"])
    >>> command[command.index("-crf") + 1], command[command.index("-b:a") + 1]
    ('28', '96k')
    """
    height = min(preset.max_height, info.height or preset.max_height)
    height -= height % 2  # H.264 in 4:2:0 needs even sizes
    # Output options may come in any order before the output file, global ones anywhere, except
    # that the two -map make the streams in their order: picture, then sound. This is the order
    # ffmpeg-python wrote them in, kept so that the recipe is byte for byte the same.
    # fmt: off
    return [
        "ffmpeg",
        "-i", str(source),
        # The picture at that height; -2: the width that keeps the proportions, rounded to even.
        "-filter_complex", f"[0:v]scale=-2:{height}[s0]",
        "-map", "[s0]",  # first stream: the scaled picture
        "-f", "mp4",  # an MP4, whatever the target's name
        "-acodec", "aac",  # AAC sound, which every browser plays
        "-b:a", preset.audio_bitrate,  # sound bitrate
        "-crf", f"{preset.crf}",  # constant quality rather than a bitrate: size follows content
        "-map", "0:a?",  # then the sound if there is any: "?" maps nothing, rather than failing
        "-movflags", "+faststart",  # index (moov) first: plays before it is all read
        "-pix_fmt", "yuv420p",  # 4:2:0 colour, the one every H.264 decoder plays
        "-preset", preset.x264_preset,  # x264's speed for size trade-off
        "-vcodec", "libx264",  # H.264, which every browser plays
        str(target),
        "-v", "error",  # say nothing but errors: the last line is the reason we report
        "-nostdin",  # never read the terminal: ffmpeg runs unattended, maybe in the background
        "-y",  # overwrite the temporary file if a killed run left one
    ]
    # fmt: on


def transcode(source: Path, target: Path, info: MediaInfo, preset: Preset) -> None:
    """Re-encode ``source`` into ``target`` (atomically); :class:`MediaError` on failure."""
    _make(
        source,
        target,
        lambda temp: transcode_command(source, temp, info, preset),
        what="re-encode it",
        check=mp4_problem,
    )


def mux_command(video: Path, audio: Path, target: Path) -> list[str]:
    """The ffmpeg command that joins the picture of ``video`` and the sound of ``audio`` into
    one MP4, ``target``, copying both as they are (no re-encode: as fast as the disk).

    PeerTube stores a video's sound apart when ``split_audio_and_video`` is on: a picture-only
    fragmented MP4 per resolution, and one sound-only fragmented MP4. A ``<video>`` plays one
    file, so the kit carries the two joined.

    >>> mux_command(Path("v.mp4"), Path("a.mp4"), Path("j.mp4"))[:9]
    ['ffmpeg', '-i', 'v.mp4', '-i', 'a.mp4', '-map', '0:v:0', '-map', '1:a:0']
    """
    # Output options may come in any order before the output file, global ones anywhere, except
    # that the two -map make the streams in their order: picture, then sound, as transcode's.
    # +faststart with fragmented inputs: ffmpeg reads every fragment of both (the mp4 demuxer
    # follows moof after moof), writes one ordinary MP4 with a full index, then moves that
    # index (moov) before the samples in a second pass. Checked on ffmpeg 5.1 with PeerTube-like
    # inputs (frag_keyframe+empty_moov+default_base_moof, B-frames): moov first, both streams,
    # the duration of the longer one. An unfragmented result is also what the kit's other
    # videos (re-encodes) are, and what every player, old desktop ones included, seeks in.
    # fmt: off
    return [
        "ffmpeg",
        "-i", str(video),  # input 0: the picture
        "-i", str(audio),  # input 1: the sound
        "-map", "0:v:0",  # first stream: the first picture stream of the video file
        "-map", "1:a:0",  # then the first sound stream of the sound file; nothing else
        "-c", "copy",  # both as they are: no re-encode, no loss, only boxes rewritten
        "-f", "mp4",  # an MP4, whatever the target's name
        "-movflags", "+faststart",  # index (moov) first: plays before it is all read
        str(target),
        "-v", "error",  # say nothing but errors: the last line is the reason we report
        "-nostdin",  # never read the terminal: ffmpeg runs unattended, maybe in the background
        "-y",  # overwrite the temporary file if a killed run left one
    ]
    # fmt: on


def mux(video: Path, audio: Path, target: Path) -> None:
    """Join the picture of ``video`` and the sound of ``audio`` into ``target`` (atomically,
    checked whole); :class:`MediaError` on failure, :class:`MediaUnavailable` without ffmpeg.

    No timeout, as for a re-encode: a copy takes as long as the disk needs to read both files.
    """
    _make(
        video,
        target,
        lambda temp: mux_command(video, audio, temp),
        what="join the sound",
        check=mp4_problem,
    )
