"""archiver download against aria2c, curl and wget over a school's poor line, all in the same run.

Targets (issue 14, "Speed where it matters"), on a line of 2 MiB/s a connection, 8 MiB/s in
all, 0.3 s round trip:
- one 40 MB video: archiver's wall time ≤ 1.0× ``aria2c -x4 -s4``'s;
- 40 videos of 1.6 MB: ≤ 1.0× the best of ``aria2c -j4`` and ``curl --parallel-max 4``.

The files are served by nginx on 127.0.0.1 (Range, If-Range, a strong ETag and Last-Modified,
as PeerTube's nginx does), behind the project's link emulator (``bench/linkemu.py``: its
docstring says what it emulates and what it does not; no packet loss, no congestion control).
Every tool runs end to end as a user types it, start-up included, one after the other in turns
(run 1 of each tool, then run 2 of each...), and the best of ``--runs`` is kept: other load on
a shared machine only ever adds time (the medians, and their ratio, are reported as well).
Each tool's files are checked against the served ones (sha256) after every run, so a fast
wrong download never counts. The emulator counts the connections each run opened and the
bytes it carried, and keeps a timeline: each run prints when its first connection opened
after the command started (start-up: imports, the catalog, planning) and how long the
command took to exit after the last byte the line delivered (checks, commit, exit), on the
emulator's clock; the report gives their medians.

aria2c splits a file only into ranges of at least ``--min-split-size`` (``-k``, 20 MiB by
default) and never splits a range under twice that: as typed, ``aria2c -x4 -s4`` fetches a
40 MB file over one connection. So ``aria2c -x4 -s4 -k1M`` is measured too (four connections
for real), and the single file's target is taken against the faster of the two.

archiver fetches a file over one connection today. When ``archiver download --help`` lists
``--connections``, the single file is fetched with ``--connections N`` (default 4) and, for
reference, ``--connections 1``; the 40 files get archiver's default with ``--jobs 4``.

Run: ``.venv/bin/python bench/bench_poorline.py`` (needs the Debian packages nginx-light, curl,
wget, aria2: installed when root). Quick check: ``--runs 1 --size-mb 8 --count 8``. The
dropping line (``--scenario drop``) resets every connection after ``--drop-after`` bytes and
reports the bytes carried beyond the file's size. ``--against SRC...`` also runs archiver from
each ``SRC`` folder (another version's ``src/``, put on ``PYTHONPATH``), in turns with the
rest: a change and the code before it, measured in the same run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from bench_download import archiver_command, manifest_for
from common import Nginx, ensure_tools, make_file, timed
from linkemu import MIB, Link, LinkEmulator, parse_size

MB = 1_000_000  # the sizes are in MB, as a video's page shows them
# ``--only``: besides archiver's run, measure only the tools whose name holds one of these.
ONLY: list[str] = []


@dataclass(frozen=True)
class Tool:
    """A peer (or archiver) as a user types it, and where its files land, in served order."""

    name: str
    command: Callable[[], list[str]]
    outputs: Callable[[], list[Path]]


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_rss_mib: float
    connections: int
    bytes_down: int
    first_connect: float  # seconds from the command's start to the line's first connection
    after_last_byte: float  # seconds from the last byte the line delivered to the exit


def archiver_options() -> set[str]:
    """The long options ``archiver download --help`` lists (``--connections`` once it exists)."""
    text = subprocess.run(
        [sys.executable, "-m", "archiver", "download", "--help"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {word.rstrip(",=") for word in text.split() if word.startswith("--")}


def version(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError:
        return "missing"
    lines = (done.stdout or done.stderr).splitlines()
    return " ".join(lines[0].split()[:3]) if lines else "?"  # "curl 7.88.1 (x86_64-...)"


def digest(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def held_video(archive: Path, item: str) -> Path:
    """The file archiver holds for ``item``: ``media/<item>/`` keeps it named for its role
    (``video.mp4``) beside ``entry.json``."""
    folder = archive / "media" / item
    found = sorted(p for p in folder.glob("*") if p.is_file() and p.name != "entry.json")
    return found[0] if len(found) == 1 else folder / "(no single video)"


def fresh(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)


def measure(
    tools: list[Tool], expected: list[str], out: Path, line: LinkEmulator, runs: int
) -> dict[str, list[Run]]:
    """Every tool ``runs`` times, in turns; each run's files checked against ``expected``."""
    if ONLY:  # archiver's runs, and the peers asked for
        tools = [t for t in tools if t.name.startswith("archiv") or any(w in t.name for w in ONLY)]
    results: dict[str, list[Run]] = {tool.name: [] for tool in tools}
    for turn in range(runs):
        for tool in tools:
            fresh(out)
            line.reset()
            started = time.monotonic()  # the emulator's clock
            try:
                timing = timed(tool.command())
            except RuntimeError as exc:  # a peer that gives up (aria2c on a dropping line)
                if tool.name.startswith("archiv"):
                    raise
                line.reset()
                print(f"  run {turn + 1}  {tool.name:38s} failed: {exc}".splitlines()[0])
                continue
            ended = started + timing.seconds
            carried = line.reset()
            got = tool.outputs()
            for path, want in zip(got, expected, strict=True):
                if not path.is_file():
                    raise SystemExit(f"bench: {tool.name}: {path} is missing after the run")
                if digest(path) != want:
                    raise SystemExit(f"bench: {tool.name}: {path} differs from the served file")
            first = min(carried.opened, default=ended) - started
            last = ended - (carried.last_down or ended)
            run = Run(
                timing.seconds,
                timing.peak_rss_mib,
                carried.connections,
                carried.bytes_down,
                first,
                last,
            )
            results[tool.name].append(run)
            print(
                f"  run {turn + 1}  {tool.name:38s} {run.seconds:7.2f} s  "
                f"{run.connections:3d} connections  {run.bytes_down / MIB:7.1f} MiB carried  "
                f"first connection +{first:.3f} s, exit {last:.3f} s after the last byte",
                flush=True,
            )
    shutil.rmtree(out, ignore_errors=True)
    return {name: runs for name, runs in results.items() if runs}  # peers that never finished


