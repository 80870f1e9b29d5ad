"""How soon after it is started each downloader opens its first connection, all in the same run.

Over a poor line (bench_poorline.py) the transfers of ``archiver download`` and ``aria2c -j4``
run at the emulated line's bound from their first connection on: what is left between them is
how soon each connects. This bench measures that alone, from ``exec`` to the ``accept()`` of a
listening socket on 127.0.0.1 (which then closes the connection: no transfer is timed), for:

- ``aria2c`` and ``curl``, the peers;
- a Python that only connects (``import socket``): the interpreter's own start;
- a Python that imports click, then connects: the floor of any command line built on click,
  the command-line library the project is built on (shared/DESIGN.md);
- ``archiver download`` of a manifest of four new files, whose first connections are opened
  ahead as soon as the manifest is read (docs/archive.md, "The first connections").

Every command runs in turns, ``--runs`` times; the best and the median are reported.

Run: ``.venv/bin/python bench/bench_startup.py [--runs 20]`` (needs the Debian packages aria2
and curl, installed when root).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench_download import manifest_for
from common import ensure_tools


def commands(port: int, manifest: Path) -> dict[str, Callable[[Path], list[str]]]:
    """Each program as a user types it, given a fresh folder for what it writes."""
    url = f"http://127.0.0.1:{port}/file.bin"
    connect = f"socket.create_connection(('127.0.0.1', {port}))"
    return {
        "aria2c -j4": lambda out: ["aria2c", "-q", "-j4", "-d", str(out), url],
        "curl": lambda out: ["curl", "-s", "-o", str(out / "file.bin"), url],
        "python: socket only": lambda out: [sys.executable, "-c", f"import socket; {connect}"],
        "python: click, then socket": lambda out: [
            sys.executable,
            "-c",
            f"import click, socket; {connect}",
        ],
        "archiver download": lambda out: [
            sys.executable,
            "-m",
            "archiver",
            "-q",
            "download",
            str(manifest),
            "--archive",
            str(out / "archive"),
            "--jobs",
            "4",
        ],
    }


def first_connection(server: socket.socket, command: list[str]) -> float:
    """Seconds from starting ``command`` to the server's accepting its first connection."""
    server.settimeout(10)
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        connection, _ = server.accept()
        seconds = time.perf_counter() - start
        connection.close()
    finally:
        process.kill()
        process.wait()
    server.settimeout(0.05)  # the program's other connections, opened before it was killed
    try:
        while True:
            server.accept()[0].close()
    except OSError:
        pass
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=20, help="runs of each, in turns")
    args = parser.parse_args()
    ensure_tools()
    with tempfile.TemporaryDirectory() as tmp, socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        port = server.getsockname()[1]
        urls = [f"http://127.0.0.1:{port}/{i}.mp4" for i in range(4)]
        manifest = manifest_for(urls, Path(tmp) / "four.json")
        programs = commands(port, manifest)
        times: dict[str, list[float]] = {name: [] for name in programs}
        for run in range(args.runs):
            for index, (name, command) in enumerate(programs.items()):
                out = Path(tmp) / f"{run}-{index}"
                out.mkdir()
                times[name].append(first_connection(server, command(out)))
    print(f"First connection after start, {args.runs} runs each in turns (ms):")
    print(f"  {'program':28} {'best':>7} {'median':>7}")
    for name, seconds in times.items():
        best, middle = min(seconds) * 1000, statistics.median(seconds) * 1000
        print(f"  {name:28} {best:7.1f} {middle:7.1f}")


if __name__ == "__main__":
    main()
