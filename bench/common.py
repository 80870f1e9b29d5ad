"""Shared by the benchmarks: an nginx on 127.0.0.1 and a way to time a command with its peak RSS."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from archiver.archive import Archive, FetchedFile
from archiver.entry import Credit, Entry, Licence, Source, Video

DEBIAN_TOOLS = {
    "nginx": "nginx-light",
    "curl": "curl",
    "wget": "wget",
    "aria2c": "aria2",
    "rsync": "rsync",  # bench_package's peer
}


def ensure_tools() -> None:
    """Install the Debian packages the benchmarks compare against, when root and missing."""
    missing = sorted({pkg for tool, pkg in DEBIAN_TOOLS.items() if not _which(tool)})
    if not missing:
        return
    if os.geteuid() != 0:
        sys.exit(f"bench: please install the Debian packages: {' '.join(missing)}")
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", *missing],
        check=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )


def _which(tool: str) -> str | None:
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")


class Nginx:
    """nginx serving ``root`` on a free port of 127.0.0.1, for as long as the ``with`` lasts."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dir = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
        self.port = _free_port()

    def __enter__(self) -> Nginx:
        conf = self.dir / "nginx.conf"
        conf.write_text(
            f"""
daemon off;
worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    client_body_temp_path {self.dir};
    proxy_temp_path {self.dir};
    fastcgi_temp_path {self.dir};
    uwsgi_temp_path {self.dir};
    scgi_temp_path {self.dir};
    types {{ video/mp4 mp4; }}
    server {{
        listen 127.0.0.1:{self.port};
        root {self.root};
    }}
}}
""",
            encoding="utf-8",
        )
        binary = _which("nginx")
        assert binary, "nginx is not installed"
        self.process = subprocess.Popen([binary, "-c", str(conf), "-p", str(self.dir)])
        deadline = time.monotonic() + 10
        import socket

        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise RuntimeError("nginx did not start")

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def __exit__(self, *_exc: object) -> None:
        self.process.terminate()
        self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Timing:
    seconds: float
    peak_rss_mib: float


def _memory_kib(pid: int) -> tuple[int, int]:
    """(VmHWM, VmRSS) of a process: its peak and current resident memory."""
    found = {"VmHWM:": 0, "VmRSS:": 0}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                key = line.split(maxsplit=1)[0] if line.strip() else ""
                if key in found:
                    found[key] = int(line.split()[1])
    except OSError:
        pass
    return found["VmHWM:"], found["VmRSS:"]


def timed(command: Sequence[str], *, cwd: Path | None = None) -> Timing:
    """Wall time and peak resident memory of one command (which must succeed).

    The command and every process under it (archiver's FFmpeg reader, ``sh -c``'s commands)
    are polled every 5 ms; the peak is the larger of one process's own VmHWM and the sum of
    the tree's VmRSS at one poll. ``ru_maxrss`` would include the memory of this (forking)
    process, which Linux carries across fork and exec.
    """
    start = time.perf_counter()
    process = subprocess.Popen(
        list(command), cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    peak = 0
    while process.poll() is None:
        together = 0
        for pid in _tree(process.pid):
            high, now = _memory_kib(pid)
            peak = max(peak, high)
            together += now
        peak = max(peak, together)
        time.sleep(0.005)
    seconds = time.perf_counter() - start
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if process.stderr:
        process.stderr.close()
    if process.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({process.returncode}): {stderr[-2000:]}")
    return Timing(seconds=seconds, peak_rss_mib=peak / 1024)


def _tree(pid: int) -> list[int]:
    """The process and all its descendants."""
    found = [pid]
    for child in _children(pid):
        found.extend(_tree(child))
    return found


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text(encoding="ascii")
    except OSError:
        return []
    return [int(p) for p in text.split()]


def make_file(path: Path, size: int, seed: int = 0) -> None:
    """A playable MP4 of exactly ``size`` bytes: a tiny clip, then a ``free`` box of
    incompressible bytes (written in blocks: a 512 MiB file never sits in memory)."""
    import random

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.conftest import _tiny_clip

    clip = _tiny_clip()
    rng = random.Random(seed)
    block = 8 * 1024 * 1024
    padding = size - len(clip) - 8
    with path.open("wb") as stream:
        stream.write(clip + (padding + 8).to_bytes(4, "big") + b"free")
        left = padding
        while left:
            n = min(block, left)
            stream.write(rng.randbytes(n))
            left -= n
    path.chmod(0o644)


# -- an archive of many videos, made without a network -------------------------------------


def make_clip(path: Path) -> bytes:
    """A 5-second 640×360 fragmented MP4, made with ffmpeg by the test suite's helper."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.media import make_mp4

    return make_mp4(path, seconds=5, width=640, height=360).read_bytes()


def make_entries(count: int, url: str = "https://tube.example.org/v/{}-480.mp4") -> list[Entry]:
    return [
        Entry(
            id=f"video-{i:03d}",
            title=f"Vidéo de formation numéro {i}",
            area=f"Domaine {i % 5}",
            description="Une description de la vidéo. " * 5,
            source=Source(path=f"{i}.md", sha256="0" * 64),
            video=Video(url=url.format(i), embed_url=None),
            transcript="Une phrase de transcription.\n" * 60,
            credits=(Credit("Production", ("Réseau Canopé",)),),
            licence=Licence(
                "CC BY-NC-ND 4.0", "https://creativecommons.org/licenses/by-nc-nd/4.0/"
            ),
        )
        for i in range(count)
    ]


def commit(archive: Archive, entry: Entry, data: bytes, name: str) -> None:
    """Put ``data`` in the archive as the current version of ``entry``'s video."""
    part = archive.root / "partial" / f"{entry.id}.part"
    part.write_bytes(data)
    url = entry.video.url or ""
    digest = hashlib.sha256(data).hexdigest()
    archive.commit(
        entry.id, "video", name, part, FetchedFile(url, url, digest, len(data), None, None, None)
    )


def hold_videos(root: Path, entries: list[Entry], clip: bytes, pad: int = 256) -> None:
    """Every entry's video held: ``clip`` plus a ``free`` box of its own (its own sha256, still
    a whole MP4)."""
    with Archive(root) as archive:
        for i, entry in enumerate(entries):
            archive.record_item(entry)
            commit(archive, entry, with_trailer(clip, i.to_bytes(4, "big") * pad), f"{i}-480.mp4")


def with_trailer(clip: bytes, trailer: bytes) -> bytes:
    """The same MP4 with ``trailer`` in a ``free`` box: other bytes, still a whole MP4."""
    return clip + (8 + len(trailer)).to_bytes(4, "big") + b"free" + trailer
