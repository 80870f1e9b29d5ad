"""archiver download against curl, wget, aria2c and yt-dlp, all on the same nginx, same run.

Targets (the downloader issue):
- one 512 MiB file: archiver's wall time ≤ 1.25× yt-dlp's and ≤ curl's, sha256 included;
  archiver's peak RSS ≤ 100 MiB;
- 100 files of 8 MiB, ``--jobs 8``: ≤ 1.5× ``aria2c -j 8``;
- a connection dropped every 8 MiB: completes, with ≤ 2% of the bytes fetched twice.

Every command runs end to end as a user types it (start-up included), in turns; the best of
``--runs`` is kept, since other load on a shared machine only ever adds time, and the median
is reported beside it. The served files are
incompressible random bytes (transfer speed does not depend on what the bytes encode).

Run: ``.venv/bin/python bench/bench_download.py`` (needs the Debian packages nginx-light, curl,
wget, aria2 — installed when root — and ``pip install -e .[bench]`` for yt-dlp).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from archiver.entry import Entry, Source, Video
from archiver.manifest import Manifest, write_manifest
from common import Nginx, Timing, ensure_tools, make_file, timed

MIB = 1024 * 1024
ROOT = Path(__file__).resolve().parent.parent


def manifest_for(urls: list[str], path: Path) -> Path:
    entries = tuple(
        Entry(
            id=f"item-{i:03d}",
            title=f"Item {i}",
            area=None,
            description=None,
            source=Source(path=f"{i}.md", sha256="0" * 64),
            video=Video(url=url, embed_url=None),
        )
        for i, url in enumerate(urls)
    )
    write_manifest(Manifest(entries=entries), path)
    return path


def archiver_command(manifest: Path, archive: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "archiver", "-q", "download", str(manifest), "--archive",
            str(archive), *extra]  # fmt: skip


def _digest(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


@dataclass(frozen=True)
class Result:
    """A tool's best run (its wall time and peak RSS), and the median wall time of its runs."""

    seconds: float
    median: float
    peak_rss_mib: float


def in_turns(
    runs: int,
    prepare: Callable[[], None],
    commands: dict[str, Callable[[], list[str]]],
    check: Callable[[str], None] | None = None,
) -> dict[str, Result]:
    """Every command ``runs`` times, in turns (run 1 of each, then run 2...), so that a
    spell of load from other work on a shared machine falls on every tool alike; the best
    run of each, with the median of its runs. ``check(tool)`` after
    each run (archiver's file against the served one)."""
    every: dict[str, list[Timing]] = {tool: [] for tool in commands}
    for _ in range(runs):
        for tool, command in commands.items():
            prepare()
            every[tool].append(timed(command()))
            if check is not None:
                check(tool)
    results = {}
    for tool, timings in every.items():
        fastest = min(timings, key=lambda t: t.seconds)
        median = statistics.median(t.seconds for t in timings)
        results[tool] = Result(fastest.seconds, median, fastest.peak_rss_mib)
    return results


def fresh(folder: Path) -> Callable[[], None]:
    def prepare() -> None:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)

    return prepare


def one_large_file(
    work: Path, served: Path, nginx: Nginx, size_mib: int, runs: int
) -> dict[str, Result]:
    name = "big.mp4"
    make_file(served / name, size_mib * MIB, seed=1)
    url = nginx.url(name)
    out = work / "out"
    manifest = manifest_for([url], work / "one.json")
    ytdlp = shutil.which("yt-dlp") or str(Path(sys.executable).with_name("yt-dlp"))
    commands: dict[str, Callable[[], list[str]]] = {
        "archiver": lambda: archiver_command(manifest, out / "archive"),
        "curl": lambda: ["curl", "-sS", "-o", str(out / name), url],
        "wget": lambda: ["wget", "-q", "-O", str(out / name), url],
        "aria2c": lambda: [
            *("aria2c", "-q", "-x1", "-s1", "--file-allocation=none"),
            *("-d", str(out), "-o", name, url),
        ],
        "yt-dlp": lambda: [ytdlp, "-q", "--no-progress", "--no-part", "-o", str(out / name), url],
    }
    # curl "with sha256 included" as well: download, then hash, as a user would.
    commands["curl + sha256sum"] = lambda: [
        *("sh", "-c", f"curl -sS -o {out / name} {url} && sha256sum {out / name}")
    ]
    # Hash by blocks: a 512 MiB read would raise the peak RSS of every child forked after.
    expected = _digest(served / name)

    def check(tool: str) -> None:
        # The archive keeps bytes by their sha256: the served file's must be there, whole.
        if tool == "archiver":
            held = out / "archive" / "store" / expected[:2] / expected
            if not held.is_file() or _digest(held) != expected:
                raise SystemExit("archiver's file does not match the served one")

    results = in_turns(runs, fresh(out), commands, check)
    (served / name).unlink()
    shutil.rmtree(out, ignore_errors=True)
    return results


