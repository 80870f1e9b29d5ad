"""A 3-video collection on a fake PeerTube instance, synced into an archive, a kit and a ZIM;
and kiwix-serve, Debian's, serving a ZIM on 127.0.0.1 (the test skips without it)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from archiver.cli import cli

from .media import make_mp4
from .peertube import FakeInstance
from .server import FileServer

VTT = "WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nBonjour à tous.\n"
# id, title, area, transcript, seconds: the titles carry accents a search types without.
VIDEOS = (
    ("differencier", "Différencier ses pratiques", "Domaine 4",
     "La différenciation pédagogique, pour chaque élève.", 2),
    ("evaluer", "Évaluer avec le numérique", "Domaine 2",
     "Une évaluation formative avec des questionnaires.", 3),
    ("collaborer", "Collaborer en classe", "Domaine 2",
     "Le travail en îlots et les tablettes partagées.", 4),
)  # fmt: skip
LICENCE = "[CC BY-NC-ND 4.0](https://creativecommons.org/licenses/by-nc-nd/4.0/)"


@dataclass(frozen=True)
class Synced:
    """What one ``archiver sync --zim`` made."""

    fiches: Path
    archive: Path
    kit: Path
    zim: Path
    uuids: dict[str, str]  # item id (the fiche's stem) → the video's PeerTube UUID


def fiche(tube_url: str, uuid: str, title: str, area: str, transcript: str) -> str:
    download = f"{tube_url}/download/streaming-playlists/hls/videos/{uuid}-360-fragmented.mp4"
    return (
        f"---\ntitle: {title}\narea: {area}\n"
        f"videoEmbedSrc: {tube_url}/videos/embed/{uuid}\nvideoDLHref: {download}\n---\n\n"
        f"## Script\n\n{transcript}\n\n## Crédits\n\n"
        f"- **Production** : Réseau Canopé\n- **Licence** : {LICENCE}\n"
    )


def sync_collection(folder: Path, server: FileServer, *, zim_name: str = "videos.zim") -> Synced:
    """Publish the 3 videos (real ffmpeg clips with French captions), write their fiches,
    and run ``archiver sync --zim`` over them."""
    tube = FakeInstance(server, api_window=2.0)
    fiches = folder / "fiches"
    fiches.mkdir()
    uuids = {}
    for item, title, area, transcript, seconds in VIDEOS:
        clip = make_mp4(folder / f"{item}.mp4", seconds=seconds, width=320, height=240)
        video = tube.publish(
            heights=(360,),
            videos={360: clip.read_bytes()},
            captions={"fr": VTT},
            name=title,
            duration=seconds,
        )
        uuids[item] = video.uuid
        (fiches / f"{item}.md").write_text(
            fiche(tube.url, video.uuid, title, area, transcript), encoding="utf-8"
        )
    synced = Synced(fiches, folder / "archive", folder / "kit", folder / zim_name, uuids)
    result = CliRunner().invoke(
        cli,
        [str(a) for a in ("sync", fiches, "--archive", synced.archive, "--kit", synced.kit,
                          "--zim", synced.zim, "--retries", "0", "-q")],
        catch_exceptions=False,
    )  # fmt: skip
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
    return synced


def require_tool(tool: str, package: str) -> str:
    """The tool's path; skip the test without it, except in CI where its absence fails it
    (as ``tests/media.py`` does for ffmpeg): ``dev/setup`` installs it."""
    path = shutil.which(tool)
    if path is None:
        message = f"{tool} is not installed (Debian package {package}); run dev/setup"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class KiwixServe:
    url: str  # http://127.0.0.1:<port>
    book: str  # the ZIM's name in kiwix-serve's URLs: its file name without .zim

    def content(self, path: str = "") -> str:
        return f"{self.url}/{self.book}/{path}"


@contextlib.contextmanager
def kiwix_serve(zim: Path) -> Iterator[KiwixServe]:
    """Debian's kiwix-serve serving ``zim`` on 127.0.0.1 until the block ends."""
    program = require_tool("kiwix-serve", "kiwix-tools")
    port = _free_port()
    process = subprocess.Popen(
        [program, "--address", "127.0.0.1", "--port", str(port), str(zim)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    served = KiwixServe(f"http://127.0.0.1:{port}", zim.stem)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if httpx.get(served.content(), timeout=1).status_code < 500:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                _, err = process.communicate(timeout=5)
                pytest.fail(f"kiwix-serve did not start: {err.decode(errors='replace')}")
            time.sleep(0.05)
        yield served
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
