"""Trust no content: each file is checked for what it claims to be before it is kept, and named
for its item and role, never for its URL.

A captive portal (a school's Wi-Fi login) answers any URL with ``200 text/html``: its page must
never be kept as a fiche's PDF, and at a refresh it must never replace the real one.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from archiver import sniff
from archiver.archive import Archive
from archiver.cli import cli
from archiver.entry import Asset, Video
from archiver.errors import ArchiveError
from archiver.fetch import DownloadSettings, Outcome, Status, download, download_all
from archiver.fetch.peertube import Caption, VideoFile, VideoInfo
from archiver.fetch.plan import Job, file_name, jobs_for
from archiver.manifest import Manifest, write_manifest

from .conftest import content_of, make_entry, sha256
from .media import make_jpeg, require
from .server import FileServer
from .test_catalog import old_archive

FAST = DownloadSettings(retries=1, backoff_base=0.01, backoff_max=0.01, timeout=2.0)
PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PORTAL = (
    b"<!DOCTYPE html>\n<html><head><title>Connexion au r\xc3\xa9seau</title></head>"
    b'<body><form action="/login">Identifiant</form></body></html>\n'
)
VTT = "WEBVTT\n\n00:00.000 --> 00:01.000\nBonjour.\n\n00:01.000 --> 00:02.500 align:start\nSalut.\n"


def run(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def fetch(root: Path, *jobs: Job) -> list[Outcome]:
    """The downloader's run of ``jobs`` into the archive at ``root``."""
    with Archive(root) as archive:
        archive.record_items([job.entry for job in jobs])
        return asyncio.run(download_all(jobs, archive, settings=FAST))


def with_fiche(server: FileServer, path: str = "/fiche.pdf", item: str = "item-a") -> Manifest:
    """A manifest of one video (served) and its fiche's PDF at ``path``."""
    server.add(f"/{item}.mp4", content_of(50_000, 1))
    asset = Asset("fiche_pdf", server.url(path))
    return Manifest(entries=(make_entry(item, server.url(f"/{item}.mp4"), assets=(asset,)),))


def quarantined(root: Path, item: str = "item-a") -> list[bytes]:
    folder = root / "quarantine" / item
    return sorted(p.read_bytes() for p in folder.iterdir()) if folder.exists() else []


# -- what the bytes are ------------------------------------------------------------------------


def test_a_pdf_is_known_by_its_header_within_its_first_kilobyte(tmp_path: Path) -> None:
    path = tmp_path / "f"
    for data in (PDF, b"\x00" * 1000 + PDF):  # a few bytes before the header are allowed
        path.write_bytes(data)
        assert sniff.check(path, sniff.PDF, "application/octet-stream") == ".pdf"
    path.write_bytes(b" " * 1024 + PDF)
    with pytest.raises(sniff.Mismatch, match=r"^answered application/pdf, not a PDF$"):
        sniff.check(path, sniff.PDF, "application/pdf")


@pytest.mark.parametrize(
    ("data", "content_type", "reason"),
    [
        (PORTAL, "text/html; charset=utf-8", "answered text/html, not a PDF: a login page?"),
        (b"MZ\x90\x00\x03", "application/pdf", "answered application/pdf, not a PDF: a Windows program"),
        (b"PK\x03\x04zip", "", "answered no Content-Type, not a PDF: a ZIP archive"),
        (b"PK\x03\x04zip", None, "not a PDF: a ZIP archive"),
        (b"", "application/pdf", "answered application/pdf, not a PDF: an empty file"),
        (b"<html>", "text/html\x1b[31m", "answered an odd Content-Type, not a PDF: a login page?"),
    ],
)  # fmt: skip
def test_what_came_instead_of_a_pdf_is_said_with_the_content_type(
    tmp_path: Path, data: bytes, content_type: str | None, reason: str
) -> None:
    path = tmp_path / "f"
    path.write_bytes(data)
    with pytest.raises(sniff.Mismatch) as caught:
        sniff.check(path, sniff.PDF, content_type)
    assert caught.value.reason == reason


