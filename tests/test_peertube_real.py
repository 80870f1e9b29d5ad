"""archiver against an instance as strict as a real PeerTube 7 (tests/peertube.py): its rate
limit, its stored names, its sound stored apart, its short links, its weak ETags and one-use
signed redirects, its refusals."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import ffmpeg
import httpx
import pytest
from click.testing import CliRunner

from archiver.cli import cli

from .conftest import kit_folder, stored
from .media import make_split_video_mp4
from .peertube import FakeInstance, PublishedVideo
from .server import FileServer, Reply


def run(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def sync(tmp_path: Path, *extra: str) -> tuple[int, str, str]:
    return run(
        "sync", tmp_path / "fiches", "--archive", tmp_path / "archive", "--kit", tmp_path / "kit",
        "--retries", "3", "-q", *extra,
    )  # fmt: skip


def write(tmp_path: Path, name: str, text: str) -> Path:
    folder = tmp_path / "fiches"
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.md"
    path.write_text(text, encoding="utf-8")
    return path


def embed_only(video: PublishedVideo, link: str, title: str) -> str:
    """A fiche with a player link only: no download link, as some producers write them."""
    return (
        f"---\ntitle: {title}\narea: Domaine 2\nvideoEmbedSrc: {link}\n---\n\n## Script\n\nTexte.\n"
    )


def catalog(archive: Path, sql: str) -> list[tuple[object, ...]]:
    db = sqlite3.connect(archive / "catalog.sqlite")
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def downloads(server: FileServer) -> list[str]:
    return [r.bare_path for r in server.requests() if r.bare_path.startswith("/download/")]


# -- the API's rate limit -----------------------------------------------------------------------


@pytest.mark.slow
def test_forty_videos_behind_the_real_rate_limit_all_come_within_the_cap(
    server: FileServer, tmp_path: Path
) -> None:
    """50 API calls per 10 s (config/default.yaml rates_limit.api), two calls a video (its
    description and its captions): 80 calls, paced under the limit, every video at 240p."""
    tube = FakeInstance(server)
    for number in range(40):
        video = tube.publish(heights=(720, 240), name=f"Vidéo {number:02d}")
        write(tmp_path, f"v{number:02d}", video.fiche())
    code, _, stderr = sync(tmp_path, "--max-height", "240")
    assert (code, stderr) == (0, "")
    rows = catalog(tmp_path / "archive", "SELECT resolution FROM files WHERE role='video'")
    assert sorted(rows) == [(240,)] * 40
    assert not [p for p in downloads(server) if "-720-" in p]
    assert tube.limited == []  # paced under the limit: the instance never had to say no
    for cached in (tmp_path / "archive" / "peertube").glob("*.json"):
        assert "video" in json.loads(cached.read_bytes())  # only 200s are kept


def test_a_429_is_waited_out_and_never_kept(server: FileServer, tmp_path: Path) -> None:
    """Another client of the same address spent the window: the instance answers 429 with
    Retry-After; archiver waits and asks again, and keeps no answer from the 429."""
    tube = FakeInstance(server, api_window=2.0)
    videos = [tube.publish(heights=(480, 240)) for _ in range(3)]
    for number, video in enumerate(videos):
        write(tmp_path, f"v{number}", video.fiche())
    with httpx.Client() as other:  # spend the whole window
        while other.get(videos[0].api_url()).status_code != 429:
            pass
    spent = len(tube.limited)
    code, _, stderr = sync(tmp_path, "--max-height", "240")
    assert (code, stderr) == (0, "")
    assert len(tube.limited) > spent, "archiver never met the limit: the test proved nothing"
    rows = catalog(tmp_path / "archive", "SELECT resolution FROM files WHERE role='video'")
    assert rows == [(240,)] * 3
    for cached in (tmp_path / "archive" / "peertube").glob("*.json"):
        assert "video" in json.loads(cached.read_bytes())


# -- links --------------------------------------------------------------------------------------


def test_fiches_with_only_a_player_link_in_every_form_are_fetched(
    server: FileServer, tmp_path: Path
) -> None:
    tube = FakeInstance(server, api_window=2.0)
    videos = [tube.publish(heights=(480, 360)) for _ in range(4)]
    links = [
        videos[0].embed_url(short=True),  # /videos/embed/{short id}
        videos[1].embed_url(),  # /videos/embed/{uuid}
        videos[2].watch_url(),  # /w/{short id}
        f"{tube.url}/videos/watch/{videos[3].short_uuid}?start=10",
    ]
    for number, (video, link) in enumerate(zip(videos, links, strict=True)):
        write(tmp_path, f"v{number}", embed_only(video, link, f"Vidéo {number}"))
    code, _, stderr = sync(tmp_path)
    assert (code, stderr) == (0, "")
    for video in videos:
        assert stored(tmp_path / "archive", video.uuid).read_bytes() == video.data[480]
        assert (kit_folder(tmp_path / "kit", video.uuid) / "index.html").is_file()


def test_an_old_web_video_link_is_replaced_by_the_apis_file_of_that_height(
    server: FileServer, tmp_path: Path
) -> None:
    """PeerTube 6.3 renamed /download/videos/ to /download/web-videos/, and an HLS-only video
    has neither: the old link is answered by the web client's HTML page (200 text/html)."""
    tube = FakeInstance(server, api_window=2.0)
    video = tube.publish(heights=(720, 360))
    old = f"{tube.url}/download/videos/{video.uuid}-720.mp4"
    write(tmp_path, "v", video.fiche().replace(video.download_url(1080), old))
    code, _, stderr = sync(tmp_path)
    assert (code, stderr) == (0, "")
    ((url, resolution),) = catalog(
        tmp_path / "archive", "SELECT url, resolution FROM files WHERE role='video'"
    )
    assert (url, resolution) == (video.download_url(720), 720)  # the URL actually fetched
    assert old.removeprefix(tube.url) not in downloads(server)


