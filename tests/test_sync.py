"""``archiver sync`` as cron runs it, and the archive's audits, status and pruning."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import bagit
import pytest

from archiver.archive import Archive, FetchedFile
from archiver.catalog import store_path
from archiver.kit.bag import JOURNAL, verify_bag
from archiver.kit.ownership import STAGING

from .conftest import content_of, kit_folder, make_entry, sha256, stored, tagged
from .conftest import run_cli as run
from .media import make_mp4
from .server import FileServer

UUIDS = [f"0000000{i}-1111-4222-8333-444444444444" for i in range(1, 4)]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return make_mp4(tmp_path_factory.mktemp("clip") / "c.mp4", seconds=2).read_bytes()


def fiche(folder: Path, number: int, url: str, title: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"fiche-{number}.md"
    path.write_text(
        f"---\ntitle: {title or f'Vidéo {number}'}\narea: Domaine {number}\n"
        f"videoDLHref: {url}\n---\n\n## Script\n\nTexte {number}.\n\n## Crédits\n\n"
        "- **Licence** : [CC BY 4.0](https://creativecommons.org/licenses/by/4.0/)\n",
        encoding="utf-8",
    )
    return path


def collection(tmp_path: Path, server: FileServer, clip: bytes, count: int = 2) -> Path:
    folder = tmp_path / "fiches"
    for number in range(1, count + 1):
        path = f"/videos/{UUIDS[number - 1]}-480.mp4"
        server.add(path, tagged(clip, number.to_bytes(2, "big")))
        fiche(folder, number, server.url(path))
    return folder


def sync_args(tmp_path: Path, *extra: str | Path) -> list[str | Path]:
    return ["sync", tmp_path / "fiches", "--archive", tmp_path / "archive", "--kit",
            tmp_path / "kit", "--retries", "1", *extra]  # fmt: skip


def in_kit(tmp_path: Path, item: str) -> Path:
    """An item's video in the kit: its one MP4 (in a folder named from its title), as the
    kit's provenance.json places it."""
    (video,) = kit_folder(tmp_path / "kit", item).glob("*.mp4")
    return video


def versions(archive: Path, item: str) -> list[tuple[int, int, str]]:
    db = sqlite3.connect(archive / "catalog.sqlite")
    try:
        return db.execute(
            "SELECT version, current, sha256 FROM files WHERE item_id=? ORDER BY version", (item,)
        ).fetchall()
    finally:
        db.close()


def test_quiet_sync_of_two_videos_prints_nothing_and_builds_a_valid_kit(
    server: FileServer, clip: bytes, tmp_path: Path
) -> None:
    collection(tmp_path, server, clip)
    assert run(*sync_args(tmp_path, "-q")) == (0, "", "")
    bagit.Bag(str(tmp_path / "kit")).validate()
    for uuid in UUIDS[:2]:
        assert in_kit(tmp_path, uuid).exists()
    assert (tmp_path / "archive" / "manifest.json").exists()


def test_second_sync_within_the_refresh_period_makes_no_request(
    server: FileServer, clip: bytes, tmp_path: Path
) -> None:
    collection(tmp_path, server, clip)
    run(*sync_args(tmp_path, "-q"))
    before = len(server.requests())
    code, _, stderr = run(*sync_args(tmp_path))
    assert code == 0
    # No file is asked for. The host has no PeerTube API (its 404 is no PeerTube answer), and
    # only a PeerTube 200 is kept: each run asks the API once per video, nothing more.
    again = server.requests()[before:]
    assert sorted(r.path for r in again) == [f"/api/v1/videos/{uuid}" for uuid in UUIDS[:2]]
    assert stderr.startswith(
        "Sync: 2 videos; 2 files: 0 fetched, 0 changed, 2 held, 0 failed (0 B)"
    )


