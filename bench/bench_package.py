"""Packaging a kit of 100 videos: re-packaging it unchanged (target ≤ 2 s), and what an update
after one video changed writes (target: only that video's files).

The archive is made without a network: one MP4 from ffmpeg, given a distinct trailer per video
so every video has its own sha256 (and its own poster), committed through the archive's API.
The kit is built with ``--copy``, as on a USB key (another filesystem). The peer measured in
the same run is ``rsync -a`` of the same kit folder to a copy that is already up to date: the
floor of "look at every file and find nothing to do".

Run: ``.venv/bin/python bench/bench_package.py [--videos 100]``
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from archiver.archive import Archive
from archiver.kit import KitSettings, package
from archiver.manifest import Manifest, write_manifest
from common import (
    commit,
    ensure_tools,
    hold_videos,
    make_clip,
    make_entries,
    timed,
    with_trailer,
)

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    ensure_tools()
    with tempfile.TemporaryDirectory(prefix="bench-kit-") as temp:
        work = Path(temp)
        clip = make_clip(work / "clip.mp4")
        entries = make_entries(args.videos)
        archive_root = work / "archive"
        hold_videos(archive_root, entries, clip)
        manifest = Manifest(entries=tuple(entries))
        manifest_path = work / "m.json"
        write_manifest(manifest, manifest_path)
        kit = work / "kit"
        settings = KitSettings(copy=True)

        start = time.perf_counter()
        first = package(manifest, archive_root, kit, settings=settings)
        cold = time.perf_counter() - start
        size = sum(p.stat().st_size for p in kit.rglob("*") if p.is_file())

        command = [sys.executable, "-m", "archiver", "-q", "package", str(manifest_path),
                   "--archive", str(archive_root), "-o", str(kit), "--copy"]  # fmt: skip
        noop_cli = min(timed(command).seconds for _ in range(args.runs))
        noop_lib = []
        for _ in range(args.runs):
            start = time.perf_counter()
            report = package(manifest, archive_root, kit, settings=settings)
            noop_lib.append(time.perf_counter() - start)
            assert report.written == 0, report
        mirror = work / "mirror"
        shutil.copytree(kit, mirror, copy_function=shutil.copy2)
        rsync = min(
            timed(["rsync", "-a", f"{kit}/", f"{mirror}/"]).seconds for _ in range(args.runs)
        )

        changed = entries[42]
        new_video = with_trailer(clip, b"changed upstream" * 4096)
        with Archive(archive_root) as archive:
            commit(archive, changed, new_video, "42-480.mp4")
        start = time.perf_counter()
        update = package(manifest, archive_root, kit, settings=settings)
        update_seconds = time.perf_counter() - start

    print(f"kit of {args.videos} videos: {first.written} files, {size / 1024**2:.1f} MiB;"
          f" first build with posters {cold:.2f} s")  # fmt: skip
    print(f"re-package unchanged, CLI with start-up: best {noop_cli:.2f} s (target ≤ 2 s)")
    print(f"re-package unchanged, in-process:        best {min(noop_lib):.2f} s")
    print(f"peer: rsync -a of the same kit, up to date: best {rsync:.2f} s"
          f" (archiver CLI / rsync = {noop_cli / rsync:.1f})")  # fmt: skip
    outside = [p for p in update.changed if not p.startswith(f"data/videos/{changed.id}/")]
    print(f"one video changed: {update.written} files written, {update.bytes_written} bytes"
          f" copied (the new video is {len(new_video)} bytes), {update.removed} removed,"
          f" in {update_seconds:.2f} s; files outside its folder: {outside or 'none'}")  # fmt: skip
    print("written:", ", ".join(update.changed))


if __name__ == "__main__":
    main()
