"""Provenance in every kit: each video's source URL, fetch date, sha256, resolution and licence,
on its page ("Provenance") and in ``data/provenance.json``, so that a kit copied far from the
archive still says where each file came from.

The kits here are packaged from archives filled by real downloads from the loopback server
(and from the fake PeerTube instance), and what they say is compared with the catalog.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bagit
import pytest
from click.testing import CliRunner
from playwright.sync_api import Browser

from archiver import media
from archiver.archive import Archive, FileRecord
from archiver.catalog import parse_time
from archiver.cli import cli
from archiver.entry import Credit, Entry, Licence, PeerTubeRef, Source, Video
from archiver.fetch import download
from archiver.kit import KitSettings, package
from archiver.kit.bag import MANIFEST, salvage_manifest, verify_bag
from archiver.kit.provenance import (
    FORMAT,
    FileProvenance,
    KitFile,
    KitProvenance,
    Making,
    date_fr,
    provenance_json,
)
from archiver.manifest import Manifest

from .conftest import chromium, make_entry
from .media import make_mp4
from .peertube import FakeInstance
from .server import FileServer
from .test_package import FAST, open_page

SECRET = "s3cret-pr0v"
MONTHS = [
    "janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
    "septembre", "octobre", "novembre", "décembre",
]  # fmt: skip
LICENCE = Licence("CC BY-NC-ND 4.0", "https://creativecommons.org/licenses/by-nc-nd/4.0/")
VTT = "WEBVTT\n\n00:00:00.000 --> 00:00:00.500\nBonjour à tous.\n"
PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Real fragmented MP4s made by ffmpeg: two small ones, and one in 720p to re-encode."""
    folder = tmp_path_factory.mktemp("clips")
    return {
        "a": make_mp4(folder / "a.mp4", seconds=2).read_bytes(),
        "b": make_mp4(folder / "b.mp4", seconds=3, width=256, height=192).read_bytes(),
        "hd": make_mp4(folder / "hd.mp4", seconds=1, width=1280, height=720).read_bytes(),
    }


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def with_credentials(url: str) -> str:
    return url.replace("http://", f"http://ann:{SECRET}@")


STEMS = {"evaluer": "Evaluer-avec-le-numerique", "collaborer": "Collaborer-en-classe"}


def collection(server: FileServer, clips: dict[str, bytes]) -> list[Entry]:
    """Two videos: one behind a URL with a user and password (as some intranets serve them),
    under a long path; one plain."""
    server.add("/videotheque/formation-continue/2026/evaluer-avec-le-numerique-480.mp4", clips["a"])
    server.add("/collaborer.mp4", clips["b"])
    return [
        make_entry(
            "evaluer",
            with_credentials(
                server.url("/videotheque/formation-continue/2026/evaluer-avec-le-numerique-480.mp4")
            ),
            title="Évaluer avec le numérique",
            source=Source("canope/evaluer.md", hashlib.sha256(b"fiche evaluer").hexdigest()),
            credits=(Credit("Production", ("Réseau Canopé",)),),
            licence=LICENCE,
        ),
        make_entry(
            "collaborer",
            server.url("/collaborer.mp4"),
            title="Collaborer en classe",
            source=Source("canope/collaborer.md", hashlib.sha256(b"fiche collab").hexdigest()),
            licence=Licence("Tous droits réservés", None),
        ),
    ]


def build(
    tmp_path: Path, items: list[Entry], *, kit: str = "kit", **settings: Any
) -> tuple[Manifest, Path, Path]:
    manifest = Manifest(entries=tuple(items))
    archive = tmp_path / "archive"
    download(manifest, archive, settings=FAST)
    package(manifest, archive, tmp_path / kit, settings=KitSettings(**settings))
    return manifest, archive, tmp_path / kit


