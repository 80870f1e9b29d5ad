"""The downloader against a real loopback server with faults on demand."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import importlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Hashable
from pathlib import Path

import pytest

from archiver.archive import Archive
from archiver.catalog import store_path
from archiver.entry import Asset, Video
from archiver.errors import ArchiveError
from archiver.fetch import DownloadSettings, Status, download, download_all
from archiver.fetch.plan import Job
from archiver.fetch.transfer import Sink
from archiver.manifest import Manifest
from archiver.progress import NullProgress

from .conftest import content_of, make_entry, sha256
from .server import Call, FileServer, Reply

plan_module = importlib.import_module("archiver.fetch.plan")  # fetch.plan is also a function

FAST = DownloadSettings(retries=4, backoff_base=0.01, backoff_max=0.05, timeout=2.0)
SIZE = 600_000


def pdf_of(size: int) -> bytes:
    """``size`` bytes that a PDF reader takes for a PDF: the header, then anything."""
    head = b"%PDF-1.7\n"
    return head + bytes(size - len(head))


def single(server: FileServer, path: str = "/v/a.mp4", **fields: object) -> Manifest:
    return Manifest(entries=(make_entry("item-a", server.url(path), **fields),))


def media(root: Path, item: str = "item-a", name: str = "video.mp4") -> Path:
    return root / "media" / item / name


def catalog_rows(root: Path) -> list[dict[str, object]]:
    db = sqlite3.connect(root / "catalog.sqlite")
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM files ORDER BY item_id, role, version")]
    finally:
        db.close()


def test_downloads_every_file_with_checksum_and_provenance(
    server: FileServer, tmp_path: Path
) -> None:
    video, pdf = content_of(SIZE, 1), pdf_of(8_000)
    served = server.add("/v/a.mp4", video)
    server.add("/docs/Fiche%20%C3%A9l%C3%A8ve.pdf", pdf, content_type="application/pdf")
    manifest = Manifest(
        entries=(
            make_entry(
                "item-a",
                server.url("/v/a.mp4"),
                assets=(Asset("fiche_pdf", server.url("/docs/Fiche%20%C3%A9l%C3%A8ve.pdf")),),
            ),
        )
    )
    report = download(manifest, tmp_path, settings=FAST)

    assert [o.status for o in report.outcomes] == [Status.FETCHED, Status.FETCHED]
    assert media(tmp_path).read_bytes() == video
    assert media(tmp_path, name="fiche.pdf").read_bytes() == pdf  # named for its role
    entry_json = json.loads((tmp_path / "media" / "item-a" / "entry.json").read_text())
    assert entry_json["title"] == "Vidéo item-a"
    rows = catalog_rows(tmp_path)
    assert [(r["role"], r["version"], r["current"]) for r in rows] == [
        ("fiche_pdf", 1, 1),
        ("video", 1, 1),
    ]
    row = rows[1]
    assert row["sha256"] == sha256(video)
    assert row["size"] == SIZE
    assert row["url"] == server.url("/v/a.mp4")
    assert row["etag"] == served.etag
    assert row["last_modified"] == served.last_modified
    assert row["path"] == store_path(sha256(video))  # the bytes, once, by their sha256
    assert row["view"] == "media/item-a/video.mp4"  # where a person browsing finds them
    assert os.path.samefile(tmp_path / row["path"], media(tmp_path))  # one file, two names
    assert str(row["fetched_at"]).endswith("Z")
    assert not list((tmp_path / "partial").rglob("*.part"))
    assert server.requests()[0].headers["User-Agent"].startswith("archiver/")


def test_second_run_fetches_nothing(server: FileServer, tmp_path: Path) -> None:
    server.add("/v/a.mp4", content_of(SIZE))
    download(single(server), tmp_path, settings=FAST)
    before = len(server.requests())
    report = download(single(server), tmp_path, settings=FAST)
    assert [o.status for o in report.outcomes] == [Status.HELD]
    assert len(server.requests()) == before
    assert report.bytes_fetched == 0


def test_a_deleted_view_is_shown_again_without_a_request(
    server: FileServer, tmp_path: Path
) -> None:
    """media/ is a view of the store: deleting a file there loses no bytes."""
    server.add("/v/a.mp4", content_of(SIZE))
    download(single(server), tmp_path, settings=FAST)
    media(tmp_path).unlink()
    asked = len(server.requests())
    report = download(single(server), tmp_path, settings=FAST)
    assert [o.status for o in report.outcomes] == [Status.HELD]
    assert len(server.requests()) == asked
    assert media(tmp_path).read_bytes() == content_of(SIZE)


def test_a_deleted_stored_file_is_fetched_again(server: FileServer, tmp_path: Path) -> None:
    server.add("/v/a.mp4", content_of(SIZE))
    download(single(server), tmp_path, settings=FAST)
    (tmp_path / store_path(sha256(content_of(SIZE)))).unlink()
    report = download(single(server), tmp_path, settings=FAST)
    assert [o.status for o in report.outcomes] == [Status.FETCHED]
    assert (tmp_path / store_path(sha256(content_of(SIZE)))).read_bytes() == content_of(SIZE)
    assert media(tmp_path).read_bytes() == content_of(SIZE)


def test_dropped_connection_resumes_with_range_and_if_range(
    server: FileServer, tmp_path: Path
) -> None:
    data = content_of(SIZE)
    served = server.add("/v/a.mp4", data, drop_after=250_000, drop_times=2)
    report = download(single(server), tmp_path, settings=FAST)

    assert report.outcomes[0].status is Status.FETCHED
    assert media(tmp_path).read_bytes() == data
    requests = server.requests("/v/a.mp4")
    assert [r.status for r in requests] == [200, 206, 206]
    assert requests[1].headers["Range"] == "bytes=250000-"
    assert requests[1].headers["If-Range"] == served.etag
    assert requests[2].headers["Range"] == "bytes=500000-"
    assert report.bytes_fetched == SIZE  # nothing fetched twice


def test_resume_restarts_when_upstream_changes(server: FileServer, tmp_path: Path) -> None:
    old, new = content_of(SIZE, 1), content_of(SIZE, 2)
    server.add("/v/a.mp4", old, drop_after=300_000, drop_times=1, change_to=new, change_after=1)
    report = download(single(server), tmp_path, settings=FAST)

    assert report.outcomes[0].status is Status.FETCHED
    held = media(tmp_path).read_bytes()
    assert held == new
    assert held != old[:300_000] + new[300_000:]
    assert [r.status for r in server.requests("/v/a.mp4")] == [200, 200]
    assert catalog_rows(tmp_path)[0]["sha256"] == sha256(new)


@pytest.mark.parametrize(
    "dropped", [False, True], ids=["its-etag-changed", "without-the-etag-asked-to-match"]
)
def test_server_ignoring_if_range_is_caught_by_the_etag(
    server: FileServer, tmp_path: Path, dropped: bool
) -> None:
    """A server that ignores If-Range, whose file changed since the partial began: its 206
    carries the new ETag, or none at all (a cache that drops validators; RFC 9110 has a 206
    repeat the ETag its 200 carries): either way, not taken for the partial's version."""
    old, new = content_of(SIZE, 1), content_of(SIZE, 2)
    server.add(
        "/v/a.mp4",
        old,
        drop_after=300_000,
        drop_times=1,
        change_to=new,
        change_after=1,
        ignore_if_range=True,
        range_without_validators=dropped,
    )
    report = download(single(server), tmp_path, settings=FAST)
    assert report.outcomes[0].status is Status.FETCHED
    assert media(tmp_path).read_bytes() == new
    assert [r.status for r in server.requests("/v/a.mp4")] == [200, 206, 200]