def test_captions_must_parse_as_webvtt(tmp_path: Path) -> None:
    path = tmp_path / "c"
    for good in (VTT, "\ufeff" + VTT, "WEBVTT - Français\n\n01:00:00.000 --> 01:00:01.000\nx\n"):
        path.write_text(good, encoding="utf-8")
        assert sniff.check(path, sniff.CAPTIONS, "text/vtt") == ".vtt"
    path.write_text("WEBVTT\n", encoding="utf-8")  # no cue yet: valid, and harmless
    assert sniff.check(path, sniff.CAPTIONS, "text/vtt") == ".vtt"
    bad = {
        PORTAL: "answered text/vtt, not WebVTT captions: a login page?",
        b"1\n00:00:00,000 --> 00:00:01,000\nSRT\n": "answered text/vtt, not WebVTT captions",
        b"WEBVTT\n\n00:00.000 --> soon\nx\n": "not WebVTT captions: line 3: '00:00.000 --> soon'"
        " is no cue timing",
        "WEBVTT\n\n00:00.000 --> 00:01.000\né\n".encode("latin-1"): (
            "not WebVTT captions: not UTF-8 (byte 32)"
        ),
        b"WEBVTTX\n": "answered text/vtt, not WebVTT captions",
    }
    for data, reason in bad.items():
        path.write_bytes(data)
        with pytest.raises(sniff.Mismatch) as caught:
            sniff.check(path, sniff.CAPTIONS, "text/vtt")
        assert caught.value.reason == reason


def test_an_image_is_known_by_its_signature_and_decoded(tmp_path: Path) -> None:
    program = require("ffmpeg")
    jpeg = make_jpeg(tmp_path / "p.jpg")
    assert sniff.check(jpeg, sniff.IMAGE, "image/jpeg") == ".jpg"
    for extension in ("png", "webp"):
        made = tmp_path / f"p.{extension}"
        subprocess.run(
            [program, "-v", "error", "-f", "lavfi", "-i", "color=blue:s=32x32", "-frames:v", "1",
             str(made)],
            check=True,
        )  # fmt: skip
        renamed = made.rename(tmp_path / f"preview-{extension}")  # no extension to go by
        assert sniff.check(renamed, sniff.IMAGE, "image/jpeg") == f".{extension}"
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(jpeg.read_bytes()[: len(jpeg.read_bytes()) // 2])  # a signature, then less
    with pytest.raises(sniff.Mismatch, match=r"^not a readable image: "):
        sniff.check(cut, sniff.IMAGE, "image/jpeg")
    page = tmp_path / "page"
    page.write_bytes(PORTAL)
    with pytest.raises(sniff.Mismatch) as caught:
        sniff.check(page, sniff.IMAGE, "text/html")
    assert caught.value.reason == (
        "answered text/html, not an image (JPEG, PNG or WebP): a login page?"
    )


# -- the downloader keeps only what is what it claims -----------------------------------------


def test_a_captive_portal_answering_the_fiche_is_a_failure_and_quarantined(
    server: FileServer, tmp_path: Path
) -> None:
    server.add("/fiche.pdf", PORTAL, content_type="text/html; charset=utf-8")
    manifest = tmp_path / "m.json"
    write_manifest(with_fiche(server), manifest)
    archive = tmp_path / "archive"
    code, _, stderr = run("download", manifest, "--archive", archive, "-q")
    assert (code, stderr) == (
        1,
        f"Error: Vidéo item-a (item-a, fiche_pdf): {server.url('/fiche.pdf')}:"
        " answered text/html, not a PDF: a login page?\n",
    )
    with Archive(archive) as store:
        assert store.current("item-a", "fiche_pdf") is None
        assert store.held("item-a", "video") is not None  # the other files are kept
    assert not (archive / "media" / "item-a" / "fiche.pdf").exists()
    assert quarantined(archive) == [PORTAL]
    assert not list((archive / "partial").rglob("fiche_pdf.*"))
    # Once the real PDF comes, it is kept.
    server.add("/fiche.pdf", PDF, content_type="application/pdf")
    assert run("download", manifest, "--archive", archive, "-q") == (0, "", "")
    assert (archive / "media" / "item-a" / "fiche.pdf").read_bytes() == PDF


def test_at_a_refresh_a_portal_page_never_replaces_the_good_pdf(
    server: FileServer, tmp_path: Path
) -> None:
    served = server.add("/fiche.pdf", PDF, content_type="application/pdf")
    manifest = with_fiche(server)
    download(manifest, tmp_path, settings=FAST)
    # The nightly refresh, on the school's Wi-Fi: the portal answers every URL.
    served.content, served.etag, served.content_type = PORTAL, '"portal"', "text/html"
    report = download(manifest, tmp_path, settings=FAST, refresh_after=0)
    failed = {o.job.role: o.reason for o in report.outcomes if o.status is Status.FAILED}
    assert failed == {"fiche_pdf": "answered text/html, not a PDF: a login page?"}
    with Archive(tmp_path) as archive:
        current = archive.held("item-a", "fiche_pdf")
        assert current is not None
        assert (current.version, current.sha256) == (1, sha256(PDF))
        assert len(archive.versions("item-a", "fiche_pdf")) == 1
    assert (tmp_path / "media" / "item-a" / "fiche.pdf").read_bytes() == PDF
    assert quarantined(tmp_path) == [PORTAL]


@pytest.mark.parametrize("path", ["/files/setup.exe", "/page.html", "/download.php?f=12"])
def test_a_companion_is_judged_by_its_bytes_never_by_its_url(
    server: FileServer, tmp_path: Path, path: str
) -> None:
    bare = path.split("?")[0]
    server.add(bare, b"MZ\x90\x00" + bytes(500), content_type="application/pdf")
    report = download(with_fiche(server, path), tmp_path, settings=FAST)
    (failed,) = report.failures
    assert failed.reason == "answered application/pdf, not a PDF: a Windows program"
    # A real PDF at such a URL is a PDF all the same, named for its role.
    server.add(bare, PDF, content_type="application/octet-stream")
    assert not download(with_fiche(server, path), tmp_path, settings=FAST).failures
    assert sorted(p.name for p in (tmp_path / "media" / "item-a").iterdir()) == [
        "entry.json",
        "fiche.pdf",
        "video.mp4",
    ]


def test_a_preview_is_kept_with_the_extension_of_its_type(
    server: FileServer, tmp_path: Path
) -> None:
    require("ffmpeg")
    png = tmp_path / "p.png"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "color=red:s=32x18", "-frames:v", "1",
         str(png)],
        check=True,
    )  # fmt: skip
    server.add("/lazy-static/previews/x.jpg", png.read_bytes(), content_type="image/jpeg")
    entry = make_entry("item-a", None)
    preview = Job(entry, "preview", server.url("/lazy-static/previews/x.jpg"), "preview.jpg")
    (outcome,) = fetch(tmp_path / "archive", preview)
    assert outcome.status is Status.FETCHED
    assert outcome.record is not None
    assert outcome.record.view == "media/item-a/preview.png"