def best(runs: list[Run]) -> Run:
    return min(runs, key=lambda r: r.seconds)


def median(runs: list[Run]) -> float:
    return statistics.median(r.seconds for r in runs)


def report(
    title: str, results: dict[str, list[Run]], target_peers: list[str], target_name: str
) -> dict[str, float]:
    """The table of best and median times, archiver's ratios to the best peer and to the
    target: of the best runs (the target's measure), and of the medians (for a loaded machine)."""
    print(f"\n{title}")
    for name, runs in results.items():
        b = best(runs)
        every = ", ".join(f"{r.seconds:.2f}" for r in runs)
        print(
            f"  {name:38s} best {b.seconds:7.2f} s  median {median(runs):7.2f} s  ({every})  "
            f"{b.connections} connections, peak RSS {b.peak_rss_mib:6.1f} MiB; medians: first "
            f"connection +{statistics.median(r.first_connect for r in runs):.3f} s, exit "
            f"{statistics.median(r.after_last_byte for r in runs):.3f} s after the last byte"
        )
    archiver_name = next(iter(results))
    mine, mine_median = best(results[archiver_name]).seconds, median(results[archiver_name])
    peers = {name: best(r).seconds for name, r in results.items() if not name.startswith("archiv")}
    if not peers:
        return {}
    best_peer = min(peers, key=peers.__getitem__)
    targets = [name for name in target_peers if name in peers] or [best_peer]
    target = min(peers[name] for name in targets)
    target_median = min(median(results[name]) for name in targets)
    ratio_best = mine / peers[best_peer]
    ratio_target = mine / target
    verdict = "met" if ratio_target <= 1.0 else "NOT met"
    for name in results:
        if name != archiver_name:
            print(
                f"  {archiver_name} / {name} = {mine / best(results[name]).seconds:.2f} "
                f"(medians: {mine_median / median(results[name]):.2f})"
            )
    print(f"  {archiver_name} / {best_peer} (best peer) = {ratio_best:.2f}")
    print(
        f"  {archiver_name} / {target_name} = {ratio_target:.2f} (target ≤ 1.00: {verdict}; "
        f"medians: {mine_median / target_median:.2f})"
    )
    return {
        "ratio_best_peer": ratio_best,
        "ratio_target": ratio_target,
        "ratio_target_medians": mine_median / target_median,
    }