def test_content_range_that_does_not_match_restarts(server: FileServer, tmp_path: Path) -> None:
    data = content_of(SIZE)
    server.add("/v/a.mp4", data, drop_after=300_000, drop_times=1, bad_content_range_times=1)
    report = download(single(server), tmp_path, settings=FAST)
    assert report.outcomes[0].status is Status.FETCHED
    assert media(tmp_path).read_bytes() == data
    assert "Range" not in server.requests("/v/a.mp4")[-1].headers


@pytest.mark.parametrize(
    "lie",
    [
        # Content-Range ends half-way; the body and Content-Length run on with filler.
        {"long_range_times": 1},
        # The same, with no Content-Length: the body ends when the server closes.
        {"long_range_times": 1, "close_delimited_ranges": True},
        # A content coding that was not asked for: not the file's bytes as they are.
        {"range_headers": {"Content-Encoding": "gzip"}},
    ],
    ids=["content-length-past-the-range", "close-delimited-past-the-range", "gzip"],
)
def test_a_resumed_range_that_is_not_the_files_bytes_as_asked_starts_again(
    server: FileServer, tmp_path: Path, lie: dict[str, object]
) -> None:
    data = content_of(SIZE)
    server.add("/v/a.mp4", data, drop_after=300_000, drop_times=1, **lie)
    report = download(single(server), tmp_path, settings=FAST)

    assert report.outcomes[0].status is Status.FETCHED
    assert media(tmp_path).read_bytes() == data
    assert catalog_rows(tmp_path)[0]["sha256"] == sha256(data)
    requests = server.requests("/v/a.mp4")
    assert requests[1].headers["Range"] == "bytes=300000-"
    assert "Range" not in requests[-1].headers  # from zero, whole


