"""PeerTube-aware downloads against a fake instance on the loopback server."""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
import subprocess
from pathlib import Path

import bagit
import pytest
from click.testing import CliRunner

from archiver.choose import Rendition, best_under, kit_overhead, plan_fit
from archiver.cli import cli
from archiver.errors import UsageError
from archiver.fetch.peertube import parse_video
from archiver.units import format_bytes

from .conftest import content_of, tagged
from .media import make_jpeg, make_mp4, require
from .server import FileServer

UUIDS = [f"aaaaaaa{i}-bbbb-4ccc-8ddd-eeeeeeeeeeee" for i in range(1, 5)]
SIZES = {1080: 400_000, 720: 250_000, 480: 120_000, 360: 80_000}
SEGMENT = 50_000


VTT = """WEBVTT

1
00:00:00.000 --> 00:00:00.500
Bonjour à tous.

2
00:00:00.500 --> 00:00:01.500
<b>Différencier</b>, c’est s’adapter.
"""


@pytest.fixture(scope="module")
def preview(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return make_jpeg(tmp_path_factory.mktemp("preview") / "p.jpg").read_bytes()


def run(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def segments_of(data: bytes) -> dict[str, str]:
    return {
        f"{start}-{min(start + SEGMENT, len(data)) - 1}": hashlib.sha256(
            data[start : start + SEGMENT]
        ).hexdigest()
        for start in range(0, len(data), SEGMENT)
    }


def publish(
    server: FileServer,
    uuid: str,
    *,
    seed: int = 0,
    heights: tuple[int, ...] = (1080, 720, 480, 360),
    tamper: bool = False,
    api_status: int | None = None,
    api_delay: float = 0.0,
    preview: bytes | None = None,
    captions: dict[str, str] | None = None,
    videos: dict[int, bytes] | None = None,
) -> dict[int, bytes]:
    """A video on the fake instance: its files (``videos`` by height, when given), its
    segments' checksums, its API answer, and when given its preview image and captions
    (language → WebVTT text)."""
    files, playlist_files, segments = {}, [], {}
    for height in heights:
        data = (videos or {}).get(height) or content_of(SIZES[height], seed * 10 + height)
        name = f"{uuid}-{height}-fragmented.mp4"
        server.add(f"/download/streaming-playlists/hls/videos/{name}", data)
        files[height] = data
        segments[name] = segments_of(data)
        playlist_files.append(
            {
                "id": height,
                "resolution": {"id": height, "label": f"{height}p"},
                "size": len(data),
                "fps": 25,
                "fileUrl": server.url(f"/static/streaming-playlists/hls/{uuid}/{name}"),
                "fileDownloadUrl": server.url(f"/download/streaming-playlists/hls/videos/{name}"),
                "torrentUrl": server.url(f"/lazy-static/torrents/{height}.torrent"),
            }
        )
    if tamper:
        name = f"{uuid}-{heights[-1]}-fragmented.mp4"
        first = next(iter(segments[name]))
        segments[name][first] = "0" * 64
    segments_path = f"/static/streaming-playlists/hls/{uuid}/segments-sha256.json"
    server.add(segments_path, json.dumps(segments).encode(), content_type="application/json")
    document = {
        "id": 42,
        "uuid": uuid,
        "shortUUID": "x",
        "name": f"Vidéo {uuid[:8]}",
        "duration": 12,
        "previewPath": f"/lazy-static/previews/{uuid}.jpg",
        "licence": {"id": 4, "label": "Attribution - Non Commercial - No Derivatives"},
        "language": {"id": "fr", "label": "French"},
        "files": [
            {
                "resolution": {"id": 0, "label": "Audio"},
                "size": 1000,
                "fileDownloadUrl": server.url("/download/audio.mp4"),
            },
        ],
        "streamingPlaylists": [
            {
                "id": 1,
                "type": 1,
                "playlistUrl": server.url(f"/static/streaming-playlists/hls/{uuid}/master.m3u8"),
                "segmentsSha256Url": server.url(segments_path),
                "files": playlist_files,
            }
        ],
    }
    if preview is not None:
        server.add(f"/lazy-static/previews/{uuid}.jpg", preview, content_type="image/jpeg")
    listed = []
    for language, text in (captions or {}).items():
        path = f"/lazy-static/video-captions/{uuid}-{language}.vtt"
        server.add(path, text.encode(), content_type="text/vtt")
        listed.append(
            {"language": {"id": language, "label": language.upper()}, "captionPath": path}
        )
    server.add(
        f"/api/v1/videos/{uuid}/captions",
        json.dumps({"total": len(listed), "data": listed}).encode(),
        content_type="application/json",
    )
    body = json.dumps(document).encode()
    if api_status is None:
        server.add(f"/api/v1/videos/{uuid}", body, content_type="application/json", delay=api_delay)
    else:
        server.add(f"/api/v1/videos/{uuid}", body, statuses=[api_status] * 100)
    return files


def fiche(folder: Path, server: FileServer, uuid: str, *, instance: str | None = None) -> Path:
    """A fiche as Canopé writes them: an embed URL and the 1080p download link."""
    folder.mkdir(parents=True, exist_ok=True)
    base = instance or server.url("")
    path = folder / f"{uuid}.md"
    path.write_text(
        f"---\ntitle: Vidéo {uuid[:8]}\narea: Domaine 1\n"
        f"videoEmbedSrc: {base}/videos/embed/{uuid}\n"
        f"videoDLHref: {server.url(f'/download/streaming-playlists/hls/videos/{uuid}-1080-fragmented.mp4')}\n"
        "---\n\n## Script\n\nTexte.\n",
        encoding="utf-8",
    )
    return path


def sync_args(tmp_path: Path, *extra: str | Path) -> list[str | Path]:
    return ["sync", tmp_path / "fiches", "--archive", tmp_path / "archive", "--kit",
            tmp_path / "kit", "--retries", "0", "-q", *extra]  # fmt: skip


def held(archive: Path) -> dict[str, tuple[int | None, str]]:
    db = sqlite3.connect(archive / "catalog.sqlite")
    try:
        rows = db.execute("SELECT item_id, resolution, url FROM files WHERE current=1").fetchall()
    finally:
        db.close()
    return {item: (resolution, url) for item, resolution, url in rows}


# -- pure parts --------------------------------------------------------------------------------


def test_parse_video_reads_every_resolution_and_skips_audio(server: FileServer) -> None:
    publish(server, UUIDS[0])
    document = json.loads(server.files[f"/api/v1/videos/{UUIDS[0]}"].content)
    info = parse_video(document, server.url(""))
    assert [f.resolution for f in info.files] == [360, 480, 720, 1080]
    assert [f.size for f in info.files] == [80_000, 120_000, 250_000, 400_000]
    assert info.files[0].segments_url == server.url(
        f"/static/streaming-playlists/hls/{UUIDS[0]}/segments-sha256.json"
    )
    assert info.preview_url == server.url(f"/lazy-static/previews/{UUIDS[0]}.jpg")
    assert info.duration == 12.0
    offered = [f.rendition for f in info.files]

    def best(cap: int | None) -> int:
        chosen = best_under(offered, cap)
        assert chosen is not None
        return chosen.height

    assert (best(480), best(700), best(None)) == (480, 480, 1080)
    assert best(240) == 360  # none is low enough: the closest


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
    server: FileServer, tmp_path: Path, preview: bytes
) -> None:
    files = publish(server, UUIDS[0], preview=preview)
    fiche(tmp_path / "fiches", server, UUIDS[0])
    assert run(*sync_args(tmp_path, "--max-height", "600")) == (0, "", "")
    resolution, url = held(tmp_path / "archive")[UUIDS[0]]
    assert resolution == 480
    assert url.endswith(f"{UUIDS[0]}-480-fragmented.mp4")
    kit_video = tmp_path / "kit/data/videos" / UUIDS[0] / f"{UUIDS[0]}-480-fragmented.mp4"
    assert kit_video.read_bytes() == files[480]
    assert "· 480p" in (tmp_path / "kit/data/videos" / UUIDS[0] / "index.html").read_text()
    # a second run asks nothing: the API's answer is cached, the file held
    before = len(server.requests())
    assert run(*sync_args(tmp_path, "--max-height", "600")) == (0, "", "")
    assert len(server.requests()) == before


def test_fit_fills_a_budget_between_the_smallest_and_largest_totals(
    server: FileServer, tmp_path: Path
) -> None:
    for number, uuid in enumerate(UUIDS[:3]):
        publish(server, uuid, seed=number)
        fiche(tmp_path / "fiches", server, uuid)
    smallest, largest = 3 * SIZES[360], 3 * SIZES[1080]
    budget = 900_000  # room for some videos above 360p, not all at 1080p
    assert smallest < budget < largest

    code, stdout, _ = run(*sync_args(tmp_path, "--fit", str(budget), "--dry-run"))
    assert code == 0
    lines = stdout.splitlines()
    assert len(lines) == 4
    assert lines[-1].startswith("Total: ")
    assert not [r for r in server.requests() if "/download/" in r.path]  # nothing fetched

    assert run(*sync_args(tmp_path, "--fit", str(budget))) == (0, "", "")
    kit = tmp_path / "kit"
    size = sum(p.stat().st_size for p in kit.rglob("*") if p.is_file())
    assert size <= budget, f"the kit is {size} bytes for a {budget}-byte budget"
    resolutions = [resolution for resolution, _ in held(tmp_path / "archive").values()]
    assert any(r is not None and r > 360 for r in resolutions), resolutions
    bagit.Bag(str(kit)).validate()


def test_the_api_is_asked_about_several_videos_at_once(server: FileServer, tmp_path: Path) -> None:
    for uuid in UUIDS:
        publish(server, uuid, api_delay=0.3)  # an instance far away
        fiche(tmp_path / "fiches", server, uuid)
    code, stdout, _ = run(*sync_args(tmp_path, "--max-height", "480", "--per-host", "4",
                                     "--dry-run"))  # fmt: skip
    assert code == 0
    assert len(stdout.splitlines()) == len(UUIDS)
    assert len(server.requests()) == 2 * len(UUIDS)  # each video, then its captions
    assert server.peak >= 2  # one after the other, never more than one would be answered


def test_fit_that_cannot_be_reached_exits_2_with_the_smallest_size(
    server: FileServer, tmp_path: Path
) -> None:
    publish(server, UUIDS[0])
    fiche(tmp_path / "fiches", server, UUIDS[0])
    code, _, stderr = run(*sync_args(tmp_path, "--fit", "50k"))
    assert code == 2
    assert stderr.startswith(
        "Error: the kit cannot fit in 50.0 KiB: even at the lowest resolutions it needs "
    )
    assert not [r for r in server.requests() if "/download/" in r.path]


def test_tampered_segment_checksums_fail_the_item_and_quarantine_it(
    server: FileServer, tmp_path: Path
) -> None:
    publish(server, UUIDS[0], tamper=True, heights=(720, 360))
    fiche(tmp_path / "fiches", server, UUIDS[0])
    code, _, stderr = run(*sync_args(tmp_path, "--max-height", "360"))
    assert code == 1
    assert f"({UUIDS[0]}, video)" in stderr
    assert "segment sha256 mismatch: expected " + "0" * 64 + " for bytes 0-49999, got " in stderr
    assert held(tmp_path / "archive") == {}
    assert len(list((tmp_path / "archive" / "quarantine" / UUIDS[0]).iterdir())) == 1


def test_right_segment_checksums_are_checked(server: FileServer, tmp_path: Path) -> None:
    publish(server, UUIDS[0], heights=(720, 360))
    fiche(tmp_path / "fiches", server, UUIDS[0])
    assert run(*sync_args(tmp_path, "--max-height", "360")) == (0, "", "")
    asked = [r.path for r in server.requests() if r.path.endswith("segments-sha256.json")]
    assert len(asked) == 1


@pytest.mark.parametrize("status", [401, 403, 404])
def test_an_error_that_is_not_peertubes_means_no_api_there(
    server: FileServer, tmp_path: Path, status: int
) -> None:
    """PeerTube's own errors are problem+json (server/core/middlewares/error.ts); a plain-text
    4xx comes from a host that is no PeerTube instance: the fiche's link is all there is, so it
    is fetched without a cap, and refused, named, over one (refusals by a real instance are in
    tests/test_peertube_real.py)."""
    files = publish(server, UUIDS[0], api_status=status)
    fiche(tmp_path / "fiches", server, UUIDS[0])
    code, _, stderr = run(*sync_args(tmp_path, "--max-height", "480"))
    assert code == 1
    assert stderr.endswith(
        f"no PeerTube API there (HTTP {status}); the fiche's link is 1080p,"
        " not within --max-height 480\n"
    )
    assert run(*sync_args(tmp_path)) == (0, "", "")
    assert (
        tmp_path / "archive/media" / UUIDS[0] / f"{UUIDS[0]}-1080-fragmented.mp4"
    ).read_bytes() == files[1080]


def test_a_broken_api_never_lets_a_video_over_the_cap(server: FileServer, tmp_path: Path) -> None:
    """An API that answers 500 says nothing of the video: the fiche's 1080p link is not
    within --max-height 480, so the video fails, named; within the cap it is fetched."""
    files = publish(server, UUIDS[0], api_status=500)
    fiche(tmp_path / "fiches", server, UUIDS[0])
    code, _, stderr = run(*sync_args(tmp_path, "--max-height", "480"))
    assert code == 1
    assert stderr.endswith(
        "the instance's API answered HTTP 500; the fiche's link is 1080p,"
        " not within --max-height 480\n"
    )
    assert held(tmp_path / "archive") == {}
    code, _, stderr = run(*sync_args(tmp_path, "--max-height", "1080"))
    assert code == 0, stderr
    resolution, url = held(tmp_path / "archive")[UUIDS[0]]
    assert resolution is None
    assert url.endswith(f"{UUIDS[0]}-1080-fragmented.mp4")
    assert (
        tmp_path / "archive/media" / UUIDS[0] / f"{UUIDS[0]}-1080-fragmented.mp4"
    ).read_bytes() == files[1080]


def test_unreachable_api_falls_back_to_the_fiche_link(server: FileServer, tmp_path: Path) -> None:
    publish(server, UUIDS[0])
    fiche(tmp_path / "fiches", server, UUIDS[0], instance="http://tube.example.invalid")
    assert run(*sync_args(tmp_path)) == (0, "", "")
    assert held(tmp_path / "archive")[UUIDS[0]][0] is None


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
    assert not (tmp_path / "kit" / "data" / "videos" / "cut").exists()
    assert list((tmp_path / "archive" / "quarantine" / "cut").iterdir())


def test_the_instance_preview_is_the_poster_and_captions_are_tracks(
    server: FileServer, tmp_path: Path, preview: bytes
) -> None:
    from playwright.sync_api import sync_playwright

    publish(server, UUIDS[0], heights=(480, 360), preview=preview, captions={"fr": VTT})
    fiche(tmp_path / "fiches", server, UUIDS[0])
    assert run(*sync_args(tmp_path, "--max-height", "480")) == (0, "", "")
    folder = tmp_path / "kit" / "data" / "videos" / UUIDS[0]
    assert (folder / "poster.jpg").read_bytes() == preview
    assert (folder / "captions-fr.vtt").read_text() == VTT
    page = (folder / "index.html").read_text()
    assert "Sous-titres : Français" in page
    bagit.Bag(str(tmp_path / "kit")).validate()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
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
        browser.close()
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
    publish(server, UUIDS[0], heights=(360,))  # the API names a preview the instance lacks
    fiche(tmp_path / "fiches", server, UUIDS[0])
    code, _, stderr = run(*sync_args(tmp_path, "--max-height", "360"))
    assert (code, stderr) == (0, "")
    assert (tmp_path / "kit" / "data" / "videos" / UUIDS[0] / "poster.jpg").exists()  # ffmpeg's


def test_vtt_parsing_skips_what_it_cannot_read() -> None:
    from archiver.kit.site import parse_vtt

    text = "WEBVTT\n\nNOTE a comment\n\n00:01.000 --> 00:00.500\nbackwards\n\n1:02:03.5 --> x\nbad\n\n01:00:00,000 --> 01:00:02,000 align:start\nHeure\n"
    assert parse_vtt(text) == ((3600.0, 3602.0, "Heure"),)


def test_package_fit_chooses_among_the_versions_held(server: FileServer, tmp_path: Path) -> None:
    for number, uuid in enumerate(UUIDS[:3]):
        publish(server, uuid, seed=number, heights=(1080, 360))
        fiche(tmp_path / "fiches", server, uuid)
    # First at 360p, then at 1080p: the archive keeps both versions of each video.
    assert run(*sync_args(tmp_path, "--max-height", "360"))[0] == 0
    assert run(*sync_args(tmp_path))[0] == 0
    manifest = tmp_path / "archive" / "manifest.json"
    # With the plan's allowance for pages and posters (544,768 bytes for 3 videos), room for
    # one video at 1080p (400 kB) and two at 360p (80 kB), not more.
    budget = 1_150_000
    kit = tmp_path / "usb"
    code, _, stderr = run("package", manifest, "--archive", tmp_path / "archive", "-o", kit,
                          "--fit", str(budget), "-q")  # fmt: skip
    assert (code, stderr) == (0, "")
    size = sum(p.stat().st_size for p in kit.rglob("*") if p.is_file())
    assert size <= budget
    shown = [(kit / "data/videos" / u / "index.html").read_text() for u in UUIDS[:3]]
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
    (video,) = (kit / "data" / "videos" / uuid).glob("*.mp4")
    return video


def test_transcode_re_encodes_only_what_no_offered_resolution_brings_under_the_cap(
    server: FileServer, tmp_path: Path, real: dict[int, bytes]
) -> None:
    only_tall, both = UUIDS[0], UUIDS[1]
    publish(server, only_tall, heights=(720,), videos=real)
    publish(server, both, heights=(720, 360), videos=real)
    for uuid in (only_tall, both):
        fiche(tmp_path / "fiches", server, uuid)

    code, stdout, _ = run(*sync_args(tmp_path, "--transcode", "360p", "--dry-run"))
    assert code == 0
    assert stdout.splitlines() == [
        f"Vidéo {only_tall[:8]} ({only_tall}): 720p, {format_bytes(len(real[720]))};"
        " none offered at most 360p: re-encoded to 360p",
        f"Vidéo {both[:8]} ({both}): 360p, {format_bytes(len(real[360]))}",
    ]

    assert run(*sync_args(tmp_path, "--transcode", "360p")) == (0, "", "")
    fetched = {r.path for r in server.requests() if "/download/" in r.path}
    assert fetched == {
        f"/download/streaming-playlists/hls/videos/{only_tall}-720-fragmented.mp4",
        f"/download/streaming-playlists/hls/videos/{both}-360-fragmented.mp4",
    }  # the 720p of the second video, which the instance offers at 360p, is never fetched
    kit = tmp_path / "kit"
    reencoded = kit_video(kit, only_tall)
    assert reencoded.name == f"{only_tall}-720-fragmented-360p.mp4"
    assert probe_height(reencoded) == 360
    assert "· 360p" in (reencoded.parent / "index.html").read_text()
    assert kit_video(kit, both).read_bytes() == real[360]  # the instance's own, as it was
    bagit.Bag(str(kit)).validate()


def padded(video: bytes, size: int, seed: int) -> bytes:
    """A real MP4 made ``size`` bytes long by a ``free`` box: what a re-encode sheds."""
    return tagged(video, random.Random(seed).randbytes(size - len(video) - 8))


def test_fit_re_encodes_the_largest_videos_when_even_the_lowest_do_not_fit(
    server: FileServer, tmp_path: Path, real: dict[int, bytes]
) -> None:
    sizes = {UUIDS[0]: 900_000, UUIDS[1]: 700_000, UUIDS[2]: 500_000}
    for number, (uuid, size) in enumerate(sizes.items()):
        offered = {
            480: padded(real[360], size + 300_000, number),
            360: padded(real[360], size, number),
        }
        publish(server, uuid, seed=number, heights=(480, 360), videos=offered)
        fiche(tmp_path / "fiches", server, uuid)
    overhead = kit_overhead(3)
    budget = overhead + 1_400_000  # the lowest need 2.1 MB; the largest re-encoded, 1.2 MB
    assert run(*sync_args(tmp_path, "--fit", str(budget)))[0] == 2  # no re-encoding allowed

    code, stdout, _ = run(*sync_args(tmp_path, "--fit", str(budget), "--transcode", "360p",
                                     "--dry-run"))  # fmt: skip
    assert code == 0
    assert stdout.splitlines()[-1].startswith("Over by 683.6 KiB at the lowest resolutions:")

    assert run(*sync_args(tmp_path, "--fit", str(budget), "--transcode", "360p")) == (0, "", "")
    kit = tmp_path / "kit"
    used = sum(f.stat().st_size for f in kit.rglob("*") if f.is_file())
    assert used <= budget
    names = {uuid: kit_video(kit, uuid).name for uuid in sizes}
    assert names == {
        UUIDS[0]: f"{UUIDS[0]}-360-fragmented-360p.mp4",  # the largest, re-encoded
        UUIDS[1]: f"{UUIDS[1]}-360-fragmented.mp4",  # enough: the others as offered
        UUIDS[2]: f"{UUIDS[2]}-360-fragmented.mp4",
    }
    assert probe_height(kit_video(kit, UUIDS[0])) == 360
    bagit.Bag(str(kit)).validate()

    # package does the same from what the archive holds, reusing the re-encode it keeps
    usb = tmp_path / "usb"
    code, _, stderr = run("package", tmp_path / "archive" / "manifest.json", "--archive",
                          tmp_path / "archive", "-o", usb, "--fit", str(budget),
                          "--transcode", "360p", "-q")  # fmt: skip
    assert (code, stderr) == (0, "")
    assert {uuid: kit_video(usb, uuid).name for uuid in sizes} == names
    assert kit_video(usb, UUIDS[0]).read_bytes() == kit_video(kit, UUIDS[0]).read_bytes()

    code, _, stderr = run(*sync_args(tmp_path, "--fit", str(overhead), "--transcode", "360p"))
    assert code == 2
    assert stderr.startswith(
        f"Error: the kit cannot fit in {format_bytes(overhead)}: even re-encoded to 360p it needs "
    )
