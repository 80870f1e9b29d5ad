"""10,000 fiches → a manifest: a first manifest in ≤ 2 s on a 2-core machine (issue 14; the
foundation issue's was 3 s), and what a sync's cache of parsed fiches makes of a second.

Generates copies of the bundled seed fiche (each with its own UUID and title), then times:
- ``archiver manifest DIR -o FILE`` end to end, start-up included (the number that counts),
  with Python's bytecode cache on, as an installed archiver has it: wall time and CPU time
  (its worker processes included: less noisy than wall time on a shared machine); with
  ``--base``, in turns with another tree's CLI, whose manifest must be the same bytes;
- the same build in-process, as archiver reads a front matter: plain ``name: text`` lines
  directly, anything else with libyaml's C loader;
- the same build with PyYAML's pure-Python SafeLoader (python-frontmatter's default), as the
  peer measured in the same run, so the ratio means something on a noisy shared machine;
- the build a second sync makes, from the cache of parsed fiches (every fiche read and hashed,
  none parsed), against the first one, which parses all and writes the cache.

Run: ``.venv/bin/python bench/bench_manifest.py [--count 10000] [--runs 3] [--base OTHER/src]``
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

from archiver import front_matter
from archiver.collection import default_collection
from archiver.fiche_cache import FicheCache
from archiver.manifest import build_manifest, build_valid, dumps

SEED_UUID = "9520b54d-0a3c-43dc-8821-d559fa418cc6"


def make_collection(folder: Path, count: int) -> None:
    seed = next(default_collection().glob("*.md")).read_text(encoding="utf-8")
    for i in range(count):
        new_uuid = str(uuid.UUID(int=i + 1, version=4))
        text = seed.replace(SEED_UUID, new_uuid).replace(
            "title: Différencier", f"title: Vidéo {i} — Différencier"
        )
        sub = folder / f"area-{i % 10}"
        sub.mkdir(exist_ok=True)
        (sub / f"fiche-{i:05d}.md").write_text(text, encoding="utf-8")


def best_of(runs: int, action: object) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000, help="fiches to generate")
    parser.add_argument("--runs", type=int, default=3, help="CLI runs (in turns with --base)")
    parser.add_argument(
        "--base",
        type=Path,
        help="another tree's src/ (e.g. a git worktree's): its CLI in turns with this one,"
        " and its manifest compared byte for byte",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp, "fiches")
        folder.mkdir()
        make_collection(folder, args.count)
        size = sum(p.stat().st_size for p in folder.rglob("*.md"))
        out = Path(temp, "m.json")
        base_out = Path(temp, "base.json")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

        def run_cli(src: Path | None, target: Path) -> tuple[float, float]:
            """One ``archiver manifest`` (this tree's, or the one under ``src``): wall and
            CPU seconds (user and system, its worker processes included)."""
            target.unlink(missing_ok=True)
            cli = [sys.executable, "-m", "archiver", "-q", "manifest", str(folder), "-o"]
            extra = {} if src is None else {"PYTHONPATH": str(src)}
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run([*cli, str(target)], check=True, env={**env, **extra})
            wall = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            return wall, cpu

        run_cli(None, out)  # writes the bytecode cache
        cli_times: list[tuple[float, float]] = []
        base_times: list[tuple[float, float]] = []
        if args.base is not None:
            run_cli(args.base, base_out)
            if out.read_bytes() != base_out.read_bytes():
                sys.exit(f"the manifests differ: {out} and the base's {base_out}")
        for _ in range(args.runs):
            cli_times.append(run_cli(None, out))
            if args.base is not None:
                base_times.append(run_cli(args.base, base_out))
        fast = best_of(args.runs, lambda: dumps(build_manifest([folder])))
        cache_path = Path(temp, "cache", "fiches.json")
        cache_path.parent.mkdir()

        def cached_build() -> None:
            cache = FicheCache(cache_path)
            build_valid([folder], cache=cache)
            cache.save()

        cold = best_of(1, cached_build)
        warm = best_of(args.runs, cached_build)
        original = front_matter._SafeYAMLHandler.loader
        front_matter._SafeYAMLHandler.loader = yaml.SafeLoader
        try:
            slow = best_of(1, lambda: dumps(build_manifest([folder])))
        finally:
            front_matter._SafeYAMLHandler.loader = original

    print(f"fiches: {args.count} ({size / 1e6:.1f} MB)")
    walls = [wall for wall, _ in cli_times]
    print(
        f"archiver manifest (CLI, start-up included): best {min(walls):.2f} s, "
        f"median {statistics.median(walls):.2f} s over {args.runs} runs; CPU (workers"
        f" included) median {statistics.median(cpu for _, cpu in cli_times):.2f} s"
    )
    if base_times:
        ratios = [b[0] / c[0] for b, c in zip(base_times, cli_times, strict=True)]
        cpu_ratios = [b[1] / c[1] for b, c in zip(base_times, cli_times, strict=True)]
        print(
            f"  base, in turns (same bytes): best {min(b[0] for b in base_times):.2f} s,"
            f" median {statistics.median(b[0] for b in base_times):.2f} s; CPU median"
            f" {statistics.median(b[1] for b in base_times):.2f} s; base / this, median of"
            f" the rounds: {statistics.median(ratios):.2f} (wall),"
            f" {statistics.median(cpu_ratios):.2f} (CPU)"
        )
    print(f"in-process, archiver's reading (plain lines, else libyaml):  {fast:.2f} s")
    print(
        f"in-process, pure-Python SafeLoader (peer): {slow:.2f} s "
        f"(archiver's is {slow / fast:.1f}x faster)"
    )
    print(
        f"a sync's build: first (parses all, writes the cache) {cold:.2f} s;"
        f" second, from the cache {warm:.2f} s ({cold / warm:.1f}x faster)"
    )
    target = 2.0
    verdict = "PASS" if statistics.median(walls) <= target else "FAIL"
    print(f"target ≤ {target:.0f} s for {args.count:,} fiches: {verdict}")


if __name__ == "__main__":
    main()
