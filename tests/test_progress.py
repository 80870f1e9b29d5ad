"""Progress counts every byte once: a dropped and resumed file, a restarted one, a failed one."""

from __future__ import annotations

import io
import re
from pathlib import Path

from archiver.cli.progress import TqdmProgress
from archiver.fetch import DownloadSettings, download
from archiver.manifest import Manifest

from .conftest import content_of, make_entry
from .server import FileServer

FAST = DownloadSettings(retries=4, backoff_base=0.01, backoff_max=0.05, timeout=5)
MIB = 1024 * 1024


def run(server: FileServer, tmp_path: Path, *paths: str) -> tuple[TqdmProgress, str]:
    manifest = Manifest(
        entries=tuple(make_entry(f"item-{i}", server.url(p)) for i, p in enumerate(paths))
    )
    stream = io.StringIO()
    progress = TqdmProgress(stream=stream)
    download(manifest, tmp_path, settings=FAST, progress=progress)
    return progress, stream.getvalue()


def last_overall(shown: str) -> str:
    """The overall bar as it was last drawn."""
    lines = [line for line in re.split(r"[\r\n]", shown) if " files" in line]
    return lines[-1].strip()


def test_a_file_dropped_twice_ends_whole_on_one_bar(server: FileServer, tmp_path: Path) -> None:
    data = content_of(3 * MIB)
    server.add("/v/a.mp4", data, drop_after=MIB, drop_times=2)
    progress, shown = run(server, tmp_path, "/v/a.mp4")
    requests = server.requests("/v/a.mp4")
    assert len(requests) == 3
    assert requests[1].headers.get("Range") == f"bytes={MIB}-"  # resumed, not restarted
    assert progress.overall is not None
    assert (progress.overall.n, progress.overall.total) == (len(data), len(data))
    assert (progress.done, progress.failed) == (1, 0)
    final = last_overall(shown)
    assert final.startswith("1/1 files: 100%"), final
    assert "3.00M/3.00M" in final, final


def test_a_file_restarted_from_zero_takes_its_bytes_back(
    server: FileServer, tmp_path: Path
) -> None:
    old, new = content_of(2 * MIB, seed=1), content_of(2 * MIB + 4096, seed=2)
    # The first answer drops after 1 MiB; then the file changes upstream: If-Range fails,
    # the server sends the whole new file, and the download starts again from zero.
    server.add("/v/a.mp4", old, drop_after=MIB, drop_times=1, change_to=new, change_after=1)
    progress, shown = run(server, tmp_path, "/v/a.mp4")
    assert (tmp_path / "media" / "item-0" / "video.mp4").read_bytes() == new
    assert progress.overall is not None
    assert (progress.overall.n, progress.overall.total) == (len(new), len(new))
    assert last_overall(shown).startswith("1/1 files: 100%")


def test_a_failed_file_is_counted_as_failed_not_done(server: FileServer, tmp_path: Path) -> None:
    server.add("/v/a.mp4", content_of(MIB))
    progress, shown = run(server, tmp_path, "/v/a.mp4", "/v/missing.mp4")
    assert (progress.done, progress.failed) == (1, 1)
    assert last_overall(shown).startswith("1/2 files, 1 failed:"), last_overall(shown)