def read_provenance(kit: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((kit / "data" / "provenance.json").read_bytes())
    return document


def by_id(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {video["id"]: video for video in document["videos"]}


def french_day(stamp: str) -> str:
    """The day of a catalog time as a French reader writes it, worked out here on its own."""
    moment = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(dt.UTC)
    day = "1er" if moment.day == 1 else str(moment.day)
    return f"{day} {MONTHS[moment.month - 1]} {moment.year}"


def held_video(archive: Path, item: str) -> tuple[FileRecord, tuple[int | None, int | None]]:
    """The video the catalog holds for ``item``, and its size as FFmpeg read it."""
    with Archive(archive) as opened:
        record = opened.held(item, "video")
        assert record is not None
        facts = opened.media_facts(record.sha256)
    assert facts is not None
    return record, (facts.width, facts.height)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- data/provenance.json and the page, against the catalog ------------------------------------


def test_provenance_json_says_what_the_catalog_says_of_each_video(
    server: FileServer, clips: dict[str, bytes], tmp_path: Path
) -> None:
    items = collection(server, clips)
    _, archive, kit = build(tmp_path, items)
    document = read_provenance(kit)
    assert document["format"] == FORMAT == "archiver-provenance/1"
    assert [video["id"] for video in document["videos"]] == ["evaluer", "collaborer"]
    for entry in items:
        record, (width, height) = held_video(archive, entry.id)
        said = by_id(document)[entry.id]
        video = said["video"]
        expected_url = record.url.replace(f"ann:{SECRET}@", "***@")
        assert video["url"] == expected_url
        assert video["final_url"] == record.final_url.replace(f"ann:{SECRET}@", "***@")
        assert (video["fetched_at"], video["sha256"], video["size"]) == (
            record.fetched_at,
            record.sha256,
            record.size,
        )
        assert (video["version"], video["resolution"]) == (record.version, record.resolution)
        assert (video["width"], video["height"]) == (width, height)
        assert (video["etag"], video["last_modified"]) == (record.etag, record.last_modified)
        assert video["sha256"] == sha256_of(archive / record.path)
        # Carried as archived: the kit's file is those very bytes.
        stem = STEMS[entry.id]  # the folder and the file are named from the title
        assert said["kit_video"] == {
            "path": f"data/videos/{stem}/{stem}-{height}p.mp4",
            "sha256": record.sha256,
            "size": record.size,
            "made": [],
        }
        assert sha256_of(kit / said["kit_video"]["path"]) == record.sha256
        assert said["fiche"] == {"path": entry.source.path, "sha256": entry.source.sha256}
        assert said["title"] == entry.title
        assert entry.licence is not None
        assert said["licence"] == {"name": entry.licence.name, "url": entry.licence.url}
        assert (said["sound"], said["peertube"], said["companions"]) == (None, None, [])
    # The user's password is the archive's business, never a kit's: nowhere in it.
    evaluer = by_id(document)["evaluer"]["video"]
    assert evaluer["url"].startswith("http://***@127.0.0.1:")
    for path in kit.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    # A payload file like any other: in the manifest, checked by our verify and by bagit's.
    listed = salvage_manifest(kit / MANIFEST)
    assert listed is not None
    assert listed.checksums["data/provenance.json"] == sha256_of(kit / "data/provenance.json")
    assert verify_bag(kit)[2] == []
    bagit.Bag(str(kit)).validate()
    assert "data/provenance.json" in (kit / "LISEZMOI.txt").read_text(encoding="utf-8")


def test_provenance_json_is_sorted_utf8_and_readable_without_archiver(
    server: FileServer, clips: dict[str, bytes], tmp_path: Path
) -> None:
    _, _, kit = build(tmp_path, collection(server, clips))
    raw = (kit / "data" / "provenance.json").read_bytes()
    text = raw.decode("utf-8")
    assert "Évaluer avec le numérique" in text  # UTF-8, not \u escapes
    document = json.loads(text)
    assert text == json.dumps(document, ensure_ascii=False, sort_keys=True, indent=2) + "\n"


def test_the_page_shows_the_provenance_section_in_french(
    server: FileServer, clips: dict[str, bytes], tmp_path: Path
) -> None:
    _, archive, kit = build(tmp_path, collection(server, clips))
    record, (_, height) = held_video(archive, "evaluer")
    page = (kit / "data/videos/Evaluer-avec-le-numerique/index.html").read_text(encoding="utf-8")
    assert '<section aria-labelledby="provenance" class="provenance">' in page
    assert '<h2 id="provenance">Provenance</h2>' in page
    for label in ("Source", "Récupérée le", "Empreinte SHA-256", "Résolution", "Licence", "Fiche"):
        assert f"<dt>{label}</dt>" in page, label
    assert f'<code class="hash">{record.sha256}</code>' in page
    day = french_day(record.fetched_at)
    fetched = parse_time(record.fetched_at)
    assert fetched is not None
    assert f'<time datetime="{fetched.date().isoformat()}">{day}</time>' in page
    assert f"<dd>{height}p</dd>" in page
    assert (
        '<a href="https://creativecommons.org/licenses/by-nc-nd/4.0/" rel="license">'
        "CC BY-NC-ND 4.0</a>" in page
    )
    assert "canope/evaluer.md" in page
    assert hashlib.sha256(b"fiche evaluer").hexdigest() in page
    assert "http://***@127.0.0.1:" in page
    assert SECRET not in page
    # A licence with no link is named, not linked.
    other = (kit / "data/videos/Collaborer-en-classe/index.html").read_text(encoding="utf-8")
    assert "<dt>Licence</dt>\n  <dd>Tous droits réservés</dd>" in other


def test_repackaging_an_unchanged_kit_leaves_provenance_byte_identical(
    server: FileServer, clips: dict[str, bytes], tmp_path: Path
) -> None:
    manifest, archive, kit = build(tmp_path, collection(server, clips))
    before = (kit / "data" / "provenance.json").read_bytes()
    # A later run checks every file upstream again (their checked_at moves on), then packages.
    download(manifest, archive, settings=FAST)
    report = package(manifest, archive, kit)
    assert (report.written, report.changed) == (0, ())
    assert (kit / "data" / "provenance.json").read_bytes() == before
    # Nothing of the run that made it: another kit made later from the same archive agrees.
    package(manifest, archive, tmp_path / "other", settings=KitSettings(copy=True))
    assert (tmp_path / "other" / "data" / "provenance.json").read_bytes() == before


def test_a_changed_video_changes_its_provenance(
    server: FileServer, clips: dict[str, bytes], tmp_path: Path
) -> None:
    items = collection(server, clips)
    manifest, archive, kit = build(tmp_path, items)
    first = by_id(read_provenance(kit))["collaborer"]["video"]
    server.add("/collaborer-v2.mp4", clips["a"])  # upstream published another file
    items[1] = dataclasses.replace(items[1], video=Video(server.url("/collaborer-v2.mp4"), None))
    manifest = Manifest(entries=tuple(items))
    download(manifest, archive, settings=FAST)
    report = package(manifest, archive, kit)
    assert "data/provenance.json" in report.changed
    record, _ = held_video(archive, "collaborer")
    now = by_id(read_provenance(kit))["collaborer"]["video"]
    assert (now["sha256"], now["version"]) == (record.sha256, record.version)
    assert (now["version"], now["sha256"]) != (first["version"], first["sha256"])
    assert record.version == first["version"] + 1


# -- a video the kit carries made from the archived one -----------------------------------------


def test_a_re_encoded_video_names_the_archived_sha256_and_the_kit_files(
    server: FileServer, clips: dict[str, bytes], tmp_path: Path
) -> None:
    server.add("/hd-720.mp4", clips["hd"])
    entry = make_entry("hd", server.url("/hd-720.mp4"), title="En HD", licence=LICENCE)
    _, archive, kit = build(tmp_path, [entry], transcode=media.PRESETS["360p"])
    record, _ = held_video(archive, "hd")
    said = by_id(read_provenance(kit))["hd"]
    carried = kit / "data/videos/En-HD/En-HD-360p.mp4"
    assert said["video"]["sha256"] == record.sha256 == sha256_of(archive / record.path)
    assert said["video"]["size"] == record.size
    assert said["video"]["path"] is None  # those bytes are not in the kit
    assert said["video"]["height"] == 720
    assert said["kit_video"] == {
        "path": "data/videos/En-HD/En-HD-360p.mp4",
        "sha256": sha256_of(carried),
        "size": carried.stat().st_size,
        "made": ["re-encoded to 360p"],
    }
    assert said["kit_video"]["sha256"] != record.sha256
    page = (kit / "data/videos/En-HD/index.html").read_text(encoding="utf-8")
    assert f'de la vidéo archivée : <code class="hash">{record.sha256}</code>' in page
    assert (
        f'de ce fichier (réencodée en 360p) : <code class="hash">{sha256_of(carried)}</code>'
        in page
    )
    assert "<dd>720p (360p dans ce kit)</dd>" in page


def test_a_peertube_video_joined_with_its_sound_and_its_companions(
    server: FileServer, tmp_path: Path
) -> None:
    """Through ``archiver sync`` from a PeerTube instance that stores the sound apart: the
    kit's video is the picture joined with its sound, and both archived files are named; the
    captions, the instance's preview (the poster) and the fiche's PDF have theirs."""
    tube = FakeInstance(server, api_window=2.0)
    video = tube.publish(split_audio=True, heights=(720, 360), captions={"fr": VTT})
    server.add("/fiche.pdf", PDF, content_type="application/pdf")
    fiches = tmp_path / "fiches"
    fiches.mkdir()
    text = video.fiche(title="La parole en classe").replace(
        f"videoDLHref: {video.download_url(1080)}",
        f"videoDLHref: {video.download_url(720)}\nfichePdfHref: {server.url('/fiche.pdf')}",
    )
    (fiches / "parole.md").write_text(text, encoding="utf-8")
    result = CliRunner().invoke(
        cli,
        [str(a) for a in ("sync", fiches, "--archive", tmp_path / "archive", "--kit",
                          tmp_path / "kit", "--retries", "0", "-q")],
        catch_exceptions=False,
    )  # fmt: skip
    assert (result.exit_code, result.stderr) == (0, "")
    kit = tmp_path / "kit"
    document = read_provenance(kit)
    (said,) = document["videos"]
    item = said["id"]
    folder = "data/videos/La-parole-en-classe"  # named from its title
    with Archive(tmp_path / "archive") as archive:
        record = archive.held(item, "video")
        sound = archive.held(item, "audio")
        held = {role: archive.held(item, role) for role in ("preview", "caption_fr", "fiche_pdf")}
    assert record is not None and sound is not None
    assert said["peertube"] == {"instance": tube.url, "uuid": video.uuid}
    assert said["video"]["resolution"] == record.resolution == 720
    assert said["video"]["sha256"] == record.sha256
    assert said["video"]["url"] == record.url
    assert said["sound"]["sha256"] == sound.sha256
    assert (said["sound"]["url"], said["sound"]["path"]) == (sound.url, None)
    joined = kit / folder / "La-parole-en-classe-720p.mp4"
    assert said["kit_video"] == {
        "path": f"{folder}/La-parole-en-classe-720p.mp4",
        "sha256": sha256_of(joined),
        "size": joined.stat().st_size,
        "made": ["joined with its sound"],
    }
    assert sha256_of(joined) not in (record.sha256, sound.sha256)
    companions = {c["role"]: c for c in said["companions"]}
    assert {role: c["path"] for role, c in companions.items()} == {
        "caption_fr": f"{folder}/captions-fr.vtt",
        "fiche_pdf": f"{folder}/fiche.pdf",
        "preview": f"{folder}/poster.jpg",
    }
    for role, found in held.items():
        assert found is not None, role
        shown = companions[role]
        assert (shown["url"], shown["fetched_at"], shown["sha256"], shown["size"]) == (
            found.url,
            found.fetched_at,
            found.sha256,
            found.size,
        )
        assert sha256_of(kit / shown["path"]) == found.sha256
    page = (kit / folder / "index.html").read_text(encoding="utf-8")
    assert f'de la vidéo archivée : <code class="hash">{record.sha256}</code>' in page
    assert (
        f'de ce fichier (assemblée avec sa bande son) : <code class="hash">{sha256_of(joined)}'
        in page
    )
    bagit.Bag(str(kit)).validate()


# -- the record itself ---------------------------------------------------------------------------


def record_of(**fields: Any) -> FileRecord:
    values: dict[str, Any] = {
        "item_id": "x",
        "role": "video",
        "version": 3,
        "path": "media/x/video.mp4",
        "url": "https://tube.example/v.mp4",
        "final_url": "https://tube.example/v.mp4",
        "sha256": "a" * 64,
        "size": 1234,
        "etag": '"e"',
        "last_modified": None,
        "fetched_at": "2026-11-26T03:00:00.000000Z",
        "current": True,
        "checked_at": "2026-12-01T03:00:00.000000Z",
    }
    values.update(fields)
    return FileRecord(**values)


def test_credentials_in_either_url_are_redacted() -> None:
    entry = make_entry(
        "x",
        "https://ann:pw@tube.example/v.mp4",
        peertube=PeerTubeRef("https://tube.example", "11111111-2222-4333-8444-555555555555"),
    )
    record = record_of(
        url="https://ann:pw@tube.example/v.mp4",
        final_url="https://bob:pw2@cdn.example/v.mp4?sig=1",
    )
    made = KitProvenance.of(entry, record, KitFile("data/videos/x/video.mp4", "a" * 64, 1234))
    assert (made.video.url, made.video.final_url) == (
        "https://***@tube.example/v.mp4",
        "https://***@cdn.example/v.mp4?sig=1",
    )
    data = provenance_json([made])
    assert b"pw" not in data
    assert json.loads(data)["videos"][0]["peertube"] == {
        "instance": "https://tube.example",
        "uuid": "11111111-2222-4333-8444-555555555555",
    }


def test_the_json_holds_nothing_that_moves_when_nothing_changed() -> None:
    """``checked_at`` and ``audited_at`` move on with every sync and audit: not provenance."""
    entry = make_entry("x", "https://tube.example/v.mp4")
    kit_file = KitFile("data/videos/x/video.mp4", "a" * 64, 1234)
    one = record_of()
    later = dataclasses.replace(
        one, checked_at="2027-01-01T00:00:00.000000Z", audited_at="2027-01-02T00:00:00.000000Z"
    )
    assert provenance_json([KitProvenance.of(entry, one, kit_file)]) == provenance_json(
        [KitProvenance.of(entry, later, kit_file)]
    )
    assert b"2027" not in provenance_json([KitProvenance.of(entry, later, kit_file)])


def test_how_a_kit_file_was_made_reads_in_both_languages() -> None:
    steps = (Making("joined"), Making("reencoded", "480p"))
    made = KitFile("data/videos/x/video-480p.mp4", "b" * 64, 99, steps)
    assert made.to_json()["made"] == ["joined with its sound", "re-encoded to 480p"]
    assert made.made_fr == "assemblée avec sa bande son, réencodée en 480p"


@pytest.mark.parametrize(
    ("stamp", "french"),
    [
        ("2026-11-26T03:00:00.000000Z", "26 novembre 2026"),
        ("2026-08-01T00:00:00Z", "1er août 2026"),  # a catalog of the first releases
        ("2027-02-28T23:59:59.999999Z", "28 février 2027"),
        ("hier", "hier"),  # unreadable: shown as it is
    ],
)
def test_dates_are_written_in_french(stamp: str, french: str) -> None:
    assert date_fr(stamp) == french
    shown = FileProvenance.of(record_of(fetched_at=stamp), None)
    assert shown.fetched_on == french


# -- in Chromium, on a phone ---------------------------------------------------------------------


def test_the_provenance_section_fits_a_phone_screen(
    server: FileServer, clips: dict[str, bytes], tmp_path: Path, browser: Browser
) -> None:
    _, archive, kit = build(tmp_path, collection(server, clips))
    record, _ = held_video(archive, "evaluer")
    page, problems = open_page(
        browser, (kit / "data/videos/Evaluer-avec-le-numerique/index.html").as_uri()
    )
    page.set_viewport_size({"width": 360, "height": 740})
    section = page.get_by_role("region", name="Provenance")
    section.scroll_into_view_if_needed()
    assert section.is_visible()
    assert page.get_by_role("heading", name="Provenance", level=2).is_visible()
    digest = section.locator("code.hash").first
    assert digest.inner_text() == record.sha256
    assert digest.is_visible()
    # Nothing wider than the screen: not the page, not one line of the section.
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    widest = page.evaluate(
        """() => Math.max(...Array.from(
            document.querySelectorAll('.provenance, .provenance *'),
            e => e.getBoundingClientRect().right))"""
    )
    assert widest <= 360
    assert problems == []
    page.context.close()


def test_provenance_json_writes_what_json_dumps_with_indent_writes() -> None:
    """provenance.json is laid out by archiver's own loop (json's indenting encoder is slow);
    the bytes are those of ``json.dumps(indent=2)``, whatever the values hold."""
    odd = 'guillemets " \\ / \x00\x1f\x7f \u2028 é ✓ 𝄞 <script>'
    records = []
    for number, text in enumerate(["", odd, "Vidéo"]):
        record = FileRecord(
            item_id=f"v{number}",
            role="video",
            version=number + 1,
            path=f"media/v{number}/v.mp4",
            url=f"https://tube.example/{text}",
            final_url="https://tube.example/v.mp4",
            sha256=f"{number}" * 64,
            size=2**62 + number,
            etag=text or None,
            last_modified=None,
            fetched_at="2026-11-26T03:00:00.000000Z",
            current=True,
            resolution=720 if number else None,
        )
        made = (Making("joined"), Making("reencoded", "480p")) if number == 1 else ()
        entry = make_entry(
            f"v{number}",
            record.url,
            title=text or "Titre",
            licence=Licence(name=text, url=None) if number else None,
            peertube=PeerTubeRef(instance="https://tube.example", uuid=f"{number}" * 8),
        )
        kit_video = KitFile(path=f"data/videos/v{number}/v.mp4", sha256="a" * 64, size=1, made=made)
        companions = [(dataclasses.replace(record, role="fiche_pdf"), "data/f.pdf")] * number
        records.append(
            KitProvenance.of(entry, record, kit_video, width=number or None, height=0.5 * number,  # type: ignore[arg-type]
                             sound=record if number == 2 else None, companions=companions)
        )  # fmt: skip
    document = {"format": FORMAT, "videos": [video.to_json() for video in records]}
    expected = json.dumps(document, ensure_ascii=False, sort_keys=True, indent=2) + "\n"
    assert provenance_json(records) == expected.encode("utf-8")
    assert provenance_json([]) == b'{\n  "format": "archiver-provenance/1",\n  "videos": []\n}\n'
