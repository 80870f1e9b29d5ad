"""Fixtures shared by the whole suite."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import random
import sqlite3
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from archiver.collection import default_collection
from archiver.entry import Entry, Source, Video

from .server import FileServer, make_certificate

CHROMIUM = "/usr/bin/chromium"

SEED = next(default_collection().glob("*.md"))
SEED_UUID = "9520b54d-0a3c-43dc-8821-d559fa418cc6"

WriteFiche = Callable[..., Path]


def fiche_text(
    *,
    title: str | None = "Une vidéo",
    embed: str
    | None = "https://tube.example.org/videos/embed/11111111-2222-4333-8444-555555555555",
    download: str | None = None,
    extra_yaml: str = "",
    body: str = "## Script\n\nBonjour.\n\n## Crédits\n\n- **Licence** : [CC BY 4.0](https://creativecommons.org/licenses/by/4.0/)\n",
) -> str:
    lines = ["---"]
    if title is not None:
        lines.append(f"title: {title}")
    if embed is not None:
        lines.append(f"videoEmbedSrc: {embed}")
    if download is not None:
        lines.append(f"videoDLHref: {download}")
    if extra_yaml:
        lines.append(extra_yaml.rstrip("\n"))
    lines.append("---")
    return "\n".join(lines) + "\n\n" + body


@pytest.fixture
def write_fiche(tmp_path: Path) -> WriteFiche:
    """Write a fiche under ``tmp_path/fiches`` and return its path."""
    folder = tmp_path / "fiches"
    folder.mkdir(exist_ok=True)

    def write(name: str = "video.md", text: str | bytes | None = None, **fields: object) -> Path:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        content = fiche_text(**fields) if text is None else text  # type: ignore[arg-type]
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return write


@pytest.fixture(autouse=True)
def _reset_archiver_logging() -> None:
    """The CLI installs its own handler; let caplog see records in every test."""
    logger = logging.getLogger("archiver")
    logger.handlers.clear()
    logger.propagate = True
    logger.setLevel(logging.NOTSET)


@pytest.fixture(scope="session")
def _file_server() -> Iterator[FileServer]:
    server = FileServer()
    yield server
    server.close()


def fresh_python(code: str, *, timeout: float = 60) -> str:
    """What ``code`` prints, run by a fresh interpreter (nothing imported before it, so
    ``sys.modules`` after it says what it imported); the interpreter must exit 0."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, check=True
    )
    return done.stdout


def _emptied(server: FileServer) -> Iterator[FileServer]:
    """``server`` emptied for a test; the test fails if one of its handlers broke."""
    server.reset()
    yield server
    assert server.errors == [], "the test server's handlers raised"


@pytest.fixture
def server(_file_server: FileServer) -> Iterator[FileServer]:
    """The loopback HTTP server, emptied for each test; a test fails if a handler broke."""
    yield from _emptied(_file_server)


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate and its key, made by openssl for the HTTPS test servers."""
    made = make_certificate(tmp_path_factory.mktemp("tls"))
    if made is None:
        pytest.skip("openssl is not installed: no certificate for an HTTPS test server")
    return made


@pytest.fixture(scope="session")
def _tls_server(certificate: tuple[Path, Path]) -> Iterator[FileServer]:
    server = FileServer(tls=certificate)
    yield server
    server.close()


@pytest.fixture
def tls_server(_tls_server: FileServer) -> Iterator[FileServer]:
    """An HTTPS server whose certificate no system trusts: clients refuse it."""
    yield from _emptied(_tls_server)


@pytest.fixture
def trusted(certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients trust the test's certificate, as a school trusts its own CA: SSL_CERT_FILE,
    which httpx reads (with trust_env) like OpenSSL's own tools."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))


def make_entry(item_id: str, url: str | None, **fields: object) -> Entry:
    """A manifest entry for a video at ``url``."""
    values: dict[str, object] = {
        "id": item_id,
        "title": f"Vidéo {item_id}",
        "area": "Domaine 1",
        "description": None,
        "source": Source(path=f"{item_id}.md", sha256="0" * 64),
        "video": Video(url=url, embed_url=None),
    }
    values.update(fields)
    return Entry(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def half_second_clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real 0.5 s MP4 (ffmpeg), made once for the session."""
    from .media import make_mp4

    return make_mp4(tmp_path_factory.mktemp("clip") / "c.mp4", seconds=0.5).read_bytes()


def run_cli(*args: str | Path) -> tuple[int, str, str]:
    """``archiver ARGS`` in this process: exit code, stdout, stderr."""
    from click.testing import CliRunner

    from archiver.cli import cli

    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@functools.cache
