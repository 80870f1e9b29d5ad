"""The catalogue as a teacher uses it, in Chromium from file://: French order by area, search
and filter kept in the address (Back, a bookmark), ``'`` finding ``’``, counts, the player's
controls on screen, a visible keyboard focus, files named from titles, the root page, and the
script that checks a key from Windows (its pattern and decoding run here; ``pwsh`` is not
packaged for Debian, so PowerShell itself does not)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from playwright.sync_api import Browser, Page

from archiver.cli import cli
from archiver.fetch import DownloadSettings, download
from archiver.kit import package
from archiver.kit.bag import MANIFEST, TAGMANIFEST
from archiver.kit.ownership import kit_name
from archiver.kit.site import CHECK_SCRIPT
from archiver.manifest import Manifest

from .conftest import chromium, make_entry, offline_page
from .media import make_mp4
from .peertube import FakeInstance
from .server import FileServer

FAST = DownloadSettings(retries=1, backoff_base=0.01, backoff_max=0.01)
# (id, title, area, transcript): ids in no useful order, as PeerTube's UUIDs are.
CAPTIONED = "0b7e"  # the one on a PeerTube instance, with captions
VTT = "WEBVTT\n\n00:00.000 --> 00:01.000\nBonjour à tous.\n"
VIDEOS = [
    ("9f2c", "Évaluer avec le numérique", "Domaine 2", "Une évaluation formative."),
    ("11aa", "Différencier ses pratiques", "Domaine 4", "La différenciation pédagogique."),
    ("c3d4", "Créer un quiz", "Domaine 2", "Un quiz en ligne."),
    ("0b7e", "Découvrir l’ENT de l’établissement", "Domaine 3", "L’espace numérique."),
    ("7e7e", "Collaborer en classe", "Domaine 2", "Le travail en îlots."),
]
CATALOGUE_ORDER = [  # Domaine 2, 3, 4; French order by title in each
    "Collaborer en classe",
    "Créer un quiz",
    "Évaluer avec le numérique",
    "Découvrir l’ENT de l’établissement",
    "Différencier ses pratiques",
]
CARDS = "#catalogue li.card"


@pytest.fixture(scope="module")
def kit(_file_server: FileServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kit made by ``archiver sync`` from five fiches: four videos on a plain web server
    (16:9 clips made by ffmpeg), one on a PeerTube instance with French captions."""
    folder = tmp_path_factory.mktemp("catalogue")
    _file_server.reset()
    clip = make_mp4(folder / "clip.mp4", seconds=2, width=320, height=180).read_bytes()
    fiches = folder / "fiches"
    fiches.mkdir()
    for item_id, title, area, transcript in VIDEOS:
        if item_id == CAPTIONED:
            continue
        _file_server.add(f"/plain/{item_id}.mp4", clip)
        (fiches / f"{item_id}.md").write_text(
            f'---\ntitle: "{title}"\narea: {area}\n'
            f"videoDLHref: {_file_server.url(f'/plain/{item_id}.mp4')}\n---\n\n"
            f"## Script\n\n{transcript}\n",
            encoding="utf-8",
        )
    tube = FakeInstance(_file_server, api_window=2.0)
    video = tube.publish(heights=(360,), videos={360: clip}, captions={"fr": VTT})
    _, title, area, transcript = next(v for v in VIDEOS if v[0] == CAPTIONED)
    text = video.fiche(height=360, title=f'"{title}"').replace("Domaine 1", area)
    (fiches / f"{CAPTIONED}.md").write_text(text.replace("Texte.", transcript), encoding="utf-8")
    result = CliRunner().invoke(
        cli,
        ["sync", str(fiches), "--archive", str(folder / "archive"), "--kit",
         str(folder / "kit"), "--title", "Vidéos", "--retries", "1", "-q"],
        catch_exceptions=False,
    )  # fmt: skip
    assert (result.exit_code, result.stderr) == (0, "")
    _file_server.reset()
    return folder / "kit"