def one_file(
    work: Path, served: Path, line: LinkEmulator, args: argparse.Namespace, connections: bool
) -> dict[str, list[Run]]:
    name = "big.mp4"
    make_file(served / name, int(args.size_mb * MB), seed=1)
    expected = [digest(served / name)]
    url = line.url(name)
    out = work / "out"
    manifest = manifest_for([url], work / "one.json")
    saved = [out / name]

    def aria2c(*flags: str) -> Callable[[], list[str]]:
        return lambda: ["aria2c", "-q", *flags, "--file-allocation=none", "-d", str(out),
                        "-o", name, url]  # fmt: skip

    archive = out / "archive"

    def held() -> list[Path]:
        return [held_video(archive, "item-000")]

    tools = []
    if connections:
        n = str(args.connections)
        tools.append(Tool(f"archiver --connections {n}",
                          lambda: archiver_command(manifest, archive, "--connections", n),
                          held))  # fmt: skip
        tools.append(Tool("archiver --connections 1 (reference)",
                          lambda: archiver_command(manifest, archive, "--connections", "1"),
                          held))  # fmt: skip
        tools[1:1] = [Tool(f"archiver --connections {n} ({source})",
                           lambda source=source: ["env", f"PYTHONPATH={source}",
                                                  *archiver_command(manifest, archive,
                                                                    "--connections", n)],
                           held) for source in args.against]  # fmt: skip
    else:
        tools.append(
            Tool("archiver (one connection)", lambda: archiver_command(manifest, archive), held)
        )
    tools += [
        Tool("aria2c -x4 -s4", aria2c("-x4", "-s4"), lambda: saved),
        Tool("aria2c -x4 -s4 -k1M", aria2c("-x4", "-s4", "-k1M"), lambda: saved),
        Tool("aria2c -x1", aria2c("-x1"), lambda: saved),
        Tool("curl", lambda: ["curl", "-sS", "-o", str(out / name), url], lambda: saved),
        Tool("wget", lambda: ["wget", "-q", "-O", str(out / name), url], lambda: saved),
    ]
    print(f"\nOne {args.size_mb:g} MB file over {line.link.describe()}:", flush=True)
    results = measure(tools, expected, out, line, args.runs)
    (served / name).unlink()
    return results


def many_files(
    work: Path, served: Path, line: LinkEmulator, args: argparse.Namespace
) -> dict[str, list[Run]]:
    names = [f"f{i:03d}.mp4" for i in range(args.count)]
    for i, name in enumerate(names):
        make_file(served / name, int(args.small_mb * MB), seed=100 + i)
    expected = [digest(served / name) for name in names]
    urls = [line.url(name) for name in names]
    out = work / "out"
    manifest = manifest_for(urls, work / "many.json")
    listing = work / "urls.txt"
    listing.write_text("\n".join(urls) + "\n", encoding="utf-8")
    saved = [out / name for name in names]
    jobs = str(args.jobs)
    tools = [
        Tool(f"archiver --jobs {jobs}",
             lambda: archiver_command(manifest, out / "archive", "--jobs", jobs),
             lambda: [held_video(out / "archive", f"item-{i:03d}") for i in range(args.count)],),
        *[Tool(f"archiver --jobs {jobs} ({source})",
               lambda source=source: ["env", f"PYTHONPATH={source}",
                                      *archiver_command(manifest, out / "archive", "--jobs", jobs)],
               lambda: [held_video(out / "archive", f"item-{i:03d}") for i in range(args.count)])
          for source in args.against],
        Tool(f"aria2c -j{jobs}",
             lambda: ["aria2c", "-q", f"-j{jobs}", "--file-allocation=none", "-d", str(out),
                      "-i", str(listing)],
             lambda: saved),
        Tool(f"curl --parallel --parallel-max {jobs}",
             lambda: ["curl", "-sS", "--parallel", "--parallel-max", jobs, "--output-dir",
                      str(out), "--remote-name-all", *urls],
             lambda: saved),
    ]  # fmt: skip
    print(f"\n{args.count} files of {args.small_mb:g} MB over {line.link.describe()}:", flush=True)
    results = measure(tools, expected, out, line, args.runs)
    for name in names:
        (served / name).unlink()
    return results