@pytest.mark.parametrize(
    ("role", "body", "content_type", "reason"),
    [
        ("preview", PORTAL, "image/jpeg",
         "answered image/jpeg, not an image (JPEG, PNG or WebP): a login page?"),
        ("caption_fr", PORTAL, "text/vtt", "answered text/vtt, not WebVTT captions: a login page?"),
    ],
)  # fmt: skip
def test_a_bad_preview_or_caption_fails_alone_and_is_quarantined(
    server: FileServer, tmp_path: Path, role: str, body: bytes, content_type: str, reason: str
) -> None:
    server.add("/file", body, content_type=content_type)
    entry = make_entry("item-a", None)
    job = Job(entry, role, server.url("/file"), file_name(role), optional=True)
    (outcome,) = fetch(tmp_path / "archive", job)
    assert (outcome.status, outcome.reason) == (Status.FAILED, reason)
    assert quarantined(tmp_path / "archive") == [body]
    assert [p.name for p in (tmp_path / "archive" / "media" / "item-a").iterdir()] == ["entry.json"]


def test_good_captions_are_kept_under_their_language(server: FileServer, tmp_path: Path) -> None:
    server.add("/c.vtt", VTT.encode(), content_type="text/vtt")
    entry = make_entry("item-a", None)
    name = file_name("caption_pt-BR")
    (outcome,) = fetch(tmp_path, Job(entry, "caption_pt-BR", server.url("/c.vtt"), name))
    assert outcome.record is not None
    assert outcome.record.view == "media/item-a/captions-pt-br.vtt"


