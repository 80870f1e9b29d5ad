"""10,000 fiches → a manifest: the foundation issue's target is ≤ 3 s on a 2-core machine.

Generates copies of the bundled seed fiche (each with its own UUID and title), then times:
- ``archiver manifest DIR -o FILE`` end to end, start-up included (the number that counts);
- the same build in-process with libyaml's C loader (what archiver uses);
- the same build with PyYAML's pure-Python SafeLoader (python-frontmatter's default), as the
  peer measured in the same run, so the ratio means something on a noisy shared machine.

Run: ``.venv/bin/python bench/bench_manifest.py [--count 10000]``
"""

from __future__ import annotations

import argparse
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
from archiver.manifest import build_manifest, dumps

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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp, "fiches")
        folder.mkdir()
        make_collection(folder, args.count)
        size = sum(p.stat().st_size for p in folder.rglob("*.md"))
        out = Path(temp, "m.json")
        cli = [sys.executable, "-m", "archiver", "-q", "manifest", str(folder), "-o", str(out)]

        def run_cli() -> None:
            out.unlink(missing_ok=True)
            subprocess.run(cli, check=True)

        cli_times = [best_of(1, run_cli) for _ in range(args.runs)]
        fast = best_of(args.runs, lambda: dumps(build_manifest([folder])))
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
    print(f"in-process, libyaml CSafeLoader:  {fast:.2f} s")
    print(
        f"in-process, pure-Python SafeLoader (peer): {slow:.2f} s "
        f"(C loader is {slow / fast:.1f}x faster)"
    )
    target = 3.0
    verdict = "PASS" if min(cli_times) <= target else "FAIL"
    print(f"target ≤ {target:.0f} s for 10,000 fiches: {verdict}")


if __name__ == "__main__":
    main()
