"""Writing the Kiwix ZIM of 100 videos against ``cp`` of the same bytes (target: ≤ 1.5×).

The videos dominate a ZIM: libzim stores them as they are (no compression), so writing one
costs a copy of the videos, plus the pages (compressed), the two Xapian indexes, libzim's own
MD5 of the whole file (it reads the file back when it finishes), and archiver's read-back
before the rename (``Archive.check()``: the MD5 again; pages hashed, videos read at their ends).

The archive is made without a network: one ffmpeg clip per video given its own trailer of
incompressible bytes (``--size`` each, 4 MiB by default: 400 MiB for 100 videos), posters and
facts seeded as a first build would make them. Measured in turns, ``--runs`` times each, in
one run of this script: ``archiver -q package --zim`` (the CLI, start-up included) and ``cp -r``
of the folder kit of the same collection (the same files: the ZIM holds the kit's site) to
the same filesystem, each alone (the bytes land in the page cache) and followed by ``sync``
(the bytes on the disk, as a USB key needs them); and two floors: python-libzim alone writing
the same videos (``FileProvider``, no index, no pages, no check), and ``md5sum`` of the same
videos (one MD5 pass: libzim's writer makes one to write its checksum, ``Archive.check()``
another). Reported: each one's median, and the median of the per-turn ratios; then, from one
quiet run in this process, where a ZIM's time goes (plan, pages, libzim's writing, the check
before the rename).

Where a school writes its kit (a USB key, FAT32) is not where the archive is: ``--out DIR``
writes the ZIM and the copy there (a FAT32 image mounted with ``fusefat -o rw+``, say) while
the archive and the kit's source stay in ``--dir``; ``--only zim+sync,cp+sync`` keeps the slow
medium's run short (the turns still alternate), ``--no-phases`` skips the in-process phases.
``--fresh CMD`` runs a shell command, untimed, before every write to ``--out`` (the warm one
too), which must leave an empty file system mounted there: a freshly formatted key for each
turn, the ZIM's and the copy's alike (Debian's ``fusefat`` 0.1a, the only FAT32 driver where
the kernel has none, fails the second 1.6 GiB ZIM written on one mount).

Run: ``.venv/bin/python bench/bench_zim.py [--videos 100] [--size 4M] [--runs 5]
[--dir DIR] [--out DIR] [--fresh CMD] [--only KEY,KEY] [--no-phases]``
"""

from __future__ import annotations

import argparse
import contextlib
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from archiver.archive import Archive
from archiver.entry import Entry
from archiver.kit import KitSettings, package
from archiver.kit.plan import plan_kit
from archiver.manifest import Manifest, write_manifest
from archiver.progress import NullProgress
from archiver.units import parse_size
from archiver.zim import flavour_of
from archiver.zim.content import zim_entries
from archiver.zim.metadata import zim_metadata
from archiver.zim.verify import check_written
from archiver.zim.writer import _create
from common import commit, ensure_tools, make_clip, make_entries, timed, with_trailer
from scale import seed_derived

TARGET = 1.5  # the ZIM's time over cp's
LIBZIM_ALONE = """
import sys
from pathlib import Path
from libzim.writer import Creator, FileProvider, Hint, Item

class Video(Item):
    def __init__(self, path, file):
        super().__init__()
        self.path, self.file = path, file
    def get_path(self): return self.path
    def get_title(self): return ""
    def get_mimetype(self): return "video/mp4"
    def get_contentprovider(self): return FileProvider(self.file)
    def get_hints(self): return {Hint.COMPRESS: False, Hint.FRONT_ARTICLE: False}

out, files = Path(sys.argv[1]), sys.argv[2:]
with Creator(out).config_indexing(False, "fra").config_nbworkers(1) as creator:
    creator.set_mainpath("v0")
    for number, file in enumerate(files):
        creator.add_item(Video(f"v{number}", file))
"""
LABELS = {
    "zim": "archiver package --zim (CLI, start-up and read-back included)",
    "cp": "cp -r of the kit's data/ (the same files)",
    "zim+sync": "archiver package --zim, then sync",
    "cp+sync": "cp -r, then sync",
    "libzim": "python-libzim alone, the videos only (no index, no pages, no check)",
    "md5sum": "md5sum of the videos (one MD5 pass over their bytes)",
}
RATIOS = (
    ("zim", "cp"),
    ("zim+sync", "cp+sync"),
    ("libzim", "cp"),
    ("md5sum", "cp"),
    ("zim", "libzim"),
)


def hold_large_videos(root: Path, entries: list[Entry], clip: bytes, size: int) -> None:
    """Each entry's video: the clip and a trailer of incompressible bytes, ``size`` in all."""
    rng = random.Random(0)
    with Archive(root) as archive:
        for i, entry in enumerate(entries):
            archive.record_item(entry)
            trailer = i.to_bytes(4, "big") + rng.randbytes(max(size - len(clip) - 12, 0))
            commit(archive, entry, with_trailer(clip, trailer), f"{i}-480.mp4")


def _median(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f} s of {', '.join(f'{s:.2f}' for s in values)}"


def _then_sync(command: list[str]) -> list[str]:
    return ["sh", "-c", '"$@" && sync', "-", *command]