# -- what the instance refuses -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("published", "reason"),
    [
        ({"privacy": 3}, "private on the instance: it asks for an account (HTTP 401)"),
        ({"privacy": 5, "password": "s3cret"}, "protected by a password: give it with --video-password"),
        ({"is_live": True, "heights": ()}, "a live stream on the instance: there is no file to download"),
        ({"state": 2, "heights": ()}, "not published yet on the instance (waiting to be transcoded)"),
    ],
)  # fmt: skip
def test_a_video_the_instance_refuses_is_one_line_and_no_download(
    server: FileServer, tmp_path: Path, published: dict[str, object], reason: str
) -> None:
    tube = FakeInstance(server, api_window=2.0)
    video = tube.publish(**published)  # type: ignore[arg-type]
    write(tmp_path, "v", embed_only(video, video.embed_url(), "Vidéo"))
    code, _, stderr = sync(tmp_path)
    assert code == 1
    assert stderr == f"Error: Vidéo ({video.uuid}, video): {video.embed_url()}: {reason}\n"
    assert downloads(server) == []
    assert not list((tmp_path / "archive" / "peertube").glob("*.json"))  # never kept


def test_a_password_protected_video_comes_with_its_password(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tube = FakeInstance(server, api_window=2.0)
    video = tube.publish(privacy=5, password="s3cret", heights=(360,))
    write(tmp_path, "v", video.fiche(height=360))
    monkeypatch.setenv("ARCHIVER_VIDEO_PASSWORD", "s3cret")
    code, _, stderr = sync(tmp_path)
    assert (code, stderr) == (0, "")
    assert stored(tmp_path / "archive", video.uuid).read_bytes() == video.data[360]
    sent = [r for r in server.requests() if r.bare_path.startswith("/download/")]
    assert sent
    assert all(r.headers.get("x-peertube-video-password") == "s3cret" for r in sent)
    code, _, stderr = run("sync", tmp_path / "fiches", "--archive", tmp_path / "a2", "--kit",
                          tmp_path / "k2", "--video-password", "wrong", "-q")  # fmt: skip
    assert code == 1
    assert "protected by a password, and the one given is wrong" in stderr
    assert "wrong" not in stderr.replace("is wrong", "")  # the password itself is never shown


# -- sound stored apart ----------------------------------------------------------------------------


def test_a_video_whose_sound_is_stored_apart_reaches_the_kit_with_sound(
    server: FileServer, tmp_path: Path
) -> None:
    tube = FakeInstance(server, api_window=2.0)
    video = tube.publish(
        split_audio=True,
        heights=(720, 360),
        captions={"fr": "WEBVTT\n\n00:00.000 --> 00:01.000\nBonjour\n"},
    )
    write(tmp_path, "v", video.fiche(height=720))
    code, _, stderr = sync(tmp_path, "--max-height", "360")
    assert (code, stderr) == (0, "")
    roles = catalog(
        tmp_path / "archive", "SELECT role, resolution, segments FROM files ORDER BY role"
    )
    assert ("audio", 0, "verified") in roles
    assert ("video", 360, "verified") in roles
    folder = kit_folder(tmp_path / "kit", video.uuid)
    (shown,) = folder.glob("*.mp4")
    kinds = sorted(s["codec_type"] for s in ffmpeg.probe(str(shown))["streams"])
    assert kinds == ["audio", "video"]
    assert (folder / "poster.jpg").is_file()
    assert (folder / "captions-fr.vtt").is_file()
    assert shown.name in (folder / "index.html").read_text(encoding="utf-8")
    assert run("verify", tmp_path / "kit")[0] == 0


# -- checksums by stored name ----------------------------------------------------------------------


def test_a_tampered_segment_fails_the_item_and_quarantines_the_bytes(
    server: FileServer, tmp_path: Path
) -> None:
    tube = FakeInstance(server, api_window=2.0)
    good = tube.publish(heights=(360,))
    bad = tube.publish(heights=(360,), tamper_segment_of=360)
    write(tmp_path, "good", good.fiche(height=360, title="Bonne"))
    write(tmp_path, "bad", bad.fiche(height=360, title="Altérée"))
    code, _, stderr = sync(tmp_path)
    assert code == 1
    assert (
        f"Altérée ({bad.uuid}, video): {bad.download_url(360)}: segment sha256 mismatch:" in stderr
    )
    assert "Bonne" not in stderr
    assert list((tmp_path / "archive" / "quarantine" / bad.uuid).iterdir())
    assert not (
        tmp_path / "archive" / "media" / bad.uuid / f"{bad.uuid}-360-fragmented.mp4"
    ).exists()
    rows = catalog(tmp_path / "archive", "SELECT segments FROM files WHERE role='video'")
    assert rows == [("verified",)]


# -- resuming over a line that drops ---------------------------------------------------------------


@pytest.mark.parametrize("storage", ["local", "object"])
def test_resume_over_a_dropping_line_fetches_little_twice(
    server: FileServer, tmp_path: Path, storage: str
) -> None:
    """Local storage: /download answers with a weak ETag and Last-Modified (Express), so the
    resume's If-Range carries the date. Object storage: /download answers 302 to a presigned
    URL that serves once, so each resume must go back to /download for a fresh one."""
    tube = FakeInstance(server, api_window=2.0)
    video = tube.publish(heights=(480,), storage=storage)  # type: ignore[arg-type]
    size = len(video.data[480])
    served = video.files[480].presigned if storage == "object" else video.files[480].download
    served.drop_after, served.drop_times = size // 5, 4
    write(tmp_path, "v", video.fiche(height=480))
    code, _, stderr = sync(tmp_path, "--retries", "8")
    assert (code, stderr) == (0, "")
    assert stored(tmp_path / "archive", video.uuid).read_bytes() == video.data[480]
    stored_name = video.files[480].stored_name
    bodies = [
        r
        for r in server.requests()
        if r.status in (200, 206)
        and (
            r.bare_path.endswith(f"{video.uuid}-480-fragmented.mp4")
            or r.bare_path.endswith(stored_name)
        )
    ]
    sent = sum(r.sent for r in bodies)
    assert sent <= size * 1.02, f"fetched {sent / size - 1:.1%} twice"
    assert len([r for r in bodies if r.status == 206]) >= 4  # resumed, not restarted


def test_a_video_the_instance_says_has_sound_must_have_it(
    server: FileServer, tmp_path: Path
) -> None:
    """hasAudio (PeerTube 6.2) says the file carries sound: a silent file is refused at
    download, quarantined and named, never kept."""
    silent = make_split_video_mp4(tmp_path / "silent.mp4").read_bytes()
    tube = FakeInstance(server, api_window=2.0)
    video = tube.publish(heights=(240,), videos={240: silent})
    write(tmp_path, "v", video.fiche(height=240, title="Muette"))
    code, _, stderr = sync(tmp_path)
    assert code == 1
    assert stderr == (
        f"Error: Muette ({video.uuid}, video): {video.download_url(240)}:"
        " not a playable MP4: no audio stream\n"
    )
    assert list((tmp_path / "archive" / "quarantine" / video.uuid).iterdir())


# -- what the review found -------------------------------------------------------------------------


def test_the_password_goes_only_to_the_instance_that_asked_for_it(
    server: FileServer, tmp_path: Path
) -> None:
    """A public video is asked for without it; the protected one's instance gets it only after
    answering video_requires_password, then with each of that video's requests."""
    tube = FakeInstance(server, api_window=2.0)
    public = tube.publish(heights=(240,))
    protected = tube.publish(heights=(240,), privacy=5, password="s3cret")
    write(tmp_path, "public", public.fiche(height=240, title="Publique"))
    write(tmp_path, "protected", protected.fiche(height=240, title="Protégée"))
    code, _, stderr = sync(tmp_path, "--video-password", "s3cret")
    assert (code, stderr) == (0, "")
    carried = [
        (r.bare_path, bool(r.headers.get("x-peertube-video-password"))) for r in server.requests()
    ]
    assert not [path for path, sent in carried if sent and public.uuid in path]
    asked = [sent for path, sent in carried if path == f"/api/v1/videos/{protected.uuid}"]
    assert asked == [False, True]  # first without, then because the instance asked for it
    fetched = [
        sent for path, sent in carried if path == protected.download_url(240).removeprefix(tube.url)
    ]
    assert fetched == [True]


def test_the_password_never_follows_a_redirect_to_another_host(server: FileServer) -> None:
    """httpx keeps custom headers across redirects (it strips only Authorization): the
    client's hook drops the password when a 302 leaves the instance (object storage)."""
    import asyncio

    from archiver.fetch.http import (
        PASSWORD_HEADER,
        PASSWORD_ORIGIN,
        DownloadSettings,
        make_client,
        origin,
    )

    from .server import FileServer as Other

    bucket = Other()
    try:
        bucket.add("/bucket/v.mp4", b"bytes")
        server.redirect("/download/v.mp4", bucket.url("/bucket/v.mp4"))

        async def fetch() -> int:
            async with make_client(DownloadSettings()) as client:
                url = server.url("/download/v.mp4")
                response = await client.get(
                    url,
                    headers={PASSWORD_HEADER: "s3cret"},
                    extensions={PASSWORD_ORIGIN: origin(url)},
                )
                return response.status_code

        assert asyncio.run(fetch()) == 200
        assert server.requests()[0].headers.get(PASSWORD_HEADER) == "s3cret"
        assert [r.headers.get(PASSWORD_HEADER) for r in bucket.requests()] == [None]
    finally:
        bucket.close()


@pytest.mark.parametrize(
    ("header", "document"),
    [
        ({"X-RateLimit-Remaining": "²"}, None),  # "²".isdigit() is True; int("²") fails
        ({"Retry-After": "²", "X-RateLimit-Remaining": "0"}, None),
        ({}, {"duration": 10**400}),
        ({}, {"resolution": 2**70}),
        ({}, {"captions": {"data": 5}}),
    ],
)
def test_a_hostile_answer_fails_one_video_at_most_never_the_run(
    server: FileServer, tmp_path: Path, header: dict[str, str], document: dict[str, object] | None
) -> None:
    tube = FakeInstance(server, api_window=2.0)
    video = tube.publish(heights=(240,))
    answer = json.loads(httpx.get(video.api_url()).content)
    if document and "duration" in document:
        answer["duration"] = document["duration"]
    if document and "resolution" in document:
        answer["streamingPlaylists"][0]["files"][0]["resolution"]["id"] = document["resolution"]
    body = json.dumps(answer).encode()
    captions = json.dumps((document or {}).get("captions", {"total": 0, "data": []})).encode()
    hostile = FileServer()
    try:
        hostile.add(
            f"/api/v1/videos/{video.uuid}", body, content_type="application/json", headers=header
        )
        hostile.add(
            f"/api/v1/videos/{video.uuid}/captions", captions, content_type="application/json"
        )
        fiche = video.fiche(height=240).replace(
            video.embed_url(), hostile.url(f"/videos/embed/{video.uuid}")
        )
        write(tmp_path, "v", fiche)
        code, _, stderr = sync(tmp_path)
    finally:
        hostile.close()
    assert code in (0, 1), stderr
    assert "internal error" not in stderr
    assert len(stderr.splitlines()) <= 1


def test_captions_the_instance_would_not_list_are_not_kept_as_none(
    server: FileServer, tmp_path: Path
) -> None:
    """A 429 on the captions after the video's 200: nothing is kept, so the next run asks
    again and gets them (only 200 answers are kept)."""
    refused = {"left": 20}

    def captions_429(call: object) -> Reply | None:
        if refused["left"] > 0:
            refused["left"] -= 1
            return Reply(429, b"Too many requests, please try again later.", [("Retry-After", "0")])
        return None

    uuid = "5d0c4c9a-37a8-4c6e-9f5e-8c2a6f1a2b3c"
    server.route(f"/api/v1/videos/{uuid}/captions", captions_429)
    tube = FakeInstance(server, api_window=2.0)
    video = tube.publish(
        uuid, heights=(240,), captions={"fr": "WEBVTT\n\n00:00.000 --> 00:01.000\nBonjour\n"}
    )
    write(tmp_path, "v", video.fiche(height=240))
    sync(tmp_path)
    assert not (tmp_path / "archive" / "peertube" / f"{uuid}.json").exists()
    refused["left"] = 0
    assert sync(tmp_path)[0] == 0
    cached = json.loads((tmp_path / "archive" / "peertube" / f"{uuid}.json").read_bytes())
    assert [c["language"]["id"] for c in cached["captions"]["data"]] == ["fr"]
    assert (kit_folder(tmp_path / "kit", uuid) / "captions-fr.vtt").is_file()
