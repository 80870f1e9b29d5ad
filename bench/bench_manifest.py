"""10,000 fiches → a manifest: a first manifest in ≤ 2 s on a 2-core machine (issue 14; the
foundation issue's was 3 s), and what a sync's cache of parsed fiches makes of a second.

Generates copies of the bundled seed fiche (each with its own UUID and title), then times:
- ``archiver manifest DIR -o FILE`` end to end, start-up included (the number that counts),
  with Python's bytecode cache on, as an installed archiver has it;
- the same build in-process, as archiver reads a front matter: plain ``name: text`` lines
  directly, anything else with libyaml's C loader;
- the same build with PyYAML's pure-Python SafeLoader (python-frontmatter's default), as the
  peer measured in the same run, so the ratio means something on a noisy shared machine;
- the build a second sync makes, from the cache of parsed fiches (every fiche read and hashed,
  none parsed), against the first one, which parses all and writes the cache.

Run: ``.venv/bin/python bench/bench_manifest.py [--count 10000]``
"""

from __future__ import annotations

import argparse
import os
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
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--base", type=Path, help="another tree's src/: its CLI, in turns")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp, "fiches")
        folder.mkdir()
        make_collection(folder, args.count)
        size = sum(p.stat().st_size for p in folder.rglob("*.md"))
        out = Path(temp, "m.json")
        cli = [sys.executable, "-m", "archiver", "-q", "manifest", str(folder), "-o", str(out)]

        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

        def run_cli() -> None:
            out.unlink(missing_ok=True)
            subprocess.run(cli, check=True, env=env)

        def run_base() -> None:
            out.unlink(missing_ok=True)
            subprocess.run(cli, check=True, env={**env, "PYTHONPATH": str(args.base)})

        run_cli()  # writes the bytecode cache
        cli_times, base_times = [], []
        if args.base is not None:
            run_base()
        for _ in range(args.runs):
            cli_times.append(best_of(1, run_cli))
            if args.base is not None:
                base_times.append(best_of(1, run_base))
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
    print(
        f"archiver manifest (CLI, start-up included): best {min(cli_times):.2f} s, "
        f"median {statistics.median(cli_times):.2f} s over {args.runs} runs"
    )
    if base_times:
        print(
            f"  base, in turns: best {min(base_times):.2f} s"
            f" (base / this = {min(base_times) / min(cli_times):.2f})"
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
    verdict = "PASS" if min(cli_times) <= target else "FAIL"
    print(f"target ≤ {target:.0f} s for {args.count:,} fiches: {verdict}")


if __name__ == "__main__":
    main()