def phases(manifest: Manifest, archive_root: Path, zim: Path) -> dict[str, float]:
    """Where one ZIM's time goes, in this process (imports done, bytecode warm): the kit's
    plan, the pages, libzim's writing (its MD5 included), the check before the rename."""
    settings = KitSettings()
    took: dict[str, float] = {}
    start = time.perf_counter()
    with Archive(archive_root) as archive:
        plan = plan_kit(manifest, archive, settings)
    took["plan"] = time.perf_counter() - start
    start = time.perf_counter()
    entries = zim_entries(plan, title=settings.title)
    metadata = zim_metadata(plan.items, title=settings.title, flavour=flavour_of(settings))
    took["pages"] = time.perf_counter() - start
    start = time.perf_counter()
    _create(zim, entries, metadata, NullProgress())
    took["libzim writes"] = time.perf_counter() - start
    start = time.perf_counter()
    problems = check_written(zim, entries, metadata)
    took["check"] = time.perf_counter() - start
    if problems:
        raise RuntimeError(f"the ZIM does not read back: {problems}")
    zim.unlink()
    return took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", type=int, default=100)
    parser.add_argument("--size", default="4M", help="bytes of each video (4M, 20M...)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None, help="where to work (a disk to test)")
    parser.add_argument(
        "--out", type=Path, default=None, help="where the ZIM and the copy go (default: --dir)"
    )
    parser.add_argument(
        "--only", default=",".join(LABELS), help=f"measures to run, of {','.join(LABELS)}"
    )
    parser.add_argument(
        "--fresh", default=None, help="shell command run before each write to --out (formats it)"
    )
    parser.add_argument(
        "--phases", action=argparse.BooleanOptionalAction, default=True, help="time the phases"
    )
    args = parser.parse_args()
    only = [key for key in args.only.split(",") if key]
    if unknown := sorted(set(only) - set(LABELS)):
        parser.error(f"--only: unknown measure {', '.join(unknown)} (of {', '.join(LABELS)})")
    ensure_tools()
    size = parse_size(args.size)
    with (
        tempfile.TemporaryDirectory(prefix="bench-zim-", dir=args.dir) as temp,
        (
            contextlib.nullcontext(str(args.out))
            if args.fresh
            else tempfile.TemporaryDirectory(prefix="bench-zim-out-", dir=args.out or args.dir)
        ) as out_temp,
    ):
        work, out = Path(temp), Path(out_temp)

        def fresh() -> None:
            if args.fresh:
                subprocess.run(["sh", "-c", args.fresh], check=True, stdout=subprocess.DEVNULL)

        clip_path = work / "clip.mp4"
        clip = make_clip(clip_path)
        entries = make_entries(args.videos)
        archive = work / "archive"
        hold_large_videos(archive, entries, clip, size)
        seed_derived(archive, entries, clip_path)
        manifest = Manifest(entries=tuple(entries))
        manifest_path = work / "m.json"
        write_manifest(manifest, manifest_path)
        kit = work / "kit"
        package(manifest, archive, kit, settings=KitSettings(copy=True))
        payload = sum(p.stat().st_size for p in (kit / "data").rglob("*") if p.is_file())

        zim = out / "videos.zim"
        command = [sys.executable, "-m", "archiver", "-q", "package", str(manifest_path),
                   "--archive", str(archive), "--zim", str(zim)]  # fmt: skip
        copy = out / "copy"
        cp = ["cp", "-r", str(kit / "data"), str(copy)]
        videos = sorted(str(p) for p in (kit / "data" / "videos").rglob("*.mp4"))
        alone = [sys.executable, "-c", LIBZIM_ALONE, str(out / "alone.zim"), *videos]
        md5sum = ["sh", "-c", 'md5sum "$@" > /dev/null', "-", *videos]
        fresh()
        timed(command)  # warm: the bytecode cache, the videos in the page cache
        zim.unlink()  # each turn writes where nothing was
        times: dict[str, list[float]] = {key: [] for key in only}
        zim_size = 0
        for _ in range(args.runs):
            for key, run, made in (
                ("zim", command, zim),
                ("cp", cp, copy),
                ("zim+sync", _then_sync(command), zim),
                ("cp+sync", _then_sync(cp), copy),
                ("libzim", alone, out / "alone.zim"),
                ("md5sum", md5sum, None),
            ):
                if key not in times:
                    continue
                if made is not None:
                    fresh()
                times[key].append(timed(run).seconds)
                if made == zim:
                    zim_size = zim.stat().st_size
                if made is None:
                    continue
                if made.is_dir():
                    shutil.rmtree(made)
                else:
                    made.unlink()
        runs = args.runs if args.phases else 0
        took = [phases(manifest, archive, out / "phases.zim") for _ in range(runs)]

    print(f"{args.videos} videos of {args.size}: kit payload {payload / 1024**2:.1f} MiB,"
          f" ZIM {zim_size / 1024**2:.1f} MiB ({zim_size / payload:.3f} of it)")  # fmt: skip
    for key, values in times.items():
        print(f"{LABELS[key]}: {_median(values)}")
    for top, bottom in RATIOS:
        if top not in times or bottom not in times:
            continue
        ratios = [a / b for a, b in zip(times[top], times[bottom], strict=True)]
        ratio = statistics.median(ratios)
        verdict = ""
        if top.startswith("zim") and bottom.startswith("cp"):
            verdict = f"; target ≤ {TARGET}: {'PASS' if ratio <= TARGET else 'FAIL'}"
        print(f"{top} / {bottom}, median of {args.runs} turns: {ratio:.2f}"
              f" (each: {', '.join(f'{r:.2f}' for r in ratios)}{verdict})")  # fmt: skip
    if not took:
        return
    print("In this process, one ZIM at a time:")
    for phase in took[0]:
        print(f"  {phase}: {_median([each[phase] for each in took])}")


if __name__ == "__main__":
    main()
