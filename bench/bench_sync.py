"""A no-op sync of a 100-video archive (target ≤ 1.5 s with start-up), and an archive audit's
hashing speed against ``sha256sum`` on the same files (target ≥ 80% of its speed).

The archive is made without a network (one ffmpeg clip, a distinct trailer per video); the
fiches point at an address nothing listens on, so a sync that asked anything would fail. The
no-op sync is compared with archiver's bare start-up (``archiver --version``), measured in the
same run. The audit reads files of ``--audit-mib`` MiB each, from the page cache for both tools.

Run: ``.venv/bin/python bench/bench_sync.py``
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from archiver.entry import Entry
from common import hold_videos, make_clip, make_entries, make_file, timed

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--audit-files", type=int, default=16)
    parser.add_argument("--audit-mib", type=int, default=64)
    args = parser.parse_args()
    archiver = [sys.executable, "-m", "archiver"]
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as temp:
        work = Path(temp)
        # Port 9 (discard): nothing listens, so any request would be a failure, not a no-op.
        entries = make_entries(args.videos, url="http://127.0.0.1:9/videos/{}-480.mp4")
        fiches = work / "fiches"
        write_fiches(fiches, entries)
        archive, kit = work / "archive", work / "kit"
        # The archive's ids come from the fiches' file names (no UUID in these URLs).
        hold_videos(archive, entries, make_clip(work / "clip.mp4"))
        sync = [*archiver, "-q", "sync", str(fiches), "--archive", str(archive), "--kit", str(kit)]
        subprocess.run(sync, check=True)  # the first sync: builds the kit, posters included
        noop = [timed(sync).seconds for _ in range(args.runs)]
        startup = [timed([*archiver, "--version"]).seconds for _ in range(args.runs)]

        audit_root = work / "audit"
        files = []
        for i in range(args.audit_files):
            path = work / f"a{i}.bin"
            make_file(path, args.audit_mib * 1024 * 1024, seed=i)
            files.append(path)
        big_entries = make_entries(args.audit_files)
        from archiver.archive import Archive
        from common import commit

        with Archive(audit_root) as store:
            for entry, path in zip(big_entries, files, strict=True):
                store.record_item(entry)
                commit(store, entry, path.read_bytes(), path.name)
                path.unlink()
        held = sorted(str(p) for p in (audit_root / "media").rglob("*.bin"))
        total = sum(Path(p).stat().st_size for p in held)
        subprocess.run(["cat", *held], stdout=subprocess.DEVNULL, check=True)  # warm the cache
        verify = [*archiver, "-q", "verify", "--archive", str(audit_root)]
        ours = min(timed(verify).seconds for _ in range(args.runs))
        peer = min(timed(["sha256sum", *held]).seconds for _ in range(args.runs))

    print(f"no-op sync of {args.videos} videos, CLI with start-up: best {min(noop):.2f} s,"
          f" worst {max(noop):.2f} s (target ≤ 1.5 s)")  # fmt: skip
    print(f"  archiver --version (start-up alone): best {min(startup):.2f} s")
    mib = total / 1024**2
    print(f"audit of {len(held)} files, {mib:.0f} MiB: archiver verify --archive {ours:.2f} s"
          f" ({mib / ours:.0f} MiB/s); sha256sum {peer:.2f} s ({mib / peer:.0f} MiB/s);"
          f" archiver at {100 * peer / ours:.0f}% of sha256sum's speed (target ≥ 80%)")  # fmt: skip


if __name__ == "__main__":
    main()