def test_range_ignored_restarts_from_zero(server: FileServer, tmp_path: Path) -> None:
    data = content_of(SIZE)
    server.add("/v/a.mp4", data, drop_after=200_000, drop_times=1, ignore_range=True)
    report = download(single(server), tmp_path, settings=FAST)
    assert report.outcomes[0].status is Status.FETCHED
    assert media(tmp_path).read_bytes() == data
    requests = server.requests("/v/a.mp4")
    assert requests[1].headers["Range"] == "bytes=200000-"
    assert requests[1].status == 200


def test_weak_etag_resumes_with_last_modified(server: FileServer, tmp_path: Path) -> None:
    data = content_of(SIZE)
    served = server.add("/v/a.mp4", data, drop_after=100_000, drop_times=1, weak_etag=True)
    download(single(server), tmp_path, settings=FAST)
    assert media(tmp_path).read_bytes() == data
    assert server.requests("/v/a.mp4")[1].headers["If-Range"] == served.last_modified


def test_no_validator_means_no_resume(server: FileServer, tmp_path: Path) -> None:
    data = content_of(SIZE)
    server.add("/v/a.mp4", data, drop_after=100_000, drop_times=1, etag="", last_modified="")
    download(single(server), tmp_path, settings=FAST)
    assert media(tmp_path).read_bytes() == data
    assert "Range" not in server.requests("/v/a.mp4")[1].headers


def test_partial_already_whole_is_finished_on_416(server: FileServer, tmp_path: Path) -> None:
    data = content_of(SIZE)
    served = server.add("/v/a.mp4", data)
    archive = Archive(tmp_path)
    part, side = archive.partial_paths("item-a", "video")
    archive.close()
    part.parent.mkdir(parents=True)
    part.write_bytes(data)
    side.write_text(
        json.dumps(
            {
                "url": server.url("/v/a.mp4"),
                "etag": served.etag,
                "last_modified": None,
                "length": SIZE,
            }
        )
    )
    report = download(single(server), tmp_path, settings=FAST)
    assert report.outcomes[0].status is Status.FETCHED
    assert [r.status for r in server.requests("/v/a.mp4")] == [416]
    assert catalog_rows(tmp_path)[0]["sha256"] == sha256(data)


def test_503_retry_after_is_honoured(server: FileServer, tmp_path: Path) -> None:
    server.add("/v/a.mp4", content_of(SIZE), statuses=[503, 503], retry_after="1")
    start = time.monotonic()
    report = download(single(server), tmp_path, settings=FAST)
    elapsed = time.monotonic() - start
    assert report.outcomes[0].status is Status.FETCHED
    assert [r.status for r in server.requests("/v/a.mp4")] == [503, 503, 200]
    assert elapsed >= 1.9  # two Retry-After: 1, not FAST's 10 ms backoff


