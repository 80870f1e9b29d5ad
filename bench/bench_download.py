"""archiver download against curl, wget, aria2c and yt-dlp, all on the same nginx, same run.

Targets (the downloader issue):
- one 512 MiB file: archiver's wall time ≤ 1.25× yt-dlp's and ≤ curl's, sha256 included;
  archiver's peak RSS ≤ 100 MiB;
- 100 files of 8 MiB, ``--jobs 8``: ≤ 1.5× ``aria2c -j 8``;
- a connection dropped every 8 MiB: completes, with ≤ 2% of the bytes fetched twice.

Every command runs end to end as a user types it (start-up included); the best of ``--runs``
is kept, since other load on a shared machine only ever adds time. The served files are
incompressible random bytes (transfer speed does not depend on what the bytes encode).

Run: ``.venv/bin/python bench/bench_download.py`` (needs the Debian packages nginx-light, curl,
wget, aria2 — installed when root — and ``pip install -e .[bench]`` for yt-dlp).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
from collections.abc import Callable
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


def best(runs: int, prepare: Callable[[], None], command: Callable[[], list[str]]) -> Timing:
    results = []
    for _ in range(runs):
        prepare()
        results.append(timed(command()))
    return min(results, key=lambda t: t.seconds)


def fresh(folder: Path) -> Callable[[], None]:
    def prepare() -> None:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)

    return prepare


def one_large_file(
    work: Path, served: Path, nginx: Nginx, size_mib: int, runs: int
) -> dict[str, Timing]:
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
    results: dict[str, Timing] = {}
    for tool, command in commands.items():
        results[tool] = best(runs, fresh(out), command)
        if tool == "archiver":
            # The archive keeps bytes by their sha256: the served file's must be there, whole.
            # Hash by blocks: a 512 MiB read would raise the peak RSS of every child forked after.
            expected = _digest(served / name)
            held = out / "archive" / "store" / expected[:2] / expected
            if not held.is_file() or _digest(held) != expected:
                raise SystemExit("archiver's file does not match the served one")
    # curl "with sha256 included" as well: download, then hash, as a user would.
    results["curl + sha256sum"] = best(
        runs,
        fresh(out),
        lambda: ["sh", "-c", f"curl -sS -o {out / name} {url} && sha256sum {out / name}"],
    )
    (served / name).unlink()
    shutil.rmtree(out, ignore_errors=True)
    return results


def many_files(work: Path, served: Path, nginx: Nginx, count: int, runs: int) -> dict[str, Timing]:
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
    results = {tool: best(runs, fresh(out), command) for tool, command in commands.items()}
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
        held = archive / "media" / "item-000" / "drop.mp4"
        whole = hashlib.sha256(held.read_bytes()).hexdigest() == hashlib.sha256(content).hexdigest()
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
        one: dict[str, Timing] = {}
        many: dict[str, Timing] = {}
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


def report_one(one: dict[str, Timing], args: argparse.Namespace) -> None:
    print(f"\nOne {args.size_mib} MiB file (best of {args.runs}):")
    for tool, t in one.items():
        print(f"  {tool:18s} {t.seconds:7.2f} s   peak RSS {t.peak_rss_mib:6.1f} MiB")
    a = one["archiver"].seconds
    print(f"  archiver / yt-dlp = {a / one['yt-dlp'].seconds:.2f} (target ≤ 1.25)")
    print(f"  archiver / curl   = {a / one['curl'].seconds:.2f} (target ≤ 1.00)")
    print(f"  archiver peak RSS = {one['archiver'].peak_rss_mib:.1f} MiB (target ≤ 100)")


def report_many(many: dict[str, Timing], args: argparse.Namespace) -> None:
    print(f"\n{args.count} files of 8 MiB (best of {args.runs}):")
    for tool, t in many.items():
        print(f"  {tool:18s} {t.seconds:7.2f} s   peak RSS {t.peak_rss_mib:6.1f} MiB")
    ratio = many["archiver --jobs 8"].seconds / many["aria2c -j 8"].seconds
    print(f"  archiver / aria2c = {ratio:.2f} (target ≤ 1.5)")


def report_drop(drop: dict[str, float | int | bool], args: argparse.Namespace) -> None:
    print(f"\n{args.drop_size_mib} MiB over a connection dropped every 8 MiB:")
    print(
        f"  {drop['requests']:.0f} requests, {drop['bytes_served']:.0f} bytes served for "
        f"{drop['size']:.0f}: {drop['refetched_pct']:.2f}% fetched twice (target ≤ 2%), "
        f"whole: {bool(drop['whole'])}, {drop['seconds']:.1f} s"
    )


if __name__ == "__main__":
    main()