def _tiny_clip() -> bytes:
    from .media import make_mp4

    with tempfile.TemporaryDirectory() as folder:
        return make_mp4(Path(folder, "tiny.mp4"), seconds=0.2, width=64, height=48).read_bytes()


def content_of(size: int, seed: int = 0) -> bytes:
    """A real, playable MP4 of exactly ``size`` bytes, different for each seed.

    A tiny ffmpeg clip, then a ``free`` box of deterministic random bytes (incompressible)
    padding it to ``size``: the downloader checks that videos are whole MP4s.
    """
    clip = _tiny_clip()
    padding = size - len(clip) - 8
    if padding < 0:
        raise ValueError(f"content_of needs at least {len(clip) + 8} bytes")
    return (
        clip + (padding + 8).to_bytes(4, "big") + b"free" + random.Random(seed).randbytes(padding)
    )


def tagged(clip: bytes, tag: bytes) -> bytes:
    """The same MP4 with a ``free`` box holding ``tag``: other bytes, still a whole MP4."""
    return clip + (8 + len(tag)).to_bytes(4, "big") + b"free" + tag


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def chromium(*extra_args: str) -> Iterator[Browser]:
    """Debian's Chromium driven by Playwright (never ``playwright install``, which cannot
    download here): headless, no sandbox (root), no GPU, no background networking."""
    from playwright.sync_api import sync_playwright

    from .media import require

    if not Path(CHROMIUM).exists():
        require("chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", *extra_args],
        )
        try:
            yield browser
        finally:
            browser.close()


def offline_page(page: Page, url: str, *, dialogs: bool = False) -> tuple[Page, list[str]]:
    """``page`` opened at ``url`` (a kit's ``file://`` page), recording every problem: a page
    error, a console error, any request leaving ``file://``, and with ``dialogs`` every dialog
    (dismissed)."""
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    if dialogs:
        page.on(
            "dialog",
            lambda dialog: (problems.append(f"dialog: {dialog.message}"), dialog.dismiss()),
        )
    page.on(
        "console",
        lambda message: (
            problems.append(f"console: {message.text}") if message.type == "error" else None
        ),
    )
    page.on(
        "request",
        lambda request: None if request.url.startswith("file://") else problems.append(request.url),
    )
    page.goto(url)
    return page, problems


def one_held(server: FileServer, tmp_path: Path) -> tuple[Path, Path, Path]:
    """An archive (``tmp_path/archive``) holding one video downloaded from ``server``, its
    manifest, and a folder of its one fiche."""
    from archiver.manifest import Manifest, write_manifest

    server.add("/v.mp4", content_of(20_000))
    manifest = tmp_path / "m.json"
    write_manifest(Manifest(entries=(make_entry("item", server.url("/v.mp4")),)), manifest)
    assert run_cli("download", manifest, "--archive", tmp_path / "archive", "-q")[0] == 0
    fiches = tmp_path / "fiches"
    fiches.mkdir()
    (fiches / "a.md").write_text(fiche_text(download=server.url("/v.mp4")), encoding="utf-8")
    return manifest, tmp_path / "archive", fiches


def kit_folder(kit: Path, item: str) -> Path:
    """A video's folder in a kit (named from its title, not its id): where the kit's own
    ``data/provenance.json`` puts its video."""
    document = json.loads((kit / "data" / "provenance.json").read_text(encoding="utf-8"))
    (path,) = [v["kit_video"]["path"] for v in document["videos"] if v["id"] == item]
    return (kit / path).parent


def stored(archive: Path, item: str, version: int | None = None) -> Path:
    """Where the archive keeps an item's video: its current version, or ``version``. The
    catalog says (file names are the archive's, not the URL's)."""
    where = "current = 1" if version is None else f"version = {int(version)}"
    db = sqlite3.connect(archive / "catalog.sqlite")
    try:
        (path,) = db.execute(
            f"SELECT path FROM files WHERE item_id = ? AND role = 'video' AND {where}",  # noqa: S608
            (item,),
        ).fetchone()
    finally:
        db.close()
    return archive / path


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry below ``folder``, never following a link: a file's sha256, a folder "/",
    a link "-> target", anything else its type; to prove a folder unchanged."""
    found = {}
    for here, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(here, name)
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                seen = f"-> {os.readlink(path)}"
            elif stat.S_ISDIR(mode):
                seen = "/"
            elif stat.S_ISREG(mode):
                seen = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                seen = f"special {stat.S_IFMT(mode):o}"
            found[path.relative_to(folder).as_posix()] = seen
    return found
