"""A sync that changes nothing, from 100 to 10,000 videos: its time with start-up, its peak
memory, where its time goes, and how it grows with the collection (a table and a PNG); and an
archive audit's hashing speed against ``sha256sum`` on the same files.

Targets (issue 14): a no-op sync of 1,000 videos ≤ 0.6 s and of 10,000 ≤ 2 s, start-up
included; a 10,000-video sync's peak RSS ≤ 250 MiB. An audit at ≥ 80% of sha256sum's speed.

The archive is made without a network (one ffmpeg clip, a distinct trailer per video); the
fiches point at an address nothing listens on, so a sync that asked anything would fail. Each
video's poster and facts are recorded as the first kit build would make them with FFmpeg, from
one frame of the clip (``--posters ffmpeg`` makes each one: 23 minutes for 10,000); then one
sync builds the kit, and the syncs timed after it have nothing to do. The first of those (not
timed) finds that out the whole way and seals the archive (:mod:`archiver.settled`); the timed
ones replay the seal. The same no-op with the seal removed before each run is timed too
("unsealed"): what a run costs when anything a seal depends on moved, and the run that seals.

Peers, measured in the same run on the same folders (the machines these run on are shared and
noisy: only ratios measured together mean something): ``archiver --version``, the start-up
alone; and with ``--base SRC``, another tree's archiver (``PYTHONPATH=SRC``), e.g. the last
commit's: ``git worktree add /tmp/base HEAD`` then ``--base /tmp/base/src``; the base syncs a
twin of each folder (``base-N``: the same files hard-linked, its own catalog, brought back to the
version that tree knows, see :func:`scale.twin`). Every command runs
with Python's bytecode cache on (``PYTHONDONTWRITEBYTECODE`` unset), as an installed archiver
does; the first run of each tree writes it.

Run: ``.venv/bin/python bench/bench_sync.py [--videos 100 | --sizes 100,1000,10000]
[--base /tmp/base/src] [--plot docs/img/bench-sync-scale.png] [--phases] [--work DIR]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from archiver.entry import Entry
from archiver.fiche_cache import CACHE_FOLDER
from archiver.settled import SEAL_PREFIX
from common import Timing, hold_videos, make_clip, make_entries, make_file, timed
from scale import Curve, phases, plot, seed_derived, table, twin

FICHE = """---
title: {title}
area: {area}
description: Une description.
videoDLHref: {url}
---

## Script

{transcript}
## Crédits

