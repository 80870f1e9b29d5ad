"""A run's deadline (``max_time``, the CLI's ``--max-time``), as cron needs it: a server that
trickles cannot hold the archive's lock past it, the partial files are kept and the next run
resumes them, and sync leaves the previous kit as it was."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import archiver.sync
from archiver.archive import Archive
from archiver.cli import cli
from archiver.fetch import MAX_TIME_REACHED, DownloadSettings, Status, download
from archiver.manifest import Manifest, write_manifest
from archiver.sync import KIT_NOT_UPDATED, NOT_IN_KIT, SyncSettings, sync

from .conftest import content_of, fiche_text, make_entry
from .server import FileServer, Reply

UUID = "9c9de5e8-0a1e-484a-b099-e80766180a6d"

SIZE = 300_000
TRICKLE = (2_000, 0.05)  # 40 kB/s: 300 kB take 7.5 s
FAST = DownloadSettings(retries=2, backoff_base=0.01, backoff_max=0.05, timeout=5.0)


def single(server: FileServer, path: str = "/v/a.mp4") -> Manifest:
    return Manifest(entries=(make_entry("item-a", server.url(path)),))


def partial(root: Path, item: str = "item-a") -> Path:
    with Archive(root) as archive:
        return archive.partial_paths(item, "video")[0]


def fiche(folder: Path, number: int, url: str, embed: str | None = None) -> None:
    folder.mkdir(exist_ok=True)
    text = fiche_text(title=f"Vidéo {number}", embed=embed, download=url)
    (folder / f"fiche-{number}.md").write_text(text, encoding="utf-8")


def snapshot(folder: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file under ``folder``: its size, mtime and bytes."""
    return {
        str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns,
                                        path.read_bytes())
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }  # fmt: skip


def test_a_trickling_download_stops_at_the_deadline_and_resumes_next_run(
    server: FileServer, tmp_path: Path
) -> None:
    data = content_of(SIZE)
    served = server.add("/v/a.mp4", data, trickle=TRICKLE)
    start = time.monotonic()
    report = download(single(server), tmp_path, settings=dataclasses.replace(FAST, max_time=2.0))
    took = time.monotonic() - start
    assert 1.9 < took < 4, took
    (outcome,) = report.outcomes
    assert (outcome.status, outcome.reason) == (Status.FAILED, MAX_TIME_REACHED)
    kept = partial(tmp_path).stat().st_size
    assert 20_000 < kept < SIZE
    # What came is counted (the summary's bytes, the run's record), not 0.
    assert outcome.bytes_fetched == kept == report.bytes_fetched
    with Archive(tmp_path) as archive, archive.locked():
        pass  # the lock was released

    served.trickle = None
    report = download(single(server), tmp_path, settings=FAST)
    (outcome,) = report.outcomes
    assert outcome.status is Status.FETCHED and outcome.record is not None
    assert f"bytes={kept}-" in [r.headers.get("Range") for r in server.requests("/v/a.mp4")]
    assert (tmp_path / outcome.record.path).read_bytes() == data