def test_changed_upstream_becomes_a_new_version_and_the_kit_shows_it(
    server: FileServer, clip: bytes, tmp_path: Path
) -> None:
    collection(tmp_path, server, clip)
    run(*sync_args(tmp_path, "-q"))
    path = f"/videos/{UUIDS[0]}-480.mp4"
    new = tagged(clip, b"re-encoded upstream")
    server.add(path, new)  # a new ETag and Last-Modified, same URL

    log = tmp_path / "sync.log"
    code, _, _ = run(*sync_args(tmp_path, "-q", "--refresh-after", "0", "--log-file", log))
    assert code == 0
    held = versions(tmp_path / "archive", UUIDS[0])
    assert [(v, c) for v, c, _ in held] == [(1, 0), (2, 1)]
    assert held[1][2] == sha256(new)
    assert held[0][2] == sha256(tagged(clip, (1).to_bytes(2, "big")))
    old = stored(tmp_path / "archive", UUIDS[0], version=1)
    assert old.relative_to(tmp_path / "archive").as_posix() == store_path(held[0][2])
    assert sha256(old.read_bytes()) == held[0][2]
    assert in_kit(tmp_path, UUIDS[0]).read_bytes() == new
    bagit.Bag(str(tmp_path / "kit")).validate()
    conditional = [r for r in server.requests() if "If-None-Match" in r.headers]
    assert sorted(r.status for r in conditional) == [200, 304]
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted((e["event"], e["item"]) for e in events) == [
        ("changed", UUIDS[0]),
        ("held", UUIDS[1]),
    ]
    assert events[0]["bytes"] == len(new) or events[1]["bytes"] == len(new)


def test_a_404_item_is_named_while_the_rest_and_the_kit_are_done(
    server: FileServer, clip: bytes, tmp_path: Path
) -> None:
    folder = collection(tmp_path, server, clip)
    fiche(folder, 3, server.url(f"/videos/{UUIDS[2]}-480.mp4"), title="Vidéo disparue")
    log = tmp_path / "sync.log"
    code, stdout, stderr = run(*sync_args(tmp_path, "-q", "--log-file", log))
    assert code == 1
    assert stdout == ""
    assert stderr == (
        f"Error: Vidéo disparue ({UUIDS[2]}, video): "
        f"{server.url(f'/videos/{UUIDS[2]}-480.mp4')}: HTTP 404 Not Found\n"
    )
    bagit.Bag(str(tmp_path / "kit")).validate()
    assert len(list((tmp_path / "kit" / "data" / "videos").iterdir())) == 2
    failed = [json.loads(x) for x in log.read_text().splitlines() if '"failed"' in x]
    assert [(e["item"], e["reason"]) for e in failed] == [(UUIDS[2], "HTTP 404 Not Found")]


def test_offline_sync_makes_no_request_and_rebuilds_the_kit(
    server: FileServer, clip: bytes, tmp_path: Path
) -> None:
    collection(tmp_path, server, clip)
    run(*sync_args(tmp_path, "-q"))
    server.log.clear()
    code, _, stderr = run(*sync_args(tmp_path, "-q", "--offline", "--refresh-after", "0",
                                     "--kit", tmp_path / "kit2"))  # fmt: skip
    assert (code, stderr) == (0, "")
    assert server.requests() == []
    bagit.Bag(str(tmp_path / "kit2")).validate()


def test_mirror_fetches_elsewhere_and_keeps_the_original_url(
    server: FileServer, clip: bytes, tmp_path: Path
) -> None:
    server.add(f"/canope/videos/{UUIDS[0]}-480.mp4", clip)
    original = f"https://tube.example.invalid/videos/{UUIDS[0]}-480.mp4"
    fiche(tmp_path / "fiches", 1, original)
    mirror = f"https://tube.example.invalid={server.url('/canope')}"
    code, _, stderr = run(*sync_args(tmp_path, "-q", "--mirror", mirror))
    assert (code, stderr) == (0, "")
    with Archive(tmp_path / "archive") as archive:
        record = archive.current(UUIDS[0], "video")
    assert record is not None
    assert record.url == original
    assert record.final_url == server.url(f"/canope/videos/{UUIDS[0]}-480.mp4")


