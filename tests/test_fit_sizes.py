"""``--fit`` for any collection: a video with no PeerTube UUID is sized by HEAD, else by what
the archive holds; only a video with no size from anywhere is refused, by name."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

import archiver.kit.write as kit_writer
from archiver.choose import (
    FAT32_CLUSTER,
    KIT_OVERHEAD,
    KIT_OVERHEAD_PER_VIDEO,
    fs_margin,
    kit_overhead,
)
from archiver.errors import KitError, UsageError
from archiver.fetch import download
from archiver.kit import KitSettings, package
from archiver.kit.bag import verify_bag
from archiver.manifest import Manifest
from archiver.units import format_bytes

from . import test_disk_errors, test_package
from .conftest import run_cli, tagged
from .peertube import FakeInstance
from .server import FileServer
from .test_package import FAST, entries

# The fixtures of those modules, shared: MP4 clips made by ffmpeg, a tmpfs mounted as root.
clips = test_package.clips
small_disk = test_disk_errors.small_disk

PLAIN = "/files/plain-480.mp4"


@pytest.fixture
def clip(half_second_clip: bytes) -> bytes:
    return half_second_clip


run = run_cli


def collection(server: FileServer, clip: bytes, tmp_path: Path) -> tuple[bytes, bytes]:
    """A PeerTube video (sizes from its API) and one on a plain server (no UUID, no API)."""
    tube = FakeInstance(server, api_window=2.0)
    video = tube.publish(heights=(480, 360))
    plain = tagged(clip, b"plain")
    server.add(PLAIN, plain)
    folder = tmp_path / "fiches"
    folder.mkdir()
    (folder / "tube.md").write_text(video.fiche(height=480), encoding="utf-8")
    (folder / "plain.md").write_text(
        f"---\ntitle: Sans PeerTube\nvideoDLHref: {server.url(PLAIN)}\n---\n\n## Script\n\n"
        "Texte.\n\n## Crédits\n\n- **Licence** : [CC BY 4.0](https://creativecommons.org/"
        "licenses/by/4.0/)\n",
        encoding="utf-8",
    )
    return video.data[480], plain


def sync(tmp_path: Path, *extra: str) -> tuple[int, str, str]:
    return run("sync", tmp_path / "fiches", "--archive", tmp_path / "archive", "--kit",
               tmp_path / "kit", "--retries", "0", *extra)  # fmt: skip


def test_a_video_with_no_uuid_is_sized_by_head_and_the_kit_fits(
    server: FileServer, clip: bytes, tmp_path: Path
) -> None:
    tall, plain = collection(server, clip, tmp_path)
    budget = kit_overhead(2) + len(tall) + len(plain) + 50_000
    code, out, err = sync(tmp_path, "--fit", str(budget), "--dry-run")
    assert (code, err) == (0, "")
    assert f"Sans PeerTube (plain): 480p, {format_bytes(len(plain))}" in out.splitlines()
    heads = server.requests(PLAIN)
    assert [r.method for r in heads] == ["HEAD"]

    code, _, err = sync(tmp_path, "--fit", str(budget), "-q")
    assert (code, err) == (0, "")
    used = sum(p.stat().st_size for p in (tmp_path / "kit").rglob("*") if p.is_file())
    assert used <= budget


def test_a_video_no_server_sizes_is_sized_by_the_archive_else_refused_by_name(
    server: FileServer, clip: bytes, tmp_path: Path
) -> None:
    _, plain = collection(server, clip, tmp_path)
    assert sync(tmp_path, "-q")[0] == 0  # both held
    server.add(PLAIN, plain, statuses=[405] * 10)  # HEAD refused from now on
    code, out, err = sync(tmp_path, "--fit", "100M", "--dry-run")
    assert (code, err) == (0, "")
    assert f"Sans PeerTube (plain): 480p, {format_bytes(len(plain))}" in out.splitlines()

    other = tmp_path / "other"
    code, _, err = run("sync", tmp_path / "fiches", "--archive", other / "archive", "--kit",
                       other / "kit", "--fit", "100M", "--dry-run")  # fmt: skip
    assert code == 2
    assert err.startswith(
        "Error: --fit needs each video's size (from its PeerTube instance, a HEAD request or"
        " the archive); none for: Sans PeerTube (plain)\n"
    )


# -- the plan and the check before writing keep the same margin --------------------------------


def _kit_counts(kit: Path) -> tuple[int, int, int, int]:
    """A kit's video bytes, its other bytes, the files a first build of it makes (its
    journal included) and the folders (each also made in the staging folder, and that)."""
    files = [p for p in kit.rglob("*") if p.is_file()]
    videos = sum(p.stat().st_size for p in files if p.suffix == ".mp4")
    others = sum(p.stat().st_size for p in files) - videos
    folders = sum(1 for p in kit.rglob("*") if p.is_dir())
    return videos, others, len(files) + 1, 2 * folders + 1


@pytest.mark.parametrize("cluster", ["tmpfs", "fat32"])
def test_a_kit_planned_for_a_budget_is_written_on_a_disk_of_that_size(
    server: FileServer,
    clips: list[bytes],
    tmp_path: Path,
    small_disk: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    cluster: str,
) -> None:
    """--fit's plan keeps what the check before writing asks for (fs_margin: a cluster a
    file and folder, and a reserve): a kit planned for N bytes is written on a disk of N
    bytes. tmpfs allocates by 4 KiB; "fat32" makes it say FAT32's 32 KiB clusters, where
    the plan's former allowance (pages and posters only) was short."""
    items = entries(server, clips)
    manifest = Manifest(entries=tuple(items))
    archive = tmp_path / "archive"
    download(manifest, archive, settings=FAST)
    reference = tmp_path / "reference"
    package(manifest, archive, reference, settings=KitSettings(copy=True))
    videos, others, files, folders = _kit_counts(reference)
    video_files = sum(1 for p in (reference / "data" / "videos").rglob("*") if p.is_file())
    if cluster == "fat32":
        monkeypatch.setattr(kit_writer, "_cluster", lambda _kit: FAT32_CLUSTER)

    # What the check asks of a 32 KiB-cluster key, from its own function, against the plans.
    needed = videos + others + fs_margin(files=files, folders=folders, cluster=FAT32_CLUSTER)
    former = videos + KIT_OVERHEAD + KIT_OVERHEAD_PER_VIDEO * len(items)
    budget = videos + kit_overhead(len(items), files=video_files)
    assert former < needed <= budget  # they disagreed; they agree now

    disk = small_disk(str(budget), "key")
    assert shutil.disk_usage(disk).free >= budget - 4096  # tmpfs rounds to its pages
    budget = shutil.disk_usage(disk).free
    report = package(manifest, archive, disk / "kit", settings=KitSettings(copy=True, fit=budget))
    assert report.left_out == () and report.written == files - 1 - 7  # all but tag files
    assert verify_bag(disk / "kit")[2] == []

    # A budget the former plan took: now refused by the plan, before a byte is written...
    small = small_disk(str(former), "small")
    with pytest.raises(UsageError) as caught:
        package(manifest, archive, small / "kit", settings=KitSettings(copy=True, fit=former))
    assert caught.value.message.startswith(f"the kit cannot fit in {format_bytes(former)}: ")
    assert "kept for the file system" in caught.value.message
    assert not (small / "kit").exists()
    if cluster == "fat32":  # ...where it used to pass the plan and fail the final check
        with pytest.raises(KitError, match="the kit does not fit"):
            package(manifest, archive, small / "kit", settings=KitSettings(copy=True))