def test_no_file_starts_after_the_deadline(server: FileServer, tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        server.add(f"/v/{name}.mp4", content_of(SIZE, seed=ord(name)), trickle=TRICKLE)
    manifest = Manifest(
        entries=tuple(make_entry(f"item-{n}", server.url(f"/v/{n}.mp4")) for n in "abc")
    )
    report = download(manifest, tmp_path, settings=DownloadSettings(jobs=1, max_time=1.0))
    assert [(o.status, o.reason) for o in report.outcomes] == [
        (Status.FAILED, MAX_TIME_REACHED)
    ] * 3
    time.sleep(0.5)  # the server logs a request once it sees that its client went away
    assert len({r.bare_path for r in server.requests()}) == 1  # one file started, no other


def test_a_deadline_already_past_asks_nothing(server: FileServer, tmp_path: Path) -> None:
    server.add("/v/a.mp4", content_of(SIZE))
    report = download(single(server), tmp_path, settings=DownloadSettings(max_time=0.0))
    assert [(o.status, o.reason) for o in report.outcomes] == [(Status.FAILED, MAX_TIME_REACHED)]
    assert server.requests() == []


def test_a_waiting_retry_does_not_outlive_the_deadline(server: FileServer, tmp_path: Path) -> None:
    server.add("/v/a.mp4", content_of(SIZE), statuses=[503] * 5, retry_after="30")
    start = time.monotonic()
    report = download(single(server), tmp_path, settings=DownloadSettings(max_time=1.5))
    assert time.monotonic() - start < 3
    assert report.outcomes[0].reason == MAX_TIME_REACHED


def test_a_slow_api_is_asked_no_longer_than_the_deadline(
    server: FileServer, tmp_path: Path
) -> None:
    server.add(f"/download/videos/{UUID}-360.mp4", content_of(SIZE))

    def slow(call: object) -> Reply:
        time.sleep(4)
        return Reply(503, b"busy")

    server.route(f"/api/v1/videos/{UUID}", slow)
    folder = tmp_path / "fiches"
    url = server.url(f"/download/videos/{UUID}-360.mp4")
    fiche(folder, 1, url, embed=server.url(f"/videos/embed/{UUID}"))
    start = time.monotonic()
    report = sync(
        [folder],
        tmp_path / "archive",
        tmp_path / "kit",
        settings=SyncSettings(download=FAST, max_time=1.0),
    )
    assert time.monotonic() - start < 3  # the server's handler sleeps on: not our time
    assert [(o.job.role, o.reason) for o in report.failures()] == [("video", MAX_TIME_REACHED)]
    assert not server.requests(f"/download/videos/{UUID}-360.mp4")


def test_sync_past_its_deadline_leaves_the_previous_kit_as_it_was(
    server: FileServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "fiches"
    server.add("/v/one.mp4", content_of(SIZE, seed=1))
    fiche(folder, 1, server.url("/v/one.mp4"))
    archive, kit = tmp_path / "archive", tmp_path / "kit"
    first = sync([folder], archive, kit, settings=SyncSettings(download=FAST))
    assert first.failures() == []
    before = snapshot(kit)

    data = content_of(SIZE, seed=2)
    served = server.add("/v/two.mp4", data, trickle=TRICKLE)
    fiche(folder, 2, server.url("/v/two.mp4"))
    start = time.monotonic()
    report = sync([folder], archive, kit, settings=SyncSettings(download=FAST, max_time=2.0))
    assert time.monotonic() - start < 4.5
    assert report.kit_skipped == KIT_NOT_UPDATED
    assert f"{kit}: {KIT_NOT_UPDATED}" in [
        r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
    ]
    (failed,) = report.failures()
    assert (failed.job.entry.title, failed.reason) == ("Vidéo 2", MAX_TIME_REACHED)
    assert snapshot(kit) == before
    kept = partial(archive, failed.job.entry.id).stat().st_size
    assert kept > 0

    served.trickle = None
    last = sync([folder], archive, kit, settings=SyncSettings(download=FAST))
    assert last.failures() == [] and last.kit_skipped is None
    # Looked for, not taken last: the cut request's handler trickles on and logs it later.
    ranges = [r.headers.get("Range") for r in server.requests("/v/two.mp4")]
    assert f"bytes={kept}-" in ranges
    assert last.kit.items == 2


def test_a_video_fetched_but_not_packaged_is_a_failure(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Fetched in time, but the deadline passes before packaging: exit 1, not a silent 0.
    folder = tmp_path / "fiches"
    server.add("/v/one.mp4", content_of(SIZE, seed=1))
    fiche(folder, 1, server.url("/v/one.mp4"))
    write_manifest = archiver.sync.write_manifest

    def slow_write(*args: object) -> None:
        write_manifest(*args)  # type: ignore[arg-type]
        time.sleep(1.2)

    monkeypatch.setattr(archiver.sync, "write_manifest", slow_write)
    settings = SyncSettings(download=FAST, max_time=1.0)
    report = sync([folder], tmp_path / "archive", tmp_path / "kit", settings=settings)
    assert [o.status for o in report.download.outcomes] == [Status.FETCHED]
    assert report.kit_skipped == KIT_NOT_UPDATED
    assert not (tmp_path / "kit").exists()
    assert [o.reason for o in report.failures()] == [NOT_IN_KIT]


def test_the_download_settings_deadline_serves_sync_too() -> None:
    settings = SyncSettings(download=DownloadSettings(max_time=5.0))
    assert settings.run_max_time == 5.0
    assert SyncSettings(download=DownloadSettings(max_time=5.0), max_time=2.0).run_max_time == 2
    assert SyncSettings().run_max_time is None


def test_download_with_max_time_is_one_line_per_file_and_exit_1(
    server: FileServer, tmp_path: Path
) -> None:
    server.add("/v/a.mp4", content_of(SIZE), trickle=TRICKLE)
    manifest = tmp_path / "m.json"
    write_manifest(single(server), manifest)
    start = time.monotonic()
    result = CliRunner().invoke(
        cli, ["download", str(manifest), "--archive", str(tmp_path / "a"), "--max-time", "2",
              "-q"],
    )  # fmt: skip
    assert time.monotonic() - start < 4
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"Error: Vidéo item-a (item-a, video): {server.url('/v/a.mp4')}: {MAX_TIME_REACHED}\n"
    )
