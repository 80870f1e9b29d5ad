"""Start-up and the idle time between files (issue 14's poor line): what a download imports,
the kit's path pattern that compiles at every start, and the slot a file gives back before
its checks and commit. The timings themselves are in ``bench/bench_poorline.py``; these
tests guard what makes them, so that the gain cannot silently regress."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import archiver
from archiver.archive import Archive, FetchedFile, FileRecord
from archiver.fetch import DownloadSettings, Status, download_all
from archiver.fetch.http import make_client
from archiver.fetch.plan import Job
from archiver.kit import ownership

from .conftest import content_of, make_entry
from .server import FileServer
from .test_segments import Counting

# What a download never uses: YAML and the fiches (a manifest is read as JSON), the kit's
# templates and Markdown, PyAV. Each costs tens of ms at every start.
NOT_FOR_A_DOWNLOAD = ("yaml", "frontmatter", "archiver.fiches", "jinja2", "markdown_it", "av")


def _loaded_after(statement: str) -> list[str]:
    """The modules of NOT_FOR_A_DOWNLOAD a fresh interpreter holds after ``statement``."""
    code = (
        f"import json, sys\n{statement}\n"
        f"print(json.dumps([m for m in {list(NOT_FOR_A_DOWNLOAD)!r} if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    loaded: list[str] = json.loads(done.stdout)
    return loaded


@pytest.mark.parametrize("statement", ["import archiver", "import archiver.fetch"])
def test_a_download_imports_no_yaml_fiches_templates_or_pyav(statement: str) -> None:
    assert _loaded_after(statement) == []


def test_the_lazy_names_are_the_modules_own() -> None:
    # The names building a manifest needs come when first asked for, and are the real ones.
    from archiver import fiches, manifest

    assert archiver.build_manifest is manifest.build_manifest
    assert archiver.write_manifest is manifest.write_manifest
    assert archiver.dumps is manifest.dumps
    assert archiver.find_fiches is fiches.find_fiches
    assert archiver.parse_fiche is fiches.parse_fiche
    assert archiver.Manifest is manifest.Manifest
    assert set(archiver.__all__) <= set(dir(archiver))
    with pytest.raises(AttributeError, match="no_such_name"):
        getattr(archiver, "no_such_name")  # noqa: B009 - the name is the point


def test_the_kit_path_class_allows_exactly_what_it_always_did() -> None:
    # The class as it was written (all of Unicode but the forbidden characters), against the
    # ASCII class that compiles in 0.5 ms, over every code point.
    every = "".join(map(chr, range(sys.maxunicode + 1)))
    before = re.compile(r"[^\x00-\x1f\x80-\U0010ffff<>:\"/\\|?*]")
    now = re.compile(ownership._ALLOWED)
    allowed = "".join(now.findall(every))
    assert allowed == "".join(before.findall(every))
    assert len(allowed) == 95 - 9 + 1  # printable ASCII, less the nine forbidden, and DEL
    assert ownership.kit_name("data/videos/a/video-720p.mp4")
    assert not ownership.kit_name("data/vidéos/a.mp4")
    assert not ownership.kit_name("data/a:b.mp4")


class _CommitWaits(Archive):
    """An archive whose first commit waits (in its worker thread) until the server has seen
    ``requests`` requests, or ``patience`` seconds: it records whether it saw them."""

    def __init__(self, root: Path, server: FileServer, requests: int, patience: float) -> None:
        super().__init__(root)
        self.server, self.requests, self.patience = server, requests, patience
        self.saw: list[bool] = []

    def commit(
        self, item_id: str, role: str, name: str, partial: Path, fetched: FetchedFile
    ) -> FileRecord:
        if not self.saw:
            until = time.monotonic() + self.patience
            while len(self.server.requests()) < self.requests and time.monotonic() < until:
                time.sleep(0.005)
            self.saw.append(len(self.server.requests()) >= self.requests)
        return super().commit(item_id, role, name, partial, fetched)


def _jobs(server: FileServer, count: int, delay: float = 0.0) -> list[Job]:
    jobs = []
    for i in range(count):
        server.add(f"/v/{i}.mp4", content_of(40_000, i), delay=delay)
        entry = make_entry(f"item-{i:02d}", server.url(f"/v/{i}.mp4"))
        jobs.append(Job(entry, "video", entry.video.url or "", "video.mp4"))
    return jobs


def _run(archive: Archive, jobs: list[Job], settings: DownloadSettings, counting: Counting) -> None:
    async def run() -> None:
        async with make_client(settings, transport=counting) as client:
            with archive:
                for job in jobs:
                    archive.record_item(job.entry)
                outcomes = await download_all(jobs, archive, settings=settings, client=client)
        assert [o.status for o in outcomes] == [Status.FETCHED] * len(jobs)

    asyncio.run(run())


def test_the_next_file_is_asked_for_while_one_is_committed(
    server: FileServer, tmp_path: Path
) -> None:
    # --jobs 1: the second file's request goes out while the first is checked and committed
    # (its slot was given back with its last byte), not after.
    jobs = _jobs(server, 2)
    archive = _CommitWaits(tmp_path, server, requests=2, patience=5.0)
    counting = Counting()
    _run(archive, jobs, DownloadSettings(jobs=1, per_host=8), counting)
    assert archive.saw == [True]
    assert counting.peak == 1  # and never two transfers at once


@pytest.mark.parametrize(("jobs", "per_host"), [(2, 8), (8, 3)])
def test_never_more_transfers_than_jobs_and_per_host(
    server: FileServer, tmp_path: Path, jobs: int, per_host: int
) -> None:
    # Many small files, each answer a little slow: the slots are given back early and taken
    # again for every file, and the count stays honest.
    settings = DownloadSettings(jobs=jobs, per_host=per_host)
    counting = Counting()
    _run(Archive(tmp_path), _jobs(server, 12, delay=0.05), settings, counting)
    assert counting.peak == min(jobs, per_host)