- **Production** : Réseau Canopé
- **Licence** : [CC BY-NC-ND 4.0](https://creativecommons.org/licenses/by-nc-nd/4.0/)
"""
ARCHIVER = [sys.executable, "-m", "archiver"]
TARGETS = {1000: 0.6, 10_000: 2.0}  # seconds, start-up included
RSS_TARGET = (10_000, 250.0)  # MiB
READY = "ready"  # in a prepared folder, once its first sync is done


def write_fiches(folder: Path, entries: list[Entry]) -> None:
    folder.mkdir()
    for entry in entries:
        (folder / f"{entry.id}.md").write_text(
            FICHE.format(
                title=entry.title,
                area=entry.area,
                url=entry.video.url,
                transcript=entry.transcript,
            ),
            encoding="utf-8",
        )


def sync_command(folder: Path) -> list[str]:
    return [*ARCHIVER, "-q", "sync", str(folder / "fiches"), "--archive",
            str(folder / "archive"), "--kit", str(folder / "kit")]  # fmt: skip


def prepare(folder: Path, videos: int, *, posters: str) -> list[str]:
    """Fiches, an archive holding each one's video, and a kit made by a first sync, in
    ``folder`` (kept from an earlier run when it is complete); the sync command."""
    command = sync_command(folder)
    if (folder / READY).exists():
        return command
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    # Port 9 (discard): nothing listens, so any request would be a failure, not a no-op.
    entries = make_entries(videos, url="http://127.0.0.1:9/videos/{}-480.mp4")
    write_fiches(folder / "fiches", entries)
    clip = folder / "clip.mp4"
    # The archive's ids come from the fiches' file names (no UUID in these URLs).
    hold_videos(folder / "archive", entries, make_clip(clip))
    if posters == "seed":
        seed_derived(folder / "archive", entries, clip)
    subprocess.run(command, check=True)  # the first sync: builds the kit
    (folder / READY).touch()
    return command


@contextmanager
def tree(src: Path | None) -> Iterator[None]:
    """Commands run with the archiver of ``src`` (None: this one), bytecode cached."""
    saved = dict(os.environ)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    if src is not None:
        os.environ["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(src), saved.get("PYTHONPATH")])
        )
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def base_folder(folder: Path, base: Path) -> Path:
    """The twin of ``folder`` that ``base``'s archiver syncs (:func:`scale.twin`: the same
    files, its own catalog at the version that tree knows), beside it."""
    copy = folder.with_name(f"base-{folder.name.removeprefix('sync-')}")
    twin(folder, copy, base)
    return copy


def measure(
    command: list[str], runs: int, base: Path | None, base_command: list[str] | None = None
) -> tuple[list[Timing], list[Timing]]:
    """``runs`` timings of ``command`` with this tree and of ``base_command`` (the same on the
    base's twin folder) with ``base``, taken in turns (after one run of each, which writes its
    bytecode cache and brings its folder to its own no-op)."""
    ours: list[Timing] = []
    theirs: list[Timing] = []
    for number in range(runs + 1):
        with tree(None):
            timing = timed(command)
        if number:
            ours.append(timing)
        if base is not None:
            with tree(base):
                timing = timed(base_command or command)
            if number:
                theirs.append(timing)
    return ours, theirs


def measure_whole(command: list[str], folder: Path, runs: int) -> list[Timing]:
    """``runs`` timings of a no-op sync whose seal was removed first: what a run costs when
    anything it depends on moved (:mod:`archiver.settled`), and the run that seals again."""
    cache = folder / "archive" / CACHE_FOLDER
    timings = []
    for _ in range(runs):
        for seal in cache.glob(f"{SEAL_PREFIX}*.pickle"):
            seal.unlink()
        with tree(None):
            timings.append(timed(command))
    return timings


def audit(work: Path, files: int, mib: int, runs: int) -> str:
    """``archiver verify --archive`` against ``sha256sum`` on the same files, page-cached."""
    from archiver.archive import Archive
    from common import commit

    audit_root = work / "audit"
    paths = []
    for i in range(files):
        path = work / f"a{i}.bin"
        make_file(path, mib * 1024 * 1024, seed=i)
        paths.append(path)
    with Archive(audit_root) as store:
        for entry, path in zip(make_entries(files), paths, strict=True):
            store.record_item(entry)
            commit(store, entry, path.read_bytes(), path.name)
            path.unlink()
    held = sorted(str(p) for p in (audit_root / "store").rglob("*") if p.is_file())
    total = sum(Path(p).stat().st_size for p in held)
    subprocess.run(["cat", *held], stdout=subprocess.DEVNULL, check=True)  # warm the cache
    with tree(None):
        ours = min(timed([*ARCHIVER, "-q", "verify", "--archive", str(audit_root)]).seconds
                   for _ in range(runs))  # fmt: skip
    peer = min(timed(["sha256sum", *held]).seconds for _ in range(runs))
    size = total / 1024**2
    return (f"audit of {len(held)} files, {size:.0f} MiB: archiver verify --archive {ours:.2f} s"
            f" ({size / ours:.0f} MiB/s); sha256sum {peer:.2f} s ({size / peer:.0f} MiB/s);"
            f" archiver at {100 * peer / ours:.0f}% of sha256sum's speed"
            " (target ≥ 80%)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", type=int, default=100)
    parser.add_argument("--sizes", help="several collection sizes, e.g. 100,1000,10000")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--base", type=Path, help="another tree's src/, measured in turns")
    parser.add_argument("--plot", type=Path, help="write the curve of time against size here")
    parser.add_argument("--phases", action="store_true", help="where the largest sync's time goes")
    parser.add_argument("--posters", choices=("seed", "ffmpeg"), default="seed")
    parser.add_argument("--work", type=Path, help="keep (and reuse) the archives there")
    parser.add_argument("--audit-files", type=int, default=16)
    parser.add_argument("--audit-mib", type=int, default=64)
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")] if args.sizes else [args.videos]
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as temp:
        work = args.work or Path(temp)
        results = {}
        bases = {}
        wholes: dict[int, list[Timing]] = {}
        for videos in sizes:
            folder = work / f"sync-{videos}"
            command = prepare(folder, videos, posters=args.posters)
            if args.base is not None:
                bases[videos] = sync_command(base_folder(folder, args.base))
            measured = measure(command, args.runs, args.base, bases.get(videos))
            results[videos] = (command, *measured)
            wholes[videos] = measure_whole(command, folder, max(1, args.runs // 2))
        with tree(None):
            startup = min(timed([*ARCHIVER, "--version"]).seconds for _ in range(args.runs))
        audited = audit(Path(temp), args.audit_files, args.audit_mib, args.runs) if (
            args.audit_files
        ) else None  # fmt: skip
        where = None
        if args.phases:
            command = results[max(sizes)][0]
            with tree(None):
                ours = phases(command[3:], env=dict(os.environ))
            theirs = None
            if args.base is not None:
                with tree(args.base):
                    theirs = phases(bases[max(sizes)][3:], env=dict(os.environ))
            where = (ours, theirs)

    print(f"archiver --version (start-up alone): best {startup:.2f} s")
    rows = []
    for videos, (_, ours, theirs) in results.items():
        best = min(t.seconds for t in ours)
        rss = max(t.peak_rss_mib for t in ours)
        target = TARGETS.get(videos)
        whole = wholes[videos]
        row = [f"{videos:,}", f"{best:.2f} s", f"{max(t.seconds for t in ours):.2f} s",
               f"{rss:.0f} MiB", f"{min(t.seconds for t in whole):.2f} s",
               f"{max(t.peak_rss_mib for t in whole):.0f} MiB"]  # fmt: skip
        if args.base is not None:
            then = min(t.seconds for t in theirs)
            row += [f"{then:.2f} s", f"{max(t.peak_rss_mib for t in theirs):.0f} MiB",
                    f"{then / best:.1f}×"]  # fmt: skip
        row.append(f"≤ {target} s: {'PASS' if best <= target else 'FAIL'}" if target else "")
        rows.append(row)
    header = ["videos", "no-op sync, best", "worst", "peak RSS", "unsealed no-op, best",
              "its peak RSS"]  # fmt: skip
    if args.base is not None:
        header += ["base, best", "base peak RSS", "base / this"]
    header.append("target")
    print(table(header, rows))
    if RSS_TARGET[0] in results:
        rss = max(t.peak_rss_mib for t in (*results[RSS_TARGET[0]][1], *wholes[RSS_TARGET[0]]))
        verdict = "PASS" if rss <= RSS_TARGET[1] else "FAIL"
        print(f"peak RSS of a {RSS_TARGET[0]:,}-video sync: {rss:.0f} MiB"
              f" (target ≤ {RSS_TARGET[1]:.0f} MiB: {verdict})")  # fmt: skip
    if where is not None:
        ours, theirs = where
        header = ["where the time goes", "this tree"] + (["base"] if theirs else [])
        rows = [[name, f"{seconds:.2f} s"] + ([f"{theirs[name]:.2f} s"] if theirs else [])
                for name, seconds in ours.items()]  # fmt: skip
        print(f"\none no-op sync of {max(sizes):,} videos, by phase (timers around each):")
        print(table(header, rows))
    if audited:
        print(audited)
    if args.plot is not None:
        curves = [
            Curve("no-op sync, this tree",
                  [(n, min(t.seconds for t in r[1])) for n, r in results.items()],
                  (30, 90, 200)),
            Curve("unsealed no-op sync, this tree",
                  [(n, min(t.seconds for t in wholes[n])) for n in results], (120, 160, 230)),
            Curve("archiver --version", [(n, startup) for n in results], (130, 130, 130)),
            Curve("target", list(TARGETS.items()), (0, 0, 0), joined=False),
        ]  # fmt: skip
        if args.base is not None:
            curves.insert(1, Curve("no-op sync, base",
                                   [(n, min(t.seconds for t in r[2])) for n, r in results.items()],
                                   (200, 60, 40)))  # fmt: skip
        plot(args.plot, "no-op sync: seconds against videos, start-up included", curves)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
