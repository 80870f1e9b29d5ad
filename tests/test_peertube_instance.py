"""The fake PeerTube instance is as strict as a real one: proven with plain httpx."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import tagged
from .media import require
from .peertube import FakeInstance
from .peertube_api import long_uuid, short_uuid
from .server import Call, FileServer, Reply

FIXTURES = Path(__file__).parent / "fixtures" / "peertube"
PAIR = ("9c9de5e8-0a1e-484a-b099-e80766180a6d", "kkGMgK9ZtnKfYAgnEtQxbv")


@pytest.fixture
def tube(server: FileServer) -> FakeInstance:
    """An instance with the real limit of 50 calls, over a 2 s window to keep tests quick."""
    return FakeInstance(server, api_window=2.0)


@pytest.fixture
def client() -> Any:
    with httpx.Client(timeout=10) as session:
        yield session


def streams_of(data: bytes, tmp_path: Path, name: str) -> list[str]:
    path = tmp_path / name
    path.write_bytes(data)
    out = subprocess.run(
        [require("ffprobe"), "-v", "error", "-show_entries", "stream=codec_type", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.split()


def shape(value: Any) -> Any:
    """The keys of a JSON value, in order, all the way down (lists by their first item)."""
    if isinstance(value, dict):
        return [(key, shape(item)) for key, item in value.items() if key != "_source"]
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return None


# -- ids -----------------------------------------------------------------------------------------


def test_short_uuid_is_flickr_base58_of_the_uuid() -> None:
    assert short_uuid(PAIR[0]) == PAIR[1]
    assert long_uuid(PAIR[1]) == PAIR[0]
    assert short_uuid("00000000-0000-0000-0000-000000000001") == "1" * 21 + "2"  # padded with 1
    assert long_uuid("0" * 22) is None  # 0 is not in the flickr alphabet


def test_the_api_answers_for_uuid_short_uuid_and_numeric_id(
    tube: FakeInstance, client: Any
) -> None:
    video = tube.publish(PAIR[0])
    answers = [
        client.get(f"{tube.url}/api/v1/videos/{key}") for key in (PAIR[0], PAIR[1], str(video.id))
    ]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert answers[0].json() == answers[1].json() == answers[2].json()
    assert answers[0].headers["content-type"] == "application/json; charset=utf-8"
    document = answers[0].json()
    assert (document["uuid"], document["shortUUID"], document["id"]) == (PAIR[0], PAIR[1], video.id)
    assert document["state"] == {"id": 1, "label": "Published"}
    assert document["privacy"] == {"id": 1, "label": "Public"}
    assert document["files"] == []  # HLS only: every file is in the playlist
    assert document["previewPath"].startswith("/lazy-static/previews/")  # relative
    assert client.get(tube.url + document["previewPath"]).headers["content-type"] == "image/jpeg"


def test_errors_are_problem_documents(tube: FakeInstance, client: Any) -> None:
    missing = client.get(f"{tube.url}/api/v1/videos/11111111-2222-4333-8444-555555555555")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json; charset=utf-8"
    assert list(missing.json().items()) == [
        ("type", "about:blank"), ("title", "Not Found"), ("detail", "Video not found"), ("status", 404),
        ("docs", "https://docs.joinpeertube.org/api-rest-reference.html#operation/getVideo"),
    ]  # fmt: skip
    malformed = client.get(f"{tube.url}/api/v1/videos/not-a-video")
    assert malformed.status_code == 400
    assert malformed.json()["detail"] == "Incorrect request parameters: id"
    assert (
        malformed.json()["invalid-params"]["id"]["msg"]
        == "Should have a valid video id (id, short UUID or UUID)"
    )
    unknown_route = client.get(f"{tube.url}/api/v1/videos/{PAIR[0]}/nothing-here")
    assert (unknown_route.status_code, unknown_route.content) == (400, b"")  # the API's badRequest


# -- the rate limit ------------------------------------------------------------------------------


def test_every_videos_route_counts_and_the_51st_call_is_refused(
    tube: FakeInstance, client: Any
) -> None:
    video = tube.publish()
    remaining = []
    for number in range(50):
        path = video.api_url() + ("/captions" if number % 2 else "")
        answer = client.get(path)
        assert answer.status_code == 200
        assert answer.headers["x-ratelimit-limit"] == "50"
        assert "ratelimit-policy" not in answer.headers and "ratelimit" not in answer.headers
        remaining.append(int(answer.headers["x-ratelimit-remaining"]))
    assert remaining == list(range(49, -1, -1))
    refused = client.get(f"{tube.url}/api/v1/videos/{PAIR[1]}")  # an unknown video counts too
    assert refused.status_code == 429
    assert refused.text == "Too many requests, please try again later."
    assert refused.headers["content-type"] == "text/html; charset=utf-8"
    assert 1 <= int(refused.headers["retry-after"]) <= 2
    assert int(refused.headers["x-ratelimit-reset"]) >= time.time()
    assert [entry.path for entry in tube.limited] == [f"/api/v1/videos/{PAIR[1]}"]
    # /download has no limiter, and an admin's token passes the API's
    download = client.get(video.download_url(360))
    assert download.status_code == 200 and "x-ratelimit-limit" not in download.headers
    admin = client.get(video.api_url(), headers={"Authorization": f"Bearer {tube.token('admin')}"})
    assert admin.status_code == 200 and admin.headers["x-ratelimit-remaining"] == "0"
    user = client.get(video.api_url(), headers={"Authorization": f"Bearer {tube.token('user')}"})
    assert user.status_code == 429 and len(tube.limited) == 2


def test_the_default_limit_is_50_calls_per_10_seconds(server: FileServer, client: Any) -> None:
    tube = FakeInstance(server)
    video = tube.publish()
    answer = client.get(video.api_url())
    assert answer.headers["x-ratelimit-limit"] == "50"
    assert answer.headers["x-ratelimit-remaining"] == "49"
    assert 8 <= int(answer.headers["x-ratelimit-reset"]) - time.time() <= 11


def test_the_window_opens_again(server: FileServer, client: Any) -> None:
    tube = FakeInstance(server, api_window=0.5, api_max=2)
    video = tube.publish()
    assert [client.get(video.api_url()).status_code for _ in range(3)] == [200, 200, 429]
    time.sleep(0.6)
    assert client.get(video.api_url()).status_code == 200


# -- files ---------------------------------------------------------------------------------------


def test_files_are_stored_under_random_names_and_downloaded_under_the_uuid(
    tube: FakeInstance, client: Any
) -> None:
    video = tube.publish(name="Vidéo à voir")
    playlist = client.get(video.api_url()).json()["streamingPlaylists"][0]
    file = next(f for f in playlist["files"] if f["resolution"]["id"] == 720)
    stored = file["fileUrl"].rsplit("/", 1)[1]
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}-720-fragmented\.mp4",
        stored,
    )
    assert video.uuid not in stored
    assert file["fileUrl"] == f"{tube.url}/static/streaming-playlists/hls/{video.uuid}/{stored}"
    assert (
        file["fileDownloadUrl"]
        == f"{tube.url}/download/streaming-playlists/hls/videos/{video.uuid}-720-fragmented.mp4"
    )
    assert (file["id"], file["size"], file["width"], file["height"]) == (
        video.file_ids[720],
        len(video.data[720]),
        1280,
        720,
    )
    assert (file["hasAudio"], file["hasVideo"], file["storage"]) == (True, True, 0)
    download = client.get(file["fileDownloadUrl"])
    static = client.get(file["fileUrl"])
    assert download.content == static.content == video.data[720]
    size, mtime = re.fullmatch(r'W/"([0-9a-f]+)-([0-9a-f]+)"', download.headers["etag"]).groups()  # type: ignore[union-attr]
    assert int(size, 16) == len(video.data[720]) and int(mtime, 16) == video.files[720].mtime_ms
    assert download.headers["last-modified"].endswith(" GMT")
    assert download.headers["accept-ranges"] == "bytes"
    assert download.headers["cache-control"] == "public, max-age=0"
    # "é" and "à" are Latin-1: content-disposition writes them as is, one byte each
    raw = {name.lower(): value for name, value in download.headers.raw}[b"content-disposition"]
    assert raw == 'attachment; filename="Vidéo à voir-720p-hls.mp4"'.encode("latin-1")
    assert "content-disposition" not in static.headers


def test_the_download_route_takes_any_id_form_and_ignores_the_extension(
    tube: FakeInstance, client: Any
) -> None:
    video = tube.publish(heights=(720, 360))
    base = f"{tube.url}/download/streaming-playlists/hls/videos"
    for key, extension in [
        (video.short_uuid, "webm"),
        (str(video.id), "mp4"),
        (video.uuid.upper(), "mkv"),
    ]:
        answer = client.get(f"{base}/{key}-360-fragmented.{extension}")
        assert (answer.status_code, answer.content) == (200, video.data[360])
    missing = client.get(f"{base}/{video.uuid}-1080-fragmented.mp4")
    assert (missing.status_code, missing.json()["detail"]) == (404, "Video file not found")
    assert client.get(f"{base}/{PAIR[0]}-360-fragmented.mp4").json()["detail"] == "Video not found"


def test_resume_is_judged_as_express_send_judges_if_range(tube: FakeInstance, client: Any) -> None:
    video = tube.publish(heights=(360,))
    url = video.download_url(360)
    first = client.get(url)
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    # send's isRangeFresh looks for the ETag as a substring: a weak one matches, against RFC 9110
    weak = client.get(url, headers={"Range": "bytes=1000-", "If-Range": etag})
    assert (weak.status_code, weak.content) == (206, video.data[360][1000:])
    assert (
        weak.headers["content-range"]
        == f"bytes 1000-{len(video.data[360]) - 1}/{len(video.data[360])}"
    )
    dated = client.get(url, headers={"Range": "bytes=1000-", "If-Range": modified})
    assert dated.status_code == 206
    changed = client.get(url, headers={"Range": "bytes=1000-", "If-Range": 'W/"1-1"'})
    assert (changed.status_code, len(changed.content)) == (200, len(video.data[360]))
    assert client.get(url, headers={"If-None-Match": etag.removeprefix("W/")}).status_code == 304


def test_segments_are_keyed_by_the_stored_name_and_leave_out_the_init_segment(
    tube: FakeInstance, client: Any
) -> None:
    video = tube.publish(heights=(720, 360), tamper_segment_of=360)
    playlist = client.get(video.api_url()).json()["streamingPlaylists"][0]
    answer = client.get(playlist["segmentsSha256Url"])
    assert re.search(r"/[0-9a-f-]{36}-segments-sha256\.json$", playlist["segmentsSha256Url"])
    assert answer.headers["content-type"] == "application/json; charset=UTF-8"
    assert answer.content.endswith(b"}\n") and b": " not in answer.content  # outputJSON: compact
    segments = answer.json()
    stored = {f["fileUrl"].rsplit("/", 1)[1]: f["resolution"]["id"] for f in playlist["files"]}
    assert set(segments) == set(stored)
    for name, height in stored.items():
        data = video.data[height]
        ranges = [tuple(int(n) for n in key.split("-")) for key in segments[name]]
        assert ranges[0][0] > 0 and data[4:8] == b"ftyp"  # the init segment is not checksummed
        assert ranges[-1][1] == len(data) - 1
        assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(ranges))
        good = [
            hashlib.sha256(data[s : e + 1]).hexdigest() == h
            for (s, e), h in zip(ranges, segments[name].values(), strict=True)
        ]
        assert good == ([False] + [True] * (len(good) - 1) if height == 360 else [True] * len(good))


def test_split_audio_publishes_real_video_only_and_audio_only_files(
    tube: FakeInstance, client: Any, tmp_path: Path
) -> None:
    video = tube.publish(split_audio=True, heights=(720, 360))
    files = client.get(video.api_url()).json()["streamingPlaylists"][0]["files"]
    assert [f["resolution"] for f in files] == [
        {"id": 720, "label": "720p"},
        {"id": 360, "label": "360p"},
        {"id": 0, "label": "Audio"},
    ]
    assert [(f["hasAudio"], f["hasVideo"]) for f in files] == [
        (False, True),
        (False, True),
        (True, False),
    ]
    assert [f["id"] for f in files] == [video.file_ids[720], video.file_ids[360], video.file_ids[0]]
    picture = client.get(files[0]["fileDownloadUrl"]).content
    sound = client.get(files[2]["fileDownloadUrl"]).content
    assert (picture, sound) == (video.data[720], video.audio)
    assert streams_of(picture, tmp_path, "v.mp4") == ["video"]  # no merging on this route
    assert streams_of(sound, tmp_path, "a.mp4") == ["audio"]
    segments = client.get(
        client.get(video.api_url()).json()["streamingPlaylists"][0]["segmentsSha256Url"]
    ).json()
    assert files[2]["fileUrl"].rsplit("/", 1)[1] in segments  # the audio file has its own key
    assert len(next(iter(segments.values()))) == 2  # 5 s cut in 4 s segments by ffmpeg's HLS muxer


def test_the_generate_route_muxes_one_video_and_one_audio_file(
    tube: FakeInstance, client: Any, tmp_path: Path
) -> None:
    video = tube.publish(split_audio=True, heights=(720, 360))
    ids = video.file_ids
    url = f"{tube.url}/download/videos/generate/{video.uuid}"
    merged = client.get(url, params=[("videoFileIds", ids[360]), ("videoFileIds", ids[0])])
    assert merged.status_code == 200
    assert (
        merged.headers["transfer-encoding"] == "chunked" and "content-length" not in merged.headers
    )
    assert "accept-ranges" not in merged.headers and "etag" not in merged.headers
    assert (
        merged.headers["content-disposition"]
        == f'attachment; filename="Vid%C3%A9o%20{video.uuid[:8]}.mp4'
    )
    assert sorted(streams_of(merged.content, tmp_path, "m.mp4")) == ["audio", "video"]
    raw = client.get(url + ".m4a", params={"videoFileIds": ids[0]})
    assert raw.headers["content-type"] == "audio/mp4" and "content-disposition" not in raw.headers
    two_videos = client.get(url, params=[("videoFileIds", ids[720]), ("videoFileIds", ids[360])])
    assert two_videos.status_code == 400
    assert client.get(url, params={"videoFileIds": 999_999}).status_code == 404
    assert client.get(url, params=[("videoFileIds", i) for i in (1, 2, 3)]).status_code == 400


# -- object storage ------------------------------------------------------------------------------


def test_object_storage_downloads_redirect_to_a_one_use_presigned_url(
    tube: FakeInstance, client: Any
) -> None:
    video = tube.publish(storage="object", heights=(720, 360))
    redirect = client.get(video.download_url(720))
    assert redirect.status_code == 302
    location = redirect.headers["location"]
    assert re.match(
        rf"{re.escape(tube.url)}/streaming-playlists/hls/{video.uuid}/[0-9a-f-]{{36}}-720-fragmented\.mp4\?",
        location,
    )
    query = httpx.URL(location).params
    assert query["X-Amz-Expires"] == "86400" and len(query["X-Amz-Signature"]) == 64
    first = client.get(location)
    assert (first.status_code, first.content) == (200, video.data[720])
    assert re.fullmatch(r'"[0-9a-f]{32}"', first.headers["etag"])  # S3: strong, quoted MD5
    assert (
        first.headers["content-disposition"]
        == f'attachment; filename="Vid%C3%A9o%20{video.uuid[:8]}-720p-hls.mp4"'
    )
    again = client.get(location, headers={"Range": "bytes=100-"})
    assert again.status_code == 403 and b"<Code>AccessDenied</Code>" in again.content
    fresh = client.get(video.download_url(720)).headers["location"]
    assert fresh != location
    resumed = client.get(fresh, headers={"Range": "bytes=100-", "If-Range": first.headers["etag"]})
    assert (resumed.status_code, resumed.content) == (206, video.data[720][100:])
    followed = client.get(video.download_url(360), follow_redirects=True)
    assert followed.content == video.data[360]
    public = client.get(
        client.get(video.api_url()).json()["streamingPlaylists"][0]["files"][0]["fileUrl"]
    )
    assert (public.status_code, public.content) == (200, video.data[720])  # a public bucket URL


def test_several_uses_can_be_allowed(server: FileServer, client: Any) -> None:
    tube = FakeInstance(server, presigned_uses=2)
    video = tube.publish(storage="object", heights=(360,))
    location = client.get(video.download_url(360)).headers["location"]
    assert [client.get(location).status_code for _ in range(3)] == [200, 200, 403]


def test_faults_fire_on_the_fake_s_files_and_a_new_transcode_changes_the_validators(
    tube: FakeInstance, client: Any
) -> None:
    video = tube.publish(heights=(720, 360))
    served = video.files[360].download
    served.drop_times, served.drop_after = 1, 1000
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(video.download_url(360))
    before = client.get(video.download_url(360))
    assert before.content == video.data[360]
    old_name, old_id = video.files[360].stored_name, video.files[360].id
    new = tube.replace(video, 360, tagged(video.data[360], b"re-encoded"))
    after = client.get(video.download_url(360))
    assert after.content == new.data and after.headers["etag"] != before.headers["etag"]
    assert (new.stored_name, new.id) != (old_name, old_id)
    resumed = client.get(
        video.download_url(360), headers={"Range": "bytes=10-", "If-Range": before.headers["etag"]}
    )
    assert resumed.status_code == 200  # the weak ETag of the old file no longer matches
    tube.remove(video)
    assert client.get(video.api_url()).status_code == 404
    assert client.get(video.download_url(720)).status_code == 404


def test_private_files_on_object_storage_go_through_the_instance_s_proxy(
    tube: FakeInstance, client: Any
) -> None:
    video = tube.publish(privacy=4, storage="object", heights=(360,))
    user = {"Authorization": f"Bearer {tube.token('user')}"}  # internal: any account may see it
    document = client.get(video.api_url(), headers=user).json()
    file_url = document["streamingPlaylists"][0]["files"][0]["fileUrl"]
    assert file_url.startswith(
        f"{tube.url}/object-storage-proxy/streaming-playlists/hls/private/{video.uuid}/"
    )
    assert client.get(file_url).status_code == 403
    assert client.get(file_url, headers=user).content == video.data[360]
    bucket = file_url.replace("/object-storage-proxy", "").replace("/private", "")
    assert b"<Code>AccessDenied</Code>" in client.get(bucket).content  # a private ACL
    redirect = client.get(video.download_url(360), headers=user)
    assert client.get(redirect.headers["location"]).content == video.data[360]


# -- who may see what ----------------------------------------------------------------------------


def test_private_videos_need_a_token_that_may_see_them(tube: FakeInstance, client: Any) -> None:
    video = tube.publish(privacy=3, heights=(360,))
    anonymous = client.get(video.api_url())
    assert (anonymous.status_code, anonymous.json()["detail"], anonymous.json()["title"]) == (
        401,
        "Not authenticated",
        "Unauthorized",
    )
    user = client.get(video.api_url(), headers={"Authorization": f"Bearer {tube.token('user')}"})
    assert (user.status_code, user.json()["detail"]) == (
        403,
        "Cannot fetch information of private/internal/blocked video",
    )
    bad = client.get(video.api_url(), headers={"Authorization": "Bearer nope"})
    assert (bad.status_code, bad.json()["code"]) == (401, "invalid_token")
    admin = {"Authorization": f"Bearer {tube.token('admin')}"}
    document = client.get(video.api_url(), headers=admin).json()
    file_url = document["streamingPlaylists"][0]["files"][0]["fileUrl"]
    assert f"/static/streaming-playlists/hls/private/{video.uuid}/" in file_url
    forbidden = client.get(video.download_url(360))
    assert (forbidden.status_code, forbidden.text, forbidden.headers["content-type"]) == (
        403,
        "Forbidden",
        "text/plain; charset=utf-8",
    )
    assert client.get(video.download_url(360), headers=admin).content == video.data[360]
    assert client.get(file_url).status_code == 403
    token = client.post(video.api_url() + "/token", headers=admin).json()["files"]["token"]
    assert client.get(file_url, params={"videoFileToken": token}).content == video.data[360]


def test_password_videos_check_the_header_on_the_api_captions_and_downloads(
    tube: FakeInstance, client: Any, server: FileServer
) -> None:
    video = tube.publish(privacy=5, password="s3cret", heights=(360,), captions={"fr": "WEBVTT\n"})
    for path in (video.api_url(), video.api_url() + "/captions"):
        missing = client.get(path)
        assert (missing.status_code, missing.json()["code"]) == (403, "video_requires_password")
        assert (
            missing.json()["type"]
            == "https://docs.joinpeertube.org/api-rest-reference.html#section/Errors/video_requires_password"
        )
        assert "title" not in missing.json()
        wrong = client.get(path, headers={"x-peertube-video-password": "guess"})
        assert (wrong.status_code, wrong.json()["code"]) == (403, "incorrect_video_password")
        assert client.get(path, headers={"x-peertube-video-password": "s3cret"}).status_code == 200
    assert client.get(video.download_url(360)).text == "Forbidden"  # no credentials: bare 403
    wrong = client.get(video.download_url(360), headers={"x-peertube-video-password": "guess"})
    assert wrong.json()["code"] == "incorrect_video_password"
    right = client.get(video.download_url(360), headers={"x-peertube-video-password": "s3cret"})
    assert right.content == video.data[360]
    # Logged (the server logs a request once its answer is sent, so perhaps after the client
    # has read it: look for it rather than take the last one).
    deadline = time.monotonic() + 5
    while not any(
        r.status == 200 and r.headers.get("x-peertube-video-password") == "s3cret"
        for r in server.requests()
        if r.bare_path.startswith("/download/")
    ):
        assert time.monotonic() < deadline, "the download with the password was never logged"
        time.sleep(0.01)


# -- versions and odd states ---------------------------------------------------------------------


def test_the_old_web_video_link_answers_the_web_app_on_a_current_instance(
    tube: FakeInstance, client: Any
) -> None:
    video = tube.publish(heights=(720,))
    old = f"{tube.url}/download/videos/{video.uuid}-720.mp4"
    page = client.get(old)
    assert (page.status_code, page.headers["content-type"]) == (200, "text/html; charset=utf-8")
    assert page.text.startswith("<!doctype html>")
    assert page.headers["x-ratelimit-limit"] == "500"  # the web client's limiter
    refused = client.get(old, headers={"Accept": "video/mp4"})
    assert (refused.status_code, refused.content) == (406, b"")


def test_a_4x_video_has_web_videos_under_the_old_link(tube: FakeInstance, client: Any) -> None:
    video = tube.publish(version="4.3", heights=(720, 360))
    document = client.get(video.api_url()).json()
    links = [f["fileDownloadUrl"] for f in document["files"]]
    assert links == [f"{tube.url}/download/videos/{video.uuid}-{h}.mp4" for h in (720, 360)]
    assert "id" not in document["files"][0] and "hasAudio" not in document["files"][0]
    assert document["files"][0]["fileUrl"].startswith(f"{tube.url}/static/webseed/")
    web = client.get(links[0])
    assert web.status_code == 200 and web.headers["content-type"] == "video/mp4"
    assert web.content == video.web_files[720].data != video.data[720]


def test_lives_and_videos_to_transcode_have_no_files(tube: FakeInstance, client: Any) -> None:
    waiting = tube.publish(is_live=True, state=4)
    document = client.get(waiting.api_url()).json()
    assert (document["isLive"], document["streamingPlaylists"], document["files"]) == (True, [], [])
    assert client.get(waiting.download_url(1080)).text == "Not Found"
    running = tube.publish(is_live=True)
    playlists = client.get(running.api_url()).json()["streamingPlaylists"]
    assert playlists[0]["files"] == [] and playlists[0]["playlistUrl"].endswith("/master.m3u8")
    pending = tube.publish(state=2)
    document = client.get(pending.api_url()).json()
    assert (document["state"], document["waitTranscoding"]) == (
        {"id": 2, "label": "To transcode"},
        True,
    )
    assert document["streamingPlaylists"] == []


@pytest.mark.parametrize(
    ("fixture", "options"),
    [
        ("v4-video.json", {"version": "4.3", "heights": (720, 360), "captions": {"fr": ""}}),
        ("v7-video.json", {"version": "7.1"}),
        (
            "v7-video-split-audio.json",
            {"version": "7.1", "split_audio": True, "heights": (720, 360)},
        ),
        ("v8-video.json", {"version": "8.0", "storage": "object", "heights": (720, 360)}),
    ],
)
def test_answers_have_the_fixture_shapes(
    tube: FakeInstance, client: Any, fixture: str, options: dict[str, Any]
) -> None:
    expected = json.loads((FIXTURES / fixture).read_text())
    assert expected["_source"]
    video = tube.publish(**options)
    assert shape(client.get(video.api_url()).json()) == shape(expected)


@pytest.mark.parametrize("version", ["4", "7.0", "7.1", "8"])
def test_captions_have_the_fixture_shapes(tube: FakeInstance, client: Any, version: str) -> None:
    expected = json.loads((FIXTURES / f"v{version}-captions.json").read_text())
    storage = "object" if version == "8" else "local"
    video = tube.publish(version={"4": "4.3", "8": "8.0"}.get(version, version), heights=(360,),
                         storage=storage, captions={"fr": "WEBVTT\n\n00:00.000 --> 00:01.000\nSalut\n"})  # type: ignore[arg-type]  # fmt: skip
    captions = client.get(video.api_url() + "/captions").json()
    assert shape(captions) == shape(expected)
    item = captions["data"][0]
    if version == "8":
        assert item["captionPath"] is None
    url = item.get("fileUrl") or tube.url + item["captionPath"]
    answer = client.get(url)
    assert answer.text.startswith("WEBVTT")


def test_caption_languages_are_peertube_ids(tube: FakeInstance) -> None:
    tube.publish(
        heights=(360,), captions={"es-419": "WEBVTT\n", "zh-Hans": "WEBVTT\n", "pt": "WEBVTT\n"}
    )
    with pytest.raises(ValueError, match="pt-BR"):
        tube.publish(heights=(360,), captions={"pt-BR": "WEBVTT\n"})


def test_a_8x_answer_lists_thumbnails_and_embeds_by_short_uuid(
    tube: FakeInstance, client: Any
) -> None:
    video = tube.publish(version="8.0", heights=(360,))
    document = client.get(video.api_url()).json()
    assert [(t["width"], t["height"]) for t in document["thumbnails"]] == [(280, 157), (850, 480)]
    assert client.get(document["thumbnails"][1]["fileUrl"]).status_code == 200
    assert document["embedPath"] == f"/videos/embed/{video.short_uuid}"
    assert document["streamingPlaylists"][0]["files"][0]["playlistUrl"].endswith("-360.m3u8")


def test_pages_and_a_fiche_point_at_the_video(tube: FakeInstance, client: Any) -> None:
    video = tube.publish(heights=(1080,))
    for url in (video.embed_url(), video.embed_url(short=True), video.watch_url()):
        assert client.get(url).status_code == 200
    assert client.get(f"{tube.url}/w/{PAIR[1]}").status_code == 404
    fiche = video.fiche(short=True)
    assert f"videoEmbedSrc: {tube.url}/videos/embed/{video.short_uuid}\n" in fiche
    assert f"videoDLHref: {video.download_url(1080)}\n" in fiche


# -- the server's routes -------------------------------------------------------------------------


def test_routes_fall_through_to_files_and_the_log_keeps_queries(
    server: FileServer, client: Any
) -> None:
    seen: list[Call] = []

    def handler(call: Call) -> Reply | None:
        seen.append(call)
        return (
            Reply(201, b"made", [("Content-Type", "text/plain")])
            if call.query.get("make") == ["1"]
            else None
        )

    server.route(re.compile(r"^/thing"), handler)
    server.add("/thing", b"file")
    assert client.get(server.url("/thing?make=1")).text == "made"
    assert client.get(server.url("/thing?make=")).text == "file"
    assert client.post(server.url("/thing"), content=b"body").status_code == 404
    assert seen[-1].body == b"body" and seen[0].headers.get("HOST")
    logged = server.requests()
    assert [(r.bare_path, r.query, r.status) for r in logged] == [
        ("/thing", {"make": ["1"]}, 201), ("/thing", {"make": [""]}, 200), ("/thing", {}, 404),
    ]  # fmt: skip
    assert server.requests("/thing?make=1")[0].path == "/thing?make=1"
    server.reset()
    assert server.routes == []