# -- names from the item and the role ---------------------------------------------------------


def test_files_are_named_for_their_role_never_for_their_url(
    server: FileServer, tmp_path: Path
) -> None:
    """Two companions whose URLs end alike, and a video whose URL ends ``index.html``."""
    video, fiche, script = content_of(50_000, 1), PDF, PDF.replace(b"Catalog", b"Script")
    server.add("/watch/index.html", video)
    server.add("/download.php", fiche, content_type="application/pdf")
    server.add("/other/download.php", script, content_type="application/pdf")
    entry = make_entry(
        "item-a",
        server.url("/watch/index.html"),
        assets=(
            Asset("fiche_pdf", server.url("/download.php?f=fiche")),
            Asset("transcript_pdf", server.url("/other/download.php?f=script")),
        ),
    )
    report = download(Manifest(entries=(entry,)), tmp_path, settings=FAST)
    assert not report.failures
    folder = tmp_path / "media" / "item-a"
    assert sorted(p.name for p in folder.iterdir()) == [
        "entry.json",
        "fiche.pdf",
        "transcription.pdf",
        "video.mp4",
    ]
    assert (folder / "fiche.pdf").read_bytes() == fiche
    assert (folder / "transcription.pdf").read_bytes() == script
    assert (folder / "video.mp4").read_bytes() == video


def test_a_chosen_rendition_is_named_for_its_height_and_its_sound_apart() -> None:
    entry = make_entry("item-a", "https://tube.example.org/download/videos/u-720.mp4")
    chosen = VideoFile(720, 1000, "https://tube.example.org/x/u-720-fragmented.mp4")
    info = VideoInfo(
        uuid="u",
        name="Vidéo",
        duration=10.0,
        files=(chosen,),
        captions=(
            Caption("fr", "Français", "https://tube.example.org/c/fr.vtt"),
            Caption("../x", "Évasion", "https://tube.example.org/c/x.vtt"),
        ),
        preview_url="https://tube.example.org/p/index.html",
    )
    jobs, problems = jobs_for(entry, chosen, info)
    assert problems == []
    assert [(j.role, j.name) for j in jobs] == [
        ("video", "video-720p.mp4"),
        ("preview", "preview.jpg"),
        ("caption_fr", "captions-fr.vtt"),  # ../x is no language: no file, no path
    ]
    assert jobs[0].expected_size == 1000
    assert file_name("audio") == "audio.mp4"
    assert file_name("video") == "video.mp4"


def test_an_item_id_or_role_that_is_not_one_safe_segment_makes_no_path(tmp_path: Path) -> None:
    with Archive(tmp_path / "archive") as archive:
        for item in ("../x", "a/b", "", ".hidden", "A"):
            with pytest.raises(ArchiveError, match="not one safe path segment"):
                archive.item_dir(item)
        with pytest.raises(ArchiveError, match="not one safe path segment"):
            archive.partial_paths("item-a", "caption_../../x")
        with pytest.raises(ArchiveError, match="not one safe path segment"):
            archive.partial_paths("../x", "video")
        assert archive.item_dir("item-a") == tmp_path / "archive" / "media" / "item-a"
    assert not (tmp_path / "x").exists()


def test_a_name_another_role_holds_is_never_written_over(
    server: FileServer, tmp_path: Path
) -> None:
    """An archive of the previous release named files after their URL: its transcript may
    be ``fiche.pdf``. The fiche's PDF, named for its role now, takes another name."""
    script = PDF.replace(b"Catalog", b"Script")
    server.add("/fiche.pdf", script, content_type="application/pdf")
    manifest = with_fiche(server)
    download(manifest, tmp_path, settings=FAST)
    db = sqlite3.connect(tmp_path / "catalog.sqlite")
    db.execute("UPDATE files SET role='transcript_pdf' WHERE role='fiche_pdf'")
    db.commit()
    db.close()
    server.add("/fiche-2026.pdf", PDF, content_type="application/pdf")
    entry = manifest.entries[0]
    assets = (
        Asset("fiche_pdf", server.url("/fiche-2026.pdf")),
        Asset("transcript_pdf", server.url("/fiche.pdf")),
    )
    newer = Manifest(entries=(make_entry("item-a", entry.video.url, assets=assets),))
    report = download(newer, tmp_path, settings=FAST)
    assert not report.failures
    folder = tmp_path / "media" / "item-a"
    assert (folder / "fiche.pdf").read_bytes() == script  # the transcript, where it was
    assert (folder / "fiche-2.pdf").read_bytes() == PDF


