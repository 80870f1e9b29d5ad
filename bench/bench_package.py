"""Packaging a kit of 100 to 10,000 videos: re-packaging it unchanged (targets: 100 videos
≤ 2 s; 10,000 ≤ 3 s, issue 14), and what an update after one video changed writes (target:
only that video's files, its neighbours' pages and the collection's own files).

The archive is made without a network: one MP4 from ffmpeg, given a distinct trailer per video
so every video has its own sha256, committed through the archive's API; each video's poster
and facts are recorded as the first build would make them, from one frame of the clip
(``--posters ffmpeg`` makes each one with ffmpeg, as the first build does). The kit is built
with ``--copy``, as on a USB key (another filesystem). Peers measured in the same run:
``rsync -a`` of the same kit to a copy already up to date (the floor of "look at every file
and find nothing to do"), and with ``--base SRC`` another tree's archiver on a twin of the same
kit and archive (hard links, its own catalog: see :func:`scale.twin`), in turns; with it, each
tree then builds a fresh kit of the same archive, and the two are compared file by file
(sha256): a change made for speed must leave every byte of the kit as it was. The CLI's
re-packages are timed after one that seals the kit (:mod:`archiver.settled`: the next update
of the same manifest file replays while nothing moved), then again with the seal removed
before each ("unsealed": the update that meets a change, or seals).

Run: ``.venv/bin/python bench/bench_package.py [--videos 100] [--base /tmp/base/src]``
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from archiver.archive import Archive
from archiver.fiche_cache import CACHE_FOLDER
from archiver.kit import KitSettings, package
from archiver.kit.pages import folder_names
from archiver.manifest import Manifest, write_manifest
from archiver.settled import SEAL_PREFIX
from common import (
    commit,
    ensure_tools,
    hold_videos,
    make_clip,
    make_entries,
    timed,
    with_trailer,
)
from scale import seed_derived, twin

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {100: 2.0, 10_000: 3.0}  # seconds, the CLI with start-up


def _cli(command: list[str], base: Path | None) -> float:
    """Seconds of one run of ``command``, with ``base``'s archiver if given, bytecode cached."""
    saved = dict(os.environ)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    if base is not None:
        os.environ["PYTHONPATH"] = str(base)
    try:
        return timed(command).seconds
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _digests(folder: Path) -> dict[str, str]:
    """The sha256 of every file below ``folder``, by its path there."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            found[path.relative_to(folder).as_posix()] = hashlib.sha256(
                path.read_bytes()
            ).hexdigest()
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--base", type=Path, help="another tree's src/, measured in turns")
    parser.add_argument("--posters", choices=("seed", "ffmpeg"), default="seed")
    args = parser.parse_args()
    ensure_tools()
    with tempfile.TemporaryDirectory(prefix="bench-kit-") as temp:
        work = Path(temp)
        clip_path = work / "clip.mp4"
        clip = make_clip(clip_path)
        entries = make_entries(args.videos)
        archive_root = work / "archive"
        hold_videos(archive_root, entries, clip)
        if args.posters == "seed":
            seed_derived(archive_root, entries, clip_path)
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
        base_command = command
        if args.base is not None:  # its own twin of the archive and kit: see scale.twin
            twin(archive_root, work / "base-archive", args.base)
            twin(kit, work / "base-kit", args.base)
            base_command = [*command[:-5], "--archive", str(work / "base-archive"),
                            "-o", str(work / "base-kit"), "--copy"]  # fmt: skip
        ours: list[float] = []
        theirs: list[float] = []
        for number in range(args.runs + 1):  # the first of each writes its bytecode cache
            seconds = _cli(command, None)
            if number:
                ours.append(seconds)
            if args.base is not None:
                seconds = _cli(base_command, args.base)
                if number:
                    theirs.append(seconds)
        # The same with the seal removed first: the update that meets a change, or seals.
        unsealed: list[float] = []
        for _ in range(max(1, args.runs // 2)):
            for seal in (archive_root / CACHE_FOLDER).glob(f"{SEAL_PREFIX}*.pickle"):
                seal.unlink()
            unsealed.append(_cli(command, None))
        same: bool | None = None
        if args.base is not None:  # fresh kits of the same archive, one by each tree
            fresh = {"ours": (work / "archive", None), "base": (work / "base-archive", args.base)}
            built = {}
            for name, (archive_at, tree) in fresh.items():
                fresh_kit = work / f"fresh-{name}"
                _cli([*command[:-5], "--archive", str(archive_at), "-o", str(fresh_kit)], tree)
                built[name] = _digests(fresh_kit)
                shutil.rmtree(fresh_kit)
            same = built["ours"] == built["base"]
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

        changed = entries[42 % args.videos]
        new_video = with_trailer(clip, b"changed upstream" * 4096)
        with Archive(archive_root) as archive:
            commit(archive, changed, new_video, "42-480.mp4")
        start = time.perf_counter()
        update = package(manifest, archive_root, kit, settings=settings)
        update_seconds = time.perf_counter() - start

    made = "posters seeded" if args.posters == "seed" else "posters made with ffmpeg"
    print(f"kit of {args.videos} videos: {first.written} files, {size / 1024**2:.1f} MiB;"
          f" first build ({made}) {cold:.2f} s")  # fmt: skip
    target = TARGETS.get(args.videos)
    verdict = ""
    if target is not None:
        verdict = f" (target ≤ {target:.0f} s: {'PASS' if min(ours) <= target else 'FAIL'})"
    print(f"re-package unchanged, CLI with start-up: best {min(ours):.2f} s{verdict}")
    print(f"  median of {len(ours)}: {statistics.median(ours):.2f} s (sealed: the first, not"
          " timed, sealed the kit; archiver.settled)")  # fmt: skip
    print(f"  unsealed (the seal removed before each run), best of {len(unsealed)}:"
          f" {min(unsealed):.2f} s")  # fmt: skip
    if theirs:
        print(f"  base, same kit, in turns: best {min(theirs):.2f} s, median"
              f" {statistics.median(theirs):.2f} s (base / this: best"
              f" {min(theirs) / min(ours):.2f}, median"
              f" {statistics.median(theirs) / statistics.median(ours):.2f})")  # fmt: skip
        bytes_said = "the same bytes" if same else "DIFFERENT BYTES"
        print(f"  fresh kits built by this tree and by base: {bytes_said}")
    print(f"re-package unchanged, in-process:        best {min(noop_lib):.2f} s")
    print(f"peer: rsync -a of the same kit, up to date: best {rsync:.2f} s"
          f" (archiver CLI / rsync = {min(ours) / rsync:.1f})")  # fmt: skip
    folder = folder_names(entries)[changed.id]  # named from its title, not its id
    outside = [p for p in update.changed if not p.startswith(f"data/videos/{folder}/")]
    print(f"one video changed: {update.written} files written, {update.bytes_written} bytes"
          f" copied (the new video is {len(new_video)} bytes), {update.removed} removed,"
          f" in {update_seconds:.2f} s; files outside its folder: {outside or 'none'}")  # fmt: skip
    print("written:", ", ".join(update.changed))


if __name__ == "__main__":
    main()