def test_stall_is_a_failure_that_is_retried(server: FileServer, tmp_path: Path) -> None:
    data = content_of(SIZE)
    server.add("/v/a.mp4", data, stall_after=50_000, stall_seconds=3.0, stall_times=1)
    settings = DownloadSettings(retries=2, backoff_base=0.01, backoff_max=0.01, timeout=0.5)
    report = download(single(server), tmp_path, settings=settings)
    assert report.outcomes[0].status is Status.FETCHED
    assert media(tmp_path).read_bytes() == data
    assert server.requests("/v/a.mp4")[-1].headers["Range"] == "bytes=50000-"


def test_slow_trickle_is_not_a_stall(server: FileServer, tmp_path: Path) -> None:
    data = content_of(12_000)
    server.add("/v/a.mp4", data, trickle=(1_000, 0.1))
    settings = DownloadSettings(retries=0, timeout=0.5)
    report = download(single(server), tmp_path, settings=settings)
    assert report.outcomes[0].status is Status.FETCHED
    assert media(tmp_path).read_bytes() == data


def test_lying_content_length_fails_and_holds_nothing(server: FileServer, tmp_path: Path) -> None:
    server.add("/v/a.mp4", content_of(SIZE), extra_length=1000)
    report = download(single(server), tmp_path, settings=FAST)
    (outcome,) = report.outcomes
    assert outcome.status is Status.FAILED
    assert outcome.reason is not None
    assert "gave up after 5 attempts" in outcome.reason
    assert not media(tmp_path).exists()
    assert catalog_rows(tmp_path) == []


@pytest.mark.parametrize(
    ("status", "reason"), [(404, "HTTP 404 Not Found"), (410, "HTTP 410 Gone")]
)
def test_missing_file_is_not_retried(
    server: FileServer, tmp_path: Path, status: int, reason: str
) -> None:
    if status != 404:
        server.add("/v/a.mp4", b"", statuses=[status])
    report = download(single(server), tmp_path, settings=FAST)
    assert report.outcomes[0].status is Status.FAILED
    assert report.outcomes[0].reason == reason
    assert len(server.requests("/v/a.mp4")) == 1


def test_redirect_chain_is_followed(server: FileServer, tmp_path: Path) -> None:
    data = content_of(SIZE)
    server.add("/storage/a.mp4", data)
    server.redirect("/v/a.mp4", "/r/1")
    server.redirect("/r/1", server.url("/storage/a.mp4"))
    download(single(server), tmp_path, settings=FAST)
    assert media(tmp_path).read_bytes() == data
    assert catalog_rows(tmp_path)[0]["final_url"] == server.url("/storage/a.mp4")
    assert catalog_rows(tmp_path)[0]["url"] == server.url("/v/a.mp4")


def test_redirect_loop_fails_without_retrying(server: FileServer, tmp_path: Path) -> None:
    server.redirect("/v/a.mp4", "/loop/b")
    server.redirect("/loop/b", "/v/a.mp4")
    report = download(single(server), tmp_path, settings=FAST)
    assert report.outcomes[0].status is Status.FAILED
    assert report.outcomes[0].reason == "too many redirects (more than 10)"
    assert len(server.requests()) == 11


def test_pinned_sha256_mismatch_quarantines_and_never_replaces(
    server: FileServer, tmp_path: Path
) -> None:
    good = content_of(SIZE, 1)
    server.add("/v/a.mp4", good)
    download(single(server), tmp_path, settings=FAST)
    bad_pin = sha256(b"something else")
    report = download(
        single(server, video=Video(url=server.url("/v/a.mp4"), embed_url=None, sha256=bad_pin)),
        tmp_path,
        settings=FAST,
    )
    (outcome,) = report.outcomes
    assert outcome.status is Status.FAILED
    assert outcome.reason == f"sha256 mismatch: expected {bad_pin}, got {sha256(good)}"
    assert media(tmp_path).read_bytes() == good  # the good file is untouched
    quarantined = list((tmp_path / "quarantine" / "item-a").iterdir())
    assert len(quarantined) == 1
    assert quarantined[0].read_bytes() == good
    assert [r["version"] for r in catalog_rows(tmp_path)] == [1]