def test_removed_fiche_leaves_the_kit_is_retired_then_pruned(
    server: FileServer, clip: bytes, tmp_path: Path
) -> None:
    folder = collection(tmp_path, server, clip)
    run(*sync_args(tmp_path, "-q"))
    (folder / "fiche-2.md").unlink()
    log = tmp_path / "sync.log"
    assert run(*sync_args(tmp_path, "-q", "--log-file", log))[0] == 0
    assert (tmp_path / "kit" / "data" / "videos" / "Video-1").exists()
    assert not (tmp_path / "kit" / "data" / "videos" / "Video-2").exists()  # "Vidéo 2"
    held = stored(tmp_path / "archive", UUIDS[1])
    shown = tmp_path / "archive" / "media" / UUIDS[1]
    assert held.exists() and shown.is_dir()
    assert {"event": "retired", "item": UUIDS[1]}.items() <= json.loads(
        log.read_text().splitlines()[-1]
    ).items()

    code, stdout, _ = run("prune", "--archive", tmp_path / "archive",
                          "--retired-before", "2000-01-01")  # fmt: skip
    assert (code, stdout) == (0, "")
    assert held.exists()
    code, stdout, _ = run("prune", "--archive", tmp_path / "archive",
                          "--retired-before", "2999-01-01", "--dry-run")  # fmt: skip
    assert stdout.startswith(f"Vidéo 2 ({UUIDS[1]}), retired ")
    assert "would delete 1 file(s)" in stdout
    assert held.exists()
    code, stdout, _ = run("prune", "--archive", tmp_path / "archive",
                          "--retired-before", "2999-01-01")  # fmt: skip
    assert "deleted 1 file(s)" in stdout
    assert not held.exists() and not shown.exists()
    assert versions(tmp_path / "archive", UUIDS[1]) == []
    assert versions(tmp_path / "archive", UUIDS[0]) != []


def test_a_fiche_that_comes_back_is_no_longer_retired(
    server: FileServer, clip: bytes, tmp_path: Path
) -> None:
    folder = collection(tmp_path, server, clip)
    run(*sync_args(tmp_path, "-q"))
    text = (folder / "fiche-2.md").read_text()
    (folder / "fiche-2.md").unlink()
    run(*sync_args(tmp_path, "-q"))
    (folder / "fiche-2.md").write_text(text)
    run(*sync_args(tmp_path, "-q"))
    code, stdout, _ = run("status", "--archive", tmp_path / "archive", "--json")
    assert code == 0
    assert json.loads(stdout)["items"] == {"active": 2, "retired": 0, "total": 2}