# -- archives of the previous release keep their names -----------------------------------------


def test_an_archive_of_the_previous_release_keeps_its_names_and_fetches_nothing(
    tmp_path: Path,
) -> None:
    root = old_archive(tmp_path / "archive")
    entry = make_entry(
        "differencier",
        "https://tube.example.org/download/videos/u-720.mp4",  # as its catalog records it
        video=Video(url="https://tube.example.org/download/videos/u-720.mp4", embed_url=None),
    )
    report = download(Manifest(entries=(entry,)), root, settings=FAST)  # no network: held
    (outcome,) = report.outcomes
    assert outcome.status is Status.HELD
    assert outcome.record is not None
    assert outcome.record.view == "media/differencier/u-720.mp4"
    assert (root / outcome.record.path).read_bytes() == b"second version!"
    assert (root / "media" / "differencier" / "u-720.mp4").read_bytes() == b"second version!"
    assert not (root / "media" / "differencier" / "video.mp4").exists()


def test_a_refresh_of_an_old_archive_keeps_its_name_and_a_change_gets_the_new_one(
    server: FileServer, tmp_path: Path
) -> None:
    root = old_archive(tmp_path / "archive")
    url = server.url("/download/videos/u-720.mp4")
    db = sqlite3.connect(root / "catalog.sqlite")
    db.execute("UPDATE files SET url=?", (url,))
    db.commit()
    db.close()
    served = server.add("/download/videos/u-720.mp4", b"second version!", etag='"abc3"')
    entry = make_entry("differencier", url)
    settings = DownloadSettings(retries=0, check_media=False)  # the fixture's bytes are no MP4
    manifest = Manifest(entries=(entry,))
    report = download(manifest, root, settings=settings, refresh_after=0)
    assert [o.status for o in report.outcomes] == [Status.HELD]  # the same bytes again
    with Archive(root) as archive:
        current = archive.current("differencier", "video", 720)  # its rendition
        assert current is not None
        assert (current.version, current.view) == (2, "media/differencier/u-720.mp4")
    served.content, served.etag = b"third version", '"abc4"'
    report = download(manifest, root, settings=settings, refresh_after=0)
    assert [o.status for o in report.outcomes] == [Status.CHANGED]
    with Archive(root) as archive:
        versions = archive.versions("differencier", "video")
    assert [(r.version, r.view) for r in versions] == [
        (1, None),
        (2, None),
        (3, "media/differencier/video.mp4"),  # a new version takes its role's name
    ]
    stored = [(root / r.path).read_bytes() for r in versions]
    assert stored == [b"first version", b"second version!", b"third version"]
    assert not (root / "media/differencier/u-720.mp4").exists()  # no longer shown


def test_captions_of_a_language_that_is_no_code_are_left_out_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    entry = make_entry("item-a", None)
    info = VideoInfo(
        uuid="u",
        name="Vidéo",
        duration=10.0,
        files=(),
        preview_url=None,
        captions=(Caption("fr/../..", "x", "https://t/x"),),
    )
    with caplog.at_level(logging.WARNING, logger="archiver"):
        jobs, _ = jobs_for(entry, None, info)
    assert jobs == []
    assert caplog.messages == [
        "Vidéo item-a (item-a): captions left out: 'fr/../..' is not a language code"
    ]


def test_the_quarantine_holds_what_failed_for_a_person_to_see(
    server: FileServer, tmp_path: Path
) -> None:
    server.add("/fiche.pdf", PORTAL, content_type="text/html")
    download(with_fiche(server), tmp_path, settings=FAST)
    (kept,) = (tmp_path / "quarantine" / "item-a").iterdir()
    assert kept.name.endswith("-fiche.pdf")
    assert kept.read_bytes() == PORTAL
    shutil.rmtree(tmp_path / "quarantine")  # a person may empty it: nothing depends on it
    server.add("/fiche.pdf", PDF, content_type="application/pdf")
    assert not download(with_fiche(server), tmp_path, settings=FAST).failures
