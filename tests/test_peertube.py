"""PeerTube-aware downloads: against a fake instance as strict as a real one
(``tests/peertube.py``), and against plain hosts that are no PeerTube instance."""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import bagit
import pytest
from click.testing import CliRunner

from archiver.choose import Rendition, best_under, kit_margin, kit_overhead, plan_fit
from archiver.cli import cli
from archiver.errors import UsageError
from archiver.fetch.peertube import parse_video
from archiver.kit.pages import collation_key
from archiver.units import format_bytes

from .conftest import chromium, content_of, kit_folder, stored, tagged
from .media import make_mp4, require
from .peertube import FakeInstance, PublishedVideo
from .peertube_api import problem
from .peertube_http import PROBLEM_TYPE
from .server import Call, FileServer, Reply

FIXTURES = Path(__file__).parent / "fixtures" / "peertube"
FIXTURE_HOST = "https://tube.example.org"  # the host the fixtures were written with

VTT = """WEBVTT

1
00:00:00.000 --> 00:00:00.500
Bonjour à tous.

2
00:00:00.500 --> 00:00:01.500
<b>Différencier</b>, c’est s’adapter.
"""


def run(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def instance(server: FileServer) -> FakeInstance:
    """A PeerTube 7.1 instance whose API window is 2 s, not 10: the tests stay fast."""
    return FakeInstance(server, api_window=2.0)


def fiche(tmp_path: Path, video: PublishedVideo, text: str | None = None) -> Path:
    """A fiche as the producer writes them (an embed URL and the 1080p download link), or
    ``text``, named after the video."""
    folder = tmp_path / "fiches"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{video.uuid}.md"
    path.write_text(video.fiche() if text is None else text, encoding="utf-8")
    return path


def path_of(url: str) -> str:
    return urlsplit(url).path


def downloads(server: FileServer) -> list[str]:
    return [r.bare_path for r in server.requests() if r.bare_path.startswith("/download/")]


def sync_args(tmp_path: Path, *extra: str | Path) -> list[str | Path]:
    return ["sync", tmp_path / "fiches", "--archive", tmp_path / "archive", "--kit",
            tmp_path / "kit", "--retries", "0", "-q", *extra]  # fmt: skip


def held(archive: Path) -> dict[str, tuple[int | None, str]]:
    """The video file the archive holds for each item (its poster and captions aside)."""
    db = sqlite3.connect(archive / "catalog.sqlite")
    try:
        rows = db.execute(
            "SELECT item_id, resolution, url FROM files WHERE current=1 AND role='video'"
        ).fetchall()
    finally:
        db.close()
    return {item: (resolution, url) for item, resolution, url in rows}


def segments_checked(archive: Path) -> list[str]:
    db = sqlite3.connect(archive / "catalog.sqlite")
    try:
        rows = db.execute("SELECT segments FROM files WHERE current=1 AND role='video'")
        return [row[0] for row in rows]
    finally:
        db.close()


# -- pure parts --------------------------------------------------------------------------------


def fixture(name: str) -> dict[str, Any]:
    """A real-shaped answer of ``GET /api/v1/videos/{id}`` (tests/fixtures/peertube)."""
    document: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return document


def test_parse_video_reads_every_resolution_and_skips_audio() -> None:
    document = fixture("v7-video.json")
    info = parse_video(document, FIXTURE_HOST)
    assert [f.resolution for f in info.files] == [360, 480, 720, 1080]
    assert [f.size for f in info.files] == [80_000, 120_000, 250_000, 400_000]
    (playlist,) = document["streamingPlaylists"]
    assert info.files[0].segments_url == playlist["segmentsSha256Url"]
    raw_360 = next(f for f in playlist["files"] if f["resolution"]["id"] == 360)
    assert info.files[0].url == raw_360["fileDownloadUrl"]  # downloaded under the video's UUID
    assert info.files[0].stored_name == raw_360["fileUrl"].rpartition("/")[2]  # stored name
    assert info.preview_url == FIXTURE_HOST + str(document["previewPath"])
    assert info.duration == 12.0
    offered = [f.rendition for f in info.files]

    def best(offered: list[Rendition], cap: int | None) -> int:
        chosen = best_under(offered, cap)
        assert chosen is not None
        return chosen.height

    assert (best(offered, 480), best(offered, 700), best(offered, None)) == (480, 480, 1080)
    assert best(offered, 240) == 360  # none is low enough: the closest

    # Sound stored apart (split_audio_and_video): the audio-only file (resolution 0) is never
    # a choice, even under a cap no picture is under; it is the sound joined to the choice.
    split = parse_video(fixture("v7-video-split-audio.json"), FIXTURE_HOST)
    assert [f.resolution for f in split.files] == [360, 720]
    assert split.audio is not None and split.audio.resolution == 0
    pictures = [f.rendition for f in split.files]
    assert (best(pictures, 240), best(pictures, None)) == (360, 720)
    assert split.sound_for(split.files[0]) == split.audio


def ladder(*sizes: tuple[int, int]) -> list[Rendition]:
    return [Rendition(height=h, size=s, key=f"https://x.org/{h}") for h, s in sizes]


def test_plan_fit_lowers_the_tallest_first_and_stays_even() -> None:
    options = {
        "a": ladder((1080, 100), (720, 60), (480, 30)),
        "b": ladder((1080, 90), (720, 50), (480, 25)),
        "c": ladder((720, 70), (480, 35)),
    }
    plan = plan_fit(options, budget=200, overhead=10)
    assert plan.total <= 200
    chosen = {item: r.height for item, r in plan.choices}
    assert chosen == {"a": 720, "b": 720, "c": 720}  # 10 + 60 + 50 + 70 = 190
    assert max(chosen.values()) - min(chosen.values()) <= 240


def test_plan_fit_says_the_smallest_size_reachable() -> None:
    options = {"a": ladder((720, 60), (360, 20)), "b": ladder((480, 30))}
    with pytest.raises(UsageError) as caught:
        plan_fit(options, budget=40, overhead=5)
    assert caught.value.message == (
        "the kit cannot fit in 40 B: even at the lowest resolutions it needs 55 B"
    )


# -- against the fake instance -----------------------------------------------------------------


def test_max_height_fetches_the_largest_resolution_under_the_cap(
    server: FileServer, tmp_path: Path
) -> None:
    tube = instance(server)
    video = tube.publish()
    fiche(tmp_path, video)
    assert run(*sync_args(tmp_path, "--max-height", "600")) == (0, "", "")
    resolution, url = held(tmp_path / "archive")[video.uuid]
    assert resolution == 480
    assert url == video.download_url(480)
    assert kit_video(tmp_path / "kit", video.uuid).read_bytes() == video.data[480]
    assert "· 480p" in (kit_folder(tmp_path / "kit", video.uuid) / "index.html").read_text()
    # a second run asks nothing: the API's answer is cached, the file held
    before = len(server.requests())
    assert run(*sync_args(tmp_path, "--max-height", "600")) == (0, "", "")
    assert len(server.requests()) == before


def test_fit_fills_a_budget_between_the_smallest_and_largest_totals(
    server: FileServer, tmp_path: Path
) -> None:
    tube = instance(server)
    videos = [tube.publish() for _ in range(3)]
    for video in videos:
        fiche(tmp_path, video)
    smallest = sum(len(v.data[360]) for v in videos)
    largest = sum(len(v.data[1080]) for v in videos)
    room = 340_000  # room for some videos above 360p, not all at 1080p
    assert smallest < room < largest
    budget = kit_overhead(3) + room  # pages, posters, and a cluster a file on a FAT32 key

    code, stdout, _ = run(*sync_args(tmp_path, "--fit", str(budget), "--dry-run"))
    assert code == 0
    lines = stdout.splitlines()
    # each video's planned rendition, the kit's total, each video's files, the totals, the kit
    assert len(lines) == 3 + 1 + 3 + 2
    assert lines[3].startswith("Total: ")
    # The plan says the margin the kit's final check keeps: one number for both.
    margin = format_bytes(kit_margin(3))
    assert f" of {format_bytes(budget)}, {margin} kept for the file system (" in lines[3]
    assert lines[-2].startswith("Dry run: 3 videos; fetch ")
    assert downloads(server) == []  # nothing fetched

    assert run(*sync_args(tmp_path, "--fit", str(budget))) == (0, "", "")
    kit = tmp_path / "kit"
    size = sum(p.stat().st_size for p in kit.rglob("*") if p.is_file())
    assert size <= budget, f"the kit is {size} bytes for a {budget}-byte budget"
    resolutions = [resolution for resolution, _ in held(tmp_path / "archive").values()]
    assert any(r is not None and r > 360 for r in resolutions), resolutions
    bagit.Bag(str(kit)).validate()


def test_the_api_is_asked_about_several_videos_at_once(server: FileServer, tmp_path: Path) -> None:
    def far_away(call: Call) -> None:
        time.sleep(0.3)  # an instance far away: each API answer takes 0.3 s...
        # ...then the instance answers it (the next route)

    server.route("/api/", far_away)  # before the instance's own route
    tube = instance(server)
    videos = [tube.publish() for _ in range(4)]
    for video in videos:
        fiche(tmp_path, video)
    code, stdout, _ = run(*sync_args(tmp_path, "--max-height", "480", "--per-host", "4",
                                     "--dry-run"))  # fmt: skip
    assert code == 0
    assert len(stdout.splitlines()) == 2 * len(videos) + 2  # plans, files, totals, the kit
    asked = [r for r in server.requests() if r.method != "HEAD"]  # HEAD: the posters' sizes
    assert len(asked) == 2 * len(videos)  # each video, then its captions
    assert all(r.bare_path.startswith("/api/") for r in asked)
    assert server.peak >= 2  # one after the other, never more than one would be answered


def test_fit_that_cannot_be_reached_exits_2_with_the_smallest_size(
    server: FileServer, tmp_path: Path
) -> None:
    tube = instance(server)
    fiche(tmp_path, tube.publish())
    code, _, stderr = run(*sync_args(tmp_path, "--fit", "50k"))
    assert code == 2
    assert stderr.startswith(
        "Error: the kit cannot fit in 50.0 KiB: even at the lowest resolutions it needs "
    )
    assert downloads(server) == []


def test_tampered_segment_checksums_fail_the_item_and_quarantine_it(
    server: FileServer, tmp_path: Path
) -> None:
    tube = instance(server)
    video = tube.publish(heights=(720, 360), tamper_segment_of=360)
    fiche(tmp_path, video)
    # The instance's checksums are keyed by the stored name and start after the init segment.
    span, expected = next(iter(video.segments[video.files[360].stored_name].items()))
    code, _, stderr = run(*sync_args(tmp_path, "--max-height", "360"))
    assert code == 1
    assert f"({video.uuid}, video)" in stderr
    assert f"segment sha256 mismatch: expected {expected} for bytes {span}, got " in stderr
    assert held(tmp_path / "archive") == {}
    assert len(list((tmp_path / "archive" / "quarantine" / video.uuid).iterdir())) == 1


def test_right_segment_checksums_are_checked(server: FileServer, tmp_path: Path) -> None:
    tube = instance(server)
    video = tube.publish(heights=(720, 360))
    fiche(tmp_path, video)
    assert run(*sync_args(tmp_path, "--max-height", "360")) == (0, "", "")
    asked = [r.path for r in server.requests() if r.bare_path.endswith(video.segments_name)]
    assert len(asked) == 1
    # checked, found under the stored name: not merely asked for
    assert segments_checked(tmp_path / "archive") == ["verified"]


@pytest.mark.parametrize("status", [401, 403, 404])
def test_an_error_that_is_not_peertubes_means_no_api_there(
    server: FileServer, tmp_path: Path, status: int
) -> None:
    """PeerTube's own errors are problem+json (server/core/middlewares/error.ts); a plain-text
    4xx comes from a host that is no PeerTube instance: the fiche's link is all there is, so it
    is fetched without a cap, and refused, named, over one (refusals by a real instance are in
    tests/test_peertube_real.py)."""
    uuid = "9c9de5e8-0a1e-484a-b099-e80766180a6d"
    link = f"/download/streaming-playlists/hls/videos/{uuid}-1080-fragmented.mp4"
    data = content_of(400_000, 1)
    server.add(link, data)  # a mirror whose paths hold the UUID
    server.add(f"/api/v1/videos/{uuid}", b"", statuses=[status] * 100)  # plain text, not JSON
    folder = tmp_path / "fiches"
    folder.mkdir()
    (folder / f"{uuid}.md").write_text(
        f"---\ntitle: Vidéo {uuid[:8]}\narea: Domaine 1\n"
        f"videoEmbedSrc: {server.url(f'/videos/embed/{uuid}')}\n"
        f"videoDLHref: {server.url(link)}\n---\n\n## Script\n\nTexte.\n",
        encoding="utf-8",
    )
    code, _, stderr = run(*sync_args(tmp_path, "--max-height", "480"))
    assert code == 1
    assert stderr.endswith(
        f"no PeerTube API there (HTTP {status}); the fiche's link is 1080p,"
        " not within --max-height 480\n"
    )
    assert run(*sync_args(tmp_path)) == (0, "", "")
    assert stored(tmp_path / "archive", uuid).read_bytes() == data


def test_a_broken_api_never_lets_a_video_over_the_cap(server: FileServer, tmp_path: Path) -> None:
    """An API that answers 500 says nothing of the video: the fiche's 1080p link is not
    within --max-height 480, so the video fails, named; within the cap it is fetched.

    The 500 is PeerTube's own: its last error handler (server.ts) answers what a route threw
    with ``res.fail({status: 500, message: err.message, type: err.name})``, problem+json."""

    def database_down(call: Call) -> Reply | None:
        if not call.path.startswith("/api/v1/videos/"):
            return None
        body = problem(500, "connect ECONNREFUSED 127.0.0.1:5432",
                       code="SequelizeConnectionRefusedError")  # fmt: skip
        return Reply(500, body, [PROBLEM_TYPE])

    server.route("/api/", database_down)  # before the instance's own route
    tube = instance(server)
    video = tube.publish()
    fiche(tmp_path, video)
    code, _, stderr = run(*sync_args(tmp_path, "--max-height", "480"))
    assert code == 1
    assert stderr.endswith(
        "the instance's API answered HTTP 500; the fiche's link is 1080p,"
        " not within --max-height 480\n"
    )
    assert held(tmp_path / "archive") == {}
    code, _, stderr = run(*sync_args(tmp_path, "--max-height", "1080"))
    assert code == 0, stderr
    resolution, url = held(tmp_path / "archive")[video.uuid]
    assert resolution is None
    assert url == video.download_url(1080)
    assert stored(tmp_path / "archive", video.uuid).read_bytes() == video.data[1080]


def test_unreachable_api_falls_back_to_the_fiche_link(server: FileServer, tmp_path: Path) -> None:
    tube = instance(server)
    video = tube.publish()
    away = f"http://tube.example.invalid/videos/embed/{video.uuid}"
    fiche(tmp_path, video, video.fiche().replace(video.embed_url(), away))
    assert run(*sync_args(tmp_path)) == (0, "", "")
    assert held(tmp_path / "archive")[video.uuid] == (None, video.download_url(1080))


def test_fiche_without_uuid_asks_no_api(server: FileServer, tmp_path: Path) -> None:
    server.add("/videos/plain.mp4", content_of(90_000))
    folder = tmp_path / "fiches"
    folder.mkdir()
    (folder / "plain.md").write_text(
        f"---\ntitle: Sans UUID\nvideoDLHref: {server.url('/videos/plain.mp4')}\n---\n",
        encoding="utf-8",
    )
    assert run(*sync_args(tmp_path, "--max-height", "480")) == (0, "", "")
    assert [r.path for r in server.requests()] == ["/videos/plain.mp4"]


def test_a_truncated_mp4_is_refused_and_kept_out_of_the_kit(
    server: FileServer, tmp_path: Path
) -> None:
    whole = content_of(200_000)
    server.add("/videos/cut.mp4", whole[:150_000])  # served whole, but the MP4 is cut
    folder = tmp_path / "fiches"
    folder.mkdir()
    (folder / "cut.md").write_text(
        f"---\ntitle: Coupée\nvideoDLHref: {server.url('/videos/cut.mp4')}\n---\n",
        encoding="utf-8",
    )
    code, _, stderr = run(*sync_args(tmp_path))
    assert code == 1
    assert stderr.startswith(f"Error: Coupée (cut, video): {server.url('/videos/cut.mp4')}: "
                             "not a playable MP4: truncated: the last 'free' box ends ")  # fmt: skip
    assert held(tmp_path / "archive") == {}
    assert not list((tmp_path / "kit" / "data").glob("videos/*"))  # no folder for it
    assert list((tmp_path / "archive" / "quarantine" / "cut").iterdir())


def test_the_instance_preview_is_the_poster_and_captions_are_tracks(
    server: FileServer, tmp_path: Path
) -> None:
    tube = instance(server)
    video = tube.publish(heights=(480, 360), captions={"fr": VTT})
    fiche(tmp_path, video)
    assert run(*sync_args(tmp_path, "--max-height", "480")) == (0, "", "")
    folder = kit_folder(tmp_path / "kit", video.uuid)
    assert (folder / "poster.jpg").read_bytes() == video.preview
    assert (folder / "captions-fr.vtt").read_text() == VTT
    page = (folder / "index.html").read_text()
    assert "Sous-titres : Français" in page
    bagit.Bag(str(tmp_path / "kit")).validate()

    with chromium() as browser:
        tab = browser.new_page()
        problems: list[str] = []
        tab.on("pageerror", lambda error: problems.append(str(error)))
        tab.on("request", lambda r: None if r.url.startswith("file://") else problems.append(r.url))
        tab.goto((folder / "index.html").as_uri())
        tab.wait_for_function("() => document.querySelector('video').readyState >= 1")
        tracks = tab.evaluate(
            """() => Array.from(document.querySelector('video').textTracks).map(t => ({
                language: t.language, label: t.label, mode: t.mode,
                cues: Array.from(t.cues).map(c => [c.startTime, c.endTime, c.text])}))"""
        )
    assert tracks == [
        {
            "language": "fr",
            "label": "Français",
            "mode": "showing",
            "cues": [
                [0.0, 0.5, "Bonjour à tous."],
                [0.5, 1.5, "<b>Différencier</b>, c’est s’adapter."],
            ],
        }
    ]
    assert problems == []


def test_a_missing_preview_is_a_warning_not_a_failure(server: FileServer, tmp_path: Path) -> None:
    def lost(call: Call) -> Reply:
        return Reply(404, b"")  # what the instance's lazy-static answers for a file it lacks

    server.route("/lazy-static/previews/", lost)  # before the instance's own route
    tube = instance(server)
    video = tube.publish(heights=(360,))  # the API names a preview the instance lacks
    fiche(tmp_path, video)
    code, _, stderr = run(*sync_args(tmp_path, "--max-height", "360"))
    assert (code, stderr) == (0, "")
    assert server.requests(f"/lazy-static/previews/{video.preview_name}")  # asked, not found
    poster = kit_folder(tmp_path / "kit", video.uuid) / "poster.jpg"
    assert poster.exists()  # ffmpeg's
    assert poster.read_bytes() != video.preview


def test_vtt_parsing_skips_what_it_cannot_read() -> None:
    from archiver.kit.site import parse_vtt

    text = "WEBVTT\n\nNOTE a comment\n\n00:01.000 --> 00:00.500\nbackwards\n\n1:02:03.5 --> x\nbad\n\n01:00:00,000 --> 01:00:02,000 align:start\nHeure\n"
    assert parse_vtt(text) == ((3600.0, 3602.0, "Heure"),)


def test_package_fit_chooses_among_the_versions_held(server: FileServer, tmp_path: Path) -> None:
    tube = instance(server)
    videos = [tube.publish(heights=(1080, 360)) for _ in range(3)]
    for video in videos:
        fiche(tmp_path, video)
    # First at 360p, then at 1080p: the archive keeps both versions of each video.
    assert run(*sync_args(tmp_path, "--max-height", "360"))[0] == 0
    assert run(*sync_args(tmp_path))[0] == 0
    manifest = tmp_path / "archive" / "manifest.json"
    # Besides the plan's allowance for pages, posters and the file system (a 32 KiB cluster
    # a file and folder), room for one video at 1080p (400 kB) and two at 360p (80 kB), not more.
    assert {len(v.data[1080]) for v in videos} == {400_000}
    assert {len(v.data[360]) for v in videos} == {80_000}
    budget = kit_overhead(3) + 605_000
    kit = tmp_path / "usb"
    code, _, stderr = run("package", manifest, "--archive", tmp_path / "archive", "-o", kit,
                          "--fit", str(budget), "-q")  # fmt: skip
    assert (code, stderr) == (0, "")
    size = sum(p.stat().st_size for p in kit.rglob("*") if p.is_file())
    assert size <= budget
    shown = [(kit_folder(kit, v.uuid) / "index.html").read_text() for v in videos]
    assert sum("· 1080p" in page for page in shown) == 1  # the budget allows one at 1080p
    assert sum("· 360p" in page for page in shown) == 2
    bagit.Bag(str(kit)).validate()

    code, _, stderr = run("package", manifest, "--archive", tmp_path / "archive", "-o",
                          tmp_path / "small", "--fit", "100k")  # fmt: skip
    assert code == 2
    assert stderr.startswith("Error: the kit cannot fit in 100.0 KiB: even at the lowest")
    assert not (tmp_path / "small").exists()


# -- re-encoding, the last resort --------------------------------------------------------------


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> dict[int, bytes]:
    """Real 1-second MP4s as tall as their label: 720p and 360p."""
    folder = tmp_path_factory.mktemp("real")
    return {
        height: make_mp4(folder / f"{height}.mp4", seconds=1, width=height * 16 // 9,
                         height=height).read_bytes()
        for height in (720, 360)
    }  # fmt: skip


def probe_height(path: Path) -> int:
    """The height ffprobe reads: a witness independent of archiver's own reading."""
    done = subprocess.run(
        [require("ffprobe"), "-v", "error", "-select_streams", "v:0", "-show_entries",
         "stream=height", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return int(done.stdout.strip())


def kit_video(kit: Path, uuid: str) -> Path:
    """A video's MP4 in the kit, wherever the kit named its folder (from the title): where
    the kit's provenance.json places it."""
    records = json.loads((kit / "data" / "provenance.json").read_text(encoding="utf-8"))
    (path,) = [v["kit_video"]["path"] for v in records["videos"] if v["id"] == uuid]
    (video,) = (kit / path).parent.glob("*.mp4")
    return video


def test_transcode_re_encodes_only_what_no_offered_resolution_brings_under_the_cap(
    server: FileServer, tmp_path: Path, real: dict[int, bytes]
) -> None:
    tube = instance(server)
    only_tall = tube.publish(heights=(720,), videos=real)
    both = tube.publish(heights=(720, 360), videos=real)
    for video in (only_tall, both):
        fiche(tmp_path, video)

    code, stdout, _ = run(*sync_args(tmp_path, "--transcode", "360p", "--dry-run"))
    assert code == 0
    planned = {
        only_tall.name: f"{only_tall.name} ({only_tall.uuid}): 720p,"
        f" {format_bytes(len(real[720]))}; none offered at most 360p: re-encoded to 360p",
        both.name: f"{both.name} ({both.uuid}): 360p, {format_bytes(len(real[360]))}",
    }
    assert stdout.splitlines()[:2] == [planned[t] for t in sorted(planned, key=collation_key)]

    assert run(*sync_args(tmp_path, "--transcode", "360p")) == (0, "", "")
    assert set(downloads(server)) == {
        path_of(only_tall.download_url(720)),
        path_of(both.download_url(360)),
    }  # the 720p of the second video, which the instance offers at 360p, is never fetched
    kit = tmp_path / "kit"
    reencoded = kit_video(kit, only_tall.uuid)
    assert reencoded.read_bytes() != real[720]
    assert probe_height(reencoded) == 360
    assert "· 360p" in (reencoded.parent / "index.html").read_text()
    assert kit_video(kit, both.uuid).read_bytes() == real[360]  # the instance's own, as it was
    bagit.Bag(str(kit)).validate()


def padded(video: bytes, size: int, seed: int) -> bytes:
    """A real MP4 made ``size`` bytes long by a ``free`` box: what a re-encode sheds."""
    return tagged(video, random.Random(seed).randbytes(size - len(video) - 8))


def test_fit_re_encodes_the_largest_videos_when_even_the_lowest_do_not_fit(
    server: FileServer, tmp_path: Path, real: dict[int, bytes]
) -> None:
    tube = instance(server)
    sizes = [900_000, 700_000, 500_000]
    videos = []
    for number, size in enumerate(sizes):
        offered = {
            480: padded(real[360], size + 300_000, number),
            360: padded(real[360], size, number),
        }
        videos.append(tube.publish(heights=(480, 360), videos=offered))
    for video in videos:
        fiche(tmp_path, video)
    largest, middle, smallest = (v.uuid for v in videos)
    overhead = kit_overhead(3)
    budget = overhead + 1_400_000  # the lowest need 2.1 MB; the largest re-encoded, 1.2 MB
    assert run(*sync_args(tmp_path, "--fit", str(budget)))[0] == 2  # no re-encoding allowed

    code, stdout, _ = run(*sync_args(tmp_path, "--fit", str(budget), "--transcode", "360p",
                                     "--dry-run"))  # fmt: skip
    assert code == 0
    assert stdout.splitlines()[4].startswith("Over by 683.6 KiB at the lowest resolutions:")

    assert run(*sync_args(tmp_path, "--fit", str(budget), "--transcode", "360p")) == (0, "", "")
    kit = tmp_path / "kit"
    used = sum(f.stat().st_size for f in kit.rglob("*") if f.is_file())
    assert used <= budget
    # the largest re-encoded; that is enough: the others as offered
    as_offered = {video.uuid: kit_video(kit, video.uuid).read_bytes() == video.data[360]
                  for video in videos}  # fmt: skip
    assert as_offered == {largest: False, middle: True, smallest: True}
    assert probe_height(kit_video(kit, largest)) == 360
    bagit.Bag(str(kit)).validate()

    # package does the same from what the archive holds, reusing the re-encode it keeps
    usb = tmp_path / "usb"
    code, _, stderr = run("package", tmp_path / "archive" / "manifest.json", "--archive",
                          tmp_path / "archive", "-o", usb, "--fit", str(budget),
                          "--transcode", "360p", "-q")  # fmt: skip
    assert (code, stderr) == (0, "")
    for video in videos:
        assert kit_video(usb, video.uuid).read_bytes() == kit_video(kit, video.uuid).read_bytes()

    code, _, stderr = run(*sync_args(tmp_path, "--fit", str(overhead), "--transcode", "360p"))
    assert code == 2
    assert stderr.startswith(
        f"Error: the kit cannot fit in {format_bytes(overhead)}: even re-encoded to 360p it needs "
    )
