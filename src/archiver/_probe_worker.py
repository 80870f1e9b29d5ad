"""FFmpeg's reading of video files, in a process of its own (see :class:`archiver.media.Prober`).

Reads one JSON-encoded path per line on standard input and answers each with one JSON line on
standard output: ``{"duration": …, "width": …, "height": …, "audio": true|false}`` or
``{"error": "…"}`` (``audio``, added for PeerTube's split sound, is the one key a reader may
find missing in an older answer: it reads it as unknown). It is run
by its file path, so it imports PyAV and nothing of archiver: it starts in a few tens of ms.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def read(path: str) -> dict[str, Any]:
    """Duration (seconds) and size of the first video stream, and whether there is a sound
    stream, as FFmpeg's libavformat reads them: the open-and-find-stream-information that
    ``ffprobe`` does. A sound-only file has a duration and no size."""
    import av

    try:
        with av.open(path, metadata_errors="replace") as container:
            video = next(iter(container.streams.video), None)
            audio = next(iter(container.streams.audio), None)
            duration: float | None = None
            if container.duration:
                duration = container.duration / av.time_base
            else:  # the container does not say: the picture's, else the sound's
                for stream in (video, audio):
                    if stream is not None and stream.duration and stream.time_base:
                        duration = float(stream.duration * stream.time_base)
                        break
            width = video.codec_context.width if video is not None else None
            height = video.codec_context.height if video is not None else None
    except (av.FFmpegError, OSError) as exc:
        return {"error": getattr(exc, "strerror", None) or str(exc)}
    return {
        "duration": duration,
        "width": width or None,
        "height": height or None,
        "audio": audio is not None,
    }


def main() -> None:
    import av  # noqa: F401 - loaded now, while the first video is still arriving

    # Answers go out on a descriptor of their own: whatever a C library prints to standard
    # output goes where standard error goes, and never into an answer.
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    for line in sys.stdin:
        answers.write(json.dumps(read(json.loads(line))) + "\n")
        answers.flush()


if __name__ == "__main__":
    main()
