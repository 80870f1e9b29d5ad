"""The Kiwix ZIM: a 3-video collection synced with --zim, read back by libzim, served by
Debian's kiwix-serve, opened in Chromium; its search, metadata and verification."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from libzim.reader import Archive as ZimArchive
from markupsafe import escape
from playwright.sync_api import Browser, Page, Request, Response

from archiver.cli import cli
from archiver.kit.site import CSP, KitItem, render_site, site_sources
from archiver.zim.content import UNCOMPRESSED, ZIM_CSP, mimetype_of
from archiver.zim.metadata import DESCRIPTION_LIMIT, TITLE_LIMIT

from .conftest import chromium, make_entry, sha256
from .server import FileServer
from .zim_support import VIDEOS, KiwixServe, Synced, kiwix_serve, sync_collection

ZIM_HEADER = "<IHH16sIIQQQQIIQ"  # magic, versions, uuid, counts, pointers, main, layout, checksum


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory, _file_server: FileServer) -> Synced:
    _file_server.reset()
    return sync_collection(tmp_path_factory.mktemp("zim"), _file_server)


@pytest.fixture(scope="module")
def served(synced: Synced) -> Iterator[KiwixServe]:
    with kiwix_serve(synced.zim) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def run(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def kit_files(kit: Path) -> dict[str, bytes]:
    data = kit / "data"
    return {p.relative_to(data).as_posix(): p.read_bytes() for p in data.rglob("*") if p.is_file()}


def with_zim_policy(page: bytes) -> bytes:
    """A kit page with the ZIM's policy in its ``<meta>`` instead of the kit's."""
    kit, zim = (str(escape(policy)).encode() for policy in (CSP, ZIM_CSP))
    assert page.count(kit) == 1
    return page.replace(kit, zim)


def zim_files(zim: ZimArchive) -> dict[str, bytes]:
    found = {}
    for index in range(zim.entry_count):
        entry = zim._get_entry_by_id(index)
        found[entry.path] = bytes(entry.get_item().content)
    return found


# -- what the ZIM holds ---------------------------------------------------------------------------


def test_the_zim_passes_libzim_check_and_holds_the_kit_site_file_for_file(synced: Synced) -> None:
    zim = ZimArchive(synced.zim)
    assert zim.check()  # libzim's own reader: the MD5 checksum of every byte
    held = zim_files(zim)
    kit = kit_files(synced.kit)
    assert held == {name: with_zim_policy(data) if name.endswith(".html") else data
                    for name, data in kit.items()}  # fmt: skip
    pages = [name for name in held if name.endswith(".html")]
    assert len(pages) == 1 + len(VIDEOS)
    for name in pages:  # the one difference: the reader's search bar may search
        assert str(escape(ZIM_CSP)).encode() in held[name], name
        assert held[name] != kit[name]
    assert zim.main_entry.get_item().path == "index.html"
    assert zim.article_count == 1 + len(VIDEOS)  # the catalogue and each video's page
    assert zim.has_fulltext_index and zim.has_title_index
    titles = {zim._get_entry_by_id(i).title for i in range(zim.entry_count)}
    assert {title for _, title, *_ in VIDEOS} <= titles


def test_videos_are_stored_as_they_are_and_pages_compressed(synced: Synced) -> None:
    held = synced.zim.read_bytes()
    files = kit_files(synced.kit)
    videos = [data for name, data in files.items() if name.endswith(".mp4")]
    pages = [data for name, data in files.items() if name.endswith("index.html")]
    assert len(videos) == len(VIDEOS)
    assert all(video in held for video in videos)  # whole, uncompressed: Range reads them
    assert not any(page in held for page in pages)  # compressed with the other text
    assert "video/mp4" in UNCOMPRESSED and mimetype_of("a/index.html") not in UNCOMPRESSED


def test_metadata_follow_openzim_conventions(synced: Synced) -> None:
    zim = ZimArchive(synced.zim)

    def meta(name: str) -> str:
        return zim.get_metadata(name).decode("utf-8")

    assert meta("Language") == "fra"
    assert meta("Creator") == "Réseau Canopé"
    assert meta("License") == "CC BY-NC-ND 4.0"
    assert len(meta("Title")) <= TITLE_LIMIT
    assert 0 < len(meta("Description")) <= DESCRIPTION_LIMIT
    assert len(meta("LongDescription")) > len(meta("Description"))
    assert {"_videos:yes", "_ftindex:yes"} <= set(meta("Tags").split(";"))
    assert meta("Name").startswith("archiver_fr_")
    for name in ("Publisher", "Date", "Flavour", "Source", "Scraper"):
        assert meta(name), name
    assert zim.has_illustration(48)
    png = bytes(zim.get_illustration_item(48).content)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png[16:24]) == (48, 48)


# -- through kiwix-serve -------------------------------------------------------------------------


def test_chromium_through_kiwix_serve_plays_seeks_and_shows_everything(
    synced: Synced, served: KiwixServe, browser: Browser
) -> None:
    page, problems = open_served(browser, served)
    page.goto(served.content())  # the ZIM's main page: the catalogue
    page.wait_for_url(f"**/{served.book}/index.html")
    assert page.locator("#catalogue li:visible").count() == len(VIDEOS)
    page.fill("#recherche", "ilots")  # the catalogue's own search works there too
    assert page.locator("#catalogue li:visible").count() == 1
    page.click("#catalogue li:visible a")
    page.wait_for_url("**/videos/*/index.html")
    assert page.inner_text("h1") == "Collaborer en classe"
    page.wait_for_function("document.querySelector('video').readyState >= 1")
    assert page.evaluate("document.querySelector('video').duration") == pytest.approx(4.0, abs=0.2)
    seeked = page.evaluate(
        """() => new Promise((resolve, reject) => {
            const video = document.querySelector('video');
            video.addEventListener('seeked', () => resolve(video.currentTime), {once: true});
            video.addEventListener('error', () => reject(String(video.error?.message)));
            video.currentTime = 3;
        })"""
    )
    assert seeked == pytest.approx(3.0, abs=0.2)  # kiwix-serve answered the Range request
    played = page.evaluate(
        """() => new Promise((resolve, reject) => {
            const video = document.querySelector('video');
            video.muted = true;
            video.currentTime = 0;
            video.addEventListener('timeupdate', function check() {
                if (video.currentTime > 0.3) {
                    video.removeEventListener('timeupdate', check);
                    video.pause();
                    resolve(video.currentTime);
                }
            });
            video.play().catch((error) => reject(String(error)));
        })"""
    )
    assert played > 0.3
    tracks = page.evaluate(
        """() => Array.from(document.querySelector('video').textTracks).map(
            (t) => [t.language, t.mode, t.cues ? Array.from(t.cues).map((c) => c.text) : null])"""
    )
    assert tracks == [["fr", "showing", ["Bonjour à tous."]]]
    assert "tablettes partagées" in page.inner_text(".transcript")
    assert "Réseau Canopé" in page.inner_text("dl.credits")
    assert "sans usage commercial" in page.inner_text("#credits ~ h3 + p")
    page.click("a[rel=next], a[rel=prev] >> nth=0")  # to a neighbour's page, relative
    page.wait_for_url("**/videos/*/index.html")
    page.wait_for_function("document.querySelector('h1').innerText !== 'Collaborer en classe'")
    assert problems == []
    page.context.close()


def test_kiwix_serve_search_bar_on_a_page_searches_the_zim(
    synced: Synced, served: KiwixServe, browser: Browser
) -> None:
    """kiwix-serve's own bar, on top of each page: the pages' policy lets it send its form."""
    page, problems = open_served(browser, served)
    page.goto(served.content("index.html"))
    page.fill("#kiwixsearchbox", "ilots")
    page.evaluate("document.querySelector('#kiwixsearchform').submit()")
    page.wait_for_url("**/search?**")
    page.click("text=Collaborer en classe")
    page.wait_for_url("**/videos/*/index.html")
    assert page.inner_text("h1") == "Collaborer en classe"
    assert problems == []
    page.context.close()


# Console errors that kiwix-serve's own bar causes, not the ZIM: its jQuery probes inline
# handlers (which the pages' policy refuses, as it should), and Chromium asks for a
# /favicon.ico kiwix-serve does not have. Every answer of 400 or more is caught apart.
KIWIX_NOISE = ("Executing inline event handler violates", "Failed to load resource")


def open_served(browser: Browser, served: KiwixServe) -> tuple[Page, list[str]]:
    """A page that records every problem: errors, failed answers, any request elsewhere."""
    page = browser.new_context().new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))

    def console(message: object) -> None:
        text = getattr(message, "text", "")
        if getattr(message, "type", "") == "error" and not text.startswith(KIWIX_NOISE):
            problems.append(f"console: {text}")

    def outside(request: Request) -> None:
        if not request.url.startswith(served.url + "/"):
            problems.append(f"request outside kiwix-serve: {request.url}")

    def failed(response: Response) -> None:
        if response.status >= 400:
            problems.append(f"{response.status}: {response.url}")

    page.on("console", console)
    page.on("request", outside)
    page.on("response", failed)
    return page, problems


@pytest.mark.parametrize(
    ("pattern", "title"),
    [
        ("ilots", "Collaborer en classe"),  # a transcript word typed without its accent
        ("îlots", "Collaborer en classe"),  # ... and with it
        ("questionnaires", "Évaluer avec le numérique"),  # a transcript word
        ("differencier", "Différencier ses pratiques"),  # a title word without accents
        ("différencier", "Différencier ses pratiques"),
        ("evaluer", "Évaluer avec le numérique"),
    ],
)
def test_kiwix_serve_search_finds_a_video_by_a_word(
    synced: Synced, served: KiwixServe, pattern: str, title: str
) -> None:
    answer = httpx.get(
        f"{served.url}/search", params={"content": served.book, "pattern": pattern}, timeout=10
    )
    assert answer.status_code == 200
    links = [line.strip() for line in answer.text.splitlines() if "/videos/" in line]
    hrefs = [line for line in links if line.startswith("<a href=")]
    assert len(hrefs) == 1, (pattern, hrefs)
    assert title in answer.text


def test_kiwix_serve_answers_range_requests_on_a_video(synced: Synced, served: KiwixServe) -> None:
    video = next(name for name in kit_files(synced.kit) if name.endswith(".mp4"))
    data = (synced.kit / "data" / video).read_bytes()
    answer = httpx.get(served.content(video), headers={"Range": "bytes=100-199"}, timeout=10)
    assert answer.status_code == 206
    assert answer.content == data[100:200]
    assert answer.headers["content-type"] == "video/mp4"


# -- verify FILE.zim -----------------------------------------------------------------------------


def test_verify_a_whole_zim_exits_0_and_checks_videos_against_the_catalog(synced: Synced) -> None:
    code, out, err = run("verify", synced.zim)
    assert (code, out) == (0, "")
    assert err.startswith(f"Verify: {ZimArchive(synced.zim).entry_count} entries (")
    assert err.endswith(": all intact\n")
    code, _, err = run("verify", synced.zim, "--archive", synced.archive)
    assert code == 0, err
    assert f"videos checked against {synced.archive}: all intact" in err


def test_verify_names_a_flipped_byte_in_a_video(synced: Synced, tmp_path: Path) -> None:
    copy = tmp_path / "copie.zim"
    held = bytearray(synced.zim.read_bytes())
    name = next(n for n in kit_files(synced.kit) if n.endswith(".mp4"))
    video = (synced.kit / "data" / name).read_bytes()
    at = bytes(held).index(video) + len(video) // 2
    held[at] ^= 0xFF
    copy.write_bytes(bytes(held))
    code, _, err = run("verify", copy, "-q")
    assert code == 1
    assert err.splitlines() == [
        f"Error: {copy}: its checksum does not match its bytes: the file changed",
        f"Error: {copy}!{name}: its sha256 differs from the one its provenance records",
    ]


def test_verify_against_another_archive_names_each_video(synced: Synced, tmp_path: Path) -> None:
    other = tmp_path / "autre"
    code, _, _ = run("download", write_empty_manifest(tmp_path), "--archive", other, "-q")
    assert code == 0
    code, _, err = run("verify", synced.zim, "--archive", other, "-q")
    assert code == 1
    lines = err.splitlines()
    assert len(lines) == len(VIDEOS)
    assert all(
        line.endswith(": its archived video is not in the archive's catalog") for line in lines
    )


def write_empty_manifest(folder: Path) -> Path:
    from archiver.manifest import Manifest, write_manifest

    path = folder / "vide.json"
    write_manifest(Manifest(entries=()), path)
    return path


def test_verify_of_a_file_that_is_no_zim_exits_2_on_one_line(tmp_path: Path) -> None:
    fake = tmp_path / "faux.zim"
    fake.write_bytes(b"not a zim at all" * 100)
    code, _, err = run("verify", fake)
    assert code == 2
    assert len(err.splitlines()) == 1
    assert err.startswith(f"Error: {fake}: is not a ZIM libzim can read")
    other = tmp_path / "notes.txt"
    other.write_text("x")
    code, _, err = run("verify", other)
    assert (code, err) == (
        2,
        f"Error: {other}: give a KIT folder or a FILE.zim, not another file\n",
    )


def test_sha256_helper_matches_hashlib(synced: Synced) -> None:
    """The checks read entries by blocks: a split at every block gives hashlib's digest."""
    from archiver.zim.writer import sha256_of_view

    data = bytes(range(256)) * 40000  # 10 MB: three blocks of 4 MiB
    assert sha256_of_view(memoryview(data)) == sha256(data)