def test_pinned_size_mismatch_fails_before_the_body(server: FileServer, tmp_path: Path) -> None:
    server.add("/v/a.mp4", content_of(SIZE))
    manifest = single(server, video=Video(url=server.url("/v/a.mp4"), embed_url=None, size=10))
    report = download(manifest, tmp_path, settings=FAST)
    assert report.outcomes[0].reason == f"size mismatch: expected 10, got {SIZE}"
    assert report.bytes_fetched == 0
    assert not media(tmp_path).exists()


def test_new_url_is_a_new_version_and_the_old_one_stays(server: FileServer, tmp_path: Path) -> None:
    old, new = content_of(SIZE, 1), content_of(SIZE, 2)
    server.add("/v/a-720.mp4", old)
    server.add("/v/a-1080.mp4", new)
    download(single(server, "/v/a-720.mp4"), tmp_path, settings=FAST)
    download(single(server, "/v/a-1080.mp4"), tmp_path, settings=FAST)
    rows = catalog_rows(tmp_path)
    assert [(r["version"], r["current"], r["path"], r["view"]) for r in rows] == [
        (1, 0, store_path(sha256(old)), None),
        (2, 1, store_path(sha256(new)), "media/item-a/video.mp4"),
    ]
    assert (tmp_path / store_path(sha256(old))).read_bytes() == old
    assert (tmp_path / "media/item-a/video.mp4").read_bytes() == new
    assert not (tmp_path / "media/item-a/versions").exists()


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_a_full_disk_fails_the_file_and_drops_its_partial(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    server.add("/v/a.mp4", content_of(3 * 1024 * 1024))
    real_write = Sink.write

    def write(self: Sink, data: bytes | bytearray) -> None:
        if self.size >= 1024 * 1024:
            raise OSError(code, os.strerror(code))
        real_write(self, data)

    monkeypatch.setattr(Sink, "write", write)
    report = download(single(server), tmp_path, settings=FAST)
    part = tmp_path / "partial" / "item-a" / "video.part"
    reason = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded"}
    assert report.outcomes[0].reason == f"cannot write {part}: {reason[code]}"
    assert len(server.requests("/v/a.mp4")) == 1  # a full disk is not retried
    assert not media(tmp_path).exists()
    # Its bytes are let go, with its sidecar: the catalog, on the same disk, can still write.
    assert list((tmp_path / "partial" / "item-a").iterdir()) == []
    monkeypatch.setattr(Sink, "write", real_write)
    download(single(server), tmp_path, settings=FAST)
    assert media(tmp_path).read_bytes() == content_of(3 * 1024 * 1024)
    assert "Range" not in server.requests("/v/a.mp4")[-1].headers


def test_entry_with_only_an_embed_url_is_a_named_failure(tmp_path: Path) -> None:
    manifest = Manifest(
        entries=(
            make_entry("item-e", None, video=Video(url=None, embed_url="https://x.org/embed/1")),
        )
    )
    report = download(manifest, tmp_path, settings=FAST)
    assert report.outcomes[0].status is Status.FAILED
    assert report.outcomes[0].reason == "no download URL in the manifest (only an embed URL)"


def test_proxy_from_the_environment_is_used(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = content_of(SIZE)
    # Our server doubles as the proxy: it receives the absolute URL as the request target.
    server.add("http://videos.example.invalid/a.mp4", data)
    monkeypatch.setenv("HTTP_PROXY", server.url(""))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    manifest = Manifest(entries=(make_entry("item-a", "http://videos.example.invalid/a.mp4"),))
    report = download(manifest, tmp_path, settings=FAST)
    assert report.outcomes[0].status is Status.FETCHED
    assert media(tmp_path).read_bytes() == data


def test_many_files_concurrently(server: FileServer, tmp_path: Path) -> None:
    entries = []
    for i in range(12):
        server.add(f"/v/{i}.mp4", content_of(50_000, i))
        entries.append(make_entry(f"item-{i:02d}", server.url(f"/v/{i}.mp4")))
    report = download(Manifest(entries=tuple(entries)), tmp_path, settings=DownloadSettings(jobs=4))
    assert report.count(Status.FETCHED) == 12
    for i in range(12):
        assert media(tmp_path, f"item-{i:02d}").read_bytes() == content_of(50_000, i)


def test_a_line_that_keeps_dropping_still_finishes(server: FileServer, tmp_path: Path) -> None:
    data = content_of(SIZE)
    server.add("/v/a.mp4", data, drop_after=50_000, drop_times=100)
    settings = DownloadSettings(
        retries=2, backoff_base=0.001, backoff_max=0.001, progress_resets_after=40_000
    )
    report = download(single(server), tmp_path, settings=settings)
    assert report.outcomes[0].status is Status.FETCHED
    assert media(tmp_path).read_bytes() == data
    assert len(server.requests("/v/a.mp4")) == SIZE // 50_000
    assert report.bytes_fetched == SIZE


def test_a_line_that_drops_every_hundred_kilobytes_finishes_by_default(
    server: FileServer, tmp_path: Path
) -> None:
    """A school's slow line that drops every 30 s brings a few hundred KiB a connection:
    with the default settings, each such attempt is progress (it was not under 1 MiB)."""
    data = content_of(1_500_000)
    server.add("/v/a.mp4", data, drop_after=100_000, drop_times=100)
    settings = dataclasses.replace(DownloadSettings(), backoff_base=0.001, backoff_max=0.001)
    report = download(single(server), tmp_path, settings=settings)
    assert report.outcomes[0].status is Status.FETCHED, report.outcomes[0].reason
    assert media(tmp_path).read_bytes() == data
    assert settings.retries < len(server.requests("/v/a.mp4"))


def test_restarting_from_zero_is_not_progress(server: FileServer, tmp_path: Path) -> None:
    server.add("/v/a.mp4", content_of(SIZE), drop_after=50_000, drop_times=100, ignore_range=True)
    settings = DownloadSettings(
        retries=3, backoff_base=0.001, backoff_max=0.001, progress_resets_after=40_000
    )
    report = download(single(server), tmp_path, settings=settings)
    assert report.outcomes[0].status is Status.FAILED
    assert len(server.requests("/v/a.mp4")) == 4


def test_progress_bars_show_bytes_and_files(server: FileServer, tmp_path: Path) -> None:
    import io

    from archiver.cli.progress import TqdmProgress

    server.add("/v/a.mp4", content_of(SIZE))
    stream = io.StringIO()
    download(single(server), tmp_path, settings=FAST, progress=TqdmProgress(stream=stream))
    shown = stream.getvalue()
    assert "1/1 files" in shown
    assert "1/1 files: 585.9 KiB [" in shown  # 600,000 bytes in KiB, the one unit family


def test_unknown_host_fails_at_once_for_every_file_on_it(tmp_path: Path) -> None:
    url = "http://videos.example.invalid/{}.mp4"  # .invalid never resolves (RFC 6761)
    manifest = Manifest(entries=tuple(make_entry(f"item-{i}", url.format(i)) for i in range(3)))
    start = time.monotonic()
    report = download(manifest, tmp_path, settings=DownloadSettings())  # default retries
    assert time.monotonic() - start < 10
    assert [o.reason for o in report.outcomes] == [
        "videos.example.invalid unreachable (no such host (DNS)): not tried again this run"
    ] * 3
    assert [o.unreachable for o in report.outcomes] == ["videos.example.invalid"] * 3


def test_same_bytes_from_a_new_url_stay_one_version_and_are_held_next_time(
    server: FileServer, tmp_path: Path
) -> None:
    data = content_of(SIZE)
    server.add("/v/a.mp4", data)
    server.add("/mirror/a.mp4", data)
    download(single(server), tmp_path, settings=FAST)
    report = download(single(server, "/mirror/a.mp4"), tmp_path, settings=FAST)
    assert report.outcomes[0].status is Status.FETCHED
    rows = catalog_rows(tmp_path)
    assert [(r["version"], r["url"]) for r in rows] == [(1, server.url("/mirror/a.mp4"))]
    again = download(single(server, "/mirror/a.mp4"), tmp_path, settings=FAST)
    assert again.outcomes[0].status is Status.HELD


# -- a minimum transfer rate -------------------------------------------------------------------


def test_a_trickle_under_the_minimum_rate_is_a_stall_and_its_retries_stay_bounded(
    server: FileServer, tmp_path: Path
) -> None:
    # 200 bytes a second, a write every 0.25 s: never silent long enough for the read timeout.
    server.add("/v/a.mp4", content_of(20_000), trickle=(50, 0.25))
    settings = DownloadSettings(
        retries=2,
        backoff_base=0.01,
        backoff_max=0.01,
        timeout=1.0,
        min_rate=1024,
        progress_resets_after=1,  # any growth would be progress, but a stall's never is
    )
    start = time.monotonic()
    report = download(single(server), tmp_path, settings=settings)
    elapsed = time.monotonic() - start
    (outcome,) = report.outcomes
    assert outcome.status is Status.FAILED
    assert outcome.reason == "stalled: under 1.0 KiB/s for 1 s (gave up after 3 attempts)"
    assert elapsed < 8, f"{elapsed:.1f} s"
    # What the trickle brought is good bytes: kept, for the next run to resume.
    assert (tmp_path / "partial" / "item-a" / "video.part").stat().st_size > 0


def test_waiting_on_our_own_bandwidth_cap_is_not_a_stall(
    server: FileServer, tmp_path: Path
) -> None:
    data = content_of(200_000)
    server.add("/v/a.mp4", data)
    # The cap (64 KiB/s) is under the minimum rate (256 KiB/s): the server is fast, archiver
    # is the one waiting, and that is no reason to give up on it.
    settings = DownloadSettings(retries=0, timeout=0.5, rate_limit=64 * 1024, min_rate=256 * 1024)
    report = download(single(server), tmp_path, settings=settings)
    assert report.outcomes[0].status is Status.FETCHED, report.outcomes[0].reason
    assert media(tmp_path).read_bytes() == data


# -- size caps ---------------------------------------------------------------------------------


def chunked(body: bytes) -> Callable[[Call], Reply]:
    """A route answering ``body`` with no Content-Length: its size is known at its end only."""
    return lambda call: Reply(200, body, [("Content-Type", "video/mp4")], chunked=True)


def test_a_video_of_unknown_size_is_capped_and_its_partial_dropped(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plan_module, "VIDEO_CAP", 100_000)
    server.route("/v/a.mp4", chunked(content_of(SIZE)))
    report = download(single(server), tmp_path, settings=FAST)
    (outcome,) = report.outcomes
    assert outcome.reason == "too large: over 97.7 KiB, the most for a video of unknown size"
    assert len(server.requests("/v/a.mp4")) == 1  # not retried
    assert not list((tmp_path / "partial").rglob("video.*"))
    assert not media(tmp_path).exists()


def test_a_video_is_capped_at_the_size_its_instance_gave_and_a_margin(
    server: FileServer, tmp_path: Path
) -> None:
    server.route("/v/a.mp4", chunked(content_of(1_500_000)))
    entry = make_entry("item-a", server.url("/v/a.mp4"))
    job = Job(entry, "video", server.url("/v/a.mp4"), "video.mp4", expected_size=100_000)
    with Archive(tmp_path) as archive:
        archive.record_item(entry)
        (outcome,) = asyncio.run(download_all([job], archive, settings=FAST))
    assert outcome.reason == "too large: over 1.1 MiB, its known size (97.7 KiB) and a margin"
    assert not list((tmp_path / "partial").rglob("video.*"))


def test_a_companion_announced_over_its_cap_fails_before_its_body(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plan_module, "PDF_CAP", 10_000)
    server.add("/v/a.mp4", content_of(SIZE))
    server.add("/f.pdf", pdf_of(20_000), content_type="application/pdf")
    manifest = single(server, assets=(Asset("fiche_pdf", server.url("/f.pdf")),))
    report = download(manifest, tmp_path, settings=FAST)
    assert [(o.job.role, o.reason) for o in report.failures] == [
        ("fiche_pdf", "too large: 19.5 KiB announced, over 9.8 KiB, the most for a PDF")
    ]
    assert not list((tmp_path / "partial").rglob("fiche_pdf.*"))
    assert report.count(Status.FETCHED) == 1  # the video


def test_each_kind_of_file_has_a_cap_of_its_own() -> None:
    assert plan_module.size_cap("caption_fr", None) == plan_module.CAPTIONS_CAP == 10 * 1024**2
    assert plan_module.size_cap("preview", None) == plan_module.IMAGE_CAP
    assert plan_module.size_cap("transcript_pdf", None) == plan_module.PDF_CAP
    assert (
        plan_module.size_cap("video", None)
        == plan_module.size_cap("audio", None)
        == plan_module.VIDEO_CAP
    )
    assert plan_module.size_cap("video", 100 * 1024**2) == 110 * 1024**2  # its size and 10%
    assert plan_module.size_cap("audio", 1000) == 1000 + 1024**2  # at least 1 MiB more


def test_a_catalog_that_cannot_say_what_is_held_fails_that_file_with_its_reason(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.add("/v/a.mp4", content_of(SIZE))
    entry = make_entry("item-a", server.url("/v/a.mp4"))

    def damaged(self: Archive, item: str, role: str, rendition: int = 0) -> None:
        raise ArchiveError(
            "catalog.sqlite", "the catalog is damaged: database disk image is malformed"
        )

    with Archive(tmp_path) as archive:
        archive.record_item(entry)
        monkeypatch.setattr(Archive, "current", damaged)
        job = Job(entry, "video", server.url("/v/a.mp4"), "video.mp4")
        (outcome,) = asyncio.run(download_all([job], archive, settings=FAST))
    assert outcome.reason == (
        "catalog.sqlite: the catalog is damaged: database disk image is malformed"
    )


class _Recorder(NullProgress):
    """What a progress bar is told, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def begin(self, tasks: int, total: int | None) -> None:
        self.events.append(("begin", total))

    def started(self, key: Hashable, label: str, total: int | None, done: int) -> None:
        self.events.append(("started", key))


def test_the_total_is_known_before_the_first_byte_when_bars_ask_for_it(
    server: FileServer, tmp_path: Path
) -> None:
    video, pdf = content_of(SIZE), pdf_of(5_000)
    server.add("/v/a.mp4", video)
    server.add("/f.pdf", pdf, content_type="application/pdf")
    manifest = single(server, assets=(Asset("fiche_pdf", server.url("/f.pdf")),))
    recorder = _Recorder()
    sized = dataclasses.replace(FAST, sizes_first=True)
    report = download(manifest, tmp_path / "a", settings=sized, progress=recorder)
    assert report.count(Status.FETCHED) == 2
    assert recorder.events[0] == ("begin", len(video) + len(pdf))  # before any file starts
    assert report.expected_bytes == len(video) + len(pdf)
    methods = [r.method for r in server.requests()]
    assert methods[:2] == ["HEAD", "HEAD"] and methods[2:] == ["GET", "GET"]

    # Without bars (cron), no HEAD: the total is not known, and nothing more is asked.
    server.reset()
    server.add("/v/b.mp4", video)
    recorder = _Recorder()
    report = download(single(server, "/v/b.mp4"), tmp_path / "b", settings=FAST, progress=recorder)
    assert recorder.events[0] == ("begin", None)
    assert report.expected_bytes is None
    assert [r.method for r in server.requests()] == ["GET"]