def test_concurrent_sync_exits_3(server: FileServer, clip: bytes, tmp_path: Path) -> None:
    path = f"/videos/{UUIDS[0]}-480.mp4"
    server.add(path, content_of(2_000_000))
    fiche(tmp_path / "fiches", 1, server.url(path))
    first = subprocess.Popen(
        [sys.executable, "-m", "archiver", "-q",
         *[str(a) for a in sync_args(tmp_path, "--rate-limit", "100k")]],
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        lock = tmp_path / "archive" / "archiver.lock"
        deadline = time.monotonic() + 20
        while not (lock.exists() and lock.read_text().strip() == str(first.pid)):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        code, _, stderr = run(*sync_args(tmp_path))
        assert code == 3
        assert stderr.startswith(f"Error: {tmp_path / 'archive'} is locked by process {first.pid}")
    finally:
        first.kill()
        first.wait()


def temporaries(kit: Path) -> set[tuple[Path, int]]:
    """The files an update is staging in the kit, with their modification times (a file, or
    the staging folder, may vanish meanwhile)."""
    found = set()
    for here, _, names in os.walk(kit / STAGING):
        for name in names:
            path = Path(here, name)
            try:
                found.add((path, path.stat().st_mtime_ns))
            except FileNotFoundError:
                continue
    return found


@pytest.mark.slow
def test_sigkill_while_packaging_leaves_the_kit_valid_or_caught_by_verify(
    tmp_path: Path, clip: bytes
) -> None:
    archive_root, kit = tmp_path / "archive", tmp_path / "kit"
    folder = tmp_path / "fiches"
    big = content_of(96 * 1024 * 1024, 5)
    for number in (1, 2):
        fiche(folder, number, f"https://tube.example.invalid/videos/{UUIDS[number - 1]}-480.mp4")

    def hold(data: bytes) -> None:
        with Archive(archive_root) as archive:
            for number in (1, 2):
                uuid = UUIDS[number - 1]
                archive.record_item(make_entry(uuid, f"https://x.org/{uuid}"))
                part = archive_root / "partial" / f"{uuid}.part"
                video = tagged(data, bytes([number]))
                part.write_bytes(video)
                url = f"https://tube.example.invalid/videos/{uuid}-480.mp4"
                archive.commit(uuid, "video", f"{uuid}-480.mp4", part, FetchedFile(
                    url, url, sha256(video), len(video), None, None, None))  # fmt: skip

    hold(clip)
    command = [sys.executable, "-m", "archiver", "-q", "sync", str(folder), "--archive",
               str(archive_root), "--kit", str(kit), "--offline", "--copy"]  # fmt: skip
    assert subprocess.run(command, check=False).returncode == 0
    hold(big)  # both videos change: the next kit update copies 192 MiB
    outcomes = []
    for extra in (0.0, 0.02, 0.05, 0.1):
        left = temporaries(kit)
        victim = subprocess.Popen(command)
        # Kill it once it is writing into the kit: a new temporary file shows the copy under way.
        deadline = time.monotonic() + 30
        while victim.poll() is None and not temporaries(kit) - left:
            assert time.monotonic() < deadline
            time.sleep(0.002)
        time.sleep(extra)
        with contextlib.suppress(ProcessLookupError):  # it may have finished meanwhile
            os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        outcomes.append(victim.returncode == -signal.SIGKILL)
        problems = verify_bag(kit)[2]
        # Whatever the instant: our verify and the Library of Congress's agree, and only an
        # update killed while renaming (its journal there) leaves a kit that does not pass.
        assert bagit.Bag(str(kit)).is_valid() == (not problems)
        assert not problems or (kit / JOURNAL).exists(), problems
    assert subprocess.run(command, check=False).returncode == 0
    assert verify_bag(kit)[2] == []
    assert any(outcomes), "no kill landed while packaging: the test proved nothing"


def test_verify_archive_audits_every_file_and_names_corruption(
    server: FileServer, clip: bytes, tmp_path: Path
) -> None:
    collection(tmp_path, server, clip)
    run(*sync_args(tmp_path, "-q"))
    archive = tmp_path / "archive"
    code, _, stderr = run("verify", "--archive", archive)
    assert code == 0
    assert stderr.startswith("Verify: 2 files (") and stderr.endswith(": all intact\n")
    status = json.loads(run("status", "--archive", archive, "--json")[1])
    assert status["audit"]["never_audited"] == 0
    assert status["audit"]["due"] == 0

    video = stored(archive, UUIDS[0])
    gone = stored(archive, UUIDS[1])
    data = bytearray(video.read_bytes())
    data[100] ^= 0xFF
    video.write_bytes(bytes(data))
    gone.unlink()
    code, _, stderr = run("verify", "--archive", archive, "-q")
    assert code == 1
    assert stderr.splitlines() == [
        f"Error: {video}: corrupt: sha256 is {sha256(bytes(data))}, "
        f"expected {sha256(tagged(clip, (1).to_bytes(2, 'big')))} (video of {UUIDS[0]}, version 1)",
        f"Error: {gone}: missing (video of {UUIDS[1]}, version 1)",
    ]


def test_verify_sample_audits_the_least_recently_audited_share(
    server: FileServer, clip: bytes, tmp_path: Path
) -> None:
    collection(tmp_path, server, clip, count=3)
    run(*sync_args(tmp_path, "-q"))
    archive = tmp_path / "archive"
    audited = []
    for _ in range(3):
        code, _, stderr = run("verify", "--archive", archive, "--sample", "34")
        assert code == 0
        assert stderr.startswith("Verify: 2 files") or stderr.startswith("Verify: 1 files")
        db = sqlite3.connect(archive / "catalog.sqlite")
        audited.append(db.execute("SELECT COUNT(audited_at) FROM files").fetchone()[0])
        db.close()
        time.sleep(1.1)  # audited_at has one-second resolution
    assert audited[0] == 2  # ceil(3 * 34%) = 2
    assert audited[1] == 3  # the one never audited comes first


def test_status_shows_holdings_last_sync_failures_and_audit(
    server: FileServer, clip: bytes, tmp_path: Path
) -> None:
    folder = collection(tmp_path, server, clip)
    fiche(folder, 3, server.url(f"/videos/{UUIDS[2]}-480.mp4"), title="Vidéo disparue")
    run(*sync_args(tmp_path, "-q"))
    code, stdout, _ = run("status", "--archive", tmp_path / "archive")
    assert code == 0
    lines = stdout.splitlines()
    assert lines[0] == f"Archive: {tmp_path / 'archive'}"
    assert lines[1] == "Items: 3 in the collection, 0 retired"
    assert lines[2].startswith("Files: 2 current (")
    assert lines[3].startswith("Last sync: sync started ")
    assert ", failed (0 fetched" not in lines[3]
    assert "failed (2 fetched, 0 changed, 0 held, 1 failed, 0 retired" in lines[3]
    assert "Failures in the last run: 1" in lines
    assert f"  Vidéo disparue ({UUIDS[2]}, video): HTTP 404 Not Found" in lines
    assert lines[-1].startswith("Audit: 2 file(s) due (never audited: 2;")
    data = json.loads(run("status", "--archive", tmp_path / "archive", "--json")[1])
    assert data["files"]["current"] == 2
    assert data["last_sync"]["outcome"] == "failed"
    assert data["failures"][0]["reason"] == "HTTP 404 Not Found"


def test_status_of_no_archive_is_a_clear_error(tmp_path: Path) -> None:
    code, _, stderr = run("status", "--archive", tmp_path / "none")
    assert code == 2
    assert stderr == f"Error: {tmp_path / 'none'}: no archive here (no catalog.sqlite)\n"
    assert not (tmp_path / "none").exists()


def test_bundled_collection_without_internet_names_the_item_and_leaves_a_valid_kit(
    tmp_path: Path,
) -> None:
    # .invalid never resolves: the same answer a machine without internet gets.
    code, _, stderr = run(
        "sync", "--archive", tmp_path / "archive", "--kit", tmp_path / "kit", "-q",
        "--retries", "0", "--mirror", "https://tube.reseau-canope.fr=https://tube.example.invalid",
    )  # fmt: skip
    assert code == 1
    # Said once, for the host: every video of the collection is on it.
    assert stderr == (
        "Error: tube.example.invalid unreachable (no such host (DNS)): 1 video not checked;"
        " the kit is built from what the archive holds\n"
    )
    bagit.Bag(str(tmp_path / "kit")).validate()


def test_offline_sync_names_a_fiche_with_only_an_embed_url(tmp_path: Path) -> None:
    folder = tmp_path / "fiches"
    folder.mkdir()
    (folder / "embed.md").write_text(
        "---\ntitle: Intégrée seulement\nvideoEmbedSrc: https://tube.example.invalid/w/abc\n"
        "fichePdfHref: https://tube.example.invalid/fiche.pdf\n---\n",
        encoding="utf-8",
    )
    code, _, stderr = run(*sync_args(tmp_path, "-q", "--offline"))
    assert code == 1
    assert stderr == (
        "Error: Intégrée seulement (embed, video): https://tube.example.invalid/w/abc:"
        " no download URL in the manifest (only an embed URL)\n"
        "Error: Intégrée seulement (embed, fiche_pdf): https://tube.example.invalid/fiche.pdf:"
        " not held, and --offline\n"
    )


def test_a_broken_fiche_is_named_and_its_video_kept_while_the_others_sync(
    server: FileServer, clip: bytes, tmp_path: Path
) -> None:
    """A billion laughs, or a typo, in one fiche of a nightly collection: that fiche is named
    (exit 2, fix it), its video stays in the kit and the archive as the last sync read it, and
    the others are synced all the same."""
    folder = collection(tmp_path, server, clip, count=2)
    assert run(*sync_args(tmp_path, "-q"))[0] == 0
    broken = folder / "fiche-1.md"
    broken.write_text('---\na: &a ["x", "x"]\nb: [*a, *a]\ntitle: T\n---\n', encoding="utf-8")
    path = f"/videos/{UUIDS[2]}-480.mp4"
    server.add(path, tagged(clip, b"\x00\x03"))
    fiche(folder, 3, server.url(path))

    code, stdout, stderr = run(*sync_args(tmp_path, "-q"))
    assert (code, stdout) == (2, "")
    assert f"Error: {broken}: front matter:" in stderr
    assert "alias" in stderr
    for uuid in UUIDS:  # the new one synced, the broken one's video kept
        assert in_kit(tmp_path, uuid).exists()
    assert (
        json.loads((tmp_path / "archive" / "manifest.json").read_text())["entries"][0]["source"][
            "path"
        ]
        == "fiche-1.md"
    )  # the last manifest built whole stays the fallback
    code, stdout, _ = run("status", "--archive", tmp_path / "archive", "--json")
    assert json.loads(stdout)["items"]["retired"] == 0
    bagit.Bag(str(tmp_path / "kit")).validate()


def test_a_sync_into_a_folder_that_is_not_a_kit_fetches_nothing(
    server: FileServer, clip: bytes, tmp_path: Path
) -> None:
    collection(tmp_path, server, clip, count=1)
    (tmp_path / "kit").mkdir()
    (tmp_path / "kit" / "notes.txt").write_text("mes notes")
    code, _, stderr = run(*sync_args(tmp_path, "-q"))
    assert code == 2
    assert "not a kit archiver made" in stderr
    assert not (tmp_path / "archive").exists()
    assert server.requests() == []
    assert (tmp_path / "kit" / "notes.txt").read_text() == "mes notes"


# -- a nightly sync works as much as what changed: fiches from the cache, pages made once ----


def _renders(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The kit's templates rendered from now on, by name (the real renderer, counted)."""
    from archiver.kit import site

    rendered: list[str] = []
    real = site._render

    def counted(template: str, **context: object) -> bytes:
        rendered.append(template)
        return real(template, **context)

    monkeypatch.setattr(site, "_render", counted)
    return rendered


def test_a_fiche_edited_in_place_with_its_time_put_back_shows_in_the_kit(
    server: FileServer, clip: bytes, tmp_path: Path
) -> None:
    """Its size and modification time as before: the cache knows it changed by its bytes."""
    folder = collection(tmp_path, server, clip)
    assert run(*sync_args(tmp_path, "-q"))[0] == 0
    path = folder / "fiche-2.md"
    before = path.stat()
    path.write_text(path.read_text().replace("Vidéo 2", "Vidéo 9"))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert run(*sync_args(tmp_path, "-q"))[0] == 0
    page = tmp_path / "kit" / "data" / "videos" / "Video-9" / "index.html"  # its new title's
    assert "<h1>Vidéo 9</h1>" in page.read_text()
    assert not (tmp_path / "kit" / "data" / "videos" / "Video-2").exists()
    last = json.loads((tmp_path / "archive" / "manifest.json").read_text())
    assert [entry["title"] for entry in last["entries"]] == ["Vidéo 1", "Vidéo 9"]
    assert verify_bag(tmp_path / "kit")[2] == []


def test_the_last_manifest_follows_a_fiche_removed_after_it_broke(
    server: FileServer, clip: bytes, tmp_path: Path
) -> None:
    """The cache notes which manifest file its entries made: after a run that could not write
    one (a broken fiche), the next whole run writes it again, whatever its cache says."""
    folder = collection(tmp_path, server, clip)
    last = tmp_path / "archive" / "manifest.json"
    assert run(*sync_args(tmp_path, "-q"))[0] == 0
    (folder / "fiche-2.md").write_text("---\ntitle: [\n---\n")
    assert run(*sync_args(tmp_path, "-q"))[0] == 2
    assert len(json.loads(last.read_text())["entries"]) == 2  # the fallback, kept
    (folder / "fiche-2.md").unlink()
    assert run(*sync_args(tmp_path, "-q"))[0] == 0
    assert [e["source"]["path"] for e in json.loads(last.read_text())["entries"]] == ["fiche-1.md"]
    written = last.stat().st_mtime_ns
    assert run(*sync_args(tmp_path, "-q"))[0] == 0
    assert last.stat().st_mtime_ns == written  # unchanged: neither made nor written again


def test_a_sync_that_changes_nothing_renders_no_page_and_one_title_renders_its_neighbours(
    server: FileServer, clip: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "fiches"
    for number, uuid in enumerate(UUIDS, start=1):
        server.add(f"/videos/{uuid}-480.mp4", tagged(clip, number.to_bytes(2, "big")))
        fiche(folder, number, server.url(f"/videos/{uuid}-480.mp4"))
    assert run(*sync_args(tmp_path, "-q"))[0] == 0
    rendered = _renders(monkeypatch)
    assert run(*sync_args(tmp_path, "-q"))[0] == 0
    assert rendered == []  # not even the tag files: made only when read

    rendered.clear()
    fiche(folder, 3, server.url(f"/videos/{UUIDS[2]}-480.mp4"), title="Le troisième")
    assert run(*sync_args(tmp_path, "-q"))[0] == 0
    # Its page, the page before (its "next" link names it), the catalog; not the first page.
    assert sorted(rendered) == ["LISEZMOI.txt", "index.html", "root.html", "video.html",
                                "video.html"]  # fmt: skip
    second = (tmp_path / "kit" / "data" / "videos" / "Video-2" / "index.html").read_text()
    assert "Le troisième →" in second
    search = (tmp_path / "kit" / "data" / "search-index.js").read_text()
    assert "le troisieme" in search
    bagit.Bag(str(tmp_path / "kit")).validate()


def test_a_kit_whose_page_notes_are_damaged_or_gone_is_made_right(
    server: FileServer, clip: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The archive's note of what each page was made from only spares work: damaged, it is
    ignored (every page made again, none written that did not change); a page removed from
    the kit is made again; a kit moved elsewhere has no note and is whole all the same."""
    collection(tmp_path, server, clip)
    assert run(*sync_args(tmp_path, "-q"))[0] == 0
    (note,) = (tmp_path / "archive" / "cache").glob("kit-*.json")
    note.write_text('{"format": "archiver-pages/1", "files": {"index.html": 5}}')
    page = tmp_path / "kit" / "data" / "videos" / "Video-1" / "index.html"
    page.unlink()
    rendered = _renders(monkeypatch)
    log = tmp_path / "sync.log"
    assert run(*sync_args(tmp_path, "-q", "--log-file", log))[0] == 0
    assert rendered.count("video.html") == 2
    assert page.is_file()
    assert verify_bag(tmp_path / "kit")[2] == []
    rendered.clear()
    assert run(*sync_args(tmp_path, "-q"))[0] == 0
    assert "video.html" not in rendered  # the note made again, whole

    shutil.move(tmp_path / "kit", tmp_path / "moved")
    rendered.clear()
    assert run(*sync_args(tmp_path, "-q", "--kit", tmp_path / "moved"))[0] == 0
    assert rendered.count("video.html") == 2
    bagit.Bag(str(tmp_path / "moved")).validate()


def test_the_log_says_over_how_many_connections_each_file_came(
    server: FileServer, clip: bytes, tmp_path: Path
) -> None:
    collection(tmp_path, server, clip)
    log = tmp_path / "sync.log"
    assert run(*sync_args(tmp_path, "-q", "--log-file", log))[0] == 0
    first = [json.loads(line) for line in log.read_text().splitlines()]
    assert {(r["event"], r["connections"]) for r in first} == {("fetched", 1)}  # small files
    log.unlink()
    assert run(*sync_args(tmp_path, "-q", "--log-file", log))[0] == 0
    again = [json.loads(line) for line in log.read_text().splitlines()]
    assert {(r["event"], r["connections"]) for r in again} == {("held", 0)}  # nothing asked