@pytest.fixture(scope="module")
def empty_kit(_file_server: FileServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kit packaged before any video could be downloaded."""
    folder = tmp_path_factory.mktemp("empty")
    download(Manifest(entries=()), folder / "archive", settings=FAST)
    waiting = make_entry("attente", _file_server.url("/never/fetched.mp4"), title="En attente")
    package(Manifest(entries=(waiting,)), folder / "archive", folder / "kit")
    return folder / "kit"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def open_page(
    browser: Browser, url: str, *, viewport: tuple[int, int] = (1366, 768)
) -> tuple[Page, list[str]]:
    """A page that records every problem: errors and any request leaving file://."""
    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    return offline_page(context.new_page(), url)


def shown(page: Page) -> list[str]:
    return page.locator(f"{CARDS}:visible .title").all_inner_texts()


def test_the_root_page_says_what_the_kit_holds_and_opens_the_catalogue(
    kit: Path, browser: Browser
) -> None:
    page, problems = open_page(browser, (kit / "index.html").as_uri())
    page.wait_for_timeout(300)  # a redirect, if there were one, would have left by now
    assert page.url == (kit / "index.html").as_uri()
    assert page.inner_text("h1") == "Vidéos"
    assert "5 vidéos de formation" in page.inner_text(".lead")
    button = page.get_by_role("link", name="Ouvrir le catalogue")
    assert button.is_visible()
    button.click()
    page.wait_for_url("**/data/index.html")
    assert problems == []
    page.context.close()


def test_the_catalogue_is_grouped_by_area_in_french_order_with_counts(
    kit: Path, browser: Browser
) -> None:
    page, problems = open_page(browser, (kit / "data" / "index.html").as_uri())
    assert shown(page) == CATALOGUE_ORDER
    assert page.locator("section.area h2").all_inner_texts() == [
        "Domaine 2 (3 vidéos)",
        "Domaine 3 (1 vidéo)",
        "Domaine 4 (1 vidéo)",
    ]
    assert page.inner_text("#etat") == "5 vidéos"
    page.fill("#recherche", "numerique")  # in one title and one transcript
    assert shown(page) == ["Évaluer avec le numérique", "Découvrir l’ENT de l’établissement"]
    assert page.inner_text("#etat") == "2 vidéos sur 5"
    assert page.locator("section.area:visible h2").all_inner_texts() == [
        "Domaine 2 (1 vidéo)",
        "Domaine 3 (1 vidéo)",
    ]
    page.fill("#recherche", "aucunmotpareil")
    assert shown(page) == []
    assert page.inner_text("#etat") == "0 vidéo sur 5"
    assert page.locator("#aucun").is_visible()
    assert problems == []
    page.context.close()


def test_a_typed_apostrophe_finds_a_typographic_one(kit: Path, browser: Browser) -> None:
    page, problems = open_page(browser, (kit / "data" / "index.html").as_uri())
    page.fill("#recherche", "l'ENT")  # as a French keyboard types it
    assert shown(page) == ["Découvrir l’ENT de l’établissement"]
    page.fill("#recherche", "L’ETABLISSEMENT")  # and the other way, accents and case folded
    assert shown(page) == ["Découvrir l’ENT de l’établissement"]
    assert page.inner_text("#etat") == "1 vidéo sur 5"
    assert problems == []
    page.context.close()


def test_back_and_a_bookmark_restore_the_search_and_the_list_together(
    kit: Path, browser: Browser
) -> None:
    catalogue = (kit / "data" / "index.html").as_uri()
    page, problems = open_page(browser, catalogue)
    page.select_option("#domaine", "Domaine 2")
    page.fill("#recherche", "classe")
    assert shown(page) == ["Collaborer en classe"]
    assert page.url == f"{catalogue}#q=classe&domaine=Domaine%202"

    page.click("text=Collaborer en classe")
    page.wait_for_url("**/videos/Collaborer-en-classe/index.html")
    page.go_back()
    page.wait_for_url(f"{catalogue}#*")
    assert page.input_value("#domaine") == "Domaine 2"
    assert page.input_value("#recherche") == "classe"
    assert shown(page) == ["Collaborer en classe"]

    page.fill("#recherche", "")  # only the area now: the address says so
    assert page.url == f"{catalogue}#domaine=Domaine%202"
    page.click("text=Créer un quiz")
    page.wait_for_url("**/videos/Creer-un-quiz/index.html")
    page.go_back()
    page.wait_for_url(f"{catalogue}#*")
    assert page.input_value("#domaine") == "Domaine 2"
    assert page.input_value("#recherche") == ""
    assert shown(page) == CATALOGUE_ORDER[:3]
    page.context.close()

    # A bookmark, opened in a fresh window.
    bookmarked, more = open_page(browser, f"{catalogue}#q=l%27ent&domaine=Domaine%203")
    assert bookmarked.input_value("#domaine") == "Domaine 3"
    assert bookmarked.input_value("#recherche") == "l'ent"
    assert shown(bookmarked) == ["Découvrir l’ENT de l’établissement"]
    # An area the kit no longer has: every area, not an empty list under a stale select.
    bookmarked.goto(f"{catalogue}#domaine=Domaine%209")
    bookmarked.reload()
    assert bookmarked.input_value("#domaine") == ""
    assert shown(bookmarked) == CATALOGUE_ORDER
    assert problems == [] and more == []
    bookmarked.context.close()


@pytest.mark.parametrize("viewport", [(1366, 768), (390, 844)], ids=["laptop", "phone"])
def test_the_players_controls_are_on_screen_without_scrolling(
    kit: Path, browser: Browser, viewport: tuple[int, int]
) -> None:
    # The longest title of the kit: the one most likely to push the player down.
    folder = kit / "data" / "videos" / "Decouvrir-l-ENT-de-l-etablissement"
    page, problems = open_page(browser, (folder / "index.html").as_uri(), viewport=viewport)
    page.wait_for_function("document.querySelector('video').readyState >= 1")
    box = page.locator("video").bounding_box()
    assert box is not None
    assert box["y"] >= 0
    assert box["y"] + box["height"] <= viewport[1], (box, viewport)
    assert box["width"] >= min(viewport[0] - 64, 600)  # still a player worth watching
    assert problems == []
    page.context.close()


def test_a_card_shows_a_thick_focus_ring_when_tabbed_to(kit: Path, browser: Browser) -> None:
    page, problems = open_page(browser, (kit / "data" / "index.html").as_uri())
    for _ in range(20):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.closest('li.card') !== null"):
            break
    else:
        pytest.fail("Tab never reached a card")
    style, width, offset, clipped = page.evaluate(
        """() => { const s = getComputedStyle(document.activeElement);
                   const card = getComputedStyle(document.activeElement.closest('li.card'));
                   return [s.outlineStyle, parseFloat(s.outlineWidth),
                           parseFloat(s.outlineOffset), card.overflow !== 'visible']; }"""
    )
    assert style == "solid" and width >= 2, (style, width)
    if clipped:  # the card clips what overflows it: the ring must be drawn inside the link
        assert -offset >= width, (width, offset)
    assert problems == []
    page.context.close()


def test_files_and_folders_are_named_from_titles_and_downloads_too(
    kit: Path, browser: Browser
) -> None:
    videos = kit / "data" / "videos"
    assert sorted(p.name for p in videos.iterdir()) == [
        "Collaborer-en-classe",
        "Creer-un-quiz",
        "Decouvrir-l-ENT-de-l-etablissement",
        "Differencier-ses-pratiques",
        "Evaluer-avec-le-numerique",
    ]
    folder = videos / "Differencier-ses-pratiques"
    assert (folder / "Differencier-ses-pratiques-180p.mp4").is_file()
    for path in kit.rglob("*"):
        assert kit_name(path.relative_to(kit).as_posix()), path
    page, problems = open_page(browser, (folder / "index.html").as_uri())
    link = page.get_by_role("link", name=re.compile(r"^La vidéo \(MP4, \d+(,\d)? Ko\)$"))
    assert link.get_attribute("download") == "Differencier-ses-pratiques-180p.mp4"
    assert problems == []
    page.context.close()


# -- verifier-cle.ps1: what PowerShell would run, run here where it can be ---------------------


def _script(kit: Path) -> str:
    data = (kit / CHECK_SCRIPT).read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    return data[3:].decode("utf-8")


def _ps_decode(path: str, script: str) -> str:
    """The script's ``Chemin`` function, its ``-replace`` chain applied in its order."""
    chain = re.search(r"return \$brut((?: -replace '[^']*', (?:\"[^\"]*\"|'[^']*'))+)", script)
    assert chain is not None
    for pattern, replacement in re.findall(
        r"-replace '([^']*)', (\"[^\"]*\"|'[^']*')", chain.group(1)
    ):
        value = replacement[1:-1].replace("`r", "\r").replace("`n", "\n")
        path = re.sub(pattern, lambda _m, v=value: v, path)  # type: ignore[misc]
    return path


def test_the_windows_check_script_reads_every_line_of_the_kits_manifests(kit: Path) -> None:
    """PowerShell is not packaged for Debian (no ``pwsh`` here): the script's own pattern and
    path decoding, taken from it, read the kit's manifests as ``Get-FileHash`` would check
    them, and catch a damaged file."""
    script = _script(kit)
    assert "Get-FileHash -LiteralPath $fichier -Algorithm SHA256" in script
    assert "[System.Text.Encoding]::UTF8" in script  # 5.1 would read ANSI otherwise
    pattern = re.search(r"\$ligne = '([^']+)'", script)
    assert pattern is not None
    line = re.compile(pattern.group(1))
    checked = 0
    for name in (MANIFEST, TAGMANIFEST):
        assert f"'{name}'" in script
        for text in (kit / name).read_text(encoding="utf-8").splitlines():
            match = line.match(text)
            assert match, text
            path = kit / _ps_decode(match.group(2), script)
            assert path.is_file(), path
            assert hashlib.sha256(path.read_bytes()).hexdigest() == match.group(1).lower()
            checked += 1
    assert checked > 20
    assert f"{CHECK_SCRIPT}" in (kit / TAGMANIFEST).read_text()  # checked like the others
    # RFC 8493's percent-encoding of a path, undone as bag.py undoes it.
    assert _ps_decode("data/a%25b%0D%0Ac.txt", script) == "data/a%b\r\nc.txt"
    assert _ps_decode("data/100%2525.txt", script) == "data/100%25.txt"


def test_captions_are_shown_and_the_page_names_chromiums_own_menu(
    kit: Path, browser: Browser
) -> None:
    folder = kit / "data" / "videos" / "Decouvrir-l-ENT-de-l-etablissement"
    page, problems = open_page(browser, (folder / "index.html").as_uri())
    page.wait_for_function("document.querySelector('video').readyState >= 1")
    tracks = page.evaluate(
        "Array.from(document.querySelector('video').textTracks).map(t => [t.label, t.mode])"
    )
    assert tracks == [["Français", "showing"]]
    said = page.inner_text("p.captions")
    # Chromium's controls have no CC button: captions are under the ⋮ menu (checked in
    # Chromium 156: play, time, volume, full screen, ⋮ > Sous-titres / Captions).
    assert "CC" not in said
    assert "menu ⋮ du lecteur, puis « Sous-titres »" in said
    assert problems == []
    page.context.close()


def test_an_empty_kit_says_why_it_is_empty(empty_kit: Path, browser: Browser) -> None:
    page, problems = open_page(browser, (empty_kit / "index.html").as_uri())
    assert "Ce kit ne contient encore aucune vidéo" in page.inner_text(".lead")
    page.click("text=Ouvrir le catalogue")
    page.wait_for_url("**/data/index.html")
    assert page.locator("#vide").is_visible()
    assert "aucune n’avait été téléchargée" in page.inner_text("#vide")
    assert "ne correspond à cette recherche" not in page.inner_text("main")
    assert page.locator("#filtres").count() == 0
    assert problems == []
    page.context.close()


def _ps_brackets(script: str) -> list[str]:
    """The script's brackets outside strings and comments, as PowerShell's tokenizer sees
    them (``'…'`` literal, ``"…"`` with backtick escapes, ``#`` to the end of the line)."""
    found: list[str] = []
    index, length = 0, len(script)
    while index < length:
        char = script[index]
        if char == "#":
            index = script.find("\n", index)
            index = length if index < 0 else index
        elif char == "'":
            index = script.index("'", index + 1)
        elif char == '"':
            index += 1
            while script[index] != '"':
                index += 2 if script[index] == "`" else 1
        elif char in "{}()[]":
            found.append(char)
        index += 1
    return found


def test_the_windows_check_script_is_well_formed(kit: Path) -> None:
    """No PowerShell here to parse it: its brackets balance once strings and comments are
    set aside, each function it calls is one it defines or a cmdlet of Windows PowerShell
    5.1, and every path of the kit goes through ``-LiteralPath`` (``[`` in a name is no
    wildcard)."""
    script = _script(kit)
    stack: list[str] = []
    pairs = {")": "(", "}": "{", "]": "["}
    for bracket in _ps_brackets(script):
        if bracket in pairs:
            assert stack and stack.pop() == pairs[bracket], bracket
        else:
            stack.append(bracket)
    assert stack == []
    defined = set(re.findall(r"^function (\w+)", script, re.M))
    assert defined == {"Fin", "Chemin"}
    cmdlets = set(re.findall(r"\b([A-Z][a-z]+-[A-Z][A-Za-z]+)\b", script))
    assert cmdlets <= {
        "Get-FileHash", "Get-Location", "Join-Path", "Out-Null", "Read-Host", "Test-Path",
        "Write-Host", "Write-Progress", "New-Object",
    }  # fmt: skip
    code = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("#"))
    for call in re.findall(r"(?:Test-Path|Get-FileHash) [^\n]*", code):
        assert "-LiteralPath" in call, call
    assert "exit $code" in script and re.findall(r"\bFin ([0-9])", script) == ["2", "0", "1"]
