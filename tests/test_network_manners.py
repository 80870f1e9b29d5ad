"""Network manners against hostile or broken servers: a certificate the system refuses, an
https URL redirected to http, endless and trickling API answers, a UUID that names a path,
credentials in URLs. Each against a real server on 127.0.0.1 (HTTPS with a self-signed
certificate made by openssl for the test)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import sqlite3
import time
import tracemalloc
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from click.testing import CliRunner

import archiver.fetch.api as peertube_api
from archiver.cli import cli
from archiver.entry import PeerTubeRef
from archiver.fetch import DownloadSettings, Status, download
from archiver.fetch.http import (
    InsecureRedirect,
    make_client,
    not_worth_retrying,
)
from archiver.fetch.peertube import (
    MAX_ANSWER,
    Pace,
    Unavailable,
    VideoInfo,
    check_segments,
    fetch_info,
)
from archiver.manifest import Manifest, write_manifest
from archiver.sync import sync

from .conftest import content_of, fiche_text, make_entry
from .server import Call, FileServer, Reply

T = TypeVar("T")
UUID = "9c9de5e8-0a1e-484a-b099-e80766180a6d"
SELF_SIGNED = "the server's certificate was refused: self-signed certificate"
MiB = 1024 * 1024
RETRYING = DownloadSettings(retries=3, backoff_base=1.0, backoff_max=2.0, timeout=5.0)


def run_client(
    ask: Callable[[httpx.AsyncClient], Coroutine[Any, Any, T]],
    settings: DownloadSettings = RETRYING,
) -> T:
    async def main() -> T:
        async with make_client(settings) as client:
            return await ask(client)

    return asyncio.run(main())


def measured(call: Callable[[], T]) -> tuple[T, int]:
    """``call()``, and the most memory Python held at once while it ran."""
    tracemalloc.start()
    try:
        result = call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return result, peak


def ref(server: FileServer, uuid: str = UUID) -> PeerTubeRef:
    return PeerTubeRef(instance=server.url(""), uuid=uuid)


def video_answer(uuid: str = UUID) -> bytes:
    return json.dumps(
        {
            "uuid": uuid,
            "name": "Une vidéo",
            "duration": 10,
            "files": [{"resolution": {"id": 360}, "size": 1000, "fileDownloadUrl": "/d/v.mp4"}],
        }
    ).encode()


JSON = [("Content-Type", "application/json; charset=utf-8")]


def write(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "m.json"
    write_manifest(Manifest(entries=(make_entry("item", url),)), path)
    return path


def cli_run(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


# -- not_worth_retrying ------------------------------------------------------------------------


def test_ordinary_failures_are_worth_retrying() -> None:
    request = httpx.Request("GET", "https://tube.example.org/v.mp4")
    for exc in (
        httpx.ConnectError("[Errno 111] Connection refused", request=request),
        httpx.ReadTimeout("timed out", request=request),
        httpx.RemoteProtocolError("peer closed connection", request=request),
        OSError("no space left"),
    ):
        assert not_worth_retrying(exc) is None


# -- a certificate the system refuses ----------------------------------------------------------


def test_refused_certificate_is_said_in_one_line(tls_server: FileServer) -> None:
    async def ask(client: httpx.AsyncClient) -> BaseException:
        with pytest.raises(httpx.ConnectError) as caught:
            await client.get(tls_server.url("/v.mp4"))
        return caught.value

    exc = run_client(ask)
    assert not_worth_retrying(exc) == SELF_SIGNED


def test_refused_certificate_fails_the_api_in_one_connection(
    tls_server: FileServer, tmp_path: Path
) -> None:
    answer = run_client(lambda client: fetch_info(client, ref(tls_server), tmp_path))
    assert answer == Unavailable(f"the instance's API cannot be reached ({SELF_SIGNED})", False)
    assert tls_server.connections == 1
    assert tls_server.requests() == []  # no HTTP request: the handshake was refused


def test_refused_certificate_fails_a_download_at_once(
    tls_server: FileServer, tmp_path: Path
) -> None:
    tls_server.add("/v/a.mp4", content_of(50_000))
    manifest = write(tmp_path, tls_server.url("/v/a.mp4"))
    start = time.monotonic()
    code, _, err = cli_run("download", manifest, "--archive", tmp_path / "a", "--retries", "3")
    assert time.monotonic() - start < 5  # three retries would back off 1 + 2 + 2 s
    assert code == 1
    errors = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1
    assert errors[0].endswith(SELF_SIGNED)
    assert tls_server.connections == 1


# -- https redirected to http ------------------------------------------------------------------


@pytest.mark.usefixtures("trusted")
def test_https_redirected_to_http_is_refused_naming_both_urls_redacted(
    tls_server: FileServer, server: FileServer, tmp_path: Path
) -> None:
    server.add("/a.mp4", content_of(50_000))
    plain = server.url("/a.mp4").replace("http://", "http://ann:s3cret@")
    tls_server.redirect("/v/a.mp4", plain)
    secure = tls_server.url("/v/a.mp4").replace("https://", "https://bob:hunter2@")

    async def ask(client: httpx.AsyncClient) -> BaseException:
        with pytest.raises(InsecureRedirect) as caught:
            await client.get(secure)
        return caught.value

    exc = run_client(ask)
    reason = not_worth_retrying(exc)
    assert reason == (
        f"redirect from https to plain http refused: {tls_server.url('/v/a.mp4')}"
        f" → {server.url('/a.mp4')} (--allow-http-redirects permits it)"
    ).replace("://", "://***@")
    assert "s3cret" not in reason and "hunter2" not in reason
    assert server.requests() == []


@pytest.mark.usefixtures("trusted")
def test_a_download_redirected_to_http_fails_at_once(
    tls_server: FileServer, server: FileServer, tmp_path: Path
) -> None:
    server.add("/a.mp4", content_of(50_000))
    tls_server.redirect("/v/a.mp4", server.url("/a.mp4"))
    report = download(
        Manifest(entries=(make_entry("item", tls_server.url("/v/a.mp4")),)),
        tmp_path,
        settings=RETRYING,
    )
    (outcome,) = report.outcomes
    assert outcome.status is Status.FAILED
    assert outcome.reason is not None
    assert outcome.reason.startswith("redirect from https to plain http refused: ")
    assert len(tls_server.requests("/v/a.mp4")) == 1
    assert server.requests() == []


@pytest.mark.usefixtures("trusted")
def test_a_redirect_to_http_is_followed_when_allowed(
    tls_server: FileServer, server: FileServer, tmp_path: Path
) -> None:
    data = content_of(50_000)
    server.add("/a.mp4", data)
    tls_server.redirect("/v/a.mp4", server.url("/a.mp4"))
    report = download(
        Manifest(entries=(make_entry("item", tls_server.url("/v/a.mp4")),)),
        tmp_path,
        settings=DownloadSettings(allow_http_redirects=True),
    )
    assert report.outcomes[0].status is Status.FETCHED
    assert (tmp_path / "media" / "item").is_dir()


@pytest.mark.usefixtures("trusted")
def test_https_redirects_to_https_and_http_to_http_are_followed(
    tls_server: FileServer, server: FileServer
) -> None:
    tls_server.add("/b", b"secure")
    tls_server.redirect("/a", tls_server.url("/b"))
    server.add("/b", b"plain")
    server.redirect("/a", server.url("/b"))

    async def ask(client: httpx.AsyncClient) -> tuple[bytes, bytes]:
        first = await client.get(tls_server.url("/a"))
        second = await client.get(server.url("/a"))
        return first.content, second.content

    assert run_client(ask) == (b"secure", b"plain")


@pytest.mark.usefixtures("trusted")
def test_the_api_redirected_to_http_is_refused(
    tls_server: FileServer, server: FileServer, tmp_path: Path
) -> None:
    tls_server.redirect(f"/api/v1/videos/{UUID}", server.url(f"/api/v1/videos/{UUID}"))
    answer = run_client(lambda client: fetch_info(client, ref(tls_server), tmp_path))
    assert isinstance(answer, Unavailable)
    assert answer.reason.startswith(
        "the instance's API cannot be reached (redirect from https to plain http refused: "
    )
    assert server.requests() == []


# -- endless and trickling answers -------------------------------------------------------------


def endless(chunk: bytes = b"[0," * 20_000) -> Reply:
    return Reply(200, chunk, headers=JSON, endless=True, endless_limit=512 * MiB)


@pytest.mark.parametrize("which", ["video", "captions", "password"])
def test_an_endless_api_answer_is_cut_and_memory_stays_bounded(
    server: FileServer, tmp_path: Path, which: str
) -> None:
    def answer(call: Call) -> Reply:
        if which == "captions" and call.path.endswith("/captions"):
            return endless()
        if which == "password":
            if call.headers.get("x-peertube-video-password") == "s3cret":
                return endless()
            problem = {"code": "video_requires_password", "status": 403}
            body = json.dumps(problem).encode()
            return Reply(403, body, headers=[("Content-Type", "application/problem+json")])
        if which == "video":
            return endless()
        return Reply(200, video_answer(), headers=JSON)

    server.route(f"/api/v1/videos/{UUID}", answer)
    start = time.monotonic()
    got, peak = measured(
        lambda: run_client(
            lambda client: fetch_info(client, ref(server), tmp_path / "cache", password="s3cret")
        )
    )
    assert time.monotonic() - start < 20
    assert peak < 8 * MiB, f"{peak / MiB:.0f} MiB"  # 2 MiB read, then dropped
    if which == "captions":
        assert isinstance(got, VideoInfo) and got.captions == ()
        assert not (tmp_path / "cache").exists()  # an answer half known is not kept
    else:
        assert got == Unavailable(
            f"the instance's answer is not understood (an answer longer than {MAX_ANSWER} bytes)",
            False,
        )
    sent = [r.sent for r in server.requests() if r.status == 200]
    assert sent and max(sent) < 64 * MiB  # the client went away, the server stopped


def test_an_endless_segments_list_is_cut_and_memory_stays_bounded(
    server: FileServer, tmp_path: Path
) -> None:
    server.route("/segments.json", lambda call: endless(b'{"a":' * 10_000))
    video = tmp_path / "v.mp4"
    video.write_bytes(b"\0" * 1000)
    found, peak = measured(
        lambda: run_client(
            lambda client: check_segments(client, server.url("/segments.json"), video, "v.mp4")
        )
    )
    assert found == "the instance's segment checksums are too long to be a list of checksums"
    assert peak < 24 * MiB, f"{peak / MiB:.0f} MiB"  # 16 MiB read, then dropped


def test_a_segments_list_of_packed_junk_is_refused_before_it_is_parsed(
    server: FileServer, tmp_path: Path
) -> None:
    # 12 MiB of "[0,0,…]" would take 50 MiB more once parsed, for nothing.
    junk = b"[" + b"0," * (6 * MiB) + b"0]"
    server.route("/segments.json", lambda call: Reply(200, junk, headers=JSON))
    video = tmp_path / "v.mp4"
    video.write_bytes(b"\0" * 1000)
    found, peak = measured(
        lambda: run_client(
            lambda client: check_segments(client, server.url("/segments.json"), video, "v.mp4")
        )
    )
    assert found == "the instance's segment checksums are not understood (not a list of checksums)"
    assert peak < 2 * len(junk) + 4 * MiB, f"{peak / MiB:.0f} MiB"


def test_an_answer_nested_too_deeply_is_not_understood(server: FileServer, tmp_path: Path) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    server.route(f"/api/v1/videos/{UUID}", lambda call: Reply(200, deep, headers=JSON))
    answer = run_client(lambda client: fetch_info(client, ref(server), tmp_path))
    assert answer == Unavailable(
        "the instance's answer is not understood (JSON nested too deeply)", False
    )


def test_a_trickling_api_answer_is_cut_in_time(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(peertube_api, "API_MAX_TIME", 1.0)
    trickle = server.add(
        "/trickle", video_answer(), content_type="application/json", trickle=(10, 0.2)
    )
    server.route(f"/api/v1/videos/{UUID}", lambda call: trickle)
    start = time.monotonic()
    answer = run_client(lambda client: fetch_info(client, ref(server), tmp_path))
    assert time.monotonic() - start < 3
    assert answer == Unavailable(
        "the instance's API cannot be reached (too slow: no whole answer within 1 s)", False
    )


def test_a_huge_cached_answer_is_not_read_whole(server: FileServer, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    with (cache / f"{UUID}.json").open("wb") as stream:
        stream.truncate(64 * MiB)  # sparse: a huge file that costs no disk
    server.route("/api/", lambda call: Reply(404, b"no API here"))  # so the cache is read
    answer, peak = measured(
        lambda: run_client(
            lambda client: fetch_info(client, ref(server), cache, fresh=True),
            DownloadSettings(),
        )
    )
    assert isinstance(answer, Unavailable)
    assert peak < 4 * MiB, f"{peak / MiB:.0f} MiB"


def test_a_fifo_in_place_of_a_cached_answer_does_not_block(
    server: FileServer, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    os.mkfifo(cache / f"{UUID}.json")
    server.route(f"/api/v1/videos/{UUID}", lambda call: Reply(200, video_answer(), headers=JSON))
    answer = run_client(lambda client: fetch_info(client, ref(server), cache, fresh=True))
    assert isinstance(answer, VideoInfo)


# -- a UUID that names a path ------------------------------------------------------------------


@pytest.mark.parametrize(
    "uuid",
    ["../../victim/settings", "/tmp/x", f"{UUID}/../{UUID}", UUID.upper(), f"{UUID}\n", ""],
)
def test_a_uuid_that_is_no_plain_uuid_names_no_file_and_asks_nothing(
    server: FileServer, tmp_path: Path, uuid: str
) -> None:
    victim = tmp_path / "victim" / "settings.json"
    victim.parent.mkdir()
    victim.write_text("precious")
    cache = tmp_path / "archive" / "peertube"
    cache.mkdir(parents=True)
    server.route("/api/", lambda call: Reply(200, video_answer(uuid), headers=JSON))
    answer = run_client(lambda client: fetch_info(client, ref(server, uuid), cache))
    assert answer == Unavailable(f"not a PeerTube video UUID: {uuid!r}", True)
    assert victim.read_text() == "precious"
    assert list(cache.iterdir()) == []
    assert server.requests() == []


# -- credentials in URLs -----------------------------------------------------------------------


def test_api_retries_log_no_credentials(
    server: FileServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    answers = iter([Reply(503, b"busy", headers=[("Retry-After", "0")])])
    server.route(
        f"/api/v1/videos/{UUID}",
        lambda call: next(answers, None) or Reply(200, video_answer(), headers=JSON),
    )
    instance = server.url("").replace("http://", "http://ann:s3cret@")
    caplog.set_level(logging.INFO, logger="archiver")
    answer = run_client(
        lambda client: fetch_info(client, PeerTubeRef(instance=instance, uuid=UUID), tmp_path)
    )
    assert isinstance(answer, VideoInfo)
    assert "asking again" in caplog.text
    assert "s3cret" not in caplog.text


def test_failures_kept_for_status_and_the_sync_log_name_no_credentials(
    server: FileServer, tmp_path: Path
) -> None:
    url = server.url("/gone.mp4").replace("http://", "http://ann:s3cret@")
    fiche = tmp_path / "fiches" / "video.md"
    fiche.parent.mkdir()
    fiche.write_text(fiche_text(embed=None, download=url), encoding="utf-8")
    log = io.StringIO()
    report = sync([fiche.parent], tmp_path / "archive", tmp_path / "kit", log=log)
    assert [o.status for o in report.download.outcomes] == [Status.FAILED]
    assert "/gone.mp4" in log.getvalue()
    assert "s3cret" not in log.getvalue()
    db = sqlite3.connect(tmp_path / "archive" / "catalog.sqlite")
    try:
        (kept,) = db.execute("SELECT url FROM failures").fetchall()
    finally:
        db.close()
    assert kept == (url.replace("ann:s3cret@", "***@"),)
    code, out, _ = cli_run("status", "--archive", tmp_path / "archive", "--json")
    assert code == 0
    assert "/gone.mp4" in out
    assert "s3cret" not in out


def test_retry_after_zero_asks_again_at_once(server: FileServer, tmp_path: Path) -> None:
    answers = iter([Reply(429, b"slow down", headers=[("Retry-After", "0")])])
    server.route(
        f"/api/v1/videos/{UUID}",
        lambda call: next(answers, None) or Reply(200, video_answer(), headers=JSON),
    )
    start = time.monotonic()
    answer = run_client(lambda client: fetch_info(client, ref(server), tmp_path))
    assert isinstance(answer, VideoInfo)
    assert time.monotonic() - start < 3  # not the 10 s of a whole rate-limit window


def test_an_api_answer_slower_than_the_minimum_rate_is_a_stall(
    server: FileServer, tmp_path: Path
) -> None:
    trickle = server.add(
        "/trickle", video_answer(), content_type="application/json", trickle=(10, 0.2)
    )
    server.route(f"/api/v1/videos/{UUID}", lambda call: trickle)
    start = time.monotonic()
    answer = run_client(
        lambda client: fetch_info(
            client, ref(server), tmp_path, pace=Pace(min_rate=1024, window=1.0)
        )
    )
    assert time.monotonic() - start < 2.5
    assert answer == Unavailable(
        "the instance's API cannot be reached (too slow: less than 1024 bytes/s over 1 s)", False
    )


def test_a_download_asks_the_api_at_the_runs_pace(server: FileServer, tmp_path: Path) -> None:
    trickle = server.add(
        "/trickle", video_answer(), content_type="application/json", trickle=(1, 0.5)
    )
    server.route(f"/api/v1/videos/{UUID}", lambda call: trickle)
    server.add("/v.mp4", content_of(50_000))
    entry = make_entry("item", server.url("/v.mp4"), peertube=ref(server))
    start = time.monotonic()
    report = download(
        Manifest(entries=(entry,)), tmp_path, settings=DownloadSettings(timeout=1.0, retries=0)
    )
    assert time.monotonic() - start < 5  # not the 60 s a whole answer may take
    assert [o.status for o in report.outcomes] == [Status.FETCHED]  # by the fiche's link


@pytest.mark.parametrize("location", ["javascript:alert(1)", "http://[::1", "ftp://x/y"])
def test_an_api_redirected_to_no_url_fails_that_video_only(
    server: FileServer, tmp_path: Path, location: str
) -> None:
    server.route(
        f"/api/v1/videos/{UUID}", lambda call: Reply(302, b"", headers=[("Location", location)])
    )
    answer = run_client(lambda client: fetch_info(client, ref(server), tmp_path))
    assert isinstance(answer, Unavailable) and not answer.refused
    assert answer.reason.startswith("the instance's API cannot be reached (")


def test_a_segments_list_redirected_to_no_url_is_not_verified(
    server: FileServer, tmp_path: Path
) -> None:
    server.redirect("/segments.json", "javascript:alert(1)")
    video = tmp_path / "v.mp4"
    video.write_bytes(b"\0" * 1000)
    found = run_client(
        lambda client: check_segments(client, server.url("/segments.json"), video, "v.mp4")
    )
    assert isinstance(found, str)
    assert found.startswith("the instance's segment checksums cannot be had (redirected to ")
