"""``--dry-run`` on every sync and download: what a run would fetch, check and keep, by title,
with totals; the archive and the kit unchanged byte for byte, and no byte of media asked for.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from archiver.units import format_bytes

from .conftest import run_cli, snapshot, tagged
from .peertube import FakeInstance
from .server import FileServer

UUIDS = [f"{i:08x}-1111-4222-8333-444444444444" for i in range(1, 6)]
TITLES = ["Évaluer les élèves", "différencier", "Créer un parcours", "Zoo", "Animer"]


@pytest.fixture
def clip(half_second_clip: bytes) -> bytes:
    return half_second_clip


run = run_cli


def add_video(server: FileServer, clip: bytes, folder: Path, number: int) -> bytes:
    """A fiche for video ``number`` on the plain test server (no PeerTube API), with a PDF."""
    content = tagged(clip, number.to_bytes(2, "big"))
    server.add(f"/videos/{UUIDS[number]}-480.mp4", content)
    server.add(f"/fiches/{number}.pdf", b"%PDF-1.4\n%%EOF\n", content_type="application/pdf")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"fiche-{number}.md").write_text(
        f'---\ntitle: "{TITLES[number]}"\narea: Domaine 1\n'
        f"videoDLHref: {server.url(f'/videos/{UUIDS[number]}-480.mp4')}\n"
        f"fichePdfHref: {server.url(f'/fiches/{number}.pdf')}\n---\n\n## Script\n\nTexte.\n\n## Crédits\n\n"
        "- **Licence** : [CC BY 4.0](https://creativecommons.org/licenses/by/4.0/)\n",
        encoding="utf-8",
    )
    return content


def no_media_asked(server: FileServer, since: int) -> list[str]:
    """The requests since ``since`` that were neither HEAD nor the PeerTube API."""
    return [
        f"{r.method} {r.path}"
        for r in server.requests()[since:]
        if r.method != "HEAD" and not r.bare_path.startswith("/api/")
    ]


def test_sync_dry_run_lists_by_title_with_totals_and_changes_nothing(
    server: FileServer, clip: bytes, tmp_path: Path
) -> None:
    fiches, archive, kit = tmp_path / "fiches", tmp_path / "archive", tmp_path / "kit"
    held = [add_video(server, clip, fiches, n) for n in (0, 1)]
    args = ["sync", fiches, "--archive", archive, "--kit", kit]
    assert run(*args, "-q") == (0, "", "")
    new = [add_video(server, clip, fiches, n) for n in (2, 3, 4)]
    before = snapshot(tmp_path)
    asked = len(server.requests())

    code, out, err = run(*args, "--dry-run")

    assert (code, err) == (0, "")
    assert snapshot(tmp_path) == before  # the archive, its lock, the kit: byte for byte
    assert no_media_asked(server, asked) == []
    pdf = format_bytes(len(b"%PDF-1.4\n%%EOF\n"))
    lines = out.splitlines()
    assert lines[:5] == [
        f"Animer ({UUIDS[4]}): fetch video.mp4 ({format_bytes(len(new[2]))}), fiche.pdf ({pdf})",
        f"Créer un parcours ({UUIDS[2]}): fetch video.mp4 ({format_bytes(len(new[0]))}),"
        f" fiche.pdf ({pdf})",
        f"différencier ({UUIDS[1]}): held video.mp4, fiche.pdf",
        f"Évaluer les élèves ({UUIDS[0]}): held video.mp4, fiche.pdf",
        f"Zoo ({UUIDS[3]}): fetch video.mp4 ({format_bytes(len(new[1]))}), fiche.pdf ({pdf})",
    ]
    total = sum(len(c) for c in new) + 3 * len(b"%PDF-1.4\n%%EOF\n")
    assert lines[5:] == [
        f"Dry run: 5 videos; fetch 6 files ({format_bytes(total)}), check 0 for a change,"
        " 4 held, 0 failing; nothing fetched, nothing written",
        f"Kit {kit}: would show 5 of 5 videos",
    ]
    assert len(held) == 2

    # Held files due for a refresh are to be checked, not fetched.
    code, out, _ = run(*args, "--dry-run", "--refresh-after", "0")
    assert f"différencier ({UUIDS[1]}): check for a change video.mp4, fiche.pdf" in out
    assert ", check 4 for a change, 0 held," in out
    assert snapshot(tmp_path) == before
    assert no_media_asked(server, asked) == []


def test_download_dry_run_creates_no_archive_and_says_unknown_sizes(
    server: FileServer, clip: bytes, tmp_path: Path
) -> None:
    add_video(server, clip, tmp_path / "fiches", 0)
    server.add("/nolength.pdf", b"%PDF-1.4\n%%EOF\n", content_type="application/pdf")
    manifest = tmp_path / "m.json"
    assert run("manifest", tmp_path / "fiches", "-o", manifest, "-q")[0] == 0
    asked = len(server.requests())
    code, out, err = run("download", manifest, "--archive", tmp_path / "archive", "--dry-run")
    assert (code, err) == (0, "")
    assert not (tmp_path / "archive").exists()
    assert no_media_asked(server, asked) == []
    assert out.splitlines()[-1].startswith("Dry run: 1 video; fetch 2 files (")

    # A server that does not answer HEAD with a length: "size unknown", never 0.
    server.add(f"/videos/{UUIDS[0]}-480.mp4", b"", statuses=[405] * 5)
    code, out, _ = run("download", manifest, "--archive", tmp_path / "archive", "--dry-run")
    assert code == 0
    assert "fetch video.mp4 (size unknown), fiche.pdf (" in out
    assert ", 1 of unknown size), " in out


def test_dry_run_with_a_peertube_instance_asks_only_its_api(
    server: FileServer, tmp_path: Path
) -> None:
    tube = FakeInstance(server, api_window=2.0)
    videos = [tube.publish(heights=(480, 360)) for _ in range(2)]
    folder = tmp_path / "fiches"
    folder.mkdir()
    for video in videos:
        (folder / f"{video.uuid}.md").write_text(video.fiche(height=480), encoding="utf-8")
    code, out, err = run("sync", folder, "--archive", tmp_path / "archive", "--kit",
                         tmp_path / "kit", "--dry-run")  # fmt: skip
    assert (code, err) == (0, "")
    assert no_media_asked(server, 0) == []
    assert not (tmp_path / "archive").exists()
    assert not (tmp_path / "kit").exists()
    for video in videos:
        assert f"({video.uuid}): fetch video-480p.mp4 ({format_bytes(len(video.data[480]))})" in out


def test_offline_dry_run_asks_nothing_at_all(
    server: FileServer, clip: bytes, tmp_path: Path
) -> None:
    fiches, archive, kit = tmp_path / "fiches", tmp_path / "archive", tmp_path / "kit"
    add_video(server, clip, fiches, 1)
    args = ["sync", fiches, "--archive", archive, "--kit", kit]
    assert run(*args, "-q")[0] == 0
    add_video(server, clip, fiches, 4)
    before, asked = snapshot(tmp_path), len(server.requests())
    code, out, err = run(*args, "--offline", "--dry-run")
    assert (code, err) == (0, "")
    assert len(server.requests()) == asked
    assert snapshot(tmp_path) == before
    assert out.splitlines()[:2] == [
        f"Animer ({UUIDS[4]}): fails video.mp4: not held, and --offline;"
        " fails fiche.pdf: not held, and --offline",
        f"différencier ({UUIDS[1]}): held video.mp4, fiche.pdf",
    ]


def test_a_dry_run_refuses_what_the_run_would_refuse_and_names_the_zim(
    server: FileServer, clip: bytes, tmp_path: Path
) -> None:
    # A dry run promising "would show 1 of 1 videos" for a run that exits 2 misleads.
    fiches, archive, foreign = tmp_path / "fiches", tmp_path / "archive", tmp_path / "cours"
    add_video(server, clip, fiches, 1)
    foreign.mkdir()
    (foreign / "cours.docx").write_text("le cours d'un collègue")
    asked = len(server.requests())
    code, out, err = run("sync", fiches, "--archive", archive, "--kit", foreign, "--dry-run")
    assert (code, out) == (2, "")
    assert err.startswith(f"Error: {foreign}: ")
    assert len(server.requests()) == asked  # refused before any question
    assert run("sync", fiches, "--archive", archive, "--kit", foreign, "-q")[0] == 2
    kit, zim = tmp_path / "kit", tmp_path / "videos.zim"
    code, out, _ = run(
        "sync", fiches, "--archive", archive, "--kit", kit, "--zim", zim, "--dry-run"
    )
    assert code == 0
    assert out.splitlines()[-1] == f"ZIM {zim}: would be written from the same selection"
    assert not kit.exists() and not zim.exists()
    code, _, err = run("sync", fiches, "--archive", archive, "--kit", kit, "--zim",
                       kit / "v.zim", "--dry-run")  # fmt: skip
    assert code == 2 and "is inside the kit folder" in err


def test_a_dry_run_says_which_videos_a_sync_would_retire(
    server: FileServer, clip: bytes, tmp_path: Path
) -> None:
    fiches, archive, kit = tmp_path / "fiches", tmp_path / "archive", tmp_path / "kit"
    for number in (1, 2):
        add_video(server, clip, fiches, number)
    args = ["sync", fiches, "--archive", archive, "--kit", kit]
    assert run(*args, "-q")[0] == 0
    (fiches / "fiche-1.md").unlink()
    before = snapshot(tmp_path)
    code, out, _ = run(*args, "--dry-run")
    assert code == 0
    assert snapshot(tmp_path) == before
    assert (
        f"{TITLES[1]} ({UUIDS[1]}): no longer in the collection, would be retired"
        " (it leaves the kit; its files stay in the archive until prune)"
    ) in out.splitlines()
    assert out.splitlines()[-1] == f"Kit {kit}: would show 1 of 1 video, 1 retired"
    assert run(*args, "-q")[0] == 0  # and the run does retire it
    code, out, _ = run(*args, "--dry-run")
    assert "would be retired" not in out