def dropping_line(
    work: Path, served: Path, nginx: Nginx, args: argparse.Namespace, connections: bool
) -> dict[str, list[Run]]:
    """The single file again, over the same line dropping every connection after
    ``--drop-after`` bytes: the bytes carried beyond the file's size were fetched twice (or
    are response heads, a few hundred bytes each)."""
    link = Link(
        rtt=args.rtt, per_connection=args.per_conn, line=args.line, drop_after=args.drop_after
    )
    name = "drop.mp4"
    size = int(args.size_mb * MB)
    make_file(served / name, size, seed=2)
    expected = [digest(served / name)]
    out = work / "out"
    with LinkEmulator(("127.0.0.1", nginx.port), link) as line:
        url = line.url(name)
        manifest = manifest_for([url], work / "drop.json")
        extra = ["--connections", str(args.connections)] if connections else []
        label = f"archiver --connections {args.connections}" if connections else "archiver"
        tools = [
            Tool(label, lambda: archiver_command(manifest, out / "archive", *extra),
                 lambda: [held_video(out / "archive", "item-000")]),
            Tool("aria2c -x4 -s4 -k1M",
                 lambda: ["aria2c", "-q", "-x4", "-s4", "-k1M", "--file-allocation=none",
                          "-d", str(out), "-o", name, url],
                 lambda: [out / name]),
        ]  # fmt: skip
        print(f"\nOne {args.size_mb:g} MB file over {link.describe()}:", flush=True)
        results = measure(tools, expected, out, line, args.runs)
    (served / name).unlink()
    print(
        f"\nDropping line, {args.size_mb:g} MB file, reset every {args.drop_after / MIB:g} MiB "
        "(bytes carried beyond the file's size, response heads included; target ≤ 2 %):"
    )
    for tool_name, runs in results.items():
        b = best(runs)
        extra_pct = 100 * (b.bytes_down - size) / size
        print(
            f"  {tool_name:38s} best {b.seconds:7.2f} s  {b.connections} connections, "
            f"{b.bytes_down:,} bytes carried for {size:,}: {extra_pct:.2f} % more"
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size-mb", type=float, default=40.0, help="the single file, MB")
    parser.add_argument("--small-mb", type=float, default=1.6, help="each of the many, MB")
    parser.add_argument("--count", type=int, default=40, help="how many small files")
    parser.add_argument("--rtt", type=float, default=0.3, help="round trip added, seconds")
    parser.add_argument("--per-conn", type=parse_size, default=2 * MIB,
                        help="cap of each connection, bytes/s (2M = 2 MiB/s)")  # fmt: skip
    parser.add_argument("--line", type=parse_size, default=8 * MIB,
                        help="cap of the whole line, bytes/s (8M)")  # fmt: skip
    parser.add_argument("--drop-after", type=parse_size, default=8 * MIB,
                        help="the dropping line resets a connection after this (8M)")  # fmt: skip
    parser.add_argument("--runs", type=int, default=3, help="best of this many, in turns")
    parser.add_argument("--connections", type=int, default=4,
                        help="archiver's --connections for one file, if it has it")  # fmt: skip
    parser.add_argument("--jobs", type=int, default=4, help="files at once, every tool")
    parser.add_argument("--scenario", nargs="+", choices=["one", "many", "drop"],
                        default=["one", "many"], help="what to measure (one many)")  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write every run here")
    parser.add_argument("--only", nargs="+", default=[], metavar="WORD",
                        help="archiver and only the tools named with a WORD")  # fmt: skip
    parser.add_argument("--against", nargs="+", type=Path, default=[], metavar="SRC",
                        help="also archiver from each SRC folder (another version's src/, on "
                        "PYTHONPATH), in turns with the others")  # fmt: skip
    args = parser.parse_args()
    ONLY[:] = args.only
    ensure_tools()
    connections = "--connections" in archiver_options()
    print(
        f"archiver: {version([sys.executable, '-m', 'archiver', '--version'])}"
        f" ({'has' if connections else 'no'} --connections); "
        f"{version(['aria2c', '--version'])}; {version(['curl', '--version'])}; "
        f"{version(['wget', '--version'])}"
    )
    link = Link(rtt=args.rtt, per_connection=args.per_conn, line=args.line)
    results: dict[str, object] = {"link": asdict(link), "args": vars(args) | {"json": None}}
    with tempfile.TemporaryDirectory(prefix="bench-poorline-") as temp:
        work = Path(temp)
        served = work / "served"
        served.mkdir()
        # nginx's workers run as an unprivileged user: let them read what they serve.
        work.chmod(0o755)
        served.chmod(0o755)
        with Nginx(served) as nginx:
            with LinkEmulator(("127.0.0.1", nginx.port), link) as line:
                if "one" in args.scenario:
                    one = one_file(work, served, line, args, connections)
                    size = f"{args.size_mb:g} MB"
                    summary = report(f"One {size} file, best of {args.runs}:", one,
                                     ["aria2c -x4 -s4", "aria2c -x4 -s4 -k1M"],
                                     "best of aria2c -x4 -s4 and -x4 -s4 -k1M")  # fmt: skip
                    results["one"] = {"runs": _plain(one), **summary}
                if "many" in args.scenario:
                    many = many_files(work, served, line, args)
                    j = args.jobs
                    summary = report(
                        f"{args.count} files of {args.small_mb:g} MB, best of {args.runs}:",
                        many,
                        [f"aria2c -j{j}", f"curl --parallel --parallel-max {j}"],
                        f"best of aria2c -j{j} and curl --parallel-max {j}",
                    )
                    results["many"] = {"runs": _plain(many), **summary}
            if "drop" in args.scenario:
                drop = dropping_line(work, served, nginx, args, connections)
                results["drop"] = {"runs": _plain(drop)}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")


def _plain(results: dict[str, list[Run]]) -> dict[str, list[dict[str, float]]]:
    return {name: [asdict(r) for r in runs] for name, runs in results.items()}


if __name__ == "__main__":
    main()
