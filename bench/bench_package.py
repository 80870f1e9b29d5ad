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
import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import timed

from archiver.archive import Archive, FetchedFile
from archiver.entry import Credit, Entry, Licence, Source, Video
from archiver.manifest import Manifest, write_manifest
from archiver.package import PackageSettings, package

ROOT = Path(__file__).resolve().parent.parent


def make_clip(path: Path) -> bytes:
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=duration=5:size=640x360:rate=25",
         "-f", "lavfi", "-i", "sine=duration=5", "-c:v", "libx264", "-preset", "ultrafast",
         "-pix_fmt", "yuv420p", "-c:a", "aac", "-movflags", "frag_keyframe+empty_moov",
         str(path)],
        check=True,
    )  # fmt: skip
    return path.read_bytes()


def commit(archive: Archive, entry: Entry, data: bytes, name: str) -> None:
    part = archive.root / "partial" / f"{entry.id}.part"
    part.write_bytes(data)
    url = entry.video.url or ""
    digest = hashlib.sha256(data).hexdigest()
    archive.commit(
        entry.id, "video", name, part, FetchedFile(url, url, digest, len(data), None, None, None)
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-kit-") as temp:
        work = Path(temp)
        clip = make_clip(work / "clip.mp4")
        entries = [
            Entry(
                id=f"video-{i:03d}",
                title=f"Vidéo de formation numéro {i}",
                area=f"Domaine {i % 5}",
                description="Une description de la vidéo. " * 5,
                source=Source(path=f"{i}.md", sha256="0" * 64),
                video=Video(url=f"https://tube.example.org/v/{i}-480.mp4", embed_url=None),
                transcript="Une phrase de transcription.\n" * 60,
                credits=(Credit("Production", ("Réseau Canopé",)),),
                licence=Licence("CC BY-NC-ND 4.0", "https://creativecommons.org/licenses/by-nc-nd/4.0/"),
            )
            for i in range(args.videos)
        ]  # fmt: skip
        archive_root = work / "archive"
        with Archive(archive_root) as archive:
            for i, entry in enumerate(entries):
                archive.record_item(entry)
                commit(archive, entry, clip + i.to_bytes(4, "big") * 256, f"{i}-480.mp4")
        manifest = Manifest(entries=tuple(entries))
        manifest_path = work / "m.json"
        write_manifest(manifest, manifest_path)
        kit = work / "kit"
        settings = PackageSettings(copy=True)

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
        new_video = clip + b"changed upstream" * 4096
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