# -- sync --zim ----------------------------------------------------------------------------------


def test_sync_offline_writes_the_zim_again_and_says_so(synced: Synced, tmp_path: Path) -> None:
    zim = tmp_path / "encore.zim"
    code, out, err = run("sync", synced.fiches, "--archive", synced.archive, "--kit",
                         tmp_path / "kit", "--zim", zim, "--offline")  # fmt: skip
    assert (code, out) == (0, "")
    lines = err.splitlines()
    assert lines[0].startswith("Sync: 3 videos;")
    assert lines[1].startswith(f"ZIM: 3 videos in {zim}; {ZimArchive(zim).entry_count} entries,")
    assert len(lines) == 2
    assert ZimArchive(zim).check()


def test_sync_refuses_a_zim_path_before_downloading(synced: Synced, tmp_path: Path) -> None:
    folder = tmp_path / "dossier.zim"
    folder.mkdir()
    archive = tmp_path / "archive"
    code, _, err = run("sync", synced.fiches, "--archive", archive, "--kit", tmp_path / "kit",
                       "--zim", folder, "--retries", "0", "-q")  # fmt: skip
    assert (code, err) == (
        2,
        f"Error: {folder}: is a folder; --zim names the ZIM file to write (FILE.zim)\n",
    )
    assert not (archive / "media").exists() or not any((archive / "media").iterdir())
    assert not (tmp_path / "kit").exists()