def many_files(work: Path, served: Path, nginx: Nginx, count: int, runs: int) -> dict[str, Result]:
    urls = []
    for i in range(count):
        make_file(served / f"f{i:03d}.mp4", 8 * MIB, seed=100 + i)
        urls.append(nginx.url(f"f{i:03d}.mp4"))
    out = work / "out"
    manifest = manifest_for(urls, work / "many.json")
    listing = work / "urls.txt"
    listing.write_text("\n".join(urls) + "\n", encoding="utf-8")
    commands: dict[str, Callable[[], list[str]]] = {
        "archiver --jobs 8": lambda: archiver_command(
            manifest, out / "archive", "--jobs", "8", "--per-host", "8"
        ),
        "aria2c -j 8": lambda: [
            *("aria2c", "-q", "-j", "8", "-x1", "-s1", "--file-allocation=none"),
            *("-d", str(out), "-i", str(listing)),
        ],
    }
    results = in_turns(runs, fresh(out), commands)
    for i in range(count):
        (served / f"f{i:03d}.mp4").unlink()
    shutil.rmtree(out, ignore_errors=True)
    return results


def dropping_line(work: Path, size_mib: int) -> dict[str, float | int | bool]:
    """A connection dropped after every 8 MiB of body: served by the test suite's fault server."""
    sys.path.insert(0, str(ROOT))
    from tests.server import FileServer

    server = FileServer()
    try:
        data = work / "drop.bin"
        make_file(data, size_mib * MIB, seed=7)
        content = data.read_bytes()
        server.add("/drop.mp4", content, drop_after=8 * MIB, drop_times=10_000)
        manifest = manifest_for([server.url("/drop.mp4")], work / "drop.json")
        archive = work / "drop-archive"
        timing = timed(archiver_command(manifest, archive, "--retries", "3"))
        expected = hashlib.sha256(content).hexdigest()
        held = archive / "store" / expected[:2] / expected  # kept by its sha256 (archive.md)
        whole = held.is_file() and _digest(held) == expected
        sent = sum(r.sent for r in server.requests("/drop.mp4"))
        return {
            "seconds": timing.seconds,
            "requests": len(server.requests("/drop.mp4")),
            "bytes_served": sent,
            "size": len(content),
            "refetched_pct": 100 * (sent - len(content)) / len(content),
            "whole": whole,
        }
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--drop-size-mib", type=int, default=128)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--only", choices=["one", "many", "drop"], help="run one scenario")
    args = parser.parse_args()
    ensure_tools()
    with tempfile.TemporaryDirectory(prefix="bench-dl-") as temp:
        work = Path(temp)
        served = work / "served"
        served.mkdir()
        # nginx's workers run as an unprivileged user: let them read what they serve.
        work.chmod(0o755)
        served.chmod(0o755)
        one: dict[str, Result] = {}
        many: dict[str, Result] = {}
        drop: dict[str, float | int | bool] = {}
        with Nginx(served) as nginx:
            if args.only in (None, "one"):
                one = one_large_file(work, served, nginx, args.size_mib, args.runs)
                report_one(one, args)
            if args.only in (None, "many"):
                many = many_files(work, served, nginx, args.count, args.runs)
                report_many(many, args)
        if args.only in (None, "drop"):
            drop = dropping_line(work, args.drop_size_mib)
            report_drop(drop, args)
        results = {
            "one": {k: v.__dict__ for k, v in one.items()},
            "many": {k: v.__dict__ for k, v in many.items()},
            "drop": drop,
        }
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


def report_one(one: dict[str, Result], args: argparse.Namespace) -> None:
    print(f"\nOne {args.size_mib} MiB file (best and median of {args.runs}, in turns):")
    for tool, t in one.items():
        print(
            f"  {tool:18s} {t.seconds:7.2f} s  median {t.median:7.2f} s   "
            f"peak RSS {t.peak_rss_mib:6.1f} MiB"
        )
    a, m = one["archiver"].seconds, one["archiver"].median
    # curl's target counts its sha256 too (archiver's time includes hashing every byte).
    for peer, target in (("yt-dlp", 1.25), ("curl + sha256sum", 1.00)):
        print(
            f"  archiver / {peer} = {a / one[peer].seconds:.2f} (target ≤ {target:.2f}; "
            f"medians: {m / one[peer].median:.2f})"
        )
    print(f"  archiver peak RSS = {one['archiver'].peak_rss_mib:.1f} MiB (target ≤ 100)")


def report_many(many: dict[str, Result], args: argparse.Namespace) -> None:
    print(f"\n{args.count} files of 8 MiB (best and median of {args.runs}, in turns):")
    for tool, t in many.items():
        print(
            f"  {tool:18s} {t.seconds:7.2f} s  median {t.median:7.2f} s   "
            f"peak RSS {t.peak_rss_mib:6.1f} MiB"
        )
    mine, peer = many["archiver --jobs 8"], many["aria2c -j 8"]
    print(
        f"  archiver / aria2c = {mine.seconds / peer.seconds:.2f} (target ≤ 1.5; "
        f"medians: {mine.median / peer.median:.2f})"
    )


def report_drop(drop: dict[str, float | int | bool], args: argparse.Namespace) -> None:
    print(f"\n{args.drop_size_mib} MiB over a connection dropped every 8 MiB:")
    print(
        f"  {drop['requests']:.0f} requests, {drop['bytes_served']:.0f} bytes served for "
        f"{drop['size']:.0f}: {drop['refetched_pct']:.2f}% fetched twice (target ≤ 2%), "
        f"whole: {bool(drop['whole'])}, {drop['seconds']:.1f} s"
    )


if __name__ == "__main__":
    main()