def test_metadata_stay_within_openzim_bounds_for_a_long_title() -> None:
    from archiver.kit.site import KitItem
    from archiver.zim.metadata import zim_metadata

    from .conftest import make_entry

    items = [KitItem(make_entry(f"v{n}", None), "video.mp4") for n in range(1234)]
    title = "Former les enseignants du premier degré avec le numérique, en classe et hors"
    values = zim_metadata(items, title=title, flavour="maxi", date="2026-11-27").as_dict()
    assert values["Title"] == "Former les enseignants du…"
    assert len(values["Title"]) <= TITLE_LIMIT
    assert (
        values["Description"] == "1234 vidéos de formation, avec transcription, crédits et licence"
    )
    assert len(values["Description"]) <= DESCRIPTION_LIMIT
    assert values["Creator"] == values["Publisher"] == "archiver"  # no credits: archiver's
    assert "License" not in values and "Source" not in values  # none known: none said


def test_pages_are_rendered_with_the_policy_given_and_keyed_by_it() -> None:
    """The ZIM renders its pages with its own policy (no rewrite of the kit's bytes), and a
    page made with another policy never has a kit page's key: a kit's cache cannot serve it."""
    items = [KitItem(entry=make_entry(f"v{i}", f"https://x.org/{i}.mp4"), video_name="v.mp4")
             for i in range(2)]  # fmt: skip
    kit = render_site(items, collection_title="Vidéos")
    zim = render_site(items, collection_title="Vidéos", csp=ZIM_CSP)
    pages = [name for name in kit if name.endswith(".html")]
    assert len(pages) == 3
    for name in pages:
        assert zim[name] == with_zim_policy(kit[name]), name
    assert {name: data for name, data in zim.items() if name not in pages} == {
        name: data for name, data in kit.items() if name not in pages
    }

    def keys(csp: str) -> dict[str, str]:
        known = lambda _name, _key: None  # noqa: E731
        return site_sources(items, collection_title="Vidéos", known=known, csp=csp)[1]

    kit_keys, zim_keys = keys(CSP), keys(ZIM_CSP)
    assert all(kit_keys[name] != zim_keys[name] for name in pages)
